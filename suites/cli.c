/* cli.c — `longctx suite gen|score|list`: generate samples to RULER-layout JSONL files (or
 * stdout), time on-the-fly generation, and score prediction files into a summary CSV. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cli.h"
#include "qa.h"
#include "score.h"
#include "sha256.h"
#include "suite.h"
#include "suite_io.h"

static void gen_help(FILE *f) {
    fprintf(f,
            "usage: longctx suite gen --task T[,T...] --length L[,L...] [options]\n"
            "Generate samples (RULER-compatible JSONL). A sample is a pure function of\n"
            "(task, length, index, seed, tokenizer, haystack): regenerate any of them alone.\n"
            "  --task LIST       task names, or the groups all | ruler | probes | other\n"
            "                    (longctx suite list prints them)\n"
            "  --length LIST     token lengths, e.g. 4096,131072 or 4K,1M,16M (K=1024, M=1048576)\n"
            "  --samples N       samples per task and length (default 10; RULER uses 500)\n"
            "  --start I         first sample index (default 0)\n"
            "  --seed S          base seed (default 42)\n"
            "  --out DIR         write DIR/<length>/data/<task>/validation.jsonl (default: stdout)\n"
            "  --depths D        depth grid for single-needle tasks: sample i at depth (i%%D)/(D-1)\n"
            "                    (default 0: random depths as RULER draws them)\n"
            "  --tokenizer NAME  byte (default)\n"
            "  --haystack FILE   prose haystack (text or .gz; default %s)\n"
            "  --squad FILE      SQuAD v2 dev-v2.0.json (qa_1); without it qa_1 is skipped\n"
            "  --hotpotqa FILE   HotpotQA hotpot_dev_distractor_v1.json (qa_2); without it qa_2 is skipped\n"
            "  --data-dir DIR    wonderwords lists (default: suites/data, or $LONGCTX_DATA_DIR)\n"
            "  --mqar-kv N       mqar key-value pairs (default 64); --mqar-queries N (default = kv)\n"
            "  --no-input        omit the input text (write input_sha256 instead): metadata only\n"
            "  --bench           generate (with token ids) and time each sample; write nothing;\n"
            "                    print task,length,index,seconds,tokens,text_bytes,peak_rss_kb\n",
            HAYSTACK_DEFAULT_PATH);
}

static int parse_len(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    int64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024, end++;
    else if (*end == 'M' || *end == 'm') mul = 1048576, end++;
    else if (*end == 'G' || *end == 'g') mul = 1073741824, end++;
    if (*end || end == s || errno || v <= 0) return 0;
    *out = (int64_t)(v * (double)mul + 0.5);
    return 1;
}

static int parse_i64(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (*end || end == s || errno) return 0;
    *out = v;
    return 1;
}


static long peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* expand a task list with groups into names; returns count */
static int expand_tasks(const char *list, const char **names, int cap) {
    int nt, n = 0;
    const struct suite_task *t = suite_tasks(&nt);
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tokp = strtok(buf, ","); tokp; tokp = strtok(NULL, ",")) {
        int fam = !strcmp(tokp, "ruler") ? SUITE_RULER : !strcmp(tokp, "probes") ? SUITE_PROBE
                  : !strcmp(tokp, "other") ? SUITE_OTHER : !strcmp(tokp, "all") ? 99 : -1;
        if (fam >= 0) {
            for (int i = 0; i < nt && n < cap; i++)
                if (fam == 99 || (int)t[i].family == fam) names[n++] = t[i].name;
            continue;
        }
        const struct suite_task *f = suite_task_find(tokp);
        if (!f) return -1;
        if (n < cap) names[n++] = f->name;
    }
    return n;
}

