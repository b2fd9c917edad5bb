/* model.c — parameters, forward and backward of the layer kinds in model.h, through the backend
 * table only. Linear weights are [out, in] (y = x W^T). The residual stream is updated in place:
 * output projections accumulate into it (matmul beta = 1), and the backward walks the layers in
 * reverse with dx, the gradient of the stream, updated in place the same way. Every layer saves
 * what its backward needs; buffers are allocated once per (B, T).
 *
 * GCA layout (hsa.block_q = S; hsa.md 3.2, 3.3, 4.3, 5; results/notes-gca.md). The paper inserts a
 * landmark (LMK) token at the end of every chunk; this runner does not, and maps:
 *   - landmark of chunk c: the encoder's normed output at its CLS slot (encoder.cls = true), or
 *     the mean of the chunk's S normed token outputs (encoder.cls = false, the presets); no lmk_ln
 *     projection (d_r = d, as in GCA's score <q, lmk> / sqrt(d)).
 *   - retrieval row r (hsa.h: serves the tokens of chunk r, sees chunks < r-1): its query is
 *     RMSNorm_g(x) of the group's retrieval layer at token r*S - 1, the last token of chunk r-1
 *     (the LMK token's place), with no projection; row 0 has no visible chunk (query zero). So the
 *     tokens of chunk r use chunks 0 .. r-2, never chunk r-1 (the local SWA's), as in GCA.
 *   - the fusion weights of row r are shared by the chunk's S tokens and (retrieval_heads =
 *     single) all heads; every token still has its own attention query q_proj(RMSNorm(x_t)).
 *   - off-by-one: GCA zeroes the LMK row of K/V (a +1 in the denominator); here hsa.off_by_one.
 *   - hsa.swa_inside: each hsa layer first does x += Wo SWA(RMSNorm(x)) with its own weights
 *     layers.<i>.swa.* ([attn] sizes, window W, RoPE instead of GCA's ALiBi, no MLP of its own);
 *     then the HSA/GCA part as without it; with residual = bypass the GCA output feeds only the
 *     MLP: x = h + MLP(RMSNorm(h + o_proj(GCA(h)))) (hsa.md 4.3).
 *   Oracle retrieval and segmented prefill (infer.c) refuse GCA; the CLS-less landmark mean is
 *   one strided batched matmul over the chunks. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- allocation arena */
typedef struct arena_node {
    void *p;
    struct arena_node *next;
} arena_node;

static void *arena_alloc(lc_model *m, size_t bytes, const char *what) {
    arena_node *n = malloc(sizeof *n);
    if (!n) return NULL;
    n->p = m->be->alloc(bytes, what);
    if (!n->p) {
        free(n);
        return NULL;
    }
    n->next = m->arena;
    m->arena = n;
    return n->p;
}
static void arena_free(lc_model *m) {
    arena_node *n = m->arena;
    while (n) {
        arena_node *next = n->next;
        m->be->free(n->p);
        free(n);
        n = next;
    }
    m->arena = NULL;
}

/* ---------------------------------------------------------------- per-layer state */
/* Offsets (in floats) of one attention + MLP block's tensors; -1 = absent. */
struct attn_params {
    int64_t attn_norm, wq, bq, wk, bk, wv, bv, q_norm, k_norm, wo, mlp_norm, w_gate, w_down;
};
/* Saved activations of one attention block (rows R = Bt * Lt). */
struct attn_saved {
    void *x_in, *hn, *q_pre, *k_pre, *q, *k, *v, *o;
    float *rstd1, *rstd_q, *rstd_k, *lse;
};
struct mlp_saved {
    void *x_mid, *hn2, *gu, *a;
    float *rstd2;
};

struct model_layer {
    int kind, group;
    struct attn_params ap;  /* swa, dense; hsa uses mlp_norm, w_gate, w_down */
    struct attn_params swa_p; /* hsa with hsa.swa_inside: the SWA sub-block (no MLP); wq < 0 = absent */
    struct attn_saved swa_s;
    struct attn_saved as;
    struct mlp_saved ms;
    /* chunk */
    int64_t cls, enc_norm, lmk_ln, proj_k, proj_v, ck_norm;
    struct attn_params *enc_p;
    struct attn_saved *enc_s;
    struct mlp_saved *enc_m;
    void *E0, *Eout, *lmk_src, *Etok, *kpre;
    float *enc_rstd, *rstd_kc;
    /* retrieval: norm, ln, pos_decay (-1: off); hsa: norm, q_proj, q_norm, o_proj */
    int64_t norm, ln, pos_decay, q_proj, q_norm, o_proj;
    void *hn, *q_r, *q_pre, *q, *o, *t;
    float *rstd, *rstd_q, *lse, *score, *wts, *dw;
    int32_t *idx;
    /* mamba */
    int64_t in_proj, conv_w, conv_b, dt_bias, A_log, Dp, gate_norm, out_proj;
    void *proj, *xbc, *xbc_c, *xs, *Bm, *Cm, *z, *y, *yn;
    float *dt, *A, *rstd_g;
};

/* Buffers shared by all layers: inputs, the chunk memory and its gradients, backward scratch. */
struct shared {
    int32_t *ids, *targets, *zero_ids;
    float *lw, *row_loss;
    void *x, *dx, *hf, *logits, *ones;
    float *rstd_f;
    void *mem_k, *mem_v, *lmk, *dmem_k, *dmem_v, *dlmk;
    void *g[6];      /* backward scratch, act, g_elems each */
    float *f[4];     /* f32 scratch, f_elems each */
    int64_t g_elems, f_elems;
    float *zeros_f;  /* f32 zeros (optional inputs) */
};

static struct shared *SH(lc_model *m) { return (struct shared *)(m->layers + m->cfg.n_layers); }

#define ACT(m, p, n) ((void *)((char *)(p) + (size_t)(n) * (m)->be->act_bytes))
#define WP(m, off) ACT(m, (m)->w, off)
#define GP(m, off) ((m)->grad + (off))
#define MP(m, off) ((m)->master + (off)) /* the fp32 master copy (scalars read by kernels) */

static int64_t find_tensor(const lc_model *m, const char *fmt, int i, const char *part) {
    char name[96];
    snprintf(name, sizeof name, fmt, i, part);
    for (int64_t t = 0; t < m->n_tensors; t++)
        if (!strcmp(m->tensors[t].name, name)) return m->tensors[t].offset;
    return -1;
}
#define TENSOR(i, part) find_tensor(m, "layers.%d.%s", i, part)

static int64_t enc_tensor(const lc_model *m, int i, int e, const char *part) {
    char name[96];
    snprintf(name, sizeof name, "layers.%d.enc.%d.%s", i, e, part);
    for (int64_t t = 0; t < m->n_tensors; t++)
        if (!strcmp(m->tensors[t].name, name)) return m->tensors[t].offset;
    return -1;
}

static int64_t top_tensor(const lc_model *m, const char *name) {
    for (int64_t t = 0; t < m->n_tensors; t++)
        if (!strcmp(m->tensors[t].name, name)) return m->tensors[t].offset;
    return -1;
}

static lc_status need(int64_t off, int i, const char *part) {
    if (off < 0) return lc_errorf(LC_EINVAL, "model: layer %d has no tensor '%s' (config/tensor list mismatch)", i, part);
    return LC_OK;
}

static lc_status attn_params_find(lc_model *m, struct attn_params *p, int64_t (*look)(const lc_model *, int, int, const char *),
                                  int i, int e) {
    p->attn_norm = look(m, i, e, "attn_norm");
    p->wq = look(m, i, e, "wq");
    p->bq = look(m, i, e, "bq");
    p->wk = look(m, i, e, "wk");
    p->bk = look(m, i, e, "bk");
    p->wv = look(m, i, e, "wv");
    p->bv = look(m, i, e, "bv");
    p->q_norm = look(m, i, e, "q_norm");
    p->k_norm = look(m, i, e, "k_norm");
    p->wo = look(m, i, e, "wo");
    p->mlp_norm = look(m, i, e, "mlp_norm");
    p->w_gate = look(m, i, e, "w_gate");
    p->w_down = look(m, i, e, "w_down");
    LC_TRY(need(p->attn_norm, i, "attn_norm"));
    LC_TRY(need(p->wq, i, "wq"));
    LC_TRY(need(p->wk, i, "wk"));
    LC_TRY(need(p->wv, i, "wv"));
    LC_TRY(need(p->wo, i, "wo"));
    return LC_OK;
}
static int64_t look_layer(const lc_model *m, int i, int e, const char *part) {
    (void)e;
    return find_tensor(m, "layers.%d.%s", i, part);
}
static int64_t look_swa(const lc_model *m, int i, int e, const char *part) {
    (void)e;
    return find_tensor(m, "layers.%d.swa.%s", i, part);
}

/* The MLP's gate and up weights must be adjacent ([2F, d] in one matmul). */
static lc_status mlp_find(lc_model *m, int i, int64_t *norm, int64_t *gate, int64_t *down, int64_t F, int e) {
    char pre[48];
    if (e < 0) snprintf(pre, sizeof pre, "layers.%d.", i);
    else snprintf(pre, sizeof pre, "layers.%d.enc.%d.", i, e);
    char nb[96];
    snprintf(nb, sizeof nb, "%smlp_norm", pre);
    *norm = top_tensor(m, nb);
    snprintf(nb, sizeof nb, "%sw_gate", pre);
    *gate = top_tensor(m, nb);
    snprintf(nb, sizeof nb, "%sw_up", pre);
    int64_t up = top_tensor(m, nb);
    snprintf(nb, sizeof nb, "%sw_down", pre);
    *down = top_tensor(m, nb);
    if (*norm < 0 && *gate < 0) return LC_OK; /* no MLP */
    LC_TRY(need(*norm, i, "mlp_norm"));
    LC_TRY(need(*gate, i, "w_gate"));
    LC_TRY(need(up, i, "w_up"));
    LC_TRY(need(*down, i, "w_down"));
    if (up != *gate + F * m->cfg.d) return lc_errorf(LC_EINVAL, "model: layer %d: w_up does not follow w_gate", i);
    return LC_OK;
}

/* ---------------------------------------------------------------- dims helpers */
static int64_t attn_dh(const lc_config *c) { return c->attn_dh ? c->attn_dh : c->d / c->attn_heads; }
static int64_t enc_dh(const lc_config *c) { return c->enc_dh ? c->enc_dh : c->d / c->enc_heads; }
static int64_t hsa_dh(const lc_config *c) { return c->dh ? c->dh : c->d / c->HQ; }
static int64_t n_chunks(const lc_model *m, int64_t T) { return m->cfg.S > 0 ? T / m->cfg.S : 0; }
static int64_t mamba_inner(const lc_config *c) { return c->mamba_heads * c->mamba_dh; }

