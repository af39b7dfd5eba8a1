/*
 * test_scope_sim.c - scoped replication and verifiable omission under
 * random histories (issue 9 items 2 and 3): a head office and three
 * branches, each with its own clock, all paired with each other.  Per
 * seed, each of two collections is owner-scoped or shared at random (the
 * owner field "office"); the offices write and delete at random (a
 * record's ID names its owner, and every write names it in "office");
 * they exchange by file and over in-memory sessions along random links,
 * branch to branch included, some files lost; and relays censor at
 * random: a file with a change of some set left out, signed again by the
 * relay (of a set in summary form, protocol.md 2.10, a whole bucket; the
 * hub also writes several offices' records in one set).  A censored file
 * must be refused with the receiver's store
 * unchanged (or hold only sets the receiver already has).  After clean
 * rounds, per branch, the hub's data restricted to the branch's scope
 * equals the branch's data (in every seed, scope changes included:
 * move-in); no branch holds a record of a scoped collection that another
 * office owns (move-out); nothing stays held.  One seed in three also
 * changes scopes as it runs (below, run()).  Seeds run in
 * order; a failure names its seed: BS_SEED=n ./build/tests/test_scope_sim
 * (BS_SEEDS=n for more).
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/collections.h"
#include "../../replication/records.h"
#include "../../replication/scope.h"
#include "../../replication/rules.h"
#include "../../replication/setlog.h"
#include "branchsync.pb-c.h"

#define NODES 4
#define STEPS 140
#define NIDS  4
#define T0    1800000000000ull

static const char *const colls[] = {"orders", "items"};
static const char *const names[NODES] = {"head", "tallinn", "riga", "vilnius"};

typedef struct world {
    char root[128], file[200];
    bst_clock clk[NODES];
    bst_node n[NODES];
    int scoped[2], rules_change, changed;
    uint64_t rng, seed;
    unsigned writes, lost, censored, refused, sessions;
} world;

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
        return; /* the file never arrived */
    }
    rv = bst_carry(&w->n[from], &w->n[to], NULL, &err);
    cr_assert_eq(rv, BS_OK, "seed %llu: %s -> %s: %s",
                 (unsigned long long)w->seed, names[from], names[to],
                 bs_errmsg(&err, rv));
}

static void
session(world *w, int a, int b)
{
    bst_sync_result r;
    bs_err rv = bst_sync(&w->n[a], &w->n[b], NULL, NULL, &r);

    cr_assert_eq(rv, BS_OK, "seed %llu: session %s - %s: %s / %s",
                 (unsigned long long)w->seed, names[a], names[b], r.msg_a,
                 r.msg_b);
    cr_assert_eq(r.sa.refused + r.sb.refused, 0,
                 "seed %llu: session %s - %s refused sets: %s / %s",
                 (unsigned long long)w->seed, names[a], names[b], r.msg_a,
                 r.msg_b);
    w->sessions++;
}

/* A write at node i: ids "OWNER-k", every put naming OWNER in "office". */
static void
write_one(world *w, int i)
{
    int c = (int)below(w, 2);
    int owner = i == 0 ? 1 + (int)below(w, NODES - 1) : i;
    char id[32], json[96];
    bs_errbuf err = {{0}};
    bs_err rv;

    snprintf(id, sizeof id, "%s-%d", names[owner], (int)below(w, NIDS));
    if (below(w, 6) == 0) {
        rv = bst_del(&w->n[i], colls[c], id, &err);
        if (rv == BS_ENOTFOUND)
            return;
    } else {
        snprintf(json, sizeof json, "{\"office\":\"%s\",\"v%d\":%d}",
                 names[owner], (int)below(w, 3), (int)below(w, 100));
        rv = bst_put(&w->n[i], colls[c], id, json, &err);
    }
    cr_assert_eq(rv, BS_OK, "seed %llu: write at %s: %s",
                 (unsigned long long)w->seed, names[i], bs_errmsg(&err, rv));
    w->writes++;
}

