/*
 * store.c - LMDB environment, named tables, write transactions with map
 * growth.  All LMDB calls of the project live here; LMDB's codes are turned
 * into bs_err at this edge.
 */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "crypto.h"

#define DEFAULT_MAP   (256ull << 20)
#define DEFAULT_MAX   (1ull << 40)
#define MIN_FREE_DISK (16ull << 20)
#define NFS_MAGIC     0x6969
#define SMB_MAGIC     0x517B
#define CIFS_MAGIC    0xFF534D42u

static const char *const db_names[BS_DB_COUNT] = {
    "meta",  "records",   "log",  "streams", "streamix",
    "peers", "conflicts", "held", "xlog",    "changes",
};

/* The first table a store of an older format may lack (format 6 added
 * it): a read-only open reads it as empty until the upgrade creates it. */
#define FIRST_NEWER_DB BS_DB_CHANGES

struct bs_store {
    MDB_env *env;
    MDB_dbi dbi[BS_DB_COUNT];
    char path[4096];
    uint64_t max_map;
    int readonly;
    int absent[BS_DB_COUNT]; /* read-only: the table does not exist yet */
    int broken; /* the map was lost when it could not be remapped */
    int slot;   /* in fault_slots, or -1 */
    /* Threads of one process share the environment (the daemon's loop and
     * its HTTP threads, MDB_NOTLS): every transaction holds this shared,
     * and a remap (growth, or adopting another process's growth) takes it
     * exclusively, because LMDB must not remap under a live transaction.
     * A thread that itself holds a transaction remaps without it, as
     * before (nothing else of it can run meanwhile). */
    pthread_rwlock_t remap;
};

/* Transactions this thread holds, of any store: remap_lock skips the lock
 * when it is not zero, so a thread never waits for itself. */
static _Thread_local int txns_held;

static void
remap_lock(bs_store *s)
{
    if (txns_held == 0)
        pthread_rwlock_wrlock(&s->remap);
}

static void
remap_unlock(bs_store *s)
{
    if (txns_held == 0)
        pthread_rwlock_unlock(&s->remap);
}

struct bs_txn {
    bs_store *s;
    MDB_txn *txn;
    int write;
    int io_rc;     /* a write that failed on the file (a spill): its errno */
    uint64_t memo; /* bs_txn_memo */
    void *cache;   /* bs_txn_cache */
    void (*cache_free)(void *);
};

/* Free t and what it caches (the LMDB transaction is already over). */
static void
txn_free(bs_txn *t)
{
    if (t->cache_free != NULL)
        t->cache_free(t->cache);
    free(t);
}

struct bs_cursor {
    MDB_cursor *c;
};

/* ---- what a fault handler needs to know (bs_store_fault_owner) ---- */

/*
 * LMDB trusts its file: a damaged page header or node size sends a read
 * past the end of the file (SIGBUS) or through a wild pointer (SIGSEGV).
 * The handler asks whether such a fault is the store's: each open store
 * registers where its map lies, and every LMDB call marks the calling
 * thread while it runs.  Only plain stores and loads of lock-free words
 * happen here, so the handler may read them at any moment.
 */
#define FAULT_SLOTS 16
#define FAULT_PAST  (4ull << 30) /* a damaged 32-bit length past the map */

typedef struct fault_slot {
    uintptr_t lo, hi; /* the map; hi 0: the slot is free */
    char path[256];   /* the data file */
} fault_slot;

static fault_slot fault_slots[FAULT_SLOTS];
static _Thread_local volatile sig_atomic_t in_lmdb;

/* Claim a slot for s (none when all are taken: faults are then not
 * recognised as the store's, which is only a worse message). */
