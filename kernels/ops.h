/* ops.h — the common ops every model layer uses outside the token mixers: matmul, RMSNorm,
 * RoPE, SwiGLU, embedding, softmax cross-entropy, AdamW. Each has a C reference (fp32,
 * kernels/ops_ref.c, `*_ref`) and a CUDA twin (kernels/ops.cu, `*_cuda`) tested against it.
 *
 * Conventions
 *   - Row-major, contiguous, 64-bit dims. R = number of rows (tokens: B*L, or B*L*H for a
 *     per-head norm), D = feature width, V = vocabulary, F = MLP hidden width.
 *   - Functions return lc_status; bad arguments give LC_EINVAL with a message naming them.
 *   - Forward outputs are overwritten; parameter gradients (dweight, dtable) are ACCUMULATED
 *     (+=), so several uses of one parameter sum into one buffer. Activation gradients are
 *     overwritten unless the op says otherwise.
 *   - CPU reference: fp32 everywhere (accumulations in double where a row is reduced).
 *   - CUDA: `dt` (enum ops_dtype) is the storage type of activations and of the weights the
 *     forward reads (x, y, dx, dy, weight, table, gate, up, logits, dlogits): bf16 in a
 *     training run (weights are AdamW's bf16 copy), fp32 for exact checks. Compute, saved
 *     statistics (rstd), parameter gradients, losses, AdamW state and master weights: fp32.
 *     `stream` is a cudaStream_t (NULL = legacy default stream). All device pointers.
 *   - CUDA process state (documented, lazily created on first use, never freed before exit
 *     unless ops_cuda_release() is called): one cuBLAS handle, a 4-byte device status word plus
 *     its pinned host twin (for reporting bad ids). The handle is bound to the stream of each
 *     call; do not call the CUDA ops from several host threads at once.
 *   - Determinism: every CUDA op gives bit-identical results run to run (no float atomics:
 *     dweight of RMSNorm goes through per-block partials reduced in a fixed order; the
 *     embedding backward is a GEMM (small V) or a stable sort and in-order sums (large V)).
 *   - Scratch comes from cudaMallocAsync; the default pool is set to keep freed memory (release
 *     threshold max) so that a synchronization does not hand it back and re-map it each call.
 */
#ifndef LONGCTX_OPS_H
#define LONGCTX_OPS_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ops_dtype { OPS_F32 = 0, OPS_BF16 = 1 };

/* ---- matmul ------------------------------------------------------------------------------
 * C[M,N] = alpha * op(A) op(B) + beta * C, row-major, op(X) = X or X^T by the flags:
 *   A is [M,K] (ta = 0) or [K,M] (ta = 1); B is [K,N] (tb = 0) or [N,K] (tb = 1).
 * A linear layer y = x W^T (x [R,Din], W [Dout,Din]): matmul(0,1, R,Dout,Din, 1, x, W, 0, y);
 * its backward: dx = dy W: matmul(0,0, R,Din,Dout, 1, dy, W, 0, dx);
 *               dW += dy^T x: matmul(1,0, Dout,Din,R, 1, dy, x, 1, dW).
 * beta = 0 ignores what C held (NaN included), as BLAS does.
 * Reference: blocked (packed tiles), OpenMP over output tiles, fp32 accumulation per K-block.
 * CUDA: cublasGemmEx, fp32 accumulation (CUBLAS_COMPUTE_32F). ab_dt: type of A and B (bf16, or
 * fp32 computed in true fp32, no TF32); c_dt: type of C (fp32 C is how a bf16 product
 * accumulates into fp32 parameter gradients with beta = 1). M, N, K < 2^31. */
lc_status ops_matmul_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, const float *B, float beta, float *C);
lc_status ops_matmul_cuda(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                          const void *A, const void *B, int ab_dt, float beta, void *C, int c_dt,
                          void *stream);

/* Strided batched form: for b < batch, C_b = alpha op(A_b) op(B_b) + beta C_b with
 * X_b = X + b * sX (strides in elements; sA = 0 or sB = 0 shares one matrix); each matrix is
 * row-major and contiguous as in ops_matmul_cuda. One cublasGemmStridedBatchedEx call. */
lc_status ops_matmul_batched_cuda(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                                  const void *A, int64_t sA, const void *B, int64_t sB, int ab_dt,
                                  float beta, void *C, int64_t sC, int c_dt, int64_t batch,
                                  void *stream);

