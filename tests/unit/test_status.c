/*
 * test_status.c - the node's state (replication/status.h): the log
 * figures, per peer what is pending each way and since when, streams
 * held back or quarantined, the conflict counts, the per-collection
 * record counts and, per office, last contact, lag and the changes
 * refused by rule.  Each node has its own injected clock, so "ahead of ours"
 * and ages are exact.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/damage.h"
#include "../lib/fixture.h"
#include "../../node/health.h"
#include "../../replication/collections.h"
#include "../../replication/conflict.h"
#include "../../replication/status.h"
#include "../../replication/streams.h"
#include "../../node/render.h"

#define T0      1800000000000ull
#define HOUR_MS 3600000ull

static char root[128];
static bst_clock ch = {T0}, ct = {T0};
static bst_node head, tallinn;

static void
setup(void)
{
    bs_clock a, b;

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch.ms = ct.ms = T0;
    a = bst_clock_of(&ch);
    b = bst_clock_of(&ct);
    bst_root(root, sizeof root, "status");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, &b);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_rmtree(root);
    bst_leak_check("test_status");
}

TestSuite(status, .init = setup, .fini = teardown, .timeout = 60);

static void
put(bst_node *t, const char *coll, const char *id)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, coll, id, "{\"v\":1}", &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

static bs_err
read_status(bst_node *t, uint64_t now, int count, bs_status *st, bs_errbuf *err)
{
    bs_status_opts o = {now, t->core.retention_ms, count};
    bs_meta m = bst_meta(t);
    bs_txn *txn;
    bs_err rv;

    bst_ok(bs_store_read(t->n->store, &txn, err), err, "read");
    rv = bs_status_read(txn, &m, &o, st, err);
    bs_txn_abort(txn);
    return rv;
}

static void
status(bst_node *t, uint64_t now, int count, bs_status *st)
{
    bs_errbuf err = {{0}};
    bs_err rv = read_status(t, now, count, st, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

static const bs_peer_status *
peer_of(const bs_status *st, const char *name)
{
    for (size_t i = 0; i < st->npeers; i++)
        if (strcmp(st->peers[i].name, name) == 0)
            return &st->peers[i];
    cr_assert_fail("no peer %s in the status", name);
    return NULL;
}

Test(status, a_new_node_reports_itself_and_nothing_else)
{
    bs_meta m = bst_meta(&head);
    bs_status st;

    status(&head, T0, 1, &st);
    cr_assert_str_eq(st.meta.name, "head");
    cr_assert_eq(st.meta.role, BS_ROLE_HUB);
    cr_assert_eq(memcmp(st.meta.pk, m.pk, BS_PK_LEN), 0);
    cr_assert_eq(st.change_sets, 0);
    cr_assert_eq(st.changes, 0);
    cr_assert_eq(st.own_changes, 0);
    cr_assert_eq(st.conflicts_open, 0);
    cr_assert_eq(st.conflicts_total, 0);
    cr_assert_eq(st.npeers, 0);
    cr_assert_eq(st.nstreams, 0);
    cr_assert_eq(st.ncolls, 0);
    bs_status_fini(&st);
}

Test(status, changes_are_pending_out_until_the_peer_acknowledges_them)
{
    const bs_peer_status *p;
    bs_status st;

    bst_pair2(&head, &tallinn); /* head seq 1: the introduction */
    ch.ms += 1000;
    put(&head, "items", "i1");
    put(&head, "items", "i2"); /* seq 3 */
    status(&head, T0 + 42000, 0, &st);
    cr_assert_eq(st.change_sets, 3);
    cr_assert_eq(st.changes, 3);
    cr_assert_eq(st.own_changes, 3);
    p = peer_of(&st, "tallinn");
    cr_assert_eq(p->pending_out, 3);
    cr_assert_eq(p->pending_in, 0);
    cr_assert_eq(p->oldest_unacked_age_s, 42, "oldest: the introduction");
    cr_assert_eq(memcmp(p->pk, bst_meta(&tallinn).pk, BS_PK_LEN), 0);
    bs_status_fini(&st);
    carry(&head, &tallinn); /* sent, not yet acknowledged */
    status(&head, T0 + 42000, 0, &st);
    cr_assert_eq(peer_of(&st, "tallinn")->pending_out, 3);
    bs_status_fini(&st);
    put(&tallinn, "orders", "o1");
    put(&tallinn, "orders", "o2");
    status(&tallinn, T0, 0, &st);
    p = peer_of(&st, "head");
    cr_assert_eq(p->pending_out, 2);
    cr_assert_eq(st.own_changes, 2);
    cr_assert_eq(st.changes, 5);
    bs_status_fini(&st);
    carry(&tallinn, &head); /* its envelope acknowledges head's 3 */
    status(&head, T0 + 42000, 0, &st);
    p = peer_of(&st, "tallinn");
    cr_assert_eq(p->pending_out, 0);
    cr_assert_eq(p->pending_in, 0);
    cr_assert_eq(p->oldest_unacked_age_s, 0);
    cr_assert_eq(p->received_changes, 2);
    cr_assert_eq(p->last_ok_ms, T0 + 1000);
    cr_assert_eq(st.changes, 5);
    cr_assert_eq(st.own_changes, 3);
    bs_status_fini(&st);
}

