/*
 * test_vv.c - version vectors and stream positions (replication/vv.h):
 * look-ups by the 48-byte stream key, where another incarnation of the
 * same origin is another stream (INV-1), and what covering means.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../../replication/vv.h"

static bs_pos
pos(uint8_t origin, uint8_t inc, uint64_t seq)
{
    bs_pos p;

    memset(p.origin, origin, BS_PK_LEN);
    memset(p.inc, inc, BS_INC_LEN);
    p.seq = seq;
    return p;
}

static void
key(uint8_t k[BS_STREAM_KEY_LEN], uint8_t origin, uint8_t inc)
{
    memset(k, origin, BS_PK_LEN);
    memset(k + BS_PK_LEN, inc, BS_INC_LEN);
}

Test(vv, key_is_origin_then_incarnation)
{
    bs_pos p = pos(0x11, 0x22, 5);
    uint8_t k[BS_STREAM_KEY_LEN];

    p.origin[0] = 0x01;
    p.inc[BS_INC_LEN - 1] = 0x99;
    bs_vv_key(&p, k);
    cr_assert_eq(memcmp(k, p.origin, BS_PK_LEN), 0);
    cr_assert_eq(memcmp(k + BS_PK_LEN, p.inc, BS_INC_LEN), 0);
}

Test(vv, an_empty_vector_holds_nothing)
{
    uint8_t k[BS_STREAM_KEY_LEN];

    key(k, 1, 1);
    cr_assert_null(bs_vv_find(NULL, 0, k));
    cr_assert_eq(bs_vv_get(NULL, 0, k), 0);
    cr_assert_not(bs_vv_covers(NULL, 0, k, 1));
}

Test(vv, find_and_get_match_the_whole_stream_key)
{
    bs_pos v[3] = {pos(1, 1, 10), pos(1, 2, 20), pos(2, 1, 30)};
    uint8_t k[BS_STREAM_KEY_LEN];

    key(k, 1, 2);
    cr_assert_eq(bs_vv_find(v, 3, k), &v[1]);
    cr_assert_eq(bs_vv_get(v, 3, k), 20);
    key(k, 2, 1);
    cr_assert_eq(bs_vv_get(v, 3, k), 30);
    /* Same origin, another incarnation: another stream (INV-1). */
    key(k, 1, 3);
    cr_assert_null(bs_vv_find(v, 3, k));
    cr_assert_eq(bs_vv_get(v, 3, k), 0);
    /* Same incarnation bytes, another origin. */
    key(k, 2, 2);
    cr_assert_null(bs_vv_find(v, 3, k));
    /* Only the first n entries are searched. */
    key(k, 2, 1);
    cr_assert_null(bs_vv_find(v, 2, k));
}

Test(vv, find_tells_keys_apart_by_their_last_byte)
{
    bs_pos v[1] = {pos(7, 7, 1)};
    uint8_t k[BS_STREAM_KEY_LEN];

    key(k, 7, 7);
    k[BS_STREAM_KEY_LEN - 1] ^= 1;
    cr_assert_null(bs_vv_find(v, 1, k));
    k[BS_STREAM_KEY_LEN - 1] ^= 1;
    k[BS_PK_LEN - 1] ^= 1;
    cr_assert_null(bs_vv_find(v, 1, k));
}

Test(vv, covers_up_to_the_position_and_not_beyond)
{
    bs_pos v[2] = {pos(1, 1, 10), pos(2, 2, 0)};
    uint8_t k[BS_STREAM_KEY_LEN];

    key(k, 1, 1);
    cr_assert(bs_vv_covers(v, 2, k, 1));
    cr_assert(bs_vv_covers(v, 2, k, 10));
    cr_assert_not(bs_vv_covers(v, 2, k, 11));
    cr_assert_not(bs_vv_covers(v, 2, k, UINT64_MAX));
    key(k, 2, 2);
    cr_assert_not(bs_vv_covers(v, 2, k, 1));
    key(k, 3, 3);
    cr_assert_not(bs_vv_covers(v, 2, k, 1));
}