static void
fault_register(bs_store *s)
{
    s->slot = -1;
    for (int i = 0; i < FAULT_SLOTS; i++) {
        uintptr_t zero = 0;
        if (__atomic_compare_exchange_n(&fault_slots[i].hi, &zero, 1, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            size_t n = strnlen(s->path, sizeof fault_slots[i].path - 10);
            memcpy(fault_slots[i].path, s->path, n);
            memcpy(fault_slots[i].path + n, "/data.mdb", 10);
            s->slot = i;
            return;
        }
    }
}

/*
 * Record where s is mapped now (after an open or a growth).  LMDB does not
 * say (mdb_env_info gives the address only for MDB_FIXEDMAP), so find the
 * mapping of the data file's inode in /proc/self/maps.
 */
static void
fault_update(bs_store *s)
{
    uintptr_t lo = 0, hi = 0;
    struct stat st;
    char *line = NULL;
    size_t cap = 0;
    FILE *f;
    int fd;

    if (s->slot < 0)
        return;
    if (!s->broken && mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &st) == 0 &&
        (f = fopen("/proc/self/maps", "re")) != NULL) {
        while (getline(&line, &cap, f) > 0) {
            unsigned long a, b, ino;
            unsigned maj, mn;
            if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &a, &b, &maj, &mn,
                       &ino) == 5 &&
                ino == (unsigned long)st.st_ino &&
                makedev(maj, mn) == st.st_dev && b - a > hi - lo) {
                lo = a;
                hi = b;
            }
        }
        free(line);
        fclose(f);
    }
    __atomic_store_n(&fault_slots[s->slot].lo, 0, __ATOMIC_SEQ_CST);
    if (lo == 0)
        return;
    __atomic_store_n(&fault_slots[s->slot].hi, hi, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fault_slots[s->slot].lo, lo, __ATOMIC_SEQ_CST);
}

static void
fault_release(bs_store *s)
{
    if (s->slot < 0)
        return;
    __atomic_store_n(&fault_slots[s->slot].lo, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fault_slots[s->slot].hi, 0, __ATOMIC_SEQ_CST);
    s->slot = -1;
}

int
bs_store_fault_owner(const void *addr, const char **path)
{
    uintptr_t a = (uintptr_t)addr;

    for (int i = 0; i < FAULT_SLOTS; i++) {
        uintptr_t lo = __atomic_load_n(&fault_slots[i].lo, __ATOMIC_SEQ_CST);
        uintptr_t hi = __atomic_load_n(&fault_slots[i].hi, __ATOMIC_SEQ_CST);
        if (lo != 0 && hi > lo && a >= lo && a - lo < hi - lo + FAULT_PAST) {
            *path = fault_slots[i].path;
            return 1;
        }
    }
    if (in_lmdb) {
        *path = "";
        for (int i = 0; i < FAULT_SLOTS && !**path; i++)
            if (__atomic_load_n(&fault_slots[i].lo, __ATOMIC_SEQ_CST) != 0)
                *path = fault_slots[i].path;
        return 1;
    }
    return 0;
}

/* LMDB calls that read or write the map are bracketed by these. */
#define LMDB_ENTER() (in_lmdb++)
#define LMDB_LEAVE() (in_lmdb--)

static bs_err
map_err(int rc)
{
    switch (rc) {
    case 0:
        return BS_OK;
    case MDB_NOTFOUND:
        return BS_ENOTFOUND;
    case MDB_KEYEXIST:
        return BS_EEXIST;
    case MDB_MAP_FULL:
        return BS_EMAPFULL;
    case ENOSPC: /* a write spilling pages, or a commit (commit_fail) */
        return BS_EIO;
    case ENOMEM:
        return BS_ENOMEM;
    case EIO:
        return BS_EIO;
    case MDB_BAD_VALSIZE:
        return BS_EINVAL;
    default:
        /* MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID (a damaged page or
         * meta page), and LMDB's own trouble (MDB_PANIC, MDB_TXN_FULL, ...):
         * BS_ESTORE, whose message says corrupt unless a detail is set. */
        return BS_ESTORE;
    }
}

/* 1 for LMDB's codes that mean a damaged file. */
static int
damaged(int rc)
{
    return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
           rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH;
}

static bs_err
lmdb_fail(bs_errbuf *err, int rc, const char *what)
{
    bs_err e = map_err(rc);

    if (damaged(rc))
        return bs_errf(err, BS_ESTORE,
                       "store is corrupt: %s: %s; restore from a backup", what,
                       mdb_strerror(rc));
    if (rc == MDB_PANIC)
        return bs_errf(err, e,
                       "%s: a write to the store failed earlier in this "
                       "process (MDB_PANIC): run the command again (restart "
                       "branchsyncd)",
                       what);
    return bs_errf(err, e, "%s: %s", what, mdb_strerror(rc));
}

