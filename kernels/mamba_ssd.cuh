/* mamba_ssd.cuh — tensor-core (mma.sync m16n8k16 bf16, fp32 accumulate) forward of the Mamba-2
 * scan in the chunked state-space-duality form, for P = 64, N = 128. Same passes as
 * mamba_scan.cuh (local chunk states, state_pass, outputs), but inside a chunk the tokens go by
 * sub-chunks of Q = 64 and every product is a matrix product. For a sub-chunk with
 * within-sub-chunk cumulative log decay c_i = sum_{k<=i} dt'_k A, incoming state h (P x N):
 *   S   = C B^T                                   (Q x Q, K = N)
 *   M   = S o [j <= i] exp(c_i - c_j) dt'_j         (decay mask, in registers)
 *   Y   = diag(exp(c)) C h^T + M X                (Q x P; K = N, then K = Q)
 *   h  <- exp(c_end) h + (X diag(w))^T B,  w_j = exp(c_end - c_j) dt'_j      (P x N, K = Q)
 *   y   = (Y + D x) * silu(z)
 * Warp w owns output rows 16*(w%4).. and head-dim columns 32*(w/4).. of Y, so S and M of its rows
 * stay in registers (the accumulator of S is re-packed as the A operand of M X, as in
 * FlashAttention-2); it also owns state rows 16*(w%4).. and columns 64*(w/4).. in fp32
 * accumulators across sub-chunks. A bf16 copy of the state in shared memory feeds C h^T.
 * Operands are rounded to bf16 (decay weights folded into M and X first), so y and hT carry
 * bf16-level error (~2e-3 relative). Blocks run (head, chunk, batch) with the head fastest, so
 * the heads sharing a chunk's B and C read them from L2 together. The first version used the
 * WMMA API with shared-memory round trips for S, M and the state (2.3 ms at L = 64K on an H100,
 * issue-bound on shared-memory traffic); see results/notes-mamba.md.
 * Included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_SSD_CUH
#define LONGCTX_MAMBA_SSD_CUH

#include "mamba_scan.cuh"
#include "mma.cuh"

namespace mamba_ssd {

constexpr int P = 64, N = 128, Q = 64;
constexpr int LDN = N + 8, LDP = P + 8; /* bf16 rows padded by 16 B: ldmatrix without bank conflicts */
constexpr int THREADS = 256;

/* shared-memory carve-up (bytes, each a multiple of 128): two buffers of the C, B, X tiles (the
 * next sub-chunk's copies fly while this one computes), the bf16 state, small vectors */
constexpr int TILE_C = Q * LDN * 2, TILE_B = Q * LDN * 2, TILE_X = Q * LDP * 2;
constexpr int BUF = TILE_C + TILE_B + TILE_X;
constexpr int OFF_H = 2 * BUF;
constexpr int OFF_V = OFF_H + P * LDN * 2; /* dtp, cum, w, exp(cum) */
constexpr int SMEM = OFF_V + 4 * Q * 4;

using namespace lc_mma;

__device__ __forceinline__ uint32_t scale2(uint32_t v, float lo, float hi) {
    const float2 f = __bfloat1622float2(*reinterpret_cast<__nv_bfloat162 *>(&v));
    return pack_bf16(f.x * lo, f.y * hi);
}

/* rows [row0, row0 + nvalid) of a bf16 tensor (W wide, row stride `stride`) into smem rows of
 * pitch LD with cp.async; rows past nvalid are zero-filled (0 * garbage could be NaN). */
template <int W, int LD>
__device__ __forceinline__ void load_tile(__nv_bfloat16 *dst, const __nv_bfloat16 *src, int64_t row0, int64_t stride, int nvalid) {
    constexpr int V = W / 8;
#pragma unroll
    for (int it = 0; it < (Q * V + THREADS - 1) / THREADS; it++) {
        const int e = threadIdx.x + it * THREADS;
        if (e >= Q * V) break;
        const int j = e / V, v = e % V;
        const __nv_bfloat16 *g = src + (row0 + (j < nvalid ? j : 0)) * stride + v * 8;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst + j * LD + v * 8)), "l"(g),
                     "r"(j < nvalid ? 16 : 0));
    }
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int PENDING>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory"); }

/* Warp 0: dt' of the sub-chunk at row0 (2 tokens per lane), read ahead of use. */
__device__ __forceinline__ float2 dt_fetch(const mamba_scan::args &a, int64_t row0, int h, int nvalid) {
    const int l = threadIdx.x;
    float2 u = make_float2(0.0f, 0.0f);
    if (2 * l < nvalid) u.x = a.dt[(row0 + 2 * l) * a.H + h];
    if (2 * l + 1 < nvalid) u.y = a.dt[(row0 + 2 * l + 1) * a.H + h];
    return u;
}

