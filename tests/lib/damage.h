/*
 * damage.h - writing bytes straight into a store's tables, bypassing the
 * core, to test how the core meets a damaged store (corrupt records,
 * stream entries, held entries, documents an upgrade cannot read, store
 * formats it does not know).  Besides the store's own unit test, the only
 * code outside replication/ that names the tables.
 */
#ifndef BS_TEST_DAMAGE_H
#define BS_TEST_DAMAGE_H

#include "../../replication/store.h"

typedef enum {
    BST_META,
    BST_RECORDS,
    BST_STREAMS,
    BST_PEERS,
    BST_HELD,
    BST_LOG,
    BST_STREAMIX,
    BST_CONFLICTS,
    BST_XLOG,
    BST_CHANGES,
} bst_table;

/* Put key -> val into table of s in a write transaction of its own
 * (aborts the test on failure). */
void bst_damage(bs_store *s, bst_table table, bs_slice key, bs_slice val);

#endif
