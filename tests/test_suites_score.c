/* test_suites_score.c — RULER scoring against hand-computed cases (post-processing, substring
 * semantics, partial credit, Python rounding, Wilson intervals), the score CLI end to end, and
 * rejection of malformed JSONL and unknown task names with messages naming file and line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "jsonl.h"
#include "score.h"
#include "test.h"

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs(text, f);
    fclose(f);
    return 1;
}

static int run_score(const char *pred, const char *out) {
    char *argv[] = {"score", "--pred", (char *)pred, "--model", "m1", "--out", (char *)out, NULL};
    return cmd_score(7, argv);
}

static int read_text(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return 1;
}

int main(void) {
    t_begin("JSON strings are written like Python's json.dumps(ensure_ascii=True) and parsed back");
    struct jbuf jb = {0};
    const char *in = "a\"b\\c\n\t\x01 \xc3\xa9 \xe2\x80\x9c \xf0\x9f\x98\x80 \xff";
    jb_cstr(&jb, in);
    const char *want = "\"a\\\"b\\\\c\\n\\t\\u0001 \\u00e9 \\u201c \\ud83d\\ude00 \\u00ff\"";
    T_CHECK(jb.p && !strcmp(jb.p, want), "escaped as %s, want %s", jb.p, want);
    struct jval v;
    if (T_OK(json_parse(jb.p, jb.n, &v, "roundtrip"))) {
        /* everything but the stray byte 0xff (written as U+00FF) comes back byte-identical */
        T_CHECK(v.type == J_STR && !memcmp(v.str, in, strlen(in) - 1) && !strcmp(v.str + strlen(in) - 1, "\xc3\xbf"),
                "round trip differs: %s", v.str);
        json_free(&v);
    }
    free(jb.p);
    T_ERR(json_parse("{\"a\": [1, 2,]}", 14, &v, "x.jsonl line 9"), "x.jsonl line 9: malformed JSON at column 13");
    T_ERR(json_parse("{\"a\": \"\\q\"}", 11, &v, "y"), "bad escape");
    T_ERR(json_parse("{\"a\": 1} x", 10, &v, "z"), "trailing characters");

    t_begin("post-processing strips and maps control characters to newlines");
    char *p = score_postprocess("  \t hello\x01world\x1f \n");
    T_CHECK(!strcmp(p, "hello\nworld"), "got '%s'", p);
    free(p);

    t_begin("string_match_all: case-insensitive substring, partial credit");
    const char *refs[] = {"123", "456", "789", "Dune Buggy"};
    T_CHECK(score_match_all("The 123, 456 and DUNE BUGGY.", refs, 4) == 0.75, "3 of 4 not 0.75");
    T_CHECK(score_match_all("nothing", refs, 4) == 0, "no hit not 0");
    const char *art[] = {"art"};
    T_CHECK(score_match_all("a party", art, 1) == 1, "substring semantics: 'art' is in 'party'");
    const char *seven[] = {"4821937"};
    T_CHECK(score_match_all("94821937", seven, 1) == 1, "a 7-digit answer inside a longer number counts (RULER)");

    t_begin("string_match_part: any reference counts");
    const char *qa[] = {"Paris", "the city of Paris", "London"};
    T_CHECK(score_match_part("paris, france", qa, 3) == 1 && score_match_part("Rome", qa, 3) == 0, "part wrong");

    t_begin("round to 2 decimals like Python's round(x, 2)");
    T_CHECK(score_round2(2.675) == 2.67 && score_round2(1.005) == 1.0 && score_round2(0.125) == 0.12 &&
                score_round2(58.333333) == 58.33, "round2: %.4f %.4f %.4f", score_round2(2.675), score_round2(1.005), score_round2(0.125));

    t_begin("Wilson 95% intervals");
    double lo, hi;
    score_wilson(0.5, 100, &lo, &hi);
    T_CHECK(fabs(lo - 0.403831) < 1e-5 && fabs(hi - 0.596169) < 1e-5, "p=.5 n=100: %.6f %.6f", lo, hi);
    score_wilson(1, 10, &lo, &hi);
    T_CHECK(fabs(lo - 0.722467) < 1e-5 && fabs(hi - 1) < 1e-9, "p=1 n=10: %.6f %.6f", lo, hi);

    t_begin("suite score: per task, length and depth rows, RULER average, nulls");
    char pred[64], out[64]; /* per-process names: test runs may overlap (make test, make test SAN=1) */
    snprintf(pred, sizeof pred, "/tmp/lc_test_pred_%d.jsonl", (int)getpid());
    snprintf(out, sizeof out, "/tmp/lc_test_scores_%d.csv", (int)getpid());
    remove(out);
    T_CHECK(write_file(pred,
                       "{\"index\": 0, \"pred\": \" 1234567 \", \"outputs\": [\"1234567\"], \"others\": {\"task\": \"niah_single_1\", \"max_seq_length\": 4096, \"depth_bin\": 0}}\n"
                       "{\"index\": 1, \"pred\": \"\", \"outputs\": [\"7654321\"], \"others\": {\"task\": \"niah_single_1\", \"max_seq_length\": 4096, \"depth_bin\": 1}}\n"
                       "\n"
                       "{\"index\": 0, \"pred\": \"a b\", \"outputs\": [\"A\", \"B\", \"c\", \"d\"], \"others\": {\"task\": \"niah_multivalue\", \"max_seq_length\": 4096}}\n"
                       "{\"index\": 1, \"pred\": \"A B C D\", \"outputs\": [\"A\", \"B\", \"c\", \"d\"], \"others\": {\"task\": \"niah_multivalue\", \"max_seq_length\": 4096}}\n"
                       "{\"index\": 0, \"correct\": true, \"others\": {\"task\": \"tok_sniah\", \"max_seq_length\": 65536}}\n"),
            "cannot write %s", pred);
    T_CHECK(run_score(pred, out) == 0, "score failed: %s", lc_last_error());
    FILE *f = fopen(out, "r");
    char csv[8192] = "";
    if (f) { size_t n = fread(csv, 1, sizeof csv - 1, f); csv[n] = 0; fclose(f); }
    T_CHECK(strstr(csv, "model,suite,task,length,depth_bin,metric,n,score,ci95_lo,ci95_hi,nulls") == csv, "header missing");
    T_CHECK(strstr(csv, "m1,ruler,niah_single_1,4096,-1,string_match_all,2,50.00,"), "niah all-depth row wrong:\n%s", csv);
    T_CHECK(strstr(csv, "m1,ruler,niah_single_1,4096,0,string_match_all,1,100.00,"), "depth 0 row wrong");
    T_CHECK(strstr(csv, "m1,ruler,niah_single_1,4096,1,string_match_all,1,0.00,0.00,79.35,1,"), "depth 1 row (null, Wilson) wrong:\n%s", csv);
    T_CHECK(strstr(csv, "m1,ruler,niah_multivalue,4096,-1,string_match_all,2,75.00,"), "multivalue partial credit wrong");
    T_CHECK(strstr(csv, "m1,ruler-subset,average,4096,-1,mean_of_2_tasks,2,62.50,"), "average row wrong:\n%s", csv);
    T_CHECK(strstr(csv, "m1,probe,tok_sniah,65536,-1,teacher_forced,1,100.00,"), "teacher-forced row wrong");

    t_begin("RULER's own summary.csv (Tasks / Score / Nulls)");
    char dir[64], sum[128], txt[1024];
    snprintf(dir, sizeof dir, "/tmp/lc_test_ruler_%d", (int)getpid());
    char *rs_argv[] = {"score", "--pred", pred, "--out", out, "--ruler-summary", dir, NULL};
    T_CHECK(cmd_score(7, rs_argv) == 0, "score --ruler-summary failed");
    snprintf(sum, sizeof sum, "%s/4096/summary.csv", dir);
    T_CHECK(read_text(sum, txt, sizeof txt) &&
                !strcmp(txt, "Tasks,niah_multivalue,niah_single_1\nScore,75.00,50.00\nNulls,0/2,1/2\n"),
            "summary.csv:\n%s", txt);
    remove(sum);
    snprintf(sum, sizeof sum, "%s/65536/summary.csv", dir);
    T_CHECK(read_text(sum, txt, sizeof txt) && !strcmp(txt, "Tasks\nScore\nNulls\n"), "probe-only length: %s", txt);
    remove(sum);
    snprintf(sum, sizeof sum, "%s/4096", dir);
    rmdir(sum);
    snprintf(sum, sizeof sum, "%s/65536", dir);
    rmdir(sum);
    rmdir(dir);

    t_begin("malformed JSONL and unknown tasks are rejected, naming file and line");
    T_CHECK(write_file(pred, "{\"pred\": \"x\", \"outputs\": [\"x\"], \"others\": {\"task\": \"vt\", \"max_seq_length\": 4096}}\n{\"pred\": \"x\", \"outputs\": [\"x\"\n"), "write");
    T_CHECK(run_score(pred, out) == 1 && strstr(lc_last_error(), "jsonl line 2") && strstr(lc_last_error(), "malformed JSON"),
            "malformed line not reported: %s", lc_last_error());
    T_CHECK(write_file(pred, "{\"pred\": \"x\", \"outputs\": [\"x\"], \"others\": {\"task\": \"niah_single_7\", \"max_seq_length\": 4096}}\n"), "write");
    T_CHECK(run_score(pred, out) == 1 && strstr(lc_last_error(), "unknown task 'niah_single_7'") && strstr(lc_last_error(), "line 1"),
            "unknown task not reported: %s", lc_last_error());
    T_CHECK(write_file(pred, "{\"pred\": 3, \"outputs\": [\"x\"], \"others\": {\"task\": \"vt\", \"max_seq_length\": 4096}}\n"), "write");
    T_CHECK(run_score(pred, out) == 1 && strstr(lc_last_error(), "\"pred\""), "non-string pred not reported: %s", lc_last_error());
    T_CHECK(write_file(pred, "[1, 2]\n"), "write");
    T_CHECK(run_score(pred, out) == 1 && strstr(lc_last_error(), "JSON object"), "non-object not reported: %s", lc_last_error());
    char *gen_argv[] = {"gen", "--task", "niah_nope", "--length", "4096", NULL};
    char *suite_argv[] = {"suite", "gen", "--task", "niah_nope", "--length", "4096", NULL};
    (void)gen_argv;
    T_CHECK(cmd_suite(6, suite_argv) == 2 && strstr(lc_last_error(), "unknown task 'niah_nope'"), "gen accepted an unknown task");
    remove(pred);
    remove(out);
    return t_finish();
}
