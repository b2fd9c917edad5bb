/* qa.c — RULER's QA tasks from user-supplied files (ruler.md section 3.5).
 *   qa_1 SQuAD v2.0 dev: documents = sorted unique paragraph contexts; questions = the
 *        answerable ones (is_impossible false) in file order; outputs = all answer texts;
 *        gold = its paragraph; the other paragraphs of its article come next.
 *   qa_2 HotpotQA dev distractor: documents = sorted unique title + "\n" + joined sentences;
 *        outputs = [answer]; gold = the paragraphs given with the question.
 * Sample i uses question i (mod the number of questions: deviation "qa_questions_cycled" when it
 * wraps). Documents: gold, then (SQuAD) the same-article paragraphs in random order, then random
 * other documents without replacement (the list is cycled when exhausted, as RULER HEAD does),
 * added while they fit; then RULER's fixed-seed shuffle; context = "Document j:\n{doc}" joined by
 * "\n\n", j from 1. The question is the query; metric string_match_part. */
#include "qa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "jsonl.h"
#include "sha256.h"
#include "words.h"

static const char *QA_TEMPLATE =
    "Answer the question based on the given documents. Only give me the answer and do not output any other words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question based on the given documents. Only give me the answer and do not output any other words.\n\nQuestion: {query}";
static const char *QA_ANSWER_PREFIX = " Answer:";

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int64_t doc_index(const struct qa_data *q, const char *doc) {
    char *const *p = bsearch(&doc, q->docs, (size_t)q->n_docs, sizeof(char *), cmp_str);
    return p ? p - q->docs : -1;
}

/* growable pointer arrays */
static int push(void ***arr, int64_t *n, int64_t *cap, void *x) {
    if (*n == *cap) {
        int64_t c = *cap ? 2 * *cap : 256;
        void **p = realloc(*arr, sizeof(void *) * (size_t)c);
        if (!p) return 0;
        *arr = p;
        *cap = c;
    }
    (*arr)[(*n)++] = x;
    return 1;
}

static const struct jval *get_t(const struct jval *o, const char *k, enum jtype t) {
    const struct jval *v = json_get(o, k);
    return v && v->type == t ? v : NULL;
}

/* raw docs (possibly duplicated) -> sorted unique q->docs */
static lc_status finish_docs(struct qa_data *q, char **raw, int64_t n) {
    qsort(raw, (size_t)n, sizeof(char *), cmp_str);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (m && !strcmp(raw[m - 1], raw[i])) { free(raw[i]); continue; }
        raw[m++] = raw[i];
    }
    q->docs = raw;
    q->n_docs = m;
    return LC_OK;
}

static char *concat_sentences(const struct jval *title, const struct jval *sents) {
    size_t n = title->slen + 2;
    for (size_t i = 0; i < sents->n; i++)
        if (sents->items[i].type == J_STR) n += sents->items[i].slen;
    char *o = malloc(n);
    if (!o) return NULL;
    size_t k = 0;
    memcpy(o, title->str, title->slen);
    k = title->slen;
    o[k++] = '\n';
    for (size_t i = 0; i < sents->n; i++)
        if (sents->items[i].type == J_STR) { memcpy(o + k, sents->items[i].str, sents->items[i].slen); k += sents->items[i].slen; }
    o[k] = 0;
    return o;
}

