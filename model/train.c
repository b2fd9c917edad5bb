/* train.c — `longctx train`: AdamW training of a config/preset on either backend, on a token file
 * and/or a stream of synthetic suite tasks (per-token loss weights from the task generator:
 * answer tokens only), with warm-up + cosine learning rate, global-norm gradient clipping,
 * checkpoints saved and resumed, and a log line per interval: loss, lr, gradient norm,
 * tokens/s and, for suite tasks, retrieval diagnostics of group 0 at each sample's first answer
 * token: how often the chunk holding needles[0] is among the K selected (hit), is the top-weighted
 * slot (top) and the weight it gets (w). Batches are pure functions of (seed, step), so a resumed
 * run sees the same data as an uninterrupted one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "csv.h"
#include "cli.h"
#include "data.h"
#include "model.h"
#include "provenance.h"
#include "haystack.h"
#include "suite.h"
#include "tokenizer.h"
#include "train.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: longctx train [options]\n"
            "  --config NAME|PATH  preset or config file (default tiny-swa-hsa)\n"
            "  --backend B         cpu | cuda | auto (default auto: cuda when a device is usable)\n"
            "  --data FILE         token file (longctx tokenize); rows drawn at random positions\n"
            "  --task A[,B,..]     synthetic suite task stream (mqar, copy, tok_sniah, tok_mqniah, tok_vt, passkey, ...);\n"
            "                      loss on the task's answer tokens only; several tasks take turns by row\n"
            "  --mix P             with both --data and --task: fraction of rows from the task (default 0.5)\n"
            "  --steps N           optimizer steps (default 100)      --batch B  rows per step (default 8)\n"
            "  --seq T             tokens per row (default: the config's context)\n"
            "  --lr X              peak learning rate (default 1e-3)   --min-lr-frac F  cosine floor (default 0.1)\n"
            "  --warmup N          linear warm-up steps (default 10)   --wd X  AdamW weight decay (default 0.1)\n"
            "  --clip X            global gradient-norm clip (default 1.0; 0 = off)\n"
            "  --seed S            init and data seed (default 1)\n"
            "  --save PATH         checkpoint at the end and every --save-every steps\n"
            "  --resume PATH       continue from a checkpoint (weights, AdamW state, step)\n"
            "  --stop-after N      stop (and save) after step N of the --steps schedule (resume later)\n"
            "  --log-every N       log interval (default 10)          --csv PATH  append one row per log line\n"
            "  --haystack FILE     prose haystack for tasks that need one (default: the Jargon File)\n"
            "  --mqar-kv N         mqar key-value pairs (default 16)\n"
            "  --profile N         cuda: after 3 warm-up steps, time every backend op of the next N steps with CUDA\n"
            "                      events and print device time per op and per layer kind (stderr)\n");
}

/* lr at step s (0-based): linear warm-up to peak, then cosine to peak * floor at the last step. */
double train_lr(double peak, double floor_frac, int64_t warmup, int64_t steps, int64_t s) {
    if (warmup > 0 && s < warmup) return peak * (double)(s + 1) / (double)warmup;
    double span = (double)(steps - warmup);
    double p = span > 0 ? (double)(s - warmup) / span : 1.0;
    if (p > 1) p = 1;
    double c = 0.5 * (1.0 + cos(M_PI * p));
    return peak * (floor_frac + (1.0 - floor_frac) * c);
}

struct diag {
    int64_t n, hit, top;
    double w;
};

/* One row of a suite task: tokens [T+1], weights [T] (answer tokens), first answer position and
 * the chunk of needles[0] (-1 when unknown). */
