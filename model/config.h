/* config.h — architecture as data: a model is a list of layers plus the sizes of each kind of
 * layer, read from a small text file (or a compiled-in preset), validated, printed back, and
 * expanded into the exact list of parameter tensors (name, shape, initialisation).
 *
 * File format (model/presets/<name>.cfg are examples):
 *   # comment                 (anywhere; also after a value)
 *   [section]                 model | attn | mamba | encoder | hsa | init | oracle
 *   key = value               integers, reals, true/false, or a word from the key's list
 *   section.key = value       the same without a [section] header
 *   layers = swa*2 chunk (retrieval hsa swa)*2      in [model]: the layer list
 * Layer words: swa (sliding-window attention + SwiGLU MLP), dense (causal attention + MLP),
 * mamba (Mamba-2 mixer, optional MLP), chunk (chunk encoder + shared K/V + landmarks, once),
 * retrieval (starts a group: retrieval query, scores, top-k, weights), hsa (one HSA layer of
 * the current group). `word*N` and `(...)*N` repeat. Every key not given keeps its default;
 * unknown keys, bad values, keys of a layer kind the model does not have, and inconsistent
 * combinations are errors that name the file and line (or the keys, for derived checks).
 *
 * Names follow hsa.md: S chunk size, K top-k, W window, HQ / H HSA query / KV heads, G = HQ/H,
 * dh head dim, d_r total retrieval dim (per retrieval head: d_r / H_r, H_r = 1 or H).
 *
 * Parameters (lc_config_tensors) are fp32 tensors laid out back to back in one flat buffer in
 * list order; linear weights are [out, in] (row-major, y = W x). Names: "embed", "head",
 * "final_norm", "layers.<i>.<part>" with <i> the index in the expanded layer list.
 */
#ifndef LONGCTX_CONFIG_H
#define LONGCTX_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lc_layer_kind { LC_LAYER_SWA, LC_LAYER_DENSE, LC_LAYER_MAMBA, LC_LAYER_CHUNK, LC_LAYER_RETRIEVAL, LC_LAYER_HSA };
enum lc_weights { LC_WEIGHTS_SOFTMAX = 0, LC_WEIGHTS_STICKBREAK = 1 };   /* = enum hsa_weighting */
enum lc_retrieval_heads { LC_RETRIEVAL_SINGLE = 0, LC_RETRIEVAL_PER_KV = 1 };
enum lc_residual { LC_RESIDUAL_BYPASS = 0, LC_RESIDUAL_RESET = 1, LC_RESIDUAL_PLAIN = 2 };
enum lc_oracle { LC_ORACLE_OFF = 0, LC_ORACLE_FORCE = 1 };

#define LC_MAX_LAYERS 512
#define LC_LAYERS_TEXT 512
#define LC_CONFIG_NKEYS 64 /* capacity for per-key line numbers; >= the key table size */

typedef struct {
    int kind;  /* enum lc_layer_kind */
    int group; /* -1 below the first retrieval layer, else the group index */
} lc_layer;

typedef struct {
    /* [model] */
    int64_t vocab, d, context; /* context: training sequence length T */
    int tied_embeddings;
    double norm_eps;
    char layers_text[LC_LAYERS_TEXT];
    /* [attn]: swa and dense blocks, and the SWA inside an HSA layer when hsa.swa_inside */
    int64_t attn_heads, attn_kv_heads, attn_dh, W, attn_mlp;
    double rope_theta;
    int attn_qk_norm, attn_bias;
    /* [mamba] */
    int64_t mamba_heads, mamba_dh, mamba_state, mamba_expand, mamba_conv, mamba_ngroups, mamba_mlp, mamba_segment;
    /* [encoder]: the bidirectional chunk encoder of the chunk layer */
    int64_t enc_layers, enc_heads, enc_kv_heads, enc_dh, enc_mlp;
    double enc_rope_theta;
    int enc_cls, enc_qkv_bias, enc_qk_norm, enc_prenorm;
    /* [hsa] */
    int64_t S, K, d_r, HQ, H, dh, block_q, hsa_mlp;
    int retrieval_heads, weights, off_by_one, gumbel, pos_decay, qk_norm, lmk_norm, mask_window;
    int residual, swa_inside;
    /* [init] */
    double init_std;
    int init_scale_out, zero_hsa_out, zero_encoder_out, zero_mlp_out;
    double init_pos_decay; /* initial beta of hsa.pos_decay (hsa.md 3.5: 0) */
    /* [oracle]: extra supervision, not part of the architecture */
    int oracle;
    double oracle_prob;
    int64_t oracle_hold, oracle_decay;

    /* expanded layer list and derived sizes (filled by validation) */
    lc_layer layers[LC_MAX_LAYERS];
    int n_layers, n_lower, n_groups, n_hsa, n_blocks; /* n_blocks: residual blocks (init scaling) */
    int64_t G, H_r;
    /* provenance for messages: where each key was set (0 = default) */
    char source[128];
    int line[LC_CONFIG_NKEYS];
} lc_config;

