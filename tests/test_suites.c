/* test_suites.c — generation checks of ruler.md section 8.5 for every task: each prompt fits
 * its length with small slack, each answer occurs exactly once in the context, distractor keys
 * differ from real keys, VT chains unique, FWE ranks ordered, CWE counts exact; byte-identical
 * regeneration from the same seed; unknown task names and tampered word lists rejected.
 * Tests that need the prose haystack (Debian jargon-text) SKIP with a reason when it is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "haystack.h"
#include "jsonl.h"
#include "qa.h"
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
    struct suite_spec spec = {task, L, idx, seed, tokenizer_byte(), have_hay ? &HAY : NULL, &WL, NULL, depth_bins, 1, 0, 0, 0, 0};
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
        /* the passkey line states the key twice: "The pass key is K. Remember it. K is the pass key." */
        T_CHECK(c == (strcmp(s->task->name, "passkey") ? 1 : 2), "%s: answer '%s' occurs %lld times in the context", s->task->name, s->outputs[i], (long long)c);
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
                int64_t c0, c1;
                suite_needle_chunks(&s, 0, 64, &c0, &c1);
                T_CHECK(c0 <= s.token_position_answer / 64 &&
                            c1 >= s.token_position_answer / 64 && c1 - c0 <= 2, "needle chunks [%lld, %lld]", (long long)c0, (long long)c1);
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
}


static int64_t count_word(const char *txt, size_t n, const char *w) {
    /* occurrences of w as a whole space/newline-delimited word */
    int64_t c = 0;
    size_t m = strlen(w);
    for (const char *p = txt; (p = memmem(p, n - (size_t)(p - txt), w, m)); p++)
        if ((p == txt || p[-1] == ' ' || p[-1] == '\n') && (p + m == txt + n || p[m] == ' ' || p[m] == '\n')) c++;
    return c;
}

