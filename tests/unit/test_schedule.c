/*
 * test_schedule.c - unit tests of node/schedule.c: the spec grammar (accept
 * and reject tables), canonical formatting, windows, and next-run times in
 * UTC, Europe/Tallinn and America/New_York including both DST transitions
 * of 2026.  Expected times are literal unix timestamps checked with
 * `TZ=... date -d @TS`, or built with mktime() for times that are not near
 * a transition; a brute-force minute walker cross-checks cron matching.
 */
#if !defined(_POSIX_C_SOURCE) && !defined(_DEFAULT_SOURCE) &&                  \
    !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../node/schedule.h"

static void
set_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

/* Local time y-mo-d h:mi via mktime(); only for times away from DST. */
static int64_t
at(int y, int mo, int d, int h, int mi)
{
    struct tm tm;

    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm);
}

static bs_schedule
parse_ok(const char *spec)
{
    bs_schedule s;
    bs_errbuf err = {{0}};
    bs_err e = bs_schedule_parse(&s, spec, &err);

    cr_assert_eq(e, BS_OK, "parse \"%s\" failed: %s", spec, bs_errmsg(&err, e));
    return s;
}

static void
with_window(bs_schedule *s, const char *w)
{
    bs_errbuf err = {{0}};
    bs_err e = bs_schedule_parse_window(s, w, &err);

    cr_assert_eq(e, BS_OK, "window \"%s\" failed: %s", w, bs_errmsg(&err, e));
}

static int64_t
next_ok(const bs_schedule *s, int64_t now, int64_t last)
{
    int64_t next = -1;
    bs_err e = bs_schedule_next(s, now, last, &next);

    cr_assert_eq(e, BS_OK, "next(%lld) failed: %s", (long long)now,
                 bs_strerror(e));
    return next;
}

#define expect_next(s, now, last, want)                                        \
    do {                                                                       \
        int64_t got_ = next_ok((s), (now), (last));                            \
        int64_t want_ = (want);                                                \
        cr_assert_eq(got_, want_, "next(%lld): got %lld, want %lld (line %d)", \
                     (long long)(now), (long long)got_, (long long)want_,      \
                     __LINE__);                                                \
    } while (0)

/* Next run of SPEC after NOW (cron: last_run ignored). */
static int64_t
cron_after(const char *spec, int64_t now)
{
    bs_schedule s = parse_ok(spec);

    return next_ok(&s, now, 0);
}

/* ------------------------------------------------------------------ */
/* Accept table with canonical forms                                    */

static const struct {
    const char *spec, *canon;
} valid[] = {
    {"manual", "manual"},
    {"online", "online"},
    {"MANUAL", "manual"},
    {"  online  ", "online"},
    {"Every 30s", "every 30s"},
    {"every 15m", "every 15m"},
    {"every 2h", "every 2h"},
    {"every 1d", "every 1d"},
    {"every 7d", "every 7d"},
    {"every 1h30m", "every 1h30m"},
    {"every 1d2h3m4s", "every 1d2h3m4s"},
    {"every 90m", "every 1h30m"},
    {"every 1s", "every 1s"},
    {"every   5m", "every 5m"},
    {"every 3600s", "every 1h"},
    {"every 0h45m", "every 45m"},
    {"every 604800s", "every 7d"},
    {"every 6d23h59m59s", "every 6d23h59m59s"},
    {"* * * * *", "* * * * *"},
    {"0 2 * * *", "0 2 * * *"},
    {"*/15 8-18 * * 1-5", "*/15 8-18 * * 1-5"},
    {"0 0 1 * *", "0 0 1 * *"},
    {"0 0 29 2 *", "0 0 29 2 *"},
    {"0 12 13 * 5", "0 12 13 * 5"},
    {"0,30 * * * *", "0,30 * * * *"},
    {"5-10/2 * * * *", "5-9/2 * * * *"},
    {"5/15 * * * *", "5-50/15 * * * *"},
    {"0 0 * JAN,jul *", "0 0 * 1,7 *"},
    {"0 0 * * MON-FRI", "0 0 * * 1-5"},
    {"0 0 * * sun", "0 0 * * 0"},
    {"0 0 * * 7", "0 0 * * 0"},
    {"0 0 * * 0-7", "0 0 * * 0-6"},
    {"59 23 31 12 *", "59 23 31 12 *"},
    {"0 0 1-31 * 1", "0 0 1-31 * 1"},
    {"0 */6 * * *", "0 */6 * * *"},
    {"0 0 * * 5-7", "0 0 * * 0,5,6"},
    {"0 0 * * fri-SUN", "0 0 * * 0,5,6"},
    {"0 0 * * SUN-SUN", "0 0 * * 0"},
    {"1,2,3,10-20/5 * * * *", "1-3,10,15,20 * * * *"},
    {"0\t0 * * *", "0 0 * * *"},
    {"0  0  *  *  *", "0 0 * * *"},
    {" 0 0 * * * ", "0 0 * * *"},
    {"0 0 */2 * *", "0 0 */2 * *"},
    {"*/1 * * * *", "* * * * *"},
    {"0 0 * Dec Sat", "0 0 * 12 6"},
    {"0-59 0-23 * 1-12 *", "* * * * *"},
    {"0 9-17/2 * * *", "0 9-17/2 * * *"},
    {"30 4 1,15 * 5", "30 4 1,15 * 5"},
    {"0 0 * * */2", "0 0 * * */2"},
    {"0 0 1 */3 *", "0 0 1 */3 *"},
    {"15,45 */2 * * 1,3,5", "15,45 */2 * * 1-5/2"},
    {"0 0 * * 1,2", "0 0 * * 1,2"},
    {"0 0 1,2,3 * *", "0 0 1-3 * *"},
    {"0 0 31 * *", "0 0 31 * *"},
    {"0 0 30 2 1", "0 0 30 2 1"},
    {"00 07 * * *", "0 7 * * *"},
    {"0 0 * feb-Apr *", "0 0 * 2-4 *"},
    {"0 0 1 1 *", "0 0 1 1 *"},
    {"0 22 * * 1-5", "0 22 * * 1-5"},
};

