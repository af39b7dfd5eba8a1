/*
 * changeset.c - change set builder and sealer (the origin's side).
 *
 * Encoding uses the protobuf-c generated code for proto/branchsync.proto.
 */
#include "changeset.h"

#include <string.h>

#include "branchsync.pb-c.h"
#include "meta.h"

void
bs_csbuild_init(bs_csbuild *b)
{
    memset(b, 0, sizeof *b);
    bs_arena_init(&b->arena);
}

void
bs_csbuild_fini(bs_csbuild *b)
{
    bs_arena_fini(&b->arena);
    free(b->changes);
    free(b->hashes);
    memset(b, 0, sizeof *b);
}

int
bs_csbuild_full(const bs_csbuild *b)
{
    return b->n >= BS_SET_MAX_CHANGES ||
           b->bytes >= BS_SET_MAX_BYTES - BS_CHANGE_MAX_BYTES;
}

size_t
bs_csbuild_count(const bs_csbuild *b)
{
    return b->n;
}

/*
 * The Change message, encoded by hand in one pass: the same bytes as
 * protobuf-c's bs__change__pack() (checked byte for byte against it in
 * tests/unit/test_flatjson.c), without its reflective size walk, done once
 * for the message and again for every nested Field and Value.  proto3:
 * zero scalars and empty strings are left out; the Value oneof is always
 * written; strings are measured with strlen(), as protobuf-c does.
 */
static size_t
varint_size(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *
put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint64_t
zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* The strlen()s of a field's name and text (SIZE_MAX: a NULL text, which
 * protobuf-c leaves out), taken once per field. */
typedef struct flen {
    size_t name, text;
} flen;

static void
measure(const bs_field *f, flen *m)
{
    m->name = f->name != NULL ? strlen(f->name) : 0;
    m->text = f->val.type != BS_VTEXT ? 0
              : f->val.s != NULL      ? strlen(f->val.s)
                                      : SIZE_MAX;
}

/* A string field of n bytes: left out when empty. */
static size_t
string_size(size_t n)
{
    return n > 0 ? 1 + varint_size(n) + n : 0;
}

static uint8_t *
put_bytes(uint8_t *p, uint8_t tag, const char *s, size_t n)
{
    if (n > 0) {
        *p++ = tag;
        p = put_varint(p, n);
        memcpy(p, s, n);
        p += n;
    }
    return p;
}

/* Value: null = 1 (bool), boolean = 2, integer = 3 (sint64), real = 4
 * (double), text = 5. */
static size_t
value_size(const bs_value *v, size_t tlen)
{
    switch (v->type) {
    case BS_VNULL:
    case BS_VFALSE:
    case BS_VTRUE:
        return 2;
    case BS_VINT:
        return 1 + varint_size(zigzag(v->i));
    case BS_VREAL:
        return 9;
    default:
        return tlen == SIZE_MAX ? 0 : 1 + varint_size(tlen) + tlen;
    }
}

static uint8_t *
put_value(uint8_t *p, const bs_value *v, size_t tlen)
{
    switch (v->type) {
    case BS_VNULL:
        *p++ = 0x08;
        *p++ = 1;
        break;
    case BS_VFALSE:
    case BS_VTRUE:
        *p++ = 0x10;
        *p++ = v->type == BS_VTRUE;
        break;
    case BS_VINT:
        *p++ = 0x18;
        p = put_varint(p, zigzag(v->i));
        break;
    case BS_VREAL: {
        uint64_t u;

        memcpy(&u, &v->d, 8);
        *p++ = 0x21;
        for (int k = 0; k < 8; k++)
            *p++ = (uint8_t)(u >> (8 * k));
        break;
    }
    default:
        if (tlen != SIZE_MAX) {
            *p++ = 0x2a;
            p = put_varint(p, tlen);
            memcpy(p, v->s, tlen);
            p += tlen;
        }
        break;
    }
    return p;
}

/* Field: name = 1, value = 2; its size without its own tag and length. */
static size_t
field_size(const bs_field *f, const flen *m, size_t *vsize)
{
    *vsize = value_size(&f->val, m->text);
    return string_size(m->name) + 1 + varint_size(*vsize) + *vsize;
}

static uint8_t *
put_u64(uint8_t *p, uint8_t tag, uint64_t v)
{
    if (v != 0) {
        *p++ = tag;
        p = put_varint(p, v);
    }
    return p;
}

static bs_err
grow_arrays(bs_csbuild *b)
{
    size_t cap = b->cap ? b->cap * 2 : 256;
    bs_slice *c;
    uint8_t(*h)[BS_HASH_LEN];

    if ((c = realloc(b->changes, cap * sizeof *c)) == NULL)
        return BS_ENOMEM;
    b->changes = c;
    if ((h = realloc(b->hashes, cap * sizeof *h)) == NULL)
        return BS_ENOMEM;
    b->hashes = h;
    b->cap = cap;
    return BS_OK;
}

/* Fields whose string lengths bs_csbuild_add() keeps between its two
 * passes (beyond, they are measured again). */
#define MEASURED 64

