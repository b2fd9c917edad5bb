/* mamba_ssd_bwd_wg2.cuh — the gradient kernel of the Mamba-2 scan backward (P = 64, N = 128) with
 * TWO heads of one group per block: two warpgroups (256 threads), warpgroup w runs head 2 hp + w of
 * the item's head pair hp with exactly the math, passes and per-head panels of
 * mamba_ssd_bwd_wg::ssd_bwd_wg (its header gives every formula and phase). What the pair shares:
 *   - the B and C panels (both heads read the same rows of their group): loaded once (warpgroup 0
 *     copies B, warpgroup 1 copies C), half the B / C reads of L2;
 *   - the dB and dC reductions: warpgroup 0 stages its fp32 [Q x N] sums in shared memory,
 *     warpgroup 1 adds its own into the same stage (the same thread -> element map, warp w of
 *     each warpgroup paired by the named barrier 1 + w of 64 threads), and warpgroup 1 issues one
 *     bulk reduction (cp.reduce.async.bulk .add.f32) per row: half the L2 read-modify-write
 *     traffic of dB / dC (64 KB -> 32 KB per head and sub-chunk).
 * Requires H / G even (both heads of a pair in one group); mamba.cu falls back to ssd_bwd_wg else.
 * Items: head pairs (fastest), chunks, batch; persistent grid of one block per SM (the same 8
 * warps per SM as ssd_bwd_wg's two blocks). Every __syncthreads is block-wide: the two heads run
 * their sub-chunks in lock step (their B / C panels are the same).
 * Per-warpgroup scratch: the block's two slices of the backward's scratch (NSUB_MAX x P x N bf16
 * each): with half as many blocks the workspace is the same as ssd_bwd_wg's.
 * Shared memory (1024-aligned): B 2 panels, C 2 panels (shared), then per warpgroup 9 panels
 * (X, G, z/F, h 2, dh 2, M', W1), then per warpgroup the vectors: 192032 B, one block per SM.
 * dB / dC stages (HSTAGE = 8 rows x 544 B each, 8 per warp pair): warpgroup 0's h panels (3),
 * warpgroup 1's h panels (3), warpgroup 0's M' and F panels: none is read after dC's products.
 * Only the sm_90a build has a body; included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_SSD_BWD_WG2_CUH
#define LONGCTX_MAMBA_SSD_BWD_WG2_CUH

#include "mamba_ssd_bwd_wg.cuh"

namespace mamba_ssd_bwd_wg2 {

using mamba_ssd_wg::N;
using mamba_ssd_wg::P;
using mamba_ssd_wg::PANEL;
using mamba_ssd_wg::Q;
constexpr int NT2 = 256; /* two warpgroups */

constexpr int O_B = 0, O_C = 2 * PANEL, O_WG = 4 * PANEL, WG_PANELS = 9 * PANEL;
/* within a warpgroup's panels */
constexpr int R_X = 0, R_G = PANEL, R_Z = 2 * PANEL, R_H = 3 * PANEL, R_DH = 5 * PANEL, R_M = 7 * PANEL, R_W = 8 * PANEL;
constexpr int VEC_BYTES = (mamba_ssd_bwd_wg::NV_A + mamba_ssd_bwd_wg::NV) * 4; /* 5392 B */
constexpr int O_V = O_WG + 2 * WG_PANELS;
constexpr int SMEM = O_V + 2 * VEC_BYTES + 1024; /* + alignment slack: 192032 B */
static_assert(SMEM <= 227 * 1024, "two heads per block must fit the 227 KB of an H100 SM");
constexpr int SROW = N + 8, HSTAGE = 8 * SROW * 4; /* ssd_bwd_wg's stage: 8 rows of 544 B */
static_assert(3 * HSTAGE <= 2 * PANEL, "three stages in an h panel pair");
static_assert(VEC_BYTES % 16 == 0, "vector areas 16-byte aligned");

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
using lc_mma::pack_bf16;
using mamba_scan::fexp;
using mamba_ssd_bwd::sum_g;
using mamba_ssd_bwd::sum_t;
using mamba_ssd_bwd_wg::gate_piece;
using mamba_ssd_bwd_wg::dh_dot_h;
using mamba_ssd_bwd_wg::u_and_scale;
using mamba_ssd_bwd_wg::ld2;
using mamba_ssd_bwd_wg::pin;
using mamba_ssd_bwd_wg::row_frags;
static_assert(HSTAGE == mamba_ssd_bwd_wg::HSTAGE && SROW == mamba_ssd_bwd_wg::SROW, "the stage layout of ssd_bwd_wg");
using mamba_ssd_bwd_wg::ss64;

