/* gpu_attention.c — CUDA attention (forward and backward) against the C reference on random
 * inputs rounded to bf16: ragged L (not a multiple of any tile), W larger than L, dh 32/64/128,
 * GQA, the non-causal form, L = 1; outputs poisoned with NaN before each run so an element the
 * kernel forgets to write fails; a 2^24-token case whose tensors pass 2^31 elements (64-bit
 * offsets) checked on its last rows; the mma.sync fallback of the paths that use warpgroup MMAs
 * on sm_90a; the forward's query offset (segments of ragged length, Lq = 1 decode, GQA, every
 * tile variant; segments concatenated = one full run); the warp-specialised dh-64 forward in
 * every kept variant, also with 3 persistent blocks serving many tiles each (its key-slot ring
 * and Q buffers wrap around), and the dynamically scheduled one over 150 launches in a row (its
 * tile counters must reset themselves); unsupported shapes rejected. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "common.h"
#include "device.h"
#include "test.h"

struct dev {
    bf16_t *q, *k, *v, *o, *g, *dq, *dk, *dv;
    float *lse;
    void *ws;
};

static void dev_free(struct dev *d) {
    lc_cuda_free(d->q), lc_cuda_free(d->k), lc_cuda_free(d->v), lc_cuda_free(d->o), lc_cuda_free(d->g);
    lc_cuda_free(d->dq), lc_cuda_free(d->dk), lc_cuda_free(d->dv), lc_cuda_free(d->lse), lc_cuda_free(d->ws);
    memset(d, 0, sizeof *d);
}

static int dev_alloc(struct dev *d, const struct attn_shape *s) {
    size_t nq = (size_t)(s->B * s->L * s->HQ * s->dh), nk = (size_t)(s->B * s->L * s->H * s->dh);
    size_t nl = (size_t)(s->B * s->HQ * s->L);
    memset(d, 0, sizeof *d);
    d->q = lc_cuda_malloc(2 * nq, "q"), d->k = lc_cuda_malloc(2 * nk, "k"), d->v = lc_cuda_malloc(2 * nk, "v");
    d->o = lc_cuda_malloc(2 * nq, "o"), d->g = lc_cuda_malloc(2 * nq, "dout"), d->dq = lc_cuda_malloc(2 * nq, "dq");
    d->dk = lc_cuda_malloc(2 * nk, "dk"), d->dv = lc_cuda_malloc(2 * nk, "dv"), d->lse = lc_cuda_malloc(4 * nl, "lse");
    d->ws = lc_cuda_malloc(attention_backward_workspace_cuda(s), "workspace");
    if (!(d->q && d->k && d->v && d->o && d->g && d->dq && d->dk && d->dv && d->lse && d->ws)) {
        dev_free(d);
        return 0;
    }
    return 1;
}

/* Random normal values rounded to bf16: the reference sees exactly what the GPU sees. */
static float *rnd_bf16(lc_rng *r, size_t n, float scale, bf16_t **as_bf16) {
    float *x = malloc(sizeof(float) * n);
    bf16_t *y = malloc(sizeof(bf16_t) * n);
    lc_fill_normal(r, x, n, scale);
    f32_to_bf16_array(x, y, n);
    bf16_to_f32_array(y, x, n);
    *as_bf16 = y;
    return x;
}

static float *download_bf16(const bf16_t *d, size_t n) {
    bf16_t *h = malloc(2 * n);
    float *f = malloc(4 * n);
    if (lc_cuda_memcpy_d2h(h, d, 2 * n) != LC_OK) memset(h, 0xff, 2 * n);
    bf16_to_f32_array(h, f, n);
    free(h);
    return f;
}

/* Max |a-b| / max|b| over rows where b is finite: for lse (values near log L). */
static double max_abs_err(const float *a, const float *b, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = fabs((double)a[i] - b[i]);
        if (d > e) e = d;
    }
    return e;
}

