/* test_mamba.c — the C reference of the Mamba-2 mixer (kernels/mamba_ref.c):
 *  - forward equals an independent double-precision implementation written here;
 *  - every backward equals central finite differences of that double forward;
 *  - the scan equals step-by-step decode; conv forward equals decode steps;
 *  - two segments with carried state (conv tail, ssm state) equal one long run, forward and
 *    backward (dh0 of the second segment is dhT of the first);
 *  - causality: changing inputs after t changes no output at or before t;
 *  - bad shapes and NULL inputs are rejected with a message naming them. */
#include "common.h"
#include "mamba.h"
#include "test.h"

static lc_rng rng;

static float *randf(size_t n, float lo, float hi) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    lc_fill_uniform(&rng, p, n, lo, hi);
    return p;
}
static float *zerof(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static float *dupf(const float *a, size_t n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    memcpy(p, a, sizeof(float) * n);
    return p;
}
static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

/* ---------------- conv: double forward, loss = <dy, y> + <dto, tail_out> ---------------- */
struct conv_in {
    struct mamba_conv_shape s;
    float *x, *w, *bias, *tail, *dy, *dto;
};

static double conv_loss_d(const struct conv_in *c, double *y_out) {
    const struct mamba_conv_shape *s = &c->s;
    const int64_t C = s->Cch, K1 = s->Kw - 1;
    double loss = 0;
    for (int64_t b = 0; b < s->B; b++) {
        for (int64_t t = 0; t < s->L; t++)
            for (int64_t ch = 0; ch < C; ch++) {
                double acc = c->bias[ch];
                for (int64_t k = 0; k < s->Kw; k++) {
                    int64_t ti = t - K1 + k;
                    double v = ti >= 0 ? c->x[(b * s->L + ti) * C + ch] : c->tail[(b * K1 + K1 + ti) * C + ch];
                    acc += (double)c->w[ch * s->Kw + k] * v;
                }
                double yv = acc / (1.0 + exp(-acc));
                if (y_out) y_out[(b * s->L + t) * C + ch] = yv;
                loss += yv * c->dy[(b * s->L + t) * C + ch];
            }
        for (int64_t j = 0; j < K1; j++)
            for (int64_t ch = 0; ch < C; ch++) {
                int64_t ti = s->L - K1 + j;
                double v = ti >= 0 ? c->x[(b * s->L + ti) * C + ch] : c->tail[(b * K1 + K1 + ti) * C + ch];
                loss += v * c->dto[(b * K1 + j) * C + ch];
            }
    }
    return loss;
}

/* d loss / d p[i] for every i by central differences (p is perturbed in place and restored). */
static void fd_grad(double (*loss)(const void *), const void *ctx, float *p, size_t n, float *grad) {
    for (size_t i = 0; i < n; i++) {
        float v = p[i];
        double e = 1e-3 * fmax(1.0, fabs(v));
        /* perturb through a float: keep the step exactly representable */
        float vp = (float)(v + e), vm = (float)(v - e);
        p[i] = vp;
        double lp = loss(ctx);
        p[i] = vm;
        double lm = loss(ctx);
        p[i] = v;
        grad[i] = (float)((lp - lm) / ((double)vp - (double)vm));
    }
}
static double conv_loss_void(const void *c) { return conv_loss_d(c, NULL); }

static void test_conv(int64_t B, int64_t L, int64_t C, int64_t Kw) {
    struct conv_in c = {{B, L, C, Kw}, 0, 0, 0, 0, 0, 0};
    const int64_t K1 = Kw - 1;
    size_t nx = (size_t)(B * L * C), nt = (size_t)(B * K1 * C);
    c.x = randf(nx, -2, 2), c.w = randf((size_t)(C * Kw), -1, 1), c.bias = randf((size_t)C, -0.5f, 0.5f);
    c.tail = randf(nt, -2, 2), c.dy = randf(nx, -1, 1), c.dto = randf(nt, -1, 1);
    float *y = zerof(nx), *to = zerof(nt), *yd = zerof(nx);
    double *yref = calloc(nx, sizeof(double));

    t_begin("conv forward equals double implementation");
    T_OK(mamba_conv_forward_ref(&c.s, c.x, c.w, c.bias, c.tail, y, to));
    conv_loss_d(&c, yref);
    for (size_t i = 0; i < nx; i++) yd[i] = (float)yref[i];
    T_CLOSE(y, yd, nx, 1e-5, "conv y");
    int tail_ok = 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < K1; j++)
            for (int64_t ch = 0; ch < C; ch++) {
                int64_t ti = L - K1 + j;
                float want = ti >= 0 ? c.x[(b * L + ti) * C + ch] : c.tail[(b * K1 + K1 + ti) * C + ch];
                tail_ok &= to[(b * K1 + j) * C + ch] == want;
            }
    T_CHECK(tail_ok, "tail_out is not the last Kw-1 inputs (L=%lld, Kw=%lld)", (long long)L, (long long)Kw);

    t_begin("conv backward equals finite differences");
    float *dx = zerof(nx), *dw = zerof((size_t)(C * Kw)), *db = zerof((size_t)C), *dti = zerof(nt);
    T_OK(mamba_conv_backward_ref(&c.s, c.x, c.w, c.bias, c.tail, c.dy, c.dto, dx, dw, db, dti));
    float *fx = zerof(nx), *fw = zerof((size_t)(C * Kw)), *fb = zerof((size_t)C), *ft = zerof(nt);
    fd_grad(conv_loss_void, &c, c.x, nx, fx);
    fd_grad(conv_loss_void, &c, c.w, (size_t)(C * Kw), fw);
    fd_grad(conv_loss_void, &c, c.bias, (size_t)C, fb);
    fd_grad(conv_loss_void, &c, c.tail, nt, ft);
    T_CLOSE(dx, fx, nx, 1e-3, "conv dx");
    T_CLOSE(dw, fw, (size_t)(C * Kw), 1e-3, "conv dweight");
    T_CLOSE(db, fb, (size_t)C, 1e-3, "conv dbias");
    if (nt) T_CLOSE(dti, ft, nt, 1e-3, "conv dtail_in");

    t_begin("conv decode steps equal the forward");
    {
        float *tail = dupf(c.tail, nt), *xt = zerof((size_t)(B * C)), *yt = zerof((size_t)(B * C));
        double worst = 0;
        for (int64_t t = 0; t < L; t++) {
            for (int64_t b = 0; b < B; b++) memcpy(xt + b * C, c.x + (b * L + t) * C, sizeof(float) * (size_t)C);
            T_OK(mamba_conv_decode_ref(&c.s, xt, c.w, c.bias, tail, yt));
            for (int64_t b = 0; b < B; b++) {
                double d = max_abs_diff(yt + b * C, y + (b * L + t) * C, (size_t)C);
                if (!(d <= worst)) worst = d;
            }
        }
        T_CHECK(worst <= 1e-6, "decode differs from forward by %.3e", worst);
        T_CHECK(max_abs_diff(tail, to, nt) == 0, "decode tail differs from tail_out");
        free(tail), free(xt), free(yt);
    }

    t_begin("conv two segments with carried tail equal one run");
    for (int64_t L1 = 1; L1 < L; L1 += (L > 6 ? 3 : 1)) {
        int64_t L2 = L - L1;
        struct mamba_conv_shape s1 = {B, L1, C, Kw}, s2 = {B, L2, C, Kw};
        float *x1 = zerof((size_t)(B * L1 * C)), *x2 = zerof((size_t)(B * L2 * C));
        for (int64_t b = 0; b < B; b++) {
            memcpy(x1 + b * L1 * C, c.x + b * L * C, sizeof(float) * (size_t)(L1 * C));
            memcpy(x2 + b * L2 * C, c.x + (b * L + L1) * C, sizeof(float) * (size_t)(L2 * C));
        }
        float *y1 = zerof((size_t)(B * L1 * C)), *y2 = zerof((size_t)(B * L2 * C)), *mid = zerof(nt), *to2 = zerof(nt);
        T_OK(mamba_conv_forward_ref(&s1, x1, c.w, c.bias, c.tail, y1, mid));
        T_OK(mamba_conv_forward_ref(&s2, x2, c.w, c.bias, mid, y2, to2));
        double d = max_abs_diff(to2, to, nt);
        for (int64_t b = 0; b < B; b++) {
            double d1 = max_abs_diff(y1 + b * L1 * C, y + b * L * C, (size_t)(L1 * C));
            double d2 = max_abs_diff(y2 + b * L2 * C, y + (b * L + L1) * C, (size_t)(L2 * C));
            d = fmax(d, fmax(d1, d2));
        }
        T_CHECK(d == 0, "split at %lld differs by %.3e", (long long)L1, d);
        /* backward hand-off: dtail_in of segment 2 flows into dtail_out of segment 1 */
        float *dx1 = zerof((size_t)(B * L1 * C)), *dx2 = zerof((size_t)(B * L2 * C)), *dmid = zerof(nt);
        float *dw1 = zerof((size_t)(C * Kw)), *dw2 = zerof((size_t)(C * Kw)), *db1 = zerof((size_t)C), *db2 = zerof((size_t)C);
        float *dt1 = zerof(nt), *dy1 = zerof((size_t)(B * L1 * C)), *dy2 = zerof((size_t)(B * L2 * C));
        for (int64_t b = 0; b < B; b++) {
            memcpy(dy1 + b * L1 * C, c.dy + b * L * C, sizeof(float) * (size_t)(L1 * C));
            memcpy(dy2 + b * L2 * C, c.dy + (b * L + L1) * C, sizeof(float) * (size_t)(L2 * C));
        }
        T_OK(mamba_conv_backward_ref(&s2, x2, c.w, c.bias, mid, dy2, c.dto, dx2, dw2, db2, dmid));
        T_OK(mamba_conv_backward_ref(&s1, x1, c.w, c.bias, c.tail, dy1, dmid, dx1, dw1, db1, dt1));
        for (int64_t i = 0; i < C * Kw; i++) dw1[i] += dw2[i];
        for (int64_t i = 0; i < C; i++) db1[i] += db2[i];
        float *dxs = zerof(nx);
        for (int64_t b = 0; b < B; b++) {
            memcpy(dxs + b * L * C, dx1 + b * L1 * C, sizeof(float) * (size_t)(L1 * C));
            memcpy(dxs + (b * L + L1) * C, dx2 + b * L2 * C, sizeof(float) * (size_t)(L2 * C));
        }
        T_CHECK(max_abs_diff(dxs, dx, nx) <= 1e-5, "split backward dx differs by %.3e", max_abs_diff(dxs, dx, nx));
        T_CHECK(max_abs_diff(dw1, dw, (size_t)(C * Kw)) <= 1e-4, "split backward dweight differs");
        T_CHECK(max_abs_diff(db1, db, (size_t)C) <= 1e-4, "split backward dbias differs");
        T_CHECK(max_abs_diff(dt1, dti, nt) <= 1e-5, "split backward dtail_in differs");
        free(x1), free(x2), free(y1), free(y2), free(mid), free(to2), free(dx1), free(dx2), free(dmid);
        free(dw1), free(dw2), free(db1), free(db2), free(dt1), free(dy1), free(dy2), free(dxs);
    }

    t_begin("conv is causal");
    {
        int64_t t0 = L / 2;
        float *x2 = dupf(c.x, nx), *y2 = zerof(nx);
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = (b * L + t0 + 1) * C; i < (b + 1) * L * C; i++) x2[i] += 1.0f;
        T_OK(mamba_conv_forward_ref(&c.s, x2, c.w, c.bias, c.tail, y2, NULL));
        int ok = 1, changed = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < L; t++)
                for (int64_t ch = 0; ch < C; ch++) {
                    size_t i = (size_t)((b * L + t) * C + ch);
                    if (t <= t0) ok &= y2[i] == y[i];
                    else changed |= y2[i] != y[i];
                }
        T_CHECK(ok, "an output at or before t=%lld changed", (long long)t0);
        T_CHECK(changed || t0 + 1 >= L, "no later output changed: the test perturbed nothing");
        free(x2), free(y2);
    }
    free(c.x), free(c.w), free(c.bias), free(c.tail), free(c.dy), free(c.dto), free(y), free(to), free(yd), free(yref);
    free(dx), free(dw), free(db), free(dti), free(fx), free(fw), free(fb), free(ft);
}

