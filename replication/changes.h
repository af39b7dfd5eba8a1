/*
 * changes.h - the change index: every record write applied at this node,
 * local or replicated, numbered in apply order (the HTTP change feed,
 * docs/api.md; storage.md §3.9).
 *
 * Each entry is appended to BS_DB_CHANGES in the write transaction that
 * writes the record, so an entry is visible exactly when its record is.
 * Sequence numbers start at 1 and grow by one per entry; nothing deletes
 * entries (the index grows with the log, storage.md §3.9).
 *
 * An entry names the record (collection, id), whether the record is
 * deleted once the write applied, and the version that wrote it: the
 * change's stream (origin and incarnation, streams.h) and HLC.  A record
 * rewritten as a whole (a rebuild, a quarantine release) is noted with its
 * latest version; one removed outright with no version at all.
 *
 * Noting a write also keeps the unique-key index (unique.h) true: every
 * path that writes a record notes it here, so that is the one place.
 */
#ifndef BS_CHANGES_H
#define BS_CHANGES_H

#include "record.h"
#include "store.h"

#define BS_CHANGES_NO_STREAM 0xffffffffu /* the record was removed */

typedef struct bs_change_entry {
    uint64_t seq;
    const char *coll; /* borrowed from the transaction, not NUL-terminated */
    size_t colllen;
    const char *id; /* as coll */
    size_t idlen;
    int deleted;     /* the record is deleted (or gone) after this write */
    uint32_t stream; /* the writer's stream, or BS_CHANGES_NO_STREAM */
    uint64_t hlc;    /* the write's HLC (0 with BS_CHANGES_NO_STREAM) */
} bs_change_entry;

/* Note that a change with version v (stream, hlc) wrote coll/id, which is
 * deleted afterwards when `deleted` (write txn). */
BS_MUST_CHECK bs_err bs_changes_note(bs_txn *t, const char *coll,
                                     const char *id, int deleted,
                                     const bs_version *v);
/* Note that coll/id was rewritten as r (its latest version names the
 * writer), or removed (r NULL). */
BS_MUST_CHECK bs_err bs_changes_note_record(bs_txn *t, const char *coll,
                                            const char *id, const bs_record *r);

/* The last sequence number (0 when the index is empty). */
BS_MUST_CHECK bs_err bs_changes_last(bs_txn *t, uint64_t *seq);

/* Decode one stored entry; BS_ESTORE if it does not. */
BS_MUST_CHECK bs_err bs_changes_decode(bs_slice key, bs_slice val,
                                       bs_change_entry *out);

/*
 * Call fn for each entry with seq > since, in order, whose collection is
 * coll (every collection when coll is NULL), until it has been called
 * `limit` times (0: no limit) or it returns non-zero.  *last is the seq of
 * the last entry examined (matching or not; `since` when none was): a
 * reader resumes from it.  The entry is valid during the call only.
 */
typedef int (*bs_changes_fn)(const bs_change_entry *e, void *arg);
BS_MUST_CHECK bs_err bs_changes_scan(bs_txn *t, uint64_t since,
                                     const char *coll, uint64_t limit,
                                     bs_changes_fn fn, void *arg,
                                     uint64_t *last);

#endif
