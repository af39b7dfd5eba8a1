/*
 * applier.c - the daemon's apply worker: a queue of received sets, one
 * thread that applies what is queued in one transaction, and the done
 * list it hands back (applier.h).
 */
#include "applier.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "../replication/apply.h"

struct bs_applier {
    bs_applier_cfg cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;       /* the worker waits here for sets */
    pthread_cond_t landed;     /* bs_applier_wait waits here for done jobs */
    bs_apply_job *head, *tail; /* queued, not taken */
    bs_apply_job *done, *done_tail;
    size_t queued;
    int stop, held;
    uint64_t batches, sets; /* under mu */
};

/* ==== one batch: one transaction ==== */

/* A job of the batch and its decoded set (NULL: refused already). */
typedef struct item {
    bs_apply_job *j;
    bs_csview *v;
    int excluded;
} item;

typedef struct batch {
    const bs_applier_cfg *cfg;
    item *v;
    size_t n;
    size_t failed; /* the set a refusal names; SIZE_MAX: none */
} batch;

static uint64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Apply the batch's sets that are not excluded, in arrival order; stop at
 * the first refusal (the transaction is then aborted) and say which. */
static bs_err
batch_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    batch *b = arg;
    bs_apply ap;
    size_t first = SIZE_MAX;
    uint64_t c0, k0;
    bs_err rv;

    b->failed = SIZE_MAX;
    for (size_t i = 0; i < b->n; i++) {
        b->v[i].j->changes = b->v[i].j->conflicts = 0;
        if (first == SIZE_MAX && !b->v[i].excluded)
            first = i;
    }
    rv = bs_apply_begin(&ap, t, b->cfg->clock, b->cfg->max_skew_ms, err);
    if (rv == BS_OK)
        rv = bs_apply_held(&ap, err);     /* their time may have come */
    if (rv == BS_OK && first != SIZE_MAX) /* counted with the first set */
        b->v[first].j->changes = ap.changes;
    for (size_t i = 0; rv == BS_OK && i < b->n; i++) {
        bs_apply_job *j = b->v[i].j;
        bs_errbuf e1 = {{0}};
        if (b->v[i].excluded)
            continue;
        c0 = ap.changes;
        k0 = ap.conflicts;
        if ((rv = bs_apply_set(&ap, b->v[i].v, &e1)) != BS_OK) {
            snprintf(j->why, sizeof j->why, "%s", bs_errmsg(&e1, rv));
            if (!bs_err_local(rv))
                b->failed = i;
            else if (err != NULL)
                snprintf(err->msg, sizeof err->msg, "%s", j->why);
            break;
        }
        j->changes += ap.changes - c0;
        j->conflicts += ap.conflicts - k0;
    }
    if (rv == BS_OK)
        rv = bs_apply_finish(&ap, err);
    bs_apply_fini(&ap);
    return rv;
}

/* Decode each set; a set that does not decode is refused at once. */
static size_t
decode_all(item *v, size_t n)
{
    size_t left = 0;

    for (size_t i = 0; i < n; i++) {
        bs_errbuf e1 = {{0}};
        bs_apply_job *j = v[i].j;
        j->rv = bs_changeset_decode(j->set, j->n, &v[i].v, &e1);
        if (j->rv != BS_OK) {
            snprintf(j->why, sizeof j->why, "%s", bs_errmsg(&e1, j->rv));
            v[i].excluded = 1;
        } else {
            left++;
        }
    }
    return left;
}

/* Commit the batch: one transaction less the refused sets; one per set
 * when it fails as a whole. */
static void
run_batch(bs_applier *a, item *v, size_t n)
{
    batch b = {&a->cfg, v, n, SIZE_MAX};
    bs_errbuf err = {{0}};
    uint64_t t0 = mono_us(), commits = 0, committed = 0;
    size_t left = decode_all(v, n);
    bs_err rv = BS_OK;

    while (left > 0) {
        rv = bs_store_write(a->cfg.store, batch_txn, &b, &err);
        if (rv == BS_OK || b.failed == SIZE_MAX)
            break;
        v[b.failed].j->rv = rv; /* its detail is in why */
        v[b.failed].excluded = 1;
        left--;
    }
    if (left > 0 && rv == BS_OK) {
        commits = 1;
        committed = left;
    } else if (left > 0) {
        /* No single refusal explains it: each set alone, its own outcome. */
        for (size_t i = 0; i < n; i++) {
            batch one = {&a->cfg, &v[i], 1, SIZE_MAX};
            bs_errbuf e1 = {{0}};
            if (v[i].excluded)
                continue;
            v[i].j->rv = bs_store_write(a->cfg.store, batch_txn, &one, &e1);
            if (v[i].j->rv != BS_OK && v[i].j->why[0] == '\0')
                snprintf(v[i].j->why, sizeof v[i].j->why, "%s",
                         bs_errmsg(&e1, v[i].j->rv));
            commits += v[i].j->rv == BS_OK;
            committed += v[i].j->rv == BS_OK;
        }
    }
    for (size_t i = 0; i < n; i++) {
        bs_apply_job *j = v[i].j;
        if (!v[i].excluded && j->rv == BS_OK)
            j->why[0] = '\0';
        if (j->rv != BS_OK)
            j->changes = j->conflicts = 0;
        j->batch_us = mono_us() - t0;
        j->batch_sets = (uint32_t)committed;
        bs_changeset_free(v[i].v);
        v[i].v = NULL;
    }
    pthread_mutex_lock(&a->mu);
    a->batches += commits;
    a->sets += committed;
    pthread_mutex_unlock(&a->mu);
}

