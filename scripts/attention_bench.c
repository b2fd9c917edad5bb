/* attention_bench.c — timing driver for the attention bench family (bench/bench_attention.c),
 * kept out of `make` (it is not a test and takes minutes). Build it against the library:
 *   gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -DLC_CUDA=1 -Ikernels -Ibench -I$CUDA/include \
 *       scripts/attention_bench.c build/liblongctx.a -L$CUDA/lib64 -lcudart -lcublas -lm -lstdc++
 * Usage: attention_bench OUT.csv GIT_SHA POINT...   with POINT = mixer,dir,B,L,HQ,H,dh,W[,backend]
 * (backend cuda (default) or cpu). Appends one CSV row per point (header when the file is new):
 * times with bench_time (CUDA events, L2 flushed, median), FLOPs and bytes from the family.
 * A point that cannot run is a row with status oom / error and the reason.
 * attention_bench --stages OUT.csv GIT_SHA POINT...  (attn9, attn11; bwd points, CUDA, dh 64): each
 * point is timed five times, with LC_ATTN_BWD_STAGES = 15 (the whole backward), 1 (the memset of the
 * fp32 dQ workspace), 2 (the dot kernel: O, dO in, packed (lse, D) out), 4 (the main kernel) and 8
 * (attn_bwd_dq_kernel: fp32 dQ in, bf16 dq out), and prints ms and GB/s per
 * stage (bytes each stage must move: memset 4 B, dot 2 * 2 B + 12 B / row, dq 4 + 2 B per element)
 * and the sum of the stages against the whole. Only the whole (15) gives correct gradients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "device.h"

static const char *HEADER =
    "kernel,direction,backend,B,L,HQ,H,dh,W,ms,ms_min,ms_max,reps,tflops,gbps,device,git_sha,date,status,anchor,note\n";

/* the stage masks of --stages and their names */
static const int STAGE_MASK[5] = {15, 1, 2, 4, 8};
static const char *STAGE_NAME[5] = {"all", "memset", "dot", "main", "dq"};

/* bytes stage si must move for point p (0: not a bandwidth stage) */
static double stage_bytes(const struct bench_point *p, int si) {
    const double rows = (double)p->B * (double)p->L * (double)p->HQ, e = rows * (double)p->dh;
    switch (si) {
    case 1: return 4 * e;                   /* fp32 zeros */
    case 2: return 2 * 2 * e + 12 * rows;   /* O, dO in; lse in, (lse, D) out */
    case 4: return 4 * e + 2 * e;           /* fp32 in, bf16 out */
    default: return 0;
    }
}

