/*
 * crypto.h - the only home of libsodium (with keys.c): hashing, random bytes,
 * Ed25519 signatures and the printable node ID.
 *
 * Hash: BLAKE2b-256 (crypto_generichash, no key).  Signatures: Ed25519,
 * detached.  Node ID: the Ed25519 public key plus a 3-byte BLAKE2b check,
 * base32 (RFC 4648 alphabet, no padding), in groups of 8 joined by '-'.
 */
#ifndef BS_CRYPTO_H
#define BS_CRYPTO_H

#include "common.h"

#define BS_HASH_LEN     32
#define BS_PK_LEN       32
#define BS_SK_LEN       64
#define BS_SIG_LEN      64
#define BS_INC_LEN      16 /* incarnation ID */
#define BS_INFOBASE_LEN 16
#define BS_NODE_ID_LEN  62 /* 56 base32 chars + 6 dashes */

/* Initialise libsodium; safe to call more than once. */
BS_MUST_CHECK bs_err bs_crypto_init(void);

void bs_crypto_random(void *buf, size_t n);

/* BLAKE2b-256 of one buffer. */
void bs_hash(uint8_t out[BS_HASH_LEN], const void *p, size_t n);

/* Incremental BLAKE2b-256. */
typedef struct bs_hash_state {
    uint8_t opaque[384] __attribute__((aligned(64)));
} bs_hash_state;
void bs_hash_init(bs_hash_state *st);
void bs_hash_update(bs_hash_state *st, const void *p, size_t n);
void bs_hash_final(bs_hash_state *st, uint8_t out[BS_HASH_LEN]);

/* A fresh Ed25519 key pair; sk must be sodium_malloc'd by the caller. */
BS_MUST_CHECK bs_err bs_crypto_keypair(uint8_t pk[BS_PK_LEN],
                                       uint8_t sk[BS_SK_LEN]);

/* Detached plain Ed25519 signature of ctx || NUL || msg (ctx is a
 * domain-separation string; its terminating NUL byte is signed too). */
void bs_sign(uint8_t sig[BS_SIG_LEN], const char *ctx, const uint8_t *msg,
             size_t n, const uint8_t sk[BS_SK_LEN]);
/* BS_OK if sig is pk's signature of ctx || msg, else BS_EBADSIG. */
BS_MUST_CHECK bs_err bs_verify(const uint8_t sig[BS_SIG_LEN], const char *ctx,
                               const uint8_t *msg, size_t n,
                               const uint8_t pk[BS_PK_LEN]);

/* Node ID <-> public key.  buf gets a NUL-terminated string. */
void bs_node_id_format(const uint8_t pk[BS_PK_LEN],
                       char buf[BS_NODE_ID_LEN + 1]);
/* Accepts the ID with or without dashes, any case.  BS_EINVAL if wrong. */
BS_MUST_CHECK bs_err bs_node_id_parse(const char *s, uint8_t pk[BS_PK_LEN]);

/* Lower-case hex; buf must hold 2n+1 bytes. */
void bs_hex(char *buf, const uint8_t *p, size_t n);
BS_MUST_CHECK bs_err bs_unhex(uint8_t *out, size_t n, const char *s);

/* Constant-time comparison (for secrets and MACs). */
int bs_memeq_ct(const void *a, const void *b, size_t n);

/* Locked, guarded memory for secrets; freeing wipes it. */
void *bs_secret_alloc(size_t n);
void bs_secret_free(void *p);
void bs_wipe(void *p, size_t n);

/*
 * CurveZMQ keys derived from the Ed25519 identity (docs/security.md): the
 * X25519 form of the same key pair, so a node ID gives both the signature
 * key and the transport key.  curve_sk is a secret: wipe it after use.
 */
BS_MUST_CHECK bs_err bs_curve_public(const uint8_t ed_pk[BS_PK_LEN],
                                     uint8_t curve_pk[32]);
BS_MUST_CHECK bs_err bs_curve_secret(const uint8_t ed_sk[BS_SK_LEN],
                                     uint8_t curve_sk[32]);

#endif
