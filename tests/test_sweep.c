/* test_sweep.c — the sweep driver against small CPU families defined here (and every real
 * family of the build for the memory check): grid parsing, flag and sweep-file errors,
 * resume after a kill mid-sweep (no duplicate, no lost row), oom and time-budget rows, and
 * memory prediction >= measured peak RSS on the C backend. */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "csv.h"
#include "sweep.h"
#include "test.h"

/* ---- test families ---- */
struct saxpy { float *x, *y; int64_t n; int64_t sleep_us; };

static lc_status saxpy_run(void *ctx) {
    struct saxpy *s = ctx;
    for (int64_t i = 0; i < s->n; i++) s->y[i] = 1.5f * s->x[i] + s->y[i];
    if (s->sleep_us) {
        struct timespec ts = {s->sleep_us / 1000000, (s->sleep_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    return LC_OK;
}
static void saxpy_destroy(void *ctx) {
    struct saxpy *s = ctx;
    free(s->x);
    free(s->y);
    free(s);
}
static int64_t saxpy_n(const struct bench_point *p) { return p->B * p->L * p->HQ * p->dh; }
static size_t saxpy_predict(const struct bench_point *p) { return sizeof(struct saxpy) + 2 * sizeof(float) * (size_t)saxpy_n(p); }
static size_t liar_predict(const struct bench_point *p) { return saxpy_predict(p) / 4; }
static lc_status saxpy_make_common(const struct bench_point *p, struct bench_case *c, int64_t sleep_us) {
    struct saxpy *s = lc_calloc(1, sizeof *s, "saxpy");
    if (!s) return LC_ENOMEM;
    s->n = saxpy_n(p);
    s->sleep_us = sleep_us;
    s->x = lc_malloc(sizeof(float) * (size_t)s->n, "saxpy x");
    s->y = lc_malloc(sizeof(float) * (size_t)s->n, "saxpy y");
    if (!s->x || !s->y) {
        saxpy_destroy(s);
        return LC_ENOMEM;
    }
    lc_rng r;
    lc_rng_seed(&r, 7);
    lc_fill_normal(&r, s->x, (size_t)s->n, 1);
    lc_fill_normal(&r, s->y, (size_t)s->n, 1);
    c->ctx = s;
    c->run = saxpy_run;
    c->destroy = saxpy_destroy;
    c->flops = 2.0 * (double)s->n;
    c->bytes = 12.0 * (double)s->n;
    c->alloc_bytes = saxpy_predict(p);
    return LC_OK;
}
static lc_status saxpy_make(const struct bench_point *p, struct bench_case *c) { return saxpy_make_common(p, c, 0); }
/* 20 ms per run, and 1 us per token so the time grows with L */
static lc_status slow_make(const struct bench_point *p, struct bench_case *c) { return saxpy_make_common(p, c, 20000 + p->L); }
static lc_status odd_make(const struct bench_point *p, struct bench_case *c) {
    (void)c;
    if (p->L % 3) return lc_errorf(LC_EUNSUPPORTED, "odd: L = %lld must be a multiple of 3", (long long)p->L);
    return saxpy_make_common(p, c, 0);
}

static const struct bench_family fam_saxpy = {"saxpy", saxpy_predict, saxpy_make};
static const struct bench_family fam_slow = {"slow", saxpy_predict, slow_make};
static const struct bench_family fam_liar = {"liar", liar_predict, saxpy_make};
static const struct bench_family fam_odd = {"odd", saxpy_predict, odd_make};
static const struct bench_family *const fams[] = {&fam_saxpy, &fam_slow, &fam_liar, &fam_odd};

/* ---- helpers ---- */
static int run_sweep(const char *args) {
    char buf[1024], *argv[64];
    int argc = 0;
    snprintf(buf, sizeof buf, "sweep %s", args);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && argc < 63; t = strtok_r(NULL, " ", &save)) argv[argc++] = t;
    argv[argc] = NULL;
    return sweep_main(argc, argv, fams, 4);
}

struct table { int n; char cell[64][32][128]; };
static int col(const char *name) {
    for (int i = 0; i < sweep_csv_ncols; i++)
        if (!strcmp(sweep_csv_cols[i], name)) return i;
    return -1;
}
static int read_table(const char *path, struct table *t) {
    t->n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096], buf[4096], *cells[64];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        if (first) { first = 0; continue; }
        int nc = csv_split(line, buf, sizeof buf, cells, 64);
        if (nc != sweep_csv_ncols || t->n >= 64) { fclose(f); return -1; }
        for (int i = 0; i < nc; i++) snprintf(t->cell[t->n][i], 128, "%s", cells[i]);
        t->n++;
    }
    fclose(f);
    return t->n;
}
static const char *get(const struct table *t, int row, const char *name) { return t->cell[row][col(name)]; }
static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static struct table tab;

