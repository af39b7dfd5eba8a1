/*
 * test_changeset.c - unit tests of replication/changeset.c: sealing and
 * decoding change sets, signatures (S1), a relay's omissions (INV-4), the
 * shape checks of bs_changeset_decode (P21, G2), random garbage (F1-style,
 * fixed seed), the envelope codec, and a golden vector that pins the wire
 * encoding: fixed inputs and a fixed key pair give a fixed header hash and
 * signature (tests/vectors/changeset_v1.exp, libsodium's sign.exp idea).
 *
 * Randomized tests take their seed from BS_SEED (default fixed) and print
 * it on failure.
 */
#include <criterion/criterion.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "../../replication/changeset.h"
#include "../../replication/hlc.h"
#include "../lib/changeset_ref.h"
#include "branchsync.pb-c.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAKS() __lsan_do_recoverable_leak_check()
#else
#define LEAKS() 0
#endif

/* ---- fixed inputs ---- */

#define T0_MS 1767225600000ull /* 2026-01-01T00:00:00Z */

static uint8_t pk[BS_PK_LEN], sk[BS_SK_LEN];   /* seed 00 01 .. 1f */
static uint8_t pk2[BS_PK_LEN], sk2[BS_SK_LEN]; /* seed 20 21 .. 3f */
static uint8_t infobase[BS_INFOBASE_LEN], inc[BS_INC_LEN];
static bs_pos seen[2];

static void
setup(void)
{
    uint8_t seed[32];

    cr_assert_eq(bs_crypto_init(), BS_OK);
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    cr_assert_eq(crypto_sign_seed_keypair(pk, sk, seed), 0);
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(0x20 + i);
    cr_assert_eq(crypto_sign_seed_keypair(pk2, sk2, seed), 0);
    for (int i = 0; i < BS_INFOBASE_LEN; i++)
        infobase[i] = (uint8_t)(0xa0 + i);
    for (int i = 0; i < BS_INC_LEN; i++)
        inc[i] = (uint8_t)(0x10 + i);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < BS_PK_LEN; i++)
        seen[0].origin[i] = (uint8_t)(0x30 + i);
    for (int i = 0; i < BS_INC_LEN; i++)
        seen[0].inc[i] = (uint8_t)(0x50 + i);
    seen[0].seq = 42;
    memcpy(seen[1].origin, pk, BS_PK_LEN);
    memcpy(seen[1].inc, inc, BS_INC_LEN);
    seen[1].seq = 7;
}

static void
teardown(void)
{
    /* Criterion does not see LSan's exit status: ask here. */
    if (LEAKS() != 0) {
        fprintf(stderr, "test_changeset: memory leaked (see LSan report)\n");
        abort();
    }
}

TestSuite(changeset, .init = setup, .fini = teardown, .timeout = 120);

static bs_field
fld(const char *name, bs_vtype type)
{
    bs_field f;

    memset(&f, 0, sizeof f);
    f.name = name;
    f.namelen = (uint16_t)strlen(name);
    f.val.type = (uint8_t)type;
    return f;
}

static bs_field
ftext(const char *name, const char *s)
{
    bs_field f = fld(name, BS_VTEXT);

    f.val.s = s;
    f.val.len = (uint32_t)strlen(s);
    return f;
}

static bs_field
fint(const char *name, int64_t v)
{
    bs_field f = fld(name, BS_VINT);

    f.val.i = v;
    return f;
}

static bs_field
freal(const char *name, double v)
{
    bs_field f = fld(name, BS_VREAL);

    f.val.d = v;
    return f;
}

/* The three fixed changes (seq 1..3): an upsert with text/true/int, one
 * with int/null/real/false, and a delete.  Fields sorted by name. */
static bs_field f1[3], f2[4];
static bs_change changes[3];

static void
fixed_changes(void)
{
    f1[0] = ftext("item", "bolt \xc3\xb8 M8");
    f1[1] = fld("paid", BS_VTRUE);
    f1[2] = fint("qty", 10);
    f2[0] = fint("delta", -7);
    f2[1] = fld("note", BS_VNULL);
    f2[2] = freal("price", 2.5);
    f2[3] = fld("rush", BS_VFALSE);
    memset(changes, 0, sizeof changes);
    changes[0] =
        (bs_change){1, BS_HLC_MAKE(T0_MS, 0), 0, "orders", "o-1", 0, f1, 3};
    changes[1] =
        (bs_change){2, BS_HLC_MAKE(T0_MS + 1, 3), 2, "orders", "o-2", 0, f2, 4};
    changes[2] = (bs_change){
        3, BS_HLC_MAKE(T0_MS + 2, 0), 0, "orders", "o-1", 1, NULL, 0};
}

static bs_seal
fixed_seal(void)
{
    bs_seal s;

    memset(&s, 0, sizeof s);
    memcpy(s.infobase, infobase, BS_INFOBASE_LEN);
    memcpy(s.origin, pk, BS_PK_LEN);
    memcpy(s.inc, inc, BS_INC_LEN);
    s.seen = seen;
    s.nseen = 2;
    s.created_ms = T0_MS + 5;
    return s;
}

typedef struct sealed {
    uint8_t *p;
    size_t n;
    uint8_t hash[BS_HASH_LEN];
} sealed;

/* Seal changes[0..n) (seqs must be consecutive) with s and key. */
static sealed
seal_changes(const bs_change *ch, size_t n, const bs_seal *s,
             const uint8_t *key)
{
    bs_csbuild b;
    bs_sealed *x;
    sealed out;

    bs_csbuild_init(&b);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(bs_csbuild_add(&b, &ch[i]), BS_OK, "add %zu", i);
    cr_assert_eq(bs_csbuild_count(&b), n);
    cr_assert_eq(bs_csbuild_seal(&b, s, key, &x), BS_OK);
    cr_assert_eq(bs_csbuild_count(&b), 0, "the builder is empty again");
    cr_assert_eq(bs_sealed_first(x), ch[0].seq);
    cr_assert_eq(bs_sealed_last(x), ch[n - 1].seq);
    out.n = bs_sealed_size(x);
    out.p = malloc(out.n);
    cr_assert_not_null(out.p);
    bs_sealed_write(x, out.p);
    memcpy(out.hash, bs_sealed_hash(x), BS_HASH_LEN);
    bs_sealed_free(x);
    bs_csbuild_fini(&b);
    return out;
}

static sealed
fixed_set(void)
{
    bs_seal s = fixed_seal();

    fixed_changes();
    return seal_changes(changes, 3, &s, sk);
}

static bs_csview *
decode_ok(const uint8_t *p, size_t n)
{
    bs_errbuf err = {{0}};
    bs_csview *v = NULL;
    bs_err rv = bs_changeset_decode(p, n, &v, &err);

    cr_assert_eq(rv, BS_OK, "decode: %s", bs_errmsg(&err, rv));
    cr_assert_not_null(v);
    return v;
}

/* Decoding must fail with want and a one-line message. */
static void
decode_fails(const uint8_t *p, size_t n, bs_err want, const char *what)
{
    bs_errbuf err = {{0}};
    bs_csview *v = NULL;
    bs_err rv = bs_changeset_decode(p, n, &v, &err);

    cr_assert_eq(rv, want, "%s: got %s (%s), want %s", what, bs_strerror(rv),
                 err.msg, bs_strerror(want));
    cr_assert_null(v, "%s: *out written on failure", what);
    cr_assert_neq(err.msg[0], '\0', "%s: no message", what);
    cr_assert_null(strchr(err.msg, '\n'), "%s: message not one line", what);
}

static void
assert_value_eq(const bs_value *a, const bs_value *b, const char *what)
{
    cr_assert_eq(a->type, b->type, "%s: type", what);
    if (a->type == BS_VINT)
        cr_assert_eq(a->i, b->i, "%s: integer", what);
    if (a->type == BS_VREAL)
        cr_assert_eq(memcmp(&a->d, &b->d, sizeof a->d), 0, "%s: real", what);
    if (a->type == BS_VTEXT) {
        cr_assert_eq(a->len, b->len, "%s: text length", what);
        cr_assert_eq(memcmp(a->s, b->s, a->len), 0, "%s: text", what);
    }
}

