/*
 * cmd_net.c - sync, schedule, log, and telling a running daemon about
 * changes made here (docs/design.md, "Interfaces").
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../node/backups.h"
#include "../node/client.h"
#include "../node/control.h"
#include "../node/dropdir.h"
#include "../node/schedule.h"
#include "../replication/pairing.h"
#include "cli.h"
#include "output.h"

#define CONTROL_WAIT_MS 1000
#define SYNC_TIMEOUT_MS (10 * 60 * 1000)

/*
 * Send one request to the daemon of c->dir and wait up to wait_ms for its
 * reply (bs_control_call).  BS_ENOTFOUND when no daemon runs;
 * BS_EUNREACHABLE when it went away.
 */
static bs_err
control(bs_cli *c, json_t *req, int wait_ms, json_t **reply)
{
    char *s = json_dumps(req, JSON_COMPACT), *text = NULL;
    bs_err rv;

    *reply = NULL;
    if (s == NULL)
        return BS_ENOTFOUND;
    rv = bs_control_call(c->dir, s, wait_ms, &text, &c->err);
    free(s);
    if (rv == BS_OK) {
        *reply = json_loads(text, 0, NULL);
        free(text);
        if (*reply == NULL)
            rv = BS_ENOMEM;
    }
    return rv;
}

void
bs_cli_notify(bs_cli *c, const char *cmd)
{
    json_t *req = json_pack("{s:s}", "cmd", cmd), *reply;

    if (control(c, req, CONTROL_WAIT_MS, &reply) == BS_OK)
        json_decref(reply);
    json_decref(req);
}

/* ---- sync ---- */

static bs_err
sync_direct(bs_cli *c, bs_session_stats *st, char *problem, size_t np)
{
    bs_client_opts o = {SYNC_TIMEOUT_MS, 0, {0}};
    bs_node *n;
    bs_zmq *z;
    bs_err rv;

    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    if ((rv = bs_zmq_new(&z, &c->err)) == BS_OK) {
        rv = bs_client_sync(n, z, c->argv[0], &o, st, problem, np, &c->err);
        bs_zmq_free(z);
    }
    bs_node_close(n);
    return rv;
}

/* A folder peer's run in this process (no daemon runs). */
static bs_err
sync_folder(bs_cli *c, bs_drop_stats *st)
{
    bs_core core;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    rv = bs_drop_run(n, &core, c->argv[0], st, &c->err);
    bs_node_close(n);
    return rv;
}

static void
print_folder(bs_cli *c, const bs_drop_stats *st, int via_daemon)
{
    if (c->json)
        bs_out_json(json_pack(
            "{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "peer", c->argv[0],
            "via_daemon", via_daemon, "files_in", (json_int_t)st->files_in,
            "files_refused", (json_int_t)st->files_refused, "sets_sent",
            (json_int_t)st->sets_sent, "sets_received",
            (json_int_t)st->sets_received, "changes", (json_int_t)st->changes,
            "conflicts", (json_int_t)st->conflicts, "file_out", st->file_out));
    else
        printf("synced with %s through its folder: imported %llu %s "
               "(%llu change sets, %llu changes applied), wrote %s "
               "(%llu change sets)\n",
               c->argv[0], (unsigned long long)st->files_in,
               BS_PL(st->files_in, "file"),
               (unsigned long long)st->sets_received,
               (unsigned long long)st->changes,
               st->file_out[0] ? st->file_out : "no file",
               (unsigned long long)st->sets_sent);
}