Test(status, a_held_set_shows_as_pending_in_and_its_stream_needs_attention)
{
    bs_meta hm = bst_meta(&head);
    const bs_peer_status *p;
    bs_status st;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn);
    ch.ms += 2 * HOUR_MS; /* the hub's clock runs ahead */
    put(&head, "items", "i1");
    carry(&head, &tallinn);
    status(&tallinn, ct.ms, 0, &st);
    p = peer_of(&st, "head");
    cr_assert_eq(p->pending_in, 1, "the hub holds a change we lack");
    cr_assert_eq(st.nstreams, 1);
    cr_assert_eq(memcmp(st.streams[0].origin, hm.pk, BS_PK_LEN), 0);
    cr_assert_eq(st.streams[0].seq, 1);
    cr_assert_not(st.streams[0].quarantined);
    cr_assert_str_eq(st.streams[0].note,
                     "held at seq 2: its clock is ahead of ours");
    bs_status_fini(&st);
    /* Its time comes: applied on the next exchange, nothing pending. */
    ct.ms += 3 * HOUR_MS;
    carry(&head, &tallinn);
    status(&tallinn, ct.ms, 0, &st);
    cr_assert_eq(peer_of(&st, "head")->pending_in, 0);
    cr_assert_eq(st.nstreams, 0);
    bs_status_fini(&st);
}

Test(status, a_quarantined_stream_needs_attention)
{
    bs_meta hm = bst_meta(&head);
    bs_status st;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn);
    bst_quarantine(&tallinn, hm.pk, "history fork at seq 2");
    status(&tallinn, ct.ms, 0, &st);
    cr_assert_eq(st.nstreams, 1);
    cr_assert(st.streams[0].quarantined);
    cr_assert_str_eq(st.streams[0].note, "history fork at seq 2");
    cr_assert_eq(st.streams[0].seq, 1);
    bs_status_fini(&st);
}

static bs_err
conflicts_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    uint8_t a[BS_STREAM_KEY_LEN], b[BS_STREAM_KEY_LEN];
    bs_value v = {BS_VINT, 1, 0, NULL, 0}, w = {BS_VINT, 2, 0, NULL, 0};
    bs_cand ca = {a, 1, 10, &v}, cb = {b, 1, 20, &w};
    bs_err rv;

    (void)arg;
    (void)err;
    memset(a, 1, sizeof a);
    memset(b, 2, sizeof b);
    if ((rv = bs_conflict_add(t, "notes", "n1", "text", BS_POLICY_MANUAL, &ca,
                              &cb, 1, T0)) != BS_OK)
        return rv;
    return bs_conflict_add(t, "items", "i1", "qty", BS_POLICY_LWW, &ca, &cb, 1,
                           T0);
}

