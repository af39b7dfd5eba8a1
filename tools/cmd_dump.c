/*
 * cmd_dump.c - `dump`: a collection's live records as JSON Lines or CSV,
 * to a file (written under a temporary name, then renamed) or stdout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../replication/csvfile.h"
#include "../replication/json.h"
#include "../replication/records.h"
#include "../replication/store.h"
#include "cli.h"

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static void
names_free(names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* Insert name[0..len) at position at. */
static bs_err
names_insert(names *s, size_t at, const char *name, size_t len)
{
    char *p;

    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, cap * sizeof *v);

        if (v == NULL)
            return BS_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    if ((p = strndup(name, len)) == NULL)
        return BS_ENOMEM;
    memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof *s->v);
    s->v[at] = p;
    s->n++;
    return BS_OK;
}

/* Add name to the sorted set (byte order), unless it is there. */
static bs_err
names_add(names *s, const char *name, size_t len)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strncmp(s->v[mid], name, len);

        if (cmp == 0 && s->v[mid][len] == '\0')
            return BS_OK;
        if (cmp < 0 || (cmp == 0 && s->v[mid][len] == '\0'))
            lo = mid + 1;
        else
            hi = mid;
    }
    return names_insert(s, lo, name, len);
}

/* --fields "a,b,c": the columns in that order ("id" may be one of them;
 * when it is not, it comes first). */
static bs_err
parse_fields(bs_cli *c, names *cols)
{
    const char *p = c->fields;
    int have_id = 0;
    bs_err rv;

    while (*p != '\0') {
        size_t n = strcspn(p, ",");

        if (n == 2 && memcmp(p, "id", 2) == 0)
            have_id = 1;
        else if (!bs_field_name_valid(p, n))
            return bs_errf(&c->err, BS_EINVAL,
                           "--fields: \"%.*s\" is not a field name", (int)n, p);
        for (size_t i = 0; i < cols->n; i++)
            if (strlen(cols->v[i]) == n && memcmp(cols->v[i], p, n) == 0)
                return bs_errf(&c->err, BS_EINVAL, "--fields names %.*s twice",
                               (int)n, p);
        if ((rv = names_insert(cols, cols->n, p, n)) != BS_OK)
            return rv;
        p += n + (p[n] == ',');
    }
    if (cols->n == 0)
        return bs_errf(&c->err, BS_EINVAL, "--fields: no field named");
    return have_id ? BS_OK : names_insert(cols, 0, "id", 2);
}

/* Every field name of the collection's live records, "id" first. */
static bs_err
all_fields(bs_cli *c, bs_txn *t, const char *coll, names *cols)
{
    bs_records_iter *it = NULL;
    const bs_record *r;
    const char *id;
    size_t idlen;
    names set = {0};
    bs_err rv = bs_records_iter_open(t, coll, NULL, NULL, &it);

    while (rv == BS_OK &&
           (rv = bs_records_iter_next(it, &id, &idlen, &r, &c->err)) == BS_OK)
        for (size_t i = 0; i < r->nfields && rv == BS_OK; i++)
            rv = names_add(&set, r->fields[i].name, r->fields[i].namelen);
    bs_records_iter_close(it);
    if (rv == BS_ENOTFOUND)
        rv = names_insert(cols, 0, "id", 2);
    for (size_t i = 0; i < set.n && rv == BS_OK; i++) {
        rv = names_insert(cols, cols->n, set.v[i], strlen(set.v[i]));
    }
    names_free(&set);
    return rv;
}

static int
csv_value(FILE *f, const bs_value *v, char delim, int sep)
{
    char tmp[32];
    char *s;
    int rv;

    switch (v->type) {
    case BS_VTEXT:
        return bs_csv_write_cell(f, v->s, v->len, delim, sep);
    case BS_VNULL: /* CSV has no null: an empty cell, as a missing field */
        return sep && putc(delim, f) == EOF ? -1 : 0;
    case BS_VTRUE:
        return bs_csv_write_cell(f, "true", 4, delim, sep);
    case BS_VFALSE:
        return bs_csv_write_cell(f, "false", 5, delim, sep);
    case BS_VINT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
        return bs_csv_write_cell(f, tmp, strlen(tmp), delim, sep);
    default: /* a real, printed as JSON prints it: loads back equal */
        if ((s = bs_json_value_text(v)) == NULL)
            return -1;
        rv = bs_csv_write_cell(f, s, strlen(s), delim, sep);
        free(s);
        return rv;
    }
}

static int
csv_row(FILE *f, const names *cols, const char *id, size_t idlen,
        const bs_record *r, char delim)
{
    for (size_t k = 0; k < cols->n; k++) {
        const bs_value *v;

        if (strcmp(cols->v[k], "id") == 0) {
            if (bs_csv_write_cell(f, id, idlen, delim, k > 0) != 0)
                return -1;
        } else if ((v = bs_record_field(r, cols->v[k])) != NULL) {
            if (csv_value(f, v, delim, k > 0) != 0)
                return -1;
        } else if (k > 0 && putc(delim, f) == EOF) {
            return -1;
        }
    }
    return putc('\n', f) == EOF ? -1 : 0;
}

