/*
 * test_quarantine.c - quarantined streams and their release by the hub
 * (replication/quarantine.h).
 *
 * A fork is made the way it happens: a node's store is copied by hand
 * (bst_node_clone, the same key and incarnation) and both copies write the
 * next position of the stream, so two signed sets claim it.  The hub
 * lists both versions, keeps one, and its decision, a hub change to
 * `_quarantine`, travels by exchange file: every node drops the other
 * version, rebuilds what it touched, takes the kept one and accepts the
 * stream's later sets again, and all end with the same data.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/crypto.h"
#include "../../replication/local.h"
#include "../../replication/quarantine.h"
#include "../../replication/streams.h"
#include "../../replication/verify.h"

#define T0 1800000000000ull

static char root[128];
static bst_clock ch = {T0, 1}, cb = {T0, 1}, cc = {T0, 1};
static bst_node head, tallinn, riga;

static void
setup(void)
{
    bs_clock a, b, c;

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch.ms = cb.ms = cc.ms = T0;
    a = bst_clock_of(&ch);
    b = bst_clock_of(&cb);
    c = bst_clock_of(&cc);
    bst_root(root, sizeof root, "quarantine");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, &b);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &tallinn);
    bst_pair2(&head, &riga);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_quarantine");
}

TestSuite(quarantine, .init = setup, .fini = teardown, .timeout = 60);

static void
put(bst_node *t, const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, coll, id, json, &err);

    cr_assert_eq(rv, BS_OK, "%s: %s", t->name, bs_errmsg(&err, rv));
}

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

/* A copy made by hand numbers its next file as the original did, and a
 * receiver takes a number it saw as a replay: one export it never sends
 * moves the copy's count past the original's. */
static void
bump(bst_node *copy, const char *peer)
{
    char path[256];
    bs_errbuf err = {{0}};
    bs_err rv;

    snprintf(path, sizeof path, "%s/%s-unsent.bsx", root, copy->name);
    for (int i = 0; i < 3; i++) {
        rv = bst_export(copy, peer, path, &err);
        cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    }
}

/* The quarantined streams of t (free *v). */
static size_t
list(bst_node *t, bs_qstream **v)
{
    bs_errbuf err = {{0}};
    bs_txn *txn;
    size_t n = 0;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_quarantine_list(txn, v, &n), NULL, "list");
    bs_txn_abort(txn);
    return n;
}

static bs_err
release(bst_node *t, const uint8_t *origin, const uint8_t *hash, bs_qrelease *q,
        bs_errbuf *err)
{
    char id[BS_NODE_ID_LEN + 1], hex[2 * BS_HASH_LEN + 1];

    bs_node_id_format(origin, id);
    bs_hex(hex, hash, BS_HASH_LEN);
    return bs_quarantine_release(&t->core, id, hex, q, err);
}

/* t's store passes `verify`: log, streams and records agree. */
static void
verified(bst_node *t)
{
    bs_errbuf err = {{0}};
    bs_verify_stats vs;
    bs_txn *txn;
    bs_err rv;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    rv = bs_verify_store(txn, NULL, &vs, &err);
    bs_txn_abort(txn);
    cr_assert_eq(rv, BS_OK, "%s: %s", t->name, bs_errmsg(&err, rv));
}

static void
same_data(bst_node *a, bst_node *b)
{
    uint8_t da[BS_HASH_LEN], db[BS_HASH_LEN];
    uint64_t na, nb;

    bst_digest(a, da, &na);
    bst_digest(b, db, &nb);
    cr_assert_eq(na, nb, "%s holds %llu records, %s %llu", a->name,
                 (unsigned long long)na, b->name, (unsigned long long)nb);
    cr_assert_eq(memcmp(da, db, BS_HASH_LEN), 0, "%s and %s differ", a->name,
                 b->name);
    verified(a);
    verified(b);
}

