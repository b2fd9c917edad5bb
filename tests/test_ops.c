/* test_ops.c — the C reference of the common ops (kernels/ops_ref.c) against independent
 * computations: every backward against central finite differences of a double-precision
 * forward written here (J = sum c * forward(inputs) for a random c), the sgemm against a naive
 * triple loop in double for every transpose pair at ragged sizes, AdamW against a step worked
 * out by hand, cross-entropy with weights against a direct computation, RoPE identities
 * (segment offset, rotation), and bad arguments rejected with a message naming them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ops.h"
#include "test.h"

static lc_rng rng;

static float *rnd(size_t n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    lc_fill_normal(&rng, x, n, scale);
    return x;
}
static double *to_d(const float *x, size_t n) {
    double *d = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* Central differences of J over every element of `x` (n values, double), step h. */
typedef double (*objective)(void *ctx);
static void fd_grad(objective J, void *ctx, double *x, size_t n, double h, float *out) {
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double jp = J(ctx);
        x[i] = x0 - h;
        double jm = J(ctx);
        x[i] = x0;
        out[i] = (float)((jp - jm) / (2 * h));
    }
}

/* ---- matmul ---------------------------------------------------------------------------- */

static void naive_mm(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
                     const float *A, const float *B, double beta, const float *C0, double *C) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = ta ? A[k * M + i] : A[i * K + k];
                double b = tb ? B[j * K + k] : B[k * N + j];
                s += a * b;
            }
            C[i * N + j] = alpha * s + (beta != 0 ? beta * C0[i * N + j] : 0);
        }
}

static void test_matmul_vs_naive(void) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {70, 133, 131}, {129, 65, 257}, {64, 128, 128}, {3, 200, 0}};
    static char names[64][128]; /* t_begin keeps the pointer until the next case */
    int nc = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                char *name = names[nc++];
                snprintf(name, 128, "matmul ta=%d tb=%d M=%lld N=%lld K=%lld vs naive double", ta, tb,
                         (long long)M, (long long)N, (long long)K);
                t_begin(name);
                float *A = rnd((size_t)(M * K), 1), *B = rnd((size_t)(K * N), 1), *C = rnd((size_t)(M * N), 1);
                float *C0 = malloc(sizeof(float) * M * N);
                memcpy(C0, C, sizeof(float) * M * N);
                double *Cd = malloc(sizeof(double) * M * N);
                float alpha = 0.75f, beta = (s % 2) ? 0.5f : 0.0f;
                if (beta == 0) C[0] = NAN; /* beta = 0 must ignore what C held */
                T_OK(ops_matmul_ref(ta, tb, M, N, K, alpha, A, B, beta, C));
                naive_mm(ta, tb, M, N, K, alpha, A, B, beta, C0, Cd);
                float *Cf = malloc(sizeof(float) * M * N);
                for (int64_t i = 0; i < M * N; i++) Cf[i] = (float)Cd[i];
                T_CLOSE(C, Cf, (size_t)(M * N), 1e-6, "C");
                free(A), free(B), free(C), free(C0), free(Cd), free(Cf);
            }
}

/* y = x W^T (linear layer); J = sum c*y. The three products of a linear layer's forward and
 * backward, each a different transpose pair, against finite differences. */
