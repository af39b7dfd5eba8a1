/*
 * reseed.h - a branch back after the retention limit, seeded again by its
 * hub (issue 12 item 4; docs/design.md "Back after the retention limit").
 *
 * A branch silent for longer than the retention limit is refused both ways
 * (X7): its old writes could bring back records its hub deleted and purged
 * meanwhile.  The way back is a seed from the hub (movein.h, the seeding
 * rules A7s and A8s) which *replaces* the branch's user data instead of
 * merging into it, so that nothing the hub purged survives.  Every seed a
 * joined branch takes from its hub is such a re-seed (exchange.c
 * seed_again): the hub may judge the branch stale, and have purged
 * without it, while the branch heard from the hub lately.
 *
 *  - Begin (the first write transaction of the exchange that seeds the
 *    stale branch, before anything of it applies): the branch's own sets
 *    the hub does not hold (seq above the hub's position of its current
 *    stream, the seed point) leave the log for a stash (meta "rsd:"), so
 *    that they never travel; that stream is rewound to the hub's position
 *    and the branch writes on under a new incarnation (INV-1: those seqs
 *    are never reused); each live record the branch created while stale
 *    is noted ("rsb:": every version of a stashed set, no base, no set
 *    left in the log names it: the hub never knew it); every user record
 *    is dropped (without a change:
 *    nothing propagates), so the seed's snapshots rebuild exactly the
 *    hub's state within the branch's scope.
 *  - Finish (once the seed marker merged: the branch is no longer
 *    seeding): each stashed change is written again as an ordinary local
 *    write, under the new incarnation, for the records the seed brought
 *    live, field by field where the stashed edit is newer (by HLC) than
 *    what the seed holds; a stashed delete likewise.  Edits of records the
 *    seed did not bring (deleted or purged at the hub) are dropped and
 *    counted, but for a record noted as created here, whose changes are
 *    written again whole.  The stash and the notes go.
 *
 * Everything is a function of the store and the seed, in the caller's
 * write transaction.
 */
#ifndef BS_RESEED_H
#define BS_RESEED_H

#include "core.h"
#include "store.h"
#include "vv.h"

typedef struct bs_reseed_stats {
    uint64_t stashed;  /* own sets taken out of the log (begin) */
    uint64_t cleared;  /* user records dropped before the seed (begin) */
    uint64_t reissued; /* stashed changes written again (finish) */
    uint64_t dropped;  /* stashed changes of records the seed did not
                          bring live, or older than what it holds (finish) */
} bs_reseed_stats;

/*
 * Begin re-seeding this node (a joined branch) from its hub's seed point
 * point[0..n) (borrowed; the hub's vector), in write txn t, as above.  A
 * no-op when a re-seed is already under way (an interrupted seed that
 * resumes).  st may be NULL.  BS_ENOMEM, BS_ESTORE.
 */
BS_MUST_CHECK bs_err bs_reseed_begin(bs_txn *t, const bs_pos *point, size_t n,
                                     bs_reseed_stats *st, bs_errbuf *err);

/* *on = 1 while a re-seed is under way here (begun, not finished). */
BS_MUST_CHECK bs_err bs_reseed_pending(bs_txn *t, int *on);

/*
 * Finish a re-seed in write txn t as core c (its signing key, clock and
 * limits, for the local writes; c->store is not used): nothing unless one
 * is under way and the seed is complete (movein.h: not seeding).  st may
 * be NULL.  BS_ENOMEM, BS_ESTORE, or the local write's own errors (the
 * clock refused: local.h).
 */
BS_MUST_CHECK bs_err bs_reseed_finish(bs_txn *t, const bs_core *c,
                                      bs_reseed_stats *st, bs_errbuf *err);

#endif
