/* gpu_hsa.c — CUDA HSA kernels (kernels/hsa.cu) against the C reference (kernels/hsa_ref.c).
 *
 * Inputs are random normals rounded to bf16; the reference gets the same rounded values in fp32,
 * so differences come from the kernels' bf16 intermediates (P, dZ) and summation order only.
 * Outputs are poisoned with NaN before every call, so an unwritten element fails.
 *  - weights fwd/bwd (softmax, stick-breaking): rel err <= 1e-5.
 *  - retrieval: per row the structure (count, order, invalid slots) must be exact; each selected
 *    score must equal the exact (double) score within 1e-4; the selection must be a top-k up to
 *    that tolerance (no unselected key beats a selected one by more); and at least 99% of rows must
 *    select exactly the reference's chunks (bf16 inputs are shared, so only fp32 summation-order
 *    near-ties may differ). With and without Gumbel noise, HSA and GCA rows.
 *  - attend forward: o rel err <= 1e-2, lse |diff| <= 1e-2 on valid slots, -inf on invalid.
 *  - attend backward: dq, dk, dv rel err <= 2e-2, dw rel err <= 1e-2; a second run is bitwise equal.
 *  - scores backward: dq_r rel err <= 1e-4 (dlmk uses atomics: checked against the reference).
 * Shapes: ragged L, K larger than the visible chunks, G = 1, 3, 4, 16, H = 2 with Hr = 1 and H,
 * softmax1 on/off, both weightings, block_q 1 and S, S 32/64/128, dh 32/64/128, K up to 64.
 * Every backward (LONGCTX_HSA_BWD = tok, t15, t11; t11 the default where it fits) runs the same checks on
 * G = 1, 4, 16, 32 (test_bwd_variants). `gpu_hsa bwd` runs the backward tests alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "device.h"
#include "hsa.h"
#include "test.h"

static struct hsa_shape mk(int64_t B, int64_t L, int64_t HQ, int64_t H, int64_t dh, int64_t S, int64_t K,
                           int64_t Hr, int64_t dr, int64_t block_q, int softmax1, int weighting) {
    struct hsa_shape s;
    memset(&s, 0, sizeof s);
    s.B = B, s.L = L, s.HQ = HQ, s.H = H, s.dh = dh, s.S = S, s.K = K, s.Hr = Hr, s.dr = dr;
    s.block_q = block_q, s.softmax1 = softmax1, s.weighting = weighting;
    return s;
}

/* query-side sizes follow the query range (Lq rows with an offset), k, v and landmarks all L */
static int64_t n_qr(const struct hsa_shape *s) { return s->B * hsa_num_qrows(s) * s->Hr * s->dr; }
static int64_t n_lmk(const struct hsa_shape *s) { return s->B * hsa_num_chunks(s) * s->Hr * s->dr; }
static int64_t n_q(const struct hsa_shape *s) { return s->B * hsa_q_len(s) * s->HQ * s->dh; }
static int64_t n_kv(const struct hsa_shape *s) { return s->B * s->L * s->H * s->dh; }
static int64_t n_slots(const struct hsa_shape *s) { return s->B * hsa_num_qrows(s) * s->Hr * s->K; }
static int64_t n_lse(const struct hsa_shape *s) { return s->B * hsa_q_len(s) * s->HQ * s->K; }
static struct hsa_shape with_offset(struct hsa_shape s, int64_t q_pos0, int64_t Lq) {
    s.q_pos0 = q_pos0, s.Lq = Lq;
    return s;
}

/* random normals, rounded to bf16 in place; bf16 copy in *hb */
static float *rand_bf16(lc_rng *r, int64_t n, float scale, bf16_t **hb) {
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    *hb = malloc(sizeof(bf16_t) * (size_t)(n ? n : 1));
    lc_fill_normal(r, x, (size_t)n, scale);
    for (int64_t i = 0; i < n; i++) {
        (*hb)[i] = f32_to_bf16(x[i]);
        x[i] = bf16_to_f32((*hb)[i]);
    }
    return x;
}

static void *dev_up(const void *h, size_t bytes) {
    void *d = lc_cuda_malloc(bytes, "test input");
    if (d && h) lc_cuda_memcpy_h2d(d, h, bytes);
    return d;
}
static void *dev_poison(size_t bytes) {
    void *d = lc_cuda_malloc(bytes, "test output");
    if (d) lc_cuda_memset(d, 0xff, bytes); /* NaN for fp32 and bf16, -1 for int32 */
    return d;
}
static float *down_f32(const void *d, int64_t n) {
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    lc_cuda_memcpy_d2h(h, d, sizeof(float) * (size_t)n);
    return h;
}
static float *down_bf16(const void *d, int64_t n) {
    bf16_t *t = malloc(sizeof(bf16_t) * (size_t)(n ? n : 1));
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    lc_cuda_memcpy_d2h(t, d, sizeof(bf16_t) * (size_t)n);
    bf16_to_f32_array(t, h, (size_t)n);
    free(t);
    return h;
}

static char case_name[320];
static const char *variant_tag = ""; /* forward kernel forced through LONGCTX_HSA_FWD, if any */
static const char *name_of(const char *what, const struct hsa_shape *s) {
    snprintf(case_name, sizeof case_name,
             "%s B=%lld L=%lld HQ=%lld H=%lld dh=%lld S=%lld K=%lld Hr=%lld dr=%lld bq=%lld sm1=%d w=%d gum=%d%s", what,
             (long long)s->B, (long long)s->L, (long long)s->HQ, (long long)s->H, (long long)s->dh, (long long)s->S,
             (long long)s->K, (long long)s->Hr, (long long)s->dr, (long long)s->block_q, s->softmax1, s->weighting,
             s->gumbel, hsa_has_offset(s) ? " (offset)" : "");
    if (hsa_has_offset(s)) {
        size_t n = strlen(case_name);
        snprintf(case_name + n, sizeof case_name - n, " q_pos0=%lld Lq=%lld", (long long)s->q_pos0, (long long)s->Lq);
    }
    if (*variant_tag) {
        size_t n = strlen(case_name);
        snprintf(case_name + n, sizeof case_name - n, " [variant %s]", variant_tag);
    }
    return case_name;
}

/* ---------------- weights ---------------- */

