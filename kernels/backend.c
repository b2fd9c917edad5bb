/* backend.c — fills the backend table (backend.h): cpu from the *_ref functions (fp32 host
 * memory), cuda from the *_cuda functions (bf16 activations, fp32 master weights and gradients).
 * The wrappers only adapt types: workspaces are taken from one growing scratch buffer, fp32
 * outputs of kernels whose table slot is act are converted, and the cross-entropy loss comes
 * back to the host. */
#include "backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"

/* ================================ cpu ================================ */

static void *cpu_alloc(size_t bytes, const char *what) { return lc_calloc(1, bytes ? bytes : 1, what); }
static void cpu_free(void *p) { free(p); }
static lc_status cpu_memcpy(void *dst, const void *src, size_t bytes) {
    if (bytes) memmove(dst, src, bytes);
    return LC_OK;
}
static lc_status cpu_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
    return LC_OK;
}
static lc_status cpu_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                            size_t rows) {
    for (size_t r = 0; r < rows; r++) memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return LC_OK;
}
static lc_status cpu_sync(void) { return LC_OK; }
static lc_status cpu_act_from_f32(int64_t n, const float *src, void *dst) { return cpu_memcpy(dst, src, (size_t)n * 4); }
static lc_status cpu_act_to_f32(int64_t n, const void *src, float *dst) { return cpu_memcpy(dst, src, (size_t)n * 4); }
static lc_status cpu_add_f32(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
    return LC_OK;
}
static lc_status cpu_add(int64_t n, const void *x, void *y) { return cpu_add_f32(n, (const float *)x, (float *)y); }
static lc_status cpu_scale_f32(int64_t n, float a, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] *= a;
    return LC_OK;
}
static lc_status cpu_negexp_f32(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = -expf(x[i]);
    return LC_OK;
}
static lc_status cpu_muladd_f32(int64_t n, const float *a, const float *b, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += a[i] * b[i];
    return LC_OK;
}
static lc_status cpu_sumsq_f32(int64_t n, const float *x, double *out) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    *out = s;
    return LC_OK;
}
static lc_status cpu_matmul(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const void *A,
                            const void *B, float beta, void *C, int c_f32) {
    (void)c_f32;
    return ops_matmul_ref(ta, tb, M, N, K, alpha, A, B, beta, C);
}
static lc_status cpu_matmul_batched(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int64_t sA,
                                    const void *B, int64_t sB, float beta, void *C, int64_t sC, int64_t batch, int c_f32) {
    (void)c_f32;
    for (int64_t b = 0; b < batch; b++)
        LC_TRY(ops_matmul_ref(ta, tb, M, N, K, alpha, (const float *)A + b * sA, (const float *)B + b * sB, beta,
                              (float *)C + b * sC));
    return LC_OK;
}
static lc_status cpu_rmsnorm_f(int64_t R, int64_t D, float eps, const void *x, const void *w, void *y, float *rstd) {
    return ops_rmsnorm_forward_ref(R, D, eps, x, w, y, rstd);
}
static lc_status cpu_rmsnorm_b(int64_t R, int64_t D, const void *x, const void *w, const float *rstd,
                               const void *dy, void *dx, float *dw, int acc) {
    return ops_rmsnorm_backward_ref(R, D, x, w, rstd, dy, dx, dw, acc);
}
static lc_status cpu_rope_f(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t p0, float th, const void *x, void *y) {
    return ops_rope_forward_ref(B, L, Hn, dh, p0, th, x, y);
}
static lc_status cpu_rope_b(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t p0, float th, const void *dy, void *dx) {
    return ops_rope_backward_ref(B, L, Hn, dh, p0, th, dy, dx);
}
static lc_status cpu_swiglu_f(int64_t R, int64_t F, int64_t ld, const void *g, const void *u, void *y) {
    return ops_swiglu_forward_ref(R, F, ld, g, u, y);
}
static lc_status cpu_swiglu_b(int64_t R, int64_t F, int64_t ld, const void *g, const void *u, const void *dy,
                              void *dg, void *du) {
    return ops_swiglu_backward_ref(R, F, ld, g, u, dy, dg, du);
}
static lc_status cpu_embed_f(int64_t R, int64_t V, int64_t D, const int32_t *ids, const void *t, void *o) {
    return ops_embedding_forward_ref(R, V, D, ids, t, o);
}
static lc_status cpu_embed_b(int64_t R, int64_t V, int64_t D, const int32_t *ids, const void *dout, float *dt) {
    return ops_embedding_backward_ref(R, V, D, ids, dout, dt);
}
static lc_status cpu_xent(int64_t R, int64_t V, const void *logits, const int32_t *tg, const float *w, float norm,
                          float *loss, float *row_loss, void *dlogits) {
    return ops_xent_forward_backward_ref(R, V, logits, tg, w, norm, loss, row_loss, dlogits);
}
static lc_status cpu_adamw(int64_t n, float *p, const float *g, float *m, float *v, void *p_act,
                           const struct ops_adamw *h) {
    (void)p_act;
    return ops_adamw_step_ref(n, p, g, m, v, h);
}
static lc_status cpu_attn_f(const struct attn_shape *s, const void *q, const void *k, const void *v, void *o, float *lse) {
    return attention_forward_ref(s, q, k, v, o, lse);
}
static lc_status cpu_attn_b(const struct attn_shape *s, const void *q, const void *k, const void *v, const void *o,
                            const float *lse, const void *dout, void *dq, void *dk, void *dv) {
    return attention_backward_ref(s, q, k, v, o, lse, dout, dq, dk, dv);
}
static lc_status cpu_hsa_retrieve(const struct hsa_shape *s, const void *qr, const void *lmk, int32_t *idx, float *score) {
    return hsa_retrieve_ref(s, qr, lmk, idx, score);
}
static lc_status cpu_hsa_scores_b(const struct hsa_shape *s, const void *qr, const void *lmk, const int32_t *idx,
                                  const float *ds, void *dqr, void *dlmk) {
    return hsa_scores_backward_ref(s, qr, lmk, idx, ds, dqr, dlmk);
}
static lc_status cpu_hsa_attend_f(const struct hsa_shape *s, const void *q, const void *k, const void *v,
                                  const int32_t *idx, const float *w, void *o, float *lse) {
    return hsa_attend_forward_ref(s, q, k, v, idx, w, o, lse);
}
static lc_status cpu_hsa_attend_b(const struct hsa_shape *s, const void *q, const void *k, const void *v,
                                  const int32_t *idx, const float *w, const float *lse, const void *dout,
                                  void *dq, void *dk, void *dv, float *dw) {
    return hsa_attend_backward_ref(s, q, k, v, idx, w, lse, dout, dq, dk, dv, dw);
}
static lc_status cpu_conv_f(const struct mamba_conv_shape *s, const void *x, const float *w, const float *b,
                            const void *ti, void *y, void *to) {
    return mamba_conv_forward_ref(s, x, w, b, ti, y, to);
}
static lc_status cpu_conv_b(const struct mamba_conv_shape *s, const void *x, const float *w, const float *b,
                            const void *ti, const void *dy, const void *dto, void *dx, float *dw, float *db,
                            void *dti) {
    return mamba_conv_backward_ref(s, x, w, b, ti, dy, dto, dx, dw, db, dti);
}
static lc_status cpu_conv_d(const struct mamba_conv_shape *s, const void *x, const float *w, const float *b,
                            void *tail, void *y) {
    return mamba_conv_decode_ref(s, x, w, b, tail, y);
}
static lc_status cpu_scan_f(const struct mamba_scan_shape *s, const void *x, const float *dt, const float *dtb,
                            const float *A, const void *Bm, const void *Cm, const float *D, const void *z,
                            const float *h0, void *y, float *hT) {
    return mamba_scan_forward_ref(s, x, dt, dtb, A, Bm, Cm, D, z, h0, y, hT);
}
static lc_status cpu_scan_b(const struct mamba_scan_shape *s, const void *x, const float *dt, const float *dtb,
                            const float *A, const void *Bm, const void *Cm, const float *D, const void *z,
                            const float *h0, const void *dy, const float *dhT, void *dx, float *ddt, void *dBm,
                            void *dCm, void *dz, float *dh0, float *dA, float *dD, float *ddtb) {
    return mamba_scan_backward_ref(s, x, dt, dtb, A, Bm, Cm, D, z, h0, dy, dhT, dx, ddt, dBm, dCm, dz, dh0, dA,
                                   dD, ddtb);
}
static lc_status cpu_scan_d(const struct mamba_scan_shape *s, const void *x, const float *dt, const float *dtb,
                            const float *A, const void *Bm, const void *Cm, const float *D, const void *z,
                            float *state, void *y) {
    return mamba_scan_decode_ref(s, x, dt, dtb, A, Bm, Cm, D, z, state, y);
}

