/*
 * csvfile.c - CSV to JSON Lines for `load`, and cells for `dump`.
 *
 * libcsv does the quoting rules; it is fed one line at a time, so that
 * every callback knows the line it is on and a row knows the line it
 * started on (the parser's state before a line says whether a row is open).
 */
#include "csvfile.h"

#include <csv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "record.h"

enum { T_STRING, T_NUMBER, T_BOOL };

/* A growable byte buffer. */
typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static int
buf_grow(buf *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 4096;
    char *p;

    if (b->n + more <= b->cap)
        return 0;
    while (cap < b->n + more)
        cap *= 2;
    if ((p = realloc(b->p, cap)) == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int
buf_add(buf *b, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (buf_grow(b, n) != 0)
        return -1;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

/* s[0..n) as the inside of a JSON string. */
static int
buf_json_str(buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    if (buf_grow(b, 6 * n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char *d = b->p + b->n;

        if (ch == '"' || ch == '\\') {
            d[0] = '\\';
            d[1] = (char)ch;
            b->n += 2;
        } else if (ch < 0x20) {
            memcpy(d, "\\u00", 4);
            d[4] = hex[ch >> 4];
            d[5] = hex[ch & 15];
            b->n += 6;
        } else {
            d[0] = (char)ch;
            b->n++;
        }
    }
    return 0;
}

typedef struct conv {
    const bs_csv_opts *o;
    bs_errbuf *err;
    const char *idname;
    uint64_t line;     /* the line being parsed */
    uint64_t row_line; /* the line the open row started on */
    int header;        /* the header row is being read */
    char **names;      /* the header's names, ncol of them */
    int *types;
    size_t ncol, capcol, idcol;
    size_t col;  /* cells of the open row so far */
    buf row;     /* its fields as JSON members, each after a comma */
    buf id;      /* its ID */
    int have_id; /* the ID cell was there */
    int bad;     /* the row is refused: why is in msg */
    char msg[BS_ERRMSG_LEN];
    buf out;
    uint64_t *lines;
    size_t nlines, caplines;
    bs_err rv; /* fatal: stops the parse */
} conv;

static void BS_PRINTF(2, 3) row_bad(conv *c, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (c->bad)
        return;
    n = snprintf(c->msg, sizeof c->msg, "line %llu",
                 (unsigned long long)c->line);
    va_start(ap, fmt);
    vsnprintf(c->msg + n, sizeof c->msg - (size_t)n, fmt, ap);
    va_end(ap);
    c->bad = 1;
}

/* A JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
is_number(const char *s, size_t n)
{
    size_t i = 0, d;

    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        for (d = ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == d)
            return 0;
    }
    return i == n;
}

static void
nomem(conv *c)
{
    c->rv = BS_ENOMEM;
}

static void
header_cell(conv *c, const char *s, size_t n)
{
    if (c->ncol == c->capcol) {
        size_t cap = c->capcol ? 2 * c->capcol : 16;
        char **v = realloc(c->names, cap * sizeof *v);
        int *t;

        if (v == NULL)
            return nomem(c);
        c->names = v;
        if ((t = realloc(c->types, cap * sizeof *t)) == NULL)
            return nomem(c);
        c->types = t;
        c->capcol = cap;
    }
    if ((c->names[c->ncol] = malloc(n + 1)) == NULL)
        return nomem(c);
    memcpy(c->names[c->ncol], s ? s : "", n);
    c->names[c->ncol][n] = '\0';
    c->types[c->ncol++] = T_STRING;
}

static void
data_cell(conv *c, const char *s, size_t n)
{
    size_t k = c->col++;
    const char *name;
    int t;

    if (k >= c->ncol || c->bad)
        return; /* counted; refused at the end of the row */
    if (s != NULL && !bs_utf8_valid(s, n))
        return row_bad(c,
                       ", column %s: not UTF-8 (convert the file, e.g. "
                       "iconv -f windows-1251 -t utf-8)",
                       c->names[k]);
    if (k == c->idcol) {
        c->have_id = s != NULL && n > 0;
        c->id.n = 0;
        if (c->have_id && buf_add(&c->id, s, n) != 0)
            nomem(c);
        if (!c->have_id)
            row_bad(c, ", column %s: no ID", c->names[k]);
        return;
    }
    if (s == NULL)
        return; /* an empty unquoted cell: no field */
    name = c->names[k];
    if (memchr(s, '\0', n) != NULL)
        return row_bad(c, ", column %s: a NUL byte", name);
    t = c->types[k];
    if (t == T_NUMBER && !is_number(s, n))
        return row_bad(c, ", column %s: \"%.*s\" is not a number", name,
                       (int)(n > 40 ? 40 : n), s);
    if (t == T_BOOL) {
        if (n == 4 && strncasecmp(s, "true", 4) == 0)
            s = "true";
        else if (n == 5 && strncasecmp(s, "false", 5) == 0)
            s = "false";
        else
            return row_bad(c, ", column %s: \"%.*s\" is not true or false",
                           name, (int)(n > 40 ? 40 : n), s);
    }
    if (buf_add(&c->row, ",\"", 2) != 0 ||
        buf_json_str(&c->row, name, strlen(name)) != 0 ||
        buf_add(&c->row, "\":", 2) != 0)
        return nomem(c);
    if (t == T_STRING) {
        if (buf_add(&c->row, "\"", 1) != 0 || buf_json_str(&c->row, s, n) ||
            buf_add(&c->row, "\"", 1) != 0)
            nomem(c);
    } else if (buf_add(&c->row, s, t == T_BOOL ? strlen(s) : n) != 0) {
        nomem(c);
    }
}

static void
on_cell(void *s, size_t n, void *ctx)
{
    conv *c = ctx;

    if (c->rv != BS_OK)
        return;
    if (c->header)
        header_cell(c, s, n);
    else
        data_cell(c, s, n);
}

/* Apply --types "name:type,..." to the header's columns. */
static bs_err
apply_types(conv *c)
{
    const char *p = c->o ? c->o->types : NULL;

    while (p != NULL && *p != '\0') {
        size_t n = strcspn(p, ","), k;
        const char *colon = memchr(p, ':', n), *ty;
        size_t nlen, tlen;
        int t;

        if (colon == NULL || colon == p)
            return bs_errf(c->err, BS_EINVAL,
                           "--types: \"%.*s\" is not NAME:TYPE (TYPE string, "
                           "number or bool)",
                           (int)n, p);
        nlen = (size_t)(colon - p);
        ty = colon + 1;
        tlen = n - nlen - 1;
        if (tlen == 6 && memcmp(ty, "string", 6) == 0)
            t = T_STRING;
        else if (tlen == 6 && memcmp(ty, "number", 6) == 0)
            t = T_NUMBER;
        else if (tlen == 4 && memcmp(ty, "bool", 4) == 0)
            t = T_BOOL;
        else
            return bs_errf(c->err, BS_EINVAL,
                           "--types: unknown type \"%.*s\" for %.*s (string, "
                           "number or bool)",
                           (int)tlen, ty, (int)nlen, p);
        for (k = 0; k < c->ncol; k++)
            if (strlen(c->names[k]) == nlen &&
                memcmp(c->names[k], p, nlen) == 0)
                break;
        if (k == c->ncol)
            return bs_errf(c->err, BS_EINVAL,
                           "--types names column \"%.*s\", which the header "
                           "lacks",
                           (int)nlen, p);
        if (k == c->idcol && t != T_STRING)
            return bs_errf(c->err, BS_EINVAL,
                           "--types: the ID column %s is always a string",
                           c->names[k]);
        c->types[k] = t;
        p += n + (p[n] == ',');
    }
    return BS_OK;
}

static bs_err
end_header(conv *c)
{
    c->idcol = c->ncol;
    for (size_t k = 0; k < c->ncol; k++) {
        const char *name = c->names[k];

        if (strcmp(name, c->idname) == 0 && c->idcol == c->ncol) {
            c->idcol = k;
            continue;
        }
        if (strcmp(name, c->idname) == 0)
            return bs_errf(c->err, BS_EINVAL,
                           "line %llu: column %s appears twice in the header",
                           (unsigned long long)c->line, name);
        if (strcmp(name, "id") == 0)
            return bs_errf(c->err, BS_EINVAL,
                           "line %llu: --id-field %s, but the header has an "
                           "id column too (\"id\" is never a field)",
                           (unsigned long long)c->line, c->idname);
        if (!bs_field_name_valid(name, strlen(name)))
            return bs_errf(c->err, BS_EINVAL,
                           "line %llu, column %zu: \"%s\" is not a field name "
                           "(1 to 128 bytes of UTF-8 without control "
                           "characters, not \"id\")",
                           (unsigned long long)c->line, k + 1, name);
        for (size_t j = 0; j < k; j++)
            if (strcmp(c->names[j], name) == 0)
                return bs_errf(c->err, BS_EINVAL,
                               "line %llu: column %s appears twice in the "
                               "header",
                               (unsigned long long)c->line, name);
    }
    if (c->idcol == c->ncol)
        return bs_errf(c->err, BS_EINVAL,
                       "line %llu: the header has no %s column (name the ID "
                       "column with --id-field)",
                       (unsigned long long)c->line, c->idname);
    return apply_types(c);
}

static void
end_data(conv *c)
{
    if (!c->bad && c->col != c->ncol)
        row_bad(c, ": %zu %s, but the header has %zu", c->col,
                c->col == 1 ? "cell" : "cells", c->ncol);
    if (c->bad) {
        if (c->o == NULL || !c->o->skip) {
            c->rv = bs_errf(c->err, BS_EINVAL, "%s", c->msg);
            return;
        }
        if (c->o->on_skip != NULL) {
            if (c->have_id && buf_add(&c->id, "", 1) != 0)
                return nomem(c);
            c->o->on_skip(c->o->ctx, c->row_line, c->have_id ? c->id.p : NULL,
                          c->msg);
        }
        return;
    }
    if (c->nlines == c->caplines) {
        size_t cap = c->caplines ? 2 * c->caplines : 1024;
        uint64_t *v = realloc(c->lines, cap * sizeof *v);

        if (v == NULL)
            return nomem(c);
        c->lines = v;
        c->caplines = cap;
    }
    c->lines[c->nlines++] = c->row_line;
    if (buf_add(&c->out, "{\"id\":\"", 7) != 0 ||
        buf_json_str(&c->out, c->id.p, c->id.n) != 0 ||
        buf_add(&c->out, "\"", 1) != 0 ||
        buf_add(&c->out, c->row.p, c->row.n) != 0 ||
        buf_add(&c->out, "}\n", 2) != 0)
        nomem(c);
}

static void
on_row(int ch, void *ctx)
{
    conv *c = ctx;

    (void)ch;
    if (c->rv != BS_OK)
        return;
    if (c->header) {
        c->header = 0;
        c->rv = end_header(c);
    } else {
        end_data(c);
    }
    c->row_line = c->line; /* a CR alone ends a row inside a line */
    c->col = 0;
    c->row.n = 0;
    c->have_id = 0;
    c->bad = 0;
}

/* Spaces are data (RFC 4180), not padding to trim. */
static int
no_space(unsigned char ch)
{
    (void)ch;
    return 0;
}

/* The parser between rows (libcsv's ROW_NOT_BEGUN). */
#define ROW_NOT_BEGUN 0

bs_err
bs_csv_to_jsonl(const char *in, size_t len, const bs_csv_opts *o, char **out,
                size_t *outlen, uint64_t **lines, size_t *nlines,
                bs_errbuf *err)
{
    struct csv_parser p;
    conv c;
    size_t pos = 0;

    *out = NULL;
    *outlen = 0;
    *lines = NULL;
    *nlines = 0;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.err = err;
    c.header = 1;
    c.idname = o && o->id_field ? o->id_field : "id";
    if (len >= 3 && memcmp(in, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL |
                         CSV_EMPTY_IS_NULL) != 0)
        return BS_ENOMEM;
    csv_set_delim(&p, (unsigned char)(o && o->delim ? o->delim : ','));
    csv_set_space_func(&p, no_space);
    while (pos < len && c.rv == BS_OK) {
        const char *nl = memchr(in + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (in + pos)) + 1 : len - pos;

        c.line++;
        if (p.pstate == ROW_NOT_BEGUN)
            c.row_line = c.line;
        if (csv_parse(&p, in + pos, n, on_cell, on_row, &c) != n &&
            c.rv == BS_OK)
            c.rv = csv_error(&p) == CSV_EPARSE
                       ? bs_errf(err, BS_EINVAL,
                                 "line %llu: bad quoting (a quote inside an "
                                 "unquoted cell, or text after a closing "
                                 "quote)",
                                 (unsigned long long)c.line)
                       : BS_ENOMEM;
        pos += n;
    }
    if (c.rv == BS_OK && csv_fini(&p, on_cell, on_row, &c) != 0 &&
        c.rv == BS_OK)
        c.rv = csv_error(&p) == CSV_EPARSE
                   ? bs_errf(err, BS_EINVAL,
                             "line %llu: a quoted cell opened on line %llu "
                             "is never closed",
                             (unsigned long long)c.line,
                             (unsigned long long)c.row_line)
                   : BS_ENOMEM;
    if (c.rv == BS_OK && c.header)
        c.rv = bs_errf(err, BS_EINVAL, "no header row: the input is empty");
    csv_free(&p);
    for (size_t k = 0; k < c.ncol; k++)
        free(c.names[k]);
    free(c.names);
    free(c.types);
    free(c.row.p);
    free(c.id.p);
    if (c.rv != BS_OK) {
        free(c.out.p);
        free(c.lines);
        return c.rv;
    }
    *out = c.out.p;
    *outlen = c.out.n;
    *lines = c.lines;
    *nlines = c.nlines;
    return BS_OK;
}

int
bs_csv_write_cell(FILE *f, const char *s, size_t n, char delim, int sep)
{
    int quote = n == 0 || s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' ||
                s[n - 1] == '\t';

    if (sep && putc(delim, f) == EOF)
        return -1;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == delim || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote)
        return fwrite(s, 1, n, f) == n ? 0 : -1;
    return csv_fwrite(f, s, n) == 0 ? 0 : -1;
}
