/* mamba.h — Mamba-2 token mixer: causal depthwise conv1d (+SiLU) and the SSD selective scan,
 * forward, backward, state hand-off between segments and one-token decode. C reference
 * (mamba_ref.c, fp32) and CUDA (mamba.cu, bf16 storage / fp32 compute), same semantics.
 *
 * ---- conv1d (depthwise, causal, width Kw, fused SiLU) ----
 *   x        [B, L, Cch]        input                              fp32 (ref) | bf16 (cuda)
 *   weight   [Cch, Kw]          fp32; weight[c, Kw-1] multiplies the current token
 *   bias     [Cch]              fp32 (NULL = 0)
 *   tail_in  [B, Kw-1, Cch]     the previous segment's last Kw-1 inputs, oldest first (NULL = 0)
 *   y        [B, L, Cch]        silu(pre)                          fp32 | bf16
 *   tail_out [B, Kw-1, Cch]     this segment's last Kw-1 inputs (NULL = not wanted); equals the
 *                               next segment's tail_in, so segments chain exactly; it must not
 *                               alias tail_in (keep two buffers and swap them)
 *   Let xx[t] = x[t] for t >= 0 and tail_in[Kw-1+t] for -(Kw-1) <= t < 0. Then
 *     pre[t, c] = bias[c] + sum_{k<Kw} weight[c, k] * xx[t - (Kw-1) + k, c],  y = pre * sigmoid(pre)
 *   Backward (dy, optional dtail_out = gradient flowing back into tail_out) gives dx, dweight,
 *   dbias (written, not accumulated; fp32) and dtail_in (NULL = not wanted).
 *   Decode: one token x [B, Cch] with the rolling tail [B, Kw-1, Cch] updated in place.
 *
 * ---- SSD scan (Mamba-2: scalar decay per head, B and C shared by the heads of a group) ----
 *   H heads of size P, G groups (head h uses group h / (H/G)), state size N.
 *   x   [B, L, H, P]   fp32 | bf16        dt  [B, L, H]  fp32 (raw)     dt_bias [H] fp32 (NULL = 0)
 *   A   [H] fp32 (negative)               Bm, Cm [B, L, G, N] fp32 | bf16    D [H] fp32 (NULL = 0)
 *   z   [B, L, H, P] (NULL = no gating)   h0  [B, H, P, N] fp32 (NULL = 0)
 *   y   [B, L, H, P] fp32 | bf16          hT  [B, H, P, N] fp32 (NULL = not wanted)
 *   Per (b, h), with dt'_t = softplus(dt_t + dt_bias), dA_t = exp(dt'_t A):
 *     h_t = dA_t h_{t-1} + dt'_t x_t B_t^T            (h_{-1} = h0; h is P x N)
 *     y_t = (h_t C_t + D x_t) * (z ? silu(z_t) : 1)    hT = h_{L-1}
 *   Backward, given dy and dhT (NULL = 0): dx, ddt, dBm, dCm, dz (NULL when z is NULL), dh0
 *   (NULL = not wanted), and the parameter gradients dA, dD, ddt_bias [H] (each written, not
 *   accumulated; NULL = not wanted). On CUDA dBm and dCm are fp32 (summed over the heads of a
 *   group with atomics), dx and dz bf16, ddt fp32.
 *   Decode: one token, x [B, H, P], dt [B, H], Bm/Cm [B, G, N], z [B, H, P]; state [B, H, P, N]
 *   fp32 updated in place; y [B, H, P].
 *
 * Two segments run with the state handed over (conv tail_out -> tail_in, scan hT -> h0) equal one
 * long run: that is how sequences longer than memory are processed (segmented prefill).
 *
 * CUDA scan (mamba.cu): chunk-parallel. The sequence is cut into chunks of T tokens; pass 1 runs
 * the recurrence inside each chunk from a zero state (local end state), pass 2 walks the chunks
 * of each (b, h) in order to turn local states into each chunk's incoming state, pass 3 reruns
 * each chunk from its incoming state and writes y. For (P, N) = (64, 128) passes 1 and 3 are the
 * chunked SSD form on bf16 tensor cores: warpgroup MMAs where the sm_90a code runs
 * (mamba_ssd_wg.cuh), else mma.sync (mamba_ssd2.cuh); LC_MAMBA_FWD=2 / 1 select the mma.sync
 * versions (mamba_ssd2.cuh, mamba_ssd.cuh); y and hT carry bf16-level error, ~2e-3 relative;
 * (32, 64) uses fp32 recurrences. The backward mirrors the passes for dh; for
 * (64, 128) every pass and the per-chunk gradients run in the SSD form on tensor cores
 * (mamba_ssd_bwd.cuh, its local dh pass on wgmma in mamba_ssd_wg.cuh unless LC_MAMBA_DHL=0; all
 * gradients then carry bf16-level error, ~2e-3..7e-3 relative, dA up to ~2e-2), for
 * (32, 64) as fp32 recurrences (mamba_bwd.cuh, ~1e-5; LC_MAMBA_BWD_FP32=1 selects them for (64,
 * 128) too). Workspace: mamba_scan_workspace_bytes() (the tensor-core backward adds a 34 MB
 * scratch for its persistent grid); pass ws = NULL to let the call allocate (stream-ordered) itself.
 */
#ifndef LONGCTX_MAMBA_H
#define LONGCTX_MAMBA_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct mamba_conv_shape {
    int64_t B, L, Cch, Kw;
};

struct mamba_scan_shape {
    int64_t B, L, H, P, G, N;
};

