/*
 * movein.h - moving a record into a branch's scope: how a record that
 * enters a branch's scope reaches it whole (move-in; docs/protocol.md 2.9
 * and 7.3, docs/design.md "Moving a record").
 *
 * A branch's stream positions are past the changes it was not entitled
 * to, so a record that enters its scope (its owner becomes the branch; its
 * collection's scope widens; ...) cannot come back as changes.  Instead
 * the branch *wants* it, and the hub answers with a snapshot:
 *
 *  - wanting (the branch): when a change it applies moves a record to it
 *    from another office (the signed route names it as the owner after
 *    and another office before), and
 *    when a rule version it applies widens a collection's scope (owner to
 *    shared, or another owner field), the branch notes a want ("wnt:" in
 *    the metadata, in the applying transaction).  Its envelopes to the hub
 *    carry its wants (Envelope.wants) until they are met;
 *  - serving (the hub): for each want of the peer (from its hello in a
 *    session, else from its last recorded envelope for a file), a record
 *    in the peer's scope is sent as one or more snapshots, and a
 *    collection as every record of it, live or not, in the peer's scope
 *    or holding no field (a tombstone: no data; so that the branch holds
 *    the deletes it passed over while the records were outside); each
 *    answer ends with a `done` marker carrying the hub's vector when the
 *    answer began.  Only to a peer whose envelope announced
 *    BS_FEATURE_SNAPSHOTS;
 *  - receiving (the branch; admit.h bs_admit_snapshot, then
 *    bs_movein_merge): the hub's
 *    signature, the exchange's sender is the hub, the record is in this
 *    branch's scope by the rules it holds; then the snapshot is merged
 *    field by field with the ordinary merge (record.h), so a snapshot and
 *    the changes it summarises give the same record (INV-5).  The want is
 *    met at the `done` marker when the hub's vector then covers every
 *    stream this branch holds but its own: else a change the branch
 *    passed over (outside its scope then) may not have reached the hub
 *    yet, and it asks again.  What was merged is kept as the record's
 *    base ("snp:"), from
 *    which a rebuild (rebuild.h) starts instead of an empty record, since
 *    the log does not hold the changes it summarises.
 *
 * The snapshot stream is a function of the hub's records in key order,
 * which is what a later bootstrap of a new branch (issue 12) reuses: a
 * want of every collection, served by the same cursor (bs_movein_next),
 * resumable after the last key sent.
 */
#ifndef BS_MOVEIN_H
#define BS_MOVEIN_H

#include "apply.h"
#include "meta.h"
#include "snapshot.h"
#include "streams.h"

/* A record whose fields pass this many bytes goes as several snapshots
 * (each a part of its fields: merging them all is merging one). */
#define BS_MOVEIN_SPLIT_BYTES (BS_SET_MAX_BYTES - BS_CHANGE_MAX_BYTES)

/* ---- the hub's side: serving wants ---- */

/*
 * The snapshots for receiver `peer`'s wants, one at a time, in want order
 * and, within a collection, in key order; borrowed wants live as long as
 * the cursor.  Caller-owned; bs_movein_cursor_init, then bs_movein_next until
 * BS_ENOTFOUND, then bs_movein_cursor_fini.
 */
typedef struct bs_movein_cursor {
    const bs_snapwant *wants;
    size_t nwants, at;
    int started;               /* inside wants[at] */
    char after[BS_ID_MAX + 1]; /* the last id served of wants[at] */
    bs_pos *covered;           /* the hub's vector when wants[at] began */
    size_t ncovered;
    uint8_t peer[BS_PK_LEN];
    uint8_t **parts; /* the rest of a split record (malloc'd) */
    size_t *lens, nparts, part;
    uint64_t sent; /* snapshots produced */
    /* a seed: bodies (SnapBody bytes, unsigned) for a batch (snapshot.h
     * bs_snapbatch_encode) instead of signed snapshots (init sets 0) */
    int bodies;
    /* a resumed seed: skip the wants of collections before from.coll and
     * start from.coll after from.after (init sets "": from the start) */
    bs_snapwant from;
} bs_movein_cursor;

void bs_movein_cursor_init(bs_movein_cursor *c, const uint8_t *peer,
                           const bs_snapwant *wants, size_t n);
void bs_movein_cursor_fini(bs_movein_cursor *c);
/*
 * The next snapshot (*out malloc'd, *n bytes) node m (the hub; sk its
 * secret key) sends c's receiver, read in t; now_ms stamps it.  Wants of
 * records outside the receiver's scope are skipped (the branch asks again
 * until the record is in its scope at the hub, or leaves its own).  A
 * regional hub is entitled to every record.  At a regional hub, the
 * hub's snapshots it kept (below; sk unused, no seed); at any other node
 * nothing.
 * BS_ENOTFOUND when done; BS_ESTORE, BS_ENOMEM.  A read transaction per
 * call is enough: the cursor keeps its place by key.
 */