/* mamba_ssd_wg::load_sw with the thread index within the warpgroup (lt < 128): the same piece ->
 * thread map, so each thread converts (G, F) what it copied */
template <int W>
__device__ __forceinline__ void load_sw2(uint32_t dst, const __nv_bfloat16 *src, int stride, int nvalid, int lt) {
    constexpr int CPR = W / 8, IT = Q * CPR / 128;
#pragma unroll
    for (int k = 0; k < IT; k++) {
        const int c = lt + k * 128, r = c / CPR, ch = c % CPR;
        const bool ok = r < nvalid;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst + (ch >> 3) * PANEL + sm90::sw128(r, ch & 7)),
                     "l"(src + (ok ? r * stride + ch * 8 : 0)), "r"(ok ? 16 : 0)
                     : "memory");
    }
}

/* mamba_ssd_bwd::prefix_vec for warp 0 of either warpgroup (lane = threadIdx.x & 31): dt', c,
 * w, e, wd = exp(c_end - c), sg = sig(dt + bias) (zero past nvalid) of the sub-chunk whose raw dt
 * column starts at dtrow (dt + row * H + h) */
__device__ __forceinline__ void prefix2(float *vec, const float *dtrow, int64_t H, float Ah, float bias, int nvalid) {
    mamba_ssd_bwd::prefix_vec(vec, mamba_ssd2::dt_fetch(dtrow, H, nvalid), Ah, bias, nvalid, threadIdx.x & 31);
}

/* warp w of warpgroup 0 with warp w of warpgroup 1 (named barrier 1 + w, 64 threads) */
__device__ __forceinline__ void pair_bar(int warp) { asm volatile("bar.sync %0, 64;\n" ::"r"(1 + warp) : "memory"); }

/* the 8 half-stages of the warp pair w (2w, 2w + 1): warpgroup 0's h (3), warpgroup 1's h (3),
 * warpgroup 0's M' and F panels */
__device__ __forceinline__ int half_stage2(int k) {
    return k < 3 ? O_WG + R_H + k * HSTAGE
         : k < 6 ? O_WG + WG_PANELS + R_H + (k - 3) * HSTAGE
         : k == 6 ? O_WG + R_M : O_WG + R_Z;
}

/* the accumulator [Q x N] (two 64-column halves) into the warp's stages (the map of
 * mamba_ssd_bwd_wg::red_rows: rows 16 warp + g at st_lo, + 8 at st_hi); ADD: added to what
 * warpgroup 0 staged there */
template <bool ADD>
__device__ __forceinline__ void stage_rows(const float (&acc)[64], unsigned char *st_lo, unsigned char *st_hi) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    float *sl = reinterpret_cast<float *>(st_lo) + g * SROW + 2 * t, *sh = reinterpret_cast<float *>(st_hi) + g * SROW + 2 * t;
#pragma unroll
    for (int pn = 0; pn < 2; pn++)
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float *v = acc + pn * 32 + 4 * i;
            const int n = pn * 64 + 8 * i;
            float2 lo = make_float2(v[0], v[1]), hi = make_float2(v[2], v[3]);
            if (ADD) {
                const float2 ol = *reinterpret_cast<const float2 *>(sl + n), oh = *reinterpret_cast<const float2 *>(sh + n);
                lo.x += ol.x, lo.y += ol.y, hi.x += oh.x, hi.y += oh.y;
            }
            *reinterpret_cast<float2 *>(sl + n) = lo;
            *reinterpret_cast<float2 *>(sh + n) = hi;
        }
}
/* the warp's 16 staged rows (< nvalid) added into dst by bulk reductions in L2, one 512-byte row a
 * lane (lanes 0-7 the low rows, 8-15 the high rows); the caller waits for their reads */
