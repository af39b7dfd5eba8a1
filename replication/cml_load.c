/*
 * cml_load.c - `cml import` (cml.h): read the whole document first,
 * spooling each collection's records as JSON Lines to an unlinked file,
 * then load each collection through load.h, the path of `load`: checked
 * first, batched local writes, the rules, the mode, the per-record
 * report.  The spool files are mapped, not read into memory, and the XML
 * line of each record is kept (8 bytes a record) so that a refusal at load
 * time names the document's line.
 */
#include "cml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct spool {
    FILE *f;
    uint64_t *lines; /* the XML line of each record */
    size_t n, cap;
} spool;

typedef struct imp {
    spool s[BS_CML_NCOLL];
    const bs_cml_opts *o;
    bs_cml_coll cur; /* the collection being loaded, for the report */
    bs_errbuf *err;
} imp;

static bs_err
on_record(void *ctx, bs_cml_coll c, uint64_t line, const char *json, size_t n)
{
    imp *im = ctx;
    spool *s = &im->s[c];

    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        uint64_t *v = realloc(s->lines, cap * sizeof *v);

        if (v == NULL)
            return BS_ENOMEM;
        s->lines = v;
        s->cap = cap;
    }
    if (fwrite(json, 1, n, s->f) != n || putc('\n', s->f) == EOF)
        return bs_errf(im->err, BS_EIO, "cannot write the spool file: %s",
                       strerror(errno));
    s->lines[s->n++] = line;
    return BS_OK;
}

static void
on_skip(void *ctx, bs_cml_coll c, const char *id, const char *why)
{
    imp *im = ctx;

    if (im->o != NULL && im->o->report != NULL)
        im->o->report(im->o->ctx, bs_cml_coll_name(c), id, BS_LOAD_SKIPPED,
                      why);
}

static void
on_load_report(void *ctx, const char *id, bs_load_action a, const char *reason)
{
    imp *im = ctx;

    im->o->report(im->o->ctx, bs_cml_coll_name(im->cur), id, a, reason);
}

/* An unlinked spool file in dir. */
static bs_err
spool_open(const char *dir, FILE **out, bs_errbuf *err)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd < 0) {
        char path[4096];

        /* O_TMPFILE is not on every file system: a named file, unlinked */
        snprintf(path, sizeof path, "%s/.cml-spool-XXXXXX", dir);
        if ((fd = mkstemp(path)) >= 0)
            unlink(path);
    }
    if (fd < 0 || (*out = fdopen(fd, "w+")) == NULL) {
        if (fd >= 0)
            close(fd);
        return bs_errf(err, BS_EIO, "cannot make a spool file in %s: %s", dir,
                       strerror(errno));
    }
    return BS_OK;
}

static void
add_stats(bs_load_stats *to, const bs_load_stats *s)
{
    to->records += s->records;
    to->written += s->written;
    to->unchanged += s->unchanged;
    to->committed += s->committed;
    to->inserted += s->inserted;
    to->updated += s->updated;
    to->skipped += s->skipped;
}

/* Load the spooled collection c. */
static bs_err
load_one(imp *im, const bs_core *core, bs_cml_coll c, bs_cml_stats *st)
{
    spool *s = &im->s[c];
    bs_load_opts lo = {0};
    bs_load_stats ls = {0};
    long len;
    void *p;
    bs_err rv;

    if (s->n == 0)
        return BS_OK;
    if (fflush(s->f) != 0 || (len = ftell(s->f)) < 0)
        return bs_errf(im->err, BS_EIO, "cannot write the spool file: %s",
                       strerror(errno));
    p = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fileno(s->f), 0);
    if (p == MAP_FAILED)
        return bs_errf(im->err, BS_EIO, "cannot map the spool file: %s",
                       strerror(errno));
    madvise(p, (size_t)len, MADV_SEQUENTIAL);
    lo.batch = BS_CML_BATCH;
    if (im->o != NULL) {
        lo.batch = im->o->batch ? im->o->batch : BS_CML_BATCH;
        lo.mode = im->o->mode;
        lo.skip = im->o->skip;
        lo.actions = im->o->report != NULL;
        if (im->o->report != NULL)
            lo.report = on_load_report;
    }
    lo.lines = s->lines;
    lo.nlines = s->n;
    lo.ctx = im;
    im->cur = c;
    rv = bs_load_jsonl(core, bs_cml_coll_name(c), p, (size_t)len, &lo, &ls,
                       im->err);
    add_stats(&st->load, &ls);
    munmap(p, (size_t)len);
    if (rv != BS_OK) {
        char why[BS_ERRMSG_LEN];

        snprintf(why, sizeof why, "%s", bs_errmsg(im->err, rv));
        rv = bs_errf(im->err, rv, "%s: %s", bs_cml_coll_name(c), why);
    }
    return rv;
}

bs_err
bs_cml_import(const bs_core *c, const char *buf, size_t len,
              const bs_cml_opts *o, bs_cml_stats *st, bs_errbuf *err)
{
    bs_cml_sink sink = {on_record, on_skip, NULL};
    bs_cml_stats dummy;
    imp im;
    bs_err rv = BS_OK;

    memset(&im, 0, sizeof im);
    if (st == NULL)
        st = &dummy;
    memset(st, 0, sizeof *st);
    im.o = o;
    im.err = err;
    sink.ctx = &im;
    for (int i = 0; i < BS_CML_NCOLL && rv == BS_OK; i++)
        rv = spool_open(o && o->tmpdir ? o->tmpdir : "/tmp", &im.s[i].f, err);
    if (rv == BS_OK)
        rv = bs_cml_read(buf, len, o != NULL && o->skip, &sink, &st->info, err);
    for (int i = 0; i < BS_CML_NCOLL; i++)
        st->records[i] = im.s[i].n;
    st->load.records = st->load.skipped = st->info.skipped;
    for (int i = 0; i < BS_CML_NCOLL && rv == BS_OK; i++)
        rv = load_one(&im, c, (bs_cml_coll)i, st);
    for (int i = 0; i < BS_CML_NCOLL; i++) {
        if (im.s[i].f != NULL)
            fclose(im.s[i].f);
        free(im.s[i].lines);
    }
    return rv;
}
