/*
 * compact.c - dropping the sets every peer acknowledged and nobody can
 * need any more, keeping stubs, floors and record bases (compact.h).
 */
#include "compact.h"

#include <stdlib.h>
#include <string.h>

#include "changeset.h"
#include "collections.h"
#include "meta.h"
#include "movein.h"
#include "peers.h"
#include "purge.h"
#include "record.h"
#include "setlog.h"
#include "streams.h"

#define STUB     "cpt:" /* cpt: u32be stream | u64be first -> last | hash */
#define FLOOR    "cpf:" /* cpf: u32be stream -> u64be highest seq dropped */
#define COUNT    "cpn"  /* cpn -> u64be sets dropped so far */
#define GAP      "cpg:" /* cpg: u32be stream | u64be from -> last | hash */
#define STUB_KEY (4 + 4 + 8)
#define STUB_VAL (8 + BS_HASH_LEN)

static bs_slice
stub_key(uint8_t k[STUB_KEY], uint32_t stream, uint64_t first)
{
    memcpy(k, STUB, 4);
    bs_put_u32be(k + 4, stream);
    bs_put_u64be(k + 8, first);
    return bs_mem(k, STUB_KEY);
}

static bs_slice
floor_key(uint8_t k[8], uint32_t stream)
{
    memcpy(k, FLOOR, 4);
    bs_put_u32be(k + 4, stream);
    return bs_mem(k, 8);
}

static bs_err
get_u64(bs_txn *t, bs_slice k, uint64_t *out)
{
    bs_slice v;
    bs_err rv = bs_txn_get(t, BS_DB_META, k, &v);

    *out = 0;
    if (rv == BS_ENOTFOUND)
        return BS_OK;
    if (rv != BS_OK)
        return rv;
    if (v.n != 8)
        return BS_ESTORE;
    *out = bs_get_u64be(v.p);
    return BS_OK;
}

static bs_err
put_u64(bs_txn *t, bs_slice k, uint64_t n)
{
    uint8_t v[8];

    bs_put_u64be(v, n);
    return bs_txn_put(t, BS_DB_META, k, bs_mem(v, 8), 0, NULL);
}

bs_err
bs_compact_floor(bs_txn *t, uint32_t stream, uint64_t *seq)
{
    uint8_t k[8];

    return get_u64(t, floor_key(k, stream), seq);
}

bs_err
bs_compact_fork(bs_txn *t, uint32_t stream, uint64_t first, const uint8_t *hash,
                int *fork)
{
    uint8_t k[STUB_KEY];
    bs_cursor *c;
    bs_slice kk, v;
    bs_err rv;

    *fork = 0;
    if ((rv = bs_cursor_open(t, BS_DB_META, &c)) != BS_OK)
        return rv;
    stub_key(k, stream, first);
    rv = bs_cursor_seek(c, bs_mem(k, STUB_KEY), &kk, &v);
    if (rv == BS_OK && kk.n == STUB_KEY && memcmp(kk.p, k, STUB_KEY) == 0) {
        /* a dropped set started here: the same set, or a fork */
        *fork = v.n != STUB_VAL || memcmp(v.p + 8, hash, BS_HASH_LEN) != 0;
        bs_cursor_close(c);
        return v.n == STUB_VAL ? BS_OK : BS_ESTORE;
    }
    /* the dropped set before it, of the same stream, spanning `first`:
     * other bounds over the same seqs, signed by the origin twice */
    rv = rv == BS_OK || rv == BS_ENOTFOUND
             ? (rv == BS_OK ? bs_cursor_prev(c, &kk, &v)
                            : bs_cursor_last(c, &kk, &v))
             : rv;
    if (rv == BS_OK && kk.n == STUB_KEY && memcmp(kk.p, k, 8) == 0 &&
        v.n == STUB_VAL && bs_get_u64be(v.p) >= first)
        *fork = 1;
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND || rv == BS_OK ? BS_OK : rv;
}

bs_err
bs_compact_note_gap(bs_txn *t, uint32_t stream, uint64_t from, uint64_t last,
                    const uint8_t *hash)
{
    uint8_t k[STUB_KEY], fk[8], val[STUB_VAL];
    uint64_t floor;
    bs_err rv;

    stub_key(k, stream, from);
    memcpy(k, GAP, 4);
    bs_put_u64be(val, last);
    memcpy(val + 8, hash, BS_HASH_LEN);
    if ((rv = bs_txn_put(t, BS_DB_META, bs_mem(k, STUB_KEY),
                         bs_mem(val, sizeof val), 0, NULL)) != BS_OK ||
        (rv = get_u64(t, floor_key(fk, stream), &floor)) != BS_OK)
        return rv;
    return floor >= last ? BS_OK : put_u64(t, floor_key(fk, stream), last);
}

