/*
 * test_record.c - unit tests of replication/record.c: the stored record
 * codec (round trips, truncated and garbage input), the per-field merge rule
 * (newer wins, deletes, resurrection, tie-breaks by stream key, order
 * independence over random change sets with a printed seed), field sorting
 * and the name validators.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "../../replication/crypto.h"
#include "../../replication/csbuild.h"
#include "../../replication/hlc.h"
#include "../../replication/record.h"

/* ---- stream keys: a test table with keys deliberately in the reverse
 * order of the stream indexes, so a tie-break by index would be caught ---- */

#define NSTREAMS 4
static uint8_t stream_keys[NSTREAMS + 1][48];

static void
init_keys(void)
{
    for (uint32_t s = 1; s <= NSTREAMS; s++) {
        memset(stream_keys[s], 0x20, 48);
        stream_keys[s][0] = (uint8_t)(0xf0 - 0x10 * s); /* 1 > 2 > 3 > 4 */
        stream_keys[s][47] = (uint8_t)s;
    }
}

static const uint8_t *
test_stream_key(void *ctx, uint32_t stream)
{
    static int ready;

    (void)ctx;
    if (!ready) {
        init_keys();
        ready = 1;
    }
    cr_assert(stream >= 1 && stream <= NSTREAMS, "bad stream index %u", stream);
    return stream_keys[stream];
}

static const bs_order ORDER = {0, test_stream_key, NULL};

/* ---- builders ---- */

static bs_version
V(uint64_t hlc, uint64_t seq, uint32_t stream)
{
    return (bs_version){hlc, seq, stream, 0};
}

static bs_field
F_null(const char *name)
{
    bs_field f;

    memset(&f, 0, sizeof f);
    f.name = name;
    f.namelen = (uint16_t)strlen(name);
    f.val.type = BS_VNULL;
    return f;
}

static bs_field
F_bool(const char *name, int b)
{
    bs_field f = F_null(name);

    f.val.type = b ? BS_VTRUE : BS_VFALSE;
    return f;
}

static bs_field
F_int(const char *name, int64_t i)
{
    bs_field f = F_null(name);

    f.val.type = BS_VINT;
    f.val.i = i;
    return f;
}

static bs_field
F_real(const char *name, double d)
{
    bs_field f = F_null(name);

    f.val.type = BS_VREAL;
    f.val.d = d;
    return f;
}

static bs_field
F_textn(const char *name, const char *s, uint32_t len)
{
    bs_field f = F_null(name);

    f.val.type = BS_VTEXT;
    f.val.s = s;
    f.val.len = len;
    return f;
}

static bs_field
F_text(const char *name, const char *s)
{
    return F_textn(name, s, (uint32_t)strlen(s));
}

/* Encode r into a malloc'd buffer of exactly its size. */
static uint8_t *
encode(const bs_record *r, size_t *n)
{
    uint8_t *buf;
    bs_recenc e;
    bs_arena a;

    bs_arena_init(&a);
    cr_assert_eq(bs_record_prepare(r, &a, &e), BS_OK);
    *n = e.size;
    buf = malloc(*n);
    cr_assert_not_null(buf);
    bs_record_encode(r, &e, buf);
    bs_arena_fini(&a);
    return buf;
}

static int
ver_eq(const bs_version *a, const bs_version *b)
{
    return a->hlc == b->hlc && a->seq == b->seq && a->stream == b->stream &&
           a->prio == b->prio;
}

static void
assert_records_equal(const bs_record *a, const bs_record *b)
{
    cr_assert_eq(a->has_alive, b->has_alive);
    cr_assert_eq(a->has_tomb, b->has_tomb);
    if (a->has_alive)
        cr_assert(ver_eq(&a->alive, &b->alive), "alive versions differ");
    if (a->has_tomb)
        cr_assert(ver_eq(&a->tomb, &b->tomb), "tomb versions differ");
    cr_assert_eq(a->nfields, b->nfields);
    for (size_t i = 0; i < a->nfields; i++) {
        const bs_field *x = &a->fields[i], *y = &b->fields[i];

        cr_assert_eq(x->namelen, y->namelen, "field %zu name length", i);
        cr_assert_eq(memcmp(x->name, y->name, x->namelen), 0, "field %zu name",
                     i);
        cr_assert(ver_eq(&x->ver, &y->ver), "field %zu version", i);
        cr_assert(bs_value_eq(&x->val, &y->val), "field %zu (%.*s) value", i,
                  (int)x->namelen, x->name);
    }
}

/* Decode buf and check it matches r and re-encodes to the same bytes. */
static void
assert_round_trip(const bs_record *r)
{
    size_t n, n2;
    uint8_t *buf = encode(r, &n), *buf2;
    bs_record d;
    bs_arena a;

    bs_arena_init(&a);
    cr_assert_eq(bs_record_decode(&d, buf, n, &a), BS_OK);
    assert_records_equal(r, &d);
    buf2 = encode(&d, &n2);
    cr_assert_eq(n, n2);
    cr_assert_eq(memcmp(buf, buf2, n), 0, "re-encoding differs");
    free(buf);
    free(buf2);
    bs_arena_fini(&a);
}

/* ---- codec ---- */

Test(record, round_trip_all_value_types)
{
    static const char utf8[] = "Tallinn \xc3\xa4\xc3\xb6\xc3\xbc \xe6\x97\xa5"
                               "\xe6\x9c\xac \xf0\x9f\x98\x80";
    static const char withnul[] = {'a', '\0', 'b'};
    bs_field f[] = {
        F_bool("b_false", 0),
        F_bool("b_true", 1),
        F_int("i_max", INT64_MAX),
        F_int("i_min", INT64_MIN),
        F_int("i_zero", 0),
        F_null("n"),
        F_real("r_denorm", 4.9406564584124654e-324),
        F_real("r_inf", INFINITY),
        F_real("r_neg_zero", -0.0),
        F_real("r_point_one", 0.1),
        F_textn("t_embedded_nul", withnul, 3),
        F_text("t_empty", ""),
        F_text("t_utf8", utf8),
    };
    bs_record r = {0};

    r.has_alive = 1;
    r.alive = V(100, 5, 1);
    r.has_tomb = 1;
    r.tomb = V(50, 2, 2);
    r.fields = f;
    r.nfields = sizeof f / sizeof f[0];
    for (size_t i = 0; i < r.nfields; i++)
        f[i].ver = V(60 + i % 3, 3 + i % 3, 1 + (uint32_t)(i % 2));
    assert_round_trip(&r);
}

