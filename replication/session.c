/*
 * session.c - the exchange state machine (see session.h for the rules).
 */
#include "session.h"

#include <string.h>

#include "setlog.h"
#include "members.h"
#include "movein.h"
#include "relay.h"
#include "purge.h"
#include "reseed.h"

/* A queued outgoing message. */
typedef struct outmsg {
    uint8_t *p;
    size_t n;
} outmsg;

#define QUEUE_MAX 8

/* Deferred apply: messages received and waiting (sets for the caller to
 * take, or any message behind a set not yet applied).  A peer keeping to
 * the window has at most 4 SETs (or SNAPs) unanswered, then DONE and ACK;
 * more than this many waiting is a protocol violation. */
#define WAIT_MAX 64

typedef struct waitmsg {
    uint8_t *p; /* the whole message, type byte first */
    size_t n;
} waitmsg;

/* The sets sent of one stream: the stream and the last seq sent. */
typedef struct sent_stream {
    uint8_t key[BS_STREAM_KEY_LEN];
    uint64_t last;
} sent_stream;

struct bs_session {
    bs_session_cfg cfg;
    bs_session_state state;
    char peer[BS_NODE_NAME_MAX + 1];
    uint8_t peer_pk[BS_PK_LEN];
    bs_envelope theirs; /* the peer's hello */
    bs_xcursor cur;     /* what we send next */
    unsigned credit;    /* SETs we may still send */
    int sent_done, got_done, sent_ack, got_ack;
    uint64_t their_count; /* SETs the peer says it sent */
    outmsg q[QUEUE_MAX];
    size_t qhead, qlen;
    bs_session_stats st;
    bs_err errcode;
    char error[BS_ERRMSG_LEN];
    char refused_why[BS_ERRMSG_LEN]; /* the first set refused, and why */
    uint64_t hello_ms;               /* created_ms of our HELLO */
    uint8_t own_pk[BS_PK_LEN];       /* this node's key */
    sent_stream *sent;               /* per stream, what we sent */
    size_t nsent;
    /* record snapshots (move-in): the hub answers the peer's wants after
     * its sets, to a peer whose hello announced them */
    bs_movein_cursor snap;
    int snap_started;
    /* seeding (docs/design.md "Snapshot bootstrap"): the hub seeds the
     * peer (it asked, or the hub's admin said so: movein.h psd:), from
     * seed_from; the snapshots answer every collection, then the marker */
    int seeding, marker_sent;
    bs_snapwant seed_from, *seed_wants;
    size_t nseed_wants;
    int seed_begun; /* the branch: "sed:" written for this session */
    /* a regional hub seeding its branch (protocol.md 8.9): the seed point
     * (malloc'd), or it cannot seed yet (seed_wait: the session fails) */
    bs_pos *seed_point;
    size_t nseed_point;
    int seed_wait;
    /* the branch: a seed's snapshots received, merged in groups of about
     * SNAP_GROUP_BYTES per write transaction (not one commit each) */
    struct held {
        bs_snap *sn;  /* a SNAP decoded, or */
        uint8_t *raw; /* a SNAP's bytes (decoded when merged: a decoded
                         snapshot costs far more memory), or */
        size_t rawn;
        bs_snapbatch *b; /* a SNAPBATCH */
    } * held;
    size_t nheld, capheld, held_bytes;
    /* deferred apply (cfg.defer_apply; session.h): sets received and not
     * yet taken (sets[0..nsets)), sets received and not yet reported
     * applied (pending), and the messages that arrived behind them, to
     * be handled once every set before them is applied (inbox) */
    int defer;
    waitmsg sets[WAIT_MAX], inbox[WAIT_MAX];
    size_t nsets, ninbox;
    unsigned pending;
};

#define SNAP_GROUP_BYTES (16u << 20)

static uint64_t
now_ms(const bs_session *s)
{
    return s->cfg.clock.now_ms(s->cfg.clock.ctx);
}

static bs_err
enqueue(bs_session *s, uint8_t type, const void *p, size_t n)
{
    uint8_t *m;

    if (s->qlen == QUEUE_MAX)
        return BS_EINTERNAL;
    if ((m = malloc(n + 1)) == NULL)
        return BS_ENOMEM;
    m[0] = type;
    if (n > 0)
        memcpy(m + 1, p, n);
    s->q[(s->qhead + s->qlen++) % QUEUE_MAX] = (outmsg){m, n + 1};
    return BS_OK;
}

/* Fail the session: remember why and tell the peer. */
static bs_err
fail(bs_session *s, bs_err e, const char *msg)
{
    uint8_t buf[BS_ERRMSG_LEN + 1];
    size_t n = strlen(msg);

    if (s->state == BS_SESSION_FAILED)
        return e;
    s->state = BS_SESSION_FAILED;
    s->errcode = e;
    if (msg != s->error) /* on_set passes s->error itself */
        snprintf(s->error, sizeof s->error, "%s", msg);
    buf[0] = (uint8_t)e;
    memcpy(buf + 1, msg, n);
    (void)enqueue(s, BS_MSG_ERROR, buf, n + 1);
    return e;
}

bs_err
bs_session_new(const bs_session_cfg *cfg, bs_session **out)
{
    bs_session *s = calloc(1, sizeof *s);

    if (s == NULL)
        return BS_ENOMEM;
    s->cfg = *cfg;
    if (s->cfg.window == 0)
        s->cfg.window = BS_SESSION_WINDOW;
    s->credit = s->cfg.window;
    s->state = cfg->initiator ? BS_SESSION_START : BS_SESSION_AWAIT_HELLO;
    s->defer = cfg->defer_apply;
    if (cfg->peer)
        snprintf(s->peer, sizeof s->peer, "%s", cfg->peer);
    *out = s;
    return BS_OK;
}

void
bs_session_free(bs_session *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->qlen; i++)
        free(s->q[(s->qhead + i) % QUEUE_MAX].p);
    bs_movein_cursor_fini(&s->snap);
    bs_xcursor_fini(&s->cur);
    for (size_t i = 0; i < s->nheld; i++) {
        bs_snap_free(s->held[i].sn);
        free(s->held[i].raw);
        bs_snapbatch_free(s->held[i].b);
    }
    free(s->held);
    for (size_t i = 0; i < s->nsets; i++)
        free(s->sets[i].p);
    for (size_t i = 0; i < s->ninbox; i++)
        free(s->inbox[i].p);
    free(s->seed_wants);
    free(s->seed_point);
    bs_envelope_fini(&s->theirs);
    free(s->sent);
    free(s);
}

bs_session_state
bs_session_state_of(const bs_session *s)
{
    return s->state;
}

const bs_session_stats *
bs_session_stats_of(const bs_session *s)
{
    return &s->st;
}

const char *
bs_session_peer(const bs_session *s)
{
    return s->peer;
}

