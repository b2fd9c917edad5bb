/* jsonl.h — JSON for the suites' JSONL files: a writer that escapes like Python's
 * json.dump(ensure_ascii=True) (non-ASCII as \uXXXX, surrogate pairs above U+FFFF, invalid
 * UTF-8 bytes as \u00XX), and a small DOM parser for prediction and QA files whose errors name
 * the line and column. */
#ifndef LONGCTX_JSONL_H
#define LONGCTX_JSONL_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"

/* writer: a growable string buffer */
struct jbuf { char *p; size_t n, cap; int err; };
void jb_raw(struct jbuf *b, const char *s, size_t n);
void jb_str(struct jbuf *b, const char *s, size_t n); /* quoted, escaped */
void jb_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void jb_cstr(struct jbuf *b, const char *s) { jb_str(b, s, __builtin_strlen(s)); }

/* parser */
enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
struct jval {
    enum jtype type;
    double num;
    int b;
    char *str;  /* J_STR: decoded UTF-8 (NUL-terminated; slen bytes) */
    size_t slen;
    struct jval *items; /* J_ARR / J_OBJ values */
    char **keys;        /* J_OBJ keys */
    size_t n;
};
/* Parse one JSON value from s[0:n]; trailing whitespace only. `what` names the input (e.g.
 * "pred.jsonl line 3") in error messages, which also give the byte column. */
lc_status json_parse(const char *s, size_t n, struct jval *out, const char *what);
void json_free(struct jval *v);
const struct jval *json_get(const struct jval *obj, const char *key);

#endif
