/* mamba.cu — CUDA entry points of the Mamba-2 mixer (mamba.h): argument checks, workspace,
 * launches. The kernels live in mamba_conv.cuh (conv1d + SiLU) and mamba_scan.cuh (the
 * chunk-parallel scan; its header comment gives the passes and the ddA identity). */
#include "mamba.h"
#include "mamba_conv.cuh"
#include "mamba_scan.cuh"
#include "mamba_ssd.cuh"
#include "mamba_ssd2.cuh"
#include "mamba_ssd_wg.cuh"
#include "mamba_ssd_wg2.cuh"
#include "device.h"
#include "mamba_bwd.cuh"
#include "mamba_ssd_bwd.cuh"
#include "mamba_ssd_bwd_wg.cuh"
#include "mamba_ssd_bwd_wg2.cuh"

#include <stdlib.h>

/* ---------------- conv ---------------- */

static lc_status conv_args(const struct mamba_conv_shape *s, const char *fn) {
    LC_TRY(mamba_check(s, NULL));
    if (s->Kw < 1 || s->Kw > 4) return lc_errorf(LC_EUNSUPPORTED, "%s: Kw = %lld: the CUDA conv supports 1..4", fn, (long long)s->Kw);
    return LC_OK;
}

#define CONV_DISPATCH(KWV, launch) \
    switch (KWV) {                 \
    case 1: launch(1); break;      \
    case 2: launch(2); break;      \
    case 3: launch(3); break;      \
    default: launch(4); break;     \
    }

lc_status mamba_conv_forward_cuda(const struct mamba_conv_shape *s, const bf16_t *x, const float *weight,
                                  const float *bias, const bf16_t *tail_in, bf16_t *y, bf16_t *tail_out,
                                  void *stream) {
    lc_nvtx_range nvtx_range("mamba.conv.fwd");
    LC_TRY(conv_args(s, "mamba_conv_forward_cuda"));
    LC_REQUIRE(x && weight && y, "mamba_conv_forward_cuda: x, weight and y must not be NULL");
    const int threads = 128;
    const int64_t nrun = (s->L + mamba_conv::TOK - 1) / mamba_conv::TOK;
    dim3 grid((unsigned)((s->Cch + threads - 1) / threads), (unsigned)(nrun < 65535 ? nrun : 65535), (unsigned)s->B);
    LC_REQUIRE(s->B <= 65535, "mamba_conv_forward_cuda: B = %lld too large for the grid", (long long)s->B);
#define LAUNCH(K)                                                                                                 \
    mamba_conv::conv_fwd<K><<<grid, threads, 0, lc_stream(stream)>>>(                                            \
        (const __nv_bfloat16 *)x, weight, bias, (const __nv_bfloat16 *)tail_in, (__nv_bfloat16 *)y,                \
        (__nv_bfloat16 *)tail_out, s->L, s->Cch)
    CONV_DISPATCH(s->Kw, LAUNCH);
#undef LAUNCH
    cuda_check_launch("conv_fwd");
    return LC_OK;
}

lc_status mamba_conv_backward_cuda(const struct mamba_conv_shape *s, const bf16_t *x, const float *weight,
                                   const float *bias, const bf16_t *tail_in, const bf16_t *dy,
                                   const bf16_t *dtail_out, bf16_t *dx, float *dweight, float *dbias,
                                   bf16_t *dtail_in, void *stream) {
    lc_nvtx_range nvtx_range("mamba.conv.bwd");
    LC_TRY(conv_args(s, "mamba_conv_backward_cuda"));
    LC_REQUIRE(x && weight && dy && dx && dweight && dbias,
               "mamba_conv_backward_cuda: x, weight, dy, dx, dweight and dbias must not be NULL");
    cudaStream_t st = lc_stream(stream);
    cuda_check(cudaMemsetAsync(dweight, 0, sizeof(float) * (size_t)(s->Cch * s->Kw), st));
    cuda_check(cudaMemsetAsync(dbias, 0, sizeof(float) * (size_t)s->Cch, st));
    const int threads = 128;
    const int64_t nrun = (s->L + mamba_conv::TOK - 1) / mamba_conv::TOK;
    /* enough runs in flight to fill the card; each thread then loops over nrun / gy runs */
    const int64_t gy = nrun < 256 ? nrun : 256;
    dim3 grid((unsigned)((s->Cch + threads - 1) / threads), (unsigned)gy, (unsigned)s->B);
#define LAUNCH(K)                                                                                                 \
    mamba_conv::conv_bwd<K><<<grid, threads, 0, st>>>(                                                          \
        (const __nv_bfloat16 *)x, weight, bias, (const __nv_bfloat16 *)tail_in, (const __nv_bfloat16 *)dy,         \
        (const __nv_bfloat16 *)dtail_out, (__nv_bfloat16 *)dx, dweight, dbias, (__nv_bfloat16 *)dtail_in, s->L,    \
        s->Cch)
    CONV_DISPATCH(s->Kw, LAUNCH);
#undef LAUNCH
    cuda_check_launch("conv_bwd");
    return LC_OK;
}

