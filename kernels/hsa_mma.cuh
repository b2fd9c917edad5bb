/* hsa_mma.cuh — warp-level tensor-core helpers of the HSA kernels on top of the shared primitives
 * in mma.cuh (mma.sync m16n8k16, ldmatrix, cp.async groups; fragment layouts are described
 * there): fragment addressing for the HSA tile layouts, unpredicated cp.async copies, and the
 * device twin of the CPU's Gumbel noise. */
#ifndef LONGCTX_HSA_MMA_CUH
#define LONGCTX_HSA_MMA_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#include "mma.cuh"

namespace hsa_mma {

using namespace lc_mma;

/* A fragment of the 16x16 tile at (r0, k0) of a row-major bf16 smem array with row stride ld. */
__device__ __forceinline__ void lds_a(uint32_t a[4], const __nv_bfloat16 *base, int ld, int r0, int k0,
                                      int lane) {
    ldsm_x4(a, base + (size_t)(r0 + (lane & 15)) * ld + k0 + (lane >> 4) * 8);
}
/* B fragments for n-tiles n0 and n0+8, k16 at k0, from smem stored [n][k] (row = n).
 * r[0],r[1] -> tile n0 (b0,b1); r[2],r[3] -> tile n0+8. */
__device__ __forceinline__ void lds_b_nk(uint32_t r[4], const __nv_bfloat16 *base, int ld, int n0, int k0,
                                         int lane) {
    ldsm_x4(r, base + (size_t)(n0 + (lane & 7) + (lane >> 4) * 8) * ld + k0 + ((lane >> 3) & 1) * 8);
}
/* B fragments for n-tiles n0 and n0+8, k16 at k0, from smem stored [k][n] (row = k). */
__device__ __forceinline__ void lds_b_kn(uint32_t r[4], const __nv_bfloat16 *base, int ld, int n0, int k0,
                                         int lane) {
    ldsm_x4_t(r, base + (size_t)(k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + n0 + (lane >> 4) * 8);
}

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async4(void *smem, const void *gmem) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem_u32(smem)), "l"(gmem));
}

/* Device twin of lc_hash3 + hsa_gumbel (common.c, hsa.h): same integer mixing, same double
 * arithmetic, rounded to float last, so selection with noise matches the CPU. */
__device__ __forceinline__ uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
__device__ __forceinline__ uint64_t hash3(uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t x = seed ^ 0x243f6a8885a308d3ull;
    x = splitmix64(&x) ^ a;
    x = splitmix64(&x) ^ b;
    return splitmix64(&x);
}
__device__ __forceinline__ float gumbel(uint64_t seed, uint64_t row_head, uint64_t c) {
    uint64_t h = hash3(seed, row_head, c);
    double u = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    return (float)(-log(-log(u)));
}

}  // namespace hsa_mma

#endif
