/*
 * test_clock.c - a node's clock against its peers' (replication/clock.h,
 * docs/design.md "Clocks and the skew hold"): the bounds an exchange
 * gives, the verdict over the peers, and what local writes do about it
 * (replication/local.c): stamped with the peers' clock, or refused; a
 * step of the wall clock seen without an exchange; a clock fixed after it
 * stamped ahead.  And the residual: what a node writes before it learns
 * is held by its peers and reported to it.  Every node has an injected
 * clock; nothing sleeps.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../../node/client.h"
#include "../../replication/retry.h"
#include "../lib/fixture.h"

#define T0       1800000000000ull
#define AHEAD_MS 600000ull /* the branch runs ten minutes fast */

/* A wall clock with a base (hlc.h): a step moves both, time passing moves
 * only the wall. */
typedef struct step_clock {
    uint64_t ms;
    int64_t base;
} step_clock;

static uint64_t
sc_now(void *ctx)
{
    return ((step_clock *)ctx)->ms;
}

static int
sc_base(void *ctx, bs_clock_base *b)
{
    memset(b->boot, 0x42, sizeof b->boot);
    b->ms = ((step_clock *)ctx)->base;
    return 1;
}

static char root[128];
static step_clock ch, cb; /* the hub's and the branch's */
static bst_node head, br;

static void
setup(void)
{
    bs_clock a = {sc_now, &ch, sc_base}, b = {sc_now, &cb, sc_base};

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch = (step_clock){T0, 1000};
    cb = (step_clock){T0 + AHEAD_MS, 1000 + (int64_t)AHEAD_MS};
    bst_root(root, sizeof root, "clock");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&br, root, "tallinn", BS_ROLE_BRANCH, &b);
    bst_pair2(&head, &br);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&br);
    bst_rmtree(root);
    bst_leak_check("test_clock");
}

TestSuite(clock, .init = setup, .fini = teardown, .timeout = 60);

/* Real time passes: both walls move, no base moves. */
static void
pass_ms(uint64_t ms)
{
    ch.ms += ms;
    cb.ms += ms;
}

static void
put(bst_node *t, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, "customers", id, json, &err);

    cr_assert_eq(rv, BS_OK, "%s: %s", t->name, bs_errmsg(&err, rv));
}

static void
sync_ok(bst_node *a, bst_node *b, bst_sync_result *r)
{
    bs_err rv = bst_sync(a, b, NULL, NULL, r);

    cr_assert_eq(rv, BS_OK, "%s / %s", r->msg_a, r->msg_b);
}

/* customers/id on t has "city" = want. */
static void
city_is(bst_node *t, const char *id, const char *want)
{
    char *got = bst_get(t, "customers", id), exp[128];

    snprintf(exp, sizeof exp, "\"city\":\"%s\"", want);
    cr_assert(got != NULL && strstr(got, exp), "%s: %s/%s is %s, not %s",
              t->name, "customers", id, got ? got : "(none)", want);
    free(got);
}

static bs_clock_verdict
verdict_of(bst_node *t)
{
    bs_clock_verdict v;
    bs_errbuf err = {{0}};
    bs_txn *txn;

    cr_assert_eq(bs_store_read(t->core.store, &txn, &err), BS_OK);
    cr_assert_eq(bs_clock_judge_txn(txn, t->core.clock, &v), BS_OK);
    bs_txn_abort(txn);
    return v;
}

/* ---- the scenario ---- */

Test(clock, a_branch_ten_minutes_ahead_cannot_win_over_a_later_hub_edit)
{
    bst_sync_result r;
    bst_counts c;
    bs_clock_verdict v;

    /* The branch's first exchange (it joins) tells it where it stands. */
    sync_ok(&br, &head, &r);
    v = verdict_of(&br);
    cr_assert_eq(v.ahead_ms, (int64_t)AHEAD_MS);
    cr_assert_str_eq(v.peer, "head");
    cr_assert_eq(bs_clock_sample_ahead(&r.sa.clock), (int64_t)AHEAD_MS);
    /* The branch writes; 4 s later (real time) the hub edits the field. */
    put(&br, "c1", "{\"city\":\"Tartu\"}");
    pass_ms(4000);
    put(&head, "c1", "{\"city\":\"Tallinn\"}");
    sync_ok(&br, &head, &r);
    bst_count(&head, &c);
    cr_assert_eq(c.held, 0,
                 "the branch's write was stamped with the hub's "
                 "clock: nothing to hold");
    city_is(&head, "c1", "Tallinn");
    city_is(&br, "c1", "Tallinn");
    /* And it stays so once any hold would have expired. */
    pass_ms(AHEAD_MS);
    sync_ok(&br, &head, &r);
    city_is(&head, "c1", "Tallinn");
    city_is(&br, "c1", "Tallinn");
}

