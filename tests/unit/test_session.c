/*
 * test_session.c - the network exchange state machine, driven in memory:
 * two nodes made by the test fixture (tests/lib/fixture.h), their
 * sessions' messages passed between them by bst_sync, watched or cut by
 * the test.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../node/client.h"
#include "../../replication/status.h"
#include "../lib/fixture.h"

static char root[128];
static bst_node hub, br, other;

/* count records r<from>..r<from+count-1> = {"v": val}, one transaction. */
static void
puts_at(bst_node *x, int from, int count, const char *val)
{
    char **ids = calloc((size_t)count + 1, sizeof *ids), json[256];
    const char **js = calloc((size_t)count + 1, sizeof *js);
    bs_errbuf err = {{0}};
    bs_err rv;

    cr_assert(ids != NULL && js != NULL);
    snprintf(json, sizeof json, "{\"v\":\"%s\"}", val);
    for (int i = 0; i < count; i++) {
        ids[i] = malloc(16);
        cr_assert_not_null(ids[i]);
        snprintf(ids[i], 16, "r%06d", from + i);
        js[i] = json;
    }
    rv = bst_put_many(x, "items", (const char *const *)ids, js, (size_t)count,
                      &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    for (int i = 0; i < count; i++)
        free(ids[i]);
    free(ids);
    free(js);
}

static void
digest_of(bst_node *x, uint8_t d[BS_HASH_LEN], uint64_t *nrec)
{
    bst_digest(x, d, nrec);
}

/* Watching the messages of an exchange: SETs each side sent that the
 * other has not yet acknowledged with CREDIT, and the most ever. */
typedef struct flight {
    int64_t unacked[2]; /* [1]: sent by a */
    int64_t max;
} flight;

static int
watch(void *ctx, int from_a, uint8_t **msg, size_t *n)
{
    flight *f = ctx;

    if (*n >= 1 && (*msg)[0] == BS_MSG_SET && ++f->unacked[from_a] > f->max)
        f->max = f->unacked[from_a];
    if (*n >= 5 && (*msg)[0] == BS_MSG_CREDIT)
        f->unacked[!from_a] -= bs_get_u32be(*msg + 1);
    return 1;
}

static char last_errors[2 * BS_ERRMSG_LEN + 16];

/* Run one exchange a -> b to the end (bst_sync); returns the final states
 * and, with max_inflight, the most SETs ever unacknowledged either way. */
static void
exchange(bst_node *a, bst_node *b, bs_session_state *sa, bs_session_state *sb,
         size_t *max_inflight)
{
    flight f = {{0, 0}, 0};
    bst_sync_result r;
    bs_err rv = bst_sync(a, b, watch, &f, &r);

    (void)rv; /* the states say how it ended */
    *sa = r.a;
    *sb = r.b;
    snprintf(last_errors, sizeof last_errors, "a: %s / b: %s", r.msg_a,
             r.msg_b);
    if (max_inflight != NULL)
        *max_inflight = (size_t)f.max;
}

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "session");
    bst_node_new(&hub, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&br, root, "tallinn", BS_ROLE_BRANCH, NULL);
    bst_node_new(&other, root, "tartu", BS_ROLE_BRANCH, NULL);
    bst_pair2(&hub, &br);
}

static void
teardown(void)
{
    bst_node_free(&hub);
    bst_node_free(&br);
    bst_node_free(&other);
    bst_rmtree(root);
}

TestSuite(session, .init = setup, .fini = teardown, .timeout = 120);

Test(session, both_directions_in_one_exchange_and_join)
{
    bs_session_state sa, sb;
    uint8_t d1[BS_HASH_LEN], d2[BS_HASH_LEN];
    uint64_t n1, n2;

    puts_at(&hub, 0, 100, "from hub");
    puts_at(&br, 1000, 50, "offline at the branch before joining");
    exchange(&hub, &br, &sa, &sb, NULL);
    cr_assert_eq(sa, BS_SESSION_COMPLETE, "%s", last_errors);
    cr_assert_eq(sb, BS_SESSION_COMPLETE, "%s", last_errors);
    digest_of(&hub, d1, &n1);
    digest_of(&br, d2, &n2);
    cr_assert_eq(n1, 150);
    cr_assert_eq(n2, 150);
    cr_assert_eq(memcmp(d1, d2, BS_HASH_LEN), 0);
}

