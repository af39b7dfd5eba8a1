/*
 * test_local.c - local writes (replication/local.c, reached through the
 * core API: bs_records_write in records.h) and digest.c, on real node
 * directories made by the test fixture (tests/lib/fixture.h): local puts
 * and deletes number their changes consecutively and seal them into the
 * log, no-op puts are skipped, a delete of a missing record writes
 * nothing, and the digest is equal on nodes holding the same live data
 * whatever their history, and differs as soon as one value does.  The
 * wall clock is a fake one.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../replication/collections.h"
#include "../../replication/digest.h"
#include "../../replication/load.h"
#include "../../replication/setlog.h"
#include "../../replication/streams.h"
#include "../lib/fixture.h"

/* ---- fixture: a temporary root holding node directories ---- */

static char root[128];
/* A fake wall clock that moves one millisecond per reading. */
static bst_clock clock_ms = {1767225600000ull, 1};

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "local");
}

static void
teardown(void)
{
    bst_rmtree(root);
    root[0] = '\0';
}

TestSuite(local, .init = setup, .fini = teardown);

typedef bst_node tnode;

static void
node_new(tnode *t, const char *name, int role)
{
    bs_clock c = bst_clock_of(&clock_ms);

    bst_node_new(t, root, name, role, &c);
}

static void
node_free(tnode *t)
{
    bst_node_free(t);
}

/* ---- writes ---- */

typedef bst_op op;

#define PUT(c, i, j)                                                           \
    {                                                                          \
        c, i, j                                                                \
    }
#define DEL(c, i)                                                              \
    {                                                                          \
        c, i, NULL                                                             \
    }

/* Run ops in one write transaction (bs_records_write). */
static bs_err
run(tnode *t, const op *ops, size_t n, bs_write_stats *out, bs_errbuf *err)
{
    return bst_write(t, ops, n, out, err);
}

static void
run_ok(tnode *t, const op *ops, size_t n, bs_write_stats *out)
{
    bs_errbuf err = {{0}};
    bs_err rv = run(t, ops, n, out, &err);

    cr_assert_eq(rv, BS_OK, "write: %s", bs_errmsg(&err, rv));
}

static void
put1(tnode *t, const char *coll, const char *id, const char *json)
{
    op o = PUT(coll, id, json);

    run_ok(t, &o, 1, NULL);
}

/* ---- state ---- */

typedef struct state {
    uint64_t seq;     /* own stream's seq */
    uint64_t log;     /* change sets in the log */
    uint64_t records; /* stored user records (live or not) */
    uint64_t hlc;     /* persisted clock */
} state;

static state
get_state(tnode *t)
{
    bs_txn *txn;
    bs_meta m;
    bs_streamtab tab;
    bs_stream *self;
    bst_counts c;
    state s;

    cr_assert_eq(bs_store_read(t->n->store, &txn, NULL), BS_OK);
    cr_assert_eq(bs_meta_load(txn, &m, NULL), BS_OK);
    cr_assert_eq(bs_streams_load(txn, &tab), BS_OK);
    self = bs_streams_get(&tab, m.stream);
    cr_assert_not_null(self);
    s.seq = self->seq;
    s.hlc = m.hlc;
    bs_streams_fini(&tab);
    bs_txn_abort(txn);
    bst_count(t, &c);
    s.log = c.sets;
    s.records = c.records;
    return s;
}

static void
assert_json(tnode *t, const char *coll, const char *id, const char *want)
{
    char *got = bst_get(t, coll, id);

    if (want == NULL) {
        cr_assert_null(got, "%s/%s is live: %s", coll, id, got ? got : "");
    } else {
        cr_assert_not_null(got, "%s/%s is not live", coll, id);
        cr_assert_str_eq(got, want);
    }
    free(got);
}

typedef struct digest {
    uint8_t h[BS_HASH_LEN];
    uint64_t n;
} digest;

