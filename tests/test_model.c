/* test_model.c — the model through the cpu backend: whole-model gradient check against central
 * finite differences (fp32 loss: step 3e-3 and a bound that fits fp32 rounding, test_model_util.h), on a
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
#include "test_model_util.h"

static const char *tiny_hsa =
    "[model]\nvocab = 32\nd = 32\ncontext = 32\ntied_embeddings = false\nlayers = swa chunk (retrieval hsa swa)*2\n"
    "[attn]\nheads = 4\nkv_heads = 2\ndh = 8\nW = 6\nmlp = 40\nqk_norm = true\n"
    "[encoder]\nlayers = 1\nheads = 2\nkv_heads = 2\ndh = 8\nmlp = 40\ncls = true\nqkv_bias = true\nqk_norm = true\n"
    "[hsa]\nS = 8\nK = 4\nd_r = 16\nretrieval_heads = single\nHQ = 4\nH = 2\ndh = 8\nweights = softmax\nqk_norm = true\nmlp = 40\nresidual = bypass\n"
    "pos_decay = true\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.2\npos_decay = -0.3\n";

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

/* RAMba layout (tiny-mamba-hsa's): Mamba-2 layers, chunk, retrieval, [hsa with plain residual and
 * no MLP, mamba], stick-breaking weights; T not a multiple of S */
static const char *tiny_mamba_hsa =
    "[model]\nvocab = 32\nd = 16\ncontext = 32\ntied_embeddings = true\nlayers = mamba chunk retrieval (hsa mamba)*1\n"
    "[mamba]\nheads = 2\nhead_dim = 8\nstate = 4\nexpand = 1\nconv = 4\nngroups = 1\n"
    "[encoder]\nlayers = 1\nheads = 2\nkv_heads = 2\ndh = 8\nmlp = 24\ncls = true\n"
    "[hsa]\nS = 4\nK = 4\nd_r = 16\nHQ = 4\nH = 1\ndh = 8\nweights = stickbreak\nmlp = 0\nresidual = plain\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.2\n";

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
    grad_check("model_gradcheck_tiny_mamba_hsa_plain", tiny_mamba_hsa, 2, 18);
    overfit_check("model_overfit_tiny_swa_hsa", tiny_hsa, "tiny");
    ckpt_roundtrip();
    diagnostics();
    oracle();
    return t_finish();
}
