/* ops.cu — CUDA twins of the common ops (ops.h): GEMMs through cuBLAS (bf16 or fp32 in, fp32
 * accumulate), and plain kernels for RMSNorm, RoPE, SwiGLU, embedding, cross-entropy, AdamW.
 * These are memory-bound ops: each kernel reads its inputs once and writes its outputs once
 * (the scalar RMSNorm path's dweight and the sorted embedding backward re-read their inputs once
 * more to stay deterministic; the small-vocabulary embedding backward is a one-hot GEMM). Activations are `dt` (bf16 or fp32, see ops.h), math is fp32, row reductions
 * that feed a scalar loss are fp64. Process state (cuBLAS handle, status word) is created on
 * first use: see ops.h. */
#include <cublas_v2.h>
#include <cub/device/device_radix_sort.cuh>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "cuda_common.cuh"
#include "ops.h"

extern "C" lc_status ops_adamw_check(const char *fn, int64_t n, const float *p, const float *grad,
                                     const float *m, const float *v, const struct ops_adamw *h);

namespace {

typedef __nv_bfloat16 bf16;

/* ---- process state ----------------------------------------------------------------------- */

struct ops_state {
    cublasHandle_t blas;
    unsigned long long *d_status; /* first bad row, ULLONG_MAX when none */
    unsigned long long *h_status; /* pinned twin */
};
ops_state g_state; /* zero until first use; see ops.h */

/* Stream-ordered scratch (cudaMallocAsync) comes from the default pool; with its default release
 * threshold (0) every synchronization hands the memory back and the next allocation maps it
 * again. Keep it in the pool (once per process). */
void keep_pool(void) {
    static int done;
    if (done) return;
    done = 1;
    int dev = 0;
    cudaMemPool_t pool;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
        uint64_t t = UINT64_MAX;
        cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &t);
    }
    cudaGetLastError();
}

lc_status state_get(ops_state **out) {
    keep_pool();
    if (!g_state.blas) { /* the handle is set last: it marks the state complete */
        if (!g_state.d_status) cuda_check(cudaMalloc(&g_state.d_status, sizeof(unsigned long long)));
        if (!g_state.h_status) cuda_check(cudaMallocHost(&g_state.h_status, sizeof(unsigned long long)));
        cublasHandle_t h = NULL;
        cublasStatus_t s = cublasCreate(&h);
        if (s != CUBLAS_STATUS_SUCCESS)
            return lc_errorf(LC_EDEVICE, "ops: cublasCreate failed: %s", cublasGetStatusString(s));
        g_state.blas = h;
    }
    *out = &g_state;
    return LC_OK;
}

#define blas_check(call)                                                                       \
    do {                                                                                       \
        cublasStatus_t blas_check_s_ = (call);                                                 \
        if (blas_check_s_ != CUBLAS_STATUS_SUCCESS)                                            \
            return lc_errorf(LC_EDEVICE, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call,     \
                             cublasGetStatusString(blas_check_s_));                            \
    } while (0)

#define REQUIRE_PTR(fn, p) LC_REQUIRE((p) != NULL, "%s: %s is NULL", fn, #p)
#define REQUIRE_DIM(fn, v, lo)                                                                 \
    LC_REQUIRE((v) >= (lo), "%s: %s = %lld must be >= %lld", fn, #v, (long long)(v), (long long)(lo))
#define REQUIRE_DT(fn, dt)                                                                     \
    LC_REQUIRE((dt) == OPS_F32 || (dt) == OPS_BF16, "%s: dt = %d must be OPS_F32 or OPS_BF16", fn, (dt))

__device__ __forceinline__ float ld(const float *p) { return *p; }
__device__ __forceinline__ float ld(const bf16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st(float *p, float v) { *p = v; }
__device__ __forceinline__ void st(bf16 *p, float v) { *p = __float2bfloat16(v); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

unsigned grid_for(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : (b > 65535LL * 32 ? 65535LL * 32 : b));
}

/* Threads for a block that walks one row of n values. */
unsigned row_threads(int64_t n) { return (unsigned)(n >= 256 ? 256 : (n + 31) / 32 * 32); }

/* Reset the status word before a kernel that may report a bad row. */
lc_status status_reset(ops_state *s, cudaStream_t st) {
    cuda_check(cudaMemsetAsync(s->d_status, 0xff, sizeof(unsigned long long), st));
    return LC_OK;
}
/* Synchronize and read the status word: the first bad row, or -1 when none. */
lc_status status_read(ops_state *s, cudaStream_t st, int64_t *bad_row) {
    cuda_check(cudaMemcpyAsync(s->h_status, s->d_status, sizeof(unsigned long long),
                               cudaMemcpyDeviceToHost, st));
    cuda_check(cudaStreamSynchronize(st));
    *bad_row = *s->h_status == ~0ull ? -1 : (int64_t)*s->h_status;
    return LC_OK;
}
lc_status read_id(const int32_t *ids, int64_t row, int32_t *id) {
    cuda_check(cudaMemcpy(id, ids + row, sizeof(int32_t), cudaMemcpyDeviceToHost));
    return LC_OK;
}

/* ---- RMSNorm ----------------------------------------------------------------------------- */

/* One warp per row. */
template <typename T>
__global__ void rmsnorm_fwd_kernel(int64_t R, int64_t D, float eps, const T *x, const T *w, T *y,
                                   float *rstd) {
    int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= R) return;
    const T *xr = x + r * D;
    float ss = 0;
    for (int64_t j = lane; j < D; j += 32) {
        float v = ld(xr + j);
        ss += v * v;
    }
    ss = warp_sum(ss);
    float rs = rsqrtf(ss / (float)D + eps);
    for (int64_t j = lane; j < D; j += 32) st(y + r * D + j, ld(xr + j) * rs * ld(w + j));
    if (rstd && lane == 0) rstd[r] = rs;
}

template <typename T>
__global__ void rmsnorm_bwd_dx_kernel(int64_t R, int64_t D, const T *x, const T *w,
                                      const float *rstd, const T *dy, T *dx, int acc) {
    int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= R) return;
    const T *xr = x + r * D, *dyr = dy + r * D;
    float rs = rstd[r];
    float dot = 0;
    for (int64_t j = lane; j < D; j += 32) dot += ld(w + j) * ld(dyr + j) * ld(xr + j);
    float mean = warp_sum(dot) * rs / (float)D;
    for (int64_t j = lane; j < D; j += 32) {
        float v = rs * (ld(w + j) * ld(dyr + j) - ld(xr + j) * rs * mean);
        if (acc) v += ld(dx + r * D + j);
        st(dx + r * D + j, v);
    }
}

/* Fused backward: block c owns the fixed row chunk [c*rows_per_chunk, ...); each warp takes rows
 * warp, warp + nw, ... of it, writes dx and sums dy*xh into its own shared row of dweight
 * partials (lane l always owns columns l, l+32, ...: no races); the warps' rows are then added
 * in warp order into partial[c, :]. The chunking depends only on R: deterministic. */
