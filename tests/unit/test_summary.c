/*
 * test_summary.c - set summaries (docs/protocol.md 2.10, revision 2026-12
 * (summaries)): a set with routes carries its origin's signed summary, one
 * bucket per distinct route; a hub sends a branch that announced
 * BS_FEATURE_SUMMARIES only the buckets it is entitled to (summary form),
 * and a branch that did not announce it the set without the summary,
 * filtered change by change as before.
 *
 * A head office and two branches with injected clocks, as test_scope.c.
 * A relay that leaves out a bucket the receiver is entitled to, changes a
 * carried change, or breaks the summary's signature is refused with
 * nothing written and the position where it was; an origin's summary that
 * is not the one its header determines is refused; a set received in one
 * form and again in the other is a replay, not a fork.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/bundle.h"
#include "../../replication/collections.h"
#include "../../replication/movein.h"
#include "../../replication/scope.h"
#include "../../replication/setlog.h"
#include "branchsync.pb-c.h"
#include "branchsync_v1.pb-c.h"

#define T0 1800000000000ull

static char root[128], path[300];
static bst_clock ch = {T0, 1}, ca = {T0, 1}, cb = {T0, 1};
static bst_node head, tallinn, riga;

static void
carry(bst_node *from, bst_node *to, bs_xstats *st)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, st, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

static void
settle(void)
{
    for (int i = 0; i < 2; i++) {
        carry(&tallinn, &head, NULL);
        carry(&riga, &head, NULL);
        carry(&head, &tallinn, NULL);
        carry(&head, &riga, NULL);
    }
}

static void
declare(const char *coll, const char *owner_field)
{
    bs_collection r;
    bs_errbuf err = {{0}};
    bs_err rv;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", coll);
    cr_assert_eq(bs_scope_parse("owner", &r.scope), BS_OK);
    snprintf(r.owner_field, sizeof r.owner_field, "%s", owner_field);
    r.set = BS_RULE_SCOPE | BS_RULE_OWNER_FIELD;
    rv = bs_collections_declare(&head.core, &r, NULL, &err);
    cr_assert_eq(rv, BS_OK, "declare: %s", bs_errmsg(&err, rv));
}

static void
setup(void)
{
    bs_clock a = bst_clock_of(&ch), b = bst_clock_of(&ca),
             c = bst_clock_of(&cb);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch.ms = ca.ms = cb.ms = T0;
    bst_root(root, sizeof root, "summary");
    snprintf(path, sizeof path, "%s/x.bsx", root);
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, &b);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &tallinn);
    bst_pair2(&head, &riga);
    settle();
    declare("orders", "branch");
    settle();
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_summary");
}

TestSuite(summary, .init = setup, .fini = teardown, .timeout = 120);

/* One write transaction at the hub, so one change set: two orders for
 * each branch and two of no office, interleaved. */
static const bst_op mixed[] = {
    {"orders", "t1", "{\"branch\":\"tallinn\",\"n\":1}"},
    {"orders", "r1", "{\"branch\":\"riga\",\"n\":2}"},
    {"orders", "x1", "{\"n\":3}"},
    {"orders", "t2", "{\"branch\":\"tallinn\",\"n\":4}"},
    {"orders", "r2", "{\"branch\":\"riga\",\"n\":5}"},
    {"orders", "x2", "{\"n\":6}"},
};

static void
write_ok(bst_node *t, const bst_op *ops, size_t n)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_write(t, ops, n, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s: %s", t->name, bs_errmsg(&err, rv));
}

static int
has(bst_node *t, const char *coll, const char *id)
{
    char *j = bst_get(t, coll, id);
    int yes = j != NULL;

    free(j);
    return yes;
}

static uint64_t
pos_of(bst_node *t, bst_node *origin)
{
    bs_meta m = bst_meta(origin);
    bs_stream s;

    return bst_stream(t, m.pk, m.inc, &s) ? s.seq : 0;
}

