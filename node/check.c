/*
 * check.c - `config check` (check.h): the configuration, permissions,
 * schedules, the backup directory, every peer's endpoint and the clocks.
 */
#include "check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../replication/peers.h"
#include "../replication/status.h"
#include "backups.h"
#include "http.h"
#include "schedule.h"

bs_err
bs_checks_add(bs_checks *c, const char *area, const char *subject, int ok,
              const char *todo, const char *fmt, ...)
{
    bs_check *v = realloc(c->v, (c->n + 1) * sizeof *v), *x;
    char raw[BS_PROBLEM_TEXT_MAX + 1];
    va_list ap;

    if (v == NULL)
        return BS_ENOMEM;
    c->v = v;
    x = &v[c->n++];
    memset(x, 0, sizeof *x);
    x->area = area;
    x->ok = ok;
    c->failed += !ok;
    bs_escape(x->subject, sizeof x->subject, subject ? subject : "");
    snprintf(x->todo, sizeof x->todo, "%s", ok ? "" : todo);
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    bs_escape(x->what, sizeof x->what, raw);
    return BS_OK;
}

void
bs_checks_fini(bs_checks *c)
{
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* ---- config and permissions ---- */

static bs_err
check_config(const bs_node *n, bs_checks *out)
{
    const bs_config *c = &n->cfg;
    bs_http_opts ho = {0};
    bs_errbuf e = {{0}};
    bs_err rv = BS_OK;
    size_t before = out->failed;

    if (!!c->http_cert[0] != !!c->http_key[0])
        rv = bs_checks_add(out, "config", "http", 0,
                           "set both [http] cert and key, or neither",
                           "[http] %s is set without %s",
                           c->http_cert[0] ? "cert" : "key",
                           c->http_cert[0] ? "key" : "cert");
    ho.listen = c->http_listen;
    ho.cert = c->http_cert;
    ho.key = c->http_key;
    if (rv == BS_OK && out->failed == before && c->http_listen[0] &&
        bs_http_check(&ho, &e) != BS_OK)
        rv = bs_checks_add(out, "config", "http", 0,
                           "fix [http] in branchsync.conf (or listen = off): "
                           "the daemon refuses to start on it",
                           "[http]: %s", e.msg);
    if (rv == BS_OK && c->backup_schedule[0] && !c->backup_dir[0])
        rv = bs_checks_add(out, "config", "backup", 0,
                           "set it again with branchsync schedule --backup "
                           "SPEC --keep N DIR",
                           "[backup] schedule is set without a dir");
    if (rv == BS_OK && out->failed == before)
        rv = bs_checks_add(out, "config", "", 1, "",
                           "%s/branchsync.conf parses and is consistent",
                           n->dir);
    return rv;
}

/* path must not be accessible to group or others beyond `allowed`. */
static bs_err
check_mode(bs_checks *out, const char *path, const char *label, unsigned want,
           bs_err *rv)
{
    struct stat sb;

    if (stat(path, &sb) != 0)
        return *rv = bs_checks_add(out, "permissions", label, 0,
                                   "restore the node directory from its "
                                   "backup",
                                   "%s: %s", path, strerror(errno));
    if ((sb.st_mode & 077) != 0)
        return *rv = bs_checks_add(
                   out, "permissions", label, 0,
                   want == 0700 ? "chmod 700 it: only the node's user may "
                                  "use it"
                                : "chmod 600 it: the secret key is for the "
                                  "node's user alone",
                   "%s is mode %03o, should be %03o", path,
                   (unsigned)(sb.st_mode & 0777), want);
    return *rv = BS_OK;
}

static bs_err
check_permissions(const bs_node *n, bs_checks *out)
{
    char keys[4200], key[4300];
    size_t before = out->failed;
    bs_err rv;

    snprintf(keys, sizeof keys, "%s/keys", n->dir);
    snprintf(key, sizeof key, "%s/node.key", keys);
    if (check_mode(out, n->dir, "DIR", 0700, &rv) != BS_OK ||
        check_mode(out, keys, "keys", 0700, &rv) != BS_OK ||
        check_mode(out, key, "keys/node.key", 0600, &rv) != BS_OK)
        return rv;
    if (out->failed == before)
        rv = bs_checks_add(out, "permissions", "", 1, "",
                           "%s 0700, keys/ 0700, keys/node.key 0600", n->dir);
    return rv;
}

/* ---- schedules ---- */

static bs_err
check_schedule(bs_checks *out, const char *subject, const char *spec,
               const char *window, int64_t now, int64_t last)
{
    char when[64] = "no timed runs";
    bs_errbuf e = {{0}};
    bs_schedule s;
    int64_t next = 0;
    struct tm tm;
    time_t t;
    bs_err rv;

    if (bs_schedule_parse(&s, spec, &e) != BS_OK ||
        (window[0] && bs_schedule_parse_window(&s, window, &e) != BS_OK))
        return bs_checks_add(out, "schedule", subject, 0,
                             "set a valid one (branchsync schedule; "
                             "docs/schedules.md)",
                             "\"%s\": %s", spec, e.msg);
    if (bs_schedule_next(&s, now, last, &next) == BS_OK) {
        t = (time_t)next;
        localtime_r(&t, &tm);
        strftime(when, sizeof when, "next run %Y-%m-%d %H:%M:%S %Z", &tm);
    } else if (s.kind == BS_SCHED_CRON || s.kind == BS_SCHED_EVERY) {
        return bs_checks_add(out, "schedule", subject, 0,
                             "widen the window or change the schedule: its "
                             "runs never fall inside the window",
                             "%s%s%s: no next run", spec,
                             window[0] ? ", window " : "", window);
    } else if (s.kind == BS_SCHED_ONLINE) {
        snprintf(when, sizeof when, "on every change while reachable");
    }
    rv = bs_checks_add(out, "schedule", subject, 1, "", "%s%s%s: %s", spec,
                       window[0] ? ", window " : "", window, when);
    if (rv == BS_OK)
        out->v[out->n - 1].next_s = next;
    return rv;
}

/* ---- directories: backups and drop folders ---- */

/* A directory this node writes into: exists, writable, not everyone's. */
static int
dir_usable(bs_checks *out, const char *area, const char *subject,
           const char *path, bs_err *rv)
{
    struct stat sb;

    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        *rv = bs_checks_add(out, area, subject, 0,
                            "create it (or mount the share) where this "
                            "node's user can write",
                            "%s does not exist or is not a directory", path);
    else if (access(path, W_OK | X_OK) != 0)
        *rv = bs_checks_add(
            out, area, subject, 0, "give this node's user write access to it",
            "%s is not writable by this node: %s", path, strerror(errno));
    else if (sb.st_mode & 002)
        *rv = bs_checks_add(out, area, subject, 0,
                            "chmod o-w it: anyone on the machine could "
                            "replace or remove what is in it",
                            "%s is writable by everyone (mode %03o)", path,
                            (unsigned)(sb.st_mode & 0777));
    else
        return 1;
    return 0;
}

static bs_err
check_backup_dir(const bs_node *n, bs_checks *out)
{
    bs_err rv = BS_OK;

    if (!n->cfg.backup_schedule[0] || !n->cfg.backup_dir[0])
        return BS_OK;
    if (dir_usable(out, "backup", "", n->cfg.backup_dir, &rv))
        rv = bs_checks_add(out, "backup", "", 1, "",
                           "%s is writable; keeping the newest %u",
                           n->cfg.backup_dir, n->cfg.backup_keep);
    return rv;
}

static bs_err
check_folder(bs_checks *out, const char *peer, const char *path)
{
    static const char *const sub[] = {"done", "refused"};
    char p[4200];
    struct stat sb;
    bs_err rv = BS_OK;

    if (!dir_usable(out, "peer", peer, path, &rv))
        return rv;
    for (size_t i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", path, sub[i]);
        if (stat(p, &sb) == 0 &&
            (!S_ISDIR(sb.st_mode) || access(p, W_OK | X_OK) != 0))
            return bs_checks_add(out, "peer", peer, 0,
                                 "make it a directory this node can write",
                                 "%s is not a writable directory", p);
    }
    return bs_checks_add(out, "peer", peer, 1, "",
                         "drop folder %s is writable (done/ and refused/ "
                         "can be made)",
                         path);
}

/* ---- network peers ---- */

/* A CURVE handshake with the peer within timeout_ms: 1 admitted, 0
 * nothing answered, -1 refused (not paired there, or another ID). */
static int
handshake(bs_zmq *z, const bs_peer_status *p, const uint8_t cpk[32],
          const uint8_t csk[32], int timeout_ms, bs_errbuf *err)
{
    uint8_t server[32];
    bs_zsock *sock = NULL, *mon = NULL;
    struct timespec t0, t1;
    int auth = 0, conn = 0, disc = 0, left = timeout_ms;

    if (bs_curve_public(p->pk, server) != BS_OK ||
        bs_dial(z, p->endpoint, cpk, csk, server, &sock, &mon, err) != BS_OK)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!auth && !conn && left > 0) {
        int ready[1] = {0};
        bs_zsock *const socks[1] = {mon};
        (void)bs_zpoll(socks, 1, left, ready);
        while (bs_monitor_event(mon, &auth, &conn, &disc))
            ;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        left = timeout_ms - (int)((t1.tv_sec - t0.tv_sec) * 1000 +
                                  (t1.tv_nsec - t0.tv_nsec) / 1000000);
    }
    bs_zclose(sock);
    bs_zclose(mon);
    return auth ? -1 : conn;
}

