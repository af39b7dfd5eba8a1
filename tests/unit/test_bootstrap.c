/*
 * test_bootstrap.c - snapshot bootstrap by exchange file (issue 12 item 3;
 * docs/design.md "Snapshot bootstrap"; bundle.h bs_bundle_export_seed,
 * admission rules A7s and A8s in admit.h).
 *
 * A head office with a history (a shared collection and an owner-scoped
 * one, updates and deletes, another branch's writes) seeds a branch that
 * has only been paired: the file carries the hub's system sets and one
 * anchor per stream with their user changes left out, then record
 * snapshots.  The seeded branch holds exactly what a full replay gives
 * (the same node, cloned, imports an ordinary export), its positions are
 * the hub's, and later writes of the hub, of the other branch and of its
 * own then travel as ordinary change sets.
 */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/collections.h"
#include "../../replication/scope.h"
#include "../../replication/snapshot.h"
#include "../../replication/movein.h"
#include "../../replication/prefetch.h"
#include "../../replication/status.h"
#include "../../replication/verify.h"
#include "branchsync.pb-c.h"

#define T0 1800000000000ull

static char root[128], path[300];
static bst_clock ch = {T0, 1}, cr = {T0, 1}, cb = {T0, 1};
static bst_node head, riga, br;

static void
carry(bst_node *from, bst_node *to, bs_xstats *st)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, st, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

static void
setup(void)
{
    bs_clock a = bst_clock_of(&ch), b = bst_clock_of(&cr),
             c = bst_clock_of(&cb);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch.ms = cr.ms = cb.ms = T0;
    bst_root(root, sizeof root, "bootstrap");
    snprintf(path, sizeof path, "%s/seed.bsx", root);
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &b);
    bst_node_new(&br, root, "br", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &riga);
    bst_pair2(&head, &br); /* br is only paired: it has never exchanged */
    carry(&riga, &head, NULL);
    carry(&head, &riga, NULL);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&riga);
    bst_node_free(&br);
    bst_rmtree(root);
    bst_leak_check("test_bootstrap");
}

TestSuite(bootstrap, .init = setup, .fini = teardown, .timeout = 120);

static void
declare(const char *coll, const char *scope, const char *owner_field)
{
    bs_collection r;
    bs_errbuf err = {{0}};
    bs_err rv;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", coll);
    cr_assert_eq(bs_scope_parse(scope, &r.scope), BS_OK);
    r.set = BS_RULE_SCOPE;
    if (owner_field != NULL) {
        snprintf(r.owner_field, sizeof r.owner_field, "%s", owner_field);
        r.set |= BS_RULE_OWNER_FIELD;
    }
    rv = bs_collections_declare(&head.core, &r, NULL, &err);
    cr_assert_eq(rv, BS_OK, "declare: %s", bs_errmsg(&err, rv));
}

static void
write_ok(bst_node *t, const bst_op *ops, size_t n)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_write(t, ops, n, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s: %s", t->name, bs_errmsg(&err, rv));
}

