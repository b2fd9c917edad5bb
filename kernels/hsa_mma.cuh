/* hsa_mma.cuh — warp-level tensor-core helpers for the HSA kernels (sm_80+ instructions that
 * also run on sm_90): mma.sync m16n8k16 bf16 -> fp32, ldmatrix, cp.async, and the Gumbel twin.
 *
 * Fragment layouts of mma.m16n8k16 (lane = 4*g + tig):
 *   A 16x16 row-major: a0 (g, 2tig..+1)  a1 (g+8, 2tig..)  a2 (g, 2tig+8..)  a3 (g+8, 2tig+8..)
 *   B 16x8  (k x n):   b0 (k=2tig..+1, n=g)  b1 (k=2tig+8..+1, n=g)
 *   C 16x8  fp32:      c0,c1 (g, 2tig..+1)   c2,c3 (g+8, 2tig..+1)
 * A C tile pair (n 0-7, 8-15) re-packed as bf16 is exactly an A fragment with k = those 16
 * columns, which is how P (scores) feeds the second matmul without touching shared memory. */
#ifndef LONGCTX_HSA_MMA_CUH
#define LONGCTX_HSA_MMA_CUH

#include <cuda_bf16.h>
#include <stdint.h>

namespace hsa_mma {

__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* Four 8x8 b16 matrices; lane l gives the row address of matrix l/8, row l%8. */
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

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

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
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
