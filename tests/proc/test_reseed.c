/*
 * test_reseed.c - a branch back after the retention limit, with real
 * daemons (issue 12 items 4 and 5; README "Back after the retention
 * limit"; docs/operations.md "Re-seeding and compaction").
 *
 * The two nodes exchange, the branch edits offline, the hub deletes; then
 * each node's record of the other is moved 100 days back through the core
 * API (the daemons cannot be given a clock), so that each sees the other
 * as silent past the 90-day limit.  With both daemons running: the
 * branch's `sync` is refused, naming `peer seed`; `status` at the hub says
 * the branch needs a full resync; `peer seed` and the hub's `sync` seed
 * the branch again; then both hold the same data, the branch's edit
 * reached the hub, the deleted record is nowhere, neither is stale, the
 * next exchange goes from the log, and `compact` answers.
 */
#include "../../node/node.h"
#include "../../replication/peers.h"
#include "proc_util.h"

#define DAY_MS 86400000ull

TestSuite(reseed, .init = p_setup, .fini = p_teardown, .timeout = 240);

typedef struct age_ctx {
    const char *peer;
    uint64_t back_ms;
} age_ctx;

static bs_err
age_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    age_ctx *x = arg;
    bs_peer p;
    bs_err rv;

    (void)err;
    if ((rv = bs_peer_get(t, x->peer, &p)) != BS_OK)
        return rv;
    p.last_ok_ms -= x->back_ms;
    p.created_ms -= x->back_ms;
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    return rv;
}

/* Move n's record of its peer `peer` back by `back_ms` (no daemon runs). */
static void
age_peer(const node *n, const char *peer, uint64_t back_ms)
{
    age_ctx x = {peer, back_ms};
    bs_errbuf err = {{0}};
    bs_node *bn;

    cr_assert_eq(bs_node_open(n->dir, 0, &bn, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(bs_store_write(bn->store, age_txn, &x, &err), BS_OK, "%s",
                 err.msg);
    bs_node_close(bn);
}

/* `status --json` at n: whether its peer `peer` needs a full resync. */
static int
needs_resync(const node *n, const char *peer)
{
    json_t *st = node_status(n), *p;
    size_t i;
    int v = -1;

    json_array_foreach(json_object_get(st, "peers"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "name")), peer) == 0)
            v = json_is_true(json_object_get(p, "needs_full_resync"));
    }
    json_decref(st);
    cr_assert_neq(v, -1, "%s: no peer %s in status", n->name, peer);
    return v;
}

Test(reseed, a_branch_back_after_the_limit_is_seeded_again_by_its_hub)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    char f[PATH_MAX + 16], da[256], db[256];
    run r = {0};
    int st;

    node_pair(hub, br, NULL);
    node_pair(br, hub, NULL);
    snprintf(f, sizeof f, "%s/x.bsx", hub->dir);
    CLI_OK(&r, hub, "put", "items", "a", "{\"v\":\"x\"}");
    CLI_OK(&r, hub, "put", "items", "c", "{\"v\":\"x\"}");
    CLI_OK(&r, hub, "export", "tallinn", f);
    CLI_OK(&r, br, "import", f);
    CLI_OK(&r, br, "export", "head", f);
    CLI_OK(&r, hub, "import", f);
    /* offline: the branch edits, the hub deletes; 100 days pass */
    CLI_OK(&r, br, "put", "items", "c", "{\"v\":\"branch\"}");
    CLI_OK(&r, hub, "del", "items", "a");
    age_peer(hub, "tallinn", 100 * DAY_MS);
    age_peer(br, "head", 100 * DAY_MS);
    daemon_start(hub);
    daemon_start(br);
    st = CLI(&r, br, "sync", "head");
    cr_assert_eq(st, 1, "a stale branch's sync: exit %d\n%s", st, r.err);
    cr_assert(strstr(r.err, "peer seed tallinn") != NULL, "%s", r.err);
    cr_assert(needs_resync(hub, "tallinn"));
    /* the remedy */
    CLI_OK(&r, hub, "peer", "seed", "tallinn");
    CLI_OK(&r, hub, "sync", "tallinn");
    CLI_OK(&r, br, "sync", "head");
    node_digest(hub, da, sizeof da);
    node_digest(br, db, sizeof db);
    cr_assert_str_eq(da, db, "digests differ after the re-seed");
    cr_assert(node_has(hub, "items", "c", "branch"), "the branch's edit");
    cr_assert_not(node_has(br, "items", "a", "x"), "the deleted record");
    cr_assert_not(needs_resync(hub, "tallinn"));
    cr_assert_not(needs_resync(br, "head"));
    /* the log goes on */
    CLI_OK(&r, br, "put", "items", "e", "{\"v\":\"after\"}");
    CLI_OK(&r, br, "sync", "head");
    cr_assert(node_has(hub, "items", "e", "after"));
    CLI_OK(&r, hub, "compact", "--json");
    cr_assert(strstr(r.out, "\"compacted_sets\"") != NULL, "%s", r.out);
    run_free(&r);
    p_pass();
}
