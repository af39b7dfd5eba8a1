/*
 * test_purge.c - tombstones are dropped only after every paired peer has
 * acknowledged the delete and it is older than the retention limit
 * (replication/purge.h, INV-7); a peer silent past the limit stops holding
 * purges back.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../node/node.h"
#include "../../replication/bundle.h"
#include "../../replication/local.h"
#include "../../replication/peers.h"
#include "../../replication/purge.h"
#include "../../replication/collections.h"
#include "../../replication/members.h"

static char root[64];
static bs_node *hub, *br;
static const uint8_t *hub_sk, *br_sk;

static bs_node *
mk(const char *name, int role, const uint8_t **sk)
{
    char dir[128];
    bs_node_init in = {name, role, NULL};
    bs_errbuf err = {{0}};
    bs_node *n;

    snprintf(dir, sizeof dir, "%s/%s", root, name);
    cr_assert_eq(bs_node_create(dir, &in, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(bs_node_open(dir, 0, &n, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(bs_node_secret(n, sk, &err), BS_OK, "%s", err.msg);
    return n;
}

typedef struct wctx {
    const uint8_t *sk;
    const char *id;
    int del;
    bs_peer *peer;
    const char *member;
} wctx;

static bs_err
write_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    wctx *w = arg;
    bs_local l;
    bs_field f;
    bs_err rv;

    if (w->peer != NULL && (rv = bs_peer_put(t, w->peer)) != BS_OK)
        return rv;
    if (w->id == NULL && w->member == NULL)
        return BS_OK;
    memset(&f, 0, sizeof f);
    f.name = w->member ? "name" : "v";
    f.val.type = BS_VTEXT;
    f.val.s = w->member ? "tallinn" : "x";
    f.val.len = (uint32_t)strlen(f.val.s);
    if ((rv = bs_local_begin(&l, t, w->sk, bs_clock_system, err)) == BS_OK) {
        if (w->member)
            rv = bs_local_put(&l, BS_SYS_MEMBERS, w->member, &f, 1, err);
        else if (w->del)
            rv = bs_local_del(&l, "items", w->id, err);
        else
            rv = bs_local_put(&l, "items", w->id, &f, 1, err);
        if (rv == BS_OK)
            rv = bs_local_finish(&l, err);
    }
    bs_local_fini(&l);
    return rv;
}

static void
write(bs_node *n, const uint8_t *sk, const char *id, int del)
{
    wctx w = {sk, id, del, NULL, NULL};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_store_write(n->store, write_txn, &w, &err), BS_OK, "%s",
                 err.msg);
}

static void
pair(bs_node *a, const uint8_t *sk, bs_node *b, int introduce)
{
    bs_peer p;
    char id[BS_NODE_ID_LEN + 1];
    wctx w = {sk, NULL, 0, &p, NULL};
    bs_errbuf err = {{0}};

    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", b->meta.name);
    snprintf(p.endpoint, sizeof p.endpoint, "tcp://127.0.0.1:1");
    snprintf(p.schedule, sizeof p.schedule, "manual");
    memcpy(p.pk, b->meta.pk, BS_PK_LEN);
    p.created_ms = bs_clock_system.now_ms(NULL);
    bs_node_id_format(b->meta.pk, id);
    if (introduce)
        w.member = id;
    cr_assert_eq(bs_store_write(a->store, write_txn, &w, &err), BS_OK, "%s",
                 err.msg);
}

static void
xfer(bs_node *from, const uint8_t *sk, const char *peer, bs_node *to)
{
    char path[128];
    bs_xstats st;
    bs_errbuf err = {{0}};

    snprintf(path, sizeof path, "%s/x.bsx", root);
    cr_assert_eq(bs_bundle_export(from->store, sk, peer, path,
                                  bs_clock_system.now_ms(NULL), &st, &err),
                 BS_OK, "%s", err.msg);
    cr_assert_eq(bs_bundle_import(to->store, br_sk, path, bs_clock_system,
                                  60000, &st, &err),
                 BS_OK, "%s", err.msg);
}

typedef struct pctx {
    uint64_t now, retention;
    bs_purge_stats st;
} pctx;

static bs_err
purge_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    pctx *p = arg;

    return bs_purge_tombstones(t, p->now, p->retention, &p->st, err);
}

static bs_purge_stats
purge(bs_node *n, uint64_t now, uint64_t retention)
{
    pctx p = {now, retention, {0}};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_store_write(n->store, purge_txn, &p, &err), BS_OK, "%s",
                 err.msg);
    return p.st;
}

static void
setup(void)
{
    snprintf(root, sizeof root, "/tmp/bs-purge-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    cr_assert_eq(bs_crypto_init(), BS_OK);
    hub = mk("head", BS_ROLE_HUB, &hub_sk);
    br = mk("tallinn", BS_ROLE_BRANCH, &br_sk);
    pair(hub, hub_sk, br, 1);
    pair(br, br_sk, hub, 0);
}

static void
teardown(void)
{
    char cmd[128];

    bs_node_close(hub);
    bs_node_close(br);
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(purge, .init = setup, .fini = teardown, .timeout = 60);

Test(purge, inv7_only_after_every_peer_acknowledged)
{
    uint64_t hour = 3600000, t1;
    bs_purge_stats st;

    write(hub, hub_sk, "a", 0);
    write(hub, hub_sk, "b", 0);
    xfer(hub, hub_sk, "tallinn", br);
    write(hub, hub_sk, "a", 1); /* the delete: the branch has not seen it */
    t1 = bs_clock_system.now_ms(NULL);
    /* The branch is heard from after the delete, but without it. */
    xfer(br, br_sk, "head", hub);

    st = purge(hub, t1 + hour / 2, hour);
    cr_assert_eq(st.tombstones, 1);
    cr_assert_eq(st.purged, 0);
    cr_assert_eq(st.too_recent, 1, "younger than the retention limit");

    st = purge(hub, t1 + hour, hour);
    cr_assert_eq(st.purged, 0, "the branch has not acknowledged the delete");
    cr_assert_eq(st.held_by_peers, 1);

    xfer(hub, hub_sk, "tallinn", br);
    xfer(br, br_sk, "head", hub); /* now its acknowledgement covers it */
    st = purge(hub, t1 + hour, hour);
    cr_assert_eq(st.purged, 1, "acknowledged by every peer and old enough");
    st = purge(hub, t1 + hour, hour);
    cr_assert_eq(st.tombstones, 0, "gone");
}

Test(purge, a_peer_silent_past_the_retention_no_longer_holds_purges)
{
    uint64_t day = 86400000, t1;
    bs_purge_stats st;

    write(hub, hub_sk, "a", 0);
    write(hub, hub_sk, "a", 1);
    t1 = bs_clock_system.now_ms(NULL);
    xfer(br, br_sk, "head", hub); /* heard from, without the delete */
    st = purge(hub, t1 + 2 * day, 2 * day);
    cr_assert_eq(st.purged, 0);
    cr_assert_eq(st.held_by_peers, 1);
    /* Silent for longer than the limit: it needs a full resync (status
     * says so) and no longer holds the purge back. */
    st = purge(hub, t1 + 5 * day, 2 * day);
    cr_assert_eq(st.purged, 1);
}
