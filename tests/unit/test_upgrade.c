/*
 * test_upgrade.c - opening a store of format 2 to 7 upgrades it to format 8 in
 * place (replication/upgrade.h, node/node.c), all or nothing.
 *
 * tests/vectors/store-v2 holds two node directories written by the release
 * that used format 2, and the JSON that release printed for them (its
 * README.md).  Each is copied to a temporary directory (the key files need
 * mode 0600 there), opened, and what the CLI would print now (node/
 * render.h) must equal what was printed then: status (without the
 * time-dependent next_run_s, store and oldest_unacked_age_s), peers,
 * conflicts, exchange log and digest; the change index (format 6) lists
 * every stored record once, in key order.  A second open changes nothing; a
 * store of a format this program cannot upgrade is refused and left as it
 * was.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/damage.h"
#include "../lib/fixture.h"
#include "../../node/render.h"
#include "../../replication/changes.h"
#include "../../replication/digest.h"
#include "../../replication/setlog.h"

/* A moment after the vectors' last exchange (1796606046040). */
#define NOW_MS 1796606100000ull

static char root[128], vectors[4096];

static void
setup(void)
{
    const char *slash = strrchr(__FILE__, '/');

    cr_assert_eq(bs_crypto_init(), BS_OK);
    cr_assert_not_null(slash);
    snprintf(vectors, sizeof vectors, "%.*s/../vectors/store-v2",
             (int)(slash - __FILE__), __FILE__);
    bst_root(root, sizeof root, "upgrade");
}

static void
teardown(void)
{
    bst_rmtree(root);
    bst_leak_check("test_upgrade");
}

TestSuite(upgrade, .init = setup, .fini = teardown, .timeout = 60);

/* Copy vector node `name` to root/name with the modes a node needs. */
static void
copy_node(const char *name, char *dir, size_t n)
{
    char from[4200], p[400];

    snprintf(from, sizeof from, "%s/%s", vectors, name);
    snprintf(dir, n, "%s/%s", root, name);
    bst_copy_tree(from, dir);
    cr_assert_eq(chmod(dir, 0700), 0);
    snprintf(p, sizeof p, "%s/keys", dir);
    cr_assert_eq(chmod(p, 0700), 0);
    snprintf(p, sizeof p, "%s/store", dir);
    cr_assert_eq(chmod(p, 0700), 0);
    snprintf(p, sizeof p, "%s/keys/node.key", dir);
    cr_assert_eq(chmod(p, 0600), 0);
}

static bs_node *
open_node(const char *dir)
{
    bs_errbuf err = {{0}};
    bs_node *n;
    bs_err rv = bs_node_open(dir, 0, &n, &err);

    cr_assert_eq(rv, BS_OK, "open %s: %s", dir, bs_errmsg(&err, rv));
    return n;
}

/* The recorded document vectors/<node>.<what>.json. */
static json_t *
recorded(const char *node, const char *what)
{
    char path[4200];
    json_error_t e;
    json_t *j;

    snprintf(path, sizeof path, "%s/%s.%s.json", vectors, node, what);
    j = json_load_file(path, 0, &e);
    cr_assert_not_null(j, "%s: %s", path, e.text);
    return j;
}

static void
same_json(json_t *got, json_t *want, const char *what)
{
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_INDENT(2) | JSON_SORT_KEYS);
        cr_assert_fail("%s differs:\n--- now\n%s\n--- recorded\n%s", what, g,
                       w);
    }
}

/* Drop what depends on the time the status is taken, and the fields
 * status gained after the recording (the clocks, the last exchange's
 * refused and held sets, the offices view, which repeats the peers
 * and members: nothing a format-2 store holds, and the log's size). */