static lc_status task_row(const char *task, int64_t T, int64_t index, uint64_t seed, int mqar_kv, int64_t vocab,
                          const struct word_lists *wl, const struct haystack *hay, int32_t *tok, float *w, int64_t *first_target, int64_t *needle_tok) {
    struct suite_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.task = task;
    spec.length = T + 1;
    spec.index = index;
    spec.seed = seed;
    spec.words = wl;
    spec.hay = hay;
    spec.want_ids = 1;
    spec.mqar_kv = mqar_kv;
    spec.mqar_vocab = vocab;
    struct suite_sample s;
    memset(&s, 0, sizeof s);
    LC_TRY(suite_generate(&spec, &s));
    lc_status st = LC_OK;
    if (s.n_ids < T + 1) {
        st = lc_errorf(LC_EINVAL, "train: task %s gave %lld tokens for a row of %lld", task, (long long)s.n_ids, (long long)(T + 1));
    } else {
        float *wf = malloc(sizeof(float) * (size_t)s.n_ids);
        if (!wf) st = lc_errorf(LC_ENOMEM, "train: loss weights");
        else {
            suite_loss_weights(&s, wf);
            for (int64_t t = 0; t <= T; t++) {
                tok[t] = s.ids[t];
                if (tok[t] < 0 || tok[t] >= vocab) st = lc_errorf(LC_EINVAL, "train: task %s token %d >= vocab %lld", task, tok[t], (long long)vocab);
            }
            for (int64_t t = 0; t < T; t++) w[t] = wf[t];
            free(wf);
        }
        *first_target = -1;
        for (int64_t j = 0; j < s.n_targets; j++)
            if (s.target_pos[j] < T && (*first_target < 0 || s.target_pos[j] < *first_target)) *first_target = s.target_pos[j];
        *needle_tok = s.n_needles > 0 ? s.needles[0].tok0 : -1;
    }
    suite_sample_free(&s);
    return st;
}

static lc_status save_ckpt(const char *path, lc_model *m, int64_t step) {
    size_t pb = (size_t)m->n_params * sizeof(float);
    float *p = malloc(pb), *am = malloc(pb), *av = malloc(pb);
    lc_status st = (!p || !am || !av) ? lc_errorf(LC_ENOMEM, "checkpoint buffers") : LC_OK;
    if (st == LC_OK) st = model_get_params(m, p);
    if (st == LC_OK && m->adam_m) st = m->be->download(am, m->adam_m, pb);
    if (st == LC_OK && m->adam_v) st = m->be->download(av, m->adam_v, pb);
    if (st == LC_OK) st = ckpt_save(path, &m->cfg, (uint64_t)step, p, m->adam_m ? am : NULL, m->adam_v ? av : NULL);
    free(p);
    free(am);
    free(av);
    return st;
}

static lc_status load_ckpt(const char *path, lc_model *m, int64_t *step) {
    size_t pb = (size_t)m->n_params * sizeof(float);
    float *p = malloc(pb), *am = malloc(pb), *av = malloc(pb);
    ckpt_info info;
    lc_status st = (!p || !am || !av) ? lc_errorf(LC_ENOMEM, "checkpoint buffers") : LC_OK;
    if (st == LC_OK) st = ckpt_load(path, &m->cfg, 1, p, am, av, &info);
    if (st == LC_OK) st = model_set_params(m, p);
    if (st == LC_OK && info.has_optimizer) {
        if (!m->adam_m) m->adam_m = m->be->alloc(pb, "AdamW m");
        if (!m->adam_v) m->adam_v = m->be->alloc(pb, "AdamW v");
        if (!m->adam_m || !m->adam_v) st = LC_ENOMEM;
        if (st == LC_OK) st = m->be->upload(m->adam_m, am, pb);
        if (st == LC_OK) st = m->be->upload(m->adam_v, av, pb);
    }
    if (st == LC_OK) *step = (int64_t)info.step;
    free(p);
    free(am);
    free(av);
    return st;
}

