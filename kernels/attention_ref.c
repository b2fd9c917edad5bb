/* attention_ref.c — the C reference for causal dense / sliding-window / non-causal attention,
 * forward and backward, fp32 on the host (OpenMP over batch x head). Layouts and math are in
 * attention.h. The forward also takes a query offset (queries = a range of the key positions).
 * Also the shape checks shared with the CUDA backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"

lc_status attention_check(const struct attn_shape *s) {
    LC_REQUIRE(s != NULL, "attention: shape is NULL");
    LC_REQUIRE(s->B >= 1, "attention: B = %lld must be >= 1", (long long)s->B);
    LC_REQUIRE(s->L >= 1, "attention: L = %lld must be >= 1", (long long)s->L);
    LC_REQUIRE(s->HQ >= 1, "attention: HQ = %lld must be >= 1", (long long)s->HQ);
    LC_REQUIRE(s->H >= 1, "attention: H = %lld must be >= 1", (long long)s->H);
    LC_REQUIRE(s->HQ % s->H == 0, "attention: HQ = %lld must be a multiple of H = %lld",
               (long long)s->HQ, (long long)s->H);
    LC_REQUIRE(s->dh >= 1, "attention: dh = %lld must be >= 1", (long long)s->dh);
    LC_REQUIRE(s->W >= 0, "attention: W = %lld must be >= 0 (0 = dense)", (long long)s->W);
    LC_REQUIRE(s->causal == 0 || s->causal == 1, "attention: causal = %d must be 0 or 1", s->causal);
    LC_REQUIRE(s->causal || s->W == 0, "attention: W = %lld needs causal = 1 (the non-causal form is dense)",
               (long long)s->W);
    LC_REQUIRE(isfinite(s->scale) && s->scale >= 0, "attention: scale = %g must be finite and >= 0 (0 = 1/sqrt(dh))",
               (double)s->scale);
    LC_REQUIRE(s->Lq >= 0 && s->Lq <= s->L, "attention: Lq = %lld (query rows) must be in 0 .. L = %lld (0 = all)",
               (long long)s->Lq, (long long)s->L);
    LC_REQUIRE(s->q_pos0 >= 0, "attention: q_pos0 = %lld (query offset) must be >= 0", (long long)s->q_pos0);
    LC_REQUIRE(s->Lq > 0 || s->q_pos0 == 0, "attention: q_pos0 = %lld needs Lq >= 1 (Lq = 0 means the whole sequence)",
               (long long)s->q_pos0);
    LC_REQUIRE(s->q_pos0 <= s->L - s->Lq, "attention: q_pos0 + Lq = %lld + %lld exceeds L = %lld (queries are a suffix range of the keys)",
               (long long)s->q_pos0, (long long)s->Lq, (long long)s->L);
    return LC_OK;
}

lc_status attention_cuda_supported(const struct attn_shape *s) {
    LC_TRY(attention_check(s));
    if (s->dh != 32 && s->dh != 64 && s->dh != 128)
        return lc_errorf(LC_EUNSUPPORTED, "attention (cuda): dh = %lld is not supported (32, 64 or 128)",
                         (long long)s->dh);
    if (s->L > ((int64_t)1 << 24))
        return lc_errorf(LC_EUNSUPPORTED, "attention (cuda): L = %lld exceeds 2^24", (long long)s->L);
    if (s->HQ > 65535 || s->B > 65535)
        return lc_errorf(LC_EUNSUPPORTED, "attention (cuda): B = %lld and HQ = %lld must each be <= 65535",
                         (long long)s->B, (long long)s->HQ);
    return LC_OK;
}

float attention_scale(const struct attn_shape *s) {
    return s->scale > 0 ? s->scale : 1.0f / sqrtf((float)s->dh);
}

/* First and last visible key of row t (inclusive). */
static inline void key_range(const struct attn_shape *s, int64_t t, int64_t *lo, int64_t *hi) {
    if (!s->causal) {
        *lo = 0;
        *hi = s->L - 1;
        return;
    }
    *hi = t;
    *lo = (s->W > 0 && t - s->W > 0) ? t - s->W : 0;
}

/* Causal pairs of rows 0 .. n-1. */
static double causal_pairs(int64_t n, int64_t W) {
    double L = (double)n;
    if (W == 0 || W >= n - 1) return L * (L + 1) / 2;
    /* rows t <= W see t+1 keys; the rest see W+1. */
    double w = (double)W;
    return (w + 1) * (w + 2) / 2 + (L - w - 1) * (w + 1);
}

double attention_pairs(const struct attn_shape *s) {
    const int64_t Lq = attention_q_len(s), p0 = attention_q_pos0(s);
    if (!s->causal) return (double)Lq * (double)s->L;
    return causal_pairs(p0 + Lq, s->W) - causal_pairs(p0, s->W);
}

