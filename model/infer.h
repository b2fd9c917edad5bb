/* infer.h — inference with caches: segmented prefill and one-token decode of one sequence
 * (batch 1) through the backend table, equal to the full forward (model_step) position by
 * position. The state holds, per layer:
 *   swa     the last W keys and values (post q/k-norm and RoPE), W + segment rows of room
 *   dense   every key and value so far (max_len rows)
 *   chunk   the < S hidden states of the incomplete chunk; when a chunk completes the encoder
 *           runs on it (S tokens + CLS) and its K/V rows and landmark are appended to a
 *           preallocated chunk store (max_len / S chunks)
 *   retrieval / hsa  nothing: they query the store with a query offset (hsa.h Lq, q_pos0)
 *   mamba   the conv tail (conv - 1 inputs) and the SSM state (fp32), handed from segment to
 *           segment (mamba.h tail_in/tail_out, h0/hT)
 * plus working buffers for one segment of at most `seg` tokens. Everything is allocated once, by
 * infer_create, after infer_bytes has been compared with the free memory.
 *
 * Backends: cpu (fp32) and cuda (bf16 caches and chunk store in device memory; needs the
 * attention / HSA kernels' query offset). The memory figure is compared with MemAvailable (cpu)
 * or the device's free memory less 256 MiB for cuBLAS and kernel workspaces (cuda).
 *
 * Exact tail mode (model_prefill_tail): for scoring the last tokens of a long sequence (suite
 * answers). The layers up to the last chunk / dense / mamba layer (the "lower stack", whose output
 * at t depends on all of 0..t) run over every position and fill the chunk store; the layers above
 * (swa, retrieval, hsa: bounded reach) run only on the last answer_rows + sum(W of the upper swa
 * layers) positions, which is all that can influence the last answer_rows outputs. The logits of
 * those answer rows are those of the full forward.
 */
#ifndef LONGCTX_INFER_H
#define LONGCTX_INFER_H

#include <stdint.h>

#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lc_infer lc_infer; /* opaque (infer.c) */

/* Bytes infer_create(m, max_len, seg) allocates: the persistent state (caches, chunk store,
 * Mamba state; compare lc_config_state_bytes) plus the working buffers of one segment. */
lc_status infer_bytes(const lc_model *m, int64_t max_len, int64_t seg, int64_t *bytes);
/* Host memory available for a new allocation (MemAvailable), bytes; -1 when unknown. */
int64_t infer_free_bytes(const lc_model *m);

/* A state for one sequence of at most max_len tokens, processed in segments of at most seg
 * tokens (model_prefill splits longer inputs). Refuses with the figure (infer_bytes) and the
 * free memory when the state does not fit; free_limit > 0 replaces the measured free memory
 * (tests). */
lc_status infer_create(lc_infer **out, lc_model *m, int64_t max_len, int64_t seg, int64_t free_limit);
void infer_destroy(lc_infer *st);
/* Tokens processed so far (the position of the next token). */
int64_t infer_pos(const lc_infer *st);
/* Forget the sequence (position 0, caches empty); keeps the allocation. */
lc_status infer_reset(lc_infer *st);

/* Feed n tokens (host int32) at positions infer_pos .. infer_pos + n - 1, in segments of at most
 * seg tokens. logits: host fp32 [n, vocab], the next-token logits of every fed position, or NULL. */
lc_status model_prefill(lc_model *m, lc_infer *st, const int32_t *tokens, int64_t n, float *logits);
/* model_prefill that computes the head only for the last fed token: logits host fp32 [vocab]
 * or NULL (a long prefill that only needs the caches and the next-token logits). */
lc_status model_prefill_last(lc_model *m, lc_infer *st, const int32_t *tokens, int64_t n, float *logits);
/* One token: model_prefill of n = 1. logits: host fp32 [vocab] or NULL. */
lc_status model_decode_step(lc_model *m, lc_infer *st, int32_t token, float *logits);

/* Exact tail mode. rows: how many last positions the upper stack must run on so that the last
 * answer_rows outputs are exact (answer_rows + the upper swa layers' windows); split: the first
 * upper layer (n_layers when every layer reaches back to position 0: no saving). */
lc_status infer_tail_rows(const lc_model *m, int64_t answer_rows, int64_t *rows, int *split);
/* Feed a whole sequence of n tokens from position 0 (st freshly created or reset) in tail mode;
 * logits: host fp32 [answer_rows, vocab], the next-token logits of positions n-answer_rows .. n-1,
 * or NULL. The caches hold the state after the n tokens (decode may go on: the upper swa caches
 * are exact when the tail covers their windows, which infer_tail_rows guarantees). */
lc_status model_prefill_tail(lc_model *m, lc_infer *st, const int32_t *tokens, int64_t n, int64_t answer_rows, float *logits);

/* One-token retrieval against a store of >= min_chunks chunks runs as `parts` partitions of the
 * store in one batched kernel call plus a host merge of the candidates (same result; the CUDA
 * kernel has one CTA per 128 query rows). Defaults: cuda min_chunks 2048, parts 256; cpu off
 * (min_chunks = 0). Tests set it to exercise the merge on small stores. */
lc_status infer_set_split(lc_infer *st, int64_t min_chunks, int64_t parts);
/* The same for one-token attention of dense layers over >= min_keys cached keys: `parts` key
 * partitions in one batched call, outputs combined by their log-sum-exp on the host. Default off
 * on both backends (tested on the cpu; the cuda path has not run on a device yet); 8192 keys in
 * 128 partitions is the intended cuda setting. */
lc_status infer_set_attn_split(lc_infer *st, int64_t min_keys, int64_t parts);

#ifdef __cplusplus
}
#endif
#endif