static const struct backend cpu_table = {
    .name = "cpu", .is_cuda = 0, .act_bytes = 4,
    .alloc = cpu_alloc, .free = cpu_free, .upload = cpu_memcpy, .download = cpu_memcpy, .copy = cpu_memcpy,
    .zero = cpu_zero, .copy2d = cpu_copy2d, .sync = cpu_sync,
    .act_from_f32 = cpu_act_from_f32, .act_to_f32 = cpu_act_to_f32, .add = cpu_add, .add_f32 = cpu_add_f32,
    .scale_f32 = cpu_scale_f32, .sumsq_f32 = cpu_sumsq_f32, .negexp_f32 = cpu_negexp_f32, .muladd_f32 = cpu_muladd_f32,
    .matmul = cpu_matmul, .matmul_batched = cpu_matmul_batched, .rmsnorm_forward = cpu_rmsnorm_f, .rmsnorm_backward = cpu_rmsnorm_b,
    .rope_forward = cpu_rope_f, .rope_backward = cpu_rope_b, .swiglu_forward = cpu_swiglu_f,
    .swiglu_backward = cpu_swiglu_b, .embedding_forward = cpu_embed_f, .embedding_backward = cpu_embed_b,
    .xent = cpu_xent, .adamw = cpu_adamw, .attn_forward = cpu_attn_f, .attn_backward = cpu_attn_b,
    .hsa_retrieve = cpu_hsa_retrieve, .hsa_scores_backward = cpu_hsa_scores_b,
    .hsa_weights_forward = hsa_weights_forward_ref, .hsa_weights_backward = hsa_weights_backward_ref,
    .hsa_pos_decay_forward = hsa_pos_decay_forward_ref, .hsa_pos_decay_backward = hsa_pos_decay_backward_ref,
    .hsa_attend_forward = cpu_hsa_attend_f, .hsa_attend_backward = cpu_hsa_attend_b,
    .mamba_conv_forward = cpu_conv_f, .mamba_conv_backward = cpu_conv_b, .mamba_conv_decode = cpu_conv_d,
    .mamba_scan_forward = cpu_scan_f, .mamba_scan_backward = cpu_scan_b, .mamba_scan_decode = cpu_scan_d,
};

