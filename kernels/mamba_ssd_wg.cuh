/* mamba_ssd_wg.cuh — third tensor-core forward of the Mamba-2 scan (P = 64, N = 128) on the
 * sm_90a warpgroup MMA (wgmma): the same chunked SSD math and passes as mamba_ssd2.cuh (its
 * header and mamba_ssd.cuh's give the formulas), one warpgroup (128 threads) per
 * (head, chunk, batch) block, for the profile that ncu showed for mamba_ssd2's output pass
 * (issue-bound: ~1000 instructions per warp per 64-token sub-chunk for 114 mma.sync and their
 * ldmatrix; results/notes-mamba.md). Per sub-chunk of Q = 64 tokens (c = inclusive cumulative log
 * decay, dt' the softplus step, w_j = exp(c_end - c_j) dt'_j, h the P x N state entering it):
 *   S = C B^T            8 x wgmma m64n64k16, C and B K-major in shared memory
 *   Y = C h^T            8 x wgmma m64n64k16, h (bf16 copy) K-major in shared memory
 *   M = S o exp(c_i - c_j) dt'_j [j <= i]  in registers (accumulator -> A-fragment repack)
 *   Y = diag(exp(c)) Y + M X              4 x wgmma m64n64k16, M from registers, X MN-major
 *   h = exp(c_end) h + (X diag(w))^T B    8 x wgmma m64n64k16, (X diag w)^T from registers
 *                                         (ldmatrix.trans of X, scaled), B MN-major, two
 *                                         64-column panels; h stays in registers (fp32)
 *   y = (Y + D x) silu(z)                 z by 4-byte cp.async into per-thread slots
 * S and M X run over the full 64 x 64 (the causal upper half is masked to zero): a wgmma spans
 * all four row blocks, so skipping the upper half would need per-row-block shapes.
 * LOCAL = true is the local-state pass (no C, no outputs): h from zero, written to a.st with the
 * chunk's total decay, as mamba_ssd2::ssd_local.
 * Tiles live in 128-byte-swizzled panels (64 bf16 columns x 64 rows, 8 KB, 1024-byte aligned),
 * the layout sm90.cuh's descriptors (swizzle mode 1) read; filled by cp.async (generic proxy), so a
 * proxy fence precedes the barrier that publishes them. Loads are double-buffered: the tiles of
 * sub-chunk k+1 fly while k computes; warp 0 computes the decay vectors of k+1 while the first
 * wgmma batch of k runs. Only the sm_90a build has a body; mamba.cu selects these kernels only
 * when lc_cuda_have_sm90a(). ssd_wg_dh (end of the file) is the backward's local dh pass in the
 * same style. Measured on an H100 (results/notes-mamba.md, session 4): scan forward 0.76-0.78 ms
 * at L = 64K and 11.6 ms at 1M against 1.10-1.13 and 16.2 ms for mamba_ssd2.cuh in the same runs.
 * Variants measured slower and dropped: the X^T fragments issued while the S / C h^T wgmmas run
 * and the y epilogue while the state-update wgmmas run (two commit groups): 0.86 / 12.7 ms;
 * the state decay forced ahead of the wgmma fence: ~4% slower. Included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_SSD_WG_CUH
#define LONGCTX_MAMBA_SSD_WG_CUH

#include "mamba_ssd2.cuh"
#include "sm90.cuh"

namespace mamba_ssd_wg {

constexpr int P = 64, N = 128, Q = 64, NT = 128;
constexpr int PANEL = 64 * 128; /* 64 rows x 128 bytes */
constexpr int T_C = 2 * PANEL, T_B = 2 * PANEL, T_X = PANEL;
constexpr int STAGE = T_C + T_B + T_X; /* 40 KB */
constexpr int STAGE_L = T_B + T_X;     /* local pass: B, X */
constexpr int VEC = 4 * Q * 4;         /* dtp, cum, w, exp(cum) */
constexpr int OFF_H = 2 * STAGE, OFF_Z = OFF_H + 2 * PANEL, OFF_V = OFF_Z + 16 * NT * 4;
constexpr int SMEM = OFF_V + 2 * VEC + 1024;   /* + alignment slack: 109568 B, two blocks per SM */
constexpr int SMEM_L = 2 * STAGE_L + 2 * VEC + 1024;

