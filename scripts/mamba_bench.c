/* mamba_bench.c — timing driver for the Mamba-2 bench family (bench/bench_mamba.c), kept out of
 * `make` (it takes minutes on the device). Build against the library on the device machine:
 *   gcc -O2 -std=c11 -fopenmp -D_GNU_SOURCE -DLC_CUDA=1 -Ikernels -Ibench -I$CUDA/include \
 *       scripts/mamba_bench.c build/liblongctx.a -L$CUDA/lib64 -lcudart -lcublas -lm -lstdc++
 * Usage: mamba_bench OUT.csv GIT_SHA POINT...  with POINT = mixer,dir,B,L,heads,P,G,N[,cpu|cuda]
 * First measures the device-to-device copy bandwidth (cudaMemcpy of a 4 GiB buffer, median of
 * 9, counting bytes read + written), then appends one CSV row per point with GB/s of the
 * family's minimal bytes and its fraction of that copy bandwidth. A point that cannot run is a
 * row with status oom / error and the reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime.h>

#include "bench.h"
#include "device.h"

static const char *HEADER =
    "kernel,direction,backend,B,L,heads,P,N,G,ms,ms_min,ms_max,reps,tflops,gbps,copy_gbps,bw_fraction,peak_mem_bytes,"
    "device,git_sha,date,status,note\n";

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double copy_gbps(void) {
    const size_t bytes = (size_t)4 << 30;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
    cudaMemset(a, 1, bytes);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    float ms[9];
    for (int i = 0; i < 11; i++) {
        cudaEventRecord(e0, 0);
        cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        if (i >= 2) cudaEventElapsedTime(&ms[i - 2], e0, e1);
    }
    qsort(ms, 9, sizeof(float), cmp_f);
    cudaFree(a), cudaFree(b);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return 2.0 * (double)bytes / (ms[4] * 1e-3) / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s OUT.csv GIT_SHA mixer,dir,B,L,heads,P,G,N[,cpu|cuda] ...\n", argv[0]);
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
    const double copy = copy_gbps();
    printf("device-to-device copy: %.1f GB/s (read + write) on %s\n", copy, lc_device_name());
    int nf = 0, bad = 0;
    const struct bench_family *fam = bench_families_mamba(&nf);
    for (int i = 3; i < argc; i++) {
        struct bench_point p;
        memset(&p, 0, sizeof p);
        char mixer[24] = "", dir[8] = "", be[8] = "cuda";
        long long B, L, HQ, P, G, N;
        if (sscanf(argv[i], "%23[^,],%7[^,],%lld,%lld,%lld,%lld,%lld,%lld,%7s", mixer, dir, &B, &L, &HQ, &P, &G, &N, be) < 8) {
            fprintf(stderr, "bad point '%s'\n", argv[i]);
            bad = 1;
            continue;
        }
        snprintf(p.mixer, sizeof p.mixer, "%s", mixer);
        snprintf(p.direction, sizeof p.direction, "%s", dir);
        p.backend = strcmp(be, "cpu") == 0 ? BENCH_CPU : BENCH_CUDA;
        p.B = B, p.L = L, p.HQ = HQ, p.dh = P, p.H = G, p.N = N;
        const struct bench_family *fm = NULL;
        for (int j = 0; j < nf; j++)
            if (!strcmp(fam[j].mixer, mixer)) fm = &fam[j];
        const char *status = "ok";
        char note[300] = "";
        struct bench_timing t = {0};
        struct bench_case c;
        memset(&c, 0, sizeof c);
        size_t fr = 0, tot = 0, peak = 0;
        if (!fm) {
            status = "error";
            snprintf(note, sizeof note, "unknown mixer %s", mixer);
        } else if (p.backend == BENCH_CUDA && lc_cuda_mem_info(&fr, &tot) == LC_OK &&
                   fm->predict_bytes(&p) + ((size_t)600 << 20) > fr) {
            status = "oom";
            snprintf(note, sizeof note, "needs %zu bytes; %zu free", fm->predict_bytes(&p), fr);
        } else if (fm->make(&p, &c) != LC_OK) {
            status = "error";
            snprintf(note, sizeof note, "%s", lc_last_error());
        } else {
            /* a first run decides the repeat count */
            struct bench_timing t1;
            int reps = 1;
            if (bench_time(&c, p.backend, 1, 1, &t1) == LC_OK)
                reps = t1.ms_median > 2000 ? 1 : t1.ms_median > 300 ? 3 : t1.ms_median > 20 ? 7 : 15;
            if (bench_time(&c, p.backend, 1, reps, &t) != LC_OK) {
                status = "error";
                snprintf(note, sizeof note, "%s", lc_last_error());
            }
            size_t fr2 = 0;
            if (p.backend == BENCH_CUDA && lc_cuda_mem_info(&fr2, &tot) == LC_OK) peak = tot - fr2;
            else peak = c.alloc_bytes;
            /* segment lengths as in bench_mamba.c: 2^22 tokens, 2^20 for the scan's fwdbwd */
            const int segbits = !strcmp(mixer, "mamba_scan") && !strcmp(dir, "fwdbwd") ? 20 : 22;
            if (p.backend == BENCH_CUDA && L > ((long long)1 << segbits) && strcmp(dir, "decode")) {
                /* keep an error message in front of the description (a failed segmented run names both) */
                char seg[240];
                snprintf(seg, sizeof seg, "segmented: %lld segments of %lld tokens reusing one device buffer set; state carried %s",
                         L >> segbits, 1LL << segbits,
                         strcmp(mixer, "mamba_conv") ? (segbits == 20 ? "hT->h0 forward then dh0->dhT backward in reverse" : "hT->h0")
                                                     : "tail_out->tail_in");
                size_t used = strlen(note);
                snprintf(note + used, sizeof note - used, "%s%s", used ? " | " : "", seg);
            }
        }
        for (char *s = note; *s; s++)
            if (*s == ',' || *s == '\n') *s = ';';
        const double tf = t.ms_median > 0 ? c.flops / (t.ms_median * 1e-3) / 1e12 : 0;
        const double gb = t.ms_median > 0 ? c.bytes / (t.ms_median * 1e-3) / 1e9 : 0;
        const double frac = p.backend == BENCH_CUDA && copy > 0 ? gb / copy : 0;
        fprintf(f, "%s,%s,%s,%lld,%lld,%lld,%lld,%lld,%lld,%.4f,%.4f,%.4f,%d,%.5g,%.5g,%.5g,%.4f,%zu,%s,%s,%s,%s,%s\n", mixer, dir,
                p.backend == BENCH_CPU ? "cpu" : "cuda", B, L, HQ, P, N, G, t.ms_median, t.ms_min, t.ms_max, t.reps, tf, gb,
                p.backend == BENCH_CUDA ? copy : 0, frac, peak, p.backend == BENCH_CPU ? "cpu" : lc_device_name(), argv[2],
                date, status, note);
        fflush(f);
        printf("%-10s %-6s %-4s B=%-2lld L=%-9lld %10.3f ms %8.1f GB/s %5.3f of copy %6.1f TFLOP/s %s %s\n", mixer, dir, be, B, L,
               t.ms_median, gb, frac, tf, status, note);
        fflush(stdout);
        if (c.destroy) c.destroy(c.ctx);
    }
    fclose(f);
    return bad;
}
