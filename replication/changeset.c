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

/* A reader over bytes read in place. */
typedef struct pbr {
    const uint8_t *p, *end;
} pbr;

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

/* The number of `field` entries (length-delimited) of a message
 * (SIZE_MAX: more than a set has changes). */
static size_t
count_field(const uint8_t *p, size_t len, uint64_t field)
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
            if (tag == (field << 3 | 2) && ++n > BS_SET_MAX_CHANGES)
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

    if (desc == &bs__set_header__descriptor ||
        desc == &bs__set_summary__descriptor) {
        /* SetHeader.routes (13), SetSummary.buckets (3): a bucket is a
         * Route, its count and hash */
        int hdr = desc == &bs__set_header__descriptor;
        size_t n = count_field(buf, len, hdr ? 13 : 3);
        if (n == SIZE_MAX)
            return NULL;
        c.budget += n * (hdr ? ROUTE_ALLOC : 2 * ROUTE_ALLOC);
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

/* Decode v->header; `bare`: a summary's bare header (2.10), which has no
 * change hashes and no routes. */
static bs_err
decode_header(bs_csview *v, int bare, bs_errbuf *err)
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
        h->n_change_hashes != (bare ? 0 : h->last_seq - h->first_seq + 1) ||
        (bare && h->n_routes > 0))
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
    v->count = h->last_seq - h->first_seq + 1;
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

static bs_err decode_summary_form(bs_csview *v, const Bs__ChangeSet *cs,
                                  bs_errbuf *err);
static bs_err check_summary(bs_csview *v, const Bs__ChangeSet *cs,
                            bs_errbuf *err);

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
    v->raw = (bs_slice){buf, len};
    if (cs->header.len == 0) { /* summary form (2.10) */
        if ((rv = decode_summary_form(v, cs, err)) != BS_OK)
            goto fail;
        *out = v;
        return BS_OK;
    }
    if (cs->signature.len != BS_SIG_LEN || cs->n_buckets > 0 ||
        cs->seen.len > 0) {
        rv = malformed(err, "signature length");
        goto fail;
    }
    /* The signed bytes are the header exactly as received (P14). */
    v->header = (bs_slice){cs->header.data, cs->header.len};
    bs_hash(v->header_hash, v->header.p, v->header.n);
    if ((rv = decode_header(v, 0, err)) != BS_OK ||
        (rv = place_changes(v, cs, err)) != BS_OK)
        goto fail;
    if ((cs->summary.len > 0 || cs->summary_signature.len > 0) &&
        (rv = check_summary(v, cs, err)) != BS_OK)
        goto fail;
    *out = v;
    return BS_OK;
fail:
    bs_changeset_free(v);
    return rv;
}

/*
 * Signatures checked here already, by a hash of context, origin,
 * signature and message: a relay or a repeated exchange sends the same
 * sets again and again, an exchange file's pass 2 verifies what pass 1
 * did, and Ed25519 verification is most of what a small set's check costs
 * (a branch of a head office with many branches receives every office's
 * sets, most of them as a summary alone).  The memo of a pure function:
 * direct-mapped, a hit needs all 32 bytes equal, so damaged bytes never
 * hit.  One memo per thread (128 KiB each): the daemon checks sets on its
 * apply worker and, for held sets and seeds, on its loop.
 */
#define VERIFIED_SLOTS 4096
static _Thread_local uint8_t verified[VERIFIED_SLOTS][BS_HASH_LEN];

static int
signature_ok(pbr sig, pbr hdr, const uint8_t *origin, const char *ctx)
{
    uint8_t id[BS_HASH_LEN];
    bs_hash_state h;
    uint8_t *slot;

    bs_hash_init(&h);
    bs_hash_update(&h, ctx, strlen(ctx) + 1);
    bs_hash_update(&h, origin, BS_PK_LEN);
    bs_hash_update(&h, sig.p, (size_t)(sig.end - sig.p));
    bs_hash_update(&h, hdr.p, (size_t)(hdr.end - hdr.p));
    bs_hash_final(&h, id);
    slot = verified[bs_get_u32be(id) % VERIFIED_SLOTS];
    if (memcmp(slot, id, BS_HASH_LEN) == 0)
        return 1;
    if (bs_verify(sig.p, ctx, hdr.p, (size_t)(hdr.end - hdr.p), origin) !=
        BS_OK)
        return 0;
    memcpy(slot, id, BS_HASH_LEN);
    return 1;
}

/* signature_ok on slices: BS_OK or BS_EBADSIG. */
static bs_err
verify_memo(const uint8_t *sig, const char *ctx, bs_slice msg,
            const uint8_t *pk)
{
    return signature_ok((pbr){sig, sig + BS_SIG_LEN},
                        (pbr){msg.p, msg.p + msg.n}, pk, ctx)
               ? BS_OK
               : BS_EBADSIG;
}