Test(clock, the_branch_is_told_at_its_sync)
{
    bst_sync_result r;
    char problem[BS_ERRMSG_LEN];

    sync_ok(&br, &head, &r);
    bs_client_problem(&r.sa, "head", "", &br.n->cfg, problem, sizeof problem);
    cr_assert_str_eq(problem, "this node's clock is 600 s ahead of head's; "
                              "fix this node's clock (see status)");
    /* The hub sees the branch ahead, not itself: nothing to say there. */
    bs_client_problem(&r.sb, "tallinn", "", &head.n->cfg, problem,
                      sizeof problem);
    cr_assert_str_eq(problem, "");
}

Test(clock, what_was_written_before_it_knew_is_held_and_reported)
{
    bst_sync_result r;
    bs_retry_due due;
    bs_xstats st;
    bs_errbuf err = {{0}};
    char problem[BS_ERRMSG_LEN];
    bs_txn *t;

    /* The residual window: written before any exchange told it. */
    put(&br, "c1", "{\"city\":\"Tartu\"}");
    sync_ok(&br, &head, &r);
    cr_assert_eq(r.sa.held_there, 1);
    cr_assert_eq(r.sa.held_there_own, 1);
    bs_client_problem(&r.sa, "head", "", &br.n->cfg, problem, sizeof problem);
    cr_assert_str_eq(problem,
                     "1 change set sent to head was held there: our clock is "
                     "600 s ahead of head's; fix this node's clock (see "
                     "status)");
    /* The hub knows when it may apply: when its own clock is within
     * max_skew of the set's stamp. */
    cr_assert_eq(bs_store_read(head.core.store, &t, &err), BS_OK);
    cr_assert_eq(bs_retry_when(t, ch.ms, head.core.max_skew_ms, &due), BS_OK);
    bs_txn_abort(t);
    cr_assert_eq(due.waiting, 1);
    cr_assert_eq(due.clock_held, 1);
    cr_assert_eq(due.clock_due_ms, T0 + AHEAD_MS - head.core.max_skew_ms);
    /* Retried before then: still held; at that time: applied. */
    cr_assert_eq(bs_retry_held(head.core.store, head.core.clock,
                               head.core.max_skew_ms, &st, &err),
                 BS_OK);
    cr_assert_eq(st.sets, 0);
    cr_assert_eq(bs_store_read(head.core.store, &t, &err), BS_OK);
    cr_assert_eq(bs_retry_when(t, ch.ms, head.core.max_skew_ms, &due), BS_OK);
    bs_txn_abort(t);
    cr_assert_eq(due.waiting, 1, "held again");
    cr_assert_eq(due.clock_ready, 0);
    ch.ms = due.clock_due_ms;
    cr_assert_eq(bs_store_read(head.core.store, &t, &err), BS_OK);
    cr_assert_eq(bs_retry_when(t, ch.ms, head.core.max_skew_ms, &due), BS_OK);
    bs_txn_abort(t);
    cr_assert_eq(due.clock_ready, 1, "its time has come");
    cr_assert_eq(due.clock_due_ms, 0, "none is still to come");
    cr_assert_eq(bs_retry_held(head.core.store, head.core.clock,
                               head.core.max_skew_ms, &st, &err),
                 BS_OK, "%s", err.msg);
    cr_assert_eq(st.sets, 1);
    cr_assert_eq(st.changes, 1);
    city_is(&head, "c1", "Tartu");
}

/* ---- the policies ---- */

Test(clock, refuse_policy_refuses_local_writes_naming_the_offset_and_peer)
{
    bst_sync_result r;
    bs_errbuf err = {{0}};
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_err rv;

    sync_ok(&br, &head, &r);
    br.core.clock_ahead = BS_CLOCK_REFUSE;
    bst_fingerprint(&br, before);
    rv = bst_put(&br, "customers", "c1", "{\"city\":\"Tartu\"}", &err);
    cr_assert_eq(rv, BS_EIO);
    cr_assert_eq(bs_err_exit_code(rv), 1);
    cr_assert(strstr(err.msg, "600 s ahead of head's") &&
                  strstr(err.msg, "refused"),
              "%s", err.msg);
    bst_fingerprint(&br, after);
    cr_assert_eq(memcmp(before, after, BS_HASH_LEN), 0, "nothing written");
    /* Fixed (a step back of the wall clock): writes are taken at once. */
    cb.ms -= AHEAD_MS;
    cb.base -= (int64_t)AHEAD_MS;
    put(&br, "c1", "{\"city\":\"Tartu\"}");
}