/* The record with only the fields in cols (jsonl --fields). */
static int
jsonl_row(FILE *f, const names *cols, const char *id, size_t idlen,
          const bs_record *r)
{
    bs_field *keep = NULL;
    bs_record sub = *r;
    char *s;
    int rv;

    if (cols->n > 0) {
        if ((keep = malloc((r->nfields + 1) * sizeof *keep)) == NULL)
            return -1;
        sub.nfields = 0;
        for (size_t i = 0; i < r->nfields; i++)
            for (size_t k = 0; k < cols->n; k++)
                if (strlen(cols->v[k]) == r->fields[i].namelen &&
                    memcmp(cols->v[k], r->fields[i].name,
                           r->fields[i].namelen) == 0) {
                    keep[sub.nfields++] = r->fields[i];
                    break;
                }
        sub.fields = keep;
    }
    s = bs_json_record(id, idlen, &sub);
    free(keep);
    if (s == NULL)
        return -1;
    rv = fputs(s, f) == EOF || putc('\n', f) == EOF ? -1 : 0;
    free(s);
    return rv;
}

static bs_err
dump(bs_cli *c, bs_txn *t, FILE *f, int csv, char delim)
{
    const char *coll = c->argv[0];
    bs_records_iter *it = NULL;
    const bs_record *r;
    const char *id;
    size_t idlen;
    names cols = {0};
    bs_err rv = BS_OK;

    if (c->fields != NULL)
        rv = parse_fields(c, &cols);
    else if (csv)
        rv = all_fields(c, t, coll, &cols);
    for (size_t k = 0; csv && k < cols.n && rv == BS_OK; k++)
        if (bs_csv_write_cell(f, cols.v[k], strlen(cols.v[k]), delim, k > 0) !=
            0)
            rv = BS_EIO;
    if (csv && rv == BS_OK && putc('\n', f) == EOF)
        rv = BS_EIO;
    if (rv == BS_OK)
        rv = bs_records_iter_open(t, coll, NULL, NULL, &it);
    while (rv == BS_OK &&
           (rv = bs_records_iter_next(it, &id, &idlen, &r, &c->err)) == BS_OK)
        if ((csv ? csv_row(f, &cols, id, idlen, r, delim)
                 : jsonl_row(f, &cols, id, idlen, r)) != 0)
            rv = BS_EIO;
    if (rv == BS_ENOTFOUND)
        rv = BS_OK;
    bs_records_iter_close(it);
    names_free(&cols);
    return rv;
}

bs_err
bs_cmd_dump(bs_cli *c)
{
    const char *path = c->argc > 1 ? c->argv[1] : "-";
    const char *d = c->delimiter;
    char tmp[4096];
    int csv = 0, fd = -1;
    FILE *f = stdout;
    bs_node *n = NULL;
    bs_txn *t = NULL;
    bs_err rv;

    if ((rv = bs_records_check_coll(c->argv[0], &c->err)) != BS_OK)
        return rv;
    if (c->format != NULL && strcmp(c->format, "csv") == 0)
        csv = 1;
    else if (c->format != NULL && strcmp(c->format, "jsonl") != 0)
        return bs_errf(&c->err, BS_EINVAL,
                       "--format: \"%s\" is not jsonl or csv", c->format);
    if (d != NULL && !csv)
        return bs_errf(&c->err, BS_EINVAL, "--delimiter needs --format csv");
    if (d != NULL && strcmp(d, "tab") == 0)
        d = "\t";
    if (d != NULL && (strlen(d) != 1 || strchr("\"\r\n", d[0]) != NULL))
        return bs_errf(&c->err, BS_EINVAL,
                       "--delimiter: \"%s\" is not one character (nor a "
                       "quote or a line end; \"tab\" for a tab)",
                       d);
    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if (strcmp(path, "-") != 0) {
        if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >=
            sizeof tmp) {
            rv = bs_errf(&c->err, BS_EINVAL, "%s: path too long", path);
            goto out;
        }
        if ((fd = mkstemp(tmp)) < 0 || (f = fdopen(fd, "w")) == NULL) {
            rv = bs_errf(&c->err, BS_EIO, "cannot write %s: %s", path,
                         strerror(errno));
            if (fd >= 0)
                close(fd);
            fd = -1;
            f = NULL;
            goto out;
        }
    }
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK)
        rv = dump(c, t, f, csv, d ? d[0] : ',');
    if (rv == BS_EIO)
        rv = bs_errf(&c->err, BS_EIO, "cannot write %s: %s",
                     f == stdout ? "the output" : path, strerror(errno));
    if (fflush(f) != 0 && rv == BS_OK)
        rv = bs_errf(&c->err, BS_EIO, "cannot write %s: %s",
                     f == stdout ? "the output" : path, strerror(errno));
    if (f != stdout) {
        if ((fsync(fileno(f)) != 0 || fclose(f) != 0) && rv == BS_OK)
            rv = bs_errf(&c->err, BS_EIO, "cannot write %s: %s", path,
                         strerror(errno));
        f = NULL;
        if (rv == BS_OK && rename(tmp, path) != 0)
            rv = bs_errf(&c->err, BS_EIO, "cannot write %s: %s", path,
                         strerror(errno));
        if (rv != BS_OK)
            unlink(tmp);
    }
out:
    bs_txn_abort(t);
    bs_node_close(n);
    return rv;
}