static void test_vt_cwe_fwe(void) {
    t_begin("vt: fits, 5 distinct names, the value occurs once in the task context");
    for (int k = 0; k < 6; k++) {
        struct suite_sample s;
        int64_t L = k < 3 ? 4096 : 20000 + 77 * k;
        if (!gen("vt", L, k, 5, 0, &s)) return;
        check_common(&s, L, 92);
        T_CHECK(s.n_outputs == 5, "vt: %d outputs", s.n_outputs);
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < i; j++) T_CHECK(strcmp(s.outputs[i], s.outputs[j]), "vt: duplicate name %s", s.outputs[i]);
        const char *task = strstr(s.text, "\n\nMemorize") + 2; /* after the one-shot example */
        size_t tn = (size_t)(s.text + s.input_len - task);
        const char *q = strstr(task, "the value ") + 10;
        char val[16], stmt[64];
        snprintf(val, sizeof val, "%.5s", q);
        snprintf(stmt, sizeof stmt, "VAR %s = %s", s.outputs[0], val);
        T_CHECK(count_occ(task, tn, stmt) == 1 && count_occ(task, tn, val) == 2, "vt: '%s' not unique", stmt);
        for (int i = 1; i < 5; i++) {
            snprintf(stmt, sizeof stmt, "VAR %s = VAR %s ", s.outputs[i], s.outputs[i - 1]);
            T_CHECK(count_occ(task, tn, stmt) == 1, "vt: chain link '%s' missing or repeated", stmt);
        }
        suite_sample_free(&s);
    }
    t_begin("cwe: fits, common words exactly 30x (small config 6x), others exactly 3x (1x)");
    const int64_t Ls[] = {4096, 8192, 600000};
    for (int li = 0; li < 3; li++) {
        struct suite_sample s;
        if (!gen("cwe", Ls[li], li, 5, 0, &s)) return;
        check_common(&s, Ls[li], 64); /* one word: 3 entries "123456. word" */
        int small = strstr(s.deviations, "cwe_small_config") != NULL;
        T_CHECK(li < 1 || !small, "cwe at %lld used the small config", (long long)Ls[li]);
        T_CHECK(li < 2 || strstr(s.deviations, "cwe_pseudo_words"), "cwe at 600000 needs pseudo-words");
        const char *task = s.text;
        for (const char *p; (p = strstr(task + 1, "Below is a numbered list"));) task = p;
        size_t tn = (size_t)(s.text + s.input_len - task);
        for (int i = 0; i < 10; i++) {
            int64_t c = count_word(task, tn, s.outputs[i]);
            T_CHECK(c == (small ? 6 : 30), "cwe: common word %s appears %lld times", s.outputs[i], (long long)c);
        }
        /* every other entry word appears exactly 3 (1) times: check the first 200 entries */
        const char *p = strchr(task, '\n') + 1;
        for (int e = 0; e < 200 && p < s.text + s.input_len; e++) {
            const char *dot = strstr(p, ". ");
            const char *w = dot + 2, *nx = strstr(w, " ");
            const char *num = nx ? nx + 1 : NULL;
            /* the word runs to the next " <digits>." (multi-word nouns contain spaces) */
            while (num && !(num[0] >= '0' && num[0] <= '9' && strchr(num, '.') && strspn(num, "0123456789") == (size_t)(strchr(num, '.') - num)))
                num = strchr(num, ' ') ? strchr(num, ' ') + 1 : NULL;
            if (!num || num > s.text + s.input_len) break;
            char word[64];
            snprintf(word, sizeof word, "%.*s", (int)(num - 1 - w), w);
            if (strchr(word, '\n')) break;
            int common = 0;
            for (int i = 0; i < 10; i++) common |= !strcmp(word, s.outputs[i]);
            int64_t c = count_word(task, tn, word);
            if (!common && !strchr(word, ' ')) T_CHECK(c == (small ? 1 : 3), "cwe: word '%s' appears %lld times", word, (long long)c);
            p = num;
        }
        suite_sample_free(&s);
    }
    t_begin("fwe: fits, ranks 2-4 strictly ordered and above every other word");
    for (int li = 0; li < 3; li++) {
        struct suite_sample s;
        int64_t L = li == 2 ? 100000 : Ls[li];
        if (!gen("fwe", L, li, 5, 0, &s)) return;
        check_common(&s, L, 8);
        const char *ctx = strstr(s.text, "coded words. ") + 13;
        size_t n = (size_t)(strstr(ctx, "\nQuestion:") - ctx);
        int64_t c1 = count_word(ctx, n, s.outputs[0]), c2 = count_word(ctx, n, s.outputs[1]), c3 = count_word(ctx, n, s.outputs[2]);
        T_CHECK(c1 > c2 && c2 > c3 && c3 > 0, "fwe counts %lld %lld %lld not ordered", (long long)c1, (long long)c2, (long long)c3);
        T_CHECK(count_word(ctx, n, "...") > c1, "fwe: '...' is not the most frequent");
        /* the word after rank 4: every other word appears fewer times than rank 4 */
        int64_t maxother = 0;
        for (const char *p = ctx; p < ctx + n;) {
            const char *e = memchr(p, ' ', (size_t)(ctx + n - p));
            if (!e) e = ctx + n;
            char w[16];
            snprintf(w, sizeof w, "%.*s", (int)(e - p), p);
            if (strcmp(w, "...") && strcmp(w, s.outputs[0]) && strcmp(w, s.outputs[1]) && strcmp(w, s.outputs[2])) {
                int64_t c = count_word(ctx, n, w);
                if (c > maxother) maxother = c;
            }
            p = e + 1;
            if (p - ctx > 20000) break; /* a prefix is enough to meet the frequent words */
        }
        T_CHECK(maxother < c3, "fwe: another word appears %lld times, rank 4 only %lld", (long long)maxother, (long long)c3);
        suite_sample_free(&s);
    }
}