lc_status qa_parse(struct qa_data *q, const char *json, size_t len, const char *what, int kind) {
    memset(q, 0, sizeof *q);
    struct jval root;
    LC_TRY(json_parse(json, len, &root, what));
    lc_status st = LC_OK;
    char **raw = NULL;
    int64_t nraw = 0, capraw = 0, capit = 0;
    q->kind = kind;
    if (kind == 1) {
        const struct jval *data = get_t(&root, "data", J_ARR);
        if (!data) { st = lc_errorf(LC_EINVAL, "%s: not a SQuAD file (no \"data\" list)", what); goto fail; }
        for (size_t a = 0; a < data->n; a++) {
            const struct jval *paras = get_t(&data->items[a], "paragraphs", J_ARR);
            for (size_t p = 0; paras && p < paras->n; p++) {
                const struct jval *ctx = get_t(&paras->items[p], "context", J_STR);
                if (!ctx) { st = lc_errorf(LC_EINVAL, "%s: article %zu paragraph %zu has no \"context\"", what, a, p); goto fail; }
                char *d = xstrdup(ctx->str);
                if (!d || !push((void ***)&raw, &nraw, &capraw, d)) { free(d); st = lc_errorf(LC_ENOMEM, "out of memory"); goto fail; }
            }
        }
        if ((st = finish_docs(q, raw, nraw))) goto fail;
        raw = NULL;
        for (size_t a = 0; a < data->n; a++) {
            const struct jval *paras = get_t(&data->items[a], "paragraphs", J_ARR);
            for (size_t p = 0; paras && p < paras->n; p++) {
                const struct jval *qas = get_t(&paras->items[p], "qas", J_ARR);
                int64_t gold = doc_index(q, get_t(&paras->items[p], "context", J_STR)->str);
                for (size_t k = 0; qas && k < qas->n; k++) {
                    const struct jval *qq = &qas->items[k], *imp = json_get(qq, "is_impossible"),
                                      *question = get_t(qq, "question", J_STR), *ans = get_t(qq, "answers", J_ARR);
                    if (imp && imp->type == J_BOOL && imp->b) continue;
                    if (!question || !ans || ans->n == 0) continue;
                    if (q->n_items == capit) {
                        capit = capit ? 2 * capit : 1024;
                        struct qa_item *it = realloc(q->items, sizeof *it * (size_t)capit);
                        if (!it) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto fail; }
                        q->items = it;
                    }
                    struct qa_item *it = &q->items[q->n_items++];
                    memset(it, 0, sizeof *it);
                    it->question = xstrdup(question->str);
                    it->answers = calloc(ans->n, sizeof(char *));
                    it->gold = malloc(sizeof(int64_t));
                    it->more = malloc(sizeof(int64_t) * (paras->n + 1));
                    if (!it->question || !it->answers || !it->gold || !it->more) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto fail; }
                    for (size_t m = 0; m < ans->n; m++) {
                        const struct jval *t = get_t(&ans->items[m], "text", J_STR);
                        if (t && !(it->answers[it->n_answers++] = xstrdup(t->str))) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto fail; }
                    }
                    it->gold[0] = gold;
                    it->n_gold = 1;
                    for (size_t m = 0; m < paras->n; m++) {
                        const struct jval *c2 = get_t(&paras->items[m], "context", J_STR);
                        int64_t di = c2 ? doc_index(q, c2->str) : -1;
                        if (di >= 0 && di != gold) it->more[it->n_more++] = di;
                    }
                }
            }
        }
    } else {
        if (root.type != J_ARR) { st = lc_errorf(LC_EINVAL, "%s: not a HotpotQA file (top level is not a list)", what); goto fail; }
        for (size_t i = 0; i < root.n; i++) {
            const struct jval *ctx = get_t(&root.items[i], "context", J_ARR);
            for (size_t p = 0; ctx && p < ctx->n; p++) {
                const struct jval *pp = &ctx->items[p];
                if (pp->type != J_ARR || pp->n < 2 || pp->items[0].type != J_STR || pp->items[1].type != J_ARR) {
                    st = lc_errorf(LC_EINVAL, "%s: question %zu context %zu is not [title, [sentences]]", what, i, p);
                    goto fail;
                }
                char *d = concat_sentences(&pp->items[0], &pp->items[1]);
                if (!d || !push((void ***)&raw, &nraw, &capraw, d)) { free(d); st = lc_errorf(LC_ENOMEM, "out of memory"); goto fail; }
            }
        }
        if ((st = finish_docs(q, raw, nraw))) goto fail;
        raw = NULL;
        q->items = calloc(root.n ? root.n : 1, sizeof *q->items);
        if (!q->items) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto fail; }
        for (size_t i = 0; i < root.n; i++) {
            const struct jval *ctx = get_t(&root.items[i], "context", J_ARR), *question = get_t(&root.items[i], "question", J_STR),
                              *ans = get_t(&root.items[i], "answer", J_STR);
            if (!ctx || !question || !ans) continue;
            struct qa_item *it = &q->items[q->n_items++];
            it->question = xstrdup(question->str);
            it->answers = malloc(sizeof(char *));
            it->gold = malloc(sizeof(int64_t) * (ctx->n + 1));
            if (!it->question || !it->answers || !it->gold || !(it->answers[0] = xstrdup(ans->str))) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto fail; }
            it->n_answers = 1;
            for (size_t p = 0; p < ctx->n; p++) {
                char *d = concat_sentences(&ctx->items[p].items[0], &ctx->items[p].items[1]);
                if (!d) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto fail; }
                it->gold[it->n_gold++] = doc_index(q, d);
                free(d);
            }
        }
    }
    if (q->n_items == 0) { st = lc_errorf(LC_EINVAL, "%s: no answerable questions found", what); goto fail; }
    json_free(&root);
    return LC_OK;
