/*
 * digest.c - BLAKE2b-256 over the canonical encoding of live records, in key
 * order (which every node shares, so no sorting is needed).
 *
 * A digest is compared across nodes to prove they hold the same data, so a
 * damaged store must fail it rather than hash what it reads: every record
 * must decode, and every key must name a collection and an ID and sort
 * after the one before (LMDB checks neither; verify.h checks the rest).
 */
#include "digest.h"

#include <string.h>

#include "record.h"

static void
h_u32(bs_hash_state *h, uint32_t v)
{
    uint8_t b[4];

    bs_put_u32be(b, v);
    bs_hash_update(h, b, 4);
}

static void
h_u64(bs_hash_state *h, uint64_t v)
{
    uint8_t b[8];

    bs_put_u64be(b, v);
    bs_hash_update(h, b, 8);
}

static void
h_bytes(bs_hash_state *h, const void *p, size_t n)
{
    h_u32(h, (uint32_t)n);
    bs_hash_update(h, p, n);
}

static void
h_record(bs_hash_state *h, bs_slice key, const bs_record *r)
{
    const uint8_t *nul = memchr(key.p, '\0', key.n);
    size_t cn = (size_t)(nul - key.p);

    h_bytes(h, key.p, cn);
    h_bytes(h, nul + 1, key.n - cn - 1);
    h_u32(h, (uint32_t)r->nfields);
    for (size_t i = 0; i < r->nfields; i++) {
        const bs_value *v = &r->fields[i].val;
        uint8_t type = v->type;
        uint64_t bits;

        h_bytes(h, r->fields[i].name, r->fields[i].namelen);
        bs_hash_update(h, &type, 1);
        if (type == BS_VINT) {
            h_u64(h, (uint64_t)v->i);
        } else if (type == BS_VREAL) {
            memcpy(&bits, &v->d, 8);
            h_u64(h, bits);
        } else if (type == BS_VTEXT) {
            h_bytes(h, v->s, v->len);
        }
    }
}

/* "store is corrupt: record COLL/ID WHAT; restore from a backup". */
static bs_err
corrupt(bs_errbuf *err, bs_slice key, const char *what)
{
    char lab[80];
    size_t j = 0;

    for (size_t i = 0; i < key.n && j + 1 < sizeof lab; i++)
        lab[j++] = key.p[i] == 0                         ? '/'
                   : key.p[i] < 0x20 || key.p[i] == 0x7f ? '?'
                                                         : (char)key.p[i];
    lab[j] = '\0';
    return bs_errf(err, BS_ESTORE,
                   "store is corrupt: record %s %s; restore from a backup", lab,
                   what);
}

/* 1 when key is collection \0 id with a valid collection name. */
static int
key_ok(bs_slice key)
{
    const uint8_t *nul = memchr(key.p, '\0', key.n);
    char coll[BS_COLLECTION_MAX + 1];
    size_t cn = nul ? (size_t)(nul - key.p) : 0;

    if (nul == NULL || cn > BS_COLLECTION_MAX || key.n - cn - 1 == 0 ||
        key.n - cn - 1 > BS_ID_MAX)
        return 0;
    memcpy(coll, key.p, cn);
    coll[cn] = '\0';
    return bs_collection_valid(coll, 1);
}

static int
key_after(bs_slice k, const uint8_t *prev, size_t prevn)
{
    int r = memcmp(k.p, prev, k.n < prevn ? k.n : prevn);

    return r > 0 || (r == 0 && k.n > prevn);
}

static int
wanted(bs_slice key, const char *const *coll, size_t ncoll)
{
    if (key.n == 0 || key.p[0] == '_')
        return 0;
    if (ncoll == 0)
        return 1;
    for (size_t i = 0; i < ncoll; i++) {
        size_t n = strlen(coll[i]);

        if (key.n > n && memcmp(key.p, coll[i], n) == 0 && key.p[n] == '\0')
            return 1;
    }
    return 0;
}

bs_err
bs_digest(bs_txn *t, const char *const *coll, size_t ncoll,
          uint8_t out[BS_HASH_LEN], uint64_t *nrecords, bs_errbuf *err)
{
    return bs_digest_where(t, coll, ncoll, NULL, NULL, out, nrecords, err);
}

bs_err
bs_digest_where(bs_txn *t, const char *const *coll, size_t ncoll,
                bs_digest_keep keep, void *ctx, uint8_t out[BS_HASH_LEN],
                uint64_t *nrecords, bs_errbuf *err)
{
    uint8_t prev[BS_RECKEY_MAX];
    size_t prevn = 0;
    bs_hash_state h;
    bs_arena a;
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    *nrecords = 0;
    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &c)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    bs_hash_init(&h);
    bs_hash_update(&h, "branchsync/digest/v1", 20);
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        bs_record r;

        if (!key_ok(k) || (prevn > 0 && !key_after(k, prev, prevn))) {
            rv = corrupt(err, k, "has a damaged key");
            break;
        }
        memcpy(prev, k.p, k.n);
        prevn = k.n;
        if (!wanted(k, coll, ncoll))
            continue;
        bs_arena_reset(&a);
        if ((rv = bs_record_decode(&r, v.p, v.n, &a)) != BS_OK) {
            rv = rv == BS_ENOMEM ? rv : corrupt(err, k, "does not decode");
            break;
        }
        if (!r.live || (keep != NULL && !keep(ctx, k, &r)))
            continue;
        h_record(&h, k, &r);
        (*nrecords)++;
    }
    bs_cursor_close(c);
    bs_arena_fini(&a);
    if (rv != BS_ENOTFOUND)
        return rv;
    bs_hash_final(&h, out);
    return BS_OK;
}