Test(record, round_trip_real_bits_exact)
{
    bs_field f[] = {F_real("x", -0.0)};
    bs_record r = {0}, d;
    size_t n;
    uint8_t *buf;
    bs_arena a;

    r.has_alive = 1;
    r.alive = V(1, 1, 1);
    f[0].ver = r.alive;
    r.fields = f;
    r.nfields = 1;
    buf = encode(&r, &n);
    bs_arena_init(&a);
    cr_assert_eq(bs_record_decode(&d, buf, n, &a), BS_OK);
    cr_assert(signbit(d.fields[0].val.d), "-0.0 lost its sign");
    free(buf);
    bs_arena_fini(&a);
}

Test(record, round_trip_empty_record)
{
    bs_record r = {0}, d;
    size_t n;
    uint8_t *buf = encode(&r, &n);
    bs_arena a;

    bs_arena_init(&a);
    cr_assert_eq(bs_record_decode(&d, buf, n, &a), BS_OK);
    cr_assert_eq(d.has_alive, 0);
    cr_assert_eq(d.has_tomb, 0);
    cr_assert_eq(d.nfields, 0);
    free(buf);
    bs_arena_fini(&a);
    assert_round_trip(&r);
}

Test(record, round_trip_tombstone_only)
{
    bs_record r = {0};

    r.has_tomb = 1;
    r.tomb = V(77, 9, 3);
    assert_round_trip(&r);
    cr_assert_eq(bs_record_live(&r, &ORDER), 0);
}

Test(record, round_trip_1000_fields)
{
    enum { N = 1000 };
    static char names[N][8];
    static char texts[N][16];
    bs_field *f = calloc(N, sizeof *f);
    bs_record r = {0};

    cr_assert_not_null(f);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "f%04d", i);
        snprintf(texts[i], sizeof texts[i], "v\xc3\xa9%d", i * 7);
        switch (i % 4) {
        case 0:
            f[i] = F_text(names[i], texts[i]);
            break;
        case 1:
            f[i] = F_int(names[i], (int64_t)i * -1000003);
            break;
        case 2:
            f[i] = F_real(names[i], i / 3.0);
            break;
        default:
            f[i] = F_bool(names[i], i & 8);
            break;
        }
        /* Many distinct versions: the version table grows large. */
        f[i].ver = V(1000 + (uint64_t)i, (uint64_t)i + 1, 1 + (uint32_t)i % 4);
    }
    r.has_alive = 1;
    r.alive = V(5000, 1001, 2);
    r.fields = f;
    r.nfields = N;
    assert_round_trip(&r);
    free(f);
}

/* A valid encoding with every kind of part in it, for the corruption tests.
 * Returns a malloc'd buffer. */
static uint8_t *
sample_encoding(size_t *n)
{
    static const char txt[] = "h\xc3\xa9llo";
    bs_field f[] = {F_int("a", -5), F_null("b"), F_real("c", 2.5),
                    F_text("d", txt), F_bool("e", 1)};
    bs_record r = {0};

    r.has_alive = 1;
    r.alive = V(10, 4, 1);
    r.has_tomb = 1;
    r.tomb = V(3, 1, 2);
    for (size_t i = 0; i < 5; i++)
        f[i].ver = V(4 + i, 2 + i % 2, 1);
    r.fields = f;
    r.nfields = 5;
    return encode(&r, n);
}

Test(record, decode_rejects_every_truncation)
{
    size_t n;
    uint8_t *good = sample_encoding(&n);
    bs_arena a;

    bs_arena_init(&a);
    for (size_t len = 0; len < n; len++) {
        /* An exact-size copy so ASan catches any read past the end. */
        uint8_t *cut = malloc(len ? len : 1);
        bs_record d;
        bs_err rv;

        cr_assert_not_null(cut);
        memcpy(cut, good, len);
        rv = bs_record_decode(&d, cut, len, &a);
        cr_assert_eq(rv, BS_ESTORE, "truncation to %zu of %zu bytes gave %s",
                     len, n, bs_strerror(rv));
        free(cut);
        bs_arena_reset(&a);
    }
    bs_arena_fini(&a);
    free(good);
}

Test(record, decode_rejects_trailing_bytes)
{
    size_t n;
    uint8_t *good = sample_encoding(&n), *longer = malloc(n + 1);
    bs_record d;
    bs_arena a;

    cr_assert_not_null(longer);
    memcpy(longer, good, n);
    longer[n] = 0;
    bs_arena_init(&a);
    cr_assert_eq(bs_record_decode(&d, longer, n + 1, &a), BS_ESTORE);
    bs_arena_fini(&a);
    free(longer);
    free(good);
}

/* Offsets in the sample encoding (see record.h): format at 0, nver at 1,
 * versions from 3. */
Test(record, decode_rejects_bad_header_fields)
{
    size_t n;
    uint8_t *good = sample_encoding(&n), *b = malloc(n);
    uint16_t nver, v16;
    size_t after_vers;
    bs_record d;
    bs_arena a;

    cr_assert_not_null(b);
    bs_arena_init(&a);
    memcpy(&nver, good + 2, 2); /* after the format and flags bytes */
    after_vers = 4 + (size_t)nver * 24;

    memcpy(b, good, n);
    b[0] = 4; /* unknown format */
    cr_assert_eq(bs_record_decode(&d, b, n, &a), BS_ESTORE);

    memcpy(b, good, n);
    v16 = nver; /* alive index out of range */
    memcpy(b + after_vers, &v16, 2);
    cr_assert_eq(bs_record_decode(&d, b, n, &a), BS_ESTORE);

    memcpy(b, good, n);
    memcpy(b + after_vers + 2, &v16, 2); /* tomb index out of range */
    cr_assert_eq(bs_record_decode(&d, b, n, &a), BS_ESTORE);

    memcpy(b, good, n);
    v16 = 0xfffe; /* more fields than the bytes left can hold */
    memcpy(b + after_vers + 4, &v16, 2);
    cr_assert_eq(bs_record_decode(&d, b, n, &a), BS_ESTORE);

    memcpy(b, good, n);
    v16 = nver; /* first field's version index out of range */
    memcpy(b + after_vers + 6, &v16, 2);
    cr_assert_eq(bs_record_decode(&d, b, n, &a), BS_ESTORE);

    memcpy(b, good, n);
    /* first field: vidx(2) namelen(2) "a" type -> unknown type 9 */
    b[after_vers + 6 + 2 + 2 + 1] = 9;
    cr_assert_eq(bs_record_decode(&d, b, n, &a), BS_ESTORE);

    bs_arena_fini(&a);
    free(b);
    free(good);
}

