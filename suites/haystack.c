/* haystack.c — load, normalize, split and cost the prose haystack. See haystack.h. */
#include "haystack.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gunzip.h"
#include "sha256.h"
#include "words.h"

static int is_abbrev(const char *w, size_t n) {
    static const char *ab[] = {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "etc.", "e.g.", "i.e.", "cf.",
                               "jr.", "sr.", "prof.", "inc.", "ltd.", "co.", "no.", "vol.", "fig.", "p."};
    for (size_t i = 0; i < sizeof ab / sizeof ab[0]; i++) {
        size_t m = strlen(ab[i]);
        if (m != n) continue;
        size_t j = 0;
        while (j < m && tolower((unsigned char)w[j]) == ab[i][j]) j++;
        if (j == m) return 1;
    }
    return 0;
}

static int ends_sentence(const char *w, size_t n, const char *next) {
    size_t e = n;
    while (e > 0 && strchr("\"')]", w[e - 1])) e--;
    if (e == 0 || !strchr(".!?", w[e - 1])) return 0;
    if (is_abbrev(w, e)) return 0;
    if (!next) return 1;
    unsigned char c = (unsigned char)next[0];
    if (c == '"' || c == '\'' || c == '(') c = (unsigned char)next[1];
    return isupper(c) || isdigit(c);
}

lc_status haystack_load(struct haystack *h, const char *path, const struct tokenizer *tok) {
    memset(h, 0, sizeof *h);
    int is_default = path == NULL;
    if (!path) path = HAYSTACK_DEFAULT_PATH;
    snprintf(h->path, sizeof h->path, "%s", path);
    snprintf(h->name, sizeof h->name, "%s", is_default ? HAYSTACK_DEFAULT_NAME : path);
    h->tok = tok;
    char *raw;
    size_t raw_len;
    lc_status s = read_file_all(path, &raw, &raw_len);
    if (s) {
        if (is_default)
            return lc_errorf(LC_EIO, "the prose haystack %s is missing: install it with 'apt-get install jargon-text' "
                             "(scripts/setup.sh test does this as root), or name a text file with --haystack FILE", path);
        return lc_errorf(s, "haystack file '%s' cannot be read", path);
    }
    sha256_hex(raw, raw_len, h->sha256);
    char *text = raw;
    size_t len = raw_len;
    if (raw_len >= 2 && (unsigned char)raw[0] == 0x1f && (unsigned char)raw[1] == 0x8b) {
        uint8_t *out;
        size_t out_len;
        s = gunzip((const uint8_t *)raw, raw_len, &out, &out_len, path);
        free(raw);
        if (s) return s;
        text = (char *)out;
        len = out_len;
    }
    /* normalize in place: whitespace, control chars and box drawing -> single spaces */
    size_t o = 0;
    int space = 1;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        int ws = 0, adv = 1;
        if (c < 0x20 || c == ' ' || c == 0x7f) ws = 1;
        else if (c == 0xe2 && i + 2 < len && ((unsigned char)text[i + 1] == 0x94 || (unsigned char)text[i + 1] == 0x95 ||
                                               (unsigned char)text[i + 1] == 0x96))
            ws = 1, adv = 3; /* U+2500..U+25BF */
        if (ws) {
            if (!space) text[o++] = ' ';
            space = 1;
            i += (size_t)adv;
        } else {
            text[o++] = text[i++];
            space = 0;
        }
    }
    while (o > 0 && text[o - 1] == ' ') o--;
    text[o] = 0;
    if (o == 0 || o > UINT32_MAX - 1) {
        free(text);
        return lc_errorf(LC_EINVAL, "haystack '%s' has %s", path, o ? "more than 4 GB of text" : "no words");
    }
    h->text = text;
    int64_t nw = 1;
    for (size_t i = 0; i < o; i++) nw += text[i] == ' ';
    h->n_words = nw;
    h->word_off = malloc(sizeof(uint32_t) * (size_t)nw);
    h->word_len = malloc(sizeof(uint32_t) * (size_t)nw);
    h->sent_end = malloc((size_t)nw);
    h->cost = malloc(sizeof(int32_t) * (size_t)nw);
    h->cost0 = malloc(sizeof(int32_t) * (size_t)nw);
    if (!h->word_off || !h->word_len || !h->sent_end || !h->cost || !h->cost0) {
        haystack_free(h);
        return lc_errorf(LC_ENOMEM, "out of memory indexing haystack '%s'", path);
    }
    int64_t k = 0;
    size_t st = 0;
    for (size_t i = 0; i <= o; i++)
        if (i == o || text[i] == ' ') {
            h->word_off[k] = (uint32_t)st;
            h->word_len[k] = (uint32_t)(i - st);
            k++;
            st = i + 1;
        }
    char tmp[1024];
    for (int64_t w = 0; w < nw; w++) {
        const char *p = text + h->word_off[w];
        size_t n = h->word_len[w];
        h->sent_end[w] = (uint8_t)ends_sentence(p, n, w + 1 < nw ? text + h->word_off[w + 1] : NULL);
        if (w + 1 == nw) h->sent_end[w] = 1;
        h->n_sentences += h->sent_end[w];
        if (n + 1 < sizeof tmp) {
            tmp[0] = ' ';
            memcpy(tmp + 1, p, n);
            h->cost[w] = (int32_t)tok_count(tok, tmp, n + 1);
        } else {
            h->cost[w] = (int32_t)(tok_count(tok, " ", 1) + tok_count(tok, p, n));
        }
        h->cost0[w] = (int32_t)tok_count(tok, p, n);
    }
    return LC_OK;
}

void haystack_free(struct haystack *h) {
    free(h->text);
    free(h->word_off);
    free(h->word_len);
    free(h->sent_end);
    free(h->cost);
    free(h->cost0);
    memset(h, 0, sizeof *h);
}
