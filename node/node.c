/*
 * node.c - creating and opening node directories.
 */
#include "node.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../replication/keys.h"
#include "../replication/streams.h"

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

bs_err
bs_node_create(const char *dir, const bs_node_init *in, bs_errbuf *err)
{
    bs_config cfg;
    bs_meta meta;
    bs_store *store;
    bs_store_opts so = {.create = 1};
    create_ctx cc = {&meta};
    int made_dir = 0;
    bs_err rv;

    if (path_exists(dir, "branchsync.conf") || path_exists(dir, "store") ||
        path_exists(dir, "keys"))
        return bs_errf(err, BS_EEXIST, "%s already holds a branchsync node",
                       dir);
    if (mkdir(dir, 0700) == 0)
        made_dir = 1;
    else if (errno != EEXIST)
        return bs_errf(err, BS_EIO, "%s: %s", dir, strerror(errno));
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
    bs_config_defaults(&cfg);
    if (in->listen)
        snprintf(cfg.listen, sizeof cfg.listen, "%s", in->listen);
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
    if (!path_exists(dir, "branchsync.conf") || !path_exists(dir, "store")) {
        rv =
            bs_errf(err, BS_ENOTNODE,
                    "%s is not a branchsync node (run 'branchsync init')", dir);
        goto err_after_alloc;
    }
    if ((rv = bs_config_load(dir, &n->cfg, err)) != BS_OK)
        goto err_after_alloc;
    so.readonly = readonly;
    so.map_size = n->cfg.map_size_mb << 20;
    so.max_map_size = n->cfg.max_map_size_mb << 20;
    if ((rv = bs_store_open(dir, &so, &n->store, err)) != BS_OK)
        goto err_after_alloc;
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
