/*
 * store.c - LMDB environment, named tables, write transactions with map
 * growth.  All LMDB calls of the project live here; LMDB's codes are turned
 * into bs_err at this edge.
 */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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
    "peers", "conflicts", "held", "xlog",
};

struct bs_store {
    MDB_env *env;
    MDB_dbi dbi[BS_DB_COUNT];
    char path[4096];
    uint64_t max_map;
    int readonly;
};

struct bs_txn {
    bs_store *s;
    MDB_txn *txn;
    int write;
};

struct bs_cursor {
    MDB_cursor *c;
};

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
    case ENOSPC:
        return BS_EMAPFULL;
    case ENOMEM:
        return BS_ENOMEM;
    case EIO:
        return BS_EIO;
    case MDB_BAD_VALSIZE:
        return BS_EINVAL;
    default:
        return BS_ESTORE;
    }
}

static bs_err
lmdb_fail(bs_errbuf *err, int rc, const char *what)
{
    bs_err e = map_err(rc);

    if (rc == ENOSPC)
        return bs_errf(err, e, "%s: store is full: no disk space", what);
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
        if ((rc = mdb_dbi_open(txn, db_names[i], flags, &s->dbi[i])) != 0) {
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
    mdb_env_set_mapsize(s->env, 0);
    mdb_reader_check(s->env, &dead); /* clear slots of dead readers (P12) */
    if ((rv = open_dbs(s, err)) != BS_OK)
        goto err_after_env;
    *out = s;
    return BS_OK;
err_after_env:
    mdb_env_close(s->env);
err_after_alloc:
    free(s);
    return rv;
}

void
bs_store_close(bs_store *s)
{
    if (s == NULL)
        return;
    mdb_env_close(s->env);
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

    if ((t = calloc(1, sizeof *t)) == NULL)
        return BS_ENOMEM;
    t->s = s;
    t->write = write;
    for (int tries = 0;; tries++) {
        rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
        /* Another process grew the map: adopt its size and retry. */
        if (rc == MDB_MAP_RESIZED && tries < 8) {
            mdb_env_set_mapsize(s->env, 0);
            continue;
        }
        break;
    }
    if (rc != 0) {
        free(t);
        return lmdb_fail(err, rc, "begin transaction");
    }
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
    free(t);
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

/* Double the map, within the cap and the free disk space. */
static bs_err
grow(bs_store *s, bs_errbuf *err)
{
    uint64_t cur = bs_store_map_size(s), next = cur * 2;
    struct statvfs vfs;

    if (next > s->max_map)
        next = s->max_map;
    if (next <= cur)
        return bs_errf(err, BS_EMAPFULL,
                       "store is full: map size limit of %llu MiB reached",
                       (unsigned long long)(s->max_map >> 20));
    if (statvfs(s->path, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < MIN_FREE_DISK)
        return bs_errf(err, BS_EMAPFULL,
                       "store is full: no disk space to grow (%s)", s->path);
    if (mdb_env_set_mapsize(s->env, next) != 0)
        return bs_errf(err, BS_EMAPFULL, "store is full: cannot grow map");
    return BS_OK;
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
            bs_txn_abort(t);
            if (rv != BS_EMAPFULL)
                return rv;
        } else {
            rc = mdb_txn_commit(t->txn);
            free(t);
            if (rc == 0)
                return BS_OK;
            if (rc != MDB_MAP_FULL)
                return lmdb_fail(err, rc, "commit");
        }
        if (err)
            err->msg[0] = '\0';
        if ((rv = grow(s, err)) != BS_OK)
            return rv;
    }
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
    int rc = mdb_get(t->txn, t->s->dbi[db], &k, &v);

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
    rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, f);
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
    rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, f);
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

    return map_err(mdb_del(t->txn, t->s->dbi[db], &k, NULL));
}

bs_err
bs_txn_count(bs_txn *t, bs_db db, uint64_t *n)
{
    MDB_stat st;
    int rc = mdb_stat(t->txn, t->s->dbi[db], &st);

    if (rc == 0)
        *n = st.ms_entries;
    return map_err(rc);
}

bs_err
bs_cursor_open(bs_txn *t, bs_db db, bs_cursor **out)
{
    bs_cursor *c = calloc(1, sizeof *c);
    int rc;

    if (c == NULL)
        return BS_ENOMEM;
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
    mdb_cursor_close(c->c);
    free(c);
}

static bs_err
cget(bs_cursor *c, MDB_val *k, bs_slice *ko, bs_slice *vo, MDB_cursor_op op)
{
    MDB_val v;
    int rc = mdb_cursor_get(c->c, k, &v, op);

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
    return map_err(mdb_cursor_del(c->c, 0));
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
    int rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);

    if (rc != 0)
        return lmdb_fail(err, rc, "backup");
    return BS_OK;
}