static lc_status check_supported(const lc_config *c) {
    int has_chunk = 0, has_mamba = 0;
    for (int i = 0; i < c->n_layers; i++) {
        has_chunk |= c->layers[i].kind == LC_LAYER_CHUNK;
        has_mamba |= c->layers[i].kind == LC_LAYER_MAMBA;
    }
    if (has_chunk) {
        if (c->lmk_norm) return lc_errorf(LC_EUNSUPPORTED, "model: hsa.lmk_norm is not implemented in the runner yet");
        if (c->mask_window) return lc_errorf(LC_EUNSUPPORTED, "model: hsa.mask_window is not implemented in the runner yet");
        if (c->enc_layers < 1) return lc_errorf(LC_EUNSUPPORTED, "model: the chunk encoder needs encoder.layers >= 1 in the runner");
        if (c->enc_prenorm) return lc_errorf(LC_EUNSUPPORTED, "model: encoder.prenorm is not implemented in the runner yet");
        if (c->residual == LC_RESIDUAL_PLAIN && c->hsa_mlp > 0)
            return lc_errorf(LC_EUNSUPPORTED, "model: hsa.residual = plain takes no hsa MLP (RAMba: x + o_proj(HSA)); set hsa.mlp = 0");
    }
    if (has_mamba && c->mamba_mlp) return lc_errorf(LC_EUNSUPPORTED, "model: mamba.mlp > 0 is not implemented in the runner yet");
    if (c->attn_bias) return lc_errorf(LC_EUNSUPPORTED, "model: attn.bias is not implemented in the runner yet");
    return LC_OK;
}

/* ---------------------------------------------------------------- create / params */
lc_status model_create(lc_model *m, const lc_config *cfg, const struct backend *be, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    LC_TRY(check_supported(cfg));
    m->n_tensors = lc_config_tensors(cfg, NULL, 0);
    m->tensors = lc_malloc(sizeof(lc_param) * (size_t)m->n_tensors, "model tensors");
    if (!m->tensors) return LC_ENOMEM;
    lc_config_tensors(cfg, m->tensors, m->n_tensors);
    m->n_params = lc_config_param_count(cfg);
    m->layers = lc_calloc(1, sizeof(struct model_layer) * (size_t)cfg->n_layers + sizeof(struct shared), "model layers");
    if (!m->layers) return LC_ENOMEM;
    for (int i = 0; i < cfg->n_layers; i++) {
        struct model_layer *l = &m->layers[i];
        l->kind = cfg->layers[i].kind;
        l->group = cfg->layers[i].group;
        switch (l->kind) {
        case LC_LAYER_SWA:
        case LC_LAYER_DENSE:
            LC_TRY(attn_params_find(m, &l->ap, look_layer, i, 0));
            LC_TRY(mlp_find(m, i, &l->ap.mlp_norm, &l->ap.w_gate, &l->ap.w_down, cfg->attn_mlp, -1));
            break;
        case LC_LAYER_CHUNK:
            l->cls = TENSOR(i, "cls");
            l->enc_norm = TENSOR(i, "enc_norm");
            l->lmk_ln = TENSOR(i, "lmk_ln");
            l->proj_k = TENSOR(i, "proj_k");
            l->proj_v = TENSOR(i, "proj_v");
            l->ck_norm = TENSOR(i, "k_norm");
            if (cfg->enc_cls) LC_TRY(need(l->cls, i, "cls"));
            LC_TRY(need(l->enc_norm, i, "enc_norm"));
            if (cfg->block_q == 1) LC_TRY(need(l->lmk_ln, i, "lmk_ln")); /* GCA: landmark = mean itself (d_r = d) */
            LC_TRY(need(l->proj_k, i, "proj_k"));
            LC_TRY(need(l->proj_v, i, "proj_v"));
            l->enc_p = lc_calloc((size_t)cfg->enc_layers, sizeof *l->enc_p, "encoder params");
            l->enc_s = lc_calloc((size_t)cfg->enc_layers, sizeof *l->enc_s, "encoder saved");
            l->enc_m = lc_calloc((size_t)cfg->enc_layers, sizeof *l->enc_m, "encoder saved");
            if (!l->enc_p || !l->enc_s || !l->enc_m) return LC_ENOMEM;
            for (int e = 0; e < cfg->enc_layers; e++) {
                LC_TRY(attn_params_find(m, &l->enc_p[e], enc_tensor, i, e));
                LC_TRY(mlp_find(m, i, &l->enc_p[e].mlp_norm, &l->enc_p[e].w_gate, &l->enc_p[e].w_down, cfg->enc_mlp, e));
            }
            break;
        case LC_LAYER_RETRIEVAL:
            l->norm = TENSOR(i, "norm");
            l->ln = TENSOR(i, "ln");
            LC_TRY(need(l->norm, i, "norm"));
            if (cfg->block_q == 1) LC_TRY(need(l->ln, i, "ln")); /* GCA: q_r = the normed hidden state (d_r = d) */
            l->pos_decay = TENSOR(i, "pos_decay");
            if (cfg->pos_decay) LC_TRY(need(l->pos_decay, i, "pos_decay"));
            break;
        case LC_LAYER_HSA:
            l->norm = TENSOR(i, "norm");
            l->q_proj = TENSOR(i, "q_proj");
            l->q_norm = TENSOR(i, "q_norm");
            l->o_proj = TENSOR(i, "o_proj");
            LC_TRY(need(l->norm, i, "norm"));
            LC_TRY(need(l->q_proj, i, "q_proj"));
            LC_TRY(need(l->o_proj, i, "o_proj"));
            l->swa_p.wq = -1;
            if (cfg->swa_inside) LC_TRY(attn_params_find(m, &l->swa_p, look_swa, i, 0));
            LC_TRY(mlp_find(m, i, &l->ap.mlp_norm, &l->ap.w_gate, &l->ap.w_down, cfg->hsa_mlp, -1));
            if (l->ap.w_gate < 0 && cfg->residual != LC_RESIDUAL_PLAIN)
                return lc_errorf(LC_EUNSUPPORTED, "model: hsa layer %d without an MLP needs residual = plain", i);
            break;
        case LC_LAYER_MAMBA:
            l->norm = TENSOR(i, "norm");
            l->in_proj = TENSOR(i, "in_proj");
            l->conv_w = TENSOR(i, "conv_w");
            l->conv_b = TENSOR(i, "conv_b");
            l->dt_bias = TENSOR(i, "dt_bias");
            l->A_log = TENSOR(i, "A_log");
            l->Dp = TENSOR(i, "D");
            l->gate_norm = TENSOR(i, "gate_norm");
            l->out_proj = TENSOR(i, "out_proj");
            LC_TRY(need(l->norm, i, "norm"));
            LC_TRY(need(l->in_proj, i, "in_proj"));
            LC_TRY(need(l->conv_w, i, "conv_w"));
            LC_TRY(need(l->conv_b, i, "conv_b"));
            LC_TRY(need(l->dt_bias, i, "dt_bias"));
            LC_TRY(need(l->A_log, i, "A_log"));
            LC_TRY(need(l->Dp, i, "D"));
            LC_TRY(need(l->gate_norm, i, "gate_norm"));
            LC_TRY(need(l->out_proj, i, "out_proj"));
            break;
        }
    }
    size_t pb = (size_t)m->n_params * sizeof(float);
    m->master = be->alloc(pb, "model master weights");
    m->grad = be->alloc(pb, "model gradients");
    if (!m->master || !m->grad) return LC_ENOMEM;
    if (be->act_bytes == 4) m->w = m->master;
    else if (!(m->w = be->alloc((size_t)m->n_params * be->act_bytes, "model weight copy"))) return LC_ENOMEM;
    float *host = lc_malloc(pb, "initial parameters");
    if (!host) return LC_ENOMEM;
    lc_status st = lc_config_init_params(cfg, seed, host);
    if (st == LC_OK) st = model_set_params(m, host);
    free(host);
    m->gumbel_seed = seed ^ 0x9e3779b97f4a7c15ull;
    return st;
}

