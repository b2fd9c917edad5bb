/* vt.c — RULER variable tracking (ruler.md section 3.2): one chain of 5 variables (4 hops) in
 * the noise haystack, "VAR A = 12345", then "VAR B = VAR A " (RULER's trailing space), ...,
 * statements in chain order at uniformly random unit positions; the query is the value and the
 * answer the 5 names. A one-shot example (3-letter names, its own value, fitted to 500 tokens)
 * comes first: "{example prompt} {N1 N2 N3 N4 N5}\n\n{task prompt}". Names are distinct (RULER
 * may draw duplicates). */
#include <stdio.h>

#include "gen.h"

static const char *VT_TEMPLATE =
    "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\nQuestion: Find all variables that are assigned the value {query} in the text above.";
static const char *VT_ANSWER_PREFIX =
    " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are assigned the value {query}, they are: ";

enum { HOPS = 4, NV = HOPS + 1 };

struct vt_prompt { char head[256], tail[256], ap[256]; char *stmts[NV]; char names[NV][8]; int64_t cost_fixed; };

static void make_prompt(struct vt_prompt *p, lc_rng *rng, int name_len, int value, const struct tokenizer *tok) {
    for (int i = 0; i < NV; i++) {
        int dup;
        do {
            rng_upper(rng, p->names[i], name_len);
            dup = 0;
            for (int j = 0; j < i; j++) dup |= !strcmp(p->names[i], p->names[j]);
        } while (dup);
    }
    p->stmts[0] = xsprintf("VAR %s = %d", p->names[0], value);
    for (int j = 0; j < HOPS; j++) p->stmts[j + 1] = xsprintf("VAR %s = VAR %s ", p->names[j + 1], p->names[j]);
    const char *ctx = strstr(VT_TEMPLATE, "{context}");
    snprintf(p->head, sizeof p->head, "%.*s", (int)(ctx - VT_TEMPLATE), VT_TEMPLATE);
    const char *t = ctx + 9, *q = strstr(t, "{query}");
    snprintf(p->tail, sizeof p->tail, "%.*s%d%s", (int)(q - t), t, value, q + 7);
    const char *nv = strstr(VT_ANSWER_PREFIX, "{num_v}"), *q2 = strstr(VT_ANSWER_PREFIX, "{query}");
    snprintf(p->ap, sizeof p->ap, "%.*s%d%.*s%d%s", (int)(nv - VT_ANSWER_PREFIX), VT_ANSWER_PREFIX, NV, (int)(q2 - nv - 7), nv + 7,
             value, q2 + 7);
    p->cost_fixed = tcost(tok, p->head) + tcost(tok, p->tail) + tcost(tok, p->ap);
    for (int i = 0; i < NV; i++) p->cost_fixed += tcost(tok, p->stmts[i]);
}

static void free_prompt(struct vt_prompt *p) {
    for (int i = 0; i < NV; i++) free(p->stmts[i]);
}

/* noise units that fit `budget` tokens around the NV statements */
static int64_t fit_units(int64_t budget, const struct tokenizer *tok) {
    int64_t cu = tcost(tok, NOISE_UNIT), cnl = tcost(tok, "\n");
    int64_t avail = budget - (NV - 1) * cnl;
    return avail < 0 ? -1 : avail / (cu + cnl);
}

static void emit_prompt(struct gb *b, struct vt_prompt *p, int64_t n, lc_rng *rng, struct suite_span *spans, int64_t *input_len) {
    int64_t pos[NV];
    if (n >= NV) rng_sample(rng, n, NV, pos);
    else for (int i = 0; i < NV; i++) pos[i] = (int64_t)lc_rng_below(rng, (uint64_t)n + 1); /* tiny example */
    for (int i = 1; i < NV; i++) /* sort ascending: statements keep chain order */
        for (int j = i; j > 0 && pos[j] < pos[j - 1]; j--) { int64_t t = pos[j]; pos[j] = pos[j - 1]; pos[j - 1] = t; }
    gb_emits(b, p->head);
    emit_noise_items(b, n, p->stmts, pos, NV, spans);
    gb_emits(b, p->tail);
    if (input_len) *input_len = (int64_t)b->len;
    gb_emits(b, p->ap);
}

lc_status gen_vt(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    const struct tokenizer *tok = spec->tok;
    struct vt_prompt main_p, ex;
    int value = (int)rng_int(rng, 10000, 99998), ex_value;
    make_prompt(&main_p, rng, 5, value, tok);
    do ex_value = (int)rng_int(rng, 10000, 99998);
    while (ex_value == value);
    make_prompt(&ex, rng, 3, ex_value, tok);
    /* example: fitted to 500 tokens with no answer budget, then " N1 ... N5\n" */
    int64_t n_ex = fit_units(500 - ex.cost_fixed, tok);
    char ex_answer[64] = " ";
    for (int i = 0; i < NV; i++) { strcat(ex_answer, ex.names[i]); strcat(ex_answer, i < NV - 1 ? " " : "\n"); }
    int64_t ex_cost = ex.cost_fixed + n_ex * tcost(tok, NOISE_UNIT) + (n_ex + NV - 1) * tcost(tok, "\n") + tcost(tok, ex_answer) +
                      tcost(tok, "\n");
    int64_t n = fit_units(target - ex_cost - main_p.cost_fixed, tok);
    lc_status st = LC_OK;
    if (n_ex < 0 || n < NV) {
        st = lc_errorf(LC_EINVAL, "length %lld is too short for vt", (long long)spec->length);
        goto done;
    }
    struct gb b;
    gb_init(&b, tok, spec->want_ids, (size_t)target + 1024);
    struct suite_span ex_spans[NV], spans[NV];
    emit_prompt(&b, &ex, n_ex, rng, ex_spans, NULL);
    gb_emits(&b, ex_answer);
    gb_emit(&b, "\n", 1);
    int64_t input_len;
    emit_prompt(&b, &main_p, n, rng, spans, &input_len);
    snprintf(s->haystack, sizeof s->haystack, "noise");
    s->num_haystack = n;
    if ((st = finish_sample(s, &b, input_len))) { gb_free(&b); goto done; }
    gb_free(&b);
    char *outs[NV];
    for (int i = 0; i < NV; i++) outs[i] = main_p.names[i];
    if ((st = set_outputs(s, outs, NV))) goto done;
    s->needles = malloc(sizeof spans);
    if (!s->needles) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto done; }
    memcpy(s->needles, spans, sizeof spans);
    s->n_needles = NV;
    s->depth = (double)spans[0].tok0 / (double)s->prompt_tokens;
done:
    free_prompt(&main_p);
    free_prompt(&ex);
    return st;
}
