/*
 * test_snapshot.c - record snapshots signed by the hub (move-in, issue 9
 * item 4; replication/snapshot.h, admission N7-N12, docs/protocol.md 2.9
 * and 7.3).
 *
 * The golden vector (tests/vectors/snapshot_v1.exp, computed
 * independently) decodes, verifies and is what the encoder writes; the
 * decoder refuses what is not canonical or out of shape; a record the hub
 * moves from one branch to another reaches the new owner whole, by file
 * and over a session, with per-scope digests equal, and stays whole when
 * a rule version rebuilds it; a widened scope brings the records and the
 * tombstones, so an older edit cannot revive a record the hub deleted
 * while it was outside the branch's scope; an exchange file with a
 * tampered snapshot, a snapshot signed or carried by a branch, or a
 * snapshot of a record outside the receiver's scope is refused (exit 2)
 * with the store
 * unchanged byte for byte; a peer that does not announce snapshots (a
 * version-1 node) gets no snapshot frame, and a version-1 decoder reads
 * the new envelope; a revoked branch's records stay at the hub and reach
 * the branch they are moved to.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/collections.h"
#include "../../replication/pairing.h"
#include "../../replication/scope.h"
#include "../../replication/movein.h"
#include "branchsync.pb-c.h"
#include "branchsync_v1.pb-c.h"

#define T0 1800000000000ull

static char root[128], path[300];
static bst_clock ch = {T0, 1}, ca = {T0, 1}, cb = {T0, 1};
static bst_node head, tallinn, riga;

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

static void
settle(void)
{
    for (int i = 0; i < 2; i++) {
        carry(&tallinn, &head);
        carry(&riga, &head);
        carry(&head, &tallinn);
        carry(&head, &riga);
    }
}

static void
declare(const char *coll, const char *scope, int policy)
{
    bs_collection r;
    bs_errbuf err = {{0}};
    bs_err rv;

    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "%s", coll);
    cr_assert_eq(bs_scope_parse(scope, &r.scope), BS_OK);
    snprintf(r.owner_field, sizeof r.owner_field, "office");
    r.set = BS_RULE_SCOPE | BS_RULE_OWNER_FIELD;
    if (policy >= 0) {
        r.policy = (bs_policy)policy;
        r.set |= BS_RULE_POLICY;
    }
    rv = bs_collections_declare(&head.core, &r, NULL, &err);
    cr_assert_eq(rv, BS_OK, "declare: %s", bs_errmsg(&err, rv));
}

static void
put(bst_node *t, const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, coll, id, json, &err);

    cr_assert_eq(rv, BS_OK, "%s: %s", t->name, bs_errmsg(&err, rv));
}

static void
setup(void)
{
    bs_clock a = bst_clock_of(&ch), b = bst_clock_of(&ca),
             c = bst_clock_of(&cb);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch.ms = ca.ms = cb.ms = T0;
    bst_root(root, sizeof root, "snapshot");
    snprintf(path, sizeof path, "%s/x.bsx", root);
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, &b);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &tallinn);
    bst_pair2(&head, &riga);
    settle();
    declare("orders", "owner", -1);
    settle();
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_snapshot");
}

TestSuite(snapshot, .init = setup, .fini = teardown, .timeout = 120);

/* The hub's digest of t's scope equals t's own digest. */
static void
assert_scope_converged(bst_node *t)
{
    bs_meta mh = bst_meta(&head), mt = bst_meta(t);
    uint8_t dh[BS_HASH_LEN], dt[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    uint64_t nh, nt;
    bs_txn *tx;

    cr_assert_eq(bs_store_read(head.core.store, &tx, NULL), BS_OK);
    bst_ok(bs_scope_digest(tx, &mh, mt.pk, dh, &nh, &err), &err, "scope");
    bs_txn_abort(tx);
    bst_digest(t, dt, &nt);
    cr_assert(nh == nt && memcmp(dh, dt, BS_HASH_LEN) == 0,
              "%s: its scope at the hub (%llu records) differs from its data "
              "(%llu)",
              t->name, (unsigned long long)nh, (unsigned long long)nt);
}

static void
assert_record(bst_node *t, const char *coll, const char *id, const char *want)
{
    char *j = bst_get(t, coll, id);

    cr_assert_not_null(j, "%s: %s/%s missing", t->name, coll, id);
    cr_assert_str_eq(j, want, "%s: %s/%s", t->name, coll, id);
    free(j);
}

/* ---- the golden vector and the decoder ---- */

static size_t
unhex(uint8_t *out, size_t max, const char *s)
{
    size_t n = strlen(s) / 2;

    cr_assert(n <= max);
    cr_assert_eq(bs_unhex(out, n, s), BS_OK);
    return n;
}

/* The value of `key` in tests/vectors/snapshot_v1.exp (into val). */
static void exp_value_in(const char *file, const char *key, char *val,
                         size_t n);
static void
exp_value(const char *key, char *val, size_t n)
{
    exp_value_in("snapshot_v1.exp", key, val, n);
}

/* The value of `key` in tests/vectors/<file> (into val). */
static void
exp_value_in(const char *file, const char *key, char *val, size_t n)
{
    char p[4096], line[2048];
    const char *slash = strrchr(__FILE__, '/');
    FILE *f;

    snprintf(p, sizeof p, "%.*s/../vectors/%s", (int)(slash - __FILE__),
             __FILE__, file);
    cr_assert_not_null(f = fopen(p, "r"), "cannot open %s", p);
    val[0] = '\0';
    while (fgets(line, sizeof line, f) != NULL) {
        char k[64], v[1600];
        if (line[0] != '#' && sscanf(line, "%63s %1599s", k, v) == 2 &&
            strcmp(k, key) == 0)
            snprintf(val, n, "%s", v);
    }
    fclose(f);
    cr_assert(val[0] != '\0', "%s: no %s", p, key);
}

Test(snapshot, golden_vector)
{
    uint8_t seed[32], pk[BS_PK_LEN], sk[BS_SK_LEN], bytes[1024], *mine;
    char hexs[1600], hpk[80];
    size_t n, mn;
    bs_errbuf err = {{0}};
    bs_snap *s;

    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    crypto_sign_seed_keypair(pk, sk, seed);
    exp_value("pk", hpk, sizeof hpk);
    bs_hex(hexs, pk, BS_PK_LEN);
    cr_assert_str_eq(hexs, hpk);
    exp_value("snapshot", hexs, sizeof hexs);
    n = unhex(bytes, sizeof bytes, hexs);
    cr_assert_eq(bs_snap_decode(bytes, n, &s, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(bs_snap_verify(s, pk), BS_OK);
    cr_assert_str_eq(s->coll, "orders");
    cr_assert_str_eq(s->id, "o1");
    cr_assert(s->has_alive && !s->has_tomb && !s->done);
    cr_assert_eq(s->alive.hlc, (1700000000000ull << 16) + 1);
    cr_assert_eq(s->alive.seq, 4);
    cr_assert_eq(s->nfields, 2);
    cr_assert_str_eq(s->fields[0].name, "n");
    cr_assert_eq(s->fields[0].val.type, BS_VINT);
    cr_assert_eq(s->fields[0].val.i, -3);
    cr_assert_eq(s->fields[0].ver.seq, 3);
    cr_assert_str_eq(s->fields[1].name, "office");
    /* the encoder writes exactly these bytes (Ed25519 is deterministic) */
    cr_assert_eq(bs_snap_encode(s, sk, &mine, &mn), BS_OK);
    cr_assert(mn == n && memcmp(mine, bytes, n) == 0,
              "bs_snap_encode differs from snapshot_v1.exp");
    free(mine);
    /* another key does not verify it */
    pk[0] ^= 1;
    cr_assert_eq(bs_snap_verify(s, pk), BS_EBADSIG);
    bs_snap_free(s);
}

/* The batch vector (protocol.md 2.11): decodes, verifies, its bodies
 * match their hashes and decode as snapshots, and the encoder writes the
 * same bytes; altered, it does not verify. */
Test(snapshot, golden_batch)
{
    uint8_t seed[32], pk[BS_PK_LEN], sk[BS_SK_LEN], bytes[1024], *mine;
    char hexs[1600];
    bs_slice bodies[2];
    uint8_t *enc[2];
    size_t n, mn;
    bs_errbuf err = {{0}};
    bs_snapbatch *b;
    bs_snap *s[2];

    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    crypto_sign_seed_keypair(pk, sk, seed);
    exp_value_in("snapbatch_v1.exp", "batch", hexs, sizeof hexs);
    n = unhex(bytes, sizeof bytes, hexs);
    cr_assert_eq(bs_snapbatch_decode(bytes, n, &b, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(b->n, 2);
    cr_assert_eq(b->created_ms, 1700000000000ull);
    cr_assert_eq(bs_snapbatch_verify(b, pk), BS_OK);
    for (size_t i = 0; i < 2; i++) {
        cr_assert(bs_snapbatch_body_ok(b, i));
        cr_assert_eq(bs_snapbatch_snap(b, i, &s[i], &err), BS_OK, "%s",
                     err.msg);
        cr_assert(s[i]->batched);
        cr_assert_eq(bs_snap_encode_body(s[i], &enc[i], &bodies[i].n), BS_OK);
        bodies[i].p = enc[i];
    }
    cr_assert_str_eq(s[0]->id, "o1");
    cr_assert_eq(s[0]->nfields, 2);
    cr_assert(s[1]->done && s[1]->ncovered == 1 && s[1]->covered[0].seq == 4);
    cr_assert_eq(bs_snapbatch_encode(b->infobase, pk, b->created_ms, bodies, 2,
                                     sk, &mine, &mn),
                 BS_OK);
    cr_assert(mn == n && memcmp(mine, bytes, n) == 0,
              "bs_snapbatch_encode differs from snapbatch_v1.exp");
    free(mine);
    for (size_t i = 0; i < 2; i++) {
        free(enc[i]);
        bs_snap_free(s[i]);
    }
    pk[0] ^= 1; /* another key */
    cr_assert_eq(bs_snapbatch_verify(b, pk), BS_EBADSIG);
    bs_snapbatch_free(b);
    /* a body byte altered: the batch decodes, the body misses its hash */
    bytes[n - 1] ^= 1;
    cr_assert_eq(bs_snapbatch_decode(bytes, n, &b, &err), BS_OK, "%s", err.msg);
    cr_assert(bs_snapbatch_body_ok(b, 0) && !bs_snapbatch_body_ok(b, 1));
    bs_snapbatch_free(b);
    /* cut short: not a batch */
    cr_assert_eq(bs_snapbatch_decode(bytes, n - 3, &b, &err), BS_EMALFORMED);
}

/* The version-2 batch vector (protocol.md 2.12): decodes, verifies, its
 * bodies match the one hash, decode to what version 1 carries (a field
 * without a version at the record's alive; each writer's full key), and
 * the encoder writes the same bytes; a body byte altered misses the
 * hash; a writer number past the header's list is malformed. */
Test(snapshot, golden_batch_v2)
{
    uint8_t seed[32], pk[BS_PK_LEN], sk[BS_SK_LEN], bytes[1024], *mine;
    uint8_t writer[BS_STREAM_KEY_LEN];
    char hexs[1600];
    bs_slice bodies[2];
    uint8_t *enc[2];
    size_t n, mn;
    bs_errbuf err = {{0}};
    bs_snapbatch *b;
    bs_snap *s[2];

    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    crypto_sign_seed_keypair(pk, sk, seed);
    memcpy(writer, pk, BS_PK_LEN);
    memset(writer + BS_PK_LEN, 0x22, BS_INC_LEN);
    exp_value_in("snapbatch_v2.exp", "batch", hexs, sizeof hexs);
    n = unhex(bytes, sizeof bytes, hexs);
    cr_assert_eq(bs_snapbatch_decode(bytes, n, &b, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(b->version, 2);
    cr_assert_eq(b->n, 2);
    cr_assert_eq(b->nwriters, 1);
    cr_assert_eq(bs_snapbatch_verify(b, pk), BS_OK);
    cr_assert(bs_snapbatch_bodies_ok(b));
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(bs_snapbatch_snap(b, i, &s[i], &err), BS_OK, "%s",
                     err.msg);
        cr_assert(s[i]->batched);
        cr_assert_eq(s[i]->created_ms, 1700000000000ull, "the header's");
        cr_assert_eq(bs_snap_encode_body2(s[i], &enc[i], &bodies[i].n), BS_OK);
        bodies[i].p = enc[i];
    }
    cr_assert_str_eq(s[0]->coll, "orders");
    cr_assert_str_eq(s[0]->id, "o1");
    cr_assert(s[0]->has_alive && !s[0]->has_tomb);
    cr_assert_eq(s[0]->alive.seq, 4);
    cr_assert_eq(memcmp(s[0]->alive.key, writer, sizeof writer), 0);
    cr_assert_eq(s[0]->nfields, 2);
    cr_assert_eq(s[0]->fields[0].val.i, -3);
    cr_assert_eq(s[0]->fields[0].ver.seq, 3);
    cr_assert_eq(s[0]->fields[0].ver.hlc, 1700000000000ull << 16);
    cr_assert_str_eq(s[0]->fields[1].val.s, "tallinn");
    cr_assert_eq(s[0]->fields[1].ver.seq, 4, "no version: the alive one");
    cr_assert_eq(memcmp(s[0]->fields[1].ver.key, writer, sizeof writer), 0);
    cr_assert(s[1]->done && s[1]->ncovered == 1 && s[1]->covered[0].seq == 4);
    cr_assert_eq(bs_snapbatch_encode2(b->infobase, pk, b->created_ms, writer, 1,
                                      bodies, 2, sk, &mine, &mn),
                 BS_OK);
    cr_assert(mn == n && memcmp(mine, bytes, n) == 0,
              "bs_snapbatch_encode2 differs from snapbatch_v2.exp");
    free(mine);
    for (size_t i = 0; i < 2; i++) {
        free(enc[i]);
        bs_snap_free(s[i]);
    }
    bs_snapbatch_free(b);
    /* a body byte altered: the batch decodes, its bodies miss the hash */
    bytes[n - 1] ^= 1;
    cr_assert_eq(bs_snapbatch_decode(bytes, n, &b, &err), BS_OK, "%s", err.msg);
    cr_assert(!bs_snapbatch_bodies_ok(b));
    bs_snapbatch_free(b);
    bytes[n - 1] ^= 1;
    /* body 1's alive names writer 2 of 1 (its `30 01`, at offset 30 of
     * the body, made `30 02`) */
    {
        char bh[400];
        uint8_t body[200], *p;
        size_t bn;

        exp_value_in("snapbatch_v2.exp", "body1", bh, sizeof bh);
        bn = unhex(body, sizeof body, bh);
        p = memmem(bytes, n, body, bn);
        cr_assert_not_null(p);
        cr_assert_eq(p[30], 0x30);
        p[31] = 2;
        cr_assert_eq(bs_snapbatch_decode(bytes, n, &b, &err), BS_OK, "%s",
                     err.msg);
        cr_assert_eq(bs_snapbatch_snap(b, 0, &s[0], &err), BS_EMALFORMED);
        cr_assert(strstr(err.msg, "bad version") != NULL, "%s", err.msg);
        bs_snapbatch_free(b);
    }
}

/* A version-2 batch may carry version-1 bodies (the seed marker is one);
 * a version-1 batch may not carry a writer's number, nor version 2's
 * header fields. */
Test(snapshot, batch_v2_takes_v1_bodies_and_v1_takes_no_numbers)
{
    uint8_t seed[32], pk[BS_PK_LEN], sk[BS_SK_LEN], bytes[1024], *out;
    uint8_t writer[BS_STREAM_KEY_LEN];
    char hexs[1600];
    bs_slice body;
    size_t n, on;
    bs_errbuf err = {{0}};
    bs_snapbatch *b;
    bs_snap *s;

    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    crypto_sign_seed_keypair(pk, sk, seed);
    memcpy(writer, pk, BS_PK_LEN);
    memset(writer + BS_PK_LEN, 0x22, BS_INC_LEN);
    exp_value_in("snapbatch_v1.exp", "seed_marker_body", hexs, sizeof hexs);
    body.n = unhex(bytes, sizeof bytes, hexs);
    body.p = bytes;
    cr_assert_eq(
        bs_snapbatch_encode2((const uint8_t *)"\x11\x11\x11\x11"
                                              "\x11\x11\x11\x11\x11\x11\x11\x11"
                                              "\x11\x11\x11\x11",
                             pk, 1, writer, 1, &body, 1, sk, &out, &on),
        BS_OK);
    cr_assert_eq(bs_snapbatch_decode(out, on, &b, &err), BS_OK, "%s", err.msg);
    cr_assert(bs_snapbatch_bodies_ok(b));
    cr_assert_eq(bs_snapbatch_snap(b, 0, &s, &err), BS_OK, "%s", err.msg);
    cr_assert(s->seed && s->done && s->ncovered == 1);
    bs_snap_free(s);
    bs_snapbatch_free(b);
    free(out);
    /* version 1's vector with a writer number in body 1's alive: refused */
    {
        Bs__SnapBody *pb;
        uint8_t nb[512];
        size_t nn;

        exp_value_in("snapbatch_v1.exp", "batch", hexs, sizeof hexs);
        n = unhex(bytes, sizeof bytes, hexs);
        cr_assert_eq(bs_snapbatch_decode(bytes, n, &b, &err), BS_OK);
        cr_assert_eq(bs_snapbatch_snap(b, 0, &s, &err), BS_OK, "%s", err.msg);
        pb = bs__snap_body__unpack(NULL, s->body.n, s->body.p);
        cr_assert_not_null(pb);
        pb->alive->writer = 1;
        nn = bs__snap_body__pack(pb, nb);
        bs__snap_body__free_unpacked(pb, NULL);
        bs_snap_free(s);
        bs_snapbatch_free(b);
        body = (bs_slice){nb, nn};
        cr_assert_eq(
            bs_snapbatch_encode((const uint8_t *)"\x11\x11\x11\x11"
                                                 "\x11\x11\x11\x11\x11\x11\x11"
                                                 "\x11\x11\x11\x11\x11",
                                pk, 1, &body, 1, sk, &out, &on),
            BS_OK);
        cr_assert_eq(bs_snapbatch_decode(out, on, &b, &err), BS_OK);
        cr_assert_eq(bs_snapbatch_snap(b, 0, &s, &err), BS_EMALFORMED);
        bs_snapbatch_free(b);
        free(out);
    }
}

/* A seed's loop over a batch: each body decoded into one reused
 * snapshot (bs_snapbatch_snap_into) is what bs_snapbatch_snap gives,
 * nothing of the body before remains, and its memory is the same chunk
 * from one body to the next (no malloc per body). */
Test(snapshot, batch_bodies_decode_into_one_reused_snapshot)
{
    uint8_t bytes[1024];
    char hexs[1600];
    size_t n;
    bs_errbuf err = {{0}};
    bs_snapbatch *b;
    bs_snap s, *one;
    void *chunk = NULL;

    exp_value_in("snapbatch_v1.exp", "batch", hexs, sizeof hexs);
    n = unhex(bytes, sizeof bytes, hexs);
    cr_assert_eq(bs_snapbatch_decode(bytes, n, &b, &err), BS_OK, "%s", err.msg);
    bs_snap_init(&s);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < b->n; i++) {
            cr_assert_eq(bs_snapbatch_snap_into(b, i, &s, &err), BS_OK, "%s",
                         err.msg);
            cr_assert_eq(bs_snapbatch_snap(b, i, &one, &err), BS_OK, "%s",
                         err.msg);
            cr_assert(s.batched && s.done == one->done);
            cr_assert_str_eq(s.coll, one->coll);
            cr_assert_str_eq(s.id, one->id);
            cr_assert_eq(s.nfields, one->nfields);
            cr_assert_eq(s.ncovered, one->ncovered);
            cr_assert(s.body.p == one->body.p && s.body.n == one->body.n);
            for (size_t f = 0; f < s.nfields; f++) {
                cr_assert_str_eq(s.fields[f].name, one->fields[f].name);
                cr_assert(bs_value_eq(&s.fields[f].val, &one->fields[f].val));
                cr_assert_eq(s.fields[f].ver.seq, one->fields[f].ver.seq);
            }
            bs_snap_free(one);
            if (chunk == NULL)
                chunk = s.arena.head;
            cr_assert_eq(s.arena.head, chunk, "a new chunk for body %zu", i);
        }
    }
    cr_assert(s.done && s.nfields == 0, "body 1 (a done marker) last");
    bs_snap_fini(&s);
    bs_snap_fini(&s); /* finished twice: safe */
    bs_snapbatch_free(b);
}

/* Versions equal member by member (not their padding). */
static int
same_ver(const bs_snapver *a, const bs_snapver *b)
{
    return a->hlc == b->hlc && a->seq == b->seq && a->prio == b->prio &&
           memcmp(a->key, b->key, sizeof a->key) == 0;
}

/* A body of every kind of value, both versions, and a done marker with a
 * vector, batched: each decodes (snapshot.c's own reader, protobuf-c's
 * structures) to what was encoded, and a field out of order, a field
 * repeated or an unknown field is still refused as not canonical. */
Test(snapshot, every_kind_of_body_decodes_as_encoded)
{
    uint8_t pk[BS_PK_LEN], sk[BS_SK_LEN], *body[2], *bb, *bad;
    bs_slice bodies[2];
    size_t bn;
    bs_errbuf err = {{0}};
    bs_snapbatch *b;
    bs_snap s[2], got;
    bs_snapfield f[6];
    bs_pos cov[2];
    const char *names[6] = {"a", "b", "c", "d", "e", "f"};

    crypto_sign_keypair(pk, sk);
    memset(s, 0, sizeof s);
    memset(f, 0, sizeof f);
    for (int i = 0; i < 6; i++) {
        f[i].name = names[i];
        f[i].ver.hlc = 1000 + (uint64_t)i;
        f[i].ver.seq = 300 + (uint64_t)i;
        f[i].ver.prio = (uint32_t)i;
        memset(f[i].ver.key, 0x40 + i, sizeof f[i].ver.key);
    }
    f[0].val.type = BS_VNULL;
    f[1].val.type = BS_VTRUE;
    f[2].val.type = BS_VFALSE;
    f[3].val.type = BS_VINT;
    f[3].val.i = -1234567890123ll;
    f[4].val.type = BS_VREAL;
    f[4].val.d = -2.5e-7;
    f[5].val.type = BS_VTEXT;
    f[5].val.s = "Tallinn \xc3\xa4";
    f[5].val.len = (uint32_t)strlen(f[5].val.s);
    memset(s[0].infobase, 0x11, BS_INFOBASE_LEN);
    memcpy(s[0].hub, pk, BS_PK_LEN);
    snprintf(s[0].coll, sizeof s[0].coll, "orders");
    snprintf(s[0].id, sizeof s[0].id, "o-1");
    s[0].has_alive = s[0].has_tomb = 1;
    s[0].alive = f[3].ver;
    s[0].tomb = f[1].ver;
    s[0].tomb.hlc = UINT64_MAX;
    s[0].fields = f;
    s[0].nfields = 6;
    s[0].created_ms = 1700000000123ull;
    memcpy(s[1].infobase, s[0].infobase, BS_INFOBASE_LEN);
    memcpy(s[1].hub, pk, BS_PK_LEN);
    snprintf(s[1].coll, sizeof s[1].coll, "orders");
    s[1].done = 1;
    for (int i = 0; i < 2; i++) {
        memset(cov[i].origin, 0x60 + i, BS_PK_LEN);
        memset(cov[i].inc, 0x70 + i, BS_INC_LEN);
        cov[i].seq = 1ull << (40 + i);
    }
    s[1].covered = cov;
    s[1].ncovered = 2;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(bs_snap_encode_body(&s[i], &body[i], &bodies[i].n), BS_OK);
        bodies[i].p = body[i];
    }
    cr_assert_eq(
        bs_snapbatch_encode(s[0].infobase, pk, 1, bodies, 2, sk, &bb, &bn),
        BS_OK);
    cr_assert_eq(bs_snapbatch_decode(bb, bn, &b, &err), BS_OK, "%s", err.msg);
    bs_snap_init(&got);
    cr_assert_eq(bs_snapbatch_snap_into(b, 0, &got, &err), BS_OK, "%s",
                 err.msg);
    cr_assert_str_eq(got.coll, "orders");
    cr_assert_str_eq(got.id, "o-1");
    cr_assert(got.has_alive && got.has_tomb && !got.done);
    cr_assert(same_ver(&got.alive, &s[0].alive));
    cr_assert(same_ver(&got.tomb, &s[0].tomb));
    cr_assert_eq(got.created_ms, s[0].created_ms);
    cr_assert_eq(got.nfields, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_str_eq(got.fields[i].name, f[i].name);
        cr_assert(bs_value_eq(&got.fields[i].val, &f[i].val), "field %d", i);
        cr_assert(same_ver(&got.fields[i].ver, &f[i].ver), "field %d", i);
    }
    cr_assert_eq(bs_snapbatch_snap_into(b, 1, &got, &err), BS_OK, "%s",
                 err.msg);
    cr_assert(got.done && got.nfields == 0 && got.ncovered == 2);
    cr_assert(memcmp(got.covered, cov, sizeof cov) == 0);
    bs_snapbatch_free(b);
    free(bb);
    /* not canonical, each way: refused (N3) */
    bad = malloc(bodies[0].n + 8);
    cr_assert_not_null(bad);
    for (int k = 0, n0 = (int)bodies[0].n; k < 3; k++) {
        size_t n = (size_t)n0;

        memcpy(bad, body[0], n);
        if (k == 0) { /* version (1) after infobase (2): swap the two */
            uint8_t v[2] = {bad[0], bad[1]};
            memmove(bad, bad + 2, 18);
            memcpy(bad + 18, v, 2);
        } else if (k == 1) { /* created_ms (9) twice */
            bad[n++] = 9 << 3;
            bad[n++] = 1;
        } else { /* an unknown field 13 */
            bad[n++] = 13 << 3;
            bad[n++] = 1;
        }
        bodies[0] = (bs_slice){bad, n};
        cr_assert_eq(
            bs_snapbatch_encode(s[0].infobase, pk, 1, bodies, 1, sk, &bb, &bn),
            BS_OK);
        cr_assert_eq(bs_snapbatch_decode(bb, bn, &b, &err), BS_OK, "%s",
                     err.msg);
        cr_assert_eq(bs_snapbatch_snap_into(b, 0, &got, &err), BS_EMALFORMED,
                     "case %d", k);
        bs_snapbatch_free(b);
        free(bb);
    }
    bs_snap_fini(&got);
    free(bad);
    free(body[0]);
    free(body[1]);
}

/* The seed marker's body (snapbatch_v1.exp): the encoder writes it, and
 * in a batch it decodes as a `done` snapshot with `seed`, no collection. */
Test(snapshot, golden_seed_marker)
{
    uint8_t seed[32], pk[BS_PK_LEN], sk[BS_SK_LEN], want[512], *body, *b8;
    char hexs[1600];
    size_t n, bn, b8n;
    bs_errbuf err = {{0}};
    bs_snapbatch *b;
    bs_snap s, *got;
    bs_pos cov;

    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    crypto_sign_seed_keypair(pk, sk, seed);
    exp_value_in("snapbatch_v1.exp", "seed_marker_body", hexs, sizeof hexs);
    n = unhex(want, sizeof want, hexs);
    memset(&s, 0, sizeof s);
    memset(s.infobase, 0x11, BS_INFOBASE_LEN);
    memcpy(s.hub, pk, BS_PK_LEN);
    s.done = s.seed = 1;
    s.created_ms = 1700000000000ull;
    memcpy(cov.origin, pk, BS_PK_LEN);
    memset(cov.inc, 0x22, BS_INC_LEN);
    cov.seq = 4;
    s.covered = &cov;
    s.ncovered = 1;
    cr_assert_eq(bs_snap_encode_body(&s, &body, &bn), BS_OK);
    cr_assert(bn == n && memcmp(body, want, n) == 0,
              "bs_snap_encode_body differs from seed_marker_body");
    cr_assert_eq(bs_snapbatch_encode(s.infobase, pk, 1, &(bs_slice){body, bn},
                                     1, sk, &b8, &b8n),
                 BS_OK);
    cr_assert_eq(bs_snapbatch_decode(b8, b8n, &b, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(bs_snapbatch_snap(b, 0, &got, &err), BS_OK, "%s", err.msg);
    cr_assert(got->seed && got->done && got->coll[0] == '\0' &&
              got->id[0] == '\0' && got->ncovered == 1);
    bs_snap_free(got);
    bs_snapbatch_free(b);
    free(b8);
    free(body);
    /* a seed marker naming a collection is malformed (N5) */
    snprintf(s.coll, sizeof s.coll, "orders");
    cr_assert_eq(bs_snap_encode(&s, sk, &body, &bn), BS_OK);
    cr_assert_eq(bs_snap_decode(body, bn, &got, &err), BS_EMALFORMED);
    cr_assert(strstr(err.msg, "a seed marker names a record") != NULL, "%s",
              err.msg);
    free(body);
}

/* The golden snapshot's body, unpacked (free with
 * bs__snap_body__free_unpacked), and the seed's secret key. */
static Bs__SnapBody *
golden_body(uint8_t sk[BS_SK_LEN])
{
    uint8_t seed[32], pk[BS_PK_LEN], bytes[1024];
    char hexs[1600];
    Bs__RecordSnapshot *rs;
    Bs__SnapBody *b;
    size_t n;

    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    crypto_sign_seed_keypair(pk, sk, seed);
    exp_value("snapshot", hexs, sizeof hexs);
    n = unhex(bytes, sizeof bytes, hexs);
    cr_assert_not_null(rs = bs__record_snapshot__unpack(NULL, n, bytes));
    b = bs__snap_body__unpack(NULL, rs->body.len, rs->body.data);
    cr_assert_not_null(b);
    bs__record_snapshot__free_unpacked(rs, NULL);
    return b;
}

/* b signed by sk, as a RecordSnapshot (malloc'd, *n bytes). */
static uint8_t *
signed_snapshot(const Bs__SnapBody *b, const uint8_t *sk, size_t *n)
{
    Bs__RecordSnapshot rs = BS__RECORD_SNAPSHOT__INIT;
    size_t bn = bs__snap_body__get_packed_size(b);
    uint8_t *body = malloc(bn), sig[BS_SIG_LEN], *out, *msg;
    size_t cn = strlen(BS_SNAP_CONTEXT) + 1;

    cr_assert_not_null(body);
    bs__snap_body__pack(b, body);
    msg = malloc(cn + bn);
    memcpy(msg, BS_SNAP_CONTEXT, cn);
    memcpy(msg + cn, body, bn);
    crypto_sign_detached(sig, NULL, msg, cn + bn, sk);
    free(msg);
    rs.body = (ProtobufCBinaryData){bn, body};
    rs.signature = (ProtobufCBinaryData){BS_SIG_LEN, sig};
    *n = bs__record_snapshot__get_packed_size(&rs);
    out = malloc(*n + 8);
    bs__record_snapshot__pack(&rs, out);
    free(body);
    return out;
}

static void
refused(const uint8_t *p, size_t n, const char *what)
{
    bs_errbuf err = {{0}};
    bs_snap *s = NULL;
    bs_err rv = bs_snap_decode(p, n, &s, &err);

    cr_assert_eq(rv, BS_EMALFORMED, "%s: %s", what, bs_strerror(rv));
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "snapshot") != NULL, "%s: %s", what, err.msg);
}

Test(snapshot, decoder_refuses_what_is_out_of_shape)
{
    uint8_t sk[BS_SK_LEN], *p;
    Bs__SnapBody *b = golden_body(sk);
    Bs__SnapField *f0;
    char *coll, *id;
    bs_snap *s;
    size_t n;

    p = signed_snapshot(b, sk, &n); /* as it is: accepted */
    cr_assert_eq(bs_snap_decode(p, n, &s, NULL), BS_OK);
    bs_snap_free(s);
    refused(p, 0, "empty");
    refused(p, BS_SNAP_MAX_ENCODED + 1, "too large");
    p[n] = 0x18; /* an unknown field 3 after the known ones */
    p[n + 1] = 0x01;
    refused(p, n + 2, "unknown field");
    free(p);
    b->version = 2;
    p = signed_snapshot(b, sk, &n);
    refused(p, n, "version 2");
    free(p);
    b->version = 1;
    coll = b->collection; /* (the unpacked strings are freed at the end) */
    id = b->id;
    b->collection = "_members";
    p = signed_snapshot(b, sk, &n);
    refused(p, n, "system collection");
    free(p);
    b->collection = coll;
    f0 = b->fields[0]; /* out of name order */
    b->fields[0] = b->fields[1];
    b->fields[1] = f0;
    p = signed_snapshot(b, sk, &n);
    refused(p, n, "fields out of order");
    free(p);
    b->fields[1] = b->fields[0];
    b->fields[0] = f0;
    b->done = 1; /* a done marker with a record */
    p = signed_snapshot(b, sk, &n);
    refused(p, n, "done with fields");
    free(p);
    b->done = 0;
    b->id = ""; /* a record without an ID */
    p = signed_snapshot(b, sk, &n);
    refused(p, n, "no id");
    free(p);
    b->id = id;
    b->alive->origin.len = 31;
    p = signed_snapshot(b, sk, &n);
    refused(p, n, "short origin");
    free(p);
    b->alive->origin.len = 32;
    bs__snap_body__free_unpacked(b, NULL);
}

Test(snapshot, done_marker_round_trip)
{
    uint8_t sk[BS_SK_LEN], pk[BS_PK_LEN], *p;
    bs_snap in, *out;
    bs_pos cov[2];
    size_t n;

    crypto_sign_keypair(pk, sk);
    memset(&in, 0, sizeof in);
    memcpy(in.hub, pk, BS_PK_LEN);
    memset(in.infobase, 7, BS_INFOBASE_LEN);
    snprintf(in.coll, sizeof in.coll, "orders");
    in.done = 1;
    memset(cov, 0, sizeof cov);
    memset(cov[0].origin, 1, BS_PK_LEN);
    cov[0].seq = 9;
    memset(cov[1].origin, 2, BS_PK_LEN);
    cov[1].seq = 3;
    in.covered = cov;
    in.ncovered = 2;
    cr_assert_eq(bs_snap_encode(&in, sk, &p, &n), BS_OK);
    cr_assert_eq(bs_snap_decode(p, n, &out, NULL), BS_OK);
    cr_assert_eq(bs_snap_verify(out, pk), BS_OK);
    cr_assert(out->done && out->id[0] == '\0' && out->nfields == 0);
    cr_assert_eq(out->ncovered, 2);
    cr_assert_eq(out->covered[0].seq, 9);
    cr_assert_eq(memcmp(out->covered[1].origin, cov[1].origin, BS_PK_LEN), 0);
    bs_snap_free(out);
    free(p);
}

/* ---- move-in ---- */

/* tallinn writes orders/o1; the hub moves it to riga (one exchange each
 * way, so riga has the move and has told the hub it wants the record). */
static void
move_o1_to_riga(void)
{
    put(&tallinn, "orders", "o1",
        "{\"office\":\"tallinn\",\"a\":1,\"b\":\"x\"}");
    settle();
    cr_assert_null(bst_get(&riga, "orders", "o1"));
    put(&head, "orders", "o1", "{\"office\":\"riga\"}");
    carry(&head, &riga);
    carry(&riga, &head);
}

Test(snapshot, moved_record_reaches_the_new_owner_whole_by_file)
{
    move_o1_to_riga();
    carry(&head, &riga);
    settle();
    assert_record(&riga, "orders", "o1",
                  "{\"id\":\"o1\",\"a\":1,\"b\":\"x\",\"office\":\"riga\"}");
    cr_assert_null(bst_get(&tallinn, "orders", "o1")); /* move-out */
    assert_scope_converged(&riga);
    assert_scope_converged(&tallinn);
}

Test(snapshot, moved_record_reaches_the_new_owner_whole_by_session)
{
    bst_sync_result r;

    put(&tallinn, "orders", "o1",
        "{\"office\":\"tallinn\",\"a\":1,\"b\":\"x\"}");
    cr_assert_eq(bst_sync(&tallinn, &head, NULL, NULL, &r), BS_OK, "%s",
                 r.msg_a);
    put(&head, "orders", "o1", "{\"office\":\"riga\"}");
    /* the first session brings the move, the branch's next hello asks */
    cr_assert_eq(bst_sync(&riga, &head, NULL, NULL, &r), BS_OK, "%s", r.msg_a);
    cr_assert_eq(bst_sync(&riga, &head, NULL, NULL, &r), BS_OK, "%s / %s",
                 r.msg_a, r.msg_b);
    cr_assert_geq(r.sb.snapshots_sent, 2); /* the record and its end */
    cr_assert_eq(r.sa.snapshots_received, r.sb.snapshots_sent);
    cr_assert_eq(r.sa.refused + r.sb.refused, 0);
    assert_record(&riga, "orders", "o1",
                  "{\"id\":\"o1\",\"a\":1,\"b\":\"x\",\"office\":\"riga\"}");
    /* asked once: the want is met, the next session sends nothing */
    cr_assert_eq(bst_sync(&riga, &head, NULL, NULL, &r), BS_OK, "%s", r.msg_a);
    cr_assert_eq(r.sb.snapshots_sent, 0);
    assert_scope_converged(&riga);
}

/* A record the hub creates for a branch comes whole with its change: it is
 * not asked for (W1 needs another office as the owner before). */
Test(snapshot, a_record_created_for_a_branch_is_not_asked_for)
{
    bs_errbuf err = {{0}};
    bs_xstats st;

    put(&head, "orders", "n1", "{\"office\":\"riga\",\"a\":1}");
    carry(&head, &riga);
    carry(&riga, &head);
    bst_ok(bst_carry(&head, &riga, &st, &err), &err, "carry");
    cr_assert_eq(st.snapshots, 0);
    assert_record(&riga, "orders", "n1",
                  "{\"id\":\"n1\",\"a\":1,\"office\":\"riga\"}");
    assert_scope_converged(&riga);
}

Test(snapshot, a_rebuild_keeps_what_a_snapshot_brought)
{
    move_o1_to_riga();
    carry(&head, &riga);
    settle();
    /* a policy that changes the order of versions rebuilds every record
     * of the collection from the log (rebuild.h), which lacks the
     * changes the snapshot summarised */
    declare("orders", "owner", BS_POLICY_PRIORITY);
    settle();
    assert_record(&riga, "orders", "o1",
                  "{\"id\":\"o1\",\"a\":1,\"b\":\"x\",\"office\":\"riga\"}");
    assert_scope_converged(&riga);
}

Test(snapshot, widened_scope_brings_every_record)
{
    put(&tallinn, "orders", "t1", "{\"office\":\"tallinn\",\"v\":1}");
    put(&tallinn, "orders", "t2", "{\"office\":\"tallinn\",\"v\":2}");
    settle();
    cr_assert_null(bst_get(&riga, "orders", "t1"));
    declare("orders", "shared", -1);
    settle();
    assert_record(&riga, "orders", "t1",
                  "{\"id\":\"t1\",\"office\":\"tallinn\",\"v\":1}");
    assert_record(&riga, "orders", "t2",
                  "{\"id\":\"t2\",\"office\":\"tallinn\",\"v\":2}");
    assert_scope_converged(&riga);
}

/*
 * The hub deletes tallinn's record while it is outside riga's scope: riga
 * passes over the delete (A7o), so it holds no tombstone.  The scope then
 * widens, and an older edit of the record (which the delete overrides at
 * the hub) reaches riga from tallinn before the hub's answer to its want.
 * The answer must carry the record's tombstone, or riga keeps a record
 * deleted everywhere else (simulation seed 93 of test_scope_sim).
 */
Test(snapshot, widened_scope_brings_the_tombstones_too)
{
    bs_errbuf err = {{0}};
    char *j;

    bst_pair2(&tallinn, &riga);
    put(&tallinn, "orders", "t1", "{\"office\":\"tallinn\",\"v\":1}");
    settle();
    cr_assert_null(bst_get(&riga, "orders", "t1"));
    put(&tallinn, "orders", "t1", "{\"office\":\"tallinn\",\"v\":2}");
    ch.ms += 10000; /* the hub's delete comes after tallinn's edit */
    bst_ok(bst_del(&head, "orders", "t1", &err), &err, "del");
    carry(&head, &riga); /* the delete is left out for riga */
    declare("orders", "shared", -1);
    carry(&head, &riga);    /* riga now wants (orders, "") */
    carry(&head, &tallinn); /* tallinn holds the delete and the rule */
    carry(&riga, &tallinn); /* tallinn learns what riga holds */
    carry(&tallinn, &riga); /* the edit, which riga is now entitled to */
    settle();               /* the hub answers riga's want */
    j = bst_get(&riga, "orders", "t1");
    cr_assert_null(j, "riga kept a deleted record: %s", j);
    cr_assert_null(bst_get(&head, "orders", "t1"));
    assert_scope_converged(&riga);
    assert_scope_converged(&tallinn);
}

Test(snapshot, a_record_larger_than_one_snapshot_goes_in_parts)
{
    size_t big = 1536 * 1024, n = 5, at = 0;
    char *json = malloc(n * (big + 32) + 64);
    bs_errbuf err = {{0}};
    bs_xstats st;
    char *a, *b;

    cr_assert_not_null(json);
    json[at++] = '{';
    at += (size_t)sprintf(json + at, "\"office\":\"tallinn\"");
    for (size_t i = 0; i < n; i++) {
        at += (size_t)sprintf(json + at, ",\"f%zu\":\"", i);
        memset(json + at, 'a' + (int)i, big);
        at += big;
        json[at++] = '"';
    }
    json[at++] = '}';
    json[at] = '\0';
    put(&tallinn, "orders", "big", json); /* 7.5 MiB of fields */
    free(json);
    settle();
    put(&head, "orders", "big", "{\"office\":\"riga\"}");
    carry(&head, &riga);
    carry(&riga, &head);
    bst_ok(bst_carry(&head, &riga, &st, &err), &err, "carry");
    cr_assert_eq(st.snapshots, 3, "two parts and the end: %llu",
                 (unsigned long long)st.snapshots);
    a = bst_get(&head, "orders", "big");
    b = bst_get(&riga, "orders", "big");
    cr_assert(a != NULL && b != NULL && strcmp(a, b) == 0,
              "riga's record differs from the hub's");
    free(a);
    free(b);
    assert_scope_converged(&riga);
}

/* ---- refusals: exit 2, the store unchanged ---- */

/* Write an exchange file from frames: env, sets, snaps, sealed by sk. */
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

/* Import file at t: refused with `want`, and t's store unchanged. */
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
    cr_assert_eq(bs_err_exit_code(rv), 2);
    bst_fingerprint(t, after);
    cr_assert_eq(memcmp(before, after, BS_HASH_LEN), 0,
                 "%s: the refused file changed the store", msg);
}

/* The hub's file for riga after the move: its frames (fr owns the
 * split; *bytes the file). */
static uint8_t *
hub_file_with_snapshots(bst_frames *fr)
{
    bs_errbuf err = {{0}};
    uint8_t *p;
    size_t len;

    bst_ok(bst_export(&head, "riga", path, &err), &err, "export");
    p = bst_read_file(path, &len);
    cr_assert(bst_frames_split(p, len, fr));
    cr_assert_geq(fr->nsnaps, 2, "no snapshot in the hub's file");
    return p;
}

Test(snapshot, tampered_snapshot_is_refused_and_nothing_written)
{
    bst_frames fr;
    uint8_t *p, *copy, *x;
    bs_slice snap;

    move_o1_to_riga();
    p = hub_file_with_snapshots(&fr);
    /* the value "x" of field b becomes "y": canonical, badly signed */
    snap = fr.snaps[0];
    copy = malloc(snap.n);
    memcpy(copy, snap.p, snap.n);
    x = memmem(copy, snap.n, "\x2a\x01x", 3);
    cr_assert_not_null(x);
    x[2] = 'y';
    fr.snaps[0] = (bs_slice){copy, snap.n};
    write_frames(path, &fr, fr.snaps, fr.nsnaps, head.core.sk);
    import_refused(&riga, path, BS_EBADSIG, "tampered");
    fr.snaps[0] = snap; /* as the hub wrote it: accepted */
    write_frames(path, &fr, fr.snaps, fr.nsnaps, head.core.sk);
    {
        bs_errbuf err = {{0}};
        bs_xstats st;
        bst_ok(bst_import(&riga, path, &st, &err), &err, "import");
        cr_assert_geq(st.snapshots, 2);
    }
    assert_record(&riga, "orders", "o1",
                  "{\"id\":\"o1\",\"a\":1,\"b\":\"x\",\"office\":\"riga\"}");
    free(copy);
    bst_frames_fini(&fr);
    free(p);
}

Test(snapshot, snapshot_from_a_branch_is_refused)
{
    bst_frames fr, tf;
    uint8_t *p, *tp, *mine;
    bs_errbuf err = {{0}};
    bs_meta mt = bst_meta(&tallinn);
    bs_snap *s;
    size_t n, tlen;

    move_o1_to_riga();
    p = hub_file_with_snapshots(&fr);
    /* signed by tallinn (claiming to be the hub's word) in the hub's file */
    cr_assert_eq(bs_snap_decode(fr.snaps[0].p, fr.snaps[0].n, &s, &err), BS_OK);
    memcpy(s->hub, mt.pk, BS_PK_LEN);
    cr_assert_eq(bs_snap_encode(s, tallinn.core.sk, &mine, &n), BS_OK);
    bs_snap_free(s);
    write_frames(path, &fr, &(bs_slice){mine, n}, 1, head.core.sk);
    import_refused(&riga, path, BS_EFORGED, "signed by a branch");
    free(mine);
    /* the hub's own snapshot, carried by a branch */
    bst_pair2(&tallinn, &riga);
    bst_ok(bst_export(&tallinn, "riga", path, &err), &err, "export");
    tp = bst_read_file(path, &tlen);
    cr_assert(bst_frames_split(tp, tlen, &tf));
    write_frames(path, &tf, fr.snaps, fr.nsnaps, tallinn.core.sk);
    import_refused(&riga, path, BS_EFORGED, "carried by a branch");
    bst_frames_fini(&tf);
    free(tp);
    bst_frames_fini(&fr);
    free(p);
}

Test(snapshot, snapshot_outside_the_receivers_scope_is_refused)
{
    bst_frames fr;
    uint8_t *p, *mine;
    bs_errbuf err = {{0}};
    bs_snap *s;
    size_t n;

    move_o1_to_riga();
    p = hub_file_with_snapshots(&fr);
    /* signed by the hub, but of a record tallinn owns */
    cr_assert_eq(bs_snap_decode(fr.snaps[0].p, fr.snaps[0].n, &s, &err), BS_OK);
    snprintf(s->id, sizeof s->id, "t9");
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].name, "office") == 0) {
            s->fields[i].val.s = "tallinn";
            s->fields[i].val.len = 7;
        }
    cr_assert_eq(bs_snap_encode(s, head.core.sk, &mine, &n), BS_OK);
    bs_snap_free(s);
    write_frames(path, &fr, &(bs_slice){mine, n}, 1, head.core.sk);
    import_refused(&riga, path, BS_EPERM, "outside the scope");
    cr_assert_null(bst_get(&riga, "orders", "t9"));
    free(mine);
    bst_frames_fini(&fr);
    free(p);
}

