/* attention_fwd_ws.cuh — the warp-specialised Hopper forward for dh 64 (the FlashAttention-3
 * organisation), built for the sliding-window shapes; it is also the default for dense causal and
 * non-causal attention at dh 64. Included by attention.cu inside its anonymous namespace (it uses
 * fwd_params, fwd_tile_of, visible-range logic and ex2 there, and the wgmma / mbarrier / TMA /
 * setmaxnreg primitives of sm90.cuh); the kernel body is compiled for sm_90a only and the host
 * launches it only where the sm_90a build is loaded.
 *
 * Block = 1 producer warpgroup + NCWG consumer warpgroups, one block per SM, persistent: block
 * p serves the query tiles p, p + grid, p + 2*grid, ... in fwd_tile_of's order (heads fastest),
 * or with DYN (attn10) tile p first and then whichever tile a per-launch global counter hands
 * out next (the producer asks one query tile ahead and passes the index to the consumers in
 * shared memory with the Q buffer; an index >= ntiles, on a fullQ arrival without a copy, ends
 * the block; the last block to finish resets the counter). DYN balances dense causal attention,
 * whose tiles see 1 .. L/BN key tiles (H100: 17.1 vs 18.4 ms at L = 64K); for windows, whose
 * tiles are alike, it changed nothing (the W = 4096 slowdown from 128K to 1M tokens is the
 * power cap's clock, not a drift of the blocks apart: results/notes-attn10.md).
 *   producer   one thread issues bulk tensor copies (TMA, 128-byte swizzle, which is the layout
 *              the wgmma descriptors read): the Q tile (BM = 64*NCWG rows, two buffers) and the
 *              K and V tiles (BN keys) of every key tile the query tile sees, into a ring of
 *              STAGES slots. Each copy completes on an mbarrier (fullQ, fullK, fullV); the
 *              producer reuses a slot once every consumer warp has arrived on its empty barrier.
 *              setmaxnreg gives most of its registers to the consumers.
 *   consumers  warpgroup w owns query rows r0 = q0 + 64w .. +63 and computes only the key tiles
 *              that those rows see (W = 512, BM = 192, BN = 64: the block streams 11 key tiles,
 *              each warpgroup computes 9 of them, so the work wasted at the window's two edges is
 *              that of a 64-row tile while K and V are loaded once per 192 rows); it passes over
 *              the others (waits for the slot to be filled, then releases it). Per key tile j:
 *                S_j = Q K_j^T         (wgmma; K from shared memory, Q too or, with QR, from
 *                                       registers, which halves the shared-memory bytes the
 *                                       MMA reads at BN = 64)                     issued first,
 *                O  += P_{j-1} V_{j-1} (wgmma, P from registers)                 issued second,
 *                softmax of S_j (masks only on tiles that cut the diagonal, the window's lower
 *                edge or the end of the sequence, in int32 relative to the tile) while
 *                P_{j-1} V_{j-1} still runs, then O *= alpha_j and P_j = bf16(exp2(S_j - m_j)).
 *              The warpgroups take turns issuing their MMAs (named barriers), so one
 *              warpgroup's softmax runs while the others' MMAs do, in a fixed order.
 *              I32: positions and tile indices in int32 (fewer registers: 0 spills at 160).
 * Layouts: Q, K, V, O, lse as in attention.h; tensor maps view q as [B][Lq][HQ][64] and k, v as
 * [B][L][H][64] (4-D, innermost first), so rows past Lq or L arrive as zeros.
 * Tuning runs (results/notes-attn.md): turns +10-20%, QR +5-10% at BN = 64, 3 consumer
 * warpgroups beat 2 (attn3). Tried and dropped (slower on the H100 although they issue fewer
 * instructions or fewer SFU ops): a quarter (attn3), an eighth or a quarter (attn8) of the exp2
 * as a cubic on the FMA pipe; a lazy rescale that moves the running max only when it grows by
 * more than 2^8 (attn8: no O rescale on most tiles, but a warp vote and branches per tile); the
 * row sums of P on the tensor cores (attn8: P times a block of ones in an m64n8k16 wgmma per k16
 * step instead of one add per score; no faster). */

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* a descriptor moved by `off` 16-byte units: the start-address field is the low 14 bits and
 * every operand here lies inside shared memory, so a 32-bit add of the low word never carries
 * (the descriptors are built once per slot and stepped, not rebuilt from the address per MMA:
 * that cost ~5 uniform-datapath instructions per wgmma, ~100 issue slots per 128-key tile) */
