/* hsa_attend_bwd.cuh — chunk-attention backward, the LONGCTX_HSA_BWD = t15 | t11 pipeline
 * (included by hsa.cu after hsa_attend_fwd.cuh). The default backward (token-block dq pass and
 * per-chunk dK/dV, hsa_attend.cuh) is untouched; this file holds the two kernels that replace its
 * passes where G % 16 == 0 and S = dh = 64:
 *
 * attend_dq_kernel<S, DH, NCW>: the dq pass in the producer/consumer form of the forward
 * (hsa_attend_fwd.cuh) with one 16-row tile per consumer warp: a CTA owns NCW tiles = MT =
 * NCW / (G/16) adjacent tokens; one producer warp streams the union of their chunk lists (K and V
 * of each distinct chunk once per CTA) through an mbarrier ring; a consumer waits only for the
 * chunks its token selected (no CTA barrier per chunk). The block's q AND dO rows sit in shared
 * memory. Math per (token t, query head a, slot k on chunk c), as attend_tok_kernel<BWD>:
 *   s = q K_c^T, p = exp(s scale - lse[t,a,k]), dP = dO V_c^T,
 *   D[t,a,k] = rowsum(p * dP)   (= <o_k, dO>),
 *   dZ = w_k p (dP - D),  dq[t,a] += dZ K_c scale,
 * and it stores {lse log2(e), D} as a float2 per (t, k, a) (the workspace's D array, twice the
 * size of the default's) for dw and attend_dkdv2_kernel.
 * Registers: sc, dP and the dq accumulator are 3 x 32 fp32 per thread; NCW = 15 (16 warps, 128
 * registers, ptxas: ~50 bytes of spills) or NCW = 11 (12 warps, 166 registers, no spills).
 *
 * attend_dkdv2_kernel<S, DH, R>: the per-chunk dK/dV pass reading the packed float2 (below).
 * Deterministic: every dq row, D value and dK/dV row is written by one thread, sums in a fixed order.
 */
#ifndef LONGCTX_HSA_ATTEND_BWD_CUH
#define LONGCTX_HSA_ATTEND_BWD_CUH

#include "hsa_attend.cuh"
#include "hsa_attend_fwd.cuh"
#include "hsa_mma.cuh"

