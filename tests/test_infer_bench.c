/* test_infer_bench.c — the model benchmark family (bench/bench_model.c) on the cpu: every model_*
 * mixer makes a fwd (full prefill) and a decode case at a small L, runs it, reports positive
 * FLOPs and bytes, allocates no more than its prediction, and refuses what it does not support
 * (B > 1, a backward direction, an unknown mixer) with a message naming it. Also: the sweep's
 * default mixer list leaves the model points out (they take seconds each), naming one includes it. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "sweep.h"
#include "test.h"

static struct bench_point point(const char *mixer, const char *dir, int64_t B, int64_t L) {
    struct bench_point p;
    memset(&p, 0, sizeof p);
    snprintf(p.mixer, sizeof p.mixer, "%s", mixer);
    snprintf(p.direction, sizeof p.direction, "%s", dir);
    p.backend = BENCH_CPU;
    p.B = B;
    p.L = L;
    return p;
}

int main(void) {
    int n = 0;
    const struct bench_family *f = bench_families_model(&n);
    t_begin("model family: fwd and decode cases run, within their predicted bytes");
    T_CHECK(n == 3, "%d model mixers, want 3", n);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < 2; d++) {
            struct bench_point p = point(f[i].mixer, d ? "decode" : "fwd", 1, 80); /* > S: a chunk completes */
            struct bench_case c;
            memset(&c, 0, sizeof c);
            if (!T_OK(f[i].make(&p, &c))) continue;
            const size_t pred = f[i].predict_bytes(&p);
            T_CHECK(c.flops > 0 && c.bytes > 0, "%s %s: flops %g bytes %g", p.mixer, p.direction, c.flops, c.bytes);
            T_CHECK(pred >= c.alloc_bytes && c.alloc_bytes > 0, "%s %s: predicted %zu < allocated %zu", p.mixer, p.direction, pred,
                    c.alloc_bytes);
            T_OK(c.run(c.ctx));
            c.destroy(c.ctx);
        }
    t_begin("model family: unsupported points are refused by name");
    struct bench_case c;
    struct bench_point p = point("model_swa_hsa", "fwd", 2, 64);
    T_ERR(f[0].make(&p, &c), "B = 2");
    p = point("model_swa_hsa", "bwd", 1, 64);
    T_ERR(f[0].make(&p, &c), "bwd");
    p = point("model_nope", "fwd", 1, 64);
    T_ERR(f[0].make(&p, &c), "model_nope");
    t_begin("the sweep's default mixers leave model points out; naming one includes it");
    const struct bench_family *reg[SWEEP_MAX_FAMILIES];
    const int nr = bench_registry(reg, SWEEP_MAX_FAMILIES);
    struct sweep_opts o;
    sweep_opts_default(&o);
    T_OK(sweep_set(&o, "L", "1K", "test"));
    struct bench_point pts[256];
    int64_t np = sweep_points(&o, reg, nr, pts, 256), model = 0;
    for (int64_t i = 0; i < np && i < 256; i++) model += !strncmp(pts[i].mixer, "model_", 6);
    T_CHECK(model == 0, "%lld model points in the default grid", (long long)model);
    T_OK(sweep_set(&o, "mixer", "model_mamba", "test"));
    np = sweep_points(&o, reg, nr, pts, 256);
    T_CHECK(np == 1 && !strcmp(pts[0].mixer, "model_mamba") && pts[0].HQ == 0 && pts[0].B == 1,
            "naming model_mamba: %lld points, first %s HQ %lld", (long long)np, np > 0 ? pts[0].mixer : "-",
            (long long)(np > 0 ? pts[0].HQ : -1));
    return t_finish();
}
