/*
 * csvfile.h - CSV (RFC 4180) in and out of records, on Debian's libcsv.
 *
 * Reading turns a CSV file into JSON Lines, one flat object per data row,
 * which `load` then checks and writes like any JSON Lines input (load.h):
 *
 *  - the first row is the header: the field names, each valid
 *    (bs_field_name_valid) and unique; one column (`id`, or the one named
 *    by id_field) gives each record's ID and is not stored as a field;
 *  - quoting is RFC 4180: a field in double quotes may hold the delimiter,
 *    CR, LF and doubled quotes; a quote inside an unquoted field, text
 *    after a closing quote and an unterminated quote are errors; spaces are
 *    data; lines end in LF or CRLF; blank lines are skipped; a UTF-8 byte
 *    order mark at the start is skipped;
 *  - every row has as many cells as the header;
 *  - an empty unquoted cell is no field at all; a quoted empty cell ("")
 *    is the empty string; any other cell is a string unless `types` gives
 *    its column a type: `number` (a JSON number: -?digits[.digits][e±digits])
 *    or `bool` (true or false, any case); `string` is the default.
 *
 * Errors name the line (1-based, of the file, counting the header) and the
 * column.  With skip set, a bad data row is passed to on_skip and left out
 * instead; a bad header, bad options or a quoting error are always fatal
 * (the rows after an unbalanced quote cannot be told apart).
 */
#ifndef BS_CSVFILE_H
#define BS_CSVFILE_H

#include <stdio.h>

#include "common.h"

typedef struct bs_csv_opts {
    char delim;           /* the delimiter (0: ',') */
    const char *id_field; /* the column of the IDs (NULL: "id") */
    const char *types;    /* "name:type,..." (NULL: all strings) */
    int skip;             /* bad data rows go to on_skip, not an error */
    /* a skipped row: its line, its ID (NULL when unknown), why */
    void (*on_skip)(void *ctx, uint64_t line, const char *id, const char *why);
    void *ctx;
} bs_csv_opts;

/*
 * Convert buf[0..len) (not NUL-terminated) to JSON Lines: *out (malloc'd,
 * *outlen bytes, each line ending in LF; the caller frees it) holds one
 * object per accepted data row, with its "id"; *lines (malloc'd, *nlines
 * entries; the caller frees it) the file line each object's row starts on.
 * Both are NULL when no row was accepted.  BS_EINVAL (err names the line
 * and column) on bad options or input; BS_ENOMEM.  On error *out and
 * *lines are NULL.
 */
BS_MUST_CHECK bs_err bs_csv_to_jsonl(const char *buf, size_t len,
                                     const bs_csv_opts *o, char **out,
                                     size_t *outlen, uint64_t **lines,
                                     size_t *nlines, bs_errbuf *err);

/*
 * Write one cell s[0..n) to f, quoted by libcsv when it holds the
 * delimiter, a quote, CR or LF, or is empty (so that "" stays the empty
 * string); sep: write the delimiter before it.  -1 on a write error.
 */
int bs_csv_write_cell(FILE *f, const char *s, size_t n, char delim, int sep);

#endif
