/* mamba_bwd.cuh — the backward's per-chunk kernels (math in mamba_scan.cuh's header) with a
 * state layout that spares shared-memory bandwidth: warp w owns state rows p = 8w .. 8w+7, lane l
 * owns columns n = l*NL .. l*NL+NL-1 (NL = N/32). Per token a lane then reads its own NL values
 * of B and C (no lane reads another's) and the warp's 8 values of x and g as broadcasts; the
 * earlier layout (4 lanes per row, every lane reading all its 32 columns of B and C) spent
 * 4x-8x the shared-memory wavefronts. Sums over p (dB, dC) are per-lane sums over the warp's 8
 * rows, staged per warp and added over warps once per tile; sums over n (ys, dx) are halving
 * shuffles across the warp. Included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_BWD_CUH
#define LONGCTX_MAMBA_BWD_CUH

#include "mamba_scan.cuh"

namespace mamba_bwd {
using mamba_scan::args;
using mamba_scan::rows;
using mamba_scan::TT;
using mamba_scan::TMAX_BWD;

/* vec of NL floats at p */
template <int NL>
__device__ __forceinline__ void ld(float (&v)[NL], const float *p) {
    if constexpr (NL == 4) {
        const float4 u = *reinterpret_cast<const float4 *>(p);
        v[0] = u.x, v[1] = u.y, v[2] = u.z, v[3] = u.w;
    } else {
        const float2 u = *reinterpret_cast<const float2 *>(p);
        v[0] = u.x, v[1] = u.y;
    }
}
template <int NL>
__device__ __forceinline__ void st(float *p, const float (&v)[NL]) {
    if constexpr (NL == 4) *reinterpret_cast<float4 *>(p) = make_float4(v[0], v[1], v[2], v[3]);
    else *reinterpret_cast<float2 *>(p) = make_float2(v[0], v[1]);
}
__device__ __forceinline__ void ld8(float (&v)[8], const float *p) {
    const float4 a = *reinterpret_cast<const float4 *>(p), b = *reinterpret_cast<const float4 *>(p + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

/* Sum of v[8] over the 32 lanes; returns the total of row sel = 4*bit4 + 2*bit3 + bit2 of the lane. */
__device__ __forceinline__ float sum_rows(float (&v)[8]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const bool up = lane & 16;
        const float lo = v[j], hi = v[j + 4];
        v[j] = (up ? hi : lo) + __shfl_xor_sync(0xffffffffu, up ? lo : hi, 16);
    }
#pragma unroll
    for (int j = 0; j < 2; j++) {
        const bool up = lane & 8;
        const float lo = v[j], hi = v[j + 2];
        v[j] = (up ? hi : lo) + __shfl_xor_sync(0xffffffffu, up ? lo : hi, 8);
    }
    {
        const bool up = lane & 4;
        const float lo = v[0], hi = v[1];
        v[0] = (up ? hi : lo) + __shfl_xor_sync(0xffffffffu, up ? lo : hi, 4);
    }
    float s = v[0];
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    return s;
}
__device__ __forceinline__ int row_sel() {
    const int lane = threadIdx.x & 31;
    return ((lane >> 4) & 1) * 4 + ((lane >> 3) & 1) * 2 + ((lane >> 2) & 1);
}

/* Tile of the backward's inputs: x, dy, z (fp32), g = dy*silu(z), B, C, dt' and dA. */
template <int P, int N>
struct tile_smem {
    float xs[TT][P], dys[TT][P], zs[TT][P], gs[TT][P], os[TT][P], Bs[TT][N], Cs[TT][N];
    float dtp[TT], dAv[TT];
};

template <int P, int N, bool WANT_X, bool WANT_B>
__device__ __forceinline__ void load_tile(tile_smem<P, N> &s, const args &a, int64_t row0, int64_t h, int64_t g, int nvalid,
                                          float *sg) {
    constexpr int NT = P * 4;
    rows<P, NT> rx, rg, rz;
    rows<N, NT> rb, rc;
    if (WANT_X) rx.fetch(a.x + h * P, row0, a.H * P, nvalid);
    rg.fetch(a.dy + h * P, row0, a.H * P, nvalid);
    if (a.z) rz.fetch(a.z + h * P, row0, a.H * P, nvalid);
    if (WANT_B) rb.fetch(a.Bm + g * N, row0, a.G * N, nvalid);
    rc.fetch(a.Cm + g * N, row0, a.G * N, nvalid);
    mamba_scan::load_dt(s.dtp, s.dAv, sg, a, row0, (int)h, nvalid);
    if (WANT_X) rx.put(&s.xs[0][0]);
    rg.put(&s.dys[0][0]);
    if (a.z) rz.put(&s.zs[0][0]);
    if (WANT_B) rb.put(&s.Bs[0][0]);
    rc.put(&s.Cs[0][0]);
    __syncthreads();
    for (int e = threadIdx.x; e < TT * P; e += NT) {
        const int j = e / P, p = e % P;
        float gv = s.dys[j][p];
        if (a.z) {
            const float zv = s.zs[j][p];
            gv *= zv * mamba_scan::sigm(zv);
        }
        s.gs[j][p] = gv;
    }
    __syncthreads();
}

/* The recurrence over the chunk from a zero state: writes the local end state and prod(dA). */
template <int P, int N>
__global__ void __launch_bounds__(P * 4) h_local(args a) {
    constexpr int NL = N / 32, NT = P * 4;
    __shared__ __align__(16) float xs[TT][P], Bs[TT][N];
    __shared__ float dtp[TT], dAv[TT];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, p0 = warp * 8, n0 = lane * NL;
    const int64_t h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (a.H / a.G);
    const int64_t t_begin = c * a.T, t_end = min(t_begin + a.T, a.L);
    float hs[8][NL], logdecay = 0.0f;
#pragma unroll
    for (int r = 0; r < 8; r++)
#pragma unroll
        for (int k = 0; k < NL; k++) hs[r][k] = 0.0f;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += TT) {
        const int nvalid = (int)min((int64_t)TT, t_end - t0);
        const int64_t row0 = b * a.L + t0;
        rows<P, NT> rx;
        rows<N, NT> rb;
        rx.fetch(a.x + h * P, row0, a.H * P, nvalid);
        rb.fetch(a.Bm + g * N, row0, a.G * N, nvalid);
        mamba_scan::load_dt(dtp, dAv, nullptr, a, row0, (int)h, nvalid);
        rx.put(&xs[0][0]);
        rb.put(&Bs[0][0]);
        __syncthreads();
        for (int j = 0; j < nvalid; j++) {
            float xv[8], bv[NL];
            ld8(xv, &xs[j][p0]);
            ld<NL>(bv, &Bs[j][n0]);
            const float dA = dAv[j], dtv = dtp[j];
            logdecay += dtv * a.A[h];
#pragma unroll
            for (int r = 0; r < 8; r++)
#pragma unroll
                for (int k = 0; k < NL; k++) hs[r][k] = dA * hs[r][k] + dtv * xv[r] * bv[k];
        }
        __syncthreads();
    }
    float *o = a.st + ((b * a.nch + c) * a.H + h) * (int64_t)(P * N);
#pragma unroll
    for (int r = 0; r < 8; r++) st<NL>(o + (p0 + r) * N + n0, hs[r]);
    if (threadIdx.x == 0) a.decay[(b * a.nch + c) * a.H + h] = __expf(logdecay);
}