static void test_weights(int weighting) {
    struct hsa_shape s = mk(2, 700, 4, 1, 32, 32, 16, 1, 32, 1, 0, weighting);
    t_begin(name_of("weights fwd+bwd", &s));
    lc_rng r;
    lc_rng_seed(&r, 11 + weighting);
    const int64_t n = n_slots(&s);
    float *sc = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n);
    lc_fill_normal(&r, sc, (size_t)n, 3.0f);
    lc_fill_normal(&r, g, (size_t)n, 1.0f);
    for (int64_t i = 0; i < n; i++)
        if (lc_rng_below(&r, 5) == 0) sc[i] = -INFINITY;
    for (int64_t i = 0; i < s.K; i++) sc[3 * s.K + i] = -INFINITY; /* an all-invalid row */
    sc[7] = 40.0f;                                                    /* past the softplus threshold */
    float *w_ref = malloc(sizeof(float) * n), *ds_ref = malloc(sizeof(float) * n);
    T_OK(hsa_weights_forward_ref(&s, sc, w_ref));
    T_OK(hsa_weights_backward_ref(&s, sc, w_ref, g, ds_ref));
    float *d_sc = dev_up(sc, sizeof(float) * n), *d_g = dev_up(g, sizeof(float) * n);
    float *d_w = dev_poison(sizeof(float) * n), *d_ds = dev_poison(sizeof(float) * n);
    T_OK(hsa_weights_forward_cuda(&s, d_sc, d_w, NULL));
    T_OK(hsa_weights_backward_cuda(&s, d_sc, d_w, d_g, d_ds, NULL));
    T_OK(lc_cuda_sync());
    float *w = down_f32(d_w, n), *ds = down_f32(d_ds, n);
    T_CLOSE(w, w_ref, (size_t)n, 1e-5, "w");
    T_CLOSE(ds, ds_ref, (size_t)n, 1e-5, "dscore");
    int zero_ok = 1;
    for (int64_t i = 0; i < n; i++)
        if (sc[i] == -INFINITY && (w[i] != 0.0f || ds[i] != 0.0f)) zero_ok = 0;
    T_CHECK(zero_ok, "invalid slots must get w = 0 and dscore = 0");
    free(sc), free(g), free(w_ref), free(ds_ref), free(w), free(ds);
    lc_cuda_free(d_sc), lc_cuda_free(d_g), lc_cuda_free(d_w), lc_cuda_free(d_ds);
}

/* ---------------- retrieval ---------------- */

static void test_retrieve(struct hsa_shape s, uint64_t seed) {
    t_begin(name_of("retrieve", &s));
    lc_rng r;
    lc_rng_seed(&r, seed);
    bf16_t *hq, *hl;
    float *qr = rand_bf16(&r, n_qr(&s), 1.0f, &hq), *lmk = rand_bf16(&r, n_lmk(&s), 1.0f, &hl);
    const int64_t ns = n_slots(&s), Lr = hsa_num_qrows(&s), C = hsa_num_chunks(&s), K = s.K, dr = s.dr;
    const int64_t p0 = hsa_q_pos0(&s), Lr_all = hsa_num_rows(&s); /* offset: local row r is row p0 + r */
    int32_t *idx_ref = malloc(sizeof(int32_t) * ns);
    float *sc_ref = malloc(sizeof(float) * ns);
    if (!T_OK(hsa_retrieve_ref(&s, qr, lmk, idx_ref, sc_ref))) return;
    void *d_q = dev_up(hq, sizeof(bf16_t) * n_qr(&s)), *d_l = dev_up(hl, sizeof(bf16_t) * n_lmk(&s));
    int32_t *d_idx = dev_poison(sizeof(int32_t) * ns);
    float *d_sc = dev_poison(sizeof(float) * ns);
    size_t wsb = hsa_retrieve_workspace_cuda(&s);
    void *d_ws = wsb ? lc_cuda_malloc(wsb, "ws") : NULL;
    T_OK(hsa_retrieve_cuda(&s, d_q, d_l, d_idx, d_sc, d_ws, NULL));
    T_OK(lc_cuda_sync());
    int32_t *idx = malloc(sizeof(int32_t) * ns);
    lc_cuda_memcpy_d2h(idx, d_idx, sizeof(int32_t) * ns);
    float *sc = down_f32(d_sc, ns);

    double *full = malloc(sizeof(double) * (size_t)(C ? C : 1));
    double *key = malloc(sizeof(double) * (size_t)(C ? C : 1));
    char *sel = malloc((size_t)(C ? C : 1));
    int64_t rows = 0, exact = 0, bad_struct = 0, bad_score = 0, bad_topk = 0;
    double worst_gap = 0;
    const float inv = 1.0f / sqrtf((float)dr);
    for (int64_t b = 0; b < s.B; b++)
        for (int64_t row = 0; row < Lr; row++)
            for (int64_t hr = 0; hr < s.Hr; hr++) {
                const int64_t off = ((b * Lr + row) * s.Hr + hr);
                const int64_t nv = hsa_num_visible(&s, p0 + row), nvalid = nv < K ? nv : K;
                const uint64_t row_head = (uint64_t)((b * Lr_all + p0 + row) * s.Hr + hr);
                const float *qv = qr + off * dr;
                for (int64_t c = 0; c < nv; c++) {
                    const float *lv = lmk + ((b * C + c) * s.Hr + hr) * dr;
                    double acc = 0;
                    for (int64_t i = 0; i < dr; i++) acc += (double)qv[i] * lv[i];
                    full[c] = acc * inv;
                    key[c] = full[c] + (s.gumbel ? hsa_gumbel(s.gumbel_seed, row_head, (uint64_t)c) : 0.0);
                    sel[c] = 0;
                }
                rows++;
                int ok = 1, same = 1;
                for (int64_t k = 0; k < K; k++) {
                    int32_t id = idx[off * K + k];
                    if (idx_ref[off * K + k] != id) same = 0;
                    if (k >= nvalid) {
                        if (id != 0 || sc[off * K + k] != -INFINITY) ok = 0;
                        continue;
                    }
                    if (id < 0 || id >= nv || (k > 0 && id >= idx[off * K + k - 1]) || sel[id]) {
                        ok = 0;
                        continue;
                    }
                    sel[id] = 1;
                    if (!(fabs(sc[off * K + k] - full[id]) <= 1e-4)) bad_score++;
                }
                if (!ok) {
                    bad_struct++;
                    continue;
                }
                double min_sel = INFINITY, max_un = -INFINITY;
                for (int64_t c = 0; c < nv; c++) {
                    if (sel[c] && key[c] < min_sel) min_sel = key[c];
                    if (!sel[c] && key[c] > max_un) max_un = key[c];
                }
                if (max_un - min_sel > worst_gap) worst_gap = max_un - min_sel;
                if (max_un > min_sel + 1e-4) bad_topk++;
                exact += same;
            }
    T_CHECK(bad_struct == 0, "%lld of %lld rows have a wrong count, order, id range or invalid slot", (long long)bad_struct,
            (long long)rows);
    T_CHECK(bad_score == 0, "%lld selected scores differ from the exact score by more than 1e-4", (long long)bad_score);
    T_CHECK(bad_topk == 0, "%lld rows are not a top-k (an unselected key beats a selected one by %.2e)", (long long)bad_topk,
            worst_gap);
    T_CHECK(exact >= rows - rows / 100, "only %lld of %lld rows select exactly the reference's chunks", (long long)exact,
            (long long)rows);
    if (exact != rows) printf("  note: %lld of %lld rows differ from the reference only by near-ties\n", (long long)(rows - exact), (long long)rows);
    free(full), free(key), free(sel), free(idx), free(sc), free(idx_ref), free(sc_ref), free(qr), free(lmk), free(hq), free(hl);
    lc_cuda_free(d_q), lc_cuda_free(d_l), lc_cuda_free(d_idx), lc_cuda_free(d_sc), lc_cuda_free(d_ws);
}