static void test_token_tasks(void) {
    t_begin("passkey and mqar: exact length, targets in place, teacher-forced scoring");
    const int64_t Ls[] = {4096, 70001};
    for (int li = 0; li < 2; li++) {
        struct suite_sample s;
        if (!gen("passkey", Ls[li], li, 3, 0, &s)) return;
        check_common(&s, Ls[li], 0);
        check_answers_once(&s);
        T_CHECK(s.n_targets >= 2, "passkey targets");
        int32_t *pred = malloc(sizeof(int32_t) * (size_t)s.n_ids);
        for (int64_t t = 0; t + 1 < s.n_ids; t++) pred[t] = s.ids[t + 1];
        pred[s.n_ids - 1] = 0;
        int64_t nc;
        T_CHECK(suite_score_tf(&s, pred, &nc) == 1 && nc == s.n_targets, "perfect predictions not scored 1");
        pred[s.target_pos[s.n_targets - 1]] ^= 1;
        T_CHECK(suite_score_tf(&s, pred, &nc) == 0 && nc == s.n_targets - 1, "one wrong token not scored 0");
        free(pred);
        suite_sample_free(&s);

        struct suite_spec spec = {"mqar", Ls[li], li, 3, tokenizer_byte(), NULL, NULL, NULL, 0, 1, 32, 200, 0, 0};
        if (!T_OK(suite_generate(&spec, &s))) return;
        T_CHECK(s.n_ids == Ls[li] && s.n_targets == 200, "mqar: %lld ids %lld targets", (long long)s.n_ids, (long long)s.n_targets);
        int ok = 1;
        for (int64_t j = 0; j < s.n_targets; j++) {
            int32_t key = s.ids[s.target_pos[j]];
            int found = 0;
            for (int i = 0; i < 32; i++) found |= s.ids[2 * i] == key && s.ids[2 * i + 1] == s.target_id[j];
            ok &= found && key >= 1 && key < 128 && s.target_id[j] >= 128;
            for (int64_t m = 0; m < j; m++) ok &= s.target_pos[m] != s.target_pos[j];
        }
        for (int i = 0; i < 32; i++)
            for (int m = 0; m < i; m++) ok &= s.ids[2 * i] != s.ids[2 * m];
        T_CHECK(ok, "mqar: a query key is not paired with its target value, or keys repeat");
        float *w = malloc(sizeof(float) * (size_t)s.n_ids);
        suite_loss_weights(&s, w);
        double sw = 0;
        for (int64_t t = 0; t < s.n_ids; t++) sw += w[t];
        T_CHECK(sw == 200, "loss weights sum %.0f", sw);
        free(w);
        suite_sample_free(&s);
    }
    t_begin("token probes: exact length, answer tokens are the targets, needles hold the answers");
    if (!have_hay) { t_skip("prose haystack not installed (apt-get install jargon-text; scripts/setup.sh test)"); return; }
    const char *pr[] = {"tok_sniah", "tok_mqniah", "tok_vt", "tok_fwe"};
    for (int ti = 0; ti < 4; ti++)
        for (int li = 0; li < 2; li++) {
            struct suite_sample s;
            if (!gen(pr[ti], Ls[li], li, 4, ti == 0 ? 5 : 0, &s)) return;
            check_common(&s, Ls[li], 0);
            int ok = s.n_targets > 0 && s.target_pos[s.n_targets - 1] == s.n_ids - 2;
            for (int64_t j = 0; j < s.n_targets; j++) ok &= s.ids[s.target_pos[j] + 1] == s.target_id[j];
            T_CHECK(ok, "%s: targets are not the final answer tokens", pr[ti]);
            if (ti < 2)
                for (int i = 0; i < s.n_outputs; i++)
                    T_CHECK(memmem(s.text + s.needles[i].byte0, (size_t)(s.needles[i].byte1 - s.needles[i].byte0), s.outputs[i],
                                   strlen(s.outputs[i])) && count_occ(s.text, (size_t)s.input_len, s.outputs[i]) == 1,
                            "%s: answer %s not once, in its needle", pr[ti], s.outputs[i]);
            if (ti == 2) {
                char stmt[64];
                snprintf(stmt, sizeof stmt, "|VAR %s = ", s.outputs[0]);
                T_CHECK(count_occ(s.text, (size_t)s.input_len, stmt) == 1, "tok_vt: chain head not unique");
            }
            suite_sample_free(&s);
        }
}

static void test_long(void) {
    t_begin("1M-token samples fit and hold their answers once");
    const char *ts[] = {"niah_single_1", "niah_multikey_2", "passkey"};
    for (int i = 0; i < 3; i++) {
        struct suite_sample s;
        if (!gen(ts[i], 1 << 20, 1, 8, 0, &s)) return;
        check_common(&s, 1 << 20, 120);
        check_answers_once(&s);
        suite_sample_free(&s);
    }
}


