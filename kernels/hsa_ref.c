/* hsa_ref.c — C reference of Hierarchical Sparse Attention (fp32, host pointers), forward and
 * exact backward. It is the ground truth the CUDA kernels (kernels/hsa.cu) are tested against,
 * so it favours plain, checkable loops over speed; OpenMP only splits independent rows.
 *
 * Layouts, the visibility rule and the math are in hsa.h. Choices made here:
 *  - Slot validity. Slot k of retrieval row r is valid iff k < min(K, hsa_num_visible(r)),
 *    everywhere (retrieve, scores backward, attend forward/backward). It does not depend on w
 *    (a valid slot whose weight underflowed to 0 still has dw = D_k), nor on what an invalid slot's
 *    idx holds. Invalid slots contribute nothing, get lse = -inf, dw = 0, dscore ignored.
 *    The fusion-weight functions see only scores: a slot is invalid there iff its score is -inf
 *    (what hsa_retrieve_ref writes), which gives w = 0 for both softmax and stick-breaking.
 *  - Valid idx entries are checked to name a visible chunk (0 <= c < hsa_num_visible(r)); a bad
 *    one is an error naming idx, never an out-of-bounds read.
 *  - Scores: s = (sum_i q_r[i] lmk[i]) * (1/sqrt(dr)), fp32, summed in index order. Top-k takes
 *    the k largest of s (+ Gumbel noise hsa_gumbel(seed, (b*Lr+row)*Hr+hr, c) when enabled), ties
 *    to the smaller chunk id; the chosen ids are then written most recent first, with noiseless s.
 *  - Stick-breaking uses softplus with threshold 15 (softplus(x) = x for x > 15), as the released
 *    code does: w_k = exp(s_k - sp(s_k) - sum_{j<k} sp(s_j)); its derivative uses sp'(x) =
 *    (x > 15 ? 1 : sigma(x)), so the backward is exact for the function actually computed.
 *  - Chunk softmax subtracts the max m of the logits (and of 0 with softmax1, so the null logit's
 *    exp(0 - m) never overflows); lse = m + log(sm_n e^{-m} + sum_j e^{z_j - m}).
 *  - Attend backward: pass 1 (parallel over tokens) gives dq, D_k = <o_k, dO> and per-token dw;
 *    pass 2 (parallel over (b, h, chunk)) scans the tokens that may see the chunk and accumulates
 *    dk, dv for every valid slot holding it, in token order, so results are deterministic.
 *    lse may be NULL in the backward too: the probabilities are then recomputed from q, k.
 *  - Query offset (Lq, q_pos0; block_q = 1): the query-side tensors hold rows q_pos0.. only; the
 *    visibility rule and the Gumbel stream use the absolute row, so the result equals the rows
 *    q_pos0.. of the whole computation. Forward only (retrieve, weights, attend forward).
 */
#include "hsa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---- validation ---- */

static int mul_ok(int64_t *acc, int64_t x) {
    int64_t r;
    if (__builtin_mul_overflow(*acc, x, &r) || r > INT64_MAX / 8) return 0;
    *acc = r;
    return 1;
}

