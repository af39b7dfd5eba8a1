/*
 * changeset.h - signed change sets: their limits and plain types, and
 * decoding and verifying them (the wire format of proto/branchsync.proto;
 * the byte-level rules are in docs/protocol.md).
 *
 * An origin batches its changes into sets.  The signed bytes are the
 * SetHeader, which lists the BLAKE2b-256 hash of every change's bytes, so
 * one Ed25519 signature covers the whole batch and a relay may leave changes
 * out (sending only their index) while the rest still verifies (INV-4).
 *
 * This module is the receiver's side: decoding, shape checks, signature
 * verification, the fast change decoder, and reading sets back from the
 * log.  The origin's side (building and sealing) is csbuild.h; the
 * exchange envelope is envelope.h.  Both are included below, so that one
 * include serves every user of change sets.
 */
#ifndef BS_CHANGESET_H
#define BS_CHANGESET_H

#include "arena.h"
#include "crypto.h"
#include "record.h"
#include "vv.h"

#define BS_WIRE_VERSION     1
#define BS_SIG_CONTEXT      "branchsync/cs/v1"
#define BS_SET_MAX_CHANGES  8192
#define BS_CHANGE_MAX_BYTES (2u << 20) /* one change, encoded */
#define BS_SEEN_MAX         4096       /* streams in a header's vector */
/* Set summaries (docs/protocol.md 2.10, revision 2026-12 (summaries)):
 * the second signature's context, and the Envelope.features bit of a node
 * that takes them (ChangeSet fields 5-8). */
#define BS_SUM_CONTEXT       "branchsync/sum/v1"
#define BS_FEATURE_SUMMARIES 4u

/*
 * The size of one change set: the limit is BS_SET_MAX_BYTES, defined here
 * once; every other size limit of a set is derived from it here
 * (docs/protocol.md §13).
 *   BS_SET_MAX_BYTES    8 MiB: the sealer starts a new set once its
 *                       changes, each counted with 40 bytes for its hash
 *                       and framing, reach BS_SET_MAX_BYTES -
 *                       BS_CHANGE_MAX_BYTES (bs_csbuild_full); the cap of
 *                       a SetHeader (D4).
 *   BS_SET_MAX_ENCODED  8 MiB + 64 KiB: an encoded ChangeSet, whose
 *                       container adds the signature and the tags and
 *                       lengths of header and changes (D1); also the cap
 *                       of every frame of an exchange file (F3).
 *   BS_SET_MAX_MESSAGE  8 MiB + 1 MiB: a network message (ZMQ_MAXMSGSIZE,
 *                       node/transport.h).  A SET message is 1 type byte
 *                       and a set, so every valid one fits; the room above
 *                       lets an oversized set arrive and be refused by D1,
 *                       the session going on (P6), where ZeroMQ would drop
 *                       the connection.
 */
#define BS_SET_MAX_BYTES   (8u << 20)
#define BS_SET_MAX_ENCODED (BS_SET_MAX_BYTES + (64u << 10))
#define BS_SET_MAX_MESSAGE (BS_SET_MAX_BYTES + (1u << 20))
_Static_assert(BS_SET_MAX_MESSAGE >= 1 + BS_SET_MAX_ENCODED,
               "a SET message (type byte and set) must fit a message");

/* One change as the core sees it.  Strings are NUL-terminated. */
typedef struct bs_change {
    uint64_t seq, hlc;
    uint32_t prio;
    const char *coll;
    const char *id;
    int deleted;
    const bs_field *fields; /* names and texts NUL-terminated */
    size_t nfields;
} bs_change;

/* ---- decoding (the receiver's side) ---- */

/*
 * A decoded change set.  It borrows `raw`: the caller's buffer, which must
 * outlive the view (no copy of a set of up to 8 MiB is made).  It owns its
 * unpacked protobuf-c messages, which hold copies of the header and the
 * change bytes: `header` and `changes` point into them and live as long as
 * the view.
 */
