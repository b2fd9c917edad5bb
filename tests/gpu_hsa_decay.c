/* gpu_hsa_decay.c — the CUDA position decay of the HSA scores (hsa.md 3.5, enable_pos_decay:
 * score += k * beta on valid slots, dbeta += sum k * dscore) against its C reference, on random
 * scores with 0..K valid slots per row, at ragged shapes (GCA rows included), with a query offset,
 * and a row count large enough that the one-CTA backward strides many times. Forward: exact
 * (one fp32 multiply-add each). Backward: fp32 sums against the reference's double sum, within
 * 1e-6 of the sum of |k * dscore| (fp32 summation error); it must also equal itself on a second
 * call (deterministic). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "test_hsa_util.h"

static void one(int64_t B, int64_t L, int64_t Hr, int64_t K, int64_t S, int64_t bq, int64_t Lq, int64_t q_pos0, float beta,
                uint64_t seed) {
    struct hsa_shape s = hsa_shape_make(B, L, Hr, Hr, 4, S, K, Hr, 4, bq, 0, HSA_SOFTMAX);
    s.Lq = Lq, s.q_pos0 = q_pos0;
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const int64_t rows = B * hsa_num_qrows(&s) * Hr, n = rows * K;
    float *sc = t_randn(&rng, n, 1), *ds = t_randn(&rng, n, 1), *got = t_alloc(n);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = r % (K + 1); k < K; k++) sc[r * K + k] = -INFINITY;
    float *d_sc = lc_cuda_malloc(sizeof(float) * (size_t)n, "scores"), *d_ds = lc_cuda_malloc(sizeof(float) * (size_t)n, "dscore");
    float *d_b = lc_cuda_malloc(2 * sizeof(float), "beta, dbeta");
    const float start[2] = {beta, 0.5f};
    if (!d_sc || !d_ds || !d_b) {
        T_CHECK(0, "device allocation failed");
        goto done;
    }
    lc_cuda_memcpy_h2d(d_sc, sc, sizeof(float) * (size_t)n);
    lc_cuda_memcpy_h2d(d_ds, ds, sizeof(float) * (size_t)n);
    lc_cuda_memcpy_h2d(d_b, start, sizeof start);
    if (!T_OK(hsa_pos_decay_forward_cuda(&s, d_b, d_sc, NULL)) || !T_OK(hsa_pos_decay_forward_ref(&s, &beta, sc))) goto done;
    lc_cuda_memcpy_d2h(got, d_sc, sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        if (!T_CHECK(got[i] == sc[i] || (isinf(got[i]) && isinf(sc[i]) && got[i] < 0),
                     "B %lld L %lld K %lld: slot %lld is %g, reference %g", (long long)B, (long long)L, (long long)K, (long long)i,
                     got[i], sc[i]))
            goto done;
    float want = 0.5f, b2[2], b3[2];
    if (!T_OK(hsa_pos_decay_backward_cuda(&s, d_sc, d_ds, d_b + 1, NULL)) || !T_OK(hsa_pos_decay_backward_ref(&s, sc, ds, &want)))
        goto done;
    lc_cuda_memcpy_d2h(b2, d_b, sizeof b2);
    double mag = 1;
    for (int64_t i = 0; i < n; i++) mag += isinf(sc[i]) ? 0 : fabs((double)(i % K) * ds[i]);
    T_CHECK(fabs((double)b2[1] - want) <= 1e-6 * mag, "rows %lld K %lld: dbeta %.8g, reference %.8g (sum |terms| %.4g)",
            (long long)rows, (long long)K, b2[1], want, mag);
    lc_cuda_memcpy_h2d(d_b + 1, &start[1], sizeof(float));
    T_OK(hsa_pos_decay_backward_cuda(&s, d_sc, d_ds, d_b + 1, NULL));
    lc_cuda_memcpy_d2h(b3, d_b, sizeof b3);
    T_CHECK(b3[1] == b2[1], "second call gives dbeta %.9g, first %.9g (not deterministic)", b3[1], b2[1]);
done:
    lc_cuda_free(d_sc), lc_cuda_free(d_ds), lc_cuda_free(d_b);
    free(sc), free(ds), free(got);
}

int main(void) {
    t_begin("gpu_hsa_decay: CUDA position decay forward and dbeta equal the C reference");
    if (lc_cuda_device_count(NULL) <= 0) {
        t_skip("no CUDA device");
        return t_finish();
    }
    one(2, 333, 1, 8, 16, 1, 0, 0, 0.37f, 1);      /* HSA rows, ragged L */
    one(1, 1000, 2, 5, 8, 8, 0, 0, -0.81f, 2);     /* GCA rows (block_q = S), per-KV retrieval heads */
    one(3, 700, 1, 32, 64, 1, 93, 411, 0.05f, 3);  /* query offset: 93 rows from token 411 */
    one(1, 65536, 1, 32, 64, 1, 0, 0, -0.013f, 4); /* 2M slots: the backward's threads stride ~2000 times */
    return t_finish();
}
