/* attention_bwd_ws.cuh — the warp-specialised Hopper backward for dh 64 (the FlashAttention-3
 * organisation of the backward), built for the sliding-window shapes and used for dense causal
 * and non-causal attention too. Included by attention.cu inside its anonymous namespace, after
 * attention_fwd_ws.cuh (mbarrier / TMA / setmaxnreg helpers) and bwd_params; the kernel body is
 * compiled for sm_90a only and the host launches it only where the sm_90a build is loaded.
 *
 * Work item = (batch, KV head, key block of BN = 64*NCWG keys); block = 1 producer warpgroup +
 * NCWG consumer warpgroups, one block per SM, persistent (block p serves items p, p + grid, ...,
 * heads fastest, key blocks ascending = the heaviest causal blocks first).
 *   producer   one thread issues bulk tensor copies (TMA): the block's K and V (two buffers, so
 *              the next item's keys load while this one finishes) and, per query tile of 64 rows
 *              that sees the block's keys (for each of the G query heads of the KV head), Q, dO
 *              (128-byte swizzle = the wgmma layout) into a ring of STAGES slots, while the 32
 *              lanes of its warp copy the tile's lse and D = rowsum(dO*O) rows (4-byte cp.async,
 *              which has no alignment condition); the slot's full mbarrier completes when the
 *              bulk bytes have landed and every lane's cp.async arrival has fired. A slot is
 *              reused once every consumer warp has arrived on its empty barrier.
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
 *              DQH (attn5, variant 13; needs !SPLIT): dQ over the warpgroup's keys in two
 *              32-column halves (dQ_0; wait; dQ_1, then dV, dK; wait for dQ_1 only), so 16
 *              accumulator registers are live, not 32: no spills without KR (variant 8's form,
 *              with KR, spilled 164 B; with DQH and KR 148 B, with DQH and OVL 116 B).
 * Layouts: as in attention.h; tensor maps view q, dout as [B][L][HQ][64], k, v as [B][L][H][64]
 * (rows past L arrive as zeros; a box may not be larger than its tensor, so L >= BN), the dQ
 * workspace as fp32 [B][L][HQ][64] in boxes of 32 columns x 64 rows (rows past L are not
 * written). An earlier version brought lse and D with 1-D bulk tensor copies and stopped with
 * an illegal instruction on the H100 where (b*HQ + a)*L was not a multiple of 4 (L = 1, 2049). */

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* One arrival on the mbarrier once every cp.async this thread issued so far has landed (.noinc:
 * the barrier's expected count includes these arrivals). */
__device__ __forceinline__ void cp_async_mbar_arrive(uint32_t bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
/* global box (c0 innermost .. c3) += the box at src in shared memory, as one bulk operation */
__device__ __forceinline__ void tma_reduce_add_4d(const CUtensorMap *map, uint32_t src, int c0, int c1, int c2, int c3) {
    asm volatile("cp.reduce.async.bulk.tensor.4d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(
                     reinterpret_cast<uint64_t>(map)),
                 "r"(src), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
                 : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
/* at most N of this thread's bulk groups may still be reading their shared-memory source */
template <int N>
__device__ __forceinline__ void bulk_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
#endif

/* Shared-memory layout of one block, in bytes (each piece a multiple of 1024, so every swizzled
 * tile stays 1024-aligned; 1024 of slack to align the start). */
template <int NCWG, int SPLIT, int STAGES>
struct bws_smem {
    static constexpr int BN = 64 * NCWG;
    static constexpr int DQB = (SPLIT || NCWG == 2) ? 2 : 1;        /* dQ staging buffers per warpgroup */
    static constexpr size_t KV = 2 * (size_t)BN * 128;              /* K and V of one item */
    static constexpr size_t SLOT = 2 * 64 * 128 + 1024;             /* Q, dO, then lse, D (64 floats each) */
    static constexpr size_t DS = SPLIT ? 2 * (size_t)BN * 128 : (size_t)NCWG * 64 * 128; /* dS^T */
    static constexpr size_t DQ = (size_t)NCWG * DQB * (SPLIT ? 32 : 64) * 64 * 4;        /* dQ fp32 */
    static constexpr size_t BARS = 8 * (4 + 2 * STAGES);
    static constexpr size_t total = 1024 + 2 * KV + STAGES * SLOT + DS + DQ + BARS;
};

template <int NCWG, int SPLIT, int STAGES, int OVL, int KR, int DQH = 0>
__global__ void __launch_bounds__((NCWG + 1) * 128, 1)
    attn_bwd_ws_kernel(const bwd_params p, const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tdo,
                       const __grid_constant__ CUtensorMap tk, const __grid_constant__ CUtensorMap tv,
                       const __grid_constant__ CUtensorMap tdq, const int64_t nitems) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using SM = bws_smem<NCWG, SPLIT, STAGES>;
    constexpr int BN = SM::BN, DQB = SM::DQB, DQC = SPLIT ? 32 : 64; /* dQ columns per warpgroup */
    /* registers: producer 40, consumers what it frees (2 WG: 128*40 + 256*232; 3: 128*32 + 384*160) */
    constexpr int PROD_REGS = NCWG == 2 ? 56 : 32, CONS_REGS = NCWG == 2 ? 224 : 160;
    static_assert(!SPLIT || NCWG == 2, "split dQ columns need two consumer warpgroups");
    static_assert(!DQH || !SPLIT, "dQ in halves: per-warpgroup dQ (all 64 columns)");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *sK = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023); /* [2][BN x 128 B] */
    unsigned char *sV = sK + SM::KV;                                               /* [2][BN x 128 B] */
    unsigned char *sRing = sK + 2 * SM::KV; /* [STAGES] { Q 8 KB, dO 8 KB, lse 256 B, D 256 B } */
    unsigned char *sdS = sRing + STAGES * SM::SLOT;
    unsigned char *sdQ = sdS + SM::DS; /* [NCWG][DQB][64 rows x DQC floats], 128-byte swizzle per 32 columns */
    const uint32_t bar0 = smem_u32(sdQ + SM::DQ);
    const uint32_t b_fullKV = bar0, b_emptyKV = bar0 + 16, b_full = bar0 + 32, b_empty = b_full + 8 * STAGES;

    const int tid = threadIdx.x, wg = tid / 128, warp = (tid % 128) / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    const int64_t L = p.L, HQ = p.HQ, H = p.H, G = HQ / H, W = p.W;
    if (tid == 0) {
        for (int i = 0; i < 2; i++) {
            mbar_init(b_fullKV + 8 * i, 1);
            mbar_init(b_emptyKV + 8 * i, 4 * NCWG); /* lane 0 of every consumer warp */
        }
        for (int s = 0; s < STAGES; s++) {
            mbar_init(b_full + 8 * s, 1 + 32); /* the copy engine's expect_tx + each producer lane's cp.async */
            mbar_init(b_empty + 8 * s, 4 * NCWG);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    /* the item's key block and the query tiles qt0 .. qt0+nqt-1 that see any of its keys */
    struct item {
        int64_t h, b, k0, qt0;
        int nqt;
    };
    auto item_of = [&](int64_t idx) {
        item t;
        t.h = idx % H;
        idx /= H;
        t.k0 = (idx % p.nkb) * BN;
        t.b = idx / p.nkb;
        const int64_t qlo = p.causal ? t.k0 : 0;
        const int64_t qhi = (p.causal && W > 0) ? min(L - 1, t.k0 + BN - 1 + W) : L - 1;
        t.qt0 = qlo / 64;
        t.nqt = (int)(qhi / 64 - t.qt0 + 1);
        return t;
    };

    if (wg == 0) { /* ------------------------------------------------------------ producer */
        setmaxnreg_dec<PROD_REGS>();
        if (warp == 0) {
            uint32_t it = 0, kc = 0; /* query tiles and items issued so far */
            for (int64_t idx = blockIdx.x; idx < nitems; idx += gridDim.x, kc++) {
                const item t = item_of(idx);
                const uint32_t kvb = kc & 1;
                if (lane == 0) {
                    mbar_wait(b_emptyKV + 8 * kvb, ((kc >> 1) & 1) ^ 1);
                    mbar_expect_tx(b_fullKV + 8 * kvb, 2 * BN * 128);
                    tma_load_4d(smem_u32(sK + kvb * (SM::KV / 2)), &tk, 0, (int)t.h, (int)t.k0, (int)t.b, b_fullKV + 8 * kvb);
                    tma_load_4d(smem_u32(sV + kvb * (SM::KV / 2)), &tv, 0, (int)t.h, (int)t.k0, (int)t.b, b_fullKV + 8 * kvb);
                }
                for (int64_t a = t.h * G; a < (t.h + 1) * G; a++)
                    for (int j = 0; j < t.nqt; j++, it++) {
                        const uint32_t s = it % STAGES, bar = b_full + 8 * s;
                        const int64_t q0 = (t.qt0 + j) * 64;
                        unsigned char *slot = sRing + s * SM::SLOT;
                        mbar_wait(b_empty + 8 * s, ((it / STAGES) & 1) ^ 1);
                        if (lane == 0) {
                            mbar_expect_tx(bar, 2 * 64 * 128);
                            tma_load_4d(smem_u32(slot), &tq, 0, (int)a, (int)q0, (int)t.b, bar);
                            tma_load_4d(smem_u32(slot + 8192), &tdo, 0, (int)a, (int)q0, (int)t.b, bar);
                        }
                        /* lse and D of rows q0 .. q0+63 (zeros past L): two of each per lane, 4-byte
                         * async copies with no alignment condition (see the note on layouts above) */
                        const int64_t row0 = (t.b * HQ + a) * L;
#pragma unroll
                        for (int c = lane; c < 64; c += 32) {
                            const bool ok = q0 + c < L;
                            const int64_t off = row0 + (ok ? q0 + c : 0);
                            cp_async4(slot + 16384 + 4 * c, p.lse + off, ok);
                            cp_async4(slot + 16384 + 256 + 4 * c, p.Dv + off, ok);
                        }
                        cp_async_mbar_arrive(bar);
                    }
            }
            asm volatile("cp.async.wait_all;\n" ::: "memory"); /* nothing in flight when the warp exits */
        }
        return;
    }

    /* ----------------------------------------------------------------------------- consumers */
    setmaxnreg_inc<CONS_REGS>();
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
        mbar_wait(b_fullKV + 8 * kvb, (kc >> 1) & 1);
        /* KR: this warpgroup's K and V rows as wgmma A fragments (fixed for the whole item), so
         * S^T and dP^T read only Q and dO from shared memory (half the bytes at N = 64) */
        uint32_t kf[4][4], vf[4][4];
        if constexpr (KR) {
            const unsigned char *kw = sK + kvb * (SM::KV / 2) + cw * 64 * 128, *vw = sV + kvb * (SM::KV / 2) + cw * 64 * 128;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                ldsm_x4(kf[kk], kw + sw128(warp * 16 + lane % 16, 2 * kk + lane / 16));
                ldsm_x4(vf[kk], vw + sw128(warp * 16 + lane % 16, 2 * kk + lane / 16));
            }
        }

        float dK[32], dV[32];
#pragma unroll
        for (int i = 0; i < 32; i++) {
            dK[i] = dV[i] = 0.f;
            reg_fence(dK[i]);
            reg_fence(dV[i]);
        }
        uint32_t pa[4][4], sa[4][4];
        int pend = -1; /* OVL: the slot whose dV / dK MMAs are still running */
        auto release = [&](uint32_t s) {
            if (lane == 0) mbar_arrive(b_empty + 8 * s);
        };
        /* the pending dV, dK MMAs are done: keep their registers, free their slot (straight-line
         * code: a wgmma wait under a data-dependent branch makes ptxas serialise every wgmma) */
        auto flush = [&]() {
            wgmma_wait<0>();
#pragma unroll
            for (int i = 0; i < 32; i++) {
                reg_fence(dK[i]);
                reg_fence(dV[i]);
            }
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    reg_fence(pa[kk][c]);
                    reg_fence(sa[kk][c]);
                }
            if (pend >= 0) release((uint32_t)pend);
            pend = -1;
        };
        /* a query tile this warpgroup's keys do not see: wait for the fill (so the arrivals stay
         * in phase) and free the slot */
        auto pass = [&](uint32_t s) {
            mbar_wait(b_full + 8 * s, (it / STAGES) & 1);
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
                const float *cL = reinterpret_cast<const float *>(slot + 16384), *cD = cL + 64;
                mbar_wait(b_full + 8 * s, (it / STAGES) & 1);

                /* S^T = K_w Q^T and dP^T = V_w dO^T (64 keys x 64 queries each) */
                float St[32], dPt[32];
                wgmma_fence();
                if constexpr (KR) {
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) wgmma_rs_n64_k(St, kf[kk], wgmma_desc(qB + kk * 32, 16, 1024), kk > 0);
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) wgmma_rs_n64_k(dPt, vf[kk], wgmma_desc(oB + kk * 32, 16, 1024), kk > 0);
                } else {
#pragma unroll
                    for (int kk = 0; kk < 4; kk++)
                        wgmma_ss_n64(St, wgmma_desc(kA + kk * 32, 16, 1024), wgmma_desc(qB + kk * 32, 16, 1024), kk > 0);
#pragma unroll
                    for (int kk = 0; kk < 4; kk++)
                        wgmma_ss_n64(dPt, wgmma_desc(vA + kk * 32, 16, 1024), wgmma_desc(oB + kk * 32, 16, 1024), kk > 0);
                }
                wgmma_commit();
                wgmma_wait<0>(); /* also the previous tile's dV, dK */
#pragma unroll
                for (int i = 0; i < 32; i++) {
                    reg_fence(St[i]);
                    reg_fence(dPt[i]);
                }
                if constexpr (KR)
#pragma unroll
                    for (int kk = 0; kk < 4; kk++)
#pragma unroll
                        for (int c = 0; c < 4; c++) {
                            reg_fence(kf[kk][c]);
                            reg_fence(vf[kk][c]);
                        }
                if (pend >= 0) {
#pragma unroll
                    for (int i = 0; i < 32; i++) {
                        reg_fence(dK[i]);
                        reg_fence(dV[i]);
                    }
#pragma unroll
                    for (int kk = 0; kk < 4; kk++)
#pragma unroll
                        for (int c = 0; c < 4; c++) {
                            reg_fence(pa[kk][c]);
                            reg_fence(sa[kk][c]);
                        }
                    release((uint32_t)pend);
                    pend = -1;
                }

                /* P^T and dS^T in place; masks in int32 relative to the tile:
                 * query col c = 8i + 2tg + (e&1), key row r = rrow + 8*(e>=2), d = q - k */
                const int limq = (int)min(L - q0, (int64_t)64);
                const bool need_mask = limq < 64 || limk < 64 ||
                                       (p.causal && (q0 < kw0 + 63 || (W > 0 && q0 + 63 > kw0 + W)));
                const int rel = (int)(q0 - kw0);
#pragma unroll
                for (int i = 0; i < 8; i++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int c = 8 * i + 2 * tg + (e & 1);
                        float pv = ex2(fmaf(St[4 * i + e], p.scale_log2, -cL[c] * 1.4426950408889634f));
                        if (need_mask) {
                            const int r = rrow + (e >= 2 ? 8 : 0), d = rel + c - r;
                            if (c >= limq || r >= limk || (p.causal && (d < 0 || d > Wm))) pv = 0.f;
                        }
                        St[4 * i + e] = pv;
                        dPt[4 * i + e] = pv * (dPt[4 * i + e] - cD[c]);
                    }
#pragma unroll
                for (int kk = 0; kk < 4; kk++)
#pragma unroll
                    for (int c = 0; c < 4; c++) {
                        pa[kk][c] = pack_bf16(St[8 * kk + 2 * c], St[8 * kk + 2 * c + 1]);
                        sa[kk][c] = pack_bf16(dPt[8 * kk + 2 * c], dPt[8 * kk + 2 * c + 1]);
                    }

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
                fence_proxy_async();
                if (SPLIT) asm volatile("bar.sync 1, %0;\n" ::"n"(NCWG * 128) : "memory"); /* both halves of dS^T */
                else wg_sync();

                if constexpr (DQH) {
                    /* attn5: each warpgroup's dQ (its 64 keys, all 64 columns) in two 32-column
                     * halves, 16 accumulator registers live instead of 32 (variant 8 spilled):
                     * dQ_0 = dS K[:, 0:32], then dV, dK; dQ_0 to shared memory while dV, dK run;
                     * dQ_1 = dS K[:, 32:64], to shared memory; one reduce-add per half */
                    const uint32_t dsA = smem_u32(dsT);
                    unsigned char *qbuf = myDQ + (dqc % DQB) * (DQC * 64 * 4);
#pragma unroll
                    for (int h = 0; h < 2; h++) {
                        float dQ[16];
#pragma unroll
                        for (int i = 0; i < 16; i++) {
                            dQ[i] = 0.f;
                            reg_fence(dQ[i]);
                        }
                        wgmma_fence();
#pragma unroll
                        for (int kk = 0; kk < 4; kk++)
                            wgmma_ss_n32_tt(dQ, wgmma_desc(dsA + kk * 16 * 128, 1024, 1024),
                                            wgmma_desc(kA + h * 64 + kk * 16 * 128, 1024, 1024));
                        wgmma_commit();
                        if (h == 0) {
                            wgmma_wait<0>(); /* dQ_0 done */
                            if (tid % 128 == 0) bulk_wait_read<DQB - 1>(); /* this buffer's previous reduce has read it */
                            wg_sync();
                        } else {
#pragma unroll
                            for (int kk = 0; kk < 4; kk++) wgmma_rs_n64(dV, pa[kk], wgmma_desc(oB + kk * 16 * 128, 1024, 1024));
#pragma unroll
                            for (int kk = 0; kk < 4; kk++) wgmma_rs_n64(dK, sa[kk], wgmma_desc(qB + kk * 16 * 128, 1024, 1024));
                            wgmma_commit();
                            pend = (int)s;
                            wgmma_wait<1>(); /* dQ_1 done; dV, dK may still run */
                        }
#pragma unroll
                        for (int i = 0; i < 16; i++) reg_fence(dQ[i]);
#pragma unroll
                        for (int i = 0; i < 4; i++)
#pragma unroll
                            for (int hr = 0; hr < 2; hr++) {
                                const int r = rrow + 8 * hr, ch = 2 * i + (tg >> 1);
                                *reinterpret_cast<float2 *>(qbuf + h * 8192 + r * 128 + ((ch ^ (r & 7)) << 4) + 8 * (tg & 1)) =
                                    make_float2(dQ[4 * i + 2 * hr], dQ[4 * i + 2 * hr + 1]);
                            }
                    }
                    fence_proxy_async();
                    wg_sync();
                    if (tid % 128 == 0) {
                        const uint32_t src = smem_u32(qbuf);
                        tma_reduce_add_4d(&tdq, src, 0, (int)a, (int)q0, (int)t.b);
                        tma_reduce_add_4d(&tdq, src + 8192, 32, (int)a, (int)q0, (int)t.b);
                        bulk_commit();
                    }
                } else {
                    /* dQ = dS K first, then dV += P^T dO and dK += dS^T Q (queries are the reduction) */
                    float dQ[DQC / 2];
#pragma unroll
                    for (int i = 0; i < DQC / 2; i++) {
                        dQ[i] = 0.f;
                        reg_fence(dQ[i]);
                    }
                    const uint32_t dsA = smem_u32(dsT);
                    wgmma_fence();
                    if constexpr (SPLIT) {
#pragma unroll
                        for (int kk = 0; kk < BN / 16; kk++)
                            wgmma_ss_n32_tt(dQ, wgmma_desc(dsA + kk * 16 * 128, 1024, 1024),
                                            wgmma_desc(kBlk + cw * 64 + kk * 16 * 128, 1024, 1024));
                    } else {
#pragma unroll
                        for (int kk = 0; kk < 4; kk++)
                            wgmma_ss_n64_tt(dQ, wgmma_desc(dsA + kk * 16 * 128, 1024, 1024), wgmma_desc(kA + kk * 16 * 128, 1024, 1024));
                    }
                    wgmma_commit();
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) wgmma_rs_n64(dV, pa[kk], wgmma_desc(oB + kk * 16 * 128, 1024, 1024));
#pragma unroll
                    for (int kk = 0; kk < 4; kk++) wgmma_rs_n64(dK, sa[kk], wgmma_desc(qB + kk * 16 * 128, 1024, 1024));
                    wgmma_commit();
                    pend = (int)s;
                    wgmma_wait<1>(); /* dQ done; dV, dK may still run */
#pragma unroll
                    for (int i = 0; i < DQC / 2; i++) reg_fence(dQ[i]);

                    /* dQ -> shared memory (fp32, 128-byte swizzle per 32-column panel) -> bulk reduce-add */
                    unsigned char *qbuf = myDQ + (dqc % DQB) * (DQC * 64 * 4);
                    if (tid % 128 == 0) bulk_wait_read<DQB - 1>(); /* this buffer's previous reduce has read it */
                    wg_sync();
#pragma unroll
                    for (int i = 0; i < DQC / 8; i++)
#pragma unroll
                        for (int hr = 0; hr < 2; hr++) {
                            const int r = rrow + 8 * hr, pn = i / 4, ch = 2 * (i % 4) + (tg >> 1);
                            *reinterpret_cast<float2 *>(qbuf + pn * 8192 + r * 128 + ((ch ^ (r & 7)) << 4) + 8 * (tg & 1)) =
                                make_float2(dQ[4 * i + 2 * hr], dQ[4 * i + 2 * hr + 1]);
                        }
                    fence_proxy_async();
                    wg_sync();
                    if (tid % 128 == 0) {
                        const uint32_t src = smem_u32(qbuf);
                        if constexpr (SPLIT) tma_reduce_add_4d(&tdq, src, 32 * cw, (int)a, (int)q0, (int)t.b);
                        else {
                            tma_reduce_add_4d(&tdq, src, 0, (int)a, (int)q0, (int)t.b);
                            tma_reduce_add_4d(&tdq, src + 8192, 32, (int)a, (int)q0, (int)t.b);
                        }
                        bulk_commit();
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
        if (lane == 0) mbar_arrive(b_emptyKV + 8 * kvb); /* every MMA that read this K, V is done */
    }
    if (tid % 128 == 0) bulk_wait_all(); /* the last reduces have read (and written) their sources */
#endif
}
