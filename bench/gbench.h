/* gbench.h — a C API over Google Benchmark (bench/gbench.cpp; bench/gbench_nogbench.c in a
 * build without the library, where every call says so).
 *
 * A benchmark is a C function that runs one iteration and reports how long it took (manual
 * timing: the caller times with CUDA events, or the wall clock on the CPU), registered with a
 * context pointer. Google Benchmark decides the iteration count from --benchmark_min_time,
 * repeats with --benchmark_repetitions, prints its table, and writes JSON with
 * --benchmark_out=F --benchmark_out_format=json (or --benchmark_format=json to stdout).
 * A failing iteration (status != LC_OK) skips the benchmark with lc_last_error() as the
 * message. Counters (e.g. TFLOP/s) are given per iteration and reported per second of
 * measured time. Works with libbenchmark 1.7 and 1.8.
 */
#ifndef LONGCTX_GBENCH_H
#define LONGCTX_GBENCH_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One iteration: run the work, set *seconds to its measured time. */
typedef lc_status (*lc_gb_fn)(void *ctx, double *seconds);

struct lc_gb_result {
    int64_t iterations;  /* of the last run of the benchmark */
    double seconds_mean; /* mean manual time per iteration of that run */
    int runs;            /* how many times Google Benchmark ran it (estimation, repetitions) */
    int skipped;         /* 1 when an iteration failed */
    char message[256];   /* why it was skipped */
};

/* 1 when this build has Google Benchmark. */
int lc_gb_available(void);
/* Register fn(ctx) under `name`, to run `warmup` untimed iterations before its first timed run.
 * Returns an id >= 0, or -1 with an error. */
int lc_gb_register(const char *name, lc_gb_fn fn, void *ctx, int warmup);
/* Set a counter of benchmark `id`: `per_iter` units of work per iteration, reported as
 * per_iter / (mean seconds per iteration) under `name` (e.g. "TFLOP/s" with flop/1e12).
 * May be called from inside fn (the work is often known only once the case is made). */
lc_status lc_gb_counter(int id, const char *name, double per_iter);
/* Parse --benchmark_* flags from argv (argv[0] is the program name; other arguments are an
 * error) and run every registered benchmark. */
lc_status lc_gb_run(int argc, char **argv);
/* The numbers of benchmark `id` after lc_gb_run. */
lc_status lc_gb_result(int id, struct lc_gb_result *r);
/* Forget every registered benchmark. */
void lc_gb_clear(void);

#ifdef __cplusplus
}
#endif
#endif
