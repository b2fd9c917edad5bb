/* common.c — error messages, bf16 conversion, RNG, clock. See common.h. */
#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char lc_err_buf[1024];

lc_status lc_errorf(lc_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lc_err_buf, sizeof lc_err_buf, fmt, ap);
    va_end(ap);
    return code;
}

const char *lc_last_error(void) { return lc_err_buf[0] ? lc_err_buf : "no error recorded"; }
void lc_clear_error(void) { lc_err_buf[0] = 0; }

float bf16_to_f32(bf16_t x) {
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

bf16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (bf16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

void f32_to_bf16_array(const float *src, bf16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}
void bf16_to_f32_array(const bf16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void lc_rng_seed(lc_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lc_rng_next(lc_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double lc_rng_uniform(lc_rng *r) { return (double)(lc_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t lc_rng_below(lc_rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
    do x = lc_rng_next(r);
    while (x >= limit);
    return x % n;
}

float lc_rng_normal(lc_rng *r) {
    double u1 = lc_rng_uniform(r), u2 = lc_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void lc_fill_uniform(lc_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)lc_rng_uniform(r);
}
void lc_fill_normal(lc_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * lc_rng_normal(r);
}

uint64_t lc_hash3(uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t x = seed ^ 0x243f6a8885a308d3ull;
    x = splitmix64(&x) ^ a;
    x = splitmix64(&x) ^ b;
    return splitmix64(&x);
}

double lc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void *lc_malloc(size_t bytes, const char *what) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) lc_errorf(LC_ENOMEM, "out of host memory allocating %zu bytes for %s", bytes, what);
    return p;
}
void *lc_calloc(size_t n, size_t size, const char *what) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) lc_errorf(LC_ENOMEM, "out of host memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}