struct lin_ctx { int64_t R, Din, Dout; double *x, *W, *c; };
static double lin_J(void *p) {
    struct lin_ctx *t = p;
    double J = 0;
    for (int64_t r = 0; r < t->R; r++)
        for (int64_t o = 0; o < t->Dout; o++) {
            double s = 0;
            for (int64_t i = 0; i < t->Din; i++) s += t->x[r * t->Din + i] * t->W[o * t->Din + i];
            J += t->c[r * t->Dout + o] * s;
        }
    return J;
}
static void test_matmul_grad(void) {
    t_begin("matmul: linear layer backward (dx = dy W, dW += dy^T x) vs finite differences");
    int64_t R = 9, Din = 13, Dout = 11;
    float *x = rnd(R * Din, 1), *W = rnd(Dout * Din, 1), *c = rnd(R * Dout, 1);
    float *y = malloc(sizeof(float) * R * Dout), *dx = rnd(R * Din, 1), *dW = rnd(Dout * Din, 1);
    float *dW0 = malloc(sizeof(float) * Dout * Din);
    memcpy(dW0, dW, sizeof(float) * Dout * Din);
    T_OK(ops_matmul_ref(0, 1, R, Dout, Din, 1, x, W, 0, y));
    T_OK(ops_matmul_ref(0, 0, R, Din, Dout, 1, c, W, 0, dx));
    T_OK(ops_matmul_ref(1, 0, Dout, Din, R, 1, c, x, 1, dW));
    for (int64_t i = 0; i < Dout * Din; i++) dW[i] -= dW0[i];
    struct lin_ctx t = {R, Din, Dout, to_d(x, R * Din), to_d(W, Dout * Din), to_d(c, R * Dout)};
    float *fx = malloc(sizeof(float) * R * Din), *fW = malloc(sizeof(float) * Dout * Din);
    fd_grad(lin_J, &t, t.x, R * Din, 1e-4, fx);
    fd_grad(lin_J, &t, t.W, Dout * Din, 1e-4, fW);
    T_CLOSE(dx, fx, R * Din, 1e-5, "dx");
    T_CLOSE(dW, fW, Dout * Din, 1e-5, "dW");
    free(x), free(W), free(c), free(y), free(dx), free(dW), free(dW0), free(fx), free(fW);
    free(t.x), free(t.W), free(t.c);
}

/* ---- RMSNorm --------------------------------------------------------------------------- */

struct rms_ctx { int64_t R, D; double eps, *x, *w, *c; };
static double rms_J(void *p) {
    struct rms_ctx *t = p;
    double J = 0;
    for (int64_t r = 0; r < t->R; r++) {
        double ss = 0;
        for (int64_t j = 0; j < t->D; j++) ss += t->x[r * t->D + j] * t->x[r * t->D + j];
        double rs = 1 / sqrt(ss / t->D + t->eps);
        for (int64_t j = 0; j < t->D; j++) J += t->c[r * t->D + j] * t->x[r * t->D + j] * rs * t->w[j];
    }
    return J;
}
static void test_rmsnorm(void) {
    t_begin("rmsnorm forward vs double; backward (dx, dweight accumulated, accumulate_dx) vs finite differences");
    int64_t R = 7, D = 19;
    float eps = 1e-5f;
    float *x = rnd(R * D, 1.5f), *w = rnd(D, 1), *c = rnd(R * D, 1);
    float *y = malloc(sizeof(float) * R * D), *rstd = malloc(sizeof(float) * R);
    float *dx = rnd(R * D, 1), *dx_acc = rnd(R * D, 1), *dx_acc0 = malloc(sizeof(float) * R * D);
    float *dw = rnd(D, 1), *dw0 = malloc(sizeof(float) * D);
    memcpy(dw0, dw, sizeof(float) * D);
    memcpy(dx_acc0, dx_acc, sizeof(float) * R * D);
    T_OK(ops_rmsnorm_forward_ref(R, D, eps, x, w, y, rstd));
    struct rms_ctx t = {R, D, eps, to_d(x, R * D), to_d(w, D), to_d(c, R * D)};
    /* forward: J with c = one-hot picks each output; compare y directly instead */
    float *yd = malloc(sizeof(float) * R * D);
    for (int64_t r = 0; r < R; r++) {
        double ss = 0;
        for (int64_t j = 0; j < D; j++) ss += t.x[r * D + j] * t.x[r * D + j];
        for (int64_t j = 0; j < D; j++) yd[r * D + j] = (float)(t.x[r * D + j] / sqrt(ss / D + eps) * t.w[j]);
    }
    T_CLOSE(y, yd, R * D, 1e-6, "y");
    T_OK(ops_rmsnorm_backward_ref(R, D, x, w, rstd, c, dx, dw, 0));
    T_OK(ops_rmsnorm_backward_ref(R, D, x, w, rstd, c, dx_acc, dw, 1));
    for (int64_t i = 0; i < D; i++) dw[i] = (dw[i] - dw0[i]) / 2; /* two backward calls */
    for (int64_t i = 0; i < R * D; i++) dx_acc[i] -= dx_acc0[i];
    float *fx = malloc(sizeof(float) * R * D), *fw = malloc(sizeof(float) * D);
    fd_grad(rms_J, &t, t.x, R * D, 1e-5, fx);
    fd_grad(rms_J, &t, t.w, D, 1e-5, fw);
    T_CLOSE(dx, fx, R * D, 1e-5, "dx");
    T_CLOSE(dx_acc, fx, R * D, 1e-5, "dx (accumulated)");
    T_CLOSE(dw, fw, D, 1e-5, "dweight");
    free(x), free(w), free(c), free(y), free(rstd), free(dx), free(dx_acc), free(dx_acc0), free(dw), free(dw0);
    free(yd), free(fx), free(fw), free(t.x), free(t.w), free(t.c);
}

