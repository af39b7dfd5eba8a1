/*
 * schedule_next.c - a parsed schedule against the local clock: whether a
 * time is inside its window, and when its next run is (schedule_next.h).
 *
 * Local time is read only through localtime_r(): a local wall-clock minute
 * is turned back into unix time by searching for the instants whose wall
 * time equals it (mktime() is unspecified for times that fall in a DST
 * gap), which tells unique, repeated (fall back) and missing (spring
 * forward) minutes apart; the DST rules are in schedule_next.h.  Cron
 * matching walks civil dates arithmetically, skipping whole months, days
 * and hours that cannot match, so a search costs a few thousand steps at
 * most.  The grammar and the canonical text are schedule.c's.
 */
#if !defined(_POSIX_C_SOURCE) && !defined(_DEFAULT_SOURCE) &&                  \
    !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "schedule_next.h"

#include <time.h>

/* How far ahead bs_schedule_next looks: enough for two leap days apart. */
#define HORIZON_DAYS (8 * 366)
/* Latest `now` accepted: 3000-01-01T00:00:00Z. */
#define NOW_MAX INT64_C(32503680000)
#define DAY_S   86400
#define DAY_MIN 1440

/* ------------------------------------------------------------------ */
/* Civil calendar arithmetic (proleptic Gregorian, no time zone)        */

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if (a % b != 0 && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Days since 1970-01-01 of y-m-d (algorithm by Howard Hinnant). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = floor_div(y, 400);
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = floor_div(z, 146097);
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* 0 is Sunday; day 0 (1970-01-01) was a Thursday. */
static int
weekday_of(int64_t days)
{
    int64_t w = (days + 4) % 7;

    return (int)(w < 0 ? w + 7 : w);
}

static int
days_in_month(int y, int m)
{
    static const int dim[13] = {0,  31, 28, 31, 30, 31, 30,
                                31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 ? 28 + leap : dim[m];
}

/* ------------------------------------------------------------------ */
/* Local time                                                           */

/*
 * The local wall-clock time of unix time t, as seconds since 1970-01-01
 * 00:00 of the local calendar (so wall - t is the UTC offset).
 */
static int
wall_time(int64_t t, int64_t *wall)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if ((int64_t)tt != t || localtime_r(&tt, &tm) == NULL)
        return 0;
    *wall =
        days_from_civil(tm.tm_year + INT64_C(1900), tm.tm_mon + 1, tm.tm_mday) *
            DAY_S +
        tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    return 1;
}

enum { LOCAL_UNIQUE, LOCAL_REPEATED, LOCAL_GAP };

/*
 * The unix time of local wall time w.  A repeated wall time gives its first
 * occurrence (LOCAL_REPEATED); a wall time inside a gap gives the first
 * instant after the gap (LOCAL_GAP).  Returns 0 if local time fails.
 */
static int
local_to_unix(int64_t w, int64_t *t, int *kind)
{
    int64_t off[3], cw, lo, hi, omin, omax;
    int64_t found = 0;
    int i, j, nfound = 0;

    for (i = 0; i < 3; i++) {
        int64_t x = w + (i - 1) * DAY_S;

        if (!wall_time(x, &cw))
            return 0;
        off[i] = cw - x;
    }
    omin = omax = off[0];
    for (i = 0; i < 3; i++) {
        int dup = 0;

        for (j = 0; j < i; j++)
            dup |= off[j] == off[i];
        if (off[i] < omin)
            omin = off[i];
        if (off[i] > omax)
            omax = off[i];
        if (dup || !wall_time(w - off[i], &cw) || cw != w)
            continue;
        if (nfound == 0 || w - off[i] < found)
            found = w - off[i];
        nfound++;
    }
    if (nfound > 0) {
        *t = found;
        *kind = nfound > 1 ? LOCAL_REPEATED : LOCAL_UNIQUE;
        return 1;
    }
    /* A gap: find the first instant whose wall time is past w. */
    lo = w - omax;
    hi = w - omin;
    if (!wall_time(lo, &cw) || cw > w || !wall_time(hi, &cw) || cw <= w) {
        lo = w - 2 * DAY_S;
        hi = w + 2 * DAY_S;
        if (!wall_time(lo, &cw) || cw > w || !wall_time(hi, &cw) || cw <= w)
            return 0;
    }
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;

        if (!wall_time(mid, &cw))
            return 0;
        if (cw > w)
            hi = mid;
        else
            lo = mid;
    }
    *t = hi;
    *kind = LOCAL_GAP;
    return 1;
}

static int
window_has_minute(const bs_schedule *s, int mod)
{
    if (!s->has_window)
        return 1;
    if (s->win_start < s->win_end)
        return mod >= s->win_start && mod < s->win_end;
    return mod >= s->win_start || mod < s->win_end;
}

static int
window_has_time(const bs_schedule *s, int64_t t)
{
    int64_t w;

    if (!s->has_window)
        return 1;
    if (!wall_time(t, &w))
        return 0;
    return window_has_minute(s, (int)((w - floor_div(w, DAY_S) * DAY_S) / 60));
}

/*
 * The first instant at or after t inside the window, into *out.  Between
 * offset changes the wall clock runs with unix time, so jump straight to
 * the next wall-clock opening; if the offset changed on the way, stop at
 * the change and look again from there.
 */