static void test_qa(void) {
    t_begin("qa_1 (SQuAD format) and qa_2 (HotpotQA format): gold documents included, fits, answers");
    /* a small SQuAD-shaped file: 2 articles, 3 paragraphs each, one unanswerable question */
    struct jbuf j = {0};
    jb_raw(&j, "{\"version\": \"v2.0\", \"data\": [", 29);
    for (int a = 0; a < 2; a++) {
        jb_printf(&j, "%s{\"title\": \"T%d\", \"paragraphs\": [", a ? ", " : "", a);
        for (int p = 0; p < 3; p++)
            jb_printf(&j, "%s{\"context\": \"Paragraph %d of article %d tells that the capital of place%d%d is city%d%d. Filler text here.\", "
                          "\"qas\": [{\"question\": \"What is the capital of place%d%d?\", \"id\": \"q%d%d\", \"answers\": [{\"text\": \"city%d%d\", \"answer_start\": 1}], \"is_impossible\": false}, "
                          "{\"question\": \"Unanswerable %d%d?\", \"id\": \"u%d%d\", \"answers\": [], \"is_impossible\": true}]}",
                      p ? ", " : "", p, a, a, p, a, p, a, p, a, p, a, p, a, p, a, p);
        jb_raw(&j, "]}", 2);
    }
    jb_raw(&j, "]}", 2);
    struct qa_data sq, hp;
    if (!T_OK(qa_parse(&sq, j.p, j.n, "squad-test", 1))) { free(j.p); return; }
    T_CHECK(sq.n_docs == 6 && sq.n_items == 6 && sq.items[4].n_more == 2, "squad: %lld docs %lld items", (long long)sq.n_docs, (long long)sq.n_items);
    for (int k = 0; k < 8; k++) {
        struct suite_spec spec = {"qa_1", k < 4 ? 1024 : 300, k, 5, tokenizer_byte(), NULL, NULL, &sq, 0, 1, 0, 0, 0, 0};
        struct suite_sample s;
        if (k >= 4) { T_ERR(suite_generate(&spec, &s), "cannot hold the gold"); continue; }
        if (!T_OK(suite_generate(&spec, &s))) break;
        check_common(&s, 1024, 200);
        T_CHECK(s.n_needles == 1 && strstr(s.text + s.needles[0].byte0, s.outputs[0]) < s.text + s.needles[0].byte1,
                "qa_1: gold paragraph span misses the answer");
        T_CHECK(strstr(s.text, "Document 1:\n") && strstr(s.text + s.input_len, " Answer:"), "qa_1: template");
        suite_sample_free(&s);
    }
    qa_free(&sq);
    j.n = 0;
    jb_raw(&j, "[", 1);
    for (int i = 0; i < 3; i++)
        jb_printf(&j, "%s{\"_id\": \"h%d\", \"question\": \"Who founded firm%d?\", \"answer\": \"person%d\", \"context\": "
                      "[[\"Firm%d\", [\"Firm%d was founded \", \"by person%d.\"]], [\"Other%d\", [\"Unrelated text %d.\"]]]}",
                  i ? ", " : "", i, i, i, i, i, i, i, i);
    jb_raw(&j, "]", 1);
    if (!T_OK(qa_parse(&hp, j.p, j.n, "hotpot-test", 2))) { free(j.p); return; }
    T_CHECK(hp.n_docs == 6 && hp.n_items == 3 && hp.items[1].n_gold == 2, "hotpot: %lld docs", (long long)hp.n_docs);
    struct suite_spec spec = {"qa_2", 2048, 1, 5, tokenizer_byte(), NULL, NULL, &hp, 0, 1, 0, 0, 0, 0};
    struct suite_sample s;
    if (T_OK(suite_generate(&spec, &s))) {
        check_common(&s, 2048, 200);
        T_CHECK(s.n_needles == 2 && !strcmp(s.outputs[0], "person1") && strstr(s.text, "Firm1\nFirm1 was founded by person1."), "qa_2 gold");
        suite_sample_free(&s);
    }
    qa_free(&hp);
    T_ERR(qa_parse(&hp, "{\"data\": 3}", 11, "bad-squad", 1), "not a SQuAD file");
    T_ERR(qa_parse(&hp, "[{\"context\": [1]}]", 18, "bad-hotpot", 2), "not [title, [sentences]]");
    T_ERR(qa_load(&hp, "/nonexistent/dev-v2.0.json", 1), "cannot be read");
    free(j.p);
}


