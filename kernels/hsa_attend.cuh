/* hsa_attend.cuh — chunk attention kernels (included by hsa.cu only).
 *
 * attend_tok_kernel<S, DH, TPW, BWD>: one CTA per (block of MT adjacent tokens, KV head h, batch
 * b). Its rows are the (token, query head) pairs of the block, row = j*G + g, packed 16 to an
 * mma tile, so any G >= 1 feeds the tensor cores (G = 1: 16 tokens per tile; G = 16: one token).
 * The CTA walks the UNION of its tokens' chunk lists (all sorted by chunk id descending, so a
 * warp-wide max-merge builds it) and loads each chunk's K and V once into shared memory
 * (cp.async, double-buffered); every tile whose rows selected the chunk computes with it, the
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
 * (token order inside a chunk, so sums are deterministic); their G query rows are processed R
 * rows at a time: S^T = K q^T, dP^T = V dO^T, P^T = exp(S^T scale - lse), dV += (w P^T) dO,
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

template <int S, int DH>
struct tok_smem {
    static constexpr int LD = DH + 8; /* padded row: conflict-free ldmatrix */
    static constexpr size_t kv_bytes = (size_t)2 * 2 * S * LD * sizeof(bf16);
    static size_t bytes(int MT, int K) {
        return kv_bytes + (size_t)MT * K * (sizeof(int) + sizeof(float)) + (size_t)MT * K * sizeof(int) +
               (size_t)MT * sizeof(int) + 16;
    }
};

template <int S, int DH, int TPW, bool BWD>
__global__ void attend_tok_kernel(const tok_params p) {
    typedef tok_smem<S, DH> SM;
    constexpr int LD = SM::LD;
    constexpr int NT = S / 8;   /* n8 tiles of scores */
    constexpr int KD = DH / 16; /* k16 steps over dh */
    constexpr int ND = DH / 8;  /* n8 tiles of the output */
    extern __shared__ __align__(16) unsigned char smem[];
    bf16 *Ks = reinterpret_cast<bf16 *>(smem);
    bf16 *Vs = Ks + 2 * S * LD;
    int *idx_s = reinterpret_cast<int *>(smem + SM::kv_bytes);
    float *w_s = reinterpret_cast<float *>(idx_s + p.MT * p.K);
    int *U = reinterpret_cast<int *>(w_s + p.MT * p.K);
    int *nv_s = U + p.MT * p.K;
    __shared__ int nU_s;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const int g8 = lane >> 2, tig = lane & 3;
    const int64_t b = blockIdx.z, h = blockIdx.y;
    const int64_t hr = p.Hr == 1 ? 0 : h;
    const int64_t t0 = (int64_t)blockIdx.x * p.MT;
    const int K = (int)p.K, G = (int)p.G;

    /* token lists of the block */
    for (int j = threadIdx.x; j < p.MT; j += blockDim.x) {
        int64_t t = t0 + j;
        int nv = 0;
        if (t < p.L) {
            int64_t r = t / p.block_q;
            int64_t n = num_visible(r, p.S, p.block_q, p.C);
            nv = (int)(n < p.K ? n : p.K);
        }
        nv_s[j] = nv;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < p.MT * K; e += blockDim.x) {
        int j = e / K, kk = e % K;
        int64_t t = t0 + j;
        if (kk < nv_s[j]) {
            int64_t off = ((b * p.Lr + t / p.block_q) * p.Hr + hr) * p.K + kk;
            idx_s[e] = p.idx[off];
            w_s[e] = p.w[off];
        } else {
            idx_s[e] = -1;
            w_s[e] = 0.f;
            if (!BWD && t < p.L)
                for (int gg = 0; gg < G; gg++) p.lse[((b * p.L + t) * p.HQ + h * G + gg) * p.K + kk] = -INFINITY;
        }
    }
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

    /* per-thread rows: tile ti = warp + i*nwarps, rows ti*16 + g8 (+8) */
    int rj[TPW][2], rptr[TPW][2];
    bool rok[TPW][2];
    uint32_t qa[TPW][KD][4];
    uint32_t da[BWD ? TPW : 1][BWD ? KD : 1][4];
    float acc[TPW][ND][4];
    const bf16 *src_q = BWD ? p.dout : p.q;
    (void)src_q;
#pragma unroll
    for (int i = 0; i < TPW; i++) {
        int ti = warp + i * nwarps;
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            int row = ti * 16 + g8 + hh * 8;
            int j = row / G;
            rj[i][hh] = j;
            rptr[i][hh] = 0;
            rok[i][hh] = ti < p.n_tiles && j < p.MT && t0 + j < p.L;
        }
#pragma unroll
        for (int kd = 0; kd < KD; kd++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int hh = e & 1, col = kd * 16 + (e >> 1) * 8 + tig * 2;
                int row = ti * 16 + g8 + hh * 8;
                uint32_t vq = 0, vd = 0;
                if (rok[i][hh]) {
                    int64_t off = ((b * p.L + t0 + rj[i][hh]) * p.HQ + h * G + row % G) * DH + col;
                    vq = *reinterpret_cast<const uint32_t *>(p.q + off);
                    if (BWD) vd = *reinterpret_cast<const uint32_t *>(p.dout + off);
                }
                qa[i][kd][e] = vq;
                if (BWD) da[BWD ? i : 0][BWD ? kd : 0][e] = vd;
            }
        }
