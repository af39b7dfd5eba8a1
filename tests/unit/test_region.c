/*
 * test_region.c - regional hubs (issue 12 item 6; docs/design.md
 * "Regional hubs"; members.h, scope.h, protocol.md 8.3 X4r).
 *
 * A tree driven through the core API with injected clocks: the head office
 * (the hub), two regional hubs (east, west) paired with it with
 * `--region`, and four branches, two under each, that pair only with
 * their regional hub (`--hub`) and that the head office introduces with
 * `member add … --via`.  Files and in-memory sessions carry the changes up
 * and down; the head office and both regions end with equal digests, each
 * branch with exactly its scope (equal to the head office's data
 * restricted to it), a branch's change at the head office verifies as
 * signed by that branch and by nobody else, and status at the head office
 * shows each branch under its regional hub with how far it held the head
 * office's stream.  A regional hub that alters a branch's change, or
 * leaves out of a set a change a branch is entitled to, is refused; a
 * rule version reaches the branches through it; a branch joins through
 * it only when it pinned it with --hub (X4r); only a regional hub relays
 * a member added via it; a revoked branch is refused at its region.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/bundle.h"
#include "../../replication/changeset.h"
#include "../../replication/snapshot.h"
#include "../../replication/collections.h"
#include "../../replication/members.h"
#include "../../replication/movein.h"
#include "../../replication/relay.h"
#include "../../replication/pairing.h"
#include "../../replication/purge.h"
#include "../../replication/verify.h"
#include "../../replication/records.h"
#include "../../replication/streams.h"
#include "../../replication/scope.h"
#include "../../replication/setlog.h"
#include "../../replication/status.h"
#include "branchsync.pb-c.h"

#define T0 1800000000000ull

static char root[128];
static bst_clock ck[7];
static bst_node head, east, west, e1, e2, w1, w2;
static bst_node *const all[] = {&head, &east, &west, &e1, &e2, &w1, &w2};

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

static void
sync_ok(bst_node *a, bst_node *b)
{
    bst_sync_result r;
    bs_err rv = bst_sync(a, b, NULL, NULL, &r);

    cr_assert_eq(rv, BS_OK, "%s <-> %s: %s / %s", a->name, b->name, r.msg_a,
                 r.msg_b);
}

/* One round: branches up to their region, regions up to the head office,
 * then down again.  East's branches travel by file, west's by session. */
static void
round_trip(void)
{
    carry(&e1, &east);
    carry(&e2, &east);
    sync_ok(&w1, &west);
    sync_ok(&w2, &west);
    carry(&east, &head);
    sync_ok(&west, &head);
    carry(&head, &east);
    carry(&east, &e1);
    carry(&east, &e2);
    sync_ok(&w1, &west);
    sync_ok(&w2, &west);
}

static void
settle(void)
{
    for (int i = 0; i < 3; i++)
        round_trip();
}

static void
declare_owned(const char *coll)
{
    bs_collection r;
    bs_errbuf err = {{0}};
    bs_err rv;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", coll);
    r.scope = BS_SCOPE_OWNER;
    r.writers = BS_WRITERS_OWNER;
    snprintf(r.owner_field, sizeof r.owner_field, "shop");
    r.set = BS_RULE_SCOPE | BS_RULE_OWNER_FIELD | BS_RULE_WRITERS;
    rv = bs_collections_declare(&head.core, &r, NULL, &err);
    cr_assert_eq(rv, BS_OK, "declare: %s", bs_errmsg(&err, rv));
}

static void
put_ok(bst_node *t, const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, coll, id, json, &err);

    cr_assert_eq(rv, BS_OK, "%s put %s/%s: %s", t->name, coll, id,
                 bs_errmsg(&err, rv));
}

/* The tree: head -> {east, west}; east -> {e1, e2}; west -> {w1, w2}. */
static void
setup(void)
{
    const char *names[] = {"head", "east", "west", "e1", "e2", "w1", "w2"};

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "region");
    for (size_t i = 0; i < 7; i++) {
        bs_clock c;
        ck[i].ms = T0;
        ck[i].step = 1;
        c = bst_clock_of(&ck[i]);
        bst_node_new(all[i], root, names[i],
                     i == 0 ? BS_ROLE_HUB : BS_ROLE_BRANCH, &c);
    }
    bst_pair_region(&head, &east);
    bst_pair_region(&head, &west);
    bst_member_via(&head, &e1, &east);
    bst_member_via(&head, &e2, &east);
    bst_member_via(&head, &w1, &west);
    bst_member_via(&head, &w2, &west);
    declare_owned("orders");
    bst_pair_hub(&east, &head);
    bst_pair_hub(&west, &head);
    bst_pair(&east, &e1);
    bst_pair(&east, &e2);
    bst_pair(&west, &w1);
    bst_pair(&west, &w2);
    bst_pair_hub(&e1, &east);
    bst_pair_hub(&e2, &east);
    bst_pair_hub(&w1, &west);
    bst_pair_hub(&w2, &west);
    carry(&head, &east); /* the regions join the head office's infobase */
    sync_ok(&west, &head);
}

static void
teardown(void)
{
    for (size_t i = 0; i < 7; i++)
        bst_node_free(all[i]);
    bst_rmtree(root);
    bst_leak_check("test_region");
}

TestSuite(region, .init = setup, .fini = teardown, .timeout = 120);

static void
same_digest(bst_node *a, bst_node *b)
{
    uint8_t da[BS_HASH_LEN], db[BS_HASH_LEN];
    uint64_t na, nb;

    bst_digest(a, da, &na);
    bst_digest(b, db, &nb);
    cr_assert(memcmp(da, db, BS_HASH_LEN) == 0 && na == nb,
              "%s holds %llu records, %s %llu, digests %s", a->name,
              (unsigned long long)na, b->name, (unsigned long long)nb,
              memcmp(da, db, BS_HASH_LEN) == 0 ? "equal" : "differ");
}

