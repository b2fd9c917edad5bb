/* mamba_scan.cuh — CUDA kernels of the Mamba-2 scan (math and layouts in mamba.h), chunk-parallel:
 *   chunk_fwd<LOCAL=1>  per (b, chunk, h): the recurrence from a zero state over the chunk; writes
 *                       the local end state and the chunk's total decay prod(dA)
 *   state_pass          per (b, h, state element): walks the chunks in order (or in reverse for
 *                       the backward) and turns local states into each chunk's incoming state
 *   chunk_fwd<LOCAL=0>  per (b, chunk, h): the recurrence from the incoming state; writes y
 *   chunk_dh_local      per (b, chunk, h): reverse recurrence of dh from zero (for the reverse pass)
 *   chunk_bwd           per (b, chunk, h): forward phase (ys, dz, dC, <g, ys>) then reverse phase
 *                       (dx, dB, <x, dh B>), then ddt, dA, ddt_bias from the identity below.
 * Grids are (H, chunks, B) with the head fastest: the heads of one chunk run together and share
 * its B and C rows (and the dB, dC atomics) in L2.
 * Thread layout: P*4 threads; thread (p, q) owns the state row p at columns
 * n = i*16 + q*4 + k (i < N/16, k < 4): float4 reads of B and C rows in shared memory are then
 * free of bank conflicts, and sums over n are a 4-lane shuffle.
 *
 * ddA without storing every state: with R_t = d loss / d log(dA_t) = <dh_t, dA_t h_{t-1}>,
 * u_t = dt'_t x_t B_t^T and ys_t = h_t C_t, one gets R_t = R_{t+1} + <g_t, ys_t> - <dh_t, u_t>,
 * and at the end of a chunk R_T = <dh_out, h_out>. So R is a suffix sum of two per-token scalars
 * that the forward and the reverse phase produce separately. Included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_SCAN_CUH
#define LONGCTX_MAMBA_SCAN_CUH

#include "cuda_common.cuh"

namespace mamba_scan {

constexpr int TT = 16; /* tokens per shared-memory tile */

struct args {
    const __nv_bfloat16 *x, *Bm, *Cm, *z, *dy;
    const float *dt, *dt_bias, *A, *D, *h0, *dhT;
    __nv_bfloat16 *y, *dx, *dz;
    float *hT, *ddt, *dBm, *dCm, *dh0, *dA, *dD, *ddt_bias;
    float *st;    /* [B, nch, H, P*N] chunk states (local, then incoming) */
    float *dst;   /* [B, nch, H, P*N] chunk dh (local, then outgoing) */
    float *decay; /* [B, nch, H] prod of dA over the chunk */
    int64_t B, L, H, G, T, nch;
};

__device__ __forceinline__ float softplus(float v) { return v > 20.0f ? v : log1pf(__expf(v)); }
__device__ __forceinline__ float sigm(float v) { return 1.0f / (1.0f + __expf(-v)); }

/* rows [t0, t0+TT) of a [.., W] bf16 tensor with row stride `stride` elements, into dst[TT][W]
 * fp32; rows at or past t_end are zero. W % 8 == 0. */
template <int W>
__device__ __forceinline__ void load_rows(float *dst, const __nv_bfloat16 *src, int64_t row0, int64_t stride, int nvalid) {
    constexpr int V = W / 8;
    for (int e = threadIdx.x; e < TT * V; e += blockDim.x) {
        const int j = e / V, v = e % V;
        float *o = dst + j * W + v * 8;
        if (j < nvalid) {
            uint4 u = *reinterpret_cast<const uint4 *>(src + (row0 + j) * stride + v * 8);
            const __nv_bfloat162 *p2 = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                float2 f = __bfloat1622float2(p2[k]);
                o[2 * k] = f.x, o[2 * k + 1] = f.y;
            }
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++) o[k] = 0.0f;
        }
    }
}

