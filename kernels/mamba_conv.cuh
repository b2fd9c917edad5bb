/* mamba_conv.cuh — CUDA kernels of the causal depthwise conv1d + SiLU (math and layouts in
 * mamba.h). Bandwidth kernels: each thread owns one channel and walks a run of tokens, keeping
 * the last Kw inputs in registers, so x is read once and y written once (adjacent threads hold
 * adjacent channels, so each token row is read coalesced). Included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_CONV_CUH
#define LONGCTX_MAMBA_CONV_CUH

#include "cuda_common.cuh"

namespace mamba_conv {

constexpr int TOK = 64; /* tokens per thread run */

__device__ __forceinline__ float silu(float v) { return v / (1.0f + __expf(-v)); }
__device__ __forceinline__ float dsilu(float v) {
    float s = 1.0f / (1.0f + __expf(-v));
    return s * (1.0f + v * (1.0f - s));
}

/* xx[t] of mamba.h for one channel */
__device__ __forceinline__ float xx_at(const __nv_bfloat16 *x, const __nv_bfloat16 *tail_in, int64_t b, int64_t t,
                                       int64_t c, int64_t L, int64_t C, int K1) {
    if (t >= L) return 0.0f;
    if (t >= 0) return __bfloat162float(x[(b * L + t) * C + c]);
    if (!tail_in || t < -K1) return 0.0f;
    return __bfloat162float(tail_in[(b * K1 + K1 + t) * C + c]);
}

template <int KW>
__global__ void conv_fwd(const __nv_bfloat16 *__restrict__ x, const float *__restrict__ w, const float *__restrict__ bias,
                         const __nv_bfloat16 *__restrict__ tail_in, __nv_bfloat16 *__restrict__ y,
                         __nv_bfloat16 *__restrict__ tail_out, int64_t L, int64_t C) {
    constexpr int K1 = KW - 1;
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.z;
    if (c >= C) return;
    const int64_t t0 = (int64_t)blockIdx.y * TOK;
    float wk[KW], win[KW];
#pragma unroll
    for (int k = 0; k < KW; k++) wk[k] = w[c * KW + k];
    const float bs = bias ? bias[c] : 0.0f;
#pragma unroll
    for (int k = 0; k < K1; k++) win[k] = xx_at(x, tail_in, b, t0 - K1 + k, c, L, C, K1);
    const int64_t t1 = min(t0 + TOK, L);
    for (int64_t t = t0; t < t1; t++) {
        win[K1] = __bfloat162float(x[(b * L + t) * C + c]);
        float acc = bs;
#pragma unroll
        for (int k = 0; k < KW; k++) acc += wk[k] * win[k];
        y[(b * L + t) * C + c] = __float2bfloat16(silu(acc));
#pragma unroll
        for (int k = 0; k < K1; k++) win[k] = win[k + 1];
    }
    if (tail_out && t1 == L) /* the block holding the last token writes the tail */
        for (int j = 0; j < K1; j++) {
            int64_t t = L - K1 + j;
            float v = xx_at(x, tail_in, b, t, c, L, C, K1);
            tail_out[(b * K1 + j) * C + c] = __float2bfloat16(v);
        }
}

/* Backward. Gradient into xx[ti] (ti in -K1..L-1): sum_k w[k] s[ti + K1 - k] (+ dtail_out for the
 * last K1 positions), s = dy * silu'(pre). A thread walks its run of ti with rings of the last
 * KW inputs (to get pre) and the last KW values of s; runs are strided over grid.y so dweight and
 * dbias are summed in registers and added with one atomic per thread. */
