/*
 * render.c - typed results as JSON documents.
 */
#include "render.h"

#include <string.h>

json_t *
bs_render_value(const bs_value *v)
{
    switch (v->type) {
    case BS_VNULL:
        return json_null();
    case BS_VTRUE:
        return json_true();
    case BS_VFALSE:
        return json_false();
    case BS_VINT:
        return json_integer(v->i);
    case BS_VREAL:
        return json_real(v->d);
    default:
        return json_stringn(v->s, v->len);
    }
}

static json_t *
id_json(const uint8_t *pk)
{
    char id[BS_NODE_ID_LEN + 1];

    bs_node_id_format(pk, id);
    return json_string(id);
}

static json_t *
peer_status(const bs_peer_status *p)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:b}",
        "name", p->name, "endpoint", p->endpoint, "id", id_json(p->pk),
        "schedule", p->schedule, "window", p->window, "last_success_ms",
        (json_int_t)p->last_ok_ms, "last_error_ms", (json_int_t)p->last_err_ms,
        "last_error", p->last_error, "pending_out", (json_int_t)p->pending_out,
        "pending_in", (json_int_t)p->pending_in, "oldest_unacked_age_s",
        (json_int_t)p->oldest_unacked_age_s, "received_changes",
        (json_int_t)p->received_changes, "needs_full_resync",
        p->needs_full_resync);

    if (j == NULL)
        return NULL;
    /* Its clock minus ours, from the last exchange (null: unknown). */
    json_object_set_new(
        j, "clock",
        p->clock_known ? json_pack("{s:I, s:I, s:I}", "offset_ms",
                                   (json_int_t)p->clock_offset_ms, "error_ms",
                                   (json_int_t)p->clock_error_ms, "measured_ms",
                                   (json_int_t)p->clock_at_ms)
                       : json_null());
    json_object_set_new(j, "refused_sets", json_integer(p->refused_sets));
    json_object_set_new(j, "refused_reason", json_string(p->refused_reason));
    json_object_set_new(j, "held_there", json_integer(p->held_there));
    return j;
}

/* Another office as the node sees it: last contact, lag (null when not
 * paired here), changes refused by rule with the first reason. */
static json_t *
office_status(const bs_office_status *o)
{
    json_t *j = json_pack(
        "{s:s, s:o, s:s, s:b, s:b, s:b, s:I, s:I, s:I}", "name", o->name, "id",
        id_json(o->pk), "role", bs_role_name(o->role), "member", o->member,
        "revoked", o->revoked, "paired", o->peer >= 0, "last_success_ms",
        (json_int_t)o->last_ok_ms, "last_set_ms", (json_int_t)o->last_set_ms,
        "changes", (json_int_t)o->changes);

    if (j == NULL)
        return NULL;
    if (o->region_hub)
        json_object_set_new(j, "role", json_string("region"));
    json_object_set_new(j, "via",
                        o->via[0] ? json_string(o->via) : json_null());
    json_object_set_new(j, "hub_seen",
                        o->has_seen ? json_pack("{s:I, s:I}", "seen",
                                                (json_int_t)o->hub_seen, "held",
                                                (json_int_t)o->hub_held)
                                    : json_null());
    json_object_set_new(j, "lag",
                        o->peer >= 0
                            ? json_pack("{s:I, s:I, s:I}", "pending_out",
                                        (json_int_t)o->pending_out,
                                        "pending_in", (json_int_t)o->pending_in,
                                        "oldest_unacked_age_s",
                                        (json_int_t)o->oldest_unacked_age_s)
                            : json_null());
    json_object_set_new(
        j, "refused_by_rule",
        json_pack(
            "{s:I, s:o, s:o}", "count", (json_int_t)o->refused_by_rule, "first",
            o->refused_by_rule ? json_string(o->refused_first) : json_null(),
            "last_ms",
            o->refused_last_ms ? json_integer((json_int_t)o->refused_last_ms)
                               : json_null()));
    return j;
}

static const char *const clock_actions[] = {"none", "correct", "refuse"};

