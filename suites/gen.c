/* gen.c — the task table, suite_generate (seeding, length fitting check, retry), the prompt
 * builder and the helpers of gen.h, and teacher-forced scoring of samples. */
#include "gen.h"

#include <stdarg.h>
#include <stdio.h>

static uint64_t name_hash(const char *s);

const char *const NOISE_UNIT = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

static const struct suite_task TASKS[] = {
    /* name            family       metric      G    prose qa single */
    {"niah_single_1", SUITE_RULER, METRIC_ALL, 128, 0, 0, 1},
    {"niah_single_2", SUITE_RULER, METRIC_ALL, 128, 1, 0, 1},
    {"niah_single_3", SUITE_RULER, METRIC_ALL, 128, 1, 0, 1},
    {"niah_multikey_1", SUITE_RULER, METRIC_ALL, 128, 1, 0, 0},
    {"niah_multikey_2", SUITE_RULER, METRIC_ALL, 128, 0, 0, 1},
    {"niah_multikey_3", SUITE_RULER, METRIC_ALL, 128, 0, 0, 1},
    {"niah_multivalue", SUITE_RULER, METRIC_ALL, 128, 1, 0, 0},
    {"niah_multiquery", SUITE_RULER, METRIC_ALL, 128, 1, 0, 0},
    {"vt", SUITE_RULER, METRIC_ALL, 30, 0, 0, 0},
    {"cwe", SUITE_RULER, METRIC_ALL, 120, 0, 0, 0},
    {"fwe", SUITE_RULER, METRIC_ALL, 50, 0, 0, 0},
    {"qa_1", SUITE_RULER, METRIC_PART, 32, 0, 1, 0},
    {"qa_2", SUITE_RULER, METRIC_PART, 32, 0, 2, 0},
    {"tok_sniah", SUITE_PROBE, METRIC_TF, 0, 1, 0, 1},
    {"tok_mqniah", SUITE_PROBE, METRIC_TF, 0, 1, 0, 0},
    {"tok_vt", SUITE_PROBE, METRIC_TF, 0, 1, 0, 0},
    {"tok_fwe", SUITE_PROBE, METRIC_TF, 0, 0, 0, 0},
    {"passkey", SUITE_OTHER, METRIC_TF, 0, 0, 0, 1},
    {"mqar", SUITE_OTHER, METRIC_TF, 0, 0, 0, 0},
    {"copy", SUITE_OTHER, METRIC_TF, 0, 0, 0, 1},
};
enum { N_TASKS = sizeof TASKS / sizeof TASKS[0] };

const struct suite_task *suite_tasks(int *n) {
    *n = N_TASKS;
    return TASKS;
}

const struct suite_task *suite_task_find(const char *name) {
    for (int i = 0; i < N_TASKS; i++)
        if (!strcmp(TASKS[i].name, name)) return &TASKS[i];
    char list[1024] = "";
    for (int i = 0; i < N_TASKS; i++) {
        strcat(list, i ? ", " : "");
        strcat(list, TASKS[i].name);
    }
    lc_errorf(LC_EINVAL, "unknown task '%s' (known: %s)", name, list);
    return NULL;
}

/* ---- builder ---- */

void gb_init(struct gb *b, const struct tokenizer *tok, int want_ids, size_t reserve) {
    memset(b, 0, sizeof *b);
    b->tok = tok;
    b->want_ids = want_ids;
    b->cap = reserve + 256;
    b->text = malloc(b->cap);
    if (want_ids) {
        b->cap_ids = reserve + 256;
        b->ids = malloc(sizeof(int32_t) * b->cap_ids);
    }
    if (!b->text || (want_ids && !b->ids)) b->err = 1;
}

