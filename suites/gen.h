/* gen.h — internals shared by the task generators (not a public API): the prompt builder
 * (text + per-piece token ids), RNG helpers, value generators and string utilities. */
#ifndef LONGCTX_GEN_H
#define LONGCTX_GEN_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "suite.h"

/* Prompt builder: appends pieces; each piece's tokens are encode(piece). */
struct gb {
    char *text;
    size_t len, cap;
    int32_t *ids;
    size_t n, cap_ids;
    int want_ids, err;
    int64_t ntok;
    const struct tokenizer *tok;
};
void gb_init(struct gb *b, const struct tokenizer *tok, int want_ids, size_t reserve_bytes);
void gb_emit(struct gb *b, const char *s, size_t n);
static inline void gb_emits(struct gb *b, const char *s) { gb_emit(b, s, strlen(s)); }
/* " " + s as one piece */
void gb_emit_sp(struct gb *b, const char *s, size_t n);
/* Raw token ids (mqar, random-token needles); text gets their decoding. */
void gb_emit_ids(struct gb *b, const int32_t *ids, size_t n);
void gb_free(struct gb *b);

/* Token cost of a string, of " " + s, of "\n" */
static inline int64_t tcost(const struct tokenizer *t, const char *s) { return tok_count(t, s, strlen(s)); }
int64_t tcost_sp(const struct tokenizer *t, const char *s, size_t n);

/* RNG helpers */
static inline int64_t rng_int(lc_rng *r, int64_t lo, int64_t hi_incl) {
    return lo + (int64_t)lc_rng_below(r, (uint64_t)(hi_incl - lo + 1));
}
void rng_shuffle_i64(lc_rng *r, int64_t *a, int64_t n);
void rng_shuffle_i32(lc_rng *r, int32_t *a, int64_t n);
/* k distinct values from [0, n), in draw order (rejection; O(k^2), for small k) */
void rng_sample(lc_rng *r, int64_t n, int k, int64_t *out);
void rng_upper(lc_rng *r, char *buf, int n);  /* n random uppercase letters + NUL */
void rng_lower(lc_rng *r, char *buf, int n);  /* n random lowercase letters + NUL */
/* RULER value types: 0 numbers (7 digits), 1 words (adj-noun), 2 uuids (v4) */
void rng_value(lc_rng *r, int type, const struct word_lists *wl, char *buf, size_t cap);

/* Replace every occurrence of `from` by `to` in a malloc'd string (returns the new string and
 * frees the old one). */
char *str_replace(char *s, const char *from, const char *to);
char *xstrdup(const char *s);
char *xsprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Add a deviation tag to a sample */
void add_deviation(struct suite_sample *s, const char *tag);
/* Set outputs (copies) */
lc_status set_outputs(struct suite_sample *s, char **outs, int n);
/* Finish a sample from a builder: moves text/ids, sets counts. */
lc_status finish_sample(struct suite_sample *s, struct gb *b, int64_t input_len);

/* The noise unit of RULER and the passkey "garbage" */
extern const char *const NOISE_UNIT;

/* Task generators: build the prompt into `s` with prompt tokens <= target (RULER tasks) or
 * == target (probes, passkey, mqar). */
lc_status gen_niah(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s);
lc_status gen_vt(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s);
lc_status gen_cwe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s);
lc_status gen_fwe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s);
lc_status gen_qa(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s);
lc_status gen_probe(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s);
lc_status gen_passkey(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s);
lc_status gen_mqar(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s);
lc_status gen_copy(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s);

/* Depth for single-needle tasks: returns the fraction in [0,1] from the grid, or a negative
 * value when the task should draw its depth at random (RULER). */
double spec_depth(const struct suite_spec *spec, int *bin);

#endif

/* Emit n noise units joined by "\n", with item i inserted before unit pos[i] (pos ascending, in
 * [0, n]; items in order), recording each item's span. */
void emit_noise_items(struct gb *b, int64_t n, char *const *items, const int64_t *pos, int k, struct suite_span *spans);
/* Small open-addressing set of strings (for distinct pseudo-words) */
struct strset { uint64_t *h; size_t cap, n; };
int strset_add(struct strset *s, const char *w, size_t n); /* 1 if added, 0 if present, -1 no memory */
int strset_has(const struct strset *s, const char *w, size_t n);
void strset_free(struct strset *s);
/* Seed of RULER's fixed-seed shuffles: the same for every sample of (task, length, seed) */
uint64_t fixed_shuffle_seed(const struct suite_spec *spec);
lc_status fwe_build(const struct suite_spec *spec, lc_rng *rng, int64_t budget_text, int64_t V, int wlen, const char *head,
                    const char *tail, struct gb *b, char outs[3][8], int64_t *n_entries);
