/* test_suites_copy.c — the copy task (issue 8's dense retrieval data) and MQAR's needle spans:
 * each sample is exactly L tokens, the answer (the tokens after the second marker) equals the
 * source segment, the needle span is that segment, loss weights sit exactly on the positions that
 * predict answer tokens, regeneration is identical, and bad lengths are refused. MQAR: every
 * query's needle is its key-value pair, queries run in sequence order, so needles[0] is the pair
 * the first supervised position asks for (what model/train.c's retrieval diagnostics read). */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "suite.h"
#include "test.h"

static void test_copy(void) {
    t_begin("copy: fits L exactly, answer = source segment, needle = segment, weights on answers only");
    const int64_t Ls[] = {256, 1000, 4097, 70001};
    const int Ms[] = {0, 17, 64, 500};
    for (int li = 0; li < 4; li++) {
        struct suite_spec spec;
        memset(&spec, 0, sizeof spec);
        spec.task = "copy";
        spec.length = Ls[li];
        spec.index = li;
        spec.seed = 9;
        spec.want_ids = 1;
        spec.copy_len = Ms[li];
        struct suite_sample s;
        if (!T_OK(suite_generate(&spec, &s))) continue;
        int64_t L = Ls[li], M = Ms[li] ? Ms[li] : 64;
        T_CHECK(s.n_ids == L && s.prompt_tokens == L && s.text_len == L, "L=%lld: %lld ids %lld tokens", (long long)L,
                (long long)s.n_ids, (long long)s.prompt_tokens);
        T_CHECK(s.n_needles == 1 && s.n_targets == M && s.n_answer_ids == M, "L=%lld: %d needles %lld targets", (long long)L,
                s.n_needles, (long long)s.n_targets);
        int64_t a0 = s.needles[0].tok0, mark = tokenizer_byte()->probe_excl;
        T_CHECK(s.needles[0].tok1 - a0 == M && a0 >= 1 && a0 - 1 <= (L - 2 * M - 2) / 4, "segment span [%lld, %lld)",
                (long long)a0, (long long)s.needles[0].tok1);
        T_CHECK(s.needles[0].byte0 == a0 && s.needles[0].byte1 == a0 + M, "byte span of the segment");
        /* the answer (last M tokens) equals the source segment; targets are those tokens */
        int ok = s.ids[a0 - 1] == mark && s.ids[L - M - 1] == mark;
        for (int64_t j = 0; j < M; j++) {
            ok &= s.ids[L - M + j] == s.ids[a0 + j] && s.answer_ids[j] == s.ids[a0 + j];
            ok &= s.target_pos[j] == L - M - 1 + j && s.ids[s.target_pos[j] + 1] == s.target_id[j];
        }
        T_CHECK(ok, "L=%lld: the copy is not the segment, or the markers are missing", (long long)L);
        int64_t nmark = 0, printable = 1;
        for (int64_t t = 0; t < L; t++) {
            nmark += s.ids[t] == mark;
            printable &= s.ids[t] >= 33 && s.ids[t] < 127 && (unsigned char)s.text[t] == s.ids[t];
        }
        T_CHECK(nmark == 2 && printable, "L=%lld: %lld markers (want 2), printable %lld", (long long)L, (long long)nmark,
                (long long)printable);
        T_CHECK(s.n_outputs == 1 && (int64_t)strlen(s.outputs[0]) == M && !memcmp(s.outputs[0], s.text + a0, (size_t)M),
                "output string is not the segment text");
        float *w = malloc(sizeof(float) * (size_t)L);
        suite_loss_weights(&s, w);
        int wok = 1;
        for (int64_t t = 0; t < L; t++) wok &= (w[t] > 0) == (t >= L - M - 1 && t < L - 1);
        T_CHECK(wok, "L=%lld: loss weights are not exactly on the positions predicting answer tokens", (long long)L);
        free(w);
        /* teacher-forced scoring: perfect predictions score 1, one wrong answer token scores 0 */
        int32_t *pred = malloc(sizeof(int32_t) * (size_t)L);
        for (int64_t t = 0; t + 1 < L; t++) pred[t] = s.ids[t + 1];
        pred[L - 1] = 0;
        int64_t nc;
        T_CHECK(suite_score_tf(&s, pred, &nc) == 1 && nc == M, "perfect copy not scored 1");
        pred[L - 2] ^= 1;
        T_CHECK(suite_score_tf(&s, pred, &nc) == 0 && nc == M - 1, "one wrong token not scored 0");
        free(pred);
        /* determinism: same (task, L, index, seed) -> same ids; another index differs */
        struct suite_sample b, c;
        if (T_OK(suite_generate(&spec, &b))) {
            T_CHECK(b.n_ids == L && !memcmp(b.ids, s.ids, sizeof(int32_t) * (size_t)L) && b.needles[0].tok0 == a0,
                    "regeneration differs");
            suite_sample_free(&b);
        }
        spec.index += 100;
        if (T_OK(suite_generate(&spec, &c))) {
            T_CHECK(memcmp(c.ids, s.ids, sizeof(int32_t) * (size_t)L), "index ignored");
            suite_sample_free(&c);
        }
        suite_sample_free(&s);
    }
    t_begin("copy: depth grid places the segment; capped vocabulary; bad lengths refused");
    for (int bin = 0; bin < 5; bin++) {
        struct suite_spec spec;
        memset(&spec, 0, sizeof spec);
        spec.task = "copy";
        spec.length = 8192;
        spec.index = bin;
        spec.seed = 4;
        spec.want_ids = 1;
        spec.depth_bins = 5;
        spec.mqar_vocab = 100;
        struct suite_sample s;
        if (!T_OK(suite_generate(&spec, &s))) continue;
        double want = bin / 4.0;
        T_CHECK(s.depth_bin == bin && s.depth > want - 0.02 && s.depth < want + 0.02, "bin %d depth %.3f", bin, s.depth);
        int ok = 1;
        for (int64_t t = 0; t < s.n_ids; t++) ok &= s.ids[t] < 100;
        T_CHECK(ok, "a token id >= the capped vocabulary 100");
        suite_sample_free(&s);
    }
    struct suite_spec bad;
    memset(&bad, 0, sizeof bad);
    bad.task = "copy";
    bad.length = 300;
    bad.copy_len = 150;
    struct suite_sample s;
    T_ERR(suite_generate(&bad, &s), "cannot hold two 150-token segments");
}

