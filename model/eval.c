/* eval.c — `longctx eval`: a trained (or freshly initialised) model over a list of context
 * lengths: perplexity of a held-out token file (sequential rows of L tokens) and/or teacher-forced
 * exact match of a suite task (suites/suite.h, answer tokens scored), with the retrieval
 * diagnostics of group 0 at each sample's first answer token. One CSV row per (mode, length).
 * Full forward of each row by default (L bounded by activation memory); --segment N feeds each row
 * through segmented prefill (model/infer.h: caches, N tokens at a time, same logits); --tail scores
 * suite answers through the exact tail mode. --bench-infer times inference (full prefill, decode
 * steps, tail prefill) per length and writes results/model_prefill.csv rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "csv.h"
#include "data.h"
#include "device.h"
#include "model.h"
#include "provenance.h"
#include "haystack.h"
#include "infer.h"
#include "suite.h"
#include "tokenizer.h"
#include "train.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: longctx eval [options]\n"
            "  --config NAME|PATH  preset or config file (default tiny-swa-hsa)\n"
            "  --ckpt PATH         weights (default: fresh initialisation, a baseline)\n"
            "  --backend B         cpu | cuda | auto (default auto)\n"
            "  --lengths L1,L2,..  context lengths (default: the config's context)\n"
            "  --data FILE         perplexity on this token file (rows from --lo, sequential)\n"
            "  --lo N              first token of the held-out range (default 0)\n"
            "  --batches N         batches per length (default 4)   --batch B  rows per batch (default 1)\n"
            "  --task NAME         teacher-forced exact match of a suite task\n"
            "  --samples N         samples per length (default 8)    --seed S (default 1234)\n"
            "  --haystack FILE     prose haystack for tasks that need one (default: the Jargon File)\n"
            "  --mqar-kv N         mqar key-value pairs (default 16)\n"
            "  --segment N         segmented prefill with caches, N tokens at a time (exact)\n"
            "  --decode N --answer A  --bench-infer: decode steps, tail answer rows\n"
            "  --tail              task mode: exact tail prefill (upper stack on the last positions only; needs --segment)\n"
            "  --csv PATH          append one row per (mode, length)\n"
            "  --bench-infer       time inference instead: for each length, a full prefill (segments of --segment,\n"
            "                      default 65536; random tokens), --decode N steps after it (default 32) and an exact\n"
            "                      tail prefill for --answer A rows (default 16; 0 = skip); CSV columns: see results/model_prefill.csv\n");
}

/* Segmented prefill of one row of T+1 tokens: the NLL sum of its T targets (nll) and/or the
 * argmax of each position's logits (pred [T]); lg: host scratch [seg, vocab]. */
