/* sweep.c — the `longctx sweep` driver: runs the points of the grid (sweep_grid.c) one by one
 * and appends one CSV row each (csv.c). See sweep.h for what happens to a point.
 *
 * Columns (units in the names; numbers plain; an empty cell = not measured):
 *   sweep           the grid's tag (--tag): which figure the row belongs to (L, W, K, ...)
 *   mixer direction backend B L HQ H dh W S K dr N    the point (bench.h says what each dim means)
 *   ms ms_min ms_max reps     median / min / max time of one run over `reps` timed runs
 *   tflops gbps               flop / median time (FlashAttention counting, see each family),
 *                             bytes / median time (minimal traffic: inputs read, outputs written once)
 *   flop bytes                per run, from the family
 *   predicted_bytes           what the family predicted it would allocate
 *   peak_mem_bytes            measured: CPU = rise of peak RSS (VmHWM, reset per point);
 *                             CUDA = device memory in use after the runs, at least alloc_bytes
 *   status                    ok | oom | skipped | error
 *   device git_sha date       provenance: driver's device name or CPU model, commit, UTC time
 *   reason                    why a point did not run (last column: it may hold commas)
 */
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "csv.h"
#include "device.h"
#include "nvtx.h"
#include "provenance.h"
#include "sweep.h"

const char *const sweep_csv_cols[] = {
    "sweep", "mixer", "direction", "backend", "B", "L", "HQ", "H", "dh", "W", "S", "K", "dr", "N",
    "ms", "ms_min", "ms_max", "reps", "tflops", "gbps", "flop", "bytes", "predicted_bytes",
    "peak_mem_bytes", "status", "device", "git_sha", "date", "reason"};
const int sweep_csv_ncols = sizeof sweep_csv_cols / sizeof sweep_csv_cols[0];
const char sweep_csv_keycols[] = "sweep,mixer,direction,backend,B,L,HQ,H,dh,W,S,K,dr,N,device";
enum { C_SWEEP, C_MIXER, C_DIR, C_BACKEND, C_B, C_L, C_HQ, C_H, C_DH, C_W, C_S, C_K, C_DR, C_N,
       C_MS, C_MSMIN, C_MSMAX, C_REPS, C_TFLOPS, C_GBPS, C_FLOP, C_BYTES, C_PRED, C_PEAK, C_STATUS,
       C_DEVICE, C_SHA, C_DATE, C_REASON, NCOLS };

/* ---- host memory ----------------------------------------------------------------------- */

static long long proc_status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') {
            v = atoll(line + n + 1);
            break;
        }
    fclose(f);
    return v;
}

/* Reset the peak-RSS mark (Linux >= 4.0: writing 5 to clear_refs resets VmHWM to VmRSS). */
static int reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    ok &= fclose(f) == 0;
    return ok;
}

static double mem_available_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    double v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "MemAvailable:", 13)) {
            v = 1024.0 * atof(line + 13);
            break;
        }
    fclose(f);
    return v;
}

size_t sweep_rss_slack(void) { return ((size_t)1 << 20) + ((size_t)256 << 10) * (size_t)omp_get_max_threads(); }

/* ---- one point ------------------------------------------------------------------------- */

/* A series: the points that differ only in L. Once one exceeds the budget, larger L is not run. */
struct series {
    struct bench_point key; /* the point with L = 0 */
    int over;
    char why[256];
};

/* The last measured point of a kernel (mixer, direction, backend), whatever its shape: the time
 * of the next point is predicted from it by the ratio of their flop (or bytes, if larger), so a
 * point predicted over the budget is skipped before it runs (larger L, W or K alike). */
struct recent {
    char mixer[24], direction[8];
    int backend;
    double ms, flop, bytes;
    char name[160];
};

static int same_series(const struct bench_point *a, const struct bench_point *b) {
    struct bench_point x = *a, y = *b;
    x.L = y.L = 0;
    return !memcmp(&x, &y, sizeof x);
}

static void fmt_num(char *buf, size_t cap, double v) { snprintf(buf, cap, "%.6g", v); }
static void fmt_int(char *buf, size_t cap, int64_t v) { snprintf(buf, cap, "%lld", (long long)v); }

struct row {
    char v[NCOLS][96];
    char reason[1024];
    const char *cells[NCOLS];
};

