/*
 * test_reseed.c - a branch back after the retention limit is seeded again
 * by its hub (issue 12 item 4; replication/reseed.h; docs/design.md "Back
 * after the retention limit").
 *
 * The scenario: a branch offline past the retention limit edits a
 * record that the hub deletes and purges meanwhile.  Exchanges with it are
 * refused (X7) until the hub's admin runs `peer seed` for it; the next
 * exchange, file or session, seeds it again.  Afterwards hub and branch
 * hold the same data, the purged record is back nowhere, the branch's own
 * newer edits of records that still exist survive (and travel as ordinary
 * changes), its older ones lose to the hub's, and exchanges go on from
 * the log.  The wall clock is a fake one the tests move ahead.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../replication/compact.h"
#include "../../replication/movein.h"
#include "../../replication/peers.h"
#include "../../replication/purge.h"
#include "../../replication/reseed.h"
#include "../../replication/verify.h"
#include "../lib/fixture.h"

#define DAY_MS 86400000ull

static char root[128];
static bst_node hub, br;
static bst_clock clock_ms = {1767225600000ull, 1};

static void
put(bst_node *t, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = json ? bst_put(t, "items", id, json, &err)
                     : bst_del(t, "items", id, &err);

    cr_assert_eq(rv, BS_OK, "%s %s: %s", t->name, id, bs_errmsg(&err, rv));
}

static void
carry(bst_node *from, bst_node *to, bs_xstats *st)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, st, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

static void
setup(void)
{
    bs_clock c = bst_clock_of(&clock_ms);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    clock_ms.ms = 1767225600000ull;
    bst_root(root, sizeof root, "reseed");
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
    bst_leak_check("test_reseed");
}

TestSuite(reseed, .init = setup, .fini = teardown, .timeout = 60);

/*
 * The scenario.  Records: a (the branch edits it, the hub deletes
 * and purges it), b (the branch adds a field), c (the branch edits it,
 * nobody else), d (the branch edits it, the hub later), f (the branch
 * deletes it), n (the branch creates it while stale: the hub never had it),
 * z (the branch creates and deletes it while stale).  Every version the
 * branch holds of a is its own unsent edit, as for n: only the hub's set
 * in the branch's log tells a record the hub knew from a new one.
 */
static void
scenario(void)
{
    uint64_t keep = hub.core.retention_ms;
    bs_purge_stats st;
    bs_errbuf err = {{0}};

    put(&hub, "a", "{\"v\":\"x\"}");
    put(&hub, "b", "{\"v\":\"x\"}");
    put(&hub, "c", "{\"v\":\"x\"}");
    put(&hub, "d", "{\"v\":\"x\"}");
    put(&hub, "f", "{\"v\":\"x\"}");
    carry(&hub, &br, NULL); /* the branch joins and has them */
    carry(&br, &hub, NULL); /* the hub hears from it: its last exchange */
    clock_ms.ms += DAY_MS;  /* the branch goes offline and edits */
    put(&br, "a", "{\"v\":\"branch\"}");
    put(&br, "b", "{\"w\":\"branch\"}");
    put(&br, "c", "{\"v\":\"branch\"}");
    put(&br, "d", "{\"v\":\"branch\"}");
    put(&br, "f", NULL);
    put(&br, "n", "{\"v\":\"new\",\"w\":\"branch\"}");
    put(&br, "z", "{\"v\":\"gone\"}");
    put(&br, "z", NULL);
    clock_ms.ms += DAY_MS; /* the hub, later */
    put(&hub, "a", NULL);
    put(&hub, "d", "{\"v\":\"hub\"}");
    clock_ms.ms += 100 * DAY_MS;
    hub.core.retention_ms = 90 * DAY_MS;
    cr_assert_eq(bs_purge_run(&hub.core, &st, &err), BS_OK, "%s", err.msg);
    hub.core.retention_ms = keep;
    cr_assert_eq(st.purged, 1, "the silent branch no longer holds it back");
}

