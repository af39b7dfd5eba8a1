/*
 * flatjson.c - a strict parser for one flat JSON object (flatjson.h).
 *
 * One pass over the text, no DOM.  Every string is validated, then copied
 * (unescaped) into one arena block of `len` bytes: a decoded string and its
 * NUL never take more bytes than its quoted form, so the block cannot
 * overflow.  The keys and scalar values go to a small array (on the stack up
 * to STACK_ITEMS keys), sorted once at the end; neighbours are compared to
 * find duplicates.  Nested objects and arrays are validated (a syntax error
 * in them is BS_EJSON, as with jansson) but not kept.
 */
#include "flatjson.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#define MAX_DEPTH   2048 /* jansson's JSON_PARSER_MAX_DEPTH */
#define STACK_ITEMS 32

typedef const unsigned char *cur;

/* One key of the top-level object. */
typedef struct item {
    uint64_t key; /* the name's first 8 bytes, big-endian, zero-padded */
    const char *name;
    size_t nlen;
    bs_value val;
    int nested; /* '{' or '[' for an object or array value, else 0 */
    int clean;  /* the name is plain printable ASCII, without escapes */
} item;

/* A decoded key of a nested object (duplicate detection only). */
typedef struct keyref {
    const char *s;
    size_t n;
} keyref;

typedef struct parser {
    cur s, end;
    bs_errbuf *err;
    bs_err rv;    /* the first error */
    bs_arena tmp; /* keys of nested objects */
} parser;

static cur fail(parser *ps, cur at, const char *fmt, ...) BS_PRINTF(3, 4);

/* Record a syntax error at `at`; returns NULL. */
static cur
fail(parser *ps, cur at, const char *fmt, ...)
{
    char what[200];
    va_list ap;

    if (ps->rv != BS_OK)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ps->rv = bs_errf(ps->err, BS_EJSON, "malformed JSON: %s (column %zu)", what,
                     (size_t)(at - ps->s) + 1);
    return NULL;
}

static cur
oom(parser *ps)
{
    ps->rv = BS_ENOMEM;
    return NULL;
}

/* 1 << c for the four whitespace characters. */
#define WS_SET                                                                 \
    ((UINT64_C(1) << ' ') | (UINT64_C(1) << '\n') | (UINT64_C(1) << '\r') |    \
     (UINT64_C(1) << '\t'))

static inline cur
ws(cur p, cur end)
{
    while (p < end && *p <= ' ' && ((UINT64_C(1) << *p) & WS_SET))
        p++;
    return p;
}

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

/* What scan_string() saw besides plain printable ASCII. */
#define S_ESC    1 /* escapes: the text must be decoded */
#define S_NONASC 2 /* bytes >= 0x7f */

#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

/*
 * Validate the string whose first byte (after the opening quote) is at p.
 * Returns the closing quote, with the decoded length in *dlen and the S_*
 * flags in *fl; NULL on error.
 */
static cur
scan_string(parser *ps, cur p, size_t *dlen, int *fl)
{
    cur end = ps->end, start = p;
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
            return fail(ps, p, "premature end of input in a string");
        c = *p;
        if (c == '"') {
            *dlen = (size_t)(p - start) - shrink;
            return p;
        }
        if (c < 0x20)
            return fail(ps, p, "control character 0x%x in a string", c);
        if (c >= 0x7f) {
            *fl |= S_NONASC;
            if (c == 0x7f)
                k = 1;
            else if ((k = utf8_len(p, end)) == 0)
                return fail(ps, p, "invalid UTF-8 in a string");
            p += k;
            continue;
        }
        /* A backslash. */
        *fl |= S_ESC;
        if (end - p < 2)
            return fail(ps, p, "premature end of input in a string");
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
            return fail(ps, p, "invalid escape");
        }
        if (end - p < 6 || !hex4(p + 2, &cp))
            return fail(ps, p, "invalid escape");
        if (cp == 0)
            return fail(ps, p, "\\u0000 is not allowed");
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return fail(ps, p, "invalid Unicode '\\u%04X'", (unsigned)cp);
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
                !hex4(p + 8, &lo) || lo < 0xdc00 || lo > 0xdfff)
                return fail(ps, p, "invalid Unicode '\\u%04X'", (unsigned)cp);
            p += 12;
            shrink += 12 - 4;
            continue;
        }
        p += 6;
        shrink += 6 - (cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3);
    }
}