static bs_err
check_fs(const char *path, bs_errbuf *err)
{
    struct statfs fs;

    if (statfs(path, &fs) != 0)
        return bs_errf(err, BS_EIO, "%s: %s", path, strerror(errno));
    /* LMDB's locking does not work on network filesystems (P13). */
    if (fs.f_type == NFS_MAGIC || fs.f_type == SMB_MAGIC ||
        (unsigned)fs.f_type == CIFS_MAGIC)
        return bs_errf(err, BS_EINVAL,
                       "%s: is on a network filesystem; LMDB needs a local one",
                       path);
    return BS_OK;
}

static bs_err
open_dbs(bs_store *s, bs_errbuf *err)
{
    MDB_txn *txn;
    int rc;
    unsigned flags = s->readonly ? 0 : MDB_CREATE;

    if ((rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0,
                            &txn)) != 0)
        return lmdb_fail(err, rc, "open store");
    for (int i = 0; i < BS_DB_COUNT; i++) {
        LMDB_ENTER(); /* reads the main table's pages */
        rc = mdb_dbi_open(txn, db_names[i], flags, &s->dbi[i]);
        LMDB_LEAVE();
        s->absent[i] = 0;
        if (rc == MDB_NOTFOUND && s->readonly && i >= FIRST_NEWER_DB) {
            s->absent[i] = 1;
            continue;
        }
        if (rc != 0) {
            mdb_txn_abort(txn);
            if (rc == MDB_NOTFOUND)
                return bs_errf(err, BS_ENOTNODE, "store has no table %s",
                               db_names[i]);
            return lmdb_fail(err, rc, "open table");
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return lmdb_fail(err, rc, "open store");
    return BS_OK;
}

/*
 * A data file shorter than the pages its last commit uses was truncated
 * (a partial copy, a full disk during a copy): reading those pages would
 * crash with SIGBUS, so such a store is refused at open.  The pages of a
 * committed transaction are always written before its meta page.
 */
static bs_err
check_size(bs_store *s, bs_errbuf *err)
{
    uint64_t need = bs_store_used_bytes(s);
    struct stat st;
    int fd;

    if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) != 0)
        return BS_OK;
    if ((uint64_t)st.st_size >= need)
        return BS_OK;
    return bs_errf(err, BS_ESTORE,
                   "store is corrupt: %s/data.mdb is truncated (%llu bytes, "
                   "its pages take %llu); restore from a backup",
                   s->path, (unsigned long long)st.st_size,
                   (unsigned long long)need);
}

bs_err
bs_store_open(const char *dir, const bs_store_opts *o, bs_store **out,
              bs_errbuf *err)
{
    bs_store *s;
    struct stat st;
    int rc, dead;
    bs_err rv;

    if ((s = calloc(1, sizeof *s)) == NULL)
        return BS_ENOMEM;
    s->slot = -1;
    {
        /* Writer first: readers on other threads come and go nonstop and
         * would starve a remap.  No thread takes it twice (txns_held). */
        pthread_rwlockattr_t a;
        pthread_rwlockattr_init(&a);
        pthread_rwlockattr_setkind_np(
            &a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&s->remap, &a);
        pthread_rwlockattr_destroy(&a);
    }
    snprintf(s->path, sizeof s->path, "%s/store", dir);
    s->readonly = o->readonly;
    s->max_map = o->max_map_size ? o->max_map_size : DEFAULT_MAX;
    if (stat(s->path, &st) != 0) {
        if (!o->create) {
            rv = bs_errf(err, BS_ENOTNODE, "%s: not a branchsync node", dir);
            goto err_after_alloc;
        }
        if (mkdir(s->path, 0700) != 0) {
            rv = bs_errf(err, BS_EIO, "%s: %s", s->path, strerror(errno));
            goto err_after_alloc;
        }
    }
    if ((rv = check_fs(s->path, err)) != BS_OK)
        goto err_after_alloc;
    if ((rc = mdb_env_create(&s->env)) != 0) {
        rv = lmdb_fail(err, rc, "create environment");
        goto err_after_alloc;
    }
    mdb_env_set_maxdbs(s->env, BS_DB_COUNT + 4);
    mdb_env_set_maxreaders(s->env, 256);
    if ((rc = mdb_env_set_mapsize(s->env, o->map_size ? o->map_size
                                                      : DEFAULT_MAP)) != 0) {
        rv = lmdb_fail(err, rc, "set map size");
        goto err_after_env;
    }
    rc = mdb_env_open(s->env, s->path,
                      MDB_NOTLS | (o->readonly ? MDB_RDONLY : 0), 0600);
    if (rc != 0) {
        rv = lmdb_fail(err, rc, s->path);
        goto err_after_env;
    }
    /* A mapsize smaller than the file is raised by LMDB; a larger one in the
     * file (grown by another process) is adopted here. */
    if ((rc = mdb_env_set_mapsize(s->env, 0)) != 0) {
        rv = lmdb_fail(err, rc, "map the store");
        goto err_after_env;
    }
    mdb_reader_check(s->env, &dead); /* clear slots of dead readers (P12) */
    if ((rv = check_size(s, err)) != BS_OK)
        goto err_after_env;
    fault_register(s);
    fault_update(s);
    if ((rv = open_dbs(s, err)) != BS_OK)
        goto err_after_env;
    *out = s;
    return BS_OK;
err_after_env:
    fault_release(s);
    mdb_env_close(s->env);
err_after_alloc:
    pthread_rwlock_destroy(&s->remap);
    free(s);
    return rv;
}