static int gb_grow(struct gb *b, size_t need_text, size_t need_ids) {
    if (b->err) return 0;
    if (b->len + need_text + 1 > b->cap) {
        size_t cap = b->cap * 2 > b->len + need_text + 1 ? b->cap * 2 : b->len + need_text + 1;
        char *p = realloc(b->text, cap);
        if (!p) { b->err = 1; return 0; }
        b->text = p;
        b->cap = cap;
    }
    if (b->want_ids && b->n + need_ids > b->cap_ids) {
        size_t cap = b->cap_ids * 2 > b->n + need_ids ? b->cap_ids * 2 : b->n + need_ids;
        int32_t *p = realloc(b->ids, sizeof(int32_t) * cap);
        if (!p) { b->err = 1; return 0; }
        b->ids = p;
        b->cap_ids = cap;
    }
    return 1;
}

void gb_emit(struct gb *b, const char *s, size_t n) {
    if (!gb_grow(b, n, 0)) return;
    memcpy(b->text + b->len, s, n);
    b->len += n;
    int64_t k;
    if (b->want_ids) {
        k = b->tok->encode(b->tok, s, n, b->ids + b->n, b->cap_ids - b->n);
        if ((size_t)k > b->cap_ids - b->n) {
            if (!gb_grow(b, 0, (size_t)k)) return;
            b->tok->encode(b->tok, s, n, b->ids + b->n, b->cap_ids - b->n);
        }
        b->n += (size_t)k;
    } else {
        k = b->tok->encode(b->tok, s, n, NULL, 0);
    }
    b->ntok += k;
}

void gb_emit_sp(struct gb *b, const char *s, size_t n) {
    char tmp[1024];
    if (n + 1 <= sizeof tmp) {
        tmp[0] = ' ';
        memcpy(tmp + 1, s, n);
        gb_emit(b, tmp, n + 1);
    } else {
        gb_emit(b, " ", 1);
        gb_emit(b, s, n);
    }
}

int64_t tcost_sp(const struct tokenizer *t, const char *s, size_t n) {
    char tmp[1024];
    if (n + 1 <= sizeof tmp) {
        tmp[0] = ' ';
        memcpy(tmp + 1, s, n);
        return tok_count(t, tmp, n + 1);
    }
    return tok_count(t, " ", 1) + tok_count(t, s, n);
}

void gb_emit_ids(struct gb *b, const int32_t *ids, size_t n) {
    if (!gb_grow(b, 0, n)) return;
    /* text: the decoding, so JSONL and byte offsets stay meaningful */
    int64_t m = b->tok->decode(b->tok, ids, n, NULL, 0);
    if (!gb_grow(b, (size_t)m, 0)) return;
    b->tok->decode(b->tok, ids, n, b->text + b->len, (size_t)m);
    b->len += (size_t)m;
    if (b->want_ids) {
        memcpy(b->ids + b->n, ids, sizeof(int32_t) * n);
        b->n += n;
    }
    b->ntok += (int64_t)n;
}

void gb_free(struct gb *b) {
    free(b->text);
    free(b->ids);
    memset(b, 0, sizeof *b);
}

/* ---- rng helpers ---- */

