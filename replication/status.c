/*
 * status.c - gathering the node's state.
 */
#include "status.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "changeset.h"
#include "conflict.h"
#include "members.h"
#include "movein.h"
#include "purge.h"
#include "record.h"
#include "setlog.h"
#include "streams.h"

/* Origin wall time of the set holding (stream, seq); 0 if unknown. */
static uint64_t
set_time(bs_txn *t, uint32_t stream, uint64_t seq)
{
    uint64_t first, last, created;
    bs_slice v;

    if (bs_setlog_find(t, stream, seq, &v, &first) != BS_OK ||
        bs_changeset_stored_info(v, &first, &last, &created) != BS_OK ||
        !(first <= seq && seq <= last))
        return 0;
    return created;
}

/*
 * What peer_status needs per stream, shared by all peers of one status:
 * the peer's acknowledged seq of each stream (filled from its vector, so
 * the cost is the vector's length, not streams x vector), and the last
 * set time looked up for each stream (peers mostly stand at the same
 * positions: a hub with a thousand branches asked the log a million
 * times, status taking seconds).
 */
typedef struct peer_scratch {
    uint64_t *acked;              /* by stream index - 1 */
    uint64_t *memo_seq, *memo_ms; /* by stream index - 1; seq 0: none */
} peer_scratch;

static uint64_t
set_time_memo(bs_txn *t, peer_scratch *sc, const bs_stream *s, uint64_t seq)
{
    size_t i = s->idx - 1;

    if (sc->memo_seq[i] != seq) {
        sc->memo_seq[i] = seq;
        sc->memo_ms[i] = set_time(t, s->idx, seq);
    }
    return sc->memo_ms[i];
}

static void
peer_status(bs_txn *t, const bs_peer *p, bs_streamtab *tab,
            const bs_status_opts *o, bs_clock clock, peer_scratch *sc,
            bs_peer_status *ps)
{
    uint64_t oldest = 0;
    int64_t lo, hi;

    memset(ps, 0, sizeof *ps);
    snprintf(ps->name, sizeof ps->name, "%s", p->name);
    snprintf(ps->endpoint, sizeof ps->endpoint, "%s", p->endpoint);
    memcpy(ps->pk, p->pk, BS_PK_LEN);
    snprintf(ps->schedule, sizeof ps->schedule, "%s", p->schedule);
    snprintf(ps->window, sizeof ps->window, "%s", p->window);
    ps->last_ok_ms = p->last_ok_ms;
    ps->last_err_ms = p->last_err_ms;
    snprintf(ps->last_error, sizeof ps->last_error, "%s", p->last_error);
    ps->received_changes = p->recv_changes;
    ps->needs_full_resync =
        bs_peer_stale(p->last_ok_ms, p->created_ms, o->now_ms, o->retention_ms);
    if ((ps->clock_known = bs_clock_peer_now(p, clock, &lo, &hi))) {
        ps->clock_offset_ms = lo + (hi - lo) / 2;
        ps->clock_error_ms = (hi - lo + 1) / 2;
        ps->clock_at_ms = p->clock_at_ms;
    }
    ps->refused_sets = p->refused_sets;
    ps->held_there = p->held_there;
    snprintf(ps->refused_reason, sizeof ps->refused_reason, "%s",
             p->refused_reason);
    memset(sc->acked, 0, tab->n * sizeof *sc->acked);
    for (size_t i = p->nacked; i-- > 0;) { /* the first entry of a key wins */
        const bs_stream *s =
            bs_streams_find(tab, p->acked[i].origin, p->acked[i].inc);
        uint64_t have = s ? s->seq : 0;

        if (s != NULL)
            sc->acked[s->idx - 1] = p->acked[i].seq;
        if (p->acked[i].seq > have)
            ps->pending_in += p->acked[i].seq - have;
    }
    for (size_t i = 0; i < tab->n; i++) {
        const bs_stream *s = &tab->v[i];
        uint64_t acked = sc->acked[i];

        if (s->seq > acked) {
            uint64_t when = set_time_memo(t, sc, s, acked + 1);
            ps->pending_out += s->seq - acked;
            if (when && (oldest == 0 || when < oldest))
                oldest = when;
        }
    }
    if (oldest && o->now_ms > oldest)
        ps->oldest_unacked_age_s = (o->now_ms - oldest) / 1000;
}

static bs_coll_status *
coll_of(bs_status *st, const uint8_t *key, size_t cn)
{
    bs_coll_status *c;

    if (st->ncolls > 0) {
        c = &st->colls[st->ncolls - 1]; /* keys come in collection order */
        if (strlen(c->name) == cn && memcmp(c->name, key, cn) == 0)
            return c;
    }
    if ((c = realloc(st->colls, (st->ncolls + 1) * sizeof *c)) == NULL)
        return NULL;
    st->colls = c;
    c = &st->colls[st->ncolls++];
    memset(c, 0, sizeof *c);
    memcpy(c->name, key, cn);
    return c;
}

