/* words.c — loading and verifying the wonderwords lists. See words.h. */
#include "words.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sha256.h"

const char *const WORDS_SHA256_ADJ = "66814d46b7e292c83e839d12fe2fa083c8f66779b14b294e1be4e1342c5d4131";
const char *const WORDS_SHA256_NOUN = "8d88b3ebc2e2969ed92ebe49cdb0c8a87c2ad3b27493d7afdff608f2e51c5bc9";
const char *const WORDS_SHA256_VERB = "9fbf5e4e69b8869aebd88e6d545312ff9f878a747327ede5f6dbbba5c27b08ad";

lc_status read_file_all(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lc_errorf(LC_EIO, "cannot open '%s'", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { fclose(f); return lc_errorf(LC_ENOMEM, "out of memory reading '%s'", path); }
    for (;;) {
        if (n == cap) {
            char *p = realloc(buf, 2 * cap + 1);
            if (!p) { free(buf); fclose(f); return lc_errorf(LC_ENOMEM, "out of memory reading '%s'", path); }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return lc_errorf(LC_EIO, "error reading '%s'", path); }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return LC_OK;
}

static int is_dir_with_lists(const char *d) {
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/nounlist.txt", d);
    return stat(p, &st) == 0;
}

const char *suite_data_dir(char *buf, size_t cap) {
    const char *env = getenv("LONGCTX_DATA_DIR");
    if (env && *env) { snprintf(buf, cap, "%s", env); return buf; }
    if (is_dir_with_lists("suites/data")) { snprintf(buf, cap, "suites/data"); return buf; }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        /* the binary lives in build/ (or build/tests/, build/san/tests/): walk up to 4 levels */
        for (int up = 0; up < 4; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = 0;
            snprintf(buf, cap, "%s/suites/data", exe);
            if (is_dir_with_lists(buf)) return buf;
        }
    }
    snprintf(buf, cap, "suites/data");
    return buf;
}

static lc_status load_list(struct word_list *l, const char *dir, const char *file, const char *want) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *data;
    size_t len;
    lc_status s = read_file_all(path, &data, &len);
    if (s) return lc_errorf(s, "word list '%s' is missing (the vendored wonderwords lists live in suites/data; set LONGCTX_DATA_DIR to their folder)", path);
    char got[65];
    sha256_hex(data, len, got);
    if (strcmp(got, want)) {
        free(data);
        return lc_errorf(LC_EINVAL, "word list '%s' (%zu bytes) has sha256 %s, expected %s: the file was changed or truncated; restore it from git",
                         path, len, got, want);
    }
    int n = 0;
    for (size_t i = 0; i < len; i++) n += data[i] == '\n';
    l->w = malloc(sizeof(char *) * (size_t)(n + 1));
    if (!l->w) { free(data); return lc_errorf(LC_ENOMEM, "out of memory"); }
    l->n = 0;
    char *p = data;
    while (*p) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        size_t m = strlen(p);
        while (m && (p[m - 1] == '\r' || p[m - 1] == ' ')) p[--m] = 0; /* 3 entries end in a space */
        if (m) l->w[l->n++] = p;
        if (!e) break;
        p = e + 1;
    }
    l->blob = data;
    return LC_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

lc_status words_load(struct word_lists *wl, const char *dir) {
    memset(wl, 0, sizeof *wl);
    if (!dir) dir = suite_data_dir(wl->dir, sizeof wl->dir);
    else snprintf(wl->dir, sizeof wl->dir, "%s", dir);
    lc_status s;
    if ((s = load_list(&wl->adj, wl->dir, "adjectivelist.txt", WORDS_SHA256_ADJ)) ||
        (s = load_list(&wl->noun, wl->dir, "nounlist.txt", WORDS_SHA256_NOUN)) ||
        (s = load_list(&wl->verb, wl->dir, "verblist.txt", WORDS_SHA256_VERB))) {
        words_free(wl);
        return s;
    }
    int n = wl->adj.n + wl->noun.n + wl->verb.n, k = 0;
    wl->pool = malloc(sizeof(char *) * (size_t)n);
    if (!wl->pool) { words_free(wl); return lc_errorf(LC_ENOMEM, "out of memory"); }
    for (int i = 0; i < wl->noun.n; i++) wl->pool[k++] = wl->noun.w[i];
    for (int i = 0; i < wl->adj.n; i++) wl->pool[k++] = wl->adj.w[i];
    for (int i = 0; i < wl->verb.n; i++) wl->pool[k++] = wl->verb.w[i];
    qsort(wl->pool, (size_t)k, sizeof(char *), cmp_str);
    int m = 0;
    for (int i = 0; i < k; i++)
        if (m == 0 || strcmp(wl->pool[m - 1], wl->pool[i])) wl->pool[m++] = wl->pool[i];
    wl->n_pool = m;
    return LC_OK;
}

void words_free(struct word_lists *wl) {
    struct word_list *ls[3] = {&wl->adj, &wl->noun, &wl->verb};
    for (int i = 0; i < 3; i++) { free(ls[i]->w); free(ls[i]->blob); ls[i]->w = NULL; ls[i]->blob = NULL; }
    free(wl->pool);
    wl->pool = NULL;
}