void
bs_store_close(bs_store *s)
{
    if (s == NULL)
        return;
    fault_release(s);
    mdb_env_close(s->env);
    pthread_rwlock_destroy(&s->remap);
    free(s);
}

uint64_t
bs_store_map_size(bs_store *s)
{
    MDB_envinfo info;

    mdb_env_info(s->env, &info);
    return info.me_mapsize;
}

uint64_t
bs_store_used_bytes(bs_store *s)
{
    MDB_envinfo info;
    MDB_stat st;

    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

static bs_err
txn_begin(bs_store *s, int write, bs_txn **out, bs_errbuf *err)
{
    bs_txn *t;
    int rc;

    if (s->broken)
        return bs_errf(err, BS_ESTORE,
                       "the store's map was lost when it could not grow: run "
                       "the command again (restart branchsyncd)");
    if ((t = calloc(1, sizeof *t)) == NULL)
        return BS_ENOMEM;
    t->s = s;
    t->write = write;
    for (int tries = 0;; tries++) {
        if (txns_held == 0)
            pthread_rwlock_rdlock(&s->remap);
        LMDB_ENTER();
        rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
        LMDB_LEAVE();
        if (rc == 0)
            break;
        if (txns_held == 0)
            pthread_rwlock_unlock(&s->remap);
        /* Another process grew the map: adopt its size and retry.  A failed
         * remap leaves LMDB without a map (mdb_env_set_mapsize). */
        if (rc == MDB_MAP_RESIZED && tries < 8) {
            remap_lock(s);
            rc = mdb_env_set_mapsize(s->env, 0);
            if (rc != 0)
                s->broken = 1;
            fault_update(s);
            remap_unlock(s);
            if (rc != 0)
                break;
            continue;
        }
        break;
    }
    if (rc != 0) {
        free(t);
        return lmdb_fail(err, rc, "begin transaction");
    }
    txns_held++;
    *out = t;
    return BS_OK;
}

bs_err
bs_store_read(bs_store *s, bs_txn **out, bs_errbuf *err)
{
    return txn_begin(s, 0, out, err);
}

void
bs_txn_abort(bs_txn *t)
{
    if (t == NULL)
        return;
    mdb_txn_abort(t->txn);
    if (--txns_held == 0)
        pthread_rwlock_unlock(&t->s->remap);
    txn_free(t);
}

bs_store *
bs_txn_store(bs_txn *t)
{
    return t->s;
}

int
bs_txn_writable(const bs_txn *t)
{
    return t->write;
}

/* Free space on the store's file system in MiB, or -1 when unknown. */
static double
free_mib(const bs_store *s)
{
    struct statvfs vfs;

    if (statvfs(s->path, &vfs) != 0)
        return -1;
    return (double)vfs.f_bavail * (double)vfs.f_frsize / 1048576.0;
}

static unsigned long long
mib(uint64_t bytes)
{
    return (unsigned long long)(bytes >> 20);
}

/*
 * Double the map, within the cap and the free disk space.  Every refusal
 * names the numbers: map size, its cap, what is in use, the free disk.
 */
static bs_err
grow(bs_store *s, bs_errbuf *err)
{
    uint64_t cur = bs_store_map_size(s), next = cur * 2;
    double disk = free_mib(s);
    int rc;

    if (next > s->max_map)
        next = s->max_map;
    if (next <= cur)
        return bs_errf(err, BS_EMAPFULL,
                       "store is full: the map is at its limit of %llu MiB "
                       "(%llu MiB in use, %.1f MiB free on disk): raise "
                       "[store] max_map_size_mb in branchsync.conf",
                       mib(s->max_map), mib(bs_store_used_bytes(s)), disk);
    if (disk >= 0 && disk < (double)(MIN_FREE_DISK >> 20))
        return bs_errf(err, BS_EMAPFULL,
                       "no space left on device: the map cannot grow from "
                       "%llu MiB (at most %llu MiB) with %.1f MiB free on "
                       "disk in %s: free disk space and try again",
                       mib(cur), mib(s->max_map), disk, s->path);
    remap_lock(s);
    rc = mdb_env_set_mapsize(s->env, next);
    if (rc != 0)
        s->broken = 1;
    fault_update(s);
    remap_unlock(s);
    if (rc != 0) {
        /* LMDB unmapped the old map first: the environment has none now,
         * and only closing it is safe. */
        return bs_errf(err, BS_EMAPFULL,
                       "store is full: the map cannot grow from %llu to %llu "
                       "MiB (at most %llu MiB, %.1f MiB free on disk): %s",
                       mib(cur), mib(next), mib(s->max_map), disk,
                       mdb_strerror(rc));
    }
    return BS_OK;
}

/*
 * A failed commit.  LMDB reports a file system that filled up during the
 * write as a short write, EIO; with the disk nearly full that is ENOSPC.
 * Either way the transaction was not committed: readers see the last
 * committed state.
 */
static bs_err
commit_fail(bs_store *s, bs_errbuf *err, int rc, const char *what)
{
    double disk = free_mib(s);

    if (rc == ENOSPC ||
        (rc == EIO && disk >= 0 && disk < (double)(MIN_FREE_DISK >> 20)))
        return bs_errf(err, BS_EMAPFULL,
                       "%s: no space left on device (%.1f MiB free on "
                       "disk in %s; map %llu MiB of at most %llu MiB); "
                       "the transaction was not committed: free disk space "
                       "and try again",
                       what, disk, s->path, mib(bs_store_map_size(s)),
                       mib(s->max_map));
    if (rc == EIO)
        return bs_errf(err, BS_EIO,
                       "%s: input/output error writing %s/data.mdb; the "
                       "transaction was not committed: check the disk (the "
                       "kernel log names the device)",
                       what, s->path);
    return lmdb_fail(err, rc, what);
}

bs_err
bs_store_write(bs_store *s, bs_write_fn fn, void *arg, bs_errbuf *err)
{
    bs_err rv;

    if (s->readonly)
        return bs_errf(err, BS_EINTERNAL, "store opened read-only");
    for (;;) {
        bs_txn *t = NULL;
        int rc;

        if ((rv = txn_begin(s, 1, &t, err)) != BS_OK)
            return rv;
        rv = fn(t, arg, err);
        if (rv != BS_OK) {
            int io_rc = t->io_rc;
            bs_txn_abort(t);
            if (io_rc != 0)
                return commit_fail(s, err, io_rc, "write");
            if (rv != BS_EMAPFULL)
                return rv;
        } else {
            LMDB_ENTER();
            rc = mdb_txn_commit(t->txn);
            LMDB_LEAVE();
            if (--txns_held == 0)
                pthread_rwlock_unlock(&s->remap);
            txn_free(t);
            if (rc == 0)
                return BS_OK;
            if (rc != MDB_MAP_FULL)
                return commit_fail(s, err, rc, "commit");
        }
        if (err)
            err->msg[0] = '\0';
        if ((rv = grow(s, err)) != BS_OK)
            return rv;
    }
}

/* A write that failed on the file itself (LMDB spills pages of a large
 * transaction): remembered so bs_store_write names it. */
static void
note_io(bs_txn *t, int rc)
{
    if ((rc == ENOSPC || rc == EIO) && t->io_rc == 0)
        t->io_rc = rc;
}

static MDB_val
mv(bs_slice s)
{
    return (MDB_val){s.n, (void *)s.p};
}

static bs_slice
sv(MDB_val v)
{
    return (bs_slice){v.mv_data, v.mv_size};
}

bs_err
bs_txn_get(bs_txn *t, bs_db db, bs_slice key, bs_slice *val)
{
    MDB_val k = mv(key), v;
    int rc;

    if (t->s->absent[db])
        return BS_ENOTFOUND;
    LMDB_ENTER();
    rc = mdb_get(t->txn, t->s->dbi[db], &k, &v);
    LMDB_LEAVE();

    if (rc == 0)
        *val = sv(v);
    return map_err(rc);
}

bs_err
bs_txn_put(bs_txn *t, bs_db db, bs_slice key, bs_slice val, unsigned flags,
           bs_slice *existing)
{
    MDB_val k = mv(key), v = mv(val);
    unsigned f = 0;
    int rc;

    if (flags & BS_PUT_NOOVERWRITE)
        f |= MDB_NOOVERWRITE;
    if (flags & BS_PUT_APPEND)
        f |= MDB_APPEND;
    LMDB_ENTER();
    rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, f);
    LMDB_LEAVE();
    note_io(t, rc);
    if (rc == MDB_KEYEXIST && existing != NULL)
        *existing = sv(v);
    return map_err(rc);
}

