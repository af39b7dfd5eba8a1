/*
 * local.h - local writes: the path of `put`, `del` and `load`.
 *
 * Inside one write transaction, each write gets the next seq of the node's
 * own stream and a fresh HLC timestamp, is merged into its record and is
 * queued as a change; bs_local_finish() seals the queued changes into signed
 * change sets appended to the log, and persists the stream position and the
 * clock.  Everything lands in the same LMDB transaction as the records, so
 * a write is in the log exactly when it is in the data (INV-6, S3).
 *
 * Stamps follow the node's clock discipline (clock.h): when the peers'
 * clocks show this node's wall clock ahead beyond max_skew, writes are
 * stamped with the wall clock less that offset, or refused (the core's
 * clock_ahead policy).  A write is always stamped above every version of
 * the record it writes, so it wins over what it overwrites whatever the
 * clock did (docs/protocol.md 5.3).
 */
#ifndef BS_LOCAL_H
#define BS_LOCAL_H

#include "changeset.h"
#include "core.h"
#include "hlc.h"
#include "meta.h"
#include "rebuild.h"
#include "streams.h"

typedef struct bs_local {
    bs_txn *txn;
    bs_meta meta;
    bs_streamtab streams;
    bs_stream *self;
    bs_hlc hlc;
    const uint8_t *sk;
    bs_order order;
    bs_arena scratch; /* per write */
    bs_csbuild build;
    uint64_t written, unchanged, deleted;
    int has_conflicts; /* local writes settle open conflicts they touch */
    int force;         /* write even when nothing changes (resolve) */
    int unique_force;  /* write even a duplicate of a unique key (unique.h) */
    uint64_t correction_ms;     /* stamps are the wall clock less this */
    bs_rebuild_queue rules_due; /* collections whose rules the hub wrote */
    /* the latest rules of the collection written last: they govern a
     * local write, stamped after every version this node holds or, with a
     * clock set back, below versions its set's vector says it had */
    bs_collection rules;
    bs_rule_version rules_ver; /* their version */
    int have_rules;
} bs_local;

/*
 * Start local writes in write txn t as core c (borrowed, with its signing
 * key, clock, max_skew_ms and clock_ahead policy).  BS_EIO ("local writes
 * are refused", naming the offset and the peer) when the node's clock is
 * ahead beyond max_skew and the policy is BS_CLOCK_REFUSE.
 */
BS_MUST_CHECK bs_err bs_local_begin(bs_local *l, bs_txn *t, const bs_core *c,
                                    bs_errbuf *err);

/*
 * Upsert fields (sorted by name, unique, valid; names and texts
 * NUL-terminated) of coll/id; their ver and namelen are set here.  A put that
 * changes nothing (the record is live and every field already holds the value)
 * is skipped, so loading the same data twice is a no-op (P3).  BS_EEXIST
 * when it gives a unique key a value another live record holds, unless
 * l->unique_force (unique.h).
 */
BS_MUST_CHECK bs_err bs_local_put(bs_local *l, const char *coll, const char *id,
                                  bs_field *fields, size_t n, bs_errbuf *err);
/* Delete coll/id; BS_ENOTFOUND unless it is live. */
BS_MUST_CHECK bs_err bs_local_del(bs_local *l, const char *coll, const char *id,
                                  bs_errbuf *err);
/* Seal what is queued and persist the stream and clock; when no write
 * changed anything, write nothing at all. */
BS_MUST_CHECK bs_err bs_local_finish(bs_local *l, bs_errbuf *err);
void bs_local_fini(bs_local *l);

/*
 * Re-sign this node's own change sets after it joined an infobase (they
 * were sealed with the all-zero infobase before; nobody has them yet).
 * Write txn; meta must already hold the new infobase.
 */
BS_MUST_CHECK bs_err bs_local_reseal(bs_txn *t, const bs_meta *meta,
                                     const uint8_t *sk, bs_errbuf *err);

#endif