lc_status hsa_check(const struct hsa_shape *s) {
    LC_REQUIRE(s != NULL, "hsa: shape is NULL");
    LC_REQUIRE(s->B >= 1, "hsa: B = %lld must be >= 1", (long long)s->B);
    LC_REQUIRE(s->L >= 1, "hsa: L = %lld must be >= 1", (long long)s->L);
    LC_REQUIRE(s->H >= 1, "hsa: H = %lld must be >= 1", (long long)s->H);
    LC_REQUIRE(s->HQ >= 1, "hsa: HQ = %lld must be >= 1", (long long)s->HQ);
    LC_REQUIRE(s->HQ % s->H == 0, "hsa: HQ = %lld is not a multiple of H = %lld", (long long)s->HQ,
               (long long)s->H);
    LC_REQUIRE(s->dh >= 1, "hsa: dh = %lld must be >= 1", (long long)s->dh);
    LC_REQUIRE(s->S >= 1, "hsa: S = %lld (chunk size) must be >= 1", (long long)s->S);
    LC_REQUIRE(s->K >= 1, "hsa: K = %lld (top-k) must be >= 1", (long long)s->K);
    LC_REQUIRE(s->K <= INT32_MAX, "hsa: K = %lld is too large", (long long)s->K);
    LC_REQUIRE(s->Hr == 1 || s->Hr == s->H, "hsa: Hr = %lld must be 1 or H = %lld",
               (long long)s->Hr, (long long)s->H);
    LC_REQUIRE(s->dr >= 1, "hsa: dr = %lld must be >= 1", (long long)s->dr);
    LC_REQUIRE(s->block_q == 1 || s->block_q == s->S,
               "hsa: block_q = %lld must be 1 (HSA) or S = %lld (GCA)", (long long)s->block_q,
               (long long)s->S);
    LC_REQUIRE(s->softmax1 == 0 || s->softmax1 == 1, "hsa: softmax1 = %d must be 0 or 1",
               s->softmax1);
    LC_REQUIRE(s->weighting == HSA_SOFTMAX || s->weighting == HSA_STICK_BREAKING,
               "hsa: weighting = %d must be HSA_SOFTMAX (0) or HSA_STICK_BREAKING (1)",
               s->weighting);
    LC_REQUIRE(s->gumbel == 0 || s->gumbel == 1, "hsa: gumbel = %d must be 0 or 1", s->gumbel);
    LC_REQUIRE(isfinite(s->scale) && s->scale >= 0,
               "hsa: scale = %g must be finite and >= 0 (0 means 1/sqrt(dh))", (double)s->scale);
    LC_REQUIRE(s->Lq >= 0 && s->Lq <= s->L, "hsa: Lq = %lld (query rows) must be in 0 .. L = %lld (0 = all)",
               (long long)s->Lq, (long long)s->L);
    LC_REQUIRE(s->q_pos0 >= 0, "hsa: q_pos0 = %lld (query offset) must be >= 0", (long long)s->q_pos0);
    LC_REQUIRE(s->Lq > 0 || s->q_pos0 == 0, "hsa: q_pos0 = %lld needs Lq >= 1 (Lq = 0 means the whole sequence)",
               (long long)s->q_pos0);
    LC_REQUIRE(s->q_pos0 <= s->L - s->Lq, "hsa: q_pos0 + Lq = %lld + %lld exceeds L = %lld (queries are a range of the tokens)",
               (long long)s->q_pos0, (long long)s->Lq, (long long)s->L);
    LC_REQUIRE(!hsa_has_offset(s) || s->block_q == 1, "hsa: a query offset (Lq = %lld, q_pos0 = %lld) needs block_q = 1, not %lld",
               (long long)s->Lq, (long long)s->q_pos0, (long long)s->block_q);
    LC_REQUIRE(s->L / s->S <= INT32_MAX, "hsa: L/S = %lld chunks do not fit int32 idx",
               (long long)(s->L / s->S));
    /* Every tensor's element count must fit comfortably in 64-bit byte offsets. */
    int64_t n = s->B;
    LC_REQUIRE(mul_ok(&n, s->L) && mul_ok(&n, s->HQ) && mul_ok(&n, s->dh),
               "hsa: B*L*HQ*dh overflows 64-bit offsets (B, L, HQ, dh too large)");
    n = s->B;
    LC_REQUIRE(mul_ok(&n, s->L) && mul_ok(&n, s->HQ) && mul_ok(&n, s->K),
               "hsa: B*L*HQ*K overflows 64-bit offsets (B, L, HQ, K too large)");
    n = s->B;
    LC_REQUIRE(mul_ok(&n, s->L) && mul_ok(&n, s->Hr) && mul_ok(&n, s->dr),
               "hsa: B*L*Hr*dr overflows 64-bit offsets (B, L, Hr, dr too large)");
    return LC_OK;
}

#define REQUIRE_PTR(p) LC_REQUIRE((p) != NULL, "hsa: %s is NULL", #p)

static float attn_scale(const struct hsa_shape *s) {
    return s->scale > 0 ? s->scale : 1.0f / sqrtf((float)s->dh);
}
static int64_t n_valid(const struct hsa_shape *s, int64_t row) {
    int64_t n = hsa_num_visible(s, row);
    return n < s->K ? n : s->K;
}

