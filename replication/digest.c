/*
 * digest.c - BLAKE2b-256 over the canonical encoding of live records, in key
 * order (which every node shares, so no sorting is needed).
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

        if (!wanted(k, coll, ncoll))
            continue;
        bs_arena_reset(&a);
        if ((rv = bs_record_decode(&r, v.p, v.n, &a)) != BS_OK) {
            rv = bs_errf(err, rv, "corrupt record in store");
            break;
        }
        if (!r.live)
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
