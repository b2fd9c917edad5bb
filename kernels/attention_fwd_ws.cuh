/* attention_fwd_ws.cuh — the warp-specialised Hopper forward for dh 64 (FlashAttention-3 layout),
 * built for the sliding-window shapes. Included by attention.cu inside its anonymous namespace
 * (it uses fwd_params, fwd_tile_of, visible, ex2, reg_fence and the wgmma wrappers there); the
 * kernel body is compiled for sm_90a only and the host launches it only where the sm_90a build
 * is loaded.
 *
 * Block = 1 producer warpgroup + NCWG consumer warpgroups, one block per SM, persistent: block
 * p serves the query tiles p, p + grid, p + 2*grid, ... in fwd_tile_of's order (heads fastest).
 *   producer   one thread issues bulk tensor copies (TMA, 128-byte swizzle, which is the layout
 *              the wgmma descriptors read): the Q tile (BM = 64*NCWG rows, two buffers) and the
 *              K and V tiles (BN keys) of every key tile the query tile sees, into a ring of
 *              STAGES slots. Each copy completes on an mbarrier (fullQ, fullK, fullV); the
 *              producer reuses a slot once every consumer warp has arrived on its empty barrier.
 *              setmaxnreg gives its registers to the consumers.
 *   consumers  warpgroup w owns query rows r0 = q0 + 64w .. +63 and computes only the key tiles
 *              that those rows see (for W = 512, BM = 128, BN = 64 the block streams 10 tiles and
 *              each warpgroup computes 9 of them, so wasted work at the window's two edges stays
 *              that of a 64-row tile while K and V are loaded once per 128 rows); it passes over
 *              the others (waits for the slot to be filled, then releases it). Per key tile j:
 *                S_j = Q K_j^T       (wgmma, both from shared memory)     issued first,
 *                O  += P_{j-1} V_{j-1} (wgmma, P from registers)          issued second,
 *                softmax of S_j (mask only on tiles cutting the diagonal, the window edge or the
 *                end of the sequence) while P_{j-1} V_{j-1} still runs on the tensor cores,
 *                then O *= alpha_j and P_j = bf16(exp2(S_j - m_j)).
 *              The two warpgroups are one key tile apart (warpgroup 1 starts a tile later), so
 *              one's softmax runs beside the other's MMAs as well.
 * Layouts: Q, K, V, O, lse as in attention.h; tensor maps view q as [B][Lq][HQ][64] and k, v as
 * [B][L][H][64] (4-D, innermost first), so rows past Lq or L arrive as zeros. */

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
/* One arrival that also tells the barrier `bytes` more will land through copies. */
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* Wait until the phase of parity `parity` has completed. */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
    } while (!done);
}
/* Box at coordinates (c0 innermost .. c3) of a 4-D tensor map into shared memory at dst. */
__device__ __forceinline__ void tma_load_4d(uint32_t dst, const CUtensorMap *map, int c0, int c1, int c2, int c3,
                                            uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(dst),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
        : "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}

/* S (64 x BN, this warpgroup's rows) = Q K^T over dh 64: four k16 steps inside the swizzled rows. */
template <int BN>
__device__ __forceinline__ void ws_qk(float *S, uint32_t qaddr, uint32_t kaddr) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const uint64_t da = wgmma_desc(qaddr + kk * 32, 16, 1024), db = wgmma_desc(kaddr + kk * 32, 16, 1024);
        if constexpr (BN == 128) wgmma_ss_n128(S, da, db, kk > 0);
        else wgmma_ss_n64(S, da, db, kk > 0);
    }
}
/* O (64 x 64) += P V with P (64 x BN) from registers and V [BN keys][64] MN-major. */
template <int BN>
__device__ __forceinline__ void ws_pv(float *acc, const uint32_t (*pa)[4], uint32_t vaddr) {
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) wgmma_rs_n64(acc, pa[kk], wgmma_desc(vaddr + kk * 16 * 128, 1024, 1024));
}
#endif

