/* gunzip.h — a small gzip (RFC 1952) / DEFLATE (RFC 1951) decoder, so a compressed haystack
 * such as Debian's jargon.txt.gz can be read without zlib. */
#ifndef LONGCTX_GUNZIP_H
#define LONGCTX_GUNZIP_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Decode a whole gzip member in `in` into a malloc'd buffer (*out, *out_len; NUL-terminated for
 * convenience). Checks the header, the block structure, and the trailer's length field; `what`
 * names the input in error messages. */
lc_status gunzip(const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len, const char *what);

#endif