bs_err
bs_txn_reserve(bs_txn *t, bs_db db, bs_slice key, size_t n, unsigned flags,
               uint8_t **out, bs_slice *existing)
{
    MDB_val k = mv(key), v = {n, NULL};
    unsigned f = MDB_RESERVE;
    int rc;

    if (flags & BS_PUT_NOOVERWRITE)
        f |= MDB_NOOVERWRITE;
    if (flags & BS_PUT_APPEND)
        f |= MDB_APPEND;
    LMDB_ENTER();
    rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, f);
    LMDB_LEAVE();
    note_io(t, rc);
    if (rc == 0)
        *out = v.mv_data;
    else if (rc == MDB_KEYEXIST && existing != NULL)
        *existing = sv(v);
    return map_err(rc);
}

bs_err
bs_txn_del(bs_txn *t, bs_db db, bs_slice key)
{
    MDB_val k = mv(key);
    int rc;

    LMDB_ENTER();
    rc = mdb_del(t->txn, t->s->dbi[db], &k, NULL);
    LMDB_LEAVE();
    note_io(t, rc);
    return map_err(rc);
}

bs_err
bs_txn_count(bs_txn *t, bs_db db, uint64_t *n)
{
    MDB_stat st;
    int rc;

    if (t->s->absent[db]) {
        *n = 0;
        return BS_OK;
    }
    rc = mdb_stat(t->txn, t->s->dbi[db], &st);

    if (rc == 0)
        *n = st.ms_entries;
    return map_err(rc);
}

