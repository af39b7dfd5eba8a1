/*
 * schedule_next.h - a parsed schedule (schedule.h) against the local clock:
 * is a time inside its window, and when is its next run.
 *
 * Pure computation over libc time functions: no state, no timers.
 *
 * Time zone.  Cron fields and windows are local wall-clock time in the zone
 * named by TZ (bs_schedule_next and bs_schedule_in_window call tzset()
 * first, so a changed TZ takes effect on the next call).  Zone offsets are
 * assumed to be whole minutes (true for every zone since 1972).
 *
 * DST rules (decided here, tested in tests/unit/test_schedule.c):
 *   - A cron time that does not exist because the clocks jump forward (e.g.
 *     "30 3 * * *" in Europe/Tallinn on 29 March 2026, 03:00 -> 04:00) runs
 *     once, at the first instant after the gap (04:00 local).  Several
 *     matching minutes inside one gap still give one run.
 *   - A cron time that occurs twice because the clocks fall back (e.g. 03:30
 *     in Europe/Tallinn on 25 October 2026) runs once, at the first
 *     occurrence; the repeated hour is skipped.  So "0 * * * *" has a
 *     two-hour gap that night: use "every 1h" for elapsed-time intervals.
 *   - A window is a predicate on the local wall clock: during a repeated hour
 *     both passes are inside (or outside) alike; a window whose opening falls
 *     in a gap opens at the end of the gap; a cron run that a gap moves out
 *     of its window is dropped for that day.
 *   - "every" intervals are elapsed seconds and ignore DST.
 */
#ifndef BS_SCHEDULE_NEXT_H
#define BS_SCHEDULE_NEXT_H

#include "schedule.h"

/*
 * 1 if unix time t (seconds) is inside the window in local time, always 1
 * without a window; 0 when t is outside, or cannot be converted to local
 * time.
 */
int bs_schedule_in_window(const bs_schedule *s, int64_t t);

/*
 * The time of the next run, in unix seconds, into *next.
 *
 * BS_SCHED_EVERY (elapsed time; a result <= now means "due now"):
 *   - last_run <= 0 (never ran): now;
 *   - last_run + every_s when that is later than now;
 *   - now when last_run + every_s <= now (overdue, e.g. after the daemon was
 *     down: run once at once; missed runs are not replayed);
 *   - now + every_s when last_run + every_s > now + every_s (last_run is in
 *     the future: the clock was stepped back).
 * BS_SCHED_CRON: the first matching local minute strictly after now (DST
 *   rules at the top of this header); last_run is ignored.
 * With a window, a result outside it moves to the next instant inside it:
 * for EVERY the window opening, for CRON the first later matching minute
 * inside the window.  The result always satisfies bs_schedule_in_window.
 *
 * The search looks up to 8 years ahead (so "0 0 29 2 *" finds the next leap
 * day even across 2100).  Returns BS_OK; BS_ENOTFOUND for MANUAL and ONLINE
 * (no timed runs) or when no run fits the window within the search;
 * BS_EINVAL when now is negative or later than the year 3000.
 */
BS_MUST_CHECK bs_err bs_schedule_next(const bs_schedule *s, int64_t now,
                                      int64_t last_run, int64_t *next);

#endif
