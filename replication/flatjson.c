/*
 * flatjson.c - a strict parser for one flat JSON object (flatjson.h).
 *
 * One pass over the text, no DOM.  Every string is validated, then copied
 * (unescaped) into one arena block of `len` bytes: a decoded string and its
 * NUL never take more bytes than its quoted form, so the block cannot
 * overflow.  The keys and scalar values go to a small array (on the stack up
 * to STACK_ITEMS keys), sorted once at the end; neighbours are compared to
 * find duplicates.  Nested objects and arrays are validated (a syntax error
 * in them is BS_EJSON, as with the reference parser) but not kept.  This file
 * is the grammar of objects and arrays and what is kept of them; strings and
 * scalars are read by jsontok.c.
 */
#include "flatjson.h"

#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "jsontok.h"

#define MAX_DEPTH   2048 /* the reference parser's maximum depth */
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
    bs_jsontok tok; /* the text and its first error */
    bs_arena tmp;   /* keys of nested objects */
} parser;

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

/* bs_jsontok_string() for the common case, inline: a plain string that
 * ends within the next 16 bytes. */
static inline cur
scan(parser *ps, cur p, size_t *dlen, int *fl)
{
#ifdef __SSE2__
    if (ps->tok.end - p >= 16) {
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
    return bs_jsontok_string(&ps->tok, p, dlen, fl);
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

    if (esc & BS_JSONTOK_ESC)
        bs_jsontok_decode(p, q, s);
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
    cur end = ps->tok.end, open = p;
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
            p = bs_jsontok_fail(&ps->tok, p, "string or '}' expected");
            goto out;
        }
        if ((q = bs_jsontok_string(&ps->tok, p + 1, &dl, &esc)) == NULL) {
            p = NULL;
            goto out;
        }
        if (nk == cap) {
            keyref *nkeys;

            cap = cap ? cap * 2 : 16;
            if ((nkeys = realloc(keys, cap * sizeof *keys)) == NULL) {
                p = bs_jsontok_oom(&ps->tok);
                goto out;
            }
            keys = nkeys;
        }
        if ((k = bs_arena_alloc(&ps->tmp, dl + 1)) == NULL) {
            p = bs_jsontok_oom(&ps->tok);
            goto out;
        }
        put_string(&k, p + 1, q, dl, esc);
        keys[nk++] = (keyref){k - dl - 1, dl};
        p = ws(q + 1, end);
        if (p == end || *p != ':') {
            p = bs_jsontok_fail(&ps->tok, p, "':' expected");
            goto out;
        }
        if ((p = skip_value(ps, ws(p + 1, end), depth + 1)) == NULL)
            goto out;
        p = ws(p, end);
        if (p == end || (*p != ',' && *p != '}')) {
            p = bs_jsontok_fail(&ps->tok, p, "'}' expected");
            goto out;
        }
        if (*p++ == '}')
            break;
        p = ws(p, end);
    }
    qsort(keys, nk, sizeof *keys, keyref_cmp);
    for (size_t i = 1; i < nk; i++)
        if (keyref_cmp(&keys[i - 1], &keys[i]) == 0) {
            p = bs_jsontok_fail(&ps->tok, open, "duplicate object key \"%.*s\"",
                                (int)(keys[i].n > 40 ? 40 : keys[i].n),
                                keys[i].s);
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
    cur end = ps->tok.end;
    bs_value v;

    if (p == end)
        return bs_jsontok_fail(&ps->tok, p, "premature end of input");
    if (depth > MAX_DEPTH)
        return bs_jsontok_fail(&ps->tok, p, "maximum parsing depth reached");
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
                return bs_jsontok_fail(&ps->tok, p, "']' expected");
            if (*p++ == ']')
                return p;
            p = ws(p, end);
        }
    case '"': {
        size_t dl;
        int esc;
        cur q = bs_jsontok_string(&ps->tok, p + 1, &dl, &esc);

        return q ? q + 1 : NULL;
    }
    default:
        return bs_jsontok_scalar(&ps->tok, p, &v);
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
 * The checks after a clean parse, in the reference parser's order: duplicates
 * (a parse error there), then the first bad key in document order (json.c
 * looked at "id", then the name, then the value).
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
            return bs_errf(ps->tok.err, BS_EJSON,
                           "malformed JSON: duplicate object key \"%.*s\"",
                           (int)(AT(i)->nlen > 40 ? 40 : AT(i)->nlen),
                           AT(i)->name);
    if (has_bad) {
        if (is_id(&bad))
            return bs_errf(ps->tok.err, BS_EINVAL, "\"id\" must be a string");
        if (!bs_field_name_valid(bad.name, bad.nlen))
            return bs_errf(ps->tok.err, BS_EINVAL,
                           "bad field name \"%.*s\": 1 to %d bytes, no "
                           "control characters",
                           (int)(bad.nlen > 40 ? 40 : bad.nlen), bad.name,
                           BS_FIELD_NAME_MAX);
        return bs_errf(ps->tok.err, BS_EINVAL,
                       "field \"%s\" is %s: fields must be strings, numbers, "
                       "booleans or null",
                       bad.name, bad.nested == '{' ? "an object" : "an array");
    }
    for (size_t i = 0; i < nk; i++)
        has_id |= is_id(&it[i]);
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
        return bs_errf(err, BS_EINVAL, "record is larger than %u MiB",
                       BS_RECORD_JSON_MAX >> 20);
    ps.tok.s = (cur)text;
    ps.tok.end = end = ps.tok.s + len;
    ps.tok.err = err;
    ps.tok.rv = BS_OK;
    bs_arena_init(&ps.tmp);
    p = ws(ps.tok.s, end);
    if (p == end || *p != '{') {
        /* Not an object: still a syntax error if it is not JSON. */
        if ((p = skip_value(&ps, p, 1)) != NULL && ws(p, end) != end)
            bs_jsontok_fail(&ps.tok, ws(p, end), "end of input expected");
        bs_arena_fini(&ps.tmp);
        if (ps.tok.rv != BS_OK)
            return ps.tok.rv;
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
                bs_jsontok_fail(&ps.tok, p, "string or '}' expected");
                goto done;
            }
            if ((q = scan(&ps, p + 1, &dl, &esc)) == NULL)
                goto done;
            if (nk == cap && !grow(&it, stack, &cap)) {
                bs_jsontok_oom(&ps.tok);
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
                bs_jsontok_fail(&ps.tok, p, "':' expected");
                goto done;
            }
            p = ws(p + 1, end);
            if (p == end) {
                bs_jsontok_fail(&ps.tok, p, "premature end of input");
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
            } else if ((p = bs_jsontok_scalar(&ps.tok, p, &x->val)) == NULL) {
                goto done;
            }
            p = ws(p, end);
            if (p == end || (*p != ',' && *p != '}')) {
                bs_jsontok_fail(&ps.tok, p, "'}' expected");
                goto done;
            }
            if (*p++ == '}')
                break;
            p = ws(p, end);
        }
    }
    if ((p = ws(p, end)) != end)
        bs_jsontok_fail(&ps.tok, p, "end of input expected");
done:
    if (ps.tok.rv == BS_OK)
        ps.tok.rv = finish(&ps, a, it, nk, id, idlen, out, n);
    if (it != stack)
        free(it);
    bs_arena_fini(&ps.tmp);
    if (ps.tok.rv != BS_OK) {
        *id = NULL;
        *idlen = 0;
        *n = 0;
    }
    return ps.tok.rv;
}
