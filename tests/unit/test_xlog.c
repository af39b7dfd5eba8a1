/*
 * test_xlog.c - the exchange history (replication/xlog.h): entries listed
 * oldest first, the newest `limit`, per peer; the peer's last success and
 * last error kept with them; the oldest dropped past BS_XLOG_MAX.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/xlog.h"

static char root[128];
static bst_node head, tallinn, riga;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "xlog");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, NULL);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, NULL);
    bst_pair(&head, &tallinn);
    bst_pair(&head, &riga);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_xlog");
}

TestSuite(xlog, .init = setup, .fini = teardown, .timeout = 120);

static bs_xlog_entry
entry(uint64_t ms, const char *peer, const char *error)
{
    bs_xlog_entry e;

    memset(&e, 0, sizeof e);
    e.time_ms = ms;
    e.duration_ms = 7;
    snprintf(e.peer, sizeof e.peer, "%s", peer);
    snprintf(e.via, sizeof e.via, "file");
    snprintf(e.direction, sizeof e.direction, "in");
    e.sets_sent = ms % 10;
    e.sets_received = 2;
    e.changes = 3;
    e.conflicts = 4;
    e.bytes = 5;
    snprintf(e.error, sizeof e.error, "%s", error ? error : "");
    return e;
}

typedef struct batch {
    const bs_xlog_entry *v;
    size_t n;
} batch;

static bs_err
add_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    batch *b = arg;
    bs_err rv = BS_OK;

    (void)err;
    for (size_t i = 0; i < b->n && rv == BS_OK; i++)
        rv = bs_xlog_add(t, &b->v[i]);
    return rv;
}

static void
add(const bs_xlog_entry *v, size_t n)
{
    batch b = {v, n};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_store_write(head.n->store, add_txn, &b, &err), BS_OK);
}

static size_t
list(const char *peer, size_t limit, bs_xlog_entry **v)
{
    bs_errbuf err = {{0}};
    size_t n = 99;
    bs_txn *t;

    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_xlog_list(t, peer, limit, v, &n), BS_OK);
    bs_txn_abort(t);
    return n;
}

static bs_peer
peer(const char *name)
{
    bs_errbuf err = {{0}};
    bs_peer p;
    bs_txn *t;

    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_peer_get(t, name, &p), BS_OK);
    bs_txn_abort(t);
    return p;
}

Test(xlog, entries_are_listed_oldest_first_with_every_field)
{
    bs_xlog_entry in[3] = {entry(1000, "tallinn", NULL),
                           entry(2000, "riga", "peer riga did not answer"),
                           entry(3000, "tallinn", NULL)};
    bs_xlog_entry *v;
    size_t n;

    add(in, 3);
    n = list(NULL, 100, &v);
    cr_assert_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(v[i].time_ms, in[i].time_ms);
        cr_assert_eq(v[i].duration_ms, 7);
        cr_assert_str_eq(v[i].peer, in[i].peer);
        cr_assert_str_eq(v[i].via, "file");
        cr_assert_str_eq(v[i].direction, "in");
        cr_assert_eq(v[i].sets_sent, in[i].sets_sent);
        cr_assert_eq(v[i].sets_received, 2);
        cr_assert_eq(v[i].changes, 3);
        cr_assert_eq(v[i].conflicts, 4);
        cr_assert_eq(v[i].bytes, 5);
        cr_assert_str_eq(v[i].error, in[i].error);
    }
    free(v);
}

Test(xlog, the_limit_keeps_the_newest_entries)
{
    bs_xlog_entry in[5];
    bs_xlog_entry *v;
    size_t n;

    for (int i = 0; i < 5; i++)
        in[i] = entry(1000 * (uint64_t)(i + 1), "tallinn", NULL);
    add(in, 5);
    n = list(NULL, 2, &v);
    cr_assert_eq(n, 2);
    cr_assert_eq(v[0].time_ms, 4000);
    cr_assert_eq(v[1].time_ms, 5000);
    free(v);
    n = list(NULL, 1, &v);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0].time_ms, 5000);
    free(v);
}

Test(xlog, a_peer_filter_lists_that_peers_entries_only)
{
    bs_xlog_entry in[5] = {
        entry(1000, "tallinn", NULL), entry(2000, "riga", NULL),
        entry(3000, "tallinn", NULL), entry(4000, "riga", NULL),
        entry(5000, "riga", NULL)};
    bs_xlog_entry *v;
    size_t n;

    add(in, 5);
    n = list("tallinn", 100, &v);
    cr_assert_eq(n, 2);
    cr_assert_eq(v[0].time_ms, 1000);
    cr_assert_eq(v[1].time_ms, 3000);
    free(v);
    /* The limit counts the peer's entries, not all of them. */
    n = list("tallinn", 1, &v);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0].time_ms, 3000);
    free(v);
    n = list("tartu", 100, &v);
    cr_assert_eq(n, 0);
    free(v);
}

