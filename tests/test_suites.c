/* test_suites.c — generation checks of ruler.md section 8.5 for every task: each prompt fits
 * its length with small slack, each answer occurs exactly once in the context, distractor keys
 * differ from real keys, VT chains unique, FWE ranks ordered, CWE counts exact; byte-identical
 * regeneration from the same seed; unknown task names and tampered word lists rejected.
 * Tests that need the prose haystack (Debian jargon-text) SKIP with a reason when it is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "haystack.h"
#include "sha256.h"
#include "suite.h"
#include "test.h"
#include "words.h"

static struct word_lists WL;
static struct haystack HAY;
static int have_hay;

static int64_t count_occ(const char *hay, size_t n, const char *needle) {
    int64_t c = 0;
    size_t m = strlen(needle);
    for (const char *p = hay; (p = memmem(p, n - (size_t)(p - hay), needle, m)); p++) c++;
    return c;
}

static int gen(const char *task, int64_t L, int64_t idx, uint64_t seed, int depth_bins, struct suite_sample *s) {
    struct suite_spec spec = {task, L, idx, seed, tokenizer_byte(), have_hay ? &HAY : NULL, &WL, NULL, depth_bins, 1, 0, 0, 0};
    lc_status st = suite_generate(&spec, s);
    if (st) T_CHECK(0, "%s L=%lld idx=%lld: %s", task, (long long)L, (long long)idx, lc_last_error());
    return st == 0;
}

/* checks common to all tasks */
static void check_common(struct suite_sample *s, int64_t L, int64_t slack) {
    const struct suite_task *t = s->task;
    T_CHECK(s->n_ids == s->prompt_tokens, "%s: %lld ids vs %lld prompt tokens", t->name, (long long)s->n_ids, (long long)s->prompt_tokens);
    /* byte tokenizer: ids are the bytes of the text */
    int same = s->n_ids == s->text_len;
    for (int64_t i = 0; same && i < s->n_ids; i++) same = s->ids[i] == (unsigned char)s->text[i];
    T_CHECK(same, "%s: ids are not the bytes of the text", t->name);
    if (t->family == SUITE_RULER) {
        T_CHECK(s->prompt_tokens + t->tokens_to_generate <= L, "%s: %lld + %d > %lld", t->name, (long long)s->prompt_tokens,
                t->tokens_to_generate, (long long)L);
        T_CHECK(L - s->prompt_tokens - t->tokens_to_generate <= slack, "%s L=%lld: slack %lld > %lld", t->name, (long long)L,
                (long long)(L - s->prompt_tokens - t->tokens_to_generate), (long long)slack);
    } else {
        T_CHECK(s->prompt_tokens == L, "%s: %lld tokens, wanted exactly %lld", t->name, (long long)s->prompt_tokens, (long long)L);
    }
    T_CHECK(s->n_outputs >= 1 || t->family != SUITE_RULER, "%s: no outputs", t->name);
}

static void check_answers_once(struct suite_sample *s) {
    for (int i = 0; i < s->n_outputs; i++) {
        int64_t c = count_occ(s->text, (size_t)s->input_len, s->outputs[i]);
        T_CHECK(c == 1, "%s: answer '%s' occurs %lld times in the context", s->task->name, s->outputs[i], (long long)c);
    }
}

static void test_niah(void) {
    const char *noise_tasks[] = {"niah_single_1", "niah_multikey_2", "niah_multikey_3"};
    const char *essay_tasks[] = {"niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multivalue", "niah_multiquery"};
    const int64_t Ls[] = {4096, 5000, 16384};
    t_begin("niah noise/needle tasks fit, answers once, distractors differ from real keys");
    for (int ti = 0; ti < 3; ti++)
        for (int li = 0; li < 3; li++)
            for (int k = 0; k < 3; k++) {
                struct suite_sample s;
                if (!gen(noise_tasks[ti], Ls[li], k, 7, 0, &s)) return;
                check_common(&s, Ls[li], ti == 0 ? 92 : 120);
                check_answers_once(&s);
                T_CHECK(s.n_outputs == 1 && s.n_needles == 1, "%s: %d outputs", s.task->name, s.n_outputs);
                /* the needle span holds the answer */
                T_CHECK(memmem(s.text + s.needles[0].byte0, (size_t)(s.needles[0].byte1 - s.needles[0].byte0), s.outputs[0],
                               strlen(s.outputs[0])) != NULL, "needle span misses the answer");
                T_CHECK(s.ids[s.token_position_answer] == (unsigned char)s.outputs[0][0], "token_position_answer wrong");
                if (ti > 0) {
                    /* the queried key: in the answer prefix after "for " */
                    const char *ap = s.text + s.input_len, *f = strstr(ap, " for ") + 5, *e = strstr(f, " mentioned");
                    char key[128];
                    snprintf(key, sizeof key, "for %.*s is:", (int)(e - f), f);
                    int64_t c = count_occ(s.text, (size_t)s.input_len, key);
                    T_CHECK(c == 1, "%s: real key '%s' occurs %lld times among the needles", s.task->name, key, (long long)c);
                    T_CHECK(s.num_haystack > 10, "%s: only %lld distractors", s.task->name, (long long)s.num_haystack);
                }
                suite_sample_free(&s);
            }
    t_begin("niah essay tasks fit, answers once");
    if (!have_hay) { t_skip("prose haystack not installed (apt-get install jargon-text; scripts/setup.sh test)"); return; }
    for (int ti = 0; ti < 5; ti++)
        for (int li = 0; li < 3; li++)
            for (int k = 0; k < 2; k++) {
                struct suite_sample s;
                if (!gen(essay_tasks[ti], Ls[li], k, 9, 0, &s)) return;
                check_common(&s, Ls[li], 120);
                check_answers_once(&s);
                int want = ti >= 3 ? 4 : 1;
                T_CHECK(s.n_outputs == want, "%s: %d outputs, want %d", s.task->name, s.n_outputs, want);
                if (ti == 1) { /* uuid v4 */
                    const char *u = s.outputs[0];
                    T_CHECK(strlen(u) == 36 && u[14] == '4' && strchr("89ab", u[19]), "bad uuid %s", u);
                }
                suite_sample_free(&s);
            }
    t_begin("depth grid places single needles at the bin's depth");
    for (int bin = 0; bin < 10; bin++) {
        struct suite_sample s;
        if (!gen("niah_single_2", 32768, bin, 3, 10, &s)) return;
        double want = bin / 9.0;
        T_CHECK(s.depth_bin == bin && s.depth > want - 0.1 && s.depth < want + 0.1, "bin %d depth %.3f", bin, s.depth);
        suite_sample_free(&s);
    }
}

