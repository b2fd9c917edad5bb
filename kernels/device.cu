/* device.cu — device discovery and memory helpers (CUDA build). See device.h. */
#include <stdio.h>

#include "cuda_common.cuh"
#include "device.h"

extern "C" int lc_cuda_built(void) { return 1; }

extern "C" int lc_cuda_device_count(const char **why) {
    static char msg[256];
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(msg, sizeof msg, "no CUDA device: %s", cudaGetErrorString(e));
        if (why) *why = msg;
        return 0;
    }
    if (n == 0 && why) *why = "no CUDA device found by the driver";
    return n;
}

/* Writes 1 only in the sm_90a build of this kernel: which build the driver loaded for this device
 * tells whether the wgmma / setmaxnreg kernels of this binary can run (the plain sm_90 build
 * has them compiled out). Every .cu file is built for both targets, so one probe answers for all. */
__global__ void probe_sm90a_kernel(int *out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *out = 1;
#else
    *out = 0;
#endif
}

extern "C" int lc_cuda_have_sm90a(void) {
    static int cached = -1;
    if (cached >= 0) return cached;
    int *d = NULL, h = 0;
    if (lc_cuda_device_count(NULL) == 0 || cudaMalloc(&d, sizeof(int)) != cudaSuccess) {
        cudaGetLastError();
        return cached = 0;
    }
    probe_sm90a_kernel<<<1, 1>>>(d);
    if (cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost) != cudaSuccess) {
        cudaGetLastError();
        h = 0;
    }
    cudaFree(d);
    return cached = h;
}

extern "C" const char *lc_device_name(void) {
    static char name[256];
    if (!name[0]) {
        cudaDeviceProp p;
        if (lc_cuda_device_count(NULL) > 0 && cudaGetDeviceProperties(&p, 0) == cudaSuccess)
            snprintf(name, sizeof name, "%s", p.name);
        else
            snprintf(name, sizeof name, "cpu");
    }
    return name;
}

extern "C" lc_status lc_cuda_mem_info(size_t *free_bytes, size_t *total_bytes) {
    if (lc_cuda_device_count(NULL) == 0) return lc_errorf(LC_EDEVICE, "no CUDA device");
    cuda_check(cudaMemGetInfo(free_bytes, total_bytes));
    return LC_OK;
}

extern "C" void *lc_cuda_malloc(size_t bytes, const char *what) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        lc_errorf(LC_ENOMEM, "out of device memory allocating %zu bytes for %s: %s", bytes, what,
                  cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

extern "C" void lc_cuda_free(void *p) {
    if (p) cudaFree(p);
}

extern "C" lc_status lc_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes) {
    cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    return LC_OK;
}
extern "C" lc_status lc_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes) {
    cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return LC_OK;
}
extern "C" lc_status lc_cuda_memset(void *dst, int value, size_t bytes) {
    cuda_check(cudaMemset(dst, value, bytes));
    return LC_OK;
}
extern "C" lc_status lc_cuda_sync(void) {
    cuda_check(cudaDeviceSynchronize());
    return LC_OK;
}

/* cuTensorMapEncodeTiled through the runtime's driver entry point (no libcuda link), looked up once;
 * NULL when the driver lacks it. Used by the TMA kernels (attention, HSA) to build tensor maps. */
PFN_cuTensorMapEncodeTiled_v12000 lc_tensor_map_encoder(void) {
    static PFN_cuTensorMapEncodeTiled_v12000 encode = NULL;
    static int looked = 0;
    if (!looked) {
        looked = 1;
        void *fn = NULL;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) == cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            encode = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
        else
            cudaGetLastError();
    }
    return encode;
}
