/* bench_attention.c — benchmark family for dense causal and sliding-window attention
 * (mixers "dense" and "swa"; directions fwd, bwd, fwdbwd; backends CPU = the C reference in fp32,
 * CUDA = kernels/attention.cu in bf16).
 *
 * FLOPs (FlashAttention convention): forward 4 * B * HQ * dh * pairs, pairs = attended
 * (query, key) pairs (attention_pairs: ~L^2/2 causal dense, ~L*(W+1) windowed); backward 2.5x the
 * forward; fwdbwd 3.5x. Bytes: inputs read once and outputs written once —
 * fwd: q, k, v in, o, lse out; bwd: q, k, v, o, lse, dout in, dq, dk, dv out;
 * fwdbwd: q, k, v, dout in, o, lse, dq, dk, dv out.
 * "bwd" runs the backward alone (the forward runs once in make to provide o and lse).
 */
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "bench.h"
#include "device.h"

enum dir { DIR_FWD, DIR_BWD, DIR_FWDBWD };

struct attn_ctx {
    struct attn_shape s;
    int dir, backend;
    void *q, *k, *v, *o, *g, *dq, *dk, *dv, *ws; /* float* (CPU) or bf16_t* (CUDA) */
    float *lse;
};

static int parse_dir(const char *d) {
    if (!strcmp(d, "fwd")) return DIR_FWD;
    if (!strcmp(d, "bwd")) return DIR_BWD;
    if (!strcmp(d, "fwdbwd")) return DIR_FWDBWD;
    return -1;
}

static struct attn_shape point_shape(const struct bench_point *p) {
    struct attn_shape s = {p->B, p->L, p->HQ, p->H, p->dh, p->W, 1, 0, 0, 0};
    return s;
}

static lc_status check_point(const struct bench_point *p, int swa) {
    struct attn_shape s = point_shape(p);
    LC_TRY(attention_check(&s));
    if (swa && p->W <= 0) return lc_errorf(LC_EINVAL, "bench %s: W = %lld must be > 0 for swa", p->mixer, (long long)p->W);
    if (!swa && p->W != 0) return lc_errorf(LC_EINVAL, "bench %s: W = %lld must be 0 for dense", p->mixer, (long long)p->W);
    if (parse_dir(p->direction) < 0)
        return lc_errorf(LC_EUNSUPPORTED, "bench %s: direction '%s' not supported (fwd, bwd, fwdbwd)", p->mixer, p->direction);
    if (p->backend == BENCH_CUDA) {
        if (!lc_cuda_built()) return lc_errorf(LC_EUNSUPPORTED, "bench %s: this build has no CUDA backend", p->mixer);
        LC_TRY(attention_cuda_supported(&s));
    } else if (p->backend != BENCH_CPU) {
        return lc_errorf(LC_EINVAL, "bench %s: unknown backend %d", p->mixer, p->backend);
    }
    return LC_OK;
}

static size_t predict(const struct bench_point *p) {
    const size_t nq = (size_t)(p->B * p->L * p->HQ * p->dh), nk = (size_t)(p->B * p->L * p->H * p->dh);
    const size_t nl = (size_t)(p->B * p->HQ * p->L);
    if (p->backend != BENCH_CUDA) return 4 * (4 * nq + 4 * nk + nl); /* q o g dq, k v dk dv, lse */
#if !LC_CUDA
    return 2 * (4 * nq + 4 * nk) + 4 * nl;
#else
    struct attn_shape s = point_shape(p);
    /* every tensor is allocated whatever the direction (simpler, and never an under-estimate) */
    return 2 * (4 * nq + 4 * nk) + 4 * nl + attention_backward_workspace_cuda(&s);
#endif
}

static void ctx_free(struct attn_ctx *c) {
    void *ps[10] = {c->q, c->k, c->v, c->o, c->g, c->dq, c->dk, c->dv, c->ws, c->lse};
    for (int i = 0; i < 10; i++) {
        if (c->backend == BENCH_CUDA) lc_cuda_free(ps[i]);
        else free(ps[i]);
    }
    free(c);
}

static void destroy(void *ctx) { ctx_free(ctx); }

static lc_status run_cpu(struct attn_ctx *c) {
    if (c->dir != DIR_BWD) LC_TRY(attention_forward_ref(&c->s, c->q, c->k, c->v, c->o, c->lse));
    if (c->dir != DIR_FWD) LC_TRY(attention_backward_ref(&c->s, c->q, c->k, c->v, c->o, c->lse, c->g, c->dq, c->dk, c->dv));
    return LC_OK;
}

static lc_status run_cuda(struct attn_ctx *c) {
#if !LC_CUDA
    (void)c;
    return lc_errorf(LC_EUNSUPPORTED, "attention bench: this build has no CUDA backend");
#else
    if (c->dir != DIR_BWD) LC_TRY(attention_forward_cuda(&c->s, c->q, c->k, c->v, c->o, c->lse, NULL));
    if (c->dir != DIR_FWD)
        LC_TRY(attention_backward_cuda(&c->s, c->q, c->k, c->v, c->o, c->lse, c->g, c->dq, c->dk, c->dv, c->ws, NULL));
    return LC_OK;
#endif
}