Test(schedule, parse_valid_table)
{
    cr_assert_geq(sizeof valid / sizeof valid[0], 30);
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        bs_schedule s = parse_ok(valid[i].spec);
        char buf[BS_SCHED_FORMAT_MAX];
        int n = bs_schedule_format(&s, buf, sizeof buf);

        cr_assert_str_eq(buf, valid[i].canon, "format of \"%s\"",
                         valid[i].spec);
        cr_assert_eq(n, (int)strlen(valid[i].canon));
        cr_assert_eq(s.has_window, 0);
    }
}

Test(schedule, canonical_round_trip)
{
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        bs_schedule a = parse_ok(valid[i].spec);
        char buf[BS_SCHED_FORMAT_MAX], buf2[BS_SCHED_FORMAT_MAX];

        bs_schedule_format(&a, buf, sizeof buf);
        bs_schedule b = parse_ok(buf);
        bs_schedule_format(&b, buf2, sizeof buf2);
        cr_assert_str_eq(buf, buf2);
        cr_assert_eq(a.kind, b.kind, "%s", buf);
        cr_assert_eq(a.every_s, b.every_s, "%s", buf);
        cr_assert_eq(a.minutes, b.minutes, "%s", buf);
        cr_assert_eq(a.hours, b.hours, "%s", buf);
        cr_assert_eq(a.mdays, b.mdays, "%s", buf);
        cr_assert_eq(a.months, b.months, "%s", buf);
        cr_assert_eq(a.wdays, b.wdays, "%s", buf);
        if (a.kind == BS_SCHED_CRON) {
            cr_assert_eq(a.mday_star, b.mday_star, "%s", buf);
            cr_assert_eq(a.wday_star, b.wday_star, "%s", buf);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Reject table                                                         */

static const struct {
    const char *spec, *msg; /* msg: a substring of the error */
} invalid[] = {
    {"", "empty schedule"},
    {"   ", "empty schedule"},
    {"sometimes", "unknown schedule \"sometimes\""},
    {"manual now", "takes no arguments"},
    {"online please", "takes no arguments"},
    {"every", "missing interval"},
    {"every 30", "missing unit after 30"},
    {"every 30x", "unknown unit 'x'"},
    {"every 30M", "unknown unit 'M'"},
    {"every 0s", "at least 1s"},
    {"every 0h0m", "at least 1s"},
    {"every 8d", "longer than 7d"},
    {"every 7d1s", "longer than 7d"},
    {"every 99999999999999999999d", "longer than 7d"},
    {"every 30m1h", "largest first"},
    {"every 1h1h", "largest first"},
    {"every 1h 30m", "without spaces"},
    {"every -5m", "unexpected '-'"},
    {"every 1.5h", "fractions are not supported"},
    {"every h", "unexpected 'h'"},
    {"* * * *", "has 4 fields, expected 5"},
    {"* * * * * *", "has 6 fields, expected 5"},
    {"* * * * * # comment", "has 7 fields"},
    {"0", "has 1 field, expected 5"},
    {"0 24 * * *", "cron field 2 (hour): 24 is out of range 0-23"},
    {"60 * * * *", "cron field 1 (minute): 60 is out of range 0-59"},
    {"0 0 0 * *", "cron field 3 (day of month): 0 is out of range 1-31"},
    {"0 0 32 * *", "cron field 3 (day of month): 32 is out of range 1-31"},
    {"0 0 * 13 *", "cron field 4 (month): 13 is out of range 1-12"},
    {"0 0 * 0 *", "cron field 4 (month): 0 is out of range 1-12"},
    {"0 0 * * 8", "cron field 5 (day of week): 8 is out of range 0-7"},
    {"0 0-24 * * *", "cron field 2 (hour): 24 is out of range 0-23"},
    {"30-10 * * * *", "cron field 1 (minute): range 30-10 is reversed"},
    {"0 0 * * 5-0", "cron field 5 (day of week): range 5-0 is reversed"},
    {"0 0 * * FRI-MON", "cron field 5 (day of week): range FRI-MON is "
                        "reversed"},
    {"*/0 * * * *", "cron field 1 (minute): step 0 is not allowed"},
    {"0 1-5/0 * * *", "cron field 2 (hour): step 0 is not allowed"},
    {"0 */25 * * *", "cron field 2 (hour): step 25 is out of range 1-24"},
    {"0 0 * * */9", "step 9 is out of range 1-8"},
    {"1,,2 * * * *", "cron field 1 (minute): empty list item"},
    {",1 * * * *", "cron field 1 (minute): empty list item"},
    {"1, * * * *", "cron field 1 (minute): empty list item"},
    {"0 0 * 1, *", "cron field 4 (month): empty list item"},
    {"@daily", "@-macros like \"@daily\" are not supported; write \"0 0 * * "
               "*\""},
    {"@hourly", "not supported"},
    {"@reboot", "not supported"},
    {"5x * * * *", "cron field 1 (minute): unexpected 'x' in \"5x\""},
    {"0 0 * * MON-", "cron field 5 (day of week): missing value"},
    {"0 0 * * FOO", "unknown name \"FOO\""},
    {"0 0 * JANUARY *", "unknown name \"JANUARY\""},
    {"0 JAN * * *", "cron field 2 (hour): \"JAN\" is not a number"},
    {"*-5 * * * *", "unexpected '-' in \"*-5\""},
    {"1-2-3 * * * *", "unexpected '-' in \"1-2-3\""},
    {"0 0 30 2 *", "never matches"},
    {"0 0 31 4,6,9,11 *", "never matches"},
    {"5/ * * * *", "missing step after '/'"},
    {"0 /5 * * *", "unexpected '/' where a value belongs"},
    {"0 0 * * 1;2", "unexpected ';'"},
    {"0 0 1-5/ * *", "missing step"},
    {"0 0 * * 1/x", "missing step"},
    {"0 0 ? * *", "unexpected '?'"},
    {"0 0 L * *", "\"L\" is not a number"},
    {"0 0 * * 1#2", "unexpected '#'"},
    {"99999999999 * * * *", "is out of range 0-59"},
    {"-5 * * * *", "cron field 1 (minute): unexpected '-' where a value"},
    {"every30s", "unknown schedule \"every30s\""},
    {"daily", "unknown schedule"},
    {"0 0 * * * ; rm -rf /", "has 9 fields"},
};

Test(schedule, parse_invalid_table)
{
    cr_assert_geq(sizeof invalid / sizeof invalid[0], 30);
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        bs_schedule s;
        bs_errbuf err = {{0}};
        bs_err e;

        memset(&s, 0x5a, sizeof s);
        e = bs_schedule_parse(&s, invalid[i].spec, &err);
        cr_assert_eq(e, BS_EINVAL, "\"%s\" was accepted", invalid[i].spec);
        cr_assert(strstr(err.msg, invalid[i].msg) != NULL,
                  "\"%s\": message \"%s\" lacks \"%s\"", invalid[i].spec,
                  err.msg, invalid[i].msg);
        /* *s untouched on failure */
        for (size_t b = 0; b < sizeof s; b++)
            cr_assert_eq(((unsigned char *)&s)[b], 0x5a);
    }
}

Test(schedule, parse_error_exact_message)
{
    bs_schedule s;
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_schedule_parse(&s, "0 24 * * *", &err), BS_EINVAL);
    cr_assert_str_eq(err.msg, "cron field 2 (hour): 24 is out of range 0-23");
    /* NULL errbuf and NULL spec are allowed */
    cr_assert_eq(bs_schedule_parse(&s, "0 24 * * *", NULL), BS_EINVAL);
    cr_assert_eq(bs_schedule_parse(&s, NULL, NULL), BS_EINVAL);
}

