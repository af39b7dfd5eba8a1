/*
 * bundle.h - exchange files (offline exchange, the way 1C offices swap
 * exchange messages on a USB stick or by e-mail).
 *
 * Layout (docs/protocol.md §9):
 *   "BSX1" | u32be format (1) | frames... | trailer frame
 *   frame   = u8 type | u32be length | payload
 *   type 1  = Envelope (exactly one, first)
 *   type 2  = ChangeSet bytes (as the origin signed them)
 *   type 3  = trailer (exactly one, last): BLAKE2b-256 of every byte before
 *             the trailer frame, then the sender's Ed25519 signature over
 *             "branchsync/file/v1\0" || that hash.
 *   type 4  = RecordSnapshot bytes (snapshot.h), after every type-2 frame;
 *             written only for a peer whose envelope announced
 *             BS_FEATURE_SNAPSHOTS (an earlier node refuses the type).
 * Import checks everything (framing, checksum, file signature, envelope,
 * and every set through the admission rules of admit.h, dry) before it
 * writes anything, then applies the sets in groups of transactions, each
 * set atomic, so an interrupted import leaves a consistent store that
 * importing the same file again completes.
 */
#ifndef BS_BUNDLE_H
#define BS_BUNDLE_H

#include "exchange.h"
#include "hlc.h"

#define BS_FILE_MAGIC   "BSX1"
#define BS_FILE_VERSION 1
#define BS_FILE_CONTEXT "branchsync/file/v1"

/*
 * Write everything peer `peer` has not acknowledged to path (atomically).
 * now_ms is our wall clock; retention_ms the retention limit ([sync]
 * retention_days; 0: no limit): a peer silent for longer gets no file
 * (BS_ESTALE, exchange.h bs_xchg_check_stale).
 */
BS_MUST_CHECK bs_err bs_bundle_export(bs_store *s, const uint8_t *sk,
                                      const char *peer, const char *path,
                                      uint64_t now_ms, uint64_t retention_ms,
                                      bs_xstats *st, bs_errbuf *err);

/*
 * As bs_bundle_export, but a file that seeds `peer` (revision 2026-12,
 * bootstrap; docs/design.md "Snapshot bootstrap"): its envelope announces
 * BS_FEATURE_BOOTSTRAP and `seed`, its sets are the hub's system sets and
 * one anchor per stream with their user-collection changes left out
 * (exchange.h bs_xchg_collect_seed), and record snapshots of every user
 * collection in the peer's scope follow.  Only the joined hub
 * (BS_EINVAL otherwise).  A node without the feature refuses the file
 * (its first anchor leaves a gap).
 */
BS_MUST_CHECK bs_err bs_bundle_export_seed(bs_store *s, const uint8_t *sk,
                                           const char *peer, const char *path,
                                           uint64_t now_ms,
                                           uint64_t retention_ms, bs_xstats *st,
                                           bs_errbuf *err);

/*
 * Verify and apply an exchange file.  sk is needed only when a branch with
 * local writes joins (its sets are re-sealed); may be NULL otherwise.
 * clock gives the time for the skew and retention checks; max_skew_ms
 * and retention_ms are the configured limits (retention 0: no limit).  A
 * file from a peer silent for longer than the retention limit is refused
 * (BS_ESTALE) before anything is written.
 */
BS_MUST_CHECK bs_err bs_bundle_import(bs_store *s, const uint8_t *sk,
                                      const char *path, bs_clock clock,
                                      uint64_t max_skew_ms,
                                      uint64_t retention_ms, bs_xstats *st,
                                      bs_errbuf *err);

/* What `inspect` finds in one change-set frame. */
typedef struct bs_inspect_set {
    int decoded; /* 0: error says why */
    char error[BS_ERRMSG_LEN];
    uint8_t origin[BS_PK_LEN], inc[BS_INC_LEN], infobase[BS_INFOBASE_LEN];
    uint64_t first, last, changes, omitted, bytes;
    int signature_ok;
    /* its summary (protocol.md 2.10): none, with the header, or the
     * summary form carrying `carried` of `buckets` */
    int summary; /* 0 none, 1 with the header, 2 summary form */
    uint32_t buckets, carried;
} bs_inspect_set;

/* What `inspect` finds in a file, read without applying anything. */
typedef struct bs_inspect {
    uint32_t format;
    uint64_t bytes;
    int has_envelope;
    uint8_t sender[BS_PK_LEN], receiver[BS_PK_LEN];
    int has_receiver;
    char sender_name[BS_NODE_NAME_MAX + 1];
    uint64_t message_no, created_ms, acknowledged_streams;
    const char *framing;        /* "ok", "truncated" or "bad frame" */
    const char *checksum;       /* "valid", "MISMATCH" or "missing" */
    const char *file_signature; /* "valid", "INVALID" or "missing" */
    bs_inspect_set *sets;       /* malloc'd */
    size_t nsets;
    uint64_t snapshots; /* record snapshots (frames 4, and in batches: 5) */
} bs_inspect;

/*
 * Describe a file without applying it (*out released with
 * bs_inspect_fini).  BS_EMALFORMED when it is not an exchange file of a
 * format this node reads; damage inside one is reported in *out.
 */
BS_MUST_CHECK bs_err bs_bundle_inspect(const char *path, bs_inspect *out,
                                       bs_errbuf *err);
void bs_inspect_fini(bs_inspect *in);

#endif