/* Valid slots must name a visible chunk; reading idx is the only place a caller's bad data could
 * turn into an out-of-bounds access, so it is checked before any compute. */
static lc_status check_idx(const struct hsa_shape *s, const int32_t *idx) {
    const int64_t Lr = hsa_num_qrows(s), p0 = hsa_q_pos0(s);
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t r = 0; r < Lr; r++) {
            const int64_t nv = hsa_num_visible(s, p0 + r), nk = n_valid(s, p0 + r);
            for (int64_t hr = 0; hr < s->Hr; hr++) {
                const int32_t *ix = idx + ((b * Lr + r) * s->Hr + hr) * s->K;
                for (int64_t k = 0; k < nk; k++)
                    LC_REQUIRE(ix[k] >= 0 && ix[k] < nv,
                               "hsa: idx[b=%lld, row=%lld, hr=%lld, slot=%lld] = %d is not a "
                               "visible chunk (row sees chunks 0..%lld)",
                               (long long)b, (long long)(p0 + r), (long long)hr, (long long)k, ix[k],
                               (long long)nv - 1);
            }
        }
    return LC_OK;
}

/* ---- retrieval: scores, top-k, preprocessing ---- */

/* a ranks before b: larger key, ties to the smaller chunk id. */
static int ranks_before(const float *key, int64_t a, int64_t b) {
    return key[a] > key[b] || (key[a] == key[b] && a < b);
}

lc_status hsa_retrieve_ref(const struct hsa_shape *s, const float *q_r, const float *lmk,
                           int32_t *idx, float *score) {
    LC_TRY(hsa_check(s));
    REQUIRE_PTR(q_r);
    REQUIRE_PTR(lmk);
    REQUIRE_PTR(idx);
    REQUIRE_PTR(score);
    const int64_t B = s->B, Lr = hsa_num_qrows(s), Hr = s->Hr, dr = s->dr, K = s->K;
    const int64_t C = hsa_num_chunks(s), Ksel = K < C ? K : C;
    const int64_t p0 = hsa_q_pos0(s), Lr_all = hsa_num_rows(s); /* offset: rows p0 .. p0+Lr-1 of Lr_all */
    const float inv_sqrt_dr = 1.0f / sqrtf((float)dr);
    const int nt = max_threads();
    const int64_t per = 2 * C + Ksel + 1;
    float *scratch = lc_malloc((size_t)nt * (size_t)per * sizeof(float), "hsa retrieve scratch");
    int64_t *selbuf = lc_malloc((size_t)nt * (size_t)(Ksel + 1) * sizeof(int64_t), "hsa top-k");
    if (!scratch || !selbuf) {
        free(scratch);
        free(selbuf);
        return LC_ENOMEM;
    }

#pragma omp parallel for collapse(2) schedule(dynamic, 4)
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < Lr; r++) {
            float *sc = scratch + (int64_t)thread_id() * per, *key = sc + C;
            int64_t *sel = selbuf + (int64_t)thread_id() * (Ksel + 1);
            const int64_t nv = hsa_num_visible(s, p0 + r), nk = nv < K ? nv : K;
            for (int64_t hr = 0; hr < Hr; hr++) {
                const float *qv = q_r + ((b * Lr + r) * Hr + hr) * dr;
                const uint64_t row_head = (uint64_t)((b * Lr_all + p0 + r) * Hr + hr);
                for (int64_t c = 0; c < nv; c++) {
                    const float *lv = lmk + ((b * C + c) * Hr + hr) * dr;
                    float acc = 0;
                    for (int64_t i = 0; i < dr; i++) acc += qv[i] * lv[i];
                    sc[c] = acc * inv_sqrt_dr;
                    key[c] = s->gumbel ? sc[c] + hsa_gumbel(s->gumbel_seed, row_head, (uint64_t)c)
                                       : sc[c];
                }
                /* Top-nk by insertion into a ranked buffer (nk is small). */
                int64_t m = 0;
                for (int64_t c = 0; c < nv; c++) { /* nv >= 1 implies nk >= 1 */
                    if (m == nk && !ranks_before(key, c, sel[m - 1])) continue;
                    int64_t p = m < nk ? m++ : nk - 1;
                    while (p > 0 && ranks_before(key, c, sel[p - 1])) {
                        sel[p] = sel[p - 1];
                        p--;
                    }
                    sel[p] = c;
                }
                /* Preprocess: most recent chunk first. */
                for (int64_t i = 1; i < m; i++) {
                    int64_t v = sel[i], j = i;
                    for (; j > 0 && sel[j - 1] < v; j--) sel[j] = sel[j - 1];
                    sel[j] = v;
                }
                int32_t *ix = idx + ((b * Lr + r) * Hr + hr) * K;
                float *so = score + ((b * Lr + r) * Hr + hr) * K;
                for (int64_t k = 0; k < K; k++) {
                    ix[k] = k < m ? (int32_t)sel[k] : 0;
                    so[k] = k < m ? sc[sel[k]] : -INFINITY;
                }
            }
        }
    free(scratch);
    free(selbuf);
    return LC_OK;
}

