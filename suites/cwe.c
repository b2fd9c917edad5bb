/* cwe.c — RULER common words extraction (ruler.md section 3.3). A numbered list "1. w 2. w ..."
 * in which 10 common words appear 30 times and every other word 3 times (L < 4096: 6 and 1); the
 * answer is the 10 common words. A one-shot example (40 words, 10 x 10 + 30 x 3; L < 4096:
 * 20 words, 10 x 3 + 10 x 1) with its answer comes first. Words are drawn without replacement
 * from the wonderwords pool sorted(set(nouns + adjectives + verbs)) (8166 words); when a length
 * needs more distinct words than the pool holds (beyond ~100K byte tokens), further words are
 * distinct pseudo-words of 7-10 lowercase letters (deviation "cwe_pseudo_words"; RULER
 * falls back to a larger English list that does not reach 16M tokens either). The list order is
 * RULER's fixed-seed shuffle: one permutation per (task, length, seed).
 * Fitting: words are added while the list fits (exact, one word of slack). */
#include <stdio.h>

#include "gen.h"

static const char *CWE_TEMPLATE =
    "Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?";
static const char *CWE_ANSWER_PREFIX = " Answer: The top 10 words that appear most often in the list are:";

enum { NCW = 10 };

/* Word source: the pool in a per-sample random order (partial Fisher-Yates), then pseudo-words.
 * A pseudo-word is a random prefix of 1-4 letters + a 6-letter suffix that encodes its index j
 * through a bijection of [0, 26^6) (j * 7^9 + offset mod 26^6; 7^9 is coprime to 26), so
 * pseudo-words are distinct by construction; one that equals a pool word gets a new prefix.
 * They live in fixed 12-byte slots (length in the last byte): the shuffled list reads words in
 * random order, and one cache line per word keeps a 16M-token sample under a second. */
struct wsrc {
    const struct word_lists *wl;
    int32_t *perm;
    int64_t n_drawn;
    char (*pseudo)[12];
    int64_t n_pseudo, cap_pseudo;
    uint64_t offset;
    struct strset pool_set;
    lc_rng *rng;
    int err;
};

#define SUFFIX_SPACE 308915776ull /* 26^6 */

static const char *wsrc_get_n(struct wsrc *w, int64_t i, size_t *len) {
    int np = w->wl->n_pool;
    while (w->n_drawn <= i && w->n_drawn < np) {
        int64_t j = w->n_drawn + (int64_t)lc_rng_below(w->rng, (uint64_t)(np - w->n_drawn));
        int32_t t = w->perm[w->n_drawn];
        w->perm[w->n_drawn] = w->perm[j];
        w->perm[j] = t;
        w->n_drawn++;
    }
    if (i < np) {
        const char *p = w->wl->pool[w->perm[i]];
        *len = strlen(p);
        return p;
    }
    while (w->n_pseudo <= i - np) {
        if (!w->pool_set.cap) {
            for (int k = 0; k < np; k++) strset_add(&w->pool_set, w->wl->pool[k], strlen(w->wl->pool[k]));
            w->offset = lc_rng_below(w->rng, SUFFIX_SPACE);
        }
        if (w->n_pseudo == w->cap_pseudo) {
            w->cap_pseudo = w->cap_pseudo ? 2 * w->cap_pseudo : 4096;
            char(*p)[12] = realloc(w->pseudo, sizeof *p * (size_t)w->cap_pseudo);
            if (!p || (uint64_t)w->cap_pseudo > SUFFIX_SPACE) { w->err = 1; *len = 1; return "x"; }
            w->pseudo = p;
        }
        char *slot = w->pseudo[w->n_pseudo];
        uint64_t code = ((uint64_t)w->n_pseudo * 40353607ull + w->offset) % SUFFIX_SPACE;
        for (;;) {
            int pl = (int)rng_int(w->rng, 1, 4);
            rng_lower(w->rng, slot, pl);
            uint64_t c = code;
            for (int k = 0; k < 6; k++, c /= 26) slot[pl + k] = (char)('a' + c % 26);
            slot[pl + 6] = 0;
            slot[11] = (char)(pl + 6);
            int in_pool = strset_has(&w->pool_set, slot, (size_t)(pl + 6));
            if (!in_pool) break;
        }
        w->n_pseudo++;
    }
    char *slot = w->pseudo[i - np];
    *len = (size_t)slot[11];
    return slot;
}

static const char *wsrc_get(struct wsrc *w, int64_t i) {
    size_t n;
    return wsrc_get_n(w, i, &n);
}

/* "{i}." (first entry) or " {i}." into buf; returns its length (snprintf is the hot spot at 16M) */
static int fmt_num(char *buf, int64_t i, int first) {
    char tmp[24];
    int n = 0, k = 0;
    do tmp[n++] = (char)('0' + i % 10);
    while ((i /= 10) > 0);
    if (!first) buf[k++] = ' ';
    while (n) buf[k++] = tmp[--n];
    buf[k++] = '.';
    return k;
}

static int64_t num_cost(const struct tokenizer *tok, int64_t i, int first) {
    char buf[32];
    return tok_count(tok, buf, (size_t)fmt_num(buf, i, first));
}

