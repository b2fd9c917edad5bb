/* mamba_ssd_wg2.cuh — the passes of the wgmma forward (mamba_ssd_wg.cuh's ssd_wg<false>, and
 * ssd_wg<true> with LOCAL) with TWO heads of one group per block (LC_MAMBA_FWD=4, opt-in): two
 * consumer warpgroups (256 threads),
 * warpgroup w runs head 2 hp + w of the block's head pair hp with exactly ssd_wg<false>'s math,
 * fragment layouts and per-sub-chunk steps (its header gives the formulas). What changes:
 *   - the C and B tiles (both heads read the same rows of their group) are loaded once for the
 *     pair: a stage is C (2 panels), B (2 panels), X of head 2 hp, X of head 2 hp + 1 = 48 KB for
 *     two heads instead of 2 x 40 KB;
 *   - the tiles come by TMA (bulk tensor copies, 128-byte swizzle = the layout the wgmma
 *     descriptors read; rows past L arrive as zeros: the tensor maps view x as [B][L][H][64] and
 *     B, C as [B][L][2G][64]) into a ring of NS = 3 stages, each completing on a full mbarrier;
 *     no consumer thread issues tile copies. Thread 0 (warp 0 of warpgroup 0) refills the stage of
 *     sub-chunk k-1 with sub-chunk k-1+NS during sub-chunk k, after its S / C h^T wgmmas are
 *     issued, once lane 0 of each of the 8 warps has arrived on that stage's empty mbarrier;
 *   - the two warpgroups synchronise only through the ring: each has its own named barrier
 *     (1 + w, 128 threads) for its h panel and decay vectors, so one warpgroup's products
 *     interleave with the other's exponentials and epilogue on the SM (warpgroup 1 may run up to
 *     NS - 1 sub-chunks ahead of warpgroup 0, warpgroup 0 one ahead of warpgroup 1).
 * z keeps ssd_wg's per-thread 4-byte cp.async slots (no barrier: each thread reads its own).
 * Requires H / G even and 16-byte aligned x, B, C (the tensor maps); mamba.cu runs ssd_wg<false>
 * otherwise. One block per SM (shared memory). LOCAL = true is the local-state pass in the same
 * form (ssd_wg<true>'s math; also the backward's local pass): a stage is B, X, X (32 KB, the
 * pair's B read once), NS_L = 4 stages, no C, no h panel, no z.
 * Shared memory (1024-aligned): NS stages x 48 KB, per warpgroup h (2 panels), per warpgroup z
 * slots (8 KB), per warpgroup the decay vectors (2 buffers), the 2 NS mbarriers: 201,776 B
 * (LOCAL: 4 x 32 KB, the vectors, the barriers: 136,256 B). ptxas (nvcc 13.0): 229 registers
 * (LOCAL 140), no spills.
 * Measured (session 6, one H200, same run as ssd_wg; results/notes-mamba.md): scan forward 0.747
 * ms at 64K and 11.53 ms at 1M against 0.769 / 11.78 (-2.9% / -2.2%); the output pass alone in
 * this form (the local pass ssd_wg's) -2.0% / -1.6%; fwd+bwd 1M level (59.74 against 59.48 ms).
 * Halving the C / B reads and taking every tile copy off the consumers bought little: the pass
 * is bound by each warpgroup's serial chain (S / C h^T wgmma -> wait -> M in registers -> M X and
 * state wgmma -> wait -> epilogue), not by its loads (the forward takes the same time on the
 * H200 as on the H100 at 1.4x the copy bandwidth).
 * Only the sm_90a build has a body; included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_SSD_WG2_CUH
#define LONGCTX_MAMBA_SSD_WG2_CUH

#include "mamba_ssd_wg.cuh"

namespace mamba_ssd_wg2 {

using mamba_ssd_wg::N;
using mamba_ssd_wg::P;
using mamba_ssd_wg::PANEL;
using mamba_ssd_wg::Q;
using mamba_ssd_wg::VEC;
constexpr int NT2 = 256, NS = 3;
constexpr int S_C = 0, S_B = 2 * PANEL, S_X = 4 * PANEL, STG = 6 * PANEL; /* X of warpgroup w at S_X + w PANEL */
constexpr int STG_L = 4 * PANEL, NS_L = 4; /* local pass: B, X, X (the first panels skipped); 4 stages */
constexpr int ZB = 16 * 128 * 4;                                         /* one warpgroup's z slots */
constexpr int O_H = NS * STG, O_Z = O_H + 4 * PANEL, O_V = O_Z + 2 * ZB, O_BAR = O_V + 4 * VEC;
constexpr int SMEM = O_BAR + 2 * NS * 8 + 1024; /* + alignment slack */
static_assert(SMEM <= 227 * 1024, "one block per H100 SM");
static_assert(STG % 1024 == 0 && O_H % 1024 == 0, "panels 1024-byte aligned");
constexpr int O_V_L = NS_L * STG_L, O_BAR_L = O_V_L + 4 * VEC;
constexpr int SMEM_L = O_BAR_L + 2 * NS_L * 8 + 1024;

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
using lc_mma::pack_bf16;
using lc_mma::smem_u32;
using mamba_scan::fexp;

