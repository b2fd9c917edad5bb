/* hsa_attend.cuh — chunk attention kernels (included by hsa.cu only).
 *
 * attend_tok_kernel<S, DH, BWD>: one CTA per (block of MT adjacent tokens, KV head h, batch b),
 * one warp per 16-row mma tile. Its rows are the (token, query head) pairs of the block,
 * row = j*G + g, so any G >= 1 feeds the tensor cores (G = 1: 16 tokens per tile; G = 16: one
 * token); the block's q (and dO) rows sit in shared memory.
 * The CTA walks the UNION of its tokens' chunk lists (all sorted by chunk id descending, so a
 * warp-wide max-merge builds it) and loads each chunk's K and V once into shared memory
 * (cp.async ring of 2-4 stages, one barrier per chunk); every tile whose rows selected the chunk computes with it, the
 * others skip. Adjacent tokens mostly select the same chunks, so a chunk read from memory
 * serves several tokens. Rows that share a tile but did not select the chunk get weight 0.
 *   forward: s = q K^T, p = exp(s*scale - m) (m includes the null logit 0 of softmax1),
 *            l = sum p (+ e^-m), acc += (w/l) p V      (p scaled before bf16 rounding)
 *            lse[t, a, slot] = m + log l
 *   BWD (dq pass): p = exp(s*scale - lse), dP = dO V^T, D = rowsum(p * dP)  (= <o_k, dO>),
 *            dZ = w p (dP - D), dq += dZ K scale;  D stored per (t, a, slot) for dw and dK/dV.
 * Each thread tracks, for its two rows per tile, a pointer into that row's token list; the
 * pointer advances when the union reaches the list head, which gives the slot number.
 *
 * attend_dkdv_kernel<S, DH, R>: one CTA per (chunk c, KV head h, batch b), one warp per 16 keys.
 * The (token, slot) pairs that selected c come from a stable radix sort of all pairs by chunk
 * (token order inside a chunk, so sums are deterministic); their G query rows are gathered R
 * rows at a time (cp.async, double-buffered): S^T = K q^T, dP^T = V dO^T, P^T = exp(S^T scale - lse), dV += (w P^T) dO,
 * dK += w P^T (dP^T - D) q scale. Work is proportional to L*K*G, not L^2.
 */
#ifndef LONGCTX_HSA_ATTEND_CUH
#define LONGCTX_HSA_ATTEND_CUH

#include "hsa_mma.cuh"

