/*
 * test_access_files.c - adversarial exchange files for the access rules
 * (issue 9 item 1, "Tests and figures"): for each write the rules forbid,
 * the file a branch that signs it anyway would send.  The branch is
 * honest-looking and signs correctly; only its own rule check is
 * bypassed (its rule table wiped, or the core's local write API called
 * directly for a system collection), and its set's signed `seen` vector
 * shows it had the hub's rules.  Imported at the hub the file is refused
 * whole: BS_EPERM (exit 2), the store byte for byte as it was.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/access.h"
#include "../../replication/collections.h"
#include "../../replication/local.h"

#define T0 1800000000000ull

static char root[128];
static bst_clock ch = {T0, 1}, ca = {T0, 1}, cb = {T0, 1};
static bst_node head, tallinn, riga;

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

static void
settle(void)
{
    for (int i = 0; i < 2; i++) {
        carry(&tallinn, &head);
        carry(&riga, &head);
        carry(&head, &tallinn);
        carry(&head, &riga);
    }
}

static void
declare(const char *coll, int writers, const char *owner_field)
{
    bs_collection r;
    bs_errbuf err = {{0}};
    bs_err rv;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", coll);
    r.writers = writers;
    r.set = BS_RULE_WRITERS;
    if (owner_field != NULL) {
        snprintf(r.owner_field, sizeof r.owner_field, "%s", owner_field);
        r.set |= BS_RULE_OWNER_FIELD;
    }
    rv = bs_collections_declare(&head.core, &r, NULL, &err);
    cr_assert_eq(rv, BS_OK, "declare: %s", bs_errmsg(&err, rv));
}

static void
put_ok(bst_node *t, const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, coll, id, json, &err);

    cr_assert_eq(rv, BS_OK, "%s: %s/%s: %s", t->name, coll, id,
                 bs_errmsg(&err, rv));
}

/* The head office's rules: prices hub-only, orders owned through their
 * `office` field; tallinn owns orders/o1; every office has it all. */
static void
setup(void)
{
    bs_clock a = bst_clock_of(&ch), b = bst_clock_of(&ca),
             c = bst_clock_of(&cb);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch.ms = ca.ms = cb.ms = T0;
    bst_root(root, sizeof root, "access_files");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, &b);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &tallinn);
    bst_pair2(&head, &riga);
    settle();
    declare("prices", BS_WRITERS_HUB, NULL);
    declare("orders", BS_WRITERS_OWNER, "office");
    settle();
    put_ok(&tallinn, "orders", "o1", "{\"office\":\"tallinn\",\"sum\":1}");
    put_ok(&head, "prices", "p1", "{\"eur\":1}");
    settle();
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_access_files");
}

TestSuite(access_files, .init = setup, .fini = teardown, .timeout = 120);

