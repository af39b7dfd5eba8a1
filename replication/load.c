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
#include "records.h"

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
    uint64_t bw, bu;    /* the batch's counts, taken once it commits */
    uint64_t committed; /* records of the input in committed batches */
} load;

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
        return bs_errf(l->err, rv, "line %llu: %s", (unsigned long long)lineno,
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
                             &nf)) != BS_OK)
            break;
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

static bs_err
write_batch(bs_txn *t, void *arg, bs_errbuf *err)
{
    load *l = arg;
    bs_local loc;
    bs_err rv;

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
                         (unsigned long long)line_of(l, r->off));
        if (rv == BS_OK)
            rv = bs_local_put(&loc, l->coll, id, f, nf, err);
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
    if ((rv = bs_records_check_coll(coll, err)) != BS_OK)
        return rv;
    bs_arena_init(&l.arena);
    if ((rv = check_all(&l)) != BS_OK)
        goto out;
    sort_index(l.idx, l.nidx);
    for (l.lo = 0; l.lo < l.nidx && rv == BS_OK; l.lo = l.hi) {
        l.hi = l.nidx - l.lo > batch ? l.lo + batch : l.nidx;
        rv = bs_store_write(c->store, write_batch, &l, err);
        if (rv == BS_OK) {
            l.written += l.bw;
            l.unchanged += l.bu;
            l.committed = l.hi;
        }
        if (rv == BS_OK && o && o->progress)
            o->progress(o->ctx, l.hi, l.nidx);
    }
out:
    if (st != NULL) {
        st->records = l.lines;
        st->written = l.written;
        st->unchanged = l.unchanged;
        st->committed = l.committed;
    }
    free(l.idx);
    bs_arena_fini(&l.arena);
    return rv;
}
