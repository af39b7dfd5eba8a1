/*
 * test_rules_sim.c - access rules under random histories (issue 9 items 1
 * and 5): a head office and three branches, each with its own clock, write
 * at random to two collections whose rules the head office changes at
 * random (writers all, hub or owner, the owner field naming an office),
 * moves records between owners, and exchanges by file along random links
 * in random directions, some exchanges lost.  After clean rounds every
 * node must hold the same data (equal digests), nothing may stay held, and
 * no record may hold a field that a branch wrote while the rules governing
 * it said only the hub writes.  Now and then a branch's clock is set back
 * for a write (back-dating): the version its set's vector says it had
 * governs it all the same (rules.h).  Seeds run in order; a failure names its
 * seed: BS_SEED=n ./build/tests/test_rules_sim (BS_SEEDS=n for more).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/collections.h"
#include "../../replication/changeset.h"
#include "../../replication/records.h"
#include "../../replication/rules.h"
#include "../../replication/setlog.h"
#include "../../replication/streams.h"

#define NODES 4
#define STEPS 160
#define NIDS  6
#define T0    1800000000000ull

static const char *const colls[] = {"orders", "prices"};
static const char *const names[NODES] = {"head", "tallinn", "riga", "vilnius"};

typedef struct world {
    char root[128];
    bst_clock clk[NODES];
    bst_node n[NODES];
    uint64_t rng, seed;
    unsigned refused_local, writes, declared, lost, backdated;
} world;

static int verbose;
#define SAY(...)                                                               \
    do {                                                                       \
        if (verbose)                                                           \
            fprintf(stderr, __VA_ARGS__);                                      \
    } while (0)

static uint64_t
rnd(world *w)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 0x2545F4914F6CDD1Dull;
}

static uint64_t
below(world *w, uint64_t n)
{
    return rnd(w) % n;
}

static void
carry(world *w, int from, int to, int may_lose)
{
    bs_errbuf err = {{0}};
    bs_err rv;

    if (may_lose && below(w, 10) == 0) {
        w->lost++;
        SAY("lost %s -> %s\n", names[from], names[to]);
        return; /* the file never arrived */
    }
    SAY("carry %s -> %s\n", names[from], names[to]);
    rv = bst_carry(&w->n[from], &w->n[to], NULL, &err);
    cr_assert_eq(rv, BS_OK, "seed %llu: %s -> %s: %s (BS_SEED=%llu)",
                 (unsigned long long)w->seed, names[from], names[to],
                 bs_errmsg(&err, rv), (unsigned long long)w->seed);
}

static void
declare(world *w)
{
    bs_collection r;
    bs_errbuf err = {{0}};
    static const char *const writers[] = {"all", "hub", "owner"};
    bs_err rv;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", colls[below(w, 2)]);
    cr_assert_eq(bs_writers_parse(writers[below(w, 3)], &r.writers), BS_OK);
    /* now and then the owner in another field, or another policy */
    snprintf(r.owner_field, sizeof r.owner_field, "%s",
             below(w, 6) == 0 ? "site" : "office");
    r.set = BS_RULE_WRITERS | BS_RULE_OWNER_FIELD;
    if (below(w, 3) == 0) {
        r.policy = below(w, 2) ? BS_POLICY_PRIORITY : BS_POLICY_LWW;
        r.set |= BS_RULE_POLICY;
    }
    SAY("declare %s writers %s owner %s policy %s at %llu\n", r.name,
        bs_writers_name(r.writers), r.owner_field,
        r.set & BS_RULE_POLICY ? bs_policy_name(r.policy) : "-",
        (unsigned long long)w->clk[0].ms);
    rv = bs_collections_declare(&w->n[0].core, &r, NULL, &err);
    cr_assert_eq(rv, BS_OK, "seed %llu: declare: %s",
                 (unsigned long long)w->seed, bs_errmsg(&err, rv));
    w->declared++;
}