#pragma unroll
        for (int nd = 0; nd < ND; nd++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][nd][e] = 0.f;
    }
    __syncthreads();
    const int nU = nU_s;

    auto load_chunk = [&](int u, int st) {
        int64_t c = U[u];
        const bf16 *kg = p.k + ((b * p.L + c * S) * p.H + h) * DH;
        const bf16 *vg = p.v + ((b * p.L + c * S) * p.H + h) * DH;
        constexpr int SEG = DH / 8; /* 16-byte segments per row */
        for (int e = threadIdx.x; e < S * SEG; e += blockDim.x) {
            int r = e / SEG, sg = e % SEG;
            cp_async16(Ks + (st * S + r) * LD + sg * 8, kg + (int64_t)r * p.H * DH + sg * 8);
            cp_async16(Vs + (st * S + r) * LD + sg * 8, vg + (int64_t)r * p.H * DH + sg * 8);
        }
    };
    if (nU > 0) load_chunk(0, 0);
    cp_async_commit();

    const float sl2 = p.scale * 1.4426950408889634f;
    for (int u = 0; u < nU; u++) {
        const int st = u & 1;
        if (u + 1 < nU) load_chunk(u + 1, st ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const int c = U[u];
        const bf16 *Kt = Ks + st * S * LD, *Vt = Vs + st * S * LD;

        bool act[TPW];
        int slot[TPW][2];
        float wr[TPW][2];
#pragma unroll
        for (int i = 0; i < TPW; i++) {
            bool any = false;
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                slot[i][hh] = -1;
                wr[i][hh] = 0.f;
                if (rok[i][hh]) {
                    int j = rj[i][hh], pt = rptr[i][hh];
                    if (pt < nv_s[j] && idx_s[j * K + pt] == c) {
                        slot[i][hh] = pt;
                        wr[i][hh] = w_s[j * K + pt];
                        rptr[i][hh] = pt + 1;
                        any = true;
                    }
                }
            }
            act[i] = __any_sync(0xffffffffu, any);
        }

        /* s = q K^T for every active tile, sharing the K fragments */
        float s[TPW][NT][4];
        float dp[BWD ? TPW : 1][BWD ? NT : 1][4];
#pragma unroll
        for (int i = 0; i < TPW; i++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    s[i][nt][e] = 0.f;
                    if (BWD) dp[BWD ? i : 0][BWD ? nt : 0][e] = 0.f;
                }
        bool any_act = false;
#pragma unroll
        for (int i = 0; i < TPW; i++) any_act |= act[i];
        if (any_act) {
#pragma unroll
            for (int kd = 0; kd < KD; kd++) {
#pragma unroll
                for (int np = 0; np < NT / 2; np++) {
                    uint32_t bk[4];
                    lds_b_nk(bk, Kt, LD, np * 16, kd * 16, lane);
                    uint32_t bv[4];
                    if (BWD) lds_b_nk(bv, Vt, LD, np * 16, kd * 16, lane);
#pragma unroll
                    for (int i = 0; i < TPW; i++)
                        if (act[i]) {
                            mma16816(s[i][2 * np], qa[i][kd], bk[0], bk[1]);
                            mma16816(s[i][2 * np + 1], qa[i][kd], bk[2], bk[3]);
                            if (BWD) {
                                mma16816(dp[BWD ? i : 0][BWD ? 2 * np : 0], da[BWD ? i : 0][BWD ? kd : 0], bv[0], bv[1]);
                                mma16816(dp[BWD ? i : 0][BWD ? 2 * np + 1 : 0], da[BWD ? i : 0][BWD ? kd : 0], bv[2], bv[3]);
                            }
                        }
                }
            }
        }
        /* softmax statistics per row; rows spread over the 4 lanes of a quad */
        float fac[TPW][2];
#pragma unroll
        for (int i = 0; i < TPW; i++) {
            if (!act[i]) continue;
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const int row = (warp + i * nwarps) * 16 + g8 + hh * 8;
                const int64_t tok = t0 + rj[i][hh];
                if (!BWD) {
                    float m = p.softmax1 ? 0.f : -INFINITY;
#pragma unroll
                    for (int nt = 0; nt < NT; nt++) {
                        s[i][nt][2 * hh] *= sl2;
                        s[i][nt][2 * hh + 1] *= sl2;
                        m = fmaxf(m, fmaxf(s[i][nt][2 * hh], s[i][nt][2 * hh + 1]));
                    }
                    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
                    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
                    float l = 0.f;
#pragma unroll
                    for (int nt = 0; nt < NT; nt++) {
                        s[i][nt][2 * hh] = exp2f(s[i][nt][2 * hh] - m);
                        s[i][nt][2 * hh + 1] = exp2f(s[i][nt][2 * hh + 1] - m);
                        l += s[i][nt][2 * hh] + s[i][nt][2 * hh + 1];
                    }
                    l += __shfl_xor_sync(0xffffffffu, l, 1);
                    l += __shfl_xor_sync(0xffffffffu, l, 2);
                    if (p.softmax1) l += exp2f(-m);
                    fac[i][hh] = slot[i][hh] >= 0 ? wr[i][hh] / l : 0.f;
                    if (slot[i][hh] >= 0 && tig == 0)
                        p.lse[((b * p.L + tok) * p.HQ + h * G + row % G) * p.K + slot[i][hh]] =
                            (m + __log2f(l)) * 0.6931471805599453f;
                } else {
                    float lse2 = 0.f;
                    if (slot[i][hh] >= 0)
                        lse2 = p.lse_in[((b * p.L + tok) * p.HQ + h * G + row % G) * p.K + slot[i][hh]] *
                               1.4426950408889634f;
                    float D = 0.f;
#pragma unroll
                    for (int nt = 0; nt < NT; nt++)
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            float pv = slot[i][hh] >= 0 ? exp2f(s[i][nt][2 * hh + e] * sl2 - lse2) : 0.f;
                            s[i][nt][2 * hh + e] = pv;
                            D += pv * dp[BWD ? i : 0][BWD ? nt : 0][2 * hh + e];
                        }
                    D += __shfl_xor_sync(0xffffffffu, D, 1);
                    D += __shfl_xor_sync(0xffffffffu, D, 2);
                    if (slot[i][hh] >= 0 && tig == 0)
                        p.D[((b * p.L + tok) * p.HQ + h * G + row % G) * p.K + slot[i][hh]] = D;
                    const float wv = wr[i][hh];
#pragma unroll
                    for (int nt = 0; nt < NT; nt++)
#pragma unroll
                        for (int e = 0; e < 2; e++)
                            s[i][nt][2 * hh + e] =
                                wv * s[i][nt][2 * hh + e] * (dp[BWD ? i : 0][BWD ? nt : 0][2 * hh + e] - D);
                    fac[i][hh] = 1.f;
                }
            }
        }
        /* second matmul: forward acc += (fac p) V ; backward dq += dZ K */
        if (any_act) {
            const bf16 *Bt = BWD ? Kt : Vt;
#pragma unroll
            for (int ks = 0; ks < S / 16; ks++) {
                uint32_t pa[TPW][4];
#pragma unroll
                for (int i = 0; i < TPW; i++) {
                    pa[i][0] = pack_bf16(s[i][2 * ks][0] * fac[i][0], s[i][2 * ks][1] * fac[i][0]);
                    pa[i][1] = pack_bf16(s[i][2 * ks][2] * fac[i][1], s[i][2 * ks][3] * fac[i][1]);
                    pa[i][2] = pack_bf16(s[i][2 * ks + 1][0] * fac[i][0], s[i][2 * ks + 1][1] * fac[i][0]);
                    pa[i][3] = pack_bf16(s[i][2 * ks + 1][2] * fac[i][1], s[i][2 * ks + 1][3] * fac[i][1]);
                }
#pragma unroll
                for (int np = 0; np < ND / 2; np++) {
                    uint32_t bb[4];
                    lds_b_kn(bb, Bt, LD, np * 16, ks * 16, lane);
#pragma unroll
                    for (int i = 0; i < TPW; i++)
                        if (act[i]) {
                            mma16816(acc[i][2 * np], pa[i], bb[0], bb[1]);
                            mma16816(acc[i][2 * np + 1], pa[i], bb[2], bb[3]);
                        }
                }
            }
        }
        __syncthreads();
    }
    cp_async_wait<0>();

    /* write o (forward) or dq (backward) */
    bf16 *dst = BWD ? p.dq : p.o;
    const float post = BWD ? p.scale : 1.f;
