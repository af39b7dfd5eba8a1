/*
 * test_scope.c - verifiable omission and scoped replication (issue 9 items
 * 3 and 2; replication/scope.h, admission rule A7o, docs/protocol.md 2.5).
 *
 * A head office and two branches with injected clocks.  A relay that
 * leaves out a change its receiver is entitled to is refused, by file and
 * over a session, with nothing written and the stream position where it
 * was, and the whole set delivered afterwards converges; a legal omission
 * (outside the receiver's scope) advances the position and counts no
 * change; a branch receives only the shared collections and its own
 * records of owner-scoped ones; sets carrying routes still decode as a
 * version-1 node decodes them (the published version-1 schema, compiled
 * from tests/vectors/branchsync_v1.proto).  Move-out (issue 9 item 4,
 * protocol.md 7.2): a record the hub moves away, or a scope change, leaves
 * a branch (no tombstone, nothing sent back, its conflicts forgotten), and
 * leaving out the change that moves a branch's record away is refused;
 * the branch a record moves to gets it whole (move-in: the hub's record
 * snapshot, replication/snapshot.h; more in test_snapshot.c).
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/changes.h"
#include "../../replication/collections.h"
#include "../../replication/conflict.h"
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

/* Everyone hears from everyone, through the hub, twice over. */
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
setup(void)
{
    bs_clock a = bst_clock_of(&ch), b = bst_clock_of(&ca),
             c = bst_clock_of(&cb);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch.ms = ca.ms = cb.ms = T0;
    bst_root(root, sizeof root, "scope");
    snprintf(path, sizeof path, "%s/relay.bsx", root);
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
    bst_leak_check("test_scope");
}

TestSuite(scope, .init = setup, .fini = teardown, .timeout = 120);

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

/* One write transaction, so one change set. */
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

/* ---- relays, written by hand ---- */

/* Set bytes with the changes at indexes ix[0..n) left out (as a relay
 * writes them: canonical, the origin's header and signature unchanged). */
static bs_slice
omit(bs_slice set, const uint32_t *ix, size_t n)
{
    bs_csview *v;
    Bs__ChangeSet cs = BS__CHANGE_SET__INIT;
    const Bs__ChangeSet *in;
    ProtobufCBinaryData kept[64];
    uint32_t om[64];
    size_t nc = 0, no = 0;
    uint8_t *out;

    cr_assert_eq(bs_changeset_decode(set.p, set.n, &v, NULL), BS_OK);
    cr_assert(v->count <= 64);
    in = v->pb_set;
    for (size_t i = 0; i < v->count; i++) {
        int drop = !v->present[i];
        for (size_t k = 0; k < n; k++)
            drop |= ix[k] == i;
        if (drop)
            om[no++] = (uint32_t)i;
        else
            kept[nc++] = (ProtobufCBinaryData){v->changes[i].n,
                                               (uint8_t *)v->changes[i].p};
    }
    cs.header = in->header;
    cs.signature = in->signature;
    cs.n_changes = nc;
    cs.changes = kept;
    cs.n_omitted = no;
    cs.omitted = om;
    out = malloc(bs__change_set__get_packed_size(&cs));
    cr_assert_not_null(out);
    set.n = bs__change_set__pack(&cs, out);
    set.p = out;
    bs_changeset_free(v);
    return set;
}

static int
origin_is(bs_slice set, bst_node *t)
{
    bs_meta m = bst_meta(t);
    bs_csview *v;
    int yes;

    cr_assert_eq(bs_changeset_decode(set.p, set.n, &v, NULL), BS_OK);
    yes = memcmp(v->origin, m.pk, BS_PK_LEN) == 0;
    bs_changeset_free(v);
    return yes;
}

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

/*
 * relay's export file for peer, with the sets of origin's stream replaced
 * by themselves less the changes at ix[0..n), signed again by relay (the
 * file's signature is the relay's own): what a relay that filters, right
 * or wrong, sends.
 */
static void
relay_file(bst_node *relay, bst_node *peer, bst_node *origin,
           const uint32_t *ix, size_t n)
{
    uint8_t tr[BS_HASH_LEN + BS_SIG_LEN], head8[8], *msg;
    bs_errbuf err = {{0}};
    bs_hash_state h;
    bst_frames fr;
    size_t len, cn = strlen(BS_FILE_CONTEXT) + 1;
    uint8_t *p;
    FILE *f;
    int touched = 0;

    bst_ok(bst_export(relay, peer->name, path, &err), &err, "export");
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
        bs_slice s = fr.sets[i];
        if (origin_is(s, origin)) {
            s = omit(s, ix, n);
            touched = 1;
        }
        put_frame(f, 2, s, &h);
        if (s.p != fr.sets[i].p)
            free((void *)s.p);
    }
    cr_assert(touched, "no set of %s in the file", origin->name);
    bs_hash_final(&h, tr);
    msg = malloc(cn + BS_HASH_LEN);
    memcpy(msg, BS_FILE_CONTEXT, cn);
    memcpy(msg + cn, tr, BS_HASH_LEN);
    crypto_sign_detached(tr + BS_HASH_LEN, NULL, msg, cn + BS_HASH_LEN,
                         relay->core.sk);
    free(msg);
    put_frame(f, 3, (bs_slice){tr, sizeof tr}, NULL);
    cr_assert_eq(fclose(f), 0);
    bst_frames_fini(&fr);
    free(p);
}