/* warpgroup w's own barrier (named barrier 1 + w, its 128 threads) */
__device__ __forceinline__ void wg_bar(int w) { asm volatile("bar.sync %0, 128;\n" ::"r"(1 + w) : "memory"); }
#endif

/* one block per (head pair, chunk, batch); LOCAL: the local-state pass (B, X only; h from zero
 * into a.st with the chunk's total decay, as ssd_wg<true>), NS_L stages of B, X, X */
template <bool LOCAL>
__global__ void __launch_bounds__(NT2, 1)
    ssd_wg2(mamba_scan::args a, const __grid_constant__ CUtensorMap tx, const __grid_constant__ CUtensorMap tbm,
            const __grid_constant__ CUtensorMap tcm) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int NSS = LOCAL ? NS_L : NS, STS = LOCAL ? STG_L : STG;
    constexpr int OB = LOCAL ? 0 : S_B, OX = LOCAL ? 2 * PANEL : S_X; /* B, X inside a stage */
    constexpr int OV = LOCAL ? O_V_L : O_V, OBAR = LOCAL ? O_BAR_L : O_BAR;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
    const uint32_t sb = smem_u32(smem);
    const int tid = threadIdx.x, wg = tid >> 7, lt = tid & 127, warp = lt >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int hp = blockIdx.x, h = 2 * hp + wg, c = blockIdx.y, b = blockIdx.z, grp = (2 * hp) / (int)(a.H / a.G);
    const int t_begin = c * (int)a.T, t_end = (int)min((int64_t)t_begin + a.T, a.L);
    const int ns = (t_end - t_begin + Q - 1) / Q;
    const int HP = (int)a.H * P;
    const float Ah = a.A[h], bias = a.dt_bias ? a.dt_bias[h] : 0.0f;
    const float *dtcol = a.dt + (int64_t)b * a.L * a.H + h;
    float *stp = a.st + (((int64_t)b * a.nch + c) * a.H + h) * (int64_t)(P * N);
    const int r_lo = warp * 16 + g; /* this thread's accumulator rows: r_lo, r_lo + 8 */
    const bool has_z = !LOCAL && a.z != nullptr;
    float *vecs = (float *)(smem + OV + wg * 2 * VEC);
    unsigned char *hsp = smem + O_H + wg * 2 * PANEL;
    const uint32_t hs = sb + O_H + wg * 2 * PANEL, zs = sb + O_Z + wg * ZB;
    const uint32_t bar_full = sb + OBAR, bar_empty = bar_full + 8 * NSS;

    if (tid == 0) {
        for (int s = 0; s < NSS; s++) {
            sm90::mbar_init(bar_full + 8 * s, 1);
            sm90::mbar_init(bar_empty + 8 * s, 8); /* lane 0 of each of the 8 warps */
        }
        sm90::fence_mbar_init();
    }
    __syncthreads();
    /* sub-chunk k of the chunk into stage k % NSS (thread 0 only) */
    auto issue = [&](int k) {
        const int s = k % NSS, row = t_begin + k * Q;
        const uint32_t st = sb + s * STS, fb = bar_full + 8 * s;
        sm90::mbar_expect_tx(fb, STS);
        if (!LOCAL) {
            sm90::tma_load_4d(st + S_C, &tcm, 0, 2 * grp, row, b, fb);
            sm90::tma_load_4d(st + S_C + PANEL, &tcm, 0, 2 * grp + 1, row, b, fb);
        }
        sm90::tma_load_4d(st + OB, &tbm, 0, 2 * grp, row, b, fb);
        sm90::tma_load_4d(st + OB + PANEL, &tbm, 0, 2 * grp + 1, row, b, fb);
        sm90::tma_load_4d(st + OX, &tx, 0, 2 * hp, row, b, fb);
        sm90::tma_load_4d(st + OX + PANEL, &tx, 0, 2 * hp + 1, row, b, fb);
    };
    if (tid == 0)
        for (int k = 0; k < NSS && k < ns; k++) issue(k);

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
        mamba_ssd_wg::put_h(hsp, hacc);
    }
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
                asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(zs + (lt + (i * 2 + hv) * 128) * 4),
                             "l"(zb + (ok ? r * HP + 8 * i : 0)), "r"(ok ? 4 : 0)
                             : "memory");
            }
    };
    float2 dt_raw = make_float2(0.f, 0.f);
    if (warp == 0) {
        const int nv0 = min(Q, t_end - t_begin);
        mamba_ssd2::decay_prefix(vecs, mamba_ssd2::dt_fetch(dtcol + (int64_t)t_begin * a.H, a.H, nv0), Ah, bias, nv0);
        if (t_begin + Q < t_end) dt_raw = mamba_ssd2::dt_fetch(dtcol + (int64_t)(t_begin + Q) * a.H, a.H, min(Q, t_end - t_begin - Q));
    }
    const float Dh = (!LOCAL && a.D) ? a.D[h] : 0.0f;
    float logdecay = 0.0f;
    for (int k = 0; k < ns; k++) {
        const int t0 = t_begin + k * Q, nvalid = min(Q, t_end - t0), s = k % NSS, vb = k & 1;
        const bool more = k + 1 < ns;
        if (has_z) issue_z(t0);
        mamba_ssd2::cp_commit(); /* group z(k), possibly empty */
        sm90::fence_proxy_async(); /* this thread's h stores -> the async proxy (wgmma) */
        wg_bar(wg);                /* [A] h and the vectors of k */
        sm90::mbar_wait(bar_full + 8 * s, (k / NSS) & 1); /* the tiles of k */
        const float *vec = vecs + vb * (VEC / 4);
        const float *dtp = vec, *cum = vec + Q, *wv = vec + 2 * Q, *ec = vec + 3 * Q;
        const uint32_t cs = sb + s * STS + S_C, bs = sb + s * STS + OB, xs = sb + s * STS + OX + wg * PANEL;
        const float cend = vec[2 * Q - 1];
        logdecay += cend;
        if (LOCAL) {
            if (warp == 0 && more) {
                mamba_ssd2::decay_prefix(vecs + (vb ^ 1) * (VEC / 4), dt_raw, Ah, bias, min(Q, t_end - t0 - Q));
                if (t0 + 2 * Q < t_end)
                    dt_raw = mamba_ssd2::dt_fetch(dtcol + (int64_t)(t0 + 2 * Q) * a.H, a.H, min(Q, t_end - t0 - 2 * Q));
            }
            if (tid == 0 && k >= 1 && k - 1 + NSS < ns) { /* refill the stage of k-1 */
                sm90::mbar_wait(bar_empty + 8 * ((k - 1) % NSS), ((k - 1) / NSS) & 1);
                issue(k - 1 + NSS);
            }
            __syncwarp();
            uint32_t xa[4][4];
            mamba_ssd_wg::xw_frags(xa, xs, wv);
            const float E = fexp(cend);
#pragma unroll
            for (int i = 0; i < 64; i++) hacc[i] *= E;
            mamba_ssd_wg::state_step(hacc, xa, bs);
            __syncwarp(); /* this warp's reads of the stage are done */
            if (lane == 0) sm90::mbar_arrive(bar_empty + 8 * s);
            wg_bar(wg); /* [B] the vectors of k are free */
            continue;
        }
        float Y[32], S[32];
        sm90::fence();
#pragma unroll
        for (int kk = 0; kk < N / 16; kk++) {
            const uint32_t ko = (kk >> 2) * PANEL + (kk & 3) * 32;
            const uint64_t dc = sm90::desc_k(cs + ko);
            sm90::ss_n64(S, dc, sm90::desc_k(bs + ko), kk > 0);
            sm90::ss_n64(Y, dc, sm90::desc_k(hs + ko), kk > 0);
        }
        sm90::commit();
        if (warp == 0 && more) { /* the vectors of k+1 while the tensor cores run */
            mamba_ssd2::decay_prefix(vecs + (vb ^ 1) * (VEC / 4), dt_raw, Ah, bias, min(Q, t_end - t0 - Q));
            if (t0 + 2 * Q < t_end)
                dt_raw = mamba_ssd2::dt_fetch(dtcol + (int64_t)(t0 + 2 * Q) * a.H, a.H, min(Q, t_end - t0 - 2 * Q));
        }
        if (tid == 0 && k >= 1 && k - 1 + NSS < ns) { /* refill the stage of k-1 once both heads are done with it */
            sm90::mbar_wait(bar_empty + 8 * ((k - 1) % NSS), ((k - 1) / NSS) & 1);
            issue(k - 1 + NSS);
        }
        __syncwarp();
        sm90::wait<0>();
#pragma unroll
        for (int i = 0; i < 32; i++) sm90::reg_fence(S[i]), sm90::reg_fence(Y[i]);
        uint32_t ma[4][4]; /* M = S o L diag(dt') */
        mamba_ssd_wg::m_frags(ma, S, cum, dtp, warp, r_lo, t);
        const float e_lo = ec[r_lo], e_hi = ec[r_lo + 8];
#pragma unroll
        for (int i = 0; i < 8; i++) Y[4 * i] *= e_lo, Y[4 * i + 1] *= e_lo, Y[4 * i + 2] *= e_hi, Y[4 * i + 3] *= e_hi;
        uint32_t xa[4][4];
        mamba_ssd_wg::xw_frags(xa, xs, wv);
        const float E = fexp(cend);
#pragma unroll
        for (int i = 0; i < 64; i++) hacc[i] *= E;
        sm90::fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) sm90::rs_n64<1>(Y, ma[kk], sm90::desc_mn(xs + kk * 16 * 128), 1);
        mamba_ssd_wg::state_mma(hacc, xa, bs);
        sm90::commit();
        sm90::wait<0>();
