/* test_hsa_attend.c — HSA chunk attention reference: forward and lse against a double
 * re-implementation; backward (dq, dk, dv, dw) against central finite differences for
 * G = 1, 2, 3, 4, 16, plain and off-by-one softmax, K beyond the visible chunks, ragged L,
 * block_q = 1 and S, Hr = 1 and H; the whole retrieval -> weights -> attention chain against finite
 * differences; the S = 1 closed form; causality. */
#include "test_hsa_util.h"

struct inputs {
    float *q_r, *lmk, *q, *k, *v;
};
static struct inputs inputs_make(const struct hsa_shape *s, lc_rng *r) {
    struct inputs in = {t_randn(r, n_qr(s), 1), t_randn(r, n_lmk(s), 1), t_randn(r, n_q(s), 1),
                        t_randn(r, n_kv(s), 1), t_randn(r, n_kv(s), 1)};
    return in;
}
static void inputs_free(struct inputs *in) {
    free(in->q_r), free(in->lmk), free(in->q), free(in->k), free(in->v);
}

/* The float pipeline: retrieve -> weights -> attend. */
struct outputs {
    int32_t *idx;
    float *score, *w, *o, *lse;
};
static struct outputs outputs_make(const struct hsa_shape *s) {
    struct outputs out = {malloc(sizeof(int32_t) * (size_t)n_slots(s)), t_alloc(n_slots(s)),
                          t_alloc(n_slots(s)), t_alloc(n_q(s)), t_alloc(n_lse(s))};
    return out;
}
static void outputs_free(struct outputs *o) {
    free(o->idx), free(o->score), free(o->w), free(o->o), free(o->lse);
}
static int pipeline(const struct hsa_shape *s, const struct inputs *in, struct outputs *out) {
    return T_OK(hsa_retrieve_ref(s, in->q_r, in->lmk, out->idx, out->score)) &&
           T_OK(hsa_weights_forward_ref(s, out->score, out->w)) &&
           T_OK(hsa_attend_forward_ref(s, in->q, in->k, in->v, out->idx, out->w, out->o, out->lse));
}

/* ---- attention alone: loss = sum(o * R), w an independent input ---- */
struct a_ctx {
    const struct hsa_shape *s;
    const int32_t *idx;
    double *q, *k, *v, *w, *R, *o;
};
static double a_loss(void *p) {
    struct a_ctx *x = p;
    dref_attend(x->s, x->q, x->k, x->v, x->idx, x->w, x->o, NULL);
    double l = 0;
    for (int64_t i = 0; i < n_q(x->s); i++) l += x->o[i] * x->R[i];
    return l;
}

