/* test_gbench.c — the Google Benchmark shim: a registered C function runs, its manual times
 * come back as the result, counters reach the JSON output, a failing function is skipped with
 * its message, and a bad flag is named. Skipped in a build without Google Benchmark. */
#include <unistd.h>

#include "common.h"
#include "gbench.h"
#include "test.h"

struct ctx { int calls; double seconds; float acc; };

/* Real work (so the wall clock moves) but a fixed reported time, so the result is exact. */
static lc_status fixed_time(void *p, double *seconds) {
    struct ctx *c = p;
    c->calls++;
    for (int i = 0; i < 1000; i++) c->acc += 1e-3f * (float)(i % 7);
    *seconds = c->seconds;
    return LC_OK;
}

static lc_status fails(void *p, double *seconds) {
    struct ctx *c = p;
    c->calls++;
    *seconds = 0;
    return lc_errorf(LC_ENOMEM, "out of device memory at L = 16777216");
}

int main(void) {
    t_begin("shim_runs_a_c_benchmark");
    if (!lc_gb_available()) {
        T_ERR(lc_gb_run(0, NULL), "libbenchmark-dev");
        t_skip("this build has no Google Benchmark (libbenchmark-dev)");
        return t_finish();
    }
    char json[] = "/tmp/longctx_test_gbench_XXXXXX";
    int fd = mkstemp(json);
    close(fd);
    struct ctx a = {0, 0.002, 0}, b = {0, 0.0005, 0}, bad = {0, 0, 0};
    int ia = lc_gb_register("fixed_2ms", fixed_time, &a, 3);
    int ib = lc_gb_register("fixed_half_ms", fixed_time, &b, 0);
    int ibad = lc_gb_register("failing", fails, &bad, 0);
    T_CHECK(ia >= 0 && ib >= 0 && ibad >= 0, "register failed: %s", lc_last_error());
    T_OK(lc_gb_counter(ia, "TFLOP/s", 4e9 / 1e12)); /* 4 GFLOP per 2 ms iteration = 2 TFLOP/s */
    char out_flag[128];
    snprintf(out_flag, sizeof out_flag, "--benchmark_out=%s", json);
    char *argv[] = {"test_gbench", out_flag, "--benchmark_out_format=json", NULL};
    T_OK(lc_gb_run(3, argv));
    struct lc_gb_result r;
    if (T_OK(lc_gb_result(ia, &r))) {
        T_CHECK(!r.skipped && r.iterations >= 1 && fabs(r.seconds_mean - 0.002) < 1e-12,
                "fixed_2ms: %lld iterations, mean %.9f s (expected 0.002)", (long long)r.iterations, r.seconds_mean);
        T_CHECK(a.calls >= r.iterations + 3, "warm-up not run: %d calls for %lld iterations", a.calls, (long long)r.iterations);
        /* manual time drives the iteration count: ~0.5 s of reported time at 2 ms each */
        T_CHECK(r.iterations >= 100, "only %lld iterations for 2 ms manual time", (long long)r.iterations);
    }
    if (T_OK(lc_gb_result(ib, &r)))
        T_CHECK(!r.skipped && fabs(r.seconds_mean - 0.0005) < 1e-12, "fixed_half_ms mean %.9f", r.seconds_mean);
    if (T_OK(lc_gb_result(ibad, &r)))
        T_CHECK(r.skipped && strstr(r.message, "L = 16777216") && bad.calls == 1,
                "failing benchmark: skipped %d, message '%s', %d calls", r.skipped, r.message, bad.calls);

    t_begin("json_output");
    {
        char *s = t_read_file(json, NULL);
        T_CHECK(s && strstr(s, "\"fixed_2ms/manual_time\"") && strstr(s, "\"TFLOP/s\"") && strstr(s, "out of device memory"),
                "JSON lacks the benchmark, its counter or the error: %.400s", s ? s : "(no file)");
        /* the counter is per second of manual time: 4e-3 TFLOP per 2 ms = 2 TFLOP/s */
        const char *c = s ? strstr(s, "\"TFLOP/s\":") : NULL;
        T_CHECK(c && fabs(atof(c + 10) - 2.0) < 1e-9, "TFLOP/s counter: %.40s", c ? c : "(none)");
        free(s);
        unlink(json);
    }

    t_begin("bad_flag_named");
    {
        char *bad_argv[] = {"test_gbench", "--benchmark_min_time=0.01", "--colour=red", NULL};
        T_ERR(lc_gb_run(3, bad_argv), "'--colour=red'");
    }
    lc_gb_clear();
    t_begin("clear");
    T_ERR(lc_gb_result(0, &r), "no benchmark 0");
    return t_finish();
}
