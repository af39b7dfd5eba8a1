/*
 * test_health.c - the administrator's health view (node/health.h, issue 8
 * item 16): each kind of problem appears when, and only when, its cause is
 * there, names what it concerns and says what to do.  Nodes have injected
 * clocks; the disk, the daemon and a verification's finding are given as
 * the CLI would measure them.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../node/health.h"
#include "../../replication/pairing.h"
#include "../../replication/setlog.h"
#include "../../replication/streams.h"

#define T0      1800000000000ull
#define MIN_MS  60000ull
#define HOUR_MS 3600000ull
#define GIB     (1ull << 30)

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
    bst_root(root, sizeof root, "health");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, &b);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_rmtree(root);
    bst_leak_check("test_health");
}

TestSuite(health, .init = setup, .fini = teardown, .timeout = 60);

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

/* Options of a healthy machine at now: plenty of disk, daemon running. */
static bs_health_opts
opts(uint64_t now)
{
    bs_health_opts o = {0};

    o.dir = "/srv/node";
    o.now_ms = now;
    o.disk_free = 50 * GIB;
    o.disk_size = 100 * GIB;
    o.daemon = 1;
    return o;
}

/* t's problems under o (used: the store's used bytes). */
static void
check(bst_node *t, const bs_health_opts *o, uint64_t used, bs_problems *p)
{
    bs_status_opts so = {o->now_ms, t->core.retention_ms, 0};
    bs_meta m = bst_meta(t);

    so.clock = t->core.clock;
    so.max_skew_ms = t->core.max_skew_ms;
    so.clock_ahead = t->core.clock_ahead;
    bs_errbuf err = {{0}};
    bs_status st;
    bs_txn *txn;
    bs_err rv;

    memset(p, 0, sizeof *p);
    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_status_read(txn, &m, &so, &st, &err), &err, "status");
    rv = bs_health_check(txn, &st, used, o, p);
    cr_assert_eq(rv, BS_OK, "health: %s", bs_strerror(rv));
    bs_status_fini(&st);
    bs_txn_abort(txn);
}

/* The only problem of p is of `kind` about `subject`; its texts contain
 * what and todo. */
static void
only(const bs_problems *p, const char *kind, const char *subject,
     const char *what, const char *todo)
{
    cr_assert_eq(p->n, 1, "%zu problems, first %s: %s", p->n,
                 p->n ? p->v[0].kind : "-", p->n ? p->v[0].what : "-");
    cr_assert_str_eq(p->v[0].kind, kind);
    cr_assert_str_eq(p->v[0].subject, subject);
    cr_assert(strstr(p->v[0].what, what) != NULL, "what: %s", p->v[0].what);
    cr_assert(strstr(p->v[0].todo, todo) != NULL, "todo: %s", p->v[0].todo);
}

static void
none(const bs_problems *p)
{
    cr_assert_eq(p->n, 0, "%zu problems, first %s: %s", p->n,
                 p->n ? p->v[0].kind : "-", p->n ? p->v[0].what : "-");
}

Test(health, a_new_paired_node_is_healthy)
{
    bs_health_opts o = opts(T0);
    bs_problems p;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn);
    check(&tallinn, &o, 1 << 20, &p);
    none(&p);
    bs_problems_fini(&p);
}

Test(health, held_sets_are_named_per_origin_with_the_first_reason)
{
    bs_errbuf err = {{0}};
    bs_health_opts o;
    bs_problems p;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn);
    ch.ms += 2 * HOUR_MS; /* the hub's clock runs ahead */
    cr_assert_eq(bst_put(&head, "items", "i1", "{\"v\":1}", &err), BS_OK);
    cr_assert_eq(bst_put(&head, "items", "i2", "{\"v\":2}", &err), BS_OK);
    carry(&head, &tallinn);
    o = opts(ct.ms + 3 * MIN_MS);
    check(&tallinn, &o, 1 << 20, &p);
    only(&p, "held", "head",
         "2 sets of head held back from seq 2 for 3 minutes", "clock");
    cr_assert(strstr(p.v[0].what, "ahead") != NULL, "%s", p.v[0].what);
    bs_problems_fini(&p);
    /* Applied once their time comes: the problem goes. */
    ct.ms += 3 * HOUR_MS;
    carry(&head, &tallinn);
    o = opts(ct.ms);
    check(&tallinn, &o, 1 << 20, &p);
    none(&p);
    bs_problems_fini(&p);
}