static bs_err
forget_rules(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    (void)arg;
    (void)err;
    if ((rv = bs_cursor_open(t, BS_DB_META, &c)) != BS_OK)
        return rv;
    while ((rv = bs_cursor_seek(c, bs_str("rule:"), &k, &v)) == BS_OK &&
           k.n > 5 && memcmp(k.p, "rule:", 5) == 0)
        if ((rv = bs_cursor_del(c)) != BS_OK)
            break;
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* The branch's own check stops knowing the rules; it still signs, and its
 * `seen` vector still shows every hub change it applied. */
static void
bypass_rules(bst_node *t)
{
    bs_errbuf err = {{0}};
    bs_err rv = bs_store_write(t->core.store, forget_rules, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

/* A file from `from` carrying its forbidden set is refused at `to`:
 * BS_EPERM (exit 2) naming `mention`, and to's store (every table, and
 * the data file's bytes) exactly as it was. */
static void
refused_whole(bst_node *from, bst_node *to, const char *mention)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    char file[300], data[300];
    uint8_t *d0, *d1;
    size_t n0, n1;
    bs_errbuf err = {{0}};
    bs_err rv;

    snprintf(file, sizeof file, "%s/%s-to-%s.bsx", root, from->name, to->name);
    snprintf(data, sizeof data, "%s/store/data.mdb", to->dir);
    rv = bst_export(from, to->name, file, &err);
    cr_assert_eq(rv, BS_OK, "export: %s", bs_errmsg(&err, rv));
    bst_fingerprint(to, f0);
    d0 = bst_read_file(data, &n0);
    rv = bst_import(to, file, NULL, &err);
    cr_assert_eq(rv, BS_EPERM, "import at %s: %s", to->name,
                 bs_errmsg(&err, rv));
    cr_assert_eq(bs_err_exit_code(rv), 2);
    cr_assert(strstr(err.msg, mention) != NULL, "\"%s\" not named in: %s",
              mention, err.msg);
    bst_fingerprint(to, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the refused file wrote");
    d1 = bst_read_file(data, &n1);
    cr_assert(n0 == n1 && memcmp(d0, d1, n0) == 0,
              "the data file changed (%zu -> %zu bytes)", n0, n1);
    free(d0);
    free(d1);
}

static void
absent(bst_node *t, const char *coll, const char *id)
{
    char *s = bst_get(t, coll, id);

    cr_assert_null(s, "%s has %s/%s: %s", t->name, coll, id, s ? s : "");
}

static void
present(bst_node *t, const char *coll, const char *id, const char *has)
{
    char *s = bst_get(t, coll, id);

    cr_assert(s != NULL && strstr(s, has) != NULL, "%s: %s/%s is %s", t->name,
              coll, id, s ? s : "(none)");
    free(s);
}

/* The branch had the rule and writes the hub-only collection anyway. */
Test(access_files, a_write_to_a_hub_only_collection)
{
    bypass_rules(&tallinn);
    put_ok(&tallinn, "prices", "p1", "{\"eur\":0}");
    put_ok(&tallinn, "prices", "p2", "{\"eur\":2}");
    refused_whole(&tallinn, &head, "only the hub writes prices (writers hub)");
    present(&head, "prices", "p1", "\"eur\":1");
    absent(&head, "prices", "p2");
}

/* riga takes over tallinn's order by rewriting its owner field. */
Test(access_files, a_take_over_of_a_record_another_branch_owns)
{
    bypass_rules(&riga);
    put_ok(&riga, "orders", "o1", "{\"office\":\"riga\",\"sum\":7}");
    refused_whole(&riga, &head, "orders/o1 belongs to tallinn (office)");
    present(&head, "orders", "o1", "\"office\":\"tallinn\"");
}

/* riga edits tallinn's order without touching the owner field. */
Test(access_files, an_edit_of_a_record_another_branch_owns)
{
    bypass_rules(&riga);
    put_ok(&riga, "orders", "o1", "{\"sum\":8}");
    refused_whole(&riga, &head, "orders/o1 belongs to tallinn (office)");
    present(&head, "orders", "o1", "\"sum\":1");
}

/* riga deletes tallinn's order. */
Test(access_files, a_delete_of_a_record_another_branch_owns)
{
    bs_errbuf err = {{0}};
    bs_err rv;

    bypass_rules(&riga);
    rv = bst_del(&riga, "orders", "o1", &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    absent(&riga, "orders", "o1");
    refused_whole(&riga, &head, "orders/o1 belongs to tallinn (office)");
    present(&head, "orders", "o1", "\"office\":\"tallinn\"");
}

/* A system collection through the core's write API, which the CLI and
 * bs_records_write never reach for a branch: riga relaxes prices. */
static bs_err
write_system(bs_txn *t, void *arg, bs_errbuf *err)
{
    bst_node *b = arg;
    bs_field f[1];
    bs_local l;
    bs_err rv;

    memset(f, 0, sizeof f);
    f[0].name = "writers";
    f[0].val.type = BS_VTEXT;
    f[0].val.s = "all";
    f[0].val.len = 3;
    if ((rv = bs_local_begin(&l, t, &b->core, err)) != BS_OK)
        return rv;
    if ((rv = bs_local_put(&l, BS_SYS_COLLECTIONS, "prices", f, 1, err)) ==
        BS_OK)
        rv = bs_local_finish(&l, err);
    bs_local_fini(&l);
    return rv;
}

Test(access_files, a_write_to_a_system_collection)
{
    bs_errbuf err = {{0}};
    bs_err rv = bs_store_write(riga.core.store, write_system, &riga, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    present(&riga, BS_SYS_COLLECTIONS, "prices", "\"writers\":\"all\"");
    refused_whole(&riga, &head, "only the hub writes _collections");
    present(&head, BS_SYS_COLLECTIONS, "prices", "\"writers\":\"hub\"");
}

/*
 * A branch relays to another branch the hub's set that brings a rule,
 * then its own set that breaks it (having seen the rule).  A dry pass 1
 * could not refuse the set whole (the rule arrives in the same file,
 * protocol A11r (e)); applying refused it, so the import used to fail "in
 * pass 2": "0 of 8 change sets were committed before the failure
 * (importing the file again finishes the job)", which it never would, and
 * an exchange-log entry.  The file fits one transaction, so it is admitted
 * and applied in one pass (F11): refused as a whole, nothing written,
 * nothing counted.
 */
Test(access_files, a_relayed_rule_and_its_breach_are_refused_as_one_file)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    char file[300];
    bs_xstats st;
    bs_err rv;

    bst_pair2(&tallinn, &riga);
    declare("catalog", BS_WRITERS_HUB, NULL);
    carry(&head, &tallinn); /* tallinn has the rule, riga not yet */
    bypass_rules(&tallinn);
    put_ok(&tallinn, "catalog", "c1", "{\"v\":1}");
    snprintf(file, sizeof file, "%s/relay.bsx", root);
    rv = bst_export(&tallinn, "riga", file, &err);
    cr_assert_eq(rv, BS_OK, "export: %s", bs_errmsg(&err, rv));
    bst_fingerprint(&riga, f0);
    rv = bst_import(&riga, file, &st, &err);
    cr_assert_eq(rv, BS_EPERM, "import: %s", bs_errmsg(&err, rv));
    cr_assert(strstr(err.msg, "only the hub writes catalog") != NULL, "%s",
              err.msg);
    cr_assert(st.offered == 0 && st.peer[0] == '\0' && st.sets == 0,
              "counted as a failure after applying (offered %llu, peer '%s')",
              (unsigned long long)st.offered, st.peer);
    bst_fingerprint(&riga, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the refused file wrote");
    absent(&riga, "catalog", "c1");
}

/* Control: the same files from an office the rules allow apply. */
Test(access_files, the_owner_s_own_edit_applies)
{
    put_ok(&tallinn, "orders", "o1", "{\"sum\":9}");
    carry(&tallinn, &head);
    present(&head, "orders", "o1", "\"sum\":9");
}