static void check_attend(const struct hsa_shape *s, uint64_t seed) {
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const int64_t ns = n_slots(s), K = s->K, Lr = hsa_num_rows(s);
    struct inputs in = inputs_make(s, &rng);
    struct outputs out = outputs_make(s);
    float *R = t_randn(&rng, n_q(s), 1);
    float *dq = t_alloc(n_q(s)), *dk = t_alloc(n_kv(s)), *dv = t_alloc(n_kv(s)), *dw = t_alloc(ns);
    float *dq2 = t_alloc(n_q(s)), *dk2 = t_alloc(n_kv(s)), *dv2 = t_alloc(n_kv(s)),
          *dw2 = t_alloc(ns);
    double *od = t_alloc_d(n_q(s)), *lsed = t_alloc_d(n_lse(s));
    float *odf = t_alloc(n_q(s)), *lsef = t_alloc(n_lse(s)), *lse_fin = t_alloc(n_lse(s));
    if (!T_OK(hsa_retrieve_ref(s, in.q_r, in.lmk, out.idx, out.score))) goto done;
    /* Random positive weights on valid slots; garbage on invalid slots (weight and idx), which the
     * reference must ignore. */
    int64_t nvalid = 0;
    for (int64_t i = 0; i < ns; i++) {
        int64_t row = i / K / s->Hr % Lr, k = i % K;
        if (k < t_nvalid(s, row)) {
            out.w[i] = 0.2f + 0.8f * (float)lc_rng_uniform(&rng);
            nvalid++;
        } else {
            out.w[i] = 3.0f;
            out.idx[i] = 1000 + (int32_t)k;
        }
    }
    if (!T_CHECK(nvalid > 0, "no valid slot")) goto done;
    if (!T_OK(hsa_attend_forward_ref(s, in.q, in.k, in.v, out.idx, out.w, out.o, out.lse)))
        goto done;
    struct a_ctx x = {s,
                      out.idx,
                      t_to_d(in.q, n_q(s)),
                      t_to_d(in.k, n_kv(s)),
                      t_to_d(in.v, n_kv(s)),
                      t_to_d(out.w, ns),
                      t_to_d(R, n_q(s)),
                      t_alloc_d(n_q(s))};
    dref_attend(s, x.q, x.k, x.v, out.idx, x.w, od, lsed);
    for (int64_t i = 0; i < n_q(s); i++) odf[i] = (float)od[i];
    T_CLOSE(out.o, odf, (size_t)n_q(s), 1e-5, "o vs double");
    int lse_ok = 1;
    for (int64_t i = 0; i < n_lse(s); i++) {
        if (isinf(lsed[i])) {
            lse_ok &= isinf(out.lse[i]) && out.lse[i] < 0;
            lsef[i] = lse_fin[i] = 0;
        } else {
            lsef[i] = (float)lsed[i], lse_fin[i] = out.lse[i];
        }
    }
    T_CHECK(lse_ok, "invalid slots must have lse = -inf, valid ones finite");
    T_CLOSE(lse_fin, lsef, (size_t)n_lse(s), 1e-5, "lse vs double");

    if (!T_OK(hsa_attend_backward_ref(s, in.q, in.k, in.v, out.idx, out.w, out.lse, R, dq, dk, dv,
                                      dw)))
        goto free_x;
    /* lse = NULL recomputes the same probabilities */
    if (!T_OK(hsa_attend_backward_ref(s, in.q, in.k, in.v, out.idx, out.w, NULL, R, dq2, dk2, dv2,
                                      dw2)))
        goto free_x;
    T_CLOSE(dq2, dq, (size_t)n_q(s), 1e-5, "dq with lse=NULL");
    T_CLOSE(dk2, dk, (size_t)n_kv(s), 1e-5, "dk with lse=NULL");
    T_CLOSE(dv2, dv, (size_t)n_kv(s), 1e-5, "dv with lse=NULL");
    T_CLOSE(dw2, dw, (size_t)ns, 1e-5, "dw with lse=NULL");
    for (int64_t i = 0; i < ns; i++)
        if (i % K >= t_nvalid(s, i / K / s->Hr % Lr) &&
            !T_CHECK(dw[i] == 0, "invalid slot dw %g", dw[i]))
            goto free_x;
    /* the incomplete last chunk is never attended: its dk, dv rows are exactly 0 */
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t t = hsa_num_chunks(s) * s->S; t < s->L; t++)
            for (int64_t i = 0; i < s->H * s->dh; i++) {
                int64_t j = (b * s->L + t) * s->H * s->dh + i;
                if (!T_CHECK(dk[j] == 0 && dv[j] == 0, "incomplete chunk row %lld has a gradient",
                             (long long)t))
                    goto free_x;
            }
    double eq = t_fd_check(a_loss, &x, x.q, n_q(s), dq, &rng, 300);
    double ek = t_fd_check(a_loss, &x, x.k, n_kv(s), dk, &rng, 300);
    double ev = t_fd_check(a_loss, &x, x.v, n_kv(s), dv, &rng, 300);
    double ew = t_fd_check(a_loss, &x, x.w, ns, dw, &rng, 300);
    T_CHECK(eq < 1e-4 && ek < 1e-4 && ev < 1e-4 && ew < 1e-4,
            "FD relative errors dq %.2e dk %.2e dv %.2e dw %.2e (G=%lld S=%lld K=%lld block_q=%lld "
            "sm1=%d)",
            eq, ek, ev, ew, (long long)(s->HQ / s->H), (long long)s->S, (long long)s->K,
            (long long)s->block_q, s->softmax1);
    /* With S = 1 and a plain softmax each chunk softmax is constant 1: dq = dk = 0 exactly. */
    const int qk_live = s->S > 1 || s->softmax1;
    T_CHECK((!qk_live || (t_max_abs(dq, n_q(s)) > 0 && t_max_abs(dk, n_kv(s)) > 0)) &&
                t_max_abs(dv, n_kv(s)) > 0 && t_max_abs(dw, ns) > 0,
            "a gradient is all zero");
    if (!qk_live)
        T_CHECK(t_max_abs(dq, n_q(s)) < 1e-6 && t_max_abs(dk, n_kv(s)) < 1e-6,
                "S = 1: dq, dk must be 0");
