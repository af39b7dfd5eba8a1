/*
 * apply.h - applying received change sets: admit, resolve, write, advance
 * the version vector, all in the caller's one write transaction (INV-6,
 * S3).
 *
 * What happens to a set is decided by admission (admit.h), the same for
 * every path; this module carries the decision out:
 *  - APPLY: each change is merged field by field (record.h) in record-key
 *    order, concurrent writes of one field are recorded as conflicts
 *    (conflict.h), the set's bytes go to the log at its position, the
 *    stream's position and chain head advance;
 *  - DUPLICATE, QUARANTINED: nothing (counted);
 *  - QUARANTINE: the stream is flagged and the other copy kept as evidence;
 *  - HOLD: the set is kept in the held table with its reason and retried
 *    by bs_apply_held.
 * A refused set changes nothing: the caller aborts the transaction.
 */
#ifndef BS_APPLY_H
#define BS_APPLY_H

#include "admit.h"
#include "hlc.h"
#include "rebuild.h"

typedef struct bs_apply {
    bs_txn *txn;
    bs_meta meta;
    bs_streamtab streams;
    bs_hlc hlc;
    bs_arena scratch;
    bs_admission ad;
    /* counters since begin */
    uint64_t sets, dup_sets, changes, conflicts, held, quarantined;
    /* sets refused when retried from the held table (bs_apply_held) */
    uint64_t refused;
    uint64_t hold_since; /* a retried set held again keeps its time */
    /* one-entry cache of a stored set's vector (conflict detection) */
    uint32_t cache_stream;
    uint64_t cache_first, cache_last;
    bs_pos *cache_seen;
    size_t cache_nseen;
    int has_open; /* some conflict is open: writes may settle it */
    /* the policy of the collection last written (bs_apply_rules: one
     * lookup per run of changes or record snapshots to one collection,
     * not per change; merging a `_collections` change empties it) */
    char policy_coll[BS_COLLECTION_MAX + 1];
    int policy;
    char owner_field[BS_FIELD_NAME_MAX + 1]; /* of policy_coll's rules */
    /* records rebuilt after rule changes (rebuild.h) */
    uint64_t rebuilt;
    /* records of the set being applied to rebuild once it is logged: an
     * owner change arrived below changes already judged ("coll\0id") */
    char **redo;
    size_t nredo;
    bs_rebuild_queue rules_due; /* collections whose rules changed */
    /* changes refused by rule (admit.h A11), and the first reason */
    uint64_t by_rule;
    char by_rule_why[BS_ERRMSG_LEN];
    /* streams a hub release moved back in this run (quarantine.h): their
     * later sets here are no-ops, they come again in order */
    uint32_t *released;
    size_t nreleased;
    uint64_t snapshots; /* record snapshots merged (move-in) */
    /* while one set merges: whether collection rej_coll has changes kept
     * as refused by rule (access.h), asked once per run of its changes
     * instead of once per new record ("": ask) */
    char rej_coll[BS_COLLECTION_MAX + 1];
    int rej_any;
    /* while one set merges on a branch: mine[i] (v->count entries in the
     * scratch arena) set when change i made its record new here, live,
     * its owner field mine_field naming this node (self), and no other
     * change of the set touched it, so that the move-out check after the
     * set (scope.h) need not read it again; mine_void when a release
     * rebuilt records meanwhile (no such hints then) */
    uint8_t *mine;
    char self[BS_NODE_NAME_MAX + 1];
    char mine_field[BS_FIELD_NAME_MAX + 1];
    int mine_void;
    /* whether collection nobase_coll has no base entry (movein.c): a
     * cache, emptied by every set applied */
    char nobase_coll[BS_COLLECTION_MAX + 1];
    int nobase, nobase_ok;
} bs_apply;

/* The policy and owner field ("" none; valid until the next call) of
 * collection coll now (collections.h bs_collections_get), read once for
 * a run of changes or record snapshots of coll (policy_coll above). */
BS_MUST_CHECK bs_err bs_apply_rules(bs_apply *ap, const char *coll,
                                    bs_policy *policy,
                                    const char **owner_field);

/* Start applying in write txn t; the clock is the local wall clock. */
BS_MUST_CHECK bs_err bs_apply_begin(bs_apply *ap, bs_txn *t, bs_clock clock,
                                    uint64_t max_skew_ms, bs_errbuf *err);
/* Admit and carry out one decoded set.  A refusal is returned (err names
 * it); the caller must then abort the transaction. */
BS_MUST_CHECK bs_err bs_apply_set(bs_apply *ap, const bs_csview *v,
                                  bs_errbuf *err);
/*
 * Retry the held sets, in key order (so per stream in seq order), passing
 * again while a pass makes progress (an introduction unblocks its
 * origin's sets).  A retried set refused for a reason other than a local
 * fault moves to the refused entries (setlog.h) and blocks nothing.
 */
BS_MUST_CHECK bs_err bs_apply_held(bs_apply *ap, bs_errbuf *err);
/*
 * Admit (admit.h bs_admit_snapshot) and merge (snapshot.h bs_movein_merge)
 * one decoded record snapshot carried by an exchange from `carrier`.  A
 * refusal is returned; the caller must then abort the transaction (a
 * session goes on, a file is refused whole by its dry pass first).
 * carrier NULL: admitted already, by a file's pass 1 over the same bytes
 * after the same sets (exchange.c): merged only.
 */
struct bs_snap;
BS_MUST_CHECK bs_err bs_apply_snapshot(bs_apply *ap, const struct bs_snap *s,
                                       const uint8_t *carrier, bs_errbuf *err);
/* Persist the clock. */
BS_MUST_CHECK bs_err bs_apply_finish(bs_apply *ap, bs_errbuf *err);
void bs_apply_fini(bs_apply *ap);

#endif
