/*
 * test_access.c - access rules (replication/access.h, rules.h, rebuild.h;
 * issue 9 items 1 and 5): the version of a collection's rules that governs
 * a change is the latest stamped before it; a forbidden change is refused
 * up front where it is written, refused with its whole set where its
 * origin could have known, and otherwise refused by rule with the set
 * applied; a new version rebuilds what it governs, so every node ends with
 * the same data whatever the order of arrival.  A head office and two
 * branches with injected clocks, exchanging by file.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/access.h"
#include "../../replication/collections.h"
#include "../../replication/conflict.h"
#include "../../replication/purge.h"
#include "../../replication/rebuild.h"
#include "../../replication/records.h"
#include "../../replication/rules.h"

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

/* Everyone hears from everyone, through the hub, twice over. */
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
setup(void)
{
    bs_clock a = bst_clock_of(&ch), b = bst_clock_of(&ca),
             c = bst_clock_of(&cb);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch.ms = ca.ms = cb.ms = T0;
    bst_root(root, sizeof root, "access");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, &b);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &tallinn);
    bst_pair2(&head, &riga);
    settle();
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_access");
}

TestSuite(access, .init = setup, .fini = teardown, .timeout = 120);

/* Real time passes on every office. */
static void
tick(uint64_t ms)
{
    ch.ms += ms;
    ca.ms += ms;
    cb.ms += ms;
}

static void
declare(const char *coll, const char *writers, const char *owner_field)
{
    bs_collection r;
    bs_errbuf err = {{0}};
    bs_err rv;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", coll);
    cr_assert_eq(bs_writers_parse(writers, &r.writers), BS_OK);
    r.set = BS_RULE_WRITERS;
    if (owner_field != NULL) {
        snprintf(r.owner_field, sizeof r.owner_field, "%s", owner_field);
        r.set |= BS_RULE_OWNER_FIELD;
    }
    rv = bs_collections_declare(&head.core, &r, NULL, &err);
    cr_assert_eq(rv, BS_OK, "declare: %s", bs_errmsg(&err, rv));
}

static bs_err
put(bst_node *t, const char *coll, const char *id, const char *json,
    bs_errbuf *err)
{
    return bst_put(t, coll, id, json, err);
}

static void
put_ok(bst_node *t, const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = put(t, coll, id, json, &err);

    cr_assert_eq(rv, BS_OK, "%s: %s/%s: %s", t->name, coll, id,
                 bs_errmsg(&err, rv));
}

static void
digests_equal(void)
{
    uint8_t a[BS_HASH_LEN], b[BS_HASH_LEN], c[BS_HASH_LEN];
    uint64_t na, nb, nc;

    bst_digest(&head, a, &na);
    bst_digest(&tallinn, b, &nb);
    bst_digest(&riga, c, &nc);
    cr_assert(na == nb && nb == nc && memcmp(a, b, BS_HASH_LEN) == 0 &&
                  memcmp(b, c, BS_HASH_LEN) == 0,
              "digests differ: %llu / %llu / %llu records",
              (unsigned long long)na, (unsigned long long)nb,
              (unsigned long long)nc);
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

static uint64_t
refused_of(bst_node *at, bst_node *origin, char *why, size_t wn)
{
    bs_meta m = bst_meta(origin);
    bs_txn *t;
    uint64_t n;

    cr_assert_eq(bs_store_read(at->core.store, &t, NULL), BS_OK);
    cr_assert_eq(bs_access_refused(t, m.pk, &n, why, wn), BS_OK);
    bs_txn_abort(t);
    return n;
}

/* ---- writers=hub ---- */

Test(access, a_branch_that_has_the_rule_is_refused_up_front)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};

    declare("prices", "hub", NULL);
    settle();
    bst_fingerprint(&tallinn, f0);
    cr_assert_eq(put(&tallinn, "prices", "p1", "{\"eur\":3}", &err), BS_EPERM);
    cr_assert(strstr(err.msg, "only the hub writes prices (writers hub)"), "%s",
              err.msg);
    bst_fingerprint(&tallinn, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the refusal wrote");
    put_ok(&head, "prices", "p1", "{\"eur\":3}");
    settle();
    present(&riga, "prices", "p1", "\"eur\":3");
}

