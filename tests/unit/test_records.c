/*
 * test_records.c - reading and writing records through the core
 * (replication/records.h): get of live, deleted and missing records, the
 * iterator's order, paging and prefix, write batches that apply all or
 * nothing, the name checks and their messages, and a stored record that
 * does not decode reported as BS_ESTORE, never skipped.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../../replication/setlog.h"
#include "../lib/damage.h"
#include "../lib/fixture.h"
#include "../../replication/json.h"
#include "../../replication/status.h"

static char root[128];
static bst_node node;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "records");
    bst_node_new(&node, root, "head", BS_ROLE_HUB, NULL);
}

static void
teardown(void)
{
    bst_node_free(&node);
    bst_rmtree(root);
    bst_leak_check("test_records");
}

TestSuite(records, .init = setup, .fini = teardown, .timeout = 60);

static void
put(const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(&node, coll, id, json, &err);

    cr_assert_eq(rv, BS_OK, "put %s/%s: %s", coll, id, bs_errmsg(&err, rv));
}

static void
del(const char *coll, const char *id)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_del(&node, coll, id, &err);

    cr_assert_eq(rv, BS_OK, "del %s/%s: %s", coll, id, bs_errmsg(&err, rv));
}

static bs_err
get(const char *coll, const char *id, bs_errbuf *err, char **json)
{
    bs_arena a;
    bs_record r;
    bs_txn *t;
    bs_err rv;

    *json = NULL;
    bs_arena_init(&a);
    bst_ok(bs_store_read(node.n->store, &t, err), err, "read");
    rv = bs_records_get(t, coll, id, &a, &r, err);
    if (rv == BS_OK)
        *json = bs_json_record(id, strlen(id), &r);
    bs_txn_abort(t);
    bs_arena_fini(&a);
    return rv;
}

/* The IDs listed by the iterator, joined by ','. */
static bs_err
list(const char *coll, const char *after, const char *prefix, char *out,
     size_t n, bs_errbuf *err)
{
    bs_records_iter *it;
    const bs_record *r;
    const char *id;
    size_t idlen, used = 0;
    bs_txn *t;
    bs_err rv;

    out[0] = '\0';
    bst_ok(bs_store_read(node.n->store, &t, err), err, "read");
    if ((rv = bs_records_iter_open(t, coll, after, prefix, &it)) != BS_OK) {
        bs_txn_abort(t);
        return rv;
    }
    while ((rv = bs_records_iter_next(it, &id, &idlen, &r, err)) == BS_OK) {
        cr_assert(r->live);
        used += (size_t)snprintf(out + used, n - used, "%s%.*s",
                                 used ? "," : "", (int)idlen, id);
        cr_assert_lt(used, n);
    }
    bs_records_iter_close(it);
    bs_txn_abort(t);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static void
list_is(const char *coll, const char *after, const char *prefix,
        const char *want)
{
    bs_errbuf err = {{0}};
    char got[1024];
    bs_err rv = list(coll, after, prefix, got, sizeof got, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_str_eq(got, want, "after %s, prefix %s", after ? after : "-",
                     prefix ? prefix : "-");
}

/* ---- get ---- */

Test(records, get_returns_a_live_record)
{
    bs_errbuf err = {{0}};
    char *j;

    put("items", "i1", "{\"name\":\"bolt\",\"qty\":10}");
    put("items", "i1", "{\"qty\":12}");
    cr_assert_eq(get("items", "i1", &err, &j), BS_OK);
    cr_assert_str_eq(j, "{\"id\":\"i1\",\"name\":\"bolt\",\"qty\":12}");
    free(j);
}

Test(records, a_deleted_or_missing_record_is_not_found)
{
    bs_errbuf err = {{0}};
    char *j;

    put("items", "i1", "{\"name\":\"bolt\"}");
    del("items", "i1");
    cr_assert_eq(get("items", "i1", &err, &j), BS_ENOTFOUND);
    cr_assert_str_eq(err.msg, "items/i1: not found");
    cr_assert_null(j);
    memset(&err, 0, sizeof err);
    cr_assert_eq(get("items", "i2", &err, &j), BS_ENOTFOUND);
    cr_assert_str_eq(err.msg, "items/i2: not found");
    memset(&err, 0, sizeof err);
    cr_assert_eq(get("orders", "i1", &err, &j), BS_ENOTFOUND);
    /* Written again after the delete: live again. */
    put("items", "i1", "{\"name\":\"nut\"}");
    cr_assert_eq(get("items", "i1", &err, &j), BS_OK);
    cr_assert_str_eq(j, "{\"id\":\"i1\",\"name\":\"nut\"}");
    free(j);
}

/* ---- the iterator ---- */

static void
fill(void)
{
    static const char *const ids[] = {"b", "a1", "a", "B", "ab", "c", "a0"};
    bs_errbuf err = {{0}};
    const char *js[7];

    for (int i = 0; i < 7; i++)
        js[i] = "{\"v\":1}";
    cr_assert_eq(bst_put_many(&node, "items", ids, js, 7, &err), BS_OK);
    put("item", "zz", "{\"v\":1}");   /* a collection named by a prefix */
    put("itemsx", "aa", "{\"v\":1}"); /* and one it prefixes */
    put("items", "gone", "{\"v\":1}");
    del("items", "gone");
}

Test(records, iteration_is_in_id_byte_order_and_skips_deleted_records)
{
    fill();
    list_is("items", NULL, NULL, "B,a,a0,a1,ab,b,c");
    list_is("item", NULL, NULL, "zz");
    list_is("itemsx", NULL, NULL, "aa");
    list_is("nothing", NULL, NULL, "");
}

Test(records, after_starts_strictly_after_an_id_present_or_not)
{
    fill();
    list_is("items", "a", NULL, "a0,a1,ab,b,c");
    list_is("items", "a00", NULL, "a1,ab,b,c");
    list_is("items", "B", NULL, "a,a0,a1,ab,b,c");
    list_is("items", "A", NULL, "B,a,a0,a1,ab,b,c");
    list_is("items", "c", NULL, "");
    list_is("items", "gone", NULL, "");
    list_is("items", "gon", NULL, "");
}

Test(records, pages_cover_everything_once)
{
    char page[1024], all[1024] = "", last[1024] = "";
    bs_errbuf err = {{0}};
    int pages = 0;

    fill();
    /* One record per page: `after` is the last ID seen. */
    for (;;) {
        cr_assert_eq(
            list("items", last[0] ? last : NULL, NULL, page, sizeof page, &err),
            BS_OK);
        if (page[0] == '\0')
            break;
        {
            char *comma = strchr(page, ',');
            if (comma)
                *comma = '\0';
        }
        snprintf(last, sizeof last, "%s", page);
        strcat(all, all[0] ? "," : "");
        strcat(all, page);
        cr_assert_lt(++pages, 20);
    }
    cr_assert_str_eq(all, "B,a,a0,a1,ab,b,c");
}

Test(records, prefix_selects_ids_and_combines_with_after)
{
    fill();
    list_is("items", NULL, "a", "a,a0,a1,ab");
    list_is("items", NULL, "a0", "a0");
    list_is("items", NULL, "x", "");
    list_is("items", NULL, "", "B,a,a0,a1,ab,b,c");
    list_is("items", "a0", "a", "a1,ab");
    list_is("items", "B", "a", "a,a0,a1,ab"); /* after before the prefix */
    list_is("items", "b", "a", "");           /* after past the prefix */
}

Test(records, iterator_refuses_overlong_names)
{
    char big[BS_ID_MAX + 2];
    bs_records_iter *it;
    bs_errbuf err = {{0}};
    bs_txn *t;

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    bst_ok(bs_store_read(node.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_records_iter_open(t, "items", big, NULL, &it), BS_EINVAL);
    cr_assert_eq(bs_records_iter_open(t, "items", NULL, big, &it), BS_EINVAL);
    big[BS_COLLECTION_MAX + 1] = '\0';
    cr_assert_eq(bs_records_iter_open(t, big, NULL, NULL, &it), BS_EINVAL);
    bs_txn_abort(t);
}

/* ---- writes ---- */

static bs_write
upsert(const char *coll, const char *id, const char *json, bs_arena *a)
{
    bs_errbuf err = {{0}};
    const char *jid;
    bs_write w;

    memset(&w, 0, sizeof w);
    w.coll = coll;
    w.id = id;
    cr_assert_eq(bs_json_fields(json, strlen(json), a, &jid, &w.fields,
                                &w.nfields, &err),
                 BS_OK, "%s", err.msg);
    return w;
}

static bs_write
removal(const char *coll, const char *id)
{
    bs_write w;

    memset(&w, 0, sizeof w);
    w.coll = coll;
    w.id = id;
    w.deleted = 1;
    return w;
}

Test(records, a_batch_with_a_failing_write_leaves_the_store_unchanged)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    bs_write w[3];
    bs_arena a;
    char *j;

    put("items", "i1", "{\"qty\":1}");
    bst_fingerprint(&node, f0);
    bs_arena_init(&a);
    w[0] = upsert("items", "i1", "{\"qty\":2}", &a);
    w[1] = upsert("items", "i2", "{\"qty\":3}", &a);
    w[2] = removal("items", "missing");
    cr_assert_eq(bs_records_write(&node.core, w, 3, NULL, &err), BS_ENOTFOUND);
    cr_assert_str_eq(err.msg, "items/missing: not found");
    bst_fingerprint(&node, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "a part of the batch stayed");
    memset(&err, 0, sizeof err);
    cr_assert_eq(get("items", "i1", &err, &j), BS_OK);
    cr_assert_str_eq(j, "{\"id\":\"i1\",\"qty\":1}");
    free(j);
    /* A bad name anywhere in the batch: refused before anything runs. */
    w[2] = upsert("_members", "x", "{\"qty\":3}", &a);
    cr_assert_eq(bs_records_write(&node.core, w, 3, NULL, &err), BS_EINVAL);
    bst_fingerprint(&node, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0);
    bs_arena_fini(&a);
}

Test(records, a_batch_applies_in_order_and_counts_what_it_did)
{
    bs_write_stats st;
    bs_errbuf err = {{0}};
    bs_write w[4];
    bs_arena a;
    char *j;

    put("items", "i1", "{\"qty\":1}");
    bs_arena_init(&a);
    w[0] = upsert("items", "i1", "{\"qty\":1}", &a); /* no change (P3) */
    w[1] = upsert("items", "i2", "{\"qty\":2}", &a);
    w[2] = removal("items", "i2"); /* the put before it counts */
    w[3] = upsert("items", "i3", "{\"qty\":3}", &a);
    cr_assert_eq(bs_records_write(&node.core, w, 4, &st, &err), BS_OK, "%s",
                 err.msg);
    cr_assert_eq(st.unchanged, 1);
    cr_assert_eq(st.written, 2);
    cr_assert_eq(st.deleted, 1);
    cr_assert_eq(get("items", "i2", &err, &j), BS_ENOTFOUND);
    cr_assert_eq(get("items", "i3", &err, &j), BS_OK);
    free(j);
    bs_arena_fini(&a);
}

/* What a node has written: its own stream's position and log, and the
 * live data. */
static void
written(uint64_t *seq, uint64_t *logs, uint8_t digest[BS_HASH_LEN])
{
    bs_meta m = bst_meta(&node);
    bs_errbuf err = {{0}};
    bs_stream s;
    uint64_t n;
    bs_txn *t;

    cr_assert(bst_stream(&node, m.pk, m.inc, &s));
    *seq = s.seq;
    bst_ok(bs_store_read(node.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_setlog_count(t, logs), BS_OK);
    bs_txn_abort(t);
    bst_digest(&node, digest, &n);
}

Test(records, an_upsert_that_changes_nothing_adds_no_change)
{
    uint8_t d0[BS_HASH_LEN], d1[BS_HASH_LEN];
    uint64_t s0, s1, l0, l1;
    bs_write_stats st;
    bs_errbuf err = {{0}};
    bs_write w;
    bs_arena a;

    put("items", "i1", "{\"name\":\"bolt\",\"qty\":1}");
    written(&s0, &l0, d0);
    bs_arena_init(&a);
    w = upsert("items", "i1", "{\"qty\":1}", &a);
    cr_assert_eq(bs_records_write(&node.core, &w, 1, &st, &err), BS_OK);
    cr_assert_eq(st.unchanged, 1);
    cr_assert_eq(st.written, 0);
    written(&s1, &l1, d1);
    cr_assert_eq(s1, s0, "a seq was spent");
    cr_assert_eq(l1, l0, "a change set was logged");
    cr_assert_eq(memcmp(d0, d1, BS_HASH_LEN), 0);
    bs_arena_fini(&a);
}

/*
 * BUG: a put that changes nothing still writes the store.  bs_local_put
 * (replication/local.c) takes next_version(), which calls bs_hlc_now(),
 * before its is_noop() test, and bs_local_finish() then persists the
 * advanced clock (bs_meta_save_hlc), so loading or putting the same data
 * again commits a metadata change: not the "no-op" of reliability.md P3
 * and load.h ("changes nothing the second time"), and every such `load`
 * costs a durable commit.  Reproduce: put items/i1 {"qty":1}, then put the
 * same again: the store fingerprint differs (the "hlc" metadata).
 */
Test(records, an_upsert_that_changes_nothing_writes_nothing)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};

    put("items", "i1", "{\"name\":\"bolt\",\"qty\":1}");
    bst_fingerprint(&node, f0);
    cr_assert_eq(bst_put(&node, "items", "i1", "{\"qty\":1}", &err), BS_OK);
    bst_fingerprint(&node, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0);
}

/* ---- names ---- */

Test(records, collection_names_are_checked_with_a_message)
{
    const char *bad[] = {"", "_members", ".hidden", "-x", "a b", "a/b", "ä"};
    const char *good[] = {"items", "Items2", "a", "x_y.z-w", "9lives"};
    char big[BS_COLLECTION_MAX + 2];
    bs_errbuf err = {{0}};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(bs_records_check_coll(bad[i], &err), BS_EINVAL, "\"%s\"",
                     bad[i]);
    }
    cr_assert_str_eq(err.msg, "bad collection name \"ä\": 1 to 64 of A-Z a-z "
                              "0-9 _ . - starting with a letter or digit");
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(bs_records_check_coll(good[i], &err), BS_OK, "\"%s\"",
                     good[i]);
    memset(big, 'c', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(bs_records_check_coll(big, &err), BS_EINVAL);
    big[BS_COLLECTION_MAX] = '\0';
    cr_assert_eq(bs_records_check_coll(big, &err), BS_OK);
}

Test(records, record_ids_are_checked_with_a_message)
{
    char big[BS_ID_MAX + 2];
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_records_check_id("", &err), BS_EINVAL);
    cr_assert_str_eq(err.msg, "bad record id: 1 to 256 bytes of UTF-8 "
                              "without control characters");
    cr_assert_eq(bs_records_check_id("a\tb", &err), BS_EINVAL);
    cr_assert_eq(bs_records_check_id("a\nb", &err), BS_EINVAL);
    cr_assert_eq(bs_records_check_id("\xff", &err), BS_EINVAL);
    cr_assert_eq(bs_records_check_id("ä/ö 1", &err), BS_OK);
    memset(big, 'i', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(bs_records_check_id(big, &err), BS_EINVAL);
    big[BS_ID_MAX] = '\0';
    cr_assert_eq(bs_records_check_id(big, &err), BS_OK);
}

/*
 * Issue 8, item 11: a message echoes the name as given, escaped (bs_escape
 * through bs_errf): C0 and DEL as \xNN, C1 and U+2028/9 as \uNNNN, bytes
 * that are not UTF-8 as \xNN; other text as it is.  Escaping twice changes
 * nothing, and a long message is cut at a whole escape.
 */
Test(records, messages_escape_control_characters_in_names)
{
    bs_errbuf err = {{0}}, again = {{0}};
    char raw[600];
    size_t n;

    cr_assert_eq(bs_records_check_coll("a\nb\x1b[2J\xc2\x85\xe2\x80\xa8\xff"
                                       "\xc3\xa9\\x",
                                       &err),
                 BS_EINVAL);
    cr_assert(strstr(err.msg, "\"a\\x0ab\\x1b[2J\\u0085\\u2028\\xff\xc3\xa9"
                              "\\x\"") != NULL,
              "%s", err.msg);
    bs_errf(&again, BS_EINVAL, "%s", err.msg);
    cr_assert_str_eq(again.msg, err.msg, "escaping twice changed it");
    memset(raw, '\x01', sizeof raw - 1);
    raw[sizeof raw - 1] = '\0';
    bs_errf(&err, BS_EINVAL, "%s", raw);
    n = strlen(err.msg);
    cr_assert_lt(n, sizeof err.msg);
    cr_assert_eq(n % 4, 0, "cut inside an escape: %zu bytes", n);
    cr_assert_eq(strspn(err.msg, "\\x01"), n);
}

/* ---- corruption ---- */

/* Replace record items/id with bytes that do not decode. */
static void
corrupt(const char *id)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, "items", id);

    bst_damage(node.n->store, BST_RECORDS, bs_mem(key, klen),
               bs_str("not a record"));
}