/* ---------------- attention ---------------- */

struct attend_case {
    float *q, *k, *v, *w;
    bf16_t *hq, *hk, *hv;
    int32_t *idx;
    float *score;
};

static int make_attend(const struct hsa_shape *s, uint64_t seed, struct attend_case *a) {
    lc_rng r;
    lc_rng_seed(&r, seed);
    struct hsa_shape sr = *s;
    sr.dr = 32;
    bf16_t *hqr, *hl;
    float *qr = rand_bf16(&r, n_qr(&sr), 1.0f, &hqr), *lmk = rand_bf16(&r, n_lmk(&sr), 1.0f, &hl);
    a->idx = malloc(sizeof(int32_t) * n_slots(s));
    a->score = malloc(sizeof(float) * n_slots(s));
    a->w = malloc(sizeof(float) * n_slots(s));
    int ok = T_OK(hsa_retrieve_ref(&sr, qr, lmk, a->idx, a->score)) && T_OK(hsa_weights_forward_ref(s, a->score, a->w));
    free(qr), free(lmk), free(hqr), free(hl);
    a->q = rand_bf16(&r, n_q(s), 1.0f, &a->hq);
    a->k = rand_bf16(&r, n_kv(s), 1.0f, &a->hk);
    a->v = rand_bf16(&r, n_kv(s), 1.0f, &a->hv);
    return ok;
}
static void free_attend(struct attend_case *a) {
    free(a->q), free(a->k), free(a->v), free(a->w), free(a->hq), free(a->hk), free(a->hv), free(a->idx), free(a->score);
}

static void test_attend(struct hsa_shape s, uint64_t seed, int backward) {
    t_begin(name_of(backward ? "attend fwd+bwd" : "attend fwd", &s));
    struct attend_case a;
    if (!make_attend(&s, seed, &a)) return;
    const int64_t nq = n_q(&s), nkv = n_kv(&s), ns = n_slots(&s), nl = n_lse(&s);
    float *o_ref = malloc(sizeof(float) * nq), *lse_ref = malloc(sizeof(float) * nl);
    if (!T_OK(hsa_attend_forward_ref(&s, a.q, a.k, a.v, a.idx, a.w, o_ref, lse_ref))) return;
    void *d_q = dev_up(a.hq, 2 * nq), *d_k = dev_up(a.hk, 2 * nkv), *d_v = dev_up(a.hv, 2 * nkv);
    void *d_idx = dev_up(a.idx, 4 * ns), *d_w = dev_up(a.w, 4 * ns);
    void *d_o = dev_poison(2 * nq), *d_lse = dev_poison(4 * nl);
    T_OK(hsa_attend_forward_cuda(&s, d_q, d_k, d_v, d_idx, d_w, d_o, d_lse, NULL));
    T_OK(lc_cuda_sync());
    float *o = down_bf16(d_o, nq), *lse = down_f32(d_lse, nl);
    T_CLOSE(o, o_ref, (size_t)nq, 1e-2, "o");
    int64_t bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < nl; i++) {
        if (isinf(lse_ref[i])) {
            if (!(isinf(lse[i]) && lse[i] < 0)) bad++;
        } else {
            double d = fabs((double)lse[i] - lse_ref[i]);
            if (!(d <= 1e-2)) bad++;
            if (d > worst) worst = d;
        }
    }
    T_CHECK(bad == 0, "lse: %lld of %lld entries wrong (worst |diff| %.3e)", (long long)bad, (long long)nl, worst);

    if (backward) {
        lc_rng r;
        lc_rng_seed(&r, seed + 99);
        bf16_t *hdo;
        float *dout = rand_bf16(&r, nq, 1.0f, &hdo);
        float *dq_r = malloc(4 * nq), *dk_r = malloc(4 * nkv), *dv_r = malloc(4 * nkv), *dw_r = malloc(4 * ns);
        T_OK(hsa_attend_backward_ref(&s, a.q, a.k, a.v, a.idx, a.w, lse_ref, dout, dq_r, dk_r, dv_r, dw_r));
        void *d_do = dev_up(hdo, 2 * nq);
        size_t wsb = hsa_attend_backward_workspace_cuda(&s);
        void *d_ws = lc_cuda_malloc(wsb, "bwd workspace");
        float *res[2][4];
        for (int rep = 0; rep < 2; rep++) {
            void *d_dq = dev_poison(2 * nq), *d_dk = dev_poison(2 * nkv), *d_dv = dev_poison(2 * nkv), *d_dw = dev_poison(4 * ns);
            lc_cuda_memset(d_ws, 0xff, wsb);
            T_OK(hsa_attend_backward_cuda(&s, d_q, d_k, d_v, d_idx, d_w, d_lse, d_do, d_dq, d_dk, d_dv, d_dw, d_ws, NULL));
            T_OK(lc_cuda_sync());
            res[rep][0] = down_bf16(d_dq, nq);
            res[rep][1] = down_bf16(d_dk, nkv);
            res[rep][2] = down_bf16(d_dv, nkv);
            res[rep][3] = down_f32(d_dw, ns);
            lc_cuda_free(d_dq), lc_cuda_free(d_dk), lc_cuda_free(d_dv), lc_cuda_free(d_dw);
        }
        T_CLOSE(res[0][0], dq_r, (size_t)nq, 2e-2, "dq");
        T_CLOSE(res[0][1], dk_r, (size_t)nkv, 2e-2, "dk");
        T_CLOSE(res[0][2], dv_r, (size_t)nkv, 2e-2, "dv");
        T_CLOSE(res[0][3], dw_r, (size_t)ns, 1e-2, "dw");
        T_CHECK(!memcmp(res[0][0], res[1][0], 4 * nq) && !memcmp(res[0][1], res[1][1], 4 * nkv) &&
                    !memcmp(res[0][2], res[1][2], 4 * nkv) && !memcmp(res[0][3], res[1][3], 4 * ns),
                "backward is not bitwise reproducible");
        for (int rep = 0; rep < 2; rep++)
            for (int j = 0; j < 4; j++) free(res[rep][j]);
        free(dout), free(hdo), free(dq_r), free(dk_r), free(dv_r), free(dw_r);
        lc_cuda_free(d_do), lc_cuda_free(d_ws);
    }
    free(o), free(lse), free(o_ref), free(lse_ref);
    lc_cuda_free(d_q), lc_cuda_free(d_k), lc_cuda_free(d_v), lc_cuda_free(d_idx), lc_cuda_free(d_w), lc_cuda_free(d_o),
        lc_cuda_free(d_lse);
    free_attend(&a);
}