/* The hub's data restricted to b's scope, and b's data. */
static void
same_scope(bst_node *hub, bst_node *b, const char *what)
{
    bs_meta mh = bst_meta(hub), mb = bst_meta(b);
    uint8_t dh[BS_HASH_LEN], db[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    uint64_t nh, nb;
    bs_txn *t;

    bst_ok(bs_store_read(hub->n->store, &t, &err), &err, "read");
    bst_ok(bs_scope_digest(t, &mh, mb.pk, dh, &nh, &err), &err, "scope");
    bs_txn_abort(t);
    bst_digest(b, db, &nb);
    cr_assert(memcmp(dh, db, BS_HASH_LEN) == 0 && nh == nb,
              "%s: %s's scope at %s holds %llu records, %s holds %llu", what,
              b->name, hub->name, (unsigned long long)nh, b->name,
              (unsigned long long)nb);
}

static uint64_t
pos_of(bst_node *t, bst_node *origin)
{
    bs_meta m = bst_meta(origin);
    bs_stream s;

    if (!bst_stream(t, m.pk, m.inc, &s))
        return 0;
    return s.seq;
}

static int
has(bst_node *t, const char *coll, const char *id)
{
    char *s = bst_get(t, coll, id);

    free(s);
    return s != NULL;
}

static void
seed_export(bs_xstats *st)
{
    bs_errbuf err = {{0}};
    bs_err rv = bs_bundle_export_seed(head.n->store, head.core.sk, "br", path,
                                      bs_core_now(&head.core),
                                      head.core.retention_ms, st, &err);

    cr_assert_eq(rv, BS_OK, "export --seed: %s", bs_errmsg(&err, rv));
}

/* A history of 40 hub sets, 10 of riga, a rule version in the middle. */
static void
history(void)
{
    char id[32], json[96];

    for (int i = 0; i < 20; i++) {
        bst_op ops[3];
        char id2[32], id3[32], j2[96], j3[96];

        snprintf(id, sizeof id, "o%02d", i);
        snprintf(json, sizeof json, "{\"branch\":\"%s\",\"n\":%d}",
                 i % 3 == 0 ? "br" : "riga", i);
        snprintf(id2, sizeof id2, "i%02d", i);
        snprintf(j2, sizeof j2, "{\"x\":%d}", i);
        snprintf(id3, sizeof id3, "i%02d", i / 2); /* an update */
        snprintf(j3, sizeof j3, "{\"y\":%d}", i);
        ops[0] = (bst_op){"orders", id, json};
        ops[1] = (bst_op){"items", id2, j2};
        ops[2] = (bst_op){"items", id3, j3};
        write_ok(&head, ops, 3);
        if (i == 5)
            declare("orders", "owner", "branch");
        if (i % 4 == 1) { /* a delete */
            bst_op d = {"items", id3, NULL};
            write_ok(&head, &d, 1);
        }
        if (i % 2 == 0) {
            bst_op r = {"items", id, "{\"from\":\"riga\"}"};
            snprintf(id, sizeof id, "r%02d", i);
            write_ok(&riga, &r, 1);
        }
    }
    carry(&riga, &head, NULL);
}

/* The item 3 by file: the seed gives what the full replay gives,
 * in far fewer sets, and the log continues after it. */
Test(bootstrap, a_seeded_branch_equals_the_full_replay_and_then_continues)
{
    char cdir[300];
    bst_node clone;
    bs_xstats seed, full;
    bs_errbuf err = {{0}};
    bs_err rv;

    history();
    /* the full replay, into a clone of the fresh branch */
    snprintf(cdir, sizeof cdir, "%s/clone", root);
    bst_node_clone(&br, cdir, &clone);
    carry(&head, &clone, &full);
    cr_assert(full.sets > 30, "the full replay has %llu sets",
              (unsigned long long)full.sets);

    seed_export(&seed);
    cr_assert(seed.snapshots > 0);
    memset(&seed, 0, sizeof seed);
    rv = bst_import(&br, path, &seed, &err);
    cr_assert_eq(rv, BS_OK, "import of the seed: %s", bs_errmsg(&err, rv));
    cr_assert(seed.joined);
    cr_assert(seed.sets < full.sets / 4, "seeded with %llu sets, full %llu",
              (unsigned long long)seed.sets, (unsigned long long)full.sets);
    cr_assert(seed.snapshots > 0);

    same_scope(&head, &br, "seeded");
    same_scope(&head, &clone, "replayed");
    {
        uint8_t a[BS_HASH_LEN], b[BS_HASH_LEN];
        uint64_t na, nb;
        bst_digest(&br, a, &na);
        bst_digest(&clone, b, &nb);
        cr_assert(memcmp(a, b, BS_HASH_LEN) == 0 && na == nb);
    }
    cr_assert_eq(pos_of(&br, &head), pos_of(&head, &head));
    cr_assert_eq(pos_of(&br, &riga), pos_of(&head, &riga));
    bst_node_free(&clone);

    /* the log continues: the hub's, riga's and br's own later writes */
    {
        bst_op h[] = {{"orders", "late-br", "{\"branch\":\"br\"}"},
                      {"orders", "late-riga", "{\"branch\":\"riga\"}"},
                      {"items", "late", "{\"x\":1}"}};
        bst_op r = {"items", "late-r", "{\"x\":2}"};
        bst_op b = {"orders", "mine", "{\"branch\":\"br\"}"};

        write_ok(&head, h, 3);
        write_ok(&riga, &r, 1);
        write_ok(&br, &b, 1);
    }
    carry(&riga, &head, NULL);
    carry(&br, &head, NULL);
    carry(&head, &br, &full);
    cr_assert_eq(full.snapshots, 0);
    cr_assert_eq(full.refused + full.held + full.quarantined, 0);
    cr_assert(has(&br, "orders", "late-br") && has(&br, "items", "late") &&
              has(&br, "items", "late-r") && !has(&br, "orders", "late-riga"));
    cr_assert(has(&head, "orders", "mine"));
    same_scope(&head, &br, "after the seed");
    { /* `verify` (and so `backup`) accepts the seed's gaps (compact.h) */
        bs_verify_stats vs;
        bs_txn *t;
        bst_ok(bs_store_read(br.n->store, &t, &err), &err, "read");
        rv = bs_verify_store(t, NULL, &vs, &err);
        bs_txn_abort(t);
        cr_assert_eq(rv, BS_OK, "verify: %s", bs_errmsg(&err, rv));
    }
}

/* ---- refusals ---- */

static void
put_frame(FILE *f, uint8_t type, bs_slice body, bs_hash_state *h)
{
    uint8_t head5[5];

    head5[0] = type;
    bs_put_u32be(head5 + 1, (uint32_t)body.n);
    cr_assert_eq(fwrite(head5, 1, 5, f), 5);
    cr_assert_eq(fwrite(body.p, 1, body.n, f), body.n);
    if (h != NULL) {
        bs_hash_update(h, head5, 5);
        bs_hash_update(h, body.p, body.n);
    }
}

/* Set bytes with every change left out (the header and signature kept). */
static bs_slice
omit_all(bs_slice set)
{
    Bs__ChangeSet cs = BS__CHANGE_SET__INIT;
    const Bs__ChangeSet *in;
    bs_csview *v;
    uint32_t om[64];
    uint8_t *out;

    cr_assert_eq(bs_changeset_decode(set.p, set.n, &v, NULL), BS_OK);
    cr_assert(v->count <= 64);
    for (size_t i = 0; i < v->count; i++)
        om[i] = (uint32_t)i;
    in = v->pb_set;
    cs.header = in->header;
    cs.signature = in->signature;
    cs.n_omitted = v->count;
    cs.omitted = om;
    out = malloc(bs__change_set__get_packed_size(&cs));
    cr_assert_not_null(out);
    set.n = bs__change_set__pack(&cs, out);
    set.p = out;
    bs_changeset_free(v);
    return set;
}

/* How a test alters a seed file: the first set (the hub's, introducing
 * members) with every change left out, and/or each batch of snapshots
 * (decoded, altered in place, encoded again). */
typedef void (*batch_fn)(Bs__SnapBatch *b);
/* Sets a test leaves out of the file: those whose origin is this key. */
static const uint8_t *drop_origin;

/* The seed file again, altered, signed again by the hub (the file's
 * trailer): what a hub that dropped system changes from a seed, or a
 * carrier that altered its snapshots, would send. */
/* rewrite_seed alters batch alter_at only (-1: every batch, -2: the
 * last); a test that sets it puts it back. */
static long alter_at = -1;

static void
rewrite_seed(int strip, batch_fn alter)
{
    uint8_t tr[BS_HASH_LEN + BS_SIG_LEN], head8[8], *p;
    size_t len;
    bs_hash_state h;
    bst_frames fr;
    FILE *f;

    p = bst_read_file(path, &len);
    cr_assert(bst_frames_split(p, len, &fr));
    cr_assert(fr.nsets > 0);
    cr_assert(fr.nbatches > 0 && fr.nsnaps == 0, "a seed's snapshots go in "
                                                 "batches");
    f = fopen(path, "wb");
    cr_assert_not_null(f);
    bs_hash_init(&h);
    memcpy(head8, BS_FILE_MAGIC, 4);
    bs_put_u32be(head8 + 4, 1);
    cr_assert_eq(fwrite(head8, 1, 8, f), 8);
    bs_hash_update(&h, head8, 8);
    put_frame(f, 1, fr.env, &h);
    for (size_t i = 0; i < fr.nsets; i++) {
        bs_slice s = i == 0 && strip ? omit_all(fr.sets[i]) : fr.sets[i];
        if (drop_origin != NULL) {
            bs_csview *v;
            int mine;
            cr_assert_eq(bs_changeset_decode(s.p, s.n, &v, NULL), BS_OK);
            mine = memcmp(v->origin, drop_origin, BS_PK_LEN) == 0;
            bs_changeset_free(v);
            if (mine)
                continue;
        }
        put_frame(f, 2, s, &h);
        if (i == 0 && strip)
            free((void *)s.p);
    }
    for (size_t i = 0; i < fr.nbatches; i++) {
        Bs__SnapBatch *b;
        uint8_t *out;

        if (alter == NULL || (alter_at >= 0 && (size_t)alter_at != i) ||
            (alter_at == -2 && i + 1 != fr.nbatches)) {
            put_frame(f, 5, fr.batches[i], &h);
            continue;
        }
        b = bs__snap_batch__unpack(NULL, fr.batches[i].n, fr.batches[i].p);
        cr_assert_not_null(b);
        alter(b);
        out = malloc(bs__snap_batch__get_packed_size(b));
        cr_assert_not_null(out);
        put_frame(f, 5, (bs_slice){out, bs__snap_batch__pack(b, out)}, &h);
        free(out);
        bs__snap_batch__free_unpacked(b, NULL);
    }
    bs_hash_final(&h, tr);
    bs_sign(tr + BS_HASH_LEN, BS_FILE_CONTEXT, tr, BS_HASH_LEN, head.core.sk);
    put_frame(f, 3, (bs_slice){tr, sizeof tr}, NULL);
    cr_assert_eq(fclose(f), 0);
    bst_frames_fini(&fr);
    free(p);
}

static void
strip_first_set(void)
{
    rewrite_seed(1, NULL);
}

/* A7s: a seed may leave out user changes only; one that leaves out the
 * hub's changes of a system collection is refused, nothing written. */
Test(bootstrap, a_seed_leaving_out_system_changes_is_refused_whole)
{
    bs_errbuf err = {{0}};
    bs_xstats st;
    uint64_t n;
    uint8_t d[BS_HASH_LEN];
    bs_err rv;

    history();
    seed_export(&st);
    strip_first_set();
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_EPERM, "%s", bs_errmsg(&err, rv));
    cr_assert(strstr(bs_errmsg(&err, rv), "of a system collection") != NULL,
              "%s", bs_errmsg(&err, rv));
    cr_assert_eq(bst_meta(&br).joined, 0);
    cr_assert_eq(pos_of(&br, &head), 0);
    bst_digest(&br, d, &n);
    cr_assert_eq(n, 0);
    /* the seed as the hub wrote it still applies */
    seed_export(&st);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    same_scope(&head, &br, "seeded after a refusal");
}

