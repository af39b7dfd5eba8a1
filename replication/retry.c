/*
 * retry.c - when held sets may apply, and retrying them.
 */
#include "retry.h"

#include <string.h>

#include "setlog.h"

/* The greatest stamp of the present changes of a held set; 0 when it
 * does not decode. */
static uint64_t
max_stamp(bs_slice set, bs_arena *a)
{
    bs_csview *v;
    uint64_t max = 0;

    if (bs_changeset_decode(set.p, set.n, &v, NULL) != BS_OK)
        return 0;
    for (size_t i = 0; i < v->count; i++) {
        bs_change c;
        if (!v->present[i])
            continue;
        bs_arena_reset(a);
        if (bs_changeset_change(v, i, a, &c, NULL) != BS_OK) {
            max = 0;
            break;
        }
        if (c.hlc > max)
            max = c.hlc;
    }
    bs_changeset_free(v);
    return max;
}

bs_err
bs_retry_when(bs_txn *t, uint64_t now_ms, uint64_t max_skew_ms,
              bs_retry_due *out)
{
    uint32_t stream = 0;
    uint64_t first = 0;
    bs_arena a;
    bs_held h;
    bs_err rv;

    memset(out, 0, sizeof *out);
    bs_arena_init(&a);
    while ((rv = bs_held_next(t, BS_HELD_WAITING, stream, first, 0, &h)) ==
           BS_OK) {
        stream = h.stream;
        first = h.first;
        out->waiting++;
        if (h.reason == BS_HOLD_CLOCK) {
            uint64_t ms = BS_HLC_MS(max_stamp(h.set, &a)), due;
            out->clock_held++;
            /* A12 holds while ms > now + max_skew. */
            due = ms > max_skew_ms ? ms - max_skew_ms : 0;
            out->clock_ready += due <= now_ms;
            if (due > now_ms &&
                (out->clock_due_ms == 0 || due < out->clock_due_ms))
                out->clock_due_ms = due;
        }
    }
    bs_arena_fini(&a);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

typedef struct retry_ctx {
    bs_clock clock;
    uint64_t max_skew_ms;
    bs_xstats *st;
} retry_ctx;

static bs_err
retry_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    retry_ctx *x = arg;
    bs_apply ap;
    bs_err rv;

    if ((rv = bs_apply_begin(&ap, t, x->clock, x->max_skew_ms, err)) == BS_OK &&
        (rv = bs_apply_held(&ap, err)) == BS_OK)
        rv = bs_apply_finish(&ap, err);
    if (rv == BS_OK) {
        memset(x->st, 0, sizeof *x->st);
        x->st->sets = ap.sets;
        x->st->changes = ap.changes;
        x->st->conflicts = ap.conflicts;
        x->st->held = ap.held;
        x->st->quarantined = ap.quarantined;
        x->st->refused = ap.refused;
    }
    bs_apply_fini(&ap);
    return rv;
}

bs_err
bs_retry_held(bs_store *s, bs_clock clock, uint64_t max_skew_ms, bs_xstats *st,
              bs_errbuf *err)
{
    retry_ctx x = {clock, max_skew_ms, st};

    memset(st, 0, sizeof *st);
    return bs_store_write(s, retry_txn, &x, err);
}