Test(clock, a_clock_within_max_skew_is_left_as_it_is)
{
    bst_sync_result r;
    bst_counts c;

    cb.ms = T0 + head.core.max_skew_ms - 1000;
    cb.base = 1000 + (int64_t)head.core.max_skew_ms - 1000;
    sync_ok(&br, &head, &r);
    cr_assert_eq(verdict_of(&br).ahead_ms,
                 (int64_t)head.core.max_skew_ms - 1000);
    br.core.clock_ahead = BS_CLOCK_REFUSE; /* not beyond: not refused */
    put(&br, "c1", "{\"city\":\"Tartu\"}");
    sync_ok(&br, &head, &r);
    bst_count(&head, &c);
    cr_assert_eq(c.held, 0);
    city_is(&head, "c1", "Tartu");
}

Test(clock, a_node_behind_its_peers_corrects_nothing)
{
    bst_sync_result r;
    bs_clock_verdict v;

    /* The hub is ten minutes behind the branch: the hub is not ahead of
     * anyone, and the branch corrects (its peers' clock is the rule). */
    sync_ok(&head, &br, &r);
    v = verdict_of(&head);
    cr_assert_eq(v.ahead_ms, 0);
    cr_assert_eq(v.npeers, 1);
    cr_assert_eq(verdict_of(&br).ahead_ms, (int64_t)AHEAD_MS,
                 "measured as responder too");
}

/* ---- steps of the wall clock, seen without an exchange ---- */

Test(clock, a_step_ahead_after_the_last_exchange_is_corrected_at_once)
{
    bst_sync_result r;
    bst_counts c;

    cb = (step_clock){T0, 1000}; /* in step to begin with */
    sync_ok(&br, &head, &r);
    cr_assert_eq(verdict_of(&br).ahead_ms, 0);
    /* Someone sets the branch's clock ten minutes fast. */
    cb.ms += AHEAD_MS;
    cb.base += (int64_t)AHEAD_MS;
    cr_assert_eq(verdict_of(&br).ahead_ms, (int64_t)AHEAD_MS);
    put(&br, "c1", "{\"city\":\"Tartu\"}");
    pass_ms(4000);
    put(&head, "c1", "{\"city\":\"Tallinn\"}");
    sync_ok(&br, &head, &r);
    bst_count(&head, &c);
    cr_assert_eq(c.held, 0);
    city_is(&head, "c1", "Tallinn");
    city_is(&br, "c1", "Tallinn");
}

Test(clock, a_fixed_clock_is_not_corrected_any_more)
{
    bst_sync_result r;

    sync_ok(&br, &head, &r);
    cr_assert_eq(verdict_of(&br).ahead_ms, (int64_t)AHEAD_MS);
    /* The admin sets the clock right: the stored offset follows. */
    cb.ms -= AHEAD_MS;
    cb.base -= (int64_t)AHEAD_MS;
    cr_assert_eq(verdict_of(&br).ahead_ms, 0);
    /* The hub edits, then the branch edits later (concurrently): the later
     * edit wins.  A stale correction would stamp it ten minutes back. */
    pass_ms(1000);
    put(&head, "c2", "{\"city\":\"Narva\"}");
    pass_ms(1000);
    put(&br, "c2", "{\"city\":\"Parnu\"}");
    sync_ok(&br, &head, &r);
    city_is(&head, "c2", "Parnu");
    city_is(&br, "c2", "Parnu");
}