static lc_status seg_row(lc_model *m, lc_infer *st, const int32_t *row, int64_t T, int64_t seg, float *lg, double *nll,
                         int32_t *pred) {
    const int64_t V = m->cfg.vocab;
    LC_TRY(infer_reset(st));
    for (int64_t i = 0; i < T; i += seg) {
        const int64_t k = T - i < seg ? T - i : seg;
        LC_TRY(model_prefill(m, st, row + i, k, lg));
        for (int64_t j = 0; j < k; j++) {
            const float *r = lg + j * V;
            int64_t best = 0;
            float mx = r[0];
            for (int64_t v = 1; v < V; v++)
                if (r[v] > mx) mx = r[v], best = v;
            if (pred) pred[i + j] = (int32_t)best;
            if (nll) {
                double se = 0;
                for (int64_t v = 0; v < V; v++) se += exp((double)r[v] - mx);
                *nll += (double)mx + log(se) - (double)r[row[i + j + 1]];
            }
        }
    }
    return LC_OK;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int64_t device_free(const struct backend *be) {
    size_t fr = 0, tot = 0;
    if (!be->is_cuda || lc_cuda_mem_info(&fr, &tot) != LC_OK) return -1;
    return (int64_t)fr;
}

/* --bench-infer: per length L, on random tokens: a full prefill of L tokens (every position through
 * every layer, segments of seg, head on the last token only), then `decode` one-token steps (each
 * timed to its logits on the host: median), then an exact tail prefill of the same L tokens with
 * `answer` answer rows. Timings are wall clock around calls that end in a device->host copy (so
 * the device has finished). Memory: the state figure (infer_bytes) and the device memory in use
 * after the runs less what was in use before the model was created (weights, state, cuBLAS and
 * kernel workspaces: the peak, as nothing is freed in between). */
static int bench_infer(const char *config, const struct backend *be, const int64_t *L, int nl, int64_t seg, int64_t decode,
                       int64_t answer, const char *csv, uint64_t seed) {
    lc_config cfg;
    if (lc_config_load(config, &cfg)) {
        fprintf(stderr, "longctx eval: %s\n", lc_last_error());
        return 1;
    }
    const int64_t free0 = device_free(be);
    lc_model m;
    if (model_create(&m, &cfg, be, 1)) {
        fprintf(stderr, "longctx eval: %s\n", lc_last_error());
        return 1;
    }
    struct csv_writer cw;
    int have_csv = 0, rc = 1;
    if (csv) {
        static const char *const cols[] = {"config", "backend", "params", "L", "segment", "prefill_s", "prefill_tok_s",
                                           "decode_steps", "decode_ms", "tail_rows", "tail_s", "tail_tok_s", "state_bytes",
                                           "device_used_bytes", "status", "device", "git_sha", "date"};
        if (csv_open(&cw, csv, cols, (int)(sizeof cols / sizeof cols[0]), NULL)) {
            fprintf(stderr, "longctx eval: %s\n", lc_last_error());
            model_destroy(&m);
            return 1;
        }
        have_csv = 1;
    }
    struct prov pv;
    prov_read(be->is_cuda, &pv);
    const int64_t V = cfg.vocab;
    float *lg = malloc(sizeof(float) * (size_t)(V * (answer > 1 ? answer : 1))); /* the tail's answer rows */
    double *dt = malloc(sizeof(double) * (size_t)(decode > 0 ? decode : 1));
    if (!lg || !dt) goto done;
    printf("%-14s %10s %8s %10s %12s %10s %10s %12s %10s %10s\n", "config", "L", "segment", "prefill_s", "prefill_tok/s", "decode_ms",
           "tail_rows", "tail_tok/s", "state_MiB", "used_MiB");
    for (int li = 0; li < nl; li++) {
        const int64_t T = L[li], sg = seg < T ? seg : T;
        lc_infer *st = NULL;
        int64_t need = 0;
        char status[512] = "ok";
        double t_pre = 0, t_tail = 0, dms = 0;
        int64_t rows = 0, used = -1;
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)(T + decode));
        if (!tok) goto done;
        lc_rng r;
        lc_rng_seed(&r, seed + (uint64_t)T);
        for (int64_t i = 0; i < T + decode; i++) tok[i] = (int32_t)lc_rng_below(&r, (uint64_t)V);
        lc_status s = infer_bytes(&m, T + decode, sg, &need);
        if (s == LC_OK) s = infer_create(&st, &m, T + decode, sg, 0);
        if (s == LC_OK) { /* warm-up: kernels loaded, cuBLAS handles and workspaces made */
            const int64_t w = T < 2 * sg ? T : 2 * sg;
            s = model_prefill_last(&m, st, tok, w, lg);
            if (s == LC_OK && answer > 0 && answer <= w) {
                s = infer_reset(st);
                if (s == LC_OK) s = model_prefill_tail(&m, st, tok, w, answer, lg);
            }
            if (s == LC_OK) s = infer_reset(st);
        }
        if (s == LC_OK) {
            double t0 = lc_now();
            s = model_prefill_last(&m, st, tok, T, lg);
            t_pre = lc_now() - t0;
        }
        for (int64_t k = 0; s == LC_OK && k < decode; k++) {
            double t0 = lc_now();
            s = model_decode_step(&m, st, tok[T + k], lg);
            dt[k] = lc_now() - t0;
        }
        if (s == LC_OK && decode > 0) {
            qsort(dt, (size_t)decode, sizeof(double), cmp_double);
            dms = 1e3 * dt[decode / 2];
        }
        if (s == LC_OK && answer > 0 && answer <= T) {
            int split = 0;
            s = infer_tail_rows(&m, answer, &rows, &split);
            if (s == LC_OK) s = infer_reset(st);
            double t0 = lc_now();
            if (s == LC_OK) s = model_prefill_tail(&m, st, tok, T, answer, lg);
            t_tail = lc_now() - t0;
        }
        if (s != LC_OK) snprintf(status, sizeof status, "%s", lc_last_error());
        const int64_t fr = device_free(be);
        if (free0 >= 0 && fr >= 0) used = free0 - fr;
        infer_destroy(st);
        free(tok);
        if (s == LC_OK)
            printf("%-14s %10lld %8lld %10.3f %12.0f %10.3f %10lld %12.0f %10.1f %10.1f\n", config, (long long)T, (long long)sg, t_pre,
                   (double)T / t_pre, dms, (long long)rows, t_tail > 0 ? (double)T / t_tail : 0.0, (double)need / 1048576.0,
                   (double)used / 1048576.0);
        else
            printf("%-14s %10lld %8lld  %s\n", config, (long long)T, (long long)sg, status);
        if (have_csv) {
            char row[2048];
            snprintf(row, sizeof row,
                     "%s" CSV_SEP "%s" CSV_SEP "%lld" CSV_SEP "%lld" CSV_SEP "%lld" CSV_SEP "%.4f" CSV_SEP "%.1f" CSV_SEP "%lld" CSV_SEP
                     "%.4f" CSV_SEP "%lld" CSV_SEP "%.4f" CSV_SEP "%.1f" CSV_SEP "%lld" CSV_SEP "%lld" CSV_SEP "%s" CSV_SEP "%s" CSV_SEP
                     "%s" CSV_SEP "%s",
                     config, be->name, (long long)m.n_params, (long long)T, (long long)sg, t_pre, s == LC_OK ? (double)T / t_pre : 0.0,
                     (long long)decode, dms, (long long)rows, t_tail, t_tail > 0 ? (double)T / t_tail : 0.0, (long long)need,
                     (long long)used, status, pv.device, pv.git_sha, pv.date);
            if (csv_append_split(&cw, row, CSV_SEP[0])) fprintf(stderr, "longctx eval: %s\n", lc_last_error());
        }
    }
    rc = 0;
