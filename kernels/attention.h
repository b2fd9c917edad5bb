/* attention.h — causal dense and sliding-window attention (and the non-causal form used by the
 * chunk encoder), forward and backward: a C reference (fp32, host) and a CUDA implementation
 * (bf16 storage, fp32 accumulation and softmax statistics).
 *
 * Shapes (row-major, 64-bit offsets everywhere):
 *   B batch, L tokens, HQ query heads, H KV heads (HQ a multiple of H, G = HQ/H), dh head dim,
 *   W window (0 = dense), scale (0 -> 1/sqrt(dh)).
 *   q    [B, L, HQ, dh]        queries (RoPE applied outside)
 *   k, v [B, L, H,  dh]        keys, values; query head a uses KV head a / G (GQA)
 *   o    [B, L, HQ, dh]        output
 *   lse  [B, HQ, L]   fp32     natural-log log-sum-exp of the scaled scores of each row
 *   dout, dq, dk, dv           gradients, same layouts as o, q, k, v
 *
 * Visible keys of query t (the set J(t)):
 *   causal, W = 0   j in 0 .. t                (dense causal)
 *   causal, W > 0   j in max(0, t-W) .. t      (sliding window: W+1 keys at most, the token's own
 *                                               included, as in "keys t-W..t")
 *   causal = 0      j in 0 .. L-1              (non-causal; requires W = 0)
 *
 * Math (per b, query head a, KV head h = a/G, row t):
 *   s_j  = scale * <q_t, k_j>            for j in J(t)
 *   lse  = log sum_j exp(s_j),  p_j = exp(s_j - lse),  o_t = sum_j p_j v_j
 * Backward, with dO = dout and D_t = <dO_t, o_t>:
 *   dv_j += p_j dO_t,  dp_j = <dO_t, v_j>,  ds_j = p_j (dp_j - D_t),
 *   dq_t  = scale * sum_j ds_j k_j,  dk_j += scale * ds_j q_t
 * (dk and dv sum over the G query heads of each KV head and over every row t that sees j.)
 *
 * FLOPs (FlashAttention convention): forward 4 * B * HQ * dh * P where P is the number of
 * attended (query, key) pairs (attention_pairs); backward 2.5 times the forward.
 */
#ifndef LONGCTX_ATTENTION_H
#define LONGCTX_ATTENTION_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct attn_shape {
    int64_t B, L, HQ, H, dh, W;
    int causal;  /* 1: causal (dense or windowed); 0: non-causal, needs W = 0 */
    float scale; /* 0 -> 1/sqrt(dh) */
    /* Query offset (segmented prefill / decode against a key cache). Lq = 0: the queries are the
     * whole sequence (Lq = L, q_pos0 = 0; every older caller). Lq >= 1: q, o are [B, Lq, HQ, dh]
     * and lse [B, HQ, Lq]; query row i sits at key position q_pos0 + i (q_pos0 + Lq <= L), so
     * J(i) is the visible set of t = q_pos0 + i above. Forward only (C reference and CUDA);
     * the backwards refuse an offset (LC_EUNSUPPORTED). */
    int64_t Lq, q_pos0;
};

/* Rows of q / o / lse, and the key position of query row 0. */
static inline int64_t attention_q_len(const struct attn_shape *s) { return s->Lq ? s->Lq : s->L; }
static inline int64_t attention_q_pos0(const struct attn_shape *s) { return s->Lq ? s->q_pos0 : 0; }
/* 1 when the shape asks for queries other than the whole sequence. */
static inline int attention_has_offset(const struct attn_shape *s) {
    return (s->Lq != 0 && s->Lq != s->L) || s->q_pos0 != 0;
}

/* LC_EINVAL with a message naming the bad field when the shape is not valid. */
lc_status attention_check(const struct attn_shape *s);
/* The scale actually used (s->scale, or 1/sqrt(dh) when it is 0). */
float attention_scale(const struct attn_shape *s);
/* Number of attended (query, key) pairs per (batch, query head): sum over the query rows of |J|. */
double attention_pairs(const struct attn_shape *s);

/* C reference, fp32 on the host. lse may be NULL in the forward (not stored). The backward
 * overwrites dq, dk, dv; it needs the forward's o and lse. */
lc_status attention_forward_ref(const struct attn_shape *s, const float *q, const float *k,
                                const float *v, float *o, float *lse);
lc_status attention_backward_ref(const struct attn_shape *s, const float *q, const float *k,
                                 const float *v, const float *o, const float *lse,
                                 const float *dout, float *dq, float *dk, float *dv);

/* CUDA (device pointers; stream is a cudaStream_t, NULL = default stream). Supports dh 32, 64,
 * 128; any B; L up to 2^24 (B*HQ and B up to 65535); other shapes return LC_EUNSUPPORTED.
 * The forward writes o (bf16) and lse (fp32, required), also with a query offset (Lq, q_pos0). The backward overwrites dq, dk, dv (bf16)
 * and needs attention_backward_workspace_cuda(s) bytes of device scratch (fp32 dq accumulators
 * and D = rowsum(dO * O), for dh 64 on sm_90a packed with lse as (lse, D) pairs). Calls are asynchronous on `stream`; the first call in a process also
 * runs a tiny synchronous probe (is the sm_90a build loaded?), so make one call before capturing
 * a CUDA graph. Results do not depend on the stream or on earlier calls, but dq sums fp32 partials
 * with atomics, so its last bits can vary from run to run. */
lc_status attention_forward_cuda(const struct attn_shape *s, const bf16_t *q, const bf16_t *k,
                                 const bf16_t *v, bf16_t *o, float *lse, void *stream);
size_t attention_backward_workspace_cuda(const struct attn_shape *s);
lc_status attention_backward_cuda(const struct attn_shape *s, const bf16_t *q, const bf16_t *k,
                                  const bf16_t *v, const bf16_t *o, const float *lse,
                                  const bf16_t *dout, bf16_t *dq, bf16_t *dk, bf16_t *dv,
                                  void *workspace, void *stream);
/* Fill n bf16 device values with uniform noise in [-scale, scale) from a counter hash of
 * (seed, index): benchmarks at L = 2^24 cannot afford host-side random numbers. */
lc_status attention_fill_random_cuda(bf16_t *x, size_t n, uint64_t seed, float scale, void *stream);
/* LC_EUNSUPPORTED with a message when the CUDA kernels cannot run this (valid) shape. */
lc_status attention_cuda_supported(const struct attn_shape *s);

#ifdef __cplusplus
}
#endif
#endif
