/*
 * output.c - JSON documents and the human forms of results.
 */
#include "output.h"

#include <string.h>
#include <time.h>

#include "../replication/json.h"

void
bs_out_json(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;

    if (s != NULL)
        puts(s);
    free(s);
    json_decref(j);
}

const char *
bs_out_plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

void
bs_out_age(char *buf, size_t n, uint64_t ms, uint64_t now)
{
    uint64_t d = now > ms ? (now - ms) / 1000 : 0;

    if (ms == 0)
        snprintf(buf, n, "never");
    else if (d < 60)
        snprintf(buf, n, "%llu s ago", (unsigned long long)d);
    else if (d < 3600)
        snprintf(buf, n, "%llu min ago", (unsigned long long)(d / 60));
    else if (d < 86400 * 2)
        snprintf(buf, n, "%llu h ago", (unsigned long long)(d / 3600));
    else
        snprintf(buf, n, "%llu days ago", (unsigned long long)(d / 86400));
}

void
bs_out_time(char *buf, size_t n, int64_t s, int seconds)
{
    struct tm tm;
    time_t tt = (time_t)s;

    localtime_r(&tt, &tm);
    strftime(buf, n, seconds ? "%Y-%m-%d %H:%M:%S %Z" : "%Y-%m-%d %H:%M %Z",
             &tm);
}

bs_err
bs_out_record(const char *id, size_t idlen, const bs_record *r)
{
    char *s = bs_json_record(id, idlen, r);

    if (s == NULL)
        return BS_ENOMEM;
    puts(s);
    free(s);
    return BS_OK;
}

/* The first 17 characters of a node ID, for narrow columns. */
static const char *
short_id(const uint8_t *pk, char buf[BS_NODE_ID_LEN + 1])
{
    bs_node_id_format(pk, buf);
    buf[17] = '\0';
    return buf;
}

/* A folder peer: its folder as it is now, and the last run. */
static void
status_folder(const bs_peer_status *p, const uint8_t *me, uint64_t now)
{
    const char *path = bs_endpoint_folder(p->endpoint);
    char last[32], esc[4 * BS_ERRMSG_LEN];
    bs_drop_scan s;

    bs_drop_scan_folder(path, me, p->pk, &s);
    bs_out_age(last, sizeof last,
               p->last_ok_ms > p->last_err_ms ? p->last_ok_ms : p->last_err_ms,
               now);
    printf("    folder %s%s; last run %s; files waiting: %llu from it, %llu "
           "of ours; refused: %llu here, %llu there\n",
           path,
           !s.exists     ? " (MISSING)"
           : !s.writable ? " (NOT WRITABLE)"
                         : "",
           last, (unsigned long long)s.pending_in,
           (unsigned long long)s.pending_out,
           (unsigned long long)s.refused_here,
           (unsigned long long)s.refused_there);
    if (s.first_refusal[0])
        printf("    first refused here: %s\n",
               bs_escape(esc, sizeof esc, s.first_refusal));
}

static void
status_peer(const bs_peer_status *p, const json_t *run, uint64_t now,
            const uint8_t *me)
{
    char ok[32], bad[32], esc[4 * sizeof p->last_error];

    bs_out_age(ok, sizeof ok, p->last_ok_ms, now);
    bs_out_age(bad, sizeof bad, p->last_err_ms, now);
    printf("  %-12s %s%s%s", p->name, p->schedule,
           p->window[0] ? ", window " : "", p->window);
    if (json_is_integer(run)) {
        long long in =
            (long long)json_integer_value(run) - (long long)(now / 1000);
        printf("; next run in %lld s", in < 0 ? 0 : in);
    }
    printf("\n    last success %s; pending: %llu to send, %llu to receive; "
           "oldest unacknowledged %llu s\n",
           ok, (unsigned long long)p->pending_out,
           (unsigned long long)p->pending_in,
           (unsigned long long)p->oldest_unacked_age_s);
    if (p->last_error[0]) /* may quote a peer's ERROR text: escape it */
        printf("    last error %s: %s\n", bad,
               bs_escape(esc, sizeof esc, p->last_error));
    if (p->clock_known) {
        char at[32];
        long long off = (long long)p->clock_offset_ms;
        bs_out_age(at, sizeof at, p->clock_at_ms, now);
        printf("    clock: %lld.%01lld s %s ours (±%.1f s, measured %s)\n",
               (off < 0 ? -off : off) / 1000,
               (off < 0 ? -off : off) % 1000 / 100,
               off < 0 ? "behind" : "ahead of",
               (double)p->clock_error_ms / 1000, at);
    }
    if (p->refused_sets > 0)
        printf("    last exchange: refused %llu change set%s it sent "
               "(first: %s)\n",
               (unsigned long long)p->refused_sets,
               p->refused_sets == 1 ? "" : "s",
               bs_escape(esc, sizeof esc, p->refused_reason));
    if (p->held_there > 0)
        printf("    last exchange: %llu change set%s sent to it %s held or "
               "refused there (see its status)\n",
               (unsigned long long)p->held_there, p->held_there == 1 ? "" : "s",
               p->held_there == 1 ? "was" : "were");
    if (p->needs_full_resync)
        printf("    NEEDS FULL RESYNC: silent longer than the retention "
               "limit (the hub seeds the branch again: peer seed)\n");
    if (bs_endpoint_folder(p->endpoint) != NULL)
        status_folder(p, me, now);
}

