/* cuda_common.cuh — shared by the .cu files: error checking that turns CUDA failures into
 * lc_status values with file and line, bf16 helpers, launch checks. */
#ifndef LONGCTX_CUDA_COMMON_CUH
#define LONGCTX_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include "common.h"
#include "nvtx.h"
#include "tuning.h"

/* Return LC_EDEVICE from the enclosing function when a CUDA call fails. */
#define cuda_check(call)                                                                     \
    do {                                                                                     \
        cudaError_t cuda_check_e_ = (call);                                                  \
        if (cuda_check_e_ != cudaSuccess)                                                    \
            return lc_errorf(LC_EDEVICE, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call,   \
                             cudaGetErrorString(cuda_check_e_));                             \
    } while (0)

/* After every launch: configuration errors show here, asynchronous faults at the next sync. */
#define cuda_check_launch(name)                                                              \
    do {                                                                                     \
        cudaError_t cuda_check_e_ = cudaGetLastError();                                      \
        if (cuda_check_e_ != cudaSuccess)                                                    \
            return lc_errorf(LC_EDEVICE, "%s:%d: launch of %s failed: %s", __FILE__, __LINE__, \
                             name, cudaGetErrorString(cuda_check_e_));                        \
    } while (0)

static inline cudaStream_t lc_stream(void *s) { return (cudaStream_t)s; }

/* cuTensorMapEncodeTiled (device.cu), or NULL when the driver lacks it: TMA kernels then fall back. */
PFN_cuTensorMapEncodeTiled_v12000 lc_tensor_map_encoder(void);

/* An NVTX range (domain "longctx", bench/nvtx.h) over the rest of the enclosing scope, so every
 * return path closes it: one per public entry point, named family.op.direction, so that
 * `scripts/profile.sh` and Nsight Systems show the kernel stages inside a sweep point.
 * next(name) closes the current range and opens the next stage's. Compiled out with NVTX=0. */
struct lc_nvtx_range {
    explicit lc_nvtx_range(const char *name) { lc_nvtx_push(name); }
    void next(const char *name) {
        lc_nvtx_pop();
        lc_nvtx_push(name);
    }
    ~lc_nvtx_range() { lc_nvtx_pop(); }
    lc_nvtx_range(const lc_nvtx_range &) = delete;
    lc_nvtx_range &operator=(const lc_nvtx_range &) = delete;
};

#endif