lc_status hsa_scores_backward_ref(const struct hsa_shape *s, const float *q_r, const float *lmk,
                                  const int32_t *idx, const float *dscore, float *dq_r,
                                  float *dlmk) {
    LC_TRY(hsa_check(s));
    REQUIRE_PTR(q_r);
    REQUIRE_PTR(lmk);
    REQUIRE_PTR(idx);
    REQUIRE_PTR(dscore);
    REQUIRE_PTR(dq_r);
    REQUIRE_PTR(dlmk);
    if (hsa_has_offset(s)) return lc_errorf(LC_EUNSUPPORTED, "hsa_scores_backward_ref: a query offset (Lq, q_pos0) is forward-only");
    LC_TRY(check_idx(s, idx));
    const int64_t B = s->B, Lr = hsa_num_rows(s), Hr = s->Hr, dr = s->dr, K = s->K;
    const int64_t C = hsa_num_chunks(s);
    const float inv_sqrt_dr = 1.0f / sqrtf((float)dr);
    /* dq_r rows and dlmk (b, hr) slices are each written by one iteration: no races, and dlmk
     * accumulates over rows in row order. */
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t hr = 0; hr < Hr; hr++)
            for (int64_t r = 0; r < Lr; r++) {
                const int64_t nk = n_valid(s, r), off = (b * Lr + r) * Hr + hr;
                const float *qv = q_r + off * dr;
                float *dqv = dq_r + off * dr;
                for (int64_t k = 0; k < nk; k++) {
                    const int64_t c = idx[off * K + k];
                    const float g = dscore[off * K + k] * inv_sqrt_dr;
                    const float *lv = lmk + ((b * C + c) * Hr + hr) * dr;
                    float *dlv = dlmk + ((b * C + c) * Hr + hr) * dr;
                    for (int64_t i = 0; i < dr; i++) {
                        dqv[i] += g * lv[i];
                        dlv[i] += g * qv[i];
                    }
                }
            }
    return LC_OK;
}

/* ---- fusion weights ---- */

#define HSA_SOFTPLUS_THRESHOLD 15.0f
static float softplus_t(float x) { return x > HSA_SOFTPLUS_THRESHOLD ? x : log1pf(expf(x)); }
static float softplus_t_grad(float x) {
    return x > HSA_SOFTPLUS_THRESHOLD ? 1.0f : 1.0f / (1.0f + expf(-x));
}
static int slot_invalid(float sc) { return isinf(sc) && sc < 0; }

