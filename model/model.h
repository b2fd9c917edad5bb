/* model.h — a model built from an lc_config: parameters (lc_config_tensors, one flat fp32
 * buffer), forward, backward and the loss, all through the backend table (kernels/backend.h),
 * so the same code runs on the cpu (fp32) and cuda (bf16 activations, fp32 master weights and
 * gradients) backends.
 *
 * Layers (hsa.md sections 3 and 3.7; the residual stream x is [B, T, d]):
 *   swa / dense   x += Wo attn(rope(qknorm(Wq n(x))), ...);  x += MLP(n(x))
 *                 MLP(h) = Wd (silu(Wg h) * Wu h), n = RMSNorm
 *   chunk         reads x (the middle layer): chunks of S tokens + CLS at the end -> bidirectional
 *                 encoder (RoPE over in-chunk positions 0..S) -> final norm; landmark =
 *                 lmk_ln(CLS output) [B, C, H_r, d_r/H_r]; mem_k = k_norm(proj_k E), mem_v =
 *                 proj_v E [B, T, H, dh] (rows past the last complete chunk are zero, never read)
 *   retrieval     q_r = ln(n(x)); top-k over landmarks; fusion weights (softmax | stick-breaking)
 *   hsa           a = o_proj HSA(q_norm(q_proj n(x)), mem_k, mem_v, group's idx and weights);
 *                 bypass: x += MLP(n(x + a)); reset: x = x + a + MLP(n(x + a)); plain (RAMba,
 *                 no MLP): x += a
 *   mamba         x += out_proj gate_norm(scan(conv(xBC)) * silu(z)) with [z, xBC, dt] = in_proj n(x)
 *   head          logits = head n(x) (tied: embed); loss = sum_t w_t nll_t / sum_t w_t
 * No gradient flows through top-k indices; gradients reach the scores through the weights.
 * Supported now: the options the presets use. Others (lmk_norm, mask_window,
 * swa_inside / GCA, encoder without CLS) are refused by model_create with a message.
 */
#ifndef LONGCTX_MODEL_H
#define LONGCTX_MODEL_H

#include <stdint.h>

#include "backend.h"
#include "common.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

struct model_layer; /* per-layer parameter offsets and saved activations (model.c) */

typedef struct {
    lc_config cfg;
    const struct backend *be;
    int64_t n_params;
    lc_param *tensors;
    int64_t n_tensors;
    float *master; /* f32 [n_params] on the backend's device (the weights AdamW updates) */
    void *w;       /* act copy of master (cpu: == master) */
    float *grad;   /* f32 [n_params], accumulated by model_step(backward = 1) */
    float *adam_m, *adam_v; /* allocated by model_adamw on first use */
    struct model_layer *layers;
    /* activations for the current (B, T); reallocated when they change */
    int64_t B, T;
    void *arena; /* list of device allocations for activations (model.c) */
    int training; /* Gumbel noise on (when the config asks for it) */
    /* Oracle retrieval (EXTRA SUPERVISION, config [oracle]): host [B, T] chunk ids or NULL. Where
     * >= 0 and visible, every retrieval group puts that chunk into the selection of the token
     * (replacing the lowest-scoring slot; its weight comes from its own score), then restores
     * the slot order (chunk id descending). Set by the trainer per batch; never used in eval. */
    const int32_t *oracle_chunk;
    uint64_t gumbel_seed;
} lc_model;

/* Parameters from the config, initialised with lc_config_init_params(seed). */
lc_status model_create(lc_model *m, const lc_config *cfg, const struct backend *be, uint64_t seed);
void model_destroy(lc_model *m);

/* Host fp32 [n_params] <-> the model's master weights (set also refreshes the act copy). */
lc_status model_set_params(lc_model *m, const float *host);
lc_status model_get_params(const lc_model *m, float *host);
lc_status model_get_grads(const lc_model *m, float *host);
lc_status model_zero_grads(lc_model *m);

