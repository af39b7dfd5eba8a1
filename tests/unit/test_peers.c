/*
 * test_peers.c - the peer table's look-ups (replication/peers.h): a peer
 * found by key reads only that peer, and the list without vectors gives
 * every peer as the full list does, less what each holds.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/peers.h"

static char root[128];
static bst_node head, tallinn, riga;

static void
setup(void)
{
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "peers");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, NULL);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, NULL);
    bst_pair2(&head, &tallinn);
    bst_pair2(&head, &riga);
    /* the hub hears from both: their vectors are recorded */
    bst_ok(bst_put(&tallinn, "items", "t1", "{\"n\":1}", &err), &err, "put");
    bst_ok(bst_carry(&tallinn, &head, NULL, &err), &err, "carry");
    bst_ok(bst_carry(&riga, &head, NULL, &err), &err, "carry");
    bst_ok(bst_carry(&head, &riga, NULL, &err), &err, "carry");
    bst_ok(bst_carry(&riga, &head, NULL, &err), &err, "carry");
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_peers");
}

TestSuite(peers, .init = setup, .fini = teardown, .timeout = 60);

Test(peers, a_peer_is_found_by_its_key_with_its_vector)
{
    bs_meta mr = bst_meta(&riga), mh = bst_meta(&head);
    bs_peer p;
    bs_txn *t;

    cr_assert_eq(bs_store_read(head.n->store, &t, NULL), BS_OK);
    cr_assert_eq(bs_peer_find_pk(t, mr.pk, &p), BS_OK);
    cr_assert_str_eq(p.name, "riga");
    cr_assert_gt(p.nacked, 0, "riga's vector was recorded");
    bs_peer_fini(&p);
    cr_assert_eq(bs_peer_find_pk(t, mh.pk, &p), BS_ENOTFOUND,
                 "the hub is not its own peer");
    bs_txn_abort(t);
}

Test(peers, the_list_without_vectors_is_the_list_less_the_vectors)
{
    bs_peer *full, *bare;
    size_t nf, nb;
    bs_txn *t;

    cr_assert_eq(bs_store_read(head.n->store, &t, NULL), BS_OK);
    cr_assert_eq(bs_peer_list(t, &full, &nf), BS_OK);
    cr_assert_eq(bs_peer_list_bare(t, &bare, &nb), BS_OK);
    bs_txn_abort(t);
    cr_assert_eq(nf, 2);
    cr_assert_eq(nb, nf);
    for (size_t i = 0; i < nf; i++) {
        cr_assert_str_eq(bare[i].name, full[i].name);
        cr_assert_eq(memcmp(bare[i].pk, full[i].pk, BS_PK_LEN), 0);
        cr_assert_gt(full[i].nacked, 0, "%s: a vector", full[i].name);
        cr_assert_eq(bare[i].nacked, 0, "%s: none", bare[i].name);
        cr_assert_eq(bare[i].last_ok_ms, full[i].last_ok_ms);
        cr_assert_eq(bare[i].recv_no, full[i].recv_no);
        cr_assert_eq(bare[i].clock_at_ms, full[i].clock_at_ms);
        cr_assert_eq(bare[i].clock_lo_ms, full[i].clock_lo_ms);
        cr_assert_eq(bare[i].clock_hi_ms, full[i].clock_hi_ms);
        cr_assert_eq(bare[i].created_ms, full[i].created_ms);
    }
    bs_peer_list_free(full, nf);
    bs_peer_list_free(bare, nb);
}
