/* test_model.c — the model through the cpu backend: whole-model gradient check against central
 * finite differences (fp32 loss, so a step of 1e-2 and a bound that fits fp32 rounding), on a
 * really tiny swa+hsa model (every layer kind of the HSA-UltraLong layout, GQA, biases, q/k norms,
 * per-token loss weights) and a tiny mamba model; a tiny model overfits one batch; the loss
 * survives a checkpoint round trip through the model. K >= visible chunks in the gradient check,
 * so the top-k selection cannot flip under a perturbation (no gradient flows through it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "model.h"
#include "test.h"

static const char *tiny_hsa =
    "[model]\nvocab = 32\nd = 32\ncontext = 32\ntied_embeddings = false\nlayers = swa chunk (retrieval hsa swa)*2\n"
    "[attn]\nheads = 4\nkv_heads = 2\ndh = 8\nW = 6\nmlp = 40\nqk_norm = true\n"
    "[encoder]\nlayers = 1\nheads = 2\nkv_heads = 2\ndh = 8\nmlp = 40\ncls = true\nqkv_bias = true\nqk_norm = true\n"
    "[hsa]\nS = 8\nK = 4\nd_r = 16\nretrieval_heads = single\nHQ = 4\nH = 2\ndh = 8\nweights = softmax\nqk_norm = true\nmlp = 40\nresidual = bypass\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.2\n";

/* the other options: dense layers, stick-breaking weights, off-by-one softmax, reset residual,
 * per-KV-head retrieval, tied embeddings */
static const char *tiny_variants =
    "[model]\nvocab = 32\nd = 32\ncontext = 32\ntied_embeddings = true\nlayers = dense chunk (retrieval hsa hsa)*1 dense\n"
    "[attn]\nheads = 2\nkv_heads = 2\ndh = 16\nmlp = 40\nqk_norm = false\n"
    "[encoder]\nlayers = 2\nheads = 2\nkv_heads = 1\ndh = 8\nmlp = 40\ncls = true\nqkv_bias = false\nqk_norm = false\n"
    "[hsa]\nS = 4\nK = 8\nd_r = 16\nretrieval_heads = per_kv\nHQ = 4\nH = 2\ndh = 8\nweights = stickbreak\noff_by_one = true\nqk_norm = false\nmlp = 40\nresidual = reset\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.2\n";

static const char *tiny_mamba =
    "[model]\nvocab = 32\nd = 16\ncontext = 16\ntied_embeddings = true\nlayers = mamba*2\n"
    "[mamba]\nheads = 2\nhead_dim = 8\nstate = 4\nexpand = 1\nconv = 4\nngroups = 1\n"
    "[init]\nstd = 0.2\n";

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

