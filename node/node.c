/*
 * node.c - creating and opening node directories.
 */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../replication/crypto.h"
#include "../replication/keys.h"
#include "../replication/streams.h"
#include "../replication/verify.h"
#include "http.h"
#include "legacy.h"
#include "lock.h"

typedef struct create_ctx {
    bs_meta *meta;
} create_ctx;

static bs_err
create_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    create_ctx *c = arg;
    bs_streamtab tab = {0};
    bs_stream *self;
    bs_err rv;

    (void)err;
    if ((rv = bs_streams_add(t, &tab, c->meta->pk, c->meta->inc, &self)) !=
        BS_OK)
        goto out;
    c->meta->stream = self->idx;
    rv = bs_meta_save(t, c->meta);
out:
    bs_streams_fini(&tab);
    return rv;
}

static int
path_exists(const char *dir, const char *name)
{
    char p[4200];
    struct stat st;

    snprintf(p, sizeof p, "%s/%s", dir, name);
    return lstat(p, &st) == 0;
}

static void
remove_created(const char *dir, int made_dir)
{
    static const char *const files[] = {
        "keys/node.key",  "keys",  "store/data.mdb",
        "store/lock.mdb", "store", "branchsync.conf",
    };
    char p[4200];

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (remove(p) != 0 && errno != ENOENT)
            break;
    }
    if (made_dir)
        rmdir(dir);
}

/*
 * Create the missing parent directories of dir, as `mkdir -p` would (mode
 * 0777 less the umask).  The first one created is copied to made ("" when
 * none was), so that a failed create can take them away again.
 */
static bs_err
make_parents(const char *dir, char *made, size_t n, bs_errbuf *err)
{
    char p[4200];
    size_t len = strlen(dir);

    made[0] = '\0';
    if (len >= sizeof p)
        return bs_errf(err, BS_EINVAL, "%.64s...: path too long", dir);
    memcpy(p, dir, len + 1);
    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s != '/' || s[-1] == '/' || s[1] == '\0')
            continue;
        *s = '\0';
        if (mkdir(p, 0777) == 0) {
            if (made[0] == '\0')
                snprintf(made, n, "%s", p);
        } else if (errno != EEXIST) {
            return bs_errf(err, BS_EIO, "cannot create %s: %s", p,
                           strerror(errno));
        }
        *s = '/';
    }
    return BS_OK;
}

/* Remove the parents of dir that make_parents created, deepest first. */
static void
remove_parents(const char *dir, const char *made)
{
    char p[4200];
    char *slash;

    if (made[0] == '\0')
        return;
    snprintf(p, sizeof p, "%s", dir);
    while ((slash = strrchr(p, '/')) != NULL && slash != p) {
        *slash = '\0';
        if (strlen(p) < strlen(made) || (rmdir(p) != 0 && errno != ENOENT) ||
            strcmp(p, made) == 0)
            break;
    }
}

