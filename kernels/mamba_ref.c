/* mamba_ref.c — C reference (fp32) of the Mamba-2 mixer: causal depthwise conv1d + SiLU and the
 * SSD selective scan as a plain recurrence, forward, backward, decode. Layouts and math:
 * mamba.h. The backward of the scan recomputes and keeps every state h_t (B*L*H*P*N floats):
 * this is a reference for small shapes, not a production path. */
#include "mamba.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lc_status mamba_check(const struct mamba_conv_shape *c, const struct mamba_scan_shape *s) {
    if (c) {
        LC_REQUIRE(c->B >= 1, "mamba conv: B = %lld must be >= 1", (long long)c->B);
        LC_REQUIRE(c->L >= 1, "mamba conv: L = %lld must be >= 1", (long long)c->L);
        LC_REQUIRE(c->Cch >= 1, "mamba conv: Cch = %lld must be >= 1", (long long)c->Cch);
        LC_REQUIRE(c->Kw >= 1 && c->Kw <= 8, "mamba conv: Kw = %lld must be in 1..8", (long long)c->Kw);
    }
    if (s) {
        LC_REQUIRE(s->B >= 1, "mamba scan: B = %lld must be >= 1", (long long)s->B);
        LC_REQUIRE(s->L >= 1, "mamba scan: L = %lld must be >= 1", (long long)s->L);
        LC_REQUIRE(s->H >= 1, "mamba scan: H (heads) = %lld must be >= 1", (long long)s->H);
        LC_REQUIRE(s->P >= 1, "mamba scan: P (head dim) = %lld must be >= 1", (long long)s->P);
        LC_REQUIRE(s->N >= 1, "mamba scan: N (state size) = %lld must be >= 1", (long long)s->N);
        LC_REQUIRE(s->G >= 1 && s->G <= s->H && s->H % s->G == 0,
                   "mamba scan: G (ngroups) = %lld must divide H = %lld", (long long)s->G, (long long)s->H);
    }
    return LC_OK;
}