bs_err
bs_csbuild_add(bs_csbuild *b, const bs_change *ch)
{
    flen lens[MEASURED], m;
    size_t n = 0, fs, vs, cl, il;
    uint8_t *out, *p;
    bs_err rv;

    if (b->n == b->cap && (rv = grow_arrays(b)) != BS_OK)
        return rv;
    if (b->n == 0)
        b->first_seq = ch->seq;
    BS_ASSERT(ch->seq == b->first_seq + b->n);
    /* Change: seq = 1, hlc = 2, prio = 3, collection = 4, id = 5,
     * deleted = 6, fields = 7 (repeated Field). */
    cl = ch->coll != NULL ? strlen(ch->coll) : 0;
    il = ch->id != NULL ? strlen(ch->id) : 0;
    if (ch->seq != 0)
        n += 1 + varint_size(ch->seq);
    if (ch->hlc != 0)
        n += 1 + varint_size(ch->hlc);
    if (ch->prio != 0)
        n += 1 + varint_size(ch->prio);
    n += string_size(cl) + string_size(il);
    if (ch->deleted)
        n += 2;
    for (size_t i = 0; i < ch->nfields; i++) {
        measure(&ch->fields[i], i < MEASURED ? &lens[i] : &m);
        fs = field_size(&ch->fields[i], i < MEASURED ? &lens[i] : &m, &vs);
        n += 1 + varint_size(fs) + fs;
    }
    if (n > BS_CHANGE_MAX_BYTES)
        return BS_EINVAL;
    if ((out = bs_arena_alloc(&b->arena, n)) == NULL)
        return BS_ENOMEM;
    p = put_u64(out, 0x08, ch->seq);
    p = put_u64(p, 0x10, ch->hlc);
    p = put_u64(p, 0x18, ch->prio);
    p = put_bytes(p, 0x22, ch->coll, cl);
    p = put_bytes(p, 0x2a, ch->id, il);
    if (ch->deleted) {
        *p++ = 0x30;
        *p++ = 1;
    }
    for (size_t i = 0; i < ch->nfields; i++) {
        const bs_field *f = &ch->fields[i];
        const flen *fl = i < MEASURED ? &lens[i] : &m;

        if (i >= MEASURED)
            measure(f, &m);
        fs = field_size(f, fl, &vs);
        *p++ = 0x3a;
        p = put_varint(p, fs);
        p = put_bytes(p, 0x0a, f->name, fl->name);
        *p++ = 0x12;
        p = put_varint(p, vs);
        p = put_value(p, &f->val, fl->text);
    }
    BS_ASSERT((size_t)(p - out) == n);
    b->changes[b->n] = (bs_slice){out, n};
    bs_hash(b->hashes[b->n], out, n);
    b->n++;
    b->bytes += n + BS_HASH_LEN + 8;
    return BS_OK;
}

struct bs_sealed {
    uint8_t *buf;
    size_t len;
    uint8_t hash[BS_HASH_LEN];
    uint64_t first, last;
};

