/* probes.c — the token-level probes of the HSA papers (ruler.md section 7.5), inserted into the
 * prose haystack (a random start word per sample; --haystack FILE for a model's held-out
 * training text). The sequence is exactly L tokens: haystack with needles, the question, then the
 * answer tokens, scored by teacher forcing (all answer tokens must be predicted).
 *   tok_sniah:  needle " |One of the special magic numbers for long-context is:" + 7 random
 *               token ids + "|"; question " What is the special magic number for long-context
 *               mentioned in the provided text? Answer: " + the ids. Random ids come from the
 *               tokenizer's probe range (byte: printable ASCII except '|'; HSA: [100, vocab)).
 *   tok_mqniah: 6 needles "| One of the special magic numbers for {NAME} is {VAL}.|" (NAME 5
 *               uppercase letters, VAL 6 digits), 2 queried: " What are all the special magic
 *               numbers for {N1} and {N2} mentioned in the provided text?. Answer: " + "V1 V2".
 *   tok_vt:     2 chains of 3: "|VAR A = {8 digits}|", "|VAR B = A|", "|VAR C = B|", all six
 *               shuffled; " Find all variables that are assigned the value {v0}. Answer: A, B, C".
 *   tok_fwe:    RULER's FWE with 5-letter words, vocabulary 2000, in [INST] ... [/INST] tags,
 *               answer " w2 w3 w4" (ranks 2-4; rank 1 is "...").
 * No EOS is appended (the byte tokenizer has none). Needles sit before uniformly random haystack
 * words (sorted; tok_sniah at the depth-grid position when one is given). The gap left when the
 * next word does not fit is padded with spaces, so the length is exact. */
#include <stdio.h>

#include "gen.h"

#define MAXP 8

struct piece { char text[160]; int32_t ids[16]; int n_ids; char suffix[8]; /* text, raw ids, suffix text */ int64_t cost; };

static int64_t piece_cost(const struct tokenizer *tok, const struct piece *p) {
    return tcost(tok, p->text) + p->n_ids + tcost(tok, p->suffix);
}
static void emit_piece(struct gb *b, const struct piece *p) {
    gb_emits(b, p->text);
    if (p->n_ids) gb_emit_ids(b, p->ids, (size_t)p->n_ids);
    if (p->suffix[0]) gb_emits(b, p->suffix);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* haystack words from `start`, needles before word pos[i]; fills exactly `budget` tokens */
static void emit_hay(struct gb *b, const struct haystack *h, int64_t start, int64_t budget, struct piece *nd, int k,
                     const struct suite_spec *spec, lc_rng *rng, struct suite_span *spans, int64_t *n_words, double depth) {
    const struct tokenizer *tok = spec->tok;
    int64_t ncost = 0;
    for (int i = 0; i < k; i++) ncost += nd[i].cost;
    int64_t used = 0, n = 0;
    for (;; n++) {
        int64_t w = (start + n) % h->n_words, c = n == 0 ? h->cost0[w] : h->cost[w];
        if (used + c + ncost > budget) break;
        used += c;
    }
    int64_t pos[MAXP];
    if (depth >= 0 && k == 1) pos[0] = (int64_t)(depth * (double)n + 0.5);
    else {
        for (int i = 0; i < k; i++) pos[i] = (int64_t)lc_rng_below(rng, (uint64_t)n + 1);
        qsort(pos, (size_t)k, sizeof pos[0], cmp_i64);
    }
    int j = 0;
    for (int64_t i = 0; i <= n; i++) {
        while (j < k && pos[j] == i) {
            spans[j].tok0 = b->ntok;
            spans[j].byte0 = (int64_t)b->len;
            emit_piece(b, &nd[j]);
            spans[j].tok1 = b->ntok;
            spans[j].byte1 = (int64_t)b->len;
            j++;
        }
        if (i == n) break;
        int64_t w = (start + i) % h->n_words;
        if (i == 0) gb_emit(b, h->text + h->word_off[w], h->word_len[w]);
        else gb_emit_sp(b, h->text + h->word_off[w], h->word_len[w]);
    }
    int64_t pad = budget - used - ncost, sp = tcost(tok, " ");
    for (; pad >= sp; pad -= sp) gb_emit(b, " ", 1);
    *n_words = n;
}

static void rand_ids(lc_rng *r, const struct tokenizer *tok, int32_t *ids, int n) {
    for (int i = 0; i < n; i++) {
        int32_t x;
        do x = (int32_t)rng_int(r, tok->probe_lo, tok->probe_hi - 1);
        while (x == tok->probe_excl);
        ids[i] = x;
    }
}

/* answer tokens become targets: prediction at position t-1 must be ids[t] */
static lc_status set_targets(struct suite_sample *s, int64_t a0, int64_t a1, const int32_t *ans) {
    s->n_targets = a1 - a0;
    s->target_pos = malloc(sizeof(int64_t) * (size_t)s->n_targets);
    s->target_id = malloc(sizeof(int32_t) * (size_t)s->n_targets);
    s->answer_ids = malloc(sizeof(int32_t) * (size_t)s->n_targets);
    if (!s->target_pos || !s->target_id || !s->answer_ids) return lc_errorf(LC_ENOMEM, "out of memory");
    for (int64_t t = a0; t < a1; t++) {
        s->target_pos[t - a0] = t - 1;
        s->target_id[t - a0] = ans[t - a0];
        s->answer_ids[t - a0] = ans[t - a0];
    }
    s->n_answer_ids = s->n_targets;
    return LC_OK;
}

static lc_status gen_tok_fwe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s);

