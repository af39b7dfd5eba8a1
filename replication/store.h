/*
 * store.h - the node's LMDB environment: the only module that includes
 * <lmdb.h>.
 *
 * The store is a set of named key/value tables (bs_db) in one environment
 * under DIR/store/.  Every command runs in one write transaction
 * (bs_store_write), which grows the map and retries when LMDB reports it
 * full, so a command applies fully or not at all (docs/reliability.md
 * P10, S3).
 * Commits are durable: no MDB_NOSYNC, MDB_MAPASYNC or MDB_WRITEMAP (P11).
 * Another process (the daemon or another CLI) may hold the writer lock;
 * bs_store_write then waits for it rather than failing.
 *
 * Threads: one bs_store may serve several threads of a process (the
 * daemon's loop and its HTTP threads); the environment is MDB_NOTLS and a
 * transaction belongs to the thread that began it.  Growing the map waits
 * until no other thread of the process holds a transaction (LMDB must not
 * remap under one).  A thread must not begin a write while it holds a read
 * transaction of its own.
 */
#ifndef BS_STORE_H
#define BS_STORE_H

#include "common.h"

typedef enum {
    BS_DB_META,      /* node metadata: name, role, infobase, hlc, ... */
    BS_DB_RECORDS,   /* collection \0 id -> record (record.h) */
    BS_DB_LOG,       /* stream u32be | first_seq u64be -> ChangeSet bytes */
    BS_DB_STREAMS,   /* stream u32be -> stream state (streams.h) */
    BS_DB_STREAMIX,  /* origin(32) | incarnation(16) -> stream u32be */
    BS_DB_PEERS,     /* peer name -> PeerState (peers.h) */
    BS_DB_CONFLICTS, /* coll \0 id \0 field \0 conflict ID -> entry */
    BS_DB_HELD,      /* sets held back, and evidence (setlog.h) */
    BS_DB_XLOG,      /* u64be ms | u64be n -> ExchangeEntry (xlog.h) */
    BS_DB_CHANGES,   /* u64be seq -> change index entry (changes.h) */
    BS_DB_COUNT
} bs_db;

typedef struct bs_store bs_store;
typedef struct bs_txn bs_txn;
typedef struct bs_cursor bs_cursor;

typedef struct bs_store_opts {
    int create;            /* create DIR/store if missing */
    int readonly;          /* open read-only (inspect, digest); a table
                            * newer than the store (BS_DB_CHANGES before
                            * the format-6 upgrade) then reads as empty */
    uint64_t map_size;     /* initial map size, bytes (0: default 256 MiB) */
    uint64_t max_map_size; /* growth cap (0: 1 TiB) */
} bs_store_opts;

/* Open (or create) the store under dir/store.  *out set only on BS_OK. */
BS_MUST_CHECK bs_err bs_store_open(const char *dir, const bs_store_opts *o,
                                   bs_store **out, bs_errbuf *err);
void bs_store_close(bs_store *s);

/* The environment's current map size, in bytes. */
uint64_t bs_store_map_size(bs_store *s);
/* Bytes used by the data file's pages in use. */
uint64_t bs_store_used_bytes(bs_store *s);

/* A read-only transaction; free it with bs_txn_abort. */
BS_MUST_CHECK bs_err bs_store_read(bs_store *s, bs_txn **out, bs_errbuf *err);

/*
 * Run fn in one write transaction and commit it durably.  If the map fills
 * up, the transaction is aborted, the map grown and fn run again from the
 * start: fn must not keep state across calls except through its arg.  A
 * store that cannot grow gives BS_EMAPFULL.  fn's error aborts everything.
 */
typedef bs_err (*bs_write_fn)(bs_txn *txn, void *arg, bs_errbuf *err);
BS_MUST_CHECK bs_err bs_store_write(bs_store *s, bs_write_fn fn, void *arg,
                                    bs_errbuf *err);

void bs_txn_abort(bs_txn *t);
bs_store *bs_txn_store(bs_txn *t);
int bs_txn_writable(const bs_txn *t);

/* Values are borrowed: valid until the transaction ends or the next write
 * to the same key. */
BS_MUST_CHECK bs_err bs_txn_get(bs_txn *t, bs_db db, bs_slice key,
                                bs_slice *val);

