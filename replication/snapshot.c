/*
 * snapshot.c - the record snapshot format (snapshot.h): decoding with
 * its checks, the signature, the canonical encoder.
 */
#include "snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "branchsync.pb-c.h"
#include "pbvalue.h"

static ProtobufCBinaryData
bin(const void *p, size_t n)
{
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

/* ---- decoding ---- */

/* Two versions of one version-2 body (or to be encoded as one). */
static int
same_ver(const bs_snapver *a, const bs_snapver *b)
{
    return a->hlc == b->hlc && a->seq == b->seq && a->prio == b->prio &&
           a->writer == b->writer;
}

static bs_err
malformed(bs_errbuf *err, const char *what)
{
    return bs_errf(err, BS_EMALFORMED, "malformed record snapshot: %s", what);
}

static int
get_version(const Bs__SnapVersion *v, bs_snapver *out)
{
    if (v == NULL || v->origin.len != BS_PK_LEN ||
        v->incarnation.len != BS_INC_LEN || v->seq == 0 || v->writer != 0)
        return 0;
    out->hlc = v->hlc;
    out->seq = v->seq;
    out->prio = v->prio;
    memcpy(out->key, v->origin.data, BS_PK_LEN);
    memcpy(out->key + BS_PK_LEN, v->incarnation.data, BS_INC_LEN);
    return 1;
}

static int
get_value(const Bs__Value *v, bs_value *out)
{
    memset(out, 0, sizeof *out);
    if (v == NULL)
        return 0;
    switch (v->kind_case) {
    case BS__VALUE__KIND_NULL:
        out->type = BS_VNULL;
        return 1;
    case BS__VALUE__KIND_BOOLEAN:
        out->type = v->boolean ? BS_VTRUE : BS_VFALSE;
        return 1;
    case BS__VALUE__KIND_INTEGER:
        out->type = BS_VINT;
        out->i = v->integer;
        return 1;
    case BS__VALUE__KIND_REAL:
        out->type = BS_VREAL;
        out->d = v->real;
        return v->real == v->real && v->real - v->real == 0; /* finite */
    case BS__VALUE__KIND_TEXT: {
        size_t n = strlen(v->text);
        out->type = BS_VTEXT;
        out->s = v->text;
        out->len = (uint32_t)n;
        return n <= UINT32_MAX && bs_utf8_valid(v->text, n);
    }
    default:
        return 0;
    }
}

/* snprintf(dst, size, "%s", src) without the formatting (once per
 * snapshot of a seed). */
static void
copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* N5's shape of a decoded snapshot, of either version. */
static bs_err
check_shape(const bs_snap *s, bs_errbuf *err)
{
    if (s->seed ? (!s->done || s->coll[0] != '\0' || s->id[0] != '\0')
                : !bs_collection_valid(s->coll, 0))
        return malformed(err, s->seed ? "a seed marker names a record"
                                      : "not a user collection");
    if (s->id[0] != '\0' && !bs_id_wire_valid(s->id))
        return malformed(err, "bad record ID");
    if ((s->id[0] == '\0' && !s->done) || (!s->done && s->ncovered > 0))
        return malformed(err, "a record without an ID");
    if (s->done && (s->has_alive || s->has_tomb || s->nfields > 0))
        return malformed(err, "a done marker carries a record");
    if (s->nfields > 0 && !s->has_alive)
        return malformed(err, "fields without an upsert version");
    return BS_OK;
}

static bs_err
decode_body(bs_snap *s, const Bs__SnapBody *b, bs_errbuf *err)
{
    if (b->version != BS_SNAP_VERSION)
        return bs_errf(err, BS_EMALFORMED,
                       "record snapshot version %u is not supported (this "
                       "node reads %u)",
                       b->version, BS_SNAP_VERSION);
    if (b->infobase.len != BS_INFOBASE_LEN || b->hub.len != BS_PK_LEN)
        return malformed(err, "field sizes");
    if (strlen(b->collection) > BS_COLLECTION_MAX) /* copied whole below */
        return malformed(err, b->seed ? "a seed marker names a record"
                                      : "not a user collection");
    if (strlen(b->id) > BS_ID_MAX)
        return malformed(err, "bad record ID");
    if (b->n_covered > BS_SEEN_MAX)
        return malformed(err, "vector too long");
    s->done = b->done;
    s->seed = b->seed;
    if (b->n_covered > 0 &&
        (s->covered = bs_arena_alloc(
             &s->arena, b->n_covered * sizeof *s->covered)) == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < b->n_covered; i++) {
        const Bs__StreamPos *sp = b->covered[i];
        if (sp->origin.len != BS_PK_LEN || sp->incarnation.len != BS_INC_LEN)
            return malformed(err, "bad vector entry");
        memcpy(s->covered[i].origin, sp->origin.data, BS_PK_LEN);
        memcpy(s->covered[i].inc, sp->incarnation.data, BS_INC_LEN);
        s->covered[i].seq = sp->seq;
    }
    s->ncovered = b->n_covered;
    memcpy(s->infobase, b->infobase.data, BS_INFOBASE_LEN);
    memcpy(s->hub, b->hub.data, BS_PK_LEN);
    copy_str(s->coll, sizeof s->coll, b->collection);
    copy_str(s->id, sizeof s->id, b->id);
    s->created_ms = b->created_ms;
    if ((s->has_alive = b->alive != NULL) && !get_version(b->alive, &s->alive))
        return malformed(err, "bad version");
    if ((s->has_tomb = b->tomb != NULL) && !get_version(b->tomb, &s->tomb))
        return malformed(err, "bad version");
    if (b->n_fields > 0 &&
        (s->fields = bs_arena_alloc(&s->arena,
                                    b->n_fields * sizeof *s->fields)) == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < b->n_fields; i++) {
        const Bs__SnapField *f = b->fields[i];
        size_t nl = strlen(f->name);

        if (!bs_field_name_wire_valid(f->name, nl) ||
            !get_value(f->value, &s->fields[i].val) ||
            !get_version(f->version, &s->fields[i].ver))
            return malformed(err, "bad field");
        if (i > 0 && strcmp(b->fields[i - 1]->name, f->name) >= 0)
            return malformed(err, "fields not sorted or not unique");
        s->fields[i].name = f->name;
    }
    s->nfields = b->n_fields;
    return check_shape(s, err);
}

/* protobuf-c's allocator over a snapshot's arena, with the cap that
 * bs_changeset_pb_unpack puts on a message's memory (4 * len + 64 KiB):
 * free is a no-op, the arena goes with the snapshot. */
typedef struct arena_cap {
    bs_arena *a;
    size_t budget;
} arena_cap;

static void *
arena_cap_alloc(void *d, size_t n)
{
    arena_cap *c = d;

    if (n > c->budget)
        return NULL;
    c->budget -= n;
    return bs_arena_alloc(c->a, n);
}

static void
arena_cap_free(void *d, void *p)
{
    (void)d;
    (void)p;
}

/*
 * ---- a SnapBody reader of its own ----
 *
 * protobuf-c's unpack is generic (descriptor-driven, one allocation per
 * message and string): 26 % of a seed's import.  This reader fills the
 * same protobuf-c structures, in the arena, for the encodings a canonical
 * body uses — each field once, in the wire type its declaration gives,
 * bytes pointing into the body (which the snapshot borrows anyway) — and
 * gives up (NULL) on anything else, which then goes to protobuf-c.  What
 * it accepts is judged as protobuf-c's result would be: unpack_body
 * checks that it packs back to exactly the body (or trusts bytes that
 * passed that check before), and decode_body checks the values.
 */
typedef struct rd {
    const uint8_t *p, *end;
} rd;

static int
rd_varint(rd *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; r->p < r->end && shift < 64; shift += 7) {
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 1;
    }
    return 0;
}

