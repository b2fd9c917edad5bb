/* mamba_ssd_bwd.cuh — tensor-core (mma.sync m16n8k16 bf16, fp32 accumulate) backward of the
 * Mamba-2 scan in the chunked SSD form, for P = 64, N = 128 (the fp32 recurrences of
 * mamba_bwd.cuh stay for P = 32). Passes (mamba.cu):
 *   ssd_fwd<LOCAL>   local chunk states and decays (the forward's kernel)
 *   state_pass       incoming state of every chunk
 *   ssd_dh_local     per chunk, in reverse, from zero: dh_before = E dh_after + G^T diag(e) C per
 *                    sub-chunk (the gradient the chunk's outputs send into the state before it)
 *   state_pass<rev>  outgoing dh of every chunk (and dh0)
 *   ssd_bwd          per chunk: sweep A runs the states through the chunk's sub-chunks and keeps
 *                    each sub-chunk's incoming state h (bf16) in a per-block scratch (L2-resident:
 *                    the grid is persistent, the scratch is indexed by block); then, in reverse,
 *                    every sub-chunk's gradients from h and dh (the gradient at its end):
 * For a sub-chunk (Q = 64 tokens i, j; c = inclusive cumulative log decay from its start,
 * L_ij = exp(c_i - c_j) [j <= i], e_i = exp(c_i), E = exp(c_end), w_j = exp(c_end - c_j) dt'_j,
 * g = dy * silu(z), S = C B^T, GX = G X^T, M' = S o L diag(dt'), W1 = GX o L diag(dt')):
 *   ys  = diag(e) C h^T + M' X             dz  = dy (ys + D x) sig(z) (1 + z (1 - sig(z)))
 *   dX  = M'^T G + diag(w) B dh^T + D G    dC  = W1 B + diag(e) G h
 *   dB  = W1^T C + diag(w) X dh            dh <- E dh + G^T diag(e) C   (dh before the sub-chunk)
 *   d/dc_i (the decays) = rowsum_i(M' o GX) - dt'_i colsum_i(S o L o GX) + e_i g_i.(C h^T)_i
 *                         - w_i x_i.(B dh^T)_i,  plus at c_end: sum_j w_j x_j.(B dh^T)_j + E <dh, h>
 *   ddt'_k = colsum_k(S o L o GX) + exp(c_end - c_k) x_k.(B dh^T)_k + A sum_{i >= k} d/dc_i
 *   ddt = ddt' sig(dt + dt_bias), dA = sum dt' sum_{i>=k} d/dc_i, dD = sum g.x
 * Warp w owns rows 16*(w%4).. of every Q-row result and a column half (w/4) of it; the state
 * tiles as in mamba_ssd.cuh. Operands are bf16 (S, GX, M', W1, h, dh rounded), so the gradients
 * carry bf16-level error (~1e-3..1e-2 relative). dB, dC: fp32 atomics over the heads of a group.
 * Included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_SSD_BWD_CUH
#define LONGCTX_MAMBA_SSD_BWD_CUH

#include "mamba_ssd.cuh"

namespace mamba_ssd_bwd {
using namespace mamba_ssd;
using mamba_scan::args;

constexpr int LDQ = Q + 8;
constexpr int T_X = Q * LDP * 2, T_N = Q * LDN * 2, T_Q = Q * LDQ * 2;
/* carve-up: Xs, Gs (Q x LDP), Bs, Cs, Hs, DHs (64 x LDN), Ms, Ws (Q x LDQ), vectors */
constexpr int O_X = 0, O_G = O_X + T_X, O_B = O_G + T_X, O_C = O_B + T_N, O_H = O_C + T_N, O_DH = O_H + T_N;
constexpr int O_M = O_DH + T_N, O_W = O_M + T_Q, O_V = O_W + T_Q;
constexpr int NVEC = 10; /* dtp cum wv ec wd sg zr zc u q */
constexpr int SMEM_BWD = O_V + NVEC * Q * 4 + 128;
constexpr int NSUB_MAX = mamba_scan::TMAX_BWD / Q;
constexpr size_t SCRATCH_PER_BLOCK = (size_t)NSUB_MAX * P * N * 2;

/* A operand (16 x 16) from a row-major tile T[m][k] */
__device__ __forceinline__ void frag_a(uint32_t (&r)[4], const __nv_bfloat16 *T, int ld, int m0, int k0) {
    const int lane = threadIdx.x & 31;
    ldsm_x4(r, T + (m0 + (lane & 15)) * ld + k0 + (lane >> 4) * 8);
}
/* A operand (16 x 16) with A[m][k] = T[k][m] */
__device__ __forceinline__ void frag_a_t(uint32_t (&r)[4], const __nv_bfloat16 *T, int ld, int m0, int k0) {
    const int lane = threadIdx.x & 31, m = lane >> 3;
    ldsm_x4_t(r, T + (k0 + (lane & 7) + (m >> 1) * 8) * ld + m0 + (m & 1) * 8);
}
/* B operands of two n8 tiles (n0, n0 + 8), k0..k0+15, from a tile stored T[n][k]:
 * r[0], r[1] for n0, r[2], r[3] for n0 + 8 */
