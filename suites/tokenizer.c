/* tokenizer.c — the byte-level tokenizer (id = byte value) and the name lookup. */
#include "tokenizer.h"

#include <string.h>

#include "common.h"

static int64_t byte_encode(const struct tokenizer *t, const char *text, size_t n, int32_t *ids, size_t cap) {
    (void)t;
    if (ids) {
        size_t m = n < cap ? n : cap;
        const unsigned char *u = (const unsigned char *)text;
        for (size_t i = 0; i < m; i++) ids[i] = u[i];
    }
    return (int64_t)n;
}

static int64_t byte_decode(const struct tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap) {
    (void)t;
    size_t m = n < cap ? n : cap;
    for (size_t i = 0; i < m; i++) out[i] = (char)(unsigned char)ids[i];
    return (int64_t)n;
}

/* sha256 = sha256sum of the string "byte-v1: id = byte value, vocab 256".
 * Probe ids: printable ASCII except '|' (the probes' needle delimiter): '!'..'~'. The hash names the
 * definition "byte-v1: id = byte value, vocab 256", so a sample records which tokenizer made it. */
static const struct tokenizer BYTE_TOK = {
    "byte", 256, "59823e3d26c471e3f24ce645669506688915de5fdd2385b604faf298c433a35d",
    33, 127, '|', byte_encode, byte_decode, NULL};

const struct tokenizer *tokenizer_byte(void) { return &BYTE_TOK; }

const struct tokenizer *tokenizer_by_name(const char *name) {
    if (!strcmp(name, "byte")) return &BYTE_TOK;
    lc_errorf(LC_EINVAL, "unknown tokenizer '%s' (known: byte)", name);
    return NULL;
}
