/*
 * csbuild.h - building and sealing change sets: the origin's side.
 *
 * A builder accumulates the encoded changes of one stream (bs_csbuild_add
 * encodes a bs_change by hand, byte for byte what protobuf-c would write),
 * and bs_csbuild_seal() signs them into one ChangeSet: the SetHeader lists
 * the BLAKE2b-256 hash of every change's bytes and the origin signs the
 * header (docs/protocol.md §3).  Decoding is changeset.h's.
 */
#ifndef BS_CSBUILD_H
#define BS_CSBUILD_H

#include "changeset.h"

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
    /* 1: the header carries the routes (SetHeader field 13, one per change,
     * docs/protocol.md 2.5); every change then needs its collection (added
     * with bs_csbuild_add, or named by bs_csbuild_route).  0: a version-1
     * header without them (the golden vector, tests). */
    int routes;
} bs_seal;

/* Accumulates encoded changes of one stream until sealed.  Caller-owned
 * storage: bs_csbuild_init, then bs_csbuild_fini. */
typedef struct bs_csbuild {
    bs_arena arena; /* the encoded changes */
    size_t n, cap, bytes;
    uint64_t first_seq;
    bs_slice *changes;
    uint8_t (*hashes)[BS_HASH_LEN];
    const char **rcoll, **rowner, **rbefore; /* each change's route (in
                                                the arena) */
} bs_csbuild;

void bs_csbuild_init(bs_csbuild *b);
void bs_csbuild_fini(bs_csbuild *b);
/*
 * Encode and add one change; its seq must follow the previous one's
 * (asserted).  The bytes are copied into the builder: ch stays the
 * caller's.  BS_EINVAL when the encoded change is over
 * BS_CHANGE_MAX_BYTES; BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_csbuild_add(bs_csbuild *b, const bs_change *ch);
/* 1 when the next change should go to a new set: BS_SET_MAX_CHANGES are
 * in, or the accounted bytes (each change plus 40) reached
 * BS_SET_MAX_BYTES - BS_CHANGE_MAX_BYTES, so the next change still fits. */
int bs_csbuild_full(const bs_csbuild *b);
size_t bs_csbuild_count(const bs_csbuild *b);

/*
 * Seal the accumulated changes (at least one) into a ChangeSet signed with
 * sk: bs_sealed_size() is its encoded size, bs_sealed_write() copies those
 * bytes to out, bs_sealed_hash() is the header's hash (the next set's
 * chain link), first and last its seq range.  Then the builder is empty.
 * *out is set only on BS_OK (free it with bs_sealed_free); on BS_ENOMEM
 * the builder keeps its changes.
 */
typedef struct bs_sealed bs_sealed;
BS_MUST_CHECK bs_err bs_csbuild_seal(bs_csbuild *b, const bs_seal *s,
                                     const uint8_t *sk, bs_sealed **out);
size_t bs_sealed_size(const bs_sealed *x);
void bs_sealed_write(const bs_sealed *x, uint8_t *out);
const uint8_t *bs_sealed_hash(const bs_sealed *x);
uint64_t bs_sealed_first(const bs_sealed *x);
uint64_t bs_sealed_last(const bs_sealed *x);
/* NULL is a no-op. */
void bs_sealed_free(bs_sealed *x);

/* Add already-encoded change bytes (copied), e.g. re-sealing our own
 * history; seq must follow the previous one's.  Its route has no
 * collection until bs_csbuild_route names one. */
BS_MUST_CHECK bs_err bs_csbuild_add_raw(bs_csbuild *b, uint64_t seq,
                                        bs_slice bytes);
/*
 * Set the route of the change added last (copied): coll (NULL keeps what
 * bs_csbuild_add took from the change), the owner of its record after it
 * and the owner just before it (NULL or "" for none; docs/protocol.md
 * 2.5).  BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_csbuild_route(bs_csbuild *b, const char *coll,
                                      const char *owner,
                                      const char *owner_before);

#endif
