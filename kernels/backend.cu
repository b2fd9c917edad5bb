/* backend.cu — the few elementwise kernels the cuda backend table needs and the kernel families
 * lack: bf16 <-> fp32 conversion, y += x (bf16, fp32, fp32 into bf16), y *= a, y = -exp(x),
 * y += a*b, a sum of squares (gradient clipping) and a strided 2-D copy; and the event recorder of
 * the profiled table (backend_profiled). Default stream; fp32 arithmetic. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "backend.h"
}

static lc_status launch_status(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return lc_errorf(LC_EDEVICE, "%s: %s", what, cudaGetErrorString(e));
    return LC_OK;
}
static unsigned blocks_for(int64_t n) {
    int64_t b = (n + 255) / 256;
    return (unsigned)(b > 65535 * 8 ? 65535 * 8 : b);
}

#define GRID_LOOP(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__global__ void k_from_f32(int64_t n, const float *s, __nv_bfloat16 *d) { GRID_LOOP(i, n) d[i] = __float2bfloat16(s[i]); }
__global__ void k_to_f32(int64_t n, const __nv_bfloat16 *s, float *d) { GRID_LOOP(i, n) d[i] = __bfloat162float(s[i]); }
__global__ void k_add_bf16(int64_t n, const __nv_bfloat16 *x, __nv_bfloat16 *y) {
    GRID_LOOP(i, n) y[i] = __float2bfloat16(__bfloat162float(y[i]) + __bfloat162float(x[i]));
}
__global__ void k_add_f32_bf16(int64_t n, const float *x, __nv_bfloat16 *y) {
    GRID_LOOP(i, n) y[i] = __float2bfloat16(__bfloat162float(y[i]) + x[i]);
}
__global__ void k_add_f32(int64_t n, const float *x, float *y) { GRID_LOOP(i, n) y[i] += x[i]; }
__global__ void k_scale_f32(int64_t n, float a, float *y) { GRID_LOOP(i, n) y[i] *= a; }
/* One partial per block in a fixed order, summed on the host: deterministic. */
__global__ void k_sumsq(int64_t n, const float *x, double *part) {
    __shared__ double sh[256];
    double s = 0;
    GRID_LOOP(i, n) s += (double)x[i] * x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int o = 128; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

extern "C" lc_status backend_cuda_bf16_from_f32(int64_t n, const float *src, bf16_t *dst) {
    if (n <= 0) return LC_OK;
    k_from_f32<<<blocks_for(n), 256>>>(n, src, (__nv_bfloat16 *)dst);
    return launch_status("bf16_from_f32");
}
extern "C" lc_status backend_cuda_bf16_to_f32(int64_t n, const bf16_t *src, float *dst) {
    if (n <= 0) return LC_OK;
    k_to_f32<<<blocks_for(n), 256>>>(n, (const __nv_bfloat16 *)src, dst);
    return launch_status("bf16_to_f32");
}
extern "C" lc_status backend_cuda_add_bf16(int64_t n, const bf16_t *x, bf16_t *y) {
    if (n <= 0) return LC_OK;
    k_add_bf16<<<blocks_for(n), 256>>>(n, (const __nv_bfloat16 *)x, (__nv_bfloat16 *)y);
    return launch_status("add_bf16");
}
extern "C" lc_status backend_cuda_add_f32_to_bf16(int64_t n, const float *x, bf16_t *y) {
    if (n <= 0) return LC_OK;
    k_add_f32_bf16<<<blocks_for(n), 256>>>(n, x, (__nv_bfloat16 *)y);
    return launch_status("add_f32_to_bf16");
}
extern "C" lc_status backend_cuda_add_f32(int64_t n, const float *x, float *y) {
    if (n <= 0) return LC_OK;
    k_add_f32<<<blocks_for(n), 256>>>(n, x, y);
    return launch_status("add_f32");
}
extern "C" lc_status backend_cuda_scale_f32(int64_t n, float a, float *y) {
    if (n <= 0) return LC_OK;
    k_scale_f32<<<blocks_for(n), 256>>>(n, a, y);
    return launch_status("scale_f32");
}
extern "C" lc_status backend_cuda_sumsq_f32(int64_t n, const float *x, double *out_host) {
    *out_host = 0;
    if (n <= 0) return LC_OK;
    unsigned nb = blocks_for(n);
    if (nb > 1024) nb = 1024;
    double *part = NULL, host[1024];
    if (cudaMalloc(&part, nb * sizeof(double)) != cudaSuccess) return lc_errorf(LC_ENOMEM, "sumsq: cudaMalloc");
    k_sumsq<<<nb, 256>>>(n, x, part);
    lc_status st = launch_status("sumsq");
    if (st == LC_OK && cudaMemcpy(host, part, nb * sizeof(double), cudaMemcpyDeviceToHost) != cudaSuccess)
        st = lc_errorf(LC_EDEVICE, "sumsq: copy back");
    cudaFree(part);
    for (unsigned i = 0; st == LC_OK && i < nb; i++) *out_host += host[i];
    return st;
}
__global__ void k_negexp(int64_t n, const float *x, float *y) { GRID_LOOP(i, n) y[i] = -expf(x[i]); }
__global__ void k_muladd(int64_t n, const float *a, const float *b, float *y) { GRID_LOOP(i, n) y[i] += a[i] * b[i]; }
extern "C" lc_status backend_cuda_negexp_f32(int64_t n, const float *x, float *y) {
    if (n <= 0) return LC_OK;
    k_negexp<<<blocks_for(n), 256>>>(n, x, y);
    return launch_status("negexp_f32");
}
extern "C" lc_status backend_cuda_muladd_f32(int64_t n, const float *a, const float *b, float *y) {
    if (n <= 0) return LC_OK;
    k_muladd<<<blocks_for(n), 256>>>(n, a, b, y);
    return launch_status("muladd_f32");
}
extern "C" lc_status backend_cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                                         size_t rows) {
    if (!rows || !width) return LC_OK;
    cudaError_t e = rows == 1 ? cudaMemcpyAsync(dst, src, width, cudaMemcpyDeviceToDevice, 0)
                              : cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToDevice, 0);
    if (e != cudaSuccess) return lc_errorf(LC_EDEVICE, "copy2d (%zu rows of %zu bytes): %s", rows, width, cudaGetErrorString(e));
    return LC_OK;
}

