/*
 * hlc.h - hybrid logical clock.
 *
 * A timestamp is one uint64: wall-clock milliseconds in the high 48 bits and
 * a logical counter in the low 16.  bs_hlc_now() never returns a value <= any
 * value it returned or observed before, whatever the wall clock does; the
 * caller persists bs_hlc.last in the store so the clock also never goes
 * backwards across restarts (docs/reliability.md S10, P4).
 *
 * Local writes are stamped with bs_hlc_stamp() instead, which a node
 * disciplines against its peers' clocks (clock.h, docs/design.md "Clocks
 * and the skew hold"): the wall clock less a correction, and a memory of
 * `last` that is dropped once it is more than a horizon ahead of that
 * corrected wall (it came from a wall clock that was wrong).  What orders
 * a write after what it overwrites is then the floor the caller gives: the
 * greatest version of the record written.
 *
 * The wall clock is injected (bs_clock) so tests never sleep.
 */
#ifndef BS_HLC_H
#define BS_HLC_H

#include "common.h"

#define BS_HLC_LOGICAL_BITS 16
#define BS_HLC_MS(ts)       ((ts) >> BS_HLC_LOGICAL_BITS)
#define BS_HLC_MAKE(ms, c)  (((uint64_t)(ms) << BS_HLC_LOGICAL_BITS) | (c))

#define BS_BOOT_ID_LEN 16

/*
 * Where the wall clock stands against a clock that is never stepped
 * (CLOCK_BOOTTIME): ms = wall - boottime, in boot `boot`.  Within one boot
 * it changes only when the wall clock is stepped (set by hand, by NTP's
 * step, by a wrong RTC corrected), by exactly the step.
 */
typedef struct bs_clock_base {
    uint8_t boot[BS_BOOT_ID_LEN];
    int64_t ms;
} bs_clock_base;

/*
 * A source of wall-clock milliseconds since the Unix epoch.  `base` is
 * optional (NULL: unknown, steps go unseen); it returns 1 and fills *b, or
 * 0 when it cannot tell.  A literal {now_ms, ctx} leaves it NULL.
 */
typedef struct bs_clock {
    uint64_t (*now_ms)(void *ctx);
    void *ctx;
    int (*base)(void *ctx, bs_clock_base *b);
} bs_clock;

/* The system clock (CLOCK_REALTIME; base from CLOCK_BOOTTIME and the
 * kernel's boot ID). */
extern const bs_clock bs_clock_system;

/* c's base now: 1 and *b filled, or 0 when c has none. */
int bs_clock_base_of(bs_clock c, bs_clock_base *b);

typedef struct bs_hlc {
    uint64_t last; /* the highest timestamp issued or observed */
    bs_clock clock;
    /* bs_hlc_stamp only (0 for both: the plain clock of bs_hlc_now) */
    uint64_t correction_ms; /* stamp with the wall clock less this */
    uint64_t horizon_ms;    /* forget a `last` further ahead than this */
} bs_hlc;

/* Start a clock that continues from `last` (0 for a new node). */
void bs_hlc_init(bs_hlc *h, bs_clock clock, uint64_t last);

/* A new timestamp for a local event, strictly greater than h->last. */
uint64_t bs_hlc_now(bs_hlc *h);

/*
 * A timestamp for a local write: greater than `floor` (the greatest
 * version of what it overwrites), at least the corrected wall clock
 * (wall - correction_ms), and greater than h->last unless h->last is more
 * than horizon_ms (when not 0) ahead of the corrected wall, in which case
 * h->last is forgotten.  h->last becomes the result, so it may go down.
 * With correction_ms and horizon_ms 0 and floor 0 this is bs_hlc_now.
 */
uint64_t bs_hlc_stamp(bs_hlc *h, uint64_t floor);

/*
 * Take a remote timestamp into account so that later local events order
 * after it.  The caller bounds `remote` by the skew limit first (S10).
 */
void bs_hlc_observe(bs_hlc *h, uint64_t remote);

/* Wall milliseconds of the injected clock. */
uint64_t bs_hlc_wall_ms(const bs_hlc *h);

#endif