/* Another office: last contact, lag, changes refused by rule; indented
 * by `in` (2, or 4 under its regional hub). */
static void
status_office(const bs_office_status *o, uint64_t now, int in)
{
    char ok[32], set[32], esc[4 * sizeof o->refused_first];

    bs_out_age(ok, sizeof ok, o->last_ok_ms, now);
    bs_out_age(set, sizeof set, o->last_set_ms, now);
    printf("%*s%-12s %s%s%s%s; last exchange %s; its newest set %s (%llu %s "
           "here)\n",
           in, "", o->name[0] ? o->name : "(unnamed)",
           o->region_hub ? "regional hub" : bs_role_name(o->role),
           o->via[0] ? " via " : "", o->via, o->revoked ? ", REVOKED" : "",
           o->peer >= 0 ? ok : "none (not paired here)", set,
           (unsigned long long)o->changes, BS_PL(o->changes, "change"));
    if (o->peer >= 0)
        printf("%*s  lag: %llu to send, %llu to receive; oldest "
               "unacknowledged %llu s\n",
               in, "", (unsigned long long)o->pending_out,
               (unsigned long long)o->pending_in,
               (unsigned long long)o->oldest_unacked_age_s);
    if (o->has_seen && o->role != BS_ROLE_HUB)
        printf("%*s  had %llu of the hub's %llu %s when it sealed its "
               "newest set\n",
               in, "", (unsigned long long)o->hub_seen,
               (unsigned long long)o->hub_held, BS_PL(o->hub_held, "change"));
    if (o->refused_by_rule > 0)
        printf("%*s  refused by rule: %llu %s (first: %s)\n", in, "",
               (unsigned long long)o->refused_by_rule,
               BS_PL(o->refused_by_rule, "change"),
               bs_escape(esc, sizeof esc, o->refused_first));
}

/* 1 when office o is listed under a regional hub of st (the tree). */
static int
under_region(const bs_status *st, const bs_office_status *o)
{
    for (size_t i = 0; o->via[0] && i < st->noffices; i++)
        if (st->offices[i].region_hub &&
            strcmp(st->offices[i].name, o->via) == 0)
            return 1;
    return 0;
}

/* The offices as a tree: each regional hub with its branches under it. */
static void
status_offices(const bs_status *st, uint64_t now)
{
    printf("offices:%s\n", st->noffices ? "" : "     none");
    for (size_t i = 0; i < st->noffices; i++) {
        const bs_office_status *o = &st->offices[i];
        if (under_region(st, o))
            continue;
        status_office(o, now, 2);
        for (size_t k = 0; o->region_hub && k < st->noffices; k++)
            if (strcmp(st->offices[k].via, o->name) == 0)
                status_office(&st->offices[k], now, 4);
    }
}

/* The node's clock against its peers' (replication/clock.h). */
static void
status_clock(const bs_status *st)
{
    long long s = (long long)(st->clock.ahead_ms / 1000);

    if (st->clock.npeers == 0)
        printf("clock:       not compared yet (no network exchange in the "
               "last 7 days)\n");
    else if (st->clock_action == 0)
        printf("clock:       in step with its peers (within %llu s)\n",
               (unsigned long long)(st->max_skew_ms / 1000));
    else
        printf("clock:       %lld s AHEAD of %s's: local writes are %s; fix "
               "this node's clock\n",
               s, st->clock.peer,
               st->clock_action == 1 ? "stamped that much back"
                                     : "refused (clock_ahead = refuse)");
}