lc_status gen_probe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    if (!strcmp(s->task->name, "tok_fwe")) return gen_tok_fwe(spec, rng, target, s);
    const struct tokenizer *tok = spec->tok;
    const struct haystack *h = spec->hay;
    struct piece nd[MAXP], q = {0}, ans = {0};
    int k = 0;
    char *outs[4];
    char ob[4][64];
    int nout = 0;
    if (!strcmp(s->task->name, "tok_sniah")) {
        k = 1;
        memset(nd, 0, sizeof nd[0]);
        snprintf(nd[0].text, sizeof nd[0].text, " |One of the special magic numbers for long-context is:");
        rand_ids(rng, tok, ans.ids, 7);
        ans.n_ids = 7;
        memcpy(nd[0].ids, ans.ids, sizeof(int32_t) * 7);
        nd[0].n_ids = 7;
        strcpy(nd[0].suffix, "|");
        snprintf(q.text, sizeof q.text, " What is the special magic number for long-context mentioned in the provided text? Answer: ");
        int64_t m = tok->decode(tok, ans.ids, 7, ob[0], 63);
        ob[0][m] = 0;
        outs[nout++] = ob[0];
    } else if (!strcmp(s->task->name, "tok_mqniah")) {
        k = 6;
        char names[6][8];
        int vals[6];
        for (int i = 0; i < k; i++) {
            int dup;
            do {
                rng_upper(rng, names[i], 5);
                vals[i] = (int)rng_int(rng, 100000, 999999);
                dup = 0;
                for (int j = 0; j < i; j++) dup |= !strcmp(names[i], names[j]) || vals[i] == vals[j];
            } while (dup);
            memset(&nd[i], 0, sizeof nd[i]);
            snprintf(nd[i].text, sizeof nd[i].text, "| One of the special magic numbers for %s is %d.|", names[i], vals[i]);
        }
        int64_t qi[2];
        rng_sample(rng, k, 2, qi);
        snprintf(q.text, sizeof q.text, " What are all the special magic numbers for %s and %s mentioned in the provided text?. Answer: ",
                 names[qi[0]], names[qi[1]]);
        snprintf(ans.text, sizeof ans.text, "%d %d", vals[qi[0]], vals[qi[1]]);
        snprintf(ob[0], 64, "%d", vals[qi[0]]);
        snprintf(ob[1], 64, "%d", vals[qi[1]]);
        outs[0] = ob[0];
        outs[1] = ob[1];
        nout = 2;
        /* needles[0..1] = the queried ones: reorder so they come first (positions are random) */
        struct piece t = nd[0]; nd[0] = nd[qi[0]]; nd[qi[0]] = t;
        int64_t q1 = qi[1] == 0 ? qi[0] : qi[1];
        t = nd[1]; nd[1] = nd[q1]; nd[q1] = t;
    } else { /* tok_vt */
        k = 6;
        char names[6][8];
        for (int i = 0; i < k; i++) {
            int dup;
            do {
                rng_upper(rng, names[i], 5);
                dup = 0;
                for (int j = 0; j < i; j++) dup |= !strcmp(names[i], names[j]);
            } while (dup);
        }
        int v0 = (int)rng_int(rng, 10000000, 99999999), v1;
        do v1 = (int)rng_int(rng, 10000000, 99999999);
        while (v1 == v0);
        for (int c = 0; c < 2; c++) {
            memset(&nd[3 * c], 0, sizeof nd[0] * 3);
            snprintf(nd[3 * c].text, sizeof nd[0].text, "|VAR %s = %d|", names[3 * c], c ? v1 : v0);
            snprintf(nd[3 * c + 1].text, sizeof nd[0].text, "|VAR %s = %s|", names[3 * c + 1], names[3 * c]);
            snprintf(nd[3 * c + 2].text, sizeof nd[0].text, "|VAR %s = %s|", names[3 * c + 2], names[3 * c + 1]);
        }
        snprintf(q.text, sizeof q.text, " Find all variables that are assigned the value %d. Answer: ", v0);
        snprintf(ans.text, sizeof ans.text, "%s, %s, %s", names[0], names[1], names[2]);
        for (int i = 0; i < 3; i++) { snprintf(ob[i], 64, "%s", names[i]); outs[i] = ob[i]; }
        nout = 3;
    }
    for (int i = 0; i < k; i++) nd[i].cost = piece_cost(tok, &nd[i]);
    /* order of insertion: shuffled (spans are recorded per original index via a permutation) */
    int perm[MAXP];
    for (int i = 0; i < k; i++) perm[i] = i;
    for (int i = k - 1; i > 0; i--) { int j = (int)lc_rng_below(rng, (uint64_t)i + 1), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
    struct piece shuffled[MAXP];
    for (int i = 0; i < k; i++) shuffled[i] = nd[perm[i]];
    int64_t acost = piece_cost(tok, &ans), qcost = piece_cost(tok, &q);
    int64_t start = (int64_t)lc_rng_below(rng, (uint64_t)h->n_words);
    int bin;
    double depth = s->task->single_needle ? spec_depth(spec, &bin) : (bin = -1, -1.0);
    struct gb b;
    gb_init(&b, tok, spec->want_ids, (size_t)target + 1024);
    struct suite_span sp_sh[MAXP];
    int64_t nw;
    emit_hay(&b, h, start, target - qcost - acost, shuffled, k, spec, rng, sp_sh, &nw, depth);
    emit_piece(&b, &q);
    int64_t input_len = (int64_t)b.len, a0 = b.ntok;
    emit_piece(&b, &ans);
    int64_t a1 = b.ntok;
    snprintf(s->haystack, sizeof s->haystack, "prose");
    s->num_haystack = nw;
    s->depth_bin = bin;
    lc_status st = finish_sample(s, &b, input_len);
    gb_free(&b);
    if (st) return st;
    s->needles = malloc(sizeof(struct suite_span) * (size_t)k);
    if (!s->needles) return lc_errorf(LC_ENOMEM, "out of memory");
    for (int i = 0; i < k; i++) s->needles[perm[i]] = sp_sh[i];
    s->n_needles = k;
    s->depth = (double)s->needles[0].tok0 / (double)s->prompt_tokens;
    /* answer ids: the ones emitted (text pieces encoded by the tokenizer) */
    int32_t aid[64];
    int64_t na = a1 - a0;
    if (na > 64) return lc_errorf(LC_EINVAL, "internal: answer of %lld tokens", (long long)na);
    if (ans.n_ids) memcpy(aid, ans.ids, sizeof(int32_t) * (size_t)na);
    else tok->encode(tok, ans.text, strlen(ans.text), aid, 64);
    if ((st = set_targets(s, a0, a1, aid))) return st;
    return set_outputs(s, outs, nout);
}