static void
same_data(bst_node *a, bst_node *b, const char *what)
{
    uint8_t da[BS_HASH_LEN], db[BS_HASH_LEN];
    uint64_t na, nb;

    bst_digest(a, da, &na);
    bst_digest(b, db, &nb);
    cr_assert(memcmp(da, db, BS_HASH_LEN) == 0 && na == nb,
              "%s: %s holds %llu records, %s %llu, digests %s", what, a->name,
              (unsigned long long)na, b->name, (unsigned long long)nb,
              memcmp(da, db, BS_HASH_LEN) == 0 ? "equal" : "differ");
}

/* The hub's data restricted to branch b's scope equals b's data. */
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

/* The stream position t holds of origin's current stream. */
static uint64_t
pos_of(bst_node *t, bst_node *origin)
{
    bs_meta m = bst_meta(origin);
    bs_stream s;

    if (!bst_stream(t, m.pk, m.inc, &s))
        return 0;
    return s.seq;
}

/* ---- item 3: no censorship ---- */

/* The censorship, by file: a relay leaves out a change of a
 * branch's set that the receiver is entitled to (a shared collection). */
Test(scope, censorship_by_file_is_refused_then_the_whole_set_converges)
{
    static const bst_op two[] = {{"customers", "c1", "{\"n\":1}"},
                                 {"customers", "c2", "{\"n\":2}"}};
    static const uint32_t second[] = {1};
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    bs_xstats st;
    uint64_t pos;
    bs_err rv;

    write_ok(&tallinn, two, 2);
    carry(&tallinn, &head, NULL);
    pos = pos_of(&riga, &tallinn);
    relay_file(&head, &riga, &tallinn, second, 1);
    bst_fingerprint(&riga, before);
    rv = bst_import(&riga, path, &st, &err);
    cr_assert_eq(rv, BS_EPERM, "import: %s: %s", bs_strerror(rv), err.msg);
    cr_assert_eq(bs_err_exit_code(rv), 2);
    cr_assert(strstr(err.msg, "leaves out change") != NULL, "%s", err.msg);
    bst_fingerprint(&riga, after);
    cr_assert_eq(memcmp(before, after, BS_HASH_LEN), 0,
                 "the refused file changed the store");
    cr_assert_eq(pos_of(&riga, &tallinn), pos, "the position moved");
    cr_assert(!has(&riga, "customers", "c1"));
    /* The whole set afterwards: it applies, and the offices agree. */
    carry(&head, &riga, NULL);
    cr_assert(has(&riga, "customers", "c2"));
    same_data(&head, &riga, "after the whole set");
}

/* The same censorship over a network session: the set is refused and
 * reported, nothing of it counts as held, and the next session delivers
 * it. */
static int
censor(void *ctx, int from_a, uint8_t **msg, size_t *n)
{
    static const uint32_t first[] = {0};
    bs_slice set = {*msg + 1, *n - 1}, out;
    int *done = ctx;

    if (!from_a || *n < 2 || (*msg)[0] != 0x02 || !origin_is(set, &tallinn))
        return 1;
    out = omit(set, first, 1);
    free(*msg);
    *msg = malloc(out.n + 1);
    (*msg)[0] = 0x02;
    memcpy(*msg + 1, out.p, out.n);
    *n = out.n + 1;
    free((void *)out.p);
    (*done)++;
    return 1;
}

Test(scope, censorship_over_a_session_is_refused_then_the_whole_set_converges)
{
    static const bst_op two[] = {{"customers", "c1", "{\"n\":1}"},
                                 {"customers", "c2", "{\"n\":2}"}};
    bst_sync_result r;
    uint64_t pos;
    int censored = 0;
    bs_err rv;

    write_ok(&tallinn, two, 2);
    carry(&tallinn, &head, NULL);
    pos = pos_of(&riga, &tallinn);
    rv = bst_sync(&head, &riga, censor, &censored, &r);
    cr_assert_eq(rv, BS_OK, "%s / %s", r.msg_a, r.msg_b);
    cr_assert_eq(censored, 1);
    cr_assert_eq(r.sb.refused, 1, "riga refused %llu sets",
                 (unsigned long long)r.sb.refused);
    cr_assert_str_eq(bs_strerror(BS_EPERM), bs_strerror(BS_EPERM));
    cr_assert_eq(r.sb.changes_applied, 0);
    cr_assert_eq(r.sa.held_there, 1, "head sees it not acknowledged");
    cr_assert_eq(pos_of(&riga, &tallinn), pos, "the position moved");
    cr_assert(!has(&riga, "customers", "c2"));
    rv = bst_sync(&head, &riga, NULL, NULL, &r);
    cr_assert_eq(rv, BS_OK, "%s / %s", r.msg_a, r.msg_b);
    cr_assert_eq(r.sb.refused, 0);
    same_data(&head, &riga, "after the next session");
}

/* A set without routes (a version-1 origin) verifies no omission: one with
 * a change left out is refused, the whole one applies. */
