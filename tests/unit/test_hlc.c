/*
 * test_hlc.c - unit tests of replication/hlc.c: the hybrid logical clock
 * driven by an injected fake wall clock (no sleeping).  Covers a frozen
 * clock, a wall clock that jumps backwards, observing remote timestamps,
 * counter overflow within one millisecond and continuing after a restart
 * from the persisted `last`.
 */
#include <criterion/criterion.h>

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
