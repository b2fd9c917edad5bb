/* config.c — parse, validate, print and compare model configs; expand the layer list; list the
 * parameter tensors. See config.h for the file format. Everything is driven by one key table
 * (section, name, type, field, default, range, which layer kinds make it meaningful), so
 * parsing, defaults, printing, comparison and the "key of a layer kind the model lacks" check
 * cannot drift apart.
 */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum key_type { K_INT, K_REAL, K_BOOL, K_ENUM, K_LAYERS };
/* When a key means something: a key set in a file for a model where it means nothing is an
 * error (e.g. mamba sizes in a dense model). */
enum key_rel { REL_ALWAYS, REL_ATTN, REL_SWA, REL_MAMBA, REL_CHUNK, REL_POS_DECAY };

typedef struct {
    const char *section, *name;
    int type;
    size_t off;
    const char *def;
    double lo, hi;            /* inclusive range for K_INT / K_REAL */
    const char *const *words; /* K_ENUM, NULL-terminated, index = stored value */
    int rel;
    const char *doc;
} key_def;

static const char *const w_weights[] = {"softmax", "stickbreak", NULL};
static const char *const w_rheads[] = {"single", "per_kv", NULL};
static const char *const w_residual[] = {"bypass", "reset", "plain", NULL};
static const char *const w_oracle[] = {"off", "force", NULL};

#define F(field) offsetof(lc_config, field)
#define BIG 1e15
static const key_def keys[] = {
    {"model", "vocab", K_INT, F(vocab), "256", 2, 1 << 30, NULL, REL_ALWAYS, "vocabulary size (256 = bytes)"},
    {"model", "d", K_INT, F(d), "256", 1, 1 << 20, NULL, REL_ALWAYS, "model width"},
    {"model", "context", K_INT, F(context), "4096", 1, BIG, NULL, REL_ALWAYS, "training sequence length T"},
    {"model", "tied_embeddings", K_BOOL, F(tied_embeddings), "false", 0, 1, NULL, REL_ALWAYS, "lm head shares the embedding"},
    {"model", "norm_eps", K_REAL, F(norm_eps), "1e-6", 1e-12, 1, NULL, REL_ALWAYS, "RMSNorm epsilon"},
    {"model", "layers", K_LAYERS, F(layers_text), "swa*4", 0, 0, NULL, REL_ALWAYS, "layer list, bottom to top"},
    {"attn", "heads", K_INT, F(attn_heads), "8", 1, 4096, NULL, REL_ATTN, "query heads of swa/dense blocks"},
    {"attn", "kv_heads", K_INT, F(attn_kv_heads), "8", 1, 4096, NULL, REL_ATTN, "key/value heads (GQA)"},
    {"attn", "dh", K_INT, F(attn_dh), "32", 0, 1024, NULL, REL_ATTN, "head dim (0 = d/heads)"},
    {"attn", "W", K_INT, F(W), "128", 1, BIG, NULL, REL_SWA, "sliding window: keys t-W..t"},
    {"attn", "rope_theta", K_REAL, F(rope_theta), "10000", 1e-3, 1e12, NULL, REL_ATTN, "RoPE base"},
    {"attn", "qk_norm", K_BOOL, F(attn_qk_norm), "true", 0, 1, NULL, REL_ATTN, "per-head RMSNorm on q and k"},
    {"attn", "bias", K_BOOL, F(attn_bias), "false", 0, 1, NULL, REL_ATTN, "q/k/v projection biases"},
    {"attn", "mlp", K_INT, F(attn_mlp), "768", 1, 1 << 24, NULL, REL_ATTN, "SwiGLU intermediate size"},
    {"mamba", "heads", K_INT, F(mamba_heads), "8", 1, 4096, NULL, REL_MAMBA, "SSM heads"},
    {"mamba", "head_dim", K_INT, F(mamba_dh), "64", 1, 1024, NULL, REL_MAMBA, "SSM head dim (heads*head_dim = expand*d)"},
    {"mamba", "state", K_INT, F(mamba_state), "64", 1, 1024, NULL, REL_MAMBA, "SSM state size N"},
    {"mamba", "expand", K_INT, F(mamba_expand), "2", 1, 16, NULL, REL_MAMBA, "inner width = expand*d"},
    {"mamba", "conv", K_INT, F(mamba_conv), "4", 2, 64, NULL, REL_MAMBA, "causal conv1d width"},
    {"mamba", "ngroups", K_INT, F(mamba_ngroups), "1", 1, 1024, NULL, REL_MAMBA, "B/C groups"},
    {"mamba", "mlp", K_INT, F(mamba_mlp), "0", 0, 1 << 24, NULL, REL_MAMBA, "SwiGLU after the mixer (0 = none, as RAMba)"},
    {"mamba", "segment_size", K_INT, F(mamba_segment), "0", 0, BIG, NULL, REL_MAMBA, "training: reset SSM state every N tokens (0 = never)"},
    {"encoder", "layers", K_INT, F(enc_layers), "1", 0, 64, NULL, REL_CHUNK, "bidirectional encoder blocks (0 = RMSNorm only)"},
    {"encoder", "cls", K_BOOL, F(enc_cls), "true", 0, 1, NULL, REL_CHUNK, "learned CLS slot appended; landmark from it (else mean)"},
    {"encoder", "heads", K_INT, F(enc_heads), "8", 1, 4096, NULL, REL_CHUNK, "encoder query heads"},
    {"encoder", "kv_heads", K_INT, F(enc_kv_heads), "8", 1, 4096, NULL, REL_CHUNK, "encoder key/value heads"},
    {"encoder", "dh", K_INT, F(enc_dh), "32", 0, 1024, NULL, REL_CHUNK, "encoder head dim (0 = d/heads)"},
    {"encoder", "rope_theta", K_REAL, F(enc_rope_theta), "10000", 1e-3, 1e12, NULL, REL_CHUNK, "RoPE base over in-chunk positions"},
    {"encoder", "mlp", K_INT, F(enc_mlp), "768", 1, 1 << 24, NULL, REL_CHUNK, "encoder SwiGLU intermediate"},
    {"encoder", "qkv_bias", K_BOOL, F(enc_qkv_bias), "true", 0, 1, NULL, REL_CHUNK, "q/k/v biases (Qwen2 style)"},
    {"encoder", "qk_norm", K_BOOL, F(enc_qk_norm), "true", 0, 1, NULL, REL_CHUNK, "per-head RMSNorm on q and k"},
    {"encoder", "prenorm", K_BOOL, F(enc_prenorm), "false", 0, 1, NULL, REL_CHUNK, "RMSNorm on the chunk before the encoder"},
    {"hsa", "S", K_INT, F(S), "64", 1, 1 << 20, NULL, REL_CHUNK, "chunk size"},
    {"hsa", "K", K_INT, F(K), "8", 1, 1 << 20, NULL, REL_CHUNK, "chunks selected per query"},
    {"hsa", "d_r", K_INT, F(d_r), "256", 1, 1 << 20, NULL, REL_CHUNK, "retrieval dim, all retrieval heads together"},
    {"hsa", "retrieval_heads", K_ENUM, F(retrieval_heads), "single", 0, 0, w_rheads, REL_CHUNK, "single | per_kv (H_r = 1 or H)"},
    {"hsa", "HQ", K_INT, F(HQ), "16", 1, 4096, NULL, REL_CHUNK, "HSA query heads"},
    {"hsa", "H", K_INT, F(H), "1", 1, 4096, NULL, REL_CHUNK, "HSA key/value heads (chunk memory)"},
    {"hsa", "dh", K_INT, F(dh), "32", 0, 1024, NULL, REL_CHUNK, "HSA head dim, NoPE (0 = d/HQ)"},
    {"hsa", "weights", K_ENUM, F(weights), "softmax", 0, 0, w_weights, REL_CHUNK, "softmax | stickbreak fusion weights"},
    {"hsa", "off_by_one", K_BOOL, F(off_by_one), "false", 0, 1, NULL, REL_CHUNK, "softmax-off-by-one inside each chunk"},
    {"hsa", "gumbel", K_BOOL, F(gumbel), "false", 0, 1, NULL, REL_CHUNK, "Gumbel noise on selection (training)"},
    {"hsa", "pos_decay", K_BOOL, F(pos_decay), "false", 0, 1, NULL, REL_CHUNK, "learned s_k += k*beta per group"},
    {"hsa", "block_q", K_INT, F(block_q), "1", 1, 1 << 20, NULL, REL_CHUNK, "1 = HSA (token-level), S = GCA (chunk-level)"},
    {"hsa", "qk_norm", K_BOOL, F(qk_norm), "true", 0, 1, NULL, REL_CHUNK, "per-head RMSNorm on HSA q and chunk k"},
    {"hsa", "lmk_norm", K_BOOL, F(lmk_norm), "false", 0, 1, NULL, REL_CHUNK, "RMSNorm on retrieval q and landmarks"},
    {"hsa", "mask_window", K_BOOL, F(mask_window), "false", 0, 1, NULL, REL_CHUNK, "skip chunks starting inside the SWA window"},
    {"hsa", "mlp", K_INT, F(hsa_mlp), "768", 0, 1 << 24, NULL, REL_CHUNK, "SwiGLU of the HSA block (0 = none)"},
    {"hsa", "residual", K_ENUM, F(residual), "bypass", 0, 0, w_residual, REL_CHUNK, "bypass: x+MLP(n(x+a)) | reset: (x+a)+MLP | plain: x+a"},
    {"hsa", "swa_inside", K_BOOL, F(swa_inside), "false", 0, 1, NULL, REL_CHUNK, "x += SWA(n x) first in each HSA layer (GCA)"},
    {"init", "std", K_REAL, F(init_std), "0.02", 1e-8, 10, NULL, REL_ALWAYS, "normal init std of weights"},
    {"init", "scale_out", K_BOOL, F(init_scale_out), "true", 0, 1, NULL, REL_ALWAYS, "output projections std/sqrt(residual blocks)"},
    {"init", "zero_mlp_out", K_BOOL, F(zero_mlp_out), "false", 0, 1, NULL, REL_ALWAYS, "zero-init every MLP down projection"},
    {"init", "zero_hsa_out", K_BOOL, F(zero_hsa_out), "true", 0, 1, NULL, REL_CHUNK, "zero-init HSA o_proj"},
    {"init", "zero_encoder_out", K_BOOL, F(zero_encoder_out), "true", 0, 1, NULL, REL_CHUNK, "zero-init encoder o_proj and MLP down"},
    {"init", "pos_decay", K_REAL, F(init_pos_decay), "0", -10, 10, NULL, REL_POS_DECAY, "initial beta of hsa.pos_decay (the paper: 0)"},
    {"oracle", "mode", K_ENUM, F(oracle), "off", 0, 0, w_oracle, REL_CHUNK, "EXTRA SUPERVISION: force the answer chunk into the selection"},
    {"oracle", "prob", K_REAL, F(oracle_prob), "1", 0, 1, NULL, REL_CHUNK, "probability of forcing while held"},
    {"oracle", "hold", K_INT, F(oracle_hold), "0", 0, BIG, NULL, REL_CHUNK, "steps at full prob"},
    {"oracle", "decay", K_INT, F(oracle_decay), "0", 0, BIG, NULL, REL_CHUNK, "steps of linear decay to 0 after hold"},
};
#undef F
enum { NKEYS = sizeof keys / sizeof keys[0] };
_Static_assert(NKEYS <= LC_CONFIG_NKEYS, "raise LC_CONFIG_NKEYS");
static const char *const sections[] = {"model", "attn", "mamba", "encoder", "hsa", "init", "oracle"};
enum { NSECTIONS = sizeof sections / sizeof sections[0] };

