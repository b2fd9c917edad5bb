/* test_infer.c — segmented prefill and decode (model/infer.h) against the full forward on the cpu
 * backend, and the query offset of the attention / HSA C references against the full
 * computation's rows:
 *  - attention (dense, SWA, non-causal, GQA, B = 2) and HSA (retrieve with and without Gumbel
 *    noise, softmax / stick-breaking weights, attend; per-KV-head retrieval) with queries at
 *    positions q_pos0 .. q_pos0+Lq-1 equal the same rows of the whole run; bad offsets are named;
 *    the backward references refuse an offset;
 *  - tiny models of every layer kind (swa + chunk + retrieval + hsa; dense + 2-layer encoder +
 *    stick-breaking + off-by-one + reset + per-KV retrieval + tied; swa/dense only; mamba;
 *    mamba + hsa): prefill in segments of 1, 3, 7, S, 13 tokens and the whole sequence (sizes that
 *    are and are not multiples of S and W, fed through model_prefill calls of other sizes) gives
 *    the full forward's logits at every position; decode steps after a prefill give the next
 *    positions' logits;
 *  - infer_create refuses a state that does not fit, naming its byte figure; bad arguments are
 *    rejected with messages naming them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "hsa.h"
#include "infer.h"
#include "model.h"
#include "test.h"
#ifdef _OPENMP
#include <omp.h>
#endif

static float *rnd(lc_rng *r, int64_t n) {
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    lc_fill_normal(r, x, (size_t)n, 1.0f);
    return x;
}

/* rows [p0, p0+Lq) of each batch of x [B, L, w] -> [B, Lq, w] */
static float *rows_of(const float *x, int64_t B, int64_t L, int64_t w, int64_t p0, int64_t Lq) {
    float *y = malloc(sizeof(float) * (size_t)(B * Lq * w));
    for (int64_t b = 0; b < B; b++) memcpy(y + b * Lq * w, x + (b * L + p0) * w, sizeof(float) * (size_t)(Lq * w));
    return y;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

/* ------------------------------------------------------------------ attention offset */
static void attention_offset(void) {
    t_begin("attention reference with a query offset equals the full computation's rows");
    lc_rng r;
    lc_rng_seed(&r, 101);
    const int64_t B = 2, L = 23, HQ = 4, H = 2, dh = 5;
    float *q = rnd(&r, B * L * HQ * dh), *k = rnd(&r, B * L * H * dh), *v = rnd(&r, B * L * H * dh);
    float *o = malloc(sizeof(float) * (size_t)(B * L * HQ * dh)), *lse = malloc(sizeof(float) * (size_t)(B * HQ * L));
    const int64_t ranges[][2] = {{14, 9}, {5, 7}, {0, 4}, {22, 1}, {0, 23}};
    const struct {
        int64_t W;
        int causal;
    } kinds[] = {{0, 1}, {5, 1}, {1, 1}, {0, 0}};
    for (size_t kd = 0; kd < sizeof kinds / sizeof kinds[0]; kd++) {
        struct attn_shape full = {B, L, HQ, H, dh, kinds[kd].W, kinds[kd].causal, 0, 0, 0};
        T_OK(attention_forward_ref(&full, q, k, v, o, lse));
        for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
            const int64_t p0 = ranges[ri][0], Lq = ranges[ri][1];
            struct attn_shape s = full;
            s.Lq = Lq;
            s.q_pos0 = p0;
            float *qs = rows_of(q, B, L, HQ * dh, p0, Lq), *os = malloc(sizeof(float) * (size_t)(B * Lq * HQ * dh));
            float *ls = malloc(sizeof(float) * (size_t)(B * HQ * Lq));
            T_OK(attention_forward_ref(&s, qs, k, v, os, ls));
            float *want = rows_of(o, B, L, HQ * dh, p0, Lq), *wl = rows_of(lse, B * HQ, L, 1, p0, Lq);
            T_CHECK(max_abs_diff(os, want, B * Lq * HQ * dh) == 0, "W %lld causal %d rows %lld+%lld: o differs by %g",
                    (long long)s.W, s.causal, (long long)p0, (long long)Lq, max_abs_diff(os, want, B * Lq * HQ * dh));
            T_CHECK(max_abs_diff(ls, wl, B * HQ * Lq) == 0, "W %lld rows %lld+%lld: lse differs", (long long)s.W, (long long)p0,
                    (long long)Lq);
            /* pairs: the rows' share of the whole */
            double pairs = 0;
            for (int64_t t = p0; t < p0 + Lq; t++) {
                int64_t lo = !s.causal ? 0 : (s.W > 0 && t - s.W > 0 ? t - s.W : 0), hi = s.causal ? t : L - 1;
                pairs += (double)(hi - lo + 1);
            }
            T_CHECK(attention_pairs(&s) == pairs, "attention_pairs %g, counted %g", attention_pairs(&s), pairs);
            free(qs); free(os); free(ls); free(want); free(wl);
        }
    }
    struct attn_shape s = {B, L, HQ, H, dh, 0, 1, 0, 30, 0};
    T_ERR(attention_check(&s), "Lq");
    s.Lq = 0;
    s.q_pos0 = 3;
    T_ERR(attention_check(&s), "q_pos0");
    s.Lq = 10;
    s.q_pos0 = 14;
    T_ERR(attention_check(&s), "q_pos0 + Lq");
    s.Lq = -1;
    s.q_pos0 = 0;
    T_ERR(attention_check(&s), "Lq");
    s.Lq = 5;
    s.q_pos0 = -2;
    T_ERR(attention_check(&s), "q_pos0");
    s.q_pos0 = 4;
    T_CHECK(attention_backward_ref(&s, q, k, v, o, lse, o, q, k, v) == LC_EUNSUPPORTED, "backward with an offset must refuse");
    /* the CUDA forward takes an offset (tests/gpu_attention.c); here only dh = 5 stops it */
    T_ERR(attention_cuda_supported(&s), "dh = 5");
    free(q); free(k); free(v); free(o); free(lse);
}

