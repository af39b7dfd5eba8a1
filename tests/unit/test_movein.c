/*
 * test_movein.c - the base of a record a snapshot created (movein.h
 * bs_movein_base, bs_movein_base_keep; record.h BS_RECORD_OWN_BASE;
 * docs/storage.md 3.2; issue 12 item 3).
 *
 * A seed creates every record of a fresh branch: each is its own base, so
 * the branch keeps no "snp:" entry, and no "own:" entry for the owner the
 * record names (access.h: implied).  Yet bs_movein_base answers the seeded
 * record, and the first write that changes it (a received set, a local
 * write, a rebuild) keeps the seeded version as an entry first, so a
 * rebuild that refuses a later change still comes back to it.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/collections.h"
#include "../../replication/compact.h"
#include "../../replication/movein.h"
#include "../../replication/purge.h"
#include "../../replication/scope.h"

#define T0     1800000000000ull
#define DAY_MS 86400000ull

static char root[128], path[300];
static bst_clock ch = {T0, 1}, cr = {T0, 1}, cb = {T0, 1};
static bst_node head, riga, br;

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

static void
put(bst_node *t, const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = json != NULL ? bst_put(t, coll, id, json, &err)
                             : bst_del(t, coll, id, &err);

    cr_assert_eq(rv, BS_OK, "%s %s/%s: %s", t->name, coll, id,
                 bs_errmsg(&err, rv));
}

/* A version of coll's rules at the hub: scope and owner field "branch"
 * (scope NULL: unchanged), writers (NULL: unchanged), policy (-1: as
 * is). */
static void
declare(const char *coll, const char *scope, const char *writers, int policy)
{
    bs_collection r;
    bs_errbuf err = {{0}};
    bs_err rv;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", coll);
    if (scope != NULL) {
        cr_assert_eq(bs_scope_parse(scope, &r.scope), BS_OK);
        snprintf(r.owner_field, sizeof r.owner_field, "branch");
        r.set |= BS_RULE_SCOPE | BS_RULE_OWNER_FIELD;
    }
    if (writers != NULL) {
        cr_assert_eq(bs_writers_parse(writers, &r.writers), BS_OK);
        r.set |= BS_RULE_WRITERS;
    }
    if (policy >= 0) {
        r.policy = (bs_policy)policy;
        r.set |= BS_RULE_POLICY;
    }
    rv = bs_collections_declare(&head.core, &r, NULL, &err);
    cr_assert_eq(rv, BS_OK, "declare: %s", bs_errmsg(&err, rv));
}

/* The hub holds orders (owner scope, owner field "branch") and items
 * (shared); riga has exchanged, br is only paired, then seeded. */
static void
setup(void)
{
    bs_clock a = bst_clock_of(&ch), b = bst_clock_of(&cr),
             c = bst_clock_of(&cb);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch.ms = cr.ms = cb.ms = T0;
    bst_root(root, sizeof root, "movein");
    snprintf(path, sizeof path, "%s/seed.bsx", root);
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &b);
    bst_node_new(&br, root, "br", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &riga);
    bst_pair2(&head, &br);
    declare("orders", "owner", NULL, -1);
    put(&head, "orders", "o1", "{\"branch\":\"br\",\"n\":1}");
    put(&head, "orders", "o2", "{\"branch\":\"br\",\"n\":2}");
    put(&head, "orders", "o3", "{\"branch\":\"br\",\"n\":3}");
    put(&head, "orders", "o4", "{\"branch\":\"riga\",\"n\":4}");
    put(&head, "items", "i1", "{\"x\":1}");
    put(&head, "items", "i2", "{\"x\":2}");
    carry(&head, &riga);
    carry(&riga, &head);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&riga);
    bst_node_free(&br);
    bst_rmtree(root);
    bst_leak_check("test_movein");
}

TestSuite(movein, .init = setup, .fini = teardown, .timeout = 120);

/* br imports the hub's seed. */
static void
seed(void)
{
    bs_errbuf err = {{0}};
    bs_xstats st;
    bs_err rv = bs_bundle_export_seed(head.n->store, head.core.sk, "br", path,
                                      bs_core_now(&head.core),
                                      head.core.retention_ms, &st, &err);

    cr_assert_eq(rv, BS_OK, "export --seed: %s", bs_errmsg(&err, rv));
    memset(&st, 0, sizeof st);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "import: %s", bs_errmsg(&err, rv));
    cr_assert(st.snapshots > 0);
}