Test(schedule, parse_too_long)
{
    char spec[BS_SCHED_SPEC_MAX + 2];
    bs_schedule s;
    bs_errbuf err = {{0}};

    memset(spec, ' ', sizeof spec - 1);
    spec[sizeof spec - 1] = '\0';
    memcpy(spec, "manual", 6);
    cr_assert_eq(bs_schedule_parse(&s, spec, &err), BS_EINVAL);
    cr_assert(strstr(err.msg, "too long") != NULL, "%s", err.msg);
    spec[BS_SCHED_SPEC_MAX] = '\0'; /* exactly the limit: accepted */
    cr_assert_eq(bs_schedule_parse(&s, spec, &err), BS_OK);
    cr_assert_eq(s.kind, BS_SCHED_MANUAL);
}

/* ------------------------------------------------------------------ */
/* Parsed fields                                                        */

Test(schedule, parse_fields)
{
    bs_schedule s = parse_ok("every 1h30m");

    cr_assert_eq(s.kind, BS_SCHED_EVERY);
    cr_assert_eq(s.every_s, 5400);
    s = parse_ok("every 30s");
    cr_assert_eq(s.every_s, 30);
    s = parse_ok("every 7d");
    cr_assert_eq(s.every_s, 604800);
    s = parse_ok("manual");
    cr_assert_eq(s.kind, BS_SCHED_MANUAL);
    s = parse_ok("Online");
    cr_assert_eq(s.kind, BS_SCHED_ONLINE);

    s = parse_ok("*/15 8-18 * * 1-5");
    cr_assert_eq(s.kind, BS_SCHED_CRON);
    cr_assert_eq(s.minutes,
                 (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
    cr_assert_eq(s.hours, 0x7ff00u); /* bits 8..18 */
    cr_assert_eq(s.mdays, 0xfffffffeu);
    cr_assert_eq(s.months, 0x1ffe);
    cr_assert_eq(s.wdays, 0x3e);
    cr_assert_eq(s.mday_star, 1);
    cr_assert_eq(s.wday_star, 0);

    s = parse_ok("0 0 * * 7");
    cr_assert_eq(s.wdays, 0x01);
    s = parse_ok("0 0 * * 5-7");
    cr_assert_eq(s.wdays, 0x61);
    s = parse_ok("0 0 * * *");
    cr_assert_eq(s.wdays, 0x7f);
    cr_assert_eq(s.wday_star, 1);
    s = parse_ok("0 0 */2 * *");
    cr_assert_eq(s.mday_star, 0, "\"*/2\" counts as restricted");
    cr_assert_eq(s.mdays & 0xf, 0xa); /* 1 and 3 */
    s = parse_ok("0 0 * jan,MAR,Dec *");
    cr_assert_eq(s.months, (1 << 1) | (1 << 3) | (1 << 12));
}

/* ------------------------------------------------------------------ */
/* Formatting                                                           */

Test(schedule, format_truncates_like_snprintf)
{
    bs_schedule s = parse_ok("every 1h30m");
    char buf[5];

    cr_assert_eq(bs_schedule_format(&s, NULL, 0), 11);
    memset(buf, 'X', sizeof buf);
    cr_assert_eq(bs_schedule_format(&s, buf, sizeof buf), 11);
    cr_assert_str_eq(buf, "ever");
    s = parse_ok("*/15 8-18 * * 1-5");
    memset(buf, 'X', sizeof buf);
    cr_assert_eq(bs_schedule_format(&s, buf, 1), 17);
    cr_assert_eq(buf[0], '\0');
    cr_assert_eq(buf[1], 'X');
}

Test(schedule, format_longest_cron_fits)
{
    bs_schedule s = parse_ok("0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,"
                             "34,36,38,40,42,44,46,48,50,52,54,56,59 "
                             "0,2,4,6,8,10,12,14,16,18,20,23 "
                             "1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,30 "
                             "1,3,5,7,9,12 0,2,4,5");
    char buf[BS_SCHED_FORMAT_MAX];
    int n = bs_schedule_format(&s, buf, sizeof buf);

    cr_assert_lt(n, BS_SCHED_FORMAT_MAX);
    cr_assert_eq(n, (int)strlen(buf));
    bs_schedule t = parse_ok(buf);
    cr_assert_eq(t.minutes, s.minutes);
    cr_assert_eq(t.hours, s.hours);
    cr_assert_eq(t.mdays, s.mdays);
    cr_assert_eq(t.months, s.months);
    cr_assert_eq(t.wdays, s.wdays);
}

/* ------------------------------------------------------------------ */
/* Windows                                                              */

Test(schedule, window_parse_format)
{
    bs_schedule s = parse_ok("every 15m");
    char buf[32];

    cr_assert_eq(bs_schedule_format_window(&s, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "");
    with_window(&s, "08:00-17:00");
    cr_assert_eq(s.has_window, 1);
    cr_assert_eq(s.win_start, 480);
    cr_assert_eq(s.win_end, 1020);
    cr_assert_eq(s.every_s, 900, "the spec is left alone");
    cr_assert_eq(bs_schedule_format_window(&s, buf, sizeof buf), 11);
    cr_assert_str_eq(buf, "08:00-17:00");
    with_window(&s, "22:00-06:00");
    cr_assert_eq(s.win_start, 1320);
    cr_assert_eq(s.win_end, 360);
    with_window(&s, " 8:30-9:05 ");
    bs_schedule_format_window(&s, buf, sizeof buf);
    cr_assert_str_eq(buf, "08:30-09:05");
    with_window(&s, "23:59-00:00");
    cr_assert_eq(s.win_start, 1439);
    cr_assert_eq(s.win_end, 0);

    /* parsing the spec clears the window */
    cr_assert_eq(bs_schedule_parse(&s, "every 1h", NULL), BS_OK);
    cr_assert_eq(s.has_window, 0);
    with_window(&s, "01:00-02:00");
    bs_schedule_clear_window(&s);
    cr_assert_eq(s.has_window, 0);
    cr_assert_eq(bs_schedule_format_window(&s, buf, sizeof buf), 0);
}

Test(schedule, window_invalid)
{
    static const struct {
        const char *w, *msg;
    } bad[] = {
        {"", "empty"},
        {"08:00", "expected '-'"},
        {"08:00-08:00", "start and end are both 08:00"},
        {"24:00-01:00", "start hour 24 is out of range 0-23"},
        {"08:00-24:00", "end hour 24 is out of range 0-23"},
        {"08:60-09:00", "start minute 60 is out of range 0-59"},
        {"8-9", "start time is not HH:MM"},
        {"08:00-17:00x", "unexpected 'x'"},
        {"08:0-09:00", "start time is not HH:MM"},
        {"123:00-01:00", "start time is not HH:MM"},
        {"08:00 - 09:00", "expected '-'"},
        {"08:00-", "end time is not HH:MM"},
        {"-08:00", "start time is not HH:MM"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bs_schedule s = parse_ok("online");
        bs_errbuf err = {{0}};

        cr_assert_eq(bs_schedule_parse_window(&s, bad[i].w, &err), BS_EINVAL,
                     "\"%s\" accepted", bad[i].w);
        cr_assert(strstr(err.msg, bad[i].msg) != NULL,
                  "\"%s\": \"%s\" lacks \"%s\"", bad[i].w, err.msg, bad[i].msg);
        cr_assert_eq(s.has_window, 0, "unchanged on failure");
    }
}

Test(schedule, in_window_utc)
{
    bs_schedule s = parse_ok("online");

    set_tz("UTC");
    cr_assert_eq(bs_schedule_in_window(&s, 1), 1, "no window: always in");
    with_window(&s, "22:00-06:00");
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 23, 0)), 1);
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 22, 0)), 1);
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 21, 59)), 0);
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 0, 0)), 1);
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 5, 59)), 1);
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 6, 0)), 0);
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 12, 0)), 0);
    with_window(&s, "08:00-17:00");
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 7, 59) + 59), 0);
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 8, 0)), 1);
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 16, 59) + 59), 1);
    cr_assert_eq(bs_schedule_in_window(&s, at(2026, 5, 10, 17, 0)), 0);
}

