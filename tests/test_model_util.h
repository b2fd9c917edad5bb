/* test_model_util.h — shared by the whole-model tests (test_model.c, test_model_gca.c): a random
 * token batch, the whole-model gradient check against central finite differences (fp32 loss,
 * step 3e-3, bound 1.5e-4 + 3% |grad|, on 3 entries of every tensor, one of them its largest
 * gradient), and the one-batch overfit check. Include after test.h and model.h. */
#ifndef LONGCTX_TEST_MODEL_UTIL_H
#define LONGCTX_TEST_MODEL_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "test.h"

static void make_batch(int64_t B, int64_t T, int64_t V, uint64_t seed, int32_t *tok, float *w) {
    lc_rng r;
    lc_rng_seed(&r, seed);
    for (int64_t i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)lc_rng_below(&r, (uint64_t)V);
    for (int64_t i = 0; w && i < B * T; i++) w[i] = i % 5 == 0 ? 0.0f : (float)(0.5 + lc_rng_uniform(&r));
}

/* Central differences on a sample of every tensor's entries. */
static void grad_check(const char *name, const char *text, int64_t B, int64_t T) {
    t_begin(name);
    lc_config cfg;
    if (lc_config_parse(text, name, &cfg) != LC_OK) {
        T_CHECK(0, "config: %s", lc_last_error());
        return;
    }
    lc_model m;
    lc_status st = model_create(&m, &cfg, backend_cpu(), 7);
    T_OK(st);
    if (st) return;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(B * (T + 1)));
    float *w = malloc(sizeof(float) * (size_t)(B * T));
    make_batch(B, T, cfg.vocab, 11, tok, w);
    float *p = malloc(sizeof(float) * (size_t)m.n_params), *g = malloc(sizeof(float) * (size_t)m.n_params);
    model_get_params(&m, p);
    float loss0 = 0;
    model_zero_grads(&m);
    T_OK(model_step(&m, B, T, tok, w, 1, &loss0));
    model_get_grads(&m, g);
    T_CHECK(isfinite(loss0) && loss0 > 1.0f, "loss %g", loss0);
    lc_rng r;
    lc_rng_seed(&r, 3);
    const float h = getenv("GC_H") ? (float)atof(getenv("GC_H")) : 3e-3f;
    int bad = 0, checked = 0, nonzero = 0;
    double worst = 0;
    char worst_name[200] = "";
    for (int64_t t = 0; t < m.n_tensors; t++) {
        const lc_param *pt = &m.tensors[t];
        double gmax = 0;
        for (int64_t j = 0; j < pt->numel; j++) gmax = fmax(gmax, fabs(g[pt->offset + j]));
        for (int s = 0; s < 3; s++) {
            int64_t j = pt->offset + (int64_t)lc_rng_below(&r, (uint64_t)pt->numel);
            if (s == 0) { /* also the largest gradient entry of the tensor */
                for (int64_t k = 0; k < pt->numel; k++)
                    if (fabs(g[pt->offset + k]) == gmax) { j = pt->offset + k; break; }
            }
            float keep = p[j], lp = 0, lm = 0;
            p[j] = keep + h;
            model_set_params(&m, p);
            model_step(&m, B, T, tok, w, 0, &lp);
            p[j] = keep - h;
            model_set_params(&m, p);
            model_step(&m, B, T, tok, w, 0, &lm);
            p[j] = keep;
            double fd = ((double)lp - lm) / (2.0 * h), an = g[j];
            /* fp32 loss: rounding ~1e-6 / (2h) ~ 2e-4 at worst, plus O(h^2) curvature */
            double err = fabs(fd - an), tol = 1.5e-4 + 0.03 * fabs(an);
            checked++;
            nonzero += fabs(an) > 1e-4;
            if (err / tol > worst) {
                worst = err / tol;
                snprintf(worst_name, sizeof worst_name, "%s[%lld] fd %.6f an %.6f", pt->name, (long long)(j - pt->offset), fd, an);
            }
            if (err > tol) {
                if (bad < 8) printf("  %s[%lld]: fd %.6g analytic %.6g\n", pt->name, (long long)(j - pt->offset), fd, an);
                bad++;
            }
        }
        T_CHECK(gmax > 0, "tensor %s has an all-zero gradient", pt->name);
    }
    model_set_params(&m, p);
    printf("  %s: %d entries of %lld tensors checked, %d with |grad| > 1e-4, worst err/tol %.3f (%s)\n", name, checked,
           (long long)m.n_tensors, nonzero, worst, worst_name);
    T_CHECK(bad == 0, "%d of %d gradient entries disagree with finite differences", bad, checked);
    T_CHECK(nonzero > checked / 2, "only %d of %d sampled gradients are non-negligible", nonzero, checked);
    free(tok);
    free(w);
    free(p);
    free(g);
    model_destroy(&m);
}

/* A tiny model (config text `text`) learns one fixed batch: the loss must fall far below ln(V). */
static void overfit_check(const char *case_name, const char *text, const char *cfg_name) {
    t_begin(case_name);
    lc_config cfg;
    if (!T_OK(lc_config_parse(text, cfg_name, &cfg))) return;
    cfg.init_std = 0.02;
    lc_model m;
    T_OK(model_create(&m, &cfg, backend_cpu(), 1));
    const int64_t B = 2, T = 32;
    int32_t tok[2 * 33];
    make_batch(B, T, cfg.vocab, 5, tok, NULL);
    float first = 0, loss = 0;
    struct ops_adamw h = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, 0};
    for (int it = 0; it < 150; it++) {
        model_zero_grads(&m);
        T_OK(model_step(&m, B, T, tok, NULL, 1, &loss));
        if (it == 0) first = loss;
        h.step = it + 1;
        T_OK(model_adamw(&m, &h));
    }
    model_step(&m, B, T, tok, NULL, 0, &loss);
    printf("  overfit: loss %.4f -> %.4f (ln V = %.4f)\n", first, loss, log(32.0));
    T_CHECK(first > 3.0f, "initial loss %g should be near ln 32", first);
    T_CHECK(loss < 0.5f, "loss after 150 AdamW steps on one batch %g >= 0.5", loss);
    model_destroy(&m);
}

#endif