/* ---- RoPE ------------------------------------------------------------------------------ */

/* HF's form: inv_freq = 1 / theta^(2i/dh), angle = position * inv_freq, in double. */
static void rope_naive(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t pos0, double theta,
                       const double *x, double *y) {
    int64_t h = dh / 2;
    for (int64_t b = 0; b < B; b++)
        for (int64_t l = 0; l < L; l++)
            for (int64_t hh = 0; hh < Hn; hh++)
                for (int64_t i = 0; i < h; i++) {
                    double a = (double)(pos0 + l) / pow(theta, 2.0 * i / dh);
                    int64_t o = ((b * L + l) * Hn + hh) * dh;
                    y[o + i] = x[o + i] * cos(a) - x[o + i + h] * sin(a);
                    y[o + i + h] = x[o + i + h] * cos(a) + x[o + i] * sin(a);
                }
}
struct rope_ctx { int64_t B, L, Hn, dh, pos0; double theta, *x, *c, *y; };
static double rope_J(void *p) {
    struct rope_ctx *t = p;
    int64_t n = t->B * t->L * t->Hn * t->dh;
    rope_naive(t->B, t->L, t->Hn, t->dh, t->pos0, t->theta, t->x, t->y);
    double J = 0;
    for (int64_t i = 0; i < n; i++) J += t->c[i] * t->y[i];
    return J;
}
static void test_rope(void) {
    int64_t B = 2, L = 5, Hn = 3, dh = 8, n = B * L * Hn * dh;
    float theta = 10000;
    float *x = rnd(n, 1), *c = rnd(n, 1), *y = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n);
    struct rope_ctx t = {B, L, Hn, dh, 3, theta, to_d(x, n), to_d(c, n), malloc(sizeof(double) * n)};

    t_begin("rope forward vs HF-form double (pos0 = 3, and pos0 = 2^24 + 5)");
    float *yd = malloc(sizeof(float) * n);
    T_OK(ops_rope_forward_ref(B, L, Hn, dh, 3, theta, x, y));
    rope_naive(B, L, Hn, dh, 3, theta, t.x, t.y);
    for (int64_t i = 0; i < n; i++) yd[i] = (float)t.y[i];
    T_CLOSE(y, yd, n, 1e-6, "y");
    int64_t far = (1 << 24) + 5;
    T_OK(ops_rope_forward_ref(B, L, Hn, dh, far, theta, x, y));
    rope_naive(B, L, Hn, dh, far, theta, t.x, t.y);
    for (int64_t i = 0; i < n; i++) yd[i] = (float)t.y[i];
    T_CLOSE(y, yd, n, 1e-6, "y at 16M");

    t_begin("rope backward vs finite differences; in place");
    T_OK(ops_rope_backward_ref(B, L, Hn, dh, 3, theta, c, dx));
    float *fx = malloc(sizeof(float) * n);
    fd_grad(rope_J, &t, t.x, n, 1e-5, fx);
    T_CLOSE(dx, fx, n, 1e-5, "dx");
    float *inpl = malloc(sizeof(float) * n);
    memcpy(inpl, c, sizeof(float) * n);
    T_OK(ops_rope_backward_ref(B, L, Hn, dh, 3, theta, inpl, inpl));
    T_CLOSE(inpl, dx, n, 0, "in-place dx");

    t_begin("rope: a segment at offset p equals the tail of one call from 0; rotation keeps norms");
    {
        int64_t Lf = L + 4; /* positions 0..Lf-1; the segment is positions 4..Lf-1 */
        float *xf = rnd(B * Lf * Hn * dh, 1), *yf = malloc(sizeof(float) * B * Lf * Hn * dh);
        float *xs = malloc(sizeof(float) * n), *ys = malloc(sizeof(float) * n), *yt = malloc(sizeof(float) * n);
        for (int64_t b = 0; b < B; b++)
            memcpy(xs + b * L * Hn * dh, xf + (b * Lf + 4) * Hn * dh, sizeof(float) * L * Hn * dh);
        T_OK(ops_rope_forward_ref(B, Lf, Hn, dh, 0, theta, xf, yf));
        T_OK(ops_rope_forward_ref(B, L, Hn, dh, 4, theta, xs, ys));
        for (int64_t b = 0; b < B; b++)
            memcpy(yt + b * L * Hn * dh, yf + (b * Lf + 4) * Hn * dh, sizeof(float) * L * Hn * dh);
        T_CLOSE(ys, yt, n, 0, "segment");
        double n0 = 0, n1 = 0;
        for (int64_t i = 0; i < n; i++) n0 += (double)xs[i] * xs[i], n1 += (double)ys[i] * ys[i];
        T_CHECK(fabs(n0 - n1) < 1e-5 * n0, "norm %.9g -> %.9g", n0, n1);
        free(xf), free(yf), free(xs), free(ys), free(yt);
    }
    free(x), free(c), free(y), free(dx), free(yd), free(fx), free(inpl), free(t.x), free(t.c), free(t.y);
}

