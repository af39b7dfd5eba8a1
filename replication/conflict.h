/*
 * conflict.h - the conflict register (BS_DB_CONFLICTS).
 *
 * A conflict is two concurrent writes (neither writer had seen the other)
 * of the same field, or a delete concurrent with an update (field
 * "(record)").  Resolution itself is deterministic (record.h); this register
 * only remembers what was decided, for `conflicts` and `status`.  Its ID
 * is a hash of what conflicted, so every node that detects the same
 * conflict names it the same way and recording it twice is a no-op.
 * Key: collection \0 id \0 field \0 conflict ID, so the conflicts of one
 * field are found by prefix.  Value: a JSON object (the `conflicts --json`
 * element, plus "_streams" for bs_conflict_supersede).
 */
#ifndef BS_CONFLICT_H
#define BS_CONFLICT_H

#include "crypto.h"
#include "record.h"
#include "store.h"
#include "sys.h"

#define BS_CONFLICT_RECORD "(record)"
#define BS_CONFLICT_ID_LEN 16 /* hex characters */

typedef struct bs_cand {
    const uint8_t *key; /* the writer's stream: origin(32) || incarnation */
    uint64_t seq;       /* the write's position in that stream */
    uint64_t hlc;
    const bs_value *val; /* NULL: the record was deleted */
} bs_cand;

/* Record a conflict between a and b where `winner` (0 or 1) was applied.
 * Under `manual` it stays open until resolved. */
BS_MUST_CHECK bs_err bs_conflict_add(bs_txn *t, const char *coll,
                                     const char *id, const char *field,
                                     bs_policy policy, const bs_cand *a,
                                     const bs_cand *b, int winner,
                                     uint64_t now_ms);

/* Count open and all conflicts. */
BS_MUST_CHECK bs_err bs_conflict_count(bs_txn *t, uint64_t *open,
                                       uint64_t *all);

/* Mark one resolved (write txn); BS_ENOTFOUND. */
BS_MUST_CHECK bs_err bs_conflict_mark_resolved(bs_txn *t, const char *cid,
                                               const char *how);

/* The stored JSON of conflict cid (malloc'd); BS_ENOTFOUND. */
BS_MUST_CHECK bs_err bs_conflict_get(bs_txn *t, const char *cid, char **json);

/*
 * A write of coll/id/field whose writer had seen (vector `seen`) both sides
 * of an open conflict settles it: mark such conflicts resolved.
 */
BS_MUST_CHECK bs_err bs_conflict_supersede(bs_txn *t, const char *coll,
                                           const char *id, const char *field,
                                           const void *seen, size_t nseen);

#endif
