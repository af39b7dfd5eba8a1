/*
 * test_conflict.c - the conflict register (replication/conflict.h): IDs
 * that do not depend on the order of the candidates, recording twice as a
 * no-op, the open/all counts kept in the metadata through add,
 * mark_resolved and supersede, the iterator, look-up by ID, and
 * supersede only by a write that has seen both sides.
 *
 * The register is driven directly in write transactions of a node's
 * store; detection by the apply path is in test_resolution.c.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/conflict.h"

static char root[128];
static bst_node node, other;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "conflict");
    bst_node_new(&node, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&other, root, "tallinn", BS_ROLE_BRANCH, NULL);
}

static void
teardown(void)
{
    bst_node_free(&node);
    bst_node_free(&other);
    bst_rmtree(root);
    bst_leak_check("test_conflict");
}

TestSuite(conflict, .init = setup, .fini = teardown, .timeout = 60);

/* ---- candidates ---- */

/* Two writers' stream keys (origin || incarnation); A's origin sorts
 * first. */
static uint8_t key_a[BS_STREAM_KEY_LEN], key_b[BS_STREAM_KEY_LEN];

static bs_value
text(const char *s)
{
    bs_value v;

    memset(&v, 0, sizeof v);
    v.type = BS_VTEXT;
    v.s = s;
    v.len = (uint32_t)strlen(s);
    return v;
}

static void
keys(void)
{
    memset(key_a, 0x11, sizeof key_a);
    memset(key_b, 0x22, sizeof key_b);
}

/* ---- one operation per write transaction ---- */

enum { OP_ADD, OP_MARK, OP_SUPERSEDE };

typedef struct op {
    int kind;
    const char *coll, *id, *field;
    bs_policy policy;
    bs_cand a, b;
    int winner;
    const char *cid, *how;
    const bs_pos *seen;
    size_t nseen;
} op;

static bs_err
op_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    op *o = arg;

    (void)err;
    switch (o->kind) {
    case OP_ADD:
        return bs_conflict_add(t, o->coll, o->id, o->field, o->policy, &o->a,
                               &o->b, o->winner, 1234);
    case OP_MARK:
        return bs_conflict_mark_resolved(t, o->cid, o->how);
    default:
        return bs_conflict_supersede(t, o->coll, o->id, o->field, o->seen,
                                     o->nseen);
    }
}

static bs_err
run(bst_node *n, op *o)
{
    bs_errbuf err = {{0}};

    return bs_store_write(n->n->store, op_txn, o, &err);
}

/* Record a conflict of coll/id/field between A (seq 3, "left") and B (seq
 * 5, "right"), A first unless swapped. */
static void
add_ab(bst_node *n, const char *coll, const char *id, const char *field,
       bs_policy pol, int swapped, const bs_value *va, const bs_value *vb)
{
    bs_cand a = {key_a, 3, 1000, va}, b = {key_b, 5, 2000, vb};
    op o = {OP_ADD, coll, id, field, pol, a, b, 1, NULL, NULL, NULL, 0};

    if (swapped) {
        o.a = b;
        o.b = a;
        o.winner = 0;
    }
    cr_assert_eq(run(n, &o), BS_OK);
}

