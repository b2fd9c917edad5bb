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
    int64_t *gold; /* document indices */
    int n_gold;
};

struct qa_data {
    int kind; /* 1 SQuAD, 2 HotpotQA */
    char path[512];
    char sha256[65];
    char **docs;
    int64_t n_docs;
    int32_t *doc_cost; /* tokens of "Document {j}:\n{doc}" minus the number (filled per tokenizer lazily) */
    struct qa_item *items;
    int64_t n_items;
};

lc_status qa_load(struct qa_data *q, const char *path, int kind);
void qa_free(struct qa_data *q);

#endif