static inline float sigmoidf_(float v) { return 1.0f / (1.0f + expf(-v)); }
static inline float softplusf_(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

/* ---------------- conv1d ---------------- */

/* xx[t] of mamba.h: the input at token t, or the tail for t < 0. */
static inline float conv_in(const struct mamba_conv_shape *s, const float *x, const float *tail_in,
                            int64_t b, int64_t t, int64_t c) {
    if (t >= 0) return x[(b * s->L + t) * s->Cch + c];
    if (!tail_in) return 0.0f;
    return tail_in[(b * (s->Kw - 1) + (s->Kw - 1 + t)) * s->Cch + c];
}

static float conv_pre(const struct mamba_conv_shape *s, const float *x, const float *w, const float *bias,
                      const float *tail_in, int64_t b, int64_t t, int64_t c) {
    float acc = bias ? bias[c] : 0.0f;
    for (int64_t k = 0; k < s->Kw; k++) acc += w[c * s->Kw + k] * conv_in(s, x, tail_in, b, t - (s->Kw - 1) + k, c);
    return acc;
}

lc_status mamba_conv_forward_ref(const struct mamba_conv_shape *s, const float *x, const float *weight,
                                 const float *bias, const float *tail_in, float *y, float *tail_out) {
    LC_TRY(mamba_check(s, NULL));
    LC_REQUIRE(x && weight && y, "mamba_conv_forward_ref: x, weight and y must not be NULL");
    const int64_t C = s->Cch, K1 = s->Kw - 1;
    for (int64_t b = 0; b < s->B; b++) {
        for (int64_t t = 0; t < s->L; t++)
            for (int64_t c = 0; c < C; c++) {
                float p = conv_pre(s, x, weight, bias, tail_in, b, t, c);
                y[(b * s->L + t) * C + c] = p * sigmoidf_(p);
            }
        if (tail_out)
            for (int64_t j = 0; j < K1; j++)
                for (int64_t c = 0; c < C; c++)
                    tail_out[(b * K1 + j) * C + c] = conv_in(s, x, tail_in, b, s->L - K1 + j, c);
    }
    return LC_OK;
}

lc_status mamba_conv_backward_ref(const struct mamba_conv_shape *s, const float *x, const float *weight,
                                  const float *bias, const float *tail_in, const float *dy,
                                  const float *dtail_out, float *dx, float *dweight, float *dbias,
                                  float *dtail_in) {
    LC_TRY(mamba_check(s, NULL));
    LC_REQUIRE(x && weight && dy && dx && dweight && dbias,
               "mamba_conv_backward_ref: x, weight, dy, dx, dweight and dbias must not be NULL");
    const int64_t C = s->Cch, Kw = s->Kw, K1 = Kw - 1, L = s->L;
    memset(dx, 0, sizeof(float) * (size_t)(s->B * L * C));
    memset(dweight, 0, sizeof(float) * (size_t)(C * Kw));
    memset(dbias, 0, sizeof(float) * (size_t)C);
    if (dtail_in && K1) memset(dtail_in, 0, sizeof(float) * (size_t)(s->B * K1 * C));
    for (int64_t b = 0; b < s->B; b++) {
        /* gradient into xx[t]: route it to dx or dtail_in */
#define ADD_DXX(t_, c_, v_)                                                                   \
    do {                                                                                      \
        int64_t tt_ = (t_);                                                                   \
        if (tt_ >= 0) dx[(b * L + tt_) * C + (c_)] += (v_);                                   \
        else if (dtail_in) dtail_in[(b * K1 + K1 + tt_) * C + (c_)] += (v_);                 \
    } while (0)
        for (int64_t t = 0; t < L; t++)
            for (int64_t c = 0; c < C; c++) {
                float p = conv_pre(s, x, weight, bias, tail_in, b, t, c);
                float sg = sigmoidf_(p);
                float g = dy[(b * L + t) * C + c] * sg * (1.0f + p * (1.0f - sg));
                dbias[c] += g;
                for (int64_t k = 0; k < Kw; k++) {
                    int64_t ti = t - K1 + k;
                    dweight[c * Kw + k] += g * conv_in(s, x, tail_in, b, ti, c);
                    ADD_DXX(ti, c, g * weight[c * Kw + k]);
                }
            }
        if (dtail_out)
            for (int64_t j = 0; j < K1; j++)
                for (int64_t c = 0; c < C; c++) ADD_DXX(L - K1 + j, c, dtail_out[(b * K1 + j) * C + c]);
#undef ADD_DXX
    }
    return LC_OK;
}

lc_status mamba_conv_decode_ref(const struct mamba_conv_shape *s, const float *x, const float *weight,
                                const float *bias, float *tail, float *y) {
    struct mamba_conv_shape one = *s;
    one.L = 1;
    LC_TRY(mamba_check(&one, NULL));
    LC_REQUIRE(x && weight && y && (tail || s->Kw == 1), "mamba_conv_decode_ref: x, weight, tail and y must not be NULL");
    const int64_t C = s->Cch, K1 = s->Kw - 1;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t c = 0; c < C; c++) {
            float acc = bias ? bias[c] : 0.0f;
            for (int64_t k = 0; k < K1; k++) acc += weight[c * s->Kw + k] * tail[(b * K1 + k) * C + c];
            float xc = x[b * C + c];
            acc += weight[c * s->Kw + K1] * xc;
            y[b * C + c] = acc * sigmoidf_(acc);
            for (int64_t k = 0; k + 1 < K1; k++) tail[(b * K1 + k) * C + c] = tail[(b * K1 + k + 1) * C + c];
            if (K1) tail[(b * K1 + K1 - 1) * C + c] = xc;
        }
    return LC_OK;
}

/* ---------------- SSD scan ---------------- */

static lc_status scan_args(const struct mamba_scan_shape *s, const float *x, const float *dt, const float *A,
                           const float *Bm, const float *Cm, const char *fn) {
    LC_TRY(mamba_check(NULL, s));
    LC_REQUIRE(x, "%s: x must not be NULL", fn);
    LC_REQUIRE(dt, "%s: dt must not be NULL", fn);
    LC_REQUIRE(A, "%s: A must not be NULL", fn);
    LC_REQUIRE(Bm, "%s: Bm must not be NULL", fn);
    LC_REQUIRE(Cm, "%s: Cm must not be NULL", fn);
    return LC_OK;
}