int main(int argc, char **argv) {
    int stages = 0;
    if (argc > 1 && !strcmp(argv[1], "--stages")) {
        stages = 1;
        argv++, argc--;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: %s OUT.csv GIT_SHA mixer,dir,B,L,HQ,H,dh,W[,cpu|cuda] ...\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "a+");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    if (ftell(f) == 0) fputs(HEADER, f);
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    int nf = 0;
    const struct bench_family *fam = bench_families_attention(&nf);
    int bad = 0;
    for (int i = 3; i < argc; i++)
    for (int si = 0; si < (stages ? 5 : 1); si++) {
        if (stages) {
            char mv[8];
            snprintf(mv, sizeof mv, "%d", STAGE_MASK[si]);
            setenv("LC_ATTN_BWD_STAGES", mv, 1);
        }
        struct bench_point p;
        memset(&p, 0, sizeof p);
        char mixer[24] = "", dir[8] = "", be[8] = "cuda";
        long long B, L, HQ, H, dh, W;
        if (sscanf(argv[i], "%23[^,],%7[^,],%lld,%lld,%lld,%lld,%lld,%lld,%7s", mixer, dir, &B, &L, &HQ, &H, &dh, &W, be) < 8) {
            fprintf(stderr, "bad point '%s'\n", argv[i]);
            bad = 1;
            continue;
        }
        snprintf(p.mixer, sizeof p.mixer, "%s", mixer);
        snprintf(p.direction, sizeof p.direction, "%s", dir);
        p.backend = strcmp(be, "cpu") == 0 ? BENCH_CPU : BENCH_CUDA;
        p.B = B, p.L = L, p.HQ = HQ, p.H = H, p.dh = dh, p.W = W;
        const struct bench_family *fm = NULL;
        for (int j = 0; j < nf; j++)
            if (!strcmp(fam[j].mixer, mixer)) fm = &fam[j];
        const char *status = "ok";
        char note[256] = "";
        struct bench_timing t = {0};
        struct bench_case c;
        memset(&c, 0, sizeof c);
        size_t fr = 0, tot = 0;
        if (!fm) {
            status = "error";
            snprintf(note, sizeof note, "unknown mixer %s", mixer);
        } else if (p.backend == BENCH_CUDA && lc_cuda_mem_info(&fr, &tot) == LC_OK &&
                   fm->predict_bytes(&p) + ((size_t)300 << 20) > fr) {
            status = "oom";
            snprintf(note, sizeof note, "needs %zu bytes; %zu free", fm->predict_bytes(&p), fr);
        } else if (fm->make(&p, &c) != LC_OK) {
            status = "error";
            snprintf(note, sizeof note, "%s", lc_last_error());
        } else {
            /* a quick first estimate decides the repeat count: long points get fewer repeats */
            double est_ms = c.flops / 250e12 * 1e3;
            if (p.backend == BENCH_CPU) est_ms = c.flops / 20e9 * 1e3;
            int reps = est_ms > 300 ? 3 : est_ms > 30 ? 5 : 15;
            if (bench_time(&c, p.backend, 1, reps, &t) != LC_OK) {
                status = "error";
                snprintf(note, sizeof note, "%s", lc_last_error());
            }
        }
        if (!strcmp(status, "ok")) { /* tuning overrides in force, so rows of different variants stay apart */
            static const char *envs[] = {"LC_ATTN_WG", "LC_ATTN_WGB", "LC_ATTN_FWD", "LC_ATTN_BWD", "LC_ATTN_WGMMA",
                                         "LC_ATTN_BWD_STAGES"};
            for (int e = 0; e < 6; e++) {
                const char *v = getenv(envs[e]);
                if (v && *v) snprintf(note + strlen(note), sizeof note - strlen(note), "%s%s=%s", *note ? " " : "", envs[e], v);
            }
        }
        for (char *s = note; *s; s++)
            if (*s == ',' || *s == '\n') *s = ';';
        const double tf = t.ms_median > 0 ? c.flops / (t.ms_median * 1e-3) / 1e12 : 0;
        const double gb = t.ms_median > 0 ? c.bytes / (t.ms_median * 1e-3) / 1e9 : 0;
        fprintf(f, "%s,%s,%s,%lld,%lld,%lld,%lld,%lld,%lld,%.4f,%.4f,%.4f,%d,%.5g,%.5g,%s,%s,%s,%s,,%s\n", mixer, dir,
                p.backend == BENCH_CPU ? "cpu" : "cuda", B, L, HQ, H, dh, W, t.ms_median, t.ms_min, t.ms_max, t.reps,
                tf, gb, p.backend == BENCH_CPU ? "cpu" : lc_device_name(), argv[2], date, status, note);
        fflush(f);
        printf("%-6s %-6s %-4s B=%lld L=%-8lld HQ=%-2lld H=%-2lld dh=%-3lld W=%-5lld %10.3f ms %7.1f TFLOP/s %7.1f GB/s %s %s\n",
               mixer, dir, be, B, L, HQ, H, dh, W, t.ms_median, tf, gb, status, note);
        fflush(stdout);
        if (stages) { /* the stage's own bandwidth, and the stages' sum against the whole */
            static double stage_ms[5];
            const double sb = stage_bytes(&p, si);
            stage_ms[si] = t.ms_median;
            printf("  stage %-6s %10.3f ms", STAGE_NAME[si], t.ms_median);
            if (sb > 0 && t.ms_median > 0) printf(" %7.1f GB/s (%.3g GB)", sb / (t.ms_median * 1e-3) / 1e9, sb / 1e9);
            if (si == 4)
                printf("\n  stages summed %10.3f ms against %.3f ms whole", stage_ms[1] + stage_ms[2] + stage_ms[3] + stage_ms[4],
                       stage_ms[0]);
            printf("\n");
            fflush(stdout);
        }
        if (c.destroy) c.destroy(c.ctx);
    }
    if (stages) unsetenv("LC_ATTN_BWD_STAGES");
    fclose(f);
    return bad;
}