/* A second tokenizer, to exercise the seam: one token per pair of bytes (ids 256 + (b0 << 8 | b1))
 * and a single-byte token for an odd last byte. Counts differ from bytes, so every place that
 * assumed tokens == bytes would break the length checks below. */
static int64_t pair_encode(const struct tokenizer *t, const char *s, size_t n, int32_t *ids, size_t cap) {
    (void)t;
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 2, k++)
        if (ids && k < cap) ids[k] = i + 1 < n ? 256 + (u[i] << 8 | u[i + 1]) : u[i];
    return (int64_t)k;
}
static int64_t pair_decode(const struct tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap) {
    (void)t;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 256) { if (out && k < cap) out[k] = (char)ids[i]; k++; }
        else {
            int v = ids[i] - 256;
            if (out && k < cap) out[k] = (char)(v >> 8);
            k++;
            if (out && k < cap) out[k] = (char)(v & 255);
            k++;
        }
    }
    return (int64_t)k;
}
static const struct tokenizer PAIR_TOK = {"pairs-test", 256 + 65536, "test", 33, 127, '|', pair_encode, pair_decode, NULL};

static void test_other_tokenizer(void) {
    t_begin("a non-byte tokenizer: every task fits its length in that tokenizer's tokens, ids decode to the text");
    struct haystack hp;
    int have = have_hay && haystack_load(&hp, NULL, &PAIR_TOK) == LC_OK;
    int nt;
    const struct suite_task *t = suite_tasks(&nt);
    const int64_t Ls[] = {4096, 9999};
    for (int i = 0; i < nt; i++) {
        if (t[i].needs_qa || (t[i].needs_prose && !have)) continue;
        for (int li = 0; li < 2; li++) {
            struct suite_spec spec = {t[i].name, Ls[li], li, 21, &PAIR_TOK, have ? &hp : NULL, &WL, NULL, 0, 1, 16, 0, 0, 0};
            struct suite_sample s;
            if (!T_OK(suite_generate(&spec, &s))) continue;
            int64_t L = Ls[li];
            if (t[i].family == SUITE_RULER)
                T_CHECK(s.prompt_tokens + t[i].tokens_to_generate <= L && L - s.prompt_tokens - t[i].tokens_to_generate <= 120,
                        "%s L=%lld: %lld prompt tokens + %d", t[i].name, (long long)L, (long long)s.prompt_tokens, t[i].tokens_to_generate);
            else
                T_CHECK(s.prompt_tokens == L, "%s: %lld tokens, wanted %lld", t[i].name, (long long)s.prompt_tokens, (long long)L);
            T_CHECK(s.n_ids == s.prompt_tokens, "%s: %lld ids", t[i].name, (long long)s.n_ids);
            if (strcmp(t[i].name, "mqar")) {
                int64_t m = PAIR_TOK.decode(&PAIR_TOK, s.ids, (size_t)s.n_ids, NULL, 0);
                char *txt = malloc((size_t)m + 1);
                PAIR_TOK.decode(&PAIR_TOK, s.ids, (size_t)s.n_ids, txt, (size_t)m);
                T_CHECK(m == s.text_len && !memcmp(txt, s.text, (size_t)m), "%s: ids do not decode to the text", t[i].name);
                free(txt);
            }
            int ok = 1;
            for (int64_t j = 0; j < s.n_targets && strcmp(t[i].name, "mqar"); j++) ok &= s.ids[s.target_pos[j] + 1] == s.target_id[j];
            T_CHECK(ok, "%s: targets are not the answer tokens", t[i].name);
            suite_sample_free(&s);
        }
    }
    if (have) haystack_free(&hp);
}

