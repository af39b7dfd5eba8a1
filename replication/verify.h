/*
 * verify.h - a check of the whole store, for `branchsync verify` and
 * before every `backup`.
 *
 * LMDB keeps its B-trees consistent across crashes, but it does not
 * checksum anything: a flipped bit in a key, a value or a page header is
 * read back as if it were data (docs/storage.md §8).  The walk here
 * reads every entry of every table and checks what the tables promise
 * about each other:
 *
 *  - every table: keys strictly increasing, as many entries as the table
 *    counts (a damaged branch page skips or repeats entries), and no read
 *    of a page LMDB finds damaged;
 *  - meta: complete and of this format (meta.h); the node's own stream is
 *    in the stream table; the counters of conflicts (conflict.h) and of the
 *    exchange log (xlog.h) agree with what those tables hold;
 *  - streams: the table decodes, indexes run 1..n, and its index table
 *    maps every stream key to its entry and nothing else;
 *  - log: per stream in seq order, every set decodes (shape and every
 *    change's hash, changeset.h), is signed by its origin, belongs to the
 *    infobase (once joined), links to the set before it, every present
 *    change decodes, and the sets run from seq 1 to the stream's position
 *    without a gap, the position's set being the stream's chain head;
 *  - held: every entry decodes, names a known stream, and holds a set of
 *    that stream, signed by its origin;
 *  - records: keys name a valid collection and ID, values decode, field
 *    names are valid and sorted, texts are UTF-8; every version (of a
 *    field, the last upsert, the last delete) names a stream and a seq the
 *    stream holds, no later than the node's clock; and where the log holds
 *    that change, it wrote this record at that time (a delete for the
 *    delete), and the fields that still carry its version are a subset of
 *    what it wrote, with the same values when they are all of them;
 *  - conflicts, peers, exchange log: every entry decodes; conflict sides
 *    name known streams; a peer is stored under its own name.
 *
 * The walk reads everything once; its memory is the stream table plus 12
 * bytes per change of the log (the record cross-check), capped at
 * BS_VERIFY_CHANGES_MAX changes: streams beyond the cap are checked
 * except for that cross-check (bs_verify_stats.unchecked_streams).
 */
#ifndef BS_VERIFY_H
#define BS_VERIFY_H

#include "store.h"

#define BS_VERIFY_CHANGES_MAX (16u << 20)

/* What the walk looked at. */
typedef struct bs_verify_stats {
    uint64_t meta, streams, sets, changes, held; /* entries walked */
    uint64_t records, live, versions;            /* versions checked */
    uint64_t crosschecked; /* versions compared with the log's change */
    uint64_t conflicts, peers, xlog;
    uint64_t unchecked_streams; /* past the cross-check's memory cap */
    uint64_t findings;
} bs_verify_stats;

/*
 * Called once per finding with one line ("record items/c7: field \"n\"
 * names seq 12 of stream 2, which holds up to 10").  Return nonzero to
 * stop the walk after it.
 */
typedef int (*bs_verify_fn)(void *ctx, const char *finding);

typedef struct bs_verify_opts {
    bs_verify_fn on_finding; /* may be NULL */
    void *ctx;
} bs_verify_opts;

/*
 * Walk the store in t (a read transaction; o may be NULL).  BS_OK when
 * nothing was found; BS_ESTORE when something was, with err set to "store
 * is corrupt: FIRST FINDING; restore from a backup" and every finding
 * passed to o->on_finding; a local fault (BS_ENOMEM) as such.  *st is
 * filled in every case.
 */
BS_MUST_CHECK bs_err bs_verify_store(bs_txn *t, const bs_verify_opts *o,
                                     bs_verify_stats *st, bs_errbuf *err);

#endif
