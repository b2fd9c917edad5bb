/* test_hsa_util.h — shared by tests/test_hsa_*.c: problem setup with random inputs, an
 * independent double-precision re-implementation of the HSA forward (scores at given idx, fusion
 * weights, chunk attention), and central finite differences over a sample of coordinates.
 *
 * The double code is written from the math in hsa.h, not from hsa_ref.c, and is deliberately the
 * most direct form (no running max tricks beyond what double needs), so the two share no bugs.
 */
#ifndef LONGCTX_TEST_HSA_UTIL_H
#define LONGCTX_TEST_HSA_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "hsa.h"
#include "test.h"

static inline struct hsa_shape hsa_shape_make(int64_t B, int64_t L, int64_t HQ, int64_t H,
                                              int64_t dh, int64_t S, int64_t K, int64_t Hr,
                                              int64_t dr, int64_t block_q, int softmax1,
                                              int weighting) {
    struct hsa_shape s;
    memset(&s, 0, sizeof s);
    s.B = B, s.L = L, s.HQ = HQ, s.H = H, s.dh = dh, s.S = S, s.K = K, s.Hr = Hr, s.dr = dr;
    s.block_q = block_q, s.softmax1 = softmax1, s.weighting = weighting;
    return s;
}

static inline int64_t n_qr(const struct hsa_shape *s) {
    return s->B * hsa_num_rows(s) * s->Hr * s->dr;
}
static inline int64_t n_lmk(const struct hsa_shape *s) {
    return s->B * hsa_num_chunks(s) * s->Hr * s->dr;
}
static inline int64_t n_q(const struct hsa_shape *s) { return s->B * s->L * s->HQ * s->dh; }
static inline int64_t n_kv(const struct hsa_shape *s) { return s->B * s->L * s->H * s->dh; }
static inline int64_t n_slots(const struct hsa_shape *s) {
    return s->B * hsa_num_rows(s) * s->Hr * s->K;
}
static inline int64_t n_lse(const struct hsa_shape *s) { return s->B * s->L * s->HQ * s->K; }

/* Visible chunk count from the rule itself (not hsa_num_visible): block_q = 1: chunks with
 * (c+1)*S <= t; GCA: chunks c <= r-2; never the incomplete chunk. */
static inline int64_t t_visible(const struct hsa_shape *s, int64_t r) {
    int64_t C = s->L / s->S, n = 0;
    for (int64_t c = 0; c < C; c++) {
        int ok = s->block_q == 1 ? (c + 1) * s->S <= r : c <= r - 2;
        n += ok;
    }
    return n;
}
static inline int64_t t_nvalid(const struct hsa_shape *s, int64_t r) {
    int64_t n = t_visible(s, r);
    return n < s->K ? n : s->K;
}

static inline float *t_alloc(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(float)); }
static inline double *t_alloc_d(int64_t n) {
    return calloc((size_t)(n > 0 ? n : 1), sizeof(double));
}
static inline float *t_randn(lc_rng *r, int64_t n, float scale) {
    float *x = t_alloc(n);
    lc_fill_normal(r, x, (size_t)n, scale);
    return x;
}
static inline double *t_to_d(const float *x, int64_t n) {
    double *d = t_alloc_d(n);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* ---- double-precision forward ---- */

/* Selected scores at the given idx; invalid slots -inf. */
static inline void dref_scores(const struct hsa_shape *s, const double *q_r, const double *lmk,
                               const int32_t *idx, double *score) {
    const int64_t Lr = hsa_num_rows(s), C = hsa_num_chunks(s), Hr = s->Hr, dr = s->dr, K = s->K;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t r = 0; r < Lr; r++)
            for (int64_t hr = 0; hr < Hr; hr++) {
                int64_t off = (b * Lr + r) * Hr + hr, nk = t_nvalid(s, r);
                for (int64_t k = 0; k < K; k++) {
                    if (k >= nk) {
                        score[off * K + k] = -INFINITY;
                        continue;
                    }
                    int64_t c = idx[off * K + k];
                    double acc = 0;
                    for (int64_t i = 0; i < dr; i++)
                        acc += q_r[off * dr + i] * lmk[((b * C + c) * Hr + hr) * dr + i];
                    score[off * K + k] = acc / sqrt((double)dr);
                }
            }
}

static inline double dref_softplus(double x) { return x > 15 ? x : log1p(exp(x)); }
static inline double dref_sigmoid(double x) { return 1 / (1 + exp(-x)); }

/* Softmax over finite scores, or stick-breaking sigma(s_k) prod_{j<k} (1 - sigma(s_j)) written
 * through softplus with the threshold (1 - sigma(x) = exp(-softplus(x))). */
