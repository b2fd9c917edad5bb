/* config_cli.c — `longctx config`: list the presets, print a resolved config (parseable), its
 * parameter tensors and the exact parameter count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void config_usage(FILE *f) {
    fprintf(f,
            "usage: longctx config --list                 presets: layers, parameters, inference state at 16M tokens (bf16)\n"
            "       longctx config NAME|FILE [--tensors]  the resolved config (parseable), optionally every tensor\n"
            "       longctx config NAME --raw             the preset file as written (model/presets/NAME.cfg)\n");
}

static int config_list(void) {
    printf("%-16s %7s %12s %14s  %s\n", "preset", "layers", "parameters", "state@16M GiB", "layers (list)");
    for (int i = 0; i < lc_config_preset_count(); i++) {
        lc_config c;
        const char *name = lc_config_preset_name(i);
        if (lc_config_preset(name, &c)) {
            fprintf(stderr, "longctx config: %s\n", lc_last_error());
            return 1;
        }
        printf("%-16s %7d %12lld %14.2f  %s\n", name, c.n_layers, (long long)lc_config_param_count(&c),
               lc_config_state_bytes(&c, 16777216, 2) / 1073741824.0, c.layers_text);
    }
    return 0;
}

int cmd_config(int argc, char **argv) {
    const char *what = NULL;
    int tensors = 0, raw = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            config_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--list")) {
            return config_list();
        } else if (!strcmp(argv[i], "--tensors")) {
            tensors = 1;
        } else if (!strcmp(argv[i], "--raw")) {
            raw = 1;
        } else if (argv[i][0] == '-' || what) {
            fprintf(stderr, "longctx config: unexpected argument '%s'\n", argv[i]);
            config_usage(stderr);
            return 2;
        } else {
            what = argv[i];
        }
    }
    if (!what) {
        config_usage(stderr);
        return 2;
    }
    if (raw) {
        const char *t = lc_config_preset_text(what);
        if (!t) {
            fprintf(stderr, "longctx config: no preset named '%s' (see --list)\n", what);
            return 1;
        }
        fputs(t, stdout);
        return 0;
    }
    lc_config c;
    if (lc_config_load(what, &c)) {
        fprintf(stderr, "longctx config: %s\n", lc_last_error());
        return 1;
    }
    lc_config_fprint(&c, stdout);
    if (tensors) {
        int64_t n = lc_config_tensors(&c, NULL, 0);
        lc_param *ps = malloc((size_t)n * sizeof *ps);
        if (!ps) return 1;
        lc_config_tensors(&c, ps, n);
        printf("\n# %-40s %-14s %12s  init\n", "tensor", "shape", "numel");
        static const char *init_names[] = {"normal", "zero", "one", "mamba_A_log", "mamba_dt_bias", "uniform", "const"};
        for (int64_t i = 0; i < n; i++) {
            char shape[40];
            if (ps[i].ndim == 2) snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)ps[i].shape[0], (long long)ps[i].shape[1]);
            else snprintf(shape, sizeof shape, "[%lld]", (long long)ps[i].shape[0]);
            printf("# %-40s %-14s %12lld  %s", ps[i].name, shape, (long long)ps[i].numel, init_names[ps[i].init]);
            if (ps[i].init == LC_INIT_NORMAL) printf(" std %.6g", ps[i].std);
            if (ps[i].init == LC_INIT_UNIFORM) printf(" +-%.6g", ps[i].std);
            if (ps[i].init == LC_INIT_CONST) printf(" %.6g", ps[i].std);
            printf("\n");
        }
        free(ps);
    }
    return 0;
}
