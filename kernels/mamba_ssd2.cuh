/* mamba_ssd2.cuh — second version of the tensor-core forward of the Mamba-2 scan (P = 64,
 * N = 128): the same chunked SSD math, passes and fragment layouts as mamba_ssd.cuh (read its
 * header for the formulas), restructured for the latency/issue-bound profile that ncu showed
 * for ssd_fwd (results/notes-mamba.md: 0.38 issued warps per scheduler per cycle, stalls split
 * between fixed-latency waits, global loads of z, shared-memory loads and barriers):
 *   - the causal row block of a warp (IT = warp % 4) is a template argument: S = C B^T, the
 *     decay mask and M X are straight-line code (no run-time `jp <= it` branches cutting the
 *     basic blocks, so ptxas can interleave ldmatrix and mma); only the diagonal block is masked;
 *   - mma.sync without `volatile` (a pure register op the compiler may schedule);
 *   - z of the epilogue comes by 4-byte cp.async into per-thread shared-memory slots, issued at
 *     the start of its sub-chunk (the S, C h^T and M X work hides the latency; no registers held,
 *     and no barrier since each thread reads only its own slots);
 *   - the decay vectors (dt', cumulative log decay, w, exp(cum)) are double-buffered: warp 0 (the
 *     lightest causal block) computes those of sub-chunk k+1 during sub-chunk k, so nothing
 *     serial runs between the two barriers of consecutive sub-chunks;
 *   - tile copies with per-thread offsets computed once (no per-element 64-bit index math);
 *   - off the diagonal 16 x 16 block the decay mask is a row factor times a column factor (2
 *     exponentials per row and column, not one per element), and silu(z) divides with
 *     __fdividef (the IEEE division was a call with a slow path per element).
 *   - each causal row block runs its own instantiation of the sub-chunk loop (ssd_out), and S
 *     goes in two passes of at most two column blocks, to stay near the 128-register cap.
 * The local-state pass (ssd_local) is its own kernel: B and X tiles only (no C, state copy or
 * z) through a 4-stage ring with one barrier per sub-chunk, and a ninth warp for the decay
 * vectors. Measured on an H100 (notes-mamba.md): scan forward 1.17 ms at L = 64K and 16.1 ms at
 * 1M against 1.53 and 23.2 ms for mamba_ssd.cuh. Selected by mamba.cu (LC_MAMBA_FWD=1 keeps the
 * first version, also for the backward's local pass). Plain sm_80+ instructions: the same code
 * for sm_90 and sm_90a. Included by mamba.cu only. */
#ifndef LONGCTX_MAMBA_SSD2_CUH
#define LONGCTX_MAMBA_SSD2_CUH

#include "mamba_scan.cuh"
#include "mma.cuh"

