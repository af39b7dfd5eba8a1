/*
 * test_applier.c - the daemon's apply worker (node/applier.h, issue 12
 * item 2): the sets that several links received together are applied in
 * one durable transaction, each keeps its own outcome (one link's refused
 * set does not fail another link's good ones), and no CREDIT or ACK
 * leaves a session before the commit of what it acknowledges.
 *
 * Two branches each run an exchange with the hub in memory; the hub's
 * sessions defer their received sets (session.h, "Deferred apply") to an
 * applier, as branchsyncd's do.  To make "one batch" certain rather than
 * likely, the applier is held (bs_applier_hold) until every set is
 * queued, then let go.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../node/applier.h"
#include "../../replication/local.h"
#include "../lib/fixture.h"

static char root[128];
static bst_node hub, tallinn, tartu;

static void
setup(void)
{
    bst_sync_result r;

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "applier");
    bst_node_new(&hub, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, NULL);
    bst_node_new(&tartu, root, "tartu", BS_ROLE_BRANCH, NULL);
    bst_pair2(&hub, &tallinn);
    bst_pair2(&hub, &tartu);
    /* both join (inline apply, as before) */
    cr_assert_eq(bst_sync(&tallinn, &hub, NULL, NULL, &r), BS_OK, "%s %s",
                 r.msg_a, r.msg_b);
    cr_assert_eq(bst_sync(&tartu, &hub, NULL, NULL, &r), BS_OK, "%s %s",
                 r.msg_a, r.msg_b);
}

static void
teardown(void)
{
    bst_node_free(&hub);
    bst_node_free(&tallinn);
    bst_node_free(&tartu);
    bst_rmtree(root);
    bst_leak_check("test_applier");
}