static const char *const layer_words[] = {"swa", "dense", "mamba", "chunk", "retrieval", "hsa"};

const char *lc_layer_kind_name(int kind) {
    return kind >= 0 && kind < 6 ? layer_words[kind] : "?";
}

static int64_t *ival(lc_config *c, int k) { return (int64_t *)((char *)c + keys[k].off); }
static double *rval(lc_config *c, int k) { return (double *)((char *)c + keys[k].off); }
static int *bval(lc_config *c, int k) { return (int *)((char *)c + keys[k].off); }
static const int64_t *civ(const lc_config *c, int k) { return (const int64_t *)((const char *)c + keys[k].off); }
static const double *crv(const lc_config *c, int k) { return (const double *)((const char *)c + keys[k].off); }
static const int *cbv(const lc_config *c, int k) { return (const int *)((const char *)c + keys[k].off); }

static int key_find(const char *section, const char *name) {
    for (int k = 0; k < NKEYS; k++)
        if (!strcmp(keys[k].section, section) && !strcmp(keys[k].name, name)) return k;
    return -1;
}
static int key_of(const char *section, const char *name) {
    int k = key_find(section, name);
    return k < 0 ? 0 : k;
}

/* "file:line" of a key, or "default" — for messages about derived checks. */
static const char *where(const lc_config *c, int k, char *buf, size_t cap) {
    if (c->line[k] > 0) snprintf(buf, cap, "%s:%d", c->source, c->line[k]);
    else snprintf(buf, cap, "%s (default)", c->source);
    return buf;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* ---- layer list -------------------------------------------------------------------------- */

typedef struct {
    const char *p;
    int *kinds, n, cap;
    char err[200];
} layer_parser;

static int lp_items(layer_parser *lp, int depth);

static int lp_repeat(layer_parser *lp, int start) {
    while (isspace((unsigned char)*lp->p)) lp->p++;
    if (*lp->p != '*') return 1;
    lp->p++;
    while (isspace((unsigned char)*lp->p)) lp->p++;
    if (!isdigit((unsigned char)*lp->p)) {
        snprintf(lp->err, sizeof lp->err, "expected a count after '*' at \"%.20s\"", lp->p);
        return 0;
    }
    char *end;
    long r = strtol(lp->p, &end, 10);
    lp->p = end;
    if (r < 1 || r > LC_MAX_LAYERS) {
        snprintf(lp->err, sizeof lp->err, "repeat count %ld out of range 1..%d", r, LC_MAX_LAYERS);
        return 0;
    }
    int len = lp->n - start;
    if ((int64_t)lp->n + (int64_t)len * (r - 1) > lp->cap) {
        snprintf(lp->err, sizeof lp->err, "more than %d layers after expansion", lp->cap);
        return 0;
    }
    for (long i = 1; i < r; i++)
        for (int j = 0; j < len; j++) lp->kinds[lp->n++] = lp->kinds[start + j];
    return 1;
}

static int lp_items(layer_parser *lp, int depth) {
    for (;;) {
        while (isspace((unsigned char)*lp->p)) lp->p++;
        char ch = *lp->p;
        if (ch == 0 || ch == ')') {
            if (ch == ')' && depth == 0) {
                snprintf(lp->err, sizeof lp->err, "unmatched ')'");
                return 0;
            }
            if (ch == 0 && depth > 0) {
                snprintf(lp->err, sizeof lp->err, "missing ')'");
                return 0;
            }
            return 1;
        }
        int start = lp->n;
        if (ch == '(') {
            if (depth > 8) {
                snprintf(lp->err, sizeof lp->err, "parentheses nested too deeply");
                return 0;
            }
            lp->p++;
            if (!lp_items(lp, depth + 1)) return 0;
            lp->p++; /* ')' */
            if (lp->n == start) {
                snprintf(lp->err, sizeof lp->err, "empty '()'");
                return 0;
            }
        } else if (isalpha((unsigned char)ch)) {
            const char *w = lp->p;
            while (isalnum((unsigned char)*lp->p) || *lp->p == '_') lp->p++;
            size_t wl = (size_t)(lp->p - w);
            int kind = -1;
            for (int i = 0; i < 6; i++)
                if (strlen(layer_words[i]) == wl && !strncmp(w, layer_words[i], wl)) kind = i;
            if (kind < 0) {
                snprintf(lp->err, sizeof lp->err,
                         "unknown layer '%.*s' (known: swa dense mamba chunk retrieval hsa)", (int)(wl > 40 ? 40 : wl), w);
                return 0;
            }
            if (lp->n >= lp->cap) {
                snprintf(lp->err, sizeof lp->err, "more than %d layers", lp->cap);
                return 0;
            }
            lp->kinds[lp->n++] = kind;
        } else {
            snprintf(lp->err, sizeof lp->err, "unexpected '%c'", ch);
            return 0;
        }
        if (!lp_repeat(lp, start)) return 0;
    }
}

/* Expand and check the structure; messages name the `layers` line. */
static lc_status layers_resolve(lc_config *c) {
    char at[200];
    where(c, key_of("model", "layers"), at, sizeof at);
    int kinds[LC_MAX_LAYERS];
    layer_parser lp = {.p = c->layers_text, .kinds = kinds, .n = 0, .cap = LC_MAX_LAYERS};
    if (!lp_items(&lp, 0)) return lc_errorf(LC_EINVAL, "%s: layers: %s", at, lp.err);
    if (lp.n == 0) return lc_errorf(LC_EINVAL, "%s: layers: empty layer list", at);
    int group = -1, chunk_at = -1, nret = 0, nhsa = 0, blocks = 0;
    for (int i = 0; i < lp.n; i++) {
        int k = kinds[i];
        if (k == LC_LAYER_CHUNK) {
            if (chunk_at >= 0)
                return lc_errorf(LC_EINVAL, "%s: layers: a second 'chunk' at layer %d (the chunk memory is computed once, at layer %d)", at, i, chunk_at);
            chunk_at = i;
        } else if (k == LC_LAYER_RETRIEVAL) {
            if (chunk_at < 0) return lc_errorf(LC_EINVAL, "%s: layers: 'retrieval' at layer %d comes before 'chunk'", at, i);
            if (group >= 0 && nhsa == 0)
                return lc_errorf(LC_EINVAL, "%s: layers: group %d (retrieval before layer %d) has no 'hsa' layer", at, group, i);
            group++;
            nret++;
            nhsa = 0;
        } else if (k == LC_LAYER_HSA) {
            if (group < 0) return lc_errorf(LC_EINVAL, "%s: layers: 'hsa' at layer %d comes before any 'retrieval'", at, i);
            nhsa++;
        }
        c->layers[i].kind = k;
        c->layers[i].group = group;
    }
    if (group >= 0 && nhsa == 0) return lc_errorf(LC_EINVAL, "%s: layers: the last group has no 'hsa' layer", at);
    if (chunk_at >= 0 && nret == 0) return lc_errorf(LC_EINVAL, "%s: layers: 'chunk' without any 'retrieval' group", at);
    c->n_layers = lp.n;
    c->n_groups = nret;
    c->n_lower = chunk_at >= 0 ? chunk_at : 0;
    c->n_hsa = 0;
    for (int i = 0; i < lp.n; i++) {
        int k = kinds[i];
        if (k == LC_LAYER_HSA) c->n_hsa++;
        if (k == LC_LAYER_SWA || k == LC_LAYER_DENSE) blocks += 2;
        if (k == LC_LAYER_MAMBA) blocks += 1 + (c->mamba_mlp > 0);
        if (k == LC_LAYER_HSA) blocks += 1 + (c->hsa_mlp > 0) + (c->swa_inside != 0);
    }
    c->n_blocks = blocks > 0 ? blocks : 1;
    /* canonical spacing for printing: collapse runs of whitespace */
    char tmp[LC_LAYERS_TEXT];
    size_t o = 0;
    for (const char *s = c->layers_text; *s && o + 1 < sizeof tmp; s++) {
        if (isspace((unsigned char)*s)) {
            if (o > 0 && tmp[o - 1] != ' ') tmp[o++] = ' ';
        } else tmp[o++] = *s;
    }
    while (o > 0 && tmp[o - 1] == ' ') o--;
    tmp[o] = 0;
    memcpy(c->layers_text, tmp, o + 1);
    return LC_OK;
}

static int has_kind(const lc_config *c, int kind) {
    for (int i = 0; i < c->n_layers; i++)
        if (c->layers[i].kind == kind) return 1;
    return 0;
}

static int key_relevant(const lc_config *c, int k) {
    int chunk = has_kind(c, LC_LAYER_CHUNK);
    switch (keys[k].rel) {
    case REL_ATTN: return has_kind(c, LC_LAYER_SWA) || has_kind(c, LC_LAYER_DENSE) || (chunk && c->swa_inside);
    case REL_SWA: return has_kind(c, LC_LAYER_SWA) || (chunk && c->swa_inside);
    case REL_MAMBA: return has_kind(c, LC_LAYER_MAMBA);
    case REL_CHUNK: return chunk;
    case REL_POS_DECAY: return chunk && c->pos_decay;
    default: return 1;
    }
}

/* ---- values ------------------------------------------------------------------------------ */

static lc_status set_value(lc_config *c, int k, const char *v, const char *at) {
    const key_def *kd = &keys[k];
    char *end;
    switch (kd->type) {
    case K_INT: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end) return lc_errorf(LC_EINVAL, "%s: %s.%s = '%s' is not an integer", at, kd->section, kd->name, v);
        if ((double)x < kd->lo || (double)x > kd->hi)
            return lc_errorf(LC_EINVAL, "%s: %s.%s = %lld is out of range %.0f..%.0f", at, kd->section, kd->name, x, kd->lo, kd->hi);
        *ival(c, k) = x;
        return LC_OK;
    }
    case K_REAL: {
        double x = strtod(v, &end);
        if (end == v || *end || !isfinite(x)) return lc_errorf(LC_EINVAL, "%s: %s.%s = '%s' is not a number", at, kd->section, kd->name, v);
        if (x < kd->lo || x > kd->hi)
            return lc_errorf(LC_EINVAL, "%s: %s.%s = %g is out of range %g..%g", at, kd->section, kd->name, x, kd->lo, kd->hi);
        *rval(c, k) = x;
        return LC_OK;
    }
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "1")) *bval(c, k) = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "0")) *bval(c, k) = 0;
        else return lc_errorf(LC_EINVAL, "%s: %s.%s = '%s' is not true/false", at, kd->section, kd->name, v);
        return LC_OK;
    case K_ENUM:
        for (int i = 0; kd->words[i]; i++)
            if (!strcmp(v, kd->words[i])) {
                *bval(c, k) = i;
                return LC_OK;
            }
        {
            char list[128] = "";
            for (int i = 0; kd->words[i]; i++) {
                strncat(list, i ? " | " : "", sizeof list - strlen(list) - 1);
                strncat(list, kd->words[i], sizeof list - strlen(list) - 1);
            }
            return lc_errorf(LC_EINVAL, "%s: %s.%s = '%s' is not one of %s", at, kd->section, kd->name, v, list);
        }
    case K_LAYERS:
        if (strlen(v) >= LC_LAYERS_TEXT) return lc_errorf(LC_EINVAL, "%s: %s.%s is longer than %d characters", at, kd->section, kd->name, LC_LAYERS_TEXT - 1);
        memcpy((char *)c + kd->off, v, strlen(v) + 1);
        return LC_OK;
    }
    return lc_errorf(LC_EINVAL, "%s: internal: bad key type", at);
}