bs_err
bs_compact_ends_at(bs_txn *t, uint32_t stream, uint64_t from, uint64_t last,
                   uint8_t hash[BS_HASH_LEN], int *found)
{
    uint8_t k[STUB_KEY];
    bs_cursor *c;
    bs_slice kk, v;
    bs_err rv;
    uint64_t floor;

    *found = 0;
    if ((rv = bs_compact_floor(t, stream, &floor)) != BS_OK || floor < last ||
        from > last)
        return rv;
    stub_key(k, stream, from); /* a seed's gap, exactly */
    memcpy(k, GAP, 4);
    rv = bs_txn_get(t, BS_DB_META, bs_mem(k, STUB_KEY), &v);
    if (rv == BS_OK && v.n == STUB_VAL && bs_get_u64be(v.p) == last) {
        memcpy(hash, v.p + 8, BS_HASH_LEN);
        *found = 1;
        return BS_OK;
    }
    if (rv != BS_OK && rv != BS_ENOTFOUND)
        return rv;
    if ((rv = bs_cursor_open(t, BS_DB_META, &c)) != BS_OK)
        return rv;
    stub_key(k, stream, from); /* the first dropped set starts at `from` */
    rv = bs_cursor_seek(c, bs_mem(k, STUB_KEY), &kk, &v);
    if (rv == BS_OK && !(kk.n == STUB_KEY && memcmp(kk.p, k, STUB_KEY) == 0)) {
        bs_cursor_close(c);
        return BS_OK;
    }
    /* consecutive stubs from `from` to `last` */
    while (rv == BS_OK && kk.n == STUB_KEY && memcmp(kk.p, k, 8) == 0 &&
           v.n == STUB_VAL && bs_get_u64be(kk.p + 8) == from) {
        uint64_t end = bs_get_u64be(v.p);
        if (end == last) {
            memcpy(hash, v.p + 8, BS_HASH_LEN);
            *found = 1;
            break;
        }
        from = end + 1;
        rv = bs_cursor_next(c, &kk, &v);
    }
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* ---- judging and dropping ---- */

typedef struct compactor {
    bs_txn *txn;
    uint64_t now_ms, retention_ms;
    int dry;
    uint64_t max; /* stop after dropping this many (0: no bound) */
    bs_meta meta;
    bs_streamtab tab;
    bs_peer *peers;
    size_t npeers;
    bs_arena a;
    bs_compact_stats *st;
    int corrupt; /* a logged set or change did not decode */
} compactor;

/* 1 when change i of v belongs to a system collection, or cannot be told
 * (omitted without routes): such a set is kept. */
static int
system_change(const bs_csview *v, size_t i, bs_arena *a)
{
    bs_change ch;

    if (v->route_coll != NULL && v->route_coll[i] != NULL)
        return v->route_coll[i][0] == '_';
    if (!v->present[i] || bs_changeset_change(v, i, a, &ch, NULL) != BS_OK)
        return 1;
    return ch.coll[0] == '_';
}

/* Fold change ch of stream s into its record's base. */
static bs_err
fold(compactor *k, const bs_stream *s, const bs_change *ch)
{
    bs_version ver = {ch->hlc, ch->seq, s->idx, ch->prio};
    bs_order o = {0, bs_streams_key, &k->tab};
    bs_collection rules;
    bs_record r;
    int changed = 0;
    bs_err rv;

    if ((rv = bs_collections_get(k->txn, ch->coll, &rules)) == BS_OK)
        o.use_prio = rules.policy == BS_POLICY_PRIORITY;
    else if (rv != BS_ENOTFOUND)
        return rv;
    rv = bs_movein_base(k->txn, ch->coll, ch->id, &r, &k->a);
    if (rv == BS_ENOTFOUND)
        memset(&r, 0, sizeof r);
    else if (rv != BS_OK)
        return rv;
    if ((rv = bs_record_merge(&r, ch->deleted, ch->fields, ch->nfields, &ver,
                              &o, &k->a, &changed)) != BS_OK ||
        !changed)
        return rv;
    return bs_movein_base_put(k->txn, ch->coll, ch->id, &r, &k->a);
}

/* Drop set v (stored at s, first) from the log: its changes folded into
 * the bases, a stub and the stream's floor kept. */
static bs_err
drop(compactor *k, const bs_stream *s, const bs_csview *v)
{
    uint8_t key[STUB_KEY], fk[8], val[STUB_VAL];
    uint64_t n;
    bs_err rv;

    for (size_t i = 0; i < v->count; i++) {
        bs_change ch;

        if (!v->present[i])
            continue; /* not here (another office's scope) */
        bs_arena_reset(&k->a);
        if (bs_changeset_change(v, i, &k->a, &ch, NULL) != BS_OK) {
            k->corrupt = 1;
            return BS_ESTORE;
        }
        if ((rv = fold(k, s, &ch)) != BS_OK)
            return rv;
    }
    bs_put_u64be(val, v->last);
    memcpy(val + 8, v->header_hash, BS_HASH_LEN);
    if ((rv = bs_txn_put(k->txn, BS_DB_META, stub_key(key, s->idx, v->first),
                         bs_mem(val, sizeof val), 0, NULL)) != BS_OK ||
        (rv = put_u64(k->txn, floor_key(fk, s->idx), v->last)) != BS_OK ||
        (rv = get_u64(k->txn, bs_mem(COUNT, 3), &n)) != BS_OK ||
        (rv = put_u64(k->txn, bs_mem(COUNT, 3), n + 1)) != BS_OK)
        return rv;
    return bs_setlog_del(k->txn, s->idx, v->first);
}

enum { KEEP_NEEDED, DROP, STOP_RECENT, STOP_HELD };

/* 1 when every peer that may need set v of stream s acknowledged it: the
 * peers not silent past the limit (a stale one is seeded, which needs no
 * old set), and at a branch, for its own sets, its hub whatever its
 * silence: a stale branch keeps the sets its hub never received, which
 * its re-seed writes again (reseed.h). */
static int
acked(compactor *k, const bs_stream *s, const bs_csview *v)
{
    const bs_meta *m = &k->meta;

    if (!bs_purge_all_acked(k->peers, k->npeers, s->key, v->last, k->now_ms,
                            k->retention_ms))
        return 0;
    if (!m->joined || memcmp(m->pk, m->hub, BS_PK_LEN) == 0 ||
        memcmp(s->key, m->pk, BS_PK_LEN) != 0)
        return 1;
    for (size_t i = 0; i < k->npeers; i++)
        if (memcmp(k->peers[i].pk, m->hub, BS_PK_LEN) == 0)
            return bs_vv_get(k->peers[i].acked, k->peers[i].nacked, s->key) >=
                   v->last;
    return 0;
}

/* What to do with set v of stream s. */
static int
judge(compactor *k, const bs_stream *s, const bs_csview *v)
{
    if (v->last >= s->seq)
        return KEEP_NEEDED; /* the anchor */
    if (v->created_ms + k->retention_ms > k->now_ms)
        return STOP_RECENT;
    if (!acked(k, s, v))
        return STOP_HELD;
    for (size_t i = 0; i < v->count; i++) {
        bs_arena_reset(&k->a);
        if (system_change(v, i, &k->a))
            return KEEP_NEEDED;
    }
    return DROP;
}

/* Compact stream s: its sets in order, until one is too recent or not
 * acknowledged by every peer (every later one is neither, or hardly). */
static bs_err
compact_stream(compactor *k, const bs_stream *s)
{
    uint64_t from = 1, first;
    bs_slice set;
    bs_err rv;

    while ((rv = bs_setlog_from(k->txn, s->idx, from, &set, &first)) == BS_OK) {
        uint8_t *copy = malloc(set.n ? set.n : 1); /* writes move it */
        bs_csview *v;
        int verdict;

        if (copy == NULL)
            return BS_ENOMEM;
        memcpy(copy, set.p, set.n);
        if (bs_changeset_decode(copy, set.n, &v, NULL) != BS_OK) {
            free(copy);
            k->corrupt = 1;
            return BS_ESTORE;
        }
        verdict = judge(k, s, v);
        rv = BS_OK;
        if (verdict == DROP) {
            k->st->sets++;
            k->st->bytes += set.n;
            if (!k->dry)
                rv = drop(k, s, v);
        } else if (verdict == KEEP_NEEDED)
            k->st->kept_needed++;
        else if (verdict == STOP_RECENT)
            k->st->too_recent++;
        else
            k->st->held_by_peers++;
        from = (v->last > first ? v->last : first) + 1;
        bs_changeset_free(v);
        free(copy);
        if (rv != BS_OK)
            return rv;
        if (verdict == STOP_RECENT || verdict == STOP_HELD ||
            (k->max > 0 && k->st->sets >= k->max))
            return BS_OK;
    }
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
compact_log(bs_txn *t, uint64_t now_ms, uint64_t retention_ms, int dry,
            uint64_t max, bs_compact_stats *st, bs_errbuf *err)
{
    compactor k;
    bs_err rv;

    memset(st, 0, sizeof *st);
    if (retention_ms == 0)
        return BS_OK; /* no limit: nothing is old enough */
    memset(&k, 0, sizeof k);
    k.txn = t;
    k.now_ms = now_ms;
    k.retention_ms = retention_ms;
    k.dry = dry;
    k.max = max;
    k.st = st;
    if ((rv = bs_meta_load(t, &k.meta, err)) != BS_OK ||
        (rv = bs_streams_load(t, &k.tab)) != BS_OK)
        return rv;
    bs_arena_init(&k.a);
    if ((rv = bs_peer_list(t, &k.peers, &k.npeers)) == BS_OK) {
        for (size_t i = 0;
             i < k.tab.n && rv == BS_OK && !(max > 0 && st->sets >= max); i++) {
            const bs_stream *s = &k.tab.v[i];
            if (s->flags & (BS_STREAM_QUARANTINED | BS_STREAM_RELEASED))
                continue; /* protocol.md 4.6 needs their sets */
            rv = compact_stream(&k, s);
        }
    }
    if (rv == BS_ESTORE && k.corrupt)
        rv = bs_errf(err, BS_ESTORE,
                     "store is corrupt: a logged change set does not decode; "
                     "restore from a backup");
    bs_peer_list_free(k.peers, k.npeers);
    bs_arena_fini(&k.a);
    bs_streams_fini(&k.tab);
    return rv;
}

bs_err
bs_compact_log(bs_txn *t, uint64_t now_ms, uint64_t retention_ms, int dry,
               bs_compact_stats *st, bs_errbuf *err)
{
    return compact_log(t, now_ms, retention_ms, dry, 0, st, err);
}

typedef struct run_ctx {
    const bs_core *c;
    bs_compact_stats *st;
    uint64_t max;
} run_ctx;

static bs_err
run_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    run_ctx *x = arg;

    return compact_log(t, bs_core_now(x->c), x->c->retention_ms, 0, x->max,
                       x->st, err);
}

bs_err
bs_compact_run_some(const bs_core *c, uint64_t max, bs_compact_stats *st,
                    bs_errbuf *err)
{
    run_ctx x = {c, st, max};

    return bs_store_write(c->store, run_txn, &x, err);
}

bs_err
bs_compact_run(const bs_core *c, int dry, bs_compact_stats *st, bs_errbuf *err)
{
    run_ctx x = {c, st, 0};
    bs_txn *t;
    bs_err rv;

    if (!dry)
        return bs_store_write(c->store, run_txn, &x, err);
    if ((rv = bs_store_read(c->store, &t, err)) != BS_OK)
        return rv;
    rv = bs_compact_log(t, bs_core_now(c), c->retention_ms, 1, st, err);
    bs_txn_abort(t);
    return rv;
}

/* ---- size ---- */

bs_err
bs_compact_logsize(bs_txn *t, bs_logsize *out)
{
    bs_streamtab tab;
    bs_err rv;

    memset(out, 0, sizeof *out);
    if ((rv = bs_txn_count(t, BS_DB_LOG, &out->sets)) != BS_OK ||
        (rv = bs_txn_bytes(t, BS_DB_LOG, &out->bytes)) != BS_OK ||
        (rv = get_u64(t, bs_mem(COUNT, 3), &out->compacted)) != BS_OK)
        return rv;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    /* the oldest set kept: the first of some stream */
    for (size_t i = 0; i < tab.n && rv == BS_OK; i++) {
        uint64_t first, lo, hi, created;
        bs_slice set;

        rv = bs_setlog_from(t, tab.v[i].idx, 0, &set, &first);
        if (rv == BS_ENOTFOUND) {
            rv = BS_OK;
            continue;
        }
        if (rv != BS_OK)
            break;
        /* read in place: status runs this for every stream */
        if (bs_changeset_stored_info(set, &lo, &hi, &created) != BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        if (out->oldest_ms == 0 || created < out->oldest_ms)
            out->oldest_ms = created;
    }
    bs_streams_fini(&tab);
    return rv;
}
