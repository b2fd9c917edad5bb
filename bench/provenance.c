/* provenance.c — the provenance columns of every CSV this project writes (see provenance.h). */
#include "provenance.h"

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

void prov_git_sha(char *out, size_t cap) {
    const char *env = getenv("LONGCTX_GIT_SHA");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    read_cmd("git rev-parse --short HEAD 2>/dev/null", out, cap);
    if (!out[0]) {
        snprintf(out, cap, "unknown");
        return;
    }
    char dirty[8];
    /* outputs (results/, plots/) do not make the code dirty: the sweep itself rewrites them */
    read_cmd("git status --porcelain --untracked-files=no -- . ':!results' ':!plots' 2>/dev/null | head -1 | cut -c1-3",
             dirty, sizeof dirty);
    if (dirty[0] && strlen(out) + 7 < cap) strcat(out, "-dirty");
}

void prov_cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t') c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(out, cap, "%s", c);
            }
            break;
        }
    fclose(f);
}

void prov_utc_now(char *out, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void prov_read(int is_cuda, struct prov *p) {
    prov_git_sha(p->git_sha, sizeof p->git_sha);
    if (is_cuda) snprintf(p->device, sizeof p->device, "%s", lc_device_name());
    else prov_cpu_model(p->device, sizeof p->device);
    for (char *c = p->device; *c; c++)
        if (*c == ',') *c = ' ';
    prov_utc_now(p->date, sizeof p->date);
}