const char *
bs_session_error(const bs_session *s)
{
    return s->error;
}

const char *
bs_session_refused_reason(const bs_session *s)
{
    return s->refused_why;
}

bs_err
bs_session_errcode(const bs_session *s)
{
    return s->errcode;
}

/* ---- our envelope ---- */

typedef struct hello_ctx {
    bs_session *s;
    int hello; /* a HELLO (else an ACK) */
    int bump;  /* initiator: count this exchange in the peer's sent_no */
    uint64_t now;
    uint8_t *env;
    size_t n;
} hello_ctx;

/* Whether a regional hub's seed point covers what peer p holds of every
 * stream but its own (its HELLO's vector, else the one recorded): a seed
 * drops the branch's records and rebuilds them from the snapshots, so a
 * change it holds beyond the point would be lost (M1's rule, for a seed). */
static int
covers_peer(const bs_session *s, const bs_peer *p)
{
    const bs_pos *v = s->cfg.initiator ? p->acked : s->theirs.ack;
    size_t n = s->cfg.initiator ? p->nacked : s->theirs.nack;

    for (size_t i = 0; i < n; i++) {
        uint8_t key[BS_PK_LEN + BS_INC_LEN];

        if (v[i].seq == 0 || memcmp(v[i].origin, p->pk, BS_PK_LEN) == 0)
            continue;
        memcpy(key, v[i].origin, BS_PK_LEN);
        memcpy(key + BS_PK_LEN, v[i].inc, BS_INC_LEN);
        if (bs_vv_get(s->seed_point, s->nseed_point, key) < v[i].seq)
            return 0;
    }
    return 1;
}

/* Whether peer p is to be seeded now (s->seeding, from s->seed_from): it
 * asks in its HELLO, or the admin said so, or its last envelope asked. */
static bs_err
decide_asked(bs_txn *t, const bs_peer *p, bs_session *s)
{
    bs_err rv;

    if (!s->cfg.initiator && s->theirs.seed &&
        (s->theirs.features & BS_FEATURE_BOOTSTRAP)) { /* asked now */
        s->seeding = 1;
        for (size_t i = 0; i < s->theirs.nwants; i++)
            if (s->theirs.wants[i].after[0] != '\0')
                s->seed_from = s->theirs.wants[i];
        return BS_OK;
    }
    if ((rv = bs_movein_peer_seed(t, p->pk, &s->seed_from)) == BS_OK)
        s->seeding = 1;
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/*
 * The hub seeds peer p in this session when, answering, the peer's HELLO
 * asks (Envelope.seed with features bit 1; it resumes after the HELLO's
 * want with `after`), or when its admin said so or the peer's last
 * recorded envelope asked (movein.h bs_movein_peer_seed, with the resume
 * point kept).  So does a regional hub its branch (protocol.md 8.9), with
 * the seed point of the hub's answers it kept, or not yet (seed_wait).
 */
static bs_err
decide_seed(bs_txn *t, const bs_meta *m, const bs_peer *p, bs_session *s)
{
    int region;
    bs_err rv;

    s->seeding = s->seed_wait = 0;
    free(s->seed_point);
    s->seed_point = NULL;
    s->nseed_point = 0;
    memset(&s->seed_from, 0, sizeof s->seed_from);
    if (!m->joined || s->cfg.sk == NULL)
        return BS_OK;
    region = memcmp(m->pk, m->hub, BS_PK_LEN) != 0;
    if (region && !bs_members_is_region(t, m, m->pk))
        return BS_OK; /* a branch seeds nobody */
    if ((rv = decide_asked(t, p, s)) != BS_OK || !s->seeding || !region)
        return rv;
    /* a regional hub seeds from the hub's answers it kept (8.9), once it
     * holds an answer of every collection */
    rv = bs_relay_seed_point(t, m, &s->seed_point, &s->nseed_point);
    if (rv == BS_OK && !covers_peer(s, p)) {
        free(s->seed_point); /* what it holds would be lost: ask first */
        s->seed_point = NULL;
        s->nseed_point = 0;
        rv = BS_ENOTFOUND;
    }
    if (rv == BS_ENOTFOUND) {
        s->seeding = 0;
        s->seed_wait = 1;
        return BS_OK;
    }
    return rv;
}

static bs_err
build_hello(bs_txn *t, void *arg, bs_errbuf *err)
{
    hello_ctx *h = arg;
    bs_envelope e;
    bs_meta m;
    bs_peer p;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        return rv;
    rv = h->s->peer[0] ? bs_peer_get(t, h->s->peer, &p)
                       : bs_peer_find_pk(t, h->s->peer_pk, &p);
    if (rv == BS_ENOTFOUND)
        return bs_errf(err, BS_EINVAL, "unknown peer \"%s\"", h->s->peer);
    if (rv != BS_OK)
        return rv;
    if (h->bump) {
        p.sent_no++;
        rv = bs_peer_put(t, &p);
    }
    memcpy(h->s->peer_pk, p.pk, BS_PK_LEN);
    memcpy(h->s->own_pk, m.pk, BS_PK_LEN);
    snprintf(h->s->peer, sizeof h->s->peer, "%s", p.name);
    if (rv == BS_OK && h->hello)
        rv = decide_seed(t, &m, &p, h->s);
    if (rv == BS_OK)
        rv = bs_xchg_envelope(t, &m, &p, p.sent_no, h->now, &e);
    /* a branch past the retention limit with its hub (or its regional
     * hub, 8.9) can be seeded again (reseed.h): it says so, and the hub
     * seeds it if its admin asked */
    if (rv == BS_OK && h->hello && m.role != BS_ROLE_HUB && m.joined &&
        (memcmp(p.pk, m.hub, BS_PK_LEN) == 0 || p.hub_pin == BS_PIN_NAMED) &&
        h->s->cfg.retention_ms &&
        bs_peer_stale(p.last_ok_ms, p.created_ms, h->now,
                      h->s->cfg.retention_ms))
        e.features |= BS_FEATURE_BOOTSTRAP;
    bs_peer_fini(&p);
    if (rv != BS_OK)
        return rv;
    if (h->hello && h->s->seeding) {
        e.features |= BS_FEATURE_BOOTSTRAP;
        e.seed = 1; /* its ack is the seed point */
    }
    if (h->hello && h->s->seeding && h->s->seed_point != NULL) {
        /* a regional hub's seed point: no later than the hub's answers */
        bs_pos *pt = malloc((h->s->nseed_point + 1) * sizeof *pt);
        if (pt == NULL) {
            bs_envelope_fini(&e);
            return BS_ENOMEM;
        }
        memcpy(pt, h->s->seed_point, h->s->nseed_point * sizeof *pt);
        free(e.ack);
        e.ack = pt;
        e.nack = h->s->nseed_point;
    }
    /* answering a hub that seeds us (it joined us just now, perhaps): we
     * take the seed's batches */
    if (h->hello && !h->s->seeding && h->s->theirs.seed &&
        (h->s->theirs.features & BS_FEATURE_BOOTSTRAP))
        e.features |= BS_FEATURE_BOOTSTRAP;
    free(h->env);
    h->env = NULL;
    rv = bs_envelope_encode(&e, &h->env, &h->n);
    bs_envelope_fini(&e);
    return rv;
}

/* A regional hub about to seed peer s->peer_pk asks the hub for what it
 * lacks (relay.h bs_relay_note). */
static bs_err
ask_hub(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_session *s = arg;

    (void)err;
    return bs_relay_note(t, s->peer_pk, NULL, 0, NULL, 0, 1);
}

static bs_err
send_envelope(bs_session *s, uint8_t type, int bump)
{
    hello_ctx h = {s, type == BS_MSG_HELLO, bump, now_ms(s), NULL, 0};
    bs_errbuf err = {{0}};
    bs_err rv;

    rv = bump ? bs_store_write(s->cfg.store, build_hello, &h, &err) : BS_OK;
    if (!bump) {
        bs_txn *t;
        if ((rv = bs_store_read(s->cfg.store, &t, &err)) == BS_OK) {
            rv = build_hello(t, &h, &err);
            bs_txn_abort(t);
        }
    }
    if (rv == BS_OK && s->seed_wait) { /* a regional hub not ready to seed */
        free(h.env);
        if ((rv = bs_store_write(s->cfg.store, ask_hub, s, &err)) != BS_OK)
            return fail(s, rv, bs_errmsg(&err, rv));
        snprintf(err.msg, sizeof err.msg,
                 "the seed of %s waits for the hub's record snapshots, which "
                 "this regional hub asks for at its next exchange with the "
                 "hub: exchange again after that",
                 s->peer);
        return fail(s, BS_ESTALE, err.msg);
    }
    if (rv == BS_OK)
        rv = enqueue(s, type, h.env, h.n);
    free(h.env);
    if (rv != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    if (type == BS_MSG_HELLO)
        s->hello_ms = h.now; /* the peer's later envelopes come after it */
    return BS_OK;
}

bs_err
bs_session_start(bs_session *s)
{
    bs_err rv;

    BS_ASSERT(s->cfg.initiator && s->state == BS_SESSION_START);
    if ((rv = send_envelope(s, BS_MSG_HELLO, 1)) != BS_OK)
        return rv;
    s->state = BS_SESSION_AWAIT_HELLO;
    return BS_OK;
}

/* ---- receiving ---- */

typedef struct join_ctx {
    bs_session *s;
} join_ctx;

static bs_err
join_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    join_ctx *j = arg;
    bs_meta m;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        return rv;
    if (m.joined)
        return BS_OK;
    return bs_xchg_join(t, &m, &j->s->theirs, j->s->cfg.sk, err);
}

static bs_err
reseed_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    join_ctx *j = arg;

    return bs_reseed_begin(t, j->s->theirs.ack, j->s->theirs.nack, NULL, err);
}

