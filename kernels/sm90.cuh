/* sm90.cuh — the sm_90a (Hopper) inline-PTX primitives of the attention (attention.cu,
 * attention_fwd_ws.cuh, attention_bwd_ws.cuh), HSA (hsa_retrieve.cuh, hsa_attend_fwd_wgq.cuh) and
 * Mamba-2 (mamba_ssd_wg.cuh) kernels, each written once: warpgroup MMA (wgmma) fences, commit /
 * wait, shared-memory matrix descriptors and the MMA shapes those kernels issue (bf16 in, fp32
 * accumulate); setmaxnreg; transaction-count mbarriers on 32-bit shared addresses; TMA (bulk
 * tensor) loads and reduce-adds and their bulk-group commit / wait. Everything but sw128 and
 * reg_fence is an sm_90a instruction: callers guard the code that uses them with
 * `#if defined(__CUDA_ARCH_FEAT_SM90_ALL)` (an uncalled inline function emits nothing, so the
 * plain sm_90 build may include this header). kernels/mma.cuh keeps the sm_80+ mma.sync pieces.
 *
 * Swizzled tile layout (what desc() describes, swizzle mode 1 = 128 bytes): a panel of R rows x
 * 64 bf16 (128 bytes a row), row r at byte r*128, its 16-byte chunk ch (0..7) stored at chunk
 * position ch ^ (r & 7) (sw128); panels start 1024-byte aligned. Descriptor = start address >> 4
 * (bits 0-13), leading byte offset >> 4 (16-29), stride byte offset >> 4 (32-45), mode 1 (62-63).
 *   K-major operand ([m or n][k], desc_k): the k16 step is start address + 32 bytes; SBO = 1024
 *   (between 8-row core-matrix groups), LBO unused (16).
 *   MN-major operand ([k][m or n], 64 m/n a row, desc_mn): the k16 step is start + 16 rows * 128
 *   bytes; LBO = SBO = 1024.
 * MMA operands: ss_* read A and B through descriptors; rs_* take A from registers in the mma.sync
 * m16n8k16 A-fragment layout (warp w of the warpgroup holds rows 16w .. 16w+15: a[0] = (g, 2t..),
 * a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8, 2t+8..), g = lane/4, t = lane%4). TNSPB
 * = 0: B K-major ([n][k]); 1: B MN-major ([k][n]). _tt: A and B both MN-major. accumulate = 0
 * ignores the old D (scale-d = 0), 1 adds to it.
 * Accumulator layout (D[64 x N], per warp w of the warpgroup, rows 16w + g and 16w + g + 8):
 * d[4i + {0,1}] = row g, columns 8i + 2t + {0,1}; d[4i + {2,3}] = row g+8, same columns (the
 * mma.sync m16n8 C layout repeated over the N/8 n-tiles); N/2 floats a thread. */
#ifndef LONGCTX_SM90_CUH
#define LONGCTX_SM90_CUH

#include <stdint.h>

namespace sm90 {

/* ---- wgmma ordering ---- */
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
/* at most N of this warpgroup's wgmma groups still pending */
template <int N>
__device__ __forceinline__ void wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
/* generic-proxy writes (cp.async, st.shared) made visible to the async proxy (wgmma, TMA) */
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
/* pins a register's value at this point: an accumulator or fragment is not moved across a wgmma
 * fence / wait by the compiler */
__device__ __forceinline__ void reg_fence(float &x) { asm volatile("" : "+f"(x)::"memory"); }
__device__ __forceinline__ void reg_fence(uint32_t &x) { asm volatile("" : "+r"(x)::"memory"); }

/* ---- descriptors and the 128-byte swizzle ---- */
/* byte offset of 16-byte chunk ch (0..7) of row r in a 128-byte-swizzled panel */
__device__ __forceinline__ int sw128(int r, int ch) { return r * 128 + ((ch ^ (r & 7)) << 4); }
__device__ __forceinline__ uint64_t desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) |
           (1ull << 62);
}
__device__ __forceinline__ uint64_t desc_k(uint32_t saddr) { return desc(saddr, 16, 1024); }
__device__ __forceinline__ uint64_t desc_mn(uint32_t saddr) { return desc(saddr, 1024, 1024); }

/* ---- wgmma m64nNk16, bf16 x bf16 -> fp32 ---- */
/* the accumulator operands (d[0..N/2-1], read-write; W32 write-only) and their register lists */
#define SM90_D16 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), \
    "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
#define SM90_D32 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), \
    "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), \
    "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), \
    "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define SM90_D64 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), \
    "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), \
    "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), \
    "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), \
    "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), \
    "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), \
    "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), \
    "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define SM90_W32 \
    "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]), "=f"(d[8]), \
    "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]), "=f"(d[16]), \
    "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]), "=f"(d[24]), \
    "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
