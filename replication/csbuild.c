/*
 * csbuild.c - building and sealing change sets (the origin's side).
 *
 * Changes are encoded by hand, byte for byte what protobuf-c would write;
 * the header and the ChangeSet container are packed with the protobuf-c
 * generated code for proto/branchsync.proto.
 */
#include "csbuild.h"

#include <string.h>

#include "branchsync.pb-c.h"

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
    free(b->rcoll);
    free(b->rowner);
    free(b->rbefore);
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
    return n > 0 ? 1 + bs_varint_size(n) + n : 0;
}

static uint8_t *
put_bytes(uint8_t *p, uint8_t tag, const char *s, size_t n)
{
    if (n > 0) {
        *p++ = tag;
        p = bs_varint_put(p, n);
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
        return 1 + bs_varint_size(zigzag(v->i));
    case BS_VREAL:
        return 9;
    default:
        return tlen == SIZE_MAX ? 0 : 1 + bs_varint_size(tlen) + tlen;
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
        p = bs_varint_put(p, zigzag(v->i));
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
            p = bs_varint_put(p, tlen);
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
    return string_size(m->name) + 1 + bs_varint_size(*vsize) + *vsize;
}

static uint8_t *
put_u64(uint8_t *p, uint8_t tag, uint64_t v)
{
    if (v != 0) {
        *p++ = tag;
        p = bs_varint_put(p, v);
    }
    return p;
}

static bs_err
grow_arrays(bs_csbuild *b)
{
    size_t cap = b->cap ? b->cap * 2 : 256;
    bs_slice *c;
    uint8_t(*h)[BS_HASH_LEN];
    const char **r;

    if ((c = realloc(b->changes, cap * sizeof *c)) == NULL)
        return BS_ENOMEM;
    b->changes = c;
    if ((h = realloc(b->hashes, cap * sizeof *h)) == NULL)
        return BS_ENOMEM;
    b->hashes = h;
    if ((r = realloc(b->rcoll, cap * sizeof *r)) == NULL)
        return BS_ENOMEM;
    b->rcoll = r;
    if ((r = realloc(b->rowner, cap * sizeof *r)) == NULL)
        return BS_ENOMEM;
    b->rowner = r;
    if ((r = realloc(b->rbefore, cap * sizeof *r)) == NULL)
        return BS_ENOMEM;
    b->rbefore = r;
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
        n += 1 + bs_varint_size(ch->seq);
    if (ch->hlc != 0)
        n += 1 + bs_varint_size(ch->hlc);
    if (ch->prio != 0)
        n += 1 + bs_varint_size(ch->prio);
    n += string_size(cl) + string_size(il);
    if (ch->deleted)
        n += 2;
    for (size_t i = 0; i < ch->nfields; i++) {
        measure(&ch->fields[i], i < MEASURED ? &lens[i] : &m);
        fs = field_size(&ch->fields[i], i < MEASURED ? &lens[i] : &m, &vs);
        n += 1 + bs_varint_size(fs) + fs;
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
        p = bs_varint_put(p, fs);
        p = put_bytes(p, 0x0a, f->name, fl->name);
        *p++ = 0x12;
        p = bs_varint_put(p, vs);
        p = put_value(p, &f->val, fl->text);
    }
    BS_ASSERT((size_t)(p - out) == n);
    b->rcoll[b->n] = NULL; /* (no collection: no route) */
    if (ch->coll != NULL &&
        (b->rcoll[b->n] = bs_arena_strndup(&b->arena, ch->coll, cl)) == NULL)
        return BS_ENOMEM;
    b->rowner[b->n] = "";
    b->rbefore[b->n] = "";
    b->changes[b->n] = (bs_slice){out, n};
    bs_hash(b->hashes[b->n], out, n);
    b->n++;
    /* the route's collection, and as much again for its bucket in the
     * summary (2.10; at most one bucket per change) */
    b->bytes += n + 2 * (BS_HASH_LEN + 8 + cl + 4);
    return BS_OK;
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
    b->rcoll[b->n] = NULL;
    b->rowner[b->n] = "";
    b->rbefore[b->n] = "";
    b->changes[b->n] = (bs_slice){out, bytes.n};
    bs_hash(b->hashes[b->n], out, bytes.n);
    b->n++;
    b->bytes += bytes.n + BS_HASH_LEN + 8;
    return BS_OK;
}

bs_err
bs_csbuild_route(bs_csbuild *b, const char *coll, const char *owner,
                 const char *owner_before)
{
    size_t i;

    BS_ASSERT(b->n > 0);
    i = b->n - 1;
    if (coll != NULL) {
        if ((b->rcoll[i] = bs_arena_strndup(&b->arena, coll, strlen(coll))) ==
            NULL)
            return BS_ENOMEM;
        b->bytes += 2 * (strlen(coll) + 4);
    }
    if (owner != NULL && owner[0] != '\0') {
        if ((b->rowner[i] =
                 bs_arena_strndup(&b->arena, owner, strlen(owner))) == NULL)
            return BS_ENOMEM;
        b->bytes += 2 * (strlen(owner) + 2);
    }
    if (owner_before != NULL && owner_before[0] != '\0') {
        if ((b->rbefore[i] = bs_arena_strndup(&b->arena, owner_before,
                                              strlen(owner_before))) == NULL)
            return BS_ENOMEM;
        b->bytes += 2 * (strlen(owner_before) + 2);
    }
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
    Bs__Route *rt = NULL, **rp = NULL;
    ProtobufCBinaryData *hs;
    bs_err rv = BS_ENOMEM;

    if ((hs = malloc((b->n + 1) * sizeof *hs)) == NULL)
        return BS_ENOMEM;
    if (s->nseen > 0 && ((pos = calloc(s->nseen, sizeof *pos)) == NULL ||
                         (pp = calloc(s->nseen, sizeof *pp)) == NULL))
        goto out;
    if (s->routes && ((rt = calloc(b->n, sizeof *rt)) == NULL ||
                      (rp = calloc(b->n, sizeof *rp)) == NULL))
        goto out;
    for (size_t i = 0; s->routes && i < b->n; i++) {
        BS_ASSERT(b->rcoll[i] != NULL);
        bs__route__init(&rt[i]);
        rt[i].collection = (char *)b->rcoll[i];
        rt[i].owner = (char *)b->rowner[i];
        rt[i].owner_before = (char *)b->rbefore[i];
        rp[i] = &rt[i];
    }
    h.n_routes = s->routes ? b->n : 0;
    h.routes = rp;
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
    free(rt);
    free(rp);
    return rv;
}

bs_err
bs_csbuild_seal(bs_csbuild *b, const bs_seal *s, const uint8_t *sk,
                bs_sealed **out)
{
    Bs__ChangeSet cs = BS__CHANGE_SET__INIT;
    ProtobufCBinaryData *ch;
    uint8_t *hdr, sig[BS_SIG_LEN], ssig[BS_SIG_LEN], *sum = NULL;
    size_t hn, sumn = 0;
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
    /* A set with routes carries its summary, signed too (protocol.md
     * 2.10): what lets a relay send a receiver only its buckets. */
    if (s->routes) {
        const uint8_t **hs = malloc(b->n * sizeof *hs);

        rv = BS_ENOMEM;
        if (hs != NULL) {
            for (size_t i = 0; i < b->n; i++)
                hs[i] = b->hashes[i];
            rv = bs_summary_make((bs_slice){hdr, hn}, b->n, hs, b->rcoll,
                                 b->rowner, b->rbefore, &sum, &sumn);
            free(hs);
        }
        if (rv != BS_OK) {
            free(ch);
            free(x);
            free(hdr);
            return rv;
        }
        bs_sign(ssig, BS_SUM_CONTEXT, sum, sumn, sk);
        cs.summary = bin(sum, sumn);
        cs.summary_signature = bin(ssig, BS_SIG_LEN);
    }
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
    free(sum);
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
