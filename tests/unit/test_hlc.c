/*
 * test_hlc.c - unit tests of replication/hlc.c: the hybrid logical clock
 * driven by an injected fake wall clock (no sleeping).  Covers a frozen
 * clock, a wall clock that jumps backwards, observing remote timestamps,
 * counter overflow within one millisecond and continuing after a restart
 * from the persisted `last`; the stamps of local writes under the clock
 * discipline (a correction, a forgotten `last`, the record's floor) and
 * the system clock's base.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../../replication/hlc.h"

/* A wall clock the test sets by hand. */
typedef struct fake_clock {
    uint64_t ms;
} fake_clock;

static uint64_t
fake_now(void *ctx)
{
    return ((fake_clock *)ctx)->ms;
}

static bs_clock
clock_of(fake_clock *fc)
{
    return (bs_clock){fake_now, fc};
}

/* 2026-01-01T00:00:00Z in milliseconds. */
#define T0 1767225600000ull

Test(hlc, wall_ms_reads_the_injected_clock)
{
    fake_clock fc = {T0};
    bs_hlc h;

    bs_hlc_init(&h, clock_of(&fc), 0);
    cr_assert_eq(bs_hlc_wall_ms(&h), T0);
    fc.ms = T0 + 42;
    cr_assert_eq(bs_hlc_wall_ms(&h), T0 + 42);
}

Test(hlc, first_stamp_carries_the_wall_clock)
{
    fake_clock fc = {T0};
    bs_hlc h;
    uint64_t ts;

    bs_hlc_init(&h, clock_of(&fc), 0);
    ts = bs_hlc_now(&h);
    cr_assert_eq(BS_HLC_MS(ts), T0);
    cr_assert_eq(ts, BS_HLC_MAKE(T0, 0));
    cr_assert_eq(h.last, ts, "last must remember the issued stamp");
}

Test(hlc, strictly_increasing_with_frozen_clock)
{
    fake_clock fc = {T0};
    bs_hlc h;
    uint64_t prev;

    bs_hlc_init(&h, clock_of(&fc), 0);
    prev = bs_hlc_now(&h);
    for (int i = 0; i < 50000; i++) {
        uint64_t ts = bs_hlc_now(&h);

        cr_assert_gt(ts, prev, "call %d: %llu not above %llu", i,
                     (unsigned long long)ts, (unsigned long long)prev);
        prev = ts;
    }
}

Test(hlc, follows_an_advancing_clock)
{
    fake_clock fc = {T0};
    bs_hlc h;
    uint64_t prev = 0;

    bs_hlc_init(&h, clock_of(&fc), 0);
    for (int i = 0; i < 1000; i++) {
        uint64_t ts;

        fc.ms = T0 + (uint64_t)i;
        ts = bs_hlc_now(&h);
        cr_assert_gt(ts, prev);
        cr_assert_eq(ts, BS_HLC_MAKE(T0 + (uint64_t)i, 0),
                     "an advancing wall clock resets the counter");
        prev = ts;
    }
}

Test(hlc, wall_clock_jumping_back_an_hour_still_increases)
{
    fake_clock fc = {T0};
    bs_hlc h;
    uint64_t before, prev;

    bs_hlc_init(&h, clock_of(&fc), 0);
    before = bs_hlc_now(&h);
    fc.ms = T0 - 3600u * 1000u;
    prev = before;
    for (int i = 0; i < 1000; i++) {
        uint64_t ts;

        fc.ms += (i % 7 == 0); /* the wall creeps on, an hour behind */
        ts = bs_hlc_now(&h);
        cr_assert_gt(ts, prev, "call %d after the jump went backwards", i);
        cr_assert_geq(BS_HLC_MS(ts), T0, "stamp fell back with the wall");
        prev = ts;
    }
    /* Once the wall passes the old time, stamps follow the wall again. */
    fc.ms = T0 + 10;
    cr_assert_eq(bs_hlc_now(&h), BS_HLC_MAKE(T0 + 10, 0));
}