/* dst[TT][W] fp32 -> bf16 rows */
template <int W>
__device__ __forceinline__ void store_rows(__nv_bfloat16 *dst, const float *src, int64_t row0, int64_t stride, int nvalid) {
    constexpr int V = W / 8;
    for (int e = threadIdx.x; e < TT * V; e += blockDim.x) {
        const int j = e / V, v = e % V;
        if (j >= nvalid) continue;
        const float *s = src + j * W + v * 8;
        uint4 u;
        __nv_bfloat162 *p2 = reinterpret_cast<__nv_bfloat162 *>(&u);
#pragma unroll
        for (int k = 0; k < 4; k++) p2[k] = __floats2bfloat162_rn(s[2 * k], s[2 * k + 1]);
        *reinterpret_cast<uint4 *>(dst + (row0 + j) * stride + v * 8) = u;
    }
}

/* Sum over the 8 lanes of a warp that share q (lane bits 2..4) of v[NV]: halving exchanges, so
 * after three steps lane keeps NV/8 sums; returns them in v[0 .. NV/8) and their original
 * indices are i = sel * (NV/8) + j with sel = 4*bit4 + 2*bit3 + bit2 of the lane. */
template <int NV>
__device__ __forceinline__ void reduce_over_p(float (&v)[NV]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int step = 0; step < 3; step++) {
        const int mask = 16 >> step, half = NV >> (step + 1);
        const bool up = lane & mask;
#pragma unroll
        for (int j = 0; j < half; j++) {
            const float lo = v[j], hi = v[j + half];
            const float send = up ? lo : hi, keep = up ? hi : lo;
            v[j] = keep + __shfl_xor_sync(0xffffffffu, send, mask);
        }
    }
}

template <int NV>
__device__ __forceinline__ int reduced_n(int j) {
    const int lane = threadIdx.x & 31, q = lane & 3;
    const int sel = ((lane >> 4) & 1) * 4 + ((lane >> 3) & 1) * 2 + ((lane >> 2) & 1);
    const int i = sel * (NV / 8) + j;
    return (i / 4) * 16 + q * 4 + (i % 4);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int m = 16; m; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}

/* dt' and dA of the tile's tokens into dtp[TT], dA[TT] (dt' = 0, dA = 1 past the end). */
__device__ __forceinline__ void load_dt(float *dtp, float *dAv, float *sg, const args &a, int64_t row0, int h, int nvalid) {
    for (int j = threadIdx.x; j < TT; j += blockDim.x) {
        float d = 0.0f, e = 1.0f, s = 0.0f;
        if (j < nvalid) {
            float u = a.dt[(row0 + j) * a.H + h] + (a.dt_bias ? a.dt_bias[h] : 0.0f);
            d = softplus(u);
            e = __expf(d * a.A[h]);
            s = sigm(u);
        }
        dtp[j] = d, dAv[j] = e;
        if (sg) sg[j] = s;
    }
}

/* Forward over one chunk. LOCAL: from zero, write st (local end state) and decay. Else from
 * st (incoming state), write y. */