template <typename T>
__global__ void rmsnorm_bwd_fused_kernel(int64_t R, int64_t D, int64_t rows_per_chunk, const T *x,
                                         const T *w, const float *rstd, const T *dy, T *dx, int acc,
                                         float *partial) {
    extern __shared__ float sh_dw[]; /* [nw][D] */
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    float *mine = sh_dw + (int64_t)warp * D;
    for (int64_t j = lane; j < D; j += 32) mine[j] = 0;
    int64_t r0 = (int64_t)blockIdx.x * rows_per_chunk, r1 = r0 + rows_per_chunk;
    if (r1 > R) r1 = R;
    for (int64_t r = r0 + warp; r < r1; r += nw) {
        const T *xr = x + r * D, *dyr = dy + r * D;
        float rs = rstd[r];
        float dot = 0;
        for (int64_t j = lane; j < D; j += 32) dot += ld(w + j) * ld(dyr + j) * ld(xr + j);
        float mean = warp_sum(dot) * rs / (float)D;
        for (int64_t j = lane; j < D; j += 32) {
            float xv = ld(xr + j), dv = ld(dyr + j);
            float v = rs * (ld(w + j) * dv - xv * rs * mean);
            if (acc) v += ld(dx + r * D + j);
            st(dx + r * D + j, v);
            mine[j] += dv * xv * rs;
        }
    }
    __syncthreads();
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
        float t = 0;
        for (int k = 0; k < nw; k++) t += sh_dw[(int64_t)k * D + j];
        partial[(int64_t)blockIdx.x * D + j] = t;
    }
}

/* Wide rows (D too large for the shared partials): dx per warp, then dweight partials in a
 * second pass. Block (32 columns x 8 row lanes) sums a fixed chunk of rows; partial[c, j].
 * The chunking depends only on R, so the sum order (and the result) is fixed. */
template <typename T>
__global__ void rmsnorm_bwd_dw_partial(int64_t R, int64_t D, int64_t rows_per_chunk, const T *x,
                                       const float *rstd, const T *dy, float *partial) {
    __shared__ float sh[8][33];
    int64_t j = (int64_t)blockIdx.x * 32 + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk, r1 = r0 + rows_per_chunk;
    if (r1 > R) r1 = R;
    float s = 0;
    if (j < D)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) s += ld(dy + r * D + j) * ld(x + r * D + j) * rstd[r];
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < D) {
        float t = 0;
        for (int k = 0; k < 8; k++) t += sh[k][threadIdx.x];
        partial[(int64_t)blockIdx.y * D + j] = t;
    }
}

/* dweight[j] += sum over chunks of partial[c, j]: 32 columns x 32 chunk lanes per block (one
 * thread per column looping over 1024 chunks was latency-bound: 150 us), fixed order. */
__global__ void rmsnorm_bwd_dw_final(int64_t D, int64_t nchunk, const float *partial, float *dw) {
    __shared__ float sh[32][33];
    int64_t j = (int64_t)blockIdx.x * 32 + threadIdx.x;
    float s = 0;
    if (j < D)
        for (int64_t c = threadIdx.y; c < nchunk; c += 32) s += partial[c * D + j];
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < D) {
        float t = 0;
        for (int k = 0; k < 32; k++) t += sh[k][threadIdx.x];
        dw[j] += t;
    }
}

/* ---- RMSNorm, bf16 vectorized (D % 8 == 0, activations 16-byte aligned) -------------------
 * G lanes per row (a power of two <= 32), NV 16-byte vectors (8 bf16) per lane: D = G * NV * 8.
 * Lane l of a row group owns the columns of vectors l, l + G, ... for every row it visits, so a
 * thread's dweight partial sums fixed columns over a fixed set of rows (the grid depends only on
 * R): deterministic. A warp visits 32 / G rows at a time and its loop is warp-uniform, so the
 * full-mask shuffles inside stay convergent. One 16-byte load per vector: the scalar kernels
 * above moved 2 bytes per lane per load and were latency-bound (5x under the copy rate). */