Test(scope, version1_set_with_an_omission_is_refused_whole_one_applies)
{
    static const bst_op two[] = {{"customers", "v1", "{\"n\":1}"},
                                 {"customers", "v2", "{\"n\":2}"}};
    static const uint32_t second[] = {1};
    bs_meta mt = bst_meta(&tallinn);
    bs_stream self;
    bs_csview *v;
    bs_csbuild b;
    bs_sealed *x;
    bs_seal s;
    bs_slice stored, cut;
    uint8_t *whole, before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    uint64_t first;
    bs_txn *t;
    bs_err rv;

    write_ok(&tallinn, two, 2);
    /* Tallinn's newest set, sealed again as a version-1 node seals it. */
    cr_assert(bst_stream(&tallinn, mt.pk, mt.inc, &self));
    bst_ok(bs_store_read(tallinn.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_setlog_from(t, self.idx, self.seq - 1, &stored, &first),
                 BS_OK);
    cr_assert_eq(bs_changeset_decode(stored.p, stored.n, &v, NULL), BS_OK);
    cr_assert_not_null(v->route_coll, "a new node seals routes");
    bs_csbuild_init(&b);
    for (size_t i = 0; i < v->count; i++)
        cr_assert_eq(bs_csbuild_add_raw(&b, v->first + i, v->changes[i]),
                     BS_OK);
    memset(&s, 0, sizeof s);
    memcpy(s.infobase, v->infobase, BS_INFOBASE_LEN);
    memcpy(s.origin, v->origin, BS_PK_LEN);
    memcpy(s.inc, v->inc, BS_INC_LEN);
    s.has_prev = v->has_prev;
    memcpy(s.prev_hash, v->prev_hash, BS_HASH_LEN);
    s.seen = v->seen;
    s.nseen = v->nseen;
    s.created_ms = v->created_ms;
    cr_assert_eq(bs_csbuild_seal(&b, &s, tallinn.core.sk, &x), BS_OK);
    bs_changeset_free(v);
    bs_txn_abort(t);
    bs_csbuild_fini(&b);
    whole = malloc(bs_sealed_size(x));
    bs_sealed_write(x, whole);
    cut = omit((bs_slice){whole, bs_sealed_size(x)}, second, 1);
    /* Delivered in a session of tallinn's (so its envelope is tallinn's). */
    {
        bs_csview *cv;
        bs_admission ad;
        bs_admit out;
        bs_streamtab tab;
        bs_meta mr = bst_meta(&riga);
        bs_arena a;

        cr_assert_eq(bs_changeset_decode(cut.p, cut.n, &cv, NULL), BS_OK);
        cr_assert_null(cv->route_coll);
        bst_fingerprint(&riga, before);
        bst_ok(bs_store_read(riga.n->store, &t, &err), &err, "read");
        cr_assert_eq(bs_streams_load(t, &tab), BS_OK);
        bs_arena_init(&a);
        bs_admission_init(&ad, t, &mr, &tab, 1, T0, 60000, &a);
        rv = bs_admit_set(&ad, cv, &out, &err);
        cr_assert_eq(rv, BS_EPERM, "%s: %s", bs_strerror(rv), err.msg);
        cr_assert(strstr(err.msg, "carries no routes") != NULL, "%s", err.msg);
        bs_admission_fini(&ad);
        bs_changeset_free(cv);
        /* The whole version-1 set is admitted. */
        cr_assert_eq(bs_changeset_decode(whole, bs_sealed_size(x), &cv, NULL),
                     BS_OK);
        bs_admission_init(&ad, t, &mr, &tab, 1, T0, 60000, &a);
        rv = bs_admit_set(&ad, cv, &out, &err);
        cr_assert_eq(rv, BS_OK, "%s", err.msg);
        cr_assert_eq(out.verdict, BS_ADMIT_APPLY);
        bs_admission_fini(&ad);
        bs_changeset_free(cv);
        bs_arena_fini(&a);
        bs_streams_fini(&tab);
        bs_txn_abort(t);
        bst_fingerprint(&riga, after);
        cr_assert_eq(memcmp(before, after, BS_HASH_LEN), 0);
    }
    free((void *)cut.p);
    free(whole);
    bs_sealed_free(x);
}

/* ---- item 2: scoped replication, and legal omissions ---- */

Test(scope, a_legal_omission_advances_and_counts_no_change)
{
    static const bst_op two[] = {{"orders", "o1", "{\"branch\":\"tallinn\"}"},
                                 {"orders", "o2", "{\"branch\":\"riga\"}"}};
    bs_xstats st;

    declare("orders", "owner", "branch");
    settle();
    write_ok(&head, two, 2);
    carry(&head, &tallinn, &st);
    cr_assert_eq(st.changes, 1, "tallinn applied %llu changes",
                 (unsigned long long)st.changes);
    cr_assert(has(&tallinn, "orders", "o1"));
    cr_assert(!has(&tallinn, "orders", "o2"));
    cr_assert_eq(pos_of(&tallinn, &head), pos_of(&head, &head),
                 "tallinn's position of the hub's stream");
    same_scope(&head, &tallinn, "tallinn");
    /* Carried again: nothing new, nothing refused. */
    carry(&head, &tallinn, &st);
    cr_assert_eq(st.changes, 0);
    cr_assert_eq(st.sets, 0);
}

/* Each branch receives the shared collections and its own records only,
 * by file and over the network; the hub everything; per scope the data
 * agree. */
Test(scope, each_branch_receives_only_its_records)
{
    static const bst_op t1[] = {{"orders", "t1", "{\"branch\":\"tallinn\"}"},
                                {"items", "i-t", "{\"x\":1}"}};
    static const bst_op r1[] = {{"orders", "r1", "{\"branch\":\"riga\"}"},
                                {"items", "i-r", "{\"x\":2}"}};
    static const bst_op h1[] = {{"orders", "h-t", "{\"branch\":\"tallinn\"}"},
                                {"orders", "h-r", "{\"branch\":\"riga\"}"},
                                {"orders", "h-none", "{\"n\":1}"},
                                {"items", "i-h", "{\"x\":3}"}};
    bst_sync_result r;

    declare("orders", "owner", "branch");
    settle();
    write_ok(&tallinn, t1, 2);
    write_ok(&riga, r1, 2);
    write_ok(&head, h1, 4);
    /* tallinn by file, riga over the network */
    for (int i = 0; i < 2; i++) {
        carry(&tallinn, &head, NULL);
        cr_assert_eq(bst_sync(&riga, &head, NULL, NULL, &r), BS_OK, "%s / %s",
                     r.msg_a, r.msg_b);
        cr_assert_eq(r.sa.refused + r.sb.refused, 0);
        carry(&head, &tallinn, NULL);
    }
    cr_assert(has(&head, "orders", "t1") && has(&head, "orders", "r1") &&
              has(&head, "orders", "h-none"));
    cr_assert(has(&tallinn, "orders", "t1") && has(&tallinn, "orders", "h-t"));
    cr_assert(!has(&tallinn, "orders", "r1") &&
              !has(&tallinn, "orders", "h-r") &&
              !has(&tallinn, "orders", "h-none"));
    cr_assert(has(&riga, "orders", "r1") && has(&riga, "orders", "h-r"));
    cr_assert(!has(&riga, "orders", "t1") && !has(&riga, "orders", "h-t"));
    for (int i = 0; i < 3; i++) {
        static const char *const items[] = {"i-t", "i-r", "i-h"};
        cr_assert(has(&tallinn, "items", items[i]) &&
                  has(&riga, "items", items[i]));
    }
    same_scope(&head, &tallinn, "tallinn");
    same_scope(&head, &riga, "riga");
    same_scope(&head, &head, "the hub"); /* everything */
}

/* Only the hub filters.  A branch relays a set only whole: one it would
 * have to filter (it cannot know every rule its receiver holds), or one it
 * holds with changes left out, it does not send, nor its stream's later
 * sets; the receiver gets them from the hub.  Nothing is refused. */
Test(scope, a_branch_relays_only_whole_sets)
{
    static const bst_op mixed[] = {{"orders", "x", "{\"branch\":\"riga\"}"},
                                   {"orders", "y", "{\"branch\":\"tallinn\"}"}};
    static const bst_op mine[] = {{"orders", "z", "{\"branch\":\"riga\"}"},
                                  {"items", "i", "{\"n\":1}"}};
    static const bst_op hub2[] = {{"orders", "h-t", "{\"branch\":\"tallinn\"}"},
                                  {"orders", "h-r", "{\"branch\":\"riga\"}"}};
    uint64_t before;
    bs_xstats st;

    declare("orders", "owner", "branch");
    settle();
    bst_pair2(&tallinn, &riga);
    /* tallinn's own sets (writers all): the mixed one would need
     * filtering for riga, so its stream stops there for riga */
    before = pos_of(&riga, &tallinn);
    write_ok(&tallinn, mixed, 2);
    write_ok(&tallinn, mine, 2);
    carry(&tallinn, &riga, &st);
    cr_assert_eq(st.refused, 0);
    cr_assert_eq(pos_of(&riga, &tallinn), before);
    cr_assert(!has(&riga, "orders", "x") && !has(&riga, "orders", "y"));
    /* the hub's set as tallinn holds it leaves h-r out: not passed on */
    write_ok(&head, hub2, 2);
    carry(&head, &tallinn, NULL);
    carry(&tallinn, &riga, &st);
    cr_assert_eq(st.refused, 0);
    cr_assert(!has(&riga, "orders", "h-t"));
    cr_assert(pos_of(&riga, &head) < pos_of(&head, &head));
    /* through the hub, filtered for riga */
    carry(&tallinn, &head, NULL);
    carry(&head, &riga, NULL);
    cr_assert(has(&riga, "orders", "x") && has(&riga, "orders", "z") &&
              has(&riga, "orders", "h-r") && has(&riga, "items", "i"));
    cr_assert(!has(&riga, "orders", "y") && !has(&riga, "orders", "h-t"));
    same_scope(&head, &riga, "riga");
    /* tallinn still holds x, its own write for riga: dropping a record
     * that leaves a branch's scope is move-out (issue 9 item 4) */
    cr_assert(has(&tallinn, "orders", "x"));
    /* a set that needs no filtering goes branch to branch, whole */
    write_ok(&riga, (const bst_op[]){{"items", "j", "{\"n\":2}"}}, 1);
    carry(&riga, &tallinn, &st);
    cr_assert(has(&tallinn, "items", "j"));
}

/* ---- the wire: routes are signed, checked, and version-1 compatible ---- */

/* A set sealed here carries routes; a version-1 node decodes its header
 * with field 13 as a trailing unknown field that re-encodes to the same
 * bytes (D4 passes), and its container has no unknown field (D2). */
Test(scope, a_version1_decoder_accepts_a_routed_set)
{
    static const bst_op one[] = {{"orders", "o1", "{\"branch\":\"tallinn\"}"}};
    bs_meta mh = bst_meta(&head);
    bs_stream self;
    bs_errbuf err = {{0}};
    bs_slice stored;
    bs_csview *v;
    uint64_t first;
    bs_txn *t;
    Bs1__ChangeSet *cs1;
    Bs1__SetHeader *h1;
    uint8_t *bare;
    size_t nbare;

    declare("orders", "owner", "branch");
    write_ok(&head, one, 1);
    cr_assert(bst_stream(&head, mh.pk, mh.inc, &self));
    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    /* the set starting at self.seq: the write's */
    cr_assert_eq(bs_setlog_from(t, self.idx, self.seq, &stored, &first), BS_OK);
    cr_assert_eq(bs_changeset_decode(stored.p, stored.n, &v, NULL), BS_OK);
    cr_assert_not_null(v->route_coll);
    cr_assert_str_eq(v->route_coll[0], "orders");
    cr_assert_str_eq(v->route_owner[0], "tallinn");
    /* Stored with its summary (fields 5-6, 2.10), which a version-1 node
     * would refuse (D1): it goes to such a node without them. */
    cs1 = (Bs1__ChangeSet *)bs_changeset_pb_unpack(&bs1__change_set__descriptor,
                                                   stored.p, stored.n);
    cr_assert_not_null(cs1);
    cr_assert_eq(cs1->base.n_unknown_fields, 2, "summary and its signature");
    bs_changeset_pb_free(cs1);
    cr_assert_eq(bs_changeset_stored_strip(stored, &bare, &nbare), BS_OK);
    cr_assert_not_null(bare);
    cs1 = (Bs1__ChangeSet *)bs_changeset_pb_unpack(&bs1__change_set__descriptor,
                                                   bare, nbare);
    cr_assert_not_null(cs1);
    cr_assert_eq(cs1->base.n_unknown_fields, 0);
    cr_assert(bs_changeset_pb_canonical(&cs1->base, bare, nbare));
    free(bare);
    h1 = (Bs1__SetHeader *)bs_changeset_pb_unpack(&bs1__set_header__descriptor,
                                                  v->header.p, v->header.n);
    cr_assert_not_null(h1);
    cr_assert_eq(h1->base.n_unknown_fields, 1, "one route, one unknown field");
    cr_assert(bs_changeset_pb_canonical(&h1->base, v->header.p, v->header.n),
              "a version-1 node would refuse the header (D4)");
    bs_changeset_pb_free(h1);
    bs_changeset_pb_free(cs1);
    bs_changeset_free(v);
    bs_txn_abort(t);
}

Test(scope, scope_owner_needs_an_owner_field)
{
    bs_collection r;
    bs_errbuf err = {{0}};
    bs_err rv;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "orders");
    r.scope = BS_SCOPE_OWNER;
    r.set = BS_RULE_SCOPE;
    rv = bs_collections_declare(&head.core, &r, NULL, &err);
    cr_assert_eq(rv, BS_EINVAL, "%s", err.msg);
    cr_assert_eq(bs_err_exit_code(rv), 2);
    cr_assert(strstr(err.msg, "--owner-field") != NULL, "%s", err.msg);
    declare("orders", "owner", "branch");
}