const struct backend *backend_cpu(void) { return &cpu_table; }

/* ================================ cuda ================================ */
#if LC_CUDA

/* One growing device scratch buffer for kernel workspaces and fp32 temporaries; calls on the
 * one stream are ordered, so reuse between calls is safe. Part of the backend's state. */
static void *g_scratch;
static size_t g_scratch_bytes;
static float *g_loss; /* one fp32 on the device for the cross-entropy loss */

static void *scratch(size_t bytes) {
    if (bytes <= g_scratch_bytes) return g_scratch;
    if (g_scratch) {
        lc_cuda_sync();
        lc_cuda_free(g_scratch);
    }
    g_scratch_bytes = bytes + bytes / 4 + 256;
    g_scratch = lc_cuda_malloc(g_scratch_bytes, "backend scratch");
    if (!g_scratch) g_scratch_bytes = 0;
    return g_scratch;
}

static void *cu_alloc(size_t bytes, const char *what) {
    void *p = lc_cuda_malloc(bytes ? bytes : 1, what);
    if (p && lc_cuda_memset(p, 0, bytes ? bytes : 1) != LC_OK) {
        lc_cuda_free(p);
        return NULL;
    }
    return p;
}
static void cu_free(void *p) {
    if (p) lc_cuda_free(p);
}
static lc_status cu_upload(void *d, const void *s, size_t n) { return n ? lc_cuda_memcpy_h2d(d, s, n) : LC_OK; }
static lc_status cu_download(void *d, const void *s, size_t n) { return n ? lc_cuda_memcpy_d2h(d, s, n) : LC_OK; }
static lc_status cu_copy(void *d, const void *s, size_t n) {
    return n ? backend_cuda_copy2d(d, n, s, n, n, 1) : LC_OK;
}
static lc_status cu_zero(void *p, size_t n) { return n ? lc_cuda_memset(p, 0, n) : LC_OK; }
static lc_status cu_act_from_f32(int64_t n, const float *s, void *d) { return backend_cuda_bf16_from_f32(n, s, d); }
static lc_status cu_act_to_f32(int64_t n, const void *s, float *d) { return backend_cuda_bf16_to_f32(n, s, d); }
static lc_status cu_add(int64_t n, const void *x, void *y) { return backend_cuda_add_bf16(n, x, y); }