static void
drop_timely(json_t *st)
{
    json_t *p;
    size_t i;

    json_object_del(st, "store");
    json_object_del(st, "clock");
    json_object_del(st, "offices");
    /* the log's size (compaction, issue 12): pages, not content */
    json_object_del(json_object_get(st, "log"), "bytes");
    json_object_del(json_object_get(st, "log"), "oldest_kept_ms");
    json_object_del(json_object_get(st, "log"), "compacted_sets");
    json_array_foreach(json_object_get(st, "peers"), i, p)
    {
        json_object_del(p, "next_run_s");
        json_object_del(p, "oldest_unacked_age_s");
        json_object_del(p, "clock");
        json_object_del(p, "refused_sets");
        json_object_del(p, "refused_reason");
        json_object_del(p, "held_there");
    }
}

static json_t *
status_now(bs_node *n, bs_txn *t)
{
    bs_status_opts o = {NOW_MS, (uint64_t)n->cfg.retention_days * 86400000ull,
                        1};
    bs_errbuf err = {{0}};
    bs_status st;
    json_t *j;
    bs_err rv = bs_status_read(t, &n->meta, &o, &st, &err);

    cr_assert_eq(rv, BS_OK, "status: %s", bs_errmsg(&err, rv));
    j = bs_render_status(&st);
    bs_status_fini(&st);
    return j;
}

static json_t *
peers_now(bs_txn *t)
{
    json_t *a = json_array();
    bs_peer *v;
    size_t n;

    cr_assert_eq(bs_peer_list(t, &v, &n), BS_OK);
    for (size_t i = 0; i < n; i++) {
        json_t *p = bs_render_peer(&v[i]);
        /* Gained after the recording: a format-2 store pins no hub. */
        cr_assert(json_is_false(json_object_get(p, "pinned_hub")));
        cr_assert_str_eq(json_string_value(json_object_get(p, "pin")), "none");
        json_object_del(p, "pinned_hub");
        json_object_del(p, "pin");
        json_array_append_new(a, p);
    }
    bs_peer_list_free(v, n);
    return a;
}

static json_t *
conflicts_now(bs_txn *t)
{
    json_t *a = json_array();
    bs_conflict_iter *it;
    const bs_conflict *c;
    bs_err rv;

    cr_assert_eq(bs_conflict_iter_open(t, 1, &it), BS_OK);
    while ((rv = bs_conflict_iter_next(it, &c)) == BS_OK) {
        json_t *j = bs_render_conflict(c);
        /* gained after the recording: every old conflict is of a field */
        cr_assert_str_eq(json_string_value(json_object_get(j, "kind")),
                         "field");
        json_object_del(j, "kind");
        json_array_append_new(a, j);
    }
    cr_assert_eq(rv, BS_ENOTFOUND);
    bs_conflict_iter_close(it);
    return a;
}

static json_t *
log_now(bs_txn *t)
{
    json_t *a = json_array();
    bs_xlog_entry *v;
    size_t n;

    cr_assert_eq(bs_xlog_list(t, NULL, 100, &v, &n), BS_OK);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, bs_render_exchange(&v[i]));
    free(v);
    return a;
}

/* The format-6 upgrade's change index: one entry per stored record, in
 * the records' key order, numbered from 1. */
static void
index_lists_each_record_once(bs_txn *t)
{
    bs_cursor *rc, *cc;
    bs_slice rk, rv, ck, cv;
    uint64_t seq = 0, last;
    bs_err a, b;

    cr_assert_eq(bs_cursor_open(t, BS_DB_RECORDS, &rc), BS_OK);
    cr_assert_eq(bs_cursor_open(t, BS_DB_CHANGES, &cc), BS_OK);
    for (a = bs_cursor_first(rc, &rk, &rv), b = bs_cursor_first(cc, &ck, &cv);
         a == BS_OK && b == BS_OK;
         a = bs_cursor_next(rc, &rk, &rv), b = bs_cursor_next(cc, &ck, &cv)) {
        bs_change_entry e;

        cr_assert_eq(bs_changes_decode(ck, cv, &e), BS_OK);
        cr_assert_eq(e.seq, ++seq);
        cr_assert_eq(rk.n, e.colllen + 1 + e.idlen);
        cr_assert_eq(memcmp(rk.p, e.coll, e.colllen), 0);
        cr_assert_eq(memcmp(rk.p + e.colllen + 1, e.id, e.idlen), 0);
        cr_assert_neq(e.stream, BS_CHANGES_NO_STREAM);
    }
    cr_assert_eq(a, BS_ENOTFOUND, "a record has no entry");
    cr_assert_eq(b, BS_ENOTFOUND, "an entry more than records");
    cr_assert_gt(seq, 0);
    bs_cursor_close(rc);
    bs_cursor_close(cc);
    cr_assert_eq(bs_changes_last(t, &last), BS_OK);
    cr_assert_eq(last, seq);
}