/* ---------------- scores backward ---------------- */

static void test_scores_backward(struct hsa_shape s) {
    t_begin(name_of("scores bwd", &s));
    lc_rng r;
    lc_rng_seed(&r, 5);
    bf16_t *hq, *hl;
    float *qr = rand_bf16(&r, n_qr(&s), 1.0f, &hq), *lmk = rand_bf16(&r, n_lmk(&s), 1.0f, &hl);
    const int64_t ns = n_slots(&s);
    int32_t *idx = malloc(4 * ns);
    float *sc = malloc(4 * ns), *ds = malloc(4 * ns);
    T_OK(hsa_retrieve_ref(&s, qr, lmk, idx, sc));
    lc_fill_normal(&r, ds, (size_t)ns, 1.0f);
    float *dq_ref = calloc((size_t)n_qr(&s), 4), *dl_ref = calloc((size_t)n_lmk(&s), 4);
    T_OK(hsa_scores_backward_ref(&s, qr, lmk, idx, ds, dq_ref, dl_ref));
    void *d_q = dev_up(hq, 2 * n_qr(&s)), *d_l = dev_up(hl, 2 * n_lmk(&s)), *d_idx = dev_up(idx, 4 * ns), *d_ds = dev_up(ds, 4 * ns);
    float *zq = calloc((size_t)n_qr(&s), 4), *zl = calloc((size_t)n_lmk(&s), 4);
    void *d_dq = dev_up(zq, 4 * n_qr(&s)), *d_dl = dev_up(zl, 4 * n_lmk(&s));
    T_OK(hsa_scores_backward_cuda(&s, d_q, d_l, d_idx, d_ds, d_dq, d_dl, NULL));
    T_OK(lc_cuda_sync());
    float *dq = down_f32(d_dq, n_qr(&s)), *dl = down_f32(d_dl, n_lmk(&s));
    T_CLOSE(dq, dq_ref, (size_t)n_qr(&s), 1e-4, "dq_r");
    T_CLOSE(dl, dl_ref, (size_t)n_lmk(&s), 1e-4, "dlmk");
    free(qr), free(lmk), free(hq), free(hl), free(idx), free(sc), free(ds), free(dq_ref), free(dl_ref), free(zq), free(zl), free(dq), free(dl);
    lc_cuda_free(d_q), lc_cuda_free(d_l), lc_cuda_free(d_idx), lc_cuda_free(d_ds), lc_cuda_free(d_dq), lc_cuda_free(d_dl);
}

/* ---------------- query offset: segments concatenated = one full run ---------------- */

/* rows p0 .. p0+n-1 of each batch of a [B, Lfull, row] array (elem bytes each) */
static void *slice_rows(const void *src, int64_t B, int64_t Lfull, int64_t row, size_t elem, int64_t p0, int64_t n) {
    char *d = malloc(elem * (size_t)(B * n * row + 1));
    for (int64_t b = 0; b < B; b++)
        memcpy(d + elem * (size_t)(b * n * row), (const char *)src + elem * (size_t)((b * Lfull + p0) * row),
               elem * (size_t)(n * row));
    return d;
}
static void unslice_rows(void *dst, const void *src, int64_t B, int64_t Lfull, int64_t row, size_t elem, int64_t p0, int64_t n) {
    for (int64_t b = 0; b < B; b++)
        memcpy((char *)dst + elem * (size_t)((b * Lfull + p0) * row), (const char *)src + elem * (size_t)(b * n * row),
               elem * (size_t)(n * row));
}

/* The forward chain on the device: retrieve -> weights -> attend forward; host copies back. */
struct chain_out {
    int32_t *idx;
    float *score, *w, *lse;
    bf16_t *o;
};
static int run_chain(const struct hsa_shape *s, const bf16_t *hqr, const bf16_t *hl, const bf16_t *hq, const bf16_t *hk,
                     const bf16_t *hv, struct chain_out *out) {
    const int64_t ns = n_slots(s), nq = n_q(s), nl = n_lse(s);
    void *d_qr = dev_up(hqr, 2 * n_qr(s)), *d_l = dev_up(hl, 2 * n_lmk(s)), *d_q = dev_up(hq, 2 * nq);
    void *d_k = dev_up(hk, 2 * n_kv(s)), *d_v = dev_up(hv, 2 * n_kv(s));
    void *d_idx = dev_poison(4 * ns), *d_sc = dev_poison(4 * ns), *d_w = dev_poison(4 * ns);
    void *d_o = dev_poison(2 * nq), *d_lse = dev_poison(4 * nl);
    size_t wsb = hsa_retrieve_workspace_cuda(s);
    void *d_ws = wsb ? lc_cuda_malloc(wsb, "ws") : NULL;
    int ok = T_OK(hsa_retrieve_cuda(s, d_qr, d_l, d_idx, d_sc, d_ws, NULL)) &&
             T_OK(hsa_weights_forward_cuda(s, d_sc, d_w, NULL)) &&
             T_OK(hsa_attend_forward_cuda(s, d_q, d_k, d_v, d_idx, d_w, d_o, d_lse, NULL)) && T_OK(lc_cuda_sync());
    out->idx = malloc(4 * (size_t)ns);
    out->score = malloc(4 * (size_t)ns);
    out->w = malloc(4 * (size_t)ns);
    out->lse = malloc(4 * (size_t)nl);
    out->o = malloc(2 * (size_t)nq);
    lc_cuda_memcpy_d2h(out->idx, d_idx, 4 * ns);
    lc_cuda_memcpy_d2h(out->score, d_sc, 4 * ns);
    lc_cuda_memcpy_d2h(out->w, d_w, 4 * ns);
    lc_cuda_memcpy_d2h(out->lse, d_lse, 4 * nl);
    lc_cuda_memcpy_d2h(out->o, d_o, 2 * nq);
    lc_cuda_free(d_qr), lc_cuda_free(d_l), lc_cuda_free(d_q), lc_cuda_free(d_k), lc_cuda_free(d_v), lc_cuda_free(d_idx);
    lc_cuda_free(d_sc), lc_cuda_free(d_w), lc_cuda_free(d_o), lc_cuda_free(d_lse), lc_cuda_free(d_ws);
    return ok;
}
static void free_chain(struct chain_out *c) { free(c->idx), free(c->score), free(c->w), free(c->lse), free(c->o); }

