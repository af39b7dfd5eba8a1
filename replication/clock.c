/*
 * clock.c - peers' clocks, measured at exchanges, and the node's verdict.
 */
#include "clock.h"

#include <string.h>

/* A wall time a peer can mean: a timestamp's 48 bits of ms (hlc.h).  A
 * peer's word beyond it, or a stored bound beyond SANE_MS, says nothing
 * (and no arithmetic on it can overflow). */
#define PEER_MS_MAX ((uint64_t)1 << 48)
#define SANE_MS     ((int64_t)1 << 50)

void
bs_clock_sample_recv(bs_clock_sample *s, uint64_t created_ms, uint64_t recv_ms)
{
    int64_t lo;

    if (created_ms == 0 || created_ms >= PEER_MS_MAX || recv_ms >= PEER_MS_MAX)
        return;
    lo = (int64_t)created_ms - (int64_t)recv_ms;
    if (!s->has_lo || lo > s->lo_ms)
        s->lo_ms = lo;
    s->has_lo = 1;
}

void
bs_clock_sample_reply(bs_clock_sample *s, uint64_t created_ms, uint64_t sent_ms)
{
    int64_t hi;

    if (created_ms == 0 || sent_ms == 0 || created_ms >= PEER_MS_MAX ||
        sent_ms >= PEER_MS_MAX)
        return;
    hi = (int64_t)created_ms - (int64_t)sent_ms;
    if (!s->has_hi || hi < s->hi_ms)
        s->hi_ms = hi;
    s->has_hi = 1;
}

int64_t
bs_clock_sample_ahead(const bs_clock_sample *s)
{
    return s->has_hi && s->hi_ms < 0 ? -s->hi_ms : 0;
}

void
bs_clock_note(bs_peer *p, const bs_clock_sample *s, bs_clock clock)
{
    bs_clock_base b;

    if (!s->has_lo || !s->has_hi)
        return;
    p->clock_lo_ms = s->lo_ms;
    p->clock_hi_ms = s->hi_ms;
    /* A peer whose clock stepped during the exchange can give crossed
     * bounds; keep them ordered (the lower one is the later word). */
    if (p->clock_lo_ms > p->clock_hi_ms)
        p->clock_hi_ms = p->clock_lo_ms;
    p->clock_at_ms = clock.now_ms(clock.ctx);
    if (p->clock_at_ms == 0)
        p->clock_at_ms = 1; /* 0 means "never" */
    p->has_boot = bs_clock_base_of(clock, &b);
    if (p->has_boot) {
        memcpy(p->clock_boot, b.boot, BS_BOOT_ID_LEN);
        p->clock_base_ms = b.ms;
    } else {
        p->clock_base_ms = 0;
    }
}

/* p's bounds now, given the wall time and (has_base) our clock's base. */
static int
peer_now(const bs_peer *p, uint64_t now, const bs_clock_base *b, int has_base,
         int64_t *lo, int64_t *hi)
{
    int64_t step = 0;

    if (p->clock_at_ms == 0 ||
        (now > p->clock_at_ms &&
         now - p->clock_at_ms > BS_CLOCK_SAMPLE_MAX_AGE_MS) ||
        p->clock_lo_ms < -SANE_MS || p->clock_lo_ms > SANE_MS ||
        p->clock_hi_ms < -SANE_MS || p->clock_hi_ms > SANE_MS ||
        p->clock_base_ms < -SANE_MS || p->clock_base_ms > SANE_MS)
        return 0;
    /* Our wall clock stepped by `step` since: the peer is that much
     * further behind us (or ahead, for a step back). */
    if (p->has_boot && has_base && b->ms > -SANE_MS && b->ms < SANE_MS &&
        memcmp(b->boot, p->clock_boot, BS_BOOT_ID_LEN) == 0)
        step = b->ms - p->clock_base_ms;
    *lo = p->clock_lo_ms - step;
    *hi = p->clock_hi_ms - step;
    return 1;
}

int
bs_clock_peer_now(const bs_peer *p, bs_clock clock, int64_t *lo, int64_t *hi)
{
    bs_clock_base b;
    int has_base = bs_clock_base_of(clock, &b);

    return peer_now(p, clock.now_ms(clock.ctx), &b, has_base, lo, hi);
}

typedef struct ahead_of {
    int64_t ahead;
    size_t i;
} ahead_of;

static int
by_ahead_desc(const void *x, const void *y)
{
    const ahead_of *a = x, *b = y;

    return a->ahead < b->ahead ? 1 : a->ahead > b->ahead ? -1 : 0;
}

void
bs_clock_judge(const bs_peer *v, size_t n, bs_clock clock,
               bs_clock_verdict *out)
{
    ahead_of *a = n ? calloc(n, sizeof *a) : NULL;
    uint64_t now = clock.now_ms(clock.ctx);
    bs_clock_base b;
    int has_base;
    size_t m = 0, k;

    memset(out, 0, sizeof *out);
    if (a == NULL)
        return; /* no peers, or no memory: no verdict, stamps unchanged */
    has_base = bs_clock_base_of(clock, &b); /* once: it reads a file */
    for (size_t i = 0; i < n; i++) {
        int64_t lo, hi;
        if (peer_now(&v[i], now, &b, has_base, &lo, &hi))
            a[m++] = (ahead_of){-hi, i};
    }
    out->npeers = m;
    if (m > 0) {
        /* Ahead of a strict majority by at least a[k].ahead. */
        qsort(a, m, sizeof *a, by_ahead_desc);
        k = m / 2;
        if (a[k].ahead > 0) {
            out->ahead_ms = a[k].ahead;
            snprintf(out->peer, sizeof out->peer, "%s", v[a[k].i].name);
            out->measured_ms = v[a[k].i].clock_at_ms;
        }
    }
    free(a);
}

bs_err
bs_clock_judge_txn(bs_txn *t, bs_clock clock, bs_clock_verdict *out)
{
    bs_peer *v;
    size_t n;
    bs_err rv;

    if ((rv = bs_peer_list_bare(t, &v, &n)) != BS_OK)
        return rv;
    bs_clock_judge(v, n, clock, out);
    bs_peer_list_free(v, n);
    return BS_OK;
}

const char *
bs_clock_policy_name(int policy)
{
    return policy == BS_CLOCK_REFUSE ? "refuse" : "correct";
}

bs_err
bs_clock_policy_parse(const char *s, int *policy)
{
    if (strcmp(s, "correct") == 0)
        *policy = BS_CLOCK_CORRECT;
    else if (strcmp(s, "refuse") == 0)
        *policy = BS_CLOCK_REFUSE;
    else
        return BS_EINVAL;
    return BS_OK;
}
