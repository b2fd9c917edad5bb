/* longctx.c — main: a git-style dispatcher over the subcommands of cli.h, and `info`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "train.h"
#include "device.h"

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"info", cmd_info, "build features and the CUDA device, if any"},
    {"suite", cmd_suite, "generate and score RULER, token probes, passkey and MQAR samples"},
    {"sweep", cmd_sweep, "run a grid of kernel points, appending one CSV row per point"},
    {"bench", cmd_bench, "Google Benchmark over the kernels at given shapes"},
    {"config", cmd_config, "list presets; print a preset or config file resolved, with its tensors and parameter count"},
    {"tokenize", cmd_tokenize, "byte-level tokenizing of any file into a token file (uint16/uint32 .bin)"},
    {"eval", cmd_eval, "perplexity by context length on a token file; teacher-forced suite tasks with retrieval diagnostics"},
    {"train", cmd_train, "train a model (preset or config) on a token file and/or synthetic suite tasks"},
};
enum { N_SUBCOMMANDS = sizeof subcommands / sizeof subcommands[0] };

static void usage(FILE *f) {
    fprintf(f, "usage: longctx <command> [options]   (longctx <command> --help for its options)\n\ncommands:\n");
    for (int i = 0; i < N_SUBCOMMANDS; i++) fprintf(f, "  %-7s %s\n", subcommands[i].name, subcommands[i].summary);
}

int cmd_info(int argc, char **argv) {
    int has_gpu_query = argc > 1 && strcmp(argv[1], "--has-gpu") == 0;
    if (argc > 1 && !has_gpu_query) {
        if (strcmp(argv[1], "--help") && strcmp(argv[1], "-h"))
            fprintf(stderr, "longctx info: unknown option '%s'\n", argv[1]);
        fprintf(stderr, "usage: longctx info [--has-gpu]\n  --has-gpu  exit 0 if a CUDA device is usable, else print why and exit 1\n");
        return strcmp(argv[1], "--help") && strcmp(argv[1], "-h") ? 2 : 0;
    }
    const char *why = NULL;
    int n = lc_cuda_device_count(&why);
    if (has_gpu_query) {
        if (n > 0) {
            printf("%s\n", lc_device_name());
            return 0;
        }
        printf("%s\n", why ? why : "no CUDA device");
        return 1;
    }
    printf("longctx\n  CUDA backend: %s\n", lc_cuda_built() ? "built" : "not built");
    printf("  NVTX ranges:  %s\n", LC_NVTX ? "on" : "off");
    printf("  Google Benchmark shim: %s\n", LC_GBENCH ? "built" : "not built");
    if (n > 0) {
        size_t fr = 0, tot = 0;
        lc_cuda_mem_info(&fr, &tot);
        printf("  device: %s (%d visible), %.1f GiB free of %.1f GiB\n", lc_device_name(), n,
               fr / 1073741824.0, tot / 1073741824.0);
    } else {
        printf("  device: cpu (%s)\n", why ? why : "no CUDA device");
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < N_SUBCOMMANDS; i++)
        if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "longctx: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
