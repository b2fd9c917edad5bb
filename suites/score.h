/* score.h — RULER scoring (ruler.md section 4) and the summary CSV.
 *   post-process: strip, control characters -> '\n', strip;
 *   string_match_all  = mean over samples of (#refs found in pred, case-insensitive substring)/#refs
 *   string_match_part = mean over samples of max over refs of found
 *   teacher_forced    = mean of exact match of all answer tokens (probes, passkey, mqar)
 * Scores are x100 and rounded half-even to 2 decimals like Python's round(x, 2). Intervals are
 * Wilson 95% (z = 1.96) around the mean per-sample score, with n samples. */
#ifndef LONGCTX_SCORE_H
#define LONGCTX_SCORE_H

#include <stddef.h>

#include "common.h"

/* RULER's post-processing into a new malloc'd string. */
char *score_postprocess(const char *pred);
/* Per-sample scores in [0, 1]. */
double score_match_all(const char *pred, const char *const *refs, int n_refs);
double score_match_part(const char *pred, const char *const *refs, int n_refs);
/* Python round(100 * mean, 2) */
double score_round2(double x);
/* Wilson interval for a proportion p over n samples, in [0, 1]. */
void score_wilson(double p, double n, double *lo, double *hi);

int cmd_score(int argc, char **argv);

#endif