namespace mamba_ssd2 {

constexpr int P = 64, N = 128, Q = 64, THREADS = 256;
constexpr int LDN = N + 8, LDP = P + 8; /* bf16 rows padded by 16 B: ldmatrix without bank conflicts */
constexpr int TILE_C = Q * LDN * 2, TILE_B = Q * LDN * 2, TILE_X = Q * LDP * 2;
constexpr int VEC = 4 * Q * 4; /* dtp, cum, w, exp(cum): one buffer */
/* output pass: 2 x (C, B, X), bf16 state, z slots [8][THREADS] (bf16 pairs), 2 vector buffers */
constexpr int BUF = TILE_C + TILE_B + TILE_X;
constexpr int OFF_H = 2 * BUF;
constexpr int OFF_Z = OFF_H + P * LDN * 2;
constexpr int OFF_V = OFF_Z + 8 * THREADS * 4;
constexpr int SMEM = OFF_V + 2 * VEC; /* 114688 B: two blocks per SM fit the 228 KB */
/* local pass: an NSL-stage ring of (B, X) tiles, 2 vector buffers (SMEM_LOCAL4 below) */
constexpr int BUFL = TILE_B + TILE_X;

using lc_mma::pack_bf16;
using mamba_scan::fexp;
using lc_mma::smem_u32;

/* mma.sync m16n8k16 bf16 -> fp32 as a pure register operation (no volatile: schedulable) */
__device__ __forceinline__ void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* ldmatrix from a shared-memory address (kept volatile: ordered with the barriers and copies) */
__device__ __forceinline__ void ldsm(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_t(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int PENDING>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory"); }


__device__ __forceinline__ uint32_t scale2(uint32_t v, float lo, float hi) {
    const float2 f = __bfloat1622float2(*reinterpret_cast<__nv_bfloat162 *>(&v));
    return pack_bf16(f.x * lo, f.y * hi);
}

/* Rows 0..Q-1 of a W-wide bf16 tile (src = row 0, row stride `stride` elements) into shared
 * memory at `dst` (row pitch LD) with 16-byte cp.async; rows >= nvalid are zero-filled. Thread
 * tid copies rows tid / V + k * (THREADS / V), vector tid % V: its offsets are fixed. */
template <int W, int LD>
__device__ __forceinline__ void load_tile(uint32_t dst, const __nv_bfloat16 *src, int stride, int nvalid) {
    constexpr int V = W / 8, RPI = THREADS / V, IT = Q / RPI;
    const int j0 = (int)threadIdx.x / V, v = (int)threadIdx.x % V, st = stride; /* Q * stride < 2^31: H <= 65535 */
    const int off = j0 * st + v * 8;
    const uint32_t d = dst + (uint32_t)(j0 * LD + v * 8) * 2;
#pragma unroll
    for (int k = 0; k < IT; k++) {
        const bool ok = j0 + k * RPI < nvalid;
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d + (uint32_t)(k * RPI * LD * 2)),
                     "l"(src + (ok ? off + k * RPI * st : 0)), "r"(ok ? 16 : 0)
                     : "memory");
    }
}

/* Warp 0: raw dt of the sub-chunk starting at token row `dtrow` (dt + row * H + h), 2 tokens a lane. */
__device__ __forceinline__ float2 dt_fetch(const float *dtrow, int64_t H, int nvalid) {
    const int l = threadIdx.x & 31;
    float2 u = make_float2(0.0f, 0.0f);
    if (2 * l < nvalid) u.x = dtrow[(int64_t)(2 * l) * H];
    if (2 * l + 1 < nvalid) u.y = dtrow[(int64_t)(2 * l + 1) * H];
    return u;
}

/* Warp 0: dt', the inclusive cumulative log decay c, w_j = exp(c_end - c_j) dt'_j, exp(c_i). */
__device__ __forceinline__ void decay_prefix(float *vec, float2 raw, float Ah, float bias, int nvalid) {
    float *dtp = vec, *cum = vec + Q, *wv = vec + 2 * Q, *ec = vec + 3 * Q;
    const int l = threadIdx.x & 31;
    const mamba_scan::decay_pair p = mamba_scan::decay_scan(raw.x + bias, raw.y + bias, Ah, nvalid, l);
    const float d0 = p.d0, d1 = p.d1, c0 = p.c0, c1 = p.c1, cend = p.cend;
    *reinterpret_cast<float2 *>(dtp + 2 * l) = make_float2(d0, d1);
    *reinterpret_cast<float2 *>(cum + 2 * l) = make_float2(c0, c1);
    *reinterpret_cast<float2 *>(wv + 2 * l) = make_float2(fexp(cend - c0) * d0, fexp(cend - c1) * d1);
    *reinterpret_cast<float2 *>(ec + 2 * l) = make_float2(fexp(c0), fexp(c1));
}

/* h <- exp(c_end) h + (X diag(w))^T B for this warp's state tile: rows 16*tp.., cols 64*nh.. */
__device__ __forceinline__ void state_update(float (&hacc)[8][4], uint32_t xs, uint32_t bs, const float *wv, float decay_all,
                                             int tp, int nh) {
    const int lane = threadIdx.x & 31, t = lane & 3, m = lane >> 3;
    const uint32_t xa_a = xs + (uint32_t)(((lane & 7) + (m >> 1) * 8) * LDP + tp * 16 + (m & 1) * 8) * 2;
    const uint32_t bb_a = bs + (uint32_t)(((lane & 7) + ((lane >> 3) & 1) * 8) * LDN + nh * 64 + (lane >> 4) * 8) * 2;
#pragma unroll
    for (int f = 0; f < 8; f++)
#pragma unroll
        for (int e = 0; e < 4; e++) hacc[f][e] *= decay_all;
#pragma unroll
    for (int kk = 0; kk < Q / 16; kk++) {
        uint32_t xa[4];
        /* A = X^T: stored Xs[j][p]; matrices (p 0-7, j 0-7), (p 8-15, j 0-7), (p 0-7, j 8-15), (p 8-15, j 8-15) */
        ldsm_t(xa, xa_a + kk * 16 * LDP * 2);
        const int j = kk * 16 + 2 * t;
        const float2 w01 = *reinterpret_cast<const float2 *>(wv + j), w89 = *reinterpret_cast<const float2 *>(wv + j + 8);
        xa[0] = scale2(xa[0], w01.x, w01.y);
        xa[1] = scale2(xa[1], w01.x, w01.y);
        xa[2] = scale2(xa[2], w89.x, w89.y);
        xa[3] = scale2(xa[3], w89.x, w89.y);
        uint32_t bb[4][4]; /* B = Bs[j][n], k = j rows: transposed loads, two n8 tiles each */
#pragma unroll
        for (int q = 0; q < 4; q++) ldsm_t(bb[q], bb_a + (kk * 16 * LDN + q * 16) * 2);
#pragma unroll
        for (int q = 0; q < 4; q++) {
            mma(hacc[2 * q], xa, bb[q][0], bb[q][1]);
            mma(hacc[2 * q + 1], xa, bb[q][2], bb[q][3]);
        }
    }
}

/* S column blocks J0 .. J0+NJ-1 (16 wide) of this warp's rows 16*IT..: sacc[2 jj + half] =
 * (C B^T) n8 tiles; WITH_H: also Y += C h^T (columns 32*ph..), sharing the A fragments of C. */
template <int IT, int J0, int NJ, bool WITH_H>
__device__ __forceinline__ void s_blocks(float (&sacc)[4][4], float (&yacc)[4][4], uint32_t ca_a, uint32_t bb_a, uint32_t hb_a) {
#pragma unroll
    for (int f = 0; f < 2 * NJ; f++)
#pragma unroll
        for (int e = 0; e < 4; e++) sacc[f][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < N / 16; kk++) {
        uint32_t ca[4];
        ldsm(ca, ca_a + kk * 32);
#pragma unroll
        for (int jj = 0; jj < NJ; jj++) {
            uint32_t bb[4];
            ldsm(bb, bb_a + (J0 + jj) * 16 * LDN * 2 + kk * 32);
            mma(sacc[2 * jj], ca, bb[0], bb[1]);
            mma(sacc[2 * jj + 1], ca, bb[2], bb[3]);
        }
        if (WITH_H) {
#pragma unroll
            for (int pp = 0; pp < 2; pp++) {
                uint32_t hb[4];
                ldsm(hb, hb_a + pp * 16 * LDN * 2 + kk * 32);
                mma(yacc[2 * pp], ca, hb[0], hb[1]);
                mma(yacc[2 * pp + 1], ca, hb[2], hb[3]);
            }
        }
    }
}

/* Y += M X over the column blocks J0 .. J0+NJ-1, M packed from sacc (FA2 repack). Off the
 * diagonal block (j < 16 IT <= i) the decay splits at b = 16 IT into a row and a column factor,
 * exp(c_i - c_j) = exp(c_i - c_b) exp(c_b - c_j), both <= 1 (c falls with the index): 2
 * exponentials per column pair instead of one per element. The diagonal block IT keeps the
 * exact per-element decay and masks j > i (a select, not a branch). */
template <int IT, int J0, int NJ>
__device__ __forceinline__ void m_blocks(const float (&sacc)[4][4], float (&yacc)[4][4], uint32_t xb_a, const float *vec,
                                         float er_lo, float er_hi) {
    const int lane = threadIdx.x & 31, g8 = lane >> 2, t = lane & 3;
    const int r_lo = IT * 16 + g8, r_hi = r_lo + 8;
    const float *dtp = vec, *cum = vec + Q;
    const float cb = cum[IT * 16], c_lo = cum[r_lo], c_hi = cum[r_hi];
#pragma unroll
    for (int jj = 0; jj < NJ; jj++) {
        const int kk = J0 + jj;
        uint32_t ma[4];
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int f = 2 * jj + half, j = (2 * kk + half) * 8 + 2 * t;
            const float2 w = *reinterpret_cast<const float2 *>(dtp + j), cj = *reinterpret_cast<const float2 *>(cum + j);
            float m00, m01, m10, m11;
            if (kk < IT) {
                const float k0 = fexp(cb - cj.x) * w.x, k1 = fexp(cb - cj.y) * w.y;
                m00 = sacc[f][0] * er_lo * k0, m01 = sacc[f][1] * er_lo * k1;
                m10 = sacc[f][2] * er_hi * k0, m11 = sacc[f][3] * er_hi * k1;
            } else {
                m00 = j <= r_lo ? sacc[f][0] * fexp(c_lo - cj.x) * w.x : 0.0f;
                m01 = j + 1 <= r_lo ? sacc[f][1] * fexp(c_lo - cj.y) * w.y : 0.0f;
                m10 = j <= r_hi ? sacc[f][2] * fexp(c_hi - cj.x) * w.x : 0.0f;
                m11 = j + 1 <= r_hi ? sacc[f][3] * fexp(c_hi - cj.y) * w.y : 0.0f;
            }
            ma[2 * half] = pack_bf16(m00, m01);
            ma[2 * half + 1] = pack_bf16(m10, m11);
        }
#pragma unroll
        for (int pp = 0; pp < 2; pp++) {
            uint32_t xb[4];
            ldsm_t(xb, xb_a + (kk * 16 * LDP + pp * 16) * 2);
            mma(yacc[2 * pp], ma, xb[0], xb[1]);
            mma(yacc[2 * pp + 1], ma, xb[2], xb[3]);
        }
    }
}

