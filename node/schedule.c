/*
 * schedule.c - parse, format and evaluate a peer link's exchange schedule.
 *
 * This module owns the schedule grammar ("manual", "online", "every ...",
 * 5-field cron), its canonical text, the daily window, and the computation of
 * the next run in local time.  Local time is read only through localtime_r():
 * a local wall-clock minute is turned back into unix time by searching for
 * the instants whose wall time equals it (mktime() is unspecified for times
 * that fall in a DST gap), which tells unique, repeated (fall back) and
 * missing (spring forward) minutes apart; the DST rules are in schedule.h.
 * Cron matching walks civil dates arithmetically, skipping whole months,
 * days and hours that cannot match, so a search costs a few thousand steps
 * at most.
 */
#if !defined(_POSIX_C_SOURCE) && !defined(_DEFAULT_SOURCE) &&                  \
    !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "schedule.h"

#include <ctype.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

/* How far ahead bs_schedule_next looks: enough for two leap days apart. */
#define HORIZON_DAYS (8 * 366)
/* Latest `now` accepted: 3000-01-01T00:00:00Z. */
#define NOW_MAX INT64_C(32503680000)
#define DAY_S   86400
#define DAY_MIN 1440

/* ------------------------------------------------------------------ */
/* Small text helpers                                                   */

typedef struct outbuf {
    char *p;
    size_t n;
    size_t len;
} outbuf;

static void out_printf(outbuf *o, const char *fmt, ...) BS_PRINTF(2, 3);

static void
out_printf(outbuf *o, const char *fmt, ...)
{
    va_list ap;
    char *dst = NULL;
    size_t room = 0;
    int r;

    if (o->len < o->n) {
        dst = o->p + o->len;
        room = o->n - o->len;
    }
    va_start(ap, fmt);
    r = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (r > 0)
        o->len += (size_t)r;
}

static void
out_init(outbuf *o, char *buf, size_t n)
{
    o->p = buf;
    o->n = buf == NULL ? 0 : n;
    o->len = 0;
    if (o->n > 0)
        buf[0] = '\0';
}

static int
out_result(const outbuf *o)
{
    return o->len > (size_t)INT32_MAX ? INT32_MAX : (int)o->len;
}

