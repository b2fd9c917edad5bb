/* hsa_attend_fwd.cuh — chunk-attention forward, producer/consumer version (included by hsa.cu).
 *
 * Used when G is a multiple of 16 and S, dh <= 64 (the benchmark shape G = 16, S = dh = 64); other
 * shapes and the backward's dq pass use attend_tok_kernel (hsa_attend.cuh). Math and layouts as
 * there: per token t, KV head h, query head a = h*G + g, slot k on chunk c:
 *   s = q K_c^T scale, p = exp(s - m) (m includes the null logit 0 of softmax1), l = sum p (+e^-m),
 *   o[t, a] += (w_k / l) p V_c,  lse[t, a, k] = m + log l.
 *
 * Work split. A 16-row mma tile is (token, 16 query heads); a CTA owns NTILE = 2*NCW tiles, i.e.
 * MT = NTILE / (G/16) adjacent tokens; each of its NCW consumer warps owns TWO tiles (usually two
 * adjacent tokens) and one producer warp feeds them:
 *  - The union of the MT tokens' chunk lists (each sorted by chunk id descending) is built once
 *    (one lane per token, warp max-merge) with, per union chunk, the bit mask of the tokens that
 *    selected it. Each distinct chunk is read from memory ONCE per CTA.
 *  - The producer warp streams the union's chunks (K and V, cp.async) into a ring of NS shared
 *    memory slots. Slot hand-off uses mbarriers: full[s] completes when the producer lanes' copies
 *    land (cp.async.mbarrier.arrive.noinc); empty[s] completes when every consumer warp that
 *    selected the chunk has used it. Warps that did not select it are counted for by the producer
 *    (one arrive with count NCW - users), so a consumer only ever waits for its OWN chunks: no CTA
 *    barrier per chunk, warps that skip a chunk run ahead (up to NS chunks). Because a consumer
 *    does not observe the phases of chunks it skips, tag[s] (the union position last issued into
 *    slot s) tells it that the full barrier's parity refers to its chunk.
 *  - A consumer warp walks the union in order; for a chunk that one of its two tiles selected it
 *    loads each K/V B-fragment from shared memory once and feeds it to the mma of both tiles (when
 *    both selected it: adjacent tokens mostly do), halving shared-memory reads per FLOP against
 *    one tile per warp; a tile that did not select the chunk skips its mma.
 * Deadlock-free: every token list is a subsequence of the union order, so the chunk a consumer
 * waits for has been issued, and the slot the producer waits for is held only by consumers that
 * are earlier in their lists.
 */
#ifndef LONGCTX_HSA_ATTEND_FWD_CUH
#define LONGCTX_HSA_ATTEND_FWD_CUH

#include "hsa_attend.cuh"
#include "hsa_mma.cuh"

namespace hsa_fwd {

using namespace hsa_mma;
using hsa_attend::tok_params;
typedef __nv_bfloat16 bf16;

/* ---- mbarrier helpers (sm_90 PTX: try_wait.parity and arrive with a count) ---- */
__device__ __forceinline__ void mbar_init(uint64_t *bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t *bar, uint32_t parity) {
    uint32_t ok = 0;
    do {
        asm volatile(
            "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(ok)
            : "r"(smem_u32(bar)), "r"(parity)
            : "memory");
    } while (!ok);
}
__device__ __forceinline__ void mbar_arrive(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ void mbar_arrive_cnt(uint64_t *bar, uint32_t n) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(n) : "memory");
}
/* the barrier completes (one of its expected arrivals) when this thread's earlier cp.async land */
__device__ __forceinline__ void mbar_cp_async_arrive(uint64_t *bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}

/* Warp 0: the union of the block's per-token chunk lists (each sorted descending, nv_s[j] valid
 * entries of row j of idx_s, K per row), most recent first: U[n] = chunk, Um[n] = mask of the
 * tokens (lanes) that selected it. Lane 0 writes the count to *nU. */
