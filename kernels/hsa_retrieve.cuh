/* hsa_retrieve.cuh — streaming retrieval top-k (included by hsa.cu only).
 *
 * One CTA per (block of RB = 128 retrieval rows, batch b, retrieval head hr); 8 warps. The CTA
 * streams the landmarks of every chunk its rows can see in tiles of TN = 128 chunks; each tile's
 * scores [128 rows x 128 chunks] are a GEMM over dr whose k-slices a 3-stage cp.async pipeline
 * brings into shared memory (one barrier per slice; query slices are re-read per tile, they stay
 * in L2). The GEMM runs either on mma.sync (k-slices of 32; warp tiles 16 x 128 or 32 x 64) or,
 * on sm_90a, on wgmma (k-slices of 64 in 128-byte-swizzled panels; warpgroup tiles 64 x 128, the
 * operands read by the tensor cores straight from shared memory). After a tile, each value is compared
 * with its row's current worst kept entry (all lanes at once, in registers) and marked as a
 * candidate if it beats it; the scores are parked in shared memory over the idle pipeline
 * stages, and one lane per row walks only its candidates: the row's top-K (key, score, chunk)
 * list is appended to until full, then kept as a heap with the worst entry at the root (replace
 * the root, sift down: O(log K) per insertion). Order: larger key first, equal keys -> smaller
 * chunk id, as the C reference. key = score (+ Gumbel noise when enabled, computed by the device
 * twin of hsa_gumbel); the noiseless score is kept for the output. At the end each row's list is
 * sorted by chunk id descending; slots past min(K, visible) get idx 0 and score -inf.
 * Memory: O(RB*K) per CTA, nothing of size L x C.
 * Row blocks run last-first so the long rows (many visible chunks) start early.
 */
#ifndef LONGCTX_HSA_RETRIEVE_CUH
#define LONGCTX_HSA_RETRIEVE_CUH

#include <limits.h>

#include "hsa_mma.cuh"
#include "sm90.cuh"

namespace hsa_retrieve {

using namespace hsa_mma;
typedef __nv_bfloat16 bf16;

/* 16-byte cp.async that writes zeros instead when !ok (gmem is then not read) */
__device__ __forceinline__ void cp_async16_zfill(void *smem, const void *gmem, bool ok) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"((uint32_t)__cvta_generic_to_shared(smem)),
                 "l"(gmem), "r"(ok ? 16 : 0));
}

constexpr int RB = 128, TN = 128, BK = 32, LDS = BK + 8, STAGES = 3, NTHREADS = 256;

struct params {
    int64_t B, Lr, Hr, dr, S, K, C, block_q;
    /* query offset (block_q = 1): local row r is absolute row p0 + r of Lr_all rows; visibility
     * and the Gumbel stream use the absolute row. No offset: p0 = 0, Lr_all = Lr. */
    int64_t p0, Lr_all;
    int gumbel;
    int prune_kmax; /* pruning while lists fill applies for K <= this (8, 16 or 32) */
    uint64_t seed;
    float inv_sqrt_dr;
    const bf16 *qr, *lmk;
    int32_t *idx;
    float *score;
};

/* r: local row */
__device__ __forceinline__ int64_t nvis(int64_t r, const params &p) {
    r += p.p0;
    int64_t n = p.block_q == 1 ? r / p.S : r - 1;
    if (n < 0) n = 0;
    return n < p.C ? n : p.C;
}

/* key of a value with Gumbel noise (hsa_mma.cuh twin of hsa_gumbel) */
__device__ __forceinline__ float gumbel_key(float v, uint64_t seed, uint64_t row_head, uint64_t c) {
    return v + gumbel(seed, row_head, c);
}

__device__ __forceinline__ bool better(float ka, int ia, float kb, int ib) {
    return ka > kb || (ka == kb && ia < ib);
}