Test(status, conflict_counts_are_reported)
{
    bs_errbuf err = {{0}};
    bs_status st;

    cr_assert_eq(bs_store_write(head.n->store, conflicts_txn, NULL, &err),
                 BS_OK);
    status(&head, T0, 0, &st);
    cr_assert_eq(st.conflicts_open, 1);
    cr_assert_eq(st.conflicts_total, 2);
    bs_status_fini(&st);
}

Test(status, collections_are_counted_on_request_in_name_order)
{
    bs_errbuf err = {{0}};
    bs_status st;

    bst_pair2(&head, &tallinn); /* a `_members` record: not counted */
    put(&head, "orders", "o1");
    put(&head, "items", "i1");
    put(&head, "items", "i2");
    put(&head, "items", "i3");
    cr_assert_eq(bst_del(&head, "items", "i2", &err), BS_OK);
    status(&head, T0, 0, &st);
    cr_assert_eq(st.ncolls, 0, "counted without being asked");
    bs_status_fini(&st);
    status(&head, T0, 1, &st);
    cr_assert_eq(st.ncolls, 2);
    cr_assert_str_eq(st.colls[0].name, "items");
    cr_assert_eq(st.colls[0].records, 2);
    cr_assert_eq(st.colls[0].deleted, 1);
    cr_assert_str_eq(st.colls[1].name, "orders");
    cr_assert_eq(st.colls[1].records, 1);
    cr_assert_eq(st.colls[1].deleted, 0);
    bs_status_fini(&st);
}

Test(status, a_peer_silent_beyond_the_retention_needs_a_full_resync)
{
    uint64_t keep = head.core.retention_ms;
    bs_status st;

    cr_assert_gt(keep, 0);
    bst_pair(&head, &tallinn); /* created at T0, never heard from */
    status(&head, T0 + keep, 0, &st);
    cr_assert_not(peer_of(&st, "tallinn")->needs_full_resync);
    bs_status_fini(&st);
    status(&head, T0 + keep + 1, 0, &st);
    cr_assert(peer_of(&st, "tallinn")->needs_full_resync);
    bs_status_fini(&st);
}

Test(status, a_record_that_does_not_decode_fails_the_count)
{
    bs_errbuf err = {{0}};
    bs_status st;

    put(&head, "items", "i1");
    {
        uint8_t key[BS_RECKEY_MAX];
        size_t klen = bs_record_key(key, "items", "bad");
        bst_damage(head.n->store, BST_RECORDS, bs_mem(key, klen),
                   bs_str("junk"));
    }
    cr_assert_eq(read_status(&head, T0, 1, &st, &err), BS_ESTORE);
    cr_assert_str_eq(err.msg, "store is corrupt: a record of items does not "
                              "decode; restore from a backup");
    /* Without the count the status still reads. */
    status(&head, T0, 0, &st);
    bs_status_fini(&st);
}

/* ---- clocks (replication/clock.h) and the last exchange ---- */

static bs_status
clock_status(bst_node *t, uint64_t now, int policy)
{
    bs_status_opts o = {now,           t->core.retention_ms, 0,
                        t->core.clock, t->core.max_skew_ms,  policy};
    bs_errbuf err = {{0}};
    bs_meta m = bst_meta(t);
    bs_status st;
    bs_txn *txn;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_status_read(txn, &m, &o, &st, &err), &err, "status");
    bs_txn_abort(txn);
    return st;
}

