/* test_hsa_retrieve.c — HSA retrieval reference: argument checks, top-k against a full sort,
 * tie-breaking, visibility (HSA and GCA rows), Gumbel noise (selection only, seeded), and the
 * scores backward against central finite differences in double precision. */
#include "test_hsa_util.h"

/* One row's visible scores recomputed in double, sorted (score desc, id asc). */
struct t_sc {
    double s;
    int64_t c;
};
static int t_sc_cmp(const void *pa, const void *pb) {
    const struct t_sc *a = pa, *b = pb;
    if (a->s != b->s) return a->s > b->s ? -1 : 1;
    return a->c < b->c ? -1 : a->c > b->c;
}

static double dot_d(const float *a, const float *b, int64_t n) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += (double)a[i] * b[i];
    return acc;
}

/* Every structural promise of hsa_retrieve_ref for one shape, plus top-k against a sort. */
static void check_retrieve(const struct hsa_shape *s, uint64_t seed) {
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const int64_t Lr = hsa_num_rows(s), C = hsa_num_chunks(s), Hr = s->Hr, dr = s->dr, K = s->K;
    float *q_r = t_randn(&rng, n_qr(s), 1), *lmk = t_randn(&rng, n_lmk(s), 1);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)n_slots(s));
    float *score = t_alloc(n_slots(s));
    struct t_sc *all = malloc(sizeof(struct t_sc) * (size_t)(C + 1));
    if (!T_OK(hsa_retrieve_ref(s, q_r, lmk, idx, score))) goto done;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t r = 0; r < Lr; r++)
            for (int64_t hr = 0; hr < Hr; hr++) {
                const int64_t off = (b * Lr + r) * Hr + hr, nv = t_visible(s, r);
                const int64_t nk = nv < K ? nv : K;
                const int32_t *ix = idx + off * K;
                const float *so = score + off * K;
                const float *qv = q_r + off * dr;
                for (int64_t c = 0; c < nv; c++) {
                    all[c].s = dot_d(qv, lmk + ((b * C + c) * Hr + hr) * dr, dr) / sqrt((double)dr);
                    all[c].c = c;
                }
                qsort(all, (size_t)nv, sizeof *all, t_sc_cmp);
                for (int64_t k = 0; k < K; k++) {
                    if (k >= nk) {
                        if (!T_CHECK(ix[k] == 0 && isinf(so[k]) && so[k] < 0,
                                     "row %lld slot %lld invalid: idx %d score %g", (long long)r,
                                     (long long)k, ix[k], so[k]))
                            goto done;
                        continue;
                    }
                    const int64_t c = ix[k];
                    /* visible, most recent first, distinct */
                    if (!T_CHECK(c >= 0 && c < nv,
                                 "row %lld slot %lld: chunk %lld not visible (%lld)", (long long)r,
                                 (long long)k, (long long)c, (long long)nv))
                        goto done;
                    if (k > 0 && !T_CHECK(ix[k - 1] > c, "row %lld: ids not strictly descending",
                                          (long long)r))
                        goto done;
                    /* noiseless score of that chunk */
                    double sd =
                        dot_d(qv, lmk + ((b * C + c) * Hr + hr) * dr, dr) / sqrt((double)dr);
                    if (!T_CHECK(fabs(so[k] - sd) <= 1e-5 * (1 + fabs(sd)), "score %g vs %g", so[k],
                                 sd))
                        goto done;
                }
                /* top-k: the selected scores, sorted, equal the nk largest visible scores (exact
                 * ids agree except within a float near-tie). */
                double sel[64];
                int64_t m = 0;
                for (int64_t k = 0; k < nk && m < 64; k++)
                    sel[m++] =
                        dot_d(qv, lmk + ((b * C + ix[k]) * Hr + hr) * dr, dr) / sqrt((double)dr);
                for (int64_t i = 1; i < m; i++)
                    for (int64_t j = i; j > 0 && sel[j] > sel[j - 1]; j--) {
                        double x = sel[j];
                        sel[j] = sel[j - 1];
                        sel[j - 1] = x;
                    }
                for (int64_t i = 0; i < m; i++)
                    if (!T_CHECK(fabs(sel[i] - all[i].s) <= 1e-5,
                                 "row %lld rank %lld: selected %g, true %g", (long long)r,
                                 (long long)i, sel[i], all[i].s))
                        goto done;
            }
done:
    free(q_r), free(lmk), free(idx), free(score), free(all);
}

