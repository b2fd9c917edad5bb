/* fwe.c — RULER frequent words extraction (ruler.md section 3.4). Coded text: V = L'/50 distinct
 * random 6-letter words (L' = L - 50), the first replaced by "..."; word of rank k appears
 * floor(N k^-2 / zeta(2)) times; the list is shuffled with RULER's fixed-seed permutation and
 * joined by spaces; the answer is ranks 2, 3, 4. N is the largest that fits (binary search on the
 * exact token count; RULER steps N by L'/32, deviation "fwe_exact_fit").
 * tok_fwe (the HSA probe) uses the same generator with 5-letter words, V = 2000, [INST] tags,
 * an exact-length sequence and the answer " w2 w3 w4" appended for teacher forcing. */
#include <math.h>
#include <stdio.h>

#include "gen.h"

static const char *FWE_TEMPLATE =
    "Read the following coded text and track the frequency of each coded word. Find the three most frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three most frequently appeared words in the above coded text?";
static const char *FWE_ANSWER_PREFIX =
    " Answer: According to the coded text above, the three most frequently appeared words are:";

static int64_t count_of(int64_t N, int64_t k) {
    return (int64_t)floor((double)N * pow((double)k, -2.0) / (M_PI * M_PI / 6.0));
}

struct fwe_vocab { char (*w)[8]; int64_t V; int32_t *cost; };

static lc_status make_vocab(struct fwe_vocab *v, lc_rng *rng, int64_t V, int wlen, const struct tokenizer *tok) {
    v->V = V;
    v->w = malloc(sizeof *v->w * (size_t)V);
    v->cost = malloc(sizeof(int32_t) * (size_t)V);
    if (!v->w || !v->cost) return lc_errorf(LC_ENOMEM, "out of memory");
    struct strset seen = {0};
    for (int64_t i = 0; i < V; i++) {
        int r;
        do {
            rng_lower(rng, v->w[i], wlen);
            r = strset_add(&seen, v->w[i], (size_t)wlen);
        } while (r == 0);
        if (r < 0) { strset_free(&seen); return lc_errorf(LC_ENOMEM, "out of memory"); }
    }
    strset_free(&seen);
    strcpy(v->w[0], "...");
    for (int64_t i = 0; i < V; i++) v->cost[i] = (int32_t)tcost_sp(tok, v->w[i], strlen(v->w[i]));
    return LC_OK;
}

static int64_t text_cost(const struct fwe_vocab *v, int64_t N) {
    int64_t c = 0;
    for (int64_t k = 1; k <= v->V; k++) {
        int64_t n = count_of(N, k);
        if (!n) break;
        c += n * v->cost[k - 1];
    }
    return c;
}

/* Shared by fwe and tok_fwe: emits head + coded text + tail; returns the entries used. */
lc_status fwe_build(const struct suite_spec *spec, lc_rng *rng, int64_t budget_text, int64_t V, int wlen, const char *head,
                    const char *tail, struct gb *b, char outs[3][8], int64_t *n_entries) {
    struct fwe_vocab v;
    lc_status st = make_vocab(&v, rng, V, wlen, spec->tok);
    if (st) { free(v.w); free(v.cost); return st; }
    int64_t lo = 0, hi = budget_text + 1; /* each entry costs >= 1 token */
    while (lo < hi) {                    /* largest N with cost <= budget */
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (text_cost(&v, mid) <= budget_text) lo = mid;
        else hi = mid - 1;
    }
    int64_t N = lo, E = 0;
    for (int64_t k = 1; k <= V && count_of(N, k); k++) E += count_of(N, k);
    if (count_of(N, 5) < 1 || count_of(N, 4) <= count_of(N, 5)) {
        free(v.w);
        free(v.cost);
        return lc_errorf(LC_EINVAL, "length %lld is too short for %s", (long long)spec->length, spec->task);
    }
    int32_t *lst = malloc(sizeof(int32_t) * (size_t)E);
    if (!lst) { free(v.w); free(v.cost); return lc_errorf(LC_ENOMEM, "out of memory"); }
    int64_t e = 0;
    for (int64_t k = 1; k <= V && count_of(N, k); k++)
        for (int64_t r = count_of(N, k); r > 0; r--) lst[e++] = (int32_t)(k - 1);
    lc_rng shuf;
    lc_rng_seed(&shuf, fixed_shuffle_seed(spec));
    rng_shuffle_i32(&shuf, lst, E);
    gb_emits(b, head);
    for (int64_t i = 0; i < E; i++) {
        const char *w = v.w[lst[i]];
        gb_emit_sp(b, w, strlen(w)); /* the template's context follows "words." + " " */
    }
    gb_emits(b, tail);
    for (int i = 0; i < 3; i++) strcpy(outs[i], v.w[i + 1]);
    *n_entries = E;
    free(lst);
    free(v.w);
    free(v.cost);
    return LC_OK;
}

lc_status gen_fwe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    const struct tokenizer *tok = spec->tok;
    const char *ctx = strstr(FWE_TEMPLATE, " {context}");
    char head[256];
    snprintf(head, sizeof head, "%.*s", (int)(ctx - FWE_TEMPLATE), FWE_TEMPLATE);
    const char *tail = ctx + 10;
    int64_t budget = target - tcost(tok, head) - tcost(tok, tail) - tcost(tok, FWE_ANSWER_PREFIX);
    int64_t V = target / 50;
    if (V < 8) return lc_errorf(LC_EINVAL, "length %lld is too short for fwe", (long long)spec->length);
    struct gb b;
    gb_init(&b, tok, spec->want_ids, (size_t)target + 1024);
    char outs[3][8];
    int64_t E;
    lc_status st = fwe_build(spec, rng, budget, V, 6, head, tail, &b, outs, &E);
    if (st) { gb_free(&b); return st; }
    int64_t input_len = (int64_t)b.len;
    gb_emits(&b, FWE_ANSWER_PREFIX);
    snprintf(s->haystack, sizeof s->haystack, "coded");
    s->num_haystack = E;
    add_deviation(s, "fwe_exact_fit");
    st = finish_sample(s, &b, input_len);
    gb_free(&b);
    if (st) return st;
    char *o[3] = {outs[0], outs[1], outs[2]};
    return set_outputs(s, o, 3);
}