using lc_mma::pack_bf16;
using lc_mma::smem_u32;
using mamba_scan::fexp;

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* 128-threads barrier of the block (the block is one warpgroup) */
__device__ __forceinline__ void bar() { __syncthreads(); }

/* Rows 0..Q-1 of a W-wide bf16 tile (src = row 0, row stride `stride` elements) into W/64
 * swizzled panels at dst; rows >= nvalid zero-filled (the source is then not read). */
template <int W>
__device__ __forceinline__ void load_sw(uint32_t dst, const __nv_bfloat16 *src, int stride, int nvalid) {
    constexpr int CPR = W / 8, IT = Q * CPR / NT;
#pragma unroll
    for (int k = 0; k < IT; k++) {
        const int c = (int)threadIdx.x + k * NT, r = c / CPR, ch = c % CPR;
        const bool ok = r < nvalid;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst + (ch >> 3) * PANEL + sm90::sw128(r, ch & 7)),
                     "l"(src + (ok ? r * stride + ch * 8 : 0)), "r"(ok ? 16 : 0)
                     : "memory");
    }
}

/* M = S o L diag(dt') packed into A fragments, this thread's rows r_lo and r_lo + 8 of warp's
 * 16-row block, column pair 2 t of each 8-column group: below the diagonal 16-row block the decay
 * splits at b = 16 warp into a row and a column factor (both <= 1); the diagonal block is exact and
 * masked; columns past it are zero (n-tiles 2kk, 2kk+1 -> kk). Shared by ssd_wg and ssd_wg2. */
__device__ __forceinline__ void m_frags(uint32_t (&ma)[4][4], const float (&S)[32], const float *cum, const float *dtp, int warp,
                                        int r_lo, int t) {
    const float cb = cum[warp * 16], c_lo = cum[r_lo], c_hi = cum[r_lo + 8];
    const float er_lo = fexp(c_lo - cb), er_hi = fexp(c_hi - cb);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int j = 8 * i + 2 * t;
        const float2 w = *reinterpret_cast<const float2 *>(dtp + j), cj = *reinterpret_cast<const float2 *>(cum + j);
        float m0, m1, m2, m3;
        if (i < 2 * warp) {
            const float k0 = fexp(cb - cj.x) * w.x, k1 = fexp(cb - cj.y) * w.y;
            m0 = S[4 * i] * er_lo * k0, m1 = S[4 * i + 1] * er_lo * k1;
            m2 = S[4 * i + 2] * er_hi * k0, m3 = S[4 * i + 3] * er_hi * k1;
        } else if (i < 2 * warp + 2) {
            m0 = j <= r_lo ? S[4 * i] * fexp(c_lo - cj.x) * w.x : 0.0f;
            m1 = j + 1 <= r_lo ? S[4 * i + 1] * fexp(c_lo - cj.y) * w.y : 0.0f;
            m2 = j <= r_lo + 8 ? S[4 * i + 2] * fexp(c_hi - cj.x) * w.x : 0.0f;
            m3 = j + 1 <= r_lo + 8 ? S[4 * i + 3] * fexp(c_hi - cj.y) * w.y : 0.0f;
        } else {
            m0 = m1 = m2 = m3 = 0.0f;
        }
        ma[i >> 1][2 * (i & 1)] = pack_bf16(m0, m1);
        ma[i >> 1][2 * (i & 1) + 1] = pack_bf16(m2, m3);
    }
}

