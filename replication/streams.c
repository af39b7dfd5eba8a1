/*
 * streams.c - stream table persistence.
 *
 * BS_DB_STREAMS: u32be idx -> key(48) | u64le seq | hash(32) | u32le flags |
 * note(96).  BS_DB_STREAMIX: key(48) -> u32be idx.
 */
#include "streams.h"

#include <string.h>

#define KEY_LEN   (BS_PK_LEN + BS_INC_LEN)
#define ENTRY_LEN (KEY_LEN + 8 + BS_HASH_LEN + 4 + 96)

static bs_err
tab_reserve(bs_streamtab *tab, size_t n)
{
    bs_stream *v;
    size_t cap;

    if (n <= tab->cap)
        return BS_OK;
    cap = tab->cap ? tab->cap * 2 : 16;
    while (cap < n)
        cap *= 2;
    if ((v = realloc(tab->v, cap * sizeof *v)) == NULL)
        return BS_ENOMEM;
    tab->v = v;
    tab->cap = cap;
    return BS_OK;
}

/* The slot of a key's hash: keys are public keys and random
 * incarnations, so their first bytes are hash enough. */
static size_t
key_slot(const uint8_t *key, size_t hcap)
{
    uint64_t a, b;

    memcpy(&a, key, 8);
    memcpy(&b, key + BS_PK_LEN, 8);
    return (size_t)((a ^ (b * 0x9E3779B97F4A7C15ull)) & (hcap - 1));
}

static void
index_put(bs_streamtab *tab, size_t pos)
{
    size_t slot = key_slot(tab->v[pos].key, tab->hcap);

    while (tab->hix[slot] != 0)
        slot = (slot + 1) & (tab->hcap - 1);
    tab->hix[slot] = (uint32_t)pos + 1;
}

/* Index entry pos (just added), growing the index when it is half full. */
static bs_err
index_add(bs_streamtab *tab, size_t pos)
{
    if (2 * (pos + 1) > tab->hcap) {
        size_t cap = tab->hcap ? tab->hcap * 2 : 64;
        uint32_t *h;

        while (cap < 2 * (pos + 1))
            cap *= 2;
        if ((h = calloc(cap, sizeof *h)) == NULL)
            return BS_ENOMEM;
        free(tab->hix);
        tab->hix = h;
        tab->hcap = cap;
        for (size_t i = 0; i < pos; i++)
            index_put(tab, i);
    }
    index_put(tab, pos);
    return BS_OK;
}

static bs_err
decode_entry(bs_stream *s, uint32_t idx, bs_slice v)
{
    if (v.n != ENTRY_LEN)
        return BS_ESTORE;
    memset(s, 0, sizeof *s);
    s->idx = idx;
    memcpy(s->key, v.p, KEY_LEN);
    memcpy(&s->seq, v.p + KEY_LEN, 8);
    memcpy(s->last_hash, v.p + KEY_LEN + 8, BS_HASH_LEN);
    memcpy(&s->flags, v.p + KEY_LEN + 8 + BS_HASH_LEN, 4);
    memcpy(s->note, v.p + KEY_LEN + 8 + BS_HASH_LEN + 4, 95);
    return BS_OK;
}