int cmd_train(int argc, char **argv) {
    const char *config = "tiny-swa-hsa", *backend = "auto", *data = NULL, *task = NULL, *save = NULL, *resume = NULL, *csv = NULL,
               *hay_path = NULL;
    double mix = 0.5, lr = 1e-3, min_frac = 0.1, wd = 0.1, clip = 1.0;
    int64_t steps = 100, batch = 8, seq = 0, warmup = 10, log_every = 10, save_every = 0, stop_after = 0;
    uint64_t seed = 1;
    int mqar_kv = 16;
    int64_t profile = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "longctx train: '%s' needs a value (or is unknown)\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) config = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--task")) task = v;
        else if (!strcmp(a, "--mix")) mix = atof(v);
        else if (!strcmp(a, "--steps")) steps = atoll(v);
        else if (!strcmp(a, "--batch")) batch = atoll(v);
        else if (!strcmp(a, "--seq")) seq = atoll(v);
        else if (!strcmp(a, "--lr")) lr = atof(v);
        else if (!strcmp(a, "--min-lr-frac")) min_frac = atof(v);
        else if (!strcmp(a, "--warmup")) warmup = atoll(v);
        else if (!strcmp(a, "--wd")) wd = atof(v);
        else if (!strcmp(a, "--clip")) clip = atof(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--save")) save = v;
        else if (!strcmp(a, "--save-every")) save_every = atoll(v);
        else if (!strcmp(a, "--resume")) resume = v;
        else if (!strcmp(a, "--stop-after")) stop_after = atoll(v);
        else if (!strcmp(a, "--log-every")) log_every = atoll(v);
        else if (!strcmp(a, "--csv")) csv = v;
        else if (!strcmp(a, "--mqar-kv")) mqar_kv = atoi(v);
        else if (!strcmp(a, "--haystack")) hay_path = v;
        else if (!strcmp(a, "--profile")) profile = atoll(v);
        else {
            fprintf(stderr, "longctx train: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!data && !task) {
        fprintf(stderr, "longctx train: give --data FILE and/or --task NAME\n");
        return 2;
    }
    if (steps < 1 || batch < 1 || log_every < 1 || mix < 0 || mix > 1) {
        fprintf(stderr, "longctx train: --steps, --batch, --log-every must be >= 1 and --mix in [0, 1]\n");
        return 2;
    }
    if (!data) mix = 1;
    if (!task) mix = 0;
    lc_config cfg;
    if (lc_config_load(config, &cfg)) {
        fprintf(stderr, "longctx train: %s\n", lc_last_error());
        return 1;
    }
    const struct backend *be = backend_by_name(backend);
    if (!be) {
        fprintf(stderr, "longctx train: %s\n", lc_last_error());
        return 1;
    }
    const int64_t T = seq > 0 ? seq : cfg.context, B = batch;
    lc_tokens toks;
    lc_loader loader;
    int have_toks = 0, have_words = 0, rc = 1;
    struct word_lists wl;
    struct haystack hay;
    int have_hay = 0;
    lc_model m;
    memset(&m, 0, sizeof m);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(B * (T + 1))), *ftok = malloc(sizeof(int32_t) * (size_t)(B * (T + 1)));
    float *w = malloc(sizeof(float) * (size_t)(B * T));
    int64_t *first = malloc(sizeof(int64_t) * (size_t)B), *needle = malloc(sizeof(int64_t) * (size_t)B);
    int32_t *ridx = NULL, *oracle = NULL;
    int64_t forced_rows = 0;
    float *rw = NULL;
    struct csv_writer cw;
    int have_csv = 0;
    if (!tok || !ftok || !w || !first || !needle) {
        fprintf(stderr, "longctx train: out of host memory for a batch of %lld x %lld\n", (long long)B, (long long)T);
        goto done;
    }
    if (data) {
        if (tokens_open(data, &toks) || loader_init(&loader, &toks, B, T, LC_LOADER_RANDOM, seed, 0, 0)) {
            fprintf(stderr, "longctx train: %s\n", lc_last_error());
            goto done;
        }
        have_toks = 1;
        if ((int64_t)toks.vocab > cfg.vocab) {
            fprintf(stderr, "longctx train: %s has vocab %lld > the model's %lld\n", data, (long long)toks.vocab, (long long)cfg.vocab);
            goto done;
        }
    }
    /* the task list: comma-separated names */
    char task_buf[512], *tasks[16];
    int n_tasks = 0;
    if (task) {
        snprintf(task_buf, sizeof task_buf, "%s", task);
        for (char *p = strtok(task_buf, ","); p && n_tasks < 16; p = strtok(NULL, ",")) tasks[n_tasks++] = p;
    }
    for (int k = 0; k < n_tasks; k++) {
        const char *tk = tasks[k];
        if (!suite_task_find(tk)) {
            fprintf(stderr, "longctx train: %s\n", lc_last_error());
            goto done;
        }
        if (!have_words && (!strncmp(tk, "niah", 4) || !strcmp(tk, "cwe"))) {
            if (words_load(&wl, NULL)) {
                fprintf(stderr, "longctx train: %s\n", lc_last_error());
                goto done;
            }
            have_words = 1;
        }
        if (!have_hay && suite_task_find(tk)->needs_prose) {
            if (haystack_load(&hay, hay_path, tokenizer_byte())) {
                fprintf(stderr, "longctx train: %s\n", lc_last_error());
                goto done;
            }
            have_hay = 1;
        }
    }
    if (model_create(&m, &cfg, be, seed)) {
        fprintf(stderr, "longctx train: %s\n", lc_last_error());
        goto done;
    }
    m.training = 1;
    int64_t step0 = 0;
    if (resume) {
        if (load_ckpt(resume, &m, &step0)) {
            fprintf(stderr, "longctx train: %s\n", lc_last_error());
            goto done;
        }
        fprintf(stderr, "longctx train: resumed %s at step %lld\n", resume, (long long)step0);
    }
    int has_ret = cfg.n_groups > 0;
    if (has_ret && cfg.oracle == LC_ORACLE_FORCE) {
        if (!(oracle = malloc(sizeof(int32_t) * (size_t)(B * T)))) goto done;
        fprintf(stderr, "longctx train: oracle retrieval ON (EXTRA SUPERVISION): the answer chunk is forced into the selection "
                        "with probability %.2f for %lld steps, then decaying to 0 over %lld steps\n",
                cfg.oracle_prob, (long long)cfg.oracle_hold, (long long)cfg.oracle_decay);
    }
    if (has_ret) {
        ridx = malloc(sizeof(int32_t) * (size_t)(B * T * cfg.H_r * cfg.K));
        rw = malloc(sizeof(float) * (size_t)(B * T * cfg.H_r * cfg.K));
        if (!ridx || !rw) goto done;
    }
    if (csv) {
        static const char *const cols[] = {"config", "backend", "step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu_6n",
                                           "mfu", "task", "diag_n", "answer_in_topk", "answer_top1", "answer_weight", "const_k",
                                           "const_v", "const_lmk", "enc_rms", "out_rms", "B", "T", "params", "device",
                                           "git_sha", "date"};
        if (csv_open(&cw, csv, cols, (int)(sizeof cols / sizeof cols[0]), NULL)) {
            fprintf(stderr, "longctx train: %s\n", lc_last_error());
            goto done;
        }
        have_csv = 1;
    }
    fprintf(stderr, "longctx train: %s on %s, %lld parameters, batch %lld x %lld, %lld steps\n", config, be->name,
            (long long)m.n_params, (long long)B, (long long)T, (long long)steps);
    const double flops_tok = model_train_flops(&cfg, B, T, NULL) / (double)(B * T);
    fprintf(stderr, "longctx train: %.4g model FLOPs per token (%.4g per step; 6N = %.4g per token)\n", flops_tok,
            flops_tok * (double)(B * T), 6.0 * (double)m.n_params);
    struct diag dg = {0, 0, 0, 0};
    double t_last = lc_now(), loss_acc = 0, gn_last = 0, t_prof = 0;
    int64_t n_acc = 0, tok_acc = 0;
    const int64_t end = stop_after > 0 && stop_after < steps ? stop_after : steps;
    for (int64_t s = step0; s < end; s++) {
        /* the batch of step s */
        if (have_toks) {
            loader_seek(&loader, s);
            loader_next(&loader, ftok);
        }
        lc_rng r;
        lc_rng_seed(&r, lc_hash3(seed, (uint64_t)s, 77));
        int any_task = 0, any_forced = 0;
        double oprob = oracle ? lc_config_oracle_prob(&cfg, s) : 0;
        for (int64_t b = 0; b < B; b++) {
            first[b] = needle[b] = -1;
            int use_task = task && (!have_toks || lc_rng_uniform(&r) < mix);
            if (use_task) {
                any_task = 1;
                if (task_row(tasks[(s * B + b) % n_tasks], T, s * B + b, seed, mqar_kv, cfg.vocab, have_words ? &wl : NULL, have_hay ? &hay : NULL, tok + b * (T + 1), w + b * T,
                             &first[b], &needle[b])) {
                    fprintf(stderr, "longctx train: %s\n", lc_last_error());
                    goto done;
                }
            } else {
                memcpy(tok + b * (T + 1), ftok + b * (T + 1), sizeof(int32_t) * (size_t)(T + 1));
                for (int64_t t = 0; t < T; t++) w[b * T + t] = 1.0f;
            }
            if (oracle) {
                int force = use_task && needle[b] >= 0 && lc_rng_uniform(&r) < oprob;
                for (int64_t t = 0; t < T; t++) oracle[b * T + t] = force && w[b * T + t] > 0 ? (int32_t)(needle[b] / cfg.S) : -1;
                if (force) {
                    any_forced = 1;
                    forced_rows++;
                    first[b] = -1; /* forced rows are left out of the retrieval statistics */
                }
            }
        }
        m.oracle_chunk = any_forced ? oracle : NULL;
        const int64_t prof_lo = step0 + 3, prof_hi = step0 + 3 + profile;
        if (profile > 0 && be->is_cuda && s == prof_lo) {
            be->sync();
            m.be = backend_profiled(be);
            t_prof = lc_now();
        }
        float loss = 0;
        double gn = 0;
        if (model_zero_grads(&m) || model_step(&m, B, T, tok, w, 1, &loss) || model_grad_norm(&m, &gn)) {
            fprintf(stderr, "longctx train: step %lld: %s\n", (long long)s, lc_last_error());
            goto done;
        }
        if (!isfinite(loss) || !isfinite(gn)) {
            fprintf(stderr, "longctx train: step %lld: loss %g, gradient norm %g: not finite, stopping\n", (long long)s, loss, gn);
            goto done;
        }
        struct ops_adamw h = {(float)train_lr(lr, min_frac, warmup, steps, s), 0.9f, 0.95f, 1e-8f, (float)wd,
                              (float)(clip > 0 && gn > clip ? clip / gn : 1.0), s + 1};
        backend_prof_section("optimizer");
        if (model_adamw(&m, &h)) {
            fprintf(stderr, "longctx train: step %lld: %s\n", (long long)s, lc_last_error());
            goto done;
        }
        /* retrieval diagnostics (group 0) at each task row's first answer token */
        if (has_ret && any_task && model_retrieval(&m, 0, ridx, rw) == LC_OK) {
            for (int64_t b = 0; b < B; b++) {
                int64_t t = first[b], c = needle[b] >= 0 ? needle[b] / cfg.S : -1;
                if (t < 0 || c < 0 || (c + 1) * cfg.S > t) continue; /* answer chunk not visible yet */
                const int32_t *ix = ridx + ((b * T + t) * cfg.H_r) * cfg.K;
                const float *wx = rw + ((b * T + t) * cfg.H_r) * cfg.K;
                int64_t nvis = t / cfg.S < cfg.K ? t / cfg.S : cfg.K, best = 0;
                float wa = 0;
                int hit = 0;
                for (int64_t k = 0; k < nvis; k++) {
                    if (wx[k] > wx[best]) best = k;
                    if (ix[k] == c) {
                        hit = 1;
                        wa = wx[k];
                    }
                }
                dg.n++;
                dg.hit += hit;
                dg.top += hit && ix[best] == c;
                dg.w += wa;
            }
        }
        loss_acc += loss;
        gn_last = gn;
        n_acc++;
        tok_acc += B * T;
        if (profile > 0 && m.be != be && (s + 1 == prof_hi || s + 1 == end)) {
            /* the profiled steps (and the report) stay out of tokens/s */
            be->sync();
            double now = lc_now(), wall = (now - t_prof) * 1e3;
            m.be = be;
            backend_prof_report(stderr, (int)(s + 1 - prof_lo), wall);
            t_last += lc_now() - t_prof;
            tok_acc -= (s + 1 - prof_lo) * B * T;
        }
        if ((s + 1) % log_every == 0 || s + 1 == end) {
            be->sync();
            double now = lc_now(), tps = tok_acc / (now - t_last);
            /* MFU against 800 TFLOP/s (the H100's measured 802 bf16, results/device_limits.csv); 0 on
             * the cpu. mfu: model FLOPs with attention / HSA / scan (model_train_flops, model.h);
             * mfu_6n: 6 N per token, parameters only (the old figure, kept for comparison). */
            double mfu = be->is_cuda ? flops_tok * tps / 800e12 : 0.0;
            double mfu6 = be->is_cuda ? 6.0 * (double)m.n_params * tps / 800e12 : 0.0;
            fprintf(stderr, "step %6lld  loss %.4f  lr %.2e  gnorm %.3f  %.0f tok/s", (long long)(s + 1), loss_acc / n_acc,
                    h.lr, gn_last, tps);
            if (be->is_cuda) fprintf(stderr, "  mfu %.3f (6N %.3f)", mfu, mfu6);
            /* collapse diagnostics: a forward-only pass over this step's batch with the new weights */
            struct model_diag cd;
            memset(&cd, 0, sizeof cd);
            float dl = 0;
            if (model_step(&m, B, T, tok, w, 0, &dl) || model_diagnostics(&m, &cd)) {
                fprintf(stderr, "\nlongctx train: diagnostics: %s\n", lc_last_error());
                goto done;
            }
            if (oracle) fprintf(stderr, "  oracle p %.2f forced rows %lld", oprob, (long long)forced_rows);
            forced_rows = 0;
            if (has_ret) fprintf(stderr, "  memory const k %.3f v %.3f lmk %.3f, encoder rms %.2f", cd.const_k, cd.const_v, cd.const_lmk, cd.enc_rms);
            fprintf(stderr, "  out rms %.2f", cd.stream_rms[cfg.n_layers - 1]);
            if (dg.n)
                fprintf(stderr, "  answer chunk: in top-%lld %.2f, top-1 %.2f, weight %.3f (n=%lld)", (long long)cfg.K,
                        (double)dg.hit / dg.n, (double)dg.top / dg.n, dg.w / dg.n, (long long)dg.n);
            fprintf(stderr, "\n");
            if (have_csv) {
                struct prov pv;
                prov_read(be->is_cuda, &pv);
                char row[2048];
                snprintf(row, sizeof row,
                         "%s" CSV_SEP "%s" CSV_SEP "%lld" CSV_SEP "%.6f" CSV_SEP "%.6g" CSV_SEP "%.6g" CSV_SEP "%.1f" CSV_SEP
                         "%.4f" CSV_SEP "%.4f" CSV_SEP "%s" CSV_SEP "%lld" CSV_SEP "%.4f" CSV_SEP "%.4f" CSV_SEP "%.4f" CSV_SEP "%.5f" CSV_SEP
                         "%.5f" CSV_SEP "%.5f" CSV_SEP "%.4f" CSV_SEP "%.4f" CSV_SEP "%lld" CSV_SEP "%lld" CSV_SEP "%lld" CSV_SEP
                         "%s" CSV_SEP "%s" CSV_SEP "%s",
                         config, be->name, (long long)(s + 1), loss_acc / n_acc, h.lr, gn_last, tps, mfu6, mfu, task ? task : "",
                         (long long)dg.n, dg.n ? (double)dg.hit / dg.n : 0.0, dg.n ? (double)dg.top / dg.n : 0.0,
                         dg.n ? dg.w / dg.n : 0.0, cd.const_k, cd.const_v, cd.const_lmk, cd.enc_rms,
                         cd.stream_rms[cfg.n_layers - 1], (long long)B, (long long)T, (long long)m.n_params, pv.device,
                         pv.git_sha, pv.date);
                if (csv_append_split(&cw, row, CSV_SEP[0])) fprintf(stderr, "longctx train: %s\n", lc_last_error());
            }
            t_last = lc_now();
            loss_acc = 0;
            n_acc = tok_acc = 0;
            memset(&dg, 0, sizeof dg);
        }
        if (save && save_every > 0 && (s + 1) % save_every == 0 && save_ckpt(save, &m, s + 1)) {
            fprintf(stderr, "longctx train: %s\n", lc_last_error());
            goto done;
        }
    }
    if (save) {
        if (save_ckpt(save, &m, end > step0 ? end : step0)) {
            fprintf(stderr, "longctx train: %s\n", lc_last_error());
            goto done;
        }
        fprintf(stderr, "longctx train: saved %s (step %lld)\n", save, (long long)(end > step0 ? end : step0));
    }
    rc = 0;
done:
    if (have_csv) csv_close(&cw);
    model_destroy(&m);
    if (have_toks) tokens_close(&toks);
    if (have_words) words_free(&wl);
    if (have_hay) haystack_free(&hay);
    free(tok);
    free(ftok);
    free(w);
    free(first);
    free(needle);
    free(ridx);
    free(rw);
    free(oracle);
    return rc;
}