/* The A fragments of (X diag(w))^T (rows p = 16 warp.., k = token j) for the 4 k-blocks */
__device__ __forceinline__ void xw_frags(uint32_t (&xa)[4][4], uint32_t xs, const float *wv) {
    const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3, t = lane & 3, m = lane >> 3;
    const int ch = 2 * warp + (m & 1);
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const int j = kk * 16 + (lane & 7) + (m >> 1) * 8;
        mamba_ssd2::ldsm_t(xa[kk], xs + sm90::sw128(j, ch));
        const int jj = kk * 16 + 2 * t;
        const float2 w01 = *reinterpret_cast<const float2 *>(wv + jj), w89 = *reinterpret_cast<const float2 *>(wv + jj + 8);
        xa[kk][0] = mamba_ssd2::scale2(xa[kk][0], w01.x, w01.y);
        xa[kk][1] = mamba_ssd2::scale2(xa[kk][1], w01.x, w01.y);
        xa[kk][2] = mamba_ssd2::scale2(xa[kk][2], w89.x, w89.y);
        xa[kk][3] = mamba_ssd2::scale2(xa[kk][3], w89.x, w89.y);
    }
}

/* The state-update wgmmas (8 x m64n64k16): hacc += A B, A = the 4 k-blocks of register fragments
 * xa (a transposed, scaled tile: (X diag w)^T in the forward, (G diag e)^T in the dh passes), B
 * MN-major in the two 64-column panels at bs. Issued inside the caller's fence / commit. */
__device__ __forceinline__ void state_mma(float (&hacc)[64], const uint32_t (&xa)[4][4], uint32_t bs) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int pn = 0; pn < 2; pn++) sm90::rs_n64<1>(hacc + pn * 32, xa[kk], sm90::desc_mn(bs + pn * PANEL + kk * 16 * 128), 1);
}
/* after the wait: the state and its A fragments pinned (not moved across the wait by ptxas) */
__device__ __forceinline__ void state_pin(float (&hacc)[64], uint32_t (&xa)[4][4]) {
#pragma unroll
    for (int i = 0; i < 64; i++) sm90::reg_fence(hacc[i]);
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int e = 0; e < 4; e++) sm90::reg_fence(xa[kk][e]);
}
/* one whole state update h = E h + A B (E already applied by the caller): fence, MMAs, wait, pin */
__device__ __forceinline__ void state_step(float (&hacc)[64], uint32_t (&xa)[4][4], uint32_t bs) {
    sm90::fence();
    state_mma(hacc, xa, bs);
    sm90::commit();
    sm90::wait<0>();
    state_pin(hacc, xa);
}

/* h (accumulator layout, two 64-column halves) -> bf16 K-major swizzled panels at hs */
__device__ __forceinline__ void put_h(unsigned char *hs, const float (&hacc)[64]) {
    const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) & 3, g = lane >> 2, t = lane & 3;
    const int r = warp * 16 + g;
#pragma unroll
    for (int pn = 0; pn < 2; pn++)
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float *d = hacc + pn * 32 + 4 * i;
            *reinterpret_cast<uint32_t *>(hs + pn * PANEL + sm90::sw128(r, i) + 4 * t) = pack_bf16(d[0], d[1]);
            *reinterpret_cast<uint32_t *>(hs + pn * PANEL + sm90::sw128(r + 8, i) + 4 * t) = pack_bf16(d[2], d[3]);
        }
}

/* h (accumulator layout: this thread's rows r_lo, r_lo + 8, columns 8 i + 2 t of each 64-column
 * half) -> fp32 [P][N] row-major at dst (a chunk state in global memory) */
__device__ __forceinline__ void store_h(float *dst, const float (&hacc)[64], int r_lo, int t) {
#pragma unroll
    for (int pn = 0; pn < 2; pn++)
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float *s0 = dst + r_lo * N + pn * 64 + 8 * i + 2 * t;
            const float *d = hacc + pn * 32 + 4 * i;
            *reinterpret_cast<float2 *>(s0) = make_float2(d[0], d[1]);
            *reinterpret_cast<float2 *>(s0 + 8 * N) = make_float2(d[2], d[3]);
        }
}
#endif