/* scan_string() for the common case, inline: a plain string that ends
 * within the next 16 bytes. */
static inline cur
scan(parser *ps, cur p, size_t *dlen, int *fl)
{
#ifdef __SSE2__
    if (ps->end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i st =
            _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
                                      _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f))),
                         _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                      _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
        unsigned mask = (unsigned)_mm_movemask_epi8(st);

        if (mask != 0 && p[__builtin_ctz(mask)] == '"') {
            *dlen = (size_t)__builtin_ctz(mask);
            *fl = 0;
            return p + *dlen;
        }
    }
#endif
    return scan_string(ps, p, dlen, fl);
}

/* Decode the validated string [p, q) (escapes present) into d. */
static void
decode_string(cur p, cur q, char *d)
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

/* memcpy() for the short strings of a record, without a call. */
static inline void
copy(char *d, cur s, size_t n)
{
    uint64_t a, b;
    uint32_t x, y;

    if (n >= 8 && n <= 16) {
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        memcpy(&x, s, 4);
        memcpy(&y, s + n - 4, 4);
        memcpy(d, &x, 4);
        memcpy(d + n - 4, &y, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            d[i] = (char)s[i];
    } else {
        memcpy(d, s, n);
    }
}

/* Copy the validated string [p, q) into *blk, NUL-terminated. */
static inline char *
put_string(char **blk, cur p, cur q, size_t dlen, int esc)
{
    char *s = *blk;

    if (esc & S_ESC)
        decode_string(p, q, s);
    else
        copy(s, p, dlen);
    s[dlen] = '\0';
    *blk = s + dlen + 1;
    return s;
}

/* The sort key of a name: its first 8 bytes, big-endian, zero-padded (a
 * name holds no NUL, so equal keys and lengths <= 8 mean equal names). */
static inline uint64_t
name_key(const char *s, size_t n)
{
    uint64_t k = 0;

    if (n >= 8) {
        memcpy(&k, s, 8);
        return __builtin_bswap64(k);
    }
    for (size_t i = 0; i < n; i++)
        k |= (uint64_t)(unsigned char)s[i] << (56 - 8 * i);
    return k;
}

#define ID_KEY ((uint64_t)'i' << 56 | (uint64_t)'d' << 48)

/* Powers of ten that a double holds exactly. */
static const double pow10_exact[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A real jansson's way: strtod() on the literal (its '.' swapped for the
 * locale's decimal point), overflow to infinity refused. */
static cur
slow_real(parser *ps, cur start, cur p, bs_value *v)
{
    char sbuf[64], *buf = sbuf, *e;
    size_t n = (size_t)(p - start);
    const char *point = localeconv()->decimal_point;
    int overflow;
    double d;

    if (n >= sizeof sbuf && (buf = malloc(n + 1)) == NULL)
        return oom(ps);
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
        return fail(ps, start, "real number overflow");
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
parse_number(parser *ps, cur p, bs_value *v)
{
    cur end = ps->end, start = p;
    uint64_t m = 0;
    long e10 = 0;
    int nd = 0, neg = 0, real = 0, exact = 1;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p == end || !digit(*p))
        return fail(ps, start, "invalid token");
    if (*p == '0') {
        if (++p < end && digit(*p))
            return fail(ps, start, "invalid token");
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
            return fail(ps, start, "invalid token");
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
            return fail(ps, start, "invalid token");
        do {
            if (ev < 1000000)
                ev = ev * 10 + (*p - '0');
        } while (++p < end && digit(*p));
        e10 += eneg ? -ev : ev;
    }
    if (!real) {
        if (!exact || m > (uint64_t)INT64_MAX + (uint64_t)neg)
            return fail(ps, start,
                        neg ? "too big negative integer" : "too big integer");
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
    return slow_real(ps, start, p, v);
}

/* true, false, null or a number at p (p < end). */
static cur
scalar(parser *ps, cur p, bs_value *v)
{
    size_t left = (size_t)(ps->end - p);

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
        return parse_number(ps, p, v);
    default:
        break;
    }
    return fail(ps, p, "invalid token");
}

static int
name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);

    if (c != 0)
        return c;
    return an < bn ? -1 : an > bn;
}