/* A seed carries deleted records too: riga's older edit of a record the
 * hub deleted meanwhile reaches the hub after the seed, and the seeded
 * branch keeps the record deleted, as the hub does. */
Test(bootstrap, an_older_write_arriving_after_the_seed_stays_deleted)
{
    bst_op put = {"items", "x", "{\"v\":1}"},
           edit = {"items", "x", "{\"v\":2}"}, del = {"items", "x", NULL};
    bs_errbuf err = {{0}};
    bs_xstats st;
    bs_err rv;

    write_ok(&head, &put, 1);
    carry(&head, &riga, NULL);
    write_ok(&riga, &edit, 1); /* not yet sent */
    ch.ms = cr.ms + 1000;      /* the hub's delete is later */
    write_ok(&head, &del, 1);
    seed_export(&st);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    carry(&br, &head, NULL);
    carry(&riga, &head, NULL);
    cr_assert(!has(&head, "items", "x"));
    carry(&head, &br, NULL);
    cr_assert(!has(&br, "items", "x"), "the seeded branch revived it");
    same_scope(&head, &br, "after the late edit");
}

/* ---- batches of snapshots (protocol.md 2.11) ---- */

/* Import the altered seed into the fresh branch: refused with `rv` and a
 * message holding `what`, exit 2, the store's bytes unchanged. */
static void
refused_whole(bs_err want, const char *what)
{
    char data[400];
    uint8_t *d0, *d1;
    size_t n0, n1;
    bs_errbuf err = {{0}};
    bs_xstats st;
    bs_err rv;

    snprintf(data, sizeof data, "%s/store/data.mdb", br.dir);
    d0 = bst_read_file(data, &n0);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, want, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(bs_err_exit_code(rv), 2);
    cr_assert(strstr(bs_errmsg(&err, rv), what) != NULL, "%s",
              bs_errmsg(&err, rv));
    d1 = bst_read_file(data, &n1);
    cr_assert(n0 == n1 && memcmp(d0, d1, n0) == 0,
              "the refused seed changed the store");
    free(d0);
    free(d1);
    cr_assert_eq(bst_meta(&br).joined, 0);
}

