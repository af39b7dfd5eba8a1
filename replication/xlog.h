/*
 * xlog.h - the exchange history (`branchsync log`): one entry per exchange,
 * file or network, in time order; the oldest entries are dropped past
 * BS_XLOG_MAX.  Adding an entry also updates the peer's last success or
 * last error (peers.h).  Entries are ExchangeEntry records
 * (proto/storage.proto) under u64be time_ms | u64be n, n a counter kept
 * in the metadata ("xlog.seq") that only grows: in time order, entries of
 * the same time in the order added, none ever overwriting another.
 */
#ifndef BS_XLOG_H
#define BS_XLOG_H

#include "common.h"
#include "store.h"

#define BS_XLOG_MAX       10000
#define BS_XLOG_ERROR_MAX 511

typedef struct bs_xlog_entry {
    uint64_t time_ms, duration_ms;
    char peer[BS_NODE_NAME_MAX + 1];
    char via[16];       /* "network" or "file" */
    char direction[16]; /* "both", "out" (export), "in" or "in (replay)" */
    uint64_t sets_sent, sets_received, changes, conflicts, bytes;
    char error[BS_XLOG_ERROR_MAX + 1]; /* "" on success */
} bs_xlog_entry;

/* Append e and update the peer's last success / last error (write txn). */
BS_MUST_CHECK bs_err bs_xlog_add(bs_txn *t, const bs_xlog_entry *e);

/*
 * The newest `limit` entries (of peer `peer`, or of all when NULL), oldest
 * first, into *v (malloc'd; free it) and *n.  BS_ESTORE for an entry that
 * does not decode.
 */
BS_MUST_CHECK bs_err bs_xlog_list(bs_txn *t, const char *peer, size_t limit,
                                  bs_xlog_entry **v, size_t *n);

/* Store e as it was recorded, without touching the peer (the store
 * upgrade; write txn). */
BS_MUST_CHECK bs_err bs_xlog_put(bs_txn *t, const bs_xlog_entry *e);

#endif
