/*
 * cmd_load.c - `load`: map the input (stdin is first spooled to an
 * unlinked temporary file) and hand it to the bulk loader (load.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../replication/load.h"
#include "cli.h"
#include "output.h"

typedef struct input {
    const char *buf; /* the input, len bytes */
    size_t len;
    void *map; /* the mapping of buf, or NULL */
    double t0;
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

bs_err
bs_cmd_load(bs_cli *c)
{
    input in = {NULL, 0, NULL, now_s()};
    bs_load_opts o = {0};
    bs_load_stats st = {0};
    const char *coll = c->argv[0];
    bs_core core;
    bs_node *n = NULL;
    bs_err rv;

    if ((rv = bs_records_check_coll(coll, &c->err)) != BS_OK)
        return rv;
    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    if ((rv = map_input(c, c->argv[1], &in)) != BS_OK)
        goto out;
    o.batch = c->batch > 0 ? (size_t)c->batch : 0;
    if (isatty(2) && !c->quiet) {
        o.progress = progress;
        o.ctx = &in;
    }
    rv = bs_load_jsonl(&core, coll, in.buf, in.len, &o, &st, &c->err);
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
    if (c->json)
        bs_out_json(json_pack(
            "{s:s, s:I, s:I, s:I, s:f}", "collection", coll, "records",
            (json_int_t)st.records, "written", (json_int_t)st.written,
            "unchanged", (json_int_t)st.unchanged, "seconds", now_s() - in.t0));
    else if (!c->quiet)
        fprintf(stderr, "loaded %llu %s into %s (%llu unchanged) in %.2f s\n",
                (unsigned long long)st.records, BS_PL(st.records, "record"),
                coll, (unsigned long long)st.unchanged, now_s() - in.t0);
out:
    if (in.map != NULL)
        munmap(in.map, in.len);
    bs_node_close(n);
    return rv;
}
