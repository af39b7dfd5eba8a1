/*
 * load.c - bulk upsert from JSON Lines.
 *
 * Two passes over the input:
 *
 *  1. check: parse every line (flatjson.c) and check its "id", so that bad
 *     input writes nothing.  Each record leaves a 24-byte index entry: the
 *     first 8 bytes of its id, the id's length, and where the line is.
 *  2. write: sort the index once, then parse the lines again in that order
 *     and write `batch` records per write transaction.
 *
 * The order is (id prefix, id length, position in the input).  LMDB inserts
 * keys in order many times faster than random ones, and with the whole
 * input sorted the batches cover disjoint, increasing key ranges, so each
 * leaf page is written about once for the whole load instead of once per
 * batch (docs/performance.md).  Records whose ids share prefix and length
 * keep input order among themselves: they are neighbours in the tree anyway,
 * and records with the same id are written in input order, so the last one
 * wins.
 */
#include "load.h"

#include <string.h>

#include "flatjson.h"
#include "local.h"
#include "meta.h"
#include "records.h"
#include "rules.h"

#define DEFAULT_BATCH 100000

/* One record of the input, 24 bytes. */
typedef struct rec {
    uint64_t key;   /* the id's first 8 bytes, big-endian, zero-padded */
    uint64_t off;   /* where its line starts in the input */
    uint32_t len;   /* the line's length, without the line end */
    uint32_t idlen; /* the id's length */
} rec;

typedef struct load {
    const bs_core *c;
    const char *coll;
    const char *buf; /* the input, len bytes */
    size_t len;
    bs_errbuf *err;
    rec *idx; /* every record, in input order, then sorted */
    size_t nidx, cap;
    size_t lo, hi;  /* the batch being written: idx[lo..hi) */
    bs_arena arena; /* the fields of the line being parsed */
    uint64_t written, unchanged, lines;
    uint64_t bw, bu;       /* the batch's counts, taken once it commits */
    uint64_t committed;    /* records of the input in committed batches */
    const bs_load_opts *o; /* may be NULL */
    int probe;             /* look each record up first */
    bs_arena parena;       /* what the lookup decodes */
    uint64_t inserted, updated, skipped;
    uint64_t bi, bup, bsk; /* the batch's inserted, updated, skipped */
    /* the batch's outcomes for the report: an action byte, then the ID
     * and its NUL, per record (rebuilt when the batch runs again) */
    char *blog;
    size_t blogn, blogcap;
    size_t fail; /* the record the batch stopped at, or SIZE_MAX */
    char failid[BS_ID_MAX + 1]; /* its ID */
} load;

const char *
bs_load_action_name(bs_load_action a)
{
    switch (a) {
    case BS_LOAD_INSERTED:
        return "inserted";
    case BS_LOAD_UPDATED:
        return "updated";
    case BS_LOAD_UNCHANGED:
        return "unchanged";
    default:
        return "skipped";
    }
}

/* The batch log's action bytes: bs_load_action, or these skips. */
#define SKIP_EXISTS  10 /* add-only, live */
#define SKIP_MISSING 11 /* update-only, not live */

/* The file line of input line n (CSV rows were converted to lines). */
static uint64_t
file_line(const load *l, uint64_t n)
{
    if (l->o != NULL && l->o->lines != NULL && n >= 1 && n <= l->o->nlines)
        return l->o->lines[n - 1];
    return n;
}

/* The next line [*pos, end of line); returns 0 at the end of input. */
static int
next_line(const load *l, size_t *pos, const char **line, size_t *n)
{
    const char *nl;

    if (*pos >= l->len)
        return 0;
    *line = l->buf + *pos;
    nl = memchr(*line, '\n', l->len - *pos);
    *n = nl ? (size_t)(nl - *line) : l->len - *pos;
    *pos += *n + (nl != NULL);
    if (*n > 0 && (*line)[*n - 1] == '\r')
        (*n)--;
    return 1;
}

static int
blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return 0;
    return 1;
}

static uint64_t
id_key(const char *id, size_t n)
{
    uint8_t b[8] = {0};

    memcpy(b, id, n < 8 ? n : 8);
    return bs_get_u64be(b);
}

