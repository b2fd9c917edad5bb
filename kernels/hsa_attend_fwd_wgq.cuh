/* hsa_attend_fwd_wgq.cuh — chunk-attention forward on TMA + wgmma (sm_90a) with q in shared
 * memory, opt-in as LONGCTX_HSA_FWD = t17; included by hsa.cu.
 *
 * Shape: S = dh = 64, G in {16, 32, 64}. Math and layouts as the other forward kernels
 * (hsa_attend.cuh): per token t, KV head h, query head a = h*G + g, slot k on chunk c:
 *   s = q K_c^T scale, p = exp(s - m) (m includes the null logit 0 of softmax1), l = sum p (+e^-m),
 *   o[t, a] = sum_k (w_k / l_k) p_k V_c,  lse[t, a, k] = m + log l.
 * Each chunk's softmax is complete within the chunk (S = 64 keys = one tile): O accumulates
 * (w_k / l_k) P_k V_k directly, no online rescaling.
 *
 * Work split. A consumer warpgroup owns 64 query rows = 4 tiles of 16 rows, tile = (token, 16
 * heads) (4 tokens for G = 16); warp w of the warpgroup holds tile 4*wg + w (the wgmma accumulator
 * rows 16w .. 16w+15). A CTA has NWG = 3 consumer warpgroups (MT = 12 tokens for G = 16) and one
 * producer warp, and is persistent: it walks token blocks blockIdx.x, + gridDim.x, ... (token
 * block fastest, then head, then batch), so CTAs running together share chunks through the L2.
 *  - producer warp, per block: loads the block's idx / w lists into one of two list buffers (after
 *    the consumers released it: mbarrier listEmpty), builds the union of the MT sorted lists with
 *    per chunk the mask of the tokens that selected it (chunk_union, hsa_attend_fwd.cuh), publishes
 *    it (listFull), then lane 0 streams the union's chunks into a ring of NS slots, K and V one TMA
 *    box each (64 rows x 128 bytes, 128-byte swizzle), completing on full[s] (expect_tx 16 KB).
 *  - consumer warpgroup, per block: copies its q rows into its shared-memory panel (128-byte
 *    swizzle, the layout of a wgmma K-major descriptor), then walks the union. Every warp waits on
 *    the full barrier of every union chunk and arrives on empty[s] for it (chunks its warpgroup
 *    did not select at once), so the barrier phases stay unambiguous. Per chunk the warpgroup uses:
 *    S = Q K^T (4 ss wgmma m64n64k16), the softmax per warp (a warp whose token did not select the
 *    chunk writes P' = 0 and skips the exponentials), P' = bf16(p w / l) in registers, O += P' V
 *    (4 rs wgmma, V MN-major). S of chunk u is issued with P V of the warpgroup's previous chunk
 *    and only S is waited for, so the softmax of u overlaps that P V (FlashAttention-3's order).
 *  - sparse chunks (G = 16, sp > 0): a chunk that at most sp of the warpgroup's tokens selected is
 *    computed only by those tokens' warps, each its own 16 rows on mma.sync m16n8k16 (ldmatrix from
 *    the swizzled panel and ring slot; mma.sync's accumulator layout is wgmma's per warp, so S, P'
 *    and O are shared with the wgmma path), after the warpgroup drained its P V in flight: the
 *    tensor work of 16 rows instead of 64 where the 4 tokens' union is wide.
 * Why this shape (t16, its predecessor, was latency-bound: ~400 instructions a warp per chunk,
 * 7.6 cycles per issued instruction): q in shared memory frees 16 registers of fragments; ring slot
 * and parity are counted incrementally (no division by the runtime ring depth), descriptors are a
 * base plus an offset, the lse row pointer is computed once a block, and the softmax reduces both
 * row halves together as trees. Four consumer warpgroups do not fit: registers are allocated per
 * 4 warps, so 4 x 128 + 32 threads get 96 registers a thread (notes-hsacuda.md, session 5).
 * Deadlock-free: a warpgroup holds at most one slot (its previous chunk) while it waits for the
 * full barrier of a later position x, and only if x < held + NS (else it first drains and releases
 * the held chunk); the warpgroup with the lowest unreleased position therefore waits only for fills
 * the producer can make. List buffers: listFull (32 producer lanes) / listEmpty (every consumer
 * thread), parity by block count.
 * Rows of tokens past Lq: q = 0, never written. o and lse are written straight from registers.
 */