/* ------------------------------------------------------------------ HSA offset */
static void hsa_offset_case(const char *name, int Hr_per_kv, int weighting, int gumbel) {
    t_begin(name);
    lc_rng r;
    lc_rng_seed(&r, 202 + (uint64_t)weighting * 7 + (uint64_t)gumbel * 3 + (uint64_t)Hr_per_kv);
    struct hsa_shape f;
    memset(&f, 0, sizeof f);
    f.B = 2; f.L = 37; f.HQ = 4; f.H = 2; f.dh = 6; f.S = 4; f.K = 3; f.Hr = Hr_per_kv ? 2 : 1; f.dr = 5; f.block_q = 1;
    f.softmax1 = weighting; f.weighting = weighting; f.gumbel = gumbel; f.gumbel_seed = 99;
    const int64_t B = f.B, L = f.L, C = L / f.S, nk = f.Hr * f.K;
    float *qr = rnd(&r, B * L * f.Hr * f.dr), *lmk = rnd(&r, B * C * f.Hr * f.dr);
    float *q = rnd(&r, B * L * f.HQ * f.dh), *k = rnd(&r, B * L * f.H * f.dh), *v = rnd(&r, B * L * f.H * f.dh);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)(B * L * nk));
    float *sc = malloc(sizeof(float) * (size_t)(B * L * nk)), *w = malloc(sizeof(float) * (size_t)(B * L * nk));
    float *o = malloc(sizeof(float) * (size_t)(B * L * f.HQ * f.dh)), *lse = malloc(sizeof(float) * (size_t)(B * L * f.HQ * f.K));
    T_OK(hsa_retrieve_ref(&f, qr, lmk, idx, sc));
    T_OK(hsa_weights_forward_ref(&f, sc, w));
    T_OK(hsa_attend_forward_ref(&f, q, k, v, idx, w, o, lse));
    const int64_t ranges[][2] = {{27, 10}, {3, 9}, {0, 5}, {36, 1}};
    for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
        const int64_t p0 = ranges[ri][0], Lq = ranges[ri][1];
        struct hsa_shape s = f;
        s.Lq = Lq;
        s.q_pos0 = p0;
        float *qrs = rows_of(qr, B, L, f.Hr * f.dr, p0, Lq), *qs = rows_of(q, B, L, f.HQ * f.dh, p0, Lq);
        int32_t *ix = malloc(sizeof(int32_t) * (size_t)(B * Lq * nk));
        float *scs = malloc(sizeof(float) * (size_t)(B * Lq * nk)), *ws = malloc(sizeof(float) * (size_t)(B * Lq * nk));
        float *os = malloc(sizeof(float) * (size_t)(B * Lq * f.HQ * f.dh)), *ls = malloc(sizeof(float) * (size_t)(B * Lq * f.HQ * f.K));
        T_OK(hsa_retrieve_ref(&s, qrs, lmk, ix, scs));
        T_OK(hsa_weights_forward_ref(&s, scs, ws));
        T_OK(hsa_attend_forward_ref(&s, qs, k, v, ix, ws, os, ls));
        int same_idx = 1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < Lq * nk; j++) same_idx &= ix[b * Lq * nk + j] == idx[(b * L + p0) * nk + j];
        T_CHECK(same_idx, "rows %lld+%lld: idx differs from the full retrieval", (long long)p0, (long long)Lq);
        float *want_s = rows_of(sc, B, L, nk, p0, Lq), *want_w = rows_of(w, B, L, nk, p0, Lq);
        float *want_o = rows_of(o, B, L, f.HQ * f.dh, p0, Lq), *want_l = rows_of(lse, B, L, f.HQ * f.K, p0, Lq);
        int same_s = 1;
        for (int64_t j = 0; j < B * Lq * nk; j++) same_s &= scs[j] == want_s[j] || (isinf(scs[j]) && isinf(want_s[j]));
        T_CHECK(same_s, "rows %lld+%lld: scores differ", (long long)p0, (long long)Lq);
        T_CHECK(max_abs_diff(ws, want_w, B * Lq * nk) == 0, "rows %lld+%lld: weights differ", (long long)p0, (long long)Lq);
        T_CHECK(max_abs_diff(os, want_o, B * Lq * f.HQ * f.dh) == 0, "rows %lld+%lld: o differs by %g", (long long)p0, (long long)Lq,
                max_abs_diff(os, want_o, B * Lq * f.HQ * f.dh));
        int same_l = 1;
        for (int64_t j = 0; j < B * Lq * f.HQ * f.K; j++) same_l &= ls[j] == want_l[j] || (isinf(ls[j]) && isinf(want_l[j]));
        T_CHECK(same_l, "rows %lld+%lld: lse differs", (long long)p0, (long long)Lq);
        if (ri == 0) {
            T_CHECK(hsa_attend_backward_ref(&s, qs, k, v, ix, ws, ls, os, qs, k, v, ws) == LC_EUNSUPPORTED,
                    "attend backward with an offset must refuse");
            T_CHECK(hsa_scores_backward_ref(&s, qrs, lmk, ix, scs, qrs, lmk) == LC_EUNSUPPORTED,
                    "scores backward with an offset must refuse");
        }
        free(qrs); free(qs); free(ix); free(scs); free(ws); free(os); free(ls);
        free(want_s); free(want_w); free(want_o); free(want_l);
    }
    struct hsa_shape s = f;
    s.Lq = 38;
    T_ERR(hsa_check(&s), "Lq");
    s.Lq = 0;
    s.q_pos0 = 1;
    T_ERR(hsa_check(&s), "q_pos0");
    s.Lq = 8;
    s.q_pos0 = 30;
    T_ERR(hsa_check(&s), "q_pos0 + Lq");
    s.q_pos0 = 8;
    s.block_q = s.S;
    T_ERR(hsa_check(&s), "block_q");
    free(qr); free(lmk); free(q); free(k); free(v); free(idx); free(sc); free(w); free(o); free(lse);
}

