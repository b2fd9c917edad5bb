/* test_config.c — model configs: every preset parses, validates and matches its .cfg file; print
 * -> parse round trips; every kind of error names its line (or its keys); the parameter counts
 * of tiny-swa-hsa (6.31M), tiny-dense, tiny-mamba (1.80M) and tiny-mamba-hsa (4.20M) equal the
 * hand sums and the tensor list is consistent; the parser survives random mutations. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "test.h"

static char *print_alloc(const lc_config *c) {
    size_t n = lc_config_print(c, NULL, 0);
    char *s = malloc(n + 1);
    lc_config_print(c, s, n + 1);
    return s;
}

static void test_presets(void) {
    t_begin("every preset parses, validates and equals model/presets/<name>.cfg");
    T_CHECK(lc_config_preset_count() >= 12, "only %d presets", lc_config_preset_count());
    const char *want[] = {"swa-hsa", "mamba-hsa", "swa-gca", "dense", "swa", "mamba", "tiny-swa-hsa", "tiny-mamba-hsa", "tiny-swa-gca", "tiny-dense",
                          "tiny-swa", "tiny-mamba"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) T_CHECK(lc_config_preset_text(want[i]) != NULL, "missing preset %s", want[i]);
    int files = 0;
    for (int i = 0; i < lc_config_preset_count(); i++) {
        const char *name = lc_config_preset_name(i);
        lc_config c;
        if (!T_OK(lc_config_preset(name, &c))) continue;
        T_CHECK(c.n_layers > 0, "%s: no layers", name);
        T_CHECK(lc_config_param_count(&c) > 0, "%s: no parameters", name);
        if (!strncmp(name, "tiny-", 5))
            T_CHECK(lc_config_param_count(&c) < 8000000, "%s: %lld parameters is not tiny", name, (long long)lc_config_param_count(&c));
        char path[256];
        snprintf(path, sizeof path, "model/presets/%s.cfg", name);
        char *file = t_read_file(path, NULL);
        if (file) {
            files++;
            T_CHECK(!strcmp(file, lc_config_preset_text(name)), "%s differs from the compiled-in preset: run model/presets/generate.sh", path);
            lc_config f;
            T_OK(lc_config_load(path, &f));
            T_CHECK(lc_config_equal(&c, &f), "%s: file and preset resolve differently", name);
            free(file);
        }
    }
    T_CHECK(files == lc_config_preset_count(), "found %d of %d preset files (run from the repository root)", files, lc_config_preset_count());

    t_begin("presets have the promised shapes");
    lc_config c;
    T_OK(lc_config_preset("dense", &c));
    T_CHECK(c.d == 768 && c.n_layers == 12 && c.context == 4096 && c.layers[0].kind == LC_LAYER_DENSE, "dense: d %lld layers %d context %lld",
            (long long)c.d, c.n_layers, (long long)c.context);
    T_OK(lc_config_preset("tiny-swa-hsa", &c));
    T_CHECK(c.vocab == 256 && c.d == 256 && c.n_lower == 2 && c.n_groups == 2 && c.n_hsa == 2 && c.W == 128 && c.attn_heads == 8 &&
                c.attn_dh == 32 && c.attn_mlp == 768 && c.enc_layers == 1 && c.enc_cls && c.S == 64 && c.d_r == 256 && c.HQ == 16 && c.H == 1 &&
                c.dh == 32 && c.K == 8 && c.weights == LC_WEIGHTS_SOFTMAX && c.residual == LC_RESIDUAL_BYPASS && !c.tied_embeddings && c.G == 16,
            "tiny-swa-hsa differs from the issue's layout");
    static const int kinds[] = {LC_LAYER_SWA, LC_LAYER_SWA, LC_LAYER_CHUNK, LC_LAYER_RETRIEVAL, LC_LAYER_HSA, LC_LAYER_SWA, LC_LAYER_RETRIEVAL, LC_LAYER_HSA, LC_LAYER_SWA};
    T_CHECK(c.n_layers == 9, "tiny-swa-hsa has %d layers", c.n_layers);
    for (int i = 0; i < 9 && i < c.n_layers; i++) T_CHECK(c.layers[i].kind == kinds[i], "layer %d is %s", i, lc_layer_kind_name(c.layers[i].kind));
    T_CHECK(c.layers[1].group == -1 && c.layers[4].group == 0 && c.layers[8].group == 1, "group indices");
    T_OK(lc_config_preset("mamba-hsa", &c));
    T_CHECK(c.n_lower == 24 && c.n_groups == 1 && c.n_hsa == 3 && c.n_layers == 24 + 1 + 1 + 3 * 9 && c.weights == LC_WEIGHTS_STICKBREAK &&
                c.residual == LC_RESIDUAL_PLAIN && c.tied_embeddings,
            "mamba-hsa: lower %d groups %d hsa %d layers %d", c.n_lower, c.n_groups, c.n_hsa, c.n_layers);
    T_OK(lc_config_preset("swa-gca", &c));
    T_CHECK(c.block_q == c.S && c.swa_inside && c.off_by_one && c.G == 1, "swa-gca is chunk-level with SWA inside");
}

static void test_round_trip(void) {
    t_begin("print -> parse gives the same config, and prints the same text");
    for (int i = 0; i < lc_config_preset_count(); i++) {
        lc_config a, b;
        if (!T_OK(lc_config_preset(lc_config_preset_name(i), &a))) continue;
        char *ta = print_alloc(&a);
        if (!T_OK(lc_config_parse(ta, "printed", &b))) {
            free(ta);
            continue;
        }
        char diff[256];
        T_CHECK(!lc_config_diff(&a, &b, diff, sizeof diff), "%s: round trip differs at %s", lc_config_preset_name(i), diff);
        char *tb = print_alloc(&b);
        T_CHECK(!strcmp(strchr(ta, '\n'), strchr(tb, '\n')), "%s: printed text changed on the second round", lc_config_preset_name(i));
        free(ta);
        free(tb);
    }

    t_begin("lc_config_diff names the differing key");
    lc_config a, b;
    T_OK(lc_config_preset("tiny-swa-hsa", &a));
    T_OK(lc_config_parse("layers = swa*2 chunk (retrieval hsa swa)*2\n[hsa]\nK = 16\n", "x", &b));
    char diff[256];
    T_CHECK(lc_config_diff(&a, &b, diff, sizeof diff) && strstr(diff, "model.context") == NULL, "diff: %s", diff);
    b = a;
    b.K = 16;
    T_CHECK(lc_config_diff(&a, &b, diff, sizeof diff) && !strcmp(diff, "hsa.K: 8 vs 16"), "diff: %s", diff);
    b = a;
    b.layers[5].kind = LC_LAYER_MAMBA;
    T_CHECK(lc_config_diff(&a, &b, diff, sizeof diff) && strstr(diff, "model.layers"), "diff: %s", diff);
}

/* Hand arithmetic from hsa.md 3.1 / 3.7 for the preset. */
static void test_param_count(void) {
    t_begin("tiny-swa-hsa parameter count = hand sum = 6.31M");
    const int64_t d = 256, V = 256, f = 768, dh = 32;
    const int64_t swa_block = d + 4 * d * d + 2 * dh /* q/k norm */ + d + 3 * d * f;        /* 852,544 */
    const int64_t encoder = d /* cls */ + d + 3 * (d * d + d) /* q/k/v with bias */ + 2 * dh + d * d + d + 3 * d * f + d /* final norm */;
    const int64_t chunk = encoder + d * 256 /* lmk_ln */ + 2 * d * 32 /* proj_k, proj_v: H*dh = 32 */ + dh /* k_norm */;
    const int64_t retrieval = d + d * 256;                                                     /* RMSNorm + ln */
    const int64_t hsa = d + d * 16 * 32 /* q_proj */ + dh /* q_norm */ + 16 * 32 * d /* o_proj */ + d + 3 * d * f /* bypass MLP */;
    const int64_t hand = V * d /* embed */ + 4 * swa_block + chunk + 2 * (retrieval + hsa) + d /* final norm */ + V * d /* untied head */;
    (void)T_CHECK(swa_block == 852544, "swa block %lld", (long long)swa_block);
    (void)T_CHECK(hand == 6313888, "hand sum %lld", (long long)hand);
    lc_config c;
    T_OK(lc_config_preset("tiny-swa-hsa", &c));
    int64_t n = lc_config_param_count(&c);
    T_CHECK(n == hand, "param count %lld != hand sum %lld", (long long)n, (long long)hand);
    T_CHECK(llround(n / 1e4) == 631, "%lld does not round to 6.31M", (long long)n);

    t_begin("tiny-dense, tiny-mamba and tiny-mamba-hsa parameter counts = hand sums");
    T_OK(lc_config_preset("tiny-dense", &c));
    T_CHECK(lc_config_param_count(&c) == 2 * V * d + 4 * swa_block + d, "tiny-dense %lld", (long long)lc_config_param_count(&c));
    T_OK(lc_config_preset("tiny-mamba", &c));
    {   /* Mamba-2: in_proj d -> 2*di + 2*ngroups*N + nh, conv over di + 2*ngroups*N channels (+bias), dt_bias, A_log, D, gated norm, out_proj.
         * The tiny presets use nh = 16 heads of P = 32 (di = 16 * 32 = 512 = 2d) and N = 64: (P, N) = (32, 64), a pair the CUDA scan supports. */
        const int64_t di = 512, N = 64, nh = 16, P = 32, conv = 4;
        const int64_t block = d + d * (2 * di + 2 * N + nh) + (di + 2 * N) * (conv + 1) + 3 * nh + di + di * d;
        (void)T_CHECK(nh * P == di && c.mamba_heads == nh && c.mamba_dh == P && c.mamba_state == N, "tiny-mamba sizes");
        /* 256 + 256 * 1168 + 640 * 5 + 48 + 512 + 512 * 256 = 434,096 per block; 65,536 + 4 * 434,096 + 256 = 1,802,176 */
        (void)T_CHECK(block == 434096 && V * d + 4 * block + d == 1802176, "mamba block %lld", (long long)block);
        T_CHECK(lc_config_param_count(&c) == V * d + 4 * block + d, "tiny-mamba %lld != %lld (tied)", (long long)lc_config_param_count(&c),
                (long long)(V * d + 4 * block + d));
        /* tiny-mamba-hsa (mamba*2 chunk retrieval (hsa mamba*2)*2): 6 such blocks, the tiny-swa-hsa chunk layer (same
         * encoder: 853,824 + lmk_ln 65,536 + proj_k/v 16,384 + k_norm 32 = 935,776), one retrieval layer (65,792), 2 HSA
         * layers without MLP (plain residual: norm, q_proj, q_norm, o_proj = 262,432), tied:
         * 65,536 + 6 * 434,096 + 935,776 + 65,792 + 2 * 262,432 + 256 = 4,196,800 */
        const int64_t hsa_plain = d + d * 16 * 32 + dh + 16 * 32 * d;
        const int64_t hand_mh = V * d + 6 * block + chunk + retrieval + 2 * hsa_plain + d;
        (void)T_CHECK(chunk == 935776 && hsa_plain == 262432 && hand_mh == 4196800, "tiny-mamba-hsa hand sum %lld", (long long)hand_mh);
        T_OK(lc_config_preset("tiny-mamba-hsa", &c));
        T_CHECK(lc_config_param_count(&c) == hand_mh, "tiny-mamba-hsa %lld != %lld", (long long)lc_config_param_count(&c), (long long)hand_mh);
    }

    t_begin("tensor list: contiguous offsets, unique names, numel = shape product, init choices");
    for (int i = 0; i < lc_config_preset_count(); i++) {
        T_OK(lc_config_preset(lc_config_preset_name(i), &c));
        int64_t nt = lc_config_tensors(&c, NULL, 0);
        lc_param *ps = malloc((size_t)nt * sizeof *ps);
        T_CHECK(lc_config_tensors(&c, ps, nt) == nt, "count changes");
        int64_t off = 0;
        for (int64_t t = 0; t < nt; t++) {
            int64_t prod = ps[t].shape[0] * (ps[t].ndim == 2 ? ps[t].shape[1] : 1);
            T_CHECK(ps[t].offset == off && ps[t].numel == prod && prod > 0, "%s: offset %lld numel %lld", ps[t].name, (long long)ps[t].offset,
                    (long long)ps[t].numel);
            off += ps[t].numel;
            if (t + 1 < nt && nt < 2000)
                for (int64_t u = t + 1; u < nt; u++) T_CHECK(strcmp(ps[t].name, ps[u].name), "duplicate tensor name %s", ps[t].name);
            if (strstr(ps[t].name, ".o_proj")) T_CHECK(ps[t].init == LC_INIT_ZERO, "%s: HSA o_proj not zero-init", ps[t].name);
            if (strstr(ps[t].name, ".enc.") && strstr(ps[t].name, ".wo")) T_CHECK(ps[t].init == LC_INIT_ZERO, "%s: encoder wo not zero-init", ps[t].name);
            if (ps[t].init == LC_INIT_NORMAL) T_CHECK(ps[t].std > 0, "%s: std %g", ps[t].name, ps[t].std);
        }
        T_CHECK(off == lc_config_param_count(&c), "offsets end at %lld", (long long)off);
        free(ps);
    }
    T_OK(lc_config_parse("layers = swa*2 chunk (retrieval hsa swa)*2\n[init]\nzero_hsa_out = false\nscale_out = false\nstd = 0.05\n", "x", &c));
    lc_param ps[256];
    int64_t nt = lc_config_tensors(&c, ps, 256);
    int found = 0;
    for (int64_t t = 0; t < nt && t < 256; t++)
        if (strstr(ps[t].name, "o_proj")) {
            found++;
            T_CHECK(ps[t].init == LC_INIT_NORMAL && ps[t].std == 0.05f, "%s: init %d std %g", ps[t].name, ps[t].init, ps[t].std);
        }
    T_CHECK(found == 2, "found %d o_proj", found);
}

