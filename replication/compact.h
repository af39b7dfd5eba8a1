/*
 * compact.h - log compaction (issue 12 item 5; docs/storage.md 3.8,
 * docs/design.md "Tombstones, retention and compaction").
 *
 * The log keeps every set a node sealed or applied: what it sends to a
 * peer that lacks it, what a rebuild replays, what a fork is judged
 * against.  A set that every peer has acknowledged, and that is older
 * than the retention limit, is needed by nobody who may still exchange
 * with this node (a peer silent past the limit is refused, X7, and comes
 * back by a re-seed, reseed.h).  Compaction drops such sets and keeps:
 *
 *  - the last set of every stream (a seed's anchor: its header moves a
 *    seeded branch's position on the origin's signature);
 *  - every set holding a change of a system collection (a seed sends
 *    them: members, revocations, rule versions);
 *  - the sets of a quarantined or released stream (protocol.md 4.6 needs
 *    them);
 *  - for every set dropped, a stub: meta "cpt:" u32be stream | u64be
 *    first -> u64be last | header hash (32), so that another set at the
 *    same position is still a fork (A6), and per stream the highest seq
 *    dropped, "cpf:" u32be stream -> u64be seq, so that a peer needing a
 *    dropped set gets the re-seed answer (BS_ESTALE), never a gap;
 *  - the dropped changes folded into each record's base (movein.h, the
 *    snapshot base a rebuild starts from), so that a rebuild of a record
 *    (a rule version, a quarantine release) still starts from them.
 *
 * A set is judged by the time its origin sealed it (SetHeader
 * created_ms) against this node's clock.  Peers acknowledge by their
 * vectors as last received (peers.h); a peer silent past the retention
 * limit does not hold compaction back (it is stale: purge.h, and comes
 * back by a seed), except a branch's hub for the branch's own sets: those
 * its hub never received are what a re-seed writes again (reseed.h).
 */
#ifndef BS_COMPACT_H
#define BS_COMPACT_H

#include "core.h"
#include "crypto.h"
#include "store.h"

typedef struct bs_compact_stats {
    uint64_t sets, bytes;   /* dropped (a dry run: would be) */
    uint64_t held_by_peers; /* older than the limit, not acknowledged */
    uint64_t too_recent;    /* younger than the limit */
    uint64_t kept_needed;   /* a stream's last set, system changes, or a
                               quarantined stream */
} bs_compact_stats;

/* The log as it is: sets stored, bytes of its pages (LMDB statistics),
 * the seal time of the oldest set kept (0: none), sets dropped so far. */
typedef struct bs_logsize {
    uint64_t sets, bytes, oldest_ms, compacted;
} bs_logsize;

/*
 * Compact the log in write txn t at now_ms with limit retention_ms (0:
 * nothing is old enough); with dry set, count only (t may then be a read
 * transaction).  *st is filled.  BS_ENOMEM, BS_ESTORE (err names it).
 */
BS_MUST_CHECK bs_err bs_compact_log(bs_txn *t, uint64_t now_ms,
                                    uint64_t retention_ms, int dry,
                                    bs_compact_stats *st, bs_errbuf *err);

/* The same in a transaction of its own (a read one for dry), with c's
 * clock and retention limit. */
BS_MUST_CHECK bs_err bs_compact_run(const bs_core *c, int dry,
                                    bs_compact_stats *st, bs_errbuf *err);

/* Compact at most max sets, in a write transaction of its own: for the
 * daemon's timer, which so keeps each pause of its loop short and comes
 * back for the rest when st->sets reached max. */
BS_MUST_CHECK bs_err bs_compact_run_some(const bs_core *c, uint64_t max,
                                         bs_compact_stats *st, bs_errbuf *err);

/* The log's size, read in t (status).  BS_ESTORE. */
BS_MUST_CHECK bs_err bs_compact_logsize(bs_txn *t, bs_logsize *out);

/*
 * A6 after compaction: *fork = 1 when a set of stream `stream` (index)
 * spanning [first, last] with header hash `hash` sits where a dropped set
 * sat and is another one (another hash, or other bounds over the same
 * seqs).  BS_ESTORE.
 */
BS_MUST_CHECK bs_err bs_compact_fork(bs_txn *t, uint32_t stream, uint64_t first,
                                     const uint8_t *hash, int *fork);

/* A seed (A8s) moved stream `stream` (index) from seq `from` - 1 to past
 * `last` without the sets between: note the gap (meta "cpg:", the header
 * hash `hash` the next set's prev_hash names) and raise the stream's
 * floor, so that `verify` accepts the gap and a peer below it is told to
 * be seeded rather than sent a gap.  Unlike a compaction stub, it says
 * nothing of the sets inside the gap (A6 does not use it).  Write txn. */
BS_MUST_CHECK bs_err bs_compact_note_gap(bs_txn *t, uint32_t stream,
                                         uint64_t from, uint64_t last,
                                         const uint8_t *hash);

/* *found = 1 when the sets of stream `stream` (index) from seq `from` to
 * `last` were all dropped here, one after the other, or skipped by a
 * seed, with hash set to the header hash of the one ending at `last`
 * (what the next set's prev_hash names): a gap `verify` accepts.
 * BS_ESTORE. */
BS_MUST_CHECK bs_err bs_compact_ends_at(bs_txn *t, uint32_t stream,
                                        uint64_t from, uint64_t last,
                                        uint8_t hash[BS_HASH_LEN], int *found);

/* The highest seq of stream `stream` (index) dropped here (0: none): a
 * peer holding less lacks sets this node no longer has. */
BS_MUST_CHECK bs_err bs_compact_floor(bs_txn *t, uint32_t stream,
                                      uint64_t *seq);

#endif