__device__ __forceinline__ void issue_rows(float *dst, int64_t row0, int GN, int grp, int nvalid, unsigned char *st_lo,
                                           unsigned char *st_hi) {
    const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3;
    sm90::fence_proxy_async(); /* this warp's st.shared -> the bulk copy engine */
    __syncwarp();
    const int r = warp * 16 + (lane & 15);
    if (lane < 16 && r < nvalid)
        asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], 512;\n" ::"l"(
                         dst + (row0 + r) * GN + grp * N),
                     "r"(lc_mma::smem_u32((lane < 8 ? st_lo : st_hi) + (lane & 7) * SROW * 4))
                     : "memory");
    sm90::bulk_commit();
}
#endif

__global__ void __launch_bounds__(NT2, 1) ssd_bwd_wg2(mamba_scan::args a, __nv_bfloat16 *scratch_all, int64_t nwork) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using mamba_ssd_bwd_wg::NV_A;
    using sm90::desc_k;
    using sm90::desc_mn;
    using sm90::sw128;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *smem = smem_raw + ((1024 - (lc_mma::smem_u32(smem_raw) & 1023)) & 1023);
    const int tid = threadIdx.x, wg = tid >> 7, lt = tid & 127, warp = lt >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int r_lo = warp * 16 + g, r_hi = r_lo + 8; /* this thread's accumulator rows */
    unsigned char *wsm = smem + O_WG + wg * WG_PANELS; /* this warpgroup's panels */
    const uint32_t sb = lc_mma::smem_u32(smem), wb = lc_mma::smem_u32(wsm);
    const uint32_t bs = sb + O_B, cs = sb + O_C;
    const uint32_t xs = wb + R_X, gs = wb + R_G, zs = wb + R_Z, hs = wb + R_H, dhs = wb + R_DH, ms = wb + R_M, ws = wb + R_W;
    float *va = (float *)(smem + O_V + wg * VEC_BYTES), *vec = va + NV_A;
    float *dtp = vec, *cum = vec + Q, *wv = vec + 2 * Q, *ec = vec + 3 * Q, *wd = vec + 4 * Q, *sg = vec + 5 * Q;
    float *zr = vec + 6 * Q, *zcw = vec + 7 * Q, *uu = vec + 11 * Q, *qq = vec + 12 * Q, *dcE = vec + 13 * Q;
    __nv_bfloat16 *scratch = scratch_all + ((size_t)blockIdx.x * 2 + wg) * (mamba_ssd_bwd::NSUB_MAX * P * N);
    const int HP = (int)a.H * P, GN = (int)a.G * N, NHP = (int)a.H / 2;
    for (int64_t item = blockIdx.x; item < nwork; item += gridDim.x) {
        const int hp = (int)(item % NHP), c = (int)((item / NHP) % a.nch), b = (int)(item / ((int64_t)NHP * a.nch));
        const int h = 2 * hp + wg;
        const int grp = (2 * hp) / (int)(a.H / a.G); /* the pair's group (H / G even) */
        const int t_begin = c * (int)a.T, t_end = (int)min((int64_t)t_begin + a.T, a.L);
        const int ns = (t_end - t_begin + Q - 1) / Q;
        const float Ah = a.A[h], bias = a.dt_bias ? a.dt_bias[h] : 0.0f, Dh = a.D ? a.D[h] : 0.0f;
        const float *dtcol = a.dt + (int64_t)b * a.L * a.H + h;
        const int64_t sidx = (((int64_t)b * a.nch + c) * a.H + h) * (int64_t)(P * N);
        auto nv_of = [&](int s) { return min(Q, t_end - t_begin - s * Q); };
        auto row_of = [&](int s) { return (int64_t)b * a.L + t_begin + s * Q; };
        auto dt_of = [&](int s) { return mamba_ssd2::dt_fetch(dtcol + (int64_t)(t_begin + s * Q) * a.H, a.H, nv_of(s)); };
        /* ---- sweep A (per warpgroup, its head): X of sub-chunk s in buffer s & 1 (0: the X panel,
         * 1: the G panel), B of s in the shared B (0) or C (1) panels, copied by warpgroup 0 ---- */
        {
            float hacc[64];
#pragma unroll
            for (int pn = 0; pn < 2; pn++)
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    const float *s0 = a.st + sidx + r_lo * N + pn * 64 + 8 * i + 2 * t;
                    const float2 lo = *reinterpret_cast<const float2 *>(s0), hi = *reinterpret_cast<const float2 *>(s0 + 8 * N);
                    float *d = hacc + pn * 32 + 4 * i;
                    d[0] = lo.x, d[1] = lo.y, d[2] = hi.x, d[3] = hi.y;
                }
            auto issue_xb = [&](int s, int bf) {
                const int64_t r0 = row_of(s);
                load_sw2<P>(bf ? gs : xs, a.x + r0 * HP + h * P, HP, nv_of(s), lt);
                if (wg == 0) load_sw2<N>(bf ? cs : bs, a.Bm + r0 * GN + grp * N, GN, nv_of(s), lt);
            };
            if (ns > 1) issue_xb(0, 0);
            mamba_ssd2::cp_commit();
            float2 raw = make_float2(0.f, 0.f);
            if (warp == 0 && ns > 1) {
                mamba_ssd2::decay_prefix(va, dt_of(0), Ah, bias, nv_of(0));
                if (ns > 2) raw = dt_of(1);
            }
            for (int s = 0; s < ns; s++) {
                __nv_bfloat16 *sc = scratch + (size_t)s * P * N;
#pragma unroll
                for (int pn = 0; pn < 2; pn++)
#pragma unroll
                    for (int i = 0; i < 8; i++) {
                        const float *d = hacc + pn * 32 + 4 * i;
                        __nv_bfloat16 *o = sc + r_lo * N + pn * 64 + 8 * i + 2 * t;
                        *reinterpret_cast<uint32_t *>(o) = pack_bf16(d[0], d[1]);
                        *reinterpret_cast<uint32_t *>(o + 8 * N) = pack_bf16(d[2], d[3]);
                    }
                if (s == ns - 1) break;
                const int bf = s & 1;
                if (s + 1 < ns - 1) issue_xb(s + 1, bf ^ 1); /* that buffer was freed by the last barrier [B] */
                mamba_ssd2::cp_commit();
                mamba_ssd2::cp_wait<1>();
                sm90::fence_proxy_async();
                __syncthreads(); /* [A] */
                if (warp == 0 && s + 1 < ns - 1) {
                    mamba_ssd2::decay_prefix(va + (bf ^ 1) * 4 * Q, raw, Ah, bias, nv_of(s + 1));
                    if (s + 2 < ns - 1) raw = dt_of(s + 2);
                }
                const float *v = va + bf * 4 * Q;
                uint32_t xa[4][4];
                mamba_ssd_wg::xw_frags(xa, bf ? gs : xs, v + 2 * Q);
                const float E = fexp(v[2 * Q - 1]);
#pragma unroll
                for (int i = 0; i < 64; i++) hacc[i] *= E, sm90::reg_fence(hacc[i]); /* before the wgmma fence */
                mamba_ssd_wg::state_step(hacc, xa, bf ? cs : bs);
                __syncthreads(); /* [B] */
            }
        }
        /* the scratch (global) written above is read by other threads' copies below */
        __syncthreads();
        /* ---- reverse over the sub-chunks ---- */
        float dacc[64];