static void value_text(const lc_config *c, int k, char *buf, size_t cap) {
    const key_def *kd = &keys[k];
    switch (kd->type) {
    case K_INT: snprintf(buf, cap, "%lld", (long long)*civ(c, k)); break;
    case K_REAL: /* shortest text that reads back to the same double */
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(buf, cap, "%.*g", prec, *crv(c, k));
            if (strtod(buf, NULL) == *crv(c, k)) break;
        }
        break;
    case K_BOOL: snprintf(buf, cap, "%s", *cbv(c, k) ? "true" : "false"); break;
    case K_ENUM: snprintf(buf, cap, "%s", kd->words[*cbv(c, k)]); break;
    case K_LAYERS: snprintf(buf, cap, "%s", (const char *)c + kd->off); break;
    }
}

/* ---- validation of combinations ---------------------------------------------------------- */

#define AT(sec, name) where(c, key_of(sec, name), w1, sizeof w1)
/* dh = 0 means d / heads, which then must divide evenly (d = heads * dh). */
static lc_status derive_dh(lc_config *c, int64_t *dh, int64_t heads, const char *sec, const char *hname) {
    char w1[200];
    if (*dh != 0) return LC_OK;
    if (c->d % heads)
        return lc_errorf(LC_EINVAL, "%s.dh = 0 asks for d / %s.%s, but model.d = %lld is not a multiple of %s.%s = %lld (%s)", sec, sec, hname,
                         (long long)c->d, sec, hname, (long long)heads, where(c, key_of(sec, "dh"), w1, sizeof w1));
    *dh = c->d / heads;
    return LC_OK;
}

