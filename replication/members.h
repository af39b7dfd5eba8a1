/*
 * members.h - who belongs to the infobase: the system collection
 * `_members`, written only by the hub and replicated like data (S2).
 *
 *   _members/<node ID>   {"name": "...", "role": "hub"|"branch"|"region",
 *                         "region": "...", "revoked": false,
 *                         "revoked_at": "..."}
 *
 * The hub introduces every node it pairs with and revokes a node it
 * unpairs.  A revocation keeps valid what the hub held of that node's
 * streams at the time ("revoked_at": "INCHEX:SEQ,INCHEX:SEQ..."), so the
 * node's earlier changes still travel and verify everywhere, and nothing
 * it signs later does (docs/security.md, "membership and revocation").
 * The hub itself, and this node, are members by definition.
 *
 * Regional hubs (docs/design.md, "Regional hubs"): the hub declares a
 * member a *regional hub* with role "region".  A regional hub is entitled
 * to every change (nothing is filtered for it), keeps every record, and
 * filters for its own branches as the hub does (scope.h).  A branch that
 * exchanges only with a regional hub is introduced by the hub without
 * pairing (`member add NAME ID --via REGION`), with "region" naming the
 * regional hub that relays it; that field is informative (status shows
 * the tree with it): what a node may do follows from its role alone.
 */
#ifndef BS_MEMBERS_H
#define BS_MEMBERS_H

#include "changeset.h"
#include "local.h"
#include "meta.h"

#define BS_SYS_MEMBERS    "_members"
#define BS_REVOKED_AT_MAX 1023

/* `role` of a member that is a regional hub (members.h, above); not a
 * bs_role: the node itself is a branch (it joined the hub's infobase). */
#define BS_MEMBER_REGION 2

typedef struct bs_member {
    uint8_t pk[BS_PK_LEN];
    char name[BS_NODE_NAME_MAX + 1];
    int role;                          /* bs_role, or BS_MEMBER_REGION */
    char region[BS_NODE_NAME_MAX + 1]; /* the regional hub relaying it;
                                          "" none */
    int revoked;
    /* what the hub held of the member's streams when it revoked it */
    char revoked_at[BS_REVOKED_AT_MAX + 1];
} bs_member;

/*
 * Whether origin pk belongs to the infobase: the hub and this node always
 * do; others through a live, unrevoked `_members` record.  *m is filled
 * either way; BS_ENOTFOUND if pk is not a member (m->revoked says whether
 * it was one), BS_ESTORE if the record does not decode.
 */
BS_MUST_CHECK bs_err bs_members_get(bs_txn *t, const bs_meta *self,
                                    const uint8_t pk[BS_PK_LEN], bs_member *m);

/*
 * 1 when the revoked member m may still have written a set of its
 * incarnation inc ending at seq last: the set lies within what the hub
 * held when it revoked m.  0 for a member that was never revoked (the
 * question does not arise) and for a stranger.
 */
int bs_member_allows(const bs_member *m, const uint8_t inc[BS_INC_LEN],
                     uint64_t last);

/*
 * 1 when pk is a live, unrevoked member the hub declared a regional hub
 * (role "region"), as this node's store says now; this node's own record
 * counts too (a regional hub learns its role from the hub's record).
 */
int bs_members_is_region(bs_txn *t, const bs_meta *self,
                         const uint8_t pk[BS_PK_LEN]);

/* The public key of the member named `name`: the live one when a revoked
 * member had the name before (member add lets a name be used again);
 * BS_ENOTFOUND. */
BS_MUST_CHECK bs_err bs_members_by_name(bs_txn *t, const char *name,
                                        uint8_t pk[BS_PK_LEN]);

/* Every `_members` record, revoked ones included, in ID order; *v
 * malloc'd. */
BS_MUST_CHECK bs_err bs_members_list(bs_txn *t, bs_member **v, size_t *n);

/*
 * Inside a local write (local.h), at the hub: introduce pk as a member
 * named `name` with `role` (bs_role or BS_MEMBER_REGION), relayed by the
 * regional hub named `region` (NULL or "": none; the field is then left
 * as it was), or revoke it, keeping valid what this node holds of its
 * streams.  BS_EPERM when this node is not the hub.
 */
BS_MUST_CHECK bs_err bs_members_introduce(bs_local *l,
                                          const uint8_t pk[BS_PK_LEN],
                                          const char *name, int role,
                                          const char *region, bs_errbuf *err);
BS_MUST_CHECK bs_err bs_members_revoke(bs_local *l, const uint8_t pk[BS_PK_LEN],
                                       bs_errbuf *err);

/*
 * What a hub change c of `_members/<ID>` says about that member, merged
 * into m as the record merge would for a later write (an upsert updates
 * the fields it carries; a delete revokes).  Used to judge sets whose
 * origin a hub set introduces before it is applied (admit.h).  *pk gets
 * the ID's key; BS_EINVAL if c's ID is not a node ID (then nothing is
 * learnt).
 */
BS_MUST_CHECK bs_err bs_members_learn(bs_member *m, const bs_change *c,
                                      uint8_t pk[BS_PK_LEN]);

#endif
