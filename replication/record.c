/*
 * record.c - record codec and the per-field merge rule.
 */
#include "record.h"

#include <string.h>

#define FORMAT      2 /* u16 counts and indices */
#define FORMAT_WIDE 3 /* u32 counts and indices */
#define NO_VIDX     0xffffu
#define VER_SIZE    24
#define FLAGS_KNOWN (BS_RECORD_LIVE | BS_RECORD_OWN_BASE)

int
bs_version_cmp(const bs_version *a, const bs_version *b, const bs_order *o)
{
    int c;

    if (o->use_prio && a->prio != b->prio)
        return a->prio < b->prio ? -1 : 1;
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    if (a->stream != b->stream) {
        c = memcmp(o->stream_key(o->ctx, a->stream),
                   o->stream_key(o->ctx, b->stream), 48);
        if (c != 0)
            return c < 0 ? -1 : 1;
    }
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

int
bs_record_live(const bs_record *r, const bs_order *o)
{
    if (!r->has_alive)
        return 0;
    return !r->has_tomb || bs_version_cmp(&r->alive, &r->tomb, o) > 0;
}

int
bs_value_eq(const bs_value *a, const bs_value *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case BS_VINT:
        return a->i == b->i;
    case BS_VREAL:
        return memcmp(&a->d, &b->d, sizeof a->d) == 0;
    case BS_VTEXT:
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    default:
        return 1;
    }
}

static int
name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);

    if (c != 0)
        return c;
    return an < bn ? -1 : an > bn;
}

