/* ops_ref.c — C reference (fp32) of the common ops: matmul, RMSNorm, RoPE, SwiGLU, embedding,
 * softmax cross-entropy, AdamW. Layouts and math: ops.h. These are what the CUDA ops are
 * tested against and what the CPU backend runs, so they favour clarity, with two concessions to
 * speed: the matmul is blocked and packed (the CPU model spends its time there), and row loops
 * run under OpenMP. Row reductions accumulate in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

static lc_status check_dims(const char *fn, const char *name, int64_t v, int64_t lo) {
    if (v < lo) return lc_errorf(LC_EINVAL, "%s: %s = %lld must be >= %lld", fn, name, (long long)v, (long long)lo);
    return LC_OK;
}
#define REQUIRE_PTR(fn, p) LC_REQUIRE((p) != NULL, "%s: %s is NULL", fn, #p)

/* ---- matmul ---------------------------------------------------------------------------- */

/* Tile sizes: a packed MB x KB panel of op(A) (32 KiB) and a KB x NB panel of op(B) (64 KiB)
 * stay in L2 while the MB x NB accumulator (32 KiB) is updated with unit-stride inner loops. */
enum { MM_MB = 64, MM_NB = 128, MM_KB = 128 };

lc_status ops_matmul_ref(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, const float *B, float beta, float *C) {
    const char *fn = "ops_matmul_ref";
    LC_REQUIRE(ta == 0 || ta == 1, "%s: ta = %d must be 0 or 1", fn, ta);
    LC_REQUIRE(tb == 0 || tb == 1, "%s: tb = %d must be 0 or 1", fn, tb);
    LC_TRY(check_dims(fn, "M", M, 0));
    LC_TRY(check_dims(fn, "N", N, 0));
    LC_TRY(check_dims(fn, "K", K, 0));
    if (M == 0 || N == 0) return LC_OK;
    REQUIRE_PTR(fn, C);
    if (K > 0) {
        REQUIRE_PTR(fn, A);
        REQUIRE_PTR(fn, B);
    }
    int64_t nbm = (M + MM_MB - 1) / MM_MB, nbn = (N + MM_NB - 1) / MM_NB;
    int oom = 0;
#pragma omp parallel
    {
        float *ap = malloc(sizeof(float) * MM_MB * MM_KB);
        float *bp = malloc(sizeof(float) * MM_KB * MM_NB);
        float *acc = malloc(sizeof(float) * MM_MB * MM_NB);
        if (!ap || !bp || !acc) {
#pragma omp atomic write
            oom = 1;
        }
#pragma omp barrier
        if (!oom) {
#pragma omp for collapse(2) schedule(dynamic)
            for (int64_t ib = 0; ib < nbm; ib++) {
                for (int64_t jb = 0; jb < nbn; jb++) {
                    int64_t i0 = ib * MM_MB, j0 = jb * MM_NB;
                    int64_t mb = M - i0 < MM_MB ? M - i0 : MM_MB;
                    int64_t nb = N - j0 < MM_NB ? N - j0 : MM_NB;
                    memset(acc, 0, sizeof(float) * MM_MB * MM_NB);
                    for (int64_t k0 = 0; k0 < K; k0 += MM_KB) {
                        int64_t kb = K - k0 < MM_KB ? K - k0 : MM_KB;
                        /* pack op(A)[i0.., k0..] as ap[i][k] and op(B)[k0.., j0..] as bp[k][j] */
                        for (int64_t i = 0; i < mb; i++)
                            for (int64_t k = 0; k < kb; k++)
                                ap[i * MM_KB + k] = ta ? A[(k0 + k) * M + i0 + i] : A[(i0 + i) * K + k0 + k];
                        for (int64_t k = 0; k < kb; k++)
                            for (int64_t j = 0; j < nb; j++)
                                bp[k * MM_NB + j] = tb ? B[(j0 + j) * K + k0 + k] : B[(k0 + k) * N + j0 + j];
                        for (int64_t i = 0; i < mb; i++) {
                            float *ci = acc + i * MM_NB;
                            for (int64_t k = 0; k < kb; k++) {
                                float a = ap[i * MM_KB + k];
                                const float *bk = bp + k * MM_NB;
                                for (int64_t j = 0; j < nb; j++) ci[j] += a * bk[j];
                            }
                        }
                    }
                    for (int64_t i = 0; i < mb; i++) {
                        float *c = C + (i0 + i) * N + j0;
                        const float *ci = acc + i * MM_NB;
                        for (int64_t j = 0; j < nb; j++)
                            c[j] = beta == 0.0f ? alpha * ci[j] : alpha * ci[j] + beta * c[j];
                    }
                }
            }
        }
        free(ap);
        free(bp);
        free(acc);
    }
    if (oom) return lc_errorf(LC_ENOMEM, "%s: out of memory for the packing buffers", fn);
    return LC_OK;
}

