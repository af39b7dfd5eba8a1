/*
 * scope.h - who is entitled to which change (docs/design.md, "Access and
 * filters"; docs/protocol.md 2.5, A7o, 8.5).
 *
 * Every change set sealed by this version signs, next to each change's
 * hash, its route: the change's collection and the owner of its record
 * after it and just before it (SetHeader field 13).  On the routes:
 *
 *  - the hub is entitled to every change, and so is a regional hub (a
 *    member whose `_members` role is "region", members.h), which relays
 *    every scope of its branches;
 *  - a branch is entitled to every change whose collection is not
 *    owner-scoped (`--scope owner`) by the rules it holds now, and to the
 *    changes of owner-scoped collections whose route names it (its member
 *    name in `_members`) as the owner after or before: the old owner
 *    receives the change that moves its record away, and drops the record
 *    (move-out, below);
 *  - a set without routes (a version-1 origin) cannot be filtered: it is
 *    sent whole, and an omission in it is never accepted.
 *
 * A sender leaves out of a set what its receiver is not entitled to
 * (bs_scope_filter); a receiver refuses a set that leaves out a change it
 * is entitled to (admission rule A7o), so a relay can filter but cannot
 * censor.
 */
#ifndef BS_SCOPE_H
#define BS_SCOPE_H

#include "changeset.h"
#include "collections.h"
#include "digest.h"
#include "meta.h"
#include "rebuild.h"
#include "rules.h"
#include "streams.h"

/* One version of a collection's rules (rules.h). */
typedef struct bs_scope_version {
    bs_collection rules;
    bs_rule_version ver;
} bs_scope_version;

/*
 * A receiver, as the node judging for it knows it.  Caller-owned; see
 * bs_scope_peer_init.
 *
 * The receiver judges an omission by the rules it holds when it admits
 * the set (A7o): the versions of the hub's stream it holds by then.  So a
 * sender judges by the rule versions the receiver's vector covers (its
 * acknowledgement, or its hello), advanced by the hub sets sent to it in
 * this exchange (bs_scope_peer_saw): the hub's streams go first, so a set
 * is judged by the rules of the hub sets before it, as the receiver
 * will judge it.  Only the hub filters: the rules come from it, so it
 * knows every version its receiver may hold; a branch may not (the
 * receiver may have newer rules from the hub than the branch's view of
 * it says), so it relays only sets that need no filtering, whole.  A
 * regional hub filters as the hub does: its branches get the hub's sets
 * through it, and `behind` covers one that got them otherwise.
 */
typedef struct bs_scope_peer {
    int hub; /* the infobase's hub, or a regional hub: everything */
    char name[BS_NODE_NAME_MAX + 1]; /* its member name; "" none */
    int any_scoped;       /* some collection is owner-scoped by `rules` */
    bs_collection *rules; /* the rules it holds, one per declared
                             collection (malloc'd) */
    size_t nrules;
    bs_scope_version *vers; /* every rule version this node holds */
    size_t nvers;
    bs_pos *hubpos; /* the receiver's positions of the hub's streams;
                       NULL: it holds every version (the latest rules) */
    size_t nhubpos;
    int behind;     /* the receiver holds hub sets this node lacks: it may hold
                       rules this node does not know, so nothing is filtered
                       for it (a set that would be is not sent) */
    int whole_only; /* this node is neither the hub nor a regional hub: it
                       relays sets only whole (it cannot know every rule its
                       receiver holds) */
    int summaries;  /* it takes set summaries (BS_FEATURE_SUMMARIES,
                       protocol.md 2.10); 0 after init: the caller sets it
                       from the features its envelope announced */
} bs_scope_peer;

/*
 * The receiver pk as node m knows it in t: its role, its member name, and
 * the rules it holds by its vector theirs[0..n) (only the hub's entries
 * count; none: it holds no rules yet), against this node's own positions
 * `own` (for `behind`); own NULL: the latest rules this node holds
 * (bs_scope_digest).  BS_ENOMEM, BS_ESTORE.
 */
BS_MUST_CHECK bs_err bs_scope_peer_init(bs_scope_peer *p, bs_txn *t,
                                        const bs_meta *m, const uint8_t *pk,
                                        const bs_pos *theirs, size_t n,
                                        const bs_streamtab *own);
/* The receiver will hold the hub's stream inc up to seq (a hub set sent to
 * it): judge what follows by the rules that brings.  BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_scope_peer_saw(bs_scope_peer *p, const uint8_t *inc,
                                       uint64_t seq);
void bs_scope_peer_fini(bs_scope_peer *p);

/* 1 when a receiver that is the hub (hub) or the branch named name is
 * entitled to a change routed (coll, owner, owner_before), coll's rules
 * being r; owner_before NULL or "": none (a record is judged by owner). */
int bs_scope_entitled(int hub, const char *name, const bs_collection *r,
                      const char *coll, const char *owner,
                      const char *owner_before);

