/* qa.h — RULER's QA tasks (qa_1: SQuAD v2.0 dev, qa_2: HotpotQA dev distractor), from files the
 * user supplies (no offline source exists; without them the tasks are skipped: RULER-11).
 *   SQuAD: documents = sorted unique paragraph contexts; questions = answerable ones in file
 *          order; outputs = all answer texts; gold = its paragraph.
 *   HotpotQA: documents = sorted unique title + "\n" + joined sentences; outputs = [answer];
 *          gold = the paragraphs given with the question. */
#ifndef LONGCTX_QA_H
#define LONGCTX_QA_H

#include <stdint.h>

#include "common.h"

struct qa_item {
    char *question;
    char **answers;
    int n_answers;
    int64_t *gold; /* document indices: the gold paragraph(s) */
    int n_gold;
    int64_t *more; /* SQuAD: the other paragraphs of the same article */
    int n_more;
};

struct qa_data {
    int kind; /* 1 SQuAD, 2 HotpotQA */
    char path[512];
    char sha256[65];
    char **docs;
    int64_t n_docs;
    struct qa_item *items;
    int64_t n_items;
};

/* Load a SQuAD v2 (kind 1) or HotpotQA (kind 2) JSON file; errors name the file and what is
 * missing. The file's sha256 is kept for the samples' provenance. */
lc_status qa_load(struct qa_data *q, const char *path, int kind);
/* Parse from memory (tests) */
lc_status qa_parse(struct qa_data *q, const char *json, size_t n, const char *what, int kind);
void qa_free(struct qa_data *q);

#endif
