/* bench_mamba.c — benchmark family for the Mamba-2 mixer (mixers "mamba_conv" and "mamba_scan";
 * directions fwd, fwdbwd, decode; backends CPU = the C reference in fp32, CUDA = kernels/mamba.cu
 * with bf16 activations).
 *
 * Point fields (bench.h): B, L, HQ = heads, dh = head dim P, H = ngroups G, N = state size.
 * mamba_conv runs the conv of a Mamba-2 block: Cch = HQ*dh + 2*H*N channels (x, B and C go
 * through it), width K (0 -> 4). Decode points take one token (L is ignored).
 *
 * Bytes are the minimal bytes (each input read once, each output written once):
 *   scan fwd     x, z, Bm, Cm, dt in; y, hT out
 *   scan fwdbwd  fwd + (x, z, dy, Bm, Cm, dt, dhT in; dx, dz, ddt, dBm, dCm (fp32), dh0 out)
 *   scan decode  x, z, dt, Bm, Cm, state in; y, state out
 *   conv fwd     x, tail in; y, tail out (+ weights); fwdbwd adds x, dy in, dx out; decode one token.
 * FLOPs (the recurrence's): scan fwd 4*B*L*H*P*N, fwdbwd 12*B*L*H*P*N; conv 2*Kw per element.
 *
 * Long points on CUDA (L > MAMBA_BENCH_SEG = 2^22 tokens; fwdbwd of the scan: > 2^20, its six
 * bf16 activations of 2^22 tokens would not fit in 80 GB) run in segments that reuse one buffer
 * set, carrying the state between segments (scan hT -> h0, conv tail_out -> tail_in): the way a
 * sequence longer than memory is prefilled. The scan's fwdbwd runs every segment's forward in
 * order (keeping each segment's incoming state), then the backwards in reverse order with dh
 * carried (dh0 of segment k+1 -> dhT of segment k), as a trainer that recomputes activations per
 * segment would. Time and bytes cover all L tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "device.h"
#include "mamba.h"

#define MAMBA_BENCH_SEG ((int64_t)1 << 22)
#define MAMBA_BENCH_SEG_BWD ((int64_t)1 << 20)

enum dir { DIR_FWD, DIR_FWDBWD, DIR_DECODE };
enum { T_X, T_Z, T_Y, T_DY, T_DX, T_DZ, T_BM, T_CM, T_DB, T_DC, T_DT, T_DDT, T_H0, T_HT, T_DHT, T_DH0, T_PAR, T_DPAR,
       T_WS, T_TAIL_A, T_TAIL_B, T_N };

struct mamba_ctx {
    int conv, dir, backend;
    int64_t seg, nseg; /* tokens per segment, segments */
    struct mamba_scan_shape s;
    struct mamba_conv_shape cs;
    void *t[T_N];
    size_t bytes[T_N];
};

static int parse_dir(const char *d) {
    if (!strcmp(d, "fwd")) return DIR_FWD;
    if (!strcmp(d, "fwdbwd")) return DIR_FWDBWD;
    if (!strcmp(d, "decode")) return DIR_DECODE;
    return -1;
}