/* One forward (and backward when `backward`) over tokens [B, T+1] int32 (host): inputs are
 * tokens[:, :T], targets tokens[:, 1:]. loss_weights [B, T] (host, NULL = all 1). The loss is
 * the weighted mean NLL (host float). Gradients are ADDED to m->grad (zero them first). */
lc_status model_step(lc_model *m, int64_t B, int64_t T, const int32_t *tokens, const float *loss_weights,
                     int backward, float *loss);

/* Per-token NLL [B, T] of the last model_step (host). */
lc_status model_row_loss(const lc_model *m, float *host);

/* Argmax of the logits of the last forward-only model_step (backward overwrites the logits with
 * their gradient), [B, T] int32 (host): the next-token predictions. */
lc_status model_argmax(const lc_model *m, int32_t *host);

/* Logits of the last forward-only model_step, fp32 [B, T, vocab] (host): position t holds the
 * next-token logits after tokens 0..t (backward overwrites them with their gradient). */
lc_status model_logits(const lc_model *m, float *host);

/* Retrieval diagnostics of the last forward for group g: idx and w [B, T, H_r, K] (host); with
 * GCA (block_q = S) token t gets its chunk's row t / S. */
lc_status model_retrieval(const lc_model *m, int g, int32_t *idx, float *w);

/* Collapse diagnostics of the last forward-only model_step (hsa.md / issue 8: a collapsed chunk
 * memory is the same at every position). const_* = ||mean row||^2 / mean ||row||^2 over the rows of
 * complete chunks (1 = every row identical, ~0 = rows unrelated): mem_k, mem_v and landmarks.
 * enc_rms: rms of the chunk encoder's output before its final norm (token rows); stream_rms[i]:
 * rms of the residual stream after layer i (at most LC_MAX_LAYERS). Zeros when there is no chunk
 * layer. */
struct model_diag {
    double const_k, const_v, const_lmk, enc_rms;
    int n_layers;
    double stream_rms[LC_MAX_LAYERS];
};
lc_status model_diagnostics(const lc_model *m, struct model_diag *out);

/* Global gradient norm (sqrt of the sum of squares, over every parameter). */
lc_status model_grad_norm(const lc_model *m, double *norm);

/* One AdamW step on every parameter with the given hyper-parameters (grad_scale folds clipping). */
lc_status model_adamw(lc_model *m, const struct ops_adamw *h);

/* Model FLOPs of one training step (forward + backward) over B rows of T tokens, the numerator of
 * an honest MFU (train.c divides FLOPs/s by 800 TFLOP/s, the H100's measured bf16 rate).
 * Counted, per row of each matmul and per query of each token mixer, with backward = 2 x forward
 * (no recomputation counted; so the step total is 3 x forward):
 *   linear y = x W^T [out, in]:  2 * in * out        (every projection, the MLPs, the head; the
 *                                                    encoder's over its B * C * (S + CLS) rows)
 *   attention (causal / SWA / the bidirectional encoder): 4 * HQ * dh * keys, with keys the mean
 *                                number of visible keys: (T + 1) / 2 dense, min(t + 1, W + 1)
 *                                averaged over t for SWA, S + CLS in the encoder
 *   HSA attend: 4 * HQ * dh * min(K, visible chunks) * S;  retrieval scores: 2 * d_r * visible
 *                                chunks per retrieval row (top-k and weights not counted)
 *   Mamba-2 scan: 4 * d_inner * N (recurrent form: state update and readout)
 * Norms, RoPE, SwiGLU, the embedding lookup, softmaxes and the cross-entropy count 0.
 * matmul_part (optional) receives the linear layers' share (the classic 6N-style count, exact
 * for the rows each weight is applied to). */
double model_train_flops(const lc_config *c, int64_t B, int64_t T, double *matmul_part);

#ifdef __cplusplus
}
#endif
#endif
