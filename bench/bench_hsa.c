/* bench_hsa.c — benchmark family for HSA (mixers "hsa_retrieve", "hsa_attend", "hsa_attend_rand",
 * "hsa_attend_pool";
 * backends CPU = the C reference in fp32, CUDA = kernels/hsa.cu in bf16). Point fields: B, L, HQ,
 * H, dh, S, K, dr; Hr = H (one retrieval head per KV head), block_q = 1, softmax weights.
 *
 *  hsa_retrieve     (fwd)  scores of every row against every visible landmark + top-k + sort.
 *                   FLOPs 2*B*Hr*dr*sum_r visible(r); bytes: q_r, landmarks in, idx, score out.
 *  hsa_attend       (fwd | bwd | fwdbwd) chunk attention at given idx/w.  FLOPs 4*B*L*HQ*K*S*dh
 *                   forward (all K slots counted), backward 2.5x, fwdbwd 3.5x. Bytes: inputs read
 *                   once, outputs written once (q, k, v, idx, w in; o, lse out; backward adds dout
 *                   in and dq, dk, dv, dw out) — K/V counted once although gathers re-read chunks.
 *  Index pattern of hsa_attend: token t keeps token t-1's chunk set except that each slot is
 *  replaced by a uniformly random visible chunk with probability 1/8 (neighbouring tokens share
 *  about 7/8 of their chunks; a drifting set, an assumption of this harness);
 *  hsa_attend_rand draws every token's K chunks uniformly at random (no overlap: worst case for
 *  chunk reuse); hsa_attend_pool follows the overlap statistics measured on a trained model
 *  (hsa.md Appendix A, M = 16 token blocks, K = 32: a block's union is ~3.2 K chunks and 92.8% of
 *  them already appear in the previous block): a pool of ceil(3.2 K) chunks, each member replaced
 *  by a random visible chunk with probability 0.072/16 per token, every token taking a random K of
 *  the pool. All are sorted by chunk id descending as retrieval produces them.
 * "bwd" runs the backward alone (the forward runs once in make to provide lse).
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "device.h"
#include "hsa.h"

enum dir { DIR_FWD, DIR_BWD, DIR_FWDBWD };
enum kind { KIND_RETRIEVE, KIND_ATTEND, KIND_ATTEND_RAND, KIND_ATTEND_POOL };

struct hsa_ctx {
    struct hsa_shape s;
    int kind, dir, backend;
    void *qr, *lmk, *q, *k, *v, *o, *g, *dq, *dk, *dv, *ws; /* float* (CPU) or bf16_t* (CUDA) */
    int32_t *idx;
    float *score, *w, *lse, *dw;
};

static int parse_dir(const char *d) {
    if (!strcmp(d, "fwd")) return DIR_FWD;
    if (!strcmp(d, "bwd")) return DIR_BWD;
    if (!strcmp(d, "fwdbwd")) return DIR_FWDBWD;
    return -1;
}

static struct hsa_shape point_shape(const struct bench_point *p) {
    struct hsa_shape s;
    memset(&s, 0, sizeof s);
    s.B = p->B, s.L = p->L, s.HQ = p->HQ, s.H = p->H, s.dh = p->dh, s.S = p->S, s.K = p->K;
    s.Hr = p->H, s.dr = p->dr > 0 ? p->dr : 64, s.block_q = 1;
    s.weighting = HSA_SOFTMAX;
    return s;
}

/* sum over rows of the visible chunk count (block_q = 1): sum_t min(C, t/S) */
static double visible_pairs(const struct hsa_shape *s) {
    double tot = 0;
    const int64_t C = hsa_num_chunks(s);
    for (int64_t c = 1; c <= C; c++) { /* rows seeing >= c chunks: t >= c*S */
        int64_t first = c * s->S;
        if (first < s->L) tot += (double)(s->L - first);
    }
    return tot;
}

static size_t n_of(const struct hsa_shape *s, char what) {
    switch (what) {
    case 'r': return (size_t)(s->B * hsa_num_rows(s) * s->Hr * s->dr);
    case 'l': return (size_t)(s->B * (hsa_num_chunks(s) > 0 ? hsa_num_chunks(s) : 1) * s->Hr * s->dr);
    case 'q': return (size_t)(s->B * s->L * s->HQ * s->dh);
    case 'k': return (size_t)(s->B * s->L * s->H * s->dh);
    case 'i': return (size_t)(s->B * hsa_num_rows(s) * s->Hr * s->K);
    default: return (size_t)(s->B * s->L * s->HQ * s->K); /* lse */
    }
}