/* Warp 0: dt', the inclusive cumulative log decay c, w_j = exp(c_end - c_j) dt'_j, exp(c_i). */
__device__ __forceinline__ void decay_prefix(float *vec, const mamba_scan::args &a, float2 raw, int h, int nvalid) {
    float *dtp = vec, *cum = vec + Q, *wv = vec + 2 * Q, *ec = vec + 3 * Q;
    const int l = threadIdx.x;
    const float Ah = a.A[h], bias = a.dt_bias ? a.dt_bias[h] : 0.0f;
    const mamba_scan::decay_pair p = mamba_scan::decay_scan(raw.x + bias, raw.y + bias, Ah, nvalid, l);
    const float d0 = p.d0, d1 = p.d1, c0 = p.c0, c1 = p.c1, cend = p.cend;
    dtp[2 * l] = d0, dtp[2 * l + 1] = d1;
    cum[2 * l] = c0, cum[2 * l + 1] = c1;
    wv[2 * l] = __expf(cend - c0) * d0, wv[2 * l + 1] = __expf(cend - c1) * d1;
    ec[2 * l] = __expf(c0), ec[2 * l + 1] = __expf(c1);
}

/* h <- exp(c_end) h + (X diag(w))^T B for this warp's state tile: rows 16*tp.., cols 64*nh.. */
__device__ __forceinline__ void state_update(float (&hacc)[8][4], const __nv_bfloat16 *Xs, const __nv_bfloat16 *Bs,
                                             const float *wv, float decay_all, int tp, int nh) {
    const int lane = threadIdx.x & 31, t = lane & 3, m = lane >> 3;
#pragma unroll
    for (int f = 0; f < 8; f++)
#pragma unroll
        for (int e = 0; e < 4; e++) hacc[f][e] *= decay_all;
#pragma unroll
    for (int kk = 0; kk < Q / 16; kk++) {
        uint32_t xa[4];
        /* A = X^T: stored Xs[j][p]; matrices (p 0-7, j 0-7), (p 8-15, j 0-7), (p 0-7, j 8-15), (p 8-15, j 8-15) */
        ldsm_x4_t(xa, Xs + (kk * 16 + (lane & 7) + (m >> 1) * 8) * LDP + tp * 16 + (m & 1) * 8);
        const int j = kk * 16 + 2 * t;
        xa[0] = scale2(xa[0], wv[j], wv[j + 1]);
        xa[1] = scale2(xa[1], wv[j], wv[j + 1]);
        xa[2] = scale2(xa[2], wv[j + 8], wv[j + 9]);
        xa[3] = scale2(xa[3], wv[j + 8], wv[j + 9]);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            uint32_t bb[4]; /* B = Bs[j][n], k = j rows: transposed load, two n8 tiles */
            ldsm_x4_t(bb, Bs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDN + nh * 64 + q * 16 + (lane >> 4) * 8);
            mma16816(hacc[2 * q], xa, bb[0], bb[1]);
            mma16816(hacc[2 * q + 1], xa, bb[2], bb[3]);
        }
    }
}