static json_t *
clock_json(const bs_status *st)
{
    return json_pack("{s:I, s:o, s:I, s:I, s:s}", "ahead_ms",
                     (json_int_t)st->clock.ahead_ms, "reference",
                     st->clock.peer[0] ? json_string(st->clock.peer)
                                       : json_null(),
                     "peers_measured", (json_int_t)st->clock.npeers,
                     "max_skew_ms", (json_int_t)st->max_skew_ms, "action",
                     clock_actions[st->clock_action < 0 || st->clock_action > 2
                                       ? 0
                                       : st->clock_action]);
}

json_t *
bs_render_status(const bs_status *st)
{
    char ib[2 * BS_INFOBASE_LEN + 1], inc[2 * BS_INC_LEN + 1];
    json_t *peers = json_array(), *streams = json_array(),
           *offices = json_array(), *cols = json_object(), *j;

    for (size_t i = 0; i < st->npeers; i++)
        json_array_append_new(peers, peer_status(&st->peers[i]));
    for (size_t i = 0; i < st->noffices; i++)
        json_array_append_new(offices, office_status(&st->offices[i]));
    for (size_t i = 0; i < st->nstreams; i++)
        json_array_append_new(
            streams,
            json_pack("{s:o, s:I, s:b, s:s}", "origin",
                      id_json(st->streams[i].origin), "seq",
                      (json_int_t)st->streams[i].seq, "quarantined",
                      st->streams[i].quarantined, "note", st->streams[i].note));
    for (size_t i = 0; i < st->ncolls; i++)
        json_object_set_new(
            cols, st->colls[i].name,
            json_pack("{s:I, s:I}", "records", (json_int_t)st->colls[i].records,
                      "deleted", (json_int_t)st->colls[i].deleted));
    bs_hex(inc, st->meta.inc, BS_INC_LEN);
    if (st->meta.joined)
        bs_hex(ib, st->meta.infobase, BS_INFOBASE_LEN);
    j = json_pack(
        "{s:s, s:s, s:o, s:o, s:s, s:{s:I, s:I, s:I}, s:{s:I, s:I}, s:o, "
        "s:o, s:o, s:o}",
        "name", st->meta.name, "role", bs_role_name(st->meta.role), "id",
        id_json(st->meta.pk), "infobase",
        st->meta.joined ? json_string(ib) : json_null(), "incarnation", inc,
        "log", "change_sets", (json_int_t)st->change_sets, "changes",
        (json_int_t)st->changes, "own_changes", (json_int_t)st->own_changes,
        "conflicts", "open", (json_int_t)st->conflicts_open, "total",
        (json_int_t)st->conflicts_total, "peers", peers, "streams_attention",
        streams, "collections", cols, "clock", clock_json(st));
    if (j != NULL) {
        json_t *log = json_object_get(j, "log");
        json_object_set_new(log, "bytes",
                            json_integer((json_int_t)st->log.bytes));
        json_object_set_new(log, "oldest_kept_ms",
                            json_integer((json_int_t)st->log.oldest_ms));
        json_object_set_new(log, "compacted_sets",
                            json_integer((json_int_t)st->log.compacted));
        json_object_set_new(j, "offices", offices);
        if (st->seeding) /* only then: absent otherwise */
            json_object_set_new(j, "seeding",
                                json_pack("{s:s, s:s, s:I}", "collection",
                                          st->seed_coll, "id", st->seed_id,
                                          "records",
                                          (json_int_t)st->seed_records));
    } else {
        json_decref(offices);
    }
    return j;
}

const char *
bs_render_pin_name(int pin)
{
    return pin == BS_PIN_NAMED ? "named" : pin == BS_PIN_AUTO ? "auto" : "none";
}

json_t *
bs_render_peer(const bs_peer *p)
{
    return json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:I, s:I, s:b, s:s}", "name", p->name,
        "endpoint", p->endpoint, "id", id_json(p->pk), "schedule", p->schedule,
        "window", p->window, "last_success_ms", (json_int_t)p->last_ok_ms,
        "received_changes", (json_int_t)p->recv_changes, "pinned_hub",
        p->hub_pin != BS_PIN_NONE, "pin", bs_render_pin_name(p->hub_pin));
}