void model_destroy(lc_model *m) {
    if (!m->be) return;
    arena_free(m);
    if (m->layers) {
        for (int i = 0; i < m->cfg.n_layers; i++) {
            free(m->layers[i].enc_p);
            free(m->layers[i].enc_s);
            free(m->layers[i].enc_m);
        }
    }
    if (m->w != m->master) m->be->free(m->w);
    m->be->free(m->master);
    m->be->free(m->grad);
    m->be->free(m->adam_m);
    m->be->free(m->adam_v);
    free(m->layers);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

lc_status model_set_params(lc_model *m, const float *host) {
    LC_TRY(m->be->upload(m->master, host, (size_t)m->n_params * sizeof(float)));
    if (m->w != m->master) LC_TRY(m->be->act_from_f32(m->n_params, m->master, m->w));
    return LC_OK;
}
lc_status model_get_params(const lc_model *m, float *host) {
    return m->be->download(host, m->master, (size_t)m->n_params * sizeof(float));
}
lc_status model_get_grads(const lc_model *m, float *host) {
    return m->be->download(host, m->grad, (size_t)m->n_params * sizeof(float));
}
lc_status model_zero_grads(lc_model *m) { return m->be->zero(m->grad, (size_t)m->n_params * sizeof(float)); }

/* ---------------------------------------------------------------- activations */
static lc_status alloc_acts(lc_model *m, int64_t B, int64_t T) {
    arena_free(m);
    const lc_config *c = &m->cfg;
    const size_t ab = m->be->act_bytes;
    const int64_t R = B * T, d = c->d, C = n_chunks(m, T), S1 = c->S + (c->enc_cls != 0);
    const int64_t Re = B * C * S1;
    int64_t wide = d;
#define WIDEN(x) do { if ((x) > wide) wide = (x); } while (0)
    WIDEN(2 * c->attn_mlp);
    WIDEN(c->attn_heads * attn_dh(c));
    WIDEN(c->vocab);
    int64_t Rmax = R;
    struct shared *s = SH(m);
    memset(s, 0, sizeof *s);
#define AL(ptr, n, sz, what) do { if (!((ptr) = arena_alloc(m, (size_t)(n) * (sz) + 16, what))) return LC_ENOMEM; } while (0)
    for (int i = 0; i < c->n_layers; i++) {
        struct model_layer *l = &m->layers[i];
        switch (l->kind) {
        case LC_LAYER_SWA:
        case LC_LAYER_DENSE: {
            int64_t qd = c->attn_heads * attn_dh(c), kd = c->attn_kv_heads * attn_dh(c);
            AL(l->as.x_in, R * d, ab, "x_in"); AL(l->as.hn, R * d, ab, "hn");
            AL(l->as.q_pre, R * qd, ab, "q"); AL(l->as.k_pre, R * kd, ab, "k");
            AL(l->as.q, R * qd, ab, "q"); AL(l->as.k, R * kd, ab, "k"); AL(l->as.v, R * kd, ab, "v");
            AL(l->as.o, R * qd, ab, "o"); AL(l->as.rstd1, R, 4, "rstd"); AL(l->as.rstd_q, R * c->attn_heads, 4, "rstd");
            AL(l->as.rstd_k, R * c->attn_kv_heads, 4, "rstd"); AL(l->as.lse, R * c->attn_heads, 4, "lse");
            if (l->ap.w_gate >= 0) {
                AL(l->ms.x_mid, R * d, ab, "x_mid"); AL(l->ms.hn2, R * d, ab, "hn2");
                AL(l->ms.gu, R * 2 * c->attn_mlp, ab, "gu"); AL(l->ms.a, R * c->attn_mlp, ab, "a"); AL(l->ms.rstd2, R, 4, "rstd");
            }
            break;
        }
        case LC_LAYER_CHUNK: {
            int64_t edh = enc_dh(c), qd = c->enc_heads * edh, kd = c->enc_kv_heads * edh;
            WIDEN(2 * c->enc_mlp);
            WIDEN(qd);
            if (Re > Rmax) Rmax = Re;
            AL(l->E0, Re * d, ab, "E0"); AL(l->Eout, Re * d, ab, "E"); AL(l->enc_rstd, Re, 4, "rstd");
            AL(l->lmk_src, B * C * d + 1, ab, "lmk src"); AL(l->Etok, R * d, ab, "Etok");
            AL(l->kpre, R * c->H * hsa_dh(c), ab, "kpre"); AL(l->rstd_kc, R * c->H, 4, "rstd");
            for (int e = 0; e < c->enc_layers; e++) {
                struct attn_saved *as = &l->enc_s[e];
                struct mlp_saved *ms = &l->enc_m[e];
                AL(as->x_in, Re * d, ab, "x_in"); AL(as->hn, Re * d, ab, "hn");
                AL(as->q_pre, Re * qd, ab, "q"); AL(as->k_pre, Re * kd, ab, "k");
                AL(as->q, Re * qd, ab, "q"); AL(as->k, Re * kd, ab, "k"); AL(as->v, Re * kd, ab, "v");
                AL(as->o, Re * qd, ab, "o"); AL(as->rstd1, Re, 4, "rstd"); AL(as->rstd_q, Re * c->enc_heads, 4, "rstd");
                AL(as->rstd_k, Re * c->enc_kv_heads, 4, "rstd"); AL(as->lse, Re * c->enc_heads, 4, "lse");
                AL(ms->x_mid, Re * d, ab, "x_mid"); AL(ms->hn2, Re * d, ab, "hn2");
                AL(ms->gu, Re * 2 * c->enc_mlp, ab, "gu"); AL(ms->a, Re * c->enc_mlp, ab, "a"); AL(ms->rstd2, Re, 4, "rstd");
            }
            int64_t kvn = R * c->H * hsa_dh(c);
            AL(s->mem_k, kvn, ab, "mem_k"); AL(s->mem_v, kvn, ab, "mem_v");
            AL(s->dmem_k, kvn, ab, "dmem_k"); AL(s->dmem_v, kvn, ab, "dmem_v");
            AL(s->lmk, B * C * c->d_r + 1, ab, "lmk"); AL(s->dlmk, B * C * c->d_r + 1, ab, "dlmk");
            break;
        }
        case LC_LAYER_RETRIEVAL: {
            int64_t nk = R * c->H_r * c->K;
            AL(l->as.x_in, R * d, ab, "x_in"); AL(l->hn, R * d, ab, "hn"); AL(l->rstd, R, 4, "rstd"); AL(l->q_r, R * c->d_r, ab, "q_r");
            AL(l->idx, nk, 4, "idx"); AL(l->score, nk, 4, "score"); AL(l->wts, nk, 4, "w"); AL(l->dw, nk, 4, "dw");
            WIDEN(c->d_r);
            break;
        }
        case LC_LAYER_HSA: {
            int64_t qd = c->HQ * hsa_dh(c);
            WIDEN(qd);
            WIDEN(2 * c->hsa_mlp);
            AL(l->as.x_in, R * d, ab, "x_in"); AL(l->hn, R * d, ab, "hn"); AL(l->rstd, R, 4, "rstd");
            AL(l->q_pre, R * qd, ab, "q"); AL(l->q, R * qd, ab, "q"); AL(l->rstd_q, R * c->HQ, 4, "rstd");
            AL(l->o, R * qd, ab, "o"); AL(l->lse, R * c->HQ * c->K, 4, "lse"); AL(l->t, R * d, ab, "t");
            AL(l->ms.hn2, R * d, ab, "hn2"); AL(l->ms.gu, R * 2 * c->hsa_mlp, ab, "gu"); AL(l->ms.a, R * c->hsa_mlp, ab, "a");
            AL(l->ms.rstd2, R, 4, "rstd");
            if (l->swa_p.wq >= 0) {
                struct attn_saved *as = &l->swa_s;
                int64_t aq = c->attn_heads * attn_dh(c), ak = c->attn_kv_heads * attn_dh(c);
                WIDEN(aq);
                AL(as->x_in, R * d, ab, "x_in"); AL(as->hn, R * d, ab, "hn");
                AL(as->q_pre, R * aq, ab, "q"); AL(as->k_pre, R * ak, ab, "k");
                AL(as->q, R * aq, ab, "q"); AL(as->k, R * ak, ab, "k"); AL(as->v, R * ak, ab, "v");
                AL(as->o, R * aq, ab, "o"); AL(as->rstd1, R, 4, "rstd"); AL(as->rstd_q, R * c->attn_heads, 4, "rstd");
                AL(as->rstd_k, R * c->attn_kv_heads, 4, "rstd"); AL(as->lse, R * c->attn_heads, 4, "lse");
            }
            break;
        }
        case LC_LAYER_MAMBA: {
            int64_t di = mamba_inner(c), gn = c->mamba_ngroups * c->mamba_state, xc = di + 2 * gn;
            int64_t np = di + xc + c->mamba_heads;
            WIDEN(np);
            AL(l->as.x_in, R * d, ab, "x_in"); AL(l->hn, R * d, ab, "hn"); AL(l->rstd, R, 4, "rstd");
            AL(l->proj, R * np, ab, "in_proj out"); AL(l->xbc, R * xc, ab, "xBC"); AL(l->xbc_c, R * xc, ab, "conv out");
            AL(l->xs, R * di, ab, "x"); AL(l->Bm, R * gn, ab, "B"); AL(l->Cm, R * gn, ab, "C"); AL(l->z, R * di, ab, "z");
            AL(l->y, R * di, ab, "y"); AL(l->yn, R * di, ab, "yn"); AL(l->dt, R * c->mamba_heads, 4, "dt");
            AL(l->A, c->mamba_heads, 4, "A"); AL(l->rstd_g, R, 4, "rstd");
            break;
        }
        }
    }
    AL(s->ids, R, 4, "ids"); AL(s->targets, R, 4, "targets"); AL(s->lw, R, 4, "loss weights"); AL(s->row_loss, R, 4, "row loss");
    AL(s->x, R * d, ab, "x"); AL(s->dx, R * d, ab, "dx"); AL(s->hf, R * d, ab, "final norm"); AL(s->rstd_f, R, 4, "rstd");
    AL(s->logits, R * c->vocab, ab, "logits");
    s->g_elems = Rmax * wide;
    for (int k = 0; k < 6; k++) AL(s->g[k], s->g_elems, ab, "backward scratch");
    s->f_elems = Rmax * (c->vocab > 64 ? c->vocab : 64) + 4096;
    for (int k = 0; k < 4; k++) AL(s->f[k], s->f_elems, 4, "f32 scratch");
    AL(s->ones, Rmax, ab, "ones");
    AL(s->zero_ids, Rmax, 4, "zero ids");
    AL(s->zeros_f, 4096, 4, "zeros");
    {
        float *h = lc_malloc((size_t)Rmax * sizeof(float), "ones");
        if (!h) return LC_ENOMEM;
        for (int64_t k = 0; k < Rmax; k++) h[k] = 1.0f;
        lc_status st = m->be->upload(s->f[0], h, (size_t)Rmax * sizeof(float));
        free(h);
        LC_TRY(st);
        LC_TRY(m->be->act_from_f32(Rmax, s->f[0], s->ones));
    }
#undef AL
#undef WIDEN
    m->B = B;
    m->T = T;
    return LC_OK;
}

static lc_status act_host(const lc_model *m, const void *src, int64_t n, float *host);

/* ---------------------------------------------------------------- building blocks */
static lc_status linear_fwd(lc_model *m, int64_t R, int64_t Din, int64_t Dout, const void *x, int64_t w, void *y, float beta) {
    return m->be->matmul(0, 1, R, Dout, Din, 1.0f, x, WP(m, w), beta, y, 0);
}
/* dx = dy W (dx_beta = 1 accumulates; dx NULL = not wanted); dW += dy^T x. */
static lc_status linear_bwd(lc_model *m, int64_t R, int64_t Din, int64_t Dout, const void *x, int64_t w, const void *dy,
                            void *dx, float dx_beta) {
    if (dx) LC_TRY(m->be->matmul(0, 0, R, Din, Dout, 1.0f, dy, WP(m, w), dx_beta, dx, 0));
    return m->be->matmul(1, 0, Dout, Din, R, 1.0f, dy, x, 1.0f, GP(m, w), 1);
}
static lc_status bias_fwd(lc_model *m, int64_t R, int64_t D, int64_t b, void *y) {
    if (b < 0) return LC_OK;
    return m->be->matmul(0, 0, R, D, 1, 1.0f, SH(m)->ones, WP(m, b), 1.0f, y, 0);
}
static lc_status bias_bwd(lc_model *m, int64_t R, int64_t D, int64_t b, const void *dy) {
    if (b < 0) return LC_OK;
    return m->be->matmul(1, 0, D, 1, R, 1.0f, dy, SH(m)->ones, 1.0f, GP(m, b), 1);
}

/* MLP with pre-norm: out += Wd swiglu([Wg; Wu] n(in)). */
static lc_status mlp_fwd(lc_model *m, int64_t R, int64_t F, int64_t norm, int64_t gate, int64_t down, struct mlp_saved *ms,
                         const void *in, void *out) {
    const struct backend *be = m->be;
    const int64_t d = m->cfg.d;
    LC_TRY(be->rmsnorm_forward(R, d, (float)m->cfg.norm_eps, in, WP(m, norm), ms->hn2, ms->rstd2));
    LC_TRY(linear_fwd(m, R, d, 2 * F, ms->hn2, gate, ms->gu, 0.0f));
    LC_TRY(be->swiglu_forward(R, F, 2 * F, ms->gu, ACT(m, ms->gu, F), ms->a));
    return linear_fwd(m, R, F, d, ms->a, down, out, 1.0f);
}
/* dout: gradient of out; din: gradient of in (acc = 1 adds to it). */
static lc_status mlp_bwd(lc_model *m, int64_t R, int64_t F, int64_t norm, int64_t gate, int64_t down, struct mlp_saved *ms,
                         const void *in, const void *dout, void *din, int acc) {
    const struct backend *be = m->be;
    struct shared *s = SH(m);
    const int64_t d = m->cfg.d;
    void *da = s->g[0], *dgu = s->g[1], *dhn = s->g[2];
    LC_TRY(linear_bwd(m, R, F, d, ms->a, down, dout, da, 0.0f));
    LC_TRY(be->swiglu_backward(R, F, 2 * F, ms->gu, ACT(m, ms->gu, F), da, dgu, ACT(m, dgu, F)));
    LC_TRY(linear_bwd(m, R, d, 2 * F, ms->hn2, gate, dgu, dhn, 0.0f));
    return be->rmsnorm_backward(R, d, in, WP(m, norm), ms->rstd2, dhn, din, GP(m, norm), acc);
}

struct attn_dims {
    int64_t Bt, Lt, HQ, Hk, dh, W, F;
    int causal;
    float theta;
    int qk_norm;
};

/* x += Wo attn(...); then x += MLP(x) when the block has one. x is [Bt*Lt, d]. */
static lc_status attn_block_fwd(lc_model *m, const struct attn_dims *a, const struct attn_params *p, struct attn_saved *sv,
                                struct mlp_saved *ms, void *x) {
    const struct backend *be = m->be;
    const int64_t R = a->Bt * a->Lt, d = m->cfg.d, qd = a->HQ * a->dh, kd = a->Hk * a->dh;
    const float eps = (float)m->cfg.norm_eps;
    LC_TRY(be->copy(sv->x_in, x, (size_t)(R * d) * be->act_bytes));
    LC_TRY(be->rmsnorm_forward(R, d, eps, x, WP(m, p->attn_norm), sv->hn, sv->rstd1));
    LC_TRY(linear_fwd(m, R, d, qd, sv->hn, p->wq, sv->q_pre, 0.0f));
    LC_TRY(bias_fwd(m, R, qd, p->bq, sv->q_pre));
    LC_TRY(linear_fwd(m, R, d, kd, sv->hn, p->wk, sv->k_pre, 0.0f));
    LC_TRY(bias_fwd(m, R, kd, p->bk, sv->k_pre));
    LC_TRY(linear_fwd(m, R, d, kd, sv->hn, p->wv, sv->v, 0.0f));
    LC_TRY(bias_fwd(m, R, kd, p->bv, sv->v));
    if (p->q_norm >= 0) LC_TRY(be->rmsnorm_forward(R * a->HQ, a->dh, eps, sv->q_pre, WP(m, p->q_norm), sv->q, sv->rstd_q));
    else LC_TRY(be->copy(sv->q, sv->q_pre, (size_t)(R * qd) * be->act_bytes));
    if (p->k_norm >= 0) LC_TRY(be->rmsnorm_forward(R * a->Hk, a->dh, eps, sv->k_pre, WP(m, p->k_norm), sv->k, sv->rstd_k));
    else LC_TRY(be->copy(sv->k, sv->k_pre, (size_t)(R * kd) * be->act_bytes));
    LC_TRY(be->rope_forward(a->Bt, a->Lt, a->HQ, a->dh, 0, a->theta, sv->q, sv->q));
    LC_TRY(be->rope_forward(a->Bt, a->Lt, a->Hk, a->dh, 0, a->theta, sv->k, sv->k));
    struct attn_shape sh = {a->Bt, a->Lt, a->HQ, a->Hk, a->dh, a->W, a->causal, 0.0f, 0, 0};
    LC_TRY(be->attn_forward(&sh, sv->q, sv->k, sv->v, sv->o, sv->lse));
    LC_TRY(linear_fwd(m, R, qd, d, sv->o, p->wo, x, 1.0f));
    if (p->w_gate < 0) return LC_OK;
    LC_TRY(be->copy(ms->x_mid, x, (size_t)(R * d) * be->act_bytes));
    return mlp_fwd(m, R, a->F, p->mlp_norm, p->w_gate, p->w_down, ms, ms->x_mid, x);
}

/* dx: gradient of the block's output in, of its input out. */
static lc_status attn_block_bwd(lc_model *m, const struct attn_dims *a, const struct attn_params *p, struct attn_saved *sv,
                                struct mlp_saved *ms, void *dx) {
    const struct backend *be = m->be;
    struct shared *s = SH(m);
    const int64_t R = a->Bt * a->Lt, d = m->cfg.d, qd = a->HQ * a->dh, kd = a->Hk * a->dh;
    if (p->w_gate >= 0) LC_TRY(mlp_bwd(m, R, a->F, p->mlp_norm, p->w_gate, p->w_down, ms, ms->x_mid, dx, dx, 1));
    void *dO = s->g[0], *dq = s->g[1], *dk = s->g[2], *dv = s->g[3], *dqp = s->g[4], *dhn = s->g[5];
    LC_TRY(linear_bwd(m, R, qd, d, sv->o, p->wo, dx, dO, 0.0f));
    struct attn_shape sh = {a->Bt, a->Lt, a->HQ, a->Hk, a->dh, a->W, a->causal, 0.0f, 0, 0};
    LC_TRY(be->attn_backward(&sh, sv->q, sv->k, sv->v, sv->o, sv->lse, dO, dq, dk, dv));
    LC_TRY(be->rope_backward(a->Bt, a->Lt, a->HQ, a->dh, 0, a->theta, dq, dq));
    LC_TRY(be->rope_backward(a->Bt, a->Lt, a->Hk, a->dh, 0, a->theta, dk, dk));
    /* q: dq -> dqp (pre-norm), then Wq; dhn accumulates q, k, v contributions */
    const void *gq = dq, *gk = dk;
    if (p->q_norm >= 0) {
        LC_TRY(be->rmsnorm_backward(R * a->HQ, a->dh, sv->q_pre, WP(m, p->q_norm), sv->rstd_q, dq, dqp, GP(m, p->q_norm), 0));
        gq = dqp;
    }
    LC_TRY(bias_bwd(m, R, qd, p->bq, gq));
    LC_TRY(linear_bwd(m, R, d, qd, sv->hn, p->wq, gq, dhn, 0.0f));
    if (p->k_norm >= 0) {
        LC_TRY(be->rmsnorm_backward(R * a->Hk, a->dh, sv->k_pre, WP(m, p->k_norm), sv->rstd_k, dk, dqp, GP(m, p->k_norm), 0));
        gk = dqp;
    }
    LC_TRY(bias_bwd(m, R, kd, p->bk, gk));
    LC_TRY(linear_bwd(m, R, d, kd, sv->hn, p->wk, gk, dhn, 1.0f));
    LC_TRY(bias_bwd(m, R, kd, p->bv, dv));
    LC_TRY(linear_bwd(m, R, d, kd, sv->hn, p->wv, dv, dhn, 1.0f));
    return be->rmsnorm_backward(R, d, sv->x_in, WP(m, p->attn_norm), sv->rstd1, dhn, dx, GP(m, p->attn_norm), 1);
}

static struct attn_dims swa_dims(const lc_model *m, int kind) {
    const lc_config *c = &m->cfg;
    struct attn_dims a = {m->B, m->T, c->attn_heads, c->attn_kv_heads, attn_dh(c), kind == LC_LAYER_SWA ? c->W : 0,
                          c->attn_mlp, 1, (float)c->rope_theta, c->attn_qk_norm};
    return a;
}
static struct attn_dims enc_dims(const lc_model *m) {
    const lc_config *c = &m->cfg;
    struct attn_dims a = {m->B * n_chunks(m, m->T), c->S + (c->enc_cls != 0), c->enc_heads, c->enc_kv_heads, enc_dh(c), 0,
                          c->enc_mlp, 0, (float)c->enc_rope_theta, c->enc_qk_norm};
    return a;
}

static struct hsa_shape hsa_shape_of(const lc_model *m) {
    const lc_config *c = &m->cfg;
    struct hsa_shape h;
    memset(&h, 0, sizeof h);
    h.B = m->B; h.L = m->T; h.HQ = c->HQ; h.H = c->H; h.dh = hsa_dh(c); h.S = c->S; h.K = c->K;
    h.Hr = c->H_r; h.dr = c->d_r / c->H_r; h.block_q = c->block_q; h.softmax1 = c->off_by_one; h.weighting = c->weights;
    h.gumbel = c->gumbel && m->training; h.gumbel_seed = m->gumbel_seed; h.scale = 0.0f;
    return h;
}

/* ---------------------------------------------------------------- chunk layer */
/* Token rows [B, T, d] <-> chunk rows [B*C, S1, d] (the S token rows of each chunk; the CLS row
 * untouched). One strided copy when T = C*S (rows of consecutive batch rows are contiguous),
 * else one per batch row. to_chunks = 1: chunks <- tokens. */
static lc_status chunk_rows(lc_model *m, int to_chunks, void *chunks, void *tokens) {
    const struct backend *be = m->be;
    const size_t ab = be->act_bytes;
    const int64_t B = m->B, T = m->T, d = m->cfg.d, S = m->cfg.S, S1 = S + (m->cfg.enc_cls != 0), C = n_chunks(m, T);
    const size_t cp = (size_t)(S1 * d) * ab, tp = (size_t)(S * d) * ab;
    if (C * S == T)
        return to_chunks ? be->copy2d(chunks, cp, tokens, tp, tp, (size_t)(B * C)) : be->copy2d(tokens, tp, chunks, cp, tp, (size_t)(B * C));
    for (int64_t b = 0; b < B; b++) {
        void *cb = ACT(m, chunks, b * C * S1 * d), *tb = ACT(m, tokens, b * T * d);
        LC_TRY(to_chunks ? be->copy2d(cb, cp, tb, tp, tp, (size_t)C) : be->copy2d(tb, tp, cb, cp, tp, (size_t)C));
    }
    return LC_OK;
}

static lc_status chunk_fwd(lc_model *m, struct model_layer *l, const void *x) {
    const struct backend *be = m->be;
    const lc_config *c = &m->cfg;
    struct shared *s = SH(m);
    const size_t ab = be->act_bytes;
    const int64_t B = m->B, T = m->T, d = c->d, S = c->S, S1 = S + (c->enc_cls != 0), C = n_chunks(m, T), H = c->H, dh = hsa_dh(c);
    const float eps = (float)c->norm_eps;
    LC_TRY(be->zero(s->mem_k, (size_t)(B * T * H * dh) * ab));
    LC_TRY(be->zero(s->mem_v, (size_t)(B * T * H * dh) * ab));
    LC_TRY(be->zero(l->Etok, (size_t)(B * T * d) * ab));
    if (C == 0) return LC_OK;
    const int64_t BC = B * C;
    /* E0 [BC, S1, d]: S token rows then CLS */
    LC_TRY(chunk_rows(m, 1, l->E0, (void *)x));
    if (c->enc_cls) {
        void *clsb = s->g[0]; /* [BC, d] = cls broadcast through an embedding lookup with id 0 */
        LC_TRY(be->embedding_forward(BC, 1, d, s->zero_ids, WP(m, l->cls), clsb));
        LC_TRY(be->copy2d(ACT(m, l->E0, S * d), (size_t)(S1 * d) * ab, clsb, (size_t)d * ab, (size_t)d * ab, (size_t)BC));
    }
    /* encoder: residual stream Eout */
    LC_TRY(be->copy(l->Eout, l->E0, (size_t)(BC * S1 * d) * ab));
    struct attn_dims a = enc_dims(m);
    for (int e = 0; e < c->enc_layers; e++) LC_TRY(attn_block_fwd(m, &a, &l->enc_p[e], &l->enc_s[e], &l->enc_m[e], l->Eout));
    void *En = s->g[1]; /* final-normed encoder output [BC, S1, d] (kept in E0's place after use) */
    LC_TRY(be->rmsnorm_forward(BC * S1, d, eps, l->Eout, WP(m, l->enc_norm), En, l->enc_rstd));
    /* E0 is no longer needed by the backward (the encoder saved its own inputs): keep En there */
    LC_TRY(be->copy(l->E0, En, (size_t)(BC * S1 * d) * ab));
    if (c->enc_cls) /* landmark source: the CLS output */
        LC_TRY(be->copy2d(l->lmk_src, (size_t)d * ab, ACT(m, l->E0, S * d), (size_t)(S1 * d) * ab, (size_t)d * ab, (size_t)BC));
    else /* the mean of the chunk's S normed encoder outputs: (1/S) ones[1, S] En[bc] per chunk */
        LC_TRY(be->matmul_batched(0, 0, 1, d, S, 1.0f / (float)S, s->ones, 0, l->E0, S1 * d, 0.0f, l->lmk_src, d, BC, 0));
    if (l->lmk_ln >= 0) LC_TRY(linear_fwd(m, BC, d, c->d_r, l->lmk_src, l->lmk_ln, s->lmk, 0.0f));
    else LC_TRY(be->copy(s->lmk, l->lmk_src, (size_t)(BC * d) * ab)); /* GCA: d_r = d, no projection */
    LC_TRY(chunk_rows(m, 0, l->E0, l->Etok));
    LC_TRY(linear_fwd(m, B * T, d, H * dh, l->Etok, l->proj_k, l->kpre, 0.0f));
    if (l->ck_norm >= 0) LC_TRY(be->rmsnorm_forward(B * T * H, dh, eps, l->kpre, WP(m, l->ck_norm), s->mem_k, l->rstd_kc));
    else LC_TRY(be->copy(s->mem_k, l->kpre, (size_t)(B * T * H * dh) * ab));
    LC_TRY(linear_fwd(m, B * T, d, H * dh, l->Etok, l->proj_v, s->mem_v, 0.0f));
    /* rows past the last complete chunk: never read by HSA, keep them zero */
    if (C * S < T)
        for (int64_t b = 0; b < B; b++) {
            LC_TRY(be->zero(ACT(m, s->mem_k, (b * T + C * S) * H * dh), (size_t)((T - C * S) * H * dh) * ab));
            LC_TRY(be->zero(ACT(m, s->mem_v, (b * T + C * S) * H * dh), (size_t)((T - C * S) * H * dh) * ab));
        }
    return LC_OK;
}

/* Gradients dmem_k, dmem_v, dlmk (shared) -> parameters; adds the gradient of x into dx. */
static lc_status chunk_bwd(lc_model *m, struct model_layer *l, void *dx) {
    const struct backend *be = m->be;
    const lc_config *c = &m->cfg;
    struct shared *s = SH(m);
    const size_t ab = be->act_bytes;
    const int64_t B = m->B, T = m->T, d = c->d, S = c->S, S1 = S + (c->enc_cls != 0), C = n_chunks(m, T), H = c->H, dh = hsa_dh(c);
    if (C == 0) return LC_OK;
    const int64_t BC = B * C;
    if (C * S < T) /* rows past the last chunk were zeroed: no gradient */
        for (int64_t b = 0; b < B; b++) {
            LC_TRY(be->zero(ACT(m, s->dmem_k, (b * T + C * S) * H * dh), (size_t)((T - C * S) * H * dh) * ab));
            LC_TRY(be->zero(ACT(m, s->dmem_v, (b * T + C * S) * H * dh), (size_t)((T - C * S) * H * dh) * ab));
        }
    void *dEtok = s->g[2], *dkp = s->g[3], *dEn = s->g[4], *dE = s->g[5];
    const void *gk = s->dmem_k;
    if (l->ck_norm >= 0) {
        LC_TRY(be->rmsnorm_backward(B * T * H, dh, l->kpre, WP(m, l->ck_norm), l->rstd_kc, s->dmem_k, dkp, GP(m, l->ck_norm), 0));
        gk = dkp;
    }
    LC_TRY(linear_bwd(m, B * T, d, H * dh, l->Etok, l->proj_k, gk, dEtok, 0.0f));
    LC_TRY(linear_bwd(m, B * T, d, H * dh, l->Etok, l->proj_v, s->dmem_v, dEtok, 1.0f));
    /* dEn [BC, S1, d]: token rows from dEtok, CLS rows from the landmark projection */
    LC_TRY(chunk_rows(m, 1, dEn, dEtok));
    void *dsrc = s->g[1];
    if (l->lmk_ln >= 0) LC_TRY(linear_bwd(m, BC, d, c->d_r, l->lmk_src, l->lmk_ln, s->dlmk, dsrc, 0.0f));
    else LC_TRY(be->copy(dsrc, s->dlmk, (size_t)(BC * d) * ab));
    if (c->enc_cls)
        LC_TRY(be->copy2d(ACT(m, dEn, S * d), (size_t)(S1 * d) * ab, dsrc, (size_t)d * ab, (size_t)d * ab, (size_t)BC));
    else /* mean: every token row of chunk bc gets dsrc[bc] / S (ones[S, 1] dsrc[bc] added) */
        LC_TRY(be->matmul_batched(0, 0, S, d, 1, 1.0f / (float)S, s->ones, 0, dsrc, d, 1.0f, dEn, S1 * d, BC, 0));
    LC_TRY(be->rmsnorm_backward(BC * S1, d, l->Eout, WP(m, l->enc_norm), l->enc_rstd, dEn, dE, GP(m, l->enc_norm), 0));
    /* the encoder blocks use g[0..5] as scratch: keep dE in Eout (no longer needed) */
    LC_TRY(be->copy(l->Eout, dE, (size_t)(BC * S1 * d) * ab));
    struct attn_dims a = enc_dims(m);
    for (int e = c->enc_layers - 1; e >= 0; e--) LC_TRY(attn_block_bwd(m, &a, &l->enc_p[e], &l->enc_s[e], &l->enc_m[e], l->Eout));
    /* CLS gradient: sum of the CLS rows; token rows back to x */
    if (c->enc_cls) {
        void *dcls = s->g[0];
        LC_TRY(be->copy2d(dcls, (size_t)d * ab, ACT(m, l->Eout, S * d), (size_t)(S1 * d) * ab, (size_t)d * ab, (size_t)BC));
        LC_TRY(be->embedding_backward(BC, 1, d, s->zero_ids, dcls, GP(m, l->cls)));
    }
    void *dX = s->g[1];
    LC_TRY(be->zero(dX, (size_t)(B * T * d) * ab));
    LC_TRY(chunk_rows(m, 0, l->Eout, dX));
    return be->add(B * T * d, dX, dx);
}

/* ---------------------------------------------------------------- retrieval and HSA layers */
/* Force the oracle chunk into each marked token's selection (host round trip: a training aid
 * for tiny models, not a fast path). */
static lc_status oracle_force(lc_model *m, struct model_layer *l) {
    const lc_config *c = &m->cfg;
    struct shared *s = SH(m);
    const int64_t B = m->B, T = m->T, R = B * T, Hr = c->H_r, K = c->K, dr = c->d_r / Hr, C = n_chunks(m, T);
    if (C == 0) return LC_OK;
    int64_t nk = R * Hr * K;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)nk);
    float *sc = malloc(sizeof(float) * (size_t)nk), *qr = malloc(sizeof(float) * (size_t)(R * c->d_r)),
          *lm = malloc(sizeof(float) * (size_t)(B * C * c->d_r));
    lc_status st = (!idx || !sc || !qr || !lm) ? lc_errorf(LC_ENOMEM, "oracle buffers") : LC_OK;
    if (st == LC_OK) st = m->be->download(idx, l->idx, (size_t)nk * 4);
    if (st == LC_OK) st = m->be->download(sc, l->score, (size_t)nk * 4);
    if (st == LC_OK) st = act_host(m, l->q_r, R * c->d_r, qr);
    if (st == LC_OK) st = act_host(m, s->lmk, B * C * c->d_r, lm);
    for (int64_t b = 0; st == LC_OK && b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            int32_t ch = m->oracle_chunk[b * T + t];
            int64_t nvis = t / c->S < C ? t / c->S : C;
            if (ch < 0 || ch >= nvis) continue;
            if (nvis > K) nvis = K;
            for (int64_t hr = 0; hr < Hr; hr++) {
                int32_t *ix = idx + ((b * T + t) * Hr + hr) * K;
                float *sv = sc + ((b * T + t) * Hr + hr) * K;
                int present = 0;
                int64_t kmin = 0;
                for (int64_t k = 0; k < nvis; k++) {
                    present |= ix[k] == ch;
                    if (sv[k] < sv[kmin]) kmin = k;
                }
                if (present) continue;
                const float *q = qr + ((b * T + t) * Hr + hr) * dr, *lk = lm + ((b * C + ch) * Hr + hr) * dr;
                double dot = 0;
                for (int64_t j = 0; j < dr; j++) dot += (double)q[j] * lk[j];
                ix[kmin] = ch;
                sv[kmin] = (float)(dot / sqrt((double)dr));
                for (int64_t k = 1; k < nvis; k++) /* chunk id descending */
                    for (int64_t j = k; j > 0 && ix[j] > ix[j - 1]; j--) {
                        int32_t ti = ix[j]; ix[j] = ix[j - 1]; ix[j - 1] = ti;
                        float tf = sv[j]; sv[j] = sv[j - 1]; sv[j - 1] = tf;
                    }
            }
        }
    if (st == LC_OK) st = m->be->upload(l->idx, idx, (size_t)nk * 4);
    if (st == LC_OK) st = m->be->upload(l->score, sc, (size_t)nk * 4);
    free(idx);
    free(sc);
    free(qr);
    free(lm);
    return st;
}