static bs_err
count_records(bs_txn *t, bs_status *st, bs_errbuf *err)
{
    bs_cursor *cur;
    bs_slice key, val;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &cur)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(cur, &key, &val); rv == BS_OK;
         rv = bs_cursor_next(cur, &key, &val)) {
        size_t cn = strnlen((const char *)key.p, key.n);
        bs_coll_status *c;
        int live;

        if (cn > BS_COLLECTION_MAX || cn == key.n ||
            !bs_utf8_valid((const char *)key.p, cn)) {
            rv = bs_errf(err, BS_ESTORE,
                         "store is corrupt: a record key does not name a "
                         "collection; restore from a backup");
            break;
        }
        if (key.p[0] == '_')
            continue;
        /* only the live flag: a status of a million records decoded each
         * (verify checks them whole) */
        if (bs_record_peek_live(val.p, val.n, &live) != BS_OK) {
            rv = bs_errf(err, BS_ESTORE,
                         "store is corrupt: a record of %.*s does not decode; "
                         "restore from a backup",
                         (int)cn, (const char *)key.p);
            break;
        }
        if ((c = coll_of(st, key.p, cn)) == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        if (live)
            c->records++;
        else
            c->deleted++;
    }
    bs_cursor_close(cur);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
streams_status(bs_status *st, const bs_streamtab *tab, const bs_meta *m)
{
    for (size_t i = 0; i < tab->n; i++) {
        const bs_stream *s = &tab->v[i];
        bs_stream_status *ss;

        st->changes += s->seq;
        if (s->idx == m->stream)
            st->own_changes = s->seq;
        if (!s->flags && !s->note[0])
            continue;
        ss = realloc(st->streams, (st->nstreams + 1) * sizeof *ss);
        if (ss == NULL)
            return BS_ENOMEM;
        st->streams = ss;
        ss = &st->streams[st->nstreams++];
        memset(ss, 0, sizeof *ss);
        memcpy(ss->origin, s->key, BS_PK_LEN);
        ss->seq = s->seq;
        ss->quarantined = (s->flags & BS_STREAM_QUARANTINED) != 0;
        snprintf(ss->note, sizeof ss->note, "%s", s->note);
    }
    return BS_OK;
}

/* What the newest set of stream s says its origin held of the hub's
 * stream (its signed `seen`), against what this node holds of it. */
static bs_err
hub_seen(bs_txn *t, const bs_meta *m, const bs_streamtab *tab,
         const bs_stream *s, bs_office_status *o)
{
    uint64_t first, last;
    bs_pos *seen = NULL;
    size_t n = 0;
    bs_slice set;
    bs_err rv;

    if (!m->joined || bs_setlog_find(t, s->idx, s->seq, &set, &first) != BS_OK)
        return BS_OK;
    if ((rv = bs_changeset_stored_seen(set, &seen, &n, &first, &last)) != BS_OK)
        return rv == BS_ENOMEM ? rv : BS_OK; /* a summary form: no vector */
    o->has_seen = 1;
    o->hub_seen = o->hub_held = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(seen[i].origin, m->hub, BS_PK_LEN) == 0)
            o->hub_seen += seen[i].seq;
    for (size_t i = 0; i < tab->n; i++)
        if (memcmp(tab->v[i].key, m->hub, BS_PK_LEN) == 0)
            o->hub_held += tab->v[i].seq;
    free(seen);
    return BS_OK;
}

/* Add office pk (a member when mem is not NULL) unless it is this node or
 * already listed; fill it from the peers, the streams and the refusals. */
static bs_err
add_office(bs_txn *t, const bs_meta *m, bs_streamtab *tab, bs_status *st,
           const uint8_t *pk, const bs_member *mem)
{
    bs_office_status *o;
    bs_err rv;

    if (memcmp(pk, m->pk, BS_PK_LEN) == 0)
        return BS_OK;
    for (size_t i = 0; i < st->noffices; i++)
        if (memcmp(st->offices[i].pk, pk, BS_PK_LEN) == 0)
            return BS_OK;
    o = &st->offices[st->noffices++];
    memset(o, 0, sizeof *o);
    memcpy(o->pk, pk, BS_PK_LEN);
    o->peer = -1;
    if (memcmp(pk, m->hub, BS_PK_LEN) == 0) { /* a member by definition */
        o->role = BS_ROLE_HUB;
        o->member = 1;
    } else {
        o->role = BS_ROLE_BRANCH;
    }
    if (mem != NULL) {
        snprintf(o->name, sizeof o->name, "%s", mem->name);
        o->member = 1;
        o->revoked = mem->revoked;
        if (mem->role == BS_ROLE_HUB)
            o->role = BS_ROLE_HUB;
        o->region_hub = mem->role == BS_MEMBER_REGION;
        snprintf(o->via, sizeof o->via, "%s", mem->region);
    }
    for (size_t i = 0; i < st->npeers; i++) {
        const bs_peer_status *p = &st->peers[i];

        if (memcmp(p->pk, pk, BS_PK_LEN) != 0)
            continue;
        o->peer = (int)i;
        if (o->name[0] == '\0')
            snprintf(o->name, sizeof o->name, "%s", p->name);
        o->last_ok_ms = p->last_ok_ms;
        o->pending_out = p->pending_out;
        o->pending_in = p->pending_in;
        o->oldest_unacked_age_s = p->oldest_unacked_age_s;
        break;
    }
    for (size_t i = 0; i < tab->n; i++) {
        const bs_stream *s = &tab->v[i];
        uint64_t when;

        if (memcmp(s->key, pk, BS_PK_LEN) != 0 || s->seq == 0)
            continue;
        o->changes += s->seq;
        if ((when = set_time(t, s->idx, s->seq)) > o->last_set_ms) {
            o->last_set_ms = when;
            /* (only for an office not paired here, whose lag is
             * unknown otherwise: it costs a header decode per office) */
            if (o->peer < 0 && (rv = hub_seen(t, m, tab, s, o)) != BS_OK)
                return rv;
        }
    }
    rv = bs_access_refused(t, pk, &o->refused_by_rule, o->refused_first,
                           sizeof o->refused_first);
    return rv != BS_OK ? rv
                       : bs_access_refused_last(t, pk, &o->refused_last_ms);
}