/* a tokenizer of 2 bytes per token ("x" + byte), to check byte spans that differ from token spans */
static int64_t two_encode(const struct tokenizer *t, const char *s, size_t n, int32_t *ids, size_t cap) {
    (void)t;
    for (size_t i = 0; ids && i + 1 < n && i / 2 < cap; i += 2) ids[i / 2] = (unsigned char)s[i + 1];
    return (int64_t)(n / 2);
}
static int64_t two_decode(const struct tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap) {
    (void)t;
    for (size_t i = 0; out && i < n && 2 * i + 1 < cap; i++) {
        out[2 * i] = 'x';
        out[2 * i + 1] = (char)ids[i];
    }
    return (int64_t)(2 * n);
}
static const struct tokenizer TWO_TOK = {"two-test", 256, "test", 33, 127, '|', two_encode, two_decode, NULL};

static void test_mqar_needles(void) {
    t_begin("mqar: each query's needle is its key-value pair; targets in sequence order; needles[0] = first query's pair");
    const int64_t Ls[] = {512, 6000, 70001};
    const int kv[] = {8, 32, 64}, nq[] = {20, 32, 300};
    for (int li = 0; li < 3; li++)
        for (int ti = 0; ti < 2; ti++) {
            struct suite_spec spec;
            memset(&spec, 0, sizeof spec);
            spec.task = "mqar";
            spec.length = Ls[li];
            spec.index = li;
            spec.seed = 5;
            spec.tok = ti ? &TWO_TOK : tokenizer_byte();
            spec.want_ids = 1;
            spec.mqar_kv = kv[li];
            spec.mqar_queries = nq[li];
            struct suite_sample s;
            if (!T_OK(suite_generate(&spec, &s))) continue;
            int64_t bpt = ti ? 2 : 1;
            T_CHECK(s.n_needles == nq[li] && s.n_targets == nq[li], "L=%lld: %d needles, %lld targets", (long long)Ls[li],
                    s.n_needles, (long long)s.n_targets);
            int ok = 1, order = 1;
            for (int64_t j = 0; j < s.n_targets && j < s.n_needles; j++) {
                struct suite_span n = s.needles[j];
                /* the span is one pair: key at tok0, value at tok0 + 1, inside the pair region */
                ok &= n.tok1 == n.tok0 + 2 && n.tok0 % 2 == 0 && n.tok0 >= 0 && n.tok1 <= 2 * kv[li];
                ok &= s.ids[n.tok0] == s.ids[s.target_pos[j]] && s.ids[n.tok0 + 1] == s.target_id[j];
                ok &= n.byte0 == bpt * n.tok0 && n.byte1 == bpt * n.tok1;
                ok &= s.needles[j].byte1 <= s.text_len && (!ti || (s.text[n.byte0 + 1] == (char)s.ids[n.tok0]));
                if (j) order &= s.target_pos[j] > s.target_pos[j - 1];
            }
            T_CHECK(ok, "L=%lld tok %s: a needle is not the queried key-value pair", (long long)Ls[li], spec.tok->name);
            T_CHECK(order, "L=%lld: targets are not in sequence order", (long long)Ls[li]);
            /* what the training diagnostics use: the earliest target's pair */
            int64_t first = s.target_pos[0];
            for (int64_t j = 1; j < s.n_targets; j++) first = s.target_pos[j] < first ? s.target_pos[j] : first;
            T_CHECK(first == s.target_pos[0] && s.ids[s.needles[0].tok0] == s.ids[first], "needles[0] is not the first query's pair");
            suite_sample_free(&s);
        }
}

int main(void) {
    test_copy();
    test_mqar_needles();
    return t_finish();
}
