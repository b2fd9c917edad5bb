/* attention_bwd_ws.cuh — the warp-specialised Hopper backward for dh 64 (the FlashAttention-3
 * organisation of the backward), built for the sliding-window shapes and used for dense causal
 * and non-causal attention too. Included by attention.cu inside its anonymous namespace, after
 * attention_fwd_ws.cuh and bwd_params (the wgmma / mbarrier / TMA / bulk-group primitives are
 * sm90.cuh's); the kernel body is compiled for sm_90a only and the host launches it only where
 * the sm_90a build is loaded.
 *
 * Work item = (batch, KV head, key block of BN = 64*NCWG keys); block = 1 producer warpgroup +
 * NCWG consumer warpgroups, one block per SM, persistent (block p serves items p, p + grid, ...,
 * heads fastest, key blocks ascending = the heaviest causal blocks first).
 *   producer   one thread issues bulk tensor copies (TMA): the block's K and V (two buffers, so
 *              the next item's keys load while this one finishes) and, per query tile of 64 rows
 *              that sees the block's keys (for each of the G query heads of the KV head), Q, dO
 *              (128-byte swizzle = the wgmma layout) and the tile's (lse, D = rowsum(dO*O)) pairs
 *              (64 x 2 floats from the packed buffer the preprocessing kernel writes) into a ring
 *              of STAGES slots; the slot's full mbarrier completes when all three copies have
 *              landed. A slot is reused once every consumer warp has arrived on its empty barrier.
 *   consumers  warpgroup w owns keys kw0 = k0 + 64w .. +63 and keeps dK, dV (64 x 64 each) in
 *              registers for the whole item. Per query tile (q0 .. q0+63):
 *                S^T = K_w Q^T, dP^T = V_w dO^T        (wgmma, both operands in shared memory)
 *                P^T = exp2(S^T*scale*log2e - lse*log2e), dS^T = P^T (dP^T - D)   (masked only
 *                      on tiles that cut the diagonal, the window edge or the sequence end)
 *                dS^T -> shared memory (swizzled), then
 *                dQ   = dS K       issued first   (SPLIT: reduced over the block's BN keys, the
 *                                                  warpgroups split dQ's 64 columns; else over
 *                                                  the warpgroup's own 64 keys, all 64 columns)
 *                dV  += P^T dO, dK += dS^T Q       issued second (P^T, dS^T from registers)
 *              wait for dQ only; dQ (fp32) -> shared memory (128-byte swizzle) -> one bulk tensor
 *              reduce-add (cp.reduce.async.bulk.tensor .add.f32) into the fp32 dQ workspace,
 *              instead of per-thread atomics. OVL: dV, dK keep running into the next tile's
 *              S^T / dP^T (their slot is released after that tile's wait). KR: K_w and V_w are
 *              held in registers as A fragments, so S^T and dP^T read only Q and dO from shared
 *              memory (an all-shared-memory m64n64k16 reads 4 KB per 32 clocks, the whole
 *              128 B/clock the SM's shared memory delivers).
 *              Without SPLIT the warpgroups are independent and pass over query tiles their keys
 *              do not see (W = 512, BN = 192: 12 tiles streamed per block, 9-10 computed per
 *              warpgroup); with SPLIT every warpgroup computes every tile (a consumer-wide named
 *              barrier per tile joins the dS^T halves, double-buffered).
 * Layouts: as in attention.h; tensor maps view q, dout as [B][L][HQ][64], k, v as [B][L][H][64]
 * (rows past L arrive as zeros; a box may not be larger than its tensor, so L >= BN), the dQ
 * workspace as fp32 [B][L][HQ][64] in boxes of 32 columns x 64 rows (rows past L are not
 * written), and the packed (lse, D) buffer as fp32 [B*HQ][Lp][2] (Lp = L rounded up to 4, so a
 * row's stride is a multiple of 16 bytes as a tensor map needs) through a 2-D map of 2L x B*HQ
 * elements: a tile's box of 128 floats starts at element 2*q0 of its row, and everything past
 * 2L (rows past L) arrives as zeros, so padding is never read.
 * History: lse and D first came by 1-D bulk copies from [B][HQ][L] rows, which stopped with an
 * illegal instruction on the H100 where (b*HQ + a)*L was not a multiple of 4 (L = 1, 2049: a
 * bulk copy's global address must be 16-byte aligned); then by 4-byte cp.async from the
 * producer's lanes with cp.async.mbarrier.arrive.noinc on the full barrier, which worked but
 * compute-sanitizer racecheck does not model (12 false hazards); now by one tensor copy per
 * tile whose rows start 32-byte aligned for every L. */

/* One work item: the key block k0 .. k0+BN-1 of (batch b, KV head h) and the query tiles
 * qt0 .. qt0+nqt-1 (64 rows each) that see any of its keys. Items run heads fastest. */