/* The rules change after the records were written: the sender judges
 * each set by the rules its receiver will hold when it admits it (the hub
 * sets before it), so the records written while the collection was shared
 * go whole, and the scope applies from the rule on: once the branch holds
 * the rule, it drops the records another office owns (move-out). */
Test(scope, records_written_before_the_scope_rule_go_whole)
{
    static const bst_op two[] = {{"orders", "o1", "{\"office\":\"riga\"}"},
                                 {"orders", "o2", "{\"office\":\"tallinn\"}"}};
    static const bst_op two2[] = {{"orders", "o3", "{\"office\":\"riga\"}"},
                                  {"orders", "o4", "{\"office\":\"tallinn\"}"}};
    bst_sync_result r;

    write_ok(&head, two, 2);
    declare("orders", "owner", "office");
    write_ok(&head, two2, 2);
    carry(&head, &tallinn, NULL);
    cr_assert(!has(&tallinn, "orders", "o1") && has(&tallinn, "orders", "o2"));
    cr_assert(!has(&tallinn, "orders", "o3") && has(&tallinn, "orders", "o4"));
    cr_assert_eq(bst_sync(&head, &riga, NULL, NULL, &r), BS_OK, "%s / %s",
                 r.msg_a, r.msg_b);
    cr_assert_eq(r.sb.refused, 0, "%s", r.msg_b);
    cr_assert(has(&riga, "orders", "o1") && has(&riga, "orders", "o3"));
    cr_assert(!has(&riga, "orders", "o2") && !has(&riga, "orders", "o4"));
}