static bs_err
refused_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    const uint8_t *pk = arg;
    bs_streamtab tab;
    bs_err rv;

    (void)err;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    for (size_t i = 0; i < tab.n && rv == BS_OK; i++)
        if (memcmp(tab.v[i].key, pk, BS_PK_LEN) == 0) {
            bs_held h = {0};

            h.kind = BS_HELD_REFUSED;
            h.stream = tab.v[i].idx;
            h.first = 7;
            h.reason = BS_EFORGED;
            h.since_ms = T0;
            snprintf(h.note, sizeof h.note, "origin is not a known member");
            h.set = bs_str("not a set: the entry is evidence only");
            rv = bs_held_put(t, &h);
            if (rv == BS_OK) {
                h.first = 9;
                rv = bs_held_put(t, &h);
            }
        }
    bs_streams_fini(&tab);
    return rv;
}

Test(health, refused_sets_are_named_with_their_reason)
{
    bs_meta hm = bst_meta(&head);
    bs_errbuf err = {{0}};
    bs_health_opts o = opts(T0);
    bs_problems p;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn);
    cr_assert_eq(bs_store_write(tallinn.n->store, refused_txn, hm.pk, &err),
                 BS_OK);
    check(&tallinn, &o, 1 << 20, &p);
    only(&p, "refused", "head",
         "2 sets of head from seq 7 refused when retried: origin is not a "
         "known member",
         "send them again");
    bs_problems_fini(&p);
}

Test(health, a_quarantined_stream_says_how_to_recover)
{
    bs_meta hm = bst_meta(&head);
    bs_health_opts o = opts(T0);
    bs_problems p;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn);
    bst_quarantine(&tallinn, hm.pk, "history fork at seq 2");
    check(&tallinn, &o, 1 << 20, &p);
    only(&p, "quarantined", "head",
         "head signed two histories (seq 1: history fork at seq 2)",
         "branchsync quarantine release");
    bs_problems_fini(&p);
}

Test(health, a_peer_past_the_retention_needs_a_full_resync_not_silent)
{
    uint64_t keep = head.core.retention_ms;
    bs_errbuf err = {{0}};
    bs_health_opts o;
    bs_problems p;

    bst_pair2(&head, &tallinn);
    cr_assert_eq(
        bs_pairing_schedule(&head.core, "tallinn", "every 15m", NULL, &err),
        BS_OK);
    carry(&head, &tallinn);
    carry(&tallinn, &head);
    o = opts(ch.ms + keep + MIN_MS);
    check(&head, &o, 1 << 20, &p);
    only(&p, "needs_full_resync", "tallinn", "longer than the retention",
         "peer seed");
    bs_problems_fini(&p);
}

Test(health, a_peer_is_silent_once_its_schedule_is_late_by_the_grace)
{
    bs_errbuf err = {{0}};
    bs_health_opts o;
    bs_problems p;
    uint64_t ok;

    bst_pair2(&head, &tallinn);
    cr_assert_eq(
        bs_pairing_schedule(&head.core, "tallinn", "every 15m", NULL, &err),
        BS_OK);
    carry(&head, &tallinn);
    carry(&tallinn, &head); /* head heard from tallinn: last_ok */
    ok = ch.ms;
    o = opts(ok + 15 * MIN_MS + BS_HEALTH_GRACE_MS - 1000);
    check(&head, &o, 1 << 20, &p);
    none(&p);
    bs_problems_fini(&p);
    o = opts(ok + 15 * MIN_MS + BS_HEALTH_GRACE_MS + 61000);
    check(&head, &o, 1 << 20, &p);
    only(&p, "silent", "tallinn",
         "no exchange with tallinn for 21 minutes: its schedule (every 15m) "
         "expected one 6 minutes ago",
         "branchsync sync");
    bs_problems_fini(&p);
    /* A manual link is never silent. */
    cr_assert_eq(
        bs_pairing_schedule(&head.core, "tallinn", "manual", NULL, &err),
        BS_OK);
    check(&head, &o, 1 << 20, &p);
    none(&p);
    bs_problems_fini(&p);
}