/* The next field's number and wire type; 0 at the end or on a bad tag. */
static int
rd_tag(rd *r, uint32_t *field, uint32_t *wt)
{
    uint64_t t;

    if (r->p >= r->end || !rd_varint(r, &t) || t >> 3 == 0 || t >> 3 > 99)
        return 0;
    *field = (uint32_t)(t >> 3);
    *wt = (uint32_t)(t & 7);
    return 1;
}

static int
rd_len(rd *r, rd *sub)
{
    uint64_t n;

    if (!rd_varint(r, &n) || n > (uint64_t)(r->end - r->p))
        return 0;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 1;
}

static int
rd_bytes(rd *r, ProtobufCBinaryData *out)
{
    rd sub;

    if (!rd_len(r, &sub))
        return 0;
    out->data = (uint8_t *)sub.p;
    out->len = (size_t)(sub.end - sub.p);
    return 1;
}

static int
rd_string(rd *r, bs_arena *a, char **out)
{
    rd sub;

    return rd_len(r, &sub) &&
           (*out = bs_arena_strndup(a, (const char *)sub.p,
                                    (size_t)(sub.end - sub.p))) != NULL;
}

/* Field f of wire type wt, as declared: 0 varint, 1 fixed64, 2 length. */
#define RD_WANT(wt, want)                                                      \
    do {                                                                       \
        if ((wt) != (want))                                                    \
            return 0;                                                          \
    } while (0)

static int
rd_version(rd r, Bs__SnapVersion *v)
{
    uint32_t f, wt;
    uint64_t x;

    bs__snap_version__init(v);
    while (rd_tag(&r, &f, &wt)) {
        switch (f) {
        case 1:
            RD_WANT(wt, 0);
            if (!rd_varint(&r, &v->hlc))
                return 0;
            break;
        case 2:
            RD_WANT(wt, 2);
            if (!rd_bytes(&r, &v->origin))
                return 0;
            break;
        case 3:
            RD_WANT(wt, 2);
            if (!rd_bytes(&r, &v->incarnation))
                return 0;
            break;
        case 4:
            RD_WANT(wt, 0);
            if (!rd_varint(&r, &v->seq))
                return 0;
            break;
        case 5:
            RD_WANT(wt, 0);
            if (!rd_varint(&r, &x))
                return 0;
            v->prio = (uint32_t)x;
            break;
        default:
            return 0;
        }
    }
    return r.p == r.end;
}

static int
rd_value(rd r, bs_arena *a, Bs__Value *v)
{
    uint32_t f, wt;
    uint64_t x;

    bs__value__init(v);
    while (rd_tag(&r, &f, &wt)) {
        if (v->kind_case != BS__VALUE__KIND__NOT_SET)
            return 0; /* a oneof set twice */
        switch (f) {
        case 1:
        case 2:
        case 3:
            RD_WANT(wt, 0);
            if (!rd_varint(&r, &x))
                return 0;
            if (f == 3)
                v->integer = (int64_t)(x >> 1) ^ -(int64_t)(x & 1);
            else if (f == 1)
                v->null = x != 0;
            else
                v->boolean = x != 0;
            break;
        case 4:
            RD_WANT(wt, 1);
            if (r.end - r.p < 8)
                return 0;
            x = 0;
            for (int i = 7; i >= 0; i--)
                x = x << 8 | r.p[i];
            memcpy(&v->real, &x, sizeof v->real);
            r.p += 8;
            break;
        case 5:
            RD_WANT(wt, 2);
            if (!rd_string(&r, a, &v->text))
                return 0;
            break;
        default:
            return 0;
        }
        v->kind_case = (Bs__Value__KindCase)f;
    }
    return r.p == r.end;
}

static int
rd_field(rd r, bs_arena *a, Bs__SnapField *sf)
{
    uint32_t f, wt;
    rd sub;

    bs__snap_field__init(sf);
    while (rd_tag(&r, &f, &wt)) {
        RD_WANT(wt, 2);
        if (f == 1) {
            if (!rd_string(&r, a, &sf->name))
                return 0;
            continue;
        }
        if (f != 2 && f != 3)
            return 0;
        if (!rd_len(&r, &sub))
            return 0;
        if (f == 2 &&
            (sf->value != NULL ||
             (sf->value = bs_arena_alloc(a, sizeof *sf->value)) == NULL ||
             !rd_value(sub, a, sf->value)))
            return 0;
        if (f == 3 &&
            (sf->version != NULL ||
             (sf->version = bs_arena_alloc(a, sizeof *sf->version)) == NULL ||
             !rd_version(sub, sf->version)))
            return 0;
    }
    return r.p == r.end;
}

static int
rd_pos(rd r, Bs__StreamPos *sp)
{
    uint32_t f, wt;

    bs__stream_pos__init(sp);
    while (rd_tag(&r, &f, &wt)) {
        if (f == 1 || f == 2) {
            RD_WANT(wt, 2);
            if (!rd_bytes(&r, f == 1 ? &sp->origin : &sp->incarnation))
                return 0;
        } else if (f == 3) {
            RD_WANT(wt, 0);
            if (!rd_varint(&r, &sp->seq))
                return 0;
        } else {
            return 0;
        }
    }
    return r.p == r.end;
}

/* The number of fields 8 and 11 of a body (arrays sized before filling);
 * 0 when it does not scan. */
static int
rd_count(rd r, size_t *nfields, size_t *ncovered)
{
    uint32_t f, wt;
    uint64_t x;
    rd sub;

    *nfields = *ncovered = 0;
    while (rd_tag(&r, &f, &wt)) {
        if (wt == 0) {
            if (!rd_varint(&r, &x))
                return 0;
        } else if (wt == 2) {
            if (!rd_len(&r, &sub))
                return 0;
            *nfields += f == 8;
            *ncovered += f == 11;
        } else {
            return 0; /* SnapBody has no fixed-width field */
        }
    }
    return r.p == r.end;
}

/* At most `budget` bytes of arena (the cap protobuf-c's unpack gets, P21):
 * a body whose counts could need more goes to protobuf-c. */
