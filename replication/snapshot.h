/*
 * snapshot.h - the record snapshot: a record as the hub holds it, every
 * field with its value and version, signed by the hub (docs/protocol.md
 * 2.9).  What a branch receives when a record enters its scope (move-in,
 * movein.h).  This module owns the format only: decoding with its checks
 * (N1-N6), the signature ("branchsync/snap/v1"), the canonical encoder,
 * and the `wants` a branch puts in its envelope (Envelope field 13).
 *
 * A snapshot is either a record — its `alive` and `tomb` versions and
 * its fields (all, or a consecutive range of them for a record split in
 * parts) — or a `done` marker ending the answer to one want, with the
 * hub's version vector when the answer began.
 */
#ifndef BS_SNAPSHOT_H
#define BS_SNAPSHOT_H

#include "arena.h"
#include "changeset.h"
#include "record.h"

#define BS_SNAP_CONTEXT "branchsync/snap/v1"
#define BS_SNAP_VERSION 1
/* Envelope.features bit: the sender takes record snapshots. */
#define BS_FEATURE_SNAPSHOTS 1u
/* Envelope.features bit (revision 2026-12, bootstrap): the sender seeds
 * and is seeded (Envelope.seed; docs/design.md "Snapshot bootstrap"). */
#define BS_FEATURE_BOOTSTRAP 2u
/* Envelope.features bit (revision 2026-12, compact seeds): the sender
 * takes version-2 batches (docs/protocol.md 2.12).  Bit 2 is
 * BS_FEATURE_SUMMARIES (changeset.h). */
#define BS_FEATURE_COMPACT 8u
/* An encoded snapshot: at most a file frame (and a session message). */
#define BS_SNAP_MAX_ENCODED BS_SET_MAX_ENCODED
/* Wants per envelope (more wait for the next exchange). */
#define BS_SNAP_WANTS_MAX 256

/* A record, or (id "") a whole collection, that a branch lacks. */
typedef struct bs_snapwant {
    char coll[BS_COLLECTION_MAX + 1];
    char id[BS_ID_MAX + 1]; /* "": every record in scope */
    /* revision 2026-12 (bootstrap), with id "" in an envelope asking for
     * a seed: where the seed resumes (after this ID of coll); else "" */
    char after[BS_ID_MAX + 1];
} bs_snapwant;

/* A version as a snapshot carries it: the writer's stream key in place
 * of a node-local index. */
typedef struct bs_snapver {
    uint64_t hlc, seq;
    uint32_t prio;
    uint8_t key[BS_STREAM_KEY_LEN]; /* origin || incarnation */
    /* a version-2 body's writer number (2.12): decoded, that of the key
     * in its batch's header; to encode one, the hub's stream index of the
     * key (from 1: the header lists the hub's streams in index order) */
    uint32_t writer;
} bs_snapver;

typedef struct bs_snapfield {
    const char *name; /* NUL-terminated, in the snapshot's memory */
    bs_value val;
    bs_snapver ver;
} bs_snapfield;

/* A decoded snapshot.  Owns its memory (bs_snap_free). */
typedef struct bs_snap {
    bs_slice body; /* the signed bytes (in the unpacked message) */
    uint8_t signature[BS_SIG_LEN];
    uint8_t infobase[BS_INFOBASE_LEN], hub[BS_PK_LEN];
    char coll[BS_COLLECTION_MAX + 1];
    char id[BS_ID_MAX + 1]; /* "": a whole collection (done only) */
    /* done: no record; the end of the answer to want (coll, id), with the
     * hub's vector when it began the answer (in the arena) */
    int done;
    /* seed (revision 2026-12, bootstrap): with done, collection and id
     * empty: the end of a seed, covered its seed point */
    int seed;
    bs_pos *covered;
    size_t ncovered;
    int has_alive, has_tomb;
    bs_snapver alive, tomb;
    bs_snapfield *fields; /* sorted by name, unique */
    size_t nfields;
    uint64_t created_ms;
    /* from a batch (bs_snapbatch_snap): no signature of its own; the
     * batch's signature and body hash vouch for it (bs_admit_snapbatch) */
    int batched;
    void *pb, *pb_body;
    int pb_arena; /* pb_body was unpacked into the arena: nothing to free */
    bs_arena arena;
} bs_snap;

/*
 * Decode and shape-check a RecordSnapshot (docs/protocol.md 2.9, N1-N6):
 * 1 .. BS_SNAP_MAX_ENCODED bytes, canonical, a 64-byte signature, a
 * canonical body of version 1 with ids of the right sizes, a user
 * collection, a valid id (or none, with no versions and no fields),
 * fields sorted and unique with valid names and values.  Does not verify
 * the signature.  BS_EMALFORMED with detail, BS_ENOMEM; *out is set only
 * on BS_OK.
 */
BS_MUST_CHECK bs_err bs_snap_decode(const uint8_t *buf, size_t n, bs_snap **out,
                                    bs_errbuf *err);