static void check_case(const char *name, struct attn_shape s, uint64_t seed) {
    t_begin(name);
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const size_t nq = (size_t)(s.B * s.L * s.HQ * s.dh), nk = (size_t)(s.B * s.L * s.H * s.dh);
    const size_t nl = (size_t)(s.B * s.HQ * s.L);
    bf16_t *qb, *kb, *vb, *gb;
    float *q = rnd_bf16(&rng, nq, 1.0f, &qb), *k = rnd_bf16(&rng, nk, 1.0f, &kb);
    float *v = rnd_bf16(&rng, nk, 1.0f, &vb), *g = rnd_bf16(&rng, nq, 1.0f, &gb);
    float *o = malloc(4 * nq), *lse = malloc(4 * nl), *dq = malloc(4 * nq), *dk = malloc(4 * nk), *dv = malloc(4 * nk);
    struct dev d;
    if (!T_CHECK(dev_alloc(&d, &s), "device allocation: %s", lc_last_error())) goto out;
    T_OK(attention_forward_ref(&s, q, k, v, o, lse));
    T_OK(attention_backward_ref(&s, q, k, v, o, lse, g, dq, dk, dv));
    T_OK(lc_cuda_memcpy_h2d(d.q, qb, 2 * nq));
    T_OK(lc_cuda_memcpy_h2d(d.k, kb, 2 * nk));
    T_OK(lc_cuda_memcpy_h2d(d.v, vb, 2 * nk));
    T_OK(lc_cuda_memcpy_h2d(d.g, gb, 2 * nq));
    /* poison: 0xff bytes are NaN in bf16 and fp32 */
    T_OK(lc_cuda_memset(d.o, 0xff, 2 * nq));
    T_OK(lc_cuda_memset(d.lse, 0xff, 4 * nl));
    T_OK(lc_cuda_memset(d.dq, 0xff, 2 * nq));
    T_OK(lc_cuda_memset(d.dk, 0xff, 2 * nk));
    T_OK(lc_cuda_memset(d.dv, 0xff, 2 * nk));
    T_OK(lc_cuda_memset(d.ws, 0xff, attention_backward_workspace_cuda(&s)));
    if (!T_OK(attention_forward_cuda(&s, d.q, d.k, d.v, d.o, d.lse, NULL)) || !T_OK(lc_cuda_sync())) goto freed;
    float *og = download_bf16(d.o, nq), *lg = malloc(4 * nl);
    T_OK(lc_cuda_memcpy_d2h(lg, d.lse, 4 * nl));
    T_CLOSE(og, o, nq, 1e-2, "o");
    double le = max_abs_err(lg, lse, nl);
    T_CHECK(le < 2e-2, "lse: max abs error %.3e", le);
    if (T_OK(attention_backward_cuda(&s, d.q, d.k, d.v, d.o, d.lse, d.g, d.dq, d.dk, d.dv, d.ws, NULL)) &&
        T_OK(lc_cuda_sync())) {
        float *dqg = download_bf16(d.dq, nq), *dkg = download_bf16(d.dk, nk), *dvg = download_bf16(d.dv, nk);
        T_CLOSE(dqg, dq, nq, 2e-2, "dq");
        T_CLOSE(dkg, dk, nk, 2e-2, "dk");
        T_CLOSE(dvg, dv, nk, 2e-2, "dv");
        free(dqg), free(dkg), free(dvg);
    }
    free(og), free(lg);
freed:
    dev_free(&d);
out:
    free(q), free(k), free(v), free(g), free(qb), free(kb), free(vb), free(gb);
    free(o), free(lse), free(dq), free(dk), free(dv);
}

/* Rows r0 .. r0+n-1 of a [B, Lsrc, C] tensor into (or out of) a [B, n, C] one. */
static void rows_copy(size_t esz, void *dst, const void *src, int64_t B, int64_t Ldst, int64_t Lsrc, int64_t C,
                      int64_t dst_r0, int64_t src_r0, int64_t n) {
    for (int64_t b = 0; b < B; b++)
        memcpy((char *)dst + (size_t)((b * Ldst + dst_r0) * C) * esz, (const char *)src + (size_t)((b * Lsrc + src_r0) * C) * esz,
               (size_t)(n * C) * esz);
}

/* Query offset (segmented prefill / decode): the sequence is cut at cuts[0] = 0 < cuts[1] < ...
 * < cuts[n] = L and each segment runs as its own call (Lq = its length, q_pos0 = its start, the
 * keys / values of the whole sequence). Each segment's o and lse must match the C reference with
 * the same offset, and the segments concatenated must match one full-sequence GPU run and the
 * full reference. */
