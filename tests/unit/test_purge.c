/*
 * test_purge.c - tombstones are dropped only after every paired peer has
 * acknowledged the delete and it is older than the retention limit
 * (replication/purge.h, INV-7); a peer silent past the limit stops holding
 * purges back.  Nodes, pairing and exchanges come from the test fixture
 * (tests/lib/fixture.h); the wall clock is a fake one that the tests move
 * ahead instead of passing a time to the purge.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../replication/purge.h"
#include "../lib/fixture.h"

static char root[128];
static bst_node hub, br;
/* The nodes' wall clock: one millisecond per reading, moved ahead by the
 * tests to purge "later". */
static bst_clock clock_ms = {1767225600000ull, 1};

static void
write(bst_node *t, const char *id, int del)
{
    bs_errbuf err = {{0}};
    bs_err rv = del ? bst_del(t, "items", id, &err)
                    : bst_put(t, "items", id, "{\"v\":\"x\"}", &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

static void
xfer(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

/* Purge at t as if its clock read `now`, with retention limit
 * `retention` (bs_purge_run). */
static bs_purge_stats
purge(bst_node *t, uint64_t now, uint64_t retention)
{
    bs_purge_stats st;
    bs_errbuf err = {{0}};
    bs_err rv;

    cr_assert_geq(now, clock_ms.ms, "the clock does not go back");
    clock_ms.ms = now;
    t->core.retention_ms = retention;
    rv = bs_purge_run(&t->core, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    return st;
}

static uint64_t
now_ms(void)
{
    return clock_ms.ms;
}

static void
setup(void)
{
    bs_clock c = bst_clock_of(&clock_ms);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "purge");
    bst_node_new(&hub, root, "head", BS_ROLE_HUB, &c);
    bst_node_new(&br, root, "tallinn", BS_ROLE_BRANCH, &c);
    bst_pair2(&hub, &br);
}

static void
teardown(void)
{
    bst_node_free(&hub);
    bst_node_free(&br);
    bst_rmtree(root);
}

TestSuite(purge, .init = setup, .fini = teardown, .timeout = 60);

Test(purge, inv7_only_after_every_peer_acknowledged)
{
    uint64_t hour = 3600000, t1;
    bs_purge_stats st;

    write(&hub, "a", 0);
    write(&hub, "b", 0);
    xfer(&hub, &br);
    write(&hub, "a", 1); /* the delete: the branch has not seen it */
    t1 = now_ms();
    /* The branch is heard from after the delete, but without it. */
    xfer(&br, &hub);

    st = purge(&hub, t1 + hour / 2, hour);
    cr_assert_eq(st.tombstones, 1);
    cr_assert_eq(st.purged, 0);
    cr_assert_eq(st.too_recent, 1, "younger than the retention limit");

    st = purge(&hub, t1 + hour, hour);
    cr_assert_eq(st.purged, 0, "the branch has not acknowledged the delete");
    cr_assert_eq(st.held_by_peers, 1);

    xfer(&hub, &br);
    xfer(&br, &hub); /* now its acknowledgement covers it */
    cr_assert_geq(now_ms(), t1 + hour);
    st = purge(&hub, now_ms(), hour);
    cr_assert_eq(st.purged, 1, "acknowledged by every peer and old enough");
    st = purge(&hub, now_ms(), hour);
    cr_assert_eq(st.tombstones, 0, "gone");
}

Test(purge, inv7_a_peer_silent_past_the_retention_no_longer_holds_purges)
{
    uint64_t day = 86400000, t1;
    bs_purge_stats st;

    write(&hub, "a", 0);
    write(&hub, "a", 1);
    t1 = now_ms();
    xfer(&br, &hub); /* heard from, without the delete */
    st = purge(&hub, t1 + 2 * day, 2 * day);
    cr_assert_eq(st.purged, 0);
    cr_assert_eq(st.held_by_peers, 1);
    /* Silent for longer than the limit: it needs a full resync (status
     * says so) and no longer holds the purge back. */
    st = purge(&hub, t1 + 5 * day, 2 * day);
    cr_assert_eq(st.purged, 1);
}
