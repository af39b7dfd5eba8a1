/*
 * http_write.c - group commit of the HTTP API's single-record writes: a
 * queue of waiting callers, the first of which commits for all
 * (http_write.h).
 */
#include "http_write.h"

#include <linux/futex.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../replication/json.h"
#include "../replication/local.h"

/* A waiter's state, which it sleeps on with a futex: the leader stores
 * the new state and wakes it without holding the queue's mutex, so a
 * woken waiter runs on at once instead of first waiting for the mutex
 * (one context switch per write instead of two). */
enum {
    WAITING = 0, /* queued behind the head */
    DONE = 1,    /* rv is final; the leader no longer touches this */
    LEAD = 2,    /* at the head of the queue now: lead the next batch */
};

struct bs_http_wreq {
    bs_write *w;
    bs_errbuf *err;
    bs_err rv;
    int state;     /* WAITING, DONE or LEAD; atomic */
    int excluded;  /* failed in this batch: left out of its retries */
    char **answer; /* NULL: none wanted; else the record, as `get` */
    bs_http_wreq *next;
};

static void
wait_while(int *state, int value)
{
    while (__atomic_load_n(state, __ATOMIC_ACQUIRE) == value)
        syscall(SYS_futex, state, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

/* Set *state and wake its waiter.  Once the store is seen the waiter
 * may return and its memory go: the wake only names the address, and a
 * futex wake of an address nobody waits on does nothing. */
static void
wake(int *state, int value)
{
    __atomic_store_n(state, value, __ATOMIC_RELEASE);
    syscall(SYS_futex, state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

bs_err
bs_http_writeq_init(bs_http_writeq *q, void (*changed)(void *ctx), void *ctx)
{
    memset(q, 0, sizeof *q);
    if (pthread_mutex_init(&q->mu, NULL) != 0)
        return BS_ENOMEM;
    if (pthread_cond_init(&q->held_cv, NULL) != 0) {
        pthread_mutex_destroy(&q->mu);
        return BS_ENOMEM;
    }
    q->changed = changed;
    q->ctx = ctx;
    return BS_OK;
}

void
bs_http_writeq_fini(bs_http_writeq *q)
{
    pthread_cond_destroy(&q->held_cv);
    pthread_mutex_destroy(&q->mu);
}

/* ==== one transaction ==== */

typedef struct batch {
    const bs_core *c;
    bs_http_wreq **v;
    size_t n;
    size_t failed;   /* index of the write that failed; SIZE_MAX: none */
    uint64_t change; /* writes that changed something */
} batch;

/* The record r wrote, as this transaction holds it, into *r->answer (a
 * previous attempt's is replaced): the answer to a PUT costs no read
 * transaction of its own and shows the record as of its own write.  Left
 * NULL when it cannot be made; the caller then reads it back. */
static void
answer(bs_txn *t, bs_http_wreq *r)
{
    bs_arena a;
    bs_record rec;

    free(*r->answer);
    *r->answer = NULL;
    bs_arena_init(&a);
    if (bs_records_get(t, r->w->coll, r->w->id, &a, &rec, NULL) == BS_OK)
        *r->answer = bs_json_record(r->w->id, strlen(r->w->id), &rec);
    bs_arena_fini(&a);
}

/* Apply the batch's writes that are not excluded, in order; stop at the
 * first that fails and say which. */
static bs_err
batch_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    batch *b = arg;
    bs_local l;
    bs_err rv;

    b->failed = SIZE_MAX;
    b->change = 0;
    if ((rv = bs_local_begin(&l, t, b->c, err)) != BS_OK)
        goto out;
    for (size_t i = 0; i < b->n; i++) {
        bs_http_wreq *r = b->v[i];
        bs_write *w = r->w;
        if (r->excluded)
            continue;
        if (w->deleted)
            rv = bs_local_del(&l, w->coll, w->id, r->err);
        else
            rv =
                bs_local_put(&l, w->coll, w->id, w->fields, w->nfields, r->err);
        if (rv != BS_OK) {
            b->failed = i;
            goto out;
        }
        if (r->answer != NULL)
            answer(t, r);
    }
    if ((rv = bs_local_finish(&l, err)) == BS_OK)
        b->change = l.written + l.deleted;
out:
    bs_local_fini(&l);
    return rv;
}

static void
committed(bs_http_writeq *q, const batch *b)
{
    __atomic_fetch_add(&q->batches, 1, __ATOMIC_RELAXED);
    if (b->change > 0 && q->changed != NULL)
        q->changed(q->ctx);
}

/* Commit v[0..n) and give each write its outcome (v[i]->rv): one
 * transaction, less the writes that fail; one per write when the batch
 * fails as a whole. */
static void
commit_batch(bs_http_writeq *q, const bs_core *c, bs_http_wreq **v, size_t n)
{
    batch b = {c, v, n, SIZE_MAX, 0};
    size_t left = n;
    bs_errbuf err = {{0}};
    bs_err rv;

    for (size_t i = 0; i < n; i++) {
        v[i]->rv = BS_OK;
        v[i]->excluded = 0;
    }
    while (left > 0) {
        rv = bs_store_write(c->store, batch_txn, &b, &err);
        if (rv == BS_OK) {
            committed(q, &b);
            return;
        }
        if (b.failed == SIZE_MAX)
            break; /* no single write caused it */
        v[b.failed]->rv = rv;
        v[b.failed]->excluded = 1;
        left--;
    }
    if (left == 0)
        return;
    /* One transaction per write: each gets its own outcome. */
    for (size_t i = 0; i < n; i++) {
        batch one = {c, &v[i], 1, SIZE_MAX, 0};
        if (v[i]->excluded)
            continue;
        if ((rv = bs_store_write(c->store, batch_txn, &one, v[i]->err)) ==
            BS_OK)
            committed(q, &one);
        v[i]->rv = rv;
    }
}

/* ==== the queue ==== */

bs_err
bs_http_write(bs_http_writeq *q, const bs_core *c, bs_write *w, char **record,
              bs_errbuf *err)
{
    bs_http_wreq me = {w, err, BS_OK, WAITING, 0, record, NULL};
    bs_http_wreq *v[BS_HTTP_BATCH_MAX], *r, *next;
    size_t n = 0, ok = 0;
    int lead;

    pthread_mutex_lock(&q->mu);
    if (q->tail != NULL)
        q->tail->next = &me;
    else
        q->head = &me;
    q->tail = &me;
    q->pending++;
    lead = q->head == &me;
    pthread_mutex_unlock(&q->mu);
    if (!lead) {
        wait_while(&me.state, WAITING);
        if (__atomic_load_n(&me.state, __ATOMIC_ACQUIRE) == DONE)
            return me.rv;
    }
    /* The leader: take the batch, but leave it at the head of the queue
     * so that later callers wait behind it. */
    pthread_mutex_lock(&q->mu);
    while (q->held)
        pthread_cond_wait(&q->held_cv, &q->mu);
    for (r = q->head; r != NULL && n < BS_HTTP_BATCH_MAX; r = r->next)
        v[n++] = r;
    q->pending -= n;
    pthread_mutex_unlock(&q->mu);

    commit_batch(q, c, v, n);

    pthread_mutex_lock(&q->mu);
    next = v[n - 1]->next;
    q->head = next;
    if (next == NULL)
        q->tail = NULL;
    pthread_mutex_unlock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        ok += v[i]->rv == BS_OK;
        if (v[i] != &me)
            wake(&v[i]->state, DONE); /* v[i] is theirs after this */
    }
    /* The next leader last: while the answered callers run, more writes
     * join its batch.  It stays queued (WAITING) until woken, so it is
     * safe to use unlocked. */
    if (next != NULL)
        wake(&next->state, LEAD);
    __atomic_fetch_add(&q->writes, ok, __ATOMIC_RELAXED);
    return me.rv;
}

void
bs_http_writeq_hold(bs_http_writeq *q, int hold)
{
    pthread_mutex_lock(&q->mu);
    q->held = hold;
    if (!hold)
        pthread_cond_broadcast(&q->held_cv);
    pthread_mutex_unlock(&q->mu);
}

size_t
bs_http_writeq_pending(bs_http_writeq *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->pending;
    pthread_mutex_unlock(&q->mu);
    return n;
}