__device__ __forceinline__ void frag_b_nk(uint32_t (&r)[4], const __nv_bfloat16 *T, int ld, int n0, int k0) {
    const int lane = threadIdx.x & 31;
    ldsm_x4(r, T + (n0 + (lane & 7) + ((lane >> 4) << 3)) * ld + k0 + ((lane >> 3) & 1) * 8);
}
/* the same from a tile stored T[k][n] */
__device__ __forceinline__ void frag_b_kn(uint32_t (&r)[4], const __nv_bfloat16 *T, int ld, int k0, int n0) {
    const int lane = threadIdx.x & 31;
    ldsm_x4_t(r, T + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + n0 + (lane >> 4) * 8);
}
__device__ __forceinline__ float bf(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ float2 bf2(const __nv_bfloat16 *p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(p));
}

/* acc (rows 16 rb.., columns 32 cb.. of a Q-column result; zeroed by the caller) += A Bt^T over
 * K: A [rows][K] and Bt [cols][K] row-major with row stride LD (S = C B^T, GX = G X^T,
 * Yc = C h^T, B dh^T) */
template <int K, int LD>
__device__ __forceinline__ void mma_nk(float (&acc)[4][4], const __nv_bfloat16 *A, const __nv_bfloat16 *Bt, int rb, int cb) {
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++) {
        uint32_t fa[4], fb[4];
        frag_a(fa, A, LD, rb * 16, kk * 16);
#pragma unroll
        for (int np = 0; np < 2; np++) {
            frag_b_nk(fb, Bt, LD, cb * 32 + np * 16, kk * 16);
            mma16816(acc[2 * np], fa, fb[0], fb[1]);
            mma16816(acc[2 * np + 1], fa, fb[2], fb[3]);
        }
    }
}

/* Gradient of the state-side columns of a sub-chunk, rows rb*16.. (r_lo, r_hi of this lane),
 * state columns cb*64 .. cb*64+63, added into dst [rows][G][N] at group g (fp32 float2 atomics:
 * the heads of a group share dB and dC):
 *   WT = false: dC = diag(e) G h   + W B     (W causal: key blocks kk <= rb)
 *   WT = true:  dB = diag(w) X dh  + W^T C   (W^T: kk >= rb)
 * A1 [Q][P] is G or X, B1 [P][N] h or dh, B2 [Q][N] B or C, (s_lo, s_hi) the rows' e or w. */
template <bool WT>
__device__ __forceinline__ void state_col_grad(float *dst, int64_t G, int64_t g, int64_t row0, int nvalid,
                                               const __nv_bfloat16 *A1, const __nv_bfloat16 *B1, float s_lo,
                                               float s_hi, const __nv_bfloat16 *Ws, const __nv_bfloat16 *B2, int rb,
                                               int cb, int r_lo, int r_hi, int t) {
    float acc[8][4];
#pragma unroll
    for (int f = 0; f < 8; f++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[f][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < P / 16; kk++) {
        uint32_t xa[4], hb[4];
        frag_a(xa, A1, LDP, rb * 16, kk * 16);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            frag_b_kn(hb, B1, LDN, kk * 16, cb * 64 + q * 16);
            mma16816(acc[2 * q], xa, hb[0], hb[1]);
            mma16816(acc[2 * q + 1], xa, hb[2], hb[3]);
        }
    }
#pragma unroll
    for (int f = 0; f < 8; f++) acc[f][0] *= s_lo, acc[f][1] *= s_lo, acc[f][2] *= s_hi, acc[f][3] *= s_hi;
#pragma unroll
    for (int kk = 0; kk < Q / 16; kk++) {
        if (WT ? kk < rb : kk > rb) continue;
        uint32_t wa[4], bb[4];
        if (WT) frag_a_t(wa, Ws, LDQ, rb * 16, kk * 16);
        else frag_a(wa, Ws, LDQ, rb * 16, kk * 16);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            frag_b_kn(bb, B2, LDN, kk * 16, cb * 64 + q * 16);
            mma16816(acc[2 * q], wa, bb[0], bb[1]);
            mma16816(acc[2 * q + 1], wa, bb[2], bb[3]);
        }
    }
#pragma unroll
    for (int f = 0; f < 8; f++) {
        const int n = cb * 64 + f * 8 + 2 * t;
        if (r_lo < nvalid) atomicAdd(reinterpret_cast<float2 *>(dst + (row0 + r_lo) * G * N + g * N + n), make_float2(acc[f][0], acc[f][1]));
        if (r_hi < nvalid) atomicAdd(reinterpret_cast<float2 *>(dst + (row0 + r_hi) * G * N + g * N + n), make_float2(acc[f][2], acc[f][3]));
    }
}