static json_t *
side_json(const bs_conflict_side *s)
{
    return json_pack("{s:o, s:I, s:o, s:b}", "origin", id_json(s->key), "hlc",
                     (json_int_t)s->hlc, "value",
                     s->deleted ? json_null() : bs_render_value(&s->val),
                     "deleted", s->deleted);
}

json_t *
bs_render_conflict(const bs_conflict *c)
{
    const bs_conflict_side *w = &c->side[c->winner];
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:[o,o], s:o, s:o, s:s, s:b, s:I}", "conflict",
        c->id, "collection", c->coll, "id", c->rid, "field", c->field,
        "candidates", side_json(&c->side[0]), side_json(&c->side[1]), "winner",
        id_json(w->key), "winner_value",
        w->deleted ? json_null() : bs_render_value(&w->val), "policy",
        bs_policy_name(c->policy), "resolved", c->resolved, "detected_ms",
        (json_int_t)c->detected_ms);

    if (j != NULL && c->resolution[0])
        json_object_set_new(j, "resolution", json_string(c->resolution));
    if (j != NULL) {
        json_object_set_new(j, "kind",
                            json_string(c->kind == BS_CONFLICT_DUPLICATE
                                            ? "duplicate"
                                            : "field"));
        if (c->kind == BS_CONFLICT_DUPLICATE)
            json_object_set_new(j, "ids", json_pack("[s,s]", c->rid, c->other));
    }
    return j;
}

json_t *
bs_render_exchange(const bs_xlog_entry *e)
{
    return json_pack(
        "{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "time_ms",
        (json_int_t)e->time_ms, "peer", e->peer, "via", e->via, "direction",
        e->direction, "sets_sent", (json_int_t)e->sets_sent, "sets_received",
        (json_int_t)e->sets_received, "changes", (json_int_t)e->changes,
        "conflicts", (json_int_t)e->conflicts, "bytes", (json_int_t)e->bytes,
        "duration_ms", (json_int_t)e->duration_ms, "result",
        e->error[0] ? e->error : "ok");
}

static json_t *
inspect_set(const bs_inspect_set *s)
{
    char inc[2 * BS_INC_LEN + 1], ib[2 * BS_INFOBASE_LEN + 1];

    if (!s->decoded)
        return json_pack("{s:s, s:s}", "status", "malformed", "error",
                         s->error);
    bs_hex(inc, s->inc, BS_INC_LEN);
    bs_hex(ib, s->infobase, BS_INFOBASE_LEN);
    return json_pack(
        "{s:o, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:I, s:I}",
        "origin", id_json(s->origin), "incarnation", inc, "infobase", ib,
        "first_seq", (json_int_t)s->first, "last_seq", (json_int_t)s->last,
        "changes", (json_int_t)s->changes, "omitted", (json_int_t)s->omitted,
        "bytes", (json_int_t)s->bytes, "signature",
        s->signature_ok ? "valid" : "INVALID", "summary",
        s->summary == 2   ? "form"
        : s->summary == 1 ? "with header"
                          : "none",
        "buckets", (json_int_t)s->buckets, "buckets_carried",
        (json_int_t)s->carried);
}

