/* test_model_train.c — `longctx train` end to end on the cpu backend: the learning-rate schedule
 * (warm-up, cosine, floor), a run of 6 steps equals a run of 4 steps saved and resumed for 2 more
 * (weights and AdamW state restored, batches a function of the step), and the loss falls. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "data.h"
#include "test.h"
#include "train.h"

static const char *cfg_text =
    "[model]\nvocab = 64\nd = 32\ncontext = 64\nlayers = swa chunk (retrieval hsa swa)*1\n"
    "[attn]\nheads = 2\nkv_heads = 2\ndh = 16\nW = 16\nmlp = 48\n"
    "[encoder]\nlayers = 1\nheads = 2\nkv_heads = 2\ndh = 16\nmlp = 48\n"
    "[hsa]\nS = 16\nK = 2\nd_r = 16\nHQ = 2\nH = 1\ndh = 16\nmlp = 48\n";

static int run(const char *const *args, int n) {
    char *argv[32];
    for (int i = 0; i < n; i++) argv[i] = (char *)args[i];
    return cmd_train(n, argv);
}

int main(void) {
    t_begin("train_lr_schedule");
    T_CHECK(fabs(train_lr(1e-3, 0.1, 10, 100, 0) - 1e-4) < 1e-12, "first warm-up step");
    T_CHECK(fabs(train_lr(1e-3, 0.1, 10, 100, 9) - 1e-3) < 1e-12, "end of warm-up");
    T_CHECK(fabs(train_lr(1e-3, 0.1, 10, 100, 55) - 0.55e-3) < 1e-9, "cosine midpoint %g", train_lr(1e-3, 0.1, 10, 100, 55));
    T_CHECK(fabs(train_lr(1e-3, 0.1, 10, 100, 100) - 1e-4) < 1e-12, "floor");

    t_begin("train_resume_equals_uninterrupted");
    const char *cfg = "build/test_train.cfg", *tokf = "build/test_train.bin";
    FILE *f = fopen(cfg, "w");
    T_CHECK(f != NULL, "cannot write %s", cfg);
    if (!f) return t_finish();
    fputs(cfg_text, f);
    fclose(f);
    uint32_t *tok = malloc(sizeof(uint32_t) * 20000);
    for (int i = 0; i < 20000; i++) tok[i] = (uint32_t)((i * 7 + (i / 13) * 3) % 64); /* learnable pattern */
    T_OK(tokens_write(tokf, tok, 20000, 2, 64));
    free(tok);
    const char *common[] = {"train", "--config", cfg, "--backend", "cpu", "--data", tokf, "--batch", "2", "--seq", "64",
                            "--warmup", "2", "--lr", "3e-3", "--log-every", "2", "--csv", "build/test_train.csv"};
    const int nc = (int)(sizeof common / sizeof common[0]);
    const char *a[32], *b[32], *c[32];
    int na = 0, nb = 0, nc2 = 0;
    for (int i = 0; i < nc; i++) a[na++] = b[nb++] = c[nc2++] = common[i];
    a[na++] = "--steps"; a[na++] = "6"; a[na++] = "--save"; a[na++] = "build/test_train_a.ckpt";
    b[nb++] = "--steps"; b[nb++] = "6"; b[nb++] = "--stop-after"; b[nb++] = "4"; b[nb++] = "--save"; b[nb++] = "build/test_train_b.ckpt";
    /* the resumed run: total steps 6 (the schedule's horizon), from step 4 */
    c[nc2++] = "--steps"; c[nc2++] = "6"; c[nc2++] = "--resume"; c[nc2++] = "build/test_train_b.ckpt";
    c[nc2++] = "--save"; c[nc2++] = "build/test_train_c.ckpt";
    remove("build/test_train.csv");
    T_CHECK(run(a, na) == 0, "6-step run failed: %s", lc_last_error());
    T_CHECK(run(b, nb) == 0, "run stopped after 4 steps failed");
    T_CHECK(run(c, nc2) == 0, "resumed run failed");
    lc_config cf;
    T_OK(lc_config_load(cfg, &cf));
    int64_t n = lc_config_param_count(&cf);
    float *pa = malloc(sizeof(float) * (size_t)n), *pc = malloc(sizeof(float) * (size_t)n);
    ckpt_info ia, ic;
    T_OK(ckpt_load("build/test_train_a.ckpt", &cf, 1, pa, NULL, NULL, &ia));
    T_OK(ckpt_load("build/test_train_c.ckpt", &cf, 1, pc, NULL, NULL, &ic));
    double maxd = 0;
    for (int64_t i = 0; i < n; i++) maxd = fmax(maxd, fabs((double)pa[i] - pc[i]));
    printf("  6 steps vs 4 + resume 2: max |param difference| %.3g (steps %llu, %llu)\n", maxd,
           (unsigned long long)ia.step, (unsigned long long)ic.step);
    T_CHECK(maxd < 1e-6, "resumed run differs from the uninterrupted one by %g", maxd);
    T_CHECK(ia.step == 6 && ic.step == 6, "steps %llu %llu", (unsigned long long)ia.step, (unsigned long long)ic.step);
    /* the loss falls: first vs last logged loss of the uninterrupted run (rows 1 and 3 of the CSV) */
    FILE *cv = fopen("build/test_train.csv", "r");
    char line[1024];
    double loss[8] = {0};
    int nl = 0;
    while (cv && fgets(line, sizeof line, cv) && nl < 8) {
        char *p = line;
        for (int k = 0; k < 3 && p; k++) p = strchr(p, ','), p = p ? p + 1 : NULL;
        if (nl > 0 && p) loss[nl - 1] = atof(p);
        nl++;
    }
    if (cv) fclose(cv);
    T_CHECK(nl >= 4 && loss[2] < loss[0] - 0.2, "logged loss %g -> %g did not fall", loss[0], loss[2]);
    free(pa);
    free(pc);
    remove("build/test_train_a.ckpt");
    remove("build/test_train_b.ckpt");
    remove("build/test_train_c.ckpt");
    return t_finish();
}
