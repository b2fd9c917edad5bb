/* checkpoint.c — the checkpoint file format of checkpoint.h: writer, validating reader.
 * The reader trusts nothing in the file: every length and offset is bounded by the file size
 * before it is used, so garbage input gives a message, never a crash or a huge allocation. */
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char ckpt_magic[8] = {'L', 'C', 'C', 'K', 'P', 'T', '1', '\n'};
enum { FIXED = 72, MAX_CONFIG = 1 << 20, MAX_NAME = 127, MAX_TENSORS = 1 << 20 };

uint64_t ckpt_fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int host_little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* ---- byte buffer for the header ---------------------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t len, cap;
    int oom;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_le(bytes *b, uint64_t v, int n) {
    unsigned char t[8];
    for (int i = 0; i < n; i++) t[i] = (unsigned char)(v >> (8 * i));
    put(b, t, (size_t)n);
}
static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void set_le(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* ---- save -------------------------------------------------------------------------------- */

static void put_record(bytes *b, const char *prefix, const lc_param *p, uint64_t offset) {
    char name[MAX_NAME + 1];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    put_le(b, strlen(name), 2);
    put(b, name, strlen(name));
    put_le(b, 0, 1); /* f32 */
    put_le(b, (uint64_t)p->ndim, 1);
    for (int k = 0; k < p->ndim; k++) put_le(b, (uint64_t)p->shape[k], 8);
    put_le(b, offset, 8);
    put_le(b, (uint64_t)p->numel * 4, 8);
}

lc_status ckpt_save(const char *path, const lc_config *cfg, uint64_t step, const float *params, const float *adam_m, const float *adam_v) {
    if (!host_little_endian()) return lc_errorf(LC_EUNSUPPORTED, "checkpoint '%s': big-endian hosts are not supported", path);
    LC_REQUIRE(params != NULL, "checkpoint '%s': no parameters to save", path);
    LC_REQUIRE((adam_m == NULL) == (adam_v == NULL), "checkpoint '%s': AdamW m and v must be given together", path);
    const int opt = adam_m != NULL;
    int64_t nt = lc_config_tensors(cfg, NULL, 0);
    lc_param *ps = lc_malloc((size_t)nt * sizeof *ps, "checkpoint tensor list");
    if (!ps) return LC_ENOMEM;
    lc_config_tensors(cfg, ps, nt);
    const uint64_t nparam = (uint64_t)(ps[nt - 1].offset + ps[nt - 1].numel);
    const uint64_t payload_len = nparam * 4 * (opt ? 3 : 1);

    size_t clen = lc_config_print(cfg, NULL, 0);
    char *ctext = lc_malloc(clen + 1, "checkpoint config text");
    if (!ctext) {
        free(ps);
        return LC_ENOMEM;
    }
    lc_config_print(cfg, ctext, clen + 1);

    uint64_t pfnv = ckpt_fnv1a(CKPT_FNV_INIT, params, nparam * 4);
    if (opt) {
        pfnv = ckpt_fnv1a(pfnv, adam_m, nparam * 4);
        pfnv = ckpt_fnv1a(pfnv, adam_v, nparam * 4);
    }

    bytes b = {0};
    put(&b, ckpt_magic, 8);
    put_le(&b, CKPT_VERSION, 4);
    put_le(&b, opt ? 1 : 0, 4);
    put_le(&b, step, 8);
    put_le(&b, clen, 8);
    put_le(&b, (uint64_t)nt * (opt ? 3 : 1), 8);
    put_le(&b, 0, 8); /* header_len, patched below */
    put_le(&b, payload_len, 8);
    put_le(&b, pfnv, 8);
    put_le(&b, 0, 8); /* header_fnv, patched below */
    put(&b, ctext, clen);
    const char *prefixes[3] = {"", "adam_m.", "adam_v."};
    for (int s = 0; s < (opt ? 3 : 1); s++)
        for (int64_t i = 0; i < nt; i++) put_record(&b, prefixes[s], &ps[i], ((uint64_t)s * nparam + (uint64_t)ps[i].offset) * 4);
    while (b.len % 64) put_le(&b, 0, 1);
    free(ctext);
    free(ps);
    if (b.oom) {
        free(b.p);
        return lc_errorf(LC_ENOMEM, "checkpoint '%s': out of memory building the header", path);
    }
    set_le(b.p + 40, b.len, 8);
    set_le(b.p + 64, ckpt_fnv1a(CKPT_FNV_INIT, b.p, b.len), 8);

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(b.p);
        return lc_errorf(LC_EIO, "checkpoint: cannot create '%s': %s", tmp, strerror(errno));
    }
    int ok = fwrite(b.p, 1, b.len, f) == b.len;
    free(b.p);
    ok = ok && fwrite(params, 4, nparam, f) == nparam;
    if (opt) ok = ok && fwrite(adam_m, 4, nparam, f) == nparam && fwrite(adam_v, 4, nparam, f) == nparam;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        remove(tmp);
        return lc_errorf(LC_EIO, "checkpoint: writing '%s' failed (disk full?)", tmp);
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return lc_errorf(LC_EIO, "checkpoint: cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    }
    return LC_OK;
}

/* ---- load -------------------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    const char *path;
    uint64_t size, step, config_len, n_tensors, header_len, payload_len, payload_fnv;
    uint32_t flags;
    unsigned char *header; /* header_len bytes */
} reader;

