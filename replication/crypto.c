/*
 * crypto.c - libsodium wrappers: hashing, signatures, node IDs.
 */
#include "crypto.h"

#include <ctype.h>
#include <sodium.h>
#include <string.h>

_Static_assert(sizeof(bs_hash_state) >= sizeof(crypto_generichash_state),
               "bs_hash_state too small");

bs_err
bs_crypto_init(void)
{
    return sodium_init() < 0 ? BS_EINTERNAL : BS_OK;
}

void
bs_crypto_random(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

void
bs_hash(uint8_t out[BS_HASH_LEN], const void *p, size_t n)
{
    crypto_generichash(out, BS_HASH_LEN, p, n, NULL, 0);
}

void
bs_hash_init(bs_hash_state *st)
{
    crypto_generichash_init((crypto_generichash_state *)st, NULL, 0,
                            BS_HASH_LEN);
}

void
bs_hash_update(bs_hash_state *st, const void *p, size_t n)
{
    crypto_generichash_update((crypto_generichash_state *)st, p, n);
}

void
bs_hash_final(bs_hash_state *st, uint8_t out[BS_HASH_LEN])
{
    crypto_generichash_final((crypto_generichash_state *)st, out, BS_HASH_LEN);
}

bs_err
bs_crypto_keypair(uint8_t pk[BS_PK_LEN], uint8_t sk[BS_SK_LEN])
{
    return crypto_sign_keypair(pk, sk) == 0 ? BS_OK : BS_EINTERNAL;
}

/* Plain Ed25519 (RFC 8032, not the pre-hashed Ed25519ph) over
 * ctx || NUL || msg.  The concatenation costs one copy of the header. */
static uint8_t *
with_context(const char *ctx, const uint8_t *msg, size_t n, size_t *len)
{
    size_t cn = strlen(ctx) + 1;
    uint8_t *buf = malloc(cn + n + 1);

    if (buf == NULL)
        return NULL;
    memcpy(buf, ctx, cn);
    if (n > 0)
        memcpy(buf + cn, msg, n);
    *len = cn + n;
    return buf;
}

void
bs_sign(uint8_t sig[BS_SIG_LEN], const char *ctx, const uint8_t *msg, size_t n,
        const uint8_t sk[BS_SK_LEN])
{
    size_t len;
    uint8_t *buf = with_context(ctx, msg, n, &len);

    /* Out of memory while signing our own data is not survivable. */
    BS_ASSERT(buf != NULL);
    crypto_sign_detached(sig, NULL, buf, len, sk);
    free(buf);
}

bs_err
bs_verify(const uint8_t sig[BS_SIG_LEN], const char *ctx, const uint8_t *msg,
          size_t n, const uint8_t pk[BS_PK_LEN])
{
    size_t len;
    uint8_t *buf = with_context(ctx, msg, n, &len);
    int rc;

    if (buf == NULL)
        return BS_ENOMEM;
    rc = crypto_sign_verify_detached(sig, buf, len, pk);
    free(buf);
    return rc == 0 ? BS_OK : BS_EBADSIG;
}

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

#define ID_RAW_LEN (BS_PK_LEN + 3)

void
bs_node_id_format(const uint8_t pk[BS_PK_LEN], char buf[BS_NODE_ID_LEN + 1])
{
    uint8_t raw[ID_RAW_LEN], check[BS_HASH_LEN];
    unsigned acc = 0, bits = 0, out = 0;

    memcpy(raw, pk, BS_PK_LEN);
    bs_hash(check, pk, BS_PK_LEN);
    memcpy(raw + BS_PK_LEN, check, 3);
    for (size_t i = 0; i < ID_RAW_LEN; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 5) {
            if (out > 0 && out % 9 == 8)
                buf[out++] = '-';
            buf[out++] = b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    /* 35 bytes = 280 bits = exactly 56 characters. */
    buf[out] = '\0';
}

bs_err
bs_node_id_parse(const char *s, uint8_t pk[BS_PK_LEN])
{
    uint8_t raw[ID_RAW_LEN], check[BS_HASH_LEN];
    unsigned acc = 0, bits = 0;
    size_t n = 0, chars = 0;

    for (; *s; s++) {
        const char *at;
        int c = toupper((unsigned char)*s);

        if (c == '-')
            continue;
        if (c == '\0' || (at = strchr(b32, c)) == NULL)
            return BS_EINVAL;
        acc = (acc << 5) | (unsigned)(at - b32);
        bits += 5;
        chars++;
        if (bits >= 8) {
            if (n == ID_RAW_LEN)
                return BS_EINVAL;
            raw[n++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    if (chars != 56 || n != ID_RAW_LEN)
        return BS_EINVAL;
    bs_hash(check, raw, BS_PK_LEN);
    if (memcmp(check, raw + BS_PK_LEN, 3) != 0)
        return BS_EINVAL;
    memcpy(pk, raw, BS_PK_LEN);
    return BS_OK;
}

void
bs_hex(char *buf, const uint8_t *p, size_t n)
{
    sodium_bin2hex(buf, 2 * n + 1, p, n);
}

bs_err
bs_unhex(uint8_t *out, size_t n, const char *s)
{
    size_t got;

    if (strlen(s) != 2 * n ||
        sodium_hex2bin(out, n, s, 2 * n, NULL, &got, NULL) != 0 || got != n)
        return BS_EINVAL;
    return BS_OK;
}

int
bs_memeq_ct(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

void *
bs_secret_alloc(size_t n)
{
    return sodium_malloc(n);
}

void
bs_secret_free(void *p)
{
    sodium_free(p);
}

void
bs_wipe(void *p, size_t n)
{
    sodium_memzero(p, n);
}

bs_err
bs_curve_public(const uint8_t ed_pk[BS_PK_LEN], uint8_t curve_pk[32])
{
    return crypto_sign_ed25519_pk_to_curve25519(curve_pk, ed_pk) == 0
               ? BS_OK
               : BS_EINVAL;
}

bs_err
bs_curve_secret(const uint8_t ed_sk[BS_SK_LEN], uint8_t curve_sk[32])
{
    return crypto_sign_ed25519_sk_to_curve25519(curve_sk, ed_sk) == 0
               ? BS_OK
               : BS_EINVAL;
}