static ProtobufCBinaryData
bin(const void *p, size_t n)
{
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

/* Encode the header; *out is malloc'd. */
static bs_err
pack_header(const bs_csbuild *b, const bs_seal *s, uint8_t **out, size_t *n)
{
    Bs__SetHeader h = BS__SET_HEADER__INIT;
    Bs__StreamPos *pos = NULL, **pp = NULL;
    ProtobufCBinaryData *hs;
    bs_err rv = BS_ENOMEM;

    if ((hs = malloc((b->n + 1) * sizeof *hs)) == NULL)
        return BS_ENOMEM;
    if (s->nseen > 0 && ((pos = calloc(s->nseen, sizeof *pos)) == NULL ||
                         (pp = calloc(s->nseen, sizeof *pp)) == NULL))
        goto out;
    h.version = BS_WIRE_VERSION;
    h.infobase = bin(s->infobase, BS_INFOBASE_LEN);
    h.origin = bin(s->origin, BS_PK_LEN);
    h.incarnation = bin(s->inc, BS_INC_LEN);
    h.first_seq = b->first_seq;
    h.last_seq = b->first_seq + b->n - 1;
    if (s->has_prev)
        h.prev_hash = bin(s->prev_hash, BS_HASH_LEN);
    for (size_t i = 0; i < b->n; i++)
        hs[i] = bin(b->hashes[i], BS_HASH_LEN);
    h.n_change_hashes = b->n;
    h.change_hashes = hs;
    for (size_t i = 0; i < s->nseen; i++) {
        bs__stream_pos__init(&pos[i]);
        pos[i].origin = bin(s->seen[i].origin, BS_PK_LEN);
        pos[i].incarnation = bin(s->seen[i].inc, BS_INC_LEN);
        pos[i].seq = s->seen[i].seq;
        pp[i] = &pos[i];
    }
    h.n_seen = s->nseen;
    h.seen = pp;
    h.created_ms = s->created_ms;
    *n = bs__set_header__get_packed_size(&h);
    if ((*out = malloc(*n)) == NULL)
        goto out;
    bs__set_header__pack(&h, *out);
    rv = BS_OK;
out:
    free(hs);
    free(pos);
    free(pp);
    return rv;
}

bs_err
bs_csbuild_seal(bs_csbuild *b, const bs_seal *s, const uint8_t *sk,
                bs_sealed **out)
{
    Bs__ChangeSet cs = BS__CHANGE_SET__INIT;
    ProtobufCBinaryData *ch;
    uint8_t *hdr, sig[BS_SIG_LEN];
    size_t hn;
    bs_sealed *x;
    bs_err rv;

    BS_ASSERT(b->n > 0);
    if ((rv = pack_header(b, s, &hdr, &hn)) != BS_OK)
        return rv;
    if ((x = calloc(1, sizeof *x)) == NULL ||
        (ch = malloc(b->n * sizeof *ch)) == NULL) {
        free(x);
        free(hdr);
        return BS_ENOMEM;
    }
    bs_sign(sig, BS_SIG_CONTEXT, hdr, hn, sk);
    bs_hash(x->hash, hdr, hn);
    cs.header = bin(hdr, hn);
    cs.signature = bin(sig, BS_SIG_LEN);
    for (size_t i = 0; i < b->n; i++)
        ch[i] = bin(b->changes[i].p, b->changes[i].n);
    cs.n_changes = b->n;
    cs.changes = ch;
    x->len = bs__change_set__get_packed_size(&cs);
    x->first = b->first_seq;
    x->last = b->first_seq + b->n - 1;
    if ((x->buf = malloc(x->len)) == NULL) {
        rv = BS_ENOMEM;
    } else {
        bs__change_set__pack(&cs, x->buf);
        rv = BS_OK;
    }
    free(ch);
    free(hdr);
    if (rv != BS_OK) {
        free(x);
        return rv;
    }
    b->n = 0;
    b->bytes = 0;
    bs_arena_reset(&b->arena);
    *out = x;
    return BS_OK;
}

size_t
bs_sealed_size(const bs_sealed *x)
{
    return x->len;
}

void
bs_sealed_write(const bs_sealed *x, uint8_t *out)
{
    memcpy(out, x->buf, x->len);
}

const uint8_t *
bs_sealed_hash(const bs_sealed *x)
{
    return x->hash;
}

uint64_t
bs_sealed_first(const bs_sealed *x)
{
    return x->first;
}

uint64_t
bs_sealed_last(const bs_sealed *x)
{
    return x->last;
}

void
bs_sealed_free(bs_sealed *x)
{
    if (x == NULL)
        return;
    free(x->buf);
    free(x);
}

/* ---- decoding (the receiver's side) ---- */

/* Allocations while unpacking untrusted bytes are capped (P21). */
typedef struct capped {
    size_t budget;
} capped;

static void *
cap_alloc(void *d, size_t n)
{
    capped *c = d;
    size_t *p;

    if (n > c->budget)
        return NULL;
    if ((p = malloc(n + sizeof *p)) == NULL)
        return NULL;
    c->budget -= n;
    *p = n;
    return p + 1;
}

static void
cap_free(void *d, void *ptr)
{
    capped *c = d;
    size_t *p = ptr;

    if (p == NULL)
        return;
    p--;
    c->budget += *p;
    free(p);
}

static void *
unpack_capped(const ProtobufCMessageDescriptor *desc, const uint8_t *buf,
              size_t len)
{
    capped c = {len * 4 + 65536};
    ProtobufCAllocator a = {cap_alloc, cap_free, &c};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a, len, buf);

    return m;
}

static void
free_capped(void *m)
{
    capped c = {SIZE_MAX / 2};
    ProtobufCAllocator a = {cap_alloc, cap_free, &c};

    if (m != NULL)
        protobuf_c_message_free_unpacked(m, &a);
}

/*
 * 1 when m packs back to exactly buf: canonical encoding (fields in order,
 * no duplicates, no unknown fields, minimal varints, packed repeated
 * scalars, no NUL inside strings).  Anything else could decode one way
 * here and another way in a second implementation (P14, E6).
 */
static int
canonical(const ProtobufCMessage *m, const uint8_t *buf, size_t len)
{
    uint8_t stack[512], *out = stack;
    int same;

    if (protobuf_c_message_get_packed_size(m) != len)
        return 0;
    if (len > sizeof stack && (out = malloc(len)) == NULL)
        return 0;
    protobuf_c_message_pack(m, out);
    same = memcmp(out, buf, len) == 0;
    if (out != stack)
        free(out);
    return same;
}

static bs_err
malformed(bs_errbuf *err, const char *what)
{
    return bs_errf(err, BS_EMALFORMED, "malformed change set: %s", what);
}

static int
fixed(ProtobufCBinaryData d, size_t n)
{
    return d.len == n;
}