#define BS_PUT_NOOVERWRITE 1u /* BS_EEXIST, *existing set, if present */
#define BS_PUT_APPEND      2u /* key sorts after every key in db */
BS_MUST_CHECK bs_err bs_txn_put(bs_txn *t, bs_db db, bs_slice key, bs_slice val,
                                unsigned flags, bs_slice *existing);
/* Reserve n bytes for key's value and return where to write them.  With
 * BS_PUT_NOOVERWRITE, an existing value gives BS_EEXIST and *existing. */
BS_MUST_CHECK bs_err bs_txn_reserve(bs_txn *t, bs_db db, bs_slice key, size_t n,
                                    unsigned flags, uint8_t **out,
                                    bs_slice *existing);
BS_MUST_CHECK bs_err bs_txn_del(bs_txn *t, bs_db db, bs_slice key);
/* Number of entries in db. */
BS_MUST_CHECK bs_err bs_txn_count(bs_txn *t, bs_db db, uint64_t *n);
/* Bytes of the pages db occupies (its tree: branch, leaf and overflow
 * pages), from LMDB's statistics without a walk. */
BS_MUST_CHECK bs_err bs_txn_bytes(bs_txn *t, bs_db db, uint64_t *n);
/* One counter the transaction's user may keep for the transaction's life
 * (0 when it begins; owned by t): the change index keeps its next
 * sequence number here, so an append need not look the last key up. */
uint64_t *bs_txn_memo(bs_txn *t);
/* One pointer the write path may cache for the transaction's life
 * (unique.c keeps the unique rules it read here): NULL when it begins;
 * set_cache frees what was cached before with its free_fn; the cache is
 * freed with free_fn when the transaction ends, committed or not. */
void *bs_txn_cache(bs_txn *t);
void bs_txn_set_cache(bs_txn *t, void *p, void (*free_fn)(void *));

/* Cursors, valid within their transaction. */
BS_MUST_CHECK bs_err bs_cursor_open(bs_txn *t, bs_db db, bs_cursor **out);
void bs_cursor_close(bs_cursor *c);
/* First key >= key (BS_ENOTFOUND past the end). */
BS_MUST_CHECK bs_err bs_cursor_seek(bs_cursor *c, bs_slice key, bs_slice *k,
                                    bs_slice *v);
BS_MUST_CHECK bs_err bs_cursor_first(bs_cursor *c, bs_slice *k, bs_slice *v);
BS_MUST_CHECK bs_err bs_cursor_last(bs_cursor *c, bs_slice *k, bs_slice *v);
BS_MUST_CHECK bs_err bs_cursor_next(bs_cursor *c, bs_slice *k, bs_slice *v);
BS_MUST_CHECK bs_err bs_cursor_prev(bs_cursor *c, bs_slice *k, bs_slice *v);
/* Delete the entry under the cursor. */
BS_MUST_CHECK bs_err bs_cursor_del(bs_cursor *c);

/* Helpers for string keys. */
static inline bs_slice
bs_str(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return (bs_slice){(const uint8_t *)s, n};
}

static inline bs_slice
bs_mem(const void *p, size_t n)
{
    return (bs_slice){(const uint8_t *)p, n};
}

/*
 * A BLAKE2b-256 hash of every key and value of every table, in table and
 * key order: equal exactly when the stores hold the same bytes (tests use
 * it to check that refused input wrote nothing, S3).
 */
BS_MUST_CHECK bs_err bs_store_fingerprint(bs_txn *t, uint8_t out[32]);

/* A consistent compacted copy of the environment to fd (backup).  A
 * damaged page is BS_ESTORE ("store is corrupt: ..."); a failure to write
 * fd is BS_EIO with the system's message. */
BS_MUST_CHECK bs_err bs_store_copy_fd(bs_store *s, int fd, bs_errbuf *err);

/*
 * For a SIGBUS or SIGSEGV handler (node/fault.h); async-signal-safe, it
 * only reads.  LMDB trusts its file: a damaged page header or length can
 * make it, or a reader of the value it returns, read past the end of the
 * file (SIGBUS) or through a wild pointer (SIGSEGV).  Returns 1 when a
 * fault at addr is such a read: addr lies in the map of an open store or
 * less than 4 GiB past its end, or the faulting thread was inside an LMDB
 * call.  *path then names the data file ("" when unknown).
 */
int bs_store_fault_owner(const void *addr, const char **path);

#endif