Test(hlc, observe_remote_ahead_orders_next_local_after_it)
{
    fake_clock fc = {T0};
    bs_hlc h;
    uint64_t remote = BS_HLC_MAKE(T0 + 5000, 7), ts;

    bs_hlc_init(&h, clock_of(&fc), 0);
    (void)bs_hlc_now(&h);
    bs_hlc_observe(&h, remote);
    ts = bs_hlc_now(&h);
    cr_assert_gt(ts, remote);
    cr_assert_eq(BS_HLC_MS(ts), T0 + 5000,
                 "the local clock need not run further ahead than the remote");
    /* Still ahead of the wall, the following stamps keep increasing. */
    cr_assert_gt(bs_hlc_now(&h), ts);
}

Test(hlc, observe_remote_behind_changes_nothing)
{
    fake_clock fc = {T0};
    bs_hlc h;
    uint64_t a, b;

    bs_hlc_init(&h, clock_of(&fc), 0);
    a = bs_hlc_now(&h);
    bs_hlc_observe(&h, BS_HLC_MAKE(T0 - 60000, 3));
    cr_assert_eq(h.last, a, "observing the past moved the clock");
    b = bs_hlc_now(&h);
    cr_assert_gt(b, a);
}

Test(hlc, observe_equal_to_last_then_now_is_greater)
{
    fake_clock fc = {T0};
    bs_hlc h;
    uint64_t a;

    bs_hlc_init(&h, clock_of(&fc), 0);
    a = bs_hlc_now(&h);
    bs_hlc_observe(&h, a);
    cr_assert_gt(bs_hlc_now(&h), a);
}

Test(hlc, counter_overflow_in_one_ms_still_increases)
{
    fake_clock fc = {T0};
    bs_hlc h;
    uint64_t prev, ts = 0;
    const uint32_t calls = 3u * 65536u + 17u;

    bs_hlc_init(&h, clock_of(&fc), 0);
    prev = bs_hlc_now(&h);
    for (uint32_t i = 0; i < calls; i++) {
        ts = bs_hlc_now(&h);
        if (ts <= prev)
            cr_assert_fail("call %u: %llu not above %llu", i,
                           (unsigned long long)ts, (unsigned long long)prev);
        prev = ts;
    }
    cr_assert_gt(BS_HLC_MS(ts), T0, "the counter must carry into the ms part");
    /* The wall catching up with the carried ms still moves forward. */
    fc.ms = BS_HLC_MS(ts);
    cr_assert_gt(bs_hlc_now(&h), ts);
}

Test(hlc, counter_carry_lands_on_next_ms)
{
    fake_clock fc = {T0};
    bs_hlc h;
    uint64_t ts = 0;

    bs_hlc_init(&h, clock_of(&fc), BS_HLC_MAKE(T0, 0xfffe));
    ts = bs_hlc_now(&h);
    cr_assert_eq(ts, BS_HLC_MAKE(T0, 0xffff));
    ts = bs_hlc_now(&h);
    cr_assert_eq(ts, BS_HLC_MAKE(T0 + 1, 0));
}

Test(hlc, restart_from_persisted_last_continues_above_it)
{
    fake_clock fc = {T0};
    bs_hlc h1, h2;
    uint64_t last = 0;

    /* First life: the wall is far ahead of where it will be after the
     * restart (a clock that was wrong, then fixed). */
    fc.ms = T0 + 3600u * 1000u;
    bs_hlc_init(&h1, clock_of(&fc), 0);
    for (int i = 0; i < 100; i++)
        last = bs_hlc_now(&h1);
    cr_assert_eq(h1.last, last);

    fc.ms = T0;
    bs_hlc_init(&h2, clock_of(&fc), h1.last);
    for (int i = 0; i < 100; i++) {
        uint64_t ts = bs_hlc_now(&h2);

        cr_assert_gt(ts, last, "restart %d reused or went below %llu", i,
                     (unsigned long long)last);
        last = ts;
    }
}

Test(hlc, restart_with_wall_ahead_uses_the_wall)
{
    fake_clock fc = {T0 + 1000};
    bs_hlc h;
    uint64_t persisted = BS_HLC_MAKE(T0, 99);
    uint64_t ts;

    bs_hlc_init(&h, clock_of(&fc), persisted);
    cr_assert_eq(h.last, persisted);
    ts = bs_hlc_now(&h);
    cr_assert_gt(ts, persisted);
    cr_assert_eq(ts, BS_HLC_MAKE(T0 + 1000, 0));
}