static Bs__SnapBody *
read_body(bs_arena *a, const uint8_t *p, size_t n, size_t budget)
{
    rd r = {p, p + n}, sub;
    Bs__SnapBody *b;
    size_t nf, nc;
    uint32_t f, wt, last = 0;
    uint64_t x;

    /* the structures, the pointer arrays, and the strings' bytes with
     * a NUL and 8-byte alignment each (collection, id; a name and a
     * text per field) */
    if (!rd_count(r, &nf, &nc) ||
        sizeof *b + 16 + n + (2 + 2 * nf) * 8 +
                nf * (sizeof(void *) + sizeof(Bs__SnapField) +
                      sizeof(Bs__Value) + sizeof(Bs__SnapVersion)) +
                nc * (sizeof(void *) + sizeof(Bs__StreamPos)) >
            budget ||
        (b = bs_arena_alloc(a, sizeof *b)) == NULL)
        return NULL;
    bs__snap_body__init(b);
    if ((nf > 0 &&
         ((b->fields = bs_arena_alloc(a, nf * sizeof *b->fields)) == NULL)) ||
        (nc > 0 &&
         ((b->covered = bs_arena_alloc(a, nc * sizeof *b->covered)) == NULL)))
        return NULL;
    while (rd_tag(&r, &f, &wt)) {
        if (f < last || (f == last && f != 8 && f != 11))
            return NULL; /* out of order or repeated: protobuf-c's */
        last = f;
        switch (f) {
        case 1:
        case 9:
        case 10:
        case 12:
            RD_WANT(wt, 0);
            if (!rd_varint(&r, &x))
                return NULL;
            if (f == 1)
                b->version = (uint32_t)x;
            else if (f == 9)
                b->created_ms = x;
            else if (f == 10)
                b->done = x != 0;
            else
                b->seed = x != 0;
            break;
        case 2:
        case 3:
            RD_WANT(wt, 2);
            if (!rd_bytes(&r, f == 2 ? &b->infobase : &b->hub))
                return NULL;
            break;
        case 4:
        case 5:
            RD_WANT(wt, 2);
            if (!rd_string(&r, a, f == 4 ? &b->collection : &b->id))
                return NULL;
            break;
        case 6:
        case 7: {
            Bs__SnapVersion *v;

            RD_WANT(wt, 2);
            if (!rd_len(&r, &sub) ||
                (v = bs_arena_alloc(a, sizeof *v)) == NULL ||
                !rd_version(sub, v))
                return NULL;
            *(f == 6 ? &b->alive : &b->tomb) = v;
            break;
        }
        case 8: {
            Bs__SnapField *sf;

            RD_WANT(wt, 2);
            if (!rd_len(&r, &sub) ||
                (sf = bs_arena_alloc(a, sizeof *sf)) == NULL ||
                !rd_field(sub, a, sf))
                return NULL;
            b->fields[b->n_fields++] = sf;
            break;
        }
        case 11: {
            Bs__StreamPos *sp;

            RD_WANT(wt, 2);
            if (!rd_len(&r, &sub) ||
                (sp = bs_arena_alloc(a, sizeof *sp)) == NULL ||
                !rd_pos(sub, sp))
                return NULL;
            b->covered[b->n_covered++] = sp;
            break;
        }
        default:
            return NULL;
        }
    }
    return r.p == r.end ? b : NULL;
}

/* 1 when m packs back to exactly buf[0..len) (bs_changeset_pb_canonical),
 * packed into the arena. */
static int
canonical_in(bs_arena *a, const ProtobufCMessage *m, const uint8_t *buf,
             size_t len)
{
    uint8_t *out;

    if (protobuf_c_message_get_packed_size(m) != len ||
        (out = bs_arena_alloc(a, len)) == NULL)
        return 0;
    protobuf_c_message_pack(m, out);
    return memcmp(out, buf, len) == 0;
}

/* N3-N6: body bytes p[0..n) (kept by the caller) as s's body, unpacked
 * into s's arena; the canonical form not checked again when `checked`
 * (bytes that passed). */
static bs_err
unpack_body(bs_snap *s, const uint8_t *p, size_t n, int checked, bs_errbuf *err)
{
    arena_cap c = {&s->arena, n * 4 + 65536};
    ProtobufCAllocator al = {arena_cap_alloc, arena_cap_free, &c};
    Bs__SnapBody *b = read_body(&s->arena, p, n, c.budget);

    if (b == NULL) /* not as a canonical body reads: protobuf-c judges */
        b = (Bs__SnapBody *)protobuf_c_message_unpack(
            &bs__snap_body__descriptor, &al, n, p);
    s->pb_arena = 1;
    if ((s->pb_body = b) == NULL ||
        (!checked && !canonical_in(&s->arena, &b->base, p, n)) ||
        b->base.n_unknown_fields > 0)
        return malformed(err, "body does not decode canonically");
    s->body = (bs_slice){p, n};
    return decode_body(s, b, err);
}

/*
 * ---- version-2 bodies (revision 2026-12, compact seeds; 2.12) ----
 *
 * Read straight into the snapshot, no protobuf-c structures, the
 * canonical check made as it reads: a canonical encoding (2.8) writes
 * each field once (a repeated one in one run), in field-number order, in
 * its declared wire type, with minimal varints, and leaves out a scalar
 * at its default (0, false, empty) unless it is a oneof's member; so a
 * body that breaks none of those rules is the one protobuf-c's pack
 * would give for what it decodes to.  tests/fuzz/fuzz_snapbatch.c holds
 * this reader to protobuf-c's unpack and pack (a differential check).
 */

/* A minimal varint (the last byte not 0 unless it is the only one; a
 * tenth byte at most 1). */
static int
rd_uvar(rd *r, uint64_t *v)
{
    const uint8_t *p0 = r->p;
    size_t k;

    if (!rd_varint(r, v))
        return 0;
    k = (size_t)(r->p - p0);
    return (k == 1 || p0[k - 1] != 0) && (k < 10 || p0[9] <= 1);
}

/* The next field of a message whose fields are all below 16, in order
 * after *last (a repeated field, bit `field` of rep, may follow itself):
 * 1, 0 at the end, -1 out of order or past 15. */
static int
rd_next(rd *r, uint32_t *last, uint32_t rep, uint32_t *field, uint32_t *wt)
{
    uint8_t t;

    if (r->p >= r->end)
        return 0;
    t = *r->p++;
    if (t & 0x80 || t >> 3 == 0)
        return -1; /* a field past 15, or 0 */
    *field = t >> 3;
    *wt = t & 7;
    if (*field < *last || (*field == *last && !(rep >> *field & 1)))
        return -1;
    *last = *field;
    return 1;
}

/* A non-default scalar (a present proto3 scalar is never its default). */
static int
rd_scalar(rd *r, uint32_t wt, uint64_t *v)
{
    return wt == 0 && rd_uvar(r, v) && *v != 0;
}

/* A length-delimited field: *sub; `nonempty` for a proto3 string or
 * bytes (empty ones are left out). */
static int
rd_sub(rd *r, uint32_t wt, int nonempty, rd *sub)
{
    uint64_t n;

    if (wt != 2 || !rd_uvar(r, &n) || n > (uint64_t)(r->end - r->p) ||
        (nonempty && n == 0))
        return 0;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 1;
}

/* A string field's bytes, NUL-terminated in the arena (a NUL inside
 * would not survive protobuf-c's strings). */
