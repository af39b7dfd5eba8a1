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
 *    the log does not hold the changes it summarises; a record the
 *    snapshot creates is its own base instead (BS_RECORD_OWN_BASE), which
 *    a later write keeps as "snp:" first (bs_movein_base_keep).
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
     * bs_snapbatch_encode) instead of signed snapshots (init sets 0); 2:
     * version-2 bodies, whose writers are the hub's stream indexes
     * (bs_snapbatch_encode2 with bs_movein_writers) */
    int bodies;
    /* a resumed seed: skip the wants of collections before from.coll and
     * start from.coll after from.after (init sets "": from the start) */
    bs_snapwant from;
    int peer_kind; /* 0 not looked up yet; 1 a branch, 2 a regional hub */
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
 * hub's snapshots it kept (relay.h bs_relay_serve; sk unused, no batch);
 * at any other node nothing.
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
/* The writers of a version-2 batch of the hub's bodies read in t: the key
 * of each of its streams in index order (*out malloc'd, *n keys of
 * BS_STREAM_KEY_LEN bytes).  BS_EINVAL when there are more than
 * BS_SNAPBATCH_WRITERS_MAX (then version 1 it is); BS_ENOMEM,
 * BS_ESTORE. */
BS_MUST_CHECK bs_err bs_movein_writers(bs_txn *t, uint8_t **out, size_t *n);
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

/* A regional hub relays the hub's answers to its branches and seeds them
 * from them: relay.h. */

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
/*
 * The record's base (the snapshots merged into it) decoded into *r from
 * arena a (its versions index the stream table); BS_ENOTFOUND when it has
 * none, BS_ESTORE when it does not decode.  The base is its "snp:" entry,
 * or, without one, the record itself when it carries BS_RECORD_OWN_BASE
 * (record.h): a record a snapshot created is its own base until a write
 * changes it (bs_movein_base_keep), so a seed writes no "snp:" (storage.md
 * 3.2).  An entry always wins over the flag.
 */
BS_MUST_CHECK bs_err bs_movein_base(bs_txn *t, const char *coll, const char *id,
                                    bs_record *r, bs_arena *a);

/*
 * Keep the base that record coll/id implies before a write overwrites or
 * deletes it (write txn): when its stored bytes old (borrowed; old.p NULL:
 * read them here) carry BS_RECORD_OWN_BASE and no "snp:" entry exists, they
 * become the entry (the flag cleared).  Every path that overwrites or
 * deletes a record calls it first, but a move-out, which forgets the base
 * with the record (bs_movein_forget).  BS_OK when there is nothing to keep
 * (no record, no flag); BS_ENOMEM, BS_ESTORE.
 */
BS_MUST_CHECK bs_err bs_movein_base_keep(bs_txn *t, const char *coll,
                                         const char *id, bs_slice old);

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