bs_err
bs_node_create(const char *dir, const bs_node_init *in, bs_errbuf *err)
{
    bs_config cfg;
    bs_meta meta;
    bs_store *store;
    bs_store_opts so = {.create = 1};
    create_ctx cc = {&meta};
    char made[4200], token[BS_HTTP_TOKEN_LEN + 1];
    int made_dir = 0;
    bs_err rv;

    if (path_exists(dir, "branchsync.conf") || path_exists(dir, "store") ||
        path_exists(dir, "keys"))
        return bs_errf(err, BS_EEXIST, "%s already holds a branchsync node",
                       dir);
    if ((rv = make_parents(dir, made, sizeof made, err)) != BS_OK)
        goto fail;
    if (mkdir(dir, 0700) == 0) {
        made_dir = 1;
    } else if (errno != EEXIST) {
        rv = bs_errf(err, BS_EIO, "cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    memset(&meta, 0, sizeof meta);
    meta.format = BS_STORE_FORMAT;
    snprintf(meta.name, sizeof meta.name, "%s", in->name);
    meta.role = (uint8_t)in->role;
    bs_crypto_random(meta.inc, BS_INC_LEN);
    if ((rv = bs_keys_create(dir, meta.pk, err)) != BS_OK)
        goto fail;
    if (in->role == BS_ROLE_HUB) {
        /* The head office founds the infobase. */
        meta.joined = 1;
        bs_crypto_random(meta.infobase, BS_INFOBASE_LEN);
        memcpy(meta.hub, meta.pk, BS_PK_LEN);
    }
    /* The HTTP API's bearer token, beside the identity key. */
    if ((rv = bs_http_token_load(dir, 1, token, err)) != BS_OK)
        goto fail;
    bs_wipe(token, sizeof token);
    bs_config_defaults(&cfg);
    if (in->listen)
        snprintf(cfg.listen, sizeof cfg.listen, "%s", in->listen);
    if (in->http && strcmp(in->http, "off") == 0)
        cfg.http_listen[0] = '\0';
    else if (in->http)
        snprintf(cfg.http_listen, sizeof cfg.http_listen, "%s", in->http);
    if ((rv = bs_config_save(dir, &cfg, err)) != BS_OK)
        goto fail;
    so.map_size = cfg.map_size_mb << 20;
    so.max_map_size = cfg.max_map_size_mb << 20;
    if ((rv = bs_store_open(dir, &so, &store, err)) != BS_OK)
        goto fail;
    rv = bs_store_write(store, create_txn, &cc, err);
    bs_store_close(store);
    if (rv == BS_OK)
        return BS_OK;
fail:
    remove_created(dir, made_dir);
    remove_parents(dir, made);
    return rv;
}

/*
 * Upgrade an older store in place.  A read-only opener closes its handle
 * first and opens the store read-write for the upgrade, then read-only
 * again: one process never holds two handles of one environment (LMDB's
 * locks would not survive it; docs/reliability.md P13).
 */
static bs_err
upgrade(const char *dir, bs_store_opts so, bs_store **st, bs_errbuf *err)
{
    uint32_t format;
    bs_err rv;

    if ((rv = bs_upgrade_format(*st, &format, err)) != BS_OK ||
        format == BS_STORE_FORMAT)
        return rv;
    if (!so.readonly)
        return bs_upgrade(*st, &bs_legacy_v2, err);
    bs_store_close(*st);
    *st = NULL;
    so.readonly = 0;
    if ((rv = bs_store_open(dir, &so, st, err)) != BS_OK)
        return rv;
    rv = bs_upgrade(*st, &bs_legacy_v2, err);
    bs_store_close(*st);
    *st = NULL;
    so.readonly = 1;
    if (rv == BS_OK)
        rv = bs_store_open(dir, &so, st, err);
    return rv;
}

static bs_err
not_a_node(const char *dir, bs_errbuf *err)
{
    return bs_errf(err, BS_ENOTNODE,
                   "%s is not a branchsync node (run 'branchsync init')", dir);
}

static int
is_node(const char *dir)
{
    return path_exists(dir, "branchsync.conf") && path_exists(dir, "store");
}

bs_err
bs_node_lock_daemon(const char *dir, int *fd, bs_errbuf *err)
{
    long pid;
    bs_err rv;

    if (!is_node(dir))
        return not_a_node(dir, err);
    /* A restore's probe of this lock (bs_lock_holder) holds it shared for
     * a moment: look again before saying that a daemon runs. */
    for (int tries = 0;; tries++) {
        if ((rv = bs_lock_take(dir, BS_LOCK_DAEMON, BS_LOCK_EXCLUSIVE, fd,
                               err)) != BS_EBUSY)
            break;
        if ((pid = bs_lock_holder(dir, BS_LOCK_DAEMON)) > 0)
            return bs_errf(err, BS_EBUSY,
                           "branchsyncd already runs for %s (pid %ld)", dir,
                           pid);
        if (pid < 0 || tries == 4)
            return bs_errf(err, BS_EBUSY, "branchsyncd already runs for %s",
                           dir);
        usleep(20000);
    }
    if (rv != BS_OK)
        return rv;
    if ((rv = bs_lock_write_pid(*fd, err)) != BS_OK)
        bs_lock_release(*fd);
    return rv;
}

bs_err
bs_node_open(const char *dir, int readonly, bs_node **out, bs_errbuf *err)
{
    bs_node *n;
    bs_store_opts so = {0};
    bs_txn *t;
    bs_err rv;

    if ((n = calloc(1, sizeof *n)) == NULL)
        return BS_ENOMEM;
    snprintf(n->dir, sizeof n->dir, "%s", dir);
    n->lock_fd = -1;
    if (!is_node(dir)) {
        rv = not_a_node(dir, err);
        goto err_after_alloc;
    }
    /* Shared with every other opener; only a restore excludes us. */
    rv = bs_lock_take(dir, BS_LOCK_STORE, BS_LOCK_SHARED, &n->lock_fd, err);
    if (rv == BS_EBUSY)
        rv = bs_errf(err, BS_EBUSY,
                     "%s is being restored from a backup: try again once "
                     "`branchsync restore` has finished",
                     dir);
    if (rv != BS_OK)
        goto err_after_alloc;
    if ((rv = bs_config_load(dir, &n->cfg, err)) != BS_OK)
        goto err_after_lock;
    so.readonly = readonly;
    so.map_size = n->cfg.map_size_mb << 20;
    so.max_map_size = n->cfg.max_map_size_mb << 20;
    if ((rv = bs_store_open(dir, &so, &n->store, err)) != BS_OK)
        goto err_after_lock;
    if ((rv = upgrade(dir, so, &n->store, err)) != BS_OK)
        goto err_after_store;
    if ((rv = bs_store_read(n->store, &t, err)) != BS_OK)
        goto err_after_store;
    rv = bs_meta_load(t, &n->meta, err);
    bs_txn_abort(t);
    if (rv != BS_OK)
        goto err_after_store;
    *out = n;
    return BS_OK;
err_after_store:
    bs_store_close(n->store);
err_after_lock:
    bs_lock_release(n->lock_fd);
err_after_alloc:
    free(n);
    return rv;
}

void
bs_node_close(bs_node *n)
{
    if (n == NULL)
        return;
    bs_store_close(n->store);
    bs_lock_release(n->lock_fd); /* after the store: nothing is open now */
    if (n->sk)
        bs_keys_free(n->sk);
    free(n);
}

bs_err
bs_node_secret(bs_node *n, const uint8_t **sk, bs_errbuf *err)
{
    bs_err rv;

    if (n->sk == NULL && (rv = bs_keys_load(n->dir, &n->sk, err)) != BS_OK)
        return rv;
    *sk = n->sk;
    return BS_OK;
}

bs_err
bs_node_core(bs_node *n, int sign, bs_core *c, bs_errbuf *err)
{
    bs_err rv;

    memset(c, 0, sizeof *c);
    c->store = n->store;
    c->clock = bs_clock_system;
    c->max_skew_ms = (uint64_t)n->cfg.max_skew_s * 1000;
    c->clock_ahead = n->cfg.clock_ahead;
    c->retention_ms = (uint64_t)n->cfg.retention_days * 86400000ull;
    if (sign && (rv = bs_node_secret(n, &c->sk, err)) != BS_OK)
        return rv;
    return BS_OK;
}

bs_err
bs_node_curve(bs_node *n, uint8_t pk[32], uint8_t sk[32], bs_errbuf *err)
{
    const uint8_t *ed;
    bs_err rv;

    if ((rv = bs_node_secret(n, &ed, err)) != BS_OK)
        return rv;
    if ((rv = bs_curve_secret(ed, sk)) != BS_OK ||
        (rv = bs_curve_public(n->meta.pk, pk)) != BS_OK)
        return bs_errf(err, rv, "cannot derive the CURVE keys");
    return BS_OK;
}

/* The whole-store check (verify.h) that a backup runs first: a copy of a
 * damaged store would only carry the damage into the backups. */
static bs_err
backup_check(bs_node *n, const char *path, bs_errbuf *err)
{
    bs_verify_stats vs;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_store_read(n->store, &t, err)) != BS_OK)
        return rv;
    rv = bs_verify_store(t, NULL, &vs, err);
    bs_txn_abort(t);
    if (rv == BS_ESTORE && err != NULL) {
        static const char tail[] = "; restore from a backup";
        char first[BS_ERRMSG_LEN];
        size_t len = strlen(err->msg);
        if (len >= sizeof tail - 1 &&
            strcmp(err->msg + len - (sizeof tail - 1), tail) == 0)
            len -= sizeof tail - 1;
        snprintf(first, sizeof first, "%.*s", (int)len, err->msg);
        rv = bs_errf(err, rv, "%s (no backup was written to %s)%s", first, path,
                     tail);
    }
    return rv;
}