lc_status hsa_weights_forward_ref(const struct hsa_shape *s, const float *score, float *w) {
    LC_TRY(hsa_check(s));
    REQUIRE_PTR(score);
    REQUIRE_PTR(w);
    const int64_t nrows = s->B * hsa_num_qrows(s) * s->Hr, K = s->K;
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < nrows; row++) {
        const float *sc = score + row * K;
        float *wo = w + row * K;
        if (s->weighting == HSA_SOFTMAX) {
            float m = -INFINITY;
            for (int64_t k = 0; k < K; k++)
                if (!slot_invalid(sc[k]) && sc[k] > m) m = sc[k];
            float sum = 0;
            for (int64_t k = 0; k < K; k++) {
                wo[k] = slot_invalid(sc[k]) ? 0.0f : expf(sc[k] - m);
                sum += wo[k];
            }
            for (int64_t k = 0; k < K; k++) wo[k] = sum > 0 ? wo[k] / sum : 0.0f;
        } else {
            float acc = 0; /* sum_{j<k} softplus(s_j) = -log prod_{j<k} (1 - sigma(s_j)) */
            for (int64_t k = 0; k < K; k++) {
                if (slot_invalid(sc[k])) {
                    wo[k] = 0;
                    continue;
                }
                const float sp = softplus_t(sc[k]);
                wo[k] = expf(sc[k] - sp - acc);
                acc += sp;
            }
        }
    }
    return LC_OK;
}

/* dscore is overwritten (invalid slots get 0). softmax: ds_k = w_k (g_k - sum_j w_j g_j);
 * stick-breaking: ds_k = w_k g_k - sp'(s_k) sum_{i>=k} w_i g_i (suffix sum in slot order). */
lc_status hsa_weights_backward_ref(const struct hsa_shape *s, const float *score, const float *w,
                                   const float *dw, float *dscore) {
    LC_TRY(hsa_check(s));
    REQUIRE_PTR(score);
    REQUIRE_PTR(w);
    REQUIRE_PTR(dw);
    REQUIRE_PTR(dscore);
    const int64_t nrows = s->B * hsa_num_qrows(s) * s->Hr, K = s->K;
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < nrows; row++) {
        const float *sc = score + row * K, *wv = w + row * K, *g = dw + row * K;
        float *ds = dscore + row * K;
        if (s->weighting == HSA_SOFTMAX) {
            float dot = 0;
            for (int64_t k = 0; k < K; k++)
                if (!slot_invalid(sc[k])) dot += wv[k] * g[k];
            for (int64_t k = 0; k < K; k++)
                ds[k] = slot_invalid(sc[k]) ? 0.0f : wv[k] * (g[k] - dot);
        } else {
            float suffix = 0;
            for (int64_t k = K - 1; k >= 0; k--) {
                if (slot_invalid(sc[k])) {
                    ds[k] = 0;
                    continue;
                }
                suffix += wv[k] * g[k];
                ds[k] = wv[k] * g[k] - softplus_t_grad(sc[k]) * suffix;
            }
        }
    }
    return LC_OK;
}

/* ---- position decay (hsa.md 3.5, enable_pos_decay) ----
 * The selected score of slot k (k = recency rank, 0 = most recent) gets k * beta before the fusion
 * weights; invalid slots stay -inf. beta is one learned scalar per retrieval layer (init 0). The
 * gradient of an undecayed score equals that of the decayed one; dbeta = sum k * dscore. */
lc_status hsa_pos_decay_forward_ref(const struct hsa_shape *s, const float *beta, float *score) {
    LC_TRY(hsa_check(s));
    REQUIRE_PTR(beta);
    REQUIRE_PTR(score);
    const int64_t nrows = s->B * hsa_num_qrows(s) * s->Hr, K = s->K;
    const float b = beta[0];
    for (int64_t row = 0; row < nrows; row++)
        for (int64_t k = 0; k < K; k++)
            if (!slot_invalid(score[row * K + k])) score[row * K + k] += (float)k * b;
    return LC_OK;
}

/* dbeta[0] += sum over rows and valid slots of k * dscore (one serial sum in double: deterministic). */
lc_status hsa_pos_decay_backward_ref(const struct hsa_shape *s, const float *score, const float *dscore,
                                     float *dbeta) {
    LC_TRY(hsa_check(s));
    REQUIRE_PTR(score);
    REQUIRE_PTR(dscore);
    REQUIRE_PTR(dbeta);
    const int64_t nrows = s->B * hsa_num_qrows(s) * s->Hr, K = s->K;
    double acc = 0;
    for (int64_t row = 0; row < nrows; row++)
        for (int64_t k = 1; k < K; k++)
            if (!slot_invalid(score[row * K + k])) acc += (double)k * dscore[row * K + k];
    dbeta[0] += (float)acc;
    return LC_OK;
}

