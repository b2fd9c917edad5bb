/* test_infer_tail.c — the cpu checks of model/infer.h beyond test_infer.c:
 *  - exact tail mode (model_prefill_tail): the logits of the last answer rows equal the full
 *    forward's for three layouts (swa + chunk + (retrieval hsa swa)*2: the upper stack is 4 layers
 *    of bounded reach; dense at the end: no saving, still exact; mamba + hsa + swa at the top),
 *    for segment sizes that put the tail start inside a segment, on a segment boundary and in
 *    the first segment; decode after a tail prefill goes on exactly; the rows figure and the
 *    split are what the layout implies; bad arguments are named;
 *  - one-token retrieval split over store partitions (infer_set_split) and dense attention split
 *    over key partitions (infer_set_attn_split): decode steps with the splits forced on small
 *    stores / caches (partitions of ragged sizes, a remainder partition) give the full forward's
 *    logits;
 *  - model_prefill_last gives the last row of the full forward's logits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "model.h"
#include "test.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static const char *cfg_swa_hsa =
    "[model]\nvocab = 32\nd = 32\ncontext = 128\ntied_embeddings = false\nlayers = swa chunk (retrieval hsa swa)*2\n"
    "[attn]\nheads = 4\nkv_heads = 2\ndh = 8\nW = 6\nmlp = 40\nqk_norm = true\n"
    "[encoder]\nlayers = 1\nheads = 2\nkv_heads = 2\ndh = 8\nmlp = 40\ncls = true\nqkv_bias = true\nqk_norm = true\n"
    "[hsa]\nS = 4\nK = 3\nd_r = 16\nretrieval_heads = single\nHQ = 4\nH = 2\ndh = 8\nweights = softmax\nqk_norm = true\nmlp = 40\n"
    "residual = bypass\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.2\n";

static const char *cfg_dense_top =
    "[model]\nvocab = 32\nd = 32\ncontext = 128\ntied_embeddings = true\nlayers = swa chunk (retrieval hsa swa)*1 dense\n"
    "[attn]\nheads = 2\nkv_heads = 2\ndh = 16\nW = 5\nmlp = 40\nqk_norm = false\n"
    "[encoder]\nlayers = 2\nheads = 2\nkv_heads = 1\ndh = 8\nmlp = 40\ncls = true\nqkv_bias = false\nqk_norm = false\n"
    "[hsa]\nS = 4\nK = 5\nd_r = 16\nretrieval_heads = per_kv\nHQ = 4\nH = 2\ndh = 8\nweights = stickbreak\noff_by_one = true\n"
    "qk_norm = false\nmlp = 40\nresidual = reset\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.2\n";

static const char *cfg_mamba_hsa =
    "[model]\nvocab = 32\nd = 16\ncontext = 125\ntied_embeddings = false\nlayers = mamba chunk retrieval hsa mamba swa retrieval hsa\n"
    "[attn]\nheads = 2\nkv_heads = 2\ndh = 8\nW = 4\nmlp = 24\nqk_norm = true\n"
    "[mamba]\nheads = 2\nhead_dim = 8\nstate = 4\nexpand = 1\nconv = 4\nngroups = 1\n"
    "[encoder]\nlayers = 1\nheads = 2\nkv_heads = 2\ndh = 8\nmlp = 24\ncls = true\nqkv_bias = true\nqk_norm = true\n"
    "[hsa]\nS = 5\nK = 2\nd_r = 8\nretrieval_heads = single\nHQ = 2\nH = 1\ndh = 8\nweights = softmax\nqk_norm = true\nmlp = 24\n"
    "residual = bypass\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.2\n";

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static int make_model(const char *name, const char *text, lc_model *m) {
    lc_config cfg;
    if (lc_config_parse(text, name, &cfg) != LC_OK) return T_CHECK(0, "config: %s", lc_last_error()), 0;
    return T_OK(model_create(m, &cfg, backend_cpu(), 9));
}

/* tokens [T+1] and the full forward's logits [T, V] */
static float *full(lc_model *m, int64_t T, int32_t **tok_out) {
    const int64_t V = m->cfg.vocab;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(T + 1));
    lc_rng r;
    lc_rng_seed(&r, 4242);
    for (int64_t i = 0; i <= T; i++) tok[i] = (int32_t)lc_rng_below(&r, (uint64_t)V);
    float *lg = malloc(sizeof(float) * (size_t)(T * V)), loss = 0;
    T_OK(model_step(m, 1, T, tok, NULL, 0, &loss));
    T_OK(model_logits(m, lg));
    *tok_out = tok;
    return lg;
}

