/*
 * setlog.h - the change-set log and the held table: the only module that
 * builds their keys.
 *
 * The log keeps every change set this node holds, exactly as its origin
 * signed it (INV-4), under the set's stream and first seq:
 *
 *   log key  = u32be stream | u64be first_seq       value = ChangeSet bytes
 *
 * A stream's sets in the log never overlap and, up to the stream's
 * position, leave no gap (INV-2).
 *
 * The held table keeps sets that are not (or not yet) part of the log:
 *
 *   held key = u8 kind | u32be stream | u64be first_seq
 *   value    = u32be reason | u64be since_ms | u8 n | note[n] | set bytes
 *
 * where kind is one of bs_held_kind.  Stream indexes are the node's own
 * (streams.h).  Every value returned here is borrowed from the transaction:
 * valid until it ends or the next write to the same table.
 */
#ifndef BS_SETLOG_H
#define BS_SETLOG_H

#include "store.h"

/* ---- the log ---- */

/* The set stored at exactly (stream, first); BS_ENOTFOUND. */
BS_MUST_CHECK bs_err bs_setlog_get(bs_txn *t, uint32_t stream, uint64_t first,
                                   bs_slice *set);

/*
 * The stored set of stream whose first seq is the greatest one <= seq:
 * the set holding seq if the stream holds it.  *first gets its first seq.
 * BS_ENOTFOUND when the stream has no set starting at or before seq.
 */
BS_MUST_CHECK bs_err bs_setlog_find(bs_txn *t, uint32_t stream, uint64_t seq,
                                    bs_slice *set, uint64_t *first);

/*
 * The first stored set of stream that holds a seq above `from`, among the
 * sets starting at or below `upto` (the stream's contiguous prefix, or
 * what may be sent of it).  *last gets its last seq.  BS_ENOTFOUND when
 * there is none.  This is how what a peer lacks is found, set by set.
 */
BS_MUST_CHECK bs_err bs_setlog_next(bs_txn *t, uint32_t stream, uint64_t from,
                                    uint64_t upto, bs_slice *set,
                                    uint64_t *last);

/*
 * The first stored set of stream at or after first seq `from` (key order),
 * whatever its contents; *first gets its first seq.  BS_ENOTFOUND.
 */
BS_MUST_CHECK bs_err bs_setlog_from(bs_txn *t, uint32_t stream, uint64_t from,
                                    bs_slice *set, uint64_t *first);

/* Store set at (stream, first); an entry already there is kept (write
 * txn). */
BS_MUST_CHECK bs_err bs_setlog_put(bs_txn *t, uint32_t stream, uint64_t first,
                                   bs_slice set);

/* Reserve n bytes at (stream, first), replacing any entry, and return where
 * to write the set (write txn; valid until the next write); once written,
 * bs_setlog_written. */
BS_MUST_CHECK bs_err bs_setlog_reserve(bs_txn *t, uint32_t stream,
                                       uint64_t first, size_t n, uint8_t **dst);
/* The set at (stream, first) was written into a reservation (write txn). */
BS_MUST_CHECK bs_err bs_setlog_written(bs_txn *t, uint32_t stream,
                                       uint64_t first, bs_slice set);

/*
 * Where a stored set keeps its summary (protocol.md 2.10), so that a hub
 * sending a branch the summary of a set it is entitled to none of does
 * not read the set's changes to find it (they come first; with a thousand
 * branches the hub read every branch's set once per branch per round).
 * Kept for a set with a header, a summary and nothing left out, in the
 * write that stores the set (the meta key `sla:`, storage.md §3.1); set
 * is the stored value.  *sum and *ssig (the summary and its signature)
 * point into set.  BS_ENOTFOUND when not kept (an older store, or a set
 * without a summary): read the set instead.
 */
BS_MUST_CHECK bs_err bs_setlog_summary(bs_txn *t, uint32_t stream,
                                       uint64_t first, bs_slice set,
                                       bs_slice *sum, bs_slice *ssig);

/* Delete the set at (stream, first) (write txn); BS_OK when there was
 * none.  Only a hub's release of a quarantine drops sets (quarantine.h). */
BS_MUST_CHECK bs_err bs_setlog_del(bs_txn *t, uint32_t stream, uint64_t first);

/* The number of sets in the log. */
BS_MUST_CHECK bs_err bs_setlog_count(bs_txn *t, uint64_t *n);

/* ---- the held table ---- */

typedef enum {
    BS_HELD_WAITING = 'H',  /* kept back for a reason; retried (4.5) */
    BS_HELD_EVIDENCE = 'E', /* the other copy of an equivocation (S6) */
    BS_HELD_REFUSED = 'R',  /* was waiting, then refused when retried */
} bs_held_kind;

#define BS_HELD_NOTE_MAX 127

typedef struct bs_held {
    bs_held_kind kind;
    uint32_t stream;
    uint64_t first;
    /* WAITING: a bs_hold_reason (admit.h); REFUSED: the bs_err */
    uint32_t reason;
    uint64_t since_ms;
    char note[BS_HELD_NOTE_MAX + 1]; /* why, for status and doctor */
    bs_slice set;                    /* borrowed */
} bs_held;

/* Store h, replacing an entry of the same key (write txn). */
BS_MUST_CHECK bs_err bs_held_put(bs_txn *t, const bs_held *h);

/* Delete the entry (write txn); BS_OK when there was none. */
BS_MUST_CHECK bs_err bs_held_del(bs_txn *t, bs_held_kind kind, uint32_t stream,
                                 uint64_t first);

/* The entry at exactly (kind, stream, first); BS_ENOTFOUND. */
BS_MUST_CHECK bs_err bs_held_get(bs_txn *t, bs_held_kind kind, uint32_t stream,
                                 uint64_t first, bs_held *out);

/*
 * The first entry of `kind` after (stream, first) in key order (so per
 * stream in seq order); start with (0, 0).  With `only_stream`, stop at the
 * end of that stream.  BS_ENOTFOUND at the end; BS_ESTORE for a damaged
 * entry.
 */
BS_MUST_CHECK bs_err bs_held_next(bs_txn *t, bs_held_kind kind, uint32_t stream,
                                  uint64_t first, int only_stream,
                                  bs_held *out);

/* How many entries of `kind` there are (of one stream, or all when
 * stream is 0), counting up to `limit` (0: no limit). */
BS_MUST_CHECK bs_err bs_held_count(bs_txn *t, bs_held_kind kind,
                                   uint32_t stream, uint64_t limit,
                                   uint64_t *n);

/* Encoded value of h (used by the store upgrade); *out malloc'd. */
BS_MUST_CHECK bs_err bs_held_encode(const bs_held *h, uint8_t **out, size_t *n);

#endif