/* ---- SwiGLU ---------------------------------------------------------------------------- */

struct swi_ctx { int64_t R, F, ld; double *g, *u, *c; };
static double swi_J(void *p) {
    struct swi_ctx *t = p;
    double J = 0;
    for (int64_t r = 0; r < t->R; r++)
        for (int64_t j = 0; j < t->F; j++) {
            double g = t->g[r * t->ld + j], u = t->u[r * t->ld + j];
            J += t->c[r * t->F + j] * g / (1 + exp(-g)) * u;
        }
    return J;
}
static void test_swiglu(void) {
    t_begin("swiglu forward vs double, backward vs finite differences (fused [R, 2F] input, ld = 2F)");
    int64_t R = 6, F = 11, ld = 2 * F;
    float *buf = rnd(R * ld, 2), *c = rnd(R * F, 1), *y = malloc(sizeof(float) * R * F);
    float *dbuf = malloc(sizeof(float) * R * ld);
    for (int64_t i = 0; i < R * ld; i++) dbuf[i] = NAN;
    T_OK(ops_swiglu_forward_ref(R, F, ld, buf, buf + F, y));
    T_OK(ops_swiglu_backward_ref(R, F, ld, buf, buf + F, c, dbuf, dbuf + F));
    double *bd = to_d(buf, R * ld);
    struct swi_ctx t = {R, F, ld, bd, bd + F, to_d(c, R * F)};
    float *yd = malloc(sizeof(float) * R * F);
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < F; j++) {
            double g = bd[r * ld + j];
            yd[r * F + j] = (float)(g / (1 + exp(-g)) * bd[r * ld + F + j]);
        }
    T_CLOSE(y, yd, R * F, 1e-6, "y");
    float *fd = malloc(sizeof(float) * R * ld);
    fd_grad(swi_J, &t, bd, R * ld, 1e-5, fd); /* gate and up columns of the fused buffer */
    T_CLOSE(dbuf, fd, R * ld, 1e-5, "dgate|dup");
    free(buf), free(c), free(y), free(dbuf), free(bd), free(t.c), free(yd), free(fd);
}