__device__ __forceinline__ void unpack8(uint4 u, float *f) {
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
__device__ __forceinline__ uint4 pack8(const float *f) {
    uint4 u;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    return u;
}
template <int G>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <int G, int NV>
__global__ void __launch_bounds__(256) rmsnorm_fwd_vec(int64_t R, float eps, const bf16 *x, const bf16 *w, bf16 *y,
                                                       float *rstd) {
    constexpr int D = G * NV * 8, RPW = 32 / G;
    const int lane = threadIdx.x % G, sub = (threadIdx.x % 32) / G;
    float wv[NV][8];
#pragma unroll
    for (int v = 0; v < NV; v++)
#pragma unroll
        for (int i = 0; i < 8; i++) wv[v][i] = __bfloat162float(w[(v * G + lane) * 8 + i]);
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t base = ((int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32) * RPW; base < R; base += warps * RPW) {
        const int64_t r = base + sub;
        const bool ok = r < R;
        float xv[NV][8], ss = 0;
#pragma unroll
        for (int v = 0; v < NV; v++) {
            uint4 u = ok ? *(const uint4 *)(x + r * D + (v * G + lane) * 8) : make_uint4(0, 0, 0, 0);
            unpack8(u, xv[v]);
#pragma unroll
            for (int i = 0; i < 8; i++) ss += xv[v][i] * xv[v][i];
        }
        ss = group_sum<G>(ss);
        const float rs = rsqrtf(ss / (float)D + eps);
        if (!ok) continue;
#pragma unroll
        for (int v = 0; v < NV; v++) {
            float o[8];
#pragma unroll
            for (int i = 0; i < 8; i++) o[i] = xv[v][i] * rs * wv[v][i];
            *(uint4 *)(y + r * D + (v * G + lane) * 8) = pack8(o);
        }
        if (rstd && lane == 0) rstd[r] = rs;
    }
}

/* Backward: dx (+= when acc) per row; each thread's dweight partial in registers, then the block's
 * row groups are summed in group order into partial[block, :]. */
template <int G, int NV>
__global__ void __launch_bounds__(256) rmsnorm_bwd_vec(int64_t R, const bf16 *x, const bf16 *w, const float *rstd,
                                                       const bf16 *dy, bf16 *dx, int acc, float *partial) {
    constexpr int D = G * NV * 8, RPW = 32 / G;
    extern __shared__ float sh_dw[]; /* [blockDim / G][D] */
    const int lane = threadIdx.x % G, sub = (threadIdx.x % 32) / G, grp = threadIdx.x / G;
    float wv[NV][8], dw[NV][8];
#pragma unroll
    for (int v = 0; v < NV; v++)
#pragma unroll
        for (int i = 0; i < 8; i++) {
            wv[v][i] = __bfloat162float(w[(v * G + lane) * 8 + i]);
            dw[v][i] = 0;
        }
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t base = ((int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32) * RPW; base < R; base += warps * RPW) {
        const int64_t r = base + sub;
        const bool ok = r < R;
        const float rs = ok ? rstd[r] : 0.0f;
        float xv[NV][8], gv[NV][8], dot = 0;
#pragma unroll
        for (int v = 0; v < NV; v++) {
            const int64_t o = r * D + (v * G + lane) * 8;
            uint4 ux = ok ? *(const uint4 *)(x + o) : make_uint4(0, 0, 0, 0);
            uint4 ug = ok ? *(const uint4 *)(dy + o) : make_uint4(0, 0, 0, 0);
            unpack8(ux, xv[v]);
            unpack8(ug, gv[v]);
#pragma unroll
            for (int i = 0; i < 8; i++) {
                xv[v][i] *= rs; /* xh */
                dot += wv[v][i] * gv[v][i] * xv[v][i];
                dw[v][i] += gv[v][i] * xv[v][i];
            }
        }
        const float mean = group_sum<G>(dot) / (float)D;
        if (!ok) continue;
#pragma unroll
        for (int v = 0; v < NV; v++) {
            const int64_t o = r * D + (v * G + lane) * 8;
            float d[8], a[8];
            if (acc) unpack8(*(const uint4 *)(dx + o), a);
#pragma unroll
            for (int i = 0; i < 8; i++) d[i] = rs * (wv[v][i] * gv[v][i] - xv[v][i] * mean) + (acc ? a[i] : 0.0f);
            *(uint4 *)(dx + o) = pack8(d);
        }
    }
    float *mine = sh_dw + (int64_t)grp * D;
#pragma unroll
    for (int v = 0; v < NV; v++)
#pragma unroll
        for (int i = 0; i < 8; i++) mine[(v * G + lane) * 8 + i] = dw[v][i];
    __syncthreads();
    const int ng = blockDim.x / G;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        float t = 0;
        for (int k = 0; k < ng; k++) t += sh_dw[(int64_t)k * D + j];
        partial[(int64_t)blockIdx.x * D + j] = t;
    }
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* The (G, NV) for D, or 0 when the vector kernels do not apply. */
static int rms_vec_shape(int64_t D, int *G, int *NV) {
    if (D % 8) return 0;
    int64_t nvec = D / 8;
    if (nvec <= 32) {
        if (nvec & (nvec - 1)) return 0;
        *G = (int)nvec;
        *NV = 1;
        return 1;
    }
    if (nvec % 32 || nvec / 32 > 4) return 0;
    *G = 32;
    *NV = (int)(nvec / 32);
    return 1;
}

#define RMS_VEC_CASES(X) \
    X(1, 1) X(2, 1) X(4, 1) X(8, 1) X(16, 1) X(32, 1) X(32, 2) X(32, 3) X(32, 4)

/* Launch the vector forward; 0 when (D, alignment) do not fit it. */
static int rmsnorm_fwd_vec_launch(int64_t R, int64_t D, float eps, const bf16 *x, const bf16 *w, bf16 *y, float *rstd,
                                  cudaStream_t st) {
    int G, NV;
    if (!rms_vec_shape(D, &G, &NV) || !aligned16(x) || !aligned16(y)) return 0;
    int64_t rows_per_block = 8 * (32 / G);
    int64_t nb = (R + rows_per_block - 1) / rows_per_block;
    unsigned grid = (unsigned)(nb < 132 * 16 ? nb : 132 * 16);
#define X(g, nv) \
    if (G == g && NV == nv) rmsnorm_fwd_vec<g, nv><<<grid, 256, 0, st>>>(R, eps, x, w, y, rstd);
    RMS_VEC_CASES(X)
#undef X
    return 1;
}

/* The vector backward's grid for R rows: a function of R and D only (deterministic sums). */
static int64_t rmsnorm_bwd_vec_blocks(int64_t R, int G) {
    int64_t rows_per_block = 8 * (32 / G);
    int64_t nb = (R + rows_per_block - 1) / rows_per_block;
    return nb < 1024 ? nb : 1024;
}
static int rmsnorm_bwd_vec_launch(int64_t R, int64_t D, const bf16 *x, const bf16 *w, const float *rstd, const bf16 *dy,
                                  bf16 *dx, int acc, float *partial, int64_t nb, cudaStream_t st) {
    int G, NV;
    if (!rms_vec_shape(D, &G, &NV)) return 0;
    size_t shb = sizeof(float) * (size_t)(256 / G) * (size_t)D;
#define X(g, nv) \
    if (G == g && NV == nv) rmsnorm_bwd_vec<g, nv><<<(unsigned)nb, 256, shb, st>>>(R, x, w, rstd, dy, dx, acc, partial);
    RMS_VEC_CASES(X)
#undef X
    return 1;
}

/* ---- RoPE -------------------------------------------------------------------------------- */

/* Block (l, b-slice): the h angles of position l are computed once into shared memory (in
 * double, reduced mod 2pi, see ops.h), then the block rotates every head of its batch rows, with
 * consecutive threads on consecutive elements. sign = -1 rotates back (backward). */
template <typename T>
__global__ void rope_kernel(int64_t B, int64_t L, int Hn, int dh, int64_t pos0, double theta,
                            const T *in, T *out, float sign) {
    extern __shared__ float sh_cs[]; /* cos [h], sin [h] */
    int h = dh / 2, n = Hn * h;
    const double two_pi = 6.283185307179586476925286766559;
    for (int64_t l = blockIdx.x; l < L; l += gridDim.x) {
        __syncthreads(); /* the last position's angles are no longer read */
        for (int i = threadIdx.x; i < h; i += blockDim.x) {
            double a = (double)(pos0 + l) * pow(theta, -2.0 * (double)i / (double)dh);
            a -= floor(a / two_pi) * two_pi;
            float s, c;
            sincosf((float)a, &s, &c);
            sh_cs[i] = c;
            sh_cs[h + i] = s * sign;
        }
        __syncthreads();
        for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
            int64_t base = (b * L + l) * Hn * (int64_t)dh;
            for (int e = threadIdx.x; e < n; e += blockDim.x) {
                int hh = e / h, i = e - hh * h;
                int64_t o = base + (int64_t)hh * dh;
                float c = sh_cs[i], s = sh_cs[h + i];
                float x1 = ld(in + o + i), x2 = ld(in + o + i + h);
                st(out + o + i, x1 * c - x2 * s);
                st(out + o + i + h, x2 * c + x1 * s);
            }
        }
    }
}

/* ---- SwiGLU ------------------------------------------------------------------------------ */

/* Rows over blocks, columns over threads: no 64-bit division per element (it was the
 * bottleneck of a flat index). */
template <typename T>
__global__ void swiglu_fwd_kernel(int64_t R, int64_t F, int64_t ldg, const T *g, const T *u, T *y) {
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x)
        for (int64_t j = threadIdx.x; j < F; j += blockDim.x) {
            float gv = ld(g + r * ldg + j);
            st(y + r * F + j, gv / (1.0f + expf(-gv)) * ld(u + r * ldg + j));
        }
}

template <typename T>
__global__ void swiglu_bwd_kernel(int64_t R, int64_t F, int64_t ldg, const T *g, const T *u,
                                  const T *dy, T *dg, T *du) {
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x)
        for (int64_t j = threadIdx.x; j < F; j += blockDim.x) {
            int64_t o = r * ldg + j, t = r * F + j;
            float gv = ld(g + o), uv = ld(u + o), d = ld(dy + t);
            float sg = 1.0f / (1.0f + expf(-gv));
            st(dg + o, d * uv * sg * (1.0f + gv * (1.0f - sg)));
            st(du + o, d * gv * sg);
        }
}

/* bf16 pairs (F and ld even, 4-byte aligned): half the memory instructions of the scalar form. */
typedef __nv_bfloat162 bf162;
__device__ __forceinline__ float silu_f(float g) { return g / (1.0f + expf(-g)); }

__global__ void swiglu_fwd_bf16x2(int64_t R, int64_t F2, int64_t ld2, const bf162 *g, const bf162 *u,
                                  bf162 *y) {
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x)
        for (int64_t j = threadIdx.x; j < F2; j += blockDim.x) {
            float2 gv = __bfloat1622float2(g[r * ld2 + j]), uv = __bfloat1622float2(u[r * ld2 + j]);
            y[r * F2 + j] = __floats2bfloat162_rn(silu_f(gv.x) * uv.x, silu_f(gv.y) * uv.y);
        }
}

