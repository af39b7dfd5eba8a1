/*
 * exchange.h - what one exchange between two nodes consists of, whatever
 * carries it (a file, a ZeroMQ session, the simulator's memory transport):
 *
 *  1. the sender's envelope: infobase, sender, receiver, the sender's
 *     version vector (its acknowledgement of what it holds) and a message
 *     number that grows by one per exchange to that receiver;
 *  2. the change sets the receiver lacks according to what it last
 *     acknowledged, the hub's streams first (they introduce members);
 *  3. the receiver checks the envelope (bs_xchg_accept), applies the sets
 *     one transaction each (apply.h), then records the envelope's vector as
 *     the peer's acknowledgement (bs_xchg_record).
 */
#ifndef BS_EXCHANGE_H
#define BS_EXCHANGE_H

#include "apply.h"
#include "hlc.h"
#include "changeset.h"
#include "meta.h"
#include "peers.h"

/* Our envelope for peer p (reads the stream table in t). */
BS_MUST_CHECK bs_err bs_xchg_envelope(bs_txn *t, const bs_meta *m,
                                      const bs_peer *p, uint64_t message_no,
                                      uint64_t now_ms, bs_envelope *e);

/*
 * Every stored set that p lacks, in sending order, through emit, with the
 * changes p is not entitled to left out (scope.h); a stream stops before a
 * set that leaves out a change p is entitled to.  Each is checked first (it
 * decodes, its changes match their hashes, its origin's signature verifies): a
 * damaged one is BS_ESTORE, "store is corrupt: ...", and is never sent.  err
 * may be NULL.
 */
typedef bs_err (*bs_emit_fn)(void *ctx, bs_slice set);
BS_MUST_CHECK bs_err bs_xchg_collect(bs_txn *t, const bs_meta *m,
                                     const bs_peer *p, bs_emit_fn emit,
                                     void *ctx, uint64_t *nsets,
                                     bs_errbuf *err);

/*
 * What the hub sends to seed peer p (docs/design.md "Snapshot bootstrap"):
 * for each stream, from what p acknowledged up to the hub's position, the
 * sets that hold a change of a system collection and the set ending at
 * the position (the anchor), each with its user-collection changes left
 * out (a set without routes goes whole); the snapshots, sent after, carry
 * the records.  Checked as bs_xchg_collect checks.  Nothing unless this
 * node is the joined hub.
 */
BS_MUST_CHECK bs_err bs_xchg_collect_seed(bs_txn *t, const bs_meta *m,
                                          const bs_peer *p, bs_emit_fn emit,
                                          void *ctx, uint64_t *nsets,
                                          bs_errbuf *err);
/*
 * Streaming what a peer lacks, one set at a time, for transports that must
 * not hold a read transaction across network I/O.  theirs is the peer's
 * vector (from its hello), borrowed for the cursor's life.
 */
typedef struct bs_xcursor {
    const bs_pos *theirs;
    size_t ntheirs;
    int pass, started, done;
    size_t stream;
    uint64_t from;
    int has_peer; /* filter for this receiver (8.5) */
    uint8_t peer[BS_PK_LEN];
    uint32_t features; /* its envelope's (BS_FEATURE_SUMMARIES) */
    int hub_sent;      /* the last hub set sent: (hub_inc, up to hub_seq) */
    uint8_t hub_inc[BS_INC_LEN];
    uint64_t hub_seq;
    bs_vv_index ix; /* theirs, indexed on first use */
    int indexed;
    bs_streamtab tab; /* the stream table, read once and refreshed in
                         part per set (bs_streams_refresh) */
    int tab_ok;
    int seed;           /* bs_xcursor_seed */
    const bs_pos *upto; /* bs_xcursor_seed_upto (borrowed), or NULL */
    size_t nupto;
} bs_xcursor;

void bs_xcursor_init(bs_xcursor *c, const bs_pos *theirs, size_t n);
/* Free what the cursor allocated (its index of theirs). */
void bs_xcursor_fini(bs_xcursor *c);
/* Send only what receiver pk is entitled to (scope.h): a set is filtered
 * for it, and a stream stops before a set that leaves out a change it is
 * entitled to; set summaries go only if `features` (its envelope's)
 * announces them.  Without this call, sets go as stored. */
void bs_xcursor_peer(bs_xcursor *c, const uint8_t *pk, uint32_t features);
/* Send what seeds the peer (bs_xchg_collect_seed's selection: system sets
 * and anchors, user changes left out) instead of every set it lacks. */
void bs_xcursor_seed(bs_xcursor *c);
/* The same, each stream's anchor the set ending at its seq in point[0..n)
 * (a regional hub's seed point, movein.h; borrowed: it outlives c) instead
 * of the stream's position; a stream absent there is not sent. */
