/* niah.c — RULER's eight needle-in-a-haystack configs (ruler.md section 3.1).
 *
 * Needle: "One of the special magic {type_v} for {key} is: {value}." Keys and values are
 * "adjective-noun" words, 7-digit numbers or v4 uuids. Haystacks:
 *   noise  — the unit "The grass is green. ... There and back again." repeated, items joined by
 *            "\n", needles at uniformly random unit positions;
 *   needle — every unit a distractor needle with fresh key and value (keys and values that equal
 *            a real one are redrawn: deviation "distractors_exclude_real");
 *   essay  — the prose haystack's words (cycled), needles between sentences at depths drawn
 *            without repeats from RULER's 40-point grid 0,3,5,...,100 (percent of sentences).
 * With a depth grid (spec->depth_bins), single-needle configs put the needle at the bin's depth
 * (fraction of units / sentences) instead of a random one.
 * Fitting: all units that fit (target - template - needles) are used, so the prompt ends within
 * one unit of the budget; RULER's binary search does the same to within one unit.
 */
#include <stdio.h>

#include "gen.h"

static const char *NIAH_TEMPLATE =
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic {type_needle_v} for {query} mentioned in the provided text?";
static const char *NIAH_ANSWER_PREFIX =
    " The special magic {type_needle_v} for {query} mentioned in the provided text are";

enum { HAY_NOISE, HAY_ESSAY, HAY_NEEDLE };
enum { T_NUM, T_WORD, T_UUID };
struct niah_cfg { const char *name; int hay, type_k, type_v, k, v, q; };
static const struct niah_cfg CFG[] = {
    {"niah_single_1", HAY_NOISE, T_WORD, T_NUM, 1, 1, 1},
    {"niah_single_2", HAY_ESSAY, T_WORD, T_NUM, 1, 1, 1},
    {"niah_single_3", HAY_ESSAY, T_WORD, T_UUID, 1, 1, 1},
    {"niah_multikey_1", HAY_ESSAY, T_WORD, T_NUM, 4, 1, 1},
    {"niah_multikey_2", HAY_NEEDLE, T_WORD, T_NUM, 1, 1, 1},
    {"niah_multikey_3", HAY_NEEDLE, T_UUID, T_UUID, 1, 1, 1},
    {"niah_multivalue", HAY_ESSAY, T_WORD, T_NUM, 1, 4, 1},
    {"niah_multiquery", HAY_ESSAY, T_WORD, T_NUM, 1, 1, 4},
};
static const char *TYPE_NAME[] = {"numbers", "words", "uuids"};
static const int DEPTHS40[40] = {0, 3, 5, 8, 10, 13, 15, 18, 21, 23, 26, 28, 31, 33, 36, 38, 41, 44, 46, 49,
                                 51, 54, 56, 59, 62, 64, 67, 69, 72, 74, 77, 79, 82, 85, 87, 90, 92, 95, 97, 100};

#define MAXN 16
#define VLEN 64

struct needle { char text[200]; int64_t cost; int64_t pos; int key_i, val_i; };

static void fill_needle(struct needle *nd, const char *type_v, const char *key, const char *val,
                        const struct tokenizer *tok, int sp) {
    snprintf(nd->text, sizeof nd->text, "One of the special magic %s for %s is: %s.", type_v, key, val);
    nd->cost = sp ? tcost_sp(tok, nd->text, strlen(nd->text)) : tcost(tok, nd->text);
}

/* Emit a needle piece, recording its span; `*first` says whether it starts the context. */
static void emit_needle(struct gb *b, const struct needle *nd, int sp, struct suite_span *span) {
    size_t n = strlen(nd->text);
    int64_t t0 = b->ntok;
    size_t b0 = b->len;
    if (sp) gb_emit_sp(b, nd->text, n);
    else gb_emit(b, nd->text, n);
    span->byte0 = (int64_t)b0 + sp;
    span->byte1 = (int64_t)b->len;
    span->tok0 = t0 + (sp ? tok_count(b->tok, " ", 1) : 0);
    span->tok1 = b->ntok;
}

