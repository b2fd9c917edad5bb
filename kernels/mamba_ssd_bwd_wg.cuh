/* mamba_ssd_bwd_wg.cuh — the gradient kernel of the Mamba-2 scan backward (P = 64, N = 128) on the
 * sm_90a warpgroup MMA (wgmma): the math, passes and work split of mamba_ssd_bwd::ssd_bwd (its
 * header gives every formula), one warpgroup (128 threads) per block, every product on wgmma, the
 * gradient state dh in fp32 registers (64 a thread) as the forward's state (mamba_ssd_wg.cuh).
 * Persistent grid (two blocks per SM), items (head fastest, then chunk, batch) as ssd_bwd.
 * Per item (one head, one chunk of at most TMAX_BWD tokens):
 *   sweep A   the chunk's incoming state (a.st) runs through its sub-chunks on the forward's
 *             state-update wgmmas (mamba_ssd_wg::state_step); each sub-chunk's incoming h goes
 *             to the block's scratch as bf16 [P][N]. X, B tiles double-buffered (cp.async).
 *   reverse   over the sub-chunks (Q = 64 tokens i, j), with dh = the gradient at its end:
 *     load X, dy, z, B, C, h (scratch) into 128-byte-swizzled panels; dh -> bf16 panel;
 *     G = dy silu(z) in place of dy, F = dy sig(z) (1 + z (1 - sig(z))) in place of z (each
 *     thread converts the 16-byte pieces it copied itself), dD partials
 *     [A] S = C B^T (8 wgmma), GX = G X^T (4), Yc = C h^T (8): M' = S o L diag(dt'),
 *         W1 = GX o L diag(dt') -> bf16 panels; row sums zr, column sums zc (per warp),
 *         u_i = g_i . Yc_i
 *     [B] ys = diag(e) Yc + M' X (4), B dh^T (8), M'^T G (4, A and B MN-major):
 *         dz = F (ys + D x), dx = M'^T G + diag(w) B dh^T + D G, q_j = x_j . (B dh^T)_j
 *         E <dh, h>
 *         dC = (diag(e) G) h + W1 B       (4 x 2 from registers + 4 x 2)
 *         dB = (diag(w) X) dh + W1^T C    (4 x 2 from registers + 4 x 2, W1^T MN-major)
 *         (dB, dC: the heads of a group add theirs through fp32 bulk reductions in L2, red_rows)
 *         dh <- E dh + (G diag(e))^T C    (state_step, 8)
 *     [C] warp 0: the decay gradients, ddt, dA, ddt_bias as ssd_bwd.
 * Rows past the chunk's end are zero-filled by the copies (dt' = 0 there), so no product needs a
 * mask but the causal one of L. Operands are bf16 (as ssd_bwd): ~1e-3 relative error.
 * Shared memory: 13 panels of 8 KB (X, G, z, B 2, C 2, h 2, dh 2, M', W1) + vectors: 112.9 KB,
 * two blocks per SM. Only the sm_90a build has a body; mamba.cu launches it only when
 * lc_cuda_have_sm90a() (else ssd_bwd). Included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_SSD_BWD_WG_CUH
#define LONGCTX_MAMBA_SSD_BWD_WG_CUH

#include "mamba_ssd_bwd.cuh"
#include "mamba_ssd_wg.cuh"

namespace mamba_ssd_bwd_wg {

using mamba_ssd_wg::N;
using mamba_ssd_wg::NT;
using mamba_ssd_wg::P;
using mamba_ssd_wg::PANEL;
using mamba_ssd_wg::Q;

constexpr int O_X = 0, O_G = PANEL, O_Z = 2 * PANEL, O_B = 3 * PANEL, O_C = 5 * PANEL, O_H = 7 * PANEL;
constexpr int O_DH = 9 * PANEL, O_M = 11 * PANEL, O_W = 12 * PANEL, O_V = 13 * PANEL;
/* vectors: sweep A 2 x (dtp, cum, wv, ec); reverse dtp cum wv ec wd sg, zr, zc [4 warps], uu, qq, dcE [4] */
constexpr int NV_A = 8 * Q, NV = 13 * Q + 4;
constexpr int SMEM = O_V + (NV_A + NV) * 4 + 1024; /* + alignment slack: 112912 B */

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
using lc_mma::pack_bf16;
using mamba_scan::fexp;
using mamba_ssd_bwd::sum_g; /* sums over the 8 lanes of a column / the 4 lanes of a row */
using mamba_ssd_bwd::sum_t;