static int
quarantined(bst_node *t, const uint8_t *pk)
{
    bs_qstream *v = NULL;
    size_t n = list(t, &v);
    int found = 0;

    for (size_t i = 0; i < n; i++)
        found |= memcmp(v[i].origin, pk, BS_PK_LEN) == 0;
    free(v);
    return found;
}

static int
has(bst_node *t, const char *coll, const char *id, const char *text)
{
    char *r = bst_get(t, coll, id);
    int ok = r != NULL && (text == NULL || strstr(r, text) != NULL);

    free(r);
    return ok;
}

/*
 * tallinn's store is copied by hand; the original writes version A of
 * its seq 2 (reaching head and riga), the copy version B (reaching head):
 * head quarantines tallinn's stream.
 */
static void
fork_tallinn(bst_node *copy)
{
    char dir[256];

    put(&tallinn, "x", "base", "{\"v\":1}");
    carry(&tallinn, &head);
    carry(&head, &riga);
    carry(&head, &tallinn);
    carry(&riga, &head);
    snprintf(dir, sizeof dir, "%s/tallinn-copy", root);
    bst_node_clone(&tallinn, dir, copy);
    put(&tallinn, "x", "shared", "{\"v\":\"A\",\"only_a\":1}");
    put(copy, "x", "shared", "{\"v\":\"B\"}");
    carry(&tallinn, &head); /* A at seq 2 */
    carry(&head, &riga);
    bump(copy, "head");
    carry(copy, &head); /* B at seq 2: head quarantines */
}

Test(quarantine, the_listing_shows_both_versions)
{
    bst_node copy;
    bs_qstream *v = NULL;
    bs_meta tm = bst_meta(&tallinn); /* the key: nodes reopen */
    const uint8_t *pk = tm.pk;

    fork_tallinn(&copy);
    cr_assert_eq(list(&head, &v), 1);
    cr_assert_eq(memcmp(v[0].origin, pk, BS_PK_LEN), 0);
    cr_assert_eq(v[0].fork, 2);
    cr_assert(v[0].v[0].here);
    cr_assert_not(v[0].v[1].here);
    cr_assert_eq(v[0].v[0].first, 2);
    cr_assert_eq(v[0].v[1].first, 2);
    cr_assert_eq(v[0].v[0].changes, 1);
    cr_assert_eq(v[0].v[1].changes, 1);
    cr_assert_gt(v[0].v[0].created_ms, 0);
    cr_assert_neq(memcmp(v[0].v[0].hash, v[0].v[1].hash, BS_HASH_LEN), 0);
    free(v);
    cr_assert_eq(list(&riga, &v), 0); /* riga only has A */
    free(v);
    bst_node_free(&copy);
}

Test(quarantine, release_at_a_branch_exits_2)
{
    bst_node copy;
    bs_qstream *v = NULL;
    bs_errbuf err = {{0}};
    bs_qrelease q;
    bs_err rv;

    fork_tallinn(&copy);
    cr_assert_eq(list(&head, &v), 1);
    rv = release(&riga, v[0].origin, v[0].v[0].hash, &q, &err);
    cr_assert_eq(rv, BS_EPERM);
    cr_assert_eq(bs_err_exit_code(rv), 2);
    cr_assert(strstr(err.msg, "only the head office releases a quarantine"),
              "%s", err.msg);
    free(v);
    bst_node_free(&copy);
}

Test(quarantine, unknown_origin_or_version_exits_1)
{
    bst_node copy;
    bs_qstream *v = NULL;
    bs_errbuf err = {{0}};
    uint8_t other[BS_HASH_LEN] = {1, 2, 3};
    bs_qrelease q;
    bs_err rv;

    fork_tallinn(&copy);
    cr_assert_eq(list(&head, &v), 1);
    rv = release(&head, v[0].origin, other, &q, &err);
    cr_assert_eq(rv, BS_ENOTFOUND, "%s", err.msg);
    cr_assert_eq(bs_err_exit_code(rv), 1);
    rv = release(&head, riga.n->meta.pk, v[0].v[0].hash, &q, &err);
    cr_assert_eq(rv, BS_ENOTFOUND, "%s", err.msg);
    cr_assert(strstr(err.msg, "quarantined"), "%s", err.msg);
    cr_assert(quarantined(&head, tallinn.n->meta.pk)); /* nothing changed */
    free(v);
    bst_node_free(&copy);
}