struct bws_item {
    int64_t h, b, k0, qt0;
    int nqt;
};
__device__ __forceinline__ bws_item bws_item_of(const bwd_params &p, int64_t idx, int BN, int BM = 64) {
    const int64_t L = p.L, W = p.W;
    bws_item t;
    t.h = idx % p.H;
    idx /= p.H;
    t.k0 = (idx % p.nkb) * BN;
    t.b = idx / p.nkb;
    const int64_t qlo = p.causal ? t.k0 : 0;
    const int64_t qhi = (p.causal && W > 0) ? min(L - 1, t.k0 + BN - 1 + W) : L - 1;
    t.qt0 = qlo / BM;
    t.nqt = (int)(qhi / BM - t.qt0 + 1);
    return t;
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* After the wait for a dV, dK MMA batch: its accumulators (dK, dV) and A fragments (pa = P^T,
 * sa = dS^T) are settled, so ptxas may not move their later uses above the wait. */
template <int NK>
__device__ __forceinline__ void bws_fence_dkdv(float (&dK)[32], float (&dV)[32], uint32_t (&pa)[NK][4],
                                               uint32_t (&sa)[NK][4]) {
#pragma unroll
    for (int i = 0; i < 32; i++) {
        sm90::reg_fence(dK[i]);
        sm90::reg_fence(dV[i]);
    }
#pragma unroll
    for (int kk = 0; kk < NK; kk++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            sm90::reg_fence(pa[kk][c]);
            sm90::reg_fence(sa[kk][c]);
        }
}

/* One consumer thread's part of a 64-key x NE/2-query tile (NE = 32: 64 queries; NE = 64: the
 * 128-query tiles of variant 18): P^T = exp2(S^T scale_log2 - lse) and
 * dS^T = P^T (dP^T - D), in place in St and dPt (the wgmma accumulator layout: query col
 * c = 8i + 2tg + (e&1), key row r = rrow + 8*(e>=2)), zero outside the mask where need_mask
 * (q - k = rel + c - r must lie in 0..Wm for causal; c < limq, r < limk), then packed to bf16
 * wgmma A fragments: pa (P^T) and sa (dS^T). ld[c] = (lse log2(e), D) of query column c. */
template <int NE>
__device__ __forceinline__ void bws_tile_softmax(float (&St)[NE], float (&dPt)[NE], const float2 *ld, float scale_log2,
                                                 int tg, int rrow, bool need_mask, int rel, int limq, int limk,
                                                 int causal, int Wm, uint32_t (&pa)[NE / 8][4], uint32_t (&sa)[NE / 8][4]) {
#pragma unroll
    for (int i = 0; i < NE / 4; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int c = 8 * i + 2 * tg + (e & 1);
            const float2 l = ld[c];
            float pv = ex2(fmaf(St[4 * i + e], scale_log2, -l.x)); /* l.x = lse * log2(e) */
            if (need_mask) {
                const int r = rrow + (e >= 2 ? 8 : 0), d = rel + c - r;
                if (c >= limq || r >= limk || (causal && (d < 0 || d > Wm))) pv = 0.f;
            }
            St[4 * i + e] = pv;
            dPt[4 * i + e] = pv * (dPt[4 * i + e] - l.y);
        }
#pragma unroll
    for (int kk = 0; kk < NE / 8; kk++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            pa[kk][c] = pack_bf16(St[8 * kk + 2 * c], St[8 * kk + 2 * c + 1]);
            sa[kk][c] = pack_bf16(dPt[8 * kk + 2 * c], dPt[8 * kk + 2 * c + 1]);
        }
}

/* bws_tile_softmax in two steps, so the MMAs run under them (variant 19): bws_tile_p computes P^T
 * (masked) and packs pa while dP^T is still in flight; bws_tile_ds then computes dS^T = P^T (dP^T
 * - D) from the packed (bf16) P^T, while dV += P^T dO runs and holds St's registers no longer
 * (P^T in fp32 would keep 64 more registers live). pa[kk][c] holds the elements 8kk + 2c (low
 * half) and 8kk + 2c + 1 (high), query columns 8(2kk + c/2) + 2tg (+1). */
template <int NE>
__device__ __forceinline__ void bws_tile_p(float (&St)[NE], const float2 *ld, float scale_log2, int tg, int rrow,
                                           bool need_mask, int rel, int limq, int limk, int causal, int Wm,
                                           uint32_t (&pa)[NE / 8][4]) {
#pragma unroll
    for (int i = 0; i < NE / 4; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int c = 8 * i + 2 * tg + (e & 1);
            float pv = ex2(fmaf(St[4 * i + e], scale_log2, -ld[c].x));
            if (need_mask) {
                const int r = rrow + (e >= 2 ? 8 : 0), d = rel + c - r;
                if (c >= limq || r >= limk || (causal && (d < 0 || d > Wm))) pv = 0.f;
            }
            St[4 * i + e] = pv;
        }
#pragma unroll
    for (int kk = 0; kk < NE / 8; kk++)
#pragma unroll
        for (int c = 0; c < 4; c++) pa[kk][c] = pack_bf16(St[8 * kk + 2 * c], St[8 * kk + 2 * c + 1]);
}
template <int NE>
__device__ __forceinline__ void bws_tile_ds(const float (&dPt)[NE], const uint32_t (&pa)[NE / 8][4], const float2 *ld, int tg,
                                            uint32_t (&sa)[NE / 8][4]) {
#pragma unroll
    for (int kk = 0; kk < NE / 8; kk++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const int col = 8 * (2 * kk + c / 2) + 2 * tg;
            const float4 l = *reinterpret_cast<const float4 *>(ld + col); /* (lse, D) of col, col + 1 */
            const float p0 = __uint_as_float(pa[kk][c] << 16), p1 = __uint_as_float(pa[kk][c] & 0xffff0000u);
            sa[kk][c] = pack_bf16(p0 * (dPt[8 * kk + 2 * c] - l.y), p1 * (dPt[8 * kk + 2 * c + 1] - l.w));
        }
}
#endif

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* The producer (one thread): per item, K and V into buffer kc & 1 (after the consumers freed it),
 * then per query head of the KV head and per query tile, Q, dO and the (lse, D) pairs into ring
 * slot it % STAGES, all completing on that slot's full barrier. */
/* A warpgroup's fp32 dQ accumulator (NE = 16 or 32 per thread: 32 or 64 columns; this thread's
 * rows rrow, rrow + 8) into the staging buffer the bulk tensor reduce-add reads: panels of 32
 * columns x 64 rows x 128 B, 8192 B apart, 128-byte swizzle. */
template <int NE>
__device__ __forceinline__ void bws_stage_dq(unsigned char *buf, const float (&dQ)[NE], int rrow, int tg) {
#pragma unroll
    for (int i = 0; i < NE / 4; i++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int r = rrow + 8 * hr, pn = i / 4, ch = 2 * (i % 4) + (tg >> 1);
            *reinterpret_cast<float2 *>(buf + pn * 8192 + r * 128 + ((ch ^ (r & 7)) << 4) + 8 * (tg & 1)) =
                make_float2(dQ[4 * i + 2 * hr], dQ[4 * i + 2 * hr + 1]);
        }
}

template <int BN, int STAGES>
__device__ __forceinline__ void bws_produce(const bwd_params &p, const CUtensorMap *tq, const CUtensorMap *tdo,
                                            const CUtensorMap *tk, const CUtensorMap *tv, const CUtensorMap *tld,
                                            unsigned char *sK, unsigned char *sV, unsigned char *sRing, size_t kv_bytes,
                                            size_t slot_bytes, uint32_t b_fullKV, uint32_t b_emptyKV, uint32_t b_full,
                                            uint32_t b_empty, int64_t nitems) {
    const int64_t G = p.HQ / p.H;
    uint32_t it = 0, kc = 0; /* query tiles and items issued so far */
    for (int64_t idx = blockIdx.x; idx < nitems; idx += gridDim.x, kc++) {
        const bws_item t = bws_item_of(p, idx, BN);
        const uint32_t kvb = kc & 1;
        sm90::mbar_wait(b_emptyKV + 8 * kvb, ((kc >> 1) & 1) ^ 1);
        sm90::mbar_expect_tx(b_fullKV + 8 * kvb, 2 * BN * 128);
        sm90::tma_load_4d(smem_u32(sK + kvb * (kv_bytes / 2)), tk, 0, (int)t.h, (int)t.k0, (int)t.b, b_fullKV + 8 * kvb);
        sm90::tma_load_4d(smem_u32(sV + kvb * (kv_bytes / 2)), tv, 0, (int)t.h, (int)t.k0, (int)t.b, b_fullKV + 8 * kvb);
        for (int64_t a = t.h * G; a < (t.h + 1) * G; a++)
            for (int j = 0; j < t.nqt; j++, it++) {
                const uint32_t s = it % STAGES, bar = b_full + 8 * s;
                const int64_t q0 = (t.qt0 + j) * 64;
                unsigned char *slot = sRing + s * slot_bytes;
                sm90::mbar_wait(b_empty + 8 * s, ((it / STAGES) & 1) ^ 1);
                sm90::mbar_expect_tx(bar, 2 * 64 * 128 + 64 * 8);
                sm90::tma_load_4d(smem_u32(slot), tq, 0, (int)a, (int)q0, (int)t.b, bar);
                sm90::tma_load_4d(smem_u32(slot + 8192), tdo, 0, (int)a, (int)q0, (int)t.b, bar);
                sm90::tma_load_2d(smem_u32(slot + 16384), tld, (int)(2 * q0), (int)(t.b * p.HQ + a), bar);
            }
    }
}
#endif

/* Shared-memory layout of one block, in bytes (each piece a multiple of 1024, so every swizzled
 * tile stays 1024-aligned; 1024 of slack to align the start). */
template <int NCWG, int SPLIT, int STAGES>
struct bws_smem {
    static constexpr int BN = 64 * NCWG;
    static constexpr int DQB = (SPLIT || NCWG == 2) ? 2 : 1;        /* dQ staging buffers per warpgroup */
    static constexpr size_t KV = 2 * (size_t)BN * 128;              /* K and V of one item */
    static constexpr size_t SLOT = 2 * 64 * 128 + 1024;             /* Q, dO, then 64 (lse, D) pairs */
    static constexpr size_t DS = SPLIT ? 2 * (size_t)BN * 128 : (size_t)NCWG * 64 * 128; /* dS^T */
    static constexpr size_t DQ = (size_t)NCWG * DQB * (SPLIT ? 32 : 64) * 64 * 4;        /* dQ fp32 */
    static constexpr size_t BARS = 8 * (4 + 2 * STAGES);
    static constexpr size_t total = 1024 + 2 * KV + STAGES * SLOT + DS + DQ + BARS;
};

template <int NCWG, int SPLIT, int STAGES, int OVL, int KR>
__global__ void __launch_bounds__((NCWG + 1) * 128, 1)
    attn_bwd_ws_kernel(const bwd_params p, const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tdo,
                       const __grid_constant__ CUtensorMap tk, const __grid_constant__ CUtensorMap tv,
                       const __grid_constant__ CUtensorMap tdq, const __grid_constant__ CUtensorMap tld,
                       const int64_t nitems) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using SM = bws_smem<NCWG, SPLIT, STAGES>;
    constexpr int BN = SM::BN, DQB = SM::DQB, DQC = SPLIT ? 32 : 64; /* dQ columns per warpgroup */
    /* registers: producer 40, consumers what it frees (2 WG: 128*40 + 256*232; 3: 128*32 + 384*160) */
    constexpr int PROD_REGS = NCWG == 2 ? 56 : 32, CONS_REGS = NCWG == 2 ? 224 : 160;
    static_assert(!SPLIT || NCWG == 2, "split dQ columns need two consumer warpgroups");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *sK = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023); /* [2][BN x 128 B] */
    unsigned char *sV = sK + SM::KV;                                               /* [2][BN x 128 B] */
    unsigned char *sRing = sK + 2 * SM::KV; /* [STAGES] { Q 8 KB, dO 8 KB, 64 x (lse, D) 512 B } */
    unsigned char *sdS = sRing + STAGES * SM::SLOT;
    unsigned char *sdQ = sdS + SM::DS; /* [NCWG][DQB][64 rows x DQC floats], 128-byte swizzle per 32 columns */
    const uint32_t bar0 = smem_u32(sdQ + SM::DQ);
    const uint32_t b_fullKV = bar0, b_emptyKV = bar0 + 16, b_full = bar0 + 32, b_empty = b_full + 8 * STAGES;

    const int tid = threadIdx.x, wg = tid / 128, warp = (tid % 128) / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int64_t L = p.L, HQ = p.HQ, H = p.H, G = HQ / H, W = p.W;
    if (tid == 0) {
        for (int i = 0; i < 2; i++) {
            sm90::mbar_init(b_fullKV + 8 * i, 1);
            sm90::mbar_init(b_emptyKV + 8 * i, 4 * NCWG); /* lane 0 of every consumer warp */
        }
        for (int s = 0; s < STAGES; s++) {
            sm90::mbar_init(b_full + 8 * s, 1); /* the producer's expect_tx; the copies complete the bytes */
            sm90::mbar_init(b_empty + 8 * s, 4 * NCWG);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    using item = bws_item;
    auto item_of = [&](int64_t idx) { return bws_item_of(p, idx, BN); };

    if (wg == 0) { /* ------------------------------------------------------------ producer */
        sm90::setmaxnreg_dec<PROD_REGS>();
        if (warp == 0 && lane == 0)
            bws_produce<BN, STAGES>(p, &tq, &tdo, &tk, &tv, &tld, sK, sV, sRing, SM::KV, SM::SLOT, b_fullKV, b_emptyKV, b_full,
                                    b_empty, nitems);
        return;
    }

    /* ----------------------------------------------------------------------------- consumers */
    sm90::setmaxnreg_inc<CONS_REGS>();
    const int cw = wg - 1;
    const int Wm = (p.causal && W > 0) ? (int)min(W, (int64_t)1 << 30) : 1 << 30; /* dense: no lower edge */
    const int rrow = warp * 16 + g; /* this thread's accumulator rows (keys): rrow, rrow + 8 */
    unsigned char *myDQ = sdQ + (size_t)cw * DQB * DQC * 64 * 4;
    uint32_t it = 0, kc = 0, dqc = 0;

    auto wg_sync = [&]() { asm volatile("bar.sync %0, 128;\n" ::"r"(2 + cw) : "memory"); };

    for (int64_t idx = blockIdx.x; idx < nitems; idx += gridDim.x, kc++) {
        const item t = item_of(idx);
        const uint32_t kvb = kc & 1;
        const int64_t kw0 = t.k0 + 64 * cw;
        /* the block's tiles jlo .. jhi this warpgroup's keys see (all of them with SPLIT) */
        int jlo = 0, jhi = t.nqt - 1;
        if (!SPLIT) {
            if (kw0 >= L) jlo = t.nqt, jhi = -1;
            else {
                const int64_t qs = p.causal ? kw0 : 0;
                const int64_t qe = (p.causal && W > 0) ? min(L - 1, kw0 + 63 + W) : L - 1;
                jlo = (int)(qs / 64 - t.qt0);
                jhi = (int)(qe / 64 - t.qt0);
            }
        }
        const uint32_t kBlk = smem_u32(sK + kvb * (SM::KV / 2)), kA = kBlk + cw * 64 * 128;
        const uint32_t vA = smem_u32(sV + kvb * (SM::KV / 2)) + cw * 64 * 128;
        const int limk = (int)min(L - kw0, (int64_t)64); /* key rows < limk exist (may be <= 0) */
        sm90::mbar_wait(b_fullKV + 8 * kvb, (kc >> 1) & 1);
        /* KR: this warpgroup's K and V rows as wgmma A fragments (fixed for the whole item), so
         * S^T and dP^T read only Q and dO from shared memory (half the bytes at N = 64) */
        uint32_t kf[4][4], vf[4][4];
        if constexpr (KR) {
            const unsigned char *kw = sK + kvb * (SM::KV / 2) + cw * 64 * 128, *vw = sV + kvb * (SM::KV / 2) + cw * 64 * 128;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                ldsm_x4(kf[kk], kw + sm90::sw128(warp * 16 + lane % 16, 2 * kk + lane / 16));
                ldsm_x4(vf[kk], vw + sm90::sw128(warp * 16 + lane % 16, 2 * kk + lane / 16));
            }
        }

        float dK[32], dV[32];
#pragma unroll
        for (int i = 0; i < 32; i++) {
            dK[i] = dV[i] = 0.f;
            sm90::reg_fence(dK[i]);
            sm90::reg_fence(dV[i]);
        }
        uint32_t pa[4][4], sa[4][4];
        int pend = -1; /* OVL: the slot whose dV / dK MMAs are still running */
        auto release = [&](uint32_t s) {
            if (lane == 0) sm90::mbar_arrive(b_empty + 8 * s);
        };
        /* the pending dV, dK MMAs are done: keep their registers, free their slot (straight-line
         * code: a wgmma wait under a data-dependent branch makes ptxas serialise every wgmma) */
        auto flush = [&]() {
            sm90::wait<0>();
            bws_fence_dkdv(dK, dV, pa, sa);
            if (pend >= 0) release((uint32_t)pend);
            pend = -1;
        };
        /* a query tile this warpgroup's keys do not see: wait for the fill (so the arrivals stay
         * in phase) and free the slot */
        auto pass = [&](uint32_t s) {
            sm90::mbar_wait(b_full + 8 * s, (it / STAGES) & 1);
            release(s);
        };

        for (int64_t a = t.h * G; a < (t.h + 1) * G; a++) {
            int j = 0;
            for (; j < jlo; j++, it++) pass(it % STAGES);
            for (; j <= jhi; j++, it++) {
                const uint32_t s = it % STAGES;
                const int64_t q0 = (t.qt0 + j) * 64;
                unsigned char *slot = sRing + s * SM::SLOT;
                const uint32_t qB = smem_u32(slot), oB = qB + 8192;
                const float2 *cLD = reinterpret_cast<const float2 *>(slot + 16384); /* (lse, D) per query */
                sm90::mbar_wait(b_full + 8 * s, (it / STAGES) & 1);

                /* S^T = K_w Q^T and dP^T = V_w dO^T (64 keys x 64 queries each) */
                float St[32], dPt[32];
                sm90::fence();
                if constexpr (KR) {
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) sm90::rs_n64<0>(St, kf[kk], sm90::desc_k(qB + kk * 32), kk > 0);
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) sm90::rs_n64<0>(dPt, vf[kk], sm90::desc_k(oB + kk * 32), kk > 0);
                } else {
#pragma unroll
                    for (int kk = 0; kk < 4; kk++)
                        sm90::ss_n64(St, sm90::desc_k(kA + kk * 32), sm90::desc_k(qB + kk * 32), kk > 0);
#pragma unroll
                    for (int kk = 0; kk < 4; kk++)
                        sm90::ss_n64(dPt, sm90::desc_k(vA + kk * 32), sm90::desc_k(oB + kk * 32), kk > 0);
                }
                sm90::commit();
                sm90::wait<0>(); /* also the previous tile's dV, dK */
#pragma unroll
                for (int i = 0; i < 32; i++) {
                    sm90::reg_fence(St[i]);
                    sm90::reg_fence(dPt[i]);
                }
                if constexpr (KR)
#pragma unroll
                    for (int kk = 0; kk < 4; kk++)
#pragma unroll
                        for (int c = 0; c < 4; c++) {
                            sm90::reg_fence(kf[kk][c]);
                            sm90::reg_fence(vf[kk][c]);
                        }
                if (pend >= 0) {
                    bws_fence_dkdv(dK, dV, pa, sa);
                    release((uint32_t)pend);
                    pend = -1;
                }

                /* P^T and dS^T in place (masks in int32 relative to the tile), packed for the MMAs */
                const int limq = (int)min(L - q0, (int64_t)64);
                const bool need_mask = limq < 64 || limk < 64 ||
                                       (p.causal && (q0 < kw0 + 63 || (W > 0 && q0 + 63 > kw0 + W)));
                bws_tile_softmax(St, dPt, cLD, p.scale_log2, tg, rrow, need_mask, (int)(q0 - kw0), limq, limk, p.causal, Wm,
                                 pa, sa);

                /* dS^T rows (keys) to shared memory, 128-byte swizzle (chunk i = queries 8i .. 8i+7) */
                unsigned char *dsT = SPLIT ? sdS + (it & 1) * (BN * 128) : sdS + cw * 64 * 128;
                {
                    const int srow = (SPLIT ? cw * 64 : 0) + rrow;
#pragma unroll
                    for (int i = 0; i < 8; i++) {
                        const int off = ((i ^ (srow & 7)) << 4) + 4 * tg;
                        *reinterpret_cast<uint32_t *>(dsT + srow * 128 + off) = sa[i / 2][(i % 2) * 2];
                        *reinterpret_cast<uint32_t *>(dsT + (srow + 8) * 128 + off) = sa[i / 2][(i % 2) * 2 + 1];
                    }
                }
                sm90::fence_proxy_async();
                if (SPLIT) asm volatile("bar.sync 1, %0;\n" ::"n"(NCWG * 128) : "memory"); /* both halves of dS^T */
                else wg_sync();

                {
                    /* dQ = dS K first, then dV += P^T dO and dK += dS^T Q (queries are the reduction) */
                    float dQ[DQC / 2];
#pragma unroll
                    for (int i = 0; i < DQC / 2; i++) {
                        dQ[i] = 0.f;
                        sm90::reg_fence(dQ[i]);
                    }
                    const uint32_t dsA = smem_u32(dsT);
                    sm90::fence();
                    if constexpr (SPLIT) {
#pragma unroll
                        for (int kk = 0; kk < BN / 16; kk++)
                            sm90::ss_n32_tt(dQ, sm90::desc_mn(dsA + kk * 16 * 128),
                                            sm90::desc_mn(kBlk + cw * 64 + kk * 16 * 128));
                    } else {
#pragma unroll
                        for (int kk = 0; kk < 4; kk++)
                            sm90::ss_n64_tt(dQ, sm90::desc_mn(dsA + kk * 16 * 128), sm90::desc_mn(kA + kk * 16 * 128));
                    }
                    sm90::commit();
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) sm90::rs_n64<1>(dV, pa[kk], sm90::desc_mn(oB + kk * 16 * 128), 1);
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) sm90::rs_n64<1>(dK, sa[kk], sm90::desc_mn(qB + kk * 16 * 128), 1);
                    sm90::commit();
                    pend = (int)s;
                    sm90::wait<1>(); /* dQ done; dV, dK may still run */
#pragma unroll
                    for (int i = 0; i < DQC / 2; i++) sm90::reg_fence(dQ[i]);

                    /* dQ -> shared memory (fp32, 128-byte swizzle per 32-column panel) -> bulk reduce-add */
                    unsigned char *qbuf = myDQ + (dqc % DQB) * (DQC * 64 * 4);
                    if (tid % 128 == 0) sm90::bulk_wait_read<DQB - 1>(); /* this buffer's previous reduce has read it */
                    wg_sync();
                    bws_stage_dq(qbuf, dQ, rrow, tg);
                    sm90::fence_proxy_async();
                    wg_sync();
                    if (tid % 128 == 0) {
                        const uint32_t src = smem_u32(qbuf);
                        if constexpr (SPLIT) sm90::tma_reduce_add_4d(&tdq, src, 32 * cw, (int)a, (int)q0, (int)t.b);
                        else {
                            sm90::tma_reduce_add_4d(&tdq, src, 0, (int)a, (int)q0, (int)t.b);
                            sm90::tma_reduce_add_4d(&tdq, src + 8192, 32, (int)a, (int)q0, (int)t.b);
                        }
                        sm90::bulk_commit();
                    }
                }
                dqc++;
                if (!OVL) flush();
            }
            flush();
            for (; j < t.nqt; j++, it++) pass(it % STAGES);
        }

        /* dK (times the softmax scale) and dV of this warpgroup's keys */
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int64_t key = kw0 + rrow + 8 * hr;
            if (key < L) {
                bf16 *dkr = p.dk + ((t.b * L + key) * H + t.h) * 64, *dvr = p.dv + ((t.b * L + key) * H + t.h) * 64;
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    *reinterpret_cast<uint32_t *>(dkr + i * 8 + 2 * tg) =
                        pack_bf16(dK[4 * i + 2 * hr] * p.scale, dK[4 * i + 2 * hr + 1] * p.scale);
                    *reinterpret_cast<uint32_t *>(dvr + i * 8 + 2 * tg) = pack_bf16(dV[4 * i + 2 * hr], dV[4 * i + 2 * hr + 1]);
                }
            }
        }
        if (lane == 0) sm90::mbar_arrive(b_emptyKV + 8 * kvb); /* every MMA that read this K, V is done */
    }
    if (tid % 128 == 0) sm90::bulk_wait_all(); /* the last reduces have read (and written) their sources */