template <bool LOCAL>
__global__ void __launch_bounds__(THREADS, 2) ssd_fwd(mamba_scan::args a) {
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 *Hs = (__nv_bfloat16 *)(smem + OFF_H);
    float *vec = (float *)(smem + OFF_V), *dtp = vec, *cum = vec + Q, *wv = vec + 2 * Q, *ec = vec + 3 * Q;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g8 = lane >> 2, t = lane & 3;
    const int64_t h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (a.H / a.G);
    const int64_t t_begin = c * a.T, t_end = min(t_begin + a.T, a.L);
    float *stp = a.st + ((b * a.nch + c) * a.H + h) * (int64_t)(P * N);
    const int tp = warp & 3, nh = warp >> 2; /* state tile */
    const int it = warp & 3, ph = warp >> 2; /* output rows 16*it.., columns 32*ph.. */
    float hacc[8][4];
#pragma unroll
    for (int f = 0; f < 8; f++) {
        float2 lo = make_float2(0.f, 0.f), hi = make_float2(0.f, 0.f);
        if (!LOCAL) {
            const float *s0 = stp + (tp * 16 + g8) * N + nh * 64 + f * 8 + 2 * t;
            lo = *reinterpret_cast<const float2 *>(s0);
            hi = *reinterpret_cast<const float2 *>(s0 + 8 * N);
        }
        hacc[f][0] = lo.x, hacc[f][1] = lo.y, hacc[f][2] = hi.x, hacc[f][3] = hi.y;
    }
    if (!LOCAL)
        for (int e = tid; e < P * N / 4; e += THREADS) { /* bf16 copy of the incoming state */
            const int p = e / (N / 4), n4 = e % (N / 4);
            const float4 v = *reinterpret_cast<const float4 *>(stp + p * N + n4 * 4);
            uint2 u = make_uint2(pack_bf16(v.x, v.y), pack_bf16(v.z, v.w));
            *reinterpret_cast<uint2 *>(Hs + p * LDN + n4 * 4) = u;
        }
    const float Dh = a.D ? a.D[h] : 0.0f;
    float logdecay = 0.0f;
    /* sub-chunk k uses buffer k & 1; its copies were issued during sub-chunk k - 1 */
    auto issue = [&](int64_t t0, int buf) {
        const int nv = (int)min((int64_t)Q, t_end - t0);
        const int64_t r0 = b * a.L + t0;
        unsigned char *base = smem + buf * BUF;
        load_tile<P, LDP>((__nv_bfloat16 *)(base + TILE_C + TILE_B), a.x + h * P, r0, a.H * P, nv);
        load_tile<N, LDN>((__nv_bfloat16 *)(base + TILE_C), a.Bm + g * N, r0, a.G * N, nv);
        if (!LOCAL) load_tile<N, LDN>((__nv_bfloat16 *)base, a.Cm + g * N, r0, a.G * N, nv);
        cp_commit();
        /* z is read by the epilogue straight from global memory: pull its lines into L2 now */
        if (!LOCAL && a.z && (int)threadIdx.x < nv)
            asm volatile("prefetch.global.L2 [%0];\n" ::"l"(a.z + (r0 + threadIdx.x) * a.H * P + h * P));
    };
    issue(t_begin, 0);
    float2 dt_raw = make_float2(0.f, 0.f);
    if (warp == 0) dt_raw = dt_fetch(a, b * a.L + t_begin, (int)h, (int)min((int64_t)Q, t_end - t_begin));
    int buf = 0;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += Q, buf ^= 1) {
        const int nvalid = (int)min((int64_t)Q, t_end - t0);
        const int64_t row0 = b * a.L + t0;
        __nv_bfloat16 *Cs = (__nv_bfloat16 *)(smem + buf * BUF), *Bs = (__nv_bfloat16 *)(smem + buf * BUF + TILE_C);
        __nv_bfloat16 *Xs = (__nv_bfloat16 *)(smem + buf * BUF + TILE_C + TILE_B);
        const bool more = t0 + Q < t_end;
        if (more) issue(t0 + Q, buf ^ 1); /* that buffer was freed by the last barrier [B] */
        if (warp == 0) {
            decay_prefix(vec, a, dt_raw, (int)h, nvalid);
            if (more) dt_raw = dt_fetch(a, row0 + Q, (int)h, (int)min((int64_t)Q, t_end - t0 - Q));
        }
        if (more) cp_wait<1>();
        else cp_wait<0>();
        __syncthreads(); /* [A] tiles, vectors and Hs ready */
        const float cend = cum[Q - 1];
        if (LOCAL) logdecay += cend;
        if (!LOCAL) {
            const int i0 = it * 16, r_lo = i0 + g8, r_hi = r_lo + 8;
            float sacc[8][4], yacc[4][4];
#pragma unroll
            for (int f = 0; f < 8; f++)
#pragma unroll
                for (int e = 0; e < 4; e++) sacc[f][e] = 0.0f;
#pragma unroll
            for (int f = 0; f < 4; f++)
#pragma unroll
                for (int e = 0; e < 4; e++) yacc[f][e] = 0.0f;
            /* S = C B^T (causal n8 tiles) and Y = C h^T share the A fragments of C */
#pragma unroll
            for (int kk = 0; kk < N / 16; kk++) {
                uint32_t ca[4];
                ldsm_x4(ca, Cs + (i0 + (lane & 15)) * LDN + kk * 16 + (lane >> 4) * 8);
#pragma unroll
                for (int jp = 0; jp < 4; jp++) {
                    if (jp > it) continue;
                    uint32_t bb[4]; /* rows j of B, k = n contiguous: two n8 tiles */
                    ldsm_x4(bb, Bs + (jp * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDN + kk * 16 + ((lane >> 3) & 1) * 8);
                    mma16816(sacc[2 * jp], ca, bb[0], bb[1]);
                    mma16816(sacc[2 * jp + 1], ca, bb[2], bb[3]);
                }
#pragma unroll
                for (int pp = 0; pp < 2; pp++) {
                    uint32_t hb[4]; /* rows p of the state, k = n contiguous */
                    ldsm_x4(hb, Hs + (ph * 32 + pp * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDN + kk * 16 + ((lane >> 3) & 1) * 8);
                    mma16816(yacc[2 * pp], ca, hb[0], hb[1]);
                    mma16816(yacc[2 * pp + 1], ca, hb[2], hb[3]);
                }
            }
            const float e_lo = ec[r_lo], e_hi = ec[r_hi], c_lo = cum[r_lo], c_hi = cum[r_hi];
#pragma unroll
            for (int f = 0; f < 4; f++) yacc[f][0] *= e_lo, yacc[f][1] *= e_lo, yacc[f][2] *= e_hi, yacc[f][3] *= e_hi;
            /* Y += M X, M packed from the S accumulators */
#pragma unroll
            for (int kk = 0; kk < Q / 16; kk++) {
                if (kk > it) continue;
                uint32_t ma[4];
#pragma unroll
                for (int half = 0; half < 2; half++) {
                    const int f = 2 * kk + half, j = f * 8 + 2 * t;
                    const float w0 = dtp[j], w1 = dtp[j + 1], cj0 = cum[j], cj1 = cum[j + 1];
                    const float m00 = j <= r_lo ? sacc[f][0] * __expf(c_lo - cj0) * w0 : 0.0f;
                    const float m01 = j + 1 <= r_lo ? sacc[f][1] * __expf(c_lo - cj1) * w1 : 0.0f;
                    const float m10 = j <= r_hi ? sacc[f][2] * __expf(c_hi - cj0) * w0 : 0.0f;
                    const float m11 = j + 1 <= r_hi ? sacc[f][3] * __expf(c_hi - cj1) * w1 : 0.0f;
                    ma[2 * half] = pack_bf16(m00, m01);
                    ma[2 * half + 1] = pack_bf16(m10, m11);
                }
#pragma unroll
                for (int pp = 0; pp < 2; pp++) {
                    uint32_t xb[4]; /* B = Xs[j][p], k = j rows: transposed load */
                    ldsm_x4_t(xb, Xs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDP + ph * 32 + pp * 16 + (lane >> 4) * 8);
                    mma16816(yacc[2 * pp], ma, xb[0], xb[1]);
                    mma16816(yacc[2 * pp + 1], ma, xb[2], xb[3]);
                }
            }
            /* y = (Y + D x) * silu(z) */
#pragma unroll
            for (int f = 0; f < 4; f++) {
                const int p = ph * 32 + f * 8 + 2 * t;
#pragma unroll
                for (int hv = 0; hv < 2; hv++) {
                    const int i = hv ? r_hi : r_lo;
                    if (i >= nvalid) continue;
                    const int64_t off = (row0 + i) * a.H * P + h * P + p;
                    const float2 xf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(Xs + i * LDP + p));
                    float y0 = yacc[f][2 * hv] + Dh * xf.x, y1 = yacc[f][2 * hv + 1] + Dh * xf.y;
                    if (a.z) {
                        const float2 zf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(a.z + off));
                        y0 *= zf.x * mamba_scan::sigm(zf.x), y1 *= zf.y * mamba_scan::sigm(zf.y);
                    }
                    *reinterpret_cast<__nv_bfloat162 *>(a.y + off) = __floats2bfloat162_rn(y0, y1);
                }
            }
        }
        state_update(hacc, Xs, Bs, wv, __expf(cend), tp, nh);
        __syncthreads(); /* [B] Xs, Bs, Cs, Hs and the vectors are free */
        if (!LOCAL && t0 + Q < t_end) {
#pragma unroll
            for (int f = 0; f < 8; f++) {
                __nv_bfloat16 *o = Hs + (tp * 16 + g8) * LDN + nh * 64 + f * 8 + 2 * t;
                *reinterpret_cast<uint32_t *>(o) = pack_bf16(hacc[f][0], hacc[f][1]);
                *reinterpret_cast<uint32_t *>(o + 8 * LDN) = pack_bf16(hacc[f][2], hacc[f][3]);
            }
        }
    }
    if (LOCAL) {
#pragma unroll
        for (int f = 0; f < 8; f++) {
            float *s0 = stp + (tp * 16 + g8) * N + nh * 64 + f * 8 + 2 * t;
            *reinterpret_cast<float2 *>(s0) = make_float2(hacc[f][0], hacc[f][1]);
            *reinterpret_cast<float2 *>(s0 + 8 * N) = make_float2(hacc[f][2], hacc[f][3]);
        }
        if (tid == 0) a.decay[(b * a.nch + c) * a.H + h] = __expf(logdecay);
    }
}

} // namespace mamba_ssd
#endif
