/*
 * xlog.c - exchange history (ExchangeEntry records).
 */
#include "xlog.h"

#include <string.h>

#include "meta.h"
#include "peers.h"
#include "storage.pb-c.h"

#define META_SEQ "xlog.seq"

static bs_err
prune(bs_txn *t)
{
    uint64_t n;
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_txn_count(t, BS_DB_XLOG, &n)) != BS_OK || n <= BS_XLOG_MAX)
        return rv;
    if ((rv = bs_cursor_open(t, BS_DB_XLOG, &c)) != BS_OK)
        return rv;
    while (n-- > BS_XLOG_MAX && (rv = bs_cursor_first(c, &k, &v)) == BS_OK)
        if ((rv = bs_cursor_del(c)) != BS_OK)
            break;
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
note_peer(bs_txn *t, const bs_xlog_entry *e)
{
    bs_peer p;
    bs_err rv = bs_peer_get(t, e->peer, &p);

    if (rv == BS_ENOTFOUND)
        return BS_OK;
    if (rv != BS_OK)
        return rv;
    if (e->error[0]) {
        p.last_err_ms = e->time_ms;
        snprintf(p.last_error, sizeof p.last_error, "%.*s",
                 (int)sizeof p.last_error - 1, e->error);
    } else {
        p.last_ok_ms = e->time_ms;
        p.last_error[0] = '\0';
        p.sent_changes += e->sets_sent;
    }
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    return rv;
}

bs_err
bs_xlog_put(bs_txn *t, const bs_xlog_entry *e)
{
    Bs__ExchangeEntry m = BS__EXCHANGE_ENTRY__INIT;
    uint8_t key[16], *dst;
    uint64_t n;
    size_t len;
    bs_err rv;

    /* Keys sort by time, then by a counter that only grows, so entries of
     * the same millisecond (or after the clock stepped back) never meet. */
    if ((rv = bs_meta_get_u64(t, META_SEQ, &n)) != BS_OK ||
        (rv = bs_meta_put_u64(t, META_SEQ, n + 1)) != BS_OK)
        return rv;
    bs_put_u64be(key, e->time_ms);
    bs_put_u64be(key + 8, n);
    m.time_ms = e->time_ms;
    m.duration_ms = e->duration_ms;
    m.peer = (char *)e->peer;
    m.via = (char *)e->via;
    m.direction = (char *)e->direction;
    m.sets_sent = e->sets_sent;
    m.sets_received = e->sets_received;
    m.changes = e->changes;
    m.conflicts = e->conflicts;
    m.bytes = e->bytes;
    m.error = (char *)e->error;
    len = bs__exchange_entry__get_packed_size(&m);
    rv = bs_txn_reserve(t, BS_DB_XLOG, bs_mem(key, 16), len, 0, &dst, NULL);
    if (rv == BS_OK)
        bs__exchange_entry__pack(&m, dst);
    return rv;
}

bs_err
bs_xlog_add(bs_txn *t, const bs_xlog_entry *e)
{
    bs_err rv;

    if ((rv = bs_xlog_put(t, e)) == BS_OK && (rv = note_peer(t, e)) == BS_OK)
        rv = prune(t);
    return rv;
}

static bs_err
decode(bs_slice v, bs_xlog_entry *e)
{
    Bs__ExchangeEntry *m = bs__exchange_entry__unpack(NULL, v.n, v.p);

    if (m == NULL)
        return BS_ESTORE;
    memset(e, 0, sizeof *e);
    e->time_ms = m->time_ms;
    e->duration_ms = m->duration_ms;
    snprintf(e->peer, sizeof e->peer, "%s", m->peer);
    snprintf(e->via, sizeof e->via, "%s", m->via);
    snprintf(e->direction, sizeof e->direction, "%s", m->direction);
    e->sets_sent = m->sets_sent;
    e->sets_received = m->sets_received;
    e->changes = m->changes;
    e->conflicts = m->conflicts;
    e->bytes = m->bytes;
    snprintf(e->error, sizeof e->error, "%s", m->error);
    bs__exchange_entry__free_unpacked(m, NULL);
    return BS_OK;
}

bs_err
bs_xlog_list(bs_txn *t, const char *peer, size_t limit, bs_xlog_entry **out,
             size_t *n)
{
    bs_xlog_entry *v = calloc(limit ? limit : 1, sizeof *v);
    size_t cnt = 0;
    bs_cursor *c;
    bs_slice k, val;
    bs_err rv;

    if (v == NULL)
        return BS_ENOMEM;
    if ((rv = bs_cursor_open(t, BS_DB_XLOG, &c)) != BS_OK) {
        free(v);
        return rv;
    }
    /* Newest first while collecting, then reversed. */
    for (rv = bs_cursor_last(c, &k, &val); rv == BS_OK && cnt < limit;
         rv = bs_cursor_prev(c, &k, &val)) {
        if ((rv = decode(val, &v[cnt])) != BS_OK)
            break;
        if (peer == NULL || strcmp(v[cnt].peer, peer) == 0)
            cnt++;
    }
    bs_cursor_close(c);
    if (rv != BS_OK && rv != BS_ENOTFOUND) {
        free(v);
        return rv;
    }
    for (size_t i = 0; i < cnt / 2; i++) {
        bs_xlog_entry x = v[i];
        v[i] = v[cnt - 1 - i];
        v[cnt - 1 - i] = x;
    }
    *out = v;
    *n = cnt;
    return BS_OK;
}
