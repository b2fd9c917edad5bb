/* mamba_ssd.cuh — tensor-core (bf16 WMMA, fp32 accumulate) forward of the Mamba-2 scan in the
 * chunked state-space-duality form, for P = 64, N = 128. Same passes as mamba_scan.cuh (local
 * chunk states, state_pass, outputs), but inside a chunk the tokens go by sub-chunks of Q = 64
 * and every product is a matrix product. For a sub-chunk with within-sub-chunk cumulative log
 * decay c_i = sum_{k<=i} dt'_k A, incoming state h (P x N) and tokens i, j < Q:
 *   S   = C B^T                                   (Q x Q, K = N)
 *   M   = S o [j <= i] exp(c_i - c_j) dt'_j         (decay mask, elementwise)
 *   Y   = diag(exp(c)) C h^T + M X                (Q x P; K = N, then K = Q)
 *   h  <- exp(c_end) h + X^T diag(exp(c_end - c) dt') B        (P x N, K = Q)
 *   y   = (Y + D x) * silu(z)
 * The fp32 state lives in WMMA accumulators across sub-chunks; a bf16 copy in shared memory
 * feeds the C h^T product. Operands are rounded to bf16 (the decay weights folded into C, B and
 * M first), so y and hT carry bf16-level error (~1e-3 relative). Blocks run (head, chunk, batch)
 * with the head fastest, so the heads sharing a chunk's B and C read them from L2 together.
 * Included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_SSD_CUH
#define LONGCTX_MAMBA_SSD_CUH

#include <mma.h>

#include "mamba_scan.cuh"

namespace mamba_ssd {
using namespace nvcuda;

constexpr int P = 64, N = 128, Q = 64;
constexpr int LDN = N + 8, LDP = P + 8, LDQ = Q + 8; /* bf16 rows padded by 16 B: no ldmatrix bank conflicts */
constexpr int LDR = N + 4;                            /* fp32 staging rows */
constexpr int THREADS = 256;

/* shared-memory carve-up (bytes, each a multiple of 128) */
constexpr int OFF_C = 0;
constexpr int OFF_B = OFF_C + Q * LDN * 2;
constexpr int OFF_X = OFF_B + Q * LDN * 2;
constexpr int OFF_M = OFF_X + Q * LDP * 2;
constexpr int OFF_H = OFF_M + Q * LDQ * 2;
constexpr int OFF_R = OFF_H + P * LDN * 2;
constexpr int OFF_S = OFF_R + P * LDR * 4; /* small vectors */
constexpr int SMEM = OFF_S + 4 * Q * 4;

typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc_t;

/* rows [row0, row0 + nvalid) of a bf16 tensor (W wide, row stride `stride`) into smem rows of
 * pitch LD; rows past nvalid are zero (0 * garbage could be NaN). */
template <int W, int LD>
__device__ __forceinline__ void load_tile(__nv_bfloat16 *dst, const __nv_bfloat16 *src, int64_t row0, int64_t stride, int nvalid) {
    constexpr int V = W / 8;
    for (int e = threadIdx.x; e < Q * V; e += THREADS) {
        const int j = e / V, v = e % V;
        uint4 u = make_uint4(0, 0, 0, 0);
        if (j < nvalid) u = *reinterpret_cast<const uint4 *>(src + (row0 + j) * stride + v * 8);
        *reinterpret_cast<uint4 *>(dst + j * LD + v * 8) = u;
    }
}

/* dt' and the inclusive cumulative log decay c over the sub-chunk (warp 0). */
__device__ __forceinline__ void decay_prefix(float *dtp, float *cum, const mamba_scan::args &a, int64_t row0, int h, int nvalid) {
    if (threadIdx.x >= 32) return;
    const int l = threadIdx.x;
    const float Ah = a.A[h], bias = a.dt_bias ? a.dt_bias[h] : 0.0f;
    float d0 = 0.0f, d1 = 0.0f;
    if (2 * l < nvalid) d0 = mamba_scan::softplus(a.dt[(row0 + 2 * l) * a.H + h] + bias);
    if (2 * l + 1 < nvalid) d1 = mamba_scan::softplus(a.dt[(row0 + 2 * l + 1) * a.H + h] + bias);
    const float v0 = d0 * Ah, v1 = d1 * Ah;
    float s = v0 + v1;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float t = __shfl_up_sync(0xffffffffu, s, o);
        if (l >= o) s += t;
    }
    dtp[2 * l] = d0, dtp[2 * l + 1] = d1;
    cum[2 * l] = s - v1, cum[2 * l + 1] = s;
}

