/*
 * bundle.h - exchange files (offline exchange, the way 1C offices swap
 * exchange messages on a USB stick or by e-mail).
 *
 * Layout (docs/protocol.md, "exchange files"):
 *   "BSX1" | u32be format (1) | frames... | trailer frame
 *   frame   = u8 type | u32be length | payload
 *   type 1  = Envelope (exactly one, first)
 *   type 2  = ChangeSet bytes (as the origin signed them)
 *   type 3  = trailer (exactly one, last): BLAKE2b-256 of every byte before
 *             the trailer frame, then the sender's Ed25519 signature over
 *             "branchsync/file/v1\0" || that hash.
 * Import checks everything (framing, checksum, file signature, envelope,
 * every set's signature and membership) before it writes anything, then
 * applies one set per transaction, so an interrupted import leaves a
 * consistent store that importing the same file again completes.
 */
#ifndef BS_BUNDLE_H
#define BS_BUNDLE_H

#include "exchange.h"
#include "hlc.h"

#define BS_FILE_MAGIC   "BSX1"
#define BS_FILE_VERSION 1
#define BS_FILE_CONTEXT "branchsync/file/v1"

/* Write everything peer `peer` has not acknowledged to path (atomically). */
BS_MUST_CHECK bs_err bs_bundle_export(bs_store *s, const uint8_t *sk,
                                      const char *peer, const char *path,
                                      uint64_t now_ms, bs_xstats *st,
                                      bs_errbuf *err);

/* Verify and apply an exchange file.  sk is needed only when a branch with
 * local writes joins (its sets are re-sealed); may be NULL otherwise. */
BS_MUST_CHECK bs_err bs_bundle_import(bs_store *s, const uint8_t *sk,
                                      const char *path, bs_clock clock,
                                      uint64_t max_skew_ms, bs_xstats *st,
                                      bs_errbuf *err);

/* Describe a file without applying it: a malloc'd JSON document. */
BS_MUST_CHECK bs_err bs_bundle_inspect(const char *path, char **json,
                                       bs_errbuf *err);

#endif
