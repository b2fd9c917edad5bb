/* timer.c — times a bench_case: warm-up, repeats, median. On CUDA each repeat is bracketed by
 * events on the default stream, with a 256 MiB memset before it so the L2 (50 MiB on the H100)
 * holds none of the inputs. On the CPU, wall clock. */
#include <stdlib.h>

#include "bench.h"
#include "device.h"
#if LC_CUDA
#include <cuda_runtime.h>
#endif

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#if LC_CUDA
static lc_status cuda_status(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return LC_OK;
    return lc_errorf(LC_EDEVICE, "bench timer: %s: %s", what, cudaGetErrorString(e));
}
#endif

lc_status bench_time(const struct bench_case *c, int backend, int warmup, int reps, struct bench_timing *t) {
    LC_REQUIRE(reps >= 1 && reps <= 100000, "bench_time: reps = %d must be in 1..100000", reps);
    double *ms = lc_malloc(sizeof(double) * (size_t)reps, "bench timings");
    if (!ms) return LC_ENOMEM;
    lc_status st = LC_OK;
    for (int i = 0; i < warmup && st == LC_OK; i++) st = c->run(c->ctx);
    if (backend == BENCH_CUDA) {
#if LC_CUDA
        const size_t flush_bytes = (size_t)256 << 20;
        void *flush = NULL;
        cudaEvent_t e0 = NULL, e1 = NULL;
        if (st == LC_OK) st = cuda_status(cudaMalloc(&flush, flush_bytes), "allocating the L2 flush buffer");
        if (st == LC_OK) st = cuda_status(cudaEventCreate(&e0), "cudaEventCreate");
        if (st == LC_OK) st = cuda_status(cudaEventCreate(&e1), "cudaEventCreate");
        for (int i = 0; i < reps && st == LC_OK; i++) {
            st = cuda_status(cudaMemsetAsync(flush, i & 0xff, flush_bytes, 0), "L2 flush");
            if (st == LC_OK) st = cuda_status(cudaEventRecord(e0, 0), "cudaEventRecord");
            if (st == LC_OK) st = c->run(c->ctx);
            if (st == LC_OK) st = cuda_status(cudaEventRecord(e1, 0), "cudaEventRecord");
            if (st == LC_OK) st = cuda_status(cudaEventSynchronize(e1), "running the benchmark case");
            float f = 0;
            if (st == LC_OK) st = cuda_status(cudaEventElapsedTime(&f, e0, e1), "cudaEventElapsedTime");
            ms[i] = f;
        }
        if (e0) cudaEventDestroy(e0);
        if (e1) cudaEventDestroy(e1);
        if (flush) cudaFree(flush);
#else
        st = lc_errorf(LC_EDEVICE, "bench_time: CUDA case in a build without the CUDA backend");
#endif
    } else {
        for (int i = 0; i < reps && st == LC_OK; i++) {
            double t0 = lc_now();
            st = c->run(c->ctx);
            ms[i] = 1e3 * (lc_now() - t0);
        }
    }
    if (st == LC_OK) {
        qsort(ms, (size_t)reps, sizeof(double), cmp_double);
        t->reps = reps;
        t->ms_min = ms[0];
        t->ms_max = ms[reps - 1];
        t->ms_median = reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
    }
    free(ms);
    return st;
}
