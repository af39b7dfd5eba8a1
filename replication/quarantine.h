/*
 * quarantine.h - listing quarantined streams and releasing them by the
 * hub's decision (docs/protocol.md, "Releasing a quarantine").
 *
 * A stream is quarantined (S6) when a node holds two different change
 * sets for one position of it: the set it applied (in the log) and the
 * other copy (kept as evidence in the held table).  The hub decides which
 * version is the stream's history by writing a hub change to the system
 * collection `_quarantine`:
 *
 *   _quarantine/<origin node ID>.<incarnation hex>
 *       {"seq": F, "keep": "<hex header hash>", "prev": "<hex header hash>"}
 *
 * F is the first seq of the kept set, keep its header hash and prev the
 * header hash of the set before it (64 zeros when F is 1).  That change
 * replicates like any hub change; every node carrying it out:
 *  - drops its own sets of the stream from F on when its set at F is not
 *    the kept one, rebuilds the records their changes touched from the
 *    log (rebuild.h) and moves the stream back to F - 1, or to 0 when its
 *    history parts before F (its chain at F - 1 is not prev); a node whose
 *    dropped sets are its own current incarnation starts a new one first
 *    (a seq is never reused, INV-1);
 *  - forgets the evidence and the held sets of the stream that the
 *    release drops; the other copy, when it is the kept set, waits in the
 *    held table and applies at the next retry;
 *  - clears the quarantine and marks the stream released: from then on a
 *    set covering F other than the kept one, and a set reaching F that
 *    contradicts the node's history of the stream, are dropped (no-ops)
 *    instead of quarantining it again.
 */
#ifndef BS_QUARANTINE_H
#define BS_QUARANTINE_H

#include "changeset.h"
#include "core.h"
#include "meta.h"
#include "record.h"
#include "streams.h"

#define BS_SYS_QUARANTINE "_quarantine"

/* One of the two versions of a quarantined stream. */
typedef struct bs_qversion {
    uint8_t hash[BS_HASH_LEN]; /* header hash of its first set */
    uint64_t first, last;      /* the seqs it covers here */
    uint64_t created_ms;       /* its first set's creation time (origin) */
    uint64_t changes;          /* changes it holds here */
    int here;                  /* 1: this node applied it; 0: the evidence */
} bs_qversion;

typedef struct bs_qstream {
    uint8_t origin[BS_PK_LEN], inc[BS_INC_LEN];
    uint64_t seq;  /* the stream's position here */
    uint64_t fork; /* the first seq the versions disagree on (evidence's) */
    char note[96];
    bs_qversion v[2]; /* v[0] here, v[1] the other copy */
} bs_qstream;

/* The quarantined streams with both versions (any txn).  *v is malloc'd
 * (free it), *n entries; set only on BS_OK. */
BS_MUST_CHECK bs_err bs_quarantine_list(bs_txn *t, bs_qstream **v, size_t *n);

/* What a release did. */
typedef struct bs_qrelease {
    uint8_t origin[BS_PK_LEN], inc[BS_INC_LEN];
    uint64_t seq;              /* F */
    uint8_t keep[BS_HASH_LEN]; /* kept version */
    uint64_t dropped;          /* sets dropped here */
    uint64_t rebuilt;          /* records rebuilt here */
} bs_qrelease;

/*
 * The hub's decision (`quarantine release ORIGIN --keep HASH`): keep the
 * version of ORIGIN's quarantined stream whose header hash is keep_hex, as
 * a hub change to `_quarantine` carried out here at once.  For the hub's
 * own origin (quarantined at branches only), keep names a set of its own
 * log.  BS_EPERM at a branch; BS_EINVAL for a malformed ID or hash;
 * BS_ENOTFOUND when no quarantined stream of ORIGIN has that version.
 * The kept version, when it is the other copy, applies here at once (a
 * held-set retry after the write) when it continues this node's history.
 * *out set on BS_OK.
 */
BS_MUST_CHECK bs_err bs_quarantine_release(const bs_core *c, const char *origin,
                                           const char *keep_hex,
                                           bs_qrelease *out, bs_errbuf *err);

/* 1 when c is a hub change to `_quarantine` (a release, or its delete). */
int bs_quarantine_is_release(const bs_change *c);
/* 1 when the release c names stream key (origin || incarnation). */
int bs_quarantine_names(const bs_change *c, const uint8_t *key);

/*
 * Carry out the release c (a hub change to `_quarantine/ID`, admitted) as
 * node *m in write txn t, with the stream table tab (both updated: a new
 * incarnation, a stream moved back).  `busy` (may be 0) is the index of
 * the stream whose set is being applied: it is not moved back now.  A
 * release that does not parse is ignored (the record still replicates).
 * *out (may be NULL) gets what it did.
 */
BS_MUST_CHECK bs_err bs_quarantine_carry(bs_txn *t, bs_meta *m,
                                         bs_streamtab *tab, const bs_change *c,
                                         uint32_t busy, bs_qrelease *out);

/*
 * For admission (A5r), on the released stream s: *drop = 1 when set v
 * covers the release's seq F without being the kept set; *settle = 1 when
 * v reaches F or beyond and is not the kept set, so that a contradiction
 * it shows (A6, A9) drops it instead of quarantining the stream.  Both 0
 * for a stream that is not released.
 */
BS_MUST_CHECK bs_err bs_quarantine_judge(bs_txn *t, const bs_stream *s,
                                         const bs_csview *v, int *drop,
                                         int *settle);

#endif
