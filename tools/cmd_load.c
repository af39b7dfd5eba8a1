/*
 * cmd_load.c - `load`: map the input (stdin is first spooled to an
 * unlinked temporary file) and hand it to the bulk loader (load.h); CSV is
 * first converted to JSON Lines (csvfile.h).  --report writes each
 * record's outcome as JSON Lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../replication/csvfile.h"
#include "../replication/load.h"
#include "cli.h"
#include "output.h"

typedef struct input {
    const char *buf; /* the input, len bytes */
    size_t len;
    void *map; /* the mapping of buf, or NULL */
    double t0;
    FILE *report;      /* --report, or NULL */
    int report_failed; /* a write to it failed */
    uint64_t skipped;  /* rows the CSV reader left out */
} input;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Spool stdin into an unlinked temporary file; return its fd. */
static bs_err
spool_stdin(bs_cli *c, int *fd_out)
{
    char buf[1 << 16];
    ssize_t n;
    int fd = open(c->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd < 0)
        return bs_errf(&c->err, BS_EIO, "cannot spool stdin in %s: %s", c->dir,
                       strerror(errno));
    while ((n = read(0, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || write(fd, buf, (size_t)n) != n) {
            close(fd);
            return bs_errf(&c->err, BS_EIO, "cannot spool stdin: %s",
                           strerror(errno));
        }
    }
    *fd_out = fd;
    return BS_OK;
}

/* Map the input (stdin: its spooled copy) at l->buf. */
static bs_err
map_input(bs_cli *c, const char *path, input *l)
{
    struct stat st;
    void *p;
    int fd;
    bs_err rv = BS_OK;

    if (strcmp(path, "-") == 0) {
        if ((rv = spool_stdin(c, &fd)) != BS_OK)
            return rv;
    } else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return bs_errf(&c->err, BS_ENOTFOUND, "%s: no such file", path);
        return bs_errf(&c->err, BS_EIO, "%s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return bs_errf(&c->err, BS_EINVAL, "%s: not a regular file", path);
    }
    l->len = (size_t)st.st_size;
    if (l->len > 0) {
        p = mmap(NULL, l->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            rv = bs_errf(&c->err, BS_EIO, "%s: %s", path, strerror(errno));
        } else {
            /* Read ahead for the check pass; the write pass then finds
             * the whole input mapped. */
            madvise(p, l->len, MADV_SEQUENTIAL);
            l->map = p;
            l->buf = p;
        }
    }
    close(fd);
    return rv;
}

static void
progress(void *ctx, uint64_t done, uint64_t total)
{
    const input *in = ctx;
    double dt = now_s() - in->t0;

    fprintf(stderr, "\rloaded %llu/%llu %s (%.0f/s)%s",
            (unsigned long long)done, (unsigned long long)total,
            BS_PL(total, "record"), dt > 0 ? done / dt : 0.0,
            done == total ? "\n" : "");
}

static void
report(void *ctx, const char *id, bs_load_action a, const char *reason)
{
    input *in = ctx;
    json_t *j;
    char *s;

    if (in->report == NULL)
        return;
    j = json_pack("{s:o, s:s, s:o}", "id", id ? json_string(id) : json_null(),
                  "action", bs_load_action_name(a), "reason",
                  reason ? json_string(reason) : json_null());
    s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s == NULL || fprintf(in->report, "%s\n", s) < 0)
        in->report_failed = 1;
    free(s);
    json_decref(j);
}

static void
csv_skip(void *ctx, uint64_t line, const char *id, const char *why)
{
    input *in = ctx;

    (void)line; /* why names it */
    in->skipped++;
    report(ctx, id, BS_LOAD_SKIPPED, why);
}

/* The load options from the command line; BS_EINVAL on a bad one. */
static bs_err
parse_opts(bs_cli *c, int *csv, bs_load_opts *o, bs_csv_opts *co)
{
    const char *d = c->delimiter;

    *csv = 0;
    if (c->format != NULL && strcmp(c->format, "csv") == 0)
        *csv = 1;
    else if (c->format != NULL && strcmp(c->format, "jsonl") != 0)
        return bs_errf(&c->err, BS_EINVAL,
                       "--format: \"%s\" is not jsonl or csv", c->format);
    if (!*csv && (c->delimiter || c->types || c->id_field))
        return bs_errf(&c->err, BS_EINVAL,
                       "--delimiter, --types and --id-field need --format "
                       "csv");
    if (c->mode == NULL || strcmp(c->mode, "upsert") == 0)
        o->mode = BS_LOAD_UPSERT;
    else if (strcmp(c->mode, "add-only") == 0)
        o->mode = BS_LOAD_ADD_ONLY;
    else if (strcmp(c->mode, "update-only") == 0)
        o->mode = BS_LOAD_UPDATE_ONLY;
    else
        return bs_errf(&c->err, BS_EINVAL,
                       "--mode: \"%s\" is not upsert, add-only or "
                       "update-only",
                       c->mode);
    if (c->on_error != NULL && strcmp(c->on_error, "skip") == 0)
        o->skip = 1;
    else if (c->on_error != NULL && strcmp(c->on_error, "stop") != 0)
        return bs_errf(&c->err, BS_EINVAL,
                       "--on-error: \"%s\" is not stop or skip", c->on_error);
    if (d != NULL && strcmp(d, "tab") == 0)
        d = "\t";
    if (d != NULL && (strlen(d) != 1 || strchr("\"\r\n", d[0]) != NULL))
        return bs_errf(&c->err, BS_EINVAL,
                       "--delimiter: \"%s\" is not one character (nor a "
                       "quote or a line end; \"tab\" for a tab)",
                       d);
    co->delim = d ? d[0] : ',';
    co->types = c->types;
    co->id_field = c->id_field;
    co->skip = o->skip;
    co->on_skip = csv_skip;
    if (c->id_field != NULL &&
        !bs_field_name_valid(c->id_field, strlen(c->id_field)) &&
        strcmp(c->id_field, "id") != 0)
        return bs_errf(&c->err, BS_EINVAL,
                       "--id-field: \"%s\" is not a column name", c->id_field);
    return BS_OK;
}

