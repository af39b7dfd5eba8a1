/*
 * session.h - one network exchange between two nodes, as a state machine
 * that consumes and produces messages (bytes in, bytes out).  It opens no
 * socket and reads no clock except the injected one, so the daemon, the
 * CLI's direct `sync` and the in-process simulator drive the same code.
 *
 * Messages (one ZeroMQ frame each; first byte the type):
 *   0x01 HELLO  envelope (infobase, sender, vector, message number)
 *   0x02 SET    a change set, exactly as its origin signed it
 *   0x03 DONE   u64be: how many SETs this side sent
 *   0x04 ACK    envelope after applying everything received (the vector)
 *   0x05 ERROR  u8 code | UTF-8 text
 *   0x06 CREDIT u32be: the receiver applied that many more SETs (or SNAPs)
 *   0x07 SNAP   a record snapshot signed by the hub (move-in; only to a
 *               peer whose HELLO announced it)
 *
 * Rules:
 *  - The initiator sends HELLO; the responder checks it (paired, same
 *    infobase, sender = the key the transport authenticated, not silent
 *    past the retention limit) and answers with its own HELLO, which the
 *    initiator checks the same way (bs_xchg_accept).  Each side then
 *    streams the sets the other lacks according to the vector in the
 *    other's HELLO, hub streams first.
 *  - At most `window` SETs are unacknowledged by CREDIT at any time, so
 *    memory stays flat however large the backlog (P25).
 *  - Each SET is verified and applied in its own write transaction as it
 *    arrives (apply.h), or, with cfg.defer_apply, by the caller, who may
 *    group sets of several sessions in one transaction; either way its
 *    CREDIT follows its durable commit.  A bad set is refused and logged, and
 * the rest of that origin's stream waits (it would leave a gap); other origins
 * carry on (P6).
 *  - After its DONE and the peer's DONE with all sets applied, a side sends
 *    ACK; receiving the peer's ACK records the peer's acknowledgement.  The
 *    exchange is complete when both ACKs have crossed.
 *  - Interrupted anywhere, nothing is lost: applied sets are committed, and
 *    the next exchange starts from the vectors as they are (resume).
 *  - Each side bounds the other's clock from the envelopes' created_ms and
 *    when they were sent and received (clock.h); the peer's ACK records
 *    the bounds with the peer, with the sets refused from it (and the first
 *    reason) and the sets sent to it that its ACK does not cover: held or
 *    refused there.  Nothing on the wire changes for this.
 */
#ifndef BS_SESSION_H
#define BS_SESSION_H

#include "clock.h"
#include "exchange.h"

#define BS_MSG_HELLO  1
#define BS_MSG_SET    2
#define BS_MSG_DONE   3
#define BS_MSG_ACK    4
#define BS_MSG_ERROR  5
#define BS_MSG_CREDIT 6
/* revision 2026-12 (snapshots): a RecordSnapshot (snapshot.h), sent only
 * to a peer whose HELLO announced BS_FEATURE_SNAPSHOTS, after the SETs and
 * before DONE; answered by CREDIT and counted in the window like a SET,
 * not counted by DONE */
#define BS_MSG_SNAP 7
/* revision 2026-12 (bootstrap): a SnapBatch (snapshot.h), a seed's
 * snapshots in a batch, sent only in a seed (the hub's HELLO set `seed`)
 * to a peer whose HELLO announced BS_FEATURE_BOOTSTRAP; like a SNAP in
 * the window and not counted by DONE */
#define BS_MSG_SNAPBATCH 8

#define BS_SESSION_WINDOW 4

typedef enum {
    BS_SESSION_START,       /* initiator: nothing sent yet */
    BS_SESSION_AWAIT_HELLO, /* waiting for the peer's hello */
    BS_SESSION_STREAMING,   /* hellos crossed: sets flow both ways */
    BS_SESSION_COMPLETE,    /* both sides acknowledged */
    BS_SESSION_FAILED,      /* error sent or received; see bs_session_error */
} bs_session_state;

typedef struct bs_session bs_session;