#endif
}

/* ---------------------------------------------------------------------------------------------
 * BQ (attn7, LC_ATTN_WGB 18 / 19 = OV 0 / 1; the dh-64 defaults for W > 1024 or dense / W <= 1024):
 * variant 7's organisation (1 producer + 2 consumer warpgroups, 64
 * keys each, BN = 128, one barrier per tile joining the dS^T halves) with 128-query tiles
 * (FlashAttention-3's 128 x 128 tile for dh 64), so each chain of waits (S^T/dP^T MMAs -> wait ->
 * softmax -> dS^T -> barrier -> dQ -> wait -> staging -> dV, dK wait) carries twice the MMA work.
 * Per 128-query tile, warpgroup w:
 *   S^T = K_w Q^T, dP^T = V_w dO^T       m64n128k16 x 4 each, both operands in shared memory
 *                                        (64 keys x 128 queries: 64 + 64 accumulator registers)
 *   P^T, dS^T                            bws_tile_softmax<64>, packed as 8 A fragments each
 *   dS^T -> shared memory                two 64-query panels of 128 key rows x 128 B (swizzled);
 *                                        double-buffered, one consumer-wide barrier per tile
 *   dQ = dS K                            its own 64 query rows (panel w) x all 64 columns over the
 *                                        block's 128 keys: m64n64k16 x 8, both MN-major
 *   dV += P^T dO, dK += dS^T Q           m64n64k16 x 8 each, P^T / dS^T from registers
 *   wait dQ; dQ -> shared memory (2 panels of 32 fp32 columns) -> two bulk tensor reduce-adds;
 *   wait dV, dK; free the slot.
 * OV = 1 (19) reorders the MMAs to run under the CUDA-core steps: S^T and dP^T in two commit
 * groups; P^T (bws_tile_p) while dP^T runs; dV += P^T dO issued at once, under dS^T = P^T (dP^T -
 * D) (bws_tile_ds, from the packed bf16 P^T) and the dS^T store; after the barrier dQ, then dK,
 * which runs under the dQ staging. H100, same run (notes, attn7 call 2), bwd at L = 1M: 19 is 4%
 * faster than 18 at W = 512 and 2% slower at W = 4096 (18 spills 40 B, 19 none).
 * dQ splits by query rows, not columns as in 7: each warpgroup reads one dS panel (16 KB) and K
 * (16 KB) instead of all of dS twice. Shared memory (227 KB, the per-block maximum): K, V of two
 * items 64 KB, 2 slots of Q, dO 64 KB, dS^T 2 x 32 KB, dQ staging 2 x 16 KB (one buffer per
 * warpgroup: its previous reduce has long finished reading), (lse, D) 2 x 1 KB, barriers; the
 * start is taken 1024-aligned in the 960 bytes left (the dynamic shared memory starts 1024-aligned
 * on the H100; the kernel traps if it ever does not fit). Registers: producer 24, consumers 240
 * (128 * 24 + 256 * 240 = 65536). */
