/* copy.c — copying of an earlier segment (issue 8's dense retrieval data), as token ids.
 *
 * Layout of a sample of exactly L tokens (M = copy_len, default 64; m = the marker token, the
 * tokenizer's probe_excl, or the top probe id when that lies outside the capped vocabulary; never
 * drawn elsewhere):
 *
 *   ids[0 : p)                  filler, uniform random probe tokens
 *   ids[p]                      m
 *   ids[p+1 : p+1+M)            the segment: uniform random probe tokens (the needle)
 *   ids[p+1+M : L-M-1)          filler
 *   ids[L-M-1]                  m
 *   ids[L-M : L)                the copy: the segment again (the answer)
 *
 * Probe tokens are [probe_lo, probe_hi) less the marker (printable text for the byte tokenizer),
 * capped at mqar_vocab when given (the model's vocabulary in training). The segment start p is
 * early: uniform in [0, F/4] with F = L - 2M - 2 free filler tokens, or depth * F under a depth
 * grid. Targets: the next-token prediction at L-M-1+j must be segment[j] for j in [0, M), so every
 * answer token is supervised (M per sequence) and nothing else is; needles[0] = the segment's span,
 * where the retrieval diagnostics should find the answer. Solving it needs an induction pattern:
 * after the second marker, look up what followed the first one, then keep matching. */
#include <stdio.h>

#include "gen.h"

static int32_t draw_token(lc_rng *rng, int32_t lo, int32_t hi, int32_t excl) {
    for (;;) {
        int32_t t = (int32_t)rng_int(rng, lo, hi - 1);
        if (t != excl) return t;
    }
}

lc_status gen_copy(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    const struct tokenizer *tok = spec->tok;
    int64_t L = target, M = spec->copy_len > 0 ? spec->copy_len : 64;
    int32_t lo = tok->probe_lo, hi = tok->probe_hi, mark = tok->probe_excl;
    if (spec->mqar_vocab > 0 && hi > spec->mqar_vocab) hi = (int32_t)spec->mqar_vocab;
    LC_REQUIRE(hi - lo >= 3, "copy: tokenizer %s gives only %d probe tokens below vocabulary %lld", tok->name,
               (int)(hi - lo), (long long)spec->mqar_vocab);
    if (mark < lo || mark >= hi) mark = hi - 1; /* capped vocabulary (or no probe_excl): the top probe id */
    LC_REQUIRE(2 * M + 2 <= L, "copy: length %lld cannot hold two %lld-token segments and two markers", (long long)L,
               (long long)M);
    int64_t F = L - 2 * M - 2;
    int bin;
    double depth = spec_depth(spec, &bin);
    int64_t p = depth >= 0 ? (int64_t)(depth * (double)F + 0.5) : (int64_t)lc_rng_below(rng, (uint64_t)(F / 4) + 1);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)L);
    s->target_pos = malloc(sizeof(int64_t) * (size_t)M);
    s->target_id = malloc(sizeof(int32_t) * (size_t)M);
    s->answer_ids = malloc(sizeof(int32_t) * (size_t)M);
    s->needles = malloc(sizeof(struct suite_span));
    if (!ids || !s->target_pos || !s->target_id || !s->answer_ids || !s->needles) {
        free(ids);
        return lc_errorf(LC_ENOMEM, "out of memory for a %lld-token copy sample", (long long)L);
    }
    for (int64_t t = 0; t < L; t++) ids[t] = draw_token(rng, lo, hi, mark);
    ids[p] = mark;
    ids[L - M - 1] = mark;
    for (int64_t j = 0; j < M; j++) {
        int32_t v = ids[p + 1 + j];
        ids[L - M + j] = v;
        s->target_pos[j] = L - M - 1 + j;
        s->target_id[j] = v;
        s->answer_ids[j] = v;
    }
    s->n_targets = s->n_answer_ids = M;
    /* text = the decoding of the ids; byte offsets of the span from decoded prefix lengths */
    struct suite_span sp = {p + 1, p + 1 + M, 0, 0};
    sp.byte0 = tok->decode(tok, ids, (size_t)sp.tok0, NULL, 0);
    sp.byte1 = sp.byte0 + tok->decode(tok, ids + sp.tok0, (size_t)M, NULL, 0);
    int64_t ans_byte = tok->decode(tok, ids, (size_t)(L - M), NULL, 0);
    int64_t tl = tok->decode(tok, ids, (size_t)L, NULL, 0);
    s->text = malloc((size_t)tl + 1);
    char *o = malloc((size_t)(tl - ans_byte) + 1);
    if (!s->text || !o) {
        free(ids);
        free(o);
        return lc_errorf(LC_ENOMEM, "out of memory");
    }
    tok->decode(tok, ids, (size_t)L, s->text, (size_t)tl);
    s->text[tl] = 0;
    memcpy(o, s->text + ans_byte, (size_t)(tl - ans_byte));
    o[tl - ans_byte] = 0;
    /* the whole sequence is the input (teacher forced; the answer is inside the ids, as for mqar) */
    s->text_len = s->input_len = tl;
    s->prompt_tokens = L;
    s->needles[0] = sp;
    s->n_needles = 1;
    s->depth = (double)sp.tok0 / (double)L;
    s->depth_bin = bin;
    s->token_position_answer = sp.tok0;
    if (spec->want_ids) {
        s->ids = ids;
        s->n_ids = L;
    } else {
        free(ids);
    }
    snprintf(s->haystack, sizeof s->haystack, "random_tokens");
    s->num_haystack = F;
    lc_status st = set_outputs(s, &o, 1);
    free(o);
    return st;
}
