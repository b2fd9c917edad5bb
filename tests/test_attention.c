/* test_attention.c — the C reference of dense / sliding-window / non-causal attention:
 * backward against central finite differences of a double-precision loss, SWA with W >= L equals
 * dense, causality, GQA against explicit head replication, the non-causal form against a direct
 * evaluation, the pair count, and bad shapes rejected with a message. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "bench.h"
#include "common.h"
#include "test.h"

static float *rnd(lc_rng *r, size_t n, float scale) {
    float *x = malloc(sizeof(float) * n);
    lc_fill_normal(r, x, n, scale);
    return x;
}

/* Independent double-precision forward: loss = sum(o * r). Written without the reference's
 * helpers so a shared bug cannot cancel out. */
static double loss_double(const struct attn_shape *s, const double *q, const double *k, const double *v,
                          const float *r) {
    const int64_t L = s->L, HQ = s->HQ, H = s->H, dh = s->dh, G = HQ / H;
    const double scale = s->scale > 0 ? s->scale : 1.0 / sqrt((double)dh);
    double total = 0;
    double *sc = malloc(sizeof(double) * (size_t)L);
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t a = 0; a < HQ; a++)
            for (int64_t t = 0; t < L; t++) {
                const int64_t h = a / G;
                double m = -INFINITY;
                for (int64_t j = 0; j < L; j++) {
                    int vis = !s->causal || (j <= t && (s->W == 0 || t - j <= s->W));
                    if (!vis) {
                        sc[j] = -INFINITY;
                        continue;
                    }
                    double d = 0;
                    for (int64_t i = 0; i < dh; i++) d += q[((b * L + t) * HQ + a) * dh + i] * k[((b * L + j) * H + h) * dh + i];
                    sc[j] = d * scale;
                    if (sc[j] > m) m = sc[j];
                }
                double sum = 0;
                for (int64_t j = 0; j < L; j++) sum += exp(sc[j] - m);
                for (int64_t i = 0; i < dh; i++) {
                    double oi = 0;
                    for (int64_t j = 0; j < L; j++) oi += exp(sc[j] - m) / sum * v[((b * L + j) * H + h) * dh + i];
                    total += oi * r[((b * L + t) * HQ + a) * dh + i];
                }
            }
    free(sc);
    return total;
}

