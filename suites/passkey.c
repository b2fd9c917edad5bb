/* passkey.c — passkey retrieval after Landmark Attention (ruler.md section 7.1), fitted to an
 * exact token length: "{description}\n{prefix}\n{info}\n{suffix}\n{question}" + " {key}", where
 * the filler is the garbage sentence repeated (joined by spaces) cut to n characters, split into
 * prefix and suffix at a uniformly random point (or at the depth-grid fraction), the key is
 * uniform in [1, 50000], and the answer tokens " {key}" end the sequence (teacher forcing; the
 * text metric is the first integer of the output). n is the largest filler that fits; with the
 * byte tokenizer the fit is exact. */
#include <stdio.h>

#include "gen.h"

static const char *DESC = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.";
static const char *QUESTION = "What is the pass key? The pass key is";

/* Filler worth `budget` tokens: whole "unit " pieces, then the longest prefix of the next unit
 * whose tokens fit, then single spaces for any token left (none with the byte tokenizer, where
 * this is exactly the first `budget` characters of the periodic filler, as Landmark cuts it). */
static void emit_filler(struct gb *b, int64_t budget) {
    char unit[128];
    int ul = snprintf(unit, sizeof unit, "%s ", NOISE_UNIT);
    int64_t cu = tok_count(b->tok, unit, (size_t)ul), sp = tok_count(b->tok, " ", 1);
    for (; budget >= cu; budget -= cu) gb_emit(b, unit, (size_t)ul);
    int r = 0;
    while (r < ul && tok_count(b->tok, unit, (size_t)r + 1) <= budget) r++;
    if (r) {
        budget -= tok_count(b->tok, unit, (size_t)r);
        gb_emit(b, unit, (size_t)r);
    }
    for (; budget >= sp && sp > 0; budget -= sp) gb_emit(b, " ", 1);
}

lc_status gen_passkey(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    const struct tokenizer *tok = spec->tok;
    int key = (int)rng_int(rng, 1, 50000);
    char info[160], ans[16], keys[16];
    snprintf(info, sizeof info, "The pass key is %d. Remember it. %d is the pass key.", key, key);
    snprintf(ans, sizeof ans, " %d", key);
    snprintf(keys, sizeof keys, "%d", key);
    int64_t nl = tcost(tok, "\n");
    int64_t fixed = tcost(tok, DESC) + tcost(tok, info) + tcost(tok, QUESTION) + tcost(tok, ans) + 4 * nl;
    int64_t ngarb = target - fixed; /* filler tokens (characters, with the byte tokenizer) */
    if (ngarb < 0) return lc_errorf(LC_EINVAL, "length %lld is too short for passkey", (long long)spec->length);
    int bin;
    double depth = spec_depth(spec, &bin);
    int64_t npre = depth >= 0 ? (int64_t)(depth * (double)ngarb + 0.5) : (int64_t)lc_rng_below(rng, (uint64_t)ngarb + 1);
    struct gb b;
    gb_init(&b, tok, spec->want_ids, (size_t)target + 1024);
    gb_emits(&b, DESC);
    gb_emit(&b, "\n", 1);
    emit_filler(&b, npre);
    gb_emit(&b, "\n", 1);
    struct suite_span sp;
    sp.tok0 = b.ntok;
    sp.byte0 = (int64_t)b.len;
    gb_emits(&b, info);
    sp.tok1 = b.ntok;
    sp.byte1 = (int64_t)b.len;
    gb_emit(&b, "\n", 1);
    emit_filler(&b, ngarb - npre);
    gb_emit(&b, "\n", 1);
    gb_emits(&b, QUESTION);
    int64_t input_len = (int64_t)b.len, a0 = b.ntok;
    gb_emits(&b, ans);
    int64_t a1 = b.ntok;
    snprintf(s->haystack, sizeof s->haystack, "noise");
    s->num_haystack = ngarb;
    s->depth_bin = bin;
    lc_status st = finish_sample(s, &b, input_len);
    gb_free(&b);
    if (st) return st;
    s->needles = malloc(sizeof sp);
    if (!s->needles) return lc_errorf(LC_ENOMEM, "out of memory");
    s->needles[0] = sp;
    s->n_needles = 1;
    s->depth = (double)sp.tok0 / (double)s->prompt_tokens;
    int64_t na = a1 - a0;
    s->n_targets = s->n_answer_ids = na;
    s->target_pos = malloc(sizeof(int64_t) * (size_t)na);
    s->target_id = malloc(sizeof(int32_t) * (size_t)na);
    s->answer_ids = malloc(sizeof(int32_t) * (size_t)na);
    if (!s->target_pos || !s->target_id || !s->answer_ids) return lc_errorf(LC_ENOMEM, "out of memory");
    tok->encode(tok, ans, strlen(ans), s->answer_ids, (size_t)na);
    for (int64_t j = 0; j < na; j++) {
        s->target_pos[j] = a0 + j - 1;
        s->target_id[j] = s->answer_ids[j];
    }
    char *o[1] = {keys};
    return set_outputs(s, o, 1);
}