const bs_field *
bs_record_find(const bs_record *r, const char *name, size_t n)
{
    size_t lo = 0, hi = r->nfields;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const bs_field *f = &r->fields[mid];
        int c = name_cmp(f->name, f->namelen, name, n);

        if (c == 0)
            return f;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const bs_value *
bs_record_field(const bs_record *r, const char *name)
{
    const bs_field *f = bs_record_find(r, name, strlen(name));

    return f != NULL ? &f->val : NULL;
}

static int
field_cmp(const void *x, const void *y)
{
    const bs_field *a = x, *b = y;

    return name_cmp(a->name, a->namelen, b->name, b->namelen);
}

bs_err
bs_fields_sort(bs_field *f, size_t n, bs_errbuf *err)
{
    size_t i = 1;

    if (n < 2)
        return BS_OK; /* (and qsort must not see a NULL array) */
    /* Writers send a change's fields sorted by name (protocol.md 5.3,
     * step 1): found strictly ascending, they are sorted and distinct
     * already, and qsort would leave them as they are. */
    while (i < n && field_cmp(&f[i - 1], &f[i]) < 0)
        i++;
    if (i == n)
        return BS_OK;
    qsort(f, n, sizeof *f, field_cmp);
    for (i = 1; i < n; i++)
        if (field_cmp(&f[i - 1], &f[i]) == 0)
            return bs_errf(err, BS_EINVAL, "duplicate field \"%.*s\"",
                           (int)f[i].namelen, f[i].name);
    return BS_OK;
}

/* ---- codec ---- */

static void
put16(uint8_t **p, uint16_t v)
{
    memcpy(*p, &v, 2);
    *p += 2;
}

static void
put32(uint8_t **p, uint32_t v)
{
    memcpy(*p, &v, 4);
    *p += 4;
}

static void
put64(uint8_t **p, uint64_t v)
{
    memcpy(*p, &v, 8);
    *p += 8;
}

typedef struct reader {
    const uint8_t *p, *end;
    int bad;
} reader;

static const uint8_t *
take(reader *r, size_t n)
{
    const uint8_t *p = r->p;

    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    r->p += n;
    return p;
}

static uint16_t
get16(reader *r)
{
    uint16_t v = 0;
    const uint8_t *p = take(r, 2);

    if (p)
        memcpy(&v, p, 2);
    return v;
}

static uint32_t
get32(reader *r)
{
    uint32_t v = 0;
    const uint8_t *p = take(r, 4);

    if (p)
        memcpy(&v, p, 4);
    return v;
}

static uint64_t
get64(reader *r)
{
    uint64_t v = 0;
    const uint8_t *p = take(r, 8);

    if (p)
        memcpy(&v, p, 8);
    return v;
}

static int
ver_eq(const bs_version *a, const bs_version *b)
{
    return a->hlc == b->hlc && a->seq == b->seq && a->stream == b->stream &&
           a->prio == b->prio;
}

static uint64_t
ver_hash(const bs_version *v)
{
    uint64_t h = v->hlc * 0x9e3779b97f4a7c15u;

    h ^= (v->seq + ((uint64_t)v->stream << 32 | v->prio)) * 0xc2b2ae3d27d4eb4fu;
    return h ^ (h >> 29);
}

/* Records with few fields (nearly all) find their distinct versions by a
 * linear search; larger ones through a hash table, so that preparing a
 * record of n fields costs O(n). */
#define LINEAR_MAX 32

/* The index of v in e->ver, adding it when new; slots (mask + 1 of them,
 * UINT32_MAX when empty) is the hash table, or NULL. */
static uint32_t
ver_index(bs_recenc *e, const bs_version **tab, uint32_t *slots, size_t mask,
          const bs_version *v)
{
    if (slots == NULL) {
        for (size_t i = 0; i < e->nver; i++)
            if (ver_eq(tab[i], v))
                return (uint32_t)i;
    } else {
        size_t h = (size_t)ver_hash(v) & mask;

        for (; slots[h] != UINT32_MAX; h = (h + 1) & mask)
            if (ver_eq(tab[slots[h]], v))
                return slots[h];
        slots[h] = (uint32_t)e->nver;
    }
    tab[e->nver] = v;
    return (uint32_t)e->nver++;
}

static size_t
value_size(const bs_value *v)
{
    switch (v->type) {
    case BS_VINT:
    case BS_VREAL:
        return 1 + 8;
    case BS_VTEXT:
        return 1 + 4 + v->len;
    default:
        return 1;
    }
}

bs_err
bs_record_prepare(const bs_record *r, bs_arena *a, bs_recenc *e)
{
    size_t max = r->nfields + 2, mask = 0, w;
    const bs_version **tab;
    uint32_t *slots = NULL;

    memset(e, 0, sizeof *e);
    if (r->nfields > UINT32_MAX - 2)
        return BS_ENOMEM; /* not addressable in the wide format */
    tab = bs_arena_alloc(a, max * sizeof *tab);
    e->fidx = bs_arena_alloc(a, (r->nfields + 1) * sizeof *e->fidx);
    if (tab == NULL || e->fidx == NULL)
        return BS_ENOMEM;
    if (max > LINEAR_MAX) {
        for (mask = 64; mask < max * 2; mask *= 2)
            ;
        if ((slots = bs_arena_alloc(a, mask * sizeof *slots)) == NULL)
            return BS_ENOMEM;
        memset(slots, 0xff, mask * sizeof *slots);
        mask--;
    }
    e->alive = e->tomb = UINT32_MAX;
    if (r->has_alive)
        e->alive = ver_index(e, tab, slots, mask, &r->alive);
    if (r->has_tomb)
        e->tomb = ver_index(e, tab, slots, mask, &r->tomb);
    for (size_t i = 0; i < r->nfields; i++)
        e->fidx[i] = ver_index(e, tab, slots, mask, &r->fields[i].ver);
    e->ver = tab;
    /* The narrow format holds counts and indices below NO_VIDX. */
    e->wide = e->nver >= NO_VIDX || r->nfields >= NO_VIDX;
    w = e->wide ? 4 : 2;
    e->size = 1 + 1 + w + e->nver * VER_SIZE + 3 * w;
    for (size_t i = 0; i < r->nfields; i++)
        e->size += w + 2 + r->fields[i].namelen + value_size(&r->fields[i].val);
    return BS_OK;
}

static void
put_idx(uint8_t **p, int wide, uint32_t v)
{
    if (wide)
        put32(p, v);
    else
        put16(p, v == UINT32_MAX ? NO_VIDX : (uint16_t)v);
}

void
bs_record_encode(const bs_record *r, const bs_recenc *e, uint8_t *out)
{
    uint8_t *p = out;

    *p++ = e->wide ? FORMAT_WIDE : FORMAT;
    *p++ = r->live ? BS_RECORD_LIVE : 0; /* never BS_RECORD_OWN_BASE */
    put_idx(&p, e->wide, (uint32_t)e->nver);
    for (size_t i = 0; i < e->nver; i++) {
        put64(&p, e->ver[i]->hlc);
        put64(&p, e->ver[i]->seq);
        put32(&p, e->ver[i]->stream);
        put32(&p, e->ver[i]->prio);
    }
    put_idx(&p, e->wide, e->alive);
    put_idx(&p, e->wide, e->tomb);
    put_idx(&p, e->wide, (uint32_t)r->nfields);
    for (size_t i = 0; i < r->nfields; i++) {
        const bs_field *f = &r->fields[i];

        put_idx(&p, e->wide, e->fidx[i]);
        put16(&p, f->namelen);
        memcpy(p, f->name, f->namelen);
        p += f->namelen;
        *p++ = f->val.type;
        if (f->val.type == BS_VINT) {
            put64(&p, (uint64_t)f->val.i);
        } else if (f->val.type == BS_VREAL) {
            memcpy(p, &f->val.d, 8);
            p += 8;
        } else if (f->val.type == BS_VTEXT) {
            put32(&p, f->val.len);
            memcpy(p, f->val.s, f->val.len);
            p += f->val.len;
        }
    }
    BS_ASSERT((size_t)(p - out) == e->size);
}

static bs_err
decode_value(reader *rd, bs_value *v)
{
    const uint8_t *t = take(rd, 1);

    if (t == NULL)
        return BS_ESTORE;
    memset(v, 0, sizeof *v);
    v->type = *t;
    switch (v->type) {
    case BS_VNULL:
    case BS_VFALSE:
    case BS_VTRUE:
        break;
    case BS_VINT:
        v->i = (int64_t)get64(rd);
        break;
    case BS_VREAL: {
        const uint8_t *p = take(rd, 8);
        if (p)
            memcpy(&v->d, p, 8);
        break;
    }
    case BS_VTEXT:
        v->len = get32(rd);
        v->s = (const char *)take(rd, v->len);
        break;
    default:
        return BS_ESTORE;
    }
    return rd->bad ? BS_ESTORE : BS_OK;
}

/* A count or index of the record's format: u16, or u32 when wide. */
static uint32_t
get_idx(reader *rd, int wide)
{
    uint32_t v;

    if (wide)
        return get32(rd);
    v = get16(rd);
    return v == NO_VIDX ? UINT32_MAX : v;
}

bs_err
bs_record_peek_live(const uint8_t *buf, size_t n, int *live)
{
    if (n < 2 || (buf[0] != FORMAT && buf[0] != FORMAT_WIDE) ||
        (buf[1] & ~FLAGS_KNOWN) != 0)
        return BS_ESTORE;
    *live = buf[1] & BS_RECORD_LIVE;
    return BS_OK;
}

int
bs_record_own_base(const uint8_t *buf, size_t n)
{
    return n >= 2 && (buf[1] & BS_RECORD_OWN_BASE) != 0;
}

void
bs_record_set_own_base(uint8_t *buf)
{
    buf[1] |= BS_RECORD_OWN_BASE;
}

void
bs_record_clear_own_base(uint8_t *buf)
{
    buf[1] &= (uint8_t)~BS_RECORD_OWN_BASE;
}

bs_err
bs_record_decode(bs_record *r, const uint8_t *buf, size_t n, bs_arena *a)
{
    reader rd = {buf, buf + n, 0};
    const uint8_t *fmt = take(&rd, 1), *flags = take(&rd, 1);
    bs_version *vers;
    uint32_t nver, av, tv;
    int wide;

    memset(r, 0, sizeof *r);
    if (fmt == NULL || flags == NULL ||
        (*fmt != FORMAT && *fmt != FORMAT_WIDE) || (*flags & ~FLAGS_KNOWN) != 0)
        return BS_ESTORE;
    wide = *fmt == FORMAT_WIDE;
    r->live = *flags & BS_RECORD_LIVE; /* BS_RECORD_OWN_BASE: movein.c's */
    nver = get_idx(&rd, wide);
    /* Check the lengths before allocating: corrupt bytes stay cheap. */
    if (rd.bad || nver == UINT32_MAX ||
        (size_t)(rd.end - rd.p) < (size_t)nver * VER_SIZE)
        return BS_ESTORE;
    if ((vers = bs_arena_alloc(a, (nver + 1u) * sizeof *vers)) == NULL)
        return BS_ENOMEM;
    for (uint32_t i = 0; i < nver; i++) {
        vers[i].hlc = get64(&rd);
        vers[i].seq = get64(&rd);
        vers[i].stream = get32(&rd);
        vers[i].prio = get32(&rd);
    }
    av = get_idx(&rd, wide);
    tv = get_idx(&rd, wide);
    r->nfields = get_idx(&rd, wide);
    /* Each field takes at least an index, a name length and a type. */
    if (rd.bad || r->nfields == UINT32_MAX ||
        (size_t)(rd.end - rd.p) / (wide ? 7u : 5u) < r->nfields ||
        (av != UINT32_MAX && av >= nver) || (tv != UINT32_MAX && tv >= nver))
        return BS_ESTORE;
    if ((r->has_alive = av != UINT32_MAX))
        r->alive = vers[av];
    if ((r->has_tomb = tv != UINT32_MAX))
        r->tomb = vers[tv];
    r->fields = bs_arena_alloc(a, (r->nfields + 1) * sizeof *r->fields);
    if (r->fields == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < r->nfields; i++) {
        bs_field *f = &r->fields[i];
        uint32_t vi = get_idx(&rd, wide);

        f->namelen = get16(&rd);
        f->name = (const char *)take(&rd, f->namelen);
        if (rd.bad || vi >= nver || decode_value(&rd, &f->val) != BS_OK)
            return BS_ESTORE;
        f->ver = vers[vi];
    }
    return rd.bad || rd.p != rd.end ? BS_ESTORE : BS_OK;
}

/* ---- merge ---- */

static bs_err
merge_delete(bs_record *r, const bs_version *ver, const bs_order *o,
             int *changed)
{
    size_t keep = 0;

    if (r->has_tomb && bs_version_cmp(ver, &r->tomb, o) <= 0)
        return BS_OK; /* an equal or newer delete is already here */
    r->has_tomb = 1;
    r->tomb = *ver;
    *changed = 1;
    /* Fields older than the delete can never be visible again: drop them. */
    for (size_t i = 0; i < r->nfields; i++)
        if (bs_version_cmp(&r->fields[i].ver, ver, o) > 0)
            r->fields[keep++] = r->fields[i];
    r->nfields = keep;
    return BS_OK;
}

bs_err
bs_record_merge(bs_record *r, int deleted, const bs_field *fields,
                size_t nfields, const bs_version *ver, const bs_order *o,
                bs_arena *a, int *changed)
{
    bs_field *out;
    size_t i = 0, j = 0, n = 0;

    *changed = 0;
    if (deleted) {
        bs_err rv = merge_delete(r, ver, o, changed);
        r->live = bs_record_live(r, o);
        return rv;
    }
    /* `alive` is the greatest upsert ever merged, older than a delete or
     * not, so the stored record does not depend on arrival order. */
    if (!r->has_alive || bs_version_cmp(ver, &r->alive, o) > 0) {
        r->has_alive = 1;
        r->alive = *ver;
        *changed = 1;
    }
    r->live = bs_record_live(r, o);
    if (r->has_tomb && bs_version_cmp(ver, &r->tomb, o) <= 0)
        return BS_OK; /* its fields are older than a delete */
    out = bs_arena_alloc(a, (r->nfields + nfields + 1) * sizeof *out);
    if (out == NULL)
        return BS_ENOMEM;
    /* Both lists are sorted by name: a linear merge. */
    while (i < r->nfields || j < nfields) {
        int c;

        if (i == r->nfields)
            c = 1;
        else if (j == nfields)
            c = -1;
        else
            c = name_cmp(r->fields[i].name, r->fields[i].namelen,
                         fields[j].name, fields[j].namelen);
        if (c < 0) {
            out[n++] = r->fields[i++];
        } else if (c > 0) {
            out[n] = fields[j++];
            out[n++].ver = *ver;
            *changed = 1;
        } else {
            if (bs_version_cmp(ver, &r->fields[i].ver, o) > 0) {
                out[n] = fields[j];
                out[n++].ver = *ver;
                *changed = 1;
            } else {
                out[n++] = r->fields[i];
            }
            i++;
            j++;
        }
    }
    r->fields = out;
    r->nfields = n;
    return BS_OK;
}

/* ---- names ---- */

#include <ctype.h>

/* What utf8_check admits besides well-formed UTF-8 without NUL. */
enum { NO_CONTROLS, NO_C0, ANY_CONTROLS };

static int
utf8_check(const unsigned char *s, size_t n, int controls)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;

        if (c == 0 || (controls != ANY_CONTROLS && (c < 0x20 || c == 0x7f)))
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        if (controls == NO_CONTROLS && cp <= 0x9f) /* C1: U+0080-U+009F */
            return 0;
        i += len;
    }
    return 1;
}