bs_err
bs_cmd_sync(bs_cli *c)
{
    bs_drop_stats ds = {0};
    int folder = 0;
    json_t *req, *reply = NULL;
    bs_session_stats st = {0};
    char problem[BS_ERRMSG_LEN] = "";
    bs_txn *t;
    bs_peer p;
    bs_node *n;
    bs_err rv;
    int via_daemon = 0;

    /* Check the peer first, for a clear error whoever runs the exchange. */
    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        rv = bs_peer_get(t, c->argv[0], &p);
        bs_txn_abort(t);
    }
    bs_node_close(n);
    if (rv == BS_ENOTFOUND)
        return bs_errf(&c->err, BS_ENOTFOUND,
                       "unknown peer \"%s\" (see peer ls)", c->argv[0]);
    if (rv != BS_OK)
        return rv;
    folder = bs_endpoint_folder(p.endpoint) != NULL;
    bs_peer_fini(&p);
    req = json_pack("{s:s, s:s}", "cmd", "sync", "peer", c->argv[0]);
    rv = control(c, req, SYNC_TIMEOUT_MS, &reply);
    json_decref(req);
    if (rv == BS_EUNREACHABLE)
        return rv;
    if (rv == BS_OK) {
        via_daemon = 1;
        if (!json_is_true(json_object_get(reply, "ok"))) {
            int code = (int)json_integer_value(json_object_get(reply, "code"));
            rv = bs_errf(&c->err, code == 2 ? BS_EINVAL : BS_EUNREACHABLE, "%s",
                         json_string_value(json_object_get(reply, "error")));
            json_decref(reply);
            return rv;
        }
        st.sets_sent =
            (uint64_t)json_integer_value(json_object_get(reply, "sets_sent"));
        st.sets_received = (uint64_t)json_integer_value(
            json_object_get(reply, "sets_received"));
        st.changes_applied =
            (uint64_t)json_integer_value(json_object_get(reply, "changes"));
        st.conflicts =
            (uint64_t)json_integer_value(json_object_get(reply, "conflicts"));
        st.refused =
            (uint64_t)json_integer_value(json_object_get(reply, "refused"));
        if (json_is_string(json_object_get(reply, "problem")))
            snprintf(problem, sizeof problem, "%s",
                     json_string_value(json_object_get(reply, "problem")));
        ds.files_in =
            (uint64_t)json_integer_value(json_object_get(reply, "files_in"));
        ds.files_refused = (uint64_t)json_integer_value(
            json_object_get(reply, "files_refused"));
        if (json_is_string(json_object_get(reply, "file_out")))
            snprintf(ds.file_out, sizeof ds.file_out, "%s",
                     json_string_value(json_object_get(reply, "file_out")));
        json_decref(reply);
    } else if (folder) {
        if ((rv = sync_folder(c, &ds)) != BS_OK)
            return rv;
        snprintf(problem, sizeof problem, "%s", ds.problem);
    } else if ((rv = sync_direct(c, &st, problem, sizeof problem)) != BS_OK) {
        return rv;
    }
    /* The exchange completed, but not everything went through: sets the
     * peer sent were refused here, ours were held or refused there, or
     * this node's clock is ahead.  Not the user's input: exit 1. */
    if (problem[0])
        return bs_errf(&c->err, BS_EUNREACHABLE, "%s", problem);
    if (folder) {
        if (via_daemon) {
            ds.sets_sent = st.sets_sent;
            ds.sets_received = st.sets_received;
            ds.changes = st.changes_applied;
            ds.conflicts = st.conflicts;
        }
        print_folder(c, &ds, via_daemon);
        return BS_OK;
    }
    if (c->json)
        bs_out_json(json_pack("{s:s, s:b, s:I, s:I, s:I, s:I}", "peer",
                              c->argv[0], "via_daemon", via_daemon, "sets_sent",
                              (json_int_t)st.sets_sent, "sets_received",
                              (json_int_t)st.sets_received, "changes",
                              (json_int_t)st.changes_applied, "conflicts",
                              (json_int_t)st.conflicts));
    else
        printf("synced with %s: sent %llu change sets, received %llu "
               "(%llu changes applied%s)\n",
               c->argv[0], (unsigned long long)st.sets_sent,
               (unsigned long long)st.sets_received,
               (unsigned long long)st.changes_applied,
               st.conflicts ? ", conflicts recorded" : "");
    return BS_OK;
}

/* ---- schedule ---- */

/* The next three runs of s from now (for every: from now as the last). */
static int
next_three(const bs_schedule *s, int64_t t, int64_t runs[3])
{
    int nruns = 0;

    for (int64_t last = t; nruns < 3; nruns++) {
        int64_t next;
        if (bs_schedule_next(s, t, last, &next) != BS_OK)
            break;
        runs[nruns] = next;
        t = last = next;
    }
    return nruns;
}

/* --backup's arguments checked: the spec's canonical form, keep, and
 * DIR as an absolute path (it must exist). */