free_x:
    free(x.q), free(x.k), free(x.v), free(x.w), free(x.R), free(x.o);
done:
    inputs_free(&in), outputs_free(&out);
    free(R), free(dq), free(dk), free(dv), free(dw), free(dq2), free(dk2), free(dv2), free(dw2);
    free(od), free(lsed), free(odf), free(lsef), free(lse_fin);
}

/* ---- the whole chain: q_r, lmk -> scores -> w -> attention, at the selected idx ---- */
struct c_ctx {
    const struct hsa_shape *s;
    const int32_t *idx;
    double *q_r, *lmk, *q, *k, *v, *R, *sc, *w, *o;
};
static double c_loss(void *p) {
    struct c_ctx *x = p;
    dref_scores(x->s, x->q_r, x->lmk, x->idx, x->sc);
    dref_weights(x->s, x->sc, x->w);
    dref_attend(x->s, x->q, x->k, x->v, x->idx, x->w, x->o, NULL);
    double l = 0;
    for (int64_t i = 0; i < n_q(x->s); i++) l += x->o[i] * x->R[i];
    return l;
}
static void check_chain(const struct hsa_shape *s, uint64_t seed) {
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const int64_t ns = n_slots(s);
    struct inputs in = inputs_make(s, &rng);
    struct outputs out = outputs_make(s);
    float *R = t_randn(&rng, n_q(s), 1);
    float *dq = t_alloc(n_q(s)), *dk = t_alloc(n_kv(s)), *dv = t_alloc(n_kv(s)), *dw = t_alloc(ns);
    float *dsc = t_alloc(ns), *dqr = t_alloc(n_qr(s)), *dlmk = t_alloc(n_lmk(s));
    if (!pipeline(s, &in, &out)) goto done;
    if (!T_OK(hsa_attend_backward_ref(s, in.q, in.k, in.v, out.idx, out.w, out.lse, R, dq, dk, dv,
                                      dw)) ||
        !T_OK(hsa_weights_backward_ref(s, out.score, out.w, dw, dsc)) ||
        !T_OK(hsa_scores_backward_ref(s, in.q_r, in.lmk, out.idx, dsc, dqr, dlmk)))
        goto done;
    struct c_ctx x = {s,
                      out.idx,
                      t_to_d(in.q_r, n_qr(s)),
                      t_to_d(in.lmk, n_lmk(s)),
                      t_to_d(in.q, n_q(s)),
                      t_to_d(in.k, n_kv(s)),
                      t_to_d(in.v, n_kv(s)),
                      t_to_d(R, n_q(s)),
                      t_alloc_d(ns),
                      t_alloc_d(ns),
                      t_alloc_d(n_q(s))};
    double e[5] = {t_fd_check(c_loss, &x, x.q_r, n_qr(s), dqr, &rng, 200),
                   t_fd_check(c_loss, &x, x.lmk, n_lmk(s), dlmk, &rng, 200),
                   t_fd_check(c_loss, &x, x.q, n_q(s), dq, &rng, 200),
                   t_fd_check(c_loss, &x, x.k, n_kv(s), dk, &rng, 200),
                   t_fd_check(c_loss, &x, x.v, n_kv(s), dv, &rng, 200)};
    T_CHECK(e[0] < 1e-4 && e[1] < 1e-4 && e[2] < 1e-4 && e[3] < 1e-4 && e[4] < 1e-4,
            "chain FD relative errors dq_r %.2e dlmk %.2e dq %.2e dk %.2e dv %.2e (weighting %d)",
            e[0], e[1], e[2], e[3], e[4], s->weighting);
    T_CHECK(t_max_abs(dqr, n_qr(s)) > 0 && t_max_abs(dlmk, n_lmk(s)) > 0,
            "retrieval gradient is all zero");
    free(x.q_r), free(x.lmk), free(x.q), free(x.k), free(x.v), free(x.R), free(x.sc), free(x.w),
        free(x.o);
done:
    inputs_free(&in), outputs_free(&out);
    free(R), free(dq), free(dk), free(dv), free(dw), free(dsc), free(dqr), free(dlmk);
}