/* ---- RMSNorm --------------------------------------------------------------------------- */

lc_status ops_rmsnorm_forward_ref(int64_t R, int64_t D, float eps, const float *x,
                                  const float *weight, float *y, float *rstd) {
    const char *fn = "ops_rmsnorm_forward_ref";
    LC_TRY(check_dims(fn, "R", R, 0));
    LC_TRY(check_dims(fn, "D", D, 1));
    LC_REQUIRE(eps >= 0 && isfinite(eps), "%s: eps = %g must be finite and >= 0", fn, eps);
    REQUIRE_PTR(fn, x);
    REQUIRE_PTR(fn, weight);
    REQUIRE_PTR(fn, y);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * D;
        double ss = 0;
        for (int64_t j = 0; j < D; j++) ss += (double)xr[j] * xr[j];
        float rs = (float)(1.0 / sqrt(ss / (double)D + eps));
        for (int64_t j = 0; j < D; j++) y[r * D + j] = xr[j] * rs * weight[j];
        if (rstd) rstd[r] = rs;
    }
    return LC_OK;
}

lc_status ops_rmsnorm_backward_ref(int64_t R, int64_t D, const float *x, const float *weight,
                                   const float *rstd, const float *dy, float *dx, float *dweight,
                                   int accumulate_dx) {
    const char *fn = "ops_rmsnorm_backward_ref";
    LC_TRY(check_dims(fn, "R", R, 0));
    LC_TRY(check_dims(fn, "D", D, 1));
    REQUIRE_PTR(fn, x);
    REQUIRE_PTR(fn, weight);
    REQUIRE_PTR(fn, rstd);
    REQUIRE_PTR(fn, dy);
    REQUIRE_PTR(fn, dx);
    REQUIRE_PTR(fn, dweight);
    LC_REQUIRE(dx != x && dx != dy, "%s: dx may not alias x or dy", fn);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * D, *dyr = dy + r * D;
        float rs = rstd[r];
        double dot = 0; /* sum_j (w dy)_j xh_j */
        for (int64_t j = 0; j < D; j++) dot += (double)weight[j] * dyr[j] * xr[j] * rs;
        float mean = (float)(dot / (double)D);
        for (int64_t j = 0; j < D; j++) {
            float v = rs * (weight[j] * dyr[j] - xr[j] * rs * mean);
            dx[r * D + j] = accumulate_dx ? dx[r * D + j] + v : v;
        }
    }
    /* dweight: columns in parallel, rows in order (deterministic) */
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < D; j++) {
        double s = 0;
        for (int64_t r = 0; r < R; r++) s += (double)dy[r * D + j] * x[r * D + j] * rstd[r];
        dweight[j] += (float)s;
    }
    return LC_OK;
}

/* ---- RoPE ------------------------------------------------------------------------------ */

/* cos/sin of p * theta^(-2i/dh), angle in double and reduced mod 2pi (see ops.h). */
static void rope_cs(int64_t p, int64_t i, int64_t dh, float theta, float *c, float *s) {
    double f = pow((double)theta, -2.0 * (double)i / (double)dh);
    double a = fmod((double)p * f, 2.0 * M_PI);
    *c = (float)cos(a);
    *s = (float)sin(a);
}

static lc_status rope_apply(const char *fn, int64_t B, int64_t L, int64_t Hn, int64_t dh,
                            int64_t pos0, float theta, const float *in, float *out, float sign) {
    LC_TRY(check_dims(fn, "B", B, 0));
    LC_TRY(check_dims(fn, "L", L, 0));
    LC_TRY(check_dims(fn, "Hn", Hn, 0));
    LC_TRY(check_dims(fn, "dh", dh, 2));
    LC_REQUIRE(dh % 2 == 0, "%s: dh = %lld must be even", fn, (long long)dh);
    LC_TRY(check_dims(fn, "pos0", pos0, 0));
    LC_REQUIRE(theta > 1 && isfinite(theta), "%s: theta = %g must be finite and > 1", fn, theta);
    REQUIRE_PTR(fn, in);
    REQUIRE_PTR(fn, out);
    int64_t h = dh / 2;
#pragma omp parallel for schedule(static)
    for (int64_t l = 0; l < L; l++) {
        for (int64_t i = 0; i < h; i++) {
            float c, s;
            rope_cs(pos0 + l, i, dh, theta, &c, &s);
            s *= sign; /* the backward rotates by -angle */
            for (int64_t b = 0; b < B; b++)
                for (int64_t hh = 0; hh < Hn; hh++) {
                    int64_t o = ((b * L + l) * Hn + hh) * dh;
                    float x1 = in[o + i], x2 = in[o + i + h];
                    out[o + i] = x1 * c - x2 * s;
                    out[o + i + h] = x2 * c + x1 * s;
                }
        }
    }
    return LC_OK;
}