/* The tile's scores go to shared memory (aliasing the pipeline stages, idle between tiles) with
 * one candidate bit per value, and one lane per row walks only the candidate bits: no
 * register-indexed insertion code, so the kernel fits 128 registers and two CTAs share an SM (one
 * computes while the other selects). A first version that inserted straight from registers needed
 * 255 registers and spilled. */
constexpr int SLD = TN + 4; /* score tile row stride (floats): 2-way bank pattern for float2 stores */

/* WG (sm_90a): the score GEMM on warpgroup MMAs, k-slices of BKW = 64 in 128-byte-swizzled
 * panels (sm90.cuh), 3 stages of 32 KB; the region is 1024-byte aligned inside the dynamic
 * shared memory (up to 1 KB of slack). */
constexpr int BKW = 64;
template <bool WG>
constexpr size_t stage_bytes() {
    return WG ? (size_t)STAGES * 2 * RB * BKW * sizeof(bf16) : (size_t)STAGES * 2 * RB * LDS * sizeof(bf16);
}
/* stages (aliased by the score tile) | lists RB*K*(key, score, id) | per-row worst key, id, count |
 * candidate masks RB * 4*NWN words. At K = 8 the WG kernel takes 115,200 bytes: two CTAs
 * and their 1 KB reserves fit the 228 KB of an H100 SM. */
template <bool WG, int NWN>
static size_t smem_bytes(int K) {
    size_t stages = stage_bytes<WG>();
    size_t tile = (size_t)RB * SLD * sizeof(float);
    return (WG ? 1024 : 0) + (stages > tile ? stages : tile) + (size_t)RB * K * 12 + (size_t)RB * 12 +
           (size_t)RB * 4 * NWN * 4;
}

/* Heap with the WORST entry at the root (order: better() reversed); restore from position j. */
__device__ __forceinline__ void sift_down(float *lk, float *ls, int *li, int K, int j) {
    float k0 = lk[j], s0 = ls[j];
    int i0 = li[j];
    for (;;) {
        int ch = 2 * j + 1;
        if (ch >= K) break;
        if (ch + 1 < K && better(lk[ch], li[ch], lk[ch + 1], li[ch + 1])) ch++; /* the worse child */
        if (!better(k0, i0, lk[ch], li[ch])) break; /* k0 is already worse than (or equal to) it */
        lk[j] = lk[ch];
        ls[j] = ls[ch];
        li[j] = li[ch];
        j = ch;
    }
    lk[j] = k0;
    ls[j] = s0;
    li[j] = i0;
}

/* Pruning threshold of one row of a score tile (the 4 lanes of a quad share the row; this lane's
 * values are srow[n*8 + {0,1}], n < NN, visible when n*8 + e < lim): each lane keeps its M largest
 * visible values (insertion into a sorted register list), T = min over the quad of the lanes'
 * M-th largest. At least 4M values of the tile reach T, so with K <= 4M a value below T cannot be
 * in the row's top K (it has K strictly larger values in this tile alone). A lane with fewer than
 * M visible values gives -inf: no pruning. */
template <int M, int NN>
__device__ __forceinline__ float quad_threshold(const float *srow, int lim) {
    float t[M];
#pragma unroll
    for (int i = 0; i < M; i++) t[i] = -INFINITY;
#pragma unroll
    for (int n = 0; n < NN; n++) {
        const float2 v2 = *reinterpret_cast<const float2 *>(srow + n * 8);
#pragma unroll
        for (int e = 0; e < 2; e++) {
            float v = n * 8 + e < lim ? (e ? v2.y : v2.x) : -INFINITY;
#pragma unroll
            for (int i = 0; i < M; i++) { /* t stays sorted descending; v carries the smaller one on */
                const float hi = fmaxf(t[i], v);
                v = fminf(t[i], v);
                t[i] = hi;
            }
        }
    }
    float thr = t[M - 1];
    thr = fminf(thr, __shfl_xor_sync(0xffffffffu, thr, 1));
    thr = fminf(thr, __shfl_xor_sync(0xffffffffu, thr, 2));
    return thr;
}