/* The case: an office writes offline after the head office made a
 * rule it has not heard of.  Its change is refused by rule everywhere,
 * its set's other changes apply, and the office itself drops it once the
 * rule arrives. */
Test(access, an_offline_write_after_the_rule_is_refused_by_rule_everywhere)
{
    char why[BS_ERRMSG_LEN];

    put_ok(&tallinn, "prices", "p0", "{\"eur\":1}"); /* before the rule */
    settle();
    tick(30000);
    declare("prices", "hub", NULL);
    tick(30000); /* tallinn writes after the rule, not knowing it */
    {
        bst_op ops[2] = {{"prices", "p1", "{\"eur\":9}"},
                         {"notes", "n1", "{\"text\":\"hi\"}"}};
        bs_errbuf err = {{0}};

        cr_assert_eq(bst_write(&tallinn, ops, 2, NULL, &err), BS_OK, "%s",
                     err.msg);
    }
    present(&tallinn, "prices", "p1", "\"eur\":9"); /* it did not know */
    carry(&tallinn, &head);                         /* the set applies */
    absent(&head, "prices", "p1");
    present(&head, "notes", "n1", "hi");
    cr_assert_eq(refused_of(&head, &tallinn, why, sizeof why), 1);
    cr_assert(strstr(why, "only the hub writes prices"), "%s", why);
    settle();
    absent(&tallinn, "prices", "p1"); /* rebuilt when the rule arrived */
    absent(&riga, "prices", "p1");
    present(&riga, "prices", "p0", "\"eur\":1"); /* older: allowed */
    digests_equal();
}

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

/* A branch that had the rule and writes anyway (a broken or hostile
 * build: here its rule table is wiped so its own check lets it through)
 * signs a set no honest node makes: refused whole, nothing written. */
Test(access, a_set_whose_origin_had_the_rule_is_refused_whole)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    bs_err rv;

    declare("prices", "hub", NULL);
    settle();
    cr_assert_eq(bs_store_write(tallinn.core.store, forget_rules, NULL, &err),
                 BS_OK);
    put_ok(&tallinn, "prices", "p1", "{\"eur\":9}");
    bst_fingerprint(&head, f0);
    rv = bst_carry(&tallinn, &head, NULL, &err);
    cr_assert_eq(rv, BS_EPERM, "%s", bs_errmsg(&err, rv));
    cr_assert(strstr(err.msg, "only the hub writes prices") &&
                  strstr(err.msg, "had the rule"),
              "%s", err.msg);
    bst_fingerprint(&head, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the refused file wrote");
}

/* A relaxed rule lets the offices write again, from its time on. */
Test(access, a_relaxed_rule_admits_what_it_governs_on_every_node)
{
    bs_errbuf err = {{0}};

    declare("prices", "hub", NULL);
    settle();
    cr_assert_eq(put(&tallinn, "prices", "p2", "{\"eur\":1}", &err), BS_EPERM);
    tick(30000);
    declare("prices", "all", NULL);
    settle();
    tick(30000);
    put_ok(&tallinn, "prices", "p2", "{\"eur\":2}");
    settle();
    digests_equal();
    present(&riga, "prices", "p2", "\"eur\":2");
}

/* ---- writers=owner ---- */

Test(access, an_owner_writes_its_records_and_no_other_office_may)
{
    bs_errbuf err = {{0}};

    declare("orders", "owner", "office");
    settle();
    put_ok(&tallinn, "orders", "o1", "{\"office\":\"tallinn\",\"sum\":1}");
    settle();
    /* riga knows o1 is tallinn's: refused up front */
    cr_assert_eq(put(&riga, "orders", "o1", "{\"sum\":2}", &err), BS_EPERM);
    cr_assert(strstr(err.msg, "orders/o1 belongs to tallinn (office)"), "%s",
              err.msg);
    cr_assert_eq(put(&riga, "orders", "o1", "{\"office\":\"riga\"}", &err),
                 BS_EPERM, "a take-over");
    /* a record must name its writer */
    cr_assert_eq(put(&riga, "orders", "o2", "{\"sum\":2}", &err), BS_EPERM);
    cr_assert(strstr(err.msg, "must name its writer riga in office"), "%s",
              err.msg);
    put_ok(&riga, "orders", "o2", "{\"office\":\"riga\",\"sum\":2}");
    put_ok(&tallinn, "orders", "o1", "{\"sum\":3}");
    /* the hub writes anything, and may give a record away */
    put_ok(&head, "orders", "o2", "{\"office\":\"tallinn\"}");
    settle();
    present(&riga, "orders", "o1", "\"sum\":3");
    present(&tallinn, "orders", "o2", "\"office\":\"tallinn\"");
    put_ok(&tallinn, "orders", "o2", "{\"sum\":5}");
    cr_assert_eq(put(&riga, "orders", "o2", "{\"sum\":6}", &err), BS_EPERM);
    settle();
    present(&head, "orders", "o2", "\"sum\":5");
    digests_equal();
}

