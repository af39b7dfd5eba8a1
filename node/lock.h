/*
 * lock.h - advisory locks on files of a node directory, with flock(2).
 *
 * The kernel releases a flock when the last descriptor of the open file
 * is closed, which happens however the process ends: a daemon killed with
 * SIGKILL never blocks the next start, and there is nothing to clean up.
 * Two locks live in DIR (docs/storage.md §1):
 *
 *  - DIR/daemon.lock: held exclusively by the running branchsyncd for its
 *    whole life, with its pid written in it.  One daemon per directory.
 *  - DIR/store.lock: held shared by every process that has the store open
 *    (bs_node_open to bs_node_close: each CLI command and the daemon),
 *    and exclusively by `restore`, which must be alone with the store.
 *
 * The files are never removed: a process that removed one could leave
 * two others locking two different files of the same name.
 */
#ifndef BS_LOCK_H
#define BS_LOCK_H

#include "../replication/common.h"

#define BS_LOCK_DAEMON "daemon.lock"
#define BS_LOCK_STORE  "store.lock"

typedef enum {
    BS_LOCK_SHARED,    /* many holders at once */
    BS_LOCK_EXCLUSIVE, /* one holder, no shared ones */
} bs_lock_mode;

/*
 * Take lock file `name` of dir (created 0600 if missing) without waiting.
 * *fd is set only on BS_OK: the lock is held until bs_lock_release(*fd)
 * (or the process ends).  BS_EBUSY when another open file holds a
 * conflicting lock (err is left alone: the caller says who is busy);
 * BS_EIO when the file cannot be opened or locked.
 */
BS_MUST_CHECK bs_err bs_lock_take(const char *dir, const char *name,
                                  bs_lock_mode mode, int *fd, bs_errbuf *err);

/* Release a lock taken with bs_lock_take; -1 is a no-op. */
void bs_lock_release(int fd);

/* Write this process's pid into the lock file held through fd. */
BS_MUST_CHECK bs_err bs_lock_write_pid(int fd, bs_errbuf *err);

/*
 * Who holds lock file `name` of dir exclusively, without taking it for
 * longer than a probe: 0 when nobody (or the file is missing), else the
 * pid written in the file, or -1 when it is held but holds no pid yet.
 */
long bs_lock_holder(const char *dir, const char *name);

#endif