/* The call must fail with a message containing both needles. */
#define T_ERR2(expr, n1, n2)                                                                                      \
    do {                                                                                                          \
        if (T_ERR(expr, n1)) T_CHECK(strstr(lc_last_error(), n2) != NULL, "message lacks '%s': %s", n2, lc_last_error()); \
    } while (0)

static void test_errors(void) {
    lc_config c;
    const char *hsa_head = "# test\n[model]\nlayers = swa*2 chunk (retrieval hsa swa)*2\n";
    char buf[1024];
#define WITH(extra) (snprintf(buf, sizeof buf, "%s%s", hsa_head, extra), buf)

    t_begin("unknown keys, sections and malformed lines name their line");
    T_ERR2(lc_config_parse(WITH("[hsa]\nK = 8\nTopK = 4\n"), "f.cfg", &c), "f.cfg:6", "unknown key 'TopK' in [hsa]");
    T_ERR2(lc_config_parse(WITH("[hsaa]\n"), "f.cfg", &c), "f.cfg:4", "unknown section [hsaa]");
    T_ERR2(lc_config_parse(WITH("hsa.K 8\n"), "f.cfg", &c), "f.cfg:4", "expected 'key = value'");
    T_ERR2(lc_config_parse(WITH("hsa.K =\n"), "f.cfg", &c), "f.cfg:4", "missing value");
    T_ERR2(lc_config_parse(WITH("[hsa\n"), "f.cfg", &c), "f.cfg:4", "malformed section");
    T_ERR2(lc_config_parse(WITH("[hsa]\nK = 8\n\nK = 4\n"), "f.cfg", &c), "f.cfg:7", "set twice (first at line 5)");
    T_ERR2(lc_config_parse(WITH("bogus.K = 8\n"), "f.cfg", &c), "f.cfg:4", "unknown key");

    t_begin("bad values name their line and key");
    T_ERR2(lc_config_parse(WITH("[attn]\nW = -1\n"), "f.cfg", &c), "f.cfg:5", "attn.W = -1 is out of range");
    T_ERR2(lc_config_parse(WITH("[hsa]\nK = 0\n"), "f.cfg", &c), "f.cfg:5", "hsa.K = 0 is out of range");
    T_ERR2(lc_config_parse(WITH("[hsa]\nK = eight\n"), "f.cfg", &c), "f.cfg:5", "not an integer");
    T_ERR2(lc_config_parse(WITH("[hsa]\nK = 8.5\n"), "f.cfg", &c), "f.cfg:5", "not an integer");
    T_ERR2(lc_config_parse(WITH("[hsa]\nweights = sparsemax\n"), "f.cfg", &c), "f.cfg:5", "softmax | stickbreak");
    T_ERR2(lc_config_parse(WITH("[hsa]\ngumbel = maybe\n"), "f.cfg", &c), "f.cfg:5", "not true/false");
    T_ERR2(lc_config_parse(WITH("[attn]\nrope_theta = nan\n"), "f.cfg", &c), "f.cfg:5", "not a number");
    T_ERR2(lc_config_parse(WITH("[oracle]\nprob = 1.5\n"), "f.cfg", &c), "f.cfg:5", "out of range");

    t_begin("inconsistent combinations name the keys and their lines");
    T_ERR2(lc_config_parse(WITH("[hsa]\nHQ = 12\nH = 5\n"), "f.cfg", &c), "hsa.HQ = 12 (f.cfg:5)", "hsa.H = 5 (f.cfg:6)");
    T_ERR2(lc_config_parse(WITH("[hsa]\nblock_q = 7\n"), "f.cfg", &c), "f.cfg:5", "must be 1 (HSA) or hsa.S");
    T_OK(lc_config_parse(WITH("[hsa]\nblock_q = 64\nd_r = 256\n"), "f.cfg", &c));
    T_ERR2(lc_config_parse(WITH("[hsa]\nblock_q = 64\nd_r = 128\n"), "f.cfg", &c), "hsa.d_r = 128 (f.cfg:6)", "must equal model.d");
    T_ERR2(lc_config_parse(WITH("[hsa]\nretrieval_heads = per_kv\nH = 3\nHQ = 12\nd_r = 256\n"), "f.cfg", &c), "hsa.d_r = 256 (f.cfg:8)", "retrieval heads");
    T_ERR2(lc_config_parse(WITH("[hsa]\nresidual = plain\n"), "f.cfg", &c), "hsa.residual = plain (f.cfg:5)", "hsa.mlp = 0");
    T_ERR2(lc_config_parse(WITH("[hsa]\nmlp = 0\n"), "f.cfg", &c), "hsa.residual = bypass", "hsa.mlp = 0");
    T_ERR2(lc_config_parse(WITH("context = 1000\n"), "f.cfg", &c), "model.context = 1000 (f.cfg:4)", "hsa.S = 64");
    T_ERR2(lc_config_parse(WITH("[attn]\nheads = 6\nkv_heads = 4\n"), "f.cfg", &c), "attn.heads = 6 (f.cfg:5)", "attn.kv_heads = 4 (f.cfg:6)");
    T_ERR2(lc_config_parse(WITH("[attn]\ndh = 33\n"), "f.cfg", &c), "f.cfg:5", "even");
    T_ERR2(lc_config_parse("layers = mamba*2\n[mamba]\nheads = 6\n", "m.cfg", &c), "mamba.heads * mamba.head_dim", "m.cfg:3");
    T_ERR2(lc_config_parse("layers = dense*2\n[mamba]\nstate = 16\n", "d.cfg", &c), "d.cfg:3", "mamba.state is set but the model has no mamba layer");
    T_ERR2(lc_config_parse("layers = dense*2\n[attn]\nW = 64\n", "d.cfg", &c), "d.cfg:3", "no sliding-window layer");
    T_ERR2(lc_config_parse("layers = swa*2\nhsa.K = 4\n", "s.cfg", &c), "s.cfg:2", "no chunk/retrieval/hsa layers");
    T_ERR2(lc_config_parse("layers = mamba*2\nattn.heads = 4\n", "s.cfg", &c), "s.cfg:2", "no attention layer");
    T_ERR2(lc_config_parse("layers = dense*2 chunk (retrieval hsa)\nhsa.mask_window = true\n", "s.cfg", &c), "s.cfg:2", "mask_window");
    T_ERR2(lc_config_parse(WITH("[oracle]\nmode = force\nprob = 0\n"), "f.cfg", &c), "f.cfg:6", "never forces");
    T_ERR2(lc_config_parse(WITH("[init]\npos_decay = 0.5\n"), "f.cfg", &c), "f.cfg:5", "init.pos_decay is set but the model has hsa.pos_decay = false");
    T_OK(lc_config_parse(WITH("[hsa]\npos_decay = true\n[init]\npos_decay = 0.5\n"), "f.cfg", &c));

    t_begin("layer-list errors name the layers line");
    T_ERR2(lc_config_parse("\nlayers = swa*2 attn\n", "l.cfg", &c), "l.cfg:2", "unknown layer 'attn'");
    T_ERR2(lc_config_parse("layers = swa*2 chunk hsa retrieval hsa\n", "l.cfg", &c), "l.cfg:1", "'hsa' at layer 3 comes before any 'retrieval'");
    T_ERR2(lc_config_parse("layers = swa retrieval hsa\n", "l.cfg", &c), "l.cfg:1", "comes before 'chunk'");
    T_ERR2(lc_config_parse("layers = swa chunk retrieval hsa chunk\n", "l.cfg", &c), "l.cfg:1", "a second 'chunk'");
    T_ERR2(lc_config_parse("layers = swa chunk retrieval retrieval hsa\n", "l.cfg", &c), "l.cfg:1", "has no 'hsa' layer");
    T_ERR2(lc_config_parse("layers = swa chunk (retrieval hsa\n", "l.cfg", &c), "l.cfg:1", "missing ')'");
    T_ERR2(lc_config_parse("layers = swa)\n", "l.cfg", &c), "l.cfg:1", "unmatched ')'");
    T_ERR2(lc_config_parse("layers = swa*0\n", "l.cfg", &c), "l.cfg:1", "repeat count 0");
    T_ERR2(lc_config_parse("layers = swa*\n", "l.cfg", &c), "l.cfg:1", "expected a count");
    T_ERR2(lc_config_parse("layers = (swa*100)*100\n", "l.cfg", &c), "l.cfg:1", "more than 512 layers");
    T_ERR2(lc_config_parse("layers = swa chunk\n", "l.cfg", &c), "l.cfg:1", "without any 'retrieval'");
    T_ERR2(lc_config_parse("layers = ()\n", "l.cfg", &c), "l.cfg:1", "empty '()'");
    T_ERR2(lc_config_parse("layers = swa, dense\n", "l.cfg", &c), "l.cfg:1", "unexpected ','");

    t_begin("dh = 0 derives d / heads, and then d must divide");
    T_OK(lc_config_parse(WITH("[attn]\ndh = 0\n[hsa]\ndh = 0\n"), "f.cfg", &c));
    T_CHECK(c.attn_dh == 32 && c.dh == 16, "derived attn.dh %lld hsa.dh %lld", (long long)c.attn_dh, (long long)c.dh);
    T_ERR2(lc_config_parse(WITH("[attn]\ndh = 0\nheads = 6\nkv_heads = 3\n"), "f.cfg", &c), "model.d = 256 is not a multiple of attn.heads = 6",
           "f.cfg:5");
    T_ERR2(lc_config_parse(WITH("[hsa]\ndh = 0\nHQ = 12\nH = 3\n"), "f.cfg", &c), "model.d = 256 is not a multiple of hsa.HQ = 12", "f.cfg:5");

    t_begin("defaults are valid; section.key form and trailing comments work");
    T_OK(lc_config_parse("", "empty", &c));
    T_CHECK(c.n_layers == 4 && c.layers[0].kind == LC_LAYER_SWA, "default layers");
    T_OK(lc_config_parse("layers = dense*3   # three\n  attn.heads = 4  # four heads\nattn.kv_heads = 2\n", "x", &c));
    T_CHECK(c.n_layers == 3 && c.attn_heads == 4 && c.attn_kv_heads == 2, "values");
    T_OK(lc_config_parse("layers = (mamba (dense)*2)*2 mamba\n", "x", &c));
    T_CHECK(c.n_layers == 7 && c.layers[1].kind == LC_LAYER_DENSE && c.layers[3].kind == LC_LAYER_MAMBA && c.layers[6].kind == LC_LAYER_MAMBA,
            "nested repeat");

    t_begin("files: load by path names the file; unknown preset lists the presets");
    const char *path = "build/test_config_tmp.cfg";
    FILE *f = fopen(path, "w");
    if (T_CHECK(f != NULL, "cannot write %s", path)) {
        fputs("[model]\nlayers = swa*2\n[attn]\nW = 0\n", f);
        fclose(f);
        T_ERR2(lc_config_load(path, &c), "build/test_config_tmp.cfg:4", "attn.W = 0 is out of range");
        remove(path);
    }
    T_ERR2(lc_config_load("no-such-preset", &c), "unknown preset 'no-such-preset'", "tiny-swa-hsa");
    T_ERR(lc_config_load("no/such/file.cfg", &c), "cannot open config file 'no/such/file.cfg'");
#undef WITH
}

