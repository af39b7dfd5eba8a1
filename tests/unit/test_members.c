/*
 * test_members.c - membership (replication/members.h): who is a member,
 * introduction and revocation at the hub only, the revocation bound of
 * bs_member_allows, look-up by name, the list, and what a hub change
 * teaches about a member (bs_members_learn).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/members.h"

static char root[128];
static bst_node head, tallinn, riga;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "members");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, NULL);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, NULL);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_members");
}

TestSuite(members, .init = setup, .fini = teardown, .timeout = 60);

/* ---- introduce / revoke inside a local write ---- */

typedef struct mop {
    const uint8_t *sk, *pk;
    const char *name;
    int revoke;
} mop;

static bs_err
mop_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    mop *o = arg;
    bs_core c = {.sk = o->sk, .clock = bs_clock_system};
    bs_local l;
    bs_err rv;

    if ((rv = bs_local_begin(&l, t, &c, err)) == BS_OK) {
        rv = o->revoke ? bs_members_revoke(&l, o->pk, err)
                       : bs_members_introduce(&l, o->pk, o->name,
                                              BS_ROLE_BRANCH, NULL, err);
        if (rv == BS_OK)
            rv = bs_local_finish(&l, err);
    }
    bs_local_fini(&l);
    return rv;
}

/* Introduce (or revoke) `who` at node `at`. */
static bs_err
change(bst_node *at, bst_node *who, int revoke, bs_errbuf *err)
{
    mop o = {at->core.sk, bst_meta(who).pk, who->name, revoke};

    return bs_store_write(at->n->store, mop_txn, &o, err);
}

static void
change_ok(bst_node *at, bst_node *who, int revoke)
{
    bs_errbuf err = {{0}};
    bs_err rv = change(at, who, revoke, &err);

    cr_assert_eq(rv, BS_OK, "%s: %s", at->name, bs_errmsg(&err, rv));
}

static bs_err
get(bst_node *at, const uint8_t *pk, bs_member *m)
{
    bs_errbuf err = {{0}};
    bs_meta self = bst_meta(at);
    bs_txn *t;
    bs_err rv;

    bst_ok(bs_store_read(at->n->store, &t, &err), &err, "read");
    rv = bs_members_get(t, &self, pk, m);
    bs_txn_abort(t);
    return rv;
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
put(bst_node *t, const char *id)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, "orders", id, "{\"qty\":1}", &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

static void
inc_hex(bst_node *t, char out[2 * BS_INC_LEN + 1])
{
    bs_meta m = bst_meta(t);

    bs_hex(out, m.inc, BS_INC_LEN);
}

/* ---- tests ---- */

Test(members, the_hub_introduces_a_member)
{
    bs_meta tm = bst_meta(&tallinn);
    bs_member m;

    cr_assert_eq(get(&head, tm.pk, &m), BS_ENOTFOUND);
    cr_assert_not(m.revoked);
    change_ok(&head, &tallinn, 0);
    cr_assert_eq(get(&head, tm.pk, &m), BS_OK);
    cr_assert_str_eq(m.name, "tallinn");
    cr_assert_eq(m.role, BS_ROLE_BRANCH);
    cr_assert_not(m.revoked);
    cr_assert_eq(memcmp(m.pk, tm.pk, BS_PK_LEN), 0);
}

Test(members, a_branch_neither_introduces_nor_revokes)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};

    bst_fingerprint(&tallinn, f0);
    cr_assert_eq(change(&tallinn, &riga, 0, &err), BS_EPERM);
    cr_assert_str_eq(err.msg, "only the hub changes membership");
    memset(&err, 0, sizeof err);
    cr_assert_eq(change(&tallinn, &riga, 1, &err), BS_EPERM);
    cr_assert_str_eq(err.msg, "only the hub changes membership");
    bst_fingerprint(&tallinn, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the branch wrote");
}

Test(members, revocation_keeps_valid_what_the_hub_held)
{
    bs_meta rm = bst_meta(&riga);
    char inc[2 * BS_INC_LEN + 1], want[64];
    bs_member m;

    bst_pair2(&head, &riga); /* introduces riga */
    carry(&head, &riga);
    put(&riga, "r1");
    put(&riga, "r2");
    carry(&riga, &head); /* the hub holds riga up to seq 2 */
    change_ok(&head, &riga, 1);
    cr_assert_eq(get(&head, rm.pk, &m), BS_ENOTFOUND);
    cr_assert(m.revoked);
    inc_hex(&riga, inc);
    snprintf(want, sizeof want, "%s:2", inc);
    cr_assert_str_eq(m.revoked_at, want);
    cr_assert_str_eq(m.name, "riga", "revocation keeps the name");
    cr_assert(bs_member_allows(&m, rm.inc, 1));
    cr_assert(bs_member_allows(&m, rm.inc, 2));
    cr_assert_not(bs_member_allows(&m, rm.inc, 3));
}

