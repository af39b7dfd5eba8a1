/*
 * test_changes.c - the change index (replication/changes.h): local puts
 * and deletes, replicated changes and rebuilt records each append one
 * entry in apply order, in the write's own transaction; a write that
 * changes nothing and a replayed set append none; reading resumes after
 * any seq, filters by collection and stops at a limit; verify reports an
 * entry that does not decode.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../../replication/changes.h"
#include "../../replication/rebuild.h"
#include "../../replication/streams.h"
#include "../../replication/verify.h"
#include "../lib/damage.h"
#include "../lib/fixture.h"

static char root[128];
static bst_clock clk = {1796606100000ull, 1};
static bst_node head, branch;

static void
setup(void)
{
    bs_clock c;

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "changes");
    c = bst_clock_of(&clk);
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &c);
    bst_node_new(&branch, root, "tallinn", BS_ROLE_BRANCH, &c);
}

static void
teardown(void)
{
    bst_node_free(&branch);
    bst_node_free(&head);
    bst_rmtree(root);
    bst_leak_check("test_changes");
}

TestSuite(changes, .init = setup, .fini = teardown, .timeout = 60);

#define MAXE 32

/* The entries read from a node, copied. */
typedef struct got {
    size_t n;
    uint64_t last;
    struct {
        uint64_t seq, hlc;
        char coll[80], id[80];
        int deleted;
        uint32_t stream;
        uint8_t origin[BS_PK_LEN]; /* zero for no stream */
    } e[MAXE];
    bs_streamtab *tab;
} got;

static int
take(const bs_change_entry *e, void *arg)
{
    got *g = arg;
    const bs_stream *s;

    cr_assert_lt(g->n, MAXE);
    g->e[g->n].seq = e->seq;
    g->e[g->n].hlc = e->hlc;
    snprintf(g->e[g->n].coll, 80, "%.*s", (int)e->colllen, e->coll);
    snprintf(g->e[g->n].id, 80, "%.*s", (int)e->idlen, e->id);
    g->e[g->n].deleted = e->deleted;
    g->e[g->n].stream = e->stream;
    memset(g->e[g->n].origin, 0, BS_PK_LEN);
    if ((s = bs_streams_get(g->tab, e->stream)) != NULL)
        memcpy(g->e[g->n].origin, s->key, BS_PK_LEN);
    g->n++;
    return 0;
}

static void
read_changes(bst_node *t, uint64_t since, const char *coll, uint64_t limit,
             got *g)
{
    bs_errbuf err = {{0}};
    bs_streamtab tab;
    bs_txn *tx;

    memset(g, 0, sizeof *g);
    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    cr_assert_eq(bs_streams_load(tx, &tab), BS_OK);
    g->tab = &tab;
    cr_assert_eq(bs_changes_scan(tx, since, coll, limit, take, g, &g->last),
                 BS_OK);
    g->tab = NULL;
    bs_streams_fini(&tab);
    bs_txn_abort(tx);
}

static uint64_t
last_seq(bst_node *t)
{
    bs_errbuf err = {{0}};
    uint64_t seq;
    bs_txn *tx;

    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    cr_assert_eq(bs_changes_last(tx, &seq), BS_OK);
    bs_txn_abort(tx);
    return seq;
}

static void
put(bst_node *t, const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, coll, id, json, &err);

    cr_assert_eq(rv, BS_OK, "put %s/%s: %s", coll, id, bs_errmsg(&err, rv));
}

static void
del(bst_node *t, const char *coll, const char *id)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_del(t, coll, id, &err);

    cr_assert_eq(rv, BS_OK, "del %s/%s: %s", coll, id, bs_errmsg(&err, rv));
}

static void
is_entry(const got *g, size_t i, uint64_t seq, const char *coll, const char *id,
         int deleted)
{
    cr_assert_lt(i, g->n, "entry %zu of %zu", i, g->n);
    cr_assert_eq(g->e[i].seq, seq, "entry %zu: seq", i);
    cr_assert_str_eq(g->e[i].coll, coll, "entry %zu", i);
    cr_assert_str_eq(g->e[i].id, id, "entry %zu", i);
    cr_assert_eq(g->e[i].deleted, deleted, "entry %zu: deleted", i);
}

