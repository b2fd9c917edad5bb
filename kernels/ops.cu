/* ops.cu — CUDA twins of the common ops (ops.h): GEMMs through cuBLAS (bf16 or fp32 in, fp32
 * accumulate), and plain kernels for RMSNorm, RoPE, SwiGLU, embedding, cross-entropy, AdamW.
 * These are memory-bound ops: each kernel reads its inputs once and writes its outputs once
 * (RMSNorm's dweight and the embedding backward re-read their inputs once more to stay
 * deterministic). Activations are `dt` (bf16 or fp32, see ops.h), math is fp32, row reductions
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

lc_status state_get(ops_state **out) {
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

/* dweight partials: block (32 columns x 8 row lanes) sums a fixed chunk of rows; partial[c, j].
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

__global__ void rmsnorm_bwd_dw_final(int64_t D, int64_t nchunk, const float *partial, float *dw) {
    int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= D) return;
    float s = 0;
    for (int64_t c = 0; c < nchunk; c++) s += partial[c * D + j];
    dw[j] += s;
}

/* ---- RoPE -------------------------------------------------------------------------------- */

/* One thread per (position l, frequency i): the angle is computed once (in double, reduced mod
 * 2pi, see ops.h) and applied to every batch row and head. sign = -1 rotates back (backward). */
template <typename T>
__global__ void rope_kernel(int64_t B, int64_t L, int64_t Hn, int64_t dh, int64_t pos0,
                            double theta, const T *in, T *out, float sign) {
    int64_t h = dh / 2;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < L * h;
         t += (int64_t)gridDim.x * blockDim.x) {
        int64_t l = t / h, i = t % h;
        double f = pow(theta, -2.0 * (double)i / (double)dh);
        double a = (double)(pos0 + l) * f;
        const double two_pi = 6.283185307179586476925286766559;
        a -= floor(a / two_pi) * two_pi;
        float s, c;
        sincosf((float)a, &s, &c);
        s *= sign;
        for (int64_t b = 0; b < B; b++)
            for (int64_t hh = 0; hh < Hn; hh++) {
                int64_t o = ((b * L + l) * Hn + hh) * dh;
                float x1 = ld(in + o + i), x2 = ld(in + o + i + h);
                st(out + o + i, x1 * c - x2 * s);
                st(out + o + i + h, x2 * c + x1 * s);
            }
    }
}

/* ---- SwiGLU ------------------------------------------------------------------------------ */

template <typename T>
__global__ void swiglu_fwd_kernel(int64_t R, int64_t F, int64_t ldg, const T *g, const T *u, T *y) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < R * F;
         t += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = t / F, j = t % F;
        float gv = ld(g + r * ldg + j);
        st(y + t, gv / (1.0f + expf(-gv)) * ld(u + r * ldg + j));
    }
}

template <typename T>
__global__ void swiglu_bwd_kernel(int64_t R, int64_t F, int64_t ldg, const T *g, const T *u,
                                  const T *dy, T *dg, T *du) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < R * F;
         t += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = t / F, j = t % F, o = r * ldg + j;
        float gv = ld(g + o), uv = ld(u + o), d = ld(dy + t);
        float sg = 1.0f / (1.0f + expf(-gv));
        st(dg + o, d * uv * sg * (1.0f + gv * (1.0f - sg)));
        st(du + o, d * gv * sg);
    }
}

/* ---- embedding --------------------------------------------------------------------------- */

template <typename T>
__global__ void embedding_fwd_kernel(int64_t R, int64_t V, int64_t D, const int32_t *ids,
                                     const T *table, T *out, unsigned long long *status) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < R * D;
         t += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = t / D, j = t % D;
        int32_t id = ids[r];
        if (id < 0 || id >= V) {
            if (j == 0) atomicMin(status, (unsigned long long)r);
            st(out + t, 0.0f);
            continue;
        }
        out[t] = table[(int64_t)id * D + j];
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