/* The flags byte: bit 0 live, bit 1 "its own base" (record.h), which
 * bs_record_encode never writes and every reader ignores; other bits are
 * corruption. */
Test(record, the_own_base_flag_decodes_as_the_same_record)
{
    size_t n;
    uint8_t *good = sample_encoding(&n), *b = malloc(n);
    bs_record d, e;
    bs_arena a;
    int live, live2;

    cr_assert_not_null(b);
    bs_arena_init(&a);
    cr_assert_eq(good[1] & BS_RECORD_OWN_BASE, 0, "encode set the flag");
    cr_assert(!bs_record_own_base(good, n));
    memcpy(b, good, n);
    bs_record_set_own_base(b);
    cr_assert(bs_record_own_base(b, n));
    cr_assert_eq(bs_record_decode(&d, good, n, &a), BS_OK);
    cr_assert_eq(bs_record_decode(&e, b, n, &a), BS_OK);
    cr_assert_eq(d.live, e.live);
    cr_assert_eq(d.nfields, e.nfields);
    cr_assert_eq(bs_record_peek_live(good, n, &live), BS_OK);
    cr_assert_eq(bs_record_peek_live(b, n, &live2), BS_OK);
    cr_assert_eq(live, live2);
    bs_record_clear_own_base(b);
    cr_assert_eq(memcmp(b, good, n), 0);
    b[1] |= 0x04; /* an unknown flag */
    cr_assert_eq(bs_record_decode(&e, b, n, &a), BS_ESTORE);
    cr_assert_eq(bs_record_peek_live(b, n, &live), BS_ESTORE);
    cr_assert(!bs_record_own_base(b, 1));
    bs_arena_fini(&a);
    free(b);
    free(good);
}

/* xorshift64*: a small deterministic generator for the randomized tests. */
static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

Test(record, decode_survives_garbage_and_bit_flips)
{
    const uint64_t seed = 0x5eed0001;
    uint64_t s = seed;
    size_t n;
    uint8_t *good = sample_encoding(&n);
    bs_arena a;

    bs_arena_init(&a);
    /* Every single-bit flip of a valid encoding. */
    for (size_t bit = 0; bit < n * 8; bit++) {
        uint8_t *b = malloc(n);
        bs_record d;
        bs_err rv;

        cr_assert_not_null(b);
        memcpy(b, good, n);
        b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        rv = bs_record_decode(&d, b, n, &a);
        cr_assert(rv == BS_OK || rv == BS_ESTORE, "flip of bit %zu gave %s",
                  bit, bs_strerror(rv));
        if (rv == BS_OK) { /* whatever decodes must encode again */
            bs_recenc e;

            cr_assert_eq(bs_record_prepare(&d, &a, &e), BS_OK);
            cr_assert_leq(e.size, n);
        }
        free(b);
        bs_arena_reset(&a);
    }
    /* Random buffers, some starting with the right format byte. */
    for (int i = 0; i < 3000; i++) {
        size_t len = (size_t)(rnd(&s) % 200);
        uint8_t *b = malloc(len ? len : 1);
        bs_record d;
        bs_err rv;

        cr_assert_not_null(b);
        for (size_t k = 0; k < len; k++)
            b[k] = (uint8_t)rnd(&s);
        if (len > 0 && i % 2 == 0)
            b[0] = 1;
        rv = bs_record_decode(&d, b, len, &a);
        cr_assert(rv == BS_OK || rv == BS_ESTORE,
                  "seed %#llx buffer %d gave %s", (unsigned long long)seed, i,
                  bs_strerror(rv));
        free(b);
        bs_arena_reset(&a);
    }
    bs_arena_fini(&a);
    free(good);
}

/* ---- versions and liveness ---- */

Test(record, version_cmp_orders_by_hlc_then_stream_key_then_seq)
{
    bs_version a = V(10, 1, 1), b = V(11, 1, 1);

    cr_assert_lt(bs_version_cmp(&a, &b, &ORDER), 0);
    cr_assert_gt(bs_version_cmp(&b, &a, &ORDER), 0);
    cr_assert_eq(bs_version_cmp(&a, &a, &ORDER), 0);
    /* Same hlc: stream 1's key sorts above stream 2's. */
    a = V(10, 1, 2);
    b = V(10, 1, 1);
    cr_assert_lt(bs_version_cmp(&a, &b, &ORDER), 0);
    cr_assert_gt(bs_version_cmp(&b, &a, &ORDER), 0);
    /* The stream key outranks the seq. */
    a = V(10, 99, 2);
    cr_assert_lt(bs_version_cmp(&a, &b, &ORDER), 0);
    /* Same hlc and stream: seq decides. */
    a = V(10, 1, 3);
    b = V(10, 2, 3);
    cr_assert_lt(bs_version_cmp(&a, &b, &ORDER), 0);
}

Test(record, version_cmp_priority_policy_compares_prio_first)
{
    bs_order prio = ORDER;
    bs_version hub = {5, 1, 1, 2}, branch = {50, 1, 2, 1};

    prio.use_prio = 1;
    cr_assert_gt(bs_version_cmp(&hub, &branch, &prio), 0);
    cr_assert_lt(bs_version_cmp(&hub, &branch, &ORDER), 0,
                 "without the priority policy the later hlc wins");
}

Test(record, live_only_when_upsert_newer_than_delete)
{
    bs_record r = {0};

    cr_assert_eq(bs_record_live(&r, &ORDER), 0);
    r.has_alive = 1;
    r.alive = V(5, 1, 1);
    cr_assert_eq(bs_record_live(&r, &ORDER), 1);
    r.has_tomb = 1;
    r.tomb = V(6, 2, 1);
    cr_assert_eq(bs_record_live(&r, &ORDER), 0);
    r.tomb = V(4, 2, 1);
    cr_assert_eq(bs_record_live(&r, &ORDER), 1);
}

