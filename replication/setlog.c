/*
 * setlog.c - keys and values of the change-set log and the held table.
 */
#include "setlog.h"

#include <string.h>

#include "changeset.h"

#define LOG_KEY  12
#define HELD_KEY 13
#define HELD_HDR 13 /* reason u32 | since u64 | note length u8 */

static bs_slice
log_key(uint8_t key[LOG_KEY], uint32_t stream, uint64_t first)
{
    bs_put_u32be(key, stream);
    bs_put_u64be(key + 4, first);
    return bs_mem(key, LOG_KEY);
}

bs_err
bs_setlog_get(bs_txn *t, uint32_t stream, uint64_t first, bs_slice *set)
{
    uint8_t key[LOG_KEY];

    return bs_txn_get(t, BS_DB_LOG, log_key(key, stream, first), set);
}

/* Position c at the entry of stream with the greatest first seq <= seq. */
static bs_err
seek_le(bs_cursor *c, uint32_t stream, uint64_t seq, bs_slice *k, bs_slice *v)
{
    uint8_t key[LOG_KEY];
    bs_err rv;

    if (seq == UINT64_MAX)
        rv = bs_cursor_seek(c, log_key(key, stream + 1, 0), k, v);
    else
        rv = bs_cursor_seek(c, log_key(key, stream, seq + 1), k, v);
    rv = rv == BS_OK ? bs_cursor_prev(c, k, v) : bs_cursor_last(c, k, v);
    if (rv == BS_OK && (k->n != LOG_KEY || bs_get_u32be(k->p) != stream))
        rv = BS_ENOTFOUND;
    return rv;
}

bs_err
bs_setlog_find(bs_txn *t, uint32_t stream, uint64_t seq, bs_slice *set,
               uint64_t *first)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_LOG, &c)) != BS_OK)
        return rv;
    if ((rv = seek_le(c, stream, seq, &k, &v)) == BS_OK) {
        *set = v;
        *first = bs_get_u64be(k.p + 4);
    }
    bs_cursor_close(c);
    return rv;
}

bs_err
bs_setlog_next(bs_txn *t, uint32_t stream, uint64_t from, uint64_t upto,
               bs_slice *set, uint64_t *last)
{
    uint8_t key[LOG_KEY];
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if (from >= upto)
        return BS_ENOTFOUND;
    if ((rv = bs_cursor_open(t, BS_DB_LOG, &c)) != BS_OK)
        return rv;
    /* Start at the set holding from + 1, which may begin before it. */
    rv = seek_le(c, stream, from + 1, &k, &v);
    if (rv == BS_ENOTFOUND)
        rv = bs_cursor_seek(c, log_key(key, stream, 0), &k, &v);
    for (; rv == BS_OK; rv = bs_cursor_next(c, &k, &v)) {
        uint64_t first;

        if (k.n != LOG_KEY || bs_get_u32be(k.p) != stream ||
            bs_get_u64be(k.p + 4) > upto) {
            rv = BS_ENOTFOUND; /* past the stream or what may be sent */
            break;
        }
        if ((rv = bs_changeset_stored_range(v, &first, last)) != BS_OK)
            break;
        if (*last > from) {
            *set = v;
            break;
        }
    }
    bs_cursor_close(c);
    return rv;
}

bs_err
bs_setlog_from(bs_txn *t, uint32_t stream, uint64_t from, bs_slice *set,
               uint64_t *first)
{
    uint8_t key[LOG_KEY];
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_LOG, &c)) != BS_OK)
        return rv;
    rv = bs_cursor_seek(c, log_key(key, stream, from), &k, &v);
    if (rv == BS_OK && (k.n != LOG_KEY || bs_get_u32be(k.p) != stream))
        rv = BS_ENOTFOUND;
    if (rv == BS_OK) {
        *set = v;
        *first = bs_get_u64be(k.p + 4);
    }
    bs_cursor_close(c);
    return rv;
}

/* ---- where a set keeps its summary (`sla:`) ---- */

#define SLA_KEY (4 + LOG_KEY)

static bs_slice
sla_key(uint8_t key[SLA_KEY], uint32_t stream, uint64_t first)
{
    memcpy(key, "sla:", 4);
    log_key(key + 4, stream, first);
    return bs_mem(key, SLA_KEY);
}

/* The summary field (5) at off in set, checked: it ends where the last
 * field, the 64-byte signature (6), begins, and the set ends there. */