/* Two offices create the same ID before hearing of each other: the
 * earlier creation owns it everywhere; the later is refused by rule (its
 * office could not know), never its whole set. */
Test(access, concurrent_creations_converge_on_the_earlier)
{
    declare("orders", "owner", "office");
    settle();
    put_ok(&tallinn, "orders", "o9", "{\"office\":\"tallinn\",\"sum\":1}");
    tick(5000); /* riga's is later */
    put_ok(&riga, "orders", "o9", "{\"office\":\"riga\",\"sum\":2}");
    put_ok(&riga, "notes", "n9", "{\"text\":\"with it\"}");
    carry(&riga, &head); /* riga's arrives first at the hub */
    carry(&tallinn, &head);
    settle();
    present(&head, "orders", "o9", "\"office\":\"tallinn\"");
    present(&riga, "orders", "o9", "\"office\":\"tallinn\"");
    present(&tallinn, "notes", "n9", "with it");
    digests_equal();
}

/* The hub moves a record while its old owner edits it offline: the edit
 * stamped after the move is refused by rule everywhere, wherever it
 * arrived first. */
Test(access, an_edit_racing_a_move_converges)
{
    declare("orders", "owner", "office");
    settle();
    put_ok(&tallinn, "orders", "o5", "{\"office\":\"tallinn\",\"sum\":1}");
    settle();
    tick(10000);
    put_ok(&head, "orders", "o5", "{\"office\":\"riga\"}");
    tick(10000);
    put_ok(&tallinn, "orders", "o5", "{\"sum\":7}"); /* not knowing */
    /* the hub judges the edit by the move before it; tallinn judged it by
     * itself, then gets the move below it and rebuilds the record */
    carry(&tallinn, &head);
    settle();
    present(&head, "orders", "o5", "\"sum\":1");
    present(&tallinn, "orders", "o5", "\"office\":\"riga\"");
    present(&tallinn, "orders", "o5", "\"sum\":1");
    digests_equal();
}

/* ---- the owner history (access.h, storage.md §3.1) ---- */

/* The entries "own:" coll \0 id \0 ... node t's store holds. */
static size_t
own_entries(bst_node *t, const char *coll, const char *id)
{
    char p[128];
    size_t pn = (size_t)snprintf(p, sizeof p, "own:%s", coll) + 1, n = 0;
    bs_cursor *cur;
    bs_slice k, v;
    bs_txn *tx;
    bs_err rv;

    pn += (size_t)snprintf(p + pn, sizeof p - pn, "%s", id) + 1;
    cr_assert_eq(bs_store_read(t->core.store, &tx, NULL), BS_OK);
    cr_assert_eq(bs_cursor_open(tx, BS_DB_META, &cur), BS_OK);
    for (rv = bs_cursor_seek(cur, bs_mem(p, pn), &k, &v);
         rv == BS_OK && k.n >= pn && memcmp(k.p, p, pn) == 0;
         rv = bs_cursor_next(cur, &k, &v))
        n++;
    cr_assert(rv == BS_OK || rv == BS_ENOTFOUND);
    bs_cursor_close(cur);
    bs_txn_abort(tx);
    return n;
}

/* A record's first owner is the record's own field: neither the office
 * that writes it nor one that receives it keeps an entry for it; once
 * the owner changes, the first one is kept beside the record. */