/* Sizes in bytes of every buffer make() allocates for this point (0 = not allocated). */
static lc_status plan(const struct bench_point *p, int conv, struct mamba_ctx *c) {
    memset(c, 0, sizeof *c);
    c->conv = conv;
    c->dir = parse_dir(p->direction);
    c->backend = p->backend;
    if (c->dir < 0)
        return lc_errorf(LC_EUNSUPPORTED, "bench %s: direction '%s' not supported (fwd, fwdbwd, decode)", p->mixer, p->direction);
    if (p->backend != BENCH_CPU && p->backend != BENCH_CUDA)
        return lc_errorf(LC_EINVAL, "bench %s: unknown backend %d", p->mixer, p->backend);
    if (p->backend == BENCH_CUDA && !lc_cuda_built())
        return lc_errorf(LC_EUNSUPPORTED, "bench %s: this build has no CUDA backend", p->mixer);
    const int64_t L = c->dir == DIR_DECODE ? 1 : p->L;
    const int64_t segmax = !conv && c->dir == DIR_FWDBWD ? MAMBA_BENCH_SEG_BWD : MAMBA_BENCH_SEG;
    c->seg = (p->backend == BENCH_CUDA && L > segmax) ? segmax : L;
    c->nseg = (L + c->seg - 1) / c->seg;
    if (c->nseg * c->seg != L) return lc_errorf(LC_EUNSUPPORTED, "bench %s: L = %lld must be a multiple of %lld above it", p->mixer, (long long)L, (long long)c->seg);
    struct mamba_scan_shape s = {p->B, c->seg, p->HQ, p->dh, p->H, p->N};
    c->s = s;
    LC_TRY(mamba_check(NULL, &s));
    const size_t e = p->backend == BENCH_CUDA ? 2 : 4;
    const size_t B = (size_t)p->B, Ls = (size_t)c->seg;
    const int fb = c->dir == DIR_FWDBWD;
    if (conv) {
        struct mamba_conv_shape cs = {p->B, c->seg, p->HQ * p->dh + 2 * p->H * p->N, p->K ? p->K : 4};
        c->cs = cs;
        LC_TRY(mamba_check(&cs, NULL));
        const size_t nx = B * Ls * (size_t)cs.Cch, nt = B * (size_t)(cs.Kw - 1) * (size_t)cs.Cch;
        c->bytes[T_X] = e * nx, c->bytes[T_Y] = e * nx;
        c->bytes[T_PAR] = 4 * (size_t)cs.Cch * (size_t)(cs.Kw + 1);
        c->bytes[T_TAIL_A] = e * nt + 4, c->bytes[T_TAIL_B] = e * nt + 4;
        if (fb) c->bytes[T_DY] = e * nx, c->bytes[T_DX] = e * nx, c->bytes[T_DPAR] = c->bytes[T_PAR];
        return LC_OK;
    }
    const size_t nx = B * Ls * (size_t)(s.H * s.P), nbc = B * Ls * (size_t)(s.G * s.N), ndt = B * Ls * (size_t)s.H;
    const size_t ns = B * (size_t)(s.H * s.P * s.N);
    c->bytes[T_X] = e * nx, c->bytes[T_Z] = e * nx, c->bytes[T_Y] = e * nx;
    c->bytes[T_BM] = e * nbc, c->bytes[T_CM] = e * nbc, c->bytes[T_DT] = 4 * ndt;
    c->bytes[T_PAR] = 4 * 3 * (size_t)s.H; /* A, D, dt_bias */
    c->bytes[T_H0] = 4 * ns, c->bytes[T_HT] = 4 * ns;
    if (fb) {
        c->bytes[T_DY] = e * nx, c->bytes[T_DX] = e * nx, c->bytes[T_DZ] = e * nx;
        c->bytes[T_DB] = 4 * nbc, c->bytes[T_DC] = 4 * nbc, c->bytes[T_DDT] = 4 * ndt;
        c->bytes[T_DHT] = 4 * ns, c->bytes[T_DH0] = 4 * ns * 2, c->bytes[T_DPAR] = c->bytes[T_PAR];
        c->bytes[T_H0] = 4 * ns * (size_t)(c->nseg + 1); /* the state entering every segment */
    }
    if (p->backend == BENCH_CUDA && c->dir != DIR_DECODE) {
        if (p->dh == 64 && p->N == 128) (void)0;
        else if (!(p->dh == 32 && p->N == 64))
            return lc_errorf(LC_EUNSUPPORTED, "bench %s: the CUDA scan supports (P, N) = (64, 128) and (32, 64)", p->mixer);
        size_t w0 = mamba_scan_workspace_bytes(&s, 0), w1 = fb ? mamba_scan_workspace_bytes(&s, 1) : 0;
        c->bytes[T_WS] = w0 > w1 ? w0 : w1;
    }
    return LC_OK;
}

static size_t total_bytes(const struct mamba_ctx *c) {
    size_t t = 0;
    for (int i = 0; i < T_N; i++) t += c->bytes[i];
    return t;
}