/* One warp (lane l): the sub-chunk's vectors from its raw dt pair: dt', c, w, e,
 * wd = exp(c_end - c), sg = sig(dt + bias) (zero past nvalid). */
__device__ __forceinline__ void prefix_vec(float *vec, float2 raw, float Ah, float bias, int nvalid, int l) {
    const float r0 = raw.x + bias, r1 = raw.y + bias;
    const mamba_scan::decay_pair p = mamba_scan::decay_scan(r0, r1, Ah, nvalid, l);
    const float d0 = p.d0, d1 = p.d1, c0 = p.c0, c1 = p.c1, cend = p.cend;
    float *dtp = vec, *cum = vec + Q, *wv = vec + 2 * Q, *ec = vec + 3 * Q, *wd = vec + 4 * Q, *sg = vec + 5 * Q;
    dtp[2 * l] = d0, dtp[2 * l + 1] = d1;
    cum[2 * l] = c0, cum[2 * l + 1] = c1;
    const float e0 = __expf(cend - c0), e1 = __expf(cend - c1);
    wd[2 * l] = e0, wd[2 * l + 1] = e1;
    wv[2 * l] = e0 * d0, wv[2 * l + 1] = e1 * d1;
    ec[2 * l] = __expf(c0), ec[2 * l + 1] = __expf(c1);
    sg[2 * l] = 2 * l < nvalid ? mamba_scan::sigm(r0) : 0.0f;
    sg[2 * l + 1] = 2 * l + 1 < nvalid ? mamba_scan::sigm(r1) : 0.0f;
}

/* Warp 0 (lane = threadIdx.x): prefix_vec with head h's A and dt_bias. */
__device__ __forceinline__ void prefix_raw(float *vec, const args &a, float2 raw, int h, int nvalid) {
    prefix_vec(vec, raw, a.A[h], a.dt_bias ? a.dt_bias[h] : 0.0f, nvalid, threadIdx.x);
}

__device__ __forceinline__ void prefix(float *vec, const args &a, int64_t row0, int h, int nvalid) {
    prefix_raw(vec, a, dt_fetch(a, row0, h, nvalid), h, nvalid);
}

/* Pull the rows [row0, row0 + nvalid) of the next sub-chunk into L2 while this one computes (the
 * backward's tile loads are synchronous: no room in shared memory for a second buffer):
 * XB = x and B rows, CG = C, dy and z rows. Thread groups of 64 take one tensor each. */
template <bool XB, bool CG>
__device__ __forceinline__ void prefetch_rows(const args &a, int64_t row0, int64_t h, int64_t g, int nvalid) {
    const int j = threadIdx.x & 63, role = threadIdx.x >> 6;
    if (j >= nvalid) return;
    const int64_t r = row0 + j;
    const void *p0 = nullptr, *p1 = nullptr, *p2 = nullptr, *p3 = nullptr;
    if (role == 0 && XB) p0 = a.x + r * a.H * P + h * P;
    if (role == 1 && CG) p0 = a.dy + r * a.H * P + h * P;
    if (role == 2 && CG && a.z) p0 = a.z + r * a.H * P + h * P;
    if (role == 3) {
        if (XB) p0 = a.Bm + r * a.G * N + g * N, p1 = a.Bm + r * a.G * N + g * N + 64;
        if (CG) p2 = a.Cm + r * a.G * N + g * N, p3 = a.Cm + r * a.G * N + g * N + 64;
    }
    if (p0) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p0));
    if (p1) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p1));
    if (p2) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p2));
    if (p3) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p3));
}

/* G = dy * silu(z) (or dy) of rows [row0, row0 + nvalid) into Gs; zero past nvalid */
__device__ __forceinline__ void load_g(__nv_bfloat16 *Gs, const args &a, int64_t row0, int64_t h, int nvalid) {
    constexpr int V = P / 8;
    for (int e = threadIdx.x; e < Q * V; e += THREADS) {
        const int j = e / V, v = e % V;
        uint4 u = make_uint4(0, 0, 0, 0);
        if (j < nvalid) {
            const int64_t off = (row0 + j) * a.H * P + h * P + v * 8;
            u = *reinterpret_cast<const uint4 *>(a.dy + off);
            if (a.z) {
                const uint4 zz = *reinterpret_cast<const uint4 *>(a.z + off);
                const uint32_t *zp = reinterpret_cast<const uint32_t *>(&zz);
                uint32_t *up = reinterpret_cast<uint32_t *>(&u);
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const float2 zf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&zp[k]));
                    up[k] = scale2(up[k], zf.x * mamba_scan::sigm(zf.x), zf.y * mamba_scan::sigm(zf.y));
                }
            }
        }
        *reinterpret_cast<uint4 *>(Gs + j * LDP + v * 8) = u;
    }
}