typedef struct bs_csview {
    bs_slice raw;    /* the exact received bytes: borrowed, not copied */
    bs_slice header; /* the signed bytes, as received (the view's copy) */
    uint8_t header_hash[BS_HASH_LEN];
    uint32_t version;
    uint8_t infobase[BS_INFOBASE_LEN];
    uint8_t origin[BS_PK_LEN];
    uint8_t inc[BS_INC_LEN];
    uint64_t first, last, created_ms;
    int has_prev;
    uint8_t prev_hash[BS_HASH_LEN];
    bs_pos *seen;
    size_t nseen;
    size_t count;      /* last - first + 1 */
    uint8_t *present;  /* count flags: 1 if the change's bytes are here */
    bs_slice *changes; /* count slices (the view's copies); empty for
                          omitted ones */
    /* The signed routes (SetHeader field 13, docs/protocol.md 2.5): the
     * collection, the owner after it and the owner just before it of
     * change i, all NUL-terminated and living as long as the view; NULL
     * when the set has no routes (a version-1 origin: its omissions cannot
     * be verified). */
    const char **route_coll, **route_owner, **route_before;
    /* The origin's summary (ChangeSet fields 5-6, docs/protocol.md 2.10):
     * {NULL, 0} when the set carries none.  A set in *summary form*
     * carries no header: `header` is then the summary's bare header (no
     * hashes, no routes) with the vector put back when it came (a summary
     * form carrying no bucket has none: nseen is 0), `header_hash` the
     * hash the summary names, and
     * only the buckets marked in bucket_kept are present; route_* are set
     * for present changes only.  With a header, the summary was checked
     * to be the one the header determines. */
    int summary_form;
    bs_slice summary;
    size_t nbuckets;
    const char **bucket_coll, **bucket_owner, **bucket_before;
    uint32_t *bucket_count;
    uint8_t *bucket_kept;           /* summary form: 1 for a bucket carried */
    uint8_t *own_header;            /* summary form: `header`'s bytes (the bare
                                       header with the vector, when it came) */
    void *pb_set, *pb_hdr, *pb_sum; /* unpacked protobuf messages */
    int verified; /* the origin's signature was checked (pass 1) */
    /* the present changes decoded ahead (bs_changeset_predecode; NULL:
     * not), in seq order — pre[k] is the k-th present change, as
     * bs_changeset_change gives it — living in pre_arena (owned) as long
     * as the view (only the present ones: a summary form carries a tenth
     * of its seq range) */
    bs_change *pre;
    bs_arena *pre_arena;
} bs_csview;

/*
 * Decode and shape-check a change set: sizes capped before allocation
 * (P21), the header parsed from the exact bytes, ids of the right length,
 * one hash per seq, omitted indexes in range and unique, and every present
 * change's hash equal to its entry in the header.  Does not verify the
 * signature.  BS_EMALFORMED with detail on any defect (BS_EBADSIG when a
 * change does not match its hash), BS_ENOMEM.  *out is set only on BS_OK;
 * it borrows buf (see bs_csview).
 */
BS_MUST_CHECK bs_err bs_changeset_decode(const uint8_t *buf, size_t len,
                                         bs_csview **out, bs_errbuf *err);
/*
 * The routes of a header (SetHeader field 13) are either absent or one per
 * change: each collection valid (system names admitted), each owner and
 * owner before empty or a valid node name.  Checked by bs_changeset_decode
 * (D14); a present change whose collection differs from its route is refused by
 * bs_changeset_change (C6).
 */
/* Verify the origin's signature over the header (S1), and over the
 * summary when the set carries one (S2); a set in summary form has only
 * the second.  BS_EBADSIG. */
BS_MUST_CHECK bs_err bs_changeset_verify(const bs_csview *v,
                                         const uint8_t pk[BS_PK_LEN]);
/*
 * Decode present change i (0-based) into *out, allocating from a (the
 * strings and fields of *out live as long as the arena).  BS_EMALFORMED if
 * it is not canonically encoded, its seq is not first + i or a name is
 * invalid.
 */
BS_MUST_CHECK bs_err bs_changeset_change(const bs_csview *v, size_t i,
                                         bs_arena *a, bs_change *out,
                                         bs_errbuf *err);
/*
 * Decode every present change of v ahead (prefetch.h: on the thread that
 * decoded v), into memory v owns: v->pre.  When one does not decode,
 * nothing is kept (v->pre NULL) and the caller's own bs_changeset_change
 * gives the refusal.  BS_ENOMEM only.
 */
BS_MUST_CHECK bs_err bs_changeset_predecode(bs_csview *v);
/* Free v and what it owns (not raw).  NULL is a no-op. */
void bs_changeset_free(bs_csview *v);

/*
 * The SetSummary a header determines (docs/protocol.md 2.10): hdr the
 * SetHeader bytes, n its changes, hashes[i] the BLAKE2b-256 of change i
 * and coll/owner/before[i] its route (NUL-terminated; owner and before ""
 * for none).  *out (malloc'd, *outn bytes) is canonically encoded.
 * Every sealer and every receiver of a set with a summary computes it
 * the same way.  BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_summary_make(bs_slice hdr, size_t n,
                                     const uint8_t *const *hashes,
                                     const char *const *coll,
                                     const char *const *owner,
                                     const char *const *before, uint8_t **out,
                                     size_t *outn);

/*
 * The vector and seq range of a set as stored in the log (our own, already
 * validated bytes).  *seen is malloc'd.
 */
BS_MUST_CHECK bs_err bs_changeset_stored_seen(bs_slice set, bs_pos **seen,
                                              size_t *n, uint64_t *first,
                                              uint64_t *last);
/* The seq range and origin wall-clock time of a stored set. */
BS_MUST_CHECK bs_err bs_changeset_stored_info(bs_slice set, uint64_t *first,
                                              uint64_t *last,
                                              uint64_t *created_ms);
/* The seq range alone: read from the header's first fields only (not
 * past its hash list), which is what finding a peer's next set needs. */
BS_MUST_CHECK bs_err bs_changeset_stored_range(bs_slice set, uint64_t *first,
                                               uint64_t *last);