static size_t predict_impl(const struct bench_point *p, int conv) {
    struct mamba_ctx c;
    if (plan(p, conv, &c) != LC_OK) return 0;
    size_t t = total_bytes(&c);
    /* the CPU reference allocates too: the forward one state (P*N floats), the backward every
     * state ((L+1)*P*N) plus dh and a row */
    if (!conv && c.dir != DIR_DECODE && p->backend == BENCH_CPU) t += 4 * (size_t)(p->dh * p->N);
    if (!conv && c.dir == DIR_FWDBWD && p->backend == BENCH_CPU) t += 4 * (size_t)((p->L + 2) * p->dh * p->N + p->dh);
    return t;
}
static size_t predict_conv(const struct bench_point *p) { return predict_impl(p, 1); }
static size_t predict_scan(const struct bench_point *p) { return predict_impl(p, 0); }

static void destroy(void *ctx) {
    struct mamba_ctx *c = ctx;
    for (int i = 0; i < T_N; i++) {
        if (c->backend == BENCH_CUDA) lc_cuda_free(c->t[i]);
        else free(c->t[i]);
    }
    free(c);
}

#define F(i) ((float *)c->t[i])
#define H16(i) ((bf16_t *)c->t[i])

static lc_status run_conv(struct mamba_ctx *c) {
    const int cuda = c->backend == BENCH_CUDA;
    const struct mamba_conv_shape *s = &c->cs;
    const float *w = F(T_PAR), *bias = F(T_PAR) + s->Cch * s->Kw;
    if (c->dir == DIR_DECODE)
        return cuda ? mamba_conv_decode_cuda(s, c->t[T_X], w, bias, c->t[T_TAIL_A], c->t[T_Y], NULL)
                    : mamba_conv_decode_ref(s, F(T_X), w, bias, F(T_TAIL_A), F(T_Y));
    for (int64_t k = 0; k < c->nseg; k++) {
        void *tin = c->t[k & 1 ? T_TAIL_B : T_TAIL_A], *tout = c->t[k & 1 ? T_TAIL_A : T_TAIL_B];
        if (cuda) LC_TRY(mamba_conv_forward_cuda(s, c->t[T_X], w, bias, tin, c->t[T_Y], tout, NULL));
        else LC_TRY(mamba_conv_forward_ref(s, F(T_X), w, bias, tin, F(T_Y), tout));
        if (c->dir == DIR_FWDBWD) {
            float *dw = F(T_DPAR), *db = F(T_DPAR) + s->Cch * s->Kw;
            if (cuda) LC_TRY(mamba_conv_backward_cuda(s, c->t[T_X], w, bias, tin, c->t[T_DY], NULL, c->t[T_DX], dw, db, NULL, NULL));
            else LC_TRY(mamba_conv_backward_ref(s, F(T_X), w, bias, tin, F(T_DY), NULL, F(T_DX), dw, db, NULL));
        }
    }
    return LC_OK;
}

