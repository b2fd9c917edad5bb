/* attention.cu — CUDA causal dense / sliding-window / non-causal attention, forward and backward,
 * FlashAttention-2 style on mma.sync m16n8k16 bf16 tensor cores (sm_80+, runs on sm_90).
 * Layouts and math: attention.h.
 *
 * Forward: one block per (batch, query head, BM-row query tile); each warp owns 16*MT query rows.
 * K/V tiles of BN keys stream through double-buffered shared memory (cp.async); S = Q K^T and
 * O += P V run on tensor cores, P is reused from the S accumulators as the A operand (no trip
 * through shared memory); online softmax in the exp2 domain with fp32 row max / sum. Only key
 * tiles inside [t-W, t] of the tile's rows are visited, so SWA costs ~L*W; only tiles that cut
 * the causal diagonal, the window edge or the end of the sequence are masked element-wise.
 *
 * Backward: D = rowsum(dO*O) first; then one block per (batch, KV head, BN-key tile) with each
 * warp owning 16 keys. It visits every query tile that sees its keys, for each of the G query
 * heads of the KV head (so dk, dv accumulate in registers, no atomics), recomputing
 * P^T = exp(S^T - lse); dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - D), dK += dS^T Q;
 * dS goes through shared memory for dQ = dS K, accumulated in fp32 with atomics in the
 * workspace, and converted to bf16 (times scale) at the end.
 *
 * Shared-memory rows are padded by 16 bytes so ldmatrix over 8 rows hits 8 distinct bank groups.
 * Every offset is 64-bit: L reaches 2^24.
 *
 * On sm_90a (the H100 build) the forward and the backward for dh 64 and 128 use warpgroup MMAs
 * (wgmma) instead, with 128-byte-swizzled shared memory; a one-time probe kernel says whether the
 * loaded code is the sm_90a build, and the mma.sync kernels above stay as the fallback (plain
 * sm_90) and for dh 32. The dh-64 forward on sm_90a is the warp-specialised kernel of
 * attention_fwd_ws.cuh (TMA producer, mbarrier ring, consumer warpgroups taking turns, persistent
 * blocks; for dense causal attention the tiles come from a per-launch counter in g_fwd_sched); the plain warpgroup kernel serves dh 128, decode (Lq <= 64) and a missing tensor-map
 * encoder. Tile shapes per shape class were picked on the H100 (results/notes-attn.md).
 * attention_bwd_ws.cuh holds a warp-specialised dh-64 backward in the same style (TMA producer,
 * two consumer warpgroups, dQ added with bulk tensor reduces); its 128-query-tile kernel is the
 * dh-64 backward on sm_90a, variant 19 for windows W <= 1024 and 18 otherwise (see the dispatcher
 * in attention_backward_cuda).
 * Environment overrides for tuning runs only: LC_ATTN_WGMMA=0 (force mma.sync), LC_ATTN_FWD /
 * LC_ATTN_BWD / LC_ATTN_WG / LC_ATTN_WGB = variant number, LC_ATTN_WS_GRID = at most this many
 * persistent blocks (tests); kernels/tuning.c lists the accepted values.
 *
 * Query offset (forward only): q, o, lse hold Lq rows whose key positions are q_pos0 .. q_pos0+Lq-1
 * (attention.h); tiles run over query rows, visibility and the key range use the positions.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <type_traits>

#include <cuda.h>
#include <cudaTypedefs.h>

#include "attention.h"
#include "cuda_common.cuh"
#include "device.h"
#include "mma.cuh"
#include "sm90.cuh"

namespace {

typedef __nv_bfloat16 bf16;
using namespace lc_mma;

/* 16-byte async copy; pred false zero-fills the destination (rows past L). */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool pred) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem),
                 "r"(pred ? 16 : 0));
}
/* 4-byte async copy (lse, D rows); pred false writes 0. */
__device__ __forceinline__ void cp_async4(void *smem, const void *gmem, bool pred) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem),
                 "r"(pred ? 4 : 0));
}
/* 2^x on the SFU; -inf -> +0. */
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* Copy rows r0 .. r0+R-1 (row stride `stride` elements, D columns) into padded shared memory;
 * rows at or past L become zeros. */
template <int D, int R, int NT>
__device__ __forceinline__ void load_rows(bf16 *s, const bf16 *g, int64_t stride, int64_t r0, int64_t L,
                                          int tid) {
    constexpr int CPR = D / 8;
#pragma unroll
    for (int c = tid; c < R * CPR; c += NT) {
        const int r = c / CPR, cc = c % CPR;
        const int64_t row = r0 + r;
        const bool ok = row < L;
        cp_async16(s + r * (D + 8) + cc * 8, g + (ok ? row : 0) * stride + cc * 8, ok);
    }
}

__device__ __forceinline__ bool visible(int64_t q, int64_t k, int64_t L, int causal, int64_t W) {
    return q < L && k < L && (!causal || (k <= q && (W == 0 || q - k <= W)));
}

struct fwd_params {
    const bf16 *q, *k, *v;
    bf16 *o;
    float *lse;
    int64_t L, HQ, H, W, nqb;
    int64_t Lq, p0; /* query rows (q, o, lse hold Lq rows) and the key position of row 0 */
    int causal;
    float scale_log2; /* scale * log2(e) */
};

/* The query tile a forward block serves. 1D grid: heads fastest, then query tiles (heaviest
 * causal tiles first), then batch. Keys [kstart, kend) are all that any of its rows can see. */
template <int D>
struct fwd_tile {
    int64_t a, b;          /* query head, batch */
    int64_t i0, q0, qlast; /* first query row, its key position, position of the last stored row */
    int64_t kstart, kend;  /* kend exclusive */
    const bf16 *qg, *kg, *vg;
};
template <int D>
__device__ __forceinline__ fwd_tile<D> fwd_tile_of(const fwd_params &p, int64_t BM, int64_t idx) {
    fwd_tile<D> t;
    t.a = idx % p.HQ;
    idx /= p.HQ;
    const int64_t qr = idx % p.nqb;
    t.b = idx / p.nqb;
    const int64_t qb = p.causal ? p.nqb - 1 - qr : qr;
    const int64_t h = t.a / (p.HQ / p.H);
    t.i0 = qb * BM;
    t.q0 = p.p0 + t.i0;
    t.qlast = p.p0 + min(t.i0 + BM, p.Lq) - 1;
    t.qg = p.q + (t.b * p.Lq * p.HQ + t.a) * D;
    t.kg = p.k + (t.b * p.L * p.H + h) * D;
    t.vg = p.v + (t.b * p.L * p.H + h) * D;
    t.kend = p.causal ? t.qlast + 1 : p.L;
    t.kstart = (p.causal && p.W > 0) ? max(t.q0 - p.W, (int64_t)0) : 0;
    return t;
}

/* ---------------------------------------------------------------------------------------------
 * Forward. Block = NW warps, BM = 16*NW*MT query rows, BN keys per tile. */
template <int D, int BN, int NW, int MT>
__global__ void __launch_bounds__(NW * 32) attn_fwd_kernel(const fwd_params p) {
    constexpr int BM = 16 * NW * MT, NT = NW * 32, P = D + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sQ = reinterpret_cast<bf16 *>(smem_raw);
    bf16 *sK = sQ + BM * P; /* [2][BN][P] */
    bf16 *sV = sK + 2 * BN * P;

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const fwd_tile<D> t = fwd_tile_of<D>(p, BM, blockIdx.x);
    const int64_t a = t.a, b = t.b, i0 = t.i0, q0 = t.q0, qlast = t.qlast, kstart = t.kstart, kend = t.kend;
    const int64_t L = p.L, Lq = p.Lq, W = p.W;
    const int64_t qstride = p.HQ * D, kstride = p.H * D;
    const bf16 *qg = t.qg, *kg = t.kg, *vg = t.vg;
    const int64_t jt0 = kstart / BN, jt1 = (kend - 1) / BN;

    load_rows<D, BM, NT>(sQ, qg, qstride, i0, Lq, tid);
    load_rows<D, BN, NT>(sK, kg, kstride, jt0 * BN, L, tid);
    load_rows<D, BN, NT>(sV, vg, kstride, jt0 * BN, L, tid);
    cp_async_commit();

    float acc[MT][D / 8][4];
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int n = 0; n < D / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mt][n][e] = 0.f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
    }

    for (int64_t jt = jt0; jt <= jt1; jt++) {
        const int buf = (int)((jt - jt0) & 1);
        if (jt < jt1) {
            load_rows<D, BN, NT>(sK + (buf ^ 1) * BN * P, kg, kstride, (jt + 1) * BN, L, tid);
            load_rows<D, BN, NT>(sV + (buf ^ 1) * BN * P, vg, kstride, (jt + 1) * BN, L, tid);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16 *cK = sK + buf * BN * P, *cV = sV + buf * BN * P;

        float S[MT][BN / 8][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int n = 0; n < BN / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) S[mt][n][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                ldsm_x4(qa[mt], sQ + ((warp * MT + mt) * 16 + (lane % 16)) * P + kk * 16 + (lane / 16) * 8);
#pragma unroll
            for (int nn = 0; nn < BN / 16; nn++) {
                uint32_t kb[4];
                ldsm_x4(kb, cK + (nn * 16 + (lane % 8) + (lane / 16) * 8) * P + kk * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816(S[mt][2 * nn], qa[mt], kb[0], kb[1]);
                    mma16816(S[mt][2 * nn + 1], qa[mt], kb[2], kb[3]);
                }
            }
        }

        const int64_t k0 = jt * BN;
        const bool need_mask = k0 + BN > L || (p.causal && (k0 + BN - 1 > q0 || (W > 0 && k0 < qlast - W)));
        if (need_mask) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int n = 0; n < BN / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int64_t row = q0 + (warp * MT + mt) * 16 + g + (e >= 2 ? 8 : 0);
                        const int64_t col = k0 + n * 8 + 2 * tg + (e & 1);
                        /* rows past Lq see the last row's keys (they are never stored) so no row is empty */
                        if (!visible(row < qlast ? row : qlast, col, L, p.causal, W)) S[mt][n][e] = -INFINITY;
                    }
        }