int
bs_utf8_valid(const char *s, size_t n)
{
    return utf8_check((const unsigned char *)s, n, ANY_CONTROLS);
}

int
bs_collection_valid(const char *s, int allow_system)
{
    size_t n = strlen(s);

    if (n == 0 || n > BS_COLLECTION_MAX)
        return 0;
    if (!isalnum((unsigned char)s[0]) && !(allow_system && s[0] == '_'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' &&
            s[i] != '.')
            return 0;
    return 1;
}

static int
id_ok(const char *s, int controls)
{
    size_t n = strlen(s);

    return n > 0 && n <= BS_ID_MAX &&
           utf8_check((const unsigned char *)s, n, controls);
}

static int
field_name_ok(const char *s, size_t n, int controls)
{
    return n > 0 && n <= BS_FIELD_NAME_MAX &&
           !(n == 2 && memcmp(s, "id", 2) == 0) && memchr(s, '\0', n) == NULL &&
           utf8_check((const unsigned char *)s, n, controls);
}

int
bs_id_valid(const char *s)
{
    return id_ok(s, NO_CONTROLS);
}

int
bs_id_wire_valid(const char *s)
{
    return id_ok(s, NO_C0);
}

int
bs_field_name_valid(const char *s, size_t n)
{
    return field_name_ok(s, n, NO_CONTROLS);
}

int
bs_field_name_wire_valid(const char *s, size_t n)
{
    return field_name_ok(s, n, NO_C0);
}

size_t
bs_record_key(uint8_t *buf, const char *coll, const char *id)
{
    size_t cn = strlen(coll), in = strlen(id);

    BS_ASSERT(cn <= BS_COLLECTION_MAX && in <= BS_ID_MAX);
    memcpy(buf, coll, cn);
    buf[cn] = '\0';
    memcpy(buf + cn + 1, id, in);
    return cn + 1 + in;
}