/* ---- closed form: S = 1 and K >= L ----
 * Every chunk is one token and every earlier token is selected, so chunk attention is over a
 * single key: o_k = v_c (plain) or sigma(z_c) v_c (off-by-one: e^z / (1 + e^z)), lse_k = z_c or
 * softplus(z_c), and slot k holds chunk t-1-k. HSA then is causal attention over the strictly
 * earlier tokens with scores from the retrieval pair:
 *   softmax:        o[t,a] = sum_{c<t} softmax_c(s_tc) f(z_tc) v_c
 *   stick-breaking: o[t,a] = sum_{c<t} sigma(s_tc) prod_{c<c'<t} (1 - sigma(s_tc')) f(z_tc) v_c
 * with s_tc = <q_r[t], lmk[c]> / sqrt(dr), z_tc = <q[t,a], k[c]> / sqrt(dh), f = 1 or sigma. */
static void check_closed_form(const struct hsa_shape *s, uint64_t seed) {
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const int64_t L = s->L, HQ = s->HQ, H = s->H, G = HQ / H, dh = s->dh, Hr = s->Hr, dr = s->dr,
                  K = s->K;
    struct inputs in = inputs_make(s, &rng);
    struct outputs out = outputs_make(s);
    float *want = t_alloc(n_q(s)), *lse_want = t_alloc(n_lse(s)), *lse_got = t_alloc(n_lse(s));
    double *sc = t_alloc_d(L), *coef = t_alloc_d(L);
    int lse_inf_ok = 1;
    if (!pipeline(s, &in, &out)) goto done;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t t = 0; t < L; t++)
            for (int64_t a = 0; a < HQ; a++) {
                const int64_t h = a / G, hr = Hr == 1 ? 0 : h;
                const float *qr = in.q_r + ((b * L + t) * Hr + hr) * dr;
                const float *qa = in.q + ((b * L + t) * HQ + a) * dh;
                double mx = -INFINITY, sum = 0, rest = 1;
                for (int64_t c = 0; c < t; c++) {
                    double d = 0;
                    for (int64_t i = 0; i < dr; i++)
                        d += (double)qr[i] * in.lmk[((b * L + c) * Hr + hr) * dr + i];
                    sc[c] = d / sqrt((double)dr);
                    mx = fmax(mx, sc[c]);
                }
                for (int64_t c = 0; c < t; c++) sum += exp(sc[c] - mx);
                for (int64_t c = t - 1; c >= 0; c--) { /* stick-breaking runs most recent first */
                    if (s->weighting == HSA_SOFTMAX)
                        coef[c] = exp(sc[c] - mx) / sum;
                    else
                        coef[c] = dref_sigmoid(sc[c]) * rest, rest *= 1 - dref_sigmoid(sc[c]);
                }
                for (int64_t i = 0; i < dh; i++) {
                    double acc = 0;
                    for (int64_t c = 0; c < t; c++) {
                        double z = 0;
                        for (int64_t j = 0; j < dh; j++)
                            z += (double)qa[j] * in.k[((b * L + c) * H + h) * dh + j];
                        z /= sqrt((double)dh);
                        double f = s->softmax1 ? dref_sigmoid(z) : 1;
                        acc += coef[c] * f * in.v[((b * L + c) * H + h) * dh + i];
                        if (i == 0) {
                            int64_t slot = t - 1 - c, li = ((b * L + t) * HQ + a) * K + slot;
                            lse_want[li] = (float)(s->softmax1 ? dref_softplus(z) : z);
                            lse_got[li] = out.lse[li];
                        }
                    }
                    want[((b * L + t) * HQ + a) * dh + i] = (float)acc;
                }
                for (int64_t slot = t; slot < K; slot++)
                    lse_inf_ok &= isinf(out.lse[((b * L + t) * HQ + a) * K + slot]);
            }
    T_CLOSE(out.o, want, (size_t)n_q(s), 1e-5, "o vs the S=1 closed form");
    T_CLOSE(lse_got, lse_want, (size_t)n_lse(s), 1e-5,
            "lse vs z (or softplus z) of chunk t-1-slot");
    T_CHECK(lse_inf_ok, "slots beyond the t visible tokens must have lse -inf");
done:
    inputs_free(&in), outputs_free(&out);
    free(want), free(lse_want), free(lse_got), free(sc), free(coef);
}

/* ---- causality: perturbing anything at positions after t leaves o, lse at <= t bit-identical ----
 */