lc_status mamba_conv_decode_cuda(const struct mamba_conv_shape *s, const bf16_t *x, const float *weight,
                                 const float *bias, bf16_t *tail, bf16_t *y, void *stream) {
    lc_nvtx_range nvtx_range("mamba.conv.decode");
    struct mamba_conv_shape one = *s;
    one.L = 1;
    LC_TRY(conv_args(&one, "mamba_conv_decode_cuda"));
    LC_REQUIRE(x && weight && y && (tail || s->Kw == 1), "mamba_conv_decode_cuda: x, weight, tail and y must not be NULL");
    const int threads = 128;
    dim3 grid((unsigned)((s->Cch + threads - 1) / threads), (unsigned)s->B);
#define LAUNCH(K)                                                                                                 \
    mamba_conv::conv_decode<K><<<grid, threads, 0, lc_stream(stream)>>>(                                         \
        (const __nv_bfloat16 *)x, weight, bias, (__nv_bfloat16 *)tail, (__nv_bfloat16 *)y, s->Cch)
    CONV_DISPATCH(s->Kw, LAUNCH);
#undef LAUNCH
    cuda_check_launch("conv_decode");
    return LC_OK;
}

/* ---------------- scan ---------------- */

static lc_status scan_args(const struct mamba_scan_shape *s, const char *fn) {
    LC_TRY(mamba_check(NULL, s));
    LC_TRY(lc_tuning_check()); /* the LC_MAMBA_* switches read checked values */
    const bool ok = (s->P == 64 && s->N == 128) || (s->P == 32 && s->N == 64);
    if (!ok)
        return lc_errorf(LC_EUNSUPPORTED, "%s: (P, N) = (%lld, %lld): the CUDA scan supports (64, 128) and (32, 64)", fn,
                         (long long)s->P, (long long)s->N);
    if (s->H > 65535 || s->B > 65535) return lc_errorf(LC_EUNSUPPORTED, "%s: H and B must be <= 65535 (grid limits)", fn);
    return LC_OK;
}

/* Chunk length: long chunks cut the state traffic of the passes (P*N fp32 per chunk and head),
 * short ones give parallelism. The forward keeps ~4 blocks per SM of an H100 (two waves at its
 * occupancy of 2; with the mamba_ssd2 kernels T = 4096 ran 1.107 ms at 64K against 1.169 ms for
 * one wave of T = 8192; the first kernels preferred one wave); the backward ~4 per SM (its
 * chunks are capped at TMAX_BWD, the persistent ssd_bwd balances them). */
static int64_t scan_chunk(const struct mamba_scan_shape *s, int backward) {
    int64_t T = 64;
    const int64_t cap = backward ? mamba_scan::TMAX_BWD : 8192;
    /* LC_MAMBA_TFWD / LC_MAMBA_TBWD: a fixed chunk length (a power of two >= 64), for timing */
    const int64_t fixed = lc_tuning_int(backward ? "LC_MAMBA_TBWD" : "LC_MAMBA_TFWD", 0);
    if (fixed) {
        while (T < fixed && T < cap) T *= 2;
        return T;
    }
    const int64_t want = backward ? 528 : 512;
    while (T < cap && s->B * s->H * ((s->L + 2 * T - 1) / (2 * T)) >= want) T *= 2;
    return T;
}

/* The P = 64 backward on tensor cores (mamba_ssd_bwd.cuh) unless LC_MAMBA_BWD_FP32 is set (the
 * fp32 recurrences of mamba_bwd.cuh, kept for P = 32 and for comparison). */
static bool bwd_tc(const struct mamba_scan_shape *s) {
    return s->P == 64 && s->N == 128 && !lc_tuning_int("LC_MAMBA_BWD_FP32", 0);
}