static bs_err
decode_header(bs_csview *v, bs_errbuf *err)
{
    Bs__SetHeader *h;

    if (v->header.n == 0 || v->header.n > BS_SET_MAX_BYTES)
        return malformed(err, "header size");
    h = unpack_capped(&bs__set_header__descriptor, v->header.p, v->header.n);
    if (h == NULL)
        return malformed(err, "header does not decode");
    v->pb_hdr = h;
    if (!canonical(&h->base, v->header.p, v->header.n))
        return malformed(err, "header is not canonically encoded");
    v->version = h->version;
    if (h->version != BS_WIRE_VERSION)
        return bs_errf(err, BS_EMALFORMED,
                       "change set version %u is not supported (this node "
                       "speaks %u)",
                       h->version, BS_WIRE_VERSION);
    if (!fixed(h->infobase, BS_INFOBASE_LEN) || !fixed(h->origin, BS_PK_LEN) ||
        !fixed(h->incarnation, BS_INC_LEN) ||
        !(h->prev_hash.len == 0 || fixed(h->prev_hash, BS_HASH_LEN)))
        return malformed(err, "bad id length in header");
    if (h->first_seq == 0 || h->last_seq < h->first_seq ||
        h->last_seq - h->first_seq >= BS_SET_MAX_CHANGES ||
        h->n_change_hashes != h->last_seq - h->first_seq + 1)
        return malformed(err, "seq range and hash count disagree");
    if ((h->first_seq == 1) != (h->prev_hash.len == 0))
        return malformed(err, "chain link inconsistent with seq");
    if (h->n_seen > BS_SEEN_MAX)
        return malformed(err, "too many streams in vector");
    memcpy(v->infobase, h->infobase.data, BS_INFOBASE_LEN);
    memcpy(v->origin, h->origin.data, BS_PK_LEN);
    memcpy(v->inc, h->incarnation.data, BS_INC_LEN);
    v->first = h->first_seq;
    v->last = h->last_seq;
    v->count = h->n_change_hashes;
    v->created_ms = h->created_ms;
    if ((v->has_prev = h->prev_hash.len != 0))
        memcpy(v->prev_hash, h->prev_hash.data, BS_HASH_LEN);
    for (size_t i = 0; i < h->n_change_hashes; i++)
        if (!fixed(h->change_hashes[i], BS_HASH_LEN))
            return malformed(err, "bad change hash length");
    v->nseen = h->n_seen;
    if ((v->seen = calloc(h->n_seen + 1, sizeof *v->seen)) == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < h->n_seen; i++) {
        Bs__StreamPos *p = h->seen[i];
        if (!fixed(p->origin, BS_PK_LEN) || !fixed(p->incarnation, BS_INC_LEN))
            return malformed(err, "bad id length in vector");
        memcpy(v->seen[i].origin, p->origin.data, BS_PK_LEN);
        memcpy(v->seen[i].inc, p->incarnation.data, BS_INC_LEN);
        v->seen[i].seq = p->seq;
    }
    return BS_OK;
}

/* Place present changes at their indexes and check their hashes. */
static bs_err
place_changes(bs_csview *v, const Bs__ChangeSet *cs, bs_errbuf *err)
{
    const Bs__SetHeader *h = v->pb_hdr;
    size_t next = 0;
    uint8_t hash[BS_HASH_LEN];

    if (cs->n_omitted > v->count || cs->n_changes + cs->n_omitted != v->count)
        return malformed(err, "change count disagrees with header");
    v->present = calloc(v->count, 1);
    v->changes = calloc(v->count, sizeof *v->changes);
    if (v->present == NULL || v->changes == NULL)
        return BS_ENOMEM;
    memset(v->present, 1, v->count);
    for (size_t i = 0; i < cs->n_omitted; i++) {
        uint32_t ix = cs->omitted[i];
        if (ix >= v->count || (i > 0 && ix <= cs->omitted[i - 1]))
            return malformed(err, "omitted indexes out of order or range");
        v->present[ix] = 0;
    }
    for (size_t i = 0; i < v->count; i++) {
        if (!v->present[i])
            continue;
        ProtobufCBinaryData d = cs->changes[next++];
        if (d.len == 0 || d.len > BS_CHANGE_MAX_BYTES)
            return malformed(err, "change size");
        bs_hash(hash, d.data, d.len);
        if (memcmp(hash, h->change_hashes[i].data, BS_HASH_LEN) != 0)
            return bs_errf(err, BS_EBADSIG,
                           "change %llu does not match the signed hash list",
                           (unsigned long long)(v->first + i));
        v->changes[i] = (bs_slice){d.data, d.len};
    }
    return BS_OK;
}