/* Visibility: every valid index, seen from every token its row serves, is a complete chunk
 * strictly before the token's own chunk (and, for GCA, before the chunk right before it). */
static void check_visibility(const struct hsa_shape *s, uint64_t seed) {
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const int64_t Lr = hsa_num_rows(s), Hr = s->Hr, K = s->K;
    float *q_r = t_randn(&rng, n_qr(s), 1), *lmk = t_randn(&rng, n_lmk(s), 1);
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)n_slots(s));
    float *score = t_alloc(n_slots(s));
    int64_t seen = 0;
    if (!T_OK(hsa_retrieve_ref(s, q_r, lmk, idx, score))) goto done;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t t = 0; t < s->L; t++) {
            const int64_t r = t / s->block_q;
            for (int64_t hr = 0; hr < Hr; hr++)
                for (int64_t k = 0; k < K; k++) {
                    const int64_t off = ((b * Lr + r) * Hr + hr) * K + k;
                    if (isinf(score[off])) continue;
                    const int64_t c = idx[off];
                    seen++;
                    int ok = (c + 1) * s->S <= t && c < t / s->S && (c + 1) * s->S <= s->L;
                    if (s->block_q == s->S && s->S > 1) ok = ok && c <= t / s->S - 2;
                    if (!T_CHECK(ok, "token %lld (row %lld) sees chunk %lld (S=%lld, block_q=%lld)",
                                 (long long)t, (long long)r, (long long)c, (long long)s->S,
                                 (long long)s->block_q))
                        goto done;
                }
        }
    T_CHECK(seen > 0, "no valid slot at all: the test saw nothing");
done:
    free(q_r), free(lmk), free(idx), free(score);
}

/* Scores backward: loss = sum over valid slots of g * s, against central differences. dq_r and
 * dlmk accumulate into what they already hold. */
struct sb_ctx {
    const struct hsa_shape *s;
    double *q_r, *lmk, *g, *sc;
    const int32_t *idx;
};
static double sb_loss(void *p) {
    struct sb_ctx *x = p;
    dref_scores(x->s, x->q_r, x->lmk, x->idx, x->sc);
    double l = 0;
    for (int64_t i = 0; i < n_slots(x->s); i++)
        if (isfinite(x->sc[i])) l += x->g[i] * x->sc[i];
    return l;
}
static void check_scores_backward(const struct hsa_shape *s, uint64_t seed) {
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    float *q_r = t_randn(&rng, n_qr(s), 1), *lmk = t_randn(&rng, n_lmk(s), 1);
    float *g = t_randn(&rng, n_slots(s), 1);
    float *pre_q = t_randn(&rng, n_qr(s), 1), *pre_l = t_randn(&rng, n_lmk(s), 1);
    float *dq = t_alloc(n_qr(s)), *dl = t_alloc(n_lmk(s));
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)n_slots(s));
    float *score = t_alloc(n_slots(s));
    memcpy(dq, pre_q, sizeof(float) * (size_t)n_qr(s));
    memcpy(dl, pre_l, sizeof(float) * (size_t)n_lmk(s));
    if (!T_OK(hsa_retrieve_ref(s, q_r, lmk, idx, score))) goto done;
    if (!T_OK(hsa_scores_backward_ref(s, q_r, lmk, idx, g, dq, dl))) goto done;
    for (int64_t i = 0; i < n_qr(s); i++) dq[i] -= pre_q[i];
    for (int64_t i = 0; i < n_lmk(s); i++) dl[i] -= pre_l[i];
    struct sb_ctx x = {s,
                       t_to_d(q_r, n_qr(s)),
                       t_to_d(lmk, n_lmk(s)),
                       t_to_d(g, n_slots(s)),
                       t_alloc_d(n_slots(s)),
                       idx};
    double eq = t_fd_check(sb_loss, &x, x.q_r, n_qr(s), dq, &rng, 300);
    double el = t_fd_check(sb_loss, &x, x.lmk, n_lmk(s), dl, &rng, 300);
    T_CHECK(eq < 1e-4, "dq_r relative error %.3e", eq);
    T_CHECK(el < 1e-4, "dlmk relative error %.3e", el);
    T_CHECK(t_max_abs(dl, n_lmk(s)) > 0 && t_max_abs(dq, n_qr(s)) > 0, "gradients are all zero");
    free(x.q_r), free(x.lmk), free(x.g), free(x.sc);
done:
    free(q_r), free(lmk), free(g), free(pre_q), free(pre_l), free(dq), free(dl), free(idx),
        free(score);
}