static void
assert_change_eq(const bs_change *got, const bs_change *want)
{
    cr_assert_eq(got->seq, want->seq);
    cr_assert_eq(got->hlc, want->hlc, "seq %llu: hlc",
                 (unsigned long long)want->seq);
    cr_assert_eq(got->prio, want->prio);
    cr_assert_str_eq(got->coll, want->coll);
    cr_assert_str_eq(got->id, want->id);
    cr_assert_eq(!!got->deleted, !!want->deleted);
    cr_assert_eq(got->nfields, want->nfields);
    for (size_t k = 0; k < want->nfields; k++) {
        cr_assert_eq(got->fields[k].namelen, want->fields[k].namelen);
        cr_assert_str_eq(got->fields[k].name, want->fields[k].name);
        assert_value_eq(&got->fields[k].val, &want->fields[k].val,
                        want->fields[k].name);
    }
}

/* ---- protobuf surgery ---- */

static Bs__ChangeSet *
cs_unpack(const uint8_t *p, size_t n)
{
    Bs__ChangeSet *cs = bs__change_set__unpack(NULL, n, p);

    cr_assert_not_null(cs);
    return cs;
}

static sealed
cs_pack(const Bs__ChangeSet *cs)
{
    sealed out;

    memset(&out, 0, sizeof out);
    out.n = bs__change_set__get_packed_size(cs);
    out.p = malloc(out.n + 1);
    cr_assert_not_null(out.p);
    cr_assert_eq(bs__change_set__pack(cs, out.p), out.n);
    return out;
}

/* Ed25519 over ctx || NUL || msg (crypto.h). */
static void
sign_ctx(uint8_t sig[BS_SIG_LEN], const char *ctx, const uint8_t *msg, size_t n,
         const uint8_t *key)
{
    size_t cn = strlen(ctx) + 1;
    uint8_t *m = malloc(cn + n + 1);

    cr_assert_not_null(m);
    memcpy(m, ctx, cn);
    memcpy(m + cn, msg, n);
    cr_assert_eq(crypto_sign_detached(sig, NULL, m, cn + n, key), 0);
    free(m);
}

/*
 * The fixed set with its header changed by edit and re-signed with sk, so
 * only the edit can make decoding fail.
 */
typedef void (*header_edit)(Bs__SetHeader *h, void *arg);

static sealed
with_header(const sealed *in, header_edit edit, void *arg)
{
    Bs__ChangeSet *cs = cs_unpack(in->p, in->n);
    Bs__SetHeader *h =
        bs__set_header__unpack(NULL, cs->header.len, cs->header.data);
    ProtobufCBinaryData kh = cs->header, ks = cs->signature;
    uint8_t sig[BS_SIG_LEN], *hb;
    size_t hn;
    sealed out;

    cr_assert_not_null(h);
    edit(h, arg);
    hn = bs__set_header__get_packed_size(h);
    hb = malloc(hn + 1);
    cr_assert_not_null(hb);
    cr_assert_eq(bs__set_header__pack(h, hb), hn);
    bs__set_header__free_unpacked(h, NULL);
    sign_ctx(sig, BS_SIG_CONTEXT, hb, hn, sk);
    cs->header = (ProtobufCBinaryData){hn, hb};
    cs->signature = (ProtobufCBinaryData){BS_SIG_LEN, sig};
    out = cs_pack(cs);
    cs->header = kh;
    cs->signature = ks;
    bs__change_set__free_unpacked(cs, NULL);
    free(hb);
    return out;
}

/* The fixed set with `keep` of its changes present (by index) and the
 * given omitted list (as a relay would write it). */
static sealed
with_changes(const sealed *in, const size_t *keep, size_t nkeep,
             const uint32_t *omitted, size_t nomit)
{
    Bs__ChangeSet *cs = cs_unpack(in->p, in->n);
    ProtobufCBinaryData *kc = cs->changes, nc[8];
    size_t kn = cs->n_changes;
    uint32_t *ko = cs->omitted, om[8];
    size_t kon = cs->n_omitted;
    sealed out;

    cr_assert_leq(nkeep, 8);
    cr_assert_leq(nomit, 8);
    for (size_t i = 0; i < nkeep; i++) {
        cr_assert_lt(keep[i], kn);
        nc[i] = kc[keep[i]];
    }
    if (nomit > 0)
        memcpy(om, omitted, nomit * sizeof *om);
    cs->changes = nc;
    cs->n_changes = nkeep;
    cs->omitted = om;
    cs->n_omitted = nomit;
    out = cs_pack(cs);
    cs->changes = kc;
    cs->n_changes = kn;
    cs->omitted = ko;
    cs->n_omitted = kon;
    bs__change_set__free_unpacked(cs, NULL);
    return out;
}

/* ---- round trip ---- */

Test(changeset, seal_decode_verify_round_trip)
{
    sealed s = fixed_set();
    bs_csview *v = decode_ok(s.p, s.n);
    bs_arena a;

    cr_assert_eq(memcmp(v->infobase, infobase, BS_INFOBASE_LEN), 0);
    cr_assert_eq(memcmp(v->origin, pk, BS_PK_LEN), 0);
    cr_assert_eq(memcmp(v->inc, inc, BS_INC_LEN), 0);
    cr_assert_eq(v->first, 1);
    cr_assert_eq(v->last, 3);
    cr_assert_eq(v->count, 3);
    cr_assert_eq(v->created_ms, T0_MS + 5);
    cr_assert_eq(v->has_prev, 0);
    cr_assert_eq(v->nseen, 2);
    cr_assert_eq(memcmp(v->seen, seen, sizeof seen), 0);
    cr_assert_eq(memcmp(v->header_hash, s.hash, BS_HASH_LEN), 0,
                 "header hash differs from the sealer's chain link");
    cr_assert_eq(v->raw.n, s.n);
    cr_assert_eq(memcmp(v->raw.p, s.p, s.n), 0);
    {
        uint8_t h[BS_HASH_LEN];
        crypto_generichash(h, BS_HASH_LEN, v->header.p, v->header.n, NULL, 0);
        cr_assert_eq(memcmp(h, s.hash, BS_HASH_LEN), 0);
    }
    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    cr_assert_eq(bs_changeset_verify(v, pk2), BS_EBADSIG);
    bs_arena_init(&a);
    for (size_t i = 0; i < 3; i++) {
        bs_errbuf err = {{0}};
        bs_change c;
        bs_err rv;

        cr_assert_eq(v->present[i], 1);
        rv = bs_changeset_change(v, i, &a, &c, &err);
        cr_assert_eq(rv, BS_OK, "change %zu: %s", i, bs_errmsg(&err, rv));
        assert_change_eq(&c, &changes[i]);
    }
    bs_arena_fini(&a);
    bs_changeset_free(v);
    free(s.p);
}

Test(changeset, signed_bytes_are_context_header_and_hashes_cover_changes)
{
    sealed s = fixed_set();
    Bs__ChangeSet *cs = cs_unpack(s.p, s.n);
    Bs__SetHeader *h;
    size_t cn = strlen(BS_SIG_CONTEXT) + 1;
    uint8_t *m = malloc(cn + cs->header.len);

    /* S1: the signature is over "branchsync/cs/v1\0" || header. */
    cr_assert_not_null(m);
    memcpy(m, BS_SIG_CONTEXT, cn);
    memcpy(m + cn, cs->header.data, cs->header.len);
    cr_assert_eq(cs->signature.len, BS_SIG_LEN);
    cr_assert_eq(crypto_sign_verify_detached(cs->signature.data, m,
                                             cn + cs->header.len, pk),
                 0);
    free(m);
    /* Each listed hash is BLAKE2b-256 of the change's bytes. */
    h = bs__set_header__unpack(NULL, cs->header.len, cs->header.data);
    cr_assert_not_null(h);
    cr_assert_eq(h->n_change_hashes, 3);
    cr_assert_eq(cs->n_changes, 3);
    for (size_t i = 0; i < 3; i++) {
        uint8_t x[BS_HASH_LEN];
        crypto_generichash(x, BS_HASH_LEN, cs->changes[i].data,
                           cs->changes[i].len, NULL, 0);
        cr_assert_eq(h->change_hashes[i].len, BS_HASH_LEN);
        cr_assert_eq(memcmp(x, h->change_hashes[i].data, BS_HASH_LEN), 0);
    }
    bs__set_header__free_unpacked(h, NULL);
    bs__change_set__free_unpacked(cs, NULL);
    free(s.p);
}