/* Reverse pass over a chunk from dh = 0: the local dh before the chunk into a.dst. The C, dy and
 * z tiles of the next (earlier) sub-chunk fly (cp.async, two buffers) while this one computes;
 * each thread turns the dy, z pieces it copied itself into G, so no barrier sits in between. */
constexpr int DHL_BUF = T_N + 2 * T_X; /* C, dy, z */
constexpr int SMEM_DHL2 = 2 * DHL_BUF + T_X + 6 * Q * 4;
__global__ void __launch_bounds__(THREADS, 2) ssd_dh_local(args a) {
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 *Gs = (__nv_bfloat16 *)(smem + 2 * DHL_BUF);
    float *vec = (float *)(smem + 2 * DHL_BUF + T_X), *cum = vec + Q, *ec = vec + 3 * Q;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g8 = lane >> 2, t = lane & 3;
    const int tp = warp & 3, nh = warp >> 2;
    const int64_t h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (a.H / a.G);
    const int64_t t_begin = c * a.T, t_end = min(t_begin + a.T, a.L);
    const int ns = (int)((t_end - t_begin + Q - 1) / Q);
    auto nv_of = [&](int s) { return (int)min((int64_t)Q, t_end - t_begin - (int64_t)s * Q); };
    auto issue = [&](int s, int buf) {
        const int64_t row0 = b * a.L + t_begin + (int64_t)s * Q;
        unsigned char *base = smem + buf * DHL_BUF;
        load_tile<N, LDN>((__nv_bfloat16 *)base, a.Cm + g * N, row0, a.G * N, nv_of(s));
        load_tile<P, LDP>((__nv_bfloat16 *)(base + T_N), a.dy + h * P, row0, a.H * P, nv_of(s));
        if (a.z) load_tile<P, LDP>((__nv_bfloat16 *)(base + T_N + T_X), a.z + h * P, row0, a.H * P, nv_of(s));
        cp_commit();
    };
    float dacc[8][4];
#pragma unroll
    for (int f = 0; f < 8; f++)
#pragma unroll
        for (int e = 0; e < 4; e++) dacc[f][e] = 0.0f;
    issue(ns - 1, (ns - 1) & 1);
    float2 raw = make_float2(0.f, 0.f);
    if (warp == 0) raw = dt_fetch(a, b * a.L + t_begin + (int64_t)(ns - 1) * Q, (int)h, nv_of(ns - 1));
    for (int s = ns - 1; s >= 0; s--) {
        const int buf = s & 1, nvalid = nv_of(s);
        unsigned char *base = smem + buf * DHL_BUF;
        if (s > 0) issue(s - 1, buf ^ 1); /* that buffer was freed by the last barrier [B] */
        if (warp == 0) {
            prefix_raw(vec, a, raw, (int)h, nvalid);
            if (s > 0) raw = dt_fetch(a, b * a.L + t_begin + (int64_t)(s - 1) * Q, (int)h, nv_of(s - 1));
        }
        if (s > 0) cp_wait<1>();
        else cp_wait<0>();
        /* G from the pieces this thread copied (load_tile's element mapping) */
        {
            constexpr int V = P / 8;
            const __nv_bfloat16 *dys = (const __nv_bfloat16 *)(base + T_N), *zs = (const __nv_bfloat16 *)(base + T_N + T_X);
#pragma unroll
            for (int it = 0; it < (Q * V + THREADS - 1) / THREADS; it++) {
                const int e = threadIdx.x + it * THREADS;
                if (e >= Q * V) break;
                const int j = e / V, v = e % V;
                uint4 u = *reinterpret_cast<const uint4 *>(dys + j * LDP + v * 8);
                if (a.z) {
                    const uint4 zz = *reinterpret_cast<const uint4 *>(zs + j * LDP + v * 8);
                    const uint32_t *zp = reinterpret_cast<const uint32_t *>(&zz);
                    uint32_t *up = reinterpret_cast<uint32_t *>(&u);
#pragma unroll
                    for (int k = 0; k < 4; k++) {
                        const float2 zf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&zp[k]));
                        up[k] = scale2(up[k], zf.x * mamba_scan::sigm(zf.x), zf.y * mamba_scan::sigm(zf.y));
                    }
                }
                *reinterpret_cast<uint4 *>(Gs + j * LDP + v * 8) = u;
            }
        }
        __syncthreads(); /* [A] C, G and the vectors ready */
        state_update(dacc, Gs, (const __nv_bfloat16 *)base, ec, __expf(cum[Q - 1]), tp, nh);
        __syncthreads(); /* [B] */
    }
    float *o = a.dst + ((b * a.nch + c) * a.H + h) * (int64_t)(P * N);
#pragma unroll
    for (int f = 0; f < 8; f++) {
        float *s0 = o + (tp * 16 + g8) * N + nh * 64 + f * 8 + 2 * t;
        *reinterpret_cast<float2 *>(s0) = make_float2(dacc[f][0], dacc[f][1]);
        *reinterpret_cast<float2 *>(s0 + 8 * N) = make_float2(dacc[f][2], dacc[f][3]);
    }
}

