/* gpu_model.c — the CUDA model equals the CPU model within bf16 tolerance: same config, same
 * initial weights, same batch; the forward loss and every parameter tensor's gradient are compared
 * (relative L2 error per tensor). Configs: tiny-swa-hsa's layout (with non-zero output inits, so
 * that every tensor gets a gradient), GCA (tiny-swa-gca's layout), a dense model, a Mamba-2 model at a (P, N) the CUDA scan
 * supports and RAMba (Mamba-2 + HSA with the plain residual). Also: a few AdamW steps on the GPU lower the loss on a fixed batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "model.h"
#include "test.h"

static const char *cfg_swa_hsa =
    "[model]\nvocab = 256\nd = 256\ncontext = 512\ntied_embeddings = false\nlayers = swa*2 chunk (retrieval hsa swa)*2\n"
    "[attn]\nheads = 8\nkv_heads = 8\ndh = 32\nW = 128\nqk_norm = true\nmlp = 768\n"
    "[encoder]\nlayers = 1\ncls = true\nheads = 8\nkv_heads = 8\ndh = 32\nmlp = 768\nqkv_bias = true\nqk_norm = true\n"
    "[hsa]\nS = 64\nK = 8\nd_r = 256\nretrieval_heads = single\nHQ = 16\nH = 1\ndh = 32\nweights = softmax\nqk_norm = true\nmlp = 768\n"
    "pos_decay = true\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.05\npos_decay = 0.2\n";
/* GCA (tiny-swa-gca's layout): chunk-level retrieval (block_q = S), encoder without CLS (landmark =
 * mean), SWA inside each hsa layer, off-by-one; T = 320 + 17 is not a multiple of S. */
static const char *cfg_gca =
    "[model]\nvocab = 256\nd = 256\ncontext = 512\ntied_embeddings = true\nlayers = swa*2 chunk (retrieval hsa*2)\n"
    "[attn]\nheads = 8\nkv_heads = 8\ndh = 32\nW = 128\nmlp = 768\n"
    "[encoder]\nlayers = 1\ncls = false\nheads = 8\nkv_heads = 8\ndh = 32\nmlp = 768\n"
    "[hsa]\nS = 64\nK = 8\nd_r = 256\nHQ = 8\nH = 8\ndh = 32\noff_by_one = true\nblock_q = 64\nmlp = 768\n"
    "residual = bypass\nswa_inside = true\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.05\n";
/* RAMba (tiny-mamba-hsa's layout): hsa with plain residual and no MLP between Mamba-2 layers,
 * stick-breaking weights. */
static const char *cfg_mamba_hsa =
    "[model]\nvocab = 256\nd = 256\ncontext = 512\ntied_embeddings = true\nlayers = mamba chunk retrieval (hsa mamba)*2\n"
    "[mamba]\nheads = 16\nhead_dim = 32\nstate = 64\nexpand = 2\nconv = 4\nngroups = 1\n"
    "[encoder]\nlayers = 1\ncls = true\nheads = 8\nkv_heads = 8\ndh = 32\nmlp = 768\n"
    "[hsa]\nS = 64\nK = 8\nd_r = 256\nHQ = 16\nH = 1\ndh = 32\nweights = stickbreak\nmlp = 0\nresidual = plain\n"
    "[init]\nzero_hsa_out = false\nzero_encoder_out = false\nstd = 0.05\n";
static const char *cfg_dense =
    "[model]\nvocab = 256\nd = 256\ncontext = 512\nlayers = dense*2\n[attn]\nheads = 4\nkv_heads = 2\ndh = 64\nmlp = 512\n";
static const char *cfg_mamba =
    "[model]\nvocab = 256\nd = 128\ncontext = 512\ntied_embeddings = true\nlayers = mamba*2\n"
    "[mamba]\nheads = 8\nhead_dim = 32\nstate = 64\nexpand = 2\nconv = 4\nngroups = 1\n";