/* One warp's share of a sub-chunk's outputs: rows 16*IT.. (IT = causal row block), columns
 * 32*ph..: S = C B^T over the causal column blocks, Y = diag(exp(c)) C h^T + M X, then
 * y = (Y + D x) * silu(z) with z from this thread's cp.async slots. S goes in two passes of at
 * most two column blocks (16 accumulators, not 32: the kernel stays inside 128 registers); the
 * second pass re-reads the C fragments (8 ldmatrix). */
template <int IT>
__device__ __forceinline__ void out_rows(uint32_t cs, uint32_t bs, uint32_t xs_a, const __nv_bfloat16 *Xs, uint32_t hs,
                                         const float *vec, const uint32_t *zslot, bool has_z, float Dh, __nv_bfloat16 *ylo,
                                         int HP, int nvalid, int ph) {
    constexpr int NJ0 = IT >= 1 ? 2 : 1;
    const int lane = threadIdx.x & 31, g8 = lane >> 2, t = lane & 3;
    const int r_lo = IT * 16 + g8, r_hi = r_lo + 8;
    const float *cum = vec + Q, *ec = vec + 3 * Q;
    float sacc[4][4], yacc[4][4];
#pragma unroll
    for (int f = 0; f < 4; f++)
#pragma unroll
        for (int e = 0; e < 4; e++) yacc[f][e] = 0.0f;
    const uint32_t ca_a = cs + (uint32_t)((IT * 16 + (lane & 15)) * LDN + (lane >> 4) * 8) * 2;
    const uint32_t bb_a = bs + (uint32_t)(((lane & 7) + ((lane >> 4) << 3)) * LDN + ((lane >> 3) & 1) * 8) * 2;
    const uint32_t hb_a = hs + (uint32_t)((ph * 32 + (lane & 7) + ((lane >> 4) << 3)) * LDN + ((lane >> 3) & 1) * 8) * 2;
    const uint32_t xb_a = xs_a + (uint32_t)(((lane & 7) + ((lane >> 3) & 1) * 8) * LDP + ph * 32 + (lane >> 4) * 8) * 2;
    s_blocks<IT, 0, NJ0, true>(sacc, yacc, ca_a, bb_a, hb_a);
    const float e_lo = ec[r_lo], e_hi = ec[r_hi], cb = cum[IT * 16];
#pragma unroll
    for (int f = 0; f < 4; f++) yacc[f][0] *= e_lo, yacc[f][1] *= e_lo, yacc[f][2] *= e_hi, yacc[f][3] *= e_hi;
    const float er_lo = fexp(cum[r_lo] - cb), er_hi = fexp(cum[r_hi] - cb);
    m_blocks<IT, 0, NJ0>(sacc, yacc, xb_a, vec, er_lo, er_hi);
    if constexpr (IT >= 2) {
        s_blocks<IT, 2, IT - 1, false>(sacc, yacc, ca_a, bb_a, hb_a);
        m_blocks<IT, 2, IT - 1>(sacc, yacc, xb_a, vec, er_lo, er_hi);
    }
    /* y = (Y + D x) * silu(z): z of this thread's slots (its own cp.async: wait, no barrier) */
    cp_wait<1>();
#pragma unroll
    for (int f = 0; f < 4; f++) {
        const int p = ph * 32 + f * 8 + 2 * t;
#pragma unroll
        for (int hv = 0; hv < 2; hv++) {
            const int i = hv ? r_hi : r_lo;
            const float2 xf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(Xs + i * LDP + p));
            float y0 = yacc[f][2 * hv] + Dh * xf.x, y1 = yacc[f][2 * hv + 1] + Dh * xf.y;
            if (has_z) {
                uint32_t zu = zslot[(f * 2 + hv) * THREADS];
                const float2 zf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&zu));
                y0 *= __fdividef(zf.x, 1.0f + fexp(-zf.x)), y1 *= __fdividef(zf.y, 1.0f + fexp(-zf.y));
            }
            if (i < nvalid) *reinterpret_cast<__nv_bfloat162 *>(ylo + hv * 8 * HP + f * 8) = __floats2bfloat162_rn(y0, y1);
        }
    }
}