#pragma unroll
        for (int i = 0; i < 32; i++) sm90::reg_fence(Y[i]);
        mamba_ssd_wg::state_pin(hacc, xa);
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int e = 0; e < 4; e++) sm90::reg_fence(ma[kk][e]);
        /* y = (Y + D x) silu(z) */
        mamba_ssd2::cp_wait<0>(); /* z(k): this thread's own slots */
        const uint32_t *zslot = (const uint32_t *)(smem + O_Z + wg * ZB) + lt;
        const unsigned char *Xs = smem + s * STS + OX + wg * PANEL;
        __nv_bfloat16 *yrow = a.y + ((int64_t)b * a.L + t0) * HP + h * P + 2 * t;
#pragma unroll
        for (int i = 0; i < 8; i++)
#pragma unroll
            for (int hv = 0; hv < 2; hv++) {
                const int r = r_lo + 8 * hv;
                const float2 xf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(Xs + sm90::sw128(r, i) + 4 * t));
                float y0 = Y[4 * i + 2 * hv] + Dh * xf.x, y1 = Y[4 * i + 2 * hv + 1] + Dh * xf.y;
                if (has_z) {
                    uint32_t zu = zslot[(i * 2 + hv) * 128];
                    const float2 zf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&zu));
                    y0 *= __fdividef(zf.x, 1.0f + fexp(-zf.x)), y1 *= __fdividef(zf.y, 1.0f + fexp(-zf.y));
                }
                if (r < nvalid) *reinterpret_cast<__nv_bfloat162 *>(yrow + (int64_t)r * HP + 8 * i) = __floats2bfloat162_rn(y0, y1);
            }
        __syncwarp(); /* this warp's reads of the stage (ldmatrix, X, its wgmmas waited) are done */
        if (lane == 0) sm90::mbar_arrive(bar_empty + 8 * s);
        wg_bar(wg); /* [B] h (bf16), the z slots and the vectors of k are free */
        if (more) mamba_ssd_wg::put_h(hsp, hacc);
    }
    if (LOCAL) {
        mamba_ssd_wg::store_h(stp, hacc, r_lo, t);
        if (lt == 0) a.decay[((int64_t)b * a.nch + c) * a.H + h] = fexp(logdecay);
    }
#else
    (void)a, (void)tx, (void)tbm, (void)tcm;
#endif
}

} // namespace mamba_ssd_wg2
#endif