lc_status mamba_scan_forward_ref(const struct mamba_scan_shape *s, const float *x, const float *dt,
                                 const float *dt_bias, const float *A, const float *Bm, const float *Cm,
                                 const float *D, const float *z, const float *h0, float *y, float *hT) {
    LC_TRY(scan_args(s, x, dt, A, Bm, Cm, "mamba_scan_forward_ref"));
    LC_REQUIRE(y, "mamba_scan_forward_ref: y must not be NULL");
    const int64_t H = s->H, P = s->P, N = s->N, G = s->G, L = s->L, hpg = H / G;
    float *st = lc_malloc(sizeof(float) * (size_t)(P * N), "mamba scan state");
    if (!st) return LC_ENOMEM;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t g = h / hpg;
            if (h0) memcpy(st, h0 + (b * H + h) * P * N, sizeof(float) * (size_t)(P * N));
            else memset(st, 0, sizeof(float) * (size_t)(P * N));
            for (int64_t t = 0; t < L; t++) {
                const int64_t r = b * L + t;
                float dtp = softplusf_(dt[r * H + h] + (dt_bias ? dt_bias[h] : 0.0f));
                float dA = expf(dtp * A[h]);
                const float *xv = x + (r * H + h) * P, *bv = Bm + (r * G + g) * N, *cv = Cm + (r * G + g) * N;
                for (int64_t p = 0; p < P; p++) {
                    float acc = 0, xp = dtp * xv[p];
                    float *row = st + p * N;
                    for (int64_t n = 0; n < N; n++) {
                        row[n] = dA * row[n] + xp * bv[n];
                        acc += row[n] * cv[n];
                    }
                    acc += (D ? D[h] : 0.0f) * xv[p];
                    if (z) {
                        float zv = z[(r * H + h) * P + p];
                        acc *= zv * sigmoidf_(zv);
                    }
                    y[(r * H + h) * P + p] = acc;
                }
            }
            if (hT) memcpy(hT + (b * H + h) * P * N, st, sizeof(float) * (size_t)(P * N));
        }
    free(st);
    return LC_OK;
}

/* the backward; dA_scale (optional, [H]): sum_t exp(dt'_t A) dt'_t |<dh_t, h_{t-1}>|, the sum of the
 * magnitudes of the per-token terms that dA adds up (mamba_scan_dA_scale_ref) */
