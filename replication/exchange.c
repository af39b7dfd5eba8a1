/*
 * exchange.c - envelopes, what a peer lacks, and acknowledgements.
 */
#include "exchange.h"

#include <string.h>

#include "local.h"

bs_err
bs_xchg_envelope(bs_txn *t, const bs_meta *m, const bs_peer *p,
                 uint64_t message_no, uint64_t now_ms, bs_envelope *e)
{
    bs_streamtab tab;
    bs_err rv;

    memset(e, 0, sizeof *e);
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    rv = bs_streams_vector(&tab, &e->ack, &e->nack);
    bs_streams_fini(&tab);
    if (rv != BS_OK)
        return rv;
    e->version = BS_WIRE_VERSION;
    if (m->joined) {
        memcpy(e->infobase, m->infobase, BS_INFOBASE_LEN);
        memcpy(e->hub, m->hub, BS_PK_LEN);
    }
    memcpy(e->sender, m->pk, BS_PK_LEN);
    if (p != NULL) {
        e->has_receiver = 1;
        memcpy(e->receiver, p->pk, BS_PK_LEN);
    }
    e->created_ms = now_ms;
    snprintf(e->sender_name, sizeof e->sender_name, "%s", m->name);
    e->sender_role = m->role;
    memcpy(e->sender_inc, m->inc, BS_INC_LEN);
    e->message_no = message_no;
    return BS_OK;
}

/* Emit the sets of stream s above seq `from`. */
static bs_err
collect_stream(bs_txn *t, const bs_stream *s, uint64_t from, bs_emit_fn emit,
               void *ctx, uint64_t *nsets)
{
    uint8_t key[12];
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    bs_put_u32be(key, s->idx);
    bs_put_u64be(key + 4, from + 1);
    if ((rv = bs_cursor_open(t, BS_DB_LOG, &c)) != BS_OK)
        return rv;
    /* Start at the set holding from + 1, which may begin before it. */
    rv = bs_cursor_seek(c, bs_mem(key, 12), &k, &v);
    if (rv == BS_OK &&
        !(bs_get_u64be(k.p + 4) == from + 1 && bs_get_u32be(k.p) == s->idx))
        rv = bs_cursor_prev(c, &k, &v);
    else if (rv == BS_ENOTFOUND)
        rv = bs_cursor_last(c, &k, &v);
    if (rv == BS_OK && bs_get_u32be(k.p) != s->idx)
        rv = bs_cursor_next(c, &k, &v);
    for (; rv == BS_OK && k.n == 12 && bs_get_u32be(k.p) == s->idx;
         rv = bs_cursor_next(c, &k, &v)) {
        uint64_t first = bs_get_u64be(k.p + 4), last;
        bs_slice hdr;

        if (first > s->seq)
            break; /* beyond the contiguous prefix: not ours to send */
        if (bs_changeset_stored_header(v, &hdr) != BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        /* The set's last seq is in its header; skip sets the peer has. */
        {
            bs_pos *seen;
            size_t n;
            uint64_t f2;
            if ((rv = bs_changeset_stored_seen(v, &seen, &n, &f2, &last)) !=
                BS_OK)
                break;
            free(seen);
        }
        if (last <= from)
            continue;
        if ((rv = emit(ctx, v)) != BS_OK)
            break;
        (*nsets)++;
    }
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_xchg_collect(bs_txn *t, const bs_meta *m, const bs_peer *p, bs_emit_fn emit,
                void *ctx, uint64_t *nsets)
{
    bs_streamtab tab;
    bs_err rv;

    *nsets = 0;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    /* Two passes: the hub's streams, then every other one. */
    for (int pass = 0; pass < 2 && rv == BS_OK; pass++) {
        for (size_t i = 0; i < tab.n && rv == BS_OK; i++) {
            const bs_stream *s = &tab.v[i];
            int is_hub = m->joined && memcmp(s->key, m->hub, BS_PK_LEN) == 0;
            uint64_t from = bs_peer_acked(p, s->key);

            if (is_hub != (pass == 0) || s->seq <= from ||
                (s->flags & BS_STREAM_QUARANTINED))
                continue;
            rv = collect_stream(t, s, from, emit, ctx, nsets);
        }
    }
    bs_streams_fini(&tab);
    return rv;
}

static const bs_pos *
find_pos(const bs_pos *v, size_t n, const bs_pos *want)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(v[i].origin, want->origin, BS_PK_LEN) == 0 &&
            memcmp(v[i].inc, want->inc, BS_INC_LEN) == 0)
            return &v[i];
    return NULL;
}