/* ---------------- scan: double forward, loss = <dy, y> + <dhT, hT> ---------------- */
struct scan_in {
    struct mamba_scan_shape s;
    float *x, *dt, *dt_bias, *A, *Bm, *Cm, *D, *z, *h0, *dy, *dhT;
};

static double scan_loss_d(const struct scan_in *c, double *y_out) {
    const struct mamba_scan_shape *s = &c->s;
    const int64_t H = s->H, P = s->P, N = s->N, G = s->G, L = s->L;
    double *st = malloc(sizeof(double) * (size_t)(P * N)), loss = 0;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < H; h++) {
            int64_t g = h / (H / G);
            for (int64_t i = 0; i < P * N; i++) st[i] = c->h0 ? c->h0[(b * H + h) * P * N + i] : 0.0;
            for (int64_t t = 0; t < L; t++) {
                int64_t r = b * L + t;
                double u = (double)c->dt[r * H + h] + (c->dt_bias ? c->dt_bias[h] : 0.0);
                double dtp = log1p(exp(u)), dA = exp(dtp * c->A[h]);
                for (int64_t p = 0; p < P; p++) {
                    double acc = 0, xv = c->x[(r * H + h) * P + p];
                    for (int64_t n = 0; n < N; n++) {
                        double *e = st + p * N + n;
                        *e = dA * *e + dtp * xv * c->Bm[(r * G + g) * N + n];
                        acc += *e * c->Cm[(r * G + g) * N + n];
                    }
                    acc += (c->D ? c->D[h] : 0.0) * xv;
                    if (c->z) {
                        double zv = c->z[(r * H + h) * P + p];
                        acc *= zv / (1.0 + exp(-zv));
                    }
                    if (y_out) y_out[(r * H + h) * P + p] = acc;
                    loss += acc * c->dy[(r * H + h) * P + p];
                }
            }
            if (c->dhT)
                for (int64_t i = 0; i < P * N; i++) loss += st[i] * c->dhT[(b * H + h) * P * N + i];
        }
    free(st);
    return loss;
}
static double scan_loss_void(const void *c) { return scan_loss_d(c, NULL); }

