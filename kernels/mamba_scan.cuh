/* mamba_scan.cuh — CUDA kernels of the Mamba-2 scan (math and layouts in mamba.h), chunk-parallel:
 *   chunk_fwd<LOCAL=1>  per (b, chunk, h): the recurrence from a zero state over the chunk; writes
 *                       the local end state and the chunk's total decay prod(dA)
 *   state_pass          per (b, h, state element): walks the chunks in order (or in reverse for
 *                       the backward) and turns local states into each chunk's incoming state
 *   chunk_fwd<LOCAL=0>  per (b, chunk, h): the recurrence from the incoming state; writes y
 *   scan_decode         one token with the state in place
 * plus the helpers the other scan files share (tile loads, dt, sums). chunk_fwd is the fp32
 * forward used for (P, N) = (32, 64); P = 64 runs the tensor-core forward of mamba_ssd.cuh, and
 * the backward's chunk kernels are in mamba_bwd.cuh.
 * Grids are (H, chunks, B) with the head fastest: the heads of one chunk run together and share
 * its B and C rows (and the dB, dC atomics) in L2.
 * Thread layout of chunk_fwd and scan_decode: P*4 threads; thread (p, q) owns the state row p at
 * columns n = i*16 + q*4 + k (i < N/16, k < 4): float4 reads of B and C rows in shared memory are
 * then free of bank conflicts, and sums over n are a 4-lane shuffle.
 *
 * The backward's ddA without storing every state: with R_t = d loss / d log(dA_t) =
 * <dh_t, dA_t h_{t-1}>, u_t = dt'_t x_t B_t^T and ys_t = h_t C_t, one gets
 * R_t = R_{t+1} + <g_t, ys_t> - <dh_t, u_t>, and at the end of a chunk R_T = <dh_out, h_out>. So R
 * is a suffix sum of two per-token scalars that the forward and the reverse phase of a chunk
 * produce separately (g = dy * silu(z) is the gradient into ys + D x). Included by mamba.cu only. */
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
    __nv_bfloat16 *scratch; /* ssd_bwd: per block, the incoming state of each sub-chunk */
    int64_t B, L, H, G, T, nch;
};

__device__ __forceinline__ float softplus(float v) { return v > 20.0f ? v : log1pf(__expf(v)); }
__device__ __forceinline__ float sigm(float v) { return 1.0f / (1.0f + __expf(-v)); }
/* One warp's pass over a 64-token sub-chunk's decay, lane l holding tokens 2l and 2l+1 (r0, r1 =
 * dt + dt_bias): dt' = softplus(r) (0 at or past nvalid), the inclusive cumulative log decay
 * c_t = sum_{s<=t} dt'_s A and its value at the sub-chunk's end. Shared by the SSD forward and
 * backward kernels. */
struct decay_pair {
    float d0, d1, c0, c1, cend;
};
__device__ __forceinline__ decay_pair decay_scan(float r0, float r1, float Ah, int nvalid, int l) {
    decay_pair p;
    p.d0 = 2 * l < nvalid ? softplus(r0) : 0.0f;
    p.d1 = 2 * l + 1 < nvalid ? softplus(r1) : 0.0f;
    const float v0 = p.d0 * Ah, v1 = p.d1 * Ah;
    float s = v0 + v1;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float t = __shfl_up_sync(0xffffffffu, s, o);
        if (l >= o) s += t;
    }
    p.cend = __shfl_sync(0xffffffffu, s, 31);
    p.c0 = s - v1;
    p.c1 = s;
    return p;
}
/* exp(x) as one ex2.approx.ftz (the non-ftz __expf adds a denormal range fix-up: 2 FMUL + FSETP) */
__device__ __forceinline__ float fexp(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x * 1.4426950408889634f));
    return y;
}

/* rows [row0, row0+TT) of a [.., W] bf16 tensor with row stride `stride` elements, into
 * dst[TT][W] fp32; rows at or past nvalid are zero. W % 8 == 0. In two halves: fetch() issues
 * this thread's 16-byte loads into registers, put() converts and stores them, so a kernel can
 * have the loads of every tensor of a tile in flight before the first store waits on one. */