Test(schedule, in_window_local_time)
{
    bs_schedule s = parse_ok("online");

    with_window(&s, "08:00-17:00");
    set_tz("Europe/Tallinn"); /* UTC+3 in summer */
    cr_assert_eq(bs_schedule_in_window(&s, 1778389200), 1); /* 08:00 EEST */
    cr_assert_eq(bs_schedule_in_window(&s, 1778389199), 0);
    set_tz("America/New_York"); /* the same instant is 01:00 EDT */
    cr_assert_eq(bs_schedule_in_window(&s, 1778389200), 0);
}

/* ------------------------------------------------------------------ */
/* Next run: cron in UTC                                                */

Test(schedule, next_daily_0200)
{
    set_tz("UTC");
    /* 2026-05-10 01:00 UTC = 1778374800; 02:00 = 1778378400 */
    cr_assert_eq(cron_after("0 2 * * *", 1778374800), 1778378400);
    cr_assert_eq(cron_after("0 2 * * *", 1778378399), 1778378400);
    cr_assert_eq(cron_after("0 2 * * *", 1778378400), 1778378400 + 86400,
                 "strictly after now");
    cr_assert_eq(cron_after("0 2 * * *", 1778378401), 1778378400 + 86400);
    /* year end */
    cr_assert_eq(cron_after("0 2 * * *", at(2026, 12, 31, 3, 0)),
                 at(2027, 1, 1, 2, 0));
}