/* ---- chunk attention ---- */

/* fp32 dot product; the simd reduction lets the compiler keep several partial sums (a few times
 * faster than one serial chain, same fp32 accuracy class). */
static float dot_f32(const float *a, const float *b, int64_t n) {
    float acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

/* z_j = scale <q, k_j> for the S keys of chunk c (rows c*S.., KV head h). */
static void chunk_logits(const struct hsa_shape *s, const float *q, const float *kb, int64_t b,
                         int64_t h, int64_t c, float scale, float *z) {
    const int64_t S = s->S, dh = s->dh, H = s->H, L = s->L;
    for (int64_t j = 0; j < S; j++) {
        z[j] = dot_f32(q, kb + ((b * L + c * S + j) * H + h) * dh, dh) * scale;
    }
}

/* log(sm_n + sum_j exp z_j), stably. */
static float chunk_lse(const float *z, int64_t S, int softmax1) {
    float m = softmax1 ? 0.0f : -INFINITY;
    for (int64_t j = 0; j < S; j++)
        if (z[j] > m) m = z[j];
    float l = softmax1 ? expf(-m) : 0.0f;
    for (int64_t j = 0; j < S; j++) l += expf(z[j] - m);
    return m + logf(l);
}

lc_status hsa_attend_forward_ref(const struct hsa_shape *s, const float *q, const float *k,
                                 const float *v, const int32_t *idx, const float *w, float *o,
                                 float *lse) {
    LC_TRY(hsa_check(s));
    REQUIRE_PTR(q);
    REQUIRE_PTR(k);
    REQUIRE_PTR(v);
    REQUIRE_PTR(idx);
    REQUIRE_PTR(w);
    REQUIRE_PTR(o);
    LC_TRY(check_idx(s, idx));
    const int64_t B = s->B, L = s->L, HQ = s->HQ, H = s->H, G = HQ / H, dh = s->dh, S = s->S;
    const int64_t K = s->K, Hr = s->Hr, Lr = hsa_num_qrows(s);
    const int64_t Lq = hsa_q_len(s), p0 = hsa_q_pos0(s); /* query token t is position p0 + t */
    const float scale = attn_scale(s);
    const int nt = max_threads();
    const int64_t per = S + dh;
    float *scratch = lc_malloc((size_t)nt * (size_t)per * sizeof(float), "hsa attend scratch");
    if (!scratch) return LC_ENOMEM;

#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < Lq; t++) {
            float *z = scratch + (int64_t)thread_id() * per, *ok = z + S;
            /* r: the query row (block_q = 1 whenever p0 > 0); visibility from the absolute row */
            const int64_t r = t / s->block_q, nk = n_valid(s, (p0 + t) / s->block_q);
            for (int64_t h = 0; h < H; h++) {
                const int64_t off = (b * Lr + r) * Hr + (Hr == 1 ? 0 : h);
                const int32_t *ix = idx + off * K;
                const float *wv = w + off * K;
                for (int64_t g = 0; g < G; g++) {
                    const int64_t a = h * G + g;
                    const float *qv = q + ((b * Lq + t) * HQ + a) * dh;
                    float *ov = o + ((b * Lq + t) * HQ + a) * dh;
                    float *lv = lse ? lse + ((b * Lq + t) * HQ + a) * K : NULL;
                    memset(ov, 0, sizeof(float) * (size_t)dh);
                    for (int64_t kk = 0; kk < K; kk++) {
                        if (kk >= nk) {
                            if (lv) lv[kk] = -INFINITY;
                            continue;
                        }
                        const int64_t c = ix[kk];
                        chunk_logits(s, qv, k, b, h, c, scale, z);
                        const float m = chunk_lse(z, S, s->softmax1);
                        if (lv) lv[kk] = m;
                        memset(ok, 0, sizeof(float) * (size_t)dh);
                        for (int64_t j = 0; j < S; j++) {
                            const float p = expf(z[j] - m);
                            const float *vv = v + ((b * L + c * S + j) * H + h) * dh;
                            for (int64_t i = 0; i < dh; i++) ok[i] += p * vv[i];
                        }
                        for (int64_t i = 0; i < dh; i++) ov[i] += wv[kk] * ok[i];
                    }
                }
            }
        }
    free(scratch);
    return LC_OK;
}