__device__ __forceinline__ uint64_t ws_desc_add(uint64_t d, uint32_t off) {
    return (d & 0xFFFFFFFF00000000ull) | (uint32_t)((uint32_t)d + off);
}
/* S (64 x BN, this warpgroup's rows) = Q K^T over dh 64: four k16 steps inside the swizzled rows. */
template <int BN>
__device__ __forceinline__ void ws_qk(float *S, uint64_t dq, uint64_t dk) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const uint64_t da = ws_desc_add(dq, kk * 2), db = ws_desc_add(dk, kk * 2);
        if constexpr (BN == 128) sm90::ss_n128(S, da, db, kk > 0);
        else sm90::ss_n64(S, da, db, kk > 0);
    }
}
/* The same with Q from registers (qf[kk]: the A fragment of columns 16kk .. 16kk+15): the MMA
 * then reads only K from shared memory, half the bytes of the form above at BN = 64. */
template <int BN>
__device__ __forceinline__ void ws_qk_r(float *S, const uint32_t (*qf)[4], uint64_t dk) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        const uint64_t db = ws_desc_add(dk, kk * 2);
        if constexpr (BN == 128) sm90::rs_n128<0>(S, qf[kk], db, kk > 0);
        else sm90::rs_n64<0>(S, qf[kk], db, kk > 0);
    }
}
/* O (64 x 64) += P V with P (64 x BN) from registers and V [BN keys][64] MN-major. */
template <int BN>
__device__ __forceinline__ void ws_pv(float *acc, const uint32_t (*pa)[4], uint64_t dv) {
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) sm90::rs_n64<1>(acc, pa[kk], ws_desc_add(dv, kk * 16 * 128 / 16), 1);
}
#endif

/* Shared-memory bytes of one block (1024 of slack to align the swizzle atoms). */
template <int BN, int NCWG, int STAGES>
constexpr size_t ws_smem_bytes() {
    return 1024 + 2 * (size_t)NCWG * 64 * 128 + 2 * (size_t)STAGES * BN * 128 + (4 + 3 * STAGES) * 8 + 2 * 8;
}