#pragma unroll
        for (int pn = 0; pn < 2; pn++)
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const float *s0 = a.dst + sidx + r_lo * N + pn * 64 + 8 * i + 2 * t;
                const float2 lo = *reinterpret_cast<const float2 *>(s0), hi = *reinterpret_cast<const float2 *>(s0 + 8 * N);
                float *d = dacc + pn * 32 + 4 * i;
                d[0] = lo.x, d[1] = lo.y, d[2] = hi.x, d[3] = hi.y;
            }
        float dD_acc = 0.0f, dA_acc = 0.0f, db_acc = 0.0f;
        for (int s = ns - 1; s >= 0; s--) {
            const int64_t r0 = row_of(s);
            const int nvalid = nv_of(s);
            const int64_t xoff = r0 * HP + h * P, boff = r0 * GN + grp * N;
            load_sw2<P>(xs, a.x + xoff, HP, nvalid, lt);
            load_sw2<P>(gs, a.dy + xoff, HP, nvalid, lt);
            if (a.z) load_sw2<P>(zs, a.z + xoff, HP, nvalid, lt);
            load_sw2<N>(wg ? cs : bs, (wg ? a.Cm : a.Bm) + boff, GN, nvalid, lt); /* the shared B, C */
            load_sw2<N>(hs, scratch + (size_t)s * P * N, N, P, lt);
            mamba_ssd2::cp_commit();
            if (s > 0) { /* the earlier sub-chunk's rows into L2 while this one computes */
                const int64_t rr = r0 - Q + (lt & 63);
                const void *p0, *p1;
                if (lt < 64) p0 = a.x + rr * HP + h * P, p1 = (wg ? a.Cm : a.Bm) + rr * GN + grp * N;
                else p0 = a.dy + rr * HP + h * P, p1 = a.z ? a.z + rr * HP + h * P : nullptr;
                asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p0));
                if (p1) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p1));
                if (lt < 64) asm volatile("prefetch.global.L2 [%0];\n" ::"l"((const char *)p1 + 128));
            }
            mamba_ssd_wg::put_h(wsm + R_DH, dacc);
            if (warp == 0) prefix2(vec, dtcol + (int64_t)(t_begin + s * Q) * a.H, a.H, Ah, bias, nvalid);
            mamba_ssd2::cp_wait<0>();
            /* G = dy silu(z) in place, F = dy sig(z) (1 + z (1 - sig(z))) in place of z, dD part
             * (ssd_bwd_wg's conversion over the pieces this thread copied) */
