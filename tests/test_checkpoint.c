/* test_checkpoint.c — checkpoints: save/load round trip (weights, AdamW state, step, config) is
 * bit-exact; every kind of corruption (bad magic, version, truncation, trailing bytes, header or
 * payload checksum) and every mismatch (config key, tensor shape) is refused with a message
 * naming it; random byte flips and truncations are always refused, never crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "config.h"
#include "test.h"

/* a small HSA model so the fuzz loop is fast (~40K parameters) */
static const char *micro =
    "[model]\nvocab = 64\nd = 32\ncontext = 64\nlayers = swa chunk (retrieval hsa swa)*2\n"
    "[attn]\nheads = 2\nkv_heads = 1\ndh = 16\nW = 16\nmlp = 64\n"
    "[encoder]\nheads = 2\nkv_heads = 2\ndh = 16\nmlp = 64\n"
    "[hsa]\nS = 16\nK = 2\nd_r = 32\nHQ = 2\nH = 1\ndh = 16\nmlp = 64\n";


/* micro with the last occurrence of `from` replaced by `to` */
static void micro_with(char *out, size_t cap, const char *from, const char *to) {
    const char *at = NULL;
    for (const char *p = strstr(micro, from); p; p = strstr(p + 1, from)) at = p;
    snprintf(out, cap, "%.*s%s%s", (int)(at - micro), micro, to, at + strlen(from));
}

static const char *P = "build/test_checkpoint.ckpt", *Q = "build/test_checkpoint_bad.ckpt";

