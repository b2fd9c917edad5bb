/* score.c — RULER's metrics, Wilson intervals, and `longctx suite score`. See score.h.
 *
 * Prediction JSONL (one object per line, RULER's pred fields): "pred" (the model's output
 * string) and "outputs" (reference strings), or, for teacher-forced tasks, "correct" (true/false
 * or 0/1: all answer tokens matched); the task, length and depth come from "others" (task,
 * max_seq_length, depth_bin) as `suite gen` writes them, or from --task/--length. Lines are
 * grouped by (task, length, depth bin); the CSV has one row per model x task x length x depth
 * (depth_bin -1 = all depths), plus one "average" row per length (the unweighted mean over
 * tasks, RULER's per-length score: labelled ruler-13 when all 13 tasks are present, ruler-11
 * without qa_1/qa_2). */
#include "score.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonl.h"
#include "suite.h"
#include "suite_io.h"
#include "words.h"

char *score_postprocess(const char *pred) {
    size_t n = strlen(pred);
    char *o = malloc(n + 1);
    if (!o) return NULL;
    /* strip, control chars -> '\n', strip (Python str.strip strips whitespace incl. \x1c-\x1f) */
    size_t a = 0, b = n;
    while (a < b && (isspace((unsigned char)pred[a]) || (unsigned char)pred[a] < 0x20)) a++;
    while (b > a && (isspace((unsigned char)pred[b - 1]) || (unsigned char)pred[b - 1] < 0x20)) b--;
    size_t k = 0;
    for (size_t i = a; i < b; i++) o[k++] = (unsigned char)pred[i] < 0x20 ? '\n' : pred[i];
    o[k] = 0;
    return o;
}

static char *lower(const char *s) {
    size_t n = strlen(s);
    char *o = malloc(n + 1);
    if (!o) return NULL;
    for (size_t i = 0; i <= n; i++) o[i] = (char)tolower((unsigned char)s[i]);
    return o;
}

static int hit(const char *lpred, const char *ref) {
    char *r = lower(ref);
    int h = r && strstr(lpred, r) != NULL;
    free(r);
    return h;
}

double score_match_all(const char *pred, const char *const *refs, int n_refs) {
    if (n_refs <= 0) return 0;
    char *p = lower(pred);
    int c = 0;
    for (int i = 0; i < n_refs; i++) c += hit(p, refs[i]);
    free(p);
    return (double)c / n_refs;
}

double score_match_part(const char *pred, const char *const *refs, int n_refs) {
    char *p = lower(pred);
    int h = 0;
    for (int i = 0; i < n_refs && !h; i++) h = hit(p, refs[i]);
    free(p);
    return h;
}

double score_round2(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.2f", x); /* glibc rounds the exact binary value, half-even on ties, like Python */
    return strtod(buf, NULL);
}

void score_wilson(double p, double n, double *lo, double *hi) {
    if (n <= 0) { *lo = 0; *hi = 1; return; }
    const double z = 1.959963984540054;
    double den = 1 + z * z / n, c = (p + z * z / (2 * n)) / den, h = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den;
    *lo = c - h < 0 ? 0 : c - h;
    *hi = c + h > 1 ? 1 : c + h;
}

/* ---- the CLI ---- */

struct group { char task[32]; int64_t length; int depth_bin; int metric; double sum; int64_t n, nulls; };

static void score_help(FILE *f) {
    fprintf(f,
            "usage: longctx suite score --pred FILE [--pred FILE ...] [options]\n"
            "Score prediction JSONL files (RULER's pred format: pred + outputs, or correct for\n"
            "teacher-forced tasks; task/length/depth from others, as suite gen writes them).\n"
            "  --pred FILE     prediction file (repeatable)\n"
            "  --model NAME    model column of the CSV (default: unnamed)\n"
            "  --out FILE      append rows to this CSV (header written when new); default stdout\n"
            "  --task NAME     task for lines without others.task\n"
            "  --length L      length for lines without others.max_seq_length\n"
            "  --ruler-summary DIR  also write RULER's own summary format, DIR/<length>/summary.csv\n"
            "                  (rows Tasks / Score / Nulls, RULER tasks only)\n"
            "Metrics: string_match_all (niah, vt, cwe, fwe), string_match_part (qa), teacher_forced\n"
            "(probes, passkey, mqar); scores x100 rounded to 2 decimals; Wilson 95%% intervals.\n");
}

