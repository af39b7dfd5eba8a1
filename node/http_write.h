/*
 * http_write.h - group commit of the HTTP API's single-record writes
 * (PUT and DELETE of one record; docs/api.md, "Durability and batching").
 *
 * A write durable on its own costs one fsync (about 0.6 ms), which caps
 * one-transaction-per-write near 1,600 writes/s whatever the number of
 * clients.  Here concurrent writes share the fsync: they queue, and one
 * transaction applies all of them in arrival order through the local
 * write API (local.h) - one signed change set, one commit.  Each caller
 * returns only once the transaction holding its write is committed
 * (LMDB's sync), with its own outcome.
 *
 * Callers sleep on a futex of their own; the leader wakes each one
 * without holding the queue's mutex, so a woken caller runs on at once.
 *
 * Who commits: the first waiting caller, not a writer thread (the scheme
 * of LevelDB's DBImpl::Write).  The caller at the head of the queue is
 * the leader: it takes everything queued (at most BS_HTTP_BATCH_MAX),
 * commits it, hands every other caller in the batch its outcome, and
 * wakes the new head, which leads the next batch.  A lone writer thus
 * commits at once on its own thread (no hand-off to another thread and
 * back), there is no thread to start or stop, and while one batch's
 * fsync runs the next batch gathers by itself.
 *
 * Outcomes: a write that fails (a rule forbids it: BS_EPERM; a delete of
 * a record that is not live: BS_ENOTFOUND; too large) fails alone.  The
 * batch transaction is aborted, the failing write is left out and the
 * rest is applied again in a new transaction (at most once per failing
 * write).  A failure no single write caused (the clock policy refuses
 * local writes, the store is full) falls back to one transaction per
 * write, so each still gets its own outcome.  Writes are checked as if
 * made one after another in queue order: a DELETE queued after a PUT of
 * the same record sees it.
 *
 * Threads: bs_http_write may run on any number of threads at once; it
 * blocks its caller until the write is durable.  The caller must not hold
 * a transaction of its own (store.h).
 */
#ifndef BS_HTTP_WRITE_H
#define BS_HTTP_WRITE_H

#include <pthread.h>

#include "../replication/records.h"

#define BS_HTTP_BATCH_MAX 512 /* writes in one transaction at most */

typedef struct bs_http_wreq bs_http_wreq; /* one queued write (private) */

/* Caller-owned; bs_http_writeq_init / bs_http_writeq_fini. */
typedef struct bs_http_writeq {
    pthread_mutex_t mu;
    pthread_cond_t held_cv; /* tests: bs_http_writeq_hold */
    bs_http_wreq *head, *tail;
    size_t pending; /* queued, not yet taken into a batch */
    int held;
    /* A batch committed with at least one write that changed something:
     * push it to online peers.  Called once per transaction, by the
     * leader, after the commit and before the callers are answered. */
    void (*changed)(void *ctx);
    void *ctx;
    /* counters (atomic; GET /metrics) */
    uint64_t batches; /* transactions committed */
    uint64_t writes;  /* writes that succeeded */
} bs_http_writeq;

/* changed (may be NULL) and ctx are kept.  BS_ENOMEM when the mutex or
 * the condition variable cannot be made. */
BS_MUST_CHECK bs_err bs_http_writeq_init(bs_http_writeq *q,
                                         void (*changed)(void *ctx), void *ctx);
/* No bs_http_write may be running. */
void bs_http_writeq_fini(bs_http_writeq *q);

/*
 * Apply w (names already checked: records.h) as core c, batched with
 * whatever other threads write at the same time, and return once it is
 * durable, or failed: its own result, with the detail in err.  w and its
 * fields are borrowed until the return (the fields' versions are set).
 * c must be the same core for every caller of one queue.
 *
 * record (NULL: not wanted; *record must be NULL on the call) gets the
 * record as `get` prints it, read in the write's own transaction right
 * after the write (malloc'd; the caller frees it, whatever the result).
 * It stays NULL when it could not be made.
 */
BS_MUST_CHECK bs_err bs_http_write(bs_http_writeq *q, const bs_core *c,
                                   bs_write *w, char **record, bs_errbuf *err);

/*
 * For tests: with hold set, a leader waits before it takes its batch, so
 * writes pile up; clearing it lets them go as one batch.  pending says
 * how many are queued and not yet taken.
 */
void bs_http_writeq_hold(bs_http_writeq *q, int hold);
size_t bs_http_writeq_pending(bs_http_writeq *q);

#endif
