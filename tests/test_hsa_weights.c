/* test_hsa_weights.c — HSA fusion weights (softmax and stick-breaking): forward identities,
 * invalid and all-invalid rows, the softplus threshold, and the backward against central
 * finite differences of a double re-implementation; the position decay (score += k * beta) and
 * its beta gradient through the weights, against finite differences in double. */
#include "test_hsa_util.h"

/* Scores for every row: the preprocessed layout (valid slots first, then -inf), with the number of
 * valid slots varying per row from 0 to K; spread `spread`. */
static float *make_scores(const struct hsa_shape *s, lc_rng *rng, float spread) {
    const int64_t rows = s->B * hsa_num_rows(s) * s->Hr, K = s->K;
    float *sc = t_randn(rng, rows * K, spread);
    for (int64_t row = 0; row < rows; row++) {
        int64_t nk = row % (K + 1);
        for (int64_t k = nk; k < K; k++) sc[row * K + k] = -INFINITY;
    }
    return sc;
}

struct w_ctx {
    const struct hsa_shape *s;
    double *sc, *g, *w;
};
static double w_loss(void *p) {
    struct w_ctx *x = p;
    dref_weights(x->s, x->sc, x->w);
    double l = 0;
    for (int64_t i = 0; i < n_slots(x->s); i++) l += x->g[i] * x->w[i];
    return l;
}

static void check_weights(const struct hsa_shape *s, uint64_t seed, float spread) {
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const int64_t n = n_slots(s), K = s->K;
    float *sc = make_scores(s, &rng, spread), *g = t_randn(&rng, n, 1);
    float *w = t_alloc(n), *ds = t_randn(&rng, n, 1); /* ds is overwritten: start from garbage */
    double *wd = t_alloc_d(n), *scd = t_to_d(sc, n);
    if (!T_OK(hsa_weights_forward_ref(s, sc, w))) goto done;
    dref_weights(s, scd, wd);
    float *wdf = t_alloc(n);
    for (int64_t i = 0; i < n; i++) wdf[i] = (float)wd[i];
    T_CLOSE(w, wdf, (size_t)n, 1e-5, "weights vs double");
    free(wdf);
    for (int64_t row = 0; row < n / K; row++) {
        double sum = 0;
        int64_t nvalid = 0;
        for (int64_t k = 0; k < K; k++) {
            if (isinf(sc[row * K + k])) {
                if (!T_CHECK(w[row * K + k] == 0, "invalid slot has weight %g", w[row * K + k]))
                    goto done;
            } else {
                nvalid++;
                if (!T_CHECK(w[row * K + k] >= 0, "negative weight")) goto done;
            }
            sum += w[row * K + k];
        }
        /* softmax sums to 1 (0 on all-invalid rows); stick-breaking leaves mass 1 - sum >= 0 for
         * "attend to nothing", equal to prod (1 - sigma(s_k)). */
        if (s->weighting == HSA_SOFTMAX) {
            if (!T_CHECK(fabs(sum - (nvalid ? 1.0 : 0.0)) < 1e-5, "row %lld sums to %g",
                         (long long)row, sum))
                goto done;
        } else {
            double rest = 1;
            for (int64_t k = 0; k < nvalid; k++) rest *= 1 - dref_sigmoid(sc[row * K + k]);
            if (!T_CHECK(fabs(1 - sum - rest) < 1e-5, "row %lld: 1 - sum = %g, prod(1-sigma) = %g",
                         (long long)row, 1 - sum, rest))
                goto done;
        }
    }
    if (!T_OK(hsa_weights_backward_ref(s, sc, w, g, ds))) goto done;
    for (int64_t i = 0; i < n; i++)
        if (isinf(sc[i]) && !T_CHECK(ds[i] == 0, "invalid slot has dscore %g", ds[i])) goto done;
    /* FD over the valid (finite) scores only: -inf is not a point one can perturb. */
    struct w_ctx x = {s, scd, t_to_d(g, n), t_alloc_d(n)};
    int64_t nf = 0;
    int64_t *map = malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        if (!isinf(sc[i])) map[nf++] = i;
    double num = 0, den = 0;
    for (int64_t j = 0; j < nf && j < 400; j++) {
        int64_t i = map[(j * 7919) % nf];
        double v = scd[i], h = 1e-5 * (1 + fabs(v));
        scd[i] = v + h;
        double lp = w_loss(&x);
        scd[i] = v - h;
        double lm = w_loss(&x);
        scd[i] = v;
        double fd = (lp - lm) / (2 * h);
        num += (fd - ds[i]) * (fd - ds[i]);
        den += fd * fd;
    }
    double err = den > 0 ? sqrt(num / den) : sqrt(num); /* K = 1 softmax: w = 1, gradient 0 */
    T_CHECK(err < 1e-4, "dscore relative error %.3e (weighting %d)", err, s->weighting);
    free(x.g), free(x.w), free(map);
done:
    free(sc), free(g), free(w), free(ds), free(wd), free(scd);
}