/* WM = rows of a warp's score tile: 16 (warp tile 16 x 128, the first version) or 32 (32 x 64:
 * each k16 step reads 2 A + 4 B fragments instead of 1 + 8, a third less shared-memory traffic
 * for the same mma count; the score GEMM is bound by shared-memory reads). PRUNE: while a row's
 * list is not full, a value only becomes a candidate if it reaches the row's threshold T = the
 * minimum over the 4 lanes sharing the row of each lane's M-th largest key of the tile (M = 2, 4,
 * 8 for K <= 8, 16, 32; quad_threshold), no Gumbel noise, K <= params.prune_kmax. It spares the
 * first tile's serial walk over every value. */
template <int WM, bool PRUNE, bool WG>
__global__ void __launch_bounds__(NTHREADS, 2) retrieve_kernel(const params p) {
    static_assert(!WG || WM == 16, "the wgmma accumulators are the WM = 16 layout (warp w: rows 16w..16w+15)");
    static_assert(RB == 128 && TN == 128 && NTHREADS == 256, "load_wg: 256 threads copy 4 x 32 rows of 8 chunks");
    constexpr int NWM = RB / WM, NWN = 8 / NWM, WN = TN / NWN, MI = WM / 16, NN = WN / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *smem = WG ? smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023) : smem_raw;
    const int K = (int)p.K;
    constexpr size_t stages = stage_bytes<WG>(), tileb = (size_t)RB * SLD * sizeof(float);
    bf16 *Qs = reinterpret_cast<bf16 *>(smem);
    bf16 *Ls = Qs + STAGES * RB * (WG ? BKW : LDS);
    float *sct = reinterpret_cast<float *>(smem);
    float *lk = reinterpret_cast<float *>(smem + (stages > tileb ? stages : tileb));
    float *ls = lk + RB * K;
    int *li = reinterpret_cast<int *>(ls + RB * K);
    float *wk_s = reinterpret_cast<float *>(li + RB * K);
    int *wi_s = reinterpret_cast<int *>(wk_s + RB);
    int *cnt_s = wi_s + RB;
    uint32_t *cm = reinterpret_cast<uint32_t *>(cnt_s + RB);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g8 = lane >> 2, tig = lane & 3;
    const int wm = warp / NWN, wn = warp % NWN;
    const int64_t nblk = gridDim.x;
    const int64_t r0 = (nblk - 1 - blockIdx.x) * RB;
    const int64_t b = blockIdx.y / p.Hr, hr = blockIdx.y % p.Hr;
    const int64_t rlast = (r0 + RB - 1 < p.Lr - 1) ? r0 + RB - 1 : p.Lr - 1;
    const int64_t nv_max = nvis(rlast, p);
    const int ntiles = (int)((nv_max + TN - 1) / TN);
    const int nks = (int)(p.dr / (WG ? BKW : BK));

    for (int e = threadIdx.x; e < RB * K; e += NTHREADS) {
        lk[e] = -INFINITY;
        ls[e] = -INFINITY;
        li[e] = INT_MAX;
    }
    for (int e = threadIdx.x; e < RB; e += NTHREADS) {
        wk_s[e] = -INFINITY;
        wi_s[e] = INT_MAX;
        cnt_s[e] = 0;
    }

    const int64_t qstride = p.Hr * p.dr;
    const bf16 *qbase = p.qr + ((b * p.Lr) * p.Hr + hr) * p.dr;
    const bf16 *lbase = p.lmk + ((b * p.C) * p.Hr + hr) * p.dr;
    auto load = [&](int64_t c0, int ks, int st) {
        for (int e = threadIdx.x; e < 2 * RB * (BK / 8); e += NTHREADS) {
            int which = e / (RB * (BK / 8));
            int rem = e % (RB * (BK / 8));
            int r = rem / (BK / 8), sg = rem % (BK / 8);
            if (which == 0) {
                int64_t row = r0 + r;
                if (row > p.Lr - 1) row = p.Lr - 1;
                cp_async16(Qs + (st * RB + r) * LDS + sg * 8, qbase + row * qstride + ks * BK + sg * 8);
            } else {
                int64_t c = c0 + r;
                if (c > nv_max - 1) c = nv_max - 1;
                cp_async16(Ls + (st * TN + r) * LDS + sg * 8, lbase + c * qstride + ks * BK + sg * 8);
            }
        }
    };
    /* WG: slice ks (64 columns of dr) of the 128 query rows and TN landmarks into swizzled panels.
     * Thread t copies 16-byte chunk t%8 of rows t/8 + 32j (j < 4) of both; those rows share
     * r & 7, so one swizzled offset serves all four (+ 32 rows = + 4096 bytes). */
    const int wch = threadIdx.x & 7, wr = threadIdx.x >> 3;
    const int wsw = sm90::sw128(wr, wch);
    auto load_wg = [&](int64_t c0, int ks, int st) {
        unsigned char *qd = reinterpret_cast<unsigned char *>(Qs) + st * RB * 128 + wsw;
        unsigned char *ld = reinterpret_cast<unsigned char *>(Ls) + st * TN * 128 + wsw;
        const int64_t ko = (int64_t)ks * BKW + wch * 8;
        const bf16 *qs = qbase + (r0 + wr) * qstride + ko, *lsrc = lbase + (c0 + wr) * qstride + ko;
#pragma unroll
        for (int j = 0; j < 4; j++) { /* rows past the end: zeros (never selected, never written) */
            const bool qok = r0 + wr + 32 * j < p.Lr, lok = c0 + wr + 32 * j < nv_max;
            cp_async16_zfill(qd + j * 4096, qok ? qs + 32 * j * qstride : qbase, qok);
            cp_async16_zfill(ld + j * 4096, lok ? lsrc + 32 * j * qstride : lbase, lok);
        }
    };

    /* this thread's rows wm*WM + mi*16 + g8 + hh*8 and their visible chunk counts (< 2^31) */
    int row_nv[MI][2];
