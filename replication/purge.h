/*
 * purge.h - dropping tombstones (INV-7; docs/reliability.md P7).
 *
 * A deleted record keeps a tombstone so that an older write arriving later
 * cannot bring it back.  A tombstone is dropped only when both hold:
 *  - every paired peer has acknowledged the delete (its vector, as last
 *    received, covers the delete's stream position), except peers silent
 *    for longer than the retention limit, which are marked "needs full
 *    resync" and no longer hold purges back;
 *  - the delete is older than the retention limit (default 90 days), so a
 *    write concurrent with it has had that long to arrive through any path.
 */
#ifndef BS_PURGE_H
#define BS_PURGE_H

#include "core.h"
#include "peers.h"
#include "store.h"

typedef struct bs_purge_stats {
    uint64_t tombstones, purged, held_by_peers, too_recent;
} bs_purge_stats;

/*
 * A purged tombstone leaves its version behind (in meta, "pur:" record
 * key -> u64be hlc | stream key | u64be seq), so that a rebuild replaying
 * the log (rebuild.h) does not bring back a tombstone at or below it.
 */

/* Purge eligible tombstones in write txn t. */
BS_MUST_CHECK bs_err bs_purge_tombstones(bs_txn *t, uint64_t now_ms,
                                         uint64_t retention_ms,
                                         bs_purge_stats *st, bs_errbuf *err);

/* Purge eligible tombstones in a write transaction of its own, with c's
 * clock and retention limit. */
BS_MUST_CHECK bs_err bs_purge_run(const bs_core *c, bs_purge_stats *st,
                                  bs_errbuf *err);

/* The version of the last tombstone of coll/id purged here: *found 1
 * with *hlc, key (BS_STREAM_KEY_LEN bytes) and *seq set, or 0 when none.
 * BS_ESTORE for an entry that does not decode. */
BS_MUST_CHECK bs_err bs_purge_horizon(bs_txn *t, const char *coll,
                                      const char *id, int *found, uint64_t *hlc,
                                      uint8_t *key, uint64_t *seq);

/* 1 when every peer of peers[0..n) not silent past the retention limit
 * has acknowledged (stream key, seq): what purge and log compaction
 * (compact.h) wait for. */
int bs_purge_all_acked(const bs_peer *peers, size_t n, const uint8_t *key,
                       uint64_t seq, uint64_t now_ms, uint64_t retention_ms);

/* 1 when a peer last heard from at last_ok_ms (0: never) counts as gone. */
int bs_peer_stale(uint64_t last_ok_ms, uint64_t created_ms, uint64_t now_ms,
                  uint64_t retention_ms);

#endif
