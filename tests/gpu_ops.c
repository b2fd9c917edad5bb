/* gpu_ops.c — the CUDA common ops (kernels/ops.cu) against their C reference (ops_ref.c) on
 * random inputs at ragged shapes, in fp32 (tolerance 1e-5) and bf16 (1e-2 on bf16 outputs;
 * fp32 outputs such as rstd, dweight, losses stay at ~1e-5 because the reference is fed the
 * same bf16-rounded inputs). Every output buffer is poisoned with NaN before the call, and a NaN
 * never passes a comparison. Also: bad ids and targets named, determinism of the backward
 * scatters, in-place forms.
 *
 * `gpu_ops --bench` instead measures the device limits (cuBLAS bf16 GEMM at 8192^3, a 1 GiB
 * device-to-device copy) and each op at the shapes of the tiny swa-hsa training step, and prints
 * a table (ms, TFLOP/s, GB/s). `gpu_ops --no-matmul` skips the cuBLAS cases (for racecheck). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "common.h"
#include "device.h"
#include "ops.h"
#include "test.h"

static lc_rng rng;

static size_t esz(int dt) { return dt == OPS_BF16 ? 2 : 4; }

static float *hrnd(size_t n, float scale, int dt) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    lc_fill_normal(&rng, x, n, scale);
    if (dt == OPS_BF16)
        for (size_t i = 0; i < n; i++) x[i] = bf16_to_f32(f32_to_bf16(x[i]));
    return x;
}
static void *up(const float *h, size_t n, int dt) {
    void *d = lc_cuda_malloc(n * esz(dt), "test input");
    if (dt == OPS_BF16) {
        bf16_t *t = malloc(2 * (n ? n : 1));
        f32_to_bf16_array(h, t, n);
        lc_cuda_memcpy_h2d(d, t, 2 * n);
        free(t);
    } else {
        lc_cuda_memcpy_h2d(d, h, 4 * n);
    }
    return d;
}
static void *up_raw(const void *h, size_t bytes) {
    void *d = lc_cuda_malloc(bytes, "test input");
    lc_cuda_memcpy_h2d(d, h, bytes);
    return d;
}
/* A NaN-filled device buffer (0xff bytes are NaN in fp32 and bf16). */
static void *poisoned(size_t n, int dt) {
    void *d = lc_cuda_malloc(n * esz(dt), "test output");
    lc_cuda_memset(d, 0xff, n * esz(dt));
    return d;
}
static float *down(const void *d, size_t n, int dt) {
    float *h = malloc(sizeof(float) * (n ? n : 1));
    if (dt == OPS_BF16) {
        bf16_t *t = malloc(2 * (n ? n : 1));
        lc_cuda_memcpy_d2h(t, d, 2 * n);
        bf16_to_f32_array(t, h, n);
        free(t);
    } else {
        lc_cuda_memcpy_d2h(h, d, 4 * n);
    }
    return h;
}
static double tol(int dt) { return dt == OPS_BF16 ? 1e-2 : 1e-5; }
static const char *dtn(int dt) { return dt == OPS_BF16 ? "bf16" : "fp32"; }