static bs_err
check_network_peer(bs_checks *out, bs_zmq *z, const bs_node *n,
                   const bs_peer_status *p, const uint8_t *cpk,
                   const uint8_t *csk)
{
    unsigned s = n->cfg.connect_timeout_s;
    bs_errbuf e = {{0}};
    int r;

    if (cpk == NULL)
        return bs_checks_add(
            out, "peer", p->name, 0, "fix the key file (see permissions)",
            "%s not tried: this node's key cannot be read", p->endpoint);
    r = handshake(z, p, cpk, csk, (int)s * 1000, &e);
    if (r > 0)
        return bs_checks_add(out, "peer", p->name, 1, "",
                             "%s answered and admits this node", p->endpoint);
    if (r < 0)
        return bs_checks_add(out, "peer", p->name, 0,
                             "pair this node there (branchsync peer add on "
                             "that node, with this node's ID from "
                             "branchsync id)",
                             "%s refused this node: it is not paired there, "
                             "or with another ID",
                             p->endpoint);
    return bs_checks_add(out, "peer", p->name, 0,
                         "check the address, that branchsyncd runs there and "
                         "that a firewall lets the port through",
                         "%s did not answer within %u s%s%s", p->endpoint, s,
                         e.msg[0] ? ": " : "", e.msg);
}