static int
keyref_cmp(const void *x, const void *y)
{
    const keyref *a = x, *b = y;

    return name_cmp(a->s, a->n, b->s, b->n);
}

static cur skip_value(parser *ps, cur p, int depth);

/* Validate a nested object at p ('{'): syntax and unique keys. */
static cur
skip_object(parser *ps, cur p, int depth)
{
    cur end = ps->end, open = p;
    keyref *keys = NULL;
    size_t nk = 0, cap = 0;

    p = ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        size_t dl;
        int esc;
        cur q;
        char *k;

        if (p == end || *p != '"') {
            p = fail(ps, p, "string or '}' expected");
            goto out;
        }
        if ((q = scan_string(ps, p + 1, &dl, &esc)) == NULL) {
            p = NULL;
            goto out;
        }
        if (nk == cap) {
            keyref *nkeys;

            cap = cap ? cap * 2 : 16;
            if ((nkeys = realloc(keys, cap * sizeof *keys)) == NULL) {
                p = oom(ps);
                goto out;
            }
            keys = nkeys;
        }
        if ((k = bs_arena_alloc(&ps->tmp, dl + 1)) == NULL) {
            p = oom(ps);
            goto out;
        }
        put_string(&k, p + 1, q, dl, esc);
        keys[nk++] = (keyref){k - dl - 1, dl};
        p = ws(q + 1, end);
        if (p == end || *p != ':') {
            p = fail(ps, p, "':' expected");
            goto out;
        }
        if ((p = skip_value(ps, ws(p + 1, end), depth + 1)) == NULL)
            goto out;
        p = ws(p, end);
        if (p == end || (*p != ',' && *p != '}')) {
            p = fail(ps, p, "'}' expected");
            goto out;
        }
        if (*p++ == '}')
            break;
        p = ws(p, end);
    }
    qsort(keys, nk, sizeof *keys, keyref_cmp);
    for (size_t i = 1; i < nk; i++)
        if (keyref_cmp(&keys[i - 1], &keys[i]) == 0) {
            p = fail(ps, open, "duplicate object key \"%.*s\"",
                     (int)(keys[i].n > 40 ? 40 : keys[i].n), keys[i].s);
            break;
        }
out:
    free(keys);
    return p;
}

/* Validate any JSON value at p at nesting depth `depth` (top level: 1). */
static cur
skip_value(parser *ps, cur p, int depth)
{
    cur end = ps->end;
    bs_value v;

    if (p == end)
        return fail(ps, p, "premature end of input");
    if (depth > MAX_DEPTH)
        return fail(ps, p, "maximum parsing depth reached");
    switch (*p) {
    case '{':
        return skip_object(ps, p, depth);
    case '[':
        p = ws(p + 1, end);
        if (p < end && *p == ']')
            return p + 1;
        for (;;) {
            if ((p = skip_value(ps, p, depth + 1)) == NULL)
                return NULL;
            p = ws(p, end);
            if (p == end || (*p != ',' && *p != ']'))
                return fail(ps, p, "']' expected");
            if (*p++ == ']')
                return p;
            p = ws(p, end);
        }
    case '"': {
        size_t dl;
        int esc;
        cur q = scan_string(ps, p + 1, &dl, &esc);

        return q ? q + 1 : NULL;
    }
    default:
        return scalar(ps, p, &v);
    }
}

static inline int
is_id(const item *x)
{
    return x->key == ID_KEY && x->nlen == 2;
}

static int
item_cmp(const void *x, const void *y)
{
    const item *a = x, *b = y;

    return name_cmp(a->name, a->nlen, b->name, b->nlen);
}

/* a's name before b's (bytewise, then shorter first). */
static inline int
item_lt(const item *a, const item *b)
{
    if (a->key != b->key)
        return a->key < b->key;
    return name_cmp(a->name, a->nlen, b->name, b->nlen) < 0;
}

static inline int
item_eq(const item *a, const item *b)
{
    return a->key == b->key && a->nlen == b->nlen &&
           (a->nlen <= 8 || memcmp(a->name + 8, b->name + 8, a->nlen - 8) == 0);
}