static void check_args(void) {
    struct hsa_shape ok = hsa_shape_make(1, 16, 4, 2, 8, 4, 2, 2, 8, 1, 0, HSA_SOFTMAX), s;
    T_OK(hsa_check(&ok));
#define BAD(field, value, needle)                                                                  \
    s = ok;                                                                                        \
    s.field = value;                                                                               \
    T_ERR(hsa_check(&s), needle)
    BAD(B, 0, "B");
    BAD(L, 0, "L");
    BAD(L, -3, "L");
    BAD(HQ, 0, "HQ");
    BAD(HQ, 5, "HQ");
    BAD(H, 0, "H =");
    BAD(dh, 0, "dh");
    BAD(S, 0, "S");
    BAD(K, 0, "K");
    BAD(Hr, 3, "Hr");
    BAD(Hr, 0, "Hr");
    BAD(dr, 0, "dr");
    BAD(block_q, 2, "block_q");
    BAD(block_q, 0, "block_q");
    BAD(softmax1, 2, "softmax1");
    BAD(weighting, 7, "weighting");
    BAD(gumbel, -1, "gumbel");
    BAD(scale, -1.0f, "scale");
    BAD(scale, NAN, "scale");
    BAD(L, (int64_t)1 << 40, "int32");
    BAD(dh, (int64_t)1 << 60, "overflows");
#undef BAD
    T_ERR(hsa_check(NULL), "shape");
    s = ok;
    s.block_q = 4; /* GCA: block_q = S */
    T_OK(hsa_check(&s));
    s = ok;
    s.Hr = 1;
    T_OK(hsa_check(&s));

    /* NULL pointers and bad idx are named by every entry point. */
    float buf[4096];
    int32_t ix[256];
    for (int i = 0; i < 4096; i++) buf[i] = 0.01f * (float)(i % 17);
    for (int i = 0; i < 256; i++) ix[i] = 0;
    T_ERR(hsa_retrieve_ref(&ok, NULL, buf, ix, buf), "q_r");
    T_ERR(hsa_retrieve_ref(&ok, buf, NULL, ix, buf), "lmk");
    T_ERR(hsa_retrieve_ref(&ok, buf, buf, NULL, buf), "idx");
    T_ERR(hsa_weights_forward_ref(&ok, buf, NULL), "w");
    T_ERR(hsa_weights_backward_ref(&ok, buf, buf, NULL, buf), "dw");
    T_ERR(hsa_scores_backward_ref(&ok, buf, buf, ix, buf, NULL, buf), "dq_r");
    T_ERR(hsa_attend_forward_ref(&ok, buf, buf, buf, ix, buf, NULL, NULL), "o");
    T_ERR(hsa_attend_backward_ref(&ok, buf, buf, buf, ix, buf, NULL, buf, buf, buf, NULL, buf),
          "dv");
    s = ok;
    s.K = 0;
    T_ERR(hsa_attend_forward_ref(&s, buf, buf, buf, ix, buf, buf, NULL), "K");
    /* token 15 (row 15) sees chunks 0..2 (S = 4): idx 3 in a valid slot is rejected */
    ix[(15 * 2 + 1) * 2 + 0] = 3;
    T_ERR(hsa_attend_forward_ref(&ok, buf, buf, buf, ix, buf, buf, NULL), "idx");
    T_ERR(hsa_attend_backward_ref(&ok, buf, buf, buf, ix, buf, NULL, buf, buf, buf, buf, buf),
          "idx");
    T_ERR(hsa_scores_backward_ref(&ok, buf, buf, ix, buf, buf, buf), "idx");
    ix[(15 * 2 + 1) * 2 + 0] = -1;
    T_ERR(hsa_attend_forward_ref(&ok, buf, buf, buf, ix, buf, buf, NULL), "idx");
    /* row 4 sees only chunk 0: slot 1 is invalid, so whatever it holds is ignored */
    ix[(15 * 2 + 1) * 2 + 0] = 0;
    ix[(4 * 2 + 0) * 2 + 1] = 99;
    T_OK(hsa_attend_forward_ref(&ok, buf, buf, buf, ix, buf, buf, NULL));
}

