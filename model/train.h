/* train.h — `longctx train` (model/train.c) and its learning-rate schedule. */
#ifndef LONGCTX_TRAIN_H
#define LONGCTX_TRAIN_H
#include <stdint.h>
/* Linear warm-up over `warmup` steps to `peak`, then cosine down to peak * floor_frac at `steps`. */
double train_lr(double peak, double floor_frac, int64_t warmup, int64_t steps, int64_t s);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv); /* model/eval.c */
#endif