static char *
rd_str2(rd sub, bs_arena *a)
{
    size_t n = (size_t)(sub.end - sub.p);

    if (memchr(sub.p, '\0', n) != NULL)
        return NULL;
    return bs_arena_strndup(a, (const char *)sub.p, n);
}

/* SnapVersion of a v2 body: writer (1 .. nw) for origin and incarnation,
 * seq >= 1. */
static int
rd_ver2(rd r, const bs_snapbatch *b, bs_snapver *v)
{
    uint32_t f, wt, last = 0;
    uint64_t x;
    int st;

    memset(v, 0, sizeof *v);
    while ((st = rd_next(&r, &last, 0, &f, &wt)) == 1) {
        if (!rd_scalar(&r, wt, &x))
            return 0;
        if (f == 1)
            v->hlc = x;
        else if (f == 4)
            v->seq = x;
        else if (f == 5 && x <= UINT32_MAX)
            v->prio = (uint32_t)x;
        else if (f == 6 && x <= b->nwriters)
            v->writer = (uint32_t)x;
        else
            return 0; /* origin, incarnation, unknown, or out of range */
    }
    if (st < 0 || v->seq == 0 || v->writer == 0)
        return 0;
    memcpy(v->key, b->writers[v->writer - 1], BS_STREAM_KEY_LEN);
    return 1;
}

/* Value: exactly one member of the oneof (written even at its default). */
static int
rd_value2(rd r, bs_arena *a, bs_value *out)
{
    uint32_t f, wt, last = 0;
    uint64_t x;
    rd sub;
    char *t;

    memset(out, 0, sizeof *out);
    if (rd_next(&r, &last, 0, &f, &wt) != 1)
        return 0;
    switch (f) {
    case 1:
    case 2:
        if (wt != 0 || !rd_uvar(&r, &x) || x > 1)
            return 0;
        out->type = f == 1 ? BS_VNULL : x ? BS_VTRUE : BS_VFALSE;
        break;
    case 3:
        if (wt != 0 || !rd_uvar(&r, &x))
            return 0;
        out->type = BS_VINT;
        out->i = (int64_t)(x >> 1) ^ -(int64_t)(x & 1);
        break;
    case 4:
        if (wt != 1 || r.end - r.p < 8)
            return 0;
        x = 0;
        for (int i = 7; i >= 0; i--)
            x = x << 8 | r.p[i];
        r.p += 8;
        out->type = BS_VREAL;
        memcpy(&out->d, &x, sizeof out->d);
        if (!(out->d == out->d && out->d - out->d == 0)) /* finite */
            return 0;
        break;
    case 5:
        if (!rd_sub(&r, wt, 0, &sub) || (t = rd_str2(sub, a)) == NULL ||
            !bs_utf8_valid(t, (size_t)(sub.end - sub.p)))
            return 0;
        out->type = BS_VTEXT;
        out->s = t;
        out->len = (uint32_t)(sub.end - sub.p);
        break;
    default:
        return 0;
    }
    return r.p == r.end; /* one member only */
}

/* The field names a batch's bodies were found to have (valid, no NUL),
 * NUL-terminated: a seed's records repeat a handful of names, each
 * checked once per batch instead of once per record. */
#define NAMECACHE 32
struct bs_namecache {
    size_t n;
    size_t len[NAMECACHE];
    char *name[NAMECACHE];
};

/* Field name sub: a cached copy, or a checked one in a (and cached, while
 * there is room); NULL when it is not a valid name. */
static const char *
field_name(const bs_snapbatch *b, rd sub, bs_arena *a)
{
    struct bs_namecache *c = b->names;
    size_t n = (size_t)(sub.end - sub.p);
    char *t;

    for (size_t i = 0; c != NULL && i < c->n; i++)
        if (c->len[i] == n && memcmp(c->name[i], sub.p, n) == 0)
            return c->name[i];
    if ((t = rd_str2(sub, a)) == NULL || !bs_field_name_wire_valid(t, n))
        return NULL;
    if (c != NULL && c->n < NAMECACHE &&
        (c->name[c->n] = malloc(n + 1)) != NULL) {
        memcpy(c->name[c->n], t, n + 1);
        c->len[c->n] = n;
        return c->name[c->n++];
    }
    return t;
}

/* SnapField of a v2 body; a version left out is the record's alive. */
static int
rd_field2(rd r, bs_arena *a, const bs_snapbatch *b, const bs_snap *s,
          bs_snapfield *sf)
{
    uint32_t f, wt, last = 0;
    int st, has_value = 0, has_ver = 0;
    rd sub;

    sf->name = NULL;
    while ((st = rd_next(&r, &last, 0, &f, &wt)) == 1) {
        if (!rd_sub(&r, wt, f == 1, &sub))
            return 0;
        if (f == 1) {
            if ((sf->name = field_name(b, sub, a)) == NULL)
                return 0;
        } else if (f == 2) {
            if (!rd_value2(sub, a, &sf->val))
                return 0;
            has_value = 1;
        } else if (f == 3) {
            if (!rd_ver2(sub, b, &sf->ver))
                return 0;
            has_ver = 1;
        } else {
            return 0;
        }
    }
    if (st < 0 || sf->name == NULL || !has_value || !s->has_alive)
        return 0;
    if (!has_ver)
        sf->ver = s->alive;
    /* the canonical form leaves out a version equal to alive */
    return !has_ver || !same_ver(&sf->ver, &s->alive);
}

/* StreamPos of `covered` (full keys, as in version 1). */
static int
rd_pos2(rd r, bs_pos *p)
{
    uint32_t f, wt, last = 0;
    int st, has_o = 0, has_i = 0;
    uint64_t x;
    rd sub;

    memset(p, 0, sizeof *p);
    while ((st = rd_next(&r, &last, 0, &f, &wt)) == 1) {
        if (f == 3) {
            if (!rd_scalar(&r, wt, &x))
                return 0;
            p->seq = x;
        } else if ((f == 1 || f == 2) && rd_sub(&r, wt, 1, &sub) &&
                   (size_t)(sub.end - sub.p) ==
                       (f == 1 ? BS_PK_LEN : BS_INC_LEN)) {
            memcpy(f == 1 ? p->origin : p->inc, sub.p,
                   (size_t)(sub.end - sub.p));
            *(f == 1 ? &has_o : &has_i) = 1;
        } else {
            return 0;
        }
    }
    return st == 0 && has_o && has_i;
}

/* Fields 8 and 11 of a body, counted (arrays sized before filling);
 * read_body2 checks the rest. */
static int
rd_count2(rd r, size_t *nfields, size_t *ncovered)
{
    uint64_t x;
    rd sub;

    *nfields = *ncovered = 0;
    while (r.p < r.end) {
        uint8_t t = *r.p++;

        if (t & 0x80 || ((t & 7) == 0   ? !rd_uvar(&r, &x)
                         : (t & 7) == 2 ? !rd_sub(&r, 2, 0, &sub)
                                        : 1))
            return 0;
        *nfields += t >> 3 == 8;
        *ncovered += t >> 3 == 11;
    }
    return 1;
}

