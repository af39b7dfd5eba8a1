/*
 * test_movein.c - move-in between real daemons (issue 9 item 4): a head
 * office and two branch daemons on 127.0.0.1, linked online.  Orders are
 * owner-scoped by their `office` field; tallinn writes an order, the head
 * office gives it to riga.  Over the network, riga asks for the record
 * and the head office answers with a record snapshot: riga ends with the
 * whole order (fields written before the move included), tallinn drops
 * it, and each branch's scope converges.  Every wait is a bounded poll.
 *
 * Run: test_proc_movein --verbose; BS_PROC_KEEP=1 keeps the directory.
 */
#include "proc_util.h"

TestSuite(proc_movein, .init = p_setup, .fini = p_teardown, .timeout = 300);

static node *hub, *tln, *rg;

/* cond holds; if not, each branch asks its daemon for an exchange now. */
static int
or_sync(int cond)
{
    run r = {0};

    if (cond)
        return 1;
    CLI(&r, tln, "sync", "head");
    run_free(&r);
    CLI(&r, rg, "sync", "head");
    run_free(&r);
    return 0;
}

static int
lacks(node *n, const char *coll, const char *id)
{
    run r = {0};
    int st = CLI(&r, n, "get", coll, id);

    run_free(&r);
    return st == 1;
}

Test(proc_movein, a_moved_record_reaches_its_new_owner_whole)
{
    run r = {0};
    int ok;

    hub = node_new("head", 1, 1);
    tln = node_new("tallinn", 0, 1);
    rg = node_new("riga", 0, 1);
    node_pair(hub, tln, "online");
    node_pair(tln, hub, "online");
    node_pair(hub, rg, "online");
    node_pair(rg, hub, "online");
    CLI_OK(&r, hub, "collection", "orders", "--scope", "owner", "--owner-field",
           "office");
    daemon_start(hub);
    daemon_start(tln);
    daemon_start(rg);
    POLL(ok, 20000,
         node_xlog_ok(tln, "head") >= 1 && node_xlog_ok(rg, "head") >= 1);
    cr_assert(ok, "the branches did not join in 20 s");
    CLI_OK(&r, tln, "put", "orders", "o1",
           "{\"office\":\"tallinn\",\"sum\":7,\"note\":\"rush\"}");
    POLL_STEP(ok, 60000, 500,
              or_sync(node_has(hub, "orders", "o1", "\"sum\":7")));
    cr_assert(ok, "the order did not reach the head office in 60 s");
    cr_assert(lacks(rg, "orders", "o1"), "riga holds tallinn's order");

    /* The head office gives the order to riga. */
    CLI_OK(&r, hub, "put", "orders", "o1", "{\"office\":\"riga\"}");
    POLL_STEP(ok, 60000, 500,
              or_sync(node_has(rg, "orders", "o1", "\"sum\":7") &&
                      node_has(rg, "orders", "o1", "\"office\":\"riga\"") &&
                      lacks(tln, "orders", "o1")));
    cr_assert(ok, "riga did not get the whole order in 60 s (or tallinn "
                  "kept it)");
    cr_assert(node_has(rg, "orders", "o1", "\"note\":\"rush\""));
    run_free(&r);
    p_pass();
}
