/* suite.h — the public API of the suites: generate one sample of a task at a length, on the fly.
 *
 * A sample is a pure function of (task, length L, index, seed, tokenizer, haystack): the RNG of
 * a sample is seeded by hashing (seed, task name, L, index), so any sample can be regenerated
 * alone, in any order, without files (a 16M-token prompt is never stored).
 *
 * Tasks (suite_tasks()):
 *   ruler:  niah_single_1/2/3, niah_multikey_1/2/3, niah_multivalue, niah_multiquery, vt, cwe,
 *           fwe, qa_1, qa_2 — RULER's templates, needles, counts, depth rules and length fitting
 *           (prompt tokens + tokens_to_generate <= L, filled to within one haystack unit).
 *   probe:  tok_sniah, tok_mqniah (6 pairs, 2 queries), tok_vt (2 chains x 3 variables),
 *           tok_fwe — the HSA papers' token-level probes: the sequence is exactly L tokens,
 *           prompt + answer, scored by teacher-forced exact match of all answer tokens.
 *   other:  passkey (Landmark-attention text, key in [1, 50000], teacher-forced or string scored),
 *           mqar (Zoology multi-query associative recall, token ids only, many queries),
 *           copy (an early random segment reproduced after a marker at the end, token ids only:
 *           M supervised answer tokens per sequence, needles[0] = the source segment).
 *
 * Layout of a generated sample:
 *   text[0 : input_len]          RULER "input"
 *   text[input_len : text_len]   RULER "answer_prefix" (ruler tasks; empty otherwise)
 *   ids[0 : n_ids]               token ids of the text (concatenated per-piece encodings); for
 *                                probes/passkey/mqar n_ids == L and the answer is inside ids
 *   needles[i]                   token and byte span of needle i in the context (needles[0] is
 *                                the one queried first): where the answer lives, for retrieval
 *                                diagnostics (chunk = tok0 / S); mqar: needles[j] = the key-value
 *                                pair that target j queries (targets in sequence order); copy:
 *                                needles[0] = the source segment
 *   targets                      teacher-forced targets: predicting ids at target_pos[j] + 1,
 *                                i.e. the model's next-token prediction at position target_pos[j]
 *                                must equal target_id[j] (the per-token loss weights of MQAR)
 */
#ifndef LONGCTX_SUITE_H
#define LONGCTX_SUITE_H

#include <stdint.h>

#include "common.h"
#include "haystack.h"
#include "tokenizer.h"
#include "words.h"

enum suite_family { SUITE_RULER = 0, SUITE_PROBE = 1, SUITE_OTHER = 2 };
enum suite_metric { METRIC_ALL = 0, METRIC_PART = 1, METRIC_TF = 2 };

struct suite_task {
    const char *name;
    enum suite_family family;
    enum suite_metric metric;
    int tokens_to_generate; /* RULER's answer budget (0 for teacher-forced tasks) */
    int needs_prose;        /* 1: needs the prose haystack */
    int needs_qa;           /* 1: SQuAD, 2: HotpotQA file */
    int single_needle;      /* depth grid applies */
};
const struct suite_task *suite_tasks(int *n);
/* NULL with an error listing the known names when `name` is unknown. */
const struct suite_task *suite_task_find(const char *name);

struct qa_data; /* SQuAD / HotpotQA, loaded by qa_load (suites/qa.h) */

struct suite_spec {
    const char *task;
    int64_t length; /* L: max_seq_length (RULER) or exact sequence length (probes, passkey, mqar) */
    int64_t index;
    uint64_t seed;
    const struct tokenizer *tok;     /* NULL: byte */
    const struct haystack *hay;      /* prose haystack; NULL where not needed */
    const struct word_lists *words;  /* wonderwords lists; needed by niah, cwe */
    const struct qa_data *qa;        /* qa_1 / qa_2 */
    int depth_bins;                  /* 0: RULER's random depths; D > 0: single-needle tasks put
                                        sample i at depth (i % D) / (D - 1) */
    int want_ids;                    /* 0: text only (faster JSONL); 1: also token ids */
    int mqar_kv, mqar_queries;       /* mqar: key-value pairs (0: 64) and queries (0: = kv) */
    int64_t mqar_vocab;              /* mqar vocabulary (0: tokenizer's); copy: caps its token ids */
    int copy_len;                    /* copy: segment tokens M (0: 64) */
};

struct suite_span { int64_t tok0, tok1, byte0, byte1; };

struct suite_sample {
    const struct suite_task *task;
    char *text;
    int64_t text_len, input_len;
    int32_t *ids;
    int64_t n_ids;
    char **outputs; /* reference strings */
    int n_outputs;
    int32_t *answer_ids; /* encode(" " + outputs joined by the task's separator): TF target */
    int64_t n_answer_ids;
    struct suite_span *needles;
    int n_needles;
    int64_t *target_pos;
    int32_t *target_id;
    int64_t n_targets;
    int64_t prompt_tokens;   /* tokens of input + answer_prefix (RULER) or the whole sequence */
    int64_t length;          /* RULER length = prompt_tokens + tokens_to_generate */
    int64_t token_position_answer; /* tokens before the first occurrence of outputs[0]; -1 none */
    int64_t num_haystack;    /* haystack units used (words, noise units, distractors, ...) */
    double depth;            /* first needle's token offset / prompt tokens; -1 when none */
    int depth_bin;           /* -1 when no depth grid */
    char haystack[32];       /* "noise" | "essay" | "needle" | "list" | "coded" | "documents" | ... */
    char deviations[512];    /* comma-separated changes from RULER, "" when none */
};

lc_status suite_generate(const struct suite_spec *spec, struct suite_sample *out);
void suite_sample_free(struct suite_sample *s);

/* Teacher-forced exact match: `pred_next[t]` = the model's argmax next-token prediction at
 * position t, for t in [0, n_ids). Returns 1 when every target matches, else 0; *n_correct
 * (optional) gets the number of matching targets. */
int suite_score_tf(const struct suite_sample *s, const int32_t *pred_next, int64_t *n_correct);
/* Same, with predictions given only at the targets: pred_at_targets[j] is the prediction at
 * target_pos[j]. */
int suite_score_tf_at(const struct suite_sample *s, const int32_t *pred_at_targets, int64_t *n_correct);
/* Chunks of S tokens that hold needle i (HSA retrieval diagnostics): [*c0, *c1] inclusive. */
static inline void suite_needle_chunks(const struct suite_sample *s, int i, int64_t S, int64_t *c0, int64_t *c1) {
    *c0 = s->needles[i].tok0 / S;
    *c1 = (s->needles[i].tok1 - 1) / S;
}
/* Dense per-token loss weights (1 at target positions, 0 elsewhere) into w[0 : n_ids]. */
void suite_loss_weights(const struct suite_sample *s, float *w);

#endif