static lc_status cu_matmul(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const void *A,
                           const void *B, float beta, void *C, int c_f32) {
    return ops_matmul_cuda(ta, tb, M, N, K, alpha, A, B, OPS_BF16, beta, C, c_f32 ? OPS_F32 : OPS_BF16, NULL);
}
static lc_status cu_matmul_batched(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int64_t sA,
                                   const void *B, int64_t sB, float beta, void *C, int64_t sC, int64_t batch, int c_f32) {
    return ops_matmul_batched_cuda(ta, tb, M, N, K, alpha, A, sA, B, sB, OPS_BF16, beta, C, sC, c_f32 ? OPS_F32 : OPS_BF16,
                                   batch, NULL);
}
static lc_status cu_rmsnorm_f(int64_t R, int64_t D, float eps, const void *x, const void *w, void *y, float *rstd) {
    return ops_rmsnorm_forward_cuda(OPS_BF16, R, D, eps, x, w, y, rstd, NULL);
}
static lc_status cu_rmsnorm_b(int64_t R, int64_t D, const void *x, const void *w, const float *rstd,
                              const void *dy, void *dx, float *dw, int acc) {
    return ops_rmsnorm_backward_cuda(OPS_BF16, R, D, x, w, rstd, dy, dx, dw, acc, NULL);
}
static lc_status cu_rope_f(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t p0, float th, const void *x, void *y) {
    return ops_rope_forward_cuda(OPS_BF16, B, L, Hn, dh, p0, th, x, y, NULL);
}
static lc_status cu_rope_b(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t p0, float th, const void *dy, void *dx) {
    return ops_rope_backward_cuda(OPS_BF16, B, L, Hn, dh, p0, th, dy, dx, NULL);
}
static lc_status cu_swiglu_f(int64_t R, int64_t F, int64_t ld, const void *g, const void *u, void *y) {
    return ops_swiglu_forward_cuda(OPS_BF16, R, F, ld, g, u, y, NULL);
}
static lc_status cu_swiglu_b(int64_t R, int64_t F, int64_t ld, const void *g, const void *u, const void *dy,
                             void *dg, void *du) {
    return ops_swiglu_backward_cuda(OPS_BF16, R, F, ld, g, u, dy, dg, du, NULL);
}
static lc_status cu_embed_f(int64_t R, int64_t V, int64_t D, const int32_t *ids, const void *t, void *o) {
    return ops_embedding_forward_cuda(OPS_BF16, R, V, D, ids, t, o, NULL);
}
static lc_status cu_embed_b(int64_t R, int64_t V, int64_t D, const int32_t *ids, const void *dout, float *dt) {
    return ops_embedding_backward_cuda(OPS_BF16, R, V, D, ids, dout, dt, NULL);
}
static lc_status cu_xent(int64_t R, int64_t V, const void *logits, const int32_t *tg, const float *w, float norm,
                         float *loss, float *row_loss, void *dlogits) {
    if (!g_loss && !(g_loss = lc_cuda_malloc(sizeof(float), "xent loss"))) return LC_ENOMEM;
    LC_TRY(ops_xent_forward_backward_cuda(OPS_BF16, R, V, logits, tg, w, norm, g_loss, row_loss, dlogits, NULL));
    return lc_cuda_memcpy_d2h(loss, g_loss, sizeof(float));
}
static lc_status cu_adamw(int64_t n, float *p, const float *g, float *m, float *v, void *p_act,
                          const struct ops_adamw *h) {
    return ops_adamw_step_cuda(n, p, g, m, v, p_act, h, NULL);
}
static lc_status cu_attn_f(const struct attn_shape *s, const void *q, const void *k, const void *v, void *o, float *lse) {
    return attention_forward_cuda(s, q, k, v, o, lse, NULL);
}
static lc_status cu_attn_b(const struct attn_shape *s, const void *q, const void *k, const void *v, const void *o,
                           const float *lse, const void *dout, void *dq, void *dk, void *dv) {
    size_t ws = attention_backward_workspace_cuda(s);
    void *w = scratch(ws);
    if (ws && !w) return LC_ENOMEM;
    return attention_backward_cuda(s, q, k, v, o, lse, dout, dq, dk, dv, w, NULL);
}
static lc_status cu_hsa_retrieve(const struct hsa_shape *s, const void *qr, const void *lmk, int32_t *idx, float *score) {
    size_t ws = hsa_retrieve_workspace_cuda(s);
    void *w = scratch(ws);
    if (ws && !w) return LC_ENOMEM;
    return hsa_retrieve_cuda(s, qr, lmk, idx, score, w, NULL);
}
/* The kernel accumulates fp32 dq_r / dlmk; the table's are act: accumulate into fp32 zeros in
 * scratch, then add into the act buffers. */