#pragma unroll
    for (int i = 0; i < TPW; i++) {
        int ti = warp + i * nwarps;
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            if (!rok[i][hh]) continue;
            int row = ti * 16 + g8 + hh * 8;
            bf16 *orow = dst + ((b * p.L + t0 + rj[i][hh]) * p.HQ + h * G + row % G) * DH;
#pragma unroll
            for (int nd = 0; nd < ND; nd++)
                *reinterpret_cast<__nv_bfloat162 *>(orow + nd * 8 + tig * 2) =
                    __floats2bfloat162_rn(acc[i][nd][2 * hh] * post, acc[i][nd][2 * hh + 1] * post);
        }
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
    static constexpr size_t bytes = (size_t)(2 * S * LD + 2 * R * LD) * sizeof(bf16) + (size_t)3 * R * sizeof(float);
};

template <int S, int DH, int R>
__global__ void attend_dkdv_kernel(const dkdv_params p) {
    typedef dkdv_smem<S, DH, R> SM;
    constexpr int LD = SM::LD;
    constexpr int KD = DH / 16, ND = DH / 8, NR = R / 8;
    extern __shared__ __align__(16) unsigned char smem[];
    bf16 *Kc = reinterpret_cast<bf16 *>(smem);
    bf16 *Vc = Kc + S * LD;
    bf16 *qs = Vc + S * LD;
    bf16 *ds = qs + R * LD;
    float *lse_s = reinterpret_cast<float *>(ds + R * LD);
    float *D_s = lse_s + R;
    float *w_s = D_s + R;

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
    cp_async_commit();

    float dK[ND][4], dV[ND][4];
#pragma unroll
    for (int nd = 0; nd < ND; nd++)
#pragma unroll
        for (int e = 0; e < 4; e++) dK[nd][e] = dV[nd][e] = 0.f;

    const float sl2 = p.scale * 1.4426950408889634f;
    const int64_t nrows = (p1 - p0) * G;
    for (int64_t i0 = 0; i0 < nrows; i0 += R) {
        /* gather R query rows (pair, head) */
        for (int e = threadIdx.x; e < R * SEG; e += blockDim.x) {
            int r = e / SEG, sg = e % SEG;
            int64_t i = i0 + r;
            if (i < nrows) {
                int32_t pv = p.pairs[p0 + i / G];
                int64_t t = pv / p.K;
                int64_t a = h * G + i % G;
                int64_t off = ((b * p.L + t) * p.HQ + a) * DH + sg * 8;
                cp_async16(qs + r * LD + sg * 8, p.q + off);
                cp_async16(ds + r * LD + sg * 8, p.dout + off);
            } else {
                *reinterpret_cast<uint4 *>(qs + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
                *reinterpret_cast<uint4 *>(ds + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
            }
        }
        for (int r = threadIdx.x; r < R; r += blockDim.x) {
            int64_t i = i0 + r;
            float lv = 0.f, dv = 0.f, wv = 0.f;
            if (i < nrows) {
                int32_t pv = p.pairs[p0 + i / G];
                int64_t t = pv / p.K, sl = pv % p.K;
                int64_t a = h * G + i % G;
                int64_t o = ((b * p.L + t) * p.HQ + a) * p.K + sl;
                lv = p.lse[o] * 1.4426950408889634f;
                dv = p.D[o];
                wv = p.w[((b * p.Lr + t / p.block_q) * p.Hr + hr) * p.K + sl];
            }
            lse_s[r] = lv;
            D_s[r] = dv;
            w_s[r] = wv;
        }
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();

        /* S^T [16 keys x R rows] and dP^T */
        float sT[NR][4], dT[NR][4];
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
        /* element (key, row): pw = w p ; dz = pw (dP - D) */
#pragma unroll
        for (int n = 0; n < NR; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = n * 8 + tig * 2 + (e & 1);
                float pw = w_s[r] * exp2f(sT[n][e] * sl2 - lse_s[r]);
                sT[n][e] = pw;
                dT[n][e] = pw * (dT[n][e] - D_s[r]);
            }
        /* dV += pw dO ; dK += dz q   (k-dim = rows) */
#pragma unroll
        for (int ks = 0; ks < R / 16; ks++) {
            uint32_t pa[4], za[4];
            pa[0] = pack_bf16(sT[2 * ks][0], sT[2 * ks][1]);
            pa[1] = pack_bf16(sT[2 * ks][2], sT[2 * ks][3]);
            pa[2] = pack_bf16(sT[2 * ks + 1][0], sT[2 * ks + 1][1]);
            pa[3] = pack_bf16(sT[2 * ks + 1][2], sT[2 * ks + 1][3]);
            za[0] = pack_bf16(dT[2 * ks][0], dT[2 * ks][1]);
            za[1] = pack_bf16(dT[2 * ks][2], dT[2 * ks][3]);
            za[2] = pack_bf16(dT[2 * ks + 1][0], dT[2 * ks + 1][1]);
            za[3] = pack_bf16(dT[2 * ks + 1][2], dT[2 * ks + 1][3]);
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
        __syncthreads();
    }
    cp_async_wait<0>();
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

}  // namespace hsa_attend

#endif
