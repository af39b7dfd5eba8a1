/*
 * retry.h - held sets outside an exchange: when they may apply, and
 * retrying them then (docs/protocol.md 4.5).  An exchange retries the held
 * sets as it goes; the daemon also retries them on a timer, so that a set
 * held for its clock applies when its time comes although no traffic
 * arrives, and sets held for another reason are retried every so often.
 */
#ifndef BS_RETRY_H
#define BS_RETRY_H

#include "exchange.h"

/* What is held, and when it may apply. */
typedef struct bs_retry_due {
    uint64_t waiting;      /* held sets (kind H), every reason */
    uint64_t clock_held;   /* of which held for their clock (A12) */
    uint64_t clock_due_ms; /* the earliest wall time at which one of those
                              passes A12 and is still in the future; 0 if
                              none */
    uint64_t clock_ready;  /* of those, how many pass A12 already */
} bs_retry_due;

/*
 * Look at the held table (any transaction): a set held for its clock
 * passes A12 once now_ms + max_skew_ms reaches its greatest stamp.
 * A held set that no longer decodes counts as waiting, with no time.
 */
BS_MUST_CHECK bs_err bs_retry_when(bs_txn *t, uint64_t now_ms,
                                   uint64_t max_skew_ms, bs_retry_due *out);

/*
 * Retry every held set in one write transaction (bs_apply_held).  *st
 * counts what applied (sets, changes, conflicts) and what was refused now
 * (held sets held again are not counted; bs_retry_when tells what waits).
 * A local fault fails it (err names it).
 */
BS_MUST_CHECK bs_err bs_retry_held(bs_store *s, bs_clock clock,
                                   uint64_t max_skew_ms, bs_xstats *st,
                                   bs_errbuf *err);

#endif