/* Reverse recurrence of dh over the chunk from zero; writes dA_first * dh_first. */
template <int P, int N>
__global__ void __launch_bounds__(P * 4) dh_local(args a) {
    constexpr int NL = N / 32;
    __shared__ __align__(16) tile_smem<P, N> s;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, p0 = warp * 8, n0 = lane * NL;
    const int64_t h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (a.H / a.G);
    const int64_t t_begin = c * a.T, t_end = min(t_begin + a.T, a.L);
    float dh[8][NL];
#pragma unroll
    for (int r = 0; r < 8; r++)
#pragma unroll
        for (int k = 0; k < NL; k++) dh[r][k] = 0.0f;
    const int64_t ntile = (t_end - t_begin + TT - 1) / TT;
    for (int64_t kt = ntile - 1; kt >= 0; kt--) {
        const int64_t t0 = t_begin + kt * TT;
        const int nvalid = (int)min((int64_t)TT, t_end - t0);
        load_tile<P, N, false, false>(s, a, b * a.L + t0, h, g, nvalid, nullptr);
        for (int j = nvalid - 1; j >= 0; j--) {
            float gv[8], cv[NL];
            ld8(gv, &s.gs[j][p0]);
            ld<NL>(cv, &s.Cs[j][n0]);
            const float dA = s.dAv[j];
#pragma unroll
            for (int r = 0; r < 8; r++)
#pragma unroll
                for (int k = 0; k < NL; k++) dh[r][k] = dA * (dh[r][k] + gv[r] * cv[k]);
        }
        __syncthreads();
    }
    float *o = a.dst + ((b * a.nch + c) * a.H + h) * (int64_t)(P * N);
#pragma unroll
    for (int r = 0; r < 8; r++) st<NL>(o + (p0 + r) * N + n0, dh[r]);
}