static void compare(const char *name, const char *text, int64_t B, int64_t T) {
    t_begin(name);
    lc_config cfg;
    if (lc_config_parse(text, name, &cfg)) {
        T_CHECK(0, "config: %s", lc_last_error());
        return;
    }
    lc_model mc, mg;
    T_OK(model_create(&mc, &cfg, backend_cpu(), 5));
    lc_status st = model_create(&mg, &cfg, backend_cuda(), 5);
    T_OK(st);
    if (st) return;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(B * (T + 1)));
    float *w = malloc(sizeof(float) * (size_t)(B * T));
    lc_rng r;
    lc_rng_seed(&r, 42);
    for (int64_t i = 0; i < B * (T + 1); i++) tok[i] = (int32_t)lc_rng_below(&r, 256);
    for (int64_t i = 0; i < B * T; i++) w[i] = (float)(0.25 + lc_rng_uniform(&r));
    float lc = 0, lg = 0;
    double t0 = lc_now();
    model_zero_grads(&mc);
    T_OK(model_step(&mc, B, T, tok, w, 1, &lc));
    double t1 = lc_now();
    model_zero_grads(&mg);
    T_OK(model_step(&mg, B, T, tok, w, 1, &lg));
    lc_cuda_sync();
    double t2 = lc_now();
    float *gc = malloc(sizeof(float) * (size_t)mc.n_params), *gg = malloc(sizeof(float) * (size_t)mc.n_params);
    model_get_grads(&mc, gc);
    model_get_grads(&mg, gg);
    double worst = 0;
    const char *wname = "";
    for (int64_t t = 0; t < mc.n_tensors; t++) {
        const lc_param *p = &mc.tensors[t];
        double num = 0, den = 0;
        for (int64_t j = 0; j < p->numel; j++) {
            double d = (double)gc[p->offset + j] - gg[p->offset + j];
            num += d * d;
            den += (double)gc[p->offset + j] * gc[p->offset + j];
        }
        double rel = sqrt(num / (den > 0 ? den : 1e-30));
        if (rel > worst) {
            worst = rel;
            wname = p->name;
        }
        T_CHECK(den > 0 && rel < 0.08, "%s: gradient rel L2 error %.4f (|g| %.3g)", p->name, rel, sqrt(den));
    }
    printf("  %s B=%lld T=%lld: loss cpu %.5f cuda %.5f (rel %.2e); worst gradient rel L2 %.4f (%s); cpu %.2f s, cuda %.3f s (first call)\n",
           name, (long long)B, (long long)T, lc, lg, fabs(lc - lg) / lc, worst, wname, t1 - t0, t2 - t1);
    T_CHECK(fabs(lc - lg) < 1e-2 * lc, "loss cpu %.6f vs cuda %.6f", lc, lg);
    /* a few AdamW steps on the GPU lower the loss of this batch */
    struct ops_adamw h = {2e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, 0};
    float l = 0;
    for (int it = 0; it < 8; it++) {
        model_zero_grads(&mg);
        T_OK(model_step(&mg, B, T, tok, w, 1, &l));
        h.step = it + 1;
        T_OK(model_adamw(&mg, &h));
    }
    T_OK(model_step(&mg, B, T, tok, w, 0, &l));
    printf("  %s: 8 AdamW steps on cuda: loss %.4f -> %.4f\n", name, lg, l);
    T_CHECK(l < lg - 0.05f, "GPU training did not lower the loss: %.4f -> %.4f", lg, l);
    free(tok);
    free(w);
    free(gc);
    free(gg);
    model_destroy(&mc);
    model_destroy(&mg);
}

int main(void) {
    if (lc_cuda_device_count(NULL) <= 0) {
        t_begin("gpu_model");
        t_skip("no CUDA device");
        return t_finish();
    }
    compare("gpu_model_swa_hsa", cfg_swa_hsa, 2, 320);
    compare("gpu_model_gca", cfg_gca, 2, 337);
    compare("gpu_model_dense", cfg_dense, 2, 200);
    compare("gpu_model_mamba", cfg_mamba, 2, 200);
    compare("gpu_model_mamba_hsa", cfg_mamba_hsa, 2, 320);
    return t_finish();
}
