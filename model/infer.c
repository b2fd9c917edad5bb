/* infer.c — segmented prefill and decode with caches (infer.h), batch 1, through the backend
 * table. Each layer repeats the math of its model.c forward on the rows of one segment:
 * positions pos .. pos+n-1 of the sequence (RoPE at absolute positions), attention against the
 * cached keys with a query offset, the chunk encoder on every chunk that the segment completes,
 * retrieval and HSA against the chunk store with a query offset, Mamba with its carried state.
 * All buffers come from one allocation carved by layout(), which runs twice: once to count (the
 * memory figure infer_create checks) and once to hand out pointers, so the figure is exact.
 * Decode (one query row) against a large chunk store or dense cache runs as a batch of
 * partitions plus a host merge (retrieval_split, attend_split): the kernels parallelise over
 * query rows, and one row would otherwise run on one SM. Exact tail mode: layers >= st->split run
 * only on the rows at positions >= st->tail_from (model_prefill_tail). */
#include "infer.h"

#include "device.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameter offsets of one attention + MLP block (-1 = absent). */
struct blockp {
    int64_t attn_norm, wq, bq, wk, bk, wv, bv, q_norm, k_norm, wo, mlp_norm, w_gate, w_down;
};

struct ilayer {
    int kind;
    struct blockp p; /* swa, dense; hsa: mlp_norm, w_gate, w_down */
    /* swa / dense: K/V cache rows [cap, Hk*dh], nc rows valid */
    void *kc, *vc;
    int64_t cap, nc;
    /* chunk */
    int64_t cls, enc_norm, lmk_ln, proj_k, proj_v, ck_norm;
    struct blockp *enc;
    void *pend; /* [S, d] rows of the incomplete chunk */
    int64_t np;
    /* retrieval (norm, ln, pos_decay or -1) and hsa (norm, q_proj, q_norm, o_proj) */
    int64_t norm, ln, pos_decay, q_proj, q_norm, o_proj;
    int32_t *idx;
    float *score, *w;
    int retr; /* hsa: index of its group's retrieval layer */
    /* mamba */
    int64_t in_proj, conv_w, conv_b, dt_bias, A_log, Dp, gate_norm, out_proj;
    void *tail[2];
    float *ssm[2], *A;
    int cur;
};

struct lc_infer {
    lc_model *m;
    int64_t max_len, seg, pos, Re, nch_max, C_max, bytes, state_bytes, ones_n;
    /* exact tail mode: layers >= split run only on positions >= tail_from (model_prefill_tail) */
    int split;
    int64_t tail_from;
    /* one-token retrieval split over chunk partitions (retrieval_split) */
    int64_t split_min, split_parts;
    /* one-token attention split over key partitions (attend_split) */
    int64_t asplit_min, asplit_parts;
    void *aq, *ao;
    float *aof, *alse;
    void *qrep;
    int32_t *sidx, *hidx;
    float *sscore, *hscore;
    struct ilayer *l;
    void *mem;
    /* working buffers (one segment) */
    int32_t *ids;
    void *x, *hn, *xm, *hn2, *q, *qp, *kt, *ke, *vt, *o, *gu, *a, *ones, *logits, *qr, *tmp;
    float *rstd, *rstd2, *lse, *logits_f, *dt;
    void *E, *En, *lmk_src, *Etok, *kpre;
    void *proj, *xbc, *xbc_c, *xs, *Bm, *Cm, *z, *y, *yn, *dtc;
    /* chunk store */
    void *mem_k, *mem_v, *lmk;
};

#define ACT(m, p, n) ((void *)((char *)(p) + (size_t)(n) * (m)->be->act_bytes))
#define WP(m, off) ACT(m, (m)->w, off)
#define MP(m, off) ((m)->master + (off))

static int64_t tensor_at(const lc_model *m, const char *name) {
    for (int64_t t = 0; t < m->n_tensors; t++)
        if (!strcmp(m->tensors[t].name, name)) return m->tensors[t].offset;
    return -1;
}
static int64_t tens(const lc_model *m, const char *pre, const char *part) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", pre, part);
    return tensor_at(m, name);
}
static void block_find(const lc_model *m, const char *pre, struct blockp *p) {
    p->attn_norm = tens(m, pre, "attn_norm");
    p->wq = tens(m, pre, "wq");
    p->bq = tens(m, pre, "bq");
    p->wk = tens(m, pre, "wk");
    p->bk = tens(m, pre, "bk");
    p->wv = tens(m, pre, "wv");
    p->bv = tens(m, pre, "bv");
    p->q_norm = tens(m, pre, "q_norm");
    p->k_norm = tens(m, pre, "k_norm");
    p->wo = tens(m, pre, "wo");
    p->mlp_norm = tens(m, pre, "mlp_norm");
    p->w_gate = tens(m, pre, "w_gate");
    p->w_down = tens(m, pre, "w_down");
}

