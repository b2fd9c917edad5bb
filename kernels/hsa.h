/* hsa.h — Hierarchical Sparse Attention: retrieval + top-k, fusion weights, chunk attention.
 * Spec: ../shared/research/hsa.md sections 3, 5, 6 (repository copy of the relevant math below).
 *
 * Shapes (row-major, 64-bit offsets everywhere):
 *   B batch, L tokens, HQ query heads, H KV heads, G = HQ/H, dh head dim,
 *   S chunk size, C = floor(L/S) complete chunks, K top-k slots,
 *   Hr retrieval heads (1 = "singlehead retrieval", shared by all H KV heads; or Hr = H),
 *   dr retrieval dim per retrieval head,
 *   block_q retrieval granularity: 1 = HSA (every token retrieves), S = GCA (one retrieval per
 *   chunk), Lr = ceil(L / block_q) retrieval rows.
 *
 *   q_r     [B, Lr, Hr, dr]   retrieval queries            fp32 (cpu) | bf16 (cuda)
 *   lmk     [B, C,  Hr, dr]   chunk landmarks              fp32 | bf16
 *   idx     [B, Lr, Hr, K]    int32 chunk ids, most recent first; invalid slots hold 0
 *   score   [B, Lr, Hr, K]    fp32 selected noiseless scores; invalid slots hold -INFINITY
 *   w       [B, Lr, Hr, K]    fp32 fusion weights; invalid slots hold 0
 *   q       [B, L, HQ, dh]    attention queries (NoPE)     fp32 | bf16
 *   k, v    [B, L, H,  dh]    chunk memory (chunk c = rows c*S .. c*S+S-1)  fp32 | bf16
 *   o       [B, L, HQ, dh]    output                       fp32 | bf16
 *   lse     [B, L, HQ, K]     fp32 per-slot log-sum-exp of the chunk softmax (natural log;
 *                             includes the +1 of softmax-off-by-one; -INFINITY for invalid slots)
 *
 * Retrieval row r serves tokens r*block_q .. r*block_q+block_q-1 and sees chunks
 * c < hsa_num_visible(r):  block_q = 1: (c+1)*S <= t  (all complete chunks before the token);
 * block_q = S (GCA): the query of row r comes from chunk r-1, and sees chunks < r-1 (the chunk
 * right before is the local mixer's job). Token t of KV head h uses row t/block_q and retrieval
 * head (Hr == 1 ? 0 : h).
 *
 * Math (per token t, KV head h, query head a = h*G + g, slot k with chunk c = idx[..k]):
 *   s_k   = <q_r, lmk_c> / sqrt(dr)                         (+ Gumbel noise for selection only)
 *   w     = softmax(s_1..s_K)  or  stick-breaking  w_k = sigma(s_k) prod_{j<k} (1 - sigma(s_j))
 *   z_j   = <q[t,a], k[c*S+j, h]> * scale                   (scale = 1/sqrt(dh))
 *   o_k   = sum_j exp(z_j) v[c*S+j, h] / (sm_n + sum_j exp(z_j))   (sm_n = softmax1 ? 1 : 0)
 *   o[t,a]= sum_k w_k o_k
 * Invalid slots contribute nothing. No gradient flows through idx.
 *
 * Slot validity (every function that takes idx): slot k of row r is valid iff
 * k < min(K, hsa_num_visible(r)); this does not depend on w or on what an invalid slot's idx holds
 * (a valid slot whose weight underflowed to 0 still gets dw = D_k). Valid idx entries must name a
 * visible chunk, else LC_EINVAL naming idx. The weight functions see only scores: there a slot is
 * invalid iff its score is -INFINITY. S = 1 with block_q = 1 is HSA (the rule (c+1)*S <= t).
 */
#ifndef LONGCTX_HSA_H
#define LONGCTX_HSA_H

#include <math.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum hsa_weighting { HSA_SOFTMAX = 0, HSA_STICK_BREAKING = 1 };

