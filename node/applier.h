/*
 * applier.h - the daemon's apply worker: one thread that applies the
 * change sets every session received (session.h, "Deferred apply"), the
 * sets that arrived together in one write transaction with one durable
 * commit (docs/design.md, "One event loop in the daemon").
 *
 * Why: applying a set costs a write transaction and an fsync.  Done in
 * the session step on the event loop, every socket, timer and control
 * request of the daemon waited behind it, and with hundreds of branches
 * syncing at once the hub's `status` and the CLI's ping waited seconds.
 * Here the loop only queues the sets and goes on; LMDB readers do not
 * block the writer, so `status` reads meanwhile.  One thread, because
 * LMDB has one writer anyway: more threads would only queue on its lock.
 *
 * Group commit (the idea of http_write.h): the worker takes everything
 * queued (at most max_sets sets, about max_bytes) and applies it in
 * arrival order in one transaction: held sets retried once (apply.h),
 * then each set admitted and carried out (admit.h, apply.h).  Each set
 * keeps its own outcome, as if applied alone:
 *  - a set that does not decode is refused before the transaction;
 *  - a set refused by admission aborts the transaction, is left out and
 *    the rest is applied again (at most once per refused set), so one
 *    link's bad set never makes another link's good sets fail;
 *  - a failure no single refusal explains (a local fault: the store is
 *    full, out of memory) falls back to one transaction per set, so each
 *    still gets its own outcome.
 * A set's outcome is reported only after the transaction that holds it
 * is committed durably (or was not committed at all), so whatever the
 * caller acknowledges on the strength of it (CREDIT, ACK) never precedes
 * durability.
 *
 * Threads: bs_applier_submit, bs_applier_done and the test hooks may be
 * called from any one thread (the daemon's loop); `done` is called on
 * the worker thread, once per batch, after its jobs are on the done list
 * (the daemon wakes its loop with uv_async_send there).
 */
#ifndef BS_APPLIER_H
#define BS_APPLIER_H

#include "../replication/clock.h"
#include "../replication/store.h"

/* Defaults: sets per transaction, and bytes of sets (about). */
#define BS_APPLIER_MAX_SETS  64
#define BS_APPLIER_MAX_BYTES (256u << 10)

/* One received set and, once done, its outcome.  Owned by the applier
 * from bs_applier_submit until bs_applier_done hands it back; the caller
 * then frees it with bs_apply_job_free. */
typedef struct bs_apply_job {
    uint64_t owner; /* the caller's tag: whose set it is */
    uint8_t *set;   /* the SET's bytes (after the type byte) */
    size_t n;
    bs_err rv;                   /* BS_OK: applied, held or duplicate */
    char why[BS_ERRMSG_LEN];     /* rv's detail */
    uint64_t changes, conflicts; /* applied by this set (and, for the
                                    first set of a batch, by the held
                                    sets it retried) */
    uint64_t batch_us;           /* how long its batch took, commit included */
    uint32_t batch_sets;         /* how many sets its transaction held */
    struct bs_apply_job *next;
} bs_apply_job;

typedef struct bs_applier_cfg {
    bs_store *store; /* borrowed; outlives the applier */
    bs_clock clock;
    uint64_t max_skew_ms;
    size_t max_sets;         /* 0: BS_APPLIER_MAX_SETS */
    size_t max_bytes;        /* 0: BS_APPLIER_MAX_BYTES */
    void (*done)(void *ctx); /* on the worker: jobs are done (may be NULL) */
    void *ctx;
} bs_applier_cfg;

typedef struct bs_applier bs_applier;

/* Start the worker.  *out is set only on BS_OK; BS_ENOMEM when the
 * thread or its locks cannot be made. */
BS_MUST_CHECK bs_err bs_applier_new(const bs_applier_cfg *cfg,
                                    bs_applier **out);
/* Stop the worker after the batch it is applying (which commits or not,
 * as a whole) and free every job it still holds, done or not.  NULL is a
 * no-op. */
void bs_applier_free(bs_applier *a);

/* Queue set (n bytes, malloc'd) of `owner` for the next batch.  Takes
 * set on BS_OK only (BS_ENOMEM: the caller keeps it). */
BS_MUST_CHECK bs_err bs_applier_submit(bs_applier *a, uint64_t owner,
                                       uint8_t *set, size_t n);
/* The jobs done since the last call, oldest first (linked by next), or
 * NULL; the caller frees each with bs_apply_job_free. */
bs_apply_job *bs_applier_done(bs_applier *a);
void bs_apply_job_free(bs_apply_job *j);

/* Transactions committed and sets in them, since the start. */
void bs_applier_stats(bs_applier *a, uint64_t *batches, uint64_t *sets);

/*
 * For tests: with hold set, the worker takes no new batch, so sets pile
 * up; clearing it lets them go as one batch.  bs_applier_queued says how
 * many are queued and not yet taken; bs_applier_wait blocks until jobs
 * are done (or timeout_ms passes): 1 if some are.
 */
void bs_applier_hold(bs_applier *a, int hold);
size_t bs_applier_queued(bs_applier *a);
int bs_applier_wait(bs_applier *a, int timeout_ms);

#endif
