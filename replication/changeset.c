/*
 * changeset.c - change set builder and sealer (the origin's side).
 *
 * Encoding uses the protobuf-c generated code for proto/branchsync.proto.
 */
#include "changeset.h"

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

static void
value_to_pb(Bs__Value *pv, const bs_value *v)
{
    bs__value__init(pv);
    switch (v->type) {
    case BS_VNULL:
        pv->kind_case = BS__VALUE__KIND_NULL;
        pv->null = 1;
        break;
    case BS_VFALSE:
    case BS_VTRUE:
        pv->kind_case = BS__VALUE__KIND_BOOLEAN;
        pv->boolean = v->type == BS_VTRUE;
        break;
    case BS_VINT:
        pv->kind_case = BS__VALUE__KIND_INTEGER;
        pv->integer = v->i;
        break;
    case BS_VREAL:
        pv->kind_case = BS__VALUE__KIND_REAL;
        pv->real = v->d;
        break;
    default:
        pv->kind_case = BS__VALUE__KIND_TEXT;
        pv->text = (char *)v->s;
        break;
    }
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

bs_err
bs_csbuild_add(bs_csbuild *b, const bs_change *ch)
{
    Bs__Change pc = BS__CHANGE__INIT;
    Bs__Field fstack[16], *fs = fstack, *fptrs_stack[16], **fptrs = fptrs_stack;
    Bs__Value vstack[16], *vs = vstack;
    uint8_t *out;
    size_t n;
    bs_err rv = BS_OK;

    if (b->n == b->cap && (rv = grow_arrays(b)) != BS_OK)
        return rv;
    if (b->n == 0)
        b->first_seq = ch->seq;
    BS_ASSERT(ch->seq == b->first_seq + b->n);
    if (ch->nfields > 16) {
        fs = malloc(ch->nfields * sizeof *fs);
        vs = malloc(ch->nfields * sizeof *vs);
        fptrs = malloc(ch->nfields * sizeof *fptrs);
        if (fs == NULL || vs == NULL || fptrs == NULL) {
            rv = BS_ENOMEM;
            goto out;
        }
    }
    pc.seq = ch->seq;
    pc.hlc = ch->hlc;
    pc.prio = ch->prio;
    pc.collection = (char *)ch->coll;
    pc.id = (char *)ch->id;
    pc.deleted = ch->deleted != 0;
    pc.n_fields = ch->nfields;
    pc.fields = fptrs;
    for (size_t i = 0; i < ch->nfields; i++) {
        bs__field__init(&fs[i]);
        fs[i].name = (char *)ch->fields[i].name;
        value_to_pb(&vs[i], &ch->fields[i].val);
        fs[i].value = &vs[i];
        fptrs[i] = &fs[i];
    }
    n = bs__change__get_packed_size(&pc);
    if (n > BS_CHANGE_MAX_BYTES) {
        rv = BS_EINVAL;
        goto out;
    }
    if ((out = bs_arena_alloc(&b->arena, n)) == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    bs__change__pack(&pc, out);
    b->changes[b->n] = (bs_slice){out, n};
    bs_hash(b->hashes[b->n], out, n);
    b->n++;
    b->bytes += n + BS_HASH_LEN + 8;
out:
    if (fs != fstack) {
        free(fs);
        free(vs);
        free(fptrs);
    }
    return rv;
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