static void
counts(bst_node *n, uint64_t *open, uint64_t *all)
{
    bs_errbuf err = {{0}};
    bs_txn *t;

    bst_ok(bs_store_read(n->n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_conflict_count(t, open, all), BS_OK);
    bs_txn_abort(t);
}

/* The IDs of the register's conflicts in key order (all or open). */
static size_t
ids(bst_node *n, int all, char out[][BS_CONFLICT_ID_LEN + 1], size_t max)
{
    bs_errbuf err = {{0}};
    bs_conflict_iter *it;
    const bs_conflict *c;
    size_t k = 0;
    bs_txn *t;
    bs_err rv;

    bst_ok(bs_store_read(n->n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_conflict_iter_open(t, all, &it), BS_OK);
    while ((rv = bs_conflict_iter_next(it, &c)) == BS_OK) {
        cr_assert_lt(k, max);
        memcpy(out[k++], c->id, BS_CONFLICT_ID_LEN + 1);
    }
    cr_assert_eq(rv, BS_ENOTFOUND);
    bs_conflict_iter_close(it);
    bs_txn_abort(t);
    return k;
}

static bs_err
get(bst_node *n, const char *cid, bs_conflict *c)
{
    bs_errbuf err = {{0}};
    bs_txn *t;
    bs_err rv;

    bst_ok(bs_store_read(n->n->store, &t, &err), &err, "read");
    rv = bs_conflict_get(t, cid, c);
    bs_txn_abort(t);
    return rv;
}

static void
mark(bst_node *n, const char *cid, const char *how, bs_err want)
{
    op o = {.kind = OP_MARK, .cid = cid, .how = how};

    cr_assert_eq(run(n, &o), want);
}

static void
supersede(bst_node *n, const char *field, const bs_pos *seen, size_t nseen)
{
    op o = {.kind = OP_SUPERSEDE,
            .coll = "notes",
            .id = "n1",
            .field = field,
            .seen = seen,
            .nseen = nseen};

    cr_assert_eq(run(n, &o), BS_OK);
}

static bs_pos
pos(const uint8_t *key, uint64_t seq)
{
    bs_pos p;

    memcpy(p.origin, key, BS_PK_LEN);
    memcpy(p.inc, key + BS_PK_LEN, BS_INC_LEN);
    p.seq = seq;
    return p;
}

/* ---- tests ---- */

Test(conflict, id_is_the_same_whichever_candidate_comes_first)
{
    bs_value l = text("left"), r = text("right");
    char x[1][BS_CONFLICT_ID_LEN + 1], y[1][BS_CONFLICT_ID_LEN + 1];

    keys();
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&other, "notes", "n1", "text", BS_POLICY_MANUAL, 1, &l, &r);
    cr_assert_eq(ids(&node, 1, x, 1), 1);
    cr_assert_eq(ids(&other, 1, y, 1), 1);
    cr_assert_str_eq(x[0], y[0], "two nodes name one conflict differently");
    cr_assert_eq(strlen(x[0]), BS_CONFLICT_ID_LEN);
    cr_assert_eq(strspn(x[0], "0123456789abcdef"), BS_CONFLICT_ID_LEN);
}

Test(conflict, id_names_what_conflicted)
{
    bs_value l = text("left"), r = text("right");
    char v[4][BS_CONFLICT_ID_LEN + 1];

    keys();
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "notes", "n1", "title", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "notes", "n2", "text", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "memos", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    cr_assert_eq(ids(&node, 1, v, 4), 4);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            cr_assert_str_neq(v[i], v[j]);
}

Test(conflict, recording_the_same_conflict_twice_is_a_noop)
{
    bs_value l = text("left"), r = text("right"), z = text("other value");
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    uint64_t open, all;

    keys();
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    bst_fingerprint(&node, f0);
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 1, &l, &r);
    /* Same writes (keys and clocks) with other values: the same conflict. */
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &z, &z);
    bst_fingerprint(&node, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the register changed");
    counts(&node, &open, &all);
    cr_assert_eq(open, 1);
    cr_assert_eq(all, 1);
}

Test(conflict, counts_follow_add_mark_resolved_and_supersede)
{
    bs_value l = text("left"), r = text("right");
    char v[3][BS_CONFLICT_ID_LEN + 1];
    bs_pos both[2];
    uint64_t open, all;

    keys();
    counts(&node, &open, &all);
    cr_assert_eq(open, 0);
    cr_assert_eq(all, 0);
    /* manual: open; the other policies: settled automatically */
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "notes", "n1", "title", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "items", "i1", "qty", BS_POLICY_LWW, 0, &l, &r);
    add_ab(&node, "items", "i2", "qty", BS_POLICY_PRIORITY, 0, &l, &r);
    counts(&node, &open, &all);
    cr_assert_eq(open, 2);
    cr_assert_eq(all, 4);
    cr_assert_eq(ids(&node, 0, v, 3), 2);
    mark(&node, v[0], "took head", BS_OK);
    counts(&node, &open, &all);
    cr_assert_eq(open, 1);
    cr_assert_eq(all, 4);
    /* Marking a resolved conflict again does not count it twice. */
    mark(&node, v[0], "took tallinn", BS_OK);
    counts(&node, &open, &all);
    cr_assert_eq(open, 1);
    both[0] = pos(key_a, 3);
    both[1] = pos(key_b, 5);
    supersede(&node, "text", both, 2);
    supersede(&node, "title", both, 2);
    counts(&node, &open, &all);
    cr_assert_eq(open, 0);
    cr_assert_eq(all, 4);
    /* Nothing left open: supersede is a no-op, the count stays at 0. */
    supersede(&node, "title", both, 2);
    counts(&node, &open, &all);
    cr_assert_eq(open, 0);
}