static lc_status cu_hsa_scores_b(const struct hsa_shape *s, const void *qr, const void *lmk, const int32_t *idx,
                                 const float *ds, void *dqr, void *dlmk) {
    int64_t nq = s->B * hsa_num_rows(s) * s->Hr * s->dr, nl = s->B * hsa_num_chunks(s) * s->Hr * s->dr;
    float *t = scratch((size_t)(nq + nl) * sizeof(float));
    if (!t) return LC_ENOMEM;
    LC_TRY(lc_cuda_memset(t, 0, (size_t)(nq + nl) * sizeof(float)));
    LC_TRY(hsa_scores_backward_cuda(s, qr, lmk, idx, ds, t, t + nq, NULL));
    LC_TRY(backend_cuda_add_f32_to_bf16(nq, t, dqr));
    return nl ? backend_cuda_add_f32_to_bf16(nl, t + nq, dlmk) : LC_OK;
}
static lc_status cu_hsa_weights_f(const struct hsa_shape *s, const float *score, float *w) {
    return hsa_weights_forward_cuda(s, score, w, NULL);
}
static lc_status cu_hsa_weights_b(const struct hsa_shape *s, const float *score, const float *w, const float *dw,
                                  float *ds) {
    return hsa_weights_backward_cuda(s, score, w, dw, ds, NULL);
}
static lc_status cu_hsa_pos_decay_f(const struct hsa_shape *s, const float *beta, float *score) {
    return hsa_pos_decay_forward_cuda(s, beta, score, NULL);
}
static lc_status cu_hsa_pos_decay_b(const struct hsa_shape *s, const float *score, const float *ds, float *dbeta) {
    return hsa_pos_decay_backward_cuda(s, score, ds, dbeta, NULL);
}
static lc_status cu_hsa_attend_f(const struct hsa_shape *s, const void *q, const void *k, const void *v,
                                 const int32_t *idx, const float *w, void *o, float *lse) {
    return hsa_attend_forward_cuda(s, q, k, v, idx, w, o, lse, NULL);
}
static lc_status cu_hsa_attend_b(const struct hsa_shape *s, const void *q, const void *k, const void *v,
                                 const int32_t *idx, const float *w, const float *lse, const void *dout,
                                 void *dq, void *dk, void *dv, float *dw) {
    size_t ws = hsa_attend_backward_workspace_cuda(s);
    void *t = scratch(ws);
    if (ws && !t) return LC_ENOMEM;
    return hsa_attend_backward_cuda(s, q, k, v, idx, w, lse, dout, dq, dk, dv, dw, t, NULL);
}
static lc_status cu_conv_f(const struct mamba_conv_shape *s, const void *x, const float *w, const float *b,
                           const void *ti, void *y, void *to) {
    return mamba_conv_forward_cuda(s, x, w, b, ti, y, to, NULL);
}
static lc_status cu_conv_b(const struct mamba_conv_shape *s, const void *x, const float *w, const float *b,
                           const void *ti, const void *dy, const void *dto, void *dx, float *dw, float *db,
                           void *dti) {
    return mamba_conv_backward_cuda(s, x, w, b, ti, dy, dto, dx, dw, db, dti, NULL);
}
static lc_status cu_conv_d(const struct mamba_conv_shape *s, const void *x, const float *w, const float *b,
                           void *tail, void *y) {
    return mamba_conv_decode_cuda(s, x, w, b, tail, y, NULL);
}
static lc_status cu_scan_f(const struct mamba_scan_shape *s, const void *x, const float *dt, const float *dtb,
                           const float *A, const void *Bm, const void *Cm, const float *D, const void *z,
                           const float *h0, void *y, float *hT) {
    return mamba_scan_forward_cuda(s, x, dt, dtb, A, Bm, Cm, D, z, h0, y, hT, NULL, NULL);
}
/* The kernel writes fp32 dBm / dCm; the table's are act. */
static lc_status cu_scan_b(const struct mamba_scan_shape *s, const void *x, const float *dt, const float *dtb,
                           const float *A, const void *Bm, const void *Cm, const float *D, const void *z,
                           const float *h0, const void *dy, const float *dhT, void *dx, float *ddt, void *dBm,
                           void *dCm, void *dz, float *dh0, float *dA, float *dD, float *ddtb) {
    int64_t n = s->B * s->L * s->G * s->N;
    float *t = scratch((size_t)2 * n * sizeof(float));
    if (!t) return LC_ENOMEM;
    LC_TRY(mamba_scan_backward_cuda(s, x, dt, dtb, A, Bm, Cm, D, z, h0, dy, dhT, dx, ddt, t, t + n, dz, dh0, dA,
                                    dD, ddtb, NULL, NULL));
    LC_TRY(backend_cuda_bf16_from_f32(n, t, dBm));
    return backend_cuda_bf16_from_f32(n, t + n, dCm);
}
static lc_status cu_scan_d(const struct mamba_scan_shape *s, const void *x, const float *dt, const float *dtb,
                           const float *A, const void *Bm, const void *Cm, const float *D, const void *z,
                           float *state, void *y) {
    return mamba_scan_decode_cuda(s, x, dt, dtb, A, Bm, Cm, D, z, state, y, NULL);
}