static void test_init(void) {
    t_begin("init_params follows each tensor's init: zeros, ones, std, Mamba A_log and dt_bias ranges");
    const char *names[] = {"tiny-swa-hsa", "tiny-mamba-hsa"};
    for (int k = 0; k < 2; k++) {
        lc_config c;
        T_OK(lc_config_preset(names[k], &c));
        int64_t n = lc_config_param_count(&c), nt = lc_config_tensors(&c, NULL, 0);
        float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
        lc_param *ps = malloc((size_t)nt * sizeof *ps);
        lc_config_tensors(&c, ps, nt);
        T_OK(lc_config_init_params(&c, 5, x));
        T_OK(lc_config_init_params(&c, 5, y));
        T_CHECK(!memcmp(x, y, (size_t)n * 4), "%s: same seed, different parameters", names[k]);
        for (int64_t t = 0; t < nt; t++) {
            const float *p = x + ps[t].offset;
            double s1 = 0, s2 = 0, lo = 1e30, hi = -1e30;
            for (int64_t i = 0; i < ps[t].numel; i++) {
                s1 += p[i];
                s2 += (double)p[i] * p[i];
                lo = p[i] < lo ? p[i] : lo;
                hi = p[i] > hi ? p[i] : hi;
            }
            double m = s1 / ps[t].numel, sd = sqrt(s2 / ps[t].numel - m * m);
            switch (ps[t].init) {
            case LC_INIT_ZERO: T_CHECK(lo == 0 && hi == 0, "%s not zero", ps[t].name); break;
            case LC_INIT_ONE: T_CHECK(lo == 1 && hi == 1, "%s not one", ps[t].name); break;
            case LC_INIT_NORMAL:
                if (ps[t].numel >= 4096) T_CHECK(fabs(sd / ps[t].std - 1) < 0.05 && fabs(m) < 0.05 * ps[t].std + 3 * ps[t].std / sqrt((double)ps[t].numel),
                                                  "%s: mean %g std %g, want std %g", ps[t].name, m, sd, ps[t].std);
                else T_CHECK(sd > 0, "%s constant", ps[t].name);
                break;
            case LC_INIT_UNIFORM: T_CHECK(lo >= -ps[t].std && hi <= ps[t].std && hi - lo > ps[t].std, "%s: [%g, %g]", ps[t].name, lo, hi); break;
            case LC_INIT_MAMBA_A_LOG: T_CHECK(lo >= 0 && hi <= log(16.0) + 1e-6 && hi > lo, "%s: [%g, %g]", ps[t].name, lo, hi); break;
            case LC_INIT_MAMBA_DT_BIAS:
                /* softplus(dt_bias) in [1e-3, 0.1] */
                T_CHECK(log1p(exp(lo)) >= 0.999e-3 && log1p(exp(hi)) <= 0.1001, "%s: softplus range [%g, %g]", ps[t].name, log1p(exp(lo)), log1p(exp(hi)));
                break;
            }
        }
        free(x);
        free(y);
        free(ps);
    }
}