TestSuite(applier, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ---- */

static void
put(bst_node *x, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(x, "items", id, json, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

/* A set only the hub may write (A11: _collections from a branch). */
static bs_err
forbidden_txn(bs_txn *txn, void *arg, bs_errbuf *err)
{
    bst_node *t = arg;
    bs_field f = {0};
    bs_local l;
    bs_err rv;

    f.name = "policy";
    f.val.type = BS_VTEXT;
    f.val.s = "manual";
    f.val.len = 6;
    if ((rv = bs_local_begin(&l, txn, &t->core, err)) == BS_OK &&
        (rv = bs_local_put(&l, "_collections", "customers", &f, 1, err)) ==
            BS_OK)
        rv = bs_local_finish(&l, err);
    bs_local_fini(&l);
    return rv;
}

static bs_session *
session_of(bst_node *x, int initiator, const char *peer, int defer)
{
    bs_session_cfg cfg;
    bs_session *s;

    memset(&cfg, 0, sizeof cfg);
    cfg.store = x->core.store;
    cfg.sk = x->core.sk;
    cfg.clock = x->core.clock;
    cfg.max_skew_ms = x->core.max_skew_ms;
    cfg.initiator = initiator;
    cfg.peer = peer;
    cfg.defer_apply = defer;
    cr_assert_eq(bs_session_new(&cfg, &s), BS_OK);
    return s;
}

/* One branch's exchange with the hub: the branch's session, the hub's
 * (deferring), and what the hub sent that acknowledges the branch's
 * sets. */
typedef struct link {
    bs_session *b, *h;
    int credits, acks; /* CREDIT and ACK messages the hub sent */
} link;

static void
link_start(link *k, bst_node *branch)
{
    memset(k, 0, sizeof *k);
    k->b = session_of(branch, 1, "head", 0);
    k->h = session_of(&hub, 0, NULL, 1);
    cr_assert_eq(bs_session_start(k->b), BS_OK);
}

/* Pass messages both ways until neither side has any. */
static void
pump(link *k)
{
    int moved;

    do {
        uint8_t *m;
        size_t n;
        moved = 0;
        while (bs_session_output(k->b, &m, &n) == BS_OK) {
            bs_err rv = bs_session_input(k->h, m, n);
            (void)rv; /* the states tell */
            free(m);
            moved = 1;
        }
        while (bs_session_output(k->h, &m, &n) == BS_OK) {
            k->credits += m[0] == BS_MSG_CREDIT;
            k->acks += m[0] == BS_MSG_ACK;
            bs_err rv = bs_session_input(k->b, m, n);
            (void)rv;
            free(m);
            moved = 1;
        }
    } while (moved);
}

/* Queue every set the hub's session received; how many. */
static int
submit(bs_applier *a, link *k, uint64_t owner)
{
    uint8_t *p;
    size_t n;
    int count = 0;

    while (bs_session_take(k->h, &p, &n) == BS_OK) {
        cr_assert_eq(bs_applier_submit(a, owner, p, n), BS_OK);
        count++;
    }
    return count;
}

static bs_applier *
applier_new(void)
{
    bs_applier_cfg cfg = {0};
    bs_applier *a;

    cfg.store = hub.core.store;
    cfg.clock = hub.core.clock;
    cfg.max_skew_ms = hub.core.max_skew_ms;
    cr_assert_eq(bs_applier_new(&cfg, &a), BS_OK);
    return a;
}

/* Every job done, back to its link's hub session; outcomes by owner in
 * rv[owner][i]. */
static size_t
collect(bs_applier *a, link *k, size_t want, bs_err rv[2][8], size_t nrv[2])
{
    size_t got = 0;

    while (got < want) {
        bs_apply_job *j, *next;
        cr_assert(bs_applier_wait(a, 10000), "the worker applied nothing");
        for (j = bs_applier_done(a); j != NULL; j = next) {
            next = j->next;
            cr_assert_lt(j->owner, 2);
            cr_assert_lt(nrv[j->owner], 8);
            rv[j->owner][nrv[j->owner]++] = j->rv;
            cr_assert_eq(bs_session_applied(k[j->owner].h, j->rv, j->why,
                                            j->changes, j->conflicts),
                         BS_OK);
            bs_apply_job_free(j);
            got++;
        }
    }
    return got;
}

static int
has_item(bst_node *x, const char *id)
{
    char *r = bst_get(x, "items", id);
    int found = r != NULL;

    free(r);
    return found;
}

/* ---- the tests ---- */

Test(applier, sets_from_two_links_share_one_durable_commit)
{
    bs_applier *a = applier_new();
    link k[2];
    bs_err rv[2][8];
    size_t nrv[2] = {0, 0};
    uint64_t batches, sets;
    int queued = 0;

    put(&tallinn, "t1", "{\"v\":1}");
    put(&tallinn, "t2", "{\"v\":2}");
    put(&tartu, "u1", "{\"v\":1}");
    put(&tartu, "u2", "{\"v\":2}");
    bs_applier_hold(a, 1);
    link_start(&k[0], &tallinn);
    link_start(&k[1], &tartu);
    for (int i = 0; i < 2; i++) {
        pump(&k[i]);
        queued += submit(a, &k[i], (uint64_t)i);
    }
    cr_assert_eq(queued, 4);
    cr_assert_eq(bs_applier_queued(a), 4);
    /* Nothing acknowledged before the commit: no CREDIT, no ACK, and
     * nothing written at the hub yet. */
    for (int i = 0; i < 2; i++) {
        pump(&k[i]);
        cr_assert_eq(k[i].credits, 0);
        cr_assert_eq(k[i].acks, 0);
        cr_assert_eq(bs_session_state_of(k[i].h), BS_SESSION_STREAMING);
    }
    cr_assert(!has_item(&hub, "t1") && !has_item(&hub, "u2"));
    bs_applier_hold(a, 0);
    cr_assert_eq(collect(a, k, 4, rv, nrv), 4);
    bs_applier_stats(a, &batches, &sets);
    cr_assert_eq(batches, 1, "%llu transactions for 4 sets of 2 links",
                 (unsigned long long)batches);
    cr_assert_eq(sets, 4);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(nrv[i], 2);
        cr_assert_eq(rv[i][0], BS_OK);
        cr_assert_eq(rv[i][1], BS_OK);
        pump(&k[i]);
        cr_assert_eq(k[i].credits, 2);
        cr_assert_eq(k[i].acks, 1);
        cr_assert_eq(bs_session_state_of(k[i].b), BS_SESSION_COMPLETE, "%s",
                     bs_session_error(k[i].b));
        cr_assert_eq(bs_session_state_of(k[i].h), BS_SESSION_COMPLETE, "%s",
                     bs_session_error(k[i].h));
        cr_assert_eq(bs_session_stats_of(k[i].h)->changes_applied, 2);
        bs_session_free(k[i].b);
        bs_session_free(k[i].h);
    }
    cr_assert(has_item(&hub, "t1") && has_item(&hub, "t2"));
    cr_assert(has_item(&hub, "u1") && has_item(&hub, "u2"));
    bs_applier_free(a);
}

Test(applier, a_refused_set_fails_alone_and_the_rest_commit_together)
{
    bs_applier *a = applier_new();
    bs_errbuf err = {{0}};
    link k[2];
    bs_err rv[2][8], r;
    size_t nrv[2] = {0, 0};
    uint64_t batches, sets;

    put(&tallinn, "t1", "{\"v\":1}");
    r = bs_store_write(tallinn.core.store, forbidden_txn, &tallinn, &err);
    cr_assert_eq(r, BS_OK, "%s", bs_errmsg(&err, r));
    put(&tartu, "u1", "{\"v\":1}");
    put(&tartu, "u2", "{\"v\":2}");
    bs_applier_hold(a, 1);
    link_start(&k[0], &tallinn);
    link_start(&k[1], &tartu);
    for (int i = 0; i < 2; i++) {
        pump(&k[i]);
        cr_assert_eq(submit(a, &k[i], (uint64_t)i), 2);
    }
    bs_applier_hold(a, 0);
    cr_assert_eq(collect(a, k, 4, rv, nrv), 4);
    /* tallinn's forbidden set is refused as inline apply refuses it; its
     * good set and both of tartu's commit, in one transaction. */
    cr_assert_eq(rv[0][0], BS_OK);
    cr_assert_eq(rv[0][1], BS_EPERM);
    cr_assert_eq(rv[1][0], BS_OK);
    cr_assert_eq(rv[1][1], BS_OK);
    bs_applier_stats(a, &batches, &sets);
    cr_assert_eq(batches, 1);
    cr_assert_eq(sets, 3);
    for (int i = 0; i < 2; i++)
        pump(&k[i]);
    /* The refusal stays with its link (P6): counted, reported, the
     * exchange completes; the other link saw nothing of it. */
    cr_assert_eq(bs_session_state_of(k[0].h), BS_SESSION_COMPLETE, "%s",
                 bs_session_error(k[0].h));
    cr_assert_eq(bs_session_stats_of(k[0].h)->refused, 1);
    cr_assert(strstr(bs_session_refused_reason(k[0].h), "_collections"), "%s",
              bs_session_refused_reason(k[0].h));
    cr_assert_eq(bs_session_state_of(k[1].h), BS_SESSION_COMPLETE);
    cr_assert_eq(bs_session_stats_of(k[1].h)->refused, 0);
    cr_assert_eq(bs_session_stats_of(k[1].b)->held_there, 0);
    cr_assert_eq(bs_session_stats_of(k[0].b)->held_there, 1);
    cr_assert(has_item(&hub, "t1"));
    cr_assert(has_item(&hub, "u1") && has_item(&hub, "u2"));
    for (int i = 0; i < 2; i++) {
        bs_session_free(k[i].b);
        bs_session_free(k[i].h);
    }
    bs_applier_free(a);
}

Test(applier, a_set_that_does_not_decode_is_refused_before_the_transaction)
{
    bs_applier *a = applier_new();
    uint8_t *junk = malloc(5);
    bs_apply_job *j;
    uint64_t batches, sets;

    cr_assert_not_null(junk);
    memcpy(junk, "junk!", 5);
    cr_assert_eq(bs_applier_submit(a, 7, junk, 5), BS_OK);
    cr_assert(bs_applier_wait(a, 10000));
    j = bs_applier_done(a);
    cr_assert_not_null(j);
    cr_assert_eq(j->owner, 7);
    cr_assert_eq(j->rv, BS_EMALFORMED, "%s", j->why);
    cr_assert_null(j->next);
    bs_apply_job_free(j);
    bs_applier_stats(a, &batches, &sets);
    cr_assert_eq(batches, 0);
    cr_assert_eq(sets, 0);
    bs_applier_free(a);
}

Test(applier, freeing_with_sets_queued_drops_them)
{
    bs_applier *a = applier_new();
    uint8_t *p = malloc(3);

    cr_assert_not_null(p);
    memcpy(p, "abc", 3);
    bs_applier_hold(a, 1);
    cr_assert_eq(bs_applier_submit(a, 1, p, 3), BS_OK);
    bs_applier_free(a); /* ASan: nothing leaks */
}
