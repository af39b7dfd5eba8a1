/*
 * jsontok.c - the tokens of a JSON text for flatjson.c (jsontok.h):
 * strings validated (eight or sixteen bytes at a time to the next byte
 * that needs a look) and decoded to UTF-8, and the scalars true, false,
 * null and numbers.  Numbers are converted as the reference parser does: an
 * integer when there is neither fraction nor exponent, else a correctly rounded
 * real (Clinger's fast path, else strtod()).
 */
#include "jsontok.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef const unsigned char *cur;

/* ---- errors ---- */

cur
bs_jsontok_fail(bs_jsontok *t, cur at, const char *fmt, ...)
{
    char what[200];
    va_list ap;

    if (t->rv != BS_OK)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    t->rv = bs_errf(t->err, BS_EJSON, "malformed JSON: %s (column %zu)", what,
                    (size_t)(at - t->s) + 1);
    return NULL;
}

cur
bs_jsontok_oom(bs_jsontok *t)
{
    t->rv = BS_ENOMEM;
    return NULL;
}

/* ---- strings ---- */

static inline int
digit(unsigned c)
{
    return c - '0' <= 9;
}

/* Length of the valid UTF-8 sequence of 2 to 4 bytes at p, or 0: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t
utf8_len(cur p, cur end)
{
    unsigned c = p[0];
    size_t n;
    uint32_t cp;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
        (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000))
        return 0;
    return n;
}

/* Four hex digits at p (which holds at least four bytes). */
static int
hex4(cur p, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];

        if (digit(c))
            v = v * 16 + (c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}
#define ONES  UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* A high bit in each byte of w (little-endian: lowest address first) that
 * stops the plain scan: < 0x20, '"', '\\', >= 0x7f.  Exact up to and
 * including the first such byte, which is all that is used. */
static inline uint64_t
stops(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');

    return (((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b) |
            (w + ONES) | w) &
           HIGHS;
}

cur
bs_jsontok_string(bs_jsontok *t, cur p, size_t *dlen, int *fl)
{
    cur end = t->end, start = p;
    size_t shrink = 0; /* raw bytes minus decoded bytes */

    *fl = 0;
    for (;;) {
        uint32_t cp, lo;
        unsigned c;
        size_t k;

        /* Sixteen or eight bytes at a time to the next byte that needs a
         * look. */
        for (;;) {
            uint64_t w, m;

#ifdef __SSE2__
            if (end - p >= 16) {
                __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
                /* Signed: < 0x20 catches >= 0x80 too. */
                __m128i st = _mm_or_si128(
                    _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
                                 _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f))),
                    _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                 _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
                unsigned mask = (unsigned)_mm_movemask_epi8(st);

                if (mask != 0) {
                    p += __builtin_ctz(mask);
                    break;
                }
                p += 16;
                continue;
            }
#endif
            if (end - p < 8) {
                while (p < end && *p >= 0x20 && *p < 0x7f && *p != '"' &&
                       *p != '\\')
                    p++;
                break;
            }
            memcpy(&w, p, 8);
            if ((m = stops(w)) != 0) {
                p += __builtin_ctzll(m) >> 3;
                break;
            }
            p += 8;
        }
        if (p == end)
            return bs_jsontok_fail(t, p, "premature end of input in a string");
        c = *p;
        if (c == '"') {
            *dlen = (size_t)(p - start) - shrink;
            return p;
        }
        if (c < 0x20)
            return bs_jsontok_fail(t, p, "control character 0x%x in a string",
                                   c);
        if (c >= 0x7f) {
            *fl |= BS_JSONTOK_NONASC;
            if (c == 0x7f)
                k = 1;
            else if ((k = utf8_len(p, end)) == 0)
                return bs_jsontok_fail(t, p, "invalid UTF-8 in a string");
            p += k;
            continue;
        }
        /* A backslash. */
        *fl |= BS_JSONTOK_ESC;
        if (end - p < 2)
            return bs_jsontok_fail(t, p, "premature end of input in a string");
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            shrink++;
            continue;
        case 'u':
            break;
        default:
            return bs_jsontok_fail(t, p, "invalid escape");
        }
        if (end - p < 6 || !hex4(p + 2, &cp))
            return bs_jsontok_fail(t, p, "invalid escape");
        if (cp == 0)
            return bs_jsontok_fail(t, p, "\\u0000 is not allowed");
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return bs_jsontok_fail(t, p, "invalid Unicode '\\u%04X'",
                                   (unsigned)cp);
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
                !hex4(p + 8, &lo) || lo < 0xdc00 || lo > 0xdfff)
                return bs_jsontok_fail(t, p, "invalid Unicode '\\u%04X'",
                                       (unsigned)cp);
            p += 12;
            shrink += 12 - 4;
            continue;
        }
        p += 6;
        shrink += 6 - (cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3);
    }
}
void
bs_jsontok_decode(cur p, cur q, char *d)
{
    while (p < q) {
        uint32_t cp = 0, lo = 0;

        if (*p != '\\') {
            *d++ = (char)*p++;
            continue;
        }
        switch (p[1]) {
        case 'b':
            *d++ = '\b';
            break;
        case 'f':
            *d++ = '\f';
            break;
        case 'n':
            *d++ = '\n';
            break;
        case 'r':
            *d++ = '\r';
            break;
        case 't':
            *d++ = '\t';
            break;
        case 'u':
            (void)hex4(p + 2, &cp);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                (void)hex4(p + 8, &lo);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 12;
            } else {
                p += 6;
            }
            if (cp < 0x80) {
                *d++ = (char)cp;
            } else if (cp < 0x800) {
                *d++ = (char)(0xc0 | (cp >> 6));
                *d++ = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                *d++ = (char)(0xe0 | (cp >> 12));
                *d++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                *d++ = (char)(0x80 | (cp & 0x3f));
            } else {
                *d++ = (char)(0xf0 | (cp >> 18));
                *d++ = (char)(0x80 | ((cp >> 12) & 0x3f));
                *d++ = (char)(0x80 | ((cp >> 6) & 0x3f));
                *d++ = (char)(0x80 | (cp & 0x3f));
            }
            continue;
        default: /* '"', '\\', '/' */
            *d++ = (char)p[1];
            break;
        }
        p += 2;
    }
}
/* ---- numbers and the other scalars ---- */