/* The 1-based line number of the line starting at off (error path). */
static uint64_t
line_of(const load *l, uint64_t off)
{
    uint64_t n = 1;

    for (const char *p = l->buf, *e = l->buf + off;
         (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
        n++;
    return n;
}

/* bs_id_valid() without its strlen(); printable ASCII is settled eight
 * bytes at a time, and any other byte (C0, DEL, the lead byte of a C1
 * character or of any UTF-8 sequence) sends the ID to bs_id_valid(). */
static int
id_valid(const char *id, size_t n)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones * 0x80;
    size_t i = 0;

    if (n == 0 || n > BS_ID_MAX)
        return 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;

        memcpy(&w, id + i, 8);
        /* A high bit where a byte is < 0x20 or >= 0x7f. */
        if ((((w - ones * 0x20) & ~w) | (w + ones) | w) & highs)
            return bs_id_valid(id);
    }
    for (; i < n; i++)
        if ((unsigned char)id[i] < 0x20 || (unsigned char)id[i] >= 0x7f)
            return bs_id_valid(id);
    return 1;
}

/* Parse one line; on error the message names the line (lineno 0: count
 * it). */
static bs_err
parse_line(load *l, bs_arena *a, const char *s, size_t n, uint64_t lineno,
           const char **id, size_t *idlen, bs_field **f, size_t *nf)
{
    bs_errbuf e2;
    bs_err rv;

    e2.msg[0] = '\0';
    rv = bs_flatjson_fields(s, n, a, id, idlen, f, nf, &e2);
    if (rv == BS_OK && *id == NULL)
        rv = bs_errf(&e2, BS_EINVAL, "object has no \"id\"");
    if (rv == BS_OK && !id_valid(*id, *idlen))
        rv = bs_errf(&e2, BS_EINVAL,
                     "bad \"id\": 1 to %d bytes of UTF-8 without control "
                     "characters",
                     BS_ID_MAX);
    if (rv != BS_OK && lineno == 0)
        lineno = line_of(l, (uint64_t)(s - l->buf));
    if (rv != BS_OK)
        return bs_errf(l->err, rv, "line %llu: %s",
                       (unsigned long long)file_line(l, lineno),
                       bs_errmsg(&e2, rv));
    return BS_OK;
}

static bs_err
check_all(load *l)
{
    size_t pos = 0, n, idlen, nf;
    const char *s, *id;
    bs_field *f;
    uint64_t lineno = 0;
    bs_err rv = BS_OK;

    while (next_line(l, &pos, &s, &n)) {
        rec *r;

        lineno++;
        if (blank(s, n))
            continue;
        bs_arena_reset(&l->arena);
        if ((rv = parse_line(l, &l->arena, s, n, lineno, &id, &idlen, &f,
                             &nf)) != BS_OK) {
            if (l->o == NULL || !l->o->skip || rv == BS_ENOMEM)
                break;
            /* --on-error skip: report the line and go on */
            l->skipped++;
            l->lines++;
            if (l->o->report != NULL)
                l->o->report(l->o->ctx, NULL, BS_LOAD_SKIPPED,
                             bs_errmsg(l->err, rv));
            rv = BS_OK;
            continue;
        }
        if (l->nidx == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : l->len / 128 + 1024;
            rec *v = realloc(l->idx, cap * sizeof *v);

            if (v == NULL)
                return BS_ENOMEM;
            l->idx = v;
            l->cap = cap;
        }
        r = &l->idx[l->nidx++];
        r->key = id_key(id, idlen);
        r->off = (uint64_t)(s - l->buf);
        r->len = (uint32_t)n; /* <= BS_RECORD_JSON_MAX, or refused */
        r->idlen = (uint32_t)idlen;
        l->lines++;
    }
    return rv;
}

/* ---- sorting the index: introsort, compares inlined ---- */

static inline int
rec_lt(const rec *a, const rec *b)
{
    if (a->key != b->key)
        return a->key < b->key;
    if (a->idlen != b->idlen)
        return a->idlen < b->idlen;
    return a->off < b->off;
}