Test(clock, a_clock_fixed_after_writing_ahead_stamps_with_the_wall_again)
{
    bst_sync_result r;

    /* Written ahead before any exchange, then the clock is fixed (no
     * base: nothing saw the step; no exchange measured it either). */
    br.core.clock.base = NULL;
    put(&br, "c1", "{\"city\":\"Tartu\"}");
    cb.ms -= AHEAD_MS;
    /* Its own record was stamped ahead: a new write still overwrites it. */
    put(&br, "c1", "{\"city\":\"Tartu 2\"}");
    city_is(&br, "c1", "Tartu 2");
    /* Another record is stamped with the wall clock, not ten minutes
     * ahead: the hub's later edit of it wins everywhere. */
    pass_ms(1000);
    put(&br, "c3", "{\"city\":\"Viljandi\"}");
    pass_ms(1000);
    put(&head, "c3", "{\"city\":\"Rakvere\"}");
    sync_ok(&br, &head, &r);
    pass_ms(AHEAD_MS); /* the sets held at the hub apply */
    sync_ok(&br, &head, &r);
    city_is(&head, "c1", "Tartu 2");
    city_is(&head, "c3", "Rakvere");
    city_is(&br, "c3", "Rakvere");
}

/* ---- the verdict ---- */

static bs_peer
measured(const char *name, int64_t lo, int64_t hi)
{
    bs_peer p;

    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", name);
    p.clock_lo_ms = lo;
    p.clock_hi_ms = hi;
    p.clock_at_ms = T0;
    return p;
}

static uint64_t
at_t0(void *ctx)
{
    (void)ctx;
    return T0 + 1000;
}

Test(clock, a_minority_of_slow_peers_cannot_move_a_node)
{
    bs_clock c = {at_t0, NULL, NULL};
    bs_peer v[3] = {measured("slow", -600500, -600000),
                    measured("b", -200, 300), measured("c", -100, 50)};
    bs_clock_verdict out;

    bs_clock_judge(v, 3, c, &out);
    cr_assert_eq(out.npeers, 3);
    cr_assert_eq(out.ahead_ms, 0, "one slow peer of three moves nothing");
    /* Ahead of every peer: ahead of the median by what is certain. */
    v[1] = measured("b", -600400, -600100);
    v[2] = measured("c", -600900, -600200);
    bs_clock_judge(v, 3, c, &out);
    cr_assert_eq(out.ahead_ms, 600100);
    cr_assert_str_eq(out.peer, "b");
    /* Two peers: ahead of both, by the smaller amount. */
    bs_clock_judge(v + 1, 2, c, &out);
    cr_assert_eq(out.ahead_ms, 600100);
    v[2] = measured("c", -100, 50);
    bs_clock_judge(v + 1, 2, c, &out);
    cr_assert_eq(out.ahead_ms, 0, "ahead of one peer of two: not a majority");
}

Test(clock, old_or_missing_measurements_do_not_count)
{
    bs_clock c = {at_t0, NULL, NULL};
    bs_peer v[2] = {measured("old", -600500, -600000),
                    measured("never", -600500, -600000)};
    bs_clock_verdict out;

    v[0].clock_at_ms = T0 - BS_CLOCK_SAMPLE_MAX_AGE_MS - 1;
    v[1].clock_at_ms = 0;
    bs_clock_judge(v, 2, c, &out);
    cr_assert_eq(out.npeers, 0);
    cr_assert_eq(out.ahead_ms, 0);
}

Test(clock, an_exchange_bounds_the_peers_clock_from_what_was_sent_when)
{
    bs_clock_sample s;

    memset(&s, 0, sizeof s);
    /* Our hello at 1000; theirs made at 5200 (their clock), received at
     * 1100 (ours): their clock is 4100..4200 ahead. */
    bs_clock_sample_recv(&s, 5200, 1100);
    bs_clock_sample_reply(&s, 5200, 1000);
    cr_assert(s.has_lo && s.has_hi);
    cr_assert_eq(s.lo_ms, 4100);
    cr_assert_eq(s.hi_ms, 4200);
    cr_assert_eq(bs_clock_sample_ahead(&s), 0, "we are behind");
    /* Later messages only narrow the bounds. */
    bs_clock_sample_recv(&s, 9000, 4850);
    bs_clock_sample_reply(&s, 9000, 1000);
    cr_assert_eq(s.lo_ms, 4150);
    cr_assert_eq(s.hi_ms, 4200);
    /* A field left out (0: the protocol calls it informative) says
     * nothing. */
    memset(&s, 0, sizeof s);
    bs_clock_sample_recv(&s, 0, 1100);
    bs_clock_sample_reply(&s, 0, 1000);
    cr_assert(!s.has_lo && !s.has_hi);
    /* Nor does a time no clock can show (and nothing overflows). */
    bs_clock_sample_recv(&s, UINT64_MAX, 1100);
    bs_clock_sample_reply(&s, (uint64_t)1 << 63, 1000);
    cr_assert(!s.has_lo && !s.has_hi);
}