/* Powers of ten that a double holds exactly. */
static const double pow10_exact[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A real, the reference parser's way: strtod() on the literal (its '.' swapped
 * for the locale's decimal point), overflow to infinity refused. */
static cur
slow_real(bs_jsontok *t, cur start, cur p, bs_value *v)
{
    char sbuf[64], *buf = sbuf, *e;
    size_t n = (size_t)(p - start);
    const char *point = localeconv()->decimal_point;
    int overflow;
    double d;

    if (n >= sizeof sbuf && (buf = malloc(n + 1)) == NULL)
        return bs_jsontok_oom(t);
    memcpy(buf, start, n);
    buf[n] = '\0';
    if (*point != '.') {
        char *dot = memchr(buf, '.', n);

        if (dot != NULL)
            *dot = *point;
    }
    errno = 0;
    d = strtod(buf, &e);
    overflow = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
    if (buf != sbuf)
        free(buf);
    if (overflow)
        return bs_jsontok_fail(t, start, "real number overflow");
    v->d = d;
    return p;
}

/*
 * A number: an integer when it has neither fraction nor exponent (an error
 * out of int64), else a real.  The real is m * 10^e10 with m < 10^19; when
 * m <= 2^53 and |e10| <= 22 both factors are exact doubles and one IEEE
 * multiplication or division rounds correctly, which is what strtod() gives
 * (Clinger's fast path).  Anything else goes to strtod().
 */
static cur
parse_number(bs_jsontok *t, cur p, bs_value *v)
{
    cur end = t->end, start = p;
    uint64_t m = 0;
    long e10 = 0;
    int nd = 0, neg = 0, real = 0, exact = 1;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p == end || !digit(*p))
        return bs_jsontok_fail(t, start, "invalid token");
    if (*p == '0') {
        if (++p < end && digit(*p))
            return bs_jsontok_fail(t, start, "invalid token");
    } else {
        do {
            if (nd < 19) {
                m = m * 10 + (*p - '0');
                nd++;
            } else {
                e10++;
                exact = 0;
            }
        } while (++p < end && digit(*p));
    }
    if (p < end && *p == '.') {
        real = 1;
        if (++p == end || !digit(*p))
            return bs_jsontok_fail(t, start, "invalid token");
        do {
            unsigned d = *p - '0';

            if (nd < 19) {
                if (m != 0 || d != 0) {
                    m = m * 10 + d;
                    nd++;
                }
                e10--;
            } else {
                exact = 0;
            }
        } while (++p < end && digit(*p));
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        long ev = 0;
        int eneg = 0;

        real = 1;
        if (++p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p == end || !digit(*p))
            return bs_jsontok_fail(t, start, "invalid token");
        do {
            if (ev < 1000000)
                ev = ev * 10 + (*p - '0');
        } while (++p < end && digit(*p));
        e10 += eneg ? -ev : ev;
    }
    if (!real) {
        if (!exact || m > (uint64_t)INT64_MAX + (uint64_t)neg)
            return bs_jsontok_fail(
                t, start, neg ? "too big negative integer" : "too big integer");
        v->type = BS_VINT;
        if (!neg)
            v->i = (int64_t)m;
        else
            v->i = m > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)m;
        return p;
    }
    v->type = BS_VREAL;
    if (exact && m <= (UINT64_C(1) << 53) && e10 >= -22 && e10 <= 22) {
        double d = (double)m;

        d = e10 < 0 ? d / pow10_exact[-e10] : d * pow10_exact[e10];
        v->d = neg ? -d : d;
        return p;
    }
    return slow_real(t, start, p, v);
}

cur
bs_jsontok_scalar(bs_jsontok *t, cur p, bs_value *v)
{
    size_t left = (size_t)(t->end - p);

    switch (*p) {
    case 't':
        if (left >= 4 && memcmp(p, "true", 4) == 0) {
            v->type = BS_VTRUE;
            return p + 4;
        }
        break;
    case 'f':
        if (left >= 5 && memcmp(p, "false", 5) == 0) {
            v->type = BS_VFALSE;
            return p + 5;
        }
        break;
    case 'n':
        if (left >= 4 && memcmp(p, "null", 4) == 0) {
            v->type = BS_VNULL;
            return p + 4;
        }
        break;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return parse_number(t, p, v);
    default:
        break;
    }
    return bs_jsontok_fail(t, p, "invalid token");
}
