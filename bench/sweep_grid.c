/* sweep_grid.c — the sweep's options: sizes with suffixes, lists and power-of-two ranges,
 * `key = value` sweep files, flags, and the expansion of the grid into points. See sweep.h.
 *
 * Per-mixer defaults (used for a dim whose list is empty), chosen to match the anchors in
 * ../shared/research/anchors.md:
 *   dense, swa   B=1 HQ=16 H=16 dh=128, swa W=4096
 *   hsa_*        B=1 HQ=16 H=1 dh=64 S=64 K=8 dr=64
 *   mamba_*      B=1 HQ=32 (heads) dh=64 (head dim P) H=1 (groups) N=128
 *   other        B=1 HQ=1 H=1 dh=64 (e.g. a test family)
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sweep.h"

void sweep_opts_default(struct sweep_opts *o) {
    memset(o, 0, sizeof *o);
    strcpy(o->tag, "L");
    o->budget_s = 60;
    o->warmup = 2;
    o->reps = 10;
}

lc_status sweep_parse_size(const char *s, int64_t *v) {
    char *end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || errno || x < 0) return lc_errorf(LC_EINVAL, "'%s' is not a size (use e.g. 4096, 4K, 1M, 16M)", s);
    int64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1 << 10, end++;
    else if (*end == 'M' || *end == 'm') mul = 1 << 20, end++;
    else if (*end == 'G' || *end == 'g') mul = (int64_t)1 << 30, end++;
    if (*end) return lc_errorf(LC_EINVAL, "'%s' is not a size (use e.g. 4096, 4K, 1M, 16M)", s);
    if (x > INT64_MAX / mul) return lc_errorf(LC_EINVAL, "'%s' is too large", s);
    *v = (int64_t)x * mul;
    return LC_OK;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static lc_status list_add(struct sweep_list *l, int64_t v) {
    for (int i = 0; i < l->n; i++)
        if (l->v[i] == v) return LC_OK;
    if (l->n >= SWEEP_MAX_VALS) return lc_errorf(LC_EINVAL, "more than %d values", SWEEP_MAX_VALS);
    l->v[l->n++] = v;
    return LC_OK;
}

lc_status sweep_parse_list(const char *s, struct sweep_list *l) {
    char buf[512];
    if (strlen(s) >= sizeof buf) return lc_errorf(LC_EINVAL, "list too long");
    strcpy(buf, s);
    l->n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        for (char *e = tok + strlen(tok); e > tok && isspace((unsigned char)e[-1]);) *--e = 0;
        char *dots = strstr(tok, "..");
        if (dots) {
            *dots = 0;
            int64_t a, b;
            LC_TRY(sweep_parse_size(tok, &a));
            LC_TRY(sweep_parse_size(dots + 2, &b));
            if (a <= 0 || b < a)
                return lc_errorf(LC_EINVAL, "range '%s..%s' must go from a positive size up", tok, dots + 2);
            for (int64_t x = a; x <= b; x *= 2) LC_TRY(list_add(l, x));
        } else {
            int64_t x;
            LC_TRY(sweep_parse_size(tok, &x));
            LC_TRY(list_add(l, x));
        }
    }
    if (l->n == 0) return lc_errorf(LC_EINVAL, "empty list");
    qsort(l->v, (size_t)l->n, sizeof l->v[0], cmp_i64);
    return LC_OK;
}

static lc_status parse_number(const char *s, double *v) {
    char *end = NULL;
    errno = 0;
    *v = strtod(s, &end);
    if (end == s || *end || errno) return lc_errorf(LC_EINVAL, "'%s' is not a number", s);
    return LC_OK;
}

static const char *const dims[] = {"B", "L", "HQ", "H", "dh", "W", "S", "K", "dr", "N"};

static struct sweep_list *dim_list(struct sweep_opts *o, const char *key) {
    struct sweep_list *ls[] = {&o->B, &o->L, &o->HQ, &o->H, &o->dh, &o->W, &o->S, &o->K, &o->dr, &o->N};
    for (int i = 0; i < 10; i++)
        if (!strcmp(key, dims[i])) return ls[i];
    return NULL;
}

static lc_status set_inner(struct sweep_opts *o, const char *key, const char *value) {
    struct sweep_list *l = dim_list(o, key);
    if (l) return sweep_parse_list(value, l);
    char buf[512];
    if (strlen(value) >= sizeof buf) return lc_errorf(LC_EINVAL, "value too long");
    strcpy(buf, value);
    if (!strcmp(key, "mixer") || !strcmp(key, "direction") || !strcmp(key, "backend")) {
        int is_mixer = key[0] == 'm', is_dir = key[0] == 'd';
        int n = 0;
        for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            if (is_mixer) {
                if (n >= SWEEP_MAX_MIXERS) return lc_errorf(LC_EINVAL, "more than %d mixers", SWEEP_MAX_MIXERS);
                if (strlen(t) >= sizeof o->mixers[0]) return lc_errorf(LC_EINVAL, "mixer name '%s' too long", t);
                if (!strcmp(t, "all")) { n = 0; break; }
                strcpy(o->mixers[n++], t);
            } else if (is_dir) {
                if (strcmp(t, "fwd") && strcmp(t, "bwd") && strcmp(t, "fwdbwd") && strcmp(t, "decode"))
                    return lc_errorf(LC_EINVAL, "unknown direction '%s' (fwd, bwd, fwdbwd, decode)", t);
                if (n >= 4) return lc_errorf(LC_EINVAL, "more than 4 directions");
                strcpy(o->directions[n++], t);
            } else {
                if (!strcmp(t, "auto")) { n = 0; break; }
                if (strcmp(t, "cpu") && strcmp(t, "cuda"))
                    return lc_errorf(LC_EINVAL, "unknown backend '%s' (cpu, cuda, auto)", t);
                if (n >= 2) return lc_errorf(LC_EINVAL, "more than 2 backends");
                o->backends[n++] = !strcmp(t, "cuda") ? BENCH_CUDA : BENCH_CPU;
            }
        }
        if (is_mixer) o->nmixers = n;
        else if (is_dir) o->ndirections = n;
        else o->nbackends = n;
        return LC_OK;
    }
    if (!strcmp(key, "out")) {
        if (strlen(value) >= sizeof o->out) return lc_errorf(LC_EINVAL, "path too long");
        strcpy(o->out, value);
        return LC_OK;
    }
    if (!strcmp(key, "tag")) {
        if (!*value || strlen(value) >= sizeof o->tag) return lc_errorf(LC_EINVAL, "tag must be 1..%zu characters", sizeof o->tag - 1);
        strcpy(o->tag, value);
        return LC_OK;
    }
    if (!strcmp(key, "mem_cap")) {
        int64_t v;
        LC_TRY(sweep_parse_size(value, &v));
        o->mem_cap_bytes = (double)v;
        return LC_OK;
    }
    double v;
    if (!strcmp(key, "budget_s")) {
        LC_TRY(parse_number(value, &v));
        if (!(v > 0)) return lc_errorf(LC_EINVAL, "must be > 0");
        o->budget_s = v;
        return LC_OK;
    }
    if (!strcmp(key, "warmup") || !strcmp(key, "reps")) {
        LC_TRY(parse_number(value, &v));
        int lo = key[0] == 'w' ? 0 : 1;
        if (v != (int)v || v < lo || v > 10000) return lc_errorf(LC_EINVAL, "must be an integer in %d..10000", lo);
        if (key[0] == 'w') o->warmup = (int)v;
        else o->reps = (int)v;
        return LC_OK;
    }
    return lc_errorf(LC_EINVAL, "unknown key (keys: mixer direction backend B L HQ H dh W S K dr N out tag "
                     "budget_s mem_cap warmup reps)");
}

lc_status sweep_set(struct sweep_opts *o, const char *key, const char *value, const char *where) {
    lc_status st = set_inner(o, key, value);
    if (st != LC_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", lc_last_error());
        return lc_errorf(st, "%s: %s = '%s': %s", where, key, value, msg);
    }
    return LC_OK;
}

lc_status sweep_parse_file(struct sweep_opts *o, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return lc_errorf(LC_EIO, "sweep file %s: cannot open it", path);
    char line[1024], where[600];
    int lineno = 0;
    lc_status st = LC_OK;
    while (st == LC_OK && fgets(line, sizeof line, f)) {
        lineno++;
        snprintf(where, sizeof where, "sweep file %s line %d", path, lineno);
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = line;
        while (isspace((unsigned char)*s)) s++;
        for (char *e = s + strlen(s); e > s && isspace((unsigned char)e[-1]);) *--e = 0;
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            st = lc_errorf(LC_EINVAL, "%s: '%s' is not a `key = value` line", where, s);
            break;
        }
        *eq = 0;
        char *v = eq + 1;
        for (char *e = eq; e > s && isspace((unsigned char)e[-1]);) *--e = 0;
        while (isspace((unsigned char)*v)) v++;
        if (!*s || !*v) {
            st = lc_errorf(LC_EINVAL, "%s: empty %s", where, *s ? "value" : "key");
            break;
        }
        st = sweep_set(o, s, v, where);
    }
    fclose(f);
    return st;
}

lc_status sweep_parse_args(struct sweep_opts *o, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) return lc_errorf(LC_EINVAL, "unexpected argument '%s' (options start with --)", a);
        char key[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (klen == 0 || klen >= sizeof key) return lc_errorf(LC_EINVAL, "bad option '%s'", a);
        memcpy(key, a + 2, klen);
        key[klen] = 0;
        for (char *c = key; *c; c++)
            if (*c == '-') *c = '_';
        if (!strcmp(key, "dry_run")) { o->dry_run = 1; continue; }
        if (!strcmp(key, "quiet")) { o->quiet = 1; continue; }
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return lc_errorf(LC_EINVAL, "option --%s needs a value", key);
        char where[80];
        snprintf(where, sizeof where, "--%s", key);
        if (!strcmp(key, "file")) LC_TRY(sweep_parse_file(o, val));
        else LC_TRY(sweep_set(o, key, val, where));
    }
    return LC_OK;
}

/* which dims a mixer uses beyond B, L, HQ, H, dh */
static int uses(const char *mixer, char dim) {
    if (!strncmp(mixer, "model_", 6)) return dim == 'B' || dim == 'L'; /* a preset fixes the other dims */
    int known = !strcmp(mixer, "dense") || !strcmp(mixer, "swa") || !strncmp(mixer, "hsa", 3) ||
                !strncmp(mixer, "mamba", 5);
    if (!known) return 1;
    switch (dim) {
    case 'W': return !strcmp(mixer, "swa");
    case 'S': case 'K': case 'r': return !strncmp(mixer, "hsa", 3);
    case 'N': return !strncmp(mixer, "mamba", 5);
    }
    return 1;
}