lc_status ops_rope_forward_ref(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t pos0,
                               float theta, const float *x, float *y) {
    return rope_apply("ops_rope_forward_ref", B, L, Hn, dh, pos0, theta, x, y, 1.0f);
}
lc_status ops_rope_backward_ref(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t pos0,
                                float theta, const float *dy, float *dx) {
    return rope_apply("ops_rope_backward_ref", B, L, Hn, dh, pos0, theta, dy, dx, -1.0f);
}

/* ---- SwiGLU ---------------------------------------------------------------------------- */

static lc_status swiglu_check(const char *fn, int64_t R, int64_t F, int64_t ld) {
    LC_TRY(check_dims(fn, "R", R, 0));
    LC_TRY(check_dims(fn, "F", F, 1));
    LC_REQUIRE(ld >= F, "%s: ld = %lld must be >= F = %lld", fn, (long long)ld, (long long)F);
    return LC_OK;
}

lc_status ops_swiglu_forward_ref(int64_t R, int64_t F, int64_t ld, const float *gate,
                                 const float *up, float *y) {
    const char *fn = "ops_swiglu_forward_ref";
    LC_TRY(swiglu_check(fn, R, F, ld));
    REQUIRE_PTR(fn, gate);
    REQUIRE_PTR(fn, up);
    REQUIRE_PTR(fn, y);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < F; j++) {
            float g = gate[r * ld + j];
            y[r * F + j] = g / (1.0f + expf(-g)) * up[r * ld + j];
        }
    return LC_OK;
}

lc_status ops_swiglu_backward_ref(int64_t R, int64_t F, int64_t ld, const float *gate,
                                  const float *up, const float *dy, float *dgate, float *dup) {
    const char *fn = "ops_swiglu_backward_ref";
    LC_TRY(swiglu_check(fn, R, F, ld));
    REQUIRE_PTR(fn, gate);
    REQUIRE_PTR(fn, up);
    REQUIRE_PTR(fn, dy);
    REQUIRE_PTR(fn, dgate);
    REQUIRE_PTR(fn, dup);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < F; j++) {
            float g = gate[r * ld + j], u = up[r * ld + j], d = dy[r * F + j];
            float sg = 1.0f / (1.0f + expf(-g));
            dgate[r * ld + j] = d * u * sg * (1.0f + g * (1.0f - sg));
            dup[r * ld + j] = d * g * sg;
        }
    return LC_OK;
}

/* ---- embedding ------------------------------------------------------------------------- */

static lc_status embedding_check(const char *fn, int64_t R, int64_t V, int64_t D,
                                 const int32_t *ids) {
    LC_TRY(check_dims(fn, "R", R, 0));
    LC_TRY(check_dims(fn, "V", V, 1));
    LC_TRY(check_dims(fn, "D", D, 1));
    LC_REQUIRE(V <= INT32_MAX, "%s: V = %lld does not fit int32 ids", fn, (long long)V);
    REQUIRE_PTR(fn, ids);
    for (int64_t r = 0; r < R; r++)
        LC_REQUIRE(ids[r] >= 0 && ids[r] < V, "%s: id %d at row %lld is outside [0, V = %lld)", fn,
                   ids[r], (long long)r, (long long)V);
    return LC_OK;
}

lc_status ops_embedding_forward_ref(int64_t R, int64_t V, int64_t D, const int32_t *ids,
                                    const float *table, float *out) {
    const char *fn = "ops_embedding_forward_ref";
    LC_TRY(embedding_check(fn, R, V, D, ids));
    REQUIRE_PTR(fn, table);
    REQUIRE_PTR(fn, out);
    for (int64_t r = 0; r < R; r++) memcpy(out + r * D, table + (int64_t)ids[r] * D, sizeof(float) * D);
    return LC_OK;
}

lc_status ops_embedding_backward_ref(int64_t R, int64_t V, int64_t D, const int32_t *ids,
                                     const float *dout, float *dtable) {
    const char *fn = "ops_embedding_backward_ref";
    LC_TRY(embedding_check(fn, R, V, D, ids));
    REQUIRE_PTR(fn, dout);
    REQUIRE_PTR(fn, dtable);
    /* rows in order (two rows may share an id), columns in parallel */
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < D; j++)
        for (int64_t r = 0; r < R; r++) dtable[(int64_t)ids[r] * D + j] += dout[r * D + j];
    return LC_OK;
}

/* ---- softmax cross-entropy ------------------------------------------------------------- */

