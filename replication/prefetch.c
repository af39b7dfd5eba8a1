/*
 * prefetch.c - change sets decoded ahead on a second thread (prefetch.h).
 *
 * A ring of BS_PREFETCH_SETS slots: the worker fills slot i % N with set
 * i while fewer than N sets and about BS_PREFETCH_BYTES of their bytes
 * wait; the caller takes set `base` and frees its slot.  One mutex and
 * one condition variable for both directions (a handful of sets per
 * megabyte: contention is not the cost).
 */
#include "prefetch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    bs_csview *v;
    bs_err rv;
    bs_errbuf err;
};

struct bs_prefetch {
    const bs_slice *raw;
    size_t n;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t base;  /* the next set the caller takes */
    size_t made;  /* sets decoded: [base, made) wait in their slots */
    size_t bytes; /* their raw bytes */
    int stop;
    struct slot slot[BS_PREFETCH_SETS];
};

/* Set i decoded, its signature checked (A4's check, made early). */
static void
decode_one(const bs_slice *raw, struct slot *s)
{
    memset(&s->err, 0, sizeof s->err);
    s->v = NULL;
    s->rv = bs_changeset_decode(raw->p, raw->n, &s->v, &s->err);
    if (s->rv == BS_OK && bs_changeset_verify(s->v, s->v->origin) == BS_OK)
        s->v->verified = 1;
    if (s->rv == BS_OK && bs_changeset_predecode(s->v) != BS_OK) {
        bs_changeset_free(s->v);
        s->v = NULL;
        s->rv = BS_ENOMEM;
    }
}