struct bwq_smem {
    static constexpr int BN = 128, BM = 128, STAGES = 2;
    static constexpr size_t KV1 = (size_t)BN * 128;      /* one K or V block */
    static constexpr size_t SLOT = 2 * (size_t)BM * 128; /* Q, dO */
    static constexpr size_t DS1 = (size_t)BN * BM * 2;   /* one dS^T buffer: [2 query panels][BN x 128 B] */
    static constexpr size_t DQ1 = 64 * 64 * 4;           /* one warpgroup's dQ: [2 column panels][64 x 128 B] */
    static constexpr size_t LD1 = (size_t)BM * 8;        /* one slot's (lse, D) pairs */
    static constexpr size_t total = 4 * KV1 + STAGES * SLOT + 2 * DS1 + 2 * DQ1 + STAGES * LD1 + 8 * (4 + 2 * STAGES);
    static constexpr size_t alloc = total + 1024 < 232448 ? total + 1024 : 232448;
    static_assert(total <= 232448 - 960, "shared memory per block");
};

/* attn_bwd_bq_kernel's dS^T store: this thread's two key rows (srow, srow + 8) of dS^T into both
 * 64-query panels of dsT (panel i / 8; 16-byte chunk i % 8 = queries 8 (i % 8) .. +7, 128-byte
 * swizzle), then the async-proxy fence and the barrier of the two consumer warpgroups: each one's
 * dQ reads both halves. */