#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = -INFINITY;
#pragma unroll
                for (int n = 0; n < BN / 8; n++) mx = fmaxf(mx, fmaxf(S[mt][n][2 * r], S[mt][n][2 * r + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
                const float m_new = fmaxf(m[mt][r], mx * p.scale_log2);
                const float m_use = m_new == -INFINITY ? 0.f : m_new;
                const float alpha = ex2(m[mt][r] - m_use);
                m[mt][r] = m_new;
                float sum = 0.f;
#pragma unroll
                for (int n = 0; n < BN / 8; n++)
#pragma unroll
                    for (int e = 2 * r; e < 2 * r + 2; e++) {
                        const float pv = ex2(fmaf(S[mt][n][e], p.scale_log2, -m_use));
                        S[mt][n][e] = pv;
                        sum += pv;
                    }
                l[mt][r] = l[mt][r] * alpha + sum;
#pragma unroll
                for (int n = 0; n < D / 8; n++) {
                    acc[mt][n][2 * r] *= alpha;
                    acc[mt][n][2 * r + 1] *= alpha;
                }
            }

#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t pa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) acc_to_a(pa[mt], S[mt][2 * kk], S[mt][2 * kk + 1]);
#pragma unroll
            for (int dn = 0; dn < D / 16; dn++) {
                uint32_t vb[4];
                ldsm_x4_t(vb, cV + (kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * P + dn * 16 + (lane / 16) * 8);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816(acc[mt][2 * dn], pa[mt], vb[0], vb[1]);
                    mma16816(acc[mt][2 * dn + 1], pa[mt], vb[2], vb[3]);
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float sum = l[mt][r];
            sum += __shfl_xor_sync(0xffffffff, sum, 1);
            sum += __shfl_xor_sync(0xffffffff, sum, 2);
            const float inv = sum > 0.f ? 1.f / sum : 0.f;
            const int64_t row = i0 + (warp * MT + mt) * 16 + g + r * 8; /* query row */
            if (row < Lq) {
                bf16 *orow = p.o + ((b * Lq + row) * p.HQ + a) * D;
#pragma unroll
                for (int n = 0; n < D / 8; n++)
                    *reinterpret_cast<uint32_t *>(orow + n * 8 + 2 * tg) =
                        pack_bf16(acc[mt][n][2 * r] * inv, acc[mt][n][2 * r + 1] * inv);
                if (tg == 0)
                    p.lse[(b * p.HQ + a) * Lq + row] =
                        sum > 0.f ? (m[mt][r] + log2f(sum)) * 0.69314718055994531f : -INFINITY;
            }
        }
}


/* ---------------------------------------------------------------------------------------------
 * Forward on Hopper (sm_90a), dh = 64 or 128: the same algorithm with warpgroup MMAs. Each warpgroup owns
 * 64 query rows; S = Q K^T is one wgmma chain with Q and K in 128-byte-swizzled shared memory
 * (K-major), O += P V takes P from registers and V MN-major (row-major [key][d] as stored).
 * Loads are cp.async (generic proxy), hence the proxy fence before the barrier. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* Rows r0 .. r0+R-1 of a [*, D] bf16 tensor into D/64 column panels of R x 128 bytes each,
 * 128-byte swizzled (the layout wgmma descriptors with swizzle mode 1 read). */
template <int R, int NT, int D = 64>
__device__ __forceinline__ void load_rows_sw(unsigned char *s, const bf16 *g, int64_t stride, int64_t r0, int64_t L,
                                             int tid) {
    constexpr int CPR = D / 8;
#pragma unroll
    for (int c = tid; c < R * CPR; c += NT) {
        const int r = c / CPR, ch = c % CPR;
        const int64_t row = r0 + r;
        const bool ok = row < L;
        cp_async16(s + (ch >> 3) * R * 128 + sm90::sw128(r, ch & 7), g + (ok ? row : 0) * stride + ch * 8, ok);
    }
}
#endif


/* Online-softmax step of one row half r (row g for r = 0, g + 8 for r = 1) of a 64 x BN score
 * tile in the wgmma accumulator layout (4 lanes share a row): the running max m (log2 units)
 * takes the tile's row max, S becomes exp2(S scale_log2 - m), `sum` gets the row sum of the
 * new S; returns alpha = exp2(m_old - m_new), the factor for the old row sum and output. */
template <int BN>
__device__ __forceinline__ float wg_softmax_row(float *S, float &m, int r, float scale_log2, float &sum) {
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < BN / 8; i++) mx = fmaxf(mx, fmaxf(S[4 * i + 2 * r], S[4 * i + 2 * r + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
    const float m_new = fmaxf(m, mx * scale_log2);
    const float m_use = m_new == -INFINITY ? 0.f : m_new;
    const float alpha = ex2(m - m_use);
    m = m_new;
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < BN / 8; i++)
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; e++) {
            const float pv = ex2(fmaf(S[4 * i + e], scale_log2, -m_use));
            S[4 * i + e] = pv;
            s += pv;
        }
    sum = s;
    return alpha;
}
/* P (the accumulator layout of S) as bf16 A fragments for the P V wgmma */
template <int BN>
__device__ __forceinline__ void wg_pack_p(uint32_t (&pa)[BN / 16][4], const float *S) {
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
        pa[kk][0] = pack_bf16(S[8 * kk + 0], S[8 * kk + 1]);
        pa[kk][1] = pack_bf16(S[8 * kk + 2], S[8 * kk + 3]);
        pa[kk][2] = pack_bf16(S[8 * kk + 4], S[8 * kk + 5]);
        pa[kk][3] = pack_bf16(S[8 * kk + 6], S[8 * kk + 7]);
    }
}

template <int D, int BN, int NWG>
__global__ void __launch_bounds__(NWG * 128) attn_fwd_wgmma_kernel(const fwd_params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BM = 64 * NWG, NT = NWG * 128, NP = D / 64; /* NP column panels of 64 */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *sQ = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023); /* 1024-aligned swizzle atoms */
    unsigned char *sK = sQ + BM * 2 * D; /* [2][NP panels][BN rows x 128 B] */
    unsigned char *sV = sK + 2 * BN * 2 * D;

    const int tid = threadIdx.x, wg = tid / 128, warp = (tid % 128) / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const fwd_tile<D> t = fwd_tile_of<D>(p, BM, blockIdx.x);
    const int64_t a = t.a, b = t.b, i0 = t.i0, q0 = t.q0, qlast = t.qlast, kstart = t.kstart, kend = t.kend;
    const int64_t L = p.L, Lq = p.Lq, W = p.W;
    const int64_t qstride = p.HQ * D, kstride = p.H * D;
    const bf16 *qg = t.qg, *kg = t.kg, *vg = t.vg;
    const int64_t jt0 = kstart / BN, jt1 = (kend - 1) / BN;

    load_rows_sw<BM, NT, D>(sQ, qg, qstride, i0, Lq, tid);
    load_rows_sw<BN, NT, D>(sK, kg, kstride, jt0 * BN, L, tid);
    load_rows_sw<BN, NT, D>(sV, vg, kstride, jt0 * BN, L, tid);
    cp_async_commit();

    float acc[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) acc[i] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    const uint32_t qaddr = smem_u32(sQ) + wg * 64 * 128;
    const int64_t row_base = q0 + wg * 64 + warp * 16 + g;

    for (int64_t jt = jt0; jt <= jt1; jt++) {
        const int buf = (int)((jt - jt0) & 1);
        if (jt < jt1) {
            load_rows_sw<BN, NT, D>(sK + (buf ^ 1) * BN * 2 * D, kg, kstride, (jt + 1) * BN, L, tid);
            load_rows_sw<BN, NT, D>(sV + (buf ^ 1) * BN * 2 * D, vg, kstride, (jt + 1) * BN, L, tid);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        sm90::fence_proxy_async();
        __syncthreads();
        const uint32_t kaddr = smem_u32(sK + buf * BN * 2 * D), vaddr = smem_u32(sV + buf * BN * 2 * D);

        float S[BN / 2];
#pragma unroll
        for (int i = 0; i < BN / 2; i++) S[i] = 0.f;
        sm90::fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const int pn = kk / 4, ko = (kk % 4) * 32; /* panel, byte offset inside the 128-byte row */
            const uint64_t da = sm90::desc_k(qaddr + pn * BM * 128 + ko);
            const uint64_t db = sm90::desc_k(kaddr + pn * BN * 128 + ko);
            if constexpr (BN == 128) sm90::ss_n128(S, da, db, 1);
            else sm90::ss_n64(S, da, db, 1);
        }
        sm90::commit();
        sm90::wait<0>();
#pragma unroll
        for (int i = 0; i < BN / 2; i++) sm90::reg_fence(S[i]);

        const int64_t k0 = jt * BN;
        const bool need_mask = k0 + BN > L || (p.causal && (k0 + BN - 1 > q0 || (W > 0 && k0 < qlast - W)));
        if (need_mask) {
#pragma unroll
            for (int i = 0; i < BN / 8; i++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int64_t row = row_base + (e >= 2 ? 8 : 0);
                    const int64_t col = k0 + i * 8 + 2 * tg + (e & 1);
                    if (!visible(row < qlast ? row : qlast, col, L, p.causal, W)) S[4 * i + e] = -INFINITY;
                }
        }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float sum;
            const float alpha = wg_softmax_row<BN>(S, m[r], r, p.scale_log2, sum);
            l[r] = l[r] * alpha + sum;
#pragma unroll
            for (int i = 0; i < D / 8; i++) {
                acc[4 * i + 2 * r] *= alpha;
                acc[4 * i + 2 * r + 1] *= alpha;
            }
        }

        uint32_t pa[BN / 16][4];
        wg_pack_p<BN>(pa, S);
        sm90::fence();
#pragma unroll
        for (int pn = 0; pn < NP; pn++) /* one n64 chain per 64-column panel of V and O */
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++)
                sm90::rs_n64<1>(acc + pn * 32, pa[kk], sm90::desc_mn(vaddr + pn * BN * 128 + kk * 16 * 128), 1);
        sm90::commit();
        sm90::wait<0>();