/* Metadata keys of t starting with prefix (pn bytes). */
static size_t
meta_keys(bst_node *t, const void *prefix, size_t pn)
{
    bs_errbuf err = {{0}};
    bs_cursor *c;
    bs_slice k, v;
    size_t n = 0;
    bs_txn *tx;
    bs_err rv;

    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    cr_assert_eq(bs_cursor_open(tx, BS_DB_META, &c), BS_OK);
    for (rv = bs_cursor_seek(c, bs_mem(prefix, pn), &k, &v);
         rv == BS_OK && k.n >= pn && memcmp(k.p, prefix, pn) == 0;
         rv = bs_cursor_next(c, &k, &v))
        n++;
    bs_cursor_close(c);
    bs_txn_abort(tx);
    return n;
}

/* "tag:" coll \0 id [\0] */
static size_t
rec_prefix(uint8_t *k, const char *tag, const char *coll, const char *id,
           int nul)
{
    size_t n = 4, cn = strlen(coll), in = strlen(id);

    memcpy(k, tag, 4);
    memcpy(k + n, coll, cn + 1);
    n += cn + 1;
    memcpy(k + n, id, in);
    n += in;
    if (nul)
        k[n++] = '\0';
    return n;
}

/* Whether coll/id has a "snp:" entry at t. */
static int
has_base_entry(bst_node *t, const char *coll, const char *id)
{
    uint8_t k[4 + BS_RECKEY_MAX + 1];
    bs_errbuf err = {{0}};
    bs_slice v;
    bs_txn *tx;
    bs_err rv;

    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    rv = bs_txn_get(tx, BS_DB_META,
                    bs_mem(k, rec_prefix(k, "snp:", coll, id, 0)), &v);
    bs_txn_abort(tx);
    cr_assert(rv == BS_OK || rv == BS_ENOTFOUND);
    return rv == BS_OK;
}

/* The "own:" entries of coll/id at t. */
static size_t
owner_entries(bst_node *t, const char *coll, const char *id)
{
    uint8_t k[4 + BS_RECKEY_MAX + 1];

    return meta_keys(t, k, rec_prefix(k, "own:", coll, id, 1));
}

/* Whether the stored coll/id carries BS_RECORD_OWN_BASE. */
static int
own_base(bst_node *t, const char *coll, const char *id)
{
    uint8_t key[BS_RECKEY_MAX];
    bs_errbuf err = {{0}};
    bs_slice v;
    bs_txn *tx;
    int own;

    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    cr_assert_eq(bs_txn_get(tx, BS_DB_RECORDS,
                            bs_mem(key, bs_record_key(key, coll, id)), &v),
                 BS_OK, "%s/%s is not stored at %s", coll, id, t->name);
    own = bs_record_own_base(v.p, v.n);
    bs_txn_abort(tx);
    return own;
}

/* Integer field `field` of coll/id's base at t (bs_movein_base must
 * answer one), and whether the base is the record as stored. */
static int64_t
base_int(bst_node *t, const char *coll, const char *id, const char *field,
         int *same)
{
    uint8_t key[BS_RECKEY_MAX];
    bs_errbuf err = {{0}};
    bs_record r, s;
    const bs_value *v;
    bs_slice rv_bytes;
    bs_arena a;
    bs_txn *tx;
    bs_err rv;
    int64_t out;

    bs_arena_init(&a);
    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    rv = bs_movein_base(tx, coll, id, &r, &a);
    cr_assert_eq(rv, BS_OK, "%s/%s at %s has no base (%s)", coll, id, t->name,
                 bs_strerror(rv));
    v = bs_record_field(&r, field);
    cr_assert(v != NULL && v->type == BS_VINT, "%s/%s's base lacks %s", coll,
              id, field);
    out = v->i;
    if (same != NULL) {
        const bs_value *w;

        cr_assert_eq(bs_txn_get(tx, BS_DB_RECORDS,
                                bs_mem(key, bs_record_key(key, coll, id)),
                                &rv_bytes),
                     BS_OK);
        cr_assert_eq(bs_record_decode(&s, rv_bytes.p, rv_bytes.n, &a), BS_OK);
        w = bs_record_field(&s, field);
        *same = s.nfields == r.nfields && s.live == r.live && w != NULL &&
                bs_value_eq(v, w) && s.alive.hlc == r.alive.hlc &&
                s.alive.seq == r.alive.seq;
    }
    bs_txn_abort(tx);
    bs_arena_fini(&a);
    return out;
}

static int
holds(bst_node *t, const char *coll, const char *id, const char *what)
{
    char *s = bst_get(t, coll, id);
    int yes = s != NULL && strstr(s, what) != NULL;

    free(s);
    return yes;
}