static lc_status run(void *ctx) {
    struct attn_ctx *c = ctx;
    return c->backend == BENCH_CUDA ? run_cuda(c) : run_cpu(c);
}

static lc_status make(const struct bench_point *p, struct bench_case *out, int swa) {
    LC_TRY(check_point(p, swa));
    struct attn_ctx *c = lc_calloc(1, sizeof *c, "attention bench context");
    if (!c) return LC_ENOMEM;
    c->s = point_shape(p);
    c->dir = parse_dir(p->direction);
    c->backend = p->backend;
    const size_t nq = (size_t)(p->B * p->L * p->HQ * p->dh), nk = (size_t)(p->B * p->L * p->H * p->dh);
    const size_t nl = (size_t)(p->B * p->HQ * p->L);
    lc_status st = LC_OK;
    if (c->backend == BENCH_CPU) {
        size_t sizes[9] = {nq, nk, nk, nq, nq, nq, nk, nk, nl};
        void **ptrs[9] = {&c->q, &c->k, &c->v, &c->o, &c->g, &c->dq, &c->dk, &c->dv, (void **)&c->lse};
        for (int i = 0; i < 9 && st == LC_OK; i++)
            if (!(*ptrs[i] = lc_malloc(4 * sizes[i], "attention bench tensor"))) st = LC_ENOMEM;
        if (st == LC_OK) {
            lc_rng r;
            lc_rng_seed(&r, 1234);
            lc_fill_uniform(&r, c->q, nq, -1, 1);
            lc_fill_uniform(&r, c->k, nk, -1, 1);
            lc_fill_uniform(&r, c->v, nk, -1, 1);
            lc_fill_uniform(&r, c->g, nq, -1, 1);
            if (c->dir == DIR_BWD) st = attention_forward_ref(&c->s, c->q, c->k, c->v, c->o, c->lse);
        }
    } else {
#if LC_CUDA
        size_t sizes[10] = {2 * nq, 2 * nk, 2 * nk, 2 * nq, 2 * nq, 2 * nq, 2 * nk, 2 * nk, 4 * nl,
                            attention_backward_workspace_cuda(&c->s)};
        void **ptrs[10] = {&c->q, &c->k, &c->v, &c->o, &c->g, &c->dq, &c->dk, &c->dv, (void **)&c->lse, &c->ws};
        for (int i = 0; i < 10 && st == LC_OK; i++)
            if (!(*ptrs[i] = lc_cuda_malloc(sizes[i], "attention bench tensor"))) st = LC_ENOMEM;
        if (st == LC_OK) st = attention_fill_random_cuda(c->q, nq, 1, 1.0f, NULL);
        if (st == LC_OK) st = attention_fill_random_cuda(c->k, nk, 2, 1.0f, NULL);
        if (st == LC_OK) st = attention_fill_random_cuda(c->v, nk, 3, 1.0f, NULL);
        if (st == LC_OK) st = attention_fill_random_cuda(c->g, nq, 4, 1.0f, NULL);
        if (st == LC_OK && c->dir == DIR_BWD) st = attention_forward_cuda(&c->s, c->q, c->k, c->v, c->o, c->lse, NULL);
        if (st == LC_OK) st = lc_cuda_sync();
#else
        st = lc_errorf(LC_EUNSUPPORTED, "attention bench: this build has no CUDA backend");
#endif
    }
    if (st != LC_OK) {
        ctx_free(c);
        return st;
    }
    const double f = 4.0 * (double)p->B * (double)p->HQ * (double)p->dh * attention_pairs(&c->s);
    const double bq = (double)nq, bk = (double)nk, bl = 4.0 * (double)nl;
    const double e = p->backend == BENCH_CUDA ? 2 : 4; /* bytes per q/k/v element */
    out->ctx = c;
    out->run = run;
    out->destroy = destroy;
    out->alloc_bytes = predict(p);
    if (c->dir == DIR_FWD) {
        out->flops = f;
        out->bytes = e * (2 * bq + 2 * bk) + bl;
    } else if (c->dir == DIR_BWD) {
        out->flops = 2.5 * f;
        out->bytes = e * (3 * bq + 2 * bk) + bl + e * (bq + 2 * bk);
    } else {
        out->flops = 3.5 * f;
        out->bytes = e * (2 * bq + 2 * bk) + e * (2 * bq + 2 * bk) + bl;
    }
    return LC_OK;
}

static lc_status make_dense(const struct bench_point *p, struct bench_case *c) { return make(p, c, 0); }
static lc_status make_swa(const struct bench_point *p, struct bench_case *c) { return make(p, c, 1); }

static const struct bench_family families[2] = {
    {"dense", predict, make_dense},
    {"swa", predict, make_swa},
};

const struct bench_family *bench_families_attention(int *n) {
    *n = 2;
    return families;
}