/* D[64 x 64] (+)= A[64 x 16] B[16 x 64], both through shared-memory descriptors; TA / TB = 0:
 * K-major, 1: MN-major (sm90.cuh's ss_n64 is <0, 0>, ss_n64_tt always accumulates) */
template <int TA, int TB>
__device__ __forceinline__ void ss64(float *d, uint64_t da, uint64_t db, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "%32, %33, p, 1, 1, %35, %36;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),
                   "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),
                   "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),
                   "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "l"(da), "l"(db), "r"(accumulate), "n"(TA), "n"(TB));
}
template <int NR>
__device__ __forceinline__ void pin(float (&v)[NR]) {
#pragma unroll
    for (int i = 0; i < NR; i++) sm90::reg_fence(v[i]);
}
__device__ __forceinline__ void pin(uint32_t (&f)[4][4]) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int e = 0; e < 4; e++) sm90::reg_fence(f[kk][e]);
}
__device__ __forceinline__ float2 ld2(const unsigned char *p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(p));
}
/* A fragments of diag(s) T for this warp's rows (16 warp ..; s_lo for rows g, s_hi for g + 8),
 * the 4 k-blocks of the K-major panel at ts (T[m][k]) */
__device__ __forceinline__ void row_frags(uint32_t (&fa)[4][4], uint32_t ts, float s_lo, float s_hi) {
    const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3;
    const int r = warp * 16 + (lane & 15);
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        mamba_ssd2::ldsm(fa[kk], ts + sm90::sw128(r, 2 * kk + (lane >> 4)));
        fa[kk][0] = mamba_ssd2::scale2(fa[kk][0], s_lo, s_lo);
        fa[kk][1] = mamba_ssd2::scale2(fa[kk][1], s_hi, s_hi);
        fa[kk][2] = mamba_ssd2::scale2(fa[kk][2], s_lo, s_lo);
        fa[kk][3] = mamba_ssd2::scale2(fa[kk][3], s_hi, s_hi);
    }
}
/* A [Q x N] accumulator (two 64-column halves) added into dst rows row0.. (< nvalid), group grp
 * (the heads of a group add into the same dB / dC rows): the warp's rows 16 warp + g (g < 8)
 * staged as fp32 [8][SROW] at st_lo, rows 16 warp + 8 + g at st_hi (the caller has made both
 * free), then added by bulk reductions in L2 (cp.reduce.async.bulk, one 512-byte row per lane;
 * the caller waits for their reads before the stages are reused). The row stride SROW = N + 8
 * floats (544 B) keeps the float2 stores free of bank conflicts (a 512-byte stride put the 8 rows
 * of a store on the same banks). Measured against float2 atomics from the accumulators and
 * 16-byte red.global.add.v4.f32 (lane pairs swapping halves), the unpadded stage: fwd+bwd
 * 79.7 ms at L = 1M against 81.6 and 83.8 (H100, session 5); without any dB / dC writes 65.6 ms. */