void bs_xcursor_seed_upto(bs_xcursor *c, const bs_pos *point, size_t n);
/* The next set's bytes (*out malloc'd); BS_ENOTFOUND when all were sent;
 * BS_ESTORE for a damaged stored set, as bs_xchg_collect. */
BS_MUST_CHECK bs_err bs_xchg_next(bs_store *s, bs_xcursor *c, uint8_t **out,
                                  size_t *n, bs_errbuf *err);

/* The outcome of checking an incoming envelope. */
typedef struct bs_accept {
    bs_peer peer; /* the sender, as paired (free with bs_peer_fini) */
    int replay;   /* message number already seen: nothing new */
    int join;     /* first message from the hub: adopt its infobase */
    /* X7r (docs/protocol.md 8.3): accepted although silent past the
     * retention limit, because a re-seed is under way (reseed.h) */
    int reseed;      /* we are the stale branch and e seeds us again */
    int reseed_peer; /* we are the hub and seed the stale peer again */
} bs_accept;

/*
 * Check e against our metadata and the pairing table (X1-X7 of
 * docs/protocol.md 8.3): addressed to us, from a paired peer, of our
 * infobase (or, before joining, from the peer pinned as our hub, which
 * claims to be the hub: X4, pairing.h), from a peer
 * not silent for longer than the retention limit (X7), and not going back
 * on what the same incarnation of the peer acknowledged before (P18).
 * now_ms is our wall clock and retention_ms the limit ([sync]
 * retention_days; 0: no limit, for tests and fuzzers that do not exercise
 * it).  BS_EFORGED, BS_EINFOBASE, BS_ESTALE, BS_EINVAL; a->peer is set
 * (release it with bs_peer_fini) only on BS_OK.
 */
BS_MUST_CHECK bs_err bs_xchg_accept(bs_txn *t, const bs_meta *m,
                                    const bs_envelope *e, uint64_t now_ms,
                                    uint64_t retention_ms, bs_accept *a,
                                    bs_errbuf *err);

/*
 * X7 (docs/reliability.md P7): refuse to exchange with peer p when its
 * last successful exchange with us (or its pairing, if none) is older
 * than retention_ms at now_ms, as bs_peer_stale (purge.h) judges it: our
 * purges no longer waited for it, so its old writes could bring back
 * records deleted and purged meanwhile.  The way back is a re-seed
 * (reseed.h): at the hub, `peer seed` for p lifts the check (the exchange
 * seeds p); at a branch, a re-seed under way lifts it.  BS_ESTALE with a
 * message naming the remedy; BS_OK when retention_ms is 0.  Used on
 * receiving (accept) and on writing an exchange file (bundle.h); t reads
 * the seed marks.
 */
BS_MUST_CHECK bs_err bs_xchg_check_stale(bs_txn *t, const bs_meta *m,
                                         const bs_peer *p, uint64_t now_ms,
                                         uint64_t retention_ms, bs_errbuf *err);

/* Adopt the hub's infobase (write txn); re-seals our sets if any.  X4 is
 * checked again here, in the join's own transaction: BS_EINFOBASE unless
 * e's sender is the pinned hub and claims to be the hub. */
BS_MUST_CHECK bs_err bs_xchg_join(bs_txn *t, bs_meta *m, const bs_envelope *e,
                                  const uint8_t *sk, bs_errbuf *err);

/*
 * The seed point (admit.h bs_admission.seed; docs/design.md "Snapshot
 * bootstrap"): e's vector, when e (accepted: from the pinned or paired
 * hub, X1-X4) announces BS_FEATURE_BOOTSTRAP and sets `seed`, e's sender
 * is m's hub — or m's pinned regional hub (protocol.md 8.9; looked up in
 * ad->txn) — and m is a branch; else ad is left as it is.  Borrows e.
 */
struct bs_admission;
void bs_xchg_seed_point(const bs_envelope *e, const bs_meta *m,
                        struct bs_admission *ad);

/* Counters of one exchange, as received.  After a failure they count
 * what the transactions committed before it. */
typedef struct bs_xstats {
    uint64_t sets, changes, dup_sets, conflicts, held, quarantined, bytes;
    uint64_t refused;   /* held sets refused when retried */
    uint64_t offered;   /* sets in the exchange (bs_xchg_apply) */
    uint64_t snapshots; /* record snapshots merged (snapshot.h) */
    /* a re-seed this exchange finished (reseed.h): own changes written
     * again, and those dropped (their record gone, or older there) */
    uint64_t reissued, reseed_dropped;
    int reseeded;
    int replay, joined;
    int seed;   /* export: the file seeds the peer (asked, or --seed) */
    int passes; /* import (bs_xchg_import): 1 when admitted and applied in
                   one pass, 2 with the dry pass 1 first; 0 before both */
    char peer[BS_NODE_NAME_MAX + 1];
} bs_xstats;

