/*
 * http_write.c - group commit of the HTTP API's single-record writes: a
 * queue of waiting callers, the first of which commits for all
 * (http_write.h).
 */
#include "http_write.h"

#include <stdint.h>
#include <string.h>

#include "../replication/local.h"

struct bs_http_wreq {
    bs_write *w;
    bs_errbuf *err;
    bs_err rv;
    int done;     /* rv is final; the leader no longer touches this */
    int excluded; /* failed in this batch: left out of its retries */
    pthread_cond_t cv;
    bs_http_wreq *next;
};

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
bs_http_write(bs_http_writeq *q, const bs_core *c, bs_write *w, bs_errbuf *err)
{
    bs_http_wreq me = {w, err, BS_OK, 0, 0, PTHREAD_COND_INITIALIZER, NULL};
    bs_http_wreq *v[BS_HTTP_BATCH_MAX], *r, *next;
    size_t n = 0, ok = 0;

    pthread_mutex_lock(&q->mu);
    if (q->tail != NULL)
        q->tail->next = &me;
    else
        q->head = &me;
    q->tail = &me;
    q->pending++;
    while (!me.done && q->head != &me)
        pthread_cond_wait(&me.cv, &q->mu);
    if (me.done) {
        pthread_mutex_unlock(&q->mu);
        pthread_cond_destroy(&me.cv);
        return me.rv;
    }
    /* The leader: take the batch, but leave it at the head of the queue
     * so that later callers wait behind it. */
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
    for (size_t i = 0; i < n; i++) {
        ok += v[i]->rv == BS_OK;
        v[i]->done = 1;
        if (v[i] != &me)
            pthread_cond_signal(&v[i]->cv); /* v[i] is theirs after this */
    }
    if (next != NULL)
        pthread_cond_signal(&next->cv); /* the next leader */
    pthread_mutex_unlock(&q->mu);
    __atomic_fetch_add(&q->writes, ok, __ATOMIC_RELAXED);
    pthread_cond_destroy(&me.cv);
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