/* A write at node i: a value, sometimes naming an office as the owner. */
static void
write_one(world *w, int i)
{
    char id[16], json[96] = "(delete)";
    bs_errbuf err = {{0}};
    const char *coll = colls[below(w, 2)];
    uint64_t back = 0, now = 0;
    bs_err rv;

    snprintf(id, sizeof id, "r%d", (int)below(w, NIDS));
    if (i != 0 && below(w, 5) == 0) {
        /* a branch whose clock is set back stamps the write in the past,
         * maybe below rule versions it already holds (hlc.h drops the
         * memory of later stamps beyond the horizon) */
        back = 2000 + below(w, 40000);
        now = w->clk[i].ms;
        w->clk[i].ms -= back;
        w->n[i].core.max_skew_ms = 1000;
        w->backdated++;
    }
    if (below(w, 8) == 0 && i != 0) {
        rv = bst_del(&w->n[i], coll, id, &err);
    } else {
        unsigned k = (unsigned)below(w, 4);
        if (k == 0) /* name an office: itself mostly, the hub any */
            snprintf(
                json, sizeof json, "{\"office\":\"%s\",\"v%d\":%d}",
                names[i == 0 || below(w, 4) == 0 ? 1 + (int)below(w, 3) : i],
                (int)below(w, 3), (int)below(w, 100));
        else
            snprintf(json, sizeof json, "{\"v%d\":%d}", (int)below(w, 3),
                     (int)below(w, 100));
        rv = bst_put(&w->n[i], coll, id, json, &err);
    }
    if (back > 0) {
        w->clk[i].ms = now;
        w->n[i].core.max_skew_ms = 0;
    }
    SAY("%s %s/%s %s%s -> %s (%s)\n", names[i], coll, id, json,
        back ? " back-dated" : "", bs_strerror(rv), rv ? err.msg : "");
    if (rv == BS_EPERM || rv == BS_ENOTFOUND) {
        w->refused_local += rv == BS_EPERM;
        return;
    }
    cr_assert_eq(rv, BS_OK, "seed %llu: write at %s: %s",
                 (unsigned long long)w->seed, names[i], bs_errmsg(&err, rv));
    w->writes++;
}

static void
step(world *w)
{
    unsigned k = (unsigned)below(w, 100);
    int i = (int)below(w, NODES);

    /* time passes everywhere alike, and each clock drifts a little */
    for (int x = 0; x < NODES; x++)
        w->clk[x].ms += 500 + below(w, 40);
    if (k < 45) {
        write_one(w, i);
    } else if (k < 55) {
        declare(w);
    } else if (k < 95) {
        int b = 1 + (int)below(w, NODES - 1);
        if (below(w, 2))
            carry(w, 0, b, 1);
        else
            carry(w, b, 0, 1);
    } else {
        for (int x = 0; x < NODES; x++)
            w->clk[x].ms += 20000;
    }
}

/* The rules governing the write of version fv of coll: by its stamp and
 * by its set's vector (rules.h). */
static void
governing(bs_txn *t, const bs_meta *m, const char *coll, const bs_version *fv,
          bs_collection *rules)
{
    bs_slice set;
    bs_pos *seen = NULL;
    size_t nseen = 0;
    uint64_t first, last;

    cr_assert_eq(bs_setlog_find(t, fv->stream, fv->seq, &set, &first), BS_OK);
    cr_assert_eq(bs_changeset_stored_seen(set, &seen, &nseen, &first, &last),
                 BS_OK);
    cr_assert_eq(
        bs_rules_governing(t, coll, fv->hlc, m->hub, seen, nseen, rules, NULL),
        BS_OK);
    free(seen);
}

/* No field written by a branch while its governing rules said only the
 * hub writes. */
static void
hub_only_holds(world *w, int node)
{
    bs_meta m = bst_meta(&w->n[node]);
    bs_streamtab tab;
    bs_txn *t;

    cr_assert_eq(bs_store_read(w->n[node].core.store, &t, NULL), BS_OK);
    cr_assert_eq(bs_streams_load(t, &tab), BS_OK);
    for (size_t c = 0; c < 2; c++) {
        bs_records_iter *it;
        const bs_record *r;
        const char *id;
        size_t idlen;
        bs_err rv;

        cr_assert_eq(bs_records_iter_open(t, colls[c], NULL, NULL, &it), BS_OK);
        while ((rv = bs_records_iter_next(it, &id, &idlen, &r, NULL)) == BS_OK)
            for (size_t f = 0; f < r->nfields; f++) {
                const bs_stream *s =
                    bs_streams_get(&tab, r->fields[f].ver.stream);
                bs_collection rules;

                cr_assert_not_null(s);
                if (memcmp(s->key, m.hub, BS_PK_LEN) == 0)
                    continue;
                governing(t, &m, colls[c], &r->fields[f].ver, &rules);
                cr_assert_neq(rules.writers, BS_WRITERS_HUB,
                              "seed %llu: %s holds %s/%.*s field %s written "
                              "by a branch under writers=hub",
                              (unsigned long long)w->seed, names[node],
                              colls[c], (int)idlen, id, r->fields[f].name);
            }
        cr_assert_eq(rv, BS_ENOTFOUND);
        bs_records_iter_close(it);
    }
    bs_streams_fini(&tab);
    bs_txn_abort(t);
}