static lc_status validate(lc_config *c) {
    char w1[200], w2[200];
    int attn = key_relevant(c, key_of("attn", "heads")), chunk = has_kind(c, LC_LAYER_CHUNK);
    if (attn) LC_TRY(derive_dh(c, &c->attn_dh, c->attn_heads, "attn", "heads"));
    if (chunk) LC_TRY(derive_dh(c, &c->enc_dh, c->enc_heads, "encoder", "heads"));
    if (chunk) LC_TRY(derive_dh(c, &c->dh, c->HQ, "hsa", "HQ"));
    if (attn && c->attn_heads % c->attn_kv_heads)
        return lc_errorf(LC_EINVAL, "attn.heads = %lld (%s) is not a multiple of attn.kv_heads = %lld (%s)", (long long)c->attn_heads,
                         AT("attn", "heads"), (long long)c->attn_kv_heads, where(c, key_of("attn", "kv_heads"), w2, sizeof w2));
    if (attn && c->attn_dh % 2) return lc_errorf(LC_EINVAL, "%s: attn.dh = %lld must be even (RoPE rotates pairs)", AT("attn", "dh"), (long long)c->attn_dh);
    if (has_kind(c, LC_LAYER_MAMBA)) {
        if (c->mamba_heads * c->mamba_dh != c->mamba_expand * c->d)
            return lc_errorf(LC_EINVAL, "mamba.heads * mamba.head_dim = %lld * %lld must equal mamba.expand * model.d = %lld * %lld (%s)",
                             (long long)c->mamba_heads, (long long)c->mamba_dh, (long long)c->mamba_expand, (long long)c->d, AT("mamba", "heads"));
        if (c->mamba_heads % c->mamba_ngroups)
            return lc_errorf(LC_EINVAL, "mamba.heads = %lld is not a multiple of mamba.ngroups = %lld (%s)", (long long)c->mamba_heads,
                             (long long)c->mamba_ngroups, AT("mamba", "ngroups"));
    }
    if (chunk) {
        c->G = c->HQ / c->H;
        c->H_r = c->retrieval_heads == LC_RETRIEVAL_SINGLE ? 1 : c->H;
        if (c->HQ % c->H)
            return lc_errorf(LC_EINVAL, "hsa.HQ = %lld (%s) is not a multiple of hsa.H = %lld (%s)", (long long)c->HQ, AT("hsa", "HQ"),
                             (long long)c->H, where(c, key_of("hsa", "H"), w2, sizeof w2));
        if (c->block_q != 1 && c->block_q != c->S)
            return lc_errorf(LC_EINVAL, "%s: hsa.block_q = %lld must be 1 (HSA) or hsa.S = %lld (GCA)", AT("hsa", "block_q"), (long long)c->block_q,
                             (long long)c->S);
        if (c->d_r % c->H_r)
            return lc_errorf(LC_EINVAL, "hsa.d_r = %lld (%s) is not a multiple of the %lld retrieval heads (hsa.retrieval_heads = per_kv, hsa.H)",
                             (long long)c->d_r, AT("hsa", "d_r"), (long long)c->H_r);
        if (c->block_q != 1 && c->d_r != c->d)
            return lc_errorf(LC_EINVAL, "hsa.d_r = %lld (%s) must equal model.d = %lld when hsa.block_q = S: GCA scores the normed hidden state itself",
                             (long long)c->d_r, AT("hsa", "d_r"), (long long)c->d);
        if (c->context % c->S)
            return lc_errorf(LC_EINVAL, "model.context = %lld (%s) is not a multiple of hsa.S = %lld", (long long)c->context, AT("model", "context"),
                             (long long)c->S);
        if ((c->residual == LC_RESIDUAL_PLAIN) != (c->hsa_mlp == 0))
            return lc_errorf(LC_EINVAL, "hsa.residual = %s (%s) needs %s, but hsa.mlp = %lld", w_residual[c->residual], AT("hsa", "residual"),
                             c->residual == LC_RESIDUAL_PLAIN ? "hsa.mlp = 0" : "an MLP (hsa.mlp > 0)", (long long)c->hsa_mlp);
        if (c->enc_layers > 0 && c->enc_heads % c->enc_kv_heads)
            return lc_errorf(LC_EINVAL, "encoder.heads = %lld (%s) is not a multiple of encoder.kv_heads = %lld", (long long)c->enc_heads,
                             AT("encoder", "heads"), (long long)c->enc_kv_heads);
        if (c->enc_layers > 0 && c->enc_dh % 2)
            return lc_errorf(LC_EINVAL, "%s: encoder.dh = %lld must be even (RoPE rotates pairs)", AT("encoder", "dh"), (long long)c->enc_dh);
        if (c->mask_window && !key_relevant(c, key_of("attn", "W")))
            return lc_errorf(LC_EINVAL, "%s: hsa.mask_window needs a sliding window (no swa layer)", AT("hsa", "mask_window"));
    } else {
        c->G = c->H_r = 0;
    }
    if (c->oracle == LC_ORACLE_FORCE && c->oracle_prob <= 0)
        return lc_errorf(LC_EINVAL, "%s: oracle.mode = force with oracle.prob = 0 never forces", AT("oracle", "prob"));
    return LC_OK;
}
#undef AT