struct hsa_shape {
    int64_t B, L;
    int64_t HQ, H, dh;
    int64_t S, K;
    int64_t Hr, dr;
    int64_t block_q;      /* 1 (HSA) or S (GCA) */
    int softmax1;         /* off-by-one softmax inside each chunk */
    int weighting;        /* enum hsa_weighting */
    int gumbel;           /* add Gumbel(0,1) noise to scores for selection only */
    uint64_t gumbel_seed; /* noise for (b, row, hr, c) = f(lc_hash3(seed, ((b*Lr+row)*Hr+hr), c)) */
    float scale;          /* 0 -> 1/sqrt(dh) */
    /* Query offset (segmented prefill / decode against a chunk store). Lq = 0: queries are the
     * whole sequence (every older caller). Lq >= 1 (needs block_q = 1): q_r, idx, score, w are
     * [B, Lq, Hr, *], q, o [B, Lq, HQ, dh], lse [B, Lq, HQ, K]; query row i is token q_pos0 + i
     * of a sequence of L tokens (q_pos0 + Lq <= L) whose landmarks lmk [B, L/S, Hr, dr] and
     * memory k, v [B, L, H, dh] are given in full; visibility and Gumbel noise use the token's
     * absolute position. C reference and CUDA: retrieve, weights (fwd, bwd) and attend
     * forward; the attend and scores backward functions refuse an offset (LC_EUNSUPPORTED). */
    int64_t Lq, q_pos0;
};

/* Validate shapes and options; names the bad field in the error message. */
lc_status hsa_check(const struct hsa_shape *s);

static inline int64_t hsa_num_chunks(const struct hsa_shape *s) { return s->L / s->S; }
static inline int64_t hsa_num_rows(const struct hsa_shape *s) { return (s->L + s->block_q - 1) / s->block_q; }
/* Query rows (tokens) of the shape, the position of row 0, and whether an offset is asked for. */
static inline int64_t hsa_q_len(const struct hsa_shape *s) { return s->Lq ? s->Lq : s->L; }
static inline int64_t hsa_q_pos0(const struct hsa_shape *s) { return s->Lq ? s->q_pos0 : 0; }
static inline int hsa_has_offset(const struct hsa_shape *s) {
    return (s->Lq != 0 && s->Lq != s->L) || s->q_pos0 != 0;
}
/* Retrieval rows of the query range: hsa_num_rows without an offset, Lq with one (block_q = 1). */
static inline int64_t hsa_num_qrows(const struct hsa_shape *s) {
    return hsa_has_offset(s) ? s->Lq : hsa_num_rows(s);
}
/* Number of chunks retrieval row r (absolute row index) may see (chunks 0 .. n-1). */
static inline int64_t hsa_num_visible(const struct hsa_shape *s, int64_t r) {
    int64_t n = s->block_q == 1 ? r / s->S : r - 1;
    int64_t C = s->L / s->S;
    if (n < 0) n = 0;
    return n < C ? n : C;
}
/* Gumbel(0,1) noise used for selection, identical on CPU and GPU. */
static inline float hsa_gumbel(uint64_t seed, uint64_t row_head, uint64_t c) {
    uint64_t h = lc_hash3(seed, row_head, c);
    double u = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0); /* (0,1) */
    return (float)(-log(-log(u)));
}

/* ---- C reference (fp32, host pointers), kernels/hsa_ref.c ---- */

/* Scores against every visible chunk, top-k (ties -> smaller chunk id first), preprocessing
 * (valid slots sorted by chunk id descending; invalid slots idx 0, score -inf). */
lc_status hsa_retrieve_ref(const struct hsa_shape *s, const float *q_r, const float *lmk,
                           int32_t *idx, float *score);
/* Gradient of the selected scores back to q_r and lmk (accumulates into dq_r, dlmk). */
lc_status hsa_scores_backward_ref(const struct hsa_shape *s, const float *q_r, const float *lmk,
                                  const int32_t *idx, const float *dscore, float *dq_r, float *dlmk);