/* GCA query rows (block_q = S, d_r = d): row r of q_r [B, Lr, d] serves the tokens of chunk r and
 * is the group-normed hidden state of the last token of chunk r-1 (token r*S - 1), the latest
 * token every served token may see; row 0 (no chunk before) is zero and sees no chunk anyway. */
static lc_status gca_gather(lc_model *m, const void *hn, void *q_r) {
    const struct backend *be = m->be;
    const size_t ab = be->act_bytes;
    const int64_t B = m->B, T = m->T, d = m->cfg.d, S = m->cfg.S, Lr = (T + S - 1) / S;
    LC_TRY(be->zero(q_r, (size_t)(B * Lr * d) * ab));
    if (Lr < 2) return LC_OK;
    for (int64_t b = 0; b < B; b++)
        LC_TRY(be->copy2d(ACT(m, q_r, (b * Lr + 1) * d), (size_t)d * ab, ACT(m, hn, (b * T + S - 1) * d), (size_t)(S * d) * ab,
                          (size_t)d * ab, (size_t)(Lr - 1)));
    return LC_OK;
}
/* The transpose of gca_gather: dhn [B*T, d] = 0 except rows r*S - 1 = dq_r row r. */
static lc_status gca_scatter(lc_model *m, const void *dq_r, void *dhn) {
    const struct backend *be = m->be;
    const size_t ab = be->act_bytes;
    const int64_t B = m->B, T = m->T, d = m->cfg.d, S = m->cfg.S, Lr = (T + S - 1) / S;
    LC_TRY(be->zero(dhn, (size_t)(B * T * d) * ab));
    if (Lr < 2) return LC_OK;
    for (int64_t b = 0; b < B; b++)
        LC_TRY(be->copy2d(ACT(m, dhn, (b * T + S - 1) * d), (size_t)(S * d) * ab, ACT(m, dq_r, (b * Lr + 1) * d), (size_t)d * ab,
                          (size_t)d * ab, (size_t)(Lr - 1)));
    return LC_OK;
}