/* Output pass: per (head, chunk, batch) from the chunk's incoming state (a.st), writes y (and
 * nothing else). Sub-chunk k: copies of z(k) and of the tiles of k+1 are issued first; barrier
 * [A] (tiles of k, the bf16 state, the vectors of k ready); warp 0 computes the vectors of
 * k+1; every warp its rows of y; the state update; barrier [B] (buffers of k free); the bf16
 * state copy for k+1. */
template <int IT>
__device__ __forceinline__ void out_body(const mamba_scan::args &a, unsigned char *smem) {
    const uint32_t sb = smem_u32(smem);
    __nv_bfloat16 *Hs = (__nv_bfloat16 *)(smem + OFF_H);
    float *vecs = (float *)(smem + OFF_V);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g8 = lane >> 2, t = lane & 3;
    /* 32-bit indices where they fit (fewer live registers: the loop is at the 128 cap): token
     * indices < nch * T <= 65535 * 8192, HP and GN < 2^31 / Q; b * L and row offsets in 64 bits */
    const int h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (int)(a.H / a.G);
    const int t_begin = c * (int)a.T, t_end = (int)min((int64_t)t_begin + a.T, a.L);
    const int HP = (int)a.H * P, GN = (int)a.G * N;
    const float *stp = a.st + (((int64_t)b * a.nch + c) * a.H + h) * (int64_t)(P * N);
    const int tp = warp & 3, nh = warp >> 2; /* state tile: rows 16*tp.., columns 64*nh.. */
    const int it = IT, ph = warp >> 2; /* output rows 16*it.., columns 32*ph.. */
    float hacc[8][4];
#pragma unroll
    for (int f = 0; f < 8; f++) {
        const float *s0 = stp + (tp * 16 + g8) * N + nh * 64 + f * 8 + 2 * t;
        const float2 lo = *reinterpret_cast<const float2 *>(s0), hi = *reinterpret_cast<const float2 *>(s0 + 8 * N);
        hacc[f][0] = lo.x, hacc[f][1] = lo.y, hacc[f][2] = hi.x, hacc[f][3] = hi.y;
    }
    for (int e = tid; e < P * N / 4; e += THREADS) { /* bf16 copy of the incoming state */
        const int p = e / (N / 4), n4 = e % (N / 4);
        const float4 v = *reinterpret_cast<const float4 *>(stp + p * N + n4 * 4);
        *reinterpret_cast<uint2 *>(Hs + p * LDN + n4 * 4) = make_uint2(pack_bf16(v.x, v.y), pack_bf16(v.z, v.w));
    }
    const float Dh = a.D ? a.D[h] : 0.0f;
    const bool has_z = a.z != nullptr;
    /* this thread's output elements: rows r_lo, r_lo + 8 of the sub-chunk, column pairs
     * ph*32 + f*8 + 2t; offset within the sub-chunk's rows (< 2^31: HP <= 65535 * 64) */
    const int r_lo = it * 16 + g8;
    const int o_lo = r_lo * HP + h * P + ph * 32 + 2 * t;
    auto issue_tiles = [&](int t0, int buf) {
        const int nv = min(Q, t_end - t0);
        const int64_t r0 = (int64_t)b * a.L + t0;
        const uint32_t base = sb + buf * BUF;
        load_tile<P, LDP>(base + TILE_C + TILE_B, a.x + r0 * HP + h * P, HP, nv);
        load_tile<N, LDN>(base + TILE_C, a.Bm + r0 * GN + g * N, GN, nv);
        load_tile<N, LDN>(base, a.Cm + r0 * GN + g * N, GN, nv);
        /* z of that sub-chunk comes one sub-chunk later (its slots are busy): pull it into L2 now */
        if (has_z && tid < nv) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(a.z + (r0 + tid) * HP + h * P));
    };
    auto issue_z = [&](int t0) {
        const int nv = min(Q, t_end - t0);
        const __nv_bfloat16 *zb = a.z + ((int64_t)b * a.L + t0) * HP;
#pragma unroll
        for (int f = 0; f < 4; f++)
#pragma unroll
            for (int hv = 0; hv < 2; hv++) {
                const bool ok = r_lo + 8 * hv < nv;
                const __nv_bfloat16 *src = zb + (ok ? o_lo + hv * 8 * HP + f * 8 : 0);
                asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(sb + OFF_Z + (tid + (f * 2 + hv) * THREADS) * 4),
                             "l"(src),
                             "r"(ok ? 4 : 0)
                             : "memory");
            }
    };
    issue_tiles(t_begin, 0);
    cp_commit();
    float2 dt_raw = make_float2(0.f, 0.f);
    if (warp == 0) {
        const int nv0 = min(Q, t_end - t_begin);
        const float *dtcol = a.dt + (int64_t)b * a.L * a.H + h;
        decay_prefix(vecs, dt_fetch(dtcol + (int64_t)t_begin * a.H, a.H, nv0), a.A[h], a.dt_bias ? a.dt_bias[h] : 0.0f, nv0);
        if (t_begin + Q < t_end) dt_raw = dt_fetch(dtcol + (int64_t)(t_begin + Q) * a.H, a.H, min(Q, t_end - t_begin - Q));
    }
    int buf = 0;
    for (int t0 = t_begin; t0 < t_end; t0 += Q, buf ^= 1) {
        const int nvalid = min(Q, t_end - t0);
        const bool more = t0 + Q < t_end;
        if (has_z) issue_z(t0);
        cp_commit(); /* group z(k) */
        if (more) issue_tiles(t0 + Q, buf ^ 1); /* that buffer was freed by the last barrier [B] */
        cp_commit(); /* group tiles(k+1), possibly empty */
        cp_wait<2>();
        __syncthreads(); /* [A] */
        const float *vec = vecs + buf * (VEC / 4);
        if (warp == 0 && more) { /* the vectors of k+1 (their buffer was last read before [B] of k-1) */
            decay_prefix(vecs + (buf ^ 1) * (VEC / 4), dt_raw, a.A[h], a.dt_bias ? a.dt_bias[h] : 0.0f,
                         min(Q, t_end - t0 - Q));
            if (t0 + 2 * Q < t_end)
                dt_raw = dt_fetch(a.dt + ((int64_t)b * a.L + t0 + 2 * Q) * a.H + h, a.H, min(Q, t_end - t0 - 2 * Q));
        }
        const uint32_t cs = sb + buf * BUF, bs = cs + TILE_C, xs = bs + TILE_B;
        const __nv_bfloat16 *Xs = (const __nv_bfloat16 *)(smem + buf * BUF + TILE_C + TILE_B);
        const uint32_t *zslot = (const uint32_t *)(smem + OFF_Z) + tid;
        const float cend = vec[2 * Q - 1];
        __nv_bfloat16 *ylo = a.y + ((int64_t)b * a.L + t0) * HP + o_lo;
        out_rows<IT>(cs, bs, xs, Xs, sb + OFF_H, vec, zslot, has_z, Dh, ylo, HP, nvalid, ph);
        state_update(hacc, xs, bs, vec + 2 * Q, fexp(cend), tp, nh);
        __syncthreads(); /* [B] */
        if (more) {
#pragma unroll
            for (int f = 0; f < 8; f++) {
                __nv_bfloat16 *o = Hs + (tp * 16 + g8) * LDN + nh * 64 + f * 8 + 2 * t;
                *reinterpret_cast<uint32_t *>(o) = pack_bf16(hacc[f][0], hacc[f][1]);
                *reinterpret_cast<uint32_t *>(o + 8 * LDN) = pack_bf16(hacc[f][2], hacc[f][3]);
            }
        }
    }
    cp_wait<0>();
}

