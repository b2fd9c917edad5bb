/* bench.h — the seam between kernel families and the benchmark machinery.
 *
 * A kernel family describes how to build one measurable case for a point of the sweep grid
 * (bench_family.make: allocate, fill with random data, return a `run` closure), and how many
 * bytes that will allocate (predict_bytes, so the sweep can skip a point that cannot fit before
 * allocating anything). The harness (bench/timer.c, the sweep driver, the Google Benchmark shim)
 * times `run`: warm-up, then repeats timed with CUDA events (wall clock on the C backend), L2
 * flushed between repeats, median reported.
 *
 * Field meaning per mixer (unused fields are 0):
 *   dense, swa           B, L, HQ, H, dh; W (swa window: keys t-W..t; 0 for dense)
 *   hsa_*                B, L, HQ, H, dh, S, K, dr (retrieval dim per head)
 *   mamba_*              B, L, HQ = heads, dh = head dim P, H = ngroups, N = state size
 *   model_*              B = 1, L (a preset fixes the rest; fwd = full prefill, decode = one token)
 * direction: "fwd", "bwd" (backward only, forward state prepared in make), "fwdbwd", "decode".
 */
#ifndef LONGCTX_BENCH_H
#define LONGCTX_BENCH_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum bench_backend { BENCH_CPU = 0, BENCH_CUDA = 1 };

struct bench_point {
    char mixer[24];
    char direction[8];
    int backend; /* enum bench_backend */
    int64_t B, L, HQ, H, dh, W, S, K, dr, N;
};

struct bench_case {
    void *ctx;
    lc_status (*run)(void *ctx);  /* one execution of the measured work (async on CUDA is fine) */
    void (*destroy)(void *ctx);
    double flops;                 /* per run, counted the FlashAttention way (see each family) */
    double bytes;                 /* minimal bytes moved per run: inputs read once, outputs written once */
    size_t alloc_bytes;           /* bytes allocated by make (device on CUDA, host on CPU) */
};

struct bench_family {
    const char *mixer;
    size_t (*predict_bytes)(const struct bench_point *p);
    /* LC_EUNSUPPORTED with a message for shapes the kernel does not support; LC_ENOMEM when it
     * cannot allocate. Never leaves allocations behind on failure. */
    lc_status (*make)(const struct bench_point *p, struct bench_case *c);
};

/* Each family file (bench/bench_<family>.c) defines one of these, listing its mixers. */
const struct bench_family *bench_families_attention(int *n);
const struct bench_family *bench_families_hsa(int *n);
const struct bench_family *bench_families_mamba(int *n);
/* Whole models through model/infer.h (bench_model.c): mixers model_<preset>, B = 1 and L only. */
const struct bench_family *bench_families_model(int *n);

struct bench_timing {
    double ms_median, ms_min, ms_max;
    int reps;
};

/* Warm up `warmup` runs, then time `reps` runs (each after an L2 flush on CUDA), median. */
lc_status bench_time(const struct bench_case *c, int backend, int warmup, int reps,
                     struct bench_timing *t);

#ifdef __cplusplus
}
#endif
#endif