/* ---- embedding ------------------------------------------------------------------------- */

static void test_embedding(void) {
    t_begin("embedding forward gathers rows; backward sums repeated ids (vs finite differences)");
    int64_t R = 10, V = 7, D = 5;
    int32_t ids[10] = {3, 0, 6, 3, 3, 1, 6, 2, 0, 5};
    float *table = rnd(V * D, 1), *out = malloc(sizeof(float) * R * D), *c = rnd(R * D, 1);
    float *dt = rnd(V * D, 1), *dt0 = malloc(sizeof(float) * V * D);
    memcpy(dt0, dt, sizeof(float) * V * D);
    T_OK(ops_embedding_forward_ref(R, V, D, ids, table, out));
    int same = 1;
    for (int64_t r = 0; r < R; r++) same &= memcmp(out + r * D, table + ids[r] * D, sizeof(float) * D) == 0;
    T_CHECK(same, "forward rows differ from table rows");
    T_OK(ops_embedding_backward_ref(R, V, D, ids, c, dt));
    for (int64_t i = 0; i < V * D; i++) dt[i] -= dt0[i];
    /* J = sum c * table[ids]: dJ/dtable[v, j] = sum over rows with id v of c[r, j] (exact) */
    float *fd = calloc(V * D, sizeof(float));
    for (int64_t v = 0; v < V; v++)
        for (int64_t j = 0; j < D; j++) {
            double s = 0;
            for (int64_t r = 0; r < R; r++) s += ids[r] == v ? c[r * D + j] : 0;
            fd[v * D + j] = (float)s;
        }
    T_CLOSE(dt, fd, V * D, 1e-6, "dtable");
    T_CHECK(dt[4 * D] == 0.0f, "unused id 4 got gradient %g", dt[4 * D]);
    free(table), free(out), free(c), free(dt), free(dt0), free(fd);
}

/* ---- cross-entropy --------------------------------------------------------------------- */

struct xent_ctx { int64_t R, V; double *z; const int32_t *t; const float *w; double W; };
static double xent_J(void *p) {
    struct xent_ctx *c = p;
    double J = 0;
    for (int64_t r = 0; r < c->R; r++) {
        if (c->w[r] == 0) continue;
        double se = 0;
        for (int64_t v = 0; v < c->V; v++) se += exp(c->z[r * c->V + v]);
        J += c->w[r] * (log(se) - c->z[r * c->V + c->t[r]]);
    }
    return J / c->W;
}
static void test_xent(void) {
    int64_t R = 8, V = 13;
    int32_t tg[8] = {0, 12, 5, -100, 7, 7, 3, 11};
    float w[8] = {1, 0.5f, 2, 0, 1, 1, 0.25f, 1};
    float *z = rnd(R * V, 3), *dz = malloc(sizeof(float) * R * V), *rl = malloc(sizeof(float) * R);
    float loss = NAN;

    t_begin("cross-entropy with weights vs a direct computation (loss, per-row nll)");
    T_OK(ops_xent_forward_backward_ref(R, V, z, tg, w, 0, &loss, rl, dz));
    double wsum = 0, tot = 0;
    float nll[8];
    for (int64_t r = 0; r < R; r++) {
        double se = 0;
        for (int64_t v = 0; v < V; v++) se += exp((double)z[r * V + v]);
        nll[r] = w[r] ? (float)(log(se) - z[r * V + tg[r]]) : 0;
        tot += w[r] * (double)nll[r];
        wsum += w[r];
    }
    float expect = (float)(tot / wsum);
    T_CHECK(fabsf(loss - expect) <= 1e-6f * fabsf(expect), "loss %.9g vs %.9g", loss, expect);
    T_CLOSE(rl, nll, R, 1e-6, "row_loss");

    t_begin("cross-entropy dlogits vs finite differences; ignored rows get 0; norm overrides the sum");
    double *zd = to_d(z, R * V);
    struct xent_ctx c = {R, V, zd, tg, w, wsum};
    float *fd = malloc(sizeof(float) * R * V);
    fd_grad(xent_J, &c, zd, R * V, 1e-5, fd);
    T_CLOSE(dz, fd, R * V, 1e-5, "dlogits");
    int zero = 1;
    for (int64_t v = 0; v < V; v++) zero &= dz[3 * V + v] == 0;
    T_CHECK(zero, "ignored row 3 has a gradient");
    float loss2;
    float *dz2 = malloc(sizeof(float) * R * V);
    memcpy(dz2, z, sizeof(float) * R * V); /* in place: dlogits overwrite logits */
    T_OK(ops_xent_forward_backward_ref(R, V, dz2, tg, w, 4 * (float)wsum, &loss2, NULL, dz2));
    T_CHECK(fabsf(loss2 - expect / 4) <= 1e-6f * fabsf(expect), "loss with norm %.9g vs %.9g", loss2, expect / 4);
    for (int64_t i = 0; i < R * V; i++) dz2[i] *= 4;
    T_CLOSE(dz2, dz, R * V, 1e-6, "dlogits with norm, in place");
    float wz[8] = {0};
    T_OK(ops_xent_forward_backward_ref(R, V, z, tg, wz, 0, &loss2, NULL, dz2));
    T_CHECK(loss2 == 0 && dz2[0] == 0, "all-ignored batch: loss %g dlogits[0] %g", loss2, dz2[0]);
    free(z), free(dz), free(rl), free(zd), free(fd), free(dz2);
}

