/*
 * digest.h - an order-independent fingerprint of the live user data.
 *
 * Two nodes holding the same live records have equal digests, whatever the
 * history that led there: versions, tombstones, the log, system collections
 * (names starting with '_') and node-local state are left out.  The exact
 * byte stream hashed is specified in docs/protocol.md §10.
 */
#ifndef BS_DIGEST_H
#define BS_DIGEST_H

#include "crypto.h"
#include "store.h"

/*
 * Digest of the live records of the given collections (all user
 * collections when ncoll is 0) into out; *nrecords counts them.
 */
BS_MUST_CHECK bs_err bs_digest(bs_txn *t, const char *const *coll, size_t ncoll,
                               uint8_t out[BS_HASH_LEN], uint64_t *nrecords,
                               bs_errbuf *err);

/*
 * The same over the live records keep(ctx, key, record) returns 1 for
 * (key is collection \0 id): the data of one scope (scope.h).
 */
struct bs_record;
typedef int (*bs_digest_keep)(void *ctx, bs_slice key,
                              const struct bs_record *r);
BS_MUST_CHECK bs_err bs_digest_where(bs_txn *t, const char *const *coll,
                                     size_t ncoll, bs_digest_keep keep,
                                     void *ctx, uint8_t out[BS_HASH_LEN],
                                     uint64_t *nrecords, bs_errbuf *err);
#endif
