/* suite_io.c — JSONL serialization of samples. See suite_io.h. */
#include "suite_io.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "qa.h"
#include "sha256.h"

static const char *family_name(enum suite_family f) {
    return f == SUITE_RULER ? "ruler" : f == SUITE_PROBE ? "probe" : "other";
}

void suite_sample_jsonl(const struct suite_spec *spec, const struct suite_sample *s, int no_input, struct jbuf *b) {
    const struct tokenizer *tok = spec->tok ? spec->tok : tokenizer_byte();
    jb_printf(b, "{\"index\": %lld, \"input\": ", (long long)spec->index);
    jb_str(b, s->text, no_input ? 0 : (size_t)s->input_len);
    jb_raw(b, ", \"outputs\": [", 14);
    for (int i = 0; i < s->n_outputs; i++) {
        if (i) jb_raw(b, ", ", 2);
        jb_cstr(b, s->outputs[i]);
    }
    jb_printf(b, "], \"length\": %lld, \"length_w_model_temp\": %lld, \"answer_prefix\": ", (long long)s->length,
              (long long)s->length);
    /* teacher-forced tasks: the answer follows the input directly (no prefix) */
    if (s->task->metric == METRIC_TF) jb_raw(b, "\"\"", 2);
    else jb_str(b, s->text + s->input_len, (size_t)(s->text_len - s->input_len));
    jb_printf(b, ", \"token_position_answer\": %lld, \"others\": {\"id\": %lld, \"task\": ", (long long)s->token_position_answer,
              (long long)spec->index);
    jb_cstr(b, s->task->name);
    if (no_input) {
        char h[65];
        sha256_hex(s->text, (size_t)s->input_len, h);
        jb_printf(b, ", \"input_sha256\": \"%s\"", h);
    }
    jb_printf(b, ", \"suite\": \"%s\", \"max_seq_length\": %lld, \"tokens_to_generate\": %d, \"seed\": %llu, "
                 "\"gen_version\": \"%s\", \"haystack\": \"%s\", \"num_haystack\": %lld, ",
              family_name(s->task->family), (long long)spec->length, s->task->tokens_to_generate,
              (unsigned long long)spec->seed, SUITE_GEN_VERSION, s->haystack, (long long)s->num_haystack);
    if (!strcmp(s->haystack, "essay") || !strcmp(s->haystack, "prose")) {
        jb_raw(b, "\"haystack_source\": ", 19);
        jb_cstr(b, spec->hay->name);
        jb_printf(b, ", \"haystack_sha256\": \"%s\", ", spec->hay->sha256);
    } else if (!strcmp(s->haystack, "documents") && spec->qa) {
        jb_raw(b, "\"haystack_source\": ", 19);
        jb_cstr(b, spec->qa->path[0] ? spec->qa->path : "(in memory)");
        jb_printf(b, ", \"haystack_sha256\": \"%s\", ", spec->qa->sha256);
    } else {
        jb_printf(b, "\"haystack_source\": \"%s\", ", s->haystack);
    }
    jb_raw(b, "\"tokenizer\": ", 13);
    jb_cstr(b, tok->name);
    jb_printf(b, ", \"tokenizer_sha256\": \"%s\", \"metric\": \"%s\", \"depth\": %.6f, \"depth_bin\": %d, \"depth_bins\": %d, "
                 "\"needle_token_spans\": [",
              tok->sha256, s->task->metric == METRIC_ALL ? "string_match_all" : s->task->metric == METRIC_PART ? "string_match_part" : "teacher_forced",
              s->depth, s->depth_bin, spec->depth_bins);
    for (int i = 0; i < s->n_needles; i++)
        jb_printf(b, "%s[%lld, %lld]", i ? ", " : "", (long long)s->needles[i].tok0, (long long)s->needles[i].tok1);
    jb_raw(b, "], \"answer_ids\": [", 18);
    for (int64_t i = 0; i < s->n_answer_ids; i++) jb_printf(b, "%s%d", i ? ", " : "", s->answer_ids[i]);
    jb_raw(b, "]", 1);
    if (s->n_targets) {
        jb_raw(b, ", \"targets\": [", 14);
        for (int64_t i = 0; i < s->n_targets; i++)
            jb_printf(b, "%s[%lld, %d]", i ? ", " : "", (long long)s->target_pos[i], s->target_id[i]);
        jb_raw(b, "]", 1);
    }
    if (!strcmp(s->task->name, "mqar") && s->ids) {
        jb_raw(b, ", \"input_ids\": [", 16);
        for (int64_t i = 0; i < s->n_ids; i++) jb_printf(b, "%s%d", i ? "," : "", s->ids[i]);
        jb_raw(b, "]", 1);
    }
    jb_raw(b, ", \"deviations\": [", 17);
    const char *d = s->deviations;
    int first = 1;
    while (*d) {
        const char *e = strchr(d, ',');
        size_t n = e ? (size_t)(e - d) : strlen(d);
        if (!first) jb_raw(b, ", ", 2);
        jb_str(b, d, n);
        first = 0;
        d += n + (e ? 1 : 0);
    }
    jb_raw(b, "]}}\n", 4);
}

int suite_mkdirs(const char *path) {
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return 0;
            *p = '/';
        }
    return !(mkdir(tmp, 0755) && errno != EEXIST);
}