typedef struct bs_session_cfg {
    bs_store *store;
    const uint8_t *sk; /* borrowed: the node's secret key */
    bs_clock clock;
    uint64_t max_skew_ms;
    int initiator;
    const char *peer; /* initiator: the peer's name */
    /* the peer's public key as authenticated by the transport (CURVE);
     * NULL in tests that trust the envelope */
    const uint8_t *authenticated;
    unsigned window; /* 0: BS_SESSION_WINDOW */
    /* the retention limit ([sync] retention_days): a peer silent for
     * longer is refused at its hello, whichever side calls (X7,
     * exchange.h bs_xchg_check_stale); 0: no limit (tests, fuzzers) */
    uint64_t retention_ms;
    /* Received SETs are not applied by bs_session_input but queued for
     * the caller, who applies them (on another thread, with other
     * sessions' sets, in one transaction: node/applier.h) and reports
     * each outcome with bs_session_applied; see "Deferred apply" below.
     * Not for a session in which the hub seeds this node (its sets and
     * snapshots carry the seed point): those apply inline as before. */
    int defer_apply;
} bs_session_cfg;

typedef struct bs_session_stats {
    uint64_t sets_sent, sets_received, changes_applied, conflicts, bytes_in,
        bytes_out, refused;
    uint64_t changes_sent; /* changes in the sets sent (queued to go) */
    /* at the peer's ACK: sets we sent that it does not acknowledge (held
     * or refused there), and how many of those are this node's own */
    uint64_t held_there, held_there_own;
    uint64_t snapshots_sent, snapshots_received; /* record snapshots */
    bs_clock_sample clock; /* bounds on (peer wall - our wall) */
} bs_session_stats;

BS_MUST_CHECK bs_err bs_session_new(const bs_session_cfg *cfg,
                                    bs_session **out);
void bs_session_free(bs_session *s);

/* Initiator: queue the HELLO (bumps our message number in the store). */
BS_MUST_CHECK bs_err bs_session_start(bs_session *s);

/* Feed one received message.  Errors are also turned into an ERROR
 * message for the peer and the FAILED state. */
BS_MUST_CHECK bs_err bs_session_input(bs_session *s, const uint8_t *msg,
                                      size_t n);

/* The next message to send (*msg malloc'd), BS_ENOTFOUND when nothing is
 * due now (waiting for the peer).  SETs are read from the store lazily. */
BS_MUST_CHECK bs_err bs_session_output(bs_session *s, uint8_t **msg, size_t *n);

/*
 * Deferred apply (cfg.defer_apply).  A SET that bs_session_input accepts
 * is counted as received and queued, nothing else: no CREDIT is sent for
 * it and no ACK is built until bs_session_applied reports it applied, so
 * neither ever precedes the durable commit of what it acknowledges.
 *
 * bs_session_take: the oldest queued set not yet taken, *set malloc'd
 * (the caller's, to free), BS_ENOTFOUND when none.  Sets are taken, and
 * must be reported, in the order they arrived.
 *
 * bs_session_applied: the outcome of the oldest taken set not yet
 * reported, committed durably (rv BS_OK: applied, held, duplicate) or
 * not (rv the refusal, why its detail; changes and conflicts counted
 * for the stats).  A refusal is handled as an inline apply handles it
 * (P6: counted, the first reason kept, the session goes on); a local
 * fault (bs_err_local) fails the session.  Then the CREDIT is queued.
 * A session that failed or completed meanwhile ignores it.
 */
BS_MUST_CHECK bs_err bs_session_take(bs_session *s, uint8_t **set, size_t *n);
BS_MUST_CHECK bs_err bs_session_applied(bs_session *s, bs_err rv,
                                        const char *why, uint64_t changes,
                                        uint64_t conflicts);

bs_session_state bs_session_state_of(const bs_session *s);
const bs_session_stats *bs_session_stats_of(const bs_session *s);
/* The peer's name once known ("" before its hello was accepted). */
const char *bs_session_peer(const bs_session *s);
/* Why it failed; "" otherwise. */
const char *bs_session_error(const bs_session *s);
/* Why the first set the peer sent was refused ("" when none was). */
const char *bs_session_refused_reason(const bs_session *s);
bs_err bs_session_errcode(const bs_session *s);

#endif