/* One block = one warpgroup per (head, chunk, batch); LOCAL: the local-state pass. */
template <bool LOCAL>
__global__ void __launch_bounds__(NT, 2) ssd_wg(mamba_scan::args a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int STG = LOCAL ? STAGE_L : STAGE;
    constexpr int OB = LOCAL ? 0 : T_C, OX = OB + T_B; /* B, X inside a stage */
    constexpr int OV = LOCAL ? 2 * STAGE_L : OFF_V;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    const uint32_t sb = smem_u32(smem);
    float *vecs = (float *)(smem + OV);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, grp = h / (int)(a.H / a.G);
    const int t_begin = c * (int)a.T, t_end = (int)min((int64_t)t_begin + a.T, a.L);
    const int HP = (int)a.H * P, GN = (int)a.G * N;
    const float Ah = a.A[h], bias = a.dt_bias ? a.dt_bias[h] : 0.0f;
    const float *dtcol = a.dt + (int64_t)b * a.L * a.H + h;
    float *stp = a.st + (((int64_t)b * a.nch + c) * a.H + h) * (int64_t)(P * N);
    const int r_lo = warp * 16 + g; /* this thread's accumulator rows: r_lo, r_lo + 8 */
    const bool has_z = !LOCAL && a.z != nullptr;

    float hacc[64];
    if (LOCAL) {
#pragma unroll
        for (int i = 0; i < 64; i++) hacc[i] = 0.0f;
    } else {
#pragma unroll
        for (int pn = 0; pn < 2; pn++)
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const float *s0 = stp + r_lo * N + pn * 64 + 8 * i + 2 * t;
                const float2 lo = *reinterpret_cast<const float2 *>(s0), hi = *reinterpret_cast<const float2 *>(s0 + 8 * N);
                float *d = hacc + pn * 32 + 4 * i;
                d[0] = lo.x, d[1] = lo.y, d[2] = hi.x, d[3] = hi.y;
            }
        put_h(smem + OFF_H, hacc);
    }
    auto issue_tiles = [&](int t0, int buf) {
        const int nv = min(Q, t_end - t0);
        const int64_t r0 = (int64_t)b * a.L + t0;
        const uint32_t base = sb + buf * STG;
        load_sw<P>(base + OX, a.x + r0 * HP + h * P, HP, nv);
        load_sw<N>(base + OB, a.Bm + r0 * GN + grp * N, GN, nv);
        if (!LOCAL) load_sw<N>(base, a.Cm + r0 * GN + grp * N, GN, nv);
    };
    /* z of this thread's outputs (rows r_lo + 8 hv, columns 8 i + 2 t) into its 16 slots */
    auto issue_z = [&](int t0) {
        const int nv = min(Q, t_end - t0);
        const __nv_bfloat16 *zb = a.z + ((int64_t)b * a.L + t0) * HP + h * P + 2 * t;
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
            for (int hv = 0; hv < 2; hv++) {
                const int r = r_lo + 8 * hv;
                const bool ok = r < nv;
                asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(sb + OFF_Z + (tid + (i * 2 + hv) * NT) * 4),
                             "l"(zb + (ok ? r * HP + 8 * i : 0)), "r"(ok ? 4 : 0)
                             : "memory");
            }
    };
    issue_tiles(t_begin, 0);
    mamba_ssd2::cp_commit();
    float2 dt_raw = make_float2(0.f, 0.f);
    if (warp == 0) {
        const int nv0 = min(Q, t_end - t_begin);
        mamba_ssd2::decay_prefix(vecs, mamba_ssd2::dt_fetch(dtcol + (int64_t)t_begin * a.H, a.H, nv0), Ah, bias, nv0);
        if (t_begin + Q < t_end) dt_raw = mamba_ssd2::dt_fetch(dtcol + (int64_t)(t_begin + Q) * a.H, a.H, min(Q, t_end - t_begin - Q));
    }
    const float Dh = (!LOCAL && a.D) ? a.D[h] : 0.0f;
    float logdecay = 0.0f;
    int buf = 0;
    for (int t0 = t_begin; t0 < t_end; t0 += Q, buf ^= 1) {
        const int nvalid = min(Q, t_end - t0);
        const bool more = t0 + Q < t_end;
        if (has_z) issue_z(t0);
        mamba_ssd2::cp_commit(); /* group z(k), possibly empty */
        if (more) issue_tiles(t0 + Q, buf ^ 1); /* that buffer was freed by the last barrier [B] */
        mamba_ssd2::cp_commit(); /* group tiles(k+1), possibly empty */
        mamba_ssd2::cp_wait<2>(); /* tiles(k) */
        sm90::fence_proxy_async(); /* this thread's cp.async data and h stores -> the async proxy (wgmma) */
        bar();         /* [A] */
        const float *vec = vecs + buf * (VEC / 4);
        const float *dtp = vec, *cum = vec + Q, *wv = vec + 2 * Q, *ec = vec + 3 * Q;
        const uint32_t cs = sb + buf * STG, bs = cs + OB, xs = cs + OX;
        const float cend = vec[2 * Q - 1];
        logdecay += cend;
        float Y[32];
        if (!LOCAL) {
            float S[32];
            sm90::fence();
#pragma unroll
            for (int kk = 0; kk < N / 16; kk++) {
                const uint32_t ko = (kk >> 2) * PANEL + (kk & 3) * 32;
                const uint64_t dc = sm90::desc_k(cs + ko);
                sm90::ss_n64(S, dc, sm90::desc_k(bs + ko), kk > 0);
                sm90::ss_n64(Y, dc, sm90::desc_k(sb + OFF_H + ko), kk > 0);
            }
            sm90::commit();
            if (warp == 0 && more) { /* the vectors of k+1 while the tensor cores run */
                mamba_ssd2::decay_prefix(vecs + (buf ^ 1) * (VEC / 4), dt_raw, Ah, bias, min(Q, t_end - t0 - Q));
                if (t0 + 2 * Q < t_end)
                    dt_raw = mamba_ssd2::dt_fetch(dtcol + (int64_t)(t0 + 2 * Q) * a.H, a.H, min(Q, t_end - t0 - 2 * Q));
            }
            sm90::wait<0>();
#pragma unroll
            for (int i = 0; i < 32; i++) sm90::reg_fence(S[i]), sm90::reg_fence(Y[i]);
            uint32_t ma[4][4];
            m_frags(ma, S, cum, dtp, warp, r_lo, t);
            const float e_lo = ec[r_lo], e_hi = ec[r_lo + 8];
#pragma unroll
            for (int i = 0; i < 8; i++) Y[4 * i] *= e_lo, Y[4 * i + 1] *= e_lo, Y[4 * i + 2] *= e_hi, Y[4 * i + 3] *= e_hi;
            uint32_t xa[4][4];
            xw_frags(xa, xs, wv);
            const float E = fexp(cend);
#pragma unroll
            for (int i = 0; i < 64; i++) hacc[i] *= E;
            sm90::fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++) sm90::rs_n64<1>(Y, ma[kk], sm90::desc_mn(xs + kk * 16 * 128), 1);
            state_mma(hacc, xa, bs);
            sm90::commit();
            sm90::wait<0>();
#pragma unroll
            for (int i = 0; i < 32; i++) sm90::reg_fence(Y[i]);
            state_pin(hacc, xa);
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
#pragma unroll
                for (int e = 0; e < 4; e++) sm90::reg_fence(ma[kk][e]);
            /* y = (Y + D x) silu(z) */
            mamba_ssd2::cp_wait<1>(); /* z(k): this thread's own slots */
            const uint32_t *zslot = (const uint32_t *)(smem + OFF_Z) + tid;
            const unsigned char *Xs = smem + buf * STG + OX;
            __nv_bfloat16 *yrow = a.y + ((int64_t)b * a.L + t0) * HP + h * P + 2 * t;
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int hv = 0; hv < 2; hv++) {
                    const int r = r_lo + 8 * hv;
                    const float2 xf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(Xs + sm90::sw128(r, i) + 4 * t));
                    float y0 = Y[4 * i + 2 * hv] + Dh * xf.x, y1 = Y[4 * i + 2 * hv + 1] + Dh * xf.y;
                    if (has_z) {
                        uint32_t zu = zslot[(i * 2 + hv) * NT];
                        const float2 zf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&zu));
                        y0 *= __fdividef(zf.x, 1.0f + fexp(-zf.x)), y1 *= __fdividef(zf.y, 1.0f + fexp(-zf.y));
                    }
                    if (r < nvalid) *reinterpret_cast<__nv_bfloat162 *>(yrow + (int64_t)r * HP + 8 * i) = __floats2bfloat162_rn(y0, y1);
                }
        } else {
            if (warp == 0 && more) {
                mamba_ssd2::decay_prefix(vecs + (buf ^ 1) * (VEC / 4), dt_raw, Ah, bias, min(Q, t_end - t0 - Q));
                if (t0 + 2 * Q < t_end)
                    dt_raw = mamba_ssd2::dt_fetch(dtcol + (int64_t)(t0 + 2 * Q) * a.H, a.H, min(Q, t_end - t0 - 2 * Q));
            }
            uint32_t xa[4][4];
            xw_frags(xa, xs, wv);
            const float E = fexp(cend);
#pragma unroll
            for (int i = 0; i < 64; i++) hacc[i] *= E;
            state_step(hacc, xa, bs);
        }
        bar(); /* [B] the tiles of k, h (bf16) and the vectors of k are free */
        if (!LOCAL && more) put_h(smem + OFF_H, hacc);
    }
    mamba_ssd2::cp_wait<0>();
    if (LOCAL) {
        store_h(stp, hacc, r_lo, t);
        if (tid == 0) a.decay[((int64_t)b * a.nch + c) * a.H + h] = fexp(logdecay);
    }