/* ------------------------------------------------------------------ models */
static const char *cfg_swa_hsa =
    "[model]\nvocab = 32\nd = 32\ncontext = 64\ntied_embeddings = false\nlayers = swa chunk (retrieval hsa swa)*2\n"
    "[attn]\nheads = 4\nkv_heads = 2\ndh = 8\nW = 6\nmlp = 40\nqk_norm = true\n"
    "[encoder]\nlayers = 1\nheads = 2\nkv_heads = 2\ndh = 8\nmlp = 40\ncls = true\nqkv_bias = true\nqk_norm = true\n"
    "[hsa]\nS = 8\nK = 3\nd_r = 16\nretrieval_heads = single\nHQ = 4\nH = 2\ndh = 8\nweights = softmax\nqk_norm = true\nmlp = 40\nresidual = bypass\n"
    "pos_decay = true\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.2\npos_decay = 0.4\n";

static const char *cfg_variants =
    "[model]\nvocab = 32\nd = 32\ncontext = 64\ntied_embeddings = true\nlayers = dense chunk (retrieval hsa hsa)*1 dense\n"
    "[attn]\nheads = 2\nkv_heads = 2\ndh = 16\nmlp = 40\nqk_norm = false\n"
    "[encoder]\nlayers = 2\nheads = 2\nkv_heads = 1\ndh = 8\nmlp = 40\ncls = true\nqkv_bias = false\nqk_norm = false\n"
    "[hsa]\nS = 4\nK = 5\nd_r = 16\nretrieval_heads = per_kv\nHQ = 4\nH = 2\ndh = 8\nweights = stickbreak\noff_by_one = true\nqk_norm = false\nmlp = 40\nresidual = reset\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.2\n";