/* Validates whichever shape is non-NULL; LC_EINVAL with a message naming the field. */
lc_status mamba_check(const struct mamba_conv_shape *conv, const struct mamba_scan_shape *scan);

/* ---------------- C reference (fp32) ---------------- */
lc_status mamba_conv_forward_ref(const struct mamba_conv_shape *s, const float *x, const float *weight,
                                 const float *bias, const float *tail_in, float *y, float *tail_out);
lc_status mamba_conv_backward_ref(const struct mamba_conv_shape *s, const float *x, const float *weight,
                                  const float *bias, const float *tail_in, const float *dy,
                                  const float *dtail_out, float *dx, float *dweight, float *dbias,
                                  float *dtail_in);
/* s->L is ignored (one token). */
lc_status mamba_conv_decode_ref(const struct mamba_conv_shape *s, const float *x, const float *weight,
                                const float *bias, float *tail, float *y);

lc_status mamba_scan_forward_ref(const struct mamba_scan_shape *s, const float *x, const float *dt,
                                 const float *dt_bias, const float *A, const float *Bm, const float *Cm,
                                 const float *D, const float *z, const float *h0, float *y, float *hT);
lc_status mamba_scan_backward_ref(const struct mamba_scan_shape *s, const float *x, const float *dt,
                                  const float *dt_bias, const float *A, const float *Bm, const float *Cm,
                                  const float *D, const float *z, const float *h0, const float *dy,
                                  const float *dhT, float *dx, float *ddt, float *dBm, float *dCm,
                                  float *dz, float *dh0, float *dA, float *dD, float *ddt_bias);
/* The scale of dA: dA_scale[h] = sum_t exp(dt'_t A_h) dt'_t |<dh_t, h_{t-1}>| (h_t the state after
 * token t, dh_t the loss gradient at it), the sum of the magnitudes of the per-token terms that
 * dA[h] adds up (the same sum without the absolute values). The terms cancel (dA is often 5 to
 * 200 times smaller than this scale on random inputs), so an implementation whose terms carry a
 * relative error e is held to e * dA_scale, not to e * |dA|: the bound the GPU tests use. */
lc_status mamba_scan_dA_scale_ref(const struct mamba_scan_shape *s, const float *x, const float *dt,
                                  const float *dt_bias, const float *A, const float *Bm, const float *Cm,
                                  const float *D, const float *z, const float *h0, const float *dy,
                                  const float *dhT, float *dA_scale);
/* s->L is ignored (one token); state is h_{t-1} in, h_t out. */
lc_status mamba_scan_decode_ref(const struct mamba_scan_shape *s, const float *x, const float *dt,
                                const float *dt_bias, const float *A, const float *Bm, const float *Cm,
                                const float *D, const float *z, float *state, float *y);

/* ---------------- CUDA (bf16 storage, fp32 compute); asynchronous on `stream` ---------------- */
lc_status mamba_conv_forward_cuda(const struct mamba_conv_shape *s, const bf16_t *x, const float *weight,
                                  const float *bias, const bf16_t *tail_in, bf16_t *y, bf16_t *tail_out,
                                  void *stream);
lc_status mamba_conv_backward_cuda(const struct mamba_conv_shape *s, const bf16_t *x, const float *weight,
                                   const float *bias, const bf16_t *tail_in, const bf16_t *dy,
                                   const bf16_t *dtail_out, bf16_t *dx, float *dweight, float *dbias,
                                   bf16_t *dtail_in, void *stream);
lc_status mamba_conv_decode_cuda(const struct mamba_conv_shape *s, const bf16_t *x, const float *weight,
                                 const float *bias, bf16_t *tail, bf16_t *y, void *stream);

/* CUDA scan supports (P, N) = (64, 128) (RAMba) and (32, 64); others give LC_EUNSUPPORTED. The
 * state arrays (h0, hT, dhT, dh0) must be 16-byte aligned (cudaMalloc's are). */
size_t mamba_scan_workspace_bytes(const struct mamba_scan_shape *s, int backward);
lc_status mamba_scan_forward_cuda(const struct mamba_scan_shape *s, const bf16_t *x, const float *dt,
                                  const float *dt_bias, const float *A, const bf16_t *Bm, const bf16_t *Cm,
                                  const float *D, const bf16_t *z, const float *h0, bf16_t *y, float *hT,
                                  void *ws, void *stream);
lc_status mamba_scan_backward_cuda(const struct mamba_scan_shape *s, const bf16_t *x, const float *dt,
                                   const float *dt_bias, const float *A, const bf16_t *Bm, const bf16_t *Cm,
                                   const float *D, const bf16_t *z, const float *h0, const bf16_t *dy,
                                   const float *dhT, bf16_t *dx, float *ddt, float *dBm, float *dCm,
                                   bf16_t *dz, float *dh0, float *dA, float *dD, float *ddt_bias,
                                   void *ws, void *stream);
lc_status mamba_scan_decode_cuda(const struct mamba_scan_shape *s, const bf16_t *x, const float *dt,
                                 const float *dt_bias, const float *A, const bf16_t *Bm, const bf16_t *Cm,
                                 const float *D, const bf16_t *z, float *state, bf16_t *y, void *stream);

/* Fill n device values with uniform noise in [lo, hi) from a counter hash of (seed, index):
 * bf16 (is_bf16 = 1) or fp32. For benchmarks, where host-side random numbers for 2^24 tokens
 * cost minutes. */
lc_status mamba_fill_random_cuda(void *x, size_t n, int is_bf16, uint64_t seed, float lo, float hi, void *stream);

#ifdef __cplusplus
}
#endif
#endif