static struct group *find_group(struct group **gs, int *ng, int *cap, const char *task, int64_t L, int bin, int metric) {
    for (int i = 0; i < *ng; i++)
        if (!strcmp((*gs)[i].task, task) && (*gs)[i].length == L && (*gs)[i].depth_bin == bin) return &(*gs)[i];
    if (*ng == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        struct group *p = realloc(*gs, sizeof **gs * (size_t)*cap);
        if (!p) return NULL;
        *gs = p;
    }
    struct group *g = &(*gs)[(*ng)++];
    memset(g, 0, sizeof *g);
    snprintf(g->task, sizeof g->task, "%s", task);
    g->length = L;
    g->depth_bin = bin;
    g->metric = metric;
    return g;
}

/* Score one line into its group; error names file:line. */
static lc_status score_line(const char *line, size_t n, const char *what, const char *def_task, int64_t def_len,
                            struct group **gs, int *ng, int *cap) {
    struct jval v;
    LC_TRY(json_parse(line, n, &v, what));
    lc_status st = LC_OK;
    if (v.type != J_OBJ) { st = lc_errorf(LC_EINVAL, "%s: a line must be a JSON object", what); goto done; }
    const struct jval *others = json_get(&v, "others"), *jt = json_get(others, "task"), *jl = json_get(others, "max_seq_length"),
                      *jd = json_get(others, "depth_bin");
    const char *task = jt && jt->type == J_STR ? jt->str : def_task;
    if (!task) { st = lc_errorf(LC_EINVAL, "%s: no others.task and no --task", what); goto done; }
    const struct suite_task *t = suite_task_find(task);
    if (!t) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", lc_last_error()); /* lc_errorf must not read its own buffer */
        st = lc_errorf(LC_EINVAL, "%s: %s", what, msg);
        goto done;
    }
    int64_t L = jl && jl->type == J_NUM ? (int64_t)jl->num : def_len;
    if (L <= 0) { st = lc_errorf(LC_EINVAL, "%s: no others.max_seq_length and no --length", what); goto done; }
    int bin = jd && jd->type == J_NUM ? (int)jd->num : -1;
    double sc;
    int null = 0;
    const struct jval *corr = json_get(&v, "correct");
    if (corr && (corr->type == J_BOOL || corr->type == J_NUM)) {
        sc = corr->type == J_BOOL ? corr->b : corr->num != 0;
    } else {
        const struct jval *pred = json_get(&v, "pred"), *outs = json_get(&v, "outputs");
        if (!pred || pred->type != J_STR) { st = lc_errorf(LC_EINVAL, "%s: missing string field \"pred\" (or \"correct\")", what); goto done; }
        if (!outs || outs->type != J_ARR || outs->n == 0) { st = lc_errorf(LC_EINVAL, "%s: missing non-empty list \"outputs\"", what); goto done; }
        const char *refs[64];
        int nr = 0;
        for (size_t i = 0; i < outs->n && nr < 64; i++) {
            if (outs->items[i].type != J_STR) { st = lc_errorf(LC_EINVAL, "%s: \"outputs\" must hold strings", what); goto done; }
            refs[nr++] = outs->items[i].str;
        }
        char *p = score_postprocess(pred->str);
        if (!p) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto done; }
        null = p[0] == 0;
        sc = t->metric == METRIC_PART ? score_match_part(p, refs, nr) : score_match_all(p, refs, nr);
        free(p);
    }
    struct group *g = find_group(gs, ng, cap, t->name, L, bin, t->metric);
    struct group *ga = bin >= 0 ? find_group(gs, ng, cap, t->name, L, -1, t->metric) : NULL;
    if (!g || (bin >= 0 && !ga)) { st = lc_errorf(LC_ENOMEM, "out of memory"); goto done; }
    if (bin >= 0) g = find_group(gs, ng, cap, t->name, L, bin, t->metric); /* realloc may have moved it */
    g->sum += sc; g->n++; g->nulls += null;
    if (ga) { ga = find_group(gs, ng, cap, t->name, L, -1, t->metric); ga->sum += sc; ga->n++; ga->nulls += null; }