static void test_regen(void) {
    t_begin("byte-identical regeneration from the same seed; other seeds differ");
    int nt;
    const struct suite_task *t = suite_tasks(&nt);
    for (int i = 0; i < nt; i++) {
        if (t[i].needs_qa || (t[i].needs_prose && !have_hay) || strncmp(t[i].name, "niah", 4)) continue;
        struct suite_sample a, b, c;
        if (!gen(t[i].name, 6000, 3, 11, 0, &a) || !gen(t[i].name, 6000, 3, 11, 0, &b) || !gen(t[i].name, 6000, 3, 12, 0, &c)) return;
        T_CHECK(a.text_len == b.text_len && !memcmp(a.text, b.text, (size_t)a.text_len), "%s: regeneration differs", t[i].name);
        T_CHECK(a.n_ids == b.n_ids && !memcmp(a.ids, b.ids, sizeof(int32_t) * (size_t)a.n_ids), "%s: ids differ", t[i].name);
        T_CHECK(c.text_len != a.text_len || memcmp(a.text, c.text, (size_t)a.text_len), "%s: seed ignored", t[i].name);
        suite_sample_free(&a);
        suite_sample_free(&b);
        suite_sample_free(&c);
    }
}

static void test_errors(void) {
    t_begin("unknown task names and bad lengths are rejected with clear errors");
    struct suite_sample s;
    struct suite_spec spec = {"niah_single_9", 4096, 0, 1, NULL, NULL, &WL, NULL, 0, 1, 0, 0, 0};
    T_ERR(suite_generate(&spec, &s), "unknown task 'niah_single_9'");
    spec.task = "niah_single_1";
    spec.length = 10;
    T_ERR(suite_generate(&spec, &s), "length 10");
    spec.task = "qa_1";
    spec.length = 4096;
    T_ERR(suite_generate(&spec, &s), "SQuAD");

    t_begin("word lists are pinned by sha256: a truncated copy is refused");
    char dir[] = "/tmp/lc_words_XXXXXX";
    T_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    const char *files[] = {"adjectivelist.txt", "nounlist.txt", "verblist.txt"};
    for (int i = 0; i < 3; i++) {
        char src[700], dst[700], *data;
        size_t len;
        snprintf(src, sizeof src, "%s/%s", WL.dir, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        T_OK(read_file_all(src, &data, &len));
        FILE *f = fopen(dst, "wb");
        fwrite(data, 1, i == 1 ? len - 100 : len, f); /* truncate the noun list */
        fclose(f);
        free(data);
    }
    struct word_lists bad;
    T_ERR(words_load(&bad, dir), "nounlist.txt");
    T_ERR(words_load(&bad, dir), "expected 8d88b3eb");
    for (int i = 0; i < 3; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        remove(p);
    }
    remove(dir);
    T_ERR(words_load(&bad, "/nonexistent/dir"), "missing");
}

int main(void) {
    t_begin("word lists load and verify");
    if (!T_OK(words_load(&WL, NULL))) return t_finish();
    T_CHECK(WL.adj.n == 912 && WL.noun.n == 6782 && WL.verb.n == 1042, "list sizes %d %d %d", WL.adj.n, WL.noun.n, WL.verb.n);
    T_CHECK(WL.n_pool == 8166, "CWE pool has %d words, RULER's v3.0.0 count is 8166", WL.n_pool);
    char h[65];
    sha256_hex("abc", 3, h);
    T_CHECK(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256(abc) = %s", h);
    have_hay = haystack_load(&HAY, NULL, tokenizer_byte()) == LC_OK;
    if (have_hay) {
        t_begin("prose haystack decodes and splits into words and sentences");
        T_CHECK(HAY.n_words > 200000 && HAY.n_sentences > 10000, "%lld words %lld sentences", (long long)HAY.n_words,
                (long long)HAY.n_sentences);
    }
    test_niah();
    test_regen();
    test_errors();
    if (have_hay) haystack_free(&HAY);
    words_free(&WL);
    return t_finish();
}
