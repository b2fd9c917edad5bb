/* hsa_retrieve.cuh — streaming retrieval top-k (included by hsa.cu only).
 *
 * One CTA per (block of RB = 128 retrieval rows, batch b, retrieval head hr); 8 warps, a warp owns
 * 16 rows. The CTA streams the landmarks of every chunk its rows can see in tiles of TN = 128
 * chunks; each tile's scores [128 rows x 128 chunks] are a GEMM over dr, done with mma.sync in
 * k-slices of 32 that a 3-stage cp.async pipeline brings into shared memory (query slices are
 * re-read per tile; they stay in L2). The scores never leave registers: per row a running top-K
 * list (key, score, chunk) lives in shared memory with its current worst entry; a tile first
 * filters its values against the worst (one compare each, all lanes at once), and only the few
 * that beat it are inserted (replace the worst, rescan K entries), the 4 lanes of a row taking
 * turns. Order: larger key first, equal keys -> smaller chunk id, as the C reference.
 * key = score (+ Gumbel noise when enabled); the noiseless score is kept for the output.
 * At the end each row's list is sorted by chunk id descending; slots past min(K, visible) get
 * idx 0 and score -inf. Memory: O(RB*K) per CTA, nothing of size L x C.
 * Row blocks run last-first so the long rows (many visible chunks) start early.
 */
#ifndef LONGCTX_HSA_RETRIEVE_CUH
#define LONGCTX_HSA_RETRIEVE_CUH

#include <limits.h>

#include "hsa_mma.cuh"

namespace hsa_retrieve {

using namespace hsa_mma;
typedef __nv_bfloat16 bf16;

constexpr int RB = 128, TN = 128, BK = 32, LDS = BK + 8, STAGES = 3, NTHREADS = 256;

struct params {
    int64_t B, Lr, Hr, dr, S, K, C, block_q;
    int gumbel;
    uint64_t seed;
    float inv_sqrt_dr;
    const bf16 *qr, *lmk;
    int32_t *idx;
    float *score;
};

static size_t smem_bytes(int K) {
    return (size_t)STAGES * 2 * RB * LDS * sizeof(bf16) + (size_t)RB * K * 12 + (size_t)RB * 12;
}

__device__ __forceinline__ int64_t nvis(int64_t r, const params &p) {
    int64_t n = p.block_q == 1 ? r / p.S : r - 1;
    if (n < 0) n = 0;
    return n < p.C ? n : p.C;
}

__device__ __forceinline__ bool better(float ka, int ia, float kb, int ib) {
    return ka > kb || (ka == kb && ia < ib);
}

/* Replace the worst entry of one row's list by (key, sc, id) and find the new worst. */
__device__ __noinline__ void insert_row(float *lk, float *ls, int *li, int K, float key, float sc, int id,
                                        int *wpos, float *wk, int *wi) {
    int pos = *wpos;
    lk[pos] = key;
    ls[pos] = sc;
    li[pos] = id;
    float bk = lk[0];
    int bi = li[0], bp = 0;
    for (int j = 1; j < K; j++) {
        float kj = lk[j];
        int ij = li[j];
        if (better(bk, bi, kj, ij)) { /* entry j is worse than the current worst */
            bk = kj;
            bi = ij;
            bp = j;
        }
    }
    *wpos = bp;
    *wk = bk;
    *wi = bi;
}

__global__ void __launch_bounds__(NTHREADS) retrieve_kernel(const params p) {
    extern __shared__ __align__(16) unsigned char smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem);
    bf16 *Ls = Qs + STAGES * RB * LDS;
    const int K = (int)p.K;
    float *lk = reinterpret_cast<float *>(Ls + STAGES * TN * LDS);
    float *ls = lk + RB * K;
    int *li = reinterpret_cast<int *>(ls + RB * K);
    float *wk_s = reinterpret_cast<float *>(li + RB * K);
    int *wi_s = reinterpret_cast<int *>(wk_s + RB);
    int *wp_s = wi_s + RB;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g8 = lane >> 2, tig = lane & 3;
    const int64_t nblk = gridDim.x;
    const int64_t r0 = (nblk - 1 - blockIdx.x) * RB;
    const int64_t b = blockIdx.y / p.Hr, hr = blockIdx.y % p.Hr;
    const int64_t rlast = (r0 + RB - 1 < p.Lr - 1) ? r0 + RB - 1 : p.Lr - 1;
    const int64_t nv_max = nvis(rlast, p);
    const int ntiles = (int)((nv_max + TN - 1) / TN);
    const int nks = (int)(p.dr / BK);
    const int64_t NIT = (int64_t)ntiles * nks;

    for (int e = threadIdx.x; e < RB * K; e += NTHREADS) {
        lk[e] = -INFINITY;
        ls[e] = -INFINITY;
        li[e] = INT_MAX;
    }
    for (int e = threadIdx.x; e < RB; e += NTHREADS) {
        wk_s[e] = -INFINITY;
        wi_s[e] = INT_MAX;
        wp_s[e] = 0;
    }