Test(conflict, iterator_gives_open_or_all_in_key_order)
{
    bs_value l = text("left"), r = text("right");
    const char *want[] = {"items/i1/qty", "notes/n1/text", "notes/n1/title",
                          "notes/n2/text"};
    bs_errbuf err = {{0}};
    bs_conflict_iter *it;
    const bs_conflict *c;
    size_t k = 0, nopen = 0;
    bs_txn *t;
    bs_err rv;

    keys();
    add_ab(&node, "notes", "n2", "text", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "notes", "n1", "title", BS_POLICY_LWW, 0, &l, &r);
    add_ab(&node, "items", "i1", "qty", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    bst_ok(bs_store_read(node.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_conflict_iter_open(t, 1, &it), BS_OK);
    while ((rv = bs_conflict_iter_next(it, &c)) == BS_OK) {
        char got[512];
        snprintf(got, sizeof got, "%s/%s/%s", c->coll, c->rid, c->field);
        cr_assert_lt(k, 4);
        cr_assert_str_eq(got, want[k], "entry %zu", k);
        k++;
    }
    cr_assert_eq(rv, BS_ENOTFOUND);
    cr_assert_eq(k, 4);
    bs_conflict_iter_close(it);
    cr_assert_eq(bs_conflict_iter_open(t, 0, &it), BS_OK);
    while ((rv = bs_conflict_iter_next(it, &c)) == BS_OK) {
        cr_assert_not(c->resolved);
        cr_assert_str_neq(c->field, "title", "a settled conflict is listed");
        nopen++;
    }
    cr_assert_eq(nopen, 3);
    bs_conflict_iter_close(it);
    bs_txn_abort(t);
}

Test(conflict, get_by_id_returns_the_conflict_as_recorded)
{
    bs_value l = text("left"), r = text("right");
    char v[1][BS_CONFLICT_ID_LEN + 1];
    bs_conflict c;

    keys();
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, NULL);
    cr_assert_eq(ids(&node, 1, v, 1), 1);
    cr_assert_eq(get(&node, v[0], &c), BS_OK);
    cr_assert_str_eq(c.id, v[0]);
    cr_assert_str_eq(c.coll, "notes");
    cr_assert_str_eq(c.rid, "n1");
    cr_assert_str_eq(c.field, "text");
    cr_assert_eq(c.policy, BS_POLICY_MANUAL);
    cr_assert_eq(memcmp(c.side[0].key, key_a, BS_STREAM_KEY_LEN), 0);
    cr_assert_eq(c.side[0].seq, 3);
    cr_assert_eq(c.side[0].hlc, 1000);
    cr_assert_not(c.side[0].deleted);
    cr_assert_eq(c.side[0].val.type, BS_VTEXT);
    cr_assert_eq(c.side[0].val.len, 4);
    cr_assert_eq(memcmp(c.side[0].val.s, "left", 4), 0);
    cr_assert_eq(memcmp(c.side[1].key, key_b, BS_STREAM_KEY_LEN), 0);
    cr_assert(c.side[1].deleted, "a NULL value is the delete side");
    cr_assert_eq(c.side[1].val.type, BS_VNULL);
    cr_assert_eq(c.winner, 1);
    cr_assert_not(c.resolved);
    cr_assert_str_eq(c.resolution, "");
    cr_assert_eq(c.detected_ms, 1234);
    bs_conflict_fini(&c);
    (void)r;
}

Test(conflict, an_automatic_conflict_is_recorded_resolved)
{
    bs_value l = text("left"), r = text("right");
    char v[1][BS_CONFLICT_ID_LEN + 1];
    bs_conflict c;

    keys();
    add_ab(&node, "items", "i1", "qty", BS_POLICY_LWW, 0, &l, &r);
    cr_assert_eq(ids(&node, 1, v, 1), 1);
    cr_assert_eq(get(&node, v[0], &c), BS_OK);
    cr_assert(c.resolved);
    cr_assert_str_eq(c.resolution, "automatic");
    bs_conflict_fini(&c);
}

Test(conflict, unknown_ids_are_not_found)
{
    bs_value l = text("left"), r = text("right");
    char v[1][BS_CONFLICT_ID_LEN + 1];
    bs_conflict c;

    keys();
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    cr_assert_eq(ids(&node, 1, v, 1), 1);
    cr_assert_eq(get(&node, "0000000000000000", &c), BS_ENOTFOUND);
    cr_assert_eq(get(&node, "", &c), BS_ENOTFOUND);
    v[0][BS_CONFLICT_ID_LEN - 1] = '\0'; /* a prefix of a real ID */
    cr_assert_eq(get(&node, v[0], &c), BS_ENOTFOUND);
    mark(&node, "0000000000000000", "x", BS_ENOTFOUND);
}

Test(conflict, mark_resolved_records_how)
{
    bs_value l = text("left"), r = text("right");
    char v[1][BS_CONFLICT_ID_LEN + 1];
    bs_conflict c;

    keys();
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    cr_assert_eq(ids(&node, 0, v, 1), 1);
    mark(&node, v[0], "took riga", BS_OK);
    cr_assert_eq(get(&node, v[0], &c), BS_OK);
    cr_assert(c.resolved);
    cr_assert_str_eq(c.resolution, "took riga");
    /* The candidates are kept. */
    cr_assert_eq(c.side[1].val.len, 5);
    cr_assert_eq(memcmp(c.side[1].val.s, "right", 5), 0);
    bs_conflict_fini(&c);
    cr_assert_eq(ids(&node, 0, v, 1), 0);
}

Test(conflict, supersede_needs_a_vector_that_covers_both_sides)
{
    bs_value l = text("left"), r = text("right");
    char v[2][BS_CONFLICT_ID_LEN + 1];
    bs_pos p[2];
    uint64_t open;
    bs_conflict c;

    keys();
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "notes", "n1", BS_CONFLICT_RECORD, BS_POLICY_MANUAL, 0, &l,
           NULL);
    /* Only A. */
    p[0] = pos(key_a, 3);
    supersede(&node, "text", p, 1);
    /* A, and B short of the write. */
    p[1] = pos(key_b, 4);
    supersede(&node, "text", p, 2);
    /* Both, but for another field. */
    p[1] = pos(key_b, 5);
    supersede(&node, "title", p, 2);
    /* Nothing: an empty vector. */
    supersede(&node, "text", NULL, 0);
    counts(&node, &open, NULL);
    cr_assert_eq(open, 2, "settled without seeing both sides");
    /* A beyond and B exactly: settles the text conflict only. */
    p[0] = pos(key_a, 9);
    supersede(&node, "text", p, 2);
    counts(&node, &open, NULL);
    cr_assert_eq(open, 1);
    cr_assert_eq(ids(&node, 0, v, 2), 1);
    cr_assert_eq(get(&node, v[0], &c), BS_OK);
    cr_assert_str_eq(c.field, BS_CONFLICT_RECORD);
    bs_conflict_fini(&c);
    cr_assert_eq(ids(&node, 1, v, 2), 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(get(&node, v[i], &c), BS_OK);
        if (strcmp(c.field, "text") == 0) {
            cr_assert(c.resolved);
            cr_assert_str_eq(c.resolution, "superseded by a later edit");
        }
        bs_conflict_fini(&c);
    }
    /* The (record) conflict: the vector settles it too. */
    supersede(&node, BS_CONFLICT_RECORD, p, 2);
    counts(&node, &open, NULL);
    cr_assert_eq(open, 0);
}