/* ---- merge ---- */

static const bs_field *
find(const bs_record *r, const char *name)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (r->fields[i].namelen == strlen(name) &&
            memcmp(r->fields[i].name, name, r->fields[i].namelen) == 0)
            return &r->fields[i];
    return NULL;
}

static int
merge_up(bs_record *r, bs_field *f, size_t n, bs_version v, bs_arena *a)
{
    int changed = -1;

    cr_assert_eq(bs_record_merge(r, 0, f, n, &v, &ORDER, a, &changed), BS_OK);
    return changed;
}

static int
merge_del(bs_record *r, bs_version v, bs_arena *a)
{
    int changed = -1;

    cr_assert_eq(bs_record_merge(r, 1, NULL, 0, &v, &ORDER, a, &changed),
                 BS_OK);
    return changed;
}

Test(record, merge_newer_version_wins_per_field)
{
    bs_field u1[] = {F_int("a", 1), F_int("b", 1)};
    bs_field u2[] = {F_int("a", 2)};
    bs_record r = {0};
    bs_arena a;

    bs_arena_init(&a);
    cr_assert_eq(merge_up(&r, u1, 2, V(10, 1, 1), &a), 1);
    cr_assert_eq(merge_up(&r, u2, 1, V(20, 2, 1), &a), 1);
    cr_assert(bs_record_live(&r, &ORDER));
    cr_assert_eq(r.nfields, 2);
    cr_assert_eq(find(&r, "a")->val.i, 2);
    cr_assert_eq(find(&r, "a")->ver.hlc, 20);
    cr_assert_eq(find(&r, "b")->val.i, 1);
    cr_assert_eq(find(&r, "b")->ver.hlc, 10);
    cr_assert_eq(r.alive.hlc, 20);
    bs_arena_fini(&a);
}

Test(record, merge_older_version_loses)
{
    bs_field u2[] = {F_int("a", 2)};
    bs_field u1[] = {F_int("a", 1)};
    bs_record r = {0};
    size_t n1, n2;
    uint8_t *before, *after;
    bs_arena a;

    bs_arena_init(&a);
    cr_assert_eq(merge_up(&r, u2, 1, V(20, 2, 1), &a), 1);
    before = encode(&r, &n1);
    cr_assert_eq(merge_up(&r, u1, 1, V(10, 1, 1), &a), 0,
                 "an older upsert reported a change");
    after = encode(&r, &n2);
    cr_assert_eq(find(&r, "a")->val.i, 2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(before, after, n1), 0);
    free(before);
    free(after);
    bs_arena_fini(&a);
}

Test(record, merge_same_change_twice_is_noop)
{
    bs_field u[] = {F_int("a", 1), F_text("b", "x")};
    bs_record r = {0};
    bs_arena a;

    bs_arena_init(&a);
    cr_assert_eq(merge_up(&r, u, 2, V(10, 1, 1), &a), 1);
    cr_assert_eq(merge_up(&r, u, 2, V(10, 1, 1), &a), 0);
    cr_assert_eq(merge_del(&r, V(11, 2, 1), &a), 1);
    cr_assert_eq(merge_del(&r, V(11, 2, 1), &a), 0);
    bs_arena_fini(&a);
}

Test(record, merge_concurrent_edits_of_different_fields_both_survive)
{
    bs_field base[] = {F_text("city", "Tartu"), F_text("name", "Ann")};
    bs_field x[] = {F_text("name", "Anna")};
    bs_field y[] = {F_text("city", "Tallinn")};
    bs_record r1 = {0}, r2 = {0};
    size_t n1, n2;
    uint8_t *e1, *e2;
    bs_arena a;

    bs_arena_init(&a);
    merge_up(&r1, base, 2, V(1, 1, 1), &a);
    merge_up(&r2, base, 2, V(1, 1, 1), &a);
    /* Two nodes edit at the same hlc, neither having seen the other. */
    merge_up(&r1, x, 1, V(5, 2, 1), &a);
    merge_up(&r1, y, 1, V(5, 1, 2), &a);
    merge_up(&r2, y, 1, V(5, 1, 2), &a);
    merge_up(&r2, x, 1, V(5, 2, 1), &a);
    cr_assert_eq(find(&r1, "name")->val.len, 4);
    cr_assert_eq(memcmp(find(&r1, "name")->val.s, "Anna", 4), 0);
    cr_assert_eq(memcmp(find(&r1, "city")->val.s, "Tallinn", 7), 0);
    e1 = encode(&r1, &n1);
    e2 = encode(&r2, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(e1, e2, n1), 0, "order of arrival changed the result");
    free(e1);
    free(e2);
    bs_arena_fini(&a);
}

Test(record, merge_delete_then_older_upsert_stays_deleted)
{
    bs_field u[] = {F_int("a", 1)};
    bs_record r = {0};
    bs_arena a;

    bs_arena_init(&a);
    cr_assert_eq(merge_del(&r, V(10, 1, 1), &a), 1);
    /* Only `alive` moves (so arrival order does not matter); no field. */
    cr_assert_eq(merge_up(&r, u, 1, V(5, 1, 2), &a), 1);
    cr_assert_eq(bs_record_live(&r, &ORDER), 0);
    cr_assert_eq(r.nfields, 0);
    bs_arena_fini(&a);
}

Test(record, merge_upsert_then_newer_delete_hides_everything)
{
    bs_field u[] = {F_int("a", 1), F_int("b", 2)};
    bs_record r = {0};
    bs_arena a;

    bs_arena_init(&a);
    merge_up(&r, u, 2, V(5, 1, 1), &a);
    cr_assert_eq(merge_del(&r, V(10, 2, 1), &a), 1);
    cr_assert_eq(bs_record_live(&r, &ORDER), 0);
    cr_assert_eq(r.nfields, 0, "fields older than the delete were kept");
    bs_arena_fini(&a);
}