Test(access, a_first_owner_is_implied_by_the_record)
{
    declare("orders", "owner", "office");
    settle();
    put_ok(&tallinn, "orders", "o1", "{\"office\":\"tallinn\",\"sum\":1}");
    settle();
    cr_assert_eq(own_entries(&tallinn, "orders", "o1"), 0, "written here");
    cr_assert_eq(own_entries(&head, "orders", "o1"), 0, "applied");
    cr_assert_eq(own_entries(&riga, "orders", "o1"), 0, "applied");
    put_ok(&tallinn, "orders", "o1", "{\"sum\":2}"); /* the owner stays */
    settle();
    cr_assert_eq(own_entries(&riga, "orders", "o1"), 0);
    tick(1000);
    put_ok(&head, "orders", "o1", "{\"office\":\"riga\"}");
    settle();
    /* riga keeps tallinn's; the move is the record's */
    cr_assert_eq(own_entries(&riga, "orders", "o1"), 1);
    cr_assert_eq(own_entries(&tallinn, "orders", "o1"), 1);
    digests_equal();
}

/* An edit stamped between a record's first owner and a move arrives
 * after the move: it is judged by the first owner, which the record no
 * longer holds, on the node that moved it and on one that received the
 * move. */
Test(access, an_edit_below_a_move_is_judged_by_the_first_owner)
{
    char why[256];

    declare("orders", "owner", "office");
    settle();
    put_ok(&tallinn, "orders", "o6", "{\"office\":\"tallinn\",\"sum\":1}");
    settle();
    tick(1000);
    put_ok(&tallinn, "orders", "o6", "{\"sum\":7}"); /* not carried yet */
    tick(1000);
    put_ok(&head, "orders", "o6", "{\"office\":\"riga\"}");
    carry(&head, &riga);    /* riga applies the move first */
    carry(&tallinn, &head); /* the hub moved it itself */
    settle();
    present(&head, "orders", "o6", "\"sum\":7");
    present(&head, "orders", "o6", "\"office\":\"riga\"");
    present(&riga, "orders", "o6", "\"sum\":7");
    present(&tallinn, "orders", "o6", "\"office\":\"riga\"");
    cr_assert_eq(refused_of(&head, &tallinn, why, sizeof why), 0, "%s", why);
    cr_assert_eq(refused_of(&riga, &tallinn, why, sizeof why), 0, "%s", why);
    digests_equal();
}

/* ---- back-dating (protocol.md §7.1: a change is also governed by every
 * version its origin had seen) ---- */

/* Node t stamps its next local writes at wall time ms: its clock is set
 * back, and the memory of later stamps is dropped as hlc.h drops one
 * beyond the horizon (a wrong clock, or a build that back-dates). */
static void
backdate(bst_node *t, bst_clock *c, uint64_t ms)
{
    c->ms = ms;
    t->core.max_skew_ms = 1000;
}

static void
stamp_ok(bst_node *t, bst_clock *c, uint64_t ms)
{
    c->ms = ms;
    t->core.max_skew_ms = 0;
}

static uint64_t
field_hlc(bst_node *t, const char *coll, const char *id)
{
    bs_record r;
    bs_arena a;
    bs_txn *tx;
    uint64_t h = 0;

    bs_arena_init(&a);
    cr_assert_eq(bs_store_read(t->core.store, &tx, NULL), BS_OK);
    if (bs_records_get(tx, coll, id, &a, &r, NULL) == BS_OK && r.nfields > 0)
        h = r.fields[0].ver.hlc;
    bs_txn_abort(tx);
    bs_arena_fini(&a);
    return h;
}

/* A branch that holds `writers hub` (here a hostile build: its rule table
 * wiped so its own check lets the write through) stamps a put below the
 * rule's HLC.  Its set's signed vector says it had the rule, so the rule
 * governs the put: refused (whole, its origin had the rule) on every
 * node, which all keep the same data. */