done:
    json_free(&v);
    return st;
}

static int cmp_group(const void *a, const void *b) {
    const struct group *x = a, *y = b;
    if (x->length != y->length) return x->length < y->length ? -1 : 1;
    int c = strcmp(x->task, y->task);
    if (c) return c;
    return x->depth_bin - y->depth_bin;
}

/* RULER's eval/evaluate.py summary: "Tasks,<t1>,...", "Score,<s1>,...", "Nulls,<k>/<n>,..." */
static int write_ruler_summaries(const char *dir, const struct group *gs, int ng) {
    for (int i = 0; i < ng; i++) {
        if (i && gs[i - 1].length == gs[i].length) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%lld", dir, (long long)gs[i].length);
        if (!suite_mkdirs(path)) { fprintf(stderr, "longctx suite score: cannot create '%s'\n", path); return 1; }
        strcat(path, "/summary.csv");
        FILE *f = fopen(path, "w");
        if (!f) { fprintf(stderr, "longctx suite score: cannot write '%s'\n", path); return 1; }
        for (int row = 0; row < 3; row++) {
            fputs(row == 0 ? "Tasks" : row == 1 ? "Score" : "Nulls", f);
            for (int j = i; j < ng && gs[j].length == gs[i].length; j++) {
                if (gs[j].depth_bin != -1 || suite_task_find(gs[j].task)->family != SUITE_RULER) continue;
                if (row == 0) fprintf(f, ",%s", gs[j].task);
                else if (row == 1) fprintf(f, ",%.2f", score_round2(100 * gs[j].sum / (double)gs[j].n));
                else fprintf(f, ",%lld/%lld", (long long)gs[j].nulls, (long long)gs[j].n);
            }
            fputc('\n', f);
        }
        if (fclose(f)) { fprintf(stderr, "longctx suite score: error writing '%s'\n", path); return 1; }
    }
    return 0;
}

static void git_sha(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown");
    FILE *p = popen("git rev-parse --short HEAD 2>/dev/null", "r");
    if (!p) return;
    if (fgets(buf, (int)cap, p)) buf[strcspn(buf, "\n")] = 0;
    if (!buf[0]) snprintf(buf, cap, "unknown");
    pclose(p);
}