bs_err
bs_xchg_accept(bs_txn *t, const bs_meta *m, const bs_envelope *e, bs_accept *a,
               bs_errbuf *err)
{
    char id[BS_NODE_ID_LEN + 1];
    bs_err rv;

    memset(a, 0, sizeof *a);
    bs_node_id_format(e->sender, id);
    if (e->has_receiver && memcmp(e->receiver, m->pk, BS_PK_LEN) != 0)
        return bs_errf(err, BS_EINVAL,
                       "the exchange is addressed to another node");
    rv = bs_peer_find_pk(t, e->sender, &a->peer);
    if (rv == BS_ENOTFOUND)
        return bs_errf(err, BS_EFORGED,
                       "the exchange comes from %s (%s), which is not a "
                       "paired peer",
                       id, e->sender_name);
    if (rv != BS_OK)
        return rv;
    if (m->joined && (memcmp(e->infobase, m->infobase, BS_INFOBASE_LEN) ||
                      memcmp(e->hub, m->hub, BS_PK_LEN))) {
        rv = bs_errf(err, BS_EINFOBASE,
                     "the exchange belongs to another infobase");
        goto fail;
    }
    if (!m->joined) {
        if (memcmp(e->sender, e->hub, BS_PK_LEN) != 0) {
            rv = bs_errf(err, BS_EINFOBASE,
                         "this branch has not joined an infobase yet: the "
                         "first exchange must come from the hub");
            goto fail;
        }
        a->join = 1;
    }
    if (e->message_no <= a->peer.recv_no &&
        (!a->peer.has_inc ||
         memcmp(a->peer.peer_inc, e->sender_inc, BS_INC_LEN) == 0)) {
        a->replay = 1;
        return BS_OK;
    }
    /* The same incarnation of a peer never forgets what it acknowledged. */
    if (a->peer.has_inc &&
        memcmp(a->peer.peer_inc, e->sender_inc, BS_INC_LEN) == 0) {
        for (size_t i = 0; i < a->peer.nacked; i++) {
            const bs_pos *now = find_pos(e->ack, e->nack, &a->peer.acked[i]);
            if (now == NULL || now->seq < a->peer.acked[i].seq) {
                rv = bs_errf(err, BS_EINVAL,
                             "acknowledgement from %s went backwards (seq "
                             "%llu, had %llu): refused",
                             a->peer.name,
                             (unsigned long long)(now ? now->seq : 0),
                             (unsigned long long)a->peer.acked[i].seq);
                goto fail;
            }
        }
    }
    return BS_OK;
fail:
    bs_peer_fini(&a->peer);
    return rv;
}

bs_err
bs_xchg_join(bs_txn *t, bs_meta *m, const bs_envelope *e, const uint8_t *sk,
             bs_errbuf *err)
{
    bs_err rv;

    m->joined = 1;
    memcpy(m->infobase, e->infobase, BS_INFOBASE_LEN);
    memcpy(m->hub, e->hub, BS_PK_LEN);
    if ((rv = bs_meta_save(t, m)) != BS_OK)
        return rv;
    if (sk == NULL)
        return BS_OK;
    return bs_local_reseal(t, m, sk, err);
}

bs_err
bs_xchg_record(bs_txn *t, const bs_envelope *e, uint64_t changes,
               uint64_t now_ms)
{
    bs_peer p;
    bs_pos *ack;
    bs_err rv;

    if ((rv = bs_peer_find_pk(t, e->sender, &p)) != BS_OK)
        return rv;
    if ((ack = calloc(e->nack + 1, sizeof *ack)) == NULL) {
        bs_peer_fini(&p);
        return BS_ENOMEM;
    }
    memcpy(ack, e->ack, e->nack * sizeof *ack);
    free(p.acked);
    p.acked = ack;
    p.nacked = e->nack;
    if (e->message_no > p.recv_no)
        p.recv_no = e->message_no;
    p.has_inc = 1;
    memcpy(p.peer_inc, e->sender_inc, BS_INC_LEN);
    p.last_ok_ms = now_ms;
    p.recv_changes += changes;
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    return rv;
}