static void scan_alloc(struct scan_in *c, int with_z, int with_h0) {
    const struct mamba_scan_shape *s = &c->s;
    size_t nx = (size_t)(s->B * s->L * s->H * s->P), nbc = (size_t)(s->B * s->L * s->G * s->N);
    size_t ns = (size_t)(s->B * s->H * s->P * s->N);
    c->x = randf(nx, -1, 1);
    c->dt = randf((size_t)(s->B * s->L * s->H), -2.5f, 0.5f);
    c->dt_bias = randf((size_t)s->H, -0.5f, 0.5f);
    c->A = randf((size_t)s->H, -2.0f, -0.2f);
    c->Bm = randf(nbc, -1, 1);
    c->Cm = randf(nbc, -1, 1);
    c->D = randf((size_t)s->H, 0.5f, 1.5f);
    c->z = with_z ? randf(nx, -2, 2) : NULL;
    c->h0 = with_h0 ? randf(ns, -1, 1) : NULL;
    c->dy = randf(nx, -1, 1);
    c->dhT = randf(ns, -1, 1);
}
static void scan_free(struct scan_in *c) {
    free(c->x), free(c->dt), free(c->dt_bias), free(c->A), free(c->Bm), free(c->Cm), free(c->D);
    free(c->z), free(c->h0), free(c->dy), free(c->dhT);
}