int main(void) {
    char dir[] = "/tmp/longctx_test_sweep_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char out[256], args[1024];

    t_begin("sizes_and_lists");
    {
        int64_t v;
        T_OK(sweep_parse_size("4K", &v));
        T_CHECK(v == 4096, "4K = %lld", (long long)v);
        T_OK(sweep_parse_size("16M", &v));
        T_CHECK(v == 16777216, "16M = %lld", (long long)v);
        T_ERR(sweep_parse_size("4Q", &v), "'4Q' is not a size");
        struct sweep_list l;
        T_OK(sweep_parse_list("4K..16M", &l));
        T_CHECK(l.n == 13 && l.v[0] == 4096 && l.v[12] == 16777216, "4K..16M gave %d values", l.n);
        T_OK(sweep_parse_list("1M, 4K,64K,4K", &l));
        T_CHECK(l.n == 3 && l.v[0] == 4096 && l.v[1] == 65536 && l.v[2] == 1048576, "list not sorted/deduplicated");
        T_ERR(sweep_parse_list("16M..4K", &l), "must go from a positive size up");
    }

    t_begin("grid_dims_per_mixer");
    {
        static const struct bench_family f_swa = {"swa", saxpy_predict, saxpy_make};
        static const struct bench_family f_dense = {"dense", saxpy_predict, saxpy_make};
        static const struct bench_family f_hsa = {"hsa_attend", saxpy_predict, saxpy_make};
        const struct bench_family *g[] = {&f_swa, &f_dense, &f_hsa};
        struct sweep_opts o;
        sweep_opts_default(&o);
        T_OK(sweep_set(&o, "L", "4K..16K", "t"));
        T_OK(sweep_set(&o, "W", "512,1K", "t"));
        T_OK(sweep_set(&o, "K", "4,8,16", "t"));
        struct bench_point p[64];
        int64_t n = sweep_points(&o, g, 3, p, 64);
        /* swa 2 W x 3 L, dense 3 L (W ignored), hsa 3 K x 3 L */
        T_CHECK(n == 6 + 3 + 9, "%lld points, expected 18", (long long)n);
        int ok = 1;
        for (int64_t i = 0; i < n && i < 64; i++) {
            if (!strcmp(p[i].mixer, "dense")) ok &= p[i].W == 0 && p[i].K == 0 && p[i].HQ == 16 && p[i].dh == 128;
            if (!strcmp(p[i].mixer, "swa")) ok &= (p[i].W == 512 || p[i].W == 1024) && p[i].K == 0;
            if (!strcmp(p[i].mixer, "hsa_attend")) ok &= p[i].W == 0 && p[i].K >= 4 && p[i].S == 64;
        }
        T_CHECK(ok, "a point carries a dim its mixer does not use, or lacks a default");
        T_CHECK(p[0].L == 4096 && p[1].L == 8192 && p[2].L == 16384 && p[0].W == p[2].W, "L is not innermost ascending");
        sweep_set(&o, "mixer", "swa,mamba_scan", "t");
        T_CHECK(sweep_points(&o, g, 3, p, 64) == -1 && strstr(lc_last_error(), "mixer 'mamba_scan' is not in this build"),
                "unknown mixer not named: %s", lc_last_error());
    }

    t_begin("flag_and_file_errors");
    {
        struct sweep_opts o;
        sweep_opts_default(&o);
        char *a1[] = {"sweep", "--L", "4K..2Q"};
        T_ERR(sweep_parse_args(&o, 3, a1), "--L: L = '4K..2Q': '2Q' is not a size");
        char *a2[] = {"sweep", "--reps"};
        T_ERR(sweep_parse_args(&o, 2, a2), "option --reps needs a value");
        char *a3[] = {"sweep", "--colour", "red"};
        T_ERR(sweep_parse_args(&o, 3, a3), "--colour: colour = 'red': unknown key");
        char *a4[] = {"sweep", "--direction=sideways"};
        T_ERR(sweep_parse_args(&o, 2, a4), "unknown direction 'sideways'");
        char *a5[] = {"sweep", "L", "4K"};
        T_ERR(sweep_parse_args(&o, 3, a5), "unexpected argument 'L'");
        char file[300];
        snprintf(file, sizeof file, "%s/bad.sweep", dir);
        FILE *f = fopen(file, "w");
        fputs("# a sweep file\nmixer = saxpy\n\nL = 4K..64K\nreps 3\n", f);
        fclose(f);
        char msg[600];
        snprintf(msg, sizeof msg, "sweep file %s line 5: 'reps 3' is not a `key = value` line", file);
        T_ERR(sweep_parse_file(&o, file), msg);
        f = fopen(file, "w");
        fputs("mixer = saxpy\nbudget_s = -1\n", f);
        fclose(f);
        snprintf(msg, sizeof msg, "sweep file %s line 2: budget_s = '-1': must be > 0", file);
        T_ERR(sweep_parse_file(&o, file), msg);
        f = fopen(file, "w");
        fputs("mixer = saxpy\nL = 1K,2K\nHQ = 2\nreps = 3\n", f);
        fclose(f);
        sweep_opts_default(&o);
        if (T_OK(sweep_parse_file(&o, file)))
            T_CHECK(o.L.n == 2 && o.HQ.v[0] == 2 && o.reps == 3 && !strcmp(o.mixers[0], "saxpy"), "file values not applied");
        snprintf(out, sizeof out, "%s/never.csv", dir);
        snprintf(args, sizeof args, "--mixer saxpy --L 1K --backend tpu --out %s", out);
        T_CHECK(run_sweep(args) == 2 && access(out, F_OK) != 0, "a bad flag did not stop the sweep before writing");
    }

    t_begin("rows_status_oom_unsupported");
    {
        snprintf(out, sizeof out, "%s/a.csv", dir);
        snprintf(args, sizeof args, "--mixer saxpy,odd --L 1K..4K --HQ 2 --reps 3 --warmup 1 --backend cpu --quiet --out %s", out);
        T_CHECK(run_sweep(args) == 0, "sweep failed: %s", lc_last_error());
        /* a 64 KiB host cap: saxpy at L=4K, HQ=2, dh=64 needs 4 MiB */
        snprintf(args, sizeof args, "--mixer saxpy --L 4K --HQ 2 --tag cap --mem-cap 64K --backend cpu --quiet --out %s", out);
        T_CHECK(run_sweep(args) == 0, "sweep failed: %s", lc_last_error());
        int n = read_table(out, &tab);
        if (T_CHECK(n == 7, "%d rows, expected 3 saxpy + 3 odd + 1 capped", n)) {
            for (int i = 0; i < 3; i++) {
                T_CHECK(!strcmp(get(&tab, i, "status"), "ok") && atof(get(&tab, i, "ms")) > 0 &&
                            atof(get(&tab, i, "gbps")) > 0 && !strcmp(get(&tab, i, "reps"), "3"),
                        "row %d: status %s ms %s", i, get(&tab, i, "status"), get(&tab, i, "ms"));
                T_CHECK(!strcmp(get(&tab, i, "backend"), "cpu") && strlen(get(&tab, i, "device")) > 0 &&
                            strlen(get(&tab, i, "git_sha")) > 0 && strlen(get(&tab, i, "date")) == 20,
                        "provenance missing in row %d", i);
            }
            T_CHECK(!strcmp(get(&tab, 3, "status"), "skipped") && strstr(get(&tab, 3, "reason"), "must be a multiple of 3") &&
                        tab.cell[3][col("ms")][0] == 0,
                    "unsupported point: %s %s", get(&tab, 3, "status"), get(&tab, 3, "reason"));
            T_CHECK(!strcmp(get(&tab, 6, "status"), "oom") && strstr(get(&tab, 6, "reason"), "host memory cap") &&
                        !strcmp(get(&tab, 6, "sweep"), "cap"),
                    "capped point: %s %s", get(&tab, 6, "status"), get(&tab, 6, "reason"));
            T_CHECK(atoll(get(&tab, 0, "L")) == 1024 && atoll(get(&tab, 2, "L")) == 4096, "L not plain numbers");
        }
    }

    t_begin("time_budget_skips_larger_L");
    {
        snprintf(out, sizeof out, "%s/budget.csv", dir);
        /* each run sleeps 20 ms + L us; a 0.15 s budget with 1 warm-up + 5 reps is exceeded early */
        snprintf(args, sizeof args, "--mixer slow --L 1K..64K --HQ 1 --reps 5 --warmup 1 --budget-s 0.15 --backend cpu --quiet --out %s", out);
        T_CHECK(run_sweep(args) == 0, "sweep failed");
        int n = read_table(out, &tab), ok = 0, skipped = 0, order = 1;
        for (int i = 0; i < n; i++) {
            int s = !strcmp(get(&tab, i, "status"), "skipped");
            if (s) {
                skipped++;
                T_CHECK(strstr(get(&tab, i, "reason"), "budget") != NULL, "reason: %s", get(&tab, i, "reason"));
            } else {
                ok++;
                order &= skipped == 0;
            }
        }
        T_CHECK(n == 7 && ok >= 1 && skipped >= 1 && order, "%d rows: %d ok, %d skipped (ok must come first)", n, ok, skipped);
    }

    t_begin("resume_after_kill");
    {
        snprintf(out, sizeof out, "%s/resume.csv", dir);
        snprintf(args, sizeof args, "--mixer slow --L 1K..32K --HQ 1 --reps 2 --warmup 1 --backend cpu --quiet --out %s", out);
        pid_t pid = fork();
        if (pid == 0) _exit(run_sweep(args));
        /* kill it once two rows are written, mid-way through the third point */
        double t0 = lc_now();
        while (count_lines(out) < 3 && lc_now() - t0 < 20) usleep(2000);
        usleep(30000);
        kill(pid, SIGKILL);
        int wst = 0;
        waitpid(pid, &wst, 0);
        int before = count_lines(out) - 1;
        T_CHECK(WIFSIGNALED(wst) && before >= 2 && before < 6, "child not killed mid-sweep (%d rows)", before);
        /* a row cut in half by the kill */
        FILE *f = fopen(out, "ab");
        fputs("L,slow,fwd,cpu,1,99", f);
        fclose(f);
        T_CHECK(run_sweep(args) == 0, "rerun failed");
        int n = read_table(out, &tab);
        T_CHECK(n == 6, "%d rows after the rerun, expected 6 (one per L)", n);
        int seen[6] = {0};
        for (int i = 0; i < n; i++) {
            long long L = atoll(get(&tab, i, "L"));
            for (int k = 0; k < 6; k++) seen[k] += L == (1024LL << k);
        }
        for (int k = 0; k < 6; k++) T_CHECK(seen[k] == 1, "L=%lld appears %d times", 1024LL << k, seen[k]);
        /* a third run has nothing to do */
        T_CHECK(run_sweep(args) == 0 && count_lines(out) == 7, "a complete sweep was not skipped on rerun");
    }

    t_begin("memory_prediction_never_under");
    {
        /* The test's families first: the liar must be caught, so the measurement can fail. */
        snprintf(out, sizeof out, "%s/mem_test.csv", dir);
        snprintf(args, sizeof args, "--mixer saxpy,liar --L 16K,64K --HQ 4 --reps 1 --warmup 0 --backend cpu --quiet --out %s", out);
        T_CHECK(run_sweep(args) == 0, "sweep failed");
        int n = read_table(out, &tab);
        for (int i = 0; i < n; i++) {
            double pred = atof(get(&tab, i, "predicted_bytes")), peak = atof(get(&tab, i, "peak_mem_bytes"));
            if (!strcmp(get(&tab, i, "mixer"), "saxpy"))
                T_CHECK(peak <= pred + 1048576 && peak > 0.5 * pred, "saxpy L=%s: peak %.0f vs predicted %.0f",
                        get(&tab, i, "L"), peak, pred);
            else
                T_CHECK(peak > pred, "the under-predicting family was not caught: peak %.0f, predicted %.0f", peak, pred);
        }
        T_CHECK(n == 4, "%d rows", n);
    }

    t_begin("memory_prediction_registered_families");
    {
        const struct bench_family *reg[SWEEP_MAX_FAMILIES];
        int nr = bench_registry(reg, SWEEP_MAX_FAMILIES);
        if (nr == 0) {
            t_skip("no kernel family in this build yet");
        } else {
            snprintf(out, sizeof out, "%s/mem_reg.csv", dir);
            char *argv[] = {"sweep", "--L", "4K,16K", "--HQ", "4", "--H", "2", "--dh", "32", "--reps", "1", "--warmup", "0",
                            "--backend", "cpu", "--budget-s", "4", "--quiet", "--out", out, NULL};
            T_CHECK(sweep_main(20, argv, reg, nr) == 0, "sweep over the registered families failed");
            int n = read_table(out, &tab), measured = 0;
            for (int i = 0; i < n; i++) {
                if (strcmp(get(&tab, i, "status"), "ok")) continue;
                measured++;
                double pred = atof(get(&tab, i, "predicted_bytes")), peak = atof(get(&tab, i, "peak_mem_bytes"));
                /* 1 MiB slack: page rounding, malloc headers, the OpenMP runtime's first touch */
                T_CHECK(peak <= pred + 1048576, "%s %s L=%s: measured peak %.0f > predicted %.0f", get(&tab, i, "mixer"),
                        get(&tab, i, "direction"), get(&tab, i, "L"), peak, pred);
            }
            T_CHECK(measured > 0, "no registered family point ran on the CPU (%d rows)", n);
        }
    }

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
