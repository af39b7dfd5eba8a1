/*
 * cmd_cml.c - `cml import FILE` and `cml export orders FILE`: CommerceML 2
 * in and out of the node (cml.h).  The input is mapped, not read into
 * memory; the spool files go into the node directory.  --report writes
 * each record's outcome as JSON Lines, with its collection.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../replication/cml.h"
#include "cli.h"
#include "output.h"

typedef struct rep {
    FILE *f;
    int failed;
} rep;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
report(void *ctx, const char *coll, const char *id, bs_load_action a,
       const char *reason)
{
    rep *r = ctx;
    json_t *j = json_pack("{s:s, s:o, s:s, s:o}", "collection", coll, "id",
                          id ? json_string(id) : json_null(), "action",
                          bs_load_action_name(a), "reason",
                          reason ? json_string(reason) : json_null());
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

    if (s == NULL || fprintf(r->f, "%s\n", s) < 0)
        r->failed = 1;
    free(s);
    json_decref(j);
}

/* Map path read-only: *p (NULL for an empty file), *len. */
static bs_err
map_file(bs_cli *c, const char *path, void **p, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *p = NULL;
    if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
        return bs_errf(&c->err, BS_ENOTFOUND, "%s: no such file", path);
    if (fd < 0)
        return bs_errf(&c->err, BS_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return bs_errf(&c->err, BS_EINVAL, "%s: not a regular file", path);
    }
    *len = (size_t)st.st_size;
    if (*len > 0 &&
        (*p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
        *p = NULL;
        close(fd);
        return bs_errf(&c->err, BS_EIO, "%s: %s", path, strerror(errno));
    }
    if (*p != NULL)
        madvise(*p, *len, MADV_SEQUENTIAL);
    close(fd);
    return BS_OK;
}

static bs_err
parse_opts(bs_cli *c, bs_cml_opts *o)
{
    if (c->id_field != NULL || c->types != NULL)
        return bs_errf(&c->err, BS_EUSAGE,
                       "--id-field and --types do not apply to cml import");
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
    o->batch = c->batch > 0 ? (size_t)c->batch : 0;
    return BS_OK;
}

static void
print_stats(bs_cli *c, const bs_cml_stats *st, double dt)
{
    if (c->json) {
        json_t *j = json_pack(
            "{s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:f, s:{}}", "version",
            st->info.version, "records", (json_int_t)st->load.records,
            "written", (json_int_t)st->load.written, "unchanged",
            (json_int_t)st->load.unchanged, "skipped",
            (json_int_t)st->load.skipped, "unknown_elements",
            (json_int_t)st->info.unknown, "unknown_names",
            st->info.unknown_names, "seconds", dt, "collections");

        for (int i = 0; j != NULL && i < BS_CML_NCOLL; i++)
            if (st->records[i] > 0)
                json_object_set_new(json_object_get(j, "collections"),
                                    bs_cml_coll_name((bs_cml_coll)i),
                                    json_integer((json_int_t)st->records[i]));
        bs_out_json(j);
        return;
    }
    if (c->quiet)
        return;
    fprintf(stderr, "imported %llu %s (", (unsigned long long)st->load.records,
            BS_PL(st->load.records, "record"));
    for (int i = 0, k = 0; i < BS_CML_NCOLL; i++)
        if (st->records[i] > 0)
            fprintf(stderr, "%s%s %llu", k++ ? ", " : "",
                    bs_cml_coll_name((bs_cml_coll)i),
                    (unsigned long long)st->records[i]);
    fprintf(stderr, "; %llu unchanged, %llu skipped) in %.2f s\n",
            (unsigned long long)st->load.unchanged,
            (unsigned long long)st->load.skipped, dt);
    if (st->info.unknown > 0)
        fprintf(stderr, "ignored %llu unknown %s: %s\n",
                (unsigned long long)st->info.unknown,
                BS_PL(st->info.unknown, "element"), st->info.unknown_names);
}

static bs_err
cml_import(bs_cli *c, const char *path)
{
    bs_cml_opts o = {0};
    bs_cml_stats st;
    rep r = {NULL, 0};
    double t0 = now_s();
    void *p = NULL;
    size_t len = 0;
    bs_core core;
    bs_node *n = NULL;
    bs_err rv;

    if ((rv = parse_opts(c, &o)) != BS_OK ||
        (rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    if ((rv = map_file(c, path, &p, &len)) != BS_OK)
        goto out;
    if (c->report != NULL && (r.f = fopen(c->report, "w")) == NULL) {
        rv = bs_errf(&c->err, BS_EIO, "--report %s: %s", c->report,
                     strerror(errno));
        goto out;
    }
    o.tmpdir = c->dir;
    if (r.f != NULL) {
        o.report = report;
        o.ctx = &r;
    }
    rv = bs_cml_import(&core, p ? p : "", len, &o, &st, &c->err);
    if (r.f != NULL && (fflush(r.f) != 0 || r.failed) && rv == BS_OK)
        rv =
            bs_errf(&c->err, BS_EIO, "--report %s: cannot write it", c->report);
    if (rv != BS_OK && bs_err_exit_code(rv) == 1 && st.load.committed > 0) {
        char why[BS_ERRMSG_LEN];

        snprintf(why, sizeof why, "%s", bs_errmsg(&c->err, rv));
        rv = bs_errf(&c->err, rv,
                     "%s; %llu records were committed before (importing the "
                     "file again finishes the job)",
                     why, (unsigned long long)st.load.committed);
    }
    if (rv != BS_OK)
        goto out;
    if (st.load.written > 0)
        bs_cli_notify(c, "changed");
    print_stats(c, &st, now_s() - t0);
out:
    if (r.f != NULL) {
        fclose(r.f);
        if (rv != BS_OK && st.load.committed == 0)
            unlink(c->report); /* nothing was written: no report either */
    }
    if (p != NULL)
        munmap(p, len);
    bs_node_close(n);
    return rv;
}

static bs_err
cml_export(bs_cli *c, const char *what, const char *path)
{
    bs_core core;
    bs_node *n = NULL;
    uint64_t count = 0;
    bs_err rv;

    if (strcmp(what, "orders") != 0)
        return bs_errf(&c->err, BS_EUSAGE,
                       "export: \"%s\" cannot be exported (only orders)", what);
    if (c->on_error || c->report || c->mode || c->id_field || c->types ||
        c->batch > 0)
        return bs_errf(&c->err, BS_EUSAGE,
                       "export takes no --mode, --on-error, --report or "
                       "--batch");
    if ((rv = bs_cli_core(c, 0, &n, &core)) != BS_OK)
        return rv;
    rv = bs_cml_export_orders(&core, path, &count, &c->err);
    if (rv == BS_OK) {
        if (c->json)
            bs_out_json(json_pack("{s:s, s:I}", "file", path, "orders",
                                  (json_int_t)count));
        else if (!c->quiet)
            fprintf(stderr, "exported %llu %s to %s\n",
                    (unsigned long long)count, BS_PL(count, "order"), path);
    }
    bs_node_close(n);
    return rv;
}

bs_err
bs_cmd_cml(bs_cli *c)
{
    if (strcmp(c->argv[0], "import") == 0 && c->argc == 2)
        return cml_import(c, c->argv[1]);
    if (strcmp(c->argv[0], "export") == 0 && c->argc == 3)
        return cml_export(c, c->argv[1], c->argv[2]);
    return bs_errf(&c->err, BS_EUSAGE,
                   "usage: branchsync cml import FILE | cml export orders "
                   "FILE");
}