done:
    free(lg);
    free(dt);
    if (have_csv) csv_close(&cw);
    model_destroy(&m);
    return rc;
}

/* Exact tail mode for one sample of Ts inputs: the upper stack only on the rows from the first
 * target on (plus its reach, infer.h); pred gets the argmax at those rows. */
static lc_status tail_row(lc_model *m, lc_infer *st, const struct suite_sample *s, int64_t Ts, int32_t *pred) {
    const int64_t V = m->cfg.vocab;
    int64_t t0 = Ts - 1;
    for (int64_t j = 0; j < s->n_targets; j++)
        if (s->target_pos[j] < t0) t0 = s->target_pos[j];
    if (t0 < 0) t0 = 0;
    const int64_t A = Ts - t0;
    float *lg = malloc(sizeof(float) * (size_t)(A * V));
    if (!lg) return lc_errorf(LC_ENOMEM, "eval: out of memory for %lld answer rows of logits", (long long)A);
    lc_status r = infer_reset(st);
    if (r == LC_OK) r = model_prefill_tail(m, st, s->ids, Ts, A, lg);
    for (int64_t j = 0; r == LC_OK && j < A; j++) {
        const float *row = lg + j * V;
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        pred[t0 + j] = (int32_t)best;
    }
    free(lg);
    return r;
}

