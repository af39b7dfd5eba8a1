/*
 * test_unique.c - unique natural keys (replication/unique.h): the
 * duplicate conflict every node names alike, `merge`, the local refusal
 * and --force, declaring and dropping a key over existing data, and a
 * seeded convergence run (BS_SEED=N for one seed, BS_SEEDS=N for more).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/collections.h"
#include "../../replication/conflict.h"
#include "../../replication/json.h"
#include "../../replication/records.h"
#include "../../replication/unique.h"

static char root[128];
static bst_node hub, b1, b2;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "unique");
    bst_node_new(&hub, root, "hub", BS_ROLE_HUB, NULL);
    bst_node_new(&b1, root, "b1", BS_ROLE_BRANCH, NULL);
    bst_node_new(&b2, root, "b2", BS_ROLE_BRANCH, NULL);
    bst_pair2(&hub, &b1);
    bst_pair2(&hub, &b2);
}

static void
teardown(void)
{
    bst_node_free(&hub);
    bst_node_free(&b1);
    bst_node_free(&b2);
    bst_rmtree(root);
    bst_leak_check("test_unique");
}

TestSuite(unique, .init = setup, .fini = teardown, .timeout = 120);

static void
declare_unique(const char *field)
{
    bs_errbuf err = {{0}};
    bs_collection c;
    bs_err rv;

    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "customers");
    snprintf(c.unique, sizeof c.unique, "%s", field);
    c.set = BS_RULE_UNIQUE;
    rv = bs_collections_declare(&hub.core, &c, NULL, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

/* Everything everywhere: each branch to the hub, the hub to each. */
static void
round_trip(void)
{
    carry(&b1, &hub);
    carry(&b2, &hub);
    carry(&hub, &b1);
    carry(&hub, &b2);
}

static bs_err
put(bst_node *t, const char *id, const char *json, int force, bs_errbuf *err)
{
    bs_write w = {"customers", id, 0, NULL, 0, force ? BS_WRITE_FORCE : 0};
    const char *jid;
    bs_arena a;
    bs_err rv;

    bs_arena_init(&a);
    rv = bs_json_fields(json, strlen(json), &a, &jid, &w.fields, &w.nfields,
                        err);
    if (rv == BS_OK)
        rv = bs_records_write(&t->core, &w, 1, NULL, err);
    bs_arena_fini(&a);
    return rv;
}

static void
put_ok(bst_node *t, const char *id, const char *json, int force)
{
    bs_errbuf err = {{0}};
    bs_err rv = put(t, id, json, force, &err);

    cr_assert_eq(rv, BS_OK, "%s %s: %s", t->name, id, bs_errmsg(&err, rv));
}

/* The open (or all) duplicates at t as "lo|hi|cid" lines, sorted by the
 * register's key order, into out. */
static size_t
dups(bst_node *t, int all, char *out, size_t cap)
{
    bs_errbuf err = {{0}};
    const bs_conflict *c;
    bs_conflict_iter *it;
    size_t n = 0, len = 0;
    bs_txn *txn;
    bs_err rv;

    out[0] = '\0';
    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_conflict_iter_open(txn, all, &it), NULL, "conflicts");
    while ((rv = bs_conflict_iter_next(it, &c)) == BS_OK) {
        if (c->kind != BS_CONFLICT_DUPLICATE)
            continue;
        n++;
        len += (size_t)snprintf(out + len, cap - len, "%s|%s|%s|%s\n", c->rid,
                                c->other, c->id,
                                c->resolved ? c->resolution : "open");
        cr_assert_lt(len, cap);
    }
    cr_assert_eq(rv, BS_ENOTFOUND);
    bs_conflict_iter_close(it);
    bs_txn_abort(txn);
    return n;
}

