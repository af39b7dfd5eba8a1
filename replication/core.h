/*
 * core.h - what every domain operation needs from the node around it.
 *
 * The core API (records.h, members.h, collections.h, pairing.h,
 * resolution.h, load.h, status.h, xlog.h, bundle.h, purge.h) is called the
 * same way by the CLI, the daemon and the tests: with a bs_core that names
 * the store, the node's signing key and clock, and the limits read from
 * the configuration.  Reads need only a transaction (bs_store_read); writes
 * take a bs_core and run their own write transaction, so each is atomic
 * (INV-6).
 */
#ifndef BS_CORE_H
#define BS_CORE_H

#include "hlc.h"
#include "store.h"

typedef struct bs_core {
    bs_store *store;       /* borrowed */
    const uint8_t *sk;     /* borrowed: the secret key; NULL for reads only */
    bs_clock clock;        /* wall clock (injected in tests) */
    uint64_t max_skew_ms;  /* a remote clock further ahead is held (S10) */
    uint64_t retention_ms; /* tombstones and silent peers (purge.h) */
    int clock_ahead;       /* bs_clock_policy (clock.h): a clock ahead of the
                              peers' beyond max_skew_ms corrects or refuses */
} bs_core;

/* Wall-clock milliseconds of c's clock. */
static inline uint64_t
bs_core_now(const bs_core *c)
{
    return c->clock.now_ms(c->clock.ctx);
}

#endif