Test(access, a_put_back_dated_below_a_rule_its_origin_had_is_refused)
{
    uint64_t before = ch.ms;
    uint8_t d0[BS_HASH_LEN], d1[BS_HASH_LEN];
    uint64_t n0, n1;
    bs_errbuf err = {{0}};
    bs_err rv;

    bst_pair2(&tallinn, &riga);
    tick(60000);
    declare("prices", "hub", NULL);
    settle();
    tick(60000);
    cr_assert_eq(bs_store_write(tallinn.core.store, forget_rules, NULL, &err),
                 BS_OK);
    backdate(&tallinn, &ca, before); /* a minute before the rule */
    put_ok(&tallinn, "prices", "p1", "{\"eur\":9}");
    stamp_ok(&tallinn, &ca, ch.ms);
    cr_assert_lt(field_hlc(&tallinn, "prices", "p1") >> 16, before + 1000,
                 "the put is not back-dated");
    for (int i = 0; i < 2; i++) {
        bst_node *to = i ? &riga : &head;

        rv = bst_carry(&tallinn, to, NULL, &err);
        cr_assert_eq(rv, BS_EPERM, "%s took the back-dated put: %s", to->name,
                     bs_errmsg(&err, rv));
        cr_assert(strstr(err.msg, "only the hub writes prices") &&
                      strstr(err.msg, "had the rule"),
                  "%s", err.msg);
        absent(to, "prices", "p1");
    }
    carry(&head, &riga);
    carry(&riga, &head);
    bst_digest(&head, d0, &n0);
    bst_digest(&riga, d1, &n1);
    cr_assert(n0 == n1 && memcmp(d0, d1, BS_HASH_LEN) == 0,
              "head and riga differ");
}

/* ---- what a rebuild does besides judging (rebuild.h) ---- */

/* A change admitted on arrival and refused by a rebuild counts as
 * refused by rule, like one refused on arrival, and only once. */
Test(access, a_change_a_rebuild_refuses_counts_as_refused_by_rule_once)
{
    char why[BS_ERRMSG_LEN];

    declare("orders", "owner", "office");
    settle();
    put_ok(&tallinn, "orders", "o9", "{\"office\":\"tallinn\",\"sum\":1}");
    tick(5000);
    put_ok(&riga, "orders", "o9", "{\"office\":\"riga\",\"sum\":2}");
    carry(&riga, &head); /* admitted: the first creation head hears of */
    cr_assert_eq(refused_of(&head, &riga, why, sizeof why), 0);
    carry(&tallinn, &head); /* the earlier creation: o9 is rebuilt */
    present(&head, "orders", "o9", "\"office\":\"tallinn\"");
    cr_assert_eq(refused_of(&head, &riga, why, sizeof why), 1);
    cr_assert(strstr(why, "orders/o9 belongs to tallinn"), "%s", why);
    settle();
    tick(5000);
    declare("orders", "owner", "office"); /* rebuilds o9 again */
    settle();
    cr_assert_eq(refused_of(&head, &riga, why, sizeof why), 1, "counted twice");
    digests_equal();
}

static int
every_change(void *ctx, const uint8_t *key, uint64_t seq)
{
    (void)ctx;
    (void)key;
    (void)seq;
    return 1;
}

/* Forget the conflicts of orders/o9, then rebuild it (bs_store_write). */
static bs_err
rebuild_o9(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_rebuild_stats st;
    bs_meta m;
    bs_err rv;

    (void)arg;
    if ((rv = bs_meta_load(t, &m, err)) != BS_OK ||
        (rv = bs_conflict_drop_if(t, "orders", "o9", every_change, NULL)) !=
            BS_OK)
        return rv;
    return bs_rebuild_record(t, &m, "orders", "o9", &st);
}

/* Under `manual`, a change a rebuild admits is registered with the
 * conflicts arrival would have recorded: tallinn's edit, refused by the
 * hub on arrival (o9 looked like riga's) and admitted once tallinn's
 * earlier creation rebuilt o9, conflicts with the hub's concurrent edit;
 * the conflict tallinn records on arrival is open on every node.  (Which
 * other pairs a node registers still depends on the order changes reach
 * it: the register is node-local, conflict.h.) */