/* ---- RMSNorm -----------------------------------------------------------------------------
 * x [R,D], weight [D]:  rstd[r] = 1/sqrt(mean_j x[r,j]^2 + eps),  y = x * rstd[r] * weight.
 * rstd [R] (fp32) is saved for the backward; may be NULL in the forward (inference).
 * CUDA bf16 rows with D % 8 == 0 (D <= 256 a power-of-two number of 8-wide vectors, or
 * D = 512, 768, 1024) and 16-byte aligned rows use vector kernels (16-byte loads, the row in
 * registers, one pass); other shapes and fp32 use one warp per row.
 * Backward, with xh = x*rstd and g = weight*dy:
 *   dx = rstd * (g - xh * mean_j(g*xh))   (dx += that when accumulate_dx = 1: the residual
 *                                          stream's gradient arrives already in dx)
 *   dweight[j] += sum_r dy[r,j] * xh[r,j]  (fp32)
 * dx may not alias x or dy. */
lc_status ops_rmsnorm_forward_ref(int64_t R, int64_t D, float eps, const float *x,
                                  const float *weight, float *y, float *rstd);
lc_status ops_rmsnorm_backward_ref(int64_t R, int64_t D, const float *x, const float *weight,
                                   const float *rstd, const float *dy, float *dx, float *dweight,
                                   int accumulate_dx);
lc_status ops_rmsnorm_forward_cuda(int dt, int64_t R, int64_t D, float eps, const void *x,
                                   const void *weight, void *y, float *rstd, void *stream);
lc_status ops_rmsnorm_backward_cuda(int dt, int64_t R, int64_t D, const void *x,
                                    const void *weight, const float *rstd, const void *dy,
                                    void *dx, float *dweight, int accumulate_dx, void *stream);

/* ---- RoPE (rotate-half, as HF Llama/Qwen) ------------------------------------------------
 * x [B, L, Hn, dh], dh even, h = dh/2. Token l of the call sits at position p = pos0 + l (pos0
 * lets a segmented prefill continue where the last segment ended). For i < h:
 *   f_i = theta^(-2i/dh),  a = p * f_i,  c = cos a, s = sin a
 *   y[i]   = x[i] c - x[i+h] s
 *   y[i+h] = x[i+h] c + x[i] s
 * Backward is the inverse rotation: dx[i] = dy[i] c + dy[i+h] s, dx[i+h] = dy[i+h] c - dy[i] s.
 * The angle is formed in double and reduced mod 2*pi before sin/cos, so positions up to 2^24
 * and beyond stay exact and CPU and GPU agree. In place (y == x, dx == dy) is allowed.
 * CUDA: dh <= 8192 (the angles of a position are staged in shared memory). */
lc_status ops_rope_forward_ref(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t pos0,
                               float theta, const float *x, float *y);
lc_status ops_rope_backward_ref(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t pos0,
                                float theta, const float *dy, float *dx);
lc_status ops_rope_forward_cuda(int dt, int64_t B, int64_t L, int64_t Hn, int64_t dh,
                                int64_t pos0, float theta, const void *x, void *y, void *stream);
lc_status ops_rope_backward_cuda(int dt, int64_t B, int64_t L, int64_t Hn, int64_t dh,
                                 int64_t pos0, float theta, const void *dy, void *dx,
                                 void *stream);

/* ---- SwiGLU ------------------------------------------------------------------------------
 * gate, up: R rows of F values, row stride ld >= F (ld = 2F reads a fused [R, 2F] projection
 * with gate = buf, up = buf + F). y [R,F] contiguous:  y = silu(gate) * up, silu(g) = g*sig(g).
 * Backward (dy [R,F] contiguous; dgate, dup written with stride ld):
 *   dup = dy * silu(g),  dgate = dy * up * sig(g) * (1 + g * (1 - sig(g))). */
lc_status ops_swiglu_forward_ref(int64_t R, int64_t F, int64_t ld, const float *gate,
                                 const float *up, float *y);
lc_status ops_swiglu_backward_ref(int64_t R, int64_t F, int64_t ld, const float *gate,
                                  const float *up, const float *dy, float *dgate, float *dup);
lc_status ops_swiglu_forward_cuda(int dt, int64_t R, int64_t F, int64_t ld, const void *gate,
                                  const void *up, void *y, void *stream);
lc_status ops_swiglu_backward_cuda(int dt, int64_t R, int64_t F, int64_t ld, const void *gate,
                                   const void *up, const void *dy, void *dgate, void *dup,
                                   void *stream);

