/*
 * test_resolution.c - an administrator settles a conflict
 * (replication/resolution.h): taking a node's candidate by name or by ID,
 * giving a value, both ways of a delete/update conflict, the refusals, and
 * the decision replicating as an ordinary write that settles the same
 * conflict at the other node.
 *
 * The conflicts are real: the hub declares `notes` manual, then the hub
 * and tallinn write the same field without having seen each other's
 * write, and exchange files both ways.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/collections.h"
#include "../../replication/resolution.h"

static char root[128];
static bst_clock clk;
static bst_node head, tallinn, riga;

static void
tick(void)
{
    clk.ms += 1000;
}

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
    tick();
}

static void
put(bst_node *t, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, "notes", id, json, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    tick();
}

static void
del(bst_node *t, const char *id)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_del(t, "notes", id, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    tick();
}

static void
setup(void)
{
    bs_collection manual = {.name = "notes",
                            .declared = 1,
                            .policy = BS_POLICY_MANUAL,
                            .set = BS_RULE_POLICY};
    bs_errbuf err = {{0}};
    bs_clock c;

    cr_assert_eq(bs_crypto_init(), BS_OK);
    clk.ms = 1800000000000ull;
    c = bst_clock_of(&clk);
    bst_root(root, sizeof root, "resolution");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &c);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, &c);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &tallinn);
    bst_pair2(&head, &riga);
    cr_assert_eq(bs_collections_declare(&head.core, &manual, NULL, &err), BS_OK,
                 "%s", err.msg);
    tick();
    carry(&head, &tallinn);
    carry(&head, &riga);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_resolution");
}

TestSuite(resolution, .init = setup, .fini = teardown, .timeout = 60);

/* ---- conflicts ---- */

/* The only open conflict at t (its ID into cid), or "" when none. */
static int
open_conflict(bst_node *t, char cid[BS_CONFLICT_ID_LEN + 1])
{
    bs_errbuf err = {{0}};
    bs_conflict_iter *it;
    const bs_conflict *c;
    bs_txn *txn;
    int n = 0;

    cid[0] = '\0';
    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    cr_assert_eq(bs_conflict_iter_open(txn, 0, &it), BS_OK);
    while (bs_conflict_iter_next(it, &c) == BS_OK) {
        memcpy(cid, c->id, BS_CONFLICT_ID_LEN + 1);
        n++;
    }
    bs_conflict_iter_close(it);
    bs_txn_abort(txn);
    return n;
}

static bs_conflict
conflict(bst_node *t, const char *cid)
{
    bs_errbuf err = {{0}};
    bs_conflict c;
    bs_txn *txn;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    cr_assert_eq(bs_conflict_get(txn, cid, &c), BS_OK, "no conflict %s at %s",
                 cid, t->name);
    bs_txn_abort(txn);
    return c;
}

/* The hub and tallinn write notes/<id> without seeing each other's write,
 * then exchange both ways: one open conflict at each, same ID. */
static void
update_update(const char *id, char cid[BS_CONFLICT_ID_LEN + 1])
{
    char other[BS_CONFLICT_ID_LEN + 1];

    put(&head, id, "{\"text\":\"from head\"}");
    put(&tallinn, id, "{\"text\":\"from tallinn\"}");
    carry(&head, &tallinn);
    carry(&tallinn, &head);
    cr_assert_eq(open_conflict(&head, cid), 1);
    cr_assert_eq(open_conflict(&tallinn, other), 1);
    cr_assert_str_eq(cid, other, "the two nodes name the conflict apart");
}

/* The text of notes/<id> at t, or NULL when it is not live. */
static char *
value(bst_node *t, const char *id)
{
    return bst_get(t, "notes", id);
}

static void
value_is(bst_node *t, const char *id, const char *want)
{
    char *got = value(t, id), buf[256];

    snprintf(buf, sizeof buf, "{\"id\":\"%s\",\"text\":\"%s\"}", id, want);
    cr_assert_not_null(got, "%s: notes/%s is gone", t->name, id);
    cr_assert_str_eq(got, buf, "at %s", t->name);
    free(got);
}

static bs_err
take(bst_node *at, const char *cid, const char *who, char *how, bs_errbuf *err)
{
    bs_resolve_req r = {who, NULL};

    return bs_resolution_apply(&at->core, cid, &r, how, err);
}

static void
resolved_as(bst_node *t, const char *cid, const char *how)
{
    bs_conflict c = conflict(t, cid);
    uint64_t open;
    bs_errbuf err = {{0}};
    bs_txn *txn;

    cr_assert(c.resolved, "still open at %s", t->name);
    cr_assert_str_eq(c.resolution, how, "at %s", t->name);
    bs_conflict_fini(&c);
    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    cr_assert_eq(bs_conflict_count(txn, &open, NULL), BS_OK);
    bs_txn_abort(txn);
    cr_assert_eq(open, 0, "at %s", t->name);
}

/* ---- tests ---- */

