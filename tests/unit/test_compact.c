/*
 * test_compact.c - log compaction (issue 12 item 5; replication/compact.h).
 *
 * Sets every peer acknowledged and older than the retention limit leave
 * the log; a stream's last set, system sets, and sets a peer has not
 * acknowledged stay; the data does not change; a peer that needs a
 * dropped set is told to be seeded (BS_ESTALE), by file and by session,
 * and is then seeded.  Fork detection after compaction is in test_admit
 * (a6_a_forged_old_set_is_a_fork_after_compaction).  The wall clock is a
 * fake one the tests move ahead.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../replication/compact.h"
#include "../../replication/movein.h"
#include "../../replication/purge.h"
#include "../lib/fixture.h"

#define DAY_MS 86400000ull

static char root[128];
static bst_node hub, br, late;
static int has_late;
static bst_clock clock_ms = {1767225600000ull, 1};

static void
put(bst_node *t, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = json ? bst_put(t, "items", id, json, &err)
                     : bst_del(t, "items", id, &err);

    cr_assert_eq(rv, BS_OK, "%s %s: %s", t->name, id, bs_errmsg(&err, rv));
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
setup(void)
{
    bs_clock c = bst_clock_of(&clock_ms);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    clock_ms.ms = 1767225600000ull;
    has_late = 0;
    bst_root(root, sizeof root, "compact");
    bst_node_new(&hub, root, "head", BS_ROLE_HUB, &c);
    bst_node_new(&br, root, "tallinn", BS_ROLE_BRANCH, &c);
    bst_pair2(&hub, &br);
}

static void
teardown(void)
{
    bst_node_free(&hub);
    bst_node_free(&br);
    if (has_late)
        bst_node_free(&late);
    bst_rmtree(root);
    bst_leak_check("test_compact");
}

TestSuite(compact, .init = setup, .fini = teardown, .timeout = 60);

static bs_compact_stats
compact(bst_node *t, int dry)
{
    bs_compact_stats st;
    bs_errbuf err = {{0}};
    bs_err rv = bs_compact_run(&t->core, dry, &st, &err);

    cr_assert_eq(rv, BS_OK, "compact at %s: %s", t->name, bs_errmsg(&err, rv));
    return st;
}

static bs_logsize
logsize(bst_node *t)
{
    bs_errbuf err = {{0}};
    bs_logsize ls;
    bs_txn *tx;

    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    cr_assert_eq(bs_compact_logsize(tx, &ls), BS_OK);
    bs_txn_abort(tx);
    return ls;
}

/*
 * The hub's history, with a limit of 10 days: four user sets and the
 * branch's three, acknowledged both ways; a fifth hub set; six days later
 * the branch's exchange (before it receives the fifth: its vector lacks
 * it) and the hub's answer; six days later again (the first sets are now
 * past the limit, the peers are not) a sixth hub set.
 */
static void
history(void)
{
    hub.core.retention_ms = br.core.retention_ms = 10 * DAY_MS;
    put(&hub, "h1", "{\"v\":1}");
    put(&hub, "h2", "{\"v\":2}");
    put(&hub, "h3", "{\"v\":3}");
    put(&hub, "h4", "{\"v\":4}");
    carry(&hub, &br);
    put(&br, "b1", "{\"v\":1}");
    put(&br, "b2", "{\"v\":2}");
    put(&br, "h1", "{\"w\":\"branch\"}");
    carry(&br, &hub);
    carry(&hub, &br); /* the branch hears that the hub has its sets */
    put(&hub, "h5", "{\"v\":5}"); /* not acknowledged by the branch */
    clock_ms.ms += 6 * DAY_MS;
    carry(&br, &hub); /* its vector lacks h5 */
    carry(&hub, &br);
    clock_ms.ms += 6 * DAY_MS;
    put(&hub, "h6", "{\"v\":6}"); /* too recent */
}