static void
alter_signature(Bs__SnapBatch *b)
{
    b->signature.data[7] ^= 0x20;
}

static void
swap_two(Bs__SnapBatch *b)
{
    ProtobufCBinaryData t;

    cr_assert(b->n_bodies >= 2);
    t = b->bodies[0];
    b->bodies[0] = b->bodies[1];
    b->bodies[1] = t;
}

/* A snapshot the hub never signed, well-formed and of the hub's infobase
 * (a record the carrier made up), in place of the batch's second. */
static void
replace_one(Bs__SnapBatch *b)
{
    uint8_t *forged;
    bs_snap s;
    size_t n;

    memset(&s, 0, sizeof s);
    memcpy(s.infobase, bst_meta(&head).infobase, BS_INFOBASE_LEN);
    memcpy(s.hub, bst_meta(&head).pk, BS_PK_LEN);
    snprintf(s.coll, sizeof s.coll, "items");
    snprintf(s.id, sizeof s.id, "made-up");
    s.has_tomb = 1; /* a delete, no data: in anyone's scope */
    memcpy(s.tomb.key, bst_meta(&head).pk, BS_PK_LEN);
    memcpy(s.tomb.key + BS_PK_LEN, bst_meta(&head).inc, BS_INC_LEN);
    s.tomb.seq = 1;
    s.tomb.hlc = 1;
    cr_assert_eq(bs_snap_encode_body(&s, &forged, &n), BS_OK);
    cr_assert(b->n_bodies >= 2);
    free(b->bodies[1].data); /* the unpacked message frees the new one */
    b->bodies[1].data = forged;
    b->bodies[1].len = n;
}

/* The seed's snapshots travel in batches: far fewer signatures than
 * records, the same data as per-record snapshots gave. */
Test(bootstrap, a_seed_signs_its_snapshots_in_batches)
{
    bs_errbuf err = {{0}};
    bs_xstats st;
    bst_frames fr;
    uint8_t *p;
    size_t len, total = 0;
    bs_err rv;

    history();
    seed_export(&st);
    p = bst_read_file(path, &len);
    cr_assert(bst_frames_split(p, len, &fr));
    cr_assert_eq(fr.nsnaps, 0);
    cr_assert_eq(fr.nbatches, 1, "%zu batches", fr.nbatches);
    for (size_t i = 0; i < fr.nbatches; i++) {
        bs_snapbatch *b;
        cr_assert_eq(
            bs_snapbatch_decode(fr.batches[i].p, fr.batches[i].n, &b, &err),
            BS_OK, "%s", err.msg);
        cr_assert_eq(bs_snapbatch_verify(b, bst_meta(&head).pk), BS_OK);
        for (size_t j = 0; j < b->n; j++)
            cr_assert(bs_snapbatch_body_ok(b, j));
        total += b->n;
        bs_snapbatch_free(b);
    }
    cr_assert_eq(total, st.snapshots);
    bst_frames_fini(&fr);
    free(p);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(st.snapshots, total);
    same_scope(&head, &br, "seeded by batches");
}

Test(bootstrap, a_batch_with_a_bad_signature_is_refused_whole)
{
    bs_xstats st;

    history();
    seed_export(&st);
    rewrite_seed(0, alter_signature);
    refused_whole(BS_EBADSIG, "the hub's signature does not verify");
}

Test(bootstrap, a_reordered_batch_is_refused_whole)
{
    bs_xstats st;

    history();
    seed_export(&st);
    rewrite_seed(0, swap_two);
    refused_whole(BS_EBADSIG, "snapshot 1 of ");
}

Test(bootstrap, a_snapshot_not_in_its_batch_is_refused_whole)
{
    bs_xstats st;

    history();
    seed_export(&st);
    rewrite_seed(0, replace_one);
    refused_whole(BS_EBADSIG, "snapshot 2 of ");
}

/* br's last envelope, as the hub recorded it, announced compact batches
 * (protocol.md 2.12: features bit 3, as every node of this revision
 * does): the hub's next seed for it is of version 2. */
static bs_err
note_compact(bs_txn *t, void *arg, bs_errbuf *err)
{
    (void)err;
    return bs_movein_note_peer(t, arg,
                               BS_FEATURE_SNAPSHOTS | BS_FEATURE_SUMMARIES |
                                   BS_FEATURE_COMPACT,
                               NULL, 0);
}

/* A branch that announced bit 3 gets version-2 batches: a fraction of
 * version 1's bytes, one hash over the bodies, the same data. */
Test(bootstrap, a_seed_for_a_branch_that_takes_compact_batches_is_version_2)
{
    bs_meta mb = bst_meta(&br);
    bs_errbuf err = {{0}};
    bs_xstats st;
    bst_frames fr;
    uint8_t *p;
    size_t len, v1_len, total = 0;
    bs_err rv;

    history();
    seed_export(&st);
    free(bst_read_file(path, &v1_len));
    bst_ok(bs_store_write(head.n->store, note_compact, mb.pk, &err), &err,
           "features");
    seed_export(&st);
    p = bst_read_file(path, &len);
    cr_assert(len < v1_len * 2 / 3, "version 2: %zu bytes, version 1: %zu", len,
              v1_len);
    cr_assert(bst_frames_split(p, len, &fr));
    cr_assert(fr.nbatches >= 1);
    for (size_t i = 0; i < fr.nbatches; i++) {
        bs_snapbatch *b;
        cr_assert_eq(
            bs_snapbatch_decode(fr.batches[i].p, fr.batches[i].n, &b, &err),
            BS_OK, "%s", err.msg);
        cr_assert_eq(b->version, 2);
        cr_assert_eq(bs_snapbatch_verify(b, bst_meta(&head).pk), BS_OK);
        cr_assert(bs_snapbatch_bodies_ok(b));
        total += b->n;
        bs_snapbatch_free(b);
    }
    cr_assert_eq(total, st.snapshots);
    bst_frames_fini(&fr);
    free(p);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(st.snapshots, total);
    same_scope(&head, &br, "seeded by version-2 batches");
}