namespace hsa_bwd {

using namespace hsa_mma;
using hsa_attend::tok_params;
using hsa_fwd::chunk_copy;
using hsa_fwd::chunk_union;
using hsa_fwd::ring_init;
using hsa_fwd::token_lists;
using hsa_fwd::mbar_arrive;
using hsa_fwd::mbar_arrive_cnt;
using hsa_fwd::mbar_cp_async_arrive;
using hsa_fwd::mbar_init;
using hsa_fwd::mbar_wait;
typedef __nv_bfloat16 bf16;

template <int S, int DH, int NCW>
struct dq_smem {
    static constexpr int LD = DH + 8;
    static constexpr size_t slot_bytes = (size_t)2 * S * LD * sizeof(bf16);
    static constexpr size_t q_bytes = (size_t)2 * NCW * 16 * LD * sizeof(bf16); /* q and dO */
    static size_t list_bytes(int MT, int K) { return (size_t)MT * K * 16 + (size_t)MT * 4 + 16; }
    __host__ __device__ static size_t bar_bytes(int ns) { return ((size_t)2 * ns * 8 + (size_t)ns * 4 + 15) & ~(size_t)15; }
    static int stages(int MT, int K, size_t budget) {
        size_t rest = q_bytes + list_bytes(MT, K) + 256;
        int ns = 8;
        while (ns > 2 && rest + bar_bytes(ns) + ns * slot_bytes > budget) ns--;
        return ns;
    }
    static size_t bytes(int MT, int K, int ns) { return bar_bytes(ns) + ns * slot_bytes + q_bytes + list_bytes(MT, K); }
};

/* blockDim = 32 * (NCW + 1): warps 0..NCW-1 consume one tile each, warp NCW produces. */
template <int S, int DH, int NCW>
__global__ void __launch_bounds__(32 * (NCW + 1), 1) attend_dq_kernel(const tok_params p, const int NS) {
    typedef dq_smem<S, DH, NCW> SM;
    constexpr int LD = SM::LD;
    constexpr int NT = S / 8, KD = DH / 16, ND = DH / 8, SEG = DH / 8;
    extern __shared__ __align__(16) unsigned char smem[];
    const int K = (int)p.K, G = (int)p.G, GT = G / 16, MT = p.MT;
    uint64_t *full = reinterpret_cast<uint64_t *>(smem);
    uint64_t *empty = full + NS;
    volatile int *tag = reinterpret_cast<volatile int *>(empty + NS);
    bf16 *KVs = reinterpret_cast<bf16 *>(smem + SM::bar_bytes(NS));
    bf16 *Qs = KVs + (size_t)NS * 2 * S * LD; /* [NCW][16][LD] */
    bf16 *Os = Qs + (size_t)NCW * 16 * LD;    /* dO, same layout */
    int *idx_s = reinterpret_cast<int *>(Os + (size_t)NCW * 16 * LD);
    float *w_s = reinterpret_cast<float *>(idx_s + MT * K);
    int *U = reinterpret_cast<int *>(w_s + MT * K);
    uint32_t *Um = reinterpret_cast<uint32_t *>(U + MT * K);
    int *nv_s = reinterpret_cast<int *>(Um + MT * K);
    __shared__ int nU_s;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g8 = lane >> 2, tig = lane & 3;
    const int64_t b = blockIdx.z, h = blockIdx.y;
    const int64_t hr = p.Hr == 1 ? 0 : h;
    const int64_t t0 = (int64_t)blockIdx.x * MT;

    if (threadIdx.x == 0) ring_init(full, empty, tag, NS, NCW);
    for (int e = threadIdx.x; e < NCW * 16 * SEG; e += blockDim.x) {
        const int r = e / SEG, sg = e % SEG, tile = r / 16, j = tile / GT, a = (tile % GT) * 16 + r % 16;
        const int64_t t = t0 + j;
        if (j < MT && t < p.Lq) {
            const int64_t off = ((b * p.Lq + t) * p.HQ + h * G + a) * DH + sg * 8;
            cp_async16(Qs + r * LD + sg * 8, p.q + off);
            cp_async16(Os + r * LD + sg * 8, p.dout + off);
        } else {
            *reinterpret_cast<uint4 *>(Qs + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
            *reinterpret_cast<uint4 *>(Os + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
        }
    }
    token_lists<false>(p, t0, MT, K, G, b, h, hr, idx_s, w_s, nv_s);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (warp == 0) chunk_union(idx_s, nv_s, K, MT, lane, U, Um, &nU_s);
    __syncthreads();
    const int nU = nU_s;

    if (warp == NCW) { /* ---- producer (as attend_fwd_kernel) ---- */
        for (int u = 0; u < nU; u++) {
            const int s = u % NS;
            if (u >= NS) mbar_wait(empty + s, (uint32_t)((u / NS - 1) & 1));
            if (lane == 0) tag[s] = u;
            const int64_t c = U[u];
            const bf16 *kg = p.k + ((b * p.L + c * S) * p.H + h) * DH;
            const bf16 *vg = p.v + ((b * p.L + c * S) * p.H + h) * DH;
            bf16 *Kd = KVs + (size_t)s * 2 * S * LD, *Vd = Kd + S * LD;
            chunk_copy<S, DH, LD>(Kd, Vd, kg, vg, p.H, lane);
            mbar_cp_async_arrive(full + s);
            if (lane == 0) {
                const uint32_t m = Um[u];
                int users = 0;
                for (int w = 0; w < NCW; w++) users += (m >> (w / GT)) & 1u;
                if (users < NCW) mbar_arrive_cnt(empty + s, (uint32_t)(NCW - users));
            }
        }
        cp_async_wait<0>();
        return;
    }

    /* ---- consumer: tile `warp` = heads hg*16 .. +15 of token jt ---- */
    const int jt = warp / GT, hg = warp % GT;
    const bool tok_ok = jt < MT && t0 + jt < p.Lq;
    const int64_t tok = t0 + jt;
    int ptr = 0;
    const bf16 *Qt = Qs + (size_t)warp * 16 * LD, *Ot = Os + (size_t)warp * 16 * LD;
    float acc[ND][4];
#pragma unroll
    for (int nd = 0; nd < ND; nd++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[nd][e] = 0.f;
    const float sl2 = p.scale * 1.4426950408889634f;
    /* (t, a, slot) offsets of this thread's two rows at slot 0 (lse), and its query head (D) */
    int64_t lo[2];
#pragma unroll
    for (int hh = 0; hh < 2; hh++) lo[hh] = ((b * p.Lq + tok) * p.HQ + h * G + hg * 16 + g8 + hh * 8) * p.K;
    const int64_t a0 = h * G + hg * 16 + g8;
    float2 *LSD = reinterpret_cast<float2 *>(p.D);

    for (int u = 0; u < nU; u++) {
        const uint32_t m = Um[u];
        if (!(tok_ok && ((m >> jt) & 1u))) continue;
        const int s = u % NS;
        const int slot = ptr++;
        /* lse of both rows, in flight while the chunk lands */
        const float lse2a = p.lse_in[lo[0] + slot] * 1.4426950408889634f;
        const float lse2b = p.lse_in[lo[1] + slot] * 1.4426950408889634f;
        const float wv = w_s[jt * K + slot];
        while (tag[s] < u) __nanosleep(32); /* see attend_fwd_kernel */
        mbar_wait(full + s, (uint32_t)((u / NS) & 1));
        const bf16 *Kt = KVs + (size_t)s * 2 * S * LD, *Vt = Kt + S * LD;

        float sc[NT][4], dp[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) sc[nt][e] = dp[nt][e] = 0.f;
#pragma unroll
        for (int kd = 0; kd < KD; kd++) {
            uint32_t qa[4], da[4];
            lds_a(qa, Qt, LD, 0, kd * 16, lane);
            lds_a(da, Ot, LD, 0, kd * 16, lane);
#pragma unroll
            for (int np = 0; np < NT / 2; np++) {
                uint32_t bk[4], bv[4];
                lds_b_nk(bk, Kt, LD, np * 16, kd * 16, lane);
                mma16816(sc[2 * np], qa, bk[0], bk[1]);
                mma16816(sc[2 * np + 1], qa, bk[2], bk[3]);
                lds_b_nk(bv, Vt, LD, np * 16, kd * 16, lane);
                mma16816(dp[2 * np], da, bv[0], bv[1]);
                mma16816(dp[2 * np + 1], da, bv[2], bv[3]);
            }
        }
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            const float lse2 = hh ? lse2b : lse2a;
            float D = 0.f;
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float pv = exp2f(fmaf(sc[nt][2 * hh + e], sl2, -lse2));
                    sc[nt][2 * hh + e] = pv;
                    D += pv * dp[nt][2 * hh + e];
                }
            D += __shfl_xor_sync(0xffffffffu, D, 1);
            D += __shfl_xor_sync(0xffffffffu, D, 2);
            if (tig == 0) LSD[((b * p.Lq + tok) * p.K + slot) * p.HQ + a0 + hh * 8] = make_float2(lse2, D);
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    sc[nt][2 * hh + e] = wv * sc[nt][2 * hh + e] * (dp[nt][2 * hh + e] - D);
        }
        /* dq += dZ K ; K read k-major */
#pragma unroll
        for (int ks = 0; ks < S / 16; ks++) {
            uint32_t pa[4];
            acc_to_a(pa, sc[2 * ks], sc[2 * ks + 1]);
#pragma unroll
            for (int np = 0; np < ND / 2; np++) {
                uint32_t bb[4];
                lds_b_kn(bb, Kt, LD, np * 16, ks * 16, lane);
                mma16816(acc[2 * np], pa, bb[0], bb[1]);
                mma16816(acc[2 * np + 1], pa, bb[2], bb[3]);
            }
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(empty + s);
    }

    if (!tok_ok) return;
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        bf16 *orow = p.dq + ((b * p.Lq + tok) * p.HQ + h * G + hg * 16 + g8 + hh * 8) * DH;
#pragma unroll
        for (int nd = 0; nd < ND; nd++)
            *reinterpret_cast<__nv_bfloat162 *>(orow + nd * 8 + tig * 2) =
                __floats2bfloat162_rn(acc[nd][2 * hh] * p.scale, acc[nd][2 * hh + 1] * p.scale);
    }
}

__device__ __forceinline__ void cp_async8(void *smem, const void *gmem) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(smem_u32(smem)), "l"(gmem));
}