/* The order of the items by name in ord: an insertion sort of indexes
 * (records have a handful of fields); beyond SMALL, qsort() of the items
 * themselves and ord NULL. */
#define SMALL 24

static const uint8_t *
sort_items(item *it, size_t n, uint8_t *ord)
{
    if (n > SMALL) {
        qsort(it, n, sizeof *it, item_cmp);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t j = i;

        for (; j > 0 && item_lt(&it[i], &it[ord[j - 1]]); j--)
            ord[j] = ord[j - 1];
        ord[j] = (uint8_t)i;
    }
    return ord;
}

/*
 * The checks after a clean parse, in jansson's order: duplicates (a parse
 * error there), the key count, then the first bad key in document order
 * (json.c looked at "id", then the name, then the value), then the field
 * count without "id".
 */
static bs_err
finish(parser *ps, bs_arena *a, item *it, size_t nk, const char **id,
       size_t *idlen, bs_field **out, size_t *n)
{
    item bad;
    int has_bad = 0, has_id = 0;
    uint8_t ordbuf[SMALL];
    const uint8_t *ord;
    bs_field *f;
    size_t k = 0;

    for (size_t i = 0; i < nk && !has_bad; i++) {
        if (is_id(&it[i]))
            has_bad = it[i].nested || it[i].val.type != BS_VTEXT;
        else if (it[i].clean) /* what bs_field_name_valid() checks then */
            has_bad = it[i].nlen == 0 || it[i].nlen > BS_FIELD_NAME_MAX ||
                      it[i].nested;
        else
            has_bad =
                !bs_field_name_valid(it[i].name, it[i].nlen) || it[i].nested;
        if (has_bad)
            bad = it[i];
    }
    ord = sort_items(it, nk, ordbuf);
#define AT(i) (ord != NULL ? &it[ord[i]] : &it[i])
    for (size_t i = 1; i < nk; i++)
        if (item_eq(AT(i - 1), AT(i)))
            return bs_errf(ps->err, BS_EJSON,
                           "malformed JSON: duplicate object key \"%.*s\"",
                           (int)(AT(i)->nlen > 40 ? 40 : AT(i)->nlen),
                           AT(i)->name);
    if (nk > BS_FIELDS_MAX + 1)
        return bs_errf(ps->err, BS_EINVAL, "record has more than %d fields",
                       BS_FIELDS_MAX);
    if (has_bad) {
        if (is_id(&bad))
            return bs_errf(ps->err, BS_EINVAL, "\"id\" must be a string");
        if (!bs_field_name_valid(bad.name, bad.nlen))
            return bs_errf(ps->err, BS_EINVAL,
                           "bad field name \"%.*s\": 1 to %d bytes, no "
                           "control characters",
                           (int)(bad.nlen > 40 ? 40 : bad.nlen), bad.name,
                           BS_FIELD_NAME_MAX);
        return bs_errf(ps->err, BS_EINVAL,
                       "field \"%s\" is %s: fields must be strings, numbers, "
                       "booleans or null",
                       bad.name, bad.nested == '{' ? "an object" : "an array");
    }
    for (size_t i = 0; i < nk; i++)
        has_id |= is_id(&it[i]);
    if (nk - (size_t)has_id > BS_FIELDS_MAX)
        return bs_errf(ps->err, BS_EINVAL, "record has more than %d fields",
                       BS_FIELDS_MAX);
    if ((f = bs_arena_alloc(a, (nk - (size_t)has_id + 1) * sizeof *f)) == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < nk; i++) {
        const item *x = AT(i);

        if (is_id(x)) {
            *id = x->val.s;
            *idlen = x->val.len;
            continue;
        }
        f[k].name = x->name;
        f[k].namelen = (uint16_t)x->nlen;
        f[k].ver = (bs_version){0, 0, 0, 0};
        f[k].val = x->val;
        k++;
    }
#undef AT
    *out = f;
    *n = k;
    return BS_OK;
}