/* ==== the worker ==== */

/* Take the next batch off the queue (mu held): at most max_sets sets, and
 * no more once max_bytes is reached. */
static size_t
take(bs_applier *a, item *v)
{
    size_t n = 0, bytes = 0;

    while (a->head != NULL && n < a->cfg.max_sets &&
           (n == 0 || bytes < a->cfg.max_bytes)) {
        bs_apply_job *j = a->head;
        a->head = j->next;
        j->next = NULL;
        bytes += j->n;
        v[n++] = (item){j, NULL, 0};
    }
    if (a->head == NULL)
        a->tail = NULL;
    a->queued -= n;
    return n;
}

static void *
worker(void *arg)
{
    bs_applier *a = arg;
    item *v = calloc(a->cfg.max_sets, sizeof *v);
    size_t n;

    BS_ASSERT(v != NULL); /* checked by bs_applier_new */
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->stop && (a->head == NULL || a->held))
            pthread_cond_wait(&a->work, &a->mu);
        if (a->stop)
            break;
        n = take(a, v);
        pthread_mutex_unlock(&a->mu);
        run_batch(a, v, n);
        pthread_mutex_lock(&a->mu);
        for (size_t i = 0; i < n; i++) {
            if (a->done_tail != NULL)
                a->done_tail->next = v[i].j;
            else
                a->done = v[i].j;
            a->done_tail = v[i].j;
        }
        pthread_cond_broadcast(&a->landed);
        pthread_mutex_unlock(&a->mu);
        if (a->cfg.done != NULL)
            a->cfg.done(a->cfg.ctx);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    free(v);
    return NULL;
}

bs_err
bs_applier_new(const bs_applier_cfg *cfg, bs_applier **out)
{
    bs_applier *a = calloc(1, sizeof *a);
    void *probe;

    if (a == NULL)
        return BS_ENOMEM;
    a->cfg = *cfg;
    if (a->cfg.max_sets == 0)
        a->cfg.max_sets = BS_APPLIER_MAX_SETS;
    if (a->cfg.max_bytes == 0)
        a->cfg.max_bytes = BS_APPLIER_MAX_BYTES;
    if ((probe = calloc(a->cfg.max_sets, sizeof(item))) == NULL)
        goto err_after_alloc;
    free(probe);
    if (pthread_mutex_init(&a->mu, NULL) != 0)
        goto err_after_alloc;
    if (pthread_cond_init(&a->work, NULL) != 0)
        goto err_after_mutex;
    if (pthread_cond_init(&a->landed, NULL) != 0)
        goto err_after_work;
    if (pthread_create(&a->thread, NULL, worker, a) != 0)
        goto err_after_landed;
    *out = a;
    return BS_OK;
err_after_landed:
    pthread_cond_destroy(&a->landed);
err_after_work:
    pthread_cond_destroy(&a->work);
err_after_mutex:
    pthread_mutex_destroy(&a->mu);
err_after_alloc:
    free(a);
    return BS_ENOMEM;
}

static void
free_list(bs_apply_job *j)
{
    while (j != NULL) {
        bs_apply_job *next = j->next;
        bs_apply_job_free(j);
        j = next;
    }
}

void
bs_applier_free(bs_applier *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_broadcast(&a->work);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    free_list(a->head);
    free_list(a->done);
    pthread_cond_destroy(&a->landed);
    pthread_cond_destroy(&a->work);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* ==== the caller's side ==== */

bs_err
bs_applier_submit(bs_applier *a, uint64_t owner, uint8_t *set, size_t n)
{
    bs_apply_job *j = calloc(1, sizeof *j);

    if (j == NULL)
        return BS_ENOMEM;
    j->owner = owner;
    j->set = set;
    j->n = n;
    pthread_mutex_lock(&a->mu);
    if (a->tail != NULL)
        a->tail->next = j;
    else
        a->head = j;
    a->tail = j;
    a->queued++;
    pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->mu);
    return BS_OK;
}

bs_apply_job *
bs_applier_done(bs_applier *a)
{
    bs_apply_job *j;

    pthread_mutex_lock(&a->mu);
    j = a->done;
    a->done = a->done_tail = NULL;
    pthread_mutex_unlock(&a->mu);
    return j;
}

void
bs_apply_job_free(bs_apply_job *j)
{
    if (j == NULL)
        return;
    free(j->set);
    free(j);
}

void
bs_applier_stats(bs_applier *a, uint64_t *batches, uint64_t *sets)
{
    pthread_mutex_lock(&a->mu);
    *batches = a->batches;
    *sets = a->sets;
    pthread_mutex_unlock(&a->mu);
}

void
bs_applier_hold(bs_applier *a, int hold)
{
    pthread_mutex_lock(&a->mu);
    a->held = hold;
    if (!hold)
        pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->mu);
}

size_t
bs_applier_queued(bs_applier *a)
{
    size_t n;

    pthread_mutex_lock(&a->mu);
    n = a->queued;
    pthread_mutex_unlock(&a->mu);
    return n;
}

int
bs_applier_wait(bs_applier *a, int timeout_ms)
{
    struct timespec until;
    int some, rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&a->mu);
    while (a->done == NULL && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&a->landed, &a->mu, &until);
    some = a->done != NULL;
    pthread_mutex_unlock(&a->mu);
    return some;
}