/* In a version-2 batch one hash covers every body: two swapped, or one
 * replaced, and the file is refused whole. */
Test(bootstrap, an_altered_compact_batch_is_refused_whole)
{
    bs_meta mb = bst_meta(&br);
    bs_errbuf err = {{0}};
    bs_xstats st;

    history();
    bst_ok(bs_store_write(head.n->store, note_compact, mb.pk, &err), &err,
           "features");
    seed_export(&st);
    rewrite_seed(0, swap_two);
    refused_whole(BS_EBADSIG, "are not the ones the hub signed");
    seed_export(&st);
    rewrite_seed(0, replace_one);
    refused_whole(BS_EBADSIG, "are not the ones the hub signed");
}

/* ---- merging in groups ---- */

/* The id of br's last committed write transaction (LMDB's, read with br
 * closed: one environment per process). */
static uint64_t
last_txnid(void)
{
    char dir[400];
    MDB_env *env;
    MDB_envinfo info;

    bst_node_free(&br);
    snprintf(dir, sizeof dir, "%s/store", br.dir);
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 64), 0);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600), 0);
    cr_assert_eq(mdb_env_info(env, &info), 0);
    mdb_env_close(env);
    bst_node_reopen(&br);
    return (uint64_t)info.me_last_txnid;
}

/* A seed larger than one group (about 16 MiB) merges group by group, each
 * group in a write transaction of its own, so that a seed of a million
 * records never holds them all in one transaction (memory). */
Test(bootstrap, a_large_seed_merges_in_groups_of_transactions)
{
    static char big[512 * 1024 + 32];
    bs_errbuf err = {{0}};
    bs_xstats st;
    uint64_t before, after;
    bs_err rv;

    memset(big, 'x', sizeof big);
    memcpy(big, "{\"t\":\"", 6);
    memcpy(big + 512 * 1024, "\"}", 3);
    for (int i = 0; i < 80; i++) { /* 40 MiB of records */
        char id[16];
        bst_op op = {"items", id, big};
        snprintf(id, sizeof id, "b%03d", i);
        write_ok(&head, &op, 1);
    }
    seed_export(&st);
    cr_assert_eq(st.snapshots, 82); /* and the two done markers */
    before = last_txnid();
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    after = last_txnid();
    cr_assert(after - before >= 3,
              "a seed of 40 MiB merged in %llu write transaction(s)",
              (unsigned long long)(after - before));
    same_scope(&head, &br, "a large seed");
}

/* A seed of many batches is judged in two halves on two threads
 * (exchange.c): a batch altered in the first half or in the second is
 * refused whole all the same, nothing written; unaltered, it applies. */
Test(bootstrap, a_seed_of_many_batches_is_refused_whole_from_either_half)
{
    static char big[512 * 1024 + 32];
    bs_errbuf err = {{0}};
    bs_xstats st;
    bst_frames fr;
    uint8_t *p;
    size_t len;
    bs_err rv;

    memset(big, 'x', sizeof big);
    memcpy(big, "{\"t\":\"", 6);
    memcpy(big + 512 * 1024, "\"}", 3);
    for (int i = 0; i < 48; i++) { /* 24 MiB: 6 batches or more */
        char id[16];
        bst_op op = {"items", id, big};
        snprintf(id, sizeof id, "b%03d", i);
        write_ok(&head, &op, 1);
    }
    seed_export(&st);
    p = bst_read_file(path, &len);
    cr_assert(bst_frames_split(p, len, &fr));
    cr_assert(fr.nbatches >= 4, "%zu batches: one thread", fr.nbatches);
    bst_frames_fini(&fr);
    free(p);
    alter_at = -2; /* the last batch: the second thread's */
    rewrite_seed(0, alter_signature);
    refused_whole(BS_EBADSIG, "the hub's signature does not verify");
    seed_export(&st);
    alter_at = 0; /* the first: this thread's */
    rewrite_seed(0, alter_signature);
    refused_whole(BS_EBADSIG, "the hub's signature does not verify");
    alter_at = -1;
    seed_export(&st);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    same_scope(&head, &br, "a seed of many batches");
}

/* A compact seed of a few thousand records: pass 2 decodes each batch
 * ahead on a second thread (prefetch.h bs_snapahead) while it merges;
 * the branch ends with the hub's data. */
Test(bootstrap, a_compact_seed_of_thousands_of_records_is_decoded_ahead)
{
    static bst_op ops[1000];
    static char ids[1000][16], js[1000][48];
    bs_meta mb = bst_meta(&br);
    bs_errbuf err = {{0}};
    bs_xstats st;
    bs_err rv;

    for (int r = 0; r < 3; r++) { /* 3,000 records, one batch */
        for (int i = 0; i < 1000; i++) {
            snprintf(ids[i], sizeof ids[i], "k%d-%04d", r, i);
            snprintf(js[i], sizeof js[i], "{\"n\":%d,\"r\":%d}", i, r);
            ops[i] = (bst_op){"items", ids[i], js[i]};
        }
        write_ok(&head, ops, 1000);
    }
    bst_ok(bs_store_write(head.n->store, note_compact, mb.pk, &err), &err,
           "features");
    seed_export(&st);
    cr_assert(st.snapshots > 2 * BS_SNAPAHEAD_CHUNK);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    same_scope(&head, &br, "a compact seed decoded ahead");
}