static int
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int
is_trim(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Quote character c for a message: 'x' or \xNN. */
static const char *
show_char(char c, char buf[8])
{
    if (isprint((unsigned char)c))
        snprintf(buf, 8, "'%c'", c);
    else
        snprintf(buf, 8, "\\x%02x", (unsigned)(unsigned char)c);
    return buf;
}

/* 1 if p[0..n) equals the lower-case word kw, ignoring case. */
static int
word_eq(const char *p, size_t n, const char *kw)
{
    size_t i;

    if (strlen(kw) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (tolower((unsigned char)p[i]) != kw[i])
            return 0;
    return 1;
}

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
/* Cron fields                                                          */

typedef struct field_desc {
    const char *name;
    int lo, hi;
    const char *const *names; /* NULL, or names of lo..: JAN.., SUN.. */
    int nnames;
} field_desc;

static const char *const month_names[] = {"jan", "feb", "mar", "apr",
                                          "may", "jun", "jul", "aug",
                                          "sep", "oct", "nov", "dec"};
static const char *const wday_names[] = {"sun", "mon", "tue", "wed",
                                         "thu", "fri", "sat"};

enum { F_MIN, F_HOUR, F_MDAY, F_MONTH, F_WDAY, F_COUNT };

static const field_desc fields[F_COUNT] = {
    {"minute", 0, 59, NULL, 0},           {"hour", 0, 23, NULL, 0},
    {"day of month", 1, 31, NULL, 0},     {"month", 1, 12, month_names, 12},
    {"day of week", 0, 7, wday_names, 7},
};

/* Cap for numbers being read, so long digit runs cannot overflow. */
#define NUM_CAP 1000000

/* Read digits at *pp (at least one is there); capped at NUM_CAP. */
static long
read_number(const char **pp, const char *end)
{
    const char *p = *pp;
    long v = 0;

    while (p < end && isdigit((unsigned char)*p)) {
        if (v < NUM_CAP)
            v = v * 10 + (*p - '0');
        p++;
    }
    *pp = p;
    return v;
}

static bs_err
parse_value(int fi, const char **pp, const char *end, int *out, bs_errbuf *err)
{
    const field_desc *f = &fields[fi];
    const char *p = *pp, *q = p;
    char cb[8];
    int i;

    if (p < end && isdigit((unsigned char)*p)) {
        long v = read_number(&q, end);

        if (v < f->lo || v > f->hi)
            return bs_errf(err, BS_EINVAL,
                           "cron field %d (%s): %.*s is out of range %d-%d",
                           fi + 1, f->name, (int)(q - p > 20 ? 20 : q - p), p,
                           f->lo, f->hi);
        *out = (int)v;
        *pp = q;
        return BS_OK;
    }
    if (p < end && isalpha((unsigned char)*p)) {
        while (q < end && isalnum((unsigned char)*q))
            q++;
        if (f->names == NULL)
            return bs_errf(err, BS_EINVAL,
                           "cron field %d (%s): \"%.*s\" is not a number",
                           fi + 1, f->name, (int)(q - p > 20 ? 20 : q - p), p);
        for (i = 0; i < f->nnames; i++) {
            if (word_eq(p, (size_t)(q - p), f->names[i])) {
                *out = f->lo + i;
                *pp = q;
                return BS_OK;
            }
        }
        return bs_errf(err, BS_EINVAL,
                       "cron field %d (%s): unknown name \"%.*s\" "
                       "(use a number or %s, %s, ... %s)",
                       fi + 1, f->name, (int)(q - p > 20 ? 20 : q - p), p,
                       fi == F_MONTH ? "JAN" : "SUN",
                       fi == F_MONTH ? "FEB" : "MON",
                       fi == F_MONTH ? "DEC" : "SAT");
    }
    if (p == end)
        return bs_errf(err, BS_EINVAL, "cron field %d (%s): missing value",
                       fi + 1, f->name);
    return bs_errf(err, BS_EINVAL,
                   "cron field %d (%s): unexpected %s where a value belongs",
                   fi + 1, f->name, show_char(*p, cb));
}

/* One list item: *, N, A-B, each optionally followed by /STEP. */
static bs_err
parse_item(int fi, const char *p, const char *end, uint64_t *bits,
           bs_errbuf *err)
{
    const field_desc *f = &fields[fi];
    const char *item = p;
    int a, b, single = 0, named;
    long step = 1;
    char cb[8];
    bs_err e;

    if (p == end)
        return bs_errf(err, BS_EINVAL, "cron field %d (%s): empty list item",
                       fi + 1, f->name);
    if (*p == '*') {
        a = f->lo;
        b = f->hi;
        p++;
    } else {
        if ((e = parse_value(fi, &p, end, &a, err)) != BS_OK)
            return e;
        b = a;
        single = 1;
        if (p < end && *p == '-') {
            p++;
            named = p < end && isalpha((unsigned char)*p);
            if ((e = parse_value(fi, &p, end, &b, err)) != BS_OK)
                return e;
            if (fi == F_WDAY && named && b == 0 && a > 0)
                b = 7; /* "FRI-SUN" ends on Sunday as 7 */
            if (b < a)
                return bs_errf(err, BS_EINVAL,
                               "cron field %d (%s): range %.*s is reversed",
                               fi + 1, f->name, (int)(p - item), item);
            single = 0;
        }
    }
    if (p < end && *p == '/') {
        long span = f->hi - f->lo + 1;

        p++;
        if (p == end || !isdigit((unsigned char)*p))
            return bs_errf(err, BS_EINVAL,
                           "cron field %d (%s): missing step after '/'", fi + 1,
                           f->name);
        step = read_number(&p, end);
        if (step == 0)
            return bs_errf(err, BS_EINVAL,
                           "cron field %d (%s): step 0 is not allowed", fi + 1,
                           f->name);
        if (step > span)
            return bs_errf(err, BS_EINVAL,
                           "cron field %d (%s): step %ld is out of range 1-%ld",
                           fi + 1, f->name, step, span);
        if (single)
            b = f->hi; /* "A/S" runs from A to the field maximum */
    }
    if (p != end)
        return bs_errf(err, BS_EINVAL,
                       "cron field %d (%s): unexpected %s in \"%.*s\"", fi + 1,
                       f->name, show_char(*p, cb), (int)(end - item), item);
    for (long v = a; v <= b; v += step)
        *bits |= UINT64_C(1) << v;
    return BS_OK;
}

static bs_err
parse_field(int fi, const char *p, const char *end, uint64_t *bits,
            bs_errbuf *err)
{
    *bits = 0;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        bs_err e = parse_item(fi, p, stop, bits, err);

        if (e != BS_OK)
            return e;
        if (comma == NULL)
            return BS_OK;
        p = comma + 1;
    }
}

/* 1 if some selected month has some selected day of month (29 Feb counts). */
static int
mday_possible(const bs_schedule *s)
{
    for (int m = 1; m <= 12; m++) {
        if (!((s->months >> m) & 1))
            continue;
        for (int d = 1; d <= days_in_month(2000, m); d++)
            if ((s->mdays >> d) & 1)
                return 1;
    }
    return 0;
}

static bs_err
parse_cron(bs_schedule *out, const char *p, const char *end, bs_errbuf *err)
{
    const char *fs[F_COUNT], *fe[F_COUNT];
    uint64_t bits[F_COUNT];
    bs_schedule s;
    int n = 0;

    while (p < end) {
        const char *q = p;

        while (q < end && !is_blank(*q))
            q++;
        if (n < F_COUNT) {
            fs[n] = p;
            fe[n] = q;
        }
        n++;
        while (q < end && is_blank(*q))
            q++;
        p = q;
    }
    if (n != F_COUNT)
        return bs_errf(err, BS_EINVAL,
                       "cron expression has %d field%s, expected 5 "
                       "(MIN HOUR MDAY MONTH WDAY)",
                       n, n == 1 ? "" : "s");
    for (int i = 0; i < F_COUNT; i++) {
        bs_err e = parse_field(i, fs[i], fe[i], &bits[i], err);

        if (e != BS_OK)
            return e;
    }
    memset(&s, 0, sizeof s);
    s.kind = BS_SCHED_CRON;
    s.minutes = bits[F_MIN];
    s.hours = (uint32_t)bits[F_HOUR];
    s.mdays = (uint32_t)bits[F_MDAY];
    s.months = (uint16_t)bits[F_MONTH];
    s.wdays = (uint8_t)((bits[F_WDAY] | (bits[F_WDAY] >> 7)) & 0x7f);
    s.mday_star = fe[F_MDAY] - fs[F_MDAY] == 1 && *fs[F_MDAY] == '*';
    s.wday_star = fe[F_WDAY] - fs[F_WDAY] == 1 && *fs[F_WDAY] == '*';
    if (!s.mday_star && s.wday_star && !mday_possible(&s))
        return bs_errf(err, BS_EINVAL,
                       "cron expression never matches: no selected month "
                       "has the selected day of month");
    *out = s;
    return BS_OK;
}

/* ------------------------------------------------------------------ */
/* "every" intervals                                                    */

static bs_err
parse_every(bs_schedule *out, const char *p, const char *end, bs_errbuf *err)
{
    static const struct {
        char unit;
        uint64_t secs;
    } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
    const char *text = p;
    uint64_t total = 0;
    size_t next_unit = 0;
    char cb[8];

    if (p == end)
        return bs_errf(err, BS_EINVAL,
                       "every: missing interval (e.g. \"every 15m\")");
    while (p < end) {
        long v;
        size_t u;

        if (!isdigit((unsigned char)*p)) {
            if (is_blank(*p))
                return bs_errf(err, BS_EINVAL,
                               "every: unexpected space in \"%.*s\" (write "
                               "compound intervals without spaces, e.g. "
                               "\"every 1h30m\")",
                               (int)(end - text), text);
            return bs_errf(err, BS_EINVAL,
                           "every: unexpected %s in \"%.*s\" (expected a "
                           "number)",
                           show_char(*p, cb), (int)(end - text), text);
        }
        v = read_number(&p, end);
        if (p == end)
            return bs_errf(err, BS_EINVAL,
                           "every: missing unit after %ld (use s, m, h or d)",
                           v);
        for (u = 0; u < sizeof units / sizeof units[0]; u++)
            if (units[u].unit == *p)
                break;
        if (*p == '.' || *p == ',')
            return bs_errf(err, BS_EINVAL,
                           "every: fractions are not supported; combine "
                           "units instead (e.g. \"every 1h30m\")");
        if (u == sizeof units / sizeof units[0])
            return bs_errf(err, BS_EINVAL,
                           "every: unknown unit %s (use s, m, h or d)",
                           show_char(*p, cb));
        if (u < next_unit)
            return bs_errf(err, BS_EINVAL,
                           "every: in \"%.*s\" each unit may appear once, "
                           "largest first (d, h, m, s)",
                           (int)(end - text), text);
        next_unit = u + 1;
        p++;
        total += (uint64_t)v * units[u].secs; /* v <= 10 * NUM_CAP */
    }
    if (total < BS_SCHED_EVERY_MIN)
        return bs_errf(err, BS_EINVAL,
                       "every: the interval must be at least 1s");
    if (total > BS_SCHED_EVERY_MAX)
        return bs_errf(err, BS_EINVAL,
                       "every: the interval \"%.*s\" is longer than 7d",
                       (int)(end - text), text);
    memset(out, 0, sizeof *out);
    out->kind = BS_SCHED_EVERY;
    out->every_s = total;
    return BS_OK;
}

/* ------------------------------------------------------------------ */
/* Public: parsing                                                      */

static bs_err
macro_error(const char *p, const char *end, bs_errbuf *err)
{
    static const struct {
        const char *name, *cron;
    } macros[] = {
        {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
        {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
        {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    };
    const char *q = p;

    while (q < end && !is_blank(*q))
        q++;
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
        if (word_eq(p, (size_t)(q - p), macros[i].name))
            return bs_errf(err, BS_EINVAL,
                           "cron @-macros like \"%s\" are not supported; "
                           "write \"%s\" instead",
                           macros[i].name, macros[i].cron);
    return bs_errf(err, BS_EINVAL,
                   "cron @-macros like \"%.*s\" are not supported; write the "
                   "5 fields MIN HOUR MDAY MONTH WDAY",
                   (int)(q - p > 20 ? 20 : q - p), p);
}

bs_err
bs_schedule_parse(bs_schedule *s, const char *spec, bs_errbuf *err)
{
    const char *p, *end, *q;
    size_t len;

    BS_ASSERT(s != NULL);
    if (spec == NULL)
        spec = "";
    len = strlen(spec);
    if (len > BS_SCHED_SPEC_MAX)
        return bs_errf(err, BS_EINVAL,
                       "schedule is too long (%zu bytes, at most %d)", len,
                       BS_SCHED_SPEC_MAX);
    p = spec;
    end = spec + len;
    while (p < end && is_trim(*p))
        p++;
    while (end > p && is_trim(end[-1]))
        end--;
    if (p == end)
        return bs_errf(err, BS_EINVAL,
                       "empty schedule (expected manual, online, "
                       "every N{s|m|h|d} or a 5-field cron expression)");
    if (*p == '@')
        return macro_error(p, end, err);
    q = p;
    while (q < end && !is_blank(*q))
        q++;
    if (word_eq(p, (size_t)(q - p), "manual") ||
        word_eq(p, (size_t)(q - p), "online")) {
        if (q != end)
            return bs_errf(err, BS_EINVAL, "\"%.*s\" takes no arguments",
                           (int)(q - p), p);
        memset(s, 0, sizeof *s);
        s->kind = tolower((unsigned char)*p) == 'm' ? BS_SCHED_MANUAL
                                                    : BS_SCHED_ONLINE;
        return BS_OK;
    }
    if (word_eq(p, (size_t)(q - p), "every")) {
        while (q < end && is_blank(*q))
            q++;
        return parse_every(s, q, end, err);
    }
    if (!isalpha((unsigned char)*p))
        return parse_cron(s, p, end, err);
    return bs_errf(err, BS_EINVAL,
                   "unknown schedule \"%.*s\" (expected manual, online, "
                   "every N{s|m|h|d} or a 5-field cron expression)",
                   (int)(end - p > 64 ? 64 : end - p), p);
}

/* "H:MM" or "HH:MM" into minutes of the day. */
static bs_err
parse_hhmm(const char **pp, const char *end, const char *what, int *out,
           bs_errbuf *err)
{
    const char *p = *pp;
    int h = 0, m, nd = 0;

    while (p < end && isdigit((unsigned char)*p) && nd < 3) {
        h = h * 10 + (*p - '0');
        p++;
        nd++;
    }
    if (nd == 0 || nd > 2 || p == end || *p != ':' || end - p < 3 ||
        !isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]))
        return bs_errf(err, BS_EINVAL,
                       "window: the %s time is not HH:MM (expected "
                       "HH:MM-HH:MM, e.g. \"22:00-06:00\")",
                       what);
    m = (p[1] - '0') * 10 + (p[2] - '0');
    if (h > 23)
        return bs_errf(err, BS_EINVAL,
                       "window: %s hour %d is out of range 0-23", what, h);
    if (m > 59)
        return bs_errf(err, BS_EINVAL,
                       "window: %s minute %d is out of range 0-59", what, m);
    *pp = p + 3;
    *out = h * 60 + m;
    return BS_OK;
}

bs_err
bs_schedule_parse_window(bs_schedule *s, const char *window, bs_errbuf *err)
{
    const char *p, *end;
    int a, b;
    char cb[8];
    bs_err e;

    BS_ASSERT(s != NULL);
    if (window == NULL)
        window = "";
    p = window;
    end = window + strlen(window);
    while (p < end && is_trim(*p))
        p++;
    while (end > p && is_trim(end[-1]))
        end--;
    if (p == end)
        return bs_errf(err, BS_EINVAL,
                       "window: empty (expected HH:MM-HH:MM, e.g. "
                       "\"22:00-06:00\")");
    if ((e = parse_hhmm(&p, end, "start", &a, err)) != BS_OK)
        return e;
    if (p == end || *p != '-')
        return bs_errf(err, BS_EINVAL,
                       "window: expected '-' after the start time (expected "
                       "HH:MM-HH:MM)");
    p++;
    if ((e = parse_hhmm(&p, end, "end", &b, err)) != BS_OK)
        return e;
    if (p != end)
        return bs_errf(err, BS_EINVAL,
                       "window: unexpected %s after the end time",
                       show_char(*p, cb));
    if (a == b)
        return bs_errf(err, BS_EINVAL,
                       "window: start and end are both %02d:%02d; leave the "
                       "window out to allow any time",
                       a / 60, a % 60);
    s->has_window = 1;
    s->win_start = a;
    s->win_end = b;
    return BS_OK;
}

void
bs_schedule_clear_window(bs_schedule *s)
{
    BS_ASSERT(s != NULL);
    s->has_window = 0;
    s->win_start = 0;
    s->win_end = 0;
}

/* ------------------------------------------------------------------ */
/* Public: formatting                                                   */

/*
 * One cron field from its bits lo..hi.  full_star: write "*" when every
 * value is set (not for a restricted day field, whose "*" means something
 * else).
 */
static void
format_field(outbuf *o, uint64_t bits, int lo, int hi, int full_star)
{
    int v[64], n = 0, i, j, step;

    for (i = lo; i <= hi; i++)
        if ((bits >> i) & 1)
            v[n++] = i;
    if (n == hi - lo + 1 && full_star) {
        out_printf(o, "*");
        return;
    }
    if (n >= 3) {
        step = v[1] - v[0];
        for (i = 2; i < n && v[i] - v[i - 1] == step; i++)
            ;
        if (i == n) {
            if (step == 1)
                out_printf(o, "%d-%d", v[0], v[n - 1]);
            else if (v[0] == lo && v[n - 1] + step > hi)
                out_printf(o, "*/%d", step);
            else
                out_printf(o, "%d-%d/%d", v[0], v[n - 1], step);
            return;
        }
    }
    for (i = 0; i < n; i = j + 1) {
        for (j = i; j + 1 < n && v[j + 1] == v[j] + 1; j++)
            ;
        if (j - i >= 2) {
            out_printf(o, "%s%d-%d", i > 0 ? "," : "", v[i], v[j]);
        } else {
            for (int k = i; k <= j; k++)
                out_printf(o, "%s%d", k > 0 ? "," : "", v[k]);
        }
    }
}

int
bs_schedule_format(const bs_schedule *s, char *buf, size_t n)
{
    outbuf o;

    BS_ASSERT(s != NULL);
    out_init(&o, buf, n);
    switch (s->kind) {
    case BS_SCHED_MANUAL:
        out_printf(&o, "manual");
        break;
    case BS_SCHED_ONLINE:
        out_printf(&o, "online");
        break;
    case BS_SCHED_EVERY: {
        uint64_t left = s->every_s;
        static const struct {
            char unit;
            uint64_t secs;
        } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};

        out_printf(&o, "every ");
        if (left == 0)
            out_printf(&o, "0s");
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
            if (left >= units[u].secs) {
                out_printf(&o, "%llu%c",
                           (unsigned long long)(left / units[u].secs),
                           units[u].unit);
                left %= units[u].secs;
            }
        }
        break;
    }
    case BS_SCHED_CRON:
        format_field(&o, s->minutes, 0, 59, 1);
        out_printf(&o, " ");
        format_field(&o, s->hours, 0, 23, 1);
        out_printf(&o, " ");
        format_field(&o, s->mdays, 1, 31, s->mday_star);
        out_printf(&o, " ");
        format_field(&o, s->months, 1, 12, 1);
        out_printf(&o, " ");
        format_field(&o, s->wdays, 0, 6, s->wday_star);
        break;
    }
    return out_result(&o);
}

int
bs_schedule_format_window(const bs_schedule *s, char *buf, size_t n)
{
    outbuf o;

    BS_ASSERT(s != NULL);
    out_init(&o, buf, n);
    if (s->has_window)
        out_printf(&o, "%02d:%02d-%02d:%02d", s->win_start / 60,
                   s->win_start % 60, s->win_end / 60, s->win_end % 60);
    return out_result(&o);
}

/* ------------------------------------------------------------------ */
/* Public: evaluation                                                   */

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