__global__ void swiglu_bwd_bf16x2(int64_t R, int64_t F2, int64_t ld2, const bf162 *g, const bf162 *u,
                                  const bf162 *dy, bf162 *dg, bf162 *du) {
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x)
        for (int64_t j = threadIdx.x; j < F2; j += blockDim.x) {
            int64_t o = r * ld2 + j;
            float2 gv = __bfloat1622float2(g[o]), uv = __bfloat1622float2(u[o]);
            float2 d = __bfloat1622float2(dy[r * F2 + j]);
            float s0 = 1.0f / (1.0f + expf(-gv.x)), s1 = 1.0f / (1.0f + expf(-gv.y));
            dg[o] = __floats2bfloat162_rn(d.x * uv.x * s0 * (1.0f + gv.x * (1.0f - s0)),
                                          d.y * uv.y * s1 * (1.0f + gv.y * (1.0f - s1)));
            du[o] = __floats2bfloat162_rn(d.x * gv.x * s0, d.y * gv.y * s1);
        }
}

static int aligned4(const void *p) { return ((uintptr_t)p & 3) == 0; }

/* ---- embedding --------------------------------------------------------------------------- */

template <typename T>
__global__ void embedding_fwd_kernel(int64_t R, int64_t V, int64_t D, const int32_t *ids,
                                     const T *table, T *out, unsigned long long *status) {
    for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
        int32_t id = ids[r];
        int bad = id < 0 || id >= V;
        if (bad && threadIdx.x == 0) atomicMin(status, (unsigned long long)r);
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
            out[r * D + j] = bad ? T(0.0f) : table[(int64_t)id * D + j];
    }
}

/* 16-byte vectors (D % 8 == 0 bf16 or D % 4 == 0 fp32, aligned rows): one warp per row; the scalar
 * kernel above moved 2 bytes per thread per row (5x under the copy rate at D = 256). */
__global__ void embedding_fwd_vec(int64_t R, int64_t V, int64_t nvec, const int32_t *ids, const uint4 *table,
                                  uint4 *out, unsigned long long *status) {
    const int lane = threadIdx.x % 32;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < R; r += warps) {
        int32_t id = ids[r];
        int bad = id < 0 || id >= V;
        if (bad && lane == 0) atomicMin(status, (unsigned long long)r);
        for (int64_t j = lane; j < nvec; j += 32) out[r * nvec + j] = bad ? make_uint4(0, 0, 0, 0) : table[(int64_t)id * nvec + j];
    }
}

__global__ void ids_check_kernel(int64_t R, int64_t V, const int32_t *ids, uint32_t *keys,
                                 int32_t *rows, unsigned long long *status) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < R;
         r += (int64_t)gridDim.x * blockDim.x) {
        int32_t id = ids[r];
        if (id < 0 || id >= V) atomicMin(status, (unsigned long long)r);
        keys[r] = (uint32_t)id;
        rows[r] = (int32_t)r;
    }
}

/* One block per position p of the id-sorted order; the block at the start of a run of equal ids
 * sums that id's rows in row order (the sort is stable) and adds them to dtable. */
template <typename T>
__global__ void embedding_bwd_kernel(int64_t R, int64_t D, const uint32_t *keys,
                                     const int32_t *rows, const T *dout, float *dtable) {
    int64_t p = blockIdx.x;
    if (p >= R || (p > 0 && keys[p] == keys[p - 1])) return;
    uint32_t id = keys[p];
    int64_t q1 = p;
    while (q1 < R && keys[q1] == id) q1++;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
        float s = 0;
        for (int64_t q = p; q < q1; q++) s += ld(dout + (int64_t)rows[q] * D + j);
        dtable[(int64_t)id * D + j] += s;
    }
}

/* ---- cross-entropy ----------------------------------------------------------------------- */

/* One block: checks the targets of weighted rows and sums the weights (fixed order, fp64). */
__global__ void xent_prep_kernel(int64_t R, int64_t V, const int32_t *targets, const float *w,
                                 float norm, double *W, unsigned long long *status) {
    __shared__ double sh[32];
    double s = 0;
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) {
        float wr = w[r];
        if (wr != 0 && (targets[r] < 0 || targets[r] >= V)) atomicMin(status, (unsigned long long)r);
        if (!(wr >= 0) || isinf(wr)) atomicMin(status, (unsigned long long)r);
        s += wr;
    }
    s = warp_sum_d(s);
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        double t = threadIdx.x < blockDim.x / 32 ? sh[threadIdx.x] : 0;
        t = warp_sum_d(t);
        if (threadIdx.x == 0) *W = norm > 0 ? (double)norm : t;
    }
}

/* One warp per row: online max/sum-exp per lane, merged across the warp; then dlogits. */
template <typename T>
__global__ void xent_row_kernel(int64_t R, int64_t V, const T *logits, const int32_t *targets,
                                const float *w, const double *W, float *nll, T *dlogits) {
    int64_t r = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= R) return;
    const T *zr = logits + r * V;
    float wr = w[r];
    int32_t t = targets[r];
    if (wr == 0 || t < 0 || t >= V) { /* ignored (or bad, reported by xent_prep_kernel) */
        if (lane == 0) nll[r] = 0;
        if (dlogits)
            for (int64_t v = lane; v < V; v += 32) st(dlogits + r * V + v, 0.0f);
        return;
    }
    float m = -INFINITY, s = 0;
    for (int64_t v = lane; v < V; v += 32) {
        float z = ld(zr + v);
        if (z > m) {
            s = s * expf(m - z) + 1.0f;
            m = z;
        } else {
            s += expf(z - m);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        float mn = fmaxf(m, m2);
        s = (m == -INFINITY ? 0 : s * expf(m - mn)) + (m2 == -INFINITY ? 0 : s2 * expf(m2 - mn));
        m = mn;
    }
    float lse = m + logf(s);
    float zt = ld(zr + t);
    if (lane == 0) nll[r] = lse - zt;
    if (dlogits) {
        double Wv = *W;
        float scale = Wv > 0 ? (float)(wr / Wv) : 0.0f;
        __syncwarp(); /* every lane has read zr[t] before dlogits (maybe == logits) is written */
        for (int64_t v = lane; v < V; v += 32) {
            float p = expf(ld(zr + v) - lse);
            st(dlogits + r * V + v, scale * (p - (v == t ? 1.0f : 0.0f)));
        }
    }
}

__global__ void xent_loss_kernel(int64_t R, const float *w, const float *nll, const double *W,
                                 float *loss) {
    __shared__ double sh[32];
    double s = 0;
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) s += (double)w[r] * nll[r];
    s = warp_sum_d(s);
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        double t = threadIdx.x < blockDim.x / 32 ? sh[threadIdx.x] : 0;
        t = warp_sum_d(t);
        if (threadIdx.x == 0) *loss = *W > 0 ? (float)(t / *W) : 0.0f;
    }
}

/* ---- AdamW ------------------------------------------------------------------------------- */

__global__ void adamw_kernel(int64_t n, float *p, const float *grad, float *m, float *v,
                             bf16 *pb, float lr, float b1, float b2, float eps, float wd,
                             float gs, float bc1, float bc2) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float g = gs * grad[i];
        float pi = p[i] - lr * wd * p[i];
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        pi = pi - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
        p[i] = pi;
        if (pb) pb[i] = __float2bfloat16(pi);
    }
}

} // namespace

/* ====================================================================================== */

/* Argument checks shared by the plain and the strided-batched GEMM; M, N, K, batch must fit
 * cuBLAS's int. */