/* state tile (fp32 fragments) -> bf16 [P][ld] */
__device__ __forceinline__ void put_state(__nv_bfloat16 *dst, int ld, const float (&acc)[8][4], int tp, int nh) {
    const int lane = threadIdx.x & 31, g8 = lane >> 2, t = lane & 3;
#pragma unroll
    for (int f = 0; f < 8; f++) {
        __nv_bfloat16 *o = dst + (tp * 16 + g8) * ld + nh * 64 + f * 8 + 2 * t;
        *reinterpret_cast<uint32_t *>(o) = pack_bf16(acc[f][0], acc[f][1]);
        *reinterpret_cast<uint32_t *>(o + 8 * ld) = pack_bf16(acc[f][2], acc[f][3]);
    }
}
__device__ __forceinline__ void get_state(float (&acc)[8][4], const float *src, int tp, int nh) {
    const int lane = threadIdx.x & 31, g8 = lane >> 2, t = lane & 3;
#pragma unroll
    for (int f = 0; f < 8; f++) {
        const float *s0 = src + (tp * 16 + g8) * N + nh * 64 + f * 8 + 2 * t;
        const float2 lo = *reinterpret_cast<const float2 *>(s0), hi = *reinterpret_cast<const float2 *>(s0 + 8 * N);
        acc[f][0] = lo.x, acc[f][1] = lo.y, acc[f][2] = hi.x, acc[f][3] = hi.y;
    }
}
/* sum over the 4 lanes sharing a row (t) */
/* An item's per-head parameter gradients into dD, dA, dt_bias (each optional): dD summed over
 * every warp's lanes, dA and dt_bias held by warp 0 (the per-token epilogue's warp). I: the
 * caller's head index type. */
template <typename I>
__device__ __forceinline__ void add_head_sums(const mamba_scan::args &a, I h, float dD_acc, float dA_acc, float db_acc,
                                              int warp, int lane) {
    dD_acc = mamba_scan::warp_sum(dD_acc);
    if (lane == 0 && a.dD) atomicAdd(a.dD + h, dD_acc);
    if (warp == 0) {
        dA_acc = mamba_scan::warp_sum(dA_acc), db_acc = mamba_scan::warp_sum(db_acc);
        if (lane == 0 && a.dA) atomicAdd(a.dA + h, dA_acc);
        if (lane == 0 && a.ddt_bias) atomicAdd(a.ddt_bias + h, db_acc);
    }
}

__device__ __forceinline__ float sum_t(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
/* sum over the 8 lanes sharing a column (g8) */
__device__ __forceinline__ float sum_g(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 4);
    v += __shfl_xor_sync(0xffffffffu, v, 8);
    return v + __shfl_xor_sync(0xffffffffu, v, 16);
}