Test(hlc, make_and_ms_macros_round_trip)
{
    uint64_t ts = BS_HLC_MAKE(T0, 513);

    cr_assert_eq(BS_HLC_MS(ts), T0);
    cr_assert_eq(ts & 0xffffu, 513u);
    cr_assert_lt(BS_HLC_MAKE(T0, 0xffff), BS_HLC_MAKE(T0 + 1, 0));
}

/* ---- bs_hlc_stamp: local writes under the clock discipline ---- */

#define MAX_SKEW_MS 60000ull

Test(hlc, stamp_without_discipline_is_now)
{
    fake_clock fc = {T0};
    bs_hlc a, b;

    bs_hlc_init(&a, clock_of(&fc), BS_HLC_MAKE(T0 + 5000, 3));
    bs_hlc_init(&b, clock_of(&fc), BS_HLC_MAKE(T0 + 5000, 3));
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(bs_hlc_stamp(&a, 0), bs_hlc_now(&b));
        fc.ms += 4000;
    }
}

Test(hlc, stamp_subtracts_the_correction)
{
    fake_clock fc = {T0 + 600000}; /* ten minutes fast */
    bs_hlc h;

    bs_hlc_init(&h, clock_of(&fc), 0);
    h.correction_ms = 600000;
    h.horizon_ms = MAX_SKEW_MS;
    cr_assert_eq(bs_hlc_stamp(&h, 0), BS_HLC_MAKE(T0, 0));
}

Test(hlc, stamp_forgets_a_last_from_a_wrong_clock_beyond_the_horizon)
{
    fake_clock fc = {T0};
    bs_hlc h;

    /* Stamped ten minutes ahead before the clock was fixed: the next
     * write would carry that on for ten minutes. */
    bs_hlc_init(&h, clock_of(&fc), BS_HLC_MAKE(T0 + 600000, 0));
    h.horizon_ms = MAX_SKEW_MS;
    cr_assert_eq(bs_hlc_stamp(&h, 0), BS_HLC_MAKE(T0, 0));
    cr_assert_eq(h.last, BS_HLC_MAKE(T0, 0), "last goes down with it");
}

Test(hlc, stamp_keeps_a_last_within_the_horizon)
{
    fake_clock fc = {T0};
    bs_hlc h;

    /* Observed from a peer up to max_skew ahead, or a clock stepped back a
     * little: continue above it, as bs_hlc_now does. */
    bs_hlc_init(&h, clock_of(&fc), BS_HLC_MAKE(T0 + MAX_SKEW_MS, 7));
    h.horizon_ms = MAX_SKEW_MS;
    cr_assert_eq(bs_hlc_stamp(&h, 0), BS_HLC_MAKE(T0 + MAX_SKEW_MS, 8));
}

Test(hlc, stamp_is_above_the_floor)
{
    fake_clock fc = {T0};
    bs_hlc h;
    uint64_t floor = BS_HLC_MAKE(T0 + 600000, 41), ts;

    /* What the write overwrites was stamped ahead: the write still orders
     * after it, however far the last stamp was forgotten. */
    bs_hlc_init(&h, clock_of(&fc), BS_HLC_MAKE(T0 + 600000, 0));
    h.horizon_ms = MAX_SKEW_MS;
    ts = bs_hlc_stamp(&h, floor);
    cr_assert_eq(ts, floor + 1);
    cr_assert_eq(h.last, ts);
    cr_assert_eq(bs_hlc_stamp(&h, 0), BS_HLC_MAKE(T0, 0),
                 "another record is stamped with the wall clock again");
}

Test(hlc, system_clock_has_a_base_that_stands_still)
{
    bs_clock_base a, b;

    /* wall - boottime moves only when the wall clock is stepped: two
     * readings a moment apart agree to a few ms, in the same boot. */
    cr_assert(bs_clock_base_of(bs_clock_system, &a));
    cr_assert(bs_clock_base_of(bs_clock_system, &b));
    cr_assert_eq(memcmp(a.boot, b.boot, BS_BOOT_ID_LEN), 0);
    cr_assert_lt(b.ms - a.ms < 0 ? a.ms - b.ms : b.ms - a.ms, 50);
    cr_assert_eq(bs_clock_base_of(clock_of(&(fake_clock){T0}), &a), 0,
                 "a clock without a base says so");
}