#ifndef LONGCTX_HSA_ATTEND_FWD_WGQ_CUH
#define LONGCTX_HSA_ATTEND_FWD_WGQ_CUH

#include "hsa_attend.cuh"
#include "hsa_attend_fwd.cuh"
#include "sm90.cuh"

namespace hsa_fwd_wgq {

using namespace hsa_mma;
using hsa_attend::tok_params;
typedef __nv_bfloat16 bf16;

constexpr int CHUNK_BYTES = 64 * 128; /* one 64 x 64 bf16 box (K or V of a chunk, or a q panel) */

/* Shared memory: [1024 alignment slack][ring NS x (K box, V box)][q panels NWG x 8 KB][full,
 * empty (NS each), listFull, listEmpty (2 each)][2 list buffers]. */
struct wgq_smem {
    __host__ __device__ static size_t list_bytes(int MT, int K) { return ((size_t)MT * K * 16 + 33 * 4 + 15) & ~(size_t)15; }
    static size_t bytes(int NWG, int MT, int K, int ns) {
        return 1024 + (size_t)ns * 2 * CHUNK_BYTES + (size_t)NWG * CHUNK_BYTES + (2 * (size_t)ns + 4) * 8 + 2 * list_bytes(MT, K);
    }
    static int stages(int NWG, int MT, int K, size_t budget) {
        int ns = 12;
        while (ns > 2 && bytes(NWG, MT, K, ns) > budget) ns--;
        return ns;
    }
};

__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
/* mma.sync path of a sparse chunk: ldmatrix x4 (plain / transposed) from a 32-bit shared address,
 * and the byte address of 16-byte chunk ch of row r in a 128-byte-swizzled panel at base */
__device__ __forceinline__ void ldsm4(uint32_t r[4], uint32_t a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
__device__ __forceinline__ void ldsm4t(uint32_t r[4], uint32_t a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
__device__ __forceinline__ uint32_t swz(uint32_t base, int r, int ch) { return base + r * 128 + ((ch ^ (r & 7)) << 4); }
__device__ __forceinline__ void bar_sync(int id, int n) { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory"); }

template <int NWG>
__global__ void __launch_bounds__(128 * NWG + 32, 1)
    attend_fwd_wgq_kernel(const tok_params p, const __grid_constant__ CUtensorMap tk, const __grid_constant__ CUtensorMap tv,
                          const int NS, const int64_t ntb, const int64_t nblk, const int sp) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using hsa_fwd::mbar_arrive;
    using hsa_fwd::mbar_init;
    using hsa_fwd::mbar_wait;
    constexpr int DH = 64;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char *ring = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    unsigned char *qs = ring + (size_t)NS * 2 * CHUNK_BYTES;
    uint64_t *full = reinterpret_cast<uint64_t *>(qs + (size_t)NWG * CHUNK_BYTES);
    uint64_t *empty = full + NS, *listFull = empty + NS, *listEmpty = listFull + 2;
    unsigned char *lists = reinterpret_cast<unsigned char *>(listEmpty + 2);
    const int K = (int)p.K, G = (int)p.G, GT = G / 16, MT = p.MT;
    const size_t lb = wgq_smem::list_bytes(MT, K);
    /* list buffer n: idx, w, U, Um (MT*K each), nv (32), nU */
    auto idx_of = [&](int n) { return reinterpret_cast<int *>(lists + n * lb); };
    auto w_of = [&](int n) { return reinterpret_cast<float *>(lists + n * lb) + MT * K; };
    auto U_of = [&](int n) { return reinterpret_cast<int *>(lists + n * lb) + 2 * MT * K; };
    auto Um_of = [&](int n) { return reinterpret_cast<uint32_t *>(lists + n * lb) + 3 * MT * K; };
    auto nv_of = [&](int n) { return reinterpret_cast<int *>(lists + n * lb) + 4 * MT * K; };
    auto nU_of = [&](int n) { return reinterpret_cast<int *>(lists + n * lb) + 4 * MT * K + 32; };

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (threadIdx.x == 0) {
        for (int s = 0; s < NS; s++) {
            mbar_init(full + s, 1);
            mbar_init(empty + s, 4 * NWG);
        }
        for (int i = 0; i < 2; i++) {
            mbar_init(listFull + i, 32);         /* every producer lane (each wrote list entries) */
            mbar_init(listEmpty + i, 128 * NWG); /* every consumer thread (each read them) */
        }
        sm90::fence_mbar_init();
    }
    __syncthreads();

    if (warp == 4 * NWG) { /* ------------------------------------------------- producer warp */
        uint32_t it = 0;
        int n = 0;
        for (int64_t blk = blockIdx.x; blk < nblk; blk += gridDim.x, n++) {
            const int buf = n & 1;
            const int64_t tb = blk % ntb, h = (blk / ntb) % p.H, b = blk / ntb / p.H;
            const int64_t hr = p.Hr == 1 ? 0 : h, t0 = tb * MT;
            if (n >= 2) mbar_wait(listEmpty + buf, (uint32_t)(((n - 2) >> 1) & 1));
            int *idx_s = idx_of(buf), *nv_s = nv_of(buf);
            float *w_s = w_of(buf);
            if (lane < MT) {
                const int64_t t = t0 + lane;
                int nv = 0;
                if (t < p.Lq) {
                    const int64_t nn = hsa_attend::num_visible((p.p0 + t) / p.block_q, p.S, p.block_q, p.C);
                    nv = (int)(nn < p.K ? nn : p.K);
                }
                nv_s[lane] = nv;
            }
            __syncwarp();
#pragma unroll 4
            for (int e = lane; e < MT * K; e += 32) {
                const int j = e / K, kk = e % K;
                const int64_t t = t0 + j;
                if (kk < nv_s[j]) {
                    const int64_t off = ((b * p.Lr + t / p.block_q) * p.Hr + hr) * p.K + kk;
                    idx_s[e] = __ldg(p.idx + off);
                    w_s[e] = __ldg(p.w + off);
                } else {
                    idx_s[e] = -1;
                    w_s[e] = 0.f;
                    if (t < p.Lq && p.lse)
                        for (int a = 0; a < G; a++) p.lse[((b * p.Lq + t) * p.HQ + h * G + a) * p.K + kk] = -INFINITY;
                }
            }
            __syncwarp();
            hsa_fwd::chunk_union(idx_s, nv_s, K, MT, lane, U_of(buf), Um_of(buf), nU_of(buf));
            __syncwarp();
            const int nU = *reinterpret_cast<volatile int *>(nU_of(buf));
            mbar_arrive(listFull + buf);
            if (lane == 0) {
                const int *U = U_of(buf);
                uint32_t s = it % NS, ph = (it / NS) & 1; /* slot and fill parity of position it */
                for (int u = 0; u < nU; u++, it++) {
                    if (it >= (uint32_t)NS) mbar_wait(empty + s, ph ^ 1u);
                    const uint32_t fb = smem_u32(full + s), dst = smem_u32(ring + (size_t)s * 2 * CHUNK_BYTES);
                    sm90::mbar_expect_tx(fb, 2 * CHUNK_BYTES);
                    const int row = U[u] * 64;
                    sm90::tma_load_4d(dst, &tk, 0, (int)h, row, (int)b, fb);
                    sm90::tma_load_4d(dst + CHUNK_BYTES, &tv, 0, (int)h, row, (int)b, fb);
                    if (++s == (uint32_t)NS) s = 0, ph ^= 1u;
                }
            }
            it = __shfl_sync(0xffffffffu, it, 0);
            __syncwarp();
        }
        return;
    }

    /* --------------------------------------------------------------------------- consumers */
    const int wg = warp >> 2, wq = warp & 3, g8 = lane >> 2, tig = lane & 3;
    const int tile = 4 * wg + wq, jt = tile / GT, hg = tile % GT;
    const int jlo = (4 * wg) / GT, jhi = (4 * wg + 3) / GT;
    const uint32_t mymask = ((jhi + 1 >= 32 ? 0xffffffffu : (1u << (jhi + 1))) - 1u) & ~((1u << jlo) - 1u);
    const float sl2 = p.scale * 1.4426950408889634f;
    const int sm1 = p.softmax1;
    unsigned char *qpanel = qs + (size_t)wg * CHUNK_BYTES;
    /* descriptors: q panel (k16 step +32 bytes = +2), K box of slot s (+16 KB a slot = +1024),
     * V box (MN-major: k16 step +16 rows = +128) */
    const uint64_t dq0 = sm90::desc_k(smem_u32(qpanel));
    const uint64_t dk0 = sm90::desc_k(smem_u32(ring)), dv0 = sm90::desc_mn(smem_u32(ring) + CHUNK_BYTES);
    uint32_t it = 0; /* ring position of the block's first union chunk */
    int n = 0;
    for (int64_t blk = blockIdx.x; blk < nblk; blk += gridDim.x, n++) {
        const int buf = n & 1;
        const int64_t tb = blk % ntb, h = (blk / ntb) % p.H, b = blk / ntb / p.H, t0 = tb * MT;
        const bool tok_ok = t0 + jt < p.Lq;
        /* q rows of this warp's tile into the warpgroup's panel: row 16 wq + r, 16-byte chunk ch.
         * The loads are issued first; the panel is written once every warp of the warpgroup is
         * past the previous block's MMAs (bar 1 + wg), and read by wgmma after the second. */
        {
            uint4 qv[4];
            const bf16 *qrow = p.q + ((b * p.Lq + (tok_ok ? t0 + jt : 0)) * p.HQ + h * G + hg * 16) * DH;
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int e = lane + 32 * i, r = e >> 3, ch = e & 7;
                qv[i] = tok_ok ? __ldg(reinterpret_cast<const uint4 *>(qrow + r * DH + ch * 8)) : make_uint4(0, 0, 0, 0);
            }
            bar_sync(1 + wg, 128);
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int e = lane + 32 * i, r = e >> 3, ch = e & 7;
                *reinterpret_cast<uint4 *>(qpanel + sm90::sw128(16 * wq + r, ch)) = qv[i];
            }
            sm90::fence_proxy_async();
            bar_sync(1 + wg, 128);
        }
        mbar_wait(listFull + buf, (uint32_t)((n >> 1) & 1));
        const int nU = *nU_of(buf);
        const uint32_t *Um = Um_of(buf);
        const float *w_row = w_of(buf) + jt * K;
        float *lse_row = tok_ok && p.lse ? p.lse + ((b * p.Lq + t0 + jt) * p.HQ + h * G + hg * 16 + g8) * p.K : nullptr;
        float acc[32], S[32];
        uint32_t pa[4][4];
#pragma unroll
        for (int i = 0; i < 32; i++) acc[i] = 0.f;
        int ptr = 0; /* slot of the warp's token for its next selected chunk */

        auto wait_full = [&](uint32_t s, uint32_t ph) { mbar_wait(full + s, ph); };
        auto release = [&](uint32_t s) {
            __syncwarp();
            if (lane == 0) mbar_arrive(empty + s);
        };
        auto pass = [&](uint32_t s, uint32_t ph) {
            if (lane == 0) {
                mbar_wait(full + s, ph);
                mbar_arrive(empty + s);
            }
            __syncwarp();
        };
        auto issue_qk = [&](uint32_t s) {
            const uint64_t dk = dk0 + 1024u * s;
            sm90::fence();
            sm90::ss_n64_first(S, dq0, dk);
#pragma unroll
            for (int kk = 1; kk < 4; kk++) sm90::ss_n64(S, dq0 + 2 * kk, dk + 2 * kk, 1);
            sm90::commit();
        };
        auto issue_pv = [&](uint32_t s) {
            const uint64_t dv = dv0 + 1024u * s;
            sm90::fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++) sm90::rs_n64<1>(acc, pa[kk], dv + 128 * kk, 1);
            sm90::commit();
        };
        auto zero_pa = [&]() {
#pragma unroll
            for (int kk = 0; kk < 4; kk++) pa[kk][0] = pa[kk][1] = pa[kk][2] = pa[kk][3] = 0u;
        };
        /* softmax of chunk u in place in S for this warp's token (16 heads = 16 rows; rows g8 and
         * g8 + 8, a quad shares a row): both row halves reduced together, trees, then
         * fac = w / l per row (0 if the token did not select u) and lse stored */
        float fac[2];
        auto softmax = [&](int u) {
            fac[0] = fac[1] = 0.f;
            if (!(tok_ok && ((Um[u] >> jt) & 1u))) return;
            const int slot = ptr++;
            const float wv = w_row[slot];
            float m2[2], l[2];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float t[8];
#pragma unroll
                for (int i = 0; i < 8; i++) t[i] = fmaxf(S[4 * i + 2 * r], S[4 * i + 2 * r + 1]);
#pragma unroll
                for (int i = 0; i < 4; i++) t[i] = fmaxf(t[i], t[i + 4]);
                m2[r] = fmaxf(fmaxf(t[0], t[2]), fmaxf(t[1], t[3]));
            }
#pragma unroll
            for (int r = 0; r < 2; r++) m2[r] = fmaxf(m2[r], __shfl_xor_sync(0xffffffffu, m2[r], 1));
#pragma unroll
            for (int r = 0; r < 2; r++) {
                m2[r] = fmaxf(m2[r], __shfl_xor_sync(0xffffffffu, m2[r], 2)) * sl2;
                if (sm1) m2[r] = fmaxf(m2[r], 0.f);
            }
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int e = 0; e < 4; e++) S[4 * i + e] = ex2(fmaf(S[4 * i + e], sl2, -m2[e >> 1]));
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float t[8];
#pragma unroll
                for (int i = 0; i < 8; i++) t[i] = S[4 * i + 2 * r] + S[4 * i + 2 * r + 1];
#pragma unroll
                for (int i = 0; i < 4; i++) t[i] += t[i + 4];
                l[r] = (t[0] + t[2]) + (t[1] + t[3]);
            }