#pragma unroll
            for (int k = 0; k < Q * (P / 8) / 128; k++) {
                const int cc = lt + k * 128, off = sw128(cc / (P / 8), cc % (P / 8));
                gate_piece(wsm + R_G + off, wsm + R_X + off, wsm + R_Z + off, a.z != nullptr, dD_acc);
            }
            sm90::fence_proxy_async(); /* G, dh (st.shared) and the copies -> wgmma */
            __syncthreads();           /* [A] */
            /* ---- S, GX, Yc ---- */
            float S[32], GX[32], Y[32];
            sm90::fence();
#pragma unroll
            for (int kk = 0; kk < N / 16; kk++) {
                const uint32_t ko = (kk >> 2) * PANEL + (kk & 3) * 32;
                ss64<0, 0>(S, desc_k(cs + ko), desc_k(bs + ko), kk > 0);
            }
#pragma unroll
            for (int kk = 0; kk < P / 16; kk++) ss64<0, 0>(GX, desc_k(gs + kk * 32), desc_k(xs + kk * 32), kk > 0);
            sm90::commit();
#pragma unroll
            for (int kk = 0; kk < N / 16; kk++) {
                const uint32_t ko = (kk >> 2) * PANEL + (kk & 3) * 32;
                ss64<0, 0>(Y, desc_k(cs + ko), desc_k(hs + ko), kk > 0);
            }
            sm90::commit();
            sm90::wait<1>();
            pin(S), pin(GX);
            {
                const float c_lo = cum[r_lo], c_hi = cum[r_hi];
                float zr_lo = 0.0f, zr_hi = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    const int j = 8 * i + 2 * t;
                    const float2 dj = *reinterpret_cast<const float2 *>(dtp + j), cj = *reinterpret_cast<const float2 *>(cum + j);
                    const float l0 = j <= r_lo ? fexp(c_lo - cj.x) : 0.0f, l1 = j + 1 <= r_lo ? fexp(c_lo - cj.y) : 0.0f;
                    const float l2 = j <= r_hi ? fexp(c_hi - cj.x) : 0.0f, l3 = j + 1 <= r_hi ? fexp(c_hi - cj.y) : 0.0f;
                    const float s0 = S[4 * i] * l0, s1 = S[4 * i + 1] * l1, s2 = S[4 * i + 2] * l2, s3 = S[4 * i + 3] * l3;
                    const float x0 = GX[4 * i], x1 = GX[4 * i + 1], x2 = GX[4 * i + 2], x3 = GX[4 * i + 3];
                    const float z0 = s0 * x0, z1 = s1 * x1, z2 = s2 * x2, z3 = s3 * x3;
                    zr_lo += z0 * dj.x + z1 * dj.y;
                    zr_hi += z2 * dj.x + z3 * dj.y;
                    const float zc0 = sum_g(z0 + z2), zc1 = sum_g(z1 + z3);
                    if (g == 0) *reinterpret_cast<float2 *>(zcw + warp * Q + j) = make_float2(zc0, zc1);
                    *reinterpret_cast<uint32_t *>(wsm + R_M + sw128(r_lo, i) + 4 * t) = pack_bf16(s0 * dj.x, s1 * dj.y);
                    *reinterpret_cast<uint32_t *>(wsm + R_M + sw128(r_hi, i) + 4 * t) = pack_bf16(s2 * dj.x, s3 * dj.y);
                    *reinterpret_cast<uint32_t *>(wsm + R_W + sw128(r_lo, i) + 4 * t) = pack_bf16(x0 * l0 * dj.x, x1 * l1 * dj.y);
                    *reinterpret_cast<uint32_t *>(wsm + R_W + sw128(r_hi, i) + 4 * t) = pack_bf16(x2 * l2 * dj.x, x3 * l3 * dj.y);
                }
                zr_lo = sum_t(zr_lo), zr_hi = sum_t(zr_hi);
                if (t == 0) zr[r_lo] = zr_lo, zr[r_hi] = zr_hi;
            }
            sm90::wait<0>();
            pin(Y);
            u_and_scale(Y, wsm + R_G, ec, uu, r_lo, r_hi, t);
            sm90::fence_proxy_async(); /* M', W1 (st.shared) -> wgmma */
            __syncthreads();           /* [B] */
            {
                float A1[32], A2[32];
                sm90::fence();
#pragma unroll
                for (int kk = 0; kk < Q / 16; kk++) ss64<0, 1>(Y, desc_k(ms + kk * 32), desc_mn(xs + kk * 16 * 128), 1);
#pragma unroll
                for (int kk = 0; kk < N / 16; kk++) {
                    const uint32_t ko = (kk >> 2) * PANEL + (kk & 3) * 32;
                    ss64<0, 0>(A2, desc_k(bs + ko), desc_k(dhs + ko), kk > 0);
                }
#pragma unroll
                for (int kk = 0; kk < Q / 16; kk++) ss64<1, 1>(A1, desc_mn(ms + kk * 16 * 128), desc_mn(gs + kk * 16 * 128), kk > 0);
                sm90::commit();
                sm90::wait<0>();
                pin(Y), pin(A1), pin(A2);
                const float w_lo = wv[r_lo], w_hi = wv[r_hi];
                float q_lo = 0.0f, q_hi = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++)
