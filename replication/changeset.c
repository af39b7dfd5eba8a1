/*
 * changeset.c - decoding and verifying change sets (the receiver's side),
 * the fast change decoder, and reading our own sets back from the log.
 *
 * Untrusted bytes are unpacked with protobuf-c under an allocation cap and
 * must be canonically encoded (docs/protocol.md 2.8, 4.1).  Building and
 * sealing are csbuild.c's; the envelope is envelope.c's.
 */
#include "changeset.h"

#include <string.h>

#include "branchsync.pb-c.h"
#include "meta.h"

/* ---- protobuf-c for untrusted bytes ---- */

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

/*
 * The routes of a SetHeader (field 13) unpack into one message each, which
 * takes more memory than its few bytes on the wire: they get a budget of
 * their own, ROUTE_ALLOC each, after counting them in place.  A header
 * with more routes than a set has changes is refused before unpacking, so
 * the cap stays 4 * len + 64 KiB + BS_SET_MAX_CHANGES * ROUTE_ALLOC (P21).
 */
#define ROUTE_ALLOC 80 /* a Route (three strings) and its pointer, counted */

static int
scan_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 1;
    }
    return 0;
}

/* The number of field-13 entries of a header (SIZE_MAX: too many). */
static size_t
count_routes(const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    uint64_t tag, x;
    size_t n = 0;

    while (p < end && scan_varint(&p, end, &tag)) {
        switch (tag & 7) {
        case 0:
            if (!scan_varint(&p, end, &x))
                return n;
            break;
        case 1:
        case 5:
            if ((size_t)(end - p) < ((tag & 7) == 1 ? 8u : 4u))
                return n;
            p += (tag & 7) == 1 ? 8 : 4;
            break;
        case 2:
            if (!scan_varint(&p, end, &x) || x > (uint64_t)(end - p))
                return n;
            p += x;
            if (tag == (13u << 3 | 2) && ++n > BS_SET_MAX_CHANGES)
                return SIZE_MAX;
            break;
        default:
            return n; /* the unpack refuses it */
        }
    }
    return n;
}

void *
bs_changeset_pb_unpack(const ProtobufCMessageDescriptor *desc,
                       const uint8_t *buf, size_t len)
{
    capped c = {len * 4 + 65536};

    if (desc == &bs__set_header__descriptor) {
        size_t n = count_routes(buf, len);
        if (n == SIZE_MAX)
            return NULL;
        c.budget += n * ROUTE_ALLOC;
    }
    ProtobufCAllocator a = {cap_alloc, cap_free, &c};

    return protobuf_c_message_unpack(desc, &a, len, buf);
}

void
bs_changeset_pb_free(void *m)
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
int
bs_changeset_pb_canonical(const ProtobufCMessage *m, const uint8_t *buf,
                          size_t len)
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

/* ---- decoding a set ---- */

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

/* D14: no routes, or one per change, each well-formed. */
static bs_err
decode_routes(bs_csview *v, const Bs__SetHeader *h, bs_errbuf *err)
{
    if (h->n_routes == 0)
        return BS_OK;
    if (h->n_routes != h->n_change_hashes)
        return malformed(err, "route count disagrees with header");
    v->route_coll = calloc(h->n_routes, sizeof *v->route_coll);
    v->route_owner = calloc(h->n_routes, sizeof *v->route_owner);
    v->route_before = calloc(h->n_routes, sizeof *v->route_before);
    if (v->route_coll == NULL || v->route_owner == NULL ||
        v->route_before == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < h->n_routes; i++) {
        const Bs__Route *r = h->routes[i];
        /* protobuf-c gives "" for an absent string */
        if (!bs_collection_valid(r->collection, 1) ||
            !(r->owner[0] == '\0' || bs_node_name_valid(r->owner)) ||
            !(r->owner_before[0] == '\0' ||
              bs_node_name_valid(r->owner_before)))
            return malformed(err, "bad route in header");
        v->route_coll[i] = r->collection;
        v->route_owner[i] = r->owner;
        v->route_before[i] = r->owner_before;
    }
    return BS_OK;
}