int main(void) {
    t_begin("hsa_check and entry points name the bad field");
    check_args();

    /* B, L, HQ, H, dh, S, K, Hr, dr, block_q */
    const int64_t shapes[][10] = {
        {2, 37, 4, 2, 4, 4, 3, 2, 8, 1},   /* ragged L, Hr = H */
        {1, 50, 2, 2, 4, 5, 4, 1, 6, 1},   /* singlehead retrieval */
        {2, 23, 2, 1, 4, 3, 16, 1, 5, 1},  /* K > every visible count */
        {1, 64, 2, 2, 4, 1, 5, 2, 7, 1},   /* S = 1 */
        {2, 45, 2, 2, 4, 4, 3, 2, 6, 4},   /* GCA, ragged */
        {1, 40, 2, 1, 4, 5, 9, 1, 6, 5},   /* GCA, K > visible */
        {1, 200, 2, 1, 4, 2, 7, 1, 16, 1}, /* many chunks */
    };
    t_begin("top-k equals a full sort of the visible scores; preprocessing layout");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int64_t *v = shapes[i];
        struct hsa_shape s =
            hsa_shape_make(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], 0, 0);
        check_retrieve(&s, 100 + i);
    }

    t_begin("visibility: no token sees its own chunk or a later one; GCA rows see chunks < r-1");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int64_t *v = shapes[i];
        struct hsa_shape s =
            hsa_shape_make(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], 0, 0);
        check_visibility(&s, 200 + i);
        s.gumbel = 1, s.gumbel_seed = 9;
        check_visibility(&s, 300 + i);
    }
    {
        /* Counts from the header helper agree with the rule written out in the test. */
        struct hsa_shape a = hsa_shape_make(1, 29, 1, 1, 1, 4, 2, 1, 1, 1, 0, 0);
        struct hsa_shape g = hsa_shape_make(1, 29, 1, 1, 1, 4, 2, 1, 1, 4, 0, 0);
        for (int64_t r = 0; r < hsa_num_rows(&a); r++)
            T_CHECK(hsa_num_visible(&a, r) == t_visible(&a, r), "HSA row %lld", (long long)r);
        for (int64_t r = 0; r < hsa_num_rows(&g); r++)
            T_CHECK(hsa_num_visible(&g, r) == t_visible(&g, r), "GCA row %lld", (long long)r);
        T_CHECK(hsa_num_visible(&a, 3) == 0 && hsa_num_visible(&a, 4) == 1 &&
                    hsa_num_visible(&a, 28) == 7,
                "HSA: token 3 sees none, token 4 sees chunk 0, token 28 sees 7 complete chunks");
        T_CHECK(hsa_num_visible(&g, 1) == 0 && hsa_num_visible(&g, 2) == 1 &&
                    hsa_num_visible(&g, 7) == 6,
                "GCA: row 1 sees none, row 2 sees chunk 0, row 7 (ragged last) sees 0..5");
    }

    t_begin("ties go to the smaller chunk id");
    {
        struct hsa_shape s = hsa_shape_make(1, 41, 1, 1, 1, 4, 3, 1, 4, 1, 0, 0);
        float q_r[41 * 4], lmk[10 * 4];
        int32_t idx[41 * 3];
        float score[41 * 3];
        for (int i = 0; i < 41 * 4; i++) q_r[i] = 0.3f + 0.01f * (float)i;
        for (int c = 0; c < 10; c++)
            for (int i = 0; i < 4; i++) lmk[c * 4 + i] = (c == 6 ? 2.0f : 0.5f) * (float)(i + 1);
        if (T_OK(hsa_retrieve_ref(&s, q_r, lmk, idx, score))) {
            /* token 40 sees 0..9; chunk 6 is best, then the tie among the rest goes to 0 and 1 */
            T_CHECK(idx[40 * 3 + 0] == 6 && idx[40 * 3 + 1] == 1 && idx[40 * 3 + 2] == 0,
                    "token 40 picked %d %d %d, want 6 1 0", idx[120], idx[121], idx[122]);
            T_CHECK(idx[20 * 3 + 0] == 2 && idx[20 * 3 + 1] == 1 && idx[20 * 3 + 2] == 0,
                    "token 20 picked %d %d %d, want 2 1 0", idx[60], idx[61], idx[62]);
        }
    }

    t_begin("Gumbel noise changes selection only, is seeded, and is the documented hash");
    {
        struct hsa_shape s = hsa_shape_make(2, 96, 2, 2, 4, 4, 4, 2, 8, 1, 0, 0);
        const int64_t Lr = hsa_num_rows(&s), C = hsa_num_chunks(&s), ns = n_slots(&s);
        lc_rng rng;
        lc_rng_seed(&rng, 77);
        float *q_r = t_randn(&rng, n_qr(&s), 1), *lmk = t_randn(&rng, n_lmk(&s), 1);
        int32_t *i0 = malloc(sizeof(int32_t) * ns), *i1 = malloc(sizeof(int32_t) * ns);
        int32_t *i2 = malloc(sizeof(int32_t) * ns), *i3 = malloc(sizeof(int32_t) * ns);
        float *s0 = t_alloc(ns), *s1 = t_alloc(ns), *s2 = t_alloc(ns), *s3 = t_alloc(ns);
        T_OK(hsa_retrieve_ref(&s, q_r, lmk, i0, s0));
        s.gumbel = 1, s.gumbel_seed = 1234;
        T_OK(hsa_retrieve_ref(&s, q_r, lmk, i1, s1));
        T_OK(hsa_retrieve_ref(&s, q_r, lmk, i2, s2));
        s.gumbel_seed = 1235;
        T_OK(hsa_retrieve_ref(&s, q_r, lmk, i3, s3));
        int64_t differ = 0, differ_seed = 0, rows = 0;
        for (int64_t i = 0; i < ns; i++) {
            differ += i0[i] != i1[i];
            differ_seed += i1[i] != i3[i];
        }
        T_CHECK(differ > 0, "noise never changed the selection");
        T_CHECK(differ_seed > 0, "another seed gave the same selection");
        T_CHECK(memcmp(i1, i2, sizeof(int32_t) * ns) == 0 &&
                    memcmp(s1, s2, sizeof(float) * ns) == 0,
                "same seed gave a different selection");
        /* Scores stay noiseless: each selected score equals the plain score of its chunk. */
        for (int64_t i = 0; i < ns; i++) {
            if (isinf(s1[i])) continue;
            int64_t row = i / s.K, hr = row % s.Hr, b = row / s.Hr / Lr;
            double sd = dot_d(q_r + row * s.dr, lmk + ((b * C + i1[i]) * s.Hr + hr) * s.dr, s.dr) /
                        sqrt(8.0);
            if (!T_CHECK(fabs(s1[i] - sd) < 1e-5, "slot %lld: score %g is not the noiseless %g",
                         (long long)i, s1[i], sd))
                break;
        }
        /* The selection is the top-k of s + hsa_gumbel(seed, (b*Lr+row)*Hr+hr, c). */
        s.gumbel_seed = 1234;
        for (int64_t b = 0; b < s.B; b++)
            for (int64_t r = 0; r < Lr; r++)
                for (int64_t hr = 0; hr < s.Hr; hr++) {
                    int64_t off = (b * Lr + r) * s.Hr + hr, nv = t_visible(&s, r),
                            nk = nv < s.K ? nv : s.K;
                    if (nv <= s.K) continue; /* everything selected: nothing to rank */
                    rows++;
                    double lo = INFINITY, hi = -INFINITY;
                    for (int64_t c = 0; c < nv; c++) {
                        double key =
                            dot_d(q_r + off * s.dr, lmk + ((b * C + c) * s.Hr + hr) * s.dr, s.dr) /
                                sqrt(8.0) +
                            hsa_gumbel(s.gumbel_seed, (uint64_t)off, (uint64_t)c);
                        int chosen = 0;
                        for (int64_t k = 0; k < nk; k++) chosen |= i1[off * s.K + k] == c;
                        if (chosen)
                            lo = fmin(lo, key);
                        else
                            hi = fmax(hi, key);
                    }
                    if (!T_CHECK(lo >= hi - 1e-5,
                                 "row %lld: a chosen key %g is below an unchosen %g", (long long)r,
                                 lo, hi))
                        break;
                }
        T_CHECK(rows > 10, "too few rows with a real choice (%lld)", (long long)rows);
        free(q_r), free(lmk), free(i0), free(i1), free(i2), free(i3), free(s0), free(s1), free(s2),
            free(s3);
    }
    t_begin("Gumbel noise is Gumbel(0,1): mean 0.5772, variance pi^2/6");
    {
        double m = 0, m2 = 0;
        const int n = 200000;
        for (int i = 0; i < n; i++) {
            double x = hsa_gumbel(5, (uint64_t)i / 100, (uint64_t)i % 100);
            m += x, m2 += x * x;
        }
        m /= n, m2 = m2 / n - m * m;
        T_CHECK(fabs(m - 0.5772157) < 0.01 && fabs(m2 - 1.6449341) < 0.03, "mean %.4f var %.4f", m,
                m2);
    }

    t_begin("scores backward matches central differences (accumulating)");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int64_t *v = shapes[i];
        struct hsa_shape s =
            hsa_shape_make(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], 0, 0);
        check_scores_backward(&s, 400 + i);
    }
    return t_finish();
}
