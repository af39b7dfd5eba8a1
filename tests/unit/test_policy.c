/*
 * test_policy.c - the conflict policies end to end, through the core API
 * and exchange files (tests/lib/fixture.h): field-lww, priority (the hub
 * wins a conflict even against a later branch write) and manual (a
 * provisional winner and an open conflict until it is resolved, and the
 * decision replicates and settles the conflict on the other node too).
 *
 * Both nodes read one fake clock, moved by hand where a write must come
 * later than another (docs/design.md, "Policies" and "Deletes").
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../replication/collections.h"
#include "../../replication/resolution.h"
#include "../lib/fixture.h"

static char root[128];
static bst_clock clock_ms = {1767225600000ull, 1}; /* 2026-01-01 */
static bst_node hub, br;

static void
setup(void)
{
    bs_clock c = bst_clock_of(&clock_ms);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "policy");
    bst_node_new(&hub, root, "head", BS_ROLE_HUB, &c);
    bst_node_new(&br, root, "tallinn", BS_ROLE_BRANCH, &c);
    bst_pair2(&hub, &br);
}

static void
teardown(void)
{
    bst_node_free(&hub);
    bst_node_free(&br);
    bst_rmtree(root);
}

TestSuite(policy, .init = setup, .fini = teardown, .timeout = 120);

static void
put(bst_node *t, const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, coll, id, json, &err);

    cr_assert_eq(rv, BS_OK, "put %s/%s at %s: %s", coll, id, t->name,
                 bs_errmsg(&err, rv));
}

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

static void
declare(bst_node *t, const char *coll, bs_policy p, bs_err want)
{
    bs_collection c = {.declared = 1, .policy = p, .set = BS_RULE_POLICY};
    bs_errbuf err = {{0}};
    bs_err rv;

    snprintf(c.name, sizeof c.name, "%s", coll);
    rv = bs_collections_declare(&t->core, &c, NULL, &err);
    cr_assert_eq(rv, want, "declare %s at %s: %s", coll, t->name,
                 bs_errmsg(&err, rv));
}

/* coll/id on t is exactly want (NULL: not live). */
static void
expect(bst_node *t, const char *coll, const char *id, const char *want)
{
    char *got = bst_get(t, coll, id), buf[512];

    snprintf(buf, sizeof buf, "%s", got ? got : "(absent)");
    free(got);
    cr_assert_str_eq(buf, want ? want : "(absent)", "%s/%s on %s", coll, id,
                     t->name);
}

/* Both nodes hold coll/id as want. */
static void
expect_both(const char *coll, const char *id, const char *want)
{
    expect(&hub, coll, id, want);
    expect(&br, coll, id, want);
}

/* The conflict (among all) recorded at t for coll/field, into *c. */
static void
conflict_at(bst_node *t, const char *coll, const char *field, bs_conflict *c)
{
    char cid[BS_CONFLICT_ID_LEN + 1];

    cr_assert_eq(bst_conflicts_of(t, 1, coll, NULL, field, cid), 1,
                 "one conflict of %s/%s recorded at %s", coll, field, t->name);
    bst_conflict(t, cid, c);
}

/* c's two candidates hold the texts or integers a and b, in some order. */
static int
side_is(const bs_conflict_side *s, const bs_value *v)
{
    return !s->deleted && bs_value_eq(&s->val, v);
}

static void
candidates_are(const bs_conflict *c, const bs_value *a, const bs_value *b)
{
    cr_assert((side_is(&c->side[0], a) && side_is(&c->side[1], b)) ||
                  (side_is(&c->side[0], b) && side_is(&c->side[1], a)),
              "%s/%s/%s: the two candidates are not the two writes", c->coll,
              c->rid, c->field);
}

