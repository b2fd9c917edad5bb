/* registry.c — the list of kernel families the sweep and `longctx bench` know.
 *
 * Each family file bench/bench_<family>.c defines bench_families_<family>() (bench.h). The
 * families are written on separate branches; a family is listed when its source file is in
 * the tree (checked with __has_include at compile time), so a tree holding only some of them
 * still builds and links. The Makefile rebuilds this file when a bench/bench_*.c appears.
 */
#include <string.h>

#include "bench.h"
#include "sweep.h"

#if __has_include("bench_attention.c") || __has_include("bench_attn.c")
#define HAVE_ATTENTION 1
#endif
#if __has_include("bench_hsa.c")
#define HAVE_HSA 1
#endif
#if __has_include("bench_mamba.c")
#define HAVE_MAMBA 1
#endif
#if __has_include("bench_model.c")
#define HAVE_MODEL 1
#endif

int bench_registry(const struct bench_family **out, int max) {
    const struct bench_family *(*lists[4])(int *) = {0};
    int nl = 0, n = 0;
#ifdef HAVE_ATTENTION
    lists[nl++] = bench_families_attention;
#endif
#ifdef HAVE_HSA
    lists[nl++] = bench_families_hsa;
#endif
#ifdef HAVE_MAMBA
    lists[nl++] = bench_families_mamba;
#endif
#ifdef HAVE_MODEL
    lists[nl++] = bench_families_model;
#endif
    for (int l = 0; l < nl; l++) {
        int k = 0;
        const struct bench_family *f = lists[l](&k);
        for (int i = 0; i < k && n < max; i++) out[n++] = &f[i];
    }
    return n;
}
