/*
 * vv.h - version vectors and stream positions.
 *
 * A stream is one incarnation of one origin node, named by its 48-byte key
 * (origin public key || incarnation ID).  A version vector holds, per
 * stream, the highest seq held with no gap before it (INV-2); it travels
 * in set headers (`seen`: what the writer had seen) and envelopes (`ack`:
 * what the sender holds).  A vector here is a plain array of positions in
 * no particular order, at most one per stream; these helpers are the only
 * code that searches one.  All are pure.
 */
#ifndef BS_VV_H
#define BS_VV_H

#include "crypto.h"

#define BS_STREAM_KEY_LEN (BS_PK_LEN + BS_INC_LEN)

/* A position in a stream: (origin, incarnation, seq). */
typedef struct bs_pos {
    uint8_t origin[BS_PK_LEN];
    uint8_t inc[BS_INC_LEN];
    uint64_t seq;
} bs_pos;

/* The entry of stream key (origin || incarnation) in v[0..n), or NULL. */
const bs_pos *bs_vv_find(const bs_pos *v, size_t n, const uint8_t *key);

/* What v holds of stream key; 0 when it holds nothing of it. */
uint64_t bs_vv_get(const bs_pos *v, size_t n, const uint8_t *key);

/* 1 when v holds stream key up to seq or beyond. */
int bs_vv_covers(const bs_pos *v, size_t n, const uint8_t *key, uint64_t seq);

/* The 48-byte stream key of p. */
void bs_vv_key(const bs_pos *p, uint8_t key[BS_STREAM_KEY_LEN]);

/*
 * A vector indexed by stream key, for looking up many streams in one
 * vector (an exchange looks up every local stream in its peer's vector:
 * with a thousand branches, streams x entries was a million compares per
 * exchange).  It borrows v, which must outlive it; bs_vv_index_fini frees
 * what init allocated (also after a failed init).  BS_ENOMEM.
 */
typedef struct bs_vv_index {
    const bs_pos *v;
    uint32_t *slot; /* entry + 1 per slot, 0 free; NULL: linear look-ups */
    size_t n, cap;
} bs_vv_index;
BS_MUST_CHECK bs_err bs_vv_index_init(bs_vv_index *x, const bs_pos *v,
                                      size_t n);
/* As bs_vv_get(v, n, key): the first entry of the key wins. */
uint64_t bs_vv_index_get(const bs_vv_index *x, const uint8_t *key);
void bs_vv_index_fini(bs_vv_index *x);

#endif