bs_err
bs_changeset_decode(const uint8_t *buf, size_t len, bs_csview **out,
                    bs_errbuf *err)
{
    bs_csview *v;
    Bs__ChangeSet *cs;
    bs_err rv;

    if (len == 0 || len > BS_SET_MAX_BYTES + 65536)
        return malformed(err, "size out of bounds");
    if ((v = calloc(1, sizeof *v)) == NULL)
        return BS_ENOMEM;
    cs = unpack_capped(&bs__change_set__descriptor, buf, len);
    if (cs == NULL) {
        rv = malformed(err, "does not decode");
        goto fail;
    }
    v->pb_set = cs;
    /* The container is not signed: nothing unknown may ride in it. */
    if (cs->base.n_unknown_fields > 0 || !canonical(&cs->base, buf, len)) {
        rv = malformed(err, "not canonically encoded (re-encoded by a relay?)");
        goto fail;
    }
    if (cs->signature.len != BS_SIG_LEN) {
        rv = malformed(err, "signature length");
        goto fail;
    }
    /* The signed bytes are the header exactly as received (P14). */
    v->raw = (bs_slice){buf, len};
    v->header = (bs_slice){cs->header.data, cs->header.len};
    bs_hash(v->header_hash, v->header.p, v->header.n);
    if ((rv = decode_header(v, err)) != BS_OK ||
        (rv = place_changes(v, cs, err)) != BS_OK)
        goto fail;
    *out = v;
    return BS_OK;
fail:
    bs_changeset_free(v);
    return rv;
}

bs_err
bs_changeset_verify(const bs_csview *v, const uint8_t pk[BS_PK_LEN])
{
    const Bs__ChangeSet *cs = v->pb_set;

    return bs_verify(cs->signature.data, BS_SIG_CONTEXT, v->header.p,
                     v->header.n, pk);
}

static bs_err
value_from_pb(const Bs__Value *pv, bs_value *v)
{
    memset(v, 0, sizeof *v);
    if (pv == NULL)
        return BS_EMALFORMED;
    switch (pv->kind_case) {
    case BS__VALUE__KIND_NULL:
        v->type = BS_VNULL;
        break;
    case BS__VALUE__KIND_BOOLEAN:
        v->type = pv->boolean ? BS_VTRUE : BS_VFALSE;
        break;
    case BS__VALUE__KIND_INTEGER:
        v->type = BS_VINT;
        v->i = pv->integer;
        break;
    case BS__VALUE__KIND_REAL:
        v->type = BS_VREAL;
        v->d = pv->real;
        if (v->d != v->d || v->d - v->d != 0)
            return BS_EMALFORMED; /* NaN or infinity: not JSON */
        break;
    case BS__VALUE__KIND_TEXT:
        v->type = BS_VTEXT;
        v->s = pv->text;
        v->len = (uint32_t)strlen(pv->text);
        break;
    default:
        return BS_EMALFORMED;
    }
    return BS_OK;
}

bs_err
bs_changeset_change_pb(const bs_csview *v, size_t i, bs_arena *a,
                       bs_change *out, bs_errbuf *err)
{
    Bs__Change *c;
    bs_field *f;
    bs_err rv = BS_EMALFORMED;

    BS_ASSERT(i < v->count && v->present[i]);
    c = unpack_capped(&bs__change__descriptor, v->changes[i].p,
                      v->changes[i].n);
    if (c == NULL)
        return malformed(err, "change does not decode");
    if (c->base.n_unknown_fields > 0 ||
        !canonical(&c->base, v->changes[i].p, v->changes[i].n)) {
        rv = malformed(err, "change is not canonically encoded");
        goto out;
    }
    for (size_t k = 0; k < c->n_fields; k++)
        if (c->fields[k]->base.n_unknown_fields > 0 ||
            (c->fields[k]->value &&
             c->fields[k]->value->base.n_unknown_fields > 0)) {
            rv = malformed(err, "change is not canonically encoded");
            goto out;
        }
    if (c->seq != v->first + i || c->n_fields > BS_FIELDS_MAX ||
        !bs_collection_valid(c->collection, 1) || !bs_id_valid(c->id) ||
        (c->deleted && c->n_fields > 0)) {
        rv = malformed(err, "change fields out of bounds");
        goto out;
    }
    memset(out, 0, sizeof *out);
    out->seq = c->seq;
    out->hlc = c->hlc;
    out->prio = c->prio;
    out->deleted = c->deleted;
    out->coll = bs_arena_strndup(a, c->collection, strlen(c->collection));
    out->id = bs_arena_strndup(a, c->id, strlen(c->id));
    f = bs_arena_alloc(a, (c->n_fields + 1) * sizeof *f);
    if (out->coll == NULL || out->id == NULL || f == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < c->n_fields; k++) {
        const char *name = c->fields[k]->name;
        size_t nl = strlen(name);

        memset(&f[k], 0, sizeof f[k]);
        if (!bs_field_name_valid(name, nl) ||
            value_from_pb(c->fields[k]->value, &f[k].val) != BS_OK ||
            (f[k].val.type == BS_VTEXT &&
             !bs_utf8_valid(f[k].val.s, f[k].val.len))) {
            rv = malformed(err, "bad field in change");
            goto out;
        }
        f[k].namelen = (uint16_t)nl;
        f[k].name = bs_arena_strndup(a, name, nl);
        if (f[k].val.type == BS_VTEXT)
            f[k].val.s = bs_arena_strndup(a, f[k].val.s, f[k].val.len);
        if (f[k].name == NULL ||
            (f[k].val.type == BS_VTEXT && f[k].val.s == NULL)) {
            rv = BS_ENOMEM;
            goto out;
        }
    }
    if ((rv = bs_fields_sort(f, c->n_fields, err)) != BS_OK) {
        rv = malformed(err, "duplicate field in change");
        goto out;
    }
    out->fields = f;
    out->nfields = c->n_fields;
    rv = BS_OK;
out:
    free_capped(c);
    return rv;
}