Test(members, revoking_a_node_whose_stream_the_hub_never_held_keeps_nothing)
{
    bs_meta tm = bst_meta(&tallinn);
    bs_member m;

    change_ok(&head, &tallinn, 0);
    change_ok(&head, &tallinn, 1);
    cr_assert_eq(get(&head, tm.pk, &m), BS_ENOTFOUND);
    cr_assert(m.revoked);
    cr_assert_str_eq(m.revoked_at, "");
    cr_assert_not(bs_member_allows(&m, tm.inc, 1));
}

Test(members, reintroducing_a_revoked_node_makes_it_a_member_again)
{
    bs_meta tm = bst_meta(&tallinn);
    bs_member m;

    change_ok(&head, &tallinn, 0);
    change_ok(&head, &tallinn, 1);
    change_ok(&head, &tallinn, 0);
    cr_assert_eq(get(&head, tm.pk, &m), BS_OK);
    cr_assert_not(m.revoked);
}

/* A revoked member with bound `at` (built by hand). */
static bs_member
revoked_with(const char *at)
{
    bs_member m;

    memset(&m, 0, sizeof m);
    m.revoked = 1;
    snprintf(m.revoked_at, sizeof m.revoked_at, "%s", at);
    return m;
}

Test(members, member_allows_only_within_the_listed_bound)
{
    uint8_t i1[BS_INC_LEN], i2[BS_INC_LEN], i3[BS_INC_LEN];
    char h1[2 * BS_INC_LEN + 1], h2[2 * BS_INC_LEN + 1], at[200];
    bs_member m;

    memset(i1, 0xa1, sizeof i1);
    memset(i2, 0x02, sizeof i2);
    memset(i3, 0x33, sizeof i3);
    bs_hex(h1, i1, BS_INC_LEN);
    bs_hex(h2, i2, BS_INC_LEN);
    snprintf(at, sizeof at, "%s:5,%s:7", h1, h2);
    m = revoked_with(at);
    cr_assert(bs_member_allows(&m, i1, 1));
    cr_assert(bs_member_allows(&m, i1, 5));
    cr_assert_not(bs_member_allows(&m, i1, 6));
    cr_assert(bs_member_allows(&m, i2, 7));
    cr_assert_not(bs_member_allows(&m, i2, 8));
    cr_assert_not(bs_member_allows(&m, i3, 1), "an unlisted incarnation");
    /* A member never revoked: the question does not arise. */
    m.revoked = 0;
    cr_assert_not(bs_member_allows(&m, i1, 1));
}

Test(members, member_allows_nothing_for_a_bound_in_another_form)
{
    uint8_t i1[BS_INC_LEN];
    char h1[2 * BS_INC_LEN + 1], at[200];
    bs_member m;

    memset(i1, 0xab, sizeof i1);
    bs_hex(h1, i1, BS_INC_LEN);
    m = revoked_with("");
    cr_assert_not(bs_member_allows(&m, i1, 1), "empty bound");
    m = revoked_with(h1);
    cr_assert_not(bs_member_allows(&m, i1, 1), "no seq");
    for (char *p = h1; *p; p++) /* upper-case hex is another incarnation */
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    snprintf(at, sizeof at, "%s:9", h1);
    m = revoked_with(at);
    cr_assert_not(bs_member_allows(&m, i1, 1), "upper-case incarnation");
}

Test(members, the_hub_and_the_node_itself_are_members_by_definition)
{
    bs_meta hm = bst_meta(&head), tm = bst_meta(&tallinn);
    bs_member m;

    bst_pair2(&head, &tallinn);
    carry(&head, &tallinn); /* tallinn joins: head is its hub */
    cr_assert_eq(get(&tallinn, hm.pk, &m), BS_OK);
    cr_assert_eq(m.role, BS_ROLE_HUB);
    cr_assert_eq(get(&tallinn, tm.pk, &m), BS_OK);
    cr_assert_str_eq(m.name, "tallinn");
    cr_assert_eq(get(&head, hm.pk, &m), BS_OK);
    /* Even a record revoking the hub does not make it a stranger. */
    change_ok(&head, &head, 1);
    carry(&head, &tallinn);
    cr_assert_eq(get(&tallinn, hm.pk, &m), BS_OK);
    cr_assert_not(m.revoked);
    cr_assert_eq(get(&head, hm.pk, &m), BS_OK);
}

