/* mma.cuh — the warp-level tensor-core primitives every mma.sync kernel uses (attention, HSA,
 * Mamba-2 SSD): shared-memory addresses, ldmatrix (plain and transposed), mma.sync m16n8k16 bf16
 * -> fp32, bf16 pair packing, cp.async group commit / wait. sm_80+ instructions that also run on
 * sm_90. Family-specific helpers (fragment addressing for a layout, predicated copies) stay with
 * their family.
 *
 * Fragment layouts of mma.m16n8k16 (lane = 4*g + tig):
 *   A 16x16 row-major: a0 (g, 2tig..+1)  a1 (g+8, 2tig..)  a2 (g, 2tig+8..)  a3 (g+8, 2tig+8..)
 *   B 16x8  (k x n):   b0 (k=2tig..+1, n=g)  b1 (k=2tig+8..+1, n=g)
 *   C 16x8  fp32:      c0,c1 (g, 2tig..+1)   c2,c3 (g+8, 2tig..+1)
 * A C tile pair (n 0-7, 8-15) re-packed as bf16 is exactly an A fragment with k = those 16
 * columns, which is how P (scores) feeds a second matmul without touching shared memory. */
#ifndef LONGCTX_MMA_CUH
#define LONGCTX_MMA_CUH

#include <cuda_bf16.h>
#include <stdint.h>

namespace lc_mma {

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

/* c += a (16x16, row) * b (16x8, col), bf16 in, fp32 accumulate. */
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* Two m16n8 fp32 accumulators (columns 0-7 and 8-15 of a 16 x 16 tile) as the bf16 A fragment
 * of the next m16n8k16 MMA, which reads that tile as its 16 x 16 k-slice (P V, dS K, ...). */
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
    a[0] = pack_bf16(c0[0], c0[1]);
    a[1] = pack_bf16(c0[2], c0[3]);
    a[2] = pack_bf16(c1[0], c1[1]);
    a[3] = pack_bf16(c1[2], c1[3]);
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace lc_mma

#endif