/* ---- the fast change decoder ----
 *
 * Changes are decoded once per change applied, so this is the hot path of
 * every import and sync.  It reads the canonical encoding directly — the
 * only encoding bs_changeset_change_pb (protobuf-c plus a re-encoding
 * check) accepts — without allocating per field: fields in increasing
 * order, minimal varints, proto3 defaults omitted, exactly one member of
 * a Value, no unknown fields.  tests/unit/test_changeset.c checks the two
 * decoders agree on valid, mutated and random inputs.
 */

typedef struct pbr {
    const uint8_t *p, *end;
} pbr;

/* A minimal varint (canonical: no redundant 0x80 groups). */
static int
rd_varint(pbr *r, uint64_t *v)
{
    uint64_t x = 0;
    int shift = 0;

    while (r->p < r->end && shift < 64) {
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift > 0)
                return 0; /* padded */
            if (shift == 63 && b > 1)
                return 0; /* overflow */
            *v = x;
            return 1;
        }
        shift += 7;
    }
    return 0;
}

static int
rd_bytes(pbr *r, pbr *sub)
{
    uint64_t n;

    if (!rd_varint(r, &n) || n > (uint64_t)(r->end - r->p))
        return 0;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 1;
}

/* A string field into the arena (NUL-terminated); no NUL inside. */
static char *
rd_string(pbr *r, bs_arena *a, size_t *len)
{
    pbr s;

    if (!rd_bytes(r, &s) || memchr(s.p, '\0', (size_t)(s.end - s.p)))
        return NULL;
    *len = (size_t)(s.end - s.p);
    return bs_arena_strndup(a, (const char *)s.p, *len);
}

static int
rd_value(pbr *r, bs_arena *a, bs_value *v)
{
    uint64_t tag, x;
    size_t len;

    memset(v, 0, sizeof *v);
    if (!rd_varint(r, &tag))
        return 0;
    switch (tag) {
    case 0x08: /* null: the bool carries no meaning (we write true) */
        if (!rd_varint(r, &x) || x > 1)
            return 0;
        v->type = BS_VNULL;
        break;
    case 0x10: /* boolean */
        if (!rd_varint(r, &x) || x > 1)
            return 0;
        v->type = x ? BS_VTRUE : BS_VFALSE;
        break;
    case 0x18: /* integer, zigzag */
        if (!rd_varint(r, &x))
            return 0;
        v->type = BS_VINT;
        v->i = (int64_t)(x >> 1) ^ -(int64_t)(x & 1);
        break;
    case 0x21: /* real, little-endian fixed64 */
        if (r->end - r->p < 8)
            return 0;
        memcpy(&x, r->p, 8); /* the host is little-endian (x86, arm) */
        r->p += 8;
        memcpy(&v->d, &x, 8);
        if (v->d != v->d || v->d - v->d != 0)
            return 0; /* NaN or infinity: not JSON */
        v->type = BS_VREAL;
        break;
    case 0x2a: /* text */
        if ((v->s = rd_string(r, a, &len)) == NULL || len > UINT32_MAX ||
            !bs_utf8_valid(v->s, len))
            return 0;
        v->len = (uint32_t)len;
        v->type = BS_VTEXT;
        break;
    default:
        return 0;
    }
    return r->p == r->end; /* exactly one member */
}

static int
rd_field(pbr *r, bs_arena *a, bs_field *f)
{
    uint64_t tag;
    size_t len;
    pbr val;

    memset(f, 0, sizeof *f);
    /* name (1) is never empty, so it is always present */
    if (!rd_varint(r, &tag) || tag != 0x0a ||
        (f->name = rd_string(r, a, &len)) == NULL ||
        !bs_field_name_valid(f->name, len))
        return 0;
    f->namelen = (uint16_t)len;
    if (!rd_varint(r, &tag) || tag != 0x12 || !rd_bytes(r, &val) ||
        !rd_value(&val, a, &f->val))
        return 0;
    return r->p == r->end;
}