#pragma unroll
        for (int i = 0; i < D / 2; i++) sm90::reg_fence(acc[i]);
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
#pragma unroll
            for (int j = 0; j < 4; j++) sm90::reg_fence(pa[kk][j]);
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        float sum = l[r];
        sum += __shfl_xor_sync(0xffffffff, sum, 1);
        sum += __shfl_xor_sync(0xffffffff, sum, 2);
        const float inv = sum > 0.f ? 1.f / sum : 0.f;
        const int64_t row = row_base - p.p0 + r * 8; /* query row */
        if (row < Lq) {
            bf16 *orow = p.o + ((b * Lq + row) * p.HQ + a) * D;
#pragma unroll
            for (int i = 0; i < D / 8; i++)
                *reinterpret_cast<uint32_t *>(orow + i * 8 + 2 * tg) =
                    pack_bf16(acc[4 * i + 2 * r] * inv, acc[4 * i + 2 * r + 1] * inv);
            if (tg == 0)
                p.lse[(b * p.HQ + a) * Lq + row] = sum > 0.f ? (m[r] + log2f(sum)) * 0.69314718055994531f : -INFINITY;
        }
    }
#endif
}

/* The warp-specialised forward (TMA producer, consumer warpgroups, persistent blocks). */
#include "attention_fwd_ws.cuh"

/* ---------------------------------------------------------------------------------------------
 * Backward, step 1: D[b, a, t] = <dO, O> in fp32; one group of D/8 lanes per row. With ld set
 * (the warp-specialised dh-64 backward) it writes the packed pairs ld[b*HQ + a][t] = (lse log2(e), D)
 * instead, rows Lp apart (attention_bwd_ws.cuh reads one tile's pairs with one tensor copy). */
template <int D>
__global__ void attn_bwd_dot_kernel(const bf16 *o, const bf16 *dout, float *Dv, int64_t rows, int64_t L,
                                    int64_t HQ, const float *lse, float2 *ld, int64_t Lp) {
    constexpr int LPR = D / 8; /* lanes per row, 16 bytes each */
    const int64_t gtid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t row = gtid / LPR;
    const int part = (int)(gtid % LPR);
    float s = 0.f;
    if (row < rows) {
        const uint4 x = *reinterpret_cast<const uint4 *>(o + row * D + part * 8);
        const uint4 y = *reinterpret_cast<const uint4 *>(dout + row * D + part * 8);
        const __nv_bfloat162 *xa = reinterpret_cast<const __nv_bfloat162 *>(&x);
        const __nv_bfloat162 *ya = reinterpret_cast<const __nv_bfloat162 *>(&y);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 xf = __bfloat1622float2(xa[i]), yf = __bfloat1622float2(ya[i]);
            s += xf.x * yf.x + xf.y * yf.y;
        }
    }
#pragma unroll
    for (int off = LPR / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffff, s, off);
    if (row < rows && part == 0) {
        /* row = (b*L + t)*HQ + a  ->  [b, a, t] */
        const int64_t a = row % HQ, bt = row / HQ, t = bt % L, b = bt / L;
        if (ld) ld[(b * HQ + a) * Lp + t] = make_float2(lse[(b * HQ + a) * L + t] * 1.4426950408889634f, s);
        else Dv[(b * HQ + a) * L + t] = s;
    }
}

struct bwd_params {
    const bf16 *q, *k, *v, *dout;
    const float *lse, *Dv;
    const float2 *ld; /* packed (lse, D) pairs, [B*HQ][Lp] (warp-specialised kernel only) */
    int64_t Lp;
    float *dq_acc;
    bf16 *dk, *dv;
    int64_t L, HQ, H, W, nkb;
    int causal;
    float scale, scale_log2;
};