constexpr int SROW = N + 8, HSTAGE = 8 * SROW * 4; /* 4352 B */
__device__ __forceinline__ void red_rows(float *dst, const float (&acc)[64], int64_t row0, int GN, int grp, int nvalid,
                                         unsigned char *st_lo, unsigned char *st_hi) {
    const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3, g = lane >> 2, t = lane & 3;
    float *sl = reinterpret_cast<float *>(st_lo) + g * SROW + 2 * t, *sh = reinterpret_cast<float *>(st_hi) + g * SROW + 2 * t;
#pragma unroll
    for (int pn = 0; pn < 2; pn++)
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float *v = acc + pn * 32 + 4 * i;
            const int n = pn * 64 + 8 * i;
            *reinterpret_cast<float2 *>(sl + n) = make_float2(v[0], v[1]);
            *reinterpret_cast<float2 *>(sh + n) = make_float2(v[2], v[3]);
        }
    sm90::fence_proxy_async(); /* these st.shared -> the bulk copy engine */
    __syncwarp();
    const int r = warp * 16 + (lane & 15); /* lanes 0-7: the low rows, 8-15: the high rows */
    if (lane < 16 && r < nvalid)
        asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], 512;\n" ::"l"(
                         dst + (row0 + r) * GN + grp * N),
                     "r"(lc_mma::smem_u32((lane < 8 ? st_lo : st_hi) + (lane & 7) * SROW * 4))
                     : "memory");
    sm90::bulk_commit();
}
/* the 8 half-stages of red_rows (warp w: 2w, 2w + 1): free once dC's products have run (h, B,
 * M', F are not read again in the sub-chunk), reused by dB after the dC reductions read them */
__device__ __forceinline__ int half_stage(int k) {
    return k < 3 ? O_H + k * HSTAGE : k < 6 ? O_B + (k - 3) * HSTAGE : k == 6 ? O_M : O_Z;
}
/* sigmoid with a fast reciprocal (1 / inf = 0 for very negative v) */
__device__ __forceinline__ float fsig(float v) { return __fdividef(1.0f, 1.0f + fexp(-v)); }
/* Row math of the reverse sweep that ssd_bwd_wg and ssd_bwd_wg2 share (one warpgroup; this thread's
 * accumulator rows r_lo and r_hi = r_lo + 8, column pair 2 t of each 8-column group).
 * u_i = g_i . (C h^T)_i (the G panel at gp) to uu, then Y = diag(e) C h^T in place. */
__device__ __forceinline__ void u_and_scale(float (&Y)[32], const unsigned char *gp, const float *ec, float *uu, int r_lo,
                                            int r_hi, int t) {
    float u_lo = 0.0f, u_hi = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const float2 gl = ld2(gp + sm90::sw128(r_lo, i) + 4 * t), gh = ld2(gp + sm90::sw128(r_hi, i) + 4 * t);
        u_lo += gl.x * Y[4 * i] + gl.y * Y[4 * i + 1];
        u_hi += gh.x * Y[4 * i + 2] + gh.y * Y[4 * i + 3];
    }
    u_lo = sum_t(u_lo), u_hi = sum_t(u_hi);
    if (t == 0) uu[r_lo] = u_lo, uu[r_hi] = u_hi;
    const float e_lo = ec[r_lo], e_hi = ec[r_hi];
#pragma unroll
    for (int i = 0; i < 8; i++) Y[4 * i] *= e_lo, Y[4 * i + 1] *= e_lo, Y[4 * i + 2] *= e_hi, Y[4 * i + 3] *= e_hi;
}
/* <dh, h> over this warp's rows (dh in registers, h the two bf16 panels at hp) to dcE[warp] */
__device__ __forceinline__ void dh_dot_h(const float (&dacc)[64], const unsigned char *hp, float *dcE, int r_lo, int r_hi,
                                         int warp, int lane, int t) {
    float pe = 0.0f;
#pragma unroll
    for (int pn = 0; pn < 2; pn++)
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float *d = dacc + pn * 32 + 4 * i;
            const float2 lo = ld2(hp + pn * PANEL + sm90::sw128(r_lo, i) + 4 * t);
            const float2 hi = ld2(hp + pn * PANEL + sm90::sw128(r_hi, i) + 4 * t);
            pe += d[0] * lo.x + d[1] * lo.y + d[2] * hi.x + d[3] * hi.y;
        }
    pe = mamba_scan::warp_sum(pe);
    if (lane == 0) dcE[warp] = pe;
}
/* One 16-byte piece (8 bf16 columns) of a swizzled [Q][P] panel triple: G = dy silu(z) in place of
 * dy at g, the dz factor F = dy sig(z) (1 + z (1 - sig(z))) in place of z at z (without gating,
 * G = dy and z is not touched), and the piece's part of dD = sum g . x added to dD. */
