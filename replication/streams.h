/*
 * streams.h - the node's table of change streams and its version vector.
 *
 * A stream is one incarnation of one origin node: (origin public key,
 * incarnation ID).  Changes are numbered per stream from 1 and a change is
 * named by (origin, incarnation, seq) (INV-1).  The table gives each stream
 * a small local index (used inside stored records) and remembers, per
 * stream, the highest seq held with no gap (the version vector entry,
 * INV-2) and the hash of the set ending there (the chain, P16).
 */
#ifndef BS_STREAMS_H
#define BS_STREAMS_H

#include "store.h"
#include "vv.h"

#define BS_STREAM_QUARANTINED 1u /* two contents for one position (S6) */
#define BS_STREAM_REVOKED     2u /* origin removed by the hub */
#define BS_STREAM_RELEASED    4u /* the hub settled a fork (quarantine.h) */

typedef struct bs_stream {
    uint32_t idx;                        /* from 1 */
    uint8_t key[BS_PK_LEN + BS_INC_LEN]; /* origin || incarnation */
    uint64_t seq;                        /* highest contiguous seq held */
    uint8_t last_hash[BS_HASH_LEN];      /* header hash of the set at seq */
    uint32_t flags;
    char note[96]; /* why quarantined, for status */
    /* not stored: a dry admission's count of sets it held and of stored
     * held sets it applied (admit.h) */
    uint32_t dry_held, dry_unheld;
} bs_stream;

typedef struct bs_streamtab {
    size_t n, cap;
    bs_stream *v; /* v[idx - 1] */
    /* An index by key for bs_streams_find: open addressing, position + 1
     * per slot, 0 free; hcap a power of two, at least twice n (a hub of
     * a thousand branches looked streams up linearly, peers x streams
     * times per status). */
    uint32_t *hix;
    size_t hcap;
} bs_streamtab;

/* Read the whole table (it is small: one entry per node incarnation). */
BS_MUST_CHECK bs_err bs_streams_load(bs_txn *t, bs_streamtab *tab);
/*
 * Bring a table read earlier up to date in part, for a reader that keeps
 * it across short transactions (a session sending set after set: with a
 * thousand branches, reading the whole table per set sent cost more than
 * the sets): the streams added since are read, and stream idx's entry
 * (position, chain head, flags) again.  The other entries may be older
 * than t.  BS_ESTORE, BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_streams_refresh(bs_txn *t, bs_streamtab *tab,
                                        uint32_t idx);
void bs_streams_fini(bs_streamtab *tab);

/* The stream of (origin, inc), or NULL. */
bs_stream *bs_streams_find(bs_streamtab *tab, const uint8_t *origin,
                           const uint8_t *inc);
bs_stream *bs_streams_get(bs_streamtab *tab, uint32_t idx);

/* Add a new, empty stream (write txn).  *out points into tab. */
BS_MUST_CHECK bs_err bs_streams_add(bs_txn *t, bs_streamtab *tab,
                                    const uint8_t *origin, const uint8_t *inc,
                                    bs_stream **out);
/* Add a new, empty stream to tab only (index 0: not in the store), for
 * dry runs that track positions without writing.  *out points into tab. */
BS_MUST_CHECK bs_err bs_streams_add_private(bs_streamtab *tab,
                                            const uint8_t *origin,
                                            const uint8_t *inc,
                                            bs_stream **out);
/* Persist one entry after changing it (write txn). */
BS_MUST_CHECK bs_err bs_streams_save(bs_txn *t, const bs_stream *s);

/* The vector of the streams in tab (those holding anything): *out is
 * malloc'd, n entries. */
BS_MUST_CHECK bs_err bs_streams_vector(const bs_streamtab *tab, bs_pos **out,
                                       size_t *n);

/* bs_order.stream_key callback: ctx is a bs_streamtab. */
const uint8_t *bs_streams_key(void *ctx, uint32_t idx);

#endif