__global__ void __launch_bounds__(THREADS, 2) ssd_bwd(args a, __nv_bfloat16 *scratch_all, int64_t nwork) {
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 *Xs = (__nv_bfloat16 *)(smem + O_X), *Gs = (__nv_bfloat16 *)(smem + O_G);
    __nv_bfloat16 *Bs = (__nv_bfloat16 *)(smem + O_B), *Cs = (__nv_bfloat16 *)(smem + O_C);
    __nv_bfloat16 *Hs = (__nv_bfloat16 *)(smem + O_H), *DHs = (__nv_bfloat16 *)(smem + O_DH);
    __nv_bfloat16 *Ms = (__nv_bfloat16 *)(smem + O_M), *Ws = (__nv_bfloat16 *)(smem + O_W);
    float *vec = (float *)(smem + O_V);
    float *dtp = vec, *cum = vec + Q, *wv = vec + 2 * Q, *ec = vec + 3 * Q, *wd = vec + 4 * Q, *sg = vec + 5 * Q;
    float *zr = vec + 6 * Q, *zc = vec + 7 * Q, *uu = vec + 8 * Q, *qq = vec + 9 * Q, *dcE = vec + 10 * Q;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g8 = lane >> 2, t = lane & 3;
    const int rb = warp & 3, cb = warp >> 2; /* rows 16*rb.., column half cb (also the state tile) */
    const int r_lo = rb * 16 + g8, r_hi = r_lo + 8;
    __nv_bfloat16 *scratch = scratch_all + (size_t)blockIdx.x * (NSUB_MAX * P * N);
    for (int e = tid; e < 4 * Q + 1; e += THREADS) zr[e] = 0.0f; /* zr, zc, uu, qq, dcE */
    for (int64_t item = blockIdx.x; item < nwork; item += gridDim.x) {
        const int64_t h = item % a.H, c = (item / a.H) % a.nch, b = item / (a.H * a.nch), g = h / (a.H / a.G);
        const int64_t t_begin = c * a.T, t_end = min(t_begin + a.T, a.L);
        const int ns = (int)((t_end - t_begin + Q - 1) / Q);
        const int64_t sidx = ((b * a.nch + c) * a.H + h) * (int64_t)(P * N);
        const float Dh = a.D ? a.D[h] : 0.0f, Ah = a.A[h];
        /* ---- sweep A: incoming state of every sub-chunk into the scratch ---- */
        {
            float hacc[8][4];
            get_state(hacc, a.st + sidx, rb, cb);
            for (int s = 0; s < ns; s++) {
                put_state(scratch + (size_t)s * P * N, N, hacc, rb, cb);
                if (s == ns - 1) break;
                const int64_t t0 = t_begin + (int64_t)s * Q, row0 = b * a.L + t0;
                const int nvalid = (int)min((int64_t)Q, t_end - t0);
                load_tile<P, LDP>(Xs, a.x + h * P, row0, a.H * P, nvalid);
                load_tile<N, LDN>(Bs, a.Bm + g * N, row0, a.G * N, nvalid);
                cp_commit();
                if (s + 1 < ns - 1) prefetch_rows<true, false>(a, row0 + Q, h, g, (int)min((int64_t)Q, t_end - t0 - Q));
                if (warp == 0) prefix(vec, a, row0, (int)h, nvalid);
                cp_wait<0>();
                __syncthreads();
                state_update(hacc, Xs, Bs, wv, __expf(cum[Q - 1]), rb, cb);
                __syncthreads();
            }
        }
        /* the last put_state above is followed by no barrier of the loop: without this one the
         * reverse loop's first cp.async of Hs (other threads) could read the scratch before every
         * warp wrote it (a global-memory race racecheck does not see: it showed as rare gradient
         * errors, dz 1.3e-2 in one racecheck run of session 4, since T = 64 chunks put the write
         * and the read back to back for every work item) */
        __syncthreads();
        /* ---- reverse over the sub-chunks ---- */
        float dacc[8][4];
        get_state(dacc, a.dst + sidx, rb, cb);
        float dD_acc = 0.0f, dA_acc = 0.0f, db_acc = 0.0f;
        for (int s = ns - 1; s >= 0; s--) {
            const int64_t t0 = t_begin + (int64_t)s * Q, row0 = b * a.L + t0;
            const int nvalid = (int)min((int64_t)Q, t_end - t0);
            load_tile<P, LDP>(Xs, a.x + h * P, row0, a.H * P, nvalid);
            load_tile<N, LDN>(Bs, a.Bm + g * N, row0, a.G * N, nvalid);
            load_tile<N, LDN>(Cs, a.Cm + g * N, row0, a.G * N, nvalid);
            load_tile<N, LDN>(Hs, scratch + (size_t)s * P * N, 0, N, P);
            cp_commit();
            if (s > 0) prefetch_rows<true, true>(a, row0 - Q, h, g, Q);
            put_state(DHs, LDN, dacc, rb, cb);
            load_g(Gs, a, row0, h, nvalid);
            if (warp == 0) prefix(vec, a, row0, (int)h, nvalid);
            cp_wait<0>();
            __syncthreads(); /* [A] */
            const float E = __expf(cum[Q - 1]);
            /* ---- phase 1: S, GX (rows rb, cols 32cb..) -> M', W1 and the decay sums ---- */
            {
                float sacc[4][4], gacc[4][4];
#pragma unroll
                for (int f = 0; f < 4; f++)
#pragma unroll
                    for (int e = 0; e < 4; e++) sacc[f][e] = 0.0f, gacc[f][e] = 0.0f;
                const bool act = 32 * cb <= 16 * rb + 15;
                if (act) {
                    mma_nk<N, LDN>(sacc, Cs, Bs, rb, cb);
                    mma_nk<P, LDP>(gacc, Gs, Xs, rb, cb);
                    const float c_lo = cum[r_lo], c_hi = cum[r_hi];
                    float zr_lo = 0.f, zr_hi = 0.f;
#pragma unroll
                    for (int f = 0; f < 4; f++) {
                        const int j0 = cb * 32 + f * 8 + 2 * t;
                        float zc0 = 0.f, zc1 = 0.f;
                        float mv[4], wvv[4];
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int r = e < 2 ? r_lo : r_hi, j = j0 + (e & 1);
                            const float L = j <= r ? __expf((e < 2 ? c_lo : c_hi) - cum[j]) : 0.0f;
                            const float sl = sacc[f][e] * L, gx = gacc[f][e];
                            mv[e] = sl * dtp[j];
                            wvv[e] = gx * L * dtp[j];
                            const float zz = sl * gx;
                            if (e < 2) zr_lo += zz * dtp[j];
                            else zr_hi += zz * dtp[j];
                            if (e & 1) zc1 += zz;
                            else zc0 += zz;
                        }
                        *reinterpret_cast<uint32_t *>(Ms + r_lo * LDQ + j0) = pack_bf16(mv[0], mv[1]);
                        *reinterpret_cast<uint32_t *>(Ms + r_hi * LDQ + j0) = pack_bf16(mv[2], mv[3]);
                        *reinterpret_cast<uint32_t *>(Ws + r_lo * LDQ + j0) = pack_bf16(wvv[0], wvv[1]);
                        *reinterpret_cast<uint32_t *>(Ws + r_hi * LDQ + j0) = pack_bf16(wvv[2], wvv[3]);
                        zc0 = sum_g(zc0), zc1 = sum_g(zc1);
                        if (g8 == 0) atomicAdd(&zc[j0], zc0), atomicAdd(&zc[j0 + 1], zc1);
                    }
                    zr_lo = sum_t(zr_lo), zr_hi = sum_t(zr_hi);
                    if (t == 0) atomicAdd(&zr[r_lo], zr_lo), atomicAdd(&zr[r_hi], zr_hi);
                }
            }
            __syncthreads(); /* [B] Ms, Ws complete */
            const float e_lo = ec[r_lo], e_hi = ec[r_hi], w_lo = wv[r_lo], w_hi = wv[r_hi];
            /* ---- phase 2a: Yc = C h^T, u_i = g_i . Yc_i, ys = e Yc + M' X -> dz; dD ---- */
            {
                float ycacc[4][4];
#pragma unroll
                for (int f = 0; f < 4; f++)
#pragma unroll
                    for (int e = 0; e < 4; e++) ycacc[f][e] = 0.0f;
                mma_nk<N, LDN>(ycacc, Cs, Hs, rb, cb);
                float u_lo = 0.f, u_hi = 0.f;
#pragma unroll
                for (int f = 0; f < 4; f++) {
                    const int p = cb * 32 + f * 8 + 2 * t;
                    const float2 glo = bf2(Gs + r_lo * LDP + p), ghi = bf2(Gs + r_hi * LDP + p);
                    u_lo += glo.x * ycacc[f][0] + glo.y * ycacc[f][1];
                    u_hi += ghi.x * ycacc[f][2] + ghi.y * ycacc[f][3];
                }
                u_lo = sum_t(u_lo), u_hi = sum_t(u_hi);
                if (t == 0) atomicAdd(&uu[r_lo], u_lo), atomicAdd(&uu[r_hi], u_hi);
#pragma unroll
                for (int f = 0; f < 4; f++) ycacc[f][0] *= e_lo, ycacc[f][1] *= e_lo, ycacc[f][2] *= e_hi, ycacc[f][3] *= e_hi;
#pragma unroll
                for (int kk = 0; kk < Q / 16; kk++) {
                    if (kk > rb) continue;
                    uint32_t ma[4], xb[4];
                    frag_a(ma, Ms, LDQ, rb * 16, kk * 16);
#pragma unroll
                    for (int np = 0; np < 2; np++) {
                        frag_b_kn(xb, Xs, LDP, kk * 16, cb * 32 + np * 16);
                        mma16816(ycacc[2 * np], ma, xb[0], xb[1]);
                        mma16816(ycacc[2 * np + 1], ma, xb[2], xb[3]);
                    }
                }
#pragma unroll
                for (int f = 0; f < 4; f++) {
                    const int p = cb * 32 + f * 8 + 2 * t;
#pragma unroll
                    for (int hv = 0; hv < 2; hv++) {
                        const int i = hv ? r_hi : r_lo;
                        const float2 xf = bf2(Xs + i * LDP + p), gf = bf2(Gs + i * LDP + p);
                        dD_acc += xf.x * gf.x + xf.y * gf.y;
                        if (a.z && i < nvalid) {
                            const int64_t off = (row0 + i) * a.H * P + h * P + p;
                            const float2 zf = bf2(a.z + off), df = bf2(a.dy + off);
                            const float y0 = ycacc[f][2 * hv] + Dh * xf.x, y1 = ycacc[f][2 * hv + 1] + Dh * xf.y;
                            const float s0 = mamba_scan::sigm(zf.x), s1 = mamba_scan::sigm(zf.y);
                            *reinterpret_cast<__nv_bfloat162 *>(a.dz + off) = __floats2bfloat162_rn(
                                df.x * y0 * s0 * (1.0f + zf.x * (1.0f - s0)), df.y * y1 * s1 * (1.0f + zf.y * (1.0f - s1)));
                        }
                    }
                }
            }
            /* ---- phase 2b: dX = M'^T G + diag(w) B dh^T + D G; q_j = x_j . (B dh^T)_j ---- */
            {
                float a1[4][4], a2[4][4];
#pragma unroll
                for (int f = 0; f < 4; f++)
#pragma unroll
                    for (int e = 0; e < 4; e++) a1[f][e] = 0.0f, a2[f][e] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < Q / 16; kk++) {
                    if (kk < rb) continue;
                    uint32_t ma[4], gb[4];
                    frag_a_t(ma, Ms, LDQ, rb * 16, kk * 16);
#pragma unroll
                    for (int np = 0; np < 2; np++) {
                        frag_b_kn(gb, Gs, LDP, kk * 16, cb * 32 + np * 16);
                        mma16816(a1[2 * np], ma, gb[0], gb[1]);
                        mma16816(a1[2 * np + 1], ma, gb[2], gb[3]);
                    }
                }
                mma_nk<N, LDN>(a2, Bs, DHs, rb, cb);
                float q_lo = 0.f, q_hi = 0.f;
#pragma unroll
                for (int f = 0; f < 4; f++) {
                    const int p = cb * 32 + f * 8 + 2 * t;
#pragma unroll
                    for (int hv = 0; hv < 2; hv++) {
                        const int i = hv ? r_hi : r_lo;
                        const float w = hv ? w_hi : w_lo;
                        const float2 xf = bf2(Xs + i * LDP + p), gf = bf2(Gs + i * LDP + p);
                        const float b0 = a2[f][2 * hv], b1 = a2[f][2 * hv + 1];
                        if (hv) q_hi += xf.x * b0 + xf.y * b1;
                        else q_lo += xf.x * b0 + xf.y * b1;
                        if (i < nvalid) {
                            const int64_t off = (row0 + i) * a.H * P + h * P + p;
                            *reinterpret_cast<__nv_bfloat162 *>(a.dx + off) = __floats2bfloat162_rn(
                                a1[f][2 * hv] + w * b0 + Dh * gf.x, a1[f][2 * hv + 1] + w * b1 + Dh * gf.y);
                        }
                    }
                }
                q_lo = sum_t(q_lo), q_hi = sum_t(q_hi);
                if (t == 0) atomicAdd(&qq[r_lo], q_lo), atomicAdd(&qq[r_hi], q_hi);
            }
            /* ---- phase 2c: dC = W1 B + diag(e) G h (rows rb, cols 64cb..) ---- */
            state_col_grad<false>(a.dCm, a.G, g, row0, nvalid, Gs, Hs, e_lo, e_hi, Ws, Bs, rb, cb, r_lo, r_hi, t);
            /* ---- phase 2d: dB = W1^T C + diag(w) X dh ---- */
            state_col_grad<true>(a.dBm, a.G, g, row0, nvalid, Xs, DHs, w_lo, w_hi, Ws, Cs, rb, cb, r_lo, r_hi, t);
            /* ---- phase 2e: E <dh, h>, then dh <- E dh + G^T diag(e) C ---- */
            {
                float pe = 0.0f;
#pragma unroll
                for (int f = 0; f < 8; f++) {
                    const __nv_bfloat16 *o = Hs + (rb * 16 + g8) * LDN + cb * 64 + f * 8 + 2 * t;
                    const float2 lo = bf2(o), hi = bf2(o + 8 * LDN);
                    pe += dacc[f][0] * lo.x + dacc[f][1] * lo.y + dacc[f][2] * hi.x + dacc[f][3] * hi.y;
                }
                pe = mamba_scan::warp_sum(pe);
                if (lane == 0) atomicAdd(dcE, pe);
                state_update(dacc, Gs, Cs, ec, E, rb, cb);
            }
            __syncthreads(); /* [C] the sums are complete */
            if (warp == 0) {
                const int k0 = 2 * lane, k1 = k0 + 1;
                float d0 = zr[k0] - dtp[k0] * zc[k0] + ec[k0] * uu[k0] - wv[k0] * qq[k0];
                float d1 = zr[k1] - dtp[k1] * zc[k1] + ec[k1] * uu[k1] - wv[k1] * qq[k1];
                const float extra = mamba_scan::warp_sum(wv[k0] * qq[k0] + wv[k1] * qq[k1]) + E * dcE[0];
                if (lane == 31) d1 += extra;
                const float sfx = mamba_scan::warp_suffix_sum(d0 + d1, lane);
                const float da0 = sfx, da1 = sfx - d0;
                const float dd0 = (zc[k0] + wd[k0] * qq[k0] + Ah * da0) * sg[k0];
                const float dd1 = (zc[k1] + wd[k1] * qq[k1] + Ah * da1) * sg[k1];
                if (k0 < nvalid) a.ddt[(row0 + k0) * a.H + h] = dd0;
                if (k1 < nvalid) a.ddt[(row0 + k1) * a.H + h] = dd1;
                dA_acc += dtp[k0] * da0 + dtp[k1] * da1;
                db_acc += dd0 + dd1;
                __syncwarp();
                zr[k0] = zr[k1] = zc[k0] = zc[k1] = uu[k0] = uu[k1] = qq[k0] = qq[k1] = 0.0f;
                if (lane == 0) dcE[0] = 0.0f;
            }
        }
        add_head_sums(a, h, dD_acc, dA_acc, db_acc, warp, lane);
        __syncthreads(); /* the next item's sweep A reuses the tiles */
    }
}

} // namespace mamba_ssd_bwd
#endif