lc_status attention_forward_ref(const struct attn_shape *s, const float *q, const float *k,
                                const float *v, float *o, float *lse) {
    LC_TRY(attention_check(s));
    LC_REQUIRE(q && k && v && o, "attention_forward_ref: q, k, v and o must be non-NULL");
    const int64_t B = s->B, L = s->L, HQ = s->HQ, H = s->H, dh = s->dh, G = HQ / H;
    const int64_t Lq = attention_q_len(s), p0 = attention_q_pos0(s);
    const float scale = attention_scale(s);
    int fail = 0;
#pragma omp parallel
    {
        float *sc = malloc(sizeof(float) * (size_t)L);
        double *acc = malloc(sizeof(double) * (size_t)dh);
        if (!sc || !acc) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for collapse(2) schedule(dynamic, 16)
        for (int64_t ba = 0; ba < B * HQ; ba++)
            for (int64_t t = 0; t < Lq; t++) {
                if (!sc || !acc) continue;
                const int64_t b = ba / HQ, a = ba % HQ, h = a / G;
                const float *qt = q + ((b * Lq + t) * HQ + a) * dh;
                int64_t lo, hi;
                key_range(s, p0 + t, &lo, &hi);
                float m = -INFINITY;
                for (int64_t j = lo; j <= hi; j++) {
                    const float *kj = k + ((b * L + j) * H + h) * dh;
                    float d = 0;
                    for (int64_t i = 0; i < dh; i++) d += qt[i] * kj[i];
                    sc[j] = d * scale;
                    if (sc[j] > m) m = sc[j];
                }
                double sum = 0;
                memset(acc, 0, sizeof(double) * (size_t)dh);
                for (int64_t j = lo; j <= hi; j++) {
                    double p = exp((double)sc[j] - m);
                    sum += p;
                    const float *vj = v + ((b * L + j) * H + h) * dh;
                    for (int64_t i = 0; i < dh; i++) acc[i] += p * vj[i];
                }
                float *ot = o + ((b * Lq + t) * HQ + a) * dh;
                for (int64_t i = 0; i < dh; i++) ot[i] = (float)(acc[i] / sum);
                if (lse) lse[(b * HQ + a) * Lq + t] = (float)(m + log(sum));
            }
        free(sc);
        free(acc);
    }
    if (fail) return lc_errorf(LC_ENOMEM, "attention_forward_ref: out of memory for row scratch (L = %lld)", (long long)L);
    return LC_OK;
}

lc_status attention_backward_ref(const struct attn_shape *s, const float *q, const float *k,
                                 const float *v, const float *o, const float *lse,
                                 const float *dout, float *dq, float *dk, float *dv) {
    LC_TRY(attention_check(s));
    LC_REQUIRE(q && k && v && o && lse && dout && dq && dk && dv,
               "attention_backward_ref: every tensor argument must be non-NULL");
    if (attention_has_offset(s))
        return lc_errorf(LC_EUNSUPPORTED, "attention_backward_ref: a query offset (Lq = %lld, q_pos0 = %lld) is forward-only",
                         (long long)s->Lq, (long long)s->q_pos0);
    const int64_t B = s->B, L = s->L, HQ = s->HQ, H = s->H, dh = s->dh, G = HQ / H;
    const float scale = attention_scale(s);
    /* One task per (b, KV head): it owns dk, dv of that head and dq of its G query heads, so
     * no two threads write the same element. */
    int fail = 0;
#pragma omp parallel
    {
        float *dqt = malloc(sizeof(float) * (size_t)dh);
        if (!dqt) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < B * H; bh++) {
            if (!dqt) continue;
            const int64_t b = bh / H, h = bh % H;
            for (int64_t j = 0; j < L; j++) {
                memset(dk + ((b * L + j) * H + h) * dh, 0, sizeof(float) * (size_t)dh);
                memset(dv + ((b * L + j) * H + h) * dh, 0, sizeof(float) * (size_t)dh);
            }
            for (int64_t a = h * G; a < (h + 1) * G; a++)
                for (int64_t t = 0; t < L; t++) {
                    const int64_t row = (b * L + t) * HQ + a;
                    const float *qt = q + row * dh, *ot = o + row * dh, *gt = dout + row * dh;
                    const float l = lse[(b * HQ + a) * L + t];
                    float D = 0;
                    for (int64_t i = 0; i < dh; i++) D += gt[i] * ot[i];
                    memset(dqt, 0, sizeof(float) * (size_t)dh);
                    int64_t lo, hi;
                    key_range(s, t, &lo, &hi);
                    for (int64_t j = lo; j <= hi; j++) {
                        const int64_t kr = ((b * L + j) * H + h) * dh;
                        const float *kj = k + kr, *vj = v + kr;
                        float sdot = 0, dp = 0;
                        for (int64_t i = 0; i < dh; i++) {
                            sdot += qt[i] * kj[i];
                            dp += gt[i] * vj[i];
                        }
                        const float p = expf(sdot * scale - l);
                        const float ds = p * (dp - D) * scale;
                        float *dkj = dk + kr, *dvj = dv + kr;
                        for (int64_t i = 0; i < dh; i++) {
                            dvj[i] += p * gt[i];
                            dkj[i] += ds * qt[i];
                            dqt[i] += ds * kj[i];
                        }
                    }
                    memcpy(dq + row * dh, dqt, sizeof(float) * (size_t)dh);
                }
        }
        free(dqt);
    }
    if (fail) return lc_errorf(LC_ENOMEM, "attention_backward_ref: out of memory for row scratch");
    return LC_OK;
}