bs_err
bs_txn_bytes(bs_txn *t, bs_db db, uint64_t *n)
{
    MDB_stat st;
    int rc;

    *n = 0;
    if (t->s->absent[db])
        return BS_OK;
    rc = mdb_stat(t->txn, t->s->dbi[db], &st);
    if (rc == 0)
        *n = (uint64_t)st.ms_psize *
             (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages);
    return map_err(rc);
}

bs_err
bs_cursor_open(bs_txn *t, bs_db db, bs_cursor **out)
{
    bs_cursor *c = calloc(1, sizeof *c);
    int rc;

    if (c == NULL)
        return BS_ENOMEM;
    if (t->s->absent[db]) { /* reads as empty: c->c stays NULL */
        *out = c;
        return BS_OK;
    }
    if ((rc = mdb_cursor_open(t->txn, t->s->dbi[db], &c->c)) != 0) {
        free(c);
        return map_err(rc);
    }
    *out = c;
    return BS_OK;
}

void
bs_cursor_close(bs_cursor *c)
{
    if (c == NULL)
        return;
    if (c->c != NULL)
        mdb_cursor_close(c->c);
    free(c);
}

static bs_err
cget(bs_cursor *c, MDB_val *k, bs_slice *ko, bs_slice *vo, MDB_cursor_op op)
{
    MDB_val v;
    int rc;

    if (c->c == NULL)
        return BS_ENOTFOUND;
    LMDB_ENTER();
    rc = mdb_cursor_get(c->c, k, &v, op);
    LMDB_LEAVE();

    if (rc == 0) {
        if (ko)
            *ko = sv(*k);
        if (vo)
            *vo = sv(v);
    }
    return map_err(rc);
}