/* ---- offices of different revisions ---- */

static bs_err
forget_features(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_snapwant w;

    (void)err;
    memset(&w, 0, sizeof w);
    snprintf(w.coll, sizeof w.coll, "orders");
    snprintf(w.id, sizeof w.id, "o1");
    return bs_movein_note_peer(t, arg, 0, &w, 1);
}

Test(snapshot, a_peer_that_does_not_announce_snapshots_gets_none)
{
    bs_meta mr = bst_meta(&riga);
    bs_errbuf err = {{0}};
    Bs1__Envelope *v1;
    bs_envelope e;
    bst_frames fr;
    uint8_t *p;
    size_t len;

    move_o1_to_riga();
    /* riga's envelope asks for the record; a version-1 node reads it */
    bst_ok(bst_export(&riga, "head", path, &err), &err, "export");
    p = bst_read_file(path, &len);
    cr_assert(bst_frames_split(p, len, &fr));
    cr_assert_eq(bs_envelope_decode(fr.env.p, fr.env.n, &e, &err), BS_OK);
    cr_assert_eq(e.features, BS_FEATURE_SNAPSHOTS | BS_FEATURE_SUMMARIES |
                                 BS_FEATURE_COMPACT);
    cr_assert_eq(e.nwants, 1);
    cr_assert_str_eq(e.wants[0].id, "o1");
    v1 = bs1__envelope__unpack(NULL, fr.env.n, fr.env.p);
    cr_assert_not_null(v1, "a version-1 node cannot read the envelope");
    cr_assert_eq(v1->version, 1);
    cr_assert_eq(v1->n_ack, e.nack);
    cr_assert_eq(memcmp(v1->sender.data, mr.pk, BS_PK_LEN), 0);
    bs1__envelope__free_unpacked(v1, NULL);
    bs_envelope_fini(&e);
    bst_frames_fini(&fr);
    free(p);
    /* a peer whose envelope did not announce them: no frame 4 */
    bst_ok(bs_store_write(head.core.store, forget_features, mr.pk, &err), &err,
           "note");
    bst_ok(bst_export(&head, "riga", path, &err), &err, "export");
    p = bst_read_file(path, &len);
    cr_assert(bst_frames_split(p, len, &fr));
    cr_assert_eq(fr.nsnaps, 0);
    bst_frames_fini(&fr);
    free(p);
}