static char names[256][160];
static int nnames;
static const char *casename(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *casename(const char *fmt, ...) {
    char *s = names[nnames++ % 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, 160, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- matmul ---------------------------------------------------------------------------- */

static void test_matmul(void) {
    static const int64_t shapes[][3] = {{77, 131, 93}, {1, 64, 257}, {256, 384, 512}};
    /* (ab_dt, c_dt, beta): fp32 throughout; bf16 in and out; bf16 in, fp32 accumulated out */
    static const int modes[][2] = {{OPS_F32, OPS_F32}, {OPS_BF16, OPS_BF16}, {OPS_BF16, OPS_F32}};
    for (size_t s = 0; s < 3; s++)
        for (int md = 0; md < 3; md++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    int abt = modes[md][0], ct = modes[md][1];
                    float beta = md == 2 ? 1.0f : 0.0f, alpha = 0.5f;
                    t_begin(casename("matmul %s->%s ta=%d tb=%d %lldx%lldx%lld beta=%g vs ref", dtn(abt), dtn(ct), ta, tb,
                                     (long long)M, (long long)N, (long long)K, beta));
                    float *A = hrnd(M * K, 1, abt), *B = hrnd(K * N, 1, abt), *C = hrnd(M * N, 1, ct);
                    void *dA = up(A, M * K, abt), *dB = up(B, K * N, abt);
                    void *dC = beta != 0 ? up(C, M * N, ct) : poisoned(M * N, ct);
                    T_OK(ops_matmul_ref(ta, tb, M, N, K, alpha, A, B, beta, C));
                    T_OK(ops_matmul_cuda(ta, tb, M, N, K, alpha, dA, dB, abt, beta, dC, ct, NULL));
                    T_OK(lc_cuda_sync());
                    float *got = down(dC, M * N, ct);
                    T_CLOSE(got, C, M * N, tol(ct), "C");
                    free(A), free(B), free(C), free(got);
                    lc_cuda_free(dA), lc_cuda_free(dB), lc_cuda_free(dC);
                }
}

/* ---- RMSNorm --------------------------------------------------------------------------- */

static void test_rmsnorm(int dt, int64_t R, int64_t D) {
    t_begin(casename("rmsnorm %s R=%lld D=%lld forward, backward (dx, dx accumulated, dweight) vs ref", dtn(dt),
                     (long long)R, (long long)D));
    float eps = 1e-6f;
    float *x = hrnd(R * D, 2, dt), *w = hrnd(D, 1, dt), *dy = hrnd(R * D, 1, dt), *dx0 = hrnd(R * D, 1, dt);
    float *y = malloc(sizeof(float) * R * D), *rstd = malloc(sizeof(float) * R), *dx = malloc(sizeof(float) * R * D);
    float *dxa = malloc(sizeof(float) * R * D), *dw = hrnd(D, 1, OPS_F32);
    void *dx_d = up(x, R * D, dt), *dw_d = up(w, D, dt), *ddy = up(dy, R * D, dt), *ddxa = up(dx0, R * D, dt);
    void *ddw = up(dw, D, OPS_F32);
    void *dyo = poisoned(R * D, dt), *drs = poisoned(R, OPS_F32), *ddx = poisoned(R * D, dt);
    memcpy(dxa, dx0, sizeof(float) * R * D);
    T_OK(ops_rmsnorm_forward_ref(R, D, eps, x, w, y, rstd));
    T_OK(ops_rmsnorm_backward_ref(R, D, x, w, rstd, dy, dx, dw, 0));
    T_OK(ops_rmsnorm_backward_ref(R, D, x, w, rstd, dy, dxa, dw, 1));
    T_OK(ops_rmsnorm_forward_cuda(dt, R, D, eps, dx_d, dw_d, dyo, drs, NULL));
    T_OK(ops_rmsnorm_backward_cuda(dt, R, D, dx_d, dw_d, drs, ddy, ddx, ddw, 0, NULL));
    T_OK(ops_rmsnorm_backward_cuda(dt, R, D, dx_d, dw_d, drs, ddy, ddxa, ddw, 1, NULL));
    T_OK(lc_cuda_sync());
    float *gy = down(dyo, R * D, dt), *grs = down(drs, R, OPS_F32), *gdx = down(ddx, R * D, dt);
    float *gdxa = down(ddxa, R * D, dt), *gdw = down(ddw, D, OPS_F32);
    T_CLOSE(gy, y, R * D, tol(dt), "y");
    T_CLOSE(grs, rstd, R, 1e-5, "rstd");
    T_CLOSE(gdx, dx, R * D, tol(dt), "dx");
    T_CLOSE(gdxa, dxa, R * D, tol(dt), "dx accumulated");
    T_CLOSE(gdw, dw, D, 2e-5, "dweight (two accumulations)");
    /* deterministic: the same backward again gives the same dweight bits */
    float *gdw2;
    T_OK(ops_rmsnorm_backward_cuda(dt, R, D, dx_d, dw_d, drs, ddy, ddx, ddw, 0, NULL));
    lc_cuda_memcpy_h2d(ddw, gdw, sizeof(float) * D);
    T_OK(ops_rmsnorm_backward_cuda(dt, R, D, dx_d, dw_d, drs, ddy, ddx, ddw, 0, NULL));
    gdw2 = down(ddw, D, OPS_F32);
    float *gdw3;
    lc_cuda_memcpy_h2d(ddw, gdw, sizeof(float) * D);
    T_OK(ops_rmsnorm_backward_cuda(dt, R, D, dx_d, dw_d, drs, ddy, ddx, ddw, 0, NULL));
    gdw3 = down(ddw, D, OPS_F32);
    T_CHECK(memcmp(gdw2, gdw3, sizeof(float) * D) == 0, "dweight differs between identical runs");
    free(x), free(w), free(dy), free(dx0), free(y), free(rstd), free(dx), free(dxa), free(dw);
    free(gy), free(grs), free(gdx), free(gdxa), free(gdw), free(gdw2), free(gdw3);
    lc_cuda_free(dx_d), lc_cuda_free(dw_d), lc_cuda_free(ddy), lc_cuda_free(ddxa), lc_cuda_free(ddw);
    lc_cuda_free(dyo), lc_cuda_free(drs), lc_cuda_free(ddx);
}

/* ---- RoPE ------------------------------------------------------------------------------ */

static void test_rope(int dt, int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t pos0) {
    t_begin(casename("rope %s B=%lld L=%lld Hn=%lld dh=%lld pos0=%lld forward, backward, in place vs ref", dtn(dt),
                     (long long)B, (long long)L, (long long)Hn, (long long)dh, (long long)pos0));
    int64_t n = B * L * Hn * dh;
    float theta = 10000;
    float *x = hrnd(n, 1, dt), *y = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n);
    void *dxin = up(x, n, dt), *dy = poisoned(n, dt), *ddx = poisoned(n, dt);
    T_OK(ops_rope_forward_ref(B, L, Hn, dh, pos0, theta, x, y));
    T_OK(ops_rope_backward_ref(B, L, Hn, dh, pos0, theta, x, dx));
    T_OK(ops_rope_forward_cuda(dt, B, L, Hn, dh, pos0, theta, dxin, dy, NULL));
    T_OK(ops_rope_backward_cuda(dt, B, L, Hn, dh, pos0, theta, dxin, ddx, NULL));
    T_OK(lc_cuda_sync());
    float *gy = down(dy, n, dt), *gdx = down(ddx, n, dt);
    T_CLOSE(gy, y, n, tol(dt), "y");
    T_CLOSE(gdx, dx, n, tol(dt), "dx");
    T_OK(ops_rope_forward_cuda(dt, B, L, Hn, dh, pos0, theta, dxin, dxin, NULL)); /* in place */
    float *gin = down(dxin, n, dt);
    T_CLOSE(gin, gy, n, 0, "in-place y");
    free(x), free(y), free(dx), free(gy), free(gdx), free(gin);
    lc_cuda_free(dxin), lc_cuda_free(dy), lc_cuda_free(ddx);
}

/* ---- SwiGLU ---------------------------------------------------------------------------- */

static void test_swiglu(int dt, int64_t R, int64_t F, int64_t ld) {
    t_begin(casename("swiglu %s R=%lld F=%lld ld=%lld forward, backward vs ref", dtn(dt), (long long)R, (long long)F,
                     (long long)ld));
    float *buf = hrnd(R * ld, 2, dt), *dy = hrnd(R * F, 1, dt), *y = malloc(sizeof(float) * R * F);
    float *dbuf = malloc(sizeof(float) * R * ld);
    void *dbuf_d = up(buf, R * ld, dt), *ddy = up(dy, R * F, dt), *dyo = poisoned(R * F, dt);
    void *ddbuf = poisoned(R * ld, dt); /* ld == 2F: the backward writes every value */
    T_OK(ops_swiglu_forward_ref(R, F, ld, buf, buf + F, y));
    T_OK(ops_swiglu_backward_ref(R, F, ld, buf, buf + F, dy, dbuf, dbuf + F));
    T_OK(ops_swiglu_forward_cuda(dt, R, F, ld, dbuf_d, (char *)dbuf_d + F * esz(dt), dyo, NULL));
    T_OK(ops_swiglu_backward_cuda(dt, R, F, ld, dbuf_d, (char *)dbuf_d + F * esz(dt), ddy, ddbuf,
                                  (char *)ddbuf + F * esz(dt), NULL));
    T_OK(lc_cuda_sync());
    float *gy = down(dyo, R * F, dt), *gdb = down(ddbuf, R * ld, dt);
    T_CLOSE(gy, y, R * F, tol(dt), "y");
    T_CLOSE(gdb, dbuf, R * ld, tol(dt), "dgate|dup"); /* ld == 2F here: every value written */
    free(buf), free(dy), free(y), free(dbuf), free(gy), free(gdb);
    lc_cuda_free(dbuf_d), lc_cuda_free(ddy), lc_cuda_free(dyo), lc_cuda_free(ddbuf);
}

/* Strided batched matmul vs a loop of reference matmuls: a shared A (sA = 0, the GCA landmark mean
 * ones[1, S] x E_b), ragged strides (C rows spaced wider than N), bf16 in, bf16 / fp32 out. */
static void test_matmul_batched(int ct, int ta, int tb) {
    const int64_t M = 3, N = 40, K = 17, nb = 5, sA = 0, sB = K * N + 7, sC = M * N + 11;
    t_begin(casename("matmul batched bf16->%s ta=%d tb=%d %lldx%lldx%lld x%lld (shared A, padded strides) vs ref loop", dtn(ct), ta,
                     tb, (long long)M, (long long)N, (long long)K, (long long)nb));
    float *A = hrnd(M * K, 1, OPS_BF16), *B = hrnd(sB * nb, 1, OPS_BF16), *C = hrnd(sC * nb, 1, ct);
    void *dA = up(A, M * K, OPS_BF16), *dB = up(B, sB * nb, OPS_BF16), *dC = up(C, sC * nb, ct);
    for (int64_t b = 0; b < nb; b++) T_OK(ops_matmul_ref(ta, tb, M, N, K, 0.5f, A, B + b * sB, 1.0f, C + b * sC));
    T_OK(ops_matmul_batched_cuda(ta, tb, M, N, K, 0.5f, dA, sA, dB, sB, OPS_BF16, 1.0f, dC, sC, ct, nb, NULL));
    T_OK(lc_cuda_sync());
    float *got = down(dC, sC * nb, ct);
    T_CLOSE(got, C, sC * nb, tol(ct), "C"); /* the padding between matrices is untouched */
    free(A), free(B), free(C), free(got);
    lc_cuda_free(dA), lc_cuda_free(dB), lc_cuda_free(dC);
}

/* ---- embedding ------------------------------------------------------------------------- */

static void test_embedding(int dt, int64_t R, int64_t V, int64_t D) {
    t_begin(casename("embedding %s R=%lld V=%lld D=%lld forward (exact), backward (deterministic) vs ref; bad id named",
                     dtn(dt), (long long)R, (long long)V, (long long)D));
    int32_t *ids = malloc(sizeof(int32_t) * R);
    for (int64_t r = 0; r < R; r++) ids[r] = (int32_t)lc_rng_below(&rng, (uint64_t)(V > 3 ? V - 3 : V)); /* some ids unused */
    float *table = hrnd(V * D, 1, dt), *dout = hrnd(R * D, 1, dt), *out = malloc(sizeof(float) * R * D);
    float *dtab = hrnd(V * D, 1, OPS_F32);
    void *dids = up_raw(ids, sizeof(int32_t) * R), *dtable = up(table, V * D, dt), *dout_d = up(dout, R * D, dt);
    void *dout_o = poisoned(R * D, dt), *ddtab = up(dtab, V * D, OPS_F32);
    T_OK(ops_embedding_forward_ref(R, V, D, ids, table, out));
    T_OK(ops_embedding_backward_ref(R, V, D, ids, dout, dtab));
    T_OK(ops_embedding_forward_cuda(dt, R, V, D, dids, dtable, dout_o, NULL));
    T_OK(ops_embedding_backward_cuda(dt, R, V, D, dids, dout_d, ddtab, NULL));
    T_OK(lc_cuda_sync());
    float *gout = down(dout_o, R * D, dt), *gtab = down(ddtab, V * D, OPS_F32);
    T_CLOSE(gout, out, R * D, 0, "out");
    T_CLOSE(gtab, dtab, V * D, 1e-5, "dtable");
    lc_cuda_memset(ddtab, 0, sizeof(float) * V * D);
    T_OK(ops_embedding_backward_cuda(dt, R, V, D, dids, dout_d, ddtab, NULL));
    float *g1 = down(ddtab, V * D, OPS_F32);
    lc_cuda_memset(ddtab, 0, sizeof(float) * V * D);
    T_OK(ops_embedding_backward_cuda(dt, R, V, D, dids, dout_d, ddtab, NULL));
    float *g2 = down(ddtab, V * D, OPS_F32);
    T_CHECK(memcmp(g1, g2, sizeof(float) * V * D) == 0, "dtable differs between identical runs");
    ids[R / 2] = (int32_t)V + 4;
    lc_cuda_memcpy_h2d(dids, ids, sizeof(int32_t) * R);
    char needle[64];
    snprintf(needle, sizeof needle, "id %d at row %lld", (int)V + 4, (long long)(R / 2));
    T_ERR(ops_embedding_forward_cuda(dt, R, V, D, dids, dtable, dout_o, NULL), needle);
    T_ERR(ops_embedding_backward_cuda(dt, R, V, D, dids, dout_d, ddtab, NULL), needle);
    free(ids), free(table), free(dout), free(out), free(dtab), free(gout), free(gtab), free(g1), free(g2);
    lc_cuda_free(dids), lc_cuda_free(dtable), lc_cuda_free(dout_d), lc_cuda_free(dout_o), lc_cuda_free(ddtab);
}

/* Skewed ids (90% one id, as bytes of text are): the backward still equals the reference. */
static void test_embedding_skewed(int dt, int64_t R, int64_t V, int64_t D) {
    t_begin(casename("embedding %s R=%lld V=%lld D=%lld backward with 90%% of rows on one id vs ref", dtn(dt), (long long)R,
                     (long long)V, (long long)D));
    int32_t *ids = malloc(sizeof(int32_t) * R);
    for (int64_t r = 0; r < R; r++) ids[r] = lc_rng_uniform(&rng) < 0.9 ? 7 : (int32_t)lc_rng_below(&rng, (uint64_t)V);
    float *dout = hrnd(R * D, 1, dt), *dtab = hrnd(V * D, 1, OPS_F32);
    void *dids = up_raw(ids, sizeof(int32_t) * R), *dout_d = up(dout, R * D, dt), *ddtab = up(dtab, V * D, OPS_F32);
    T_OK(ops_embedding_backward_ref(R, V, D, ids, dout, dtab));
    T_OK(ops_embedding_backward_cuda(dt, R, V, D, dids, dout_d, ddtab, NULL));
    T_OK(lc_cuda_sync());
    float *gtab = down(ddtab, V * D, OPS_F32);
    T_CLOSE(gtab, dtab, V * D, 1e-4, "dtable");
    free(ids), free(dout), free(dtab), free(gtab);
    lc_cuda_free(dids), lc_cuda_free(dout_d), lc_cuda_free(ddtab);
}

/* ---- cross-entropy --------------------------------------------------------------------- */

static void test_xent(int dt, int64_t R, int64_t V) {
    t_begin(casename("xent %s R=%lld V=%lld loss, row_loss, dlogits (also in place, with norm) vs ref; bad target named",
                     dtn(dt), (long long)R, (long long)V));
    int32_t *tg = malloc(sizeof(int32_t) * R);
    float *w = malloc(sizeof(float) * R);
    for (int64_t r = 0; r < R; r++) {
        int ignored = r % 5 == 3;
        tg[r] = ignored ? -100 : (int32_t)lc_rng_below(&rng, (uint64_t)V);
        w[r] = ignored ? 0 : (float)(0.25 + lc_rng_uniform(&rng));
    }
    float *z = hrnd(R * V, 3, dt), *dz = malloc(sizeof(float) * R * V), *rl = malloc(sizeof(float) * R), loss;
    void *dzin = up(z, R * V, dt), *dtg = up_raw(tg, sizeof(int32_t) * R), *dw = up_raw(w, sizeof(float) * R);
    void *ddz = poisoned(R * V, dt), *drl = poisoned(R, OPS_F32), *dloss = poisoned(1, OPS_F32);
    T_OK(ops_xent_forward_backward_ref(R, V, z, tg, w, 0, &loss, rl, dz));
    T_OK(ops_xent_forward_backward_cuda(dt, R, V, dzin, dtg, dw, 0, dloss, drl, ddz, NULL));
    T_OK(lc_cuda_sync());
    float *gdz = down(ddz, R * V, dt), *grl = down(drl, R, OPS_F32), *gl = down(dloss, 1, OPS_F32);
    T_CLOSE(gl, &loss, 1, 1e-5, "loss");
    T_CLOSE(grl, rl, R, 1e-5, "row_loss");
    T_CLOSE(gdz, dz, R * V, tol(dt), "dlogits");
    /* in place with an explicit norm, no row losses */
    float loss2;
    T_OK(ops_xent_forward_backward_ref(R, V, z, tg, w, 123.0f, &loss2, NULL, dz));
    lc_cuda_memset(dloss, 0xff, 4);
    T_OK(ops_xent_forward_backward_cuda(dt, R, V, dzin, dtg, dw, 123.0f, dloss, NULL, dzin, NULL));
    float *gdz2 = down(dzin, R * V, dt), *gl2 = down(dloss, 1, OPS_F32);
    T_CLOSE(gl2, &loss2, 1, 1e-5, "loss with norm");
    T_CLOSE(gdz2, dz, R * V, tol(dt), "dlogits in place with norm");
    tg[R - 1] = (int32_t)V;
    w[R - 1] = 1;
    lc_cuda_memcpy_h2d(dtg, tg, sizeof(int32_t) * R);
    lc_cuda_memcpy_h2d(dw, w, sizeof(float) * R);
    char needle[64];
    snprintf(needle, sizeof needle, "target %d at row %lld", (int)V, (long long)(R - 1));
    T_ERR(ops_xent_forward_backward_cuda(dt, R, V, ddz, dtg, dw, 0, dloss, NULL, NULL, NULL), needle);
    free(tg), free(w), free(z), free(dz), free(rl), free(gdz), free(grl), free(gl), free(gdz2), free(gl2);
    lc_cuda_free(dzin), lc_cuda_free(dtg), lc_cuda_free(dw), lc_cuda_free(ddz), lc_cuda_free(drl), lc_cuda_free(dloss);
}

/* ---- AdamW ----------------------------------------------------------------------------- */

static void test_adamw(void) {
    t_begin("adamw n=10007 step 3: p, m, v (fp32) and the bf16 copy vs ref");
    int64_t n = 10007;
    float *p = hrnd(n, 1, OPS_F32), *g = hrnd(n, 1, OPS_F32), *m = hrnd(n, 0.1f, OPS_F32), *v = hrnd(n, 0.1f, OPS_F32);
    for (int64_t i = 0; i < n; i++) v[i] *= v[i];
    void *dp = up(p, n, OPS_F32), *dg = up(g, n, OPS_F32), *dm = up(m, n, OPS_F32), *dv = up(v, n, OPS_F32);
    void *dpb = poisoned(n, OPS_BF16);
    struct ops_adamw h = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                          .grad_scale = 0.5f, .step = 3};
    T_OK(ops_adamw_step_ref(n, p, g, m, v, &h));
    T_OK(ops_adamw_step_cuda(n, dp, dg, dm, dv, dpb, &h, NULL));
    T_OK(lc_cuda_sync());
    float *gp = down(dp, n, OPS_F32), *gm = down(dm, n, OPS_F32), *gv = down(dv, n, OPS_F32), *gpb = down(dpb, n, OPS_BF16);
    T_CLOSE(gp, p, n, 1e-6, "p");
    T_CLOSE(gm, m, n, 1e-6, "m");
    T_CLOSE(gv, v, n, 1e-6, "v");
    T_CLOSE(gpb, p, n, 4e-3, "p_bf16");
    int exact = 0;
    for (int64_t i = 0; i < n; i++) exact += bf16_to_f32(f32_to_bf16(gp[i])) == gpb[i];
    T_CHECK(exact == n, "p_bf16 is not the rounding of p at %lld places", (long long)(n - exact));
    T_ERR(ops_adamw_step_cuda(n, dp, dg, dm, dv, dpb, NULL, NULL), "h is NULL");
    free(p), free(g), free(m), free(v), free(gp), free(gm), free(gv), free(gpb);
    lc_cuda_free(dp), lc_cuda_free(dg), lc_cuda_free(dm), lc_cuda_free(dv), lc_cuda_free(dpb);
}

static void test_bad_args(void) {
    t_begin("CUDA ops: bad arguments named; a NaN output never passes a comparison");
    float a[4] = {1, 2, 3, 4}, nan4[4] = {NAN, NAN, NAN, NAN};
    T_CHECK(!(t_rel_err(nan4, a, 4) <= 1), "NaN compared as close");
    void *d = lc_cuda_malloc(64, "bad args");
    T_ERR(ops_matmul_cuda(0, 0, 2, 2, 2, 1, d, d, OPS_F32, 0, d, OPS_BF16, NULL), "needs c_dt");
    T_ERR(ops_matmul_cuda(0, 3, 2, 2, 2, 1, d, d, OPS_F32, 0, d, OPS_F32, NULL), "tb = 3");
    T_ERR(ops_rope_forward_cuda(5, 1, 1, 1, 4, 0, 1e4f, d, d, NULL), "dt = 5");
    T_ERR(ops_rope_forward_cuda(OPS_BF16, 1, 1, 1, 6 - 1, 0, 1e4f, d, d, NULL), "dh = 5 must be even");
    T_ERR(ops_rmsnorm_backward_cuda(OPS_BF16, 1, 4, d, d, d, (char *)d + 8, d, d, 0, NULL), "dx may not alias");
    T_ERR(ops_swiglu_forward_cuda(OPS_F32, 1, 4, 2, d, d, d, NULL), "ld = 2");
    T_ERR(ops_xent_forward_backward_cuda(OPS_F32, 1, 4, d, d, NULL, 0, d, NULL, NULL, NULL), "weights is NULL");
    lc_cuda_free(d);
}

/* ---- device limits and op timings ----------------------------------------------------- */

struct bctx { int kind; void *a, *b, *c, *d, *e, *f; int64_t n1, n2, n3; };
static lc_status brun(void *p) {
    struct bctx *c = p;
    switch (c->kind) {
    case 0: return ops_matmul_cuda(0, 1, c->n1, c->n1, c->n1, 1, c->a, c->b, OPS_BF16, 0, c->c, OPS_BF16, NULL);
    case 1: return cudaMemcpyAsync(c->b, c->a, (size_t)c->n1, cudaMemcpyDeviceToDevice, 0) == cudaSuccess ? LC_OK : LC_EDEVICE;
    case 2: return ops_rmsnorm_forward_cuda(OPS_BF16, c->n1, c->n2, 1e-6f, c->a, c->b, c->c, c->d, NULL);
    case 3: return ops_rmsnorm_backward_cuda(OPS_BF16, c->n1, c->n2, c->a, c->b, c->d, c->e, c->f, c->c, 0, NULL);
    case 4: return ops_rope_forward_cuda(OPS_BF16, 32, 4096, c->n2, 32, 0, 1e4f, c->a, c->c, NULL);
    case 5: return ops_swiglu_forward_cuda(OPS_BF16, c->n1, c->n2, 2 * c->n2, c->a, (char *)c->a + 2 * c->n2, c->c, NULL);
    case 6: return ops_swiglu_backward_cuda(OPS_BF16, c->n1, c->n2, 2 * c->n2, c->a, (char *)c->a + 2 * c->n2, c->b, c->c, (char *)c->c + 2 * c->n2, NULL);
    case 7: return ops_xent_forward_backward_cuda(OPS_BF16, c->n1, c->n2, c->a, c->b, c->d, 0, c->e, NULL, c->c, NULL);
    case 8: return ops_embedding_forward_cuda(OPS_BF16, c->n1, c->n2, c->n3, c->b, c->a, c->c, NULL);
    case 9: return ops_embedding_backward_cuda(OPS_BF16, c->n1, c->n2, c->n3, c->b, c->c, c->d, NULL);
    default: {
        struct ops_adamw h = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .grad_scale = 1, .step = 10};
        return ops_adamw_step_cuda(c->n1, c->a, c->b, c->c, c->d, c->e, &h, NULL);
    }
    }
}

