/*
 * node.h - a node directory opened for use: configuration, store and (on
 * demand) the secret key.  Used by the CLI and the daemon.
 *
 * Layout of DIR:  branchsync.conf  keys/node.key  store/data.mdb
 */
#ifndef BS_NODE_H
#define BS_NODE_H

#include "../replication/core.h"
#include "../replication/meta.h"
#include "../replication/store.h"
#include "config.h"

typedef struct bs_node {
    char dir[4096];
    bs_config cfg;
    bs_store *store;
    bs_meta meta; /* as read when opened */
    uint8_t *sk;  /* guarded memory; NULL until bs_node_secret() */
} bs_node;

typedef struct bs_node_init {
    const char *name;
    int role;
    const char *listen; /* may be NULL */
} bs_node_init;

/*
 * Create a node in dir (created 0700 if missing): keys, configuration and a
 * store.  BS_EEXIST if dir already holds a node; on any error what was
 * created is removed again.
 */
BS_MUST_CHECK bs_err bs_node_create(const char *dir, const bs_node_init *in,
                                    bs_errbuf *err);

/* Open an existing node; BS_ENOTNODE when dir is not one.  A store of an
 * older format is upgraded in place first (replication/upgrade.h). */
BS_MUST_CHECK bs_err bs_node_open(const char *dir, int readonly, bs_node **out,
                                  bs_errbuf *err);
void bs_node_close(bs_node *n);

/* Load the secret key (once); borrowed until bs_node_close. */
BS_MUST_CHECK bs_err bs_node_secret(bs_node *n, const uint8_t **sk,
                                    bs_errbuf *err);

/*
 * What the core API needs (replication/core.h): the store, the system
 * clock, the configured limits and, with `sign`, the secret key (loaded
 * once).  Everything in *c is borrowed until bs_node_close.
 */
BS_MUST_CHECK bs_err bs_node_core(bs_node *n, int sign, bs_core *c,
                                  bs_errbuf *err);

/* Derive the node's CURVE key pair from its Ed25519 identity (loads the
 * secret key like bs_node_secret).  sk is the caller's: wipe it after use. */
BS_MUST_CHECK bs_err bs_node_curve(bs_node *n, uint8_t pk[32], uint8_t sk[32],
                                   bs_errbuf *err);

/* Write a consistent, compacted copy of the store to path (mode 0600,
 * atomically).  The secret key is never in it.  Works while others write.
 * The store is checked whole first (verify.h): a damaged one is BS_ESTORE
 * ("store is corrupt: ...") and nothing is written. */
BS_MUST_CHECK bs_err bs_node_backup(bs_node *n, const char *path,
                                    uint64_t *bytes, bs_errbuf *err);

/*
 * Replace the store of the node in dir with the backup at path, then start
 * a new incarnation, so that no (origin, incarnation, seq) is ever reused
 * for different content (INV-1, P1); peers then send back the changes
 * written after the backup (P2).  The backup must be of this same node
 * (checked against the key file).  The daemon must not be running.
 */
BS_MUST_CHECK bs_err bs_node_restore(const char *dir, const char *path,
                                     bs_errbuf *err);

#endif