Test(changeset, chained_set_carries_the_previous_header_hash)
{
    sealed a = fixed_set(), b;
    bs_seal s = fixed_seal();
    bs_change more[2];
    bs_csview *v;

    more[0] = changes[0];
    more[1] = changes[1];
    more[0].seq = 4;
    more[1].seq = 5;
    s.has_prev = 1;
    memcpy(s.prev_hash, a.hash, BS_HASH_LEN);
    b = seal_changes(more, 2, &s, sk);
    v = decode_ok(b.p, b.n);
    cr_assert_eq(v->first, 4);
    cr_assert_eq(v->last, 5);
    cr_assert_eq(v->has_prev, 1);
    cr_assert_eq(memcmp(v->prev_hash, a.hash, BS_HASH_LEN), 0);
    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    bs_changeset_free(v);
    free(a.p);
    free(b.p);
}

static void
hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

Test(changeset, tampered_change_bytes_do_not_decode)
{
    sealed s = fixed_set();
    Bs__ChangeSet *cs = cs_unpack(s.p, s.n);
    uint8_t *copy = malloc(cs->changes[1].len);
    ProtobufCBinaryData keep = cs->changes[1];
    sealed t;

    /* One bit of change 2 flipped: its hash is not the signed one. */
    cr_assert_not_null(copy);
    memcpy(copy, keep.data, keep.len);
    copy[keep.len - 1] ^= 0x01;
    cs->changes[1] = (ProtobufCBinaryData){keep.len, copy};
    t = cs_pack(cs);
    cs->changes[1] = keep;
    bs__change_set__free_unpacked(cs, NULL);
    free(copy);
    decode_fails(t.p, t.n, BS_EBADSIG, "change 2 flipped");
    free(t.p);
    free(s.p);
}

/* ---- a relay leaving changes out (INV-4) ---- */

Test(changeset, relay_omitting_changes_still_verifies)
{
    static const size_t keep_02[] = {0, 2};
    static const uint32_t om_1[] = {1}, om_all[] = {0, 1, 2};
    sealed s = fixed_set(), r;
    bs_csview *v;
    bs_arena a;

    r = with_changes(&s, keep_02, 2, om_1, 1);
    v = decode_ok(r.p, r.n);
    cr_assert_eq(v->count, 3);
    cr_assert_eq(v->present[0], 1);
    cr_assert_eq(v->present[1], 0);
    cr_assert_eq(v->present[2], 1);
    cr_assert_eq(v->changes[1].n, 0);
    cr_assert_eq(memcmp(v->header_hash, s.hash, BS_HASH_LEN), 0,
                 "omitting changes altered the signed header");
    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    cr_assert_eq(bs_changeset_verify(v, pk2), BS_EBADSIG);
    bs_arena_init(&a);
    for (size_t i = 0; i < 3; i += 2) {
        bs_errbuf err = {{0}};
        bs_change c;
        bs_err rv = bs_changeset_change(v, i, &a, &c, &err);

        cr_assert_eq(rv, BS_OK, "change %zu: %s", i, bs_errmsg(&err, rv));
        assert_change_eq(&c, &changes[i]);
    }
    bs_arena_fini(&a);
    bs_changeset_free(v);
    free(r.p);
    /* Everything omitted: only the signed hash list travels. */
    r = with_changes(&s, NULL, 0, om_all, 3);
    v = decode_ok(r.p, r.n);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(v->present[i], 0);
    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    bs_changeset_free(v);
    free(r.p);
    free(s.p);
}

Test(changeset, bad_omitted_lists_are_malformed)
{
    static const size_t k1[] = {1}, k02[] = {0, 2}, k012[] = {0, 1, 2},
                        k01[] = {0, 1};
    static const uint32_t out3[] = {3}, big[] = {0xffffffffu}, dup[] = {1, 1},
                          one[] = {1}, desc[] = {2, 0};
    sealed s = fixed_set(), r;

    r = with_changes(&s, k02, 2, out3, 1);
    decode_fails(r.p, r.n, BS_EMALFORMED, "omitted index 3 of 3");
    free(r.p);
    r = with_changes(&s, k02, 2, big, 1);
    decode_fails(r.p, r.n, BS_EMALFORMED, "omitted index 2^32-1");
    free(r.p);
    r = with_changes(&s, k1, 1, dup, 2);
    decode_fails(r.p, r.n, BS_EMALFORMED, "omitted index twice");
    free(r.p);
    r = with_changes(&s, k012, 3, one, 1);
    decode_fails(r.p, r.n, BS_EMALFORMED, "3 changes + 1 omitted");
    free(r.p);
    r = with_changes(&s, k01, 2, NULL, 0);
    decode_fails(r.p, r.n, BS_EMALFORMED, "a change dropped, not listed");
    free(r.p);
    r = with_changes(&s, k1, 1, one, 1);
    decode_fails(r.p, r.n, BS_EMALFORMED, "2 of 3 accounted for");
    free(r.p);
    /* protocol.md D12: strictly increasing, so one encoding per subset. */
    r = with_changes(&s, k1, 1, desc, 2);
    decode_fails(r.p, r.n, BS_EMALFORMED, "omitted {2, 0}");
    free(r.p);
    free(s.p);
}

/* ---- header shape ---- */

static void
set_version(Bs__SetHeader *h, void *arg)
{
    h->version = *(uint32_t *)arg;
}

Test(changeset, unknown_header_version_is_malformed_and_named)
{
    static const uint32_t versions[] = {0, 2, 0xffffffffu};
    sealed s = fixed_set();

    for (size_t i = 0; i < 3; i++) {
        uint32_t ver = versions[i];
        sealed t = with_header(&s, set_version, &ver);
        bs_errbuf err = {{0}};
        bs_csview *v = NULL;
        char want[32];
        bs_err rv = bs_changeset_decode(t.p, t.n, &v, &err);

        snprintf(want, sizeof want, "version %u", ver);
        cr_assert_eq(rv, BS_EMALFORMED, "version %u: %s", ver, bs_strerror(rv));
        cr_assert_null(v);
        cr_assert_not_null(strstr(err.msg, want),
                           "message does not name %s: %s", want, err.msg);
        cr_assert_null(strchr(err.msg, '\n'));
        free(t.p);
    }
    free(s.p);
}

typedef struct range {
    uint64_t first, last;
    int add_prev;
} range;

static void
set_range(Bs__SetHeader *h, void *arg)
{
    range *r = arg;

    h->first_seq = r->first;
    h->last_seq = r->last;
    if (r->add_prev) {
        /* Owned by h from now on (freed with it). */
        free(h->prev_hash.data);
        h->prev_hash.data = calloc(1, BS_HASH_LEN);
        cr_assert_not_null(h->prev_hash.data);
        h->prev_hash.len = BS_HASH_LEN;
    }
}

static void
set_bad_id(Bs__SetHeader *h, void *arg)
{
    (void)arg;
    h->origin.len = BS_PK_LEN - 1; /* the byte stays owned by the header */
}

static void
set_bad_hash(Bs__SetHeader *h, void *arg)
{
    (void)arg;
    h->change_hashes[1].len = BS_HASH_LEN - 1;
}

Test(changeset, inconsistent_headers_are_malformed)
{
    sealed s = fixed_set(), t;
    range r;

    r = (range){2, 4, 0};
    t = with_header(&s, set_range, &r);
    decode_fails(t.p, t.n, BS_EMALFORMED, "seq 2.. without a chain link");
    free(t.p);
    r = (range){1, 3, 1};
    t = with_header(&s, set_range, &r);
    decode_fails(t.p, t.n, BS_EMALFORMED, "seq 1 with a chain link");
    free(t.p);
    r = (range){0, 2, 1};
    t = with_header(&s, set_range, &r);
    decode_fails(t.p, t.n, BS_EMALFORMED, "seq 0");
    free(t.p);
    r = (range){1, 4, 0};
    t = with_header(&s, set_range, &r);
    decode_fails(t.p, t.n, BS_EMALFORMED, "4 seqs, 3 hashes");
    free(t.p);
    r = (range){5, 3, 1};
    t = with_header(&s, set_range, &r);
    decode_fails(t.p, t.n, BS_EMALFORMED, "last before first");
    free(t.p);
    t = with_header(&s, set_bad_id, NULL);
    decode_fails(t.p, t.n, BS_EMALFORMED, "31-byte origin");
    free(t.p);
    t = with_header(&s, set_bad_hash, NULL);
    decode_fails(t.p, t.n, BS_EMALFORMED, "31-byte change hash");
    free(t.p);
    free(s.p);
}