/* h <- exp(c_end) h + X^T Bw for this warp's 4 accumulator tiles (rows tp, cols nt0..nt0+3). */
__device__ __forceinline__ void state_update(acc_t (&hacc)[4], const __nv_bfloat16 *Xs, const __nv_bfloat16 *Bs, float decay_all,
                                             int tp, int nt0) {
#pragma unroll
    for (int f = 0; f < 4; f++)
#pragma unroll
        for (int e = 0; e < hacc[f].num_elements; e++) hacc[f].x[e] *= decay_all;
#pragma unroll
    for (int k = 0; k < Q / 16; k++) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> xa;
        wmma::load_matrix_sync(xa, Xs + k * 16 * LDP + tp * 16, LDP);
#pragma unroll
        for (int f = 0; f < 4; f++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> bb;
            wmma::load_matrix_sync(bb, Bs + k * 16 * LDN + (nt0 + f) * 16, LDN);
            wmma::mma_sync(hacc[f], xa, bb, hacc[f]);
        }
    }
}

/* Bs[j][n] *= exp(c_end - c_j) dt'_j (then Bw); rows past nvalid are zero already. */
__device__ __forceinline__ void weight_B(__nv_bfloat16 *Bs, const float *dtp, const float *cum) {
    const float cend = cum[Q - 1];
    for (int e = threadIdx.x; e < Q * (N / 2); e += THREADS) {
        const int j = e / (N / 2), n2 = e % (N / 2);
        const float w = __expf(cend - cum[j]) * dtp[j];
        __nv_bfloat162 *p = reinterpret_cast<__nv_bfloat162 *>(Bs + j * LDN) + n2;
        float2 f = __bfloat1622float2(*p);
        *p = __floats2bfloat162_rn(f.x * w, f.y * w);
    }
}

template <bool LOCAL>
__global__ void __launch_bounds__(THREADS, 2) ssd_fwd(mamba_scan::args a) {
    extern __shared__ __align__(128) unsigned char smem[];
    __nv_bfloat16 *Cs = (__nv_bfloat16 *)(smem + OFF_C), *Bs = (__nv_bfloat16 *)(smem + OFF_B);
    __nv_bfloat16 *Xs = (__nv_bfloat16 *)(smem + OFF_X), *Ms = (__nv_bfloat16 *)(smem + OFF_M);
    __nv_bfloat16 *Hs = (__nv_bfloat16 *)(smem + OFF_H);
    float *R = (float *)(smem + OFF_R), *dtp = (float *)(smem + OFF_S), *cum = dtp + Q;
    const int tid = threadIdx.x, warp = tid >> 5;
    const int64_t h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (a.H / a.G);
    const int64_t t_begin = c * a.T, t_end = min(t_begin + a.T, a.L);
    float *stp = a.st + ((b * a.nch + c) * a.H + h) * (int64_t)(P * N);
    const int tp = warp & 3, nt0 = (warp >> 2) * 4; /* state tiles of this warp */
    acc_t hacc[4];
    if (LOCAL) {
#pragma unroll
        for (int f = 0; f < 4; f++) wmma::fill_fragment(hacc[f], 0.0f);
    } else {
#pragma unroll
        for (int f = 0; f < 4; f++) wmma::load_matrix_sync(hacc[f], stp + tp * 16 * N + (nt0 + f) * 16, N, wmma::mem_row_major);
        for (int e = tid; e < P * N / 4; e += THREADS) { /* bf16 copy of the incoming state */
            const int p = e / (N / 4), n4 = e % (N / 4);
            const float4 v = *reinterpret_cast<const float4 *>(stp + p * N + n4 * 4);
            __nv_bfloat162 *o = reinterpret_cast<__nv_bfloat162 *>(Hs + p * LDN + n4 * 4);
            o[0] = __floats2bfloat162_rn(v.x, v.y), o[1] = __floats2bfloat162_rn(v.z, v.w);
        }
    }
    const float Dh = a.D ? a.D[h] : 0.0f;
    float logdecay = 0.0f;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += Q) {
        const int nvalid = (int)min((int64_t)Q, t_end - t0);
        const int64_t row0 = b * a.L + t0;
        load_tile<P, LDP>(Xs, a.x + h * P, row0, a.H * P, nvalid);
        load_tile<N, LDN>(Bs, a.Bm + g * N, row0, a.G * N, nvalid);
        if (!LOCAL) load_tile<N, LDN>(Cs, a.Cm + g * N, row0, a.G * N, nvalid);
        decay_prefix(dtp, cum, a, row0, (int)h, nvalid);
        __syncthreads();
        const float cend = cum[Q - 1];
        if (LOCAL) logdecay += cend;
        if (!LOCAL) {
            /* S = C B^T, the causal tiles only (2 per warp) */
            const int ti = warp >> 1;
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const int tj = (warp & 1) * 2 + u;
                if (tj > ti) continue;
                acc_t s;
                wmma::fill_fragment(s, 0.0f);
#pragma unroll
                for (int k = 0; k < N / 16; k++) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ca;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bb;
                    wmma::load_matrix_sync(ca, Cs + ti * 16 * LDN + k * 16, LDN);
                    wmma::load_matrix_sync(bb, Bs + tj * 16 * LDN + k * 16, LDN);
                    wmma::mma_sync(s, ca, bb, s);
                }
                wmma::store_matrix_sync(R + ti * 16 * LDR + tj * 16, s, LDR, wmma::mem_row_major);
            }
            __syncthreads();
            /* M = S o decay o dt' (bf16); C <- diag(exp(c)) C */
            for (int e = tid; e < Q * Q; e += THREADS) {
                const int i = e / Q, j = e % Q;
                const float v = j <= i ? R[i * LDR + j] * __expf(cum[i] - cum[j]) * dtp[j] : 0.0f;
                Ms[i * LDQ + j] = __float2bfloat16(v);
            }
            for (int e = tid; e < Q * (N / 2); e += THREADS) {
                const int i = e / (N / 2), n2 = e % (N / 2);
                const float w = __expf(cum[i]);
                __nv_bfloat162 *p = reinterpret_cast<__nv_bfloat162 *>(Cs + i * LDN) + n2;
                const float2 f = __bfloat1622float2(*p);
                *p = __floats2bfloat162_rn(f.x * w, f.y * w);
            }
            __syncthreads();
            /* Y = Ce h^T + M X (2 tiles per warp), staged in R as [Q][LDR] */