Test(status, each_peers_clock_and_the_nodes_verdict_are_reported)
{
    const bs_peer_status *p;
    bst_sync_result r;
    bs_status st;
    json_t *j;

    ct.ms = T0 + 10 * 60000; /* tallinn runs ten minutes fast */
    bst_pair2(&head, &tallinn);
    cr_assert_eq(bst_sync(&tallinn, &head, NULL, NULL, &r), BS_OK, "%s",
                 r.msg_a);
    /* tallinn: head's clock is 600 s behind; tallinn is ahead beyond the
     * bound and corrects its stamps. */
    st = clock_status(&tallinn, ct.ms, BS_CLOCK_CORRECT);
    p = peer_of(&st, "head");
    cr_assert(p->clock_known);
    cr_assert_eq(p->clock_offset_ms, -600000);
    cr_assert_eq(p->clock_error_ms, 0, "frozen clocks: exact bounds");
    cr_assert_eq(p->clock_at_ms, ct.ms);
    cr_assert_eq(st.clock.ahead_ms, 600000);
    cr_assert_str_eq(st.clock.peer, "head");
    cr_assert_eq(st.clock_action, BS_CLOCK_CORRECT + 1);
    j = bs_render_status(&st);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(j, "clock"), "action")),
                     "correct");
    json_decref(j);
    bs_status_fini(&st);
    st = clock_status(&tallinn, ct.ms, BS_CLOCK_REFUSE);
    cr_assert_eq(st.clock_action, BS_CLOCK_REFUSE + 1);
    bs_status_fini(&st);
    /* head: tallinn's clock is 600 s ahead; head itself is in step. */
    st = clock_status(&head, ch.ms, BS_CLOCK_CORRECT);
    p = peer_of(&st, "tallinn");
    cr_assert_eq(p->clock_offset_ms, 600000);
    cr_assert_eq(st.clock.ahead_ms, 0);
    cr_assert_eq(st.clock_action, 0);
    cr_assert_eq(st.clock.npeers, 1);
    bs_status_fini(&st);
}

Test(status, a_peer_never_met_over_the_network_has_no_clock)
{
    bs_status st;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn); /* a file bounds no clock */
    st = clock_status(&tallinn, ct.ms, BS_CLOCK_CORRECT);
    cr_assert_not(peer_of(&st, "head")->clock_known);
    cr_assert_eq(st.clock.npeers, 0);
    cr_assert_eq(st.clock_action, 0);
    bs_status_fini(&st);
}

/* ---- the head office's view of its offices (issue 9 item 8) ---- */

static void
declare_hub_only(const char *coll)
{
    bs_collection r;
    bs_errbuf err = {{0}};
    bs_err rv;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", coll);
    r.writers = BS_WRITERS_HUB;
    r.set = BS_RULE_WRITERS;
    rv = bs_collections_declare(&head.core, &r, NULL, &err);
    cr_assert_eq(rv, BS_OK, "declare: %s", bs_errmsg(&err, rv));
}

static const bs_office_status *
office_of(const bs_status *st, const char *name)
{
    for (size_t i = 0; i < st->noffices; i++)
        if (strcmp(st->offices[i].name, name) == 0)
            return &st->offices[i];
    cr_assert_fail("no office %s in the status", name);
    return NULL;
}

static json_t *
json_office(json_t *j, const char *name)
{
    json_t *o;
    size_t i;

    json_array_foreach(
        json_object_get(j, "offices"), i,
        o) if (strcmp(json_string_value(json_object_get(o, "name")), name) ==
               0) return o;
    cr_assert_fail("no office %s in the JSON status", name);
    return NULL;
}

/* tallinn writes offline after the head office made prices hub-only: the
 * hub's status shows when it last heard from tallinn, what is pending
 * with it, and its change refused by rule with the reason; doctor names
 * the office, the count and the reason. */