static void check_offset(const char *name, struct attn_shape s, const int64_t *cuts, int n, uint64_t seed) {
    t_begin(name);
    lc_rng rng;
    lc_rng_seed(&rng, seed);
    const int64_t B = s.B, L = s.L, CQ = s.HQ * s.dh, HQ = s.HQ;
    const size_t nq = (size_t)(B * L * CQ), nk = (size_t)(B * L * s.H * s.dh), nl = (size_t)(B * HQ * L);
    bf16_t *qb, *kb, *vb;
    float *q = rnd_bf16(&rng, nq, 1.0f, &qb), *k = rnd_bf16(&rng, nk, 1.0f, &kb), *v = rnd_bf16(&rng, nk, 1.0f, &vb);
    float *o = malloc(4 * nq), *lse = malloc(4 * nl), *ocat = malloc(4 * nq), *lcat = malloc(4 * nl);
    float *qs = malloc(4 * nq), *os = malloc(4 * nq), *ls = malloc(4 * nl), *ofull = malloc(4 * nq);
    bf16_t *qsb = malloc(2 * nq);
    struct dev d;
    if (!T_CHECK(dev_alloc(&d, &s), "device allocation: %s", lc_last_error())) goto out;
    T_OK(attention_forward_ref(&s, q, k, v, o, lse));
    T_OK(lc_cuda_memcpy_h2d(d.k, kb, 2 * nk));
    T_OK(lc_cuda_memcpy_h2d(d.v, vb, 2 * nk));
    for (int i = 0; i < n; i++) {
        struct attn_shape g = s;
        const int64_t p0 = cuts[i], Lq = cuts[i + 1] - cuts[i];
        g.Lq = Lq, g.q_pos0 = p0;
        const size_t mq = (size_t)(B * Lq * CQ), ml = (size_t)(B * HQ * Lq);
        rows_copy(4, qs, q, B, Lq, L, CQ, 0, p0, Lq);
        rows_copy(2, qsb, qb, B, Lq, L, CQ, 0, p0, Lq);
        T_OK(attention_forward_ref(&g, qs, k, v, os, ls));
        /* the reference's own offset path equals the full run's rows */
        rows_copy(4, ofull, o, B, Lq, L, CQ, 0, p0, Lq);
        T_CLOSE(os, ofull, mq, 1e-5, "reference: offset rows vs full run");
        T_OK(lc_cuda_memcpy_h2d(d.q, qsb, 2 * mq));
        T_OK(lc_cuda_memset(d.o, 0xff, 2 * nq));
        T_OK(lc_cuda_memset(d.lse, 0xff, 4 * nl));
        if (!T_OK(attention_forward_cuda(&g, d.q, d.k, d.v, d.o, d.lse, NULL)) || !T_OK(lc_cuda_sync())) goto freed;
        float *og = download_bf16(d.o, mq), *lg = malloc(4 * ml);
        T_OK(lc_cuda_memcpy_d2h(lg, d.lse, 4 * ml));
        if (!T_CLOSE(og, os, mq, 1e-2, "o (segment)"))
            printf("  segment %d: q_pos0 = %lld, Lq = %lld\n", i, (long long)p0, (long long)Lq);
        double le = max_abs_err(lg, ls, ml);
        T_CHECK(le < 2e-2, "lse (segment %d, q_pos0 %lld, Lq %lld): max abs error %.3e", i, (long long)p0, (long long)Lq, le);
        /* nothing past the segment's rows was written */
        bf16_t tail[8];
        if (mq + 8 <= nq && lc_cuda_memcpy_d2h(tail, d.o + mq, sizeof tail) == LC_OK)
            T_CHECK(tail[0] == 0xffff && tail[7] == 0xffff, "o written past Lq rows (segment %d)", i);
        rows_copy(4, ocat, og, B, L, Lq, CQ, p0, 0, Lq);
        for (int64_t r = 0; r < B * HQ; r++) memcpy(lcat + r * L + p0, lg + r * Lq, sizeof(float) * (size_t)Lq);
        free(og), free(lg);
    }
    T_CLOSE(ocat, o, nq, 1e-2, "segments concatenated vs full reference");
    T_CHECK(max_abs_err(lcat, lse, nl) < 2e-2, "segments concatenated: lse off");
    {
        struct attn_shape g = s;
        g.Lq = 0, g.q_pos0 = 0;
        T_OK(lc_cuda_memcpy_h2d(d.q, qb, 2 * nq));
        if (T_OK(attention_forward_cuda(&g, d.q, d.k, d.v, d.o, d.lse, NULL)) && T_OK(lc_cuda_sync())) {
            float *og = download_bf16(d.o, nq);
            T_CLOSE(ocat, og, nq, 1e-2, "segments concatenated vs one full GPU run");
            free(og);
        }
    }
freed:
    dev_free(&d);
out:
    free(q), free(k), free(v), free(qb), free(kb), free(vb), free(o), free(lse), free(ocat), free(lcat);
    free(qs), free(os), free(ls), free(qsb), free(ofull);
}

/* check_case / check_offset of a kernel variant: the case name is fmt with v for its %s */
static void check_case_v(const char *fmt, const char *v, struct attn_shape s, uint64_t seed) {
    char nm[128];
    snprintf(nm, sizeof nm, fmt, v);
    check_case(nm, s, seed);
}
static void check_offset_v(const char *fmt, const char *v, struct attn_shape s, const int64_t *cuts, int n, uint64_t seed) {
    char nm[128];
    snprintf(nm, sizeof nm, fmt, v);
    check_offset(nm, s, cuts, n, seed);
}

/* L = 2^24, HQ = H = 2, dh = 64: q has 2^31 elements. Everything but the last `n` tokens is a
 * constant (memset); the last n tokens are random. With window W, rows t >= L-n+W (and keys
 * j >= L-n+W for dk, dv) depend only on the random slice, so a reference run on the slice
 * checks them. */