static bs_err
decode_header(bs_csview *v, bs_errbuf *err)
{
    Bs__SetHeader *h;
    bs_err rv;

    if (v->header.n == 0 || v->header.n > BS_SET_MAX_BYTES)
        return malformed(err, "header size");
    h = bs_changeset_pb_unpack(&bs__set_header__descriptor, v->header.p,
                               v->header.n);
    if (h == NULL)
        return malformed(err, "header does not decode");
    v->pb_hdr = h;
    if (!bs_changeset_pb_canonical(&h->base, v->header.p, v->header.n))
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
    if ((rv = decode_routes(v, h, err)) != BS_OK)
        return rv;
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

    if (len == 0 || len > BS_SET_MAX_ENCODED)
        return malformed(err, "size out of bounds");
    if ((v = calloc(1, sizeof *v)) == NULL)
        return BS_ENOMEM;
    cs = bs_changeset_pb_unpack(&bs__change_set__descriptor, buf, len);
    if (cs == NULL) {
        rv = malformed(err, "does not decode");
        goto fail;
    }
    v->pb_set = cs;
    /* The container is not signed: nothing unknown may ride in it. */
    if (cs->base.n_unknown_fields > 0 ||
        !bs_changeset_pb_canonical(&cs->base, buf, len)) {
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

/* ---- the fast change decoder ----
 *
 * Changes are decoded once per change applied, so this is the hot path of
 * every import and sync.  It reads the canonical encoding directly — the
 * only encoding the protobuf-c reference decoder of the tests
 * (tests/lib/changeset_ref.c: protobuf-c plus a re-encoding check) accepts
 * — without allocating per field: fields in increasing order, minimal
 * varints, proto3 defaults omitted, exactly one member of a Value, no
 * unknown fields.  tests/unit/test_changeset.c and the fuzz checks
 * (tests/fuzz/fuzz_checks.c) check the two decoders agree on valid,
 * mutated and random inputs.
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
        !bs_field_name_wire_valid(f->name, len))
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
        !bs_id_wire_valid(id) || (out->deleted && nf > 0))
        return malformed(err, "change fields out of bounds");
    if (bs_fields_sort(f, nf, err) != BS_OK)
        return malformed(err, "duplicate field in change");
    if (v->route_coll != NULL && strcmp(v->route_coll[i], coll) != 0)
        return malformed(err, "change is not in the collection its route "
                              "names");
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
    bs_changeset_pb_free(v->pb_set);
    bs_changeset_pb_free(v->pb_hdr);
    free(v->seen);
    free(v->route_coll);
    free(v->route_owner);
    free(v->route_before);
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
    free(v.route_coll);
    free(v.route_owner);
    free(v.route_before);
    bs_changeset_pb_free(v.pb_hdr);
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

bs_err
bs_changeset_stored_info(bs_slice set, uint64_t *first, uint64_t *last,
                         uint64_t *created_ms)
{
    Bs__SetHeader *h;
    bs_slice hdr;

    if (bs_changeset_stored_header(set, &hdr) != BS_OK)
        return BS_ESTORE;
    h = bs_changeset_pb_unpack(&bs__set_header__descriptor, hdr.p, hdr.n);
    if (h == NULL)
        return BS_ESTORE;
    *first = h->first_seq;
    *last = h->last_seq;
    *created_ms = h->created_ms;
    bs_changeset_pb_free(h);
    return BS_OK;
}

/* ---- checking a stored set before it is sent ---- */

/* The next field of a ChangeSet: its tag and bytes. */
static int
rd_setfield(pbr *r, uint64_t *tag, pbr *f)
{
    return rd_varint(r, tag) && (*tag & 7) == 2 && rd_bytes(r, f);
}

/* The hashes of the present changes of set against header h, in place:
 * changes (field 3) fill the indexes that omitted (field 4) leaves. */
static int
hashes_match(pbr set, pbr om, const Bs__SetHeader *h)
{
    uint8_t hash[BS_HASH_LEN];
    uint64_t tag, skip = 0;
    int have = rd_varint(&om, &skip);
    size_t i = 0;
    pbr f;

    while (set.p < set.end) {
        if (!rd_setfield(&set, &tag, &f))
            return 0;
        if (tag != 0x1a)
            continue;
        for (; have && skip == i; i++)
            have = rd_varint(&om, &skip);
        if (i >= h->n_change_hashes)
            return 0;
        bs_hash(hash, f.p, (size_t)(f.end - f.p));
        if (memcmp(hash, h->change_hashes[i++].data, BS_HASH_LEN) != 0)
            return 0;
    }
    for (; have && skip == i; i++)
        have = rd_varint(&om, &skip);
    return i == h->n_change_hashes && om.p == om.end;
}

/*
 * Signatures checked here already, by a hash of origin, signature and
 * header: a relay or a repeated exchange sends the same sets again and
 * again, and Ed25519 verification is most of what a small set's check
 * costs.  The memo of a pure function: direct-mapped, a hit needs all 32
 * bytes equal, so damaged bytes never hit.  One thread checks sets (the
 * daemon's loop, a command).
 */
#define VERIFIED_SLOTS 1024
static uint8_t verified[VERIFIED_SLOTS][BS_HASH_LEN];

static int
signature_ok(pbr sig, pbr hdr, const uint8_t *origin)
{
    uint8_t id[BS_HASH_LEN];
    bs_hash_state h;
    uint8_t *slot;

    bs_hash_init(&h);
    bs_hash_update(&h, origin, BS_PK_LEN);
    bs_hash_update(&h, sig.p, (size_t)(sig.end - sig.p));
    bs_hash_update(&h, hdr.p, (size_t)(hdr.end - hdr.p));
    bs_hash_final(&h, id);
    slot = verified[bs_get_u32be(id) % VERIFIED_SLOTS];
    if (memcmp(slot, id, BS_HASH_LEN) == 0)
        return 1;
    if (bs_verify(sig.p, BS_SIG_CONTEXT, hdr.p, (size_t)(hdr.end - hdr.p),
                  origin) != BS_OK)
        return 0;
    memcpy(slot, id, BS_HASH_LEN);
    return 1;
}

bs_err
bs_changeset_stored_check(bs_slice set, const uint8_t key[BS_STREAM_KEY_LEN],
                          uint64_t *last)
{
    pbr r = {set.p, set.p + set.n}, all = r, f, hdr = {0}, sig = {0}, om = {0};
    Bs__SetHeader *h;
    uint64_t tag;
    int ok;

    while (r.p < r.end) {
        if (!rd_setfield(&r, &tag, &f))
            return BS_ESTORE;
        if (tag == 0x0a)
            hdr = f;
        else if (tag == 0x12)
            sig = f;
        else if (tag == 0x22)
            om = f;
    }
    if (hdr.p == NULL || sig.end - sig.p != BS_SIG_LEN)
        return BS_ESTORE;
    h = bs_changeset_pb_unpack(&bs__set_header__descriptor, hdr.p,
                               (size_t)(hdr.end - hdr.p));
    if (h == NULL)
        return BS_ESTORE;
    ok = fixed(h->origin, BS_PK_LEN) && fixed(h->incarnation, BS_INC_LEN) &&
         memcmp(h->origin.data, key, BS_PK_LEN) == 0 &&
         memcmp(h->incarnation.data, key + BS_PK_LEN, BS_INC_LEN) == 0 &&
         h->first_seq > 0 && h->last_seq >= h->first_seq &&
         h->n_change_hashes == h->last_seq - h->first_seq + 1;
    for (size_t i = 0; ok && i < h->n_change_hashes; i++)
        ok = fixed(h->change_hashes[i], BS_HASH_LEN);
    ok = ok && signature_ok(sig, hdr, h->origin.data) &&
         hashes_match(all, om, h);
    if (ok)
        *last = h->last_seq;
    bs_changeset_pb_free(h);
    return ok ? BS_OK : BS_ESTORE;
}

int
bs_changeset_stored_omits(bs_slice set)
{
    pbr r = {set.p, set.p + set.n}, f;
    uint64_t tag;

    while (r.p < r.end)
        if (!rd_setfield(&r, &tag, &f) || tag >> 3 == 4)
            return 1; /* (unreadable: let the full decoder judge it) */
    return 0;
}

/* ---- filtering a stored set for a receiver ---- */

/* The routes of header h read in place into r[0..count) (collection,
 * owner and owner-before slices); 0 when the header has none, -1 when they do
 * not read. */
static int
read_routes(pbr h, bs_route_ref *r, size_t count)
{
    uint64_t tag;
    size_t n = 0;
    pbr f;

    while (h.p < h.end) {
        uint64_t x;
        if (!rd_varint(&h, &tag))
            return -1;
        if ((tag & 7) == 0) {
            if (!rd_varint(&h, &x))
                return -1;
            continue;
        }
        if ((tag & 7) != 2 || !rd_bytes(&h, &f))
            return -1;
        if (tag != (13u << 3 | 2))
            continue;
        if (n == count)
            return -1;
        memset(&r[n], 0, sizeof r[n]);
        while (f.p < f.end) {
            pbr s;
            if (!rd_varint(&f, &tag) ||
                (tag != 0x0a && tag != 0x12 && tag != 0x1a) ||
                !rd_bytes(&f, &s))
                return -1;
            if (tag == 0x0a)
                r[n].coll = (bs_slice){s.p, (size_t)(s.end - s.p)};
            else if (tag == 0x12)
                r[n].owner = (bs_slice){s.p, (size_t)(s.end - s.p)};
            else
                r[n].owner_before = (bs_slice){s.p, (size_t)(s.end - s.p)};
        }
        n++;
    }
    return n == 0 ? 0 : n == count ? 1 : -1;
}

bs_err
bs_changeset_stored_filter(bs_slice set, bs_route_keep keep, void *ctx,
                           bs_filter_verdict *vd, uint8_t **out, size_t *outn)
{
    pbr r = {set.p, set.p + set.n}, f, hdr = {0}, sig = {0}, om = {0}, o;
    bs_route_ref *routes = NULL;
    uint8_t *present = NULL, *kept = NULL, *p;
    uint64_t tag, ix;
    size_t nchanges = 0, count, size, nomit = 0, omlen = 0, i, have = 0;
    bs_err rv = BS_ESTORE;

    *vd = BS_FILTER_WHOLE;
    *out = NULL;
    *outn = 0;
    while (r.p < r.end) {
        if (!rd_setfield(&r, &tag, &f))
            return BS_ESTORE;
        if (tag == 0x0a)
            hdr = f;
        else if (tag == 0x12)
            sig = f;
        else if (tag == 0x1a)
            nchanges++;
        else if (tag == 0x22)
            om = f;
    }
    for (o = om; o.p < o.end; have++)
        if (!rd_varint(&o, &ix))
            return BS_ESTORE;
    count = nchanges + have;
    if (hdr.p == NULL || sig.end - sig.p != BS_SIG_LEN || count == 0 ||
        count > BS_SET_MAX_CHANGES)
        return BS_ESTORE;
    routes = calloc(count, sizeof *routes);
    present = malloc(count);
    kept = malloc(count);
    if (routes == NULL || present == NULL || kept == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    memset(present, 1, count);
    while (om.p < om.end) {
        if (!rd_varint(&om, &ix) || ix >= count)
            goto out;
        present[ix] = 0;
    }
    switch (read_routes(hdr, routes, count)) {
    case -1:
        goto out;
    case 0: /* no routes: entitled to everything, nothing verifies an
               omission */
        rv = BS_OK;
        if (have > 0)
            *vd = BS_FILTER_STOP;
        goto out;
    default:
        break;
    }
    for (i = 0; i < count; i++) {
        int e = keep(ctx, &routes[i]);

        if (!present[i] && e) {
            *vd = BS_FILTER_STOP;
            rv = BS_OK;
            goto out;
        }
        kept[i] = present[i] && e;
        if (!kept[i]) {
            nomit++;
            omlen += bs_varint_size(i);
        }
    }
    rv = BS_OK;
    if (nomit == have)
        goto out; /* nothing more to leave out */
    /* header, signature, the kept changes, the packed omitted list */
    size = 1 + bs_varint_size((size_t)(hdr.end - hdr.p)) +
           (size_t)(hdr.end - hdr.p) + 1 + bs_varint_size(BS_SIG_LEN) +
           BS_SIG_LEN + 1 + bs_varint_size(omlen) + omlen;
    r = (pbr){set.p, set.p + set.n};
    i = 0;
    while (r.p < r.end) {
        const uint8_t *start = r.p;
        if (!rd_setfield(&r, &tag, &f))
            goto bad;
        if (tag != 0x1a)
            continue;
        while (i < count && !present[i])
            i++;
        if (kept[i])
            size += (size_t)(r.p - start);
        i++;
    }
    if ((*out = malloc(size)) == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    p = *out;
    *p++ = 0x0a;
    p = bs_varint_put(p, (size_t)(hdr.end - hdr.p));
    memcpy(p, hdr.p, (size_t)(hdr.end - hdr.p));
    p += hdr.end - hdr.p;
    *p++ = 0x12;
    p = bs_varint_put(p, BS_SIG_LEN);
    memcpy(p, sig.p, BS_SIG_LEN);
    p += BS_SIG_LEN;
    r = (pbr){set.p, set.p + set.n};
    i = 0;
    while (r.p < r.end) {
        const uint8_t *start = r.p;
        if (!rd_setfield(&r, &tag, &f))
            goto bad;
        if (tag != 0x1a)
            continue;
        while (i < count && !present[i])
            i++;
        if (kept[i]) {
            memcpy(p, start, (size_t)(r.p - start));
            p += r.p - start;
        }
        i++;
    }
    *p++ = 0x22;
    p = bs_varint_put(p, omlen);
    for (i = 0; i < count; i++)
        if (!kept[i])
            p = bs_varint_put(p, i);
    BS_ASSERT((size_t)(p - *out) == size);
    *outn = size;
    *vd = BS_FILTER_FILTERED;
    goto out;
bad:
    rv = BS_ESTORE;
out:
    free(routes);
    free(present);
    free(kept);
    return rv;
}