Test(schedule, next_business_quarter_hours)
{
    const char *spec = "*/15 8-18 * * 1-5";

    set_tz("UTC");
    /* Fri 2026-05-08 18:45 is the last of the week */
    cr_assert_eq(cron_after(spec, at(2026, 5, 8, 18, 44)),
                 at(2026, 5, 8, 18, 45));
    cr_assert_eq(cron_after(spec, at(2026, 5, 8, 18, 45)),
                 at(2026, 5, 11, 8, 0));
    /* Sat and Sun jump to Mon 08:00 */
    cr_assert_eq(cron_after(spec, at(2026, 5, 9, 12, 0)),
                 at(2026, 5, 11, 8, 0));
    /* Wed before, during and after hours */
    cr_assert_eq(cron_after(spec, at(2026, 5, 6, 7, 0)), at(2026, 5, 6, 8, 0));
    cr_assert_eq(cron_after(spec, at(2026, 5, 6, 10, 7)),
                 at(2026, 5, 6, 10, 15));
    cr_assert_eq(cron_after(spec, at(2026, 5, 6, 10, 59) + 30),
                 at(2026, 5, 6, 11, 0));
    cr_assert_eq(cron_after(spec, at(2026, 5, 6, 19, 0)), at(2026, 5, 7, 8, 0));
}

Test(schedule, next_monthly)
{
    set_tz("UTC");
    cr_assert_eq(cron_after("0 0 1 * *", at(2026, 1, 31, 12, 0)),
                 at(2026, 2, 1, 0, 0));
    cr_assert_eq(cron_after("0 0 1 * *", at(2026, 2, 1, 0, 0)),
                 at(2026, 3, 1, 0, 0));
    cr_assert_eq(cron_after("0 0 1 * *", at(2026, 12, 15, 0, 0)),
                 at(2027, 1, 1, 0, 0));
    /* the 31st skips short months */
    cr_assert_eq(cron_after("0 0 31 * *", at(2026, 4, 1, 0, 0)),
                 at(2026, 5, 31, 0, 0));
    cr_assert_eq(cron_after("0 0 31 * *", at(2026, 5, 31, 0, 0)),
                 at(2026, 7, 31, 0, 0));
    cr_assert_eq(cron_after("0 0 1 */3 *", at(2026, 5, 10, 0, 0)),
                 at(2026, 7, 1, 0, 0));
    cr_assert_eq(cron_after("0 0 1 1 *", at(2026, 5, 10, 0, 0)),
                 at(2027, 1, 1, 0, 0));
}

Test(schedule, next_leap_day)
{
    set_tz("UTC");
    cr_assert_eq(cron_after("0 0 29 2 *", at(2026, 3, 1, 0, 0)),
                 at(2028, 2, 29, 0, 0));
    cr_assert_eq(cron_after("0 0 29 2 *", at(2028, 2, 28, 23, 59)),
                 at(2028, 2, 29, 0, 0));
    cr_assert_eq(cron_after("0 0 29 2 *", at(2028, 2, 29, 0, 0)),
                 at(2032, 2, 29, 0, 0));
    /* 2100 is not a leap year: eight years from 2096 to 2104 */
    cr_assert_eq(cron_after("0 0 29 2 *", at(2096, 3, 1, 0, 0)),
                 at(2104, 2, 29, 0, 0));
    cr_assert_eq(at(2028, 2, 29, 0, 0), 1835395200);
}

Test(schedule, next_dom_dow_or_rule)
{
    const char *spec = "0 12 13 * 5"; /* the 13th OR any Friday */

    set_tz("UTC");
    /* Sun 2026-02-01 -> Fri 6th */
    cr_assert_eq(cron_after(spec, at(2026, 2, 1, 0, 0)), at(2026, 2, 6, 12, 0));
    /* Fri 13 Feb 2026 matches both, once */
    cr_assert_eq(cron_after(spec, at(2026, 2, 6, 12, 0)),
                 at(2026, 2, 13, 12, 0));
    cr_assert_eq(cron_after(spec, at(2026, 2, 13, 12, 0)),
                 at(2026, 2, 20, 12, 0));
    /* Fri 10 Apr -> Mon 13 Apr (the 13th) -> Fri 17 Apr */
    cr_assert_eq(cron_after(spec, at(2026, 4, 10, 12, 0)),
                 at(2026, 4, 13, 12, 0));
    cr_assert_eq(cron_after(spec, at(2026, 4, 13, 12, 0)),
                 at(2026, 4, 17, 12, 0));
    /* only one restricted: AND with the "*" */
    cr_assert_eq(cron_after("0 12 13 * *", at(2026, 4, 10, 12, 0)),
                 at(2026, 4, 13, 12, 0));
    cr_assert_eq(cron_after("0 12 13 * *", at(2026, 4, 13, 12, 0)),
                 at(2026, 5, 13, 12, 0));
    cr_assert_eq(cron_after("0 12 * * 5", at(2026, 4, 10, 12, 0)),
                 at(2026, 4, 17, 12, 0));
    /* "1-31" is a restriction: with a weekday it matches every day */
    cr_assert_eq(cron_after("0 12 1-31 * 1", at(2026, 4, 10, 12, 0)),
                 at(2026, 4, 11, 12, 0));
    cr_assert_eq(cron_after("0 12 * * 1", at(2026, 4, 10, 12, 0)),
                 at(2026, 4, 13, 12, 0));
    /* "*\/2" day of month is restricted too: odd days OR Mondays */
    cr_assert_eq(cron_after("0 12 */2 * 1", at(2026, 4, 11, 12, 0)),
                 at(2026, 4, 13, 12, 0));
    cr_assert_eq(cron_after("0 12 */2 * 1", at(2026, 4, 13, 12, 0)),
                 at(2026, 4, 15, 12, 0));
    cr_assert_eq(cron_after("0 12 */2 * 2", at(2026, 4, 13, 12, 0)),
                 at(2026, 4, 14, 12, 0));
    /* day 30 in February only via the weekday: Mondays of February */
    cr_assert_eq(cron_after("0 0 30 2 1", at(2027, 1, 1, 0, 0)),
                 at(2027, 2, 1, 0, 0));
}