static const struct backend cuda_table = {
    .name = "cuda", .is_cuda = 1, .act_bytes = 2,
    .alloc = cu_alloc, .free = cu_free, .upload = cu_upload, .download = cu_download, .copy = cu_copy,
    .zero = cu_zero, .copy2d = backend_cuda_copy2d, .sync = lc_cuda_sync,
    .act_from_f32 = cu_act_from_f32, .act_to_f32 = cu_act_to_f32, .add = cu_add, .add_f32 = backend_cuda_add_f32,
    .scale_f32 = backend_cuda_scale_f32, .sumsq_f32 = backend_cuda_sumsq_f32, .negexp_f32 = backend_cuda_negexp_f32,
    .muladd_f32 = backend_cuda_muladd_f32,
    .matmul = cu_matmul, .matmul_batched = cu_matmul_batched, .rmsnorm_forward = cu_rmsnorm_f, .rmsnorm_backward = cu_rmsnorm_b,
    .rope_forward = cu_rope_f, .rope_backward = cu_rope_b, .swiglu_forward = cu_swiglu_f,
    .swiglu_backward = cu_swiglu_b, .embedding_forward = cu_embed_f, .embedding_backward = cu_embed_b,
    .xent = cu_xent, .adamw = cu_adamw, .attn_forward = cu_attn_f, .attn_backward = cu_attn_b,
    .hsa_retrieve = cu_hsa_retrieve, .hsa_scores_backward = cu_hsa_scores_b,
    .hsa_weights_forward = cu_hsa_weights_f, .hsa_weights_backward = cu_hsa_weights_b,
    .hsa_pos_decay_forward = cu_hsa_pos_decay_f, .hsa_pos_decay_backward = cu_hsa_pos_decay_b,
    .hsa_attend_forward = cu_hsa_attend_f, .hsa_attend_backward = cu_hsa_attend_b,
    .mamba_conv_forward = cu_conv_f, .mamba_conv_backward = cu_conv_b, .mamba_conv_decode = cu_conv_d,
    .mamba_scan_forward = cu_scan_f, .mamba_scan_backward = cu_scan_b, .mamba_scan_decode = cu_scan_d,
};

const struct backend *backend_cuda(void) {
    const char *why = NULL;
    if (lc_cuda_device_count(&why) <= 0) {
        lc_errorf(LC_EDEVICE, "cuda backend: %s", why ? why : "no CUDA device");
        return NULL;
    }
    return &cuda_table;
}

/* ---- profiled table (backend_profiled): each op between two CUDA events, labelled ---- */
static const struct backend *g_pin; /* the wrapped table */
static const char *g_psection = "";
static char g_plabel[96];

#define PW(op, params, args, ...)                                                                  \
    static lc_status pw_##op params {                                                              \
        int k_ = backend_cuda_prof_start();                                                        \
        lc_status s_ = g_pin->op args;                                                             \
        snprintf(g_plabel, sizeof g_plabel, __VA_ARGS__);                                          \
        backend_cuda_prof_stop(k_, g_plabel, g_psection);                                          \
        return s_;                                                                                 \
    }
PW(upload, (void *d, const void *s, size_t n), (d, s, n), "upload (host sync)")
PW(download, (void *d, const void *s, size_t n), (d, s, n), "download (host sync)")
PW(copy, (void *d, const void *s, size_t n), (d, s, n), "copy")
PW(zero, (void *p, size_t n), (p, n), "zero")
PW(copy2d, (void *d, size_t dp, const void *s, size_t sp, size_t w, size_t r), (d, dp, s, sp, w, r),
   "copy2d%s", r > 1 ? " (strided)" : "")
PW(act_from_f32, (int64_t n, const float *s, void *d), (n, s, d), "act_from_f32")
PW(act_to_f32, (int64_t n, const void *s, float *d), (n, s, d), "act_to_f32")
PW(add, (int64_t n, const void *x, void *y), (n, x, y), "add act")
PW(add_f32, (int64_t n, const float *x, float *y), (n, x, y), "add f32")
PW(scale_f32, (int64_t n, float a, float *y), (n, a, y), "scale f32")
PW(sumsq_f32, (int64_t n, const float *x, double *o), (n, x, o), "sumsq f32 (host sync)")
PW(matmul, (int ta, int tb, int64_t M, int64_t N, int64_t K, float al, const void *A, const void *B, float be, void *C, int cf),
   (ta, tb, M, N, K, al, A, B, be, C, cf), "gemm %c%c M=%lld N=%lld K=%lld%s%s", ta ? 'T' : 'N', tb ? 'T' : 'N',
   (long long)M, (long long)N, (long long)K, be != 0 ? " beta=1" : "", cf ? " C=f32" : "")
PW(matmul_batched, (int ta, int tb, int64_t M, int64_t N, int64_t K, float al, const void *A, int64_t sA, const void *B, int64_t sB,
                    float be, void *C, int64_t sC, int64_t nb, int cf),
   (ta, tb, M, N, K, al, A, sA, B, sB, be, C, sC, nb, cf), "gemm batched %c%c M=%lld N=%lld K=%lld x%lld", ta ? 'T' : 'N',
   tb ? 'T' : 'N', (long long)M, (long long)N, (long long)K, (long long)nb)