fail:
    for (int64_t i = 0; raw && i < nraw; i++) free(raw[i]);
    free(raw);
    json_free(&root);
    qa_free(q);
    return st;
}

lc_status qa_load(struct qa_data *q, const char *path, int kind) {
    memset(q, 0, sizeof *q);
    char *data;
    size_t len;
    lc_status st = read_file_all(path, &data, &len);
    if (st) return lc_errorf(st, "%s file '%s' cannot be read", kind == 1 ? "SQuAD" : "HotpotQA", path);
    st = qa_parse(q, data, len, path, kind);
    if (!st) {
        sha256_hex(data, len, q->sha256);
        snprintf(q->path, sizeof q->path, "%s", path);
    }
    free(data);
    return st;
}

void qa_free(struct qa_data *q) {
    for (int64_t i = 0; i < q->n_docs; i++) free(q->docs[i]);
    free(q->docs);
    for (int64_t i = 0; i < q->n_items; i++) {
        struct qa_item *it = &q->items[i];
        free(it->question);
        for (int k = 0; k < it->n_answers; k++) free(it->answers[k]);
        free(it->answers);
        free(it->gold);
        free(it->more);
    }
    free(q->items);
    memset(q, 0, sizeof *q);
}

lc_status gen_qa(const struct suite_spec *spec, lc_rng *rng, int64_t target, struct suite_sample *s) {
    const struct tokenizer *tok = spec->tok;
    const struct qa_data *q = spec->qa;
    if (spec->index >= q->n_items) add_deviation(s, "qa_questions_cycled");
    const struct qa_item *it = &q->items[spec->index % q->n_items];
    const char *ctxp = strstr(QA_TEMPLATE, "{context}"), *qp = strstr(QA_TEMPLATE, "{query}");
    char head[256], mid[512];
    snprintf(head, sizeof head, "%.*s", (int)(ctxp - QA_TEMPLATE), QA_TEMPLATE);
    snprintf(mid, sizeof mid, "%.*s", (int)(qp - ctxp - 9), ctxp + 9);
    int64_t budget = target - tcost(tok, head) - tcost(tok, mid) - tcost(tok, it->question) - tcost(tok, QA_ANSWER_PREFIX);
    /* candidate order: gold, same-article (shuffled), random others (without replacement, cycled) */
    int64_t cap = 1024, n = 0;
    int64_t *chosen = malloc(sizeof(int64_t) * (size_t)cap);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)q->n_docs);
    lc_status st = LC_OK;
    if (!chosen || !perm) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto done; }
    int64_t more[4096];
    int nm = it->n_more < 4096 ? it->n_more : 4096;
    for (int i = 0; i < nm; i++) more[i] = it->more[i];
    rng_shuffle_i64(rng, more, nm);
    int64_t used = 0, sep = tcost(tok, "\n\n"), np = 0, pi = 0;
    for (int64_t step = 0;; step++) {
        int64_t d;
        if (step < it->n_gold) d = it->gold[step];
        else if (step < it->n_gold + nm) d = more[step - it->n_gold];
        else {
            if (pi == np) { /* (re)draw a permutation of all documents: RULER cycles the list */
                for (int64_t k = 0; k < q->n_docs; k++) perm[k] = k;
                rng_shuffle_i64(rng, perm, q->n_docs);
                np = q->n_docs;
                pi = 0;
            }
            d = perm[pi++];
            int skip = 0;
            for (int g = 0; g < it->n_gold; g++) skip |= it->gold[g] == d;
            for (int g = 0; g < nm; g++) skip |= more[g] == d;
            if (skip && np > it->n_gold + nm) continue;
        }
        char num[48];
        snprintf(num, sizeof num, "Document %lld:\n", (long long)n + 1);
        int64_t c = tcost(tok, num) + tcost(tok, q->docs[d]) + (n ? sep : 0);
        if (used + c > budget) break;
        used += c;
        if (n == cap) {
            cap *= 2;
            int64_t *p = realloc(chosen, sizeof(int64_t) * (size_t)cap);
            if (!p) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto done; }
            chosen = p;
        }
        chosen[n++] = d;
    }
    if (n < it->n_gold) { st = lc_errorf(LC_EINVAL, "length %lld cannot hold the gold document(s) of question %lld", (long long)spec->length, (long long)spec->index); goto done; }
    lc_rng shuf;
    lc_rng_seed(&shuf, fixed_shuffle_seed(spec));
    rng_shuffle_i64(&shuf, chosen, n);
    struct gb b;
    gb_init(&b, tok, spec->want_ids, (size_t)target + 1024);
    gb_emits(&b, head);
    s->needles = calloc((size_t)it->n_gold, sizeof *s->needles);
    if (!s->needles) { gb_free(&b); st = lc_errorf(LC_ENOMEM, "out of memory"); goto done; }
    for (int64_t j = 0; j < n; j++) {
        char num[48];
        snprintf(num, sizeof num, "Document %lld:\n", (long long)j + 1);
        if (j) gb_emit(&b, "\n\n", 2);
        gb_emits(&b, num);
        for (int g = 0; g < it->n_gold; g++)
            if (chosen[j] == it->gold[g] && s->n_needles < it->n_gold) {
                s->needles[s->n_needles].tok0 = b.ntok;
                s->needles[s->n_needles].byte0 = (int64_t)b.len;
            }
        gb_emits(&b, q->docs[chosen[j]]);
        for (int g = 0; g < it->n_gold; g++)
            if (chosen[j] == it->gold[g] && s->n_needles < it->n_gold) {
                s->needles[s->n_needles].tok1 = b.ntok;
                s->needles[s->n_needles].byte1 = (int64_t)b.len;
                s->n_needles++;
                break;
            }
    }
    gb_emits(&b, mid);
    gb_emits(&b, it->question);
    int64_t input_len = (int64_t)b.len;
    gb_emits(&b, QA_ANSWER_PREFIX);
    snprintf(s->haystack, sizeof s->haystack, "documents");
    s->num_haystack = n;
    st = finish_sample(s, &b, input_len);
    gb_free(&b);
    if (st) goto done;
    if (s->n_needles) s->depth = (double)s->needles[0].tok0 / (double)s->prompt_tokens;
    st = set_outputs(s, it->answers, it->n_answers);
done:
    free(chosen);
    free(perm);
    return st;
}
