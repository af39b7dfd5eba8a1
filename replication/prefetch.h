/*
 * prefetch.h - an exchange file's change sets decoded ahead, on a second
 * thread, while the caller applies the ones before (exchange.c's pass 2).
 *
 * Why: applying a file is one thread's work on LMDB's one writer, and
 * about a third of it is decoding each set and checking its origin's
 * signature, which depend on nothing but the set's bytes.  A 2-core
 * office machine has a core idle meanwhile.
 *
 * What stays the same: the caller asks for the sets in order and gets
 * each exactly as bs_changeset_decode gives it (the same view, the same
 * refusal with the same message), the signature marked checked only
 * when it verified (admission checks it otherwise, A4, and refuses with
 * its own message).  Nothing here touches the store.  Memory: at most
 * BS_PREFETCH_SETS sets and about BS_PREFETCH_BYTES of their bytes are
 * decoded ahead.  A set asked again (the transaction ran again: the map
 * grew) or out of order is decoded by the caller's thread.
 */
#ifndef BS_PREFETCH_H
#define BS_PREFETCH_H

#include "changeset.h"
#include "snapshot.h"

#define BS_PREFETCH_SETS  32
#define BS_PREFETCH_BYTES (8u << 20)

typedef struct bs_prefetch bs_prefetch;

/* Start decoding sets raw[0..n) (borrowed: valid until bs_prefetch_stop)
 * on a thread: NULL when the thread could not start (the caller decodes
 * them itself). */
bs_prefetch *bs_prefetch_start(const bs_slice *raw, size_t n);

/* Set i: *out (the caller frees it, bs_changeset_free) or the decoding's
 * refusal.  BS_EMALFORMED and the like as bs_changeset_decode, BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_prefetch_get(bs_prefetch *p, size_t i, bs_csview **out,
                                     bs_errbuf *err);

/* Stop the thread and free what it decoded and nobody took.  NULL is a
 * no-op. */
void bs_prefetch_stop(bs_prefetch *p);

/*
 * The record snapshots of a batch (snapshot.h) decoded ahead the same way
 * (a seed's pass 2: the second thread decodes while the first merges),
 * in chunks of BS_SNAPAHEAD_CHUNK, at most BS_SNAPAHEAD_RING chunks
 * ahead, each chunk's snapshots in one arena of its own.  The caller
 * takes them in order: each exactly as bs_snapbatch_snap_into gives it,
 * and the first refusal where it comes.
 */
#define BS_SNAPAHEAD_CHUNK 512
#define BS_SNAPAHEAD_RING  4

typedef struct bs_snapahead bs_snapahead;

/* Start decoding b's snapshots (b borrowed until bs_snapahead_stop):
 * NULL when the thread could not start. */
bs_snapahead *bs_snapahead_start(const bs_snapbatch *b);
/* The next snapshot (*out valid until the next call): BS_OK, BS_ENOTFOUND
 * after the last, or the body's refusal (bs_snapbatch_snap_into's). */
BS_MUST_CHECK bs_err bs_snapahead_next(bs_snapahead *a, bs_snap **out,
                                       bs_errbuf *err);
/* Stop the thread and free its memory.  NULL is a no-op. */
void bs_snapahead_stop(bs_snapahead *a);

#endif