/* The outcome of preparing a stored set for a receiver. */
typedef enum {
    BS_SCOPE_WHOLE,    /* send it as stored */
    BS_SCOPE_FILTERED, /* send *out instead: changes left out */
    BS_SCOPE_STOP,     /* it leaves out a change the receiver is entitled
                          to: send neither it nor its stream's later sets */
} bs_scope_verdict;

/*
 * Prepare stored set `set` of stream index `stream` (0: not known) for
 * receiver p, judged by the rules now in t:
 * *out (malloc'd, *n bytes) is the set with every change p is not entitled
 * to left out (canonically encoded, the origin's header and signature
 * unchanged; or in summary form, protocol.md 2.10, when p->summaries) when
 * *v is BS_SCOPE_FILTERED.  With BS_SCOPE_WHOLE, *out is the set without
 * its summary for a receiver that does not take summaries, or NULL: send
 * it as stored.  BS_ESTORE when the stored set does not decode;
 * BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_scope_filter(bs_scope_peer *p, bs_txn *t,
                                     uint32_t stream, bs_slice set,
                                     bs_scope_verdict *v, uint8_t **out,
                                     size_t *n);

/*
 * The digest (digest.h) of the live records node m holds that receiver pk
 * is entitled to, judged by the rules now: on the hub for a branch's key,
 * it equals that branch's own digest of the same scope once they have
 * converged ("convergence per scope").  Records are judged by the owner
 * field they hold.
 */
BS_MUST_CHECK bs_err bs_scope_digest(bs_txn *t, const bs_meta *m,
                                     const uint8_t *pk,
                                     uint8_t out[BS_HASH_LEN],
                                     uint64_t *nrecords, bs_errbuf *err);

/*
 * A hub change c of `_members/<ID>`, merged into record r, is being
 * applied at node m (write txn).  When it is this node's own record and
 * makes it a regional hub (role "region", not revoked), queue on q a
 * rebuild of every declared collection from the log (rebuild.h): the
 * hub's stream may have brought owner-scoped records before this record,
 * which the node dropped as a branch (move-out) and now keeps.  A rare,
 * administrative event: one pass over the log per collection.
 * BS_ENOMEM, BS_ESTORE.
 */
BS_MUST_CHECK bs_err bs_scope_note_member(bs_txn *t, const bs_meta *m,
                                          const bs_change *c,
                                          const bs_record *r,
                                          bs_rebuild_queue *q);

/* ---- move-out (docs/protocol.md 7.2) ---- */

/*
 * A branch holds only the records in its scope: in a collection
 * owner-scoped by the rules it holds now (the latest version), only those
 * whose owner field, as the record holds it, names it (deleted records'
 * tombstones stay: they hold no data, and keep an older change from
 * bringing the record back).  A record that
 * leaves its scope is dropped: deleted from BS_DB_RECORDS without a
 * tombstone and without a change (nothing propagates); its owner history
 * and refused changes (access.h) and its conflicts are forgotten; its
 * changes stay in the log.  The hub, and a regional hub, keep everything.  Both
 * calls below are functions of the store (deterministic) and idempotent;
 * *dropped (may be NULL) counts the records dropped.  BS_ENOMEM, BS_ESTORE.
 *
 * bs_scope_drop_foreign: on node m, drop the records of coll (id NULL) or
 * record coll/id that are outside m's scope (write txn): after a rule
 * version of coll (the scope becomes owner, or the owner field changes)
 * and after a rebuild, which merges records from the log.
 *
 * bs_scope_move_out: after node m applied set v (its changes ch; skip[i]
 * set for a change refused by rule, skip may be NULL; only the changes of
 * seq above `after` were applied now), drop each record an applied change
 * touched that is outside m's scope: the change that moves a record away
 * from this branch (its route names it as the owner before, 2.5), which
 * the hub sends it for this, or a change of another office's record that
 * a branch relayed whole.  Call once the set is logged and its rebuilds
 * have run (write txn).  mine (may be NULL) spares the look-ups the caller
 * can vouch for: mine[i] set says change i's record is live here with
 * owner field mine_field naming mine_name; it is used only while those are
 * this node's name and the field of the collection's latest rules.
 */
BS_MUST_CHECK bs_err bs_scope_drop_foreign(bs_txn *t, const bs_meta *m,
                                           const char *coll, const char *id,
                                           uint64_t *dropped);
/* Drop record coll/id as move-out does (no tombstone, no change; its
 * owner history, base and conflicts forgotten); a re-seed drops every
 * user record this way (reseed.h).  Write txn. */
BS_MUST_CHECK bs_err bs_scope_drop_record(bs_txn *t, const char *coll,
                                          const char *id);
BS_MUST_CHECK bs_err bs_scope_move_out(
    bs_txn *t, const bs_meta *m, const bs_csview *v, const bs_change *ch,
    const uint8_t *skip, uint64_t after, const uint8_t *mine,
    const char *mine_name, const char *mine_field, uint64_t *dropped);

#endif
