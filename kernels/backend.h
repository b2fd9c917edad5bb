/* backend.h — the backend table: one function pointer per op the model needs, filled from the C
 * references (backend_cpu) or the CUDA kernels (backend_cuda). Model code calls only this table,
 * so one model runs on either device and tests can run both and compare.
 *
 * Storage types (the whole contract in one place):
 *   act   activations and the weight copy the forward reads: `void *`, fp32 on the cpu backend,
 *         bf16 on the cuda backend (act_bytes = 4 | 2). Every activation argument and every
 *         activation gradient below is act unless marked f32.
 *   f32   parameter gradients (accumulated, +=), master weights, AdamW state, rstd, lse, HSA
 *         scores / weights / dw, Mamba dt, A, D, conv weights: always fp32.
 *   ids   int32. All pointers live on the backend's device (host memory for cpu).
 * Parameter gradients accumulate; activation gradients are overwritten unless the op says
 * "acc" (then they are added to what the buffer holds).
 *
 * Ops that the kernel families lack and the model needs (a strided copy, y += x, conversions)
 * are here too: cpu loops in backend.c, CUDA kernels in backend.cu. All calls are ordered on
 * one stream (the default one); download() and sync() wait for it.
 */
#ifndef LONGCTX_BACKEND_H
#define LONGCTX_BACKEND_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "attention.h"
#include "common.h"
#include "hsa.h"
#include "mamba.h"
#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

struct backend {
    const char *name; /* "cpu" | "cuda" */
    int is_cuda;
    size_t act_bytes; /* 4 (fp32) | 2 (bf16) */

    /* ---- memory (bytes) ---- */
    void *(*alloc)(size_t bytes, const char *what); /* zero-filled; NULL + LC_ENOMEM message */
    void (*free)(void *p);
    lc_status (*upload)(void *dst, const void *host_src, size_t bytes);
    lc_status (*download)(void *host_dst, const void *src, size_t bytes);
    lc_status (*copy)(void *dst, const void *src, size_t bytes);
    lc_status (*zero)(void *p, size_t bytes);
    /* rows x width bytes from src (row pitch spitch) to dst (row pitch dpitch) */
    lc_status (*copy2d)(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                        size_t rows);
    lc_status (*sync)(void);

    /* ---- elementwise ---- */
    lc_status (*act_from_f32)(int64_t n, const float *src, void *dst);   /* both on device */
    lc_status (*act_to_f32)(int64_t n, const void *src, float *dst);
    lc_status (*add)(int64_t n, const void *x, void *y);                 /* y += x (act) */
    lc_status (*add_f32)(int64_t n, const float *x, float *y);           /* y += x (f32) */
    lc_status (*scale_f32)(int64_t n, float a, float *y);                /* y *= a (f32) */
    lc_status (*sumsq_f32)(int64_t n, const float *x, double *out_host); /* sum x^2 -> host */
    lc_status (*negexp_f32)(int64_t n, const float *x, float *y);        /* y = -exp(x) */
    lc_status (*muladd_f32)(int64_t n, const float *a, const float *b, float *y); /* y += a*b */

    /* ---- common ops (ops.h); weights in act, dweight / dtable f32 (acc) ---- */
    /* c_f32 = 1: C is an f32 parameter gradient (beta = 1 accumulates); 0: C is act. */
    lc_status (*matmul)(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const void *A,
                        const void *B, float beta, void *C, int c_f32);
    /* for b < batch: C_b = alpha op(A_b) op(B_b) + beta C_b, X_b = X + b * sX (elements; 0 shares) */
    lc_status (*matmul_batched)(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                                const void *A, int64_t sA, const void *B, int64_t sB, float beta,
                                void *C, int64_t sC, int64_t batch, int c_f32);
    lc_status (*rmsnorm_forward)(int64_t R, int64_t D, float eps, const void *x, const void *w,
                                 void *y, float *rstd);
    lc_status (*rmsnorm_backward)(int64_t R, int64_t D, const void *x, const void *w,
                                  const float *rstd, const void *dy, void *dx, float *dw,
                                  int accumulate_dx);
    lc_status (*rope_forward)(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t pos0,
                              float theta, const void *x, void *y);
    lc_status (*rope_backward)(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t pos0,
                               float theta, const void *dy, void *dx);
    lc_status (*swiglu_forward)(int64_t R, int64_t F, int64_t ld, const void *gate, const void *up,
                                void *y);
    lc_status (*swiglu_backward)(int64_t R, int64_t F, int64_t ld, const void *gate,
                                 const void *up, const void *dy, void *dgate, void *dup);
    lc_status (*embedding_forward)(int64_t R, int64_t V, int64_t D, const int32_t *ids,
                                   const void *table, void *out);
    lc_status (*embedding_backward)(int64_t R, int64_t V, int64_t D, const int32_t *ids,
                                    const void *dout, float *dtable);
    /* loss_host: host pointer (the cuda backend copies the device value back: one sync). */
    lc_status (*xent)(int64_t R, int64_t V, const void *logits, const int32_t *targets,
                      const float *weights, float norm, float *loss_host, float *row_loss,
                      void *dlogits);
    /* p, grad, m, v f32; p_act: act copy of p to refresh (NULL on cpu, where act = p). */
    lc_status (*adamw)(int64_t n, float *p, const float *grad, float *m, float *v, void *p_act,
                       const struct ops_adamw *h);

    /* ---- attention (attention.h): dense / sliding window / non-causal; lse f32 required ---- */
    lc_status (*attn_forward)(const struct attn_shape *s, const void *q, const void *k,
                              const void *v, void *o, float *lse);
    lc_status (*attn_backward)(const struct attn_shape *s, const void *q, const void *k,
                               const void *v, const void *o, const float *lse, const void *dout,
                               void *dq, void *dk, void *dv);

