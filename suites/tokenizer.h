/* tokenizer.h — the tokenizer seam of the suites: a struct of function pointers, so a BPE
 * tokenizer can be added later without touching the task generators.
 *
 * Generators build a prompt from pieces (template head, haystack units, needles, template
 * tail). The token sequence of a prompt is defined as the concatenation of encode(piece) over
 * its pieces, so token counts add up exactly and fitting a prompt to a length is arithmetic.
 * Pieces are cut at whitespace, newlines or template boundaries; for the byte tokenizer this
 * equals encode(whole text). For a BPE tokenizer it is what pre-splitting at those boundaries
 * would give (documented deviation from RULER, which tokenizes the whole string).
 */
#ifndef LONGCTX_TOKENIZER_H
#define LONGCTX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct tokenizer {
    const char *name;   /* e.g. "byte" */
    int64_t vocab_size; /* ids are in [0, vocab_size) */
    char sha256[65];    /* identity of the tokenizer (hash of its definition/vocab file) */
    /* Token ids whose text is printable and harmless, for random-token needles in the probes
     * (HSA code draws from [100, vocab)): [probe_lo, probe_hi), excluding probe_excl (-1: none). */
    int32_t probe_lo, probe_hi, probe_excl;
    /* Encode n bytes of text; write up to `cap` ids to `ids` (which may be NULL to count only);
     * returns the number of tokens (which may exceed cap: then only cap were written). */
    int64_t (*encode)(const struct tokenizer *t, const char *text, size_t n, int32_t *ids, size_t cap);
    /* Decode n ids; writes up to cap bytes; returns the number of bytes of the full text. */
    int64_t (*decode)(const struct tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap);
    void *state; /* tokenizer-specific data (a BPE merge table, ...) */
};

/* The default: one token per byte, vocab 256. */
const struct tokenizer *tokenizer_byte(void);
/* Look a tokenizer up by name ("byte"); NULL with an error message when unknown. */
const struct tokenizer *tokenizer_by_name(const char *name);

static inline int64_t tok_count(const struct tokenizer *t, const char *s, size_t n) {
    return t->encode(t, s, n, NULL, 0);
}

#endif