Test(status, each_office_shows_last_contact_lag_and_changes_refused_by_rule)
{
    const bs_office_status *o;
    bs_errbuf err = {{0}};
    bs_problems probs = {0};
    bs_health_opts ho = {0};
    uint64_t wrote;
    bs_status st;
    bs_txn *txn;
    json_t *j, *jo;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn);
    carry(&tallinn, &head); /* acknowledges the introduction */
    ch.ms += 1000;
    declare_hub_only("prices"); /* head seq 2, not yet at tallinn */
    ct.ms += 5000;
    wrote = ct.ms;
    {
        bst_op ops[2] = {{"prices", "p1", "{\"eur\":9}"},
                         {"notes", "n1", "{\"text\":\"hi\"}"}};

        cr_assert_eq(bst_write(&tallinn, ops, 2, NULL, &err), BS_OK, "%s",
                     err.msg);
    }
    ch.ms += 2000;
    carry(&tallinn, &head);
    status(&head, ch.ms + 60000, 0, &st);
    cr_assert_eq(st.noffices, 1, "only tallinn: the hub itself is not listed");
    o = office_of(&st, "tallinn");
    cr_assert_eq(memcmp(o->pk, bst_meta(&tallinn).pk, BS_PK_LEN), 0);
    cr_assert_eq(o->role, BS_ROLE_BRANCH);
    cr_assert(o->member);
    cr_assert_not(o->revoked);
    cr_assert_geq(o->peer, 0);
    cr_assert_eq(o->last_ok_ms, ch.ms, "the import is the last contact");
    cr_assert_eq(o->last_set_ms, wrote, "its set's own time");
    cr_assert_eq(o->changes, 2);
    cr_assert_eq(o->pending_out, 1, "the rule it has not acknowledged");
    cr_assert_eq(o->pending_in, 0);
    cr_assert_eq(o->oldest_unacked_age_s, 62);
    cr_assert_eq(o->refused_by_rule, 1);
    cr_assert_str_eq(o->refused_first, "only the hub writes prices (writers "
                                       "hub)");
    j = bs_render_status(&st);
    jo = json_office(j, "tallinn");
    cr_assert_str_eq(json_string_value(json_object_get(jo, "role")), "branch");
    cr_assert(json_is_true(json_object_get(jo, "paired")));
    cr_assert_eq(json_integer_value(json_object_get(jo, "last_success_ms")),
                 (json_int_t)ch.ms);
    cr_assert_eq(json_integer_value(json_object_get(jo, "last_set_ms")),
                 (json_int_t)wrote);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(jo, "lag"),
                                                    "pending_out")),
                 1);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(jo, "refused_by_rule"), "count")),
                 1);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(jo, "refused_by_rule"), "first")),
                     "only the hub writes prices (writers hub)");
    json_decref(j);
    /* doctor: one line naming the office, the count and the reason */
    ho.now_ms = ch.ms;
    ho.daemon = -1;
    bst_ok(bs_store_read(head.n->store, &txn, &err), &err, "read");
    cr_assert_eq(bs_health_check(txn, &st, 0, &ho, &probs), BS_OK);
    bs_txn_abort(txn);
    {
        const bs_problem *p = NULL;

        for (size_t i = 0; i < probs.n; i++)
            if (strcmp(probs.v[i].kind, "refused_by_rule") == 0) {
                cr_assert_null(p, "one line per office");
                p = &probs.v[i];
            }
        cr_assert_not_null(p, "doctor does not report the refusal");
        cr_assert_str_eq(p->subject, "tallinn");
        cr_assert_str_eq(p->what,
                         "1 change written at tallinn was refused by rule "
                         "(first: only the hub writes prices (writers hub))");
        cr_assert(strstr(p->todo, "branchsync collection NAME --writers"), "%s",
                  p->todo);
    }
    bs_problems_fini(&probs);
    bs_status_fini(&st);
    /* Caught up: no lag; the count stays, with its first example. */
    carry(&head, &tallinn);
    carry(&tallinn, &head);
    status(&head, ch.ms, 0, &st);
    o = office_of(&st, "tallinn");
    cr_assert_eq(o->pending_out, 0);
    cr_assert_eq(o->refused_by_rule, 1);
    bs_status_fini(&st);
    /* tallinn sees the head office, which refused nothing of it */
    status(&tallinn, ct.ms, 0, &st);
    o = office_of(&st, "head");
    cr_assert_eq(o->role, BS_ROLE_HUB);
    cr_assert(o->member, "the hub is a member by definition");
    cr_assert_eq(o->refused_by_rule, 0);
    cr_assert_eq(o->changes, 2);
    j = bs_render_status(&st);
    cr_assert(json_is_null(json_object_get(
        json_object_get(json_office(j, "head"), "refused_by_rule"), "first")));
    json_decref(j);
    bs_status_fini(&st);
}