void
bs_out_status(const bs_status *st, const json_t *runs, uint64_t used,
              uint64_t map, uint64_t now)
{
    char id[BS_NODE_ID_LEN + 1], buf[2 * BS_INFOBASE_LEN + 1];

    bs_node_id_format(st->meta.pk, id);
    printf("node:        %s (%s)\nid:          %s\n", st->meta.name,
           bs_role_name(st->meta.role), id);
    if (st->meta.joined)
        bs_hex(buf, st->meta.infobase, BS_INFOBASE_LEN);
    printf("infobase:    %s\n",
           st->meta.joined ? buf : "not joined yet (waits for the hub)");
    bs_hex(buf, st->meta.inc, BS_INC_LEN);
    printf("incarnation: %s\n", buf);
    printf("change log:  %llu %s in %llu %s (%llu written here)\n",
           (unsigned long long)st->changes, BS_PL(st->changes, "change"),
           (unsigned long long)st->change_sets, BS_PL(st->change_sets, "set"),
           (unsigned long long)st->own_changes);
    printf("log size:    ");
    bs_out_logsize(&st->log);
    printf("store:       %.1f MiB used of a %.0f MiB map\n", used / 1048576.0,
           map / 1048576.0);
    printf("conflicts:   %llu open, %llu in all\n",
           (unsigned long long)st->conflicts_open,
           (unsigned long long)st->conflicts_total);
    if (st->seeding)
        printf("seeding:     %s%s%s, %llu %s (incomplete: the hub's next "
               "seed to this branch completes it)\n",
               st->seed_coll[0] ? st->seed_coll : "not begun",
               st->seed_coll[0] ? "/" : "", st->seed_id,
               (unsigned long long)st->seed_records,
               BS_PL(st->seed_records, "record"));
    status_clock(st);
    printf("peers:%s\n", st->npeers ? "" : "       none");
    for (size_t i = 0; i < st->npeers; i++)
        status_peer(&st->peers[i], json_array_get(runs, i), now, st->meta.pk);
    for (size_t i = 0; i < st->nstreams; i++) {
        const bs_stream_status *s = &st->streams[i];
        bs_node_id_format(s->origin, id);
        printf("  %s origin %.17s… at seq %llu: %s\n",
               s->quarantined ? "QUARANTINED" : "HELD", id,
               (unsigned long long)s->seq, s->note);
    }
    status_offices(st, now);
    printf("collections:%s\n", st->ncolls ? "" : " none");
    for (size_t i = 0; i < st->ncolls; i++)
        printf("  %-24s %llu %s, %llu deleted\n", st->colls[i].name,
               (unsigned long long)st->colls[i].records,
               BS_PL(st->colls[i].records, "record"),
               (unsigned long long)st->colls[i].deleted);
}

void
bs_out_peers(const bs_peer *v, size_t n, uint64_t now)
{
    if (n == 0)
        printf("no peers (pair one with: branchsync peer add NAME ENDPOINT "
               "NODE_ID)\n");
    for (size_t i = 0; i < n; i++) {
        char id[BS_NODE_ID_LEN + 1], ok[32];
        bs_node_id_format(v[i].pk, id);
        bs_out_age(ok, sizeof ok, v[i].last_ok_ms, now);
        printf("%-12s %-28s %s\n             schedule: %s%s%s, last "
               "exchange: %s%s\n",
               v[i].name, v[i].endpoint, id, v[i].schedule,
               v[i].window[0] ? " window " : "", v[i].window, ok,
               v[i].hub_pin == BS_PIN_NAMED  ? ", pinned hub (--hub)"
               : v[i].hub_pin == BS_PIN_AUTO ? ", pinned hub"
                                             : "");
    }
}