Test(record, merge_newer_upsert_after_delete_resurrects_only_new_fields)
{
    bs_field u1[] = {F_int("a", 1), F_int("b", 2)};
    bs_field u3[] = {F_int("c", 3)};
    bs_record r = {0};
    bs_arena a;

    bs_arena_init(&a);
    merge_up(&r, u1, 2, V(1, 1, 1), &a);
    merge_del(&r, V(2, 2, 1), &a);
    cr_assert_eq(merge_up(&r, u3, 1, V(3, 3, 1), &a), 1);
    cr_assert_eq(bs_record_live(&r, &ORDER), 1);
    cr_assert_eq(r.nfields, 1);
    cr_assert_not_null(find(&r, "c"));
    cr_assert_null(find(&r, "a"));
    cr_assert_null(find(&r, "b"));
    bs_arena_fini(&a);
}

Test(record, merge_delete_keeps_fields_newer_than_it)
{
    bs_field u1[] = {F_int("a", 1)};
    bs_field u3[] = {F_int("b", 3)};
    bs_record r = {0};
    bs_arena a;

    bs_arena_init(&a);
    merge_up(&r, u1, 1, V(1, 1, 1), &a);
    merge_up(&r, u3, 1, V(3, 1, 2), &a);
    /* A delete stamped between the two arrives last. */
    cr_assert_eq(merge_del(&r, V(2, 2, 1), &a), 1);
    cr_assert_eq(bs_record_live(&r, &ORDER), 1);
    cr_assert_eq(r.nfields, 1);
    cr_assert_not_null(find(&r, "b"));
    bs_arena_fini(&a);
}

Test(record, merge_tie_broken_by_stream_key_not_index)
{
    bs_field from1[] = {F_text("a", "one")};
    bs_field from3[] = {F_text("a", "three")};
    bs_record r1 = {0}, r2 = {0};
    bs_arena a;

    bs_arena_init(&a);
    /* Same hlc, different streams: stream 1 has the greatest key. */
    merge_up(&r1, from1, 1, V(7, 1, 1), &a);
    merge_up(&r1, from3, 1, V(7, 1, 3), &a);
    merge_up(&r2, from3, 1, V(7, 1, 3), &a);
    merge_up(&r2, from1, 1, V(7, 1, 1), &a);
    cr_assert_eq(find(&r1, "a")->val.len, 3);
    cr_assert_eq(memcmp(find(&r1, "a")->val.s, "one", 3), 0);
    cr_assert_eq(find(&r2, "a")->val.len, 3);
    cr_assert_eq(memcmp(find(&r2, "a")->val.s, "one", 3), 0);
    cr_assert_eq(find(&r1, "a")->ver.stream, 1);
    bs_arena_fini(&a);
}

Test(record, merge_priority_policy_lets_higher_prio_win)
{
    bs_order prio = ORDER;
    bs_field hub[] = {F_text("price", "10")};
    bs_field branch[] = {F_text("price", "12")};
    bs_version vh = {5, 1, 1, 3}, vb = {9, 1, 2, 1};
    bs_record r = {0};
    bs_arena a;
    int ch;

    prio.use_prio = 1;
    bs_arena_init(&a);
    cr_assert_eq(bs_record_merge(&r, 0, hub, 1, &vh, &prio, &a, &ch), BS_OK);
    cr_assert_eq(bs_record_merge(&r, 0, branch, 1, &vb, &prio, &a, &ch), BS_OK);
    cr_assert_eq(memcmp(find(&r, "price")->val.s, "10", 2), 0);
    bs_arena_fini(&a);
}

/* Issue 8 item 1: two offices' writes merged past what one write holds (the
 * old 4,096-field cap refused such a merge, and the origin's later sets
 * waited behind it for good).  A merge never refuses; a record of 65,535
 * fields or more is stored in the wide format (u32 counts) and decodes to
 * what was encoded. */
Test(record, merge_never_refuses_and_wide_records_round_trip)
{
    enum { N = 70000, W = 1000 };
    char(*names)[8] = calloc(N, 8);
    bs_field *f = calloc(N, sizeof *f);
    bs_record r = {0}, d;
    bs_arena a;
    int ch;

    cr_assert(names != NULL && f != NULL);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 8, "f%05d", i);
        f[i] = F_int(names[i], i);
    }
    bs_arena_init(&a);
    /* Writes of W fields from N / W origins, each its own version. */
    for (int w = 0; w < N / W; w++) {
        bs_version v = V(10 + (uint64_t)w, 1, 1 + (uint32_t)(w % NSTREAMS));

        cr_assert_eq(bs_record_merge(&r, 0, f + w * W, W, &v, &ORDER, &a, &ch),
                     BS_OK, "write %d of %d fields", w, W);
        cr_assert_eq(ch, 1);
        if (r.nfields == 65000 || r.nfields == N) {
            size_t n;
            uint8_t *buf = encode(&r, &n);

            cr_assert_eq(buf[0], r.nfields < 0xffff ? 2 : 3);
            cr_assert_eq(bs_record_decode(&d, buf, n, &a), BS_OK);
            cr_assert_eq(d.nfields, r.nfields);
            for (size_t i = 0; i < d.nfields; i += 997)
                cr_assert(d.fields[i].namelen == r.fields[i].namelen &&
                          memcmp(d.fields[i].name, r.fields[i].name,
                                 d.fields[i].namelen) == 0 &&
                          ver_eq(&d.fields[i].ver, &r.fields[i].ver) &&
                          d.fields[i].val.i == r.fields[i].val.i);
            cr_assert(ver_eq(&d.alive, &r.alive));
            free(buf);
        }
    }
    cr_assert_eq(r.nfields, N);
    cr_assert_eq(bs_record_find(&r, "f69999", 6)->val.i, 69999);
    cr_assert_null(bs_record_find(&r, "f70000", 6));
    bs_arena_fini(&a);
    free(f);
    free(names);
}