/* The signed header bytes inside a stored set (*hdr points into set);
 * for a set in summary form, its summary's bare header (no hashes, no
 * routes: what names the stream, the seq range and the vector). */
BS_MUST_CHECK bs_err bs_changeset_stored_header(bs_slice set, bs_slice *hdr);
/* The hash of a stored set's signed header (what the next set's
 * prev_hash names), for either form. */
BS_MUST_CHECK bs_err bs_changeset_stored_header_hash(bs_slice set,
                                                     uint8_t out[BS_HASH_LEN]);
/*
 * A stored set as it goes to a peer that does not take summaries
 * (BS_FEATURE_SUMMARIES): *out (malloc'd) is set without ChangeSet fields
 * 5 and 6, or NULL when it carries none (send it as stored).  BS_EPERM
 * for a set in summary form (it cannot be sent without its summary);
 * BS_ESTORE when it does not read; BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_changeset_stored_strip(bs_slice set, uint8_t **out,
                                               size_t *outn);
/*
 * A stored set about to be sent: its header reads and names the stream
 * `key` (origin || incarnation), the origin's signature verifies, and
 * every present change matches its hash, all read in place (no copy; for
 * this node's own stored bytes, which are canonical).  BS_ESTORE when a
 * check fails.  *last gets its last seq.
 */
BS_MUST_CHECK bs_err bs_changeset_stored_check(
    bs_slice set, const uint8_t key[BS_STREAM_KEY_LEN], uint64_t *last);

/*
 * Filtering a stored set (this node's own checked bytes: bs_changeset_
 * stored_check first) for a receiver, read in place: keep(ctx, route) says
 * whether the receiver is entitled to the change of that route (its
 * collection, owner and owner-before slices, not NUL-terminated).
 *   BS_FILTER_WHOLE     send the set as stored (nothing to leave out, or
 *                       no routes and nothing left out);
 *   BS_FILTER_FILTERED  send *out (malloc'd, *outn bytes): the header and
 *                       signature unchanged, the changes the receiver is
 *                       not entitled to left out, canonically encoded;
 *   BS_FILTER_STOP      the set leaves out a change the receiver is
 *                       entitled to (or any change, without routes).
 * BS_ESTORE when the set does not read; BS_ENOMEM.
 */
typedef struct bs_route_ref {
    bs_slice coll, owner, owner_before;
} bs_route_ref;
typedef int (*bs_route_keep)(void *ctx, const bs_route_ref *r);
typedef enum {
    BS_FILTER_WHOLE,
    BS_FILTER_FILTERED,
    BS_FILTER_STOP,
} bs_filter_verdict;
/*
 * `summaries`: the receiver takes set summaries (BS_FEATURE_SUMMARIES).
 * Then a set carrying its origin's summary is filtered by bucket
 * (docs/protocol.md 2.10): *out is the set in summary form, carrying only
 * the buckets the receiver is entitled to (a set it is entitled to none
 * of travels as its summary alone).  Otherwise the set is filtered change
 * by change as above (the caller strips the summary first:
 * bs_changeset_stored_strip).
 */
BS_MUST_CHECK bs_err bs_changeset_stored_filter(bs_slice set,
                                                bs_route_keep keep, void *ctx,
                                                int summaries,
                                                bs_filter_verdict *vd,
                                                uint8_t **out, size_t *outn);
/*
 * The same, for a receiver that takes summaries, when where the set keeps
 * its summary is known (sum and ssig point into set: bs_setlog_summary):
 * a set the receiver is entitled to all of, or none of, is judged without
 * reading its changes.  Otherwise as bs_changeset_stored_filter.
 */
BS_MUST_CHECK bs_err bs_changeset_stored_filter_at(
    bs_slice set, bs_slice sum, bs_slice ssig, bs_route_keep keep, void *ctx,
    bs_filter_verdict *vd, uint8_t **out, size_t *outn);
/* 1 when stored set `set` leaves changes out (its `omitted` field is
 * there, or it is in summary form), read in place; also 1 when it does not
 * read. */
int bs_changeset_stored_omits(bs_slice set);
/*
 * protobuf-c for untrusted bytes, as the decoders here use it; exported for
 * envelope.c and for the protobuf-c reference decoder of the tests
 * (tests/lib/changeset_ref.c).
 *
 * bs_changeset_pb_unpack: unpack len bytes as desc with every allocation
 * counted against 4 * len + 64 KiB (P21); NULL when they do not decode or
 * the cap is reached.  Free the message with bs_changeset_pb_free (NULL is
 * a no-op).  bs_changeset_pb_canonical: 1 when m packs back to exactly buf
 * (canonical encoding, docs/protocol.md 2.8).
 */
struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;
void *bs_changeset_pb_unpack(const struct ProtobufCMessageDescriptor *desc,
                             const uint8_t *buf, size_t len);
void bs_changeset_pb_free(void *m);
int bs_changeset_pb_canonical(const struct ProtobufCMessage *m,
                              const uint8_t *buf, size_t len);

#include "csbuild.h"
#include "envelope.h"

#endif
