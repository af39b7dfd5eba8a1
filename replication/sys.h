/*
 * sys.h - the system collections, written only by the hub and replicated
 * like data (S2): `_members` (who belongs to the infobase) and
 * `_collections` (per-collection conflict policy and, later, access rules).
 *
 *   _members/<node ID>       {"name": "...", "role": "hub"|"branch",
 *                             "revoked": false}
 *   _collections/<name>      {"policy": "field-lww"|"priority"|"manual"}
 */
#ifndef BS_SYS_H
#define BS_SYS_H

#include "meta.h"
#include "record.h"
#include "store.h"

#define BS_SYS_MEMBERS     "_members"
#define BS_SYS_COLLECTIONS "_collections"

typedef enum {
    BS_POLICY_LWW = 0,
    BS_POLICY_PRIORITY = 1,
    BS_POLICY_MANUAL = 2,
} bs_policy;

const char *bs_policy_name(bs_policy p);
BS_MUST_CHECK bs_err bs_policy_parse(const char *s, bs_policy *p);

/* The collection's policy (field-lww when none was declared). */
BS_MUST_CHECK bs_err bs_sys_policy(bs_txn *t, const char *coll, bs_policy *p);

typedef struct bs_member {
    char name[BS_NODE_NAME_MAX + 1];
    int role;
    int revoked;
} bs_member;

/*
 * Whether origin pk belongs to the infobase: the hub and this node always
 * do; others through a live, unrevoked `_members` record.  BS_ENOTFOUND if
 * not (or revoked: then m->revoked is set).
 */
BS_MUST_CHECK bs_err bs_sys_member(bs_txn *t, const bs_meta *self,
                                   const uint8_t pk[32], bs_member *m);

/* The node ID of a member whose name is `name`; BS_ENOTFOUND. */
BS_MUST_CHECK bs_err bs_sys_member_by_name(bs_txn *t, const char *name,
                                           uint8_t pk[32]);

#endif
