/* eval.c — `longctx eval`: a trained (or freshly initialised) model over a list of context
 * lengths: perplexity of a held-out token file (sequential rows of L tokens) and/or teacher-forced
 * exact match of a suite task (suites/suite.h, answer tokens scored), with the retrieval
 * diagnostics of group 0 at each sample's first answer token. One CSV row per (mode, length).
 * Full forward of each row by default (L bounded by activation memory); --segment N feeds each row
 * through segmented prefill (model/infer.h: caches, N tokens at a time, same logits), cpu backend
 * only until the CUDA kernels take a query offset. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "csv.h"
#include "data.h"
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
            "  --segment N         segmented prefill with caches, N tokens at a time (cpu backend; exact)\n"
            "  --csv PATH          append one row per (mode, length)\n");
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

int cmd_eval(int argc, char **argv) {
    const char *config = "tiny-swa-hsa", *ckpt = NULL, *backend = "auto", *data = NULL, *task = NULL, *csv = NULL, *lens = NULL,
               *hay_path = NULL;
    int64_t batches = 4, batch = 1, samples = 8, lo = 0, segment = 0;
    uint64_t seed = 1234;
    int mqar_kv = 16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
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
        else {
            fprintf(stderr, "longctx eval: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!data && !task) {
        fprintf(stderr, "longctx eval: give --data FILE and/or --task NAME\n");
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
    if (segment > 0 && be->is_cuda) {
        fprintf(stderr,
                "longctx eval: --segment on the cuda backend: segmented prefill needs the CUDA attention/HSA kernels' query "
                "offset (Lq, q_pos0), which is not built yet; use --backend cpu\n");
        return 1;
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
                if (!bad && segment > 0) bad = Ts > T || seg_row(&m, st, s.ids, Ts, segment, seg_lg, NULL, pred);
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
                         "%s" CSV_SEP "%s" CSV_SEP "%s" CSV_SEP "task" CSV_SEP "%s" CSV_SEP "%lld" CSV_SEP "%lld" CSV_SEP CSV_SEP
                         CSV_SEP "%.4f" CSV_SEP "%.4f" CSV_SEP "%.4f" CSV_SEP "%.4f" CSV_SEP "%.1f" CSV_SEP "%s" CSV_SEP "%s" CSV_SEP "%s",
                         config, be->name, ckpt ? ckpt : "init", task,
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
