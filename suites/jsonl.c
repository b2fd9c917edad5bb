/* jsonl.c — JSON writer and parser. See jsonl.h. */
#include "jsonl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int jb_grow(struct jbuf *b, size_t need) {
    if (b->err) return 0;
    if (b->n + need + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + need + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->err = 1; return 0; }
    b->p = p;
    b->cap = cap;
    return 1;
}

void jb_raw(struct jbuf *b, const char *s, size_t n) {
    if (!jb_grow(b, n)) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void jb_printf(struct jbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < (int)sizeof tmp) { jb_raw(b, tmp, (size_t)n); return; }
    if (!jb_grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

/* decode one UTF-8 code point; returns its length, or 0 when invalid */
static int utf8_cp(const unsigned char *s, size_t n, uint32_t *cp) {
    if (s[0] < 0x80) { *cp = s[0]; return 1; }
    int len = s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    if (!len || (size_t)len > n) return 0;
    uint32_t c = s[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c < 0xe000))) || (len == 4 && (c < 0x10000 || c > 0x10ffff))) return 0;
    *cp = c;
    return len;
}

void jb_str(struct jbuf *b, const char *s, size_t n) {
    if (!jb_grow(b, n + n / 8 + 2)) return;
    b->p[b->n++] = '"';
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            size_t j = i;
            while (j < n && u[j] >= 0x20 && u[j] < 0x7f && u[j] != '"' && u[j] != '\\') j++;
            jb_raw(b, s + i, j - i);
            i = j;
            continue;
        }
        char e[16];
        uint32_t cp;
        int len;
        switch (c) {
        case '"': jb_raw(b, "\\\"", 2); i++; continue;
        case '\\': jb_raw(b, "\\\\", 2); i++; continue;
        case '\n': jb_raw(b, "\\n", 2); i++; continue;
        case '\t': jb_raw(b, "\\t", 2); i++; continue;
        case '\r': jb_raw(b, "\\r", 2); i++; continue;
        case '\b': jb_raw(b, "\\b", 2); i++; continue;
        case '\f': jb_raw(b, "\\f", 2); i++; continue;
        default: break;
        }
        if (c < 0x80) {
            snprintf(e, sizeof e, "\\u%04x", c);
            jb_raw(b, e, 6);
            i++;
        } else if ((len = utf8_cp(u + i, n - i, &cp)) > 0) {
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
                jb_raw(b, e, 12);
            } else {
                snprintf(e, sizeof e, "\\u%04x", cp);
                jb_raw(b, e, 6);
            }
            i += (size_t)len;
        } else {
            snprintf(e, sizeof e, "\\u%04x", c); /* a stray byte: keep it visible, Latin-1 style */
            jb_raw(b, e, 6);
            i++;
        }
    }
    jb_raw(b, "\"", 1);
}

/* ---- parser ---- */

struct jp { const char *s; size_t n, i; const char *what; int depth; };

static lc_status jerr(struct jp *p, const char *msg) {
    return lc_errorf(LC_EINVAL, "%s: malformed JSON at column %zu: %s", p->what, p->i + 1, msg);
}
static void ws(struct jp *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static lc_status parse_value(struct jp *p, struct jval *v);

static int hex4(const char *s, uint32_t *out) {
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        x <<= 4;
        if (c >= '0' && c <= '9') x |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') x |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') x |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = x;
    return 1;
}

static void put_utf8(char *o, size_t *k, uint32_t c) {
    if (c < 0x80) o[(*k)++] = (char)c;
    else if (c < 0x800) { o[(*k)++] = (char)(0xc0 | c >> 6); o[(*k)++] = (char)(0x80 | (c & 0x3f)); }
    else if (c < 0x10000) {
        o[(*k)++] = (char)(0xe0 | c >> 12); o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3f)); o[(*k)++] = (char)(0x80 | (c & 0x3f));
    } else {
        o[(*k)++] = (char)(0xf0 | c >> 18); o[(*k)++] = (char)(0x80 | ((c >> 12) & 0x3f));
        o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3f)); o[(*k)++] = (char)(0x80 | (c & 0x3f));
    }
}