/* A tiny model learns one fixed batch: the loss must fall far below ln(V). */
static void overfit(void) {
    t_begin("model_overfit_tiny_swa_hsa");
    lc_config cfg;
    T_OK(lc_config_parse(tiny_hsa, "tiny", &cfg));
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

/* save -> load into a fresh model -> the same loss, bit for bit. */
static void ckpt_roundtrip(void) {
    t_begin("model_checkpoint_roundtrip");
    lc_config cfg;
    T_OK(lc_config_parse(tiny_hsa, "tiny", &cfg));
    lc_model a, b;
    T_OK(model_create(&a, &cfg, backend_cpu(), 21));
    T_OK(model_create(&b, &cfg, backend_cpu(), 22));
    int32_t tok[2 * 33];
    make_batch(2, 32, cfg.vocab, 9, tok, NULL);
    float la = 0, lb = 0;
    T_OK(model_step(&a, 2, 32, tok, NULL, 0, &la));
    T_OK(model_step(&b, 2, 32, tok, NULL, 0, &lb));
    T_CHECK(la != lb, "two seeds gave the same loss %g", la);
    float *p = malloc(sizeof(float) * (size_t)a.n_params);
    model_get_params(&a, p);
    const char *path = "build/test_model_ckpt.bin";
    T_OK(ckpt_save(path, &cfg, 5, p, NULL, NULL));
    memset(p, 0, sizeof(float) * (size_t)a.n_params);
    ckpt_info info;
    T_OK(ckpt_load(path, &cfg, 1, p, NULL, NULL, &info));
    T_OK(model_set_params(&b, p));
    T_OK(model_step(&b, 2, 32, tok, NULL, 0, &lb));
    T_CHECK(la == lb && info.step == 5, "loss after reload %.9g vs %.9g (step %llu)", lb, la, (unsigned long long)info.step);
    remove(path);
    free(p);
    model_destroy(&a);
    model_destroy(&b);
}

/* Collapse diagnostics: with zero-initialised encoder outputs the encoder is the identity at
 * init, so every chunk's CLS output is the CLS vector and the landmarks are all equal
 * (constancy 1); with random encoder outputs they differ. */
static void diagnostics(void) {
    t_begin("model_collapse_diagnostics");
    lc_config a, b;
    T_OK(lc_config_parse(tiny_hsa, "tiny", &a));
    b = a;
    a.zero_encoder_out = 1;
    lc_model ma, mb;
    T_OK(model_create(&ma, &a, backend_cpu(), 3));
    T_OK(model_create(&mb, &b, backend_cpu(), 3));
    int32_t tok[2 * 33];
    make_batch(2, 32, a.vocab, 4, tok, NULL);
    float l = 0;
    struct model_diag da, db;
    T_OK(model_step(&ma, 2, 32, tok, NULL, 0, &l));
    T_OK(model_diagnostics(&ma, &da));
    T_OK(model_step(&mb, 2, 32, tok, NULL, 0, &l));
    T_OK(model_diagnostics(&mb, &db));
    printf("  zero encoder out: const k %.4f v %.4f lmk %.4f enc rms %.3f; random: const k %.4f v %.4f lmk %.4f enc rms %.3f\n",
           da.const_k, da.const_v, da.const_lmk, da.enc_rms, db.const_k, db.const_v, db.const_lmk, db.enc_rms);
    T_CHECK(da.const_lmk > 0.9999, "identity encoder: landmarks should all be equal, constancy %.6f", da.const_lmk);
    T_CHECK(db.const_lmk < 0.99 && db.const_lmk > 0, "random encoder: landmark constancy %.6f", db.const_lmk);
    T_CHECK(da.const_k > 0 && da.const_k < 1 && db.const_v > 0 && db.const_v < 1, "memory constancy out of (0, 1)");
    T_CHECK(da.stream_rms[a.n_layers - 1] > 0 && isfinite(db.enc_rms) && db.enc_rms > 0, "stream / encoder rms");
    model_destroy(&ma);
    model_destroy(&mb);
}

/* Oracle retrieval: the forced chunk is in the selection of every marked token. */
static void oracle(void) {
    t_begin("model_oracle_retrieval");
    lc_config cfg;
    T_OK(lc_config_parse(tiny_hsa, "tiny", &cfg));
    cfg.K = 1;
    lc_model m;
    T_OK(model_create(&m, &cfg, backend_cpu(), 8));
    const int64_t B = 2, T = 32, n = B * T * cfg.H_r * cfg.K;
    int32_t tok[2 * 33], force[2 * 32], idx[2 * 32 * 4];
    make_batch(B, T, cfg.vocab, 6, tok, NULL);
    float l0 = 0, l1 = 0;
    T_OK(model_step(&m, B, T, tok, NULL, 0, &l0));
    T_OK(model_retrieval(&m, 0, idx, NULL));
    int other = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = cfg.S; t < T; t++) other += idx[(b * T + t) * cfg.H_r * cfg.K] != 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) force[b * T + t] = t >= cfg.S ? 0 : -1;
    m.oracle_chunk = force;
    model_zero_grads(&m);
    T_OK(model_step(&m, B, T, tok, NULL, 1, &l1));
    T_OK(model_step(&m, B, T, tok, NULL, 0, &l1));
    for (int g = 0; g < cfg.n_groups; g++) {
        T_OK(model_retrieval(&m, g, idx, NULL));
        int bad = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = cfg.S; t < T; t++) bad += idx[(b * T + t) * cfg.H_r * cfg.K] != 0;
        T_CHECK(bad == 0, "group %d: %d tokens did not get the forced chunk 0", g, bad);
    }
    double gn = 0;
    T_OK(model_grad_norm(&m, &gn));
    printf("  oracle: %d of %lld tokens chose another chunk without it; loss %.4f -> %.4f with it, grad norm %.3f\n", other,
           (long long)(B * (T - cfg.S)), l0, l1, gn);
    T_CHECK(other > 0, "without the oracle every token already chose chunk 0: the test is vacuous");
    T_CHECK(isfinite(gn) && gn > 0, "gradient norm %g", gn);
    (void)n;
    model_destroy(&m);
}

int main(void) {
    grad_check("model_gradcheck_tiny_swa_hsa", tiny_hsa, 2, 32);
    grad_check("model_gradcheck_tiny_variants", tiny_variants, 2, 30);
    grad_check("model_gradcheck_tiny_mamba", tiny_mamba, 2, 16);
    overfit();
    ckpt_roundtrip();
    diagnostics();
    oracle();
    return t_finish();
}