static lc_status scan_backward(const struct mamba_scan_shape *s, const float *x, const float *dt, const float *dt_bias,
                               const float *A, const float *Bm, const float *Cm, const float *D, const float *z,
                               const float *h0, const float *dy, const float *dhT, float *dx, float *ddt, float *dBm,
                               float *dCm, float *dz, float *dh0, float *dA, float *dD, float *ddt_bias, float *dA_scale) {
    LC_TRY(scan_args(s, x, dt, A, Bm, Cm, "mamba_scan_backward_ref"));
    LC_REQUIRE(dy && dx && ddt && dBm && dCm, "mamba_scan_backward_ref: dy, dx, ddt, dBm and dCm must not be NULL");
    LC_REQUIRE(!z || dz, "mamba_scan_backward_ref: dz must not be NULL when z is given");
    const int64_t H = s->H, P = s->P, N = s->N, G = s->G, L = s->L, hpg = H / G, PN = P * N;
    /* states[t+1] = h_t, states[0] = h0 */
    float *states = lc_malloc(sizeof(float) * (size_t)((L + 1) * PN), "mamba scan backward states");
    float *dh = lc_malloc(sizeof(float) * (size_t)PN, "mamba scan backward dh");
    float *gv = lc_malloc(sizeof(float) * (size_t)P, "mamba scan backward g");
    if (!states || !dh || !gv) {
        free(states), free(dh), free(gv);
        return LC_ENOMEM;
    }
    memset(dBm, 0, sizeof(float) * (size_t)(s->B * L * G * N));
    memset(dCm, 0, sizeof(float) * (size_t)(s->B * L * G * N));
    if (dA) memset(dA, 0, sizeof(float) * (size_t)H);
    if (dA_scale) memset(dA_scale, 0, sizeof(float) * (size_t)H);
    if (dD) memset(dD, 0, sizeof(float) * (size_t)H);
    if (ddt_bias) memset(ddt_bias, 0, sizeof(float) * (size_t)H);
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t g = h / hpg;
            const float bias = dt_bias ? dt_bias[h] : 0.0f, Dh = D ? D[h] : 0.0f;
            if (h0) memcpy(states, h0 + (b * H + h) * PN, sizeof(float) * (size_t)PN);
            else memset(states, 0, sizeof(float) * (size_t)PN);
            for (int64_t t = 0; t < L; t++) {
                const int64_t r = b * L + t;
                float dtp = softplusf_(dt[r * H + h] + bias), dAv = expf(dtp * A[h]);
                const float *xv = x + (r * H + h) * P, *bv = Bm + (r * G + g) * N;
                const float *prev = states + t * PN;
                float *cur = states + (t + 1) * PN;
                for (int64_t p = 0; p < P; p++)
                    for (int64_t n = 0; n < N; n++) cur[p * N + n] = dAv * prev[p * N + n] + dtp * xv[p] * bv[n];
            }
            if (dhT) memcpy(dh, dhT + (b * H + h) * PN, sizeof(float) * (size_t)PN);
            else memset(dh, 0, sizeof(float) * (size_t)PN);
            for (int64_t t = L - 1; t >= 0; t--) {
                const int64_t r = b * L + t;
                const float u = dt[r * H + h] + bias;
                const float dtp = softplusf_(u), dAv = expf(dtp * A[h]);
                const float *xv = x + (r * H + h) * P, *bv = Bm + (r * G + g) * N, *cv = Cm + (r * G + g) * N;
                const float *prev = states + t * PN, *cur = states + (t + 1) * PN;
                float *dbv = dBm + (r * G + g) * N, *dcv = dCm + (r * G + g) * N;
                /* y = (ys + D x) * silu(z): gradient into ys is g */
                for (int64_t p = 0; p < P; p++) {
                    float dyv = dy[(r * H + h) * P + p], gate = 1.0f;
                    if (z) {
                        float zv = z[(r * H + h) * P + p], sg = sigmoidf_(zv);
                        gate = zv * sg;
                        float ys = Dh * xv[p];
                        for (int64_t n = 0; n < N; n++) ys += cur[p * N + n] * cv[n];
                        dz[(r * H + h) * P + p] = dyv * ys * sg * (1.0f + zv * (1.0f - sg));
                    }
                    gv[p] = dyv * gate;
                    if (dD) dD[h] += gv[p] * xv[p];
                }
                /* dC_t = h_t^T g ; dh_t += g C_t^T */
                for (int64_t p = 0; p < P; p++)
                    for (int64_t n = 0; n < N; n++) {
                        dcv[n] += gv[p] * cur[p * N + n];
                        dh[p * N + n] += gv[p] * cv[n];
                    }
                /* h_t = dA h_{t-1} + dt' x B^T */
                float ddtp = 0, ddA = 0;
                for (int64_t p = 0; p < P; p++) {
                    float acc = 0;
                    for (int64_t n = 0; n < N; n++) {
                        float d = dh[p * N + n];
                        acc += d * bv[n];
                        dbv[n] += dtp * d * xv[p];
                        ddA += d * prev[p * N + n];
                        
                    }
                    ddtp += acc * xv[p];
                    dx[(r * H + h) * P + p] = dtp * acc + Dh * gv[p];
                }
                ddtp += ddA * dAv * A[h];
                if (dA) dA[h] += ddA * dAv * dtp;
                if (dA_scale) dA_scale[h] += fabsf(ddA) * dAv * dtp;
                float dd = ddtp * sigmoidf_(u);
                ddt[r * H + h] = dd;
                if (ddt_bias) ddt_bias[h] += dd;
                for (int64_t i = 0; i < PN; i++) dh[i] *= dAv;
            }
            if (dh0) memcpy(dh0 + (b * H + h) * PN, dh, sizeof(float) * (size_t)PN);
        }
    free(states), free(dh), free(gv);
    return LC_OK;
}

