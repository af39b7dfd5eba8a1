/*
 * vv.c - version vector look-ups.
 */
#include "vv.h"

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
