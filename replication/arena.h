/*
 * arena.h - a bump allocator for memory that dies together (one batch of a
 * load, one decoded change set).  Allocation failure returns NULL.
 */
#ifndef BS_ARENA_H
#define BS_ARENA_H

#include "common.h"

typedef struct bs_arena_chunk bs_arena_chunk;
typedef struct bs_arena {
    bs_arena_chunk *head;
    size_t used;  /* bytes used in head */
    size_t total; /* bytes handed out since the last reset */
} bs_arena;

void bs_arena_init(bs_arena *a);
/* n bytes aligned to 8; NULL when out of memory. */
void *bs_arena_alloc(bs_arena *a, size_t n);
/* A NUL-terminated copy of p[0..n). */
char *bs_arena_strndup(bs_arena *a, const char *p, size_t n);
void *bs_arena_memdup(bs_arena *a, const void *p, size_t n);
/* Forget everything but keep the first chunk for reuse. */
void bs_arena_reset(bs_arena *a);
void bs_arena_fini(bs_arena *a);

#endif