__device__ __forceinline__ void gate_piece(unsigned char *g, const unsigned char *x, unsigned char *z, bool gated, float &dD) {
    uint4 u = *reinterpret_cast<const uint4 *>(g);
    const uint4 xv = *reinterpret_cast<const uint4 *>(x);
    uint32_t *up = reinterpret_cast<uint32_t *>(&u);
    const uint32_t *xp = reinterpret_cast<const uint32_t *>(&xv);
    if (gated) {
        uint4 zv = *reinterpret_cast<const uint4 *>(z);
        uint32_t *zp = reinterpret_cast<uint32_t *>(&zv);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const float2 zf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&zp[q]));
            const float s0 = fsig(zf.x), s1 = fsig(zf.y);
            zp[q] = mamba_ssd2::scale2(up[q], s0 * (1.0f + zf.x * (1.0f - s0)), s1 * (1.0f + zf.y * (1.0f - s1)));
            up[q] = mamba_ssd2::scale2(up[q], zf.x * s0, zf.y * s1);
        }
        *reinterpret_cast<uint4 *>(z) = zv;
    }
#pragma unroll
    for (int q = 0; q < 4; q++) {
        const float2 gf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&up[q]));
        const float2 xf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&xp[q]));
        dD += gf.x * xf.x + gf.y * xf.y;
    }
    *reinterpret_cast<uint4 *>(g) = u;
}
#endif

