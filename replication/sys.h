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
    /* what the hub held of the member's streams when it revoked it:
     * "INCHEX:SEQ,INCHEX:SEQ..."; changes up to there stay valid */
    char revoked_at[1024];
} bs_member;

/* 1 when member m may have written the set (inc, ..last): it is not
 * revoked, or the set lies within what was held when it was revoked. */
int bs_member_allows(const bs_member *m, const uint8_t inc[BS_INC_LEN],
                     uint64_t last);

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