Test(xlog, entries_are_in_time_order_whatever_order_they_came_in)
{
    bs_xlog_entry in[4] = {entry(3000, "tallinn", NULL),
                           entry(1000, "riga", NULL), entry(3000, "riga", NULL),
                           entry(2000, "tallinn", NULL)};
    bs_xlog_entry *v;
    size_t n;

    add(in, 4);
    n = list(NULL, 100, &v);
    cr_assert_eq(n, 4);
    cr_assert_eq(v[0].time_ms, 1000);
    cr_assert_eq(v[1].time_ms, 2000);
    cr_assert_eq(v[2].time_ms, 3000);
    cr_assert_str_eq(v[2].peer, "tallinn", "same time: in the order added");
    cr_assert_eq(v[3].time_ms, 3000);
    cr_assert_str_eq(v[3].peer, "riga");
    free(v);
}

Test(xlog, adding_an_entry_updates_the_peers_last_success_or_error)
{
    bs_xlog_entry ok = entry(1000, "tallinn", NULL),
                  bad = entry(2000, "tallinn", "checksum mismatch"),
                  later = entry(3000, "tallinn", NULL);
    bs_peer p;

    add(&ok, 1);
    p = peer("tallinn");
    cr_assert_eq(p.last_ok_ms, 1000);
    cr_assert_eq(p.last_err_ms, 0);
    cr_assert_str_eq(p.last_error, "");
    bs_peer_fini(&p);
    add(&bad, 1);
    p = peer("tallinn");
    cr_assert_eq(p.last_ok_ms, 1000, "an error is not a success");
    cr_assert_eq(p.last_err_ms, 2000);
    cr_assert_str_eq(p.last_error, "checksum mismatch");
    bs_peer_fini(&p);
    add(&later, 1);
    p = peer("tallinn");
    cr_assert_eq(p.last_ok_ms, 3000);
    cr_assert_str_eq(p.last_error, "", "a success clears the last error");
    bs_peer_fini(&p);
    p = peer("riga");
    cr_assert_eq(p.last_ok_ms, 0, "another peer was touched");
    cr_assert_eq(p.last_err_ms, 0);
    bs_peer_fini(&p);
}

Test(xlog, an_entry_for_an_unknown_peer_is_logged_and_touches_no_peer)
{
    bs_xlog_entry e = entry(1000, "tartu", "not paired");
    const char *names[] = {"tallinn", "riga"};
    bs_xlog_entry *v;
    size_t n;

    add(&e, 1);
    n = list(NULL, 10, &v);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0].peer, "tartu");
    free(v);
    for (int i = 0; i < 2; i++) {
        bs_peer p = peer(names[i]);
        cr_assert_eq(p.last_ok_ms, 0);
        cr_assert_eq(p.last_err_ms, 0);
        cr_assert_str_eq(p.last_error, "");
        bs_peer_fini(&p);
    }
}

Test(xlog, a_long_error_is_kept_to_the_limit)
{
    bs_xlog_entry e = entry(1000, "tallinn", NULL), *v;
    bs_peer p;

    memset(e.error, 'e', BS_XLOG_ERROR_MAX);
    e.error[BS_XLOG_ERROR_MAX] = '\0';
    add(&e, 1);
    cr_assert_eq(list(NULL, 1, &v), 1);
    cr_assert_eq(strlen(v[0].error), BS_XLOG_ERROR_MAX);
    free(v);
    p = peer("tallinn");
    cr_assert_eq(strlen(p.last_error), sizeof p.last_error - 1);
    bs_peer_fini(&p);
}

Test(xlog, the_oldest_entries_are_dropped_past_the_maximum)
{
    size_t total = BS_XLOG_MAX + 5;
    bs_xlog_entry *in = calloc(total, sizeof *in), *v;
    size_t got;

    cr_assert_not_null(in);
    for (size_t i = 0; i < total; i++)
        in[i] = entry(1000 + i, i % 2 ? "riga" : "tallinn", NULL);
    add(in, total);
    free(in);
    got = list(NULL, BS_XLOG_MAX + 10, &v);
    cr_assert_eq(got, BS_XLOG_MAX);
    cr_assert_eq(v[0].time_ms, 1005, "the oldest five are gone");
    cr_assert_eq(v[got - 1].time_ms, 1000 + total - 1);
    free(v);
}

/*
 * BUG: two entries stamped with the same time, earlier than the newest
 * entry (the wall clock stepped back), share one key and the second
 * overwrites the first.  bs_xlog_put (replication/xlog.c) numbers an
 * entry one more than the counter of the *last* key (the newest time), so
 * after entries at 1000 and 3000, two entries at 2000 both get key
 * (2000, 2); bs_txn_reserve replaces the first.  xlog.h promises one
 * entry per exchange.
 */
Test(xlog, entries_stamped_alike_after_a_clock_step_back_are_all_kept)
{
    bs_xlog_entry in[4] = {
        entry(1000, "tallinn", NULL), entry(3000, "tallinn", NULL),
        entry(2000, "riga", NULL), entry(2000, "tallinn", "second")};
    bs_xlog_entry *v;
    size_t n;

    add(in, 4);
    n = list(NULL, 100, &v);
    cr_assert_eq(n, 4, "%zu entries kept", n);
    free(v);
}
