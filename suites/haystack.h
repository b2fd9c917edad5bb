/* haystack.h — the prose haystack for the essay tasks and the token probes.
 *
 * RULER's essay haystack (Paul Graham essays) is not redistributable. The default here is the
 * Jargon File 4.4.7 (public domain) from Debian's jargon-text package, read from
 * /usr/share/doc/jargon-text/jargon.txt.gz (gzip is decoded in-process); --haystack FILE names
 * any other corpus (plain text or .gz), e.g. held-out text of a model's training data.
 *
 * Preparation, after RULER: whitespace runs become one space and the text is split into words
 * (RULER: re.sub(r'\s+', ' ', text).split(' ')); box-drawing characters (U+2500..U+259F, used by
 * the Jargon File's tables) count as whitespace. The word list is cycled when a prompt needs more.
 * Sentences (RULER uses NLTK Punkt, which is not available in C): a word ends a sentence when it
 * ends in . ! or ? (optionally followed by a closing quote or bracket), is not a common
 * abbreviation, and the next word starts with an uppercase letter, a digit or an opening quote.
 * The last word of the corpus ends a sentence, so a cycle boundary is a sentence boundary.
 *
 * Each word carries its token cost under the bound tokenizer as a piece " word" (cost) and, for
 * the first word of a context, "word" (cost0). */
#ifndef LONGCTX_HAYSTACK_H
#define LONGCTX_HAYSTACK_H

#include <stdint.h>

#include "common.h"
#include "tokenizer.h"

#define HAYSTACK_DEFAULT_PATH "/usr/share/doc/jargon-text/jargon.txt.gz"
#define HAYSTACK_DEFAULT_NAME "jargon-text 4.4.7 (Debian package jargon-text, public domain)"

struct haystack {
    char name[256];   /* what it is */
    char path[512];   /* where it was read */
    char sha256[65];  /* of the file as read (compressed bytes for .gz) */
    char *text;       /* normalized text: words separated by single spaces */
    int64_t n_words;
    uint32_t *word_off;  /* byte offset of each word in text */
    uint32_t *word_len;
    uint8_t *sent_end;   /* 1 when the word ends a sentence */
    int32_t *cost, *cost0;
    int64_t n_sentences;
    const struct tokenizer *tok;
};

/* Load `path` (NULL: the default Jargon File). A missing default names the package and the
 * command that installs it. */
lc_status haystack_load(struct haystack *h, const char *path, const struct tokenizer *tok);
void haystack_free(struct haystack *h);

#endif