static double *to_double(const float *x, size_t n) {
    double *d = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* Backward of the reference against central differences of loss_double, for every input. */
static void check_grad(const char *name, struct attn_shape s, uint64_t seed) {
    t_begin(name);
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const size_t nq = (size_t)(s.B * s.L * s.HQ * s.dh), nk = (size_t)(s.B * s.L * s.H * s.dh);
    float *q = rnd(&rng, nq, 1.0f), *k = rnd(&rng, nk, 1.0f), *v = rnd(&rng, nk, 1.0f), *r = rnd(&rng, nq, 1.0f);
    float *o = malloc(sizeof(float) * nq), *lse = malloc(sizeof(float) * (size_t)(s.B * s.HQ * s.L));
    float *dq = malloc(sizeof(float) * nq), *dk = malloc(sizeof(float) * nk), *dv = malloc(sizeof(float) * nk);
    if (T_OK(attention_forward_ref(&s, q, k, v, o, lse)) &&
        T_OK(attention_backward_ref(&s, q, k, v, o, lse, r, dq, dk, dv))) {
        double *qd = to_double(q, nq), *kd = to_double(k, nk), *vd = to_double(v, nk);
        double *xs[3] = {qd, kd, vd};
        const float *gs[3] = {dq, dk, dv};
        const size_t ns[3] = {nq, nk, nk};
        const char *names[3] = {"dq", "dk", "dv"};
        const double eps = 1e-5;
        for (int w = 0; w < 3; w++) {
            float *fd = malloc(sizeof(float) * ns[w]);
            for (size_t i = 0; i < ns[w]; i++) {
                double x0 = xs[w][i];
                xs[w][i] = x0 + eps;
                double lp = loss_double(&s, qd, kd, vd, r);
                xs[w][i] = x0 - eps;
                double lm = loss_double(&s, qd, kd, vd, r);
                xs[w][i] = x0;
                fd[i] = (float)((lp - lm) / (2 * eps));
            }
            T_CLOSE(gs[w], fd, ns[w], 2e-4, names[w]);
            free(fd);
        }
        free(qd);
        free(kd);
        free(vd);
    }
    free(q), free(k), free(v), free(r), free(o), free(lse), free(dq), free(dk), free(dv);
}

int main(void) {
    lc_rng rng;
    lc_rng_seed(&rng, 7);

    check_grad("backward = finite differences: dense causal, B=2 L=7 HQ=2 H=1 dh=5",
               (struct attn_shape){2, 7, 2, 1, 5, 0, 1, 0, 0, 0}, 11);
    check_grad("backward = finite differences: SWA W=2, L=9 HQ=3 H=3 dh=4",
               (struct attn_shape){1, 9, 3, 3, 4, 2, 1, 0, 0, 0}, 12);
    check_grad("backward = finite differences: non-causal, L=6 HQ=4 H=2 dh=3, scale 0.7",
               (struct attn_shape){1, 6, 4, 2, 3, 0, 0, 0.7f, 0, 0}, 13);

    t_begin("forward matches the double-precision loss");
    {
        struct attn_shape s = {2, 13, 4, 2, 8, 3, 1, 0, 0, 0};
        size_t nq = 2 * 13 * 4 * 8, nk = 2 * 13 * 2 * 8;
        float *q = rnd(&rng, nq, 1), *k = rnd(&rng, nk, 1), *v = rnd(&rng, nk, 1), *r = rnd(&rng, nq, 1);
        float *o = malloc(sizeof(float) * nq);
        if (T_OK(attention_forward_ref(&s, q, k, v, o, NULL))) {
            double *qd = to_double(q, nq), *kd = to_double(k, nk), *vd = to_double(v, nk);
            double want = loss_double(&s, qd, kd, vd, r), got = 0;
            for (size_t i = 0; i < nq; i++) got += (double)o[i] * r[i];
            T_CHECK(fabs(got - want) <= 1e-4 * (1 + fabs(want)), "sum(o*r) %.8f vs double %.8f", got, want);
            free(qd), free(kd), free(vd);
        }
        free(q), free(k), free(v), free(r), free(o);
    }

    t_begin("SWA with W >= L equals dense (forward, lse and backward)");
    {
        const int64_t B = 2, L = 37, HQ = 4, H = 2, dh = 16;
        struct attn_shape dense = {B, L, HQ, H, dh, 0, 1, 0, 0, 0}, swa = dense;
        size_t nq = (size_t)(B * L * HQ * dh), nk = (size_t)(B * L * H * dh), nl = (size_t)(B * HQ * L);
        float *q = rnd(&rng, nq, 1), *k = rnd(&rng, nk, 1), *v = rnd(&rng, nk, 1), *g = rnd(&rng, nq, 1);
        float *o1 = malloc(4 * nq), *o2 = malloc(4 * nq), *l1 = malloc(4 * nl), *l2 = malloc(4 * nl);
        float *d1 = malloc(4 * (nq + 2 * nk)), *d2 = malloc(4 * (nq + 2 * nk));
        int64_t windows[2] = {L - 1, 5 * L};
        for (int w = 0; w < 2; w++) {
            swa.W = windows[w];
            T_OK(attention_forward_ref(&dense, q, k, v, o1, l1));
            T_OK(attention_forward_ref(&swa, q, k, v, o2, l2));
            T_CLOSE(o2, o1, nq, 1e-6, "o");
            T_CLOSE(l2, l1, nl, 1e-6, "lse");
            T_OK(attention_backward_ref(&dense, q, k, v, o1, l1, g, d1, d1 + nq, d1 + nq + nk));
            T_OK(attention_backward_ref(&swa, q, k, v, o2, l2, g, d2, d2 + nq, d2 + nq + nk));
            T_CLOSE(d2, d1, nq + 2 * nk, 1e-6, "dq dk dv");
        }
        /* and a window shorter than L really differs */
        swa.W = 4;
        T_OK(attention_forward_ref(&swa, q, k, v, o2, l2));
        T_CHECK(t_rel_err(o2, o1, nq) > 1e-2, "W=4 gave the dense output");
        free(q), free(k), free(v), free(g), free(o1), free(o2), free(l1), free(l2), free(d1), free(d2);
    }

    t_begin("causality: changing tokens after t changes no output at or before t");
    {
        const int64_t B = 1, L = 29, HQ = 2, H = 1, dh = 8, T = 17;
        size_t nq = (size_t)(B * L * HQ * dh), nk = (size_t)(B * L * H * dh);
        float *q = rnd(&rng, nq, 1), *k = rnd(&rng, nk, 1), *v = rnd(&rng, nk, 1);
        float *o1 = malloc(4 * nq), *o2 = malloc(4 * nq);
        int64_t windows[2] = {0, 6};
        for (int w = 0; w < 2; w++) {
            struct attn_shape s = {B, L, HQ, H, dh, windows[w], 1, 0, 0, 0};
            T_OK(attention_forward_ref(&s, q, k, v, o1, NULL));
            float *q2 = malloc(4 * nq), *k2 = malloc(4 * nk), *v2 = malloc(4 * nk);
            memcpy(q2, q, 4 * nq), memcpy(k2, k, 4 * nk), memcpy(v2, v, 4 * nk);
            for (int64_t t = T + 1; t < L; t++)
                for (int64_t i = 0; i < dh; i++) {
                    k2[(t * H) * dh + i] += 3.0f;
                    v2[(t * H) * dh + i] -= 2.0f;
                    for (int64_t a = 0; a < HQ; a++) q2[(t * HQ + a) * dh + i] *= -1.5f;
                }
            T_OK(attention_forward_ref(&s, q2, k2, v2, o2, NULL));
            size_t upto = (size_t)((T + 1) * HQ * dh);
            T_CHECK(memcmp(o1, o2, 4 * upto) == 0, "W=%lld: output at or before t=%lld changed", (long long)windows[w], (long long)T);
            T_CHECK(t_rel_err(o2 + upto, o1 + upto, nq - upto) > 1e-2, "outputs after t did not change");
            free(q2), free(k2), free(v2);
        }
        /* the non-causal form is not causal: the same change reaches earlier rows */
        struct attn_shape nc = {B, L, HQ, H, dh, 0, 0, 0, 0, 0};
        T_OK(attention_forward_ref(&nc, q, k, v, o1, NULL));
        for (int64_t i = 0; i < dh; i++) v[(L - 1) * dh + i] += 5.0f;
        T_OK(attention_forward_ref(&nc, q, k, v, o2, NULL));
        T_CHECK(t_rel_err(o2, o1, (size_t)(HQ * dh)) > 1e-3, "non-causal row 0 ignored the last token");
        free(q), free(k), free(v), free(o1), free(o2);
    }

    t_begin("GQA equals explicit replication of KV heads");
    {
        const int64_t B = 2, L = 19, HQ = 6, H = 2, dh = 8, G = HQ / H;
        size_t nq = (size_t)(B * L * HQ * dh), nk = (size_t)(B * L * H * dh), nkr = nq;
        float *q = rnd(&rng, nq, 1), *k = rnd(&rng, nk, 1), *v = rnd(&rng, nk, 1), *g = rnd(&rng, nq, 1);
        float *kr = malloc(4 * nkr), *vr = malloc(4 * nkr);
        for (int64_t bt = 0; bt < B * L; bt++)
            for (int64_t a = 0; a < HQ; a++)
                for (int64_t i = 0; i < dh; i++) {
                    kr[(bt * HQ + a) * dh + i] = k[(bt * H + a / G) * dh + i];
                    vr[(bt * HQ + a) * dh + i] = v[(bt * H + a / G) * dh + i];
                }
        struct attn_shape sg = {B, L, HQ, H, dh, 5, 1, 0, 0, 0}, sm = {B, L, HQ, HQ, dh, 5, 1, 0, 0, 0};
        float *o1 = malloc(4 * nq), *o2 = malloc(4 * nq), *l1 = malloc(4 * (size_t)(B * HQ * L)), *l2 = malloc(4 * (size_t)(B * HQ * L));
        float *dq1 = malloc(4 * nq), *dk1 = malloc(4 * nk), *dv1 = malloc(4 * nk);
        float *dq2 = malloc(4 * nq), *dk2 = malloc(4 * nkr), *dv2 = malloc(4 * nkr);
        T_OK(attention_forward_ref(&sg, q, k, v, o1, l1));
        T_OK(attention_forward_ref(&sm, q, kr, vr, o2, l2));
        T_CLOSE(o1, o2, nq, 1e-6, "o");
        T_OK(attention_backward_ref(&sg, q, k, v, o1, l1, g, dq1, dk1, dv1));
        T_OK(attention_backward_ref(&sm, q, kr, vr, o2, l2, g, dq2, dk2, dv2));
        T_CLOSE(dq1, dq2, nq, 1e-6, "dq");
        /* dk of a KV head is the sum over its G query heads' replicated dk */
        float *dks = calloc(nk, 4), *dvs = calloc(nk, 4);
        for (int64_t bt = 0; bt < B * L; bt++)
            for (int64_t a = 0; a < HQ; a++)
                for (int64_t i = 0; i < dh; i++) {
                    dks[(bt * H + a / G) * dh + i] += dk2[(bt * HQ + a) * dh + i];
                    dvs[(bt * H + a / G) * dh + i] += dv2[(bt * HQ + a) * dh + i];
                }
        T_CLOSE(dk1, dks, nk, 1e-5, "dk");
        T_CLOSE(dv1, dvs, nk, 1e-5, "dv");
        free(q), free(k), free(v), free(g), free(kr), free(vr), free(o1), free(o2), free(l1), free(l2);
        free(dq1), free(dk1), free(dv1), free(dq2), free(dk2), free(dv2), free(dks), free(dvs);
    }

    t_begin("lse is the log-sum-exp of the scaled scores; rows sum to one");
    {
        struct attn_shape s = {1, 11, 1, 1, 4, 3, 1, 0.5f, 0, 0};
        float q[44], k[44], v[44], o[44], lse[11];
        lc_fill_normal(&rng, q, 44, 1), lc_fill_normal(&rng, k, 44, 1);
        for (int i = 0; i < 44; i++) v[i] = 1.0f; /* softmax-weighted mean of ones is one */
        T_OK(attention_forward_ref(&s, q, k, v, o, lse));
        int ones = 1;
        for (int i = 0; i < 44; i++) ones &= fabsf(o[i] - 1.0f) < 1e-6f;
        T_CHECK(ones, "rows do not sum to one");
        const int t = 8;
        double sum = 0;
        for (int j = t - 3; j <= t; j++) {
            double d = 0;
            for (int i = 0; i < 4; i++) d += (double)q[t * 4 + i] * k[j * 4 + i];
            sum += exp(0.5 * d);
        }
        T_CHECK(fabs(lse[t] - log(sum)) < 1e-5, "lse[8] = %.7f, want %.7f", lse[t], log(sum));
    }

    t_begin("attention_pairs counts attended pairs");
    {
        struct attn_shape s = {1, 10, 1, 1, 4, 0, 1, 0, 0, 0};
        T_CHECK(attention_pairs(&s) == 55, "dense causal L=10: %g", attention_pairs(&s));
        s.W = 3; /* rows 0..3 see 1..4 keys, rows 4..9 see 4 */
        T_CHECK(attention_pairs(&s) == 10 + 6 * 4, "W=3: %g", attention_pairs(&s));
        s.W = 9;
        T_CHECK(attention_pairs(&s) == 55, "W=L-1: %g", attention_pairs(&s));
        s.W = 0, s.causal = 0;
        T_CHECK(attention_pairs(&s) == 100, "non-causal: %g", attention_pairs(&s));
    }

    t_begin("bench family: dense and swa cases on the CPU, FLOPs the FlashAttention way");
    {
        int n = 0;
        const struct bench_family *f = bench_families_attention(&n);
        T_CHECK(n == 2 && !strcmp(f[0].mixer, "dense") && !strcmp(f[1].mixer, "swa"), "families: %d", n);
        struct bench_point p;
        memset(&p, 0, sizeof p);
        snprintf(p.mixer, sizeof p.mixer, "swa");
        snprintf(p.direction, sizeof p.direction, "fwdbwd");
        p.backend = BENCH_CPU, p.B = 1, p.L = 100, p.HQ = 2, p.H = 1, p.dh = 16, p.W = 10;
        struct bench_case bc;
        if (n == 2 && T_OK(f[1].make(&p, &bc))) {
            /* pairs: rows 0..10 see 1..11 keys (66), rows 11..99 see 11 (979) */
            const double want = 3.5 * 4 * 2 * 16 * (66 + 89 * 11);
            T_CHECK(fabs(bc.flops - want) < 1e-6 * want, "flops %g, want %g", bc.flops, want);
            T_CHECK(bc.bytes > 0 && bc.alloc_bytes == f[1].predict_bytes(&p), "bytes %g alloc %zu", bc.bytes, bc.alloc_bytes);
            T_OK(bc.run(bc.ctx));
            bc.destroy(bc.ctx);
        }
        p.W = 0;
        T_ERR(f[1].make(&p, &bc), "must be > 0 for swa");
        snprintf(p.direction, sizeof p.direction, "decode");
        T_ERR(f[0].make(&p, &bc), "direction");
    }

    t_begin("bad shapes are rejected with a message naming the field");
    {
        float x[64];
        struct attn_shape ok = {1, 4, 2, 1, 4, 0, 1, 0, 0, 0}, s;
        T_OK(attention_check(&ok));
        s = ok, s.B = 0;
        T_ERR(attention_check(&s), "B = 0");
        s = ok, s.L = -3;
        T_ERR(attention_forward_ref(&s, x, x, x, x, x), "L = -3");
        s = ok, s.HQ = 3, s.H = 2;
        T_ERR(attention_check(&s), "multiple of H");
        s = ok, s.H = 0;
        T_ERR(attention_check(&s), "H = 0");
        s = ok, s.dh = 0;
        T_ERR(attention_check(&s), "dh = 0");
        s = ok, s.W = -1;
        T_ERR(attention_check(&s), "W = -1");
        s = ok, s.causal = 0, s.W = 4;
        T_ERR(attention_check(&s), "needs causal");
        s = ok, s.causal = 2;
        T_ERR(attention_check(&s), "causal = 2");
        s = ok, s.scale = -1;
        T_ERR(attention_check(&s), "scale");
        T_ERR(attention_forward_ref(&ok, x, NULL, x, x, x), "non-NULL");
        T_ERR(attention_backward_ref(&ok, x, x, x, x, NULL, x, x, x, x), "non-NULL");
        s = ok, s.dh = 96;
        T_ERR(attention_cuda_supported(&s), "dh = 96");
        s = ok, s.dh = 64, s.L = ((int64_t)1 << 24) + 1;
        T_ERR(attention_cuda_supported(&s), "2^24");
    }
    return t_finish();
}