/* The narrow format ends where a count or an index would be 0xffff. */
Test(record, format_width_boundary)
{
    static const size_t sizes[] = {0xfffe, 0xffff, 0x10000};
    bs_arena a;

    bs_arena_init(&a);
    for (size_t k = 0; k < 3; k++) {
        size_t nf = sizes[k], n;
        bs_field *f = bs_arena_alloc(&a, nf * sizeof *f);
        char *names = bs_arena_alloc(&a, nf * 8);
        bs_record r = {0}, d;
        uint8_t *buf;

        cr_assert(f != NULL && names != NULL);
        r.has_alive = r.live = 1;
        r.alive = V(1, 1, 1);
        for (size_t i = 0; i < nf; i++) {
            snprintf(names + i * 8, 8, "f%05x", (unsigned)(i & 0xfffff));
            f[i] = F_int(names + i * 8, (int64_t)i);
            f[i].ver = r.alive;
        }
        r.fields = f;
        r.nfields = nf;
        buf = encode(&r, &n);
        cr_assert_eq(buf[0], nf < 0xffff ? 2 : 3, "%zu fields", nf);
        cr_assert_eq(bs_record_decode(&d, buf, n, &a), BS_OK);
        cr_assert_eq(d.nfields, nf);
        cr_assert_eq(d.fields[nf - 1].val.i, (int64_t)nf - 1);
        free(buf);
    }
    bs_arena_fini(&a);
}

/* ---- merge order independence ---- */

#define NCH     40
#define NFNAMES 6
static const char *const fnames[NFNAMES] = {"a", "b", "c", "d", "e", "f"};
static const char *const tvals[] = {"", "x", "y", "\xc3\xa9"};

typedef struct change {
    int deleted;
    bs_version v;
    size_t n;
    bs_field f[NFNAMES];
} change;

/* Random changes with unique versions: per stream a rising seq, hlc from a
 * small range so ties are common. */
static void
gen_changes(uint64_t *s, change *ch, size_t n, int with_deletes)
{
    uint64_t seq[NSTREAMS + 1] = {0};

    for (size_t i = 0; i < n; i++) {
        uint32_t st = 1 + (uint32_t)(rnd(s) % NSTREAMS);

        memset(&ch[i], 0, sizeof ch[i]);
        ch[i].v = V(1 + rnd(s) % 12, ++seq[st], st);
        ch[i].deleted = with_deletes && rnd(s) % 4 == 0;
        if (ch[i].deleted)
            continue;
        for (size_t k = 0; k < NFNAMES; k++) {
            if (rnd(s) % 2)
                continue;
            switch (rnd(s) % 4) {
            case 0:
                ch[i].f[ch[i].n] = F_int(fnames[k], (int64_t)(rnd(s) % 5));
                break;
            case 1:
                ch[i].f[ch[i].n] = F_text(fnames[k], tvals[rnd(s) % 4]);
                break;
            case 2:
                ch[i].f[ch[i].n] = F_bool(fnames[k], (int)(rnd(s) % 2));
                break;
            default:
                ch[i].f[ch[i].n] = F_null(fnames[k]);
                break;
            }
            ch[i].n++;
        }
    }
}

static void
shuffle(uint64_t *s, size_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rnd(s) % (i + 1)), t = p[i];

        p[i] = p[j];
        p[j] = t;
    }
}

static void
apply_in_order(bs_record *r, const change *ch, const size_t *order, size_t n,
               bs_arena *a)
{
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i++) {
        const change *c = &ch[order[i]];
        int changed;
        bs_err rv = bs_record_merge(r, c->deleted, c->f, c->n, &c->v, &ORDER, a,
                                    &changed);

        cr_assert_eq(rv, BS_OK);
    }
}

/* The visible state: liveness and the fields (name, value, version). */
static int
same_visible(const bs_record *x, const bs_record *y)
{
    int lx = bs_record_live(x, &ORDER), ly = bs_record_live(y, &ORDER);

    if (lx != ly)
        return 0;
    if (!lx)
        return 1;
    if (x->nfields != y->nfields)
        return 0;
    for (size_t i = 0; i < x->nfields; i++)
        if (x->fields[i].namelen != y->fields[i].namelen ||
            memcmp(x->fields[i].name, y->fields[i].name,
                   x->fields[i].namelen) != 0 ||
            !bs_value_eq(&x->fields[i].val, &y->fields[i].val) ||
            !ver_eq(&x->fields[i].ver, &y->fields[i].ver))
            return 0;
    return 1;
}

/* Runs `rounds` seeds; compares encodings (bytes) or visible state. */
static void
check_order_independence(uint64_t seed0, int rounds, int with_deletes,
                         int bytes)
{
    for (int round = 0; round < rounds; round++) {
        uint64_t seed = seed0 + (uint64_t)round, s = seed * 2654435761u + 1;
        change ch[NCH];
        size_t p1[NCH], p2[NCH], n1, n2;
        bs_record r1, r2;
        uint8_t *e1, *e2;
        bs_arena a;

        gen_changes(&s, ch, NCH, with_deletes);
        shuffle(&s, p1, NCH);
        shuffle(&s, p2, NCH);
        bs_arena_init(&a);
        apply_in_order(&r1, ch, p1, NCH, &a);
        apply_in_order(&r2, ch, p2, NCH, &a);
        if (bytes) {
            e1 = encode(&r1, &n1);
            e2 = encode(&r2, &n2);
            cr_assert(n1 == n2 && memcmp(e1, e2, n1) == 0,
                      "seed %llu: two arrival orders encode differently "
                      "(live %d/%d, alive %d/%d, fields %zu/%zu)",
                      (unsigned long long)seed, bs_record_live(&r1, &ORDER),
                      bs_record_live(&r2, &ORDER), r1.has_alive, r2.has_alive,
                      r1.nfields, r2.nfields);
            free(e1);
            free(e2);
        } else {
            cr_assert(same_visible(&r1, &r2),
                      "seed %llu: two arrival orders give different data",
                      (unsigned long long)seed);
        }
        bs_arena_fini(&a);
    }
}

Test(record, merge_order_independent_upserts)
{
    check_order_independence(1000, 300, 0, 1);
}

Test(record, merge_order_independent_visible_state_with_deletes)
{
    check_order_independence(2000, 300, 1, 0);
}

/*
 * Regression (fixed): bs_record_merge is not order independent in its stored
 * bytes when upserts are older than a delete.  An upsert that arrives after a
 * newer delete is dropped before `alive` is updated, while one that arrived
 * before the delete stays in `alive` (merge_delete never touches it).  So
 * upsert@t1 then delete@t2 leaves has_alive=1, alive=t1, but delete@t2 then
 * upsert@t1 leaves has_alive=0; and u@t1, u@t1.5, d@t2 leaves alive=t1.5
 * while u@t1, d@t2, u@t1.5 leaves alive=t1.  The records are dead and hold
 * the same (no) fields, so the visible state and the digest agree (see
 * merge_order_independent_visible_state_with_deletes), but the encodings
 * differ, against record.h ("equal records encode equally"; "the result does
 * not depend on the order changes arrive in"), and local.c next_prio() reads
 * alive.prio, so the next write's prio can differ between nodes.  Seed 3002
 * of this test shows the alive-version case; the test below is the minimal
 * has_alive case.
 */