namespace hsa_attend {

using namespace hsa_mma;
typedef __nv_bfloat16 bf16;

struct tok_params {
    int64_t B, L, HQ, H, G, K, Hr, Lr, block_q, S, C;
    /* query range: Lq query tokens (rows of q, o, lse, dq, D, and with block_q = 1 of idx, w) at
     * absolute positions p0 .. p0+Lq-1; k, v hold all L tokens. No offset: Lq = L, p0 = 0. */
    int64_t Lq, p0;
    int softmax1;
    float scale;
    int MT;  /* tokens per CTA */
    int n_tiles;
    const bf16 *q, *k, *v;
    const int32_t *idx;
    const float *w;
    bf16 *o;
    float *lse;
    /* backward */
    const bf16 *dout;
    const float *lse_in;
    bf16 *dq;
    float *D;
};

__device__ __forceinline__ int64_t num_visible(int64_t r, int64_t S, int64_t block_q, int64_t C) {
    int64_t n = block_q == 1 ? r / S : r - 1;
    if (n < 0) n = 0;
    return n < C ? n : C;
}

template <int S, int DH, bool BWD>
struct tok_smem {
    static constexpr int LD = DH + 8; /* padded row: conflict-free ldmatrix */
    static constexpr size_t stage_bytes = (size_t)2 * S * LD * sizeof(bf16);
    static size_t q_bytes(int rows) { return (size_t)(BWD ? 2 : 1) * rows * LD * sizeof(bf16); }
    static size_t list_bytes(int MT, int K) { return (size_t)MT * K * 12 + (size_t)MT * 4 + 16; }
    /* as many stages (2..4) as fit next to the other buffers in ~110 KB, so two CTAs share an SM */
    static int stages(int MT, int K, int rows) {
        size_t rest = q_bytes(rows) + list_bytes(MT, K);
        int ns = 4;
        while (ns > 2 && rest + ns * stage_bytes > (size_t)110 * 1024) ns--;
        return ns;
    }
    static size_t bytes(int MT, int K, int rows, int ns) { return ns * stage_bytes + q_bytes(rows) + list_bytes(MT, K); }
};

/* one warp per 16-row tile; blockDim = 32 * n_tiles */
template <int S, int DH, bool BWD>
__global__ void __launch_bounds__(512) attend_tok_kernel(const tok_params p, const int NS) {
    typedef tok_smem<S, DH, BWD> SM;
    constexpr int LD = SM::LD;
    constexpr int NT = S / 8;   /* n8 tiles of scores */
    constexpr int KD = DH / 16; /* k16 steps over dh */
    constexpr int ND = DH / 8;  /* n8 tiles of the output */
    extern __shared__ __align__(16) unsigned char smem[];
    const int rows = p.n_tiles * 16;
    bf16 *KVs = reinterpret_cast<bf16 *>(smem); /* stage st: K at st*2*S*LD, V after it */
    bf16 *Qs = KVs + (size_t)NS * 2 * S * LD;
    bf16 *Ds = Qs + (size_t)rows * LD; /* dO (backward) */
    int *idx_s = reinterpret_cast<int *>(Qs + (size_t)(BWD ? 2 : 1) * rows * LD);
    float *w_s = reinterpret_cast<float *>(idx_s + p.MT * p.K);
    int *U = reinterpret_cast<int *>(w_s + p.MT * p.K);
    int *nv_s = U + p.MT * p.K;
    __shared__ int nU_s;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g8 = lane >> 2, tig = lane & 3;
    const int64_t b = blockIdx.z, h = blockIdx.y;
    const int64_t hr = p.Hr == 1 ? 0 : h;
    const int64_t t0 = (int64_t)blockIdx.x * p.MT;
    const int K = (int)p.K, G = (int)p.G;
    constexpr int SEG = DH / 8; /* 16-byte segments per row */

    /* query (and dO) rows of the block into shared memory; zeros for rows past the tokens */
    for (int e = threadIdx.x; e < rows * SEG; e += blockDim.x) {
        int r = e / SEG, sg = e % SEG, j = r / G;
        int64_t t = t0 + j;
        if (j < p.MT && t < p.Lq) {
            int64_t off = ((b * p.Lq + t) * p.HQ + h * G + r % G) * DH + sg * 8;
            cp_async16(Qs + r * LD + sg * 8, p.q + off);
            if (BWD) cp_async16(Ds + r * LD + sg * 8, p.dout + off);
        } else {
            *reinterpret_cast<uint4 *>(Qs + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
            if (BWD) *reinterpret_cast<uint4 *>(Ds + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
        }
    }
    /* token lists of the block (cp.async, in flight together with the q rows) */
    for (int e = threadIdx.x; e < p.MT * K; e += blockDim.x) {
        int j = e / K, kk = e % K;
        int64_t t = t0 + j;
        int nv = 0;
        if (t < p.Lq) {
            int64_t n = num_visible((p.p0 + t) / p.block_q, p.S, p.block_q, p.C);
            nv = (int)(n < p.K ? n : p.K);
        }
        if (kk == 0) nv_s[j] = nv;
        if (kk < nv) {
            int64_t off = ((b * p.Lr + t / p.block_q) * p.Hr + hr) * p.K + kk;
            cp_async4(idx_s + e, p.idx + off);
            cp_async4(w_s + e, p.w + off);
        } else {
            idx_s[e] = -1;
            w_s[e] = 0.f;
            if (!BWD && t < p.Lq && p.lse)
                for (int gg = 0; gg < G; gg++) p.lse[((b * p.Lq + t) * p.HQ + h * G + gg) * p.K + kk] = -INFINITY;
        }
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (warp == 0) { /* union of the sorted-descending lists: repeated warp max */
        int ptr = 0, nv = lane < p.MT ? nv_s[lane] : 0, n = 0;
        for (;;) {
            int head = ptr < nv ? idx_s[lane * K + ptr] : -1;
            int c = __reduce_max_sync(0xffffffffu, head);
            if (c < 0) break;
            if (head == c) ptr++;
            if (lane == 0) U[n] = c;
            n++;
        }
        if (lane == 0) nU_s = n;
    }
    __syncthreads();
    const int nU = nU_s;

    /* this thread's rows: warp*16 + g8 (+8) */
    int rj[2], rptr[2], rhead[2];
    bool rok[2];
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        int row = warp * 16 + g8 + hh * 8;
        int j = row / G;
        rj[hh] = j;
        rptr[hh] = 0;
        rhead[hh] = row % G;
        rok[hh] = j < p.MT && t0 + j < p.Lq;
    }
    float acc[ND][4];
#pragma unroll
    for (int nd = 0; nd < ND; nd++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[nd][e] = 0.f;

    auto load_chunk = [&](int u) {
        const int st = u % NS;
        int64_t c = U[u];
        const bf16 *kg = p.k + ((b * p.L + c * S) * p.H + h) * DH;
        const bf16 *vg = p.v + ((b * p.L + c * S) * p.H + h) * DH;
        bf16 *Kd = KVs + (size_t)st * 2 * S * LD, *Vd = Kd + S * LD;
        for (int e = threadIdx.x; e < S * SEG; e += blockDim.x) {
            int r = e / SEG, sg = e % SEG;
            cp_async16(Kd + r * LD + sg * 8, kg + (int64_t)r * p.H * DH + sg * 8);
            cp_async16(Vd + r * LD + sg * 8, vg + (int64_t)r * p.H * DH + sg * 8);
        }
    };
    for (int u = 0; u < NS - 1; u++) {
        if (u < nU) load_chunk(u);
        cp_async_commit();
    }

    const float sl2 = p.scale * 1.4426950408889634f;
    for (int u = 0; u < nU; u++) {
        /* chunk u has landed when at most NS-2 newer groups are pending */
        if (NS == 2) cp_async_wait<0>();
        else if (NS == 3) cp_async_wait<1>();
        else cp_async_wait<2>();
        __syncthreads(); /* chunk u visible to all; stage of chunk u-1 free for reuse */
        if (u + NS - 1 < nU) load_chunk(u + NS - 1);
        cp_async_commit();
        const int c = U[u];
        const bf16 *Kt = KVs + (size_t)(u % NS) * 2 * S * LD, *Vt = Kt + S * LD;

        int slot[2];
        float wr[2];
        bool any = false;
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            slot[hh] = -1;
            wr[hh] = 0.f;
            if (rok[hh]) {
                int j = rj[hh], pt = rptr[hh];
                if (pt < nv_s[j] && idx_s[j * K + pt] == c) {
                    slot[hh] = pt;
                    wr[hh] = w_s[j * K + pt];
                    rptr[hh] = pt + 1;
                    any = true;
                }
            }
        }
        if (!__any_sync(0xffffffffu, any)) continue;

        /* s = q K^T (and dP = dO V^T) */
        float s[NT][4];
        float dp[BWD ? NT : 1][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                s[nt][e] = 0.f;
                if (BWD) dp[BWD ? nt : 0][e] = 0.f;
            }
#pragma unroll
        for (int kd = 0; kd < KD; kd++) {
            uint32_t qa[4], da[4];
            lds_a(qa, Qs, LD, warp * 16, kd * 16, lane);
            if (BWD) lds_a(da, Ds, LD, warp * 16, kd * 16, lane);
#pragma unroll
            for (int np = 0; np < NT / 2; np++) {
                uint32_t bk[4];
                lds_b_nk(bk, Kt, LD, np * 16, kd * 16, lane);
                mma16816(s[2 * np], qa, bk[0], bk[1]);
                mma16816(s[2 * np + 1], qa, bk[2], bk[3]);
                if (BWD) {
                    uint32_t bv[4];
                    lds_b_nk(bv, Vt, LD, np * 16, kd * 16, lane);
                    mma16816(dp[BWD ? 2 * np : 0], da, bv[0], bv[1]);
                    mma16816(dp[BWD ? 2 * np + 1 : 0], da, bv[2], bv[3]);
                }
            }
        }
        /* per row (spread over the 4 lanes of a quad) */
        float fac[2] = {0.f, 0.f};
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            const int64_t tok = t0 + rj[hh];
            const int64_t lo = ((b * p.Lq + tok) * p.HQ + h * G + rhead[hh]) * p.K + slot[hh];
            if (!BWD) {
                float m = p.softmax1 ? 0.f : -INFINITY;
#pragma unroll
                for (int nt = 0; nt < NT; nt++) {
                    s[nt][2 * hh] *= sl2;
                    s[nt][2 * hh + 1] *= sl2;
                    m = fmaxf(m, fmaxf(s[nt][2 * hh], s[nt][2 * hh + 1]));
                }
                m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
                m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
                float l = 0.f;
#pragma unroll
                for (int nt = 0; nt < NT; nt++) {
                    s[nt][2 * hh] = exp2f(s[nt][2 * hh] - m);
                    s[nt][2 * hh + 1] = exp2f(s[nt][2 * hh + 1] - m);
                    l += s[nt][2 * hh] + s[nt][2 * hh + 1];
                }
                l += __shfl_xor_sync(0xffffffffu, l, 1);
                l += __shfl_xor_sync(0xffffffffu, l, 2);
                if (p.softmax1) l += exp2f(-m);
                fac[hh] = slot[hh] >= 0 ? __fdividef(wr[hh], l) : 0.f;
                if (slot[hh] >= 0 && tig == 0 && p.lse) p.lse[lo] = (m + __log2f(l)) * 0.6931471805599453f;
            } else {
                const float lse2 = slot[hh] >= 0 ? p.lse_in[lo] * 1.4426950408889634f : 0.f;
                float D = 0.f;
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        float pv = slot[hh] >= 0 ? exp2f(s[nt][2 * hh + e] * sl2 - lse2) : 0.f;
                        s[nt][2 * hh + e] = pv;
                        D += pv * dp[BWD ? nt : 0][2 * hh + e];
                    }
                D += __shfl_xor_sync(0xffffffffu, D, 1);
                D += __shfl_xor_sync(0xffffffffu, D, 2);
                if (slot[hh] >= 0 && tig == 0) p.D[lo] = D;
                const float wv = wr[hh];
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int e = 0; e < 2; e++)
                        s[nt][2 * hh + e] = wv * s[nt][2 * hh + e] * (dp[BWD ? nt : 0][2 * hh + e] - D);
                fac[hh] = 1.f;
            }
        }
        /* forward: acc += (fac p) V ;  backward: dq += dZ K */
        const bf16 *Bt = BWD ? Kt : Vt;
#pragma unroll
        for (int ks = 0; ks < S / 16; ks++) {
            uint32_t pa[4];
            pa[0] = pack_bf16(s[2 * ks][0] * fac[0], s[2 * ks][1] * fac[0]);
            pa[1] = pack_bf16(s[2 * ks][2] * fac[1], s[2 * ks][3] * fac[1]);
            pa[2] = pack_bf16(s[2 * ks + 1][0] * fac[0], s[2 * ks + 1][1] * fac[0]);
            pa[3] = pack_bf16(s[2 * ks + 1][2] * fac[1], s[2 * ks + 1][3] * fac[1]);
#pragma unroll
            for (int np = 0; np < ND / 2; np++) {
                uint32_t bb[4];
                lds_b_kn(bb, Bt, LD, np * 16, ks * 16, lane);
                mma16816(acc[2 * np], pa, bb[0], bb[1]);
                mma16816(acc[2 * np + 1], pa, bb[2], bb[3]);
            }
        }
    }
    cp_async_wait<0>();