/* A write of 2-5 records in one transaction, so one set: at the hub of
 * several offices' records, in both collections, which gives the set
 * several buckets (protocol.md 2.10) and a branch its summary form. */
static void
write_batch(world *w, int i)
{
    char ids[5][32], json[5][96];
    bst_op ops[5];
    size_t n = 2 + (size_t)below(w, 4);
    bs_errbuf err = {{0}};
    bs_err rv;

    for (size_t k = 0; k < n; k++) {
        int owner = i == 0 ? 1 + (int)below(w, NODES - 1) : i;
        snprintf(ids[k], sizeof ids[k], "%s-%d", names[owner],
                 (int)below(w, NIDS));
        snprintf(json[k], sizeof json[k], "{\"office\":\"%s\",\"b%d\":%d}",
                 names[owner], (int)below(w, 3), (int)below(w, 100));
        ops[k] = (bst_op){colls[below(w, 2)], ids[k], json[k]};
    }
    rv = bst_write(&w->n[i], ops, n, NULL, &err);
    cr_assert_eq(rv, BS_OK, "seed %llu: batch at %s: %s",
                 (unsigned long long)w->seed, names[i], bs_errmsg(&err, rv));
    w->writes += n;
}

/* ---- a censoring relay ---- */

/* How many carried buckets of summary forms were left out, all seeds. */
static unsigned buckets_censored;

/* The route of the change omit_one left out. */
static char dropped_coll[BS_COLLECTION_MAX + 1],
    dropped_owner[BS_NODE_NAME_MAX + 1], dropped_before[BS_NODE_NAME_MAX + 1];

/* A set in summary form with carried bucket `drop` (mod their number)
 * left out, re-encoded canonically (its summary and signature unchanged). */
static bs_slice
omit_bucket(bs_csview *v, size_t drop, int *did)
{
    const Bs__ChangeSet *in = v->pb_set;
    Bs__ChangeSet cs = BS__CHANGE_SET__INIT;
    ProtobufCBinaryData *kept = calloc(in->n_changes + 1, sizeof *kept);
    uint32_t *bk = calloc(in->n_buckets + 1, sizeof *bk);
    size_t next = 0, nc = 0, nb = 0;
    bs_slice out = {NULL, 0};
    uint8_t *p;

    drop %= in->n_buckets;
    for (size_t k = 0; k < in->n_buckets; k++) {
        uint32_t b = in->buckets[k];
        for (uint32_t j = 0; j < v->bucket_count[b]; j++, next++)
            if (k != drop)
                kept[nc++] = in->changes[next];
        if (k != drop) {
            bk[nb++] = b;
            continue;
        }
        *did = 1;
        buckets_censored++;
        snprintf(dropped_coll, sizeof dropped_coll, "%s", v->bucket_coll[b]);
        snprintf(dropped_owner, sizeof dropped_owner, "%s", v->bucket_owner[b]);
        snprintf(dropped_before, sizeof dropped_before, "%s",
                 v->bucket_before[b]);
    }
    cs.n_changes = nc;
    cs.changes = kept;
    cs.summary = in->summary;
    cs.summary_signature = in->summary_signature;
    cs.n_buckets = nb;
    cs.buckets = bk;
    if (nb > 0) /* the vector goes with a bucket (protocol.md 2.10) */
        cs.seen = in->seen;
    p = malloc(bs__change_set__get_packed_size(&cs) + 1);
    out.n = bs__change_set__pack(&cs, p);
    out.p = p;
    free(kept);
    free(bk);
    return out;
}