/* ---- parse ------------------------------------------------------------------------------- */

static void defaults(lc_config *c) {
    memset(c, 0, sizeof *c);
    for (int k = 0; k < NKEYS; k++) {
        lc_status s = set_value(c, k, keys[k].def, "default");
        (void)s; /* the table's defaults are in range (checked by test_config) */
    }
}

lc_status lc_config_parse(const char *text, const char *source, lc_config *cfg) {
    lc_config *c = cfg;
    defaults(c);
    snprintf(c->source, sizeof c->source, "%s", source ? source : "config");
    const char *section = "model";
    char sec_buf[32] = "model";
    int lineno = 0;
    const char *p = text ? text : "";
    while (*p) {
        lineno++;
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[1024];
        if (len >= sizeof line) return lc_errorf(LC_EINVAL, "%s:%d: line longer than %zu characters", c->source, lineno, sizeof line - 1);
        memcpy(line, p, len);
        line[len] = 0;
        p += len + (e ? 1 : 0);
        for (size_t i = 0; i < len; i++)
            if (line[i] == 0 || (line[i] & 0x80))
                return lc_errorf(LC_EINVAL, "%s:%d: non-ASCII or NUL byte in a config line", c->source, lineno);
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = trim(line);
        if (!*s) continue;
        char at[200];
        snprintf(at, sizeof at, "%s:%d", c->source, lineno);
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1]) return lc_errorf(LC_EINVAL, "%s: malformed section header '%s'", at, s);
            *close = 0;
            char *name = trim(s + 1);
            int found = 0;
            for (int i = 0; i < NSECTIONS; i++)
                if (!strcmp(name, sections[i])) found = 1;
            if (!found)
                return lc_errorf(LC_EINVAL, "%s: unknown section [%s] (known: model attn mamba encoder hsa init oracle)", at, name);
            snprintf(sec_buf, sizeof sec_buf, "%s", name);
            section = sec_buf;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) return lc_errorf(LC_EINVAL, "%s: expected 'key = value', got '%s'", at, s);
        *eq = 0;
        char *key = trim(s), *val = trim(eq + 1);
        if (!*key) return lc_errorf(LC_EINVAL, "%s: missing key before '='", at);
        if (!*val) return lc_errorf(LC_EINVAL, "%s: missing value for '%s'", at, key);
        const char *ksec = section, *kname = key;
        char sbuf[32];
        char *dot = strchr(key, '.');
        if (dot) {
            size_t sl = (size_t)(dot - key);
            if (sl >= sizeof sbuf) return lc_errorf(LC_EINVAL, "%s: unknown key '%s'", at, key);
            memcpy(sbuf, key, sl);
            sbuf[sl] = 0;
            ksec = sbuf;
            kname = dot + 1;
        }
        int k = key_find(ksec, kname);
        if (k < 0) {
            char known[512] = "";
            for (int i = 0; i < NKEYS; i++)
                if (!strcmp(keys[i].section, ksec)) {
                    strncat(known, " ", sizeof known - strlen(known) - 1);
                    strncat(known, keys[i].name, sizeof known - strlen(known) - 1);
                }
            return lc_errorf(LC_EINVAL, "%s: unknown key '%s' in [%s]%s%s", at, kname, ksec, known[0] ? " (known:" : "", known[0] ? known : "");
        }
        if (c->line[k]) return lc_errorf(LC_EINVAL, "%s: %s.%s set twice (first at line %d)", at, ksec, kname, c->line[k]);
        LC_TRY(set_value(c, k, val, at));
        c->line[k] = lineno;
    }
    LC_TRY(layers_resolve(c));
    for (int k = 0; k < NKEYS; k++)
        if (c->line[k] && !key_relevant(c, k)) {
            const char *why = keys[k].rel == REL_MAMBA ? "no mamba layer"
                              : keys[k].rel == REL_CHUNK ? "no chunk/retrieval/hsa layers"
                              : keys[k].rel == REL_POS_DECAY ? "hsa.pos_decay = false (or no hsa layers)"
                              : keys[k].rel == REL_SWA   ? "no sliding-window layer"
                                                         : "no attention layer";
            return lc_errorf(LC_EINVAL, "%s:%d: %s.%s is set but the model has %s (layers = %s)", c->source, c->line[k], keys[k].section,
                             keys[k].name, why, c->layers_text);
        }
    return validate(c);
}

