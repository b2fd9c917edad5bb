/* hsa_attend_fwd_wg.cuh — chunk-attention forward on TMA + wgmma (sm_90a), opt-in as
 * LONGCTX_HSA_FWD = t16 (3 consumer warpgroups, pipelined), t16s (3, not pipelined) or t16w2 (2,
 * pipelined); included by hsa.cu.
 *
 * Shape: S = dh = 64, G in {16, 32, 64}. Math and layouts as the other forward kernels
 * (hsa_attend.cuh): per token t, KV head h, query head a = h*G + g, slot k on chunk c:
 *   s = q K_c^T scale, p = exp(s - m) (m includes the null logit 0 of softmax1), l = sum p (+e^-m),
 *   o[t, a] = sum_k (w_k / l_k) p_k V_c,  lse[t, a, k] = m + log l.
 * Each chunk's softmax is complete within the chunk (S = 64 keys = one tile), so no online
 * rescaling across chunks: O accumulates (w_k / l_k) P_k V_k directly.
 *
 * Work split. A consumer warpgroup owns 64 query rows = 4 tiles of 16 rows, tile = (token,
 * 16 heads) (4 tokens for G = 16): warp w of the warpgroup holds tile 4*wg + w, which is the
 * wgmma accumulator layout (rows 16w .. 16w+15 per warp). A CTA has NWG consumer warpgroups
 * (MT = 4*NWG/(G/16) adjacent tokens) and one producer warpgroup (one working warp; setmaxnreg
 * gives its registers to the consumers), and is persistent: it walks token blocks blockIdx.x,
 * + gridDim.x, ... (token block fastest, then head, then batch), so the CTAs running at one time
 * work on adjacent blocks and share chunks through the L2.
 *  - producer warp, per block: loads the block's idx / w lists into one of two list buffers
 *    (after the consumers released that buffer, mbarrier listEmpty), builds the union of the MT
 *    sorted lists (chunk_union of hsa_attend_fwd.cuh), publishes it (listFull), then lane 0
 *    streams the union's chunks into a ring of NS slots: per chunk two TMA boxes (K and V:
 *    64 rows x 128 bytes each, 128-byte swizzle, the layout wgmma descriptors read) that
 *    complete on full[s] (expect_tx 16 KB). It then goes on to the next block's lists while the
 *    consumers work, so a block's start-up latency is hidden behind the previous block.
 *  - consumer warpgroup, per union chunk (global ring position it + u): if none of its tokens
 *    selected the chunk it waits for full[s] and releases the slot at once (every warp of every
 *    warpgroup arrives on empty[s] for every chunk, so the phases stay unambiguous without the
 *    polled flag of the mma.sync kernel). Otherwise S = Q K_c^T is 4 wgmma m64n64k16 (Q from
 *    registers, loaded per block from global memory into the A-fragment layout, K K-major from
 *    the ring), the softmax runs per warp (a warp whose token did not select the chunk writes
 *    P = 0 and skips the exponentials), P' = bf16(p w / l) goes to registers as the A operand of
 *    O += P' V_c (4 wgmma, V MN-major). PIPE: S of chunk u is issued together with P V of the
 *    warpgroup's previous chunk and only S is waited for, so the softmax of u runs while P V of
 *    the previous chunk does (as the FlashAttention-3 forward); other warpgroups' softmax overlaps
 *    this one's MMAs in any case.
 * Deadlock-free: a warpgroup holds at most one slot (its previous chunk) while it waits for the
 * full barrier of a later position x, and only if x < held + NS (else it finishes and releases
 * the held chunk first); the warpgroup with the lowest unreleased position therefore waits only for
 * fills the producer can make. List buffers: listFull (32 producer lanes) / listEmpty (every
 * consumer thread) per buffer, parity by block count.
 * Rows of tokens past Lq: q = 0, never written. o and lse are written straight from registers.
 */
#ifndef LONGCTX_HSA_ATTEND_FWD_WG_CUH
#define LONGCTX_HSA_ATTEND_FWD_WG_CUH

#include "hsa_attend.cuh"
#include "hsa_attend_fwd.cuh"
#include "sm90.cuh"