Test(unique, two_offices_creating_one_key_get_one_duplicate_everywhere)
{
    char h[512], x[512], y[512];
    bs_conflict c;

    declare_unique("tax_code");
    round_trip();
    put_ok(&b1, "C1", "{\"name\":\"Acme\",\"tax_code\":\"7701\"}", 0);
    put_ok(&b2, "C2", "{\"name\":\"ACME Ltd\",\"tax_code\":\"7701\"}", 0);
    cr_assert_eq(dups(&b1, 1, x, sizeof x), 0, "no duplicate before: %s", x);
    round_trip();
    cr_assert_eq(dups(&hub, 0, h, sizeof h), 1, "hub: %s", h);
    cr_assert_eq(dups(&b1, 0, x, sizeof x), 1);
    cr_assert_eq(dups(&b2, 0, y, sizeof y), 1);
    cr_assert_str_eq(h, x, "the same duplicate, the same ID: %s vs %s", h, x);
    cr_assert_str_eq(h, y);
    cr_assert(strncmp(h, "C1|C2|", 6) == 0, "%s", h);
    /* listed with the field and the shared value */
    {
        char cid[BS_CONFLICT_ID_LEN + 1];
        memcpy(cid, h + 6, BS_CONFLICT_ID_LEN);
        cid[BS_CONFLICT_ID_LEN] = '\0';
        bst_conflict(&b2, cid, &c);
        cr_assert_str_eq(c.field, "tax_code");
        cr_assert_eq(c.side[0].val.type, BS_VTEXT);
        cr_assert_eq(c.side[0].val.len, 4);
        cr_assert(memcmp(c.side[0].val.s, "7701", 4) == 0);
        cr_assert_eq(c.resolved, 0);
        bs_conflict_fini(&c);
    }
}

