/* test_common.c — error messages, bf16 rounding, RNG determinism and hash independence. */
#include "common.h"
#include "test.h"

int main(void) {
    t_begin("bf16 round trip and rounding");
    T_CHECK(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f, "1.0 changed");
    T_CHECK(bf16_to_f32(f32_to_bf16(-3.5f)) == -3.5f, "-3.5 changed");
    /* 1 + 2^-8 is half way between two bf16 values: ties go to the even one (1.0). */
    T_CHECK(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)) == 1.0f, "tie not rounded to even");
    T_CHECK(bf16_to_f32(f32_to_bf16(1.0f + 3.0f / 512)) == 1.0f + 1.0f / 128, "round up failed");
    T_CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))), "NaN lost");
    T_CHECK(isinf(bf16_to_f32(f32_to_bf16(INFINITY))), "inf lost");

    t_begin("rng is deterministic and roughly normal");
    lc_rng a, b;
    lc_rng_seed(&a, 42);
    lc_rng_seed(&b, 42);
    int same = 1;
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        float x = lc_rng_normal(&a), y = lc_rng_normal(&b);
        same &= x == y;
        sum += x;
        sq += (double)x * x;
    }
    T_CHECK(same, "same seed gave different streams");
    T_CHECK(fabs(sum / 100000) < 0.02 && fabs(sq / 100000 - 1) < 0.03, "mean %.4f var %.4f", sum / 1e5, sq / 1e5);
    lc_rng_seed(&b, 43);
    T_CHECK(lc_rng_next(&a) != lc_rng_next(&b), "different seeds gave the same value");
    int in_range = 1;
    for (int i = 0; i < 1000; i++) in_range &= lc_rng_below(&a, 7) < 7;
    T_CHECK(in_range, "lc_rng_below out of range");

    t_begin("hash3 depends on every argument");
    T_CHECK(lc_hash3(1, 2, 3) == lc_hash3(1, 2, 3), "not a function");
    T_CHECK(lc_hash3(1, 2, 3) != lc_hash3(1, 3, 2) && lc_hash3(1, 2, 3) != lc_hash3(2, 2, 3), "collision on swapped arguments");

    t_begin("errors carry their message");
    lc_status s = lc_errorf(LC_EINVAL, "bad L = %d", -1);
    T_CHECK(s == LC_EINVAL && strcmp(lc_last_error(), "bad L = -1") == 0, "got %d '%s'", s, lc_last_error());
    return t_finish();
}