static void *
worker(void *arg)
{
    bs_prefetch *p = arg;

    pthread_mutex_lock(&p->mu);
    while (!p->stop && p->made < p->n) {
        struct slot s;
        size_t i;

        if (p->made - p->base == BS_PREFETCH_SETS ||
            (p->made > p->base && p->bytes >= BS_PREFETCH_BYTES)) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        i = p->made;
        pthread_mutex_unlock(&p->mu);
        decode_one(&p->raw[i], &s);
        pthread_mutex_lock(&p->mu);
        p->slot[i % BS_PREFETCH_SETS] = s;
        p->bytes += p->raw[i].n;
        p->made++;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

bs_prefetch *
bs_prefetch_start(const bs_slice *raw, size_t n)
{
    bs_prefetch *p = calloc(1, sizeof *p);

    if (p == NULL)
        return NULL;
    p->raw = raw;
    p->n = n;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    if (pthread_create(&p->th, NULL, worker, p) != 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    return p;
}

bs_err
bs_prefetch_get(bs_prefetch *p, size_t i, bs_csview **out, bs_errbuf *err)
{
    struct slot s;

    pthread_mutex_lock(&p->mu);
    if (i != p->base || i >= p->n) { /* asked again, or out of order */
        pthread_mutex_unlock(&p->mu);
        if (i >= p->n)
            return BS_EINVAL;
        decode_one(&p->raw[i], &s);
    } else {
        while (p->made <= i)
            pthread_cond_wait(&p->cv, &p->mu);
        s = p->slot[i % BS_PREFETCH_SETS];
        p->bytes -= p->raw[i].n;
        p->base++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    *out = s.v;
    if (s.rv != BS_OK && err != NULL)
        *err = s.err;
    return s.rv;
}

void
bs_prefetch_stop(bs_prefetch *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    for (size_t i = p->base; i < p->made; i++)
        bs_changeset_free(p->slot[i % BS_PREFETCH_SETS].v);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- a batch's snapshots ---- */

struct chunk {
    bs_snap snaps[BS_SNAPAHEAD_CHUNK];
    size_t n;  /* decoded */
    bs_err rv; /* after the n: BS_OK (the chunk is full, or the end) */
    bs_errbuf err;
    bs_arena arena;
};

struct bs_snapahead {
    const bs_snapbatch *b;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t made, taken; /* chunks filled, chunks the caller let go */
    int stop;
    size_t at, k; /* the caller's chunk (made order) and place in it */
    int holding;  /* the caller is in chunk `at` */
    struct chunk ring[BS_SNAPAHEAD_RING];
};

static void *
snap_worker(void *arg)
{
    bs_snapahead *a = arg;
    size_t next = 0; /* the next body */

    pthread_mutex_lock(&a->mu);
    while (!a->stop && next < a->b->n) {
        struct chunk *c;

        if (a->made - a->taken == BS_SNAPAHEAD_RING) {
            pthread_cond_wait(&a->cv, &a->mu);
            continue;
        }
        c = &a->ring[a->made % BS_SNAPAHEAD_RING];
        pthread_mutex_unlock(&a->mu);
        bs_arena_reset(&c->arena);
        c->n = 0;
        c->rv = BS_OK;
        memset(&c->err, 0, sizeof c->err);
        while (c->n < BS_SNAPAHEAD_CHUNK && next < a->b->n) {
            c->rv = bs_snapbatch_snap_shared(a->b, next, &c->snaps[c->n],
                                             &c->arena, &c->err);
            if (c->rv != BS_OK)
                break;
            c->n++;
            next++;
        }
        if (c->rv != BS_OK)
            next = a->b->n; /* nothing after a refusal */
        pthread_mutex_lock(&a->mu);
        a->made++;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

bs_snapahead *
bs_snapahead_start(const bs_snapbatch *b)
{
    bs_snapahead *a = calloc(1, sizeof *a);

    if (a == NULL)
        return NULL;
    a->b = b;
    for (size_t i = 0; i < BS_SNAPAHEAD_RING; i++) {
        bs_arena_init(&a->ring[i].arena);
        for (size_t j = 0; j < BS_SNAPAHEAD_CHUNK; j++)
            bs_snap_init(&a->ring[i].snaps[j]);
    }
    if (pthread_mutex_init(&a->mu, NULL) != 0)
        goto fail;
    if (pthread_cond_init(&a->cv, NULL) != 0) {
        pthread_mutex_destroy(&a->mu);
        goto fail;
    }
    if (pthread_create(&a->th, NULL, snap_worker, a) != 0) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        goto fail;
    }
    return a;
fail:
    for (size_t i = 0; i < BS_SNAPAHEAD_RING; i++)
        bs_arena_fini(&a->ring[i].arena);
    free(a);
    return NULL;
}

bs_err
bs_snapahead_next(bs_snapahead *a, bs_snap **out, bs_errbuf *err)
{
    struct chunk *c;
    size_t total = (a->b->n + BS_SNAPAHEAD_CHUNK - 1) / BS_SNAPAHEAD_CHUNK;

    for (;;) {
        if (!a->holding) {
            if (a->at >= total)
                return BS_ENOTFOUND;
            pthread_mutex_lock(&a->mu);
            while (a->made <= a->at)
                pthread_cond_wait(&a->cv, &a->mu);
            pthread_mutex_unlock(&a->mu);
            a->holding = 1;
            a->k = 0;
        }
        c = &a->ring[a->at % BS_SNAPAHEAD_RING];
        if (a->k < c->n) {
            *out = &c->snaps[a->k++];
            return BS_OK;
        }
        if (c->rv != BS_OK) {
            if (err != NULL)
                *err = c->err;
            return c->rv;
        }
        pthread_mutex_lock(&a->mu); /* the chunk is done with: let it go */
        a->taken++;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        a->holding = 0;
        a->at++;
    }
}

void
bs_snapahead_stop(bs_snapahead *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->th, NULL);
    for (size_t i = 0; i < BS_SNAPAHEAD_RING; i++) {
        for (size_t j = 0; j < BS_SNAPAHEAD_CHUNK; j++)
            bs_snap_fini(&a->ring[i].snaps[j]);
        bs_arena_fini(&a->ring[i].arena);
    }
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