/* NORMAL: N(0, std^2). UNIFORM: U(-std, std) (std holds the bound). MAMBA_A_LOG: log U(1, 16).
 * MAMBA_DT_BIAS: softplus^-1(dt), dt log-uniform in [1e-3, 0.1] (mamba_ssm's Mamba2 init).
 * CONST: every entry = std (init.pos_decay's beta). */
enum lc_init { LC_INIT_NORMAL, LC_INIT_ZERO, LC_INIT_ONE, LC_INIT_MAMBA_A_LOG, LC_INIT_MAMBA_DT_BIAS, LC_INIT_UNIFORM, LC_INIT_CONST };

typedef struct {
    char name[64];
    int ndim;
    int64_t shape[3];
    int64_t numel, offset; /* offset in floats into the flat parameter buffer */
    int init;              /* enum lc_init */
    float std;             /* LC_INIT_NORMAL: std; LC_INIT_UNIFORM: bound; LC_INIT_CONST: the value */
} lc_param;

/* Defaults (every key), then `text` on top; validates. `source` names the text in messages. */
lc_status lc_config_parse(const char *text, const char *source, lc_config *cfg);
/* A preset name (see lc_config_preset_name) or a path to a file. */
lc_status lc_config_load(const char *name_or_path, lc_config *cfg);
lc_status lc_config_preset(const char *name, lc_config *cfg);
int lc_config_preset_count(void);
const char *lc_config_preset_name(int i);
const char *lc_config_preset_text(const char *name); /* NULL when unknown */
const char *lc_config_preset_summary(const char *name);

/* The resolved config as parseable text (only the sections the model uses, every key, with a
 * comment per key and a derived-values footer). snprintf semantics: returns the full length. */
size_t lc_config_print(const lc_config *cfg, char *buf, size_t cap);
void lc_config_fprint(const lc_config *cfg, FILE *f);
/* Same values (not provenance). */
int lc_config_equal(const lc_config *a, const lc_config *b);
/* The first key whose value differs, printed "key: a vs b" into buf; 0 when equal. */
int lc_config_diff(const lc_config *a, const lc_config *b, char *buf, size_t cap);

/* Parameter tensors in order; returns the count (fills at most cap entries of out, which may
 * be NULL). */
int64_t lc_config_tensors(const lc_config *cfg, lc_param *out, int64_t cap);
int64_t lc_config_param_count(const lc_config *cfg);

/* Fill params[lc_config_param_count(cfg)] by each tensor's init. Tensor i draws from its own
 * stream lc_hash3(seed, i, 0), so adding a tensor does not change the others' values. */
lc_status lc_config_init_params(const lc_config *cfg, uint64_t seed, float *params);

/* Bytes of the inference state that persists across prefill segments for a context of L
 * tokens, batch 1, caches stored with elem_bytes per value (2 = bf16): dense K/V (2*L*kv*dh per
 * layer), SWA K/V (2*min(W, L)*kv*dh per layer, also for swa_inside), chunk memory K/V
 * (2*L*H*dh) and landmarks (C*d_r, or C*d for GCA; C = L/S), Mamba conv tail and SSM state
 * (fp32). Working buffers (scores, activations of a segment) are not included. */
int64_t lc_config_state_bytes(const lc_config *cfg, int64_t L, int elem_bytes);

/* Oracle-retrieval probability at a training step: prob for oracle_hold steps, then linearly to
 * 0 over oracle_decay steps; 0 when oracle = off. */
double lc_config_oracle_prob(const lc_config *cfg, int64_t step);

const char *lc_layer_kind_name(int kind);

/* `longctx config`: print presets, a resolved config, its tensors and parameter count. */
int cmd_config(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