/* Every other office: the members, then peers that are not members. */
static bs_err
offices_status(bs_txn *t, const bs_meta *m, bs_streamtab *tab, bs_status *st)
{
    bs_member *mv = NULL;
    size_t nm = 0;
    bs_err rv;

    if ((rv = bs_members_list(t, &mv, &nm)) != BS_OK)
        return rv;
    if (nm + st->npeers > 0 &&
        (st->offices = calloc(nm + st->npeers, sizeof *st->offices)) == NULL)
        rv = BS_ENOMEM;
    for (size_t i = 0; i < nm && rv == BS_OK; i++)
        rv = add_office(t, m, tab, st, mv[i].pk, &mv[i]);
    for (size_t i = 0; i < st->npeers && rv == BS_OK; i++)
        rv = add_office(t, m, tab, st, st->peers[i].pk, NULL);
    free(mv);
    return rv;
}

/* A clock standing at *ctx (ms), for status without a clock. */
static uint64_t
fixed_now(void *ctx)
{
    return *(const uint64_t *)ctx;
}

/* A seed in progress ("sed:"). */
static bs_err
seed_status(bs_txn *t, bs_status *st)
{
    bs_seeding s;
    bs_err rv = bs_movein_seed_get(t, &s);

    if (rv == BS_ENOTFOUND)
        return BS_OK;
    if (rv == BS_OK) {
        st->seeding = 1;
        memcpy(st->seed_coll, s.coll, sizeof st->seed_coll);
        memcpy(st->seed_id, s.id, sizeof st->seed_id);
        st->seed_records = s.records;
    }
    bs_seeding_fini(&s);
    return rv;
}

bs_err
bs_status_read(bs_txn *t, const bs_meta *m, const bs_status_opts *o,
               bs_status *st, bs_errbuf *err)
{
    bs_clock clock = o->clock;
    peer_scratch sc = {NULL, NULL, NULL};
    bs_streamtab tab;
    bs_peer *peers = NULL;
    size_t np = 0;
    bs_err rv;

    if (clock.now_ms == NULL)
        clock = (bs_clock){fixed_now, (void *)&o->now_ms, NULL};
    memset(st, 0, sizeof *st);
    st->meta = *m;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    if ((rv = streams_status(st, &tab, m)) != BS_OK ||
        (rv = bs_setlog_count(t, &st->change_sets)) != BS_OK ||
        (rv = bs_compact_logsize(t, &st->log)) != BS_OK ||
        (rv = bs_conflict_count(t, &st->conflicts_open,
                                &st->conflicts_total)) != BS_OK ||
        (rv = bs_peer_list(t, &peers, &np)) != BS_OK ||
        (o->count_records && (rv = count_records(t, st, err)) != BS_OK))
        goto out;
    if (np > 0 && ((st->peers = calloc(np, sizeof *st->peers)) == NULL ||
                   (sc.acked = calloc(tab.n + 1, 8)) == NULL ||
                   (sc.memo_seq = calloc(tab.n + 1, 8)) == NULL ||
                   (sc.memo_ms = calloc(tab.n + 1, 8)) == NULL)) {
        rv = BS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < np; i++)
        peer_status(t, &peers[i], &tab, o, clock, &sc, &st->peers[i]);
    st->npeers = np;
    if ((rv = offices_status(t, m, &tab, st)) != BS_OK ||
        (rv = seed_status(t, st)) != BS_OK)
        goto out;
    bs_clock_judge(peers, np, clock, &st->clock);
    st->max_skew_ms = o->max_skew_ms;
    if (o->max_skew_ms > 0 && st->clock.ahead_ms > (int64_t)o->max_skew_ms)
        st->clock_action = o->clock_ahead + 1;
out:
    free(sc.acked);
    free(sc.memo_seq);
    free(sc.memo_ms);
    bs_peer_list_free(peers, np);
    bs_streams_fini(&tab);
    if (rv != BS_OK)
        bs_status_fini(st);
    return rv;
}

void
bs_status_fini(bs_status *st)
{
    free(st->peers);
    free(st->streams);
    free(st->offices);
    free(st->colls);
    memset(st, 0, sizeof *st);
}
