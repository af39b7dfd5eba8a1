/*
 * cml_load.c - `cml import` (cml.h): read the whole document first,
 * spooling each collection's records as JSON Lines to an unlinked file,
 * then load each collection through load.h, the path of `load`: checked
 * first, batched local writes, the rules, the mode, the per-record
 * report.  The XML line of each record goes to a second spool file, so
 * that a refusal at load time names the document's line.
 *
 * Memory stays flat in the document's size: the spools are mapped, not
 * read, and a collection is handed to bs_load_jsonl CHUNK records at a
 * time (load.c keeps 24 bytes a record of its input to sort it) - except
 * when the rules could refuse a record and errors stop the import: then
 * the collection is one call, one transaction, so a refusal writes
 * nothing (as `load` does).
 */
#include "cml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Records per bs_load_jsonl call. */
#define CHUNK 50000

typedef struct spool {
    FILE *f;  /* the records, one JSON object a line */
    FILE *lf; /* the XML line of each record, a uint64_t each */
    size_t n; /* records */
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

    if (fwrite(json, 1, n, s->f) != n || putc('\n', s->f) == EOF ||
        fwrite(&line, sizeof line, 1, s->lf) != 1)
        return bs_errf(im->err, BS_EIO, "cannot write the spool file: %s",
                       strerror(errno));
    s->n++;
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

/* Map f whole (read-only); *len its size. */
static bs_err
map_spool(imp *im, FILE *f, void **p, size_t *len)
{
    long n;

    if (fflush(f) != 0 || (n = ftell(f)) < 0)
        return bs_errf(im->err, BS_EIO, "cannot write the spool file: %s",
                       strerror(errno));
    *len = (size_t)n;
    *p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fileno(f), 0);
    if (*p == MAP_FAILED)
        return bs_errf(im->err, BS_EIO, "cannot map the spool file: %s",
                       strerror(errno));
    madvise(*p, *len, MADV_SEQUENTIAL);
    return BS_OK;
}

/* Load buf[0..len), whole lines of the spool. */
static bs_err
load_chunk(imp *im, const bs_core *core, bs_cml_coll c, bs_load_opts *lo,
           const char *buf, size_t len, bs_cml_stats *st)
{
    bs_load_stats ls = {0};
    bs_err rv =
        bs_load_jsonl(core, bs_cml_coll_name(c), buf, len, lo, &ls, im->err);

    add_stats(&st->load, &ls);
    return rv;
}

/* Load the spooled collection c, CHUNK records a call (all in one when
 * the rules could refuse one and errors stop the import). */
static bs_err
load_one(imp *im, const bs_core *core, bs_cml_coll c, bs_cml_stats *st)
{
    spool *s = &im->s[c];
    bs_load_opts lo = {0};
    size_t len, llen, pos = 0, k = 0, chunk = CHUNK;
    void *p = NULL, *lp = NULL;
    int refuse = 0;
    bs_err rv;

    if (s->n == 0)
        return BS_OK;
    lo.batch = BS_CML_BATCH;
    if (im->o != NULL) {
        lo.batch = im->o->batch ? im->o->batch : BS_CML_BATCH;
        chunk = im->o->chunk ? im->o->chunk : CHUNK;
        lo.mode = im->o->mode;
        lo.skip = im->o->skip;
        lo.actions = im->o->report != NULL;
        if (im->o->report != NULL)
            lo.report = on_load_report;
    }
    lo.ctx = im;
    im->cur = c;
    if (!lo.skip && (rv = bs_load_may_refuse(core, bs_cml_coll_name(c), &refuse,
                                             im->err)) != BS_OK)
        return rv;
    if (refuse)
        chunk = s->n;
    if ((rv = map_spool(im, s->f, &p, &len)) != BS_OK)
        return rv;
    if ((rv = map_spool(im, s->lf, &lp, &llen)) != BS_OK) {
        munmap(p, len);
        return rv;
    }
    while (rv == BS_OK && pos < len) {
        const char *b = (const char *)p + pos, *e = b, *nl;
        size_t n = 0;

        while (n < chunk &&
               (nl = memchr(e, '\n', len - (size_t)(e - (const char *)p))) !=
                   NULL) {
            e = nl + 1;
            n++;
        }
        lo.lines = (const uint64_t *)lp + k;
        lo.nlines = n;
        rv = load_chunk(im, core, c, &lo, b, (size_t)(e - b), st);
        pos += (size_t)(e - b);
        k += n;
    }
    munmap(p, len);
    munmap(lp, llen);
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
        if ((rv = spool_open(o && o->tmpdir ? o->tmpdir : "/tmp", &im.s[i].f,
                             err)) == BS_OK)
            rv = spool_open(o && o->tmpdir ? o->tmpdir : "/tmp", &im.s[i].lf,
                            err);
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
        if (im.s[i].lf != NULL)
            fclose(im.s[i].lf);
    }
    return rv;
}