static int cmd_gen(int argc, char **argv) {
    const char *task_list = NULL, *out_dir = NULL, *tok_name = "byte", *hay_path = NULL, *squad = NULL, *hotpot = NULL,
               *data_dir = NULL;
    int64_t lengths[64];
    int n_len = 0, no_input = 0, bench = 0;
    int64_t samples = 10, start = 0, seed = 42, depths = 0, mqar_kv = 0, mqar_q = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { gen_help(stdout); return 0; }
        if (!strcmp(a, "--no-input")) { no_input = 1; continue; }
        if (!strcmp(a, "--bench")) { bench = 1; continue; }
        if (!v) { fprintf(stderr, "longctx suite gen: option '%s' needs a value (or is unknown)\n", a); gen_help(stderr); return 2; }
        i++;
        int ok = 1;
        if (!strcmp(a, "--task")) task_list = v;
        else if (!strcmp(a, "--length")) {
            char buf[1024];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *p = strtok(buf, ","); p && ok; p = strtok(NULL, ","))
                ok = n_len < 64 && parse_len(p, &lengths[n_len++]);
        } else if (!strcmp(a, "--samples")) ok = parse_i64(v, &samples) && samples > 0;
        else if (!strcmp(a, "--start")) ok = parse_i64(v, &start) && start >= 0;
        else if (!strcmp(a, "--seed")) ok = parse_i64(v, &seed);
        else if (!strcmp(a, "--depths")) ok = parse_i64(v, &depths) && depths >= 0 && depths < 1000;
        else if (!strcmp(a, "--mqar-kv")) ok = parse_i64(v, &mqar_kv) && mqar_kv > 0;
        else if (!strcmp(a, "--mqar-queries")) ok = parse_i64(v, &mqar_q) && mqar_q > 0;
        else if (!strcmp(a, "--out")) out_dir = v;
        else if (!strcmp(a, "--tokenizer")) tok_name = v;
        else if (!strcmp(a, "--haystack")) hay_path = v;
        else if (!strcmp(a, "--squad")) squad = v;
        else if (!strcmp(a, "--hotpotqa")) hotpot = v;
        else if (!strcmp(a, "--data-dir")) data_dir = v;
        else { fprintf(stderr, "longctx suite gen: unknown option '%s'\n", a); gen_help(stderr); return 2; }
        if (!ok) { fprintf(stderr, "longctx suite gen: bad value '%s' for %s\n", v, a); return 2; }
    }
    if (!task_list || !n_len) {
        fprintf(stderr, "longctx suite gen: --task and --length are required\n");
        gen_help(stderr);
        return 2;
    }
    const char *names[64];
    int n_tasks = expand_tasks(task_list, names, 64);
    if (n_tasks < 0) { fprintf(stderr, "longctx suite gen: %s\n", lc_last_error()); return 2; }
    const struct tokenizer *tok = tokenizer_by_name(tok_name);
    if (!tok) { fprintf(stderr, "longctx suite gen: %s\n", lc_last_error()); return 2; }

    /* load what the tasks need, once */
    int need_words = 0, need_prose = 0;
    for (int i = 0; i < n_tasks; i++) {
        const struct suite_task *t = suite_task_find(names[i]);
        need_words |= !strncmp(t->name, "niah", 4) || !strcmp(t->name, "cwe");
        need_prose |= t->needs_prose;
    }
    struct word_lists wl;
    int have_words = 0, have_hay = 0, rc = 0;
    if (need_words) {
        if (words_load(&wl, data_dir)) { fprintf(stderr, "longctx suite gen: %s\n", lc_last_error()); return 1; }
        have_words = 1;
    }
    struct haystack hay;
    char hay_err[1024] = "";
    if (need_prose) {
        if (haystack_load(&hay, hay_path, tok)) snprintf(hay_err, sizeof hay_err, "%s", lc_last_error());
        else have_hay = 1;
    }
    struct qa_data qa1, qa2;
    int have_qa1 = 0, have_qa2 = 0;
    if (squad) {
        if (qa_load(&qa1, squad, 1)) { fprintf(stderr, "longctx suite gen: %s\n", lc_last_error()); return 1; }
        have_qa1 = 1;
    }
    if (hotpot) {
        if (qa_load(&qa2, hotpot, 2)) { fprintf(stderr, "longctx suite gen: %s\n", lc_last_error()); return 1; }
        have_qa2 = 1;
    }
    int skipped_qa = 0;
    struct jbuf jb = {0};
    for (int ti = 0; ti < n_tasks; ti++) {
        const struct suite_task *t = suite_task_find(names[ti]);
        if (t->needs_qa && !(t->needs_qa == 1 ? have_qa1 : have_qa2)) {
            fprintf(stderr, "longctx suite gen: %s skipped: it needs %s (%s); without it report RULER-11\n", t->name,
                    t->needs_qa == 1 ? "--squad FILE" : "--hotpotqa FILE",
                    t->needs_qa == 1 ? "SQuAD v2.0 dev-v2.0.json" : "HotpotQA hotpot_dev_distractor_v1.json");
            skipped_qa++;
            continue;
        }
        if (t->needs_prose && !have_hay) {
            fprintf(stderr, "longctx suite gen: %s failed: %s\n", t->name, hay_err);
            rc = 1;
            continue;
        }
        for (int li = 0; li < n_len; li++) {
            FILE *f = stdout;
            char path[1200];
            if (out_dir && !bench) {
                snprintf(path, sizeof path, "%s/%lld/data/%s", out_dir, (long long)lengths[li], t->name);
                if (!suite_mkdirs(path)) { fprintf(stderr, "longctx suite gen: cannot create '%s'\n", path); return 1; }
                strcat(path, "/validation.jsonl");
                f = fopen(path, "w");
                if (!f) { fprintf(stderr, "longctx suite gen: cannot write '%s'\n", path); return 1; }
            }
            double t0 = lc_now();
            for (int64_t k = start; k < start + samples; k++) {
                struct suite_spec spec = {t->name, lengths[li], k, (uint64_t)seed, tok, have_hay ? &hay : NULL,
                                          have_words ? &wl : NULL, t->needs_qa == 1 ? &qa1 : t->needs_qa == 2 ? &qa2 : NULL,
                                          (int)depths, bench, (int)mqar_kv, (int)mqar_q, 0, 0};
                if (!t->needs_qa) spec.qa = NULL;
                if (!strcmp(t->name, "mqar")) spec.want_ids = 1; /* its JSONL carries input_ids */
                struct suite_sample s;
                double g0 = lc_now();
                lc_status st = suite_generate(&spec, &s);
                double g1 = lc_now();
                if (st) {
                    fprintf(stderr, "longctx suite gen: %s at length %lld, sample %lld: %s\n", t->name, (long long)lengths[li],
                            (long long)k, lc_last_error());
                    rc = 1;
                    break;
                }
                if (bench) {
                    printf("%s,%lld,%lld,%.4f,%lld,%lld,%ld\n", t->name, (long long)lengths[li], (long long)k, g1 - g0,
                           (long long)(s.n_ids ? s.n_ids : s.prompt_tokens), (long long)s.text_len, peak_rss_kb());
                    fflush(stdout);
                } else {
                    jb.n = 0;
                    suite_sample_jsonl(&spec, &s, no_input, &jb);
                    if (jb.err) { fprintf(stderr, "longctx suite gen: out of memory\n"); return 1; }
                    fwrite(jb.p, 1, jb.n, f);
                }
                suite_sample_free(&s);
                if (samples > 1 && lc_now() - t0 > 3) {
                    double per = (lc_now() - t0) / (double)(k - start + 1);
                    fprintf(stderr, "\r%s L=%lld: %lld/%lld samples, %.2f s/sample, ETA %.0f s   ", t->name, (long long)lengths[li],
                            (long long)(k - start + 1), (long long)samples, per, per * (double)(start + samples - k - 1));
                }
            }
            if (f != stdout) {
                if (fclose(f)) { fprintf(stderr, "longctx suite gen: error writing '%s'\n", path); rc = 1; }
                else fprintf(stderr, "wrote %s (%.2f s)\n", path, lc_now() - t0);
            }
        }
    }
    if (skipped_qa) fprintf(stderr, "longctx suite gen: %d QA task(s) skipped: scores over these tasks are RULER-11, not RULER-13\n", skipped_qa);
    free(jb.p);
    if (have_words) words_free(&wl);
    if (have_hay) haystack_free(&hay);
    if (have_qa1) qa_free(&qa1);
    if (have_qa2) qa_free(&qa2);
    return rc;
}