/* Runs the chain over ragged segments (seg[i] tokens each, summing to L; a 1 is a decode step)
 * with q_pos0 / Lq, scatters the results, and requires them bitwise equal to one full run: every
 * kernel computes a query row from that row's inputs only, in a fixed order. The full run itself
 * is checked against the C reference (o, lse). */
static void test_segments(struct hsa_shape s, const int64_t *seg, int nseg, uint64_t seed) {
    t_begin(name_of("segments = full run", &s));
    lc_rng r;
    lc_rng_seed(&r, seed);
    const int64_t Lr = hsa_num_rows(&s);
    bf16_t *hqr, *hl, *hq, *hk, *hv;
    float *qr = rand_bf16(&r, n_qr(&s), 1.0f, &hqr), *lmk = rand_bf16(&r, n_lmk(&s), 1.0f, &hl);
    float *q = rand_bf16(&r, n_q(&s), 1.0f, &hq), *k = rand_bf16(&r, n_kv(&s), 1.0f, &hk), *v = rand_bf16(&r, n_kv(&s), 1.0f, &hv);
    struct chain_out full, cat;
    if (!run_chain(&s, hqr, hl, hq, hk, hv, &full)) return;
    /* the full run against the reference composition fed the device's own selection */
    {
        const int64_t ns = n_slots(&s), nq = n_q(&s), nl = n_lse(&s);
        float *o_ref = malloc(4 * nq), *lse_ref = malloc(4 * nl), *w_ref = malloc(4 * ns), *o = malloc(4 * nq);
        T_OK(hsa_weights_forward_ref(&s, full.score, w_ref));
        T_CLOSE(full.w, w_ref, (size_t)ns, 1e-5, "w (full run)");
        T_OK(hsa_attend_forward_ref(&s, q, k, v, full.idx, w_ref, o_ref, lse_ref));
        bf16_to_f32_array(full.o, o, (size_t)nq);
        T_CLOSE(o, o_ref, (size_t)nq, 1e-2, "o (full run)");
        free(o_ref), free(lse_ref), free(w_ref), free(o);
    }
    cat.idx = malloc(4 * (size_t)n_slots(&s));
    cat.score = malloc(4 * (size_t)n_slots(&s));
    cat.w = malloc(4 * (size_t)n_slots(&s));
    cat.lse = malloc(4 * (size_t)n_lse(&s));
    cat.o = malloc(2 * (size_t)n_q(&s));
    int64_t p0 = 0;
    for (int i = 0; i < nseg; i++) {
        const int64_t n = seg[i];
        struct hsa_shape so = with_offset(s, p0, n);
        bf16_t *sqr = slice_rows(hqr, s.B, Lr, s.Hr * s.dr, 2, p0, n), *sq = slice_rows(hq, s.B, s.L, s.HQ * s.dh, 2, p0, n);
        struct chain_out part;
        int ok = run_chain(&so, sqr, hl, sq, hk, hv, &part);
        free(sqr), free(sq);
        if (!ok) return;
        unslice_rows(cat.idx, part.idx, s.B, Lr, s.Hr * s.K, 4, p0, n);
        unslice_rows(cat.score, part.score, s.B, Lr, s.Hr * s.K, 4, p0, n);
        unslice_rows(cat.w, part.w, s.B, Lr, s.Hr * s.K, 4, p0, n);
        unslice_rows(cat.lse, part.lse, s.B, s.L, s.HQ * s.K, 4, p0, n);
        unslice_rows(cat.o, part.o, s.B, s.L, s.HQ * s.dh, 2, p0, n);
        free_chain(&part);
        p0 += n;
    }
    T_CHECK(p0 == s.L, "segments cover %lld of L = %lld tokens", (long long)p0, (long long)s.L);
    T_CHECK(!memcmp(cat.idx, full.idx, 4 * (size_t)n_slots(&s)), "idx: segments differ from the full run");
    T_CHECK(!memcmp(cat.score, full.score, 4 * (size_t)n_slots(&s)), "score: segments differ from the full run");
    T_CHECK(!memcmp(cat.w, full.w, 4 * (size_t)n_slots(&s)), "w: segments differ from the full run");
    T_CHECK(!memcmp(cat.lse, full.lse, 4 * (size_t)n_lse(&s)), "lse: segments differ from the full run");
    T_CHECK(!memcmp(cat.o, full.o, 2 * (size_t)n_q(&s)), "o: segments differ from the full run");
    free_chain(&full), free_chain(&cat);
    free(qr), free(lmk), free(q), free(k), free(v), free(hqr), free(hl), free(hq), free(hk), free(hv);
}

/* ---------------- cross-test: all visible chunks = the reference composition ---------------- */

/* With K >= every token's visible chunk count, retrieval selects every visible chunk and softmax
 * fusion weights over the landmark scores make HSA the plain composition
 *   o[t, a] = sum_{c < t/S} softmax_c(<q_r[t], lmk_c> / sqrt(dr)) * attn(q[t, a], K_c, V_c),
 * computed here directly in double from the same bf16 inputs (no hsa_*_ref function). The device
 * runs its own chain: retrieve -> weights -> attend forward. */