bs_err
bs_cursor_seek(bs_cursor *c, bs_slice key, bs_slice *k, bs_slice *v)
{
    MDB_val mk = mv(key);

    return cget(c, &mk, k, v, MDB_SET_RANGE);
}

bs_err
bs_cursor_first(bs_cursor *c, bs_slice *k, bs_slice *v)
{
    MDB_val mk;

    return cget(c, &mk, k, v, MDB_FIRST);
}

bs_err
bs_cursor_last(bs_cursor *c, bs_slice *k, bs_slice *v)
{
    MDB_val mk;

    return cget(c, &mk, k, v, MDB_LAST);
}

bs_err
bs_cursor_next(bs_cursor *c, bs_slice *k, bs_slice *v)
{
    MDB_val mk;

    return cget(c, &mk, k, v, MDB_NEXT);
}

bs_err
bs_cursor_prev(bs_cursor *c, bs_slice *k, bs_slice *v)
{
    MDB_val mk;

    return cget(c, &mk, k, v, MDB_PREV);
}

bs_err
bs_cursor_del(bs_cursor *c)
{
    int rc;

    LMDB_ENTER();
    rc = mdb_cursor_del(c->c, 0);
    LMDB_LEAVE();
    return map_err(rc);
}

bs_err
bs_store_fingerprint(bs_txn *t, uint8_t out[32])
{
    bs_hash_state h;
    bs_err rv = BS_OK;

    bs_hash_init(&h);
    for (int db = 0; db < BS_DB_COUNT && rv == BS_OK; db++) {
        bs_cursor *c;
        bs_slice k, v;
        uint8_t len[8];

        if ((rv = bs_cursor_open(t, (bs_db)db, &c)) != BS_OK)
            break;
        bs_put_u64be(len, (uint64_t)db);
        bs_hash_update(&h, len, 8);
        for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
             rv = bs_cursor_next(c, &k, &v)) {
            bs_put_u64be(len, k.n);
            bs_hash_update(&h, len, 8);
            bs_hash_update(&h, k.p, k.n);
            bs_put_u64be(len, v.n);
            bs_hash_update(&h, len, 8);
            bs_hash_update(&h, v.p, v.n);
        }
        bs_cursor_close(c);
        if (rv == BS_ENOTFOUND)
            rv = BS_OK;
    }
    bs_hash_final(&h, out);
    return rv;
}

bs_err
bs_store_copy_fd(bs_store *s, int fd, bs_errbuf *err)
{
    int rc;

    LMDB_ENTER();
    rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
    LMDB_LEAVE();
    if (rc == 0)
        return BS_OK;
    if (damaged(rc))
        return lmdb_fail(err, rc, "backup");
    /* The copy's own file failed: not the store's trouble. */
    return bs_errf(err, rc == ENOMEM ? BS_ENOMEM : BS_EIO, "%s",
                   rc == ENOSPC ? "No space left on device" : mdb_strerror(rc));
}

uint64_t *
bs_txn_memo(bs_txn *t)
{
    return &t->memo;
}

void *
bs_txn_cache(bs_txn *t)
{
    return t->cache;
}

void
bs_txn_set_cache(bs_txn *t, void *p, void (*free_fn)(void *))
{
    if (t->cache_free != NULL && t->cache != p)
        t->cache_free(t->cache);
    t->cache = p;
    t->cache_free = free_fn;
}
