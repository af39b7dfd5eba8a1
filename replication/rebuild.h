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
 * version order, each judged by the rules that govern it now (access.h;
 * the version is found from its stamp and its set's `seen` vector as on
 * arrival, rules.h), the admitted ones merged from an empty record.  Each
 * admitted change records the conflicts apply.c would record with the
 * record its admitted predecessors make (conflict.h: twice is a no-op)
 * and settles open ones it saw both sides of; a change refused now and
 * admitted until now is counted as refused by rule for its origin; a
 * record that comes out as only a tombstone at or below the one purged
 * here stays purged (purge.h).  The merge does not
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
#include "rules.h"
#include "store.h"

typedef struct bs_rebuild_stats {
    uint64_t records; /* records rebuilt */
    uint64_t refused; /* changes not applied after the rebuild */
} bs_rebuild_stats;

/* Collections to rebuild once the changes being applied are logged: a
 * rebuild reads the log, so it runs after the set that brought the rule
 * version is in it. */
typedef struct bs_rebuild_queue {
    struct bs_rebuild_due {
        char coll[BS_COLLECTION_MAX + 1];
        uint64_t from; /* records with changes stamped after it */
    } * v;
    size_t n;
} bs_rebuild_queue;

/* Keep *r as version *v of collection coll's rules (a hub change to
 * `_collections/coll`; write txn) and queue on q the records it may judge
 * otherwise: those with changes stamped after it, or every record when it
 * names the owner in another field than the latest rules did (the owner
 * history is kept for the latest field). */
BS_MUST_CHECK bs_err bs_rebuild_note_rules(bs_txn *t, const char *coll,
                                           const bs_rule_version *v,
                                           const bs_collection *r,
                                           bs_rebuild_queue *q);

/* Rebuild what q holds as node m (write txn) and empty it; st counts. */
BS_MUST_CHECK bs_err bs_rebuild_queue_run(bs_txn *t, const bs_meta *m,
                                          bs_rebuild_queue *q,
                                          bs_rebuild_stats *st);

void bs_rebuild_queue_fini(bs_rebuild_queue *q);

/* Rebuild record coll/id alone: a change that set its owner arrived below
 * changes of it already judged (writers=owner; write txn). */
BS_MUST_CHECK bs_err bs_rebuild_record(bs_txn *t, const bs_meta *m,
                                       const char *coll, const char *id,
                                       bs_rebuild_stats *st);

#endif