bs_err
bs_streams_load(bs_txn *t, bs_streamtab *tab)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    memset(tab, 0, sizeof *tab);
    if ((rv = bs_cursor_open(t, BS_DB_STREAMS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        uint32_t idx;

        if (k.n != 4 || (idx = bs_get_u32be(k.p)) != tab->n + 1) {
            rv = BS_ESTORE;
            break;
        }
        if ((rv = tab_reserve(tab, tab->n + 1)) != BS_OK)
            break;
        if ((rv = decode_entry(&tab->v[tab->n], idx, v)) != BS_OK ||
            (rv = index_add(tab, tab->n)) != BS_OK)
            break;
        tab->n++;
    }
    bs_cursor_close(c);
    if (rv == BS_ENOTFOUND)
        return BS_OK;
    bs_streams_fini(tab);
    return rv;
}

bs_err
bs_streams_refresh(bs_txn *t, bs_streamtab *tab, uint32_t idx)
{
    uint8_t key[4];
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if (idx >= 1 && idx <= tab->n) {
        bs_put_u32be(key, idx);
        if ((rv = bs_txn_get(t, BS_DB_STREAMS, bs_mem(key, 4), &v)) != BS_OK ||
            (rv = decode_entry(&tab->v[idx - 1], idx, v)) != BS_OK)
            return rv == BS_ENOTFOUND ? BS_ESTORE : rv;
    }
    /* the streams added since: their indexes follow */
    if ((rv = bs_cursor_open(t, BS_DB_STREAMS, &c)) != BS_OK)
        return rv;
    bs_put_u32be(key, (uint32_t)tab->n + 1);
    for (rv = bs_cursor_seek(c, bs_mem(key, 4), &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        uint32_t i;

        if (k.n != 4 || (i = bs_get_u32be(k.p)) != tab->n + 1) {
            rv = BS_ESTORE;
            break;
        }
        if ((rv = tab_reserve(tab, tab->n + 1)) != BS_OK ||
            (rv = decode_entry(&tab->v[tab->n], i, v)) != BS_OK ||
            (rv = index_add(tab, tab->n)) != BS_OK)
            break;
        tab->n++;
    }
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

void
bs_streams_fini(bs_streamtab *tab)
{
    free(tab->v);
    free(tab->hix);
    memset(tab, 0, sizeof *tab);
}

bs_stream *
bs_streams_find(bs_streamtab *tab, const uint8_t *origin, const uint8_t *inc)
{
    uint8_t key[KEY_LEN];

    if (tab->n == 0)
        return NULL;
    memcpy(key, origin, BS_PK_LEN);
    memcpy(key + BS_PK_LEN, inc, BS_INC_LEN);
    for (size_t slot = key_slot(key, tab->hcap); tab->hix[slot] != 0;
         slot = (slot + 1) & (tab->hcap - 1)) {
        bs_stream *s = &tab->v[tab->hix[slot] - 1];
        if (memcmp(s->key, key, KEY_LEN) == 0)
            return s;
    }
    return NULL;
}

bs_stream *
bs_streams_get(bs_streamtab *tab, uint32_t idx)
{
    if (idx == 0 || idx > tab->n)
        return NULL;
    return &tab->v[idx - 1];
}

bs_err
bs_streams_save(bs_txn *t, const bs_stream *s)
{
    uint8_t k[4], v[ENTRY_LEN];

    bs_put_u32be(k, s->idx);
    memcpy(v, s->key, KEY_LEN);
    memcpy(v + KEY_LEN, &s->seq, 8);
    memcpy(v + KEY_LEN + 8, s->last_hash, BS_HASH_LEN);
    memcpy(v + KEY_LEN + 8 + BS_HASH_LEN, &s->flags, 4);
    memset(v + KEY_LEN + 8 + BS_HASH_LEN + 4, 0, 96);
    memcpy(v + KEY_LEN + 8 + BS_HASH_LEN + 4, s->note, strnlen(s->note, 95));
    return bs_txn_put(t, BS_DB_STREAMS, bs_mem(k, 4), bs_mem(v, sizeof v), 0,
                      NULL);
}

bs_err
bs_streams_add(bs_txn *t, bs_streamtab *tab, const uint8_t *origin,
               const uint8_t *inc, bs_stream **out)
{
    bs_stream *s;
    uint8_t ix[4];
    bs_err rv;

    if ((rv = tab_reserve(tab, tab->n + 1)) != BS_OK)
        return rv;
    s = &tab->v[tab->n];
    memset(s, 0, sizeof *s);
    s->idx = (uint32_t)tab->n + 1;
    memcpy(s->key, origin, BS_PK_LEN);
    memcpy(s->key + BS_PK_LEN, inc, BS_INC_LEN);
    bs_put_u32be(ix, s->idx);
    if ((rv = bs_txn_put(t, BS_DB_STREAMIX, bs_mem(s->key, KEY_LEN),
                         bs_mem(ix, 4), BS_PUT_NOOVERWRITE, NULL)) != BS_OK)
        return rv;
    if ((rv = bs_streams_save(t, s)) != BS_OK ||
        (rv = index_add(tab, tab->n)) != BS_OK)
        return rv;
    tab->n++;
    *out = s;
    return BS_OK;
}

bs_err
bs_streams_vector(const bs_streamtab *tab, bs_pos **out, size_t *n)
{
    bs_pos *v = calloc(tab->n + 1, sizeof *v);
    size_t k = 0;

    if (v == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < tab->n; i++) {
        if (tab->v[i].seq == 0)
            continue;
        memcpy(v[k].origin, tab->v[i].key, BS_PK_LEN);
        memcpy(v[k].inc, tab->v[i].key + BS_PK_LEN, BS_INC_LEN);
        v[k].seq = tab->v[i].seq;
        k++;
    }
    *out = v;
    *n = k;
    return BS_OK;
}

bs_err
bs_streams_add_private(bs_streamtab *tab, const uint8_t *origin,
                       const uint8_t *inc, bs_stream **out)
{
    bs_stream *s;
    bs_err rv;

    if ((rv = tab_reserve(tab, tab->n + 1)) != BS_OK)
        return rv;
    s = &tab->v[tab->n];
    memset(s, 0, sizeof *s);
    memcpy(s->key, origin, BS_PK_LEN);
    memcpy(s->key + BS_PK_LEN, inc, BS_INC_LEN);
    if ((rv = index_add(tab, tab->n)) != BS_OK)
        return rv;
    tab->n++;
    *out = s;
    return BS_OK;
}

const uint8_t *
bs_streams_key(void *ctx, uint32_t idx)
{
    bs_stream *s = bs_streams_get(ctx, idx);

    BS_ASSERT(s != NULL); /* records only name streams we hold */
    return s->key;
}