bs_err
bs_changeset_verify(const bs_csview *v, const uint8_t pk[BS_PK_LEN])
{
    const Bs__ChangeSet *cs = v->pb_set;
    bs_err rv = BS_OK;

    if (!v->summary_form)
        rv = verify_memo(cs->signature.data, BS_SIG_CONTEXT, v->header, pk);
    if (rv == BS_OK && v->summary.n > 0)
        rv = verify_memo(cs->summary_signature.data, BS_SUM_CONTEXT, v->summary,
                         pk);
    return rv;
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

/* ---- summaries (docs/protocol.md 2.10) ---- */

static int
slice_eq(bs_slice a, bs_slice b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static int
route_eq(const bs_route_ref *a, const bs_route_ref *b)
{
    /* the owner first: it differs most often between neighbours */
    return slice_eq(a->owner, b->owner) && slice_eq(a->coll, b->coll) &&
           slice_eq(a->owner_before, b->owner_before);
}

/* FNV-1a over a slice and a separator (no cryptographic need: the table
 * compares routes whole). */
static uint64_t
fnv(uint64_t h, bs_slice s)
{
    for (size_t i = 0; i < s.n; i++)
        h = (h ^ s.p[i]) * 1099511628211u;
    return (h ^ 0x100) * 1099511628211u;
}

/*
 * The buckets of n changes of routes r: changes with equal routes share
 * one, numbered in the order of their first change.  bix[i] is change i's
 * bucket; head[b] the first change of bucket b, next[i] the next change of
 * i's bucket (UINT32_MAX: none), count[b] its size.  A hash table keeps it
 * linear in n whatever the routes.
 */
typedef struct buckets {
    size_t nb;
    uint32_t *bix, *head, *count, *next;
} buckets;

static void
buckets_fini(buckets *bk)
{
    free(bk->bix);
    free(bk->head);
    free(bk->count);
    free(bk->next);
    memset(bk, 0, sizeof *bk);
}

static bs_err
buckets_assign(const bs_route_ref *r, size_t n, buckets *bk)
{
    size_t cap = 16, slot;
    uint32_t *tab, *tail, b;

    memset(bk, 0, sizeof *bk);
    while (cap < 2 * n)
        cap <<= 1;
    tab = calloc(cap, sizeof *tab); /* bucket + 1; 0 free */
    tail = malloc((n + 1) * sizeof *tail);
    bk->bix = malloc((n + 1) * sizeof *bk->bix);
    bk->head = malloc((n + 1) * sizeof *bk->head);
    bk->count = calloc(n + 1, sizeof *bk->count);
    bk->next = malloc((n + 1) * sizeof *bk->next);
    if (tab == NULL || tail == NULL || bk->bix == NULL || bk->head == NULL ||
        bk->count == NULL || bk->next == NULL) {
        free(tab);
        free(tail);
        buckets_fini(bk);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && route_eq(&r[i], &r[i - 1])) {
            b = bk->bix[i - 1]; /* a run of one route: no lookup */
        } else {
            uint64_t h =
                fnv(fnv(fnv(14695981039346656037u, r[i].coll), r[i].owner),
                    r[i].owner_before);
            for (slot = h & (cap - 1);
                 tab[slot] != 0 &&
                 !route_eq(&r[bk->head[tab[slot] - 1]], &r[i]);
                 slot = (slot + 1) & (cap - 1))
                ;
            if (tab[slot] == 0) {
                b = (uint32_t)bk->nb++;
                tab[slot] = b + 1;
                bk->head[b] = (uint32_t)i;
                tail[b] = (uint32_t)i;
            } else {
                b = tab[slot] - 1;
            }
        }
        if (bk->count[b]++ > 0)
            bk->next[tail[b]] = (uint32_t)i;
        tail[b] = (uint32_t)i;
        bk->bix[i] = b;
        bk->next[i] = UINT32_MAX;
    }
    free(tab);
    free(tail);
    return BS_OK;
}

/*
 * The header without its change hashes (8), vector (9) and routes (13),
 * and the hash of its vector: the field-9 entries, tags and lengths
 * included, as they stand in the header.  Our own canonical bytes or ones
 * decoded already, so only varint and length-delimited fields occur.
 * *out malloc'd.
 */
static bs_err
bare_header(bs_slice hdr, uint8_t **out, size_t *outn,
            uint8_t seen_hash[BS_HASH_LEN])
{
    pbr r = {hdr.p, hdr.p + hdr.n};
    bs_hash_state st;
    uint8_t *p;

    if ((*out = p = malloc(hdr.n + 1)) == NULL)
        return BS_ENOMEM;
    bs_hash_init(&st);
    while (r.p < r.end) {
        const uint8_t *start = r.p;
        uint64_t tag, x;
        if (!rd_varint(&r, &tag))
            break;
        if ((tag & 7) == 0   ? !rd_varint(&r, &x)
            : (tag & 7) == 2 ? !rd_varint(&r, &x) || x > (uint64_t)(r.end - r.p)
                             : 1)
            break;
        if ((tag & 7) == 2)
            r.p += x;
        if (tag >> 3 == 9)
            bs_hash_update(&st, start, (size_t)(r.p - start));
        else if (tag >> 3 != 8 && tag >> 3 != 13) {
            memcpy(p, start, (size_t)(r.p - start));
            p += r.p - start;
        }
    }
    bs_hash_final(&st, seen_hash);
    *outn = (size_t)(p - *out);
    return BS_OK;
}

/* The vector's bytes inside a header: its field-9 entries, which a
 * canonical header keeps together (an empty slice when it has none). */
static bs_slice
header_seen(bs_slice hdr)
{
    pbr r = {hdr.p, hdr.p + hdr.n};
    const uint8_t *from = NULL, *to = NULL;

    while (r.p < r.end) {
        const uint8_t *start = r.p;
        uint64_t tag, x;
        if (!rd_varint(&r, &tag) || !rd_varint(&r, &x))
            break;
        if ((tag & 7) == 2) {
            if (x > (uint64_t)(r.end - r.p))
                break;
            r.p += x;
        }
        if (tag >> 3 == 9) {
            if (from == NULL)
                from = start;
            to = r.p;
        }
    }
    return from == NULL ? (bs_slice){hdr.p, 0}
                        : (bs_slice){from, (size_t)(to - from)};
}

/* A summary's bare header with a vector's field-9 entries put back in
 * their place (after the fields below 9): the header less its hashes and
 * routes, which decode_header reads (bare = 1).  *out malloc'd. */
static bs_err
splice_seen(bs_slice bare, bs_slice seen, uint8_t **out, size_t *outn)
{
    pbr r = {bare.p, bare.p + bare.n};
    size_t at = bare.n;
    uint8_t *p;

    while (r.p < r.end) {
        const uint8_t *start = r.p;
        uint64_t tag, x;
        if (!rd_varint(&r, &tag))
            break;
        if (tag >> 3 > 9) {
            at = (size_t)(start - bare.p);
            break;
        }
        if (!rd_varint(&r, &x))
            break;
        if ((tag & 7) == 2) {
            if (x > (uint64_t)(r.end - r.p))
                break;
            r.p += x;
        }
    }
    if ((*out = p = malloc(bare.n + seen.n + 1)) == NULL)
        return BS_ENOMEM;
    memcpy(p, bare.p, at);
    if (seen.n > 0)
        memcpy(p + at, seen.p, seen.n);
    memcpy(p + at + seen.n, bare.p + at, bare.n - at);
    *outn = bare.n + seen.n;
    return BS_OK;
}

/* The summary of a header whose hash is hh (computed when NULL), from
 * its routes as slices (bs_summary_make). */
static bs_err
summary_of(bs_slice hdr, const uint8_t *hh, size_t n,
           const uint8_t *const *hashes, const bs_route_ref *r,
           const char *const *coll, const char *const *owner,
           const char *const *before, uint8_t **out, size_t *outn)
{
    Bs__SetSummary sm = BS__SET_SUMMARY__INIT;
    Bs__RouteBucket *rb = NULL, **rbp = NULL;
    Bs__Route *rt = NULL;
    uint8_t hbuf[BS_HASH_LEN], (*bh)[BS_HASH_LEN] = NULL, *bare = NULL;
    uint8_t seen_hash[BS_HASH_LEN];
    size_t baren = 0;
    buckets bk;
    bs_err rv;

    *out = NULL;
    if ((rv = buckets_assign(r, n, &bk)) != BS_OK)
        return rv;
    rv = BS_ENOMEM;
    rb = calloc(bk.nb, sizeof *rb);
    rbp = calloc(bk.nb, sizeof *rbp);
    rt = calloc(bk.nb, sizeof *rt);
    bh = malloc(bk.nb * sizeof *bh);
    if (rb == NULL || rbp == NULL || rt == NULL || bh == NULL ||
        bare_header(hdr, &bare, &baren, seen_hash) != BS_OK)
        goto out;
    if (hh == NULL) {
        bs_hash(hbuf, hdr.p, hdr.n);
        hh = hbuf;
    }
    for (size_t b = 0; b < bk.nb; b++) {
        bs_hash_state st;
        uint32_t h0 = bk.head[b];

        bs_hash_init(&st);
        for (uint32_t i = h0; i != UINT32_MAX; i = bk.next[i])
            bs_hash_update(&st, hashes[i], BS_HASH_LEN);
        bs_hash_final(&st, bh[b]);
        bs__route__init(&rt[b]);
        rt[b].collection = (char *)coll[h0];
        rt[b].owner = (char *)owner[h0];
        rt[b].owner_before = (char *)before[h0];
        bs__route_bucket__init(&rb[b]);
        rb[b].route = &rt[b];
        rb[b].count = bk.count[b];
        rb[b].hash = (ProtobufCBinaryData){BS_HASH_LEN, bh[b]};
        rbp[b] = &rb[b];
    }
    sm.header_hash = (ProtobufCBinaryData){BS_HASH_LEN, (uint8_t *)hh};
    sm.bare_header = (ProtobufCBinaryData){baren, bare};
    sm.n_buckets = bk.nb;
    sm.buckets = rbp;
    sm.seen_hash = (ProtobufCBinaryData){BS_HASH_LEN, seen_hash};
    *outn = bs__set_summary__get_packed_size(&sm);
    if ((*out = malloc(*outn)) != NULL) {
        bs__set_summary__pack(&sm, *out);
        rv = BS_OK;
    }
out:
    buckets_fini(&bk);
    free(rb);
    free(rbp);
    free(rt);
    free(bh);
    free(bare);
    return rv;
}

static bs_slice
str_slice(const char *s)
{
    return (bs_slice){(const uint8_t *)s, strlen(s)};
}

bs_err
bs_summary_make(bs_slice hdr, size_t n, const uint8_t *const *hashes,
                const char *const *coll, const char *const *owner,
                const char *const *before, uint8_t **out, size_t *outn)
{
    bs_route_ref *r = malloc((n + 1) * sizeof *r);
    bs_err rv;

    if (r == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        r[i].coll = str_slice(coll[i]);
        r[i].owner = str_slice(owner[i]);
        r[i].owner_before = str_slice(before[i]);
    }
    rv = summary_of(hdr, NULL, n, hashes, r, coll, owner, before, out, outn);
    free(r);
    return rv;
}

/* A set with a header and a summary: the summary is exactly the one the
 * header determines (SM1). */
static bs_err
check_summary(bs_csview *v, const Bs__ChangeSet *cs, bs_errbuf *err)
{
    const Bs__SetHeader *h = v->pb_hdr;
    const uint8_t **hs;
    bs_route_ref *r;
    uint8_t *want = NULL;
    size_t wn = 0;
    bs_err rv = BS_ENOMEM;

    if (cs->summary.len == 0 || cs->summary_signature.len != BS_SIG_LEN ||
        cs->n_buckets > 0)
        return malformed(err, "summary fields");
    if (v->route_coll == NULL)
        return malformed(err, "a summary without routes");
    hs = malloc(v->count * sizeof *hs);
    r = malloc(v->count * sizeof *r);
    if (hs != NULL && r != NULL) {
        for (size_t i = 0; i < v->count; i++) {
            hs[i] = h->change_hashes[i].data;
            r[i].coll = str_slice(v->route_coll[i]);
            r[i].owner = str_slice(v->route_owner[i]);
            r[i].owner_before = str_slice(v->route_before[i]);
        }
        rv = summary_of(v->header, v->header_hash, v->count, hs, r,
                        v->route_coll, v->route_owner, v->route_before, &want,
                        &wn);
    }
    free(hs);
    free(r);
    if (rv != BS_OK)
        return rv;
    if (wn != cs->summary.len || memcmp(want, cs->summary.data, wn) != 0)
        rv = bs_errf(err, BS_EBADSIG,
                     "change set %llu-%llu: its summary is not the one its "
                     "signed header determines",
                     (unsigned long long)v->first, (unsigned long long)v->last);
    free(want);
    v->summary = (bs_slice){cs->summary.data, cs->summary.len};
    return rv;
}

/* A route of a summary's bucket, as D14 checks a header's. */
static int
route_valid(const Bs__Route *r)
{
    return r != NULL && bs_collection_valid(r->collection, 1) &&
           (r->owner[0] == '\0' || bs_node_name_valid(r->owner)) &&
           (r->owner_before[0] == '\0' || bs_node_name_valid(r->owner_before));
}

/* 1 when H(p[0..n)) is want. */
static int
hash_is(const uint8_t *p, size_t n, const uint8_t *want)
{
    uint8_t h[BS_HASH_LEN];

    bs_hash(h, p, n);
    return memcmp(h, want, BS_HASH_LEN) == 0;
}

/* The seq a change's bytes start with (field 1; 0 when they do not). */
static uint64_t
leading_seq(ProtobufCBinaryData d)
{
    pbr r = {d.data, d.data + d.len};
    uint64_t tag, seq;

    return rd_varint(&r, &tag) && tag == 0x08 && rd_varint(&r, &seq) ? seq : 0;
}

/*
 * A set in summary form (2.10): the summary decodes (canonically, SM2),
 * its bare header as a header without hashes and routes, its buckets add
 * up to the seq range, and each bucket carried holds exactly its count of
 * changes, in seq order, whose hashes hash to the bucket's.
 */
static bs_err
decode_summary_form(bs_csview *v, const Bs__ChangeSet *cs, bs_errbuf *err)
{
    Bs__SetSummary *sm;
    uint64_t total = 0;
    size_t next = 0;
    bs_err rv;

    if (cs->signature.len != 0 || cs->n_omitted > 0 ||
        cs->summary_signature.len != BS_SIG_LEN || cs->summary.len == 0 ||
        cs->summary.len > BS_SET_MAX_BYTES)
        return malformed(err, "summary fields");
    sm = bs_changeset_pb_unpack(&bs__set_summary__descriptor, cs->summary.data,
                                cs->summary.len);
    if (sm == NULL)
        return malformed(err, "summary does not decode");
    v->pb_sum = sm;
    if (!bs_changeset_pb_canonical(&sm->base, cs->summary.data,
                                   cs->summary.len) ||
        !fixed(sm->header_hash, BS_HASH_LEN) ||
        !fixed(sm->seen_hash, BS_HASH_LEN) || sm->bare_header.len == 0)
        return malformed(err, "summary is not canonically encoded");
    v->summary_form = 1;
    v->summary = (bs_slice){cs->summary.data, cs->summary.len};
    memcpy(v->header_hash, sm->header_hash.data, BS_HASH_LEN);
    /* SF3: the vector travels only with a bucket (nothing else of the set
     * is applied without one), and must be the one the summary signs */
    if (cs->n_buckets == 0
            ? cs->seen.len > 0
            : !hash_is(cs->seen.data, cs->seen.len, sm->seen_hash.data))
        return bs_errf(err, BS_EBADSIG,
                       "change set: its vector is not the one its summary "
                       "signs");
    if ((rv = splice_seen((bs_slice){sm->bare_header.data, sm->bare_header.len},
                          (bs_slice){cs->seen.data, cs->seen.len},
                          &v->own_header, &v->header.n)) != BS_OK)
        return rv;
    v->header.p = v->own_header;
    if ((rv = decode_header(v, 1, err)) != BS_OK)
        return rv;
    if (sm->n_buckets == 0 || sm->n_buckets > v->count)
        return malformed(err, "bucket count");
    v->nbuckets = sm->n_buckets;
    v->bucket_coll = calloc(v->nbuckets, sizeof *v->bucket_coll);
    v->bucket_owner = calloc(v->nbuckets, sizeof *v->bucket_owner);
    v->bucket_before = calloc(v->nbuckets, sizeof *v->bucket_before);
    v->bucket_count = calloc(v->nbuckets, sizeof *v->bucket_count);
    v->bucket_kept = calloc(v->nbuckets, 1);
    v->present = calloc(v->count, 1);
    v->changes = calloc(v->count, sizeof *v->changes);
    v->route_coll = calloc(v->count, sizeof *v->route_coll);
    v->route_owner = calloc(v->count, sizeof *v->route_owner);
    v->route_before = calloc(v->count, sizeof *v->route_before);
    if (v->bucket_coll == NULL || v->bucket_owner == NULL ||
        v->bucket_before == NULL || v->bucket_count == NULL ||
        v->bucket_kept == NULL || v->present == NULL || v->changes == NULL ||
        v->route_coll == NULL || v->route_owner == NULL ||
        v->route_before == NULL)
        return BS_ENOMEM;
    for (size_t b = 0; b < v->nbuckets; b++) {
        const Bs__RouteBucket *rb = sm->buckets[b];
        if (!route_valid(rb->route) || rb->count == 0 ||
            !fixed(rb->hash, BS_HASH_LEN))
            return malformed(err, "bad bucket in summary");
        v->bucket_coll[b] = rb->route->collection;
        v->bucket_owner[b] = rb->route->owner;
        v->bucket_before[b] = rb->route->owner_before;
        v->bucket_count[b] = rb->count;
        total += rb->count;
    }
    if (total != v->count)
        return malformed(err, "bucket counts disagree with header");
    for (size_t k = 0; k < cs->n_buckets; k++) {
        uint32_t b = cs->buckets[k];
        uint8_t hash[BS_HASH_LEN];
        bs_hash_state st;
        size_t prev = 0;

        if (b >= v->nbuckets || (k > 0 && b <= cs->buckets[k - 1]))
            return malformed(err, "carried buckets out of order or range");
        v->bucket_kept[b] = 1;
        bs_hash_init(&st);
        for (uint32_t j = 0; j < v->bucket_count[b]; j++) {
            ProtobufCBinaryData d;
            uint64_t seq;
            size_t i;

            if (next >= cs->n_changes)
                return malformed(err, "change count disagrees with summary");
            d = cs->changes[next++];
            if (d.len == 0 || d.len > BS_CHANGE_MAX_BYTES)
                return malformed(err, "change size");
            seq = leading_seq(d);
            if (seq < v->first || seq > v->last)
                return malformed(err, "change outside the set's seq range");
            i = (size_t)(seq - v->first);
            if (v->present[i] || (j > 0 && i <= prev))
                return malformed(err, "changes of a bucket out of seq order");
            prev = i;
            bs_hash(hash, d.data, d.len);
            bs_hash_update(&st, hash, BS_HASH_LEN);
            v->present[i] = 1;
            v->changes[i] = (bs_slice){d.data, d.len};
            v->route_coll[i] = v->bucket_coll[b];
            v->route_owner[i] = v->bucket_owner[b];
            v->route_before[i] = v->bucket_before[b];
        }
        bs_hash_final(&st, hash);
        if (memcmp(hash, sm->buckets[b]->hash.data, BS_HASH_LEN) != 0)
            return bs_errf(err, BS_EBADSIG,
                           "change set %llu-%llu: the changes of bucket %u "
                           "do not match the signed summary",
                           (unsigned long long)v->first,
                           (unsigned long long)v->last, b);
    }
    if (next != cs->n_changes)
        return malformed(err, "change count disagrees with summary");
    return BS_OK;
}

void
bs_changeset_free(bs_csview *v)
{
    if (v == NULL)
        return;
    if (v->pre_arena != NULL) {
        bs_arena_fini(v->pre_arena);
        free(v->pre_arena);
    }
    bs_changeset_pb_free(v->pb_set);
    bs_changeset_pb_free(v->pb_hdr);
    bs_changeset_pb_free(v->pb_sum);
    free(v->own_header);
    free(v->bucket_coll);
    free(v->bucket_owner);
    free(v->bucket_before);
    free(v->bucket_count);
    free(v->bucket_kept);
    free(v->seen);
    free(v->route_coll);
    free(v->route_owner);
    free(v->route_before);
    free(v->present);
    free(v->changes);
    free(v);
}

bs_err
bs_changeset_predecode(bs_csview *v)
{
    bs_arena *a = malloc(sizeof *a);
    bs_change *pre;
    size_t n = 0;

    if (a == NULL)
        return BS_ENOMEM;
    bs_arena_init(a);
    for (size_t i = 0; i < v->count; i++)
        n += v->present[i];
    if ((pre = bs_arena_alloc(a, (n ? n : 1) * sizeof *pre)) == NULL)
        goto fail;
    for (size_t i = 0, k = 0; i < v->count; i++)
        if (v->present[i] &&
            bs_changeset_change(v, i, a, &pre[k++], NULL) != BS_OK)
            goto fail; /* the caller decodes it, and refuses */
    v->pre = pre;
    v->pre_arena = a;
    return BS_OK;
fail:
    bs_arena_fini(a);
    free(a);
    return BS_OK;
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
    if (set.p[0] != 0x0a) { /* summary form: its vector, if it came */
        pbr r = {set.p, set.p + set.n}, f, sv = {set.p, set.p};
        uint64_t tag;

        while (r.p < r.end && rd_varint(&r, &tag) && (tag & 7) == 2 &&
               rd_bytes(&r, &f))
            if (tag == 0x42)
                sv = f;
        if (splice_seen(v.header, (bs_slice){sv.p, (size_t)(sv.end - sv.p)},
                        &v.own_header, &v.header.n) != BS_OK)
            return BS_ENOMEM;
        v.header.p = v.own_header;
    }
    rv = decode_header(&v, set.p[0] != 0x0a, NULL);
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
    free(v.own_header);
    bs_changeset_pb_free(v.pb_hdr);
    return rv == BS_OK ? BS_OK : BS_ESTORE;
}

/* The summary (field 5) of a stored set, in place; 0 when it has none
 * or does not read. */
static int
stored_summary(bs_slice set, pbr *sum)
{
    pbr r = {set.p, set.p + set.n}, f;
    uint64_t tag;

    while (r.p < r.end) {
        if (!rd_varint(&r, &tag) || (tag & 7) != 2 || !rd_bytes(&r, &f))
            return 0;
        if (tag == 0x2a) {
            *sum = f;
            return 1;
        }
    }
    return 0;
}

/* Length-delimited field `tag` of a summary, in place. */
static int
summary_field(pbr sum, uint64_t want, pbr *out)
{
    uint64_t tag;
    pbr f;

    while (sum.p < sum.end) {
        if (!rd_varint(&sum, &tag) || (tag & 7) != 2 || !rd_bytes(&sum, &f))
            return 0;
        if (tag == want) {
            *out = f;
            return 1;
        }
    }
    return 0;
}

bs_err
bs_changeset_stored_header_hash(bs_slice set, uint8_t out[BS_HASH_LEN])
{
    bs_slice hdr;
    pbr sum, hh;

    if (set.n > 0 && set.p[0] != 0x0a) { /* summary form */
        if (!stored_summary(set, &sum) || !summary_field(sum, 0x0a, &hh) ||
            hh.end - hh.p != BS_HASH_LEN)
            return BS_ESTORE;
        memcpy(out, hh.p, BS_HASH_LEN);
        return BS_OK;
    }
    if (bs_changeset_stored_header(set, &hdr) != BS_OK)
        return BS_ESTORE;
    bs_hash(out, hdr.p, hdr.n);
    return BS_OK;
}

bs_err
bs_changeset_stored_header(bs_slice set, bs_slice *hdr)
{
    size_t i = 1, len = 0;
    int shift = 0;
    pbr sum, bare;

    if (set.n > 0 && set.p[0] != 0x0a) { /* summary form: the bare header */
        if (!stored_summary(set, &sum) || !summary_field(sum, 0x12, &bare))
            return BS_ESTORE;
        *hdr = (bs_slice){bare.p, (size_t)(bare.end - bare.p)};
        return BS_OK;
    }
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

/*
 * The seq range and creation time of a stored set, read in place (our own
 * stored bytes): unpacking a header of thousands of hashes and routes to
 * read three numbers cost as much as the rest of an export.  Only varint
 * and length-delimited fields occur in a header.  created_ms NULL: stop at
 * last_seq (field 6, before the hash list).
 */
static bs_err
header_numbers(bs_slice set, uint64_t *first, uint64_t *last,
               uint64_t *created_ms)
{
    bs_slice hdr;
    pbr r;
    uint64_t tag, x;

    if (bs_changeset_stored_header(set, &hdr) != BS_OK)
        return BS_ESTORE;
    *first = *last = 0;
    if (created_ms != NULL)
        *created_ms = 0;
    for (r = (pbr){hdr.p, hdr.p + hdr.n}; r.p < r.end;) {
        if (!rd_varint(&r, &tag))
            return BS_ESTORE;
        if ((tag & 7) == 2) {
            if (!rd_varint(&r, &x) || x > (uint64_t)(r.end - r.p))
                return BS_ESTORE;
            r.p += x;
            continue;
        }
        if ((tag & 7) != 0 || !rd_varint(&r, &x))
            return BS_ESTORE;
        if (tag >> 3 == 5)
            *first = x;
        else if (tag >> 3 == 6)
            *last = x;
        else if (tag >> 3 == 10 && created_ms != NULL)
            *created_ms = x;
        if (tag >> 3 == 6 && created_ms == NULL)
            break;
    }
    return *first > 0 && *last >= *first ? BS_OK : BS_ESTORE;
}

bs_err
bs_changeset_stored_info(bs_slice set, uint64_t *first, uint64_t *last,
                         uint64_t *created_ms)
{
    return header_numbers(set, first, last, created_ms);
}

bs_err
bs_changeset_stored_range(bs_slice set, uint64_t *first, uint64_t *last)
{
    return header_numbers(set, first, last, NULL);
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

/* A stored set in summary form, read in place: its summary's signature,
 * the stream its bare header names, and each carried bucket's changes
 * against the bucket's hash. */
static bs_err
summary_form_check(bs_slice set, const uint8_t key[BS_STREAM_KEY_LEN],
                   uint64_t *last)
{
    pbr r = {set.p, set.p + set.n}, f, sum = {0}, ssig = {0}, bk = {0};
    pbr bare = {0}, hh = {0}, ids[2] = {{0}}, seen = {set.p, set.p};
    uint64_t tag, x, first = 0, lst = 0, b;
    Bs__SetSummary *sm = NULL;
    int ok = 0;

    while (r.p < r.end) {
        if (!rd_setfield(&r, &tag, &f))
            return BS_ESTORE;
        if (tag == 0x2a)
            sum = f;
        else if (tag == 0x32)
            ssig = f;
        else if (tag == 0x3a)
            bk = f;
        else if (tag == 0x42)
            seen = f;
    }
    if (sum.p == NULL || ssig.end - ssig.p != BS_SIG_LEN ||
        !summary_field(sum, 0x0a, &hh) || !summary_field(sum, 0x12, &bare))
        return BS_ESTORE;
    for (r = bare; r.p < r.end;) {
        if (!rd_varint(&r, &tag))
            return BS_ESTORE;
        if ((tag & 7) == 2) {
            if (!rd_bytes(&r, &f))
                return BS_ESTORE;
            if (tag >> 3 == 3 || tag >> 3 == 4)
                ids[(tag >> 3) - 3] = f;
            continue;
        }
        if ((tag & 7) != 0 || !rd_varint(&r, &x))
            return BS_ESTORE;
        if (tag >> 3 == 5)
            first = x;
        else if (tag >> 3 == 6)
            lst = x;
    }
    if (ids[0].end - ids[0].p != BS_PK_LEN ||
        ids[1].end - ids[1].p != BS_INC_LEN ||
        memcmp(ids[0].p, key, BS_PK_LEN) != 0 ||
        memcmp(ids[1].p, key + BS_PK_LEN, BS_INC_LEN) != 0 || first == 0 ||
        lst < first || !signature_ok(ssig, sum, ids[0].p, BS_SUM_CONTEXT))
        return BS_ESTORE;
    sm = bs_changeset_pb_unpack(&bs__set_summary__descriptor, sum.p,
                                (size_t)(sum.end - sum.p));
    if (sm == NULL)
        return BS_ESTORE;
    if (bk.p != NULL && bk.p < bk.end &&
        (!fixed(sm->seen_hash, BS_HASH_LEN) ||
         !hash_is(seen.p, (size_t)(seen.end - seen.p), sm->seen_hash.data)))
        goto out; /* the vector that goes with the buckets */
    /* the changes, bucket by bucket, in the order the buckets are listed */
    r = (pbr){set.p, set.p + set.n};
    while (bk.p < bk.end) {
        uint8_t hash[BS_HASH_LEN];
        bs_hash_state st;

        if (!rd_varint(&bk, &b) || b >= sm->n_buckets ||
            !fixed(sm->buckets[b]->hash, BS_HASH_LEN))
            goto out;
        bs_hash_init(&st);
        for (uint32_t k = 0; k < sm->buckets[b]->count; k++) {
            do {
                if (r.p >= r.end || !rd_setfield(&r, &tag, &f))
                    goto out;
            } while (tag != 0x1a);
            bs_hash(hash, f.p, (size_t)(f.end - f.p));
            bs_hash_update(&st, hash, BS_HASH_LEN);
        }
        bs_hash_final(&st, hash);
        if (memcmp(hash, sm->buckets[b]->hash.data, BS_HASH_LEN) != 0)
            goto out;
    }
    /* no change beyond the buckets' */
    ok = 1;
    while (ok && r.p < r.end)
        ok = rd_setfield(&r, &tag, &f) && tag != 0x1a;
out:
    bs_changeset_pb_free(sm);
    if (ok)
        *last = lst;
    return ok ? BS_OK : BS_ESTORE;
}

bs_err
bs_changeset_stored_check(bs_slice set, const uint8_t key[BS_STREAM_KEY_LEN],
                          uint64_t *last)
{
    pbr r = {set.p, set.p + set.n}, all = r, f, hdr = {0}, sig = {0}, om = {0};
    pbr sum = {0}, ssig = {0};
    Bs__SetHeader *h;
    uint64_t tag;
    int ok;

    if (set.n > 0 && set.p[0] != 0x0a)
        return summary_form_check(set, key, last);
    while (r.p < r.end) {
        if (!rd_setfield(&r, &tag, &f))
            return BS_ESTORE;
        if (tag == 0x0a)
            hdr = f;
        else if (tag == 0x12)
            sig = f;
        else if (tag == 0x22)
            om = f;
        else if (tag == 0x2a)
            sum = f;
        else if (tag == 0x32)
            ssig = f;
    }
    if (hdr.p == NULL || sig.end - sig.p != BS_SIG_LEN ||
        (sum.p != NULL) != (ssig.p != NULL) ||
        (ssig.p != NULL && ssig.end - ssig.p != BS_SIG_LEN))
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
    ok = ok && signature_ok(sig, hdr, h->origin.data, BS_SIG_CONTEXT) &&
         (sum.p == NULL ||
          signature_ok(ssig, sum, h->origin.data, BS_SUM_CONTEXT)) &&
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

    if (set.n > 0 && set.p[0] != 0x0a)
        return 1; /* summary form */
    while (r.p < r.end)
        if (!rd_setfield(&r, &tag, &f) || tag >> 3 == 4)
            return 1; /* (unreadable: let the full decoder judge it) */
    return 0;
}

bs_err
bs_changeset_stored_strip(bs_slice set, uint8_t **out, size_t *outn)
{
    pbr r = {set.p, set.p + set.n}, f;
    uint64_t tag;
    size_t keep = 0;
    uint8_t *p;

    *out = NULL;
    *outn = 0;
    if (set.n > 0 && set.p[0] != 0x0a)
        return BS_EPERM;
    while (r.p < r.end) {
        const uint8_t *start = r.p;
        if (!rd_setfield(&r, &tag, &f))
            return BS_ESTORE;
        if (tag != 0x2a && tag != 0x32)
            keep += (size_t)(r.p - start);
    }
    if (keep == set.n)
        return BS_OK;
    if ((*out = p = malloc(keep + 1)) == NULL)
        return BS_ENOMEM;
    for (r = (pbr){set.p, set.p + set.n}; r.p < r.end;) {
        const uint8_t *start = r.p;
        if (!rd_setfield(&r, &tag, &f))
            break;
        if (tag != 0x2a && tag != 0x32) {
            memcpy(p, start, (size_t)(r.p - start));
            p += r.p - start;
        }
    }
    *outn = keep;
    return BS_OK;
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

/* A bucket's route as a bs_route_ref (strings of an unpacked summary). */
static bs_route_ref
bucket_ref(const Bs__RouteBucket *b)
{
    return (bs_route_ref){str_slice(b->route->collection),
                          str_slice(b->route->owner),
                          str_slice(b->route->owner_before)};
}

/* A stored set in summary form, for a receiver that takes summaries:
 * sent as it is when the receiver is entitled to exactly the buckets it
 * carries; otherwise it stops the stream (a branch relays whole). */
static bs_err
filter_summary_form(bs_slice set, bs_route_keep keep, void *ctx,
                    bs_filter_verdict *vd)
{
    bs_csview *v;

    if (bs_changeset_decode(set.p, set.n, &v, NULL) != BS_OK)
        return BS_ESTORE;
    *vd = BS_FILTER_WHOLE;
    for (size_t b = 0; b < v->nbuckets; b++) {
        bs_route_ref r = {str_slice(v->bucket_coll[b]),
                          str_slice(v->bucket_owner[b]),
                          str_slice(v->bucket_before[b])};
        if (!keep(ctx, &r) != !v->bucket_kept[b])
            *vd = BS_FILTER_STOP;
    }
    bs_changeset_free(v);
    return BS_OK;
}

static uint8_t *
put_ld(uint8_t *p, uint8_t tag, pbr f)
{
    *p++ = tag;
    p = bs_varint_put(p, (size_t)(f.end - f.p));
    memcpy(p, f.p, (size_t)(f.end - f.p));
    return p + (f.end - f.p);
}

/*
 * The changes of a stored set by bucket, for filter_by_bucket: its route
 * entries read in place one by one (no array of routes) and matched to
 * the summary's buckets through a small hash table, then the spans of its
 * change fields.  One allocation of about 100 KiB for the largest set, so
 * that the allocator reuses it set after set instead of mapping and
 * faulting in fresh pages for each (an export reads a million changes).
 * bix[i] is change i's bucket, next[i] the next change of its bucket
 * (UINT16_MAX: none; count <= BS_SET_MAX_CHANGES), head[b] its first.
 */
typedef struct bucketed {
    uint16_t *bix, *next;
    uint32_t *head, *tail, *cnt, *tab;
    bs_route_ref *route; /* the summary's, per bucket */
    size_t cap;
    void *mem;
} bucketed;

/* A cheap hash of a route for the table (route_eq decides): the owners
 * vary most between buckets, the collection mostly by length. */
static uint64_t
route_hash(const bs_route_ref *r)
{
    return fnv(fnv(r->coll.n * 0x9e3779b97f4a7c15u, r->owner), r->owner_before);
}

/* The summary bucket whose route is r, through the table; -1: none. */
static long
bucket_find(const bucketed *bk, const bs_route_ref *r)
{
    for (size_t slot = route_hash(r) & (bk->cap - 1); bk->tab[slot] != 0;
         slot = (slot + 1) & (bk->cap - 1))
        if (route_eq(&bk->route[bk->tab[slot] - 1], r))
            return (long)bk->tab[slot] - 1;
    return -1;
}

static bs_err
bucketed_init(bucketed *bk, Bs__SetSummary *sm, size_t count)
{
    size_t nb = sm->n_buckets, cap = 16;

    memset(bk, 0, sizeof *bk);
    while (cap < 2 * nb)
        cap <<= 1;
    bk->cap = cap;
    if ((bk->mem =
             malloc(nb * sizeof(bs_route_ref) + 2 * count * sizeof(uint16_t) +
                    (3 * nb + cap) * sizeof(uint32_t))) == NULL)
        return BS_ENOMEM;
    bk->route = bk->mem;
    bk->head = (uint32_t *)(bk->route + nb);
    bk->tail = bk->head + nb;
    bk->cnt = bk->tail + nb;
    bk->tab = bk->cnt + nb;
    bk->bix = (uint16_t *)(bk->tab + cap);
    bk->next = bk->bix + count;
    memset(bk->cnt, 0, nb * sizeof *bk->cnt);
    memset(bk->tab, 0, cap * sizeof *bk->tab);
    for (size_t b = 0; b < nb; b++) {
        size_t slot;

        bk->route[b] = bucket_ref(sm->buckets[b]);
        slot = route_hash(&bk->route[b]) & (cap - 1);
        while (bk->tab[slot] != 0)
            slot = (slot + 1) & (cap - 1);
        bk->tab[slot] = (uint32_t)b + 1;
    }
    return BS_OK;
}

/* Change n's route r goes to its bucket; 0 when the routes do not match
 * the summary: each bucket's changes share its route, and buckets are
 * numbered in the order of their first change. */
static int
bucket_add(bucketed *bk, size_t n, const bs_route_ref *r,
           const bs_route_ref *prev, size_t *nseen)
{
    long b;

    if (n > 0 && route_eq(r, prev)) /* a run of one route: no lookup */
        b = bk->bix[n - 1];
    else if ((b = bucket_find(bk, r)) < 0)
        return 0;
    if (bk->cnt[b] == 0) {
        if ((size_t)b != *nseen)
            return 0;
        ++*nseen;
        bk->head[b] = (uint32_t)n;
    } else {
        bk->next[bk->tail[b]] = (uint16_t)n;
    }
    bk->cnt[b]++;
    bk->tail[b] = (uint32_t)n;
    bk->bix[n] = (uint16_t)b;
    bk->next[n] = UINT16_MAX;
    return 1;
}

/* The routes of header h, read in place, into their buckets: 0 when a
 * route does not read or does not match the summary sm (which was checked
 * against the header when the set arrived: the buckets must still name
 * the same routes, with the same counts). */
static int
bucket_routes(bucketed *bk, Bs__SetSummary *sm, pbr h, size_t count)
{
    bs_route_ref r, prev = {{0}, {0}, {0}};
    size_t n = 0, nseen = 0;
    uint64_t tag;
    pbr f;

    while (h.p < h.end) {
        uint64_t x;
        if (!rd_varint(&h, &tag))
            return 0;
        if ((tag & 7) == 0) {
            if (!rd_varint(&h, &x))
                return 0;
            continue;
        }
        if ((tag & 7) != 2 || !rd_bytes(&h, &f))
            return 0;
        if (tag != (13u << 3 | 2))
            continue;
        if (n == count)
            return 0;
        memset(&r, 0, sizeof r);
        while (f.p < f.end) {
            pbr s;
            if (!rd_varint(&f, &tag) ||
                (tag != 0x0a && tag != 0x12 && tag != 0x1a) ||
                !rd_bytes(&f, &s))
                return 0;
            if (tag == 0x0a)
                r.coll = (bs_slice){s.p, (size_t)(s.end - s.p)};
            else if (tag == 0x12)
                r.owner = (bs_slice){s.p, (size_t)(s.end - s.p)};
            else
                r.owner_before = (bs_slice){s.p, (size_t)(s.end - s.p)};
        }
        if (!bucket_add(bk, n, &r, &prev, &nseen))
            return 0;
        prev = r;
        n++;
    }
    if (n != count || nseen != sm->n_buckets)
        return 0;
    for (size_t b = 0; b < sm->n_buckets; b++)
        if (bk->cnt[b] != sm->buckets[b]->count)
            return 0;
    return 1;
}

/*
 * A stored set with a header and a summary, for a receiver that takes
 * summaries (2.10): whole when it is entitled to every bucket; else the
 * summary form with the buckets it is entitled to, their changes bucket by
 * bucket.  Only a set mixing buckets reads its header's routes.
 */
static bs_err
filter_by_bucket(bs_slice set, pbr hdr, pbr sum, pbr ssig, size_t count,
                 const uint32_t *off, const uint32_t *len, bs_route_keep keep,
                 void *ctx, bs_filter_verdict *vd, uint8_t **out, size_t *outn)
{
    Bs__SetSummary *sm;
    bs_slice seen;
    uint8_t *kept = NULL, *p;
    size_t nkept = 0, size, idxlen = 0;
    bucketed bk;
    bs_err rv = BS_ESTORE;

    memset(&bk, 0, sizeof bk);
    sm = bs_changeset_pb_unpack(&bs__set_summary__descriptor, sum.p,
                                (size_t)(sum.end - sum.p));
    if (sm == NULL || sm->n_buckets == 0)
        goto out;
    if ((kept = calloc(sm->n_buckets, 1)) == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    for (size_t b = 0; b < sm->n_buckets; b++) {
        bs_route_ref br;
        if (sm->buckets[b]->route == NULL)
            goto out;
        br = bucket_ref(sm->buckets[b]);
        if ((kept[b] = keep(ctx, &br) != 0)) {
            nkept++;
            idxlen += bs_varint_size(b);
        }
    }
    rv = BS_OK;
    if (nkept == sm->n_buckets)
        goto out;     /* entitled to all of it: whole */
    if (nkept == 0) { /* to none of it: the summary alone (no route read) */
        size = 2 + bs_varint_size((size_t)(sum.end - sum.p)) +
               (size_t)(sum.end - sum.p) + 1 + BS_SIG_LEN;
        if ((*out = p = malloc(size)) == NULL) {
            rv = BS_ENOMEM;
            goto out;
        }
        p = put_ld(p, 0x2a, sum);
        p = put_ld(p, 0x32, ssig);
        BS_ASSERT((size_t)(p - *out) == size);
        *outn = size;
        *vd = BS_FILTER_FILTERED;
        goto out;
    }
    if (sm->n_buckets > count || count > BS_SET_MAX_CHANGES) {
        rv = BS_ESTORE;
        goto out;
    }
    if ((rv = bucketed_init(&bk, sm, count)) != BS_OK)
        goto out;
    rv = BS_ESTORE;
    if (!bucket_routes(&bk, sm, hdr, count))
        goto out;
    size = 1 + bs_varint_size((size_t)(sum.end - sum.p)) +
           (size_t)(sum.end - sum.p) + 1 + bs_varint_size(BS_SIG_LEN) +
           BS_SIG_LEN;
    seen = header_seen((bs_slice){hdr.p, (size_t)(hdr.end - hdr.p)});
    if (nkept > 0)
        size += 1 + bs_varint_size(idxlen) + idxlen;
    if (nkept > 0 && seen.n > 0) /* the vector goes with a bucket */
        size += 1 + bs_varint_size(seen.n) + seen.n;
    for (size_t n = 0; n < count; n++)
        if (kept[bk.bix[n]])
            size += len[n];
    if ((*out = p = malloc(size)) == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    for (size_t b = 0; b < sm->n_buckets; b++) {
        if (!kept[b])
            continue;
        for (uint32_t i = bk.head[b]; i != UINT16_MAX; i = bk.next[i]) {
            memcpy(p, set.p + off[i], len[i]);
            p += len[i];
        }
    }
    p = put_ld(p, 0x2a, sum);
    p = put_ld(p, 0x32, ssig);
    if (nkept > 0) {
        *p++ = 0x3a;
        p = bs_varint_put(p, idxlen);
        for (size_t b = 0; b < sm->n_buckets; b++)
            if (kept[b])
                p = bs_varint_put(p, b);
    }
    if (nkept > 0 && seen.n > 0)
        p = put_ld(p, 0x42, (pbr){seen.p, seen.p + seen.n});
    BS_ASSERT((size_t)(p - *out) == size);
    *outn = size;
    *vd = BS_FILTER_FILTERED;
    rv = BS_OK;
out:
    bs_changeset_pb_free(sm);
    free(bk.mem);
    free(kept);
    return rv;
}

bs_err
bs_changeset_stored_filter_at(bs_slice set, bs_slice sum, bs_slice ssig,
                              bs_route_keep keep, void *ctx,
                              bs_filter_verdict *vd, uint8_t **out,
                              size_t *outn)
{
    Bs__SetSummary *sm =
        bs_changeset_pb_unpack(&bs__set_summary__descriptor, sum.p, sum.n);
    size_t nkept = 0, size;
    uint8_t *p;

    *vd = BS_FILTER_WHOLE;
    *out = NULL;
    *outn = 0;
    if (sm == NULL || sm->n_buckets == 0)
        goto whole_read; /* (the set's own reading judges it) */
    for (size_t b = 0; b < sm->n_buckets; b++) {
        bs_route_ref br;
        if (sm->buckets[b]->route == NULL)
            goto whole_read;
        br = bucket_ref(sm->buckets[b]);
        nkept += keep(ctx, &br) != 0;
    }
    if (nkept == sm->n_buckets) { /* entitled to all of it: as stored */
        bs_changeset_pb_free(sm);
        return BS_OK;
    }
    if (nkept > 0)
        goto whole_read;
    bs_changeset_pb_free(sm);
    /* entitled to none of it: the summary alone */
    size = 2 + bs_varint_size(sum.n) + sum.n + 1 + BS_SIG_LEN;
    if ((*out = p = malloc(size)) == NULL)
        return BS_ENOMEM;
    p = put_ld(p, 0x2a, (pbr){sum.p, sum.p + sum.n});
    p = put_ld(p, 0x32, (pbr){ssig.p, ssig.p + ssig.n});
    BS_ASSERT((size_t)(p - *out) == size);
    *outn = size;
    *vd = BS_FILTER_FILTERED;
    return BS_OK;
whole_read:
    bs_changeset_pb_free(sm);
    return bs_changeset_stored_filter(set, keep, ctx, 1, vd, out, outn);
}

bs_err
bs_changeset_stored_filter(bs_slice set, bs_route_keep keep, void *ctx,
                           int summaries, bs_filter_verdict *vd, uint8_t **out,
                           size_t *outn)
{
    pbr r = {set.p, set.p + set.n}, f, hdr = {0}, sig = {0}, om = {0}, o;
    pbr sum = {0}, ssig = {0};
    bs_route_ref *routes = NULL;
    uint8_t *present = NULL, *kept = NULL, *p;
    uint64_t tag, ix;
    size_t nchanges = 0, count, size, nomit = 0, omlen = 0, i, have = 0;
    uint32_t *span = NULL; /* summaries: each change field's offset, length */
    bs_err rv = BS_ESTORE;

    *vd = BS_FILTER_WHOLE;
    *out = NULL;
    *outn = 0;
    if (set.n > 0 && set.p[0] != 0x0a) {
        if (!summaries) {
            *vd = BS_FILTER_STOP;
            return BS_OK;
        }
        return filter_summary_form(set, keep, ctx, vd);
    }
    if (summaries &&
        (span = malloc(2 * BS_SET_MAX_CHANGES * sizeof *span)) == NULL)
        return BS_ENOMEM;
    while (r.p < r.end) {
        const uint8_t *start = r.p;
        if (!rd_setfield(&r, &tag, &f)) {
            free(span);
            return BS_ESTORE;
        }
        if (tag == 0x1a) {
            if (span != NULL && nchanges < BS_SET_MAX_CHANGES) {
                span[nchanges] = (uint32_t)(start - set.p);
                span[BS_SET_MAX_CHANGES + nchanges] = (uint32_t)(r.p - start);
            }
            nchanges++;
        } else if (tag == 0x0a) {
            hdr = f;
        } else if (tag == 0x12) {
            sig = f;
        } else if (tag == 0x22) {
            om = f;
        } else if (tag == 0x2a) {
            sum = f;
        } else if (tag == 0x32) {
            ssig = f;
        }
    }
    if (summaries && sum.p != NULL && ssig.end - ssig.p == BS_SIG_LEN &&
        om.p == NULL && hdr.p != NULL && nchanges > 0 &&
        nchanges <= BS_SET_MAX_CHANGES) {
        rv = filter_by_bucket(set, hdr, sum, ssig, nchanges, span,
                              span + BS_SET_MAX_CHANGES, keep, ctx, vd, out,
                              outn);
        free(span);
        return rv;
    }
    free(span);
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