/* The causal row block IT = warp % 4 selects a whole instantiation of the loop per warp (the
 * four copies reach the same bar.sync 0 once per sub-chunk each; each is register-allocated on
 * its own terms). Measured against it (results/notes-mamba.md): one loop with the switch inside
 * around out_rows (10% slower at 1M) and heavy and light row blocks paired per scheduler (the
 * same time); both removed. ptxas spills 184 B at the 128-register cap of two blocks per SM. */
__global__ void __launch_bounds__(THREADS, 2) ssd_out(mamba_scan::args a) {
    extern __shared__ __align__(128) unsigned char smem[];
    switch ((threadIdx.x >> 5) & 3) {
    case 0: out_body<0>(a, smem); break;
    case 1: out_body<1>(a, smem); break;
    case 2: out_body<2>(a, smem); break;
    default: out_body<3>(a, smem); break;
    }
}

/* Local pass: per (head, chunk, batch) the state at the chunk's end from a zero state (a.st)
 * and the chunk's total decay (a.decay): h = sum over sub-chunks of the decayed X^T diag(w) B.
 * B and X tiles go through an NSL-stage cp.async ring with one barrier per sub-chunk: the copy
 * for sub-chunk k + NSL - 1 is issued after barrier [A] of k, into the buffer that sub-chunk k - 1
 * used (every warp left it before reaching [A]); the decay vectors are double-buffered as in
 * ssd_out. (The first version had two stages and two barriers per sub-chunk: ncu put 34% of its
 * stall cycles on the barriers.) */