/* The head office's data restricted to branch b's scope equals b's. */
static void
same_scope(bst_node *b)
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
              "%s's scope at head holds %llu records, %s holds %llu", b->name,
              (unsigned long long)nh, b->name, (unsigned long long)nb);
}

/* Each office writes: the head office a shared catalog entry, each branch
 * an order of its own (owner-scoped) and a shared note. */
static void
write_everywhere(void)
{
    bst_node *br[] = {&e1, &e2, &w1, &w2};

    put_ok(&head, "catalog", "p1", "{\"price\": 10}");
    for (size_t i = 0; i < 4; i++) {
        char id[80], json[160];
        snprintf(id, sizeof id, "o-%s", br[i]->name);
        snprintf(json, sizeof json, "{\"shop\": \"%s\", \"total\": %zu}",
                 br[i]->name, i + 1);
        put_ok(br[i], "orders", id, json);
        snprintf(id, sizeof id, "n-%s", br[i]->name);
        put_ok(br[i], "notes", id, "{\"text\": \"hello\"}");
    }
}

Test(region, a_tree_converges_with_each_branch_holding_its_scope)
{
    bst_node *br[] = {&e1, &e2, &w1, &w2};
    char *r;

    write_everywhere();
    settle();
    same_digest(&head, &east);
    same_digest(&head, &west);
    for (size_t i = 0; i < 4; i++) {
        char id[80];
        same_scope(br[i]);
        cr_assert_not_null(r = bst_get(br[i], "catalog", "p1"), "%s",
                           br[i]->name);
        free(r);
        for (size_t k = 0; k < 4; k++) {
            snprintf(id, sizeof id, "n-%s", br[k]->name);
            cr_assert_not_null(r = bst_get(br[i], "notes", id), "%s lacks %s",
                               br[i]->name, id);
            free(r);
            snprintf(id, sizeof id, "o-%s", br[k]->name);
            r = bst_get(br[i], "orders", id);
            cr_assert((r != NULL) == (i == k), "%s %s order %s", br[i]->name,
                      r ? "holds" : "lacks", id);
            free(r);
            r = bst_get(&head, "orders", id);
            cr_assert_not_null(r, "head lacks %s", id);
            free(r);
        }
    }
    /* the regions keep every record, the other region's branches' too */
    cr_assert_not_null(r = bst_get(&east, "orders", "o-w1"));
    free(r);
    cr_assert_not_null(r = bst_get(&west, "orders", "o-e2"));
    free(r);
}

/* The stored set of origin o at seq 1 in node t, decoded (the caller
 * frees *v and *buf). */
static void
stored_set(bst_node *t, bst_node *o, bs_csview **v, uint8_t **buf)
{
    bs_meta m = bst_meta(o);
    bs_errbuf err = {{0}};
    uint64_t first;
    bs_stream s;
    bs_slice set;
    bs_txn *txn;

    cr_assert(bst_stream(t, m.pk, m.inc, &s) && s.seq > 0,
              "%s holds nothing of %s", t->name, o->name);
    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_setlog_find(txn, s.idx, 1, &set, &first), &err, "find");
    *buf = malloc(set.n);
    memcpy(*buf, set.p, set.n);
    bs_txn_abort(txn);
    bst_ok(bs_changeset_decode(*buf, set.n, v, &err), &err, "decode");
}

Test(region, a_branchs_change_at_the_head_office_is_signed_by_that_branch)
{
    bs_meta me1 = bst_meta(&e1), meast = bst_meta(&east);
    bs_csview *v;
    uint8_t *buf;

    write_everywhere();
    settle();
    stored_set(&head, &e1, &v, &buf);
    cr_assert(memcmp(v->origin, me1.pk, BS_PK_LEN) == 0);
    cr_assert_eq(bs_changeset_verify(v, me1.pk), BS_OK,
                 "e1's set at head does not verify with e1's key");
    cr_assert_eq(bs_changeset_verify(v, meast.pk), BS_EBADSIG,
                 "e1's set at head verifies with its region's key");
    bs_changeset_free(v);
    free(buf);
    /* and the head office's own change at a branch, by the head's key */
    stored_set(&w2, &head, &v, &buf);
    cr_assert_eq(bs_changeset_verify(v, bst_meta(&head).pk), BS_OK);
    bs_changeset_free(v);
    free(buf);
}

/* A region that alters a branch's change on the way up: the head office
 * refuses it (the origin's signature), and nothing of it is applied. */
static int
alter_change(void *ctx, int from_a, uint8_t **msg, size_t *n)
{
    int *done = ctx;

    if (!from_a && !*done && *n > 64 && (*msg)[0] == BS_MSG_SET) {
        (*msg)[bst_last_change_byte(*msg + 1, *n - 1) + 1] ^= 0x01;
        *done = 1;
    }
    return 1;
}

Test(region, a_region_cannot_alter_a_branchs_change)
{
    bst_sync_result r;
    int done = 0;
    char *got;

    settle();
    put_ok(&e1, "notes", "forged", "{\"text\": \"original\"}");
    carry(&e1, &east);
    /* head initiates; east's messages (side b) are altered */
    if (bst_sync(&head, &east, alter_change, &done, &r) == BS_OK)
        cr_assert(r.sa.refused > 0 || r.err_a != BS_OK,
                  "head took an altered set without refusing it (received "
                  "%llu, refused %llu, sent %llu / %llu)",
                  (unsigned long long)r.sa.sets_received,
                  (unsigned long long)r.sa.refused,
                  (unsigned long long)r.sb.sets_sent,
                  (unsigned long long)r.sb.refused);
    cr_assert(done, "no set went up");
    cr_assert_null(got = bst_get(&head, "notes", "forged"),
                   "head applied an altered set: %s", got);
    sync_ok(&head, &east); /* the true bytes go through afterwards */
    cr_assert_not_null(got = bst_get(&head, "notes", "forged"));
    free(got);
}