__device__ __forceinline__ void chunk_union(const int *idx_s, const int *nv_s, int K, int MT, int lane, int *U, uint32_t *Um,
                                            int *nU) {
    int ptr = 0, n = 0;
    const int nv = lane < MT ? nv_s[lane] : 0;
    for (;;) {
        const int head = ptr < nv ? idx_s[lane * K + ptr] : -1;
        const int c = __reduce_max_sync(0xffffffffu, head);
        if (c < 0) break;
        const uint32_t m = __ballot_sync(0xffffffffu, head == c);
        if (head == c) ptr++;
        if (lane == 0) U[n] = c, Um[n] = m;
        n++;
    }
    if (lane == 0) *nU = n;
}

/* Thread 0: the slot ring's barriers (full: the producer's 32 lanes; empty: the NCW consumer
 * warps) and tags (no chunk issued yet). */
__device__ __forceinline__ void ring_init(uint64_t *full, uint64_t *empty, volatile int *tag, int NS, int NCW) {
    for (int s = 0; s < NS; s++) {
        mbar_init(full + s, 32);
        mbar_init(empty + s, NCW);
        tag[s] = -1;
    }
}

/* The block's chunk lists (cp.async; the caller commits and waits): for each of its MT tokens
 * t0 + j, nv_s[j] = the valid slots (min(K, visible chunks); 0 past Lq) and rows j of idx_s / w_s
 * (idx -1, w 0 in the invalid slots). FWD_LSE (the forward): lse = -inf in the invalid slots. */
template <bool FWD_LSE>
__device__ __forceinline__ void token_lists(const tok_params &p, int64_t t0, int MT, int K, int G, int64_t b, int64_t h,
                                            int64_t hr, int *idx_s, float *w_s, int *nv_s) {
    for (int e = threadIdx.x; e < MT * K; e += blockDim.x) {
        const int j = e / K, kk = e % K;
        const int64_t t = t0 + j;
        int nv = 0;
        if (t < p.Lq) {
            const int64_t n = hsa_attend::num_visible((p.p0 + t) / p.block_q, p.S, p.block_q, p.C);
            nv = (int)(n < p.K ? n : p.K);
        }
        if (kk == 0) nv_s[j] = nv;
        if (kk < nv) {
            const int64_t off = ((b * p.Lr + t / p.block_q) * p.Hr + hr) * p.K + kk;
            cp_async4(idx_s + e, p.idx + off);
            cp_async4(w_s + e, p.w + off);
        } else {
            idx_s[e] = -1;
            w_s[e] = 0.f;
            if (FWD_LSE && t < p.Lq && p.lse)
                for (int a = 0; a < G; a++) p.lse[((b * p.Lq + t) * p.HQ + h * G + a) * p.K + kk] = -INFINITY;
        }
    }
}

/* The producer warp's copies of one chunk's S rows of K and V (row stride H*DH in global memory)
 * into a ring slot (row stride LD), 16 bytes per cp.async. */
template <int S, int DH, int LD>
__device__ __forceinline__ void chunk_copy(bf16 *Kd, bf16 *Vd, const bf16 *kg, const bf16 *vg, int64_t H, int lane) {
    constexpr int SEG = DH / 8;
#pragma unroll 4
    for (int e = lane; e < S * SEG; e += 32) {
        const int r = e / SEG, sg = e % SEG;
        cp_async16(Kd + r * LD + sg * 8, kg + (int64_t)r * H * DH + sg * 8);
        cp_async16(Vd + r * LD + sg * 8, vg + (int64_t)r * H * DH + sg * 8);
    }
}

template <int S, int DH, int NCW, int TPW>
struct fwd_smem {
    static constexpr int LD = DH + 8; /* padded row: conflict-free ldmatrix */
    static constexpr int NTILE = TPW * NCW;
    static constexpr size_t slot_bytes = (size_t)2 * S * LD * sizeof(bf16);
    static constexpr size_t q_bytes = (size_t)NTILE * 16 * LD * sizeof(bf16);
    /* idx, w, union ids, union masks (MT*K each), nv (MT) */
    static size_t list_bytes(int MT, int K) { return (size_t)MT * K * 16 + (size_t)MT * 4 + 16; }
    /* full[ns], empty[ns] (8 bytes each), tag[ns] (int), rounded up to 16 bytes */
    __host__ __device__ static size_t bar_bytes(int ns) { return ((size_t)2 * ns * 8 + (size_t)ns * 4 + 15) & ~(size_t)15; }
    static int stages(int MT, int K, size_t budget) {
        size_t rest = q_bytes + list_bytes(MT, K) + 256;
        int ns = 8;
        while (ns > 2 && rest + bar_bytes(ns) + ns * slot_bytes > budget) ns--;
        return ns;
    }
    static size_t bytes(int MT, int K, int ns) { return bar_bytes(ns) + ns * slot_bytes + q_bytes + list_bytes(MT, K); }
};

