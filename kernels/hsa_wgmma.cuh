/* hsa_wgmma.cuh — the sm_90a warpgroup MMA (wgmma) pieces the HSA retrieval kernel uses: fences,
 * commit / wait, the shared-memory matrix descriptor for 128-byte-swizzled K-major tiles, and
 * D[64 x 128] (+)= A[64 x 16] * B[16 x 128] with A and B both K-major in shared memory.
 * Only meaningful in the sm_90a build: callers guard with __CUDA_ARCH_FEAT_SM90_ALL.
 *
 * Tile layout the descriptors describe (128-byte swizzle): a panel of R rows x 64 bf16 (128 bytes
 * per row), row r at byte r*128, its 16-byte chunk ch stored at chunk position ch ^ (r & 7);
 * panels start 1024-byte aligned. K step k16 inside the panel = start address + 32 bytes; the
 * stride between 8-row core-matrix groups (SBO) is 1024 bytes; LBO is unused for swizzled
 * K-major tiles (16).
 * Accumulator layout per warp w of the warpgroup (rows 16w + g and 16w + g + 8, g = lane/4, tig =
 * lane%4): d[4i + {0,1}] = row g, columns 8i + 2tig + {0,1}; d[4i + {2,3}] = row g+8, same columns
 * (the mma.sync m16n8 C layout repeated over the 16 n-tiles). */
#ifndef LONGCTX_HSA_WGMMA_CUH
#define LONGCTX_HSA_WGMMA_CUH

#include <stdint.h>

namespace hsa_wg {

__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
/* generic-proxy writes (cp.async, st.shared) made visible to the async proxy that wgmma reads with */
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void reg_fence(float &x) { asm volatile("" : "+f"(x)::"memory"); }

/* 16-byte cp.async that writes zeros instead when !ok (gmem is then not read) */
__device__ __forceinline__ void cp_async16_zfill(void *smem, const void *gmem, bool ok) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"((uint32_t)__cvta_generic_to_shared(smem)),
                 "l"(gmem), "r"(ok ? 16 : 0));
}

/* byte offset of 16-byte chunk ch (0..7) of row r in a 128-byte-swizzled panel */
__device__ __forceinline__ int sw128(int r, int ch) { return r * 128 + ((ch ^ (r & 7)) << 4); }

__device__ __forceinline__ uint64_t desc_sw128(uint32_t saddr) {
    const uint32_t lbo = 16, sbo = 1024;
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) |
           (1ull << 62);
}

/* the same for an MN-major (transposed) 128-byte-swizzled operand: a [k][n] tile with n = 64
 * bf16 per 128-byte row (V of O += P V), k16 step = start address + 16 rows * 128 bytes */
__device__ __forceinline__ uint64_t desc_sw128_mn(uint32_t saddr) {
    const uint32_t lbo = 1024, sbo = 1024;
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) |
           (1ull << 62);
}

/* d[64] += A * B (accumulate = 1) or d = A * B (0); A: 64 x 16, B: 128 x 16, both K-major */
__device__ __forceinline__ void mma_ss_n128(float *d, uint64_t da, uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(accumulate));
}


/* ---- pieces of the wgmma chunk-attention forward (hsa_attend_fwd_wg.cuh) ---- */
template <int N>
__device__ __forceinline__ void wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

/* d[32] (+)= A[64 x 16] * B[16 x 64], A from registers (mma.sync A-fragment layout, rows 16*warp ..
 * +15 of the warpgroup), B in shared memory: K-major (tnspB = 0: B stored [n][k], the keys of
 * S = Q K^T) or MN-major (tnspB = 1: B stored [k][n], V of O += P V). */
template <int TNSPB>
__device__ __forceinline__ void mma_rs_n64(float *d, const uint32_t *a, uint64_t db, int accumulate) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate), "n"(TNSPB));
}

/* per-thread register budget of the executing warpgroup (the producer gives registers back, the
 * consumers take them); counts are multiples of 8 in 24..256 */
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)); }
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)); }

/* ---- TMA and transaction-count mbarriers ---- */
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void fence_mbar_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
/* box at coordinates (c0 innermost .. c3) of a 4-D tensor map into shared memory at dst; the
 * barrier's transaction count drops by the box's bytes when they land */
__device__ __forceinline__ void tma_load_4d(uint32_t dst, const void *map, int c0, int c1, int c2, int c3, uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(dst),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
        : "memory");
}

}  // namespace hsa_wg

#endif