/* Backward, step 2. Block = NW warps over BN = 16*NW keys; query tiles of BM rows. */
template <int D, int NW, int BM>
__global__ void __launch_bounds__(NW * 32) attn_bwd_kernel(const bwd_params p) {
    constexpr int BN = 16 * NW, NT = NW * 32, P = D + 8, PS = BM + 8;
    constexpr int WQ = BM / 16, WD = NW / WQ, DW = D / WD; /* dQ: warps over (queries, dh) */
    static_assert(NW % WQ == 0 && DW % 16 == 0, "bad backward tiling");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sK = reinterpret_cast<bf16 *>(smem_raw);
    bf16 *sV = sK + BN * P;
    bf16 *sQ = sV + BN * P;     /* [2][BM][P] */
    bf16 *sdO = sQ + 2 * BM * P; /* [2][BM][P] */
    bf16 *sdS = sdO + 2 * BM * P; /* [BN][PS]: dS^T, keys x queries */
    float *sL = reinterpret_cast<float *>(sdS + BN * PS); /* [2][BM] lse */
    float *sD = sL + 2 * BM;                              /* [2][BM] */

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    int64_t idx = blockIdx.x;
    const int64_t h = idx % p.H;
    idx /= p.H;
    const int64_t kb = idx % p.nkb, b = idx / p.nkb;
    const int64_t L = p.L, HQ = p.HQ, G = HQ / p.H, W = p.W;
    const int64_t k0 = kb * BN;
    const int64_t kstride = p.H * D, qstride = HQ * D;

    const int64_t qlo = p.causal ? k0 : 0;
    const int64_t qhi = (p.causal && W > 0) ? min(L, k0 + BN + W) : L; /* exclusive */
    const int64_t qt0 = qlo / BM, nqt = (qhi - 1) / BM - qt0 + 1;
    const int64_t iters = G * nqt;

    load_rows<D, BN, NT>(sK, p.k + (b * L * p.H + h) * D, kstride, k0, L, tid);
    load_rows<D, BN, NT>(sV, p.v + (b * L * p.H + h) * D, kstride, k0, L, tid);

    auto issue = [&](int64_t it, int buf) {
        const int64_t a = h * G + it / nqt, q0 = (qt0 + it % nqt) * BM;
        load_rows<D, BM, NT>(sQ + buf * BM * P, p.q + (b * L * HQ + a) * D, qstride, q0, L, tid);
        load_rows<D, BM, NT>(sdO + buf * BM * P, p.dout + (b * L * HQ + a) * D, qstride, q0, L, tid);
        for (int i = tid; i < 2 * BM; i += NT) {
            const int64_t t = q0 + (i % BM);
            const int64_t off = (b * HQ + a) * L + (t < L ? t : 0);
            if (i < BM) cp_async4(sL + buf * BM + i, p.lse + off, t < L);
            else cp_async4(sD + buf * BM + i - BM, p.Dv + off, t < L);
        }
    };
    issue(0, 0);
    cp_async_commit();

    float dK[D / 8][4], dV[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) dK[n][e] = dV[n][e] = 0.f;

    const int64_t key_r0 = k0 + warp * 16 + g; /* keys of this thread's accumulator rows: +0, +8 */

    for (int64_t it = 0; it < iters; it++) {
        const int buf = (int)(it & 1);
        if (it + 1 < iters) {
            issue(it + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const int64_t a = h * G + it / nqt, q0 = (qt0 + it % nqt) * BM;
        const bf16 *cQ = sQ + buf * BM * P, *cdO = sdO + buf * BM * P;
        const float *cL = sL + buf * BM, *cD = sD + buf * BM;

        /* S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys x BM queries */
        float St[BM / 8][4], dPt[BM / 8][4];
#pragma unroll
        for (int n = 0; n < BM / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) St[n][e] = dPt[n][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t ka[4], va[4];
            ldsm_x4(ka, sK + (warp * 16 + (lane % 16)) * P + kk * 16 + (lane / 16) * 8);
            ldsm_x4(va, sV + (warp * 16 + (lane % 16)) * P + kk * 16 + (lane / 16) * 8);
#pragma unroll
            for (int nn = 0; nn < BM / 16; nn++) {
                uint32_t qb[4], ob[4];
                const int off = (nn * 16 + (lane % 8) + (lane / 16) * 8) * P + kk * 16 + ((lane / 8) % 2) * 8;
                ldsm_x4(qb, cQ + off);
                ldsm_x4(ob, cdO + off);
                mma16816(St[2 * nn], ka, qb[0], qb[1]);
                mma16816(St[2 * nn + 1], ka, qb[2], qb[3]);
                mma16816(dPt[2 * nn], va, ob[0], ob[1]);
                mma16816(dPt[2 * nn + 1], va, ob[2], ob[3]);
            }
        }

        const bool need_mask = q0 + BM > L || k0 + BN > L ||
                               (p.causal && (q0 < k0 + BN - 1 || (W > 0 && q0 + BM - 1 > k0 + W)));
        /* P^T and dS^T in place */
#pragma unroll
        for (int n = 0; n < BM / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int qi = n * 8 + 2 * tg + (e & 1);
                float pv = ex2(fmaf(St[n][e], p.scale_log2, -cL[qi] * 1.4426950408889634f));
                if (need_mask && !visible(q0 + qi, key_r0 + (e >= 2 ? 8 : 0), L, p.causal, W)) pv = 0.f;
                St[n][e] = pv;
                dPt[n][e] = pv * (dPt[n][e] - cD[qi]);
            }

        /* dS^T to shared memory (bf16) for dQ */
#pragma unroll
        for (int n = 0; n < BM / 8; n++) {
            *reinterpret_cast<uint32_t *>(sdS + (warp * 16 + g) * PS + n * 8 + 2 * tg) = pack_bf16(dPt[n][0], dPt[n][1]);
            *reinterpret_cast<uint32_t *>(sdS + (warp * 16 + g + 8) * PS + n * 8 + 2 * tg) = pack_bf16(dPt[n][2], dPt[n][3]);
        }

        /* dV += P^T dO, dK += dS^T Q (queries are the reduction dimension) */
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++) {
            uint32_t pa[4], sa[4];
            acc_to_a(pa, St[2 * kk], St[2 * kk + 1]);
            acc_to_a(sa, dPt[2 * kk], dPt[2 * kk + 1]);
#pragma unroll
            for (int dn = 0; dn < D / 16; dn++) {
                uint32_t ob[4], qb[4];
                const int off = (kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * P + dn * 16 + (lane / 16) * 8;
                ldsm_x4_t(ob, cdO + off);
                ldsm_x4_t(qb, cQ + off);
                mma16816(dV[2 * dn], pa, ob[0], ob[1]);
                mma16816(dV[2 * dn + 1], pa, ob[2], ob[3]);
                mma16816(dK[2 * dn], sa, qb[0], qb[1]);
                mma16816(dK[2 * dn + 1], sa, qb[2], qb[3]);
            }
        }
        __syncthreads(); /* sdS complete */

        /* dQ (BM x D) = dS (BM x BN) K (BN x D): warp (wq, wd) owns 16 queries x DW columns */
        {
            const int wq = warp % WQ, wd = warp / WQ;
            float dQ[DW / 8][4];
#pragma unroll
            for (int n = 0; n < DW / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) dQ[n][e] = 0.f;
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                uint32_t da[4];
                ldsm_x4_t(da, sdS + (kk * 16 + (lane % 8) + ((lane / 8) / 2) * 8) * PS + wq * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
                for (int dn = 0; dn < DW / 16; dn++) {
                    uint32_t kb2[4];
                    ldsm_x4_t(kb2, sK + (kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * P + wd * DW + dn * 16 + (lane / 16) * 8);
                    mma16816(dQ[2 * dn], da, kb2[0], kb2[1]);
                    mma16816(dQ[2 * dn + 1], da, kb2[2], kb2[3]);
                }
            }
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int64_t t = q0 + wq * 16 + g + r * 8;
                if (t < L) {
                    float *dst = p.dq_acc + ((b * L + t) * HQ + a) * D + wd * DW + 2 * tg;
#pragma unroll
                    for (int n = 0; n < DW / 8; n++)
                        atomicAdd(reinterpret_cast<float2 *>(dst + n * 8), make_float2(dQ[n][2 * r], dQ[n][2 * r + 1]));
                }
            }
        }
        __syncthreads(); /* buffers and sdS free for the next iteration */
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t key = key_r0 + r * 8;
        if (key < L) {
            bf16 *dkr = p.dk + ((b * L + key) * p.H + h) * D, *dvr = p.dv + ((b * L + key) * p.H + h) * D;
#pragma unroll
            for (int n = 0; n < D / 8; n++) {
                *reinterpret_cast<uint32_t *>(dkr + n * 8 + 2 * tg) = pack_bf16(dK[n][2 * r] * p.scale, dK[n][2 * r + 1] * p.scale);
                *reinterpret_cast<uint32_t *>(dvr + n * 8 + 2 * tg) = pack_bf16(dV[n][2 * r], dV[n][2 * r + 1]);
            }
        }
    }
}


/* Backward on Hopper (sm_90a), dh = 64 or 128: each warpgroup owns 64 keys (BN = 64 * NWG keys
 * per block), query tiles of BM = 64 rows. S^T = K Q^T and dP^T = V dO^T run with both operands
 * in shared memory (K-major, D/64 column panels); dV += P^T dO and dK += dS^T Q take P^T, dS^T
 * from registers and dO, Q MN-major; dS^T also goes to swizzled shared memory for dQ = dS K
 * (both operands MN-major), added to the fp32 workspace with vector atomics.
 * SPLIT = 1: dQ is reduced over all BN keys of the block in the MMA (one barrier for the whole
 * block) and warpgroup w computes the columns w*D/NWG .. of it, so each (key block, query tile)
 * pair sends one tile of atomics instead of NWG. SPLIT = 0: each warpgroup sends its own 64-key
 * partial (the first version). dQ is computed in chunks of at most 64 columns to bound registers. */
template <int D, int NWG, int SPLIT>
__global__ void __launch_bounds__(NWG * 128, 1) attn_bwd_wgmma_kernel(const bwd_params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int BN = 64 * NWG, BM = 64, NT = NWG * 128, NP = D / 64;
    constexpr int DQ = SPLIT ? D / NWG : D; /* dQ columns per warpgroup */
    constexpr int QC = DQ < 64 ? DQ : 64;   /* columns per dQ chunk */
    constexpr int QK = SPLIT ? BN : 64;     /* keys reduced per dQ MMA chain */
    static_assert(QC == 32 || QC == 64, "dQ chunk must be 32 or 64 columns");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *sK = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023); /* [NP][BN x 128 B] */
    unsigned char *sV = sK + BN * 2 * D;
    unsigned char *sQ = sV + BN * 2 * D;       /* [2][NP][BM x 128 B] */
    unsigned char *sdO = sQ + 2 * BM * 2 * D;  /* [2][NP][BM x 128 B] */
    unsigned char *sdS = sdO + 2 * BM * 2 * D; /* dS^T [BN keys x 64 queries] */
    float *sL = reinterpret_cast<float *>(sdS + BN * 128);
    float *sD = sL + 2 * BM;

    const int tid = threadIdx.x, wg = tid / 128, warp = (tid % 128) / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    int64_t idx = blockIdx.x;
    const int64_t h = idx % p.H;
    idx /= p.H;
    const int64_t kb = idx % p.nkb, b = idx / p.nkb;
    const int64_t L = p.L, HQ = p.HQ, G = HQ / p.H, W = p.W;
    const int64_t k0 = kb * BN;
    const int64_t kstride = p.H * D, qstride = HQ * D;
    const int64_t qlo = p.causal ? k0 : 0;
    const int64_t qhi = (p.causal && W > 0) ? min(L, k0 + BN + W) : L;
    const int64_t qt0 = qlo / BM, nqt = (qhi - 1) / BM - qt0 + 1;
    const int64_t iters = G * nqt;

    load_rows_sw<BN, NT, D>(sK, p.k + (b * L * p.H + h) * D, kstride, k0, L, tid);
    load_rows_sw<BN, NT, D>(sV, p.v + (b * L * p.H + h) * D, kstride, k0, L, tid);
    auto issue = [&](int64_t it, int buf) {
        const int64_t a = h * G + it / nqt, q0 = (qt0 + it % nqt) * BM;
        load_rows_sw<BM, NT, D>(sQ + buf * BM * 2 * D, p.q + (b * L * HQ + a) * D, qstride, q0, L, tid);
        load_rows_sw<BM, NT, D>(sdO + buf * BM * 2 * D, p.dout + (b * L * HQ + a) * D, qstride, q0, L, tid);
        for (int i = tid; i < 2 * BM; i += NT) {
            const int64_t t = q0 + (i % BM);
            const int64_t off = (b * HQ + a) * L + (t < L ? t : 0);
            if (i < BM) cp_async4(sL + buf * BM + i, p.lse + off, t < L);
            else cp_async4(sD + buf * BM + i - BM, p.Dv + off, t < L);
        }
    };
    issue(0, 0);
    cp_async_commit();

    float dK[D / 2], dV[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; i++) dK[i] = dV[i] = 0.f;
    const int64_t key_r0 = k0 + wg * 64 + warp * 16 + g;
    const uint32_t kA = smem_u32(sK) + wg * 64 * 128, vA = smem_u32(sV) + wg * 64 * 128;
    /* dQ operands: dS^T rows (keys) and K rows of the keys this warpgroup reduces over */
    const uint32_t dsA = smem_u32(sdS) + (SPLIT ? 0 : wg * 64 * 128);
    const uint32_t kQ = smem_u32(sK) + (SPLIT ? 0 : wg * 64 * 128);
    const int srow = wg * 64 + warp * 16 + g; /* this thread's dS^T rows: srow, srow + 8 */

    for (int64_t it = 0; it < iters; it++) {
        const int buf = (int)(it & 1);
        if (it + 1 < iters) {
            issue(it + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        sm90::fence_proxy_async();
        __syncthreads();
        const int64_t a = h * G + it / nqt, q0 = (qt0 + it % nqt) * BM;
        const uint32_t qB = smem_u32(sQ + buf * BM * 2 * D), oB = smem_u32(sdO + buf * BM * 2 * D);
        const float *cL = sL + buf * BM, *cD = sD + buf * BM;

        float St[32], dPt[32];
#pragma unroll
        for (int i = 0; i < 32; i++) {
            St[i] = dPt[i] = 0.f;
            sm90::reg_fence(St[i]); /* materialise the zeros before the fence, not between the wgmmas */
            sm90::reg_fence(dPt[i]);
        }
        sm90::fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const int pn = kk / 4, ko = (kk % 4) * 32;
            sm90::ss_n64(St, sm90::desc_k(kA + pn * BN * 128 + ko), sm90::desc_k(qB + pn * BM * 128 + ko), 1);
        }
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const int pn = kk / 4, ko = (kk % 4) * 32;
            sm90::ss_n64(dPt, sm90::desc_k(vA + pn * BN * 128 + ko), sm90::desc_k(oB + pn * BM * 128 + ko), 1);
        }
        sm90::commit();
        sm90::wait<0>();
#pragma unroll
        for (int i = 0; i < 32; i++) {
            sm90::reg_fence(St[i]);
            sm90::reg_fence(dPt[i]);
        }

        const bool need_mask = q0 + BM > L || k0 + BN > L ||
                               (p.causal && (q0 < k0 + BN - 1 || (W > 0 && q0 + BM - 1 > k0 + W)));
        if (need_mask) {
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int qi = i * 8 + 2 * tg + (e & 1);
                    float pv = ex2(fmaf(St[4 * i + e], p.scale_log2, -cL[qi] * 1.4426950408889634f));
                    if (!visible(q0 + qi, key_r0 + (e >= 2 ? 8 : 0), L, p.causal, W)) pv = 0.f;
                    St[4 * i + e] = pv;
                    dPt[4 * i + e] = pv * (dPt[4 * i + e] - cD[qi]);
                }
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int qi = i * 8 + 2 * tg + (e & 1);
                    const float pv = ex2(fmaf(St[4 * i + e], p.scale_log2, -cL[qi] * 1.4426950408889634f));
                    St[4 * i + e] = pv;
                    dPt[4 * i + e] = pv * (dPt[4 * i + e] - cD[qi]);
                }
        }
        uint32_t pa[4][4], sa[4][4];
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                pa[kk][j] = pack_bf16(St[8 * kk + 2 * j], St[8 * kk + 2 * j + 1]);
                sa[kk][j] = pack_bf16(dPt[8 * kk + 2 * j], dPt[8 * kk + 2 * j + 1]);
            }
        /* dS^T rows to shared memory, 128-byte swizzle (chunk i = queries 8i .. 8i+7) */
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int off = ((i ^ (srow & 7)) << 4) + 4 * tg;
            *reinterpret_cast<uint32_t *>(sdS + srow * 128 + off) = sa[i / 2][(i % 2) * 2];
            *reinterpret_cast<uint32_t *>(sdS + (srow + 8) * 128 + off) = sa[i / 2][(i % 2) * 2 + 1];
        }
        sm90::fence_proxy_async();
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                sm90::reg_fence(pa[kk][j]);
                sm90::reg_fence(sa[kk][j]);
            }
        sm90::fence();