#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            const int64_t gr = r0 + wm * WM + mi * 16 + g8 + hh * 8;
            row_nv[mi][hh] = gr < p.Lr ? (int)nvis(gr, p) : 0;
        }
#define ROW_L(mi, hh) (wm * WM + (mi) * 16 + g8 + (hh) * 8)
    __syncthreads();

    for (int tile = 0; tile < ntiles; tile++) {
        const int64_t c0 = (int64_t)tile * TN;
        float acc[MI][NN][4];
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
#pragma unroll
            for (int n = 0; n < NN; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc[mi][n][e] = 0.f;
        if constexpr (WG) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
            /* warpgroup wg = warp/4 computes rows 64wg..64wg+63 x all TN columns; its warp w%4 holds
             * rows 16*warp + g8 (+8): the same registers as the WM = 16 mma.sync layout below. The
             * wgmma of slice ks completes (wait) before the barrier of slice ks+1, after which its
             * stage is refilled. */
            for (int s = 0; s < STAGES - 1; s++) {
                if (s < nks) load_wg(c0, s, s);
                cp_async_commit();
            }
            float *d = &acc[0][0][0];
            const uint32_t qa = smem_u32(Qs) + (warp >> 2) * 64 * 128, la = smem_u32(Ls);
            for (int ks = 0; ks < nks; ks++) {
                const int st = ks % STAGES;
                cp_async_wait<STAGES - 2>();
                sm90::fence_proxy_async();
                __syncthreads();
                if (ks + STAGES - 1 < nks) load_wg(c0, ks + STAGES - 1, (ks + STAGES - 1) % STAGES);
                cp_async_commit();
                sm90::fence();
#pragma unroll
                for (int kk = 0; kk < BKW / 16; kk++)
                    sm90::ss_n128(d, sm90::desc_k(qa + st * RB * 128 + kk * 32), sm90::desc_k(la + st * TN * 128 + kk * 32), 1);
                sm90::commit();
                sm90::wait<0>();
#pragma unroll
                for (int i = 0; i < MI * NN * 4; i++) sm90::reg_fence(d[i]);
            }
#else
            __trap(); /* the host launches WG kernels only where the sm_90a build is loaded */
#endif
        } else {
            for (int s = 0; s < STAGES - 1; s++) {
                if (s < nks) load(c0, s, s);
                cp_async_commit();
            }
            for (int ks = 0; ks < nks; ks++) {
                const int st = ks % STAGES;
                cp_async_wait<STAGES - 2>(); /* slice ks landed */
                __syncthreads();              /* ... for everyone; slice ks-1's stage is free */
                if (ks + STAGES - 1 < nks) load(c0, ks + STAGES - 1, (ks + STAGES - 1) % STAGES);
                cp_async_commit();
                const bf16 *Qt = Qs + st * RB * LDS, *Lt = Ls + st * TN * LDS;
#pragma unroll
                for (int kk = 0; kk < BK / 16; kk++) {
                    uint32_t a[MI][4];
#pragma unroll
                    for (int mi = 0; mi < MI; mi++) lds_a(a[mi], Qt, LDS, wm * WM + mi * 16, kk * 16, lane);
#pragma unroll
                    for (int np = 0; np < NN / 2; np++) {
                        uint32_t bb[4];
                        lds_b_nk(bb, Lt, LDS, wn * WN + np * 16, kk * 16, lane);
#pragma unroll
                        for (int mi = 0; mi < MI; mi++) {
                            mma16816(acc[mi][2 * np], a[mi], bb[0], bb[1]);
                            mma16816(acc[mi][2 * np + 1], a[mi], bb[2], bb[3]);
                        }
                    }
                }
            }
        }
        cp_async_wait<0>();
        __syncthreads(); /* every warp is done with the stages: they become the score tile */
        /* park the scaled scores in shared memory first (the accumulators die here, which keeps
         * the candidate pass below within the register budget); each thread re-reads only the
         * values it wrote itself */
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
#pragma unroll
            for (int n = 0; n < NN; n++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++)
                    *reinterpret_cast<float2 *>(sct + ROW_L(mi, hh) * SLD + wn * WN + n * 8 + tig * 2) =
                        make_float2(acc[mi][n][2 * hh] * p.inv_sqrt_dr, acc[mi][n][2 * hh + 1] * p.inv_sqrt_dr);
        /* candidates: visible values that beat the row's current worst entry */
        bool fill = false; /* some row of this thread has a list that is not full yet */
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) fill |= wk_s[ROW_L(mi, hh)] == -INFINITY;
        const bool prune = PRUNE && !p.gumbel && p.K <= p.prune_kmax && __any_sync(0xffffffffu, fill);
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const int rl = ROW_L(mi, hh);
                const float *srow = sct + rl * SLD + wn * WN + tig * 2;
                const int lim = row_nv[mi][hh] - (int)c0 - wn * WN - tig * 2; /* visible: n*8 + e < lim */
                float thr = -INFINITY;
                if (prune) { /* T = min over the quad of each lane's M-th largest visible key, 4M >= K */
                    if (K <= 8) thr = quad_threshold<2, NN>(srow, lim);
                    else if (K <= 16) thr = quad_threshold<4, NN>(srow, lim);
                    else thr = quad_threshold<8, NN>(srow, lim);
                }
                const float wk0 = wk_s[rl];
                const int wi0 = wi_s[rl];
                uint32_t mask = 0u;