static void test_state_bytes(void) {
    t_begin("inference state bytes = hand sums (tiny-swa-hsa at 16M tokens, dense, mamba)");
    lc_config c;
    T_OK(lc_config_preset("tiny-swa-hsa", &c));
    const int64_t L = 16777216;
    /* 4 SWA layers x K,V x W=128 keys x 8 kv heads x 32 + chunk K,V (L x 1 x 32) + landmarks (L/64 x 256), bf16 */
    int64_t hand = (4 * 2 * 128 * 8 * 32 + 2 * L * 32 + (L / 64) * 256) * 2;
    T_CHECK(lc_config_state_bytes(&c, L, 2) == hand, "%lld != %lld", (long long)lc_config_state_bytes(&c, L, 2), (long long)hand);
    T_CHECK(lc_config_state_bytes(&c, 100, 2) == (4 * 2 * 100 * 8 * 32 + 2 * 100 * 32 + 1 * 256) * 2, "short context: window clipped to L");
    T_OK(lc_config_preset("dense", &c));
    T_CHECK(lc_config_state_bytes(&c, 4096, 2) == 12LL * 2 * 4096 * 12 * 64 * 2, "dense");
    T_OK(lc_config_preset("tiny-mamba", &c));
    /* 4 layers x (conv state: 3 taps x 640 channels + SSM state: 16 heads x P 32 x N 64), fp32 */
    T_CHECK(lc_config_state_bytes(&c, L, 2) == 4LL * (3 * (512 + 128) * 4 + 16 * 32 * 64 * 4), "mamba state does not grow with L");
}