static void
assert_stale(bs_err rv, const char *msg, const char *what)
{
    cr_assert_eq(rv, BS_ESTALE, "%s: %s (%s)", what, bs_strerror(rv), msg);
    cr_assert_eq(bs_err_exit_code(rv), 1);
    cr_assert(strstr(msg, "peer seed") != NULL, "%s: the remedy: %s", what,
              msg);
}

static bs_err
mark_for_seed(bs_txn *t, void *arg, bs_errbuf *err)
{
    (void)err;
    return bs_movein_seed_peer(t, arg);
}

/* `branchsync peer seed tallinn` at the hub. */
static void
peer_seed(void)
{
    bs_meta mb = bst_meta(&br);
    bs_errbuf err = {{0}};

    bst_ok(bs_store_write(hub.n->store, mark_for_seed, mb.pk, &err), &err,
           "peer seed");
}

static char *
field(bst_node *t, const char *id)
{
    return bst_get(t, "items", id);
}

static void
assert_holds(bst_node *t, const char *id, const char *want)
{
    char *s = field(t, id);

    if (want == NULL)
        cr_assert_null(s, "%s holds %s: %s", t->name, id, s);
    else {
        cr_assert_not_null(s, "%s lost %s", t->name, id);
        cr_assert(strstr(s, want) != NULL, "%s's %s: %s, not %s", t->name, id,
                  s, want);
    }
    free(s);
}

static int
stale(bst_node *t, const char *peer)
{
    bs_errbuf err = {{0}};
    bs_txn *tx;
    bs_peer p;
    int s;

    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    cr_assert_eq(bs_peer_get(tx, peer, &p), BS_OK);
    s = bs_peer_stale(p.last_ok_ms, p.created_ms, bs_core_now(&t->core),
                      t->core.retention_ms);
    bs_peer_fini(&p);
    bs_txn_abort(tx);
    return s;
}