/*
 * Encode s (its infobase, hub, collection, id, versions, fields, done and
 * covered; version 1) as a RecordSnapshot signed with sk, the secret key
 * of s->hub: *out malloc'd, *n bytes.  Pure apart from memory: decoding
 * the result gives s back.  BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_snap_encode(const bs_snap *s, const uint8_t *sk,
                                    uint8_t **out, size_t *n);
/* As a version-2 body (2.12): each version by its `writer` (not 0), no
 * infobase, hub or created_ms, a field's version left out where it
 * equals `alive`.  Only within a version-2 batch.  BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_snap_encode_body2(const bs_snap *s, uint8_t **out,
                                          size_t *n);
/* The snapshot's body alone (SnapBody bytes, unsigned), for a batch:
 * *out malloc'd.  BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_snap_encode_body(const bs_snap *s, uint8_t **out,
                                         size_t *n);
/* The RecordSnapshot of decoded s again, its body and the hub's signature
 * byte for byte as received (a regional hub relays it, movein.h): *out
 * malloc'd.  BS_EINVAL for a snapshot of a batch (no signature of its
 * own), BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_snap_signed(const bs_snap *s, uint8_t **out, size_t *n);
/* Verify(hub, "branchsync/snap/v1", body, signature): BS_EBADSIG. */
BS_MUST_CHECK bs_err bs_snap_verify(const bs_snap *s,
                                    const uint8_t hub[BS_PK_LEN]);
/* NULL is a no-op. */
void bs_snap_free(bs_snap *s);

/* The text of the snapshot's field `name`, or NULL. */
const bs_value *bs_snap_field(const bs_snap *s, const char *name);

/*
 * ---- batches (revision 2026-12, bootstrap; docs/protocol.md 2.11) ----
 *
 * A seed carries its snapshots in batches: many snapshot bodies under one
 * signature of the hub over a header listing each body's BLAKE2b-256 in
 * order, as a set's header signs its changes' hashes.  A body is checked
 * against its hash, not a signature of its own: one Ed25519 verification
 * per batch (up to BS_SNAPBATCH_BYTES of bodies) instead of per record.
 * Sent only in a seed (Envelope.features bit 1): exchange-file frame 5.
 */
#define BS_SNAPBATCH_CONTEXT "branchsync/snapbatch/v1"
/* Snapshots in one batch, at most (B2). */
#define BS_SNAPBATCH_MAX 65536
/* The bodies a producer puts in one batch, about (node-local): the
 * signature's cost spread over thousands of records, memory bounded. */
#define BS_SNAPBATCH_BYTES (4u << 20)
/* Version 2 (revision 2026-12, compact seeds; docs/protocol.md 2.12), to
 * a receiver that announced BS_FEATURE_COMPACT: the header lists the
 * writers' stream keys once and signs one hash of all the bodies, and a
 * body names a writer by its number, leaves out infobase, hub and
 * created_ms, and a field's version when it is the record's `alive` —
 * about a third of version 1's bytes, hashed once instead of twice. */
#define BS_SNAPBATCH_VERSION2    2
#define BS_SNAPBATCH_WRITERS_MAX 16384

/* A decoded batch.  Owns its memory (bs_snapbatch_free). */
typedef struct bs_snapbatch {
    bs_slice header; /* the signed bytes (in the unpacked message) */
    uint8_t signature[BS_SIG_LEN];
    uint8_t infobase[BS_INFOBASE_LEN], hub[BS_PK_LEN];
    uint64_t created_ms;
    size_t n;         /* snapshots: 1 .. BS_SNAPBATCH_MAX */
    int checked;      /* bs_snapbatch_decode_checked: canonical form trusted */
    int borrowed;     /* bs_snapbatch_decode_borrowed: bodies point into buf */
    uint32_t version; /* 1, or BS_SNAPBATCH_VERSION2 */
    /* version 2: the writers (48-byte keys, in the header's memory; the
     * array malloc'd) and the hash of the bodies the header signs */
    const uint8_t **writers;
    size_t nwriters;
    const uint8_t *bodies_hash;
    /* version 2: the field names its bodies' reader checked already (a
     * seed's records repeat theirs), owned; for the one thread reading
     * this batch */
    struct bs_namecache *names;
    void *pb, *pb_header;
} bs_snapbatch;

/*
 * Decode and shape-check a SnapBatch (B1-B5): 1 .. BS_SNAP_MAX_ENCODED
 * bytes, canonical, a 64-byte signature, a canonical header of version 1
 * with ids of the right sizes, as many 32-byte hashes as bodies (1 ..
 * BS_SNAPBATCH_MAX), no empty body.  The bodies are decoded one at a time
 * by bs_snapbatch_snap.  Verifies nothing.  BS_EMALFORMED with detail,
 * BS_ENOMEM; *out is set only on BS_OK.
 */
BS_MUST_CHECK bs_err bs_snapbatch_decode(const uint8_t *buf, size_t n,
                                         bs_snapbatch **out, bs_errbuf *err);