__global__ void __launch_bounds__(NT, 2) ssd_bwd_wg(mamba_scan::args a, __nv_bfloat16 *scratch_all, int64_t nwork) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using mamba_ssd_wg::load_sw;
    using sm90::desc_k;
    using sm90::desc_mn;
    using sm90::sw128;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *smem = smem_raw + ((1024 - (lc_mma::smem_u32(smem_raw) & 1023)) & 1023);
    const uint32_t sb = lc_mma::smem_u32(smem);
    const uint32_t xs = sb + O_X, gs = sb + O_G, bs = sb + O_B, cs = sb + O_C, hs = sb + O_H, dhs = sb + O_DH;
    const uint32_t ms = sb + O_M, ws = sb + O_W;
    float *va = (float *)(smem + O_V), *vec = va + NV_A;
    float *dtp = vec, *cum = vec + Q, *wv = vec + 2 * Q, *ec = vec + 3 * Q, *wd = vec + 4 * Q, *sg = vec + 5 * Q;
    float *zr = vec + 6 * Q, *zcw = vec + 7 * Q, *uu = vec + 11 * Q, *qq = vec + 12 * Q, *dcE = vec + 13 * Q;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int r_lo = warp * 16 + g, r_hi = r_lo + 8; /* this thread's accumulator rows */
    __nv_bfloat16 *scratch = scratch_all + (size_t)blockIdx.x * (mamba_ssd_bwd::NSUB_MAX * P * N);
    const int HP = (int)a.H * P, GN = (int)a.G * N;
    for (int64_t item = blockIdx.x; item < nwork; item += gridDim.x) {
        const int h = (int)(item % a.H), c = (int)((item / a.H) % a.nch), b = (int)(item / (a.H * a.nch));
        const int grp = h / (int)(a.H / a.G);
        const int t_begin = c * (int)a.T, t_end = (int)min((int64_t)t_begin + a.T, a.L);
        const int ns = (t_end - t_begin + Q - 1) / Q;
        const float Ah = a.A[h], bias = a.dt_bias ? a.dt_bias[h] : 0.0f, Dh = a.D ? a.D[h] : 0.0f;
        const float *dtcol = a.dt + (int64_t)b * a.L * a.H + h;
        const int64_t sidx = (((int64_t)b * a.nch + c) * a.H + h) * (int64_t)(P * N);
        auto nv_of = [&](int s) { return min(Q, t_end - t_begin - s * Q); };
        auto row_of = [&](int s) { return (int64_t)b * a.L + t_begin + s * Q; };
        auto dt_of = [&](int s) { return mamba_ssd2::dt_fetch(dtcol + (int64_t)(t_begin + s * Q) * a.H, a.H, nv_of(s)); };
        /* ---- sweep A: incoming state of every sub-chunk into the scratch; X, B of sub-chunk s in
         * buffer s & 1 (0: the X, B panels; 1: the G and C panels, free until the reverse loop) ---- */
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
                load_sw<P>(bf ? gs : xs, a.x + r0 * HP + h * P, HP, nv_of(s));
                load_sw<N>(bf ? cs : bs, a.Bm + r0 * GN + grp * N, GN, nv_of(s));
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
            load_sw<P>(xs, a.x + xoff, HP, nvalid);
            load_sw<P>(gs, a.dy + xoff, HP, nvalid);
            if (a.z) load_sw<P>(sb + O_Z, a.z + xoff, HP, nvalid);
            load_sw<N>(bs, a.Bm + boff, GN, nvalid);
            load_sw<N>(cs, a.Cm + boff, GN, nvalid);
            load_sw<N>(hs, scratch + (size_t)s * P * N, N, P);
            mamba_ssd2::cp_commit();
            if (s > 0) { /* the earlier sub-chunk's rows into L2 while this one computes */
                const int64_t rr = r0 - Q + (tid & 63);
                const void *p0, *p1, *p2;
                if (tid < 64) p0 = a.x + rr * HP + h * P, p1 = a.Bm + rr * GN + grp * N, p2 = a.Cm + rr * GN + grp * N;
                else p0 = a.dy + rr * HP + h * P, p1 = a.z ? a.z + rr * HP + h * P : nullptr, p2 = nullptr;
                asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p0));
                if (p1) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p1));
                if (tid < 64) {
                    asm volatile("prefetch.global.L2 [%0];\n" ::"l"((const char *)p1 + 128));
                    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p2));
                    asm volatile("prefetch.global.L2 [%0];\n" ::"l"((const char *)p2 + 128));
                }
            }
            mamba_ssd_wg::put_h(smem + O_DH, dacc);
            if (warp == 0) mamba_ssd_bwd::prefix(vec, a, r0, h, nvalid);
            mamba_ssd2::cp_wait<0>();
            /* G = dy silu(z) in place over the pieces this thread copied (load_sw's mapping), the
             * dz factor F = dy sig(z) (1 + z (1 - sig(z))) in place of z (bf16: the epilogue's
             * dz = F (ys + D x) needs no dy; a global re-read of dy there serialised on its
             * latency), and this thread's part of dD = sum g . x */
            const bool gated = a.z != nullptr;