static lc_status matmul_check(const char *fn, int ta, int tb, int64_t M, int64_t N, int64_t K, int64_t batch,
                              const void *A, const void *B, int ab_dt, const void *C, int c_dt) {
    LC_REQUIRE(ta == 0 || ta == 1, "%s: ta = %d must be 0 or 1", fn, ta);
    LC_REQUIRE(tb == 0 || tb == 1, "%s: tb = %d must be 0 or 1", fn, tb);
    REQUIRE_DIM(fn, M, 0);
    REQUIRE_DIM(fn, N, 0);
    REQUIRE_DIM(fn, K, 0);
    REQUIRE_DIM(fn, batch, 0);
    LC_REQUIRE(M < INT_MAX && N < INT_MAX && K < INT_MAX && batch < INT_MAX,
               "%s: M, N, K, batch = %lld, %lld, %lld, %lld must each be < 2^31 (cuBLAS)", fn, (long long)M,
               (long long)N, (long long)K, (long long)batch);
    LC_REQUIRE(ab_dt == OPS_F32 || ab_dt == OPS_BF16, "%s: ab_dt = %d must be OPS_F32 or OPS_BF16", fn, ab_dt);
    LC_REQUIRE(c_dt == OPS_F32 || c_dt == OPS_BF16, "%s: c_dt = %d must be OPS_F32 or OPS_BF16", fn, c_dt);
    LC_REQUIRE(!(ab_dt == OPS_F32 && c_dt == OPS_BF16), "%s: ab_dt = OPS_F32 needs c_dt = OPS_F32", fn);
    if (M == 0 || N == 0 || batch == 0) return LC_OK;
    REQUIRE_PTR(fn, C);
    if (K > 0) {
        REQUIRE_PTR(fn, A);
        REQUIRE_PTR(fn, B);
    }
    return LC_OK;
}