BS_MUST_CHECK bs_err bs_movein_next(bs_txn *t, const bs_meta *m,
                                    const uint8_t *sk, bs_movein_cursor *c,
                                    uint64_t now_ms, uint8_t **out, size_t *n);

/* Keep what peer pk's envelope says about snapshots (write txn): its
 * features and its wants, replacing those kept before. */
BS_MUST_CHECK bs_err bs_movein_note_peer(bs_txn *t, const uint8_t *pk,
                                         uint32_t features,
                                         const bs_snapwant *w, size_t n);
/* Keep whether peer pk's envelope asked for a seed (Envelope.seed with
 * features bit 1), and where it resumes (its want w[i] with `after`; none:
 * from the start), replacing what was kept (write txn). */
BS_MUST_CHECK bs_err bs_movein_note_seed(bs_txn *t, const uint8_t *pk,
                                         int asked, const bs_snapwant *w,
                                         size_t n);
/* The hub's admin wants peer pk seeded (`peer seed`): its next exchange
 * with it, file or session, is a seed from the start, as if it had asked
 * (write txn). */
BS_MUST_CHECK bs_err bs_movein_seed_peer(bs_txn *t, const uint8_t *pk);
/* The end of a seed by hub m, read in t: a `done` marker with `seed`,
 * covering the hub's vector without its quarantined streams (whose
 * anchors a seed does not carry, 8.5's bound): *out malloc'd, a
 * RecordSnapshot signed with sk, or with sk NULL its body (for a batch).
 * BS_ENOMEM, BS_ESTORE. */
BS_MUST_CHECK bs_err bs_movein_seed_marker(bs_txn *t, const bs_meta *m,
                                           const uint8_t *sk, uint64_t now_ms,
                                           uint8_t **out, size_t *n);
/* Whether peer pk's last recorded envelope asked for a seed: BS_OK with
 * *from its resume point (coll and after; both "" from the start), or
 * BS_ENOTFOUND; BS_ESTORE. */
BS_MUST_CHECK bs_err bs_movein_peer_seed(bs_txn *t, const uint8_t *pk,
                                         bs_snapwant *from);
/* What peer pk last said (*w malloc'd, may be NULL when *n is 0). */
BS_MUST_CHECK bs_err bs_movein_peer(bs_txn *t, const uint8_t *pk,
                                    uint32_t *features, bs_snapwant **w,
                                    size_t *n);

/* ---- a regional hub: relaying the hub's snapshots ----
 *
 * Only the hub signs snapshots, and a branch behind a regional hub still
 * verifies the hub's signature on each: the regional hub only carries
 * them (protocol.md 7.3, "Through a regional hub").  It
 *  - asks the hub, in its own envelopes, for what its branches want
 *    (bs_movein_relay_note, when it records a branch's envelope: unless
 *    the hub's answer it kept already covers that branch's vector);
 *  - keeps each snapshot and done marker the hub answers it with, byte
 *    for byte as signed (bs_movein_merge; meta "rsc:" and "rdn:",
 *    storage.md 3.1), a record's parts replacing those of an earlier
 *    answer;
 *  - answers its branches' wants from what it kept (bs_movein_next): the
 *    parts of each record in ID order that the branch is entitled to, as
 *    the regional hub holds the record and as each part says (a record
 *    it no longer holds is not sent), then the hub's done marker of that
 *    want if it kept one (else the branch asks again).  The branch's M1
 *    judges the marker's vector against its own positions, as for the
 *    hub's own answer.
 */

/* Note the wants w[0..n) of branch pk, whose vector is ack[0..nack), as
 * this regional hub's own (write txn): those the hub's kept answer does
 * not cover yet.  When the branch is to be seeded (`seed`: its envelope
 * asks; or this node's admin said so, "psd:"), a want of every collection
 * whose kept answer does not cover this node's vector.  A no-op on any
 * other node than a regional hub. */
BS_MUST_CHECK bs_err bs_movein_relay_note(bs_txn *t, const uint8_t *pk,
                                          const bs_snapwant *w, size_t n,
                                          const bs_pos *ack, size_t nack,
                                          int seed);