PW(rmsnorm_forward, (int64_t R, int64_t D, float e, const void *x, const void *w, void *y, float *r), (R, D, e, x, w, y, r),
   "rmsnorm fwd D=%lld", (long long)D)
PW(rmsnorm_backward, (int64_t R, int64_t D, const void *x, const void *w, const float *r, const void *dy, void *dx, float *dw, int a),
   (R, D, x, w, r, dy, dx, dw, a), "rmsnorm bwd D=%lld", (long long)D)
PW(rope_forward, (int64_t B, int64_t L, int64_t H, int64_t dh, int64_t p, float t, const void *x, void *y), (B, L, H, dh, p, t, x, y),
   "rope fwd H=%lld", (long long)H)
PW(rope_backward, (int64_t B, int64_t L, int64_t H, int64_t dh, int64_t p, float t, const void *x, void *y), (B, L, H, dh, p, t, x, y),
   "rope bwd H=%lld", (long long)H)
PW(swiglu_forward, (int64_t R, int64_t F, int64_t ld, const void *g, const void *u, void *y), (R, F, ld, g, u, y), "swiglu fwd")
PW(swiglu_backward, (int64_t R, int64_t F, int64_t ld, const void *g, const void *u, const void *dy, void *dg, void *du),
   (R, F, ld, g, u, dy, dg, du), "swiglu bwd")
PW(embedding_forward, (int64_t R, int64_t V, int64_t D, const int32_t *i, const void *t, void *o), (R, V, D, i, t, o),
   "embedding fwd V=%lld", (long long)V)
PW(embedding_backward, (int64_t R, int64_t V, int64_t D, const int32_t *i, const void *d, float *t), (R, V, D, i, d, t),
   "embedding bwd V=%lld", (long long)V)
PW(xent, (int64_t R, int64_t V, const void *lg, const int32_t *tg, const float *w, float n, float *l, float *rl, void *dl),
   (R, V, lg, tg, w, n, l, rl, dl), "xent (host sync)")
PW(adamw, (int64_t n, float *p, const float *g, float *m, float *v, void *pa, const struct ops_adamw *h), (n, p, g, m, v, pa, h), "adamw")
PW(attn_forward, (const struct attn_shape *s, const void *q, const void *k, const void *v, void *o, float *l), (s, q, k, v, o, l),
   "attention fwd W=%lld L=%lld %s", (long long)s->W, (long long)s->L, s->causal ? "causal" : "bidir")
PW(attn_backward, (const struct attn_shape *s, const void *q, const void *k, const void *v, const void *o, const float *l,
                   const void *d, void *dq, void *dk, void *dv),
   (s, q, k, v, o, l, d, dq, dk, dv), "attention bwd W=%lld L=%lld %s", (long long)s->W, (long long)s->L, s->causal ? "causal" : "bidir")
PW(hsa_retrieve, (const struct hsa_shape *s, const void *q, const void *l, int32_t *i, float *sc), (s, q, l, i, sc), "hsa retrieve")
PW(hsa_scores_backward, (const struct hsa_shape *s, const void *q, const void *l, const int32_t *i, const float *d, void *dq, void *dl),
   (s, q, l, i, d, dq, dl), "hsa scores bwd")
PW(hsa_weights_forward, (const struct hsa_shape *s, const float *sc, float *w), (s, sc, w), "hsa weights fwd")
PW(hsa_weights_backward, (const struct hsa_shape *s, const float *sc, const float *w, const float *dw, float *ds), (s, sc, w, dw, ds),
   "hsa weights bwd")
PW(hsa_pos_decay_forward, (const struct hsa_shape *s, const float *b, float *sc), (s, b, sc), "hsa pos decay fwd")
PW(hsa_pos_decay_backward, (const struct hsa_shape *s, const float *sc, const float *ds, float *db), (s, sc, ds, db),
   "hsa pos decay bwd")
PW(hsa_attend_forward, (const struct hsa_shape *s, const void *q, const void *k, const void *v, const int32_t *i, const float *w,
                        void *o, float *l),
   (s, q, k, v, i, w, o, l), "hsa attend fwd")
PW(hsa_attend_backward, (const struct hsa_shape *s, const void *q, const void *k, const void *v, const int32_t *i, const float *w,
                         const float *l, const void *d, void *dq, void *dk, void *dv, float *dw),
   (s, q, k, v, i, w, l, d, dq, dk, dv, dw), "hsa attend bwd")
PW(mamba_conv_forward, (const struct mamba_conv_shape *s, const void *x, const float *w, const float *b, const void *ti, void *y, void *to),
   (s, x, w, b, ti, y, to), "mamba conv fwd")