static void check_huge(void) {
    t_begin("L = 2^24, dh 64, HQ = H = 2, W = 32: 64-bit offsets (last rows vs reference)");
    struct attn_shape s = {1, (int64_t)1 << 24, 2, 2, 64, 32, 1, 0, 0, 0};
    const int64_t n = 700, W = s.W, row = s.HQ * s.dh;
    size_t nq = (size_t)(s.L * row), need = 2 * nq * 8 + 4 * nq + (size_t)(s.L * 2 * 4 * 2) + ((size_t)1 << 30);
    size_t free_b = 0, total_b = 0;
    if (lc_cuda_mem_info(&free_b, &total_b) != LC_OK || free_b < need) {
        t_skip("not enough device memory");
        return;
    }
    struct dev d;
    if (!T_CHECK(dev_alloc(&d, &s), "device allocation: %s", lc_last_error())) return;
    struct attn_shape ss = s;
    ss.L = n;
    const size_t ns = (size_t)(n * row), off = nq - ns;
    lc_rng rng;
    lc_rng_seed(&rng, 99);
    bf16_t *qb, *kb, *vb, *gb;
    float *q = rnd_bf16(&rng, ns, 1, &qb), *k = rnd_bf16(&rng, ns, 1, &kb), *v = rnd_bf16(&rng, ns, 1, &vb);
    float *g = rnd_bf16(&rng, ns, 1, &gb);
    bf16_t **ptrs[4] = {&d.q, &d.k, &d.v, &d.g};
    bf16_t *hs[4] = {qb, kb, vb, gb};
    for (int i = 0; i < 4; i++) {
        T_OK(lc_cuda_memset(*ptrs[i], 0x3c, 2 * nq)); /* 0x3c3c: a small positive bf16 */
        T_OK(lc_cuda_memcpy_h2d(*ptrs[i] + off, hs[i], 2 * ns));
    }
    T_OK(lc_cuda_memset(d.o, 0xff, 2 * nq));
    T_OK(lc_cuda_memset(d.dq, 0xff, 2 * nq));
    T_OK(lc_cuda_memset(d.dk, 0xff, 2 * nq));
    T_OK(lc_cuda_memset(d.dv, 0xff, 2 * nq));
    float *o = malloc(4 * ns), *lse = malloc(4 * (size_t)(2 * n)), *dq = malloc(4 * ns), *dk = malloc(4 * ns),
          *dv = malloc(4 * ns);
    T_OK(attention_forward_ref(&ss, q, k, v, o, lse));
    T_OK(attention_backward_ref(&ss, q, k, v, o, lse, g, dq, dk, dv));
    if (T_OK(attention_forward_cuda(&s, d.q, d.k, d.v, d.o, d.lse, NULL)) &&
        T_OK(attention_backward_cuda(&s, d.q, d.k, d.v, d.o, d.lse, d.g, d.dq, d.dk, d.dv, d.ws, NULL)) &&
        T_OK(lc_cuda_sync())) {
        const size_t skip = (size_t)(W * row), m = ns - skip;
        float *og = download_bf16(d.o + off + skip, m), *dqg = download_bf16(d.dq + off + skip, m);
        float *dkg = download_bf16(d.dk + off + skip, m), *dvg = download_bf16(d.dv + off + skip, m);
        T_CLOSE(og, o + skip, m, 1e-2, "o (last rows)");
        T_CLOSE(dqg, dq + skip, m, 2e-2, "dq (last rows)");
        T_CLOSE(dkg, dk + skip, m, 2e-2, "dk (last rows)");
        T_CLOSE(dvg, dv + skip, m, 2e-2, "dv (last rows)");
        /* the first rows were written too (constant inputs: o = v = the constant) */
        float *o0 = download_bf16(d.o, (size_t)row);
        T_CHECK(fabsf(o0[0] - bf16_to_f32(0x3c3c)) < 1e-3f && isfinite(o0[row - 1]), "row 0: o = %g", o0[0]);
        free(og), free(dqg), free(dkg), free(dvg), free(o0);
    }
    dev_free(&d);
    free(q), free(k), free(v), free(g), free(qb), free(kb), free(vb), free(gb);
    free(o), free(lse), free(dq), free(dk), free(dv);
}

/* The warp-specialised forward (sm_90a, dh 64), every variant (LC_ATTN_WG); then with 3 blocks, so
 * each persistent block serves many query tiles (key-slot ring and Q buffers wrap around). */