/* ---- AdamW ----------------------------------------------------------------------------- */

static void test_adamw(void) {
    t_begin("adamw: a step worked out by hand (step 1 and step 2, decay, grad_scale)");
    /* lr 0.1, beta1 0.9, beta2 0.99, eps 1e-8, wd 0.5, grad_scale 2, p = 1, grad 0.25 (g = 0.5).
     * step 1: p <- 1 - 0.1*0.5*1 = 0.95; m = 0.05; v = 0.0025; mhat = 0.5; vhat = 0.25;
     *         p <- 0.95 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.85 (to 1e-8).
     * step 2 with grad -0.25 (g = -0.5): p <- 0.85 * (1 - 0.05) = 0.8075;
     *         m = 0.045 - 0.05 = -0.005; v = 0.002475 + 0.0025 = 0.004975;
     *         mhat = -0.005 / 0.19 = -0.0263158; vhat = 0.004975 / 0.0199 = 0.25;
     *         p <- 0.8075 + 0.1 * 0.0263158 / 0.5 = 0.81276316. */
    float p = 1, g = 0.25f, m = 0, v = 0;
    struct ops_adamw h = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.5f,
                          .grad_scale = 2, .step = 1};
    T_OK(ops_adamw_step_ref(1, &p, &g, &m, &v, &h));
    T_CHECK(fabsf(p - 0.85f) < 1e-6f && fabsf(m - 0.05f) < 1e-7f && fabsf(v - 0.0025f) < 1e-8f,
            "step 1: p %.9g m %.9g v %.9g", p, m, v);
    g = -0.25f;
    h.step = 2;
    T_OK(ops_adamw_step_ref(1, &p, &g, &m, &v, &h));
    T_CHECK(fabsf(p - 0.81276316f) < 2e-6f && fabsf(m + 0.005f) < 1e-7f && fabsf(v - 0.004975f) < 1e-8f,
            "step 2: p %.9g m %.9g v %.9g", p, m, v);

    t_begin("adamw on a random vector vs the formula in double");
    int64_t n = 1001;
    float *pp = rnd(n, 1), *gg = rnd(n, 1), *mm = rnd(n, 0.1f), *vv = rnd(n, 0.1f), *expect = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) vv[i] = vv[i] * vv[i];
    struct ops_adamw h2 = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                           .grad_scale = 0.7f, .step = 7};
    for (int64_t i = 0; i < n; i++) {
        double gi = 0.7 * gg[i], pi = pp[i] * (1 - 3e-3 * 0.1);
        double mi = 0.9 * mm[i] + 0.1 * gi, vi = 0.95 * vv[i] + 0.05 * gi * gi;
        expect[i] = (float)(pi - 3e-3 * (mi / (1 - pow(0.9, 7))) / (sqrt(vi / (1 - pow(0.95, 7))) + 1e-8));
    }
    T_OK(ops_adamw_step_ref(n, pp, gg, mm, vv, &h2));
    T_CLOSE(pp, expect, n, 1e-6, "p");
    free(pp), free(gg), free(mm), free(vv), free(expect);
}