/* A string field of at most max bytes into dst (max + 1 bytes). */
static int
rd_name(rd *r, uint32_t wt, char *dst, size_t max)
{
    size_t n;
    rd sub;

    if (!rd_sub(r, wt, 1, &sub) || (n = (size_t)(sub.end - sub.p)) > max ||
        memchr(sub.p, '\0', n) != NULL)
        return 0;
    memcpy(dst, sub.p, n);
    dst[n] = '\0';
    return 1;
}

#define BODY2_BAD(what)                                                        \
    do {                                                                       \
        why = (what);                                                          \
        goto bad;                                                              \
    } while (0)

/* Body p[0..n) of version-2 batch b into s (N3-N6 as 2.12 words them). */
static bs_err
read_body2(bs_snap *s, const uint8_t *p, size_t n, const bs_snapbatch *b,
           bs_arena *a, bs_errbuf *err)
{
    const char *why = "body does not decode canonically";
    uint32_t f, wt, last = 0;
    size_t nf, nc;
    uint64_t x;
    int st;
    rd r = {p, p + n}, sub;

    if (!rd_count2(r, &nf, &nc))
        BODY2_BAD(why);
    if (nc > BS_SEEN_MAX)
        BODY2_BAD("vector too long");
    if ((nf > 0 &&
         (s->fields = bs_arena_alloc(a, nf * sizeof *s->fields)) == NULL) ||
        (nc > 0 &&
         (s->covered = bs_arena_alloc(a, nc * sizeof *s->covered)) == NULL))
        return BS_ENOMEM;
    /* field 1 first, 2 */
    if (rd_next(&r, &last, 0, &f, &wt) != 1 || f != 1 || !rd_scalar(&r, wt, &x))
        BODY2_BAD(why);
    if (x != BS_SNAPBATCH_VERSION2)
        return bs_errf(err, BS_EMALFORMED,
                       "record snapshot version %llu is not supported in a "
                       "version-2 batch",
                       (unsigned long long)x);
    while ((st = rd_next(&r, &last, 1u << 8 | 1u << 11, &f, &wt)) == 1) {
        switch (f) {
        case 4:
        case 5:
            if (!(f == 4 ? rd_name(&r, wt, s->coll, BS_COLLECTION_MAX)
                         : rd_name(&r, wt, s->id, BS_ID_MAX)))
                BODY2_BAD(f == 4 ? "not a user collection" : "bad record ID");
            break;
        case 6:
        case 7:
            if (!rd_sub(&r, wt, 0, &sub) ||
                !rd_ver2(sub, b, f == 6 ? &s->alive : &s->tomb))
                BODY2_BAD("bad version");
            *(f == 6 ? &s->has_alive : &s->has_tomb) = 1;
            break;
        case 8: {
            bs_snapfield *sf = &s->fields[s->nfields];

            if (!rd_sub(&r, wt, 0, &sub) || !rd_field2(sub, a, b, s, sf))
                BODY2_BAD("bad field");
            if (s->nfields > 0 &&
                strcmp(s->fields[s->nfields - 1].name, sf->name) >= 0)
                BODY2_BAD("fields not sorted or not unique");
            s->nfields++;
            break;
        }
        case 10:
        case 12:
            if (!rd_scalar(&r, wt, &x) || x != 1)
                BODY2_BAD(why);
            *(f == 10 ? &s->done : &s->seed) = 1;
            break;
        case 11:
            if (!rd_sub(&r, wt, 0, &sub) ||
                !rd_pos2(sub, &s->covered[s->ncovered++]))
                BODY2_BAD("bad vector entry");
            break;
        default: /* infobase, hub, created_ms: the header's; unknown */
            BODY2_BAD(why);
        }
    }
    if (st < 0)
        BODY2_BAD(why);
    memcpy(s->infobase, b->infobase, BS_INFOBASE_LEN);
    memcpy(s->hub, b->hub, BS_PK_LEN);
    s->created_ms = b->created_ms;
    s->body = (bs_slice){p, n};
    return check_shape(s, err);
bad:
    return malformed(err, why);
}

bs_err
bs_snap_decode(const uint8_t *buf, size_t n, bs_snap **out, bs_errbuf *err)
{
    Bs__RecordSnapshot *m;
    bs_snap *s;
    bs_err rv;

    if (n == 0 || n > BS_SNAP_MAX_ENCODED)
        return malformed(err, "size");
    if ((s = calloc(1, sizeof *s)) == NULL)
        return BS_ENOMEM;
    bs_arena_init(&s->arena);
    m = bs_changeset_pb_unpack(&bs__record_snapshot__descriptor, buf, n);
    if ((s->pb = m) == NULL || !bs_changeset_pb_canonical(&m->base, buf, n) ||
        m->base.n_unknown_fields > 0) {
        rv = malformed(err, "does not decode canonically");
        goto fail;
    }
    if (m->signature.len != BS_SIG_LEN || m->body.len == 0) {
        rv = malformed(err, "field sizes");
        goto fail;
    }
    memcpy(s->signature, m->signature.data, BS_SIG_LEN);
    if ((rv = unpack_body(s, m->body.data, m->body.len, 0, err)) != BS_OK)
        goto fail;
    *out = s;
    return BS_OK;
fail:
    bs_snap_free(s);
    return rv;
}

bs_err
bs_snap_verify(const bs_snap *s, const uint8_t hub[BS_PK_LEN])
{
    return bs_verify(s->signature, BS_SNAP_CONTEXT, s->body.p, s->body.n, hub);
}

void
bs_snap_init(bs_snap *s)
{
    memset(s, 0, sizeof *s);
    bs_arena_init(&s->arena);
}

void
bs_snap_fini(bs_snap *s)
{
    if (!s->pb_arena)
        bs_changeset_pb_free(s->pb_body);
    bs_changeset_pb_free(s->pb);
    bs_arena_fini(&s->arena);
    bs_snap_init(s);
}

void
bs_snap_free(bs_snap *s)
{
    if (s == NULL)
        return;
    bs_snap_fini(s);
    free(s);
}

const bs_value *
bs_snap_field(const bs_snap *s, const char *name)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return &s->fields[i].val;
    return NULL;
}

/* ---- encoding ---- */

/* v2: by the writer's number (2.12) instead of its key. */
static void
put_version(Bs__SnapVersion *e, const bs_snapver *v, int v2)
{
    bs__snap_version__init(e);
    e->hlc = v->hlc;
    if (v2) {
        e->writer = v->writer;
    } else {
        e->origin = bin(v->key, BS_PK_LEN);
        e->incarnation = bin(v->key + BS_PK_LEN, BS_INC_LEN);
    }
    e->seq = v->seq;
    e->prio = v->prio;
}

static int
put_value(Bs__Value *pv, const bs_value *v, bs_arena *a)
{
    char *text = NULL;

    if (v->type == BS_VTEXT &&
        (text = bs_arena_strndup(a, v->s, v->len)) == NULL)
        return 0;
    bs_value_pb(pv, v, text);
    return 1;
}