static int cmp_pos(const void *a, const void *b) {
    const struct needle *x = a, *y = b;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

lc_status gen_niah(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    const struct niah_cfg *c = NULL;
    for (size_t i = 0; i < sizeof CFG / sizeof CFG[0]; i++)
        if (!strcmp(CFG[i].name, s->task->name)) c = &CFG[i];
    const struct tokenizer *tok = spec->tok;
    const struct word_lists *wl = spec->words;
    int k = c->k > c->q ? c->k : c->q, v = c->v, q = c->q;
    char keys[MAXN][VLEN], vals[MAXN][VLEN];
    /* 1. keys and values, distinct */
    for (int i = 0; i < k; i++) {
        int dup;
        do {
            rng_value(rng, c->type_k, wl, keys[i], VLEN);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= !strcmp(keys[i], keys[j]);
        } while (dup);
        for (int j = 0; j < v; j++) {
            int idx = i * v + j;
            do {
                rng_value(rng, c->type_v, wl, vals[idx], VLEN);
                dup = 0;
                for (int m = 0; m < idx; m++) dup |= !strcmp(vals[idx], vals[m]);
            } while (dup);
        }
    }
    int nn = k * v;
    int essay = c->hay == HAY_ESSAY;
    struct needle nd[MAXN];
    for (int i = 0; i < nn; i++) {
        fill_needle(&nd[i], TYPE_NAME[c->type_v], keys[i / v], vals[i], tok, essay);
        nd[i].key_i = i / v;
        nd[i].val_i = i;
    }
    /* 2. needle order: shuffled */
    for (int i = nn - 1; i > 0; i--) {
        int j = (int)lc_rng_below(rng, (uint64_t)i + 1);
        struct needle t = nd[i];
        nd[i] = nd[j];
        nd[j] = t;
    }
    /* 3. queries */
    int64_t qi[MAXN];
    rng_sample(rng, k, q, qi);
    char query[MAXN * VLEN + 64] = "";
    for (int i = 0; i < q; i++) {
        if (i) strcat(query, ", ");
        if (i && i == q - 1) strcat(query, "and ");
        strcat(query, keys[qi[i]]);
    }
    /* 4. template */
    char *tpl = xstrdup(NIAH_TEMPLATE), *ap = xstrdup(NIAH_ANSWER_PREFIX);
    char type_v[16];
    snprintf(type_v, sizeof type_v, "%s", TYPE_NAME[c->type_v]);
    if (q * v == 1) {
        const char *from[4] = {"Some", "are all", "are", "answers"}, *to[4] = {"A", "is", "is", "answer"};
        for (int i = 0; i < 4; i++) { tpl = str_replace(tpl, from[i], to[i]); ap = str_replace(ap, from[i], to[i]); }
        type_v[strlen(type_v) - 1] = 0;
    }
    tpl = str_replace(tpl, "{type_needle_v}", type_v);
    ap = str_replace(ap, "{type_needle_v}", type_v);
    tpl = str_replace(tpl, "{query}", query);
    ap = str_replace(ap, "{query}", query);
    if (!tpl || !ap) { free(tpl); free(ap); return lc_errorf(LC_ENOMEM, "out of memory"); }
    char *ctx = strstr(tpl, "{context}");
    *ctx = 0;
    const char *head = tpl, *tail = ctx + strlen("{context}");
    int64_t avail = target - tcost(tok, head) - tcost(tok, tail) - tcost(tok, ap);
    int64_t needles_cost = 0;
    for (int i = 0; i < nn; i++) needles_cost += nd[i].cost;
    int bin;
    double depth = nn == 1 ? spec_depth(spec, &bin) : (bin = -1, -1.0);

    struct gb b;
    gb_init(&b, tok, spec->want_ids, (size_t)(target > 0 ? target : 0) + 1024);
    gb_emits(&b, head);
    struct suite_span spans[MAXN];
    int64_t n = 0;
    const int64_t cnl = tcost(tok, "\n");
    lc_status st = LC_OK;
    if (c->hay == HAY_NOISE || c->hay == HAY_NEEDLE) {
        const int64_t cu = tcost(tok, NOISE_UNIT);
        lc_rng d0 = *rng; /* distractor stream: replayed when emitting */
        char dkey[VLEN], dval[VLEN];
        struct needle dn;
        int64_t budget = avail - needles_cost - (int64_t)(nn - 1) * cnl;
        if (c->hay == HAY_NOISE) {
            n = budget >= 0 ? budget / (cu + cnl) : -1;
        } else {
            int64_t used = 0;
            for (;;) {
                for (;;) {
                    rng_value(rng, c->type_k, wl, dkey, VLEN);
                    rng_value(rng, c->type_v, wl, dval, VLEN);
                    int bad = 0;
                    for (int i = 0; i < k; i++) bad |= !strcmp(dkey, keys[i]);
                    for (int i = 0; i < nn; i++) bad |= !strcmp(dval, vals[i]);
                    if (!bad) break;
                }
                fill_needle(&dn, TYPE_NAME[c->type_v], dkey, dval, tok, 0);
                if (used + dn.cost + cnl > budget) break;
                used += dn.cost + cnl;
                n++;
            }
            add_deviation(s, "distractors_exclude_real");
        }
        if (n < 1) { st = lc_errorf(LC_EINVAL, "length %lld is too short for %s", (long long)spec->length, c->name); goto done; }
        if (depth >= 0) {
            nd[0].pos = (int64_t)(depth * (double)n + 0.5);
            if (nd[0].pos > n) nd[0].pos = n;
        } else {
            int64_t pos[MAXN];
            rng_sample(rng, n, nn, pos);
            for (int i = 0; i < nn; i++) nd[i].pos = pos[i];
            qsort(nd, (size_t)nn, sizeof nd[0], cmp_pos);
        }
        int first = 1, j = 0;
        for (int64_t u = 0; u <= n; u++) {
            while (j < nn && nd[j].pos == u) {
                if (!first) gb_emit(&b, "\n", 1);
                emit_needle(&b, &nd[j], 0, &spans[j]);
                first = 0;
                j++;
            }
            if (u == n) break;
            if (!first) gb_emit(&b, "\n", 1);
            first = 0;
            if (c->hay == HAY_NOISE) {
                gb_emits(&b, NOISE_UNIT);
            } else {
                for (;;) {
                    rng_value(&d0, c->type_k, wl, dkey, VLEN);
                    rng_value(&d0, c->type_v, wl, dval, VLEN);
                    int bad = 0;
                    for (int i = 0; i < k; i++) bad |= !strcmp(dkey, keys[i]);
                    for (int i = 0; i < nn; i++) bad |= !strcmp(dval, vals[i]);
                    if (!bad) break;
                }
                char line[200];
                int m = snprintf(line, sizeof line, "One of the special magic %s for %s is: %s.", TYPE_NAME[c->type_v], dkey, dval);
                gb_emit(&b, line, (size_t)m);
            }
        }
        snprintf(s->haystack, sizeof s->haystack, "%s", c->hay == HAY_NOISE ? "noise" : "needle");
    } else {
        const struct haystack *h = spec->hay;
        int64_t budget = avail - needles_cost, used = 0, ends = 0;
        for (;; n++) {
            int64_t w = n % h->n_words;
            int64_t cw = n == 0 ? h->cost0[w] : h->cost[w];
            if (used + cw > budget) break;
            used += cw;
            ends += h->sent_end[w];
        }
        if (n < 1) { st = lc_errorf(LC_EINVAL, "length %lld is too short for %s", (long long)spec->length, c->name); goto done; }
        int64_t n_sents = ends + !h->sent_end[(n - 1) % h->n_words];
        if (depth >= 0) {
            nd[0].pos = (int64_t)(depth * (double)n_sents);
        } else {
            int64_t di[MAXN];
            rng_sample(rng, 40, nn, di);
            for (int i = 0; i < nn; i++) nd[i].pos = (int64_t)((double)n_sents * DEPTHS40[di[i]] / 100.0);
            qsort(nd, (size_t)nn, sizeof nd[0], cmp_pos);
        }
        int first = 1, j = 0;
        int64_t sent = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t w = i % h->n_words;
            if (i == 0 || h->sent_end[(i - 1) % h->n_words])
                while (j < nn && nd[j].pos == sent) { emit_needle(&b, &nd[j], !first, &spans[j]); first = 0; j++; }
            if (first) gb_emit(&b, h->text + h->word_off[w], h->word_len[w]);
            else gb_emit_sp(&b, h->text + h->word_off[w], h->word_len[w]);
            first = 0;
            sent += h->sent_end[w];
        }
        while (j < nn) { emit_needle(&b, &nd[j], 1, &spans[j]); j++; }
        snprintf(s->haystack, sizeof s->haystack, "essay");
    }
    gb_emits(&b, tail);
    int64_t input_len = (int64_t)b.len;
    gb_emits(&b, ap);
    s->num_haystack = n;
    s->depth_bin = bin;
    /* outputs: all values of each queried key, in query order; needles in the same order */
    char *outs[MAXN];
    int no = 0;
    s->needles = calloc((size_t)nn, sizeof *s->needles);
    if (!s->needles) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto done; }
    int used_n[MAXN] = {0};
    for (int i = 0; i < q; i++)
        for (int j = 0; j < v; j++) {
            int vi = (int)qi[i] * v + j;
            outs[no] = vals[vi];
            for (int m = 0; m < nn; m++)
                if (nd[m].val_i == vi) { s->needles[no] = spans[m]; used_n[m] = 1; }
            no++;
        }
    s->n_needles = no;
    for (int m = 0; m < nn; m++)
        if (!used_n[m]) s->needles[s->n_needles++] = spans[m];
    if ((st = finish_sample(s, &b, input_len))) goto done;
    if ((st = set_outputs(s, outs, no))) goto done;
    /* token position of outputs[0]: inside needles[0] */
    const char *needle_txt = s->text + s->needles[0].byte0;
    const char *vpos = strstr(needle_txt, outs[0]);
    s->token_position_answer = s->needles[0].tok0 + tok_count(tok, needle_txt, (size_t)(vpos - needle_txt));
    s->depth = s->prompt_tokens ? (double)s->needles[0].tok0 / (double)s->prompt_tokens : 0;
done:
    gb_free(&b);
    free(tpl);
    free(ap);
    return st;
}