bs_err
bs_node_backup(bs_node *n, const char *path, uint64_t *bytes, bs_errbuf *err)
{
    char tmp[4200];
    struct stat st;
    int fd;
    bs_err rv;

    if ((rv = backup_check(n, path, err)) != BS_OK)
        return rv;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return bs_errf(err, BS_EIO, "%s: %s", tmp, strerror(errno));
    rv = bs_store_copy_fd(n->store, fd, err);
    if (rv == BS_EIO || rv == BS_ENOMEM) { /* the copy failed, not the store */
        char why[BS_ERRMSG_LEN];
        snprintf(why, sizeof why, "%s", bs_errmsg(err, rv));
        rv = bs_errf(err, rv, "%s: %s", tmp, why);
    }
    if (rv == BS_OK && (fsync(fd) != 0 || fstat(fd, &st) != 0))
        rv = bs_errf(err, BS_EIO, "%s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rv == BS_OK)
        rv = bs_errf(err, BS_EIO, "%s: %s", tmp, strerror(errno));
    if (rv == BS_OK && rename(tmp, path) != 0)
        rv = bs_errf(err, BS_EIO, "%s: %s", path, strerror(errno));
    if (rv != BS_OK) {
        unlink(tmp);
        return rv;
    }
    *bytes = (uint64_t)st.st_size;
    return BS_OK;
}

static bs_err
copy_file(const char *from, const char *to, bs_errbuf *err)
{
    char buf[1 << 16];
    ssize_t n;
    int in, out;
    bs_err rv = BS_OK;

    if ((in = open(from, O_RDONLY | O_CLOEXEC)) < 0)
        return bs_errf(err, BS_EINVAL, "%s: %s", from, strerror(errno));
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return bs_errf(err, BS_EIO, "%s: %s", to, strerror(errno));
    }
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    if (n < 0 || fsync(out) != 0)
        rv = bs_errf(err, BS_EIO, "copying %s: %s", from, strerror(errno));
    close(in);
    close(out);
    return rv;
}

