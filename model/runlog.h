/* runlog.h — provenance columns for the model CSVs (results/model_*.csv): git_sha (from
 * $LONGCTX_GIT_SHA, else `git rev-parse --short HEAD`, "-dirty" when tracked files changed),
 * device (the driver's name on cuda, "cpu" otherwise) and the UTC date. */
#ifndef LONGCTX_RUNLOG_H
#define LONGCTX_RUNLOG_H
#include <stddef.h>
struct runlog_prov {
    char git_sha[64], device[128], date[32];
};
void runlog_provenance(int is_cuda, struct runlog_prov *p);
#endif