extern "C" lc_status ops_matmul_cuda(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                                     const void *A, const void *B, int ab_dt, float beta, void *C,
                                     int c_dt, void *stream) {
    LC_TRY(matmul_check("ops_matmul_cuda", ta, tb, M, N, K, 1, A, B, ab_dt, C, c_dt));
    if (M == 0 || N == 0) return LC_OK;
    ops_state *s;
    LC_TRY(state_get(&s));
    blas_check(cublasSetStream(s->blas, lc_stream(stream)));
    cudaDataType_t abt = ab_dt == OPS_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cudaDataType_t ct = c_dt == OPS_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands. */
    int lda = ta ? (int)M : (int)K, ldb = tb ? (int)K : (int)N;
    blas_check(cublasGemmEx(s->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                            (int)N, (int)M, (int)K, &alpha, B, abt, ldb, A, abt, lda, &beta, C, ct,
                            (int)N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return LC_OK;
}

extern "C" lc_status ops_matmul_batched_cuda(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                                             const void *A, int64_t sA, const void *B, int64_t sB, int ab_dt,
                                             float beta, void *C, int64_t sC, int c_dt, int64_t batch,
                                             void *stream) {
    const char *fn = "ops_matmul_batched_cuda";
    LC_TRY(matmul_check(fn, ta, tb, M, N, K, batch, A, B, ab_dt, C, c_dt));
    REQUIRE_DIM(fn, sA, 0);
    REQUIRE_DIM(fn, sB, 0);
    REQUIRE_DIM(fn, sC, 0);
    if (M == 0 || N == 0 || batch == 0) return LC_OK;
    ops_state *s;
    LC_TRY(state_get(&s));
    blas_check(cublasSetStream(s->blas, lc_stream(stream)));
    cudaDataType_t abt = ab_dt == OPS_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cudaDataType_t ct = c_dt == OPS_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    int lda = ta ? (int)M : (int)K, ldb = tb ? (int)K : (int)N;
    blas_check(cublasGemmStridedBatchedEx(s->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          (int)N, (int)M, (int)K, &alpha, B, abt, ldb, (long long)sB, A, abt, lda,
                                          (long long)sA, &beta, C, ct, (int)N, (long long)sC, (int)batch,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return LC_OK;
}

extern "C" lc_status ops_rmsnorm_forward_cuda(int dt, int64_t R, int64_t D, float eps, const void *x,
                                              const void *weight, void *y, float *rstd, void *stream) {
    const char *fn = "ops_rmsnorm_forward_cuda";
    REQUIRE_DT(fn, dt);
    REQUIRE_DIM(fn, R, 0);
    REQUIRE_DIM(fn, D, 1);
    LC_REQUIRE(eps >= 0 && isfinite(eps), "%s: eps = %g must be finite and >= 0", fn, eps);
    REQUIRE_PTR(fn, x);
    REQUIRE_PTR(fn, weight);
    REQUIRE_PTR(fn, y);
    if (R == 0) return LC_OK;
    unsigned grid = (unsigned)((R + 7) / 8);
    LC_REQUIRE(grid <= INT_MAX, "%s: R = %lld too large", fn, (long long)R);
    if (dt == OPS_BF16 && rmsnorm_fwd_vec_launch(R, D, eps, (const bf16 *)x, (const bf16 *)weight, (bf16 *)y, rstd, lc_stream(stream))) {
        cuda_check_launch("rmsnorm_fwd_vec");
        return LC_OK;
    }
    if (dt == OPS_BF16)
        rmsnorm_fwd_kernel<bf16><<<grid, 256, 0, lc_stream(stream)>>>(R, D, eps, (const bf16 *)x, (const bf16 *)weight, (bf16 *)y, rstd);
    else
        rmsnorm_fwd_kernel<float><<<grid, 256, 0, lc_stream(stream)>>>(R, D, eps, (const float *)x, (const float *)weight, (float *)y, rstd);
    cuda_check_launch("rmsnorm_fwd_kernel");
    return LC_OK;
}

extern "C" lc_status ops_rmsnorm_backward_cuda(int dt, int64_t R, int64_t D, const void *x,
                                               const void *weight, const float *rstd, const void *dy,
                                               void *dx, float *dweight, int accumulate_dx,
                                               void *stream) {
    const char *fn = "ops_rmsnorm_backward_cuda";
    REQUIRE_DT(fn, dt);
    REQUIRE_DIM(fn, R, 0);
    REQUIRE_DIM(fn, D, 1);
    REQUIRE_PTR(fn, x);
    REQUIRE_PTR(fn, weight);
    REQUIRE_PTR(fn, rstd);
    REQUIRE_PTR(fn, dy);
    REQUIRE_PTR(fn, dx);
    REQUIRE_PTR(fn, dweight);
    LC_REQUIRE(dx != x && dx != dy, "%s: dx may not alias x or dy", fn);
    if (R == 0) return LC_OK;
    cudaStream_t st = lc_stream(stream);
    {
        int G, NV;
        if (dt == OPS_BF16 && rms_vec_shape(D, &G, &NV) && aligned16(x) && aligned16(dy) && aligned16(dx)) {
            keep_pool();
            int64_t nb = rmsnorm_bwd_vec_blocks(R, G);
            float *partial = NULL;
            cuda_check(cudaMallocAsync((void **)&partial, sizeof(float) * nb * D, st));
            rmsnorm_bwd_vec_launch(R, D, (const bf16 *)x, (const bf16 *)weight, rstd, (const bf16 *)dy, (bf16 *)dx,
                                   accumulate_dx, partial, nb, st);
            cuda_check_launch("rmsnorm_bwd_vec");
            rmsnorm_bwd_dw_final<<<(unsigned)((D + 31) / 32), dim3(32, 32), 0, st>>>(D, nb, partial, dweight);
            cuda_check_launch("rmsnorm_bwd_dw_final");
            cuda_check(cudaFreeAsync(partial, st));
            return LC_OK;
        }
    }
    unsigned grid = (unsigned)((R + 7) / 8);
    /* chunks of at least 64 rows, at most 1024 chunks: partials stay small, the grid full */
    int64_t rows_per_chunk = (R + 1023) / 1024;
    if (rows_per_chunk < 64) rows_per_chunk = 64;
    int64_t nchunk = (R + rows_per_chunk - 1) / rows_per_chunk;
    float *partial = NULL;
    cuda_check(cudaMallocAsync((void **)&partial, sizeof(float) * nchunk * D, st));
    dim3 pgrid((unsigned)((D + 31) / 32), (unsigned)nchunk), pblock(32, 8);
    /* fused path while 2+ warps' partial rows fit in 48 KiB of shared memory */
    int64_t nw = (48 * 1024) / (4 * D);
    if (nw > 8) nw = 8;
    if (nw >= 2) {
        size_t shb = sizeof(float) * (size_t)(nw * D);
        if (dt == OPS_BF16)
            rmsnorm_bwd_fused_kernel<bf16><<<(unsigned)nchunk, (unsigned)(32 * nw), shb, st>>>(R, D, rows_per_chunk, (const bf16 *)x, (const bf16 *)weight, rstd, (const bf16 *)dy, (bf16 *)dx, accumulate_dx, partial);
        else
            rmsnorm_bwd_fused_kernel<float><<<(unsigned)nchunk, (unsigned)(32 * nw), shb, st>>>(R, D, rows_per_chunk, (const float *)x, (const float *)weight, rstd, (const float *)dy, (float *)dx, accumulate_dx, partial);
    } else if (dt == OPS_BF16) {
        rmsnorm_bwd_dx_kernel<bf16><<<grid, 256, 0, st>>>(R, D, (const bf16 *)x, (const bf16 *)weight, rstd, (const bf16 *)dy, (bf16 *)dx, accumulate_dx);
        rmsnorm_bwd_dw_partial<bf16><<<pgrid, pblock, 0, st>>>(R, D, rows_per_chunk, (const bf16 *)x, rstd, (const bf16 *)dy, partial);
    } else {
        rmsnorm_bwd_dx_kernel<float><<<grid, 256, 0, st>>>(R, D, (const float *)x, (const float *)weight, rstd, (const float *)dy, (float *)dx, accumulate_dx);
        rmsnorm_bwd_dw_partial<float><<<pgrid, pblock, 0, st>>>(R, D, rows_per_chunk, (const float *)x, rstd, (const float *)dy, partial);
    }
    cuda_check_launch("rmsnorm backward");
    rmsnorm_bwd_dw_final<<<(unsigned)((D + 31) / 32), dim3(32, 32), 0, st>>>(D, nchunk, partial, dweight);
    cuda_check_launch("rmsnorm_bwd_dw_final");
    cuda_check(cudaFreeAsync(partial, st));
    return LC_OK;
}

static lc_status rope_cuda(const char *fn, int dt, int64_t B, int64_t L, int64_t Hn, int64_t dh,
                           int64_t pos0, float theta, const void *in, void *out, float sign,
                           void *stream) {
    REQUIRE_DT(fn, dt);
    REQUIRE_DIM(fn, B, 0);
    REQUIRE_DIM(fn, L, 0);
    REQUIRE_DIM(fn, Hn, 0);
    REQUIRE_DIM(fn, dh, 2);
    LC_REQUIRE(dh % 2 == 0, "%s: dh = %lld must be even", fn, (long long)dh);
    REQUIRE_DIM(fn, pos0, 0);
    LC_REQUIRE(theta > 1 && isfinite(theta), "%s: theta = %g must be finite and > 1", fn, theta);
    REQUIRE_PTR(fn, in);
    REQUIRE_PTR(fn, out);
    LC_REQUIRE(dh <= 8192, "%s: dh = %lld must be <= 8192 (angles are staged in shared memory)", fn, (long long)dh);
    LC_REQUIRE(Hn * dh < INT_MAX, "%s: Hn * dh = %lld must be < 2^31", fn, (long long)(Hn * dh));
    if (B == 0 || L == 0 || Hn == 0) return LC_OK;
    int64_t n = Hn * (dh / 2);
    unsigned threads = (unsigned)(n >= 256 ? 256 : (n + 31) / 32 * 32);
    /* one block per position covers every batch row (angles computed once); split the batch
     * over grid.y only when there are too few positions to fill the card (decode) */
    int64_t gy = (2048 + L - 1) / L;
    if (gy > B) gy = B;
    if (gy > 65535) gy = 65535;
    dim3 grid((unsigned)(L < (1 << 24) ? L : (1 << 24)), (unsigned)gy);
    size_t shb = sizeof(float) * (size_t)dh;
    if (dt == OPS_BF16)
        rope_kernel<bf16><<<grid, threads, shb, lc_stream(stream)>>>(B, L, (int)Hn, (int)dh, pos0, theta, (const bf16 *)in, (bf16 *)out, sign);
    else
        rope_kernel<float><<<grid, threads, shb, lc_stream(stream)>>>(B, L, (int)Hn, (int)dh, pos0, theta, (const float *)in, (float *)out, sign);
    cuda_check_launch("rope_kernel");
    return LC_OK;
}
extern "C" lc_status ops_rope_forward_cuda(int dt, int64_t B, int64_t L, int64_t Hn, int64_t dh,
                                           int64_t pos0, float theta, const void *x, void *y, void *stream) {
    return rope_cuda("ops_rope_forward_cuda", dt, B, L, Hn, dh, pos0, theta, x, y, 1.0f, stream);
}
extern "C" lc_status ops_rope_backward_cuda(int dt, int64_t B, int64_t L, int64_t Hn, int64_t dh,
                                            int64_t pos0, float theta, const void *dy, void *dx,
                                            void *stream) {
    return rope_cuda("ops_rope_backward_cuda", dt, B, L, Hn, dh, pos0, theta, dy, dx, -1.0f, stream);
}

extern "C" lc_status ops_swiglu_forward_cuda(int dt, int64_t R, int64_t F, int64_t ld,
                                             const void *gate, const void *up, void *y, void *stream) {
    const char *fn = "ops_swiglu_forward_cuda";
    REQUIRE_DT(fn, dt);
    REQUIRE_DIM(fn, R, 0);
    REQUIRE_DIM(fn, F, 1);
    LC_REQUIRE(ld >= F, "%s: ld = %lld must be >= F = %lld", fn, (long long)ld, (long long)F);
    REQUIRE_PTR(fn, gate);
    REQUIRE_PTR(fn, up);
    REQUIRE_PTR(fn, y);
    if (R == 0) return LC_OK;
    unsigned grid = (unsigned)(R < (1 << 24) ? R : (1 << 24)), threads = row_threads(F);
    if (dt == OPS_BF16 && F % 2 == 0 && ld % 2 == 0 && aligned4(gate) && aligned4(up) && aligned4(y))
        swiglu_fwd_bf16x2<<<grid, row_threads(F / 2), 0, lc_stream(stream)>>>(R, F / 2, ld / 2, (const bf162 *)gate, (const bf162 *)up, (bf162 *)y);
    else if (dt == OPS_BF16)
        swiglu_fwd_kernel<bf16><<<grid, threads, 0, lc_stream(stream)>>>(R, F, ld, (const bf16 *)gate, (const bf16 *)up, (bf16 *)y);
    else
        swiglu_fwd_kernel<float><<<grid, threads, 0, lc_stream(stream)>>>(R, F, ld, (const float *)gate, (const float *)up, (float *)y);
    cuda_check_launch("swiglu_fwd_kernel");
    return LC_OK;
}

extern "C" lc_status ops_swiglu_backward_cuda(int dt, int64_t R, int64_t F, int64_t ld,
                                              const void *gate, const void *up, const void *dy,
                                              void *dgate, void *dup, void *stream) {
    const char *fn = "ops_swiglu_backward_cuda";
    REQUIRE_DT(fn, dt);
    REQUIRE_DIM(fn, R, 0);
    REQUIRE_DIM(fn, F, 1);
    LC_REQUIRE(ld >= F, "%s: ld = %lld must be >= F = %lld", fn, (long long)ld, (long long)F);
    REQUIRE_PTR(fn, gate);
    REQUIRE_PTR(fn, up);
    REQUIRE_PTR(fn, dy);
    REQUIRE_PTR(fn, dgate);
    REQUIRE_PTR(fn, dup);
    if (R == 0) return LC_OK;
    unsigned grid = (unsigned)(R < (1 << 24) ? R : (1 << 24)), threads = row_threads(F);
    if (dt == OPS_BF16 && F % 2 == 0 && ld % 2 == 0 && aligned4(gate) && aligned4(up) && aligned4(dy) &&
        aligned4(dgate) && aligned4(dup))
        swiglu_bwd_bf16x2<<<grid, row_threads(F / 2), 0, lc_stream(stream)>>>(R, F / 2, ld / 2, (const bf162 *)gate, (const bf162 *)up, (const bf162 *)dy, (bf162 *)dgate, (bf162 *)dup);
    else if (dt == OPS_BF16)
        swiglu_bwd_kernel<bf16><<<grid, threads, 0, lc_stream(stream)>>>(R, F, ld, (const bf16 *)gate, (const bf16 *)up, (const bf16 *)dy, (bf16 *)dgate, (bf16 *)dup);
    else
        swiglu_bwd_kernel<float><<<grid, threads, 0, lc_stream(stream)>>>(R, F, ld, (const float *)gate, (const float *)up, (const float *)dy, (float *)dgate, (float *)dup);
    cuda_check_launch("swiglu_bwd_kernel");
    return LC_OK;
}

static lc_status bad_id(const char *fn, const char *what, const int32_t *ids, int64_t row, int64_t V) {
    int32_t id = 0;
    LC_TRY(read_id(ids, row, &id));
    return lc_errorf(LC_EINVAL, "%s: %s %d at row %lld is outside [0, V = %lld)", fn, what, id,
                     (long long)row, (long long)V);
}

extern "C" lc_status ops_embedding_forward_cuda(int dt, int64_t R, int64_t V, int64_t D,
                                                const int32_t *ids, const void *table, void *out,
                                                void *stream) {
    const char *fn = "ops_embedding_forward_cuda";
    REQUIRE_DT(fn, dt);
    REQUIRE_DIM(fn, R, 0);
    REQUIRE_DIM(fn, V, 1);
    REQUIRE_DIM(fn, D, 1);
    LC_REQUIRE(V <= INT32_MAX, "%s: V = %lld does not fit int32 ids", fn, (long long)V);
    REQUIRE_PTR(fn, ids);
    REQUIRE_PTR(fn, table);
    REQUIRE_PTR(fn, out);
    if (R == 0) return LC_OK;
    ops_state *s;
    LC_TRY(state_get(&s));
    cudaStream_t st = lc_stream(stream);
    LC_TRY(status_reset(s, st));
    unsigned grid = (unsigned)(R < (1 << 24) ? R : (1 << 24)), threads = row_threads(D);
    const int64_t per = dt == OPS_BF16 ? 8 : 4;
    if (D % per == 0 && aligned16(table) && aligned16(out)) {
        int64_t nb = (R + 7) / 8;
        embedding_fwd_vec<<<(unsigned)(nb < 132 * 32 ? nb : 132 * 32), 256, 0, st>>>(R, V, D / per, ids, (const uint4 *)table,
                                                                                   (uint4 *)out, s->d_status);
    } else if (dt == OPS_BF16)
        embedding_fwd_kernel<bf16><<<grid, threads, 0, st>>>(R, V, D, ids, (const bf16 *)table, (bf16 *)out, s->d_status);
    else
        embedding_fwd_kernel<float><<<grid, threads, 0, st>>>(R, V, D, ids, (const float *)table, (float *)out, s->d_status);
    cuda_check_launch("embedding_fwd_kernel");
    int64_t bad;
    LC_TRY(status_read(s, st, &bad));
    if (bad >= 0) return bad_id(fn, "id", ids, bad, V);
    return LC_OK;
}

/* One-hot rows for the small-vocabulary backward: oh[r, v] = (ids[r0 + r] == v); bad ids are
 * reported through status (their rows stay zero). */
template <typename T>
__global__ void onehot_kernel(int64_t rows, int64_t V, const int32_t *ids, int64_t r0, T *oh) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < rows * V; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / V, v = i - r * V;
        st(oh + i, ids[r0 + r] == v ? 1.0f : 0.0f);
    }
}
__global__ void ids_valid_kernel(int64_t R, int64_t V, const int32_t *ids, unsigned long long *status) {
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < R; r += (int64_t)gridDim.x * blockDim.x)
        if (ids[r] < 0 || ids[r] >= V) atomicMin(status, (unsigned long long)r);
}

/* Vocabularies up to this size take the one-hot GEMM path of the backward. */
#define EMBED_ONEHOT_MAX_V 1024

extern "C" lc_status ops_embedding_backward_cuda(int dt, int64_t R, int64_t V, int64_t D,
                                                 const int32_t *ids, const void *dout, float *dtable,
                                                 void *stream) {
    const char *fn = "ops_embedding_backward_cuda";
    REQUIRE_DT(fn, dt);
    REQUIRE_DIM(fn, R, 0);
    REQUIRE_DIM(fn, V, 1);
    REQUIRE_DIM(fn, D, 1);
    LC_REQUIRE(V <= INT32_MAX, "%s: V = %lld does not fit int32 ids", fn, (long long)V);
    LC_REQUIRE(R < INT32_MAX, "%s: R = %lld must be < 2^31 (row indices are sorted as int32)", fn, (long long)R);
    REQUIRE_PTR(fn, ids);
    REQUIRE_PTR(fn, dout);
    REQUIRE_PTR(fn, dtable);
    if (R == 0) return LC_OK;
    ops_state *s;
    LC_TRY(state_get(&s));
    cudaStream_t st = lc_stream(stream);
    if (V <= EMBED_ONEHOT_MAX_V) {
        /* dtable += onehot(ids)^T dout, one GEMM per chunk of rows (fp32 accumulation, exact 0/1
         * factors, deterministic). The sorted path below sums each id's rows serially: with
         * a skewed byte distribution (text) one block summed ~20% of all rows (11.7 ms at
         * 131072 x 256 on the H100 vs ~0.1 ms here). */
        const size_t esz = dt == OPS_BF16 ? 2 : 4;
        int64_t rc = ((int64_t)32 << 20) / V;
        if (rc > R) rc = R;
        if (rc < 1) rc = 1;
        LC_TRY(status_reset(s, st));
        ids_valid_kernel<<<grid_for(R, 256), 256, 0, st>>>(R, V, ids, s->d_status);
        cuda_check_launch("ids_valid_kernel");
        int64_t bad = -1;
        LC_TRY(status_read(s, st, &bad)); /* bad ids: nothing is written */
        if (bad >= 0) return bad_id(fn, "id", ids, bad, V);
        void *oh = NULL;
        cuda_check(cudaMallocAsync(&oh, (size_t)(rc * V) * esz, st));
        lc_status rcode = LC_OK;
        for (int64_t r0 = 0; rcode == LC_OK && r0 < R; r0 += rc) {
            int64_t n = R - r0 < rc ? R - r0 : rc;
            unsigned grid = grid_for(n * V, 256);
            if (dt == OPS_BF16) onehot_kernel<bf16><<<grid, 256, 0, st>>>(n, V, ids, r0, (bf16 *)oh);
            else onehot_kernel<float><<<grid, 256, 0, st>>>(n, V, ids, r0, (float *)oh);
            cudaError_t e = cudaGetLastError();
            if (e != cudaSuccess) rcode = lc_errorf(LC_EDEVICE, "%s: launch of onehot_kernel failed: %s", fn, cudaGetErrorString(e));
            if (rcode == LC_OK)
                rcode = ops_matmul_cuda(1, 0, V, D, n, 1.0f, oh, (const char *)dout + (size_t)(r0 * D) * esz, dt, 1.0f, dtable,
                                        OPS_F32, stream);
        }
        cudaFreeAsync(oh, st);
        return rcode;
    }
    int end_bit = 1;
    while (end_bit < 32 && (1LL << end_bit) < V) end_bit++;
    size_t temp_bytes = 0;
    cub::DeviceRadixSort::SortPairs(NULL, temp_bytes, (const uint32_t *)NULL, (uint32_t *)NULL,
                                    (const int32_t *)NULL, (int32_t *)NULL, (int)R, 0, end_bit, st);
    /* one allocation: keys in/out, rows in/out, CUB temp storage */
    size_t keys_b = ((size_t)R * 4 + 255) / 256 * 256;
    char *buf = NULL;
    cuda_check(cudaMallocAsync((void **)&buf, 4 * keys_b + temp_bytes, st));
    uint32_t *k_in = (uint32_t *)buf, *k_out = (uint32_t *)(buf + keys_b);
    int32_t *r_in = (int32_t *)(buf + 2 * keys_b), *r_out = (int32_t *)(buf + 3 * keys_b);
    void *temp = buf + 4 * keys_b;
    lc_status rc = status_reset(s, st);
    int64_t bad = -1;
    if (rc == LC_OK) {
        ids_check_kernel<<<grid_for(R, 256), 256, 0, st>>>(R, V, ids, k_in, r_in, s->d_status);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) rc = lc_errorf(LC_EDEVICE, "%s: launch of ids_check_kernel failed: %s", fn, cudaGetErrorString(e));
    }
    if (rc == LC_OK) rc = status_read(s, st, &bad);
    if (rc == LC_OK && bad >= 0) rc = bad_id(fn, "id", ids, bad, V);
    if (rc == LC_OK) {
        cudaError_t e = cub::DeviceRadixSort::SortPairs(temp, temp_bytes, k_in, k_out, r_in, r_out, (int)R, 0, end_bit, st);
        if (e != cudaSuccess) rc = lc_errorf(LC_EDEVICE, "%s: cub radix sort failed: %s", fn, cudaGetErrorString(e));
    }
    if (rc == LC_OK) {
        if (dt == OPS_BF16)
            embedding_bwd_kernel<bf16><<<(unsigned)R, 128, 0, st>>>(R, D, k_out, r_out, (const bf16 *)dout, dtable);
        else
            embedding_bwd_kernel<float><<<(unsigned)R, 128, 0, st>>>(R, D, k_out, r_out, (const float *)dout, dtable);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) rc = lc_errorf(LC_EDEVICE, "%s: launch of embedding_bwd_kernel failed: %s", fn, cudaGetErrorString(e));
    }
    cudaFreeAsync(buf, st);
    return rc;
}