static int
window_open(const bs_schedule *s, int64_t t, int64_t *out)
{
    int i;

    for (i = 0; i < 8; i++) {
        int64_t w, wc, wsec, c, lo, hi;
        int mod, dm;

        if (!wall_time(t, &w))
            return 0;
        wsec = w - floor_div(w, DAY_S) * DAY_S;
        mod = (int)(wsec / 60);
        if (window_has_minute(s, mod)) {
            *out = t;
            return 1;
        }
        dm = ((s->win_start - mod) % DAY_MIN + DAY_MIN) % DAY_MIN;
        c = t + (int64_t)dm * 60 - wsec % 60;
        if (!wall_time(c, &wc))
            return 0;
        if (wc - c == w - t) {
            t = c;
            continue;
        }
        lo = t;
        hi = c;
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;

            if (!wall_time(mid, &wc))
                return 0;
            if (wc - mid == w - t)
                lo = mid;
            else
                hi = mid;
        }
        t = hi;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Public                                                               */

int
bs_schedule_in_window(const bs_schedule *s, int64_t t)
{
    BS_ASSERT(s != NULL);
    if (!s->has_window)
        return 1;
    tzset();
    return window_has_time(s, t);
}

static int
day_matches(const bs_schedule *s, int64_t day, int mday)
{
    int mday_ok = (int)((s->mdays >> mday) & 1);
    int wday_ok = (s->wdays >> weekday_of(day)) & 1;

    if (s->mday_star && s->wday_star)
        return 1;
    if (s->mday_star)
        return wday_ok;
    if (s->wday_star)
        return mday_ok;
    return mday_ok || wday_ok; /* both restricted: either (Vixie cron) */
}

/*
 * Move (*day, *mod) - a local date as days since 1970 and a minute of that
 * day - forward to the first matching civil minute at or after it.  Returns
 * 0 when that would be after day `limit`.
 */
static int
cron_seek(const bs_schedule *s, int64_t *day, int *mod, int64_t limit)
{
    int64_t dd = *day;
    int h = *mod / 60, mi = *mod % 60;

    while (dd <= limit) {
        int y, m, d;

        civil_from_days(dd, &y, &m, &d);
        if (!((s->months >> m) & 1)) {
            dd += days_in_month(y, m) - d + 1;
            h = mi = 0;
            continue;
        }
        if (!day_matches(s, dd, d)) {
            dd++;
            h = mi = 0;
            continue;
        }
        while (h < 24 && !((s->hours >> h) & 1)) {
            h++;
            mi = 0;
        }
        if (h == 24) {
            dd++;
            h = mi = 0;
            continue;
        }
        while (mi < 60 && !((s->minutes >> mi) & 1))
            mi++;
        if (mi == 60) {
            mi = 0;
            if (++h == 24) {
                h = 0;
                dd++;
            }
            continue;
        }
        *day = dd;
        *mod = h * 60 + mi;
        return 1;
    }
    return 0;
}

static bs_err
cron_next(const bs_schedule *s, int64_t now, int64_t *next)
{
    int64_t w, day, limit;
    int mod;

    if (!wall_time(now, &w))
        return BS_EINVAL;
    day = floor_div(w, DAY_S);
    mod = (int)((w - day * DAY_S) / 60);
    limit = day + HORIZON_DAYS;
    while (cron_seek(s, &day, &mod, limit)) {
        int64_t t;
        int kind;

        if (!local_to_unix(day * DAY_S + mod * 60, &t, &kind))
            return BS_EINVAL;
        if (t > now) {
            if (window_has_time(s, t)) {
                *next = t;
                return BS_OK;
            }
            if (kind != LOCAL_GAP) {
                /* The wall time is this minute: skip to the opening. */
                if (s->win_start <= mod)
                    day++;
                mod = s->win_start;
                continue;
            }
        }
        if (++mod == DAY_MIN) {
            mod = 0;
            day++;
        }
    }
    return BS_ENOTFOUND;
}

static bs_err
every_next(const bs_schedule *s, int64_t now, int64_t last_run, int64_t *next)
{
    int64_t every = (int64_t)s->every_s, c;

    if (s->every_s < BS_SCHED_EVERY_MIN || s->every_s > BS_SCHED_EVERY_MAX)
        return BS_EINVAL;
    if (last_run <= 0) {
        c = now; /* never ran: due now */
    } else if (last_run >= now) {
        c = now + every; /* the clock was stepped back */
    } else {
        c = last_run + every;
        if (c < now)
            c = now; /* overdue: once, now */
    }
    if (s->has_window && !window_open(s, c, &c))
        return BS_ENOTFOUND;
    *next = c;
    return BS_OK;
}

bs_err
bs_schedule_next(const bs_schedule *s, int64_t now, int64_t last_run,
                 int64_t *next)
{
    BS_ASSERT(s != NULL && next != NULL);
    if (now < 0 || now > NOW_MAX)
        return BS_EINVAL;
    tzset();
    switch (s->kind) {
    case BS_SCHED_EVERY:
        return every_next(s, now, last_run, next);
    case BS_SCHED_CRON:
        return cron_next(s, now, next);
    case BS_SCHED_MANUAL:
    case BS_SCHED_ONLINE:
        return BS_ENOTFOUND;
    }
    return BS_EINVAL;
}