#pragma unroll 2
                for (int n = 0; n < NN; n++) {
                    const float2 v2 = *reinterpret_cast<const float2 *>(srow + n * 8);
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const float v = e ? v2.y : v2.x;
                        const int c = (int)c0 + wn * WN + n * 8 + tig * 2 + e;
                        bool cand = n * 8 + e < lim && v >= thr;
                        if (cand) {
                            float key = v;
                            if (p.gumbel) key = gumbel_key(v, p.seed, (uint64_t)((b * p.Lr_all + p.p0 + r0 + rl) * p.Hr + hr), (uint64_t)c);
                            cand = better(key, c, wk0, wi0);
                        }
                        if (cand) mask |= 1u << (n * 2 + e);
                    }
                }
                cm[rl * (4 * NWN) + wn * 4 + tig] = mask;
            }
        if (NWN == 1) __syncwarp(); /* the warp walks its own rows */
        else __syncthreads();        /* a row's masks come from NWN warps */
        if (lane < 16) { /* one lane per row walks the candidate bits */
            const int rl = warp * 16 + lane;
            const uint64_t rh = (uint64_t)((b * p.Lr_all + p.p0 + r0 + rl) * p.Hr + hr);
            float *lkr = lk + rl * K, *lsr = ls + rl * K;
            int *lir = li + rl * K;
            float wk = wk_s[rl];
            int wi = wi_s[rl], cnt = cnt_s[rl];
            for (int tg = 0; tg < 4 * NWN; tg++) {
                uint32_t m = cm[rl * (4 * NWN) + tg];
                while (m) {
                    const int bit = __ffs(m) - 1;
                    m &= m - 1;
                    const int col = (tg >> 2) * WN + (bit >> 1) * 8 + (tg & 3) * 2 + (bit & 1);
                    const int c = (int)(c0 + col);
                    const float sc = sct[rl * SLD + col];
                    const float key = p.gumbel ? sc + gumbel(p.seed, rh, (uint64_t)c) : sc;
                    if (cnt < K) { /* list not full: append; heapify once it fills */
                        lkr[cnt] = key;
                        lsr[cnt] = sc;
                        lir[cnt] = c;
                        cnt++;
                        if (cnt == K) {
                            for (int j = K / 2 - 1; j >= 0; j--) sift_down(lkr, lsr, lir, K, j);
                            wk = lkr[0], wi = lir[0];
                        }
                    } else if (better(key, c, wk, wi)) { /* replace the root (worst) of the heap */
                        lkr[0] = key;
                        lsr[0] = sc;
                        lir[0] = c;
                        sift_down(lkr, lsr, lir, K, 0);
                        wk = lkr[0], wi = lir[0];
                    }
                }
            }
            wk_s[rl] = wk;
            wi_s[rl] = wi;
            cnt_s[rl] = cnt;
        }
        __syncthreads(); /* the tile buffer is the next tile's pipeline */
    }