template <int KW>
__global__ void conv_bwd(const __nv_bfloat16 *__restrict__ x, const float *__restrict__ w, const float *__restrict__ bias,
                         const __nv_bfloat16 *__restrict__ tail_in, const __nv_bfloat16 *__restrict__ dy,
                         const __nv_bfloat16 *__restrict__ dtail_out, __nv_bfloat16 *__restrict__ dx,
                         float *__restrict__ dw, float *__restrict__ db, __nv_bfloat16 *__restrict__ dtail_in,
                         int64_t L, int64_t C) {
    constexpr int K1 = KW - 1;
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.z;
    if (c >= C) return;
    float wk[KW];
#pragma unroll
    for (int k = 0; k < KW; k++) wk[k] = w[c * KW + k];
    const float bs = bias ? bias[c] : 0.0f;
    float dwk[KW], dbs = 0.0f;
#pragma unroll
    for (int k = 0; k < KW; k++) dwk[k] = 0.0f;
    const int64_t nrun = (L + TOK - 1) / TOK;
    for (int64_t run = blockIdx.y; run < nrun; run += gridDim.y) {
        const int64_t r0 = run * TOK, r1 = min(r0 + TOK, L);
        /* positions ti whose gradient this run writes; the first run also owns the tail */
        const int64_t ti0 = run == 0 ? -K1 : r0;
        float xw[KW], sw[KW];
        /* xw holds xx[tp-K1 .. tp] for the tp whose s is being computed; start at tp = ti0 */
#pragma unroll
        for (int k = 0; k < K1; k++) xw[k + 1] = xx_at(x, tail_in, b, ti0 - K1 + k, c, L, C, K1);
#pragma unroll
        for (int k = 0; k < KW; k++) sw[k] = 0.0f;
        /* sw[k] = s[tp - K1 + k] after pushing s[tp] */
        for (int64_t tp = ti0; tp < r1 + K1; tp++) {
#pragma unroll
            for (int k = 0; k < K1; k++) xw[k] = xw[k + 1];
            xw[K1] = xx_at(x, tail_in, b, tp, c, L, C, K1);
            float s = 0.0f;
            if (tp >= 0 && tp < L) {
                float acc = bs;
#pragma unroll
                for (int k = 0; k < KW; k++) acc += wk[k] * xw[k];
                s = __bfloat162float(dy[(b * L + tp) * C + c]) * dsilu(acc);
                if (tp >= r0 && tp < r1) { /* own token: parameter gradients */
                    dbs += s;
#pragma unroll
                    for (int k = 0; k < KW; k++) dwk[k] += s * xw[k];
                }
            }
#pragma unroll
            for (int k = 0; k < K1; k++) sw[k] = sw[k + 1];
            sw[K1] = s;
            const int64_t ti = tp - K1; /* now sw[j] = s[ti + j] */
            if (ti >= ti0 && ti < r1) {
                float g = 0.0f;
#pragma unroll
                for (int k = 0; k < KW; k++) g += wk[k] * sw[K1 - k];
                if (dtail_out && ti >= L - K1) g += __bfloat162float(dtail_out[(b * K1 + (ti - (L - K1))) * C + c]);
                if (ti >= 0) dx[(b * L + ti) * C + c] = __float2bfloat16(g);
                else if (dtail_in) dtail_in[(b * K1 + K1 + ti) * C + c] = __float2bfloat16(g);
            }
        }
    }
    atomicAdd(db + c, dbs);
#pragma unroll
    for (int k = 0; k < KW; k++) atomicAdd(dw + c * KW + k, dwk[k]);
}

template <int KW>
__global__ void conv_decode(const __nv_bfloat16 *__restrict__ x, const float *__restrict__ w, const float *__restrict__ bias,
                            __nv_bfloat16 *__restrict__ tail, __nv_bfloat16 *__restrict__ y, int64_t C) {
    constexpr int K1 = KW - 1;
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (c >= C) return;
    float acc = bias ? bias[c] : 0.0f, win[KW];
#pragma unroll
    for (int k = 0; k < K1; k++) win[k] = __bfloat162float(tail[(b * K1 + k) * C + c]);
    win[K1] = __bfloat162float(x[b * C + c]);
#pragma unroll
    for (int k = 0; k < KW; k++) acc += w[c * KW + k] * win[k];
    y[b * C + c] = __float2bfloat16(silu(acc));
#pragma unroll
    for (int k = 0; k < K1; k++) tail[(b * K1 + k) * C + c] = __float2bfloat16(win[k + 1]);
}

} // namespace mamba_conv
#endif