/* P_j = exp(z_j - lse) for one (token, head, slot); lse from the forward when given. */
static void slot_probs(const struct hsa_shape *s, const float *lse_row, int64_t kk, float *z) {
    const float m = lse_row ? lse_row[kk] : chunk_lse(z, s->S, s->softmax1);
    for (int64_t j = 0; j < s->S; j++) z[j] = expf(z[j] - m);
}

lc_status hsa_attend_backward_ref(const struct hsa_shape *s, const float *q, const float *k,
                                  const float *v, const int32_t *idx, const float *w,
                                  const float *lse, const float *dout, float *dq, float *dk,
                                  float *dv, float *dw) {
    LC_TRY(hsa_check(s));
    REQUIRE_PTR(q);
    REQUIRE_PTR(k);
    REQUIRE_PTR(v);
    REQUIRE_PTR(idx);
    REQUIRE_PTR(w);
    REQUIRE_PTR(dout);
    REQUIRE_PTR(dq);
    REQUIRE_PTR(dk);
    REQUIRE_PTR(dv);
    REQUIRE_PTR(dw);
    if (hsa_has_offset(s)) return lc_errorf(LC_EUNSUPPORTED, "hsa_attend_backward_ref: a query offset (Lq, q_pos0) is forward-only");
    LC_TRY(check_idx(s, idx));
    const int64_t B = s->B, L = s->L, HQ = s->HQ, H = s->H, G = HQ / H, dh = s->dh, S = s->S;
    const int64_t K = s->K, Hr = s->Hr, Lr = hsa_num_rows(s), C = hsa_num_chunks(s);
    const float scale = attn_scale(s);
    const int nt = max_threads();
    const int64_t per = 2 * S + dh;
    const size_t nD = (size_t)(B * L * HQ * K), ndwt = (size_t)(B * L * H * K);
    float *scratch = lc_malloc((size_t)nt * (size_t)per * sizeof(float), "hsa attend_bwd scratch");
    float *D = lc_malloc(nD * sizeof(float), "hsa attend_bwd D");
    float *dwt = lc_malloc(ndwt * sizeof(float), "hsa attend_bwd per-token dw");
    if (!scratch || !D || !dwt) {
        free(scratch);
        free(D);
        free(dwt);
        return LC_ENOMEM;
    }

    /* Pass 1, per token: dq, D_k = <o_k, dO>, per-token dw_k = sum_g D_k. */
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < L; t++) {
            float *P = scratch + (int64_t)thread_id() * per, *dP = P + S, *ok = dP + S;
            const int64_t r = t / s->block_q, nk = n_valid(s, r);
            for (int64_t h = 0; h < H; h++) {
                const int64_t off = (b * Lr + r) * Hr + (Hr == 1 ? 0 : h);
                const int32_t *ix = idx + off * K;
                const float *wv = w + off * K;
                float *dwv = dwt + ((b * L + t) * H + h) * K;
                for (int64_t kk = 0; kk < K; kk++) dwv[kk] = 0;
                for (int64_t g = 0; g < G; g++) {
                    const int64_t a = h * G + g, row = (b * L + t) * HQ + a;
                    const float *qv = q + row * dh, *dov = dout + row * dh;
                    const float *lv = lse ? lse + row * K : NULL;
                    float *dqv = dq + row * dh, *Dv = D + row * K;
                    memset(dqv, 0, sizeof(float) * (size_t)dh);
                    for (int64_t kk = 0; kk < K; kk++) {
                        Dv[kk] = 0;
                        if (kk >= nk) continue;
                        const int64_t c = ix[kk];
                        chunk_logits(s, qv, k, b, h, c, scale, P);
                        slot_probs(s, lv, kk, P);
                        memset(ok, 0, sizeof(float) * (size_t)dh);
                        for (int64_t j = 0; j < S; j++) {
                            const float *vv = v + ((b * L + c * S + j) * H + h) * dh;
                            for (int64_t i = 0; i < dh; i++) ok[i] += P[j] * vv[i];
                            dP[j] = dot_f32(dov, vv, dh);
                        }
                        const float Dk = dot_f32(ok, dov, dh);
                        Dv[kk] = Dk;
                        dwv[kk] += Dk;
                        for (int64_t j = 0; j < S; j++) {
                            const float dz = wv[kk] * P[j] * (dP[j] - Dk) * scale;
                            const float *kv = k + ((b * L + c * S + j) * H + h) * dh;
                            for (int64_t i = 0; i < dh; i++) dqv[i] += dz * kv[i];
                        }
                    }
                }
            }
        }

    /* dw[row, hr, k] = sum over the row's tokens (and over h when Hr == 1), in a fixed order. */
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = 0; r < Lr; r++)
            for (int64_t hr = 0; hr < Hr; hr++) {
                float *dwo = dw + ((b * Lr + r) * Hr + hr) * K;
                for (int64_t kk = 0; kk < K; kk++) dwo[kk] = 0;
                const int64_t t1 = (r + 1) * s->block_q < L ? (r + 1) * s->block_q : L;
                for (int64_t t = r * s->block_q; t < t1; t++)
                    for (int64_t h = 0; h < H; h++) {
                        if (Hr != 1 && h != hr) continue;
                        const float *src = dwt + ((b * L + t) * H + h) * K;
                        for (int64_t kk = 0; kk < K; kk++) dwo[kk] += src[kk];
                    }
            }

    /* Pass 2, per (b, h, chunk): dk, dv over every (token, slot) that selected the chunk. Rows of
     * the incomplete last chunk are never selected and stay 0. */
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = C * S; t < L; t++)
            for (int64_t h = 0; h < H; h++) {
                memset(dk + ((b * L + t) * H + h) * dh, 0, sizeof(float) * (size_t)dh);
                memset(dv + ((b * L + t) * H + h) * dh, 0, sizeof(float) * (size_t)dh);
            }