static const char *cfg_swa_dense =
    "[model]\nvocab = 40\nd = 24\ncontext = 64\ntied_embeddings = false\nlayers = swa dense swa\n"
    "[attn]\nheads = 3\nkv_heads = 1\ndh = 8\nW = 5\nmlp = 36\nqk_norm = true\n"
    "[init]\nstd = 0.2\n";

static const char *cfg_mamba =
    "[model]\nvocab = 32\nd = 16\ncontext = 64\ntied_embeddings = true\nlayers = mamba*2\n"
    "[mamba]\nheads = 2\nhead_dim = 8\nstate = 4\nexpand = 1\nconv = 4\nngroups = 1\n"
    "[init]\nstd = 0.2\n";

static const char *cfg_mamba_hsa =
    "[model]\nvocab = 32\nd = 16\ncontext = 60\ntied_embeddings = false\nlayers = mamba chunk retrieval hsa mamba swa\n"
    "[attn]\nheads = 2\nkv_heads = 2\ndh = 8\nW = 4\nmlp = 24\nqk_norm = true\n"
    "[mamba]\nheads = 2\nhead_dim = 8\nstate = 4\nexpand = 1\nconv = 4\nngroups = 1\n"
    "[encoder]\nlayers = 1\nheads = 2\nkv_heads = 2\ndh = 8\nmlp = 24\ncls = true\nqkv_bias = true\nqk_norm = true\n"
    "[hsa]\nS = 5\nK = 2\nd_r = 8\nretrieval_heads = single\nHQ = 2\nH = 1\ndh = 8\nweights = softmax\nqk_norm = true\nmlp = 24\nresidual = bypass\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.2\n";

