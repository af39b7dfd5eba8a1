/*
 * health.c - the administrator's health view.
 */
#include "health.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../replication/admit.h"
#include "../replication/clock.h"
#include "../replication/crypto.h"
#include "../replication/members.h"
#include "../replication/setlog.h"
#include "backups.h"
#include "dropdir.h"
#include "../replication/streams.h"
#include "schedule.h"

bs_err
bs_problems_add(bs_problems *p, const char *kind, const char *subject,
                const char *todo, const char *fmt, ...)
{
    bs_problem *v = realloc(p->v, (p->n + 1) * sizeof *v), *x;
    char raw[BS_PROBLEM_TEXT_MAX + 1];
    va_list ap;

    if (v == NULL)
        return BS_ENOMEM;
    p->v = v;
    x = &v[p->n++];
    memset(x, 0, sizeof *x);
    x->kind = kind;
    bs_escape(x->subject, sizeof x->subject, subject ? subject : "");
    snprintf(x->todo, sizeof x->todo, "%s", todo);
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* Errors and notes may quote what a peer sent. */
    bs_escape(x->what, sizeof x->what, raw);
    return BS_OK;
}

void
bs_problems_fini(bs_problems *p)
{
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

/* What this node calls origin pk: its peer name, else its member name,
 * else the start of its node ID. */
static void
origin_name(bs_txn *t, const bs_meta *self, const uint8_t *pk, char *out,
            size_t n)
{
    char id[BS_NODE_ID_LEN + 1];
    bs_member m;
    bs_peer p;
    bs_err rv;

    if (bs_peer_find_pk(t, pk, &p) == BS_OK) {
        snprintf(out, n, "%s", p.name);
        bs_peer_fini(&p);
        return;
    }
    rv = bs_members_get(t, self, pk, &m);
    if ((rv == BS_OK || rv == BS_ENOTFOUND) && m.name[0]) {
        snprintf(out, n, "%s", m.name);
        return;
    }
    bs_node_id_format(pk, id);
    snprintf(out, n, "%.17s", id);
}

/* "3 minutes", "2 hours": how long ago t was, roughly. */
static void
ago(char *out, size_t n, uint64_t t, uint64_t now)
{
    uint64_t s = now > t ? (now - t) / 1000 : 0;

    if (s < 120)
        snprintf(out, n, "%llu s", (unsigned long long)s);
    else if (s < 7200)
        snprintf(out, n, "%llu minutes", (unsigned long long)(s / 60));
    else if (s < 2 * 86400)
        snprintf(out, n, "%llu hours", (unsigned long long)(s / 3600));
    else
        snprintf(out, n, "%llu days", (unsigned long long)(s / 86400));
}

static const char *
held_todo(uint32_t reason)
{
    switch ((bs_hold_reason)reason) {
    case BS_HOLD_CLOCK:
        return "fix the origin's clock (NTP); its sets apply by themselves "
               "once their time is no longer ahead of this node's";
    case BS_HOLD_INTRODUCTION:
        return "nothing: they apply once the held hub set that introduces "
               "their origin does (see the hub's own held sets)";
    default:
        return "nothing if it clears within minutes: held sets are retried "
               "on every exchange and by branchsyncd on a timer";
    }
}

/* Held (H) and refused (R) sets, one problem per origin stream and kind,
 * with the first set's reason. */
static bs_err
held_problems(bs_txn *t, const bs_status *st, bs_held_kind kind,
              const bs_health_opts *o, bs_problems *out)
{
    bs_streamtab tab;
    bs_held h, first;
    uint64_t count = 0;
    uint32_t stream = 0;
    bs_err rv, next;

    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    memset(&first, 0, sizeof first);
    for (uint64_t at = 0;; at = h.first) {
        next = bs_held_next(t, kind, stream, at, 0, &h);
        if (next != BS_OK && next != BS_ENOTFOUND) {
            rv = next;
            break;
        }
        if (count > 0 && (next == BS_ENOTFOUND || h.stream != first.stream)) {
            const bs_stream *s = bs_streams_get(&tab, first.stream);
            char name[80], since[32];

            if (s == NULL) {
                rv = BS_ESTORE;
                break;
            }
            origin_name(t, &st->meta, s->key, name, sizeof name);
            ago(since, sizeof since, first.since_ms, o->now_ms);
            if (kind == BS_HELD_WAITING)
                rv = bs_problems_add(
                    out, "held", name, held_todo(first.reason),
                    "%llu set%s of %s held back from seq %llu for %s: %s",
                    (unsigned long long)count, count == 1 ? "" : "s", name,
                    (unsigned long long)first.first, since, first.note);
            else
                rv = bs_problems_add(
                    out, "refused", name,
                    "remove the cause named here, then have the origin send "
                    "them again (branchsync sync on either side)",
                    "%llu set%s of %s from seq %llu refused when retried: "
                    "%s",
                    (unsigned long long)count, count == 1 ? "" : "s", name,
                    (unsigned long long)first.first, first.note);
            if (rv != BS_OK)
                break;
            count = 0;
        }
        if (next == BS_ENOTFOUND)
            break;
        if (count++ == 0)
            first = h;
        stream = h.stream;
    }
    bs_streams_fini(&tab);
    return rv;
}

static bs_err
stream_problems(bs_txn *t, const bs_status *st, bs_problems *out)
{
    for (size_t i = 0; i < st->nstreams; i++) {
        const bs_stream_status *s = &st->streams[i];
        char name[80];
        bs_err rv;

        if (!s->quarantined)
            continue;
        origin_name(t, &st->meta, s->origin, name, sizeof name);
        rv = bs_problems_add(
            out, "quarantined", name,
            "branchsync quarantine lists both versions; the head office "
            "keeps one (branchsync quarantine release ORIGIN --keep HASH), "
            "and only one copy of that node may run",
            "%s signed two histories (seq %llu: %s); its later changes are "
            "ignored here",
            name, (unsigned long long)s->seq, s->note);
        if (rv != BS_OK)
            return rv;
    }
    return BS_OK;
}

/* When p's schedule expected an exchange after the last good one, in ms;
 * 0 when it expects none (manual, online, never succeeded). */
static uint64_t
expected_by(const bs_peer_status *p)
{
    bs_schedule s;
    int64_t next;
    int64_t last = (int64_t)(p->last_ok_ms / 1000);

    if (p->last_ok_ms == 0 || bs_schedule_parse(&s, p->schedule, NULL) != BS_OK)
        return 0;
    if (p->window[0] && bs_schedule_parse_window(&s, p->window, NULL) != BS_OK)
        return 0;
    if (s.kind != BS_SCHED_EVERY && s.kind != BS_SCHED_CRON)
        return 0;
    if (bs_schedule_next(&s, last, last, &next) != BS_OK)
        return 0;
    return (uint64_t)next * 1000;
}

/*
 * Stuck: p has not acknowledged a change although an exchange with it
 * succeeded more than the grace period after that change was made.  An
 * exchange sends everything the peer lacks and ends with the peer's
 * vector, so such a change was offered and not taken (a set held or
 * refused there is "held_there", reported instead).
 */
static int
stuck(const bs_peer_status *p, uint64_t now, uint64_t grace)
{
    uint64_t oldest;

    if (p->pending_out == 0 || p->last_ok_ms == 0 ||
        p->oldest_unacked_age_s * 1000 > now)
        return 0;
    oldest = now - p->oldest_unacked_age_s * 1000;
    return p->last_ok_ms > oldest + grace;
}

static bs_err
peer_problems(const bs_status *st, const bs_health_opts *o, bs_problems *out)
{
    uint64_t grace = o->grace_ms ? o->grace_ms : BS_HEALTH_GRACE_MS;

    for (size_t i = 0; i < st->npeers; i++) {
        const bs_peer_status *p = &st->peers[i];
        int failing = p->last_err_ms > p->last_ok_ms;
        uint64_t due = expected_by(p);
        char when[32], err[300];
        bs_err rv = BS_OK;

        snprintf(err, sizeof err, "; last error: %s",
                 p->last_error[0] ? p->last_error : "none");
        if (p->needs_full_resync) {
            ago(when, sizeof when, p->last_ok_ms, o->now_ms);
            rv = bs_problems_add(
                out, "needs_full_resync", p->name,
                "seed the branch again from the hub (`branchsync peer seed "
                "BRANCH` at the hub), then exchange: exchanges with it are "
                "refused until then",
                "%s was last heard from %s ago, longer than the retention "
                "limit: what it holds may bring deleted records back",
                p->name, p->last_ok_ms ? when : "never");
        } else if (due != 0 && o->now_ms > due + grace) {
            char late[32];

            ago(when, sizeof when, p->last_ok_ms, o->now_ms);
            ago(late, sizeof late, due, o->now_ms);
            rv = bs_problems_add(
                out, "silent", p->name,
                "check that both daemons run and the network between them "
                "(branchsync sync NAME tries at once)",
                "no exchange with %s for %s: its schedule (%s) expected one "
                "%s ago%s",
                p->name, when, p->schedule, late, failing ? err : "");
        } else if (failing && o->now_ms > p->last_err_ms &&
                   (p->last_ok_ms == 0 || o->now_ms - p->last_ok_ms > grace)) {
            ago(when, sizeof when, p->last_err_ms, o->now_ms);
            rv = bs_problems_add(out, "peer_error", p->name,
                                 "check the peer's address and that its "
                                 "daemon runs (branchsync sync NAME tries "
                                 "at once)",
                                 "the last exchange with %s failed %s ago%s",
                                 p->name, when, err);
        }
        if (rv == BS_OK && !p->needs_full_resync && p->held_there == 0 &&
            stuck(p, o->now_ms, grace)) {
            ago(when, sizeof when, o->now_ms - p->oldest_unacked_age_s * 1000,
                o->now_ms);
            rv = bs_problems_add(
                out, "stuck", p->name,
                "run branchsync doctor on that node and see its log: it "
                "receives the changes but does not take them (branchsync "
                "log NAME shows the exchanges)",
                "%llu change%s for %s unacknowledged for %s, although "
                "exchanges with it succeed",
                (unsigned long long)p->pending_out,
                p->pending_out == 1 ? "" : "s", p->name, when);
        }
        if (rv == BS_OK && p->refused_sets > 0)
            rv = bs_problems_add(
                out, "refused", p->name,
                "that origin's later sets wait behind them: remove the "
                "cause named here (or on the origin), then sync again",
                "the last exchange with %s refused %llu change set%s it "
                "sent (first: %s)",
                p->name, (unsigned long long)p->refused_sets,
                p->refused_sets == 1 ? "" : "s", p->refused_reason);
        if (rv == BS_OK && p->held_there > 0)
            rv = bs_problems_add(
                out, "held_there", p->name,
                "run branchsync doctor on that node: it names the reason "
                "(often this node's clock)",
                "%llu change set%s this node sent to %s %s held or refused "
                "there",
                (unsigned long long)p->held_there,
                p->held_there == 1 ? "" : "s", p->name,
                p->held_there == 1 ? "was" : "were");
        if (rv != BS_OK)
            return rv;
    }
    return BS_OK;
}

/* This node's clock against its peers' (the verdict of clock.h), and each
 * peer's certainly beyond the skew bound. */
static bs_err
clock_problems(const bs_status *st, bs_problems *out)
{
    bs_err rv;

    if (st->clock_action != 0 &&
        (rv = bs_problems_add(
             out, "clock_skew", "",
             "fix this node's clock (NTP: timedatectl set-ntp true); the "
             "correction stops by itself once it is right",
             "this node's clock is %lld s ahead of %s's (%zu peer%s "
             "measured): %s",
             (long long)(st->clock.ahead_ms / 1000), st->clock.peer,
             st->clock.npeers, st->clock.npeers == 1 ? "" : "s",
             st->clock_action == BS_CLOCK_REFUSE + 1
                 ? "local writes are refused ([sync] clock_ahead = refuse)"
                 : "its writes are stamped with the peers' time")) != BS_OK)
        return rv;
    for (size_t i = 0; i < st->npeers; i++) {
        const bs_peer_status *p = &st->peers[i];
        int64_t off = p->clock_offset_ms, mag = off < 0 ? -off : off;

        if (!p->clock_known || st->max_skew_ms == 0 ||
            mag - p->clock_error_ms <= (int64_t)st->max_skew_ms)
            continue;
        if (off < 0 && st->clock_action != 0)
            continue; /* this node is the one ahead: said above */
        rv = bs_problems_add(
            out, "clock_skew", p->name,
            off > 0 ? "fix the clock of that node (NTP); its sets are held "
                      "here until their time comes"
                    : "fix whichever clock is wrong (NTP on both nodes)",
            "%s's clock is %lld s %s ours (+/- %.1f s), beyond the %llu s "
            "bound",
            p->name, (long long)(mag / 1000), off > 0 ? "ahead of" : "behind",
            (double)p->clock_error_ms / 1000,
            (unsigned long long)(st->max_skew_ms / 1000));
        if (rv != BS_OK)
            return rv;
    }
    return BS_OK;
}

/* Offices whose changes were refused by rule here lately (in the last
 * BS_REFUSED_RECENT_MS; access.h): they wrote what the head office's
 * rules forbid before the rules reached them.  Older refusals stay in
 * `status`; the problem goes once an office has had none for a while. */
static bs_err
rule_problems(const bs_status *st, uint64_t now_ms, bs_problems *out)
{
    for (size_t i = 0; i < st->noffices; i++) {
        const bs_office_status *o = &st->offices[i];
        char id[BS_NODE_ID_LEN + 1], name[80];
        bs_err rv;

        if (o->refused_by_rule == 0 || o->refused_last_ms == 0 ||
            o->refused_last_ms + BS_REFUSED_RECENT_MS <= now_ms)
            continue;
        bs_node_id_format(o->pk, id);
        snprintf(name, sizeof name, "%s", o->name[0] ? o->name : id);
        rv = bs_problems_add(
            out, "refused_by_rule", name,
            "the office wrote before the head office's rules reached it; its "
            "other changes applied: have the data entered where the rules "
            "allow (at the hub, or by the record's owner), or change the "
            "rule (branchsync collection NAME --writers ...) at the hub",
            "%llu change%s written at %s %s refused by rule (first: %s)",
            (unsigned long long)o->refused_by_rule,
            o->refused_by_rule == 1 ? "" : "s", name,
            o->refused_by_rule == 1 ? "was" : "were", o->refused_first);
        if (rv != BS_OK)
            return rv;
    }
    return BS_OK;
}

static int
has_timed_links(const bs_status *st)
{
    for (size_t i = 0; i < st->npeers; i++)
        if (strcmp(st->peers[i].schedule, "manual") != 0)
            return 1;
    return 0;
}

bs_err
bs_health_check(bs_txn *t, const bs_status *st, uint64_t used,
                const bs_health_opts *o, bs_problems *out)
{
    uint64_t need = used > BS_HEALTH_DISK_MIN ? used : BS_HEALTH_DISK_MIN;
    bs_err rv;

    if (o->corrupt != NULL &&
        (rv = bs_problems_add(out, "store_corrupt", "",
                              "stop branchsyncd and restore from a backup "
                              "(branchsync restore FILE)",
                              "%s", o->corrupt)) != BS_OK)
        return rv;
    if ((rv = held_problems(t, st, BS_HELD_WAITING, o, out)) != BS_OK ||
        (rv = held_problems(t, st, BS_HELD_REFUSED, o, out)) != BS_OK ||
        (rv = stream_problems(t, st, out)) != BS_OK ||
        (rv = clock_problems(st, out)) != BS_OK ||
        (rv = peer_problems(st, o, out)) != BS_OK ||
        (rv = rule_problems(st, o->now_ms, out)) != BS_OK)
        return rv;
    if (o->daemon == 0 && has_timed_links(st)) {
        char todo[BS_PROBLEM_TEXT_MAX + 1];

        snprintf(todo, sizeof todo,
                 "start it: branchsyncd -d %s, or its systemd unit "
                 "(branchsyncd@.service, docs/operations.md)",
                 o->dir ? o->dir : "DIR");
        if ((rv = bs_problems_add(out, "daemon_down", "", todo,
                                  "branchsyncd does not run for this node: "
                                  "its schedules and online links do "
                                  "nothing")) != BS_OK)
            return rv;
    }
    if (o->daemon == 2 &&
        (rv = bs_problems_add(out, "daemon_down", "",
                              "see its log (journalctl, or its stderr) and "
                              "restart it",
                              "branchsyncd runs for this node but does not "
                              "answer on its control socket")) != BS_OK)
        return rv;
    if (o->http_error != NULL && o->http_error[0] &&
        (rv = bs_problems_add(
             out, "http_down", "",
             "free that address or set another in [http] listen of "
             "branchsync.conf and restart branchsyncd (it retries every few "
             "seconds meanwhile; replication goes on)",
             "the HTTP API is not served: %s", o->http_error)) != BS_OK)
        return rv;
    if (o->map_max != 0 && used > o->map_max / 100 * BS_HEALTH_MAP_PCT &&
        (rv = bs_problems_add(
             out, "map_low", "",
             "raise [store] max_map_size_mb in branchsync.conf and restart "
             "branchsyncd",
             "the store uses %.0f MiB of its %.0f MiB limit", used / 1048576.0,
             o->map_max / 1048576.0)) != BS_OK)
        return rv;
    if ((o->disk_size != 0 || o->disk_free != 0) && o->disk_free < need)
        return bs_problems_add(
            out, "disk_low", "",
            "free disk space: the store grows into it, and a backup needs as "
            "much again",
            "the store's file system has %.0f MiB free; the store uses %.0f "
            "MiB",
            o->disk_free / 1048576.0, used / 1048576.0);
    return BS_OK;
}

bs_err
bs_health_files(const struct bs_node *n, const bs_status *st, uint64_t now_ms,
                bs_problems *out)
{
    bs_err rv = bs_backups_problems(n, now_ms, out);

    for (size_t i = 0; rv == BS_OK && i < st->npeers; i++) {
        const char *dir = bs_endpoint_folder(st->peers[i].endpoint);
        if (dir != NULL)
            rv = bs_drop_problems(st->peers[i].name, dir, st->meta.pk,
                                  st->peers[i].pk, now_ms, out);
    }
    return rv;
}