static lc_status run_scan(struct mamba_ctx *c) {
    const int cuda = c->backend == BENCH_CUDA;
    const struct mamba_scan_shape *s = &c->s;
    const int64_t H = s->H;
    const float *A = F(T_PAR), *D = F(T_PAR) + H, *dtb = F(T_PAR) + 2 * H;
    if (c->dir == DIR_DECODE)
        return cuda ? mamba_scan_decode_cuda(s, c->t[T_X], F(T_DT), dtb, A, c->t[T_BM], c->t[T_CM], D, c->t[T_Z], F(T_H0), c->t[T_Y], NULL)
                    : mamba_scan_decode_ref(s, F(T_X), F(T_DT), dtb, A, F(T_BM), F(T_CM), D, F(T_Z), F(T_H0), F(T_Y));
    if (c->dir == DIR_FWDBWD) {
        const int64_t ns = s->B * s->H * s->P * s->N;
        float *hs = F(T_H0), *db = F(T_DH0), *dA = F(T_DPAR), *dD = F(T_DPAR) + H, *ddtb = F(T_DPAR) + 2 * H;
        for (int64_t k = 0; k < c->nseg; k++) { /* hs + k*ns: the state entering segment k */
            float *h0 = k == 0 ? NULL : hs + k * ns, *hT = hs + (k + 1) * ns;
            if (cuda) LC_TRY(mamba_scan_forward_cuda(s, c->t[T_X], F(T_DT), dtb, A, c->t[T_BM], c->t[T_CM], D, c->t[T_Z], h0, c->t[T_Y], hT, c->t[T_WS], NULL));
            else LC_TRY(mamba_scan_forward_ref(s, F(T_X), F(T_DT), dtb, A, F(T_BM), F(T_CM), D, F(T_Z), h0, F(T_Y), hT));
        }
        for (int64_t j = 0; j < c->nseg; j++) { /* backwards, last segment first; dh ping-pongs in db */
            const int64_t k = c->nseg - 1 - j;
            float *h0 = k == 0 ? NULL : hs + k * ns, *dhT = j == 0 ? F(T_DHT) : db + ((j - 1) & 1) * ns, *dh0 = db + (j & 1) * ns;
            if (cuda)
                LC_TRY(mamba_scan_backward_cuda(s, c->t[T_X], F(T_DT), dtb, A, c->t[T_BM], c->t[T_CM], D, c->t[T_Z], h0, c->t[T_DY],
                                                dhT, c->t[T_DX], F(T_DDT), F(T_DB), F(T_DC), c->t[T_DZ], dh0, dA, dD, ddtb,
                                                c->t[T_WS], NULL));
            else
                LC_TRY(mamba_scan_backward_ref(s, F(T_X), F(T_DT), dtb, A, F(T_BM), F(T_CM), D, F(T_Z), h0, F(T_DY), dhT, F(T_DX),
                                               F(T_DDT), F(T_DB), F(T_DC), F(T_DZ), dh0, dA, dD, ddtb));
        }
        return LC_OK;
    }
    for (int64_t k = 0; k < c->nseg; k++) {
        /* segment k starts from the state segment k-1 ended with (the first from zero) */
        float *h0 = k == 0 ? NULL : F(k & 1 ? T_H0 : T_HT), *hT = F(k & 1 ? T_HT : T_H0);
        if (cuda) LC_TRY(mamba_scan_forward_cuda(s, c->t[T_X], F(T_DT), dtb, A, c->t[T_BM], c->t[T_CM], D, c->t[T_Z], h0, c->t[T_Y], hT, c->t[T_WS], NULL));
        else LC_TRY(mamba_scan_forward_ref(s, F(T_X), F(T_DT), dtb, A, F(T_BM), F(T_CM), D, F(T_Z), h0, F(T_Y), hT));
    }
    return LC_OK;
}

static lc_status run(void *ctx) {
    struct mamba_ctx *c = ctx;
    return c->conv ? run_conv(c) : run_scan(c);
}

/* value ranges per buffer: dt raw in [-4, 0] (softplus ~ 0.02..0.7), A negative, D ~ 1 */
static void range_of(int i, int conv, float *lo, float *hi) {
    *lo = -1.0f, *hi = 1.0f;
    if (i == T_DT) *lo = -4.0f, *hi = 0.0f;
    if (i == T_PAR && !conv) *lo = -2.0f, *hi = -0.1f;
}