lc_status ops_xent_forward_backward_ref(int64_t R, int64_t V, const float *logits,
                                        const int32_t *targets, const float *weights, float norm,
                                        float *loss, float *row_loss, float *dlogits) {
    const char *fn = "ops_xent_forward_backward_ref";
    LC_TRY(check_dims(fn, "R", R, 0));
    LC_TRY(check_dims(fn, "V", V, 1));
    LC_REQUIRE(isfinite(norm), "%s: norm = %g must be finite", fn, norm);
    REQUIRE_PTR(fn, logits);
    REQUIRE_PTR(fn, targets);
    REQUIRE_PTR(fn, weights);
    REQUIRE_PTR(fn, loss);
    double wsum = 0;
    for (int64_t r = 0; r < R; r++) {
        LC_REQUIRE(weights[r] >= 0 && isfinite(weights[r]),
                   "%s: weights[%lld] = %g must be finite and >= 0", fn, (long long)r, weights[r]);
        LC_REQUIRE(weights[r] == 0 || (targets[r] >= 0 && targets[r] < V),
                   "%s: target %d at row %lld is outside [0, V = %lld)", fn, targets[r],
                   (long long)r, (long long)V);
        wsum += weights[r];
    }
    double W = norm > 0 ? (double)norm : wsum;
    double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t r = 0; r < R; r++) {
        const float *lr = logits + r * V;
        float *dr = dlogits ? dlogits + r * V : NULL;
        if (weights[r] == 0) {
            if (row_loss) row_loss[r] = 0;
            if (dr)
                for (int64_t v = 0; v < V; v++) dr[v] = 0;
            continue;
        }
        float mx = lr[0];
        for (int64_t v = 1; v < V; v++) mx = lr[v] > mx ? lr[v] : mx;
        double se = 0;
        for (int64_t v = 0; v < V; v++) se += exp((double)lr[v] - mx);
        double lse = mx + log(se);
        int32_t t = targets[r];
        double nll = lse - lr[t];
        if (row_loss) row_loss[r] = (float)nll;
        total += weights[r] * nll;
        if (dr) {
            double scale = W > 0 ? weights[r] / W : 0;
            for (int64_t v = 0; v < V; v++) { /* reads lr[v] before dr[v] overwrites it */
                double p = exp((double)lr[v] - lse);
                dr[v] = (float)(scale * (p - (v == t)));
            }
        }
    }
    *loss = W > 0 ? (float)(total / W) : 0.0f;
    return LC_OK;
}

/* ---- AdamW ----------------------------------------------------------------------------- */

lc_status ops_adamw_check(const char *fn, int64_t n, const float *p, const float *grad,
                          const float *m, const float *v, const struct ops_adamw *h);
lc_status ops_adamw_check(const char *fn, int64_t n, const float *p, const float *grad,
                          const float *m, const float *v, const struct ops_adamw *h) {
    LC_TRY(check_dims(fn, "n", n, 0));
    REQUIRE_PTR(fn, h);
    LC_REQUIRE(h->step >= 1, "%s: step = %lld must be >= 1 (steps count from 1)", fn, (long long)h->step);
    LC_REQUIRE(h->lr >= 0 && isfinite(h->lr), "%s: lr = %g must be finite and >= 0", fn, h->lr);
    LC_REQUIRE(h->beta1 >= 0 && h->beta1 < 1, "%s: beta1 = %g must be in [0, 1)", fn, h->beta1);
    LC_REQUIRE(h->beta2 >= 0 && h->beta2 < 1, "%s: beta2 = %g must be in [0, 1)", fn, h->beta2);
    LC_REQUIRE(h->eps > 0 && isfinite(h->eps), "%s: eps = %g must be finite and > 0", fn, h->eps);
    LC_REQUIRE(h->weight_decay >= 0 && isfinite(h->weight_decay),
               "%s: weight_decay = %g must be finite and >= 0", fn, h->weight_decay);
    LC_REQUIRE(isfinite(h->grad_scale), "%s: grad_scale = %g must be finite", fn, h->grad_scale);
    if (n > 0) {
        REQUIRE_PTR(fn, p);
        REQUIRE_PTR(fn, grad);
        REQUIRE_PTR(fn, m);
        REQUIRE_PTR(fn, v);
    }
    return LC_OK;
}

lc_status ops_adamw_step_ref(int64_t n, float *p, const float *grad, float *m, float *v,
                             const struct ops_adamw *h) {
    LC_TRY(ops_adamw_check("ops_adamw_step_ref", n, p, grad, m, v, h));
    float bc1 = (float)(1.0 - pow(h->beta1, (double)h->step));
    float bc2 = (float)(1.0 - pow(h->beta2, (double)h->step));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = h->grad_scale * grad[i];
        float pi = p[i] - h->lr * h->weight_decay * p[i];
        float mi = h->beta1 * m[i] + (1.0f - h->beta1) * g;
        float vi = h->beta2 * v[i] + (1.0f - h->beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - h->lr * (mi / bc1) / (sqrtf(vi / bc2) + h->eps);
    }
    return LC_OK;
}
