/*
 * records.h - reading and writing records: the core of `get`, `ls`, `put`,
 * `del` and of every later interface to the data.
 *
 * A record is (collection, id) -> fields (record.h).  Readers see only live
 * records: a deleted one is "not found" whatever its tombstone holds.  A
 * record that does not decode is corruption, never skipped: the readers
 * fail with BS_ESTORE and a message naming the record.
 *
 * Writes go through local.h, so each one gets the next seq of this node's
 * stream, a fresh HLC timestamp, a signed change set in the log, and its
 * record merged, all in one transaction (INV-6).
 */
#ifndef BS_RECORDS_H
#define BS_RECORDS_H

#include "core.h"
#include "record.h"

/*
 * Check a user collection name and a record ID as given by a user (the
 * CLI, the API).  BS_EINVAL with a message naming the rule.
 */
BS_MUST_CHECK bs_err bs_records_check_coll(const char *coll, bs_errbuf *err);
BS_MUST_CHECK bs_err bs_records_check_id(const char *id, bs_errbuf *err);

/*
 * The live record coll/id, decoded into *r with everything allocated from
 * a (valid until the arena is reset, and no longer than the transaction).
 * BS_ENOTFOUND when missing or deleted ("coll/id: not found" in err);
 * BS_ESTORE when the stored record does not decode.
 */
BS_MUST_CHECK bs_err bs_records_get(bs_txn *t, const char *coll, const char *id,
                                    bs_arena *a, bs_record *r, bs_errbuf *err);

/*
 * Iterating over the live records of one collection in ID order (bytes),
 * with optional paging: start strictly after ID `after` (NULL: from the
 * first), and only IDs starting with `prefix` (NULL: all).
 */
typedef struct bs_records_iter bs_records_iter;

/* *out set only on BS_OK; strings are copied.  Close before the txn ends. */
BS_MUST_CHECK bs_err bs_records_iter_open(bs_txn *t, const char *coll,
                                          const char *after, const char *prefix,
                                          bs_records_iter **out);
/*
 * The next live record: *id (not NUL-terminated, *idlen bytes) and *r are
 * valid until the next call.  BS_ENOTFOUND at the end; BS_ESTORE (err
 * names the record) when one does not decode.
 */
BS_MUST_CHECK bs_err bs_records_iter_next(bs_records_iter *it, const char **id,
                                          size_t *idlen, const bs_record **r,
                                          bs_errbuf *err);
void bs_records_iter_close(bs_records_iter *it);

/* One write of a batch. */
typedef struct bs_write {
    const char *coll; /* a user collection */
    const char *id;
    int deleted;      /* 1: delete (then fields are ignored) */
    bs_field *fields; /* sorted by name, unique, valid (json.h gives such);
                         their versions are set by the write */
    size_t nfields;
    unsigned flags; /* BS_WRITE_* */
} bs_write;

/* Write even when it gives a unique key (unique.h) a value another live
 * record holds: the duplicate is then a conflict to merge. */
#define BS_WRITE_FORCE 1u

typedef struct bs_write_stats {
    uint64_t written;   /* upserts that changed a record */
    uint64_t unchanged; /* upserts that changed nothing (skipped, P3) */
    uint64_t deleted;
} bs_write_stats;

/*
 * Apply w[0..n) in order in one write transaction, signed with c->sk:
 * all or nothing.  Names are checked first (BS_EINVAL); a delete of a
 * record that is not live is BS_ENOTFOUND ("coll/id: not found"); a
 * duplicate of a unique key BS_EEXIST unless the write is BS_WRITE_FORCE.
 * *st (may be NULL) is set on BS_OK.
 */
BS_MUST_CHECK bs_err bs_records_write(const bs_core *c, bs_write *w, size_t n,
                                      bs_write_stats *st, bs_errbuf *err);

#endif
