/*
 * test_exchange.c - what an exchange consists of (replication/exchange.h):
 * the envelope a node sends, the checks on an incoming one
 * (bs_xchg_accept: X1-X7 of docs/protocol.md 8.3), the acknowledgement
 * recorded from it (bs_xchg_record: it only grows within an incarnation,
 * a new incarnation restarts it) and what is sent, hub streams first.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fixture.h"
#include "../../replication/exchange.h"
#include "../../replication/pairing.h"
#include "../../replication/setlog.h"

static char root[128];
static bst_clock clk;
static bst_node head, tallinn, riga, tartu;

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_carry(from, to, NULL, &err);

    cr_assert_eq(rv, BS_OK, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
    clk.ms += 1000;
}

static void
setup(void)
{
    bs_clock c;
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_crypto_init(), BS_OK);
    clk.ms = 1800000000000ull;
    c = bst_clock_of(&clk);
    bst_root(root, sizeof root, "exchange");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &c);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, &c);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &c);
    bst_node_new(&tartu, root, "tartu", BS_ROLE_BRANCH, &c);
    bst_pair2(&head, &tallinn);
    bst_pair2(&head, &riga); /* riga does not join (yet) */
    carry(&head, &tallinn);
    cr_assert_eq(bst_put(&tallinn, "orders", "o1", "{\"v\":1}", &err), BS_OK);
    cr_assert_eq(bst_put(&tallinn, "orders", "o2", "{\"v\":2}", &err), BS_OK);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_node_free(&tartu);
    bst_rmtree(root);
    bst_leak_check("test_exchange");
}

TestSuite(exchange, .init = setup, .fini = teardown, .timeout = 60);

/* ---- envelopes ---- */

/* from's envelope to `to` (NULL: no receiver), numbered no. */
static bs_envelope
envelope(bst_node *from, bst_node *to, uint64_t no)
{
    bs_errbuf err = {{0}};
    bs_meta m = bst_meta(from);
    bs_envelope e;
    bs_peer p;
    bs_txn *t;
    int has = 0;

    bst_ok(bs_store_read(from->n->store, &t, &err), &err, "read");
    if (to != NULL) {
        cr_assert_eq(bs_peer_get(t, to->name, &p), BS_OK, "%s has no peer %s",
                     from->name, to->name);
        has = 1;
    }
    cr_assert_eq(bs_xchg_envelope(t, &m, has ? &p : NULL, no, clk.ms, &e),
                 BS_OK);
    if (has)
        bs_peer_fini(&p);
    bs_txn_abort(t);
    return e;
}

/* Replace e's vector by one stream of origin `who` at seq (or none). */
static void
set_ack(bs_envelope *e, bst_node *who, uint64_t seq)
{
    bs_meta m = bst_meta(who);

    free(e->ack);
    e->ack = calloc(1, sizeof *e->ack);
    cr_assert_not_null(e->ack);
    e->nack = seq ? 1 : 0;
    memcpy(e->ack[0].origin, m.pk, BS_PK_LEN);
    memcpy(e->ack[0].inc, m.inc, BS_INC_LEN);
    e->ack[0].seq = seq;
}

typedef struct accepted {
    bs_err rv;
    int replay, join;
    char peer[BS_NODE_NAME_MAX + 1];
    char msg[BS_ERRMSG_LEN];
} accepted;

static accepted
accept_at(bst_node *to, const bs_envelope *e)
{
    bs_errbuf err = {{0}};
    bs_meta m = bst_meta(to);
    accepted r;
    bs_accept a;
    bs_txn *t;

    memset(&r, 0, sizeof r);
    bst_ok(bs_store_read(to->n->store, &t, &err), &err, "read");
    r.rv = bs_xchg_accept(t, &m, e, clk.ms, to->core.retention_ms, &a, &err);
    bs_txn_abort(t);
    snprintf(r.msg, sizeof r.msg, "%s", err.msg);
    if (r.rv == BS_OK) {
        r.replay = a.replay;
        r.join = a.join;
        snprintf(r.peer, sizeof r.peer, "%s", a.peer.name);
        bs_peer_fini(&a.peer);
    }
    return r;
}

typedef struct rec {
    const bs_envelope *e;
    uint64_t changes;
    int count;
} rec;

static bs_err
record_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    rec *r = arg;

    (void)err;
    return bs_xchg_record(t, r->e, r->changes, clk.ms, r->count);
}

static void
record(bst_node *at, const bs_envelope *e, uint64_t changes, int count)
{
    rec r = {e, changes, count};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_store_write(at->n->store, record_txn, &r, &err), BS_OK);
}

