/*
 * relay.h - a regional hub and the hub's record snapshots (docs/protocol.md
 * 7.3 "Through a regional hub", 8.9; docs/design.md "Regional hubs").
 *
 * Only the hub signs snapshots, and a branch behind a regional hub still
 * verifies the hub's signature on each: the regional hub only carries
 * them (protocol.md 7.3, "Through a regional hub").  It
 *  - asks the hub, in its own envelopes, for what its branches want
 *    (bs_relay_note, when it records a branch's envelope: unless
 *    the hub's answer it kept already covers that branch's vector);
 *  - keeps each snapshot and done marker the hub answers it with, byte
 *    for byte as signed (bs_relay_keep, from bs_movein_merge; meta "rsc:"
 *    and "rdn:",
 *    storage.md 3.1), a record's parts replacing those of an earlier
 *    answer;
 *  - answers its branches' wants from what it kept (bs_relay_serve, for
 *    bs_movein_next): the
 *    parts of each record in ID order that the branch is entitled to, as
 *    the regional hub holds the record and as each part says (a record
 *    it no longer holds is not sent), then the hub's done marker of that
 *    want if it kept one (else the branch asks again).  The branch's M1
 *    judges the marker's vector against its own positions, as for the
 *    hub's own answer;
 *  - seeds its branches (protocol.md 8.9; session.c) from the answers it
 *    kept of every collection, with a seed point no later than any of
 *    them (bs_relay_seed_point) and the end of the seed signed by itself
 *    (bs_relay_seed_marker): the branch trusts it for the seed's
 *    completeness, never for a record's content.
 *
 * The hub's snapshots are kept until a later answer replaces them; a
 * record purged here is not sent, and one the hub no longer answers
 * leaves with its collection's next answer.
 */
#ifndef BS_RELAY_H
#define BS_RELAY_H

#include "movein.h"
#include "snapshot.h"

/* Note the wants w[0..n) of branch pk, whose vector is ack[0..nack), as
 * this regional hub's own (write txn): those the hub's kept answer does
 * not cover yet.  When the branch is to be seeded (`seed`: its envelope
 * asks), a want of every collection
 * whose kept answer does not cover this node's vector.  A no-op on any
 * other node than a regional hub. */
BS_MUST_CHECK bs_err bs_relay_note(bs_txn *t, const uint8_t *pk,
                                   const bs_snapwant *w, size_t n,
                                   const bs_pos *ack, size_t nack, int seed);

/*
 * A regional hub seeds a branch from the hub's answers it kept
 * (protocol.md 8.9): the seed point is its own vector (quarantined
 * streams left out) lowered, stream by stream, to no later than every
 * kept answer of a whole collection (each `done` marker's `covered`), so
 * that the snapshots summarise every change up to the anchors.  *point
 * malloc'd; BS_ENOTFOUND when this node is not a regional hub, lacks the
 * answer of a collection it holds, or no longer holds the sets just above
 * the point (compacted): it cannot seed yet (bs_relay_note asks
 * the hub).  BS_ESTORE, BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_relay_seed_point(bs_txn *t, const bs_meta *m,
                                         bs_pos **point, size_t *n);
/* The end of a regional hub's seed (m; sk its secret key): a `done`
 * marker with `seed`, covering point[0..n), signed by the regional hub
 * (N9s): *out malloc'd.  BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_relay_seed_marker(const bs_meta *m, const uint8_t *sk,
                                          const bs_pos *point, size_t n,
                                          uint64_t now_ms, uint8_t **out,
                                          size_t *outn);

/* 1 when m is a regional hub (members.h bs_members_is_region, its own
 * record), read in t. */
int bs_relay_here(bs_txn *t, const bs_meta *m);
/* Keep admitted snapshot s (RecordSnapshot, not of a batch) byte for
 * byte as the hub signed it (write txn): a record's parts replace those of
 * an earlier answer; a done marker replaces its want's earlier one, and a
 * whole collection's drops the kept records the hub no longer answered.
 * BS_ENOMEM, BS_ESTORE. */
BS_MUST_CHECK bs_err bs_relay_keep(bs_txn *t, const bs_snap *s);
/* Queue on c the kept snapshots that answer want c->wants[c->at] next
 * (movein.h's cursor, for bs_movein_next): a record's parts in ID order,
 * or (*more 0) the want's kept done marker, if any. */
BS_MUST_CHECK bs_err bs_relay_serve(bs_txn *t, const bs_meta *m,
                                    bs_movein_cursor *c, int *more);

#endif
