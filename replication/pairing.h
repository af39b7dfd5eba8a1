/*
 * pairing.h - pairing with other nodes: the peer table entry and, at the
 * hub, the membership change that goes with it, in one transaction.
 *
 * At the hub, pairing introduces the node to every office as a member of
 * the infobase (members.h), and unpairing revokes its key for new changes
 * while what it wrote before stays valid.  A branch only records the peer.
 * Schedules are opaque strings here: the caller checks them and gives
 * their canonical form (node/schedule.h).
 */
#ifndef BS_PAIRING_H
#define BS_PAIRING_H

#include "core.h"
#include "peers.h"

typedef struct bs_pair {
    const char *name;     /* a valid node name (bs_node_name_valid) */
    const char *endpoint; /* bs_endpoint_dialable or _folder */
    uint8_t pk[BS_PK_LEN];
    const char *schedule; /* canonical spec */
    const char *window;   /* "" or canonical "HH:MM-HH:MM" */
    int hub;              /* `peer add --hub`: the hub this branch joins */
    int region; /* `peer add --region` (the hub): introduce the node as a
                   regional hub (members.h) */
} bs_pair;

/*
 * Pair with p.  BS_EINVAL for a bad name or endpoint or this node's own
 * key; BS_EEXIST when the name or the key is paired already.
 * *introduced (may be NULL) is set when this node, the hub, introduced it.
 *
 * The pinned hub (peers.h, docs/protocol.md 8.3 X4), at most one peer:
 * - on a branch that has not joined, p->hub pins p, taking the pin from a
 *   peer pinned without --hub; BS_EEXIST, naming it, when another peer was
 *   named with --hub already.  Without p->hub, p is pinned only when it is
 *   the first peer (the table is empty): a later pairing never moves the
 *   pin, and once the pinned peer is removed while others stay, no peer is
 *   pinned (nothing can join) until one is named with --hub;
 * - on a branch that has joined, the peer with the joined hub's key is
 *   pinned; p->hub naming another key is BS_EINVAL;
 * - on the hub, which joins nobody, p->hub is BS_EINVAL.
 *
 * p->region is for the hub only (elsewhere BS_EINVAL): the node is
 * introduced with role "region" (members.h).
 */
BS_MUST_CHECK bs_err bs_pairing_add(const bs_core *c, const bs_pair *p,
                                    int *introduced, bs_errbuf *err);

/* Forget peer `name` (at the hub: revoke it).  BS_ENOTFOUND ("no peer
 * ..."); *revoked (may be NULL) set when its key was revoked. */
BS_MUST_CHECK bs_err bs_pairing_remove(const bs_core *c, const char *name,
                                       int *revoked, bs_errbuf *err);

/*
 * At the hub: introduce the node pk as a member named `name` without
 * pairing with it, relayed by the regional hub `via` (a live member with
 * role "region"): `member add NAME ID --via REGION` (docs/design.md,
 * "Regional hubs").  BS_EINVAL for a bad name, this node's own key, or a
 * `via` that is not a regional hub; BS_EEXIST when the name or key is a
 * member or a peer already; BS_EPERM on a branch.
 */
BS_MUST_CHECK bs_err bs_pairing_member_add(const bs_core *c, const char *name,
                                           const uint8_t pk[BS_PK_LEN],
                                           const char *via, bs_errbuf *err);

/* At the hub: revoke member `name` that is not a paired peer (`member rm`;
 * a peer is revoked by bs_pairing_remove).  BS_ENOTFOUND, BS_EINVAL for a
 * paired peer, BS_EPERM on a branch. */
BS_MUST_CHECK bs_err bs_pairing_member_rm(const bs_core *c, const char *name,
                                          bs_errbuf *err);

/* Set peer `name`'s schedule and window (canonical).  BS_ENOTFOUND. */
BS_MUST_CHECK bs_err bs_pairing_schedule(const bs_core *c, const char *name,
                                         const char *schedule,
                                         const char *window, bs_errbuf *err);

#endif