static void test_cross_composition(struct hsa_shape s, uint64_t seed) {
    t_begin(name_of("cross: K covers all visible, softmax weights = composition", &s));
    const int64_t C = hsa_num_chunks(&s), L = s.L, S = s.S, dh = s.dh, dr = s.dr, G = s.HQ / s.H;
    T_CHECK(s.K >= C && s.block_q == 1 && s.weighting == HSA_SOFTMAX && s.Hr == 1 && s.B == 1, "test shape: K >= C, block_q 1, softmax, Hr 1, B 1");
    lc_rng r;
    lc_rng_seed(&r, seed);
    bf16_t *hqr, *hl, *hq, *hk, *hv;
    float *qr = rand_bf16(&r, n_qr(&s), 1.0f, &hqr), *lmk = rand_bf16(&r, n_lmk(&s), 1.0f, &hl);
    float *q = rand_bf16(&r, n_q(&s), 1.0f, &hq), *k = rand_bf16(&r, n_kv(&s), 1.0f, &hk), *v = rand_bf16(&r, n_kv(&s), 1.0f, &hv);
    struct chain_out dev;
    if (!run_chain(&s, hqr, hl, hq, hk, hv, &dev)) return;
    const int64_t nq = n_q(&s);
    float *o = malloc(4 * (size_t)nq), *o_ref = calloc((size_t)nq, 4);
    bf16_to_f32_array(dev.o, o, (size_t)nq);
    double *a = malloc(sizeof(double) * (size_t)(C + 1)), *z = malloc(sizeof(double) * (size_t)S), *acc = malloc(sizeof(double) * (size_t)dh);
    const double scale = 1.0 / sqrt((double)dh);
    for (int64_t t = 0; t < L; t++) {
        int64_t n = t / S;
        if (n > C) n = C;
        double mx = -INFINITY, sum = 0;
        for (int64_t c = 0; c < n; c++) {
            double d = 0;
            for (int64_t i = 0; i < dr; i++) d += (double)qr[t * dr + i] * lmk[c * dr + i];
            a[c] = d / sqrt((double)dr);
            if (a[c] > mx) mx = a[c];
        }
        for (int64_t c = 0; c < n; c++) sum += (a[c] = exp(a[c] - mx));
        for (int64_t hq_ = 0; hq_ < s.HQ; hq_++) {
            const int64_t h = hq_ / G;
            const float *qv = q + (t * s.HQ + hq_) * dh;
            for (int64_t i = 0; i < dh; i++) acc[i] = 0;
            for (int64_t c = 0; c < n; c++) {
                double zm = s.softmax1 ? 0.0 : -INFINITY, zs = 0;
                for (int64_t j = 0; j < S; j++) {
                    const float *kv = k + ((c * S + j) * s.H + h) * dh;
                    double d = 0;
                    for (int64_t i = 0; i < dh; i++) d += (double)qv[i] * kv[i];
                    z[j] = d * scale;
                    if (z[j] > zm) zm = z[j];
                }
                for (int64_t j = 0; j < S; j++) zs += (z[j] = exp(z[j] - zm));
                if (s.softmax1) zs += exp(-zm);
                for (int64_t j = 0; j < S; j++) {
                    const float *vv = v + ((c * S + j) * s.H + h) * dh;
                    const double f = a[c] / sum * z[j] / zs;
                    for (int64_t i = 0; i < dh; i++) acc[i] += f * vv[i];
                }
            }
            for (int64_t i = 0; i < dh; i++) o_ref[(t * s.HQ + hq_) * dh + i] = (float)acc[i];
        }
    }
    T_CLOSE(o, o_ref, (size_t)nq, 1e-2, "o vs the direct composition");
    int64_t bad = 0;
    for (int64_t t = 0; t < L; t++) {
        const int64_t n = t / S < C ? t / S : C;
        for (int64_t kk = 0; kk < s.K; kk++)
            if ((kk < n) != (dev.idx[t * s.K + kk] == n - 1 - kk && dev.w[t * s.K + kk] > 0)) bad++;
    }
    T_CHECK(bad == 0, "%lld slots do not hold exactly the visible chunks, most recent first", (long long)bad);
    free(o), free(o_ref), free(a), free(z), free(acc);
    free_chain(&dev);
    free(qr), free(lmk), free(q), free(k), free(v), free(hqr), free(hl), free(hq), free(hk), free(hv);
}