/* ---- the seed marker, progress ---- */

static int
seeding(bst_node *t, bs_seeding *out)
{
    bs_errbuf err = {{0}};
    bs_txn *txn;
    bs_err rv;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    rv = bs_movein_seed_get(txn, out);
    bs_txn_abort(txn);
    cr_assert(rv == BS_OK || rv == BS_ENOTFOUND, "sed: %s", bs_strerror(rv));
    return rv == BS_OK;
}

/* The batch cut to its first `keep` bodies, signed again by the hub: a
 * seed that stopped before its end. */
static void
cut_batch(Bs__SnapBatch *b, size_t keep)
{
    Bs__SnapBatchHeader *h =
        bs__snap_batch_header__unpack(NULL, b->header.len, b->header.data);

    cr_assert_not_null(h);
    cr_assert(keep < b->n_bodies);
    while (b->n_bodies > keep) {
        free(b->bodies[--b->n_bodies].data);
        free(h->hashes[--h->n_hashes].data);
    }
    free(b->header.data);
    b->header.len = bs__snap_batch_header__get_packed_size(h);
    cr_assert_not_null(b->header.data = malloc(b->header.len));
    bs__snap_batch_header__pack(h, b->header.data);
    bs_sign(b->signature.data, BS_SNAPBATCH_CONTEXT, b->header.data,
            b->header.len, head.core.sk);
    bs__snap_batch_header__free_unpacked(h, NULL);
}

/* The last body (the seed marker) left out. */
static void
drop_marker(Bs__SnapBatch *b)
{
    Bs__SnapBody *last = bs__snap_body__unpack(
        NULL, b->bodies[b->n_bodies - 1].len, b->bodies[b->n_bodies - 1].data);

    cr_assert(last != NULL && last->seed && last->done);
    bs__snap_body__free_unpacked(last, NULL);
    cut_batch(b, b->n_bodies - 1);
}

/* The first half of the bodies only. */
static void
cut_half(Bs__SnapBatch *b)
{
    cut_batch(b, b->n_bodies / 2);
}

/* The end of a seed is its marker: until the branch merged it, it is
 * seeding, and `status` says how far it came; a seed that arrives whole
 * ends it. */
Test(bootstrap, a_seed_that_stops_before_its_marker_stays_seeding)
{
    bs_errbuf err = {{0}};
    bs_seeding sd;
    bs_status so;
    bs_status_opts o;
    bs_xstats st;
    bs_meta m;
    bs_txn *t;
    bs_err rv;

    history();
    seed_export(&st);
    rewrite_seed(0, drop_marker);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert(seeding(&br, &sd), "no seed in progress after a cut seed");
    cr_assert_eq(sd.records, st.snapshots - 2,
                 "%llu records counted, %llu snapshots merged",
                 (unsigned long long)sd.records,
                 (unsigned long long)st.snapshots);
    cr_assert_str_eq(sd.coll, "orders"); /* the last collection, last id */
    cr_assert_str_eq(sd.id, "o18");
    cr_assert(sd.npoint >= 2);
    bs_seeding_fini(&sd);
    /* status says it */
    memset(&o, 0, sizeof o);
    m = bst_meta(&br);
    bst_ok(bs_store_read(br.n->store, &t, &err), &err, "read");
    bst_ok(bs_status_read(t, &m, &o, &so, &err), &err, "status");
    cr_assert(so.seeding && strcmp(so.seed_coll, "orders") == 0 &&
              so.seed_records == sd.records);
    bs_status_fini(&so);
    bs_txn_abort(t);
    /* the whole seed again: complete */
    seed_export(&st);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert(!seeding(&br, &sd), "still seeding after a whole seed");
    same_scope(&head, &br, "seeded after a cut seed");
}

/* The marker ends a seed only when every anchor arrived: the positions
 * come from the origins' signed headers, never from the marker. */
Test(bootstrap, a_seed_without_an_anchor_stays_seeding)
{
    bs_errbuf err = {{0}};
    bs_seeding sd;
    bs_xstats st;
    bs_meta rm;
    bs_err rv;

    history();
    seed_export(&st);
    rm = bst_meta(&riga);
    drop_origin = rm.pk; /* riga's anchor withheld */
    rewrite_seed(0, NULL);
    drop_origin = NULL;
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(pos_of(&br, &riga), 0);
    cr_assert(seeding(&br, &sd), "the seed ended without riga's anchor");
    bs_seeding_fini(&sd);
}

Test(bootstrap, a_whole_seed_ends_seeding)
{
    bs_errbuf err = {{0}};
    bs_seeding sd;
    bs_xstats st;
    bs_err rv;

    history();
    seed_export(&st);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert(!seeding(&br, &sd), "a whole seed left the branch seeding");
}

/* Resuming (design.md "Snapshot bootstrap"): a seed that stopped half-way
 * goes on where it stopped — the branch's next envelope asks its hub to
 * (`seed`, a want after the last record it merged), the hub's next file
 * sends the changes since as usual and the snapshots after that record —
 * and the branch ends with the hub's data of its scope, the records
 * changed meanwhile on either side of where it stopped included. */