/* ---- print and compare ------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap, len;
} sbuf;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->len < b->cap ? b->cap - b->len : 0;
    int n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) b->len += (size_t)n;
}

size_t lc_config_print(const lc_config *c, char *buf, size_t cap) {
    sbuf b = {buf, cap, 0};
    if (cap) buf[0] = 0;
    sb_printf(&b, "# longctx model config, resolved from %s\n", c->source);
    for (int s = 0; s < NSECTIONS; s++) {
        int any = 0;
        for (int k = 0; k < NKEYS; k++) {
            if (strcmp(keys[k].section, sections[s]) || !key_relevant(c, k)) continue;
            if (!any) sb_printf(&b, "\n[%s]\n", sections[s]);
            any = 1;
            char v[LC_LAYERS_TEXT + 8], kv[LC_LAYERS_TEXT + 64];
            value_text(c, k, v, sizeof v);
            snprintf(kv, sizeof kv, "%s = %s", keys[k].name, v);
            sb_printf(&b, "%-32s # %s\n", kv, keys[k].doc);
        }
    }
    if (c->n_groups)
        sb_printf(&b, "\n# derived: %d layers (%d below the chunk layer), %d groups, %d hsa layers, G = HQ/H = %lld, H_r = %lld", c->n_layers,
                  c->n_lower, c->n_groups, c->n_hsa, (long long)c->G, (long long)c->H_r);
    else
        sb_printf(&b, "\n# derived: %d layers, no chunk memory", c->n_layers);
    sb_printf(&b, "\n# parameters: %lld\n", (long long)lc_config_param_count(c));
    return b.len;
}

void lc_config_fprint(const lc_config *c, FILE *f) {
    size_t n = lc_config_print(c, NULL, 0);
    char *buf = malloc(n + 1);
    if (!buf) return;
    lc_config_print(c, buf, n + 1);
    fputs(buf, f);
    free(buf);
}

int lc_config_diff(const lc_config *a, const lc_config *b, char *buf, size_t cap) {
    for (int k = 0; k < NKEYS; k++) {
        char va[LC_LAYERS_TEXT + 8], vb[LC_LAYERS_TEXT + 8];
        value_text(a, k, va, sizeof va);
        value_text(b, k, vb, sizeof vb);
        int same = strcmp(va, vb) == 0;
        if (keys[k].type == K_LAYERS) {
            same = a->n_layers == b->n_layers;
            for (int i = 0; same && i < a->n_layers; i++) same = a->layers[i].kind == b->layers[i].kind;
        }
        if (!same) {
            if (cap) snprintf(buf, cap, "%s.%s: %s vs %s", keys[k].section, keys[k].name, va, vb);
            return 1;
        }
    }
    if (cap) buf[0] = 0;
    return 0;
}

int lc_config_equal(const lc_config *a, const lc_config *b) { return !lc_config_diff(a, b, NULL, 0); }

/* ---- parameter tensors ------------------------------------------------------------------- */

typedef struct {
    lc_param *out;
    int64_t cap, n, offset;
} plist;

#if defined(__GNUC__)
__attribute__((format(printf, 6, 7)))
#endif
static void padd(plist *l, int init, float std, int64_t d0, int64_t d1, const char *fmt, ...) {
    int64_t numel = d0 * (d1 > 0 ? d1 : 1);
    if (l->out && l->n < l->cap) {
        lc_param *p = &l->out[l->n];
        memset(p, 0, sizeof *p);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->name, sizeof p->name, fmt, ap);
        va_end(ap);
        p->ndim = d1 > 0 ? 2 : 1;
        p->shape[0] = d0;
        p->shape[1] = d1 > 0 ? d1 : 0;
        p->numel = numel;
        p->offset = l->offset;
        p->init = init;
        p->std = init == LC_INIT_NORMAL || init == LC_INIT_UNIFORM || init == LC_INIT_CONST ? std : 0.0f;
    }
    l->n++;
    l->offset += numel;
}

/* Attention sub-block: norm, q/k/v (+bias), q/k norms, o. */
static void attn_params(plist *l, const char *p, int64_t d, int64_t heads, int64_t kvh, int64_t dh, int bias, int qk_norm, float std, float out_std,
                        int zero_out) {
    padd(l, LC_INIT_ONE, 0, d, 0, "%s.attn_norm", p);
    padd(l, LC_INIT_NORMAL, std, heads * dh, d, "%s.wq", p);
    if (bias) padd(l, LC_INIT_ZERO, 0, heads * dh, 0, "%s.bq", p);
    padd(l, LC_INIT_NORMAL, std, kvh * dh, d, "%s.wk", p);
    if (bias) padd(l, LC_INIT_ZERO, 0, kvh * dh, 0, "%s.bk", p);
    padd(l, LC_INIT_NORMAL, std, kvh * dh, d, "%s.wv", p);
    if (bias) padd(l, LC_INIT_ZERO, 0, kvh * dh, 0, "%s.bv", p);
    if (qk_norm) {
        padd(l, LC_INIT_ONE, 0, dh, 0, "%s.q_norm", p);
        padd(l, LC_INIT_ONE, 0, dh, 0, "%s.k_norm", p);
    }
    padd(l, zero_out ? LC_INIT_ZERO : LC_INIT_NORMAL, out_std, d, heads * dh, "%s.wo", p);
}

