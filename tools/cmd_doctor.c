/*
 * cmd_doctor.c - doctor: the node's problems, each with what to do; the
 * same list is the "problems" member of `status --json`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>

#include "../node/control.h"
#include "../node/health.h"
#include "../replication/verify.h"
#include "cli.h"
#include "output.h"

/* Whether branchsyncd runs for the node (health.h's `daemon`), and why
 * it does not serve HTTP (its ping reply's "http_error"), into http. */
static int
daemon_state(const char *dir, char *http, size_t n)
{
    bs_errbuf err = {{0}};
    char *reply = NULL;
    bs_err rv = bs_control_call(dir, "{\"cmd\":\"ping\"}", 2000, &reply, &err);
    json_t *j = rv == BS_OK ? json_loads(reply, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(j, "http_error"));

    snprintf(http, n, "%s", e ? e : "");
    json_decref(j);
    free(reply);
    return rv == BS_OK ? 1 : rv == BS_ENOTFOUND ? 0 : 2;
}

bs_err
bs_cli_problems(bs_cli *c, bs_node *n, bs_txn *t, const bs_status *st,
                const char *corrupt, bs_problems *out)
{
    char path[4200], http[BS_ERRMSG_LEN];
    bs_health_opts o = {0};
    struct statvfs vfs;
    bs_err rv;

    o.dir = c->dir;
    o.now_ms = bs_clock_system.now_ms(NULL);
    o.map_max = n->cfg.max_map_size_mb << 20;
    o.daemon = daemon_state(c->dir, http, sizeof http);
    o.http_error = http;
    o.corrupt = corrupt;
    snprintf(path, sizeof path, "%s/store", c->dir);
    if (statvfs(path, &vfs) == 0) {
        o.disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        o.disk_size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    }
    rv = bs_health_check(t, st, bs_store_used_bytes(n->store), &o, out);
    if (rv == BS_OK)
        rv = bs_health_files(n, st, o.now_ms, out);
    return rv;
}

/* Verify the store in t (verify.h): BS_OK with *corrupt set to the
 * finding ("store is corrupt: …") or NULL; a local fault as such. */
static bs_err
verify(bs_txn *t, char *buf, size_t n, const char **corrupt, bs_errbuf *err)
{
    bs_verify_stats vs;
    bs_errbuf e2 = {{0}};
    bs_err rv = bs_verify_store(t, NULL, &vs, &e2);

    *corrupt = NULL;
    if (rv == BS_ESTORE) {
        snprintf(buf, n, "%s", bs_errmsg(&e2, rv));
        *corrupt = buf;
        return BS_OK;
    }
    return rv == BS_OK ? BS_OK : bs_errf(err, rv, "%s", bs_errmsg(&e2, rv));
}

bs_err
bs_cmd_doctor(bs_cli *c)
{
    char finding[BS_ERRMSG_LEN];
    const char *corrupt = NULL;
    bs_status_opts so;
    bs_problems p = {0};
    bs_status st;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    so = bs_node_status_opts(n);
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        rv = verify(t, finding, sizeof finding, &corrupt, &c->err);
        if (rv == BS_OK &&
            (rv = bs_status_read(t, &n->meta, &so, &st, &c->err)) == BS_OK) {
            rv = bs_cli_problems(c, n, t, &st, corrupt, &p);
            bs_status_fini(&st);
        }
        /* Too damaged for the rest: the finding is the answer. */
        if (rv == BS_ESTORE && corrupt != NULL)
            rv = bs_problems_add(&p, "store_corrupt", "",
                                 "stop branchsyncd and restore from a backup "
                                 "(branchsync restore FILE)",
                                 "%s", corrupt);
        bs_txn_abort(t);
    }
    bs_node_close(n);
    if (rv != BS_OK) {
        bs_problems_fini(&p);
        return rv;
    }
    if (c->json)
        bs_out_json(json_pack("{s:b, s:o}", "healthy", p.n == 0, "problems",
                              bs_render_problems(&p)));
    else
        bs_out_problems(&p);
    c->exit_code = p.n == 0 ? 0 : 1;
    bs_problems_fini(&p);
    return BS_OK;
}