/* A branch that never exchanged yet (its first file joins it) gets the
 * records written before the scope rule whole, too: the hub judges by the
 * rules the branch will hold, none but those the file brings; the rule
 * then drops the other offices' records. */
Test(scope, a_new_branch_joins_with_records_older_than_the_scope_rule)
{
    static const bst_op two[] = {{"orders", "o1", "{\"office\":\"riga\"}"},
                                 {"orders", "o2", "{\"office\":\"fresh\"}"}};
    static const bst_op two2[] = {{"orders", "o3", "{\"office\":\"riga\"}"},
                                  {"orders", "o4", "{\"office\":\"fresh\"}"}};
    bs_clock c = bst_clock_of(&cb);
    bst_node fresh;

    write_ok(&head, two, 2);
    declare("orders", "owner", "office");
    write_ok(&head, two2, 2);
    bst_node_new(&fresh, root, "fresh", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &fresh);
    carry(&head, &fresh, NULL);
    cr_assert(!has(&fresh, "orders", "o1") && has(&fresh, "orders", "o2"));
    cr_assert(!has(&fresh, "orders", "o3") && has(&fresh, "orders", "o4"));
    bst_node_free(&fresh);
}

/* The same over the network: the new branch's hello acknowledges nothing
 * (an empty vector), which means "no rules yet", not "every rule". */