static void mlp_params(plist *l, const char *p, int64_t d, int64_t f, float std, float out_std, int zero_out) {
    padd(l, LC_INIT_ONE, 0, d, 0, "%s.mlp_norm", p);
    padd(l, LC_INIT_NORMAL, std, f, d, "%s.w_gate", p);
    padd(l, LC_INIT_NORMAL, std, f, d, "%s.w_up", p);
    padd(l, zero_out ? LC_INIT_ZERO : LC_INIT_NORMAL, out_std, d, f, "%s.w_down", p);
}

int64_t lc_config_tensors(const lc_config *c, lc_param *out, int64_t cap) {
    plist l = {out, cap, 0, 0};
    const int64_t d = c->d;
    const float std = (float)c->init_std;
    const float out_std = c->init_scale_out ? (float)(c->init_std / sqrt((double)c->n_blocks)) : std;
    padd(&l, LC_INIT_NORMAL, std, c->vocab, d, "embed");
    for (int i = 0; i < c->n_layers; i++) {
        char p[32];
        snprintf(p, sizeof p, "layers.%d", i);
        switch (c->layers[i].kind) {
        case LC_LAYER_SWA:
        case LC_LAYER_DENSE:
            attn_params(&l, p, d, c->attn_heads, c->attn_kv_heads, c->attn_dh, c->attn_bias, c->attn_qk_norm, std, out_std, 0);
            mlp_params(&l, p, d, c->attn_mlp, std, out_std, c->zero_mlp_out);
            break;
        case LC_LAYER_MAMBA: {
            /* Mamba-2 (mamba_ssm Mamba2 layout): in_proj -> [z, x, B, C, dt], depthwise causal conv
             * over [x, B, C], gated RMSNorm over d_inner, out_proj. */
            int64_t di = c->mamba_expand * d, gN = c->mamba_ngroups * c->mamba_state, nh = c->mamba_heads;
            int64_t conv_dim = di + 2 * gN;
            padd(&l, LC_INIT_ONE, 0, d, 0, "%s.norm", p);
            padd(&l, LC_INIT_NORMAL, std, 2 * di + 2 * gN + nh, d, "%s.in_proj", p);
            /* depthwise conv: PyTorch's default U(+-1/sqrt(fan_in)), fan_in = conv width */
            padd(&l, LC_INIT_UNIFORM, (float)(1.0 / sqrt((double)c->mamba_conv)), conv_dim, c->mamba_conv, "%s.conv_w", p);
            padd(&l, LC_INIT_ZERO, 0, conv_dim, 0, "%s.conv_b", p);
            padd(&l, LC_INIT_MAMBA_DT_BIAS, 0, nh, 0, "%s.dt_bias", p);
            padd(&l, LC_INIT_MAMBA_A_LOG, 0, nh, 0, "%s.A_log", p);
            padd(&l, LC_INIT_ONE, 0, nh, 0, "%s.D", p);
            padd(&l, LC_INIT_ONE, 0, di, 0, "%s.gate_norm", p);
            padd(&l, LC_INIT_NORMAL, out_std, d, di, "%s.out_proj", p);
            if (c->mamba_mlp > 0) mlp_params(&l, p, d, c->mamba_mlp, std, out_std, c->zero_mlp_out);
            break;
        }
        case LC_LAYER_CHUNK: {
            if (c->enc_prenorm) padd(&l, LC_INIT_ONE, 0, d, 0, "%s.enc_prenorm", p);
            if (c->enc_layers > 0) {
                if (c->enc_cls) padd(&l, LC_INIT_NORMAL, std, d, 0, "%s.cls", p);
                for (int64_t e = 0; e < c->enc_layers; e++) {
                    char q[64];
                    snprintf(q, sizeof q, "%s.enc.%lld", p, (long long)e);
                    attn_params(&l, q, d, c->enc_heads, c->enc_kv_heads, c->enc_dh, c->enc_qkv_bias, c->enc_qk_norm, std, out_std,
                                c->zero_encoder_out);
                    mlp_params(&l, q, d, c->enc_mlp, std, out_std, c->zero_encoder_out || c->zero_mlp_out);
                }
            }
            padd(&l, LC_INIT_ONE, 0, d, 0, "%s.enc_norm", p); /* final encoder norm, or E = RMSNorm(X) without encoder */
            if (c->block_q == 1) padd(&l, LC_INIT_NORMAL, std, c->d_r, d, "%s.lmk_ln", p);
            padd(&l, LC_INIT_NORMAL, std, c->H * c->dh, d, "%s.proj_k", p);
            padd(&l, LC_INIT_NORMAL, std, c->H * c->dh, d, "%s.proj_v", p);
            if (c->qk_norm) padd(&l, LC_INIT_ONE, 0, c->dh, 0, "%s.k_norm", p);
            break;
        }
        case LC_LAYER_RETRIEVAL:
            padd(&l, LC_INIT_ONE, 0, d, 0, "%s.norm", p);
            if (c->block_q == 1) padd(&l, LC_INIT_NORMAL, std, c->d_r, d, "%s.ln", p);
            if (c->lmk_norm) {
                padd(&l, LC_INIT_ONE, 0, c->d_r / c->H_r, 0, "%s.q_lmk_norm", p);
                padd(&l, LC_INIT_ONE, 0, c->d_r / c->H_r, 0, "%s.lmk_norm", p);
            }
            if (c->pos_decay) padd(&l, LC_INIT_CONST, (float)c->init_pos_decay, 1, 0, "%s.pos_decay", p);
            break;
        case LC_LAYER_HSA: {
            if (c->swa_inside) {
                char q[64];
                snprintf(q, sizeof q, "%s.swa", p);
                attn_params(&l, q, d, c->attn_heads, c->attn_kv_heads, c->attn_dh, c->attn_bias, c->attn_qk_norm, std, out_std, 0);
            }
            padd(&l, LC_INIT_ONE, 0, d, 0, "%s.norm", p);
            padd(&l, LC_INIT_NORMAL, std, c->HQ * c->dh, d, "%s.q_proj", p);
            if (c->qk_norm) padd(&l, LC_INIT_ONE, 0, c->dh, 0, "%s.q_norm", p);
            padd(&l, c->zero_hsa_out ? LC_INIT_ZERO : LC_INIT_NORMAL, out_std, d, c->HQ * c->dh, "%s.o_proj", p);
            if (c->hsa_mlp > 0) mlp_params(&l, p, d, c->hsa_mlp, std, out_std, c->zero_mlp_out);
            break;
        }
        }
    }
    padd(&l, LC_INIT_ONE, 0, d, 0, "final_norm");
    if (!c->tied_embeddings) padd(&l, LC_INIT_NORMAL, std, c->vocab, d, "head");
    return l.n;
}