/* ---- clocks ---- */

static bs_err
check_clock(bs_checks *out, const bs_node *n, const bs_peer_status *p)
{
    int64_t off = p->clock_offset_ms, err = p->clock_error_ms;
    uint64_t bound = (uint64_t)n->cfg.max_skew_s * 1000;
    uint64_t least = (uint64_t)((off < 0 ? -off : off) - err);

    if (!p->clock_known)
        return bs_checks_add(out, "clock", p->name, 1, "",
                             "not measured (no recent network exchange "
                             "with %s)",
                             p->name);
    if ((off < 0 ? -off : off) > err && least > bound)
        return bs_checks_add(out, "clock", p->name, 0,
                             "fix the clock that is wrong (NTP) before the "
                             "first exchange: a clock ahead wins conflicts, "
                             "and sets from it are held",
                             "%s's clock is at least %.1f s %s ours, beyond "
                             "[sync] max_skew_s = %u",
                             p->name, (double)least / 1000,
                             off > 0 ? "ahead of" : "behind",
                             n->cfg.max_skew_s);
    return bs_checks_add(out, "clock", p->name, 1, "",
                         "%s's clock is within %.1f s of ours (±%.1f s)",
                         p->name, (double)(off < 0 ? -off : off) / 1000,
                         (double)err / 1000);
}

/* ---- all of it ---- */

static bs_err
check_peers(bs_node *n, bs_zmq *z, const bs_status *st, uint64_t now_ms,
            bs_checks *out)
{
    uint8_t cpk[32], csk[32];
    bs_errbuf e = {{0}};
    int have_keys = bs_node_curve(n, cpk, csk, &e) == BS_OK;
    bs_err rv = BS_OK;

    for (size_t i = 0; rv == BS_OK && i < st->npeers; i++) {
        const bs_peer_status *p = &st->peers[i];
        const char *dir = bs_endpoint_folder(p->endpoint);
        int64_t last = (int64_t)(p->last_ok_ms / 1000);

        rv = check_schedule(out, p->name, p->schedule, p->window,
                            (int64_t)(now_ms / 1000), last);
        if (rv == BS_OK)
            rv = dir ? check_folder(out, p->name, dir)
                     : check_network_peer(out, z, n, p, have_keys ? cpk : NULL,
                                          csk);
        if (rv == BS_OK && dir == NULL)
            rv = check_clock(out, n, p);
    }
    bs_wipe(csk, sizeof csk);
    return rv;
}

bs_err
bs_check_node(bs_node *n, bs_zmq *z, uint64_t now_ms, bs_checks *out,
              bs_errbuf *err)
{
    bs_status_opts so = bs_node_status_opts(n);
    bs_backup_view bv;
    bs_status st;
    bs_txn *t;
    bs_err rv;

    so.now_ms = now_ms;
    if ((rv = check_config(n, out)) != BS_OK ||
        (rv = check_permissions(n, out)) != BS_OK)
        return rv;
    bs_backups_view(n, now_ms, &bv);
    if (bv.configured &&
        (rv = check_schedule(out, "backup", n->cfg.backup_schedule, "",
                             (int64_t)(now_ms / 1000),
                             (int64_t)(bv.state.ok_ms / 1000))) != BS_OK)
        return rv;
    if ((rv = check_backup_dir(n, out)) != BS_OK)
        return rv;
    if ((rv = bs_store_read(n->store, &t, err)) != BS_OK)
        return rv;
    rv = bs_status_read(t, &n->meta, &so, &st, err);
    bs_txn_abort(t);
    if (rv != BS_OK)
        return rv;
    rv = check_peers(n, z, &st, now_ms, out);
    bs_status_fini(&st);
    return rv;
}