Test(scope, a_new_branch_syncs_records_older_than_the_scope_rule)
{
    static const bst_op two[] = {{"orders", "o1", "{\"office\":\"riga\"}"},
                                 {"orders", "o2", "{\"office\":\"fresh\"}"}};
    static const bst_op two2[] = {{"orders", "o3", "{\"office\":\"riga\"}"},
                                  {"orders", "o4", "{\"office\":\"fresh\"}"}};
    bs_clock c = bst_clock_of(&cb);
    bst_sync_result r;
    bst_node fresh;

    write_ok(&head, two, 2);
    declare("orders", "owner", "office");
    write_ok(&head, two2, 2);
    bst_node_new(&fresh, root, "fresh", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &fresh);
    cr_assert_eq(bst_sync(&fresh, &head, NULL, NULL, &r), BS_OK, "%s / %s",
                 r.msg_a, r.msg_b);
    cr_assert_eq(r.sa.refused, 0, "%s", r.msg_a);
    cr_assert(!has(&fresh, "orders", "o1") && has(&fresh, "orders", "o2"));
    cr_assert(!has(&fresh, "orders", "o3") && has(&fresh, "orders", "o4"));
    bst_node_free(&fresh);
}

/* ---- move-out (issue 9 item 4; docs/protocol.md 7.3) ---- */

/* The hub moves tallinn's record o1 to riga: tallinn receives the change
 * (its route names it as the owner before), drops the record without a
 * tombstone and writes nothing; the hub keeps it, and riga gets the
 * change routed to it and then the whole record (move-in). */
/* The change feed's last entry at t (changes.h): its record and flag. */
static int
last_change(const bs_change_entry *e, void *arg)
{
    char *out = arg;

    snprintf(out, 128, "%.*s/%.*s %d", (int)e->colllen, e->coll, (int)e->idlen,
             e->id, e->deleted);
    return 0;
}

static void
feed_tail(bst_node *t, char *out)
{
    bs_errbuf err = {{0}};
    uint64_t last, seq;
    bs_txn *tx;

    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    cr_assert_eq(bs_changes_last(tx, &last), BS_OK);
    cr_assert_gt(last, 0);
    cr_assert_eq(bs_changes_scan(tx, last - 1, NULL, 1, last_change, out, &seq),
                 BS_OK);
    bs_txn_abort(tx);
}

