/*
 * changes.c - the change index (changes.h).
 *
 * Key: u64be seq.  Value: u8 flags (bit 0: deleted) | u32be stream |
 * u64be hlc | u16be collection length | collection | id (the rest).
 */
#include "changes.h"

#include <string.h>

#include "unique.h"

#define HEAD 15 /* flags, stream, hlc, collection length */

bs_err
bs_changes_last(bs_txn *t, uint64_t *seq)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_CHANGES, &c)) != BS_OK)
        return rv;
    rv = bs_cursor_last(c, &k, &v);
    if (rv == BS_OK && k.n != 8)
        rv = BS_ESTORE;
    *seq = rv == BS_OK ? bs_get_u64be(k.p) : 0;
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
append(bs_txn *t, const char *coll, const char *id, int deleted,
       uint32_t stream, uint64_t hlc)
{
    size_t cn = strlen(coll), in = strlen(id);
    uint64_t *next = bs_txn_memo(t); /* 0: not looked up in t yet */
    uint8_t key[8], *dst;
    bs_err rv;

    if (cn > 0xffff)
        return BS_EINVAL;
    if (*next == 0) {
        if ((rv = bs_changes_last(t, next)) != BS_OK)
            return rv;
        ++*next;
    }
    bs_put_u64be(key, *next);
    if ((rv = bs_txn_reserve(t, BS_DB_CHANGES, bs_mem(key, 8), HEAD + cn + in,
                             BS_PUT_APPEND, &dst, NULL)) != BS_OK)
        return rv;
    ++*next;
    dst[0] = deleted ? 1 : 0;
    bs_put_u32be(dst + 1, stream);
    bs_put_u64be(dst + 5, hlc);
    dst[13] = (uint8_t)(cn >> 8);
    dst[14] = (uint8_t)cn;
    memcpy(dst + HEAD, coll, cn);
    memcpy(dst + HEAD + cn, id, in);
    return BS_OK;
}

bs_err
bs_changes_note(bs_txn *t, const char *coll, const char *id, int deleted,
                const bs_version *v)
{
    bs_err rv = append(t, coll, id, deleted, v->stream, v->hlc);

    return rv == BS_OK ? bs_unique_note(t, coll, id) : rv;
}

bs_err
bs_changes_note_record(bs_txn *t, const char *coll, const char *id,
                       const bs_record *r)
{
    const bs_version *v = NULL;
    bs_err rv;

    if (r != NULL) {
        if (r->has_alive && (r->live || !r->has_tomb))
            v = &r->alive;
        else if (r->has_tomb)
            v = &r->tomb;
    }
    if (v == NULL)
        rv = append(t, coll, id, 1, BS_CHANGES_NO_STREAM, 0);
    else
        rv = append(t, coll, id, !r->live, v->stream, v->hlc);
    return rv == BS_OK ? bs_unique_note(t, coll, id) : rv;
}

bs_err
bs_changes_decode(bs_slice key, bs_slice val, bs_change_entry *out)
{
    size_t cn;

    if (key.n != 8 || val.n < HEAD || val.p[0] > 1)
        return BS_ESTORE;
    cn = (size_t)val.p[13] << 8 | val.p[14];
    if (val.n - HEAD < cn || val.n - HEAD - cn == 0 || cn == 0)
        return BS_ESTORE;
    out->seq = bs_get_u64be(key.p);
    out->deleted = val.p[0];
    out->stream = bs_get_u32be(val.p + 1);
    out->hlc = bs_get_u64be(val.p + 5);
    out->coll = (const char *)val.p + HEAD;
    out->colllen = cn;
    out->id = out->coll + cn;
    out->idlen = val.n - HEAD - cn;
    if (out->seq == 0 || memchr(out->coll, 0, cn) != NULL ||
        memchr(out->id, 0, out->idlen) != NULL)
        return BS_ESTORE;
    return BS_OK;
}

bs_err
bs_changes_scan(bs_txn *t, uint64_t since, const char *coll, uint64_t limit,
                bs_changes_fn fn, void *arg, uint64_t *last)
{
    size_t cn = coll != NULL ? strlen(coll) : 0;
    uint64_t called = 0;
    uint8_t key[8];
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    *last = since;
    if (since == UINT64_MAX)
        return BS_OK;
    if ((rv = bs_cursor_open(t, BS_DB_CHANGES, &c)) != BS_OK)
        return rv;
    bs_put_u64be(key, since + 1);
    for (rv = bs_cursor_seek(c, bs_mem(key, 8), &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        bs_change_entry e;

        if ((rv = bs_changes_decode(k, v, &e)) != BS_OK)
            break;
        *last = e.seq;
        if (coll != NULL && (e.colllen != cn || memcmp(e.coll, coll, cn) != 0))
            continue;
        called++;
        if (fn(&e, arg) != 0 || (limit != 0 && called == limit)) {
            rv = BS_ENOTFOUND;
            break;
        }
    }
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}
