/* words.h — the vendored wonderwords lists (suites/data/{adjective,noun,verb}list.txt, MIT,
 * v3.0.0), pinned by sha256: a file whose hash differs (edited, truncated, other version) is
 * refused with a message naming it, the expected and the found hash.
 *
 * RULER uses them for NIAH keys ("adjective-noun") and for the CWE word pool
 * sorted(set(nouns + adjectives + verbs)). */
#ifndef LONGCTX_WORDS_H
#define LONGCTX_WORDS_H

#include "common.h"

struct word_list {
    char **w;
    int n;
    char *blob; /* storage for the strings */
};

struct word_lists {
    struct word_list adj, noun, verb;
    char **pool; /* CWE pool: sorted set of adj + noun + verb (bytewise order, like Python) */
    int n_pool;
    char dir[512];
};

/* Directory holding the lists: $LONGCTX_DATA_DIR, else ./suites/data, else <exe>/../../suites/data. */
const char *suite_data_dir(char *buf, size_t cap);
/* Load and verify the three lists from `dir` (NULL: suite_data_dir()). */
lc_status words_load(struct word_lists *wl, const char *dir);
void words_free(struct word_lists *wl);

/* Expected sha256 of each list (v3.0.0). */
extern const char *const WORDS_SHA256_ADJ, *const WORDS_SHA256_NOUN, *const WORDS_SHA256_VERB;

/* Read a whole file (NUL-terminated); error names the path. */
lc_status read_file_all(const char *path, char **data, size_t *len);

#endif