static int make_model(const char *name, const char *text, lc_model *m) {
    lc_config cfg;
    if (lc_config_parse(text, name, &cfg) != LC_OK) return T_CHECK(0, "config: %s", lc_last_error()), 0;
    return T_OK(model_create(m, &cfg, backend_cpu(), 5));
}

/* The full forward's logits [T, V] for tokens [T+1]. */
static int full_logits(lc_model *m, int64_t T, const int32_t *tok, float *lg) {
    float loss = 0;
    return T_OK(model_step(m, 1, T, tok, NULL, 0, &loss)) && T_OK(model_logits(m, lg));
}

static void model_case(const char *name, const char *text, int64_t T) {
    t_begin(name);
    lc_model m;
    if (!make_model(name, text, &m)) return;
    const int64_t V = m.cfg.vocab;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(T + 1));
    lc_rng r;
    lc_rng_seed(&r, 77);
    for (int64_t i = 0; i <= T; i++) tok[i] = (int32_t)lc_rng_below(&r, (uint64_t)V);
    float *want = malloc(sizeof(float) * (size_t)(T * V)), *got = malloc(sizeof(float) * (size_t)(T * V));
    if (!full_logits(&m, T, tok, want)) goto out;
    const int64_t S = m.cfg.S > 0 ? m.cfg.S : 8;
    const int64_t segs[] = {1, 3, 7, S, 13, T};
    const int64_t feeds[] = {5, 11, 2, T, 4, 9}; /* model_prefill call sizes (split again by seg) */
    for (size_t si = 0; si < sizeof segs / sizeof segs[0]; si++) {
        lc_infer *st = NULL;
        if (!T_OK(infer_create(&st, &m, T + 4, segs[si], 0))) break;
        memset(got, 0, sizeof(float) * (size_t)(T * V));
        for (int64_t i = 0; i < T;) {
            int64_t k = feeds[si] < T - i ? feeds[si] : T - i;
            if (!T_OK(model_prefill(&m, st, tok + i, k, got + i * V))) break;
            i += k;
        }
        T_CHECK(infer_pos(st) == T, "seg %lld: position %lld after %lld tokens", (long long)segs[si], (long long)infer_pos(st),
                (long long)T);
        double e = t_rel_err(got, want, (size_t)(T * V)), mx = max_abs_diff(got, want, T * V);
        T_CHECK(e < 2e-5 && mx < 1e-4, "seg %lld (calls of %lld): logits rel err %.3e, max abs diff %.3e", (long long)segs[si],
                (long long)feeds[si], e, mx);
        /* the same state after a reset: prefill P tokens, then decode the rest one by one (for
         * three of the segment sizes: seg = 1 is already one-token steps) */
        if (si % 2 == 0) {
            infer_destroy(st);
            continue;
        }
        const int64_t P = T - 6 - (int64_t)si;
        T_OK(infer_reset(st));
        T_OK(model_prefill(&m, st, tok, P, NULL));
        float *lg = malloc(sizeof(float) * (size_t)V);
        double worst = 0;
        for (int64_t t = P; t < T; t++) {
            if (!T_OK(model_decode_step(&m, st, tok[t], lg))) break;
            double d = max_abs_diff(lg, want + t * V, V);
            if (!(d <= worst)) worst = d;
        }
        T_CHECK(worst < 1e-4, "seg %lld: decode after a prefill of %lld: max abs diff %.3e", (long long)segs[si], (long long)P, worst);
        free(lg);
        infer_destroy(st);
    }
out:
    free(tok);
    free(want);
    free(got);
    model_destroy(&m);
}

