/*
 * records.c - record reads and write batches.
 */
#include "records.h"

#include <string.h>

#include "local.h"

bs_err
bs_records_check_coll(const char *coll, bs_errbuf *err)
{
    if (!bs_collection_valid(coll, 0))
        return bs_errf(err, BS_EINVAL,
                       "bad collection name \"%.64s\": 1 to %d of A-Z a-z 0-9 "
                       "_ . - starting with a letter or digit",
                       coll, BS_COLLECTION_MAX);
    return BS_OK;
}

bs_err
bs_records_check_id(const char *id, bs_errbuf *err)
{
    if (!bs_id_valid(id))
        return bs_errf(err, BS_EINVAL,
                       "bad record id: 1 to %d bytes of UTF-8 without control "
                       "characters",
                       BS_ID_MAX);
    return BS_OK;
}

static bs_err
corrupt(bs_errbuf *err, const uint8_t *key, size_t n)
{
    const uint8_t *nul = memchr(key, '\0', n);
    size_t cn = nul ? (size_t)(nul - key) : n;

    return bs_errf(err, BS_ESTORE,
                   "store is corrupt: record %.*s/%.*s does not decode; "
                   "restore from a backup",
                   (int)(cn > 64 ? 64 : cn), (const char *)key,
                   (int)(nul && n - cn - 1 < 256 ? n - cn - 1 : 0),
                   nul ? (const char *)nul + 1 : "");
}

bs_err
bs_records_get(bs_txn *t, const char *coll, const char *id, bs_arena *a,
               bs_record *r, bs_errbuf *err)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, coll, id);
    bs_slice v;
    bs_err rv;

    rv = bs_txn_get(t, BS_DB_RECORDS, bs_mem(key, klen), &v);
    if (rv == BS_OK && bs_record_decode(r, v.p, v.n, a) != BS_OK)
        return corrupt(err, key, klen);
    if (rv == BS_OK && !r->live)
        rv = BS_ENOTFOUND;
    if (rv == BS_ENOTFOUND)
        return bs_errf(err, rv, "%s/%s: not found", coll, id);
    return rv;
}

struct bs_records_iter {
    bs_txn *txn;
    bs_cursor *cur;
    uint8_t prefix[BS_RECKEY_MAX]; /* coll \0 [id prefix] */
    size_t plen, clen;             /* prefix length; coll \0 length */
    uint8_t after[BS_RECKEY_MAX];
    size_t alen; /* 0: no lower bound */
    int started;
    uint8_t prev[BS_RECKEY_MAX]; /* the last key seen, for the order check */
    size_t prevn;
    bs_arena a;
    bs_record r;
};

bs_err
bs_records_iter_open(bs_txn *t, const char *coll, const char *after,
                     const char *prefix, bs_records_iter **out)
{
    bs_records_iter *it = calloc(1, sizeof *it);
    size_t cl = strlen(coll), pl = prefix ? strlen(prefix) : 0;
    bs_err rv;

    if (it == NULL)
        return BS_ENOMEM;
    if (cl > BS_COLLECTION_MAX || pl > BS_ID_MAX ||
        (after && strlen(after) > BS_ID_MAX)) {
        free(it);
        return BS_EINVAL;
    }
    it->txn = t;
    memcpy(it->prefix, coll, cl + 1);
    memcpy(it->prefix + cl + 1, prefix ? prefix : "", pl);
    it->clen = cl + 1;
    it->plen = cl + 1 + pl;
    if (after != NULL)
        it->alen = bs_record_key(it->after, coll, after);
    bs_arena_init(&it->a);
    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &it->cur)) != BS_OK) {
        bs_arena_fini(&it->a);
        free(it);
        return rv;
    }
    *out = it;
    return BS_OK;
}

/* Position on the first candidate key, or step to the next one. */
static bs_err
step(bs_records_iter *it, bs_slice *k, bs_slice *v)
{
    bs_err rv;

    if (it->started)
        return bs_cursor_next(it->cur, k, v);
    it->started = 1;
    if (it->alen > 0 && memcmp(it->after, it->prefix, it->plen) >= 0) {
        rv = bs_cursor_seek(it->cur, bs_mem(it->after, it->alen), k, v);
        if (rv == BS_OK && k->n == it->alen &&
            memcmp(k->p, it->after, it->alen) == 0)
            rv = bs_cursor_next(it->cur, k, v); /* strictly after */
        return rv;
    }
    return bs_cursor_seek(it->cur, bs_mem(it->prefix, it->plen), k, v);
}

static int
key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int r = memcmp(a, b, an < bn ? an : bn);

    return r ? r : (an > bn) - (an < bn);
}