Test(access, a_manual_rebuild_records_the_conflicts_arrival_would)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    bs_collection r;
    bs_errbuf err = {{0}};

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "orders");
    cr_assert_eq(bs_writers_parse("owner", &r.writers), BS_OK);
    snprintf(r.owner_field, sizeof r.owner_field, "office");
    r.policy = BS_POLICY_MANUAL;
    r.set = BS_RULE_WRITERS | BS_RULE_OWNER_FIELD | BS_RULE_POLICY;
    cr_assert_eq(bs_collections_declare(&head.core, &r, NULL, &err), BS_OK,
                 "%s", err.msg);
    settle();
    tick(1000);
    put_ok(&tallinn, "orders", "o9", "{\"office\":\"tallinn\",\"sum\":1}");
    tick(1000);
    put_ok(&riga, "orders", "o9", "{\"office\":\"riga\",\"sum\":2}");
    tick(1000);
    put_ok(&tallinn, "orders", "o9", "{\"sum\":3}");
    tick(1000);
    carry(&riga, &head);
    put_ok(&head, "orders", "o9", "{\"sum\":7}"); /* has not seen tallinn's */
    carry(&tallinn, &head);
    settle();
    digests_equal();
    /* tallinn held its edit when the hub's arrived: the conflict */
    cr_assert_eq(bst_conflicts_of(&tallinn, 0, "orders", "o9", "sum", cid), 1);
    for (int i = 0; i < 2; i++) {
        bst_node *t = i ? &riga : &head;
        bs_conflict c;
        bs_txn *tx;
        bs_err rv;

        cr_assert_eq(bs_store_read(t->core.store, &tx, NULL), BS_OK);
        memset(&c, 0, sizeof c);
        rv = bs_conflict_get(tx, cid, &c);
        bs_txn_abort(tx);
        cr_assert_eq(rv, BS_OK, "%s did not record conflict %s", t->name, cid);
        cr_assert_not(c.resolved, "%s: it is not open", t->name);
        bs_conflict_fini(&c);
    }
    /* A rebuild alone registers it: with o9's conflicts forgotten at the
     * hub, rebuilding o9 records it again, open. */
    cr_assert_eq(bs_store_write(head.core.store, rebuild_o9, NULL, &err), BS_OK,
                 "%s", err.msg);
    {
        char got[BS_CONFLICT_ID_LEN + 1];

        cr_assert_eq(bst_conflicts_of(&head, 0, "orders", "o9", "sum", got), 1,
                     "the rebuild did not record the conflict");
        cr_assert_str_eq(got, cid);
    }
}

/* Whether t stores coll/id at all (alive, or a tombstone). */
static int
stored(bst_node *t, const char *coll, const char *id)
{
    bs_record r;
    bs_arena a;
    bs_txn *tx;
    bs_err rv;

    bs_arena_init(&a);
    cr_assert_eq(bs_store_read(t->core.store, &tx, NULL), BS_OK);
    memset(&r, 0, sizeof r);
    rv = bs_records_get(tx, coll, id, &a, &r, NULL);
    bs_txn_abort(tx);
    bs_arena_fini(&a);
    return rv == BS_OK || r.has_tomb;
}

/* Purge at riga with a retention limit of 1 ms (every peer acked). */
static bs_err
purge_now(bs_txn *t, void *arg, bs_errbuf *err)
{
    return bs_purge_tombstones(t, cb.ms + 1000, 1, arg, err);
}

/* A purged tombstone stays purged when a rule version rebuilds its
 * collection (here one naming the owner in a field for the first time,
 * which rebuilds every record): the rebuild replays the log, which still
 * holds the record's changes.  Convergence is about live data: riga
 * holds nothing of o1, head keeps its tombstone, their digests agree. */
Test(access, a_rebuild_after_a_purge_does_not_bring_back_the_tombstone)
{
    bs_purge_stats ps;
    bs_errbuf err = {{0}};

    put_ok(&tallinn, "orders", "o1", "{\"sum\":1}");
    tick(1000);
    cr_assert_eq(bst_del(&tallinn, "orders", "o1", &err), BS_OK, "%s", err.msg);
    settle();
    tick(1000);
    cr_assert_eq(bs_store_write(riga.core.store, purge_now, &ps, &err), BS_OK,
                 "%s", err.msg);
    cr_assert_eq(ps.purged, 1, "the tombstone is not purged");
    cr_assert_not(stored(&riga, "orders", "o1"));
    tick(1000);
    declare("orders", "all", "office");
    settle();
    cr_assert_not(stored(&riga, "orders", "o1"), "the tombstone came back");
    cr_assert(stored(&head, "orders", "o1"), "head never purged");
    absent(&head, "orders", "o1");
    digests_equal();
}