static void tail_case(const char *name, const char *text, int64_t T, int want_split, int64_t want_reach) {
    t_begin(name);
    lc_model m;
    if (!make_model(name, text, &m)) return;
    const int64_t V = m.cfg.vocab;
    int32_t *tok = NULL;
    float *want = full(&m, T, &tok);
    int64_t rows = 0;
    int split = -1;
    T_OK(infer_tail_rows(&m, 3, &rows, &split));
    T_CHECK(split == want_split && rows == 3 + want_reach, "split %d rows %lld, want %d and %lld", split, (long long)rows, want_split,
            (long long)(3 + want_reach));
    const int64_t A[] = {1, 3, 7};
    const int64_t segs[] = {1, 4, 7, 16, T};
    float *got = malloc(sizeof(float) * (size_t)(7 * V)), *lg = malloc(sizeof(float) * (size_t)V);
    for (size_t ai = 0; ai < sizeof A / sizeof A[0]; ai++)
        for (size_t si = 0; si < sizeof segs / sizeof segs[0]; si++) {
            lc_infer *st = NULL;
            if (!T_OK(infer_create(&st, &m, T + 8, segs[si], 0))) continue;
            const int64_t P = T - 4; /* tail prefill of P tokens, then 4 decode steps */
            memset(got, 0, sizeof(float) * (size_t)(7 * V));
            T_OK(model_prefill_tail(&m, st, tok, P, A[ai], got));
            const double e = max_abs_diff(got, want + (P - A[ai]) * V, A[ai] * V);
            T_CHECK(e < 1e-4, "answer rows %lld, seg %lld: tail logits differ from the full forward by %.3e", (long long)A[ai],
                    (long long)segs[si], e);
            T_CHECK(infer_pos(st) == P, "position %lld after a tail prefill of %lld", (long long)infer_pos(st), (long long)P);
            double worst = 0;
            for (int64_t t = P; t < T; t++) {
                if (!T_OK(model_decode_step(&m, st, tok[t], lg))) break;
                const double d = max_abs_diff(lg, want + t * V, V);
                if (!(d <= worst)) worst = d;
            }
            T_CHECK(worst < 1e-4, "answer rows %lld, seg %lld: decode after a tail prefill differs by %.3e", (long long)A[ai],
                    (long long)segs[si], worst);
            /* a tail prefill needs a fresh sequence */
            T_ERR(model_prefill_tail(&m, st, tok, 5, 1, NULL), "reset");
            T_OK(infer_reset(st));
            T_ERR(model_prefill_tail(&m, st, tok, 5, 6, NULL), "answer_rows");
            T_ERR(model_prefill_tail(&m, st, tok, 5, 0, NULL), "answer_rows");
            infer_destroy(st);
        }
    free(got);
    free(lg);
    free(tok);
    free(want);
    model_destroy(&m);
}

/* Decode with the retrieval split forced: min_chunks 2 and 2..5 partitions of a store of up to
 * T / S chunks (ragged partition sizes and remainders). */
static void split_case(const char *name, const char *text, int64_t T) { /* and the dense attention split */
    t_begin(name);
    lc_model m;
    if (!make_model(name, text, &m)) return;
    const int64_t V = m.cfg.vocab;
    int32_t *tok = NULL;
    float *want = full(&m, T, &tok), *lg = malloc(sizeof(float) * (size_t)V);
    for (int64_t parts = 1; parts <= 5; parts++) {
        lc_infer *st = NULL;
        if (!T_OK(infer_create(&st, &m, T, 8, 0))) continue;
        T_ERR(infer_set_split(st, -1, 2), "min_chunks");
        T_ERR(infer_set_split(st, 2, 0), "parts");
        T_OK(infer_set_split(st, 2, parts));
        T_ERR(infer_set_attn_split(st, 4, 513), "parts");
        T_OK(infer_set_attn_split(st, 4, parts)); /* the dense layer of cfg_dense_top */
        const int64_t P = 3;
        T_OK(model_prefill(&m, st, tok, P, NULL));
        double worst = 0;
        for (int64_t t = P; t < T; t++) {
            if (!T_OK(model_decode_step(&m, st, tok[t], lg))) break;
            const double d = max_abs_diff(lg, want + t * V, V);
            if (!(d <= worst)) worst = d;
        }
        T_CHECK(worst < 1e-4, "%lld partitions: decode logits differ from the full forward by %.3e", (long long)parts, worst);
        /* model_prefill_last: only the last row's logits */
        T_OK(infer_reset(st));
        T_OK(model_prefill_last(&m, st, tok, T - 1, lg));
        const double d = max_abs_diff(lg, want + (T - 2) * V, V);
        T_CHECK(d < 1e-4, "model_prefill_last: last row differs by %.3e", d);
        infer_destroy(st);
    }
    free(lg);
    free(tok);
    free(want);
    model_destroy(&m);
}

int main(void) {
#ifdef _OPENMP
    omp_set_num_threads(1); /* thousands of tiny reference calls: see test_infer.c */
#endif
    tail_case("tail mode = full forward on the answer rows: swa chunk (retrieval hsa swa)*2", cfg_swa_hsa, 61, 2, 12);
    tail_case("tail mode = full forward on the answer rows: dense on top (no saving, still exact)", cfg_dense_top, 40, 6, 0);
    tail_case("tail mode = full forward on the answer rows: mamba chunk retrieval hsa mamba swa retrieval hsa", cfg_mamba_hsa, 47, 5,
              4);
    split_case("one-token retrieval split over store partitions = full forward (single retrieval head, S = 4)", cfg_swa_hsa, 70);
    split_case("one-token retrieval and dense attention splits = full forward (per-KV retrieval heads, stick-breaking, dense on top)",
               cfg_dense_top, 50);
    return t_finish();
}
