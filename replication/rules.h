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
 * A change of NAME stamped h is governed by the latest version stamped
 * before it (hlc < h); none: the defaults (all writers, shared, field-lww).
 */
#ifndef BS_RULES_H
#define BS_RULES_H

#include "collections.h"
#include "crypto.h"

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
 * The versions of `name` stamped after hlc, in order: call with *v = {hlc,
 * 0} first, then with what it returned, until BS_ENOTFOUND.
 */
BS_MUST_CHECK bs_err bs_rules_next(bs_txn *t, const char *name,
                                   bs_rule_version *v, bs_collection *r);

#endif