extern "C" lc_status ops_matmul_cuda(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                                     const void *A, const void *B, int ab_dt, float beta, void *C,
                                     int c_dt, void *stream) {
    const char *fn = "ops_matmul_cuda";
    LC_REQUIRE(ta == 0 || ta == 1, "%s: ta = %d must be 0 or 1", fn, ta);
    LC_REQUIRE(tb == 0 || tb == 1, "%s: tb = %d must be 0 or 1", fn, tb);
    REQUIRE_DIM(fn, M, 0);
    REQUIRE_DIM(fn, N, 0);
    REQUIRE_DIM(fn, K, 0);
    LC_REQUIRE(M < INT_MAX && N < INT_MAX && K < INT_MAX, "%s: M, N, K = %lld, %lld, %lld must each be < 2^31 (cuBLAS)",
               fn, (long long)M, (long long)N, (long long)K);
    LC_REQUIRE(ab_dt == OPS_F32 || ab_dt == OPS_BF16, "%s: ab_dt = %d must be OPS_F32 or OPS_BF16", fn, ab_dt);
    LC_REQUIRE(c_dt == OPS_F32 || c_dt == OPS_BF16, "%s: c_dt = %d must be OPS_F32 or OPS_BF16", fn, c_dt);
    LC_REQUIRE(!(ab_dt == OPS_F32 && c_dt == OPS_BF16), "%s: ab_dt = OPS_F32 needs c_dt = OPS_F32", fn);
    if (M == 0 || N == 0) return LC_OK;
    REQUIRE_PTR(fn, C);
    if (K > 0) {
        REQUIRE_PTR(fn, A);
        REQUIRE_PTR(fn, B);
    }
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
    unsigned grid = (unsigned)((R + 7) / 8);
    /* chunks of at least 64 rows, at most 1024 chunks: partials stay small, the grid full */
    int64_t rows_per_chunk = (R + 1023) / 1024;
    if (rows_per_chunk < 64) rows_per_chunk = 64;
    int64_t nchunk = (R + rows_per_chunk - 1) / rows_per_chunk;
    float *partial = NULL;
    cuda_check(cudaMallocAsync((void **)&partial, sizeof(float) * nchunk * D, st));
    dim3 pgrid((unsigned)((D + 31) / 32), (unsigned)nchunk), pblock(32, 8);
    if (dt == OPS_BF16) {
        rmsnorm_bwd_dx_kernel<bf16><<<grid, 256, 0, st>>>(R, D, (const bf16 *)x, (const bf16 *)weight, rstd, (const bf16 *)dy, (bf16 *)dx, accumulate_dx);
        rmsnorm_bwd_dw_partial<bf16><<<pgrid, pblock, 0, st>>>(R, D, rows_per_chunk, (const bf16 *)x, rstd, (const bf16 *)dy, partial);
    } else {
        rmsnorm_bwd_dx_kernel<float><<<grid, 256, 0, st>>>(R, D, (const float *)x, (const float *)weight, rstd, (const float *)dy, (float *)dx, accumulate_dx);
        rmsnorm_bwd_dw_partial<float><<<pgrid, pblock, 0, st>>>(R, D, rows_per_chunk, (const float *)x, rstd, (const float *)dy, partial);
    }
    cuda_check_launch("rmsnorm backward");
    rmsnorm_bwd_dw_final<<<(unsigned)((D + 255) / 256), 256, 0, st>>>(D, nchunk, partial, dweight);
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
    if (B == 0 || L == 0 || Hn == 0) return LC_OK;
    unsigned grid = grid_for(L * (dh / 2), 256);
    if (dt == OPS_BF16)
        rope_kernel<bf16><<<grid, 256, 0, lc_stream(stream)>>>(B, L, Hn, dh, pos0, theta, (const bf16 *)in, (bf16 *)out, sign);
    else
        rope_kernel<float><<<grid, 256, 0, lc_stream(stream)>>>(B, L, Hn, dh, pos0, theta, (const float *)in, (float *)out, sign);
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
    unsigned grid = grid_for(R * F, 256);
    if (dt == OPS_BF16)
        swiglu_fwd_kernel<bf16><<<grid, 256, 0, lc_stream(stream)>>>(R, F, ld, (const bf16 *)gate, (const bf16 *)up, (bf16 *)y);
    else
        swiglu_fwd_kernel<float><<<grid, 256, 0, lc_stream(stream)>>>(R, F, ld, (const float *)gate, (const float *)up, (float *)y);
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
    unsigned grid = grid_for(R * F, 256);
    if (dt == OPS_BF16)
        swiglu_bwd_kernel<bf16><<<grid, 256, 0, lc_stream(stream)>>>(R, F, ld, (const bf16 *)gate, (const bf16 *)up, (const bf16 *)dy, (bf16 *)dgate, (bf16 *)dup);
    else
        swiglu_bwd_kernel<float><<<grid, 256, 0, lc_stream(stream)>>>(R, F, ld, (const float *)gate, (const float *)up, (const float *)dy, (float *)dgate, (float *)dup);
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
    unsigned grid = grid_for(R * D, 256);
    if (dt == OPS_BF16)
        embedding_fwd_kernel<bf16><<<grid, 256, 0, st>>>(R, V, D, ids, (const bf16 *)table, (bf16 *)out, s->d_status);
    else
        embedding_fwd_kernel<float><<<grid, 256, 0, st>>>(R, V, D, ids, (const float *)table, (float *)out, s->d_status);
    cuda_check_launch("embedding_fwd_kernel");
    int64_t bad;
    LC_TRY(status_read(s, st, &bad));
    if (bad >= 0) return bad_id(fn, "id", ids, bad, V);
    return LC_OK;
}

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