/* ---- bad arguments --------------------------------------------------------------------- */

static void test_bad_args(void) {
    t_begin("bad arguments are rejected with a message naming them");
    float a[64] = {1}, b[64] = {1}, c[64] = {0};
    int32_t ids[4] = {0, 1, 9, 2}, tg[4] = {0, 1, 2, 77};
    float w[4] = {1, 1, 1, 1};
    T_ERR(ops_matmul_ref(2, 0, 2, 2, 2, 1, a, b, 0, c), "ta = 2");
    T_ERR(ops_matmul_ref(0, 0, -1, 2, 2, 1, a, b, 0, c), "M = -1");
    T_ERR(ops_matmul_ref(0, 0, 2, 2, 2, 1, NULL, b, 0, c), "A is NULL");
    T_ERR(ops_rmsnorm_forward_ref(2, 0, 1e-5f, a, b, c, NULL), "D = 0");
    T_ERR(ops_rmsnorm_forward_ref(2, 4, -1, a, b, c, NULL), "eps");
    T_ERR(ops_rmsnorm_backward_ref(2, 4, a, b, w, c, c, a, 0), "dx may not alias");
    T_ERR(ops_rmsnorm_backward_ref(2, 4, a, b, NULL, c, a + 32, b + 32, 0), "rstd is NULL");
    T_ERR(ops_rope_forward_ref(1, 2, 1, 5, 0, 1e4f, a, c), "dh = 5 must be even");
    T_ERR(ops_rope_forward_ref(1, 2, 1, 4, -3, 1e4f, a, c), "pos0 = -3");
    T_ERR(ops_rope_backward_ref(1, 2, 1, 4, 0, 0.5f, a, c), "theta");
    T_ERR(ops_swiglu_forward_ref(2, 4, 3, a, b, c), "ld = 3 must be >= F = 4");
    T_ERR(ops_swiglu_backward_ref(2, 4, 4, a, b, c, NULL, a), "dgate is NULL");
    T_ERR(ops_embedding_forward_ref(4, 5, 2, ids, a, c), "id 9 at row 2");
    T_ERR(ops_embedding_backward_ref(4, 5, 2, ids, a, c), "id 9 at row 2");
    T_ERR(ops_xent_forward_backward_ref(4, 5, a, tg, w, 0, c, NULL, NULL), "target 77 at row 3");
    T_ERR(ops_xent_forward_backward_ref(4, 5, a, tg, NULL, 0, c, NULL, NULL), "weights is NULL");
    w[1] = -1;
    T_ERR(ops_xent_forward_backward_ref(4, 100, a, tg, w, 0, c, NULL, NULL), "weights[1] = -1");
    struct ops_adamw h = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .grad_scale = 1, .step = 0};
    T_ERR(ops_adamw_step_ref(4, a, b, c, c + 8, &h), "step = 0");
    h.step = 1;
    h.beta2 = 1;
    T_ERR(ops_adamw_step_ref(4, a, b, c, c + 8, &h), "beta2 = 1");
    T_ERR(ops_adamw_step_ref(4, a, b, c, c + 8, NULL), "h is NULL");
}

int main(void) {
    lc_rng_seed(&rng, 20261127);
    test_matmul_vs_naive();
    test_matmul_grad();
    test_rmsnorm();
    test_rope();
    test_swiglu();
    test_embedding();
    test_xent();
    test_adamw();
    test_bad_args();
    return t_finish();
}