/* Fusion weights over the K slots of each row (softmax or stick-breaking). */
lc_status hsa_weights_forward_ref(const struct hsa_shape *s, const float *score, float *w);
/* Overwrites dscore (0 at invalid slots). */
lc_status hsa_weights_backward_ref(const struct hsa_shape *s, const float *score, const float *w,
                                   const float *dw, float *dscore);
/* Position decay (hsa.md 3.5, enable_pos_decay): score += k * beta[0] at every valid slot k of
 * every row (k = recency rank, 0 = most recent; invalid slots stay -inf), in place, before the
 * weights. Backward: dbeta[0] += sum over rows and valid slots of k * dscore (dscore: the gradient
 * of the decayed score, which is also that of the undecayed one). beta, dbeta: one fp32 scalar. */
lc_status hsa_pos_decay_forward_ref(const struct hsa_shape *s, const float *beta, float *score);
lc_status hsa_pos_decay_backward_ref(const struct hsa_shape *s, const float *score, const float *dscore,
                                     float *dbeta);
/* Chunk attention + weighted fusion. lse may be NULL in the forward. */
lc_status hsa_attend_forward_ref(const struct hsa_shape *s, const float *q, const float *k,
                                 const float *v, const int32_t *idx, const float *w, float *o,
                                 float *lse);
/* Overwrites dq, dk, dv (same shapes as q, k, v) and dw [B, Lr, Hr, K]; dw sums D_k over the G
 * heads, the row's block_q tokens and (Hr == 1) the H KV heads. lse may be NULL (recomputed). */
lc_status hsa_attend_backward_ref(const struct hsa_shape *s, const float *q, const float *k,
                                  const float *v, const int32_t *idx, const float *w,
                                  const float *lse, const float *dout, float *dq, float *dk,
                                  float *dv, float *dw);

/* ---- CUDA (bf16 storage, fp32 accumulation, device pointers), kernels/hsa.cu ----
 * `stream` is a cudaStream_t (NULL = default stream). `workspace` functions report the bytes of
 * scratch they need so callers (and the memory predictor) can allocate before running. */
size_t hsa_retrieve_workspace_cuda(const struct hsa_shape *s);
lc_status hsa_retrieve_cuda(const struct hsa_shape *s, const bf16_t *q_r, const bf16_t *lmk,
                            int32_t *idx, float *score, void *workspace, void *stream);
lc_status hsa_scores_backward_cuda(const struct hsa_shape *s, const bf16_t *q_r, const bf16_t *lmk,
                                   const int32_t *idx, const float *dscore, float *dq_r,
                                   float *dlmk, void *stream);
lc_status hsa_weights_forward_cuda(const struct hsa_shape *s, const float *score, float *w,
                                   void *stream);
lc_status hsa_weights_backward_cuda(const struct hsa_shape *s, const float *score, const float *w,
                                    const float *dw, float *dscore, void *stream);
/* beta, dbeta: device fp32 scalars; the backward is one CTA (a fixed summation order). */
lc_status hsa_pos_decay_forward_cuda(const struct hsa_shape *s, const float *beta, float *score, void *stream);
lc_status hsa_pos_decay_backward_cuda(const struct hsa_shape *s, const float *score, const float *dscore,
                                      float *dbeta, void *stream);
lc_status hsa_attend_forward_cuda(const struct hsa_shape *s, const bf16_t *q, const bf16_t *k,
                                  const bf16_t *v, const int32_t *idx, const float *w, bf16_t *o,
                                  float *lse, void *stream);
size_t hsa_attend_backward_workspace_cuda(const struct hsa_shape *s);
/* dq, dk, dv in bf16 (overwritten); dw fp32 [B, Lr, Hr, K] (overwritten). */
lc_status hsa_attend_backward_cuda(const struct hsa_shape *s, const bf16_t *q, const bf16_t *k,
                                   const bf16_t *v, const int32_t *idx, const float *w,
                                   const float *lse, const bf16_t *dout, bf16_t *dq, bf16_t *dk,
                                   bf16_t *dv, float *dw, void *workspace, void *stream);

#ifdef __cplusplus
}
#endif
#endif