#define CORRUPT_MSG                                                            \
    "store is corrupt: record items/bad does not decode; restore from a "      \
    "backup"

Test(records, get_of_a_record_that_does_not_decode_is_a_store_error)
{
    bs_errbuf err = {{0}};
    char *j;

    put("items", "bad", "{\"v\":1}");
    corrupt("bad");
    cr_assert_eq(get("items", "bad", &err, &j), BS_ESTORE);
    cr_assert_str_eq(err.msg, CORRUPT_MSG);
}

Test(records, iteration_stops_at_a_record_that_does_not_decode)
{
    bs_errbuf err = {{0}};
    char got[256];

    put("items", "a", "{\"v\":1}");
    put("items", "c", "{\"v\":1}");
    corrupt("bad");
    cr_assert_eq(list("items", NULL, NULL, got, sizeof got, &err), BS_ESTORE);
    cr_assert_str_eq(got, "a", "records after the damage were listed");
    cr_assert_str_eq(err.msg, CORRUPT_MSG);
    /* Paging past it still works. */
    cr_assert_eq(list("items", "bad", NULL, got, sizeof got, &err), BS_OK);
    cr_assert_str_eq(got, "c");
}

Test(records, a_write_over_a_record_that_does_not_decode_is_a_store_error)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};

    put("items", "bad", "{\"v\":1}");
    corrupt("bad");
    bst_fingerprint(&node, f0);
    cr_assert_eq(bst_put(&node, "items", "bad", "{\"v\":2}", &err), BS_ESTORE);
    cr_assert_eq(bst_del(&node, "items", "bad", &err), BS_ESTORE);
    bst_fingerprint(&node, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0);
}