/* ---- revocation ---- */

Test(snapshot, a_revoked_branchs_records_stay_at_the_hub_and_move_whole)
{
    bs_errbuf err = {{0}};
    int revoked = 0;

    put(&tallinn, "orders", "o1",
        "{\"office\":\"tallinn\",\"a\":1,\"b\":\"x\"}");
    settle();
    cr_assert_eq(bs_pairing_remove(&head.core, "tallinn", &revoked, &err),
                 BS_OK, "%s", err.msg);
    cr_assert(revoked);
    carry(&head, &riga);
    carry(&riga, &head);
    /* the hub keeps the revoked branch's record; it is nobody else's */
    assert_record(&head, "orders", "o1",
                  "{\"id\":\"o1\",\"a\":1,\"b\":\"x\",\"office\":\"tallinn\"}");
    cr_assert_null(bst_get(&riga, "orders", "o1"));
    assert_scope_converged(&riga);
    /* moved to another branch, it arrives there whole */
    put(&head, "orders", "o1", "{\"office\":\"riga\"}");
    for (int i = 0; i < 2; i++) {
        carry(&head, &riga);
        carry(&riga, &head);
    }
    assert_record(&riga, "orders", "o1",
                  "{\"id\":\"o1\",\"a\":1,\"b\":\"x\",\"office\":\"riga\"}");
    assert_scope_converged(&riga);
}
