/* csv.c — RFC 4180 CSV writer with header check and resume keys. See csv.h. */
#include "csv.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

lc_status csv_quote(const char *cell, char *out, size_t cap) {
    if (!cell) cell = "";
    size_t n = strlen(cell);
    int need = n > 0 && (cell[0] == ' ' || cell[0] == '\t' || cell[n - 1] == ' ' || cell[n - 1] == '\t');
    for (size_t i = 0; i < n && !need; i++)
        need = cell[i] == ',' || cell[i] == '"' || cell[i] == '\n' || cell[i] == '\r';
    size_t o = 0;
    if (!need) {
        if (n + 1 > cap) return lc_errorf(LC_EINVAL, "csv: cell of %zu bytes does not fit %zu", n, cap);
        memcpy(out, cell, n + 1);
        return LC_OK;
    }
    if (o + 1 >= cap) return lc_errorf(LC_EINVAL, "csv: cell does not fit %zu bytes", cap);
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (o + 3 >= cap) return lc_errorf(LC_EINVAL, "csv: quoted cell does not fit %zu bytes", cap);
        if (cell[i] == '"') out[o++] = '"';
        out[o++] = cell[i];
    }
    out[o++] = '"';
    out[o] = 0;
    return LC_OK;
}

int csv_split(const char *line, char *buf, size_t bufcap, char **cells, int max) {
    size_t o = 0;
    int nc = 0;
    const char *p = line;
    if (bufcap == 0) return -1;
    for (;;) {
        if (nc >= max) return -1;
        cells[nc++] = buf + o;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == 0) return -1; /* unterminated quote */
                if (*p == '"') {
                    if (p[1] == '"') {
                        p += 2;
                        if (o + 1 >= bufcap) return -1;
                        buf[o++] = '"';
                        continue;
                    }
                    p++;
                    break;
                }
                if (o + 1 >= bufcap) return -1;
                buf[o++] = *p++;
            }
            if (*p != ',' && *p != 0 && *p != '\n' && *p != '\r') return -1;
        } else {
            while (*p && *p != ',' && *p != '\n' && *p != '\r') {
                if (o + 1 >= bufcap) return -1;
                buf[o++] = *p++;
            }
        }
        if (o + 1 >= bufcap) return -1;
        buf[o++] = 0;
        if (*p != ',') break;
        p++;
    }
    return nc;
}

static lc_status add_key(struct csv_writer *w, const char *const *vals) {
    size_t len = 1;
    for (int i = 0; i < w->nkeycols; i++) len += strlen(vals[i] ? vals[i] : "") + 1;
    char *k = lc_malloc(len, "csv resume key");
    if (!k) return LC_ENOMEM;
    k[0] = 0;
    for (int i = 0; i < w->nkeycols; i++) {
        strcat(k, vals[i] ? vals[i] : "");
        strcat(k, "\x1f");
    }
    if (w->nkeys == w->cap_keys) {
        size_t cap = w->cap_keys ? 2 * w->cap_keys : 64;
        char **nk = realloc(w->keys, cap * sizeof *nk);
        if (!nk) {
            free(k);
            return lc_errorf(LC_ENOMEM, "csv: out of memory for %zu resume keys", cap);
        }
        w->keys = nk;
        w->cap_keys = cap;
    }
    w->keys[w->nkeys++] = k;
    return LC_OK;
}

int csv_has_key(const struct csv_writer *w, const char *const *keyvals) {
    char k[2048];
    k[0] = 0;
    size_t len = 0;
    for (int i = 0; i < w->nkeycols; i++) {
        const char *v = keyvals[i] ? keyvals[i] : "";
        size_t n = strlen(v);
        if (len + n + 2 > sizeof k) return 0;
        memcpy(k + len, v, n);
        len += n;
        k[len++] = '\x1f';
        k[len] = 0;
    }
    for (size_t i = 0; i < w->nkeys; i++)
        if (!strcmp(w->keys[i], k)) return 1;
    return 0;
}