/* ---- dK/dV per chunk, packed {lse, D} and per-batch row tables (the LONGCTX_HSA_BWD variants) ----
 * attend_dkdv_kernel of hsa_attend.cuh with two changes: the per-row lse and D come from the
 * float2 {lse log2(e), D} that attend_dq_kernel writes per (token, slot, head) (p.D; p.lse is not
 * read): the 16 heads of a (token, slot) pair are 128 contiguous bytes, where the (t, a, slot)
 * layout costs one 32-byte sector per head for lse and again for D (at K = 32 about 1 KB of
 * sectors next to the 4 KB of q and dO rows per pair); and the gather addresses of a batch are
 * computed once per row (a row table in shared memory, planned a batch ahead) instead of
 * with 64-bit divisions per copied 16-byte segment. */


template <int S, int DH, int R>
struct dkdv2_smem {
    static constexpr int LD = DH + 8;
    /* K_c, V_c, then two buffers of R gathered rows: q, dO, {lse, D}, w */
    static constexpr size_t buf_bytes = (size_t)2 * R * LD * sizeof(bf16) + (size_t)R * (sizeof(float2) + sizeof(float));
    /* then two row tables (q/dO element offset, {lse, D} index, w index per gathered row) */
    static constexpr size_t tab_bytes = (size_t)3 * R * sizeof(int64_t);
    static constexpr size_t bytes = (size_t)2 * S * LD * sizeof(bf16) + 2 * buf_bytes + 2 * tab_bytes;
};