Test(region, status_at_the_head_office_shows_the_tree)
{
    bs_status_opts o = {.now_ms = T0 + 100000, .retention_ms = 0};
    bs_errbuf err = {{0}};
    bs_meta m = bst_meta(&head);
    int seen_e1 = 0, seen_east = 0;
    bs_status st;
    bs_txn *t;

    settle(); /* the branches join, then write what they have seen */
    write_everywhere();
    settle();
    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    bst_ok(bs_status_read(t, &m, &o, &st, &err), &err, "status");
    bs_txn_abort(t);
    for (size_t i = 0; i < st.noffices; i++) {
        const bs_office_status *f = &st.offices[i];
        if (strcmp(f->name, "east") == 0) {
            seen_east = 1;
            cr_assert(f->region_hub && f->peer >= 0 && f->via[0] == '\0');
        } else if (strcmp(f->name, "e1") == 0) {
            seen_e1 = 1;
            cr_assert_str_eq(f->via, "east");
            cr_assert(!f->region_hub && f->peer < 0 && f->member);
            cr_assert(f->last_set_ms > 0 && f->changes == 2);
            cr_assert(f->has_seen && f->hub_seen > 0 &&
                          f->hub_seen <= f->hub_held,
                      "e1 had seen %llu of head's %llu",
                      (unsigned long long)f->hub_seen,
                      (unsigned long long)f->hub_held);
        }
    }
    cr_assert(seen_e1 && seen_east);
    bs_status_fini(&st);
}

/* X4r: a fresh branch joins through a regional hub only when its admin
 * pinned that hub with --hub; pinned only for being its first peer, the
 * regional hub's exchange is refused and nothing is written. */
Test(region, a_branch_joins_through_a_region_only_when_pinned_with_hub)
{
    bst_node x;
    bs_clock c = bst_clock_of(&ck[3]);
    bs_errbuf err = {{0}};
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_err rv;

    bst_node_new(&x, root, "x1", BS_ROLE_BRANCH, &c);
    bst_member_via(&head, &x, &east);
    carry(&head, &east);
    bst_pair(&east, &x);
    bst_pair(&x, &east); /* the first peer: pinned, but not with --hub */
    bst_fingerprint(&x, before);
    rv = bst_carry(&east, &x, NULL, &err);
    cr_assert_eq(rv, BS_EINFOBASE, "%s", bs_errmsg(&err, rv));
    cr_assert(strstr(bs_errmsg(&err, rv), "--hub") != NULL, "%s",
              bs_errmsg(&err, rv));
    bst_fingerprint(&x, after);
    cr_assert(memcmp(before, after, BS_HASH_LEN) == 0);
    bst_node_free(&x);
}

Test(region, only_a_regional_hub_relays_a_member_added_via_it)
{
    uint8_t pk[BS_PK_LEN];
    bs_errbuf err = {{0}};
    bs_err rv;

    memcpy(pk, bst_meta(&e1).pk, BS_PK_LEN);
    pk[0] ^= 1; /* another key */
    rv = bs_pairing_member_add(&head.core, "z9", pk, "e1", &err);
    cr_assert_eq(rv, BS_EINVAL, "%s", bs_errmsg(&err, rv));
    rv = bs_pairing_member_add(&head.core, "e1", pk, "east", &err);
    cr_assert_eq(rv, BS_EEXIST, "%s", bs_errmsg(&err, rv));
    rv = bs_pairing_member_add(&east.core, "z9", pk, "east", &err);
    cr_assert_eq(rv, BS_EPERM, "%s", bs_errmsg(&err, rv));
}