Test(members, a_stranger_is_not_a_member)
{
    uint8_t pk[BS_PK_LEN];
    bs_member m;

    memset(pk, 0x5a, sizeof pk);
    cr_assert_eq(get(&head, pk, &m), BS_ENOTFOUND);
    cr_assert_not(m.revoked);
    cr_assert_not(bs_member_allows(&m, pk, 1));
}

Test(members, membership_replicates_to_the_branches)
{
    bs_meta rm = bst_meta(&riga);
    bs_member m;

    bst_pair2(&head, &tallinn);
    bst_pair2(&head, &riga);
    carry(&head, &tallinn);
    cr_assert_eq(get(&tallinn, rm.pk, &m), BS_OK);
    cr_assert_str_eq(m.name, "riga");
    change_ok(&head, &riga, 1);
    carry(&head, &tallinn);
    cr_assert_eq(get(&tallinn, rm.pk, &m), BS_ENOTFOUND);
    cr_assert(m.revoked);
}

static bs_err
by_name(bst_node *at, const char *name, uint8_t pk[BS_PK_LEN])
{
    bs_errbuf err = {{0}};
    bs_txn *t;
    bs_err rv;

    bst_ok(bs_store_read(at->n->store, &t, &err), &err, "read");
    rv = bs_members_by_name(t, name, pk);
    bs_txn_abort(t);
    return rv;
}

Test(members, by_name_finds_members_revoked_or_not)
{
    bs_meta tm = bst_meta(&tallinn), rm = bst_meta(&riga);
    uint8_t pk[BS_PK_LEN];

    change_ok(&head, &tallinn, 0);
    change_ok(&head, &riga, 0);
    cr_assert_eq(by_name(&head, "riga", pk), BS_OK);
    cr_assert_eq(memcmp(pk, rm.pk, BS_PK_LEN), 0);
    cr_assert_eq(by_name(&head, "tallinn", pk), BS_OK);
    cr_assert_eq(memcmp(pk, tm.pk, BS_PK_LEN), 0);
    cr_assert_eq(by_name(&head, "tartu", pk), BS_ENOTFOUND);
    cr_assert_eq(by_name(&head, "", pk), BS_ENOTFOUND);
    /* A revoked member keeps its name (its earlier writes are its). */
    change_ok(&head, &riga, 1);
    cr_assert_eq(by_name(&head, "riga", pk), BS_OK);
    cr_assert_eq(memcmp(pk, rm.pk, BS_PK_LEN), 0);
}

Test(members, list_gives_every_member_record_in_id_order)
{
    bs_errbuf err = {{0}};
    bs_member *v;
    size_t n;
    bs_txn *t;

    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_members_list(t, &v, &n), BS_OK);
    cr_assert_eq(n, 0);
    free(v);
    bs_txn_abort(t);
    change_ok(&head, &tallinn, 0);
    change_ok(&head, &riga, 0);
    change_ok(&head, &riga, 1);
    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_members_list(t, &v, &n), BS_OK);
    bs_txn_abort(t);
    cr_assert_eq(n, 2);
    {
        char a[BS_NODE_ID_LEN + 1], b[BS_NODE_ID_LEN + 1];
        bs_node_id_format(v[0].pk, a);
        bs_node_id_format(v[1].pk, b);
        cr_assert_lt(strcmp(a, b), 0, "not in ID order");
    }
    for (size_t i = 0; i < n; i++) {
        int is_riga = strcmp(v[i].name, "riga") == 0;
        cr_assert(is_riga || strcmp(v[i].name, "tallinn") == 0);
        cr_assert_eq(v[i].revoked, is_riga);
    }
    free(v);
}

/* ---- learning from a hub change ---- */

static bs_field
tfield(const char *name, const char *val)
{
    bs_field f;

    memset(&f, 0, sizeof f);
    f.name = name;
    f.namelen = (uint16_t)strlen(name);
    f.val.type = BS_VTEXT;
    f.val.s = val;
    f.val.len = (uint32_t)strlen(val);
    return f;
}