#pragma unroll
        for (int pn = 0; pn < NP; pn++)
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
                sm90::rs_n64<1>(dV + pn * 32, pa[kk], sm90::desc_mn(oB + pn * BM * 128 + kk * 16 * 128), 1);
#pragma unroll
        for (int pn = 0; pn < NP; pn++)
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
                sm90::rs_n64<1>(dK + pn * 32, sa[kk], sm90::desc_mn(qB + pn * BM * 128 + kk * 16 * 128), 1);
        sm90::commit();
        if (SPLIT) asm volatile("bar.sync 1, %0;\n" ::"n"(NT) : "memory"); /* every warpgroup's dS^T is in place */
        else asm volatile("bar.sync %0, 128;\n" ::"r"(wg + 1) : "memory"); /* this warpgroup's dS^T is in place */
#pragma unroll
        for (int c = 0; c < DQ / QC; c++) {
            const int col0 = (SPLIT ? wg * DQ : 0) + c * QC; /* first dQ column of this chunk */
            const uint32_t kcol = kQ + (col0 / 64) * BN * 128 + (col0 % 64) * 2;
            float dQ[QC / 2];
#pragma unroll
            for (int i = 0; i < QC / 2; i++) {
                dQ[i] = 0.f;
                sm90::reg_fence(dQ[i]);
            }
            sm90::fence();
#pragma unroll
            for (int kk = 0; kk < QK / 16; kk++) {
                if constexpr (QC == 64)
                    sm90::ss_n64_tt(dQ, sm90::desc_mn(dsA + kk * 16 * 128), sm90::desc_mn(kcol + kk * 16 * 128));
                else
                    sm90::ss_n32_tt(dQ, sm90::desc_mn(dsA + kk * 16 * 128), sm90::desc_mn(kcol + kk * 16 * 128));
            }
            sm90::commit();
            sm90::wait<0>();
#pragma unroll
            for (int i = 0; i < QC / 2; i++) sm90::reg_fence(dQ[i]);
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int64_t t = q0 + warp * 16 + g + r * 8;
                if (t < L) {
                    float *dst = p.dq_acc + ((b * L + t) * HQ + a) * D + col0 + 2 * tg;
#pragma unroll
                    for (int i = 0; i < QC / 8; i++)
                        atomicAdd(reinterpret_cast<float2 *>(dst + i * 8), make_float2(dQ[4 * i + 2 * r], dQ[4 * i + 2 * r + 1]));
                }
            }
        }
        sm90::wait<0>();
#pragma unroll
        for (int i = 0; i < D / 2; i++) {
            sm90::reg_fence(dK[i]);
            sm90::reg_fence(dV[i]);
        }
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                sm90::reg_fence(pa[kk][j]);
                sm90::reg_fence(sa[kk][j]);
            }
        __syncthreads();
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int64_t key = key_r0 + r * 8;
        if (key < L) {
            bf16 *dkr = p.dk + ((b * L + key) * p.H + h) * D, *dvr = p.dv + ((b * L + key) * p.H + h) * D;
#pragma unroll
            for (int i = 0; i < D / 8; i++) {
                *reinterpret_cast<uint32_t *>(dkr + i * 8 + 2 * tg) =
                    pack_bf16(dK[4 * i + 2 * r] * p.scale, dK[4 * i + 2 * r + 1] * p.scale);
                *reinterpret_cast<uint32_t *>(dvr + i * 8 + 2 * tg) = pack_bf16(dV[4 * i + 2 * r], dV[4 * i + 2 * r + 1]);
            }
        }
    }
#endif
}

#include "attention_bwd_ws.cuh"