bs_err
bs_changeset_change(const bs_csview *v, size_t i, bs_arena *a, bs_change *out,
                    bs_errbuf *err)
{
    pbr r = {v->changes[i].p, v->changes[i].p + v->changes[i].n};
    uint64_t tag, x, last = 0;
    size_t len, nf = 0, cap = 0;
    bs_field *f = NULL;
    char *coll = NULL, *id = NULL;

    BS_ASSERT(i < v->count && v->present[i]);
    memset(out, 0, sizeof *out);
    while (r.p < r.end) {
        if (!rd_varint(&r, &tag) || tag < last || (tag == last && tag != 0x3a))
            return malformed(err, "change is not canonically encoded");
        last = tag;
        switch (tag) {
        case 0x08:
        case 0x10:
        case 0x18:
        case 0x30:
            if (!rd_varint(&r, &x) || x == 0 ||
                (tag == 0x18 && x > UINT32_MAX) || (tag == 0x30 && x != 1))
                return malformed(err, "change is not canonically encoded");
            if (tag == 0x08)
                out->seq = x;
            else if (tag == 0x10)
                out->hlc = x;
            else if (tag == 0x18)
                out->prio = (uint32_t)x;
            else
                out->deleted = 1;
            break;
        case 0x22:
            if ((coll = rd_string(&r, a, &len)) == NULL)
                return malformed(err, "bad collection in change");
            break;
        case 0x2a:
            if ((id = rd_string(&r, a, &len)) == NULL)
                return malformed(err, "bad id in change");
            break;
        case 0x3a: {
            pbr sub;
            if (nf == cap) {
                bs_field *g;
                cap = cap ? cap * 2 : 8;
                if (cap > BS_FIELDS_MAX * 2u ||
                    (g = bs_arena_alloc(a, cap * sizeof *g)) == NULL)
                    return cap > BS_FIELDS_MAX * 2u
                               ? malformed(err, "too many fields in change")
                               : BS_ENOMEM;
                if (nf > 0)
                    memcpy(g, f, nf * sizeof *g);
                f = g;
            }
            if (!rd_bytes(&r, &sub) || !rd_field(&sub, a, &f[nf]))
                return malformed(err, "bad field in change");
            nf++;
            break;
        }
        default:
            return malformed(err, "change is not canonically encoded");
        }
    }
    if (coll == NULL || id == NULL || out->seq != v->first + i ||
        nf > BS_FIELDS_MAX || !bs_collection_valid(coll, 1) ||
        !bs_id_valid(id) || (out->deleted && nf > 0))
        return malformed(err, "change fields out of bounds");
    if (bs_fields_sort(f, nf, err) != BS_OK)
        return malformed(err, "duplicate field in change");
    out->coll = coll;
    out->id = id;
    out->fields = f;
    out->nfields = nf;
    return BS_OK;
}

void
bs_changeset_free(bs_csview *v)
{
    if (v == NULL)
        return;
    free_capped(v->pb_set);
    free_capped(v->pb_hdr);
    free(v->seen);
    free(v->present);
    free(v->changes);
    free(v);
}

bs_err
bs_changeset_stored_seen(bs_slice set, bs_pos **seen, size_t *n,
                         uint64_t *first, uint64_t *last)
{
    bs_csview v;
    bs_err rv;

    memset(&v, 0, sizeof v);
    /* Only the header is decoded, not the (large) changes. */
    if (bs_changeset_stored_header(set, &v.header) != BS_OK)
        return BS_ESTORE;
    rv = decode_header(&v, NULL);
    if (rv == BS_OK) {
        *seen = v.seen;
        *n = v.nseen;
        *first = v.first;
        *last = v.last;
        v.seen = NULL;
    }
    free(v.seen);
    free_capped(v.pb_hdr);
    return rv == BS_OK ? BS_OK : BS_ESTORE;
}

bs_err
bs_changeset_stored_header(bs_slice set, bs_slice *hdr)
{
    size_t i = 1, len = 0;
    int shift = 0;

    /* Field 1 (header, length-delimited) comes first in our encoding. */
    if (set.n < 2 || set.p[0] != 0x0a)
        return BS_ESTORE;
    for (; i < set.n && shift < 35; i++, shift += 7) {
        len |= (size_t)(set.p[i] & 0x7f) << shift;
        if (!(set.p[i] & 0x80))
            break;
    }
    i++;
    if (i > set.n || len > set.n - i)
        return BS_ESTORE;
    *hdr = (bs_slice){set.p + i, len};
    return BS_OK;
}

/* ---- envelope ---- */

#define ENVELOPE_MAX (BS_SEEN_MAX * 80 + 4096)

bs_err
bs_envelope_encode(const bs_envelope *e, uint8_t **out, size_t *n)
{
    Bs__Envelope m = BS__ENVELOPE__INIT;
    Bs__StreamPos *pos = NULL, **pp = NULL;

    if (e->nack > 0 && ((pos = calloc(e->nack, sizeof *pos)) == NULL ||
                        (pp = calloc(e->nack, sizeof *pp)) == NULL)) {
        free(pos);
        return BS_ENOMEM;
    }
    m.version = BS_WIRE_VERSION;
    m.infobase = bin(e->infobase, BS_INFOBASE_LEN);
    m.hub = bin(e->hub, BS_PK_LEN);
    m.sender = bin(e->sender, BS_PK_LEN);
    if (e->has_receiver)
        m.receiver = bin(e->receiver, BS_PK_LEN);
    for (size_t i = 0; i < e->nack; i++) {
        bs__stream_pos__init(&pos[i]);
        pos[i].origin = bin(e->ack[i].origin, BS_PK_LEN);
        pos[i].incarnation = bin(e->ack[i].inc, BS_INC_LEN);
        pos[i].seq = e->ack[i].seq;
        pp[i] = &pos[i];
    }
    m.n_ack = e->nack;
    m.ack = pp;
    m.created_ms = e->created_ms;
    m.sender_name = (char *)e->sender_name;
    m.sender_role = e->sender_role;
    m.sender_incarnation = bin(e->sender_inc, BS_INC_LEN);
    m.message_no = e->message_no;
    *n = bs__envelope__get_packed_size(&m);
    if ((*out = malloc(*n)) != NULL)
        bs__envelope__pack(&m, *out);
    free(pos);
    free(pp);
    return *out ? BS_OK : BS_ENOMEM;
}