/* Open vector node `name` (read-only as the CLI's readers do, or not)
 * and compare everything with the recording. */
static void
check_node(const char *name, int readonly)
{
    char dir[300], path[4200], want[128] = "", hex[2 * BS_HASH_LEN + 1];
    uint8_t d[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    uint64_t nrec;
    json_t *got, *exp;
    bs_node *n;
    bs_txn *t;
    FILE *f;

    copy_node(name, dir, sizeof dir);
    if (readonly) {
        bs_err rv = bs_node_open(dir, 1, &n, &err);
        cr_assert_eq(rv, BS_OK, "open %s: %s", dir, bs_errmsg(&err, rv));
    } else {
        n = open_node(dir);
    }
    cr_assert_eq(n->meta.format, BS_STORE_FORMAT);
    cr_assert_str_eq(n->meta.name, name);
    bst_ok(bs_store_read(n->store, &t, &err), &err, "read");

    got = status_now(n, t);
    exp = recorded(name, "status");
    drop_timely(got);
    drop_timely(exp);
    same_json(got, exp, "status");
    json_decref(got);
    json_decref(exp);

    got = peers_now(t);
    exp = recorded(name, "peers");
    same_json(got, exp, "peer ls");
    json_decref(got);
    json_decref(exp);

    got = conflicts_now(t);
    exp = recorded(name, "conflicts");
    same_json(got, exp, "conflicts --all");
    json_decref(got);
    json_decref(exp);

    got = log_now(t);
    exp = recorded(name, "log");
    same_json(got, exp, "log");
    json_decref(got);
    json_decref(exp);

    cr_assert_eq(bs_digest(t, NULL, 0, d, &nrec, &err), BS_OK);
    bs_hex(hex, d, BS_HASH_LEN);
    snprintf(path, sizeof path, "%s/%s.digest", vectors, name);
    f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    cr_assert_not_null(fgets(want, sizeof want, f));
    fclose(f);
    want[strcspn(want, "\r\n")] = '\0';
    cr_assert_str_eq(hex, want, "digest");
    index_lists_each_record_once(t);

    bs_txn_abort(t);
    bs_node_close(n);
}

Test(upgrade, the_hubs_format_2_store_reads_as_it_did)
{
    check_node("head", 0);
}

Test(upgrade, the_branchs_format_2_store_reads_as_it_did)
{
    check_node("riga", 0);
}

/* `status`, `log`, `conflicts` and `peer ls` open the node read-only: the
 * upgrade then runs in a read-write environment of its own. */
Test(upgrade, a_read_only_open_upgrades_too)
{
    check_node("riga", 1);
}

Test(upgrade, a_held_set_keeps_its_reason)
{
    char dir[300];
    bs_errbuf err = {{0}};
    bs_node *n;
    bs_txn *t;
    bs_held h;

    copy_node("riga", dir, sizeof dir);
    n = open_node(dir);
    bst_ok(bs_store_read(n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_held_next(t, BS_HELD_WAITING, 0, 0, 0, &h), BS_OK);
    cr_assert_eq(h.first, 7);
    cr_assert_eq(h.reason, 1 /* BS_HOLD_CLOCK */);
    cr_assert_str_eq(h.note, "its clock is ahead of ours");
    cr_assert_gt(h.set.n, 0);
    bs_txn_abort(t);
    bs_node_close(n);
}

static void
fingerprint(bs_store *s, uint8_t out[BS_HASH_LEN])
{
    bs_errbuf err = {{0}};
    bs_txn *t;

    bst_ok(bs_store_read(s, &t, &err), &err, "read");
    cr_assert_eq(bs_store_fingerprint(t, out), BS_OK);
    bs_txn_abort(t);
}

Test(upgrade, opening_an_upgraded_store_again_changes_nothing)
{
    uint8_t f1[BS_HASH_LEN], f2[BS_HASH_LEN];
    char dir[300];
    bs_node *n;

    copy_node("head", dir, sizeof dir);
    n = open_node(dir);
    fingerprint(n->store, f1);
    bs_node_close(n);
    n = open_node(dir);
    fingerprint(n->store, f2);
    cr_assert_eq(n->meta.format, BS_STORE_FORMAT);
    bs_node_close(n);
    cr_assert_eq(memcmp(f1, f2, BS_HASH_LEN), 0);
}

static void
refused_with_format(uint32_t format, const char *msg)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_store_opts so = {0};
    bs_errbuf err = {{0}};
    char dir[300];
    bs_store *s;
    bs_node *n;

    copy_node("head", dir, sizeof dir);
    cr_assert_eq(bs_store_open(dir, &so, &s, &err), BS_OK, "%s", err.msg);
    /* The store's format number (host order, as meta.c keeps it). */
    bst_damage(s, BST_META, bs_str("format"), bs_mem(&format, 4));
    fingerprint(s, f0);
    bs_store_close(s);
    cr_assert_eq(bs_node_open(dir, 0, &n, &err), BS_ESTORE, "format %u",
                 format);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_eq(bs_store_open(dir, &so, &s, &err), BS_OK, "%s", err.msg);
    fingerprint(s, f1);
    bs_store_close(s);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the store changed");
    bst_rmtree(dir);
}

Test(upgrade, a_format_it_cannot_upgrade_is_refused_and_left_as_it_was)
{
    refused_with_format(1, "store format 1 cannot be upgraded (this program "
                           "reads format 8 and upgrades formats 2 to 7): "
                           "re-create the node and import its data");
    refused_with_format(99, "store format 99 is newer than this program (8)");
}

/* A store older than format 6 has no change index table: a read-only
 * open (every reader's, before the upgrade) reads it as empty instead of
 * failing, and writes nothing. */
Test(upgrade, a_read_only_open_of_a_store_without_the_index_reads_it_empty)
{
    bs_store_opts so = {0};
    bs_errbuf err = {{0}};
    uint64_t n = 99, last = 99;
    char dir[300];
    bs_cursor *c;
    bs_slice k, v;
    bs_store *s;
    bs_txn *t;

    copy_node("riga", dir, sizeof dir);
    so.readonly = 1;
    cr_assert_eq(bs_store_open(dir, &so, &s, &err), BS_OK, "%s", err.msg);
    bst_ok(bs_store_read(s, &t, &err), &err, "read");
    cr_assert_eq(bs_txn_count(t, BS_DB_CHANGES, &n), BS_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(bs_changes_last(t, &last), BS_OK);
    cr_assert_eq(last, 0);
    cr_assert_eq(bs_txn_get(t, BS_DB_CHANGES, bs_str("x"), &v), BS_ENOTFOUND);
    cr_assert_eq(bs_cursor_open(t, BS_DB_CHANGES, &c), BS_OK);
    cr_assert_eq(bs_cursor_first(c, &k, &v), BS_ENOTFOUND);
    bs_cursor_close(c);
    bs_txn_abort(t);
    bs_store_close(s);
}

/* 5 -> 6 fills the change index from the records as they stand, in key
 * order, numbered from 1 (whatever the table held before). */
Test(upgrade, a_format_5_store_gets_its_change_index_from_its_records)
{
    uint32_t five = 5;
    uint8_t key[8], junk[3] = {1, 2, 3};
    bs_store_opts so = {0};
    bs_errbuf err = {{0}};
    bst_clock clk = {1796606100000ull, 1};
    bs_clock c = bst_clock_of(&clk);
    bs_change_entry e;
    bst_node t;
    char dir[300];
    bs_slice v;
    bs_store *s;
    bs_node *n;
    bs_txn *tx;
    uint64_t last;

    bst_node_new(&t, root, "five", BS_ROLE_HUB, &c);
    cr_assert_eq(bst_put(&t, "c", "k", "{\"a\":1}", &err), BS_OK);
    cr_assert_eq(bst_put(&t, "c", "j", "{\"a\":2}", &err), BS_OK);
    cr_assert_eq(bst_del(&t, "c", "k", &err), BS_OK);
    snprintf(dir, sizeof dir, "%s", t.dir);
    bst_node_free(&t);
    cr_assert_eq(bs_store_open(dir, &so, &s, &err), BS_OK, "%s", err.msg);
    bst_damage(s, BST_META, bs_str("format"), bs_mem(&five, 4));
    bs_put_u64be(key, 1);
    bst_damage(s, BST_CHANGES, bs_mem(key, 8), bs_mem(junk, 3));
    bs_store_close(s);
    n = open_node(dir);
    cr_assert_eq(n->meta.format, BS_STORE_FORMAT);
    bst_ok(bs_store_read(n->store, &tx, &err), &err, "read");
    index_lists_each_record_once(tx);
    cr_assert_eq(bs_changes_last(tx, &last), BS_OK);
    cr_assert_eq(last, 2);
    bs_put_u64be(key, 1);
    cr_assert_eq(bs_txn_get(tx, BS_DB_CHANGES, bs_mem(key, 8), &v), BS_OK);
    cr_assert_eq(bs_changes_decode(bs_mem(key, 8), v, &e), BS_OK);
    cr_assert_eq(e.idlen, 1);
    cr_assert_eq(e.id[0], 'j');
    cr_assert_eq(e.deleted, 0);
    bs_put_u64be(key, 2);
    cr_assert_eq(bs_txn_get(tx, BS_DB_CHANGES, bs_mem(key, 8), &v), BS_OK);
    cr_assert_eq(bs_changes_decode(bs_mem(key, 8), v, &e), BS_OK);
    cr_assert_eq(e.id[0], 'k');
    cr_assert_eq(e.deleted, 1, "k is a tombstone");
    cr_assert_eq(e.stream, n->meta.stream);
    bs_txn_abort(tx);
    bs_node_close(n);
}

/* Format 3 -> 4 changes the number alone, 4 -> 5 adds rule versions only
 * for declared collections (upgrade.h), and 5 -> 6 fills the change index
 * with each record's latest version, which is what this build noted for a
 * record written once: a store this build wrote without any collection
 * declared, labelled format 3, opens as format 8 with every table as it
 * was. */
Test(upgrade, a_format_3_store_upgrades_by_its_number_alone)
{
    uint32_t three = 3, now = BS_STORE_FORMAT;
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_store_opts so = {0};
    bs_errbuf err = {{0}};
    bst_clock clk = {1796606100000ull, 1};
    bs_clock c = bst_clock_of(&clk);
    bst_node t;
    char dir[300];
    bs_store *s;
    bs_node *n;

    cr_assert_eq(now, 8);
    bst_node_new(&t, root, "three", BS_ROLE_HUB, &c);
    cr_assert_eq(bst_put(&t, "c", "k", "{\"a\":1,\"b\":\"x\"}", &err), BS_OK);
    snprintf(dir, sizeof dir, "%s", t.dir);
    bst_node_free(&t);
    cr_assert_eq(bs_store_open(dir, &so, &s, &err), BS_OK, "%s", err.msg);
    fingerprint(s, f0);
    bst_damage(s, BST_META, bs_str("format"), bs_mem(&three, 4));
    bs_store_close(s);
    n = open_node(dir);
    cr_assert_eq(n->meta.format, BS_STORE_FORMAT);
    fingerprint(n->store, f1);
    bs_node_close(n);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0,
                 "more than the number changed");
}

/* 6 -> 7 changes the number alone (upgrade.h): a store this build wrote,
 * labelled format 6, opens as format 8 with every table as it was; its
 * change index keeps both entries of a record written twice (the 5 -> 6
 * step, which would leave one, does not run again). */
Test(upgrade, a_format_6_store_upgrades_by_its_number_alone)
{
    uint32_t six = 6;
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_store_opts so = {0};
    bs_errbuf err = {{0}};
    bst_clock clk = {1796606100000ull, 1};
    bs_clock c = bst_clock_of(&clk);
    bst_node t;
    char dir[300];
    bs_store *s;
    bs_node *n;

    bst_node_new(&t, root, "six", BS_ROLE_HUB, &c);
    cr_assert_eq(bst_put(&t, "c", "k", "{\"a\":1,\"b\":\"x\"}", &err), BS_OK);
    cr_assert_eq(bst_put(&t, "c", "k", "{\"a\":2}", &err), BS_OK);
    snprintf(dir, sizeof dir, "%s", t.dir);
    bst_node_free(&t);
    cr_assert_eq(bs_store_open(dir, &so, &s, &err), BS_OK, "%s", err.msg);
    fingerprint(s, f0);
    bst_damage(s, BST_META, bs_str("format"), bs_mem(&six, 4));
    bs_store_close(s);
    n = open_node(dir);
    cr_assert_eq(n->meta.format, BS_STORE_FORMAT);
    fingerprint(n->store, f1);
    bs_node_close(n);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0,
                 "more than the number changed");
}

