/*
 * test_session.c - the network exchange state machine, driven in memory:
 * two nodes, their sessions' messages shuttled between them by the test.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../node/node.h"
#include "../../replication/digest.h"
#include "../../replication/local.h"
#include "../../replication/session.h"
#include "../../replication/collections.h"
#include "../../replication/members.h"

static char root[256];

typedef struct node {
    char dir[300];
    bs_node *n;
    const uint8_t *sk;
} node;

static void
mk(node *x, const char *name, int role)
{
    bs_node_init in = {name, role, NULL};
    bs_errbuf err = {{0}};

    snprintf(x->dir, sizeof x->dir, "%s/%s", root, name);
    cr_assert_eq(bs_node_create(x->dir, &in, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(bs_node_open(x->dir, 0, &x->n, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(bs_node_secret(x->n, &x->sk, &err), BS_OK, "%s", err.msg);
}

typedef struct pairw {
    bs_peer *p;
    const uint8_t *sk;
    const char *member; /* hub: introduce this node ID */
} pairw;

static bs_err
pair_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    pairw *w = arg;
    bs_local l;
    bs_field f[2];
    bs_err rv;

    if ((rv = bs_peer_put(t, w->p)) != BS_OK || w->member == NULL)
        return rv;
    memset(f, 0, sizeof f);
    f[0].name = "name";
    f[0].val.type = BS_VTEXT;
    f[0].val.s = w->p->name;
    f[0].val.len = (uint32_t)strlen(w->p->name);
    f[1].name = "role";
    f[1].val.type = BS_VTEXT;
    f[1].val.s = "branch";
    f[1].val.len = 6;
    if ((rv = bs_local_begin(&l, t, w->sk, bs_clock_system, err)) == BS_OK &&
        (rv = bs_local_put(&l, BS_SYS_MEMBERS, w->member, f, 2, err)) == BS_OK)
        rv = bs_local_finish(&l, err);
    bs_local_fini(&l);
    return rv;
}

/* Pair a with b under b's name (a hub also introduces b as a member). */
static void
pair(node *a, node *b)
{
    bs_peer p;
    char id[BS_NODE_ID_LEN + 1];
    pairw w = {&p, a->sk, NULL};
    bs_errbuf err = {{0}};

    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", b->n->meta.name);
    snprintf(p.endpoint, sizeof p.endpoint, "tcp://127.0.0.1:1");
    snprintf(p.schedule, sizeof p.schedule, "manual");
    memcpy(p.pk, b->n->meta.pk, BS_PK_LEN);
    bs_node_id_format(b->n->meta.pk, id);
    if (a->n->meta.role == BS_ROLE_HUB)
        w.member = id;
    cr_assert_eq(bs_store_write(a->n->store, pair_txn, &w, &err), BS_OK, "%s",
                 err.msg);
}

typedef struct put_ctx {
    const uint8_t *sk;
    const char *coll;
    int from, count;
    const char *val;
} put_ctx;

static bs_err
put_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    put_ctx *w = arg;
    bs_local l;
    bs_err rv;

    if ((rv = bs_local_begin(&l, t, w->sk, bs_clock_system, err)) != BS_OK)
        goto out;
    for (int i = w->from; i < w->from + w->count && rv == BS_OK; i++) {
        char id[32];
        bs_field f;
        memset(&f, 0, sizeof f);
        f.name = "v";
        f.val.type = BS_VTEXT;
        f.val.s = w->val;
        f.val.len = (uint32_t)strlen(w->val);
        snprintf(id, sizeof id, "r%06d", i);
        rv = bs_local_put(&l, w->coll, id, &f, 1, err);
    }
    if (rv == BS_OK)
        rv = bs_local_finish(&l, err);
out:
    bs_local_fini(&l);
    return rv;
}

static void
puts_at(node *x, int from, int count, const char *val)
{
    put_ctx w = {x->sk, "items", from, count, val};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_store_write(x->n->store, put_txn, &w, &err), BS_OK, "%s",
                 err.msg);
}

static void
digest_of(node *x, uint8_t d[BS_HASH_LEN], uint64_t *nrec)
{
    bs_txn *t;
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_store_read(x->n->store, &t, &err), BS_OK);
    cr_assert_eq(bs_digest(t, NULL, 0, d, nrec, &err), BS_OK);
    bs_txn_abort(t);
}

/* Deliver one message; the session turns errors into its FAILED state,
 * which the tests check. */
static void
feed(bs_session *s, const uint8_t *m, size_t n)
{
    bs_err e = bs_session_input(s, m, n);

    (void)e;
}

/* Move every queued message of `from` into `to`; returns how many. */
static int
shuttle(bs_session *from, bs_session *to, size_t *max_inflight)
{
    uint8_t *m;
    size_t n;
    int moved = 0;
    size_t sets = 0;

    while (bs_session_output(from, &m, &n) == BS_OK) {
        if (m[0] == BS_MSG_SET)
            sets++;
        feed(to, m, n);
        free(m);
        moved++;
    }
    if (max_inflight && sets > *max_inflight)
        *max_inflight = sets;
    return moved;
}

static char last_errors[2 * BS_ERRMSG_LEN + 16];