Test(unique, merge_settles_the_duplicate_everywhere_and_leaves_a_pointer)
{
    uint8_t dh[BS_HASH_LEN], d1[BS_HASH_LEN], d2[BS_HASH_LEN];
    char h[512], x[512], into[BS_ID_MAX + 1];
    bs_errbuf err = {{0}};
    bs_txn *t;
    bs_err rv;

    declare_unique("tax_code");
    round_trip();
    put_ok(&b1, "C1", "{\"name\":\"Acme\",\"tax_code\":\"7701\"}", 0);
    put_ok(&b2, "C2", "{\"name\":\"ACME Ltd\",\"tax_code\":\"7701\"}", 0);
    round_trip();
    cr_assert_eq(dups(&b2, 0, x, sizeof x), 1);
    rv = bs_unique_merge(&b2.core, "customers", "C1", "C2", &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    /* settled at once where it was merged */
    cr_assert_eq(dups(&b2, 0, x, sizeof x), 0, "%s", x);
    round_trip();
    round_trip();
    cr_assert_eq(dups(&hub, 0, h, sizeof h), 0, "hub still open: %s", h);
    cr_assert_eq(dups(&b1, 0, x, sizeof x), 0, "b1 still open: %s", x);
    cr_assert_eq(dups(&b1, 1, x, sizeof x), 1);
    cr_assert(strstr(x, "merged into C1") != NULL, "%s", x);
    cr_assert_null(bst_get(&hub, "customers", "C2"));
    bst_ok(bs_store_read(hub.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_unique_merged_into(t, "customers", "C2", into), BS_OK);
    cr_assert_str_eq(into, "C1");
    cr_assert_eq(bs_unique_merged_into(t, "customers", "C1", into),
                 BS_ENOTFOUND);
    bs_txn_abort(t);
    bst_digest(&hub, dh, NULL);
    bst_digest(&b1, d1, NULL);
    bst_digest(&b2, d2, NULL);
    cr_assert(memcmp(dh, d1, sizeof dh) == 0 && memcmp(dh, d2, sizeof dh) == 0);
    /* merging needs two live, different records */
    cr_assert_eq(bs_unique_merge(&b1.core, "customers", "C1", "C2", &err),
                 BS_ENOTFOUND);
    cr_assert_eq(bs_unique_merge(&b1.core, "customers", "C1", "C1", &err),
                 BS_EINVAL);
}

Test(unique, a_local_write_repeating_a_known_key_is_refused_unless_forced)
{
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    char x[512];

    declare_unique("tax_code");
    put_ok(&hub, "C1", "{\"tax_code\":\"7701\"}", 0);
    put_ok(&hub, "C1", "{\"tax_code\":\"7701\",\"name\":\"again\"}", 0);
    put_ok(&hub, "E1", "{\"tax_code\":\"\"}", 0); /* empty: no key */
    put_ok(&hub, "E2", "{\"tax_code\":\"\"}", 0);
    put_ok(&hub, "N1", "{\"tax_code\":null}", 0);
    put_ok(&hub, "N2", "{\"tax_code\":null}", 0);
    put_ok(&hub, "I1", "{\"tax_code\":7701}", 0); /* a number is another */
    bst_fingerprint(&hub, before);
    cr_assert_eq(put(&hub, "C2", "{\"tax_code\":\"7701\"}", 0, &err),
                 BS_EEXIST);
    cr_assert(strstr(bs_errmsg(&err, BS_EEXIST), "customers/C1") != NULL, "%s",
              bs_errmsg(&err, BS_EEXIST));
    bst_fingerprint(&hub, after);
    cr_assert(memcmp(before, after, sizeof before) == 0, "nothing written");
    cr_assert_eq(dups(&hub, 1, x, sizeof x), 0);
    put_ok(&hub, "C2", "{\"tax_code\":\"7701\"}", 1);
    cr_assert_eq(dups(&hub, 0, x, sizeof x), 1, "%s", x);
}

Test(unique, declaring_over_existing_duplicates_finds_them_and_none_settles)
{
    char x[512];

    put_ok(&hub, "C1", "{\"tax_code\":\"1\"}", 0);
    put_ok(&hub, "C2", "{\"tax_code\":\"1\"}", 0);
    put_ok(&hub, "C3", "{\"tax_code\":\"1\"}", 0);
    put_ok(&hub, "C4", "{\"tax_code\":\"2\"}", 0);
    declare_unique("tax_code");
    cr_assert_eq(dups(&hub, 0, x, sizeof x), 3, "three pairs: %s", x);
    carry(&hub, &b1);
    {
        char y[512];
        cr_assert_eq(dups(&b1, 0, y, sizeof y), 3);
        cr_assert_str_eq(x, y);
    }
    declare_unique("");
    cr_assert_eq(dups(&hub, 0, x, sizeof x), 0);
    cr_assert_eq(dups(&hub, 1, x, sizeof x), 3);
    cr_assert(strstr(x, "the unique rule changed") != NULL, "%s", x);
    put_ok(&hub, "C5", "{\"tax_code\":\"2\"}", 0); /* no key: allowed */
    carry(&hub, &b1);
    cr_assert_eq(dups(&b1, 0, x, sizeof x), 0, "%s", x);
}

Test(unique, a_value_changing_settles_and_repeating_it_opens_the_same_again)
{
    char x[512], y[512];

    declare_unique("tax_code");
    put_ok(&hub, "C1", "{\"tax_code\":\"1\"}", 0);
    put_ok(&hub, "C2", "{\"tax_code\":\"1\"}", 1);
    cr_assert_eq(dups(&hub, 0, x, sizeof x), 1);
    put_ok(&hub, "C2", "{\"tax_code\":\"2\"}", 0);
    cr_assert_eq(dups(&hub, 0, y, sizeof y), 0);
    cr_assert_eq(dups(&hub, 1, y, sizeof y), 1);
    cr_assert(strstr(y, "the values differ now") != NULL, "%s", y);
    put_ok(&hub, "C2", "{\"tax_code\":\"1\"}", 1);
    cr_assert_eq(dups(&hub, 0, y, sizeof y), 1);
    cr_assert_str_eq(x, y, "the same conflict opens again");
    put_ok(&hub, "C3", "{\"tax_code\":\"1\"}", 1);
    cr_assert_eq(dups(&hub, 0, y, sizeof y), 3);
    {
        bs_errbuf err = {{0}};
        cr_assert_eq(bst_del(&hub, "customers", "C1", &err), BS_OK);
    }
    cr_assert_eq(dups(&hub, 0, y, sizeof y), 1, "C2 and C3 are left: %s", y);
    cr_assert(strncmp(y, "C2|C3|", 6) == 0, "%s", y);
}

/* ---- seeded convergence ---- */

static uint64_t rng;

static uint32_t
rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* The duplicates the records at t call for: "lo|hi" lines. */
static void
expected(bst_node *t, char *out, size_t cap)
{
    static const char *const keys[] = {"a", "b", "c"};
    char ids[16][8];
    int key[16], n = 0;
    size_t len = 0;

    for (int i = 0; i < 12; i++) {
        char id[8], *rec;
        snprintf(id, sizeof id, "r%02d", i);
        if ((rec = bst_get(t, "customers", id)) == NULL)
            continue;
        key[n] = -1;
        for (int k = 0; k < 3; k++) {
            char pat[32];
            snprintf(pat, sizeof pat, "\"k\":\"%s\"", keys[k]);
            if (strstr(rec, pat) != NULL)
                key[n] = k;
        }
        free(rec);
        snprintf(ids[n++], sizeof ids[0], "%s", id);
    }
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (key[i] >= 0 && key[i] == key[j])
                len += (size_t)snprintf(out + len, cap - len, "%s|%s\n", ids[i],
                                        ids[j]);
}

static int
line_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort s's lines in place. */
static void
sort_lines(char *s)
{
    char *v[256], buf[4096];
    size_t n = 0, len = 0;

    for (char *l = strtok(s, "\n"); l != NULL && n < 256;
         l = strtok(NULL, "\n"))
        v[n++] = l;
    qsort(v, n, sizeof v[0], line_cmp);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s\n", v[i]);
    strcpy(s, buf);
}

/* dups() lines cut to "lo|hi". */
static void
pairs_only(char *s)
{
    char *w = s;

    for (char *line = s; *line;) {
        char *nl = strchr(line, '\n'), *bar = strchr(line, '|');
        char *bar2 = bar ? strchr(bar + 1, '|') : NULL;
        size_t n = (size_t)(bar2 - line);
        memmove(w, line, n);
        w += n;
        *w++ = '\n';
        line = nl + 1;
    }
    *w = '\0';
}

static void
run_seed(uint64_t seed)
{
    static const char *const vals[] = {"\"a\"", "\"b\"", "\"c\"", "\"\"",
                                       "null"};
    bst_node *nodes[3] = {&hub, &b1, &b2};
    char want[4096], got[3][4096];
    uint8_t d[3][BS_HASH_LEN];

    rng = seed * 2654435761u + 1;
    declare_unique("k");
    round_trip();
    for (int step = 0; step < 60; step++) {
        bst_node *t = nodes[rnd(3)];
        char id[8], other[8], json[64];
        bs_errbuf err = {{0}};
        int op = (int)rnd(10);

        snprintf(id, sizeof id, "r%02u", rnd(12));
        if (op < 6) {
            snprintf(json, sizeof json, "{\"k\":%s,\"n\":%u}", vals[rnd(5)],
                     rnd(100));
            bs_err rv = put(t, id, json, 1, &err);
            cr_assert_eq(rv, BS_OK, "seed %llu step %d: %s",
                         (unsigned long long)seed, step, bs_errmsg(&err, rv));
        } else if (op == 6) {
            bs_err rv = bst_del(t, "customers", id, &err);
            cr_assert(rv == BS_OK || rv == BS_ENOTFOUND, "seed %llu: %s",
                      (unsigned long long)seed, bs_errmsg(&err, rv));
        } else if (op == 7) {
            snprintf(other, sizeof other, "r%02u", rnd(12));
            bs_err rv = bs_unique_merge(&t->core, "customers", id, other, &err);
            cr_assert(rv == BS_OK || rv == BS_ENOTFOUND || rv == BS_EINVAL,
                      "seed %llu: %s", (unsigned long long)seed,
                      bs_errmsg(&err, rv));
        } else {
            bst_node *b = rnd(2) ? &b1 : &b2;
            if (rnd(2))
                carry(b, &hub);
            else
                carry(&hub, b);
        }
    }
    round_trip();
    round_trip();
    expected(&hub, want, sizeof want);
    sort_lines(want);
    for (int i = 0; i < 3; i++) {
        dups(nodes[i], 0, got[i], sizeof got[i]);
        pairs_only(got[i]);
        sort_lines(got[i]);
        bst_digest(nodes[i], d[i], NULL);
        cr_assert_str_eq(got[i], want,
                         "seed %llu (rerun: BS_SEED=%llu): %s holds open "
                         "duplicates\n%s but its records call for\n%s",
                         (unsigned long long)seed, (unsigned long long)seed,
                         nodes[i]->name, got[i], want);
        cr_assert(memcmp(d[i], d[0], BS_HASH_LEN) == 0,
                  "seed %llu: %s's digest differs", (unsigned long long)seed,
                  nodes[i]->name);
    }
}

Test(unique, random_keys_converge_to_the_same_open_duplicates)
{
    const char *one = getenv("BS_SEED"), *many = getenv("BS_SEEDS");
    uint64_t first = one ? strtoull(one, NULL, 10) : 1;
    uint64_t n = one ? 1 : many ? strtoull(many, NULL, 10) : 1;

    /* one seed per fresh trio of nodes: setup() made the first */
    for (uint64_t s = first; s < first + n; s++) {
        if (s != first) {
            teardown();
            setup();
        }
        run_seed(s);
    }
}

Test(unique, random_keys_converge_seeds_2_to_12)
{
    for (uint64_t s = 2; s <= 12; s++) {
        if (s != 2) {
            teardown();
            setup();
        }
        run_seed(s);
    }
}
