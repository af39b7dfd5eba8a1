/*
 * exchange.c - envelopes, what a peer lacks, and acknowledgements.
 */
#include "exchange.h"

#include <pthread.h>

#include <string.h>

#include "local.h"
#include "members.h"
#include "purge.h"
#include "scope.h"
#include "setlog.h"
#include "compact.h"
#include "movein.h"
#include "prefetch.h"
#include "relay.h"
#include "reseed.h"

/*
 * A branch whose seed is incomplete ("sed:", movein.h) asks its hub to go
 * on (docs/design.md "Snapshot bootstrap", Resuming): features bit 1,
 * `seed` 1, and a want (C, "", after ID) of the last record it merged,
 * where the hub's seed resumes, within `room` wants.
 */
static bs_err
ask_seed(bs_txn *t, bs_envelope *e, size_t room)
{
    bs_seeding sd;
    bs_snapwant *w;
    bs_err rv = bs_movein_seed_get(t, &sd);

    if (rv == BS_ENOTFOUND)
        return BS_OK;
    if (rv != BS_OK)
        return rv;
    e->features |= BS_FEATURE_BOOTSTRAP;
    e->seed = 1;
    if (sd.coll[0] != '\0' && sd.id[0] != '\0') {
        if (e->nwants > 0 && e->nwants >= room)
            e->nwants--; /* within the limit: the last want waits */
        if ((w = realloc(e->wants, (e->nwants + 1) * sizeof *w)) == NULL) {
            bs_seeding_fini(&sd);
            return BS_ENOMEM;
        }
        e->wants = w;
        memset(&w[e->nwants], 0, sizeof *w);
        memcpy(w[e->nwants].coll, sd.coll, sizeof w->coll);
        memcpy(w[e->nwants].after, sd.id, sizeof w->after);
        e->nwants++;
    }
    bs_seeding_fini(&sd);
    return BS_OK;
}

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
    e->features =
        BS_FEATURE_SNAPSHOTS | BS_FEATURE_SUMMARIES | BS_FEATURE_COMPACT;
    if (!m->joined && m->role == BS_ROLE_BRANCH) /* it can be seeded */
        e->features |= BS_FEATURE_BOOTSTRAP;
    /* A branch asks its hub for the records it lacks (move-in), as many
     * as fit beside the vector within the envelope limit. */
    if (p != NULL && m->joined && memcmp(m->pk, m->hub, BS_PK_LEN) != 0 &&
        (memcmp(p->pk, m->hub, BS_PK_LEN) == 0 ||
         bs_members_is_region(t, m, p->pk))) { /* or its regional hub */
        size_t room =
            (BS_SEEN_MAX - (e->nack < BS_SEEN_MAX ? e->nack : BS_SEEN_MAX)) *
            80 / (BS_COLLECTION_MAX + BS_ID_MAX + 8);
        if (room > BS_SNAP_WANTS_MAX)
            room = BS_SNAP_WANTS_MAX;
        if ((rv = bs_movein_wants(t, room, &e->wants, &e->nwants)) != BS_OK ||
            (rv = ask_seed(t, e, room)) != BS_OK) {
            bs_envelope_fini(e);
            return rv;
        }
    }
    return BS_OK;
}

/* How far stream s may be sent: all of it for a member, up to the
 * revocation point for a revoked one, nothing for a stranger. */
static uint64_t
sendable(bs_txn *t, const bs_meta *m, const bs_stream *s)
{
    bs_member mem;

    if (!m->joined || memcmp(s->key, m->hub, BS_PK_LEN) == 0 ||
        memcmp(s->key, m->pk, BS_PK_LEN) == 0 ||
        bs_members_get(t, m, s->key, &mem) == BS_OK)
        return s->seq;
    for (uint64_t lo = 0, hi = s->seq;;) { /* the last allowed seq */
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if (lo == hi)
            return lo;
        if (bs_member_allows(&mem, s->key + BS_PK_LEN, mid))
            lo = mid;
        else
            hi = mid - 1;
    }
}

/*
 * A stored set about to leave this node must still be what its origin
 * signed: LMDB checksums nothing, and a damaged set sent on would be
 * refused by the peer, its stream blocked there behind it.  A set whose
 * header does not read (bs_setlog_next), whose signature does not verify
 * or whose changes do not match their hashes is corruption of this store
 * (BS_ESTORE).  The check reads the bytes in place: about 0.35 s per
 * million changes of 100 bytes.
 */
static bs_err
check_outgoing(const bs_stream *s, uint64_t from, bs_err rv, bs_slice set,
               bs_errbuf *err)
{
    uint64_t last;

    if (rv == BS_OK)
        rv = bs_changeset_stored_check(set, s->key, &last);
    if (rv == BS_OK || rv == BS_ENOTFOUND || rv == BS_ENOMEM)
        return rv;
    return bs_errf(err, BS_ESTORE,
                   "store is corrupt: the stored change set of stream %u "
                   "after seq %llu is damaged; restore from a backup",
                   s->idx, (unsigned long long)from);
}

/*
 * ---- checking what leaves, on a second thread (a file's export) ----
 *
 * check_outgoing's hashes are a quarter of a scoped export.  The export
 * hands each set it wrote to this thread instead, in order, and waits
 * for it before it returns: a damaged set still fails the export (the
 * file is written under a temporary name and never renamed, bundle.c),
 * with the same message, and nothing else changes.  At most CHECK_SETS
 * sets and about CHECK_BYTES of their bytes wait.
 */
#define CHECK_SETS  64
#define CHECK_BYTES (16u << 20)
/* The thread starts once this much has left: a small export (a hub's
 * file for one of a thousand branches) checks its few sets itself, a
 * hand-off per set costing more than their hashes. */
#define CHECK_START_BYTES (1u << 20)

typedef struct check_item {
    const bs_stream *s;
    uint64_t from;
    bs_slice set;
    uint8_t *owned; /* freed once checked (a filtered set), or NULL */
} check_item;

typedef struct checker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    check_item q[CHECK_SETS];
    size_t head, tail, bytes; /* q[head % N .. tail % N) wait */
    int done;                 /* no more will come */
    bs_err rv;                /* the first failure, in order */
    bs_errbuf err;
} checker;