bs_err
bs_cmd_load(bs_cli *c)
{
    input in = {NULL, 0, NULL, now_s(), NULL, 0, 0};
    bs_load_opts o = {0};
    bs_csv_opts co = {0};
    char *conv = NULL;
    size_t convlen;
    uint64_t *lines = NULL;
    int csv;
    bs_load_stats st = {0};
    const char *coll = c->argv[0];
    bs_core core;
    bs_node *n = NULL;
    bs_err rv;

    if ((rv = bs_records_check_coll(coll, &c->err)) != BS_OK ||
        (rv = parse_opts(c, &csv, &o, &co)) != BS_OK)
        return rv;
    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    if ((rv = map_input(c, c->argv[1], &in)) != BS_OK)
        goto out;
    if (c->report != NULL && (in.report = fopen(c->report, "w")) == NULL) {
        rv = bs_errf(&c->err, BS_EIO, "--report %s: %s", c->report,
                     strerror(errno));
        goto out;
    }
    o.batch = c->batch > 0 ? (size_t)c->batch : 0;
    o.ctx = &in;
    co.ctx = &in;
    /* Telling inserted from updated costs a lookup per record (about 7 %
     * of a load into an empty store): only when the report asks for it. */
    o.actions = c->report != NULL;
    if (in.report != NULL)
        o.report = report;
    if (isatty(2) && !c->quiet)
        o.progress = progress;
    if (csv) {
        if ((rv = bs_csv_to_jsonl(in.buf, in.len, &co, &conv, &convlen, &lines,
                                  &o.nlines, &c->err)) != BS_OK)
            goto out;
        o.lines = lines;
    }
    rv = bs_load_jsonl(&core, coll, csv ? conv : in.buf, csv ? convlen : in.len,
                       &o, &st, &c->err);
    st.records += in.skipped;
    st.skipped += in.skipped;
    if (in.report != NULL && (fflush(in.report) != 0 || in.report_failed) &&
        rv == BS_OK)
        rv =
            bs_errf(&c->err, BS_EIO, "--report %s: cannot write it", c->report);
    if (rv != BS_OK && bs_err_exit_code(rv) == 1) {
        /* Bad input wrote nothing; a failure while writing says how far
         * the load got: its earlier batches stay committed. */
        char why[BS_ERRMSG_LEN];
        snprintf(why, sizeof why, "%s", bs_errmsg(&c->err, rv));
        rv = bs_errf(&c->err, rv,
                     "%s; %llu of %llu records were committed in earlier "
                     "batches%s",
                     why, (unsigned long long)st.committed,
                     (unsigned long long)st.records,
                     st.committed ? " (loading the file again finishes the "
                                    "job)"
                                  : "");
    }
    if (rv != BS_OK)
        goto out;
    if (st.written > 0)
        bs_cli_notify(c, "changed");
    if (c->json) {
        json_t *j = json_pack(
            "{s:s, s:I, s:I, s:I, s:I, s:f}", "collection", coll, "records",
            (json_int_t)st.records, "written", (json_int_t)st.written,
            "unchanged", (json_int_t)st.unchanged, "skipped",
            (json_int_t)st.skipped, "seconds", now_s() - in.t0);

        if (j != NULL && (o.actions || o.mode != BS_LOAD_UPSERT)) {
            json_object_set_new(j, "inserted", json_integer(st.inserted));
            json_object_set_new(j, "updated", json_integer(st.updated));
        }
        bs_out_json(j);
    } else if (!c->quiet)
        fprintf(stderr,
                "loaded %llu %s into %s (%llu unchanged, %llu skipped) in "
                "%.2f s\n",
                (unsigned long long)st.records, BS_PL(st.records, "record"),
                coll, (unsigned long long)st.unchanged,
                (unsigned long long)st.skipped, now_s() - in.t0);
out:
    if (in.report != NULL) {
        fclose(in.report);
        if (rv != BS_OK && st.committed == 0)
            unlink(c->report); /* nothing was written: no report either */
    }
    free(conv);
    free(lines);
    if (in.map != NULL)
        munmap(in.map, in.len);
    bs_node_close(n);
    return rv;
}