static inline void dref_weights(const struct hsa_shape *s, const double *score, double *w) {
    const int64_t rows = s->B * hsa_num_rows(s) * s->Hr, K = s->K;
    for (int64_t row = 0; row < rows; row++) {
        const double *sc = score + row * K;
        double *wo = w + row * K;
        if (s->weighting == HSA_SOFTMAX) {
            double sum = 0;
            for (int64_t k = 0; k < K; k++) sum += isfinite(sc[k]) ? exp(sc[k]) : 0;
            for (int64_t k = 0; k < K; k++)
                wo[k] = isfinite(sc[k]) && sum > 0 ? exp(sc[k]) / sum : 0;
        } else {
            double rest = 1; /* prod_{j<k} (1 - sigma(s_j)) */
            for (int64_t k = 0; k < K; k++) {
                if (!isfinite(sc[k])) {
                    wo[k] = 0;
                    continue;
                }
                wo[k] = exp(sc[k] - dref_softplus(sc[k])) * rest;
                rest *= exp(-dref_softplus(sc[k]));
            }
        }
    }
}

/* o[t,a] = sum_k w_k softmax(_1)(z) V_c; lse per slot (may be NULL). Slot validity by rule. */
static inline void dref_attend(const struct hsa_shape *s, const double *q, const double *k,
                               const double *v, const int32_t *idx, const double *w, double *o,
                               double *lse) {
    const int64_t L = s->L, HQ = s->HQ, H = s->H, G = HQ / H, dh = s->dh, S = s->S, K = s->K;
    const int64_t Hr = s->Hr, Lr = hsa_num_rows(s);
    const double scale = s->scale > 0 ? s->scale : 1 / sqrt((double)dh);
    double *e = t_alloc_d(S);
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t t = 0; t < L; t++)
            for (int64_t a = 0; a < HQ; a++) {
                int64_t h = a / G, r = t / s->block_q, off = (b * Lr + r) * Hr + (Hr == 1 ? 0 : h);
                int64_t nk = t_nvalid(s, r);
                const double *qv = q + ((b * L + t) * HQ + a) * dh;
                double *ov = o + ((b * L + t) * HQ + a) * dh;
                for (int64_t i = 0; i < dh; i++) ov[i] = 0;
                for (int64_t kk = 0; kk < K; kk++) {
                    if (kk >= nk) {
                        if (lse) lse[((b * L + t) * HQ + a) * K + kk] = -INFINITY;
                        continue;
                    }
                    int64_t c = idx[off * K + kk];
                    double den = s->softmax1 ? 1 : 0;
                    for (int64_t j = 0; j < S; j++) {
                        double z = 0;
                        for (int64_t i = 0; i < dh; i++)
                            z += qv[i] * k[((b * L + c * S + j) * H + h) * dh + i];
                        e[j] = exp(z * scale);
                        den += e[j];
                    }
                    if (lse) lse[((b * L + t) * HQ + a) * K + kk] = log(den);
                    for (int64_t j = 0; j < S; j++)
                        for (int64_t i = 0; i < dh; i++)
                            ov[i] += w[off * K + kk] * e[j] / den *
                                     v[((b * L + c * S + j) * H + h) * dh + i];
                }
            }
    free(e);
}

/* ---- finite differences ---- */

typedef double (*t_loss_fn)(void *ctx);

/* Up to `max` distinct coordinates of [0, n), all of them when n <= max. */
static inline int64_t t_coords(lc_rng *r, int64_t n, int64_t max, int64_t *out) {
    if (n <= max) {
        for (int64_t i = 0; i < n; i++) out[i] = i;
        return n;
    }
    for (int64_t i = 0; i < max; i++) out[i] = (int64_t)lc_rng_below(r, (uint64_t)n);
    return max;
}

/* Central differences of loss(ctx) with respect to param[coords[i]] (param lives in ctx), compared
 * against the analytic float gradient at the same coordinates; returns ||fd - an|| / ||fd||. */
static inline double t_fd_check(t_loss_fn loss, void *ctx, double *param, int64_t n,
                                const float *analytic, lc_rng *rng, int64_t max_coords) {
    int64_t *cs = malloc(sizeof(int64_t) * (size_t)(max_coords > 0 ? max_coords : 1));
    int64_t nc = t_coords(rng, n, max_coords, cs);
    double num = 0, den = 0;
    for (int64_t i = 0; i < nc; i++) {
        double x = param[cs[i]], h = 1e-5 * (1 + fabs(x));
        param[cs[i]] = x + h;
        double lp = loss(ctx);
        param[cs[i]] = x - h;
        double lm = loss(ctx);
        param[cs[i]] = x;
        double fd = (lp - lm) / (2 * h), an = analytic[cs[i]];
        if (!isfinite(an)) {
            free(cs);
            return INFINITY;
        }
        num += (fd - an) * (fd - an);
        den += fd * fd;
    }
    free(cs);
    /* Relative to the gradient's size, with a floor so an exactly-zero gradient (e.g. dq when each
     * chunk softmax is over one key) is judged by its absolute error. */
    return sqrt(num) / fmax(sqrt(den), 1e-6);
}

/* Largest |x| over n values (used to check a gradient is not trivially zero). */
static inline double t_max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

#endif