#pragma unroll
                    for (int hv = 0; hv < 2; hv++) {
                        const int r = r_lo + 8 * hv, off = sw128(r, i) + 4 * t, e = 4 * i + 2 * hv;
                        const float2 xf = ld2(wsm + R_X + off), gf = ld2(wsm + R_G + off);
                        const float b0 = A2[e], b1 = A2[e + 1];
                        const float qv = xf.x * b0 + xf.y * b1;
                        if (hv) q_hi += qv;
                        else q_lo += qv;
                        if (r < nvalid) {
                            const float w = hv ? w_hi : w_lo;
                            const int64_t go = xoff + (int64_t)r * HP + 8 * i + 2 * t;
                            *reinterpret_cast<__nv_bfloat162 *>(a.dx + go) =
                                __floats2bfloat162_rn(A1[e] + w * b0 + Dh * gf.x, A1[e + 1] + w * b1 + Dh * gf.y);
                            if (a.z) {
                                const float2 ff = ld2(wsm + R_Z + off);
                                *reinterpret_cast<__nv_bfloat162 *>(a.dz + go) =
                                    __floats2bfloat162_rn(ff.x * (Y[e] + Dh * xf.x), ff.y * (Y[e + 1] + Dh * xf.y));
                            }
                        }
                    }
                q_lo = sum_t(q_lo), q_hi = sum_t(q_hi);
                if (t == 0) qq[r_lo] = q_lo, qq[r_hi] = q_hi;
            }
            /* ---- E <dh, h> (before the dC staging overwrites h) ---- */
            const float E = fexp(cum[Q - 1]);
            dh_dot_h(dacc, wsm + R_H, dcE, r_lo, r_hi, warp, lane, t);
            unsigned char *st_lo = smem + half_stage2(2 * warp), *st_hi = smem + half_stage2(2 * warp + 1);
            /* ---- dC = (diag(e) G) h + W1 B: the pair's sum, one reduction ---- */
            {
                float acc[64];
                uint32_t fa[4][4];
                row_frags(fa, gs, ec[r_lo], ec[r_hi]);
                sm90::fence();
#pragma unroll
                for (int kk = 0; kk < P / 16; kk++)
#pragma unroll
                    for (int pn = 0; pn < 2; pn++)
                        sm90::rs_n64<1>(acc + pn * 32, fa[kk], desc_mn(hs + pn * PANEL + kk * 16 * 128), kk > 0);
#pragma unroll
                for (int kk = 0; kk < Q / 16; kk++)
#pragma unroll
                    for (int pn = 0; pn < 2; pn++)
                        ss64<0, 1>(acc + pn * 32, desc_k(ws + kk * 32), desc_mn(bs + pn * PANEL + kk * 16 * 128), 1);
                sm90::commit();
                sm90::wait<0>();
                pin(acc), pin(fa);
                __syncthreads(); /* h (both warpgroups), M', F are free: the stages */
                if (wg == 0) stage_rows<false>(acc, st_lo, st_hi);
                pair_bar(warp);
                if (wg == 1) {
                    stage_rows<true>(acc, st_lo, st_hi);
                    issue_rows(a.dCm, r0, GN, grp, nvalid, st_lo, st_hi);
                }
            }
            /* ---- dB = (diag(w) X) dh + W1^T C: the pair's sum, one reduction ---- */
            {
                float acc[64];
                uint32_t fa[4][4];
                row_frags(fa, xs, wv[r_lo], wv[r_hi]);
                sm90::fence();
#pragma unroll
                for (int kk = 0; kk < P / 16; kk++)
#pragma unroll
                    for (int pn = 0; pn < 2; pn++)
                        sm90::rs_n64<1>(acc + pn * 32, fa[kk], desc_mn(dhs + pn * PANEL + kk * 16 * 128), kk > 0);
#pragma unroll
                for (int kk = 0; kk < Q / 16; kk++)
#pragma unroll
                    for (int pn = 0; pn < 2; pn++)
                        ss64<1, 1>(acc + pn * 32, desc_mn(ws + kk * 16 * 128), desc_mn(cs + pn * PANEL + kk * 16 * 128), 1);
                sm90::commit();
                sm90::wait<0>();
                pin(acc), pin(fa);
                if (wg == 1) sm90::bulk_wait_read<0>(); /* dC's reductions have read the pair's stages */
                pair_bar(warp);
                if (wg == 0) stage_rows<false>(acc, st_lo, st_hi);
                pair_bar(warp);
                if (wg == 1) {
                    stage_rows<true>(acc, st_lo, st_hi);
                    issue_rows(a.dBm, r0, GN, grp, nvalid, st_lo, st_hi);
                }
            }
            /* ---- dh <- E dh + (G diag(e))^T C ---- */
            {
                uint32_t fa[4][4];
                mamba_ssd_wg::xw_frags(fa, gs, ec);
#pragma unroll
                for (int i = 0; i < 64; i++) dacc[i] *= E, sm90::reg_fence(dacc[i]);
                mamba_ssd_wg::state_step(dacc, fa, cs);
            }
            sm90::bulk_wait_read<0>(); /* the stages are read before the next loads */
            __syncthreads(); /* [C] the sums are complete; every tile is free */
            if (warp == 0) {
                const int k0 = 2 * lane, k1 = k0 + 1;
                const float zc0 = zcw[k0] + zcw[Q + k0] + zcw[2 * Q + k0] + zcw[3 * Q + k0];
                const float zc1 = zcw[k1] + zcw[Q + k1] + zcw[2 * Q + k1] + zcw[3 * Q + k1];
                float d0 = zr[k0] - dtp[k0] * zc0 + ec[k0] * uu[k0] - wv[k0] * qq[k0];
                float d1 = zr[k1] - dtp[k1] * zc1 + ec[k1] * uu[k1] - wv[k1] * qq[k1];
                const float extra = mamba_scan::warp_sum(wv[k0] * qq[k0] + wv[k1] * qq[k1]) + E * (dcE[0] + dcE[1] + dcE[2] + dcE[3]);
                if (lane == 31) d1 += extra;
                const float sfx = mamba_scan::warp_suffix_sum(d0 + d1, lane);
                const float da0 = sfx, da1 = sfx - d0;
                const float dd0 = (zc0 + wd[k0] * qq[k0] + Ah * da0) * sg[k0];
                const float dd1 = (zc1 + wd[k1] * qq[k1] + Ah * da1) * sg[k1];
                if (k0 < nvalid) a.ddt[(r0 + k0) * a.H + h] = dd0;
                if (k1 < nvalid) a.ddt[(r0 + k1) * a.H + h] = dd1;
                dA_acc += dtp[k0] * da0 + dtp[k1] * da1;
                db_acc += dd0 + dd1;
            }
        }
        dD_acc = mamba_scan::warp_sum(dD_acc);
        if (lane == 0 && a.dD) atomicAdd(a.dD + h, dD_acc);
        if (warp == 0) {
            dA_acc = mamba_scan::warp_sum(dA_acc), db_acc = mamba_scan::warp_sum(db_acc);
            if (lane == 0 && a.dA) atomicAdd(a.dA + h, dA_acc);
            if (lane == 0 && a.ddt_bias) atomicAdd(a.ddt_bias + h, db_acc);
        }
        __syncthreads(); /* the next item's sweep A reuses the tiles and the scratch */
    }
    sm90::bulk_wait_all();
#else
    (void)a, (void)scratch_all, (void)nwork;
#endif
}

} // namespace mamba_ssd_bwd_wg2
#endif