Test(changeset, too_many_streams_in_the_vector_is_malformed)
{
    bs_seal s = fixed_seal();
    bs_pos *many = calloc(BS_SEEN_MAX + 1, sizeof *many);
    sealed t;

    cr_assert_not_null(many);
    for (size_t i = 0; i <= BS_SEEN_MAX; i++) {
        memcpy(many[i].origin, &i, sizeof i);
        many[i].seq = i + 1;
    }
    s.seen = many;
    s.nseen = BS_SEEN_MAX + 1;
    fixed_changes();
    t = seal_changes(changes, 3, &s, sk);
    decode_fails(t.p, t.n, BS_EMALFORMED, "4097 streams");
    free(t.p);
    s.nseen = BS_SEEN_MAX;
    t = seal_changes(changes, 3, &s, sk);
    {
        bs_csview *v = decode_ok(t.p, t.n);
        cr_assert_eq(v->nseen, BS_SEEN_MAX);
        bs_changeset_free(v);
    }
    free(t.p);
    free(many);
}

Test(changeset, change_with_a_wrong_seq_is_malformed)
{
    bs_seal s = fixed_seal();
    bs_change c[2];
    sealed t;
    bs_csview *v;
    bs_arena a;
    bs_errbuf err = {{0}};
    bs_change out;

    /* A correctly signed set whose change 2 says it is seq 9. */
    fixed_changes();
    c[0] = changes[0];
    c[1] = changes[1];
    t = seal_changes(c, 2, &s, sk);
    {
        /* Re-encode change 2 with seq 9, update the hash and re-sign. */
        Bs__ChangeSet *cs = cs_unpack(t.p, t.n);
        Bs__Change *pc =
            bs__change__unpack(NULL, cs->changes[1].len, cs->changes[1].data);
        Bs__SetHeader *h =
            bs__set_header__unpack(NULL, cs->header.len, cs->header.data);
        ProtobufCBinaryData kc = cs->changes[1], kh = cs->header,
                            ks = cs->signature, khash;
        uint8_t cb[512], hb[4096], sig[BS_SIG_LEN], hash[BS_HASH_LEN];
        size_t cn, hn;
        sealed u;

        cr_assert_not_null(pc);
        cr_assert_not_null(h);
        pc->seq = 9;
        cn = bs__change__get_packed_size(pc);
        cr_assert_leq(cn, sizeof cb);
        bs__change__pack(pc, cb);
        crypto_generichash(hash, BS_HASH_LEN, cb, cn, NULL, 0);
        khash = h->change_hashes[1];
        h->change_hashes[1] = (ProtobufCBinaryData){BS_HASH_LEN, hash};
        hn = bs__set_header__get_packed_size(h);
        cr_assert_leq(hn, sizeof hb);
        bs__set_header__pack(h, hb);
        h->change_hashes[1] = khash;
        sign_ctx(sig, BS_SIG_CONTEXT, hb, hn, sk);
        cs->changes[1] = (ProtobufCBinaryData){cn, cb};
        cs->header = (ProtobufCBinaryData){hn, hb};
        cs->signature = (ProtobufCBinaryData){BS_SIG_LEN, sig};
        u = cs_pack(cs);
        cs->changes[1] = kc;
        cs->header = kh;
        cs->signature = ks;
        bs__change_set__free_unpacked(cs, NULL);
        bs__change__free_unpacked(pc, NULL);
        bs__set_header__free_unpacked(h, NULL);
        free(t.p);
        t = u;
    }
    v = decode_ok(t.p, t.n);
    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    bs_arena_init(&a);
    cr_assert_eq(bs_changeset_change(v, 0, &a, &out, &err), BS_OK);
    cr_assert_eq(bs_changeset_change(v, 1, &a, &out, &err), BS_EMALFORMED,
                 "change 2 claims seq 9");
    cr_assert_neq(err.msg[0], '\0');
    bs_arena_fini(&a);
    bs_changeset_free(v);
    free(t.p);
}

/* ---- sizes (P21, G2) ---- */

Test(changeset, oversized_inputs_are_rejected_before_reading)
{
    /* The length alone must refuse: the buffer is far smaller than it
     * claims, so any read past 16 bytes is an ASan error (or a crash). */
    uint8_t *small = calloc(1, 16);
    sealed s = fixed_set();

    cr_assert_not_null(small);
    decode_fails(small, (size_t)BS_SET_MAX_ENCODED + 1, BS_EMALFORMED,
                 "len 8 MiB + 64 KiB + 1");
    decode_fails(small, SIZE_MAX, BS_EMALFORMED, "len SIZE_MAX");
    decode_fails(small, 0, BS_EMALFORMED, "len 0");
    decode_fails(s.p, 0, BS_EMALFORMED, "valid set, len 0");
    free(small);
    free(s.p);
}

Test(changeset, huge_counts_and_length_prefixes_are_rejected)
{
    size_t n = 1000000;
    uint8_t *b = malloc(2 * n + 16), *p;
    uint8_t two_gib[] = {0x0a, 0x80, 0x80, 0x80, 0x80, 0x08, 0x01, 0x02};
    sealed s = fixed_set();

    cr_assert_not_null(b);
    /* 10^6 empty `changes` entries: 2 MB of input, 16 MB of arrays. */
    memcpy(b, s.p, s.n);
    p = b + s.n;
    for (size_t i = 0; i < n - s.n / 2; i++) {
        *p++ = 0x1a;
        *p++ = 0x00;
    }
    decode_fails(b, (size_t)(p - b), BS_EMALFORMED, "10^6 empty changes");
    /* 10^6 omitted indexes, unpacked varints. */
    p = b + s.n;
    for (size_t i = 0; i < n - s.n / 2; i++) {
        *p++ = 0x20;
        *p++ = 0x01;
    }
    decode_fails(b, (size_t)(p - b), BS_EMALFORMED, "10^6 omitted");
    /* A header claiming 2 GiB. */
    decode_fails(two_gib, sizeof two_gib, BS_EMALFORMED, "2 GiB header");
    free(b);
    free(s.p);
}

/* ---- garbage (F1 in miniature) ---- */

static uint64_t rng;

static uint64_t
next_rand(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static uint64_t
test_seed(void)
{
    const char *e = getenv("BS_SEED");

    return e != NULL && *e != '\0' ? strtoull(e, NULL, 0) : 20260101ull;
}

static void
poke(const uint8_t *p, size_t n, uint64_t seed, size_t iter)
{
    bs_errbuf err = {{0}};
    bs_csview *v = NULL;
    bs_envelope e;
    bs_err rv = bs_changeset_decode(p, n, &v, &err);

    cr_assert(rv == BS_OK || rv == BS_EMALFORMED || rv == BS_EBADSIG,
              "input %zu: %s (rerun: BS_SEED=%llu)", iter, bs_strerror(rv),
              (unsigned long long)seed);
    if (rv == BS_OK) {
        bs_arena a;
        bs_err vr = bs_changeset_verify(v, pk);

        cr_assert(vr == BS_OK || vr == BS_EBADSIG);
        bs_arena_init(&a);
        for (size_t i = 0; i < v->count; i++) {
            bs_change c;
            if (v->present[i] &&
                bs_changeset_change(v, i, &a, &c, &err) != BS_OK)
                cr_assert_neq(err.msg[0], '\0');
        }
        bs_arena_fini(&a);
        bs_changeset_free(v);
    } else {
        cr_assert_null(v, "input %zu: *out set on failure (BS_SEED=%llu)", iter,
                       (unsigned long long)seed);
    }
    if (bs_envelope_decode(p, n, &e, &err) == BS_OK)
        bs_envelope_fini(&e);
}

Test(changeset, random_garbage_never_crashes)
{
    uint64_t seed = test_seed();
    sealed s = fixed_set();
    uint8_t *buf = malloc(s.n + 4096);
    size_t decoded = 0;

    cr_assert_not_null(buf);
    rng = seed | 1;
    for (size_t iter = 0; iter < 10000; iter++) {
        size_t n;

        if (iter % 2 == 0) {
            /* Pure noise, 0..2047 bytes. */
            n = next_rand() % 2048;
            for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)next_rand();
        } else {
            /* The valid set with 1..8 random byte edits, maybe cut. */
            size_t k = 1 + next_rand() % 8;
            memcpy(buf, s.p, s.n);
            n = s.n;
            for (size_t j = 0; j < k; j++)
                buf[next_rand() % n] = (uint8_t)next_rand();
            if (next_rand() % 4 == 0)
                n = next_rand() % n;
        }
        poke(buf, n, seed, iter);
        decoded++;
    }
    cr_assert_eq(decoded, 10000);
    free(buf);
    free(s.p);
}