bs_err
bs_envelope_decode(const uint8_t *buf, size_t n, bs_envelope *e, bs_errbuf *err)
{
    Bs__Envelope *m;
    bs_err rv = BS_EMALFORMED;

    memset(e, 0, sizeof *e);
    if (n == 0 || n > ENVELOPE_MAX)
        return bs_errf(err, rv, "malformed envelope: size");
    if ((m = unpack_capped(&bs__envelope__descriptor, buf, n)) == NULL)
        return bs_errf(err, rv, "malformed envelope: does not decode");
    if (m->version != BS_WIRE_VERSION) {
        rv = bs_errf(err, rv,
                     "envelope version %u is not supported (this "
                     "node speaks %u)",
                     m->version, BS_WIRE_VERSION);
        goto out;
    }
    if (!fixed(m->infobase, BS_INFOBASE_LEN) || !fixed(m->hub, BS_PK_LEN) ||
        !fixed(m->sender, BS_PK_LEN) ||
        !(m->receiver.len == 0 || fixed(m->receiver, BS_PK_LEN)) ||
        !fixed(m->sender_incarnation, BS_INC_LEN) || m->n_ack > BS_SEEN_MAX) {
        rv = bs_errf(err, rv, "malformed envelope: field sizes");
        goto out;
    }
    if (m->sender_name[0] && !bs_node_name_valid(m->sender_name)) {
        rv = bs_errf(err, rv, "malformed envelope: bad sender name");
        goto out;
    }
    memcpy(e->infobase, m->infobase.data, BS_INFOBASE_LEN);
    memcpy(e->hub, m->hub.data, BS_PK_LEN);
    memcpy(e->sender, m->sender.data, BS_PK_LEN);
    if ((e->has_receiver = m->receiver.len != 0))
        memcpy(e->receiver, m->receiver.data, BS_PK_LEN);
    memcpy(e->sender_inc, m->sender_incarnation.data, BS_INC_LEN);
    e->version = m->version;
    e->created_ms = m->created_ms;
    e->sender_role = m->sender_role;
    e->message_no = m->message_no;
    snprintf(e->sender_name, sizeof e->sender_name, "%s", m->sender_name);
    if ((e->ack = calloc(m->n_ack + 1, sizeof *e->ack)) == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < m->n_ack; i++) {
        if (!fixed(m->ack[i]->origin, BS_PK_LEN) ||
            !fixed(m->ack[i]->incarnation, BS_INC_LEN)) {
            rv = bs_errf(err, BS_EMALFORMED, "malformed envelope: vector");
            bs_envelope_fini(e);
            goto out;
        }
        memcpy(e->ack[i].origin, m->ack[i]->origin.data, BS_PK_LEN);
        memcpy(e->ack[i].inc, m->ack[i]->incarnation.data, BS_INC_LEN);
        e->ack[i].seq = m->ack[i]->seq;
    }
    e->nack = m->n_ack;
    rv = BS_OK;
out:
    free_capped(m);
    return rv;
}

void
bs_envelope_fini(bs_envelope *e)
{
    free(e->ack);
    e->ack = NULL;
    e->nack = 0;
}

bs_err
bs_csbuild_add_raw(bs_csbuild *b, uint64_t seq, bs_slice bytes)
{
    uint8_t *out;
    bs_err rv;

    if (b->n == b->cap && (rv = grow_arrays(b)) != BS_OK)
        return rv;
    if (b->n == 0)
        b->first_seq = seq;
    BS_ASSERT(seq == b->first_seq + b->n);
    if ((out = bs_arena_memdup(&b->arena, bytes.p, bytes.n)) == NULL)
        return BS_ENOMEM;
    b->changes[b->n] = (bs_slice){out, bytes.n};
    bs_hash(b->hashes[b->n], out, bytes.n);
    b->n++;
    b->bytes += bytes.n + BS_HASH_LEN + 8;
    return BS_OK;
}

bs_err
bs_changeset_stored_info(bs_slice set, uint64_t *first, uint64_t *last,
                         uint64_t *created_ms)
{
    Bs__SetHeader *h;
    bs_slice hdr;

    if (bs_changeset_stored_header(set, &hdr) != BS_OK)
        return BS_ESTORE;
    h = unpack_capped(&bs__set_header__descriptor, hdr.p, hdr.n);
    if (h == NULL)
        return BS_ESTORE;
    *first = h->first_seq;
    *last = h->last_seq;
    *created_ms = h->created_ms;
    free_capped(h);
    return BS_OK;
}