static digest
get_digest(tnode *t, const char *const *coll, size_t ncoll)
{
    bs_txn *txn;
    digest d;
    bs_errbuf err = {{0}};
    bs_err rv;

    cr_assert_eq(bs_store_read(t->n->store, &txn, NULL), BS_OK);
    rv = bs_digest(txn, coll, ncoll, d.h, &d.n, &err);
    cr_assert_eq(rv, BS_OK, "digest: %s", bs_errmsg(&err, rv));
    bs_txn_abort(txn);
    return d;
}

static int
digest_eq(digest a, digest b)
{
    return a.n == b.n && memcmp(a.h, b.h, BS_HASH_LEN) == 0;
}

/* ---- sequence numbers and the log ---- */

Test(local, new_node_starts_empty)
{
    tnode a;
    state s;

    node_new(&a, "hq", BS_ROLE_HUB);
    s = get_state(&a);
    cr_assert_eq(s.seq, 0);
    cr_assert_eq(s.log, 0);
    cr_assert_eq(s.records, 0);
    cr_assert_eq(a.n->meta.role, BS_ROLE_HUB);
    cr_assert_eq(a.n->meta.joined, 1, "a hub founds its infobase");
    node_free(&a);
}

Test(local, inv1_puts_get_consecutive_seqs)
{
    tnode a;
    char id[16];
    state s, prev;

    node_new(&a, "hq", BS_ROLE_HUB);
    prev = get_state(&a);
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof id, "r%d", i);
        put1(&a, "c", id, "{\"n\":1}");
        s = get_state(&a);
        cr_assert_eq(s.seq, (uint64_t)i, "put %d", i);
        cr_assert_eq(s.log, (uint64_t)i, "one change set per transaction");
        cr_assert_eq(s.records, (uint64_t)i);
        cr_assert_gt(s.hlc, prev.hlc, "the clock was not persisted");
        prev = s;
    }
    /* Ten puts in one transaction: ten seqs, one set. */
    {
        static char ids[10][8];
        op ops[10];
        bs_write_stats j;

        for (int i = 0; i < 10; i++) {
            snprintf(ids[i], sizeof ids[i], "m%d", i);
            ops[i] = (op)PUT("c", ids[i], "{\"x\":\"y\"}");
        }
        run_ok(&a, ops, 10, &j);
        cr_assert_eq(j.written, 10);
        s = get_state(&a);
        cr_assert_eq(s.seq, 15);
        cr_assert_eq(s.log, 6);
    }
    node_free(&a);
}

Test(local, log_keys_name_stream_and_first_seq)
{
    tnode a;
    bs_txn *txn;
    bs_slice set;
    uint64_t want, from, first, nsets;
    op batch[] = {PUT("c", "x", "{\"a\":1}"), PUT("c", "y", "{\"a\":2}"),
                  DEL("c", "x")};
    const uint64_t firsts[] = {1, 2, 3, 4, 7};
    bs_err rv;

    node_new(&a, "hq", BS_ROLE_HUB);
    put1(&a, "c", "a", "{\"a\":1}");
    put1(&a, "c", "b", "{\"a\":1}");
    put1(&a, "c", "c", "{\"a\":1}");
    run_ok(&a, batch, 3, NULL);
    put1(&a, "c", "d", "{\"a\":1}");
    cr_assert_eq(bs_store_read(a.n->store, &txn, NULL), BS_OK);
    /* The own stream's sets, in key order (setlog.h: stream, first seq),
     * each the set of its origin's stream starting there. */
    want = 0;
    for (from = 0; (rv = bs_setlog_from(txn, a.n->meta.stream, from, &set,
                                        &first)) == BS_OK;
         from = first + 1) {
        bs_csview *v;

        cr_assert_lt(want, 5, "more sets than transactions");
        cr_assert_eq(first, firsts[want], "set %llu", (unsigned long long)want);
        cr_assert_gt(set.n, 64, "a set holds at least a signature");
        cr_assert_eq(bs_changeset_decode(set.p, set.n, &v, NULL), BS_OK);
        cr_assert_eq(v->first, first, "stored under another first seq");
        cr_assert_eq(memcmp(v->origin, a.n->meta.pk, BS_PK_LEN), 0);
        cr_assert_eq(memcmp(v->inc, a.n->meta.inc, BS_INC_LEN), 0);
        bs_changeset_free(v);
        want++;
    }
    cr_assert_eq(rv, BS_ENOTFOUND);
    cr_assert_eq(want, 5);
    cr_assert_eq(bs_setlog_count(txn, &nsets), BS_OK);
    cr_assert_eq(nsets, 5, "sets stored under another stream");
    bs_txn_abort(txn);
    cr_assert_eq(get_state(&a).seq, 7);
    node_free(&a);
}