static bs_err
encode_body(const bs_snap *s, int v2, uint8_t **out, size_t *n)
{
    Bs__SnapBody b = BS__SNAP_BODY__INIT;
    Bs__SnapVersion alive, tomb, *fv = NULL;
    Bs__SnapField *sf = NULL, **pf = NULL;
    Bs__StreamPos *cp = NULL, **cpp = NULL;
    Bs__Value *vals = NULL;
    size_t nf = s->nfields, nc = s->ncovered;
    bs_arena a;
    bs_err rv = BS_ENOMEM;

    bs_arena_init(&a);
    b.version = v2 ? BS_SNAPBATCH_VERSION2 : BS_SNAP_VERSION;
    if (!v2) {
        b.infobase = bin(s->infobase, BS_INFOBASE_LEN);
        b.hub = bin(s->hub, BS_PK_LEN);
        b.created_ms = s->created_ms;
    }
    b.collection = (char *)s->coll;
    b.id = (char *)s->id;
    b.done = s->done != 0;
    b.seed = s->seed != 0;
    if (s->has_alive) {
        put_version(&alive, &s->alive, v2);
        b.alive = &alive;
    }
    if (s->has_tomb) {
        put_version(&tomb, &s->tomb, v2);
        b.tomb = &tomb;
    }
    if ((nf > 0 && ((fv = calloc(nf, sizeof *fv)) == NULL ||
                    (sf = calloc(nf, sizeof *sf)) == NULL ||
                    (pf = calloc(nf, sizeof *pf)) == NULL ||
                    (vals = calloc(nf, sizeof *vals)) == NULL)) ||
        (nc > 0 && ((cp = calloc(nc, sizeof *cp)) == NULL ||
                    (cpp = calloc(nc, sizeof *cpp)) == NULL)))
        goto out;
    for (size_t i = 0; i < nf; i++) {
        bs__snap_field__init(&sf[i]);
        sf[i].name = (char *)s->fields[i].name;
        if (!put_value(&vals[i], &s->fields[i].val, &a))
            goto out;
        sf[i].value = &vals[i];
        put_version(&fv[i], &s->fields[i].ver, v2);
        /* v2: left out where it is the record's alive */
        if (!v2 || !s->has_alive || !same_ver(&s->fields[i].ver, &s->alive))
            sf[i].version = &fv[i];
        pf[i] = &sf[i];
    }
    b.n_fields = nf;
    b.fields = pf;
    for (size_t i = 0; i < nc; i++) {
        bs__stream_pos__init(&cp[i]);
        cp[i].origin = bin(s->covered[i].origin, BS_PK_LEN);
        cp[i].incarnation = bin(s->covered[i].inc, BS_INC_LEN);
        cp[i].seq = s->covered[i].seq;
        cpp[i] = &cp[i];
    }
    b.n_covered = nc;
    b.covered = cpp;
    *n = bs__snap_body__get_packed_size(&b);
    if ((*out = malloc(*n)) == NULL)
        goto out;
    bs__snap_body__pack(&b, *out);
    rv = BS_OK;
out:
    free(fv);
    free(sf);
    free(pf);
    free(vals);
    free(cp);
    free(cpp);
    bs_arena_fini(&a);
    return rv;
}

bs_err
bs_snap_encode_body(const bs_snap *s, uint8_t **out, size_t *n)
{
    return encode_body(s, 0, out, n);
}

bs_err
bs_snap_encode_body2(const bs_snap *s, uint8_t **out, size_t *n)
{
    return encode_body(s, 1, out, n);
}

bs_err
bs_snap_encode(const bs_snap *s, const uint8_t *sk, uint8_t **out, size_t *n)
{
    Bs__RecordSnapshot rs = BS__RECORD_SNAPSHOT__INIT;
    uint8_t sig[BS_SIG_LEN], *body;
    size_t bn;
    bs_err rv;

    if ((rv = bs_snap_encode_body(s, &body, &bn)) != BS_OK)
        return rv;
    bs_sign(sig, BS_SNAP_CONTEXT, body, bn, sk);
    rs.body = bin(body, bn);
    rs.signature = bin(sig, BS_SIG_LEN);
    *n = bs__record_snapshot__get_packed_size(&rs);
    if ((*out = malloc(*n)) == NULL) {
        free(body);
        return BS_ENOMEM;
    }
    bs__record_snapshot__pack(&rs, *out);
    free(body);
    return BS_OK;
}

bs_err
bs_snap_signed(const bs_snap *s, uint8_t **out, size_t *n)
{
    Bs__RecordSnapshot rs = BS__RECORD_SNAPSHOT__INIT;

    if (s->batched)
        return BS_EINVAL; /* no signature of its own */
    rs.body = bin((uint8_t *)s->body.p, s->body.n);
    rs.signature = bin((uint8_t *)s->signature, BS_SIG_LEN);
    *n = bs__record_snapshot__get_packed_size(&rs);
    if ((*out = malloc(*n)) == NULL)
        return BS_ENOMEM;
    bs__record_snapshot__pack(&rs, *out);
    return BS_OK;
}

/* ---- batches (revision 2026-12, bootstrap) ---- */

static bs_err
bad_batch(bs_errbuf *err, const char *what)
{
    return bs_errf(err, BS_EMALFORMED,
                   "malformed batch of record snapshots: %s", what);
}

/* B5v2: version 2's writers, each a 48-byte key. */
static bs_err
writers_of(bs_snapbatch *b, const Bs__SnapBatchHeader *h, bs_errbuf *err)
{
    if ((b->writers = calloc(h->n_writers, sizeof *b->writers)) == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < h->n_writers; i++) {
        if (h->writers[i].len != BS_STREAM_KEY_LEN)
            return bad_batch(err, "field sizes");
        b->writers[i] = h->writers[i].data;
    }
    b->nwriters = h->n_writers;
    b->bodies_hash = h->bodies_hash.data;
    if ((b->names = calloc(1, sizeof *b->names)) == NULL)
        return BS_ENOMEM;
    return BS_OK;
}

/*
 * SnapBatch buf[0..n) read in place (bs_snapbatch_decode_borrowed): the
 * header, signature and bodies point into buf, and the reader is the
 * canonical check (B2), as read_body2 is for a body: fields 1, 2 and 3
 * in order, 1 and 2 once and not empty, 3 in one run, minimal lengths,
 * nothing else.  A malloc'd message (bodies array too), or NULL.
 */
static Bs__SnapBatch *
read_batch(const uint8_t *buf, size_t n)
{
    Bs__SnapBatch *m;
    uint32_t f, wt, last = 0;
    size_t nb = 0;
    int st;
    rd r = {buf, buf + n}, sub;

    while ((st = rd_next(&r, &last, 1u << 3, &f, &wt)) == 1) {
        if (f < 1 || f > 3 || !rd_sub(&r, wt, f != 3, &sub))
            return NULL;
        nb += f == 3;
    }
    if (st < 0 || nb > BS_SNAPBATCH_MAX || (m = calloc(1, sizeof *m)) == NULL)
        return NULL;
    bs__snap_batch__init(m);
    if (nb > 0 && (m->bodies = calloc(nb, sizeof *m->bodies)) == NULL) {
        free(m);
        return NULL;
    }
    r = (rd){buf, buf + n};
    last = 0;
    while (rd_next(&r, &last, 1u << 3, &f, &wt) == 1 &&
           rd_sub(&r, wt, f != 3, &sub)) {
        ProtobufCBinaryData d = {(size_t)(sub.end - sub.p), (uint8_t *)sub.p};

        if (f == 1)
            m->header = d;
        else if (f == 2)
            m->signature = d;
        else
            m->bodies[m->n_bodies++] = d;
    }
    return m;
}