/* loss(beta) = sum g * weights(score + k * beta) in double; the analytic path is the C reference:
 * pos_decay_forward -> weights_forward -> weights_backward -> pos_decay_backward. */
static double decay_loss(const struct hsa_shape *s, const float *sc, const double *g, double beta) {
    const int64_t n = n_slots(s), K = s->K;
    double *x = t_alloc_d(n), *w = t_alloc_d(n), l = 0;
    for (int64_t i = 0; i < n; i++) x[i] = isinf(sc[i]) ? -INFINITY : sc[i] + (double)(i % K) * beta;
    dref_weights(s, x, w);
    for (int64_t i = 0; i < n; i++) l += g[i] * w[i];
    free(x), free(w);
    return l;
}

static void check_pos_decay(const struct hsa_shape *s, uint64_t seed, float beta) {
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const int64_t n = n_slots(s), K = s->K;
    float *sc = make_scores(s, &rng, 1.0f), *g = t_randn(&rng, n, 1), *dec = t_alloc(n), *w = t_alloc(n), *ds = t_alloc(n);
    double *gd = t_to_d(g, n);
    memcpy(dec, sc, sizeof(float) * (size_t)n);
    float dbeta = 0.25f; /* accumulates: the check subtracts the start value */
    if (!T_OK(hsa_pos_decay_forward_ref(s, &beta, dec))) goto done;
    for (int64_t i = 0; i < n; i++) {
        const float want = isinf(sc[i]) ? -INFINITY : sc[i] + (float)(i % K) * beta;
        if (!T_CHECK(dec[i] == want || (isinf(dec[i]) && isinf(want)), "slot %lld: %g, want %g", (long long)i, dec[i], want)) goto done;
    }
    if (!T_OK(hsa_weights_forward_ref(s, dec, w)) || !T_OK(hsa_weights_backward_ref(s, dec, w, g, ds)) ||
        !T_OK(hsa_pos_decay_backward_ref(s, dec, ds, &dbeta)))
        goto done;
    const double h = 1e-5, fd = (decay_loss(s, sc, gd, beta + h) - decay_loss(s, sc, gd, beta - h)) / (2 * h);
    const double an = (double)dbeta - 0.25;
    T_CHECK(fabs(fd - an) <= 1e-4 * (1 + fabs(fd)), "dbeta %.7g vs finite differences %.7g (beta %g, weighting %d)", an, fd, beta,
            s->weighting);
done:
    free(sc), free(g), free(dec), free(w), free(ds), free(gd);
}