int64_t lc_config_param_count(const lc_config *c) {
    int64_t n = lc_config_tensors(c, NULL, 0);
    /* a second pass with storage is cheap and avoids keeping two walkers in sync */
    lc_param *ps = malloc((size_t)n * sizeof *ps);
    if (!ps) return -1;
    lc_config_tensors(c, ps, n);
    int64_t total = n ? ps[n - 1].offset + ps[n - 1].numel : 0;
    free(ps);
    return total;
}

lc_status lc_config_init_params(const lc_config *c, uint64_t seed, float *params) {
    int64_t nt = lc_config_tensors(c, NULL, 0);
    lc_param *ps = lc_malloc((size_t)nt * sizeof *ps, "parameter list");
    if (!ps) return LC_ENOMEM;
    lc_config_tensors(c, ps, nt);
    for (int64_t t = 0; t < nt; t++) {
        lc_rng r;
        lc_rng_seed(&r, lc_hash3(seed, (uint64_t)t, 0));
        float *x = params + ps[t].offset;
        const int64_t n = ps[t].numel;
        switch (ps[t].init) {
        case LC_INIT_NORMAL: lc_fill_normal(&r, x, (size_t)n, ps[t].std); break;
        case LC_INIT_UNIFORM: lc_fill_uniform(&r, x, (size_t)n, -ps[t].std, ps[t].std); break;
        case LC_INIT_ZERO: memset(x, 0, (size_t)n * sizeof *x); break;
        case LC_INIT_CONST:
            for (int64_t i = 0; i < n; i++) x[i] = ps[t].std;
            break;
        case LC_INIT_ONE:
            for (int64_t i = 0; i < n; i++) x[i] = 1.0f;
            break;
        case LC_INIT_MAMBA_A_LOG:
            for (int64_t i = 0; i < n; i++) x[i] = (float)log(1.0 + 15.0 * lc_rng_uniform(&r));
            break;
        case LC_INIT_MAMBA_DT_BIAS:
            for (int64_t i = 0; i < n; i++) {
                double dt = exp(log(1e-3) + (log(0.1) - log(1e-3)) * lc_rng_uniform(&r));
                x[i] = (float)(dt + log(-expm1(-dt))); /* softplus(x) = dt */
            }
            break;
        }
    }
    free(ps);
    return LC_OK;
}

int64_t lc_config_state_bytes(const lc_config *c, int64_t L, int elem_bytes) {
    int64_t e = elem_bytes, total = 0, swa_keys = L < c->W ? L : c->W;
    for (int i = 0; i < c->n_layers; i++) {
        switch (c->layers[i].kind) {
        case LC_LAYER_DENSE: total += 2 * L * c->attn_kv_heads * c->attn_dh * e; break;
        case LC_LAYER_SWA: total += 2 * swa_keys * c->attn_kv_heads * c->attn_dh * e; break;
        case LC_LAYER_HSA:
            if (c->swa_inside) total += 2 * swa_keys * c->attn_kv_heads * c->attn_dh * e;
            break;
        case LC_LAYER_CHUNK: total += 2 * L * c->H * c->dh * e + (L / c->S) * (c->block_q == 1 ? c->d_r : c->d) * e; break;
        case LC_LAYER_MAMBA: {
            int64_t conv_dim = c->mamba_expand * c->d + 2 * c->mamba_ngroups * c->mamba_state;
            total += (c->mamba_conv - 1) * conv_dim * 4 + c->mamba_heads * c->mamba_dh * c->mamba_state * 4;
            break;
        }
        default: break;
        }
    }
    return total;
}

double lc_config_oracle_prob(const lc_config *c, int64_t step) {
    if (c->oracle != LC_ORACLE_FORCE || step < 0) return 0.0;
    if (step < c->oracle_hold) return c->oracle_prob;
    if (c->oracle_decay <= 0) return c->oracle_hold > 0 ? 0.0 : c->oracle_prob; /* hold = decay = 0: always on */
    double f = 1.0 - (double)(step - c->oracle_hold) / (double)c->oracle_decay;
    return f > 0 ? c->oracle_prob * f : 0.0;
}

/* ---- loading ----------------------------------------------------------------------------- */

lc_status lc_config_preset(const char *name, lc_config *cfg) {
    const char *text = lc_config_preset_text(name);
    if (!text) {
        char list[512] = "";
        for (int i = 0; i < lc_config_preset_count(); i++) {
            strncat(list, " ", sizeof list - strlen(list) - 1);
            strncat(list, lc_config_preset_name(i), sizeof list - strlen(list) - 1);
        }
        return lc_errorf(LC_EINVAL, "unknown preset '%s' (presets:%s)", name, list);
    }
    char src[128];
    snprintf(src, sizeof src, "preset %s", name);
    return lc_config_parse(text, src, cfg);
}

lc_status lc_config_load(const char *name_or_path, lc_config *cfg) {
    if (lc_config_preset_text(name_or_path)) return lc_config_preset(name_or_path, cfg);
    FILE *f = fopen(name_or_path, "rb");
    if (!f) {
        if (!strchr(name_or_path, '/') && !strchr(name_or_path, '.')) return lc_config_preset(name_or_path, cfg);
        return lc_errorf(LC_EIO, "cannot open config file '%s'", name_or_path);
    }
    char *text = malloc(1 << 20);
    if (!text) {
        fclose(f);
        return lc_errorf(LC_ENOMEM, "out of memory reading '%s'", name_or_path);
    }
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    int big = !feof(f);
    fclose(f);
    if (big) {
        free(text);
        return lc_errorf(LC_EINVAL, "config file '%s' is larger than 1 MiB", name_or_path);
    }
    text[n] = 0;
    if (strlen(text) != n) {
        free(text);
        return lc_errorf(LC_EINVAL, "config file '%s' contains a NUL byte", name_or_path);
    }
    lc_status s = lc_config_parse(text, name_or_path, cfg);
    free(text);
    return s;
}