static void test_scan(int64_t B, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int with_z, int with_h0) {
    struct scan_in c = {{B, L, H, P, G, N}, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    scan_alloc(&c, with_z, with_h0);
    const struct mamba_scan_shape *s = &c.s;
    size_t nx = (size_t)(B * L * H * P), nbc = (size_t)(B * L * G * N), ns = (size_t)(B * H * P * N);
    size_t ndt = (size_t)(B * L * H);
    float *y = zerof(nx), *hT = zerof(ns), *yd = zerof(nx);
    double *yref = calloc(nx, sizeof(double));
    static char name[160], name2[160];
    snprintf(name, sizeof name, "scan forward equals double implementation (B=%lld L=%lld H=%lld P=%lld G=%lld N=%lld z=%d h0=%d)",
             (long long)B, (long long)L, (long long)H, (long long)P, (long long)G, (long long)N, with_z, with_h0);
    t_begin(name);
    T_OK(mamba_scan_forward_ref(s, c.x, c.dt, c.dt_bias, c.A, c.Bm, c.Cm, c.D, c.z, c.h0, y, hT));
    scan_loss_d(&c, yref);
    for (size_t i = 0; i < nx; i++) yd[i] = (float)yref[i];
    T_CLOSE(y, yd, nx, 1e-5, "scan y");

    snprintf(name2, sizeof name2, "scan backward equals finite differences (L=%lld z=%d h0=%d)", (long long)L, with_z, with_h0);
    t_begin(name2);
    float *dx = zerof(nx), *ddt = zerof(ndt), *dB = zerof(nbc), *dC = zerof(nbc), *dz = zerof(nx), *dh0 = zerof(ns);
    float *dA = zerof((size_t)H), *dD = zerof((size_t)H), *dbias = zerof((size_t)H);
    T_OK(mamba_scan_backward_ref(s, c.x, c.dt, c.dt_bias, c.A, c.Bm, c.Cm, c.D, c.z, c.h0, c.dy, c.dhT, dx, ddt,
                                 dB, dC, c.z ? dz : NULL, dh0, dA, dD, dbias));
    float *f = zerof(nx > ns ? (nx > nbc ? nx : nbc) : (ns > nbc ? ns : nbc));
    fd_grad(scan_loss_void, &c, c.x, nx, f);
    T_CLOSE(dx, f, nx, 1e-3, "scan dx");
    fd_grad(scan_loss_void, &c, c.dt, ndt, f);
    T_CLOSE(ddt, f, ndt, 1e-3, "scan ddt");
    fd_grad(scan_loss_void, &c, c.Bm, nbc, f);
    T_CLOSE(dB, f, nbc, 1e-3, "scan dBm");
    fd_grad(scan_loss_void, &c, c.Cm, nbc, f);
    T_CLOSE(dC, f, nbc, 1e-3, "scan dCm");
    fd_grad(scan_loss_void, &c, c.A, (size_t)H, f);
    T_CLOSE(dA, f, (size_t)H, 1e-3, "scan dA");
    /* the scale that bounds dA's error in the GPU tests (mamba_scan_dA_scale_ref, the sum of the
     * magnitudes of dA's per-token terms): at least |dA| (triangle inequality, against the
     * double-precision finite differences), and the float reference within 1e-4 of it from the
     * double (measured 2e-7 .. 1.2e-6) */
    {
        float *sc = zerof((size_t)H);
        T_OK(mamba_scan_dA_scale_ref(s, c.x, c.dt, c.dt_bias, c.A, c.Bm, c.Cm, c.D, c.z, c.h0, c.dy, c.dhT, sc));
        double worst = 0, lowest = 1e30;
        for (int64_t h = 0; h < H; h++) {
            worst = fmax(worst, fabs((double)dA[h] - f[h]) / sc[h]);
            lowest = fmin(lowest, sc[h] / fmax(fabs((double)f[h]), 1e-30));
        }
        T_CHECK(worst <= 1e-4, "scan dA: |dA - fd| / scale = %.3e > 1e-4", worst);
        T_CHECK(lowest >= 1.0 - 1e-5, "scan dA: scale / |fd dA| = %.6f < 1", lowest);
        free(sc);
    }
    fd_grad(scan_loss_void, &c, c.D, (size_t)H, f);
    T_CLOSE(dD, f, (size_t)H, 1e-3, "scan dD");
    fd_grad(scan_loss_void, &c, c.dt_bias, (size_t)H, f);
    T_CLOSE(dbias, f, (size_t)H, 1e-3, "scan ddt_bias");
    if (c.z) {
        fd_grad(scan_loss_void, &c, c.z, nx, f);
        T_CLOSE(dz, f, nx, 1e-3, "scan dz");
    }
    /* dh0: the loss is linear in h0, so perturb a copy whether or not h0 was given */
    {
        float *h0s = c.h0;
        if (!c.h0) c.h0 = zerof(ns);
        fd_grad(scan_loss_void, &c, c.h0, ns, f);
        T_CLOSE(dh0, f, ns, 1e-3, "scan dh0");
        if (!h0s) free(c.h0), c.h0 = NULL;
    }
    free(f);

    t_begin("scan equals step-by-step decode");
    {
        float *st = c.h0 ? dupf(c.h0, ns) : zerof(ns);
        float *xt = zerof((size_t)(B * H * P)), *zt = zerof((size_t)(B * H * P)), *dtt = zerof((size_t)(B * H));
        float *bt = zerof((size_t)(B * G * N)), *ct = zerof((size_t)(B * G * N)), *yt = zerof((size_t)(B * H * P));
        double worst = 0;
        for (int64_t t = 0; t < L; t++) {
            for (int64_t b = 0; b < B; b++) {
                int64_t r = b * L + t;
                memcpy(xt + b * H * P, c.x + r * H * P, sizeof(float) * (size_t)(H * P));
                if (c.z) memcpy(zt + b * H * P, c.z + r * H * P, sizeof(float) * (size_t)(H * P));
                memcpy(dtt + b * H, c.dt + r * H, sizeof(float) * (size_t)H);
                memcpy(bt + b * G * N, c.Bm + r * G * N, sizeof(float) * (size_t)(G * N));
                memcpy(ct + b * G * N, c.Cm + r * G * N, sizeof(float) * (size_t)(G * N));
            }
            T_OK(mamba_scan_decode_ref(s, xt, dtt, c.dt_bias, c.A, bt, ct, c.D, c.z ? zt : NULL, st, yt));
            for (int64_t b = 0; b < B; b++) worst = fmax(worst, max_abs_diff(yt + b * H * P, y + (b * L + t) * H * P, (size_t)(H * P)));
        }
        T_CHECK(worst <= 1e-5, "decode y differs from the scan by %.3e", worst);
        T_CHECK(max_abs_diff(st, hT, ns) <= 1e-5, "decode state differs from hT by %.3e", max_abs_diff(st, hT, ns));
        free(st), free(xt), free(zt), free(dtt), free(bt), free(ct), free(yt);
    }

    t_begin("scan two segments with carried state equal one run (forward and backward)");
    {
        int64_t L1 = L / 3 + 1, L2 = L - L1;
        struct mamba_scan_shape s1 = *s, s2 = *s;
        s1.L = L1, s2.L = L2;
        /* slice [B, L, W] into [B, Lseg, W] */
#define SLICE(src, W, t0, Ls)                                                                      \
    __extension__({                                                                                \
        float *o_ = zerof((size_t)(B * (Ls) * (W)));                                               \
        if (src)                                                                                   \
            for (int64_t b_ = 0; b_ < B; b_++)                                                     \
                memcpy(o_ + b_ * (Ls) * (W), (src) + (b_ * L + (t0)) * (W), sizeof(float) * (size_t)((Ls) * (W))); \
        o_;                                                                                        \
    })
        const int64_t HP = H * P, GN = G * N;
        float *x1 = SLICE(c.x, HP, 0, L1), *x2 = SLICE(c.x, HP, L1, L2);
        float *z1 = c.z ? SLICE(c.z, HP, 0, L1) : NULL, *z2 = c.z ? SLICE(c.z, HP, L1, L2) : NULL;
        float *d1 = SLICE(c.dt, H, 0, L1), *d2 = SLICE(c.dt, H, L1, L2);
        float *b1 = SLICE(c.Bm, GN, 0, L1), *b2 = SLICE(c.Bm, GN, L1, L2);
        float *c1 = SLICE(c.Cm, GN, 0, L1), *c2 = SLICE(c.Cm, GN, L1, L2);
        float *dy1 = SLICE(c.dy, HP, 0, L1), *dy2 = SLICE(c.dy, HP, L1, L2);
        float *y1 = zerof((size_t)(B * L1 * HP)), *y2 = zerof((size_t)(B * L2 * HP)), *mid = zerof(ns), *hT2 = zerof(ns);
        T_OK(mamba_scan_forward_ref(&s1, x1, d1, c.dt_bias, c.A, b1, c1, c.D, z1, c.h0, y1, mid));
        T_OK(mamba_scan_forward_ref(&s2, x2, d2, c.dt_bias, c.A, b2, c2, c.D, z2, mid, y2, hT2));
        float *ya = SLICE(y, HP, 0, L1), *yb = SLICE(y, HP, L1, L2);
        T_CHECK(max_abs_diff(y1, ya, (size_t)(B * L1 * HP)) <= 1e-6 && max_abs_diff(y2, yb, (size_t)(B * L2 * HP)) <= 1e-6 &&
                    max_abs_diff(hT2, hT, ns) <= 1e-6,
                "segmented forward differs");
        float *gx1 = zerof((size_t)(B * L1 * HP)), *gx2 = zerof((size_t)(B * L2 * HP)), *gz1 = zerof((size_t)(B * L1 * HP)),
              *gz2 = zerof((size_t)(B * L2 * HP)), *gd1 = zerof((size_t)(B * L1 * H)), *gd2 = zerof((size_t)(B * L2 * H)),
              *gb1 = zerof((size_t)(B * L1 * GN)), *gb2 = zerof((size_t)(B * L2 * GN)), *gc1 = zerof((size_t)(B * L1 * GN)),
              *gc2 = zerof((size_t)(B * L2 * GN)), *gmid = zerof(ns), *gh0 = zerof(ns);
        float *pa1 = zerof((size_t)H), *pa2 = zerof((size_t)H), *pd1 = zerof((size_t)H), *pd2 = zerof((size_t)H),
              *pb1 = zerof((size_t)H), *pb2 = zerof((size_t)H);
        T_OK(mamba_scan_backward_ref(&s2, x2, d2, c.dt_bias, c.A, b2, c2, c.D, z2, mid, dy2, c.dhT, gx2, gd2, gb2, gc2,
                                     z2 ? gz2 : NULL, gmid, pa2, pd2, pb2));
        T_OK(mamba_scan_backward_ref(&s1, x1, d1, c.dt_bias, c.A, b1, c1, c.D, z1, c.h0, dy1, gmid, gx1, gd1, gb1, gc1,
                                     z1 ? gz1 : NULL, gh0, pa1, pd1, pb1));
        float *rx = SLICE(dx, HP, 0, L1), *rx2 = SLICE(dx, HP, L1, L2), *rb = SLICE(dB, GN, 0, L1), *rb2 = SLICE(dB, GN, L1, L2);
        float *rd = SLICE(ddt, H, 0, L1), *rd2 = SLICE(ddt, H, L1, L2);
        double e = fmax(max_abs_diff(gx1, rx, (size_t)(B * L1 * HP)), max_abs_diff(gx2, rx2, (size_t)(B * L2 * HP)));
        e = fmax(e, fmax(max_abs_diff(gb1, rb, (size_t)(B * L1 * GN)), max_abs_diff(gb2, rb2, (size_t)(B * L2 * GN))));
        e = fmax(e, fmax(max_abs_diff(gd1, rd, (size_t)(B * L1 * H)), max_abs_diff(gd2, rd2, (size_t)(B * L2 * H))));
        e = fmax(e, max_abs_diff(gh0, dh0, ns));
        for (int64_t h = 0; h < H; h++) {
            e = fmax(e, fabs(pa1[h] + pa2[h] - dA[h]));
            e = fmax(e, fabs(pd1[h] + pd2[h] - dD[h]));
            e = fmax(e, fabs(pb1[h] + pb2[h] - dbias[h]));
        }
        T_CHECK(e <= 1e-4, "segmented backward differs from one run by %.3e", e);
        free(x1), free(x2), free(z1), free(z2), free(d1), free(d2), free(b1), free(b2), free(c1), free(c2), free(dy1), free(dy2);
        free(y1), free(y2), free(mid), free(hT2), free(ya), free(yb), free(gx1), free(gx2), free(gz1), free(gz2), free(gd1);
        free(gd2), free(gb1), free(gb2), free(gc1), free(gc2), free(gmid), free(gh0), free(pa1), free(pa2), free(pd1), free(pd2);
        free(pb1), free(pb2), free(rx), free(rx2), free(rb), free(rb2), free(rd), free(rd2);
#undef SLICE
    }

    t_begin("scan is causal");
    {
        int64_t t0 = L / 2;
        float *x2 = dupf(c.x, nx), *bb = dupf(c.Bm, nbc), *cc = dupf(c.Cm, nbc), *dd = dupf(c.dt, ndt), *y2 = zerof(nx);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = t0 + 1; t < L; t++) {
                for (int64_t i = 0; i < H * P; i++) x2[(b * L + t) * H * P + i] += 0.5f;
                for (int64_t i = 0; i < G * N; i++) bb[(b * L + t) * G * N + i] += 0.5f, cc[(b * L + t) * G * N + i] -= 0.5f;
                for (int64_t i = 0; i < H; i++) dd[(b * L + t) * H + i] += 0.5f;
            }
        T_OK(mamba_scan_forward_ref(s, x2, dd, c.dt_bias, c.A, bb, cc, c.D, c.z, c.h0, y2, NULL));
        int ok = 1, changed = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < L; t++)
                for (int64_t i = 0; i < H * P; i++) {
                    size_t k = (size_t)((b * L + t) * H * P + i);
                    if (t <= t0) ok &= y2[k] == y[k];
                    else changed |= y2[k] != y[k];
                }
        T_CHECK(ok, "an output at or before t=%lld changed", (long long)t0);
        T_CHECK(changed || t0 + 1 >= L, "no later output changed: the test perturbed nothing");
        free(x2), free(bb), free(cc), free(dd), free(y2);
    }
    free(y), free(hT), free(yd), free(yref), free(dx), free(ddt), free(dB), free(dC), free(dz), free(dh0), free(dA), free(dD), free(dbias);
    scan_free(&c);
}

