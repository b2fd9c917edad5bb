/* suite_io.h — one generated sample as a RULER-compatible JSONL line (ruler.md section 8.3):
 * index, input, outputs, length, length_w_model_temp, answer_prefix, token_position_answer, and
 * "others" with the provenance (task, suite, L, G, seed, generator version, haystack name and
 * sha256, tokenizer name and sha256, depth, needle token spans, teacher-forced targets,
 * deviations from RULER). */
#ifndef LONGCTX_SUITE_IO_H
#define LONGCTX_SUITE_IO_H

#include "jsonl.h"
#include "suite.h"

#define SUITE_GEN_VERSION "longctx-suites-1"

/* Append one line (with trailing newline) to b. no_input: write "input": "" and put the input's
 * sha256 in others.input_sha256 (metadata-only files for very long samples). */
void suite_sample_jsonl(const struct suite_spec *spec, const struct suite_sample *s, int no_input, struct jbuf *b);

/* mkdir -p; returns 1 on success */
int suite_mkdirs(const char *path);

#endif
