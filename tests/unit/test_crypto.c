/*
 * test_crypto.c - unit tests of replication/crypto.c: the printable node ID
 * (format, checksum, length, alphabet, case and dashes), Ed25519 signatures
 * over ctx || msg (every flipped bit, other key, other context), BLAKE2b-256
 * known answers, hex helpers and constant-time comparison.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "../../replication/crypto.h"

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
}

TestSuite(crypto, .init = setup);

/* A fixed public key, so results do not depend on random keys. */
static const uint8_t PK[BS_PK_LEN] = {
    0x3d, 0x40, 0x17, 0xc3, 0xe8, 0x43, 0x89, 0x5a, 0x92, 0xb7, 0x0a,
    0xa7, 0x4d, 0x1b, 0x7e, 0xbc, 0x9c, 0x98, 0x2c, 0xcf, 0x2e, 0xc4,
    0x96, 0x8c, 0xc0, 0xcd, 0x55, 0xf1, 0x2a, 0xf4, 0x66, 0x0c,
};

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* ---- node ID ---- */

/* 56 base32 characters (35 bytes: the key and a 3-byte check) in seven
 * groups of eight joined by dashes. */
#define ID_CHARS 62

Test(crypto, node_id_format_shape)
{
    char id[BS_NODE_ID_LEN + 1];

    memset(id, 'X', sizeof id);
    bs_node_id_format(PK, id);
    cr_assert_eq(strlen(id), ID_CHARS, "%s", id);
    for (int i = 0; i < ID_CHARS; i++) {
        if (i % 9 == 8)
            cr_assert_eq(id[i], '-', "no dash at %d in %s", i, id);
        else
            cr_assert_not_null(strchr(B32, id[i]), "char %d of %s", i, id);
    }
}

/*
 * Regression (fixed): crypto.h defines BS_NODE_ID_LEN as 63 ("56 base32 chars +
 * 7 dashes"), but seven groups of eight need only six dashes:
 * bs_node_id_format() writes 62 characters (e.g.
 * "HVABPQ7I-IOEVVEVX-BKTU2G36-XSOJQLGP-F3CJNDGA-ZVK7CKXU-MYGG5SPJ").  Buffers
 * are big enough, but any check of an ID's length against BS_NODE_ID_LEN
 * (e.g. validating a pasted ID in `peer add`) would refuse every real ID.
 */
Test(crypto, node_id_length_matches_header_constant)
{
    char id[BS_NODE_ID_LEN + 1];

    bs_node_id_format(PK, id);
    cr_assert_eq(strlen(id), BS_NODE_ID_LEN, "%s", id);
}

Test(crypto, node_id_round_trip)
{
    char id[BS_NODE_ID_LEN + 1];
    uint8_t pk[BS_PK_LEN], sk[BS_SK_LEN], got[BS_PK_LEN];

    bs_node_id_format(PK, id);
    cr_assert_eq(bs_node_id_parse(id, got), BS_OK, "%s", id);
    cr_assert_eq(memcmp(got, PK, BS_PK_LEN), 0);
    /* Edge keys and real keys. */
    memset(pk, 0, sizeof pk);
    bs_node_id_format(pk, id);
    cr_assert_eq(bs_node_id_parse(id, got), BS_OK);
    cr_assert_eq(memcmp(got, pk, BS_PK_LEN), 0);
    memset(pk, 0xff, sizeof pk);
    bs_node_id_format(pk, id);
    cr_assert_eq(bs_node_id_parse(id, got), BS_OK);
    cr_assert_eq(memcmp(got, pk, BS_PK_LEN), 0);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(bs_crypto_keypair(pk, sk), BS_OK);
        bs_node_id_format(pk, id);
        cr_assert_eq(bs_node_id_parse(id, got), BS_OK, "%s", id);
        cr_assert_eq(memcmp(got, pk, BS_PK_LEN), 0);
    }
    bs_wipe(sk, sizeof sk);
}

Test(crypto, node_id_differs_per_key)
{
    char a[BS_NODE_ID_LEN + 1], b[BS_NODE_ID_LEN + 1];
    uint8_t pk[BS_PK_LEN];

    memcpy(pk, PK, sizeof pk);
    bs_node_id_format(pk, a);
    pk[31] ^= 1;
    bs_node_id_format(pk, b);
    cr_assert_str_neq(a, b);
}