/* Change t's entry of peer "tallinn" with edit(entry, arg). */
typedef struct peer_edit {
    void (*edit)(bs_peer *p, const void *arg);
    const void *arg;
} peer_edit;

static bs_err
peer_edit_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    const peer_edit *e = arg;
    bs_peer pe;
    bs_err rv;

    (void)err;
    if ((rv = bs_peer_get(t, "tallinn", &pe)) != BS_OK)
        return rv;
    e->edit(&pe, e->arg);
    rv = bs_peer_put(t, &pe);
    bs_peer_fini(&pe);
    return rv;
}

static void
edit_tallinn(bst_node *t, void (*edit)(bs_peer *, const void *),
             const void *arg)
{
    peer_edit e = {edit, arg};
    bs_errbuf err = {{0}};

    bst_ok(bs_store_write(t->n->store, peer_edit_txn, &e, &err), &err,
           "peer edit");
}

/* The last exchange failed at *at. */
static void
failed_at(bs_peer *pe, const void *arg)
{
    pe->last_err_ms = *(const uint64_t *)arg;
    snprintf(pe->last_error, sizeof pe->last_error,
             "tcp://10.0.0.2:7400 unreachable");
}

Test(health, a_failing_online_peer_is_reported_after_the_grace)
{
    bs_errbuf err = {{0}};
    bs_health_opts o;
    bs_problems p;
    uint64_t at;

    bst_pair2(&head, &tallinn);
    cr_assert_eq(
        bs_pairing_schedule(&head.core, "tallinn", "online", NULL, &err),
        BS_OK);
    carry(&head, &tallinn);
    carry(&tallinn, &head);
    at = ch.ms + 1000;
    edit_tallinn(&head, failed_at, &at);
    o = opts(at + 1000); /* a blip: not yet a problem */
    check(&head, &o, 1 << 20, &p);
    none(&p);
    bs_problems_fini(&p);
    o = opts(ch.ms + BS_HEALTH_GRACE_MS + MIN_MS);
    check(&head, &o, 1 << 20, &p);
    only(&p, "peer_error", "tallinn", "tcp://10.0.0.2:7400 unreachable",
         "address");
    bs_problems_fini(&p);
}

Test(health, what_the_caller_measured_is_reported)
{
    bs_health_opts o = opts(T0);
    bs_errbuf err = {{0}};
    bs_problems p;

    bst_pair2(&head, &tallinn);
    check(&head, &o, 1 << 20, &p);
    none(&p);
    bs_problems_fini(&p);
    /* Disk: below max(256 MiB, what the store uses). */
    o.disk_free = 200ull << 20;
    check(&head, &o, 1 << 20, &p);
    only(&p, "disk_low", "", "200 MiB free", "free disk space");
    bs_problems_fini(&p);
    o.disk_free = 300ull << 20;
    check(&head, &o, 400ull << 20, &p);
    only(&p, "disk_low", "", "the store uses 400 MiB", "free disk space");
    bs_problems_fini(&p);
    o = opts(T0);
    /* The growth cap. */
    o.map_max = 1000ull << 20;
    check(&head, &o, 950ull << 20, &p);
    only(&p, "map_low", "", "950 MiB of its 1000 MiB", "max_map_size_mb");
    bs_problems_fini(&p);
    o = opts(T0);
    /* The daemon: only a problem when a link is timed. */
    o.daemon = 0;
    check(&head, &o, 1 << 20, &p);
    none(&p);
    bs_problems_fini(&p);
    cr_assert_eq(
        bs_pairing_schedule(&head.core, "tallinn", "0 2 * * *", NULL, &err),
        BS_OK);
    check(&head, &o, 1 << 20, &p);
    only(&p, "daemon_down", "", "does not run", "branchsyncd -d /srv/node");
    bs_problems_fini(&p);
    o.daemon = 2;
    check(&head, &o, 1 << 20, &p);
    only(&p, "daemon_down", "", "does not answer", "restart");
    bs_problems_fini(&p);
    o = opts(T0);
    o.corrupt = "store is corrupt: record items/i1 does not decode";
    check(&head, &o, 1 << 20, &p);
    only(&p, "store_corrupt", "", "items/i1 does not decode",
         "restore from a backup");
    bs_problems_fini(&p);
}

