/*
 * resolution.h - an administrator settles a conflict (`resolve`).
 *
 * The decision is an ordinary local write, so it replicates: taking a
 * candidate writes that candidate's value again (or the delete, or, for a
 * delete/update conflict kept as an update, the record's fields again);
 * giving a value writes it.  That write has seen both sides, so on every
 * node it wins and supersedes the conflict (conflict.h); here the conflict
 * is marked resolved in the same transaction.
 */
#ifndef BS_RESOLUTION_H
#define BS_RESOLUTION_H

#include "conflict.h"
#include "core.h"

typedef struct bs_resolve_req {
    const char *take;      /* keep this node's candidate: a node ID, this
                              node's name, a peer's or a member's name */
    const bs_value *value; /* or write this value */
} bs_resolve_req;

/*
 * Settle conflict cid as r says (exactly one of take and value).
 * BS_ENOTFOUND for an unknown conflict; BS_EINVAL when `take` names no
 * candidate, or a value is given for a delete/update conflict.  how (may
 * be NULL) gets the resolution text ("took riga", "set by admin").
 */
BS_MUST_CHECK bs_err bs_resolution_apply(const bs_core *c, const char *cid,
                                         const bs_resolve_req *r,
                                         char how[BS_CONFLICT_HOW_MAX + 1],
                                         bs_errbuf *err);

#endif