static bs_peer
peer(bst_node *at, const char *name)
{
    bs_errbuf err = {{0}};
    bs_peer p;
    bs_txn *t;

    bst_ok(bs_store_read(at->n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_peer_get(t, name, &p), BS_OK);
    bs_txn_abort(t);
    return p;
}

/* ---- the envelope sent ---- */

Test(exchange, the_envelope_names_sender_receiver_infobase_and_vector)
{
    bs_meta tm = bst_meta(&tallinn), hm = bst_meta(&head);
    bs_envelope e = envelope(&tallinn, &head, 9), d;
    bs_errbuf err = {{0}};
    uint8_t *p;
    size_t n;

    cr_assert_eq(e.version, BS_WIRE_VERSION);
    cr_assert_eq(memcmp(e.infobase, hm.infobase, BS_INFOBASE_LEN), 0);
    cr_assert_eq(memcmp(e.hub, hm.pk, BS_PK_LEN), 0);
    cr_assert_eq(memcmp(e.sender, tm.pk, BS_PK_LEN), 0);
    cr_assert(e.has_receiver);
    cr_assert_eq(memcmp(e.receiver, hm.pk, BS_PK_LEN), 0);
    cr_assert_str_eq(e.sender_name, "tallinn");
    cr_assert_eq(e.sender_role, BS_ROLE_BRANCH);
    cr_assert_eq(memcmp(e.sender_inc, tm.inc, BS_INC_LEN), 0);
    cr_assert_eq(e.message_no, 9);
    cr_assert_eq(e.created_ms, clk.ms);
    /* The vector: the hub's stream (2 sets) and our own (2 writes). */
    cr_assert_eq(e.nack, 2);
    {
        uint8_t k[BS_STREAM_KEY_LEN];
        memcpy(k, tm.pk, BS_PK_LEN);
        memcpy(k + BS_PK_LEN, tm.inc, BS_INC_LEN);
        cr_assert_eq(bs_vv_get(e.ack, e.nack, k), 2);
        memcpy(k, hm.pk, BS_PK_LEN);
        memcpy(k + BS_PK_LEN, hm.inc, BS_INC_LEN);
        cr_assert_eq(bs_vv_get(e.ack, e.nack, k), 2);
    }
    /* It travels as it is. */
    cr_assert_eq(bs_envelope_encode(&e, &p, &n), BS_OK);
    cr_assert_eq(bs_envelope_decode(p, n, &d, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(d.nack, e.nack);
    cr_assert_eq(memcmp(d.ack, e.ack, e.nack * sizeof *e.ack), 0);
    cr_assert_eq(d.message_no, 9);
    cr_assert_str_eq(d.sender_name, "tallinn");
    bs_envelope_fini(&d);
    free(p);
    bs_envelope_fini(&e);
}

Test(exchange, an_unjoined_branch_sends_an_all_zero_infobase)
{
    static const uint8_t zero[BS_PK_LEN];
    bs_envelope e = envelope(&riga, NULL, 1);

    cr_assert_eq(memcmp(e.infobase, zero, BS_INFOBASE_LEN), 0);
    cr_assert_eq(memcmp(e.hub, zero, BS_PK_LEN), 0);
    cr_assert_not(e.has_receiver);
    cr_assert_eq(e.nack, 0, "an empty stream is not in the vector");
    bs_envelope_fini(&e);
}

/* ---- accepting one ---- */

Test(exchange, x1_to_x6_accept_a_paired_peer_of_our_infobase)
{
    bs_envelope e = envelope(&tallinn, &head, 1);
    accepted a = accept_at(&head, &e);

    cr_assert_eq(a.rv, BS_OK, "%s", a.msg);
    cr_assert_str_eq(a.peer, "tallinn");
    cr_assert_not(a.replay);
    cr_assert_not(a.join);
    e.has_receiver = 0; /* no receiver named: for anyone */
    a = accept_at(&head, &e);
    cr_assert_eq(a.rv, BS_OK, "%s", a.msg);
    bs_envelope_fini(&e);
}

Test(exchange, x1_an_exchange_addressed_to_another_node_is_refused)
{
    bs_envelope e = envelope(&tallinn, &head, 1);
    accepted a;

    memcpy(e.receiver, bst_meta(&riga).pk, BS_PK_LEN);
    a = accept_at(&head, &e);
    cr_assert_eq(a.rv, BS_EINVAL);
    cr_assert_str_eq(a.msg, "the exchange is addressed to another node");
    bs_envelope_fini(&e);
}

Test(exchange, x2_an_unpaired_sender_is_refused)
{
    bs_envelope e = envelope(&tartu, NULL, 1);
    char id[BS_NODE_ID_LEN + 1], msg[200];
    accepted a = accept_at(&head, &e);

    bs_node_id_format(bst_meta(&tartu).pk, id);
    snprintf(msg, sizeof msg,
             "the exchange comes from %s (tartu), which is not a paired peer",
             id);
    cr_assert_eq(a.rv, BS_EFORGED);
    cr_assert_str_eq(a.msg, msg);
    /* A member of the infobase, but not paired here: the same. */
    bs_envelope_fini(&e);
    e = envelope(&tallinn, NULL, 1);
    a = accept_at(&riga, &e);
    cr_assert_eq(a.rv, BS_EFORGED, "%s", a.msg);
    bs_envelope_fini(&e);
}

Test(exchange, x3_an_exchange_of_another_infobase_is_refused)
{
    bs_envelope e = envelope(&tallinn, &head, 1);
    accepted a;

    e.infobase[0] ^= 1;
    a = accept_at(&head, &e);
    cr_assert_eq(a.rv, BS_EINFOBASE);
    cr_assert_str_eq(a.msg, "the exchange belongs to another infobase");
    e.infobase[0] ^= 1;
    e.hub[0] ^= 1; /* same infobase, another hub */
    cr_assert_eq(accept_at(&head, &e).rv, BS_EINFOBASE);
    bs_envelope_fini(&e);
}

Test(exchange, x3_an_unjoined_branch_is_accepted_but_not_an_unjoined_hub)
{
    bs_envelope e = envelope(&riga, &head, 1);
    accepted a = accept_at(&head, &e);

    cr_assert_eq(a.rv, BS_OK, "%s", a.msg);
    cr_assert_not(a.join);
    e.sender_role = BS_ROLE_HUB;
    cr_assert_eq(accept_at(&head, &e).rv, BS_EINFOBASE);
    bs_envelope_fini(&e);
}

Test(exchange, x4_before_joining_only_the_hub_is_accepted_and_then_joined)
{
    bs_envelope e;
    accepted a;

    bst_pair(&riga, &tallinn);
    e = envelope(&head, &riga, 1);
    a = accept_at(&riga, &e);
    cr_assert_eq(a.rv, BS_OK, "%s", a.msg);
    cr_assert(a.join);
    bs_envelope_fini(&e);
    bst_pair(&tallinn, &riga);
    e = envelope(&tallinn, &riga, 1);
    a = accept_at(&riga, &e);
    cr_assert_eq(a.rv, BS_EINFOBASE);
    cr_assert_str_eq(a.msg, "this branch has not joined an infobase yet: the "
                            "first exchange must come from the hub");
    bs_envelope_fini(&e);
}

/* ---- X4: pinned joining (issue 9, item 6) ---- */

/*
 * A rogue: a hub of its own infobase, holding one record, that a branch
 * was also paired with (both ways).  It claims to be the hub in every
 * envelope it sends (sender == hub), as the real hub does.
 */
static void
rogue_new(bst_node *rogue, bst_node *branch)
{
    bs_clock c = bst_clock_of(&clk);
    bs_errbuf err = {{0}};

    bst_node_new(rogue, root, "rogue", BS_ROLE_HUB, &c);
    cr_assert_eq(bst_put(rogue, "orders", "x1", "{\"v\":666}", &err), BS_OK);
    bst_pair2(rogue, branch);
}

/* self pairs with other as `peer add ... --hub` does. */
static bs_err
pair_hub(bst_node *self, bst_node *other, bs_errbuf *err)
{
    bs_pair p = {other->name, "tcp://127.0.0.1:7400", {0}, "manual", "", 1};

    memcpy(p.pk, bst_meta(other).pk, BS_PK_LEN);
    return bs_pairing_add(&self->core, &p, NULL, err);
}

static void
unpair(bst_node *self, const char *name)
{
    bs_errbuf err = {{0}};

    bst_ok(bs_pairing_remove(&self->core, name, NULL, &err), &err, "unpair");
}

/* The file from `from` to `to` is refused with want, its message naming
 * each of `names` (NULL-terminated), and to's store is byte-for-byte as
 * it was. */
static void
file_refused(bst_node *from, bst_node *to, bs_err want,
             const char *const *names)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    bs_err rv;

    bst_fingerprint(to, f0);
    rv = bst_carry(from, to, NULL, &err);
    cr_assert_eq(rv, want, "%s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
    for (; names && *names; names++)
        cr_assert(strstr(err.msg, *names) != NULL, "\"%s\" not named in: %s",
                  *names, err.msg);
    bst_fingerprint(to, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "%s's store changed",
                 to->name);
}

/* A session in which `to` is the responder to `from`: refused at `to`
 * with want, naming each of `names`; to's store byte-for-byte as it was. */
static void
session_refused_at_responder(bst_node *from, bst_node *to, bs_err want,
                             const char *const *names)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bst_sync_result r;

    bst_fingerprint(to, f0);
    cr_assert_neq(bst_sync(from, to, NULL, NULL, &r), BS_OK);
    cr_assert_eq(r.err_b, want, "%s: %s", to->name, r.msg_b);
    for (; names && *names; names++)
        cr_assert(strstr(r.msg_b, *names) != NULL, "\"%s\" not named in: %s",
                  *names, r.msg_b);
    bst_fingerprint(to, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "%s's store changed",
                 to->name);
}

/*
 * A session `self` initiates with `to`, refused at `self` (the initiator)
 * or at `to`.  The initiator counts its hello (protocol.md 8.2) before the
 * peer's answer, so its store is not byte-for-byte the same; what it holds
 * is: the same join state, data, change sets, streams and held entries.
 */
static void
session_refused_at_initiator(bst_node *self, bst_node *to, bs_err want)
{
    bs_meta m0 = bst_meta(self), m1;
    uint8_t d0[BS_HASH_LEN], d1[BS_HASH_LEN];
    bst_counts c0, c1;
    bst_sync_result r;
    uint64_t n0, n1;

    bst_digest(self, d0, &n0);
    bst_count(self, &c0);
    cr_assert_neq(bst_sync(self, to, NULL, NULL, &r), BS_OK);
    cr_assert(r.err_a == want || r.err_b == want, "%s: %s / %s: %s", self->name,
              r.msg_a, to->name, r.msg_b);
    m1 = bst_meta(self);
    cr_assert_eq(m1.joined, m0.joined);
    cr_assert_eq(memcmp(m1.infobase, m0.infobase, BS_INFOBASE_LEN), 0);
    cr_assert_eq(memcmp(m1.hub, m0.hub, BS_PK_LEN), 0);
    bst_digest(self, d1, &n1);
    bst_count(self, &c1);
    cr_assert_eq(memcmp(d0, d1, BS_HASH_LEN), 0);
    cr_assert_eq(memcmp(&c0, &c1, sizeof c0), 0, "%s's tables changed",
                 self->name);
}

Test(exchange, x4_a_rogue_hub_is_refused_by_file_before_and_after_joining)
{
    static const char *const before[] = {"pinned hub \"head\"",
                                         "refused \"rogue\"", NULL};
    bst_node rogue;

    rogue_new(&rogue, &riga); /* riga paired head first: head is pinned */
    file_refused(&rogue, &riga, BS_EINFOBASE, before);
    cr_assert_not(bst_meta(&riga).joined);
    carry(&head, &riga); /* joins the pinned hub */
    cr_assert(bst_meta(&riga).joined);
    file_refused(&rogue, &riga, BS_EINFOBASE, NULL);
    cr_assert_null(bst_get(&riga, "orders", "x1"));
    bst_node_free(&rogue);
}

Test(exchange, x4_a_rogue_hub_is_refused_in_sessions_before_and_after_joining)
{
    static const char *const before[] = {"pinned hub \"head\"",
                                         "refused \"rogue\"", NULL};
    bst_sync_result r;
    bst_node rogue;

    rogue_new(&rogue, &riga);
    session_refused_at_responder(&rogue, &riga, BS_EINFOBASE, before);
    session_refused_at_initiator(&riga, &rogue, BS_EINFOBASE);
    cr_assert_not(bst_meta(&riga).joined);
    cr_assert_eq(bst_sync(&riga, &head, NULL, NULL, &r), BS_OK, "%s / %s",
                 r.msg_a, r.msg_b); /* joins the pinned hub */
    cr_assert(bst_meta(&riga).joined);
    session_refused_at_responder(&rogue, &riga, BS_EINFOBASE, NULL);
    session_refused_at_initiator(&riga, &rogue, BS_EINFOBASE);
    cr_assert_null(bst_get(&riga, "orders", "x1"));
    bst_node_free(&rogue);
}

Test(exchange, x4_the_hub_named_with_hub_option_is_joined_not_the_first_peer)
{
    static const char *const names[] = {"pinned hub \"head\"",
                                        "refused \"rogue\"", NULL};
    bs_errbuf err = {{0}};
    bst_node rogue;
    bs_err rv;

    rogue_new(&rogue, &tartu); /* tartu's first peer: pinned, but ... */
    rv = pair_hub(&tartu, &head, &err); /* ... --hub takes the pin */
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    bst_pair(&head, &tartu);
    file_refused(&rogue, &tartu, BS_EINFOBASE, names);
    session_refused_at_responder(&rogue, &tartu, BS_EINFOBASE, names);
    carry(&head, &tartu);
    cr_assert(bst_meta(&tartu).joined);
    bst_node_free(&rogue);
}

Test(exchange, x4_without_hub_option_the_first_peer_paired_is_the_hub)
{
    static const char *const names[] = {"pinned hub \"rogue\"",
                                        "refused \"head\"", NULL};
    bst_node rogue;

    rogue_new(&rogue, &tartu); /* first: pinned */
    bst_pair2(&head, &tartu);  /* later: never moves the pin */
    file_refused(&head, &tartu, BS_EINFOBASE, names);
    session_refused_at_responder(&head, &tartu, BS_EINFOBASE, names);
    cr_assert_not(bst_meta(&tartu).joined);
    bst_node_free(&rogue);
}

Test(exchange, x4_with_no_hub_pinned_nothing_joins)
{
    static const char *const names[] = {"no pinned hub", "refused \"head\"",
                                        "--hub", NULL};
    bs_errbuf err = {{0}};
    bs_err rv;

    bst_pair2(&head, &tartu); /* pinned: the first peer */
    bst_pair(&tartu, &riga);
    unpair(&tartu, "head"); /* riga stays: no peer is pinned now */
    bst_pair(&tartu, &head);
    file_refused(&head, &tartu, BS_EINFOBASE, names);
    session_refused_at_responder(&head, &tartu, BS_EINFOBASE, names);
    unpair(&tartu, "head");
    rv = pair_hub(&tartu, &head, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    carry(&head, &tartu);
    cr_assert(bst_meta(&tartu).joined);
}

typedef struct join_ctx {
    const bs_envelope *e;
    bst_node *at;
} join_ctx;

static bs_err
join_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    join_ctx *j = arg;
    bs_meta m;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        return rv;
    return bs_xchg_join(t, &m, j->e, j->at->core.sk, err);
}

/* The join checks the pin again in its own transaction, so a path whose
 * envelope check ran earlier (a file's pass 1) still joins no other hub. */
Test(exchange, x4_the_join_checks_the_pin_again_in_its_own_transaction)
{
    bs_errbuf err = {{0}};
    bs_envelope e;
    bst_node rogue;
    join_ctx j;
    bs_err rv;

    rogue_new(&rogue, &riga);
    e = envelope(&rogue, &riga, 1);
    j = (join_ctx){&e, &riga};
    rv = bs_store_write(riga.n->store, join_txn, &j, &err);
    cr_assert_eq(rv, BS_EINFOBASE, "%s", bs_errmsg(&err, rv));
    cr_assert(strstr(err.msg, "pinned hub \"head\"") != NULL, "%s", err.msg);
    cr_assert_not(bst_meta(&riga).joined);
    bs_envelope_fini(&e);
    e = envelope(&head, &riga, 1);
    j.e = &e;
    rv = bs_store_write(riga.n->store, join_txn, &j, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert(bst_meta(&riga).joined);
    bs_envelope_fini(&e);
    bst_node_free(&rogue);
}

/* An unjoined branch's hello has an all-zero infobase and hub; one that
 * names a hub claims an infobase, and a joined node holds it to its own. */
Test(exchange, x3_an_unjoined_hello_naming_a_hub_is_refused)
{
    bs_envelope e = envelope(&riga, &head, 1);
    accepted a;

    memcpy(e.hub, e.sender, BS_PK_LEN); /* riga claims to be a hub */
    a = accept_at(&head, &e);
    cr_assert_eq(a.rv, BS_EINFOBASE, "%s", a.msg);
    bs_envelope_fini(&e);
}

Test(exchange, x5_a_message_number_already_seen_is_a_replay)
{
    bs_envelope e = envelope(&tallinn, &head, 5);

    record(&head, &e, 0, 1); /* as a file's envelope: counted */
    cr_assert(accept_at(&head, &e).replay);
    e.message_no = 4;
    cr_assert(accept_at(&head, &e).replay);
    e.message_no = 6;
    cr_assert_not(accept_at(&head, &e).replay);
    /* A new incarnation of the sender (restored) counts from anew. */
    e.message_no = 1;
    e.sender_inc[0] ^= 1;
    cr_assert_eq(accept_at(&head, &e).rv, BS_OK);
    cr_assert_not(accept_at(&head, &e).replay);
    bs_envelope_fini(&e);
}

Test(exchange, x6_an_acknowledgement_going_backwards_is_refused)
{
    bs_envelope e = envelope(&tallinn, &head, 5);
    char msg[200];
    accepted a;

    set_ack(&e, &tallinn, 2);
    record(&head, &e, 0, 1);
    e.message_no = 6;
    set_ack(&e, &tallinn, 1);
    a = accept_at(&head, &e);
    cr_assert_eq(a.rv, BS_EINVAL);
    snprintf(msg, sizeof msg,
             "acknowledgement from tallinn went backwards (seq 1, had 2): "
             "refused");
    cr_assert_str_eq(a.msg, msg);
    set_ack(&e, &tallinn, 0); /* the stream left out altogether */
    a = accept_at(&head, &e);
    cr_assert_eq(a.rv, BS_EINVAL);
    cr_assert_str_eq(a.msg, "acknowledgement from tallinn went backwards "
                            "(seq 0, had 2): refused");
    set_ack(&e, &tallinn, 2);
    cr_assert_eq(accept_at(&head, &e).rv, BS_OK);
    set_ack(&e, &tallinn, 3);
    cr_assert_eq(accept_at(&head, &e).rv, BS_OK);
    /* A restored sender (another incarnation) may acknowledge less. */
    set_ack(&e, &tallinn, 1);
    e.sender_inc[0] ^= 1;
    cr_assert_eq(accept_at(&head, &e).rv, BS_OK);
    bs_envelope_fini(&e);
}

Test(exchange, x6_an_older_envelope_arriving_late_is_not_held_to_a_newer_one)
{
    bs_envelope e = envelope(&tallinn, &head, 5);

    set_ack(&e, &tallinn, 1);
    record(&head, &e, 0, 1); /* a file: recv_no 5 */
    e.message_no = 8;
    set_ack(&e, &tallinn, 2);
    record(&head, &e, 0, 0); /* a network ACK: acked_no 8, not counted */
    e.message_no = 7;        /* crossed with it */
    set_ack(&e, &tallinn, 1);
    cr_assert_eq(accept_at(&head, &e).rv, BS_OK);
    cr_assert_not(accept_at(&head, &e).replay);
    e.message_no = 9;
    cr_assert_eq(accept_at(&head, &e).rv, BS_EINVAL);
    bs_envelope_fini(&e);
}

#define DAY_MS 86400000ull

/* X7 (issue 8 item 17; docs/reliability.md P7): purges stop waiting for a
 * peer silent past the retention limit (purge.h), so nothing more is taken
 * from it; each node judges by its own record of the other. */
Test(exchange, x7_a_peer_silent_past_the_retention_limit_is_refused)
{
    bs_envelope e = envelope(&tallinn, &head, 1);
    accepted a;

    cr_assert_eq(head.core.retention_ms, 90 * DAY_MS, "the default limit");
    record(&head, &e, 0, 1); /* last heard from now */
    clk.ms += 90 * DAY_MS;
    e.message_no = 2;
    cr_assert_eq(accept_at(&head, &e).rv, BS_OK, "at the limit: still fine");
    clk.ms += 1;
    a = accept_at(&head, &e);
    cr_assert_eq(a.rv, BS_ESTALE, "%s", a.msg);
    cr_assert_eq(bs_err_exit_code(a.rv), 1);
    cr_assert_str_eq(
        a.msg, "peer tallinn: no exchange for 90 days, longer than the "
               "retention limit (90 days), so exchanges with it are refused; "
               "it needs a full resync: seed it again with `branchsync peer "
               "seed tallinn` here "
               "(README.md, \"Back after the retention limit\")");
    /* Before X5: a replayed envelope is not "nothing new" either. */
    e.message_no = 1;
    cr_assert_eq(accept_at(&head, &e).rv, BS_ESTALE);
    /* The branch judges the hub the same way, by its own record. */
    bs_envelope_fini(&e);
    e = envelope(&head, &tallinn, 7);
    a = accept_at(&tallinn, &e);
    cr_assert_eq(a.rv, BS_ESTALE, "%s", a.msg);
    cr_assert(strstr(a.msg, "peer head: ") == a.msg, "%s", a.msg);
    cr_assert(strstr(a.msg, "this node needs a full resync: its hub's "
                            "administrator seeds it again with `branchsync "
                            "peer seed tallinn` there") != NULL,
              "%s", a.msg);
    /* Without a limit (0) nothing is stale. */
    head.core.retention_ms = 0;
    bs_envelope_fini(&e);
    e = envelope(&tallinn, &head, 3);
    cr_assert_eq(accept_at(&head, &e).rv, BS_OK);
    head.core.retention_ms = 90 * DAY_MS;
    bs_envelope_fini(&e);
}

Test(exchange, x7_a_peer_never_heard_from_counts_from_its_pairing)
{
    bs_envelope e = envelope(&riga, &head, 1);
    bs_peer p = peer(&head, "riga");
    accepted a;

    cr_assert_eq(p.last_ok_ms, 0, "never heard from");
    clk.ms = p.created_ms + 90 * DAY_MS;
    bs_peer_fini(&p);
    cr_assert_eq(accept_at(&head, &e).rv, BS_OK);
    clk.ms += DAY_MS;
    a = accept_at(&head, &e);
    cr_assert_eq(a.rv, BS_ESTALE, "%s", a.msg);
    cr_assert(strstr(a.msg, "no exchange in the 91 days since it was "
                            "paired, longer") != NULL,
              "%s", a.msg);
    bs_envelope_fini(&e);
}

/* Staleness counts from the pairing, not from the age of either node: a
 * hub that has run for years pairs a new branch and exchanges at once. */
Test(exchange, x7_a_new_peer_of_an_old_hub_is_not_stale)
{
    bs_errbuf err = {{0}};
    char *got;
    bs_err rv;

    clk.ms += 400 * DAY_MS;
    bst_pair2(&head, &tartu);
    carry(&head, &tartu); /* joins */
    cr_assert_eq(bst_put(&tartu, "orders", "t1", "{\"v\":1}", &err), BS_OK);
    carry(&tartu, &head);
    got = bst_get(&head, "orders", "t1");
    cr_assert_not_null(got);
    free(got);
    /* tallinn, paired 400 days ago and silent since, is refused. */
    rv = bst_carry(&tallinn, &head, NULL, &err);
    cr_assert_eq(rv, BS_ESTALE, "%s", bs_errmsg(&err, rv));
}

/* ---- recording the acknowledgement ---- */

/* What peer `name` at `at` acknowledged of who's stream. */
static uint64_t
acked(bst_node *at, const char *name, bst_node *who)
{
    bs_peer p = peer(at, name);
    bs_meta m = bst_meta(who);
    uint8_t k[BS_STREAM_KEY_LEN];
    uint64_t s;

    memcpy(k, m.pk, BS_PK_LEN);
    memcpy(k + BS_PK_LEN, m.inc, BS_INC_LEN);
    s = bs_vv_get(p.acked, p.nacked, k);
    bs_peer_fini(&p);
    return s;
}

Test(exchange, the_acknowledgement_only_grows_within_an_incarnation)
{
    bs_envelope e = envelope(&tallinn, &head, 5);
    bs_pos *v = calloc(2, sizeof *v);
    bs_meta tm = bst_meta(&tallinn), rm = bst_meta(&riga);
    bs_peer p;

    cr_assert_not_null(v);
    memcpy(v[0].origin, tm.pk, BS_PK_LEN);
    memcpy(v[0].inc, tm.inc, BS_INC_LEN);
    v[0].seq = 5;
    memcpy(v[1].origin, rm.pk, BS_PK_LEN);
    memcpy(v[1].inc, rm.inc, BS_INC_LEN);
    v[1].seq = 3;
    free(e.ack);
    e.ack = v;
    e.nack = 2;
    record(&head, &e, 4, 1);
    /* A later envelope says less of one stream and nothing of the other. */
    e.message_no = 6;
    set_ack(&e, &tallinn, 4);
    clk.ms += 5000;
    record(&head, &e, 3, 1);
    cr_assert_eq(acked(&head, "tallinn", &tallinn), 5);
    cr_assert_eq(acked(&head, "tallinn", &riga), 3);
    p = peer(&head, "tallinn");
    cr_assert_eq(p.acked_no, 6);
    cr_assert_eq(p.recv_no, 6);
    cr_assert_eq(p.recv_changes, 7);
    cr_assert_eq(p.last_ok_ms, clk.ms);
    cr_assert(p.has_inc);
    cr_assert_eq(memcmp(p.peer_inc, tm.inc, BS_INC_LEN), 0);
    bs_peer_fini(&p);
    /* An older message number does not lower the counts either. */
    e.message_no = 2;
    record(&head, &e, 0, 1);
    p = peer(&head, "tallinn");
    cr_assert_eq(p.acked_no, 6);
    cr_assert_eq(p.recv_no, 6);
    bs_peer_fini(&p);
    bs_envelope_fini(&e);
}

Test(exchange, a_new_incarnation_replaces_the_acknowledgement_and_count)
{
    bs_envelope e = envelope(&tallinn, &head, 5);
    bs_peer p;

    set_ack(&e, &tallinn, 5);
    record(&head, &e, 0, 1);
    e.sender_inc[0] ^= 1; /* restored from a backup */
    e.message_no = 2;
    set_ack(&e, &tallinn, 1);
    record(&head, &e, 0, 1);
    cr_assert_eq(acked(&head, "tallinn", &tallinn), 1);
    p = peer(&head, "tallinn");
    cr_assert_eq(p.nacked, 1);
    cr_assert_eq(p.acked_no, 2);
    cr_assert_eq(p.recv_no, 2);
    cr_assert_eq(memcmp(p.peer_inc, e.sender_inc, BS_INC_LEN), 0);
    bs_peer_fini(&p);
    bs_envelope_fini(&e);
}

Test(exchange, an_uncounted_record_leaves_the_message_count)
{
    bs_envelope e = envelope(&tallinn, &head, 5);
    bs_peer p;

    record(&head, &e, 0, 1);
    e.message_no = 9;
    record(&head, &e, 0, 0);
    p = peer(&head, "tallinn");
    cr_assert_eq(p.recv_no, 5);
    cr_assert_eq(p.acked_no, 9);
    bs_peer_fini(&p);
    bs_envelope_fini(&e);
}

/* ---- what is sent ---- */

typedef struct seen_sets {
    bs_csview *v[16];
    size_t n;
    uint8_t *bytes[16];
} seen_sets;

static bs_err
emit(void *ctx, bs_slice set)
{
    seen_sets *s = ctx;
    bs_errbuf err = {{0}};
    uint8_t *p = malloc(set.n);

    cr_assert_lt(s->n, 16);
    cr_assert_not_null(p);
    memcpy(p, set.p, set.n);
    cr_assert_eq(bs_changeset_decode(p, set.n, &s->v[s->n], &err), BS_OK);
    s->bytes[s->n++] = p;
    return BS_OK;
}

static void
seen_free(seen_sets *s)
{
    for (size_t i = 0; i < s->n; i++) {
        bs_changeset_free(s->v[i]);
        free(s->bytes[i]);
    }
}

Test(exchange, what_a_peer_lacks_is_sent_hub_streams_first)
{
    bs_errbuf err = {{0}};
    bs_meta tm = bst_meta(&tallinn), hm = bst_meta(&head);
    seen_sets s = {{0}, 0, {0}};
    uint64_t nsets;
    bs_peer p;
    bs_txn *t;

    /* tallinn's own stream comes first in its table; the hub's after. */
    carry(&tallinn, &head);
    cr_assert_eq(bst_put(&head, "items", "i1", "{\"v\":1}", &err), BS_OK);
    carry(&head, &tallinn);
    p = peer(&tallinn, "head");
    free(p.acked); /* as if the hub held nothing yet */
    p.acked = NULL;
    p.nacked = 0;
    bst_ok(bs_store_read(tallinn.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_xchg_collect(t, &tm, &p, emit, &s, &nsets, NULL), BS_OK);
    bs_txn_abort(t);
    cr_assert_eq(nsets, s.n);
    cr_assert_eq(s.n, 5, "3 sets of the hub and 2 of our own");
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(memcmp(s.v[i]->origin, hm.pk, BS_PK_LEN), 0,
                     "set %zu is not the hub's", i);
    for (size_t i = 3; i < 5; i++)
        cr_assert_eq(memcmp(s.v[i]->origin, tm.pk, BS_PK_LEN), 0);
    for (size_t i = 1; i < 3; i++)
        cr_assert_eq(s.v[i]->first, s.v[i - 1]->last + 1, "not in seq order");
    seen_free(&s);
    bs_peer_fini(&p);
}

Test(exchange, only_what_the_peer_did_not_acknowledge_is_sent)
{
    bs_errbuf err = {{0}};
    bs_meta tm = bst_meta(&tallinn);
    seen_sets s = {{0}, 0, {0}};
    uint64_t nsets;
    bs_peer p;
    bs_txn *t;

    carry(&tallinn, &head);
    carry(&head, &tallinn); /* the hub acknowledges tallinn's two writes */
    cr_assert_eq(bst_put(&tallinn, "orders", "o3", "{\"v\":3}", &err), BS_OK);
    p = peer(&tallinn, "head");
    bst_ok(bs_store_read(tallinn.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_xchg_collect(t, &tm, &p, emit, &s, &nsets, NULL), BS_OK);
    bs_txn_abort(t);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.v[0]->first, 3);
    seen_free(&s);
    bs_peer_fini(&p);
}

typedef struct hello_ack {
    const bs_envelope *hello, *ack;
} hello_ack;

/* A responder at the end of a session: count the initiator's hello, then
 * record its ACK, in one transaction (session.c ack_txn). */
static bs_err
hello_ack_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    hello_ack *h = arg;
    bs_err rv;

    (void)err;
    if ((rv = bs_xchg_note_message(t, h->hello)) != BS_OK)
        return rv;
    return bs_xchg_record(t, h->ack, 0, clk.ms, 0);
}

Test(exchange, a_restored_initiators_session_replaces_what_it_acknowledged)
{
    bs_envelope e = envelope(&tallinn, &head, 5), hello, ack;
    bs_errbuf err = {{0}};
    hello_ack h = {&hello, &ack};
    bs_peer p;

    set_ack(&e, &tallinn, 5);
    record(&head, &e, 0, 1); /* the old incarnation had 5 */
    hello = envelope(&tallinn, &head, 1);
    hello.sender_inc[0] ^= 1; /* restored: a new incarnation */
    set_ack(&hello, &tallinn, 1);
    ack = envelope(&tallinn, &head, 1);
    memcpy(ack.sender_inc, hello.sender_inc, BS_INC_LEN);
    set_ack(&ack, &tallinn, 2);
    cr_assert_eq(bs_store_write(head.n->store, hello_ack_txn, &h, &err), BS_OK);
    cr_assert_eq(acked(&head, "tallinn", &tallinn), 2,
                 "the old incarnation's acknowledgement was kept");
    p = peer(&head, "tallinn");
    cr_assert_eq(p.recv_no, 1);
    cr_assert_eq(memcmp(p.peer_inc, hello.sender_inc, BS_INC_LEN), 0);
    bs_peer_fini(&p);
    bs_envelope_fini(&e);
    bs_envelope_fini(&hello);
    bs_envelope_fini(&ack);
}

Test(exchange, counting_a_hello_of_the_same_incarnation_keeps_the_vector)
{
    bs_envelope e = envelope(&tallinn, &head, 5), hello, ack;
    bs_errbuf err = {{0}};
    hello_ack h = {&hello, &ack};
    bs_peer p;

    set_ack(&e, &tallinn, 5);
    record(&head, &e, 0, 1);
    hello = envelope(&tallinn, &head, 6);
    set_ack(&hello, &tallinn, 3); /* an old view: ignored */
    ack = envelope(&tallinn, &head, 6);
    set_ack(&ack, &tallinn, 4);
    cr_assert_eq(bs_store_write(head.n->store, hello_ack_txn, &h, &err), BS_OK);
    cr_assert_eq(acked(&head, "tallinn", &tallinn), 5);
    p = peer(&head, "tallinn");
    cr_assert_eq(p.recv_no, 6);
    bs_peer_fini(&p);
    bs_envelope_fini(&e);
    bs_envelope_fini(&hello);
    bs_envelope_fini(&ack);
}

/* ---- importing: one pass or two (bs_xchg_import) ---- */

Test(exchange,
     a_file_within_one_transaction_is_admitted_and_applied_in_one_pass)
{
    bs_errbuf err = {{0}};
    char path[256], *got;
    bs_xstats st;

    snprintf(path, sizeof path, "%s/one.bsx", root);
    cr_assert_eq(bst_export(&tallinn, "head", path, &err), BS_OK, "%s",
                 err.msg);
    cr_assert_eq(bst_import(&head, path, &st, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(st.passes, 1, "passes: %d", st.passes);
    cr_assert_eq(st.changes, 2);
    cr_assert_not_null(got = bst_get(&head, "orders", "o2"));
    free(got);
    /* the same file again: a replay, no pass at all */
    cr_assert_eq(bst_import(&head, path, &st, &err), BS_OK, "%s", err.msg);
    cr_assert(st.replay && st.passes == 0);
    unlink(path);
}

/* More than one group (16 MiB of sets): pass 1 admits every set dry
 * first, pass 2 commits group by group, and the result is the same. */
Test(exchange, a_file_larger_than_one_transaction_goes_through_both_passes)
{
    enum { RECORDS = 10, LEN = (int)(1.8 * 1024 * 1024) };
    char *json = malloc(LEN + 32), id[16], *got;
    bs_errbuf err = {{0}};
    bs_xstats st;

    cr_assert_not_null(json);
    strcpy(json, "{\"blob\":\"");
    memset(json + 9, 'x', LEN);
    strcpy(json + 9 + LEN, "\"}");
    for (int i = 0; i < RECORDS; i++) {
        json[9] = (char)('a' + i);
        snprintf(id, sizeof id, "big%d", i);
        cr_assert_eq(bst_put(&tallinn, "blobs", id, json, &err), BS_OK, "%s",
                     err.msg);
    }
    cr_assert_eq(bst_carry(&tallinn, &head, &st, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(st.passes, 2, "passes: %d", st.passes);
    cr_assert_eq(st.changes, RECORDS + 2);
    for (int i = 0; i < RECORDS; i++) {
        snprintf(id, sizeof id, "big%d", i);
        cr_assert_not_null(got = bst_get(&head, "blobs", id), "%s", id);
        cr_assert_gt(strlen(got), (size_t)LEN, "%s", id);
        free(got);
    }
    free(json);
}