static bs_err
batch_decode(const uint8_t *buf, size_t n, int checked, int borrow,
             bs_snapbatch **out, bs_errbuf *err)
{
    Bs__SnapBatch *m;
    Bs__SnapBatchHeader *h;
    bs_snapbatch *b;
    bs_err rv;

    if (n == 0 || n > BS_SNAP_MAX_ENCODED) /* B1 */
        return bad_batch(err, "size");
    if ((b = calloc(1, sizeof *b)) == NULL)
        return BS_ENOMEM;
    b->checked = checked;
    b->borrowed = borrow;
    m = borrow ? read_batch(buf, n)
               : bs_changeset_pb_unpack(&bs__snap_batch__descriptor, buf, n);
    if ((b->pb = m) == NULL ||
        (!checked && !borrow && !bs_changeset_pb_canonical(&m->base, buf, n)) ||
        m->base.n_unknown_fields > 0) { /* B2 */
        rv = bad_batch(err, "does not decode canonically");
        goto fail;
    }
    if (m->signature.len != BS_SIG_LEN || m->header.len == 0 ||
        m->n_bodies == 0 || m->n_bodies > BS_SNAPBATCH_MAX) {
        rv = bad_batch(err, "field sizes");
        goto fail;
    }
    h = bs_changeset_pb_unpack(&bs__snap_batch_header__descriptor,
                               m->header.data, m->header.len);
    if ((b->pb_header = h) == NULL ||
        !bs_changeset_pb_canonical(&h->base, m->header.data, m->header.len) ||
        h->base.n_unknown_fields > 0) { /* B3 */
        rv = bad_batch(err, "header does not decode canonically");
        goto fail;
    }
    if (h->version != BS_SNAP_VERSION &&
        h->version != BS_SNAPBATCH_VERSION2) { /* B4 */
        rv = bs_errf(err, BS_EMALFORMED,
                     "batch of record snapshots version %u is not supported "
                     "(this node reads 1 and 2)",
                     h->version);
        goto fail;
    }
    b->version = h->version;
    if (h->infobase.len != BS_INFOBASE_LEN || h->hub.len != BS_PK_LEN ||
        (b->version == 1
             ? h->n_hashes != m->n_bodies || h->n_writers > 0 ||
                   h->bodies_hash.len > 0
             : h->n_hashes > 0 || h->n_writers == 0 ||
                   h->n_writers > BS_SNAPBATCH_WRITERS_MAX ||
                   h->bodies_hash.len != BS_HASH_LEN)) { /* B5, B5v2 */
        rv = bad_batch(err, "field sizes");
        goto fail;
    }
    for (size_t i = 0; i < m->n_bodies; i++)
        if ((b->version == 1 && h->hashes[i].len != BS_HASH_LEN) ||
            m->bodies[i].len == 0) {
            rv = bad_batch(err, "field sizes");
            goto fail;
        }
    if (b->version == BS_SNAPBATCH_VERSION2 &&
        (rv = writers_of(b, h, err)) != BS_OK)
        goto fail;
    b->header = (bs_slice){m->header.data, m->header.len};
    memcpy(b->signature, m->signature.data, BS_SIG_LEN);
    memcpy(b->infobase, h->infobase.data, BS_INFOBASE_LEN);
    memcpy(b->hub, h->hub.data, BS_PK_LEN);
    b->created_ms = h->created_ms;
    b->n = m->n_bodies;
    *out = b;
    return BS_OK;
fail:
    bs_snapbatch_free(b);
    return rv;
}

bs_err
bs_snapbatch_decode(const uint8_t *buf, size_t n, bs_snapbatch **out,
                    bs_errbuf *err)
{
    return batch_decode(buf, n, 0, 0, out, err);
}

bs_err
bs_snapbatch_decode_checked(const uint8_t *buf, size_t n, bs_snapbatch **out,
                            bs_errbuf *err)
{
    return batch_decode(buf, n, 1, 0, out, err);
}

bs_err
bs_snapbatch_decode_borrowed(const uint8_t *buf, size_t n, int checked,
                             bs_snapbatch **out, bs_errbuf *err)
{
    return batch_decode(buf, n, checked, 1, out, err);
}

bs_err
bs_snapbatch_verify(const bs_snapbatch *b, const uint8_t hub[BS_PK_LEN])
{
    return bs_verify(b->signature, BS_SNAPBATCH_CONTEXT, b->header.p,
                     b->header.n, hub);
}

/* What version 2's bodies_hash covers: SnapBatch's field-3 entries as
 * encoded (for each body the key 0x1A, its length, its bytes). */
static void
bodies_hash(const Bs__SnapBatch *m, uint8_t out[BS_HASH_LEN])
{
    bs_hash_state st;
    uint8_t pre[11];

    bs_hash_init(&st);
    for (size_t i = 0; i < m->n_bodies; i++) {
        pre[0] = 0x1a; /* field 3, length-delimited */
        bs_hash_update(
            &st, pre, (size_t)(bs_varint_put(pre + 1, m->bodies[i].len) - pre));
        bs_hash_update(&st, m->bodies[i].data, m->bodies[i].len);
    }
    bs_hash_final(&st, out);
}

int
bs_snapbatch_bodies_ok(const bs_snapbatch *b)
{
    uint8_t hash[BS_HASH_LEN];

    if (b->version == 1) {
        for (size_t i = 0; i < b->n; i++)
            if (!bs_snapbatch_body_ok(b, i))
                return 0;
        return 1;
    }
    bodies_hash(b->pb, hash);
    return memcmp(hash, b->bodies_hash, BS_HASH_LEN) == 0;
}

int
bs_snapbatch_body_ok(const bs_snapbatch *b, size_t i)
{
    const Bs__SnapBatch *m = b->pb;
    const Bs__SnapBatchHeader *h = b->pb_header;
    uint8_t hash[BS_HASH_LEN];

    if (b->version != 1)
        return 0; /* no hash per body */
    bs_hash(hash, m->bodies[i].data, m->bodies[i].len);
    return memcmp(hash, h->hashes[i].data, BS_HASH_LEN) == 0;
}

/* Body i of b into s (emptied first): its memory in `shared` when it is
 * a version-2 body and shared is not NULL, else in s's own arena. */