Test(local, stored_versions_carry_seq_and_stream)
{
    tnode a;
    bs_txn *txn;
    bs_record r;
    bs_arena ar;

    node_new(&a, "hq", BS_ROLE_HUB);
    put1(&a, "c", "k", "{\"a\":1,\"b\":2}");
    put1(&a, "c", "k", "{\"b\":3}");
    bs_arena_init(&ar);
    cr_assert_eq(bs_store_read(a.n->store, &txn, NULL), BS_OK);
    cr_assert_eq(bs_records_get(txn, "c", "k", &ar, &r, NULL), BS_OK);
    cr_assert_eq(r.nfields, 2);
    cr_assert_eq(r.fields[0].ver.seq, 1, "field a from the first put");
    cr_assert_eq(r.fields[1].ver.seq, 2, "field b from the second put");
    cr_assert_eq(r.fields[0].ver.stream, a.n->meta.stream);
    cr_assert_gt(r.fields[1].ver.hlc, r.fields[0].ver.hlc);
    cr_assert_eq(r.alive.seq, 2);
    bs_txn_abort(txn);
    bs_arena_fini(&ar);
    node_free(&a);
}

/* ---- no-op puts ---- */

Test(local, put_that_changes_nothing_is_skipped)
{
    tnode a;
    op same = PUT("c", "k", "{\"b\":\"x\",\"a\":1}");
    op subset = PUT("c", "k", "{\"a\":1}");
    op empty = PUT("c", "k", "{}");
    bs_write_stats j;
    state before, after;

    node_new(&a, "hq", BS_ROLE_HUB);
    run_ok(&a, &same, 1, &j);
    cr_assert_eq(j.written, 1);
    before = get_state(&a);

    run_ok(&a, &same, 1, &j);
    cr_assert_eq(j.written, 0);
    cr_assert_eq(j.unchanged, 1);
    run_ok(&a, &subset, 1, &j);
    cr_assert_eq(j.unchanged, 1, "a subset of equal fields is a no-op");
    run_ok(&a, &empty, 1, &j);
    cr_assert_eq(j.unchanged, 1, "an empty put of a live record is a no-op");
    after = get_state(&a);
    cr_assert_eq(after.seq, before.seq, "a no-op used a seq");
    cr_assert_eq(after.log, before.log, "a no-op wrote a change set");
    assert_json(&a, "c", "k", "{\"id\":\"k\",\"a\":1,\"b\":\"x\"}");
    node_free(&a);
}

Test(local, put_with_any_difference_is_written)
{
    tnode a;
    static const char *const changes[] = {
        "{\"a\":2}",       /* new value */
        "{\"a\":2.0}",     /* same number, real instead of integer */
        "{\"a\":\"2.0\"}", /* text */
        "{\"a\":null}",    /* null */
        "{\"c\":null}",    /* a new field */
        "{\"b\":\"x \"}",  /* text differing by a space */
    };
    uint64_t seq;
    bs_write_stats j;

    node_new(&a, "hq", BS_ROLE_HUB);
    put1(&a, "c", "k", "{\"a\":1,\"b\":\"x\"}");
    seq = get_state(&a).seq;
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
        op o = PUT("c", "k", changes[i]);

        run_ok(&a, &o, 1, &j);
        cr_assert_eq(j.written, 1, "%s was skipped", changes[i]);
        cr_assert_eq(get_state(&a).seq, ++seq, "%s", changes[i]);
    }
    assert_json(&a, "c", "k",
                "{\"id\":\"k\",\"a\":null,\"b\":\"x \",\"c\":null}");
    node_free(&a);
}