Test(record, merge_order_independent_encoding_with_deletes)
{
    check_order_independence(3000, 300, 1, 1);
}

/* Regression (fixed): minimal case of the above; see the comment there. */
Test(record, merge_upsert_and_older_delete_encode_equally)
{
    bs_field u[] = {F_int("a", 1)};
    bs_record r1 = {0}, r2 = {0};
    size_t n1, n2;
    uint8_t *e1, *e2;
    bs_arena a;

    bs_arena_init(&a);
    merge_up(&r1, u, 1, V(1, 1, 1), &a); /* upsert@1, then delete@2 */
    merge_del(&r1, V(2, 1, 2), &a);
    merge_del(&r2, V(2, 1, 2), &a); /* delete@2, then upsert@1 */
    merge_up(&r2, u, 1, V(1, 1, 1), &a);
    e1 = encode(&r1, &n1);
    e2 = encode(&r2, &n2);
    cr_assert_eq(r1.has_alive, r2.has_alive);
    cr_assert(n1 == n2 && memcmp(e1, e2, n1) == 0);
    free(e1);
    free(e2);
    bs_arena_fini(&a);
}

/* ---- sorting and names ---- */

Test(record, fields_sort_orders_bytewise)
{
    bs_field f[] = {F_int("b", 0), F_int("aa", 0), F_int("\xc3\xa9", 0),
                    F_int("B", 0), F_int("a", 0),  F_int("_x", 0)};
    const char *want[] = {"B", "_x", "a", "aa", "b", "\xc3\xa9"};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_fields_sort(f, 6, &err), BS_OK);
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq(f[i].name, want[i], "position %zu", i);
}

Test(record, fields_sort_rejects_duplicates)
{
    bs_field f[] = {F_int("b", 1), F_int("a", 2), F_int("b", 3)};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_fields_sort(f, 3, &err), BS_EINVAL);
    cr_assert(strstr(err.msg, "\"b\"") != NULL, "message \"%s\" lacks the name",
              err.msg);
}

/* Fields that arrive sorted (as writers send them) are left as they are;
 * a duplicate among sorted fields is still found. */
Test(record, fields_sort_keeps_sorted_fields_and_finds_their_duplicates)
{
    bs_field f[] = {F_int("a", 1), F_int("b", 2), F_int("c", 3)};
    bs_field d[] = {F_int("a", 1), F_int("b", 2), F_int("b", 3)};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_fields_sort(f, 3, &err), BS_OK);
    cr_assert(strcmp(f[0].name, "a") == 0 && f[0].val.i == 1 &&
              strcmp(f[2].name, "c") == 0 && f[2].val.i == 3);
    cr_assert_eq(bs_fields_sort(d, 3, &err), BS_EINVAL);
    cr_assert(strstr(err.msg, "\"b\"") != NULL, "%s", err.msg);
}

Test(record, fields_sort_accepts_empty_and_single)
{
    bs_field f[] = {F_int("only", 1)};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_fields_sort(f, 0, &err), BS_OK);
    cr_assert_eq(bs_fields_sort(f, 1, &err), BS_OK);
}

static char *
repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    cr_assert_not_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

Test(record, collection_valid_table)
{
    static const struct {
        const char *s;
        int user, system;
    } t[] = {
        {"customers", 1, 1},   {"a", 1, 1},     {"0abc", 1, 1},
        {"a.b-c_d", 1, 1},     {"A9", 1, 1},    {"", 0, 0},
        {"_members", 0, 1},    {"_", 0, 1},     {"-a", 0, 0},
        {".a", 0, 0},          {"a b", 0, 0},   {"a/b", 0, 0},
        {"a\x01", 0, 0},       {"a\n", 0, 0},   {"\xc3\xa9", 0, 0},
        {"caf\xc3\xa9", 0, 0}, {"a\x7f", 0, 0}, {"a:b", 0, 0},
    };
    char *c64 = repeat('c', 64), *c65 = repeat('c', 65);

    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        cr_assert_eq(bs_collection_valid(t[i].s, 0), t[i].user, "\"%s\" (user)",
                     t[i].s);
        cr_assert_eq(bs_collection_valid(t[i].s, 1), t[i].system,
                     "\"%s\" (allow_system)", t[i].s);
    }
    cr_assert_eq(bs_collection_valid(c64, 0), 1, "64 bytes is the limit");
    cr_assert_eq(bs_collection_valid(c65, 0), 0, "65 bytes is too long");
    cr_assert_eq(bs_collection_valid(c65, 1), 0);
    c64[0] = '_';
    cr_assert_eq(bs_collection_valid(c64, 0), 0);
    cr_assert_eq(bs_collection_valid(c64, 1), 1);
    free(c64);
    free(c65);
}

Test(record, id_valid_table)
{
    static const struct {
        const char *s;
        int ok;
    } t[] = {
        {"x", 1},
        {"C-0001", 1},
        {"a b", 1},
        {"a/b:c", 1},
        {"id", 1},
        {"_x", 1},
        {"h\xc3\xa9llo", 1},
        {"\xe6\x97\xa5\xe6\x9c\xac", 1},
        {"\xf0\x9f\x98\x80", 1},
        {"\xf4\x8f\xbf\xbf", 1}, /* U+10FFFF */
        {"", 0},
        {"\x01", 0},
        {"a\nb", 0},
        {"a\tb", 0},
        {"\x7f", 0},
        {"\xff", 0},
        {"\xc3", 0},             /* truncated sequence */
        {"\xc3(", 0},            /* bad continuation */
        {"\xc0\xaf", 0},         /* overlong '/' */
        {"\xe0\x80\xaf", 0},     /* overlong */
        {"\xed\xa0\x80", 0},     /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 0}, /* above U+10FFFF */
        {"\x80", 0},             /* lone continuation */
    };
    char *i256 = repeat('i', 256), *i257 = repeat('i', 257);
    char e256[257], e258[259];

    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_assert_eq(bs_id_valid(t[i].s), t[i].ok, "case %zu", i);
    cr_assert_eq(bs_id_valid(i256), 1, "256 bytes is the limit");
    cr_assert_eq(bs_id_valid(i257), 0, "257 bytes is too long");
    /* The limit counts bytes, not characters. */
    for (int i = 0; i < 128; i++)
        memcpy(e256 + 2 * i, "\xc3\xa9", 2);
    e256[256] = '\0';
    memcpy(e258, e256, 256);
    memcpy(e258 + 256, "\xc3\xa9", 3);
    cr_assert_eq(bs_id_valid(e256), 1);
    cr_assert_eq(bs_id_valid(e258), 0);
    free(i256);
    free(i257);
}