Test(policy, priority_manual_and_lww_end_to_end)
{
    static const bs_value v100 = {BS_VINT, 100, 0, NULL, 0};
    static const bs_value v200 = {BS_VINT, 200, 0, NULL, 0};
    static const bs_value agreed = {BS_VTEXT, 0, 0, "agreed", 6};
    bs_resolve_req value = {NULL, &agreed}, take = {"head", NULL};
    char cid[BS_CONFLICT_ID_LEN + 1], other[BS_CONFLICT_ID_LEN + 1];
    uint8_t dh[BS_HASH_LEN], db[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    bs_conflict c;
    char *a;
    bs_err rv;

    /* Only the hub declares policies (the CLI exits 2 elsewhere). */
    declare(&br, "notes", BS_POLICY_MANUAL, BS_EPERM);
    cr_assert_eq(bs_err_exit_code(BS_EPERM), 2);
    declare(&hub, "prices", BS_POLICY_PRIORITY, BS_OK);
    declare(&hub, "notes", BS_POLICY_MANUAL, BS_OK);
    put(&hub, "prices", "p1", "{\"v\":1}");
    put(&hub, "notes", "n1", "{\"t\":\"first\"}");
    put(&hub, "people", "q1", "{\"city\":\"x\"}");
    carry(&hub, &br); /* the branch joins and gets the policies */

    /* Concurrent edits; the branch writes last every time. */
    put(&hub, "prices", "p1", "{\"v\":100}");
    put(&hub, "notes", "n1", "{\"t\":\"hub\"}");
    put(&hub, "people", "q1", "{\"city\":\"Tallinn\"}");
    clock_ms.ms += 2;
    put(&br, "prices", "p1", "{\"v\":200}");
    put(&br, "notes", "n1", "{\"t\":\"branch\"}");
    put(&br, "people", "q1", "{\"city\":\"Tartu\"}");
    carry(&br, &hub);
    carry(&hub, &br);

    /* priority: the hub's write wins although the branch's is later. */
    expect_both("prices", "p1", "{\"id\":\"p1\",\"v\":100}");
    /* field-lww: the later write wins. */
    expect_both("people", "q1", "{\"id\":\"q1\",\"city\":\"Tartu\"}");
    /* manual: the same provisional winner on both, and an open conflict. */
    a = bst_get(&hub, "notes", "n1");
    cr_assert_not_null(a);
    expect(&br, "notes", "n1", a);
    free(a);

    conflict_at(&hub, "prices", "v", &c);
    cr_assert_eq(c.policy, BS_POLICY_PRIORITY, "priority conflict recorded");
    cr_assert(c.resolved);
    candidates_are(&c, &v100, &v200);
    bs_conflict_fini(&c);
    conflict_at(&hub, "people", "city", &c);
    cr_assert(c.resolved, "field-lww conflict recorded and settled");
    bs_conflict_fini(&c);
    cr_assert_eq(bst_conflicts_of(&hub, 1, "notes", NULL, "t", cid), 1,
                 "manual conflict recorded");
    cr_assert_eq(bst_conflicts_of(&hub, 0, "notes", NULL, "t", NULL), 1,
                 "manual: open");
    bst_conflict(&hub, cid, &c);
    cr_assert_eq(c.policy, BS_POLICY_MANUAL);
    cr_assert_not(c.resolved);
    bs_conflict_fini(&c);
    cr_assert_eq(bst_conflicts_of(&br, 0, "notes", NULL, "t", other), 1,
                 "the branch detects the same conflict");
    cr_assert_str_eq(other, cid, "same conflict ID on both nodes");

    /* Settle it at the hub; the decision replicates and settles it there. */
    rv = bs_resolution_apply(&hub.core, cid, &value, NULL, &err);
    cr_assert_eq(rv, BS_OK, "resolve: %s", bs_errmsg(&err, rv));
    rv = bs_resolution_apply(&hub.core, "nosuchconflict", &take, NULL, &err);
    cr_assert_eq(rv, BS_ENOTFOUND);
    cr_assert_eq(bs_err_exit_code(rv), 1);
    carry(&hub, &br);
    expect(&br, "notes", "n1", "{\"id\":\"n1\",\"t\":\"agreed\"}");
    cr_assert_eq(bst_conflicts_of(&br, 0, "notes", NULL, "t", NULL), 0,
                 "settled on the branch too");
    cr_assert_eq(bst_conflicts_of(&br, 1, "notes", NULL, "t", NULL), 1,
                 "kept among all conflicts");
    bst_digest(&hub, dh, NULL);
    bst_digest(&br, db, NULL);
    cr_assert_eq(memcmp(dh, db, BS_HASH_LEN), 0);
}

Test(policy, delete_against_concurrent_update_is_a_conflict)
{
    bs_errbuf err = {{0}};
    bs_err rv;

    put(&hub, "people", "d1", "{\"name\":\"Ann\",\"city\":\"x\"}");
    carry(&hub, &br);
    rv = bst_del(&hub, "people", "d1", &err);
    cr_assert_eq(rv, BS_OK, "del: %s", bs_errmsg(&err, rv));
    clock_ms.ms += 2;
    put(&br, "people", "d1", "{\"phone\":\"555\"}");
    carry(&br, &hub);
    carry(&hub, &br);
    /* The later update survives with its own fields; older ones are gone. */
    expect_both("people", "d1", "{\"id\":\"d1\",\"phone\":\"555\"}");
    cr_assert_eq(
        bst_conflicts_of(&hub, 1, "people", "d1", BS_CONFLICT_RECORD, NULL), 1);
}
