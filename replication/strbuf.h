/*
 * strbuf.h - a growable NUL-terminated text, for emitters that build JSON
 * or other text piece by piece.
 *
 * Zero-initialise (`bs_strbuf b = {0};`).  An allocation failure sets oom
 * and makes every later add a no-op, so callers check once at the end.
 * p is malloc'd and owned by the caller once building is done (free(b.p)).
 */
#ifndef BS_STRBUF_H
#define BS_STRBUF_H

#include <stdlib.h>
#include <string.h>

typedef struct bs_strbuf {
    char *p;
    size_t n, cap;
    int oom;
} bs_strbuf;

static inline void
bs_strbuf_add(bs_strbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;

        while (cap < b->n + n + 1)
            cap *= 2;
        if ((p = realloc(b->p, cap)) == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

#endif