void
bs_out_conflict(const bs_conflict *c,
                const char names[2][BS_NODE_NAME_MAX + 32])
{
    if (c->kind == BS_CONFLICT_DUPLICATE) {
        char *v = bs_json_value_text(&c->side[0].val);

        printf("%s  %s/%s and %s/%s: duplicate %s %s  %s%s%s\n", c->id, c->coll,
               c->rid, c->coll, c->other, c->field, v ? v : "?",
               c->resolved ? "resolved" : "OPEN",
               c->resolved ? ": " : " (branchsync merge ",
               c->resolved ? c->resolution : "COLL KEEP OTHER)");
        free(v);
        return;
    }
    printf("%s  %s/%s field %s  policy %s  %s\n", c->id, c->coll, c->rid,
           c->field, bs_policy_name(c->policy),
           c->resolved ? "resolved" : "OPEN");
    for (int k = 0; k < 2; k++) {
        const bs_conflict_side *s = &c->side[k];
        char *v;

        printf("    %s %s: ", k == c->winner ? "*" : " ", names[k]);
        if (s->deleted) {
            printf("(deleted)\n");
            continue;
        }
        v = bs_json_value_text(&s->val);
        printf("%s\n", v ? v : "?");
        free(v);
    }
}

void
bs_out_exchange(const bs_xlog_entry *e)
{
    char when[64], esc[4 * sizeof e->error];

    bs_out_time(when, sizeof when, (int64_t)(e->time_ms / 1000), 0);
    printf("%s  %-10s %-7s %-4s sent %llu %s, received %llu, %llu %s, "
           "%llu %s, %llu ms: %s\n",
           when, e->peer, e->via, e->direction,
           (unsigned long long)e->sets_sent, BS_PL(e->sets_sent, "set"),
           (unsigned long long)e->sets_received, (unsigned long long)e->changes,
           BS_PL(e->changes, "change"), (unsigned long long)e->bytes,
           BS_PL(e->bytes, "byte"), (unsigned long long)e->duration_ms,
           e->error[0] ? bs_escape(esc, sizeof esc, e->error) : "ok");
}

void
bs_out_inspect(const char *path, const bs_inspect *in)
{
    char s[BS_NODE_ID_LEN + 1], r[BS_NODE_ID_LEN + 1] = "";

    printf("file:      %s (%llu %s)\n", path, (unsigned long long)in->bytes,
           BS_PL(in->bytes, "byte"));
    if (in->has_envelope) {
        bs_node_id_format(in->sender, s);
        if (in->has_receiver)
            bs_node_id_format(in->receiver, r);
        printf("from:      %s (%s)\nto:        %s\nmessage:   #%llu\n",
               in->sender_name, s, r, (unsigned long long)in->message_no);
    }
    printf("framing:   %s\nchecksum:  %s\nsignature: %s\n", in->framing,
           in->checksum, in->file_signature);
    printf("change sets: %zu\n", in->nsets);
    if (in->snapshots) /* frame 4: after the sets */
        printf("record snapshots: %llu\n", (unsigned long long)in->snapshots);
    for (size_t i = 0; i < in->nsets; i++) {
        const bs_inspect_set *x = &in->sets[i];
        if (!x->decoded) {
            printf("  %zu: %s\n", i, x->error);
            continue;
        }
        printf("  origin %s… seq %llu-%llu: %llu %s, %llu omitted, "
               "signature %s",
               short_id(x->origin, s), (unsigned long long)x->first,
               (unsigned long long)x->last, (unsigned long long)x->changes,
               BS_PL(x->changes, "change"), (unsigned long long)x->omitted,
               x->signature_ok ? "valid" : "INVALID");
        if (x->summary == 2)
            printf(", summary form: %u of %u %s", x->carried, x->buckets,
                   BS_PL(x->buckets, "bucket"));
        printf("\n");
    }
}

void
bs_out_import(const bs_xstats *st)
{
    if (st->replay) {
        printf("nothing new: this exchange from %s was already imported\n",
               st->peer);
        return;
    }
    printf("imported from %s: %llu %s, %llu %s applied", st->peer,
           (unsigned long long)st->sets, BS_PL(st->sets, "change set"),
           (unsigned long long)st->changes, BS_PL(st->changes, "change"));
    if (st->dup_sets)
        printf(", %llu already held", (unsigned long long)st->dup_sets);
    if (st->conflicts)
        printf(", %llu %s", (unsigned long long)st->conflicts,
               BS_PL(st->conflicts, "conflict"));
    if (st->held)
        printf(", %llu held back (see status)", (unsigned long long)st->held);
    if (st->quarantined)
        printf(", %llu QUARANTINED (see status)",
               (unsigned long long)st->quarantined);
    if (st->snapshots)
        printf(", %llu record %s merged", (unsigned long long)st->snapshots,
               BS_PL(st->snapshots, "snapshot"));
    if (st->reseeded)
        printf("; seeded again after the retention limit: %llu own %s "
               "written again, %llu dropped (their records gone at the hub, "
               "or changed there later)",
               (unsigned long long)st->reissued, BS_PL(st->reissued, "change"),
               (unsigned long long)st->reseed_dropped);
    printf("%s\n", st->joined ? "; joined the infobase" : "");
}