static lc_status gen_tok_fwe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    const struct tokenizer *tok = spec->tok;
    const char *head =
        "[INST] Read the following coded text and track the frequency of each coded word. Find the three most frequently appeared coded words.";
    const char *tail =
        "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three most frequently appeared words in the above coded text? [/INST] Answer: According to the coded text above, the three most frequently appeared words are:";
    /* the answer is " w w w" (3 x 5 letters): cost it with a placeholder of the same shape */
    int64_t fixed = tcost(tok, head) + tcost(tok, tail) + tcost(tok, " xxxxx xxxxx xxxxx");
    struct gb b;
    gb_init(&b, tok, spec->want_ids, (size_t)target + 1024);
    char outs[3][8];
    int64_t E;
    /* head + coded text first; pad spaces go between the text and the tail */
    lc_status st = fwe_build(spec, rng, target - fixed, 2000, 5, head, "", &b, outs, &E);
    if (st) { gb_free(&b); return st; }
    char ans[32];
    snprintf(ans, sizeof ans, " %s %s %s", outs[0], outs[1], outs[2]);
    int64_t pad = target - b.ntok - tcost(tok, tail) - tcost(tok, ans), sp = tcost(tok, " ");
    for (; pad >= sp; pad -= sp) gb_emit(&b, " ", 1);
    gb_emits(&b, tail);
    int64_t input_len = (int64_t)b.len, a0 = b.ntok;
    gb_emits(&b, ans);
    int64_t a1 = b.ntok;
    snprintf(s->haystack, sizeof s->haystack, "coded");
    s->num_haystack = E;
    st = finish_sample(s, &b, input_len);
    gb_free(&b);
    if (st) return st;
    int32_t aid[64];
    if (a1 - a0 > 64) return lc_errorf(LC_EINVAL, "internal: long answer");
    tok->encode(tok, ans, strlen(ans), aid, 64);
    if ((st = set_targets(s, a0, a1, aid))) return st;
    char *o[3] = {outs[0], outs[1], outs[2]};
    return set_outputs(s, o, 3);
}
