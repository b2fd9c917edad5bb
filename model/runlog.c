/* runlog.c — provenance for the model CSVs (see runlog.h). */
#include "runlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "device.h"

static void read_cmd(const char *cmd, char *out, size_t cap) {
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(out, (int)cap, p)) out[0] = 0;
    pclose(p);
    out[strcspn(out, "\r\n")] = 0;
}

void runlog_provenance(int is_cuda, struct runlog_prov *p) {
    const char *env = getenv("LONGCTX_GIT_SHA");
    if (env && *env) snprintf(p->git_sha, sizeof p->git_sha, "%s", env);
    else {
        read_cmd("git rev-parse --short HEAD 2>/dev/null", p->git_sha, sizeof p->git_sha);
        if (!p->git_sha[0]) snprintf(p->git_sha, sizeof p->git_sha, "unknown");
        else {
            char dirty[8];
            read_cmd("git status --porcelain --untracked-files=no 2>/dev/null | head -1", dirty, sizeof dirty);
            if (dirty[0] && strlen(p->git_sha) + 7 < sizeof p->git_sha) strcat(p->git_sha, "-dirty");
        }
    }
    snprintf(p->device, sizeof p->device, "%s", is_cuda ? lc_device_name() : "cpu");
    for (char *c = p->device; *c; c++)
        if (*c == ',') *c = ' ';
    time_t t = time(NULL);
    struct tm g;
    gmtime_r(&t, &g);
    strftime(p->date, sizeof p->date, "%Y-%m-%dT%H:%M:%SZ", &g);
}