/* ---------------------------------------------------------------- dims */
static int64_t attn_dh(const lc_config *c) { return c->attn_dh ? c->attn_dh : c->d / c->attn_heads; }
static int64_t enc_dh(const lc_config *c) { return c->enc_dh ? c->enc_dh : c->d / c->enc_heads; }
static int64_t hsa_dh(const lc_config *c) { return c->dh ? c->dh : c->d / c->HQ; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int has_kind(const lc_config *c, int kind) {
    for (int i = 0; i < c->n_layers; i++)
        if (c->layers[i].kind == kind) return 1;
    return 0;
}

struct mdims {
    int64_t di, gn, xc, np, nh;
};
static struct mdims mamba_dims(const lc_config *c) {
    struct mdims a;
    a.di = c->mamba_heads * c->mamba_dh;
    a.gn = c->mamba_ngroups * c->mamba_state;
    a.xc = a.di + 2 * a.gn;
    a.nh = c->mamba_heads;
    a.np = a.di + a.xc + a.nh;
    return a;
}

/* One-token retrieval against a large store runs as up to SPLIT_PARTS_MAX partitions of the
 * store (retrieval_split): the CUDA retrieval kernel gives one CTA per 128 query rows, so a single
 * query row would stream every landmark through one SM. */
#define SPLIT_PARTS_MAX 512
#define INFER_CUDA_RESERVE ((int64_t)256 << 20)

/* ---------------------------------------------------------------- layout */
struct carve {
    char *base;        /* NULL: count only */
    int64_t off, keep; /* keep: bytes of persistent state */
};
static void *take(struct carve *cv, int64_t bytes, int persistent) {
    int64_t o = cv->off, b = (bytes + 16 + 255) & ~(int64_t)255; /* +16: never a zero-size buffer */
    cv->off += b;
    if (persistent) cv->keep += b;
    return cv->base ? cv->base + o : NULL;
}

static void layout(struct lc_infer *st, struct carve *cv) {
    const lc_model *m = st->m;
    const lc_config *c = &m->cfg;
    const int64_t ab = (int64_t)m->be->act_bytes, d = c->d, V = c->vocab, seg = st->seg, L = st->max_len;
    const int has_chunk = has_kind(c, LC_LAYER_CHUNK), has_mamba = has_kind(c, LC_LAYER_MAMBA);
    const int has_attn = has_kind(c, LC_LAYER_SWA) || has_kind(c, LC_LAYER_DENSE);
    int64_t qmax = 1, kmax = 1, fmax = 1, hmax = 1, lsew = 1;
    if (has_attn) {
        qmax = max64(qmax, c->attn_heads * attn_dh(c));
        kmax = max64(kmax, c->attn_kv_heads * attn_dh(c));
        fmax = max64(fmax, c->attn_mlp);
        hmax = max64(hmax, max64(c->attn_heads, c->attn_kv_heads));
        lsew = max64(lsew, c->attn_heads);
    }
    if (has_chunk) {
        qmax = max64(qmax, max64(c->enc_heads * enc_dh(c), c->HQ * hsa_dh(c)));
        kmax = max64(kmax, max64(c->enc_kv_heads * enc_dh(c), c->H * hsa_dh(c)));
        fmax = max64(fmax, max64(c->enc_mlp, c->hsa_mlp));
        hmax = max64(hmax, max64(max64(c->enc_heads, c->enc_kv_heads), max64(c->HQ, c->H)));
        lsew = max64(lsew, max64(c->enc_heads, c->HQ * c->K));
    }
    st->nch_max = has_chunk ? (c->S - 1 + seg) / c->S : 0;
    st->Re = st->nch_max * (c->S + 1);
    st->C_max = has_chunk ? L / c->S : 0;
    const int has_dense = has_kind(c, LC_LAYER_DENSE);
    const int64_t Rw = max64(max64(seg, st->Re), has_chunk || has_dense ? SPLIT_PARTS_MAX + 1 : 1);
    st->ones_n = Rw;
    st->ids = take(cv, seg * 4, 0);
    st->x = take(cv, seg * d * ab, 0);
    st->hn = take(cv, Rw * d * ab, 0);
    st->xm = take(cv, Rw * d * ab, 0);
    st->hn2 = take(cv, Rw * d * ab, 0);
    st->q = take(cv, Rw * qmax * ab, 0);
    st->qp = take(cv, Rw * qmax * ab, 0);
    st->o = take(cv, Rw * qmax * ab, 0);
    st->kt = take(cv, Rw * kmax * ab, 0);
    st->ke = take(cv, Rw * kmax * ab, 0);
    st->vt = take(cv, Rw * kmax * ab, 0);
    st->gu = take(cv, Rw * 2 * fmax * ab, 0);
    st->a = take(cv, Rw * fmax * ab, 0);
    st->rstd = take(cv, Rw * hmax * 4, 0);
    st->rstd2 = take(cv, Rw * 4, 0);
    st->lse = take(cv, Rw * lsew * 4, 0);
    st->ones = take(cv, Rw * ab, 0);
    st->logits = take(cv, seg * V * ab, 0);
    st->logits_f = take(cv, seg * V * 4, 0);
    int64_t tmp_rows = 0;
    for (int i = 0; i < c->n_layers; i++) {
        struct ilayer *l = &st->l[i];
        const int64_t kd = c->attn_kv_heads * attn_dh(c);
        switch (l->kind) {
        case LC_LAYER_SWA:
        case LC_LAYER_DENSE:
            l->cap = l->kind == LC_LAYER_DENSE ? L : (c->W < L ? c->W : L) + seg;
            if (l->cap > L) l->cap = L;
            l->kc = take(cv, l->cap * kd * ab, 1);
            l->vc = take(cv, l->cap * kd * ab, 1);
            if (l->kind == LC_LAYER_SWA) tmp_rows = max64(tmp_rows, c->W * kd);
            break;
        case LC_LAYER_CHUNK:
            l->pend = take(cv, c->S * d * ab, 1);
            break;
        case LC_LAYER_RETRIEVAL:
            l->idx = take(cv, seg * c->H_r * c->K * 4, 0);
            l->score = take(cv, seg * c->H_r * c->K * 4, 0);
            l->w = take(cv, seg * c->H_r * c->K * 4, 0);
            break;
        case LC_LAYER_MAMBA: {
            struct mdims a = mamba_dims(c);
            for (int k = 0; k < 2; k++) {
                l->tail[k] = take(cv, (c->mamba_conv - 1) * a.xc * ab, 1);
                l->ssm[k] = take(cv, a.nh * c->mamba_dh * c->mamba_state * 4, 1);
            }
            l->A = take(cv, a.nh * 4, 0);
            break;
        }
        default: break;
        }
    }
    st->tmp = take(cv, tmp_rows * ab, 0);
    if (has_dense) {
        const int64_t qd = c->attn_heads * attn_dh(c);
        st->aq = take(cv, (SPLIT_PARTS_MAX + 1) * qd * ab, 0);
        st->ao = take(cv, (SPLIT_PARTS_MAX + 1) * qd * ab, 0);
        st->aof = take(cv, (SPLIT_PARTS_MAX + 1) * qd * 4, 0);
        st->alse = take(cv, (SPLIT_PARTS_MAX + 1) * c->attn_heads * 4, 0);
    }
    if (has_chunk) {
        const int64_t kv = c->H * hsa_dh(c), nc = st->nch_max;
        st->qr = take(cv, seg * c->d_r * ab, 0);
        st->E = take(cv, st->Re * d * ab, 0);
        st->En = take(cv, st->Re * d * ab, 0);
        st->lmk_src = take(cv, nc * d * ab, 0);
        st->Etok = take(cv, nc * c->S * d * ab, 0);
        st->kpre = take(cv, nc * c->S * kv * ab, 0);
        st->mem_k = take(cv, st->C_max * c->S * kv * ab, 1);
        st->mem_v = take(cv, st->C_max * c->S * kv * ab, 1);
        st->lmk = take(cv, st->C_max * c->d_r * ab, 1);
        st->qrep = take(cv, SPLIT_PARTS_MAX * c->d_r * ab, 0);
        st->sidx = take(cv, (SPLIT_PARTS_MAX + 1) * c->H_r * c->K * 4, 0);
        st->sscore = take(cv, (SPLIT_PARTS_MAX + 1) * c->H_r * c->K * 4, 0);
    }
    if (has_mamba) {
        struct mdims a = mamba_dims(c);
        st->proj = take(cv, seg * a.np * ab, 0);
        st->xbc = take(cv, seg * a.xc * ab, 0);
        st->xbc_c = take(cv, seg * a.xc * ab, 0);
        st->xs = take(cv, seg * a.di * ab, 0);
        st->Bm = take(cv, seg * a.gn * ab, 0);
        st->Cm = take(cv, seg * a.gn * ab, 0);
        st->z = take(cv, seg * a.di * ab, 0);
        st->y = take(cv, seg * a.di * ab, 0);
        st->yn = take(cv, seg * a.di * ab, 0);
        st->dtc = take(cv, seg * a.nh * ab, 0);
        st->dt = take(cv, seg * a.nh * 4, 0);
    }
}

/* ---------------------------------------------------------------- create */
int64_t infer_free_bytes(const lc_model *m) {
    if (m && m->be && m->be->is_cuda) {
        size_t fr = 0, tot = 0;
        if (lc_cuda_mem_info(&fr, &tot) != LC_OK) return -1;
        /* cuBLAS and the backend's kernel workspaces (one growing scratch buffer) live beside
         * the state: keep INFER_CUDA_RESERVE of the free memory for them */
        return (int64_t)fr > INFER_CUDA_RESERVE ? (int64_t)fr - INFER_CUDA_RESERVE : 0;
    }
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : (int64_t)kb * 1024;
}

static lc_status check_args(const lc_model *m, int64_t max_len, int64_t seg) {
    LC_REQUIRE(m && m->be && m->layers, "infer: the model is not created");
    LC_REQUIRE(max_len >= 1, "infer: max_len = %lld must be >= 1", (long long)max_len);
    LC_REQUIRE(seg >= 1, "infer: seg = %lld (tokens per segment) must be >= 1", (long long)seg);
    LC_REQUIRE(max_len <= ((int64_t)1 << 40), "infer: max_len = %lld exceeds 2^40 tokens", (long long)max_len);
    /* GCA rows serve whole chunks and the HSA query offset (hsa.h Lq, q_pos0) needs block_q = 1 */
    if (m->cfg.block_q != 1 || m->cfg.swa_inside || !m->cfg.enc_cls)
        for (int i = 0; i < m->cfg.n_layers; i++)
            if (m->cfg.layers[i].kind == LC_LAYER_CHUNK)
                return lc_errorf(LC_EUNSUPPORTED,
                                 "infer: segmented prefill of GCA (hsa.block_q = %lld, swa_inside = %d, encoder.cls = %d) is not "
                                 "implemented; use the full forward (longctx eval without --segment)",
                                 (long long)m->cfg.block_q, m->cfg.swa_inside, m->cfg.enc_cls);
    return LC_OK;
}

static lc_status layers_find(struct lc_infer *st) {
    const lc_model *m = st->m;
    const lc_config *c = &m->cfg;
    int retr = -1;
    for (int i = 0; i < c->n_layers; i++) {
        struct ilayer *l = &st->l[i];
        char pre[64];
        snprintf(pre, sizeof pre, "layers.%d.", i);
        l->kind = c->layers[i].kind;
        switch (l->kind) {
        case LC_LAYER_SWA:
        case LC_LAYER_DENSE: block_find(m, pre, &l->p); break;
        case LC_LAYER_CHUNK:
            l->cls = tens(m, pre, "cls");
            l->enc_norm = tens(m, pre, "enc_norm");
            l->lmk_ln = tens(m, pre, "lmk_ln");
            l->proj_k = tens(m, pre, "proj_k");
            l->proj_v = tens(m, pre, "proj_v");
            l->ck_norm = tens(m, pre, "k_norm");
            l->enc = lc_calloc((size_t)c->enc_layers, sizeof *l->enc, "infer encoder params");
            if (!l->enc) return LC_ENOMEM;
            for (int e = 0; e < c->enc_layers; e++) {
                char ep[96];
                snprintf(ep, sizeof ep, "layers.%d.enc.%d.", i, e);
                block_find(m, ep, &l->enc[e]);
            }
            break;
        case LC_LAYER_RETRIEVAL:
            l->norm = tens(m, pre, "norm");
            l->ln = tens(m, pre, "ln");
            l->pos_decay = tens(m, pre, "pos_decay");
            retr = i;
            break;
        case LC_LAYER_HSA:
            l->norm = tens(m, pre, "norm");
            l->q_proj = tens(m, pre, "q_proj");
            l->q_norm = tens(m, pre, "q_norm");
            l->o_proj = tens(m, pre, "o_proj");
            l->p.mlp_norm = tens(m, pre, "mlp_norm");
            l->p.w_gate = tens(m, pre, "w_gate");
            l->p.w_down = tens(m, pre, "w_down");
            l->retr = retr;
            if (retr < 0) return lc_errorf(LC_EINVAL, "infer: hsa layer %d has no retrieval layer before it", i);
            break;
        case LC_LAYER_MAMBA:
            l->norm = tens(m, pre, "norm");
            l->in_proj = tens(m, pre, "in_proj");
            l->conv_w = tens(m, pre, "conv_w");
            l->conv_b = tens(m, pre, "conv_b");
            l->dt_bias = tens(m, pre, "dt_bias");
            l->A_log = tens(m, pre, "A_log");
            l->Dp = tens(m, pre, "D");
            l->gate_norm = tens(m, pre, "gate_norm");
            l->out_proj = tens(m, pre, "out_proj");
            break;
        }
    }
    return LC_OK;
}

static void free_layers(struct lc_infer *st) {
    if (!st->l) return;
    for (int i = 0; i < st->m->cfg.n_layers; i++) free(st->l[i].enc);
    free(st->l);
    st->l = NULL;
}

lc_status infer_bytes(const lc_model *m, int64_t max_len, int64_t seg, int64_t *bytes) {
    LC_TRY(check_args(m, max_len, seg));
    struct lc_infer st;
    memset(&st, 0, sizeof st);
    st.m = (lc_model *)m;
    st.max_len = max_len;
    st.seg = seg;
    st.l = lc_calloc((size_t)m->cfg.n_layers, sizeof *st.l, "infer layers");
    if (!st.l) return LC_ENOMEM;
    lc_status s = layers_find(&st);
    struct carve cv = {NULL, 0, 0};
    if (s == LC_OK) layout(&st, &cv);
    free_layers(&st);
    *bytes = cv.off;
    return s;
}

static double mib(int64_t b) { return (double)b / (1024.0 * 1024.0); }

lc_status infer_reset(lc_infer *st) {
    const struct backend *be = st->m->be;
    const lc_config *c = &st->m->cfg;
    st->pos = 0;
    for (int i = 0; i < c->n_layers; i++) {
        struct ilayer *l = &st->l[i];
        l->nc = 0;
        l->np = 0;
        l->cur = 0;
        if (l->kind == LC_LAYER_MAMBA) {
            struct mdims a = mamba_dims(c);
            for (int k = 0; k < 2; k++) {
                LC_TRY(be->zero(l->tail[k], (size_t)((c->mamba_conv - 1) * a.xc) * be->act_bytes));
                LC_TRY(be->zero(l->ssm[k], (size_t)(a.nh * c->mamba_dh * c->mamba_state) * 4));
            }
        }
    }
    return LC_OK;
}

lc_status infer_create(lc_infer **out, lc_model *m, int64_t max_len, int64_t seg, int64_t free_limit) {
    LC_REQUIRE(out, "infer_create: out is NULL");
    *out = NULL;
    LC_TRY(check_args(m, max_len, seg));
    struct lc_infer *st = lc_calloc(1, sizeof *st, "infer state");
    if (!st) return LC_ENOMEM;
    st->m = m;
    st->max_len = max_len;
    st->seg = seg;
    st->split_min = m->be->is_cuda ? 2048 : 0; /* one-token retrieval over >= 2048 chunks: split */
    st->split_parts = 256;
    st->asplit_min = 0; /* off until the cuda path has run on a device (infer_set_attn_split turns it on) */
    st->asplit_parts = 128;
    lc_status s = LC_OK;
    st->l = lc_calloc((size_t)m->cfg.n_layers, sizeof *st->l, "infer layers");
    if (!st->l) s = LC_ENOMEM;
    if (s == LC_OK) s = layers_find(st);
    struct carve cv = {NULL, 0, 0};
    if (s == LC_OK) {
        layout(st, &cv);
        st->bytes = cv.off;
        st->state_bytes = cv.keep;
        int64_t avail = free_limit > 0 ? free_limit : infer_free_bytes(m);
        if (avail >= 0 && st->bytes > avail)
            s = lc_errorf(LC_ENOMEM,
                          "infer: a context of %lld tokens in segments of %lld needs %lld bytes (%.1f MiB: state %.1f MiB, "
                          "lc_config_state_bytes %.1f MiB at %zu bytes a value, + working buffers %.1f MiB), but only %lld bytes "
                          "(%.1f MiB) are free%s",
                          (long long)max_len, (long long)seg, (long long)st->bytes, mib(st->bytes), mib(st->state_bytes),
                          mib(lc_config_state_bytes(&m->cfg, max_len, (int)m->be->act_bytes)), m->be->act_bytes,
                          mib(st->bytes - st->state_bytes), (long long)avail, mib(avail),
                          free_limit > 0 ? " (limit given)"
                          : m->be->is_cuda ? " (device memory, less 256 MiB kept for cuBLAS and kernel workspaces)"
                                           : " (MemAvailable)");
    }
    if (s == LC_OK && !(st->mem = m->be->alloc((size_t)st->bytes, "inference state"))) s = LC_ENOMEM;
    if (s == LC_OK) {
        cv.base = st->mem;
        cv.off = cv.keep = 0;
        layout(st, &cv);
        s = infer_reset(st);
    }
    /* constants: ones (biases through a matmul, as model.c does) and A = -exp(A_log) */
    if (s == LC_OK) {
        const int64_t Rw = st->ones_n;
        /* staged through logits_f (seg*V floats), in pieces when Rw is larger */
        for (int64_t r0 = 0; s == LC_OK && r0 < Rw;) {
            int64_t nr = Rw - r0 < seg * m->cfg.vocab ? Rw - r0 : seg * m->cfg.vocab;
            float *h = lc_malloc((size_t)nr * sizeof(float), "infer ones");
            if (!h) {
                s = LC_ENOMEM;
                break;
            }
            for (int64_t k = 0; k < nr; k++) h[k] = 1.0f;
            s = m->be->upload(st->logits_f, h, (size_t)nr * 4);
            if (s == LC_OK) s = m->be->act_from_f32(nr, st->logits_f, ACT(m, st->ones, r0));
            free(h);
            r0 += nr;
        }
    }
    for (int i = 0; s == LC_OK && i < m->cfg.n_layers; i++) {
        struct ilayer *l = &st->l[i];
        if (l->kind != LC_LAYER_MAMBA) continue;
        const int64_t nh = m->cfg.mamba_heads;
        float *h = lc_malloc((size_t)nh * sizeof(float), "infer A");
        if (!h) {
            s = LC_ENOMEM;
            break;
        }
        s = m->be->download(h, MP(m, l->A_log), (size_t)nh * 4);
        for (int64_t k = 0; k < nh; k++) h[k] = -expf(h[k]);
        if (s == LC_OK) s = m->be->upload(l->A, h, (size_t)nh * 4);
        free(h);
    }
    if (s != LC_OK) {
        infer_destroy(st);
        return s;
    }
    *out = st;
    return LC_OK;
}

void infer_destroy(lc_infer *st) {
    if (!st) return;
    if (st->mem) st->m->be->free(st->mem);
    free_layers(st);
    free(st);
}

int64_t infer_pos(const lc_infer *st) { return st ? st->pos : 0; }

/* ---------------------------------------------------------------- building blocks */
static lc_status linear(const lc_model *m, int64_t R, int64_t Din, int64_t Dout, const void *x, int64_t w, void *y, float beta) {
    return m->be->matmul(0, 1, R, Dout, Din, 1.0f, x, WP(m, w), beta, y, 0);
}
static lc_status bias(const struct lc_infer *st, int64_t R, int64_t D, int64_t b, void *y) {
    if (b < 0) return LC_OK;
    return st->m->be->matmul(0, 0, R, D, 1, 1.0f, st->ones, WP(st->m, b), 1.0f, y, 0);
}

/* out += Wd swiglu([Wg; Wu] n(in)) (no MLP when gate < 0). */
static lc_status mlp(struct lc_infer *st, int64_t R, int64_t F, const struct blockp *p, const void *in, void *out) {
    const lc_model *m = st->m;
    const struct backend *be = m->be;
    if (p->w_gate < 0) return LC_OK;
    const int64_t d = m->cfg.d;
    LC_TRY(be->rmsnorm_forward(R, d, (float)m->cfg.norm_eps, in, WP(m, p->mlp_norm), st->hn2, st->rstd2));
    LC_TRY(linear(m, R, d, 2 * F, st->hn2, p->w_gate, st->gu, 0.0f));
    LC_TRY(be->swiglu_forward(R, F, 2 * F, st->gu, ACT(m, st->gu, F), st->a));
    return linear(m, R, F, d, st->a, p->w_down, out, 1.0f);
}

/* One query row (decode) against Lk >= asplit_min cached keys of a dense layer: the keys are cut
 * into P partitions of Cp rows, run as a batch of P sequences of Cp keys (the query, copied P times,
 * sits at each one's last position, so it sees all of them), plus one call for the Lk - P*Cp keys
 * left; then o = sum_p exp(lse_p - lse) o_p with lse = log sum_p exp(lse_p), on the host (a few KB).
 * The attention kernels give one CTA per (batch, head, query tile): without the split one CTA
 * would walk every key. Same result up to the rounding of the partial outputs to act. */
static lc_status attend_split(struct lc_infer *st, const struct attn_shape *sh, const void *q, const void *k, const void *v) {
    const lc_model *m = st->m;
    const struct backend *be = m->be;
    const int64_t Lk = sh->L, HQ = sh->HQ, qd = HQ * sh->dh, kd = sh->H * sh->dh;
    int64_t Cp = (Lk + st->asplit_parts - 1) / st->asplit_parts;
    if (be->is_cuda && Cp > 64) Cp = (Cp + 63) / 64 * 64; /* whole key tiles */
    const int64_t P = Lk / Cp, rem = Lk - P * Cp, nb = P + (rem > 0);
    if (P < 1 || P > SPLIT_PARTS_MAX) return be->attn_forward(sh, q, k, v, st->o, st->lse);
    struct attn_shape a = *sh;
    a.B = P;
    a.L = Cp;
    a.Lq = 1;
    a.q_pos0 = Cp - 1;
    LC_TRY(be->matmul(0, 0, P, qd, 1, 1.0f, st->ones, q, 0.0f, st->aq, 0));
    LC_TRY(be->attn_forward(&a, st->aq, k, v, st->ao, st->alse));
    if (rem > 0) {
        a.B = 1;
        a.L = rem;
        a.q_pos0 = rem - 1;
        LC_TRY(be->attn_forward(&a, q, ACT(m, k, P * Cp * kd), ACT(m, v, P * Cp * kd), ACT(m, st->ao, P * qd), st->alse + P * HQ));
    }
    LC_TRY(be->act_to_f32(nb * qd, st->ao, st->aof));
    float *h = lc_malloc(sizeof(float) * (size_t)(nb * qd + nb * HQ + qd), "infer attention split");
    if (!h) return LC_ENOMEM;
    float *hl = h + nb * qd, *ho = hl + nb * HQ;
    lc_status s = be->download(h, st->aof, sizeof(float) * (size_t)(nb * qd));
    if (s == LC_OK) s = be->download(hl, st->alse, sizeof(float) * (size_t)(nb * HQ)); /* lse [b, HQ, Lq = 1] */
    const int64_t dh = sh->dh;
    for (int64_t hq = 0; s == LC_OK && hq < HQ; hq++) {
        double mx = -INFINITY, den = 0;
        for (int64_t b = 0; b < nb; b++) mx = hl[b * HQ + hq] > mx ? hl[b * HQ + hq] : mx;
        for (int64_t j = 0; j < dh; j++) ho[hq * dh + j] = 0.0f;
        for (int64_t b = 0; b < nb; b++) {
            const double w = exp((double)hl[b * HQ + hq] - mx);
            den += w;
            for (int64_t j = 0; j < dh; j++) ho[hq * dh + j] += (float)(w * h[b * qd + hq * dh + j]);
        }
        for (int64_t j = 0; j < dh; j++) ho[hq * dh + j] = (float)(ho[hq * dh + j] / den);
    }
    if (s == LC_OK) s = be->upload(st->aof, ho, sizeof(float) * (size_t)qd);
    if (s == LC_OK) s = be->act_from_f32(qd, st->aof, st->o);
    free(h);
    return s;
}

static lc_status attend(struct lc_infer *st, const struct attn_shape *sh, const void *q, const void *k, const void *v) {
    if (st->asplit_min > 0 && sh->B == 1 && sh->Lq == 1 && sh->W == 0 && sh->causal && sh->L >= st->asplit_min &&
        sh->L >= 2 * st->asplit_parts && st->aq)
        return attend_split(st, sh, q, k, v);
    return st->m->be->attn_forward(sh, q, k, v, st->o, st->lse);
}

struct bdims {
    int64_t Bt, Lt, HQ, Hk, dh, F, pos0;
    float theta;
};

/* x [Bt*Lt, d] += Wo attn(q, K, V); x += MLP(x). This block's keys and values (after q/k-norm and
 * RoPE at positions pos0..) are written to k_dst, v_dst; the attention reads k_all, v_all with
 * shape sh (the caller's cache or the block's own rows). */
static lc_status block(struct lc_infer *st, const struct bdims *a, const struct blockp *p, void *x, void *k_dst, void *v_dst,
                       const void *k_all, const void *v_all, const struct attn_shape *sh) {
    const lc_model *m = st->m;
    const struct backend *be = m->be;
    const int64_t R = a->Bt * a->Lt, d = m->cfg.d, qd = a->HQ * a->dh, kd = a->Hk * a->dh;
    const float eps = (float)m->cfg.norm_eps;
    LC_TRY(be->rmsnorm_forward(R, d, eps, x, WP(m, p->attn_norm), st->hn, st->rstd));
    void *q = st->qp;
    LC_TRY(linear(m, R, d, qd, st->hn, p->wq, q, 0.0f));
    LC_TRY(bias(st, R, qd, p->bq, q));
    if (p->q_norm >= 0) {
        LC_TRY(be->rmsnorm_forward(R * a->HQ, a->dh, eps, st->qp, WP(m, p->q_norm), st->q, st->rstd));
        q = st->q;
    }
    void *kp = p->k_norm >= 0 ? st->kt : k_dst;
    LC_TRY(linear(m, R, d, kd, st->hn, p->wk, kp, 0.0f));
    LC_TRY(bias(st, R, kd, p->bk, kp));
    if (p->k_norm >= 0) LC_TRY(be->rmsnorm_forward(R * a->Hk, a->dh, eps, st->kt, WP(m, p->k_norm), k_dst, st->rstd));
    LC_TRY(linear(m, R, d, kd, st->hn, p->wv, v_dst, 0.0f));
    LC_TRY(bias(st, R, kd, p->bv, v_dst));
    LC_TRY(be->rope_forward(a->Bt, a->Lt, a->HQ, a->dh, a->pos0, a->theta, q, q));
    LC_TRY(be->rope_forward(a->Bt, a->Lt, a->Hk, a->dh, a->pos0, a->theta, k_dst, k_dst));
    LC_TRY(attend(st, sh, q, k_all, v_all));
    LC_TRY(linear(m, R, qd, d, st->o, p->wo, x, 1.0f));
    if (p->w_gate < 0) return LC_OK;
    LC_TRY(be->copy(st->xm, x, (size_t)(R * d) * be->act_bytes));
    return mlp(st, R, a->F, p, st->xm, x);
}

/* ---------------------------------------------------------------- layers */
/* Every layer works on n rows x [n, d] at absolute positions p0 .. p0+n-1 (the segment, or in tail
 * mode the segment's rows inside the tail). */
static lc_status attn_layer(struct lc_infer *st, struct ilayer *l, void *x, int64_t p0, int64_t n) {
    const lc_model *m = st->m;
    const lc_config *c = &m->cfg;
    const struct backend *be = m->be;
    const size_t ab = be->act_bytes;
    const int64_t dh = attn_dh(c), kd = c->attn_kv_heads * dh, W = l->kind == LC_LAYER_SWA ? c->W : 0;
    struct bdims a = {1, n, c->attn_heads, c->attn_kv_heads, dh, c->attn_mlp, p0, (float)c->rope_theta};
    /* key rows are cache-relative (the cache holds positions p0 - nc .. p0 - 1, then this segment) */
    struct attn_shape sh = {1, l->nc + n, c->attn_heads, c->attn_kv_heads, dh, W, 1, 0.0f, n, l->nc};
    LC_TRY(block(st, &a, &l->p, x, ACT(m, l->kc, l->nc * kd), ACT(m, l->vc, l->nc * kd), l->kc, l->vc, &sh));
    l->nc += n;
    if (W > 0 && l->nc > W) { /* keep the last W rows: through tmp, as the ranges may overlap */
        const size_t rows = (size_t)W * (size_t)kd * ab;
        LC_TRY(be->copy(st->tmp, ACT(m, l->kc, (l->nc - W) * kd), rows));
        LC_TRY(be->copy(l->kc, st->tmp, rows));
        LC_TRY(be->copy(st->tmp, ACT(m, l->vc, (l->nc - W) * kd), rows));
        LC_TRY(be->copy(l->vc, st->tmp, rows));
        l->nc = W;
    }
    return LC_OK;
}

static lc_status chunk_layer(struct lc_infer *st, struct ilayer *l, void *x, int64_t p0, int64_t n) {
    const lc_model *m = st->m;
    const lc_config *c = &m->cfg;
    const struct backend *be = m->be;
    const size_t ab = be->act_bytes;
    const int64_t d = c->d, S = c->S, S1 = S + 1, kv = c->H * hsa_dh(c), np = l->np, tot = np + n, nch = tot / S;
    const int64_t C0 = (p0 - np) / S; /* index of the first chunk completed here */
    const float eps = (float)c->norm_eps;
    if (nch > 0) {
        /* E [nch, S+1, d]: chunk j's S rows of (pend | x), then CLS. Chunk 0 may start in pend;
         * every later chunk is S consecutive rows of x: one strided copy for all of them, and the
         * CLS rows through a [nch, 1] x [1, d] matmul (ones x cls) and one more strided copy. */
        int64_t j0 = 0;
        if (np > 0) {
            LC_TRY(be->copy(st->E, l->pend, (size_t)(np * d) * ab));
            LC_TRY(be->copy(ACT(m, st->E, np * d), x, (size_t)((S - np) * d) * ab));
            j0 = 1;
        }
        if (nch > j0)
            LC_TRY(be->copy2d(ACT(m, st->E, j0 * S1 * d), (size_t)(S1 * d) * ab, ACT(m, x, (j0 * S - np) * d), (size_t)(S * d) * ab,
                              (size_t)(S * d) * ab, (size_t)(nch - j0)));
        LC_TRY(m->be->matmul(0, 0, nch, d, 1, 1.0f, st->ones, WP(m, l->cls), 0.0f, st->lmk_src, 0));
        LC_TRY(be->copy2d(ACT(m, st->E, S * d), (size_t)(S1 * d) * ab, st->lmk_src, (size_t)d * ab, (size_t)d * ab, (size_t)nch));
        const int64_t edh = enc_dh(c), Re = nch * S1;
        struct bdims a = {nch, S1, c->enc_heads, c->enc_kv_heads, edh, c->enc_mlp, 0, (float)c->enc_rope_theta};
        struct attn_shape sh = {nch, S1, c->enc_heads, c->enc_kv_heads, edh, 0, 0, 0.0f, 0, 0};
        for (int e = 0; e < c->enc_layers; e++) LC_TRY(block(st, &a, &l->enc[e], st->E, st->ke, st->vt, st->ke, st->vt, &sh));
        LC_TRY(be->rmsnorm_forward(Re, d, eps, st->E, WP(m, l->enc_norm), st->En, st->rstd));
        LC_TRY(be->copy2d(st->lmk_src, (size_t)d * ab, ACT(m, st->En, S * d), (size_t)(S1 * d) * ab, (size_t)d * ab, (size_t)nch));
        LC_TRY(linear(m, nch, d, c->d_r, st->lmk_src, l->lmk_ln, ACT(m, st->lmk, C0 * c->d_r), 0.0f));
        LC_TRY(be->copy2d(st->Etok, (size_t)(S * d) * ab, st->En, (size_t)(S1 * d) * ab, (size_t)(S * d) * ab, (size_t)nch));
        void *mk = ACT(m, st->mem_k, C0 * S * kv), *mv = ACT(m, st->mem_v, C0 * S * kv);
        if (l->ck_norm >= 0) {
            LC_TRY(linear(m, nch * S, d, kv, st->Etok, l->proj_k, st->kpre, 0.0f));
            LC_TRY(be->rmsnorm_forward(nch * S * c->H, hsa_dh(c), eps, st->kpre, WP(m, l->ck_norm), mk, st->rstd));
        } else {
            LC_TRY(linear(m, nch * S, d, kv, st->Etok, l->proj_k, mk, 0.0f));
        }
        LC_TRY(linear(m, nch * S, d, kv, st->Etok, l->proj_v, mv, 0.0f));
    }
    /* the rows after the last complete chunk wait in pend */
    const int64_t rest = tot - nch * S;
    if (nch == 0) LC_TRY(be->copy(ACT(m, l->pend, np * d), x, (size_t)(n * d) * ab));
    else if (rest > 0) LC_TRY(be->copy(l->pend, ACT(m, x, (nch * S - np) * d), (size_t)(rest * d) * ab));
    l->np = rest;
    return LC_OK;
}

/* Queries at positions p0 .. p0+n-1 of a sequence of p0+n tokens (the store holds its complete
 * chunks). */
static struct hsa_shape hsa_shape_of(const struct lc_infer *st, int64_t p0, int64_t n) {
    const lc_config *c = &st->m->cfg;
    struct hsa_shape h;
    memset(&h, 0, sizeof h);
    h.B = 1; h.L = p0 + n; h.HQ = c->HQ; h.H = c->H; h.dh = hsa_dh(c); h.S = c->S; h.K = c->K;
    h.Hr = c->H_r; h.dr = c->d_r / c->H_r; h.block_q = 1; h.softmax1 = c->off_by_one; h.weighting = c->weights;
    h.gumbel = 0; h.scale = 0.0f; h.Lq = n; h.q_pos0 = p0;
    return h;
}

/* Retrieval of one query (position p0, nv visible chunks) split over partitions of the store:
 * P partitions of Cp chunks run as a batch of P sequences of Cp*S + 1 tokens (the query, copied
 * P times, sits at the last position, so it sees the partition's Cp chunks), the nv - P*Cp
 * chunks left as one more sequence. Each gives its top-K; the host merges the (P+1)*K candidates
 * into the top-K by the kernels' order (larger score first, equal scores: smaller chunk id) and
 * writes them sorted by chunk id descending, as hsa_retrieve does. Same idx and scores as one
 * call over the whole store (the score of a chunk does not depend on the batch it is in). */
static lc_status retrieval_split(struct lc_infer *st, struct ilayer *l, int64_t p0, int64_t nv) {
    const lc_model *m = st->m;
    const lc_config *c = &m->cfg;
    const struct backend *be = m->be;
    const int64_t Hr = c->H_r, K = c->K, S = c->S, align = be->is_cuda ? 128 : 1;
    int64_t Cp = (nv + st->split_parts - 1) / st->split_parts;
    if (Cp > align) Cp = (Cp + align - 1) / align * align; /* whole tiles of the CUDA kernel */
    const int64_t P = nv / Cp, rem = nv - P * Cp;
    struct hsa_shape h = hsa_shape_of(st, p0, 1);
    if (P < 1 || P > SPLIT_PARTS_MAX) return be->hsa_retrieve(&h, st->qr, st->lmk, l->idx, l->score);
    h.B = P;
    h.L = Cp * S + 1;
    h.q_pos0 = Cp * S;
    LC_TRY(be->matmul(0, 0, P, c->d_r, 1, 1.0f, st->ones, st->qr, 0.0f, st->qrep, 0));
    LC_TRY(be->hsa_retrieve(&h, st->qrep, st->lmk, st->sidx, st->sscore));
    if (rem > 0) {
        h.B = 1;
        h.L = rem * S + 1;
        h.q_pos0 = rem * S;
        LC_TRY(be->hsa_retrieve(&h, st->qr, ACT(m, st->lmk, P * Cp * c->d_r), st->sidx + P * Hr * K, st->sscore + P * Hr * K));
    }
    const int64_t nb = P + (rem > 0), ncand = nb * K;
    int32_t *ci = lc_malloc(sizeof(int32_t) * (size_t)(nb * Hr * K + Hr * K), "infer split idx");
    float *cs = lc_malloc(sizeof(float) * (size_t)(nb * Hr * K + Hr * K), "infer split scores");
    if (!ci || !cs) {
        free(ci);
        free(cs);
        return LC_ENOMEM;
    }
    int32_t *oi = ci + nb * Hr * K;
    float *os = cs + nb * Hr * K;
    lc_status s = be->download(ci, st->sidx, sizeof(int32_t) * (size_t)(nb * Hr * K));
    if (s == LC_OK) s = be->download(cs, st->sscore, sizeof(float) * (size_t)(nb * Hr * K));
    for (int64_t hr = 0; s == LC_OK && hr < Hr; hr++) {
        int32_t *bi = oi + hr * K;
        float *bs = os + hr * K;
        int64_t nk = 0;
        for (int64_t e = 0; e < ncand; e++) { /* insertion into the kept list, best first */
            const int64_t b = e / K, k = e % K, at = (b * Hr + hr) * K + k;
            const float sc = cs[at];
            if (sc == -INFINITY) continue; /* an invalid slot */
            const int32_t id = ci[at] + (int32_t)(b * Cp);
            int64_t j = nk < K ? nk++ : K;
            while (j > 0 && (sc > bs[j - 1] || (sc == bs[j - 1] && id < bi[j - 1]))) {
                if (j < K) bi[j] = bi[j - 1], bs[j] = bs[j - 1];
                j--;
            }
            if (j < K) bi[j] = id, bs[j] = sc;
        }
        for (int64_t a = 1; a < nk; a++) /* by chunk id descending */
            for (int64_t j = a; j > 0 && bi[j] > bi[j - 1]; j--) {
                int32_t ti = bi[j];
                float ts = bs[j];
                bi[j] = bi[j - 1], bs[j] = bs[j - 1];
                bi[j - 1] = ti, bs[j - 1] = ts;
            }
        for (int64_t k = nk; k < K; k++) bi[k] = 0, bs[k] = -INFINITY;
    }
    if (s == LC_OK) s = be->upload(l->idx, oi, sizeof(int32_t) * (size_t)(Hr * K));
    if (s == LC_OK) s = be->upload(l->score, os, sizeof(float) * (size_t)(Hr * K));
    free(ci);
    free(cs);
    return s;
}

static lc_status retrieval_layer(struct lc_infer *st, struct ilayer *l, void *x, int64_t p0, int64_t n) {
    const lc_model *m = st->m;
    const lc_config *c = &m->cfg;
    const struct backend *be = m->be;
    LC_TRY(be->rmsnorm_forward(n, c->d, (float)c->norm_eps, x, WP(m, l->norm), st->hn, st->rstd));
    LC_TRY(linear(m, n, c->d, c->d_r, st->hn, l->ln, st->qr, 0.0f));
    struct hsa_shape h = hsa_shape_of(st, p0, n);
    const int64_t nv = p0 / c->S; /* chunks visible to a single query at p0 */
    if (n == 1 && st->split_min > 0 && nv >= st->split_min && nv >= 2 * st->split_parts) LC_TRY(retrieval_split(st, l, p0, nv));
    else LC_TRY(be->hsa_retrieve(&h, st->qr, st->lmk, l->idx, l->score));
    if (c->pos_decay) LC_TRY(be->hsa_pos_decay_forward(&h, MP(m, l->pos_decay), l->score));
    return be->hsa_weights_forward(&h, l->score, l->w);
}

static lc_status hsa_layer(struct lc_infer *st, struct ilayer *l, void *x, int64_t p0, int64_t n) {
    const lc_model *m = st->m;
    const lc_config *c = &m->cfg;
    const struct backend *be = m->be;
    const struct ilayer *r = &st->l[l->retr];
    const size_t ab = be->act_bytes;
    const int64_t d = c->d, dh = hsa_dh(c), qd = c->HQ * dh;
    const float eps = (float)c->norm_eps;
    LC_TRY(be->rmsnorm_forward(n, d, eps, x, WP(m, l->norm), st->hn, st->rstd));
    void *q = st->qp;
    LC_TRY(linear(m, n, d, qd, st->hn, l->q_proj, q, 0.0f));
    if (l->q_norm >= 0) {
        LC_TRY(be->rmsnorm_forward(n * c->HQ, dh, eps, st->qp, WP(m, l->q_norm), st->q, st->rstd));
        q = st->q;
    }
    struct hsa_shape h = hsa_shape_of(st, p0, n);
    LC_TRY(be->hsa_attend_forward(&h, q, st->mem_k, st->mem_v, r->idx, r->w, st->o, st->lse));
    void *t = st->xm; /* t = x + o_proj a */
    LC_TRY(be->copy(t, x, (size_t)(n * d) * ab));
    LC_TRY(linear(m, n, qd, d, st->o, l->o_proj, t, 1.0f));
    if (c->residual == LC_RESIDUAL_RESET) LC_TRY(be->copy(x, t, (size_t)(n * d) * ab));
    return mlp(st, n, c->hsa_mlp, &l->p, t, x);
}

static lc_status mamba_layer(struct lc_infer *st, struct ilayer *l, void *x, int64_t n) {
    const lc_model *m = st->m;
    const lc_config *c = &m->cfg;
    const struct backend *be = m->be;
    const size_t ab = be->act_bytes;
    const int64_t d = c->d;
    struct mdims a = mamba_dims(c);
    LC_TRY(be->rmsnorm_forward(n, d, (float)c->norm_eps, x, WP(m, l->norm), st->hn, st->rstd));
    LC_TRY(linear(m, n, d, a.np, st->hn, l->in_proj, st->proj, 0.0f));
    const size_t rp = (size_t)a.np * ab;
    LC_TRY(be->copy2d(st->z, (size_t)a.di * ab, st->proj, rp, (size_t)a.di * ab, (size_t)n));
    LC_TRY(be->copy2d(st->xbc, (size_t)a.xc * ab, ACT(m, st->proj, a.di), rp, (size_t)a.xc * ab, (size_t)n));
    LC_TRY(be->copy2d(st->dtc, (size_t)a.nh * ab, ACT(m, st->proj, a.di + a.xc), rp, (size_t)a.nh * ab, (size_t)n));
    LC_TRY(be->act_to_f32(n * a.nh, st->dtc, st->dt));
    const int cur = l->cur, nxt = 1 - l->cur;
    struct mamba_conv_shape cs = {1, n, a.xc, c->mamba_conv};
    LC_TRY(be->mamba_conv_forward(&cs, st->xbc, MP(m, l->conv_w), MP(m, l->conv_b), l->tail[cur], st->xbc_c, l->tail[nxt]));
    const size_t rx = (size_t)a.xc * ab;
    LC_TRY(be->copy2d(st->xs, (size_t)a.di * ab, st->xbc_c, rx, (size_t)a.di * ab, (size_t)n));
    LC_TRY(be->copy2d(st->Bm, (size_t)a.gn * ab, ACT(m, st->xbc_c, a.di), rx, (size_t)a.gn * ab, (size_t)n));
    LC_TRY(be->copy2d(st->Cm, (size_t)a.gn * ab, ACT(m, st->xbc_c, a.di + a.gn), rx, (size_t)a.gn * ab, (size_t)n));
    struct mamba_scan_shape ss = {1, n, a.nh, c->mamba_dh, c->mamba_ngroups, c->mamba_state};
    LC_TRY(be->mamba_scan_forward(&ss, st->xs, st->dt, MP(m, l->dt_bias), l->A, st->Bm, st->Cm, MP(m, l->Dp), st->z, l->ssm[cur],
                                  st->y, l->ssm[nxt]));
    l->cur = nxt;
    LC_TRY(be->rmsnorm_forward(n, a.di, (float)c->norm_eps, st->y, WP(m, l->gate_norm), st->yn, st->rstd));
    return linear(m, n, a.di, d, st->yn, l->out_proj, x, 1.0f);
}

/* ---------------------------------------------------------------- segments */
enum { LOGITS_NONE, LOGITS_ALL, LOGITS_LAST };

/* One segment of n tokens at st->pos. Layers below st->split run on every row; the others only on
 * the rows at positions >= st->tail_from (all rows unless in tail mode). logits: host fp32, the
 * rows the upper layers ran on (LOGITS_ALL) or the last row (LOGITS_LAST). *rows_out: how many
 * logits rows were written. */
static lc_status segment(lc_model *m, struct lc_infer *st, const int32_t *tokens, int64_t n, float *logits, int mode,
                         int64_t *rows_out) {
    const struct backend *be = m->be;
    const lc_config *c = &m->cfg;
    const int64_t d = c->d, V = c->vocab, p0 = st->pos;
    if (rows_out) *rows_out = 0;
    for (int64_t i = 0; i < n; i++)
        LC_REQUIRE(tokens[i] >= 0 && tokens[i] < V, "model_prefill: token %lld = %d is outside the vocabulary 0..%lld",
                   (long long)(st->pos + i), tokens[i], (long long)V - 1);
    const int64_t embed = tensor_at(m, "embed"), head = c->tied_embeddings ? embed : tensor_at(m, "head");
    const int64_t fnorm = tensor_at(m, "final_norm");
    LC_REQUIRE(embed >= 0 && head >= 0 && fnorm >= 0, "model_prefill: the model has no embed/head/final_norm tensor");
    LC_TRY(be->upload(st->ids, tokens, (size_t)n * 4));
    LC_TRY(be->embedding_forward(n, V, d, st->ids, WP(m, embed), st->x));
    int64_t off = st->tail_from - p0; /* first row the upper layers see */
    if (off < 0) off = 0;
    if (off > n) off = n;
    for (int i = 0; i < c->n_layers; i++) {
        struct ilayer *l = &st->l[i];
        const int up = i >= st->split;
        if (up && off == n) break;
        void *x = up ? ACT(m, st->x, off * d) : st->x;
        const int64_t q0 = up ? p0 + off : p0, nr = up ? n - off : n;
        switch (l->kind) {
        case LC_LAYER_SWA:
        case LC_LAYER_DENSE: LC_TRY(attn_layer(st, l, x, q0, nr)); break;
        case LC_LAYER_CHUNK: LC_TRY(chunk_layer(st, l, x, q0, nr)); break;
        case LC_LAYER_RETRIEVAL: LC_TRY(retrieval_layer(st, l, x, q0, nr)); break;
        case LC_LAYER_HSA: LC_TRY(hsa_layer(st, l, x, q0, nr)); break;
        case LC_LAYER_MAMBA: LC_TRY(mamba_layer(st, l, x, nr)); break;
        }
    }
    st->pos += n;
    if (!logits || mode == LOGITS_NONE || off == n) return LC_OK;
    const int64_t r0 = mode == LOGITS_LAST ? n - 1 : off, nr = n - r0;
    LC_TRY(be->rmsnorm_forward(nr, d, (float)c->norm_eps, ACT(m, st->x, r0 * d), WP(m, fnorm), st->hn, st->rstd));
    LC_TRY(linear(m, nr, d, V, st->hn, head, st->logits, 0.0f));
    LC_TRY(be->act_to_f32(nr * V, st->logits, st->logits_f));
    if (rows_out) *rows_out = nr;
    return be->download(logits, st->logits_f, (size_t)(nr * V) * 4);
}

static lc_status feed(lc_model *m, lc_infer *st, const int32_t *tokens, int64_t n, float *logits, int mode) {
    LC_REQUIRE(m && st && st->m == m, "model_prefill: the state was not created for this model");
    LC_REQUIRE(n >= 0, "model_prefill: n = %lld must be >= 0", (long long)n);
    LC_REQUIRE(n == 0 || tokens, "model_prefill: tokens is NULL");
    LC_REQUIRE(n <= st->max_len - st->pos, "model_prefill: %lld tokens at position %lld exceed the state's max_len = %lld",
               (long long)n, (long long)st->pos, (long long)st->max_len);
    float *out = logits;
    for (int64_t i = 0; i < n; i += st->seg) {
        const int64_t k = n - i < st->seg ? n - i : st->seg;
        const int last = i + k == n;
        int64_t rows = 0;
        if (mode == LOGITS_LAST && !last) LC_TRY(segment(m, st, tokens + i, k, NULL, LOGITS_NONE, NULL));
        else LC_TRY(segment(m, st, tokens + i, k, out, mode, &rows));
        if (out && mode == LOGITS_ALL) out += rows * m->cfg.vocab;
    }
    return LC_OK;
}

lc_status model_prefill(lc_model *m, lc_infer *st, const int32_t *tokens, int64_t n, float *logits) {
    return feed(m, st, tokens, n, logits, LOGITS_ALL);
}

lc_status model_prefill_last(lc_model *m, lc_infer *st, const int32_t *tokens, int64_t n, float *logits) {
    LC_REQUIRE(n >= 1 || !logits, "model_prefill_last: n = %lld: no last token to give logits for", (long long)n);
    return feed(m, st, tokens, n, logits, LOGITS_LAST);
}

lc_status model_decode_step(lc_model *m, lc_infer *st, int32_t token, float *logits) {
    return feed(m, st, &token, 1, logits, LOGITS_ALL);
}

/* ---------------------------------------------------------------- exact tail mode */
/* The split: one past the last layer whose output at t depends on every earlier position (chunk,
 * dense, mamba). The layers above it (swa, retrieval, hsa) see a bounded past: an swa layer the W
 * positions before t, retrieval and hsa only position t itself (and the chunk store, written by
 * the chunk layer below the split from every position). So the last R rows of the upper stack
 * need its input only at the last R + sum(W of the upper swa layers) rows. */
static int tail_split(const lc_config *c, int64_t *reach) {
    int split = 0;
    for (int i = 0; i < c->n_layers; i++) {
        const int k = c->layers[i].kind;
        if (k == LC_LAYER_CHUNK || k == LC_LAYER_DENSE || k == LC_LAYER_MAMBA) split = i + 1;
    }
    int64_t r = 0;
    for (int i = split; i < c->n_layers; i++)
        if (c->layers[i].kind == LC_LAYER_SWA) r += c->W;
    if (reach) *reach = r;
    return split;
}

lc_status infer_tail_rows(const lc_model *m, int64_t answer_rows, int64_t *rows, int *split) {
    LC_REQUIRE(m && rows, "infer_tail_rows: NULL argument");
    LC_REQUIRE(answer_rows >= 1, "infer_tail_rows: answer_rows = %lld must be >= 1", (long long)answer_rows);
    int64_t reach = 0;
    const int sp = tail_split(&m->cfg, &reach);
    *rows = answer_rows + reach;
    if (split) *split = sp;
    return LC_OK;
}

lc_status model_prefill_tail(lc_model *m, lc_infer *st, const int32_t *tokens, int64_t n, int64_t answer_rows, float *logits) {
    LC_REQUIRE(m && st && st->m == m, "model_prefill_tail: the state was not created for this model");
    LC_REQUIRE(st->pos == 0, "model_prefill_tail: the state holds %lld tokens; reset it first (tail mode feeds a whole sequence)",
               (long long)st->pos);
    LC_REQUIRE(answer_rows >= 1 && answer_rows <= n, "model_prefill_tail: answer_rows = %lld must be in 1..n = %lld",
               (long long)answer_rows, (long long)n);
    int64_t rows = 0;
    int split = 0;
    LC_TRY(infer_tail_rows(m, answer_rows, &rows, &split));
    const int64_t from = n - rows > 0 ? n - rows : 0;
    st->split = split;
    st->tail_from = from;
    float *lg = NULL;
    if (logits) {
        lg = lc_malloc(sizeof(float) * (size_t)((n - from) * m->cfg.vocab), "tail logits");
        if (!lg) return LC_ENOMEM;
    }
    lc_status s = feed(m, st, tokens, n, lg, LOGITS_ALL);
    st->split = 0;
    st->tail_from = 0;
    if (s == LC_OK && logits) /* the last answer_rows of the tail's n - from rows */
        memcpy(logits, lg + (n - from - answer_rows) * m->cfg.vocab, sizeof(float) * (size_t)(answer_rows * m->cfg.vocab));
    free(lg);
    return s;
}

lc_status infer_set_split(lc_infer *st, int64_t min_chunks, int64_t parts) {
    LC_REQUIRE(st, "infer_set_split: NULL state");
    LC_REQUIRE(min_chunks >= 0, "infer_set_split: min_chunks = %lld must be >= 0 (0 = off)", (long long)min_chunks);
    LC_REQUIRE(parts >= 1 && parts <= SPLIT_PARTS_MAX, "infer_set_split: parts = %lld must be in 1..%d", (long long)parts,
               SPLIT_PARTS_MAX);
    st->split_min = min_chunks;
    st->split_parts = parts;
    return LC_OK;
}

lc_status infer_set_attn_split(lc_infer *st, int64_t min_keys, int64_t parts) {
    LC_REQUIRE(st, "infer_set_attn_split: NULL state");
    LC_REQUIRE(min_keys >= 0, "infer_set_attn_split: min_keys = %lld must be >= 0 (0 = off)", (long long)min_keys);
    LC_REQUIRE(parts >= 1 && parts <= SPLIT_PARTS_MAX, "infer_set_attn_split: parts = %lld must be in 1..%d", (long long)parts,
               SPLIT_PARTS_MAX);
    st->asplit_min = min_keys;
    st->asplit_parts = parts;
    return LC_OK;
}
