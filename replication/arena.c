/*
 * arena.c - chunked bump allocator.
 */
#include "arena.h"

#include <string.h>

#define CHUNK_MIN (256u * 1024u)

struct bs_arena_chunk {
    bs_arena_chunk *next;
    size_t size;
    uint8_t data[];
};

void
bs_arena_init(bs_arena *a)
{
    memset(a, 0, sizeof *a);
}

void *
bs_arena_alloc(bs_arena *a, size_t n)
{
    bs_arena_chunk *c;
    size_t size;

    n = (n + 7) & ~(size_t)7;
    if (n == 0)
        n = 8;
    if (a->head != NULL && a->head->size - a->used >= n) {
        void *p = a->head->data + a->used;
        a->used += n;
        a->total += n;
        return p;
    }
    size = n > CHUNK_MIN ? n : CHUNK_MIN;
    if ((c = malloc(sizeof *c + size)) == NULL)
        return NULL;
    c->size = size;
    c->next = a->head;
    a->head = c;
    a->used = n;
    a->total += n;
    return c->data;
}

char *
bs_arena_strndup(bs_arena *a, const char *p, size_t n)
{
    char *s = bs_arena_alloc(a, n + 1);

    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

void *
bs_arena_memdup(bs_arena *a, const void *p, size_t n)
{
    void *s = bs_arena_alloc(a, n);

    if (s != NULL && n > 0)
        memcpy(s, p, n);
    return s;
}

void
bs_arena_reset(bs_arena *a)
{
    bs_arena_chunk *c, *next;

    if (a->head == NULL)
        return;
    /* Keep the oldest chunk (the last in the list) if it is a normal one. */
    for (c = a->head; c->next != NULL; c = next) {
        next = c->next;
        free(c);
    }
    a->head = c;
    a->used = 0;
    a->total = 0;
}

void
bs_arena_fini(bs_arena *a)
{
    bs_arena_chunk *c, *next;

    for (c = a->head; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    memset(a, 0, sizeof *a);
}