Test(bootstrap, a_seed_that_stopped_half_way_resumes_to_the_same_data)
{
    bs_errbuf err = {{0}};
    bs_seeding sd;
    bs_xstats st, full;
    char stop[BS_COLLECTION_MAX + BS_ID_MAX + 2];
    bs_err rv;

    history();
    seed_export(&full);
    rewrite_seed(0, cut_half);
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert(seeding(&br, &sd));
    cr_assert(sd.records > 0 && sd.coll[0] != '\0');
    snprintf(stop, sizeof stop, "%s/%s", sd.coll, sd.id);
    bs_seeding_fini(&sd);
    /* meanwhile the hub changes records before and after that point */
    {
        bst_op ops[] = {{"items", "i00", "{\"late\":1}"},
                        {"items", "i19", "{\"late\":2}"},
                        {"orders", "o00", "{\"branch\":\"br\",\"late\":3}"},
                        {"orders", "o99", "{\"branch\":\"br\"}"},
                        {"items", "i05", NULL}};
        write_ok(&head, ops, 5);
    }
    carry(&br, &head, NULL); /* br asks to go on */
    carry(&head, &br, &st);  /* the hub's next file goes on */
    cr_assert(!seeding(&br, &sd),
              "still seeding after the resumed seed "
              "(stopped at %s)",
              stop);
    cr_assert(st.snapshots < full.snapshots,
              "the resumed seed sent %llu snapshots, the whole one %llu",
              (unsigned long long)st.snapshots,
              (unsigned long long)full.snapshots);
    same_scope(&head, &br, "a resumed seed");
    cr_assert_eq(pos_of(&br, &head), pos_of(&head, &head));
    /* and then the log goes on as usual: no seed any more */
    carry(&br, &head, NULL);
    {
        bst_op op = {"items", "after", "{\"x\":1}"};
        write_ok(&head, &op, 1);
    }
    carry(&head, &br, &st);
    cr_assert_eq(st.snapshots, 0);
    same_scope(&head, &br, "after the resumed seed");
}

/* ---- over the network (sessions) ---- */

static bs_err
mark_for_seed(bs_txn *t, void *arg, bs_errbuf *err)
{
    (void)err;
    return bs_movein_seed_peer(t, arg);
}

/* Counts the hub's SNAP and SNAPBATCH messages; with ctx set, alters the
 * signature of the first batch (a carrier's forgery). */
static int nsnap, nbatch;
static int
count_snaps(void *ctx, int from_a, uint8_t **m, size_t *n)
{
    if (from_a)
        return 1;
    nsnap += (*m)[0] == BS_MSG_SNAP;
    if ((*m)[0] == BS_MSG_SNAPBATCH && nbatch++ == 0 && ctx != NULL) {
        Bs__SnapBatch *b = bs__snap_batch__unpack(NULL, *n - 1, *m + 1);
        uint8_t *out;
        cr_assert_not_null(b);
        b->signature.data[3] ^= 1;
        out = malloc(1 + bs__snap_batch__get_packed_size(b));
        cr_assert_not_null(out);
        out[0] = BS_MSG_SNAPBATCH;
        *n = 1 + bs__snap_batch__pack(b, out + 1);
        bs__snap_batch__free_unpacked(b, NULL);
        free(*m);
        *m = out;
    }
    return 1;
}

/* The same, the hub being side a of the session. */
static int
count_snaps_a(void *ctx, int from_a, uint8_t **m, size_t *n)
{
    return count_snaps(ctx, !from_a, m, n);
}

/* The hub's admin marks br to be seeded (`peer seed br`): the next
 * session between them seeds it — system sets and anchors, then every
 * record of its scope as snapshots and the seed marker — to the data the
 * full replay gives, whichever side starts it. */
Test(bootstrap, a_session_seeds_a_new_branch)
{
    bs_meta mb = bst_meta(&br);
    bst_sync_result r;
    bs_errbuf err = {{0}};
    bs_seeding sd;
    bs_err rv;

    history();
    bst_ok(bs_store_write(head.n->store, mark_for_seed, mb.pk, &err), &err,
           "peer seed");
    nsnap = nbatch = 0;
    rv = bst_sync(&br, &head, count_snaps, NULL, &r);
    cr_assert_eq(rv, BS_OK, "session: %s / %s", r.msg_a, r.msg_b);
    cr_assert(nbatch > 0 && nsnap == 0,
              "%d batches, %d single snapshots: a fresh branch takes batches",
              nbatch, nsnap);
    cr_assert(r.sa.snapshots_received > 0 && r.sb.snapshots_sent > 0);
    cr_assert_eq(r.sa.snapshots_received, r.sb.snapshots_sent);
    cr_assert(r.sa.sets_received < 10, "%llu sets: not a seed",
              (unsigned long long)r.sa.sets_received);
    cr_assert(!seeding(&br, &sd), "still seeding after the session");
    same_scope(&head, &br, "seeded in a session");
    cr_assert_eq(pos_of(&br, &head), pos_of(&head, &head));
    cr_assert_eq(pos_of(&br, &riga), pos_of(&head, &riga));
    /* the next session is an ordinary one */
    {
        bst_op op = {"orders", "next", "{\"branch\":\"br\"}"};
        write_ok(&head, &op, 1);
    }
    rv = bst_sync(&head, &br, NULL, NULL, &r);
    cr_assert_eq(rv, BS_OK, "session: %s / %s", r.msg_a, r.msg_b);
    cr_assert_eq(r.sa.snapshots_sent, 0);
    cr_assert(has(&br, "orders", "next"));
    same_scope(&head, &br, "after the seed");
}

/* A session that stops mid-seed (the connection drops after some
 * snapshots) leaves the branch seeding; its next session asks the hub to
 * go on, and ends with the hub's data. */
static int snaps_seen;
#define CUT_AFTER 5 /* batches of 4 MiB: four make a group */
static int
drop_after_some_snaps(void *ctx, int from_a, uint8_t **m, size_t *n)
{
    (void)ctx;
    (void)n;
    if (!from_a && ((*m)[0] == BS_MSG_SNAP || (*m)[0] == BS_MSG_SNAPBATCH) &&
        ++snaps_seen > CUT_AFTER)
        return 0; /* lost, and everything after it */
    return snaps_seen <= CUT_AFTER || from_a ? 1 : 0;
}