/* The hub's data restricted to branch b's scope equals b's data. */
static void
same_scope(bst_node *b, const char *what)
{
    bs_meta mh = bst_meta(&head), mb = bst_meta(b);
    uint8_t dh[BS_HASH_LEN], db[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    uint64_t nh, nb;
    bs_txn *t;

    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    bst_ok(bs_scope_digest(t, &mh, mb.pk, dh, &nh, &err), &err, "scope");
    bs_txn_abort(t);
    bst_digest(b, db, &nb);
    cr_assert(memcmp(dh, db, BS_HASH_LEN) == 0 && nh == nb,
              "%s: %s's scope at head holds %llu records, %s holds %llu", what,
              b->name, (unsigned long long)nh, b->name, (unsigned long long)nb);
}

/* The set of the hub's last write as stored there (malloc'd copy). */
static bs_slice
hub_last_set(void)
{
    bs_meta m = bst_meta(&head);
    bs_errbuf err = {{0}};
    bs_stream s;
    bs_slice set, copy;
    uint64_t last;
    bs_txn *t;

    cr_assert(bst_stream(&head, m.pk, m.inc, &s));
    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    /* the set ending at the stream's position: the last one sent */
    cr_assert_eq(bs_setlog_next(t, s.idx, s.seq - 1, s.seq, &set, &last),
                 BS_OK);
    cr_assert_eq(last, s.seq);
    copy.p = malloc(set.n);
    memcpy((void *)copy.p, set.p, set.n);
    copy.n = set.n;
    bs_txn_abort(t);
    return copy;
}

/* ---- exchange files rewritten by hand ---- */

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

/* A rewrite of one set: NULL to keep it, else malloc'd bytes in *out. */
typedef int (*rewrite_fn)(bs_slice set, bs_slice *out, void *ctx);

/*
 * The hub's export for peer, each set passed through fn, the file signed
 * again by the hub (a relay's file is signed by the relay); extra, when
 * not NULL, is one more set appended after the others.  Returns how many
 * sets fn rewrote.
 */
static int
rewrite_export(bst_node *peer, rewrite_fn fn, void *ctx, bs_slice *extra)
{
    uint8_t tr[BS_HASH_LEN + BS_SIG_LEN], head8[8], *msg;
    bs_errbuf err = {{0}};
    bs_hash_state h;
    bst_frames fr;
    size_t len, cn = strlen(BS_FILE_CONTEXT) + 1;
    uint8_t *p;
    FILE *f;
    int touched = 0;

    bst_ok(bst_export(&head, peer->name, path, &err), &err, "export");
    p = bst_read_file(path, &len);
    cr_assert(bst_frames_split(p, len, &fr));
    f = fopen(path, "wb");
    cr_assert_not_null(f);
    bs_hash_init(&h);
    memcpy(head8, BS_FILE_MAGIC, 4);
    bs_put_u32be(head8 + 4, 1);
    fwrite(head8, 1, 8, f);
    bs_hash_update(&h, head8, 8);
    put_frame(f, 1, fr.env, &h);
    for (size_t i = 0; i < fr.nsets; i++) {
        bs_slice s = fr.sets[i], o = {NULL, 0};
        if (fn != NULL && fn(s, &o, ctx)) {
            touched++;
            put_frame(f, 2, o, &h);
            free((void *)o.p);
        } else {
            put_frame(f, 2, s, &h);
        }
    }
    if (extra != NULL)
        put_frame(f, 2, *extra, &h);
    bs_hash_final(&h, tr);
    msg = malloc(cn + BS_HASH_LEN);
    memcpy(msg, BS_FILE_CONTEXT, cn);
    memcpy(msg + cn, tr, BS_HASH_LEN);
    crypto_sign_detached(tr + BS_HASH_LEN, NULL, msg, cn + BS_HASH_LEN,
                         head.core.sk);
    free(msg);
    put_frame(f, 3, (bs_slice){tr, sizeof tr}, NULL);
    cr_assert_eq(fclose(f), 0);
    bst_frames_fini(&fr);
    free(p);
    return touched;
}

static int
is_summary_form(bs_slice set)
{
    return set.n > 0 && set.p[0] != 0x0a;
}

/* The summary-form sets of a file: how many, and of the last one the
 * changes present, its buckets and the buckets carried. */
typedef struct found {
    int n;
    size_t present, nbuckets, kept;
} found;

static int
look(bs_slice set, bs_slice *out, void *ctx)
{
    found *fd = ctx;
    bs_csview *v;

    (void)out;
    if (!is_summary_form(set))
        return 0;
    cr_assert_eq(bs_changeset_decode(set.p, set.n, &v, NULL), BS_OK);
    fd->n++;
    fd->present = 0;
    for (size_t i = 0; i < v->count; i++)
        fd->present += v->present[i];
    fd->nbuckets = v->nbuckets;
    fd->kept = 0;
    for (size_t b = 0; b < v->nbuckets; b++)
        fd->kept += v->bucket_kept[b];
    bs_changeset_free(v);
    return 0;
}

static void
import_ok(bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_import(to, path, NULL, &err);

    cr_assert_eq(rv, BS_OK, "import at %s: %s", to->name, bs_errmsg(&err, rv));
}

/* ---- what is sent ---- */

Test(summary, a_sealed_set_with_routes_carries_its_summary)
{
    bs_slice set;
    bs_csview *v;
    const Bs__ChangeSet *cs;
    Bs__SetSummary *sm;

    write_ok(&head, mixed, 6);
    set = hub_last_set();
    cr_assert(!is_summary_form(set));
    cr_assert_eq(bs_changeset_decode(set.p, set.n, &v, NULL), BS_OK);
    cr_assert_gt(v->summary.n, 0, "no summary");
    cr_assert_eq(bs_changeset_verify(v, bst_meta(&head).pk), BS_OK);
    cs = v->pb_set;
    sm = bs__set_summary__unpack(NULL, cs->summary.len, cs->summary.data);
    cr_assert_not_null(sm);
    /* one bucket per distinct route, in the order of their first change */
    cr_assert_eq(sm->n_buckets, 3);
    cr_assert_str_eq(sm->buckets[0]->route->owner, "tallinn");
    cr_assert_str_eq(sm->buckets[1]->route->owner, "riga");
    cr_assert_str_eq(sm->buckets[2]->route->owner, "");
    for (size_t b = 0; b < 3; b++)
        cr_assert_eq(sm->buckets[b]->count, 2);
    cr_assert_eq(memcmp(sm->header_hash.data, v->header_hash, BS_HASH_LEN), 0);
    bs__set_summary__free_unpacked(sm, NULL);
    bs_changeset_free(v);
    free((void *)set.p);
}

static int
keep_tallinn(void *ctx, const bs_route_ref *r)
{
    (void)ctx;
    return r->owner.n == 7 && memcmp(r->owner.p, "tallinn", 7) == 0;
}

/*
 * The hub's filter of a stored set for a branch (bs_changeset_stored_filter,
 * the mixed case: routes read in place into the summary's buckets): only
 * the branch's bucket, its changes in order; and a stored set damaged
 * or cut anywhere (LMDB checksums nothing) filters to BS_ESTORE or to some
 * bytes without reading past its end (ASan): what leaves is checked after
 * (bs_changeset_stored_check, exchange.c), signatures included.
 */
Test(summary, the_hub_filters_a_stored_set_by_bucket_and_damage_does_not_leak)
{
    bs_filter_verdict vd;
    bs_slice set;
    bs_csview *v;
    uint8_t *out, *bad;
    size_t outn;
    bs_arena a;

    write_ok(&head, mixed, 6);
    set = hub_last_set();
    cr_assert_eq(bs_changeset_stored_filter(set, keep_tallinn, NULL, 1, &vd,
                                            &out, &outn),
                 BS_OK);
    cr_assert_eq(vd, BS_FILTER_FILTERED);
    cr_assert_eq(bs_changeset_decode(out, outn, &v, NULL), BS_OK);
    bs_arena_init(&a);
    for (size_t i = 0, n = 0; i < v->count; i++) {
        bs_change c;

        if (!v->present[i])
            continue;
        cr_assert_eq(bs_changeset_change(v, i, &a, &c, NULL), BS_OK);
        cr_assert_str_eq(c.id, n == 0 ? "t1" : "t2");
        cr_assert_lt(n++, 2);
    }
    bs_arena_fini(&a);
    bs_changeset_free(v);
    free(out);
    bad = malloc(set.n);
    cr_assert_not_null(bad);
    for (size_t i = 0; i < set.n; i++) {
        bs_err rv;

        memcpy(bad, set.p, set.n);
        bad[i] ^= 0x41;
        out = NULL;
        rv = bs_changeset_stored_filter((bs_slice){bad, set.n}, keep_tallinn,
                                        NULL, 1, &vd, &out, &outn);
        cr_assert(rv == BS_OK || rv == BS_ESTORE, "byte %zu: %s", i,
                  bs_strerror(rv));
        free(out);
        rv = bs_changeset_stored_filter((bs_slice){bad, i}, keep_tallinn, NULL,
                                        1, &vd, &out, &outn);
        cr_assert(rv == BS_OK || rv == BS_ESTORE, "cut at %zu: %s", i,
                  bs_strerror(rv));
        free(out);
    }
    free(bad);
    free((void *)set.p);
}

Test(summary, each_branch_gets_only_its_buckets_and_converges)
{
    bst_node *br[2] = {&tallinn, &riga};

    write_ok(&head, mixed, 6);
    for (int i = 0; i < 2; i++) {
        found fd = {0};
        bs_errbuf err = {{0}};
        bs_inspect in;
        int forms = 0;

        cr_assert_eq(rewrite_export(br[i], look, &fd, NULL), 0);
        cr_assert_eq(fd.n, 1, "%s: one set in summary form", br[i]->name);
        cr_assert_eq(fd.nbuckets, 3);
        cr_assert_eq(fd.kept, 1, "%s: its own bucket only", br[i]->name);
        cr_assert_eq(fd.present, 2);
        /* `inspect` says so */
        bst_ok(bs_bundle_inspect(path, &in, &err), &err, "inspect");
        for (size_t k = 0; k < in.nsets; k++)
            if (in.sets[k].summary == 2) {
                forms++;
                cr_assert_eq(in.sets[k].buckets, 3);
                cr_assert_eq(in.sets[k].carried, 1);
                cr_assert_eq(in.sets[k].changes, 2);
                cr_assert(in.sets[k].signature_ok);
            }
        cr_assert_eq(forms, 1);
        bs_inspect_fini(&in);
        import_ok(br[i]);
        cr_assert_eq(pos_of(br[i], &head), pos_of(&head, &head));
        same_scope(br[i], "after the summary form");
    }
    cr_assert(has(&tallinn, "orders", "t1") && has(&tallinn, "orders", "t2"));
    cr_assert(!has(&tallinn, "orders", "r1") && !has(&tallinn, "orders", "x1"));
    cr_assert(has(&riga, "orders", "r2") && !has(&riga, "orders", "t2"));
}

/* One admission judges set after set with one array of changes, cleared
 * where the last set's carried changes filled it rather than over each
 * set's whole seq range (docs/performance.md, round 3): an entry the last
 * set filled reads as omitted (all zero) in the next. */
Test(summary, an_admission_keeps_one_array_of_changes_and_clears_what_came)
{
    static const bst_op later[] = {
        {"orders", "r3", "{\"branch\":\"riga\"}"},
        {"orders", "t3", "{\"branch\":\"tallinn\"}"},
        {"orders", "x3", "{\"n\":7}"},
        {"orders", "r4", "{\"branch\":\"riga\"}"},
    };
    static const bs_change zero;
    bs_meta m = bst_meta(&tallinn);
    bs_errbuf err = {{0}};
    bs_csview *v[2];
    bs_admit out[2];
    bs_admission ad;
    bs_streamtab tab;
    bst_frames fr;
    bs_arena a;
    size_t len, n = 0;
    uint8_t *p;
    bs_txn *t;

    write_ok(&head, mixed, 6); /* tallinn's: seqs 1 and 4 of the set */
    write_ok(&head, later, 4); /* tallinn's: seq 2 */
    bst_ok(bst_export(&head, tallinn.name, path, &err), &err, "export");
    p = bst_read_file(path, &len);
    cr_assert(bst_frames_split(p, len, &fr));
    bst_ok(bs_store_read(tallinn.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_streams_load(t, &tab), BS_OK);
    bs_arena_init(&a);
    bs_admission_init(&ad, t, &m, &tab, 1, T0, 60000, &a);
    for (size_t k = 0; k < fr.nsets; k++) {
        bs_err rv;

        if (!is_summary_form(fr.sets[k]))
            continue;
        cr_assert_lt(n, 2);
        cr_assert_eq(
            bs_changeset_decode(fr.sets[k].p, fr.sets[k].n, &v[n], &err), BS_OK,
            "%s", err.msg);
        rv = bs_admit_set(&ad, v[n], &out[n], &err);
        cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
        cr_assert_eq(out[n].verdict, BS_ADMIT_APPLY);
        for (size_t i = 0; i < v[n]->count; i++)
            if (v[n]->present[i])
                cr_assert_not_null(out[n].changes[i].coll);
            else
                cr_assert_eq(memcmp(&out[n].changes[i], &zero, sizeof zero), 0,
                             "set %zu, change %zu: not cleared", n, i);
        n++;
    }
    cr_assert_eq(n, 2);
    cr_assert_eq(v[0]->count, 6);
    cr_assert(v[0]->present[0] && v[0]->present[3]);
    cr_assert_eq(v[1]->count, 4);
    cr_assert(!v[1]->present[0] && v[1]->present[1] && !v[1]->present[3]);
    cr_assert_eq(out[1].changes, out[0].changes, "one array for both sets");
    cr_assert_str_eq(out[1].changes[1].id, "t3");
    cr_assert_eq(ad.nchused, 1, "the entries to clear: the change carried");
    cr_assert_geq(ad.chcap, 6);
    bs_admission_fini(&ad);
    bs_changeset_free(v[0]);
    bs_changeset_free(v[1]);
    bs_arena_fini(&a);
    bs_streams_fini(&tab);
    bs_txn_abort(t);
    bst_frames_fini(&fr);
    free(p);
}

/* A set the branch is entitled to none of travels as its summary alone,
 * and still moves the branch's position. */
Test(summary, a_set_with_nothing_for_the_branch_is_its_summary_alone)
{
    static const bst_op rigas[] = {
        {"orders", "r1", "{\"branch\":\"riga\"}"},
        {"orders", "r2", "{\"branch\":\"riga\"}"},
    };
    found fd = {0};

    write_ok(&head, rigas, 2);
    rewrite_export(&tallinn, look, &fd, NULL);
    cr_assert_eq(fd.n, 1);
    cr_assert_eq(fd.kept, 0);
    cr_assert_eq(fd.present, 0);
    import_ok(&tallinn);
    cr_assert_eq(pos_of(&tallinn, &head), pos_of(&head, &head));
    same_scope(&tallinn, "after a summary alone");
}

static bs_err
forget_features(bs_txn *t, void *arg, bs_errbuf *err)
{
    (void)err;
    return bs_movein_note_peer(t, arg, BS_FEATURE_SNAPSHOTS, NULL, 0);
}

static int
version1(bs_slice set, bs_slice *out, void *ctx)
{
    Bs1__ChangeSet *cs1 = (Bs1__ChangeSet *)bs_changeset_pb_unpack(
        &bs1__change_set__descriptor, set.p, set.n);
    int *n = ctx;

    (void)out;
    cr_assert_not_null(cs1);
    cr_assert_eq(cs1->base.n_unknown_fields, 0, "a summary went to v1");
    cr_assert(bs_changeset_pb_canonical(&cs1->base, set.p, set.n));
    if (cs1->n_omitted > 0)
        (*n)++;
    bs_changeset_pb_free(cs1);
    return 0;
}

/* A branch that never announced summaries (a version-1 node, or one not
 * heard from yet) gets no summary: the set filtered change by change, as
 * a version-1 node decodes it. */
Test(summary, a_branch_without_the_feature_gets_version1_sets)
{
    bs_meta mt = bst_meta(&tallinn);
    bs_errbuf err = {{0}};
    int filtered = 0;

    write_ok(&head, mixed, 6);
    bst_ok(bs_store_write(head.core.store, forget_features, mt.pk, &err), &err,
           "note");
    rewrite_export(&tallinn, version1, &filtered, NULL);
    cr_assert_eq(filtered, 1, "the mixed set, filtered per change");
    import_ok(&tallinn);
    same_scope(&tallinn, "after version-1 sets");
}

/* ---- what is refused ---- */

/* Re-encode a summary-form set with changes[0..nc) and buckets. */
static bs_slice
repack(const Bs__ChangeSet *in, ProtobufCBinaryData *changes, size_t nc,
       uint32_t *bk, size_t nb, const uint8_t *sig)
{
    Bs__ChangeSet cs = BS__CHANGE_SET__INIT;
    bs_slice out;

    cs.n_changes = nc;
    cs.changes = changes;
    cs.summary = in->summary;
    cs.summary_signature = in->summary_signature;
    if (sig != NULL)
        cs.summary_signature.data = (uint8_t *)sig;
    cs.n_buckets = nb;
    cs.buckets = bk;
    if (nb > 0) /* the vector goes with a bucket */
        cs.seen = in->seen;
    out.n = bs__change_set__get_packed_size(&cs);
    out.p = malloc(out.n);
    bs__change_set__pack(&cs, (uint8_t *)out.p);
    return out;
}

typedef enum {
    DROP_BUCKET,
    FLIP_CHANGE,
    DROP_CHANGE,
    FLIP_SIG,
    FLIP_SEEN
} attack;

static int
tamper(bs_slice set, bs_slice *out, void *ctx)
{
    attack a = *(attack *)ctx;
    Bs__ChangeSet *cs;
    uint8_t sig[BS_SIG_LEN], *flip = NULL, *orig;

    if (!is_summary_form(set))
        return 0;
    cs = bs__change_set__unpack(NULL, set.n, set.p);
    cr_assert_not_null(cs);
    cr_assert_gt(cs->n_changes, 1);
    switch (a) {
    case DROP_BUCKET: /* its own bucket left out, as if out of scope */
        *out = repack(cs, NULL, 0, NULL, 0, NULL);
        break;
    case FLIP_CHANGE:
        orig = cs->changes[0].data;
        flip = malloc(cs->changes[0].len);
        memcpy(flip, orig, cs->changes[0].len);
        flip[cs->changes[0].len - 1] ^= 0x01;
        cs->changes[0].data = flip;
        *out = repack(cs, cs->changes, cs->n_changes, cs->buckets,
                      cs->n_buckets, NULL);
        cs->changes[0].data = orig;
        break;
    case DROP_CHANGE:
        *out = repack(cs, cs->changes + 1, cs->n_changes - 1, cs->buckets,
                      cs->n_buckets, NULL);
        break;
    case FLIP_SEEN: /* another vector than the one the summary signs */
        orig = cs->seen.data;
        cr_assert_gt(cs->seen.len, 0, "no vector with the bucket");
        flip = malloc(cs->seen.len);
        memcpy(flip, orig, cs->seen.len);
        flip[cs->seen.len - 1] ^= 0x01; /* the last entry's seq */
        cs->seen.data = flip;
        *out = repack(cs, cs->changes, cs->n_changes, cs->buckets,
                      cs->n_buckets, NULL);
        cs->seen.data = orig;
        break;
    case FLIP_SIG:
        memcpy(sig, cs->summary_signature.data, BS_SIG_LEN);
        sig[7] ^= 0x20;
        *out = repack(cs, cs->changes, cs->n_changes, cs->buckets,
                      cs->n_buckets, sig);
        break;
    }
    free(flip);
    bs__change_set__free_unpacked(cs, NULL);
    return 1;
}

static void
refused(attack a, bs_err want, const char *msg)
{
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    uint64_t pos;
    bs_err rv;

    write_ok(&head, mixed, 6);
    pos = pos_of(&tallinn, &head);
    cr_assert_eq(rewrite_export(&tallinn, tamper, &a, NULL), 1);
    bst_fingerprint(&tallinn, before);
    rv = bst_import(&tallinn, path, NULL, &err);
    cr_assert_eq(rv, want, "attack %d: %s: %s", a, bs_strerror(rv), err.msg);
    cr_assert_eq(bs_err_exit_code(rv), 2);
    cr_assert(strstr(err.msg, msg) != NULL, "%s", err.msg);
    bst_fingerprint(&tallinn, after);
    cr_assert_eq(memcmp(before, after, BS_HASH_LEN), 0,
                 "the refused file changed the store");
    cr_assert_eq(pos_of(&tallinn, &head), pos, "the position moved");
    cr_assert(!has(&tallinn, "orders", "t1"));
    /* the honest set afterwards applies */
    carry(&head, &tallinn, NULL);
    same_scope(&tallinn, "after the honest set");
}

Test(summary, leaving_out_a_bucket_the_branch_is_entitled_to_is_refused)
{
    refused(DROP_BUCKET, BS_EPERM,
            "leaves out 2 changes (orders, owner "
            "\"tallinn\"");
}

Test(summary, a_carried_change_that_does_not_match_its_bucket_is_refused)
{
    refused(FLIP_CHANGE, BS_EBADSIG, "do not match the signed summary");
}

Test(summary, a_bucket_short_of_a_change_is_refused)
{
    refused(DROP_CHANGE, BS_EMALFORMED, "change count disagrees with summary");
}

Test(summary, a_summary_whose_signature_does_not_verify_is_refused)
{
    refused(FLIP_SIG, BS_EBADSIG, "does not verify");
}

/* The vector travels beside the summary (not inside it, so that a set a
 * branch is entitled to none of costs the same whatever the number of
 * offices): another vector than the one the summary signs is refused. */
Test(summary, a_vector_other_than_the_signed_one_is_refused)
{
    refused(FLIP_SEEN, BS_EBADSIG,
            "its vector is not the one its summary "
            "signs");
}

/* An origin that signs a summary other than its header's (here: two
 * buckets swapped, signed again with its own key) is refused by whoever
 * receives the set with its header. */
static int
lying_origin(bs_slice set, bs_slice *out, void *ctx)
{
    Bs__ChangeSet *cs;
    Bs__SetSummary *sm;
    Bs__RouteBucket *t;
    ProtobufCBinaryData osum, osig;
    uint8_t sig[BS_SIG_LEN], *sb;
    size_t sn;

    (void)ctx;
    if (is_summary_form(set))
        return 0;
    cs = bs__change_set__unpack(NULL, set.n, set.p);
    cr_assert_not_null(cs);
    if (cs->summary.len == 0 || cs->n_changes < 6) {
        bs__change_set__free_unpacked(cs, NULL);
        return 0;
    }
    sm = bs__set_summary__unpack(NULL, cs->summary.len, cs->summary.data);
    cr_assert_not_null(sm);
    cr_assert_eq(sm->n_buckets, 3);
    t = sm->buckets[0];
    sm->buckets[0] = sm->buckets[1];
    sm->buckets[1] = t;
    sn = bs__set_summary__get_packed_size(sm);
    sb = malloc(sn);
    bs__set_summary__pack(sm, sb);
    bs_sign(sig, BS_SUM_CONTEXT, sb, sn, head.core.sk);
    osum = cs->summary;
    osig = cs->summary_signature;
    cs->summary = (ProtobufCBinaryData){sn, sb};
    cs->summary_signature = (ProtobufCBinaryData){BS_SIG_LEN, sig};
    out->n = bs__change_set__get_packed_size(cs);
    out->p = malloc(out->n);
    bs__change_set__pack(cs, (uint8_t *)out->p);
    cs->summary = osum; /* the unpacked message's, freed with it */
    cs->summary_signature = osig;
    free(sb);
    bs__set_summary__free_unpacked(sm, NULL);
    bs__change_set__free_unpacked(cs, NULL);
    return 1;
}

/* Put the set ctx in place of the summary form of the hub's last set. */
static int
swap_in(bs_slice set, bs_slice *out, void *ctx)
{
    const bs_slice *with = ctx;

    if (!is_summary_form(set))
        return 0;
    out->p = malloc(with->n);
    memcpy((void *)out->p, with->p, with->n);
    out->n = with->n;
    return 1;
}

Test(summary, an_origin_summary_other_than_its_header_is_refused)
{
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    bs_slice set, lie;
    uint64_t pos;
    bs_err rv;

    write_ok(&head, mixed, 6);
    set = hub_last_set();
    cr_assert(lying_origin(set, &lie, NULL));
    pos = pos_of(&riga, &head);
    cr_assert_eq(rewrite_export(&riga, swap_in, &lie, NULL), 1);
    bst_fingerprint(&riga, before);
    rv = bst_import(&riga, path, NULL, &err);
    cr_assert_eq(rv, BS_EBADSIG, "%s: %s", bs_strerror(rv), err.msg);
    cr_assert_eq(bs_err_exit_code(rv), 2);
    cr_assert(strstr(err.msg, "not the one its signed header determines") !=
                  NULL,
              "%s", err.msg);
    bst_fingerprint(&riga, after);
    cr_assert_eq(memcmp(before, after, BS_HASH_LEN), 0);
    cr_assert_eq(pos_of(&riga, &head), pos, "the position moved");
    free((void *)set.p);
    free((void *)lie.p);
}

/* The same set received in summary form and then with its header is a
 * replay (compared by the header's hash), not a fork. */
Test(summary, a_set_in_either_form_is_the_same_set)
{
    bs_slice whole;
    bs_errbuf err = {{0}};
    bs_xstats st;
    bs_meta mh = bst_meta(&head);
    bs_stream s;
    bs_err rv;

    write_ok(&head, mixed, 6);
    carry(&head, &tallinn, NULL); /* summary form */
    whole = hub_last_set();
    rewrite_export(&tallinn, NULL, NULL, &whole);
    rv = bst_import(&tallinn, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert(bst_stream(&tallinn, mh.pk, mh.inc, &s));
    cr_assert_eq(s.flags & BS_STREAM_QUARANTINED, 0, "quarantined: %s", s.note);
    same_scope(&tallinn, "after the replay");
    free((void *)whole.p);
}

/* Over a session: the hub's SET of a mixed set is in summary form. */
static int
watch(void *ctx, int from_a, uint8_t **msg, size_t *n)
{
    int *seen = ctx;

    if (from_a && *n > 1 && (*msg)[0] == 0x02 &&
        is_summary_form((bs_slice){*msg + 1, *n - 1}))
        (*seen)++;
    return 1;
}

Test(summary, a_session_sends_the_summary_form)
{
    bst_sync_result r;
    int seen = 0;
    bs_err rv;

    write_ok(&head, mixed, 6);
    rv = bst_sync(&head, &riga, watch, &seen, &r);
    cr_assert_eq(rv, BS_OK, "%s / %s", r.msg_a, r.msg_b);
    cr_assert_eq(seen, 1);
    cr_assert_eq(r.sb.refused, 0);
    cr_assert(has(&riga, "orders", "r1") && !has(&riga, "orders", "t1"));
    same_scope(&riga, "after the session");
}

/* ---- where the hub finds a set's summary (setlog.h, `sla:`) ---- */

static bs_err
forget_note(bs_txn *t, void *arg, bs_errbuf *err)
{
    const uint8_t *key = arg;

    (void)err;
    return bs_txn_del(t, BS_DB_META, bs_mem(key, 16));
}

/* The hub's export for riga, as bytes (malloc'd). */
static uint8_t *
export_bytes(size_t *n)
{
    bs_errbuf err = {{0}};

    bst_ok(bst_export(&head, "riga", path, &err), &err, "export");
    return bst_read_file(path, n);
}

/* A stored set with a summary notes where it keeps it, with the set's
 * write and delete; without the note the hub reads the set and sends the
 * same sets. */
Test(summary, the_hub_finds_a_summary_without_reading_the_changes)
{
    static const bst_op tallinns[] = {
        {"orders", "t7", "{\"branch\":\"tallinn\"}"},
        {"orders", "t8", "{\"branch\":\"tallinn\"}"},
    };
    bs_meta mh = bst_meta(&head);
    bs_errbuf err = {{0}};
    bs_stream s;
    bs_slice set, sum, ssig;
    uint64_t first, last;
    uint8_t key[16], *a, *b;
    size_t an, bn;
    bst_frames fa, fb;
    bs_txn *t;

    write_ok(&head, tallinns, 2); /* riga is entitled to none of it */
    cr_assert(bst_stream(&head, mh.pk, mh.inc, &s));
    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_setlog_next(t, s.idx, s.seq - 1, s.seq, &set, &last),
                 BS_OK);
    cr_assert_eq(bs_changeset_stored_range(set, &first, &last), BS_OK);
    cr_assert_eq(bs_setlog_summary(t, s.idx, first, set, &sum, &ssig), BS_OK,
                 "the sealer noted where the summary is");
    cr_assert_eq(ssig.n, 64);
    cr_assert_eq(ssig.p + 64, set.p + set.n, "the signature ends the set");
    bs_txn_abort(t);
    a = export_bytes(&an);
    /* without the note (a store from before): the same file content */
    memcpy(key, "sla:", 4);
    bs_put_u32be(key + 4, s.idx);
    bs_put_u64be(key + 8, first);
    bst_ok(bs_store_write(head.core.store, forget_note, key, &err), &err,
           "forget");
    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_setlog_summary(t, s.idx, first, set, &sum, &ssig),
                 BS_ENOTFOUND);
    bs_txn_abort(t);
    b = export_bytes(&bn);
    cr_assert(bst_frames_split(a, an, &fa) && bst_frames_split(b, bn, &fb));
    cr_assert_eq(fa.nsets, fb.nsets);
    for (size_t i = 0; i < fa.nsets; i++)
        cr_assert(fa.sets[i].n == fb.sets[i].n &&
                      memcmp(fa.sets[i].p, fb.sets[i].p, fa.sets[i].n) == 0,
                  "set %zu differs with and without the note", i);
    cr_assert(is_summary_form(fa.sets[fa.nsets - 1]));
    bst_frames_fini(&fa);
    bst_frames_fini(&fb);
    free(a);
    free(b);
    import_ok(&riga);
    same_scope(&riga, "after the summary alone");
}

/* A set received at the hub from a branch is noted too. */
Test(summary, a_received_set_is_noted)
{
    static const bst_op one[] = {{"orders", "t9", "{\"branch\":\"tallinn\"}"}};
    bs_meta mt = bst_meta(&tallinn);
    bs_errbuf err = {{0}};
    bs_stream s;
    bs_slice set, sum, ssig;
    uint64_t first, last;
    bs_txn *t;

    write_ok(&tallinn, one, 1);
    carry(&tallinn, &head, NULL);
    cr_assert(bst_stream(&head, mt.pk, mt.inc, &s));
    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_setlog_next(t, s.idx, s.seq - 1, s.seq, &set, &last),
                 BS_OK);
    cr_assert_eq(bs_changeset_stored_range(set, &first, &last), BS_OK);
    cr_assert_eq(bs_setlog_summary(t, s.idx, first, set, &sum, &ssig), BS_OK);
    bs_txn_abort(t);
}
