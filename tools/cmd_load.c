/*
 * cmd_load.c - bulk upsert from JSON Lines.
 *
 * Two passes over the input, which is mapped (stdin is first spooled to an
 * unlinked temporary file):
 *
 *  1. check: parse every line (flatjson.c) and check its "id", so that bad
 *     input writes nothing.  Each record leaves a 24-byte index entry: the
 *     first 8 bytes of its id, the id's length, and where the line is.
 *  2. write: sort the index once, then parse the lines again in that order
 *     and write `--batch` records per write transaction.
 *
 * The order is (id prefix, id length, position in the file).  LMDB inserts
 * keys in order many times faster than random ones, and with the whole
 * input sorted the batches cover disjoint, increasing key ranges, so each
 * leaf page is written about once for the whole load instead of once per
 * batch (docs/performance.md).  Records whose ids share prefix and length
 * keep file order among themselves: they are neighbours in the tree anyway,
 * and records with the same id are written in file order, so the last one
 * wins.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../replication/flatjson.h"
#include "../replication/local.h"
#include "cli.h"

#define DEFAULT_BATCH 100000

/* One record of the input, 24 bytes. */
typedef struct rec {
    uint64_t key;   /* the id's first 8 bytes, big-endian, zero-padded */
    uint64_t off;   /* where its line starts in the input */
    uint32_t len;   /* the line's length, without the line end */
    uint32_t idlen; /* the id's length */
} rec;

typedef struct load {
    bs_cli *c;
    const char *coll;
    const char *buf; /* the input, len bytes */
    size_t len;
    void *map; /* the mapping of buf, or NULL */
    const uint8_t *sk;
    rec *idx; /* every record, in file order, then sorted */
    size_t nidx, cap;
    size_t lo, hi;  /* the batch being written: idx[lo..hi) */
    bs_arena arena; /* the fields of the line being parsed */
    uint64_t written, unchanged, lines;
} load;

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
map_input(bs_cli *c, const char *path, load *l)
{
    struct stat st;
    void *p;
    int fd;
    bs_err rv = BS_OK;

    if (strcmp(path, "-") == 0) {
        if ((rv = spool_stdin(c, &fd)) != BS_OK)
            return rv;
    } else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        return bs_errf(&c->err, errno == ENOENT ? BS_EINVAL : BS_EIO, "%s: %s",
                       path, strerror(errno));
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
 * bytes at a time. */
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
        return bs_errf(&l->c->err, rv, "line %llu: %s",
                       (unsigned long long)lineno, bs_errmsg(&e2, rv));
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

    if ((rv = bs_local_begin(&loc, t, l->sk, bs_clock_system, err)) != BS_OK)
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
    if (rv == BS_OK) {
        l->written += loc.written;
        l->unchanged += loc.unchanged;
    }
out:
    bs_local_fini(&loc);
    return rv;
}

static void
progress(const load *l, uint64_t done, double t0, int final)
{
    double dt = now_s() - t0;

    fprintf(stderr, "\rloaded %llu/%llu records (%.0f/s)%s",
            (unsigned long long)done, (unsigned long long)l->lines,
            dt > 0 ? done / dt : 0.0, final ? "\n" : "");
}

static bs_err
write_all(load *l, bs_node *n, long batch, int show)
{
    double t0 = now_s();
    bs_err rv = BS_OK;

    sort_index(l->idx, l->nidx);
    for (l->lo = 0; l->lo < l->nidx && rv == BS_OK; l->lo = l->hi) {
        l->hi =
            l->nidx - l->lo > (size_t)batch ? l->lo + (size_t)batch : l->nidx;
        rv = bs_store_write(n->store, write_batch, l, &l->c->err);
        if (show)
            progress(l, l->hi, t0, 0);
    }
    if (show)
        progress(l, l->nidx, t0, 1);
    return rv;
}

bs_err
bs_cmd_load(bs_cli *c)
{
    load l = {0};
    bs_node *n = NULL;
    double t0 = now_s();
    int show = isatty(2) && !c->quiet;
    bs_err rv;

    l.c = c;
    l.coll = c->argv[0];
    bs_arena_init(&l.arena);
    if ((rv = bs_cli_check_coll(c, l.coll)) != BS_OK)
        return rv;
    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    if ((rv = bs_node_secret(n, &l.sk, &c->err)) != BS_OK)
        goto out;
    if ((rv = map_input(c, c->argv[1], &l)) != BS_OK)
        goto out;
    if ((rv = check_all(&l)) != BS_OK)
        goto out;
    rv = write_all(&l, n, c->batch ? c->batch : DEFAULT_BATCH, show);
    if (rv != BS_OK)
        goto out;
    if (l.written > 0)
        bs_cli_notify(c, "changed");
    if (c->json) {
        json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:f}", "collection", l.coll,
                              "records", (json_int_t)l.lines, "written",
                              (json_int_t)l.written, "unchanged",
                              (json_int_t)l.unchanged, "seconds", now_s() - t0);
        char *s = json_dumps(j, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
        json_decref(j);
    } else if (!c->quiet) {
        fprintf(stderr,
                "loaded %llu records into %s (%llu unchanged) in "
                "%.2f s\n",
                (unsigned long long)l.lines, l.coll,
                (unsigned long long)l.unchanged, now_s() - t0);
    }
out:
    if (l.map != NULL)
        munmap(l.map, l.len);
    free(l.idx);
    bs_arena_fini(&l.arena);
    bs_node_close(n);
    return rv;
}