static void *
check_thread(void *arg)
{
    checker *c = arg;

    pthread_mutex_lock(&c->mu);
    for (;;) {
        check_item it;
        bs_errbuf e = {{0}};
        bs_err rv;

        while (c->head == c->tail && !c->done)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->head == c->tail)
            break;
        it = c->q[c->head % CHECK_SETS];
        pthread_mutex_unlock(&c->mu);
        rv = c->rv == BS_OK ? check_outgoing(it.s, it.from, BS_OK, it.set, &e)
                            : BS_OK;
        free(it.owned);
        pthread_mutex_lock(&c->mu);
        if (rv != BS_OK && c->rv == BS_OK) {
            c->rv = rv;
            c->err = e;
        }
        c->bytes -= it.set.n;
        c->head++;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* 0 when the thread did not start (then check here, as before). */
static int
checker_start(checker *c)
{
    memset(c, 0, sizeof *c);
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        return 0;
    if (pthread_cond_init(&c->cv, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        return 0;
    }
    if (pthread_create(&c->th, NULL, check_thread, c) != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        return 0;
    }
    return 1;
}

/* Queue set (of stream s after from; owned: freed once checked). */
static void
checker_put(checker *c, const bs_stream *s, uint64_t from, bs_slice set,
            uint8_t *owned)
{
    pthread_mutex_lock(&c->mu);
    while (c->tail - c->head == CHECK_SETS ||
           (c->tail > c->head && c->bytes + set.n > CHECK_BYTES))
        pthread_cond_wait(&c->cv, &c->mu);
    c->q[c->tail % CHECK_SETS] = (check_item){s, from, set, owned};
    c->bytes += set.n;
    c->tail++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Wait for every set queued: rv, or the first check that failed. */
static bs_err
checker_finish(checker *c, bs_err rv, bs_errbuf *err)
{
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->th, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    if (c->rv != BS_OK && (rv == BS_OK || !bs_err_local(rv))) {
        if (err != NULL)
            *err = c->err;
        return c->rv;
    }
    return rv;
}

/*
 * The stored set (as bs_setlog_next returned it, with rv) as it leaves for
 * the peer: filtered to what the peer is entitled to (8.5) when `filter`,
 * then checked (check_outgoing), unless chk will check it (the caller
 * queues it, checker_put, once it has written it).  Only what leaves is
 * checked, so a scoped export does not hash the changes it leaves out; a set
 * that does not filter is corruption too.  *f (malloc'd, or NULL: the set as
 * stored) and *vd are set on BS_OK.
 */
static bs_err
outgoing(bs_scope_peer *sp, int filter, bs_txn *t, const bs_stream *s,
         uint64_t from, bs_err rv, bs_slice set, bs_scope_verdict *vd,
         uint8_t **f, size_t *fn, checker *chk, bs_errbuf *err)
{
    *vd = BS_SCOPE_WHOLE;
    *f = NULL;
    *fn = 0;
    if (rv != BS_OK)
        return check_outgoing(s, from, rv, set, err);
    if (filter &&
        (rv = bs_scope_filter(sp, t, s->idx, set, vd, f, fn)) != BS_OK)
        return check_outgoing(s, from, rv == BS_ENOMEM ? rv : BS_ESTORE, set,
                              err);
    if (*vd == BS_SCOPE_STOP)
        return BS_OK;
    if (chk != NULL) /* the caller queues it once it is written */
        return BS_OK;
    rv = check_outgoing(s, from, BS_OK, *f != NULL ? (bs_slice){*f, *fn} : set,
                        err);
    if (rv != BS_OK) {
        free(*f);
        *f = NULL;
    }
    return rv;
}

/* 1 when stream s goes in pass `pass`: the hub's streams first. */
static int
in_pass(const bs_meta *m, const bs_stream *s, int pass)
{
    int is_hub = m->joined && memcmp(s->key, m->hub, BS_PK_LEN) == 0;

    return is_hub == (pass == 0) && !(s->flags & BS_STREAM_QUARANTINED);
}

/* The features peer pk's last envelope announced (0: none heard yet). */
static bs_err
peer_features(bs_txn *t, const uint8_t *pk, uint32_t *features)
{
    bs_snapwant *w;
    size_t n;
    bs_err rv = bs_movein_peer(t, pk, features, &w, &n);

    if (rv == BS_OK)
        free(w);
    return rv;
}

/* A peer holding `from` of stream s lacks sets this node compacted
 * (compact.h): BS_ESTALE naming the re-seed, never a silent gap. */
static bs_err
check_compacted(bs_txn *t, const bs_stream *s, uint64_t from, const char *peer,
                bs_errbuf *err)
{
    uint64_t floor;
    bs_err rv = bs_compact_floor(t, s->idx, &floor);

    if (rv != BS_OK || from >= floor)
        return rv;
    return bs_errf(err, BS_ESTALE,
                   "%s lacks change sets this node compacted (it holds seq "
                   "%llu of a stream compacted to %llu), so they cannot be "
                   "sent: seed it with `branchsync peer seed NAME` at the hub "
                   "(README.md, \"Back after the retention limit\")",
                   peer, (unsigned long long)from, (unsigned long long)floor);
}

bs_err
bs_xchg_collect(bs_txn *t, const bs_meta *m, const bs_peer *p, bs_emit_fn emit,
                void *ctx, uint64_t *nsets, bs_errbuf *err)
{
    uint32_t features;
    bs_vv_index acked;
    bs_scope_peer sp;
    bs_streamtab tab;
    checker chk;
    int checking = 0;
    size_t sent = 0; /* bytes that left, until the checker starts */
    bs_err rv;

    *nsets = 0;
    if (!m->joined)
        return BS_OK; /* nothing is ours to send before joining */
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    if ((rv = bs_scope_peer_init(&sp, t, m, p->pk, p->acked, p->nacked,
                                 &tab)) != BS_OK ||
        (rv = peer_features(t, p->pk, &features)) != BS_OK) {
        bs_scope_peer_fini(&sp);
        bs_streams_fini(&tab);
        return rv;
    }
    sp.summaries = (features & BS_FEATURE_SUMMARIES) != 0;
    if ((rv = bs_vv_index_init(&acked, p->acked, p->nacked)) != BS_OK) {
        bs_vv_index_fini(&acked);
        bs_scope_peer_fini(&sp);
        bs_streams_fini(&tab);
        return rv;
    }
    for (int pass = 0; pass < 2 && rv == BS_OK; pass++) {
        for (size_t i = 0; i < tab.n && rv == BS_OK; i++) {
            const bs_stream *s = &tab.v[i];
            uint64_t from = bs_vv_index_get(&acked, s->key), last;
            uint64_t upto;
            bs_slice set = {NULL, 0};

            if (!in_pass(m, s, pass))
                continue;
            upto = sendable(t, m, s);
            if ((rv = check_compacted(t, s, from, p->name, err)) != BS_OK)
                break;
            for (;;) {
                bs_scope_verdict vd;
                uint8_t *f;
                size_t fn;

                rv = bs_setlog_next(t, s->idx, from, upto, &set, &last);
                if ((rv = outgoing(&sp, 1, t, s, from, rv, set, &vd, &f, &fn,
                                   checking ? &chk : NULL, err)) != BS_OK)
                    break;
                if (vd == BS_SCOPE_STOP) {
                    rv = BS_ENOTFOUND;
                    break;
                }
                if (f != NULL)
                    set = (bs_slice){f, fn};
                rv = emit(ctx, set);
                sent += set.n;
                if (checking) /* it frees f once checked */
                    checker_put(&chk, s, from, set, f);
                else
                    free(f);
                if (!checking && sent >= CHECK_START_BYTES)
                    checking = checker_start(&chk);
                /* the peer will judge what follows by this hub set's
                 * rules too */
                if (rv == BS_OK && pass == 0)
                    rv = bs_scope_peer_saw(&sp, s->key + BS_PK_LEN, last);
                if (rv != BS_OK)
                    break;
                (*nsets)++;
                from = last;
            }
            if (rv == BS_ENOTFOUND)
                rv = BS_OK;
        }
    }
    if (checking) /* before the stream table the queued sets name goes */
        rv = checker_finish(&chk, rv, err);
    bs_vv_index_fini(&acked);
    bs_scope_peer_fini(&sp);
    bs_streams_fini(&tab);
    return rv;
}

/* ---- seeding (docs/design.md "Snapshot bootstrap") ---- */

typedef struct seed_keep {
    size_t kept;
} seed_keep;

/* A seeding set keeps only its changes of system collections. */
static int
keep_system(void *ctx, const bs_route_ref *r)
{
    seed_keep *k = ctx;
    int keep = r->coll.n > 0 && r->coll.p[0] == '_';

    k->kept += keep;
    return keep;
}

/*
 * Stored set `set` of stream s (as bs_setlog_next returned it, with rv),
 * ending at `last`, as it leaves in a seed: with its user-collection
 * changes left out, sent only when it keeps a system change or is the
 * stream's anchor (it ends at the bound `upto`); a set without routes goes
 * whole.  *f (malloc'd, or NULL: as stored) and *send are set on BS_OK.
 */
static bs_err
seed_outgoing(const bs_stream *s, uint64_t from, bs_err rv, bs_slice set,
              uint64_t last, uint64_t upto, uint8_t **f, size_t *fn, int *send,
              bs_errbuf *err)
{
    bs_filter_verdict fv = BS_FILTER_WHOLE;
    seed_keep k = {0};

    *f = NULL;
    *fn = 0;
    *send = 0;
    if (rv != BS_OK)
        return check_outgoing(s, from, rv, set, err);
    /* (per change, not by bucket: a seed's omissions are judged change
     * by change, A7s) */
    if ((rv = bs_changeset_stored_filter(set, keep_system, &k, 0, &fv, f,
                                         fn)) != BS_OK)
        return check_outgoing(s, from, rv == BS_ENOMEM ? rv : BS_ESTORE, set,
                              err);
    if (fv == BS_FILTER_STOP)
        fv = BS_FILTER_WHOLE; /* no routes: it goes whole */
    *send = fv == BS_FILTER_WHOLE || k.kept > 0 || last >= upto;
    if (*send)
        rv = check_outgoing(s, from, BS_OK,
                            *f != NULL ? (bs_slice){*f, *fn} : set, err);
    if (rv != BS_OK || !*send) {
        free(*f);
        *f = NULL;
    }
    return rv;
}

bs_err
bs_xchg_collect_seed(bs_txn *t, const bs_meta *m, const bs_peer *p,
                     bs_emit_fn emit, void *ctx, uint64_t *nsets,
                     bs_errbuf *err)
{
    bs_streamtab tab;
    bs_err rv;

    *nsets = 0;
    if (!m->joined || memcmp(m->pk, m->hub, BS_PK_LEN) != 0)
        return BS_OK; /* only the hub seeds */
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    for (int pass = 0; pass < 2 && rv == BS_OK; pass++) {
        for (size_t i = 0; i < tab.n && rv == BS_OK; i++) {
            const bs_stream *s = &tab.v[i];
            uint64_t from = bs_vv_get(p->acked, p->nacked, s->key), last;
            uint64_t upto;
            bs_slice set = {NULL, 0};

            if (!in_pass(m, s, pass))
                continue;
            upto = sendable(t, m, s);
            for (;;) {
                uint8_t *f;
                size_t fn;
                int send;

                rv = bs_setlog_next(t, s->idx, from, upto, &set, &last);
                if ((rv = seed_outgoing(s, from, rv, set, last, upto, &f, &fn,
                                        &send, err)) != BS_OK)
                    break;
                if (send) {
                    rv = emit(ctx, f != NULL ? (bs_slice){f, fn} : set);
                    free(f);
                    if (rv != BS_OK)
                        break;
                    (*nsets)++;
                }
                from = last;
            }
            if (rv == BS_ENOTFOUND)
                rv = BS_OK;
        }
    }
    bs_streams_fini(&tab);
    return rv;
}

void
bs_xcursor_init(bs_xcursor *c, const bs_pos *theirs, size_t n)
{
    memset(c, 0, sizeof *c);
    c->theirs = theirs;
    c->ntheirs = n;
}

void
bs_xcursor_fini(bs_xcursor *c)
{
    bs_vv_index_fini(&c->ix);
    c->indexed = 0;
    bs_streams_fini(&c->tab);
    c->tab_ok = 0;
}

void
bs_xcursor_seed(bs_xcursor *c)
{
    c->seed = 1;
}

void
bs_xcursor_seed_upto(bs_xcursor *c, const bs_pos *point, size_t n)
{
    c->seed = 1;
    c->upto = point;
    c->nupto = n;
}

void
bs_xcursor_peer(bs_xcursor *c, const uint8_t *pk, uint32_t features)
{
    memcpy(c->peer, pk, BS_PK_LEN);
    c->has_peer = 1;
    c->features = features;
}

bs_err
bs_xchg_next(bs_store *st, bs_xcursor *c, uint8_t **out, size_t *n,
             bs_errbuf *err)
{
    bs_scope_peer sp;
    bs_scope_verdict vd;
    uint8_t *f = NULL;
    size_t fn = 0;
    bs_streamtab *tab = &c->tab;
    bs_meta m;
    bs_txn *t;
    bs_err rv;

    memset(&sp, 0, sizeof sp); /* (fini is a no-op unless it was set up) */
    if (c->done)
        return BS_ENOTFOUND;
    /* A short read transaction per set: never held across network I/O. */
    if ((rv = bs_store_read(st, &t, err)) != BS_OK)
        return rv;
    /* the stream table: read once per cursor; then the streams added
     * since and the current stream's entry (the others are read again
     * when the cursor reaches them) */
    if ((rv = bs_meta_load(t, &m, err)) == BS_OK)
        rv = c->tab_ok ? bs_streams_refresh(t, tab, (uint32_t)c->stream + 1)
                       : bs_streams_load(t, tab);
    if (rv != BS_OK) {
        bs_txn_abort(t);
        return rv;
    }
    c->tab_ok = 1;
    if (!m.joined)
        c->pass = 2; /* nothing is ours to send before joining */
    if (c->pass < 2 && c->has_peer &&
        ((rv = bs_scope_peer_init(&sp, t, &m, c->peer, c->theirs, c->ntheirs,
                                  tab)) != BS_OK ||
         (c->hub_sent &&
          (rv = bs_scope_peer_saw(&sp, c->hub_inc, c->hub_seq)) != BS_OK))) {
        bs_scope_peer_fini(&sp);
        bs_txn_abort(t);
        return rv;
    }
    sp.summaries = (c->features & BS_FEATURE_SUMMARIES) != 0;
    if (!c->indexed) {
        if ((rv = bs_vv_index_init(&c->ix, c->theirs, c->ntheirs)) != BS_OK) {
            bs_vv_index_fini(&c->ix);
            bs_scope_peer_fini(&sp);
            bs_txn_abort(t);
            return rv;
        }
        c->indexed = 1;
    }
    for (rv = BS_ENOTFOUND; c->pass < 2; c->pass++, c->stream = 0) {
        for (; c->stream < tab->n; c->stream++, c->from = 0, c->started = 0) {
            const bs_stream *s;
            uint64_t last;
            bs_slice set = {NULL, 0};

            /* a stream reached: its entry as it is now */
            if (!c->started) {
                bs_err rr = bs_streams_refresh(t, tab, (uint32_t)c->stream + 1);
                if (rr != BS_OK) {
                    rv = rr;
                    goto out;
                }
            }
            s = &tab->v[c->stream];
            if (!in_pass(&m, s, c->pass))
                continue;
            if (!c->started) {
                c->from = bs_vv_index_get(&c->ix, s->key);
                c->started = 1;
            }
            if (c->seed) { /* what bs_xchg_collect_seed sends */
                uint64_t upto = sendable(t, &m, s);
                int send = 0;

                if (c->upto != NULL) { /* a regional hub's seed point */
                    uint64_t u = bs_vv_get(c->upto, c->nupto, s->key);
                    upto = u < upto ? u : upto;
                }
                for (;;) {
                    rv = bs_setlog_next(t, s->idx, c->from, upto, &set, &last);
                    if ((rv = seed_outgoing(s, c->from, rv, set, last, upto, &f,
                                            &fn, &send, err)) != BS_OK ||
                        send)
                        break;
                    c->from = last;
                }
                if (rv == BS_ENOTFOUND)
                    continue;
                if (rv != BS_OK)
                    goto out;
                if (f != NULL) {
                    *out = f;
                    *n = fn;
                } else if ((*out = malloc(set.n)) == NULL) {
                    rv = BS_ENOMEM;
                    goto out;
                } else {
                    memcpy(*out, set.p, set.n);
                    *n = set.n;
                }
                c->from = last;
                goto sent;
            }
            if ((rv = check_compacted(t, s, c->from, "the peer", err)) != BS_OK)
                goto out;
            rv = bs_setlog_next(t, s->idx, c->from, sendable(t, &m, s), &set,
                                &last);
            rv = outgoing(&sp, c->has_peer, t, s, c->from, rv, set, &vd, &f,
                          &fn, NULL, err);
            if (rv == BS_ENOTFOUND)
                continue;
            if (rv == BS_OK) {
                if (vd == BS_SCOPE_STOP) {
                    rv = BS_ENOTFOUND;
                    continue; /* the stream stops here for this peer */
                }
                if (f != NULL) {
                    *out = f;
                    *n = fn;
                    c->from = last;
                    goto sent;
                }
            }
            if (rv == BS_OK) {
                if ((*out = malloc(set.n)) == NULL) {
                    rv = BS_ENOMEM;
                } else {
                    memcpy(*out, set.p, set.n);
                    *n = set.n;
                    c->from = last;
                    goto sent;
                }
            }
            goto out;
        }
    }
    c->done = 1;
    goto out;
sent:
    if (c->pass == 0) { /* the peer judges what follows by its rules too */
        memcpy(c->hub_inc, tab->v[c->stream].key + BS_PK_LEN, BS_INC_LEN);
        c->hub_seq = c->from;
        c->hub_sent = 1;
    }
out:
    bs_scope_peer_fini(&sp);
    bs_txn_abort(t);
    return rv;
}

static const bs_pos *
find_pos(const bs_pos *v, size_t n, const bs_pos *want)
{
    uint8_t key[BS_STREAM_KEY_LEN];

    bs_vv_key(want, key);
    return bs_vv_find(v, n, key);
}

/* *back = 1 when the stream of p was released by the hub here
 * (quarantine.h): a peer's position in it may have gone back. */
static bs_err
went_back(bs_txn *t, const bs_pos *p, int *back)
{
    bs_streamtab tab;
    const bs_stream *s;
    bs_err rv;

    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    s = bs_streams_find(&tab, p->origin, p->inc);
    *back = s != NULL && (s->flags & BS_STREAM_RELEASED);
    bs_streams_fini(&tab);
    return BS_OK;
}

#define DAY_MS  86400000ull
#define HOUR_MS 3600000ull

/* "90 days", "5 hours", "40 s": a span for a message. */
static void
span(char *buf, size_t n, uint64_t ms)
{
    if (ms >= DAY_MS)
        snprintf(buf, n, "%llu day%s", (unsigned long long)(ms / DAY_MS),
                 ms / DAY_MS == 1 ? "" : "s");
    else if (ms >= HOUR_MS)
        snprintf(buf, n, "%llu hour%s", (unsigned long long)(ms / HOUR_MS),
                 ms / HOUR_MS == 1 ? "" : "s");
    else
        snprintf(buf, n, "%llu s", (unsigned long long)(ms / 1000));
}

/* Whether a re-seed lifts X7 for p: at the hub, its admin asked for p's
 * seed (`peer seed`, or p's last envelope asked); at a branch, a re-seed
 * of this node is under way (reseed.h). */
static bs_err
reseeding(bs_txn *t, const bs_meta *m, const bs_peer *p, int *on)
{
    bs_snapwant from;
    bs_err rv;

    *on = 0;
    if (m->role != BS_ROLE_HUB && !bs_members_is_region(t, m, m->pk))
        return bs_reseed_pending(t, on);
    rv = bs_movein_peer_seed(t, p->pk, &from);
    *on = rv == BS_OK;
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
stale_error(bs_txn *t, const bs_meta *m, const bs_peer *p, uint64_t now_ms,
            uint64_t retention_ms, bs_errbuf *err)
{
    uint64_t since = p->last_ok_ms ? p->last_ok_ms : p->created_ms;
    char silent[32], limit[32], what[256];

    span(silent, sizeof silent, now_ms - since);
    span(limit, sizeof limit, retention_ms);
    /* Say who needs the resync and how: the hub seeds it again, or the
     * regional hub its branch (protocol.md 8.9). */
    if (m->role == BS_ROLE_HUB || bs_members_is_region(t, m, m->pk))
        snprintf(what, sizeof what,
                 "it needs a full resync: seed it again with `branchsync "
                 "peer seed %s` here",
                 p->name);
    else if (m->joined && memcmp(p->pk, m->hub, BS_PK_LEN) == 0)
        snprintf(what, sizeof what,
                 "this node needs a full resync: its hub's administrator "
                 "seeds it again with `branchsync peer seed %s` there",
                 m->name);
    else if (m->joined && p->hub_pin == BS_PIN_NAMED &&
             bs_members_is_region(t, m, p->pk))
        snprintf(what, sizeof what,
                 "this node needs a full resync: its regional hub's "
                 "administrator seeds it again with `branchsync peer seed "
                 "%s` there",
                 m->name);
    else
        snprintf(what, sizeof what,
                 "the one of the two that was offline needs a full resync "
                 "from the hub (`branchsync peer seed` there)");
    return bs_errf(err, BS_ESTALE,
                   "peer %s: no exchange %s %s%s, longer than the retention "
                   "limit (%s), so exchanges with it are refused; %s "
                   "(README.md, \"Back after the retention limit\")",
                   p->name, p->last_ok_ms ? "for" : "in the", silent,
                   p->last_ok_ms ? "" : " since it was paired", limit, what);
}

bs_err
bs_xchg_check_stale(bs_txn *t, const bs_meta *m, const bs_peer *p,
                    uint64_t now_ms, uint64_t retention_ms, bs_errbuf *err)
{
    int on = 0;
    bs_err rv;

    if (retention_ms == 0 ||
        !bs_peer_stale(p->last_ok_ms, p->created_ms, now_ms, retention_ms))
        return BS_OK;
    if ((rv = reseeding(t, m, p, &on)) != BS_OK || on)
        return rv;
    return stale_error(t, m, p, now_ms, retention_ms, err);
}

/*
 * Whether envelope e's sender may seed this branch m: the infobase's hub,
 * or (protocol.md 8.9) its regional hub — the peer it pinned with --hub,
 * which is not the hub and names this node's infobase and hub.
 */
static int
seeder(const bs_meta *m, const bs_envelope *e, const bs_peer *p)
{
    if (memcmp(e->sender, m->hub, BS_PK_LEN) == 0)
        return memcmp(e->sender, e->hub, BS_PK_LEN) == 0;
    return p != NULL && p->hub_pin == BS_PIN_NAMED &&
           memcmp(p->pk, e->sender, BS_PK_LEN) == 0 &&
           memcmp(e->hub, m->hub, BS_PK_LEN) == 0;
}

/* Whether e is a regional hub's seed of this branch (protocol.md 8.9): its
 * `ack` is the seed point, which may lie below what it acknowledged
 * before (no later than the hub's answers it kept), so X6 does not hold
 * it. */
static int
region_seeds(const bs_meta *m, const bs_envelope *e, const bs_accept *a)
{
    return m->joined && m->role != BS_ROLE_HUB && e->seed &&
           (e->features & BS_FEATURE_BOOTSTRAP) &&
           memcmp(e->sender, m->hub, BS_PK_LEN) != 0 && seeder(m, e, &a->peer);
}

/*
 * A joined branch that its hub seeds is seeded *again* (reseed.h: its data
 * replaced, its unsent sets stashed), stale or not: the hub may judge it
 * stale and have purged what it still holds although the branch heard
 * from the hub lately.  Not while a first seed resumes (seeding without a
 * re-seed under way): that one merges, as it began.
 */
static bs_err
seed_again(bs_txn *t, const bs_meta *m, const bs_envelope *e, bs_accept *a)
{
    bs_seeding sd;
    bs_err rv;

    if (a->reseed || m->role == BS_ROLE_HUB || !m->joined || !e->seed ||
        !(e->features & BS_FEATURE_BOOTSTRAP) || !seeder(m, e, &a->peer))
        return BS_OK;
    if ((rv = bs_movein_seed_get(t, &sd)) == BS_OK) {
        bs_seeding_fini(&sd);
        return bs_reseed_pending(t, &a->reseed);
    }
    a->reseed = rv == BS_ENOTFOUND;
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/*
 * X7r (docs/protocol.md 8.3): an envelope from a peer silent past the
 * retention limit is taken only for a re-seed.  At a branch: it comes
 * from our hub, announces bootstrap and seeds us (a->reseed: the caller
 * begins the re-seed, reseed.h, before anything of the exchange applies
 * or is sent).  At the hub: the admin asked for the peer's seed and the
 * peer announces bootstrap (a->reseed_peer; the peer's own stale sets
 * never come: it stashes them when our seed reaches it, and a file
 * written before that is refused by bs_xchg_verify).
 */
static bs_err
check_stale_envelope(bs_txn *t, const bs_meta *m, const bs_envelope *e,
                     bs_accept *a, uint64_t now_ms, uint64_t retention_ms,
                     bs_errbuf *err)
{
    int boot = (e->features & BS_FEATURE_BOOTSTRAP) != 0, on = 0;
    bs_err rv;

    if (retention_ms == 0 ||
        !bs_peer_stale(a->peer.last_ok_ms, a->peer.created_ms, now_ms,
                       retention_ms))
        return BS_OK;
    if (m->role != BS_ROLE_HUB && m->joined && boot && e->seed &&
        seeder(m, e, &a->peer)) {
        a->reseed = 1;
        return BS_OK;
    }
    /* the peer can take our seed (and stashes its stale sets when it
     * arrives), or it took it already: a new incarnation (the hub, or a
     * regional hub seeding its branch, 8.9) */
    if ((m->role == BS_ROLE_HUB || bs_members_is_region(t, m, m->pk)) &&
        (boot || !a->peer.has_inc ||
         memcmp(a->peer.peer_inc, e->sender_inc, BS_INC_LEN) != 0) &&
        (rv = reseeding(t, m, &a->peer, &on)) != BS_OK)
        return rv;
    if (on) {
        a->reseed_peer = 1;
        return BS_OK;
    }
    return stale_error(t, m, &a->peer, now_ms, retention_ms, err);
}

/*
 * X4 (docs/protocol.md 8.3): a branch that has not joined joins only the
 * peer pinned as its hub (peers.h, pairing.h), and only on an envelope in
 * which that peer claims to be the hub (sender == hub), or (X4r) names a
 * joined infobase and its hub while the pinned peer is the sender, pinned
 * by its admin with --hub: a regional hub (docs/design.md "Regional
 * hubs").  A rogue node the admin also paired cannot pose as the hub, nor
 * as a regional hub, to a fresh branch.  Checked on accepting and again in
 * the join's own write transaction (bs_xchg_join), so that no path - a
 * file's pass 2, either side of a session - joins another hub.
 */
static bs_err
check_relayed(bs_txn *t, const bs_envelope *e, bs_errbuf *err)
{
    static const uint8_t zero[BS_PK_LEN];
    bs_peer pinned;
    bs_err rv;

    if (memcmp(e->hub, zero, BS_PK_LEN) != 0 &&
        memcmp(e->infobase, zero, BS_INFOBASE_LEN) != 0 &&
        (rv = bs_peer_pinned(t, &pinned)) != BS_ENOTFOUND) {
        int named;
        if (rv != BS_OK)
            return rv;
        named = memcmp(pinned.pk, e->sender, BS_PK_LEN) == 0;
        rv = named && pinned.hub_pin != BS_PIN_NAMED
                 ? bs_errf(err, BS_EINFOBASE,
                           "this branch has not joined an infobase yet: "
                           "its pinned peer \"%s\" is not the hub, and "
                           "joins it to an infobase only when paired with "
                           "--hub as its regional hub (peer rm %s, then "
                           "peer add %s ENDPOINT ID --hub)",
                           pinned.name, pinned.name, pinned.name)
                 : BS_OK;
        bs_peer_fini(&pinned);
        if (named)
            return rv;
    }
    return bs_errf(err, BS_EINFOBASE,
                   "this branch has not joined an infobase yet: the "
                   "first exchange must come from the hub");
}

static bs_err
check_pin(bs_txn *t, const bs_envelope *e, bs_errbuf *err)
{
    char id[BS_NODE_ID_LEN + 1], pid[BS_NODE_ID_LEN + 1];
    bs_peer claimant, pinned;
    bs_err rv;

    if (memcmp(e->sender, e->hub, BS_PK_LEN) != 0)
        return check_relayed(t, e, err);
    bs_node_id_format(e->sender, id);
    if ((rv = bs_peer_find_pk(t, e->sender, &claimant)) != BS_OK)
        return rv == BS_ENOTFOUND
                   ? bs_errf(err, BS_EFORGED,
                             "the exchange comes from %s, which is not a "
                             "paired peer",
                             id)
                   : rv;
    rv = bs_peer_pinned(t, &pinned);
    if (rv == BS_ENOTFOUND)
        rv = bs_errf(err, BS_EINFOBASE,
                     "this branch has no pinned hub, so it joins no "
                     "infobase: refused \"%s\" (%s), which claims to be the "
                     "hub; pair the hub with --hub (peer rm NAME, then peer "
                     "add NAME ENDPOINT ID --hub)",
                     claimant.name, id);
    else if (rv == BS_OK) {
        bs_node_id_format(pinned.pk, pid);
        if (memcmp(pinned.pk, e->sender, BS_PK_LEN) != 0)
            rv = bs_errf(err, BS_EINFOBASE,
                         "this branch joins only its pinned hub \"%s\" (%s): "
                         "refused \"%s\" (%s), which claims to be the hub "
                         "(see peer ls)",
                         pinned.name, pid, claimant.name, id);
        bs_peer_fini(&pinned);
    }
    bs_peer_fini(&claimant);
    return rv;
}

bs_err
bs_xchg_accept(bs_txn *t, const bs_meta *m, const bs_envelope *e,
               uint64_t now_ms, uint64_t retention_ms, bs_accept *a,
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
    static const uint8_t zero[BS_PK_LEN];
    /* A branch that has not joined yet says so with an all-zero infobase
     * and hub; it joins on our hello and sends its sets only after that.
     * An envelope naming a hub claims an infobase: X3 holds it to ours. */
    int unjoined = memcmp(e->infobase, zero, BS_INFOBASE_LEN) == 0 &&
                   memcmp(e->hub, zero, BS_PK_LEN) == 0 &&
                   e->sender_role == BS_ROLE_BRANCH;
    if (m->joined && !unjoined &&
        (memcmp(e->infobase, m->infobase, BS_INFOBASE_LEN) ||
         memcmp(e->hub, m->hub, BS_PK_LEN))) {
        rv = bs_errf(err, BS_EINFOBASE,
                     "the exchange belongs to another infobase");
        goto fail;
    }
    if (!m->joined) {
        if ((rv = check_pin(t, e, err)) != BS_OK)
            goto fail;
        a->join = 1;
    }
    /* X7, before X5: an initiator ignores the replay flag, and nothing
     * from a peer that purges stopped waiting for may be taken. */
    if ((rv = check_stale_envelope(t, m, e, a, now_ms, retention_ms, err)) !=
            BS_OK ||
        (rv = seed_again(t, m, e, a)) != BS_OK)
        goto fail;
    if (e->message_no <= a->peer.recv_no &&
        (!a->peer.has_inc ||
         memcmp(a->peer.peer_inc, e->sender_inc, BS_INC_LEN) == 0)) {
        a->replay = 1;
        return BS_OK;
    }
    /* The same incarnation of a peer never forgets what it acknowledged.
     * Envelopes of concurrent exchanges may arrive out of order, so only a
     * newer one (by message number) is held to it. */
    if (a->peer.has_inc && e->message_no > a->peer.acked_no &&
        memcmp(a->peer.peer_inc, e->sender_inc, BS_INC_LEN) == 0 &&
        !region_seeds(m, e, a)) {
        for (size_t i = 0; i < a->peer.nacked; i++) {
            const bs_pos *now = find_pos(e->ack, e->nack, &a->peer.acked[i]);
            int back = 0;
            if ((now == NULL || now->seq < a->peer.acked[i].seq) &&
                (rv = went_back(t, &a->peer.acked[i], &back)) != BS_OK)
                goto fail;
            if ((now == NULL || now->seq < a->peer.acked[i].seq) && !back) {
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

    if ((rv = check_pin(t, e, err)) != BS_OK)
        return rv;
    m->joined = 1;
    memcpy(m->infobase, e->infobase, BS_INFOBASE_LEN);
    memcpy(m->hub, e->hub, BS_PK_LEN);
    if ((rv = bs_meta_save(t, m)) != BS_OK)
        return rv;
    if (sk == NULL)
        return BS_OK;
    return bs_local_reseal(t, m, sk, err);
}

/* Take e's message number into p: a new incarnation restarts the count. */
static void
count_message(bs_peer *p, const bs_envelope *e)
{
    if (!p->has_inc || memcmp(p->peer_inc, e->sender_inc, BS_INC_LEN) != 0)
        p->recv_no = e->message_no;
    else if (e->message_no > p->recv_no)
        p->recv_no = e->message_no;
}

bs_err
bs_xchg_note_message(bs_txn *t, const bs_envelope *e)
{
    bs_peer p;
    bs_err rv;

    if ((rv = bs_peer_find_pk(t, e->sender, &p)) != BS_OK)
        return rv;
    if (!p.has_inc || memcmp(p.peer_inc, e->sender_inc, BS_INC_LEN) != 0) {
        /* A new incarnation (restored): what it holds is what it says. */
        bs_pos *ack = calloc(e->nack + 1, sizeof *ack);
        if (ack == NULL) {
            bs_peer_fini(&p);
            return BS_ENOMEM;
        }
        memcpy(ack, e->ack, e->nack * sizeof *ack);
        free(p.acked);
        p.acked = ack;
        p.nacked = e->nack;
        p.acked_no = e->message_no;
    }
    count_message(&p, e);
    p.has_inc = 1;
    memcpy(p.peer_inc, e->sender_inc, BS_INC_LEN);
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    return rv;
}

bs_err
bs_xchg_record(bs_txn *t, const bs_envelope *e, uint64_t changes,
               uint64_t now_ms, int count)
{
    bs_peer p;
    bs_pos *ack;
    bs_err rv;

    if ((rv = bs_peer_find_pk(t, e->sender, &p)) != BS_OK)
        return rv;
    if ((ack = calloc(e->nack + p.nacked + 1, sizeof *ack)) == NULL) {
        bs_peer_fini(&p);
        return BS_ENOMEM;
    }
    memcpy(ack, e->ack, e->nack * sizeof *ack);
    if (p.has_inc && memcmp(p.peer_inc, e->sender_inc, BS_INC_LEN) == 0) {
        /* Same incarnation: what it acknowledged only grows, whatever
         * order concurrent exchanges' envelopes arrive in; but a stream
         * the hub released may have gone back there (quarantine.h). */
        size_t n = e->nack;
        bs_streamtab tab;
        if ((rv = bs_streams_load(t, &tab)) != BS_OK) {
            free(ack);
            bs_peer_fini(&p);
            return rv;
        }
        for (size_t i = 0; i < p.nacked; i++) {
            const bs_pos *now = find_pos(ack, n, &p.acked[i]);
            const bs_stream *rs =
                bs_streams_find(&tab, p.acked[i].origin, p.acked[i].inc);
            if (now == NULL)
                ack[n++] = p.acked[i];
            else if (now->seq < p.acked[i].seq &&
                     (rs == NULL || !(rs->flags & BS_STREAM_RELEASED)))
                ((bs_pos *)now)->seq = p.acked[i].seq;
        }
        bs_streams_fini(&tab);
        free(p.acked);
        p.acked = ack;
        p.nacked = n;
        if (e->message_no > p.acked_no)
            p.acked_no = e->message_no;
    } else {
        /* A new incarnation (restored from a backup): believe it. */
        free(p.acked);
        p.acked = ack;
        p.nacked = e->nack;
        p.acked_no = e->message_no;
    }
    if (count)
        count_message(&p, e);
    p.has_inc = 1;
    memcpy(p.peer_inc, e->sender_inc, BS_INC_LEN);
    p.last_ok_ms = now_ms;
    p.recv_changes += changes;
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    /* what it takes and lacks, for the hub's next file to it (snapshot.h) */
    if (rv == BS_OK)
        rv =
            bs_movein_note_peer(t, e->sender, e->features, e->wants, e->nwants);
    if (rv == BS_OK) /* a regional hub asks the hub for them in turn */
        rv = bs_relay_note(t, e->sender, e->wants, e->nwants, e->ack, e->nack,
                           e->seed && (e->features & BS_FEATURE_BOOTSTRAP));
    if (rv == BS_OK) /* a branch asking its hub to seed it, or go on */
        rv = bs_movein_note_seed(
            t, e->sender, e->seed && (e->features & BS_FEATURE_BOOTSTRAP),
            e->wants, e->nwants);
    return rv;
}

/* ---- receiving ---- */

/* Set i of an exchange: decoded already, or decoded now into *own (which
 * the caller frees). */
static bs_err
inbound_set(const bs_inbound *in, size_t i, bs_csview **v, bs_csview **own,
            bs_errbuf *err)
{
    bs_err rv;

    *own = NULL;
    if (in->sets != NULL) {
        *v = in->sets[i];
        return BS_OK;
    }
    if ((rv = bs_changeset_decode(in->raw[i].p, in->raw[i].n, own, err)) !=
        BS_OK)
        return rv;
    *v = *own;
    return BS_OK;
}

/*
 * The seed point (exchange.h): the envelope's vector, when the envelope
 * announces the bootstrap feature and says it seeds us, comes from this
 * infobase's hub (accept checked that the sender is the paired or pinned
 * hub, X1-X4) and we are a branch.
 */
void
bs_xchg_seed_point(const bs_envelope *e, const bs_meta *m, bs_admission *ad)
{
    bs_peer p;
    int ok;

    if (!e->seed || !(e->features & BS_FEATURE_BOOTSTRAP) ||
        memcmp(m->pk, m->hub, BS_PK_LEN) == 0)
        return;
    if (memcmp(e->sender, m->hub, BS_PK_LEN) == 0) {
        ad->seed = e->ack;
        ad->nseed = e->nack;
        return;
    }
    /* a regional hub seeding its branch (8.9): the pinned one */
    if (ad->txn == NULL || bs_peer_find_pk(ad->txn, e->sender, &p) != BS_OK)
        return;
    ok = seeder(m, e, &p);
    bs_peer_fini(&p);
    if (ok) {
        ad->seed = e->ack;
        ad->nseed = e->nack;
    }
}

/* Pass 1 for batch i of p's snapshots: the batch (its signature and
 * hashes), then each of its snapshots. */
static bs_err
admit_batch(bs_admission *ad, const bs_inbound *p, size_t i, bs_errbuf *err)
{
    bs_snapbatch *b;
    bs_snap sn;
    bs_err rv;

    if ((rv = bs_snapbatch_decode_borrowed(p->snaps[i].p, p->snaps[i].n, 0, &b,
                                           err)) != BS_OK)
        return rv;
    rv = bs_admit_snapbatch(ad, b, p->env.sender, err);
    bs_snap_init(&sn); /* one snapshot's storage for the whole batch */
    for (size_t j = 0; rv == BS_OK && j < b->n; j++)
        if ((rv = bs_snapbatch_snap_into(b, j, &sn, err)) == BS_OK)
            rv = bs_admit_snapshot(ad, &sn, p->env.sender, err);
    bs_snap_fini(&sn);
    bs_snapbatch_free(b);
    return rv;
}

/*
 * Pass 1: admit every set dry (admit.h), against a private copy of the
 * stream table that advances through the exchange, as the node will be
 * once joined, then the record snapshot frames [s0, s1) by the rules the
 * sets bring.  The first refusal refuses the exchange.
 */
static bs_err
verify_sets(bs_inbound *p, bs_txn *t, const bs_meta *m, uint64_t now_ms,
            uint64_t max_skew_ms, size_t s0, size_t s1, bs_errbuf *err)
{
    bs_meta view = *m;
    bs_admission ad;
    bs_streamtab tab;
    bs_arena a;
    bs_err rv;

    if (!view.joined) { /* judge as the joined node will */
        view.joined = 1;
        memcpy(view.infobase, p->env.infobase, BS_INFOBASE_LEN);
        memcpy(view.hub, p->env.hub, BS_PK_LEN);
    }
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    bs_admission_init(&ad, t, &view, &tab, 1, now_ms, max_skew_ms, &a);
    ad.joining = !m->joined;
    bs_xchg_seed_point(&p->env, &view, &ad);
    for (size_t i = 0; i < p->nsets && rv == BS_OK; i++) {
        bs_csview *v, *own = NULL;
        bs_admit out;

        bs_arena_reset(&a);
        if ((rv = inbound_set(p, i, &v, &own, err)) != BS_OK)
            break;
        rv = bs_admit_set(&ad, v, &out, err);
        if (own == NULL) /* pass 2 need not check it again (a shared view:
                            verify_snaps' second thread never gets here) */
            v->verified = rv == BS_OK;
        bs_changeset_free(own); /* on every path */
    }
    /* the record snapshots, after the sets, by the rules they bring */
    for (size_t i = s0; i < s1 && rv == BS_OK; i++) {
        bs_snap *sn;

        if (p->snapbatch != NULL && p->snapbatch[i]) {
            rv = admit_batch(&ad, p, i, err);
            p->snapok[i] = rv == BS_OK; /* pass 2 trusts these bytes */
            continue;
        }
        if ((rv = bs_snap_decode(p->snaps[i].p, p->snaps[i].n, &sn, err)) !=
            BS_OK)
            break;
        rv = bs_admit_snapshot(&ad, sn, p->env.sender, err);
        bs_snap_free(sn);
    }
    bs_admission_fini(&ad);
    bs_arena_fini(&a);
    bs_streams_fini(&tab);
    return rv;
}

/* Pass 1's second half of an exchange's snapshot frames, on a thread of
 * its own with a read transaction of its own (verify_snaps). */
typedef struct half {
    bs_store *store;
    bs_inbound *p;
    const bs_meta *m;
    uint64_t now_ms, max_skew_ms;
    size_t s0, s1;
    bs_err rv;
    bs_errbuf err;
} half;

static void *
verify_half(void *arg)
{
    half *h = arg;
    bs_txn *t;

    if ((h->rv = bs_store_read(h->store, &t, &h->err)) != BS_OK)
        return NULL;
    h->rv = verify_sets(h->p, t, h->m, h->now_ms, h->max_skew_ms, h->s0, h->s1,
                        &h->err);
    bs_txn_abort(t);
    return NULL;
}

/* Frames this many or more (a seed of about 8 MiB and up, the snapshots
 * in batches of BS_SNAPBATCH_BYTES) are judged by two threads. */
#define SPLIT_FRAMES 4

/*
 * Pass 1 over p in t: the sets, then the record snapshots.  A file's
 * seed of many batches (its sets decoded per pass, so no view is shared)
 * is judged in two halves at once: a second thread admits the sets again
 * (a seed's are a few system sets and anchors) and then the second half
 * of the snapshot frames.  Each half's verdict is the one pass 1 gives
 * alone; the first refusal in frame order is reported.
 */
static bs_err
verify_snaps(bs_store *s, bs_inbound *p, bs_txn *t, const bs_meta *m,
             uint64_t now_ms, uint64_t max_skew_ms, bs_errbuf *err)
{
    half h = {s, p, m, now_ms, max_skew_ms, 0, 0, BS_OK, {{0}}};
    pthread_t th;
    int threaded = 0;
    bs_err rv;

    free(p->snapok);
    p->snapok = NULL;
    if (p->nsnaps > 0 && (p->snapok = calloc(p->nsnaps, 1)) == NULL)
        return BS_ENOMEM;
    h.s0 = h.s1 = p->nsnaps;
    if (p->sets == NULL && p->snapbatch != NULL && p->nsnaps >= SPLIT_FRAMES) {
        h.s0 = p->nsnaps / 2;
        threaded = pthread_create(&th, NULL, verify_half, &h) == 0;
        if (!threaded)
            h.s0 = p->nsnaps; /* one thread after all */
    }
    rv = verify_sets(p, t, m, now_ms, max_skew_ms, 0, h.s0, err);
    if (threaded)
        pthread_join(th, NULL);
    if (rv == BS_OK && h.rv != BS_OK) { /* the first half passed */
        if (err != NULL)
            *err = h.err;
        rv = h.rv;
    }
    return rv;
}

/* X7r by file, at the hub: a stale peer's file is taken only once the
 * peer was seeded again, which gave it a new incarnation; one written
 * before carries the stale sets the re-seed must not let in. */
static bs_err
stale_file(const bs_accept *acc, const bs_envelope *e, bs_errbuf *err)
{
    if (!acc->reseed_peer || !acc->peer.has_inc ||
        memcmp(acc->peer.peer_inc, e->sender_inc, BS_INC_LEN) != 0)
        return BS_OK;
    return bs_errf(err, BS_ESTALE,
                   "peer %s: this file was written before the peer was "
                   "seeded again after the retention limit, so it is "
                   "refused; send it this hub's seed (export) and import "
                   "its next file",
                   acc->peer.name);
}

/* The envelope accepted (X1-X7) in a read transaction, then, with
 * dry_sets, pass 1 over the sets and snapshots. */
static bs_err
verify(bs_store *s, bs_inbound *in, bs_accept *acc, bs_clock clock,
       uint64_t max_skew_ms, uint64_t retention_ms, int dry_sets,
       bs_errbuf *err)
{
    uint64_t now = clock.now_ms(clock.ctx);
    bs_meta m;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_store_read(s, &t, err)) != BS_OK)
        return rv;
    if ((rv = bs_meta_load(t, &m, err)) == BS_OK &&
        (rv = bs_xchg_accept(t, &m, &in->env, now, retention_ms, acc, err)) ==
            BS_OK &&
        !acc->replay) {
        rv = stale_file(acc, &in->env, err);
        if (rv == BS_OK && dry_sets)
            rv = verify_snaps(s, in, t, &m, now, max_skew_ms, err);
        if (rv != BS_OK)
            bs_peer_fini(&acc->peer);
    }
    bs_txn_abort(t);
    return rv;
}

bs_err
bs_xchg_verify(bs_store *s, bs_inbound *in, bs_accept *acc, bs_clock clock,
               uint64_t max_skew_ms, uint64_t retention_ms, bs_errbuf *err)
{
    return verify(s, in, acc, clock, max_skew_ms, retention_ms, 1, err);
}

typedef struct import_ctx {
    bs_inbound *p;
    const uint8_t *sk;
    bs_clock clock;
    uint64_t max_skew_ms;
    /* units [set, end) in one transaction: a unit u < nsets is set u,
     * else frame u - nsets of the record snapshots */
    size_t set, end;
    int join;   /* join in the next transaction (its first) */
    int reseed; /* begin a re-seed in the first transaction (reseed.h) */
    bs_xstats *st;
    bs_xstats pending; /* counted once the transaction committed */
    /* a seed's progress in this transaction: records merged, the last */
    uint64_t seeded;
    char seed_coll[BS_COLLECTION_MAX + 1], seed_id[BS_ID_MAX + 1];
    bs_prefetch *pf; /* a file's sets decoded ahead (prefetch.h), or NULL */
} import_ctx;

/* Sets and snapshot frames are applied in groups of about this many bytes
 * per transaction (about 100,000 changes of ~100-byte records, or 25,000
 * snapshots): each set stays atomic, far fewer commits rewrite the tree,
 * and a write transaction's dirty pages stay bounded (a seed of a million
 * records does not hold them all in memory). */
#define APPLY_GROUP_BYTES (16u << 20)

/* The end of the group of units that starts at unit `set` (one write
 * transaction of pass 2): at least one unit, then units while the group
 * holds fewer than APPLY_GROUP_BYTES. */
static size_t
group_end(const bs_inbound *in, size_t set)
{
    size_t units = in->nsets + in->nsnaps, end, bytes = 0;

    for (end = set; end < units && (end == set || bytes < APPLY_GROUP_BYTES);
         end++)
        bytes += end >= in->nsets ? in->snaps[end - in->nsets].n
                 : in->sets       ? in->sets[end]->raw.n
                                  : in->raw[end].n;
    return end;
}

static void
add_stats(bs_xstats *st, const bs_xstats *from)
{
    st->sets += from->sets;
    st->dup_sets += from->dup_sets;
    st->changes += from->changes;
    st->conflicts += from->conflicts;
    st->held += from->held;
    st->quarantined += from->quarantined;
    st->refused += from->refused;
    st->snapshots += from->snapshots;
    st->reissued += from->reissued;
    st->reseed_dropped += from->reseed_dropped;
    st->reseeded |= from->reseeded;
}

static void
take_stats(bs_xstats *st, const bs_apply *ap)
{
    st->sets += ap->sets;
    st->dup_sets += ap->dup_sets;
    st->changes += ap->changes;
    st->conflicts += ap->conflicts;
    st->held += ap->held;
    st->quarantined += ap->quarantined;
    st->refused += ap->refused;
    st->snapshots += ap->snapshots;
}

/* A record snapshot merged in this transaction (a seed's progress). */
static void
note_seeded(import_ctx *x, const bs_snap *s)
{
    x->seeded++;
    memcpy(x->seed_coll, s->coll, sizeof x->seed_coll);
    memcpy(x->seed_id, s->id, sizeof x->seed_id);
}

/* Pass 2 for batch i of p's snapshots: admitted again (N7-N12) but its
 * signature and hashes verified only when pass 1 did not (snapok), then
 * each snapshot merged. */
static bs_err
apply_batch(bs_apply *ap, const bs_inbound *p, size_t i, import_ctx *x,
            bs_errbuf *err)
{
    const uint8_t *carrier;
    bs_snapahead *ahead;
    bs_snapbatch *b;
    bs_snap sn;
    bs_err rv;

    int ok = p->snapok != NULL && p->snapok[i]; /* pass 1 checked it */

    if ((rv = bs_snapbatch_decode_borrowed(p->snaps[i].p, p->snaps[i].n, ok, &b,
                                           err)) != BS_OK)
        return rv;
    if (!ok)
        rv = bs_admit_snapbatch(&ap->ad, b, p->env.sender, err);
    /* what pass 1 admitted (the same bytes, after the same sets) is merged
     * without being admitted again */
    carrier = ok ? NULL : p->env.sender;
    /* a large batch's snapshots decoded ahead on a second thread */
    if (rv == BS_OK && b->n >= 2 * BS_SNAPAHEAD_CHUNK &&
        (ahead = bs_snapahead_start(b)) != NULL) {
        bs_snap *s;

        while ((rv = bs_snapahead_next(ahead, &s, err)) == BS_OK)
            if ((rv = bs_apply_snapshot(ap, s, carrier, err)) != BS_OK)
                break;
            else if (!s->done)
                note_seeded(x, s);
        bs_snapahead_stop(ahead);
        bs_snapbatch_free(b);
        return rv == BS_ENOTFOUND ? BS_OK : rv;
    }
    bs_snap_init(&sn);
    for (size_t j = 0; rv == BS_OK && j < b->n; j++) {
        if ((rv = bs_snapbatch_snap_into(b, j, &sn, err)) != BS_OK)
            break;
        if ((rv = bs_apply_snapshot(ap, &sn, carrier, err)) == BS_OK &&
            !sn.done)
            note_seeded(x, &sn);
    }
    bs_snap_fini(&sn);
    bs_snapbatch_free(b);
    return rv;
}

/* Frame i of p's record snapshots, one snapshot or a batch, merged. */
static bs_err
apply_snaps(bs_apply *ap, const bs_inbound *p, size_t i, import_ctx *x,
            bs_errbuf *err)
{
    bs_snap *sn = NULL;
    bs_err rv;

    if (p->snapbatch != NULL && p->snapbatch[i])
        return apply_batch(ap, p, i, x, err);
    if ((rv = bs_snap_decode(p->snaps[i].p, p->snaps[i].n, &sn, err)) == BS_OK)
        rv = bs_apply_snapshot(ap, sn, p->env.sender, err);
    if (rv == BS_OK && !sn->done)
        note_seeded(x, sn);
    bs_snap_free(sn);
    return rv;
}

/* rv, unless the exchange's file checksum (bs_inbound.sealed), made
 * meanwhile, does not match: that is the refusal then, ahead of any
 * other of a bad input (a corrupt file is named so).  Before every
 * commit. */
static bs_err
sealed(const bs_inbound *in, bs_err rv, bs_errbuf *err)
{
    bs_errbuf e2 = {{0}};
    bs_err s;

    if (in->sealed == NULL || (rv != BS_OK && bs_err_local(rv)) ||
        (s = in->sealed(in->sealed_ctx, &e2)) == BS_OK)
        return rv;
    if (err != NULL)
        *err = e2;
    return s;
}

/*
 * One write transaction of pass 2: the join (in the first), the units
 * [set, end) (sets, then record snapshots in their key order: sorted
 * inserts), and in the last one the retry of held sets, after the
 * exchange's own sets which pass 1 judged against the held table as it
 * was, and the sender's acknowledgement.  So an exchange that fits one
 * group (16 MiB) is applied, joined and acknowledged all or nothing; a
 * larger one (a seed of a million records) commits group by group, its
 * acknowledgement last, so that receiving it again completes it.
 */
static bs_err
apply_one(bs_txn *t, void *arg, bs_errbuf *err)
{
    import_ctx *x = arg;
    size_t nsets = x->p->nsets;
    int last = x->end == nsets + x->p->nsnaps;
    bs_apply ap;
    bs_err rv;

    memset(&x->pending, 0, sizeof x->pending);
    if (x->join) {
        bs_meta m;
        if ((rv = bs_meta_load(t, &m, err)) != BS_OK ||
            (rv = bs_xchg_join(t, &m, &x->p->env, x->sk, err)) != BS_OK)
            return rv;
    }
    if (x->reseed && x->set == 0 &&
        (rv = bs_reseed_begin(t, x->p->env.ack, x->p->env.nack, NULL, err)) !=
            BS_OK)
        return rv;
    if ((rv = bs_apply_begin(&ap, t, x->clock, x->max_skew_ms, err)) == BS_OK) {
        bs_xchg_seed_point(&x->p->env, &ap.ad.meta, &ap.ad);
        x->seeded = 0;
        if (x->set == 0 && ap.ad.seed != NULL) /* seeding, until the marker */
            rv = bs_movein_seed_begin(t, ap.ad.seed, ap.ad.nseed);
        for (size_t u = x->set; rv == BS_OK && u < x->end; u++) {
            bs_csview *v, *own = NULL;
            if (u >= nsets) {
                rv = apply_snaps(&ap, x->p, u - nsets, x, err);
                continue;
            }
            if (x->pf != NULL) {
                if ((rv = bs_prefetch_get(x->pf, u, &own, err)) == BS_OK)
                    rv = bs_apply_set(&ap, own, err);
            } else if ((rv = inbound_set(x->p, u, &v, &own, err)) == BS_OK) {
                rv = bs_apply_set(&ap, v, err);
            }
            bs_changeset_free(own);
        }
        if (rv == BS_OK && x->seeded > 0)
            rv =
                bs_movein_seed_progress(t, x->seed_coll, x->seed_id, x->seeded);
        if (rv == BS_OK && last)
            rv = bs_apply_held(&ap, err);
    }
    if (rv == BS_OK)
        rv = bs_apply_finish(&ap, err);
    if (rv == BS_OK)
        take_stats(&x->pending, &ap);
    bs_apply_fini(&ap);
    if (rv == BS_OK && last)
        rv = bs_xchg_record(t, &x->p->env, x->st->changes + x->pending.changes,
                            x->clock.now_ms(x->clock.ctx), 1);
    if (rv == BS_OK && last) { /* a re-seed the seed completed (reseed.h) */
        bs_core c = {NULL, x->sk, x->clock, x->max_skew_ms, 0, 0};
        bs_reseed_stats rs = {0};
        int on = 0;
        if ((rv = bs_reseed_pending(t, &on)) == BS_OK && on &&
            (rv = bs_reseed_finish(t, &c, &rs, err)) == BS_OK &&
            (rv = bs_reseed_pending(t, &on)) == BS_OK && !on) {
            x->pending.reseeded = 1;
            x->pending.reissued = rs.reissued;
            x->pending.reseed_dropped = rs.dropped;
        }
    }
    return sealed(x->p, rv, err); /* before the commit */
}

static bs_err
unjoin_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_meta m;
    bs_err rv;

    (void)arg;
    if ((rv = bs_meta_load(t, &m, err)) != BS_OK || !m.joined)
        return rv;
    return bs_meta_unjoin(t, &m);
}

/*
 * The exchange that made this node join failed after the join committed
 * (with its first group of sets): leave the infobase again, in a
 * transaction of its own, so that a failed import does not leave the node
 * joined.  What the committed groups applied stays, and so do the node's
 * own sets as re-signed for the infobase: the next join re-signs them
 * again, and receiving the exchange again completes it.  The undo itself
 * may fail (a disk still full): the message then says the node stays
 * joined.
 */
static bs_err
undo_join(bs_store *s, bs_err rv, bs_errbuf *err)
{
    char why[BS_ERRMSG_LEN];
    bs_errbuf e2 = {{0}};
    bs_err r2;

    snprintf(why, sizeof why, "%s", bs_errmsg(err, rv));
    if ((r2 = bs_store_write(s, unjoin_txn, NULL, &e2)) == BS_OK)
        return bs_errf(err, rv,
                       "%s; the join was undone: the node is not joined to "
                       "the infobase",
                       why);
    return bs_errf(err, rv,
                   "%s; the node stays joined to the infobase (undoing the "
                   "join failed too: %s)",
                   why, bs_errmsg(&e2, r2));
}

/* Sets enough for a second thread to pay (a file's; prefetch.h), and
 * large enough on average: a hand-off per set costs more than decoding a
 * small one (a branch's file of a thousand other offices' summaries). */
#define PREFETCH_MIN_SETS  4
#define PREFETCH_MIN_BYTES (16u << 10)

static size_t
raw_bytes(const bs_inbound *in)
{
    size_t n = 0;

    for (size_t i = 0; i < in->nsets; i++)
        n += in->raw[i].n;
    return n;
}

bs_err
bs_xchg_apply(bs_store *s, const uint8_t *sk, bs_inbound *in,
              const bs_accept *acc, bs_clock clock, uint64_t max_skew_ms,
              bs_xstats *st, bs_errbuf *err)
{
    import_ctx x = {in, sk, clock, max_skew_ms, 0, 0, 0, 0, st, {0}};
    size_t units = in->nsets + in->nsnaps;
    int joined = 0; /* the join committed, with the first group */
    bs_err rv = BS_OK;

    snprintf(st->peer, sizeof st->peer, "%s", acc->peer.name);
    st->offered = in->nsets;
    if ((st->replay = acc->replay))
        return BS_OK;
    x.join = st->joined = acc->join;
    x.reseed = acc->reseed;
    /* a file's sets (decoded per pass, not shared) decoded ahead on a
     * second thread while this one applies */
    if (in->sets == NULL && in->nsets >= PREFETCH_MIN_SETS &&
        raw_bytes(in) >= PREFETCH_MIN_BYTES * in->nsets)
        x.pf = bs_prefetch_start(in->raw, in->nsets);
    do { /* at least one transaction, even for an exchange without sets */
        x.end = group_end(in, x.set);
        if ((rv = bs_store_write(s, apply_one, &x, err)) == BS_OK) {
            add_stats(st, &x.pending);
            joined |= x.join;
            x.join = 0;
        }
        x.set = x.end;
    } while (rv == BS_OK && x.set < units);
    bs_prefetch_stop(x.pf);
    if (rv != BS_OK && joined)
        rv = undo_join(s, rv, err);
    if (rv != BS_OK)
        st->joined = 0;
    return rv;
}

bs_err
bs_xchg_import(bs_store *s, const uint8_t *sk, bs_inbound *in, bs_clock clock,
               uint64_t max_skew_ms, uint64_t retention_ms, bs_xstats *st,
               bs_errbuf *err)
{
    /* One group: pass 2's one transaction admits every set for real, and
     * a refusal aborts it, so pass 1 would only repeat the same work. */
    int one = group_end(in, 0) == in->nsets + in->nsnaps;
    bs_accept acc;
    bs_err rv;

    memset(st, 0, sizeof *st);
    if ((rv = verify(s, in, &acc, clock, max_skew_ms, retention_ms, !one,
                     err)) != BS_OK)
        return sealed(in, rv, err);
    /* before pass 2, or before a replay is taken as done */
    if ((!one || acc.replay) && (rv = sealed(in, BS_OK, err)) != BS_OK) {
        bs_peer_fini(&acc.peer);
        return rv;
    }
    rv = bs_xchg_apply(s, sk, in, &acc, clock, max_skew_ms, st, err);
    bs_peer_fini(&acc.peer);
    if (one && rv != BS_OK && !bs_err_local(rv))
        memset(st, 0, sizeof *st); /* refused: as by pass 1, nothing written */
    else if (!st->replay)
        st->passes = one ? 1 : 2;
    return rv;
}

void
bs_inbound_fini(bs_inbound *in)
{
    for (size_t i = 0; in->sets != NULL && i < in->nsets; i++)
        bs_changeset_free(in->sets[i]);
    free(in->sets);
    free(in->snapok);
    bs_envelope_fini(&in->env);
    memset(in, 0, sizeof *in);
}