Test(session, backlog_streams_within_the_window)
{
    bs_session_state sa, sb;
    uint8_t d1[BS_HASH_LEN], d2[BS_HASH_LEN];
    uint64_t n1, n2;
    size_t inflight = 0;

    /* 40,000 changes: several sets of BS_SET_MAX_CHANGES. */
    puts_at(&hub, 0, 40000, "backlog");
    exchange(&br, &hub, &sa, &sb, &inflight);
    cr_assert_eq(sa, BS_SESSION_COMPLETE, "%s", last_errors);
    cr_assert_eq(sb, BS_SESSION_COMPLETE, "%s", last_errors);
    /* The hub streams the backlog: at most a window of its SETs is ever
     * unacknowledged by CREDIT (the watch counts both directions). */
    cr_assert_gt(inflight, 0, "no SET was watched");
    cr_assert_leq(inflight, BS_SESSION_WINDOW, "%zu sets in flight", inflight);
    digest_of(&hub, d1, &n1);
    digest_of(&br, d2, &n2);
    cr_assert_eq(n2, 40000);
    cr_assert_eq(memcmp(d1, d2, BS_HASH_LEN), 0);
}

Test(session, second_exchange_moves_only_what_is_new)
{
    bs_session_state sa, sb;
    bst_sync_result r;
    uint64_t sent = 0;
    bs_err rv;

    puts_at(&hub, 0, 10, "one");
    exchange(&hub, &br, &sa, &sb, NULL);
    cr_assert_eq(sa, BS_SESSION_COMPLETE, "%s", last_errors);
    puts_at(&hub, 10, 5, "two");
    rv = bst_sync(&hub, &br, NULL, NULL, &r);
    cr_assert_eq(rv, BS_OK, "%s / %s", r.msg_a, r.msg_b);
    cr_assert_eq(r.a, BS_SESSION_COMPLETE);
    sent = r.sa.sets_sent;
    cr_assert_eq(sent, 1, "only the new set travels, not %llu",
                 (unsigned long long)sent);
    cr_assert_eq(r.sb.sets_sent, 0);
}

Test(session, unpaired_node_is_refused)
{
    bs_session_state sa, sb;
    uint8_t d1[BS_HASH_LEN], d2[BS_HASH_LEN];
    uint64_t n1, n2;

    bst_pair(&other, &hub); /* tartu knows the hub; the hub does not know it */
    puts_at(&hub, 0, 3, "x");
    digest_of(&hub, d1, &n1);
    exchange(&other, &hub, &sa, &sb, NULL);
    cr_assert_eq(sa, BS_SESSION_FAILED);
    cr_assert_eq(sb, BS_SESSION_FAILED);
    digest_of(&hub, d2, &n2);
    cr_assert_eq(memcmp(d1, d2, BS_HASH_LEN), 0);
}

/* Pass messages until `sets` SETs of the initiator have passed, then lose
 * everything (the connection drops). */
typedef struct cut {
    int sets, passed;
} cut;

static int
cut_after(void *ctx, int from_a, uint8_t **msg, size_t *n)
{
    cut *c = ctx;

    if (c->passed >= c->sets)
        return 0;
    if (from_a && *n >= 1 && (*msg)[0] == BS_MSG_SET)
        c->passed++;
    return 1;
}

Test(session, interrupted_exchange_resumes)
{
    bs_session_state sa, sb;
    bst_sync_result r;
    cut c = {2, 0};
    uint8_t d1[BS_HASH_LEN], d2[BS_HASH_LEN];
    uint64_t n1, n2;

    puts_at(&hub, 0, 30000, "big");
    /* Deliver the hellos and two sets, then drop the connection. */
    cr_assert_neq(bst_sync(&hub, &br, cut_after, &c, &r), BS_OK);
    cr_assert_eq(c.passed, 2);
    digest_of(&br, d2, &n2);
    /* The hub's first set introduces the branch; the second holds items. */
    cr_assert_eq(n2, BS_SET_MAX_CHANGES, "applied before the cut: %llu",
                 (unsigned long long)n2);
    exchange(&hub, &br, &sa, &sb, NULL);
    cr_assert_eq(sa, BS_SESSION_COMPLETE, "%s", last_errors);
    digest_of(&hub, d1, &n1);
    digest_of(&br, d2, &n2);
    cr_assert_eq(n2, 30000);
    cr_assert_eq(memcmp(d1, d2, BS_HASH_LEN), 0);
}