static size_t predict(const struct bench_point *p) {
    struct hsa_shape s = point_shape(p);
    const int retr = !strcmp(p->mixer, "hsa_retrieve");
    const size_t e = p->backend == BENCH_CUDA ? 2 : 4;
    if (retr) return e * (n_of(&s, 'r') + n_of(&s, 'l')) + 8 * n_of(&s, 'i');
    size_t b = e * (4 * n_of(&s, 'q') + 4 * n_of(&s, 'k')) + 4 * 4 * n_of(&s, 'i') + 4 * n_of(&s, 'L');
#if LC_CUDA
    if (p->backend == BENCH_CUDA && strcmp(p->direction, "fwd") != 0) b += hsa_attend_backward_workspace_cuda(&s);
#endif
    return b;
}

static void ctx_free(struct hsa_ctx *c) {
    void *ps[16] = {c->qr, c->lmk, c->q, c->k, c->v, c->o, c->g, c->dq, c->dk, c->dv, c->ws,
                    c->idx, c->score, c->w, c->lse, c->dw};
    for (int i = 0; i < 16; i++) {
        if (c->backend == BENCH_CUDA) lc_cuda_free(ps[i]);
        else free(ps[i]);
    }
    free(c);
}
static void destroy(void *ctx) { ctx_free(ctx); }

static lc_status run(void *ctx) {
    struct hsa_ctx *c = ctx;
    const struct hsa_shape *s = &c->s;
    if (c->backend == BENCH_CPU) {
        if (c->kind == KIND_RETRIEVE) return hsa_retrieve_ref(s, c->qr, c->lmk, c->idx, c->score);
        if (c->dir != DIR_BWD) LC_TRY(hsa_attend_forward_ref(s, c->q, c->k, c->v, c->idx, c->w, c->o, c->lse));
        if (c->dir != DIR_FWD)
            LC_TRY(hsa_attend_backward_ref(s, c->q, c->k, c->v, c->idx, c->w, c->lse, c->g, c->dq, c->dk, c->dv, c->dw));
        return LC_OK;
    }
#if LC_CUDA
    if (c->kind == KIND_RETRIEVE) return hsa_retrieve_cuda(s, c->qr, c->lmk, c->idx, c->score, c->ws, NULL);
    if (c->dir != DIR_BWD) LC_TRY(hsa_attend_forward_cuda(s, c->q, c->k, c->v, c->idx, c->w, c->o, c->lse, NULL));
    if (c->dir != DIR_FWD)
        LC_TRY(hsa_attend_backward_cuda(s, c->q, c->k, c->v, c->idx, c->w, c->lse, c->g, c->dq, c->dk, c->dv, c->dw,
                                        c->ws, NULL));
    return LC_OK;
#else
    return lc_errorf(LC_EUNSUPPORTED, "hsa bench: this build has no CUDA backend");
#endif
}