static bs_err
backup_args(bs_cli *c, bs_schedule *s, char *spec, size_t sn, unsigned *keep,
            char *dir, size_t dn)
{
    char real[PATH_MAX];
    struct stat sb;
    char *end;
    unsigned long k = 7;

    if (bs_schedule_parse(s, c->backup, &c->err) != BS_OK)
        return BS_EINVAL;
    if (s->kind != BS_SCHED_EVERY && s->kind != BS_SCHED_CRON)
        return bs_errf(&c->err, BS_EINVAL,
                       "a backup schedule is \"every D\" or a cron "
                       "expression, not \"%s\"",
                       c->backup);
    bs_schedule_format(s, spec, sn);
    if (c->keep != NULL) {
        errno = 0;
        k = strtoul(c->keep, &end, 10);
        if (errno || *end || end == c->keep || k < 1 ||
            k > BS_CONFIG_KEEP_MAX || c->keep[0] == '-')
            return bs_errf(&c->err, BS_EINVAL,
                           "--keep wants a number from 1 to %d, not \"%s\"",
                           BS_CONFIG_KEEP_MAX, c->keep);
    }
    *keep = (unsigned)k;
    if (realpath(c->argv[0], real) == NULL || stat(real, &sb) != 0)
        return bs_errf(&c->err, BS_ENOTFOUND,
                       "%s: no such directory (create it first, writable "
                       "by the daemon's user)",
                       c->argv[0]);
    if (!S_ISDIR(sb.st_mode))
        return bs_errf(&c->err, BS_EINVAL, "%s is not a directory", c->argv[0]);
    if (strlen(real) >= dn || !bs_config_value_ok(real))
        return bs_errf(&c->err, BS_EINVAL,
                       "backup directory \"%s\" cannot be kept in the "
                       "configuration (too long, or holds ';' or '#')",
                       real);
    snprintf(dir, dn, "%s", real);
    return BS_OK;
}

/* Save [backup] and the time it was set; the daemon re-reads it. */
static bs_err
backup_save(bs_cli *c, const char *spec, unsigned keep, const char *dir)
{
    bs_backup_state st;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    snprintf(n->cfg.backup_schedule, sizeof n->cfg.backup_schedule, "%s", spec);
    snprintf(n->cfg.backup_dir, sizeof n->cfg.backup_dir, "%s", dir);
    n->cfg.backup_keep = keep;
    rv = bs_config_save(c->dir, &n->cfg, &c->err);
    bs_backups_state(c->dir, &st);
    st.set_ms = spec[0] ? (uint64_t)time(NULL) * 1000 : 0;
    if (rv == BS_OK)
        rv = bs_backups_state_save(c->dir, &st, &c->err);
    bs_node_close(n);
    return rv;
}

static bs_err
schedule_backup(bs_cli *c)
{
    char spec[BS_SCHED_FORMAT_MAX] = "", dir[1024] = "";
    int64_t runs[3];
    unsigned keep = 7;
    bs_schedule s;
    int nruns = 0;
    bs_err rv;

    if (strcmp(c->backup, "off") == 0) {
        if (c->argc != 0 || c->keep != NULL || c->window != NULL)
            return bs_errf(&c->err, BS_EUSAGE, "usage: schedule --backup off");
    } else if (c->argc != 1 || c->window != NULL) {
        return bs_errf(&c->err, BS_EUSAGE,
                       "usage: schedule --backup SPEC [--keep N] DIR");
    } else if ((rv = backup_args(c, &s, spec, sizeof spec, &keep, dir,
                                 sizeof dir)) != BS_OK) {
        return rv;
    }
    if ((rv = backup_save(c, spec, keep, dir)) != BS_OK)
        return rv;
    bs_cli_notify(c, "reload");
    if (spec[0])
        nruns = next_three(&s, (int64_t)time(NULL), runs);
    if (c->json) {
        json_t *arr = json_array();
        for (int i = 0; i < nruns; i++)
            json_array_append_new(arr, json_integer(runs[i]));
        bs_out_json(json_pack("{s:s, s:i, s:s, s:o}", "backup", spec, "keep",
                              (int)keep, "dir", dir, "next_runs", arr));
        return BS_OK;
    }
    if (!spec[0]) {
        printf("scheduled backups off\n");
        return BS_OK;
    }
    printf("backups: %s into %s, keeping the newest %u\n", spec, dir, keep);
    for (int i = 0; i < nruns; i++) {
        char buf[64];
        bs_out_time(buf, sizeof buf, runs[i],
                    s.kind == BS_SCHED_EVERY && s.every_s % 60 != 0);
        printf("next run: %s\n", buf);
    }
    return BS_OK;
}