static void
sift_down(rec *v, size_t i, size_t n)
{
    rec x = v[i];

    for (size_t c; (c = 2 * i + 1) < n; i = c) {
        if (c + 1 < n && rec_lt(&v[c], &v[c + 1]))
            c++;
        if (!rec_lt(&x, &v[c]))
            break;
        v[i] = v[c];
    }
    v[i] = x;
}

static void
heap_sort(rec *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t i = n; i-- > 1;) {
        rec x = v[0];

        v[0] = v[i];
        v[i] = x;
        sift_down(v, 0, i);
    }
}

static void
insertion_sort(rec *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        rec x = v[i];
        size_t j = i;

        for (; j > 0 && rec_lt(&x, &v[j - 1]); j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

static void
swap(rec *a, rec *b)
{
    rec x = *a;

    *a = *b;
    *b = x;
}

static void
intro_sort(rec *v, size_t n, int depth)
{
    while (n > 24) {
        size_t i, j, m = n / 2;
        rec pivot;

        if (depth-- == 0) {
            heap_sort(v, n);
            return;
        }
        /* Median of three to v[0] as the pivot; v[n - 1] bounds the scan. */
        if (rec_lt(&v[m], &v[0]))
            swap(&v[m], &v[0]);
        if (rec_lt(&v[n - 1], &v[0]))
            swap(&v[n - 1], &v[0]);
        if (rec_lt(&v[n - 1], &v[m]))
            swap(&v[n - 1], &v[m]);
        swap(&v[0], &v[m]);
        pivot = v[0];
        /* Hoare partition of v[1..n): keys are unique (off is). */
        i = 0;
        j = n;
        for (;;) {
            while (rec_lt(&v[++i], &pivot))
                ;
            while (rec_lt(&pivot, &v[--j]))
                ;
            if (i >= j)
                break;
            swap(&v[i], &v[j]);
        }
        swap(&v[0], &v[j]);
        /* v[0..j) < pivot = v[j] < v(j..n): recurse on the smaller side. */
        if (j < n - j - 1) {
            intro_sort(v, j, depth);
            v += j + 1;
            n -= j + 1;
        } else {
            intro_sort(v + j + 1, n - j - 1, depth);
            n = j;
        }
    }
    insertion_sort(v, n);
}

static void
sort_index(rec *v, size_t n)
{
    int depth = 0;

    for (size_t k = n; k > 1; k >>= 1)
        depth += 2;
    intro_sort(v, n, depth);
}

/* ---- writing ---- */

/* How far ahead write_batch() prefetches lines: they are scattered over
 * the input, and each costs a cache (and TLB) miss otherwise. */
#define PREFETCH 8

/* Note record i's outcome a in the batch log (when reporting). */
static bs_err
log_action(load *l, const char *id, int a)
{
    size_t n = strlen(id) + 2;

    if (l->o == NULL || l->o->report == NULL)
        return BS_OK;
    if (l->blogn + n > l->blogcap) {
        size_t cap = l->blogcap ? 2 * l->blogcap : 1 << 16;
        char *p;

        while (cap < l->blogn + n)
            cap *= 2;
        if ((p = realloc(l->blog, cap)) == NULL)
            return BS_ENOMEM;
        l->blog = p;
        l->blogcap = cap;
    }
    l->blog[l->blogn] = (char)a;
    memcpy(l->blog + l->blogn + 1, id, n - 1);
    l->blogn += n;
    return BS_OK;
}

/* Write record i (id, fields f[0..nf)) by the mode, noting its outcome. */
static bs_err
put_one(load *l, bs_local *loc, bs_txn *t, size_t i, const char *id,
        bs_field *f, size_t nf, bs_errbuf *err)
{
    bs_load_mode mode = l->o ? l->o->mode : BS_LOAD_UPSERT;
    uint64_t w0 = loc->written;
    int live = 0;
    bs_err rv;

    if (l->probe) {
        uint8_t key[BS_RECKEY_MAX];
        size_t klen = bs_record_key(key, l->coll, id);
        bs_record r;
        bs_slice v;

        /* (not bs_records_get(): its "not found" message costs more than
         * the lookup) */
        rv = bs_txn_get(t, BS_DB_RECORDS, bs_mem(key, klen), &v);
        if (rv == BS_OK) {
            bs_arena_reset(&l->parena);
            if (bs_record_decode(&r, v.p, v.n, &l->parena) != BS_OK)
                return bs_errf(err, BS_ESTORE,
                               "%s/%s: stored record is "
                               "corrupt",
                               l->coll, id);
            live = r.live;
        } else if (rv != BS_ENOTFOUND) {
            return rv;
        }
        if ((mode == BS_LOAD_ADD_ONLY && live) ||
            (mode == BS_LOAD_UPDATE_ONLY && !live)) {
            l->bsk++;
            return log_action(l, id, live ? SKIP_EXISTS : SKIP_MISSING);
        }
    }
    rv = bs_local_put(loc, l->coll, id, f, nf, err);
    if ((rv == BS_EPERM || rv == BS_EINVAL || rv == BS_EEXIST) &&
        l->o != NULL && l->o->skip) {
        l->fail = i;
        snprintf(l->failid, sizeof l->failid, "%s", id);
    }
    if (rv != BS_OK)
        return rv;
    if (loc->written == w0)
        return log_action(l, id, BS_LOAD_UNCHANGED);
    if (live)
        l->bup++;
    else
        l->bi++;
    return log_action(l, id,
                      live || !l->probe ? BS_LOAD_UPDATED : BS_LOAD_INSERTED);
}

static bs_err
write_batch(bs_txn *t, void *arg, bs_errbuf *err)
{
    load *l = arg;
    bs_local loc;
    bs_err rv;

    l->bi = l->bup = l->bsk = 0;
    l->blogn = 0;
    l->fail = SIZE_MAX;
    if ((rv = bs_local_begin(&loc, t, l->c, err)) != BS_OK)
        goto out;
    for (size_t i = l->lo; i < l->hi && rv == BS_OK; i++) {
        const rec *r = &l->idx[i];
        const char *id;
        size_t idlen, nf;
        bs_field *f;

        if (i + PREFETCH < l->hi) {
            const char *p = l->buf + l->idx[i + PREFETCH].off;

            __builtin_prefetch(p);
            __builtin_prefetch(p + 64);
        }
        bs_arena_reset(&l->arena);
        /* The check pass accepted this line: an error here means that
         * someone modified the file meanwhile. */
        rv = parse_line(l, &l->arena, l->buf + r->off, r->len, 0, &id, &idlen,
                        &f, &nf);
        if (rv == BS_OK && (idlen != r->idlen || id_key(id, idlen) != r->key))
            rv = bs_errf(err, BS_EIO,
                         "line %llu: the input changed during the load",
                         (unsigned long long)file_line(l, line_of(l, r->off)));
        if (rv == BS_OK)
            rv = put_one(l, &loc, t, i, id, f, nf, err);
    }
    if (rv == BS_OK)
        rv = bs_local_finish(&loc, err);
    if (rv == BS_OK) { /* run again from the start if the map grows */
        l->bw = loc.written;
        l->bu = loc.unchanged;
    }
out:
    bs_local_fini(&loc);
    return rv;
}

/* Whether the rules can refuse a local write to coll: its writers are not
 * `all` and this node is not the hub (local.c, check_rules). */
static bs_err
may_refuse(const load *l, int *out)
{
    bs_collection rules;
    bs_meta meta;
    bs_txn *t;
    bs_err rv;

    *out = 1;
    if ((rv = bs_store_read(l->c->store, &t, l->err)) != BS_OK)
        return rv;
    if ((rv = bs_meta_load(t, &meta, l->err)) == BS_OK &&
        (rv = bs_rules_at(t, l->coll, UINT64_MAX, &rules, NULL)) == BS_OK)
        *out = rules.writers != BS_WRITERS_ALL &&
               !(meta.joined && memcmp(meta.pk, meta.hub, BS_PK_LEN) == 0);
    bs_txn_abort(t);
    return rv;
}

bs_err
bs_load_may_refuse(const bs_core *c, const char *coll, int *out, bs_errbuf *err)
{
    load l;

    memset(&l, 0, sizeof l);
    l.c = c;
    l.coll = coll;
    l.err = err;
    return may_refuse(&l, out);
}

/* A batch committed: count it and report its records. */
static void
batch_done(load *l)
{
    static const char *const why[] = {
        [SKIP_EXISTS] = "exists (--mode add-only)",
        [SKIP_MISSING] = "not found (--mode update-only)",
    };

    l->written += l->bw;
    l->unchanged += l->bu;
    l->inserted += l->bi;
    l->updated += l->bup;
    l->skipped += l->bsk;
    l->committed = l->hi;
    if (l->o == NULL || l->o->report == NULL)
        return;
    for (size_t i = 0; i < l->blogn;) {
        int a = (unsigned char)l->blog[i];
        const char *id = l->blog + i + 1;

        l->o->report(l->o->ctx, id,
                     a >= SKIP_EXISTS ? BS_LOAD_SKIPPED : (bs_load_action)a,
                     a >= SKIP_EXISTS ? why[a] : NULL);
        i += strlen(id) + 2;
    }
}

/* Write idx[lo..hi); with skip, a record refused at write time (the
 * rules, or too large for a change) is left out: the records before it
 * are written again and committed, and the load goes on after it. */
static bs_err
write_range(load *l)
{
    char why[BS_ERRMSG_LEN];
    size_t bad;
    bs_err rv = bs_store_write(l->c->store, write_batch, l, l->err);

    if (rv == BS_OK)
        batch_done(l);
    if (rv == BS_OK || l->fail == SIZE_MAX)
        return rv;
    bad = l->fail;
    snprintf(why, sizeof why, "%s", bs_errmsg(l->err, rv));
    l->hi = bad;
    rv = bad > l->lo ? bs_store_write(l->c->store, write_batch, l, l->err)
                     : BS_OK;
    if (rv != BS_OK)
        return rv;
    if (bad == l->lo) {
        l->bw = l->bu = l->bi = l->bup = l->bsk = 0;
        l->blogn = 0;
    }
    l->hi = bad + 1;
    batch_done(l);
    l->skipped++;
    if (l->o->report != NULL)
        l->o->report(l->o->ctx, l->failid, BS_LOAD_SKIPPED, why);
    return BS_OK;
}

bs_err
bs_load_jsonl(const bs_core *c, const char *coll, const char *buf, size_t len,
              const bs_load_opts *o, bs_load_stats *st, bs_errbuf *err)
{
    size_t batch = o && o->batch ? o->batch : DEFAULT_BATCH;
    load l;
    bs_err rv;

    memset(&l, 0, sizeof l);
    /* Spreadsheet and 1C exports start with a UTF-8 byte order mark; it
     * holds no newline, so line numbers stay as they are. */
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
        buf += 3;
        len -= 3;
    }
    l.c = c;
    l.coll = coll;
    l.buf = buf;
    l.len = len;
    l.err = err;
    l.o = o;
    l.probe = o != NULL &&
              (o->actions || o->mode != BS_LOAD_UPSERT || o->report != NULL);
    if ((rv = bs_records_check_coll(coll, err)) != BS_OK)
        return rv;
    bs_arena_init(&l.arena);
    bs_arena_init(&l.parena);
    if ((rv = check_all(&l)) != BS_OK)
        goto out;
    if (o == NULL || !o->skip) {
        int refuse;

        if ((rv = may_refuse(&l, &refuse)) != BS_OK)
            goto out;
        if (refuse) /* all or nothing */
            batch = l.nidx > 0 ? l.nidx : 1;
    }
    sort_index(l.idx, l.nidx);
    for (l.lo = 0; l.lo < l.nidx && rv == BS_OK; l.lo = l.hi) {
        l.hi = l.nidx - l.lo > batch ? l.lo + batch : l.nidx;
        rv = write_range(&l);
        if (rv == BS_OK && o && o->progress)
            o->progress(o->ctx, l.hi, l.nidx);
    }
out:
    if (st != NULL) {
        st->records = l.lines;
        st->written = l.written;
        st->unchanged = l.unchanged;
        st->committed = l.committed;
        st->inserted = l.inserted;
        st->updated = l.updated;
        st->skipped = l.skipped;
    }
    free(l.idx);
    free(l.blog);
    bs_arena_fini(&l.arena);
    bs_arena_fini(&l.parena);
    return rv;
}