static void row_point(struct row *r, const char *tag, const struct bench_point *p, const char *device,
                      const char *sha) {
    memset(r, 0, sizeof *r);
    snprintf(r->v[C_SWEEP], 96, "%s", tag);
    snprintf(r->v[C_MIXER], 96, "%s", p->mixer);
    snprintf(r->v[C_DIR], 96, "%s", p->direction);
    snprintf(r->v[C_BACKEND], 96, "%s", p->backend == BENCH_CUDA ? "cuda" : "cpu");
    int64_t dims[] = {p->B, p->L, p->HQ, p->H, p->dh, p->W, p->S, p->K, p->dr, p->N};
    for (int i = 0; i < 10; i++) fmt_int(r->v[C_B + i], 96, dims[i]);
    snprintf(r->v[C_DEVICE], 96, "%s", device);
    snprintf(r->v[C_SHA], 96, "%s", sha);
    for (int i = 0; i < NCOLS; i++) r->cells[i] = r->v[i];
    r->cells[C_REASON] = r->reason;
}

static void row_status(struct row *r, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void row_status(struct row *r, const char *status, const char *fmt, ...) {
    snprintf(r->v[C_STATUS], 96, "%s", status);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    /* one line per row keeps the file grep-able; the writer would quote newlines anyway */
    for (char *c = r->reason; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
}

static void gib(char *buf, size_t cap, double bytes) { snprintf(buf, cap, "%.2f GiB", bytes / 1073741824.0); }

/* Measure one point into r (status ok, or why not). Updates the series' budget state. */
static void run_point(const struct sweep_opts *o, const struct bench_family *fam, const struct bench_point *p,
                      struct series *se, struct recent *rc, double host_cap, struct row *r) {
    char a[48], b[48];
    size_t pred = fam->predict_bytes(p);
    fmt_int(r->v[C_PRED], 96, (int64_t)pred);
    if (se->over) {
        row_status(r, "skipped", "time budget: %s", se->why);
        return;
    }
    double cap = host_cap;
    const char *capwhat = "host memory cap (--mem-cap)";
    if (p->backend == BENCH_CUDA) {
        size_t fr = 0, tot = 0;
        if (lc_cuda_mem_info(&fr, &tot) != LC_OK) {
            row_status(r, "error", "no CUDA device: %s", lc_last_error());
            return;
        }
        /* the timer's 256 MiB L2-flush buffer and a little slack for the runtime */
        cap = (double)fr - (double)(256u << 20) - 0.02 * (double)tot;
        capwhat = "free device memory (less the 256 MiB L2 flush buffer and 2% slack)";
    }
    if ((double)pred > cap) {
        gib(a, sizeof a, (double)pred);
        gib(b, sizeof b, cap);
        row_status(r, "oom", "predicted %s > %s %s", a, b, capwhat);
        return;
    }
    size_t free0 = 0, tot0 = 0;
    long long rss0 = -1;
    int hwm_ok = 0;
    if (p->backend == BENCH_CUDA) {
        lc_cuda_mem_info(&free0, &tot0);
    } else {
        /* hand freed memory back to the kernel, or a point reusing the last one's resident
         * pages would show no rise of RSS */
        malloc_trim(0);
        hwm_ok = reset_peak_rss();
        rss0 = proc_status_kb("VmRSS");
    }
    char name[160];
    sweep_point_name(p, name, sizeof name);
    lc_nvtx_push(name);
    struct bench_case c;
    memset(&c, 0, sizeof c);
    lc_clear_error();
    double t0 = lc_now();
    lc_status st = fam->make(p, &c);
    if (st != LC_OK) {
        lc_nvtx_pop();
        if (st == LC_ENOMEM) row_status(r, "oom", "make: %s", lc_last_error());
        else if (st == LC_EUNSUPPORTED) row_status(r, "skipped", "unsupported: %s", lc_last_error());
        else row_status(r, "error", "make: %s", lc_last_error());
        return;
    }
    fmt_num(r->v[C_FLOP], 96, c.flops);
    fmt_num(r->v[C_BYTES], 96, c.bytes);
    /* predict from the kernel's last measured point, before spending a whole run on it */
    if (rc->ms > 0) {
        double ratio = 1;
        if (rc->flop > 0 && c.flops > 0) ratio = c.flops / rc->flop;
        if (rc->bytes > 0 && c.bytes > 0 && c.bytes / rc->bytes > ratio) ratio = c.bytes / rc->bytes;
        double est_s = rc->ms * ratio / 1e3;
        if (est_s > o->budget_s) {
            lc_nvtx_pop();
            if (c.destroy) c.destroy(c.ctx);
            char why[512];
            snprintf(why, sizeof why, "predicted %.1f s per run (scaled by work from %s: %.0f ms) > %.0f s budget",
                     est_s, rc->name, rc->ms, o->budget_s);
            row_status(r, "skipped", "time budget: %s", why);
            return;
        }
    }
    /* the probe run is the first warm-up run; then as many repeats as fit the budget */
    struct bench_timing probe, t;
    st = bench_time(&c, p->backend, 0, 1, &probe);
    int reps = o->reps, warm = o->warmup > 0 ? o->warmup - 1 : 0;
    if (st == LC_OK) {
        double left = o->budget_s - (lc_now() - t0);
        double per = probe.ms_median / 1e3;
        if (per > 0 && (warm + reps) * per > left) {
            warm = 0;
            reps = (int)(left / per);
            if (reps > o->reps) reps = o->reps;
        }
        /* no time left for another run: the probe (a cold first run) is the measurement */
        if (reps < 1) t = probe;
        else st = bench_time(&c, p->backend, warm, reps, &t);
    }
    double wall = lc_now() - t0;
    lc_nvtx_pop();
    size_t peak = c.alloc_bytes;
    if (st == LC_OK && p->backend == BENCH_CUDA) {
        size_t free1 = 0, tot1 = 0;
        if (lc_cuda_mem_info(&free1, &tot1) == LC_OK && free0 > free1 && free0 - free1 > peak) peak = free0 - free1;
    } else if (st == LC_OK && hwm_ok && rss0 >= 0) {
        long long hwm = proc_status_kb("VmHWM");
        if (hwm >= rss0) peak = (size_t)(hwm - rss0) * 1024;
    }
    if (c.destroy) c.destroy(c.ctx);
    if (st != LC_OK) {
        row_status(r, "error", "run: %s", lc_last_error());
        return;
    }
    fmt_num(r->v[C_MS], 96, t.ms_median);
    fmt_num(r->v[C_MSMIN], 96, t.ms_min);
    fmt_num(r->v[C_MSMAX], 96, t.ms_max);
    fmt_int(r->v[C_REPS], 96, t.reps);
    if (t.ms_median > 0) {
        fmt_num(r->v[C_TFLOPS], 96, c.flops / (t.ms_median * 1e-3) / 1e12);
        fmt_num(r->v[C_GBPS], 96, c.bytes / (t.ms_median * 1e-3) / 1e9);
    }
    fmt_int(r->v[C_PEAK], 96, (int64_t)peak);
    row_status(r, "ok", "%s", "");
    if (peak > pred + sweep_rss_slack()) {
        snprintf(a, sizeof a, "%.1f MiB", peak / 1048576.0);
        snprintf(b, sizeof b, "%.1f MiB", pred / 1048576.0);
        fprintf(stderr, "sweep: warning: %s measured peak %s > predicted %s\n", name, a, b);
        snprintf(r->reason, sizeof r->reason, "measured peak %s exceeds the prediction %s", a, b);
    }
    rc->ms = t.ms_median;
    rc->flop = c.flops;
    rc->bytes = c.bytes;
    snprintf(rc->name, sizeof rc->name, "%s", name);
    if (wall > o->budget_s) {
        snprintf(se->why, sizeof se->why, "L=%lld took %.1f s > %.0f s budget, so larger L is not run",
                 (long long)p->L, wall, o->budget_s);
        se->over = 1;
    }
}

/* ---- the command ----------------------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: longctx sweep [options]   (every option also works as `key = value` in a --file)\n"
            "  --mixer LIST       mixers (default: every kernel mixer in this build; model_* only when named)\n"
            "  --direction LIST   fwd, bwd, fwdbwd, decode (default fwd)\n"
            "  --backend B        cpu | cuda | auto (default auto: cuda when a device is present)\n"
            "  --L LIST           e.g. 4K..16M (powers of two) or 4K,64K,1M (default cuda 4K..16M, cpu 1K..16K)\n"
            "  --B --HQ --H --dh --W --S --K --dr --N LIST   shapes (defaults per mixer: see sweep_grid.c)\n"
            "  --out PATH         CSV (default results/kernels_<cpu|gpu name>.csv); rows are appended\n"
            "  --tag NAME         value of the `sweep` column (default L)\n"
            "  --budget-s S       per-point time budget; larger L of a series is skipped once a point\n"
            "                     takes longer (default 60)\n"
            "  --mem-cap SIZE     host memory cap for CPU points (default half of MemAvailable)\n"
            "  --warmup N --reps N  (default 2, 10)\n"
            "  --file PATH        read `key = value` lines (later flags override)\n"
            "  --dry-run          list the points and their NVTX range names, run nothing\n"
            "  --quiet            no progress lines on stderr\n");
}

/* results/kernels_<slug>.csv: the device name lowercased, non-alphanumerics as '-' */
static void default_out(const char *device, int backend, char *out, size_t cap) {
    char slug[96];
    size_t n = 0;
    const char *src = backend == BENCH_CUDA ? device : "cpu";
    for (const char *c = src; *c && n + 1 < sizeof slug; c++) {
        char ch = *c;
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) ch = '-';
        if (ch == '-' && (n == 0 || slug[n - 1] == '-')) continue;
        slug[n++] = ch;
    }
    while (n > 0 && slug[n - 1] == '-') n--;
    slug[n] = 0;
    snprintf(out, cap, "results/kernels_%s.csv", slug);
}

static void hms(double s, char *buf, size_t cap) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

int sweep_main(int argc, char **argv, const struct bench_family *const *fams, int nfam) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    struct sweep_opts o;
    sweep_opts_default(&o);
    if (sweep_parse_args(&o, argc, argv) != LC_OK) {
        fprintf(stderr, "longctx sweep: %s\n", lc_last_error());
        return 2;
    }
    const char *why = NULL;
    int ngpu = lc_cuda_device_count(&why);
    if (o.nbackends == 0) {
        o.nbackends = 1;
        o.backends[0] = ngpu > 0 ? BENCH_CUDA : BENCH_CPU;
    }
    for (int i = 0; i < o.nbackends; i++)
        if (o.backends[i] == BENCH_CUDA && ngpu <= 0) {
            fprintf(stderr, "longctx sweep: --backend cuda: %s\n", why ? why : "no CUDA device");
            return 2;
        }
    if (o.L.n == 0) sweep_parse_list(o.backends[0] == BENCH_CUDA ? "4K..16M" : "1K..16K", &o.L);
    int64_t npts = sweep_points(&o, fams, nfam, NULL, 0);
    if (npts < 0) {
        fprintf(stderr, "longctx sweep: %s\n", lc_last_error());
        return 2;
    }
    struct bench_point *pts = lc_malloc(sizeof *pts * (size_t)npts, "sweep points");
    if (!pts) {
        fprintf(stderr, "longctx sweep: %s\n", lc_last_error());
        return 1;
    }
    sweep_points(&o, fams, nfam, pts, npts);

    if (o.dry_run) {
        for (int64_t i = 0; i < npts; i++) {
            char name[160];
            sweep_point_name(&pts[i], name, sizeof name);
            const struct bench_family *f = NULL;
            for (int j = 0; j < nfam; j++)
                if (!strcmp(fams[j]->mixer, pts[i].mixer)) f = fams[j];
            printf("%s predicted_bytes=%zu\n", name, f ? f->predict_bytes(&pts[i]) : (size_t)0);
        }
        free(pts);
        return 0;
    }

    char sha[64], cpu[96], date[32];
    prov_git_sha(sha, sizeof sha);
    prov_cpu_model(cpu, sizeof cpu);
    const char *gpu = ngpu > 0 ? lc_device_name() : "cpu";
    if (!o.out[0]) default_out(gpu, o.backends[0], o.out, sizeof o.out);
    /* a fixed mmap threshold: glibc otherwise raises it after each large free, and the next
     * point's arrays would come from the (resident) heap, hiding them from the RSS measure */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    double host_cap = o.mem_cap_bytes > 0 ? o.mem_cap_bytes : 0.5 * mem_available_bytes();
    if (host_cap <= 0) host_cap = 4.0 * 1073741824.0;

    /* the CSV's folder (results/ by default) may not exist yet in a fresh checkout */
    char dir[sizeof o.out];
    snprintf(dir, sizeof dir, "%s", o.out);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        mkdir(dir, 0777); /* an error shows up when the file is opened */
    }
    struct csv_writer w;
    if (csv_open(&w, o.out, sweep_csv_cols, sweep_csv_ncols, sweep_csv_keycols) != LC_OK) {
        fprintf(stderr, "longctx sweep: %s\n", lc_last_error());
        free(pts);
        return 1;
    }
    struct series *se = calloc((size_t)npts, sizeof *se);
    struct recent *recents = calloc((size_t)npts, sizeof *recents);
    int nse = 0, nrc = 0;
    int64_t done = 0, present = 0, counts[4] = {0};
    double t_start = lc_now(), t_work = 0;
    int64_t nwork = 0;
    int rc = 0;
    struct row *r = malloc(sizeof *r);
    if (!se || !recents || !r) {
        fprintf(stderr, "longctx sweep: out of memory\n");
        rc = 1;
    }
    if (!o.quiet && rc == 0)
        fprintf(stderr, "sweep: %lld points -> %s (budget %.0f s per point)\n", (long long)npts, o.out, o.budget_s);
    for (int64_t i = 0; i < npts && rc == 0; i++) {
        const struct bench_point *p = &pts[i];
        const char *device = p->backend == BENCH_CUDA ? gpu : cpu;
        row_point(r, o.tag, p, device, sha);
        const char *keyvals[] = {r->v[C_SWEEP], r->v[C_MIXER], r->v[C_DIR], r->v[C_BACKEND], r->v[C_B],
                                 r->v[C_L], r->v[C_HQ], r->v[C_H], r->v[C_DH], r->v[C_W], r->v[C_S],
                                 r->v[C_K], r->v[C_DR], r->v[C_N], r->v[C_DEVICE]};
        done++;
        if (csv_has_key(&w, keyvals)) {
            present++;
            continue;
        }
        struct series *s = NULL;
        for (int k = 0; k < nse; k++)
            if (same_series(&se[k].key, p)) s = &se[k];
        if (!s) {
            s = &se[nse++];
            s->key = *p;
            s->key.L = 0;
        }
        struct recent *k = NULL;
        for (int j = 0; j < nrc; j++)
            if (!strcmp(recents[j].mixer, p->mixer) && !strcmp(recents[j].direction, p->direction) &&
                recents[j].backend == p->backend)
                k = &recents[j];
        if (!k) {
            k = &recents[nrc++];
            snprintf(k->mixer, sizeof k->mixer, "%s", p->mixer);
            snprintf(k->direction, sizeof k->direction, "%s", p->direction);
            k->backend = p->backend;
        }
        const struct bench_family *fam = NULL;
        for (int j = 0; j < nfam; j++)
            if (!strcmp(fams[j]->mixer, p->mixer)) fam = fams[j];
        double t0 = lc_now();
        run_point(&o, fam, p, s, k, host_cap, r);
        t_work += lc_now() - t0;
        nwork++;
        prov_utc_now(date, sizeof date);
        snprintf(r->v[C_DATE], 96, "%s", date);
        if (csv_append(&w, r->cells) != LC_OK) {
            fprintf(stderr, "longctx sweep: %s\n", lc_last_error());
            rc = 1;
            break;
        }
        const char *stv = r->v[C_STATUS];
        counts[!strcmp(stv, "ok") ? 0 : !strcmp(stv, "oom") ? 1 : !strcmp(stv, "skipped") ? 2 : 3]++;
        if (!o.quiet) {
            char name[160], el[32], eta[32];
            sweep_point_name(p, name, sizeof name);
            double elapsed = lc_now() - t_start;
            hms(elapsed, el, sizeof el);
            hms(t_work / (double)nwork * (double)(npts - done), eta, sizeof eta);
            if (!strcmp(stv, "ok"))
                fprintf(stderr, "sweep: point %lld/%lld %s  %s ms  %s TFLOP/s  %s GB/s  elapsed %s  ETA %s\n",
                        (long long)done, (long long)npts, name, r->v[C_MS], r->v[C_TFLOPS], r->v[C_GBPS], el, eta);
            else
                fprintf(stderr, "sweep: point %lld/%lld %s  %s: %s  elapsed %s  ETA %s\n", (long long)done,
                        (long long)npts, name, stv, r->reason, el, eta);
        }
    }
    csv_close(&w);
    if (!o.quiet && rc == 0)
        fprintf(stderr, "sweep: done: %lld ok, %lld oom, %lld skipped, %lld error, %lld already in %s\n",
                (long long)counts[0], (long long)counts[1], (long long)counts[2], (long long)counts[3],
                (long long)present, o.out);
    free(r);
    free(recents);
    free(se);
    free(pts);
    return rc;
}

int cmd_sweep(int argc, char **argv) {
    const struct bench_family *fams[SWEEP_MAX_FAMILIES];
    int n = bench_registry(fams, SWEEP_MAX_FAMILIES);
    return sweep_main(argc, argv, fams, n);
}