static bs_slice
omit_one(bs_slice set, size_t drop, int *did)
{
    Bs__ChangeSet cs = BS__CHANGE_SET__INIT;
    const Bs__ChangeSet *in;
    ProtobufCBinaryData *kept;
    uint32_t *om;
    size_t nc = 0, no = 0, present = 0;
    bs_csview *v;
    uint8_t *out;

    cr_assert_eq(bs_changeset_decode(set.p, set.n, &v, NULL), BS_OK);
    in = v->pb_set;
    if (v->summary_form) { /* a bucket is the unit of omission there */
        bs_slice cut = {set.p, set.n};
        if (in->n_buckets > 0)
            cut = omit_bucket(v, drop, did);
        bs_changeset_free(v);
        return cut;
    }
    for (size_t i = 0; i < v->count; i++)
        present += v->present[i];
    drop = present > 0 ? drop % present : 0;
    present = 0;
    kept = calloc(v->count + 1, sizeof *kept);
    om = calloc(v->count + 1, sizeof *om);
    for (size_t i = 0; i < v->count; i++) {
        int keep = v->present[i] && present++ != drop;
        if (v->present[i] && !keep) {
            *did = 1;
            snprintf(dropped_coll, sizeof dropped_coll, "%s",
                     v->route_coll ? v->route_coll[i] : "");
            snprintf(dropped_owner, sizeof dropped_owner, "%s",
                     v->route_owner ? v->route_owner[i] : "");
            snprintf(dropped_before, sizeof dropped_before, "%s",
                     v->route_before ? v->route_before[i] : "");
        }
        if (keep)
            kept[nc++] = (ProtobufCBinaryData){v->changes[i].n,
                                               (uint8_t *)v->changes[i].p};
        else
            om[no++] = (uint32_t)i;
    }
    cs.header = in->header;
    cs.signature = in->signature;
    cs.n_changes = nc;
    cs.changes = kept;
    cs.n_omitted = no;
    cs.omitted = om;
    out = malloc(bs__change_set__get_packed_size(&cs) + 1);
    set.n = bs__change_set__pack(&cs, out);
    set.p = out;
    free(kept);
    free(om);
    bs_changeset_free(v);
    return set;
}

static void
frame(FILE *f, uint8_t type, bs_slice body, bs_hash_state *h)
{
    uint8_t hd[5];

    hd[0] = type;
    bs_put_u32be(hd + 1, (uint32_t)body.n);
    fwrite(hd, 1, 5, f);
    fwrite(body.p, 1, body.n, f);
    if (h != NULL) {
        bs_hash_update(h, hd, 5);
        bs_hash_update(h, body.p, body.n);
    }
}

/* The rules of coll node t held at hub stream inc position upto: the
 * latest version it holds up to there, else the defaults. */
static void
rules_at(bst_node *t, const char *coll, const uint8_t *inc, uint64_t upto,
         bs_collection *out)
{
    bs_rule_version v, best;
    bs_collection r;
    bs_txn *tx;
    bs_err rv;

    memset(out, 0, sizeof *out);
    memset(&v, 0, sizeof v);
    memset(&best, 0, sizeof best);
    cr_assert_eq(bs_store_read(t->core.store, &tx, NULL), BS_OK);
    while ((rv = bs_rules_next(tx, coll, &v, &r)) == BS_OK)
        if (memcmp(v.inc, inc, BS_INC_LEN) == 0 && v.seq <= upto &&
            v.hlc >= best.hlc) {
            best = v;
            *out = r;
        }
    cr_assert_eq(rv, BS_ENOTFOUND);
    bs_txn_abort(tx);
}

/* relay -> to: a file with one present change of one set left out.  It
 * must be refused (BS_EPERM, exit 2, store unchanged), unless the set was
 * one `to` holds already (a replay, A6 before A7o). */