#else
    (void)a;
#endif
}

/* Local dh pass of the backward on wgmma (replaces mamba_ssd_bwd::ssd_dh_local; LC_MAMBA_DHL):
 * per (head, chunk, batch), in reverse over the sub-chunks from dh = 0,
 *   dh <- exp(c_end) dh + (G diag(e))^T C,  G = dy silu(z) (dy without z), e_i = exp(c_i),
 * into a.dst. The A fragments of (G diag(e))^T come from ldmatrix.trans of the dy and z tiles at
 * the same positions (identical fragment layouts), combined in registers: no G tile and no
 * barrier for it. C, dy, z tiles double-buffered by cp.async (the earlier sub-chunk's fly). */
constexpr int STAGE_DH = T_C + 2 * T_X;
constexpr int SMEM_DH = 2 * STAGE_DH + 2 * VEC + 1024;
__global__ void __launch_bounds__(NT, 2) ssd_wg_dh(mamba_scan::args a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    const uint32_t sb = smem_u32(smem);
    float *vecs = (float *)(smem + 2 * STAGE_DH);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3, m = lane >> 3;
    const int h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, grp = h / (int)(a.H / a.G);
    const int t_begin = c * (int)a.T, t_end = (int)min((int64_t)t_begin + a.T, a.L);
    const int ns = (t_end - t_begin + Q - 1) / Q;
    const int HP = (int)a.H * P, GN = (int)a.G * N;
    const float Ah = a.A[h], bias = a.dt_bias ? a.dt_bias[h] : 0.0f;
    const float *dtcol = a.dt + (int64_t)b * a.L * a.H + h;
    const bool has_z = a.z != nullptr;
    const int r_lo = warp * 16 + g;
    auto nv_of = [&](int sc) { return min(Q, t_end - t_begin - sc * Q); };
    auto issue = [&](int sc, int buf) {
        const int nv = nv_of(sc);
        const int64_t r0 = (int64_t)b * a.L + t_begin + sc * Q;
        const uint32_t base = sb + buf * STAGE_DH;
        load_sw<N>(base, a.Cm + r0 * GN + grp * N, GN, nv);
        load_sw<P>(base + T_C, a.dy + r0 * HP + h * P, HP, nv);
        if (has_z) load_sw<P>(base + T_C + T_X, a.z + r0 * HP + h * P, HP, nv);
    };
    float hacc[64];
#pragma unroll
    for (int i = 0; i < 64; i++) hacc[i] = 0.0f;
    issue(ns - 1, 0);
    mamba_ssd2::cp_commit();
    float2 dt_raw = make_float2(0.f, 0.f);
    if (warp == 0) {
        const int nv = nv_of(ns - 1);
        mamba_ssd2::decay_prefix(vecs, mamba_ssd2::dt_fetch(dtcol + (int64_t)(t_begin + (ns - 1) * Q) * a.H, a.H, nv), Ah, bias, nv);
        if (ns > 1) dt_raw = mamba_ssd2::dt_fetch(dtcol + (int64_t)(t_begin + (ns - 2) * Q) * a.H, a.H, nv_of(ns - 2));
    }
    int buf = 0;
    for (int sc = ns - 1; sc >= 0; sc--, buf ^= 1) {
        if (sc > 0) issue(sc - 1, buf ^ 1); /* that buffer was freed by the last barrier [B] */
        mamba_ssd2::cp_commit();
        mamba_ssd2::cp_wait<1>();
        sm90::fence_proxy_async();
        bar(); /* [A] */
        if (warp == 0 && sc > 0) {
            mamba_ssd2::decay_prefix(vecs + (buf ^ 1) * (VEC / 4), dt_raw, Ah, bias, nv_of(sc - 1));
            if (sc > 1) dt_raw = mamba_ssd2::dt_fetch(dtcol + (int64_t)(t_begin + (sc - 2) * Q) * a.H, a.H, nv_of(sc - 2));
        }
        const float *vec = vecs + buf * (VEC / 4), *ec = vec + 3 * Q;
        const uint32_t cs = sb + buf * STAGE_DH, ds = cs + T_C, zs = ds + T_X;
        uint32_t ga[4][4];
        const int ch = 2 * warp + (m & 1);
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            const int j = kk * 16 + (lane & 7) + (m >> 1) * 8;
            mamba_ssd2::ldsm_t(ga[kk], ds + sm90::sw128(j, ch));
            uint32_t za[4] = {0u, 0u, 0u, 0u};
            if (has_z) mamba_ssd2::ldsm_t(za, zs + sm90::sw128(j, ch));
            const int jj = kk * 16 + 2 * t;
            const float2 e01 = *reinterpret_cast<const float2 *>(ec + jj), e89 = *reinterpret_cast<const float2 *>(ec + jj + 8);
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const float2 e = q < 2 ? e01 : e89;
                float2 d = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&ga[kk][q]));
                if (has_z) {
                    const float2 zf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&za[q]));
                    d.x *= __fdividef(zf.x, 1.0f + fexp(-zf.x)), d.y *= __fdividef(zf.y, 1.0f + fexp(-zf.y));
                }
                ga[kk][q] = pack_bf16(d.x * e.x, d.y * e.y);
            }
        }
        const float E = fexp(vec[2 * Q - 1]);
#pragma unroll
        for (int i = 0; i < 64; i++) hacc[i] *= E, sm90::reg_fence(hacc[i]);
        state_step(hacc, ga, cs);
        bar(); /* [B] */
    }
    mamba_ssd2::cp_wait<0>();
    float *o = a.dst + (((int64_t)b * a.nch + c) * a.H + h) * (int64_t)(P * N);
    store_h(o, hacc, r_lo, t);
#else
    (void)a;
#endif
}

} // namespace mamba_ssd_wg
#endif
