/*
 * status.c - building the status document.
 */
#include "status.h"

#include <jansson.h>
#include <string.h>

#include "changeset.h"
#include "conflict.h"
#include "peers.h"
#include "purge.h"
#include "record.h"
#include "streams.h"

/* Origin wall time of the set holding (stream, seq); 0 if unknown. */
static uint64_t
set_time(bs_txn *t, uint32_t stream, uint64_t seq)
{
    uint8_t key[12];
    bs_cursor *c;
    bs_slice k, v;
    uint64_t first, last, created = 0;
    bs_err rv;

    bs_put_u32be(key, stream);
    bs_put_u64be(key + 4, seq + 1);
    if (bs_cursor_open(t, BS_DB_LOG, &c) != BS_OK)
        return 0;
    rv = bs_cursor_seek(c, bs_mem(key, 12), &k, &v);
    rv = rv == BS_OK ? bs_cursor_prev(c, &k, &v) : bs_cursor_last(c, &k, &v);
    if (rv == BS_OK && k.n == 12 && bs_get_u32be(k.p) == stream &&
        bs_changeset_stored_info(v, &first, &last, &created) == BS_OK &&
        !(first <= seq && seq <= last))
        created = 0;
    bs_cursor_close(c);
    return created;
}

static json_t *
peer_json(bs_txn *t, const bs_peer *p, const bs_streamtab *tab,
          const bs_status_opts *o)
{
    char id[BS_NODE_ID_LEN + 1];
    uint64_t out = 0, in = 0, oldest = 0;

    bs_node_id_format(p->pk, id);
    for (size_t i = 0; i < tab->n; i++) {
        const bs_stream *s = &tab->v[i];
        uint64_t acked = bs_peer_acked(p, s->key);

        if (s->seq > acked) {
            uint64_t when = set_time(t, s->idx, acked + 1);
            out += s->seq - acked;
            if (when && (oldest == 0 || when < oldest))
                oldest = when;
        }
    }
    for (size_t i = 0; i < p->nacked; i++) {
        uint8_t key[BS_PK_LEN + BS_INC_LEN];
        bs_stream *s;

        memcpy(key, p->acked[i].origin, BS_PK_LEN);
        memcpy(key + BS_PK_LEN, p->acked[i].inc, BS_INC_LEN);
        s = bs_streams_find((bs_streamtab *)tab, p->acked[i].origin,
                            p->acked[i].inc);
        if (p->acked[i].seq > (s ? s->seq : 0))
            in += p->acked[i].seq - (s ? s->seq : 0);
    }
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:b}",
        "name", p->name, "endpoint", p->endpoint, "id", id, "schedule",
        p->schedule, "window", p->window, "last_success_ms",
        (json_int_t)p->last_ok_ms, "last_error_ms", (json_int_t)p->last_err_ms,
        "last_error", p->last_error, "pending_out", (json_int_t)out,
        "pending_in", (json_int_t)in, "oldest_unacked_age_s",
        (json_int_t)(oldest && o->now_ms > oldest ? (o->now_ms - oldest) / 1000
                                                  : 0),
        "received_changes", (json_int_t)p->recv_changes, "needs_full_resync",
        bs_peer_stale(p->last_ok_ms, p->created_ms, o->now_ms,
                      o->retention_ms));
}

static bs_err
collections_json(bs_txn *t, json_t *cols)
{
    bs_cursor *cur;
    bs_slice key, val;
    bs_arena a;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &cur)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    for (rv = bs_cursor_first(cur, &key, &val); rv == BS_OK;
         rv = bs_cursor_next(cur, &key, &val)) {
        char name[BS_COLLECTION_MAX + 1];
        size_t cn = strnlen((const char *)key.p, key.n);
        json_t *c;
        bs_record r;

        if (cn > BS_COLLECTION_MAX || key.p[0] == '_')
            continue;
        memcpy(name, key.p, cn);
        name[cn] = '\0';
        if ((c = json_object_get(cols, name)) == NULL) {
            c = json_pack("{s:I, s:I}", "records", (json_int_t)0, "deleted",
                          (json_int_t)0);
            json_object_set_new(cols, name, c);
        }
        bs_arena_reset(&a);
        if ((rv = bs_record_decode(&r, val.p, val.n, &a)) != BS_OK)
            break;
        const char *f = r.live ? "records" : "deleted";
        json_object_set_new(
            c, f, json_integer(json_integer_value(json_object_get(c, f)) + 1));
    }
    bs_cursor_close(cur);
    bs_arena_fini(&a);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_status_json(bs_txn *t, const bs_meta *m, const bs_status_opts *o,
               json_t **out)
{
    char id[BS_NODE_ID_LEN + 1], ib[2 * BS_INFOBASE_LEN + 1],
        inc[2 * BS_INC_LEN + 1];
    bs_streamtab tab;
    bs_peer *peers = NULL;
    size_t np = 0;
    uint64_t sets = 0, changes = 0, own = 0, open = 0, all = 0;
    json_t *j, *streams, *pj, *cols;
    bs_err rv;

    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    streams = json_array();
    for (size_t i = 0; i < tab.n; i++) {
        const bs_stream *s = &tab.v[i];
        changes += s->seq;
        if (s->idx == m->stream)
            own = s->seq;
        if (s->flags || s->note[0]) {
            bs_node_id_format(s->key, id);
            json_array_append_new(
                streams, json_pack("{s:s, s:I, s:b, s:s}", "origin", id, "seq",
                                   (json_int_t)s->seq, "quarantined",
                                   (s->flags & BS_STREAM_QUARANTINED) != 0,
                                   "note", s->note));
        }
    }
    pj = json_array();
    cols = json_object();
    if ((rv = bs_txn_count(t, BS_DB_LOG, &sets)) != BS_OK ||
        (rv = bs_conflict_count(t, &open, &all)) != BS_OK ||
        (rv = bs_peer_list(t, &peers, &np)) != BS_OK ||
        (o->count_records && (rv = collections_json(t, cols)) != BS_OK))
        goto fail;
    for (size_t i = 0; i < np; i++)
        json_array_append_new(pj, peer_json(t, &peers[i], &tab, o));
    bs_node_id_format(m->pk, id);
    bs_hex(inc, m->inc, BS_INC_LEN);
    if (m->joined)
        bs_hex(ib, m->infobase, BS_INFOBASE_LEN);
    j = json_pack("{s:s, s:s, s:s, s:o, s:s, s:{s:I, s:I, s:I}, s:{s:I, "
                  "s:I}, s:o, s:o, s:o}",
                  "name", m->name, "role", bs_role_name(m->role), "id", id,
                  "infobase", m->joined ? json_string(ib) : json_null(),
                  "incarnation", inc, "log", "change_sets", (json_int_t)sets,
                  "changes", (json_int_t)changes, "own_changes",
                  (json_int_t)own, "conflicts", "open", (json_int_t)open,
                  "total", (json_int_t)all, "peers", pj, "streams_attention",
                  streams, "collections", cols);
    bs_peer_list_free(peers, np);
    bs_streams_fini(&tab);
    *out = j;
    return j ? BS_OK : BS_ENOMEM;
fail:
    json_decref(pj);
    json_decref(cols);
    json_decref(streams);
    bs_peer_list_free(peers, np);
    bs_streams_fini(&tab);
    return rv;
}