PW(mamba_conv_backward, (const struct mamba_conv_shape *s, const void *x, const float *w, const float *b, const void *ti, const void *dy,
                         const void *dto, void *dx, float *dw, float *db, void *dti),
   (s, x, w, b, ti, dy, dto, dx, dw, db, dti), "mamba conv bwd")
PW(mamba_scan_forward, (const struct mamba_scan_shape *s, const void *x, const float *dt, const float *dtb, const float *A, const void *Bm,
                        const void *Cm, const float *D, const void *z, const float *h0, void *y, float *hT),
   (s, x, dt, dtb, A, Bm, Cm, D, z, h0, y, hT), "mamba scan fwd")
PW(mamba_scan_backward, (const struct mamba_scan_shape *s, const void *x, const float *dt, const float *dtb, const float *A, const void *Bm,
                         const void *Cm, const float *D, const void *z, const float *h0, const void *dy, const float *dhT, void *dx,
                         float *ddt, void *dBm, void *dCm, void *dz, float *dh0, float *dA, float *dD, float *ddtb),
   (s, x, dt, dtb, A, Bm, Cm, D, z, h0, dy, dhT, dx, ddt, dBm, dCm, dz, dh0, dA, dD, ddtb), "mamba scan bwd")
#undef PW

static struct backend g_prof_table;

const struct backend *backend_profiled(const struct backend *inner) {
    if (!inner || !inner->is_cuda) return NULL;
    g_pin = inner;
    g_prof_table = *inner;
    struct backend *t = &g_prof_table;
    t->name = "cuda (profiled)";
    t->upload = pw_upload; t->download = pw_download; t->copy = pw_copy; t->zero = pw_zero; t->copy2d = pw_copy2d;
    t->act_from_f32 = pw_act_from_f32; t->act_to_f32 = pw_act_to_f32; t->add = pw_add; t->add_f32 = pw_add_f32;
    t->scale_f32 = pw_scale_f32; t->sumsq_f32 = pw_sumsq_f32; t->matmul = pw_matmul; t->matmul_batched = pw_matmul_batched;
    t->rmsnorm_forward = pw_rmsnorm_forward; t->rmsnorm_backward = pw_rmsnorm_backward;
    t->rope_forward = pw_rope_forward; t->rope_backward = pw_rope_backward;
    t->swiglu_forward = pw_swiglu_forward; t->swiglu_backward = pw_swiglu_backward;
    t->embedding_forward = pw_embedding_forward; t->embedding_backward = pw_embedding_backward;
    t->xent = pw_xent; t->adamw = pw_adamw; t->attn_forward = pw_attn_forward; t->attn_backward = pw_attn_backward;
    t->hsa_retrieve = pw_hsa_retrieve; t->hsa_scores_backward = pw_hsa_scores_backward;
    t->hsa_weights_forward = pw_hsa_weights_forward; t->hsa_weights_backward = pw_hsa_weights_backward;
    t->hsa_pos_decay_forward = pw_hsa_pos_decay_forward; t->hsa_pos_decay_backward = pw_hsa_pos_decay_backward;
    t->hsa_attend_forward = pw_hsa_attend_forward; t->hsa_attend_backward = pw_hsa_attend_backward;
    t->mamba_conv_forward = pw_mamba_conv_forward; t->mamba_conv_backward = pw_mamba_conv_backward;
    t->mamba_scan_forward = pw_mamba_scan_forward; t->mamba_scan_backward = pw_mamba_scan_backward;
    return t;
}
void backend_prof_section(const char *name) { g_psection = name ? name : ""; }
void backend_prof_report(FILE *f, int steps, double wall_ms) { backend_cuda_prof_report(f, steps, wall_ms); }
#else
const struct backend *backend_cuda(void) {
    lc_errorf(LC_EUNSUPPORTED, "cuda backend: not built (no nvcc at build time, or CUDA=0)");
    return NULL;
}
const struct backend *backend_profiled(const struct backend *inner) {
    (void)inner;
    return NULL;
}
void backend_prof_section(const char *name) { (void)name; }
void backend_prof_report(FILE *f, int steps, double wall_ms) {
    (void)f;
    (void)steps;
    (void)wall_ms;
}
#endif

const struct backend *backend_by_name(const char *name) {
    if (!name || !strcmp(name, "cpu")) return backend_cpu();
    if (!strcmp(name, "cuda")) return backend_cuda();
    if (!strcmp(name, "auto")) {
        const struct backend *b = NULL;
#if LC_CUDA
        b = backend_cuda();
#endif
        lc_clear_error();
        return b ? b : backend_cpu();
    }
    lc_errorf(LC_EINVAL, "backend '%s': expected cpu, cuda or auto", name);
    return NULL;
}