/* A clock ten minutes fast: the node that is ahead is told to fix its own
 * clock; its peer sees the other clock ahead of its own. */
Test(health, a_clock_beyond_the_skew_bound_is_named_on_both_sides)
{
    bst_sync_result r;
    bs_health_opts o;
    bs_problems p;

    bst_pair2(&head, &tallinn);
    ct.ms += 10 * MIN_MS;
    cr_assert_eq(bst_sync(&tallinn, &head, NULL, NULL, &r), BS_OK, "%s / %s",
                 r.msg_a, r.msg_b);
    o = opts(ct.ms);
    check(&tallinn, &o, 1 << 20, &p);
    only(&p, "clock_skew", "", "this node's clock is 600 s ahead of head's",
         "fix this node's clock");
    cr_assert(strstr(p.v[0].what, "stamped with the peers' time") != NULL, "%s",
              p.v[0].what);
    bs_problems_fini(&p);
    o = opts(ch.ms);
    check(&head, &o, 1 << 20, &p);
    only(&p, "clock_skew", "tallinn", "tallinn's clock is 600 s ahead of ours",
         "fix the clock of that node");
    bs_problems_fini(&p);
}

/* The last exchange refused 2 sets and left 1 held there. */
static void
troubled(bs_peer *pe, const void *arg)
{
    (void)arg;
    pe->refused_sets = 2;
    snprintf(pe->refused_reason, sizeof pe->refused_reason,
             "signature does not verify");
    pe->held_there = 1;
}

/* What the last exchange with a peer left behind, both ways (issue 8 item
 * 1: a set that cannot apply never blocks the sets behind it silently). */
Test(health, sets_refused_here_or_held_there_are_named_per_peer)
{
    bs_health_opts o = opts(T0);
    bs_problems p;

    bst_pair2(&head, &tallinn);
    edit_tallinn(&head, troubled, NULL);
    check(&head, &o, 1 << 20, &p);
    cr_assert_eq(p.n, 2);
    cr_assert_str_eq(p.v[0].kind, "refused");
    cr_assert_str_eq(p.v[0].subject, "tallinn");
    cr_assert_str_eq(p.v[0].what, "the last exchange with tallinn refused 2 "
                                  "change sets it sent (first: signature "
                                  "does not verify)");
    cr_assert_str_eq(p.v[1].kind, "held_there");
    cr_assert_str_eq(p.v[1].what, "1 change set this node sent to tallinn "
                                  "was held or refused there");
    bs_problems_fini(&p);
}

/* The last exchange succeeded at *at. */
static void
ok_at(bs_peer *pe, const void *arg)
{
    pe->last_ok_ms = *(const uint64_t *)arg;
}

Test(health, a_change_an_exchange_offered_and_the_peer_did_not_take_is_stuck)
{
    bs_health_opts o;
    bs_problems p;
    uint64_t at;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn);
    carry(&tallinn, &head);
    ch.ms = T0 + MIN_MS;
    bs_errbuf err = {{0}};
    bst_ok(bst_put(&head, "customers", "c1", "{\"n\":1}", &err), &err, "put");
    /* An exchange within the grace after the write: it may have missed it. */
    at = ch.ms + BS_HEALTH_GRACE_MS - 1000;
    edit_tallinn(&head, ok_at, &at);
    o = opts(at + 1000);
    check(&head, &o, 1 << 20, &p);
    none(&p);
    bs_problems_fini(&p);
    /* One later than that: it was offered and is still not acknowledged. */
    at = ch.ms + BS_HEALTH_GRACE_MS + 2 * MIN_MS;
    edit_tallinn(&head, ok_at, &at);
    o = opts(at + 1000);
    check(&head, &o, 1 << 20, &p);
    only(&p, "stuck", "tallinn",
         "1 change for tallinn unacknowledged for 7 minutes, although "
         "exchanges with it succeed",
         "branchsync doctor");
    bs_problems_fini(&p);
    /* Acknowledged: no longer stuck. */
    carry(&head, &tallinn);
    carry(&tallinn, &head);
    check(&head, &o, 1 << 20, &p);
    none(&p);
    bs_problems_fini(&p);
}