void rng_shuffle_i64(lc_rng *r, int64_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)lc_rng_below(r, (uint64_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
void rng_shuffle_i32(lc_rng *r, int32_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)lc_rng_below(r, (uint64_t)i + 1);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void rng_sample(lc_rng *r, int64_t n, int k, int64_t *out) {
    for (int i = 0; i < k; i++) {
        for (;;) {
            int64_t x = (int64_t)lc_rng_below(r, (uint64_t)n);
            int dup = 0;
            for (int j = 0; j < i; j++) dup |= out[j] == x;
            if (!dup) { out[i] = x; break; }
        }
    }
}

void rng_upper(lc_rng *r, char *buf, int n) {
    for (int i = 0; i < n; i++) buf[i] = (char)('A' + lc_rng_below(r, 26));
    buf[n] = 0;
}
void rng_lower(lc_rng *r, char *buf, int n) {
    for (int i = 0; i < n; i++) buf[i] = (char)('a' + lc_rng_below(r, 26));
    buf[n] = 0;
}

void rng_value(lc_rng *r, int type, const struct word_lists *wl, char *buf, size_t cap) {
    if (type == 0) {
        snprintf(buf, cap, "%d", (int)rng_int(r, 1000000, 9999999));
    } else if (type == 1) {
        snprintf(buf, cap, "%s-%s", wl->adj.w[lc_rng_below(r, (uint64_t)wl->adj.n)],
                 wl->noun.w[lc_rng_below(r, (uint64_t)wl->noun.n)]);
    } else {
        uint64_t hi = lc_rng_next(r), lo = lc_rng_next(r);
        hi = (hi & ~0xf000ull) | 0x4000ull;                      /* version 4 */
        lo = (lo & ~0xc000000000000000ull) | 0x8000000000000000ull; /* variant 10 */
        snprintf(buf, cap, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32), (unsigned)((hi >> 16) & 0xffff),
                 (unsigned)(hi & 0xffff), (unsigned)(lo >> 48), (unsigned long long)(lo & 0xffffffffffffull));
    }
}

/* ---- strings ---- */

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

char *xsprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = malloc((size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

char *str_replace(char *s, const char *from, const char *to) {
    if (!s) return NULL;
    size_t fl = strlen(from), tl = strlen(to), cnt = 0;
    for (const char *p = s; (p = strstr(p, from)); p += fl) cnt++;
    if (!cnt) return s;
    char *out = malloc(strlen(s) + cnt * tl - cnt * fl + 1), *o = out;
    if (!out) { free(s); return NULL; }
    const char *p = s, *q;
    while ((q = strstr(p, from))) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    strcpy(o, p);
    free(s);
    return out;
}

void add_deviation(struct suite_sample *s, const char *tag) {
    size_t n = strlen(s->deviations);
    snprintf(s->deviations + n, sizeof s->deviations - n, "%s%s", n ? "," : "", tag);
}

lc_status set_outputs(struct suite_sample *s, char **outs, int n) {
    s->outputs = calloc((size_t)n, sizeof(char *));
    if (!s->outputs) return lc_errorf(LC_ENOMEM, "out of memory");
    s->n_outputs = n;
    for (int i = 0; i < n; i++)
        if (!(s->outputs[i] = xstrdup(outs[i]))) return lc_errorf(LC_ENOMEM, "out of memory");
    return LC_OK;
}

lc_status finish_sample(struct suite_sample *s, struct gb *b, int64_t input_len) {
    if (b->err) {
        gb_free(b);
        return lc_errorf(LC_ENOMEM, "out of memory building a %s sample", s->task->name);
    }
    b->text[b->len] = 0;
    s->text = b->text;
    s->text_len = (int64_t)b->len;
    s->input_len = input_len;
    s->ids = b->ids;
    s->n_ids = b->want_ids ? (int64_t)b->n : 0;
    s->prompt_tokens = b->ntok;
    b->text = NULL;
    b->ids = NULL;
    return LC_OK;
}

double spec_depth(const struct suite_spec *spec, int *bin) {
    if (spec->depth_bins <= 0) { *bin = -1; return -1; }
    *bin = (int)(spec->index % spec->depth_bins);
    return spec->depth_bins == 1 ? 0.5 : (double)*bin / (spec->depth_bins - 1);
}

/* ---- driver ---- */


void suite_sample_free(struct suite_sample *s) {
    free(s->text);
    free(s->ids);
    for (int i = 0; i < s->n_outputs; i++) free(s->outputs[i]);
    free(s->outputs);
    free(s->answer_ids);
    free(s->needles);
    free(s->target_pos);
    free(s->target_id);
    memset(s, 0, sizeof *s);
}

lc_status suite_generate(const struct suite_spec *spec_in, struct suite_sample *out) {
    memset(out, 0, sizeof *out);
    struct suite_spec spec = *spec_in;
    if (!spec.tok) spec.tok = tokenizer_byte();
    const struct suite_task *t = suite_task_find(spec.task);
    if (!t) return LC_EINVAL;
    LC_REQUIRE(spec.length >= 256 && spec.length <= ((int64_t)1 << 31),
               "length %lld for task %s: must be in [256, 2^31]", (long long)spec.length, t->name);
    LC_REQUIRE(spec.index >= 0, "sample index %lld must be >= 0", (long long)spec.index);
    if (t->needs_prose && !spec.hay)
        return lc_errorf(LC_EINVAL, "task %s needs the prose haystack (%s, or --haystack FILE); none was loaded", t->name,
                         HAYSTACK_DEFAULT_PATH);
    if (t->needs_prose && spec.hay->tok != spec.tok)
        return lc_errorf(LC_EINVAL, "haystack was costed with tokenizer '%s', not '%s'", spec.hay->tok->name, spec.tok->name);
    if (!spec.words && (!strncmp(t->name, "niah", 4) || !strcmp(t->name, "cwe")))
        return lc_errorf(LC_EINVAL, "task %s needs the wonderwords lists (suites/data)", t->name);
    if (t->needs_qa && !spec.qa)
        return lc_errorf(LC_EINVAL, "task %s needs the %s file (--squad / --hotpotqa); skipped", t->name,
                         t->needs_qa == 1 ? "SQuAD v2 dev-v2.0.json" : "HotpotQA hotpot_dev_distractor_v1.json");
    lc_status (*fn)(const struct suite_spec *, lc_rng *, int64_t, struct suite_sample *) =
        !strncmp(t->name, "niah", 4) ? gen_niah : !strcmp(t->name, "vt") ? gen_vt : !strcmp(t->name, "cwe") ? gen_cwe
        : !strcmp(t->name, "fwe") ? gen_fwe : !strncmp(t->name, "qa", 2) ? gen_qa : !strncmp(t->name, "tok_", 4) ? gen_probe
        : !strcmp(t->name, "passkey") ? gen_passkey : !strcmp(t->name, "copy") ? gen_copy : gen_mqar;
    uint64_t seed = lc_hash3(spec.seed, name_hash(t->name) ^ (uint64_t)spec.length, (uint64_t)spec.index);
    int64_t target = spec.length - t->tokens_to_generate;
    /* Fitting is exact for tokenizers whose piece costs add up (byte); otherwise shrink the target
     * by the overshoot and regenerate the same sample (same seed), a few times. */
    for (int attempt = 0; attempt < 6; attempt++) {
        lc_rng rng;
        lc_rng_seed(&rng, seed);
        out->task = t;
        out->depth = -1;
        out->depth_bin = -1;
        out->token_position_answer = -1;
        lc_status s = fn(&spec, &rng, target, out);
        if (s) { suite_sample_free(out); return s; }
        int64_t over = out->prompt_tokens - (spec.length - t->tokens_to_generate);
        if (t->family != SUITE_RULER) over = out->prompt_tokens - spec.length;
        if (over <= 0 && (t->family == SUITE_RULER || over == 0)) {
            out->length = out->prompt_tokens + t->tokens_to_generate;
            /* answer ids: " " + outputs joined by ", " unless the task set them */
            if (!out->answer_ids && out->n_outputs) {
                size_t n = 0;
                for (int i = 0; i < out->n_outputs; i++) n += strlen(out->outputs[i]) + 2;
                char *a = malloc(n + 2);
                if (!a) { suite_sample_free(out); return lc_errorf(LC_ENOMEM, "out of memory"); }
                a[0] = 0;
                for (int i = 0; i < out->n_outputs; i++) { strcat(a, i ? ", " : " "); strcat(a, out->outputs[i]); }
                int64_t k = tok_count(spec.tok, a, strlen(a));
                out->answer_ids = malloc(sizeof(int32_t) * (size_t)(k + 1));
                if (!out->answer_ids) { free(a); suite_sample_free(out); return lc_errorf(LC_ENOMEM, "out of memory"); }
                spec.tok->encode(spec.tok, a, strlen(a), out->answer_ids, (size_t)k);
                out->n_answer_ids = k;
                free(a);
            }
            return LC_OK;
        }
        if (t->family != SUITE_RULER && over < 0) {
            suite_sample_free(out);
            return lc_errorf(LC_EINVAL, "internal: %s sample has %lld tokens, wanted %lld", t->name,
                             (long long)(spec.length + over), (long long)spec.length);
        }
        suite_sample_free(out);
        target -= over;
    }
    return lc_errorf(LC_EINVAL, "%s: could not fit a prompt into %lld tokens with tokenizer %s", t->name,
                     (long long)spec.length, spec.tok->name);
}

/* ---- teacher-forced scoring ---- */

int suite_score_tf_at(const struct suite_sample *s, const int32_t *pred, int64_t *n_correct) {
    int64_t c = 0;
    for (int64_t j = 0; j < s->n_targets; j++) c += pred[j] == s->target_id[j];
    if (n_correct) *n_correct = c;
    return s->n_targets > 0 && c == s->n_targets;
}

int suite_score_tf(const struct suite_sample *s, const int32_t *pred_next, int64_t *n_correct) {
    int64_t c = 0;
    for (int64_t j = 0; j < s->n_targets; j++) c += pred_next[s->target_pos[j]] == s->target_id[j];
    if (n_correct) *n_correct = c;
    return s->n_targets > 0 && c == s->n_targets;
}

void suite_loss_weights(const struct suite_sample *s, float *w) {
    memset(w, 0, sizeof(float) * (size_t)s->n_ids);
    for (int64_t j = 0; j < s->n_targets; j++) w[s->target_pos[j]] = 1.0f;
}

void emit_noise_items(struct gb *b, int64_t n, char *const *items, const int64_t *pos, int k, struct suite_span *spans) {
    size_t ul = strlen(NOISE_UNIT);
    int first = 1, j = 0;
    for (int64_t u = 0; u <= n; u++) {
        while (j < k && pos[j] == u) {
            if (!first) gb_emit(b, "\n", 1);
            first = 0;
            spans[j].tok0 = b->ntok;
            spans[j].byte0 = (int64_t)b->len;
            gb_emits(b, items[j]);
            spans[j].tok1 = b->ntok;
            spans[j].byte1 = (int64_t)b->len;
            j++;
        }
        if (u == n) break;
        if (!first) gb_emit(b, "\n", 1);
        first = 0;
        gb_emit(b, NOISE_UNIT, ul);
    }
}

/* 64-bit FNV-1a of the word as its identity (collisions at 2^-64 per pair are ignored) */
static uint64_t strset_hash(const char *w, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)w[i]) * 1099511628211ull;
    return h | 1; /* 0 marks an empty slot */
}

int strset_has(const struct strset *s, const char *w, size_t n) {
    if (!s->cap) return 0;
    uint64_t h = strset_hash(w, n);
    for (size_t k = (size_t)(h * 0x9e3779b97f4a7c15ull) & (s->cap - 1); s->h[k]; k = (k + 1) & (s->cap - 1))
        if (s->h[k] == h) return 1;
    return 0;
}

int strset_add(struct strset *s, const char *w, size_t n) {
    uint64_t h = strset_hash(w, n);
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        uint64_t *t = calloc(cap, sizeof *t);
        if (!t) return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->h[i]) {
                size_t k = (size_t)(s->h[i] * 0x9e3779b97f4a7c15ull) & (cap - 1);
                while (t[k]) k = (k + 1) & (cap - 1);
                t[k] = s->h[i];
            }
        free(s->h);
        s->h = t;
        s->cap = cap;
    }
    size_t k = (size_t)(h * 0x9e3779b97f4a7c15ull) & (s->cap - 1);
    while (s->h[k]) {
        if (s->h[k] == h) return 0;
        k = (k + 1) & (s->cap - 1);
    }
    s->h[k] = h;
    s->n++;
    return 1;
}

void strset_free(struct strset *s) {
    free(s->h);
    memset(s, 0, sizeof *s);
}

uint64_t fixed_shuffle_seed(const struct suite_spec *spec) {
    return lc_hash3(spec->seed ^ 0x5eed5eedull, name_hash(spec->task), (uint64_t)spec->length);
}

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}