    /* write o (forward) or dq (backward) */
    bf16 *dst = BWD ? p.dq : p.o;
    const float post = BWD ? p.scale : 1.f;
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        if (!rok[hh]) continue;
        bf16 *orow = dst + ((b * p.Lq + t0 + rj[hh]) * p.HQ + h * G + rhead[hh]) * DH;
#pragma unroll
        for (int nd = 0; nd < ND; nd++)
            *reinterpret_cast<__nv_bfloat162 *>(orow + nd * 8 + tig * 2) =
                __floats2bfloat162_rn(acc[nd][2 * hh] * post, acc[nd][2 * hh + 1] * post);
    }
}

/* ---- backward, dK/dV per chunk ---- */

struct dkdv_params {
    int64_t B, L, HQ, H, G, K, Hr, Lr, block_q, S, C;
    float scale;
    const bf16 *q, *k, *v, *dout;
    const float *w, *lse, *D;
    const int32_t *off;  /* [B*Hr*C + 1] */
    const int32_t *pairs; /* t*K + slot, sorted by (b, hr, chunk), token order inside */
    bf16 *dk, *dv;
};

template <int S, int DH, int R>
struct dkdv_smem {
    static constexpr int LD = DH + 8;
    /* K_c, V_c, then two buffers of R gathered rows: q, dO, lse, D, w */
    static constexpr size_t buf_bytes = (size_t)2 * R * LD * sizeof(bf16) + (size_t)3 * R * sizeof(float);
    static constexpr size_t bytes = (size_t)2 * S * LD * sizeof(bf16) + 2 * buf_bytes;
};