extern "C" lc_status ops_xent_forward_backward_cuda(int dt, int64_t R, int64_t V, const void *logits,
                                                    const int32_t *targets, const float *weights,
                                                    float norm, float *loss, float *row_loss,
                                                    void *dlogits, void *stream) {
    const char *fn = "ops_xent_forward_backward_cuda";
    REQUIRE_DT(fn, dt);
    REQUIRE_DIM(fn, R, 0);
    REQUIRE_DIM(fn, V, 1);
    LC_REQUIRE(isfinite(norm), "%s: norm = %g must be finite", fn, norm);
    REQUIRE_PTR(fn, logits);
    REQUIRE_PTR(fn, targets);
    REQUIRE_PTR(fn, weights);
    REQUIRE_PTR(fn, loss);
    ops_state *s;
    LC_TRY(state_get(&s));
    cudaStream_t st = lc_stream(stream);
    /* scratch: W (fp64) and, when the caller wants no per-row losses, nll [R] */
    char *buf = NULL;
    cuda_check(cudaMallocAsync((void **)&buf, 256 + (row_loss ? 0 : sizeof(float) * (size_t)R), st));
    double *W = (double *)buf;
    float *nll = row_loss ? row_loss : (float *)(buf + 256);
    lc_status rc = status_reset(s, st);
    if (rc == LC_OK) {
        xent_prep_kernel<<<1, 1024, 0, st>>>(R, V, targets, weights, norm, W, s->d_status);
        if (R > 0) {
            unsigned grid = (unsigned)((R + 7) / 8);
            if (dt == OPS_BF16)
                xent_row_kernel<bf16><<<grid, 256, 0, st>>>(R, V, (const bf16 *)logits, targets, weights, W, nll, (bf16 *)dlogits);
            else
                xent_row_kernel<float><<<grid, 256, 0, st>>>(R, V, (const float *)logits, targets, weights, W, nll, (float *)dlogits);
        }
        xent_loss_kernel<<<1, 1024, 0, st>>>(R, weights, nll, W, loss);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) rc = lc_errorf(LC_EDEVICE, "%s: launch failed: %s", fn, cudaGetErrorString(e));
    }
    int64_t bad = -1;
    if (rc == LC_OK) rc = status_read(s, st, &bad);
    cudaFreeAsync(buf, st);
    if (rc == LC_OK && bad >= 0) {
        float w = 0;
        cuda_check(cudaMemcpy(&w, weights + bad, sizeof w, cudaMemcpyDeviceToHost));
        if (!(w >= 0) || isinf(w))
            return lc_errorf(LC_EINVAL, "%s: weights[%lld] = %g must be finite and >= 0", fn, (long long)bad, w);
        return bad_id(fn, "target", targets, bad, V);
    }
    return rc;
}

extern "C" lc_status ops_adamw_step_cuda(int64_t n, float *p, const float *grad, float *m, float *v,
                                         bf16_t *p_bf16, const struct ops_adamw *h, void *stream) {
    LC_TRY(ops_adamw_check("ops_adamw_step_cuda", n, p, grad, m, v, h));
    if (n == 0) return LC_OK;
    float bc1 = (float)(1.0 - pow(h->beta1, (double)h->step));
    float bc2 = (float)(1.0 - pow(h->beta2, (double)h->step));
    adamw_kernel<<<grid_for(n, 256), 256, 0, lc_stream(stream)>>>(n, p, grad, m, v, (bf16 *)p_bf16, h->lr, h->beta1, h->beta2, h->eps, h->weight_decay, h->grad_scale, bc1, bc2);
    cuda_check_launch("adamw_kernel");
    return LC_OK;
}

extern "C" void ops_cuda_release(void) {
    if (g_state.blas) {
        cublasDestroy(g_state.blas);
        cudaFree(g_state.d_status);
        cudaFreeHost(g_state.h_status);
        g_state = ops_state{};
    }
}