static void check_ws_repeat(const char *variant);
static void check_ws_forward(void) {
    const int64_t c7[] = {0, 1, 2, 3, 100, 333, 1000, 1001, 2049};
    const int64_t c8[] = {0, 1, 190, 191, 400};
    /* the warp-specialised forward (sm_90a, dh 64), every variant; then with 3 blocks, so each
     * persistent block serves many query tiles (key-slot ring and Q buffers wrap around) */
    /* 13, 24: the defaults (W <= 1024 / otherwise); 16: 24 with 64-bit positions, its fallback;
     * 40: 24 with the tiles handed out by a counter (attn10; the dense causal default) */
    static const char *wsv[] = {"13", "16", "24", "40"};
    const int nwsv = (int)(sizeof wsv / sizeof wsv[0]);
    const int64_t c9[] = {0, 700, 1601};
    for (int i = 0; i < nwsv; i++) {
        setenv("LC_ATTN_WG", wsv[i], 1);
        check_case_v("ws variant %s: SWA dh 64, B=2 L=2049 W=511 HQ=2 H=1", wsv[i],
                     (struct attn_shape){2, 2049, 2, 1, 64, 511, 1, 0, 0, 0}, 110 + i);
        check_case_v("ws variant %s: dense dh 64, B=2 L=300 HQ=4 H=2", wsv[i],
                     (struct attn_shape){2, 300, 4, 2, 64, 0, 1, 0, 0, 0}, 120 + i);
        check_case_v("ws variant %s: SWA dh 64, L=1100 W=64 HQ=8 H=2 (G=4)", wsv[i],
                     (struct attn_shape){1, 1100, 8, 2, 64, 64, 1, 0, 0, 0}, 130 + i);
        check_case_v("ws variant %s: non-causal dh 64, L=200 HQ=2 H=1", wsv[i],
                     (struct attn_shape){1, 200, 2, 1, 64, 0, 0, 0.2f, 0, 0}, 140 + i);
        /* a window that is no multiple of 64, 128 or 192 keys, longer than one tile of each */
        check_case_v("ws variant %s: SWA dh 64, L=1601 W=1300 HQ=2 H=1", wsv[i],
                     (struct attn_shape){1, 1601, 2, 1, 64, 1300, 1, 0, 0, 0}, 190 + i);
        check_offset_v("offset, ws variant %s: dense dh 64 L=400 HQ=4 H=2", wsv[i],
                       (struct attn_shape){1, 400, 4, 2, 64, 0, 1, 0, 0, 0}, c8, 4, 150 + i);
        check_offset_v("offset, ws variant %s: SWA dh 64, B=2 L=2049 W=511", wsv[i],
                       (struct attn_shape){2, 2049, 2, 1, 64, 511, 1, 0, 0, 0}, c7, 8, 160 + i);
        /* large logits (scale 3: scores of std ~24): the running max moves by more than the lazy
         * rescale's threshold, exponents far below -126 (the FMA-pipe exp2's clamp) */
        check_offset_v("offset, ws variant %s: SWA dh 64 L=1601 W=1300, scale 3", wsv[i],
                       (struct attn_shape){1, 1601, 2, 1, 64, 1300, 1, 3.0f, 0, 0}, c9, 2, 200 + i);
        check_offset_v("offset, ws variant %s: dense dh 64 L=1601 HQ=4 H=2, scale 3", wsv[i],
                       (struct attn_shape){1, 1601, 4, 2, 64, 0, 1, 3.0f, 0, 0}, c9, 2, 220 + i);
        setenv("LC_ATTN_WS_GRID", "3", 1);
        check_case_v("ws variant %s, 3 blocks: SWA dh 64, B=2 L=3000 W=512 HQ=4 H=2", wsv[i],
                     (struct attn_shape){2, 3000, 4, 2, 64, 512, 1, 0, 0, 0}, 170 + i);
        check_case_v("ws variant %s, 3 blocks: dense dh 64, L=1500 HQ=3 H=1", wsv[i],
                     (struct attn_shape){1, 1500, 3, 1, 64, 0, 1, 0, 0, 0}, 180 + i);
        unsetenv("LC_ATTN_WS_GRID");
    }
    unsetenv("LC_ATTN_WG");
    check_ws_repeat("40");
}

/* The dynamically scheduled ws forward (40) takes one of 64 tile counters per launch and its
 * last block resets it: 150 launches in a row (every counter reused twice, grids of 132 or fewer,
 * 3 and 7 blocks), each output poisoned first and compared with the reference. */
static void check_ws_repeat(const char *variant) {
    char nm[96];
    snprintf(nm, sizeof nm, "ws variant %s, 150 launches: SWA dh 64 L=1100 W=64 HQ=8 H=2", variant);
    t_begin(nm);
    const struct attn_shape s = {1, 1100, 8, 2, 64, 64, 1, 0, 0, 0};
    lc_rng rng;
    lc_rng_seed(&rng, 300);
    const size_t nq = (size_t)(s.B * s.L * s.HQ * s.dh), nk = (size_t)(s.B * s.L * s.H * s.dh);
    const size_t nl = (size_t)(s.B * s.HQ * s.L);
    bf16_t *qb, *kb, *vb;
    float *q = rnd_bf16(&rng, nq, 1.0f, &qb), *k = rnd_bf16(&rng, nk, 1.0f, &kb), *v = rnd_bf16(&rng, nk, 1.0f, &vb);
    float *o = malloc(4 * nq), *lse = malloc(4 * nl);
    struct dev d;
    if (T_CHECK(dev_alloc(&d, &s), "device allocation: %s", lc_last_error())) {
        T_OK(attention_forward_ref(&s, q, k, v, o, lse));
        T_OK(lc_cuda_memcpy_h2d(d.q, qb, 2 * nq));
        T_OK(lc_cuda_memcpy_h2d(d.k, kb, 2 * nk));
        T_OK(lc_cuda_memcpy_h2d(d.v, vb, 2 * nk));
        setenv("LC_ATTN_WG", variant, 1);
        double worst = 0;
        int bad = 0;
        for (int i = 0; i < 150 && !bad; i++) {
            if (i % 3 == 1) setenv("LC_ATTN_WS_GRID", i % 2 ? "3" : "7", 1);
            else unsetenv("LC_ATTN_WS_GRID");
            bad |= lc_cuda_memset(d.o, 0xff, 2 * nq) != LC_OK;
            bad |= attention_forward_cuda(&s, d.q, d.k, d.v, d.o, d.lse, NULL) != LC_OK || lc_cuda_sync() != LC_OK;
            float *og = download_bf16(d.o, nq);
            const double e = t_rel_err(og, o, nq);
            if (!(e <= worst)) worst = e; /* NaN sticks */
            free(og);
        }
        unsetenv("LC_ATTN_WS_GRID");
        unsetenv("LC_ATTN_WG");
        T_CHECK(!bad, "a launch failed: %s", lc_last_error());
        T_CHECK(worst <= 1e-2, "o: worst relative error over the launches %.3e", worst);
        dev_free(&d);
    }
    free(q), free(k), free(v), free(qb), free(kb), free(vb), free(o), free(lse);
}

