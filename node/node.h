/*
 * node.h - a node directory opened for use: configuration, store and (on
 * demand) the secret key.  Used by the CLI and the daemon.
 *
 * Layout of DIR:  branchsync.conf  keys/node.key  keys/api.token (http.h)
 *                 store/data.mdb
 *                 store.lock  daemon.lock  (lock.h; docs/storage.md §1)
 *
 * Who may use a directory at once: any number of processes with the store
 * open (each holds DIR/store.lock shared from bs_node_open to
 * bs_node_close), at most one daemon (DIR/daemon.lock, bs_node_lock_daemon)
 * and a restore only alone (DIR/store.lock exclusive, bs_node_restore).
 */
#ifndef BS_NODE_H
#define BS_NODE_H

#include "../replication/core.h"
#include "../replication/meta.h"
#include "../replication/status.h"
#include "../replication/store.h"
#include "config.h"

typedef struct bs_node {
    char dir[4096];
    bs_config cfg;
    bs_store *store;
    bs_meta meta; /* as read when opened */
    uint8_t *sk;  /* guarded memory; NULL until bs_node_secret() */
    int lock_fd;  /* DIR/store.lock, held shared until bs_node_close */
} bs_node;

typedef struct bs_node_init {
    const char *name;
    int role;
    const char *listen; /* may be NULL */
    const char *http;   /* [http] listen: HOST:PORT or "off"; NULL: default */
} bs_node_init;

/*
 * Create a node in dir (created 0700 if missing, its missing parents as
 * `mkdir -p` would): keys, configuration and a store.  BS_EEXIST if dir
 * already holds a node; on any error what was created is removed again,
 * parents included.
 */
BS_MUST_CHECK bs_err bs_node_create(const char *dir, const bs_node_init *in,
                                    bs_errbuf *err);

/*
 * Open an existing node; BS_ENOTNODE when dir is not one.  Takes
 * DIR/store.lock shared before the store is touched and holds it until
 * bs_node_close; BS_EBUSY while a restore runs.  A store of an older
 * format is upgraded in place first (replication/upgrade.h).
 */
BS_MUST_CHECK bs_err bs_node_open(const char *dir, int readonly, bs_node **out,
                                  bs_errbuf *err);
/* Close the store and release its lock; NULL is a no-op. */
void bs_node_close(bs_node *n);

/*
 * One daemon per directory: take DIR/daemon.lock exclusively, without
 * waiting, and write our pid in it.  Call it before anything else touches
 * the directory.  *fd holds the lock until bs_lock_release(*fd) or the
 * process ends.  BS_ENOTNODE when dir is not a node (nothing is created);
 * BS_EBUSY "branchsyncd already runs for DIR (pid N)".
 */
BS_MUST_CHECK bs_err bs_node_lock_daemon(const char *dir, int *fd,
                                         bs_errbuf *err);

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
 * (checked against the key file).  Refused with BS_EBUSY, before anything
 * is written, while any other process has the store open (the daemon:
 * "branchsyncd (pid N) is running for DIR: stop it first"; anything else:
 * "another branchsync process is using DIR"); DIR/store.lock is held
 * exclusively for the whole restore.
 */
BS_MUST_CHECK bs_err bs_node_restore(const char *dir, const char *path,
                                     bs_errbuf *err);

/* What `status`, `doctor` and the HTTP API read the node's state with:
 * now, the configured retention, skew bound and clock policy, the system
 * clock. */
bs_status_opts bs_node_status_opts(const bs_node *n);

#endif