static lc_status retrieval_fwd(lc_model *m, struct model_layer *l, const void *x) {
    const struct backend *be = m->be;
    const lc_config *c = &m->cfg;
    const int64_t R = m->B * m->T;
    LC_TRY(be->copy(l->as.x_in, x, (size_t)(R * c->d) * be->act_bytes));
    LC_TRY(be->rmsnorm_forward(R, c->d, (float)c->norm_eps, x, WP(m, l->norm), l->hn, l->rstd));
    struct hsa_shape h = hsa_shape_of(m);
    if (c->block_q == 1) LC_TRY(linear_fwd(m, R, c->d, c->d_r, l->hn, l->ln, l->q_r, 0.0f));
    else LC_TRY(gca_gather(m, l->hn, l->q_r));
    LC_TRY(be->hsa_retrieve(&h, l->q_r, SH(m)->lmk, l->idx, l->score));
    if (m->oracle_chunk) {
        if (c->block_q != 1) return lc_errorf(LC_EUNSUPPORTED, "model: oracle retrieval is not implemented for GCA (hsa.block_q = S)");
        LC_TRY(oracle_force(m, l));
    }
    if (c->pos_decay) LC_TRY(be->hsa_pos_decay_forward(&h, MP(m, l->pos_decay), l->score));
    LC_TRY(be->hsa_weights_forward(&h, l->score, l->wts));
    return be->zero(l->dw, (size_t)(R * c->H_r * c->K) * 4);
}

