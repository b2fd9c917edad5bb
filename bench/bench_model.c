/* bench_model.c — benchmark family for whole models (issue 8: prefill tokens/s, decode ms/token,
 * peak memory vs L per architecture), so `longctx sweep` measures model points next to kernels.
 *
 * Mixers name a preset (model/presets): model_swa_hsa = tiny-swa-hsa, model_dense = tiny-dense,
 * model_mamba = tiny-mamba. Point fields: B (must be 1: inference is one sequence) and L; the
 * preset fixes the rest (sweep_grid.c leaves the other dims 0 for model_* mixers).
 * Directions (model/infer.h, random tokens, fresh weights):
 *   fwd     full prefill of L tokens: every position through every layer, in segments of
 *           min(L, 65536) tokens, the head on the last token only (what decode needs)
 *   decode  one token after a context of L tokens (the prefill runs once in make; each run adds
 *           a token, so the context grows by the repeat count, at most 16384 tokens)
 * FLOPs: 2 x (parameters outside the embedding) per token, plus the mixers' own work: attention
 * 4*HQ*dh per visible key (W+1 keys for swa, t+1 for dense, the encoder's S+1 per chunk token),
 * retrieval 2*d_r per visible chunk, HSA 4*HQ*dh*S*K; no Mamba scan term. Bytes: the weights
 * read once per segment plus the chunk store / KV caches read by each token's attention (for
 * decode: weights + caches + landmarks). Both are estimates to make TFLOP/s and GB/s comparable
 * across L, not exact counts. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "device.h"
#include "infer.h"
#include "model.h"

#define MODEL_BENCH_SEG 65536
#define MODEL_BENCH_DECODE_ROOM 16384

struct model_ctx {
    lc_model m;
    lc_infer *st;
    int32_t *tok;
    int64_t L, pos_max;
    int decode;
    float *lg;
};

static const char *preset_of(const char *mixer) {
    if (!strcmp(mixer, "model_swa_hsa")) return "tiny-swa-hsa";
    if (!strcmp(mixer, "model_dense")) return "tiny-dense";
    if (!strcmp(mixer, "model_mamba")) return "tiny-mamba";
    return NULL;
}

static lc_status check_point(const struct bench_point *p, lc_config *cfg) {
    const char *pre = preset_of(p->mixer);
    if (!pre) return lc_errorf(LC_EINVAL, "bench: unknown model mixer '%s'", p->mixer);
    if (strcmp(p->direction, "fwd") && strcmp(p->direction, "decode"))
        return lc_errorf(LC_EUNSUPPORTED, "bench %s: direction '%s' not supported (fwd = full prefill, decode)", p->mixer,
                         p->direction);
    if (p->B != 1) return lc_errorf(LC_EUNSUPPORTED, "bench %s: B = %lld: inference runs one sequence (B = 1)", p->mixer, (long long)p->B);
    if (p->L < 1) return lc_errorf(LC_EINVAL, "bench %s: L = %lld", p->mixer, (long long)p->L);
    if (p->backend == BENCH_CUDA && !lc_cuda_built())
        return lc_errorf(LC_EUNSUPPORTED, "bench %s: this build has no CUDA backend", p->mixer);
    return lc_config_load(pre, cfg);
}

static int64_t seg_of(int64_t L) { return L < MODEL_BENCH_SEG ? L : MODEL_BENCH_SEG; }

/* Weights (fp32 master + gradient + act copy) and the inference state. The state figure comes
 * from a cpu model (fp32 caches), an upper bound of the cuda (bf16) one. */
static size_t model_predict(const struct bench_point *p) {
    lc_config cfg;
    if (check_point(p, &cfg) != LC_OK) return 0;
    lc_model m;
    if (model_create(&m, &cfg, backend_cpu(), 1) != LC_OK) return 0;
    int64_t need = 0;
    const int64_t extra = strcmp(p->direction, "decode") ? 0 : MODEL_BENCH_DECODE_ROOM;
    if (infer_bytes(&m, p->L + extra, seg_of(p->L), &need) != LC_OK) need = 0;
    const size_t w = (size_t)m.n_params * 10;
    model_destroy(&m);
    return w + (size_t)need;
}

static lc_status run_prefill(void *vc) {
    struct model_ctx *c = vc;
    LC_TRY(infer_reset(c->st));
    return model_prefill_last(&c->m, c->st, c->tok, c->L, c->lg);
}

static lc_status run_decode(void *vc) {
    struct model_ctx *c = vc;
    const int64_t pos = infer_pos(c->st);
    if (pos >= c->pos_max)
        return lc_errorf(LC_EINVAL, "bench model decode: more than %d repeats (the state has room for that many tokens)",
                         MODEL_BENCH_DECODE_ROOM);
    return model_decode_step(&c->m, c->st, c->tok[pos % c->L], c->lg);
}

static void model_destroy_ctx(void *vc) {
    struct model_ctx *c = vc;
    if (!c) return;
    infer_destroy(c->st);
    model_destroy(&c->m);
    free(c->tok);
    free(c->lg);
    free(c);
}

