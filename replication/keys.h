/*
 * keys.h - the node's identity key file.
 *
 * DIR/keys/ is mode 0700 and DIR/keys/node.key mode 0600; the file holds
 * "BSK1 " and the hex of the 64-byte Ed25519 secret key.  The key is read
 * into guarded memory (sodium_malloc) and wiped when freed (P22, S9).  A key
 * file or directory that others can read is refused.
 */
#ifndef BS_KEYS_H
#define BS_KEYS_H

#include "crypto.h"

/* Create DIR/keys and write a new key pair; pk gets the public key. */
BS_MUST_CHECK bs_err bs_keys_create(const char *dir, uint8_t pk[BS_PK_LEN],
                                    bs_errbuf *err);

/* Load the secret key; *sk is guarded memory, free with bs_keys_free. */
BS_MUST_CHECK bs_err bs_keys_load(const char *dir, uint8_t **sk,
                                  bs_errbuf *err);
void bs_keys_free(uint8_t *sk);

#endif