/* Which tensor-core forward (P = 64), chosen by LC_MAMBA_FWD (also for the backward's local-state
 * pass): 3 = mamba_ssd_wg.cuh (wgmma; the default where the sm_90a code runs), 4 = both passes
 * with two heads of a group per block and TMA loads (mamba_ssd_wg2.cuh; where H / G is even and
 * the tensor maps can be made, else 3; opt-in: -2.9% / -2.2% forward time at 64K / 1M on an H200,
 * -2.0% / -1.1..-2.4% on the H100, fwd+bwd level, racecheck not completed: results/notes-mamba.md,
 * session 6 mamba7), 2 =
 * mamba_ssd2.cuh (mma.sync; the default elsewhere), 1 = mamba_ssd.cuh (the first, kept for
 * comparison). 3 and 4 fall back to 2 without sm_90a code. Read at every call so tests and
 * benchmarks can switch it. */
static int fwd_version(void) {
    const int v = (int)lc_tuning_int("LC_MAMBA_FWD", 3);
    return v >= 3 && !lc_cuda_have_sm90a() ? 2 : v;
}

/* A 4-D tensor map over a bf16 [B][L][nh][64] tensor (innermost first: 64, nh, L, B), box = one
 * 64-column panel of 64 rows, 128-byte swizzled (the wgmma panels' layout); rows past L arrive as
 * zeros. x is [B][L][H][64]; B and C ([B][L][G][128]) are [B][L][2G][64]. 0 when the driver lacks
 * the entry point or the encoder refuses (a pointer not 16-byte aligned): the caller falls back. */
