/*
 * conflict.h - the conflict register.
 *
 * A conflict is two concurrent writes (neither writer had seen the other)
 * of the same field, or a delete concurrent with an update (field
 * "(record)").  Resolution itself is deterministic (record.h); this register
 * remembers what was decided, for `conflicts`, `status` and `resolve`.  Its
 * ID is a hash of what conflicted, so every node that detects the same
 * conflict names it the same way and recording it twice is a no-op.  The
 * register is node-local: it is never replicated (resolution.h writes the
 * decision as an ordinary change, which is).
 *
 * Stored under collection \0 id \0 field \0 conflict ID (so the conflicts
 * of one field are found by prefix): one flags byte (bit 0: open), then a
 * ConflictEntry record (proto/storage.proto).  The numbers of open and of
 * all conflicts are kept in the node's metadata, in the same transactions.
 */
#ifndef BS_CONFLICT_H
#define BS_CONFLICT_H

#include "collections.h"
#include "record.h"
#include "store.h"
#include "vv.h"

#define BS_CONFLICT_RECORD  "(record)"
#define BS_CONFLICT_ID_LEN  16 /* hex characters */
#define BS_CONFLICT_HOW_MAX 159

/* One side of a conflict, as detected (borrowed pointers). */
typedef struct bs_cand {
    const uint8_t *key; /* the writer's stream: origin(32) || incarnation */
    uint64_t seq;       /* the write's position in that stream */
    uint64_t hlc;
    const bs_value *val; /* NULL: the record was deleted */
} bs_cand;

/*
 * Record a conflict between a and b where `winner` (0 or 1) was applied
 * (write txn).  Under `manual` it stays open until resolved.  The sides
 * are stored in the ID's order (origin key, then hlc), so every node
 * that detects the conflict records the same entry.
 */
BS_MUST_CHECK bs_err bs_conflict_add(bs_txn *t, const char *coll,
                                     const char *id, const char *field,
                                     bs_policy policy, const bs_cand *a,
                                     const bs_cand *b, int winner,
                                     uint64_t now_ms);

/* The numbers of open and of all conflicts (either may be NULL). */
BS_MUST_CHECK bs_err bs_conflict_count(bs_txn *t, uint64_t *open,
                                       uint64_t *all);

/* A conflict as stored; owns its text values (bs_conflict_fini). */
typedef struct bs_conflict_side {
    uint8_t key[BS_STREAM_KEY_LEN]; /* origin || incarnation */
    uint64_t seq, hlc;
    int deleted;
    bs_value val; /* BS_VNULL when deleted; text owned by the conflict */
} bs_conflict_side;

enum {
    BS_CONFLICT_FIELD = 0,     /* concurrent writes of one field */
    BS_CONFLICT_DUPLICATE = 1, /* two records with one unique key value */
};

typedef struct bs_conflict {
    int kind;                  /* BS_CONFLICT_FIELD or _DUPLICATE */
    char other[BS_ID_MAX + 1]; /* _DUPLICATE: the second record's ID */
    char id[BS_CONFLICT_ID_LEN + 1];
    char coll[BS_COLLECTION_MAX + 1];
    char rid[BS_ID_MAX + 1];
    char field[BS_FIELD_NAME_MAX + 1];
    bs_policy policy;
    bs_conflict_side side[2];
    int winner; /* index into side: the value applied */
    int resolved;
    char resolution[BS_CONFLICT_HOW_MAX + 1]; /* "" while open */
    uint64_t detected_ms;
} bs_conflict;

void bs_conflict_fini(bs_conflict *c);

/*
 * Walking the register in key order (collection, id, field), open
 * conflicts only unless `all`.  The conflict returned by next is valid
 * until the next call or close.
 */
typedef struct bs_conflict_iter bs_conflict_iter;
BS_MUST_CHECK bs_err bs_conflict_iter_open(bs_txn *t, int all,
                                           bs_conflict_iter **out);
/* BS_ENOTFOUND at the end; BS_ESTORE for an entry that does not decode. */
BS_MUST_CHECK bs_err bs_conflict_iter_next(bs_conflict_iter *it,
                                           const bs_conflict **c);
void bs_conflict_iter_close(bs_conflict_iter *it);

/* Conflict cid into *c (release with bs_conflict_fini); BS_ENOTFOUND. */
BS_MUST_CHECK bs_err bs_conflict_get(bs_txn *t, const char *cid,
                                     bs_conflict *c);

/* Mark conflict cid resolved, saying how (write txn); BS_ENOTFOUND. */
BS_MUST_CHECK bs_err bs_conflict_mark_resolved(bs_txn *t, const char *cid,
                                               const char *how);

/*
 * A write of coll/id/field whose writer had seen (vector seen) both sides
 * of an open conflict settles it: mark such conflicts resolved (write txn).
 * Costs nothing while no conflict is open.
 */
BS_MUST_CHECK bs_err bs_conflict_supersede(bs_txn *t, const char *coll,
                                           const char *id, const char *field,
                                           const bs_pos *seen, size_t nseen);

/*
 * Drop the conflicts of coll/id one of whose sides is a change that
 * `refused` (called with the side's stream key and seq) says is no longer
 * applied, and recount (write txn).  For records rebuilt after a rule
 * change (access.h).
 */
BS_MUST_CHECK bs_err bs_conflict_drop_if(
    bs_txn *t, const char *coll, const char *id,
    int (*refused)(void *ctx, const uint8_t *key, uint64_t seq), void *ctx);

/* ---- duplicates of a unique key (unique.h) ---- */

/*
 * Open (or open again) the duplicate conflict between records ida and idb
 * (different; in any order) of coll, whose key field holds a's value in
 * ida and b's in idb (write txn).  Its ID hashes coll, field and the two
 * IDs; it is stored under the lesser ID.  Field conflicts are never
 * superseded or dropped by the functions above when they are duplicates.
 */
BS_MUST_CHECK bs_err bs_conflict_dup_open(bs_txn *t, const char *coll,
                                          const char *field, const char *ida,
                                          const bs_cand *a, const char *idb,
                                          const bs_cand *b, uint64_t now_ms);
/* Mark the duplicate between ida and idb resolved, saying how, if it is
 * open (write txn). */
BS_MUST_CHECK bs_err bs_conflict_dup_settle(bs_txn *t, const char *coll,
                                            const char *field, const char *ida,
                                            const char *idb, const char *how);
/* Mark every open duplicate of coll resolved, saying how (write txn). */
BS_MUST_CHECK bs_err bs_conflict_dup_settle_all(bs_txn *t, const char *coll,
                                                const char *how);

/* ---- the store upgrade (format 2 -> 3) ---- */

/* Store c as it was recorded (write txn), keeping the counts. */
BS_MUST_CHECK bs_err bs_conflict_put(bs_txn *t, const bs_conflict *c);

/* Recount open and all conflicts from the register (write txn). */
BS_MUST_CHECK bs_err bs_conflict_recount(bs_txn *t);

#endif