/*
 * The same for bytes that passed bs_snapbatch_decode and bs_snapbatch_snap
 * before, unchanged (an exchange file's pass 2, on the bytes its pass 1
 * checked): the canonical form of the batch and of its bodies is not
 * checked again (it costs a re-encoding each); every other check is made.
 */
BS_MUST_CHECK bs_err bs_snapbatch_decode_checked(const uint8_t *buf, size_t n,
                                                 bs_snapbatch **out,
                                                 bs_errbuf *err);
/*
 * The same, read in place (no copy of the bodies; a seed's file is
 * mapped): b borrows buf, which must outlive it and the snapshots taken
 * from it; `checked` as bs_snapbatch_decode_checked (the canonical form
 * of the bodies trusted; the batch's own is read as it is checked).
 */
BS_MUST_CHECK bs_err bs_snapbatch_decode_borrowed(const uint8_t *buf, size_t n,
                                                  int checked,
                                                  bs_snapbatch **out,
                                                  bs_errbuf *err);
/* Verify(hub, "branchsync/snapbatch/v1", header, signature): BS_EBADSIG. */
BS_MUST_CHECK bs_err bs_snapbatch_verify(const bs_snapbatch *b,
                                         const uint8_t hub[BS_PK_LEN]);
/* Version 1: 1 when body i (< b->n) hashes to the header's hash i. */
int bs_snapbatch_body_ok(const bs_snapbatch *b, size_t i);
/* 1 when every body is the one the header signed: version 1 each body
 * against its hash, version 2 the bodies' bytes against bodies_hash. */
int bs_snapbatch_bodies_ok(const bs_snapbatch *b);
/*
 * Body i (< b->n) as a snapshot (N3-N6, and B6: its infobase and hub are
 * the header's), with `batched` set and no signature: admit the batch
 * (admit.h bs_admit_snapbatch) before trusting it.  *out (free with
 * bs_snap_free) borrows b's memory: free it before b.  BS_EMALFORMED,
 * BS_ENOMEM; *out is set only on BS_OK.
 */
BS_MUST_CHECK bs_err bs_snapbatch_snap(const bs_snapbatch *b, size_t i,
                                       bs_snap **out, bs_errbuf *err);
/*
 * The same into caller-provided storage, for a loop over a batch's bodies
 * (a seed decodes a million): s (bs_snap_init'ed) is emptied and refilled,
 * its memory — the unpacked body included — in s's arena, which keeps its
 * first chunk from one body to the next, so a body costs no malloc.  What
 * s held before is gone; s borrows b's memory as above and holds the body
 * until the next call or bs_snap_fini.  On error s holds nothing usable
 * (but may be refilled or finished).
 */
BS_MUST_CHECK bs_err bs_snapbatch_snap_into(const bs_snapbatch *b, size_t i,
                                            bs_snap *s, bs_errbuf *err);
/*
 * The same, a version-2 body's memory taken from arena a (the caller's:
 * many snapshots decoded ahead share one, pass 2 of a seed's file) and
 * valid until a is reset; any other body as bs_snapbatch_snap_into.
 */
BS_MUST_CHECK bs_err bs_snapbatch_snap_shared(const bs_snapbatch *b, size_t i,
                                              bs_snap *s, bs_arena *a,
                                              bs_errbuf *err);
/* Caller-provided storage for bs_snapbatch_snap_into; fini frees what it
 * holds (init'ed storage twice finished is safe). */
void bs_snap_init(bs_snap *s);
void bs_snap_fini(bs_snap *s);
/* NULL is a no-op. */
void bs_snapbatch_free(bs_snapbatch *b);
/*
 * Encode bodies[0..nb) (SnapBody bytes, bs_snap_encode_body; 1 ..
 * BS_SNAPBATCH_MAX) as one SnapBatch of infobase and hub, signed with sk,
 * hub's secret key: *out malloc'd, *n bytes.  BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_snapbatch_encode(
    const uint8_t infobase[BS_INFOBASE_LEN], const uint8_t hub[BS_PK_LEN],
    uint64_t created_ms, const bs_slice *bodies, size_t nb, const uint8_t *sk,
    uint8_t **out, size_t *n);
/*
 * The same as version 2 (2.12): bodies made by bs_snap_encode_body2 (or
 * bs_snap_encode_body) whose writer numbers are at most nw, writers the
 * nw 48-byte stream keys they number (1 .. BS_SNAPBATCH_WRITERS_MAX),
 * copied.  BS_ENOMEM, BS_EINVAL (nw out of range).
 */
BS_MUST_CHECK bs_err
bs_snapbatch_encode2(const uint8_t infobase[BS_INFOBASE_LEN],
                     const uint8_t hub[BS_PK_LEN], uint64_t created_ms,
                     const uint8_t *writers, size_t nw, const bs_slice *bodies,
                     size_t nb, const uint8_t *sk, uint8_t **out, size_t *n);

#endif