/* A member this node is not paired with is listed, without a lag. */
Test(status, a_member_not_paired_here_is_an_office_without_lag)
{
    bst_clock cr = {T0};
    bs_clock c = bst_clock_of(&cr);
    bst_node riga;
    bs_status st;
    json_t *j, *jo;

    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &tallinn);
    bst_pair2(&head, &riga);
    carry(&head, &riga); /* riga joins */
    put(&riga, "notes", "r1");
    carry(&riga, &head);
    carry(&head, &tallinn);
    status(&tallinn, ct.ms, 0, &st);
    cr_assert_eq(st.noffices, 2);
    cr_assert_lt(office_of(&st, "riga")->peer, 0);
    cr_assert(office_of(&st, "riga")->member);
    cr_assert_eq(office_of(&st, "riga")->changes, 1);
    cr_assert_eq(office_of(&st, "riga")->last_ok_ms, 0);
    cr_assert_geq(office_of(&st, "head")->peer, 0);
    j = bs_render_status(&st);
    jo = json_office(j, "riga");
    cr_assert(json_is_false(json_object_get(jo, "paired")));
    cr_assert(json_is_null(json_object_get(jo, "lag")));
    json_decref(j);
    bs_status_fini(&st);
    bst_node_free(&riga);
}

/* The problems doctor reports at now for st, as node t sees it. */
static int
flags_refused(bst_node *t, const bs_status *st, uint64_t now)
{
    bs_errbuf err = {{0}};
    bs_problems probs = {0};
    bs_health_opts ho = {0};
    bs_txn *txn;
    int n = 0;

    ho.now_ms = now;
    ho.daemon = -1;
    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    cr_assert_eq(bs_health_check(txn, st, 0, &ho, &probs), BS_OK);
    bs_txn_abort(txn);
    for (size_t i = 0; i < probs.n; i++)
        n += strcmp(probs.v[i].kind, "refused_by_rule") == 0;
    bs_problems_fini(&probs);
    return n;
}

/* Refusals by rule are counted for good, with the time of the latest;
 * doctor flags an office only while its latest refusal is less than a
 * week old, so an old, understood problem does not stay flagged. */
Test(status, doctor_flags_refusals_by_rule_of_the_last_week_only)
{
    const bs_office_status *o;
    bs_errbuf err = {{0}};
    uint64_t at, day = 24ull * 3600 * 1000;
    bs_status st;
    json_t *j;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn);
    carry(&tallinn, &head);
    ch.ms += 1000;
    declare_hub_only("prices");
    ct.ms += 5000;
    cr_assert_eq(bst_put(&tallinn, "prices", "p1", "{\"eur\":9}", &err), BS_OK,
                 "%s", err.msg);
    ch.ms += 2000;
    at = ch.ms;
    carry(&tallinn, &head);
    status(&head, at, 0, &st);
    o = office_of(&st, "tallinn");
    cr_assert_eq(o->refused_by_rule, 1);
    cr_assert_eq(o->refused_last_ms, at, "the time of the refusal");
    j = bs_render_status(&st);
    cr_assert_eq(
        json_integer_value(json_object_get(
            json_object_get(json_office(j, "tallinn"), "refused_by_rule"),
            "last_ms")),
        (json_int_t)at);
    json_decref(j);
    cr_assert_eq(flags_refused(&head, &st, at + 6 * day), 1, "within a week");
    cr_assert_eq(flags_refused(&head, &st, at + 8 * day), 0,
                 "a week without refusals: no longer a problem");
    bs_status_fini(&st);
    /* the count stays in status */
    status(&head, at + 8 * day, 0, &st);
    cr_assert_eq(office_of(&st, "tallinn")->refused_by_rule, 1);
    bs_status_fini(&st);
}