static void defaults_for(const char *m, int64_t d[10]) {
    /* B L HQ H dh W S K dr N */
    int64_t dense[10] = {1, 0, 16, 16, 128, 4096, 0, 0, 0, 0};
    int64_t hsa[10] = {1, 0, 16, 1, 64, 0, 64, 8, 64, 0};
    int64_t mamba[10] = {1, 0, 32, 1, 64, 0, 0, 0, 0, 128};
    int64_t other[10] = {1, 0, 1, 1, 64, 0, 0, 0, 0, 0};
    const int64_t *src = !strcmp(m, "dense") || !strcmp(m, "swa") ? dense
                         : !strncmp(m, "hsa", 3)                  ? hsa
                         : !strncmp(m, "mamba", 5)                ? mamba
                                                                  : other;
    memcpy(d, src, sizeof dense);
}

int64_t sweep_points(const struct sweep_opts *o, const struct bench_family *const *fams, int nfam,
                     struct bench_point *pts, int64_t max) {
    char mixers[SWEEP_MAX_FAMILIES][24];
    int nm = 0;
    if (o->nmixers == 0) {
        for (int i = 0; i < nfam && nm < SWEEP_MAX_FAMILIES; i++) /* model points (seconds each) only when named */
            if (strncmp(fams[i]->mixer, "model_", 6)) snprintf(mixers[nm++], 24, "%.23s", fams[i]->mixer);
    } else {
        for (int i = 0; i < o->nmixers; i++) {
            int found = 0;
            for (int j = 0; j < nfam; j++) found |= !strcmp(fams[j]->mixer, o->mixers[i]);
            if (!found) {
                char avail[512] = "";
                for (int j = 0; j < nfam; j++) {
                    strncat(avail, " ", sizeof avail - strlen(avail) - 1);
                    strncat(avail, fams[j]->mixer, sizeof avail - strlen(avail) - 1);
                }
                lc_errorf(LC_EINVAL, "mixer '%s' is not in this build (mixers:%s)", o->mixers[i],
                          nfam ? avail : " none");
                return -1;
            }
            snprintf(mixers[nm++], 24, "%s", o->mixers[i]);
        }
    }
    if (nm == 0) {
        lc_errorf(LC_EINVAL, "no kernel family is in this build: nothing to sweep");
        return -1;
    }
    int ndir = o->ndirections ? o->ndirections : 1;
    int nback = o->nbackends ? o->nbackends : 1;
    int64_t n = 0;
    const struct sweep_list *given[10] = {&o->B, &o->L, &o->HQ, &o->H, &o->dh, &o->W, &o->S, &o->K, &o->dr, &o->N};
    const char dimch[10] = {'B', 'L', 'q', 'h', 'd', 'W', 'S', 'K', 'r', 'N'};
    for (int m = 0; m < nm; m++) {
        int64_t def[10];
        defaults_for(mixers[m], def);
        struct sweep_list ls[10];
        for (int d = 0; d < 10; d++) {
            if (!uses(mixers[m], dimch[d])) {
                ls[d].n = 1;
                ls[d].v[0] = 0;
            } else if (given[d]->n) {
                ls[d] = *given[d];
            } else {
                ls[d].n = 1;
                ls[d].v[0] = def[d];
            }
        }
        if (ls[1].n == 1 && ls[1].v[0] == 0) {
            lc_errorf(LC_EINVAL, "no L given (e.g. --L 4K..1M)");
            return -1;
        }
        for (int di = 0; di < ndir; di++)
            for (int bk = 0; bk < nback; bk++) {
                /* odometer over every dim but L (index 1), then L innermost */
                int idx[10] = {0};
                for (;;) {
                    for (int li = 0; li < ls[1].n; li++) {
                        if (n < max && pts) {
                            struct bench_point *p = &pts[n];
                            memset(p, 0, sizeof *p);
                            snprintf(p->mixer, sizeof p->mixer, "%.23s", mixers[m]);
                            snprintf(p->direction, sizeof p->direction, "%s", o->ndirections ? o->directions[di] : "fwd");
                            p->backend = o->nbackends ? o->backends[bk] : BENCH_CPU;
                            p->B = ls[0].v[idx[0]];
                            p->L = ls[1].v[li];
                            p->HQ = ls[2].v[idx[2]];
                            p->H = ls[3].v[idx[3]];
                            p->dh = ls[4].v[idx[4]];
                            p->W = ls[5].v[idx[5]];
                            p->S = ls[6].v[idx[6]];
                            p->K = ls[7].v[idx[7]];
                            p->dr = ls[8].v[idx[8]];
                            p->N = ls[9].v[idx[9]];
                        }
                        n++;
                    }
                    int d = 9;
                    for (; d >= 0; d--) {
                        if (d == 1) continue;
                        if (++idx[d] < ls[d].n) break;
                        idx[d] = 0;
                    }
                    if (d < 0) break;
                }
            }
    }
    return n;
}

void sweep_point_name(const struct bench_point *p, char *buf, size_t cap) {
    int o = snprintf(buf, cap, "%s.%s.%s.B%lld.L%lld.HQ%lld.H%lld.dh%lld", p->mixer, p->direction,
                     p->backend == BENCH_CUDA ? "cuda" : "cpu", (long long)p->B, (long long)p->L,
                     (long long)p->HQ, (long long)p->H, (long long)p->dh);
    const char *nm[] = {"W", "S", "K", "dr", "N"};
    int64_t v[] = {p->W, p->S, p->K, p->dr, p->N};
    for (int i = 0; i < 5 && o > 0 && (size_t)o < cap; i++)
        if (v[i]) o += snprintf(buf + o, cap - (size_t)o, ".%s%lld", nm[i], (long long)v[i]);
}