static int scan_tensor_map(CUtensorMap *m, const void *base, int64_t B, int64_t L, int64_t nh) {
    PFN_cuTensorMapEncodeTiled_v12000 encode = lc_tensor_map_encoder();
    if (!encode || ((uintptr_t)base & 15)) return 0;
    const cuuint64_t dims[4] = {64, (cuuint64_t)nh, (cuuint64_t)L, (cuuint64_t)B};
    const cuuint64_t strides[3] = {128, (cuuint64_t)(nh * 128), (cuuint64_t)(L * nh * 128)};
    const cuuint32_t box[4] = {64, 1, 64, 1}, estr[4] = {1, 1, 1, 1};
    return encode(m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void *>(base), dims, strides, box, estr,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/* ssd_wg2 (two heads of a group per block, LC_MAMBA_FWD=4): the output pass, LOCAL the local-state
 * pass (also the backward's). 1 if launched, 0 (nothing launched) where it does not apply: H / G odd,
 * or no tensor map (the callers then run ssd_wg). C is not read by the local pass. */
template <bool LOCAL>
static int ssd_wg2_launch(mamba_scan::args &a, cudaStream_t st) {
    if ((a.H / a.G) % 2) return 0;
    CUtensorMap tx, tb, tc;
    if (!scan_tensor_map(&tx, a.x, a.B, a.L, a.H) || !scan_tensor_map(&tb, a.Bm, a.B, a.L, 2 * a.G) ||
        !scan_tensor_map(&tc, LOCAL ? a.Bm : a.Cm, a.B, a.L, 2 * a.G))
        return 0;
    constexpr int smem = LOCAL ? mamba_ssd_wg2::SMEM_L : mamba_ssd_wg2::SMEM;
    static bool attr = false;
    if (!attr) {
        if (cudaFuncSetAttribute(mamba_ssd_wg2::ssd_wg2<LOCAL>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess) {
            cudaGetLastError();
            return 0;
        }
        attr = true;
    }
    dim3 grid((unsigned)(a.H / 2), (unsigned)a.nch, (unsigned)a.B);
    mamba_ssd_wg2::ssd_wg2<LOCAL><<<grid, mamba_ssd_wg2::NT2, smem, st>>>(a, tx, tb, tc);
    return 1;
}

/* The backward's local dh pass (P = 64): the wgmma kernel (mamba_ssd_wg.cuh) where the sm_90a code
 * runs, unless LC_MAMBA_DHL=0; else mamba_ssd_bwd::ssd_dh_local (mma.sync). */
static bool dhl_wg(void) {
    return lc_tuning_int("LC_MAMBA_DHL", 1) && lc_cuda_have_sm90a();
}

/* The backward's gradient kernel (P = 64), where the sm_90a code runs: LC_MAMBA_BWG=2 (default)
 * mamba_ssd_bwd_wg2::ssd_bwd_wg2, two heads of a group per block sharing B / C and one dB / dC
 * reduction, where H / G is even (else 1); 1: mamba_ssd_bwd_wg::ssd_bwd_wg, one head per block;
 * 0, and always on plain sm_90: mamba_ssd_bwd::ssd_bwd (mma.sync). On the H100 (session 6, same
 * run) 2 took fwd+bwd at 1M from 75.8 to 60.5 ms and lost 1.5% at 64K (4.03 -> 4.08 ms).
 * Returns 0, 1 or 2. */
static int bwg_version(const mamba_scan::args &a) {
    if (!lc_cuda_have_sm90a()) return 0;
    const int v = (int)lc_tuning_int("LC_MAMBA_BWG", 2);
    if (v == 2) return (a.H / a.G) % 2 == 0 ? 2 : 1;
    return v ? 1 : 0;
}

/* Local chunk states and decays (P = 64) by the selected forward's kernel. */
static lc_status ssd_local_launch(mamba_scan::args &a, dim3 grid, cudaStream_t st) {
    static bool attr = false;
    if (!attr) {
        cuda_check(cudaFuncSetAttribute(mamba_ssd::ssd_fwd<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, mamba_ssd::SMEM));
        cuda_check(cudaFuncSetAttribute(mamba_ssd2::ssd_local<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, mamba_ssd2::SMEM_LOCAL4));
        cuda_check(cudaFuncSetAttribute(mamba_ssd2::ssd_local<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, mamba_ssd2::SMEM_LOCAL4));
        cuda_check(cudaFuncSetAttribute(mamba_ssd_wg::ssd_wg<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, mamba_ssd_wg::SMEM_L));
        attr = true;
    }
    const int v = fwd_version();
    if (v == 1) {
        mamba_ssd::ssd_fwd<true><<<grid, mamba_ssd::THREADS, mamba_ssd::SMEM, st>>>(a);
        cuda_check_launch("ssd_fwd<local>");
    } else if (v == 4 && ssd_wg2_launch<true>(a, st)) {
        cuda_check_launch("ssd_wg2<local>");
    } else if (v >= 3) {
        mamba_ssd_wg::ssd_wg<true><<<grid, mamba_ssd_wg::NT, mamba_ssd_wg::SMEM_L, st>>>(a);
        cuda_check_launch("ssd_wg<local>");
    } else {
        /* LC_MAMBA_LDW=0: the decay vectors on warp 0 instead of a ninth warp */
        if (!lc_tuning_int("LC_MAMBA_LDW", 1)) {
            mamba_ssd2::ssd_local<false><<<grid, mamba_ssd2::THREADS, mamba_ssd2::SMEM_LOCAL4, st>>>(a);
            cuda_check_launch("ssd_local");
        } else {
            mamba_ssd2::ssd_local<true><<<grid, mamba_ssd2::THREADS + 32, mamba_ssd2::SMEM_LOCAL4, st>>>(a);
            cuda_check_launch("ssd_local<dw>");
        }
    }
    return LC_OK;
}

/* persistent grid of ssd_bwd: two blocks per SM */
static int64_t bwd_grid(void) {
    static int nsm = 0;
    if (!nsm) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            nsm < 1)
            nsm = 132;
    }
    return 2 * (int64_t)nsm;
}

static size_t scan_ws_parts(const struct mamba_scan_shape *s, int backward, size_t *st_bytes, size_t *decay_bytes) {
    const int64_t T = scan_chunk(s, backward), nch = (s->L + T - 1) / T;
    *st_bytes = sizeof(float) * (size_t)(s->B * nch * s->H * s->P * s->N);
    *decay_bytes = (sizeof(float) * (size_t)(s->B * nch * s->H) + 255) / 256 * 256;
    const size_t scratch = backward && bwd_tc(s) ? (size_t)bwd_grid() * mamba_ssd_bwd::SCRATCH_PER_BLOCK : 0;
    return *st_bytes * (backward ? 2 : 1) + *decay_bytes + scratch;
}

size_t mamba_scan_workspace_bytes(const struct mamba_scan_shape *s, int backward) {
    if (mamba_check(NULL, s) != LC_OK) return 0;
    size_t a, b;
    return scan_ws_parts(s, backward, &a, &b);
}

template <int P, int N>
static lc_status scan_forward_t(mamba_scan::args &a, const float *h0, cudaStream_t st) {
    dim3 grid((unsigned)a.H, (unsigned)a.nch, (unsigned)a.B);
    const int64_t PN = (int64_t)P * N;
    dim3 pgrid((unsigned)((PN / 4 + 255) / 256), (unsigned)a.H, (unsigned)a.B); /* state_pass: 4 elements a thread */
    if (P == 64 && N == 128) { /* tensor-core path */
        static bool attr = false;
        if (!attr) {
            cuda_check(cudaFuncSetAttribute(mamba_ssd::ssd_fwd<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, mamba_ssd::SMEM));
            cuda_check(cudaFuncSetAttribute(mamba_ssd2::ssd_out, cudaFuncAttributeMaxDynamicSharedMemorySize, mamba_ssd2::SMEM));
            cuda_check(cudaFuncSetAttribute(mamba_ssd_wg::ssd_wg<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, mamba_ssd_wg::SMEM));
            attr = true;
        }
        LC_TRY(ssd_local_launch(a, grid, st));
        mamba_scan::state_pass<<<pgrid, 256, 0, st>>>(a.st, a.decay, h0, a.hT, a.H, a.nch, PN, 0);
        cuda_check_launch("state_pass");
        const int v = fwd_version();
        if (v == 1) {
            mamba_ssd::ssd_fwd<false><<<grid, mamba_ssd::THREADS, mamba_ssd::SMEM, st>>>(a);
            cuda_check_launch("ssd_fwd");
        } else if (v == 4 && ssd_wg2_launch<false>(a, st)) {
            cuda_check_launch("ssd_wg2");
        } else if (v >= 3) {
            mamba_ssd_wg::ssd_wg<false><<<grid, mamba_ssd_wg::NT, mamba_ssd_wg::SMEM, st>>>(a);
            cuda_check_launch("ssd_wg");
        } else {
            mamba_ssd2::ssd_out<<<grid, mamba_ssd2::THREADS, mamba_ssd2::SMEM, st>>>(a);
            cuda_check_launch("ssd_out");
        }
        return LC_OK;
    }
    mamba_scan::chunk_fwd<P, N, true><<<grid, P * 4, 0, st>>>(a);
    cuda_check_launch("chunk_fwd<local>");
    mamba_scan::state_pass<<<pgrid, 256, 0, st>>>(a.st, a.decay, h0, a.hT, a.H, a.nch, PN, 0);
    cuda_check_launch("state_pass");
    mamba_scan::chunk_fwd<P, N, false><<<grid, P * 4, 0, st>>>(a);
    cuda_check_launch("chunk_fwd");
    return LC_OK;
}

/* P = 64 on tensor cores: local states (the forward's kernel), incoming states, local dh,
 * outgoing dh, then the persistent per-chunk gradient kernel (mamba_ssd_bwd_wg.cuh on sm_90a, else
 * mamba_ssd_bwd.cuh). */
static lc_status scan_backward_tc(mamba_scan::args &a, const float *h0, cudaStream_t st) {
    namespace sb = mamba_ssd_bwd;
    dim3 grid((unsigned)a.H, (unsigned)a.nch, (unsigned)a.B);
    const int64_t PN = 64 * 128;
    dim3 pgrid((unsigned)((PN / 4 + 255) / 256), (unsigned)a.H, (unsigned)a.B); /* state_pass: 4 elements a thread */
    static bool attr = false;
    if (!attr) {
        cuda_check(cudaFuncSetAttribute(sb::ssd_dh_local, cudaFuncAttributeMaxDynamicSharedMemorySize, sb::SMEM_DHL2));
        cuda_check(cudaFuncSetAttribute(sb::ssd_bwd, cudaFuncAttributeMaxDynamicSharedMemorySize, sb::SMEM_BWD));
        cuda_check(cudaFuncSetAttribute(mamba_ssd_wg::ssd_wg_dh, cudaFuncAttributeMaxDynamicSharedMemorySize, mamba_ssd_wg::SMEM_DH));
        cuda_check(cudaFuncSetAttribute(mamba_ssd_bwd_wg::ssd_bwd_wg, cudaFuncAttributeMaxDynamicSharedMemorySize, mamba_ssd_bwd_wg::SMEM));
        cuda_check(cudaFuncSetAttribute(mamba_ssd_bwd_wg2::ssd_bwd_wg2, cudaFuncAttributeMaxDynamicSharedMemorySize, mamba_ssd_bwd_wg2::SMEM));
        attr = true;
    }
    LC_TRY(ssd_local_launch(a, grid, st));
    mamba_scan::state_pass<<<pgrid, 256, 0, st>>>(a.st, a.decay, h0, nullptr, a.H, a.nch, PN, 0);
    cuda_check_launch("state_pass");
    if (dhl_wg()) {
        mamba_ssd_wg::ssd_wg_dh<<<grid, mamba_ssd_wg::NT, mamba_ssd_wg::SMEM_DH, st>>>(a);
        cuda_check_launch("ssd_wg_dh");
    } else {
        sb::ssd_dh_local<<<grid, mamba_ssd::THREADS, sb::SMEM_DHL2, st>>>(a);
        cuda_check_launch("ssd_dh_local");
    }
    mamba_scan::state_pass<<<pgrid, 256, 0, st>>>(a.dst, a.decay, a.dhT, a.dh0, a.H, a.nch, PN, 1);
    cuda_check_launch("state_pass<reverse>");
    const int64_t nwork = a.B * a.nch * a.H, gb = bwd_grid();
    const unsigned nb = (unsigned)(nwork < gb ? nwork : gb);
    const int bv = bwg_version(a);
    if (bv == 2) { /* head pairs on one block per SM (the same scratch: two slices a block) */
        const int64_t nw2 = nwork / 2, gb2 = gb / 2;
        const unsigned nb2 = (unsigned)(nw2 < gb2 ? nw2 : gb2);
        mamba_ssd_bwd_wg2::ssd_bwd_wg2<<<nb2, mamba_ssd_bwd_wg2::NT2, mamba_ssd_bwd_wg2::SMEM, st>>>(a, a.scratch, nw2);
        cuda_check_launch("ssd_bwd_wg2");
    } else if (bv == 1) {
        mamba_ssd_bwd_wg::ssd_bwd_wg<<<nb, mamba_ssd_wg::NT, mamba_ssd_bwd_wg::SMEM, st>>>(a, a.scratch, nwork);
        cuda_check_launch("ssd_bwd_wg");
    } else {
        sb::ssd_bwd<<<nb, mamba_ssd::THREADS, sb::SMEM_BWD, st>>>(a, a.scratch, nwork);
        cuda_check_launch("ssd_bwd");
    }
    return LC_OK;
}

template <int P, int N>
static lc_status scan_backward_t(mamba_scan::args &a, const float *h0, cudaStream_t st) {
    dim3 grid((unsigned)a.H, (unsigned)a.nch, (unsigned)a.B);
    const int64_t PN = (int64_t)P * N;
    dim3 pgrid((unsigned)((PN / 4 + 255) / 256), (unsigned)a.H, (unsigned)a.B); /* state_pass: 4 elements a thread */
    mamba_bwd::h_local<P, N><<<grid, P * 4, 0, st>>>(a);
    cuda_check_launch("h_local");
    mamba_scan::state_pass<<<pgrid, 256, 0, st>>>(a.st, a.decay, h0, nullptr, a.H, a.nch, PN, 0);
    cuda_check_launch("state_pass");
    mamba_bwd::dh_local<P, N><<<grid, P * 4, 0, st>>>(a);
    cuda_check_launch("dh_local");
    mamba_scan::state_pass<<<pgrid, 256, 0, st>>>(a.dst, a.decay, a.dhT, a.dh0, a.H, a.nch, PN, 1);
    cuda_check_launch("state_pass<reverse>");
    constexpr int dyn = mamba_bwd::dyn_smem<P, N>();
    static bool attr = false;
    if (!attr) {
        cuda_check(cudaFuncSetAttribute(mamba_bwd::chunk_bwd<P, N>, cudaFuncAttributeMaxDynamicSharedMemorySize, dyn));
        attr = true;
    }
    mamba_bwd::chunk_bwd<P, N><<<grid, P * 4, dyn, st>>>(a);
    cuda_check_launch("chunk_bwd");
    return LC_OK;
}

/* Workspace: the caller's, or a stream-ordered allocation freed after the launches. */
static lc_status scan_ws(const struct mamba_scan_shape *s, int backward, void *ws, cudaStream_t st, mamba_scan::args &a,
                         void **owned) {
    size_t st_bytes, decay_bytes;
    const size_t total = scan_ws_parts(s, backward, &st_bytes, &decay_bytes);
    *owned = NULL;
    if (!ws) {
        cudaError_t e = cudaMallocAsync(&ws, total, st);
        if (e != cudaSuccess)
            return lc_errorf(LC_ENOMEM, "mamba scan: workspace of %zu bytes: %s", total, cudaGetErrorString(e));
        *owned = ws;
    }
    char *p = (char *)ws;
    a.decay = (float *)p;
    a.st = (float *)(p + decay_bytes);
    a.dst = backward ? (float *)(p + decay_bytes + st_bytes) : nullptr;
    a.scratch = backward && bwd_tc(s) ? (__nv_bfloat16 *)(p + decay_bytes + 2 * st_bytes) : nullptr;
    a.T = scan_chunk(s, backward);
    a.nch = (s->L + a.T - 1) / a.T;
    if (a.nch > 65535) {
        if (*owned) cudaFreeAsync(*owned, st);
        return lc_errorf(LC_EUNSUPPORTED, "mamba scan: L = %lld needs %lld chunks (> 65535): run it in segments", (long long)s->L,
                         (long long)a.nch);
    }
    a.B = s->B, a.L = s->L, a.H = s->H, a.G = s->G;
    return LC_OK;
}

lc_status mamba_scan_forward_cuda(const struct mamba_scan_shape *s, const bf16_t *x, const float *dt,
                                  const float *dt_bias, const float *A, const bf16_t *Bm, const bf16_t *Cm,
                                  const float *D, const bf16_t *z, const float *h0, bf16_t *y, float *hT,
                                  void *ws, void *stream) {
    lc_nvtx_range nvtx_range("mamba.scan.fwd");
    LC_TRY(scan_args(s, "mamba_scan_forward_cuda"));
    LC_REQUIRE(x && dt && A && Bm && Cm && y, "mamba_scan_forward_cuda: x, dt, A, Bm, Cm and y must not be NULL");
    LC_REQUIRE(((uintptr_t)h0 | (uintptr_t)hT) % 16 == 0, "mamba_scan_forward_cuda: h0 and hT must be 16-byte aligned");
    cudaStream_t st = lc_stream(stream);
    mamba_scan::args a = {};
    a.x = (const __nv_bfloat16 *)x, a.Bm = (const __nv_bfloat16 *)Bm, a.Cm = (const __nv_bfloat16 *)Cm;
    a.z = (const __nv_bfloat16 *)z, a.dt = dt, a.dt_bias = dt_bias, a.A = A, a.D = D, a.h0 = h0;
    a.y = (__nv_bfloat16 *)y, a.hT = hT;
    void *owned = NULL;
    LC_TRY(scan_ws(s, 0, ws, st, a, &owned));
    lc_status r = s->P == 64 ? scan_forward_t<64, 128>(a, h0, st) : scan_forward_t<32, 64>(a, h0, st);
    if (owned) cudaFreeAsync(owned, st);
    return r;
}

lc_status mamba_scan_backward_cuda(const struct mamba_scan_shape *s, const bf16_t *x, const float *dt,
                                   const float *dt_bias, const float *A, const bf16_t *Bm, const bf16_t *Cm,
                                   const float *D, const bf16_t *z, const float *h0, const bf16_t *dy,
                                   const float *dhT, bf16_t *dx, float *ddt, float *dBm, float *dCm,
                                   bf16_t *dz, float *dh0, float *dA, float *dD, float *ddt_bias,
                                   void *ws, void *stream) {
    lc_nvtx_range nvtx_range("mamba.scan.bwd");
    LC_TRY(scan_args(s, "mamba_scan_backward_cuda"));
    LC_REQUIRE(x && dt && A && Bm && Cm && dy && dx && ddt && dBm && dCm,
               "mamba_scan_backward_cuda: x, dt, A, Bm, Cm, dy, dx, ddt, dBm and dCm must not be NULL");
    LC_REQUIRE(!z || dz, "mamba_scan_backward_cuda: dz must not be NULL when z is given");
    LC_REQUIRE(((uintptr_t)h0 | (uintptr_t)dhT | (uintptr_t)dh0) % 16 == 0,
               "mamba_scan_backward_cuda: h0, dhT and dh0 must be 16-byte aligned");
    cudaStream_t st = lc_stream(stream);
    const size_t nbc = sizeof(float) * (size_t)(s->B * s->L * s->G * s->N);
    cuda_check(cudaMemsetAsync(dBm, 0, nbc, st));
    cuda_check(cudaMemsetAsync(dCm, 0, nbc, st));
    if (dA) cuda_check(cudaMemsetAsync(dA, 0, sizeof(float) * (size_t)s->H, st));
    if (dD) cuda_check(cudaMemsetAsync(dD, 0, sizeof(float) * (size_t)s->H, st));
    if (ddt_bias) cuda_check(cudaMemsetAsync(ddt_bias, 0, sizeof(float) * (size_t)s->H, st));
    mamba_scan::args a = {};
    a.x = (const __nv_bfloat16 *)x, a.Bm = (const __nv_bfloat16 *)Bm, a.Cm = (const __nv_bfloat16 *)Cm;
    a.z = (const __nv_bfloat16 *)z, a.dy = (const __nv_bfloat16 *)dy, a.dt = dt, a.dt_bias = dt_bias, a.A = A;
    a.D = D, a.h0 = h0, a.dhT = dhT, a.dx = (__nv_bfloat16 *)dx, a.dz = (__nv_bfloat16 *)dz, a.ddt = ddt;
    a.dBm = dBm, a.dCm = dCm, a.dh0 = dh0, a.dA = dA, a.dD = dD, a.ddt_bias = ddt_bias;
    void *owned = NULL;
    LC_TRY(scan_ws(s, 1, ws, st, a, &owned));
    lc_status r = bwd_tc(s) ? scan_backward_tc(a, h0, st)
                  : s->P == 64 ? scan_backward_t<64, 128>(a, h0, st) : scan_backward_t<32, 64>(a, h0, st);
    if (owned) cudaFreeAsync(owned, st);
    return r;
}

lc_status mamba_scan_decode_cuda(const struct mamba_scan_shape *s, const bf16_t *x, const float *dt,
                                 const float *dt_bias, const float *A, const bf16_t *Bm, const bf16_t *Cm,
                                 const float *D, const bf16_t *z, float *state, bf16_t *y, void *stream) {
    lc_nvtx_range nvtx_range("mamba.scan.decode");
    struct mamba_scan_shape one = *s;
    one.L = 1;
    LC_TRY(scan_args(&one, "mamba_scan_decode_cuda"));
    LC_REQUIRE(x && dt && A && Bm && Cm && state && y,
               "mamba_scan_decode_cuda: x, dt, A, Bm, Cm, state and y must not be NULL");
    dim3 grid((unsigned)s->H, (unsigned)s->B);
    if (s->P == 64)
        mamba_scan::scan_decode<64, 128><<<grid, 256, 0, lc_stream(stream)>>>(
            (const __nv_bfloat16 *)x, dt, dt_bias, A, (const __nv_bfloat16 *)Bm, (const __nv_bfloat16 *)Cm, D,
            (const __nv_bfloat16 *)z, state, (__nv_bfloat16 *)y, s->H, s->G);
    else
        mamba_scan::scan_decode<32, 64><<<grid, 128, 0, lc_stream(stream)>>>(
            (const __nv_bfloat16 *)x, dt, dt_bias, A, (const __nv_bfloat16 *)Bm, (const __nv_bfloat16 *)Cm, D,
            (const __nv_bfloat16 *)z, state, (__nv_bfloat16 *)y, s->H, s->G);
    cuda_check_launch("scan_decode");
    return LC_OK;
}

/* ---------------- benchmark fill ---------------- */

__global__ void mamba_fill_kernel(void *x, int64_t n, int is_bf16, uint64_t seed, float lo, float hi) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        const float v = lo + (hi - lo) * (float)(z >> 40) * (1.0f / 16777216.0f);
        if (is_bf16) ((__nv_bfloat16 *)x)[i] = __float2bfloat16(v);
        else ((float *)x)[i] = v;
    }
}

lc_status mamba_fill_random_cuda(void *x, size_t n, int is_bf16, uint64_t seed, float lo, float hi, void *stream) {
    LC_REQUIRE(x || n == 0, "mamba_fill_random_cuda: x is NULL");
    if (n == 0) return LC_OK;
    mamba_fill_kernel<<<132 * 16, 256, 0, lc_stream(stream)>>>(x, (int64_t)n, is_bf16, seed, lo, hi);
    cuda_check_launch("mamba_fill_kernel");
    return LC_OK;
}