constexpr int NSL = 4;
constexpr int SMEM_LOCAL4 = NSL * BUFL + 2 * VEC;
/* DW: a ninth warp computes the decay vectors (with warp 0 doing it, ncu put 34% of the stall
 * cycles on the barrier: the other warps waited for warp 0's extra prefix scan every sub-chunk).
 * The extra warp issues no copies; 288 threads at two blocks per SM cap registers at 112. */
template <bool DW>
__global__ void __launch_bounds__(DW ? THREADS + 32 : THREADS, 2) ssd_local(mamba_scan::args a) {
    constexpr int DECAY_WARP = DW ? THREADS / 32 : 0;
    extern __shared__ __align__(128) unsigned char smem[];
    const uint32_t sb = smem_u32(smem);
    float *vecs = (float *)(smem + NSL * BUFL);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g8 = lane >> 2, t = lane & 3;
    const int h = blockIdx.x, c = blockIdx.y, b = blockIdx.z, g = h / (int)(a.H / a.G);
    const int t_begin = c * (int)a.T, t_end = (int)min((int64_t)t_begin + a.T, a.L);
    const int HP = (int)a.H * P, GN = (int)a.G * N;
    const int tp = warp & 3, nh = warp >> 2;
    float hacc[8][4];
#pragma unroll
    for (int f = 0; f < 8; f++)
#pragma unroll
        for (int e = 0; e < 4; e++) hacc[f][e] = 0.0f;
    const float *dtcol = a.dt + (int64_t)b * a.L * a.H + h;
    auto issue_tiles = [&](int t0, int buf) {
        if (DW && warp == DECAY_WARP) return; /* no copies, no groups: its waits return at once */
        if (t0 < t_end) {
            const int nv = min(Q, t_end - t0);
            const int64_t r0 = (int64_t)b * a.L + t0;
            const uint32_t base = sb + buf * BUFL;
            load_tile<P, LDP>(base + TILE_B, a.x + r0 * HP + h * P, HP, nv);
            load_tile<N, LDN>(base, a.Bm + r0 * GN + g * N, GN, nv);
        }
        cp_commit(); /* one group per sub-chunk, empty past the end: the wait count stays fixed */
    };
#pragma unroll
    for (int k = 0; k < NSL - 1; k++) issue_tiles(t_begin + k * Q, k);
    float2 dt_raw = make_float2(0.f, 0.f);
    if (warp == DECAY_WARP) {
        const int nv0 = min(Q, t_end - t_begin);
        decay_prefix(vecs, dt_fetch(dtcol + (int64_t)t_begin * a.H, a.H, nv0), a.A[h], a.dt_bias ? a.dt_bias[h] : 0.0f, nv0);
        if (t_begin + Q < t_end) dt_raw = dt_fetch(dtcol + (int64_t)(t_begin + Q) * a.H, a.H, min(Q, t_end - t_begin - Q));
    }
    float logdecay = 0.0f;
    int buf = 0, vb = 0;
    for (int t0 = t_begin; t0 < t_end; t0 += Q, vb ^= 1) {
        cp_wait<NSL - 2>(); /* tiles of this sub-chunk landed (this thread's copies) */
        __syncthreads();    /* [A] everyone's copies, the vectors; sub-chunk k - 1 finished by all */
        issue_tiles(t0 + (NSL - 1) * Q, buf == 0 ? NSL - 1 : buf - 1);
        const float *vec = vecs + vb * (VEC / 4);
        if (warp == DECAY_WARP && t0 + Q < t_end) {
            decay_prefix(vecs + (vb ^ 1) * (VEC / 4), dt_raw, a.A[h], a.dt_bias ? a.dt_bias[h] : 0.0f, min(Q, t_end - t0 - Q));
            if (t0 + 2 * Q < t_end) dt_raw = dt_fetch(dtcol + (int64_t)(t0 + 2 * Q) * a.H, a.H, min(Q, t_end - t0 - 2 * Q));
        }
        const float cend = vec[2 * Q - 1];
        logdecay += cend;
        const uint32_t bs = sb + buf * BUFL;
        if (!DW || warp != DECAY_WARP) state_update(hacc, bs + TILE_B, bs, vec + 2 * Q, fexp(cend), tp, nh);
        buf = buf == NSL - 1 ? 0 : buf + 1;
    }
    cp_wait<0>();
    if (DW && warp == DECAY_WARP) return;
    float *stp = a.st + (((int64_t)b * a.nch + c) * a.H + h) * (int64_t)(P * N);
#pragma unroll
    for (int f = 0; f < 8; f++) {
        float *s0 = stp + (tp * 16 + g8) * N + nh * 64 + f * 8 + 2 * t;
        *reinterpret_cast<float2 *>(s0) = make_float2(hacc[f][0], hacc[f][1]);
        *reinterpret_cast<float2 *>(s0 + 8 * N) = make_float2(hacc[f][2], hacc[f][3]);
    }
    if (tid == 0) a.decay[((int64_t)b * a.nch + c) * a.H + h] = fexp(logdecay);
}

} // namespace mamba_ssd2
#endif