/* ---- flow control: the credit window (protocol.md 15.3) ---- */

static bs_session *
session_of(bst_node *x, int initiator, const char *peer)
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
    cr_assert_eq(bs_session_new(&cfg, &s), BS_OK);
    return s;
}

/* Deliver every message `from` has now to `to`. */
static void
deliver(bs_session *from, bs_session *to)
{
    uint8_t *m;
    size_t n;

    while (bs_session_output(from, &m, &n) == BS_OK) {
        bs_err rv = bs_session_input(to, m, n);
        (void)rv; /* the states tell */
        free(m);
    }
}

/* The hub's session after the hellos crossed, before it sent anything:
 * its credit is the whole window. */
static bs_session *
streaming_initiator(bs_session **responder)
{
    bs_session *a = session_of(&hub, 1, "tallinn");
    uint8_t *m;
    size_t n;

    *responder = session_of(&br, 0, NULL);
    cr_assert_eq(bs_session_start(a), BS_OK);
    cr_assert_eq(bs_session_output(a, &m, &n), BS_OK); /* the hello */
    cr_assert_eq(bs_session_input(*responder, m, n), BS_OK);
    free(m);
    deliver(*responder, a);
    cr_assert_eq(bs_session_state_of(a), BS_SESSION_STREAMING, "%s",
                 bs_session_error(a));
    return a;
}

Test(session, credit_beyond_the_window_fails_the_session_and_never_wraps)
{
    /* 2^32-4 on a full window made 0 (the sender stalled until the idle
     * limit), 2^32-1 made 3 (accepted); 1 is plainly beyond it. */
    static const uint32_t beyond[] = {0xfffffffcu, 0xffffffffu, 1u};

    for (size_t i = 0; i < sizeof beyond / sizeof beyond[0]; i++) {
        bs_session *b, *a = streaming_initiator(&b);
        uint8_t credit[5] = {BS_MSG_CREDIT};

        bs_put_u32be(credit + 1, beyond[i]);
        cr_assert_eq(bs_session_input(a, credit, sizeof credit), BS_EMALFORMED,
                     "CREDIT %u", beyond[i]);
        cr_assert_eq(bs_session_state_of(a), BS_SESSION_FAILED);
        cr_assert_eq(bs_session_errcode(a), BS_EMALFORMED);
        cr_assert(strstr(bs_session_error(a), "credit beyond the window"), "%s",
                  bs_session_error(a));
        bs_session_free(a);
        bs_session_free(b);
    }
}

Test(session, credit_within_the_window_is_taken)
{
    bs_session *b, *a = streaming_initiator(&b);
    uint8_t credit[5] = {BS_MSG_CREDIT};

    /* A full window takes no more, but nothing less is an error either. */
    bs_put_u32be(credit + 1, 0);
    cr_assert_eq(bs_session_input(a, credit, sizeof credit), BS_OK);
    cr_assert_eq(bs_session_state_of(a), BS_SESSION_STREAMING);
    bs_session_free(a);
    bs_session_free(b);
}

/* Deferred apply (session.h): a SET waits for bs_session_applied, and a
 * peer that does not keep to the window cannot make the receiver hold
 * more than WAIT_MAX (64) of them. */
Test(session, deferred_sets_beyond_the_window_fail_the_session)
{
    bs_session_cfg cfg;
    bs_session *b, *a = session_of(&hub, 1, "tallinn");
    uint8_t set[2] = {BS_MSG_SET, 'x'}, *m;
    size_t n;
    int i;

    memset(&cfg, 0, sizeof cfg);
    cfg.store = br.core.store;
    cfg.sk = br.core.sk;
    cfg.clock = br.core.clock;
    cfg.max_skew_ms = br.core.max_skew_ms;
    cfg.defer_apply = 1;
    cr_assert_eq(bs_session_new(&cfg, &b), BS_OK);
    cr_assert_eq(bs_session_start(a), BS_OK);
    deliver(a, b);
    cr_assert_eq(bs_session_state_of(b), BS_SESSION_STREAMING, "%s",
                 bs_session_error(b));
    while (bs_session_output(b, &m, &n) == BS_OK) /* its hello */
        free(m);
    for (i = 0; i < 64; i++)
        cr_assert_eq(bs_session_input(b, set, sizeof set), BS_OK, "set %d", i);
    /* Nothing answered: no CREDIT before the sets are applied. */
    cr_assert_eq(bs_session_output(b, &m, &n), BS_ENOTFOUND);
    cr_assert_eq(bs_session_input(b, set, sizeof set), BS_EMALFORMED);
    cr_assert_eq(bs_session_state_of(b), BS_SESSION_FAILED);
    cr_assert(strstr(bs_session_error(b), "beyond the window"), "%s",
              bs_session_error(b));
    bs_session_free(a);
    bs_session_free(b); /* ASan: the waiting sets are freed */
}

