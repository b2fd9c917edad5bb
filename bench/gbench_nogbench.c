/* gbench_nogbench.c — the gbench.h API in a build without Google Benchmark: every call fails
 * with a message saying how to get it (libbenchmark-dev), so `longctx bench` explains itself. */
#include "gbench.h"

static lc_status missing(void) {
    return lc_errorf(LC_EUNSUPPORTED, "this build has no Google Benchmark: install libbenchmark-dev "
                                      "(scripts/setup.sh test) and rebuild");
}

int lc_gb_available(void) { return 0; }
int lc_gb_register(const char *name, lc_gb_fn fn, void *ctx, int warmup) {
    (void)name, (void)fn, (void)ctx, (void)warmup;
    missing();
    return -1;
}
lc_status lc_gb_counter(int id, const char *name, double per_iter) {
    (void)id, (void)name, (void)per_iter;
    return missing();
}
lc_status lc_gb_run(int argc, char **argv) {
    (void)argc, (void)argv;
    return missing();
}
lc_status lc_gb_result(int id, struct lc_gb_result *r) {
    (void)id, (void)r;
    return missing();
}
void lc_gb_clear(void) {}
