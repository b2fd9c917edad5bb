/* test_csv.c — the CSV writer: quoting round trip, header on a new file, schema check of an
 * existing file, resume keys, and the cut of an incomplete last line. */
#include <unistd.h>

#include "common.h"
#include "csv.h"
#include "test.h"

static const char *const cols[] = {"mixer", "L", "ms", "reason"};

int main(void) {
    char path[] = "/tmp/longctx_test_csv_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);

    t_begin("quote");
    {
        char q[64];
        T_OK(csv_quote("plain", q, sizeof q));
        T_CHECK(!strcmp(q, "plain"), "plain cell changed: %s", q);
        T_OK(csv_quote("a,b", q, sizeof q));
        T_CHECK(!strcmp(q, "\"a,b\""), "comma cell: %s", q);
        T_OK(csv_quote("say \"hi\"", q, sizeof q));
        T_CHECK(!strcmp(q, "\"say \"\"hi\"\"\""), "quote cell: %s", q);
        T_OK(csv_quote("two\nlines", q, sizeof q));
        T_CHECK(!strcmp(q, "\"two\nlines\""), "newline cell: %s", q);
        T_OK(csv_quote(" pad", q, sizeof q));
        T_CHECK(!strcmp(q, "\" pad\""), "leading blank: %s", q);
        T_ERR(csv_quote("0123456789", q, 5), "does not fit");
    }

    t_begin("split_round_trip");
    {
        const char *cells[] = {"swa", "a,b", "x\"y\"z", "", " sp "};
        char line[256] = "", q[64];
        for (int i = 0; i < 5; i++) {
            csv_quote(cells[i], q, sizeof q);
            if (i) strcat(line, ",");
            strcat(line, q);
        }
        char buf[256], *out[8];
        int n = csv_split(line, buf, sizeof buf, out, 8);
        if (T_CHECK(n == 5, "split gave %d cells from %s", n, line))
            for (int i = 0; i < 5; i++) T_CHECK(!strcmp(out[i], cells[i]), "cell %d: '%s' != '%s'", i, out[i], cells[i]);
        T_CHECK(csv_split("\"open,x", buf, sizeof buf, out, 8) == -1, "unterminated quote accepted");
    }

    t_begin("header_rows_and_keys");
    {
        struct csv_writer w;
        if (T_OK(csv_open(&w, path, cols, 4, "mixer,L"))) {
            const char *r1[] = {"dense", "4096", "1.5", ""};
            const char *r2[] = {"swa", "8192", NULL, "oom: needs 3 GiB, 1 GiB free"};
            T_OK(csv_append(&w, r1));
            T_OK(csv_append(&w, r2));
            const char *k1[] = {"dense", "4096"}, *k3[] = {"dense", "8192"};
            T_CHECK(csv_has_key(&w, k1), "appended key not found");
            T_CHECK(!csv_has_key(&w, k3), "absent key found");
            csv_close(&w);
        }
        char *s = t_read_file(path, NULL);
        const char *want = "mixer,L,ms,reason\ndense,4096,1.5,\nswa,8192,,\"oom: needs 3 GiB, 1 GiB free\"\n";
        T_CHECK(s && !strcmp(s, want), "file is:\n%s", s ? s : "(none)");
        free(s);
    }

    t_begin("reopen_reads_keys");
    {
        struct csv_writer w;
        if (T_OK(csv_open(&w, path, cols, 4, "mixer,L"))) {
            const char *k2[] = {"swa", "8192"}, *k3[] = {"swa", "4096"};
            T_CHECK(w.nkeys == 2, "read %zu keys, expected 2", w.nkeys);
            T_CHECK(csv_has_key(&w, k2), "key of a quoted row not read back");
            T_CHECK(!csv_has_key(&w, k3), "absent key found");
            csv_close(&w);
        }
        char *s = t_read_file(path, NULL);
        T_CHECK(s && !strncmp(s, "mixer,L,ms,reason\n", 18) && !strstr(s + 1, "mixer,L"), "header written twice:\n%s", s);
        free(s);
    }

    t_begin("incomplete_last_line_dropped");
    {
        FILE *f = fopen(path, "ab");
        fputs("hsa_attend,16384,2.", f); /* a writer killed mid-row */
        fclose(f);
        struct csv_writer w;
        if (T_OK(csv_open(&w, path, cols, 4, "mixer,L"))) {
            T_CHECK(w.nkeys == 2, "%zu keys after a partial line, expected 2", w.nkeys);
            const char *r[] = {"mamba_scan", "4096", "0.25", ""};
            T_OK(csv_append(&w, r));
            csv_close(&w);
        }
        char *s = t_read_file(path, NULL);
        T_CHECK(s && !strstr(s, "hsa_attend") && strstr(s, "\nmamba_scan,4096,0.25,\n"), "file is:\n%s", s);
        free(s);
    }

    t_begin("schema_check");
    {
        static const char *const other[] = {"mixer", "L", "ms_fwd", "reason"};
        static const char *const fewer[] = {"mixer", "L", "ms"};
        struct csv_writer w;
        T_ERR(csv_open(&w, path, other, 4, NULL), "header column 3 is 'ms', expected 'ms_fwd'");
        T_ERR(csv_open(&w, path, fewer, 3, NULL), "has 4 columns in its header, expected 3");
        T_ERR(csv_open(&w, path, cols, 4, "mixer,nope"), "key column 'nope'");
    }
    unlink(path);
    return t_finish();
}
