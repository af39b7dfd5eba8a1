/*
 * unique.h - unique natural keys: `collection customers --unique tax_code`.
 *
 * The rule is declared at the hub in `_collections` and replicates like the
 * others (collections.h).  Each node keeps, derived from its records, an
 * index of the live records of such a collection by the value of the key
 * field, and updated in the transaction of every record write: the change
 * index (changes.h) calls bs_unique_note for each record it notes, so every
 * path that writes a record (local writes, applied sets, rebuilds,
 * quarantine releases, scope drops) keeps the index true.
 *
 * Two live records holding the same key value are a `duplicate` conflict
 * (conflict.h, kind BS_CONFLICT_DUPLICATE): its ID hashes the collection,
 * the field and both record IDs, so every node holding both records names
 * it alike.  It is open exactly while both records are live with equal
 * values under the rule, so nodes holding the same records agree on which
 * are open; it settles by itself when that stops (one is deleted or merged,
 * a value changes, the rule goes) and opens again if it starts again.
 *
 * Stored in BS_DB_META (storage.md §3.10):
 *   "uqf:" coll                      -> the field indexed for coll
 *   "uq:"  coll \0 H(value)[16] id   -> "" (H: BLAKE2b of type | payload)
 *   "uqr:" coll \0 id                -> H(value)[16], the record's entry
 * A missing, null or empty-text value is not indexed.
 */
#ifndef BS_UNIQUE_H
#define BS_UNIQUE_H

#include "core.h"
#include "record.h"
#include "store.h"

/* The collection holding merge pointers: id "COLL/OTHER", fields
 * collection, record (OTHER) and into (KEEP); an ordinary user collection,
 * shared unless declared otherwise. */
#define BS_MERGES_COLLECTION "branchsync.merges"

/*
 * Keep the index and the duplicate conflicts true after coll/id was
 * written (write txn; the record as stored now decides).  For coll
 * `_collections`, id names a collection whose rules changed: when its
 * unique field changed, its index is rebuilt.  Uses the transaction's
 * cache (bs_txn_cache) for the rules.
 */
BS_MUST_CHECK bs_err bs_unique_note(bs_txn *t, const char *coll,
                                    const char *id);

/*
 * A local write of fields f[0..n) to coll/id: BS_EEXIST (err names the
 * record already holding the value) when it would give the key field a
 * value another live record holds.  BS_OK when coll has no unique field.
 */
BS_MUST_CHECK bs_err bs_unique_check(bs_txn *t, const char *coll,
                                     const char *id, const bs_field *f,
                                     size_t n, bs_errbuf *err);

/*
 * `merge COLL KEEP OTHER`: OTHER becomes a tombstone, and a pointer
 * BS_MERGES_COLLECTION/COLL/OTHER names KEEP (one local write, which
 * replicates).  BS_ENOTFOUND unless both are live; BS_EINVAL when they are
 * the same record.
 */
BS_MUST_CHECK bs_err bs_unique_merge(const bs_core *c, const char *coll,
                                     const char *keep, const char *other,
                                     bs_errbuf *err);

/* The record OTHER of coll was merged into (into holds BS_ID_MAX + 1):
 * BS_OK, or BS_ENOTFOUND when no merge names it. */
BS_MUST_CHECK bs_err bs_unique_merged_into(bs_txn *t, const char *coll,
                                           const char *other, char *into);

#endif