static void
censor(world *w, int relay, int to)
{
    uint8_t tr[BS_HASH_LEN + BS_SIG_LEN], h8[8], *p, *msg;
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_meta mh = bst_meta(&w->n[0]);
    const uint8_t *hub_pk = mh.pk;
    uint64_t first = 0;
    int from_hub = 0;
    size_t len, cn = strlen(BS_FILE_CONTEXT) + 1, victim;
    bs_errbuf err = {{0}};
    uint64_t last = 0, pos;
    bs_hash_state h;
    bst_frames fr;
    bs_xstats st;
    bs_stream s;
    bs_csview *v;
    int did = 0;
    FILE *f;
    bs_err rv;

    bst_ok(bst_export(&w->n[relay], names[to], w->file, &err), &err, "export");
    p = bst_read_file(w->file, &len);
    cr_assert(bst_frames_split(p, len, &fr));
    if (fr.nsets == 0) {
        bst_frames_fini(&fr);
        free(p);
        return;
    }
    victim = (size_t)below(w, fr.nsets);
    f = fopen(w->file, "wb");
    cr_assert_not_null(f);
    bs_hash_init(&h);
    memcpy(h8, BS_FILE_MAGIC, 4);
    bs_put_u32be(h8 + 4, 1);
    fwrite(h8, 1, 8, f);
    bs_hash_update(&h, h8, 8);
    frame(f, 1, fr.env, &h);
    for (size_t i = 0; i < fr.nsets; i++) {
        bs_slice x = fr.sets[i];
        if (i == victim) {
            cr_assert_eq(bs_changeset_decode(x.p, x.n, &v, NULL), BS_OK);
            last = v->last;
            first = v->first;
            from_hub = memcmp(v->origin, hub_pk, BS_PK_LEN) == 0;
            pos = bst_stream(&w->n[to], v->origin, v->inc, &s) ? s.seq : 0;
            bs_changeset_free(v);
            x = omit_one(x, (size_t)rnd(w), &did);
        }
        frame(f, 2, x, &h);
        if (x.p != fr.sets[i].p)
            free((void *)x.p);
    }
    for (size_t i = 0; i < fr.nsnaps; i++)
        frame(f, 4, fr.snaps[i], &h);
    bs_hash_final(&h, tr);
    msg = malloc(cn + BS_HASH_LEN);
    memcpy(msg, BS_FILE_CONTEXT, cn);
    memcpy(msg + cn, tr, BS_HASH_LEN);
    crypto_sign_detached(tr + BS_HASH_LEN, NULL, msg, cn + BS_HASH_LEN,
                         w->n[relay].core.sk);
    free(msg);
    frame(f, 3, (bs_slice){tr, sizeof tr}, NULL);
    cr_assert_eq(fclose(f), 0);
    bst_frames_fini(&fr);
    free(p);
    if (!did)
        return; /* the set had fewer present changes: nothing censored */
    w->censored++;
    bst_fingerprint(&w->n[to], before);
    rv = bst_import(&w->n[to], w->file, &st, &err);
    if (rv == BS_OK) {
        /* a set it held already, or a change outside its scope by the
         * rules it held when it admitted the set: the hub's stream up to
         * the set (a hub set), or as far as the file brought it */
        bs_meta mt = bst_meta(&w->n[to]);
        bs_stream hs;
        bs_collection r;
        uint64_t upto;

        cr_assert(bst_stream(&w->n[to], mh.pk, mh.inc, &hs));
        upto = from_hub ? first - 1 : hs.seq;
        rules_at(&w->n[to], dropped_coll, mh.inc, upto, &r);
        cr_assert(pos >= last ||
                      !bs_scope_entitled(to == 0, mt.name, &r, dropped_coll,
                                         dropped_owner, dropped_before),
                  "seed %llu: %s accepted a censored set from %s (%s, "
                  "owner \"%s\", before \"%s\")",
                  (unsigned long long)w->seed, names[to], names[relay],
                  dropped_coll, dropped_owner, dropped_before);
        return;
    }
    cr_assert_eq(rv, BS_EPERM, "seed %llu: censored file at %s: %s: %s",
                 (unsigned long long)w->seed, names[to], bs_strerror(rv),
                 err.msg);
    bst_fingerprint(&w->n[to], after);
    cr_assert_eq(memcmp(before, after, BS_HASH_LEN), 0,
                 "seed %llu: the refused file changed %s's store",
                 (unsigned long long)w->seed, names[to]);
    w->refused++;
}