/* it grows from the stack array to the heap. */
static int
grow(item **it, item *stack, size_t *cap)
{
    size_t ncap = *cap * 2;
    item *p;

    if (*it == stack) {
        if ((p = malloc(ncap * sizeof *p)) != NULL)
            memcpy(p, stack, *cap * sizeof *p);
    } else {
        p = realloc(*it, ncap * sizeof *p);
    }
    if (p == NULL)
        return 0;
    *it = p;
    *cap = ncap;
    return 1;
}

bs_err
bs_flatjson_fields(const char *text, size_t len, bs_arena *a, const char **id,
                   size_t *idlen, bs_field **out, size_t *n, bs_errbuf *err)
{
    parser ps;
    item stack[STACK_ITEMS], *it = stack;
    size_t nk = 0, cap = STACK_ITEMS;
    char *blk;
    cur p, end;

    *id = NULL;
    *idlen = 0;
    *n = 0;
    if (len > BS_RECORD_JSON_MAX)
        return bs_errf(err, BS_EINVAL, "record is larger than %u bytes",
                       BS_RECORD_JSON_MAX);
    ps.s = (cur)text;
    ps.end = end = ps.s + len;
    ps.err = err;
    ps.rv = BS_OK;
    bs_arena_init(&ps.tmp);
    p = ws(ps.s, end);
    if (p == end || *p != '{') {
        /* Not an object: still a syntax error if it is not JSON. */
        if ((p = skip_value(&ps, p, 1)) != NULL && ws(p, end) != end)
            fail(&ps, ws(p, end), "end of input expected");
        bs_arena_fini(&ps.tmp);
        if (ps.rv != BS_OK)
            return ps.rv;
        return bs_errf(err, BS_EINVAL, "record must be a JSON object");
    }
    if ((blk = bs_arena_alloc(a, len)) == NULL)
        return BS_ENOMEM;
    p = ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            size_t dl;
            int esc;
            item *x;
            cur q;

            if (p == end || *p != '"') {
                fail(&ps, p, "string or '}' expected");
                goto done;
            }
            if ((q = scan(&ps, p + 1, &dl, &esc)) == NULL)
                goto done;
            if (nk == cap && !grow(&it, stack, &cap)) {
                oom(&ps);
                goto done;
            }
            x = &it[nk++];
            x->name = put_string(&blk, p + 1, q, dl, esc);
            x->nlen = dl;
            if (esc == 0 && dl < 8 && end - (p + 1) >= 8) {
                /* The text holds the name as is: one load, masked. */
                uint64_t k;

                memcpy(&k, p + 1, 8);
                x->key = dl == 0 ? 0
                                 : __builtin_bswap64(k) &
                                       (~UINT64_C(0) << (64 - 8 * dl));
            } else {
                x->key = name_key(x->name, dl);
            }
            x->nested = 0;
            x->clean = esc == 0;
            memset(&x->val, 0, sizeof x->val);
            p = ws(q + 1, end);
            if (p == end || *p != ':') {
                fail(&ps, p, "':' expected");
                goto done;
            }
            p = ws(p + 1, end);
            if (p == end) {
                fail(&ps, p, "premature end of input");
                goto done;
            }
            if (*p == '"') {
                if ((q = scan(&ps, p + 1, &dl, &esc)) == NULL)
                    goto done;
                x->val.type = BS_VTEXT;
                x->val.s = put_string(&blk, p + 1, q, dl, esc);
                x->val.len = (uint32_t)dl;
                p = q + 1;
            } else if (*p == '{' || *p == '[') {
                x->nested = *p;
                if ((p = skip_value(&ps, p, 2)) == NULL)
                    goto done;
            } else if ((p = scalar(&ps, p, &x->val)) == NULL) {
                goto done;
            }
            p = ws(p, end);
            if (p == end || (*p != ',' && *p != '}')) {
                fail(&ps, p, "'}' expected");
                goto done;
            }
            if (*p++ == '}')
                break;
            p = ws(p, end);
        }
    }
    if ((p = ws(p, end)) != end)
        fail(&ps, p, "end of input expected");
done:
    if (ps.rv == BS_OK)
        ps.rv = finish(&ps, a, it, nk, id, idlen, out, n);
    if (it != stack)
        free(it);
    bs_arena_fini(&ps.tmp);
    if (ps.rv != BS_OK) {
        *id = NULL;
        *idlen = 0;
        *n = 0;
    }
    return ps.rv;
}
