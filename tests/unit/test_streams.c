/*
 * test_streams.c - the stream table (replication/streams.h): indexes from
 * 1 in order of first sight, look-ups by key and by index, what is saved
 * and loaded, private entries for dry runs, the version vector, and a
 * damaged table read as BS_ESTORE.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/damage.h"
#include "../lib/fixture.h"
#include "../../replication/streams.h"

static char root[128];
static bst_node node;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "streams");
    bst_node_new(&node, root, "head", BS_ROLE_HUB, NULL);
}

static void
teardown(void)
{
    bst_node_free(&node);
    bst_rmtree(root);
    bst_leak_check("test_streams");
}

TestSuite(streams, .init = setup, .fini = teardown, .timeout = 60);

/* Origin and incarnation made of one byte each. */
static void
key(uint8_t origin[BS_PK_LEN], uint8_t inc[BS_INC_LEN], uint8_t o, uint8_t i)
{
    memset(origin, o, BS_PK_LEN);
    memset(inc, i, BS_INC_LEN);
}

static void
load(bs_streamtab *tab)
{
    bs_errbuf err = {{0}};
    bs_txn *t;

    bst_ok(bs_store_read(node.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_streams_load(t, tab), BS_OK);
    bs_txn_abort(t);
}

static bs_err
load_rv(bs_streamtab *tab)
{
    bs_errbuf err = {{0}};
    bs_txn *t;
    bs_err rv;

    bst_ok(bs_store_read(node.n->store, &t, &err), &err, "read");
    rv = bs_streams_load(t, tab);
    bs_txn_abort(t);
    return rv;
}

/* Add streams (o, i) for each pair in keys[], then save changes to the
 * last one (seq, flags, note). */
typedef struct add_job {
    const uint8_t (*pairs)[2];
    size_t n;
    uint64_t seq;
    uint32_t flags;
    const char *note;
    uint32_t idx[8];
} add_job;

static bs_err
add_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    add_job *j = arg;
    bs_streamtab tab;
    bs_stream *s = NULL;
    bs_err rv;

    (void)err;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    for (size_t i = 0; i < j->n && rv == BS_OK; i++) {
        uint8_t o[BS_PK_LEN], inc[BS_INC_LEN];
        key(o, inc, j->pairs[i][0], j->pairs[i][1]);
        if ((rv = bs_streams_add(t, &tab, o, inc, &s)) == BS_OK)
            j->idx[i] = s->idx;
    }
    if (rv == BS_OK && s != NULL) {
        s->seq = j->seq;
        s->flags = j->flags;
        memset(s->last_hash, 0xee, BS_HASH_LEN);
        snprintf(s->note, sizeof s->note, "%s", j->note ? j->note : "");
        rv = bs_streams_save(t, s);
    }
    bs_streams_fini(&tab);
    return rv;
}

static bs_err
add(add_job *j)
{
    bs_errbuf err = {{0}};

    return bs_store_write(node.n->store, add_txn, j, &err);
}

Test(streams, a_new_node_holds_its_own_empty_stream)
{
    bs_meta m = bst_meta(&node);
    bs_streamtab tab;
    bs_stream *s;

    load(&tab);
    cr_assert_eq(tab.n, 1);
    s = bs_streams_get(&tab, 1);
    cr_assert_not_null(s);
    cr_assert_eq(s->idx, m.stream);
    cr_assert_eq(s->seq, 0);
    cr_assert_eq(memcmp(s->key, m.pk, BS_PK_LEN), 0);
    cr_assert_eq(memcmp(s->key + BS_PK_LEN, m.inc, BS_INC_LEN), 0);
    cr_assert_eq(bs_streams_find(&tab, m.pk, m.inc), s);
    bs_streams_fini(&tab);
}

Test(streams, indexes_count_from_one_in_order_of_first_sight)
{
    static const uint8_t pairs[][2] = {{1, 1}, {1, 2}, {2, 1}};
    add_job j = {pairs, 3, 7, 0, NULL, {0}};
    uint8_t o[BS_PK_LEN], inc[BS_INC_LEN];
    bs_streamtab tab;

    cr_assert_eq(add(&j), BS_OK);
    cr_assert_eq(j.idx[0], 2);
    cr_assert_eq(j.idx[1], 3);
    cr_assert_eq(j.idx[2], 4);
    load(&tab);
    cr_assert_eq(tab.n, 4);
    key(o, inc, 1, 2); /* same origin, other incarnation: its own stream */
    cr_assert_eq(bs_streams_find(&tab, o, inc)->idx, 3);
    key(o, inc, 2, 2);
    cr_assert_null(bs_streams_find(&tab, o, inc));
    cr_assert_null(bs_streams_get(&tab, 0));
    cr_assert_null(bs_streams_get(&tab, 5));
    cr_assert_eq(bs_streams_get(&tab, 4)->idx, 4);
    key(o, inc, 2, 1);
    cr_assert_eq(memcmp(bs_streams_key(&tab, 4), bs_streams_get(&tab, 4)->key,
                        BS_STREAM_KEY_LEN),
                 0);
    bs_streams_fini(&tab);
}