    /* ---- HSA (hsa.h): q_r, lmk, q, k, v, o act; idx int32; score, w, lse, dw f32 ---- */
    lc_status (*hsa_retrieve)(const struct hsa_shape *s, const void *q_r, const void *lmk,
                              int32_t *idx, float *score);
    /* dq_r, dlmk: act, acc */
    lc_status (*hsa_scores_backward)(const struct hsa_shape *s, const void *q_r, const void *lmk,
                                     const int32_t *idx, const float *dscore, void *dq_r,
                                     void *dlmk);
    lc_status (*hsa_weights_forward)(const struct hsa_shape *s, const float *score, float *w);
    lc_status (*hsa_weights_backward)(const struct hsa_shape *s, const float *score,
                                      const float *w, const float *dw, float *dscore);
    /* position decay: score += k * beta (in place); dbeta += sum k * dscore; beta, dbeta f32 scalars */
    lc_status (*hsa_pos_decay_forward)(const struct hsa_shape *s, const float *beta, float *score);
    lc_status (*hsa_pos_decay_backward)(const struct hsa_shape *s, const float *score,
                                        const float *dscore, float *dbeta);
    lc_status (*hsa_attend_forward)(const struct hsa_shape *s, const void *q, const void *k,
                                    const void *v, const int32_t *idx, const float *w, void *o,
                                    float *lse);
    /* dq, dk, dv act (overwritten), dw f32 (overwritten) */
    lc_status (*hsa_attend_backward)(const struct hsa_shape *s, const void *q, const void *k,
                                     const void *v, const int32_t *idx, const float *w,
                                     const float *lse, const void *dout, void *dq, void *dk,
                                     void *dv, float *dw);

    /* ---- Mamba-2 (mamba.h): x, y, tails, Bm, Cm, z act; weights / dt / A / D / state f32 ---- */
    lc_status (*mamba_conv_forward)(const struct mamba_conv_shape *s, const void *x,
                                    const float *weight, const float *bias, const void *tail_in,
                                    void *y, void *tail_out);
    lc_status (*mamba_conv_backward)(const struct mamba_conv_shape *s, const void *x,
                                     const float *weight, const float *bias, const void *tail_in,
                                     const void *dy, const void *dtail_out, void *dx,
                                     float *dweight, float *dbias, void *dtail_in);
    lc_status (*mamba_conv_decode)(const struct mamba_conv_shape *s, const void *x,
                                   const float *weight, const float *bias, void *tail, void *y);
    lc_status (*mamba_scan_forward)(const struct mamba_scan_shape *s, const void *x,
                                    const float *dt, const float *dt_bias, const float *A,
                                    const void *Bm, const void *Cm, const float *D, const void *z,
                                    const float *h0, void *y, float *hT);
    /* dx, dz act; ddt, dA, dD, ddt_bias, dh0 f32 (written); dBm, dCm act (written) */
    lc_status (*mamba_scan_backward)(const struct mamba_scan_shape *s, const void *x,
                                     const float *dt, const float *dt_bias, const float *A,
                                     const void *Bm, const void *Cm, const float *D,
                                     const void *z, const float *h0, const void *dy,
                                     const float *dhT, void *dx, float *ddt, void *dBm, void *dCm,
                                     void *dz, float *dh0, float *dA, float *dD, float *ddt_bias);
    lc_status (*mamba_scan_decode)(const struct mamba_scan_shape *s, const void *x,
                                   const float *dt, const float *dt_bias, const float *A,
                                   const void *Bm, const void *Cm, const float *D, const void *z,
                                   float *state, void *y);
};

/* The C reference backend (always available). */
const struct backend *backend_cpu(void);
/* The CUDA backend; NULL (with an lc_last_error message) when not built or no device. */
const struct backend *backend_cuda(void);
/* "cpu" | "cuda" | "auto" (cuda when available, else cpu). */
const struct backend *backend_by_name(const char *name);

/* Profiling (cuda only; NULL elsewhere): the same table with a pair of CUDA events around every
 * op (no synchronization while recording), labelled by the op, its main dims and the section the
 * model last named (backend_prof_section). backend_prof_report() waits once, then prints the
 * device time per op label and per section, sorted, per step, against the wall time per step. */
const struct backend *backend_profiled(const struct backend *inner);
void backend_prof_section(const char *name); /* a static string; no-op cost when not profiling */
void backend_prof_report(FILE *f, int steps, double wall_ms);

#if LC_CUDA
/* backend.cu: elementwise kernels for the cuda table (default stream). */
lc_status backend_cuda_bf16_from_f32(int64_t n, const float *src, bf16_t *dst);
lc_status backend_cuda_bf16_to_f32(int64_t n, const bf16_t *src, float *dst);
lc_status backend_cuda_add_bf16(int64_t n, const bf16_t *x, bf16_t *y);
lc_status backend_cuda_add_f32_to_bf16(int64_t n, const float *x, bf16_t *y);
lc_status backend_cuda_add_f32(int64_t n, const float *x, float *y);
lc_status backend_cuda_scale_f32(int64_t n, float a, float *y);
lc_status backend_cuda_sumsq_f32(int64_t n, const float *x, double *out_host);
lc_status backend_cuda_negexp_f32(int64_t n, const float *x, float *y);
lc_status backend_cuda_muladd_f32(int64_t n, const float *a, const float *b, float *y);
lc_status backend_cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t rows);
int backend_cuda_prof_start(void);
void backend_cuda_prof_stop(int slot, const char *label, const char *section);
void backend_cuda_prof_flush(void);
void backend_cuda_prof_report(FILE *f, int steps, double wall_ms);
#endif

#ifdef __cplusplus
}
#endif
#endif