/* br's data is the hub's, restricted to br's scope. */
static void
same_scope(const char *what)
{
    bs_meta mh = bst_meta(&head), mb = bst_meta(&br);
    uint8_t dh[BS_HASH_LEN], db[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    uint64_t nh, nb;
    bs_txn *t;

    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    bst_ok(bs_scope_digest(t, &mh, mb.pk, dh, &nh, &err), &err, "scope");
    bs_txn_abort(t);
    bst_digest(&br, db, &nb);
    cr_assert(memcmp(dh, db, BS_HASH_LEN) == 0 && nh == nb,
              "%s: br differs from its scope at the hub", what);
}

/* The seed writes neither a base nor an owner entry, yet every seeded
 * record has its base: itself. */
Test(movein, a_seeded_record_is_its_own_base_without_base_or_owner_entries)
{
    int same = 0;

    seed();
    cr_assert_eq(meta_keys(&br, "snp:", 4), 0, "the seed wrote bases");
    cr_assert_eq(meta_keys(&br, "own:", 4), 0, "the seed wrote owner entries");
    cr_assert(own_base(&br, "orders", "o1") && own_base(&br, "items", "i1"));
    cr_assert_eq(base_int(&br, "orders", "o1", "n", &same), 1);
    cr_assert(same, "the base is not the record");
    cr_assert_eq(base_int(&br, "items", "i2", "x", &same), 2);
    cr_assert(same);
    same_scope("seeded");
    /* what the branch sends back is its own data, as before */
    carry(&br, &head);
    carry(&head, &br);
    same_scope("after an exchange");
}

/* (a) A received set that changes a seeded record keeps the seeded
 * version as its base (an entry now) and the owner it named (an "own:"
 * entry now: the set's owner field replaced it, access.h). */
Test(movein, a_received_change_keeps_the_seeded_version_as_the_base)
{
    int same = 1;

    seed();
    cr_assert(own_base(&br, "orders", "o1"));
    ch.ms += 1000;
    put(&head, "orders", "o1", "{\"branch\":\"br\",\"n\":10}");
    carry(&head, &br);
    cr_assert(holds(&br, "orders", "o1", "\"n\":10"));
    cr_assert(!own_base(&br, "orders", "o1"));
    cr_assert(has_base_entry(&br, "orders", "o1"));
    cr_assert_eq(base_int(&br, "orders", "o1", "n", &same), 1);
    cr_assert(!same);
    cr_assert_eq(owner_entries(&br, "orders", "o1"), 1,
                 "the seeded owner's entry was not kept");
    /* the others are untouched: still their own bases */
    cr_assert(own_base(&br, "orders", "o2") &&
              !has_base_entry(&br, "orders", "o2"));
    same_scope("after the edit");
}

/* (b) A local write and a local delete of seeded records keep the seeded
 * versions as their bases. */
Test(movein, a_local_write_keeps_the_seeded_version_as_the_base)
{
    seed();
    cb.ms = ch.ms + 1000;
    put(&br, "orders", "o2", "{\"branch\":\"br\",\"n\":20}");
    put(&br, "orders", "o3", NULL);
    cr_assert(holds(&br, "orders", "o2", "\"n\":20"));
    cr_assert(!own_base(&br, "orders", "o2") && !own_base(&br, "orders", "o3"));
    cr_assert_eq(base_int(&br, "orders", "o2", "n", NULL), 2);
    cr_assert_eq(base_int(&br, "orders", "o3", "n", NULL), 3);
    cr_assert_eq(owner_entries(&br, "orders", "o3"), 2,
                 "the seeded owner's entry and the delete's");
    carry(&br, &head);
    carry(&head, &br);
    same_scope("after the local writes");
}

/* riga edits items/i2 (not sent); the hub's later edit wins. */
static void
older_edit_of_i2(void)
{
    put(&riga, "items", "i2", "{\"x\":-2}");
    ch.ms = cr.ms + 1000;
    put(&head, "items", "i2", "{\"x\":22}");
}

/* (c) A rebuild (a policy that changes the order of versions rebuilds the
 * collection's records from the log, rebuild.h) leaves a seeded record
 * that comes out as it was its own base (i2: only an older edit reached
 * it since), and one edited since with the seeded version as base. */
Test(movein, a_rebuild_keeps_the_seeded_version_as_the_base)
{
    int same = 0;

    older_edit_of_i2();
    seed();
    carry(&riga, &head);
    ch.ms += 1000;
    put(&head, "items", "i1", "{\"x\":10}");
    carry(&head, &br);
    cr_assert(own_base(&br, "items", "i2"));
    declare("items", NULL, NULL, BS_POLICY_PRIORITY);
    carry(&head, &br);
    cr_assert(holds(&br, "items", "i1", "\"x\":10"));
    cr_assert(holds(&br, "items", "i2", "\"x\":22"));
    cr_assert_eq(base_int(&br, "items", "i1", "x", NULL), 1);
    cr_assert(own_base(&br, "items", "i2") &&
                  !has_base_entry(&br, "items", "i2"),
              "a rebuild that changed nothing wrote a base");
    cr_assert_eq(base_int(&br, "items", "i2", "x", &same), 22);
    cr_assert(same);
    same_scope("after the rebuild");
}

/* What the base is for: br edits a seeded record after a rule it has not
 * heard of (writers hub); when the rule arrives, the rebuild refuses the
 * edit and the record is the seeded one again, as at the hub. */
Test(movein, a_rebuild_that_refuses_a_later_edit_restores_the_seeded_value)
{
    seed();
    cr_assert(own_base(&br, "items", "i1"));
    ch.ms += 1000;
    declare("items", NULL, "hub", -1);
    cb.ms = ch.ms + 60000; /* br writes after the rule, not knowing it */
    put(&br, "items", "i1", "{\"x\":5}");
    cr_assert(holds(&br, "items", "i1", "\"x\":5"));
    carry(&br, &head); /* refused by rule at the hub */
    cr_assert(holds(&head, "items", "i1", "\"x\":1"));
    carry(&head, &br); /* the rule arrives: br rebuilds items */
    cr_assert(holds(&br, "items", "i1", "\"x\":1"),
              "the rebuild lost the seeded value");
    same_scope("after the refusal");
}

/* Compaction folds a dropped set's changes into the bases (compact.h): a
 * change older than the seeded version (riga's edit, reaching br after
 * the seed) leaves the record as seeded, and folded into its implied base
 * leaves that as it was: no entry, the record still its own base. */
Test(movein, compaction_folds_into_an_implied_base)
{
    bs_compact_stats st;
    bs_errbuf err = {{0}};
    int same = 0;

    head.core.retention_ms = br.core.retention_ms = 10 * DAY_MS;
    riga.core.retention_ms = 10 * DAY_MS;
    older_edit_of_i2();
    seed();
    /* so that the edit's set is not riga's last (kept) */
    put(&riga, "items", "r1", "{\"x\":0}");
    carry(&riga, &head);
    carry(&head, &br); /* riga's edit reaches br: nothing changes */
    cr_assert(holds(&br, "items", "i2", "\"x\":22"));
    cr_assert(own_base(&br, "items", "i2"));
    for (int i = 0; i < 2; i++) { /* the sets age past the limit, acked */
        ch.ms += 6 * DAY_MS;
        cr.ms = cb.ms = ch.ms;
        carry(&br, &head);
        carry(&head, &br);
    }
    cr_assert_eq(bs_compact_run(&br.core, 0, &st, &err), BS_OK, "%s", err.msg);
    cr_assert_geq(st.sets, 1, "nothing compacted");
    cr_assert(own_base(&br, "items", "i2") &&
              !has_base_entry(&br, "items", "i2"));
    cr_assert_eq(base_int(&br, "items", "i2", "x", &same), 22);
    cr_assert(same);
    /* and a rebuild from that base and what the log still holds gives
     * the same record */
    declare("items", NULL, NULL, BS_POLICY_PRIORITY);
    carry(&head, &br);
    cr_assert(holds(&br, "items", "i2", "\"x\":22"));
    same_scope("after compaction");
}

/* A seed carries deleted records too, each its own base; purging such a
 * tombstone (purge.h) keeps its base, as it keeps a "snp:" entry. */
Test(movein, a_purged_seeded_tombstone_keeps_its_base)
{
    uint8_t key[BS_RECKEY_MAX];
    bs_purge_stats st;
    bs_errbuf err = {{0}};
    bs_slice v;
    bs_txn *tx;
    bs_err rv;

    put(&head, "items", "gone", "{\"x\":7}");
    put(&head, "items", "gone", NULL);
    seed();
    cr_assert(own_base(&br, "items", "gone"));
    ch.ms += 2 * DAY_MS;
    cr.ms = cb.ms = ch.ms;
    carry(&br, &head);
    carry(&head, &br); /* br holds the hub's acknowledgement */
    br.core.retention_ms = 3600000;
    rv = bs_purge_run(&br.core, &st, &err);
    br.core.retention_ms = head.core.retention_ms;
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(st.purged, 1);
    bst_ok(bs_store_read(br.n->store, &tx, &err), &err, "read");
    rv = bs_txn_get(tx, BS_DB_RECORDS,
                    bs_mem(key, bs_record_key(key, "items", "gone")), &v);
    bs_txn_abort(tx);
    cr_assert_eq(rv, BS_ENOTFOUND, "not purged");
    cr_assert(has_base_entry(&br, "items", "gone"), "the base went with it");
}