/* Shared-memory bytes of one block (1024 of slack to align the swizzle atoms). */
template <int BN, int NCWG, int STAGES>
constexpr size_t ws_smem_bytes() {
    return 1024 + 2 * (size_t)NCWG * 64 * 128 + 2 * (size_t)STAGES * BN * 128 + (4 + 3 * STAGES) * 8;
}

template <int BN, int NCWG, int STAGES>
__global__ void __launch_bounds__((NCWG + 1) * 128, 1)
    attn_fwd_ws_kernel(const fwd_params p, const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
                       const __grid_constant__ CUtensorMap tv, const int64_t ntiles) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int D = 64, BM = 64 * NCWG;
    constexpr uint32_t QBYTES = BM * 128, KVBYTES = BN * 128;
    /* registers: at entry every thread has 65536 / threads (168 or 128); the producer drops to
     * PROD_REGS and the consumers take what it freed (2 WG: 128*40 + 256*232; 3: 128*32 + 384*160) */
    constexpr int PROD_REGS = NCWG == 2 ? 40 : 32, CONS_REGS = NCWG == 2 ? 232 : 160;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *sQ = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023); /* [2][BM x 128 B] */
    unsigned char *sK = sQ + 2 * QBYTES;                                          /* [STAGES][BN x 128 B] */
    unsigned char *sV = sK + STAGES * KVBYTES;
    const uint32_t bar0 = smem_u32(sV + STAGES * KVBYTES);
    const uint32_t b_fullQ = bar0, b_emptyQ = bar0 + 16, b_fullK = bar0 + 32, b_fullV = b_fullK + 8 * STAGES,
                   b_empty = b_fullV + 8 * STAGES;

    const int tid = threadIdx.x, wg = tid / 128, warp = (tid % 128) / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    if (tid == 0) {
        for (int i = 0; i < 2; i++) {
            mbar_init(b_fullQ + 8 * i, 1);
            mbar_init(b_emptyQ + 8 * i, 4 * NCWG); /* lane 0 of every consumer warp */
        }
        for (int s = 0; s < STAGES; s++) {
            mbar_init(b_fullK + 8 * s, 1);
            mbar_init(b_fullV + 8 * s, 1);
            mbar_init(b_empty + 8 * s, 4 * NCWG);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) { /* ------------------------------------------------------------ producer */
        setmaxnreg_dec<PROD_REGS>();
        if (warp == 0 && lane == 0) {
            uint32_t it = 0, tc = 0; /* key tiles and query tiles issued so far */
            for (int64_t idx = blockIdx.x; idx < ntiles; idx += gridDim.x, tc++) {
                const fwd_tile<D> t = fwd_tile_of<D>(p, BM, idx);
                const int h = (int)(t.a / (p.HQ / p.H)), b = (int)t.b;
                const uint32_t qs = tc & 1;
                mbar_wait(b_emptyQ + 8 * qs, ((tc >> 1) & 1) ^ 1);
                mbar_expect_tx(b_fullQ + 8 * qs, QBYTES);
                tma_load_4d(smem_u32(sQ + qs * QBYTES), &tq, 0, (int)t.a, (int)t.i0, b, b_fullQ + 8 * qs);
                for (int64_t j = t.kstart / BN; j <= (t.kend - 1) / BN; j++, it++) {
                    const uint32_t s = it % STAGES;
                    mbar_wait(b_empty + 8 * s, ((it / STAGES) & 1) ^ 1);
                    mbar_expect_tx(b_fullK + 8 * s, KVBYTES);
                    tma_load_4d(smem_u32(sK + s * KVBYTES), &tk, 0, h, (int)(j * BN), b, b_fullK + 8 * s);
                    mbar_expect_tx(b_fullV + 8 * s, KVBYTES);
                    tma_load_4d(smem_u32(sV + s * KVBYTES), &tv, 0, h, (int)(j * BN), b, b_fullV + 8 * s);
                }
            }
        }
        return;
    }

    /* ----------------------------------------------------------------------------- consumers */
    setmaxnreg_inc<CONS_REGS>();
    const int cw = wg - 1;
    const int64_t L = p.L, Lq = p.Lq, W = p.W;
    uint32_t it = 0, tc = 0;
    /* a slot this warpgroup does not compute: wait until it is filled (so arrivals stay in
     * phase), then hand it back */
    auto pass = [&](uint32_t i) {
        mbar_wait(b_fullK + 8 * (i % STAGES), (i / STAGES) & 1);
        if (lane == 0) mbar_arrive(b_empty + 8 * (i % STAGES));
    };
    for (int64_t idx = blockIdx.x; idx < ntiles; idx += gridDim.x, tc++) {
        const fwd_tile<D> t = fwd_tile_of<D>(p, BM, idx);
        const uint32_t qs = tc & 1;
        const int64_t j0 = t.kstart / BN;
        const int nt = (int)((t.kend - 1) / BN - j0 + 1);
        /* this warpgroup's rows and the key tiles (0 .. nt-1 of the block's) they see */
        const int64_t r0 = t.q0 + 64 * cw, rlast = min(r0 + 63, t.qlast);
        int jlo = nt, jhi = -1;
        if (r0 <= t.qlast) {
            const int64_t ks = (p.causal && W > 0) ? max(r0 - W, (int64_t)0) : 0, ke = p.causal ? rlast + 1 : L;
            jlo = (int)(ks / BN - j0);
            jhi = (int)((ke - 1) / BN - j0);
        }
        const uint32_t qaddr = smem_u32(sQ + qs * QBYTES) + cw * 64 * 128;
        const int64_t row_base = r0 + warp * 16 + g;
        mbar_wait(b_fullQ + 8 * qs, (tc >> 1) & 1);

        float acc[32], S[BN / 2], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
        uint32_t pa[BN / 16][4];
#pragma unroll
        for (int i = 0; i < 32; i++) acc[i] = 0.f;

        /* mask (boundary tiles only) and the online-softmax statistics of S; S becomes
         * exp2(S*scale - m_new) in place, alpha the factor for the older partial sums */
        auto softmax = [&](int j, float alpha[2], float sum[2]) {
            const int64_t k0 = (j0 + j) * BN;
            const bool need_mask = k0 + BN > L || (p.causal && (k0 + BN - 1 > r0 || (W > 0 && k0 < rlast - W)));
            if (need_mask) {
#pragma unroll
                for (int i = 0; i < BN / 8; i++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int64_t row = row_base + (e >= 2 ? 8 : 0);
                        const int64_t col = k0 + i * 8 + 2 * tg + (e & 1);
                        if (!visible(row < rlast ? row : rlast, col, L, p.causal, W)) S[4 * i + e] = -INFINITY;
                    }
            }
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = -INFINITY;
#pragma unroll
                for (int i = 0; i < BN / 8; i++) mx = fmaxf(mx, fmaxf(S[4 * i + 2 * r], S[4 * i + 2 * r + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
                const float m_new = fmaxf(m[r], mx * p.scale_log2);
                const float m_use = m_new == -INFINITY ? 0.f : m_new;
                alpha[r] = ex2(m[r] - m_use);
                m[r] = m_new;
                float s = 0.f;
#pragma unroll
                for (int i = 0; i < BN / 8; i++)
#pragma unroll
                    for (int e = 2 * r; e < 2 * r + 2; e++) {
                        const float pv = ex2(fmaf(S[4 * i + e], p.scale_log2, -m_use));
                        S[4 * i + e] = pv;
                        s += pv;
                    }
                sum[r] = s;
            }
        };
        auto pack_p = [&]() {
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                pa[kk][0] = pack_bf16(S[8 * kk + 0], S[8 * kk + 1]);
                pa[kk][1] = pack_bf16(S[8 * kk + 2], S[8 * kk + 3]);
                pa[kk][2] = pack_bf16(S[8 * kk + 4], S[8 * kk + 5]);
                pa[kk][3] = pack_bf16(S[8 * kk + 6], S[8 * kk + 7]);
            }
        };

        int j = 0;
        for (; j < jlo; j++, it++) pass(it);
        if (jlo <= jhi) {
            /* first tile: S, softmax, P (nothing to overlap with yet) */
            uint32_t s = it % STAGES;
            mbar_wait(b_fullK + 8 * s, (it / STAGES) & 1);
            wgmma_fence();
            ws_qk<BN>(S, qaddr, smem_u32(sK + s * KVBYTES));
            wgmma_commit();
            wgmma_wait<0>();
#pragma unroll
            for (int i = 0; i < BN / 2; i++) reg_fence(S[i]);
            float alpha[2], sum[2];
            softmax(j, alpha, sum);
            l[0] = sum[0], l[1] = sum[1];
            pack_p();
            uint32_t prev = it;
            for (j++, it++; j <= jhi; j++, it++) {
                s = it % STAGES;
                const uint32_t sp = prev % STAGES;
                mbar_wait(b_fullK + 8 * s, (it / STAGES) & 1);
                wgmma_fence();
                ws_qk<BN>(S, qaddr, smem_u32(sK + s * KVBYTES));
                wgmma_commit();
                mbar_wait(b_fullV + 8 * sp, (prev / STAGES) & 1);
                wgmma_fence();
                ws_pv<BN>(acc, pa, smem_u32(sV + sp * KVBYTES));
                wgmma_commit();
                wgmma_wait<1>(); /* S_j is in; P_{j-1} V_{j-1} may still run */
#pragma unroll
                for (int i = 0; i < BN / 2; i++) reg_fence(S[i]);
                softmax(j, alpha, sum);
                wgmma_wait<0>();
#pragma unroll
                for (int i = 0; i < 32; i++) reg_fence(acc[i]);
#pragma unroll
                for (int kk = 0; kk < BN / 16; kk++)
#pragma unroll
                    for (int c = 0; c < 4; c++) reg_fence(pa[kk][c]);
                if (lane == 0) mbar_arrive(b_empty + 8 * sp);
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    l[r] = l[r] * alpha[r] + sum[r];
#pragma unroll
                    for (int i = 0; i < 8; i++) {
                        acc[4 * i + 2 * r] *= alpha[r];
                        acc[4 * i + 2 * r + 1] *= alpha[r];
                    }
                }
                pack_p();
                prev = it;
            }
            /* the last tile's P V */
            const uint32_t sp = prev % STAGES;
            mbar_wait(b_fullV + 8 * sp, (prev / STAGES) & 1);
            wgmma_fence();
            ws_pv<BN>(acc, pa, smem_u32(sV + sp * KVBYTES));
            wgmma_commit();
            wgmma_wait<0>();
#pragma unroll
            for (int i = 0; i < 32; i++) reg_fence(acc[i]);
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++)
#pragma unroll
                for (int c = 0; c < 4; c++) reg_fence(pa[kk][c]);
            if (lane == 0) mbar_arrive(b_empty + 8 * sp);
        }
        if (lane == 0) mbar_arrive(b_emptyQ + 8 * qs); /* every S of this tile is done */
        for (; j < nt; j++, it++) pass(it);

#pragma unroll
        for (int r = 0; r < 2; r++) {
            float sum = l[r];
            sum += __shfl_xor_sync(0xffffffff, sum, 1);
            sum += __shfl_xor_sync(0xffffffff, sum, 2);
            const float inv = sum > 0.f ? 1.f / sum : 0.f;
            const int64_t row = row_base - p.p0 + r * 8; /* query row */
            if (row < Lq) {
                bf16 *orow = p.o + ((t.b * Lq + row) * p.HQ + t.a) * D;
#pragma unroll
                for (int i = 0; i < 8; i++)
                    *reinterpret_cast<uint32_t *>(orow + i * 8 + 2 * tg) =
                        pack_bf16(acc[4 * i + 2 * r] * inv, acc[4 * i + 2 * r + 1] * inv);
                if (tg == 0)
                    p.lse[(t.b * p.HQ + t.a) * Lq + row] =
                        sum > 0.f ? (m[r] + log2f(sum)) * 0.69314718055994531f : -INFINITY;
            }
        }
    }
#endif
}