void
bs_out_logsize(const bs_logsize *ls)
{
    char when[64] = "none kept";

    if (ls->oldest_ms > 0) {
        snprintf(when, sizeof when, "the oldest from ");
        bs_out_time(when + strlen(when), sizeof when - strlen(when),
                    (int64_t)(ls->oldest_ms / 1000), 0);
    }
    printf("%llu %s, %.1f MiB, %s; %llu compacted\n",
           (unsigned long long)ls->sets, BS_PL(ls->sets, "set"),
           ls->bytes / 1048576.0, when, (unsigned long long)ls->compacted);
}

void
bs_out_compact(const bs_compact_stats *st, const bs_logsize *ls, int dry)
{
    printf("%s %llu change %s (%.1f KiB); kept %llu needed (a stream's last, "
           "system changes), %llu waiting for peers' acknowledgement, %llu "
           "younger than the retention limit\n",
           dry ? "would compact" : "compacted", (unsigned long long)st->sets,
           BS_PL(st->sets, "set"), st->bytes / 1024.0,
           (unsigned long long)st->kept_needed,
           (unsigned long long)st->held_by_peers,
           (unsigned long long)st->too_recent);
    printf("log: ");
    bs_out_logsize(ls);
}

void
bs_out_purge(const bs_purge_stats *st)
{
    printf("%llu %s: %llu purged, %llu held for peers' "
           "acknowledgement, %llu younger than the retention limit\n",
           (unsigned long long)st->tombstones,
           BS_PL(st->tombstones, "tombstone"), (unsigned long long)st->purged,
           (unsigned long long)st->held_by_peers,
           (unsigned long long)st->too_recent);
}

void
bs_out_problems(const bs_problems *p)
{
    for (size_t i = 0; i < p->n; i++)
        printf("%s%s%s: %s\n  -> %s\n", p->v[i].kind,
               p->v[i].subject[0] ? " " : "", p->v[i].subject, p->v[i].what,
               p->v[i].todo);
    if (p->n == 0)
        printf("healthy: nothing needs attention\n");
    else
        printf("%zu problem%s\n", p->n, p->n == 1 ? "" : "s");
}

void
bs_out_backup(const bs_config *cfg, const bs_backup_view *v, uint64_t now_ms)
{
    char age[32], next[64], esc[4 * BS_ERRMSG_LEN];

    if (!v->configured)
        return;
    printf("backups:     %s into %s, keeping the newest %u (%llu there)\n",
           cfg->backup_schedule, cfg->backup_dir, cfg->backup_keep,
           (unsigned long long)v->count);
    bs_out_age(age, sizeof age, v->last_ms, now_ms);
    if (v->next_s > 0)
        bs_out_time(next, sizeof next, v->next_s, 1);
    printf("             last %s%s%s; next %s\n", v->last[0] ? v->last : "none",
           v->last[0] ? ", " : "", v->last[0] ? age : "",
           v->next_s > 0 ? next : "none");
    if (v->state.err_ms > v->state.ok_ms)
        printf("             last run FAILED: %s\n",
               bs_escape(esc, sizeof esc, v->state.error));
}

void
bs_out_checks(const bs_checks *k)
{
    for (size_t i = 0; i < k->n; i++) {
        const bs_check *c = &k->v[i];
        char head[128];
        snprintf(head, sizeof head, "%s%s%s", c->area, c->subject[0] ? " " : "",
                 c->subject);
        printf("%-4s  %-20s %s\n", c->ok ? "ok" : "FAIL", head, c->what);
        if (!c->ok)
            printf("      -> %s\n", c->todo);
    }
    if (k->failed == 0)
        printf("all %zu checks passed\n", k->n);
    else
        printf("%zu %s\n", k->failed, k->failed == 1 ? "problem" : "problems");
}