namespace hsa_fwd_wg {

using namespace hsa_mma;
using hsa_attend::tok_params;
typedef __nv_bfloat16 bf16;

constexpr int CHUNK_BYTES = 64 * 128; /* one 64 x 64 bf16 box */

/* Shared memory: [1024 alignment slack][ring NS x (K box, V box)][full, empty (NS each),
 * listFull, listEmpty (2 each)][2 list buffers]. */
struct wg_smem {
    __host__ __device__ static size_t list_bytes(int MT, int K) { return ((size_t)MT * K * 16 + 33 * 4 + 15) & ~(size_t)15; }
    static size_t bytes(int MT, int K, int ns) { return 1024 + (size_t)ns * 2 * CHUNK_BYTES + (2 * (size_t)ns + 4) * 8 + 2 * list_bytes(MT, K); }
    static int stages(int MT, int K, size_t budget) {
        int ns = 12;
        while (ns > 2 && bytes(MT, K, ns) > budget) ns--;
        return ns;
    }
};

/* 2^x on the MUFU unit (ex2.approx.ftz; the reference tolerances allow its ~2 ulp) */
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* NWG consumer warpgroups; PIPE: the softmax of a chunk overlaps the P V of the previous one
 * (else S(next) is issued with P V(cur) and the warpgroup waits for both).
 * diag (timing experiments, LONGCTX_HSA_FWD_DIAG): bit 0 "dry" = the consumers pass every chunk
 * (gathers only; o = 0), bit 1 "hot" = every box is loaded from chunk 0 (L2-resident; wrong
 * results, the compute side alone). 0 in normal use. */
template <int NWG, int PIPE>
__global__ void __launch_bounds__(128 * NWG + 128, 1)
    attend_fwd_wg_kernel(const tok_params p, const __grid_constant__ CUtensorMap tk, const __grid_constant__ CUtensorMap tv,
                         const int NS, const int64_t ntb, const int64_t nblk, const int diag) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using hsa_fwd::mbar_arrive;
    using hsa_fwd::mbar_init;
    using hsa_fwd::mbar_wait;
    constexpr int DH = 64;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    unsigned char *ring = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    uint64_t *full = reinterpret_cast<uint64_t *>(ring + (size_t)NS * 2 * CHUNK_BYTES);
    uint64_t *empty = full + NS, *listFull = empty + NS, *listEmpty = listFull + 2;
    unsigned char *lists = reinterpret_cast<unsigned char *>(listEmpty + 2);
    const int K = (int)p.K, G = (int)p.G, GT = G / 16, MT = p.MT;
    const size_t lb = wg_smem::list_bytes(MT, K);
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
            mbar_init(listFull + i, 32);      /* every producer lane (each wrote list entries) */
            mbar_init(listEmpty + i, 128 * NWG); /* every consumer thread (each read them) */
        }
        sm90::fence_mbar_init();
    }
    __syncthreads();

    /* registers: 65536 / (128 (NWG + 1)) a thread at entry; the producer warpgroup (one working
     * warp) drops to PREG, the consumers take what it freed (per SM sub-partition one producer
     * warp + NWG consumer warps share 512 registers a lane). ptxas compiles the producer within
     * PREG (fewer spill) but the NWG = 3 consumers still within the kernel's 128. */
    constexpr int PREG = 56, CREG = NWG == 3 ? 152 : 224;
    if (warp >= 4 * NWG) { /* --------------------------------------------------- producer */
        sm90::setmaxnreg_dec<PREG>();
        if (warp > 4 * NWG) return;
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
                for (int u = 0; u < nU; u++, it++) {
                    const uint32_t s = it % NS;
                    if (it >= (uint32_t)NS) mbar_wait(empty + s, ((it / NS) - 1) & 1);
                    const uint32_t fb = smem_u32(full + s), dst = smem_u32(ring + (size_t)s * 2 * CHUNK_BYTES);
                    sm90::mbar_expect_tx(fb, 2 * CHUNK_BYTES);
                    const int row = diag & 2 ? 0 : U[u] * 64;
                    sm90::tma_load_4d(dst, &tk, 0, (int)h, row, (int)b, fb);
                    sm90::tma_load_4d(dst + CHUNK_BYTES, &tv, 0, (int)h, row, (int)b, fb);
                }
            }
            it = __shfl_sync(0xffffffffu, it, 0);
            __syncwarp();
        }
        return;
    }

    /* --------------------------------------------------------------------------- consumers */
    sm90::setmaxnreg_inc<CREG>();
    const int wg = warp >> 2, wq = warp & 3, g8 = lane >> 2, tig = lane & 3;
    const int tile = 4 * wg + wq, jt = tile / GT, hg = tile % GT;
    const int jlo = (4 * wg) / GT, jhi = (4 * wg + 3) / GT;
    const uint32_t wgmask = ((jhi + 1 >= 32 ? 0xffffffffu : (1u << (jhi + 1))) - 1u) & ~((1u << jlo) - 1u);
    const float sl2 = p.scale * 1.4426950408889634f;
    uint32_t it = 0; /* ring position of the block's first union chunk */
    int n = 0;
    /* A fragments of q (rows g8 and g8 + 8 of the warp's tile, k16 slice kk) for a block */
    auto load_q = [&](uint32_t (*qf)[4], int64_t blk) {
        const int64_t tb = blk % ntb, h = (blk / ntb) % p.H, b = blk / ntb / p.H, t = tb * MT + jt;
        const bool ok = blk < nblk && jt < MT && t < p.Lq;
        const bf16 *r0 = p.q + ((b * p.Lq + (ok ? t : 0)) * p.HQ + h * G + hg * 16 + g8) * DH + 2 * tig;
        const bf16 *r1 = r0 + 8 * DH;
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            qf[kk][0] = ok ? __ldg(reinterpret_cast<const unsigned int *>(r0 + 16 * kk)) : 0u;
            qf[kk][1] = ok ? __ldg(reinterpret_cast<const unsigned int *>(r1 + 16 * kk)) : 0u;
            qf[kk][2] = ok ? __ldg(reinterpret_cast<const unsigned int *>(r0 + 16 * kk + 8)) : 0u;
            qf[kk][3] = ok ? __ldg(reinterpret_cast<const unsigned int *>(r1 + 16 * kk + 8)) : 0u;
        }
    };
    /* PREQ: the next block's q is loaded during this one (16 more registers: ptxas keeps the
     * 3-warpgroup consumers at the kernel's 128 despite setmaxnreg and spills; they load q at the
     * start of each block instead) */
    constexpr bool PREQ = NWG <= 2;
    uint32_t qn[4][4];
    if constexpr (PREQ) load_q(qn, blockIdx.x);
    for (int64_t blk = blockIdx.x; blk < nblk; blk += gridDim.x, n++) {
        const int buf = n & 1;
        const int64_t tb = blk % ntb, h = (blk / ntb) % p.H, b = blk / ntb / p.H, t0 = tb * MT;
        const bool tok_ok = jt < MT && t0 + jt < p.Lq;
        uint32_t qf[4][4];
        if constexpr (PREQ) {
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
#pragma unroll
                for (int c = 0; c < 4; c++) qf[kk][c] = qn[kk][c];
            load_q(qn, blk + gridDim.x); /* the next block's q, in flight during this one */
        } else {
            load_q(qf, blk);
        }
        mbar_wait(listFull + buf, (uint32_t)((n >> 1) & 1));
        const int nU = *nU_of(buf);
        const uint32_t *Um = Um_of(buf);
        const float *w_s = w_of(buf);
        float acc[32], S[32];
        uint32_t pa[4][4];
#pragma unroll
        for (int i = 0; i < 32; i++) acc[i] = 0.f;
        int ptr = 0; /* slot of the warp's token for its next selected chunk */

        auto slot_addr = [&](int u) { return smem_u32(ring + (size_t)((it + u) % NS) * 2 * CHUNK_BYTES); };
        auto wait_full = [&](int u) { mbar_wait(full + (it + u) % NS, ((it + u) / NS) & 1); };
        auto release = [&](int u) {
            __syncwarp();
            if (lane == 0) mbar_arrive(empty + (it + u) % NS);
        };
        auto pass = [&](int u) {
            if (lane == 0) {
                mbar_wait(full + (it + u) % NS, ((it + u) / NS) & 1);
                mbar_arrive(empty + (it + u) % NS);
            }
            __syncwarp();
        };
        /* wgmma groups: QK = S of one chunk, PV = O += P' V of one chunk */
        auto issue_qk = [&](int u) {
            const uint32_t ka = slot_addr(u);
            sm90::fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++) sm90::rs_n64<0>(S, qf[kk], sm90::desc_k(ka + kk * 32), kk > 0);
            sm90::commit();
        };
        auto issue_pv = [&](int u) {
            const uint32_t va = slot_addr(u) + CHUNK_BYTES;
            sm90::fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++) sm90::rs_n64<1>(acc, pa[kk], sm90::desc_mn(va + kk * 16 * 128), 1);
            sm90::commit();
        };
        /* softmax of chunk u in place in S (fp32) for this warp's token (16 heads = 16 rows, a quad
         * shares a row): S = exp2(s scale log2e - m); fac = w / l per row (0 if the token did not
         * select u); lse stored */
        float fac[2];
        auto softmax = [&](int u) {
            fac[0] = fac[1] = 0.f;
            if (!(tok_ok && ((Um[u] >> jt) & 1u))) return;
            const int slot = ptr++;
            const float wv = w_s[jt * K + slot];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = -INFINITY;
#pragma unroll
                for (int i = 0; i < 8; i++) mx = fmaxf(mx, fmaxf(S[4 * i + 2 * r], S[4 * i + 2 * r + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                float m2 = mx * sl2;
                if (p.softmax1) m2 = fmaxf(m2, 0.f);
                float l = 0.f;
#pragma unroll
                for (int i = 0; i < 8; i++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const float pv = ex2(fmaf(S[4 * i + 2 * r + e], sl2, -m2));
                        S[4 * i + 2 * r + e] = pv;
                        l += pv;
                    }
                l += __shfl_xor_sync(0xffffffffu, l, 1);
                l += __shfl_xor_sync(0xffffffffu, l, 2);
                if (p.softmax1) l += ex2(-m2);
                fac[r] = __fdividef(wv, l);
                if (tig == 0 && p.lse) {
                    const int a = hg * 16 + g8 + 8 * r;
                    p.lse[((b * p.Lq + t0 + jt) * p.HQ + h * G + a) * p.K + slot] = (m2 + __log2f(l)) * 0.6931471805599453f;
                }
            }
        };
        /* P' = bf16(S fac) as the A operand of P V (zeros where fac = 0: S may hold raw scores) */
        auto pack = [&]() {
            if (fac[0] == 0.f && fac[1] == 0.f) {
#pragma unroll
                for (int kk = 0; kk < 4; kk++) pa[kk][0] = pa[kk][1] = pa[kk][2] = pa[kk][3] = 0u;
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
        const uint32_t mymask = diag & 1 ? 0u : wgmask; /* diag dry: the consumers only pass chunks */

        if constexpr (PIPE) {
            /* per chunk cur: issue S(cur) = Q K^T, then P V of the previous chunk prv (whose P' is in
             * pa); wait for S(cur) only, so the softmax of cur runs while P V of prv does; then wait
             * for P V(prv), release prv, pack P'(cur). A position >= prv + NS is waited for only after
             * prv is released (flush). */
            auto flush = [&](int &prv) {
                issue_pv(prv);
                sm90::wait<0>();
                release(prv);
                prv = -1;
#pragma unroll
                for (int kk = 0; kk < 4; kk++) pa[kk][0] = pa[kk][1] = pa[kk][2] = pa[kk][3] = 0u;
            };
            int prv = -1, cur = 0;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) pa[kk][0] = pa[kk][1] = pa[kk][2] = pa[kk][3] = 0u;
            while (cur < nU && !(Um[cur] & mymask)) pass(cur++);
            for (;;) {
                if (cur >= nU) {
                    if (prv >= 0) flush(prv);
                    break;
                }
                if (prv >= 0 && cur >= prv + NS) flush(prv);
                wait_full(cur);
                issue_qk(cur);
                /* always a P V group (no wgmma on a divergent path): with no prv, P' = 0 on cur's slot */
                issue_pv(prv >= 0 ? prv : cur);
                sm90::wait<1>();
#pragma unroll
                for (int i = 0; i < 32; i++) sm90::reg_fence(S[i]);
                softmax(cur);
                sm90::wait<0>();
                if (prv >= 0) release(prv);
                pack();
                prv = cur;
                for (cur = prv + 1; cur < nU && !(Um[cur] & mymask); cur++) {
                    if (prv >= 0 && cur >= prv + NS) flush(prv);
                    pass(cur);
                }
            }
        } else {
            /* nx: the warpgroup's next chunk (union position); held: the chunk whose P V is in flight */
            int nx = 0, held = -1;
            while (nx < nU && !(Um[nx] & mymask)) pass(nx++);
            for (;;) {
                if (nx < nU) {
                    wait_full(nx);
                    issue_qk(nx);
                }
                sm90::wait<0>();
                if (held >= 0) release(held);
                if (nx >= nU) break;
                const int cur = nx;
#pragma unroll
                for (int i = 0; i < 32; i++) sm90::reg_fence(S[i]);
                softmax(cur);
                pack();
                /* O += P' V of chunk cur; the S of the next chunk is issued behind it at the top of the
                 * loop (a position >= cur + NS only after cur is released) */
                issue_pv(cur);
                held = cur;
                for (nx = cur + 1; nx < nU && !(Um[nx] & mymask); nx++) {
                    if (held >= 0 && nx >= cur + NS) {
                        sm90::wait<0>();
                        release(held);
                        held = -1;
                    }
                    pass(nx);
                }
                if (held >= 0 && nx < nU && nx >= cur + NS) {
                    sm90::wait<0>();
                    release(held);
                    held = -1;
                }
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

}  // namespace hsa_fwd_wg

#endif