Test(region, a_revoked_regional_branch_is_refused_through_the_region)
{
    bs_errbuf err = {{0}};
    bs_err rv;
    char *got;

    settle();
    rv = bs_pairing_member_rm(&head.core, "e2", &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    carry(&head, &east); /* east learns of the revocation */
    put_ok(&e2, "notes", "late", "{\"text\": \"after\"}");
    rv = bst_carry(&e2, &east, NULL, &err);
    cr_assert_eq(rv, BS_EFORGED, "%s", bs_errmsg(&err, rv));
    cr_assert_null(got = bst_get(&east, "notes", "late"));
}

/* A rule version travels down through the regions: when the head office
 * makes a shared collection owner-scoped, every branch drops what is no
 * longer its own while the regions keep everything, and what a branch
 * writes next reaches only the head office, the regions and itself. */
Test(region, a_scope_that_narrows_reaches_branches_through_their_region)
{
    bst_node *br[] = {&e1, &e2, &w1, &w2};
    char *r;

    write_everywhere();
    settle();
    declare_owned("notes");
    put_ok(&w1, "notes", "n-w1b", "{\"shop\": \"w1\", \"text\": \"mine\"}");
    settle();
    for (size_t i = 0; i < 4; i++) {
        same_scope(br[i]);
        cr_assert_null(r = bst_get(br[i], "notes", "n-e1"), "%s: %s",
                       br[i]->name, r);
        r = bst_get(br[i], "notes", "n-w1b");
        cr_assert((r != NULL) == (br[i] == &w1), "%s and n-w1b", br[i]->name);
        free(r);
    }
    same_digest(&head, &east);
    same_digest(&head, &west);
    cr_assert_not_null(r = bst_get(&east, "notes", "n-w1b"));
    free(r);
}

/* ---- a regional hub cannot censor ---- */

/* The set with its first change left out, as a filtering relay writes it
 * (canonical, the origin's header and signature unchanged, no summary):
 * a censored copy.  NULL when the set is in summary form or not from
 * origin. */
static uint8_t *
censored(bs_slice set, const bs_meta *origin, size_t *n)
{
    Bs__ChangeSet cs = BS__CHANGE_SET__INIT;
    ProtobufCBinaryData kept[64];
    uint32_t om[1] = {0};
    const Bs__ChangeSet *in;
    bs_csview *v;
    uint8_t *out = NULL;
    size_t nc = 0;

    if (bs_changeset_decode(set.p, set.n, &v, NULL) != BS_OK)
        return NULL;
    in = v->pb_set;
    if (!v->summary_form && v->count >= 2 && v->count <= 64 &&
        memcmp(v->origin, origin->pk, BS_PK_LEN) == 0) {
        for (size_t i = 1; i < v->count; i++)
            kept[nc++] = (ProtobufCBinaryData){v->changes[i].n,
                                               (uint8_t *)v->changes[i].p};
        cs.header = in->header;
        cs.signature = in->signature;
        cs.n_changes = nc;
        cs.changes = kept;
        cs.n_omitted = 1;
        cs.omitted = om;
        out = malloc(bs__change_set__get_packed_size(&cs) + 1);
        cr_assert_not_null(out);
        *n = bs__change_set__pack(&cs, out + 1) + 1;
        out[0] = BS_MSG_SET;
    }
    bs_changeset_free(v);
    return out;
}

/* East (side a) censors e2's two-change set on its way to e1. */
static int
censor(void *ctx, int from_a, uint8_t **msg, size_t *n)
{
    bs_meta m = bst_meta(&e2);
    uint8_t *out;
    size_t on = 0;
    int *done = ctx;

    if (!from_a || *n < 2 || (*msg)[0] != BS_MSG_SET ||
        (out = censored((bs_slice){*msg + 1, *n - 1}, &m, &on)) == NULL)
        return 1;
    free(*msg);
    *msg = out;
    *n = on;
    (*done)++;
    return 1;
}

Test(region, a_branch_refuses_a_set_its_region_censored)
{
    static const bst_op two[] = {{"notes", "c1", "{\"n\": 1}"},
                                 {"notes", "c2", "{\"n\": 2}"}};
    bs_errbuf err = {{0}};
    bst_sync_result r;
    int done = 0;
    char *got;
    bs_err rv;

    settle();
    rv = bst_write(&e2, two, 2, NULL, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    carry(&e2, &east);
    rv = bst_sync(&east, &e1, censor, &done, &r);
    cr_assert_eq(rv, BS_OK, "%s / %s", r.msg_a, r.msg_b);
    cr_assert_eq(done, 1);
    cr_assert_eq(r.sb.refused, 1, "e1 refused %llu sets",
                 (unsigned long long)r.sb.refused);
    cr_assert_null(got = bst_get(&e1, "notes", "c2"), "%s", got);
    sync_ok(&east, &e1); /* the whole set afterwards */
    cr_assert_not_null(got = bst_get(&e1, "notes", "c1"));
    free(got);
    settle();
    same_scope(&e1);
}

/* A regional hub declared after the head office holds owner-scoped
 * records: the hub's stream brings those records before the record that
 * makes the new node a regional hub, so it first drops them as a branch
 * would (move-out); becoming a regional hub, it rebuilds them from its
 * log, and ends holding everything the head office holds. */
Test(region, a_region_declared_after_owned_records_keeps_them_all)
{
    bst_node north;
    bs_clock c = bst_clock_of(&ck[1]);
    char *r;

    write_everywhere();
    settle();
    put_ok(&head, "orders", "o-head", "{\"shop\": \"e1\", \"total\": 9}");
    bst_node_new(&north, root, "north", BS_ROLE_BRANCH, &c);
    bst_pair_region(&head, &north);
    bst_pair_hub(&north, &head);
    carry(&head, &north);
    same_digest(&head, &north);
    cr_assert_not_null(r = bst_get(&north, "orders", "o-head"));
    free(r);
    bst_node_free(&north);
}

/* ---- record snapshots through a regional hub (move-in) ---- */

/* Record coll/id at node t with every version, its writers named by
 * their keys (stream indexes are node-local): "alive hlc/origin/seq,
 * tomb ..., name=value@hlc/origin/seq ...", or "" when t lacks it. */
static void
versions_of(bst_node *t, const char *coll, const char *id, char *out,
            size_t cap)
{
    bs_errbuf err = {{0}};
    bs_streamtab tab;
    bs_record r;
    bs_arena a;
    bs_txn *txn;
    size_t n = 0;

    out[0] = '\0';
    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    bst_ok(bs_streams_load(txn, &tab), NULL, "streams");
    bs_arena_init(&a);
    if (bs_records_get(txn, coll, id, &a, &r, NULL) == BS_OK) {
        const bs_version *v[2] = {r.has_alive ? &r.alive : NULL,
                                  r.has_tomb ? &r.tomb : NULL};
        for (size_t i = 0; i < 2 + r.nfields; i++) {
            const bs_version *ver = i < 2 ? v[i] : &r.fields[i - 2].ver;
            const bs_stream *s;
            char name[BS_FIELD_NAME_MAX + 1] = "";
            char val[64] = "";

            if (ver == NULL)
                continue;
            s = bs_streams_get(&tab, ver->stream);
            cr_assert_not_null(s);
            if (i >= 2) {
                const bs_field *f = &r.fields[i - 2];
                snprintf(name, sizeof name, "%.*s", (int)f->namelen, f->name);
                if (f->val.type == BS_VTEXT)
                    snprintf(val, sizeof val, "%.*s", (int)f->val.len,
                             f->val.s);
                else
                    snprintf(val, sizeof val, "%lld", (long long)f->val.i);
            }
            n += (size_t)snprintf(
                out + n, cap - n, "%s=%s@%llu/%02x%02x%02x%02x/%llu ",
                i == 0   ? "alive"
                : i == 1 ? "tomb"
                         : name,
                val, (unsigned long long)ver->hlc, s->key[0], s->key[1],
                s->key[2], s->key[3], (unsigned long long)ver->seq);
            cr_assert_lt(n, cap);
        }
    }
    bs_arena_fini(&a);
    bs_streams_fini(&tab);
    bs_txn_abort(txn);
}

/* coll/id at b as at the head office, every field version included. */
static void
same_record(bst_node *b, const char *coll, const char *id)
{
    char h[2048], got[2048];

    versions_of(&head, coll, id, h, sizeof h);
    versions_of(b, coll, id, got, sizeof got);
    cr_assert(h[0] != '\0', "head lacks %s/%s", coll, id);
    cr_assert_str_eq(got, h, "%s's %s/%s differs from the head office's",
                     b->name, coll, id);
}

/*
 * e1 (under east, by file) writes an order and edits it; the head office
 * gives it to w1 (under west, by session).  w1 passed over every change
 * of it, so it wants the record; west asks the head office in turn,
 * keeps the answer as signed and relays it: w1 holds the whole record
 * with the head office's field versions, e1 drops it.
 */
Test(region, a_record_moved_across_regions_arrives_whole)
{
    bs_errbuf err = {{0}};
    bst_sync_result res;
    bs_xstats st;
    char *r;

    write_everywhere();
    put_ok(&e1, "orders", "o1", "{\"shop\": \"e1\", \"a\": 1, \"b\": \"x\"}");
    settle();
    put_ok(&e1, "orders", "o1", "{\"shop\": \"e1\", \"a\": 2, \"b\": \"x\"}");
    settle();
    cr_assert_null(bst_get(&w1, "orders", "o1"));
    put_ok(&head, "orders", "o1", "{\"shop\": \"w1\"}");
    settle();
    cr_assert_null(r = bst_get(&e1, "orders", "o1"), "e1 keeps %s", r);
    same_record(&w1, "orders", "o1");
    cr_assert_not_null(r = bst_get(&w1, "orders", "o1"));
    cr_assert(strstr(r, "\"a\":2") && strstr(r, "\"b\":\"x\""), "%s", r);
    free(r);
    for (bst_node **b = (bst_node *[]){&e1, &e2, &w1, &w2, NULL}; *b; b++)
        same_scope(*b);
    same_digest(&head, &east);
    same_digest(&head, &west);
    /* the want is met: nothing more is relayed */
    cr_assert_eq(bst_sync(&w1, &west, NULL, NULL, &res), BS_OK, "%s",
                 res.msg_a);
    cr_assert_eq(res.sb.snapshots_sent, 0);
    cr_assert_eq(res.sa.refused + res.sb.refused, 0);
    bst_ok(bst_carry(&west, &head, &st, &err), &err, "carry");
    cr_assert_eq(st.snapshots, 0);
}

/* The same the other way: to e2 under east, by file. */
Test(region, a_record_moved_across_regions_by_file_arrives_whole)
{
    char *r;

    put_ok(&w2, "orders", "o2", "{\"shop\": \"w2\", \"a\": 1}");
    settle();
    put_ok(&w2, "orders", "o2", "{\"shop\": \"w2\", \"a\": 1, \"c\": 3}");
    settle();
    put_ok(&head, "orders", "o2", "{\"shop\": \"e2\"}");
    settle();
    cr_assert_null(r = bst_get(&w2, "orders", "o2"), "w2 keeps %s", r);
    same_record(&e2, "orders", "o2");
    same_scope(&e2);
    same_scope(&w2);
}

/* A scope that widens (owner-scoped to shared) brings every record, with
 * its versions, to the branches of both regions. */
Test(region, a_scope_widening_reaches_regional_branches_whole)
{
    bst_node *br[] = {&e1, &e2, &w1, &w2};
    bs_collection c;
    bs_errbuf err = {{0}};

    write_everywhere();
    put_ok(&e1, "orders", "gone", "{\"shop\": \"e1\", \"total\": 1}");
    settle();
    bst_ok(bst_del(&e1, "orders", "gone", &err), &err, "delete");
    settle();
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "orders");
    c.scope = BS_SCOPE_SHARED;
    c.set = BS_RULE_SCOPE;
    bst_ok(bs_collections_declare(&head.core, &c, NULL, &err), &err, "declare");
    settle();
    for (size_t i = 0; i < 4; i++) {
        same_digest(&head, br[i]);
        for (size_t k = 0; k < 4; k++) {
            char id[80];
            snprintf(id, sizeof id, "o-%s", br[k]->name);
            same_record(br[i], "orders", id);
        }
    }
}

/* An exchange file from frames (env, sets, then snaps as type 4), sealed
 * by sk: a file a regional hub could write. */
static void
write_frames(const char *file, const bst_frames *fr, const bs_slice *snaps,
             size_t nsnaps, const uint8_t *sk)
{
    uint8_t tr[BS_HASH_LEN + BS_SIG_LEN], h8[8], hd[5], *msg;
    size_t cn = strlen(BS_FILE_CONTEXT) + 1;
    bs_hash_state h;
    FILE *f = fopen(file, "wb");

    cr_assert_not_null(f);
    bs_hash_init(&h);
    memcpy(h8, BS_FILE_MAGIC, 4);
    bs_put_u32be(h8 + 4, 1);
    fwrite(h8, 1, 8, f);
    bs_hash_update(&h, h8, 8);
    for (size_t i = 0; i < 1 + fr->nsets + nsnaps; i++) {
        bs_slice b = i == 0           ? fr->env
                     : i <= fr->nsets ? fr->sets[i - 1]
                                      : snaps[i - 1 - fr->nsets];
        hd[0] = i == 0 ? 1 : i <= fr->nsets ? 2 : 4;
        bs_put_u32be(hd + 1, (uint32_t)b.n);
        fwrite(hd, 1, 5, f);
        fwrite(b.p, 1, b.n, f);
        bs_hash_update(&h, hd, 5);
        bs_hash_update(&h, b.p, b.n);
    }
    bs_hash_final(&h, tr);
    msg = malloc(cn + BS_HASH_LEN);
    memcpy(msg, BS_FILE_CONTEXT, cn);
    memcpy(msg + cn, tr, BS_HASH_LEN);
    crypto_sign_detached(tr + BS_HASH_LEN, NULL, msg, cn + BS_HASH_LEN, sk);
    free(msg);
    hd[0] = 3;
    bs_put_u32be(hd + 1, sizeof tr);
    fwrite(hd, 1, 5, f);
    fwrite(tr, 1, sizeof tr, f);
    cr_assert_eq(fclose(f), 0);
}

/* Importing file at t is refused with `want` and writes nothing. */
static void
import_refused(bst_node *t, const char *file, bs_err want, const char *msg)
{
    uint8_t before[BS_HASH_LEN], after[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    bs_xstats st;
    bs_err rv;

    bst_fingerprint(t, before);
    rv = bst_import(t, file, &st, &err);
    cr_assert_eq(rv, want, "%s: %s (%s)", msg, bs_strerror(rv), err.msg);
    bst_fingerprint(t, after);
    cr_assert_eq(memcmp(before, after, BS_HASH_LEN), 0,
                 "%s: the refused file changed the store", msg);
}

/*
 * A regional hub only carries the head office's snapshots: one it alters
 * does not verify (N10), one it signs itself is forged (N9); the one the
 * head office signed, relayed as received, is merged.
 */
Test(region, a_region_relays_snapshots_but_cannot_forge_them)
{
    char path[256];
    bs_errbuf err = {{0}};
    bs_meta me = bst_meta(&east);
    bst_frames fr;
    bs_xstats st;
    uint8_t *p, *mine;
    size_t len, n;
    bs_snap *s;
    char *r;

    put_ok(&w2, "orders", "o3", "{\"shop\": \"w2\", \"a\": 1, \"b\": \"x\"}");
    settle();
    put_ok(&head, "orders", "o3", "{\"shop\": \"e2\"}");
    /* e2 learns the move and asks; east asks the head office in turn */
    carry(&head, &east);
    carry(&east, &e2);
    carry(&e2, &east);
    carry(&east, &head);
    carry(&head, &east);
    snprintf(path, sizeof path, "%s/east-e2.bsx", root);
    bst_ok(bst_export(&east, "e2", path, &err), &err, "export");
    p = bst_read_file(path, &len);
    cr_assert(bst_frames_split(p, len, &fr));
    cr_assert_geq(fr.nsnaps, 2, "east relays no snapshot");
    /* altered: "x" becomes "y" */
    {
        uint8_t *copy = malloc(fr.snaps[0].n), *x;
        bs_slice keep = fr.snaps[0];
        memcpy(copy, keep.p, keep.n);
        cr_assert_not_null(x = memmem(copy, keep.n, "\x2a\x01x", 3));
        x[2] = 'y';
        fr.snaps[0] = (bs_slice){copy, keep.n};
        write_frames(path, &fr, fr.snaps, fr.nsnaps, east.core.sk);
        import_refused(&e2, path, BS_EBADSIG, "altered by the region");
        fr.snaps[0] = keep;
        free(copy);
    }
    /* signed by the region itself */
    cr_assert_eq(bs_snap_decode(fr.snaps[0].p, fr.snaps[0].n, &s, &err), BS_OK);
    memcpy(s->hub, me.pk, BS_PK_LEN);
    cr_assert_eq(bs_snap_encode(s, east.core.sk, &mine, &n), BS_OK);
    bs_snap_free(s);
    write_frames(path, &fr, &(bs_slice){mine, n}, 1, east.core.sk);
    import_refused(&e2, path, BS_EFORGED, "signed by the region");
    free(mine);
    /* as the head office signed it */
    write_frames(path, &fr, fr.snaps, fr.nsnaps, east.core.sk);
    bst_ok(bst_import(&e2, path, &st, &err), &err, "import");
    cr_assert_geq(st.snapshots, 2);
    cr_assert_not_null(r = bst_get(&e2, "orders", "o3"));
    cr_assert(strstr(r, "\"b\":\"x\"") != NULL, "%s", r);
    free(r);
    same_record(&e2, "orders", "o3");
    bst_frames_fini(&fr);
    free(p);
}

/* ---- seeding through a regional hub (protocol.md 8.9) ---- */

/* `verify` finds nothing wrong at t. */
static void
verify_ok(bst_node *t)
{
    bs_errbuf err = {{0}};
    bs_verify_stats vs;
    bs_txn *tx;
    bs_err rv;

    bst_ok(bs_store_read(t->n->store, &tx, &err), &err, "read");
    rv = bs_verify_store(tx, NULL, &vs, &err);
    bs_txn_abort(tx);
    cr_assert_eq(rv, BS_OK, "verify at %s: %s", t->name, bs_errmsg(&err, rv));
}

static bs_err
mark_for_seed(bs_txn *t, void *arg, bs_errbuf *err)
{
    (void)err;
    return bs_movein_seed_peer(t, arg);
}

/* `branchsync peer seed B` at regional hub r. */
static void
seed_at(bst_node *r, bst_node *b)
{
    bs_meta mb = bst_meta(b);
    bs_errbuf err = {{0}};

    bst_ok(bs_store_write(r->n->store, mark_for_seed, mb.pk, &err), &err,
           "peer seed");
}

/* One sync of b with its region r that fails, its message holding `want`. */
static void
sync_refused(bst_node *b, bst_node *r, const char *want)
{
    bst_sync_result res;
    bs_err rv = bst_sync(b, r, NULL, NULL, &res);

    cr_assert_neq(rv, BS_OK, "%s <-> %s went through", b->name, r->name);
    cr_assert(strstr(res.msg_a, want) != NULL || strstr(res.msg_b, want),
              "%s <-> %s: %s / %s", b->name, r->name, res.msg_a, res.msg_b);
}

static void
advance(uint64_t ms)
{
    for (size_t i = 0; i < 7; i++)
        ck[i].ms += ms;
}

/*
 * A new branch behind west is seeded by west: the records of its scope
 * as the head office signed them (west asks the head office for every
 * collection first), its positions at the seed point, then the log.
 */
Test(region, a_new_branch_behind_a_region_is_seeded_by_it)
{
    bst_node w3;
    bs_clock c = bst_clock_of(&ck[6]);
    bst_sync_result res;
    char *r;

    write_everywhere();
    put_ok(&w1, "orders", "o-w3", "{\"shop\": \"w3\", \"total\": 7}");
    settle();
    bst_node_new(&w3, root, "w3", BS_ROLE_BRANCH, &c);
    bst_member_via(&head, &w3, &west);
    bst_pair(&west, &w3);
    bst_pair_hub(&w3, &west);
    round_trip(); /* west learns w3 is a member */
    seed_at(&west, &w3);
    { /* a regional hub seeds over the network only */
        char path[256];
        bs_errbuf err = {{0}};
        snprintf(path, sizeof path, "%s/west-w3.bsx", root);
        cr_assert_eq(bst_export(&west, "w3", path, &err), BS_EINVAL);
        cr_assert(strstr(err.msg, "seeds over the network only") != NULL, "%s",
                  err.msg);
    }
    /* west holds no answer of the head office yet: it asks, and says so */
    sync_refused(&w3, &west, "waits for the hub's record snapshots");
    sync_ok(&west, &head);
    cr_assert_eq(bst_sync(&w3, &west, NULL, NULL, &res), BS_OK, "%s / %s",
                 res.msg_a, res.msg_b);
    cr_assert_gt(res.sb.snapshots_sent, 0, "not a seed");
    cr_assert_eq(res.sa.refused + res.sb.refused, 0, "%s", res.msg_a);
    same_scope(&w3);
    same_record(&w3, "orders", "o-w3");
    cr_assert_not_null(r = bst_get(&w3, "notes", "n-e1"));
    free(r);
    {
        bs_errbuf err = {{0}};
        bs_seeding sd;
        bs_txn *t;
        bst_ok(bs_store_read(w3.n->store, &t, &err), &err, "read");
        cr_assert_eq(bs_movein_seed_get(t, &sd), BS_ENOTFOUND,
                     "the seed did not end");
        bs_txn_abort(t);
    }
    /* then the log, both ways */
    put_ok(&w3, "notes", "n-w3", "{\"text\": \"hi\"}");
    put_ok(&head, "catalog", "p2", "{\"price\": 3}");
    sync_ok(&w3, &west);
    sync_ok(&west, &head);
    sync_ok(&w3, &west);
    same_scope(&w3);
    cr_assert_not_null(r = bst_get(&head, "notes", "n-w3"));
    free(r);
    verify_ok(&w3);
    bst_node_free(&w3);
}

/*
 * w1 is offline past the retention limit: it edits a record the head
 * office deletes and everyone purges meanwhile.  West refuses it (X7)
 * until west's admin runs `peer seed w1`; the seed replaces w1's data
 * with the head office's signed snapshots of its scope, its newer edit of
 * a record that still exists survives and travels, its older one loses,
 * and the purged record is back nowhere.
 */
Test(region, a_stale_branch_behind_a_region_is_seeded_again_and_converges)
{
    bst_node *others[] = {&head, &east, &west, &e1, &e2, &w2};
    const uint64_t day = 86400000ull;
    bs_purge_stats ps;
    bs_errbuf err = {{0}};
    char *r;

    write_everywhere();
    put_ok(&head, "notes", "a", "{\"v\": \"x\"}");
    put_ok(&head, "notes", "c", "{\"v\": \"x\"}");
    put_ok(&head, "notes", "d", "{\"v\": \"x\"}");
    settle();
    advance(day); /* w1 goes offline and edits */
    put_ok(&w1, "notes", "a", "{\"v\": \"w1\"}");
    put_ok(&w1, "notes", "c", "{\"v\": \"w1\"}");
    put_ok(&w1, "notes", "d", "{\"v\": \"w1\"}");
    put_ok(&w1, "orders", "o-w1", "{\"shop\": \"w1\", \"total\": 5}");
    advance(day); /* the head office, later */
    bst_ok(bst_del(&head, "notes", "a", &err), &err, "delete");
    put_ok(&head, "notes", "d", "{\"v\": \"head\"}");
    for (int i = 0; i < 5; i++) { /* everyone else goes on, for months */
        advance(25 * day);
        carry(&e1, &east);
        carry(&e2, &east);
        sync_ok(&w2, &west);
        carry(&east, &head);
        sync_ok(&west, &head);
        carry(&head, &east);
        carry(&east, &e1);
        carry(&east, &e2);
        sync_ok(&w2, &west);
    }
    for (size_t i = 0; i < 6; i++) {
        bst_ok(bs_purge_run(&others[i]->core, &ps, &err), &err, "purge");
        if (others[i] == &head)
            cr_assert_geq(ps.purged, 1, "w1 silent: a is purged at head");
    }
    sync_refused(&w1, &west,
                 "seed it again with `branchsync peer seed w1` here");
    sync_refused(&west, &w1, "its regional hub's administrator seeds it again");
    seed_at(&west, &w1);
    sync_refused(&w1, &west, "waits for the hub's record snapshots");
    sync_ok(&west, &head);
    sync_ok(&w1, &west); /* the seed */
    settle();
    for (size_t i = 0; i < 7; i++) {
        bst_node *n = all[i];
        cr_assert_null(r = bst_get(n, "notes", "a"), "%s holds a: %s", n->name,
                       r);
        cr_assert_not_null(r = bst_get(n, "notes", "c"), "%s", n->name);
        cr_assert(strstr(r, "\"v\":\"w1\""), "%s's c: %s", n->name, r);
        free(r);
        cr_assert_not_null(r = bst_get(n, "notes", "d"), "%s", n->name);
        cr_assert(strstr(r, "\"v\":\"head\""), "%s's d: %s", n->name, r);
        free(r);
    }
    cr_assert_not_null(r = bst_get(&head, "orders", "o-w1"));
    cr_assert(strstr(r, "\"total\":5"), "%s", r);
    free(r);
    same_scope(&w1);
    same_digest(&head, &west);
    same_digest(&head, &east);
    verify_ok(&w1);
    verify_ok(&west);
}

static bs_err
ask_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    (void)err;
    return bs_relay_note(t, arg, NULL, 0, NULL, 0, 1);
}

/* A new branch behind west, admitted, paired and seeded by west. */
static void
seeded_branch(bst_node *b, const char *name, bst_clock *c0)
{
    bs_clock c = bst_clock_of(c0);
    bst_sync_result res;
    bs_err rv;

    bst_node_new(b, root, name, BS_ROLE_BRANCH, &c);
    bst_member_via(&head, b, &west);
    bst_pair(&west, b);
    bst_pair_hub(b, &west);
    round_trip();
    seed_at(&west, b);
    if ((rv = bst_sync(b, &west, NULL, NULL, &res)) != BS_OK) {
        /* west asks the head office first */
        cr_assert(strstr(res.msg_b, "waits for the hub's record snapshots"),
                  "%s / %s", res.msg_a, res.msg_b);
        sync_ok(&west, &head);
        rv = bst_sync(b, &west, NULL, NULL, &res);
    }
    cr_assert_eq(rv, BS_OK, "%s / %s", res.msg_a, res.msg_b);
    cr_assert_gt(res.sb.snapshots_sent, 0, "%s: not a seed", name);
}

/*
 * West kept the head office's snapshot of note z; the head office then
 * deletes z and purges it, while west still holds its tombstone.  West's
 * next answer of the whole collection no longer holds z, so the snapshot
 * it kept goes with it: a branch it seeds afterwards does not get z
 * back.
 */
Test(region, a_record_the_head_office_purged_is_not_relayed_again)
{
    const uint64_t day = 86400000ull;
    bst_clock c3 = {T0, 1}, c4 = {T0, 1};
    bst_node w3, w4;
    bs_meta mw = bst_meta(&west);
    bs_purge_stats ps;
    bs_errbuf err = {{0}};
    char *r;

    write_everywhere();
    put_ok(&head, "notes", "z", "{\"text\": \"old\"}");
    settle();
    seeded_branch(&w3, "w3", &c3);
    cr_assert_not_null(r = bst_get(&w3, "notes", "z"));
    free(r);
    bst_ok(bst_del(&head, "notes", "z", &err), &err, "delete");
    settle();
    for (int i = 0; i < 4; i++) {
        advance(25 * day);
        c3.ms += 25 * day;
        c4.ms += 25 * day;
        round_trip();
        sync_ok(&w3, &west);
    }
    bst_ok(bs_purge_run(&head.core, &ps, &err), &err, "purge");
    cr_assert_geq(ps.purged, 1);
    /* west asks the head office for every collection again */
    bst_ok(bs_store_write(west.n->store, ask_txn, mw.pk, &err), &err, "ask");
    sync_ok(&west, &head);
    seeded_branch(&w4, "w4", &c4);
    cr_assert_null(r = bst_get(&w4, "notes", "z"), "z came back: %s", r);
    same_scope(&w4);
    bst_node_free(&w3);
    bst_node_free(&w4);
}

/*
 * A branch that exchanged lately is seeded again by its region only from
 * answers of the head office that cover what it holds (a seed drops its
 * records and rebuilds them from the snapshots): west asks first, then
 * seeds; nothing the branch held is lost, its own edits stay.
 */
Test(region, a_branch_that_exchanged_lately_is_seeded_again_by_its_region)
{
    bst_clock c3 = {T0, 1};
    bst_node w3;
    char *r;

    write_everywhere();
    settle();
    seeded_branch(&w3, "w3", &c3);
    put_ok(&w3, "notes", "n-w3", "{\"text\": \"mine\"}");
    put_ok(&head, "notes", "n-head", "{\"text\": \"later\"}");
    settle();
    sync_ok(&w3, &west);
    sync_ok(&w3, &west);
    seed_at(&west, &w3);
    /* west's answers, kept before n-head, would lose it: it asks again */
    sync_refused(&w3, &west, "waits for the hub's record snapshots");
    sync_ok(&west, &head);
    sync_ok(&w3, &west); /* the seed */
    settle();
    sync_ok(&w3, &west);
    same_scope(&w3);
    cr_assert_not_null(r = bst_get(&head, "notes", "n-w3"));
    free(r);
    cr_assert_not_null(r = bst_get(&w3, "notes", "n-e1"));
    free(r);
    verify_ok(&w3);
    bst_node_free(&w3);
}