static void *drand_bf16(size_t n, float scale) {
    float *h = hrnd(n, scale, OPS_BF16);
    void *d = up(h, n, OPS_BF16);
    free(h);
    return d;
}

static int bench(void) {
    printf("device: %s\n", lc_device_name());
    printf("%-44s %10s %10s %10s\n", "case", "ms", "TFLOP/s", "GB/s");
    const int64_t R = 32 * 4096, D = 256, F = 768, V = 256;
    struct bitem { const char *name; struct bctx c; double flops, bytes; } cs[12];
    int n = 0;
    int64_t G = 8192;
    cs[n++] = (struct bitem){"cublas bf16 gemm 8192^3 (x W^T)", {0, drand_bf16(G * G, 1), drand_bf16(G * G, 1), lc_cuda_malloc(2 * G * G, "C"), 0, 0, 0, G, 0, 0}, 2.0 * G * G * G, 3.0 * 2 * G * G};
    size_t cb = (size_t)1 << 30;
    cs[n++] = (struct bitem){"d2d copy 1 GiB (read + write counted)", {1, lc_cuda_malloc(cb, "src"), lc_cuda_malloc(cb, "dst"), 0, 0, 0, 0, (int64_t)cb, 0, 0}, 0, 2.0 * cb};
    void *x = drand_bf16(R * D, 1), *w = drand_bf16(D, 1), *y = lc_cuda_malloc(2 * R * D, "y"), *rs = lc_cuda_malloc(4 * R, "rstd");
    void *dy = drand_bf16(R * D, 1), *dx = lc_cuda_malloc(2 * R * D, "dx"), *dw = lc_cuda_malloc(4 * D, "dw");
    lc_cuda_memset(dw, 0, 4 * D);
    cs[n++] = (struct bitem){"rmsnorm fwd bf16 R=131072 D=256", {2, x, w, y, rs, 0, 0, R, D, 0}, 0, 2.0 * 2 * R * D + 4.0 * R};
    /* rstd from the forward run (the bench list runs in order) */
    cs[n++] = (struct bitem){"rmsnorm bwd bf16 R=131072 D=256", {3, x, w, dw, rs, dy, dx, R, D, 0}, 0, 3.0 * 2 * R * D + 4.0 * R};
    cs[n++] = (struct bitem){"rope fwd bf16 B=32 L=4096 Hn=8 dh=32", {4, x, 0, y, 0, 0, 0, R, 8, 0}, 0, 2.0 * 2 * R * D};
    void *gu = drand_bf16(R * 2 * F, 1), *ys = lc_cuda_malloc(2 * R * F, "y"), *dys = drand_bf16(R * F, 1), *dgu = lc_cuda_malloc(2 * R * 2 * F, "dgu");
    cs[n++] = (struct bitem){"swiglu fwd bf16 R=131072 F=768", {5, gu, 0, ys, 0, 0, 0, R, F, 0}, 0, 3.0 * 2 * R * F};
    cs[n++] = (struct bitem){"swiglu bwd bf16 R=131072 F=768", {6, gu, dys, dgu, 0, 0, 0, R, F, 0}, 0, 5.0 * 2 * R * F};
    int32_t *tg = malloc(4 * R);
    float *wt = malloc(4 * R);
    for (int64_t r = 0; r < R; r++) tg[r] = (int32_t)lc_rng_below(&rng, V), wt[r] = 1;
    void *z = drand_bf16(R * V, 3), *dz = lc_cuda_malloc(2 * R * V, "dz"), *dtg = up_raw(tg, 4 * R), *dwt = up_raw(wt, 4 * R), *dl = lc_cuda_malloc(4, "loss");
    cs[n++] = (struct bitem){"xent fwd+bwd bf16 R=131072 V=256", {7, z, dtg, dz, dwt, dl, 0, R, V, 0}, 0, 2.0 * 2 * R * V + 8.0 * R};
    void *tab = drand_bf16(V * D, 1), *eo = lc_cuda_malloc(2 * R * D, "emb out"), *dtab = lc_cuda_malloc(4 * V * D, "dtab");
    lc_cuda_memset(dtab, 0, 4 * V * D);
    cs[n++] = (struct bitem){"embedding fwd bf16 R=131072 V=256 D=256", {8, tab, dtg, eo, 0, 0, 0, R, V, D}, 0, 2.0 * R * D + 4.0 * R};
    cs[n++] = (struct bitem){"embedding bwd bf16 R=131072 V=256 D=256", {9, 0, dtg, dy, dtab, 0, 0, R, V, D}, 0, 2.0 * R * D + 4.0 * R + 8.0 * V * D};
    int64_t P = 6310000;
    float *hp = hrnd(P, 0.02f, OPS_F32);
    void *pp = up(hp, P, OPS_F32), *pg = up(hp, P, OPS_F32), *pm = up(hp, P, OPS_F32), *pv = lc_cuda_malloc(4 * P, "v"), *pb = lc_cuda_malloc(2 * P, "pb");
    lc_cuda_memset(pv, 0, 4 * P);
    free(hp);
    cs[n++] = (struct bitem){"adamw n=6.31M (+bf16 copy)", {10, pp, pg, pm, pv, pb, 0, P, 0, 0}, 0, 7.0 * 4 * P + 2.0 * P};
    int rc = 0;
    for (int i = 0; i < n; i++) {
        struct bench_case bc = {.ctx = &cs[i].c, .run = brun};
        struct bench_timing t;
        lc_status s = bench_time(&bc, BENCH_CUDA, 3, i == 0 ? 20 : 30, &t);
        if (s != LC_OK) {
            printf("%-44s error: %s\n", cs[i].name, lc_last_error());
            rc = 1;
            continue;
        }
        printf("%-44s %10.4f %10.1f %10.1f\n", cs[i].name, t.ms_median, cs[i].flops / t.ms_median * 1e-9,
               cs[i].bytes / t.ms_median * 1e-6);
    }
    free(tg), free(wt);
    return rc;
}

