/* tuning.h — the kernels' tuning switches: environment variables that pick a kernel variant or a
 * tile size for timing experiments and for the tests that cover every variant. Unset (or empty),
 * each takes the shipped default, which is always the measured-fastest variant for the shape.
 *
 * Every switch is listed once, with the values it accepts, in the table of tuning.c (the list
 * the README points to). The CUDA entry points of the attention, HSA and Mamba families call
 * lc_tuning_check() first: a variable under one of the switch prefixes (LC_ATTN_, LC_MAMBA_,
 * LONGCTX_HSA_) that is not in the table, or a value the table does not accept, is an LC_EINVAL
 * naming the variable, its value and what it accepts, never a silent fall-back to the default.
 * The launchers then read a checked switch with lc_tuning_word or lc_tuning_int. Switches are
 * read at every call, so tests and benchmarks may change them between calls (setenv).
 */
#ifndef LONGCTX_TUNING_H
#define LONGCTX_TUNING_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* LC_OK when every set variable under the switch prefixes is a known switch with a value it
 * accepts; else LC_EINVAL with a message naming the first bad one. */
lc_status lc_tuning_check(void);

/* A switch whose values are words (e.g. LONGCTX_HSA_FWD = tok | t15 | t16): the index of its
 * value in the table's list (0, 1, ...), or -1 when unset or empty. */
int lc_tuning_word(const char *var);

/* A switch whose values are integers: its value, or `dflt` when unset or empty. */
long long lc_tuning_int(const char *var, long long dflt);

/* The table, for --help style listings and the README: the i-th switch's name and accepted
 * values ("a|b|c" for words or integers, "lo..hi" for an integer range); NULL past the end. */
const char *lc_tuning_name(int i);
const char *lc_tuning_values(int i);

#ifdef __cplusplus
}
#endif
#endif