static lc_status make_impl(const struct bench_point *p, struct bench_case *out, int conv) {
    struct mamba_ctx *c = lc_calloc(1, sizeof *c, "mamba bench context");
    if (!c) return LC_ENOMEM;
    lc_status st = plan(p, conv, c);
    if (st == LC_OK && p->backend == BENCH_CUDA && c->dir == DIR_DECODE && !conv && !((p->dh == 64 && p->N == 128) || (p->dh == 32 && p->N == 64)))
        st = lc_errorf(LC_EUNSUPPORTED, "bench %s: the CUDA scan supports (P, N) = (64, 128) and (32, 64)", p->mixer);
    for (int i = 0; i < T_N && st == LC_OK; i++) {
        if (!c->bytes[i]) continue;
        const int is16 = p->backend == BENCH_CUDA && i != T_DT && i != T_DDT && i != T_H0 && i != T_HT && i != T_DHT &&
                         i != T_DH0 && i != T_PAR && i != T_DPAR && i != T_DB && i != T_DC && i != T_WS;
        float lo, hi;
        range_of(i, conv, &lo, &hi);
        if (p->backend == BENCH_CUDA) {
            if (!(c->t[i] = lc_cuda_malloc(c->bytes[i], "mamba bench tensor"))) st = LC_ENOMEM;
            else if (i != T_WS) st = mamba_fill_random_cuda(c->t[i], c->bytes[i] / (is16 ? 2 : 4), is16, 1000 + (uint64_t)i, lo, hi, NULL);
        } else {
            if (!(c->t[i] = lc_malloc(c->bytes[i], "mamba bench tensor"))) st = LC_ENOMEM;
            else {
                lc_rng r;
                lc_rng_seed(&r, 1000 + (uint64_t)i);
                lc_fill_uniform(&r, c->t[i], c->bytes[i] / 4, lo, hi);
            }
        }
    }
    if (st == LC_OK && !conv && c->t[T_PAR]) { /* D = 1 and dt_bias = 0.5 on every backend */
        const int64_t H = p->HQ;
        float *par = malloc(sizeof(float) * (size_t)(3 * H));
        lc_rng r;
        lc_rng_seed(&r, 99);
        lc_fill_uniform(&r, par, (size_t)H, -2.0f, -0.1f);
        for (int64_t h = 0; h < H; h++) par[H + h] = 1.0f, par[2 * H + h] = 0.5f;
        if (p->backend == BENCH_CUDA) st = lc_cuda_memcpy_h2d(c->t[T_PAR], par, sizeof(float) * (size_t)(3 * H));
        else memcpy(c->t[T_PAR], par, sizeof(float) * (size_t)(3 * H));
        free(par);
    }
    if (st == LC_OK && p->backend == BENCH_CUDA) st = lc_cuda_sync();
    if (st != LC_OK) {
        destroy(c);
        return st;
    }
    const double e = p->backend == BENCH_CUDA ? 2 : 4, B = (double)p->B;
    const double L = c->dir == DIR_DECODE ? 1 : (double)p->L, nseg = (double)c->nseg;
    if (conv) {
        const double Cch = (double)c->cs.Cch, Kw = (double)c->cs.Kw, nx = B * L * Cch, nt = B * (Kw - 1) * Cch;
        const double par = 4 * Cch * (Kw + 1);
        out->flops = 2 * Kw * nx + 4 * nx;
        if (c->dir == DIR_DECODE) out->bytes = e * 2 * nx + 2 * e * nt + par;
        else out->bytes = e * 2 * nx + nseg * 2 * e * nt + par;
        if (c->dir == DIR_FWDBWD) out->bytes += e * 3 * nx + par, out->flops *= 3;
    } else {
        const double H = (double)p->HQ, P = (double)p->dh, N = (double)p->N, G = (double)p->H;
        const double nx = B * L * H * P, nbc = B * L * G * N, ndt = B * L * H, ns = B * H * P * N;
        out->flops = 4 * nx * N;
        if (c->dir == DIR_DECODE) out->bytes = e * 3 * nx + 4 * ndt + e * 2 * nbc + 8 * ns;
        else out->bytes = e * 3 * nx + e * 2 * nbc + 4 * ndt + 4 * ns * (2 * nseg - 1);
        if (c->dir == DIR_FWDBWD) {
            out->flops *= 3;
            out->bytes += e * 3 * nx + e * 2 * nbc + 4 * ndt + 4 * ns * nseg + e * 2 * nx + 4 * ndt + 4 * 2 * nbc + 4 * ns * nseg;
        }
    }
    out->ctx = c;
    out->run = run;
    out->destroy = destroy;
    out->alloc_bytes = predict_impl(p, conv);
    return LC_OK;
}

static lc_status make_conv(const struct bench_point *p, struct bench_case *c) { return make_impl(p, c, 1); }
static lc_status make_scan(const struct bench_point *p, struct bench_case *c) { return make_impl(p, c, 0); }

static const struct bench_family families[2] = {
    {"mamba_conv", predict_conv, make_conv},
    {"mamba_scan", predict_scan, make_scan},
};

const struct bench_family *bench_families_mamba(int *n) {
    *n = 2;
    return families;
}