static lc_status retrieval_bwd(lc_model *m, struct model_layer *l, void *dx) {
    const struct backend *be = m->be;
    const lc_config *c = &m->cfg;
    struct shared *s = SH(m);
    const int64_t R = m->B * m->T;
    struct hsa_shape h = hsa_shape_of(m);
    float *dscore = s->f[0];
    LC_TRY(be->hsa_weights_backward(&h, l->score, l->wts, l->dw, dscore));
    if (c->pos_decay) LC_TRY(be->hsa_pos_decay_backward(&h, l->score, dscore, GP(m, l->pos_decay)));
    void *dqr = s->g[0], *dhn = s->g[1];
    LC_TRY(be->zero(dqr, (size_t)(R * c->d_r) * be->act_bytes));
    LC_TRY(be->hsa_scores_backward(&h, l->q_r, s->lmk, l->idx, dscore, dqr, s->dlmk));
    if (c->block_q == 1) LC_TRY(linear_bwd(m, R, c->d, c->d_r, l->hn, l->ln, dqr, dhn, 0.0f));
    else LC_TRY(gca_scatter(m, dqr, dhn));
    return be->rmsnorm_backward(R, c->d, l->as.x_in, WP(m, l->norm), l->rstd, dhn, dx, GP(m, l->norm), 1);
}

static struct model_layer *group_retrieval(lc_model *m, int i) {
    for (int j = i; j >= 0; j--)
        if (m->layers[j].kind == LC_LAYER_RETRIEVAL && m->layers[j].group == m->layers[i].group) return &m->layers[j];
    return NULL;
}

static lc_status hsa_fwd(lc_model *m, int i, void *x) {
    const struct backend *be = m->be;
    const lc_config *c = &m->cfg;
    struct shared *s = SH(m);
    struct model_layer *l = &m->layers[i], *r = group_retrieval(m, i);
    const size_t ab = be->act_bytes;
    const int64_t R = m->B * m->T, d = c->d, dh = hsa_dh(c), qd = c->HQ * dh;
    const float eps = (float)c->norm_eps;
    if (!r) return lc_errorf(LC_EINVAL, "model: hsa layer %d has no retrieval layer", i);
    if (l->swa_p.wq >= 0) { /* hsa.swa_inside: x += SWA(n x) first (the GCA layer's local mixer) */
        struct attn_dims a = swa_dims(m, LC_LAYER_SWA);
        LC_TRY(attn_block_fwd(m, &a, &l->swa_p, &l->swa_s, &l->ms, x));
    }
    LC_TRY(be->copy(l->as.x_in, x, (size_t)(R * d) * ab));
    LC_TRY(be->rmsnorm_forward(R, d, eps, x, WP(m, l->norm), l->hn, l->rstd));
    LC_TRY(linear_fwd(m, R, d, qd, l->hn, l->q_proj, l->q_pre, 0.0f));
    if (l->q_norm >= 0) LC_TRY(be->rmsnorm_forward(R * c->HQ, dh, eps, l->q_pre, WP(m, l->q_norm), l->q, l->rstd_q));
    else LC_TRY(be->copy(l->q, l->q_pre, (size_t)(R * qd) * ab));
    struct hsa_shape h = hsa_shape_of(m);
    LC_TRY(be->hsa_attend_forward(&h, l->q, s->mem_k, s->mem_v, r->idx, r->wts, l->o, l->lse));
    if (c->residual == LC_RESIDUAL_PLAIN) /* RAMba: x += o_proj(HSA), no MLP */
        return linear_fwd(m, R, qd, d, l->o, l->o_proj, x, 1.0f);
    LC_TRY(be->copy(l->t, x, (size_t)(R * d) * ab));
    LC_TRY(linear_fwd(m, R, qd, d, l->o, l->o_proj, l->t, 1.0f));
    if (c->residual == LC_RESIDUAL_RESET) LC_TRY(be->copy(x, l->t, (size_t)(R * d) * ab));
    return mlp_fwd(m, R, c->hsa_mlp, l->ap.mlp_norm, l->ap.w_gate, l->ap.w_down, &l->ms, l->t, x);
}

static lc_status hsa_bwd(lc_model *m, int i, void *dx) {
    const struct backend *be = m->be;
    const lc_config *c = &m->cfg;
    struct shared *s = SH(m);
    struct model_layer *l = &m->layers[i], *r = group_retrieval(m, i);
    const int64_t R = m->B * m->T, d = c->d, dh = hsa_dh(c), qd = c->HQ * dh, kvn = R * c->H * dh;
    const void *da;
    if (c->residual == LC_RESIDUAL_PLAIN) {
        da = dx; /* x_out = x + a */
    } else if (c->residual == LC_RESIDUAL_RESET) {
        LC_TRY(mlp_bwd(m, R, c->hsa_mlp, l->ap.mlp_norm, l->ap.w_gate, l->ap.w_down, &l->ms, l->t, dx, dx, 1));
        da = dx;
    } else { /* bypass: a reaches x only through the MLP */
        void *dT = s->g[3];
        LC_TRY(mlp_bwd(m, R, c->hsa_mlp, l->ap.mlp_norm, l->ap.w_gate, l->ap.w_down, &l->ms, l->t, dx, dT, 0));
        LC_TRY(be->add(R * d, dT, dx));
        da = dT;
    }
    void *dO = s->g[4], *dq = s->g[0], *dk = s->g[1], *dv = s->g[2], *dqp = s->g[5];
    LC_TRY(linear_bwd(m, R, qd, d, l->o, l->o_proj, da, dO, 0.0f));
    struct hsa_shape h = hsa_shape_of(m);
    float *dw = s->f[1];
    LC_TRY(be->hsa_attend_backward(&h, l->q, s->mem_k, s->mem_v, r->idx, r->wts, l->lse, dO, dq, dk, dv, dw));
    LC_TRY(be->add(kvn, dk, s->dmem_k));
    LC_TRY(be->add(kvn, dv, s->dmem_v));
    LC_TRY(be->add_f32(m->B * hsa_num_rows(&h) * c->H_r * c->K, dw, r->dw));
    const void *gq = dq;
    if (l->q_norm >= 0) {
        LC_TRY(be->rmsnorm_backward(R * c->HQ, dh, l->q_pre, WP(m, l->q_norm), l->rstd_q, dq, dqp, GP(m, l->q_norm), 0));
        gq = dqp;
    }
    void *dhn = s->g[1];
    LC_TRY(linear_bwd(m, R, d, qd, l->hn, l->q_proj, gq, dhn, 0.0f));
    LC_TRY(be->rmsnorm_backward(R, d, l->as.x_in, WP(m, l->norm), l->rstd, dhn, dx, GP(m, l->norm), 1));
    if (l->swa_p.wq < 0) return LC_OK;
    struct attn_dims a = swa_dims(m, LC_LAYER_SWA);
    return attn_block_bwd(m, &a, &l->swa_p, &l->swa_s, &l->ms, dx);
}

/* ---------------------------------------------------------------- Mamba-2 layer */
struct mamba_dims {
    int64_t di, gn, xc, np, nh;
};
static struct mamba_dims mdims(const lc_config *c) {
    struct mamba_dims a;
    a.di = mamba_inner(c);
    a.gn = c->mamba_ngroups * c->mamba_state;
    a.xc = a.di + 2 * a.gn;
    a.nh = c->mamba_heads;
    a.np = a.di + a.xc + a.nh;
    return a;
}

static lc_status mamba_fwd(lc_model *m, struct model_layer *l, void *x) {
    const struct backend *be = m->be;
    const lc_config *c = &m->cfg;
    struct shared *s = SH(m);
    const size_t ab = be->act_bytes;
    const int64_t B = m->B, T = m->T, R = B * T, d = c->d;
    struct mamba_dims a = mdims(c);
    LC_TRY(be->copy(l->as.x_in, x, (size_t)(R * d) * ab));
    LC_TRY(be->rmsnorm_forward(R, d, (float)c->norm_eps, x, WP(m, l->norm), l->hn, l->rstd));
    LC_TRY(linear_fwd(m, R, d, a.np, l->hn, l->in_proj, l->proj, 0.0f));
    const size_t rp = (size_t)a.np * ab;
    LC_TRY(be->copy2d(l->z, (size_t)a.di * ab, l->proj, rp, (size_t)a.di * ab, (size_t)R));
    LC_TRY(be->copy2d(l->xbc, (size_t)a.xc * ab, ACT(m, l->proj, a.di), rp, (size_t)a.xc * ab, (size_t)R));
    void *dtc = s->g[0];
    LC_TRY(be->copy2d(dtc, (size_t)a.nh * ab, ACT(m, l->proj, a.di + a.xc), rp, (size_t)a.nh * ab, (size_t)R));
    LC_TRY(be->act_to_f32(R * a.nh, dtc, l->dt));
    struct mamba_conv_shape cs = {B, T, a.xc, c->mamba_conv};
    LC_TRY(be->mamba_conv_forward(&cs, l->xbc, MP(m, l->conv_w), MP(m, l->conv_b), NULL, l->xbc_c, NULL));
    const size_t rx = (size_t)a.xc * ab;
    LC_TRY(be->copy2d(l->xs, (size_t)a.di * ab, l->xbc_c, rx, (size_t)a.di * ab, (size_t)R));
    LC_TRY(be->copy2d(l->Bm, (size_t)a.gn * ab, ACT(m, l->xbc_c, a.di), rx, (size_t)a.gn * ab, (size_t)R));
    LC_TRY(be->copy2d(l->Cm, (size_t)a.gn * ab, ACT(m, l->xbc_c, a.di + a.gn), rx, (size_t)a.gn * ab, (size_t)R));
    /* A = -exp(A_log) (on the device: no host round trip) */
    LC_TRY(be->negexp_f32(a.nh, MP(m, l->A_log), l->A));
    struct mamba_scan_shape ss = {B, T, a.nh, c->mamba_dh, c->mamba_ngroups, c->mamba_state};
    LC_TRY(be->mamba_scan_forward(&ss, l->xs, l->dt, MP(m, l->dt_bias), l->A, l->Bm, l->Cm, MP(m, l->Dp), l->z, NULL, l->y, NULL));
    LC_TRY(be->rmsnorm_forward(R, a.di, (float)c->norm_eps, l->y, WP(m, l->gate_norm), l->yn, l->rstd_g));
    return linear_fwd(m, R, a.di, d, l->yn, l->out_proj, x, 1.0f);
}

