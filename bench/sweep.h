/* sweep.h — `longctx sweep`: a grid of kernel points measured one by one into a CSV.
 *
 * The grid is the cross product of the lists given for mixer, direction, backend, B, L, HQ, H,
 * dh, W, S, K, dr and N (flags or a sweep file of `key = value` lines), with L innermost and
 * ascending. Dims that a mixer does not use are 0 in its points (W only for swa; S, K, dr only
 * for hsa_*; N only for mamba_*); a list left empty takes the mixer's default (sweep_grid.c).
 * Sizes take binary suffixes (4K = 4096, 1M, 16M); `a..b` is every power of two from a to b.
 *
 * For each point the driver (sweep.c): predicts the bytes it allocates and records status=oom
 * when that exceeds the free device memory (CUDA) or the host cap (CPU); makes the case; times
 * it with bench_time (probe run, then warm-up and repeats fitted to the per-point time budget);
 * records status=skipped for larger L of a series once one point ran over the budget; appends
 * one row, flushed at once; and on rerun skips points whose key is already in the file.
 */
#ifndef LONGCTX_SWEEP_H
#define LONGCTX_SWEEP_H

#include "bench.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SWEEP_MAX_VALS = 64, SWEEP_MAX_MIXERS = 16, SWEEP_MAX_FAMILIES = 32 };

struct sweep_list {
    int n;
    int64_t v[SWEEP_MAX_VALS];
};

struct sweep_opts {
    char mixers[SWEEP_MAX_MIXERS][24];
    int nmixers;                          /* 0 = every registered mixer */
    char directions[4][8];
    int ndirections;                      /* 0 = fwd */
    int backends[2];
    int nbackends;                        /* 0 = cuda when a device is present, else cpu */
    struct sweep_list B, L, HQ, H, dh, W, S, K, dr, N;
    char out[512];                        /* CSV path; "" = results/kernels_<device>.csv */
    char tag[32];                         /* the `sweep` column: names this grid (default "L") */
    double budget_s;                      /* per point: run time over which larger L is skipped */
    double mem_cap_bytes;                 /* CPU host cap; 0 = half of MemAvailable */
    int warmup, reps;
    int dry_run;                          /* list the points (and NVTX names), run nothing */
    int quiet;                            /* no progress line */
};

void sweep_opts_default(struct sweep_opts *o);
/* Parse a size with an optional K/M/G suffix (binary): "4K" -> 4096. */
lc_status sweep_parse_size(const char *s, int64_t *v);
/* Parse "a,b,c" and/or "a..b" (powers of two from a to b) into l (sorted, deduplicated). */
lc_status sweep_parse_list(const char *s, struct sweep_list *l);
/* Set one option by key ("L", "mixer", "budget_s", ...) from its text value. The message of
 * an error names the key and the value; `where` (e.g. "sweep.txt line 3" or "--L") prefixes it. */
lc_status sweep_set(struct sweep_opts *o, const char *key, const char *value, const char *where);
/* Read a sweep file of `key = value` lines (# comments, blank lines); errors name the line. */
lc_status sweep_parse_file(struct sweep_opts *o, const char *path);
/* Parse command-line flags (--key value or --key=value; --file F reads a sweep file). */
lc_status sweep_parse_args(struct sweep_opts *o, int argc, char **argv);

/* Expand the grid into points (at most max); families name the valid mixers. Returns the
 * number of points, or -1 with an error naming an unknown mixer or direction. */
int64_t sweep_points(const struct sweep_opts *o, const struct bench_family *const *fams, int nfam,
                     struct bench_point *pts, int64_t max);
/* The point's name: NVTX range and progress line, e.g. "dense.fwd.cuda.B1.L65536.HQ16.H16.dh128". */
void sweep_point_name(const struct bench_point *p, char *buf, size_t cap);

/* The whole `sweep` command over the given families; returns the process exit status. */
int sweep_main(int argc, char **argv, const struct bench_family *const *fams, int nfam);
int cmd_sweep(int argc, char **argv);

/* registry.c: every kernel family in this build; returns the count (at most max). */
int bench_registry(const struct bench_family **out, int max);
/* The CSV columns of a kernel sweep, and the columns that identify a point for resume. */
extern const char *const sweep_csv_cols[];
extern const int sweep_csv_ncols;
extern const char sweep_csv_keycols[];

#ifdef __cplusplus
}
#endif
#endif