Test(local, same_put_after_delete_resurrects)
{
    tnode a;
    op p = PUT("c", "k", "{\"a\":1}");
    op d = DEL("c", "k");
    bs_write_stats j;

    node_new(&a, "hq", BS_ROLE_HUB);
    run_ok(&a, &p, 1, &j);
    run_ok(&a, &d, 1, &j);
    cr_assert_eq(j.deleted, 1);
    assert_json(&a, "c", "k", NULL);
    run_ok(&a, &p, 1, &j);
    cr_assert_eq(j.written, 1, "a put of a deleted record was skipped");
    assert_json(&a, "c", "k", "{\"id\":\"k\",\"a\":1}");
    cr_assert_eq(get_state(&a).seq, 3);
    node_free(&a);
}

Test(local, put_after_delete_keeps_only_new_fields)
{
    tnode a;
    op d = DEL("c", "k");

    node_new(&a, "hq", BS_ROLE_HUB);
    put1(&a, "c", "k", "{\"a\":1,\"b\":2}");
    run_ok(&a, &d, 1, NULL);
    put1(&a, "c", "k", "{\"c\":3}");
    assert_json(&a, "c", "k", "{\"id\":\"k\",\"c\":3}");
    node_free(&a);
}

/* ---- deletes ---- */

Test(local, del_of_missing_record_is_notfound_and_writes_nothing)
{
    tnode a;
    op d = DEL("c", "nope");
    bs_errbuf err = {{0}};
    state before, after;
    bs_err rv;

    node_new(&a, "hq", BS_ROLE_HUB);
    put1(&a, "c", "other", "{\"a\":1}");
    before = get_state(&a);
    rv = run(&a, &d, 1, NULL, &err);
    cr_assert_eq(rv, BS_ENOTFOUND);
    cr_assert_eq(bs_err_exit_code(rv), 1);
    cr_assert(strstr(err.msg, "not found") != NULL, "message: %s", err.msg);
    after = get_state(&a);
    cr_assert_eq(after.seq, before.seq);
    cr_assert_eq(after.log, before.log);
    cr_assert_eq(after.records, before.records, "a tombstone was written");
    cr_assert_eq(after.hlc, before.hlc, "the clock was persisted");
    node_free(&a);
}

Test(local, del_of_deleted_record_is_notfound)
{
    tnode a;
    op d = DEL("c", "k");
    bs_errbuf err = {{0}};
    state before;

    node_new(&a, "hq", BS_ROLE_HUB);
    put1(&a, "c", "k", "{\"a\":1}");
    run_ok(&a, &d, 1, NULL);
    before = get_state(&a);
    cr_assert_eq(before.records, 1, "the tombstone stays");
    cr_assert_eq(run(&a, &d, 1, NULL, &err), BS_ENOTFOUND);
    cr_assert_eq(get_state(&a).seq, before.seq);
    cr_assert_eq(get_state(&a).log, before.log);
    node_free(&a);
}

Test(local, inv6_failing_write_in_a_batch_writes_nothing)
{
    tnode a;
    op batch[] = {PUT("c", "x", "{\"a\":1}"), PUT("c", "y", "{\"a\":2}"),
                  DEL("c", "missing")};
    bs_errbuf err = {{0}};
    state before, after;

    node_new(&a, "hq", BS_ROLE_HUB);
    before = get_state(&a);
    cr_assert_eq(run(&a, batch, 3, NULL, &err), BS_ENOTFOUND);
    after = get_state(&a);
    cr_assert_eq(after.seq, before.seq);
    cr_assert_eq(after.log, before.log);
    cr_assert_eq(after.records, 0);
    assert_json(&a, "c", "x", NULL);
    node_free(&a);
}