template <int P, int N, bool LOCAL>
__global__ void __launch_bounds__(P * 4) chunk_fwd(args a) {
    constexpr int NV = N / 4;
    __shared__ __align__(16) float xs[TT][P], zs[TT][P], ys[TT][P], Bs[TT][N], Cs[TT][N];
    __shared__ float dtp[TT], dAv[TT];
    const int tid = threadIdx.x, p = tid >> 2, q = tid & 3;
    const int64_t h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (a.H / a.G);
    const int64_t t_begin = c * a.T, t_end = min(t_begin + a.T, a.L);
    float *stp = a.st + ((b * a.nch + c) * a.H + h) * (int64_t)(P * N);
    float hs[NV];
#pragma unroll
    for (int i = 0; i < NV / 4; i++) {
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (!LOCAL) v = *reinterpret_cast<const float4 *>(stp + p * N + i * 16 + q * 4);
        hs[4 * i] = v.x, hs[4 * i + 1] = v.y, hs[4 * i + 2] = v.z, hs[4 * i + 3] = v.w;
    }
    const float Dh = a.D ? a.D[h] : 0.0f;
    float logdecay = 0.0f;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += TT) {
        const int nvalid = (int)min((int64_t)TT, t_end - t0);
        const int64_t row0 = b * a.L + t0;
        load_rows<P>(&xs[0][0], a.x + h * P, row0, a.H * P, nvalid);
        load_rows<N>(&Bs[0][0], a.Bm + g * N, row0, a.G * N, nvalid);
        if (!LOCAL) {
            load_rows<N>(&Cs[0][0], a.Cm + g * N, row0, a.G * N, nvalid);
            if (a.z) load_rows<P>(&zs[0][0], a.z + h * P, row0, a.H * P, nvalid);
        }
        load_dt(dtp, dAv, nullptr, a, row0, (int)h, nvalid);
        __syncthreads();
        for (int j = 0; j < nvalid; j++) {
            const float dA = dAv[j], xp = xs[j][p] * dtp[j];
            if (LOCAL) logdecay += dtp[j] * a.A[h];
            float acc = 0.0f;
#pragma unroll
            for (int i = 0; i < NV / 4; i++) {
                const float4 bv = *reinterpret_cast<const float4 *>(&Bs[j][i * 16 + q * 4]);
                hs[4 * i] = dA * hs[4 * i] + xp * bv.x;
                hs[4 * i + 1] = dA * hs[4 * i + 1] + xp * bv.y;
                hs[4 * i + 2] = dA * hs[4 * i + 2] + xp * bv.z;
                hs[4 * i + 3] = dA * hs[4 * i + 3] + xp * bv.w;
                if (!LOCAL) {
                    const float4 cv = *reinterpret_cast<const float4 *>(&Cs[j][i * 16 + q * 4]);
                    acc += hs[4 * i] * cv.x + hs[4 * i + 1] * cv.y + hs[4 * i + 2] * cv.z + hs[4 * i + 3] * cv.w;
                }
            }
            if (!LOCAL) {
                acc += __shfl_xor_sync(0xffffffffu, acc, 1);
                acc += __shfl_xor_sync(0xffffffffu, acc, 2);
                if (q == 0) {
                    float yv = acc + Dh * xs[j][p];
                    if (a.z) {
                        const float zv = zs[j][p];
                        yv *= zv * sigm(zv);
                    }
                    ys[j][p] = yv;
                }
            }
        }
        __syncthreads();
        if (!LOCAL) {
            store_rows<P>(a.y + h * P, &ys[0][0], row0, a.H * P, nvalid);
            __syncthreads();
        }
    }
    if (LOCAL) {
#pragma unroll
        for (int i = 0; i < NV / 4; i++)
            *reinterpret_cast<float4 *>(stp + p * N + i * 16 + q * 4) =
                make_float4(hs[4 * i], hs[4 * i + 1], hs[4 * i + 2], hs[4 * i + 3]);
        if (tid == 0) a.decay[(b * a.nch + c) * a.H + h] = __expf(logdecay);
    }
}

/* Forward: in[c] = run; run = decay_c run + local_c, from run = h0; hT = run.
 * Reverse:  out[c] = run; run = decay_c run + local_c, from run = dhT; dh0 = run.
 * One thread per (b, h, element); st is overwritten in place. */
__global__ void state_pass(float *st, const float *decay, const float *init, float *fin, int64_t H, int64_t nch,
                           int64_t PN, int reverse) {
    const int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, b = blockIdx.z;
    if (e >= PN) return;
    float run = init ? init[(b * H + h) * PN + e] : 0.0f;
    for (int64_t k = 0; k < nch; k++) {
        const int64_t c = reverse ? nch - 1 - k : k;
        float *p = st + ((b * nch + c) * H + h) * PN + e;
        const float loc = *p;
        *p = run;
        run = decay[(b * nch + c) * H + h] * run + loc;
    }
    if (fin) fin[(b * H + h) * PN + e] = run;
}

/* g = dy * silu(z) (or dy) into gs[TT][P] from loaded dy (in gs) and z (in zs). */
template <int P>
__device__ __forceinline__ void gate_grad(float (*gs)[P], const float (*zs)[P], bool has_z) {
    if (!has_z) return;
    for (int e = threadIdx.x; e < TT * P; e += blockDim.x) {
        const float zv = zs[e / P][e % P];
        gs[e / P][e % P] *= zv * sigm(zv);
    }
}

