/* device.h — what the host knows about CUDA devices, callable from C whether or not the CUDA
 * backend was built (kernels/device.cu when it was, kernels/device_nocuda.c when not). */
#ifndef LONGCTX_DEVICE_H
#define LONGCTX_DEVICE_H

#include <stddef.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if this binary has the CUDA backend compiled in. */
int lc_cuda_built(void);
/* Number of usable CUDA devices (0 without the backend or without a driver/GPU); when 0 and
 * `why` is non-NULL, *why says why (e.g. "no CUDA device: cudaErrorNoDevice"). */
int lc_cuda_device_count(const char **why);
/* 1 when the driver runs this binary's sm_90a code on device 0 (wgmma, TMA kernels available);
 * probed once per process, 0 without a device. */
int lc_cuda_have_sm90a(void);
/* Name of device 0 as the driver reports it ("NVIDIA H100 80GB HBM3"), or "cpu". */
const char *lc_device_name(void);
/* Free and total bytes on device 0; LC_EDEVICE when there is none. */
lc_status lc_cuda_mem_info(size_t *free_bytes, size_t *total_bytes);
/* Device memory helpers that record an error naming `what` on failure. */
void *lc_cuda_malloc(size_t bytes, const char *what);
void lc_cuda_free(void *p);
lc_status lc_cuda_memcpy_h2d(void *dst, const void *src, size_t bytes);
lc_status lc_cuda_memcpy_d2h(void *dst, const void *src, size_t bytes);
lc_status lc_cuda_memset(void *dst, int value, size_t bytes);
lc_status lc_cuda_sync(void);

#ifdef __cplusplus
}
#endif
#endif