template <int BN, int NCWG, int STAGES, int QR, int I32 = 0, int DYN = 0>
__global__ void __launch_bounds__((NCWG + 1) * 128, 1)
    attn_fwd_ws_kernel(const fwd_params p, const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
                       const __grid_constant__ CUtensorMap tv, const int64_t ntiles, unsigned long long *sched) {
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
    /* DYN: the tile index of Q buffer s (written by the producer before the buffer's fullQ arrival) */
    volatile int64_t *sIdx = reinterpret_cast<volatile int64_t *>(sV + STAGES * KVBYTES + (4 + 3 * STAGES) * 8);

    const int tid = threadIdx.x, wg = tid / 128, warp = (tid % 128) / 32, lane = tid % 32, g = lane / 4, tg = lane % 4;
    if (tid == 0) {
        for (int i = 0; i < 2; i++) {
            sm90::mbar_init(b_fullQ + 8 * i, 1);
            sm90::mbar_init(b_emptyQ + 8 * i, 4 * NCWG); /* lane 0 of every consumer warp */
        }
        for (int s = 0; s < STAGES; s++) {
            sm90::mbar_init(b_fullK + 8 * s, 1);
            sm90::mbar_init(b_fullV + 8 * s, 1);
            sm90::mbar_init(b_empty + 8 * s, 4 * NCWG);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    /* I32 (attn5): positions and tile indices as int32 (the host runs it only below 2^30): fewer
     * registers for the bookkeeping, for the 3-warpgroup 128-key form that spilled */
    using pos_t = typename std::conditional<I32 != 0, int, int64_t>::type;
    if (wg == 0) { /* ------------------------------------------------------------ producer */
        sm90::setmaxnreg_dec<PROD_REGS>();
        if (warp == 0 && lane == 0) {
            uint32_t it = 0, tc = 0; /* key tiles and query tiles issued so far */
            /* DYN: the first tile is blockIdx.x, later ones come from the launch's counter (offset by
             * the grid), so the blocks stay together along the sequence; the tile after the last is
             * handed to the consumers as an index >= ntiles on a fullQ arrival without a copy */
            int64_t nxt = blockIdx.x;
            for (pos_t idx = blockIdx.x; DYN || idx < (pos_t)ntiles; idx += gridDim.x, tc++) {
                const uint32_t qs = tc & 1;
                if constexpr (DYN != 0) {
                    idx = (pos_t)nxt;
                    sm90::mbar_wait(b_emptyQ + 8 * qs, ((tc >> 1) & 1) ^ 1);
                    sIdx[qs] = nxt;
                    if (nxt >= ntiles) {
                        sm90::mbar_arrive(b_fullQ + 8 * qs);
                        break;
                    }
                    /* asked for now, needed one query tile later: the atomic's latency hides
                     * under this tile's loads */
                    nxt = (int64_t)gridDim.x + (int64_t)atomicAdd(sched, 1ull);
                }
                const fwd_tile<D> t = fwd_tile_of<D>(p, BM, idx);
                const int h = (int)(t.a / (p.HQ / p.H)), b = (int)t.b;
                if constexpr (DYN == 0) sm90::mbar_wait(b_emptyQ + 8 * qs, ((tc >> 1) & 1) ^ 1);
                sm90::mbar_expect_tx(b_fullQ + 8 * qs, QBYTES);
                sm90::tma_load_4d(smem_u32(sQ + qs * QBYTES), &tq, 0, (int)t.a, (int)t.i0, b, b_fullQ + 8 * qs);
                for (pos_t j = (pos_t)(t.kstart / BN); j <= (pos_t)((t.kend - 1) / BN); j++, it++) {
                    const uint32_t s = it % STAGES;
                    sm90::mbar_wait(b_empty + 8 * s, ((it / STAGES) & 1) ^ 1);
                    sm90::mbar_expect_tx(b_fullK + 8 * s, KVBYTES);
                    sm90::tma_load_4d(smem_u32(sK + s * KVBYTES), &tk, 0, h, (int)(j * BN), b, b_fullK + 8 * s);
                    sm90::mbar_expect_tx(b_fullV + 8 * s, KVBYTES);
                    sm90::tma_load_4d(smem_u32(sV + s * KVBYTES), &tv, 0, h, (int)(j * BN), b, b_fullV + 8 * s);
                }
            }
            if constexpr (DYN != 0) { /* the last block to finish resets the counter for the next launch */
                __threadfence();
                if (atomicAdd(sched + 1, 1ull) == gridDim.x - 1) {
                    sched[0] = 0;
                    sched[1] = 0;
                    __threadfence();
                }
            }
        }
        return;
    }

    /* ----------------------------------------------------------------------------- consumers */
    sm90::setmaxnreg_inc<CONS_REGS>();
    const int cw = wg - 1;
    const pos_t L = (pos_t)p.L, Lq = (pos_t)p.Lq, W = (pos_t)p.W;
    /* window width for the int32 mask test: dense causal = no lower edge */
    const int Wm = (p.causal && W > 0) ? (int)min((int64_t)W, (int64_t)1 << 30) : 1 << 30;
    /* descriptors of slot 0 (K, V) and of this warpgroup's rows in Q buffer 0; a slot or buffer s
     * is s * bytes / 16 further */
    const uint64_t dK0 = sm90::desc_k(smem_u32(sK)), dV0 = sm90::desc_mn(smem_u32(sV));
    const uint64_t dQ0 = sm90::desc_k(smem_u32(sQ) + cw * 64 * 128);
    /* key tiles consumed so far (ring slot it % STAGES, phase (it / STAGES) & 1: a power-of-two
     * STAGES makes both one instruction) and query tiles */
    uint32_t it = 0, tc = 0;
    /* turns: the consumer warpgroups take turns issuing their MMAs (named barrier 1 + w is
     * warpgroup w's turn; the previous one opens it), so one warpgroup's softmax runs while the
     * next one's MMAs do. Every warpgroup takes one turn per key tile of the block, computed
     * or not, so the turns stay in step; the last warpgroup opens the first turn. The next
     * warpgroup's barrier is derived from this one's inside the asm (one register less across
     * the key loop than two ids). */
    const uint32_t turn_id = 1 + cw;
    auto turn_begin = [&]() { asm volatile("bar.sync %0, 256;\n" ::"r"(turn_id) : "memory"); };
    auto turn_end = [&]() {
        asm volatile("{\n.reg .pred p;\n.reg .u32 t;\nsetp.eq.u32 p, %0, %1;\nadd.u32 t, %0, 1;\n"
                     "selp.u32 t, 1, t, p;\nbar.arrive t, 256;\n}\n" ::"r"(turn_id), "n"(NCWG) : "memory");
    };
    if (cw == NCWG - 1) asm volatile("bar.arrive 1, 256;\n" ::: "memory");

    for (pos_t idx = blockIdx.x; DYN || idx < (pos_t)ntiles; idx += gridDim.x, tc++) {
        const uint32_t qs = tc & 1;
        if constexpr (DYN != 0) { /* the tile comes with its Q buffer */
            sm90::mbar_wait(b_fullQ + 8 * qs, (tc >> 1) & 1);
            idx = (pos_t)sIdx[qs];
            if (idx >= (pos_t)ntiles) break;
        }
        const fwd_tile<D> t = fwd_tile_of<D>(p, BM, idx);
        const pos_t j0 = (pos_t)t.kstart / BN;
        const int nt = (int)((t.kend - 1) / BN - j0 + 1);
        /* this warpgroup's rows and the key tiles (0 .. nt-1 of the block's) they see */
        const pos_t r0 = (pos_t)t.q0 + 64 * cw, rlast = min(r0 + 63, (pos_t)t.qlast);
        int jlo = nt, jhi = -1;
        if (r0 <= (pos_t)t.qlast) {
            const pos_t ks = (p.causal && W > 0) ? max(r0 - W, (pos_t)0) : 0, ke = p.causal ? rlast + 1 : L;
            jlo = (int)(ks / BN - j0);
            jhi = (int)((ke - 1) / BN - j0);
        }
        const uint64_t dq = ws_desc_add(dQ0, qs * (QBYTES / 16));
        const pos_t row_base = r0 + warp * 16 + g;
        if constexpr (DYN == 0) sm90::mbar_wait(b_fullQ + 8 * qs, (tc >> 1) & 1);
        uint32_t qf[4][4]; /* QR: Q in registers (A fragments), the Q buffer is free at once */
        if constexpr (QR) {
            const unsigned char *qw = sQ + qs * QBYTES + cw * 64 * 128;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) ldsm_x4(qf[kk], qw + sm90::sw128(warp * 16 + lane % 16, 2 * kk + lane / 16));
            if (lane == 0) sm90::mbar_arrive(b_emptyQ + 8 * qs);
        }

        float acc[32], S[BN / 2], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
        uint32_t pa[BN / 16][4];
#pragma unroll
        for (int i = 0; i < 32; i++) acc[i] = 0.f;

        /* mask (only tiles that cut the diagonal, the window's lower edge or the end of the
         * sequence) and online softmax: S becomes exp2(S*scale - m_new) in place, alpha[r] the
         * factor for the older partial sums, sum[r] this tile's row sums (partial over the quad) */
        auto softmax = [&](int j, float alpha[2], float sum[2]) {
            const pos_t k0 = (j0 + j) * BN;
            if (k0 + BN > L || (p.causal && (k0 + BN - 1 > r0 || (W > 0 && k0 < rlast - W)))) {
                /* in int32, relative to the tile: d = row - col for col = 8i + (e&1) + 2tg;
                 * rows past Lq see what the last stored row sees (they are never written) */
                const int lim = (int)min(L - k0, (pos_t)BN) - 2 * tg;
                int d[2];
#pragma unroll
                for (int r = 0; r < 2; r++) d[r] = (int)(min(row_base + 8 * r, rlast) - k0) - 2 * tg;
#pragma unroll
                for (int i = 0; i < BN / 8; i++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int c = 8 * i + (e & 1), dd = d[e >> 1] - c;
                        if (c >= lim || (p.causal && (dd < 0 || dd > Wm))) S[4 * i + e] = -INFINITY;
                    }
            }
#pragma unroll
            for (int r = 0; r < 2; r++) alpha[r] = wg_softmax_row<BN>(S, m[r], r, p.scale_log2, sum[r]);
        };
        auto pv_done = [&](uint32_t vslot) { /* P V of `vslot` finished: keep its registers, free the slot */
#pragma unroll
            for (int i = 0; i < 32; i++) sm90::reg_fence(acc[i]);
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++)
#pragma unroll
                for (int c = 0; c < 4; c++) sm90::reg_fence(pa[kk][c]);
            if (lane == 0) sm90::mbar_arrive(b_empty + 8 * vslot);
        };

        auto pack_p = [&]() {
            wg_pack_p<BN>(pa, S);
        };
        auto issue_qk = [&]() {
            const uint32_t slot = it % STAGES;
            sm90::mbar_wait(b_fullK + 8 * slot, (it / STAGES) & 1);
            sm90::fence();
            if constexpr (QR) ws_qk_r<BN>(S, qf, ws_desc_add(dK0, slot * (KVBYTES / 16)));
            else ws_qk<BN>(S, dq, ws_desc_add(dK0, slot * (KVBYTES / 16)));
            sm90::commit();
        };
        auto issue_pv = [&](uint32_t vit) {
            const uint32_t vslot = vit % STAGES;
            sm90::mbar_wait(b_fullV + 8 * vslot, (vit / STAGES) & 1);
            sm90::fence();
            ws_pv<BN>(acc, pa, ws_desc_add(dV0, vslot * (KVBYTES / 16)));
            sm90::commit();
        };
        auto s_done = [&]() { /* S is in registers (and Q's registers were read) */
#pragma unroll
            for (int i = 0; i < BN / 2; i++) sm90::reg_fence(S[i]);
            if constexpr (QR)
#pragma unroll
                for (int kk = 0; kk < 4; kk++)
#pragma unroll
                    for (int c = 0; c < 4; c++) sm90::reg_fence(qf[kk][c]);
        };
        /* a key tile of the block this warpgroup does not compute: wait until its slot is filled
         * (so the arrivals stay in phase), free it, and take the turn all the same */
        auto pass = [&]() {
            turn_begin();
            sm90::mbar_wait(b_fullK + 8 * (it % STAGES), (it / STAGES) & 1);
            if (lane == 0) sm90::mbar_arrive(b_empty + 8 * (it % STAGES));
            turn_end();
            it++;
        };

        int j = 0;
        for (; j < jlo; j++) pass();
        if (jlo <= jhi) {
            /* first tile: S, softmax, P (nothing to overlap with yet) */
            float alpha[2], sum[2];
            turn_begin();
            issue_qk();
            turn_end();
            sm90::wait<0>();
            s_done();
            softmax(j, alpha, sum);
            l[0] = sum[0], l[1] = sum[1];
            pack_p();
            it++; /* it - 1: the slot whose V the pending P multiplies */
            /* then per tile: issue S_j = Q K_j^T and O += P_{j-1} V_{j-1}; softmax of S_j while
             * the second runs; O *= alpha, P_j = bf16(exp2(S_j - m)) */
            for (j++; j <= jhi; j++) {
                turn_begin();
                issue_qk();
                issue_pv(it - 1);
                turn_end();
                sm90::wait<1>();
                s_done();
                softmax(j, alpha, sum);
                sm90::wait<0>();
                pv_done((it - 1) % STAGES);
#pragma unroll
                for (int r = 0; r < 2; r++) {
#pragma unroll
                    for (int i = 0; i < 8; i++) {
                        acc[4 * i + 2 * r] *= alpha[r];
                        acc[4 * i + 2 * r + 1] *= alpha[r];
                    }
                    l[r] = l[r] * alpha[r] + sum[r];
                }
                pack_p();
                it++;
            }
            /* the last tile's P V */
            issue_pv(it - 1);
            sm90::wait<0>();
            pv_done((it - 1) % STAGES);
        }
        if (!QR && lane == 0) sm90::mbar_arrive(b_emptyQ + 8 * qs); /* every S of this tile is done */
        for (; j < nt; j++) pass();

        /* I32: the batch and head again from idx (opaque to the compiler), so they need no
         * registers across the key loop */
        int64_t ta = t.a, tb = t.b;
        if constexpr (I32 != 0) {
            pos_t idx2 = idx;
            asm volatile("" : "+r"(idx2));
            ta = idx2 % p.HQ;
            tb = idx2 / p.HQ / p.nqb;
        }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float sum = l[r];
            sum += __shfl_xor_sync(0xffffffff, sum, 1);
            sum += __shfl_xor_sync(0xffffffff, sum, 2);
            const float inv = sum > 0.f ? 1.f / sum : 0.f;
            const int64_t row = (int64_t)row_base - p.p0 + r * 8; /* query row */
            if (row < Lq) {
                bf16 *orow = p.o + ((tb * Lq + row) * p.HQ + ta) * D;
#pragma unroll
                for (int i = 0; i < 8; i++)
                    *reinterpret_cast<uint32_t *>(orow + i * 8 + 2 * tg) =
                        pack_bf16(acc[4 * i + 2 * r] * inv, acc[4 * i + 2 * r + 1] * inv);
                if (tg == 0)
                    p.lse[(tb * p.HQ + ta) * Lq + row] =
                        sum > 0.f ? (m[r] + log2f(sum)) * 0.69314718055994531f : -INFINITY;
            }
        }
    }
    if (cw == 0) asm volatile("bar.sync 1, 256;\n" ::: "memory"); /* the last turn's opening */
#endif
}