bs_err
bs_cmd_schedule(bs_cli *c)
{
    char spec[BS_SCHED_FORMAT_MAX], win[32] = "";
    bs_schedule s;
    int64_t t = (int64_t)time(NULL), runs[3];
    int nruns = 0;
    bs_core core;
    bs_node *n;
    json_t *arr;
    bs_err rv;

    if (c->backup != NULL)
        return schedule_backup(c);
    if (c->argc != 2 || c->keep != NULL)
        return bs_errf(&c->err, BS_EUSAGE,
                       "usage: schedule PEER SPEC [--window HH:MM-HH:MM] | "
                       "schedule --backup SPEC [--keep N] DIR");
    if ((rv = bs_schedule_parse(&s, c->argv[1], &c->err)) != BS_OK)
        return rv;
    if (c->window &&
        (rv = bs_schedule_parse_window(&s, c->window, &c->err)) != BS_OK)
        return rv;
    bs_schedule_format(&s, spec, sizeof spec);
    bs_schedule_format_window(&s, win, sizeof win);
    if ((rv = bs_cli_core(c, 0, &n, &core)) != BS_OK)
        return rv;
    rv = bs_pairing_schedule(&core, c->argv[0], spec, win, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    bs_cli_notify(c, "reload");
    for (int64_t last = t; nruns < 3; nruns++) {
        int64_t next;
        if (bs_schedule_next(&s, t, last, &next) != BS_OK)
            break;
        runs[nruns] = next;
        t = last = next;
    }
    if (c->json) {
        arr = json_array();
        for (int i = 0; i < nruns; i++)
            json_array_append_new(arr, json_integer(runs[i]));
        bs_out_json(json_pack("{s:s, s:s, s:s, s:o}", "peer", c->argv[0],
                              "schedule", spec, "window", win, "next_runs",
                              arr));
        return BS_OK;
    }
    printf("%s: %s%s%s\n", c->argv[0], spec, win[0] ? ", window " : "", win);
    if (s.kind == BS_SCHED_ONLINE)
        printf("changes are pushed as they happen%s\n",
               win[0] ? " inside the window" : "");
    else if (s.kind == BS_SCHED_MANUAL)
        printf("no scheduled runs: exchange with 'branchsync sync %s'\n",
               c->argv[0]);
    for (int i = 0; i < nruns; i++) {
        char buf[64];
        /* Runs of "every 5s" differ by seconds; cron runs on minutes. */
        bs_out_time(buf, sizeof buf, runs[i],
                    s.kind == BS_SCHED_EVERY && s.every_s % 60 != 0);
        printf("next run: %s\n", buf);
    }
    return BS_OK;
}

/* ---- log ---- */

bs_err
bs_cmd_log(bs_cli *c)
{
    const char *peer = c->argc > 0 ? c->argv[0] : NULL;
    bs_xlog_entry *v = NULL;
    size_t nv = 0;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        rv = bs_xlog_list(t, peer, 100, &v, &nv);
        /* A peer removed since keeps its history. */
        if (rv == BS_OK && peer != NULL && nv == 0) {
            bs_peer p;
            if ((rv = bs_peer_get(t, peer, &p)) == BS_OK)
                bs_peer_fini(&p);
            else if (rv == BS_ENOTFOUND)
                bs_errf(&c->err, rv, "no peer \"%s\" (see peer ls)", peer);
        }
        bs_txn_abort(t);
    }
    bs_node_close(n);
    if (rv != BS_OK) {
        free(v);
        return rv;
    }
    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < nv; i++)
            json_array_append_new(arr, bs_render_exchange(&v[i]));
        bs_out_json(arr);
    } else if (nv == 0) {
        printf("no exchanges yet%s%s\n", peer ? " with " : "",
               peer ? peer : "");
    }
    for (size_t i = 0; !c->json && i < nv; i++)
        bs_out_exchange(&v[i]);
    free(v);
    return BS_OK;
}