#undef ROW_L
    /* sort each row by chunk id descending (empty entries last) and write */
    for (int rl = threadIdx.x; rl < RB; rl += NTHREADS) {
        const int64_t gr = r0 + rl;
        if (gr >= p.Lr) continue;
        float *s_ = ls + rl * K;
        int *i_ = li + rl * K;
        for (int j = 1; j < K; j++) {
            int id = i_[j];
            float sv = s_[j];
            int ord = id == INT_MAX ? -1 : id;
            int m = j - 1;
            while (m >= 0 && (i_[m] == INT_MAX ? -1 : i_[m]) < ord) {
                i_[m + 1] = i_[m];
                s_[m + 1] = s_[m];
                m--;
            }
            i_[m + 1] = id;
            s_[m + 1] = sv;
        }
        const int64_t nv = nvis(gr, p);
        const int nvalid = (int)(nv < K ? nv : K);
        int32_t *io = p.idx + ((b * p.Lr + gr) * p.Hr + hr) * K;
        float *so = p.score + ((b * p.Lr + gr) * p.Hr + hr) * K;
        for (int j = 0; j < K; j++) {
            bool ok = j < nvalid && i_[j] != INT_MAX;
            io[j] = ok ? i_[j] : 0;
            so[j] = ok ? s_[j] : -INFINITY;
        }
    }
}

}  // namespace hsa_retrieve

#endif