#pragma unroll
            for (int k = 0; k < Q * (P / 8) / NT; k++) {
                const int cc = tid + k * NT, off = sw128(cc / (P / 8), cc % (P / 8));
                gate_piece(smem + O_G + off, smem + O_X + off, smem + O_Z + off, gated, dD_acc);
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
            /* M' = S o L diag(dt'), W1 = GX o L diag(dt') (L_ij = exp(c_i - c_j) [j <= i]) as bf16
             * [i][j] panels; zr_i = sum_j (S o L o GX)_ij dt'_j, zc_j = sum_i (S o L o GX)_ij */
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
                    *reinterpret_cast<uint32_t *>(smem + O_M + sw128(r_lo, i) + 4 * t) = pack_bf16(s0 * dj.x, s1 * dj.y);
                    *reinterpret_cast<uint32_t *>(smem + O_M + sw128(r_hi, i) + 4 * t) = pack_bf16(s2 * dj.x, s3 * dj.y);
                    *reinterpret_cast<uint32_t *>(smem + O_W + sw128(r_lo, i) + 4 * t) = pack_bf16(x0 * l0 * dj.x, x1 * l1 * dj.y);
                    *reinterpret_cast<uint32_t *>(smem + O_W + sw128(r_hi, i) + 4 * t) = pack_bf16(x2 * l2 * dj.x, x3 * l3 * dj.y);
                }
                zr_lo = sum_t(zr_lo), zr_hi = sum_t(zr_hi);
                if (t == 0) zr[r_lo] = zr_lo, zr[r_hi] = zr_hi;
            }
            sm90::wait<0>();
            pin(Y);
            /* u_i = g_i . (C h^T)_i, then Y = diag(e) C h^T */
            u_and_scale(Y, smem + O_G, ec, uu, r_lo, r_hi, t);
            sm90::fence_proxy_async(); /* M', W1 (st.shared) -> wgmma */
            __syncthreads();           /* [B] */
            /* ---- ys = diag(e) Yc + M' X; B dh^T; M'^T G ---- */
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
                /* dz = dy (ys + D x) sig(z) (1 + z (1 - sig(z))); dx = M'^T G + diag(w) B dh^T + D G;
                 * q_j = x_j . (B dh^T)_j */
                const float w_lo = wv[r_lo], w_hi = wv[r_hi];
                float q_lo = 0.0f, q_hi = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++)
#pragma unroll
                    for (int hv = 0; hv < 2; hv++) {
                        const int r = r_lo + 8 * hv, off = sw128(r, i) + 4 * t, e = 4 * i + 2 * hv;
                        const float2 xf = ld2(smem + O_X + off), gf = ld2(smem + O_G + off);
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
                                const float2 ff = ld2(smem + O_Z + off);
                                *reinterpret_cast<__nv_bfloat162 *>(a.dz + go) =
                                    __floats2bfloat162_rn(ff.x * (Y[e] + Dh * xf.x), ff.y * (Y[e + 1] + Dh * xf.y));
                            }
                        }
                    }
                q_lo = sum_t(q_lo), q_hi = sum_t(q_hi);
                if (t == 0) qq[r_lo] = q_lo, qq[r_hi] = q_hi;
            }
            /* ---- E <dh, h> (before the dC staging may overwrite h) ---- */
            const float E = fexp(cum[Q - 1]);
            dh_dot_h(dacc, smem + O_H, dcE, r_lo, r_hi, warp, lane, t);
            /* ---- dC = (diag(e) G) h + W1 B ---- */
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
                __syncthreads(); /* h, B, M', F are free in every warp: the stages */
                red_rows(a.dCm, acc, r0, GN, grp, nvalid, smem + half_stage(2 * warp), smem + half_stage(2 * warp + 1));
            }
            /* ---- dB = (diag(w) X) dh + W1^T C ---- */
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
                sm90::bulk_wait_read<0>(); /* the dC reductions have read the stages */
                __syncthreads();
                red_rows(a.dBm, acc, r0, GN, grp, nvalid, smem + half_stage(2 * warp), smem + half_stage(2 * warp + 1));
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
            } /* zr, zc, uu, qq, dcE: every element is overwritten in the next sub-chunk (no clearing) */
        }
        mamba_ssd_bwd::add_head_sums(a, h, dD_acc, dA_acc, db_acc, warp, lane);
        __syncthreads(); /* the next item's sweep A reuses the tiles and the scratch */
    }
    sm90::bulk_wait_all();
#else
    (void)a, (void)scratch_all, (void)nwork;
#endif
}

} // namespace mamba_ssd_bwd_wg
#endif