Test(compact, drops_exactly_the_sets_every_peer_acknowledged_past_the_limit)
{
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN], fp[BS_HASH_LEN],
        fp2[BS_HASH_LEN];
    bst_counts c0, c1;
    bs_compact_stats dry, st;
    bs_logsize ls0, ls1;
    uint64_t n0, n1;

    history();
    bst_count(&hub, &c0);
    bst_digest(&hub, before, &n0);
    ls0 = logsize(&hub);
    cr_assert_eq(ls0.sets, c0.sets);
    cr_assert(ls0.bytes > 0 && ls0.oldest_ms > 0);
    /* a dry run counts and writes nothing */
    bst_fingerprint(&hub, fp);
    dry = compact(&hub, 1);
    bst_fingerprint(&hub, fp2);
    cr_assert(memcmp(fp, fp2, BS_HASH_LEN) == 0, "a dry run wrote");
    /* dropped: h1-h4 and the branch's first two (its third, the last of
     * its stream, stays); kept: the hub's system sets (pairing), h5 (the
     * branch has not acknowledged it), h6 (too recent) */
    st = compact(&hub, 0);
    cr_assert_eq(st.sets, 6, "dropped %llu sets", (unsigned long long)st.sets);
    cr_assert_eq(dry.sets, st.sets, "the dry run said %llu",
                 (unsigned long long)dry.sets);
    cr_assert_eq(dry.bytes, st.bytes);
    cr_assert_geq(st.held_by_peers, 1, "h5");
    bst_count(&hub, &c1);
    cr_assert_eq(c1.sets, c0.sets - 6);
    bst_digest(&hub, after, &n1);
    cr_assert(memcmp(before, after, BS_HASH_LEN) == 0 && n0 == n1,
              "compaction changed the data");
    ls1 = logsize(&hub);
    cr_assert_eq(ls1.sets, c1.sets);
    cr_assert_eq(ls1.compacted, 6);
    cr_assert_geq(ls1.oldest_ms, ls0.oldest_ms);
    /* again: nothing more */
    st = compact(&hub, 0);
    cr_assert_eq(st.sets, 0);
    /* the set the branch lacks still travels, and both converge */
    carry(&hub, &br);
    carry(&br, &hub);
    bst_digest(&br, after, &n1);
    cr_assert(memcmp(before, after, BS_HASH_LEN) == 0, "diverged");
    {
        char *h5 = bst_get(&br, "items", "h5");
        cr_assert_not_null(h5, "h5 was compacted before it was acknowledged");
        free(h5);
    }
}

Test(compact, a_set_a_peer_has_not_acknowledged_is_kept)
{
    bs_compact_stats st;

    hub.core.retention_ms = 10 * DAY_MS;
    put(&hub, "h1", "{\"v\":1}");
    put(&hub, "h2", "{\"v\":2}");
    clock_ms.ms += 5 * DAY_MS;
    carry(&br, &hub); /* heard from, without h1 and h2 */
    clock_ms.ms += 7 * DAY_MS;
    st = compact(&hub, 0); /* h1 and h2 are 12 days old */
    cr_assert_eq(st.sets, 0, "dropped %llu unacknowledged sets",
                 (unsigned long long)st.sets);
    cr_assert_geq(st.held_by_peers, 1);
    carry(&hub, &br);
    carry(&br, &hub); /* now acknowledged */
    st = compact(&hub, 0);
    cr_assert_geq(st.sets, 1);
}

/* The branch compacts too: the hub acknowledged its sets. */
Test(compact, a_branch_compacts_what_its_hub_acknowledged)
{
    bs_compact_stats st;

    history();
    carry(&hub, &br);
    carry(&br, &hub);
    st = compact(&br, 0);
    cr_assert_geq(st.sets, 2, "dropped %llu", (unsigned long long)st.sets);
    put(&br, "b3", "{\"v\":3}");
    carry(&br, &hub);
    carry(&hub, &br);
}

static bs_err
mark_for_seed(bs_txn *t, void *arg, bs_errbuf *err)
{
    (void)err;
    return bs_movein_seed_peer(t, arg);
}

/* A branch paired after compaction lacks sets nobody holds any more: it
 * is told to be seeded, never sent a log with a gap; then seeded. */