static int
summary_at(bs_slice set, size_t off, bs_slice *sum, bs_slice *ssig)
{
    const uint8_t *p = set.p + off, *end = set.p + set.n;
    uint64_t len;

    if (off >= set.n || *p++ != 0x2a || !bs_varint_get(&p, end, &len) ||
        len > (uint64_t)(end - p) || (size_t)(end - p) - len != 2 + 64 ||
        p[len] != 0x32 || p[len + 1] != 64)
        return 0;
    *sum = (bs_slice){p, (size_t)len};
    *ssig = (bs_slice){p + len + 2, 64};
    return 1;
}

/* Note where set (just stored at (stream, first)) keeps its summary, or
 * forget any note: only a set with a header, its summary last and
 * nothing left out is noted. */
static bs_err
note_summary(bs_txn *t, uint32_t stream, uint64_t first, bs_slice set)
{
    const uint8_t *p = set.p, *end = set.p + set.n;
    uint8_t key[SLA_KEY], val[8];
    size_t off = 0;
    int found = 0, omits = 0;
    bs_slice sum, ssig;
    bs_err rv;

    while (p < end && set.p[0] == 0x0a) {
        const uint8_t *start = p;
        uint64_t tag, len;
        if (!bs_varint_get(&p, end, &tag) || (tag & 7) != 2 ||
            !bs_varint_get(&p, end, &len) || len > (uint64_t)(end - p))
            break;
        p += len;
        if (tag == 0x22)
            omits = 1;
        else if (tag == 0x2a) {
            off = (size_t)(start - set.p);
            found = 1;
        }
    }
    sla_key(key, stream, first);
    if (!found || omits || !summary_at(set, off, &sum, &ssig) ||
        set.n > UINT32_MAX) {
        rv = bs_txn_del(t, BS_DB_META, bs_mem(key, SLA_KEY));
        return rv == BS_ENOTFOUND ? BS_OK : rv;
    }
    bs_put_u32be(val, (uint32_t)off);
    bs_put_u32be(val + 4, (uint32_t)set.n);
    return bs_txn_put(t, BS_DB_META, bs_mem(key, SLA_KEY), bs_mem(val, 8), 0,
                      NULL);
}

bs_err
bs_setlog_summary(bs_txn *t, uint32_t stream, uint64_t first, bs_slice set,
                  bs_slice *sum, bs_slice *ssig)
{
    uint8_t key[SLA_KEY];
    bs_slice v;
    bs_err rv;

    rv = bs_txn_get(t, BS_DB_META, sla_key(key, stream, first), &v);
    if (rv != BS_OK)
        return rv;
    /* (the note is this node's own; a set it does not fit is read whole) */
    if (v.n != 8 || bs_get_u32be(v.p + 4) != set.n ||
        !summary_at(set, bs_get_u32be(v.p), sum, ssig))
        return BS_ENOTFOUND;
    return BS_OK;
}

bs_err
bs_setlog_written(bs_txn *t, uint32_t stream, uint64_t first, bs_slice set)
{
    return note_summary(t, stream, first, set);
}

bs_err
bs_setlog_put(bs_txn *t, uint32_t stream, uint64_t first, bs_slice set)
{
    uint8_t key[LOG_KEY];
    bs_err rv = bs_txn_put(t, BS_DB_LOG, log_key(key, stream, first), set,
                           BS_PUT_NOOVERWRITE, NULL);

    if (rv == BS_EEXIST)
        return BS_OK; /* the older entry stays, and its note */
    return rv == BS_OK ? note_summary(t, stream, first, set) : rv;
}