__device__ __forceinline__ void bq_store_ds(unsigned char *dsT, const uint32_t (&sa)[8][4], int srow, int tg) {
    constexpr int BN = bwq_smem::BN;
#pragma unroll
    for (int i = 0; i < 16; i++) {
        unsigned char *pn = dsT + (i / 8) * (BN * 128);
        const int off = (((i % 8) ^ (srow & 7)) << 4) + 4 * tg;
        *reinterpret_cast<uint32_t *>(pn + srow * 128 + off) = sa[i / 2][(i % 2) * 2];
        *reinterpret_cast<uint32_t *>(pn + (srow + 8) * 128 + off) = sa[i / 2][(i % 2) * 2 + 1];
    }
    sm90::fence_proxy_async();
    asm volatile("bar.sync 1, 256;\n" ::: "memory"); /* both halves of dS^T */
}

/* attn_bwd_bq_kernel's dQ MMAs: dQ (query rows 64 cw .. +63 of the tile) = dS K over the block's
 * BN keys, from dS^T panel cw and the K block kBlk (both MN-major); issued, not committed. */
__device__ __forceinline__ void bq_issue_dq(float (&dQ)[32], unsigned char *dsT, int cw, uint32_t kBlk) {
    constexpr int BN = bwq_smem::BN;
#pragma unroll
    for (int i = 0; i < 32; i++) {
        dQ[i] = 0.f;
        sm90::reg_fence(dQ[i]);
    }
    const uint32_t dsA = smem_u32(dsT + cw * (BN * 128));
    sm90::fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++)
        sm90::ss_n64_tt(dQ, sm90::desc_mn(dsA + kk * 16 * 128), sm90::desc_mn(kBlk + kk * 16 * 128));
}

