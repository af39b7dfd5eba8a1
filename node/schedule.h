/*
 * schedule.h - a peer link's exchange schedule: parsing and canonical
 * formatting.
 *
 * This module owns the schedule grammar (see docs/schedules.md): "manual",
 * "online", "every N{s|m|h|d}" and strict 5-field cron expressions, plus an
 * optional daily time window "HH:MM-HH:MM".  It is pure computation: it
 * keeps no state, starts no timers and does not retry; backoff after a
 * failed exchange belongs to the daemon.  When a parsed schedule runs
 * (bs_schedule_next, bs_schedule_in_window, and the time-zone and DST
 * rules) is schedule_next.h's, included at the end of this header so that
 * one include serves every user of schedules.
 */
#ifndef BS_SCHEDULE_H
#define BS_SCHEDULE_H

#include "../replication/common.h"

#include <stdint.h>

typedef enum {
    BS_SCHED_MANUAL, /* only when asked (CLI "sync now") */
    BS_SCHED_ONLINE, /* whenever the peer is reachable; no timer */
    BS_SCHED_EVERY,  /* every every_s seconds */
    BS_SCHED_CRON    /* the cron bitsets below */
} bs_sched_kind;

/* Smallest and largest "every" interval, in seconds. */
#define BS_SCHED_EVERY_MIN 1
#define BS_SCHED_EVERY_MAX (7 * 86400)

/* Longest spec bs_schedule_parse accepts, in bytes. */
#define BS_SCHED_SPEC_MAX 256

/* Size of a buffer that holds any formatted spec or window, with its NUL. */
#define BS_SCHED_FORMAT_MAX 512

typedef struct bs_schedule {
    bs_sched_kind kind;
    uint64_t every_s; /* BS_SCHED_EVERY: the interval in seconds */
    /*
     * BS_SCHED_CRON: bit i set when value i matches.  minutes bits 0-59,
     * hours 0-23, mdays 1-31, months 1-12, wdays 0-6 (0 is Sunday; a 7 in
     * the expression is stored as 0).
     */
    uint64_t minutes;
    uint32_t hours;
    uint32_t mdays;
    uint16_t months;
    uint8_t wdays;
    /*
     * 1 when the day-of-month (day-of-week) field was written exactly "*".
     * When both are 0 a day matches if EITHER field matches (Vixie cron);
     * "*" followed by a step ("*\/2") counts as restricted.
     */
    uint8_t mday_star, wday_star;
    /*
     * Optional daily window, minutes of the local day, start inclusive and
     * end exclusive; start > end means the window wraps midnight.
     */
    int has_window;
    int win_start, win_end;
} bs_schedule;

/*
 * Parse SPEC into *s.  SPEC is one of
 *   "manual"
 *   "online"
 *   "every D" where D is one or more NUMBER UNIT pairs, units s, m, h, d,
 *       largest first, each at most once, no spaces inside D: "every 30s",
 *       "every 15m", "every 1h30m"; the total must be 1s .. 7d
 *   a cron expression "MIN HOUR MDAY MONTH WDAY" of exactly 5 fields, each a
 *       comma list of "*", "N", "A-B", "*\/S", "A-B/S" or "A/S" (A to the
 *       field maximum); MONTH also takes JAN-DEC, WDAY SUN-SAT (any case,
 *       SUN ending a range is 7: "FRI-SUN"); WDAY 0 and 7 are both Sunday;
 *       a step runs from 1 to the number of values in the field.
 * Keywords are case-insensitive; units are lower case.  Leading and trailing
 * blanks are ignored and cron fields may be separated by several blanks.
 * A cron expression whose day of month can never occur in its months (e.g.
 * "0 0 30 2 *") is rejected.
 *
 * On success *s is overwritten completely (kind, fields, and the window is
 * cleared), so parse the spec before the window.  On failure *s is left
 * unchanged.
 *
 * Returns BS_OK, or BS_EINVAL with a message naming the problem in *err
 * (e.g. "cron field 2 (hour): 24 is out of range 0-23").
 */
BS_MUST_CHECK bs_err bs_schedule_parse(bs_schedule *s, const char *spec,
                                       bs_errbuf *err);

/*
 * Parse WINDOW, "HH:MM-HH:MM" (hours 0-23, one or two digits; minutes two
 * digits), into the window fields of *s, leaving the spec fields alone.  The
 * window runs from the first time (inclusive) to the second (exclusive) in
 * local time and wraps midnight when the first is later ("22:00-06:00").
 * Equal times are an error.  Returns BS_OK, or BS_EINVAL with a message in
 * *err; *s is unchanged on failure.
 */
BS_MUST_CHECK bs_err bs_schedule_parse_window(bs_schedule *s,
                                              const char *window,
                                              bs_errbuf *err);

/* Remove the window from *s (every time is then inside). */
void bs_schedule_clear_window(bs_schedule *s);

/*
 * Write the canonical spec of *s into buf (never the window): "manual",
 * "online", "every 1h30m" (units d h m s, largest first, zero parts left
 * out) or a cron expression with single spaces, numbers instead of names,
 * "*" for a full field (except a restricted day field, which keeps e.g.
 * "1-31"), "*\/S" or "A-B/S" for an arithmetic run of 3 or more values, and
 * otherwise a comma list of values and ranges of 3 or more.  Parsing the
 * result gives back the same schedule.  Like snprintf: returns the length
 * of the whole text, writes at most n bytes including the NUL (buf may be
 * NULL when n is 0); BS_SCHED_FORMAT_MAX is always enough.
 */
int bs_schedule_format(const bs_schedule *s, char *buf, size_t n);

/*
 * Write the window as "HH:MM-HH:MM", or "" when there is none; returns the
 * length like snprintf.
 */
int bs_schedule_format_window(const bs_schedule *s, char *buf, size_t n);

#include "schedule_next.h"

#endif