static void
hub_moves_a_record(int by_session)
{
    static const bst_op mine[] = {
        {"orders", "o1", "{\"branch\":\"tallinn\",\"n\":1}"}};
    static const bst_op move[] = {{"orders", "o1", "{\"branch\":\"riga\"}"}};
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bst_sync_result r;
    bs_xstats st;
    uint64_t tpos, n0, n1;
    char *j;

    declare("orders", "owner", "branch");
    settle();
    write_ok(&tallinn, mine, 1);
    settle();
    cr_assert(has(&tallinn, "orders", "o1") && has(&head, "orders", "o1"));
    cr_assert(!has(&riga, "orders", "o1"));
    tpos = pos_of(&head, &tallinn);
    write_ok(&head, move, 1);
    if (by_session) {
        cr_assert_eq(bst_sync(&tallinn, &head, NULL, NULL, &r), BS_OK,
                     "%s / %s", r.msg_a, r.msg_b);
        cr_assert_eq(r.sa.refused + r.sb.refused, 0, "%s", r.msg_a);
        cr_assert_eq(r.sa.changes_applied, 1);
    } else {
        carry(&head, &tallinn, &st);
        cr_assert_eq(st.changes, 1, "tallinn applied %llu changes",
                     (unsigned long long)st.changes);
    }
    cr_assert(!has(&tallinn, "orders", "o1"), "tallinn still holds o1");
    {
        char tail[128] = "";

        feed_tail(&tallinn, tail); /* the feed says it left */
        cr_assert_str_eq(tail, "orders/o1 1");
    }
    cr_assert_eq(pos_of(&tallinn, &head), pos_of(&head, &head));
    same_scope(&head, &tallinn, "tallinn after the move");
    /* Idempotent: the same again changes no record. */
    bst_digest(&tallinn, before, &n0);
    carry(&head, &tallinn, NULL);
    bst_digest(&tallinn, after, &n1);
    cr_assert(memcmp(before, after, BS_HASH_LEN) == 0 && n0 == n1);
    /* Nothing goes back as a delete: tallinn wrote no change, the hub
     * still holds the whole record, riga has it. */
    settle();
    cr_assert_eq(pos_of(&head, &tallinn), tpos, "tallinn wrote a change");
    j = bst_get(&head, "orders", "o1");
    cr_assert(j != NULL && strstr(j, "\"n\":1") != NULL &&
                  strstr(j, "riga") != NULL,
              "the hub's o1: %s", j ? j : "(none)");
    free(j);
    cr_assert(!has(&tallinn, "orders", "o1"));
    same_scope(&head, &tallinn, "tallinn");
    same_scope(&head, &head, "the hub");
    /* Move-in: riga asked for the record it now owns and the hub sent a
     * snapshot, so riga has it whole (n, written before the move), not
     * only the change that moved it; its scope at the hub equals its
     * data. */
    j = bst_get(&riga, "orders", "o1");
    cr_assert(j != NULL && strcmp(j, "{\"id\":\"o1\",\"branch\":\"riga\","
                                     "\"n\":1}") == 0,
              "riga's o1: %s", j ? j : "(none)");
    free(j);
    same_scope(&head, &riga, "riga after the move");
}

Test(scope, the_hub_moves_a_record_away_by_file)
{
    hub_moves_a_record(0);
}

Test(scope, the_hub_moves_a_record_away_by_session)
{
    hub_moves_a_record(1);
}

/* One set that makes a record for tallinn (new there, owned by it: the
 * move-out check after the set takes the merge's word for such records)
 * and, in a later change of the same set, gives it to riga: tallinn
 * receives both changes and drops the record; others it owns stay. */
Test(scope, a_record_made_and_moved_away_in_one_set_is_dropped)
{
    static const bst_op ops[] = {
        {"orders", "o1", "{\"branch\":\"tallinn\",\"n\":1}"},
        {"orders", "o2", "{\"branch\":\"tallinn\",\"n\":2}"},
        {"orders", "o1", "{\"branch\":\"riga\"}"},
        {"orders", "o3", "{\"branch\":\"riga\",\"n\":3}"}};
    bs_xstats st;

    declare("orders", "owner", "branch");
    settle();
    write_ok(&head, ops, 4);
    carry(&head, &tallinn, &st);
    cr_assert(!has(&tallinn, "orders", "o1"), "tallinn still holds o1");
    cr_assert(has(&tallinn, "orders", "o2"));
    cr_assert(!has(&tallinn, "orders", "o3"));
    same_scope(&head, &tallinn, "tallinn");
}

/* A relay that leaves out the change moving a branch's record away (the
 * route names the branch as the owner before) censors it: refused. */
Test(scope, leaving_out_a_move_out_is_refused)
{
    static const bst_op mine[] = {{"orders", "o1", "{\"branch\":\"tallinn\"}"}};
    static const bst_op move[] = {{"orders", "o1", "{\"branch\":\"riga\"}"},
                                  {"items", "i1", "{\"x\":1}"}};
    static const uint32_t first[] = {0};
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    bs_xstats st;
    uint64_t pos;
    bs_err rv;

    declare("orders", "owner", "branch");
    settle();
    write_ok(&tallinn, mine, 1);
    settle();
    write_ok(&head, move, 2);
    pos = pos_of(&tallinn, &head);
    relay_file(&head, &tallinn, &head, first, 1);
    bst_fingerprint(&tallinn, before);
    rv = bst_import(&tallinn, path, &st, &err);
    cr_assert_eq(rv, BS_EPERM, "import: %s: %s", bs_strerror(rv), err.msg);
    cr_assert_eq(bs_err_exit_code(rv), 2);
    cr_assert(strstr(err.msg, "before \"tallinn\"") != NULL, "%s", err.msg);
    bst_fingerprint(&tallinn, after);
    cr_assert_eq(memcmp(before, after, BS_HASH_LEN), 0);
    cr_assert_eq(pos_of(&tallinn, &head), pos, "the position moved");
    cr_assert(has(&tallinn, "orders", "o1"));
    /* The whole set: the record leaves. */
    carry(&head, &tallinn, NULL);
    cr_assert(!has(&tallinn, "orders", "o1") && has(&tallinn, "items", "i1"));
    same_scope(&head, &tallinn, "tallinn");
}