static void test_errors(void) {
    t_begin("bad shapes and NULL inputs are rejected with a message naming them");
    struct mamba_conv_shape cs = {1, 4, 3, 0};
    float buf[4096] = {0};
    T_ERR(mamba_conv_forward_ref(&cs, buf, buf, buf, NULL, buf, NULL), "Kw");
    cs.Kw = 4, cs.L = 0;
    T_ERR(mamba_conv_forward_ref(&cs, buf, buf, buf, NULL, buf, NULL), "L = 0");
    cs.L = 4, cs.Cch = -1;
    T_ERR(mamba_check(&cs, NULL), "Cch");
    cs.Cch = 3;
    T_ERR(mamba_conv_forward_ref(&cs, NULL, buf, buf, NULL, buf, NULL), "x");
    struct mamba_scan_shape ss = {1, 4, 6, 2, 4, 3};
    T_ERR(mamba_scan_forward_ref(&ss, buf, buf, NULL, buf, buf, buf, NULL, NULL, NULL, buf, NULL), "G (ngroups) = 4");
    ss.G = 2, ss.N = 0;
    T_ERR(mamba_check(NULL, &ss), "N (state size)");
    ss.N = 3, ss.B = 0;
    T_ERR(mamba_scan_decode_ref(&ss, buf, buf, NULL, buf, buf, buf, NULL, NULL, buf, buf), "B = 0");
    ss.B = 1;
    T_ERR(mamba_scan_forward_ref(&ss, buf, buf, NULL, NULL, buf, buf, NULL, NULL, NULL, buf, NULL), "A must not");
    T_ERR(mamba_scan_backward_ref(&ss, buf, buf, NULL, buf, buf, buf, NULL, buf, NULL, buf, NULL, buf, buf, buf, buf,
                                  NULL, NULL, NULL, NULL, NULL),
          "dz");
    T_OK(mamba_scan_forward_ref(&ss, buf, buf, NULL, buf, buf, buf, NULL, NULL, NULL, buf, NULL));
}

int main(void) {
    lc_rng_seed(&rng, 20261127);
    test_conv(2, 9, 5, 4);
    test_conv(1, 2, 3, 4); /* L < Kw-1: the tail_out reaches into tail_in */
    test_conv(2, 5, 4, 1);
    test_scan(2, 7, 4, 3, 2, 5, 1, 1);
    test_scan(1, 11, 3, 2, 1, 4, 0, 0);
    test_scan(2, 5, 2, 4, 2, 3, 1, 0);
    test_errors();
    return t_finish();
}