static void
run(uint64_t seed)
{
    world w;
    uint8_t d0[BS_HASH_LEN];
    uint64_t n0;

    memset(&w, 0, sizeof w);
    w.seed = seed;
    w.rng = seed * 0x9E3779B97F4A7C15ull + 1;
    bst_root(w.root, sizeof w.root, "rulesim");
    for (int i = 0; i < NODES; i++) {
        bs_clock c;

        w.clk[i].ms = T0 + below(&w, 20000);
        w.clk[i].step = 1;
        c = bst_clock_of(&w.clk[i]);
        bst_node_new(&w.n[i], w.root, names[i],
                     i == 0 ? BS_ROLE_HUB : BS_ROLE_BRANCH, &c);
    }
    for (int i = 1; i < NODES; i++) {
        bst_pair2(&w.n[0], &w.n[i]);
        carry(&w, 0, i, 0);
    }
    for (int k = 0; k < STEPS; k++)
        step(&w);
    /* a minute passes, more than the clocks differ, so no set stays held
     * for being stamped ahead of its receiver's clock (A12); then clean
     * rounds: everyone hears from everyone through the hub */
    for (int x = 0; x < NODES; x++)
        w.clk[x].ms += 60000;
    for (int round = 0; round < 3; round++)
        for (int i = 1; i < NODES; i++) {
            carry(&w, i, 0, 0);
            carry(&w, 0, i, 0);
        }
    for (int i = 1; i < NODES; i++)
        carry(&w, 0, i, 0);
    bst_digest(&w.n[0], d0, &n0);
    for (int i = 0; i < NODES; i++) {
        uint8_t d[BS_HASH_LEN];
        uint64_t n;
        bst_counts c;

        bst_digest(&w.n[i], d, &n);
        if (!(n == n0 && memcmp(d, d0, BS_HASH_LEN) == 0))
            for (int cc = 0; cc < 2; cc++)
                for (int k = 0; k < NIDS; k++) {
                    char rid[16], *a, *b;
                    snprintf(rid, sizeof rid, "r%d", k);
                    a = bst_get(&w.n[0], colls[cc], rid);
                    b = bst_get(&w.n[i], colls[cc], rid);
                    if ((a == NULL) != (b == NULL) ||
                        (a != NULL && strcmp(a, b) != 0)) {
                        fprintf(stderr, "%s/%s: head %s, %s %s\n", colls[cc],
                                rid, a ? a : "-", names[i], b ? b : "-");
                        for (int q = 0; q < 2; q++) {
                            bs_txn *tx;
                            bs_record rr;
                            bs_arena ar;
                            bst_node *nn = q ? &w.n[i] : &w.n[0];
                            bs_arena_init(&ar);
                            cr_assert_eq(
                                bs_store_read(nn->core.store, &tx, NULL),
                                BS_OK);
                            if (bs_records_get(tx, colls[cc], rid, &ar, &rr,
                                               NULL) == BS_OK)
                                for (size_t f = 0; f < rr.nfields; f++)
                                    fprintf(
                                        stderr,
                                        "  %s %s hlc=%llx seq=%llu stream=%u\n",
                                        names[q ? i : 0], rr.fields[f].name,
                                        (unsigned long long)rr.fields[f]
                                            .ver.hlc,
                                        (unsigned long long)rr.fields[f]
                                            .ver.seq,
                                        rr.fields[f].ver.stream);
                            bs_txn_abort(tx);
                            bs_arena_fini(&ar);
                        }
                    }
                    free(a);
                    free(b);
                }
        cr_assert(n == n0 && memcmp(d, d0, BS_HASH_LEN) == 0,
                  "seed %llu: %s differs from the hub (%llu / %llu records; "
                  "BS_SEED=%llu)",
                  (unsigned long long)seed, names[i], (unsigned long long)n,
                  (unsigned long long)n0, (unsigned long long)seed);
        bst_count(&w.n[i], &c);
        hub_only_holds(&w, i);
    }
    for (int i = 0; i < NODES; i++)
        bst_node_free(&w.n[i]);
    bst_rmtree(w.root);
    cr_log_info("seed %llu: %u writes (%u back-dated), %u refused up front, "
                "%u rule versions, %u files lost",
                (unsigned long long)seed, w.writes, w.backdated,
                w.refused_local, w.declared, w.lost);
}

Test(rules_sim, seeds, .timeout = 900)
{
    const char *one = getenv("BS_SEED"), *many = getenv("BS_SEEDS");
    uint64_t from = 1, n = many ? strtoull(many, NULL, 10) : 40;

    cr_assert_eq(bs_crypto_init(), BS_OK);
    verbose = getenv("BS_SIM_VERBOSE") != NULL;
    if (one != NULL) {
        from = strtoull(one, NULL, 10);
        n = 1;
    }
    for (uint64_t s = from; s < from + n; s++)
        run(s);
}