static void
assert_converged(const char *what)
{
    uint8_t dh[BS_HASH_LEN], db[BS_HASH_LEN];
    uint64_t nh, nb;
    int on = 1;
    bs_errbuf err = {{0}};
    bs_txn *t;

    bst_digest(&hub, dh, &nh);
    bst_digest(&br, db, &nb);
    cr_assert(memcmp(dh, db, BS_HASH_LEN) == 0 && nh == nb,
              "%s: the hub holds %llu records, the branch %llu", what,
              (unsigned long long)nh, (unsigned long long)nb);
    for (int i = 0; i < 2; i++) {
        bst_node *t2 = i ? &br : &hub;
        assert_holds(t2, "a", NULL);               /* purged: back nowhere */
        assert_holds(t2, "b", "\"w\":\"branch\""); /* its new field */
        assert_holds(t2, "b", "\"v\":\"x\"");
        assert_holds(t2, "c", "\"v\":\"branch\""); /* its newer edit */
        assert_holds(t2, "d", "\"v\":\"hub\"");    /* the hub's newer one */
        assert_holds(t2, "f", NULL);               /* its delete */
        assert_holds(t2, "n", "\"w\":\"branch\""); /* made while stale */
        assert_holds(t2, "n", "\"v\":\"new\"");
        assert_holds(t2, "z", NULL); /* made and deleted while stale */
    }
    cr_assert(!stale(&hub, "tallinn") && !stale(&br, "head"),
              "%s: still marked as needing a full resync", what);
    bst_ok(bs_store_read(br.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_reseed_pending(t, &on), BS_OK);
    bs_txn_abort(t);
    cr_assert(!on, "%s: the re-seed did not finish", what);
    for (int i = 0; i < 2; i++) { /* and `verify` finds nothing wrong */
        bst_node *n = i ? &br : &hub;
        bs_verify_stats vs;
        bs_err rv;
        bst_ok(bs_store_read(n->n->store, &t, &err), &err, "read");
        rv = bs_verify_store(t, NULL, &vs, &err);
        bs_txn_abort(t);
        cr_assert_eq(rv, BS_OK, "%s: %s: %s", what, n->name,
                     bs_errmsg(&err, rv));
    }
}

/* After the re-seed, exchanges go on from the log, both ways. */
static void
assert_log_goes_on(int by_session)
{
    bs_xstats st;

    put(&hub, "g", "{\"v\":\"hub\"}");
    put(&br, "h", "{\"v\":\"branch\"}");
    if (by_session) {
        bst_sync_result r;
        cr_assert_eq(bst_sync(&br, &hub, NULL, NULL, &r), BS_OK, "%s / %s",
                     r.msg_a, r.msg_b);
        cr_assert_eq(r.sb.snapshots_sent, 0, "not a seed again");
    } else {
        carry(&br, &hub, NULL);
        carry(&hub, &br, &st);
        cr_assert_eq(st.snapshots, 0, "not a seed again");
    }
    assert_holds(&hub, "h", "branch");
    assert_holds(&br, "g", "hub");
    assert_converged("after the next exchange");
}

Test(reseed, p7_a_stale_branch_stays_refused_until_the_hub_seeds_it)
{
    bst_sync_result r;
    bs_errbuf err = {{0}};
    bs_err rv;

    scenario();
    rv = bst_carry(&br, &hub, NULL, &err);
    assert_stale(rv, err.msg, "export at the branch");
    cr_assert(strstr(err.msg, "peer seed tallinn") != NULL, "%s", err.msg);
    memset(&err, 0, sizeof err);
    rv = bst_carry(&hub, &br, NULL, &err);
    assert_stale(rv, err.msg, "export at the hub");
    rv = bst_sync(&br, &hub, NULL, NULL, &r);
    cr_assert_neq(rv, BS_OK);
    assert_stale(r.err_b, r.msg_b, "the hub answering");
    rv = bst_sync(&hub, &br, NULL, NULL, &r);
    cr_assert_neq(rv, BS_OK);
    assert_stale(r.err_b, r.msg_b, "the branch answering");
    assert_holds(&hub, "a", NULL);
    assert_holds(&br, "a", "branch");
}

Test(reseed, a_stale_branch_seeded_again_by_file_converges)
{
    bs_xstats st;

    scenario();
    peer_seed();
    carry(&hub, &br, &st); /* the seed */
    cr_assert(st.snapshots > 0, "a seed: snapshots");
    /* written again: b's new field, c, f's delete, n (made while stale);
     * dropped: a (purged at the hub), d (the hub's edit is later), z's
     * put and delete (nothing of it is left to write) */
    cr_assert(st.reseeded, "the import says it seeded the branch again");
    cr_assert_eq(st.reissued, 4, "%llu written again",
                 (unsigned long long)st.reissued);
    cr_assert_eq(st.reseed_dropped, 4, "%llu dropped",
                 (unsigned long long)st.reseed_dropped);
    assert_holds(&br, "a", NULL); /* the purged record went at once */
    assert_holds(&br, "c", "branch");
    assert_holds(&br, "n", "new");
    carry(&br, &hub, NULL); /* its newer edits, as ordinary changes */
    carry(&hub, &br, NULL);
    assert_converged("seeded by file");
    assert_log_goes_on(0);
}

/* A file the stale branch wrote before it was seeded again carries its
 * stale sets: the hub refuses it even while the seed is under way. */
Test(reseed, a_file_written_before_the_reseed_is_refused)
{
    char path[512];
    bs_errbuf err = {{0}};
    uint64_t keep = br.core.retention_ms;
    bs_err rv;

    scenario();
    snprintf(path, sizeof path, "%s/old.bsx", root);
    br.core.retention_ms = 0; /* written without the check */
    cr_assert_eq(bst_export(&br, "head", path, &err), BS_OK, "%s", err.msg);
    br.core.retention_ms = keep;
    peer_seed();
    rv = bst_import(&hub, path, NULL, &err);
    cr_assert_eq(rv, BS_ESTALE, "%s: %s", bs_strerror(rv), err.msg);
    assert_holds(&hub, "a", NULL);
    carry(&hub, &br, NULL);
    carry(&br, &hub, NULL);
    carry(&hub, &br, NULL);
    assert_converged("after the refused file");
}

Test(reseed, a_stale_branch_seeded_again_in_a_session_the_hub_starts)
{
    bst_sync_result r;

    scenario();
    peer_seed();
    cr_assert_eq(bst_sync(&hub, &br, NULL, NULL, &r), BS_OK, "%s / %s", r.msg_a,
                 r.msg_b);
    cr_assert(r.sa.snapshots_sent > 0, "a seed");
    cr_assert_eq(bst_sync(&hub, &br, NULL, NULL, &r), BS_OK, "%s / %s", r.msg_a,
                 r.msg_b);
    assert_converged("seeded in a session the hub started");
    assert_log_goes_on(1);
}

Test(reseed, a_stale_branch_seeded_again_in_a_session_it_starts)
{
    bst_sync_result r;

    scenario();
    peer_seed();
    cr_assert_eq(bst_sync(&br, &hub, NULL, NULL, &r), BS_OK, "%s / %s", r.msg_a,
                 r.msg_b);
    cr_assert(r.sb.snapshots_sent > 0, "a seed");
    cr_assert_eq(bst_sync(&br, &hub, NULL, NULL, &r), BS_OK, "%s / %s", r.msg_a,
                 r.msg_b);
    assert_converged("seeded in a session the branch started");
    assert_log_goes_on(1);
}

/* A stale branch that compacted its log meanwhile (its hub, silent past
 * the limit, no longer holds compaction back) still keeps its own sets
 * the hub never received: the re-seed writes them again (compact.h). */
Test(reseed, a_stale_branch_that_compacted_keeps_its_unsent_edits)
{
    bs_compact_stats st;
    bs_errbuf err = {{0}};

    scenario();
    cr_assert_eq(bs_compact_run(&br.core, 0, &st, &err), BS_OK, "%s", err.msg);
    peer_seed();
    carry(&hub, &br, NULL);
    carry(&br, &hub, NULL);
    carry(&hub, &br, NULL);
    assert_converged("seeded after compacting");
    assert_log_goes_on(0);
}

/* Stale one way only: the hub has not heard from the branch past the
 * limit (and purged without it), while the branch imported the hub's
 * files until lately.  The branch is seeded again all the same (a seed
 * from its hub replaces its data whenever it is joined), so its unsent
 * sets never reach the hub, and the two converge. */
Test(reseed, a_branch_stale_at_the_hub_only_is_seeded_again)
{
    uint64_t keep = hub.core.retention_ms;
    bs_purge_stats st;
    bs_errbuf err = {{0}};
    bs_err rv;

    put(&hub, "a", "{\"v\":\"x\"}");
    put(&hub, "c", "{\"v\":\"x\"}");
    carry(&hub, &br, NULL);
    carry(&br, &hub, NULL); /* the hub's last word from the branch */
    clock_ms.ms += DAY_MS;
    put(&br, "a", "{\"v\":\"branch\"}");
    put(&br, "c", "{\"v\":\"branch\"}");
    clock_ms.ms += DAY_MS;
    put(&hub, "a", NULL);
    clock_ms.ms += 87 * DAY_MS;
    carry(&hub, &br, NULL); /* the branch hears from the hub: fresh */
    clock_ms.ms += 6 * DAY_MS;
    hub.core.retention_ms = 90 * DAY_MS;
    cr_assert_eq(bs_purge_run(&hub.core, &st, &err), BS_OK, "%s", err.msg);
    hub.core.retention_ms = keep;
    cr_assert_eq(st.purged, 1);
    cr_assert(stale(&hub, "tallinn") && !stale(&br, "head"));
    rv = bst_carry(&br, &hub, NULL, &err);
    assert_stale(rv, err.msg, "the branch's file at the hub");
    peer_seed();
    carry(&hub, &br, NULL);
    carry(&br, &hub, NULL);
    carry(&hub, &br, NULL);
    assert_holds(&hub, "a", NULL);
    assert_holds(&br, "a", NULL);
    assert_holds(&hub, "c", "branch");
    assert_holds(&br, "c", "branch");
    cr_assert(!stale(&hub, "tallinn") && !stale(&br, "head"));
    {
        uint8_t dh[BS_HASH_LEN], db[BS_HASH_LEN];
        uint64_t nh, nb;
        bst_digest(&hub, dh, &nh);
        bst_digest(&br, db, &nb);
        cr_assert(memcmp(dh, db, BS_HASH_LEN) == 0 && nh == nb);
    }
}