#pragma unroll
            for (int r = 0; r < 2; r++) l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
#pragma unroll
            for (int r = 0; r < 2; r++) {
                l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
                if (sm1) l[r] += ex2(-m2[r]);
                fac[r] = __fdividef(wv, l[r]);
            }
            if (tig == 0 && lse_row) {
                lse_row[slot] = (m2[0] + __log2f(l[0])) * 0.6931471805599453f;
                lse_row[8 * K + slot] = (m2[1] + __log2f(l[1])) * 0.6931471805599453f;
            }
        };
        /* P' = bf16(S fac) as the A operand of P V (zeros where fac = 0: S may hold raw scores) */
        auto pack = [&]() {
            if (fac[0] == 0.f && fac[1] == 0.f) {
                zero_pa();
                return;
            }
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                pa[kk][0] = pack_bf16(S[8 * kk + 0] * fac[0], S[8 * kk + 1] * fac[0]);
                pa[kk][1] = pack_bf16(S[8 * kk + 2] * fac[1], S[8 * kk + 3] * fac[1]);
                pa[kk][2] = pack_bf16(S[8 * kk + 4] * fac[0], S[8 * kk + 5] * fac[0]);
                pa[kk][3] = pack_bf16(S[8 * kk + 6] * fac[1], S[8 * kk + 7] * fac[1]);
            }
        };

        /* a sparse chunk (sp > 0: at most sp of the warpgroup's tokens selected it; G = 16, one token a
         * warp): only the selecting warps compute, each its own 16 rows on mma.sync m16n8k16 with
         * fragments from the swizzled q panel and ring slot (ldmatrix; the accumulator layout of
         * mma.sync is wgmma's per warp, so S, P' and acc are shared with the wgmma path). Costs the
         * tensor work of 16 rows instead of 64 where the union is wide (the pool pattern). */
        const uint32_t ring_u = smem_u32(ring), q_u = smem_u32(qpanel);
        auto sparse = [&](uint32_t s, int u) {
            const uint32_t kb = ring_u + s * 2 * CHUNK_BYTES, vb = kb + CHUNK_BYTES;
#pragma unroll
            for (int i = 0; i < 32; i++) S[i] = 0.f;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                uint32_t qa[4];
                ldsm4(qa, swz(q_u, 16 * wq + (lane & 15), 2 * kk + (lane >> 4)));
#pragma unroll
                for (int np = 0; np < 4; np++) {
                    uint32_t kf[4];
                    ldsm4(kf, swz(kb, 16 * np + (lane & 7) + (lane >> 4) * 8, 2 * kk + ((lane >> 3) & 1)));
                    mma16816(&S[8 * np], qa, kf[0], kf[1]);
                    mma16816(&S[8 * np + 4], qa, kf[2], kf[3]);
                }
            }
            softmax(u);
            pack();
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
#pragma unroll
                for (int jp = 0; jp < 4; jp++) {
                    uint32_t vf[4];
                    ldsm4t(vf, swz(vb, 16 * kk + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * jp + (lane >> 4)));
                    mma16816(&acc[8 * jp], pa[kk], vf[0], vf[1]);
                    mma16816(&acc[8 * jp + 4], pa[kk], vf[2], vf[3]);
                }
        };

        /* per chunk cur: issue S(cur) = Q K^T, then P V of the previous chunk prv (whose P' is in pa);
         * wait for S(cur) only, so the softmax of cur runs while P V of prv does; then wait for
         * P V(prv), release prv, pack P'(cur). A position >= prv + NS is waited for only after prv is
         * released (flush). cs / cph: ring slot and fill parity of cur; ps: slot of prv. */
        uint32_t cs = it % NS, cph = (it / NS) & 1u, ps = 0;
        auto next = [&]() {
            if (++cs == (uint32_t)NS) cs = 0, cph ^= 1u;
        };
        int prv = -1, cur = 0;
        auto flush = [&]() {
            issue_pv(ps);
            sm90::wait<0>();
            release(ps);
            prv = -1;
            zero_pa();
        };
        zero_pa();
        while (cur < nU && !(Um[cur] & mymask)) {
            pass(cs, cph);
            cur++;
            next();
        }
        for (;;) {
            if (cur >= nU) {
                if (prv >= 0) flush();
                break;
            }
            const uint32_t um = Um[cur] & mymask;
            if (__popc(um) <= sp) { /* sparse: no wgmma in flight (flush), the selecting warps alone */
                if (prv >= 0) flush();
#pragma unroll
                for (int i = 0; i < 32; i++) sm90::reg_fence(acc[i]);
                wait_full(cs, cph);
                if ((um >> jt) & 1u) sparse(cs, cur);
                release(cs);
                zero_pa(); /* prv = -1: the next dense chunk's dummy P V needs P' = 0 */
            } else {
                if (prv >= 0 && cur >= prv + NS) flush();
                wait_full(cs, cph);
                issue_qk(cs);
                /* always a P V group (no wgmma on a divergent path): with no prv, P' = 0 on cur's slot */
                issue_pv(prv >= 0 ? ps : cs);
                sm90::wait<1>();
#pragma unroll
                for (int i = 0; i < 32; i++) sm90::reg_fence(S[i]);
                softmax(cur);
                sm90::wait<0>();
                if (prv >= 0) release(ps);
                pack();
                prv = cur;
                ps = cs;
            }
            cur++;
            next();
            while (cur < nU && !(Um[cur] & mymask)) {
                if (prv >= 0 && cur >= prv + NS) flush();
                pass(cs, cph);
                cur++;
                next();
            }
        }
#pragma unroll
        for (int i = 0; i < 32; i++) sm90::reg_fence(acc[i]);
        mbar_arrive(listEmpty + buf); /* this thread no longer reads the block's lists */
        it += (uint32_t)nU;

        if (tok_ok) {
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int a = hg * 16 + g8 + 8 * r;
                bf16 *orow = p.o + ((b * p.Lq + t0 + jt) * p.HQ + h * G + a) * DH;
#pragma unroll
                for (int i = 0; i < 8; i++)
                    *reinterpret_cast<uint32_t *>(orow + 8 * i + 2 * tig) = pack_bf16(acc[4 * i + 2 * r], acc[4 * i + 2 * r + 1]);
            }
        }
    }
#endif
}

}  // namespace hsa_fwd_wgq

#endif