/* ---- what went wrong in a completed exchange, on both sides ---- */

/* Flip the last byte of the last change of the first SET the initiator
 * sends: a change that no longer matches its signed hash (D13), refused by
 * the receiver. */
static int
tamper_first_set(void *ctx, int from_a, uint8_t **msg, size_t *n)
{
    int *done = ctx;

    if (from_a && !*done && *n > 1 && (*msg)[0] == BS_MSG_SET) {
        (*msg)[1 + bst_last_change_byte(*msg + 1, *n - 1)] ^= 0x01;
        *done = 1;
    }
    return 1;
}

static bs_peer_status
peer_status_of(bst_node *x, const char *peer)
{
    bs_status_opts o = {.now_ms = 1, .clock = x->core.clock};
    bs_errbuf err = {{0}};
    bs_peer_status ps;
    bs_status st;
    bs_txn *t;
    bs_meta m = bst_meta(x);
    int found = 0;

    cr_assert_eq(bs_store_read(x->core.store, &t, &err), BS_OK);
    cr_assert_eq(bs_status_read(t, &m, &o, &st, &err), BS_OK, "%s", err.msg);
    bs_txn_abort(t);
    for (size_t i = 0; i < st.npeers; i++)
        if (strcmp(st.peers[i].name, peer) == 0) {
            ps = st.peers[i];
            found = 1;
        }
    bs_status_fini(&st);
    cr_assert(found, "no peer %s", peer);
    return ps;
}

Test(session, a_refused_set_is_reported_by_the_receiver_and_to_the_sender)
{
    bst_sync_result r;
    bs_peer_status ps;
    char problem[BS_ERRMSG_LEN];
    int done = 0;

    puts_at(&hub, 0, 1, "joined");
    cr_assert_eq(bst_sync(&hub, &br, NULL, NULL, &r), BS_OK, "%s", r.msg_a);
    puts_at(&hub, 1, 1, "second");
    /* The session completes: a refused set is not fatal (P6). */
    cr_assert_eq(bst_sync(&hub, &br, tamper_first_set, &done, &r), BS_OK,
                 "%s / %s", r.msg_a, r.msg_b);
    cr_assert(done);
    cr_assert_eq(r.sb.refused, 1);
    /* The receiver keeps the count and the first reason with the peer. */
    ps = peer_status_of(&br, "head");
    cr_assert_eq(ps.refused_sets, 1);
    cr_assert(strstr(ps.refused_reason, "does not match"), "%s",
              ps.refused_reason);
    /* The sender sees its set go unacknowledged: held or refused there. */
    cr_assert_eq(r.sa.held_there, 1);
    cr_assert_eq(r.sa.held_there_own, 1);
    ps = peer_status_of(&hub, "tallinn");
    cr_assert_eq(ps.held_there, 1);
    /* Both say so in one line (the log, the exchange log, `sync`). */
    bs_client_problem(&r.sb, "head", ps.refused_reason, &br.n->cfg, problem,
                      sizeof problem);
    cr_assert(strstr(problem, "refused 1 change set that head sent"), "%s",
              problem);
    bs_client_problem(&r.sa, "tallinn", "", &hub.n->cfg, problem,
                      sizeof problem);
    cr_assert(strstr(problem, "1 change set sent to tallinn was held or "
                              "refused there; see tallinn's status"),
              "%s", problem);
    /* The next exchange sends it again, and everything clears. */
    cr_assert_eq(bst_sync(&hub, &br, NULL, NULL, &r), BS_OK, "%s", r.msg_a);
    cr_assert_eq(r.sb.refused, 0);
    cr_assert_eq(r.sa.held_there, 0);
    cr_assert_eq(peer_status_of(&br, "head").refused_sets, 0);
    cr_assert_eq(peer_status_of(&hub, "tallinn").held_there, 0);
}