/* Pieces of the per-chunk dK/dV passes (attend_dkdv_kernel here, attend_dkdv2_kernel of
 * hsa_attend_bwd.cuh), which differ only in how they gather the rows and their lse / D. A warp owns
 * 16 keys (rows warp*16 .. +15 of K_c, V_c); qs, ds hold R gathered q and dO rows (row stride LD).
 * S^T [16 keys x R rows] = K_c q^T and dP^T = V_c dO^T, in mma.sync accumulator layout. */
template <int KD, int NR, int LD>
__device__ __forceinline__ void dkdv_scores(float (&sT)[NR][4], float (&dT)[NR][4], const bf16 *Kc, const bf16 *Vc,
                                            const bf16 *qs, const bf16 *ds, int warp, int lane) {
#pragma unroll
    for (int n = 0; n < NR; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) sT[n][e] = dT[n][e] = 0.f;
#pragma unroll
    for (int kd = 0; kd < KD; kd++) {
        uint32_t ka[4], va[4];
        lds_a(ka, Kc, LD, warp * 16, kd * 16, lane);
        lds_a(va, Vc, LD, warp * 16, kd * 16, lane);
#pragma unroll
        for (int np = 0; np < NR / 2; np++) {
            uint32_t bq[4], bd[4];
            lds_b_nk(bq, qs, LD, np * 16, kd * 16, lane);
            lds_b_nk(bd, ds, LD, np * 16, kd * 16, lane);
            mma16816(sT[2 * np], ka, bq[0], bq[1]);
            mma16816(sT[2 * np + 1], ka, bq[2], bq[3]);
            mma16816(dT[2 * np], va, bd[0], bd[1]);
            mma16816(dT[2 * np + 1], va, bd[2], bd[3]);
        }
    }
}
/* dV += pw dO ; dK += dz q  (k-dim = the R rows), pw in sT and dz in dT (accumulator layout) */
template <int R, int ND, int NR, int LD>
__device__ __forceinline__ void dkdv_accumulate(float (&dK)[ND][4], float (&dV)[ND][4], const float (&sT)[NR][4],
                                                const float (&dT)[NR][4], const bf16 *qs, const bf16 *ds, int lane) {
#pragma unroll
    for (int ks = 0; ks < R / 16; ks++) {
        uint32_t pa[4], za[4];
        acc_to_a(pa, sT[2 * ks], sT[2 * ks + 1]);
        acc_to_a(za, dT[2 * ks], dT[2 * ks + 1]);
#pragma unroll
        for (int np = 0; np < ND / 2; np++) {
            uint32_t bd[4], bq[4];
            lds_b_kn(bd, ds, LD, np * 16, ks * 16, lane);
            lds_b_kn(bq, qs, LD, np * 16, ks * 16, lane);
            mma16816(dV[2 * np], pa, bd[0], bd[1]);
            mma16816(dV[2 * np + 1], pa, bd[2], bd[3]);
            mma16816(dK[2 * np], za, bq[0], bq[1]);
            mma16816(dK[2 * np + 1], za, bq[2], bq[3]);
        }
    }
}
/* dK (times the softmax scale) and dV of the warp's 16 keys of chunk c to global memory */
template <int S, int DH, int ND>
__device__ __forceinline__ void dkdv_store(const dkdv_params &p, const float (&dK)[ND][4], const float (&dV)[ND][4],
                                           int64_t c, int64_t h, int64_t b, int warp, int g8, int tig) {
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        int64_t key = c * S + warp * 16 + g8 + hh * 8;
        bf16 *dkr = p.dk + ((b * p.L + key) * p.H + h) * DH;
        bf16 *dvr = p.dv + ((b * p.L + key) * p.H + h) * DH;
#pragma unroll
        for (int nd = 0; nd < ND; nd++) {
            *reinterpret_cast<__nv_bfloat162 *>(dkr + nd * 8 + tig * 2) =
                __floats2bfloat162_rn(dK[nd][2 * hh] * p.scale, dK[nd][2 * hh + 1] * p.scale);
            *reinterpret_cast<__nv_bfloat162 *>(dvr + nd * 8 + tig * 2) =
                __floats2bfloat162_rn(dV[nd][2 * hh], dV[nd][2 * hh + 1]);
        }
    }
}

