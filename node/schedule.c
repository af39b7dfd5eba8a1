/*
 * schedule.c - parse and format a peer link's exchange schedule.
 *
 * This module owns the schedule grammar ("manual", "online", "every ...",
 * 5-field cron, the daily window) and its canonical text.  Evaluating a
 * parsed schedule against the local clock (windows, the next run) is
 * schedule_next.c's.
 */
#include "schedule.h"

#include <ctype.h>
#include <stdarg.h>
#include <string.h>

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
    static const int mday_max[13] = {0,  31, 29, 31, 30, 31, 30,
                                     31, 31, 30, 31, 30, 31};

    for (int m = 1; m <= 12; m++) {
        if (!((s->months >> m) & 1))
            continue;
        for (int d = 1; d <= mday_max[m]; d++)
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