Test(local, branch_node_writes_too)
{
    tnode b;

    node_new(&b, "tartu", BS_ROLE_BRANCH);
    cr_assert_eq(b.n->meta.joined, 0);
    put1(&b, "c", "k", "{\"a\":1}");
    cr_assert_eq(get_state(&b).seq, 1);
    cr_assert_eq(get_state(&b).log, 1);
    assert_json(&b, "c", "k", "{\"id\":\"k\",\"a\":1}");
    node_free(&b);
}

/* ---- digest ---- */

static const op base_ops[] = {
    PUT("customers", "C1", "{\"name\":\"Ann\",\"city\":\"Tartu\"}"),
    PUT("customers", "C2", "{\"name\":\"Bob\",\"vip\":true}"),
    PUT("customers", "C3", "{\"name\":\"\\u00c4\\u00fc\",\"n\":1.5}"),
    PUT("products", "P1", "{\"price\":10,\"unit\":null}"),
    PUT("products", "P2", "{\"price\":-3}"),
};
#define NBASE (sizeof base_ops / sizeof base_ops[0])

Test(local, digest_equal_for_same_data_in_any_order_and_history)
{
    tnode a, b;
    digest da, db;

    node_new(&a, "a", BS_ROLE_HUB);
    node_new(&b, "b", BS_ROLE_HUB);
    /* a: one put per transaction, in order. */
    for (size_t i = 0; i < NBASE; i++)
        run_ok(&a, &base_ops[i], 1, NULL);
    /* b: reverse order in one transaction, after a different history. */
    {
        op hist[] = {
            PUT("customers", "X", "{\"tmp\":1}"),
            PUT("customers", "X", "{\"tmp\":2}"),
            PUT("customers", "C1", "{\"name\":\"Anne\",\"old\":true}"),
            DEL("customers", "X"),
            DEL("customers", "C1"),
            PUT("products", "P2", "{\"price\":5}"),
            PUT("gone", "G", "{\"x\":1}"),
            DEL("gone", "G"),
        };
        op rev[NBASE];

        run_ok(&b, hist, sizeof hist / sizeof hist[0], NULL);
        for (size_t i = 0; i < NBASE; i++)
            rev[i] = base_ops[NBASE - 1 - i];
        run_ok(&b, rev, NBASE, NULL);
        /* Set a value away and back again. */
        put1(&b, "customers", "C2", "{\"vip\":false}");
        put1(&b, "customers", "C2", "{\"vip\":true}");
    }
    cr_assert_neq(get_state(&a).seq, get_state(&b).seq,
                  "the histories should differ");
    da = get_digest(&a, NULL, 0);
    db = get_digest(&b, NULL, 0);
    cr_assert_eq(da.n, NBASE);
    cr_assert(digest_eq(da, db), "same live data, different digests");
    node_free(&a);
    node_free(&b);
}

Test(local, digest_differs_when_one_value_differs)
{
    static const char *const variants[] = {
        "{\"price\":11}",                         /* other integer */
        "{\"price\":10.0}",                       /* same number as a real */
        "{\"price\":\"10\"}", "{\"unit\":false}", /* null -> false */
        "{\"extra\":null}",                       /* one more field */
    };

    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        tnode a, b;
        char na[16], nb[16];
        op o = PUT("products", "P1", variants[v]);

        snprintf(na, sizeof na, "a%zu", v);
        snprintf(nb, sizeof nb, "b%zu", v);
        node_new(&a, na, BS_ROLE_HUB);
        node_new(&b, nb, BS_ROLE_HUB);
        run_ok(&a, base_ops, NBASE, NULL);
        run_ok(&b, base_ops, NBASE, NULL);
        cr_assert(digest_eq(get_digest(&a, NULL, 0), get_digest(&b, NULL, 0)));
        run_ok(&b, &o, 1, NULL);
        cr_assert_not(
            digest_eq(get_digest(&a, NULL, 0), get_digest(&b, NULL, 0)),
            "%s did not change the digest", variants[v]);
        node_free(&a);
        node_free(&b);
    }
}