/* What arrived in one exchange: the envelope and the decoded sets. */
typedef struct bs_inbound {
    bs_envelope env;
    size_t nsets;
    bs_csview **sets;    /* owned; or NULL and the sets are decoded from raw */
    const bs_slice *raw; /* borrowed set bytes (e.g. an exchange file's
                            frames), decoded one at a time in each pass, so
                            memory stays at one set however large the file */
    const bs_slice *snaps; /* borrowed record snapshots (snapshot.h),
                              admitted after the sets, merged after them
                              in groups of transactions */
    size_t nsnaps;
    /* borrowed, NULL when none: snapbatch[i] set when snaps[i] is a batch
     * of snapshots (a seed's, SnapBatch) rather than one RecordSnapshot */
    const uint8_t *snapbatch;
    /* owned: snapok[i] set when pass 1 verified batch snaps[i] (its
     * signature and hashes), so that pass 2 does not verify the same bytes
     * again (bs_xchg_verify allocates it) */
    uint8_t *snapok;
    /* An exchange file's checksum, made meanwhile (bundle.c): BS_OK when
     * it matches, else the refusal, asked before anything is committed
     * (and before any other refusal of a bad input is reported: a corrupt
     * file is named so); NULL when there is nothing to wait for. */
    bs_err (*sealed)(void *ctx, bs_errbuf *err);
    void *sealed_ctx;
} bs_inbound;
void bs_inbound_fini(bs_inbound *in);

/*
 * Pass 1, before anything is written: check the envelope (bs_xchg_accept,
 * with clock's time and retention_ms) and admit every set dry (admit.h),
 * so that the exchange is refused exactly when applying it would refuse
 * one of its sets.
 */
BS_MUST_CHECK bs_err bs_xchg_verify(bs_store *s, bs_inbound *in, bs_accept *acc,
                                    bs_clock clock, uint64_t max_skew_ms,
                                    uint64_t retention_ms, bs_errbuf *err);

/*
 * Pass 2: apply the sets, then merge the record snapshots, in groups of
 * about 16 MiB per write transaction (each set, each snapshot frame
 * atomic; snapshots in their key order, so sorted inserts), joining in the
 * first of them if needed, retry held sets, then record the sender's
 * acknowledgement in the last.  An interruption leaves a
 * consistent store; receiving the same exchange again completes it.  On
 * an error, *st counts what committed before it, and a join this call
 * committed is undone (the node leaves the infobase again; the sets
 * applied stay), unless undoing fails too, which err then says.
 */
BS_MUST_CHECK bs_err bs_xchg_apply(bs_store *s, const uint8_t *sk,
                                   bs_inbound *in, const bs_accept *acc,
                                   bs_clock clock, uint64_t max_skew_ms,
                                   bs_xstats *st, bs_errbuf *err);

/*
 * An exchange file's import (bundle.h): the envelope accepted, then the
 * sets and snapshots admitted and applied.  An exchange larger than one
 * group goes through pass 1 (bs_xchg_verify) and pass 2 (bs_xchg_apply).
 * One that fits a group, the common case, is admitted and applied in ONE
 * pass inside pass 2's single write transaction: a refusal aborts it, so
 * the store is left unchanged exactly as pass 1's refusal leaves it, and
 * *st counts nothing, as after pass 1 (docs/protocol.md 4.2).  On a local
 * fault (bs_err_local) *st is as bs_xchg_apply leaves it.
 */
BS_MUST_CHECK bs_err bs_xchg_import(bs_store *s, const uint8_t *sk,
                                    bs_inbound *in, bs_clock clock,
                                    uint64_t max_skew_ms, uint64_t retention_ms,
                                    bs_xstats *st, bs_errbuf *err);

/*
 * Record e's vector as its sender's acknowledgement (write txn).  With
 * count_message, also its message number (a file's envelope, or an
 * initiator's hello); a new incarnation of the sender restarts the count.
 */
BS_MUST_CHECK bs_err bs_xchg_record(bs_txn *t, const bs_envelope *e,
                                    uint64_t changes, uint64_t now_ms,
                                    int count_message);
/* Only the message number of an initiator's hello (write txn). */
BS_MUST_CHECK bs_err bs_xchg_note_message(bs_txn *t, const bs_envelope *e);

#endif
