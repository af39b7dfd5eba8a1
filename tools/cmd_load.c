/*
 * cmd_load.c - bulk upsert from JSON Lines.
 *
 * Two passes over the input (stdin is first spooled to an unlinked temporary
 * file): the first checks every line, so bad input writes nothing; the
 * second writes `--batch` records per write transaction, sorted by ID
 * inside each batch because LMDB inserts sorted keys many times faster than
 * random ones (docs/performance.md).  Duplicate IDs keep file order.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../replication/json.h"
#include "../replication/local.h"
#include "cli.h"

#define DEFAULT_BATCH 100000

typedef struct entry {
    const char *id;
    bs_field *fields;
    size_t n;
    size_t order;
} entry;

typedef struct load {
    bs_cli *c;
    const char *coll;
    const char *buf;
    size_t len;
    const uint8_t *sk;
    entry *batch;
    size_t nbatch;
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

static bs_err
map_input(bs_cli *c, const char *path, void **p, size_t *len)
{
    struct stat st;
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
    *len = (size_t)st.st_size;
    *p = NULL;
    if (*len > 0 &&
        (*p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
        rv = bs_errf(&c->err, BS_EIO, "%s: %s", path, strerror(errno));
    else if (*len > 0)
        madvise(*p, *len, MADV_SEQUENTIAL);
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

/* Parse one line; on error the message names the line. */
static bs_err
parse_line(load *l, bs_arena *a, const char *s, size_t n, uint64_t lineno,
           entry *e)
{
    bs_errbuf e2;
    bs_err rv;

    e2.msg[0] = '\0';
    rv = bs_json_fields(s, n, a, &e->id, &e->fields, &e->n, &e2);
    if (rv == BS_OK && e->id == NULL)
        rv = bs_errf(&e2, BS_EINVAL, "object has no \"id\"");
    if (rv == BS_OK && !bs_id_valid(e->id))
        rv = bs_errf(&e2, BS_EINVAL,
                     "bad \"id\": 1 to %d bytes of UTF-8 without control "
                     "characters",
                     BS_ID_MAX);
    if (rv != BS_OK)
        return bs_errf(&l->c->err, rv, "line %llu: %s",
                       (unsigned long long)lineno, bs_errmsg(&e2, rv));
    return BS_OK;
}

static bs_err
check_all(load *l)
{
    bs_arena a;
    size_t pos = 0, n;
    const char *s;
    uint64_t lineno = 0;
    entry e;
    bs_err rv = BS_OK;

    bs_arena_init(&a);
    while (next_line(l, &pos, &s, &n)) {
        lineno++;
        if (blank(s, n))
            continue;
        bs_arena_reset(&a);
        if ((rv = parse_line(l, &a, s, n, lineno, &e)) != BS_OK)
            break;
        l->lines++;
    }
    bs_arena_fini(&a);
    return rv;
}

static int
entry_cmp(const void *x, const void *y)
{
    const entry *a = x, *b = y;
    int c = strcmp(a->id, b->id);

    if (c != 0)
        return c;
    return a->order < b->order ? -1 : a->order > b->order;
}

static bs_err
write_batch(bs_txn *t, void *arg, bs_errbuf *err)
{
    load *l = arg;
    bs_local loc;
    bs_err rv;

    if ((rv = bs_local_begin(&loc, t, l->sk, bs_clock_system, err)) != BS_OK)
        goto out;
    for (size_t i = 0; i < l->nbatch && rv == BS_OK; i++)
        rv = bs_local_put(&loc, l->coll, l->batch[i].id, l->batch[i].fields,
                          l->batch[i].n, err);
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
    bs_arena a;
    size_t pos = 0, len;
    const char *s;
    uint64_t lineno = 0, done = 0;
    double t0 = now_s();
    bs_err rv = BS_OK;

    if ((l->batch = malloc((size_t)batch * sizeof *l->batch)) == NULL)
        return BS_ENOMEM;
    bs_arena_init(&a);
    for (int more = 1; more && rv == BS_OK;) {
        l->nbatch = 0;
        bs_arena_reset(&a);
        while (l->nbatch < (size_t)batch &&
               (more = next_line(l, &pos, &s, &len))) {
            entry *e = &l->batch[l->nbatch];
            lineno++;
            if (blank(s, len))
                continue;
            if ((rv = parse_line(l, &a, s, len, lineno, e)) != BS_OK)
                break;
            e->order = l->nbatch++;
        }
        if (rv != BS_OK || l->nbatch == 0)
            break;
        qsort(l->batch, l->nbatch, sizeof *l->batch, entry_cmp);
        rv = bs_store_write(n->store, write_batch, l, &l->c->err);
        done += l->nbatch;
        if (show)
            progress(l, done, t0, 0);
    }
    if (show)
        progress(l, done, t0, 1);
    bs_arena_fini(&a);
    free(l->batch);
    return rv;
}

bs_err
bs_cmd_load(bs_cli *c)
{
    load l = {0};
    void *map = NULL;
    bs_node *n = NULL;
    double t0 = now_s();
    int show = isatty(2) && !c->quiet;
    bs_err rv;

    l.c = c;
    l.coll = c->argv[0];
    if ((rv = bs_cli_check_coll(c, l.coll)) != BS_OK)
        return rv;
    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    if ((rv = bs_node_secret(n, &l.sk, &c->err)) != BS_OK)
        goto out;
    if ((rv = map_input(c, c->argv[1], &map, &l.len)) != BS_OK)
        goto out;
    l.buf = map;
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
    if (map != NULL)
        munmap(map, l.len);
    bs_node_close(n);
    return rv;
}
