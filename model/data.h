/* data.h — token files and batches for training and perplexity evaluation.
 *
 * Token file (.bin, little-endian), as written by tokens_write / `longctx tokenize`:
 *   0  magic "LCTOK1\n\0" (8 bytes)   8  u32 version (= 1)   12 u32 dtype bytes (2 = uint16, 4 = uint32)
 *   16 u32 vocab (every token < vocab)  20 u32 reserved (0)   24 u64 n_tokens
 *   32 n_tokens tokens of `dtype bytes` each; the file ends there.
 * Headerless uint16/uint32 files (nanoGPT / llm.c style) open with tokens_open_raw, which takes
 * the dtype and vocab that a header would have said.
 * Files are memory-mapped read-only; opening checks the size against the header and every token
 * against vocab (one pass), so batches never hold an out-of-range id.
 *
 * Batches are int32 [B, T+1]: row b holds T+1 consecutive tokens (inputs = [:, :T], targets =
 * [:, 1:]). A batch is a pure function of (seed, step): resuming at a checkpoint's step gives the
 * batches an uninterrupted run would have seen, with no loader state to save.
 *   Random mode: row b of step s starts at lo + floor(u * (hi - lo - T)), u = lc_hash3(seed, s,
 *   b) / 2^64, so every start in [lo, hi-T-1] is possible and rows are independent.
 *   Sequential mode (evaluation over a held-out file or range): global row g = s*B + b starts at
 *   lo + (g mod R)*T with R = floor((hi - lo - 1) / T) rows per pass, so consecutive rows tile
 *   [lo, hi) with stride T (a row's last token is the next row's first) and wrap after R rows.
 */
#ifndef LONGCTX_DATA_H
#define LONGCTX_DATA_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char path[256];
    void *map;
    size_t map_len;
    const unsigned char *data; /* first token */
    int dtype_bytes;           /* 2 or 4 */
    uint32_t vocab;
    int64_t n;                 /* tokens */
} lc_tokens;

lc_status tokens_open(const char *path, lc_tokens *t);
lc_status tokens_open_raw(const char *path, int dtype_bytes, uint32_t vocab, lc_tokens *t);
void tokens_close(lc_tokens *t);

static inline uint32_t tokens_get(const lc_tokens *t, int64_t i) {
    const unsigned char *p = t->data + i * t->dtype_bytes;
    return t->dtype_bytes == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8
                               : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Write n tokens (each < vocab) with a header. dtype_bytes 0 picks 2 when vocab <= 65536. */
lc_status tokens_write(const char *path, const uint32_t *tok, int64_t n, int dtype_bytes, uint32_t vocab);

/* The byte-level tokenizer: token = byte value (vocab 256), for any file. Streams; n_out (may be
 * NULL) receives the token count. */
lc_status tokenize_bytes_file(const char *in_path, const char *out_path, int dtype_bytes, int64_t *n_out);

enum lc_loader_mode { LC_LOADER_RANDOM = 0, LC_LOADER_SEQUENTIAL = 1 };

typedef struct {
    const lc_tokens *t;
    int64_t B, T, lo, hi; /* rows, row length - 1, token range [lo, hi) */
    int mode;
    uint64_t seed;
    int64_t step; /* the batch loader_next returns next */
} lc_loader;

/* hi = 0 means the end of the file. Refuses ranges shorter than T+1 tokens. Starts at step 0. */
lc_status loader_init(lc_loader *l, const lc_tokens *t, int64_t B, int64_t T, int mode, uint64_t seed, int64_t lo, int64_t hi);
/* Fill out[B * (T+1)] with batch `step` and advance. */
void loader_next(lc_loader *l, int32_t *out);
/* Jump to a step (0 = the start; a checkpoint's step to resume). */
void loader_seek(lc_loader *l, int64_t step);
/* Sequential mode: complete passes over [lo, hi) before batch `step`. */
int64_t loader_epoch(const lc_loader *l, int64_t step);

/* `longctx tokenize`: byte-level tokenizing of a text file into a token file; --info. */
int cmd_tokenize(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