/* The warp-specialised dh-64 backward (sm_90a; LC_ATTN_WGB = 4..8, 18, 19), every variant, against the
 * C reference; then with 3 persistent blocks, so each block serves many key blocks (K/V buffers,
 * slot ring, dQ staging wrap around). 19 (W <= 1024) and 18 are the dh-64 defaults (attn7; 7 before). Last, so
 * a fault leaves the tests before it unaffected. --small (for compute-sanitizer) runs variants 4,
 * 7, 18 and 19 on two shapes; --wsb LIST the listed variants on every shape, after the L = 2^24
 * case (with the default backward, or LC_ATTN_WGB as set by the caller). */
static void check_ws_backward(int small, const char *only) {
    /* 18, 19: attn7 (128-query tiles, the defaults; 19 with the MMAs under the softmax steps);
     * attn6's 15-17 were removed in attn7 (slower) */
    static const char *wsb[] = {"4", "5", "6", "7", "8", "18", "19"};
    for (int i = 0; i < (int)(sizeof wsb / sizeof wsb[0]); i++) {
        if (small && i != 0 && i != 3 && i < 5) continue; /* --small: 4, 7, 18, 19 */
        if (only) { /* --wsb LIST: only these variants (comma-separated) */
            char pat[8], list[64];
            snprintf(pat, sizeof pat, ",%s,", wsb[i]);
            snprintf(list, sizeof list, ",%s,", only);
            if (!strstr(list, pat)) continue;
        }
        setenv("LC_ATTN_WGB", wsb[i], 1);
        check_case_v("ws backward %s: SWA dh 64, B=2 L=2049 W=511 HQ=2 H=1", wsb[i],
                     (struct attn_shape){2, 2049, 2, 1, 64, 511, 1, 0, 0, 0}, 210 + i);
        check_case_v("ws backward %s: dense dh 64, B=2 L=300 HQ=4 H=2", wsb[i],
                     (struct attn_shape){2, 300, 4, 2, 64, 0, 1, 0, 0, 0}, 220 + i);
        if (small) continue;
        check_case_v("ws backward %s: SWA dh 64, L=1100 W=64 HQ=8 H=2 (G=4)", wsb[i],
                     (struct attn_shape){1, 1100, 8, 2, 64, 64, 1, 0, 0, 0}, 230 + i);
        check_case_v("ws backward %s: non-causal dh 64, B=2 L=77 HQ=2 H=2", wsb[i],
                     (struct attn_shape){2, 77, 2, 2, 64, 0, 0, 0, 0, 0}, 240 + i);
        check_case_v("ws backward %s: non-causal dh 64, L=333 HQ=2 H=1, scale 0.2", wsb[i],
                     (struct attn_shape){1, 333, 2, 1, 64, 0, 0, 0.2f, 0, 0}, 245 + i);
        check_case_v("ws backward %s: SWA dh 64, L=700 W=1 HQ=4 H=4", wsb[i],
                     (struct attn_shape){1, 700, 4, 4, 64, 1, 1, 0, 0, 0}, 250 + i);
        check_case_v("ws backward %s: SWA dh 64, L=1111 W=300 HQ=4 H=2", wsb[i],
                     (struct attn_shape){1, 1111, 4, 2, 64, 300, 1, 0, 0, 0}, 280 + i);
        setenv("LC_ATTN_WS_GRID", "3", 1);
        check_case_v("ws backward %s, 3 blocks: SWA dh 64, B=2 L=3000 W=512 HQ=4 H=2", wsb[i],
                     (struct attn_shape){2, 3000, 4, 2, 64, 512, 1, 0, 0, 0}, 260 + i);
        check_case_v("ws backward %s, 3 blocks: dense dh 64, L=1500 HQ=3 H=1", wsb[i],
                     (struct attn_shape){1, 1500, 3, 1, 64, 0, 1, 0, 0, 0}, 270 + i);
        unsetenv("LC_ATTN_WS_GRID");
    }
    unsetenv("LC_ATTN_WGB");
}

