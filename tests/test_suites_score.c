/* test_suites_score.c — RULER scoring against hand-computed cases (post-processing, substring
 * semantics, partial credit, Python rounding, Wilson intervals), the score CLI end to end, and
 * rejection of malformed JSONL and unknown task names with messages naming file and line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
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

int main(void) {
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
    const char *pred = "/tmp/lc_test_pred.jsonl", *out = "/tmp/lc_test_scores.csv";
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

    t_begin("malformed JSONL and unknown tasks are rejected, naming file and line");
    T_CHECK(write_file(pred, "{\"pred\": \"x\", \"outputs\": [\"x\"], \"others\": {\"task\": \"vt\", \"max_seq_length\": 4096}}\n{\"pred\": \"x\", \"outputs\": [\"x\"\n"), "write");
    T_CHECK(run_score(pred, out) == 1 && strstr(lc_last_error(), "lc_test_pred.jsonl line 2") && strstr(lc_last_error(), "malformed JSON"),
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