static void check_causal(const struct hsa_shape *s, uint64_t seed) {
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const int64_t L = s->L, HQ = s->HQ, H = s->H, dh = s->dh, Hr = s->Hr, dr = s->dr, K = s->K;
    const int64_t Lr = hsa_num_rows(s), C = hsa_num_chunks(s);
    struct inputs in = inputs_make(s, &rng), pin = inputs_make(s, &rng);
    struct outputs out = outputs_make(s), pout = outputs_make(s);
    if (!pipeline(s, &in, &out)) goto done;
    for (int64_t t = 0; t < L; t += 1 + t / 16) {
        memcpy(pin.q_r, in.q_r, sizeof(float) * (size_t)n_qr(s));
        memcpy(pin.lmk, in.lmk, sizeof(float) * (size_t)n_lmk(s));
        memcpy(pin.q, in.q, sizeof(float) * (size_t)n_q(s));
        memcpy(pin.k, in.k, sizeof(float) * (size_t)n_kv(s));
        memcpy(pin.v, in.v, sizeof(float) * (size_t)n_kv(s));
        for (int64_t b = 0; b < s->B; b++) {
            for (int64_t p = t + 1; p < L; p++) {
                for (int64_t i = 0; i < HQ * dh; i++)
                    pin.q[(b * L + p) * HQ * dh + i] += lc_rng_normal(&rng);
                for (int64_t i = 0; i < H * dh; i++) {
                    pin.k[(b * L + p) * H * dh + i] += lc_rng_normal(&rng);
                    pin.v[(b * L + p) * H * dh + i] += lc_rng_normal(&rng);
                }
            }
            /* a landmark depends on its whole chunk; a retrieval row on its tokens */
            for (int64_t c = 0; c < C; c++)
                if ((c + 1) * s->S - 1 > t)
                    for (int64_t i = 0; i < Hr * dr; i++)
                        pin.lmk[(b * C + c) * Hr * dr + i] += 3 * lc_rng_normal(&rng);
            for (int64_t r = 0; r < Lr; r++)
                if (r * s->block_q > t)
                    for (int64_t i = 0; i < Hr * dr; i++)
                        pin.q_r[(b * Lr + r) * Hr * dr + i] += 3 * lc_rng_normal(&rng);
        }
        if (!pipeline(s, &pin, &pout)) goto done;
        int changed = 0;
        for (int64_t b = 0; b < s->B; b++) {
            size_t head = (size_t)((t + 1) * HQ);
            if (!T_CHECK(memcmp(out.o + b * L * HQ * dh, pout.o + b * L * HQ * dh,
                                head * dh * sizeof(float)) == 0 &&
                             memcmp(out.lse + b * L * HQ * K, pout.lse + b * L * HQ * K,
                                    head * K * sizeof(float)) == 0,
                         "output at or before t = %lld changed (b = %lld)", (long long)t,
                         (long long)b))
                goto done;
            changed |= memcmp(out.o + b * L * HQ * dh, pout.o + b * L * HQ * dh,
                              (size_t)(L * HQ * dh) * sizeof(float)) != 0;
        }
        /* the perturbation is real: the last token (which sees chunks) moved */
        if (t + 1 < L &&
            !T_CHECK(changed, "perturbing after t = %lld changed nothing", (long long)t))
            goto done;
    }
done:
    inputs_free(&in), inputs_free(&pin), outputs_free(&out), outputs_free(&pout);
}