/* Reverse recurrence of dh over the chunk from zero: dh_t = g_t C_t^T + dA_{t+1} dh_{t+1};
 * writes dA_first * dh_first (the gradient into the state before the chunk). */
template <int P, int N>
__global__ void __launch_bounds__(P * 4) chunk_dh_local(args a) {
    constexpr int NV = N / 4;
    __shared__ __align__(16) float gs[TT][P], zs[TT][P], Cs[TT][N];
    __shared__ float dtp[TT], dAv[TT];
    const int tid = threadIdx.x, p = tid >> 2, q = tid & 3;
    const int64_t h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (a.H / a.G);
    const int64_t t_begin = c * a.T, t_end = min(t_begin + a.T, a.L);
    float dh[NV];
#pragma unroll
    for (int i = 0; i < NV; i++) dh[i] = 0.0f;
    const int64_t ntile = (t_end - t_begin + TT - 1) / TT;
    for (int64_t k = ntile - 1; k >= 0; k--) {
        const int64_t t0 = t_begin + k * TT;
        const int nvalid = (int)min((int64_t)TT, t_end - t0);
        const int64_t row0 = b * a.L + t0;
        load_rows<P>(&gs[0][0], a.dy + h * P, row0, a.H * P, nvalid);
        if (a.z) load_rows<P>(&zs[0][0], a.z + h * P, row0, a.H * P, nvalid);
        load_rows<N>(&Cs[0][0], a.Cm + g * N, row0, a.G * N, nvalid);
        load_dt(dtp, dAv, nullptr, a, row0, (int)h, nvalid);
        __syncthreads();
        gate_grad<P>(gs, zs, a.z != nullptr);
        __syncthreads();
        for (int j = nvalid - 1; j >= 0; j--) {
            const float gp = gs[j][p], dA = dAv[j];
#pragma unroll
            for (int i = 0; i < NV / 4; i++) {
                const float4 cv = *reinterpret_cast<const float4 *>(&Cs[j][i * 16 + q * 4]);
                dh[4 * i] = dA * (dh[4 * i] + gp * cv.x);
                dh[4 * i + 1] = dA * (dh[4 * i + 1] + gp * cv.y);
                dh[4 * i + 2] = dA * (dh[4 * i + 2] + gp * cv.z);
                dh[4 * i + 3] = dA * (dh[4 * i + 3] + gp * cv.w);
            }
        }
        __syncthreads();
    }
    float *o = a.dst + ((b * a.nch + c) * a.H + h) * (int64_t)(P * N);
#pragma unroll
    for (int i = 0; i < NV / 4; i++)
        *reinterpret_cast<float4 *>(o + p * N + i * 16 + q * 4) = make_float4(dh[4 * i], dh[4 * i + 1], dh[4 * i + 2], dh[4 * i + 3]);
}

/* Block-wide sum (P*4 threads), result valid in every thread. red: >= 32 floats of shared memory. */
__device__ __forceinline__ float block_sum(float v, float *red) {
    v = warp_sum(v);
    const int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[w] = v;
    __syncthreads();
    float s = 0.0f;
    for (int i = 0; i < nw; i++) s += red[i];
    __syncthreads();
    return s;
}

constexpr int TMAX_BWD = 256; /* the backward's chunk length cap (per-token scalars in shared memory) */

