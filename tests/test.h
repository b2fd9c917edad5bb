/* test.h — the whole test framework: checks that print one line each and a closing count.
 *
 * A test binary calls t_begin(name) before each case, uses the T_* checks, and returns
 * t_finish() from main. Output protocol (read by tests/run.sh):
 *   PASS <case>            every check of the case held
 *   FAIL <case>: <why>     first failing check, with file:line and the numbers
 *   SKIP <case>: <why>     case not run (e.g. no GPU)
 * Exit status is non-zero when any case failed.
 */
#ifndef LONGCTX_TEST_H
#define LONGCTX_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_UNUSED __attribute__((unused))

static const char *t_case_name = NULL;
static int t_case_failed = 0, t_npass = 0, t_nfail = 0, t_nskip = 0;

T_UNUSED static void t_end_case(void) {
    if (t_case_name && !t_case_failed) {
        printf("PASS %s\n", t_case_name);
        t_npass++;
    }
    t_case_name = NULL;
    fflush(stdout);
}

/* The name is copied: its PASS line is printed at the next t_begin, by when a caller's buffer may
 * already hold the next case's name. */
T_UNUSED static void t_begin(const char *name) {
    static char buf[512];
    t_end_case();
    snprintf(buf, sizeof buf, "%s", name);
    t_case_name = buf;
    t_case_failed = 0;
}

T_UNUSED static void t_skip(const char *why) {
    if (t_case_name) printf("SKIP %s: %s\n", t_case_name, why);
    t_nskip++;
    t_case_name = NULL;
    fflush(stdout);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
T_UNUSED static int t_fail(const char *file, int line, const char *fmt, ...) {
    if (!t_case_failed) {
        va_list ap;
        printf("FAIL %s: %s:%d: ", t_case_name ? t_case_name : "(no case)", file, line);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
        t_nfail++;
    }
    t_case_failed = 1;
    return 0;
}

T_UNUSED static int t_finish(void) {
    t_end_case();
    return t_nfail ? 1 : 0;
}

/* Relative error ||a - b|| / ||b|| over n values (double accumulation); NaN/Inf -> INFINITY. */
T_UNUSED static double t_rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The whole file, NUL-terminated so a text file is a string; *n (if not NULL) gets its size.
 * NULL when it cannot be opened; a short read gives size 0. The caller frees it. */
T_UNUSED static char *t_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)(len > 0 ? len : 0) + 1);
    if (s && (len < 0 || fread(s, 1, (size_t)len, f) != (size_t)len)) len = 0;
    if (s) s[len] = 0;
    if (n) *n = (size_t)len;
    fclose(f);
    return s;
}

/* Write n bytes to path (replacing it); 0 on success. */
T_UNUSED static int t_write_file(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(b, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

#define T_CHECK(cond, ...) ((cond) ? 1 : t_fail(__FILE__, __LINE__, __VA_ARGS__))
/* Evaluates to 1 when it holds, so a test can stop early: if (!T_CHECK(...)) return; */
#define T_CLOSE(a, b, n, tol, what)                                                            \
    __extension__({                                                                            \
        double t_e_ = t_rel_err((a), (b), (n));                                                \
        T_CHECK(t_e_ <= (tol), "%s: relative error %.3e > %.1e", (what), t_e_, (double)(tol)); \
    })
#define T_OK(status_expr)                                                                      \
    __extension__({                                                                            \
        int t_s_ = (status_expr);                                                              \
        T_CHECK(t_s_ == 0, "%s returned %d: %s", #status_expr, t_s_, lc_last_error());       \
    })
/* The call must fail, and its message must contain `needle` (so bad input is named). */
#define T_ERR(status_expr, needle)                                                             \
    __extension__({                                                                            \
        int t_s_ = (status_expr);                                                              \
        T_CHECK(t_s_ != 0 && strstr(lc_last_error(), (needle)) != NULL,                        \
                "%s: expected an error mentioning '%s', got status %d: %s", #status_expr,      \
                (needle), t_s_, t_s_ ? lc_last_error() : "(success)");                        \
    })

#endif