/* Emit the numbered list of `words` (index into the source) with the shuffled layout. */
static void emit_list(struct gb *b, struct wsrc *w, int64_t base, int64_t nwords, int cr, int ur, lc_rng *shuf) {
    int64_t E = (int64_t)NCW * cr + (nwords - NCW) * ur;
    int32_t *lst = malloc(sizeof(int32_t) * (size_t)(E > 0 ? E : 1));
    if (!lst) { b->err = 1; return; }
    int64_t e = 0;
    for (int64_t k = 0; k < nwords; k++)
        for (int r = 0; r < (k < NCW ? cr : ur); r++) lst[e++] = (int32_t)k;
    rng_shuffle_i32(shuf, lst, E);
    char num[32];
    for (int64_t i = 0; i < E; i++) {
        gb_emit(b, num, (size_t)fmt_num(num, i + 1, i == 0));
        size_t wl;
        const char *wd = wsrc_get_n(w, base + lst[i], &wl);
        gb_emit_sp(b, wd, wl);
    }
    free(lst);
}

static lc_status cwe_try(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s, int big) {
    const struct tokenizer *tok = spec->tok;
    int ex_n = big ? 40 : 20, ex_cr = big ? 10 : 3, ex_ur = big ? 3 : 1, cr = big ? 30 : 6, ur = big ? 3 : 1;
    struct wsrc w = {spec->words, NULL, 0, NULL, 0, 0, 0, {0}, rng, 0};
    w.perm = malloc(sizeof(int32_t) * (size_t)spec->words->n_pool);
    if (!w.perm) return lc_errorf(LC_ENOMEM, "out of memory");
    for (int i = 0; i < spec->words->n_pool; i++) w.perm[i] = i;
    lc_rng shuf;
    lc_rng_seed(&shuf, fixed_shuffle_seed(spec));
    lc_status st = LC_OK;
    const char *ctx = strstr(CWE_TEMPLATE, "{context}");
    char head[256];
    snprintf(head, sizeof head, "%.*s", (int)(ctx - CWE_TEMPLATE), CWE_TEMPLATE);
    const char *tail = ctx + 9;
    int64_t fixed = tcost(tok, head) + tcost(tok, tail) + tcost(tok, CWE_ANSWER_PREFIX);
    /* example: words 0..ex_n-1 of the source; the task's words follow */
    char ex_ans[1024] = " ";
    int64_t ex_cost = fixed, e = 0;
    for (int64_t k = 0; k < ex_n; k++) {
        const char *wd = wsrc_get(&w, k);
        for (int r = 0; r < (k < NCW ? ex_cr : ex_ur); r++, e++) ex_cost += num_cost(tok, e + 1, e == 0) + tcost_sp(tok, wd, strlen(wd));
        if (k < NCW) {
            char t[64];
            snprintf(t, sizeof t, "%s%lld. %s", k ? " " : "", (long long)k + 1, wd);
            strcat(ex_ans, t);
        }
    }
    ex_cost += tcost(tok, ex_ans) + tcost(tok, "\n");
    /* task: add words while they fit */
    int64_t budget = target - ex_cost - fixed, used = 0, nw = 0;
    e = 0;
    for (;; nw++) {
        size_t wl;
        const char *wd = wsrc_get_n(&w, ex_n + nw, &wl);
        int reps = nw < NCW ? cr : ur;
        int64_t c = reps * tcost_sp(tok, wd, wl);
        for (int r = 0; r < reps; r++) c += num_cost(tok, e + r + 1, e + r == 0);
        if (used + c > budget) break;
        used += c;
        e += reps;
    }
    if (nw < NCW + 1 || w.err) {
        st = w.err ? lc_errorf(LC_ENOMEM, "out of memory") : lc_errorf(LC_EINVAL, "length %lld is too short for cwe", (long long)spec->length);
        goto done;
    }
    if (ex_n + nw > spec->words->n_pool) add_deviation(s, "cwe_pseudo_words");
    struct gb b;
    gb_init(&b, tok, spec->want_ids, (size_t)target + 1024);
    gb_emits(&b, head);
    emit_list(&b, &w, 0, ex_n, ex_cr, ex_ur, &shuf);
    gb_emits(&b, tail);
    gb_emits(&b, CWE_ANSWER_PREFIX);
    gb_emits(&b, ex_ans);
    gb_emit(&b, "\n", 1);
    gb_emits(&b, head);
    emit_list(&b, &w, ex_n, nw, cr, ur, &shuf);
    gb_emits(&b, tail);
    int64_t input_len = (int64_t)b.len;
    gb_emits(&b, CWE_ANSWER_PREFIX);
    snprintf(s->haystack, sizeof s->haystack, "list");
    s->num_haystack = nw;
    st = finish_sample(s, &b, input_len);
    gb_free(&b);
    if (st) goto done;
    char *outs[NCW];
    for (int k = 0; k < NCW; k++) outs[k] = (char *)wsrc_get(&w, ex_n + k);
    st = set_outputs(s, outs, NCW);
done:
    free(w.perm);
    free(w.pseudo);
    strset_free(&w.pool_set);
    return st;
}

/* RULER picks the small config below 4096 tokens; with a byte tokenizer an entry costs ~3x more
 * tokens than with LLaMA's, so the large config may not fit at 4096: then the small one is used
 * (deviation "cwe_small_config"). */
lc_status gen_cwe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    lc_rng r0 = *rng;
    if (spec->length >= 4096) {
        lc_status st = cwe_try(spec, rng, target, s, 1);
        if (st != LC_EINVAL) return st;
        *rng = r0;
        s->deviations[0] = 0;
        add_deviation(s, "cwe_small_config");
    }
    return cwe_try(spec, rng, target, s, 0);
}
