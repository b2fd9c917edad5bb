/* data.c — token files (memory-mapped, validated), the byte-level tokenizer, and the batch
 * loader. Formats and batch semantics: data.h. */
#include "data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char tok_magic[8] = {'L', 'C', 'T', 'O', 'K', '1', '\n', 0};
enum { HEADER = 32 };

static uint64_t rd(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void wr(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

void tokens_close(lc_tokens *t) {
    if (t->map) munmap(t->map, t->map_len);
    memset(t, 0, sizeof *t);
}

/* Map the whole file; t->path, map, map_len set. */
static lc_status map_file(const char *path, lc_tokens *t) {
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lc_errorf(LC_EIO, "token file '%s': cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lc_errorf(LC_EIO, "token file '%s': not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return lc_errorf(LC_EINVAL, "token file '%s': empty file", path);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return lc_errorf(LC_EIO, "token file '%s': mmap failed: %s", path, strerror(errno));
    t->map = m;
    t->map_len = (size_t)st.st_size;
    return LC_OK;
}

static lc_status check_tokens(lc_tokens *t) {
    for (int64_t i = 0; i < t->n; i++) {
        uint32_t x = tokens_get(t, i);
        if (x >= t->vocab) {
            lc_status s = lc_errorf(LC_EINVAL, "token file '%s': token %lld is %u, not below vocab %u", t->path, (long long)i, x, t->vocab);
            tokens_close(t);
            return s;
        }
    }
    return LC_OK;
}

lc_status tokens_open(const char *path, lc_tokens *t) {
    LC_TRY(map_file(path, t));
    const unsigned char *h = t->map;
    lc_status s = LC_OK;
    if (t->map_len < HEADER) {
        s = lc_errorf(LC_EINVAL, "token file '%s': truncated: %zu bytes, the header alone is %d", path, t->map_len, HEADER);
    } else if (memcmp(h, tok_magic, 8)) {
        s = lc_errorf(LC_EINVAL, "token file '%s': bad magic (not a longctx token file; a headerless uint16/uint32 file needs tokens_open_raw)", path);
    } else if (rd(h + 8, 4) != 1) {
        s = lc_errorf(LC_EINVAL, "token file '%s': format version %llu, this build reads version 1", path, (unsigned long long)rd(h + 8, 4));
    } else if (rd(h + 12, 4) != 2 && rd(h + 12, 4) != 4) {
        s = lc_errorf(LC_EINVAL, "token file '%s': dtype of %llu bytes (must be 2 or 4)", path, (unsigned long long)rd(h + 12, 4));
    } else if (rd(h + 16, 4) < 1 || rd(h + 16, 4) > 0x80000000u || (rd(h + 12, 4) == 2 && rd(h + 16, 4) > 65536)) {
        s = lc_errorf(LC_EINVAL, "token file '%s': vocab %llu does not fit the %llu-byte dtype", path, (unsigned long long)rd(h + 16, 4),
                      (unsigned long long)rd(h + 12, 4));
    } else {
        uint64_t n = rd(h + 24, 8), db = rd(h + 12, 4), have = (t->map_len - HEADER) / db;
        if ((t->map_len - HEADER) % db || n != have)
            s = lc_errorf(LC_EINVAL, "token file '%s': header says %llu tokens, the file holds %llu bytes of tokens (%s)", path,
                          (unsigned long long)n, (unsigned long long)(t->map_len - HEADER), n > have ? "truncated" : "trailing bytes");
        else if (n == 0)
            s = lc_errorf(LC_EINVAL, "token file '%s': no tokens", path);
        else {
            t->dtype_bytes = (int)db;
            t->vocab = (uint32_t)rd(h + 16, 4);
            t->n = (int64_t)n;
            t->data = h + HEADER;
        }
    }
    if (s) {
        tokens_close(t);
        return s;
    }
    return check_tokens(t);
}

lc_status tokens_open_raw(const char *path, int dtype_bytes, uint32_t vocab, lc_tokens *t) {
    LC_REQUIRE(dtype_bytes == 2 || dtype_bytes == 4, "token file '%s': dtype of %d bytes (must be 2 or 4)", path, dtype_bytes);
    LC_REQUIRE(vocab >= 1 && vocab <= 0x80000000u, "token file '%s': vocab %u out of range 1..2^31 (batches are int32)", path, vocab);
    LC_TRY(map_file(path, t));
    if (t->map_len % (size_t)dtype_bytes) {
        lc_status s = lc_errorf(LC_EINVAL, "token file '%s': %zu bytes is not a whole number of %d-byte tokens (truncated?)", path, t->map_len, dtype_bytes);
        tokens_close(t);
        return s;
    }
    t->dtype_bytes = dtype_bytes;
    t->vocab = vocab;
    t->n = (int64_t)(t->map_len / (size_t)dtype_bytes);
    t->data = t->map;
    return check_tokens(t);
}

static void header_bytes(unsigned char h[HEADER], int dtype_bytes, uint32_t vocab, uint64_t n) {
    memset(h, 0, HEADER);
    memcpy(h, tok_magic, 8);
    wr(h + 8, 1, 4);
    wr(h + 12, (uint64_t)dtype_bytes, 4);
    wr(h + 16, vocab, 4);
    wr(h + 24, n, 8);
}

lc_status tokens_write(const char *path, const uint32_t *tok, int64_t n, int dtype_bytes, uint32_t vocab) {
    if (dtype_bytes == 0) dtype_bytes = vocab <= 65536 ? 2 : 4;
    LC_REQUIRE(dtype_bytes == 2 || dtype_bytes == 4, "token file '%s': dtype of %d bytes (must be 2 or 4)", path, dtype_bytes);
    LC_REQUIRE(dtype_bytes == 4 || vocab <= 65536, "token file '%s': vocab %u needs 4-byte tokens", path, vocab);
    LC_REQUIRE(vocab <= 0x80000000u, "token file '%s': vocab %u is above 2^31 (batches are int32)", path, vocab);
    LC_REQUIRE(n >= 1 && vocab >= 1, "token file '%s': nothing to write (n = %lld, vocab = %u)", path, (long long)n, vocab);
    for (int64_t i = 0; i < n; i++)
        LC_REQUIRE(tok[i] < vocab, "token file '%s': token %lld is %u, not below vocab %u", path, (long long)i, tok[i], vocab);
    FILE *f = fopen(path, "wb");
    if (!f) return lc_errorf(LC_EIO, "token file '%s': cannot create: %s", path, strerror(errno));
    unsigned char h[HEADER], buf[4096];
    header_bytes(h, dtype_bytes, vocab, (uint64_t)n);
    int ok = fwrite(h, 1, HEADER, f) == HEADER;
    for (int64_t i = 0; ok && i < n;) {
        size_t k = 0;
        for (; i < n && k + 4 <= sizeof buf; i++, k += (size_t)dtype_bytes) wr(buf + k, tok[i], dtype_bytes);
        ok = fwrite(buf, 1, k, f) == k;
    }
    ok = (fclose(f) == 0) && ok;
    if (!ok) return lc_errorf(LC_EIO, "token file '%s': write failed (disk full?)", path);
    return LC_OK;
}

lc_status tokenize_bytes_file(const char *in_path, const char *out_path, int dtype_bytes, int64_t *n_out) {
    if (dtype_bytes == 0) dtype_bytes = 2;
    LC_REQUIRE(dtype_bytes == 2 || dtype_bytes == 4, "tokenize: dtype of %d bytes (must be 2 or 4)", dtype_bytes);
    FILE *in = fopen(in_path, "rb");
    if (!in) return lc_errorf(LC_EIO, "tokenize: cannot open '%s': %s", in_path, strerror(errno));
    FILE *out = fopen(out_path, "wb");
    if (!out) {
        fclose(in);
        return lc_errorf(LC_EIO, "tokenize: cannot create '%s': %s", out_path, strerror(errno));
    }
    unsigned char h[HEADER], ib[1 << 16], ob[(1 << 16) * 4];
    header_bytes(h, dtype_bytes, 256, 0);
    int ok = fwrite(h, 1, HEADER, out) == HEADER;
    uint64_t n = 0;
    size_t got;
    while (ok && (got = fread(ib, 1, sizeof ib, in)) > 0) {
        for (size_t i = 0; i < got; i++) wr(ob + i * (size_t)dtype_bytes, ib[i], dtype_bytes);
        ok = fwrite(ob, (size_t)dtype_bytes, got, out) == got;
        n += got;
    }
    int rerr = ferror(in);
    fclose(in);
    if (ok && !rerr && n > 0) {
        header_bytes(h, dtype_bytes, 256, n);
        ok = fseek(out, 0, SEEK_SET) == 0 && fwrite(h, 1, HEADER, out) == HEADER;
    }
    ok = (fclose(out) == 0) && ok;
    if (rerr || !ok || n == 0) {
        remove(out_path);
        if (rerr) return lc_errorf(LC_EIO, "tokenize: read error in '%s'", in_path);
        if (n == 0) return lc_errorf(LC_EINVAL, "tokenize: '%s' is empty", in_path);
        return lc_errorf(LC_EIO, "tokenize: write failed for '%s' (disk full?)", out_path);
    }
    if (n_out) *n_out = (int64_t)n;
    return LC_OK;
}

/* ---- loader ------------------------------------------------------------------------------ */

lc_status loader_init(lc_loader *l, const lc_tokens *t, int64_t B, int64_t T, int mode, uint64_t seed, int64_t lo, int64_t hi) {
    if (hi == 0) hi = t->n;
    LC_REQUIRE(B >= 1 && T >= 1, "loader: batch %lld x %lld: both must be >= 1", (long long)B, (long long)T);
    LC_REQUIRE(mode == LC_LOADER_RANDOM || mode == LC_LOADER_SEQUENTIAL, "loader: unknown mode %d", mode);
    LC_REQUIRE(0 <= lo && lo < hi && hi <= t->n, "loader: token range [%lld, %lld) is not inside '%s' (%lld tokens)", (long long)lo,
               (long long)hi, t->path, (long long)t->n);
    LC_REQUIRE(hi - lo >= T + 1, "loader: '%s' range [%lld, %lld) has %lld tokens, a row of T = %lld needs %lld", t->path, (long long)lo,
               (long long)hi, (long long)(hi - lo), (long long)T, (long long)(T + 1));
    memset(l, 0, sizeof *l);
    l->t = t;
    l->B = B;
    l->T = T;
    l->lo = lo;
    l->hi = hi;
    l->mode = mode;
    l->seed = seed;
    l->step = 0;
    return LC_OK;
}

void loader_seek(lc_loader *l, int64_t step) { l->step = step < 0 ? 0 : step; }

static int64_t rows_per_pass(const lc_loader *l) { return (l->hi - l->lo - 1) / l->T; }

int64_t loader_epoch(const lc_loader *l, int64_t step) { return step * l->B / rows_per_pass(l); }

void loader_next(lc_loader *l, int32_t *out) {
    const int64_t row = l->T + 1, span = l->hi - l->lo - l->T, R = rows_per_pass(l);
    for (int64_t b = 0; b < l->B; b++) {
        int64_t start;
        if (l->mode == LC_LOADER_RANDOM) {
            uint64_t u = lc_hash3(l->seed, (uint64_t)l->step, (uint64_t)b);
            start = l->lo + (int64_t)(((unsigned __int128)u * (uint64_t)span) >> 64);
        } else {
            start = l->lo + ((l->step * l->B + b) % R) * l->T;
        }
        int32_t *o = out + b * row;
        for (int64_t j = 0; j < row; j++) o[j] = (int32_t)tokens_get(l->t, start + j);
    }
    l->step++;
}