/* blockDim = 32 * (NCW + 1): warps 0..NCW-1 consume (TPW tiles each), warp NCW produces.
 * Registers: an SM sub-partition holds 16K of them, so 8 warps per CTA (one CTA per SM) allow
 * ~255 per thread (TPW = 2 needs ~193), 16 warps 128 (TPW = 1). */
template <int S, int DH, int NCW, int TPW>
/* plain_arrive (debug, LONGCTX_HSA_FWD_SYNC=plain): each producer lane waits for its own copies
 * (cp.async.wait_group) and arrives on full[s] with an ordinary mbarrier.arrive, instead of
 * cp.async.mbarrier.arrive.noinc; same protocol, slower, kept to tell tool artefacts from races
 * under compute-sanitizer racecheck. */
__global__ void __launch_bounds__(32 * (NCW + 1), NCW <= 3 ? 2 : 1) attend_fwd_kernel(const tok_params p, const int NS,
                                                                                      const int plain_arrive) {
    typedef fwd_smem<S, DH, NCW, TPW> SM;
    constexpr int LD = SM::LD;
    constexpr int NTILE = SM::NTILE;
    constexpr int NT = S / 8;   /* n8 tiles of scores */
    constexpr int KD = DH / 16; /* k16 steps over dh */
    constexpr int ND = DH / 8;  /* n8 tiles of the output */
    constexpr int SEG = DH / 8; /* 16-byte segments per row */
    extern __shared__ __align__(16) unsigned char smem[];
    const int K = (int)p.K, G = (int)p.G, GT = G / 16, MT = p.MT;
    uint64_t *full = reinterpret_cast<uint64_t *>(smem);
    uint64_t *empty = full + NS;
    volatile int *tag = reinterpret_cast<volatile int *>(empty + NS); /* chunk (union position) last issued into each slot */
    bf16 *KVs = reinterpret_cast<bf16 *>(smem + SM::bar_bytes(NS)); /* slot s: K at s*2*S*LD, V after */
    bf16 *Qs = KVs + (size_t)NS * 2 * S * LD;                        /* [NTILE][16][LD] */
    int *idx_s = reinterpret_cast<int *>(Qs + (size_t)NTILE * 16 * LD);
    float *w_s = reinterpret_cast<float *>(idx_s + MT * K);
    int *U = reinterpret_cast<int *>(w_s + MT * K);
    uint32_t *Um = reinterpret_cast<uint32_t *>(U + MT * K);
    int *nv_s = reinterpret_cast<int *>(Um + MT * K);
    __shared__ int nU_s;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g8 = lane >> 2, tig = lane & 3;
    const int64_t b = blockIdx.z, h = blockIdx.y;
    const int64_t hr = p.Hr == 1 ? 0 : h;
    const int64_t t0 = (int64_t)blockIdx.x * MT;

    if (threadIdx.x == 0) ring_init(full, empty, tag, NS, NCW);
    /* q rows of the block: tile = j*GT + hg holds heads hg*16 .. +15 of token j; zeros past the end */
    for (int e = threadIdx.x; e < NTILE * 16 * SEG; e += blockDim.x) {
        const int r = e / SEG, sg = e % SEG, tile = r / 16, j = tile / GT, a = (tile % GT) * 16 + r % 16;
        const int64_t t = t0 + j;
        if (j < MT && t < p.Lq)
            cp_async16(Qs + r * LD + sg * 8, p.q + ((b * p.Lq + t) * p.HQ + h * G + a) * DH + sg * 8);
        else
            *reinterpret_cast<uint4 *>(Qs + r * LD + sg * 8) = make_uint4(0, 0, 0, 0);
    }
    token_lists<true>(p, t0, MT, K, G, b, h, hr, idx_s, w_s, nv_s);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (warp == 0) chunk_union(idx_s, nv_s, K, MT, lane, U, Um, &nU_s);
    __syncthreads();
    const int nU = nU_s;

    if (warp == NCW) { /* ---- producer ---- */
        for (int u = 0; u < nU; u++) {
            const int s = u % NS;
            if (u >= NS) mbar_wait(empty + s, (uint32_t)((u / NS - 1) & 1));
            if (lane == 0) tag[s] = u; /* slot s now holds (or is loading) chunk u: full is in phase u/NS */
            const int64_t c = U[u];
            const bf16 *kg = p.k + ((b * p.L + c * S) * p.H + h) * DH;
            const bf16 *vg = p.v + ((b * p.L + c * S) * p.H + h) * DH;
            bf16 *Kd = KVs + (size_t)s * 2 * S * LD, *Vd = Kd + S * LD;
            chunk_copy<S, DH, LD>(Kd, Vd, kg, vg, p.H, lane);
            if (plain_arrive) {
                cp_async_commit();
                cp_async_wait<0>();
                mbar_arrive(full + s);
            } else {
                mbar_cp_async_arrive(full + s);
            }
            if (lane == 0) { /* arrive for the consumer warps that will not use this chunk */
                const uint32_t m = Um[u];
                int users = 0;
                for (int w = 0; w < NCW; w++) {
                    uint32_t any = 0;
                    for (int x = 0; x < TPW; x++) any |= m >> ((TPW * w + x) / GT);
                    users += any & 1u;
                }
                if (users < NCW) mbar_arrive_cnt(empty + s, (uint32_t)(NCW - users));
            }
        }
        cp_async_wait<0>();
        return;
    }

    /* ---- consumers: warp owns tiles TPW*warp .. TPW*warp + TPW-1 ---- */
    int jt[TPW], hg[TPW], ptr[TPW];
    bool tok_ok[TPW];
#pragma unroll
    for (int x = 0; x < TPW; x++) {
        const int tile = TPW * warp + x;
        jt[x] = tile / GT;
        hg[x] = tile % GT;
        ptr[x] = 0;
        tok_ok[x] = jt[x] < MT && t0 + jt[x] < p.Lq;
    }
    float acc[TPW][ND][4];
#pragma unroll
    for (int x = 0; x < TPW; x++)
#pragma unroll
        for (int nd = 0; nd < ND; nd++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[x][nd][e] = 0.f;
    const float sl2 = p.scale * 1.4426950408889634f;

    for (int u = 0; u < nU; u++) {
        const uint32_t m = Um[u];
        bool sel[TPW], any = false;
#pragma unroll
        for (int x = 0; x < TPW; x++) {
            sel[x] = tok_ok[x] && ((m >> jt[x]) & 1u);
            any |= sel[x];
        }
        if (!any) continue;
        const int s = u % NS;
        /* A consumer may skip the slot's previous chunk, so the parity alone could name an older
         * phase: first wait until the producer has issued chunk u (then the slot's full barrier is in
         * phase u/NS or has just completed it, and cannot pass it before this warp releases u). */
        /* (a polled flag: racecheck reports it as a hazard. Shared atomics instead (atomicExch /
         * atomicAdd(0)) silence it but made the t15 forward 13-15% slower in the H100 run of
         * 7283cdd, so the flag stays volatile.) */
        while (tag[s] < u) __nanosleep(32);
        mbar_wait(full + s, (uint32_t)((u / NS) & 1));
        const bf16 *Kt = KVs + (size_t)s * 2 * S * LD, *Vt = Kt + S * LD;

        /* scores of both tiles; each K fragment is read once */
        float sc[TPW][NT][4];
#pragma unroll
        for (int x = 0; x < TPW; x++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) sc[x][nt][e] = 0.f;
#pragma unroll
        for (int kd = 0; kd < KD; kd++) {
            uint32_t qa[TPW][4];
#pragma unroll
            for (int x = 0; x < TPW; x++)
                if (sel[x]) lds_a(qa[x], Qs + (size_t)(TPW * warp + x) * 16 * LD, LD, 0, kd * 16, lane);
#pragma unroll
            for (int np = 0; np < NT / 2; np++) {
                uint32_t bk[4];
                lds_b_nk(bk, Kt, LD, np * 16, kd * 16, lane);
#pragma unroll
                for (int x = 0; x < TPW; x++)
                    if (sel[x]) {
                        mma16816(sc[x][2 * np], qa[x], bk[0], bk[1]);
                        mma16816(sc[x][2 * np + 1], qa[x], bk[2], bk[3]);
                    }
            }
        }
        /* chunk softmax per row (4 lanes of a quad share a row) */
        float fac[TPW][2];
#pragma unroll
        for (int x = 0; x < TPW; x++) {
            fac[x][0] = fac[x][1] = 0.f;
            if (!sel[x]) continue;
            const int slot = ptr[x]++;
            const float wv = w_s[jt[x] * K + slot];
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                float mx = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < NT; nt++) mx = fmaxf(mx, fmaxf(sc[x][nt][2 * hh], sc[x][nt][2 * hh + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                float m2 = mx * sl2; /* log2 units */
                if (p.softmax1) m2 = fmaxf(m2, 0.f);
                float l = 0.f;
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const float pv = exp2f(fmaf(sc[x][nt][2 * hh + e], sl2, -m2));
                        sc[x][nt][2 * hh + e] = pv;
                        l += pv;
                    }
                l += __shfl_xor_sync(0xffffffffu, l, 1);
                l += __shfl_xor_sync(0xffffffffu, l, 2);
                if (p.softmax1) l += exp2f(-m2);
                fac[x][hh] = __fdividef(wv, l);
                if (tig == 0 && p.lse) {
                    const int64_t tok = t0 + jt[x];
                    const int a = hg[x] * 16 + g8 + hh * 8;
                    p.lse[((b * p.Lq + tok) * p.HQ + h * G + a) * p.K + slot] = (m2 + __log2f(l)) * 0.6931471805599453f;
                }
            }
        }
        /* acc += (fac p) V ; each V fragment is read once */
#pragma unroll
        for (int ks = 0; ks < S / 16; ks++) {
            uint32_t pa[TPW][4];
#pragma unroll
            for (int x = 0; x < TPW; x++)
                if (sel[x]) {
                    pa[x][0] = pack_bf16(sc[x][2 * ks][0] * fac[x][0], sc[x][2 * ks][1] * fac[x][0]);
                    pa[x][1] = pack_bf16(sc[x][2 * ks][2] * fac[x][1], sc[x][2 * ks][3] * fac[x][1]);
                    pa[x][2] = pack_bf16(sc[x][2 * ks + 1][0] * fac[x][0], sc[x][2 * ks + 1][1] * fac[x][0]);
                    pa[x][3] = pack_bf16(sc[x][2 * ks + 1][2] * fac[x][1], sc[x][2 * ks + 1][3] * fac[x][1]);
                }
#pragma unroll
            for (int np = 0; np < ND / 2; np++) {
                uint32_t bv[4];
                lds_b_kn(bv, Vt, LD, np * 16, ks * 16, lane);
#pragma unroll
                for (int x = 0; x < TPW; x++)
                    if (sel[x]) {
                        mma16816(acc[x][2 * np], pa[x], bv[0], bv[1]);
                        mma16816(acc[x][2 * np + 1], pa[x], bv[2], bv[3]);
                    }
            }
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(empty + s);
    }

    /* write o */
#pragma unroll
    for (int x = 0; x < TPW; x++) {
        if (!tok_ok[x]) continue;
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            const int a = hg[x] * 16 + g8 + hh * 8;
            bf16 *orow = p.o + ((b * p.Lq + t0 + jt[x]) * p.HQ + h * G + a) * DH;
#pragma unroll
            for (int nd = 0; nd < ND; nd++)
                *reinterpret_cast<__nv_bfloat162 *>(orow + nd * 8 + tig * 2) =
                    __floats2bfloat162_rn(acc[x][nd][2 * hh], acc[x][nd][2 * hh + 1]);
        }
    }
}

}  // namespace hsa_fwd

#endif
