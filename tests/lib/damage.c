/*
 * damage.c - raw writes into a store's tables.
 */
#include "damage.h"

#include "fixture.h"

typedef struct raw {
    bs_db db;
    bs_slice key, val;
} raw;

static bs_err
raw_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    raw *r = arg;

    (void)err;
    return bs_txn_put(t, r->db, r->key, r->val, 0, NULL);
}

void
bst_damage(bs_store *s, bst_table table, bs_slice key, bs_slice val)
{
    static const bs_db dbs[] = {BS_DB_META,     BS_DB_RECORDS,   BS_DB_STREAMS,
                                BS_DB_PEERS,    BS_DB_HELD,      BS_DB_LOG,
                                BS_DB_STREAMIX, BS_DB_CONFLICTS, BS_DB_XLOG,
                                BS_DB_CHANGES};
    raw r = {dbs[table], key, val};
    bs_errbuf err = {{0}};

    bst_ok(bs_store_write(s, raw_txn, &r, &err), &err, "damage the store");
}
