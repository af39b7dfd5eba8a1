/*
 * changeset.h - building, sealing, decoding and verifying signed change sets
 * (the wire format of proto/branchsync.proto; the byte-level rules are in
 * docs/protocol.md).
 *
 * An origin batches its changes into sets.  The signed bytes are the
 * SetHeader, which lists the BLAKE2b-256 hash of every change's bytes, so
 * one Ed25519 signature covers the whole batch and a relay may leave changes
 * out (sending only their index) while the rest still verifies (INV-4).
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
#define BS_SET_MAX_BYTES    (8u << 20) /* one set, encoded */
#define BS_CHANGE_MAX_BYTES (2u << 20) /* one change, encoded */
#define BS_SEEN_MAX         4096       /* streams in a header's vector */

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

/* What the origin puts in a header besides the changes. */
typedef struct bs_seal {
    uint8_t infobase[BS_INFOBASE_LEN];
    uint8_t origin[BS_PK_LEN];
    uint8_t inc[BS_INC_LEN];
    int has_prev;
    uint8_t prev_hash[BS_HASH_LEN];
    const bs_pos *seen;
    size_t nseen;
    uint64_t created_ms;
} bs_seal;

/* Accumulates encoded changes of one stream until sealed. */
typedef struct bs_csbuild {
    bs_arena arena;
    size_t n, cap, bytes;
    uint64_t first_seq;
    bs_slice *changes;
    uint8_t (*hashes)[BS_HASH_LEN];
} bs_csbuild;

void bs_csbuild_init(bs_csbuild *b);
void bs_csbuild_fini(bs_csbuild *b);
/* Encode and add one change (seq must follow the previous one). */
BS_MUST_CHECK bs_err bs_csbuild_add(bs_csbuild *b, const bs_change *ch);
/* 1 when the next change should go to a new set. */
int bs_csbuild_full(const bs_csbuild *b);
size_t bs_csbuild_count(const bs_csbuild *b);

/*
 * Seal the accumulated changes into a signed ChangeSet: its encoded size is
 * bs_csbuild_sealed_size(), written by bs_csbuild_seal_into() to out, and
 * the header's hash (the chain link) to hash.  Then the builder is empty.
 */
typedef struct bs_sealed bs_sealed;
BS_MUST_CHECK bs_err bs_csbuild_seal(bs_csbuild *b, const bs_seal *s,
                                     const uint8_t *sk, bs_sealed **out);
size_t bs_sealed_size(const bs_sealed *x);
void bs_sealed_write(const bs_sealed *x, uint8_t *out);
const uint8_t *bs_sealed_hash(const bs_sealed *x);
uint64_t bs_sealed_first(const bs_sealed *x);
uint64_t bs_sealed_last(const bs_sealed *x);
void bs_sealed_free(bs_sealed *x);

/* ---- the receiver's side ---- */

/* A decoded change set; owns its unpacked messages, borrows `raw`. */
typedef struct bs_csview {
    bs_slice raw;    /* the exact received bytes (owned copy) */
    bs_slice header; /* signed bytes, inside raw */
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
    size_t count;          /* last - first + 1 */
    uint8_t *present;      /* count flags: 1 if the change's bytes are here */
    bs_slice *changes;     /* count slices; empty for omitted ones */
    void *pb_set, *pb_hdr; /* unpacked protobuf messages */
    int verified;          /* the origin's signature was checked (pass 1) */
} bs_csview;

/*
 * Decode and shape-check a change set: sizes capped before allocation
 * (P21), the header parsed from the exact bytes, ids of the right length,
 * one hash per seq, omitted indexes in range and unique, and every present
 * change's hash equal to its entry in the header.  Does not verify the
 * signature.  BS_EMALFORMED with detail on any defect.
 */
BS_MUST_CHECK bs_err bs_changeset_decode(const uint8_t *buf, size_t len,
                                         bs_csview **out, bs_errbuf *err);
/* Verify the origin's signature over the header (S1).  BS_EBADSIG. */
BS_MUST_CHECK bs_err bs_changeset_verify(const bs_csview *v,
                                         const uint8_t pk[BS_PK_LEN]);
/*
 * Decode present change i (0-based) into *out, allocating from a.
 * BS_EMALFORMED if its seq is not first + i or a name is invalid.
 */
BS_MUST_CHECK bs_err bs_changeset_change(const bs_csview *v, size_t i,
                                         bs_arena *a, bs_change *out,
                                         bs_errbuf *err);
/* The same with protobuf-c and a re-encoding check: the reference the fast
 * decoder above is tested against (slower; not used on the data path). */
BS_MUST_CHECK bs_err bs_changeset_change_pb(const bs_csview *v, size_t i,
                                            bs_arena *a, bs_change *out,
                                            bs_errbuf *err);
void bs_changeset_free(bs_csview *v);

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
/* The signed header bytes inside a stored set. */
BS_MUST_CHECK bs_err bs_changeset_stored_header(bs_slice set, bs_slice *hdr);

/* ---- the exchange envelope (unsigned; outside the origins' bytes) ---- */

typedef struct bs_envelope {
    uint32_t version;
    uint8_t infobase[BS_INFOBASE_LEN];
    uint8_t hub[BS_PK_LEN];
    uint8_t sender[BS_PK_LEN];
    int has_receiver;
    uint8_t receiver[BS_PK_LEN];
    bs_pos *ack; /* malloc'd: the sender's version vector */
    size_t nack;
    uint64_t created_ms;
    char sender_name[BS_NODE_NAME_MAX + 1];
    uint32_t sender_role;
    uint8_t sender_inc[BS_INC_LEN];
    uint64_t message_no;
} bs_envelope;

/* Encode e; *out is malloc'd. */
BS_MUST_CHECK bs_err bs_envelope_encode(const bs_envelope *e, uint8_t **out,
                                        size_t *n);
/* Decode and shape-check; BS_EMALFORMED.  Free with bs_envelope_fini. */
BS_MUST_CHECK bs_err bs_envelope_decode(const uint8_t *buf, size_t n,
                                        bs_envelope *e, bs_errbuf *err);
void bs_envelope_fini(bs_envelope *e);

/* Add already-encoded change bytes (re-sealing our own history). */
BS_MUST_CHECK bs_err bs_csbuild_add_raw(bs_csbuild *b, uint64_t seq,
                                        bs_slice bytes);

#endif