/* Host index pattern (see the header comment); w = softmax-like positive weights. */
static void make_indices(const struct hsa_shape *s, int random_sets, int32_t *idx, float *w) {
    const int64_t K = s->K, Lr = hsa_num_rows(s);
    lc_rng r;
    lc_rng_seed(&r, 99);
    int64_t *cur = malloc(sizeof(int64_t) * (size_t)K);
    for (int64_t bh = 0; bh < s->B * s->Hr; bh++) {
        int64_t n = 0; /* current set: sorted descending, distinct */
        const int64_t b = bh / s->Hr, hr = bh % s->Hr;
        for (int64_t t = 0; t < Lr; t++) {
            const int64_t nv = hsa_num_visible(s, t), want = nv < K ? nv : K;
            if (random_sets) n = 0;
            if (nv <= K) { /* everything visible is selected */
                n = nv;
                for (int64_t k = 0; k < n; k++) cur[k] = nv - 1 - k;
            }
            for (int64_t k = 0; k < n && nv > K && !random_sets; k++)
                if (lc_rng_below(&r, 8) == 0) { /* drop slot k; refilled below */
                    memmove(cur + k, cur + k + 1, sizeof(int64_t) * (size_t)(n - k - 1));
                    n--;
                    k--;
                }
            while (n < want) { /* add random visible chunks not in the set */
                int64_t c = (int64_t)lc_rng_below(&r, (uint64_t)nv);
                int64_t pos = 0, dup = 0;
                while (pos < n && cur[pos] >= c) {
                    if (cur[pos] == c) dup = 1;
                    pos++;
                }
                if (dup) continue;
                memmove(cur + pos + 1, cur + pos, sizeof(int64_t) * (size_t)(n - pos));
                cur[pos] = c;
                n++;
            }
            int32_t *io = idx + ((b * Lr + t) * s->Hr + hr) * K;
            float *wo = w + ((b * Lr + t) * s->Hr + hr) * K;
            for (int64_t k = 0; k < K; k++) {
                io[k] = k < n ? (int32_t)cur[k] : 0;
                wo[k] = k < n ? 1.0f / (float)n : 0.0f;
            }
        }
    }
    free(cur);
}

/* Fill n bf16 (CUDA) values by repeating one random host block: fast at any size. */
#if LC_CUDA
static lc_status fill_dev_bf16(void *d, size_t n, uint64_t seed) {
    const size_t blk = n < ((size_t)1 << 22) ? n : ((size_t)1 << 22);
    float *f = malloc(sizeof(float) * (blk ? blk : 1));
    bf16_t *h = malloc(sizeof(bf16_t) * (blk ? blk : 1));
    if (!f || !h) {
        free(f), free(h);
        return lc_errorf(LC_ENOMEM, "hsa bench: host fill buffer");
    }
    lc_rng r;
    lc_rng_seed(&r, seed);
    lc_fill_normal(&r, f, blk, 1.0f);
    f32_to_bf16_array(f, h, blk);
    lc_status st = LC_OK;
    for (size_t o = 0; o < n && st == LC_OK; o += blk) {
        size_t m = n - o < blk ? n - o : blk;
        st = lc_cuda_memcpy_h2d((bf16_t *)d + o, h, m * sizeof(bf16_t));
    }
    free(f), free(h);
    return st;
}
#endif

/* the pool pattern (see the header comment) */
static void make_indices_pool(const struct hsa_shape *s, int32_t *idx, float *w) {
    const int64_t K = s->K, Lr = hsa_num_rows(s), P = (32 * K + 9) / 10;
    lc_rng r;
    lc_rng_seed(&r, 77);
    int64_t *pool = malloc(sizeof(int64_t) * (size_t)P), *pick = malloc(sizeof(int64_t) * (size_t)P);
    for (int64_t bh = 0; bh < s->B * s->Hr; bh++) {
        const int64_t b = bh / s->Hr, hr = bh % s->Hr;
        int64_t np = 0, nv_prev = -1;
        for (int64_t t = 0; t < Lr; t++) {
            const int64_t nv = hsa_num_visible(s, t);
            if (nv <= P) { /* the pool is everything visible */
                if (nv != nv_prev)
                    for (np = 0; np < nv; np++) pool[np] = np;
            } else {
                if (np < P) /* grow to P with distinct random chunks */
                    while (np < P) {
                        int64_t c = (int64_t)lc_rng_below(&r, (uint64_t)nv), dup = 0;
                        for (int64_t i = 0; i < np; i++) dup |= pool[i] == c;
                        if (!dup) pool[np++] = c;
                    }
                for (int64_t i = 0; i < np; i++)
                    if (lc_rng_uniform(&r) < 0.072 / 16.0) {
                        int64_t c = (int64_t)lc_rng_below(&r, (uint64_t)nv), dup = 0;
                        for (int64_t m = 0; m < np; m++) dup |= pool[m] == c;
                        if (!dup) pool[i] = c;
                    }
            }
            nv_prev = nv;
            const int64_t n = np < K ? np : K;
            for (int64_t i = 0; i < np; i++) pick[i] = pool[i];
            for (int64_t i = 0; i < n; i++) { /* partial Fisher-Yates: a random n-subset */
                int64_t j = i + (int64_t)lc_rng_below(&r, (uint64_t)(np - i));
                int64_t x = pick[i];
                pick[i] = pick[j], pick[j] = x;
            }
            for (int64_t i = 1; i < n; i++) /* sort descending */
                for (int64_t m = i; m > 0 && pick[m] > pick[m - 1]; m--) {
                    int64_t x = pick[m];
                    pick[m] = pick[m - 1], pick[m - 1] = x;
                }
            int32_t *io = idx + ((b * Lr + t) * s->Hr + hr) * K;
            float *wo = w + ((b * Lr + t) * s->Hr + hr) * K;
            for (int64_t k = 0; k < K; k++) {
                io[k] = k < n ? (int32_t)pick[k] : 0;
                wo[k] = k < n ? 1.0f / (float)n : 0.0f;
            }
        }
    }
    free(pool), free(pick);
}