/* The hub makes a collection shared or owner-scoped (seeds with rule
 * changes only). */
static void
declare(world *w, int c, int scoped)
{
    bs_collection r;
    bs_errbuf err = {{0}};

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", colls[c]);
    r.scope = scoped ? BS_SCOPE_OWNER : BS_SCOPE_SHARED;
    snprintf(r.owner_field, sizeof r.owner_field, "office");
    r.set = BS_RULE_SCOPE | BS_RULE_OWNER_FIELD;
    bst_ok(bs_collections_declare(&w->n[0].core, &r, NULL, &err), &err,
           "declare");
    w->scoped[c] = scoped;
}

static void
step(world *w)
{
    unsigned k = (unsigned)below(w, 100);
    int a = (int)below(w, NODES), b = (int)below(w, NODES - 1);

    b = b >= a ? b + 1 : b; /* another node */
    for (int x = 0; x < NODES; x++)
        w->clk[x].ms += 500 + below(w, 40);
    if (w->rules_change && k < 4) {
        int c = (int)below(w, 2);
        declare(w, c, !w->scoped[c]);
        w->changed++;
    } else if (k < 37)
        write_one(w, a);
    else if (k < 45)
        write_batch(w, a);
    else if (k < 70)
        carry(w, a, b, 1);
    else if (k < 80)
        session(w, a, b);
    else
        censor(w, a, b);
}

/* No branch holds a record of a scoped collection another office owns. */
static void
only_own_records(world *w, int i)
{
    bs_txn *t;

    cr_assert_eq(bs_store_read(w->n[i].core.store, &t, NULL), BS_OK);
    for (int c = 0; c < 2; c++) {
        bs_records_iter *it;
        const bs_record *r;
        const char *id;
        size_t idlen;
        bs_err rv;

        if (!w->scoped[c])
            continue;
        cr_assert_eq(bs_records_iter_open(t, colls[c], NULL, NULL, &it), BS_OK);
        while ((rv = bs_records_iter_next(it, &id, &idlen, &r, NULL)) ==
               BS_OK) {
            size_t nl = strlen(names[i]);
            cr_assert(
                idlen > nl && memcmp(id, names[i], nl) == 0 && id[nl] == '-',
                "seed %llu: %s holds %s/%.*s", (unsigned long long)w->seed,
                names[i], colls[c], (int)idlen, id);
        }
        cr_assert_eq(rv, BS_ENOTFOUND);
        bs_records_iter_close(it);
    }
    bs_txn_abort(t);
}