template <int OV>
__global__ void __launch_bounds__(384, 1)
    attn_bwd_bq_kernel(const bwd_params p, const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tdo,
                       const __grid_constant__ CUtensorMap tk, const __grid_constant__ CUtensorMap tv,
                       const __grid_constant__ CUtensorMap tdq, const __grid_constant__ CUtensorMap tld,
                       const int64_t nitems) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using SM = bwq_smem;
    constexpr int BN = SM::BN, BM = SM::BM, STAGES = SM::STAGES;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const uint32_t pad = (1024 - (smem_u32(smem_raw) & 1023)) & 1023;
    if (pad > SM::alloc - SM::total) __trap(); /* never on the H100 (see above) */
    unsigned char *sK = smem_raw + pad;                   /* [2][BN x 128 B] */
    unsigned char *sV = sK + 2 * SM::KV1;                 /* [2][BN x 128 B] */
    unsigned char *sRing = sV + 2 * SM::KV1;              /* [STAGES] { Q 16 KB, dO 16 KB } */
    unsigned char *sdS = sRing + STAGES * SM::SLOT;       /* [2][2 panels][BN x 128 B] */
    unsigned char *sdQ = sdS + 2 * SM::DS1;               /* [2 WG][2 panels][64 x 128 B] */
    unsigned char *sLD = sdQ + 2 * SM::DQ1;               /* [STAGES][BM] (lse, D) */
    const uint32_t bar0 = smem_u32(sLD + STAGES * SM::LD1);
    const uint32_t b_fullKV = bar0, b_emptyKV = bar0 + 16, b_full = bar0 + 32, b_empty = b_full + 8 * STAGES;

    const int tid = threadIdx.x, wg = tid / 128, warp = (tid % 128) / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int64_t L = p.L, HQ = p.HQ, H = p.H, G = HQ / H, W = p.W;
    if (tid == 0) {
        for (int i = 0; i < 2; i++) {
            sm90::mbar_init(b_fullKV + 8 * i, 1);
            sm90::mbar_init(b_emptyKV + 8 * i, 8); /* lane 0 of every consumer warp */
        }
        for (int s = 0; s < STAGES; s++) {
            sm90::mbar_init(b_full + 8 * s, 1);
            sm90::mbar_init(b_empty + 8 * s, 8);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) { /* ------------------------------------------------------------ producer */
        sm90::setmaxnreg_dec<24>();
        if (warp == 0 && lane == 0) {
            /* int32 throughout (the host checks L < 2^30 and nitems < 2^31): 24 registers */
            const int Hi = (int)H, Gi = (int)G, HQi = (int)HQ, Li = (int)L, nkb = (int)p.nkb, Wi = (int)min(W, (int64_t)1 << 30);
            uint32_t it = 0, kc = 0;
            for (int idx = blockIdx.x; idx < (int)nitems; idx += gridDim.x, kc++) {
                const int h = idx % Hi, k0 = (idx / Hi) % nkb * BN, b = idx / Hi / nkb;
                const int qlo = p.causal ? k0 : 0, qhi = (p.causal && Wi > 0) ? min(Li - 1, k0 + BN - 1 + Wi) : Li - 1;
                const uint32_t kvb = kc & 1;
                sm90::mbar_wait(b_emptyKV + 8 * kvb, ((kc >> 1) & 1) ^ 1);
                sm90::mbar_expect_tx(b_fullKV + 8 * kvb, 2 * BN * 128);
                sm90::tma_load_4d(smem_u32(sK + kvb * SM::KV1), &tk, 0, h, k0, b, b_fullKV + 8 * kvb);
                sm90::tma_load_4d(smem_u32(sV + kvb * SM::KV1), &tv, 0, h, k0, b, b_fullKV + 8 * kvb);
                for (int a = h * Gi; a < (h + 1) * Gi; a++)
                    for (int q0 = qlo / BM * BM; q0 <= qhi; q0 += BM, it++) {
                        const uint32_t s = it % STAGES, bar = b_full + 8 * s;
                        const uint32_t slot = smem_u32(sRing + s * SM::SLOT);
                        sm90::mbar_wait(b_empty + 8 * s, ((it / STAGES) & 1) ^ 1);
                        sm90::mbar_expect_tx(bar, 2 * BM * 128 + BM * 8);
                        sm90::tma_load_4d(slot, &tq, 0, a, q0, b, bar);
                        sm90::tma_load_4d(slot + BM * 128, &tdo, 0, a, q0, b, bar);
                        sm90::tma_load_2d(smem_u32(sLD + s * SM::LD1), &tld, 2 * q0, b * HQi + a, bar);
                    }
            }
        }
        return;
    }

    /* ----------------------------------------------------------------------------- consumers */
    sm90::setmaxnreg_inc<240>();
    const int cw = wg - 1;
    const int Wm = (p.causal && W > 0) ? (int)min(W, (int64_t)1 << 30) : 1 << 30;
    const int rrow = warp * 16 + g; /* this thread's accumulator rows (keys): rrow, rrow + 8 */
    unsigned char *myDQ = sdQ + cw * SM::DQ1;
    uint32_t it = 0, kc = 0;
    auto wg_sync = [&]() { asm volatile("bar.sync %0, 128;\n" ::"r"(2 + cw) : "memory"); };

    /* int32 positions and indices, as in the producer (fewer live registers) */
    const int Hi = (int)H, Gi = (int)G, Li = (int)L, nkb = (int)p.nkb, Wi = (int)min(W, (int64_t)1 << 30);
    for (int idx = blockIdx.x; idx < (int)nitems; idx += gridDim.x, kc++) {
        const int h = idx % Hi, k0 = (idx / Hi) % nkb * BN, b = idx / Hi / nkb;
        const int qlo = p.causal ? k0 : 0, qhi = (p.causal && Wi > 0) ? min(Li - 1, k0 + BN - 1 + Wi) : Li - 1;
        const int qt0 = qlo / BM * BM;
        const uint32_t kvb = kc & 1;
        const int kw0 = k0 + 64 * cw;
        const uint32_t kBlk = smem_u32(sK + kvb * SM::KV1), kA = kBlk + cw * 64 * 128;
        const uint32_t vA = smem_u32(sV + kvb * SM::KV1) + cw * 64 * 128;
        const int limk = min(Li - kw0, 64); /* key rows < limk exist (may be <= 0) */
        sm90::mbar_wait(b_fullKV + 8 * kvb, (kc >> 1) & 1);

        float dK[32], dV[32];
#pragma unroll
        for (int i = 0; i < 32; i++) {
            dK[i] = dV[i] = 0.f;
            sm90::reg_fence(dK[i]);
            sm90::reg_fence(dV[i]);
        }
        for (int a = h * Gi; a < (h + 1) * Gi; a++) {
            for (int q0 = qt0; q0 <= qhi; q0 += BM, it++) {
                const uint32_t s = it % STAGES;
                const uint32_t qB = smem_u32(sRing + s * SM::SLOT), oB = qB + BM * 128;
                const float2 *cLD = reinterpret_cast<const float2 *>(sLD + s * SM::LD1);
                sm90::mbar_wait(b_full + 8 * s, (it / STAGES) & 1);

                float dQ[32];
                uint32_t pa[8][4], sa[8][4];
                if constexpr (OV) {
                /* S^T = K_w Q^T, then dP^T = V_w dO^T, two commit groups (64 keys x 128 queries each) */
                float St[64], dPt[64];
                const int limq = min(Li - q0, BM);
                const bool need_mask = limq < BM || limk < 64 ||
                                       (p.causal && (q0 < kw0 + 63 || (Wi > 0 && q0 + BM - 1 > kw0 + Wi)));
                unsigned char *dsT = sdS + (it & 1) * SM::DS1;
                sm90::fence();
#pragma unroll
                for (int kk = 0; kk < 4; kk++) sm90::ss_n128(St, sm90::desc_k(kA + kk * 32), sm90::desc_k(qB + kk * 32), kk > 0);
                sm90::commit();
#pragma unroll
                for (int kk = 0; kk < 4; kk++) sm90::ss_n128(dPt, sm90::desc_k(vA + kk * 32), sm90::desc_k(oB + kk * 32), kk > 0);
                sm90::commit();
                sm90::wait<1>(); /* S^T done; dP^T may run */
#pragma unroll
                for (int i = 0; i < 64; i++) sm90::reg_fence(St[i]);
                bws_tile_p(St, cLD, p.scale_log2, tg, rrow, need_mask, q0 - kw0, limq, limk, p.causal, Wm, pa);
                /* dV += P^T dO under the rest of the softmax */
                sm90::fence();
#pragma unroll
                for (int kk = 0; kk < BM / 16; kk++) sm90::rs_n64<1>(dV, pa[kk], sm90::desc_mn(oB + kk * 16 * 128), 1);
                sm90::commit();
                sm90::wait<1>(); /* dP^T done; dV may run */
#pragma unroll
                for (int i = 0; i < 64; i++) sm90::reg_fence(dPt[i]);
                bws_tile_ds(dPt, pa, cLD, tg, sa);
                bq_store_ds(dsT, sa, cw * 64 + rrow, tg);
                bq_issue_dq(dQ, dsT, cw, kBlk);
                sm90::commit();
#pragma unroll
                for (int kk = 0; kk < BM / 16; kk++) sm90::rs_n64<1>(dK, sa[kk], sm90::desc_mn(qB + kk * 16 * 128), 1);
                sm90::commit();
                sm90::wait<1>(); /* dV and dQ done; dK may run */
#pragma unroll
                for (int i = 0; i < 32; i++) sm90::reg_fence(dQ[i]);
                } else {
                /* S^T = K_w Q^T and dP^T = V_w dO^T (64 keys x 128 queries each) */
                float St[64], dPt[64];
                sm90::fence();
#pragma unroll
                for (int kk = 0; kk < 4; kk++) sm90::ss_n128(St, sm90::desc_k(kA + kk * 32), sm90::desc_k(qB + kk * 32), kk > 0);
#pragma unroll
                for (int kk = 0; kk < 4; kk++) sm90::ss_n128(dPt, sm90::desc_k(vA + kk * 32), sm90::desc_k(oB + kk * 32), kk > 0);
                sm90::commit();
                sm90::wait<0>();
#pragma unroll
                for (int i = 0; i < 64; i++) {
                    sm90::reg_fence(St[i]);
                    sm90::reg_fence(dPt[i]);
                }

                const int limq = min(Li - q0, BM);
                const bool need_mask = limq < BM || limk < 64 ||
                                       (p.causal && (q0 < kw0 + 63 || (Wi > 0 && q0 + BM - 1 > kw0 + Wi)));
                bws_tile_softmax(St, dPt, cLD, p.scale_log2, tg, rrow, need_mask, q0 - kw0, limq, limk, p.causal, Wm, pa, sa);

                /* this warpgroup's 64 key rows of dS^T, both 64-query panels (chunk i = queries 8i .. 8i+7) */
                unsigned char *dsT = sdS + (it & 1) * SM::DS1;
                bq_store_ds(dsT, sa, cw * 64 + rrow, tg);

                /* dQ (query rows 64 cw .. +63) = dS K over the 128 keys, then dV += P^T dO, dK += dS^T Q */
                bq_issue_dq(dQ, dsT, cw, kBlk);
                sm90::commit();
#pragma unroll
                for (int kk = 0; kk < BM / 16; kk++) sm90::rs_n64<1>(dV, pa[kk], sm90::desc_mn(oB + kk * 16 * 128), 1);
#pragma unroll
                for (int kk = 0; kk < BM / 16; kk++) sm90::rs_n64<1>(dK, sa[kk], sm90::desc_mn(qB + kk * 16 * 128), 1);
                sm90::commit();
                sm90::wait<1>(); /* dQ done; dV, dK may still run */
#pragma unroll
                for (int i = 0; i < 32; i++) sm90::reg_fence(dQ[i]);

                }
                /* dQ -> shared memory (fp32, 128-byte swizzle per 32-column panel) -> bulk reduce-adds */
                if (tid % 128 == 0) sm90::bulk_wait_read<0>(); /* the previous reduce has read the buffer */
                wg_sync();
                bws_stage_dq(myDQ, dQ, rrow, tg);
                sm90::fence_proxy_async();
                wg_sync();
                if (tid % 128 == 0) {
                    const int qr = q0 + 64 * cw;
                    if (qr < Li) {
                        const uint32_t src = smem_u32(myDQ);
                        sm90::tma_reduce_add_4d(&tdq, src, 0, a, qr, b);
                        sm90::tma_reduce_add_4d(&tdq, src + 8192, 32, a, qr, b);
                    }
                    sm90::bulk_commit();
                }
                sm90::wait<0>(); /* dV, dK: the slot's Q, dO are read */
                bws_fence_dkdv(dK, dV, pa, sa);
                if (lane == 0) sm90::mbar_arrive(b_empty + 8 * s);
            }
        }

        /* dK (times the softmax scale) and dV of this warpgroup's keys */
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int key = kw0 + rrow + 8 * hr;
            if (key < Li) {
                const int64_t row = ((int64_t)b * L + key) * H + h;
                bf16 *dkr = p.dk + row * 64, *dvr = p.dv + row * 64;
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    *reinterpret_cast<uint32_t *>(dkr + i * 8 + 2 * tg) =
                        pack_bf16(dK[4 * i + 2 * hr] * p.scale, dK[4 * i + 2 * hr + 1] * p.scale);
                    *reinterpret_cast<uint32_t *>(dvr + i * 8 + 2 * tg) = pack_bf16(dV[4 * i + 2 * hr], dV[4 * i + 2 * hr + 1]);
                }
            }
        }
        if (lane == 0) sm90::mbar_arrive(b_emptyKV + 8 * kvb); /* every MMA that read this K, V is done */
    }
    if (tid % 128 == 0) sm90::bulk_wait_all();
#endif
}
