/* gunzip.c — DEFLATE decoder (stored, fixed-Huffman and dynamic-Huffman blocks) after the
 * canonical-Huffman decoding scheme of RFC 1951 section 3.2: codes are decoded bit by bit by
 * counting how many codes of each length exist (slow per bit, but the haystack is ~2 MB and
 * decoded once per run). The gzip wrapper (RFC 1952) header fields are skipped; the trailer's
 * ISIZE is checked against the output length to catch truncated files. */
#include "gunzip.h"

#include <stdlib.h>
#include <string.h>

struct inf {
    const uint8_t *in;
    size_t in_len, pos;
    uint32_t bitbuf;
    int bitcnt;
    uint8_t *out;
    size_t out_len, out_cap;
    int err; /* 1 = input ran out, 2 = bad data, 3 = no memory */
};

static int bits(struct inf *s, int need) {
    uint32_t v = s->bitbuf;
    while (s->bitcnt < need) {
        if (s->pos >= s->in_len) { s->err = 1; return 0; }
        v |= (uint32_t)s->in[s->pos++] << s->bitcnt;
        s->bitcnt += 8;
    }
    s->bitbuf = v >> need;
    s->bitcnt -= need;
    return (int)(v & ((1u << need) - 1));
}

static int put(struct inf *s, uint8_t c) {
    if (s->out_len == s->out_cap) {
        size_t cap = s->out_cap ? 2 * s->out_cap : 1 << 20;
        uint8_t *p = realloc(s->out, cap + 1);
        if (!p) { s->err = 3; return 0; }
        s->out = p;
        s->out_cap = cap;
    }
    s->out[s->out_len++] = c;
    return 1;
}

struct huff { short count[16]; short symbol[320]; };

/* Decode one symbol: walk lengths 1..15, comparing against the first code of each length. */
static int decode(struct inf *s, const struct huff *h) {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len < 16; len++) {
        code |= bits(s, 1);
        if (s->err) return -1;
        int count = h->count[len];
        if (code - count < first) return h->symbol[index + (code - first)];
        index += count;
        first += count;
        first <<= 1;
        code <<= 1;
    }
    s->err = 2;
    return -1;
}

/* Build the canonical code from code lengths; returns 0 when complete or incomplete-but-usable,
 * -1 when over-subscribed. */
static int build(struct huff *h, const short *length, int n) {
    short offs[16];
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++) h->count[length[i]]++;
    if (h->count[0] == n) return 0;
    int left = 1;
    for (int len = 1; len < 16; len++) {
        left <<= 1;
        left -= h->count[len];
        if (left < 0) return -1;
    }
    offs[1] = 0;
    for (int len = 1; len < 15; len++) offs[len + 1] = (short)(offs[len] + h->count[len]);
    for (int i = 0; i < n; i++)
        if (length[i]) h->symbol[offs[length[i]]++] = (short)i;
    return left;
}