/* A re-seed the seed completed is finished in its last transaction. */
static bs_err
reseed_done(bs_session *s, bs_txn *t, bs_errbuf *err)
{
    bs_core c = {NULL, s->cfg.sk, s->cfg.clock, s->cfg.max_skew_ms, 0, 0};

    return bs_reseed_finish(t, &c, NULL, err);
}

static bs_err
on_hello(bs_session *s, const uint8_t *p, size_t n)
{
    bs_errbuf err = {{0}};
    bs_accept acc;
    bs_meta m;
    bs_txn *t;
    join_ctx j = {s};
    bs_err rv;

    if (s->state != BS_SESSION_AWAIT_HELLO)
        return fail(s, BS_EMALFORMED, "unexpected hello");
    if ((rv = bs_envelope_decode(p, n, &s->theirs, &err)) != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    if (s->cfg.authenticated &&
        memcmp(s->cfg.authenticated, s->theirs.sender, BS_PK_LEN) != 0)
        return fail(s, BS_EFORGED,
                    "hello names another node than the one authenticated");
    if (s->cfg.initiator && memcmp(s->theirs.sender, s->peer_pk, BS_PK_LEN))
        return fail(s, BS_EFORGED, "the peer answered with another identity");
    /* The peer's clock: its hello cannot arrive before it was made, and
     * the responder made its hello after ours arrived (clock.h). */
    bs_clock_sample_recv(&s->st.clock, s->theirs.created_ms, now_ms(s));
    if (s->cfg.initiator)
        bs_clock_sample_reply(&s->st.clock, s->theirs.created_ms, s->hello_ms);
    if ((rv = bs_store_read(s->cfg.store, &t, &err)) != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    if ((rv = bs_meta_load(t, &m, &err)) == BS_OK)
        rv = bs_xchg_accept(t, &m, &s->theirs, now_ms(s), s->cfg.retention_ms,
                            &acc, &err);
    bs_txn_abort(t);
    if (rv != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    memcpy(s->peer_pk, acc.peer.pk, BS_PK_LEN);
    snprintf(s->peer, sizeof s->peer, "%s", acc.peer.name);
    bs_peer_fini(&acc.peer);
    /* A replayed hello cannot come through CURVE; refuse it all the same. */
    if (acc.replay && !s->cfg.initiator)
        return fail(s, BS_EINVAL, "replayed hello");
    if (acc.join &&
        (rv = bs_store_write(s->cfg.store, join_txn, &j, &err)) != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    /* A stale branch seeded again: its unsent sets are stashed before
     * anything is sent or applied (reseed.h). */
    if (acc.reseed &&
        (rv = bs_store_write(s->cfg.store, reseed_txn, &j, &err)) != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    /* The initiator's hello number is recorded with its acknowledgement at
     * the end (ack_txn), not here: one durable commit less before the
     * first change moves.  A session that fails before then leaves the
     * number unrecorded, which is safe: the initiator never reuses it. */
    if (!s->cfg.initiator && (rv = send_envelope(s, BS_MSG_HELLO, 0)) != BS_OK)
        return rv;
    bs_xcursor_init(&s->cur, s->theirs.ack, s->theirs.nack);
    bs_xcursor_peer(&s->cur, s->theirs.sender,
                    s->theirs.features);     /* its scope (8.5) */
    if (s->seeding && s->seed_point != NULL) /* a regional hub's (8.9) */
        bs_xcursor_seed_upto(&s->cur, s->seed_point, s->nseed_point);
    else if (s->seeding) /* system sets and anchors, then the snapshots */
        bs_xcursor_seed(&s->cur);
    /* The hub seeds us: its sets carry the seed point (seeded_here), so
     * they apply here, inline. */
    if (s->theirs.seed && (s->theirs.features & BS_FEATURE_BOOTSTRAP))
        s->defer = 0;
    s->state = BS_SESSION_STREAMING;
    return BS_OK;
}

typedef struct set_ctx {
    bs_session *s;
    bs_csview *v;
    bs_apply ap;
} set_ctx;

/* The hub's HELLO seeds this branch: its sets are admitted with the seed
 * point (A7s, A8s), and the seed is noted ("sed:") in the first
 * transaction that applies something of it. */
static bs_err
seeded_here(bs_session *s, bs_txn *t, bs_apply *ap)
{
    bs_xchg_seed_point(&s->theirs, &ap->ad.meta, &ap->ad);
    if (ap->ad.seed == NULL || s->seed_begun)
        return BS_OK;
    s->seed_begun = 1; /* (a failed transaction writes it again next time:
                          bs_movein_seed_begin keeps what it counted) */
    return bs_movein_seed_begin(t, ap->ad.seed, ap->ad.nseed);
}

static bs_err
apply_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    set_ctx *x = arg;
    bs_err rv;

    rv = bs_apply_begin(&x->ap, t, x->s->cfg.clock, x->s->cfg.max_skew_ms, err);
    if (rv == BS_OK)
        rv = seeded_here(x->s, t, &x->ap);
    if (rv == BS_OK)
        rv = bs_apply_held(&x->ap, err); /* their time may have come */
    if (rv == BS_OK && x->v != NULL)
        rv = bs_apply_set(&x->ap, x->v, err);
    if (rv == BS_OK)
        rv = bs_apply_finish(&x->ap, err);
    if (rv == BS_OK) {
        x->s->st.changes_applied += x->ap.changes;
        x->s->st.conflicts += x->ap.conflicts;
    }
    bs_apply_fini(&x->ap);
    return rv;
}

/* What became of a received set (rv, why: its refusal), then its
 * CREDIT. */
static bs_err
set_outcome(bs_session *s, bs_err rv, const char *detail)
{
    uint8_t credit[4];

    if (rv != BS_OK && bs_err_local(rv)) {
        char why[BS_ERRMSG_LEN];
        snprintf(why, sizeof why, "%s", detail);
        return fail(s, rv, why); /* our own trouble: stop */
    }
    if (rv != BS_OK) {
        /* P6: refuse this set, keep going; its origin's later sets will
         * wait behind the gap, other origins flow on.  The first reason
         * is the one reported (status, the exchange log, `sync`). */
        if (s->st.refused++ == 0) {
            snprintf(s->refused_why, sizeof s->refused_why, "%s", detail);
            snprintf(s->error, sizeof s->error, "refused a change set: %.*s",
                     (int)sizeof s->error - 32, s->refused_why);
        }
        s->errcode = rv;
    }
    bs_put_u32be(credit, 1);
    return enqueue(s, BS_MSG_CREDIT, credit, 4);
}

/* Deferred apply: keep the set for the caller (bs_session_take). */
static bs_err
defer_set(bs_session *s, const uint8_t *p, size_t n)
{
    uint8_t *c;

    if (s->nsets == WAIT_MAX)
        return fail(s, BS_EMALFORMED, "change sets beyond the window");
    if ((c = malloc(n > 0 ? n : 1)) == NULL)
        return fail(s, BS_ENOMEM, "out of memory");
    if (n > 0)
        memcpy(c, p, n);
    s->sets[s->nsets++] = (waitmsg){c, n};
    s->pending++;
    return BS_OK;
}

static bs_err
on_set(bs_session *s, const uint8_t *p, size_t n)
{
    bs_errbuf err = {{0}};
    set_ctx x = {s, NULL, {0}};
    bs_err rv;

    if (s->state != BS_SESSION_STREAMING || s->got_done)
        return fail(s, BS_EMALFORMED, "unexpected change set");
    s->st.sets_received++;
    if (s->defer)
        return defer_set(s, p, n);
    rv = bs_changeset_decode(p, n, &x.v, &err);
    if (rv == BS_OK) {
        rv = bs_store_write(s->cfg.store, apply_txn, &x, &err);
        bs_changeset_free(x.v);
    }
    return set_outcome(s, rv, bs_errmsg(&err, rv));
}

typedef struct snap_ctx {
    bs_session *s;
    const struct held *h; /* merged in one transaction */
    size_t n;
    uint64_t merged;                  /* snapshots merged */
    char coll[BS_COLLECTION_MAX + 1]; /* the last record merged */
    char id[BS_ID_MAX + 1];
    uint64_t records;
} snap_ctx;

static bs_err
merge_one(snap_ctx *x, bs_apply *ap, const bs_snap *sn, bs_errbuf *err)
{
    bs_err rv = bs_apply_snapshot(ap, sn, x->s->peer_pk, err);

    if (rv == BS_OK) {
        x->merged++;
        if (!sn->done) {
            memcpy(x->coll, sn->coll, sizeof x->coll);
            memcpy(x->id, sn->id, sizeof x->id);
            x->records++;
        }
    }
    return rv;
}

/* A SNAP held as bytes: decoded (N1-N6), admitted and merged. */
static bs_err
merge_raw(snap_ctx *x, bs_apply *ap, const struct held *h, bs_errbuf *err)
{
    bs_snap *sn;
    bs_err rv;

    if ((rv = bs_snap_decode(h->raw, h->rawn, &sn, err)) != BS_OK)
        return rv;
    rv = merge_one(x, ap, sn, err);
    bs_snap_free(sn);
    return rv;
}

/* A batch: admitted whole (N7-N11, its signature and hashes), then each
 * of its snapshots admitted and merged. */
static bs_err
merge_batch(snap_ctx *x, bs_apply *ap, const bs_snapbatch *b, bs_errbuf *err)
{
    bs_err rv = bs_admit_snapbatch(&ap->ad, b, x->s->peer_pk, err);

    for (size_t j = 0; rv == BS_OK && j < b->n; j++) {
        bs_snap *sn = NULL;
        if ((rv = bs_snapbatch_snap(b, j, &sn, err)) == BS_OK)
            rv = merge_one(x, ap, sn, err);
        bs_snap_free(sn);
    }
    return rv;
}

static bs_err
snap_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    snap_ctx *x = arg;
    bs_apply ap;
    bs_err rv;

    x->merged = x->records = 0;
    rv = bs_apply_begin(&ap, t, x->s->cfg.clock, x->s->cfg.max_skew_ms, err);
    if (rv == BS_OK)
        rv = seeded_here(x->s, t, &ap);
    for (size_t i = 0; rv == BS_OK && i < x->n; i++)
        rv = x->h[i].b != NULL     ? merge_batch(x, &ap, x->h[i].b, err)
             : x->h[i].raw != NULL ? merge_raw(x, &ap, &x->h[i], err)
                                   : merge_one(x, &ap, x->h[i].sn, err);
    if (rv == BS_OK && ap.ad.seed != NULL && x->records > 0)
        rv = bs_movein_seed_progress(t, x->coll, x->id, x->records);
    if (rv == BS_OK)
        rv = bs_apply_finish(&ap, err);
    bs_apply_fini(&ap);
    if (rv == BS_OK)
        rv = reseed_done(x->s, t, err);
    return rv;
}

/* A snapshot refused (not fatal, P6) or our own trouble (fatal). */
static bs_err
snap_outcome(bs_session *s, bs_err rv, bs_errbuf *err, uint64_t merged)
{
    if (rv != BS_OK && bs_err_local(rv)) {
        char why[BS_ERRMSG_LEN];
        snprintf(why, sizeof why, "%s", bs_errmsg(err, rv));
        return fail(s, rv, why);
    }
    if (rv != BS_OK) {
        if (s->st.refused++ == 0) {
            snprintf(s->refused_why, sizeof s->refused_why, "%s",
                     bs_errmsg(err, rv));
            snprintf(s->error, sizeof s->error,
                     "refused a record snapshot: %.*s",
                     (int)sizeof s->error - 32, s->refused_why);
        }
        s->errcode = rv;
    } else {
        s->st.snapshots_received += merged;
    }
    return BS_OK;
}

/* Merge the seed's snapshots held so far in one write transaction; when
 * one of them is refused, each again in a transaction of its own, so that
 * only that one is (as without groups). */
static bs_err
flush_snaps(bs_session *s)
{
    bs_errbuf err = {{0}};
    snap_ctx x;
    bs_err rv = BS_OK;

    if (s->nheld == 0)
        return BS_OK;
    memset(&x, 0, sizeof x);
    x.s = s;
    x.h = s->held;
    x.n = s->nheld;
    rv = bs_store_write(s->cfg.store, snap_txn, &x, &err);
    if (rv == BS_OK || bs_err_local(rv)) {
        rv = snap_outcome(s, rv, &err, x.merged);
    } else {
        rv = BS_OK;
        for (size_t i = 0; rv == BS_OK && i < s->nheld; i++) {
            bs_errbuf e1 = {{0}};
            snap_ctx one = x;
            bs_err r1;
            one.h = &s->held[i];
            one.n = 1;
            r1 = bs_store_write(s->cfg.store, snap_txn, &one, &e1);
            rv = snap_outcome(s, r1, &e1, one.merged);
        }
    }
    for (size_t i = 0; i < s->nheld; i++) {
        bs_snap_free(s->held[i].sn);
        free(s->held[i].raw);
        bs_snapbatch_free(s->held[i].b);
    }
    s->nheld = s->held_bytes = 0;
    return rv;
}

/* Hold a seed's snapshot or batch for its group (taking it). */
static bs_err
hold_snap(bs_session *s, uint8_t *raw, bs_snapbatch *b, size_t bytes)
{
    if (s->nheld == s->capheld) {
        size_t cap = s->capheld ? 2 * s->capheld : 256;
        struct held *v = realloc(s->held, cap * sizeof *v);
        if (v == NULL) {
            free(raw);
            bs_snapbatch_free(b);
            return BS_ENOMEM;
        }
        s->held = v;
        s->capheld = cap;
    }
    memset(&s->held[s->nheld], 0, sizeof *s->held);
    s->held[s->nheld].raw = raw;
    s->held[s->nheld].rawn = raw != NULL ? bytes : 0;
    s->held[s->nheld++].b = b;
    s->held_bytes += bytes;
    return s->held_bytes >= SNAP_GROUP_BYTES ? flush_snaps(s) : BS_OK;
}

/* A record snapshot (move-in): refused, not fatal, as a set (P6); one
 * CREDIT as for a set (it counts in the window). */
static bs_err
on_snap(bs_session *s, const uint8_t *p, size_t n)
{
    bs_errbuf err = {{0}};
    bs_snap *sn = NULL;
    snap_ctx x;
    uint8_t credit[4];
    bs_err rv;

    if (s->state != BS_SESSION_STREAMING || s->got_done)
        return fail(s, BS_EMALFORMED, "unexpected record snapshot");
    if (s->theirs.seed && (s->theirs.features & BS_FEATURE_BOOTSTRAP)) {
        /* a seed: held as bytes, merged in its group */
        uint8_t *raw = malloc(n);
        if (raw == NULL)
            return fail(s, BS_ENOMEM, "out of memory");
        memcpy(raw, p, n);
        if ((rv = hold_snap(s, raw, NULL, n)) != BS_OK)
            return s->state == BS_SESSION_FAILED ? rv
                                                 : fail(s, rv, "out of memory");
        if (s->state == BS_SESSION_FAILED)
            return s->errcode;
        bs_put_u32be(credit, 1);
        return enqueue(s, BS_MSG_CREDIT, credit, 4);
    }
    memset(&x, 0, sizeof x);
    if ((rv = bs_snap_decode(p, n, &sn, &err)) == BS_OK) {
        struct held one = {sn, NULL, 0, NULL};
        x.s = s;
        x.h = &one;
        x.n = 1;
        rv = bs_store_write(s->cfg.store, snap_txn, &x, &err);
        bs_snap_free(sn);
    }
    if ((rv = snap_outcome(s, rv, &err, x.merged)) != BS_OK)
        return rv;
    bs_put_u32be(credit, 1);
    return enqueue(s, BS_MSG_CREDIT, credit, 4);
}

/* A seed's batch of snapshots (revision 2026-12, bootstrap): decoded
 * (B1-B5) and held for its group, where it is admitted and merged; a
 * batch that does not decode is refused, not fatal, as a SNAP. */
static bs_err
on_snapbatch(bs_session *s, const uint8_t *p, size_t n)
{
    bs_errbuf err = {{0}};
    bs_snapbatch *b = NULL;
    uint8_t credit[4];
    bs_err rv;

    if (s->state != BS_SESSION_STREAMING || s->got_done || !s->theirs.seed ||
        !(s->theirs.features & BS_FEATURE_BOOTSTRAP))
        return fail(s, BS_EMALFORMED, "unexpected batch of record snapshots");
    if ((rv = bs_snapbatch_decode(p, n, &b, &err)) == BS_OK) {
        if ((rv = hold_snap(s, NULL, b, n)) != BS_OK)
            return s->state == BS_SESSION_FAILED ? rv
                                                 : fail(s, rv, "out of memory");
        if (s->state == BS_SESSION_FAILED)
            return s->errcode;
    } else if ((rv = snap_outcome(s, rv, &err, 0)) != BS_OK) {
        return rv;
    }
    bs_put_u32be(credit, 1);
    return enqueue(s, BS_MSG_CREDIT, credit, 4);
}

/* Retry held sets once the peer has sent everything (a session without
 * SETs retries them too, as an exchange file does); only when some are
 * held, so a plain exchange costs no extra commit. */
static bs_err
retry_held(bs_session *s)
{
    bs_errbuf err = {{0}};
    set_ctx x = {s, NULL, {0}};
    uint64_t n = 0;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_store_read(s->cfg.store, &t, &err)) != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    rv = bs_held_count(t, BS_HELD_WAITING, 0, 1, &n);
    bs_txn_abort(t);
    if (rv == BS_OK && n > 0)
        rv = bs_store_write(s->cfg.store, apply_txn, &x, &err);
    if (rv != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    return BS_OK;
}

static bs_err
maybe_ack(bs_session *s)
{
    bs_err rv;

    if (s->sent_ack || !s->sent_done || !s->got_done ||
        s->st.sets_received < s->their_count || s->pending > 0)
        return BS_OK;
    if ((rv = retry_held(s)) != BS_OK ||
        (rv = send_envelope(s, BS_MSG_ACK, 0)) != BS_OK)
        return rv;
    s->sent_ack = 1;
    if (s->got_ack)
        s->state = BS_SESSION_COMPLETE;
    return BS_OK;
}

typedef struct ack_ctx {
    bs_session *s;
    bs_envelope *e;
    const bs_envelope *hello; /* responder: the initiator's numbered hello */
    uint64_t changes, now;
    uint64_t held, held_own; /* sets we sent that e does not cover */
} ack_ctx;

/* How many stored sets of stream `key` hold seqs in (from, upto]. */
static bs_err
count_sets(bs_txn *t, bs_streamtab *tab, const uint8_t *key, uint64_t from,
           uint64_t upto, uint64_t *n)
{
    const bs_stream *st = bs_streams_find(tab, key, key + BS_PK_LEN);
    uint64_t last;
    bs_slice set;
    bs_err rv;

    *n = 0;
    if (st == NULL)
        return BS_OK;
    while ((rv = bs_setlog_next(t, st->idx, from, upto, &set, &last)) ==
           BS_OK) {
        (*n)++;
        from = last;
    }
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* The sets this session sent that the peer's ACK does not cover: they
 * were held there, or refused (docs/protocol.md 15.5). */
static bs_err
held_there(bs_txn *t, ack_ctx *a)
{
    const bs_session *s = a->s;
    bs_streamtab tab;
    bs_err rv;

    if (s->nsent == 0)
        return BS_OK;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    for (size_t i = 0; i < s->nsent && rv == BS_OK; i++) {
        uint64_t acked = bs_vv_get(a->e->ack, a->e->nack, s->sent[i].key), n;

        if (acked >= s->sent[i].last)
            continue;
        if ((rv = count_sets(t, &tab, s->sent[i].key, acked, s->sent[i].last,
                             &n)) != BS_OK)
            break;
        a->held += n;
        if (memcmp(s->sent[i].key, s->own_pk, BS_PK_LEN) == 0)
            a->held_own += n;
    }
    bs_streams_fini(&tab);
    return rv;
}

/* What this exchange says about the peer, kept with it (peers.h). */
static bs_err
note_peer(bs_txn *t, ack_ctx *a)
{
    const bs_session *s = a->s;
    bs_peer p;
    bs_err rv;

    if ((rv = bs_peer_find_pk(t, a->e->sender, &p)) != BS_OK)
        return rv;
    bs_clock_note(&p, &s->st.clock, s->cfg.clock);
    p.refused_sets = s->st.refused;
    snprintf(p.refused_reason, sizeof p.refused_reason, "%.*s",
             (int)sizeof p.refused_reason - 1, s->refused_why);
    p.held_there = a->held;
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    return rv;
}

static bs_err
ack_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    ack_ctx *a = arg;
    bs_err rv;

    (void)err;
    a->held = a->held_own = 0;
    if (a->hello != NULL && (rv = bs_xchg_note_message(t, a->hello)) != BS_OK)
        return rv;
    if ((rv = bs_xchg_record(t, a->e, a->changes, a->now, 0)) != BS_OK ||
        (rv = held_there(t, a)) != BS_OK)
        return rv;
    return note_peer(t, a);
}

static bs_err
on_ack(bs_session *s, const uint8_t *p, size_t n)
{
    bs_errbuf err = {{0}};
    bs_envelope e;
    ack_ctx a = {s, &e, s->cfg.initiator ? NULL : &s->theirs, 0, 0, 0, 0};
    bs_err rv;

    if (s->state != BS_SESSION_STREAMING || s->got_ack)
        return fail(s, BS_EMALFORMED, "unexpected acknowledgement");
    if ((rv = bs_envelope_decode(p, n, &e, &err)) != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    if (memcmp(e.sender, s->peer_pk, BS_PK_LEN) != 0) {
        bs_envelope_fini(&e);
        return fail(s, BS_EFORGED, "acknowledgement from another identity");
    }
    a.changes = s->st.changes_applied;
    a.now = now_ms(s);
    /* The peer built its ACK after our hello reached it. */
    bs_clock_sample_recv(&s->st.clock, e.created_ms, a.now);
    bs_clock_sample_reply(&s->st.clock, e.created_ms, s->hello_ms);
    rv = bs_store_write(s->cfg.store, ack_txn, &a, &err);
    bs_envelope_fini(&e);
    if (rv != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    s->st.held_there = a.held;
    s->st.held_there_own = a.held_own;
    s->got_ack = 1;
    if (s->sent_ack)
        s->state = BS_SESSION_COMPLETE;
    return BS_OK;
}

static bs_err
handle(bs_session *s, const uint8_t *msg, size_t n)
{
    const uint8_t *p = msg + 1;
    size_t len = n - 1;
    bs_err rv;

    switch (msg[0]) {
    case BS_MSG_HELLO:
        return on_hello(s, p, len);
    case BS_MSG_SET:
        if ((rv = on_set(s, p, len)) != BS_OK)
            return rv;
        return maybe_ack(s);
    case BS_MSG_DONE:
        if (len != 8 || s->state != BS_SESSION_STREAMING || s->got_done)
            return fail(s, BS_EMALFORMED, "bad DONE message");
        s->got_done = 1;
        s->their_count = bs_get_u64be(p);
        if (s->their_count != s->st.sets_received)
            return fail(s, BS_EMALFORMED, "change sets went missing");
        if ((rv = flush_snaps(s)) != BS_OK || s->state == BS_SESSION_FAILED)
            return rv != BS_OK ? rv : s->errcode;
        return maybe_ack(s);
    case BS_MSG_ACK:
        return on_ack(s, p, len);
    case BS_MSG_SNAP:
        return on_snap(s, p, len);
    case BS_MSG_SNAPBATCH:
        return on_snapbatch(s, p, len);
    case BS_MSG_CREDIT: {
        uint32_t more;
        if (len != 4 || s->state != BS_SESSION_STREAMING)
            return fail(s, BS_EMALFORMED, "bad CREDIT message");
        /* Compared with the room left, never added first: a sum could
         * wrap (2^32 - 1 read as -1) and pass (protocol.md 15.3). */
        more = bs_get_u32be(p);
        if (more > s->cfg.window - s->credit)
            return fail(s, BS_EMALFORMED, "credit beyond the window");
        s->credit += more;
        return BS_OK;
    }
    case BS_MSG_ERROR: {
        bs_err e = len > 0 && p[0] < BS_ERR_COUNT ? (bs_err)p[0] : BS_EIO;
        s->state = BS_SESSION_FAILED;
        s->errcode = e == BS_OK ? BS_EIO : e;
        snprintf(s->error, sizeof s->error, "peer refused: %.*s",
                 (int)(len > 1 ? (len - 1 > 400 ? 400 : len - 1) : 0),
                 len > 1 ? (const char *)p + 1 : "");
        return s->errcode;
    }
    default:
        return fail(s, BS_EMALFORMED, "unknown message type");
    }
}

/* ---- deferred apply (session.h) ---- */

/* Handle the messages that waited behind sets now applied, up to the
 * next set not yet applied (sets themselves go on to the caller). */
static bs_err
drain_inbox(bs_session *s)
{
    bs_err rv = BS_OK;

    while (s->ninbox > 0 && s->state != BS_SESSION_FAILED &&
           s->state != BS_SESSION_COMPLETE &&
           (s->pending == 0 || s->inbox[0].p[0] == BS_MSG_SET)) {
        waitmsg m = s->inbox[0];
        memmove(s->inbox, s->inbox + 1, --s->ninbox * sizeof *s->inbox);
        rv = handle(s, m.p, m.n);
        free(m.p);
    }
    return rv;
}

/* Keep msg until the sets before it are applied: only CREDIT and ERROR
 * (which concern what we send, or end everything) pass them. */
static bs_err
wait_behind(bs_session *s, const uint8_t *msg, size_t n)
{
    uint8_t *c;

    if (s->ninbox == WAIT_MAX)
        return fail(s, BS_EMALFORMED, "messages beyond the window");
    if ((c = malloc(n)) == NULL)
        return fail(s, BS_ENOMEM, "out of memory");
    memcpy(c, msg, n);
    s->inbox[s->ninbox++] = (waitmsg){c, n};
    return drain_inbox(s);
}

bs_err
bs_session_input(bs_session *s, const uint8_t *msg, size_t n)
{
    if (s->state == BS_SESSION_FAILED || s->state == BS_SESSION_COMPLETE)
        return BS_OK; /* late messages after the end are ignored */
    if (n == 0)
        return fail(s, BS_EMALFORMED, "empty message");
    s->st.bytes_in += n;
    if (s->defer && (s->pending > 0 || s->ninbox > 0) &&
        msg[0] != BS_MSG_CREDIT && msg[0] != BS_MSG_ERROR)
        return wait_behind(s, msg, n);
    return handle(s, msg, n);
}

bs_err
bs_session_take(bs_session *s, uint8_t **set, size_t *n)
{
    if (s->nsets == 0)
        return BS_ENOTFOUND;
    *set = s->sets[0].p;
    *n = s->sets[0].n;
    memmove(s->sets, s->sets + 1, --s->nsets * sizeof *s->sets);
    return BS_OK;
}

bs_err
bs_session_applied(bs_session *s, bs_err rv, const char *why, uint64_t changes,
                   uint64_t conflicts)
{
    bs_err r;

    if (s->state == BS_SESSION_FAILED || s->state == BS_SESSION_COMPLETE)
        return BS_OK;
    BS_ASSERT(s->pending > s->nsets); /* a set was taken */
    s->pending--;
    if (rv == BS_OK) {
        s->st.changes_applied += changes;
        s->st.conflicts += conflicts;
    }
    if ((r = set_outcome(s, rv, why != NULL ? why : "")) != BS_OK)
        return r;
    if ((r = drain_inbox(s)) != BS_OK)
        return r;
    return maybe_ack(s);
}

/* One varint at *p (advanced); 0 when it does not end before `end`. */
static int
pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;

    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* The stream (origin 3, incarnation 4) a stored set's SetHeader names
 * (protocol.md 2.5).  Our own stored bytes: only varints and
 * length-delimited fields occur. */
static int
set_stream(bs_slice set, uint8_t key[BS_STREAM_KEY_LEN])
{
    bs_slice hdr;
    const uint8_t *p, *end;
    int found = 0;

    if (bs_changeset_stored_header(set, &hdr) != BS_OK)
        return 0;
    for (p = hdr.p, end = hdr.p + hdr.n; p < end && found != 3;) {
        uint64_t tag, len;
        if (!pb_varint(&p, end, &tag))
            return 0;
        if ((tag & 7) == 0) {
            if (!pb_varint(&p, end, &len))
                return 0;
            continue;
        }
        if ((tag & 7) != 2 || !pb_varint(&p, end, &len) ||
            len > (uint64_t)(end - p))
            return 0;
        if (tag >> 3 == 3 && len == BS_PK_LEN) {
            memcpy(key, p, BS_PK_LEN);
            found |= 1;
        } else if (tag >> 3 == 4 && len == BS_INC_LEN) {
            memcpy(key + BS_PK_LEN, p, BS_INC_LEN);
            found |= 2;
        }
        p += len;
    }
    return found == 3;
}

/* Remember how far we sent set's stream (for held_there).  A stream's sets
 * go out one after another, so one entry per stream. */
static bs_err
note_sent(bs_session *s, bs_slice set)
{
    uint8_t key[BS_STREAM_KEY_LEN];
    uint64_t first, last, created;
    sent_stream *v;

    if (!set_stream(set, key) ||
        bs_changeset_stored_info(set, &first, &last, &created) != BS_OK)
        return BS_OK; /* not ours to judge: it goes uncounted */
    s->st.changes_sent += last - first + 1;
    if (s->nsent > 0 &&
        memcmp(s->sent[s->nsent - 1].key, key, BS_STREAM_KEY_LEN) == 0) {
        s->sent[s->nsent - 1].last = last;
        return BS_OK;
    }
    if ((v = realloc(s->sent, (s->nsent + 1) * sizeof *v)) == NULL)
        return BS_ENOMEM;
    s->sent = v;
    memcpy(v[s->nsent].key, key, BS_STREAM_KEY_LEN);
    v[s->nsent++].last = last;
    return BS_OK;
}

/* After the sets: the next record snapshot the hub owes the peer for its
 * hello's wants (snapshot.h), one short read transaction each;
 * BS_ENOTFOUND when none (or the peer does not take them). */
static bs_err next_batch(bs_session *s, bs_txn *t, const bs_meta *m,
                         uint8_t **out, size_t *n);

static bs_err
next_snapshot(bs_session *s, uint8_t **out, size_t *n, uint8_t *type)
{
    bs_meta m;
    bs_txn *t;
    bs_err rv;

    *type = BS_MSG_SNAP;

    if (!(s->theirs.features & BS_FEATURE_SNAPSHOTS) || s->cfg.sk == NULL ||
        s->marker_sent)
        return BS_ENOTFOUND;
    if ((rv = bs_store_read(s->cfg.store, &t, NULL)) != BS_OK)
        return rv;
    if (!s->snap_started && s->seeding && /* every collection */
        (rv = bs_movein_collections(t, &s->seed_wants, &s->nseed_wants)) !=
            BS_OK) {
        bs_txn_abort(t);
        return rv;
    }
    if (!s->snap_started) {
        if (s->seeding)
            bs_movein_cursor_init(&s->snap, s->peer_pk, s->seed_wants,
                                  s->nseed_wants);
        else
            bs_movein_cursor_init(&s->snap, s->peer_pk, s->theirs.wants,
                                  s->theirs.nwants);
        /* a peer that takes batches gets them (2.11), of version 2 if
         * it takes those (2.12) */
        s->snap.bodies = s->seeding && s->seed_point == NULL &&
                         (s->theirs.features & BS_FEATURE_BOOTSTRAP);
        if (s->snap.bodies && (s->theirs.features & BS_FEATURE_COMPACT)) {
            uint8_t *w;
            size_t nw;

            if (bs_movein_writers(t, &w, &nw) == BS_OK) { /* not too many */
                s->snap.bodies = 2;
                free(w);
            }
        }
        if (s->seeding)
            s->snap.from = s->seed_from;
        s->snap_started = 1;
    }
    if ((rv = bs_meta_load(t, &m, NULL)) == BS_OK && s->snap.bodies) {
        *type = BS_MSG_SNAPBATCH;
        rv = m.joined && memcmp(m.pk, m.hub, BS_PK_LEN) == 0
                 ? next_batch(s, t, &m, out, n)
                 : BS_ENOTFOUND;
    } else if (rv == BS_OK) {
        /* the hub, or a regional hub relaying the hub's (relay.h) */
        rv = bs_movein_next(t, &m, s->cfg.sk, &s->snap, now_ms(s), out, n);
        if (rv == BS_ENOTFOUND && s->seeding && m.joined) { /* the end */
            rv = s->seed_point != NULL
                     ? bs_relay_seed_marker(&m, s->cfg.sk, s->seed_point,
                                            s->nseed_point, now_ms(s), out, n)
                     : bs_movein_seed_marker(t, &m, s->cfg.sk, now_ms(s), out,
                                             n);
            s->marker_sent = rv == BS_OK;
        }
    }
    bs_txn_abort(t);
    return rv;
}

/* The next batch of a seed's snapshots (about BS_SNAPBATCH_BYTES of
 * bodies, the marker in the last), read in t; BS_ENOTFOUND after the
 * marker. */
static bs_err
next_batch(bs_session *s, bs_txn *t, const bs_meta *m, uint8_t **out, size_t *n)
{
    bs_slice *bodies = NULL;
    size_t nb = 0, cap = 0, bytes = 0, nw = 0;
    uint8_t *writers = NULL;
    bs_err rv = BS_OK;

    while (bytes < BS_SNAPBATCH_BYTES && nb < BS_SNAPBATCH_MAX &&
           !s->marker_sent) {
        uint8_t *p;
        size_t len;

        rv = bs_movein_next(t, m, s->cfg.sk, &s->snap, now_ms(s), &p, &len);
        if (rv == BS_ENOTFOUND) { /* the end */
            rv = bs_movein_seed_marker(t, m, NULL, now_ms(s), &p, &len);
            s->marker_sent = rv == BS_OK;
        }
        if (rv != BS_OK)
            break;
        if (nb == cap) {
            bs_slice *v;
            cap = cap ? 2 * cap : 256;
            if ((v = realloc(bodies, cap * sizeof *v)) == NULL) {
                free(p);
                rv = BS_ENOMEM;
                break;
            }
            bodies = v;
        }
        bodies[nb++] = (bs_slice){p, len};
        bytes += len;
    }
    if (rv == BS_OK && nb == 0)
        rv = BS_ENOTFOUND;
    if (rv == BS_OK && s->snap.bodies == 2 &&
        (rv = bs_movein_writers(t, &writers, &nw)) == BS_OK)
        rv = bs_snapbatch_encode2(m->infobase, m->pk, now_ms(s), writers, nw,
                                  bodies, nb, s->cfg.sk, out, n);
    else if (rv == BS_OK)
        rv = bs_snapbatch_encode(m->infobase, m->pk, now_ms(s), bodies, nb,
                                 s->cfg.sk, out, n);
    if (rv == BS_OK)
        s->st.snapshots_sent += nb - 1; /* produce counts one */
    for (size_t i = 0; i < nb; i++)
        free((void *)bodies[i].p);
    free(bodies);
    free(writers);
    return rv;
}

/* Queue the next SET, or DONE once everything was sent. */
static bs_err
produce(bs_session *s)
{
    bs_errbuf err = {{0}};
    uint8_t *set, done[8], type;
    size_t n;
    bs_err rv;

    if (s->state != BS_SESSION_STREAMING || s->sent_done || s->credit == 0)
        return BS_OK;
    rv = bs_xchg_next(s->cfg.store, &s->cur, &set, &n, &err);
    if (rv == BS_ENOTFOUND &&
        (rv = next_snapshot(s, &set, &n, &type)) == BS_OK) {
        rv = enqueue(s, type, set, n);
        free(set);
        if (rv != BS_OK)
            return fail(s, rv, "out of memory");
        s->credit--;
        s->st.snapshots_sent++;
        return BS_OK;
    }
    if (rv == BS_ENOTFOUND) {
        bs_put_u64be(done, s->st.sets_sent);
        if ((rv = enqueue(s, BS_MSG_DONE, done, 8)) != BS_OK)
            return rv;
        s->sent_done = 1;
        return maybe_ack(s);
    }
    if (rv != BS_OK)
        return fail(s, rv, bs_errmsg(&err, rv));
    if ((rv = note_sent(s, bs_mem(set, n))) == BS_OK)
        rv = enqueue(s, BS_MSG_SET, set, n);
    free(set);
    if (rv != BS_OK)
        return fail(s, rv, "out of memory");
    s->credit--;
    s->st.sets_sent++;
    return BS_OK;
}

bs_err
bs_session_output(bs_session *s, uint8_t **msg, size_t *n)
{
    bs_err rv;

    if (s->qlen == 0 && (rv = produce(s)) != BS_OK &&
        s->state != BS_SESSION_FAILED)
        return rv;
    if (s->qlen == 0)
        return BS_ENOTFOUND;
    *msg = s->q[s->qhead].p;
    *n = s->q[s->qhead].n;
    s->qhead = (s->qhead + 1) % QUEUE_MAX;
    s->qlen--;
    s->st.bytes_out += *n;
    return BS_OK;
}