static lc_status make_kind(const struct bench_point *p, struct bench_case *out, int kind) {
    struct hsa_shape s = point_shape(p);
    LC_TRY(hsa_check(&s));
    const int dir = parse_dir(p->direction);
    if (dir < 0 || (kind == KIND_RETRIEVE && dir != DIR_FWD))
        return lc_errorf(LC_EUNSUPPORTED, "bench %s: direction '%s' not supported", p->mixer, p->direction);
    if (p->backend == BENCH_CUDA && !lc_cuda_built())
        return lc_errorf(LC_EUNSUPPORTED, "bench %s: this build has no CUDA backend", p->mixer);
    struct hsa_ctx *c = lc_calloc(1, sizeof *c, "hsa bench context");
    if (!c) return LC_ENOMEM;
    c->s = s, c->kind = kind, c->dir = dir, c->backend = p->backend;
    const size_t nr = n_of(&s, 'r'), nl = n_of(&s, 'l'), nq = n_of(&s, 'q'), nk = n_of(&s, 'k'), ni = n_of(&s, 'i'),
                 nlse = n_of(&s, 'L');
    const size_t e = p->backend == BENCH_CUDA ? 2 : 4;
    lc_status st = LC_OK;
    int32_t *hidx = NULL;
    float *hw = NULL;
#define ALLOC(ptr, bytes)                                                                                   \
    do {                                                                                                    \
        if (st == LC_OK) {                                                                                  \
            ptr = p->backend == BENCH_CUDA ? lc_cuda_malloc((bytes), "hsa bench tensor") : lc_malloc((bytes), "hsa bench tensor"); \
            if (!ptr) st = LC_ENOMEM;                                                                       \
        }                                                                                                   \
    } while (0)
    if (kind == KIND_RETRIEVE) {
        ALLOC(c->qr, e * nr);
        ALLOC(c->lmk, e * nl);
        ALLOC(c->idx, 4 * ni);
        ALLOC(c->score, 4 * ni);
    } else {
        ALLOC(c->q, e * nq);
        ALLOC(c->k, e * nk);
        ALLOC(c->v, e * nk);
        ALLOC(c->o, e * nq);
        ALLOC(c->idx, 4 * ni);
        ALLOC(c->w, 4 * ni);
        ALLOC(c->lse, 4 * nlse);
        if (dir != DIR_FWD) {
            ALLOC(c->g, e * nq);
            ALLOC(c->dq, e * nq);
            ALLOC(c->dk, e * nk);
            ALLOC(c->dv, e * nk);
            ALLOC(c->dw, 4 * ni);
#if LC_CUDA
            if (p->backend == BENCH_CUDA) ALLOC(c->ws, hsa_attend_backward_workspace_cuda(&s));
#endif
        }
        if (st == LC_OK) {
            hidx = lc_malloc(4 * ni, "hsa bench idx");
            hw = lc_malloc(4 * ni, "hsa bench w");
            if (!hidx || !hw) st = LC_ENOMEM;
            else if (kind == KIND_ATTEND_POOL) make_indices_pool(&s, hidx, hw);
            else make_indices(&s, kind == KIND_ATTEND_RAND, hidx, hw);
        }
    }
#undef ALLOC
    if (st == LC_OK && p->backend == BENCH_CPU) {
        lc_rng r;
        lc_rng_seed(&r, 1234);
        if (kind == KIND_RETRIEVE) {
            lc_fill_normal(&r, c->qr, nr, 1.0f);
            lc_fill_normal(&r, c->lmk, nl, 1.0f);
        } else {
            lc_fill_normal(&r, c->q, nq, 1.0f);
            lc_fill_normal(&r, c->k, nk, 1.0f);
            lc_fill_normal(&r, c->v, nk, 1.0f);
            if (c->g) lc_fill_normal(&r, c->g, nq, 1.0f);
            memcpy(c->idx, hidx, 4 * ni);
            memcpy(c->w, hw, 4 * ni);
            if (dir == DIR_BWD) st = hsa_attend_forward_ref(&s, c->q, c->k, c->v, c->idx, c->w, c->o, c->lse);
        }
    } else if (st == LC_OK) {
#if LC_CUDA
        if (kind == KIND_RETRIEVE) {
            st = fill_dev_bf16(c->qr, nr, 1);
            if (st == LC_OK) st = fill_dev_bf16(c->lmk, nl, 2);
        } else {
            st = fill_dev_bf16(c->q, nq, 3);
            if (st == LC_OK) st = fill_dev_bf16(c->k, nk, 4);
            if (st == LC_OK) st = fill_dev_bf16(c->v, nk, 5);
            if (st == LC_OK && c->g) st = fill_dev_bf16(c->g, nq, 6);
            if (st == LC_OK) st = lc_cuda_memcpy_h2d(c->idx, hidx, 4 * ni);
            if (st == LC_OK) st = lc_cuda_memcpy_h2d(c->w, hw, 4 * ni);
            if (st == LC_OK && dir == DIR_BWD)
                st = hsa_attend_forward_cuda(&s, c->q, c->k, c->v, c->idx, c->w, c->o, c->lse, NULL);
        }
        if (st == LC_OK) st = lc_cuda_sync();
#endif
    }
    free(hidx);
    free(hw);
    if (st != LC_OK) {
        ctx_free(c);
        return st;
    }
    double flops, bytes;
    if (kind == KIND_RETRIEVE) {
        flops = 2.0 * (double)s.B * (double)s.Hr * (double)s.dr * visible_pairs(&s);
        bytes = (double)e * (double)(nr + nl) + 8.0 * (double)ni;
    } else {
        const double f = 4.0 * (double)s.B * (double)s.L * (double)s.HQ * (double)s.K * (double)s.S * (double)s.dh;
        const double in_f = (double)e * (double)(nq + 2 * nk) + 8.0 * (double)ni; /* q k v idx w */
        const double lse_b = 4.0 * (double)nlse, q_b = (double)e * (double)nq;
        if (dir == DIR_FWD) flops = f, bytes = in_f + q_b + lse_b;
        else if (dir == DIR_BWD) flops = 2.5 * f, bytes = in_f + lse_b + q_b + q_b + (double)e * 2.0 * (double)nk + 4.0 * (double)ni;
        else flops = 3.5 * f, bytes = in_f + q_b + q_b + lse_b + q_b + (double)e * 2.0 * (double)nk + 4.0 * (double)ni;
    }
    out->ctx = c;
    out->run = run;
    out->destroy = destroy;
    out->flops = flops;
    out->bytes = bytes;
    out->alloc_bytes = predict(p);
    return LC_OK;
}

static lc_status make_retrieve(const struct bench_point *p, struct bench_case *c) { return make_kind(p, c, KIND_RETRIEVE); }
static lc_status make_attend(const struct bench_point *p, struct bench_case *c) { return make_kind(p, c, KIND_ATTEND); }
static lc_status make_attend_rand(const struct bench_point *p, struct bench_case *c) { return make_kind(p, c, KIND_ATTEND_RAND); }
static lc_status make_attend_pool(const struct bench_point *p, struct bench_case *c) { return make_kind(p, c, KIND_ATTEND_POOL); }

static const struct bench_family families[] = {
    {"hsa_retrieve", predict, make_retrieve},
    {"hsa_attend", predict, make_attend},
    {"hsa_attend_rand", predict, make_attend_rand},
    {"hsa_attend_pool", predict, make_attend_pool},
};

const struct bench_family *bench_families_hsa(int *n) {
    *n = (int)(sizeof families / sizeof families[0]);
    return families;
}