template <int P, int N>
__global__ void __launch_bounds__(P * 4) chunk_bwd(args a) {
    constexpr int NV = N / 4;
    __shared__ __align__(16) float xs[TT][P], gs[TT][P], zs[TT][P], os[TT][P], Bs[TT][N], Cs[TT][N], acc_n[TT][N];
    __shared__ float dtp[TT], dAv[TT];
    __shared__ float w1[TMAX_BWD], xdx[TMAX_BWD], dtpc[TMAX_BWD], sgc[TMAX_BWD], red[32];
    const int tid = threadIdx.x, p = tid >> 2, q = tid & 3, lane = tid & 31;
    const int64_t h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (a.H / a.G);
    const int64_t t_begin = c * a.T, t_end = min(t_begin + a.T, a.L);
    const int64_t PN = (int64_t)P * N, sidx = ((b * a.nch + c) * a.H + h) * PN;
    const float Dh = a.D ? a.D[h] : 0.0f, Ah = a.A[h];
    const bool has_z = a.z != nullptr;
    for (int i = tid; i < a.T; i += blockDim.x) w1[i] = 0.0f, xdx[i] = 0.0f;
    for (int i = tid; i < TT * N; i += blockDim.x) (&acc_n[0][0])[i] = 0.0f;
    float hs[NV];
#pragma unroll
    for (int i = 0; i < NV / 4; i++) {
        float4 v = *reinterpret_cast<const float4 *>(a.st + sidx + p * N + i * 16 + q * 4);
        hs[4 * i] = v.x, hs[4 * i + 1] = v.y, hs[4 * i + 2] = v.z, hs[4 * i + 3] = v.w;
    }
    float dD_acc = 0.0f;
    const int64_t ntile = (t_end - t_begin + TT - 1) / TT;
    /* ---- forward phase: ys, dz, dC, <g, ys> ---- */
    for (int64_t k = 0; k < ntile; k++) {
        const int64_t t0 = t_begin + k * TT;
        const int nvalid = (int)min((int64_t)TT, t_end - t0);
        const int64_t row0 = b * a.L + t0;
        load_rows<P>(&xs[0][0], a.x + h * P, row0, a.H * P, nvalid);
        load_rows<P>(&gs[0][0], a.dy + h * P, row0, a.H * P, nvalid); /* dy for now */
        if (has_z) load_rows<P>(&zs[0][0], a.z + h * P, row0, a.H * P, nvalid);
        load_rows<N>(&Bs[0][0], a.Bm + g * N, row0, a.G * N, nvalid);
        load_rows<N>(&Cs[0][0], a.Cm + g * N, row0, a.G * N, nvalid);
        load_dt(dtp, dAv, &sgc[k * TT], a, row0, (int)h, nvalid);
        for (int j = tid; j < TT; j += blockDim.x) dtpc[k * TT + j] = 0.0f;
        __syncthreads();
        for (int j = tid; j < nvalid; j += blockDim.x) dtpc[k * TT + j] = dtp[j];
        for (int j = 0; j < nvalid; j++) {
            const float dA = dAv[j], xv = xs[j][p], xp = xv * dtp[j];
            float acc = 0.0f;
#pragma unroll
            for (int i = 0; i < NV / 4; i++) {
                const float4 bv = *reinterpret_cast<const float4 *>(&Bs[j][i * 16 + q * 4]);
                const float4 cv = *reinterpret_cast<const float4 *>(&Cs[j][i * 16 + q * 4]);
                hs[4 * i] = dA * hs[4 * i] + xp * bv.x;
                hs[4 * i + 1] = dA * hs[4 * i + 1] + xp * bv.y;
                hs[4 * i + 2] = dA * hs[4 * i + 2] + xp * bv.z;
                hs[4 * i + 3] = dA * hs[4 * i + 3] + xp * bv.w;
                acc += hs[4 * i] * cv.x + hs[4 * i + 1] * cv.y + hs[4 * i + 2] * cv.z + hs[4 * i + 3] * cv.w;
            }
            acc += __shfl_xor_sync(0xffffffffu, acc, 1);
            acc += __shfl_xor_sync(0xffffffffu, acc, 2);
            const float dyv = gs[j][p];
            float gv = dyv;
            if (has_z) {
                const float zv = zs[j][p], sz = sigm(zv);
                gv = dyv * zv * sz;
                os[j][p] = dyv * (acc + Dh * xv) * sz * (1.0f + zv * (1.0f - sz)); /* dz */
            }
            /* <g, ys> and dD: one lane per p contributes */
            float s1 = q == 0 ? gv * acc : 0.0f;
            if (q == 0) dD_acc += gv * xv;
            s1 = warp_sum(s1);
            if (lane == 0) atomicAdd(&w1[k * TT + j], s1);
            /* dC_t[n] = sum_p g[p] h[p, n] */
            float v[NV];
#pragma unroll
            for (int i = 0; i < NV; i++) v[i] = gv * hs[i];
            reduce_over_p<NV>(v);
#pragma unroll
            for (int jj = 0; jj < NV / 8; jj++) atomicAdd(&acc_n[j][reduced_n<NV>(jj)], v[jj]);
        }
        __syncthreads();
        if (has_z) store_rows<P>(a.dz + h * P, &os[0][0], row0, a.H * P, nvalid);
        for (int e = tid; e < nvalid * N; e += blockDim.x) {
            const int j = e / N, n = e % N;
            atomicAdd(a.dCm + (row0 + j) * a.G * N + g * N + n, acc_n[j][n]);
            acc_n[j][n] = 0.0f;
        }
        __syncthreads();
    }
    /* ---- reverse phase: dx, dB, <x, dh B>; E_out = <dh_out, h_out> ---- */
    float dh[NV], e_part = 0.0f;
#pragma unroll
    for (int i = 0; i < NV / 4; i++) {
        float4 v = *reinterpret_cast<const float4 *>(a.dst + sidx + p * N + i * 16 + q * 4);
        dh[4 * i] = v.x, dh[4 * i + 1] = v.y, dh[4 * i + 2] = v.z, dh[4 * i + 3] = v.w;
        e_part += v.x * hs[4 * i] + v.y * hs[4 * i + 1] + v.z * hs[4 * i + 2] + v.w * hs[4 * i + 3];
    }
    const float E_out = block_sum(e_part, red);
    for (int64_t k = ntile - 1; k >= 0; k--) {
        const int64_t t0 = t_begin + k * TT;
        const int nvalid = (int)min((int64_t)TT, t_end - t0);
        const int64_t row0 = b * a.L + t0;
        load_rows<P>(&xs[0][0], a.x + h * P, row0, a.H * P, nvalid);
        load_rows<P>(&gs[0][0], a.dy + h * P, row0, a.H * P, nvalid);
        if (has_z) load_rows<P>(&zs[0][0], a.z + h * P, row0, a.H * P, nvalid);
        load_rows<N>(&Bs[0][0], a.Bm + g * N, row0, a.G * N, nvalid);
        load_rows<N>(&Cs[0][0], a.Cm + g * N, row0, a.G * N, nvalid);
        load_dt(dtp, dAv, nullptr, a, row0, (int)h, nvalid);
        __syncthreads();
        gate_grad<P>(gs, zs, has_z);
        __syncthreads();
        for (int j = nvalid - 1; j >= 0; j--) {
            const float gp = gs[j][p], xv = xs[j][p], dA = dAv[j], dtv = dtp[j];
            float acc = 0.0f;
#pragma unroll
            for (int i = 0; i < NV / 4; i++) {
                const float4 cv = *reinterpret_cast<const float4 *>(&Cs[j][i * 16 + q * 4]);
                const float4 bv = *reinterpret_cast<const float4 *>(&Bs[j][i * 16 + q * 4]);
                dh[4 * i] += gp * cv.x;
                dh[4 * i + 1] += gp * cv.y;
                dh[4 * i + 2] += gp * cv.z;
                dh[4 * i + 3] += gp * cv.w;
                acc += dh[4 * i] * bv.x + dh[4 * i + 1] * bv.y + dh[4 * i + 2] * bv.z + dh[4 * i + 3] * bv.w;
            }
            acc += __shfl_xor_sync(0xffffffffu, acc, 1);
            acc += __shfl_xor_sync(0xffffffffu, acc, 2);
            if (q == 0) os[j][p] = dtv * acc + Dh * gp; /* dx */
            float s2 = q == 0 ? xv * acc : 0.0f;
            s2 = warp_sum(s2);
            if (lane == 0) atomicAdd(&xdx[k * TT + j], s2);
            float v[NV];
#pragma unroll
            for (int i = 0; i < NV; i++) v[i] = dtv * xv * dh[i];
            reduce_over_p<NV>(v);
#pragma unroll
            for (int jj = 0; jj < NV / 8; jj++) atomicAdd(&acc_n[j][reduced_n<NV>(jj)], v[jj]);
#pragma unroll
            for (int i = 0; i < NV; i++) dh[i] *= dA;
        }
        __syncthreads();
        store_rows<P>(a.dx + h * P, &os[0][0], row0, a.H * P, nvalid);
        for (int e = tid; e < nvalid * N; e += blockDim.x) {
            const int j = e / N, n = e % N;
            atomicAdd(a.dBm + (row0 + j) * a.G * N + g * N + n, acc_n[j][n]);
            acc_n[j][n] = 0.0f;
        }
        __syncthreads();
    }
    /* ---- per-token scalars: R_t suffix sums, ddt, dA, ddt_bias ---- */
    const int nt = (int)(t_end - t_begin);
    if (tid == 0) {
        float R = E_out;
        for (int t = nt - 1; t >= 0; t--) {
            R += w1[t] - dtpc[t] * xdx[t];
            w1[t] = R; /* now R_t */
        }
    }
    __syncthreads();
    float dA_part = 0.0f, db_part = 0.0f;
    for (int t = tid; t < nt; t += blockDim.x) {
        const float ddtp = xdx[t] + w1[t] * Ah;
        const float dd = ddtp * sgc[t];
        a.ddt[(b * a.L + t_begin + t) * a.H + h] = dd;
        dA_part += w1[t] * dtpc[t];
        db_part += dd;
    }
    const float sA = block_sum(dA_part, red), sb = block_sum(db_part, red), sD = block_sum(dD_acc, red);
    if (tid == 0) {
        if (a.dA) atomicAdd(a.dA + h, sA);
        if (a.ddt_bias) atomicAdd(a.ddt_bias + h, sb);
        if (a.dD) atomicAdd(a.dD + h, sD);
    }
}