static bs_err
out_of_order(bs_errbuf *err, const bs_records_iter *it)
{
    return bs_errf(err, BS_ESTORE,
                   "store is corrupt: the records are out of order after "
                   "%.*s/%.*s (a damaged key); restore from a backup",
                   (int)(it->clen - 1), (const char *)it->prefix,
                   (int)(it->prevn > it->clen ? it->prevn - it->clen : 0),
                   (const char *)it->prev + it->clen);
}

/*
 * The key k ends the walk.  LMDB does not check keys: a damaged one in
 * the middle of the collection sorts past it and would end the walk early
 * and silently.  A key that ends it must sort after the last one of the
 * collection, name a collection, and sort before the key that follows it.
 */
static bs_err
check_end(bs_records_iter *it, bs_slice k, bs_errbuf *err)
{
    const uint8_t *nul = memchr(k.p, '\0', k.n);
    char coll[BS_COLLECTION_MAX + 1];
    bs_slice k2, v2;
    size_t cn = nul ? (size_t)(nul - k.p) : 0;
    bs_err rv;

    if (it->prevn > 0 && key_cmp(k.p, k.n, it->prev, it->prevn) <= 0)
        return out_of_order(err, it);
    memcpy(it->prev, k.p, k.n < sizeof it->prev ? k.n : sizeof it->prev);
    it->prevn = k.n < sizeof it->prev ? k.n : sizeof it->prev;
    if (nul != NULL && cn <= BS_COLLECTION_MAX) {
        memcpy(coll, k.p, cn);
        coll[cn] = '\0';
    }
    if (nul == NULL || cn > BS_COLLECTION_MAX || !bs_collection_valid(coll, 1))
        return out_of_order(err, it);
    rv = bs_cursor_next(it->cur, &k2, &v2);
    if (rv == BS_OK && key_cmp(k2.p, k2.n, it->prev, it->prevn) <= 0)
        return out_of_order(err, it);
    return rv == BS_OK || rv == BS_ENOTFOUND ? BS_ENOTFOUND : rv;
}

bs_err
bs_records_iter_next(bs_records_iter *it, const char **id, size_t *idlen,
                     const bs_record **r, bs_errbuf *err)
{
    bs_slice k, v;
    bs_err rv;

    while ((rv = step(it, &k, &v)) == BS_OK) {
        if (k.n < it->plen || memcmp(k.p, it->prefix, it->plen) != 0)
            return check_end(it, k, err); /* past the collection */
        if (it->prevn > 0 && key_cmp(k.p, k.n, it->prev, it->prevn) <= 0)
            return out_of_order(err, it);
        memcpy(it->prev, k.p, k.n < sizeof it->prev ? k.n : sizeof it->prev);
        it->prevn = k.n < sizeof it->prev ? k.n : sizeof it->prev;
        bs_arena_reset(&it->a);
        if (bs_record_decode(&it->r, v.p, v.n, &it->a) != BS_OK)
            return corrupt(err, k.p, k.n);
        if (!it->r.live)
            continue;
        *id = (const char *)k.p + it->clen;
        *idlen = k.n - it->clen;
        *r = &it->r;
        return BS_OK;
    }
    return rv;
}

void
bs_records_iter_close(bs_records_iter *it)
{
    if (it == NULL)
        return;
    bs_cursor_close(it->cur);
    bs_arena_fini(&it->a);
    free(it);
}

typedef struct batch {
    const bs_core *c;
    bs_write *w;
    size_t n;
    bs_write_stats st;
} batch;

static bs_err
write_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    batch *b = arg;
    bs_local l;
    bs_err rv;

    if ((rv = bs_local_begin(&l, t, b->c, err)) != BS_OK)
        goto out;
    for (size_t i = 0; i < b->n && rv == BS_OK; i++) {
        bs_write *w = &b->w[i];
        l.unique_force = (w->flags & BS_WRITE_FORCE) != 0;
        if (w->deleted)
            rv = bs_local_del(&l, w->coll, w->id, err);
        else
            rv = bs_local_put(&l, w->coll, w->id, w->fields, w->nfields, err);
    }
    if (rv == BS_OK)
        rv = bs_local_finish(&l, err);
    b->st.written = l.written;
    b->st.unchanged = l.unchanged;
    b->st.deleted = l.deleted;
out:
    bs_local_fini(&l);
    return rv;
}

bs_err
bs_records_write(const bs_core *c, bs_write *w, size_t n, bs_write_stats *st,
                 bs_errbuf *err)
{
    batch b = {c, w, n, {0, 0, 0}};
    bs_err rv;

    for (size_t i = 0; i < n; i++)
        if ((rv = bs_records_check_coll(w[i].coll, err)) != BS_OK ||
            (rv = bs_records_check_id(w[i].id, err)) != BS_OK)
            return rv;
    if ((rv = bs_store_write(c->store, write_txn, &b, err)) != BS_OK)
        return rv;
    if (st != NULL)
        *st = b.st;
    return BS_OK;
}