int main(void) {
    lc_config cfg;
    lc_rng r;
    lc_rng_seed(&r, 7);
    if (lc_config_parse(micro, "micro", &cfg)) {
        printf("FAIL micro config: %s\n", lc_last_error());
        return 1;
    }
    const int64_t n = lc_config_param_count(&cfg);
    float *w = malloc((size_t)n * 4), *m = malloc((size_t)n * 4), *v = malloc((size_t)n * 4);
    float *w2 = malloc((size_t)n * 4), *m2 = malloc((size_t)n * 4), *v2 = malloc((size_t)n * 4);
    lc_fill_normal(&r, w, (size_t)n, 1.0f);
    lc_fill_normal(&r, m, (size_t)n, 0.1f);
    lc_fill_uniform(&r, v, (size_t)n, 0.001f, 0.01f);
    ckpt_info info;

    t_begin("round trip with AdamW state: bit-exact weights, m, v, step and config");
    T_OK(ckpt_save(P, &cfg, 123456789012ull, w, m, v));
    lc_fill_uniform(&r, w2, (size_t)n, -9, -8);
    lc_fill_uniform(&r, m2, (size_t)n, -9, -8);
    lc_fill_uniform(&r, v2, (size_t)n, -9, -8);
    T_OK(ckpt_load(P, &cfg, 1, w2, m2, v2, &info));
    T_CHECK(!memcmp(w, w2, (size_t)n * 4) && !memcmp(m, m2, (size_t)n * 4) && !memcmp(v, v2, (size_t)n * 4), "tensors differ after load");
    T_CHECK(info.step == 123456789012ull && info.has_optimizer == 1 && info.note[0] == 0, "step %llu opt %d note '%s'",
            (unsigned long long)info.step, info.has_optimizer, info.note);
    T_CHECK(lc_config_equal(&info.config, &cfg), "stored config differs");
    ckpt_info hdr;
    T_OK(ckpt_read_info(P, &hdr));
    T_CHECK(hdr.step == 123456789012ull && lc_config_equal(&hdr.config, &cfg), "read_info");

    t_begin("round trip without optimizer state; m and v left untouched");
    T_OK(ckpt_save(P, &cfg, 5, w, NULL, NULL));
    lc_fill_uniform(&r, m2, (size_t)n, -9, -8);
    memcpy(v2, m2, (size_t)n * 4);
    T_OK(ckpt_load(P, &cfg, 1, w2, m2, NULL, &info));
    T_CHECK(!memcmp(w, w2, (size_t)n * 4) && info.has_optimizer == 0 && info.step == 5, "load");
    T_CHECK(!memcmp(m2, v2, (size_t)n * 4), "m was written although the file has no optimizer state");
    T_ERR(ckpt_save(P, &cfg, 5, w, m, NULL), "must be given together");

    t_begin("a preset-sized checkpoint (tiny-swa-hsa, 6.3M parameters) round trips");
    {
        lc_config t;
        T_OK(lc_config_preset("tiny-swa-hsa", &t));
        int64_t nt = lc_config_param_count(&t);
        float *a = malloc((size_t)nt * 4), *b = malloc((size_t)nt * 4);
        lc_fill_normal(&r, a, (size_t)nt, 0.02f);
        T_OK(ckpt_save(P, &t, 1, a, NULL, NULL));
        T_OK(ckpt_load(P, &t, 1, b, NULL, NULL, NULL));
        T_CHECK(!memcmp(a, b, (size_t)nt * 4), "weights differ");
        free(a);
        free(b);
    }

    T_OK(ckpt_save(P, &cfg, 42, w, m, v));
    size_t size = 0;
    unsigned char *file = (unsigned char *)t_read_file(P, &size), *bad = malloc(size + 64);
    const uint64_t header_len = file[40] | (uint64_t)file[41] << 8 | (uint64_t)file[42] << 16;

    t_begin("corrupt files are refused with a message naming the fault");
    memcpy(bad, file, size);
    bad[0] = 'X';
    t_write_file(Q, bad, size);
    T_ERR(ckpt_load(Q, &cfg, 1, w2, NULL, NULL, NULL), "bad magic");
    memcpy(bad, file, size);
    bad[8] = 2;
    t_write_file(Q, bad, size);
    T_ERR(ckpt_load(Q, &cfg, 1, w2, NULL, NULL, NULL), "format version 2, this build reads version 1");
    size_t cuts[] = {0, 5, 71, 72, 100, (size_t)header_len - 1, (size_t)header_len, (size_t)header_len + 3, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        t_write_file(Q, file, cuts[i]);
        T_ERR(ckpt_load(Q, &cfg, 1, w2, NULL, NULL, NULL), "truncated");
    }
    memcpy(bad, file, size);
    memset(bad + size, 0, 16);
    t_write_file(Q, bad, size + 16);
    T_ERR(ckpt_load(Q, &cfg, 1, w2, NULL, NULL, NULL), "16 bytes after the payload");
    memcpy(bad, file, size);
    bad[72 + 10] ^= 0x20;
    t_write_file(Q, bad, size);
    T_ERR(ckpt_load(Q, &cfg, 1, w2, NULL, NULL, NULL), "header checksum mismatch");
    memcpy(bad, file, size);
    bad[header_len + 4 * 1000 + 1] ^= 0x01;
    t_write_file(Q, bad, size);
    memcpy(w2, m, (size_t)n * 4);
    T_ERR(ckpt_load(Q, &cfg, 1, w2, m2, v2, NULL), "payload checksum mismatch");
    T_CHECK(!memcmp(w2, m, (size_t)n * 4), "a refused load wrote into the caller's buffer");
    T_ERR(ckpt_load("build/no_such.ckpt", &cfg, 1, w2, NULL, NULL, NULL), "cannot open 'build/no_such.ckpt'");
    T_ERR(ckpt_load("build", &cfg, 1, w2, NULL, NULL, NULL), "'build'");

    t_begin("a mismatched config or shape is refused naming what differs");
    {
        lc_config other;
        char text[2048];
        micro_with(text, sizeof text, "K = 2", "K = 4");
        T_OK(lc_config_parse(text, "k4", &other));
        T_ERR(ckpt_load(P, &other, 1, w2, NULL, NULL, NULL), "config differs: hsa.K: 2 vs 4");
        T_OK(ckpt_load(P, &other, 0, w2, NULL, NULL, &info)); /* K does not change any shape */
        T_CHECK(strstr(info.note, "hsa.K: 2 vs 4") != NULL, "note '%s'", info.note);
        T_CHECK(!memcmp(w, w2, (size_t)n * 4), "non-strict load");
        micro_with(text, sizeof text, "mlp = 64", "mlp = 96");
        T_OK(lc_config_parse(text, "mlp96", &other));
        T_ERR(ckpt_load(P, &other, 1, w2, NULL, NULL, NULL), "hsa.mlp: 64 vs 96");
        T_ERR(ckpt_load(P, &other, 0, w2, NULL, NULL, NULL), "has shape [64, 32], the config expects [96, 32]");
        T_CHECK(strstr(lc_last_error(), "layers.3.w_gate") && strstr(lc_last_error(), "hsa.mlp: 64 vs 96"), "message: %s", lc_last_error());
        T_OK(lc_config_preset("tiny-swa", &other));
        T_ERR(ckpt_load(P, &other, 0, w2, NULL, NULL, NULL), "tensors, the config has");
    }

    t_begin("random byte flips and truncations are always refused, never crash");
    int refused = 0, trials = 0;
    for (int it = 0; it < 200; it++) {
        memcpy(bad, file, size);
        size_t len = size;
        int kind = (int)lc_rng_below(&r, 4);
        if (kind == 0) {
            len = lc_rng_below(&r, size);
        } else {
            int flips = 1 + (int)lc_rng_below(&r, kind == 1 ? 1 : 8);
            for (int j = 0; j < flips; j++) {
                /* half of the flips in the header, where parsing can go wrong */
                size_t at = lc_rng_below(&r, 2) ? lc_rng_below(&r, header_len) : lc_rng_below(&r, size);
                bad[at] ^= (unsigned char)(1 + lc_rng_below(&r, 255));
            }
        }
        t_write_file(Q, bad, len);
        trials++;
        lc_status s = ckpt_load(Q, &cfg, 1, w2, m2, v2, &info);
        if (s != LC_OK && strstr(lc_last_error(), Q)) refused++;
        else T_CHECK(0, "trial %d (kind %d) was accepted or gave a message without the path: %s", it, kind, s ? lc_last_error() : "(ok)");
    }
    T_CHECK(refused == trials, "%d of %d refused", refused, trials);
    remove(P);
    remove(Q);
    free(file);
    free(bad);
    free(w);
    free(m);
    free(v);
    free(w2);
    free(m2);
    free(v2);
    return t_finish();
}
