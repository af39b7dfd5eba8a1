/*
 * rules.h - the versions of each collection's rules a node has applied,
 * and which version governs a change (docs/design.md, "Access and
 * filters").
 *
 * Every hub change to `_collections/NAME` is a version of NAME's rules,
 * stamped with the hub's HLC.  The hub's stream is applied in order, so
 * the `_collections` record right after a change is that version.  The
 * versions are kept in the metadata table under
 *
 *   "rule:" NAME \0 u64be hlc | u64be seq  ->  u8 policy | u8 writers |
 *                            u8 scope | u8 n | owner_field[n] | inc[16]
 *
 * inc is the incarnation of the hub stream whose change it was, so that a
 * set's signed `seen` vector tells whether its origin had seen a version.
 *
 * A change of NAME stamped h, in a set whose signed `seen` vector is S, is
 * governed by the later (in (hlc, seq) order) of
 *  - the latest version stamped before it (hlc < h), and
 *  - the latest version whose place in the hub's stream S covers (its
 *    origin had seen it);
 * none: the defaults (all writers, shared, field-lww).  So a change stamped
 * below a version its origin already held (a wrong clock, or back-dating)
 * is still judged by that version (protocol.md §7.1).
 */
#ifndef BS_RULES_H
#define BS_RULES_H

#include "collections.h"
#include "crypto.h"
#include "vv.h"

/* Where a governing version came from (for "the origin had seen it"). */
typedef struct bs_rule_version {
    uint64_t hlc, seq;       /* 0 0: no version, the defaults */
    uint8_t inc[BS_INC_LEN]; /* the hub stream's incarnation */
} bs_rule_version;

/* Keep r as NAME's rules, version *v of the hub's stream (write txn). */
BS_MUST_CHECK bs_err bs_rules_note(bs_txn *t, const char *name,
                                   const bs_rule_version *v,
                                   const bs_collection *r);

/* The rules governing a change of `name` stamped hlc into *r, and their
 * version into *v (may be NULL).  BS_ESTORE for an entry that does not
 * decode. */
BS_MUST_CHECK bs_err bs_rules_at(bs_txn *t, const char *name, uint64_t hlc,
                                 bs_collection *r, bs_rule_version *v);

/*
 * The version governing a change of `name` stamped hlc in a set whose
 * vector is seen[0..nseen) (hub: the hub's key) into *r, and its version
 * into *v (may be NULL): bs_rules_at, then bs_rules_seen.  BS_ESTORE as
 * bs_rules_at.
 */
BS_MUST_CHECK bs_err bs_rules_governing(bs_txn *t, const char *name,
                                        uint64_t hlc, const uint8_t *hub,
                                        const bs_pos *seen, size_t nseen,
                                        bs_collection *r, bs_rule_version *v);

/*
 * Given *r and *v, the version governing a change by its stamp (or the
 * defaults, v->seq 0), replace them with the latest stored version after
 * *v that seen[0..nseen) covers in the hub's stream, if there is one.
 * BS_ESTORE for an entry that does not decode.
 */
BS_MUST_CHECK bs_err bs_rules_seen(bs_txn *t, const char *name,
                                   const uint8_t *hub, const bs_pos *seen,
                                   size_t nseen, bs_collection *r,
                                   bs_rule_version *v);

/*
 * The versions of `name` stamped after hlc, in order: call with *v = {hlc,
 * 0} first, then with what it returned, until BS_ENOTFOUND.
 */
BS_MUST_CHECK bs_err bs_rules_next(bs_txn *t, const char *name,
                                   bs_rule_version *v, bs_collection *r);

#endif