int cmd_score(int argc, char **argv) {
    const char *preds[64], *model = "unnamed", *out = NULL, *def_task = NULL, *ruler_dir = NULL;
    int np = 0;
    int64_t def_len = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { score_help(stdout); return 0; }
        if (!v) { fprintf(stderr, "longctx suite score: option '%s' needs a value (or is unknown)\n", a); score_help(stderr); return 2; }
        i++;
        if (!strcmp(a, "--pred") && np < 64) preds[np++] = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--task")) def_task = v;
        else if (!strcmp(a, "--ruler-summary")) ruler_dir = v;
        else if (!strcmp(a, "--length")) def_len = strtoll(v, NULL, 10);
        else { fprintf(stderr, "longctx suite score: unknown option '%s'\n", a); score_help(stderr); return 2; }
    }
    if (!np) { fprintf(stderr, "longctx suite score: --pred FILE is required\n"); score_help(stderr); return 2; }
    if (def_task && !suite_task_find(def_task)) { fprintf(stderr, "longctx suite score: %s\n", lc_last_error()); return 2; }
    struct group *gs = NULL;
    int ng = 0, cap = 0;
    for (int f = 0; f < np; f++) {
        char *data;
        size_t len;
        if (read_file_all(preds[f], &data, &len)) { fprintf(stderr, "longctx suite score: %s\n", lc_last_error()); free(gs); return 1; }
        int64_t lineno = 0;
        for (char *p = data; p < data + len;) {
            char *e = memchr(p, '\n', (size_t)(data + len - p));
            size_t n = e ? (size_t)(e - p) : (size_t)(data + len - p);
            lineno++;
            size_t k = 0;
            while (k < n && isspace((unsigned char)p[k])) k++;
            if (k < n) {
                char what[700];
                snprintf(what, sizeof what, "%s line %lld", preds[f], (long long)lineno);
                if (score_line(p, n, what, def_task, def_len, &gs, &ng, &cap)) {
                    fprintf(stderr, "longctx suite score: %s\n", lc_last_error());
                    free(data);
                    free(gs);
                    return 1;
                }
            }
            p += n + 1;
        }
        free(data);
    }
    qsort(gs, (size_t)ng, sizeof *gs, cmp_group);
    FILE *fo = stdout;
    int header = 1;
    if (out) {
        FILE *chk = fopen(out, "r");
        if (chk) { header = fgetc(chk) == EOF; fclose(chk); }
        fo = fopen(out, "a");
        if (!fo) { fprintf(stderr, "longctx suite score: cannot write '%s'\n", out); free(gs); return 1; }
    }
    char sha[64], date[32];
    git_sha(sha, sizeof sha);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (header) fprintf(fo, "model,suite,task,length,depth_bin,metric,n,score,ci95_lo,ci95_hi,nulls,git_sha,date\n");
    const char *mname[] = {"string_match_all", "string_match_part", "teacher_forced"};
    for (int i = 0; i < ng; i++) {
        const struct group *g = &gs[i];
        double p = g->sum / (double)g->n, lo, hi;
        score_wilson(p, (double)g->n, &lo, &hi);
        const struct suite_task *t = suite_task_find(g->task);
        fprintf(fo, "%s,%s,%s,%lld,%d,%s,%lld,%.2f,%.2f,%.2f,%lld,%s,%s\n", model,
                t->family == SUITE_RULER ? "ruler" : t->family == SUITE_PROBE ? "probe" : "other", g->task, (long long)g->length,
                g->depth_bin, mname[g->metric], (long long)g->n, score_round2(100 * p), 100 * lo, 100 * hi, (long long)g->nulls, sha, date);
        /* after the last task row of a length: the RULER average over the RULER tasks present */
        if (i + 1 == ng || gs[i + 1].length != g->length) {
            double sum = 0;
            int nt = 0, has_qa = 0;
            int64_t nmin = 0;
            for (int j = 0; j < ng; j++)
                if (gs[j].length == g->length && gs[j].depth_bin == -1 && suite_task_find(gs[j].task)->family == SUITE_RULER) {
                    sum += score_round2(100 * gs[j].sum / (double)gs[j].n);
                    has_qa += !strncmp(gs[j].task, "qa_", 3);
                    nmin = nt == 0 || gs[j].n < nmin ? gs[j].n : nmin;
                    nt++;
                }
            if (nt)
                fprintf(fo, "%s,%s,average,%lld,-1,mean_of_%d_tasks,%lld,%.2f,,,,%s,%s\n", model,
                        nt == 13 ? "ruler-13" : nt == 11 && !has_qa ? "ruler-11" : "ruler-subset", (long long)g->length, nt,
                        (long long)nmin, score_round2(sum / nt), sha, date);
        }
    }
    if (fo != stdout) fclose(fo);
    int rc = ruler_dir ? write_ruler_summaries(ruler_dir, gs, ng) : 0;
    free(gs);
    return rc;
}
