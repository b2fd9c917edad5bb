/* test_data.c — token files and batches: write/open round trip (uint16 and uint32), the byte
 * tokenizer (function and `longctx tokenize`), batches deterministic given a seed and made of
 * consecutive in-range tokens, sequential tiling and wrap, and malformed files refused with a
 * message naming the fault. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "data.h"
#include "test.h"

static const char *A = "build/test_data_a.bin", *BAD = "build/test_data_bad.bin", *TXT = "build/test_data.txt";

static void test_files(lc_rng *r) {
    t_begin("write -> open round trip, uint16 and uint32, ragged length");
    const int64_t n = 10007;
    uint32_t *tok = malloc(n * sizeof *tok);
    for (int dt = 2; dt <= 4; dt += 2) {
        uint32_t vocab = dt == 2 ? 50257 : 100000;
        for (int64_t i = 0; i < n; i++) tok[i] = (uint32_t)lc_rng_below(r, vocab);
        tok[7] = vocab - 1;
        if (!T_OK(tokens_write(A, tok, n, dt, vocab))) continue;
        lc_tokens t;
        if (!T_OK(tokens_open(A, &t))) continue;
        T_CHECK(t.n == n && t.dtype_bytes == dt && t.vocab == vocab, "header: n %lld dtype %d vocab %u", (long long)t.n, t.dtype_bytes, t.vocab);
        int same = 1;
        for (int64_t i = 0; i < n; i++) same &= tokens_get(&t, i) == tok[i];
        T_CHECK(same, "uint%d tokens differ", 8 * dt);
        tokens_close(&t);
    }
    T_ERR(tokens_write(A, tok, n, 2, 70000), "needs 4-byte tokens");
    for (int i = 0; i < 10; i++) tok[i] = (uint32_t)i * 20;
    tok[3] = 300;
    T_ERR(tokens_write(A, tok, 10, 2, 256), "token 3 is 300, not below vocab 256");
    free(tok);

    t_begin("byte tokenizer: token = byte, every byte value, both dtypes, and the CLI");
    unsigned char text[70001];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (unsigned char)(i < 256 ? i : lc_rng_below(r, 256));
    t_write_file(TXT, text, sizeof text);
    for (int dt = 2; dt <= 4; dt += 2) {
        int64_t got = 0;
        T_OK(tokenize_bytes_file(TXT, A, dt, &got));
        lc_tokens t;
        if (!T_OK(tokens_open(A, &t))) continue;
        T_CHECK(got == (int64_t)sizeof text && t.n == got && t.vocab == 256 && t.dtype_bytes == dt, "n %lld", (long long)t.n);
        int same = 1;
        for (int64_t i = 0; i < t.n; i++) same &= tokens_get(&t, i) == text[i];
        T_CHECK(same, "tokens are not the bytes");
        tokens_close(&t);
    }
    char *argv1[] = {"tokenize", (char *)TXT, (char *)A, "--dtype", "u32", NULL};
    T_CHECK(cmd_tokenize(5, argv1) == 0, "cmd_tokenize failed: %s", lc_last_error());
    lc_tokens t;
    if (T_OK(tokens_open(A, &t))) {
        T_CHECK(t.dtype_bytes == 4 && t.n == (int64_t)sizeof text && tokens_get(&t, 255) == 255, "CLI output");
        tokens_close(&t);
    }
    char *argv2[] = {"tokenize", (char *)TXT, (char *)A, "--dtype", "u8", NULL};
    T_CHECK(cmd_tokenize(5, argv2) == 2, "bad --dtype accepted");
    char *argv3[] = {"tokenize", "build/no_such_input.txt", (char *)A, NULL};
    T_CHECK(cmd_tokenize(3, argv3) == 1, "missing input accepted");
    T_ERR(tokenize_bytes_file("build/no_such_input.txt", A, 2, NULL), "cannot open 'build/no_such_input.txt'");
    t_write_file(TXT, "", 0);
    T_ERR(tokenize_bytes_file(TXT, A, 2, NULL), "is empty");
    remove(TXT);
}

static void test_malformed(lc_rng *r) {
    t_begin("malformed token files are refused with a message naming the fault");
    uint32_t tok[100];
    for (int i = 0; i < 100; i++) tok[i] = (uint32_t)lc_rng_below(r, 256);
    tokens_write(A, tok, 100, 2, 256);
    size_t size = 0;
    unsigned char *good = (unsigned char *)t_read_file(A, &size), bad[512];
    lc_tokens t;
#define CASE(mutate, len, needle)          \
    do {                                   \
        memcpy(bad, good, size);           \
        mutate;                            \
        t_write_file(BAD, bad, (len));             \
        T_ERR(tokens_open(BAD, &t), needle); \
    } while (0)
    CASE(bad[0] = 'X', size, "bad magic");
    CASE(bad[8] = 9, size, "format version 9");
    CASE(bad[12] = 3, size, "dtype of 3 bytes");
    CASE((bad[16] = 0, bad[17] = 0), size, "vocab 0");
    CASE((bad[16] = 0, bad[17] = 0, bad[18] = 2), size, "does not fit the 2-byte dtype");
    CASE((void)0, 10, "truncated: 10 bytes");
    CASE((void)0, size - 2, "truncated");
    CASE((void)0, size - 1, "truncated");
    CASE((void)0, 32, "header says 100 tokens");
    CASE((bad[size] = 1, bad[size + 1] = 0), size + 2, "trailing bytes");
    CASE((bad[24] = 0), 32, "no tokens");
    CASE((bad[32 + 2 * 57] = 0x2c, bad[32 + 2 * 57 + 1] = 1), size, "token 57 is 300, not below vocab 256");
    CASE((void)0, 0, "empty file");
    T_ERR(tokens_open("build/no_such.bin", &t), "cannot open");
    T_ERR(tokens_open("build", &t), "not a regular file");
    t_write_file(BAD, good + 32, 199);
    T_ERR(tokens_open_raw(BAD, 2, 256, &t), "not a whole number of 2-byte tokens");
    T_ERR(tokens_open_raw(BAD, 3, 256, &t), "must be 2 or 4");
    t_write_file(BAD, good + 32, 200);
    if (T_OK(tokens_open_raw(BAD, 2, 256, &t))) {
        T_CHECK(t.n == 100 && tokens_get(&t, 99) == tok[99], "raw open");
        tokens_close(&t);
    }
    T_ERR(tokens_open_raw(BAD, 2, 100, &t), "not below vocab 100");

    t_begin("random header flips and truncations: refused or valid, never out of range");
    int refused = 0;
    for (int it = 0; it < 300; it++) {
        memcpy(bad, good, size);
        size_t len = size;
        if (it % 3 == 0) len = lc_rng_below(r, size);
        else bad[lc_rng_below(r, 40)] ^= (unsigned char)(1 + lc_rng_below(r, 255));
        t_write_file(BAD, bad, len);
        if (tokens_open(BAD, &t) != LC_OK) {
            refused++;
            T_CHECK(strstr(lc_last_error(), BAD) != NULL, "message lacks the path: %s", lc_last_error());
            continue;
        }
        for (int64_t i = 0; i < t.n; i++) T_CHECK(tokens_get(&t, i) < t.vocab, "accepted file holds an out-of-range token");
        tokens_close(&t);
    }
    T_CHECK(refused > 150, "only %d of 300 refused", refused);
    free(good);
    remove(BAD);
#undef CASE
}

static void test_loader(void) {
    /* token i = i, so a row identifies its start */
    const int64_t n = 5003;
    uint32_t *tok = malloc(n * sizeof *tok);
    for (int64_t i = 0; i < n; i++) tok[i] = (uint32_t)i;
    tokens_write(A, tok, n, 4, (uint32_t)n);
    free(tok);
    lc_tokens t;
    if (!T_OK(tokens_open(A, &t))) return;
    const int64_t B = 3, T = 37, lo = 100, hi = 4000;
    int32_t *x = malloc(B * (T + 1) * sizeof *x), *y = malloc(B * (T + 1) * sizeof *y);
    lc_loader a, b, c;

    t_begin("random batches: rows of consecutive tokens inside the range, covering it");
    T_OK(loader_init(&a, &t, B, T, LC_LOADER_RANDOM, 42, lo, hi));
    int64_t smin = n, smax = -1;
    for (int step = 0; step < 400; step++) {
        loader_next(&a, x);
        for (int64_t r = 0; r < B; r++) {
            int32_t *row = x + r * (T + 1);
            int ok = row[0] >= lo && row[0] + T < hi;
            for (int64_t j = 1; j <= T; j++) ok &= row[j] == row[0] + j;
            if (!T_CHECK(ok, "row %lld of step %d starts at %d, not a consecutive row inside [%lld, %lld)", (long long)r, step, row[0], (long long)lo,
                         (long long)hi))
                break;
            smin = row[0] < smin ? row[0] : smin;
            smax = row[0] > smax ? row[0] : smax;
        }
    }
    T_CHECK(smin < lo + 50 && smax > hi - T - 1 - 50, "starts span only [%lld, %lld]", (long long)smin, (long long)smax);

    t_begin("same seed, same batches; another seed, other batches; seek(0) replays");
    T_OK(loader_init(&a, &t, B, T, LC_LOADER_RANDOM, 7, 0, 0));
    T_OK(loader_init(&b, &t, B, T, LC_LOADER_RANDOM, 7, 0, 0));
    T_OK(loader_init(&c, &t, B, T, LC_LOADER_RANDOM, 8, 0, 0));
    int same_ab = 1, same_ac = 1;
    int32_t first[3 * 38];
    for (int step = 0; step < 20; step++) {
        loader_next(&a, x);
        loader_next(&b, y);
        if (step == 0) memcpy(first, x, sizeof first);
        same_ab &= !memcmp(x, y, B * (T + 1) * sizeof *x);
        loader_next(&c, y);
        same_ac &= !memcmp(x, y, B * (T + 1) * sizeof *x);
    }
    T_CHECK(same_ab && !same_ac, "determinism: same seed %d, other seed %d", same_ab, same_ac);
    loader_seek(&a, 0);
    loader_next(&a, x);
    T_CHECK(!memcmp(x, first, sizeof first), "seek(0) does not replay");
    /* the state is plain data: a copy continues identically */
    b = a;
    loader_next(&a, x);
    loader_next(&b, y);
    T_CHECK(!memcmp(x, y, B * (T + 1) * sizeof *x), "copied state diverges");

    t_begin("sequential batches tile the range with stride T and wrap");
    T_OK(loader_init(&a, &t, B, T, LC_LOADER_SEQUENTIAL, 0, lo, hi));
    int64_t expect = lo, wraps = 0;
    for (int step = 0; step < 80; step++) {
        loader_next(&a, x);
        for (int64_t r = 0; r < B; r++) {
            if (expect + T + 1 > hi) {
                expect = lo;
                wraps++;
            }
            int32_t *row = x + r * (T + 1);
            int ok = row[0] == expect;
            for (int64_t j = 1; j <= T; j++) ok &= row[j] == row[0] + j;
            T_CHECK(ok, "step %d row %lld starts at %d, expected %lld", step, (long long)r, row[0], (long long)expect);
            expect += T;
        }
    }
    T_CHECK(wraps >= 2 && loader_epoch(&a, a.step) == wraps, "wraps %lld epoch %lld", (long long)wraps, (long long)loader_epoch(&a, a.step));

    t_begin("resume: seek(k) gives batch k of an uninterrupted run, in both modes");
    for (int mode = 0; mode < 2; mode++) {
        T_OK(loader_init(&a, &t, B, T, mode, 3, lo, hi));
        T_OK(loader_init(&b, &t, B, T, mode, 3, lo, hi));
        for (int step = 0; step < 13; step++) loader_next(&a, x);
        loader_seek(&b, 12);
        loader_next(&b, y);
        T_CHECK(!memcmp(x, y, B * (T + 1) * sizeof *x) && a.step == 13 && b.step == 13, "mode %d: seek differs from running", mode);
    }

    t_begin("loader refuses impossible shapes and ranges");
    T_ERR(loader_init(&a, &t, B, 5003, LC_LOADER_RANDOM, 0, 0, 0), "needs 5004");
    T_OK(loader_init(&a, &t, 1, 5002, LC_LOADER_RANDOM, 0, 0, 0));
    {   /* T + 1 = the whole file: the only row is the file */
        int32_t *z = malloc(5003 * sizeof *z);
        loader_next(&a, z);
        T_CHECK(z[0] == 0 && z[5002] == 5002, "whole-file row %d..%d", z[0], z[5002]);
        free(z);
    }
    T_ERR(loader_init(&a, &t, 0, T, LC_LOADER_RANDOM, 0, 0, 0), "both must be >= 1");
    T_ERR(loader_init(&a, &t, B, T, 5, 0, 0, 0), "unknown mode");
    T_ERR(loader_init(&a, &t, B, T, LC_LOADER_RANDOM, 0, 4000, 100), "not inside");
    T_ERR(loader_init(&a, &t, B, T, LC_LOADER_RANDOM, 0, 0, 6000), "not inside");
    T_ERR(loader_init(&a, &t, B, T, LC_LOADER_SEQUENTIAL, 0, 100, 120), "has 20 tokens");
    tokens_close(&t);
    free(x);
    free(y);
    remove(A);
}

int main(void) {
    lc_rng r;
    lc_rng_seed(&r, 99);
    test_files(&r);
    test_malformed(&r);
    test_loader();
    return t_finish();
}