#pragma omp parallel for collapse(3) schedule(dynamic, 1)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t c = 0; c < C; c++) {
                float *P = scratch + (int64_t)thread_id() * per;
                for (int64_t j = 0; j < S; j++) {
                    memset(dk + ((b * L + c * S + j) * H + h) * dh, 0, sizeof(float) * (size_t)dh);
                    memset(dv + ((b * L + c * S + j) * H + h) * dh, 0, sizeof(float) * (size_t)dh);
                }
                /* Tokens that may see chunk c start after it is complete. */
                for (int64_t t = (c + 1) * S; t < L; t++) {
                    const int64_t r = t / s->block_q, nk = n_valid(s, r);
                    const int64_t off = (b * Lr + r) * Hr + (Hr == 1 ? 0 : h);
                    const int32_t *ix = idx + off * K;
                    const float *wv = w + off * K;
                    for (int64_t kk = 0; kk < nk; kk++) {
                        if (ix[kk] != c) continue;
                        for (int64_t g = 0; g < G; g++) {
                            const int64_t a = h * G + g, row = (b * L + t) * HQ + a;
                            const float *qv = q + row * dh, *dov = dout + row * dh;
                            const float Dk = D[row * K + kk];
                            chunk_logits(s, qv, k, b, h, c, scale, P);
                            slot_probs(s, lse ? lse + row * K : NULL, kk, P);
                            for (int64_t j = 0; j < S; j++) {
                                const int64_t kvrow = ((b * L + c * S + j) * H + h) * dh;
                                const float pw = wv[kk] * P[j];
                                const float dz = pw * (dot_f32(dov, v + kvrow, dh) - Dk) * scale;
                                float *dkv = dk + kvrow, *dvv = dv + kvrow;
                                for (int64_t i = 0; i < dh; i++) {
                                    dvv[i] += pw * dov[i];
                                    dkv[i] += dz * qv[i];
                                }
                            }
                        }
                    }
                }
            }
    free(scratch);
    free(D);
    free(dwt);
    return LC_OK;
}