int cmd_eval(int argc, char **argv) {
    const char *config = "tiny-swa-hsa", *ckpt = NULL, *backend = "auto", *data = NULL, *task = NULL, *csv = NULL, *lens = NULL,
               *hay_path = NULL;
    int64_t batches = 4, batch = 1, samples = 8, lo = 0, segment = 0, decode = 32, answer = 16;
    uint64_t seed = 1234;
    int mqar_kv = 16, tail = 0, bench = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--tail") || !strcmp(a, "--bench-infer")) {
            *(a[2] == 't' ? &tail : &bench) = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "longctx eval: '%s' needs a value (or is unknown)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) config = v;
        else if (!strcmp(a, "--ckpt")) ckpt = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--lengths")) lens = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--lo")) lo = atoll(v);
        else if (!strcmp(a, "--batches")) batches = atoll(v);
        else if (!strcmp(a, "--batch")) batch = atoll(v);
        else if (!strcmp(a, "--task")) task = v;
        else if (!strcmp(a, "--samples")) samples = atoll(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--mqar-kv")) mqar_kv = atoi(v);
        else if (!strcmp(a, "--haystack")) hay_path = v;
        else if (!strcmp(a, "--csv")) csv = v;
        else if (!strcmp(a, "--segment")) segment = atoll(v);
        else if (!strcmp(a, "--decode")) decode = atoll(v);
        else if (!strcmp(a, "--answer")) answer = atoll(v);
        else {
            fprintf(stderr, "longctx eval: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!data && !task && !bench) {
        fprintf(stderr, "longctx eval: give --data FILE and/or --task NAME (or --bench-infer)\n");
        return 2;
    }
    lc_config cfg;
    if (lc_config_load(config, &cfg)) {
        fprintf(stderr, "longctx eval: %s\n", lc_last_error());
        return 1;
    }
    int64_t L[64];
    int nl = 0;
    if (lens) {
        for (const char *p = lens; *p && nl < 64;) {
            L[nl++] = strtoll(p, (char **)&p, 10);
            if (*p == ',') p++;
            else if (*p) {
                fprintf(stderr, "longctx eval: bad --lengths '%s'\n", lens);
                return 2;
            }
        }
    } else {
        L[nl++] = cfg.context;
    }
    const struct backend *be = backend_by_name(backend);
    if (!be) {
        fprintf(stderr, "longctx eval: %s\n", lc_last_error());
        return 1;
    }
    if (segment < 0) {
        fprintf(stderr, "longctx eval: --segment %lld must be >= 1 (0 = full forward)\n", (long long)segment);
        return 2;
    }
    if (decode < 0 || answer < 0) {
        fprintf(stderr, "longctx eval: --decode %lld and --answer %lld must be >= 0\n", (long long)decode, (long long)answer);
        return 2;
    }
    if (bench) return bench_infer(config, be, L, nl, segment > 0 ? segment : 65536, decode, answer, csv, seed);
    if (tail && segment == 0) {
        fprintf(stderr, "longctx eval: --tail needs --segment N (the tail mode runs through segmented prefill)\n");
        return 2;
    }
    lc_model m;
    if (model_create(&m, &cfg, be, 1)) {
        fprintf(stderr, "longctx eval: %s\n", lc_last_error());
        return 1;
    }
    int rc = 1, have_toks = 0, have_words = 0;
    lc_infer *st = NULL;
    float *seg_lg = NULL;
    lc_tokens toks;
    struct word_lists wl;
    struct haystack hay;
    int have_hay = 0;
    struct csv_writer cw;
    int have_csv = 0;
    if (ckpt) {
        float *p = malloc(sizeof(float) * (size_t)m.n_params);
        if (!p || ckpt_load(ckpt, &cfg, 0, p, NULL, NULL, NULL) || model_set_params(&m, p)) {
            fprintf(stderr, "longctx eval: %s\n", lc_last_error());
            free(p);
            goto done;
        }
        free(p);
    }
    if (data) {
        if (tokens_open(data, &toks)) {
            fprintf(stderr, "longctx eval: %s\n", lc_last_error());
            goto done;
        }
        have_toks = 1;
    }
    if (task && (!strncmp(task, "niah", 4) || !strcmp(task, "cwe"))) {
        if (words_load(&wl, NULL)) {
            fprintf(stderr, "longctx eval: %s\n", lc_last_error());
            goto done;
        }
        have_words = 1;
    }
    if (task && suite_task_find(task) && suite_task_find(task)->needs_prose) {
        if (haystack_load(&hay, hay_path, tokenizer_byte())) {
            fprintf(stderr, "longctx eval: %s\n", lc_last_error());
            goto done;
        }
        have_hay = 1;
    }
    if (csv) {
        static const char *const cols[] = {"config", "backend", "ckpt", "mode", "task", "L", "n", "loss", "ppl",
                                           "exact_match", "answer_in_topk", "answer_top1", "answer_weight",
                                           "tokens_per_s", "device", "git_sha", "date"};
        if (csv_open(&cw, csv, cols, (int)(sizeof cols / sizeof cols[0]), NULL)) {
            fprintf(stderr, "longctx eval: %s\n", lc_last_error());
            goto done;
        }
        have_csv = 1;
    }
    struct prov pv;
    prov_read(be->is_cuda, &pv);
    if (segment > 0 && !(seg_lg = malloc(sizeof(float) * (size_t)(segment * cfg.vocab)))) {
        fprintf(stderr, "longctx eval: out of memory for the logits of a segment\n");
        goto done;
    }
    for (int li = 0; li < nl; li++) {
        const int64_t T = L[li];
        if (segment > 0) {
            infer_destroy(st);
            st = NULL;
            if (infer_create(&st, &m, T + 1, segment, 0)) {
                fprintf(stderr, "longctx eval: L = %lld: %s\n", (long long)T, lc_last_error());
                goto done;
            }
        }
        if (have_toks) {
            lc_loader ld;
            if (loader_init(&ld, &toks, batch, T, LC_LOADER_SEQUENTIAL, seed, lo, 0)) {
                fprintf(stderr, "longctx eval: %s\n", lc_last_error());
                goto done;
            }
            int32_t *tok = malloc(sizeof(int32_t) * (size_t)(batch * (T + 1)));
            if (!tok) goto done;
            double sum = 0, t0 = lc_now();
            for (int64_t k = 0; k < batches; k++) {
                float loss = 0;
                loader_next(&ld, tok);
                if (segment > 0) {
                    double nll = 0;
                    for (int64_t b = 0; b < batch; b++)
                        if (seg_row(&m, st, tok + b * (T + 1), T, segment, seg_lg, &nll, NULL)) {
                            fprintf(stderr, "longctx eval: L = %lld: %s\n", (long long)T, lc_last_error());
                            free(tok);
                            goto done;
                        }
                    sum += nll / (double)(batch * T);
                    continue;
                }
                if (model_step(&m, batch, T, tok, NULL, 0, &loss)) {
                    fprintf(stderr, "longctx eval: L = %lld: %s\n", (long long)T, lc_last_error());
                    free(tok);
                    goto done;
                }
                sum += loss;
            }
            free(tok);
            double tps = (double)(batches * batch * T) / (lc_now() - t0), loss = sum / batches;
            printf("ppl  L=%-8lld loss %.4f  ppl %.3f  (%lld x %lld tokens, %.0f tok/s)\n", (long long)T, loss, exp(loss),
                   (long long)batches, (long long)(batch * T), tps);
            if (have_csv) {
                char row[2048];
                snprintf(row, sizeof row,
                         "%s" CSV_SEP "%s" CSV_SEP "%s" CSV_SEP "ppl" CSV_SEP CSV_SEP "%lld" CSV_SEP "%lld" CSV_SEP "%.6f" CSV_SEP
                         "%.6f" CSV_SEP CSV_SEP CSV_SEP CSV_SEP CSV_SEP "%.1f" CSV_SEP "%s" CSV_SEP "%s" CSV_SEP "%s",
                         config, be->name, ckpt ? ckpt : "init", (long long)T,
                        (long long)(batches * batch), loss, exp(loss), tps, pv.device, pv.git_sha, pv.date);
                if (csv_append_split(&cw, row, CSV_SEP[0])) fprintf(stderr, "longctx eval: %s\n", lc_last_error());
            }
        }
        if (task) {
            int64_t n_ok = 0, dn = 0, dhit = 0, dtop = 0;
            double dw = 0, t0 = lc_now();
            for (int64_t k = 0; k < samples; k++) {
                struct suite_spec spec;
                memset(&spec, 0, sizeof spec);
                spec.task = task;
                spec.length = T + 1;
                spec.index = k;
                spec.seed = seed;
                spec.words = have_words ? &wl : NULL;
                spec.hay = have_hay ? &hay : NULL;
                spec.want_ids = 1;
                spec.mqar_kv = mqar_kv;
                spec.mqar_vocab = cfg.vocab;
                struct suite_sample s;
                memset(&s, 0, sizeof s);
                if (suite_generate(&spec, &s)) {
                    fprintf(stderr, "longctx eval: %s\n", lc_last_error());
                    goto done;
                }
                int64_t Ts = s.n_ids - 1;
                int32_t *pred = calloc((size_t)s.n_ids, sizeof(int32_t));
                float loss = 0;
                int bad = !pred || Ts < 1;
                if (!bad && segment > 0 && tail) bad = Ts > T || tail_row(&m, st, &s, Ts, pred);
                else if (!bad && segment > 0) bad = Ts > T || seg_row(&m, st, s.ids, Ts, segment, seg_lg, NULL, pred);
                else if (!bad) bad = model_step(&m, 1, Ts, s.ids, NULL, 0, &loss) || model_argmax(&m, pred);
                if (bad) {
                    fprintf(stderr, "longctx eval: L = %lld sample %lld: %s\n", (long long)T, (long long)k, lc_last_error());
                    free(pred);
                    suite_sample_free(&s);
                    goto done;
                }
                n_ok += suite_score_tf(&s, pred, NULL);
                /* diagnostics at the first answer token */
                int64_t t = -1;
                for (int64_t j = 0; j < s.n_targets; j++)
                    if (t < 0 || s.target_pos[j] < t) t = s.target_pos[j];
                if (segment == 0 && cfg.n_groups > 0 && s.n_needles > 0 && t >= 0 && t < Ts) { /* full forward only */
                    int64_t c = s.needles[0].tok0 / cfg.S, nk = Ts * cfg.H_r * cfg.K;
                    int32_t *ix = malloc(sizeof(int32_t) * (size_t)nk);
                    float *wx = malloc(sizeof(float) * (size_t)nk);
                    if (ix && wx && (c + 1) * cfg.S <= t && model_retrieval(&m, 0, ix, wx) == LC_OK) {
                        const int32_t *ii = ix + t * cfg.H_r * cfg.K;
                        const float *ww = wx + t * cfg.H_r * cfg.K;
                        int64_t nvis = t / cfg.S < cfg.K ? t / cfg.S : cfg.K, best = 0;
                        int hit = 0;
                        float wa = 0;
                        for (int64_t q = 0; q < nvis; q++) {
                            if (ww[q] > ww[best]) best = q;
                            if (ii[q] == c) hit = 1, wa = ww[q];
                        }
                        dn++;
                        dhit += hit;
                        dtop += hit && ii[best] == c;
                        dw += wa;
                    }
                    free(ix);
                    free(wx);
                }
                free(pred);
                suite_sample_free(&s);
            }
            double tps = (double)(samples * T) / (lc_now() - t0);
            printf("%s L=%-8lld exact match %.3f (%lld/%lld)", task, (long long)T, (double)n_ok / samples, (long long)n_ok,
                   (long long)samples);
            if (dn) printf("  answer chunk: in top-%lld %.2f, top-1 %.2f, weight %.3f", (long long)cfg.K, (double)dhit / dn,
                           (double)dtop / dn, dw / dn);
            printf("\n");
            if (have_csv) {
                char row[2048];
                snprintf(row, sizeof row,
                         "%s" CSV_SEP "%s" CSV_SEP "%s" CSV_SEP "%s" CSV_SEP "%s" CSV_SEP "%lld" CSV_SEP "%lld" CSV_SEP CSV_SEP
                         CSV_SEP "%.4f" CSV_SEP "%.4f" CSV_SEP "%.4f" CSV_SEP "%.4f" CSV_SEP "%.1f" CSV_SEP "%s" CSV_SEP "%s" CSV_SEP "%s",
                         config, be->name, ckpt ? ckpt : "init", tail ? "task_tail" : "task", task,
                        (long long)T, (long long)samples, (double)n_ok / samples, dn ? (double)dhit / dn : 0.0,
                        dn ? (double)dtop / dn : 0.0, dn ? dw / dn : 0.0, tps, pv.device, pv.git_sha, pv.date);
                if (csv_append_split(&cw, row, CSV_SEP[0])) fprintf(stderr, "longctx eval: %s\n", lc_last_error());
            }
        }
    }
    rc = 0;
done:
    infer_destroy(st);
    free(seg_lg);
    if (have_csv) csv_close(&cw);
    if (have_toks) tokens_close(&toks);
    if (have_words) words_free(&wl);
    if (have_hay) haystack_free(&hay);
    model_destroy(&m);
    return rc;
}