/* One token: state [B, H, P, N] in place; y [B, H, P]. Grid (H, B), P*4 threads. */
template <int P, int N>
__global__ void __launch_bounds__(P * 4) scan_decode(const __nv_bfloat16 *__restrict__ x, const float *__restrict__ dt,
                                                       const float *__restrict__ dt_bias, const float *__restrict__ A,
                                                       const __nv_bfloat16 *__restrict__ Bm, const __nv_bfloat16 *__restrict__ Cm,
                                                       const float *__restrict__ D, const __nv_bfloat16 *__restrict__ z,
                                                       float *__restrict__ state, __nv_bfloat16 *__restrict__ y, int64_t H, int64_t G) {
    constexpr int NV = N / 4;
    const int tid = threadIdx.x, p = tid >> 2, q = tid & 3;
    const int64_t h = blockIdx.x, b = blockIdx.y, g = h / (H / G);
    const float dtv = softplus(dt[b * H + h] + (dt_bias ? dt_bias[h] : 0.0f)), dA = __expf(dtv * A[h]);
    const float xv = __bfloat162float(x[(b * H + h) * P + p]), xp = dtv * xv;
    float *st = state + ((b * H + h) * P + p) * (int64_t)N;
    const __nv_bfloat16 *bb = Bm + (b * G + g) * N, *cc = Cm + (b * G + g) * N;
    float acc = 0.0f;
#pragma unroll
    for (int i = 0; i < NV / 4; i++) {
        const int n = i * 16 + q * 4;
        float4 s = *reinterpret_cast<float4 *>(st + n);
        s.x = dA * s.x + xp * __bfloat162float(bb[n]);
        s.y = dA * s.y + xp * __bfloat162float(bb[n + 1]);
        s.z = dA * s.z + xp * __bfloat162float(bb[n + 2]);
        s.w = dA * s.w + xp * __bfloat162float(bb[n + 3]);
        acc += s.x * __bfloat162float(cc[n]) + s.y * __bfloat162float(cc[n + 1]) + s.z * __bfloat162float(cc[n + 2]) +
               s.w * __bfloat162float(cc[n + 3]);
        *reinterpret_cast<float4 *>(st + n) = s;
    }
    acc += __shfl_xor_sync(0xffffffffu, acc, 1);
    acc += __shfl_xor_sync(0xffffffffu, acc, 2);
    if (q == 0) {
        float yv = acc + (D ? D[h] : 0.0f) * xv;
        if (z) {
            const float zv = __bfloat162float(z[(b * H + h) * P + p]);
            yv *= zv * sigm(zv);
        }
        y[(b * H + h) * P + p] = __float2bfloat16(yv);
    }
}

} // namespace mamba_scan
#endif