typedef struct restore_ctx {
    const uint8_t *pk;
} restore_ctx;

static bs_err
new_incarnation(bs_txn *t, void *arg, bs_errbuf *err)
{
    restore_ctx *r = arg;
    bs_streamtab tab;
    bs_stream *s;
    bs_meta m;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        return rv;
    if (memcmp(m.pk, r->pk, BS_PK_LEN) != 0)
        return bs_errf(err, BS_EINVAL,
                       "the backup belongs to another node (\"%s\")", m.name);
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    bs_crypto_random(m.inc, BS_INC_LEN);
    if ((rv = bs_streams_add(t, &tab, m.pk, m.inc, &s)) == BS_OK) {
        m.stream = s->idx;
        rv = bs_meta_save(t, &m);
    }
    bs_streams_fini(&tab);
    return rv;
}

/* Take DIR/store.lock exclusively, or say who has the store open. */
static bs_err
lock_alone(const char *dir, int *fd, bs_errbuf *err)
{
    bs_err rv = bs_lock_take(dir, BS_LOCK_STORE, BS_LOCK_EXCLUSIVE, fd, err);
    long pid;

    if (rv != BS_EBUSY)
        return rv;
    if ((pid = bs_lock_holder(dir, BS_LOCK_DAEMON)) > 0)
        return bs_errf(err, BS_EBUSY,
                       "branchsyncd (pid %ld) is running for %s: stop it "
                       "first, then restore",
                       pid, dir);
    if (pid < 0)
        return bs_errf(err, BS_EBUSY,
                       "branchsyncd is starting for %s: stop it first, then "
                       "restore",
                       dir);
    return bs_errf(err, BS_EBUSY,
                   "another branchsync process is using %s: let it finish "
                   "(or stop it), then restore",
                   dir);
}

