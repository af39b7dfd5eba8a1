/*
 * xlog.h - the exchange history (`branchsync log`): one JSON object per
 * exchange, file or network, in time order; the oldest entries are dropped
 * past BS_XLOG_MAX.  Also keeps each peer's last success and last error.
 */
#ifndef BS_XLOG_H
#define BS_XLOG_H

#include "store.h"

#define BS_XLOG_MAX 10000

typedef struct bs_xlog_entry {
    uint64_t time_ms, duration_ms;
    const char *peer;
    const char *via;       /* "network" or "file" */
    const char *direction; /* "both", "out" (export) or "in" (import) */
    uint64_t sets_sent, sets_received, changes, conflicts, bytes;
    const char *error; /* NULL or "" on success */
} bs_xlog_entry;

/* Append e and update the peer's last success / last error (write txn). */
BS_MUST_CHECK bs_err bs_xlog_add(bs_txn *t, const bs_xlog_entry *e);

/* The newest `limit` entries (of one peer, or all when peer is NULL) as a
 * JSON array, oldest first; *json malloc'd. */
BS_MUST_CHECK bs_err bs_xlog_list(bs_txn *t, const char *peer, size_t limit,
                                  char **json);

#endif
