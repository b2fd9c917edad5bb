/* sha256.h — SHA-256 (FIPS 180-4), used to pin the vendored word lists and to record the hash
 * of the haystack and of the tokenizer in every generated sample. */
#ifndef LONGCTX_SHA256_H
#define LONGCTX_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256_ctx {
    uint32_t h[8];
    uint64_t nbytes;
    uint8_t buf[64];
    size_t nbuf;
};
void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t n);
void sha256_final(struct sha256_ctx *c, uint8_t out[32]);
/* One-shot digest as 64 lowercase hex characters plus NUL. */
void sha256_hex(const void *data, size_t n, char out[65]);

#endif