int main(int argc, char **argv) {
    const char *why = NULL;
    int small = argc > 1 && strcmp(argv[1], "--small") == 0; /* for compute-sanitizer */
    int ws_fwd = argc > 1 && strcmp(argv[1], "--ws-forward") == 0; /* only the ws-forward variants (tuning runs) */
    if (lc_cuda_device_count(&why) == 0) {
        t_begin("cuda attention");
        t_skip(why);
        return t_finish();
    }
    if (ws_fwd) {
        check_ws_forward();
        return t_finish();
    }
    if (argc > 2 && strcmp(argv[1], "--wsb") == 0) { /* tuning runs: the ws backward of the listed variants only */
        check_huge();
        check_ws_backward(0, argv[2]);
        return t_finish();
    }
    check_case("dense causal dh 64, B=2 L=300 HQ=4 H=2 (ragged, GQA)", (struct attn_shape){2, 300, 4, 2, 64, 0, 1, 0, 0, 0}, 1);
    check_case("SWA dh 128, L=517 W=100, HQ=2 H=1", (struct attn_shape){1, 517, 2, 1, 128, 100, 1, 0, 0, 0}, 2);
    check_case("SWA dh 32, B=3 L=129 W=1000 > L", (struct attn_shape){3, 129, 2, 2, 32, 1000, 1, 0, 0, 0}, 3);
    check_case("L = 1, dh 64", (struct attn_shape){1, 1, 2, 1, 64, 0, 1, 0, 0, 0}, 4);
    {
        const int64_t c1[] = {0, 1, 77, 200, 201, 300};
        check_offset("offset: dense dh 64, B=2 L=300 HQ=4 H=2, segments 1/76/123/1/99", (struct attn_shape){2, 300, 4, 2, 64, 0, 1, 0, 0, 0}, c1, 5, 21);
        const int64_t c2[] = {0, 130, 131, 517};
        check_offset("offset: SWA dh 128, L=517 W=100 HQ=2 H=1, segments 130/1/386", (struct attn_shape){1, 517, 2, 1, 128, 100, 1, 0, 0, 0}, c2, 3, 22);
    }
    if (!small) {
        const int64_t c3[] = {0, 500, 1099, 1100};
        check_offset("offset: SWA dh 64, L=1100 W=64 HQ=8 H=2 (G=4), decode last", (struct attn_shape){1, 1100, 8, 2, 64, 64, 1, 0, 0, 0}, c3, 3, 23);
        const int64_t c4[] = {0, 5, 64, 65, 129};
        check_offset("offset: SWA dh 32, B=3 L=129 W=1000 > L", (struct attn_shape){3, 129, 2, 2, 32, 1000, 1, 0, 0, 0}, c4, 4, 24);
        const int64_t c5[] = {0, 50, 51, 200};
        check_offset("offset: non-causal dh 64, L=200 HQ=2 H=1", (struct attn_shape){1, 200, 2, 1, 64, 0, 0, 0.2f, 0, 0}, c5, 3, 25);
        const int64_t c6[] = {0, 2500, 2503, 4999, 5000};
        check_offset("offset: dense dh 128, L=5000 HQ=8 H=1 (G=8), Lq=3 and decode", (struct attn_shape){1, 5000, 8, 1, 128, 0, 1, 0, 0, 0}, c6, 4, 26);
        const int64_t c7[] = {0, 1, 2, 3, 100, 333, 1000, 1001, 2049};
        check_offset("offset: SWA dh 64, B=2 L=2049 W=511, many segments", (struct attn_shape){2, 2049, 2, 1, 64, 511, 1, 0, 0, 0}, c7, 8, 27);
        /* every forward tile variant the dispatcher (or a tuning override) can pick */
        static const char *wg[] = {"1", "2", "3", "4", "5"};
        static const char *mv[] = {"0", "1", "2", "3"};
        const int64_t c8[] = {0, 1, 190, 191, 400};
        for (int i = 0; i < 5; i++) {
            setenv("LC_ATTN_WG", wg[i], 1);
            check_offset_v("offset, wgmma variant %s: dense dh 64 L=400 HQ=4 H=2", wg[i],
                           (struct attn_shape){1, 400, 4, 2, 64, 0, 1, 0, 0, 0}, c8, 4, 30 + i);
            check_offset_v("offset, wgmma variant %s: SWA dh 128 L=400 W=70", wg[i],
                           (struct attn_shape){1, 400, 2, 1, 128, 70, 1, 0, 0, 0}, c8, 4, 40 + i);
        }
        unsetenv("LC_ATTN_WG");
        setenv("LC_ATTN_WGMMA", "0", 1);
        for (int i = 0; i < 4; i++) {
            setenv("LC_ATTN_FWD", mv[i], 1);
            check_offset_v("offset, mma.sync variant %s: dense dh 64 L=400 HQ=4 H=2", mv[i],
                           (struct attn_shape){1, 400, 4, 2, 64, 0, 1, 0, 0, 0}, c8, 4, 50 + i);
            check_offset_v("offset, mma.sync variant %s: SWA dh 128 L=400 W=70", mv[i],
                           (struct attn_shape){1, 400, 2, 1, 128, 70, 1, 0, 0, 0}, c8, 4, 60 + i);
        }
        unsetenv("LC_ATTN_FWD");
        unsetenv("LC_ATTN_WGMMA");
        /* every warpgroup backward variant (sm_90a), dh 64 and 128 */
        static const char *wgb[] = {"1", "2", "3"};
        for (int i = 0; i < 3; i++) {
            setenv("LC_ATTN_WGB", wgb[i], 1);
            check_case_v("backward variant %s: dense dh 64, B=2 L=300 HQ=4 H=2", wgb[i],
                         (struct attn_shape){2, 300, 4, 2, 64, 0, 1, 0, 0, 0}, 70 + i);
            check_case_v("backward variant %s: SWA dh 128, L=517 W=100 HQ=4 H=2", wgb[i],
                         (struct attn_shape){1, 517, 4, 2, 128, 100, 1, 0, 0, 0}, 80 + i);
            check_case_v("backward variant %s: non-causal dh 128, B=2 L=77", wgb[i],
                         (struct attn_shape){2, 77, 2, 2, 128, 0, 0, 0, 0, 0}, 90 + i);
            check_case_v("backward variant %s: SWA dh 64, L=1100 W=64 HQ=8 H=2", wgb[i],
                         (struct attn_shape){1, 1100, 8, 2, 64, 64, 1, 0, 0, 0}, 100 + i);
        }
        unsetenv("LC_ATTN_WGB");
        check_ws_forward();
        check_case("non-causal dh 64, L=200 HQ=2 H=1, scale 0.2", (struct attn_shape){1, 200, 2, 1, 64, 0, 0, 0.2f, 0, 0}, 5);
        check_case("non-causal dh 128, L=77 HQ=2 H=2", (struct attn_shape){2, 77, 2, 2, 128, 0, 0, 0, 0, 0}, 6);
        check_case("dense causal dh 128, L=1000 HQ=2 H=2", (struct attn_shape){1, 1000, 2, 2, 128, 0, 1, 0, 0, 0}, 7);
        check_case("dense causal dh 32, L=1500 HQ=3 H=1", (struct attn_shape){1, 1500, 3, 1, 32, 0, 1, 0, 0, 0}, 8);
        check_case("SWA dh 64, L=1100 W=64 HQ=8 H=2 (G=4)", (struct attn_shape){1, 1100, 8, 2, 64, 64, 1, 0, 0, 0}, 9);
        check_case("SWA dh 64, L=2049 W=511 HQ=2 H=1", (struct attn_shape){2, 2049, 2, 1, 64, 511, 1, 0, 0, 0}, 10);
        check_case("SWA dh 128, L=700 W=1 HQ=4 H=4", (struct attn_shape){1, 700, 4, 4, 128, 1, 1, 0, 0, 0}, 11);
        check_huge();
        /* the forward (dh 64, 128) and the dh-64 backward run on warpgroup MMAs where the sm_90a
         * build is loaded; check the mma.sync fallback (plain sm_90) on some of the same shapes */
        setenv("LC_ATTN_WGMMA", "0", 1);
        check_case("fallback path: dense causal dh 64, B=2 L=300 HQ=4 H=2", (struct attn_shape){2, 300, 4, 2, 64, 0, 1, 0, 0, 0}, 1);
        check_case("fallback path: SWA dh 64, L=1100 W=64 HQ=8 H=2", (struct attn_shape){1, 1100, 8, 2, 64, 64, 1, 0, 0, 0}, 9);
        check_case("fallback path: non-causal dh 64, L=200", (struct attn_shape){1, 200, 2, 1, 64, 0, 0, 0.2f, 0, 0}, 5);
        check_case("fallback path: SWA dh 128, L=517 W=100", (struct attn_shape){1, 517, 2, 1, 128, 100, 1, 0, 0, 0}, 2);
        unsetenv("LC_ATTN_WGMMA");
    }
    t_begin("unsupported shapes are rejected with a message");
    {
        struct attn_shape s = {1, 64, 2, 1, 96, 0, 1, 0, 0, 0};
        T_ERR(attention_forward_cuda(&s, (bf16_t *)8, (bf16_t *)8, (bf16_t *)8, (bf16_t *)8, (float *)8, NULL), "dh = 96");
        s.dh = 64, s.HQ = 3, s.H = 2;
        T_ERR(attention_backward_cuda(&s, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "multiple of H");
        s.HQ = 2, s.H = 1;
        T_ERR(attention_forward_cuda(&s, NULL, NULL, NULL, NULL, NULL, NULL), "non-NULL");
        s.Lq = 1, s.q_pos0 = 63;
        T_ERR(attention_backward_cuda(&s, (bf16_t *)8, (bf16_t *)8, (bf16_t *)8, (bf16_t *)8, (float *)8, (bf16_t *)8, (bf16_t *)8,
                                      (bf16_t *)8, (bf16_t *)8, (void *)8, NULL), "forward-only");
        s.q_pos0 = 64;
        T_ERR(attention_forward_cuda(&s, (bf16_t *)8, (bf16_t *)8, (bf16_t *)8, (bf16_t *)8, (float *)8, NULL), "exceeds L");
    }
    check_ws_backward(small, NULL);
    return t_finish();
}