template <int P, int N>
constexpr int dyn_smem() { return (P / 8) * TT * (N + 1) * 4; }

template <int P, int N>
__global__ void __launch_bounds__(P * 4, 2) chunk_bwd(args a) {
    constexpr int NL = N / 32, NW = P / 8;
    __shared__ __align__(16) tile_smem<P, N> s;
    __shared__ float w1[TMAX_BWD], xdx[TMAX_BWD], dtpc[TMAX_BWD], sgc[TMAX_BWD], red[32];
    extern __shared__ __align__(16) float dyn[];
    float *stage = dyn;             /* [NW][TT][N] */
    float *wst = dyn + NW * TT * N; /* [NW][TT] */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, p0 = warp * 8, n0 = lane * NL;
    const int sel = row_sel(), pme = p0 + sel; /* the row whose ys / dx this lane ends with */
    const bool owner = (lane & 3) == 0;        /* one writer per row */
    const int64_t h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (a.H / a.G);
    const int64_t t_begin = c * a.T, t_end = min(t_begin + a.T, a.L);
    const int64_t PN = (int64_t)P * N, sidx = ((b * a.nch + c) * a.H + h) * PN;
    const float Dh = a.D ? a.D[h] : 0.0f, Ah = a.A[h];
    const bool has_z = a.z != nullptr;
    for (int i = tid; i < a.T; i += blockDim.x) w1[i] = 0.0f, xdx[i] = 0.0f, dtpc[i] = 0.0f, sgc[i] = 0.0f;
    float hs[8][NL];
#pragma unroll
    for (int r = 0; r < 8; r++) ld<NL>(hs[r], a.st + sidx + (p0 + r) * N + n0);
    float dD_acc = 0.0f;
    const int64_t ntile = (t_end - t_begin + TT - 1) / TT;
    /* ---- forward phase: ys, dz, dC, <g, ys> ---- */
    for (int64_t kt = 0; kt < ntile; kt++) {
        const int64_t t0 = t_begin + kt * TT;
        const int nvalid = (int)min((int64_t)TT, t_end - t0);
        const int64_t row0 = b * a.L + t0;
        load_tile<P, N, true, true>(s, a, row0, h, g, nvalid, &sgc[kt * TT]);
        for (int j = tid; j < nvalid; j += blockDim.x) dtpc[kt * TT + j] = s.dtp[j];
        for (int j = 0; j < nvalid; j++) {
            float xv[8], gv[8], bv[NL], cv[NL], ysp[8];
            ld8(xv, &s.xs[j][p0]);
            ld8(gv, &s.gs[j][p0]);
            ld<NL>(bv, &s.Bs[j][n0]);
            ld<NL>(cv, &s.Cs[j][n0]);
            const float dA = s.dAv[j], dtv = s.dtp[j];
            float dc[NL];
#pragma unroll
            for (int k = 0; k < NL; k++) dc[k] = 0.0f;
#pragma unroll
            for (int r = 0; r < 8; r++) {
                const float xp = dtv * xv[r];
                ysp[r] = 0.0f;
#pragma unroll
                for (int k = 0; k < NL; k++) {
                    hs[r][k] = dA * hs[r][k] + xp * bv[k];
                    ysp[r] += hs[r][k] * cv[k];
                    dc[k] += gv[r] * hs[r][k];
                }
            }
            st<NL>(stage + (warp * TT + j) * N + n0, dc);
            const float ys = sum_rows(ysp);
            float s1 = 0.0f;
            if (owner) {
                const float xme = s.xs[j][pme], gme = s.gs[j][pme];
                s1 = gme * ys;
                dD_acc += gme * xme;
                if (has_z) {
                    const float zv = s.zs[j][pme], sz = mamba_scan::sigm(zv);
                    s.os[j][pme] = s.dys[j][pme] * (ys + Dh * xme) * sz * (1.0f + zv * (1.0f - sz));
                }
            }
            s1 = mamba_scan::warp_sum(s1);
            if (lane == 0) wst[warp * TT + j] = s1;
        }
        __syncthreads();
        if (has_z) mamba_scan::store_rows<P>(a.dz + h * P, &s.os[0][0], row0, a.H * P, nvalid);
        for (int e = tid; e < nvalid * N; e += blockDim.x) {
            const int j = e / N, n = e % N;
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < NW; w++) sum += stage[(w * TT + j) * N + n];
            atomicAdd(a.dCm + (row0 + j) * a.G * N + g * N + n, sum);
        }
        for (int j = tid; j < nvalid; j += blockDim.x) {
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < NW; w++) sum += wst[w * TT + j];
            w1[kt * TT + j] = sum;
        }
        __syncthreads();
    }
    /* ---- reverse phase: dx, dB, <x, dh B>; E_out = <dh_out, h_out> ---- */
    float dh[8][NL], e_part = 0.0f;