static lc_status parse_string(struct jp *p, char **out, size_t *len) {
    p->i++; /* opening quote */
    size_t st = p->i;
    while (p->i < p->n && p->s[p->i] != '"') {
        if (p->s[p->i] == '\\') p->i++;
        else if ((unsigned char)p->s[p->i] < 0x20) return jerr(p, "control character inside a string");
        p->i++;
    }
    if (p->i >= p->n) return jerr(p, "unterminated string");
    size_t en = p->i;
    p->i++;
    char *o = malloc(en - st + 1);
    if (!o) return lc_errorf(LC_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = st; i < en; i++) {
        char c = p->s[i];
        if (c != '\\') { o[k++] = c; continue; }
        c = p->s[++i];
        switch (c) {
        case '"': o[k++] = '"'; break;
        case '\\': o[k++] = '\\'; break;
        case '/': o[k++] = '/'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (i + 4 >= en || !hex4(p->s + i + 1, &cp)) { free(o); p->i = i; return jerr(p, "bad \\u escape"); }
            i += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < en && p->s[i + 1] == '\\' && p->s[i + 2] == 'u' &&
                hex4(p->s + i + 3, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
            put_utf8(o, &k, cp);
            break;
        }
        default: free(o); p->i = i; return jerr(p, "bad escape");
        }
    }
    o[k] = 0;
    *out = o;
    *len = k;
    return LC_OK;
}

static lc_status parse_value(struct jp *p, struct jval *v) {
    memset(v, 0, sizeof *v);
    ws(p);
    if (p->i >= p->n) return jerr(p, "unexpected end of input");
    if (++p->depth > 200) return jerr(p, "nesting too deep");
    char c = p->s[p->i];
    lc_status st = LC_OK;
    if (c == '{' || c == '[') {
        int obj = c == '{';
        v->type = obj ? J_OBJ : J_ARR;
        p->i++;
        size_t cap = 0;
        ws(p);
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) { p->i++; p->depth--; return LC_OK; }
        for (;;) {
            if (v->n == cap) {
                cap = cap ? 2 * cap : 8;
                struct jval *it = realloc(v->items, cap * sizeof *it);
                if (!it) return lc_errorf(LC_ENOMEM, "out of memory");
                v->items = it;
                if (obj) {
                    char **ks = realloc(v->keys, cap * sizeof *ks);
                    if (!ks) return lc_errorf(LC_ENOMEM, "out of memory");
                    v->keys = ks;
                }
            }
            if (obj) {
                ws(p);
                if (p->i >= p->n || p->s[p->i] != '"') return jerr(p, "expected a string key");
                size_t kl;
                v->keys[v->n] = NULL;
                v->items[v->n].type = J_NULL;
                v->items[v->n].n = 0;
                if ((st = parse_string(p, &v->keys[v->n], &kl))) return st;
                v->n++;
                ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') return jerr(p, "expected ':'");
                p->i++;
                if ((st = parse_value(p, &v->items[v->n - 1]))) return st;
            } else {
                v->n++;
                if ((st = parse_value(p, &v->items[v->n - 1]))) return st;
            }
            ws(p);
            if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
            if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) { p->i++; break; }
            return jerr(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    } else if (c == '"') {
        v->type = J_STR;
        st = parse_string(p, &v->str, &v->slen);
    } else if (c == 't' && p->n - p->i >= 4 && !memcmp(p->s + p->i, "true", 4)) {
        v->type = J_BOOL; v->b = 1; p->i += 4;
    } else if (c == 'f' && p->n - p->i >= 5 && !memcmp(p->s + p->i, "false", 5)) {
        v->type = J_BOOL; p->i += 5;
    } else if (c == 'n' && p->n - p->i >= 4 && !memcmp(p->s + p->i, "null", 4)) {
        v->type = J_NULL; p->i += 4;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        char tmp[64];
        size_t j = 0;
        while (p->i < p->n && j < 63 && strchr("+-0123456789.eE", p->s[p->i])) tmp[j++] = p->s[p->i++];
        tmp[j] = 0;
        char *end;
        v->type = J_NUM;
        v->num = strtod(tmp, &end);
        if (*end || j == 0) return jerr(p, "bad number");
    } else {
        return jerr(p, "unexpected character");
    }
    p->depth--;
    return st;
}

lc_status json_parse(const char *s, size_t n, struct jval *out, const char *what) {
    struct jp p = {s, n, 0, what, 0};
    lc_status st = parse_value(&p, out);
    if (!st) {
        ws(&p);
        if (p.i != n) st = jerr(&p, "trailing characters after the value");
    }
    if (st) json_free(out);
    return st;
}

void json_free(struct jval *v) {
    if (v->type == J_STR) free(v->str);
    if (v->type == J_ARR || v->type == J_OBJ) {
        for (size_t i = 0; i < v->n; i++) {
            json_free(&v->items[i]);
            if (v->keys) free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
    memset(v, 0, sizeof *v);
}

const struct jval *json_get(const struct jval *o, const char *key) {
    if (!o || o->type != J_OBJ) return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key)) return &o->items[i];
    return NULL;
}