/* ---- profiler (backend_profiled in backend.c): one pair of CUDA events around each op, no
 * synchronization while recording; backend_cuda_prof_flush() waits once and folds the elapsed
 * times into per-label and per-section sums. The time between two events is the device time of
 * everything the op enqueued, idle gaps included (a launch-bound op shows its launch cost). */
#define PROF_SLOTS 4096
#define PROF_LABELS 1024
struct prof_agg {
    char label[96];
    double ms;
    long calls;
};
static cudaEvent_t g_pev[2 * PROF_SLOTS];
static char g_plab[PROF_SLOTS][96], g_psec[PROF_SLOTS][32];
static int g_pn, g_pinit;
static prof_agg g_pop[PROF_LABELS], g_psecagg[128];
static int g_npop, g_npsec;

static void prof_add(prof_agg *a, int *n, int cap, const char *label, double ms) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(a[i].label, label)) {
            a[i].ms += ms;
            a[i].calls++;
            return;
        }
    if (*n >= cap) return;
    snprintf(a[*n].label, sizeof a[*n].label, "%s", label);
    a[*n].ms = ms;
    a[*n].calls = 1;
    (*n)++;
}

extern "C" void backend_cuda_prof_flush(void) {
    if (!g_pn) return;
    cudaDeviceSynchronize();
    for (int k = 0; k < g_pn; k++) {
        float ms = 0;
        cudaEventElapsedTime(&ms, g_pev[2 * k], g_pev[2 * k + 1]);
        prof_add(g_pop, &g_npop, PROF_LABELS, g_plab[k], ms);
        prof_add(g_psecagg, &g_npsec, 128, g_psec[k], ms);
    }
    g_pn = 0;
}

extern "C" int backend_cuda_prof_start(void) {
    if (!g_pinit) {
        for (int k = 0; k < 2 * PROF_SLOTS; k++) cudaEventCreate(&g_pev[k]);
        g_pinit = 1;
    }
    if (g_pn >= PROF_SLOTS) backend_cuda_prof_flush();
    int k = g_pn++;
    cudaEventRecord(g_pev[2 * k], 0);
    return k;
}

extern "C" void backend_cuda_prof_stop(int k, const char *label, const char *section) {
    cudaEventRecord(g_pev[2 * k + 1], 0);
    snprintf(g_plab[k], sizeof g_plab[k], "%s", label);
    snprintf(g_psec[k], sizeof g_psec[k], "%s", section ? section : "");
}

static int agg_cmp(const void *a, const void *b) {
    double x = ((const prof_agg *)a)->ms, y = ((const prof_agg *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

extern "C" void backend_cuda_prof_report(FILE *f, int steps, double wall_ms) {
    backend_cuda_prof_flush();
    if (steps < 1) steps = 1;
    double tot = 0;
    for (int i = 0; i < g_npop; i++) tot += g_pop[i].ms;
    qsort(g_pop, (size_t)g_npop, sizeof g_pop[0], agg_cmp);
    qsort(g_psecagg, (size_t)g_npsec, sizeof g_psecagg[0], agg_cmp);
    fprintf(f, "profile: %d steps, wall %.3f ms/step, sum of op event times %.3f ms/step (%.1f%% of wall)\n", steps,
            wall_ms / steps, tot / steps, wall_ms > 0 ? 100.0 * tot / wall_ms : 0.0);
    fprintf(f, "%-12s %9s %7s %7s  %s\n", "section", "ms/step", "%wall", "calls", "");
    for (int i = 0; i < g_npsec; i++)
        fprintf(f, "%-12s %9.3f %6.1f%% %7ld\n", g_psecagg[i].label, g_psecagg[i].ms / steps,
                wall_ms > 0 ? 100.0 * g_psecagg[i].ms / wall_ms : 0.0, g_psecagg[i].calls / steps);
    fprintf(f, "%9s %7s %7s %9s  %s\n", "ms/step", "%wall", "calls", "us/call", "op");
    for (int i = 0; i < g_npop; i++)
        fprintf(f, "%9.3f %6.1f%% %7ld %9.1f  %s\n", g_pop[i].ms / steps, wall_ms > 0 ? 100.0 * g_pop[i].ms / wall_ms : 0.0,
                g_pop[i].calls / steps, 1000.0 * g_pop[i].ms / (double)g_pop[i].calls, g_pop[i].label);
    g_npop = g_npsec = 0;
}