/* Backward, step 3: dq = bf16(scale * dq_acc), 4 values per thread. */
__global__ void attn_bwd_dq_kernel(const float *acc, bf16 *dq, int64_t n4, float scale) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n4) {
        const float4 x = reinterpret_cast<const float4 *>(acc)[i];
        uint2 y;
        y.x = pack_bf16(x.x * scale, x.y * scale);
        y.y = pack_bf16(x.z * scale, x.w * scale);
        reinterpret_cast<uint2 *>(dq)[i] = y;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Launchers */
template <int D, int BN, int NW, int MT>
lc_status launch_fwd(const fwd_params &p0, int64_t B, cudaStream_t st) {
    constexpr int BM = 16 * NW * MT;
    fwd_params p = p0;
    p.nqb = (p.Lq + BM - 1) / BM;
    const size_t smem = (size_t)(BM + 4 * BN) * (D + 8) * sizeof(bf16);
    const int64_t blocks = p.nqb * p.HQ * B;
    if (blocks > 0x7fffffffLL)
        return lc_errorf(LC_EUNSUPPORTED, "attention_forward_cuda: B*HQ*ceil(L/%d) = %lld blocks exceed the grid", BM,
                         (long long)blocks);
    cuda_check(cudaFuncSetAttribute(attn_fwd_kernel<D, BN, NW, MT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    attn_fwd_kernel<D, BN, NW, MT><<<(unsigned)blocks, NW * 32, smem, st>>>(p);
    cuda_check_launch("attn_fwd_kernel");
    return LC_OK;
}


template <int D, int BN, int NWG>
lc_status launch_fwd_wgmma(const fwd_params &p0, int64_t B, cudaStream_t st) {
    constexpr int BM = 64 * NWG;
    fwd_params p = p0;
    p.nqb = (p.Lq + BM - 1) / BM;
    const size_t smem = (size_t)(BM + 4 * BN) * 2 * D + 1024;
    const int64_t blocks = p.nqb * p.HQ * B;
    if (blocks > 0x7fffffffLL)
        return lc_errorf(LC_EUNSUPPORTED, "attention_forward_cuda: B*HQ*ceil(L/%d) = %lld blocks exceed the grid", BM,
                         (long long)blocks);
    cuda_check(cudaFuncSetAttribute(attn_fwd_wgmma_kernel<D, BN, NWG>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    attn_fwd_wgmma_kernel<D, BN, NWG><<<(unsigned)blocks, NWG * 128, smem, st>>>(p);
    cuda_check_launch("attn_fwd_wgmma_kernel");
    return LC_OK;
}

/* A 4-D tensor map over a [B][rows][heads][64] tensor (innermost first: 64, heads, rows, B) of
 * bf16 (or fp32, elem = 4) whose box is `box_cols` columns of one head's `box_rows` rows,
 * 128-byte swizzled. 0 when the driver entry point is missing or the encoder refuses (pointer
 * not 16-byte aligned, say): callers fall back. */
int ws_tensor_map(CUtensorMap *m, const void *base, int64_t B, int64_t rows, int64_t heads, int box_rows,
                  int elem = 2, int box_cols = 64) {
    PFN_cuTensorMapEncodeTiled_v12000 encode = lc_tensor_map_encoder();
    if (!encode || ((uintptr_t)base & 15)) return 0;
    const cuuint64_t dims[4] = {64, (cuuint64_t)heads, (cuuint64_t)rows, (cuuint64_t)B};
    const cuuint64_t strides[3] = {(cuuint64_t)(64 * elem), (cuuint64_t)(heads * 64 * elem), (cuuint64_t)(rows * heads * 64 * elem)};
    const cuuint32_t box[4] = {(cuuint32_t)box_cols, 1, (cuuint32_t)box_rows, 1}, estr[4] = {1, 1, 1, 1};
    return encode(m, elem == 4 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void *>(base),
                  dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                  CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/* A 2-D tensor map over the packed (lse, D) buffer, fp32 [rows][Lp][2]: 2L valid floats per row
 * (the rest of the row and every box element past 2L arrive as zeros), rows 8*Lp bytes apart
 * (Lp a multiple of 4, the stride a multiple of 16 bytes); box = one tile's 64 pairs. */
int ld_tensor_map(CUtensorMap *m, const float2 *base, int64_t rows, int64_t L, int64_t Lp, int box_floats = 128) {
    PFN_cuTensorMapEncodeTiled_v12000 encode = lc_tensor_map_encoder();
    if (!encode || ((uintptr_t)base & 15) || (Lp & 3) || L > Lp || 2 * L < box_floats) return 0;
    const cuuint64_t dims[2] = {(cuuint64_t)(2 * L), (cuuint64_t)rows};
    const cuuint64_t strides[1] = {(cuuint64_t)(Lp * 8)};
    const cuuint32_t box[2] = {(cuuint32_t)box_floats, 1}, estr[2] = {1, 1};
    return encode(m, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, const_cast<float2 *>(base), dims, strides, box, estr,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

int sm_count() {
    static int n = 0;
    if (n == 0) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            n <= 0) {
            cudaGetLastError();
            n = 132;
        }
    }
    return n;
}

/* Tile counters of the dynamically scheduled forward (DYN): {next tile, blocks done} per launch.
 * Each launch takes the next of 64 pairs in turn (so launches on different streams do not share
 * one unless 64 launches are in flight) and its last block resets the pair to zero. */
__device__ unsigned long long g_fwd_sched[64][2];
lc_status fwd_sched_slot(unsigned long long **slot) {
    static unsigned long long *base[16]; /* per device: each has its own copy of g_fwd_sched */
    static unsigned turn = 0;
    int dev = 0;
    cuda_check(cudaGetDevice(&dev));
    if (dev < 0 || dev >= 16)
        return lc_errorf(LC_EUNSUPPORTED, "attention_forward_cuda: device %d: the tile counters cover devices 0..15", dev);
    if (!base[dev]) {
        void *a = NULL;
        cuda_check(cudaGetSymbolAddress(&a, g_fwd_sched));
        base[dev] = static_cast<unsigned long long *>(a);
    }
    *slot = base[dev] + 2 * (__atomic_fetch_add(&turn, 1u, __ATOMIC_RELAXED) % 64);
    return LC_OK;
}

/* The warp-specialised dh-64 forward; *ran = 0 (and nothing launched) when no tensor map could
 * be made, so the caller takes the plain warpgroup kernel. DYN: tiles handed out by a counter
 * (in the order of fwd_tile_of) instead of p, p + grid, ... */
template <int BN, int NCWG, int STAGES, int QR, int I32 = 0, int DYN = 0>
lc_status launch_fwd_ws(const fwd_params &p0, int64_t B, cudaStream_t st, int *ran) {
    constexpr int BM = 64 * NCWG;
    fwd_params p = p0;
    p.nqb = (p.Lq + BM - 1) / BM;
    *ran = 0;
    if (I32 && (p.L >= ((int64_t)1 << 30) || p.p0 + p.Lq >= ((int64_t)1 << 30) || p.nqb * p.HQ * B >= ((int64_t)1 << 30)))
        return LC_OK; /* int32 positions and tile indices */
    CUtensorMap tq, tk, tv;
    if (!ws_tensor_map(&tq, p.q, B, p.Lq, p.HQ, BM) || !ws_tensor_map(&tk, p.k, B, p.L, p.H, BN) ||
        !ws_tensor_map(&tv, p.v, B, p.L, p.H, BN))
        return LC_OK;
    const int64_t ntiles = p.nqb * p.HQ * B;
    int64_t grid = ntiles < sm_count() ? ntiles : sm_count();
    const int cap = (int)lc_tuning_int("LC_ATTN_WS_GRID", 0); /* tests: few blocks, many tiles each */
    if (cap > 0 && cap < grid) grid = cap;
    const size_t smem = ws_smem_bytes<BN, NCWG, STAGES>();
    unsigned long long *sched = nullptr;
    if (DYN) {
        const lc_status e = fwd_sched_slot(&sched);
        if (e != LC_OK) return e;
    }
    auto kern = attn_fwd_ws_kernel<BN, NCWG, STAGES, QR, I32, DYN>;
    cuda_check(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kern<<<(unsigned)grid, (NCWG + 1) * 128, smem, st>>>(p, tq, tk, tv, ntiles, sched);
    cuda_check_launch("attn_fwd_ws_kernel");
    *ran = 1;
    return LC_OK;
}



template <int D, int NWG, int SPLIT>
lc_status launch_bwd_wgmma(const bwd_params &p0, int64_t B, cudaStream_t st) {
    constexpr int BN = 64 * NWG, BM = 64;
    bwd_params p = p0;
    p.nkb = (p.L + BN - 1) / BN;
    const size_t smem = (size_t)(2 * BN + 4 * BM) * 2 * D + (size_t)BN * 128 + 4 * BM * sizeof(float) + 1024;
    const int64_t blocks = p.nkb * p.H * B;
    if (blocks > 0x7fffffffLL)
        return lc_errorf(LC_EUNSUPPORTED, "attention_backward_cuda: too many blocks (%lld)", (long long)blocks);
    cuda_check(cudaFuncSetAttribute(attn_bwd_wgmma_kernel<D, NWG, SPLIT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    attn_bwd_wgmma_kernel<D, NWG, SPLIT><<<(unsigned)blocks, NWG * 128, smem, st>>>(p);
    cuda_check_launch("attn_bwd_wgmma_kernel");
    return LC_OK;
}

/* The warp-specialised dh-64 backward; *ran = 0 (and nothing launched) when the shape does not
 * suit the bulk tensor copies (below) or a tensor map could not be made, so the caller takes the
 * plain warpgroup kernel (short or odd-sized inputs; the speed matters at long L). */
template <int NCWG, int SPLIT, int STAGES, int OVL, int KR>
lc_status launch_bwd_ws(const bwd_params &p0, int64_t B, cudaStream_t st, int *ran) {
    constexpr int BN = 64 * NCWG;
    bwd_params p = p0;
    p.nkb = (p.L + BN - 1) / BN;
    *ran = 0;
    CUtensorMap tq, tdo, tk, tv, tdq, tld;
    /* a box may not be larger than its tensor: L >= BN rows */
    if (p.L < BN || !p.ld || !ws_tensor_map(&tq, p.q, B, p.L, p.HQ, 64) || !ws_tensor_map(&tdo, p.dout, B, p.L, p.HQ, 64) ||
        !ws_tensor_map(&tk, p.k, B, p.L, p.H, BN) || !ws_tensor_map(&tv, p.v, B, p.L, p.H, BN) ||
        !ws_tensor_map(&tdq, p.dq_acc, B, p.L, p.HQ, 64, 4, 32) || !ld_tensor_map(&tld, p.ld, B * p.HQ, p.L, p.Lp))
        return LC_OK;
    const int64_t nitems = p.nkb * p.H * B;
    int64_t grid = nitems < sm_count() ? nitems : sm_count();
    const int cap = (int)lc_tuning_int("LC_ATTN_WS_GRID", 0); /* tests: few blocks, many items each */
    if (cap > 0 && cap < grid) grid = cap;
    const size_t smem = bws_smem<NCWG, SPLIT, STAGES>::total;
    cuda_check(cudaFuncSetAttribute(attn_bwd_ws_kernel<NCWG, SPLIT, STAGES, OVL, KR>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    attn_bwd_ws_kernel<NCWG, SPLIT, STAGES, OVL, KR><<<(unsigned)grid, (NCWG + 1) * 128, smem, st>>>(p, tq, tdo, tk, tv, tdq, tld, nitems);
    cuda_check_launch("attn_bwd_ws_kernel");
    *ran = 1;
    return LC_OK;
}

/* attn7: the 128-query-tile backward of attention_bwd_ws.cuh (variant 18); the same fallback
 * conditions as launch_bwd_ws (L >= 128: the Q, dO boxes are 128 rows, the (lse, D) box 256 floats). */
template <int OV>
lc_status launch_bwd_bq(const bwd_params &p0, int64_t B, cudaStream_t st, int *ran) {
    constexpr int BN = bwq_smem::BN, BM = bwq_smem::BM;
    bwd_params p = p0;
    p.nkb = (p.L + BN - 1) / BN;
    *ran = 0;
    CUtensorMap tq, tdo, tk, tv, tdq, tld;
    if (p.L < BN || p.L < BM || p.L >= ((int64_t)1 << 30) || !p.ld || !ws_tensor_map(&tq, p.q, B, p.L, p.HQ, BM) ||
        !ws_tensor_map(&tdo, p.dout, B, p.L, p.HQ, BM) || !ws_tensor_map(&tk, p.k, B, p.L, p.H, BN) ||
        !ws_tensor_map(&tv, p.v, B, p.L, p.H, BN) || !ws_tensor_map(&tdq, p.dq_acc, B, p.L, p.HQ, 64, 4, 32) ||
        !ld_tensor_map(&tld, p.ld, B * p.HQ, p.L, p.Lp, 2 * BM))
        return LC_OK;
    const int64_t nitems = p.nkb * p.H * B;
    if (nitems >= ((int64_t)1 << 31) - 1024) return LC_OK; /* int32 item indices in the producer */
    int64_t grid = nitems < sm_count() ? nitems : sm_count();
    const int cap = (int)lc_tuning_int("LC_ATTN_WS_GRID", 0); /* tests: few blocks, many items each */
    if (cap > 0 && cap < grid) grid = cap;
    const size_t smem = bwq_smem::alloc;
    cuda_check(cudaFuncSetAttribute(attn_bwd_bq_kernel<OV>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    attn_bwd_bq_kernel<OV><<<(unsigned)grid, 384, smem, st>>>(p, tq, tdo, tk, tv, tdq, tld, nitems);
    cuda_check_launch("attn_bwd_bq_kernel");
    *ran = 1;
    return LC_OK;
}

template <int D, int NW, int BM>
lc_status launch_bwd(const bwd_params &p0, int64_t B, cudaStream_t st) {
    constexpr int BN = 16 * NW;
    bwd_params p = p0;
    p.nkb = (p.L + BN - 1) / BN;
    const size_t smem = (size_t)(2 * BN + 4 * BM) * (D + 8) * sizeof(bf16) + (size_t)BN * (BM + 8) * sizeof(bf16) +
                        4 * BM * sizeof(float);
    const int64_t blocks = p.nkb * p.H * B;
    if (blocks > 0x7fffffffLL)
        return lc_errorf(LC_EUNSUPPORTED, "attention_backward_cuda: too many blocks (%lld)", (long long)blocks);
    cuda_check(cudaFuncSetAttribute(attn_bwd_kernel<D, NW, BM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    attn_bwd_kernel<D, NW, BM><<<(unsigned)blocks, NW * 32, smem, st>>>(p);
    cuda_check_launch("attn_bwd_kernel");
    return LC_OK;
}

__global__ void attn_fill_kernel(bf16 *x, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        x[i] = __float2bfloat16(scale * (2.f * (float)(z >> 40) * (1.f / 16777216.f) - 1.f));
    }
}


size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

} // namespace

extern "C" lc_status attention_forward_cuda(const struct attn_shape *s, const bf16_t *q, const bf16_t *k,
                                            const bf16_t *v, bf16_t *o, float *lse, void *stream) {
    lc_nvtx_range nvtx_range("attention.fwd");
    LC_TRY(attention_cuda_supported(s));
    LC_TRY(lc_tuning_check());
    LC_REQUIRE(q && k && v && o && lse, "attention_forward_cuda: q, k, v, o and lse must be non-NULL");
    fwd_params p;
    p.q = reinterpret_cast<const bf16 *>(q);
    p.k = reinterpret_cast<const bf16 *>(k);
    p.v = reinterpret_cast<const bf16 *>(v);
    p.o = reinterpret_cast<bf16 *>(o);
    p.lse = lse;
    p.L = s->L, p.HQ = s->HQ, p.H = s->H, p.W = s->causal ? s->W : 0, p.nqb = 0;
    p.Lq = attention_q_len(s), p.p0 = attention_q_pos0(s);
    p.causal = s->causal;
    p.scale_log2 = attention_scale(s) * 1.4426950408889634f;
    cudaStream_t st = lc_stream(stream);
    /* Defaults from the H100 tuning runs (results/notes-attn.md): 64-row query tiles for narrow
     * windows at dh 64 (less masked work per tile), 128 rows otherwise. Few query rows (decode,
     * short segments) take the 64-row tiles too: a bigger tile would be mostly empty rows. */
    const bool narrow = (s->causal && s->W > 0 && s->W <= 1024) || p.Lq <= 64;
    const int var = (int)lc_tuning_int("LC_ATTN_FWD", s->dh == 64 ? (narrow ? 3 : 0) : 3);
    switch (s->dh) {
    case 32: return launch_fwd<32, 64, 4, 2>(p, s->B, st);
    case 64:
        if (lc_tuning_int("LC_ATTN_WGMMA", 1) && lc_cuda_have_sm90a()) {
            /* attn3 runs 2-3 (notes): the warp-specialised kernel with turns, 3 consumer warpgroups;
             * narrow windows 64-key tiles with Q in registers (13), otherwise 128-key tiles with int32
             * bookkeeping (24, attn5; the default since attn8's H100 run: 0 spills, 3-10% faster than 16);
             * dense causal: 24 with the tiles handed out by a counter (40, attn10: the tiles' work
             * runs from 1 to L/128 key tiles, and a greedy hand-out balances the blocks; 17.1 vs
             * 18.4 ms at L = 64K on the H100; no gain for windows, whose tiles are all alike);
             * a handful of query rows (decode) keeps the plain 64-row kernel */
            const int dflt = p.Lq <= 64 ? 1 : narrow ? 13 : (s->causal && s->W == 0) ? 40 : 24;
            int ran = 0;
            lc_status e = LC_OK;
            /* <BN, consumer warpgroups, ring slots, Q in registers, int32 bookkeeping>; every form
             * has 3 consumer warpgroups taking turns, 40 = 24 with dynamic tiles. 24 and 40 fall
             * back to 16 where int32 positions or tile indices would not do (L, q_pos0 + Lq or the
             * tile count at 2^30). Removed after
             * the H100 runs of results/notes-attn.md: attn3's 8, 11, 15 (no turns, 2 warpgroups),
             * attn5's 25 (13 in int32: no faster), attn8's lazy rescale, exp2 on the FMA pipe and
             * row sums on the tensor cores (26, 27: none faster). */
            const int wv = (int)lc_tuning_int("LC_ATTN_WG", dflt);
            switch (wv) {
            case 13: e = launch_fwd_ws<64, 3, 4, 1>(p, s->B, st, &ran); break;
            case 16: e = launch_fwd_ws<128, 3, 3, 0>(p, s->B, st, &ran); break;
            case 24: e = launch_fwd_ws<128, 3, 3, 0, 1>(p, s->B, st, &ran); break;
            case 40: e = launch_fwd_ws<128, 3, 3, 0, 1, 1>(p, s->B, st, &ran); break;
            default: break;
            }
            if (e == LC_OK && !ran && (wv == 24 || wv == 40)) e = launch_fwd_ws<128, 3, 3, 0>(p, s->B, st, &ran);
            if (e != LC_OK || ran) return e;
            switch (wv) {
            case 1: return launch_fwd_wgmma<64, 64, 1>(p, s->B, st);
            case 2: return launch_fwd_wgmma<64, 64, 2>(p, s->B, st);
            case 3: return launch_fwd_wgmma<64, 128, 1>(p, s->B, st);
            case 4: return launch_fwd_wgmma<64, 128, 3>(p, s->B, st);
            default: return launch_fwd_wgmma<64, 128, 2>(p, s->B, st);
            }
        }
        switch (var) {
        case 1: return launch_fwd<64, 64, 8, 1>(p, s->B, st);
        case 2: return launch_fwd<64, 32, 8, 2>(p, s->B, st);
        case 3: return launch_fwd<64, 64, 4, 1>(p, s->B, st);
        default: return launch_fwd<64, 64, 4, 2>(p, s->B, st);
        }
    default:
        if (lc_tuning_int("LC_ATTN_WGMMA", 1) && lc_cuda_have_sm90a()) {
            switch ((int)lc_tuning_int("LC_ATTN_WG", narrow ? 1 : 4)) {
            case 1: return launch_fwd_wgmma<128, 64, 1>(p, s->B, st);
            case 2: return launch_fwd_wgmma<128, 64, 2>(p, s->B, st);
            case 3: return launch_fwd_wgmma<128, 128, 1>(p, s->B, st);
            default: return launch_fwd_wgmma<128, 64, 3>(p, s->B, st);
            }
        }
        switch (var) {
        case 1: return launch_fwd<128, 32, 4, 2>(p, s->B, st);
        case 2: return launch_fwd<128, 32, 8, 2>(p, s->B, st);
        case 0: return launch_fwd<128, 64, 8, 1>(p, s->B, st);
        default: return launch_fwd<128, 64, 4, 2>(p, s->B, st);
        }
    }
}

extern "C" lc_status attention_fill_random_cuda(bf16_t *x, size_t n, uint64_t seed, float scale, void *stream) {
    LC_REQUIRE(x || n == 0, "attention_fill_random_cuda: x is NULL");
    if (n == 0) return LC_OK;
    attn_fill_kernel<<<132 * 16, 256, 0, lc_stream(stream)>>>(reinterpret_cast<bf16 *>(x), (int64_t)n, seed, scale);
    cuda_check_launch("attn_fill_kernel");
    return LC_OK;
}

/* Workspace: fp32 dq accumulators [B][L][HQ][dh], then either D [B][HQ][L] (the plain kernels)
 * or the packed (lse, D) pairs [B*HQ][Lp][2] (the warp-specialised dh-64 kernel), Lp = L rounded
 * up to 4; the second region is sized for the larger. */
static size_t bwd_ld_rows(const struct attn_shape *s) { return (size_t)((s->L + 3) & ~(int64_t)3); }

extern "C" size_t attention_backward_workspace_cuda(const struct attn_shape *s) {
    const size_t rows = (size_t)s->B * (size_t)s->L * (size_t)s->HQ;
    return align256(rows * (size_t)s->dh * sizeof(float)) + align256((size_t)s->B * (size_t)s->HQ * bwd_ld_rows(s) * 2 * sizeof(float));
}

/* step 1 of the backward: D (ld == NULL) or the packed (lse, D) pairs */
static void bwd_dot(const struct attn_shape *s, const bf16_t *o, const bf16_t *dout, float *Dv, const float *lse, float2 *ld,
             cudaStream_t st) {
    const int64_t rows = s->B * s->L * s->HQ, D = s->dh, Lp = (int64_t)bwd_ld_rows(s);
    const int64_t threads = rows * (D / 8);
    const unsigned grid = (unsigned)((threads + 255) / 256);
    const bf16 *po = reinterpret_cast<const bf16 *>(o), *pg = reinterpret_cast<const bf16 *>(dout);
    if (D == 32) attn_bwd_dot_kernel<32><<<grid, 256, 0, st>>>(po, pg, Dv, rows, s->L, s->HQ, lse, ld, Lp);
    else if (D == 64) attn_bwd_dot_kernel<64><<<grid, 256, 0, st>>>(po, pg, Dv, rows, s->L, s->HQ, lse, ld, Lp);
    else attn_bwd_dot_kernel<128><<<grid, 256, 0, st>>>(po, pg, Dv, rows, s->L, s->HQ, lse, ld, Lp);
}

extern "C" lc_status attention_backward_cuda(const struct attn_shape *s, const bf16_t *q, const bf16_t *k,
                                             const bf16_t *v, const bf16_t *o, const float *lse,
                                             const bf16_t *dout, bf16_t *dq, bf16_t *dk, bf16_t *dv,
                                             void *workspace, void *stream) {
    lc_nvtx_range nvtx_range("attention.bwd");
    if (s && attention_has_offset(s))
        return lc_errorf(LC_EUNSUPPORTED, "%s: a query offset (Lq = %lld, q_pos0 = %lld) is forward-only (segmented prefill, decode)",
                         __func__, (long long)s->Lq, (long long)s->q_pos0);
    LC_TRY(attention_cuda_supported(s));
    LC_TRY(lc_tuning_check());
    LC_REQUIRE(q && k && v && o && lse && dout && dq && dk && dv,
               "attention_backward_cuda: every tensor argument must be non-NULL");
    LC_REQUIRE(workspace, "attention_backward_cuda: workspace is NULL (needs attention_backward_workspace_cuda bytes)");
    cudaStream_t st = lc_stream(stream);
    const int64_t rows = s->B * s->L * s->HQ, D = s->dh;
    float *dq_acc = static_cast<float *>(workspace);
    float *Dv = reinterpret_cast<float *>(static_cast<char *>(workspace) + align256((size_t)rows * D * sizeof(float)));
    float2 *ld = reinterpret_cast<float2 *>(Dv); /* the same region, packed form */
    /* LC_ATTN_BWD_STAGES (attn9's per-stage timer, kept by attn11; for scripts/attention_bench.c
     * --stages only: the results are wrong with anything but 15): a bit mask of the stages that run,
     * 1 the memset of the fp32 dQ workspace, 2 the dot kernel, 4 the main kernel, 8
     * attn_bwd_dq_kernel, so each can be timed alone */
    const int stages = (int)lc_tuning_int("LC_ATTN_BWD_STAGES", 15);
    if (stages & 1) cuda_check(cudaMemsetAsync(dq_acc, 0, (size_t)rows * D * sizeof(float), st));
    const bool narrow = s->causal && s->W > 0 && s->W <= 1024; /* 64-key blocks waste less */
    const bool wgmma = (D == 64 || D == 128) && lc_tuning_int("LC_ATTN_WGMMA", 1) && lc_cuda_have_sm90a();
    /* the variant (see below); the warp-specialised kernels (>= 4, dh 64, L >= 128) take the packed pairs */
    int wv = (int)lc_tuning_int("LC_ATTN_WGB", D == 64 ? (narrow ? 19 : 18) : narrow ? 1 : 2);
    if (D != 64 && wv >= 4) wv = 2;
    const bool ws = wgmma && D == 64 && wv >= 4 && s->L >= 128;
    if (stages & 2) {
        bwd_dot(s, o, dout, Dv, lse, ws ? ld : NULL, st);
        cuda_check_launch("attn_bwd_dot_kernel");
    }
    bwd_params p;
    p.q = reinterpret_cast<const bf16 *>(q);
    p.k = reinterpret_cast<const bf16 *>(k);
    p.v = reinterpret_cast<const bf16 *>(v);
    p.dout = reinterpret_cast<const bf16 *>(dout);
    p.lse = lse;
    p.Dv = Dv;
    p.ld = ws ? ld : NULL;
    p.Lp = (int64_t)bwd_ld_rows(s);
    p.dq_acc = dq_acc;
    p.dk = reinterpret_cast<bf16 *>(dk);
    p.dv = reinterpret_cast<bf16 *>(dv);
    p.L = s->L, p.HQ = s->HQ, p.H = s->H, p.W = s->causal ? s->W : 0, p.nkb = 0;
    p.causal = s->causal;
    p.scale = attention_scale(s);
    p.scale_log2 = p.scale * 1.4426950408889634f;
    lc_status r = LC_OK;
    /* run 8 (notes): 2 warpgroups with the block-reduced dQ win dense and W = 4096; one warpgroup W = 512 */
    const int var = (int)lc_tuning_int("LC_ATTN_BWD", narrow ? 1 : 0);
    if (!(stages & 4)) {
        /* the main kernel not timed */
    } else if (wgmma) {
        /* 1: one warpgroup, 64 keys per block; 2: two warpgroups, 128 keys, dQ reduced over the
         * block before the atomics; 3: two warpgroups, dQ atomics per warpgroup (first version) */
        /* 4..8: the warp-specialised kernel of attention_bwd_ws.cuh (dh 64 only; dh 128 takes 2):
         * 4 <2 consumer WGs, split dQ, overlap>, 5 <2 WGs, dQ per WG, overlap>, 6 <split, no overlap>,
         * 7 = 6 and 8 = 5 without overlap, with K, V in registers (with both, the registers spill).
         * Same H100 run (session 3, notes-attn.md), bwd ms at L = 1M, 16 heads, W = 512 / 4096, and
         * dense L = 64K: 1 33.9 / 184.9 / 129.4, 2 38.0 / 169.2 / 76.5, 4 31.2 / 150.1 / 74.5,
         * 5 30.3 / 153.3 / 83.4, 6 31.3 / 151.5 / 74.7, 7 31.2 / 150.2 / 73.2, 8 39.1 / 210.1 / 102.6:
         * 7 (no spills) was the dh-64 default until attn7 (18 / 19 below); dh 128 keeps 1 (narrow
         * windows) or 2. */
        if (D == 64 && wv >= 4) { /* warp-specialised <consumer WGs, split dQ, ring slots, overlap> */
            int ran = 0;
            switch (wv) {
            case 5: r = launch_bwd_ws<2, 0, 3, 1, 0>(p, s->B, st, &ran); break;
            case 6: r = launch_bwd_ws<2, 1, 3, 0, 0>(p, s->B, st, &ran); break;
            case 7: r = launch_bwd_ws<2, 1, 3, 0, 1>(p, s->B, st, &ran); break;
            case 8: r = launch_bwd_ws<2, 0, 3, 0, 1>(p, s->B, st, &ran); break;
            /* attn5's 11 / 12 (7 with a 4- / 2-slot ring) and 13 (dQ per warpgroup in halves) were no
             * faster (lead's run, session 3: 11 31.43 / 151.8 / 78.94, 13 36.28 / 169.3 / 89.44 ms
             * against 31.36 / 151.6 / 75.86 for 7): removed in attn6, as was attn6's 14 (ping-pong with
             * K, V in registers: spills 80 B, 35.6 / 165.6 / 80.9 ms). attn6's 15 (ping-pong: the two
             * warpgroups' MMAs in turns, dQ two tiles late), 16 (7 with dQ by red.global.add.v2.f32
             * from registers) and 17 (both) were no faster either (attn6 run 2, bwd ms at W 512 / 4096,
             * L = 1M, and dense 64K: 7 29.96 / 140.5 / 69.51, 15 29.54 / 147.1 / 73.86, 16 29.25 /
             * 142.1 / 80.01, 17 30.16 / 153.8 / 78.55): removed in attn7.
             * attn7: 18 = 7 with 128-query tiles (dQ split by query rows, S^T / dP^T from shared
             * memory); 19 = 18 with dV issued as soon as P^T is packed (under the dS^T step) and dK
             * after dQ (under the dQ staging), dS^T from the bf16 P^T. Same H100 run (attn7 call 2,
             * notes), bwd ms at L = 1M, 16 heads, W = 512 / 4096, dense L = 64K: 7 29.70 / 140.55 /
             * 70.75, 18 30.26 / 131.38 / 67.82, 19 28.85 / 134.14 / 67.51 (again 28.96 / 134.86 /
             * 68.54): 19 is the default for W <= 1024, 18 for wider windows and dense. */
            case 18: r = launch_bwd_bq<0>(p, s->B, st, &ran); break;
            case 19: r = launch_bwd_bq<1>(p, s->B, st, &ran); break;
            default: r = launch_bwd_ws<2, 1, 3, 1, 0>(p, s->B, st, &ran); break;
            }
            if (r != LC_OK) return r;
            if (!ran) { /* short L or no tensor map: the plain kernel, which reads D unpacked */
                wv = narrow ? 1 : 2;
                p.ld = NULL;
                if (ws) {
                    bwd_dot(s, o, dout, Dv, lse, NULL, st);
                    cuda_check_launch("attn_bwd_dot_kernel");
                }
            }
        }
        if (wv >= 4) { /* ran */
        } else if (D == 64) r = wv == 1 ? launch_bwd_wgmma<64, 1, 1>(p, s->B, st) : wv == 3 ? launch_bwd_wgmma<64, 2, 0>(p, s->B, st) : launch_bwd_wgmma<64, 2, 1>(p, s->B, st);
        else r = wv == 1 ? launch_bwd_wgmma<128, 1, 1>(p, s->B, st) : wv == 3 ? launch_bwd_wgmma<128, 2, 0>(p, s->B, st) : launch_bwd_wgmma<128, 2, 1>(p, s->B, st);
    } else
    switch (D) {
    case 32: r = var == 1 ? launch_bwd<32, 4, 64>(p, s->B, st) : launch_bwd<32, 8, 64>(p, s->B, st); break;
    case 64: r = var == 1 ? launch_bwd<64, 4, 64>(p, s->B, st) : launch_bwd<64, 8, 64>(p, s->B, st); break;
    default: r = var == 1 ? launch_bwd<128, 4, 32>(p, s->B, st) : launch_bwd<128, 8, 32>(p, s->B, st); break;
    }
    if (r != LC_OK) return r;
    if (!(stages & 8)) return LC_OK;
    const int64_t n4 = rows * D / 4;
    attn_bwd_dq_kernel<<<(unsigned)((n4 + 255) / 256), 256, 0, st>>>(dq_acc, reinterpret_cast<bf16 *>(dq), n4, p.scale);
    cuda_check_launch("attn_bwd_dq_kernel");
    return LC_OK;
}