Test(schedule, next_sunday_as_7_and_names)
{
    set_tz("UTC");
    /* Sun 2026-05-10 */
    cr_assert_eq(cron_after("0 9 * * 7", at(2026, 5, 6, 0, 0)),
                 at(2026, 5, 10, 9, 0));
    cr_assert_eq(cron_after("0 9 * * SUN", at(2026, 5, 6, 0, 0)),
                 at(2026, 5, 10, 9, 0));
    cr_assert_eq(cron_after("0 9 * * sat-sun", at(2026, 5, 6, 0, 0)),
                 at(2026, 5, 9, 9, 0));
    cr_assert_eq(cron_after("0 9 1 jun *", at(2026, 5, 6, 0, 0)),
                 at(2026, 6, 1, 9, 0));
}

/* Brute-force reference: walk every minute in local time (no DST rules). */
static int
ref_match(const bs_schedule *s, const struct tm *tm)
{
    int dom = (int)((s->mdays >> tm->tm_mday) & 1);
    int dow = (s->wdays >> tm->tm_wday) & 1;
    int day;

    if (s->mday_star || s->wday_star)
        day = dom && dow;
    else
        day = dom || dow;
    return ((s->minutes >> tm->tm_min) & 1) &&
           ((s->hours >> tm->tm_hour) & 1) &&
           ((s->months >> (tm->tm_mon + 1)) & 1) && day;
}

static int64_t
ref_next(const bs_schedule *s, int64_t now, int max_minutes)
{
    int64_t t = now - (now % 60 + 60) % 60 + 60;

    for (int i = 0; i < max_minutes; i++, t += 60) {
        time_t tt = (time_t)t;
        struct tm tm;

        localtime_r(&tt, &tm);
        if (ref_match(s, &tm) && bs_schedule_in_window(s, t))
            return t;
    }
    return -1;
}

