/* nvtx.h — NVTX ranges in one domain, "longctx", so Nsight Systems/Compute can find a sweep
 * point or a kernel stage by name (`ncu --nvtx --nvtx-include "longctx@dense/fwd/L=65536/"`).
 *
 *   lc_nvtx_push("hsa_retrieve");  ...  lc_nvtx_pop();
 *
 * Ranges nest (push/pop on the calling thread). Compiled out entirely when LC_NVTX is 0 (the
 * Makefile sets it to 0 with NVTX=0 or without the CUDA backend); NVTX3 is header-only, so
 * nothing is linked either way. The domain handle is created once per translation unit and
 * cached: nvtxDomainCreateA returns the same domain for the same name.
 */
#ifndef LONGCTX_NVTX_H
#define LONGCTX_NVTX_H

#if LC_NVTX
#include <string.h>

#include <nvtx3/nvToolsExt.h>

static inline nvtxDomainHandle_t lc_nvtx_domain(void) {
    static nvtxDomainHandle_t d = 0;
    if (!d) d = nvtxDomainCreateA("longctx");
    return d;
}

static inline void lc_nvtx_push(const char *name) {
    nvtxEventAttributes_t a;
    memset(&a, 0, sizeof a);
    a.version = NVTX_VERSION;
    a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    a.messageType = NVTX_MESSAGE_TYPE_ASCII;
    a.message.ascii = name;
    nvtxDomainRangePushEx(lc_nvtx_domain(), &a);
}

static inline void lc_nvtx_pop(void) { nvtxDomainRangePop(lc_nvtx_domain()); }
#else
static inline void lc_nvtx_push(const char *name) { (void)name; }
static inline void lc_nvtx_pop(void) {}
#endif

#endif
