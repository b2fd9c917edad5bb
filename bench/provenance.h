/* provenance.h — the provenance columns of every CSV this project writes (sweeps, model runs):
 *   git_sha  $LONGCTX_GIT_SHA, else `git rev-parse --short HEAD`, "-dirty" when tracked files
 *            outside results/ and plots/ (the runs' own outputs) differ; "unknown" outside git
 *   device   the driver's name of the CUDA device ("NVIDIA H100 80GB HBM3"), or the CPU model
 *   date     UTC, ISO 8601 */
#ifndef LONGCTX_PROVENANCE_H
#define LONGCTX_PROVENANCE_H

#include <stddef.h>

struct prov {
    char git_sha[64], device[128], date[32];
};

void prov_git_sha(char *out, size_t cap);
void prov_cpu_model(char *out, size_t cap);
void prov_utc_now(char *out, size_t cap);
/* All three; device is the CUDA device when is_cuda, else the CPU model (commas removed). */
void prov_read(int is_cuda, struct prov *p);

#endif