/* head keeps B, the version only head held; riga and tallinn held A. */
Test(quarantine, releasing_the_other_version_converges_every_node)
{
    bst_node copy;
    bs_qstream *v = NULL;
    bs_errbuf err = {{0}};
    uint8_t pk[BS_PK_LEN], inc[BS_INC_LEN];
    bs_qrelease q;
    bs_stream s;
    bs_err rv;

    fork_tallinn(&copy);
    memcpy(pk, tallinn.n->meta.pk, BS_PK_LEN);
    memcpy(inc, tallinn.n->meta.inc, BS_INC_LEN);
    bst_node_free(&copy); /* the stray copy is retired */
    cr_assert_eq(list(&head, &v), 1);
    rv = release(&head, pk, v[0].v[1].hash, &q, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(q.seq, 2);
    cr_assert_eq(q.dropped, 1);
    free(v);
    /* head: A dropped, B applied */
    cr_assert_not(quarantined(&head, pk));
    cr_assert(has(&head, "x", "shared", "\"B\""));
    cr_assert_not(has(&head, "x", "shared", "only_a"));
    cr_assert(bst_stream(&head, pk, inc, &s));
    cr_assert_eq(s.seq, 2);
    cr_assert(s.flags & BS_STREAM_RELEASED);
    /* riga and tallinn drop A when the decision arrives, then take B */
    for (int round = 0; round < 2; round++) {
        carry(&head, &riga);
        carry(&riga, &head);
        carry(&head, &tallinn);
        carry(&tallinn, &head);
    }
    carry(&head, &riga);
    carry(&head, &tallinn);
    cr_assert(has(&riga, "x", "shared", "\"B\""));
    cr_assert(has(&tallinn, "x", "shared", "\"B\""));
    cr_assert_not(has(&tallinn, "x", "shared", "only_a"));
    /* tallinn's A was its own: it writes on under a new incarnation */
    cr_assert_neq(memcmp(bst_meta(&tallinn).inc, inc, BS_INC_LEN), 0);
    put(&tallinn, "x", "after", "{\"v\":2}");
    carry(&tallinn, &head);
    carry(&head, &riga);
    cr_assert(has(&riga, "x", "after", NULL));
    same_data(&head, &riga);
    same_data(&head, &tallinn);
}

/* head keeps A, its own: only the copy's B is dropped (nowhere applied). */
Test(quarantine, keeping_the_applied_version_clears_the_quarantine)
{
    bst_node copy;
    bs_qstream *v = NULL;
    bs_errbuf err = {{0}};
    bs_meta tm = bst_meta(&tallinn); /* the key: nodes reopen */
    const uint8_t *pk = tm.pk;
    bs_xstats st;
    bs_qrelease q;
    bs_err rv;

    fork_tallinn(&copy);
    cr_assert_eq(list(&head, &v), 1);
    rv = release(&head, pk, v[0].v[0].hash, &q, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(q.dropped, 0);
    free(v);
    cr_assert_not(quarantined(&head, pk));
    /* tallinn's later sets apply again at head */
    put(&tallinn, "x", "later", "{\"v\":3}");
    bump(&tallinn, "head"); /* past the copy's count */
    bump(&tallinn, "head");
    carry(&tallinn, &head);
    cr_assert(has(&head, "x", "later", NULL));
    /* the copy's version arriving again is dropped, not a new quarantine */
    bump(&copy, "head");
    rv = bst_carry(&copy, &head, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_not(quarantined(&head, pk));
    cr_assert(has(&head, "x", "shared", "\"A\""));
    carry(&head, &riga);
    carry(&riga, &head);
    carry(&head, &riga);
    carry(&head, &tallinn);
    same_data(&head, &riga);
    same_data(&head, &tallinn);
    bst_node_free(&copy);
}

/*
 * The hub's own stream forks (its store copied by hand): riga quarantines
 * the hub's stream and so would ignore every later hub set, revocations
 * included.  The release the hub writes reaches riga all the same.
 */
Test(quarantine, a_quarantined_hub_stream_is_released_by_the_hub)
{
    bst_node copy;
    bs_qstream *v = NULL;
    bs_errbuf err = {{0}};
    char dir[256];
    uint8_t keep[BS_HASH_LEN];
    bs_meta hm = bst_meta(&head); /* the key: nodes reopen */
    const uint8_t *hub = hm.pk;
    bs_qrelease q;
    bs_err rv;

    put(&head, "x", "base", "{\"v\":1}");
    carry(&head, &riga);
    carry(&riga, &head);
    snprintf(dir, sizeof dir, "%s/head-copy", root);
    bst_node_clone(&head, dir, &copy);
    put(&head, "x", "shared", "{\"v\":\"A\"}");
    put(&copy, "x", "shared", "{\"v\":\"B\",\"only_b\":1}");
    bump(&copy, "riga");
    carry(&copy, &riga); /* riga applies B */
    bst_node_free(&copy);
    bump(&head, "riga"); /* past the copy's count */
    bump(&head, "riga");
    carry(&head, &riga); /* then A: the hub's stream is quarantined */
    cr_assert(quarantined(&riga, hub));
    put(&head, "x", "later", "{\"v\":2}");
    carry(&head, &riga);
    cr_assert_not(has(&riga, "x", "later", NULL), "a quarantined stream");
    /* the hub sees no quarantine: the version comes from riga's listing */
    cr_assert_eq(list(&riga, &v), 1);
    cr_assert_not(v[0].v[1].here);
    memcpy(keep, v[0].v[1].hash, BS_HASH_LEN); /* A, the hub's own */
    free(v);
    cr_assert_eq(list(&head, &v), 0);
    free(v);
    rv = release(&head, hub, keep, &q, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(q.dropped, 0);
    /* riga: the release in a hub set of the quarantined stream applies */
    carry(&head, &riga);
    cr_assert_not(quarantined(&riga, hub));
    cr_assert_not(has(&riga, "x", "shared", "only_b"));
    carry(&riga, &head);
    carry(&head, &riga);
    cr_assert(has(&riga, "x", "later", NULL), "the hub's later sets apply");
    cr_assert(has(&riga, "x", "shared", "\"A\""));
    same_data(&head, &riga);
    /* and the stream stays open */
    put(&head, "x", "after", "{\"v\":3}");
    carry(&head, &riga);
    cr_assert(has(&riga, "x", "after", NULL));
    same_data(&head, &riga);
}

static void
sync_ok(bst_node *a, bst_node *b)
{
    bst_sync_result r;
    bs_err rv = bst_sync(a, b, NULL, NULL, &r);

    cr_assert_eq(rv, BS_OK, "%s <-> %s: %s / %s", a->name, b->name, r.msg_a,
                 r.msg_b);
}

/* The same over network sessions: riga, holding the copy's version of
 * the hub's stream, takes the release from the hub's session and then the
 * hub's sets, and both sides agree. */
Test(quarantine, a_release_travels_by_network_session_too)
{
    bst_node copy;
    bs_qstream *v = NULL;
    bs_errbuf err = {{0}};
    char dir[256];
    uint8_t keep[BS_HASH_LEN];
    bs_meta hm = bst_meta(&head); /* the key: nodes reopen */
    const uint8_t *hub = hm.pk;
    bs_qrelease q;
    bs_err rv;

    put(&head, "x", "base", "{\"v\":1}");
    sync_ok(&riga, &head);
    snprintf(dir, sizeof dir, "%s/head-copy", root);
    bst_node_clone(&head, dir, &copy);
    put(&head, "x", "shared", "{\"v\":\"A\"}");
    put(&copy, "x", "shared", "{\"v\":\"B\",\"only_b\":1}");
    bump(&copy, "riga");
    carry(&copy, &riga); /* riga applies B */
    bst_node_free(&copy);
    /* Both hold the stream at the same seq: a session sees no fork until
     * the hub's next set, which does not follow riga's (A9). */
    sync_ok(&riga, &head);
    cr_assert_not(quarantined(&riga, hub));
    put(&head, "x", "later", "{\"v\":2}");
    sync_ok(&riga, &head);
    cr_assert(quarantined(&riga, hub));
    cr_assert_not(has(&riga, "x", "later", NULL));
    cr_assert_eq(list(&riga, &v), 1);
    cr_assert_eq(v[0].fork, v[0].seq + 1, "a history fork");
    memcpy(keep, v[0].v[1].hash, BS_HASH_LEN); /* the hub's later set */
    free(v);
    rv = release(&head, hub, keep, &q, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    sync_ok(&riga, &head);
    cr_assert_not(quarantined(&riga, hub));
    sync_ok(&riga, &head);
    cr_assert(has(&riga, "x", "later", NULL));
    cr_assert(has(&riga, "x", "shared", "\"A\""));
    cr_assert_not(has(&riga, "x", "shared", "only_b"));
    same_data(&head, &riga);
}

/* The hub writes `_quarantine/ID` {"seq": "two"} by hand (a local write of
 * the system collection, as only a hub can). */
static bs_err
odd_release_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_field f;
    bs_local l;
    bs_err rv;

    memset(&f, 0, sizeof f);
    f.name = "seq";
    f.val.type = BS_VTEXT;
    f.val.s = "two";
    f.val.len = 3;
    if ((rv = bs_local_begin(&l, t, &head.core, err)) == BS_OK &&
        (rv = bs_local_put(&l, BS_SYS_QUARANTINE, arg, &f, 1, err)) == BS_OK)
        rv = bs_local_finish(&l, err);
    bs_local_fini(&l);
    return rv;
}

/* A release that does not parse releases nothing, and its set of the
 * quarantined hub stream stays a no-op (it is not retried for ever). */
Test(quarantine, a_release_that_does_not_parse_changes_nothing)
{
    bst_node copy;
    bs_errbuf err = {{0}};
    char dir[256], id[BS_NODE_ID_LEN + 2 * BS_INC_LEN + 2];
    bs_meta hm = bst_meta(&head);
    bs_xstats st;
    bs_err rv;

    put(&head, "x", "base", "{\"v\":1}");
    carry(&head, &riga);
    carry(&riga, &head);
    snprintf(dir, sizeof dir, "%s/head-copy", root);
    bst_node_clone(&head, dir, &copy);
    put(&head, "x", "shared", "{\"v\":\"A\"}");
    put(&copy, "x", "shared", "{\"v\":\"B\"}");
    bump(&copy, "riga");
    carry(&copy, &riga);
    bst_node_free(&copy);
    bump(&head, "riga");
    bump(&head, "riga");
    carry(&head, &riga);
    cr_assert(quarantined(&riga, hm.pk));
    bs_node_id_format(hm.pk, id);
    id[BS_NODE_ID_LEN] = '.';
    bs_hex(id + BS_NODE_ID_LEN + 1, hm.inc, BS_INC_LEN);
    rv = bs_store_write(head.n->store, odd_release_txn, id, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    rv = bst_carry(&head, &riga, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(st.sets, 0);
    cr_assert(quarantined(&riga, hm.pk), "still quarantined");
    cr_assert(has(&riga, "x", "shared", "\"B\""));
}
