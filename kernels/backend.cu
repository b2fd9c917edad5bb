/* backend.cu — the few elementwise kernels the cuda backend table needs and the kernel families
 * lack: bf16 <-> fp32 conversion, y += x (bf16, fp32, fp32 into bf16), y *= a, a sum of squares
 * (gradient clipping) and a strided 2-D copy. Default stream; fp32 arithmetic. */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

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
extern "C" lc_status backend_cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                                         size_t rows) {
    if (!rows || !width) return LC_OK;
    cudaError_t e = rows == 1 ? cudaMemcpyAsync(dst, src, width, cudaMemcpyDeviceToDevice, 0)
                              : cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToDevice, 0);
    if (e != cudaSuccess) return lc_errorf(LC_EDEVICE, "copy2d (%zu rows of %zu bytes): %s", rows, width, cudaGetErrorString(e));
    return LC_OK;
}