#pragma unroll
    for (int r = 0; r < 8; r++) {
        ld<NL>(dh[r], a.dst + sidx + (p0 + r) * N + n0);
#pragma unroll
        for (int k = 0; k < NL; k++) e_part += dh[r][k] * hs[r][k];
    }
    const float E_out = mamba_scan::block_sum(e_part, red);
    for (int64_t kt = ntile - 1; kt >= 0; kt--) {
        const int64_t t0 = t_begin + kt * TT;
        const int nvalid = (int)min((int64_t)TT, t_end - t0);
        const int64_t row0 = b * a.L + t0;
        load_tile<P, N, true, true>(s, a, row0, h, g, nvalid, nullptr);
        for (int j = nvalid - 1; j >= 0; j--) {
            float xv[8], gv[8], bv[NL], cv[NL], dxp[8];
            ld8(xv, &s.xs[j][p0]);
            ld8(gv, &s.gs[j][p0]);
            ld<NL>(bv, &s.Bs[j][n0]);
            ld<NL>(cv, &s.Cs[j][n0]);
            const float dA = s.dAv[j], dtv = s.dtp[j];
            float db[NL];
#pragma unroll
            for (int k = 0; k < NL; k++) db[k] = 0.0f;
#pragma unroll
            for (int r = 0; r < 8; r++) {
                dxp[r] = 0.0f;
#pragma unroll
                for (int k = 0; k < NL; k++) {
                    dh[r][k] += gv[r] * cv[k];
                    dxp[r] += dh[r][k] * bv[k];
                    db[k] += dh[r][k] * xv[r];
                }
            }
#pragma unroll
            for (int k = 0; k < NL; k++) db[k] *= dtv;
            st<NL>(stage + (warp * TT + j) * N + n0, db);
            const float dxs = sum_rows(dxp);
            float s2 = 0.0f;
            if (owner) {
                const float xme = s.xs[j][pme], gme = s.gs[j][pme];
                s.os[j][pme] = dtv * dxs + Dh * gme;
                s2 = xme * dxs;
            }
            s2 = mamba_scan::warp_sum(s2);
            if (lane == 0) wst[warp * TT + j] = s2;
#pragma unroll
            for (int r = 0; r < 8; r++)
#pragma unroll
                for (int k = 0; k < NL; k++) dh[r][k] *= dA;
        }
        __syncthreads();
        mamba_scan::store_rows<P>(a.dx + h * P, &s.os[0][0], row0, a.H * P, nvalid);
        for (int e = tid; e < nvalid * N; e += blockDim.x) {
            const int j = e / N, n = e % N;
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < NW; w++) sum += stage[(w * TT + j) * N + n];
            atomicAdd(a.dBm + (row0 + j) * a.G * N + g * N + n, sum);
        }
        for (int j = tid; j < nvalid; j += blockDim.x) {
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < NW; w++) sum += wst[w * TT + j];
            xdx[kt * TT + j] = sum;
        }
        __syncthreads();
    }
    /* ---- per-token scalars: R_t suffix sums, ddt, dA, ddt_bias ---- */
    const int nt = (int)(t_end - t_begin);
    if (tid == 0) {
        float R = E_out;
        for (int t = nt - 1; t >= 0; t--) {
            R += w1[t] - dtpc[t] * xdx[t];
            w1[t] = R;
        }
    }
    __syncthreads();
    float dA_part = 0.0f, db_part = 0.0f;
    for (int t = tid; t < nt; t += blockDim.x) {
        const float dd = (xdx[t] + w1[t] * Ah) * sgc[t];
        a.ddt[(b * a.L + t_begin + t) * a.H + h] = dd;
        dA_part += w1[t] * dtpc[t];
        db_part += dd;
    }
    const float sA = mamba_scan::block_sum(dA_part, red), sb = mamba_scan::block_sum(db_part, red);
    const float sD = mamba_scan::block_sum(dD_acc, red);
    if (tid == 0) {
        if (a.dA) atomicAdd(a.dA + h, sA);
        if (a.ddt_bias) atomicAdd(a.ddt_bias + h, sb);
        if (a.dD) atomicAdd(a.dD + h, sD);
    }
}

} // namespace mamba_bwd
#endif
