/* test_tuning.c — the tuning-switch table and its parser (kernels/tuning.c): known switches read
 * back, unknown names and unaccepted values rejected with a message naming them, unset and empty
 * values taking the default. In a CUDA build, also that the CUDA entry points of the attention,
 * HSA and Mamba families refuse a bad switch with LC_EINVAL naming it before they touch their
 * arguments or the device (so the NULL tensors there are never read; no GPU is needed). */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "test.h"
#include "tuning.h"
#if LC_CUDA
#include "attention.h"
#include "hsa.h"
#include "mamba.h"
#endif

/* status is LC_EINVAL and the message names `want` */
static int named(lc_status st, const char *want) { return st == LC_EINVAL && strstr(lc_last_error(), want) != NULL; }

/* lc_tuning_check fails and its message holds `want` */
static int rejects(const char *want) { return named(lc_tuning_check(), want); }

int main(void) {
    static const char *prefixes[] = {"LC_ATTN_", "LC_MAMBA_", "LONGCTX_HSA_"};

    t_begin("the table: prefixed, unique names, non-empty value lists");
    int n = 0;
    for (; lc_tuning_name(n); n++) {
        const char *name = lc_tuning_name(n), *vals = lc_tuning_values(n);
        int prefixed = 0;
        for (int p = 0; p < 3; p++) prefixed |= !strncmp(name, prefixes[p], strlen(prefixes[p]));
        T_CHECK(prefixed, "%s has none of the switch prefixes", name);
        T_CHECK(vals && *vals, "%s has no values", name);
        for (int j = 0; j < n; j++) T_CHECK(strcmp(name, lc_tuning_name(j)), "%s listed twice", name);
        unsetenv(name); /* the cases below start from a clean environment */
    }
    T_CHECK(n >= 10, "only %d switches", n);
    T_CHECK(lc_tuning_name(-1) == NULL && lc_tuning_values(n) == NULL, "out-of-range index not NULL");

    t_begin("unset and empty switches take the default");
    T_CHECK(lc_tuning_check() == LC_OK, "clean environment rejected: %s", lc_last_error());
    T_CHECK(lc_tuning_word("LONGCTX_HSA_FWD") == -1, "unset word switch not -1");
    T_CHECK(lc_tuning_int("LC_ATTN_WG", 13) == 13, "unset int switch not the default");
    setenv("LC_ATTN_WG", "", 1);
    setenv("LONGCTX_HSA_FWD", "", 1);
    T_CHECK(lc_tuning_check() == LC_OK, "empty value rejected: %s", lc_last_error());
    T_CHECK(lc_tuning_int("LC_ATTN_WG", 13) == 13 && lc_tuning_word("LONGCTX_HSA_FWD") == -1, "empty value not the default");

    t_begin("accepted values read back");
    setenv("LONGCTX_HSA_FWD", "t17", 1);
    setenv("LC_ATTN_WG", "16", 1);
    setenv("LC_ATTN_WS_GRID", "3", 1);
    setenv("LC_MAMBA_TFWD", "2048", 1);
    T_CHECK(lc_tuning_check() == LC_OK, "valid values rejected: %s", lc_last_error());
    T_CHECK(lc_tuning_word("LONGCTX_HSA_FWD") == 5, "t17 is the 6th word, got %d", lc_tuning_word("LONGCTX_HSA_FWD"));
    T_CHECK(lc_tuning_int("LC_ATTN_WG", 0) == 16, "LC_ATTN_WG read %lld", lc_tuning_int("LC_ATTN_WG", 0));
    T_CHECK(lc_tuning_int("LC_ATTN_WS_GRID", 0) == 3, "range switch misread");
    T_CHECK(lc_tuning_int("LC_MAMBA_TFWD", 0) == 2048, "LC_MAMBA_TFWD misread");

    t_begin("an unaccepted value is named with what the switch accepts");
    setenv("LONGCTX_HSA_FWD", "t16", 1); /* a removed variant */
    T_CHECK(rejects("LONGCTX_HSA_FWD=t16") && strstr(lc_last_error(), "tok|"), "t16: %s", lc_last_error());
    setenv("LONGCTX_HSA_FWD", "t1", 1); /* a prefix of a listed word is not that word */
    T_CHECK(rejects("LONGCTX_HSA_FWD=t1"), "t1 accepted");
    setenv("LONGCTX_HSA_FWD", "t17", 1);
    setenv("LC_ATTN_WG", "99", 1);
    T_CHECK(rejects("LC_ATTN_WG=99"), "99 accepted: %s", lc_last_error());
    setenv("LC_ATTN_WG", "16x", 1);
    T_CHECK(rejects("LC_ATTN_WG=16x"), "trailing junk accepted");
    setenv("LC_ATTN_WG", "16", 1);
    setenv("LC_ATTN_WS_GRID", "-1", 1);
    T_CHECK(rejects("LC_ATTN_WS_GRID=-1") && strstr(lc_last_error(), "0..1000000"), "out of range accepted");
    setenv("LC_ATTN_WS_GRID", "abc", 1);
    T_CHECK(rejects("LC_ATTN_WS_GRID=abc"), "non-number accepted in a range");
    unsetenv("LC_ATTN_WS_GRID");
    setenv("LC_MAMBA_TFWD", "100", 1);
    T_CHECK(rejects("LC_MAMBA_TFWD=100"), "a chunk length that is not a listed power of two accepted");
    unsetenv("LC_MAMBA_TFWD");

    t_begin("an unknown switch under a switch prefix is named");
    setenv("LC_ATTN_WGBB", "7", 1);
    T_CHECK(rejects("LC_ATTN_WGBB: unknown tuning switch"), "typo accepted: %s", lc_last_error());
    unsetenv("LC_ATTN_WGBB");
    setenv("LONGCTX_GIT_SHA", "abc", 1); /* other LONGCTX_ variables are not switches */
    T_CHECK(lc_tuning_check() == LC_OK, "a non-switch variable rejected: %s", lc_last_error());
#if LC_CUDA
    const struct attn_shape as = {.B = 1, .L = 300, .HQ = 4, .H = 2, .dh = 64, .W = 128, .causal = 1};
    const struct hsa_shape hs = {.B = 1, .L = 512, .HQ = 16, .H = 1, .dh = 64, .S = 64, .K = 4, .Hr = 1, .dr = 64, .block_q = 1};
    const struct mamba_scan_shape ms = {.B = 1, .L = 256, .H = 2, .P = 64, .G = 1, .N = 128};

    t_begin("attention forward and backward name a bad LC_ATTN_ switch");
    setenv("LC_ATTN_WG", "99", 1);
    T_CHECK(named(attention_forward_cuda(&as, NULL, NULL, NULL, NULL, NULL, NULL), "LC_ATTN_WG=99"), "forward: %s", lc_last_error());
    T_CHECK(named(attention_backward_cuda(&as, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "LC_ATTN_WG=99"),
            "backward: %s", lc_last_error());
    unsetenv("LC_ATTN_WG");
    setenv("LC_ATTN_WGBB", "7", 1); /* a misspelt switch */
    T_CHECK(named(attention_forward_cuda(&as, NULL, NULL, NULL, NULL, NULL, NULL), "LC_ATTN_WGBB"), "typo: %s", lc_last_error());
    unsetenv("LC_ATTN_WGBB");

    t_begin("HSA retrieval and chunk attention name a bad LONGCTX_HSA_ switch");
    setenv("LONGCTX_HSA_FWD", "t99", 1);
    T_CHECK(named(hsa_retrieve_cuda(&hs, NULL, NULL, NULL, NULL, NULL, NULL), "LONGCTX_HSA_FWD=t99"), "retrieve: %s", lc_last_error());
    T_CHECK(named(hsa_attend_forward_cuda(&hs, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "LONGCTX_HSA_FWD=t99"),
            "attend forward: %s", lc_last_error());
    unsetenv("LONGCTX_HSA_FWD");
    setenv("LONGCTX_HSA_BWD", "fast", 1);
    T_CHECK(named(hsa_attend_backward_cuda(&hs, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                  "LONGCTX_HSA_BWD=fast"),
            "attend backward: %s", lc_last_error());
    unsetenv("LONGCTX_HSA_BWD");

    t_begin("Mamba scan forward and backward name a bad LC_MAMBA_ switch");
    setenv("LC_MAMBA_FWD", "9", 1);
    T_CHECK(named(mamba_scan_forward_cuda(&ms, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "LC_MAMBA_FWD=9"), "forward: %s", lc_last_error());
    unsetenv("LC_MAMBA_FWD");
    setenv("LC_MAMBA_TBWD", "1000", 1);
    T_CHECK(named(mamba_scan_backward_cuda(&ms, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                  "LC_MAMBA_TBWD=1000"),
            "backward: %s", lc_last_error());
    unsetenv("LC_MAMBA_TBWD");
#endif
    return t_finish();
}