/* FLOPs and bytes per run (see the header). */
static void model_work(const struct model_ctx *c, double *flops, double *bytes) {
    const lc_config *g = &c->m.cfg;
    const double L = (double)c->L, ab = (double)c->m.be->act_bytes;
    const double dense_params = (double)c->m.n_params - (double)g->vocab * g->d * (g->tied_embeddings ? 1 : 2);
    const double adh = (double)(g->attn_dh ? g->attn_dh : (g->attn_heads ? g->d / g->attn_heads : 0));
    const double hdh = (double)(g->dh ? g->dh : (g->HQ ? g->d / g->HQ : 0));
    double per_tok = 2.0 * dense_params + 2.0 * g->d * g->vocab / (c->decode ? 1.0 : L); /* head: last token only */
    double pairs = 0, state_bytes = 0;
    for (int i = 0; i < g->n_layers; i++) {
        switch (g->layers[i].kind) {
        case LC_LAYER_SWA:
            pairs += 4.0 * g->attn_heads * adh * (double)(g->W + 1) * (c->decode ? 1.0 : L);
            state_bytes += 2.0 * (double)g->W * g->attn_kv_heads * adh * ab;
            break;
        case LC_LAYER_DENSE:
            pairs += 4.0 * g->attn_heads * adh * (c->decode ? L : L * (L + 1) / 2);
            state_bytes += 2.0 * L * g->attn_kv_heads * adh * ab;
            break;
        case LC_LAYER_CHUNK: {
            const double edh = (double)(g->enc_dh ? g->enc_dh : g->d / g->enc_heads);
            pairs += c->decode ? 0 : 4.0 * g->enc_heads * edh * (double)(g->S + 1) * L * g->enc_layers;
            break;
        }
        case LC_LAYER_RETRIEVAL: {
            const double C = L / (double)g->S;
            pairs += 2.0 * g->d_r * (c->decode ? C : C * L / 2);
            state_bytes += C * g->d_r * ab;
            break;
        }
        case LC_LAYER_HSA:
            pairs += 4.0 * g->HQ * hdh * (double)g->S * g->K * (c->decode ? 1.0 : L);
            state_bytes += 2.0 * (double)g->S * g->K * g->H * hdh * ab;
            break;
        default: break;
        }
    }
    *flops = per_tok * (c->decode ? 1.0 : L) + pairs;
    const double wbytes = (double)c->m.n_params * ab;
    *bytes = c->decode ? wbytes + state_bytes : wbytes * (L / seg_of(c->L)) + L * g->d * ab * 2;
}

static lc_status model_make(const struct bench_point *p, struct bench_case *out) {
    lc_config cfg;
    LC_TRY(check_point(p, &cfg));
    const struct backend *be = p->backend == BENCH_CUDA ? backend_cuda() : backend_cpu();
    if (!be) return lc_errorf(LC_EUNSUPPORTED, "bench %s: %s", p->mixer, lc_last_error());
    struct model_ctx *c = calloc(1, sizeof *c);
    if (!c) return lc_errorf(LC_ENOMEM, "bench %s: out of host memory", p->mixer);
    c->L = p->L;
    c->decode = !strcmp(p->direction, "decode");
    lc_status s = model_create(&c->m, &cfg, be, 1);
    if (s != LC_OK) {
        free(c);
        return s;
    }
    const int64_t max_len = c->L + (c->decode ? MODEL_BENCH_DECODE_ROOM : 0);
    c->pos_max = max_len;
    c->tok = malloc(sizeof(int32_t) * (size_t)c->L);
    c->lg = malloc(sizeof(float) * (size_t)cfg.vocab);
    if (!c->tok || !c->lg) s = lc_errorf(LC_ENOMEM, "bench %s: out of host memory for %lld tokens", p->mixer, (long long)c->L);
    if (s == LC_OK) {
        lc_rng r;
        lc_rng_seed(&r, 1234 + (uint64_t)c->L);
        for (int64_t i = 0; i < c->L; i++) c->tok[i] = (int32_t)lc_rng_below(&r, (uint64_t)cfg.vocab);
        s = infer_create(&c->st, &c->m, max_len, seg_of(c->L), 0);
    }
    if (s == LC_OK && c->decode) s = model_prefill_last(&c->m, c->st, c->tok, c->L, c->lg);
    if (s != LC_OK) {
        model_destroy_ctx(c);
        return s;
    }
    memset(out, 0, sizeof *out);
    out->ctx = c;
    out->run = c->decode ? run_decode : run_prefill;
    out->destroy = model_destroy_ctx;
    model_work(c, &out->flops, &out->bytes);
    int64_t need = 0;
    infer_bytes(&c->m, max_len, seg_of(c->L), &need);
    /* master + gradient (fp32) and, on cuda, the act copy of the weights (cpu: the master itself) */
    out->alloc_bytes = (size_t)need + (size_t)c->m.n_params * (8 + (be->is_cuda ? be->act_bytes : 0));
    return LC_OK;
}

static const struct bench_family families[] = {
    {"model_swa_hsa", model_predict, model_make},
    {"model_dense", model_predict, model_make},
    {"model_mamba", model_predict, model_make},
};

const struct bench_family *bench_families_model(int *n) {
    *n = (int)(sizeof families / sizeof families[0]);
    return families;
}