Test(local, digest_differs_for_other_id_or_collection)
{
    tnode a, b, c;

    node_new(&a, "a", BS_ROLE_HUB);
    node_new(&b, "b", BS_ROLE_HUB);
    node_new(&c, "c", BS_ROLE_HUB);
    put1(&a, "c1", "k", "{\"v\":1}");
    put1(&b, "c1", "k2", "{\"v\":1}");
    put1(&c, "c2", "k", "{\"v\":1}");
    cr_assert_not(digest_eq(get_digest(&a, NULL, 0), get_digest(&b, NULL, 0)));
    cr_assert_not(digest_eq(get_digest(&a, NULL, 0), get_digest(&c, NULL, 0)));
    node_free(&a);
    node_free(&b);
    node_free(&c);
}

Test(local, digest_of_collection_subset)
{
    tnode a, b, c, e;
    const char *cust[] = {"customers"};
    const char *both[] = {"customers", "products"};
    const char *prefix[] = {"custom"};
    digest d;

    node_new(&a, "a", BS_ROLE_HUB);
    node_new(&b, "b", BS_ROLE_HUB);
    node_new(&c, "c", BS_ROLE_HUB);
    node_new(&e, "e", BS_ROLE_HUB);
    run_ok(&a, base_ops, NBASE, NULL);
    run_ok(&b, base_ops, NBASE, NULL);
    put1(&b, "products", "P9", "{\"price\":1}");
    run_ok(&c, base_ops, 3, NULL); /* the customers only */

    d = get_digest(&a, cust, 1);
    cr_assert_eq(d.n, 3);
    cr_assert(digest_eq(d, get_digest(&b, cust, 1)),
              "customers are equal on a and b");
    cr_assert_not(digest_eq(get_digest(&a, both, 2), get_digest(&b, both, 2)));
    cr_assert_not(digest_eq(get_digest(&a, NULL, 0), get_digest(&b, NULL, 0)));
    /* The subset digest is the digest of a node holding only that subset. */
    cr_assert(digest_eq(d, get_digest(&c, NULL, 0)));
    cr_assert(digest_eq(get_digest(&a, both, 2), get_digest(&a, NULL, 0)));
    /* A collection name that is a prefix of another selects nothing. */
    d = get_digest(&a, prefix, 1);
    cr_assert_eq(d.n, 0);
    cr_assert(digest_eq(d, get_digest(&e, NULL, 0)));
    node_free(&a);
    node_free(&b);
    node_free(&c);
    node_free(&e);
}

Test(local, digest_ignores_deleted_and_system_records)
{
    tnode a, b, c;
    op d = DEL("customers", "C9");
    bs_collection rules = {.name = "customers",
                           .declared = 1,
                           .policy = BS_POLICY_MANUAL,
                           .set = BS_RULE_POLICY};
    bs_errbuf err = {{0}};
    bs_err rv;

    node_new(&a, "a", BS_ROLE_HUB);
    node_new(&b, "b", BS_ROLE_HUB);
    node_new(&c, "c", BS_ROLE_BRANCH);
    run_ok(&a, base_ops, NBASE, NULL);
    run_ok(&b, base_ops, NBASE, NULL);
    put1(&b, "customers", "C9", "{\"name\":\"Zed\"}");
    run_ok(&b, &d, 1, NULL);
    /* System records: a policy (`_collections`) and, by pairing, a
     * member (`_members`). */
    rv = bs_collections_declare(&b.core, &rules, NULL, &err);
    cr_assert_eq(rv, BS_OK, "declare: %s", bs_errmsg(&err, rv));
    bst_pair(&b, &c);
    cr_assert(digest_eq(get_digest(&a, NULL, 0), get_digest(&b, NULL, 0)));
    cr_assert_eq(get_digest(&b, NULL, 0).n, NBASE);
    node_free(&a);
    node_free(&b);
    node_free(&c);
}