Test(crypto, node_id_parse_rejects_any_changed_character)
{
    char id[BS_NODE_ID_LEN + 1], bad[BS_NODE_ID_LEN + 1];
    uint8_t got[BS_PK_LEN];

    bs_node_id_format(PK, id);
    for (int i = 0; i < ID_CHARS; i++) {
        if (id[i] == '-')
            continue;
        for (int k = 0; k < 32; k++) {
            if (B32[k] == id[i])
                continue;
            memcpy(bad, id, sizeof bad);
            bad[i] = B32[k];
            cr_assert_eq(bs_node_id_parse(bad, got), BS_EINVAL,
                         "%s (char %d changed) was accepted", bad, i);
        }
    }
}

Test(crypto, node_id_parse_rejects_swapped_neighbours)
{
    char id[BS_NODE_ID_LEN + 1], bad[BS_NODE_ID_LEN + 1];
    uint8_t got[BS_PK_LEN];

    bs_node_id_format(PK, id);
    for (int i = 0; i + 1 < ID_CHARS; i++) {
        if (id[i] == '-' || id[i + 1] == '-' || id[i] == id[i + 1])
            continue;
        memcpy(bad, id, sizeof bad);
        bad[i] = id[i + 1];
        bad[i + 1] = id[i];
        cr_assert_eq(bs_node_id_parse(bad, got), BS_EINVAL, "%s", bad);
    }
}

Test(crypto, node_id_parse_rejects_wrong_length)
{
    char id[BS_NODE_ID_LEN + 1], buf[BS_NODE_ID_LEN + 16];
    uint8_t got[BS_PK_LEN];

    bs_node_id_format(PK, id);
    cr_assert_eq(bs_node_id_parse("", got), BS_EINVAL);
    cr_assert_eq(bs_node_id_parse("-", got), BS_EINVAL);
    cr_assert_eq(bs_node_id_parse("AAAAAAAA", got), BS_EINVAL);
    /* One character short. */
    memcpy(buf, id, ID_CHARS - 1);
    buf[ID_CHARS - 1] = '\0';
    cr_assert_eq(bs_node_id_parse(buf, got), BS_EINVAL, "%s", buf);
    /* One and eight characters too many. */
    snprintf(buf, sizeof buf, "%sA", id);
    cr_assert_eq(bs_node_id_parse(buf, got), BS_EINVAL, "%s", buf);
    snprintf(buf, sizeof buf, "%s-AAAAAAAA", id);
    cr_assert_eq(bs_node_id_parse(buf, got), BS_EINVAL, "%s", buf);
    /* The same ID twice. */
    {
        char twice[2 * BS_NODE_ID_LEN + 2];

        snprintf(twice, sizeof twice, "%s-%s", id, id);
        cr_assert_eq(bs_node_id_parse(twice, got), BS_EINVAL);
    }
}

Test(crypto, node_id_parse_rejects_bad_alphabet)
{
    static const char others[] = "0189=+/ *._\xc3";
    char id[BS_NODE_ID_LEN + 1], bad[BS_NODE_ID_LEN + 1];
    uint8_t got[BS_PK_LEN];

    bs_node_id_format(PK, id);
    for (size_t k = 0; k < sizeof others - 1; k++) {
        memcpy(bad, id, sizeof bad);
        bad[5] = others[k];
        cr_assert_eq(bs_node_id_parse(bad, got), BS_EINVAL, "'%c' accepted",
                     others[k]);
    }
}

Test(crypto, node_id_parse_accepts_lower_case_and_missing_dashes)
{
    char id[BS_NODE_ID_LEN + 1], alt[BS_NODE_ID_LEN + 1];
    uint8_t got[BS_PK_LEN];
    size_t n = 0;

    bs_node_id_format(PK, id);
    /* All lower case. */
    for (int i = 0; i <= ID_CHARS; i++)
        alt[i] = (char)(id[i] >= 'A' && id[i] <= 'Z' ? id[i] + 32 : id[i]);
    memset(got, 0, sizeof got);
    cr_assert_eq(bs_node_id_parse(alt, got), BS_OK, "%s", alt);
    cr_assert_eq(memcmp(got, PK, BS_PK_LEN), 0);
    /* No dashes. */
    for (int i = 0; i < ID_CHARS; i++)
        if (id[i] != '-')
            alt[n++] = id[i];
    alt[n] = '\0';
    cr_assert_eq(n, 56);
    memset(got, 0, sizeof got);
    cr_assert_eq(bs_node_id_parse(alt, got), BS_OK, "%s", alt);
    cr_assert_eq(memcmp(got, PK, BS_PK_LEN), 0);
    /* Mixed case, no dashes. */
    for (size_t i = 0; i < n; i += 2)
        if (alt[i] >= 'A' && alt[i] <= 'Z')
            alt[i] = (char)(alt[i] + 32);
    cr_assert_eq(bs_node_id_parse(alt, got), BS_OK, "%s", alt);
    cr_assert_eq(memcmp(got, PK, BS_PK_LEN), 0);
}