static const short LBASE[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const short LEXT[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                               3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const short DBASE[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                6145, 8193, 12289, 16385, 24577};
static const short DEXT[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                               6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static int codes(struct inf *s, const struct huff *lc, const struct huff *dc) {
    for (;;) {
        int sym = decode(s, lc);
        if (sym < 0) return -1;
        if (sym < 256) {
            if (!put(s, (uint8_t)sym)) return -1;
        } else if (sym == 256) {
            return 0;
        } else {
            sym -= 257;
            if (sym >= 29) { s->err = 2; return -1; }
            int len = LBASE[sym] + bits(s, LEXT[sym]);
            int ds = decode(s, dc);
            if (ds < 0 || ds >= 30) { s->err = s->err ? s->err : 2; return -1; }
            size_t dist = (size_t)(DBASE[ds] + bits(s, DEXT[ds]));
            if (s->err) return -1;
            if (dist > s->out_len) { s->err = 2; return -1; }
            for (int i = 0; i < len; i++)
                if (!put(s, s->out[s->out_len - dist])) return -1;
        }
    }
}

static int fixed(struct inf *s) {
    struct huff lc, dc; /* the fixed code: rebuilt per block (cheap), so no static state */
    {
        short l[288];
        int i = 0;
        for (; i < 144; i++) l[i] = 8;
        for (; i < 256; i++) l[i] = 9;
        for (; i < 280; i++) l[i] = 7;
        for (; i < 288; i++) l[i] = 8;
        build(&lc, l, 288);
        for (i = 0; i < 30; i++) l[i] = 5;
        build(&dc, l, 30);
    }
    return codes(s, &lc, &dc);
}

static int dynamic(struct inf *s) {
    static const short order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    short lengths[320];
    struct huff lc, dc;
    int nlen = bits(s, 5) + 257, ndist = bits(s, 5) + 1, ncode = bits(s, 4) + 4;
    if (s->err || nlen > 286 || ndist > 30) { s->err = s->err ? s->err : 2; return -1; }
    int i = 0;
    for (; i < ncode; i++) lengths[order[i]] = (short)bits(s, 3);
    for (; i < 19; i++) lengths[order[i]] = 0;
    if (s->err || build(&lc, lengths, 19) != 0) { s->err = s->err ? s->err : 2; return -1; }
    for (i = 0; i < nlen + ndist;) {
        int sym = decode(s, &lc);
        if (sym < 0) return -1;
        if (sym < 16) { lengths[i++] = (short)sym; continue; }
        short len = 0;
        int rep;
        if (sym == 16) {
            if (i == 0) { s->err = 2; return -1; }
            len = lengths[i - 1];
            rep = 3 + bits(s, 2);
        } else if (sym == 17) rep = 3 + bits(s, 3);
        else rep = 11 + bits(s, 7);
        if (s->err || i + rep > nlen + ndist) { s->err = s->err ? s->err : 2; return -1; }
        while (rep--) lengths[i++] = len;
    }
    if (lengths[256] == 0) { s->err = 2; return -1; }
    int e = build(&lc, lengths, nlen);
    if (e < 0 || (e > 0 && nlen - lc.count[0] != 1)) { s->err = 2; return -1; }
    e = build(&dc, lengths + nlen, ndist);
    if (e < 0 || (e > 0 && ndist - dc.count[0] != 1)) { s->err = 2; return -1; }
    return codes(s, &lc, &dc);
}

lc_status gunzip(const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len, const char *what) {
    *out = NULL;
    *out_len = 0;
    if (in_len < 18 || in[0] != 0x1f || in[1] != 0x8b || in[2] != 8)
        return lc_errorf(LC_EINVAL, "%s: not a gzip file (bad magic or method)", what);
    int flg = in[3];
    size_t p = 10;
    if (flg & 4) { if (p + 2 > in_len) goto trunc; p += 2 + (in[p] | (size_t)in[p + 1] << 8); }
    if (flg & 8) { while (p < in_len && in[p]) p++; p++; }
    if (flg & 16) { while (p < in_len && in[p]) p++; p++; }
    if (flg & 2) p += 2;
    if (p >= in_len) goto trunc;
    struct inf s = {in, in_len, p, 0, 0, NULL, 0, 0, 0};
    int last;
    do {
        last = bits(&s, 1);
        int type = bits(&s, 2);
        if (s.err) break;
        if (type == 0) {
            s.bitbuf = 0;
            s.bitcnt = 0;
            if (s.pos + 4 > s.in_len) { s.err = 1; break; }
            unsigned len = in[s.pos] | in[s.pos + 1] << 8, nlen = in[s.pos + 2] | in[s.pos + 3] << 8;
            s.pos += 4;
            if (len != (~nlen & 0xffff)) { s.err = 2; break; }
            if (s.pos + len > s.in_len) { s.err = 1; break; }
            for (unsigned i = 0; i < len; i++) put(&s, in[s.pos + i]);
            s.pos += len;
        } else if (type == 1) fixed(&s);
        else if (type == 2) dynamic(&s);
        else s.err = 2;
    } while (!last && !s.err);
    if (s.err == 1) { free(s.out); goto trunc; }
    if (s.err) {
        free(s.out);
        return s.err == 3 ? lc_errorf(LC_ENOMEM, "%s: out of memory while decompressing", what)
                          : lc_errorf(LC_EINVAL, "%s: corrupt DEFLATE data", what);
    }
    if (s.pos + 8 > in_len) { free(s.out); goto trunc; }
    const uint8_t *t = in + s.pos + 4;
    uint32_t isize = t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    if (isize != (uint32_t)s.out_len) {
        free(s.out);
        return lc_errorf(LC_EINVAL, "%s: gzip length field %u does not match the %zu bytes decoded", what, isize, s.out_len);
    }
    if (!s.out) { s.out = malloc(1); if (!s.out) return lc_errorf(LC_ENOMEM, "out of memory"); }
    s.out[s.out_len] = 0;
    *out = s.out;
    *out_len = s.out_len;
    return LC_OK;
trunc:
    return lc_errorf(LC_EINVAL, "%s: truncated gzip file", what);
}