template <int S, int DH, int R>
__global__ void __launch_bounds__(S * 2) attend_dkdv2_kernel(const hsa_attend::dkdv_params p) {
    typedef dkdv2_smem<S, DH, R> SM;
    constexpr int LD = SM::LD;
    constexpr int KD = DH / 16, ND = DH / 8, NR = R / 8;
    extern __shared__ __align__(16) unsigned char smem[];
    bf16 *Kc = reinterpret_cast<bf16 *>(smem);
    bf16 *Vc = Kc + S * LD;
    unsigned char *bufs = reinterpret_cast<unsigned char *>(Vc + S * LD);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g8 = lane >> 2, tig = lane & 3;
    const int64_t c = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int64_t hr = p.Hr == 1 ? 0 : h;
    const int G = (int)p.G;
    const int64_t kk = (b * p.Hr + hr) * p.C + c;
    const int64_t p0 = p.off[kk], p1 = p.off[kk + 1];
    constexpr int SEG = DH / 8;

    const bf16 *kg = p.k + ((b * p.L + c * S) * p.H + h) * DH;
    const bf16 *vg = p.v + ((b * p.L + c * S) * p.H + h) * DH;
    for (int e = threadIdx.x; e < S * SEG; e += blockDim.x) {
        int r = e / SEG, sg = e % SEG;
        cp_async16(Kc + r * LD + sg * 8, kg + (int64_t)r * p.H * DH + sg * 8);
        cp_async16(Vc + r * LD + sg * 8, vg + (int64_t)r * p.H * DH + sg * 8);
    }

    const int64_t nrows = (p1 - p0) * G;
    int64_t *tabs = reinterpret_cast<int64_t *>(bufs + 2 * SM::buf_bytes); /* [2][3][R] */
    /* row table of the batch of R rows (pair, head) starting at row i0, one thread per row: the
     * index arithmetic (divisions by G and K) once per row and batch instead of once per copied
     * 16-byte segment; offset -1 marks a row past the end */
    auto plan = [&](int64_t i0, int st) {
        int64_t *tq = tabs + st * 3 * R, *tl = tq + R, *tw = tl + R;
        for (int r = threadIdx.x; r < R; r += blockDim.x) {
            const int64_t i = i0 + r;
            int64_t qo = -1, lo = 0, wo = 0;
            if (i < nrows) {
                const int64_t pr = i / G;
                const int64_t g = i - pr * G;
                const int32_t pv = p.pairs[p0 + pr];
                const int64_t t = pv / (int32_t)p.K, sl = pv - (int32_t)t * (int32_t)p.K;
                qo = ((b * p.L + t) * p.HQ + h * G + g) * DH;
                lo = ((b * p.L + t) * p.K + sl) * p.HQ + h * G + g;
                wo = ((b * p.Lr + t / p.block_q) * p.Hr + hr) * p.K + sl;
            }
            tq[r] = qo, tl[r] = lo, tw[r] = wo;
        }
    };
    /* gather the rows of table st into buffer st, all by cp.async */
    auto gather = [&](int st) {
        const int64_t *tq = tabs + st * 3 * R, *tl = tq + R, *tw = tl + R;
        bf16 *qs = reinterpret_cast<bf16 *>(bufs + st * SM::buf_bytes);
        bf16 *ds = qs + R * LD;
        float2 *ls_s = reinterpret_cast<float2 *>(ds + R * LD);
        float *w_s = reinterpret_cast<float *>(ls_s + R);
        for (int e = threadIdx.x; e < R * SEG; e += blockDim.x) {
            const int r = e / SEG, sg = e % SEG;
            const int64_t off = tq[r];
            if (off >= 0) {
                cp_async16(qs + r * LD + sg * 8, p.q + off + sg * 8);
                cp_async16(ds + r * LD + sg * 8, p.dout + off + sg * 8);
            } else {
                *reinterpret_cast<uint4 *>(qs + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
                *reinterpret_cast<uint4 *>(ds + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
            }
        }
        for (int r = threadIdx.x; r < R; r += blockDim.x) {
            if (tq[r] >= 0) {
                cp_async8(ls_s + r, p.D + 2 * tl[r]);
                cp_async4(w_s + r, p.w + tw[r]);
            } else {
                ls_s[r] = make_float2(0.f, 0.f);
                w_s[r] = 0.f; /* padding rows contribute nothing */
            }
        }
    };
    if (nrows > 0) plan(0, 0);
    __syncthreads();
    if (nrows > 0) gather(0);
    cp_async_commit();
    if (R < nrows) plan(R, 1);
    __syncthreads(); /* table 1 visible to the first iteration's gather */

    float dK[ND][4], dV[ND][4];
#pragma unroll
    for (int nd = 0; nd < ND; nd++)
#pragma unroll
        for (int e = 0; e < 4; e++) dK[nd][e] = dV[nd][e] = 0.f;

    const float sl2 = p.scale * 1.4426950408889634f;
    int st = 0;
    for (int64_t i0 = 0; i0 < nrows; i0 += R, st ^= 1) {
        if (i0 + R < nrows) gather(st ^ 1); /* its table was planned before the last barrier */
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const bf16 *qs = reinterpret_cast<const bf16 *>(bufs + st * SM::buf_bytes);
        const bf16 *ds = qs + R * LD;
        const float2 *ls_s = reinterpret_cast<const float2 *>(ds + R * LD);
        const float *w_s = reinterpret_cast<const float *>(ls_s + R);

        /* S^T [16 keys x R rows] and dP^T */
        float sT[NR][4], dT[NR][4];
        hsa_attend::dkdv_scores<KD, NR, LD>(sT, dT, Kc, Vc, qs, ds, warp, lane);
        /* element (key, row): pw = w p ; dz = pw (dP - D) */
#pragma unroll
        for (int n = 0; n < NR; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = n * 8 + tig * 2 + (e & 1);
                const float2 ld = ls_s[r];
                float pw = w_s[r] * exp2f(fmaf(sT[n][e], sl2, -ld.x));
                sT[n][e] = pw;
                dT[n][e] = pw * (dT[n][e] - ld.y);
            }
        hsa_attend::dkdv_accumulate<R, ND, NR, LD>(dK, dV, sT, dT, qs, ds, lane);
        /* table st was read when batch i0 was issued (an iteration ago): plan batch i0 + 2R into it */
        if (i0 + 2 * R < nrows) plan(i0 + 2 * R, st);
        __syncthreads(); /* buffer st is refilled, and table st read, at the next iteration's top */
    }
    cp_async_wait<0>();
    hsa_attend::dkdv_store<S, DH, ND>(p, dK, dV, c, h, b, warp, g8, tig);
}

}  // namespace hsa_bwd

#endif