static void
run(uint64_t seed)
{
    world w;

    memset(&w, 0, sizeof w);
    w.seed = seed;
    w.rng = seed * 0x9E3779B97F4A7C15ull + 7;
    bst_root(w.root, sizeof w.root, "scopesim");
    snprintf(w.file, sizeof w.file, "%s/censored.bsx", w.root);
    for (int i = 0; i < NODES; i++) {
        bs_clock c;

        w.clk[i].ms = T0 + below(&w, 20000);
        w.clk[i].step = 1;
        c = bst_clock_of(&w.clk[i]);
        bst_node_new(&w.n[i], w.root, names[i],
                     i == 0 ? BS_ROLE_HUB : BS_ROLE_BRANCH, &c);
    }
    for (int i = 1; i < NODES; i++)
        bst_pair2(&w.n[0], &w.n[i]);
    /* one seed in three changes scopes as it runs: records then enter or
     * leave a branch's scope.  Move-out (a collection that becomes
     * owner-scoped leaves each branch with its own records only) and
     * move-in (a collection that becomes shared again reaches each branch
     * whole, as record snapshots the branch asks its hub for; movein.h)
     * are both checked there: no record outside a branch's scope, and
     * convergence per scope (the digests) in every seed */
    w.rules_change = seed % 3 == 0;
    for (int c = 0; c < 2; c++)
        declare(&w, c, below(&w, 4) != 0);
    for (int i = 1; i < NODES; i++)
        carry(&w, 0, i, 0);
    for (int i = 1; i < NODES; i++)
        for (int j = i + 1; j < NODES; j++)
            bst_pair2(&w.n[i], &w.n[j]);
    for (int k = 0; k < STEPS; k++)
        step(&w);
    /* clean rounds: everyone hears from everyone through the hub */
    for (int round = 0; round < 3; round++)
        for (int i = 1; i < NODES; i++) {
            carry(&w, i, 0, 0);
            carry(&w, 0, i, 0);
        }
    for (int i = 1; i < NODES; i++) {
        bs_meta mh = bst_meta(&w.n[0]), mb = bst_meta(&w.n[i]);
        uint8_t dh[BS_HASH_LEN], db[BS_HASH_LEN];
        bs_errbuf err = {{0}};
        uint64_t nh, nb;
        bst_counts cnt;
        bs_txn *t;

        cr_assert_eq(bs_store_read(w.n[0].core.store, &t, NULL), BS_OK);
        bst_ok(bs_scope_digest(t, &mh, mb.pk, dh, &nh, &err), &err, "scope");
        bs_txn_abort(t);
        bst_digest(&w.n[i], db, &nb);
        bst_count(&w.n[i], &cnt);
        {
            uint64_t waiting = 0, refused = 0;
            bs_held h;

            cr_assert_eq(bs_store_read(w.n[i].core.store, &t, NULL), BS_OK);
            cr_assert_eq(bs_held_count(t, BS_HELD_WAITING, 0, 0, &waiting),
                         BS_OK);
            cr_assert_eq(bs_held_count(t, BS_HELD_REFUSED, 0, 0, &refused),
                         BS_OK);
            if (refused > 0 &&
                bs_held_next(t, BS_HELD_REFUSED, 0, 0, 0, &h) == BS_OK)
                cr_log_info("seed %llu: %s set aside a held set: %s",
                            (unsigned long long)seed, names[i], h.note);
            bs_txn_abort(t);
            cr_assert_eq(waiting, 0, "seed %llu: %s holds sets back",
                         (unsigned long long)seed, names[i]);
            cr_assert(refused == 0 || w.changed > 0,
                      "seed %llu: %s set aside %llu held sets",
                      (unsigned long long)seed, names[i],
                      (unsigned long long)refused);
        }
        only_own_records(&w, i); /* every seed: move-out */
        cr_assert(nh == nb && memcmp(dh, db, BS_HASH_LEN) == 0,
                  "seed %llu: %s's scope at the hub (%llu records) differs "
                  "from %s (%llu; BS_SEED=%llu)",
                  (unsigned long long)seed, names[i], (unsigned long long)nh,
                  names[i], (unsigned long long)nb, (unsigned long long)seed);
    }
    for (int i = 0; i < NODES; i++)
        bst_node_free(&w.n[i]);
    bst_rmtree(w.root);
    cr_log_info("seed %llu: scoped %d/%d, %u scope changes, %u writes, %u "
                "sessions, %u files lost, %u censored (%u refused)",
                (unsigned long long)seed, w.scoped[0], w.scoped[1], w.changed,
                w.writes, w.sessions, w.lost, w.censored, w.refused);
}

Test(scope_sim, seeds, .timeout = 900)
{
    const char *one = getenv("BS_SEED"), *many = getenv("BS_SEEDS");
    uint64_t from = 1, n = many ? strtoull(many, NULL, 10) : 20;

    cr_assert_eq(bs_crypto_init(), BS_OK);
    if (one != NULL) {
        from = strtoull(one, NULL, 10);
        n = 1;
    }
    for (uint64_t s = from; s < from + n; s++)
        run(s);
    /* the summary form's omission was tried (protocol.md 2.10) */
    if (one == NULL)
        cr_assert_gt(buckets_censored, 0,
                     "no summary form was censored in "
                     "%llu seeds",
                     (unsigned long long)n);
}
