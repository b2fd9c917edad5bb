/* common.h — what every part of longctx shares: error status, deterministic RNG,
 * bf16 <-> fp32 conversion for host code, small helpers.
 *
 * Errors are values: a function that can fail returns lc_status (0 = LC_OK) and, on failure,
 * leaves a message (naming the bad input) that lc_last_error() returns. The CLI prints it and
 * exits non-zero. The message buffer is thread-local and is the only mutable global besides the
 * backend table.
 */
#ifndef LONGCTX_COMMON_H
#define LONGCTX_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int lc_status;
enum { LC_OK = 0, LC_EINVAL = 1, LC_ENOMEM = 2, LC_EIO = 3, LC_EDEVICE = 4, LC_EUNSUPPORTED = 5 };

/* Record an error message and return `code`. printf-style. */
lc_status lc_errorf(lc_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
const char *lc_last_error(void);
void lc_clear_error(void);

/* Return LC_EINVAL with a message from the enclosing function when `cond` is false. */
#define LC_REQUIRE(cond, ...)                                    \
    do {                                                         \
        if (!(cond)) return lc_errorf(LC_EINVAL, __VA_ARGS__);   \
    } while (0)
/* Propagate a failing status. */
#define LC_TRY(expr)                        \
    do {                                    \
        lc_status lc_try_s_ = (expr);       \
        if (lc_try_s_ != LC_OK) return lc_try_s_; \
    } while (0)

/* bf16 storage type in C code: the upper 16 bits of an IEEE float. */
typedef uint16_t bf16_t;
float bf16_to_f32(bf16_t x);
bf16_t f32_to_bf16(float x); /* round to nearest even; NaN stays NaN */
void f32_to_bf16_array(const float *src, bf16_t *dst, size_t n);
void bf16_to_f32_array(const bf16_t *src, float *dst, size_t n);

/* Deterministic RNG (xoshiro256**, seeded through splitmix64). Same seed -> same stream on
 * every machine. */
typedef struct { uint64_t s[4]; } lc_rng;
void lc_rng_seed(lc_rng *r, uint64_t seed);
uint64_t lc_rng_next(lc_rng *r);
double lc_rng_uniform(lc_rng *r);            /* [0, 1) */
uint64_t lc_rng_below(lc_rng *r, uint64_t n); /* [0, n), unbiased */
float lc_rng_normal(lc_rng *r);              /* N(0, 1) */
void lc_fill_uniform(lc_rng *r, float *x, size_t n, float lo, float hi);
void lc_fill_normal(lc_rng *r, float *x, size_t n, float scale);

/* Counter-based hash for per-element randomness that does not depend on visiting order
 * (Gumbel noise on CPU and GPU must agree): a 64-bit mix of (seed, a, b). */
uint64_t lc_hash3(uint64_t seed, uint64_t a, uint64_t b);

/* Wall clock in seconds (monotonic). */
double lc_now(void);

/* malloc that records an LC_ENOMEM error naming `what` on failure. */
void *lc_malloc(size_t bytes, const char *what);
void *lc_calloc(size_t n, size_t size, const char *what);

#ifdef __cplusplus
}
#endif
#endif