static void memory_and_args(void) {
    t_begin("infer_create refuses a state that does not fit (naming the figure); bad arguments are named");
    lc_model m;
    if (!make_model("swa-hsa", cfg_swa_hsa, &m)) return;
    int64_t need = 0;
    T_OK(infer_bytes(&m, 100, 16, &need));
    T_CHECK(need > lc_config_state_bytes(&m.cfg, 100, 4), "infer_bytes %lld must exceed the persistent state %lld", (long long)need,
            (long long)lc_config_state_bytes(&m.cfg, 100, 4));
    int64_t need2 = 0;
    T_OK(infer_bytes(&m, 100000, 16, &need2));
    T_CHECK(need2 > need + 100000 / 8 * 8 * 2 * 8 * 4, "the chunk store grows with the context: %lld vs %lld", (long long)need2,
            (long long)need);
    char figure[64];
    snprintf(figure, sizeof figure, "needs %lld bytes", (long long)need);
    lc_infer *st = (lc_infer *)&m; /* must be overwritten with NULL on failure */
    T_ERR(infer_create(&st, &m, 100, 16, need - 1), figure);
    T_CHECK(st == NULL, "a refused infer_create must leave *out NULL");
    T_ERR(infer_create(&st, &m, 100, 16, need - 1), "free");
    T_OK(infer_create(&st, &m, 100, 16, need));
    infer_destroy(st);
    /* a context far beyond this machine's memory, measured free memory */
    if (infer_free_bytes(&m) > 0) T_ERR(infer_create(&st, &m, (int64_t)1 << 38, 64, 0), "are free");
    T_ERR(infer_create(&st, &m, 0, 16, 0), "max_len");
    T_ERR(infer_create(&st, &m, 100, 0, 0), "seg");
    T_ERR(infer_create(&st, &m, ((int64_t)1 << 40) + 1, 16, 0), "max_len");
    T_OK(infer_create(&st, &m, 20, 8, 0));
    int32_t tok[30];
    for (int i = 0; i < 30; i++) tok[i] = i % 32;
    T_ERR(model_prefill(&m, st, tok, 21, NULL), "max_len");
    T_ERR(model_prefill(&m, st, tok, -1, NULL), "n = -1");
    T_ERR(model_prefill(&m, st, NULL, 3, NULL), "tokens");
    tok[2] = 32;
    T_ERR(model_prefill(&m, st, tok, 5, NULL), "vocabulary");
    tok[2] = 2;
    T_OK(model_prefill(&m, st, tok, 20, NULL));
    T_ERR(model_decode_step(&m, st, 1, NULL), "max_len");
    lc_model other;
    memset(&other, 0, sizeof other);
    T_ERR(model_prefill(&other, st, tok, 1, NULL), "not created for this model");
    infer_destroy(st);
    model_destroy(&m);
}

int main(void) {
#ifdef _OPENMP
    /* The model cases make thousands of tiny reference calls, each an OpenMP region; on a loaded
     * 2-core CI machine (and under ASan) spinning team barriers make that 100x slower. The
     * references are deterministic whatever the thread count (their own tests run threaded). */
    omp_set_num_threads(1);
#endif
    attention_offset();
    hsa_offset_case("HSA reference with a query offset equals the full rows (single retrieval head, softmax)", 0, 0, 0);
    hsa_offset_case("HSA reference with a query offset equals the full rows (per-KV retrieval, stick-breaking, off-by-one)", 1, 1, 0);
    hsa_offset_case("HSA reference with a query offset equals the full rows (Gumbel selection noise)", 0, 0, 1);
    model_case("segmented prefill and decode = full forward: swa + chunk + (retrieval hsa swa)*2", cfg_swa_hsa, 45);
    model_case("segmented prefill and decode = full forward: dense, 2-layer encoder, stick-breaking, reset, per-KV, tied", cfg_variants,
               30);
    model_case("segmented prefill and decode = full forward: swa dense swa (GQA, W = 5)", cfg_swa_dense, 29);
    model_case("segmented prefill and decode = full forward: mamba*2", cfg_mamba, 31);
    model_case("segmented prefill and decode = full forward: mamba chunk retrieval hsa mamba swa (S = 5)", cfg_mamba_hsa, 37);
    memory_and_args();
    return t_finish();
}