#pragma unroll
            for (int u = 0; u < 2; u++) {
                const int ti = warp >> 1, tq = (warp & 1) * 2 + u;
                acc_t y;
                wmma::fill_fragment(y, 0.0f);
#pragma unroll
                for (int k = 0; k < N / 16; k++) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ca;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> hb;
                    wmma::load_matrix_sync(ca, Cs + ti * 16 * LDN + k * 16, LDN);
                    wmma::load_matrix_sync(hb, Hs + tq * 16 * LDN + k * 16, LDN);
                    wmma::mma_sync(y, ca, hb, y);
                }
                for (int k = 0; k <= ti; k++) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ma;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> xb;
                    wmma::load_matrix_sync(ma, Ms + ti * 16 * LDQ + k * 16, LDQ);
                    wmma::load_matrix_sync(xb, Xs + k * 16 * LDP + tq * 16, LDP);
                    wmma::mma_sync(y, ma, xb, y);
                }
                wmma::store_matrix_sync(R + ti * 16 * LDR + tq * 16, y, LDR, wmma::mem_row_major);
            }
        }
        weight_B(Bs, dtp, cum); /* B is no longer needed unweighted (S was taken above) */
        __syncthreads();
        if (!LOCAL) {
            /* epilogue: y = (Y + D x) * silu(z), 8 values per thread-step, 16-byte stores */
            for (int e = tid; e < Q * (P / 8); e += THREADS) {
                const int i = e / (P / 8), v = e % (P / 8);
                if (i >= nvalid) continue;
                const int64_t off = (row0 + i) * a.H * P + h * P + v * 8;
                uint4 zu = make_uint4(0, 0, 0, 0), out;
                if (a.z) zu = *reinterpret_cast<const uint4 *>(a.z + off);
                const __nv_bfloat162 *x2 = reinterpret_cast<const __nv_bfloat162 *>(Xs + i * LDP + v * 8);
                const __nv_bfloat162 *z2 = reinterpret_cast<const __nv_bfloat162 *>(&zu);
                __nv_bfloat162 *o2 = reinterpret_cast<__nv_bfloat162 *>(&out);
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const float2 xf = __bfloat1622float2(x2[k]);
                    float y0 = R[i * LDR + v * 8 + 2 * k] + Dh * xf.x, y1 = R[i * LDR + v * 8 + 2 * k + 1] + Dh * xf.y;
                    if (a.z) {
                        const float2 zf = __bfloat1622float2(z2[k]);
                        y0 *= zf.x * mamba_scan::sigm(zf.x), y1 *= zf.y * mamba_scan::sigm(zf.y);
                    }
                    o2[k] = __floats2bfloat162_rn(y0, y1);
                }
                *reinterpret_cast<uint4 *>(a.y + off) = out;
            }
        }
        state_update(hacc, Xs, Bs, __expf(cend), tp, nt0);
        __syncthreads(); /* R, Xs, Bs, Hs free */
        if (!LOCAL && t0 + Q < t_end) {
            /* the bf16 copy of the new state for the next sub-chunk's C h^T */
#pragma unroll
            for (int f = 0; f < 4; f++) wmma::store_matrix_sync(R + tp * 16 * LDR + (nt0 + f) * 16, hacc[f], LDR, wmma::mem_row_major);
            __syncthreads();
            for (int e = tid; e < P * (N / 2); e += THREADS) {
                const int p = e / (N / 2), n2 = e % (N / 2);
                reinterpret_cast<__nv_bfloat162 *>(Hs + p * LDN)[n2] =
                    __floats2bfloat162_rn(R[p * LDR + 2 * n2], R[p * LDR + 2 * n2 + 1]);
            }
            /* the next iteration's loads touch Xs, Bs, Cs only; its first barrier orders Hs */
        }
    }
    if (LOCAL) {
#pragma unroll
        for (int f = 0; f < 4; f++) wmma::store_matrix_sync(stp + tp * 16 * N + (nt0 + f) * 16, hacc[f], N, wmma::mem_row_major);
        if (tid == 0) a.decay[(b * a.nch + c) * a.H + h] = __expf(logdecay);
    }
}

} // namespace mamba_ssd
#endif