Test(record, field_name_valid_table)
{
    static const struct {
        const char *s;
        int ok;
    } t[] = {
        {"name", 1},
        {"ID", 1},
        {"idx", 1},
        {"i", 1},
        {"_x", 1},
        {"a b", 1},
        {"\xc3\xa9t\xc3\xa9", 1},
        {"id", 0},
        {"a\x01", 0},
        {"a\n", 0},
        {"\x7f", 0},
        {"\xff", 0},
        {"\xc3", 0},
        {"\xed\xa0\x80", 0},
    };
    char *n128 = repeat('n', 128), *n129 = repeat('n', 129);

    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        cr_assert_eq(bs_field_name_valid(t[i].s, strlen(t[i].s)), t[i].ok,
                     "case %zu", i);
    cr_assert_eq(bs_field_name_valid("", 0), 0, "empty name");
    cr_assert_eq(bs_field_name_valid("a\0b", 3), 0, "embedded NUL");
    cr_assert_eq(bs_field_name_valid("idx", 2), 0, "first two bytes are id");
    cr_assert_eq(bs_field_name_valid(n128, 128), 1, "128 bytes is the limit");
    cr_assert_eq(bs_field_name_valid(n129, 129), 0, "129 bytes is too long");
    free(n128);
    free(n129);
}

Test(record, record_key_is_collection_nul_id)
{
    uint8_t buf[BS_RECKEY_MAX];
    size_t n = bs_record_key(buf, "customers", "C-1");

    cr_assert_eq(n, 9 + 1 + 3);
    cr_assert_eq(memcmp(buf, "customers\0C-1", n), 0);
}

/* ---- C1 control characters (issue 8, item 11) ---- */

/*
 * README "Limits": IDs and field names given here carry no control
 * characters, C1 (U+0080-U+009F, UTF-8 c2 80 - c2 9f) included.  Before
 * the fix only C0 and DEL were refused, so "a\xc2\x85" (NEL) passed.
 */
Test(record, c1_controls_are_refused_in_ids_and_field_names)
{
    static const char *const c1[] = {
        "\xc2\x80", "a\xc2\x85", "\xc2\x9b[31m", "x\xc2\x9f", "\xc2\x90y",
    };
    static const char *const fine[] = {"\xc2\xa0", "\xc2\xa9", "\xc3\xa9",
                                       "\xc2\x7e"};

    for (size_t i = 0; i < sizeof c1 / sizeof c1[0]; i++) {
        cr_assert_eq(bs_id_valid(c1[i]), 0, "id case %zu", i);
        cr_assert_eq(bs_field_name_valid(c1[i], strlen(c1[i])), 0,
                     "field case %zu", i);
        /* The wire rule of version 1 (protocol.md §2.2) admits them. */
        cr_assert_eq(bs_id_wire_valid(c1[i]), 1, "wire id case %zu", i);
        cr_assert_eq(bs_field_name_wire_valid(c1[i], strlen(c1[i])), 1,
                     "wire field case %zu", i);
    }
    /* U+00A0 and above are not controls; "\xc2\x7e" is not UTF-8. */
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(bs_id_valid(fine[i]), 1, "%zu", i);
        cr_assert_eq(bs_field_name_valid(fine[i], strlen(fine[i])), 1);
    }
    cr_assert_eq(bs_id_valid(fine[3]), 0);
    cr_assert_eq(bs_id_wire_valid(fine[3]), 0);
    /* The wire rule still refuses C0, DEL and "id". */
    cr_assert_eq(bs_id_wire_valid("a\nb"), 0);
    cr_assert_eq(bs_id_wire_valid("\x7f"), 0);
    cr_assert_eq(bs_field_name_wire_valid("id", 2), 0);
    cr_assert_eq(bs_field_name_wire_valid("a\x01", 2), 0);
}

/*
 * A version 1 node accepted C1 characters as input, so its sets may carry
 * them: a set with a C1 record ID and field name still decodes and
 * verifies (the wire rule is unchanged; only local input refuses them).
 */
Test(record, a_received_set_with_c1_names_still_decodes)
{
    uint8_t pk[BS_PK_LEN], sk[BS_SK_LEN], *buf;
    bs_field f = {0};
    bs_change ch = {
        1, BS_HLC_MAKE(1700000000000ull, 0), 0, "items", "a\xc2\x85z", 0, &f,
        1};
    bs_seal s;
    bs_csbuild b;
    bs_sealed *x;
    bs_csview *v;
    bs_errbuf err = {{0}};
    size_t n;

    cr_assert_eq(bs_crypto_init(), BS_OK);
    cr_assert_eq(bs_crypto_keypair(pk, sk), BS_OK);
    f.name = "n\xc2\x9f";
    f.namelen = 3;
    f.val.type = BS_VINT;
    f.val.i = 1;
    memset(&s, 0, sizeof s);
    memcpy(s.origin, pk, BS_PK_LEN);
    s.created_ms = 1700000000000ull;
    bs_csbuild_init(&b);
    cr_assert_eq(bs_csbuild_add(&b, &ch), BS_OK);
    cr_assert_eq(bs_csbuild_seal(&b, &s, sk, &x), BS_OK);
    n = bs_sealed_size(x);
    buf = malloc(n);
    cr_assert_not_null(buf);
    bs_sealed_write(x, buf);
    cr_assert_eq(bs_changeset_decode(buf, n, &v, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(bs_changeset_verify(v, pk), BS_OK);
    bs_changeset_free(v);
    free(buf);
    bs_sealed_free(x);
    bs_csbuild_fini(&b);
}