/* ---- signatures ---- */

typedef struct keys {
    uint8_t pk[BS_PK_LEN];
    uint8_t *sk;
} keys;

static keys
new_keys(void)
{
    keys k;

    k.sk = bs_secret_alloc(BS_SK_LEN);
    cr_assert_not_null(k.sk);
    cr_assert_eq(bs_crypto_keypair(k.pk, k.sk), BS_OK);
    return k;
}

#define CTX "branchsync/test/v1"

Test(crypto, sign_then_verify)
{
    keys k = new_keys();
    uint8_t msg[100], sig[BS_SIG_LEN], sig2[BS_SIG_LEN];

    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 37);
    bs_sign(sig, CTX, msg, sizeof msg, k.sk);
    cr_assert_eq(bs_verify(sig, CTX, msg, sizeof msg, k.pk), BS_OK);
    /* Ed25519 is deterministic. */
    bs_sign(sig2, CTX, msg, sizeof msg, k.sk);
    cr_assert_eq(memcmp(sig, sig2, BS_SIG_LEN), 0);
    /* An empty message signs and verifies too. */
    bs_sign(sig, CTX, msg, 0, k.sk);
    cr_assert_eq(bs_verify(sig, CTX, msg, 0, k.pk), BS_OK);
    cr_assert_eq(bs_verify(sig, CTX, msg, 1, k.pk), BS_EBADSIG);
    bs_secret_free(k.sk);
}