Test(streams, what_is_saved_is_loaded)
{
    static const uint8_t pairs[][2] = {{9, 9}};
    char note[200];
    add_job j = {pairs, 1, 123456789012ull, BS_STREAM_QUARANTINED, NULL, {0}};
    bs_streamtab tab;
    bs_stream *s;

    /* A note longer than the table keeps is cut to 95 bytes. */
    memset(note, 'n', sizeof note - 1);
    note[sizeof note - 1] = '\0';
    j.note = note;
    cr_assert_eq(add(&j), BS_OK);
    load(&tab);
    s = bs_streams_get(&tab, j.idx[0]);
    cr_assert_eq(s->seq, 123456789012ull);
    cr_assert_eq(s->flags, BS_STREAM_QUARANTINED);
    for (int i = 0; i < BS_HASH_LEN; i++)
        cr_assert_eq(s->last_hash[i], 0xee);
    cr_assert_eq(strlen(s->note), 95);
    cr_assert_eq(s->dry_held, 0);
    cr_assert_eq(s->dry_unheld, 0);
    bs_streams_fini(&tab);
}

Test(streams, adding_a_stream_twice_is_refused)
{
    static const uint8_t pairs[][2] = {{1, 1}, {1, 1}};
    add_job j = {pairs, 2, 0, 0, NULL, {0}};
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];

    bst_fingerprint(&node, f0);
    cr_assert_eq(add(&j), BS_EEXIST);
    bst_fingerprint(&node, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0);
}

Test(streams, private_entries_stay_in_memory)
{
    uint8_t o[BS_PK_LEN], inc[BS_INC_LEN];
    bs_streamtab tab, again;
    bs_stream *s;

    load(&tab);
    key(o, inc, 3, 3);
    cr_assert_eq(bs_streams_add_private(&tab, o, inc, &s), BS_OK);
    cr_assert_eq(s->idx, 0);
    cr_assert_eq(tab.n, 2);
    cr_assert_eq(bs_streams_find(&tab, o, inc), s);
    load(&again);
    cr_assert_eq(again.n, 1);
    bs_streams_fini(&again);
    bs_streams_fini(&tab);
}

Test(streams, the_vector_lists_streams_holding_anything)
{
    static const uint8_t pairs[][2] = {{1, 1}, {2, 2}};
    add_job j = {pairs, 2, 5, 0, NULL, {0}};
    uint8_t o[BS_PK_LEN], inc[BS_INC_LEN], k[BS_STREAM_KEY_LEN];
    bs_streamtab tab;
    bs_pos *v;
    size_t n;

    cr_assert_eq(add(&j), BS_OK); /* (2,2) at 5; (1,1) and our own at 0 */
    load(&tab);
    cr_assert_eq(bs_streams_vector(&tab, &v, &n), BS_OK);
    cr_assert_eq(n, 1);
    key(o, inc, 2, 2);
    memcpy(k, o, BS_PK_LEN);
    memcpy(k + BS_PK_LEN, inc, BS_INC_LEN);
    cr_assert_eq(bs_vv_get(v, n, k), 5);
    free(v);
    bs_streams_fini(&tab);
}

/* Write raw bytes under a stream-table key. */
/* Store len zero bytes as the entry of stream index idx. */
static void
write_raw(uint32_t idx, size_t len)
{
    uint8_t k[4], v[256];

    memset(v, 0, sizeof v);
    bs_put_u32be(k, idx);
    bst_damage(node.n->store, BST_STREAMS, bs_mem(k, 4), bs_mem(v, len));
}

Test(streams, a_table_with_a_gap_in_its_indexes_is_damaged)
{
    bs_streamtab tab;

    write_raw(3, 48 + 8 + 32 + 4 + 96); /* index 2 is missing */
    cr_assert_eq(load_rv(&tab), BS_ESTORE);
}

Test(streams, an_entry_of_the_wrong_size_is_damaged)
{
    bs_streamtab tab;

    write_raw(2, 100);
    cr_assert_eq(load_rv(&tab), BS_ESTORE);
}