Test(resolution, both_nodes_record_one_open_conflict_with_both_candidates)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    bs_conflict c;

    update_update("n1", cid);
    c = conflict(&tallinn, cid);
    cr_assert_str_eq(c.coll, "notes");
    cr_assert_str_eq(c.rid, "n1");
    cr_assert_str_eq(c.field, "text");
    cr_assert_eq(c.policy, BS_POLICY_MANUAL);
    cr_assert_not(c.resolved);
    bs_conflict_fini(&c);
}

Test(resolution, taking_a_candidate_by_name_writes_its_value)
{
    char cid[BS_CONFLICT_ID_LEN + 1], how[BS_CONFLICT_HOW_MAX + 1];
    bs_errbuf err = {{0}};

    update_update("n1", cid);
    cr_assert_eq(take(&head, cid, "tallinn", how, &err), BS_OK, "%s", err.msg);
    cr_assert_str_eq(how, "took tallinn");
    value_is(&head, "n1", "from tallinn");
    resolved_as(&head, cid, "took tallinn");
}

Test(resolution, taking_this_nodes_own_candidate_by_its_name)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    bs_errbuf err = {{0}};

    update_update("n1", cid);
    cr_assert_eq(take(&head, cid, "head", NULL, &err), BS_OK, "%s", err.msg);
    value_is(&head, "n1", "from head");
    resolved_as(&head, cid, "took head");
}

Test(resolution, taking_a_candidate_by_node_id)
{
    char cid[BS_CONFLICT_ID_LEN + 1], id[BS_NODE_ID_LEN + 1], how[200];
    bs_errbuf err = {{0}};

    update_update("n1", cid);
    bs_node_id_format(bst_meta(&tallinn).pk, id);
    cr_assert_eq(take(&head, cid, id, NULL, &err), BS_OK, "%s", err.msg);
    value_is(&head, "n1", "from tallinn");
    snprintf(how, sizeof how, "took %s", id);
    resolved_as(&head, cid, how);
}

/*
 * BUG: at a branch, the hub's candidate cannot be taken by the hub's name.
 * resolution.c pick() knows a name only as this node's own or through
 * bs_members_by_name(), and the hub is never in `_members` (pairing.c
 * introduces only the nodes the hub pairs with): `resolve CID --take head`
 * at tallinn fails with BS_EINVAL "head is not one of this conflict's
 * candidates" although the hub wrote one of them (its ID works).  The
 * peer table names the hub ("head"), and bs_members_get() treats the hub as
 * a member by definition.
 */
Test(resolution, at_a_branch_the_hubs_candidate_is_taken_by_the_hubs_name)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    bs_errbuf err = {{0}};

    update_update("n1", cid);
    cr_assert_eq(take(&tallinn, cid, "head", NULL, &err), BS_OK, "%s", err.msg);
    value_is(&tallinn, "n1", "from head");
}

Test(resolution, at_a_branch_the_hubs_candidate_is_taken_by_its_id)
{
    char cid[BS_CONFLICT_ID_LEN + 1], id[BS_NODE_ID_LEN + 1];
    bs_errbuf err = {{0}};

    update_update("n1", cid);
    bs_node_id_format(bst_meta(&head).pk, id);
    cr_assert_eq(take(&tallinn, cid, id, NULL, &err), BS_OK, "%s", err.msg);
    value_is(&tallinn, "n1", "from head");
}

Test(resolution, a_given_value_settles_it)
{
    char cid[BS_CONFLICT_ID_LEN + 1], how[BS_CONFLICT_HOW_MAX + 1];
    bs_value v = {BS_VTEXT, 0, 0, "merged", 6};
    bs_resolve_req r = {NULL, &v};
    bs_errbuf err = {{0}};

    update_update("n1", cid);
    cr_assert_eq(bs_resolution_apply(&head.core, cid, &r, how, &err), BS_OK,
                 "%s", err.msg);
    cr_assert_str_eq(how, "set by admin");
    value_is(&head, "n1", "merged");
    resolved_as(&head, cid, "set by admin");
}

/* Call and check: refused with want and msg, the store unchanged. */
static void
refused(bst_node *at, const char *cid, const char *who, const bs_value *v,
        bs_err want, const char *msg)
{
    bs_resolve_req r = {who, v};
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};

    bst_fingerprint(at, f0);
    cr_assert_eq(bs_resolution_apply(&at->core, cid, &r, NULL, &err), want,
                 "%s", err.msg);
    if (msg != NULL)
        cr_assert_str_eq(err.msg, msg);
    bst_fingerprint(at, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the store changed");
}

Test(resolution, an_unknown_conflict_is_not_found)
{
    char cid[BS_CONFLICT_ID_LEN + 1];

    update_update("n1", cid);
    refused(&head, "0123456789abcdef", "head", NULL, BS_ENOTFOUND,
            "no conflict 0123456789abcdef (see conflicts --all)");
    refused(&head, "zz", "head", NULL, BS_ENOTFOUND,
            "no conflict zz (see conflicts --all)");
}