template <int W, int NT>
struct rows {
    static constexpr int V = W / 8, IT = (TT * V + NT - 1) / NT;
    uint4 u[IT];
    __device__ __forceinline__ void fetch(const __nv_bfloat16 *src, int64_t row0, int64_t stride, int nvalid) {
#pragma unroll
        for (int it = 0; it < IT; it++) {
            const int e = threadIdx.x + it * NT, j = e / V, v = e % V;
            u[it] = make_uint4(0, 0, 0, 0);
            if (e < TT * V && j < nvalid) u[it] = *reinterpret_cast<const uint4 *>(src + (row0 + j) * stride + v * 8);
        }
    }
    __device__ __forceinline__ void put(float *dst) const {
#pragma unroll
        for (int it = 0; it < IT; it++) {
            const int e = threadIdx.x + it * NT, j = e / V, v = e % V;
            if (e >= TT * V) break;
            float *o = dst + j * W + v * 8;
            const __nv_bfloat162 *p2 = reinterpret_cast<const __nv_bfloat162 *>(&u[it]);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const float2 f = __bfloat1622float2(p2[k]);
                o[2 * k] = f.x, o[2 * k + 1] = f.y;
            }
        }
    }
};

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

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int m = 16; m; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}

/* Inclusive suffix sum over the lanes of a warp: lane l gets the sum of v over lanes l .. 31. */
__device__ __forceinline__ float warp_suffix_sum(float v, int lane) {
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float u = __shfl_down_sync(0xffffffffu, v, o);
        if (lane + o < 32) v += u;
    }
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
        rows<P, P * 4> rx, rz;
        rows<N, P * 4> rb, rc;
        rx.fetch(a.x + h * P, row0, a.H * P, nvalid);
        rb.fetch(a.Bm + g * N, row0, a.G * N, nvalid);
        if (!LOCAL) {
            rc.fetch(a.Cm + g * N, row0, a.G * N, nvalid);
            if (a.z) rz.fetch(a.z + h * P, row0, a.H * P, nvalid);
        }
        rx.put(&xs[0][0]);
        rb.put(&Bs[0][0]);
        if (!LOCAL) {
            rc.put(&Cs[0][0]);
            if (a.z) rz.put(&zs[0][0]);
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
 * One thread per (b, h, 4 elements) with float4 loads of U chunks in flight; st is overwritten in
 * place. (One float per thread and 8 chunks in flight ran at ~1 TB/s, latency-bound.) PN % 4 == 0. */
__global__ void state_pass(float *st, const float *decay, const float *init, float *fin, int64_t H, int64_t nch,
                           int64_t PN, int reverse) {
    const int64_t e = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 4, h = blockIdx.y, b = blockIdx.z;
    if (e >= PN) return;
    float4 run = init ? *reinterpret_cast<const float4 *>(init + (b * H + h) * PN + e) : make_float4(0.f, 0.f, 0.f, 0.f);
    constexpr int U = 8;
    const int64_t cstride = H * PN; /* elements between consecutive chunks */
    float *base = st + (b * nch * H + h) * PN + e;
    for (int64_t k0 = 0; k0 < nch; k0 += U) {
        float4 loc[U];
        float dec[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t k = k0 + u, c = reverse ? nch - 1 - k : k;
            loc[u] = k < nch ? *reinterpret_cast<const float4 *>(base + c * cstride) : make_float4(0.f, 0.f, 0.f, 0.f);
            dec[u] = k < nch ? decay[(b * nch + c) * H + h] : 1.0f;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t k = k0 + u, c = reverse ? nch - 1 - k : k;
            if (k < nch) *reinterpret_cast<float4 *>(base + c * cstride) = run;
            run.x = dec[u] * run.x + loc[u].x, run.y = dec[u] * run.y + loc[u].y;
            run.z = dec[u] * run.z + loc[u].z, run.w = dec[u] * run.w + loc[u].w;
        }
    }
    if (fin) *reinterpret_cast<float4 *>(fin + (b * H + h) * PN + e) = run;
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

constexpr int TMAX_BWD = 512; /* the backward's chunk length cap (per-token scalars in shared memory) */

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
