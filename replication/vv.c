/*
 * vv.c - version vector look-ups.
 */
#include "vv.h"

#include <stdlib.h>
#include <string.h>

const bs_pos *
bs_vv_find(const bs_pos *v, size_t n, const uint8_t *key)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(v[i].origin, key, BS_PK_LEN) == 0 &&
            memcmp(v[i].inc, key + BS_PK_LEN, BS_INC_LEN) == 0)
            return &v[i];
    return NULL;
}

uint64_t
bs_vv_get(const bs_pos *v, size_t n, const uint8_t *key)
{
    const bs_pos *p = bs_vv_find(v, n, key);

    return p ? p->seq : 0;
}

int
bs_vv_covers(const bs_pos *v, size_t n, const uint8_t *key, uint64_t seq)
{
    const bs_pos *p = bs_vv_find(v, n, key);

    return p != NULL && p->seq >= seq;
}

void
bs_vv_key(const bs_pos *p, uint8_t key[BS_STREAM_KEY_LEN])
{
    memcpy(key, p->origin, BS_PK_LEN);
    memcpy(key + BS_PK_LEN, p->inc, BS_INC_LEN);
}

/* Keys are public keys and random incarnations: their first bytes are
 * hash enough. */
static size_t
vv_slot(const uint8_t *origin, const uint8_t *inc, size_t cap)
{
    uint64_t a, b;

    memcpy(&a, origin, 8);
    memcpy(&b, inc, 8);
    return (size_t)((a ^ (b * 0x9E3779B97F4A7C15ull)) & (cap - 1));
}

bs_err
bs_vv_index_init(bs_vv_index *x, const bs_pos *v, size_t n)
{
    memset(x, 0, sizeof *x);
    x->v = v;
    x->n = n;
    if (n < 16)
        return BS_OK; /* a short vector: linear look-ups */
    for (x->cap = 32; x->cap < 2 * n; x->cap *= 2)
        ;
    if ((x->slot = calloc(x->cap, sizeof *x->slot)) == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t s = vv_slot(v[i].origin, v[i].inc, x->cap);
        int dup = 0;

        for (; x->slot[s] != 0; s = (s + 1) & (x->cap - 1)) {
            const bs_pos *o = &v[x->slot[s] - 1];
            if (memcmp(o->origin, v[i].origin, BS_PK_LEN) == 0 &&
                memcmp(o->inc, v[i].inc, BS_INC_LEN) == 0) {
                dup = 1; /* the first entry wins */
                break;
            }
        }
        if (!dup)
            x->slot[s] = (uint32_t)i + 1;
    }
    return BS_OK;
}

uint64_t
bs_vv_index_get(const bs_vv_index *x, const uint8_t *key)
{
    if (x->slot == NULL)
        return bs_vv_get(x->v, x->n, key);
    for (size_t s = vv_slot(key, key + BS_PK_LEN, x->cap); x->slot[s] != 0;
         s = (s + 1) & (x->cap - 1)) {
        const bs_pos *o = &x->v[x->slot[s] - 1];
        if (memcmp(o->origin, key, BS_PK_LEN) == 0 &&
            memcmp(o->inc, key + BS_PK_LEN, BS_INC_LEN) == 0)
            return o->seq;
    }
    return 0;
}

void
bs_vv_index_fini(bs_vv_index *x)
{
    free(x->slot);
    memset(x, 0, sizeof *x);
}
