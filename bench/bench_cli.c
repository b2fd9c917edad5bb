/* bench_cli.c — `longctx bench`: every kernel family's points, at the shapes given with the
 * sweep's grid flags (sweep.h), registered into Google Benchmark through the C shim (gbench.h).
 *
 *   longctx bench --mixer dense,swa --L 4K,64K --benchmark_repetitions=5 \
 *                 --benchmark_out=bench.json --benchmark_out_format=json
 *
 * One iteration = one run of the case timed by bench_time (CUDA events with an L2 flush before
 * the run on CUDA; wall clock on the CPU), so Google Benchmark's time column is the kernel
 * time. Warm-up: 2 untimed runs before the first timed one (--warmup N). Only one case is
 * alive at a time: a point's case is made when its benchmark first runs and destroyed when the
 * next one starts, so a 16M point does not share the device with the others. A point that
 * cannot fit (predicted bytes over the free memory) or that its family refuses is reported by
 * Google Benchmark as an error with the reason. Counters: TFLOP/s and GB/s (per run's flop and
 * bytes over the measured time).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "gbench.h"
#include "nvtx.h"
#include "sweep.h"

struct cli_state;

struct cli_point {
    struct bench_point p;
    const struct bench_family *fam;
    struct cli_state *st;
    int id;
    char name[160];
};

struct cli_state {
    struct cli_point *live; /* the point whose case is made */
    struct bench_case c;
    double host_cap;
};

static void drop_live(struct cli_state *s) {
    if (s->live && s->c.destroy) s->c.destroy(s->c.ctx);
    memset(&s->c, 0, sizeof s->c);
    s->live = NULL;
}

static lc_status make_live(struct cli_point *cp) {
    struct cli_state *s = cp->st;
    drop_live(s);
    size_t pred = cp->fam->predict_bytes(&cp->p);
    double cap = s->host_cap;
    if (cp->p.backend == BENCH_CUDA) {
        size_t fr = 0, tot = 0;
        LC_TRY(lc_cuda_mem_info(&fr, &tot));
        cap = (double)fr - (double)(256u << 20) - 0.02 * (double)tot;
    }
    if ((double)pred > cap)
        return lc_errorf(LC_ENOMEM, "oom: predicted %.2f GiB > %.2f GiB available", pred / 1073741824.0,
                         cap / 1073741824.0);
    LC_TRY(cp->fam->make(&cp->p, &s->c));
    s->live = cp;
    lc_gb_counter(cp->id, "TFLOP/s", s->c.flops / 1e12);
    lc_gb_counter(cp->id, "GB/s", s->c.bytes / 1e9);
    return LC_OK;
}

static lc_status one_iteration(void *ctx, double *seconds) {
    struct cli_point *cp = ctx;
    if (cp->st->live != cp) LC_TRY(make_live(cp));
    struct bench_timing t;
    lc_nvtx_push(cp->name);
    lc_status st = bench_time(&cp->st->c, cp->p.backend, 0, 1, &t);
    lc_nvtx_pop();
    LC_TRY(st);
    *seconds = t.ms_median * 1e-3;
    return LC_OK;
}

int cmd_bench(int argc, char **argv) {
    /* --benchmark_* go to Google Benchmark, the rest are the sweep's grid flags */
    char **gb = calloc((size_t)argc + 1, sizeof *gb), **grid = calloc((size_t)argc + 1, sizeof *grid);
    int ngb = 1, ngrid = 1, warmup = 2;
    if (!gb || !grid) return 1;
    gb[0] = grid[0] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: longctx bench [grid options of `longctx sweep --help`] [--benchmark_* flags]\n"
                   "  registers every point of the grid (mixer, direction, backend, B, L, HQ, H, dh, W, S, K,\n"
                   "  dr, N) as a Google Benchmark; e.g. longctx bench --mixer swa --L 64K --W 1K,4K\n"
                   "  --benchmark_repetitions=5 --benchmark_out=swa.json --benchmark_out_format=json\n"
                   "  --warmup N  untimed runs before a point's first timed run (default 2)\n");
            free(gb);
            free(grid);
            return 0;
        }
        if (!strncmp(argv[i], "--benchmark_", 12)) gb[ngb++] = argv[i];
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else grid[ngrid++] = argv[i];
    }
    int rc = 0;
    struct sweep_opts o;
    sweep_opts_default(&o);
    const struct bench_family *fams[SWEEP_MAX_FAMILIES];
    int nfam = bench_registry(fams, SWEEP_MAX_FAMILIES);
    struct cli_point *pts = NULL;
    struct cli_state st;
    memset(&st, 0, sizeof st);
    int64_t n = 0;
    const char *why = NULL;
    int ngpu = lc_cuda_device_count(&why);
    if (!lc_gb_available()) {
        lc_gb_run(0, NULL);
        fprintf(stderr, "longctx bench: %s\n", lc_last_error());
        rc = 2;
    } else if (sweep_parse_args(&o, ngrid, grid) != LC_OK) {
        fprintf(stderr, "longctx bench: %s\n", lc_last_error());
        rc = 2;
    }
    if (rc == 0) {
        if (o.nbackends == 0) {
            o.nbackends = 1;
            o.backends[0] = ngpu > 0 ? BENCH_CUDA : BENCH_CPU;
        }
        if (o.L.n == 0) sweep_parse_list(o.backends[0] == BENCH_CUDA ? "4K..1M" : "1K..4K", &o.L);
        n = sweep_points(&o, fams, nfam, NULL, 0);
        if (n < 0) {
            fprintf(stderr, "longctx bench: %s\n", lc_last_error());
            rc = 2;
        }
    }
    struct bench_point *bp = rc == 0 ? calloc((size_t)n + 1, sizeof *bp) : NULL;
    pts = rc == 0 ? calloc((size_t)n + 1, sizeof *pts) : NULL;
    if (rc == 0 && (!bp || !pts)) rc = 1;
    if (rc == 0) {
        sweep_points(&o, fams, nfam, bp, n);
        st.host_cap = o.mem_cap_bytes > 0 ? o.mem_cap_bytes : 8.0 * 1073741824.0;
        for (int64_t i = 0; i < n && rc == 0; i++) {
            struct cli_point *cp = &pts[i];
            cp->p = bp[i];
            cp->st = &st;
            for (int j = 0; j < nfam; j++)
                if (!strcmp(fams[j]->mixer, cp->p.mixer)) cp->fam = fams[j];
            sweep_point_name(&cp->p, cp->name, sizeof cp->name);
            cp->id = lc_gb_register(cp->name, one_iteration, cp, warmup);
            if (cp->id < 0) rc = 1;
        }
        if (rc == 0 && lc_gb_run(ngb, gb) != LC_OK) {
            fprintf(stderr, "longctx bench: %s\n", lc_last_error());
            rc = 2;
        }
        drop_live(&st);
        lc_gb_clear();
    }
    free(bp);
    free(pts);
    free(gb);
    free(grid);
    return rc;
}