Test(crypto, verify_fails_on_any_flipped_bit_of_msg)
{
    keys k = new_keys();
    uint8_t msg[48], sig[BS_SIG_LEN];

    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(255 - i);
    bs_sign(sig, CTX, msg, sizeof msg, k.sk);
    for (size_t bit = 0; bit < sizeof msg * 8; bit++) {
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cr_assert_eq(bs_verify(sig, CTX, msg, sizeof msg, k.pk), BS_EBADSIG,
                     "flipped msg bit %zu verified", bit);
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    cr_assert_eq(bs_verify(sig, CTX, msg, sizeof msg, k.pk), BS_OK);
    /* Truncated and extended messages. */
    cr_assert_eq(bs_verify(sig, CTX, msg, sizeof msg - 1, k.pk), BS_EBADSIG);
    bs_secret_free(k.sk);
}

Test(crypto, verify_fails_on_any_flipped_bit_of_sig)
{
    keys k = new_keys();
    uint8_t msg[] = "change set header bytes";
    uint8_t sig[BS_SIG_LEN];

    bs_sign(sig, CTX, msg, sizeof msg, k.sk);
    for (size_t bit = 0; bit < BS_SIG_LEN * 8; bit++) {
        sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cr_assert_eq(bs_verify(sig, CTX, msg, sizeof msg, k.pk), BS_EBADSIG,
                     "flipped sig bit %zu verified", bit);
        sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    cr_assert_eq(bs_verify(sig, CTX, msg, sizeof msg, k.pk), BS_OK);
    bs_secret_free(k.sk);
}

Test(crypto, verify_fails_with_other_key)
{
    keys a = new_keys(), b = new_keys();
    uint8_t msg[] = "hello", sig[BS_SIG_LEN];

    bs_sign(sig, CTX, msg, sizeof msg, a.sk);
    cr_assert_eq(bs_verify(sig, CTX, msg, sizeof msg, b.pk), BS_EBADSIG);
    cr_assert_eq(bs_verify(sig, CTX, msg, sizeof msg, a.pk), BS_OK);
    bs_secret_free(a.sk);
    bs_secret_free(b.sk);
}

Test(crypto, verify_fails_with_other_ctx)
{
    keys k = new_keys();
    uint8_t msg[] = "hello", sig[BS_SIG_LEN];

    bs_sign(sig, CTX, msg, sizeof msg, k.sk);
    cr_assert_eq(bs_verify(sig, "branchsync/test/v2", msg, sizeof msg, k.pk),
                 BS_EBADSIG);
    cr_assert_eq(bs_verify(sig, "", msg, sizeof msg, k.pk), BS_EBADSIG);
    bs_secret_free(k.sk);
}

Test(crypto, ctx_and_msg_boundary_is_bound)
{
    keys k = new_keys();
    uint8_t sig[BS_SIG_LEN];

    /* "ab" || "c" must not verify as "a" || "bc": the context is
     * delimited, so moving bytes across the boundary breaks it. */
    bs_sign(sig, "ab", (const uint8_t *)"c", 1, k.sk);
    cr_assert_eq(bs_verify(sig, "ab", (const uint8_t *)"c", 1, k.pk), BS_OK);
    cr_assert_eq(bs_verify(sig, "a", (const uint8_t *)"bc", 2, k.pk),
                 BS_EBADSIG);
    cr_assert_eq(bs_verify(sig, "abc", (const uint8_t *)"", 0, k.pk),
                 BS_EBADSIG);
    bs_secret_free(k.sk);
}

/* ---- hashing ---- */

static void
hex_of(char *out, const uint8_t *h)
{
    bs_hex(out, h, BS_HASH_LEN);
}

Test(crypto, blake2b_256_known_answers)
{
    uint8_t h[BS_HASH_LEN];
    char hex[2 * BS_HASH_LEN + 1];

    bs_hash(h, "abc", 3);
    hex_of(hex, h);
    cr_assert_str_eq(
        hex,
        "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    bs_hash(h, "", 0);
    hex_of(hex, h);
    cr_assert_str_eq(
        hex,
        "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

Test(crypto, incremental_hash_equals_one_shot)
{
    uint8_t data[1000], one[BS_HASH_LEN], inc[BS_HASH_LEN];
    bs_hash_state st;

    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i ^ (i >> 3));
    bs_hash(one, data, sizeof data);
    bs_hash_init(&st);
    for (size_t off = 0, step = 1; off < sizeof data; off += step, step++)
        bs_hash_update(&st, data + off,
                       step < sizeof data - off ? step : sizeof data - off);
    bs_hash_final(&st, inc);
    cr_assert_eq(memcmp(one, inc, BS_HASH_LEN), 0);

    bs_hash_init(&st);
    bs_hash_update(&st, "a", 1);
    bs_hash_update(&st, "bc", 2);
    bs_hash_final(&st, inc);
    bs_hash(one, "abc", 3);
    cr_assert_eq(memcmp(one, inc, BS_HASH_LEN), 0);
}

/* ---- hex, comparison, random ---- */

Test(crypto, hex_round_trip_and_rejects)
{
    const uint8_t bin[4] = {0x00, 0x7f, 0xa5, 0xff};
    uint8_t back[4];
    char hex[9];

    bs_hex(hex, bin, 4);
    cr_assert_str_eq(hex, "007fa5ff");
    cr_assert_eq(bs_unhex(back, 4, hex), BS_OK);
    cr_assert_eq(memcmp(back, bin, 4), 0);
    cr_assert_eq(bs_unhex(back, 4, "007FA5FF"), BS_OK);
    cr_assert_eq(memcmp(back, bin, 4), 0);
    cr_assert_eq(bs_unhex(back, 4, "007fa5f"), BS_EINVAL);
    cr_assert_eq(bs_unhex(back, 4, "007fa5ff00"), BS_EINVAL);
    cr_assert_eq(bs_unhex(back, 4, "007fa5fg"), BS_EINVAL);
    cr_assert_eq(bs_unhex(back, 4, "007f a5f"), BS_EINVAL);
    cr_assert_eq(bs_unhex(back, 4, ""), BS_EINVAL);
}

Test(crypto, memeq_ct)
{
    uint8_t a[32], b[32];

    memset(a, 7, sizeof a);
    memcpy(b, a, sizeof b);
    cr_assert(bs_memeq_ct(a, b, sizeof a));
    b[31] ^= 0x80;
    cr_assert_not(bs_memeq_ct(a, b, sizeof a));
    b[31] ^= 0x80;
    b[0] ^= 1;
    cr_assert_not(bs_memeq_ct(a, b, sizeof a));
}

Test(crypto, random_bytes_differ)
{
    uint8_t a[32], b[32];

    bs_crypto_random(a, sizeof a);
    bs_crypto_random(b, sizeof b);
    cr_assert_neq(memcmp(a, b, sizeof a), 0);
}

Test(crypto, wipe_zeroes)
{
    uint8_t buf[64];

    memset(buf, 0xaa, sizeof buf);
    bs_wipe(buf, sizeof buf);
    for (size_t i = 0; i < sizeof buf; i++)
        cr_assert_eq(buf[i], 0);
}
