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
    const char *endpoint; /* bs_endpoint_dialable */
    uint8_t pk[BS_PK_LEN];
    const char *schedule; /* canonical spec */
    const char *window;   /* "" or canonical "HH:MM-HH:MM" */
} bs_pair;

/*
 * Pair with p.  BS_EINVAL for a bad name or endpoint or this node's own
 * key; BS_EEXIST when the name or the key is paired already.
 * *introduced (may be NULL) is set when this node, the hub, introduced it.
 */
BS_MUST_CHECK bs_err bs_pairing_add(const bs_core *c, const bs_pair *p,
                                    int *introduced, bs_errbuf *err);

/* Forget peer `name` (at the hub: revoke it).  BS_ENOTFOUND ("no peer
 * ..."); *revoked (may be NULL) set when its key was revoked. */
BS_MUST_CHECK bs_err bs_pairing_remove(const bs_core *c, const char *name,
                                       int *revoked, bs_errbuf *err);

/* Set peer `name`'s schedule and window (canonical).  BS_ENOTFOUND. */
BS_MUST_CHECK bs_err bs_pairing_schedule(const bs_core *c, const char *name,
                                         const char *schedule,
                                         const char *window, bs_errbuf *err);

#endif
