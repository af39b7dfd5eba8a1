/*
 * apply.h - applying a remote change set: verify, authorize, resolve,
 * write, advance the version vector, all in the caller's one write
 * transaction (INV-6, S3).
 *
 * The rules, in the order they are checked (docs/protocol.md, "applying"):
 *  - the set belongs to this infobase (P15) and its origin is a member
 *    that has not been revoked (S1, S2);
 *  - the origin's signature verifies over the exact header bytes (S1, P14);
 *  - a set wholly at or below the stream's position is a replay: a no-op
 *    (INV-3, S5) unless its bytes differ from the ones held for that
 *    position, which quarantines the stream (S6);
 *  - a set starting past position + 1 would leave a gap: refused (INV-2);
 *  - the set's first link must match the hash of the set held before it;
 *  - a change stamped more than max_skew ahead of the local clock holds
 *    the whole set back (S10);
 *  - only the hub writes system collections ('_...');
 *  - each change is merged field by field (record.h); concurrent writes of
 *    one field are recorded as conflicts (conflict.h).
 */
#ifndef BS_APPLY_H
#define BS_APPLY_H

#include "changeset.h"
#include "hlc.h"
#include "meta.h"
#include "streams.h"

typedef struct bs_apply {
    bs_txn *txn;
    bs_meta meta;
    bs_streamtab streams;
    bs_hlc hlc;
    uint64_t max_skew_ms;
    bs_arena scratch;
    /* counters since begin */
    uint64_t sets, dup_sets, changes, conflicts, held, quarantined;
    /* one-entry cache of a stored set's vector (conflict detection) */
    uint32_t cache_stream;
    uint64_t cache_first, cache_last;
    bs_pos *cache_seen;
    size_t cache_nseen;
    int has_conflicts; /* the register is not empty: check supersedes */
    /* the policy of the collection last written (one lookup per run of
     * changes to one collection, not per change) */
    char policy_coll[BS_COLLECTION_MAX + 1];
    int policy;
} bs_apply;

BS_MUST_CHECK bs_err bs_apply_begin(bs_apply *ap, bs_txn *t, bs_clock clock,
                                    uint64_t max_skew_ms, bs_errbuf *err);
/* Apply one decoded set (see the rules above). */
BS_MUST_CHECK bs_err bs_apply_set(bs_apply *ap, const bs_csview *v,
                                  bs_errbuf *err);
/* Retry sets held for a clock ahead of ours. */
BS_MUST_CHECK bs_err bs_apply_held(bs_apply *ap, bs_errbuf *err);
/* Persist the stream table and the clock. */
BS_MUST_CHECK bs_err bs_apply_finish(bs_apply *ap, bs_errbuf *err);
void bs_apply_fini(bs_apply *ap);

/* 1 when the vector covers (key = origin || inc, seq). */
int bs_pos_covers(const bs_pos *v, size_t n, const uint8_t *key, uint64_t seq);

#endif