json_t *
bs_render_inspect(const char *path, const bs_inspect *in)
{
    json_t *sets = json_array();
    json_t *j = json_pack("{s:s, s:i, s:I}", "file", path, "format",
                          (int)in->format, "bytes", (json_int_t)in->bytes);

    if (j == NULL || sets == NULL) {
        json_decref(j);
        json_decref(sets);
        return NULL;
    }
    if (in->has_envelope)
        json_object_set_new(
            j, "envelope",
            json_pack(
                "{s:o, s:s, s:o, s:I, s:I, s:i}", "sender", id_json(in->sender),
                "sender_name", in->sender_name, "receiver",
                in->has_receiver ? id_json(in->receiver) : json_string(""),
                "message_no", (json_int_t)in->message_no, "created_ms",
                (json_int_t)in->created_ms, "acknowledged_streams",
                (int)in->acknowledged_streams));
    for (size_t i = 0; i < in->nsets; i++)
        json_array_append_new(sets, inspect_set(&in->sets[i]));
    json_object_set_new(j, "framing", json_string(in->framing));
    json_object_set_new(j, "checksum", json_string(in->checksum));
    json_object_set_new(j, "file_signature", json_string(in->file_signature));
    json_object_set_new(j, "change_sets", sets);
    if (in->snapshots) /* frame 4 (record snapshots), when there are any */
        json_object_set_new(j, "record_snapshots",
                            json_integer((json_int_t)in->snapshots));
    return j;
}

json_t *
bs_render_problems(const bs_problems *p)
{
    json_t *a = json_array();

    for (size_t i = 0; i < p->n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s}", "kind",
                                           p->v[i].kind, "subject",
                                           p->v[i].subject, "what",
                                           p->v[i].what, "todo", p->v[i].todo));
    return a;
}

json_t *
bs_render_drop(const char *path, const bs_drop_scan *s)
{
    return json_pack("{s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:s?}", "path", path,
                     "exists", s->exists, "writable", s->writable, "pending_in",
                     (json_int_t)s->pending_in, "pending_out",
                     (json_int_t)s->pending_out, "refused_here",
                     (json_int_t)s->refused_here, "refused_there",
                     (json_int_t)s->refused_there, "first_refusal",
                     s->first_refusal[0] ? s->first_refusal : NULL);
}

json_t *
bs_render_backup(const bs_config *cfg, const bs_backup_view *v, uint64_t now_ms)
{
    int failing = v->state.err_ms > v->state.ok_ms;
    json_t *j;

    if (!v->configured)
        return json_null();
    j = json_pack("{s:s, s:s, s:i, s:I, s:s?, s:I, s:I, s:s?, s:I}", "schedule",
                  cfg->backup_schedule, "dir", cfg->backup_dir, "keep",
                  (int)cfg->backup_keep, "count", (json_int_t)v->count, "last",
                  v->last[0] ? v->last : NULL, "last_ms",
                  (json_int_t)v->last_ms, "next_s", (json_int_t)v->next_s,
                  "last_error", failing ? v->state.error : NULL,
                  "last_error_ms", (json_int_t)(failing ? v->state.err_ms : 0));
    json_object_set_new(
        j, "age_s",
        v->last_ms ? json_integer((json_int_t)((now_ms - v->last_ms) / 1000))
                   : json_null());
    return j;
}

json_t *
bs_render_checks(const bs_checks *k)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < k->n; i++) {
        const bs_check *c = &k->v[i];
        json_t *j = json_pack("{s:s, s:s, s:b, s:s, s:s?}", "area", c->area,
                              "subject", c->subject, "ok", c->ok, "what",
                              c->what, "todo", c->ok ? NULL : c->todo);
        if (strcmp(c->area, "schedule") == 0)
            json_object_set_new(
                j, "next_s", c->next_s ? json_integer(c->next_s) : json_null());
        json_array_append_new(arr, j);
    }
    return arr;
}

void
bs_render_status_files(json_t *j, const bs_node *n, const bs_status *st,
                       uint64_t now_ms)
{
    bs_backup_view bv;
    json_t *p;
    size_t i;

    json_array_foreach(json_object_get(j, "peers"), i, p)
    {
        const char *dir = bs_endpoint_folder(st->peers[i].endpoint);
        bs_drop_scan ds;
        if (dir == NULL)
            continue;
        bs_drop_scan_folder(dir, st->meta.pk, st->peers[i].pk, &ds);
        json_object_set_new(p, "folder", bs_render_drop(dir, &ds));
    }
    bs_backups_view(n, now_ms, &bv);
    json_object_set_new(j, "backup", bs_render_backup(&n->cfg, &bv, now_ms));
}