/*
 * A regional hub seeds a branch from the hub's answers it kept
 * (protocol.md 8.9): the seed point is its own vector (quarantined
 * streams left out) lowered, stream by stream, to no later than every
 * kept answer of a whole collection (each `done` marker's `covered`), so
 * that the snapshots summarise every change up to the anchors.  *point
 * malloc'd; BS_ENOTFOUND when this node is not a regional hub, lacks the
 * answer of a collection it holds, or no longer holds the sets just above
 * the point (compacted): it cannot seed yet (bs_movein_relay_note asks
 * the hub).  BS_ESTORE, BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_movein_relay_seed_point(bs_txn *t, const bs_meta *m,
                                                bs_pos **point, size_t *n);
/* The end of a regional hub's seed (m; sk its secret key): a `done`
 * marker with `seed`, covering point[0..n), signed by the regional hub
 * (N9s): *out malloc'd.  BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_movein_relay_seed_marker(const bs_meta *m,
                                                 const uint8_t *sk,
                                                 const bs_pos *point, size_t n,
                                                 uint64_t now_ms, uint8_t **out,
                                                 size_t *outn);

/* ---- the branch's side: wanting and merging ---- */

/* Every user collection holding a record in t, in name order, as wants
 * of every record of it (*w malloc'd): what a bootstrap answers (docs/
 * design.md "Snapshot bootstrap"). */
BS_MUST_CHECK bs_err bs_movein_collections(bs_txn *t, bs_snapwant **w,
                                           size_t *n);

/* Note that branch m wants coll/id (id NULL: every record of coll in its
 * scope); a no-op on the hub or before joining (write txn). */
BS_MUST_CHECK bs_err bs_movein_want(bs_txn *t, const bs_meta *m,
                                    const char *coll, const char *id);
/* This node's wants, at most max (*w malloc'd). */
BS_MUST_CHECK bs_err bs_movein_wants(bs_txn *t, size_t max, bs_snapwant **w,
                                     size_t *n);
/* Forget what is kept about coll/id: its base and its want (move-out
 * drops the record; write txn). */
BS_MUST_CHECK bs_err bs_movein_forget(bs_txn *t, const char *coll,
                                      const char *id);
/* The record's base (the snapshots merged into it) decoded into *r from
 * arena a (its versions index the stream table); BS_ENOTFOUND when it has
 * none, BS_ESTORE when it does not decode. */
BS_MUST_CHECK bs_err bs_movein_base(bs_txn *t, const char *coll, const char *id,
                                    bs_record *r, bs_arena *a);

/* Store *r as the record's base (write txn): log compaction folds the
 * changes it drops into it (compact.h), as snapshots are.  BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_movein_base_put(bs_txn *t, const char *coll,
                                        const char *id, const bs_record *r,
                                        bs_arena *a);

/* ---- the branch's side: seeding (docs/design.md "Snapshot bootstrap") ----
 *
 * A branch is *seeding* from the first transaction of an exchange that
 * seeds it (the hub's envelope sets `seed`) until it merges the hub's
 * seed marker (a `done` snapshot with `seed`) with every anchor arrived.
 * Meanwhile the metadata holds "sed:" (storage.md 3.1): the seed point,
 * the last record merged and how many were. */
typedef struct bs_seeding {
    bs_pos *point; /* the seed point: the hub's vector (malloc'd) */
    size_t npoint;
    char coll[BS_COLLECTION_MAX + 1]; /* the last record merged, or "" */
    char id[BS_ID_MAX + 1];
    uint64_t records; /* record snapshots merged so far */
} bs_seeding;

/* This node's seed in progress (release with bs_seeding_fini); BS_ENOTFOUND
 * when it is not seeding, BS_ESTORE when "sed:" does not decode. */
BS_MUST_CHECK bs_err bs_movein_seed_get(bs_txn *t, bs_seeding *out);
void bs_seeding_fini(bs_seeding *s);
/* A seed to this node began or resumed with seed point point[0..n)
 * (borrowed), in write txn t: "sed:" holds it, keeping where an earlier
 * one stood and what it counted. */
BS_MUST_CHECK bs_err bs_movein_seed_begin(bs_txn *t, const bs_pos *point,
                                          size_t n);
/* `records` more record snapshots merged in t, the last of them coll/id;
 * nothing when not seeding (the marker ended it in t). */
BS_MUST_CHECK bs_err bs_movein_seed_progress(bs_txn *t, const char *coll,
                                             const char *id, uint64_t records);

/*
 * Merge admitted snapshot s into its record (apply.h's transaction, ap):
 * alive, tomb and each field with its version, under the collection's
 * order; the base kept; the owner history noted; then the record dropped
 * if it is outside this branch's scope after all (move-out).  A `done`
 * marker meets its want when its vector covers what this branch holds of
 * every other node's streams; a seed marker ends this node's seed when
 * its positions reached the seed point on every other stream (the anchors
 * arrived).  BS_ENOMEM, BS_ESTORE.
 */
BS_MUST_CHECK bs_err bs_movein_merge(bs_apply *ap, const bs_snap *s,
                                     bs_errbuf *err);

#endif
