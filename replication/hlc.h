/*
 * hlc.h - hybrid logical clock.
 *
 * A timestamp is one uint64: wall-clock milliseconds in the high 48 bits and
 * a logical counter in the low 16.  bs_hlc_now() never returns a value <= any
 * value it returned or observed before, whatever the wall clock does; the
 * caller persists bs_hlc.last in the store so the clock also never goes
 * backwards across restarts (docs/reliability.md S10, P4).
 *
 * The wall clock is injected (bs_clock) so tests never sleep.
 */
#ifndef BS_HLC_H
#define BS_HLC_H

#include "common.h"

#define BS_HLC_LOGICAL_BITS 16
#define BS_HLC_MS(ts)       ((ts) >> BS_HLC_LOGICAL_BITS)
#define BS_HLC_MAKE(ms, c)  (((uint64_t)(ms) << BS_HLC_LOGICAL_BITS) | (c))

/* A source of wall-clock milliseconds since the Unix epoch. */
typedef struct bs_clock {
    uint64_t (*now_ms)(void *ctx);
    void *ctx;
} bs_clock;

/* The system clock (CLOCK_REALTIME). */
extern const bs_clock bs_clock_system;

typedef struct bs_hlc {
    uint64_t last; /* the highest timestamp issued or observed */
    bs_clock clock;
} bs_hlc;

/* Start a clock that continues from `last` (0 for a new node). */
void bs_hlc_init(bs_hlc *h, bs_clock clock, uint64_t last);

/* A new timestamp for a local event, strictly greater than h->last. */
uint64_t bs_hlc_now(bs_hlc *h);

/*
 * Take a remote timestamp into account so that later local events order
 * after it.  The caller bounds `remote` by the skew limit first (S10).
 */
void bs_hlc_observe(bs_hlc *h, uint64_t remote);

/* Wall milliseconds of the injected clock. */
uint64_t bs_hlc_wall_ms(const bs_hlc *h);

#endif