static void test_depth(void) {
    t_begin("depth grid places single needles at the bin's depth (noise, passkey, essay, probe)");
    const char *ts[] = {"niah_single_1", "passkey", "niah_single_2", "tok_sniah"};
    for (int ti = 0; ti < 4; ti++) {
        if (ti >= 2 && !have_hay) continue;
        for (int bin = 0; bin < 10; bin++) {
            struct suite_sample s;
            if (!gen(ts[ti], 32768, bin, 3, 10, &s)) return;
            double want = bin / 9.0;
            /* essay depth is in sentences, not tokens: a looser bound */
            double tol = ti == 2 ? 0.1 : 0.02;
            T_CHECK(s.depth_bin == bin && s.depth > want - tol && s.depth < want + tol, "%s bin %d depth %.3f", ts[ti], bin, s.depth);
            suite_sample_free(&s);
        }
    }
}


static void test_haystack_files(void) {
    t_begin("a user haystack file (--haystack) is split into words and sentences; bad files are refused");
    char path[64], tp[64];
    snprintf(path, sizeof path, "/tmp/lc_test_hay_%d.txt", (int)getpid());
    snprintf(tp, sizeof tp, "/tmp/lc_test_trunc_%d.txt.gz", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs("First sentence here.  Dr. Smith\tsaid so! \"Quoted\" start? yes maybe. Last one", f);
    fclose(f);
    struct haystack h;
    if (T_OK(haystack_load(&h, path, tokenizer_byte()))) {
        /* words: First sentence here. Dr. Smith said so! "Quoted" start? yes maybe. Last one */
        T_CHECK(h.n_words == 13, "%lld words", (long long)h.n_words);
        /* ends: "here." (next 'Dr.'), "so!" (next '"Quoted"'), "start?" is followed by lowercase, "maybe." (next 'Last'),
         * the last word; "Dr." is an abbreviation ("no." would be too) */
        T_CHECK(h.n_sentences == 4 && h.sent_end[2] && !h.sent_end[3] && h.sent_end[6] && !h.sent_end[8] && h.sent_end[10],
                "%lld sentences", (long long)h.n_sentences);
        T_CHECK(h.cost[0] == 6 && h.cost0[0] == 5, "byte costs %d %d", h.cost[0], h.cost0[0]);
        haystack_free(&h);
    }
    remove(path);
    T_ERR(haystack_load(&h, "/nonexistent/corpus.txt", tokenizer_byte()), "cannot be read");
    if (!have_hay) return;
    /* a truncated copy of the gzip haystack is refused */
    char *gz;
    size_t n;
    if (!T_OK(read_file_all(HAYSTACK_DEFAULT_PATH, &gz, &n))) return;
    f = fopen(tp, "wb");
    fwrite(gz, 1, n / 2, f);
    fclose(f);
    T_ERR(haystack_load(&h, tp, tokenizer_byte()), "truncated");
    gz[n / 3] ^= 0x55; /* corrupt the middle: decoding fails or the length check does */
    f = fopen(tp, "wb");
    fwrite(gz, 1, n, f);
    fclose(f);
    lc_status st = haystack_load(&h, tp, tokenizer_byte());
    T_CHECK(st != LC_OK, "a corrupted gzip haystack was accepted");
    if (st == LC_OK) haystack_free(&h);
    free(gz);
    remove(tp);
}

static void test_regen(void) {
    t_begin("byte-identical regeneration from the same seed; other seeds differ");
    int nt;
    const struct suite_task *t = suite_tasks(&nt);
    for (int i = 0; i < nt; i++) {
        if (t[i].needs_qa || (t[i].needs_prose && !have_hay)) continue;
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
    struct suite_spec spec = {"niah_single_9", 4096, 0, 1, NULL, NULL, &WL, NULL, 0, 1, 0, 0, 0, 0};
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
    test_haystack_files();
    test_depth();
    test_vt_cwe_fwe();
    test_token_tasks();
    test_long();
    test_qa();
    test_other_tokenizer();
    test_regen();
    test_errors();
    if (have_hay) haystack_free(&HAY);
    words_free(&WL);
    return t_finish();
}