Test(bootstrap, a_session_that_stops_mid_seed_resumes)
{
    static char big[512 * 1024 + 32];
    bs_meta mb = bst_meta(&br);
    bst_sync_result r;
    bs_errbuf err = {{0}};
    bs_seeding sd;
    bs_err rv;

    history();
    /* 48 records of 512 KiB: more than one group (16 MiB) of snapshots,
     * merged before the session stops */
    memset(big, 'x', sizeof big);
    memcpy(big, "{\"t\":\"", 6);
    memcpy(big + 512 * 1024, "\"}", 3);
    for (int i = 0; i < 48; i++) {
        char id[16];
        bst_op op = {"big", id, big};
        snprintf(id, sizeof id, "b%03d", i);
        write_ok(&head, &op, 1);
    }
    bst_ok(bs_store_write(head.n->store, mark_for_seed, mb.pk, &err), &err,
           "peer seed");
    snaps_seen = 0;
    rv = bst_sync(&br, &head, drop_after_some_snaps, NULL, &r);
    cr_assert_neq(rv, BS_OK);
    cr_assert(seeding(&br, &sd), "not seeding after a cut session");
    cr_assert(sd.records > 0 && sd.records < 48,
              "%llu records: not a group merged before the cut",
              (unsigned long long)sd.records);
    bs_seeding_fini(&sd);
    rv = bst_sync(&br, &head, NULL, NULL, &r);
    cr_assert_eq(rv, BS_OK, "session: %s / %s", r.msg_a, r.msg_b);
    cr_assert(!seeding(&br, &sd), "still seeding after the second session");
    {
        bs_xstats whole;
        seed_export(&whole); /* what a whole seed holds */
        cr_assert(r.sb.snapshots_sent + 16 < whole.snapshots,
                  "the second session sent %llu snapshots, a whole seed %llu: "
                  "not resumed",
                  (unsigned long long)r.sb.snapshots_sent,
                  (unsigned long long)whole.snapshots);
    }
    same_scope(&head, &br, "seeded in two sessions");
}

/* In a session a batch whose signature does not verify is refused (not
 * fatal, as a SNAP): none of its snapshots is merged, the branch stays
 * seeding, and the next session (a true batch) completes the seed. */
Test(bootstrap, a_session_batch_with_a_bad_signature_is_refused)
{
    bs_meta mb = bst_meta(&br);
    bst_sync_result r;
    bs_errbuf err = {{0}};
    bs_seeding sd;
    uint64_t n;
    uint8_t d[BS_HASH_LEN];
    bs_err rv;

    history();
    bst_ok(bs_store_write(head.n->store, mark_for_seed, mb.pk, &err), &err,
           "peer seed");
    nsnap = nbatch = 0;
    rv = bst_sync(&br, &head, count_snaps, (void *)1, &r);
    cr_assert_eq(r.sa.refused, 1, "%llu refused: %s",
                 (unsigned long long)r.sa.refused, r.msg_a);
    cr_assert(strstr(r.msg_a, "the hub's signature does not verify") != NULL,
              "%s", r.msg_a);
    (void)rv;
    bst_digest(&br, d, &n);
    cr_assert_eq(n, 0, "%llu records merged from a forged batch",
                 (unsigned long long)n);
    cr_assert(seeding(&br, &sd));
    bs_seeding_fini(&sd);
    rv = bst_sync(&br, &head, NULL, NULL, &r);
    cr_assert_eq(rv, BS_OK, "session: %s / %s", r.msg_a, r.msg_b);
    cr_assert(!seeding(&br, &sd));
    same_scope(&head, &br, "seeded after a forged batch");
}

/* A peer that does not announce batches (a joined branch, here riga,
 * re-seeded by its hub's admin) gets one signed SNAP per snapshot. */
Test(bootstrap, a_session_seed_to_a_peer_without_batches_sends_snaps)
{
    bs_meta mr = bst_meta(&riga);
    bst_sync_result r;
    bs_errbuf err = {{0}};
    bs_seeding sd;
    bs_err rv;

    history();
    carry(&head, &riga, NULL);
    bst_ok(bs_store_write(head.n->store, mark_for_seed, mr.pk, &err), &err,
           "peer seed");
    nsnap = nbatch = 0;
    rv = bst_sync(&riga, &head, count_snaps, NULL, &r);
    cr_assert_eq(rv, BS_OK, "session: %s / %s", r.msg_a, r.msg_b);
    cr_assert(nsnap > 0 && nbatch == 0, "%d batches, %d snapshots", nbatch,
              nsnap);
    cr_assert(!seeding(&riga, &sd));
    same_scope(&head, &riga, "riga re-seeded by SNAPs");
}

/* The hub's daemon may start the session: the fresh branch answers after
 * joining, and still takes the seed's batches (it says so in its HELLO
 * because the hub's seeds it). */
Test(bootstrap, a_session_the_hub_starts_seeds_in_batches)
{
    bs_meta mb = bst_meta(&br);
    bst_sync_result r;
    bs_errbuf err = {{0}};
    bs_seeding sd;
    bs_err rv;

    history();
    bst_ok(bs_store_write(head.n->store, mark_for_seed, mb.pk, &err), &err,
           "peer seed");
    nsnap = nbatch = 0;
    rv = bst_sync(&head, &br, count_snaps_a, NULL, &r);
    cr_assert_eq(rv, BS_OK, "session: %s / %s", r.msg_a, r.msg_b);
    cr_assert(nbatch > 0 && nsnap == 0, "%d batches, %d single snapshots",
              nbatch, nsnap);
    cr_assert(!seeding(&br, &sd));
    same_scope(&head, &br, "seeded by a session the hub started");
}