int main(void) {
    /* B, L, Hr, K, S, block_q; rows = B * ceil(L/block_q) * Hr, each with 0..K valid slots */
    const int64_t shapes[][6] = {{2, 13, 2, 5, 4, 1}, {1, 30, 1, 8, 3, 3}, {3, 7, 1, 1, 2, 1}};
    for (int wt = 0; wt < 2; wt++) {
        t_begin(wt == HSA_SOFTMAX
                    ? "softmax weights: forward identities and backward vs FD"
                    : "stick-breaking weights: forward identities and backward vs FD");
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const int64_t *v = shapes[i];
            struct hsa_shape s =
                hsa_shape_make(v[0], v[1], v[2], v[2], 4, v[4], v[3], v[2], 4, v[5], 0, wt);
            check_weights(&s, 10 * i + wt, 1.0f);
            check_weights(&s, 10 * i + wt + 100, 4.0f);
        }
    }

    t_begin("position decay: score + k * beta on valid slots; dbeta vs finite differences (both weightings)");
    for (int wt = 0; wt < 2; wt++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const int64_t *v = shapes[i];
            struct hsa_shape s = hsa_shape_make(v[0], v[1], v[2], v[2], 4, v[4], v[3], v[2], 4, v[5], 0, wt);
            check_pos_decay(&s, 300 + 10 * i + wt, i == 0 ? 0.0f : (i == 1 ? -0.37f : 0.81f));
        }

    t_begin("stick-breaking: a saturated slot (s > 15) takes the whole stick; slot order");
    {
        struct hsa_shape s = hsa_shape_make(1, 1, 1, 1, 1, 1, 4, 1, 1, 1, 0, HSA_STICK_BREAKING);
        float sc[4] = {20.0f, 1.0f, -2.0f, -INFINITY}, w[4], g[4] = {1, 2, 3, 4}, ds[4];
        T_OK(hsa_weights_forward_ref(&s, sc, w));
        /* above the threshold softplus(x) = x, so sigma = exp(x - x) = 1 exactly and the stick is
         * used up: every later weight is exp(-20)-small */
        T_CHECK(w[0] == 1.0f, "w0 = %.9g, want exactly 1", w[0]);
        T_CHECK(w[1] < 3e-9f && w[1] > 0 && w[3] == 0, "w1 = %g w3 = %g", w[1], w[3]);
        T_OK(hsa_weights_backward_ref(&s, sc, w, g, ds));
        /* ds_0 = w_0 g_0 - 1 * sum_{i>=0} w_i g_i (sp' = 1 above the threshold) */
        double suf = 0;
        for (int k = 0; k < 4; k++) suf += (double)w[k] * g[k];
        T_CHECK(fabs(ds[0] - (w[0] * g[0] - suf)) < 1e-6, "ds0 %g vs %g", ds[0], w[0] * g[0] - suf);
        float sc2[4] = {0.5f, 1.5f, -0.5f, 2.0f}, w2[4];
        T_OK(hsa_weights_forward_ref(&s, sc2, w2));
        double rest = 1;
        for (int k = 0; k < 4; k++) {
            double want = dref_sigmoid(sc2[k]) * rest;
            rest *= 1 - dref_sigmoid(sc2[k]);
            T_CHECK(fabs(w2[k] - want) < 1e-6, "slot %d: %g vs sigma*prod %g", k, w2[k], want);
        }
    }

    t_begin("softmax: large scores do not overflow; all-invalid rows are zero");
    {
        struct hsa_shape s = hsa_shape_make(1, 2, 1, 1, 1, 1, 3, 1, 1, 1, 0, HSA_SOFTMAX);
        float sc[6] = {300.0f, 299.0f, -INFINITY, -INFINITY, -INFINITY, -INFINITY}, w[6];
        T_OK(hsa_weights_forward_ref(&s, sc, w));
        double e = exp(-1.0);
        T_CHECK(fabs(w[0] - 1 / (1 + e)) < 1e-6 && fabs(w[1] - e / (1 + e)) < 1e-6 && w[2] == 0,
                "w = %g %g %g", w[0], w[1], w[2]);
        T_CHECK(w[3] == 0 && w[4] == 0 && w[5] == 0, "all-invalid row: %g %g %g", w[3], w[4], w[5]);
    }
    return t_finish();
}
