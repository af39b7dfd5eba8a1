/*
 * meta.h - the node's own metadata, kept in BS_DB_META: name, role, public
 * key, infobase, incarnation, own stream and the persisted clock.  The
 * secret key is never here (it stays in its key file, keys.h).
 */
#ifndef BS_META_H
#define BS_META_H

#include "crypto.h"
#include "store.h"

/*
 * 2: records carry a flags byte (liveness under the collection's order).
 * 3: peers, conflicts and the exchange history are typed records
 *    (proto/storage.proto) instead of JSON; held entries carry a reason;
 *    conflict counts are kept in the metadata.  upgrade.h converts a
 *    format-2 store in place.
 * 4: a record may be stored in the wide record format (u32 counts, for
 *    65,535 fields or more: merges are never refused); format-3 stores
 *    hold only narrow records, so they upgrade by their number alone.
 * 5: the versions of each collection's rules are kept in meta (rules.h);
 *    the upgrade notes each declared collection's record as one version.
 * 6: the change index (changes.h, table "changes"); the upgrade fills it
 *    with one entry per stored record, in key order.
 * 7: a record may imply its owner's "own:" entry (access.h); compaction,
 *    re-seed and regional-hub keys.
 * 8: a record may be its own base (record.h BS_RECORD_OWN_BASE, which a
 *    program of format 7 refuses to decode); nothing to convert.
 */
#define BS_STORE_FORMAT 8

typedef enum { BS_ROLE_BRANCH = 0, BS_ROLE_HUB = 1 } bs_role;

typedef struct bs_meta {
    uint32_t format;
    char name[BS_NODE_NAME_MAX + 1];
    uint8_t role;
    uint8_t pk[BS_PK_LEN];
    int joined; /* infobase and hub known */
    uint8_t infobase[BS_INFOBASE_LEN];
    uint8_t hub[BS_PK_LEN];
    uint8_t inc[BS_INC_LEN]; /* current incarnation */
    uint32_t stream;         /* own stream index for inc */
    uint64_t hlc;            /* highest clock value issued or observed */
} bs_meta;

/* BS_ENOTNODE if the store holds no node; BS_ESTORE for another format
 * (older ones are upgraded by upgrade.h first). */
BS_MUST_CHECK bs_err bs_meta_load(bs_txn *t, bs_meta *m, bs_errbuf *err);
/* The store's format number alone; BS_ENOTNODE if it holds no node. */
BS_MUST_CHECK bs_err bs_meta_format(bs_txn *t, uint32_t *format);
/* A counter kept in the metadata (0 when never set). */
BS_MUST_CHECK bs_err bs_meta_get_u64(bs_txn *t, const char *key, uint64_t *v);
BS_MUST_CHECK bs_err bs_meta_put_u64(bs_txn *t, const char *key, uint64_t v);
BS_MUST_CHECK bs_err bs_meta_save(bs_txn *t, const bs_meta *m);
BS_MUST_CHECK bs_err bs_meta_save_hlc(bs_txn *t, uint64_t hlc);
/* Forget the infobase and the hub (write txn): undoes a join whose
 * exchange failed (exchange.h).  m is updated to match. */
BS_MUST_CHECK bs_err bs_meta_unjoin(bs_txn *t, bs_meta *m);

const char *bs_role_name(int role);
/* BS_EINVAL unless s is "hub" or "branch". */
BS_MUST_CHECK bs_err bs_role_parse(const char *s, int *role);

/* Valid node name: 1..64 of [A-Za-z0-9_.-], starting with a letter/digit. */
int bs_node_name_valid(const char *s);

#endif
