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

#define DAY_MS 86400000ull

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
 * `retention` (bs_purge_run).  The limit is this purge's only: the node's
 * exchanges keep the configured one (90 days), which also refuses a peer
 * silent for longer (X7). */
static bs_purge_stats
purge(bst_node *t, uint64_t now, uint64_t retention)
{
    uint64_t keep = t->core.retention_ms;
    bs_purge_stats st;
    bs_errbuf err = {{0}};
    bs_err rv;

    cr_assert_geq(now, clock_ms.ms, "the clock does not go back");
    clock_ms.ms = now;
    t->core.retention_ms = retention;
    rv = bs_purge_run(&t->core, &st, &err);
    t->core.retention_ms = keep;
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

/*
 * docs/reliability.md P7, issue 8 item 17.  The divergence it prevents: a
 * branch offline past the retention limit edits a record; the hub deletes
 * it later and purges the tombstone (the silent branch no longer holds
 * purges back).  When the branch came back, its stale edit used to bring
 * the record back at the hub while the branch applied the delete: digests
 * differed for good and every exchange succeeded.  Now both nodes refuse
 * to exchange (X7), each judging by its own record of the other, with
 * BS_ESTALE (exit 1) and a message naming the remedy.
 */
static void
back_after_the_retention_limit(void)
{
    bs_errbuf err = {{0}};
    bs_purge_stats st;

    write(&hub, "a", 0);
    xfer(&hub, &br); /* the branch joins and has the record */
    xfer(&br, &hub); /* the hub hears from it */
    clock_ms.ms += DAY_MS;
    cr_assert_eq(bst_put(&br, "items", "a", "{\"v\":\"branch\"}", &err), BS_OK);
    clock_ms.ms += DAY_MS;
    write(&hub, "a", 1); /* after the branch's edit: the delete wins */
    st = purge(&hub, clock_ms.ms + 100 * DAY_MS, 90 * DAY_MS);
    cr_assert_eq(st.purged, 1, "the silent branch no longer holds it back");
}

static void
assert_stale(bs_err rv, const char *msg, const char *name, const char *what)
{
    cr_assert_eq(rv, BS_ESTALE, "%s: %s (%s)", what, bs_strerror(rv), msg);
    cr_assert_eq(bs_err_exit_code(rv), 1, "not bad input: exit 1");
    cr_assert(strstr(msg, name) != NULL, "%s: names %s: %s", what, name, msg);
    cr_assert(strstr(msg, "retention limit (90 days)") != NULL, "%s: %s", what,
              msg);
    cr_assert(strstr(msg, "peer seed") != NULL, "%s: the remedy: %s", what,
              msg);
}

/* The record is still gone at the hub and still edited at the branch:
 * nothing of the stale exchange was taken either way. */
static void
assert_nothing_taken(void)
{
    char *a = bst_get(&hub, "items", "a"), *b = bst_get(&br, "items", "a");

    cr_assert_null(a, "the hub brought the purged record back: %s", a);
    cr_assert_not_null(b);
    cr_assert(strstr(b, "branch") != NULL, "the branch took the delete: %s", b);
    free(b);
}

Test(purge, p7_a_node_back_after_the_retention_limit_is_refused_by_file)
{
    char path[512];
    bs_errbuf err = {{0}};
    bs_err rv;

    back_after_the_retention_limit();
    /* Each way, at both ends: the sender writes no file for it ... */
    rv = bst_carry(&br, &hub, NULL, &err);
    assert_stale(rv, err.msg, "head", "export at the branch");
    cr_assert(strstr(err.msg, "this node needs a full resync") != NULL, "%s",
              err.msg);
    memset(&err, 0, sizeof err);
    rv = bst_carry(&hub, &br, NULL, &err);
    assert_stale(rv, err.msg, "tallinn", "export at the hub");
    cr_assert(
        strstr(err.msg,
               "seed it again with `branchsync peer seed tallinn` here") !=
            NULL,
        "%s", err.msg);
    /* ... and the receiver refuses one written without the check. */
    snprintf(path, sizeof path, "%s/stale.bsx", root);
    br.core.retention_ms = 0;
    cr_assert_eq(bst_export(&br, "head", path, &err), BS_OK, "%s", err.msg);
    br.core.retention_ms = 90 * DAY_MS;
    memset(&err, 0, sizeof err);
    rv = bst_import(&hub, path, NULL, &err);
    assert_stale(rv, err.msg, "tallinn", "import at the hub");
    hub.core.retention_ms = 0;
    cr_assert_eq(bst_export(&hub, "tallinn", path, &err), BS_OK, "%s", err.msg);
    hub.core.retention_ms = 90 * DAY_MS;
    memset(&err, 0, sizeof err);
    rv = bst_import(&br, path, NULL, &err);
    assert_stale(rv, err.msg, "head", "import at the branch");
    assert_nothing_taken();
}

Test(purge, p7_a_node_back_after_the_retention_limit_is_refused_by_session)
{
    bst_sync_result r;
    bs_err rv;

    back_after_the_retention_limit();
    /* The branch calls: the hub refuses its hello and tells it why. */
    rv = bst_sync(&br, &hub, NULL, NULL, &r);
    cr_assert_neq(rv, BS_OK);
    cr_assert_eq(r.b, BS_SESSION_FAILED);
    assert_stale(r.err_b, r.msg_b, "tallinn", "the hub answering");
    assert_stale(r.err_a, r.msg_a, "tallinn", "the branch calling");
    /* The hub calls: the branch refuses by its own record of the hub. */
    rv = bst_sync(&hub, &br, NULL, NULL, &r);
    cr_assert_neq(rv, BS_OK);
    assert_stale(r.err_b, r.msg_b, "head", "the branch answering");
    assert_stale(r.err_a, r.msg_a, "head", "the hub calling");
    /* A hub with no limit answers; the calling branch refuses its hello. */
    hub.core.retention_ms = 0;
    rv = bst_sync(&br, &hub, NULL, NULL, &r);
    hub.core.retention_ms = 90 * DAY_MS;
    cr_assert_neq(rv, BS_OK);
    cr_assert_eq(r.a, BS_SESSION_FAILED);
    assert_stale(r.err_a, r.msg_a, "head", "the branch checking the answer");
    assert_nothing_taken();
}