static void test_offset_backward_refused(void) {
    t_begin("query offset: backward refuses it by name");
    struct hsa_shape s = with_offset(mk(1, 256, 4, 1, 64, 64, 4, 1, 64, 1, 0, 0), 100, 50);
    T_ERR(hsa_attend_backward_cuda(&s, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          "forward-only");
    T_ERR(hsa_scores_backward_cuda(&s, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "forward-only");
}

static void test_errors(void) {
    t_begin("unsupported shapes are named");
    struct hsa_shape s = mk(1, 256, 4, 1, 64, 48, 4, 1, 64, 1, 0, 0);
    T_ERR(hsa_attend_forward_cuda(&s, NULL, NULL, NULL, NULL, NULL, NULL, (float *)8, NULL), "S = 48");
    s = mk(1, 256, 4, 1, 64, 64, 65, 1, 64, 1, 0, 0);
    T_ERR(hsa_retrieve_cuda(&s, NULL, NULL, NULL, NULL, NULL, NULL), "K = 65");
    s = mk(1, 256, 4, 1, 64, 64, 8, 1, 48, 1, 0, 0);
    T_ERR(hsa_retrieve_cuda(&s, NULL, NULL, NULL, NULL, NULL, NULL), "dr = 48");
}

/* every backward (LONGCTX_HSA_BWD = tok, the token-block one; t15 | t11, the producer/consumer dq pass
 * of kernels/hsa_attend_bwd.cuh; t11 is the default where it fits) against the C reference: G = 16 (ragged L with K > visible; K = 24 with the ring wrapping over a
 * long union, stick-breaking; H = 2 with Hr = 1; B = 2 with Hr = H), G = 32, and G = 1, 4 (shapes the
 * kernel does not take: they must fall back to the token-block dq pass) */
static void test_bwd_variants(int quick) {
    {
        static const char *bvariants[] = {"tok", "t15", "t11"};
        struct hsa_shape bw[] = {
            mk(1, 300, 16, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX),
            mk(1, 1600, 16, 1, 64, 64, 24, 1, 32, 1, 0, HSA_STICK_BREAKING),
            mk(1, 1100, 32, 2, 64, 64, 12, 1, 32, 1, 1, HSA_SOFTMAX),
            mk(2, 700, 32, 2, 64, 64, 8, 2, 32, 1, 0, HSA_STICK_BREAKING),
            mk(1, 1500, 32, 1, 64, 64, 12, 1, 32, 1, 1, HSA_SOFTMAX),
            mk(1, 777, 1, 1, 64, 64, 4, 1, 32, 1, 0, HSA_SOFTMAX),
            mk(1, 900, 4, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX),
        };
        const int nbw = quick ? 2 : (int)(sizeof bw / sizeof bw[0]);
        for (int vi = 0; vi < 3; vi++) {
            setenv("LONGCTX_HSA_BWD", bvariants[vi], 1);
            variant_tag = bvariants[vi];
            for (int i = 0; i < nbw; i++) test_attend(bw[i], 400 + (uint64_t)i, 1);
        }
        unsetenv("LONGCTX_HSA_BWD");
        variant_tag = "";
    }
}

/* the TMA + wgmma forward (LONGCTX_HSA_FWD = t17, kernels/hsa_attend_fwd_wgq.cuh): S = dh = 64,
 * G = 16, 32, 64; ragged L, K > visible, the ring wrapping over long unions, persistent CTAs walking
 * several token blocks (L = 5000: 417 blocks of 12 tokens), H = 2, B = 2, Hr = H, softmax1 on and
 * off, stick-breaking, GCA rows, a query offset; one fwd+bwd case (the backward reads its lse) */
static void test_fwd_wg(int quick) {
    static const char *variants[] = {"t17"};
    struct hsa_shape sh[] = {
        mk(1, 300, 16, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX),
        mk(1, 2000, 16, 1, 64, 64, 8, 1, 32, 1, 1, HSA_SOFTMAX),
        with_offset(mk(1, 3000, 32, 1, 64, 64, 12, 1, 32, 1, 1, HSA_SOFTMAX), 1000, 1999),
        mk(1, 5000, 16, 1, 64, 64, 32, 1, 32, 1, 0, HSA_STICK_BREAKING),
        mk(2, 1100, 32, 2, 64, 64, 12, 2, 32, 1, 1, HSA_STICK_BREAKING),
        mk(1, 900, 64, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX),
        mk(1, 1500, 16, 1, 64, 64, 64, 1, 32, 1, 1, HSA_SOFTMAX),
        mk(1, 1000, 16, 1, 64, 64, 6, 1, 32, 64, 1, HSA_SOFTMAX),
        with_offset(mk(1, 700, 16, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX), 1, 699),
    };
    const int n = quick ? 3 : (int)(sizeof sh / sizeof sh[0]);
    for (int vi = 0; vi < (int)(sizeof variants / sizeof variants[0]); vi++) {
        setenv("LONGCTX_HSA_FWD", variants[vi], 1);
        variant_tag = variants[vi];
        for (int i = 0; i < n; i++) test_attend(sh[i], 500 + (uint64_t)i, 0);
        if (!quick) {
            test_attend(mk(1, 1300, 16, 1, 64, 64, 16, 1, 32, 1, 1, HSA_SOFTMAX), 520, 1);
            test_cross_composition(mk(1, 1200, 16, 1, 64, 64, 20, 1, 64, 1, 0, HSA_SOFTMAX), 53);
        }
    }
    unsetenv("LONGCTX_HSA_FWD");
    variant_tag = "";
}

int main(int argc, char **argv) {
    int quick = argc > 1; /* any argument: the small shapes only (for compute-sanitizer) */
    if (argc > 1 && !strcmp(argv[1], "fwd")) { /* the producer/consumer forward alone (racecheck) */
        test_attend(mk(1, 300, 16, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX), 100, 0);
        test_attend(with_offset(mk(1, 3000, 32, 1, 64, 64, 12, 1, 32, 1, 1, HSA_SOFTMAX), 1000, 1999), 135, 0);
        test_attend(mk(1, 2000, 16, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX), 136, 0); /* the ring wraps */
        return t_finish();
    }
    if (argc > 1 && !strcmp(argv[1], "wg")) { /* the TMA + wgmma forward alone; "wg quick": small shapes */
        test_fwd_wg(argc > 2);
        return t_finish();
    }
    if (argc > 1 && !strcmp(argv[1], "k8")) { /* G = 16, S = dh = 64, K = 8: the default forward, or LONGCTX_HSA_FWD's
                                                   * (segmented prefill / decode bitwise = one full run; t17: not run yet) */
        test_attend(mk(1, 300, 16, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX), 100, 0);
        test_attend(mk(1, 2000, 16, 1, 64, 64, 8, 1, 32, 1, 1, HSA_STICK_BREAKING), 101, 1);
        test_attend(with_offset(mk(1, 300, 16, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX), 130, 97), 131, 0);
        test_cross_composition(mk(1, 500, 16, 1, 64, 64, 8, 1, 64, 1, 0, HSA_SOFTMAX), 54);
        static const int64_t seg_a[] = {1, 63, 64, 1, 1, 200, 77, 1, 400, 192};
        test_segments(mk(2, 1000, 16, 1, 64, 64, 8, 1, 64, 1, 0, HSA_SOFTMAX), seg_a, 10, 41);
        static const int64_t seg_c[] = {5, 1, 1, 1, 700, 13, 1, 1, 1, 1276};
        test_segments(mk(1, 2000, 16, 1, 64, 64, 8, 1, 64, 1, 1, HSA_STICK_BREAKING), seg_c, 10, 43);
        return t_finish();
    }
    if (argc > 1 && !strcmp(argv[1], "bwd")) { /* the backward alone: default (token-block dq) and the variants */
        test_attend(mk(1, 300, 16, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX), 200, 1);
        test_attend(mk(2, 1000, 4, 2, 32, 32, 8, 2, 32, 1, 1, HSA_STICK_BREAKING), 201, 1);
        test_attend(mk(1, 520, 32, 2, 64, 32, 16, 1, 32, 1, 1, HSA_SOFTMAX), 203, 1);
        test_bwd_variants(0);
        return t_finish();
    }
    test_errors();
    test_weights(HSA_SOFTMAX);
    test_weights(HSA_STICK_BREAKING);

    /* retrieval: the default kernel (wgp, pruning for K <= 32, on sm_90a where dr % 64 == 0, else
     * wtp), then the variants LONGCTX_HSA_RETR = wtp, wt, v2, wg, wgp8 (wg* fall back to the
     * default where dr % 64 != 0) */
    static const char *rvariants[] = {"", "wtp", "wt", "v2", "wg", "wgp8"};
    for (int rv = 0; rv < 6; rv++) {
        if (rv) setenv("LONGCTX_HSA_RETR", rvariants[rv], 1);
        variant_tag = rv ? rvariants[rv] : "";
        test_retrieve(mk(2, 1000, 2, 2, 64, 32, 8, 2, 64, 1, 0, 0), 1);
        {
            struct hsa_shape s = mk(1, 1500, 1, 1, 64, 32, 8, 1, 96, 1, 0, 0);
            s.gumbel = 1, s.gumbel_seed = 1234;
            test_retrieve(s, 2);
        }
        test_retrieve(mk(1, 2000, 1, 1, 64, 32, 4, 1, 64, 32, 0, 0), 3); /* GCA */
        test_retrieve(mk(1, 3000, 1, 1, 64, 16, 5, 1, 64, 1, 0, 0), 7);  /* K = 5: pruning with 4m > K */
        test_retrieve(mk(1, 2100, 1, 1, 64, 16, 8, 1, 1024, 1, 0, 0), 9); /* dr = 1024: 16 or 32 k-slices per tile */
        test_retrieve(mk(1, 2500, 1, 1, 64, 16, 12, 1, 64, 1, 0, 0), 12);  /* K = 12, 24: pruning thresholds M = 4, 8 */
        test_retrieve(mk(1, 2500, 1, 1, 64, 16, 24, 1, 128, 1, 0, 0), 13);
        if (!quick) {
            test_retrieve(mk(1, 20000, 1, 1, 64, 64, 16, 1, 128, 1, 0, 0), 4); /* 3 landmark tiles, 157 row blocks */
            test_retrieve(mk(1, 20000, 1, 1, 64, 64, 8, 1, 128, 1, 0, 0), 8);  /* K = 8, pruned first tiles */
            test_retrieve(mk(1, 5000, 1, 1, 64, 32, 64, 1, 32, 1, 0, 0), 5);   /* K = 64 */
            test_retrieve(mk(1, 5000, 1, 1, 64, 32, 64, 1, 128, 1, 0, 0), 10);  /* K = 64, dr = 128 (wgmma) */
            test_retrieve(mk(2, 3000, 2, 2, 64, 16, 32, 2, 1024, 1, 0, 0), 11); /* K = 32, dr = 1024, B = Hr = 2 */
            struct hsa_shape s = mk(1, 9000, 1, 1, 64, 32, 32, 1, 64, 32, 0, 0); /* GCA + noise */
            s.gumbel = 1, s.gumbel_seed = 77;
            test_retrieve(s, 6);
        }
    }
    unsetenv("LONGCTX_HSA_RETR");
    variant_tag = "";

    /* chunk attention: forward, then forward + backward */
    struct hsa_shape fw[] = {
        mk(1, 300, 16, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX),          /* ragged L, K > visible */
        mk(2, 1000, 4, 2, 32, 32, 8, 2, 32, 1, 1, HSA_STICK_BREAKING),   /* G = 4, Hr = H, softmax1 */
        mk(1, 777, 1, 1, 64, 64, 4, 1, 32, 1, 0, HSA_SOFTMAX),           /* G = 1 */
        mk(1, 520, 32, 2, 64, 32, 16, 1, 32, 1, 1, HSA_SOFTMAX),         /* G = 16, H = 2, Hr = 1 */
        mk(1, 700, 4, 1, 64, 64, 4, 1, 32, 64, 1, HSA_SOFTMAX),          /* GCA */
        mk(1, 400, 6, 2, 64, 64, 5, 2, 32, 1, 1, HSA_STICK_BREAKING),    /* G = 3 */
        mk(1, 640, 16, 1, 128, 128, 4, 1, 32, 1, 0, HSA_SOFTMAX),        /* dh = 128, S = 128 */
        mk(1, 2200, 8, 1, 32, 32, 64, 1, 32, 1, 0, HSA_STICK_BREAKING),  /* K = 64 */
    };
    int nfw = quick ? 3 : (int)(sizeof fw / sizeof fw[0]);
    for (int i = 0; i < nfw; i++) test_attend(fw[i], 100 + (uint64_t)i, 0);
    /* the producer/consumer forward variants (LONGCTX_HSA_FWD, kernels/hsa.cu) on the G = 16
     * shapes; the default (token-block kernel) ran above */
    {
        static const char *variants[] = {"w7", "w3", "w8", "t15"};
        struct hsa_shape g16[] = {fw[0], fw[3], with_offset(mk(1, 3000, 32, 1, 64, 64, 12, 1, 32, 1, 1, HSA_SOFTMAX), 1000, 1999)};
        for (int vi = 0; vi < 4; vi++) {
            setenv("LONGCTX_HSA_FWD", variants[vi], 1);
            variant_tag = variants[vi];
            for (int i = 0; i < (quick ? 1 : 3); i++) test_attend(g16[i], 300 + (uint64_t)i, 0);
        }
        unsetenv("LONGCTX_HSA_FWD");
        variant_tag = "";
    }
    test_fwd_wg(quick);
    for (int i = 0; i < nfw; i++) test_attend(fw[i], 200 + (uint64_t)i, 1);
    test_bwd_variants(quick);

    test_scores_backward(mk(1, 900, 1, 1, 64, 32, 8, 1, 64, 1, 0, 0));

    /* query offset (segmented prefill, decode): each kernel against the C reference ... */
    test_offset_backward_refused();
    test_retrieve(with_offset(mk(2, 1000, 2, 2, 64, 32, 8, 2, 64, 1, 0, 0), 333, 301), 21);
    {
        struct hsa_shape s = with_offset(mk(1, 1500, 1, 1, 64, 32, 8, 1, 96, 1, 0, 0), 1499, 1); /* decode, noise */
        s.gumbel = 1, s.gumbel_seed = 1234;
        test_retrieve(s, 22);
        s = with_offset(s, 700, 77);
        test_retrieve(s, 23);
    }
    test_attend(with_offset(mk(1, 300, 16, 1, 64, 64, 8, 1, 32, 1, 0, HSA_SOFTMAX), 130, 97), 131, 0);
    test_attend(with_offset(mk(2, 1000, 4, 2, 32, 32, 8, 2, 32, 1, 1, HSA_STICK_BREAKING), 999, 1), 132, 0);
    test_attend(with_offset(mk(1, 777, 1, 1, 64, 64, 4, 1, 32, 1, 0, HSA_SOFTMAX), 64, 600), 133, 0);
    test_attend(with_offset(mk(1, 520, 32, 2, 64, 32, 16, 1, 32, 1, 1, HSA_SOFTMAX), 519, 1), 134, 0);
    test_attend(with_offset(mk(1, 3000, 32, 1, 64, 64, 12, 1, 32, 1, 1, HSA_SOFTMAX), 1000, 1999), 135, 0); /* G = 32 */
    /* ... and ragged segments (a 1 is a decode step) concatenated = one full run, bitwise */
    {
        static const int64_t seg_a[] = {1, 63, 64, 1, 1, 200, 77, 1, 400, 192};
        test_segments(mk(2, 1000, 16, 1, 64, 64, 8, 1, 64, 1, 0, HSA_SOFTMAX), seg_a, 10, 41);
        static const int64_t seg_b[] = {129, 1, 1, 1, 5, 300, 90, 1, 1, 171};
        struct hsa_shape s = mk(1, 700, 8, 2, 32, 32, 16, 2, 96, 1, 1, HSA_STICK_BREAKING);
        s.gumbel = 1, s.gumbel_seed = 99;
        test_segments(s, seg_b, 10, 42);
    }

    /* cross-test: K covering all visible chunks with softmax weights = the direct composition */
    test_cross_composition(mk(1, 1500, 16, 1, 64, 32, 48, 1, 64, 1, 0, HSA_SOFTMAX), 51); /* token-block kernel */
    setenv("LONGCTX_HSA_FWD", "w7", 1);
    variant_tag = "w7";
    test_cross_composition(mk(1, 1500, 16, 1, 64, 32, 48, 1, 64, 1, 0, HSA_SOFTMAX), 51); /* producer/consumer */
    unsetenv("LONGCTX_HSA_FWD");
    variant_tag = "";
    test_cross_composition(mk(1, 1100, 8, 2, 32, 64, 20, 1, 96, 1, 1, HSA_SOFTMAX), 52);  /* G = 4: token-block kernel */
    return t_finish();
}