static void reader_close(reader *r) {
    if (r->f) fclose(r->f);
    free(r->header);
    r->f = NULL;
    r->header = NULL;
}

/* Open and validate everything up to and including the header checksum. */
static lc_status reader_open(reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path;
    if (!host_little_endian()) return lc_errorf(LC_EUNSUPPORTED, "checkpoint '%s': big-endian hosts are not supported", path);
    r->f = fopen(path, "rb");
    if (!r->f) return lc_errorf(LC_EIO, "checkpoint: cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(r->f), &st) != 0 || !S_ISREG(st.st_mode)) return lc_errorf(LC_EIO, "checkpoint '%s': not a regular file", path);
    r->size = (uint64_t)st.st_size;
    unsigned char fx[FIXED];
    if (r->size < FIXED || fread(fx, 1, FIXED, r->f) != FIXED)
        return lc_errorf(LC_EINVAL, "checkpoint '%s': truncated: %llu bytes, the fixed header alone is %d", path, (unsigned long long)r->size, FIXED);
    if (memcmp(fx, ckpt_magic, 8)) return lc_errorf(LC_EINVAL, "checkpoint '%s': bad magic (not a longctx checkpoint)", path);
    uint32_t version = (uint32_t)get_le(fx + 8, 4);
    if (version != CKPT_VERSION)
        return lc_errorf(LC_EINVAL, "checkpoint '%s': format version %u, this build reads version %d", path, version, CKPT_VERSION);
    r->flags = (uint32_t)get_le(fx + 12, 4);
    r->step = get_le(fx + 16, 8);
    r->config_len = get_le(fx + 24, 8);
    r->n_tensors = get_le(fx + 32, 8);
    r->header_len = get_le(fx + 40, 8);
    r->payload_len = get_le(fx + 48, 8);
    r->payload_fnv = get_le(fx + 56, 8);
    if (r->flags > 1) return lc_errorf(LC_EINVAL, "checkpoint '%s': unknown flags 0x%x (corrupt header)", path, r->flags);
    if (r->config_len > MAX_CONFIG || r->n_tensors > MAX_TENSORS || r->header_len < FIXED + r->config_len || r->header_len % 64 ||
        r->header_len > FIXED + MAX_CONFIG + (uint64_t)MAX_TENSORS * 200)
        return lc_errorf(LC_EINVAL, "checkpoint '%s': corrupt header (config %llu bytes, %llu tensors, header %llu bytes)", path,
                         (unsigned long long)r->config_len, (unsigned long long)r->n_tensors, (unsigned long long)r->header_len);
    if (r->header_len > r->size || r->payload_len > r->size - r->header_len)
        return lc_errorf(LC_EINVAL, "checkpoint '%s': truncated: %llu bytes, the header says %llu + %llu", path, (unsigned long long)r->size,
                         (unsigned long long)r->header_len, (unsigned long long)r->payload_len);
    if (r->header_len + r->payload_len != r->size)
        return lc_errorf(LC_EINVAL, "checkpoint '%s': %llu bytes after the payload (the header says the file is %llu bytes)", path,
                         (unsigned long long)(r->size - r->header_len - r->payload_len), (unsigned long long)(r->header_len + r->payload_len));
    r->header = malloc(r->header_len);
    if (!r->header) return lc_errorf(LC_ENOMEM, "checkpoint '%s': out of memory for a %llu-byte header", path, (unsigned long long)r->header_len);
    memcpy(r->header, fx, FIXED);
    if (fread(r->header + FIXED, 1, r->header_len - FIXED, r->f) != r->header_len - FIXED)
        return lc_errorf(LC_EIO, "checkpoint '%s': read error in the header", path);
    uint64_t want = get_le(r->header + 64, 8);
    set_le(r->header + 64, 0, 8);
    if (ckpt_fnv1a(CKPT_FNV_INIT, r->header, r->header_len) != want)
        return lc_errorf(LC_EINVAL, "checkpoint '%s': header checksum mismatch (corrupt header)", path);
    return LC_OK;
}

static lc_status reader_config(reader *r, ckpt_info *info) {
    char *text = malloc(r->config_len + 1);
    if (!text) return lc_errorf(LC_ENOMEM, "checkpoint '%s': out of memory", r->path);
    memcpy(text, r->header + FIXED, r->config_len);
    text[r->config_len] = 0;
    char src[200];
    snprintf(src, sizeof src, "%s (stored config)", r->path);
    lc_status s = lc_config_parse(text, src, &info->config);
    free(text);
    if (s) return s;
    info->step = r->step;
    info->has_optimizer = r->flags & 1;
    info->note[0] = 0;
    return LC_OK;
}

lc_status ckpt_read_info(const char *path, ckpt_info *info) {
    reader r;
    lc_status s = reader_open(&r, path);
    if (!s) s = reader_config(&r, info);
    reader_close(&r);
    return s;
}

static void shape_text(char *buf, size_t cap, int ndim, const uint64_t *shape) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int k = 0; k < ndim && o < cap; k++) o += (size_t)snprintf(buf + o, cap - o, "%s%llu", k ? ", " : "", (unsigned long long)shape[k]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static lc_status load_impl(reader *r, const lc_config *cfg, int strict, float *params, float *adam_m, float *adam_v, ckpt_info *info) {
    const char *path = r->path;
    LC_TRY(reader_config(r, info));
    char diff[256];
    if (lc_config_diff(&info->config, cfg, diff, sizeof diff)) {
        if (strict) return lc_errorf(LC_EINVAL, "checkpoint '%s': config differs: %s (checkpoint vs expected)", path, diff);
        snprintf(info->note, sizeof info->note, "%s (checkpoint vs expected)", diff);
    }
    int64_t nt = lc_config_tensors(cfg, NULL, 0);
    lc_param *ps = lc_malloc((size_t)nt * sizeof *ps, "checkpoint tensor list");
    if (!ps) return LC_ENOMEM;
    lc_config_tensors(cfg, ps, nt);
    const uint64_t nparam = (uint64_t)(ps[nt - 1].offset + ps[nt - 1].numel);
    const int opt = r->flags & 1, sets = opt ? 3 : 1;
    lc_status st = LC_OK;
    if (r->n_tensors != (uint64_t)nt * (uint64_t)sets) {
        st = lc_errorf(LC_EINVAL, "checkpoint '%s': %llu tensors, the config has %lld%s", path, (unsigned long long)r->n_tensors, (long long)nt,
                       opt ? " (x3 with AdamW state)" : "");
    }
    /* walk the records: every field bounded by the header before use */
    const unsigned char *p = r->header + FIXED + r->config_len, *end = r->header + r->header_len;
    const char *prefixes[3] = {"", "adam_m.", "adam_v."};
    uint64_t expect_off = 0;
    for (int s = 0; !st && s < sets; s++)
        for (int64_t i = 0; !st && i < nt; i++) {
            if (end - p < 2) {
                st = lc_errorf(LC_EINVAL, "checkpoint '%s': tensor record %lld runs past the header", path, (long long)(s * nt + i));
                break;
            }
            uint64_t nl = get_le(p, 2);
            p += 2;
            if (nl == 0 || nl > MAX_NAME || (uint64_t)(end - p) < nl + 2) {
                st = lc_errorf(LC_EINVAL, "checkpoint '%s': tensor record %lld is corrupt (name length %llu)", path, (long long)(s * nt + i),
                               (unsigned long long)nl);
                break;
            }
            char name[MAX_NAME + 1], want[MAX_NAME + 1];
            memcpy(name, p, nl);
            name[nl] = 0;
            for (uint64_t k = 0; k < nl; k++)
                if (name[k] < 33 || name[k] > 126) name[k] = '?';
            p += nl;
            int dtype = p[0], ndim = p[1];
            p += 2;
            if (ndim < 1 || ndim > 4 || (uint64_t)(end - p) < (uint64_t)ndim * 8 + 16) {
                st = lc_errorf(LC_EINVAL, "checkpoint '%s': tensor '%s' record is corrupt (ndim %d)", path, name, ndim);
                break;
            }
            uint64_t shape[4];
            for (int k = 0; k < ndim; k++) shape[k] = get_le(p + 8 * k, 8);
            p += 8 * ndim;
            uint64_t off = get_le(p, 8), nb = get_le(p + 8, 8);
            p += 16;
            snprintf(want, sizeof want, "%s%s", prefixes[s], ps[i].name);
            uint64_t wshape[4] = {(uint64_t)ps[i].shape[0], (uint64_t)ps[i].shape[1], 0, 0};
            char got_s[96], want_s[96];
            shape_text(got_s, sizeof got_s, ndim, shape);
            shape_text(want_s, sizeof want_s, ps[i].ndim, wshape);
            if (strcmp(name, want)) {
                st = lc_errorf(LC_EINVAL, "checkpoint '%s': tensor %lld is '%s' %s, the config expects '%s' %s", path, (long long)(s * nt + i), name,
                               got_s, want, want_s);
            } else if (ndim != ps[i].ndim || strcmp(got_s, want_s)) {
                st = lc_errorf(LC_EINVAL, "checkpoint '%s': tensor '%s' has shape %s, the config expects %s", path, name, got_s, want_s);
            } else if (dtype != 0) {
                st = lc_errorf(LC_EINVAL, "checkpoint '%s': tensor '%s' has dtype %d, only f32 (0) is supported", path, name, dtype);
            } else if (off != expect_off || nb != (uint64_t)ps[i].numel * 4 || off + nb > r->payload_len) {
                st = lc_errorf(LC_EINVAL, "checkpoint '%s': tensor '%s' at payload bytes %llu+%llu, expected %llu+%llu within %llu", path, name,
                               (unsigned long long)off, (unsigned long long)nb, (unsigned long long)expect_off,
                               (unsigned long long)ps[i].numel * 4, (unsigned long long)r->payload_len);
            }
            expect_off += (uint64_t)ps[i].numel * 4;
        }
    if (!st && expect_off != r->payload_len)
        st = lc_errorf(LC_EINVAL, "checkpoint '%s': payload is %llu bytes, the tensors need %llu", path, (unsigned long long)r->payload_len,
                       (unsigned long long)expect_off);
    free(ps);
    if (st && info->note[0]) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s; the configs differ first at %s", lc_last_error(), info->note);
        return lc_errorf(st, "%s", msg);
    }
    if (st) return st;

    /* pass 1: checksum the payload without touching the caller's buffers */
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) return lc_errorf(LC_ENOMEM, "checkpoint '%s': out of memory", path);
    uint64_t h = CKPT_FNV_INIT, left = r->payload_len;
    while (left > 0) {
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        if (fread(buf, 1, n, r->f) != n) {
            free(buf);
            return lc_errorf(LC_EIO, "checkpoint '%s': read error in the payload", path);
        }
        h = ckpt_fnv1a(h, buf, n);
        left -= n;
    }
    free(buf);
    if (h != r->payload_fnv) return lc_errorf(LC_EINVAL, "checkpoint '%s': payload checksum mismatch (corrupt weights)", path);
    /* pass 2: read into place */
    float *dst[3] = {params, opt && adam_m && adam_v ? adam_m : NULL, opt && adam_m && adam_v ? adam_v : NULL};
    for (int s = 0; s < sets; s++) {
        if (!dst[s]) break;
        if (fseek(r->f, (long)(r->header_len + (uint64_t)s * nparam * 4), SEEK_SET) != 0 || fread(dst[s], 4, nparam, r->f) != nparam)
            return lc_errorf(LC_EIO, "checkpoint '%s': read error in the payload", path);
    }
    return LC_OK;
}

lc_status ckpt_load(const char *path, const lc_config *cfg, int strict, float *params, float *adam_m, float *adam_v, ckpt_info *info) {
    LC_REQUIRE(params != NULL, "checkpoint '%s': no parameter buffer to load into", path);
    ckpt_info *own = NULL;
    if (!info) {
        own = malloc(sizeof *own);
        if (!own) return lc_errorf(LC_ENOMEM, "checkpoint '%s': out of memory", path);
        info = own;
    }
    reader r;
    lc_status s = reader_open(&r, path);
    if (!s) s = load_impl(&r, cfg, strict, params, adam_m, adam_v, info);
    reader_close(&r);
    free(own);
    return s;
}