bs_err
bs_setlog_del(bs_txn *t, uint32_t stream, uint64_t first)
{
    uint8_t key[LOG_KEY], sk[SLA_KEY];
    bs_err rv = bs_txn_del(t, BS_DB_LOG, log_key(key, stream, first));

    if (rv != BS_OK && rv != BS_ENOTFOUND)
        return rv;
    rv = bs_txn_del(t, BS_DB_META, sla_key(sk, stream, first));
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_setlog_reserve(bs_txn *t, uint32_t stream, uint64_t first, size_t n,
                  uint8_t **dst)
{
    uint8_t key[LOG_KEY];

    return bs_txn_reserve(t, BS_DB_LOG, log_key(key, stream, first), n, 0, dst,
                          NULL);
}

bs_err
bs_setlog_count(bs_txn *t, uint64_t *n)
{
    return bs_txn_count(t, BS_DB_LOG, n);
}

/* ---- held ---- */

static bs_slice
held_key(uint8_t key[HELD_KEY], bs_held_kind kind, uint32_t stream,
         uint64_t first)
{
    key[0] = (uint8_t)kind;
    bs_put_u32be(key + 1, stream);
    bs_put_u64be(key + 5, first);
    return bs_mem(key, HELD_KEY);
}

static size_t
note_len(const bs_held *h)
{
    return strnlen(h->note, BS_HELD_NOTE_MAX);
}

static void
encode(const bs_held *h, uint8_t *p)
{
    size_t nl = note_len(h);

    bs_put_u32be(p, h->reason);
    bs_put_u64be(p + 4, h->since_ms);
    p[12] = (uint8_t)nl;
    memcpy(p + HELD_HDR, h->note, nl);
    memcpy(p + HELD_HDR + nl, h->set.p, h->set.n);
}

bs_err
bs_held_encode(const bs_held *h, uint8_t **out, size_t *n)
{
    *n = HELD_HDR + note_len(h) + h->set.n;
    if ((*out = malloc(*n)) == NULL)
        return BS_ENOMEM;
    encode(h, *out);
    return BS_OK;
}

bs_err
bs_held_put(bs_txn *t, const bs_held *h)
{
    uint8_t key[HELD_KEY], *dst;
    bs_err rv;

    rv = bs_txn_reserve(t, BS_DB_HELD,
                        held_key(key, h->kind, h->stream, h->first),
                        HELD_HDR + note_len(h) + h->set.n, 0, &dst, NULL);
    if (rv == BS_OK)
        encode(h, dst);
    return rv;
}

bs_err
bs_held_del(bs_txn *t, bs_held_kind kind, uint32_t stream, uint64_t first)
{
    uint8_t key[HELD_KEY];
    bs_err rv = bs_txn_del(t, BS_DB_HELD, held_key(key, kind, stream, first));

    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
decode(bs_slice k, bs_slice v, bs_held *out)
{
    size_t nl;

    if (k.n != HELD_KEY || v.n < HELD_HDR || v.p[12] > BS_HELD_NOTE_MAX ||
        v.n < HELD_HDR + (size_t)v.p[12])
        return BS_ESTORE;
    memset(out, 0, sizeof *out);
    out->kind = (bs_held_kind)k.p[0];
    out->stream = bs_get_u32be(k.p + 1);
    out->first = bs_get_u64be(k.p + 5);
    out->reason = bs_get_u32be(v.p);
    out->since_ms = bs_get_u64be(v.p + 4);
    nl = v.p[12];
    memcpy(out->note, v.p + HELD_HDR, nl);
    out->set = bs_mem(v.p + HELD_HDR + nl, v.n - HELD_HDR - nl);
    return BS_OK;
}

bs_err
bs_held_get(bs_txn *t, bs_held_kind kind, uint32_t stream, uint64_t first,
            bs_held *out)
{
    uint8_t key[HELD_KEY];
    bs_slice k = held_key(key, kind, stream, first), v;
    bs_err rv;

    if ((rv = bs_txn_get(t, BS_DB_HELD, k, &v)) != BS_OK)
        return rv;
    return decode(k, v, out);
}

bs_err
bs_held_next(bs_txn *t, bs_held_kind kind, uint32_t stream, uint64_t first,
             int only_stream, bs_held *out)
{
    uint8_t key[HELD_KEY + 1];
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    held_key(key, kind, stream, first);
    key[HELD_KEY] = 0; /* strictly after (stream, first) */
    if ((rv = bs_cursor_open(t, BS_DB_HELD, &c)) != BS_OK)
        return rv;
    if (stream == 0 && first == 0)
        rv = bs_cursor_seek(c, bs_mem(key, 1), &k, &v);
    else
        rv = bs_cursor_seek(c, bs_mem(key, HELD_KEY + 1), &k, &v);
    if (rv == BS_OK &&
        (k.n < 1 || k.p[0] != (uint8_t)kind ||
         (only_stream && (k.n < 5 || bs_get_u32be(k.p + 1) != stream))))
        rv = BS_ENOTFOUND;
    if (rv == BS_OK)
        rv = decode(k, v, out);
    bs_cursor_close(c);
    return rv;
}

bs_err
bs_held_count(bs_txn *t, bs_held_kind kind, uint32_t stream, uint64_t limit,
              uint64_t *n)
{
    uint8_t key[HELD_KEY];
    size_t plen = stream ? 5 : 1;
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    *n = 0;
    held_key(key, kind, stream, 0);
    if ((rv = bs_cursor_open(t, BS_DB_HELD, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(c, bs_mem(key, plen), &k, &v);
         rv == BS_OK && k.n >= plen && memcmp(k.p, key, plen) == 0 &&
         (limit == 0 || *n < limit);
         rv = bs_cursor_next(c, &k, &v))
        (*n)++;
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND || rv == BS_OK ? BS_OK : rv;
}