static bs_err
snap_from(const bs_snapbatch *b, size_t i, bs_snap *s, bs_arena *shared,
          bs_errbuf *err)
{
    const ProtobufCBinaryData *body =
        &((const Bs__SnapBatch *)b->pb)->bodies[i];
    bs_arena own = s->arena;
    bs_err rv;

    if (!s->pb_arena) /* a snapshot decoded otherwise before */
        bs_changeset_pb_free(s->pb_body);
    bs_changeset_pb_free(s->pb);
    bs_arena_reset(&own);
    memset(s, 0, sizeof *s);
    s->arena = own;
    s->batched = 1;
    /* a version-2 batch's body of version 2; one starting 08 01 (version
     * 1) is read as in a version-1 batch (2.12, B6v2) */
    if (b->version == BS_SNAPBATCH_VERSION2 &&
        !(body->len >= 2 && body->data[0] == 0x08 &&
          body->data[1] == BS_SNAP_VERSION)) {
        s->pb_arena = 1;
        return read_body2(s, body->data, body->len, b,
                          shared != NULL ? shared : &s->arena, err);
    }
    if ((rv = unpack_body(s, body->data, body->len, b->checked, err)) != BS_OK)
        return rv;
    if (memcmp(s->infobase, b->infobase, BS_INFOBASE_LEN) != 0 ||
        memcmp(s->hub, b->hub, BS_PK_LEN) != 0) /* B6 */
        return bad_batch(err, "a snapshot names another infobase or hub");
    return BS_OK;
}

bs_err
bs_snapbatch_snap_into(const bs_snapbatch *b, size_t i, bs_snap *s,
                       bs_errbuf *err)
{
    return snap_from(b, i, s, NULL, err);
}

bs_err
bs_snapbatch_snap_shared(const bs_snapbatch *b, size_t i, bs_snap *s,
                         bs_arena *a, bs_errbuf *err)
{
    return snap_from(b, i, s, a, err);
}

bs_err
bs_snapbatch_snap(const bs_snapbatch *b, size_t i, bs_snap **out,
                  bs_errbuf *err)
{
    bs_snap *s;
    bs_err rv;

    if ((s = malloc(sizeof *s)) == NULL)
        return BS_ENOMEM;
    bs_snap_init(s);
    if ((rv = bs_snapbatch_snap_into(b, i, s, err)) != BS_OK) {
        bs_snap_free(s);
        return rv;
    }
    *out = s;
    return BS_OK;
}

void
bs_snapbatch_free(bs_snapbatch *b)
{
    if (b == NULL)
        return;
    bs_changeset_pb_free(b->pb_header);
    if (b->borrowed && b->pb != NULL) {
        free(((Bs__SnapBatch *)b->pb)->bodies);
        free(b->pb);
    } else {
        bs_changeset_pb_free(b->pb);
    }
    free(b->writers);
    for (size_t i = 0; b->names != NULL && i < b->names->n; i++)
        free(b->names->name[i]);
    free(b->names);
    free(b);
}

/* Header h packed and signed with sk into m (its bodies set), m packed
 * into *out (malloc'd, *n bytes).  BS_ENOMEM. */
static bs_err
seal_batch(const Bs__SnapBatchHeader *h, Bs__SnapBatch *m, const uint8_t *sk,
           uint8_t **out, size_t *n)
{
    size_t hn = bs__snap_batch_header__get_packed_size(h);
    uint8_t *hdr = malloc(hn), sig[BS_SIG_LEN];

    if (hdr == NULL)
        return BS_ENOMEM;
    bs__snap_batch_header__pack(h, hdr);
    bs_sign(sig, BS_SNAPBATCH_CONTEXT, hdr, hn, sk);
    m->header = bin(hdr, hn);
    m->signature = bin(sig, BS_SIG_LEN);
    *n = bs__snap_batch__get_packed_size(m);
    if ((*out = malloc(*n)) != NULL)
        bs__snap_batch__pack(m, *out);
    free(hdr);
    return *out != NULL ? BS_OK : BS_ENOMEM;
}

bs_err
bs_snapbatch_encode(const uint8_t infobase[BS_INFOBASE_LEN],
                    const uint8_t hub[BS_PK_LEN], uint64_t created_ms,
                    const bs_slice *bodies, size_t nb, const uint8_t *sk,
                    uint8_t **out, size_t *n)
{
    Bs__SnapBatchHeader h = BS__SNAP_BATCH_HEADER__INIT;
    Bs__SnapBatch m = BS__SNAP_BATCH__INIT;
    ProtobufCBinaryData *hashes, *bd;
    uint8_t *hb;
    bs_err rv = BS_ENOMEM;

    hashes = calloc(nb, sizeof *hashes);
    bd = calloc(nb, sizeof *bd);
    hb = malloc(nb * BS_HASH_LEN);
    if (hashes == NULL || bd == NULL || hb == NULL)
        goto out;
    for (size_t i = 0; i < nb; i++) {
        bs_hash(hb + i * BS_HASH_LEN, bodies[i].p, bodies[i].n);
        hashes[i] = bin(hb + i * BS_HASH_LEN, BS_HASH_LEN);
        bd[i] = bin(bodies[i].p, bodies[i].n);
    }
    h.version = BS_SNAP_VERSION;
    h.infobase = bin(infobase, BS_INFOBASE_LEN);
    h.hub = bin(hub, BS_PK_LEN);
    h.created_ms = created_ms;
    h.n_hashes = nb;
    h.hashes = hashes;
    m.n_bodies = nb;
    m.bodies = bd;
    rv = seal_batch(&h, &m, sk, out, n);
out:
    free(hb);
    free(bd);
    free(hashes);
    return rv;
}

bs_err
bs_snapbatch_encode2(const uint8_t infobase[BS_INFOBASE_LEN],
                     const uint8_t hub[BS_PK_LEN], uint64_t created_ms,
                     const uint8_t *writers, size_t nw, const bs_slice *bodies,
                     size_t nb, const uint8_t *sk, uint8_t **out, size_t *n)
{
    Bs__SnapBatchHeader h = BS__SNAP_BATCH_HEADER__INIT;
    Bs__SnapBatch m = BS__SNAP_BATCH__INIT;
    ProtobufCBinaryData *wr, *bd;
    uint8_t hash[BS_HASH_LEN];
    bs_err rv = BS_ENOMEM;

    if (nw == 0 || nw > BS_SNAPBATCH_WRITERS_MAX)
        return BS_EINVAL;
    wr = calloc(nw, sizeof *wr);
    bd = calloc(nb, sizeof *bd);
    if (wr == NULL || bd == NULL)
        goto out;
    for (size_t i = 0; i < nb; i++)
        bd[i] = bin(bodies[i].p, bodies[i].n);
    m.n_bodies = nb;
    m.bodies = bd;
    bodies_hash(&m, hash);
    for (size_t i = 0; i < nw; i++)
        wr[i] = bin(writers + i * BS_STREAM_KEY_LEN, BS_STREAM_KEY_LEN);
    h.version = BS_SNAPBATCH_VERSION2;
    h.infobase = bin(infobase, BS_INFOBASE_LEN);
    h.hub = bin(hub, BS_PK_LEN);
    h.created_ms = created_ms;
    h.n_writers = nw;
    h.writers = wr;
    h.bodies_hash = bin(hash, BS_HASH_LEN);
    rv = seal_batch(&h, &m, sk, out, n);
out:
    free(bd);
    free(wr);
    return rv;
}