Test(conflict, supersede_settles_every_open_conflict_of_the_field)
{
    bs_value l = text("left"), r = text("right");
    bs_cand a = {NULL, 7, 3000, &l}, b = {NULL, 8, 4000, &r};
    op o = {OP_ADD, "notes", "n1", "text", BS_POLICY_MANUAL, a, b, 0,
            NULL,   NULL,    NULL, 0};
    bs_pos p[2];
    uint64_t open;

    keys();
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    o.a.key = key_a; /* a second conflict of the same field */
    o.b.key = key_b;
    cr_assert_eq(run(&node, &o), BS_OK);
    counts(&node, &open, NULL);
    cr_assert_eq(open, 2);
    p[0] = pos(key_a, 7);
    p[1] = pos(key_b, 8);
    supersede(&node, "text", p, 2);
    counts(&node, &open, NULL);
    cr_assert_eq(open, 0);
}

static bs_err
recount_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    (void)arg;
    (void)err;
    return bs_conflict_recount(t);
}

Test(conflict, recount_agrees_with_the_kept_counts)
{
    bs_value l = text("left"), r = text("right");
    char v[2][BS_CONFLICT_ID_LEN + 1];
    uint64_t open, all, open2, all2;
    bs_errbuf err = {{0}};

    keys();
    add_ab(&node, "notes", "n1", "text", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "notes", "n2", "text", BS_POLICY_MANUAL, 0, &l, &r);
    add_ab(&node, "items", "i1", "qty", BS_POLICY_LWW, 0, &l, &r);
    cr_assert_eq(ids(&node, 0, v, 2), 2);
    mark(&node, v[0], "set by admin", BS_OK);
    counts(&node, &open, &all);
    cr_assert_eq(bs_store_write(node.n->store, recount_txn, NULL, &err), BS_OK);
    counts(&node, &open2, &all2);
    cr_assert_eq(open, 1);
    cr_assert_eq(all, 3);
    cr_assert_eq(open2, open);
    cr_assert_eq(all2, all);
}