int main(int argc, char **argv) {
    lc_rng_seed(&rng, 8);
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) return bench();
    const char *why = NULL;
    if (lc_cuda_device_count(&why) == 0) {
        t_begin("gpu ops");
        t_skip(why);
        return t_finish();
    }
    /* --no-matmul: the racecheck run skips cuBLAS (not our shared memory) */
    if (!(argc > 1 && strcmp(argv[1], "--no-matmul") == 0)) {
        test_matmul();
        for (int k = 0; k < 8; k++) test_matmul_batched(k & 1 ? OPS_F32 : OPS_BF16, (k >> 1) & 1, (k >> 2) & 1);
    }
    for (int dt = 0; dt < 2; dt++) {
        test_rmsnorm(dt, 37, 200);
        test_rmsnorm(dt, 1000, 32);
        /* the bf16 vector kernels: G = 1, 8, 32 lanes per row, 1..4 vectors per lane, ragged R */
        test_rmsnorm(dt, 9, 8);
        test_rmsnorm(dt, 70, 64);
        test_rmsnorm(dt, 4099, 256);
        test_rmsnorm(dt, 333, 768);
        test_rmsnorm(dt, 41, 1024);
        test_rmsnorm(dt, 5, 7000); /* too wide for the fused backward: two-pass path */
        test_rope(dt, 2, 37, 3, 64, 1000);
        test_rope(dt, 1, 5, 2, 32, (1 << 24) - 3);
        test_rope(dt, 3, 1, 16, 128, 77); /* decode: one position, 256-wide blocks */
        test_swiglu(dt, 45, 100, 200); /* bf16: the paired path */
        test_swiglu(dt, 7, 33, 66);    /* odd F: the scalar path */
        test_embedding(dt, 300, 50, 72);
        test_embedding(dt, 1000, 3000, 40);
        test_embedding_skewed(dt, 20000, 256, 64);
        test_xent(dt, 70, 1000);
        test_xent(dt, 9, 32003);
    }
    test_adamw();
    test_bad_args();
    ops_cuda_release();
    return t_finish();
}