static lc_status mamba_bwd(lc_model *m, struct model_layer *l, void *dx) {
    const struct backend *be = m->be;
    const lc_config *c = &m->cfg;
    struct shared *s = SH(m);
    const size_t ab = be->act_bytes;
    const int64_t B = m->B, T = m->T, R = B * T, d = c->d;
    struct mamba_dims a = mdims(c);
    void *dyn = s->g[0], *dy = s->g[1];
    LC_TRY(linear_bwd(m, R, a.di, d, l->yn, l->out_proj, dx, dyn, 0.0f));
    LC_TRY(be->rmsnorm_backward(R, a.di, l->y, WP(m, l->gate_norm), l->rstd_g, dyn, dy, GP(m, l->gate_norm), 0));
    struct mamba_scan_shape ss = {B, T, a.nh, c->mamba_dh, c->mamba_ngroups, c->mamba_state};
    void *dxs = s->g[2], *dBm = s->g[3], *dCm = s->g[4], *dz = s->g[5];
    float *ddt = s->f[0], *dpar = s->f[1];
    LC_TRY(be->mamba_scan_backward(&ss, l->xs, l->dt, MP(m, l->dt_bias), l->A, l->Bm, l->Cm, MP(m, l->Dp), l->z, NULL, dy, NULL,
                                   dxs, ddt, dBm, dCm, dz, NULL, dpar, dpar + a.nh, dpar + 2 * a.nh));
    /* dA_log += dA * A (A = -exp(A_log), so dA/dA_log = A) */
    LC_TRY(be->muladd_f32(a.nh, dpar, l->A, GP(m, l->A_log)));
    LC_TRY(be->add_f32(a.nh, dpar + a.nh, GP(m, l->Dp)));
    LC_TRY(be->add_f32(a.nh, dpar + 2 * a.nh, GP(m, l->dt_bias)));
    /* d(conv output) [R, xc] from dxs, dBm, dCm */
    void *dxc = s->g[0];
    const size_t rx = (size_t)a.xc * ab;
    LC_TRY(be->copy2d(dxc, rx, dxs, (size_t)a.di * ab, (size_t)a.di * ab, (size_t)R));
    LC_TRY(be->copy2d(ACT(m, dxc, a.di), rx, dBm, (size_t)a.gn * ab, (size_t)a.gn * ab, (size_t)R));
    LC_TRY(be->copy2d(ACT(m, dxc, a.di + a.gn), rx, dCm, (size_t)a.gn * ab, (size_t)a.gn * ab, (size_t)R));
    struct mamba_conv_shape cs = {B, T, a.xc, c->mamba_conv};
    void *dxbc = s->g[1];
    float *dcw = s->f[2], *dcb = s->f[2] + a.xc * c->mamba_conv;
    LC_TRY(be->mamba_conv_backward(&cs, l->xbc, MP(m, l->conv_w), MP(m, l->conv_b), NULL, dxc, NULL, dxbc, dcw, dcb, NULL));
    LC_TRY(be->add_f32(a.xc * c->mamba_conv, dcw, GP(m, l->conv_w)));
    LC_TRY(be->add_f32(a.xc, dcb, GP(m, l->conv_b)));
    /* d(in_proj output) [R, np] = [dz, dxBC, ddt] */
    void *dproj = s->g[2], *ddtc = s->g[3];
    const size_t rp = (size_t)a.np * ab;
    LC_TRY(be->copy2d(dproj, rp, dz, (size_t)a.di * ab, (size_t)a.di * ab, (size_t)R));
    LC_TRY(be->copy2d(ACT(m, dproj, a.di), rp, dxbc, rx, rx, (size_t)R));
    LC_TRY(be->act_from_f32(R * a.nh, ddt, ddtc));
    LC_TRY(be->copy2d(ACT(m, dproj, a.di + a.xc), rp, ddtc, (size_t)a.nh * ab, (size_t)a.nh * ab, (size_t)R));
    void *dhn = s->g[4];
    LC_TRY(linear_bwd(m, R, d, a.np, l->hn, l->in_proj, dproj, dhn, 0.0f));
    return be->rmsnorm_backward(R, d, l->as.x_in, WP(m, l->norm), l->rstd, dhn, dx, GP(m, l->norm), 1);
}

/* ---------------------------------------------------------------- the whole model */
lc_status model_step(lc_model *m, int64_t B, int64_t T, const int32_t *tokens, const float *loss_weights, int backward,
                     float *loss) {
    const struct backend *be = m->be;
    const lc_config *c = &m->cfg;
    LC_REQUIRE(B > 0 && T > 0, "model_step: B = %lld and T = %lld must be positive", (long long)B, (long long)T);
    if (B != m->B || T != m->T || !m->arena) LC_TRY(alloc_acts(m, B, T));
    struct shared *s = SH(m);
    const int64_t R = B * T, d = c->d, V = c->vocab;
    /* inputs */
    int32_t *hid = lc_malloc((size_t)R * 2 * sizeof(int32_t), "token ids");
    float *hw = lc_malloc((size_t)R * sizeof(float), "loss weights");
    if (!hid || !hw) {
        free(hid);
        free(hw);
        return LC_ENOMEM;
    }
    double wsum = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            hid[b * T + t] = tokens[b * (T + 1) + t];
            hid[R + b * T + t] = tokens[b * (T + 1) + t + 1];
            hw[b * T + t] = loss_weights ? loss_weights[b * T + t] : 1.0f;
            wsum += hw[b * T + t];
        }
    lc_status st = be->upload(s->ids, hid, (size_t)R * 4);
    if (st == LC_OK) st = be->upload(s->targets, hid + R, (size_t)R * 4);
    if (st == LC_OK) st = be->upload(s->lw, hw, (size_t)R * 4);
    free(hid);
    free(hw);
    LC_TRY(st);
    int64_t embed = top_tensor(m, "embed"), head = c->tied_embeddings ? embed : top_tensor(m, "head");
    int64_t fnorm = top_tensor(m, "final_norm");
    LC_TRY(need(embed, -1, "embed"));
    LC_TRY(need(head, -1, "head"));
    LC_TRY(need(fnorm, -1, "final_norm"));
    /* forward */
    static const char *const fwd_sec[] = {"fwd swa", "fwd dense", "fwd mamba", "fwd chunk", "fwd retrieval", "fwd hsa"}; /* lc_layer_kind order */
    static const char *const bwd_sec[] = {"bwd swa", "bwd dense", "bwd mamba", "bwd chunk", "bwd retrieval", "bwd hsa"};
    backend_prof_section("embed+inputs");
    LC_TRY(be->embedding_forward(R, V, d, s->ids, WP(m, embed), s->x));
    for (int i = 0; i < c->n_layers; i++) {
        struct model_layer *l = &m->layers[i];
        backend_prof_section(l->kind >= 0 && l->kind < 6 ? fwd_sec[l->kind] : "fwd ?");
        switch (l->kind) {
        case LC_LAYER_SWA:
        case LC_LAYER_DENSE: {
            struct attn_dims a = swa_dims(m, l->kind);
            LC_TRY(attn_block_fwd(m, &a, &l->ap, &l->as, &l->ms, s->x));
            break;
        }
        case LC_LAYER_CHUNK: LC_TRY(chunk_fwd(m, l, s->x)); break;
        case LC_LAYER_RETRIEVAL: LC_TRY(retrieval_fwd(m, l, s->x)); break;
        case LC_LAYER_HSA: LC_TRY(hsa_fwd(m, i, s->x)); break;
        case LC_LAYER_MAMBA: LC_TRY(mamba_fwd(m, l, s->x)); break;
        }
    }
    backend_prof_section("head+xent");
    LC_TRY(be->rmsnorm_forward(R, d, (float)c->norm_eps, s->x, WP(m, fnorm), s->hf, s->rstd_f));
    LC_TRY(linear_fwd(m, R, d, V, s->hf, head, s->logits, 0.0f));
    LC_TRY(be->xent(R, V, s->logits, s->targets, s->lw, (float)wsum, loss, s->row_loss, backward ? s->logits : NULL));
    if (!backward) return LC_OK;
    /* backward */
    void *dhf = s->g[0];
    LC_TRY(linear_bwd(m, R, d, V, s->hf, head, s->logits, dhf, 0.0f));
    LC_TRY(be->rmsnorm_backward(R, d, s->x, WP(m, fnorm), s->rstd_f, dhf, s->dx, GP(m, fnorm), 0));
    if (s->dmem_k) {
        int64_t kvn = R * c->H * hsa_dh(c);
        LC_TRY(be->zero(s->dmem_k, (size_t)kvn * be->act_bytes));
        LC_TRY(be->zero(s->dmem_v, (size_t)kvn * be->act_bytes));
        LC_TRY(be->zero(s->dlmk, (size_t)(B * n_chunks(m, T) * c->d_r + 1) * be->act_bytes));
    }
    for (int i = c->n_layers - 1; i >= 0; i--) {
        struct model_layer *l = &m->layers[i];
        backend_prof_section(l->kind >= 0 && l->kind < 6 ? bwd_sec[l->kind] : "bwd ?");
        switch (l->kind) {
        case LC_LAYER_SWA:
        case LC_LAYER_DENSE: {
            struct attn_dims a = swa_dims(m, l->kind);
            LC_TRY(attn_block_bwd(m, &a, &l->ap, &l->as, &l->ms, s->dx));
            break;
        }
        case LC_LAYER_CHUNK: LC_TRY(chunk_bwd(m, l, s->dx)); break;
        case LC_LAYER_RETRIEVAL: LC_TRY(retrieval_bwd(m, l, s->dx)); break;
        case LC_LAYER_HSA: LC_TRY(hsa_bwd(m, i, s->dx)); break;
        case LC_LAYER_MAMBA: LC_TRY(mamba_bwd(m, l, s->dx)); break;
        }
    }
    backend_prof_section("embed+inputs");
    return be->embedding_backward(R, V, d, s->ids, s->dx, GP(m, embed));
}

lc_status model_row_loss(const lc_model *m, float *host) {
    LC_REQUIRE(m->arena, "model_row_loss: no forward has run");
    struct shared *s = (struct shared *)(m->layers + m->cfg.n_layers);
    return m->be->download(host, s->row_loss, (size_t)(m->B * m->T) * 4);
}

lc_status model_retrieval(const lc_model *m, int g, int32_t *idx, float *w) {
    LC_REQUIRE(m->arena, "model_retrieval: no forward has run");
    for (int i = 0; i < m->cfg.n_layers; i++) {
        const struct model_layer *l = &m->layers[i];
        if (l->kind != LC_LAYER_RETRIEVAL || l->group != g) continue;
        const int64_t B = m->B, T = m->T, HK = m->cfg.H_r * m->cfg.K, bq = m->cfg.block_q, Lr = (T + bq - 1) / bq;
        size_t n = (size_t)(B * Lr * HK) * 4;
        if (idx) LC_TRY(m->be->download(idx, l->idx, n));
        if (w) LC_TRY(m->be->download(w, l->wts, n));
        /* GCA: expand the per-chunk rows to tokens in place (token t uses row t / S), back to front */
        for (int64_t bt = B * T - 1; bq > 1 && bt >= 0; bt--) {
            int64_t src = ((bt / T) * Lr + (bt % T) / bq) * HK;
            if (idx) memmove(idx + bt * HK, idx + src, (size_t)HK * 4);
            if (w) memmove(w + bt * HK, w + src, (size_t)HK * 4);
        }
        return LC_OK;
    }
    return lc_errorf(LC_EINVAL, "model_retrieval: no retrieval group %d", g);
}

