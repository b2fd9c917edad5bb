/* tuning.c — the table of tuning switches and their one parser (see tuning.h for the contract).
 *
 * Each entry: the variable, whether its values are words or integers, and what it accepts:
 * "a|b|c" (a list) or "lo..hi" (an integer range). The comment says what the switch picks and
 * where; the variants themselves and their measurements are described at the dispatch in the
 * kernel file and in results/notes-*.md.
 */
#include "tuning.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

struct tuning_switch {
    const char *var;
    char kind; /* 'w' words, 'i' integers */
    const char *values;
};

static const struct tuning_switch switches[] = {
    /* attention.cu: the dh-64/128 forward tiles of the mma.sync kernels (no sm_90a code) */
    {"LC_ATTN_FWD", 'i', "0..3"},
    /* attention.cu: 0 keeps the mma.sync kernels on sm_90a too */
    {"LC_ATTN_WGMMA", 'i', "0|1"},
    /* attention.cu: the sm_90a forward variant (wgmma 1-5, warp-specialised 13, 16, 24, and 40 = 24
     * with tiles handed out by a counter) */
    {"LC_ATTN_WG", 'i', "1|2|3|4|5|13|16|24|40"},
    /* attention.cu: the sm_90a backward variant (wgmma 1-3, warp-specialised 4-8, 18, 19) */
    {"LC_ATTN_WGB", 'i', "1|2|3|4|5|6|7|8|18|19"},
    /* attention.cu: the backward stages that run (bit mask; for timing with scripts/attention_bench.c
     * --stages only: the gradients are wrong unless all four run, 15) */
    {"LC_ATTN_BWD_STAGES", 'i', "1..15"},
    /* attention.cu: the mma.sync backward tiles */
    {"LC_ATTN_BWD", 'i', "0|1"},
    /* attention.cu: cap on the persistent grid of the warp-specialised kernels (0 = no cap);
     * the tests use a few blocks so that each walks many tiles */
    {"LC_ATTN_WS_GRID", 'i', "0..1000000"},
    /* hsa.cu: the retrieval kernel */
    {"LONGCTX_HSA_RETR", 'w', "v2|wt|wtp|wg|wgp|wgp8"},
    /* hsa.cu: (token, head) rows per CTA of the token-block kernels */
    {"LONGCTX_HSA_ROWS", 'i', "64|128|256"},
    /* hsa.cu: the chunk-attention forward */
    {"LONGCTX_HSA_FWD", 'w', "tok|w3|w7|w8|t15|t17"},
    /* hsa.cu: the t15 forward's racecheck debug mode */
    {"LONGCTX_HSA_FWD_SYNC", 'w', "plain"},
    /* hsa.cu: the chunk-attention backward */
    {"LONGCTX_HSA_BWD", 'w', "tok|t11|t15"},
    /* mamba.cu: a fixed scan chunk length for the forward / the backward (capped) */
    {"LC_MAMBA_TFWD", 'i', "64|128|256|512|1024|2048|4096|8192"},
    {"LC_MAMBA_TBWD", 'i', "64|128|256|512|1024|2048|4096|8192"},
    /* mamba.cu: 1 = the fp32-recurrence backward instead of the tensor-core one */
    {"LC_MAMBA_BWD_FP32", 'i', "0|1"},
    /* mamba.cu: the tensor-core forward (1 first, 2 mma.sync, 3 wgmma, 4 wgmma with two heads of a
     * group per block) */
    {"LC_MAMBA_FWD", 'i', "1|2|3|4"},
    /* mamba.cu: 0 = the backward's local dh pass on mma.sync instead of wgmma */
    {"LC_MAMBA_DHL", 'i', "0|1"},
    /* mamba.cu: 0 = the mma.sync local pass without its decay warp */
    {"LC_MAMBA_LDW", 'i', "0|1"},
    /* mamba.cu: the backward's gradient kernel: 0 = mma.sync (ssd_bwd), 1 = wgmma (ssd_bwd_wg), 2 = wgmma with
     * two heads of a group per block (ssd_bwd_wg2, the default on sm_90a) */
    {"LC_MAMBA_BWG", 'i', "0|1|2"},
};
enum { NSWITCH = (int)(sizeof switches / sizeof switches[0]) };

static const char *const prefixes[] = {"LC_ATTN_", "LC_MAMBA_", "LONGCTX_HSA_"};

static const struct tuning_switch *find(const char *var, size_t len) {
    for (int i = 0; i < NSWITCH; i++)
        if (strlen(switches[i].var) == len && !strncmp(switches[i].var, var, len)) return &switches[i];
    return NULL;
}

/* A whole-string decimal integer (optional sign). */
static int parse_int(const char *s, long long *out) {
    char *end;
    if (!*s) return 0;
    long long v = strtoll(s, &end, 10);
    if (*end) return 0;
    *out = v;
    return 1;
}

/* The index of `value` in the switch's list, or -1 (not listed). For a range, 0 when inside. */
static int value_index(const struct tuning_switch *t, const char *value) {
    const char *dots = strstr(t->values, "..");
    if (dots) {
        long long v, lo = atoll(t->values), hi = atoll(dots + 2);
        return parse_int(value, &v) && v >= lo && v <= hi ? 0 : -1;
    }
    const size_t n = strlen(value);
    int i = 0;
    for (const char *p = t->values; *p; i++) {
        const char *bar = strchr(p, '|');
        const size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, value, n)) return i;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

lc_status lc_tuning_check(void) {
    for (char **e = environ; e && *e; e++) {
        const char *s = *e;
        int ours = 0;
        for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
            if (!strncmp(s, prefixes[i], strlen(prefixes[i]))) ours = 1;
        if (!ours) continue;
        const char *eq = strchr(s, '=');
        if (!eq) continue;
        const struct tuning_switch *t = find(s, (size_t)(eq - s));
        if (!t)
            return lc_errorf(LC_EINVAL, "%.*s: unknown tuning switch (the known ones are listed in kernels/tuning.c)",
                             (int)(eq - s), s);
        if (eq[1] && value_index(t, eq + 1) < 0)
            return lc_errorf(LC_EINVAL, "%s=%s: not a value this tuning switch accepts (%s)", t->var, eq + 1, t->values);
    }
    return LC_OK;
}

/* The switch's table entry; a name missing from the table, or read as the wrong kind, is a bug
 * in the launcher that reads it. */
static const struct tuning_switch *entry(const char *var, char kind) {
    const struct tuning_switch *t = find(var, strlen(var));
    if (!t || t->kind != kind) {
        fprintf(stderr, "longctx: bug: tuning switch %s read as %s is not in kernels/tuning.c's table as one\n", var,
                kind == 'w' ? "words" : "an integer");
        abort();
    }
    return t;
}

int lc_tuning_word(const char *var) {
    const struct tuning_switch *t = entry(var, 'w');
    const char *v = getenv(var);
    return v && *v ? value_index(t, v) : -1;
}

long long lc_tuning_int(const char *var, long long dflt) {
    (void)entry(var, 'i');
    const char *v = getenv(var);
    long long x;
    return v && *v && parse_int(v, &x) ? x : dflt;
}

const char *lc_tuning_name(int i) { return i >= 0 && i < NSWITCH ? switches[i].var : NULL; }
const char *lc_tuning_values(int i) { return i >= 0 && i < NSWITCH ? switches[i].values : NULL; }