Test(compact, a_peer_that_needs_a_compacted_set_gets_the_reseed_answer)
{
    bs_clock c = bst_clock_of(&clock_ms);
    uint8_t dh[BS_HASH_LEN], dl[BS_HASH_LEN];
    bst_sync_result r;
    bs_errbuf err = {{0}};
    uint64_t nh, nl;
    bs_meta ml;
    bs_err rv;

    history();
    cr_assert_geq(compact(&hub, 0).sets, 1);
    bst_node_new(&late, root, "riga", BS_ROLE_BRANCH, &c);
    has_late = 1;
    bst_pair2(&hub, &late);
    rv = bst_carry(&hub, &late, NULL, &err);
    cr_assert_eq(rv, BS_ESTALE, "%s: %s", bs_strerror(rv), err.msg);
    cr_assert(strstr(err.msg, "riga lacks change sets this node compacted") !=
                  NULL,
              "%s", err.msg);
    cr_assert(strstr(err.msg, "peer seed") != NULL, "%s", err.msg);
    rv = bst_sync(&hub, &late, NULL, NULL, &r);
    cr_assert_neq(rv, BS_OK);
    cr_assert_eq(r.err_a, BS_ESTALE, "%s / %s", r.msg_a, r.msg_b);
    /* `peer seed riga`: the seed needs no compacted set */
    ml = bst_meta(&late);
    bst_ok(bs_store_write(hub.n->store, mark_for_seed, ml.pk, &err), &err,
           "peer seed");
    carry(&hub, &late);
    carry(&late, &hub);
    bst_digest(&hub, dh, &nh);
    bst_digest(&late, dl, &nl);
    cr_assert(memcmp(dh, dl, BS_HASH_LEN) == 0 && nh == nl,
              "the seeded branch holds %llu records, the hub %llu",
              (unsigned long long)nl, (unsigned long long)nh);
}

/* ---- a seeded simulation with compaction ---- */

/*
 * A hub and three branches, one hour per step: random writes (puts and
 * deletes on a small pool, so edits collide), random exchanges by file in
 * either direction, tombstone purges, and compaction at a random node,
 * with a two-day
 * retention limit that compaction reaches; a round of every branch with
 * the hub each day keeps everyone fresh, but for one branch in even
 * seeds, offline for three days and then seeded again.  Every exchange must
 * succeed (compaction never leaves a peer a gap), and after a final round every
 * node holds the same data.  BS_SEED=n runs seed n only; BS_SEEDS=n seeds
 * 1..n (default 12).
 */
#define SIM_BRANCHES 3
#define SIM_STEPS    240
#define AWAY_FROM    80
#define AWAY_TO      (AWAY_FROM + 72)

static uint64_t sim_rng;

static uint64_t
sim_next(void)
{
    sim_rng ^= sim_rng << 13;
    sim_rng ^= sim_rng >> 7;
    sim_rng ^= sim_rng << 17;
    return sim_rng;
}

static void
sim_carry(bst_node *from, bst_node *to, uint64_t seed, int step)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "seed %llu step %d: %s -> %s: %s",
                 (unsigned long long)seed, step, from->name, to->name,
                 bs_errmsg(&err, rv));
}