    const int64_t qstride = p.Hr * p.dr;
    const bf16 *qbase = p.qr + ((b * p.Lr) * p.Hr + hr) * p.dr;
    const bf16 *lbase = p.lmk + ((b * p.C) * p.Hr + hr) * p.dr;
    auto load = [&](int64_t it, int st) {
        int tile = (int)(it / nks), ks = (int)(it % nks);
        int64_t c0 = (int64_t)tile * TN;
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

    float acc[TN / 8][4];
#pragma unroll
    for (int n = 0; n < TN / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[n][e] = 0.f;

    for (int s = 0; s < STAGES - 1; s++) {
        if (s < NIT) load(s, s);
        cp_async_commit();
    }
    __syncthreads();

    const int row_l[2] = {warp * 16 + g8, warp * 16 + g8 + 8};
    int64_t row_nv[2];
    for (int hh = 0; hh < 2; hh++) {
        int64_t gr = r0 + row_l[hh];
        row_nv[hh] = gr < p.Lr ? nvis(gr, p) : 0;
    }

    for (int64_t it = 0; it < NIT; it++) {
        const int st = (int)(it % STAGES);
        if (it + STAGES - 1 < NIT) load(it + STAGES - 1, (int)((it + STAGES - 1) % STAGES));
        cp_async_commit();
        cp_async_wait<STAGES - 1>();
        __syncthreads();
        const bf16 *Qt = Qs + st * RB * LDS, *Lt = Ls + st * TN * LDS;
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t a[4];
            lds_a(a, Qt, LDS, warp * 16, kk * 16, lane);
#pragma unroll
            for (int np = 0; np < TN / 16; np++) {
                uint32_t bb[4];
                lds_b_nk(bb, Lt, LDS, np * 16, kk * 16, lane);
                mma16816(acc[2 * np], a, bb[0], bb[1]);
                mma16816(acc[2 * np + 1], a, bb[2], bb[3]);
            }
        }
        if (it % nks == nks - 1) { /* tile complete: top-k update */
            const int64_t c0 = (it / nks) * TN;
            uint32_t mask[2] = {0u, 0u};
            float wk0[2];
            int wi0[2];
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                wk0[hh] = wk_s[row_l[hh]];
                wi0[hh] = wi_s[row_l[hh]];
            }
#pragma unroll
            for (int n = 0; n < TN / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int hh = e >> 1;
                    const int64_t c = c0 + n * 8 + tig * 2 + (e & 1);
                    float v = acc[n][e] * p.inv_sqrt_dr;
                    float key = v;
                    bool cand = c < row_nv[hh];
                    if (cand && p.gumbel)
                        key = v + gumbel(p.seed, (uint64_t)((b * p.Lr + r0 + row_l[hh]) * p.Hr + hr), (uint64_t)c);
                    cand = cand && better(key, (int)c, wk0[hh], wi0[hh]);
                    acc[n][e] = v; /* the key is recomputed for the few candidates */
                    if (cand) mask[hh] |= 1u << (n * 2 + (e & 1));
                }
            if (__any_sync(0xffffffffu, (mask[0] | mask[1]) != 0u)) {
                for (int turn = 0; turn < 4; turn++) {
                    if (tig == turn) {
#pragma unroll
                        for (int hh = 0; hh < 2; hh++) {
                            if (!mask[hh]) continue;
                            const int rl = row_l[hh];
                            float wk = wk_s[rl];
                            int wi = wi_s[rl], wp = wp_s[rl];
#pragma unroll
                            for (int n = 0; n < TN / 8; n++)
#pragma unroll
                                for (int e1 = 0; e1 < 2; e1++) {
                                    if (!(mask[hh] & (1u << (n * 2 + e1)))) continue;
                                    const int c = (int)(c0 + n * 8 + tig * 2 + e1);
                                    const float sc = acc[n][hh * 2 + e1];
                                    float key = sc;
                                    if (p.gumbel)
                                        key = sc + gumbel(p.seed, (uint64_t)((b * p.Lr + r0 + rl) * p.Hr + hr),
                                                          (uint64_t)c);
                                    if (better(key, c, wk, wi)) {
                                        insert_row(lk + rl * K, ls + rl * K, li + rl * K, K, key, sc, c, &wp,
                                                   &wk, &wi);
                                    }
                                }
                            wk_s[rl] = wk;
                            wi_s[rl] = wi;
                            wp_s[rl] = wp;
                        }
                    }
                    __syncwarp();
                }
            }
#pragma unroll
            for (int n = 0; n < TN / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc[n][e] = 0.f;
        }
        __syncthreads();
    }
    cp_async_wait<0>();
    __syncthreads();

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