Test(changes, local_writes_are_listed_in_apply_order)
{
    bs_meta m = bst_meta(&head);
    got g;

    cr_assert_eq(last_seq(&head), 0);
    put(&head, "customers", "c2", "{\"n\":1}");
    put(&head, "customers", "c1", "{\"n\":2}");
    del(&head, "customers", "c2");
    put(&head, "orders", "o1", "{\"total\":5}");
    put(&head, "customers", "c1", "{\"n\":2}"); /* changes nothing */
    read_changes(&head, 0, NULL, 0, &g);
    cr_assert_eq(g.n, 4);
    is_entry(&g, 0, 1, "customers", "c2", 0);
    is_entry(&g, 1, 2, "customers", "c1", 0);
    is_entry(&g, 2, 3, "customers", "c2", 1);
    is_entry(&g, 3, 4, "orders", "o1", 0);
    for (size_t i = 0; i < g.n; i++) {
        cr_assert_eq(g.e[i].stream, m.stream, "entry %zu: own stream", i);
        cr_assert_eq(memcmp(g.e[i].origin, m.pk, BS_PK_LEN), 0);
        cr_assert(i == 0 || g.e[i].hlc > g.e[i - 1].hlc, "hlc grows");
    }
    cr_assert_eq(g.last, 4);
    cr_assert_eq(last_seq(&head), 4);
}

Test(changes, reading_resumes_after_since_and_filters_and_pages)
{
    got g;

    put(&head, "a", "1", "{\"v\":1}");
    put(&head, "b", "1", "{\"v\":1}");
    put(&head, "a", "2", "{\"v\":1}");
    put(&head, "b", "2", "{\"v\":1}");
    put(&head, "a", "3", "{\"v\":1}");

    read_changes(&head, 3, NULL, 0, &g);
    cr_assert_eq(g.n, 2);
    is_entry(&g, 0, 4, "b", "2", 0);
    is_entry(&g, 1, 5, "a", "3", 0);
    cr_assert_eq(g.last, 5);

    /* a collection alone; last names the last entry examined */
    read_changes(&head, 0, "b", 0, &g);
    cr_assert_eq(g.n, 2);
    is_entry(&g, 0, 2, "b", "1", 0);
    is_entry(&g, 1, 4, "b", "2", 0);
    cr_assert_eq(g.last, 5, "a reader of b resumes past a/3 too");

    /* a limit stops at the last entry taken: resume from there */
    read_changes(&head, 0, "a", 2, &g);
    cr_assert_eq(g.n, 2);
    is_entry(&g, 1, 3, "a", "2", 0);
    cr_assert_eq(g.last, 3);
    read_changes(&head, g.last, "a", 2, &g);
    cr_assert_eq(g.n, 1);
    is_entry(&g, 0, 5, "a", "3", 0);

    /* nothing after the end */
    read_changes(&head, 5, NULL, 0, &g);
    cr_assert_eq(g.n, 0);
    cr_assert_eq(g.last, 5);
    read_changes(&head, 99, NULL, 0, &g);
    cr_assert_eq(g.n, 0);
    cr_assert_eq(g.last, 99);
}

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "carry %s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

Test(changes, replicated_changes_are_listed_with_their_origin_once)
{
    bs_meta hm = bst_meta(&head), bm;
    uint64_t before;
    got g;

    bst_pair2(&head, &branch);
    put(&head, "customers", "c1", "{\"n\":1}");
    put(&head, "customers", "c2", "{\"n\":2}");
    del(&head, "customers", "c1");
    carry(&head, &branch);
    read_changes(&branch, 0, "customers", 0, &g);
    cr_assert_eq(g.n, 3, "got %zu", g.n);
    /* c1 was new at the branch when its put applied, then deleted */
    is_entry(&g, 0, g.e[0].seq, "customers", "c1", 0);
    is_entry(&g, 1, g.e[0].seq + 1, "customers", "c2", 0);
    is_entry(&g, 2, g.e[0].seq + 2, "customers", "c1", 1);
    for (size_t i = 0; i < g.n; i++)
        cr_assert_eq(memcmp(g.e[i].origin, hm.pk, BS_PK_LEN), 0,
                     "entry %zu names the head office", i);

    /* the branch's own write, then the same sets again: nothing new */
    put(&branch, "customers", "c3", "{\"n\":3}");
    bm = bst_meta(&branch);
    before = last_seq(&branch);
    read_changes(&branch, before - 1, NULL, 0, &g);
    cr_assert_eq(g.n, 1);
    cr_assert_eq(g.e[0].stream, bm.stream);
    carry(&head, &branch);
    cr_assert_eq(last_seq(&branch), before, "a replay adds no entry");

    /* and the branch's write reaches the head office's index */
    before = last_seq(&head);
    carry(&branch, &head);
    read_changes(&head, before, "customers", 0, &g);
    cr_assert_eq(g.n, 1);
    is_entry(&g, 0, before + 1, "customers", "c3", 0);
    cr_assert_eq(memcmp(g.e[0].origin, bm.pk, BS_PK_LEN), 0);
}