/* ---- embedding ---------------------------------------------------------------------------
 * ids int32 [R] in [0, V), table [V,D]:  out[r,:] = table[ids[r],:].
 * Backward: dtable[ids[r],:] += dout[r,:] (fp32 dtable).
 * An id outside [0, V) is an error naming the row and the id. The CUDA versions find it on the
 * device and synchronize `stream` once to report it (out-of-range rows are never read or
 * written; the backward writes nothing then). Backward, V <= 1024: dtable += onehot(ids)^T dout
 * as cuBLAS GEMMs over chunks of rows (exact 0/1 factors, fp32 accumulation); larger V: (row, id)
 * pairs sorted with CUB's stable radix sort, each id's rows summed in row order. Both
 * deterministic. The forward moves 16-byte vectors when rows are aligned. */
lc_status ops_embedding_forward_ref(int64_t R, int64_t V, int64_t D, const int32_t *ids,
                                    const float *table, float *out);
lc_status ops_embedding_backward_ref(int64_t R, int64_t V, int64_t D, const int32_t *ids,
                                     const float *dout, float *dtable);
lc_status ops_embedding_forward_cuda(int dt, int64_t R, int64_t V, int64_t D, const int32_t *ids,
                                     const void *table, void *out, void *stream);
lc_status ops_embedding_backward_cuda(int dt, int64_t R, int64_t V, int64_t D,
                                      const int32_t *ids, const void *dout, float *dtable,
                                      void *stream);

/* ---- softmax cross-entropy (fused forward + backward) ------------------------------------
 * logits [R,V], targets int32 [R], weights fp32 [R] (>= 0; 0 = row ignored, its target is not
 * read and may be anything, e.g. -100).
 *   nll[r]  = logsumexp(logits[r,:]) - logits[r, targets[r]]        (0 for ignored rows)
 *   W       = norm > 0 ? norm : sum_r weights[r]   (pass the total weight of all micro-batches
 *                                                   as norm when accumulating gradients)
 *   loss    = sum_r weights[r] * nll[r] / W          (0 when W = 0)
 *   dlogits = weights[r] / W * (softmax(logits[r,:]) - onehot(targets[r]))   (0 when W = 0)
 * row_loss [R] (optional, fp32) receives nll (per-position perplexity in eval); dlogits is
 * optional (NULL: forward only) and may alias logits (overwrites them). `loss` is a host
 * pointer for the reference and a DEVICE pointer (one fp32) for CUDA. A weighted row with a
 * target outside [0, V) is an error naming the row (CUDA: found on the device, one stream
 * synchronization to report it). */
lc_status ops_xent_forward_backward_ref(int64_t R, int64_t V, const float *logits,
                                        const int32_t *targets, const float *weights, float norm,
                                        float *loss, float *row_loss, float *dlogits);
lc_status ops_xent_forward_backward_cuda(int dt, int64_t R, int64_t V, const void *logits,
                                         const int32_t *targets, const float *weights,
                                         float norm, float *loss, float *row_loss, void *dlogits,
                                         void *stream);

/* ---- AdamW -------------------------------------------------------------------------------
 * One step on n fp32 parameters (PyTorch's AdamW): with g = grad_scale * grad,
 *   p -= lr * weight_decay * p                         (decoupled decay, before the update)
 *   m  = beta1 m + (1 - beta1) g
 *   v  = beta2 v + (1 - beta2) g^2
 *   p -= lr * (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
 * step counts from 1. grad_scale folds gradient clipping (min(1, clip / ||g||)) into the step.
 * The CUDA version also writes p_bf16 (bf16 copy of the new p, for the next forward) when
 * p_bf16 is not NULL. */
struct ops_adamw {
    float lr, beta1, beta2, eps, weight_decay, grad_scale;
    int64_t step;
};
lc_status ops_adamw_step_ref(int64_t n, float *p, const float *grad, float *m, float *v,
                             const struct ops_adamw *h);
lc_status ops_adamw_step_cuda(int64_t n, float *p, const float *grad, float *m, float *v,
                              bf16_t *p_bf16, const struct ops_adamw *h, void *stream);

/* Destroy the lazily created cuBLAS handle and status word (optional; tests call it so that
 * leak checkers stay quiet). Without the CUDA backend it does nothing. */
void ops_cuda_release(void);

#ifdef __cplusplus
}
#endif
#endif