lc_status mamba_scan_backward_ref(const struct mamba_scan_shape *s, const float *x, const float *dt,
                                  const float *dt_bias, const float *A, const float *Bm, const float *Cm,
                                  const float *D, const float *z, const float *h0, const float *dy,
                                  const float *dhT, float *dx, float *ddt, float *dBm, float *dCm,
                                  float *dz, float *dh0, float *dA, float *dD, float *ddt_bias) {
    return scan_backward(s, x, dt, dt_bias, A, Bm, Cm, D, z, h0, dy, dhT, dx, ddt, dBm, dCm, dz, dh0, dA, dD, ddt_bias,
                         NULL);
}

lc_status mamba_scan_dA_scale_ref(const struct mamba_scan_shape *s, const float *x, const float *dt,
                                  const float *dt_bias, const float *A, const float *Bm, const float *Cm,
                                  const float *D, const float *z, const float *h0, const float *dy,
                                  const float *dhT, float *dA_scale) {
    LC_TRY(scan_args(s, x, dt, A, Bm, Cm, "mamba_scan_dA_scale_ref"));
    LC_REQUIRE(dy && dA_scale, "mamba_scan_dA_scale_ref: dy and dA_scale must not be NULL");
    const size_t nx = (size_t)(s->B * s->L * s->H * s->P), nbc = (size_t)(s->B * s->L * s->G * s->N);
    const size_t ndt = (size_t)(s->B * s->L * s->H);
    float *dx = lc_malloc(sizeof(float) * (nx ? nx : 1), "dA scale dx"), *ddt = lc_malloc(sizeof(float) * (ndt ? ndt : 1), "dA scale ddt");
    float *dB = lc_malloc(sizeof(float) * (nbc ? nbc : 1), "dA scale dB"), *dC = lc_malloc(sizeof(float) * (nbc ? nbc : 1), "dA scale dC");
    float *dz = z ? lc_malloc(sizeof(float) * (nx ? nx : 1), "dA scale dz") : NULL;
    lc_status r = LC_ENOMEM;
    if (dx && ddt && dB && dC && (dz || !z))
        r = scan_backward(s, x, dt, dt_bias, A, Bm, Cm, D, z, h0, dy, dhT, dx, ddt, dB, dC, dz, NULL, NULL, NULL, NULL,
                          dA_scale);
    free(dx), free(ddt), free(dB), free(dC), free(dz);
    return r;
}

lc_status mamba_scan_decode_ref(const struct mamba_scan_shape *s, const float *x, const float *dt,
                                const float *dt_bias, const float *A, const float *Bm, const float *Cm,
                                const float *D, const float *z, float *state, float *y) {
    struct mamba_scan_shape one = *s;
    one.L = 1;
    LC_TRY(scan_args(&one, x, dt, A, Bm, Cm, "mamba_scan_decode_ref"));
    LC_REQUIRE(state && y, "mamba_scan_decode_ref: state and y must not be NULL");
    /* One token is a scan of length 1 whose h0 and hT are the same buffer: do it in place. */
    const int64_t H = s->H, P = s->P, N = s->N, G = s->G, hpg = H / G;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t g = h / hpg;
            float dtp = softplusf_(dt[b * H + h] + (dt_bias ? dt_bias[h] : 0.0f)), dA = expf(dtp * A[h]);
            const float *xv = x + (b * H + h) * P, *bv = Bm + (b * G + g) * N, *cv = Cm + (b * G + g) * N;
            for (int64_t p = 0; p < P; p++) {
                float *row = state + ((b * H + h) * P + p) * N, acc = 0;
                for (int64_t n = 0; n < N; n++) {
                    row[n] = dA * row[n] + dtp * xv[p] * bv[n];
                    acc += row[n] * cv[n];
                }
                acc += (D ? D[h] : 0.0f) * xv[p];
                if (z) {
                    float zv = z[(b * H + h) * P + p];
                    acc *= zv * sigmoidf_(zv);
                }
                y[(b * H + h) * P + p] = acc;
            }
        }
    return LC_OK;
}
