/*
 * status.h - the node's state as one JSON document (`status --json`):
 * identity, change log, streams held back or quarantined, per peer what is
 * pending each way and how old the oldest unacknowledged change is, and
 * the conflict counts.  Read-only; any transaction.
 */
#ifndef BS_STATUS_H
#define BS_STATUS_H

#include "meta.h"
#include "store.h"

typedef struct json_t json_t;

typedef struct bs_status_opts {
    uint64_t now_ms;
    uint64_t retention_ms;
    int count_records; /* scan records for per-collection counts */
} bs_status_opts;

BS_MUST_CHECK bs_err bs_status_json(bs_txn *t, const bs_meta *m,
                                    const bs_status_opts *o, json_t **out);

#endif
