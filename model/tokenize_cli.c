/* tokenize_cli.c — `longctx tokenize`: the byte-level tokenizer over any file (token = byte,
 * vocab 256) into a token file of data.h, and --info to inspect one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

static void tokenize_usage(FILE *f) {
    fprintf(f,
            "usage: longctx tokenize IN OUT [--dtype u16|u32]   bytes of IN -> token file OUT (vocab 256; default u16)\n"
            "       longctx tokenize --info FILE                   header, size and the first tokens of a token file\n");
}

static int tokenize_info(const char *path) {
    lc_tokens t;
    if (tokens_open(path, &t)) {
        fprintf(stderr, "longctx tokenize: %s\n", lc_last_error());
        return 1;
    }
    printf("%s: %lld tokens, uint%d, vocab %u\nfirst tokens:", path, (long long)t.n, 8 * t.dtype_bytes, t.vocab);
    for (int64_t i = 0; i < t.n && i < 16; i++) printf(" %u", tokens_get(&t, i));
    printf("\n");
    tokens_close(&t);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int dtype = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            tokenize_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--info") && i + 1 < argc) {
            return tokenize_info(argv[i + 1]);
        } else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "u16")) dtype = 2;
            else if (!strcmp(argv[i], "u32")) dtype = 4;
            else {
                fprintf(stderr, "longctx tokenize: --dtype must be u16 or u32, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "longctx tokenize: unknown option '%s'\n", argv[i]);
            tokenize_usage(stderr);
            return 2;
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            fprintf(stderr, "longctx tokenize: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!in || !out) {
        tokenize_usage(stderr);
        return 2;
    }
    int64_t n = 0;
    double t0 = lc_now();
    if (tokenize_bytes_file(in, out, dtype, &n)) {
        fprintf(stderr, "longctx tokenize: %s\n", lc_last_error());
        return 1;
    }
    fprintf(stderr, "longctx tokenize: %s -> %s: %lld tokens (uint%d, vocab 256) in %.2f s\n", in, out, (long long)n, 8 * dtype, lc_now() - t0);
    return 0;
}