static void test_oracle(void) {
    t_begin("oracle schedule: hold at prob, then linear decay to 0; off means 0");
    lc_config c;
    T_OK(lc_config_parse("layers = swa chunk retrieval hsa\n[oracle]\nmode = force\nprob = 0.8\nhold = 100\ndecay = 50\n", "o", &c));
    T_CHECK(lc_config_oracle_prob(&c, 0) == 0.8 && lc_config_oracle_prob(&c, 99) == 0.8, "hold");
    T_CHECK(fabs(lc_config_oracle_prob(&c, 125) - 0.4) < 1e-12, "mid decay %g", lc_config_oracle_prob(&c, 125));
    T_CHECK(lc_config_oracle_prob(&c, 150) == 0 && lc_config_oracle_prob(&c, 10000) == 0, "after decay");
    char *t = print_alloc(&c);
    T_CHECK(strstr(t, "EXTRA SUPERVISION") != NULL, "printed config does not label the oracle as extra supervision");
    free(t);
    T_OK(lc_config_parse("layers = swa chunk retrieval hsa\n", "o", &c));
    T_CHECK(lc_config_oracle_prob(&c, 0) == 0, "off");
}

static void test_fuzz(void) {
    t_begin("random byte mutations of every preset never crash the parser");
    lc_rng r;
    lc_rng_seed(&r, 1234);
    int ok = 0, err = 0;
    for (int i = 0; i < lc_config_preset_count(); i++) {
        const char *text = lc_config_preset_text(lc_config_preset_name(i));
        size_t n = strlen(text);
        char *m = malloc(n + 1);
        for (int rep = 0; rep < 150; rep++) {
            memcpy(m, text, n + 1);
            int flips = 1 + (int)lc_rng_below(&r, 4);
            for (int j = 0; j < flips; j++) {
                size_t at = lc_rng_below(&r, n);
                static const char alphabet[] = "=#[]()*.\n 0123456789-xabcdefghsK";
                m[at] = lc_rng_below(&r, 4) ? alphabet[lc_rng_below(&r, sizeof alphabet - 1)] : (char)(1 + lc_rng_below(&r, 255));
            }
            if (lc_rng_below(&r, 5) == 0) m[lc_rng_below(&r, n)] = 0; /* truncation */
            lc_config c;
            if (lc_config_parse(m, "fuzz", &c) == LC_OK) {
                ok++;
                T_CHECK(lc_config_param_count(&c) > 0, "accepted config has no parameters");
            } else {
                err++;
                T_CHECK(strncmp(lc_last_error(), "fuzz", 4) == 0 || strstr(lc_last_error(), "(fuzz") || strstr(lc_last_error(), "fuzz:"),
                        "message does not name the source: %s", lc_last_error());
            }
        }
        free(m);
    }
    T_CHECK(ok > 0 && err > 0, "ok %d err %d", ok, err);
}

int main(void) {
    test_presets();
    test_round_trip();
    test_param_count();
    test_errors();
    test_init();
    test_state_bytes();
    test_oracle();
    test_fuzz();
    return t_finish();
}
