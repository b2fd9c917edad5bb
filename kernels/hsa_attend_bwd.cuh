/* hsa_attend_bwd.cuh — chunk-attention backward, dq pass in the producer/consumer form of the
 * forward (hsa_attend_fwd.cuh); included by hsa.cu after hsa_attend_fwd.cuh.
 *
 * Same work split as attend_fwd_kernel with one 16-row tile per consumer warp (TPW = 1): a CTA owns
 * NCW tiles = MT = NCW / (G/16) adjacent tokens; one producer warp streams the union of their chunk
 * lists (K and V of each distinct chunk once per CTA) through an mbarrier ring; a consumer waits
 * only for the chunks its token selected (no CTA barrier per chunk). The block's q AND dO rows sit
 * in shared memory. Math per (token t, query head a, slot k on chunk c), as attend_tok_kernel<BWD>:
 *   s = q K_c^T, p = exp(s scale - lse[t,a,k]), dP = dO V_c^T,
 *   D[t,a,k] = rowsum(p * dP)   (= <o_k, dO>; {lse log2(e), D} stored as a float2 per (t, k, a)
 *                                 for dw and the dK/dV pass, layout as attend_tok_kernel<BWD>),
 *   dZ = w_k p (dP - D),  dq[t,a] += dZ K_c scale.
 * Used for G % 16 == 0, S = dh = 64 (the benchmark shape); LONGCTX_HSA_BWD picks it (hsa.cu).
 * Registers: sc, dP and the dq accumulator are 3 x 32 fp32 per thread; NCW = 15 (16 warps, 128
 * registers per thread) or NCW = 11 (12 warps, up to 168) trade occupancy against spills.
 * Deterministic: every dq row and D value is written by one thread, sums in a fixed order.
 */
#ifndef LONGCTX_HSA_ATTEND_BWD_CUH
#define LONGCTX_HSA_ATTEND_BWD_CUH

#include "hsa_attend.cuh"
#include "hsa_attend_fwd.cuh"
#include "hsa_mma.cuh"

namespace hsa_bwd {

using namespace hsa_mma;
using hsa_attend::tok_params;
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

    if (threadIdx.x == 0) {
        for (int s = 0; s < NS; s++) {
            mbar_init(full + s, 32);
            mbar_init(empty + s, NCW);
            tag[s] = -1;
        }
    }
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
    for (int e = threadIdx.x; e < MT * K; e += blockDim.x) {
        const int j = e / K, kk = e % K;
        const int64_t t = t0 + j;
        int nv = 0;
        if (t < p.Lq) {
            const int64_t n = hsa_attend::num_visible((p.p0 + t) / p.block_q, p.S, p.block_q, p.C);
            nv = (int)(n < p.K ? n : p.K);
        }
        if (kk == 0) nv_s[j] = nv;
        if (kk < nv) {
            const int64_t off = ((b * p.Lr + t / p.block_q) * p.Hr + hr) * p.K + kk;
            cp_async4(idx_s + e, p.idx + off);
            cp_async4(w_s + e, p.w + off);
        } else {
            idx_s[e] = -1;
            w_s[e] = 0.f;
        }
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (warp == 0) {
        int ptr = 0, n = 0;
        const int nv = lane < MT ? nv_s[lane] : 0;
        for (;;) {
            const int head = ptr < nv ? idx_s[lane * K + ptr] : -1;
            const int c = __reduce_max_sync(0xffffffffu, head);
            if (c < 0) break;
            const uint32_t m = __ballot_sync(0xffffffffu, head == c);
            if (head == c) ptr++;
            if (lane == 0) U[n] = c, Um[n] = m;
            n++;
        }
        if (lane == 0) nU_s = n;
    }
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
#pragma unroll 4
            for (int e = lane; e < S * SEG; e += 32) {
                const int r = e / SEG, sg = e % SEG;
                cp_async16(Kd + r * LD + sg * 8, kg + (int64_t)r * p.H * DH + sg * 8);
                cp_async16(Vd + r * LD + sg * 8, vg + (int64_t)r * p.H * DH + sg * 8);
            }
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
            pa[0] = pack_bf16(sc[2 * ks][0], sc[2 * ks][1]);
            pa[1] = pack_bf16(sc[2 * ks][2], sc[2 * ks][3]);
            pa[2] = pack_bf16(sc[2 * ks + 1][0], sc[2 * ks + 1][1]);
            pa[3] = pack_bf16(sc[2 * ks + 1][2], sc[2 * ks + 1][3]);
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

}  // namespace hsa_bwd

#endif
