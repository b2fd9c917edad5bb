/* mqar.c — multi-query associative recall after Zoology (ruler.md section 7.3), as token ids:
 * keys from [1, V/2), values from [V/2, V) (V = the tokenizer's vocabulary, or --mqar-vocab),
 * N pairs drawn without replacement: "k1 v1 k2 v2 ... kN vN", then a query region where query
 * j (key of pair perm[j mod N]) sits at offset 2*gap_j, gaps distinct in [0, (L - 2N)/2) drawn
 * with p(g) ~ g^(a-1), a = 0.01 (inverse CDF: g = floor(space * u^(1/a)); duplicates redrawn,
 * uniform after 64 failed tries). Every other query-region token is uniform random in [0, V).
 * Targets: the model's next-token prediction at each query key must be its value (Zoology's
 * labels); there are as many queries as requested, so one sequence carries many supervised
 * positions (per-token loss weights: suite_loss_weights).
 * Targets are listed in sequence order (target_pos ascending), and needles[j] is the span of the
 * key-value pair that query j asks for, tokens [2p, 2p+2) of pair p: the answer location for the
 * retrieval diagnostics. needles[0] is thus the pair behind the first supervised position (the
 * one model/train.c diagnoses); with more queries than pairs, needles repeat. */
#include <math.h>
#include <stdio.h>

#include "gen.h"

struct mqar_query { int64_t pos; int pair; };
static int query_cmp(const void *a, const void *b) {
    int64_t x = ((const struct mqar_query *)a)->pos, y = ((const struct mqar_query *)b)->pos;
    return (x > y) - (x < y);
}

lc_status gen_mqar(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    const struct tokenizer *tok = spec->tok;
    int64_t V = spec->mqar_vocab > 0 ? spec->mqar_vocab : tok->vocab_size;
    int N = spec->mqar_kv > 0 ? spec->mqar_kv : 64;
    int Q = spec->mqar_queries > 0 ? spec->mqar_queries : N;
    LC_REQUIRE(V >= 8, "mqar vocabulary %lld is too small", (long long)V);
    LC_REQUIRE(N < V / 2, "mqar: %d key-value pairs need a vocabulary above %d (have %lld)", N, 2 * N, (long long)V);
    int64_t L = target, space = (L - 2 * (int64_t)N) / 2;
    LC_REQUIRE(space >= Q, "mqar: length %lld cannot hold %d pairs and %d queries", (long long)L, N, Q);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)L);
    int64_t *gaps = malloc(sizeof(int64_t) * (size_t)Q);
    int32_t *keys = malloc(sizeof(int32_t) * (size_t)N), *vals = malloc(sizeof(int32_t) * (size_t)N);
    struct strset used = {0};
    lc_status st = LC_OK;
    if (!ids || !gaps || !keys || !vals) { st = lc_errorf(LC_ENOMEM, "out of memory for a %lld-token mqar sample", (long long)L); goto done; }
    int64_t half = V / 2;
    for (int i = 0; i < N; i++) { /* distinct keys and values by rejection (N < V/2) */
        int dup;
        do {
            keys[i] = (int32_t)rng_int(rng, 1, half - 1);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= keys[j] == keys[i];
        } while (dup);
        do {
            vals[i] = (int32_t)rng_int(rng, half, V - 1);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= vals[j] == vals[i];
        } while (dup);
        ids[2 * i] = keys[i];
        ids[2 * i + 1] = vals[i];
    }
    for (int64_t t = 2 * (int64_t)N; t < L; t++) ids[t] = (int32_t)lc_rng_below(rng, (uint64_t)V);
    for (int j = 0; j < Q; j++) {
        int64_t g = 0;
        int r = 0;
        for (int tries = 0; tries < 64 && r != 1; tries++) {
            g = (int64_t)((double)space * pow(lc_rng_uniform(rng), 100.0));
            if (g >= space) g = space - 1;
            r = strset_add(&used, (const char *)&g, sizeof g);
        }
        while (r == 0) {
            g = (int64_t)lc_rng_below(rng, (uint64_t)space);
            r = strset_add(&used, (const char *)&g, sizeof g);
        }
        if (r < 0) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto done; }
        gaps[j] = g;
    }
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)N), *pair_byte = malloc(sizeof(int64_t) * ((size_t)N + 1));
    struct mqar_query *qs = malloc(sizeof(struct mqar_query) * (size_t)Q);
    s->target_pos = malloc(sizeof(int64_t) * (size_t)Q);
    s->target_id = malloc(sizeof(int32_t) * (size_t)Q);
    s->needles = malloc(sizeof(struct suite_span) * (size_t)Q);
    if (!perm || !pair_byte || !qs || !s->target_pos || !s->target_id || !s->needles) {
        free(perm);
        free(pair_byte);
        free(qs);
        st = lc_errorf(LC_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < N; i++) perm[i] = i;
    rng_shuffle_i64(rng, perm, N);
    for (int j = 0; j < Q; j++) {
        int p = (int)perm[j % N];
        int64_t t = 2 * (int64_t)N + 2 * gaps[j];
        ids[t] = keys[p];
        qs[j].pos = t;
        qs[j].pair = p;
    }
    /* sequence order (positions are distinct); byte offset of pair i = decoded length of its prefix
     * (decoding is per-token concatenation, as everywhere in the suites) */
    qsort(qs, (size_t)Q, sizeof *qs, query_cmp);
    pair_byte[0] = 0;
    for (int i = 0; i < N; i++) pair_byte[i + 1] = pair_byte[i] + tok->decode(tok, ids + 2 * i, 2, NULL, 0);
    for (int j = 0; j < Q; j++) {
        int p = qs[j].pair;
        s->target_pos[j] = qs[j].pos;
        s->target_id[j] = vals[p];
        s->needles[j] = (struct suite_span){2 * (int64_t)p, 2 * (int64_t)p + 2, pair_byte[p], pair_byte[p + 1]};
    }
    free(perm);
    free(pair_byte);
    free(qs);
    s->n_targets = Q;
    s->n_needles = Q;
    s->depth = (double)s->needles[0].tok0 / (double)L;
    /* text = decoding of the ids; the ids array itself becomes the sample's (no copy: memory
     * stays at the sample size) */
    int64_t tl = tok->decode(tok, ids, (size_t)L, NULL, 0);
    s->text = malloc((size_t)tl + 1);
    if (!s->text) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto done; }
    tok->decode(tok, ids, (size_t)L, s->text, (size_t)tl);
    s->text[tl] = 0;
    s->text_len = s->input_len = tl;
    s->prompt_tokens = L;
    if (spec->want_ids) {
        s->ids = ids;
        s->n_ids = L;
        ids = NULL;
    }
    snprintf(s->haystack, sizeof s->haystack, "random_tokens");
    s->num_haystack = N;
done:
    free(ids);
    free(gaps);
    free(keys);
    free(vals);
    strset_free(&used);
    return st;
}