/* A rule version that makes a collection owner-scoped, or names the owner
 * in another field, leaves each branch with its own records only; the hub
 * keeps everything and nothing propagates. */
Test(scope, a_scope_change_drops_other_offices_records)
{
    static const bst_op recs[] = {
        {"orders", "o-t", "{\"branch\":\"tallinn\",\"office\":\"tallinn\"}"},
        {"orders", "o-r", "{\"branch\":\"riga\",\"office\":\"riga\"}"},
        {"orders", "o-x", "{\"branch\":\"tallinn\",\"office\":\"riga\"}"},
        {"orders", "o-n", "{\"n\":1}"}};
    static const char *const ids[] = {"o-t", "o-r", "o-x", "o-n"};
    uint64_t tpos, rpos;

    declare("orders", "shared", "branch");
    write_ok(&head, recs, 4);
    settle();
    for (size_t i = 0; i < 4; i++)
        cr_assert(has(&tallinn, "orders", ids[i]) &&
                  has(&riga, "orders", ids[i]));
    tpos = pos_of(&head, &tallinn);
    rpos = pos_of(&head, &riga);
    declare("orders", "owner", "branch");
    carry(&head, &tallinn, NULL);
    cr_assert(has(&tallinn, "orders", "o-t") && has(&tallinn, "orders", "o-x"));
    cr_assert(!has(&tallinn, "orders", "o-r") &&
              !has(&tallinn, "orders", "o-n"));
    same_scope(&head, &tallinn, "tallinn, scoped by branch");
    /* the owner field changes while scoped */
    declare("orders", "owner", "office");
    settle();
    cr_assert(has(&tallinn, "orders", "o-t") &&
              !has(&tallinn, "orders", "o-x"));
    cr_assert(has(&riga, "orders", "o-r") && has(&riga, "orders", "o-x") &&
              !has(&riga, "orders", "o-t") && !has(&riga, "orders", "o-n"));
    for (size_t i = 0; i < 4; i++)
        cr_assert(has(&head, "orders", ids[i]));
    cr_assert_eq(pos_of(&head, &tallinn), tpos, "tallinn wrote a change");
    cr_assert_eq(pos_of(&head, &riga), rpos, "riga wrote a change");
    same_scope(&head, &tallinn, "tallinn");
    same_scope(&head, &riga, "riga");
}

/* A deleted record is not dropped: its tombstone keeps a change older
 * than the delete, routed to the branch later, from bringing it back
 * there while it stays deleted at the hub. */
Test(scope, a_tombstone_stays_and_keeps_an_older_change_out)
{
    static const bst_op mine[] = {{"orders", "o1", "{\"branch\":\"tallinn\"}"}};
    static const bst_op late[] = {
        {"orders", "o1", "{\"branch\":\"tallinn\",\"n\":5}"}};
    static const bst_op del[] = {{"orders", "o1", NULL}};

    declare("orders", "owner", "branch");
    settle();
    write_ok(&tallinn, mine, 1);
    settle();
    write_ok(&riga, late, 1); /* stamped before the delete, sent after */
    ch.ms += 5000;
    write_ok(&head, del, 1);
    carry(&head, &tallinn, NULL);
    cr_assert(!has(&tallinn, "orders", "o1"));
    carry(&riga, &head, NULL);
    cr_assert(!has(&head, "orders", "o1"), "the delete wins at the hub");
    carry(&head, &tallinn, NULL);
    cr_assert(!has(&tallinn, "orders", "o1"), "o1 came back at tallinn");
    same_scope(&head, &tallinn, "tallinn");
}

static uint64_t
conflicts_at(bst_node *n)
{
    uint64_t all = 0;
    bs_txn *t;

    cr_assert_eq(bs_store_read(n->n->store, &t, NULL), BS_OK);
    cr_assert_eq(bs_conflict_count(t, NULL, &all), BS_OK);
    bs_txn_abort(t);
    return all;
}

/* A record dropped by a move takes its conflicts with it (the hub keeps
 * its own). */
Test(scope, a_moved_record_forgets_its_conflicts)
{
    static const bst_op mine[] = {
        {"orders", "o1", "{\"branch\":\"tallinn\",\"n\":1}"}};
    static const bst_op two[] = {{"orders", "o1", "{\"n\":2}"}};
    static const bst_op three[] = {{"orders", "o1", "{\"n\":3}"}};
    static const bst_op move[] = {{"orders", "o1", "{\"branch\":\"riga\"}"}};

    declare("orders", "owner", "branch");
    settle();
    write_ok(&tallinn, mine, 1);
    settle();
    write_ok(&tallinn, two, 1); /* concurrent: neither saw the other */
    write_ok(&head, three, 1);
    carry(&tallinn, &head, NULL);
    carry(&head, &tallinn, NULL);
    cr_assert_gt(conflicts_at(&tallinn), 0);
    cr_assert_gt(conflicts_at(&head), 0);
    write_ok(&head, move, 1);
    carry(&head, &tallinn, NULL);
    cr_assert(!has(&tallinn, "orders", "o1"));
    cr_assert_eq(conflicts_at(&tallinn), 0);
    cr_assert_gt(conflicts_at(&head), 0);
}