#define SM90_R16 \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}"
#define SM90_R32 \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define SM90_R64 \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

/* D[64 x 64] (+)= A[64 x 16] B[16 x 64], A and B K-major in shared memory */
__device__ __forceinline__ void ss_n64(float *d, uint64_t da, uint64_t db, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " SM90_R32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : SM90_D32
                 : "l"(da), "l"(db), "r"(accumulate));
}
/* D = A B as ss_n64 with accumulate 0 as an immediate and D write-only ("=f"): the registers of
 * D's previous values are free from their last use on, not held until this MMA as with the
 * read-write form (the first MMA of a chain in attention_bwd_ws.cuh's ping-pong kernel) */
__device__ __forceinline__ void ss_n64_first(float *d, uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 0, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " SM90_R32 ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : SM90_W32
                 : "l"(da), "l"(db));
}
/* D[64 x 128] (+)= A[64 x 16] B[16 x 128], A and B K-major in shared memory */
__device__ __forceinline__ void ss_n128(float *d, uint64_t da, uint64_t db, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " SM90_R64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : SM90_D64
                 : "l"(da), "l"(db), "r"(accumulate));
}
/* D[64 x 64] (+)= A[64 x 16] B[16 x 64], A from registers, B in shared memory (TNSPB above) */
template <int TNSPB>
__device__ __forceinline__ void rs_n64(float *d, const uint32_t *a, uint64_t db, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " SM90_R32 ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
                 : SM90_D32
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate), "n"(TNSPB));
}
/* D[64 x 128] (+)= A[64 x 16] B[16 x 128], A from registers, B in shared memory (TNSPB above) */
template <int TNSPB>
__device__ __forceinline__ void rs_n128(float *d, const uint32_t *a, uint64_t db, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " SM90_R64 ", {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
                 : SM90_D64
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate), "n"(TNSPB));
}
/* D[64 x 64] += A[64 x 16] B[16 x 64], A and B both MN-major in shared memory (dQ = dS K) */
__device__ __forceinline__ void ss_n64_tt(float *d, uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " SM90_R32 ", %32, %33, p, 1, 1, 1, 1;\n}\n"
                 : SM90_D32
                 : "l"(da), "l"(db), "r"(1));
}
/* D[64 x 32] += A[64 x 16] B[16 x 32], both MN-major (a 32-column slice of dQ) */
__device__ __forceinline__ void ss_n32_tt(float *d, uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 " SM90_R16 ", %16, %17, p, 1, 1, 1, 1;\n}\n"
                 : SM90_D16
                 : "l"(da), "l"(db), "r"(1));
}
#undef SM90_D16
#undef SM90_D32
#undef SM90_D64
#undef SM90_W32
#undef SM90_R16
#undef SM90_R32
#undef SM90_R64

/* ---- register budget: per-thread registers of the executing warpgroup (a producer gives them
 * back, consumers take them); counts are multiples of 8 in 24..256 ---- */
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)); }
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)); }

/* ---- transaction-count mbarriers (bar = 32-bit shared-memory address of a uint64_t) ---- */
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
/* one arrival that also tells the barrier `bytes` more will land through copies */
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* wait until the phase of parity `parity` has completed */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}
/* barrier initialisation made visible to the async proxy (TMA completes on the barriers) */
__device__ __forceinline__ void fence_mbar_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }

/* ---- TMA (map = a CUtensorMap in param / const / global memory) ---- */
/* box at coordinates (c0 innermost, c1) of a 2-D tensor map into shared memory at dst; the
 * barrier's transaction count drops by the box's bytes when they land */
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const void *map, int c0, int c1, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
                 "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
                 : "memory");
}
/* the same for a box at (c0 innermost .. c3) of a 4-D tensor map */
__device__ __forceinline__ void tma_load_4d(uint32_t dst, const void *map, int c0, int c1, int c2, int c3, uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(dst),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
        : "memory");
}
/* global box (c0 innermost .. c3) += the box at src in shared memory, as one bulk operation of
 * this thread's current bulk group */
__device__ __forceinline__ void tma_reduce_add_4d(const void *map, uint32_t src, int c0, int c1, int c2, int c3) {
    asm volatile("cp.reduce.async.bulk.tensor.4d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(
                     reinterpret_cast<uint64_t>(map)),
                 "r"(src), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
                 : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
/* at most N of this thread's bulk groups may still be reading their shared-memory source */
template <int N>
__device__ __forceinline__ void bulk_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}
/* every bulk group of this thread complete */
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

}  // namespace sm90

#endif