bs_err
bs_node_restore(const char *dir, const char *path, bs_errbuf *err)
{
    char stage[4200], sdir[4300], sdata[4400], data[4200], slock[4400];
    bs_store_opts so = {0};
    uint8_t *sk = NULL;
    restore_ctx r;
    bs_store *st;
    int lock = -1;
    bs_err rv;

    if (!path_exists(dir, "branchsync.conf") || !path_exists(dir, "keys"))
        return bs_errf(err, BS_ENOTNODE,
                       "%s is not a branchsync node: restore needs its "
                       "configuration and key file (backups hold neither)",
                       dir);
    /* Alone with the store, or not at all: a process that kept the old
     * data file open would go on under the old incarnation (INV-1). */
    if ((rv = lock_alone(dir, &lock, err)) != BS_OK)
        return rv;
    if ((rv = bs_keys_load(dir, &sk, err)) != BS_OK) {
        bs_lock_release(lock);
        return rv;
    }
    r.pk = sk + 32; /* an Ed25519 secret key ends with its public key */
    /* Stage the copy as a store of its own, check it is this node's and
     * start the new incarnation there; only then replace the live file. */
    snprintf(stage, sizeof stage, "%s/restore.tmp", dir);
    snprintf(sdir, sizeof sdir, "%s/store", stage);
    snprintf(sdata, sizeof sdata, "%s/data.mdb", sdir);
    snprintf(slock, sizeof slock, "%s/lock.mdb", sdir);
    snprintf(data, sizeof data, "%s/store/data.mdb", dir);
    if ((mkdir(stage, 0700) != 0 && errno != EEXIST) ||
        (mkdir(sdir, 0700) != 0 && errno != EEXIST)) {
        rv = bs_errf(err, BS_EIO, "%s: %s", sdir, strerror(errno));
        goto out;
    }
    if ((rv = copy_file(path, sdata, err)) != BS_OK)
        goto out;
    if ((rv = bs_store_open(stage, &so, &st, err)) != BS_OK) {
        rv = bs_errf(err, BS_EINVAL, "%s is not a branchsync backup", path);
        goto out;
    }
    /* A backup of an older release: upgrade the copy first. */
    if ((rv = bs_upgrade(st, &bs_legacy_v2, err)) == BS_OK)
        rv = bs_store_write(st, new_incarnation, &r, err);
    bs_store_close(st);
    if (rv == BS_ENOTNODE)
        rv = bs_errf(err, BS_EINVAL, "%s is not a branchsync backup", path);
    if (rv == BS_OK && rename(sdata, data) != 0)
        rv = bs_errf(err, BS_EIO, "%s: %s", data, strerror(errno));
out:
    unlink(sdata);
    unlink(slock);
    rmdir(sdir);
    rmdir(stage);
    bs_keys_free(sk);
    bs_lock_release(lock);
    return rv;
}

bs_status_opts
bs_node_status_opts(const bs_node *n)
{
    bs_status_opts o = {0};

    o.now_ms = bs_clock_system.now_ms(NULL);
    o.retention_ms = (uint64_t)n->cfg.retention_days * 86400000ull;
    o.clock = bs_clock_system;
    o.max_skew_ms = (uint64_t)n->cfg.max_skew_s * 1000;
    o.clock_ahead = n->cfg.clock_ahead;
    return o;
}
