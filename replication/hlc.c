/*
 * hlc.c - hybrid logical clock (Kulkarni et al.), 48-bit ms + 16-bit counter.
 */
#include "hlc.h"

#include <time.h>

static uint64_t
system_now_ms(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const bs_clock bs_clock_system = {system_now_ms, NULL};

void
bs_hlc_init(bs_hlc *h, bs_clock clock, uint64_t last)
{
    h->clock = clock;
    h->last = last;
}

uint64_t
bs_hlc_wall_ms(const bs_hlc *h)
{
    return h->clock.now_ms(h->clock.ctx);
}

uint64_t
bs_hlc_now(bs_hlc *h)
{
    uint64_t wall = BS_HLC_MAKE(bs_hlc_wall_ms(h), 0);

    /* Either the wall clock moved past us, or we tick the counter.  A
     * counter overflow carries into the millisecond part, which keeps the
     * order total at the cost of running up to 1 ms ahead of the wall. */
    h->last = wall > h->last ? wall : h->last + 1;
    return h->last;
}

void
bs_hlc_observe(bs_hlc *h, uint64_t remote)
{
    if (remote > h->last)
        h->last = remote;
}