int main(void) {
    /* B, L, HQ, H, dh, S, K, Hr, dr, block_q, softmax1 */
    const int64_t cases[][11] = {
        {2, 23, 2, 2, 5, 4, 3, 2, 6, 1, 0},  /* G = 1, ragged L, Hr = H */
        {1, 19, 8, 2, 4, 3, 8, 1, 6, 1, 1},  /* G = 4, K > C, Hr = 1 over H = 2, off-by-one */
        {1, 18, 16, 1, 3, 4, 2, 1, 4, 1, 1}, /* G = 16, off-by-one */
        {1, 18, 16, 1, 3, 4, 2, 1, 4, 1, 0}, /* G = 16, plain */
        {2, 27, 4, 2, 4, 4, 3, 2, 5, 4, 0},  /* GCA (block_q = S), ragged, G = 2 */
        {1, 22, 3, 1, 4, 3, 10, 1, 5, 3, 1}, /* GCA, K > visible, off-by-one, G = 3 */
        {1, 9, 4, 2, 3, 1, 4, 2, 3, 1, 0},   /* S = 1 */
        {1, 31, 8, 2, 4, 5, 3, 1, 4, 5, 1},  /* GCA, Hr = 1 over H = 2, G = 4, ragged */
        {1, 21, 4, 1, 4, 7, 2, 1, 4, 1, 0},  /* large S relative to L */
    };
    const size_t ncases = sizeof cases / sizeof cases[0];
#define SHAPE(v, wt)                                                                               \
    hsa_shape_make(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], (int)v[10], wt)

    t_begin("attend forward, lse and backward (dq, dk, dv, dw) vs double / finite differences");
    for (size_t i = 0; i < ncases; i++) {
        struct hsa_shape s = SHAPE(cases[i], HSA_SOFTMAX);
        check_attend(&s, 1000 + i);
    }
    t_begin("attend with an explicit scale");
    {
        struct hsa_shape s = SHAPE(cases[1], HSA_SOFTMAX);
        s.scale = 0.9f;
        check_attend(&s, 1100);
    }

    t_begin("retrieval -> softmax weights -> attention chain vs finite differences");
    for (size_t i = 0; i < ncases; i += 2) {
        struct hsa_shape s = SHAPE(cases[i], HSA_SOFTMAX);
        check_chain(&s, 2000 + i);
    }
    t_begin("retrieval -> stick-breaking weights -> attention chain vs finite differences");
    for (size_t i = 1; i < ncases; i += 2) {
        struct hsa_shape s = SHAPE(cases[i], HSA_STICK_BREAKING);
        check_chain(&s, 3000 + i);
    }

    t_begin("S = 1, K >= L: HSA equals causal attention over earlier tokens (closed form)");
    for (int wt = 0; wt < 2; wt++)
        for (int sm1 = 0; sm1 < 2; sm1++)
            for (int hr1 = 0; hr1 < 2; hr1++) {
                struct hsa_shape s =
                    hsa_shape_make(2, 13, 4, 2, 4, 1, 16, hr1 ? 1 : 2, 5, 1, sm1, wt);
                check_closed_form(&s, 4000 + 4 * wt + 2 * sm1 + hr1);
            }

    t_begin("causality: inputs after t never change outputs at or before t");
    for (size_t i = 0; i < ncases; i++) {
        struct hsa_shape s = SHAPE(cases[i], (int)(i % 2));
        s.gumbel = (int)(i % 3 == 0), s.gumbel_seed = 5 + i;
        check_causal(&s, 5000 + i);
    }
    t_begin("no complete chunk (S > L): nothing is selected, o = 0, lse = -inf, gradients 0");
    {
        struct hsa_shape s = hsa_shape_make(2, 5, 4, 2, 3, 8, 3, 2, 4, 1, 1, HSA_STICK_BREAKING);
        lc_rng rng;
        lc_rng_seed(&rng, 6000);
        struct inputs in = inputs_make(&s, &rng);
        struct outputs out = outputs_make(&s);
        float *R = t_randn(&rng, n_q(&s), 1), *dq = t_randn(&rng, n_q(&s), 1);
        float *dk = t_randn(&rng, n_kv(&s), 1), *dv = t_randn(&rng, n_kv(&s), 1),
              *dw = t_randn(&rng, n_slots(&s), 1);
        if (pipeline(&s, &in, &out) &&
            T_OK(hsa_attend_backward_ref(&s, in.q, in.k, in.v, out.idx, out.w, out.lse, R, dq, dk,
                                         dv, dw))) {
            int ok = 1;
            for (int64_t i = 0; i < n_q(&s); i++) ok &= out.o[i] == 0 && dq[i] == 0;
            for (int64_t i = 0; i < n_lse(&s); i++) ok &= isinf(out.lse[i]) && out.lse[i] < 0;
            for (int64_t i = 0; i < n_kv(&s); i++) ok &= dk[i] == 0 && dv[i] == 0;
            for (int64_t i = 0; i < n_slots(&s); i++)
                ok &= dw[i] == 0 && out.w[i] == 0 && out.idx[i] == 0;
            T_CHECK(ok, "something was attended with no complete chunk");
        }
        inputs_free(&in), outputs_free(&out);
        free(R), free(dq), free(dk), free(dv), free(dw);
    }
    return t_finish();
}