template <int S, int DH, int R>
__global__ void __launch_bounds__(S * 2) attend_dkdv_kernel(const dkdv_params p) {
    typedef dkdv_smem<S, DH, R> SM;
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
    /* gather R query rows (pair, head) starting at row i0 into buffer st, all by cp.async */
    auto gather = [&](int64_t i0, int st) {
        bf16 *qs = reinterpret_cast<bf16 *>(bufs + st * SM::buf_bytes);
        bf16 *ds = qs + R * LD;
        float *lse_s = reinterpret_cast<float *>(ds + R * LD);
        float *D_s = lse_s + R, *w_s = D_s + R;
        for (int e = threadIdx.x; e < R * SEG; e += blockDim.x) {
            int r = e / SEG, sg = e % SEG;
            int64_t i = i0 + r;
            if (i < nrows) {
                int32_t pv = p.pairs[p0 + i / G];
                int64_t t = pv / p.K;
                int64_t off = ((b * p.L + t) * p.HQ + h * G + i % G) * DH + sg * 8;
                cp_async16(qs + r * LD + sg * 8, p.q + off);
                cp_async16(ds + r * LD + sg * 8, p.dout + off);
            } else {
                *reinterpret_cast<uint4 *>(qs + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
                *reinterpret_cast<uint4 *>(ds + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
            }
        }
        for (int r = threadIdx.x; r < R; r += blockDim.x) {
            int64_t i = i0 + r;
            if (i < nrows) {
                int32_t pv = p.pairs[p0 + i / G];
                int64_t t = pv / p.K, sl = pv % p.K;
                int64_t o = ((b * p.L + t) * p.HQ + h * G + i % G) * p.K + sl;
                cp_async4(lse_s + r, p.lse + o);
                cp_async4(D_s + r, p.D + o);
                cp_async4(w_s + r, p.w + ((b * p.Lr + t / p.block_q) * p.Hr + hr) * p.K + sl);
            } else {
                lse_s[r] = 0.f;
                D_s[r] = 0.f;
                w_s[r] = 0.f; /* padding rows contribute nothing */
            }
        }
    };
    if (nrows > 0) gather(0, 0);
    cp_async_commit();

    float dK[ND][4], dV[ND][4];
#pragma unroll
    for (int nd = 0; nd < ND; nd++)
#pragma unroll
        for (int e = 0; e < 4; e++) dK[nd][e] = dV[nd][e] = 0.f;

    const float sl2 = p.scale * 1.4426950408889634f;
    int st = 0;
    for (int64_t i0 = 0; i0 < nrows; i0 += R, st ^= 1) {
        if (i0 + R < nrows) gather(i0 + R, st ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const bf16 *qs = reinterpret_cast<const bf16 *>(bufs + st * SM::buf_bytes);
        const bf16 *ds = qs + R * LD;
        const float *lse_s = reinterpret_cast<const float *>(ds + R * LD);
        const float *D_s = lse_s + R, *w_s = D_s + R;

        /* S^T [16 keys x R rows] and dP^T */
        float sT[NR][4], dT[NR][4];
        dkdv_scores<KD, NR, LD>(sT, dT, Kc, Vc, qs, ds, warp, lane);
        /* element (key, row): pw = w p ; dz = pw (dP - D) */
#pragma unroll
        for (int n = 0; n < NR; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = n * 8 + tig * 2 + (e & 1);
                float pw = w_s[r] * exp2f(sT[n][e] * sl2 - lse_s[r] * 1.4426950408889634f);
                sT[n][e] = pw;
                dT[n][e] = pw * (dT[n][e] - D_s[r]);
            }
        dkdv_accumulate<R, ND, NR, LD>(dK, dV, sT, dT, qs, ds, lane);
        __syncthreads(); /* buffer st is refilled two batches later */
    }
    cp_async_wait<0>();
    dkdv_store<S, DH, ND>(p, dK, dV, c, h, b, warp, g8, tig);
}

}  // namespace hsa_attend

#endif