/* 7 -> 8 changes the number alone (upgrade.h): a format-7 store holds no
 * record that is its own base, so a store this build wrote, labelled
 * format 7, opens as format 8 with every table as it was. */
Test(upgrade, a_format_7_store_upgrades_by_its_number_alone)
{
    uint32_t seven = 7;
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_store_opts so = {0};
    bs_errbuf err = {{0}};
    bst_clock clk = {1796606100000ull, 1};
    bs_clock c = bst_clock_of(&clk);
    bst_node t;
    char dir[300];
    bs_store *s;
    bs_node *n;

    bst_node_new(&t, root, "seven", BS_ROLE_HUB, &c);
    cr_assert_eq(bst_put(&t, "c", "k", "{\"a\":1,\"b\":\"x\"}", &err), BS_OK);
    cr_assert_eq(bst_put(&t, "c", "k", "{\"a\":2}", &err), BS_OK);
    snprintf(dir, sizeof dir, "%s", t.dir);
    bst_node_free(&t);
    cr_assert_eq(bs_store_open(dir, &so, &s, &err), BS_OK, "%s", err.msg);
    fingerprint(s, f0);
    bst_damage(s, BST_META, bs_str("format"), bs_mem(&seven, 4));
    bs_store_close(s);
    n = open_node(dir);
    cr_assert_eq(n->meta.format, 8);
    fingerprint(n->store, f1);
    bs_node_close(n);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0,
                 "more than the number changed");
}

Test(upgrade, a_document_that_does_not_read_leaves_the_store_as_it_was)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_store_opts so = {0};
    bs_errbuf err = {{0}};
    char dir[300];
    bs_store *s;
    bs_node *n;

    copy_node("head", dir, sizeof dir);
    cr_assert_eq(bs_store_open(dir, &so, &s, &err), BS_OK, "%s", err.msg);
    /* A format-2 peer document that does not read. */
    bst_damage(s, BST_PEERS, bs_str("riga"), bs_str("{not json"));
    fingerprint(s, f0);
    bs_store_close(s);
    cr_assert_eq(bs_node_open(dir, 0, &n, &err), BS_ESTORE);
    cr_assert_str_eq(err.msg, "upgrade: peer riga does not read");
    cr_assert_eq(bs_store_open(dir, &so, &s, &err), BS_OK, "%s", err.msg);
    fingerprint(s, f1);
    bs_store_close(s);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "half an upgrade stayed");
}