lc_status model_grad_norm(const lc_model *m, double *norm) {
    double ss = 0;
    LC_TRY(m->be->sumsq_f32(m->n_params, m->grad, &ss));
    *norm = sqrt(ss);
    return LC_OK;
}

lc_status model_adamw(lc_model *m, const struct ops_adamw *h) {
    size_t pb = (size_t)m->n_params * sizeof(float);
    if (!m->adam_m && !(m->adam_m = m->be->alloc(pb, "AdamW m"))) return LC_ENOMEM;
    if (!m->adam_v && !(m->adam_v = m->be->alloc(pb, "AdamW v"))) return LC_ENOMEM;
    return m->be->adamw(m->n_params, m->master, m->grad, m->adam_m, m->adam_v, m->w != m->master ? m->w : NULL, h);
}

lc_status model_logits(const lc_model *m, float *host) {
    LC_REQUIRE(m->arena, "model_logits: no forward has run");
    struct shared *s = (struct shared *)(m->layers + m->cfg.n_layers);
    const int64_t n = m->B * m->T * m->cfg.vocab;
    LC_TRY(m->be->act_to_f32(n, s->logits, s->f[3]));
    return m->be->download(host, s->f[3], (size_t)n * sizeof(float));
}

lc_status model_argmax(const lc_model *m, int32_t *host) {
    LC_REQUIRE(m->arena, "model_argmax: no forward has run");
    struct shared *s = (struct shared *)(m->layers + m->cfg.n_layers);
    const int64_t R = m->B * m->T, V = m->cfg.vocab;
    float *lg = lc_malloc((size_t)(R * V) * sizeof(float), "logits");
    if (!lg) return LC_ENOMEM;
    lc_status st = m->be->act_to_f32(R * V, s->logits, s->f[3]);
    if (st == LC_OK) st = m->be->download(lg, s->f[3], (size_t)(R * V) * sizeof(float));
    for (int64_t r = 0; st == LC_OK && r < R; r++) {
        const float *row = lg + r * V;
        int32_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (row[v] > row[best]) best = (int32_t)v;
        host[r] = best;
    }
    free(lg);
    return st;
}

/* Download n act values as f32 into a host buffer. */
static lc_status act_host(const lc_model *m, const void *src, int64_t n, float *host) {
    float *dev = m->be->alloc((size_t)n * sizeof(float), "diagnostics");
    if (!dev) return LC_ENOMEM;
    lc_status st = m->be->act_to_f32(n, src, dev);
    if (st == LC_OK) st = m->be->download(host, dev, (size_t)n * sizeof(float));
    m->be->free(dev);
    return st;
}

/* ||mean row||^2 / mean ||row||^2 over `rows` rows of width D, taking row r of block b at
 * x[(b * stride + r) * D] for b < nb, r < rows. */
static double constancy(const float *x, int64_t nb, int64_t stride, int64_t rows, int64_t D) {
    double *mean = calloc((size_t)D, sizeof(double)), sq = 0;
    if (!mean || nb * rows == 0) {
        free(mean);
        return 0;
    }
    for (int64_t b = 0; b < nb; b++)
        for (int64_t r = 0; r < rows; r++) {
            const float *row = x + (b * stride + r) * D;
            for (int64_t j = 0; j < D; j++) {
                mean[j] += row[j];
                sq += (double)row[j] * row[j];
            }
        }
    double n = (double)(nb * rows), mm = 0;
    for (int64_t j = 0; j < D; j++) mm += (mean[j] / n) * (mean[j] / n);
    free(mean);
    return sq > 0 ? mm / (sq / n) : 0;
}

static double rms_of(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return n ? sqrt(s / (double)n) : 0;
}

lc_status model_diagnostics(const lc_model *m, struct model_diag *out) {
    LC_REQUIRE(m->arena, "model_diagnostics: no forward has run");
    memset(out, 0, sizeof *out);
    const lc_config *c = &m->cfg;
    struct shared *s = (struct shared *)(m->layers + c->n_layers);
    const int64_t B = m->B, T = m->T, R = B * T, d = c->d;
    float *h = lc_malloc((size_t)R * (size_t)(d > c->H * hsa_dh(c) ? d : c->H * hsa_dh(c)) * sizeof(float) + 64, "diagnostics");
    if (!h) return LC_ENOMEM;
    lc_status st = LC_OK;
    out->n_layers = c->n_layers;
    for (int i = 0; st == LC_OK && i < c->n_layers; i++) {
        /* the stream after layer i is what the next layer saved as its input (or the final x) */
        const void *src = NULL;
        for (int j = i + 1; j < c->n_layers && !src; j++)
            src = m->layers[j].swa_s.x_in ? m->layers[j].swa_s.x_in : m->layers[j].as.x_in;
        if (!src) src = s->x;
        if (m->layers[i].kind == LC_LAYER_CHUNK || m->layers[i].kind == LC_LAYER_RETRIEVAL) {
            out->stream_rms[i] = i > 0 ? out->stream_rms[i - 1] : 0; /* these layers do not change x */
            continue;
        }
        st = act_host(m, src, R * d, h);
        if (st == LC_OK) out->stream_rms[i] = rms_of(h, R * d);
    }
    for (int i = 0; st == LC_OK && i < c->n_layers; i++) {
        const struct model_layer *l = &m->layers[i];
        if (l->kind != LC_LAYER_CHUNK) continue;
        const int64_t C = n_chunks(m, T), kd = c->H * hsa_dh(c), S1 = c->S + (c->enc_cls != 0);
        if (C == 0) break;
        if ((st = act_host(m, s->mem_k, R * kd, h)) == LC_OK) out->const_k = constancy(h, B, T, C * c->S, kd);
        if (st == LC_OK && (st = act_host(m, s->mem_v, R * kd, h)) == LC_OK) out->const_v = constancy(h, B, T, C * c->S, kd);
        if (st == LC_OK && (st = act_host(m, s->lmk, B * C * c->d_r, h)) == LC_OK) out->const_lmk = constancy(h, 1, 0, B * C, c->d_r);
        if (st == LC_OK) {
            /* Eout holds the encoder's output before its final norm after a forward-only step */
            float *e = lc_malloc((size_t)(B * C * S1 * d) * sizeof(float), "diagnostics");
            if (!e) st = LC_ENOMEM;
            else {
                st = act_host(m, l->Eout, B * C * S1 * d, e);
                double ss = 0;
                for (int64_t bc = 0; st == LC_OK && bc < B * C; bc++)
                    for (int64_t r = 0; r < c->S; r++)
                        for (int64_t j = 0; j < d; j++) {
                            double v = e[(bc * S1 + r) * d + j];
                            ss += v * v;
                        }
                out->enc_rms = sqrt(ss / (double)(B * C * c->S * d));
                free(e);
            }
        }
    }
    free(h);
    return st;
}

/* ---------------------------------------------------------------- model FLOPs (for MFU) */
/* Average over t in [0, T) of min(t + 1, cap) (cap <= 0: t + 1): keys a causal query sees. */
static double avg_keys(int64_t T, int64_t cap) {
    double s = 0;
    for (int64_t t = 0; t < T; t++) s += (double)(cap > 0 && t + 1 > cap ? cap : t + 1);
    return T > 0 ? s / (double)T : 0;
}

/* Linear FLOPs (2 * in * out per row) of one attention block (+ MLP) over one row. */
static double block_linear_flops(int64_t d, int64_t HQ, int64_t Hk, int64_t dh, int64_t F) {
    return 2.0 * (double)d * (double)((HQ + 2 * Hk) * dh) + 2.0 * (double)(HQ * dh) * d + (F > 0 ? 6.0 * (double)d * F : 0);
}

double model_train_flops(const lc_config *c, int64_t B, int64_t T, double *matmul_part) {
    const int64_t d = c->d, R = B * T;
    const int64_t adh = attn_dh(c), edh = enc_dh(c), hdh = hsa_dh(c);
    const int64_t C = c->S > 0 ? T / c->S : 0, S1 = c->S + (c->enc_cls != 0);
    double lin = 0, mix = 0; /* forward FLOPs of the whole batch: linears, token mixers */
    double swa_keys = avg_keys(T, c->W + 1), dense_keys = avg_keys(T, 0);
    /* HSA: token t attends min(K, chunks visible) * S keys; GCA rows see chunks < r - 1 */
    double hsa_keys = 0, ret_chunks = 0;
    for (int64_t t = 0; c->S > 0 && t < T; t++) {
        int64_t vis = c->block_q == 1 ? t / c->S : (t / c->S) - 1;
        if (vis < 0) vis = 0;
        hsa_keys += (double)((vis < c->K ? vis : c->K) * c->S);
        ret_chunks += (double)vis;
    }
    if (T > 0) {
        hsa_keys /= (double)T;
        ret_chunks /= (double)T;
    }
    for (int i = 0; i < c->n_layers; i++) {
        switch (c->layers[i].kind) {
        case LC_LAYER_SWA:
        case LC_LAYER_DENSE:
            lin += (double)R * block_linear_flops(d, c->attn_heads, c->attn_kv_heads, adh, c->attn_mlp);
            mix += (double)R * 4.0 * (double)(c->attn_heads * adh) * (c->layers[i].kind == LC_LAYER_SWA ? swa_keys : dense_keys);
            break;
        case LC_LAYER_CHUNK: {
            const double Re = (double)(B * C * S1);
            lin += (double)c->enc_layers * Re * block_linear_flops(d, c->enc_heads, c->enc_kv_heads, edh, c->enc_mlp);
            mix += (double)c->enc_layers * Re * 4.0 * (double)(c->enc_heads * edh) * (double)S1;
            if (c->block_q == 1) lin += (double)(B * C) * 2.0 * (double)d * c->d_r; /* lmk_ln */
            lin += (double)R * 2.0 * 2.0 * (double)d * (double)(c->H * hdh);   /* proj_k, proj_v */
            break;
        }
        case LC_LAYER_RETRIEVAL: {
            const double rows = (double)(B * ((T + c->block_q - 1) / c->block_q));
            if (c->block_q == 1) lin += (double)R * 2.0 * (double)d * c->d_r; /* ln */
            mix += rows * 2.0 * (double)c->d_r * ret_chunks;                 /* scores vs every visible landmark */
            break;
        }
        case LC_LAYER_HSA:
            if (c->swa_inside) {
                lin += (double)R * block_linear_flops(d, c->attn_heads, c->attn_kv_heads, adh, 0);
                mix += (double)R * 4.0 * (double)(c->attn_heads * adh) * swa_keys;
            }
            lin += (double)R * (2.0 * 2.0 * (double)d * (double)(c->HQ * hdh) + 6.0 * (double)d * c->hsa_mlp);
            mix += (double)R * 4.0 * (double)(c->HQ * hdh) * hsa_keys;
            break;
        case LC_LAYER_MAMBA: {
            const int64_t di = c->mamba_heads * c->mamba_dh, gn = c->mamba_ngroups * c->mamba_state;
            const int64_t np = 2 * di + 2 * gn + c->mamba_heads;
            lin += (double)R * (2.0 * (double)d * np + 2.0 * (double)di * d);
            mix += (double)R * 4.0 * (double)di * (double)c->mamba_state; /* state update + readout */
            break;
        }
        }
    }
    lin += (double)R * 2.0 * (double)d * c->vocab; /* head */
    if (matmul_part) *matmul_part = 3.0 * lin;
    return 3.0 * (lin + mix);
}
