/*
 * purge.c - tombstone purge after every peer acknowledged it.
 */
#include "purge.h"

#include <string.h>

#include "hlc.h"
#include "movein.h"
#include "peers.h"
#include "record.h"
#include "streams.h"

int
bs_peer_stale(uint64_t last_ok_ms, uint64_t created_ms, uint64_t now_ms,
              uint64_t retention_ms)
{
    uint64_t since = last_ok_ms ? last_ok_ms : created_ms;

    return since + retention_ms < now_ms;
}

/* 1 when every live peer has acknowledged (stream key, seq). */
static int
all_acked(const bs_peer *peers, size_t n, const uint8_t *key, uint64_t seq,
          uint64_t now_ms, uint64_t retention_ms)
{
    for (size_t i = 0; i < n; i++) {
        if (bs_peer_stale(peers[i].last_ok_ms, peers[i].created_ms, now_ms,
                          retention_ms))
            continue;
        if (bs_vv_get(peers[i].acked, peers[i].nacked, key) < seq)
            return 0;
    }
    return 1;
}

int
bs_purge_all_acked(const bs_peer *peers, size_t n, const uint8_t *key,
                   uint64_t seq, uint64_t now_ms, uint64_t retention_ms)
{
    return all_acked(peers, n, key, seq, now_ms, retention_ms);
}

#define HORIZON_PREFIX  "pur:"
#define HORIZON_KEY_MAX (4 + BS_RECKEY_MAX)
#define HORIZON_LEN     (8 + BS_STREAM_KEY_LEN + 8)

/* Keep the version of the tombstone of record key rk being purged. */
/* The base a tombstone that is its own base implies outlives it, as a
 * "snp:" entry does (movein.h bs_movein_base_keep); key is coll \0 id. */
static bs_err
keep_base(bs_txn *t, const uint8_t *key, size_t klen, bs_slice v)
{
    char coll[BS_COLLECTION_MAX + 1], id[BS_ID_MAX + 1];
    const uint8_t *nul;
    size_t cn;

    if (!bs_record_own_base(v.p, v.n))
        return BS_OK;
    if ((nul = memchr(key, 0, klen)) == NULL ||
        (cn = (size_t)(nul - key)) > BS_COLLECTION_MAX ||
        klen - cn - 1 > BS_ID_MAX)
        return BS_ESTORE;
    memcpy(coll, key, cn);
    coll[cn] = '\0';
    memcpy(id, nul + 1, klen - cn - 1);
    id[klen - cn - 1] = '\0';
    return bs_movein_base_keep(t, coll, id, v);
}

static bs_err
keep_horizon(bs_txn *t, bs_slice rk, const bs_version *tomb,
             const uint8_t *skey)
{
    uint8_t k[HORIZON_KEY_MAX], v[HORIZON_LEN];

    if (rk.n > BS_RECKEY_MAX)
        return BS_ESTORE;
    memcpy(k, HORIZON_PREFIX, 4);
    memcpy(k + 4, rk.p, rk.n);
    bs_put_u64be(v, tomb->hlc);
    memcpy(v + 8, skey, BS_STREAM_KEY_LEN);
    bs_put_u64be(v + 8 + BS_STREAM_KEY_LEN, tomb->seq);
    return bs_txn_put(t, BS_DB_META, bs_mem(k, 4 + rk.n), bs_mem(v, sizeof v),
                      0, NULL);
}

bs_err
bs_purge_horizon(bs_txn *t, const char *coll, const char *id, int *found,
                 uint64_t *hlc, uint8_t *key, uint64_t *seq)
{
    uint8_t k[HORIZON_KEY_MAX];
    size_t kn = bs_record_key(k + 4, coll, id);
    bs_slice v;
    bs_err rv;

    memcpy(k, HORIZON_PREFIX, 4);
    *found = 0;
    rv = bs_txn_get(t, BS_DB_META, bs_mem(k, 4 + kn), &v);
    if (rv == BS_ENOTFOUND)
        return BS_OK;
    if (rv != BS_OK)
        return rv;
    if (v.n != HORIZON_LEN)
        return BS_ESTORE;
    *found = 1;
    *hlc = bs_get_u64be(v.p);
    memcpy(key, v.p + 8, BS_STREAM_KEY_LEN);
    *seq = bs_get_u64be(v.p + 8 + BS_STREAM_KEY_LEN);
    return BS_OK;
}

bs_err
bs_purge_tombstones(bs_txn *t, uint64_t now_ms, uint64_t retention_ms,
                    bs_purge_stats *st, bs_errbuf *err)
{
    bs_streamtab tab;
    bs_peer *peers = NULL;
    size_t np = 0;
    bs_cursor *c = NULL;
    bs_slice k, v;
    bs_arena a;
    bs_err rv;

    memset(st, 0, sizeof *st);
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    if ((rv = bs_peer_list(t, &peers, &np)) != BS_OK ||
        (rv = bs_cursor_open(t, BS_DB_RECORDS, &c)) != BS_OK)
        goto out;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;) {
        bs_record r;
        const bs_stream *s;

        bs_arena_reset(&a);
        if ((rv = bs_record_decode(&r, v.p, v.n, &a)) != BS_OK) {
            rv = bs_errf(err, BS_ESTORE,
                         "store is corrupt: a record does not decode; "
                         "restore from a backup");
            break;
        }
        if (!r.has_tomb || r.live || r.nfields > 0) {
            rv = bs_cursor_next(c, &k, &v);
            continue;
        }
        st->tombstones++;
        s = bs_streams_get(&tab, r.tomb.stream);
        if (BS_HLC_MS(r.tomb.hlc) + retention_ms > now_ms) {
            st->too_recent++;
        } else if (s == NULL || !all_acked(peers, np, s->key, r.tomb.seq,
                                           now_ms, retention_ms)) {
            st->held_by_peers++;
        } else {
            uint8_t key[BS_RECKEY_MAX];
            size_t klen = k.n < sizeof key ? k.n : sizeof key;

            memcpy(key, k.p, klen);
            if ((rv = keep_base(t, key, klen, v)) != BS_OK ||
                (rv = keep_horizon(t, bs_mem(key, klen), &r.tomb, s->key)) !=
                    BS_OK ||
                (rv = bs_cursor_del(c)) != BS_OK)
                break;
            st->purged++;
            /* Continue at the first key after the deleted one. */
            rv = bs_cursor_seek(c, bs_mem(key, klen), &k, &v);
            continue;
        }
        rv = bs_cursor_next(c, &k, &v);
    }
    if (rv == BS_ENOTFOUND)
        rv = BS_OK;
out:
    bs_cursor_close(c);
    bs_peer_list_free(peers, np);
    bs_arena_fini(&a);
    bs_streams_fini(&tab);
    return rv;
}

typedef struct purge_ctx {
    const bs_core *c;
    bs_purge_stats *st;
} purge_ctx;

static bs_err
purge_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    purge_ctx *p = arg;

    return bs_purge_tombstones(t, bs_core_now(p->c), p->c->retention_ms, p->st,
                               err);
}

bs_err
bs_purge_run(const bs_core *c, bs_purge_stats *st, bs_errbuf *err)
{
    purge_ctx p = {c, st};

    return bs_store_write(c->store, purge_txn, &p, err);
}