static bs_field
bfield(const char *name, int v)
{
    bs_field f;

    memset(&f, 0, sizeof f);
    f.name = name;
    f.namelen = (uint16_t)strlen(name);
    f.val.type = v ? BS_VTRUE : BS_VFALSE;
    return f;
}

static bs_change
member_change(const char *id, const bs_field *f, size_t n, int deleted)
{
    bs_change c;

    memset(&c, 0, sizeof c);
    c.seq = 1;
    c.coll = BS_SYS_MEMBERS;
    c.id = id;
    c.fields = f;
    c.nfields = n;
    c.deleted = deleted;
    return c;
}

Test(members, learn_merges_what_a_hub_change_says)
{
    bs_meta tm = bst_meta(&tallinn);
    char id[BS_NODE_ID_LEN + 1], at[64];
    uint8_t pk[BS_PK_LEN];
    bs_field f[3];
    bs_change c;
    bs_member m;

    bs_node_id_format(tm.pk, id);
    memset(&m, 0, sizeof m);
    f[0] = tfield("name", "tallinn");
    f[1] = bfield("revoked", 0);
    f[2] = tfield("role", "branch");
    c = member_change(id, f, 3, 0);
    cr_assert_eq(bs_members_learn(&m, &c, pk), BS_OK);
    cr_assert_eq(memcmp(pk, tm.pk, BS_PK_LEN), 0);
    cr_assert_eq(memcmp(m.pk, tm.pk, BS_PK_LEN), 0);
    cr_assert_str_eq(m.name, "tallinn");
    cr_assert_not(m.revoked);
    /* A revocation: the fields it carries; the name stays. */
    bs_hex(at, tm.inc, BS_INC_LEN);
    strcat(at, ":4");
    f[0] = bfield("revoked", 1);
    f[1] = tfield("revoked_at", at);
    c = member_change(id, f, 2, 0);
    cr_assert_eq(bs_members_learn(&m, &c, pk), BS_OK);
    cr_assert(m.revoked);
    cr_assert_str_eq(m.revoked_at, at);
    cr_assert_str_eq(m.name, "tallinn");
    cr_assert(bs_member_allows(&m, tm.inc, 4));
    /* An upsert without "revoked" counts as a member again (protocol.md
     * 4.3, "ref"). */
    f[0] = tfield("name", "tallinn2");
    c = member_change(id, f, 1, 0);
    cr_assert_eq(bs_members_learn(&m, &c, pk), BS_OK);
    cr_assert_not(m.revoked);
    cr_assert_str_eq(m.name, "tallinn2");
    /* A delete revokes. */
    c = member_change(id, NULL, 0, 1);
    cr_assert_eq(bs_members_learn(&m, &c, pk), BS_OK);
    cr_assert(m.revoked);
}

Test(members, learn_ignores_an_id_that_is_not_a_node_id)
{
    bs_field f = bfield("revoked", 1);
    bs_change c = member_change("not-a-node", &f, 1, 0);
    uint8_t pk[BS_PK_LEN];
    bs_member m, before;

    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "kept");
    before = m;
    cr_assert_eq(bs_members_learn(&m, &c, pk), BS_EINVAL);
    cr_assert_eq(memcmp(&m, &before, sizeof m), 0, "something was learnt");
}

Test(members, learn_ignores_an_overlong_bound_and_name)
{
    bs_meta tm = bst_meta(&tallinn);
    char id[BS_NODE_ID_LEN + 1], *big = malloc(BS_REVOKED_AT_MAX + 2);
    uint8_t pk[BS_PK_LEN];
    bs_field f[2];
    bs_change c;
    bs_member m;

    cr_assert_not_null(big);
    memset(big, 'a', BS_REVOKED_AT_MAX + 1);
    big[BS_REVOKED_AT_MAX + 1] = '\0';
    bs_node_id_format(tm.pk, id);
    memset(&m, 0, sizeof m);
    snprintf(m.revoked_at, sizeof m.revoked_at, "old");
    f[0] = tfield("name", big); /* over BS_NODE_NAME_MAX too */
    f[1] = tfield("revoked_at", big);
    c = member_change(id, f, 2, 0);
    cr_assert_eq(bs_members_learn(&m, &c, pk), BS_OK);
    cr_assert_str_eq(m.revoked_at, "old");
    cr_assert_str_eq(m.name, "");
    free(big);
}