Test(local, node_create_refuses_existing_node)
{
    tnode a;
    bs_node_init in = {"again", BS_ROLE_BRANCH, NULL};
    bs_errbuf err = {{0}};
    uint8_t pk[BS_PK_LEN];

    node_new(&a, "hq", BS_ROLE_HUB);
    memcpy(pk, a.n->meta.pk, BS_PK_LEN);
    put1(&a, "c", "k", "{\"a\":1}");
    node_free(&a);
    cr_assert_eq(bs_node_create(a.dir, &in, &err), BS_EEXIST);
    cr_assert_eq(bs_node_open(a.dir, 1, &a.n, &err), BS_OK);
    cr_assert_eq(memcmp(a.n->meta.pk, pk, BS_PK_LEN), 0, "the key changed");
    cr_assert_str_eq(a.n->meta.name, "hq");
    cr_assert_eq(get_state(&a).seq, 1);
    node_free(&a);
}

Test(local, node_open_of_plain_dir_is_enotnode)
{
    bs_node *n = NULL;
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_node_open(root, 0, &n, &err), BS_ENOTNODE);
    cr_assert_null(n);
}

/* ---- records larger than one change (issue 8 item 1) ---- */

/* {"p0000":...,...}: fields [from, from + n) named prefix%05zu, each a text
 * of vlen bytes (or its index when vlen is 0). */
static char *
object_of(const char *prefix, size_t from, size_t n, size_t vlen)
{
    size_t cap = n * (vlen + 32) + 8, len = 0;
    char *s = malloc(cap);

    cr_assert_not_null(s);
    s[len++] = '{';
    for (size_t i = from; i < from + n; i++) {
        len +=
            (size_t)snprintf(s + len, cap - len,
                             "%s\"%s%05zu\":", i > from ? "," : "", prefix, i);
        if (vlen == 0) {
            len += (size_t)snprintf(s + len, cap - len, "%zu", i);
        } else {
            s[len++] = '"';
            memset(s + len, 'a' + (char)(i % 26), vlen);
            len += vlen;
            s[len++] = '"';
        }
    }
    s[len++] = '}';
    s[len] = '\0';
    return s;
}

/* Load one JSON line (an object with "id") into coll on t. */
static void
load_line(tnode *t, const char *coll, const char *line)
{
    bs_errbuf err = {{0}};
    bs_load_stats st;
    bs_err rv =
        bs_load_jsonl(&t->core, coll, line, strlen(line), NULL, &st, &err);

    cr_assert_eq(rv, BS_OK, "load: %s", bs_errmsg(&err, rv));
    cr_assert_eq(st.written, 1);
}

Test(local, put_of_more_fields_than_one_change_is_split_into_changes)
{
    tnode a, b;
    state before, after;
    char *json = object_of("f", 0, 2500, 0), *got;
    op put = PUT("c", "k", json);
    bs_write_stats j;

    node_new(&a, "hq", BS_ROLE_HUB);
    node_new(&b, "tallinn", BS_ROLE_BRANCH);
    bst_pair2(&a, &b);
    before = get_state(&a);
    run_ok(&a, &put, 1, &j);
    cr_assert_eq(j.written, 1, "one record written, in several changes");
    after = get_state(&a);
    /* 1,024 + 1,024 + 452 fields: three changes, one set. */
    cr_assert_eq(after.seq - before.seq, 3);
    cr_assert_eq(after.log - before.log, 1);
    run_ok(&a, &put, 1, &j);
    cr_assert_eq(j.unchanged, 1, "the same write again is a no-op");
    cr_assert_eq(get_state(&a).seq, after.seq);
    /* The peer admits every change and holds the same record. */
    {
        bs_errbuf err = {{0}};

        cr_assert_eq(bst_carry(&a, &b, NULL, &err), BS_OK, "%s", err.msg);
    }
    got = bst_get(&b, "c", "k");
    cr_assert_not_null(got);
    {
        char *want = bst_get(&a, "c", "k");

        cr_assert_str_eq(got, want);
        free(want);
    }
    free(got);
    free(json);
    node_free(&a);
    node_free(&b);
}