/* Run one exchange a -> b to the end; returns the final states. */
static void
exchange(node *a, node *b, bs_session_state *sa, bs_session_state *sb,
         size_t *max_inflight)
{
    bs_session_cfg ca = {a->n->store, a->sk,           bs_clock_system, 60000,
                         1,           b->n->meta.name, b->n->meta.pk,   0};
    bs_session_cfg cb = {b->n->store, b->sk, bs_clock_system, 60000,
                         0,           NULL,  a->n->meta.pk,   0};
    bs_session *x, *y;

    cr_assert_eq(bs_session_new(&ca, &x), BS_OK);
    cr_assert_eq(bs_session_new(&cb, &y), BS_OK);
    cr_assert_eq(bs_session_start(x), BS_OK, "%s", bs_session_error(x));
    for (int round = 0; round < 100000; round++) {
        int moved = shuttle(x, y, max_inflight) + shuttle(y, x, NULL);
        if (moved == 0)
            break;
    }
    *sa = bs_session_state_of(x);
    *sb = bs_session_state_of(y);
    snprintf(last_errors, sizeof last_errors, "a: %s / b: %s",
             bs_session_error(x), bs_session_error(y));
    bs_session_free(x);
    bs_session_free(y);
}

static node hub, br, other;

static void
setup(void)
{
    snprintf(root, sizeof root, "/tmp/bs-session-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    cr_assert_eq(bs_crypto_init(), BS_OK);
    mk(&hub, "head", BS_ROLE_HUB);
    mk(&br, "tallinn", BS_ROLE_BRANCH);
    mk(&other, "tartu", BS_ROLE_BRANCH);
    pair(&hub, &br);
    pair(&br, &hub);
}

static void
teardown(void)
{
    char cmd[400];

    bs_node_close(hub.n);
    bs_node_close(br.n);
    bs_node_close(other.n);
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    cr_assert_eq(system(cmd), 0);
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
    cr_assert_leq(inflight, BS_SESSION_WINDOW, "%zu sets in flight", inflight);
    digest_of(&hub, d1, &n1);
    digest_of(&br, d2, &n2);
    cr_assert_eq(n2, 40000);
    cr_assert_eq(memcmp(d1, d2, BS_HASH_LEN), 0);
}

Test(session, second_exchange_moves_only_what_is_new)
{
    bs_session_state sa, sb;
    bs_session_cfg ca, cb;
    bs_session *x, *y;
    uint64_t sent = 0;

    puts_at(&hub, 0, 10, "one");
    exchange(&hub, &br, &sa, &sb, NULL);
    cr_assert_eq(sa, BS_SESSION_COMPLETE, "%s", last_errors);
    puts_at(&hub, 10, 5, "two");
    ca = (bs_session_cfg){hub.n->store,  hub.sk, bs_clock_system,
                          60000,         1,      "tallinn",
                          br.n->meta.pk, 0};
    cb = (bs_session_cfg){br.n->store, br.sk, bs_clock_system, 60000,
                          0,           NULL,  hub.n->meta.pk,  0};
    cr_assert_eq(bs_session_new(&ca, &x), BS_OK);
    cr_assert_eq(bs_session_new(&cb, &y), BS_OK);
    cr_assert_eq(bs_session_start(x), BS_OK);
    for (int i = 0; i < 1000 && shuttle(x, y, NULL) + shuttle(y, x, NULL); i++)
        ;
    cr_assert_eq(bs_session_state_of(x), BS_SESSION_COMPLETE);
    sent = bs_session_stats_of(x)->sets_sent;
    cr_assert_eq(sent, 1, "only the new set travels, not %llu",
                 (unsigned long long)sent);
    cr_assert_eq(bs_session_stats_of(y)->sets_sent, 0);
    bs_session_free(x);
    bs_session_free(y);
}

Test(session, unpaired_node_is_refused)
{
    bs_session_state sa, sb;
    uint8_t d1[BS_HASH_LEN], d2[BS_HASH_LEN];
    uint64_t n1, n2;

    pair(&other, &hub); /* tartu knows the hub; the hub does not know it */
    puts_at(&hub, 0, 3, "x");
    digest_of(&hub, d1, &n1);
    exchange(&other, &hub, &sa, &sb, NULL);
    cr_assert_eq(sa, BS_SESSION_FAILED);
    cr_assert_eq(sb, BS_SESSION_FAILED);
    digest_of(&hub, d2, &n2);
    cr_assert_eq(memcmp(d1, d2, BS_HASH_LEN), 0);
}

Test(session, interrupted_exchange_resumes)
{
    bs_session_cfg ca = {hub.n->store,  hub.sk, bs_clock_system,
                         60000,         1,      "tallinn",
                         br.n->meta.pk, 0};
    bs_session_cfg cb = {br.n->store, br.sk, bs_clock_system, 60000,
                         0,           NULL,  hub.n->meta.pk,  0};
    bs_session_state sa, sb;
    bs_session *x, *y;
    uint8_t *m, d1[BS_HASH_LEN], d2[BS_HASH_LEN];
    size_t n;
    uint64_t n1, n2;
    int sets = 0;

    puts_at(&hub, 0, 30000, "big");
    cr_assert_eq(bs_session_new(&ca, &x), BS_OK);
    cr_assert_eq(bs_session_new(&cb, &y), BS_OK);
    cr_assert_eq(bs_session_start(x), BS_OK);
    /* Deliver the hellos and two sets, then drop the connection. */
    for (int i = 0; i < 100 && sets < 2; i++) {
        if (bs_session_output(x, &m, &n) == BS_OK) {
            sets += m[0] == BS_MSG_SET;
            feed(y, m, n);
            free(m);
        }
        while (bs_session_output(y, &m, &n) == BS_OK) {
            feed(x, m, n);
            free(m);
        }
    }
    cr_assert_eq(sets, 2);
    bs_session_free(x);
    bs_session_free(y);
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