Test(schedule, next_matches_brute_force)
{
    static const char *specs[] = {
        "* * * * *",           "0 2 * * *",         "*/15 8-18 * * 1-5",
        "0 12 13 * 5",         "5/15 * * * *",      "0 */6 * * *",
        "59 23 * * *",         "0,30 9,17 * * 1,3", "0 0 * * 0",
        "7 7 7 * *",           "0 12 1-31 * 1",     "30 4 1,15 * 5",
        "1-3,10-20/5 * * * *", "0 0 */2 * 2",       "0 9-17/2 * * mon-fri",
    };
    static const char *zones[] = {"UTC", "Europe/Tallinn", "America/New_York",
                                  "Asia/Kolkata"};
    /* summer and winter days well away from DST changes */
    static const int64_t nows[] = {1781175661, 1781222400, 1781305199,
                                   1768478400, 1768519230};

    for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
        set_tz(zones[z]);
        for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
            for (int w = 0; w < 2; w++) {
                bs_schedule s = parse_ok(specs[i]);

                if (w)
                    with_window(&s, "20:30-03:15");
                for (size_t k = 0; k < sizeof nows / sizeof nows[0]; k++) {
                    int64_t want = ref_next(&s, nows[k], 8 * 1440);
                    int64_t got = -1;
                    bs_err e = bs_schedule_next(&s, nows[k], 0, &got);

                    if (want < 0)
                        continue; /* beyond the walk; not comparable */
                    cr_assert_eq(e, BS_OK);
                    cr_assert_eq(got, want,
                                 "%s %s win=%d now=%lld: got %lld want %lld",
                                 zones[z], specs[i], w, (long long)nows[k],
                                 (long long)got, (long long)want);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* Next run: every                                                      */

Test(schedule, next_every)
{
    bs_schedule s = parse_ok("every 15m");
    const int64_t now = 1778400000;

    set_tz("UTC");
    expect_next(&s, now, 0, now);  /* never ran: due now */
    expect_next(&s, now, -5, now); /* never ran */
    expect_next(&s, now, now - 100, now + 800);
    expect_next(&s, now, now - 900, now); /* exactly due */
    expect_next(&s, now, now - 901, now); /* overdue: once, now */
    expect_next(&s, now, now - 86400 * 30, now);
    expect_next(&s, now, now, now + 900);
    expect_next(&s, now, now + 5000, now + 900); /* clock stepped back */

    s = parse_ok("every 1h30m");
    expect_next(&s, now, now - 60, now + 5340);
    s = parse_ok("every 1s");
    expect_next(&s, now, now, now + 1);
    s = parse_ok("every 7d");
    expect_next(&s, now, now - 1, now + 604799);
}

Test(schedule, next_every_window_wrapping_midnight)
{
    bs_schedule s = parse_ok("every 2h");

    set_tz("UTC");
    with_window(&s, "22:00-06:00");
    /* due 13:59, outside: opens 22:00 */
    expect_next(&s, at(2026, 5, 10, 12, 0), at(2026, 5, 10, 11, 59),
                at(2026, 5, 10, 22, 0));
    /* 23:00 + 2h = 01:00 next day, inside */
    expect_next(&s, at(2026, 5, 10, 23, 30), at(2026, 5, 10, 23, 0),
                at(2026, 5, 11, 1, 0));
    /* 04:30 + 2h = 06:30, outside: 22:00 the same day */
    expect_next(&s, at(2026, 5, 11, 5, 0), at(2026, 5, 11, 4, 30),
                at(2026, 5, 11, 22, 0));
    /* never ran, now inside */
    expect_next(&s, at(2026, 5, 11, 3, 0), 0, at(2026, 5, 11, 3, 0));
    /* never ran, now outside */
    expect_next(&s, at(2026, 5, 11, 6, 0), 0, at(2026, 5, 11, 22, 0));
}

Test(schedule, next_every_window_seconds)
{
    bs_schedule s = parse_ok("every 30s");

    set_tz("UTC");
    with_window(&s, "08:00-17:00");
    /* due 07:59:50 -> opens 08:00:00 */
    expect_next(&s, at(2026, 5, 11, 7, 59) + 30, at(2026, 5, 11, 7, 59) + 20,
                at(2026, 5, 11, 8, 0));
    /* due 16:59:50 -> inside */
    expect_next(&s, at(2026, 5, 11, 16, 59) + 30, at(2026, 5, 11, 16, 59) + 20,
                at(2026, 5, 11, 16, 59) + 50);
    /* due 17:00:10 -> tomorrow 08:00 */
    expect_next(&s, at(2026, 5, 11, 16, 59) + 50, at(2026, 5, 11, 16, 59) + 40,
                at(2026, 5, 12, 8, 0));
}

Test(schedule, next_cron_window)
{
    set_tz("UTC");
    bs_schedule s = parse_ok("*/15 * * * *");

    with_window(&s, "22:00-06:00");
    expect_next(&s, at(2026, 5, 10, 12, 0), 0, at(2026, 5, 10, 22, 0));
    expect_next(&s, at(2026, 5, 10, 5, 50), 0, at(2026, 5, 10, 22, 0));
    expect_next(&s, at(2026, 5, 10, 5, 40), 0, at(2026, 5, 10, 5, 45));
    expect_next(&s, at(2026, 5, 10, 23, 59), 0, at(2026, 5, 11, 0, 0));

    s = parse_ok("0 * * * *");
    with_window(&s, "09:30-10:30");
    expect_next(&s, at(2026, 5, 10, 8, 0), 0, at(2026, 5, 10, 10, 0));
    expect_next(&s, at(2026, 5, 10, 10, 0), 0, at(2026, 5, 11, 10, 0));

    /* weekday rule and window together */
    s = parse_ok("0 * * * 1-5");
    with_window(&s, "17:00-09:00");
    expect_next(&s, at(2026, 5, 8, 20, 30), 0, at(2026, 5, 8, 21, 0));
    expect_next(&s, at(2026, 5, 8, 23, 0), 0, at(2026, 5, 11, 0, 0));
}

Test(schedule, next_window_excludes_everything)
{
    int64_t next = 42;

    set_tz("UTC");
    bs_schedule s = parse_ok("0 3 * * *");
    with_window(&s, "08:00-17:00");
    cr_assert_eq(bs_schedule_next(&s, at(2026, 5, 10, 0, 0), 0, &next),
                 BS_ENOTFOUND);
    cr_assert_eq(next, 42, "untouched");
    s = parse_ok("0 12 * * *");
    with_window(&s, "22:00-06:00");
    cr_assert_eq(bs_schedule_next(&s, at(2026, 5, 10, 0, 0), 0, &next),
                 BS_ENOTFOUND);
}

Test(schedule, next_manual_online_and_bad_now)
{
    int64_t next = 42;
    bs_schedule s = parse_ok("manual");

    cr_assert_eq(bs_schedule_next(&s, 1778400000, 0, &next), BS_ENOTFOUND);
    s = parse_ok("online");
    cr_assert_eq(bs_schedule_next(&s, 1778400000, 0, &next), BS_ENOTFOUND);
    cr_assert_eq(next, 42);
    s = parse_ok("0 0 * * *");
    cr_assert_eq(bs_schedule_next(&s, -1, 0, &next), BS_EINVAL);
    cr_assert_eq(bs_schedule_next(&s, INT64_MAX, 0, &next), BS_EINVAL);
    s = parse_ok("every 1m");
    cr_assert_eq(bs_schedule_next(&s, -1, 0, &next), BS_EINVAL);
    cr_assert_eq(next, 42);
}

/* ------------------------------------------------------------------ */
/* DST: Europe/Tallinn 2026                                             */
/* spring: 29 Mar 03:00 EET -> 04:00 EEST at 01:00Z (1774746000)        */
/* autumn: 25 Oct 04:00 EEST -> 03:00 EET at 01:00Z (1792890000)        */

#define TLL_SPRING 1774746000
#define TLL_AUTUMN 1792890000

Test(schedule, dst_tallinn_spring_missing_time)
{
    set_tz("Europe/Tallinn");
    /* 03:30 does not exist on 29 Mar: run once at 04:00 EEST */
    cr_assert_eq(cron_after("30 3 * * *", 1774692000), TLL_SPRING);
    /* then 03:30 EEST on 30 Mar (00:30Z) */
    cr_assert_eq(cron_after("30 3 * * *", TLL_SPRING), 1774830600);
    cr_assert_eq(cron_after("0 3 * * *", TLL_SPRING - 1), TLL_SPRING);
    /* 04:00 exists and is the same instant */
    cr_assert_eq(cron_after("0 4 * * *", 1774692000), TLL_SPRING);
    /* 02:00 EEST on 30 Mar is 23:00Z on the 29th */
    cr_assert_eq(cron_after("0 2 * * *", TLL_SPRING), 1774825200);
    /* a time before the gap is unaffected: 02:50 EET = 00:50Z */
    cr_assert_eq(cron_after("50 2 * * *", 1774692000), 1774745400);
}

Test(schedule, dst_tallinn_spring_runs_once)
{
    set_tz("Europe/Tallinn");
    /* from 02:50 EET: 03:00, 03:15, 03:30, 03:45 and 04:00 are one run */
    cr_assert_eq(cron_after("*/15 * * * *", 1774745400), TLL_SPRING);
    cr_assert_eq(cron_after("*/15 * * * *", TLL_SPRING), TLL_SPRING + 900);
    cr_assert_eq(cron_after("*/15 3 * * *", 1774745400), TLL_SPRING);
    /* after the run at 04:00, hour 3 next happens on 30 Mar 03:00 EEST */
    cr_assert_eq(cron_after("*/15 3 * * *", TLL_SPRING), 1774828800);
    cr_assert_eq(cron_after("* * * * *", TLL_SPRING - 1), TLL_SPRING);
    cr_assert_eq(cron_after("* * * * *", TLL_SPRING - 61), TLL_SPRING - 60);
}

Test(schedule, dst_tallinn_spring_window)
{
    set_tz("Europe/Tallinn");
    /* window 03:30-05:00 opens at the end of the gap: 04:00 EEST */
    bs_schedule s = parse_ok("every 1h");
    with_window(&s, "03:30-05:00");
    expect_next(&s, 1774745400, 1774741500, TLL_SPRING);
    /* a window entirely in the gap does not exist that day */
    with_window(&s, "03:00-04:00");
    expect_next(&s, 1774745400, 1774741500, 1774828800);
    /* a cron run moved out of its window is dropped that day */
    s = parse_ok("30 3 * * *");
    with_window(&s, "03:00-04:00");
    expect_next(&s, 1774692000, 0, 1774830600);
    cr_assert_eq(bs_schedule_in_window(&s, TLL_SPRING), 0);
    cr_assert_eq(bs_schedule_in_window(&s, TLL_SPRING - 1), 0);
}

Test(schedule, dst_tallinn_autumn_repeated_time)
{
    set_tz("Europe/Tallinn");
    /* 03:30 happens at 00:30Z (EEST) and 01:30Z (EET): first one only */
    cr_assert_eq(cron_after("30 3 * * *", 1792843200), 1792888200);
    cr_assert_eq(cron_after("30 3 * * *", 1792888200), 1792978200);
    /* now in the second pass (03:10 EET) */
    cr_assert_eq(cron_after("30 3 * * *", 1792890600), 1792978200);
    /* hourly: 03:00 EEST (00:00Z), then 04:00 EET (02:00Z) */
    cr_assert_eq(cron_after("0 * * * *", 1792884600), 1792886400);
    cr_assert_eq(cron_after("0 * * * *", 1792886400), 1792893600);
    /* every minute in the second pass waits for 04:00 EET */
    cr_assert_eq(cron_after("* * * * *", TLL_AUTUMN - 1), 1792893600);
    cr_assert_eq(cron_after("* * * * *", TLL_AUTUMN - 61), TLL_AUTUMN - 60);
    /* a time after the repeat: 04:30 EET = 02:30Z */
    cr_assert_eq(cron_after("30 4 * * *", 1792843200), 1792895400);
}

Test(schedule, dst_tallinn_autumn_every_and_window)
{
    set_tz("Europe/Tallinn");
    /* elapsed time ignores the change */
    bs_schedule s = parse_ok("every 1h");
    expect_next(&s, 1792888200, 1792886400, 1792890000);
    /* both passes of 03:00-04:00 are inside a 03:00-04:00 window */
    s = parse_ok("every 30m");
    with_window(&s, "03:00-04:00");
    cr_assert_eq(bs_schedule_in_window(&s, 1792888200), 1);
    cr_assert_eq(bs_schedule_in_window(&s, 1792891800), 1);
    cr_assert_eq(bs_schedule_in_window(&s, 1792893600), 0);
    expect_next(&s, 1792890600, 1792889400, 1792891200);
    /* 03:45 EEST is outside 03:00-03:30; the clock falls back into it at
     * 01:00Z (03:00 EET), which is the opening */
    with_window(&s, "03:00-03:30");
    expect_next(&s, 1792889100, 1792887300, TLL_AUTUMN);
}

/* ------------------------------------------------------------------ */
/* DST: America/New_York 2026                                           */
/* spring: 8 Mar 02:00 EST -> 03:00 EDT at 07:00Z (1772953200)          */
/* autumn: 1 Nov 02:00 EDT -> 01:00 EST at 06:00Z (1793512800)          */

Test(schedule, dst_new_york)
{
    set_tz("America/New_York");
    /* 02:30 does not exist on 8 Mar: 03:00 EDT */
    cr_assert_eq(cron_after("30 2 * * *", 1772902800), 1772953200);
    cr_assert_eq(cron_after("30 2 * * *", 1772953200), 1773037800);
    /* 01:30 twice on 1 Nov: the EDT one (05:30Z) */
    cr_assert_eq(cron_after("30 1 * * *", 1793462400), 1793511000);
    cr_assert_eq(cron_after("30 1 * * *", 1793511000), 1793601000);
    /* from 01:20 EST (second pass) */
    cr_assert_eq(cron_after("30 1 * * *", 1793514000), 1793601000);
    /* midnight is unaffected on both days */
    cr_assert_eq(cron_after("0 0 * * *", 1772902800), at(2026, 3, 8, 0, 0));
    cr_assert_eq(at(2026, 3, 8, 0, 0), 1772946000);
    cr_assert_eq(cron_after("0 0 * * *", 1793462400), 1793505600);
    /* the weekly job on Sunday 2:15 moves to 3:00 on the spring day */
    cr_assert_eq(cron_after("15 2 * * 0", 1772902800), 1772953200);
    cr_assert_eq(cron_after("15 2 * * 0", 1772953200), at(2026, 3, 15, 2, 15));
}

Test(schedule, tz_change_is_picked_up)
{
    bs_schedule s = parse_ok("0 9 * * *");

    /* 2026-06-15 00:00Z */
    set_tz("UTC");
    expect_next(&s, 1781481600, 0, 1781481600 + 9 * 3600);
    setenv("TZ", "Europe/Tallinn", 1); /* no tzset(): next calls it */
    expect_next(&s, 1781481600, 0, 1781481600 + 6 * 3600);
    setenv("TZ", "America/New_York", 1);
    expect_next(&s, 1781481600, 0, 1781481600 + 13 * 3600);
}