/* ---- the decoded view owns what it shows ---- */

/*
 * Regression (fixed): bs_changeset_decode never fills bs_csview.version
 * (decode_header checks h->version but does not store it), so every decoded
 * view says version 0 although only version 1 decodes.
 */
Test(changeset, decoded_view_reports_its_version)
{
    sealed s = fixed_set();
    bs_csview *v = decode_ok(s.p, s.n);

    cr_assert_eq(v->version, BS_WIRE_VERSION, "version %u", v->version);
    bs_changeset_free(v);
    free(s.p);
}

/*
 * bs_csview borrows `raw` from the caller (changeset.h): no copy of a set
 * of up to 8 MiB is made; callers keep the buffer alive with the view.
 */
Test(changeset, decoded_view_borrows_its_raw_bytes)
{
    sealed s = fixed_set();
    bs_csview *v = decode_ok(s.p, s.n);

    cr_assert_eq(v->raw.p, s.p);
    cr_assert_eq(v->raw.n, s.n);
    bs_changeset_free(v);
    free(s.p);
}

/* ...while the header and change bytes it points at are its own copies
 * (protobuf-c copies bytes fields when it unpacks), not inside raw. */
Test(changeset, decoded_view_owns_its_header_and_change_bytes)
{
    sealed s = fixed_set();
    bs_csview *v = decode_ok(s.p, s.n);
    uintptr_t lo = (uintptr_t)s.p, hi = lo + s.n;

    cr_assert((uintptr_t)v->header.p < lo || (uintptr_t)v->header.p >= hi);
    for (size_t i = 0; i < v->count; i++)
        if (v->present[i])
            cr_assert((uintptr_t)v->changes[i].p < lo ||
                      (uintptr_t)v->changes[i].p >= hi);
    bs_changeset_free(v);
    free(s.p);
}

/* ---- envelope codec ---- */

static bs_envelope
fixed_envelope(void)
{
    bs_envelope e;

    memset(&e, 0, sizeof e);
    e.version = BS_WIRE_VERSION;
    memcpy(e.infobase, infobase, BS_INFOBASE_LEN);
    memcpy(e.hub, pk2, BS_PK_LEN);
    memcpy(e.sender, pk, BS_PK_LEN);
    e.has_receiver = 1;
    memcpy(e.receiver, pk2, BS_PK_LEN);
    e.ack = seen;
    e.nack = 2;
    e.created_ms = T0_MS;
    snprintf(e.sender_name, sizeof e.sender_name, "tallinn");
    e.sender_role = 0;
    memcpy(e.sender_inc, inc, BS_INC_LEN);
    e.message_no = 17;
    return e;
}