/* Read an existing file: check the header, collect the keys, cut a partial last line. */
static lc_status load_existing(struct csv_writer *w, FILE *f, long size) {
    char *text = lc_malloc((size_t)size + 1, "csv file contents");
    if (!text) return LC_ENOMEM;
    if (fread(text, 1, (size_t)size, f) != (size_t)size) {
        free(text);
        return lc_errorf(LC_EIO, "csv: could not read %s", w->path);
    }
    text[size] = 0;
    lc_status st = LC_OK;
    long keep = size;
    if (text[size - 1] != '\n') {
        char *last = strrchr(text, '\n');
        keep = last ? (long)(last - text) + 1 : 0;
        fprintf(stderr, "csv: %s: dropping an incomplete last line (%ld bytes) left by an interrupted run\n",
                w->path, size - keep);
        text[keep] = 0;
    }
    size_t bufcap = 1 << 16;
    char *buf = lc_malloc(bufcap, "csv line buffer");
    char **cells = lc_malloc(sizeof(char *) * 256, "csv cells");
    if (!buf || !cells) st = LC_ENOMEM;
    char *line = text;
    int lineno = 0;
    while (st == LC_OK && line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        lineno++;
        int nc = csv_split(line, buf, bufcap, cells, 256);
        if (lineno == 1) {
            if (nc != w->ncols) {
                st = lc_errorf(LC_EINVAL, "csv: %s has %d columns in its header, expected %d (%s ... %s): "
                               "a file of another schema; write to a new file", w->path, nc, w->ncols,
                               w->cols[0], w->cols[w->ncols - 1]);
            }
            for (int i = 0; st == LC_OK && i < nc; i++)
                if (strcmp(cells[i], w->cols[i]))
                    st = lc_errorf(LC_EINVAL, "csv: %s: header column %d is '%s', expected '%s': a file of "
                                   "another schema; write to a new file", w->path, i + 1, cells[i], w->cols[i]);
        } else if (nc == w->ncols) {
            const char *vals[32];
            for (int i = 0; i < w->nkeycols; i++) vals[i] = cells[w->keycol[i]];
            st = add_key(w, vals);
        } else if (!(nc == 1 && cells[0][0] == 0)) {
            st = lc_errorf(LC_EINVAL, "csv: %s line %d has %d cells, expected %d", w->path, lineno, nc, w->ncols);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    free(cells);
    free(text);
    if (st == LC_OK && keep != size && truncate(w->path, keep) != 0)
        st = lc_errorf(LC_EIO, "csv: could not cut the incomplete last line of %s", w->path);
    return st;
}

lc_status csv_open(struct csv_writer *w, const char *path, const char *const *cols, int ncols,
                   const char *keycols) {
    memset(w, 0, sizeof *w);
    LC_REQUIRE(ncols > 0 && ncols <= 256, "csv_open: %d columns", ncols);
    LC_REQUIRE(strlen(path) < sizeof w->path, "csv_open: path too long: %s", path);
    strcpy(w->path, path);
    w->cols = cols;
    w->ncols = ncols;
    if (keycols) {
        char tmp[1024];
        LC_REQUIRE(strlen(keycols) < sizeof tmp, "csv_open: key column list too long");
        strcpy(tmp, keycols);
        for (char *save = NULL, *k = strtok_r(tmp, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
            int found = -1;
            for (int i = 0; i < ncols; i++)
                if (!strcmp(cols[i], k)) found = i;
            LC_REQUIRE(found >= 0, "csv_open: key column '%s' is not a column", k);
            LC_REQUIRE(w->nkeycols < 32, "csv_open: more than 32 key columns");
            w->keycol[w->nkeycols++] = found;
        }
    }
    lc_status st = LC_OK;
    long size = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fseek(f, 0, SEEK_SET);
        if (size > 0) st = load_existing(w, f, size);
        fclose(f);
        if (st != LC_OK) {
            csv_close(w);
            return st;
        }
        f = fopen(path, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            size = ftell(f);
            fclose(f);
        }
    }
    w->f = fopen(path, "ab");
    if (!w->f) {
        csv_close(w);
        return lc_errorf(LC_EIO, "csv: cannot open %s for appending", path);
    }
    if (size <= 0) {
        for (int i = 0; i < ncols; i++) fprintf(w->f, "%s%s", i ? "," : "", cols[i]);
        fputc('\n', w->f);
        if (fflush(w->f) != 0) {
            csv_close(w);
            return lc_errorf(LC_EIO, "csv: cannot write the header of %s", path);
        }
    }
    return LC_OK;
}

lc_status csv_append(struct csv_writer *w, const char *const *cells) {
    LC_REQUIRE(w->f, "csv_append: writer is not open");
    /* Build the whole row first so it goes out in one write. */
    size_t cap = 4096, len = 0;
    char *row = lc_malloc(cap, "csv row");
    if (!row) return LC_ENOMEM;
    char q[2048];
    lc_status st = LC_OK;
    for (int i = 0; i < w->ncols && st == LC_OK; i++) {
        st = csv_quote(cells[i], q, sizeof q);
        size_t n = strlen(q);
        if (st == LC_OK && len + n + 2 > cap) {
            cap = 2 * (len + n + 2);
            char *nr = realloc(row, cap);
            if (!nr) st = lc_errorf(LC_ENOMEM, "csv: out of memory for a row");
            else row = nr;
        }
        if (st == LC_OK) {
            memcpy(row + len, q, n);
            len += n;
            row[len++] = i + 1 < w->ncols ? ',' : '\n';
        }
    }
    if (st == LC_OK && (fwrite(row, 1, len, w->f) != len || fflush(w->f) != 0))
        st = lc_errorf(LC_EIO, "csv: writing a row to %s failed", w->path);
    free(row);
    if (st == LC_OK && w->nkeycols) {
        const char *vals[32];
        for (int i = 0; i < w->nkeycols; i++) vals[i] = cells[w->keycol[i]];
        st = add_key(w, vals);
    }
    return st;
}

void csv_close(struct csv_writer *w) {
    if (w->f) fclose(w->f);
    for (size_t i = 0; i < w->nkeys; i++) free(w->keys[i]);
    free(w->keys);
    w->f = NULL;
    w->keys = NULL;
    w->nkeys = w->cap_keys = 0;
}

lc_status csv_append_split(struct csv_writer *w, char *row, char sep) {
    const char *cells[256];
    int n = 0;
    char *start = row;
    for (char *c = row;; c++) {
        if (*c != sep && *c != 0) continue;
        int last = *c == 0;
        *c = 0;
        LC_REQUIRE(n < w->ncols, "csv_append_split: more than %d cells for %s", w->ncols, w->path);
        cells[n++] = start;
        start = c + 1;
        if (last) break;
    }
    LC_REQUIRE(n == w->ncols, "csv_append_split: %d cells for the %d columns of %s", n, w->ncols, w->path);
    return csv_append(w, cells);
}
