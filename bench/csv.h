/* csv.h — the CSV writer behind every CSV under results/ (schema rules: ../shared/DESIGN.md).
 *
 * One header row, then one row per measured point, appended and flushed as soon as it is
 * written, so an interrupted sweep loses at most the row being written. Cells are RFC 4180:
 * a cell holding a comma, a double quote, a newline or leading/trailing blanks is quoted, with
 * inner quotes doubled. The caller formats numbers as plain numbers; an empty cell means
 * "not measured".
 *
 * Opening an existing file checks its header against the expected columns (same names, same
 * order) and refuses a mismatch with a message naming the first differing column, so a schema
 * change never silently mixes two layouts in one file. A last line without its newline (the
 * writer was killed mid-row) is cut off before appending. The key columns of the rows already
 * present can be read back so a rerun skips them (csv_has_key).
 */
#ifndef LONGCTX_CSV_H
#define LONGCTX_CSV_H

#include <stdio.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct csv_writer {
    FILE *f;
    char path[512];
    int ncols;
    const char *const *cols;
    /* keys of the rows found in the file when it was opened (and of rows appended since) */
    char **keys;
    size_t nkeys, cap_keys;
    int nkeycols;
    int keycol[32]; /* indices into cols */
};

/* Quote one cell into out (size cap) if it needs it; returns LC_EINVAL when it does not fit. */
lc_status csv_quote(const char *cell, char *out, size_t cap);

/* Split one CSV line (no trailing newline needed) into at most max cells, unquoting them.
 * Cells point into `buf` (a copy the caller provides, size bufcap). Returns the cell count or
 * -1 on a malformed line (unterminated quote). */
int csv_split(const char *line, char *buf, size_t bufcap, char **cells, int max);

/* Open `path` for appending rows with columns `cols` (ncols of them; the array must outlive
 * the writer). A missing or empty file gets the header. `keycols` (comma-separated column
 * names, NULL = none) are the columns whose joined values identify a point for csv_has_key. */
lc_status csv_open(struct csv_writer *w, const char *path, const char *const *cols, int ncols,
                   const char *keycols);
/* 1 if a row with this key (values of the key columns, in order) is present. */
int csv_has_key(const struct csv_writer *w, const char *const *keyvals);
/* Append one row (ncols cells; NULL = empty) and flush it to the file. */
lc_status csv_append(struct csv_writer *w, const char *const *cells);
/* Append one row given as a single string whose cells are separated by `sep` (a byte that no
 * cell holds, e.g. CSV_SEP): for rows built with one snprintf. `row` is split in place. */
#define CSV_SEP "\x1f"
lc_status csv_append_split(struct csv_writer *w, char *row, char sep);
void csv_close(struct csv_writer *w);

#ifdef __cplusplus
}
#endif
#endif