typedef struct rebuild_arg {
    bs_meta m;
    const char *id;
} rebuild_arg;

static bs_err
rebuild_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    rebuild_arg *a = arg;
    bs_rebuild_stats st;

    (void)err;
    return bs_rebuild_record(t, &a->m, "customers", a->id, &st);
}

static void
rebuild(bst_node *t, const char *id)
{
    rebuild_arg a = {bst_meta(t), id};
    bs_errbuf err = {{0}};

    bst_ok(bs_store_write(t->n->store, rebuild_txn, &a, &err), &err, "rebuild");
}

/* The stored bytes of customers/id (malloc'd). */
static uint8_t *
stored(bst_node *t, const char *id, size_t *n)
{
    uint8_t key[BS_RECKEY_MAX], *out;
    bs_errbuf err = {{0}};
    bs_slice v;
    bs_txn *tx;

    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    cr_assert_eq(bs_txn_get(tx, BS_DB_RECORDS,
                            bs_mem(key, bs_record_key(key, "customers", id)),
                            &v),
                 BS_OK);
    out = malloc(v.n);
    cr_assert_not_null(out);
    memcpy(out, v.p, v.n);
    *n = v.n;
    bs_txn_abort(tx);
    return out;
}

Test(changes, a_rebuilt_record_is_listed_only_when_it_changes)
{
    uint8_t key[BS_RECKEY_MAX], *old;
    size_t n;
    got g;

    put(&head, "customers", "c1", "{\"n\":1}");
    old = stored(&head, "c1", &n);
    put(&head, "customers", "c1", "{\"n\":2}");
    read_changes(&head, 0, NULL, 0, &g);
    cr_assert_eq(g.n, 2);

    /* rebuilt as it is stored: no entry */
    rebuild(&head, "c1");
    cr_assert_eq(last_seq(&head), 2);

    /* the stored record is the older state: the rebuild writes the log's
     * latest, and the feed sees it with that version */
    bst_damage(head.n->store, BST_RECORDS,
               bs_mem(key, bs_record_key(key, "customers", "c1")),
               bs_mem(old, n));
    free(old);
    rebuild(&head, "c1");
    read_changes(&head, 2, NULL, 0, &g);
    cr_assert_eq(g.n, 1);
    is_entry(&g, 0, 3, "customers", "c1", 0);
    read_changes(&head, 0, NULL, 0, &g);
    cr_assert_eq(g.e[2].hlc, g.e[1].hlc,
                 "the rebuilt state's version is the second put's");
    cr_assert_eq(g.e[2].stream, g.e[1].stream);
    {
        char *j = bst_get(&head, "customers", "c1");
        cr_assert_not_null(j);
        cr_assert_not_null(strstr(j, "\"n\":2"), "%s", j);
        free(j);
    }
}

static int
count_finding(void *ctx, const char *finding)
{
    int *n = ctx;

    if (strstr(finding, "change index: entry") != NULL)
        (*n)++;
    return 0;
}

Test(changes, verify_reports_an_entry_that_does_not_decode)
{
    uint8_t key[8], junk[3] = {7, 7, 7};
    bs_verify_opts o = {count_finding, NULL};
    bs_verify_stats st;
    bs_errbuf err = {{0}};
    bs_change_entry e;
    bs_txn *tx;
    int found = 0;

    put(&head, "customers", "c1", "{\"n\":1}");
    cr_assert_eq(bs_changes_decode(bs_mem(key, 7), bs_mem(junk, 3), &e),
                 BS_ESTORE);
    o.ctx = &found;
    bst_ok(bs_store_read(head.n->store, &tx, &err), &err, "read");
    cr_assert_eq(bs_verify_store(tx, &o, &st, &err), BS_OK);
    bs_txn_abort(tx);
    cr_assert_eq(found, 0, "a sound index has no finding");
    bs_put_u64be(key, 2);
    bst_damage(head.n->store, BST_CHANGES, bs_mem(key, 8), bs_mem(junk, 3));
    bst_ok(bs_store_read(head.n->store, &tx, &err), &err, "read");
    cr_assert_eq(bs_verify_store(tx, &o, &st, &err), BS_ESTORE);
    bs_txn_abort(tx);
    cr_assert_eq(found, 1);
}
