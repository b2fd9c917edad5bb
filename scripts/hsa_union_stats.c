/* hsa_union_stats.c — the bytes the chunk-attention forward really moves, counted on the host
 * for the bench index patterns (it includes bench/bench_hsa.c for its generators).
 * The forward kernel (kernels/hsa_attend.cuh) loads, per CTA of MT tokens, every chunk of the
 * union of their chunk lists once: K and V rows, 2 * S * dh * 2 bytes per chunk and KV head.
 * This prints, per pattern, the mean union per CTA, the chunk loads per token and the gathered
 * bytes, next to the minimal K/V bytes (each row once).
 * Backward (session 3, hsa4): the dK/dV pass of hsa_attend.cuh gathers, per valid (token, slot) pair, the
 * G = 16 query rows of q and of dO (2 * G * dh * 2 bytes); a token-block-major dK/dV pass would
 * instead emit, per (CTA, union chunk), S x dh partial sums of dK and dV (fp32: 2 * S * dh * 4
 * bytes, as atomics or partials to reduce). Both are printed ("pair gathers" vs "block partials").
 *   gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -DLC_CUDA=0 -Ikernels -Ibench \
 *       scripts/hsa_union_stats.c kernels/hsa_ref.c kernels/common.c kernels/device_nocuda.c -lm \
 *       -o hsa_union_stats
 *   ./hsa_union_stats L K MT        (HQ = 16, H = 1, dh = 64, S = 64) */
#include <stdio.h>

#include "../bench/bench_hsa.c"

static int cmp_desc(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x < y) - (x > y);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s L K MT\n", argv[0]);
        return 2;
    }
    struct bench_point p;
    memset(&p, 0, sizeof p);
    p.B = 1, p.L = atoll(argv[1]), p.HQ = 16, p.H = 1, p.dh = 64, p.S = 64, p.K = atoll(argv[2]);
    const int64_t MT = atoll(argv[3]);
    struct hsa_shape s = point_shape(&p);
    const int64_t K = s.K, L = s.L;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)(L * K)), *u = malloc(sizeof(int32_t) * (size_t)(MT * K));
    float *w = malloc(sizeof(float) * (size_t)(L * K));
    const char *names[3] = {"drift (hsa_attend)", "pool (hsa_attend_pool)", "random (hsa_attend_rand)"};
    for (int pat = 0; pat < 3; pat++) {
        if (pat == 1) make_indices_pool(&s, idx, w);
        else make_indices(&s, pat == 2, idx, w);
        double unions = 0, nblk = 0, npairs = 0;
        for (int64_t t0 = 0; t0 < L; t0 += MT) {
            int64_t n = 0;
            for (int64_t t = t0; t < t0 + MT && t < L; t++) {
                int64_t nv = hsa_num_visible(&s, t), nval = nv < K ? nv : K;
                for (int64_t k = 0; k < nval; k++) u[n++] = idx[t * K + k];
                npairs += (double)nval;
            }
            qsort(u, (size_t)n, sizeof(int32_t), cmp_desc);
            int64_t d = 0;
            for (int64_t i = 0; i < n; i++) d += i == 0 || u[i] != u[i - 1];
            unions += (double)d;
            nblk += 1;
        }
        const double chunk_bytes = 2.0 * (double)s.S * (double)s.dh * 2.0;
        printf("L=%lld K=%lld MT=%lld %-26s union/CTA %7.2f  chunk loads/token %6.3f  gathered K/V %8.3f GB  "
               "(K/V once: %.3f GB)\n",
               (long long)L, (long long)K, (long long)MT, names[pat], unions / nblk, unions / (double)L,
               unions * chunk_bytes / 1e9, (double)L * 2.0 * (double)s.dh * 2.0 / 1e9);
        printf("    backward dK/dV: pair gathers (q, dO) %8.3f GB   block partials (fp32 dK, dV) %8.3f GB\n",
               npairs * 2.0 * (double)(s.HQ / s.H) * (double)s.dh * 2.0 / 1e9,
               unions * 2.0 * (double)s.S * (double)s.dh * 4.0 / 1e9);
    }
    free(idx), free(u), free(w);
    return 0;
}