Test(changeset, envelope_round_trip)
{
    bs_envelope e = fixed_envelope(), d;
    bs_errbuf err = {{0}};
    uint8_t *p;
    size_t n;
    bs_err rv;

    cr_assert_eq(bs_envelope_encode(&e, &p, &n), BS_OK);
    rv = bs_envelope_decode(p, n, &d, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(d.version, 1);
    cr_assert_eq(memcmp(d.infobase, e.infobase, BS_INFOBASE_LEN), 0);
    cr_assert_eq(memcmp(d.hub, e.hub, BS_PK_LEN), 0);
    cr_assert_eq(memcmp(d.sender, e.sender, BS_PK_LEN), 0);
    cr_assert_eq(d.has_receiver, 1);
    cr_assert_eq(memcmp(d.receiver, e.receiver, BS_PK_LEN), 0);
    cr_assert_eq(d.nack, 2);
    cr_assert_eq(memcmp(d.ack, seen, sizeof seen), 0);
    cr_assert_eq(d.created_ms, T0_MS);
    cr_assert_str_eq(d.sender_name, "tallinn");
    cr_assert_eq(d.sender_role, 0);
    cr_assert_eq(memcmp(d.sender_inc, inc, BS_INC_LEN), 0);
    cr_assert_eq(d.message_no, 17);
    bs_envelope_fini(&d);
    free(p);
    /* No receiver: decodes as such. */
    e.has_receiver = 0;
    cr_assert_eq(bs_envelope_encode(&e, &p, &n), BS_OK);
    cr_assert_eq(bs_envelope_decode(p, n, &d, NULL), BS_OK);
    cr_assert_eq(d.has_receiver, 0);
    bs_envelope_fini(&d);
    free(p);
}

static void
envelope_fails(const Bs__Envelope *m, const char *what, const char *needle)
{
    size_t n = bs__envelope__get_packed_size(m);
    uint8_t *p = malloc(n + 1);
    bs_errbuf err = {{0}};
    bs_envelope d;
    bs_err rv;

    cr_assert_not_null(p);
    bs__envelope__pack(m, p);
    rv = bs_envelope_decode(p, n, &d, &err);
    cr_assert_eq(rv, BS_EMALFORMED, "%s: %s", what, bs_strerror(rv));
    cr_assert_null(d.ack, "%s: vector left allocated", what);
    if (needle != NULL)
        cr_assert_not_null(strstr(err.msg, needle), "%s: %s", what, err.msg);
    free(p);
}

Test(changeset, bad_envelopes_are_malformed)
{
    bs_envelope e = fixed_envelope();
    Bs__Envelope *m;
    uint8_t *p;
    size_t n;
    char name[BS_NODE_NAME_MAX + 2];
    char *kname;
    ProtobufCBinaryData kb;

    cr_assert_eq(bs_envelope_encode(&e, &p, &n), BS_OK);
    m = bs__envelope__unpack(NULL, n, p);
    cr_assert_not_null(m);
    m->version = 2;
    envelope_fails(m, "version 2", "version 2");
    m->version = 1;
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    kname = m->sender_name;
    m->sender_name = name;
    envelope_fails(m, "65-byte sender name", NULL);
    m->sender_name = kname;
    kb = m->sender;
    m->sender.len = BS_PK_LEN - 1;
    envelope_fails(m, "31-byte sender", NULL);
    m->sender = kb;
    kb = m->ack[1]->incarnation;
    m->ack[1]->incarnation.len = 3;
    envelope_fails(m, "3-byte incarnation in the vector", NULL);
    m->ack[1]->incarnation = kb;
    bs__envelope__free_unpacked(m, NULL);
    free(p);
}

/* ---- golden vector: the v1 wire encoding ---- */

/* Computed once from fixed_set() (run with BS_PRINT_GOLDEN=1 to print);
 * the same values are in tests/vectors/changeset_v1.exp.  A change here
 * is a change of the wire format: BS_WIRE_VERSION must change with it. */
#define GOLDEN_HEADER_HASH                                                     \
    "42832fd432dc1583884712abb8ae3040a39922f334475bd3cb225adf5b0deaf5"
#define GOLDEN_SIGNATURE                                                       \
    "31c4ddabace3310837d9c0c15a251526e3a6250aa960400e32a719ebdac2084c"         \
    "685ce0a6a7a5f2623d06cf13fe75145ea29c272ae66560c3dad7fd7413b5100a"
#define GOLDEN_SET_HASH                                                        \
    "4b1bdc2de2140d40ebba6bdf1eaf043d2f588d42a6c4a1c1f95e47543307679a"

static void
read_exp(char *header, char *sig, char *set)
{
    char path[4096], line[512];
    const char *slash = strrchr(__FILE__, '/');
    FILE *f;
    int got = 0;

    cr_assert_not_null(slash);
    snprintf(path, sizeof path, "%.*s/../vectors/changeset_v1.exp",
             (int)(slash - __FILE__), __FILE__);
    f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    while (fgets(line, sizeof line, f) != NULL) {
        char key[64], val[129];
        if (line[0] == '#' || sscanf(line, "%63s %128s", key, val) != 2)
            continue;
        if (strcmp(key, "header_blake2b256") == 0 && ++got)
            memcpy(header, val, 65);
        else if (strcmp(key, "signature") == 0 && ++got)
            memcpy(sig, val, 129);
        else if (strcmp(key, "set_blake2b256") == 0 && ++got)
            memcpy(set, val, 65);
    }
    fclose(f);
    cr_assert_eq(got, 3, "%s: want 3 values, found %d", path, got);
}

Test(changeset, golden_vector_v1)
{
    sealed s = fixed_set();
    Bs__ChangeSet *cs = cs_unpack(s.p, s.n);
    char hh[65], sh[129], seth[65], eh[65], es[129], eset[65];
    uint8_t set_hash[BS_HASH_LEN];

    hex(hh, s.hash, BS_HASH_LEN);
    hex(sh, cs->signature.data, BS_SIG_LEN);
    crypto_generichash(set_hash, BS_HASH_LEN, s.p, s.n, NULL, 0);
    hex(seth, set_hash, BS_HASH_LEN);
    if (getenv("BS_PRINT_GOLDEN") != NULL)
        fprintf(stderr,
                "header_blake2b256 %s\nsignature %s\nset_blake2b256 %s\n", hh,
                sh, seth);
    cr_assert_str_eq(hh, GOLDEN_HEADER_HASH,
                     "header hash (wire encoding "
                     "changed?)");
    cr_assert_str_eq(sh, GOLDEN_SIGNATURE, "signature");
    cr_assert_str_eq(seth, GOLDEN_SET_HASH, "encoded set");
    read_exp(eh, es, eset);
    cr_assert_str_eq(hh, eh, "differs from changeset_v1.exp");
    cr_assert_str_eq(sh, es, "differs from changeset_v1.exp");
    cr_assert_str_eq(seth, eset, "differs from changeset_v1.exp");
    bs__change_set__free_unpacked(cs, NULL);
    free(s.p);
}

/* ---- the fast change decoder agrees with the protobuf-c reference ---- */

static uint64_t drng_state;

static uint64_t
drng(void)
{
    uint64_t z = (drng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Decode change 0 of a one-change view over bytes with both decoders and
 * require the same verdict and, when accepted, the same change. */
static int
same_verdict(const uint8_t *p, size_t n, uint64_t first)
{
    bs_csview v;
    bs_slice ch = {p, n};
    uint8_t present = 1;
    bs_arena a1, a2;
    bs_change c1, c2;
    bs_err r1, r2;

    memset(&v, 0, sizeof v);
    v.first = first;
    v.count = 1;
    v.present = &present;
    v.changes = &ch;
    bs_arena_init(&a1);
    bs_arena_init(&a2);
    bs_errbuf e1 = {{0}}, e2 = {{0}};
    char hex[2 * 256 + 1] = "";

    r1 = bs_changeset_change(&v, 0, &a1, &c1, &e1);
    r2 = bs_changeset_ref_change(&v, 0, &a2, &c2, &e2);
    if ((r1 == BS_OK) != (r2 == BS_OK))
        bs_hex(hex, p, n < 256 ? n : 256);
    cr_assert_eq(r1 == BS_OK, r2 == BS_OK,
                 "decoders disagree (fast %d \"%s\", reference %d \"%s\") on "
                 "%zu bytes %s",
                 r1, e1.msg, r2, e2.msg, n, hex);
    if (r1 == BS_OK) {
        cr_assert_eq(c1.seq, c2.seq);
        cr_assert_eq(c1.hlc, c2.hlc);
        cr_assert_eq(c1.prio, c2.prio);
        cr_assert_eq(c1.deleted, c2.deleted);
        cr_assert_str_eq(c1.coll, c2.coll);
        cr_assert_str_eq(c1.id, c2.id);
        cr_assert_eq(c1.nfields, c2.nfields);
        for (size_t k = 0; k < c1.nfields; k++) {
            cr_assert_str_eq(c1.fields[k].name, c2.fields[k].name);
            cr_assert(bs_value_eq(&c1.fields[k].val, &c2.fields[k].val),
                      "field %s differs", c1.fields[k].name);
        }
    }
    bs_arena_fini(&a1);
    bs_arena_fini(&a2);
    return r1 == BS_OK;
}

static bs_field
random_field(char *name, size_t cap)
{
    static const char *const texts[] = {"",     "Tallinn", "Pärnu ✓",
                                        "a\nb", "\"q\"",   "x"};
    bs_field f;

    memset(&f, 0, sizeof f);
    snprintf(name, cap, "f%u", (unsigned)(drng() % 40));
    f.name = name;
    f.namelen = (uint16_t)strlen(name);
    switch (drng() % 6) {
    case 0:
        f.val.type = BS_VNULL;
        break;
    case 1:
        f.val.type = drng() & 1 ? BS_VTRUE : BS_VFALSE;
        break;
    case 2:
        f.val.type = BS_VINT;
        f.val.i = (int64_t)drng() >> (drng() % 64);
        break;
    case 3:
        f.val.type = BS_VREAL;
        f.val.d = (double)(int64_t)drng() / 1e6;
        break;
    default:
        f.val.type = BS_VTEXT;
        f.val.s = texts[drng() % 6];
        f.val.len = (uint32_t)strlen(f.val.s);
        break;
    }
    return f;
}

Test(changeset, fast_decoder_agrees_with_protobuf_c)
{
    const char *seed_env = getenv("BS_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : 20261127;
    int accepted = 0, refused = 0;

    drng_state = seed;
    for (int round = 0; round < 300; round++) {
        char names[8][16], id[32];
        bs_field f[8];
        size_t nf = drng() % 8, uniq = 0;
        bs_change c;
        bs_csbuild b;

        for (size_t k = 0; k < nf; k++) {
            bs_field x = random_field(names[uniq], sizeof names[uniq]);
            int dup = 0;
            for (size_t j = 0; j < uniq; j++)
                dup |= strcmp(f[j].name, x.name) == 0;
            if (!dup)
                f[uniq++] = x;
        }
        snprintf(id, sizeof id, "id-%llu", (unsigned long long)(drng() % 1000));
        c = (bs_change){1 + drng() % 100000,
                        drng(),
                        (uint32_t)(drng() % 3),
                        drng() % 2 ? "orders" : "_members",
                        id,
                        0,
                        f,
                        uniq};
        if (uniq == 0 && drng() % 2)
            c.deleted = 1;
        bs_csbuild_init(&b);
        cr_assert_eq(bs_csbuild_add(&b, &c), BS_OK);
        /* The encoded change as sealed, then every one-byte mutation of a
         * prefix of it and random truncations. */
        {
            bs_slice enc = b.changes[0];
            uint8_t *m = malloc(enc.n + 1);
            cr_assert(same_verdict(enc.p, enc.n, c.seq),
                      "seed %llu round %d: a sealed change was refused",
                      (unsigned long long)seed, round);
            accepted++;
            for (size_t pos = 0; pos < enc.n && pos < 48; pos++) {
                memcpy(m, enc.p, enc.n);
                m[pos] ^= (uint8_t)(1u << (drng() % 8));
                refused += !same_verdict(m, enc.n, c.seq);
            }
            for (size_t cut = 0; cut < enc.n; cut += 1 + drng() % 5)
                refused += !same_verdict(enc.p, cut, c.seq);
            free(m);
        }
        bs_csbuild_fini(&b);
    }
    /* Pure garbage, too. */
    for (int round = 0; round < 3000; round++) {
        uint8_t g[64];
        size_t n = drng() % sizeof g;
        for (size_t k = 0; k < n; k++)
            g[k] = (uint8_t)drng();
        refused += !same_verdict(g, n, 1);
    }
    cr_assert_gt(refused, 1000);
    cr_assert_eq(accepted, 300);
}

/* ---- checking a stored set in place (before it is sent) ---- */

Test(changeset, stored_check_agrees_with_decode_and_verify)
{
    static const size_t keep_02[] = {0, 2};
    static const uint32_t om_1[] = {1}, om_all[] = {0, 1, 2};
    uint8_t key[BS_STREAM_KEY_LEN], other[BS_STREAM_KEY_LEN];
    sealed s = fixed_set(), r;
    uint64_t last = 0;

    memcpy(key, pk, BS_PK_LEN);
    memcpy(key + BS_PK_LEN, inc, BS_INC_LEN);
    memcpy(other, key, sizeof other);
    other[BS_PK_LEN] ^= 1;
    cr_assert_eq(bs_changeset_stored_check((bs_slice){s.p, s.n}, key, &last),
                 BS_OK);
    cr_assert_eq(last, 3);
    cr_assert_eq(bs_changeset_stored_check((bs_slice){s.p, s.n}, other, &last),
                 BS_ESTORE, "another stream's set");
    /* Omissions, as a relay writes them, still check. */
    r = with_changes(&s, keep_02, 2, om_1, 1);
    cr_assert_eq(bs_changeset_stored_check((bs_slice){r.p, r.n}, key, &last),
                 BS_OK);
    free(r.p);
    r = with_changes(&s, NULL, 0, om_all, 3);
    cr_assert_eq(bs_changeset_stored_check((bs_slice){r.p, r.n}, key, &last),
                 BS_OK);
    free(r.p);
    /* Every single-byte flip that decode and verify refuse, the check
     * refuses too (a flip they accept is a re-encoding it need not see). */
    for (size_t i = 0; i < s.n; i++) {
        bs_csview *v = NULL;
        int refused;
        s.p[i] ^= 0x10;
        refused = bs_changeset_decode(s.p, s.n, &v, NULL) != BS_OK ||
                  bs_changeset_verify(v, pk) != BS_OK;
        bs_changeset_free(v);
        if (refused)
            cr_assert_eq(
                bs_changeset_stored_check((bs_slice){s.p, s.n}, key, &last),
                BS_ESTORE, "byte %zu flipped passes the check", i);
        s.p[i] ^= 0x10;
    }
    free(s.p);
}

/* ---- routes (SetHeader field 13, docs/protocol.md 2.5, D14, C6) ---- */

static const char *const fixed_owners[3] = {"tallinn", "", "tallinn"};
static const char *const fixed_before[3] = {"", "tallinn", "riga"};

/* The fixed set sealed with routes: each change's collection, and the
 * owners after and before above. */
static sealed
fixed_routed_set(void)
{
    bs_seal s = fixed_seal();
    bs_csbuild b;
    bs_sealed *x;
    sealed out;

    s.routes = 1;
    fixed_changes();
    bs_csbuild_init(&b);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(bs_csbuild_add(&b, &changes[i]), BS_OK);
        cr_assert_eq(
            bs_csbuild_route(&b, NULL, fixed_owners[i], fixed_before[i]),
            BS_OK);
    }
    cr_assert_eq(bs_csbuild_seal(&b, &s, sk, &x), BS_OK);
    out.n = bs_sealed_size(x);
    out.p = malloc(out.n);
    cr_assert_not_null(out.p);
    bs_sealed_write(x, out.p);
    memcpy(out.hash, bs_sealed_hash(x), BS_HASH_LEN);
    bs_sealed_free(x);
    bs_csbuild_fini(&b);
    return out;
}

Test(changeset, routes_decode_with_the_set)
{
    sealed s = fixed_routed_set();
    bs_csview *v = decode_ok(s.p, s.n);
    bs_arena a;
    bs_change c;

    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    cr_assert_not_null(v->route_coll);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(v->route_coll[i], "orders");
        cr_assert_str_eq(v->route_owner[i], fixed_owners[i]);
        cr_assert_str_eq(v->route_before[i], fixed_before[i]);
    }
    bs_arena_init(&a);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(bs_changeset_change(v, i, &a, &c, NULL), BS_OK);
    bs_arena_fini(&a);
    bs_changeset_free(v);
    /* The version-1 set has none. */
    free(s.p);
    s = fixed_set();
    v = decode_ok(s.p, s.n);
    cr_assert_null(v->route_coll);
    bs_changeset_free(v);
    free(s.p);
}

/* Header edits on the routes: arg gives n routes of collection coll and
 * owner owner (NULL: leave the routes alone), and owner before
 * edit_before. */
static const char *edit_before = "";

typedef struct route_edit {
    size_t n;
    const char *coll, *owner;
    Bs__Route *r, **rp;
    Bs__Route **keep;
    size_t nkeep;
} route_edit;

static void
set_routes(Bs__SetHeader *h, void *arg)
{
    route_edit *e = arg;

    e->r = calloc(e->n + 1, sizeof *e->r);
    e->rp = calloc(e->n + 1, sizeof *e->rp);
    cr_assert(e->r != NULL && e->rp != NULL);
    for (size_t i = 0; i < e->n; i++) {
        bs__route__init(&e->r[i]);
        e->r[i].collection = (char *)e->coll;
        e->r[i].owner = (char *)e->owner;
        e->r[i].owner_before = (char *)edit_before;
        e->rp[i] = &e->r[i];
    }
    /* packed here; the caller's free_unpacked must not free these */
    e->keep = h->routes;
    e->nkeep = h->n_routes;
    h->routes = e->rp;
    h->n_routes = e->n;
}

static sealed
with_routes(size_t n, const char *coll, const char *owner)
{
    sealed s = fixed_set(), out;
    route_edit e = {n, coll, owner, NULL, NULL, NULL, 0};
    Bs__ChangeSet *cs = cs_unpack(s.p, s.n);
    Bs__SetHeader *h =
        bs__set_header__unpack(NULL, cs->header.len, cs->header.data);
    ProtobufCBinaryData kh = cs->header, ks = cs->signature;
    uint8_t sig[BS_SIG_LEN], *hb;
    size_t hn;

    set_routes(h, &e);
    hn = bs__set_header__get_packed_size(h);
    hb = malloc(hn + 1);
    cr_assert_eq(bs__set_header__pack(h, hb), hn);
    h->routes = e.keep;
    h->n_routes = e.nkeep;
    bs__set_header__free_unpacked(h, NULL);
    sign_ctx(sig, BS_SIG_CONTEXT, hb, hn, sk);
    cs->header = (ProtobufCBinaryData){hn, hb};
    cs->signature = (ProtobufCBinaryData){BS_SIG_LEN, sig};
    out = cs_pack(cs);
    cs->header = kh;
    cs->signature = ks;
    bs__change_set__free_unpacked(cs, NULL);
    free(hb);
    free(e.r);
    free(e.rp);
    free(s.p);
    return out;
}

Test(changeset, bad_routes_are_malformed)
{
    sealed r;
    bs_csview *v;
    bs_arena a;
    bs_change c;
    bs_errbuf err = {{0}};

    r = with_routes(3, "orders", "riga");
    v = decode_ok(r.p, r.n);
    cr_assert_str_eq(v->route_owner[1], "riga");
    bs_changeset_free(v);
    free(r.p);
    r = with_routes(2, "orders", "");
    decode_fails(r.p, r.n, BS_EMALFORMED, "2 routes for 3 changes");
    free(r.p);
    r = with_routes(4, "orders", "");
    decode_fails(r.p, r.n, BS_EMALFORMED, "4 routes for 3 changes");
    free(r.p);
    r = with_routes(3, "orders", "not a name!");
    decode_fails(r.p, r.n, BS_EMALFORMED, "owner that names no node");
    free(r.p);
    r = with_routes(3, "", "riga");
    decode_fails(r.p, r.n, BS_EMALFORMED, "route without a collection");
    free(r.p);
    r = with_routes(3, "bad name", "riga");
    decode_fails(r.p, r.n, BS_EMALFORMED, "bad collection in a route");
    free(r.p);
    /* More routes than a set may have changes: refused before unpacking. */
    r = with_routes(BS_SET_MAX_CHANGES + 1, "o", "");
    decode_fails(r.p, r.n, BS_EMALFORMED, "8193 routes");
    free(r.p);
    /* C6: a present change in another collection than its route. */
    r = with_routes(3, "invoices", "");
    v = decode_ok(r.p, r.n);
    bs_arena_init(&a);
    cr_assert_eq(bs_changeset_change(v, 0, &a, &c, &err), BS_EMALFORMED);
    cr_assert(strstr(err.msg, "route") != NULL, "%s", err.msg);
    bs_arena_fini(&a);
    bs_changeset_free(v);
    free(r.p);
}

/* The golden vector of a set with routes (tests/vectors/
 * changeset_routes.exp, docs/protocol.md §14): the fixed set sealed with
 * routes.  The version-1 vector above still verifies (below). */
Test(changeset, golden_vector_with_routes)
{
    sealed s = fixed_routed_set(), v1 = fixed_set();
    Bs__ChangeSet *cs = cs_unpack(s.p, s.n);
    char hh[65], sh[129], seth[65], path[4096], line[512];
    const char *slash = strrchr(__FILE__, '/');
    uint8_t set_hash[BS_HASH_LEN], *bare;
    size_t nbare;
    bs_csview *v;
    FILE *f;
    int got = 0;

    hex(hh, s.hash, BS_HASH_LEN);
    hex(sh, cs->signature.data, BS_SIG_LEN);
    /* the set as it goes to a node that does not take summaries (2.10):
     * the vector predates them */
    cr_assert_eq(bs_changeset_stored_strip((bs_slice){s.p, s.n}, &bare, &nbare),
                 BS_OK);
    cr_assert_not_null(bare);
    crypto_generichash(set_hash, BS_HASH_LEN, bare, nbare, NULL, 0);
    free(bare);
    hex(seth, set_hash, BS_HASH_LEN);
    if (getenv("BS_PRINT_GOLDEN") != NULL)
        fprintf(stderr,
                "header_blake2b256 %s\nsignature %s\nset_blake2b256 %s\n", hh,
                sh, seth);
    snprintf(path, sizeof path, "%.*s/../vectors/changeset_routes.exp",
             (int)(slash - __FILE__), __FILE__);
    f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    while (fgets(line, sizeof line, f) != NULL) {
        char key[64], val[129];
        if (line[0] == '#' || sscanf(line, "%63s %128s", key, val) != 2)
            continue;
        if (strcmp(key, "header_blake2b256") == 0 && ++got)
            cr_assert_str_eq(hh, val, "header hash differs from the .exp");
        else if (strcmp(key, "signature") == 0 && ++got)
            cr_assert_str_eq(sh, val, "signature differs from the .exp");
        else if (strcmp(key, "set_blake2b256") == 0 && ++got)
            cr_assert_str_eq(seth, val, "set differs from the .exp");
    }
    fclose(f);
    cr_assert_eq(got, 3, "%s: want 3 values, found %d", path, got);
    bs__change_set__free_unpacked(cs, NULL);
    /* Both vectors decode and verify here. */
    v = decode_ok(s.p, s.n);
    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    bs_changeset_free(v);
    v = decode_ok(v1.p, v1.n);
    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    cr_assert_null(v->route_coll);
    bs_changeset_free(v);
    free(s.p);
    free(v1.p);
}

/* Compare key's value in a .exp file under tests/vectors with got. */
static int
exp_value(const char *file, const char *key, const char *got)
{
    const char *slash = strrchr(__FILE__, '/');
    char path[4096], line[8192], k[64], val[4096];
    int found = 0;
    FILE *f;

    snprintf(path, sizeof path, "%.*s/../vectors/%s", (int)(slash - __FILE__),
             __FILE__, file);
    f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#' || sscanf(line, "%63s %4095s", k, val) != 2 ||
            strcmp(k, key) != 0)
            continue;
        cr_assert_str_eq(got, val, "%s: %s differs from the .exp", file, key);
        found = 1;
    }
    fclose(f);
    return found;
}

