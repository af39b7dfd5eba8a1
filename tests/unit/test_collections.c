/*
 * test_collections.c - collection rules (replication/collections.h):
 * declared at the hub only, field-lww for a collection nobody declared,
 * policy names, and a declared policy replicating to a branch.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/collections.h"
#include "../../replication/local.h"

static char root[128];
static bst_node head, tallinn;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "collections");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, NULL);
    bst_pair2(&head, &tallinn);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_rmtree(root);
    bst_leak_check("test_collections");
}

TestSuite(collections, .init = setup, .fini = teardown, .timeout = 60);

static bs_err
declare(bst_node *at, const char *name, bs_policy p, bs_errbuf *err)
{
    bs_collection c;

    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.policy = p;
    c.set = BS_RULE_POLICY;
    return bs_collections_declare(&at->core, &c, NULL, err);
}

static void
declare_ok(bst_node *at, const char *name, bs_policy p)
{
    bs_errbuf err = {{0}};
    bs_err rv = declare(at, name, p, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

static bs_collection
rules(bst_node *at, const char *name)
{
    bs_errbuf err = {{0}};
    bs_collection c;
    bs_txn *t;

    bst_ok(bs_store_read(at->n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_collections_get(t, name, &c), BS_OK);
    bs_txn_abort(t);
    return c;
}

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

Test(collections, policy_names_round_trip)
{
    bs_policy p;

    for (int i = BS_POLICY_LWW; i <= BS_POLICY_MANUAL; i++) {
        cr_assert_eq(bs_policy_parse(bs_policy_name((bs_policy)i), &p), BS_OK);
        cr_assert_eq(p, (bs_policy)i);
    }
    cr_assert_str_eq(bs_policy_name(BS_POLICY_LWW), "field-lww");
    cr_assert_str_eq(bs_policy_name(BS_POLICY_PRIORITY), "priority");
    cr_assert_str_eq(bs_policy_name(BS_POLICY_MANUAL), "manual");
    cr_assert_str_eq(bs_policy_name((bs_policy)7), "?");
}

Test(collections, policy_parse_refuses_other_words)
{
    const char *bad[] = {"", "lww", "Manual", "manual ", "field-lww\n", "?"};
    bs_policy p = BS_POLICY_PRIORITY;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(bs_policy_parse(bad[i], &p), BS_EINVAL, "\"%s\"", bad[i]);
        cr_assert_eq(p, BS_POLICY_PRIORITY, "*p written on error");
    }
}

Test(collections, an_undeclared_collection_is_field_lww)
{
    bs_collection c = rules(&head, "orders");

    cr_assert_str_eq(c.name, "orders");
    cr_assert_not(c.declared);
    cr_assert_eq(c.policy, BS_POLICY_LWW);
}

Test(collections, the_hub_declares_rules)
{
    bs_collection c;

    declare_ok(&head, "notes", BS_POLICY_MANUAL);
    c = rules(&head, "notes");
    cr_assert(c.declared);
    cr_assert_eq(c.policy, BS_POLICY_MANUAL);
    declare_ok(&head, "notes", BS_POLICY_PRIORITY); /* changed later */
    c = rules(&head, "notes");
    cr_assert_eq(c.policy, BS_POLICY_PRIORITY);
    cr_assert_not(rules(&head, "note").declared, "a prefix is declared");
}

Test(collections, a_branch_cannot_declare)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};

    bst_fingerprint(&tallinn, f0);
    cr_assert_eq(declare(&tallinn, "notes", BS_POLICY_MANUAL, &err), BS_EPERM);
    cr_assert_str_eq(err.msg, "only the hub declares collections");
    bst_fingerprint(&tallinn, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the branch wrote");
}

Test(collections, bad_names_and_policies_are_refused)
{
    const char *bad[] = {"", "_members", "_collections", "a b", ".x"};
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};

    bst_fingerprint(&head, f0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(declare(&head, bad[i], BS_POLICY_MANUAL, &err), BS_EINVAL,
                     "\"%s\"", bad[i]);
    cr_assert_eq(declare(&head, "notes", (bs_policy)3, &err), BS_EINVAL);
    cr_assert_str_eq(err.msg, "bad policy");
    bst_fingerprint(&head, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0);
}

Test(collections, list_gives_declared_collections_in_name_order)
{
    bs_errbuf err = {{0}};
    bs_collection *v;
    size_t n;
    bs_txn *t;

    declare_ok(&head, "notes", BS_POLICY_MANUAL);
    declare_ok(&head, "customers", BS_POLICY_PRIORITY);
    declare_ok(&head, "items", BS_POLICY_LWW);
    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_collections_list(t, &v, &n), BS_OK);
    bs_txn_abort(t);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[0].name, "customers");
    cr_assert_eq(v[0].policy, BS_POLICY_PRIORITY);
    cr_assert_str_eq(v[1].name, "items");
    cr_assert_eq(v[1].policy, BS_POLICY_LWW);
    cr_assert_str_eq(v[2].name, "notes");
    cr_assert_eq(v[2].policy, BS_POLICY_MANUAL);
    for (size_t i = 0; i < n; i++)
        cr_assert(v[i].declared);
    free(v);
}

Test(collections, a_declared_policy_replicates_to_a_branch)
{
    declare_ok(&head, "notes", BS_POLICY_MANUAL);
    carry(&head, &tallinn);
    cr_assert(rules(&tallinn, "notes").declared);
    cr_assert_eq(rules(&tallinn, "notes").policy, BS_POLICY_MANUAL);
    declare_ok(&head, "notes", BS_POLICY_PRIORITY);
    carry(&head, &tallinn);
    cr_assert_eq(rules(&tallinn, "notes").policy, BS_POLICY_PRIORITY);
    cr_assert_not(rules(&tallinn, "orders").declared);
}

/* A `_collections` record whose policy is no policy name (written the way
 * only a hub can, by a local write of the system collection). */
static bs_err
odd_policy_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_field f;
    bs_local l;
    bs_err rv;

    memset(&f, 0, sizeof f);
    f.name = "policy";
    f.val.type = BS_VTEXT;
    f.val.s = arg;
    f.val.len = (uint32_t)strlen(arg);
    if ((rv = bs_local_begin(&l, t, &head.core, err)) == BS_OK &&
        (rv = bs_local_put(&l, BS_SYS_COLLECTIONS, "notes", &f, 1, err)) ==
            BS_OK)
        rv = bs_local_finish(&l, err);
    bs_local_fini(&l);
    return rv;
}

Test(collections, an_unknown_policy_text_reads_as_field_lww)
{
    bs_errbuf err = {{0}};
    bs_collection c;

    cr_assert_eq(
        bs_store_write(head.n->store, odd_policy_txn, "last-wins", &err), BS_OK,
        "%s", err.msg);
    c = rules(&head, "notes");
    cr_assert(c.declared);
    cr_assert_eq(c.policy, BS_POLICY_LWW);
}