static int cmd_list(void) {
    int n;
    const struct suite_task *t = suite_tasks(&n);
    printf("%-16s %-6s %-18s %-4s %s\n", "task", "suite", "metric", "G", "needs");
    for (int i = 0; i < n; i++)
        printf("%-16s %-6s %-18s %-4d %s\n", t[i].name, t[i].family == SUITE_RULER ? "ruler" : t[i].family == SUITE_PROBE ? "probe" : "other",
               t[i].metric == METRIC_ALL ? "string_match_all" : t[i].metric == METRIC_PART ? "string_match_part" : "teacher_forced",
               t[i].tokens_to_generate,
               t[i].needs_qa == 1 ? "--squad FILE" : t[i].needs_qa == 2 ? "--hotpotqa FILE" : t[i].needs_prose ? "prose haystack" : "-");
    return 0;
}

int cmd_suite(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: longctx suite gen|score|list [options]   (gen --help, score --help)\n"
                   "  gen    generate RULER / probe / passkey / MQAR samples\n"
                   "  score  score prediction JSONL files into a summary CSV\n"
                   "  list   the tasks, their metric and what they need\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "gen")) return cmd_gen(argc - 1, argv + 1);
    if (!strcmp(argv[1], "score")) return cmd_score(argc - 1, argv + 1);
    if (!strcmp(argv[1], "list")) return cmd_list();
    fprintf(stderr, "longctx suite: unknown subcommand '%s' (gen | score | list)\n", argv[1]);
    return 2;
}