/*
 * The golden vector of a set summary (tests/vectors/changeset_summary.exp,
 * docs/protocol.md 2.10 and §14), recomputed independently by
 * tests/vectors/changeset_summary.py: the routed set above as sealed (with
 * its summary), and in summary form carrying its first bucket only.
 */
Test(changeset, golden_vector_summary)
{
    sealed s = fixed_routed_set();
    Bs__ChangeSet *cs = cs_unpack(s.p, s.n), form = BS__CHANGE_SET__INIT;
    uint8_t h[BS_HASH_LEN], *fb;
    uint32_t first_bucket = 0;
    char sh[65], sigh[129], seth[65], formh[65];
    size_t fn;
    bs_csview *v;
    int got = 0;

    cr_assert_gt(cs->summary.len, 0);
    crypto_generichash(h, BS_HASH_LEN, cs->summary.data, cs->summary.len, NULL,
                       0);
    hex(sh, h, BS_HASH_LEN);
    hex(sigh, cs->summary_signature.data, BS_SIG_LEN);
    crypto_generichash(h, BS_HASH_LEN, s.p, s.n, NULL, 0);
    hex(seth, h, BS_HASH_LEN);
    /* the summary form with bucket 0 (change 0's route) */
    form.n_changes = 1;
    form.changes = cs->changes;
    form.summary = cs->summary;
    form.summary_signature = cs->summary_signature;
    form.n_buckets = 1;
    form.buckets = &first_bucket;
    {
        /* the vector, as the header holds its field-9 entries */
        Bs__SetHeader *hd =
            bs__set_header__unpack(NULL, cs->header.len, cs->header.data);
        size_t sn = 0;
        cr_assert_not_null(hd);
        for (size_t i = 0; i < hd->n_seen; i++) {
            size_t e = bs__stream_pos__get_packed_size(hd->seen[i]);
            sn += 1 + (e < 128 ? 1 : 2) + e;
        }
        form.seen.data = malloc(sn);
        form.seen.len = 0;
        for (size_t i = 0; i < hd->n_seen; i++) {
            size_t e = bs__stream_pos__get_packed_size(hd->seen[i]);
            form.seen.data[form.seen.len++] = 0x4a;
            form.seen.data[form.seen.len++] = (uint8_t)e; /* (< 128) */
            form.seen.len += bs__stream_pos__pack(
                hd->seen[i], form.seen.data + form.seen.len);
        }
        cr_assert_eq(form.seen.len, sn);
        bs__set_header__free_unpacked(hd, NULL);
    }
    fn = bs__change_set__get_packed_size(&form);
    fb = malloc(fn);
    bs__change_set__pack(&form, fb);
    crypto_generichash(h, BS_HASH_LEN, fb, fn, NULL, 0);
    hex(formh, h, BS_HASH_LEN);
    free(form.seen.data);
    if (getenv("BS_PRINT_GOLDEN") != NULL) {
        char *all = malloc(2 * s.n + 1);
        hex(all, s.p, s.n);
        fprintf(stderr,
                "summary_blake2b256 %s\nsummary_signature %s\n"
                "set_blake2b256 %s\nform_blake2b256 %s\nset_hex %s\n",
                sh, sigh, seth, formh, all);
        free(all);
    }
    got += exp_value("changeset_summary.exp", "summary_blake2b256", sh);
    got += exp_value("changeset_summary.exp", "summary_signature", sigh);
    got += exp_value("changeset_summary.exp", "set_blake2b256", seth);
    got += exp_value("changeset_summary.exp", "form_blake2b256", formh);
    cr_assert_eq(got, 4, "changeset_summary.exp: want 4 values, found %d", got);
    /* both forms decode and verify */
    v = decode_ok(s.p, s.n);
    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    cr_assert_eq(v->summary_form, 0);
    bs_changeset_free(v);
    v = decode_ok(fb, fn);
    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    cr_assert_eq(v->summary_form, 1);
    cr_assert_eq(v->nbuckets, 3);
    cr_assert(v->present[0] && !v->present[1] && !v->present[2]);
    cr_assert_eq(memcmp(v->header_hash, s.hash, BS_HASH_LEN), 0);
    bs_changeset_free(v);
    free(fb);
    bs__change_set__free_unpacked(cs, NULL);
    free(s.p);
}
