/* device_nocuda.c — device.h for a build without the CUDA backend (CUDA=0 or no nvcc). */
#include "device.h"

int lc_cuda_built(void) { return 0; }
int lc_cuda_have_sm90a(void) { return 0; }
int lc_cuda_device_count(const char **why) {
    if (why) *why = "built without the CUDA backend (CUDA=0 or nvcc not found)";
    return 0;
}
const char *lc_device_name(void) { return "cpu"; }
lc_status lc_cuda_mem_info(size_t *f, size_t *t) {
    (void)f;
    (void)t;
    return lc_errorf(LC_EDEVICE, "built without the CUDA backend");
}
void *lc_cuda_malloc(size_t bytes, const char *what) {
    lc_errorf(LC_EDEVICE, "cannot allocate %zu device bytes for %s: built without CUDA", bytes, what);
    return 0;
}
void lc_cuda_free(void *p) { (void)p; }
static lc_status no_cuda(void) { return lc_errorf(LC_EDEVICE, "built without the CUDA backend"); }
lc_status lc_cuda_memcpy_h2d(void *d, const void *s, size_t n) { (void)d; (void)s; (void)n; return no_cuda(); }
lc_status lc_cuda_memcpy_d2h(void *d, const void *s, size_t n) { (void)d; (void)s; (void)n; return no_cuda(); }
lc_status lc_cuda_memset(void *d, int v, size_t n) { (void)d; (void)v; (void)n; return no_cuda(); }
lc_status lc_cuda_sync(void) { return no_cuda(); }