static uint64_t
sim_seed(uint64_t seed)
{
    static const char *names[SIM_BRANCHES] = {"riga", "tartu", "vilnius"};
    bs_clock c = bst_clock_of(&clock_ms);
    bst_node b[SIM_BRANCHES], *all[SIM_BRANCHES + 1];
    uint8_t dh[BS_HASH_LEN], d[BS_HASH_LEN];
    uint64_t nh, n, dropped = 0;
    char dir[200];

    /* in even seeds the first branch is offline for three days, past
     * the limit, and comes back by a re-seed */
    int away = seed % 2 == 0;

    sim_rng = seed * 0x9e3779b97f4a7c15ull + 1;
    snprintf(dir, sizeof dir, "%s/sim%llu", root, (unsigned long long)seed);
    cr_assert_eq(mkdir(dir, 0700), 0);
    all[0] = &hub;
    for (int i = 0; i < SIM_BRANCHES; i++) {
        bst_node_new(&b[i], dir, names[i], BS_ROLE_BRANCH, &c);
        bst_pair2(&hub, &b[i]);
        all[i + 1] = &b[i];
    }
    for (int i = 0; i <= SIM_BRANCHES; i++)
        all[i]->core.retention_ms = 2 * DAY_MS;
    for (int i = 0; i < SIM_BRANCHES; i++) /* join */
        sim_carry(&hub, &b[i], seed, -1);
    for (int step = 0; step < SIM_STEPS; step++) {
        uint64_t r = sim_next();
        bst_node *t = all[r % (SIM_BRANCHES + 1)];
        int k = (int)((r >> 8) % SIM_BRANCHES);

        int off = away && step >= AWAY_FROM && step < AWAY_TO;

        clock_ms.ms += 3600000;
        if (away && step == AWAY_TO) { /* back past the limit: re-seeded */
            bs_meta mb = bst_meta(&b[0]);
            bs_errbuf err = {{0}};
            bst_ok(bs_store_write(hub.n->store, mark_for_seed, mb.pk, &err),
                   &err, "peer seed");
            sim_carry(&hub, &b[0], seed, step);
            sim_carry(&b[0], &hub, seed, step);
            sim_carry(&hub, &b[0], seed, step);
        }
        if (off && k == 0 && ((r >> 16) % 6 == 2 || (r >> 16) % 6 == 3))
            continue; /* offline: no exchange */
        switch ((r >> 16) % 6) {
        case 0:
        case 1: { /* a write */
            char id[8], json[128];
            bs_errbuf err = {{0}};
            bs_err rv;
            snprintf(id, sizeof id, "r%llu",
                     (unsigned long long)((r >> 24) % 12));
            snprintf(json, sizeof json, "{\"v\":%llu,\"by\":\"%s\"}",
                     (unsigned long long)(r >> 40), t->name);
            if ((r >> 32) % 5 == 0) {
                rv = bst_del(t, "items", id, &err);
                if (rv == BS_ENOTFOUND)
                    rv = BS_OK;
            } else
                rv = bst_put(t, "items", id, json, &err);
            cr_assert_eq(rv, BS_OK, "seed %llu: %s", (unsigned long long)seed,
                         bs_errmsg(&err, rv));
            break;
        }
        case 2:
            sim_carry(&b[k], &hub, seed, step);
            break;
        case 3:
            sim_carry(&hub, &b[k], seed, step);
            break;
        case 4: { /* purge, which compaction must not upset */
            bs_purge_stats ps;
            bs_errbuf err = {{0}};
            cr_assert_eq(bs_purge_run(&t->core, &ps, &err), BS_OK, "%s",
                         err.msg);
            break;
        }
        default:
            dropped += compact(t, 0).sets;
            break;
        }
        if (step % 24 == 23) /* a daily round keeps everyone fresh */
            for (int i = off ? 1 : 0; i < SIM_BRANCHES; i++) {
                sim_carry(&b[i], &hub, seed, step);
                sim_carry(&hub, &b[i], seed, step);
            }
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < SIM_BRANCHES; i++) {
            sim_carry(&b[i], &hub, seed, SIM_STEPS);
            sim_carry(&hub, &b[i], seed, SIM_STEPS);
        }
    bst_digest(&hub, dh, &nh);
    for (int i = 0; i < SIM_BRANCHES; i++) {
        bst_digest(&b[i], d, &n);
        cr_assert(memcmp(d, dh, BS_HASH_LEN) == 0 && n == nh,
                  "seed %llu: %s holds %llu records, the hub %llu (rerun: "
                  "BS_SEED=%llu)",
                  (unsigned long long)seed, b[i].name, (unsigned long long)n,
                  (unsigned long long)nh, (unsigned long long)seed);
        bst_node_free(&b[i]);
    }
    return dropped;
}

Test(compact, a_seeded_simulation_with_compaction_converges, .timeout = 300)
{
    const char *one = getenv("BS_SEED"), *many = getenv("BS_SEEDS");
    uint64_t from = one ? strtoull(one, NULL, 10) : 1;
    uint64_t to = one ? from : many ? strtoull(many, NULL, 10) : 12;
    uint64_t dropped = 0;

    for (uint64_t seed = from; seed <= to; seed++) {
        /* a fresh hub per seed */
        bs_clock c = bst_clock_of(&clock_ms);
        char dir[200];

        if (seed != from) {
            bst_node_free(&hub);
            snprintf(dir, sizeof dir, "%s/hub%llu", root,
                     (unsigned long long)seed);
            cr_assert_eq(mkdir(dir, 0700), 0);
            bst_node_new(&hub, dir, "head", BS_ROLE_HUB, &c);
        }
        dropped += sim_seed(seed);
    }
    cr_assert(dropped > 0, "the simulation never compacted anything");
}

/* `verify` (and so `backup`, which runs it first) accepts a compacted log:
 * its gaps are the ones the stubs name, each set after one links to the
 * dropped set's header hash. */
#include "../../replication/verify.h"

Test(compact, verify_accepts_a_compacted_log)
{
    bs_verify_stats vs;
    bs_errbuf err = {{0}};
    bs_txn *t;
    bs_err rv;

    history();
    cr_assert_geq(compact(&hub, 0).sets, 1);
    cr_assert_geq(compact(&br, 0).sets, 0);
    for (int i = 0; i < 2; i++) {
        bst_node *n = i ? &br : &hub;
        bst_ok(bs_store_read(n->n->store, &t, &err), &err, "read");
        rv = bs_verify_store(t, NULL, &vs, &err);
        bs_txn_abort(t);
        cr_assert_eq(rv, BS_OK, "%s: %s", n->name, bs_errmsg(&err, rv));
    }
}