Test(resolution, a_node_that_wrote_no_candidate_cannot_be_taken)
{
    char cid[BS_CONFLICT_ID_LEN + 1], id[BS_NODE_ID_LEN + 1], msg[200];

    update_update("n1", cid);
    refused(&head, cid, "riga", NULL, BS_EINVAL,
            "riga is not one of this conflict's candidates");
    refused(&head, cid, "nobody", NULL, BS_EINVAL,
            "nobody is not one of this conflict's candidates");
    bs_node_id_format(bst_meta(&riga).pk, id);
    snprintf(msg, sizeof msg, "%s is not one of this conflict's candidates",
             id);
    refused(&head, cid, id, NULL, BS_EINVAL, msg);
}

Test(resolution, exactly_one_of_take_and_value_is_given)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    bs_value v = {BS_VTEXT, 0, 0, "x", 1};

    update_update("n1", cid);
    refused(&head, cid, NULL, NULL, BS_EUSAGE,
            "give exactly one of --take NODE or --value JSON");
    refused(&head, cid, "head", &v, BS_EUSAGE,
            "give exactly one of --take NODE or --value JSON");
}

Test(resolution, the_decision_replicates_and_settles_the_conflict_elsewhere)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    uint8_t d1[BS_HASH_LEN], d2[BS_HASH_LEN];
    bs_errbuf err = {{0}};

    update_update("n1", cid);
    cr_assert_eq(take(&head, cid, "tallinn", NULL, &err), BS_OK, "%s", err.msg);
    tick();
    carry(&head, &tallinn);
    value_is(&tallinn, "n1", "from tallinn");
    resolved_as(&tallinn, cid, "superseded by a later edit");
    bst_digest(&head, d1, NULL);
    bst_digest(&tallinn, d2, NULL);
    cr_assert_eq(memcmp(d1, d2, BS_HASH_LEN), 0);
}

Test(resolution, a_decision_taken_at_a_branch_settles_the_hubs_conflict)
{
    char cid[BS_CONFLICT_ID_LEN + 1], id[BS_NODE_ID_LEN + 1];
    bs_errbuf err = {{0}};

    update_update("n1", cid);
    bs_node_id_format(bst_meta(&head).pk, id);
    cr_assert_eq(take(&tallinn, cid, id, NULL, &err), BS_OK, "%s", err.msg);
    tick();
    carry(&tallinn, &head);
    value_is(&head, "n1", "from head");
    resolved_as(&head, cid, "superseded by a later edit");
}

/* The hub deletes notes/<id> while tallinn updates it; `delete_last`
 * decides whose write is the later one. */
static void
delete_update(const char *id, int delete_last, char cid[BS_CONFLICT_ID_LEN + 1])
{
    char other[BS_CONFLICT_ID_LEN + 1];
    bs_conflict c;

    put(&head, id, "{\"text\":\"base\"}");
    carry(&head, &tallinn);
    if (delete_last) {
        put(&tallinn, id, "{\"text\":\"edited\"}");
        del(&head, id);
    } else {
        del(&head, id);
        put(&tallinn, id, "{\"text\":\"edited\"}");
    }
    carry(&head, &tallinn);
    carry(&tallinn, &head);
    cr_assert_eq(open_conflict(&head, cid), 1);
    cr_assert_eq(open_conflict(&tallinn, other), 1);
    cr_assert_str_eq(cid, other);
    c = conflict(&head, cid);
    cr_assert_str_eq(c.field, BS_CONFLICT_RECORD);
    bs_conflict_fini(&c);
}

Test(resolution, a_delete_update_conflict_taken_for_the_delete)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    bs_errbuf err = {{0}};
    char *v;

    delete_update("n2", 0, cid);
    value_is(&head, "n2", "edited"); /* the later write leads meanwhile */
    cr_assert_eq(take(&head, cid, "head", NULL, &err), BS_OK, "%s", err.msg);
    cr_assert_null(v = value(&head, "n2"));
    resolved_as(&head, cid, "took head");
    carry(&head, &tallinn);
    cr_assert_null(v = value(&tallinn, "n2"), "%s", v);
    resolved_as(&tallinn, cid, "superseded by a later edit");
}

Test(resolution, a_delete_update_conflict_taken_for_the_update)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    bs_errbuf err = {{0}};

    delete_update("n2", 0, cid);
    cr_assert_eq(take(&head, cid, "tallinn", NULL, &err), BS_OK, "%s", err.msg);
    value_is(&head, "n2", "edited");
    resolved_as(&head, cid, "took tallinn");
    carry(&head, &tallinn);
    value_is(&tallinn, "n2", "edited");
    resolved_as(&tallinn, cid, "superseded by a later edit");
}

Test(resolution, a_delete_that_won_cannot_be_undone_by_taking_the_update)
{
    char cid[BS_CONFLICT_ID_LEN + 1];

    delete_update("n2", 1, cid);
    cr_assert_null(value(&head, "n2"));
    refused(&head, cid, "tallinn", NULL, BS_EINVAL,
            "notes/n2: the delete removed the updated fields; write them "
            "again with put");
}

Test(resolution, a_delete_update_conflict_takes_no_value)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    bs_value v = {BS_VTEXT, 0, 0, "x", 1};

    delete_update("n2", 0, cid);
    refused(&head, cid, NULL, &v, BS_EINVAL,
            "a delete/update conflict is settled with --take");
}
