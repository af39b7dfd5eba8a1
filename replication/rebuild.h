/*
 * rebuild.h - judging a collection's changes again when a new version of
 * its rules arrives (docs/design.md, "Access and filters": rules that
 * change converge).
 *
 * A rule version stamped T governs the changes stamped after T.  A node
 * may have applied such changes before the version reached it, or refused
 * them under a version that the new one replaces.  So when a version is
 * noted, every record of the collection with a change stamped after T is
 * rebuilt from the log: its changes (every set in the log is applied) in
 * version order, each judged by the rules that govern it now (access.h),
 * the admitted ones merged from an empty record.  The merge does not
 * depend on order (INV-5), and the judgment of writers=owner follows the
 * owner as the admitted changes before it leave it, so every node ends
 * with the same records whatever the order in which changes and versions
 * arrived.  The record's owner history is rebuilt with it, and conflicts
 * naming a change no longer applied are dropped.
 *
 * Cost: one pass over the whole log (rule changes are rare,
 * administrative events), plus the changes of the records rebuilt.
 */
#ifndef BS_REBUILD_H
#define BS_REBUILD_H

#include "meta.h"
#include "store.h"

typedef struct bs_rebuild_stats {
    uint64_t records; /* records rebuilt */
    uint64_t refused; /* changes not applied after the rebuild */
} bs_rebuild_stats;

/* Rebuild the records of collection coll with changes stamped after hlc,
 * as node m (write txn). */
BS_MUST_CHECK bs_err bs_rebuild_after(bs_txn *t, const bs_meta *m,
                                      const char *coll, uint64_t hlc,
                                      bs_rebuild_stats *st);

/* Rebuild record coll/id alone: a change that set its owner arrived below
 * changes of it already judged (writers=owner; write txn). */
BS_MUST_CHECK bs_err bs_rebuild_record(bs_txn *t, const bs_meta *m,
                                       const char *coll, const char *id,
                                       bs_rebuild_stats *st);

#endif