Test(local, put_of_more_bytes_than_one_change_is_split_into_changes)
{
    tnode a;
    state before, after;
    /* Three fields of 900,000 bytes: no two fit in one change's share. */
    char *json = object_of("t", 0, 3, 900000), *got;
    op put = PUT("c", "big", json);
    bs_write_stats j;

    node_new(&a, "hq", BS_ROLE_HUB);
    before = get_state(&a);
    run_ok(&a, &put, 1, &j);
    after = get_state(&a);
    cr_assert_eq(after.seq - before.seq, 3);
    got = bst_get(&a, "c", "big");
    cr_assert_not_null(got);
    cr_assert_gt(strlen(got), 2700000);
    free(got);
    free(json);
    node_free(&a);
}

/*
 * Two offices each write 3 x 1,024 fields of their own to one record, and a
 * record of 3 MiB: the merged record (6,144 fields) is past the old cap of
 * 4,096, which refused the set and stalled the origin's later sets for good.
 * Both directions now admit everything, both offices hold the same data,
 * the later write of each arrives, and what `get`/`ls` print of the merged
 * records loads on a third node.
 */
Test(local, merges_past_one_writes_limits_never_stall_and_load_back)
{
    tnode hq, br, third;
    bs_errbuf err = {{0}};
    digest dh, db;
    char *s;
    size_t nrec;

    node_new(&hq, "hq", BS_ROLE_HUB);
    node_new(&br, "tallinn", BS_ROLE_BRANCH);
    node_new(&third, "riga", BS_ROLE_HUB);
    bst_pair2(&hq, &br);
    cr_assert_eq(bst_carry(&hq, &br, NULL, &err), BS_OK, "%s", err.msg);
    for (size_t w = 0; w < 3; w++) {
        char *x = object_of("hq", w * 1024, 1024, 0);
        char *y = object_of("br", w * 1024, 1024, 0);

        cr_assert_eq(bst_put(&hq, "c", "k", x, &err), BS_OK, "%s", err.msg);
        cr_assert_eq(bst_put(&br, "c", "k", y, &err), BS_OK, "%s", err.msg);
        free(x);
        free(y);
        x = object_of("hq", w, 1, 600000);
        y = object_of("br", w, 1, 600000);
        cr_assert_eq(bst_put(&hq, "c", "big", x, &err), BS_OK, "%s", err.msg);
        cr_assert_eq(bst_put(&br, "c", "big", y, &err), BS_OK, "%s", err.msg);
        free(x);
        free(y);
    }
    /* Later writes of both origins, behind the large ones. */
    cr_assert_eq(bst_put(&hq, "c", "after", "{\"by\":\"hq\"}", &err), BS_OK);
    cr_assert_eq(bst_put(&br, "c", "after2", "{\"by\":\"br\"}", &err), BS_OK);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(bst_carry(&hq, &br, NULL, &err), BS_OK, "%s", err.msg);
        cr_assert_eq(bst_carry(&br, &hq, NULL, &err), BS_OK, "%s", err.msg);
    }
    dh = get_digest(&hq, NULL, 0);
    db = get_digest(&br, NULL, 0);
    cr_assert(digest_eq(dh, db), "the offices differ");
    cr_assert_eq(dh.n, 4, "records: k, big, after, after2");
    s = bst_get(&br, "c", "after");
    cr_assert_not_null(s, "the hub's later write waits behind the merge");
    free(s);
    s = bst_get(&hq, "c", "after2");
    cr_assert_not_null(s, "the branch's later write waits behind the merge");
    free(s);
    /* What get prints (as ls does) loads on another node. */
    for (int i = 0; i < 2; i++) {
        const char *id = i == 0 ? "k" : "big";
        char *want = bst_get(&hq, "c", id), *got;

        cr_assert_not_null(want);
        cr_assert_gt(strlen(want), i == 0 ? 6144 * 8 : 3600000);
        load_line(&third, "c", want);
        got = bst_get(&third, "c", id);
        cr_assert_not_null(got);
        cr_assert_str_eq(got, want, "%s does not load back", id);
        free(want);
        free(got);
    }
    nrec = get_digest(&third, NULL, 0).n;
    cr_assert_eq(nrec, 2);
    node_free(&hq);
    node_free(&br);
    node_free(&third);
}
