/*
 * test_sync.c - `sync` and the daemon when an exchange does not go through
 * as a whole, with real daemons on 127.0.0.1 and, where a test needs a
 * clock of its own or a stored set it can spoil, a node made in this
 * process through the core API (tests/lib/fixture.h) that dials a real
 * daemon with the CLI's own exchange loop (node/client.h):
 *
 *  1. a peer that is down: `sync` fails within the connect timeout,
 *     naming the address, directly and through the daemon, whose link
 *     logs each failed attempt and when the next comes;
 *  2. sets the peer sent that this node refused: `sync` exits 1 (not 2)
 *     naming them, and `status` and `log` keep them;
 *  3. sets a daemon refused as the responder: its log line, its exchange
 *     log and its `status` say "refused", not "ok"; the sender is told its
 *     set was not acknowledged;
 *  4. a set held at a daemon for its clock applies when its time comes,
 *     with no traffic at all (the held-set timer), and its sender is told.
 */
/* proc_util.h is header-only: this file uses some of its helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "proc_util.h"

#include "../../node/client.h"
#include "../../replication/local.h"
#include "../../replication/pairing.h"
#include "../../replication/setlog.h"
#include "../../replication/streams.h"
#include "../lib/fixture.h"

TestSuite(sync, .init = p_setup, .fini = p_teardown, .timeout = 300);

/* Set `key = value` in n's branchsync.conf (the line init wrote). */
static void
conf_set(const node *n, const char *key, const char *value)
{
    char path[PATH_MAX + 32], *s, *line, *eol, *out;
    size_t len, klen = strlen(key);
    FILE *f;

    snprintf(path, sizeof path, "%s/branchsync.conf", n->dir);
    s = p_read_file(path, &len);
    for (line = s; line != NULL && *line; line = eol ? eol + 1 : NULL) {
        eol = strchr(line, '\n');
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            break;
    }
    cr_assert(line != NULL && *line, "%s has no %s line", path, key);
    cr_assert_not_null(out = malloc(len + strlen(value) + 64));
    memcpy(out, s, (size_t)(line - s));
    sprintf(out + (line - s), "%s = %s%s", key, value, eol ? eol : "");
    cr_assert_not_null(f = fopen(path, "w"));
    fputs(out, f);
    fclose(f);
    free(out);
    free(s);
}

/* ---- 1. a peer that is down ---- */

Test(sync, a_peer_that_is_down_fails_within_the_connect_timeout)
{
    node *head = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    char addr[128];
    long from;
    run r = {0};
    int ok;

    node_pair(head, br, "manual");
    node_pair(br, head, "manual");
    conf_set(br, "connect_timeout_s", "2");
    snprintf(addr, sizeof addr, "cannot connect to head at %s", head->endpoint);
    /* No daemon anywhere: the CLI dials head itself. */
    cr_assert_eq(CLI(&r, br, "sync", "head"), 1, "%s", r.err);
    cr_assert(strstr(r.err, addr) && strstr(r.err, "within 2 s"), "%s", r.err);
    cr_assert_lt(r.ms, 8000, "took %llu ms", (unsigned long long)r.ms);
    run_free(&r);
    /* Through the branch's daemon: the same, as soon. */
    daemon_start(br);
    cr_assert_eq(CLI(&r, br, "sync", "head"), 1, "%s", r.err);
    cr_assert(strstr(r.err, addr), "%s", r.err);
    cr_assert_lt(r.ms, 8000, "took %llu ms", (unsigned long long)r.ms);
    run_free(&r);
    /* An online link keeps trying; each failed attempt is logged with the
     * address and when the next comes. */
    from = p_file_size(br->logpath);
    CLI_OK(&r, br, "schedule", "head", "online");
    run_free(&r);
    POLL(ok, 20000, p_file_has(br->logpath, from, "attempt 2 failed, next in"));
    cr_assert(ok, "no retries logged");
    cr_assert(p_file_has(br->logpath, from, addr));
    /* The peer comes up: the link gets through by itself. */
    daemon_start(head);
    POLL(ok, 30000,
         (CLI(&r, br, "status", "--json"),
          strstr(r.out, "\"last_error\": \"\"") ||
              strstr(r.out, "\"last_error\":\"\"")));
    run_free(&r);
    cr_assert_eq(CLI(&r, br, "sync", "head"), 0, "%s", r.err);
    run_free(&r);
    p_pass();
}

/* ---- 2. refused sets make `sync` exit 1 ---- */

/* `a export b FILE` then `b import FILE`. */
static void
carry(node *a, node *b)
{
    char path[PATH_MAX + 64];
    run r = {0};

    snprintf(path, sizeof path, "%s/%s-to-%s.bsx", p_base, a->name, b->name);
    CLI_OK(&r, a, "export", b->name, path);
    run_free(&r);
    CLI_OK(&r, b, "import", path);
    run_free(&r);
}

Test(sync, refused_sets_from_the_peer_make_sync_exit_1_naming_them)
{
    node *head = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1),
         *x = node_new("tartu", 0, 1);
    run r = {0};
    json_t *j, *p;
    size_t i;
    int found = 0;

    node_pair(head, br, "manual");
    node_pair(br, head, "manual");
    node_pair(head, x, "manual");
    node_pair(x, head, "manual");
    node_pair(br, x, "manual");
    node_pair(x, br, "manual");
    carry(head, br); /* both join */
    carry(head, x);
    CLI_OK(&r, x, "put", "customers", "x1", "{\"city\":\"Tartu\"}");
    run_free(&r);
    carry(x, head);
    carry(x, br);
    /* The hub revokes tartu: its later sets are refused at the hub. */
    CLI_OK(&r, head, "peer", "rm", "tartu");
    run_free(&r);
    CLI_OK(&r, x, "put", "customers", "x2", "{\"city\":\"Tartu\"}");
    run_free(&r);
    carry(x, br); /* tallinn has not heard of the revocation */
    daemon_start(br);
    /* tallinn sends tartu's second set before anything of the hub's
     * reaches it: the hub refuses it.  Not bad usage: exit 1. */
    cr_assert_eq(CLI(&r, head, "sync", "tallinn"), 1, "%s", r.err);
    cr_assert(
        strstr(r.err, "refused 1 change set that tallinn sent (first: ") &&
            strstr(r.err, "revoked"),
        "%s", r.err);
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "one line");
    run_free(&r);
    CLI_OK(&r, head, "status", "--json");
    j = p_json(&r);
    json_array_foreach(json_object_get(j, "peers"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "name")), "tallinn"))
            continue;
        found = 1;
        cr_assert_eq(json_integer_value(json_object_get(p, "refused_sets")), 1);
        cr_assert(strstr(json_string_value(json_object_get(p, "last_error")),
                         "refused 1 change set"));
    }
    cr_assert(found);
    json_decref(j);
    run_free(&r);
    p_pass();
}

/* ---- a node in this process, dialling the daemons ---- */

/* A wall clock `ahead_ms` ahead of the system's. */
static uint64_t ahead_ms;

static uint64_t
ahead_now(void *ctx)
{
    (void)ctx;
    return bs_clock_system.now_ms(NULL) + ahead_ms;
}

/* Make `name` in p_base with the clock above, paired both ways with the
 * hub `head` (which runs its daemon), and joined. */
static void
inproc_node(bst_node *t, const char *name, node *head)
{
    bs_clock clock = {ahead_now, NULL, NULL};
    bs_pair p = {"head", head->endpoint, {0}, "manual", ""};
    char id[BS_NODE_ID_LEN + 1];
    bs_errbuf err = {{0}};
    bs_err rv;
    run r = {0};

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_node_new(t, p_base, name, BS_ROLE_BRANCH, &clock);
    cr_assert_eq(bs_node_id_parse(head->id, p.pk), BS_OK);
    rv = bs_pairing_add(&t->core, &p, NULL, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    bs_node_id_format(bst_meta(t).pk, id);
    CLI_OK(&r, head, "peer", "add", name, "tcp://127.0.0.1:9", id, "--schedule",
           "manual");
    run_free(&r);
}

/* One exchange of t with "head", as `sync` runs it. */
static bs_err
inproc_sync(bst_node *t, bs_session_stats *st, char *problem, size_t np,
            bs_errbuf *err)
{
    bs_client_opts o = {60000, 5000, t->core.clock};
    bs_zmq *z;
    bs_err rv;

    if ((rv = bs_zmq_new(&z, err)) != BS_OK)
        return rv;
    rv = bs_client_sync(t->n, z, "head", &o, st, problem, np, err);
    bs_zmq_free(z);
    return rv;
}

/* A set t signs that the hub must refuse: a branch writing a system
 * collection (protocol A11; the CLI never lets one through, the core API
 * below it does). */
static bs_err
forbidden_txn(bs_txn *txn, void *arg, bs_errbuf *err)
{
    bst_node *t = arg;
    bs_field f = {0};
    bs_local l;
    bs_err rv;

    f.name = "policy";
    f.val.type = BS_VTEXT;
    f.val.s = "manual";
    f.val.len = 6;
    if ((rv = bs_local_begin(&l, txn, &t->core, err)) == BS_OK &&
        (rv = bs_local_put(&l, "_collections", "customers", &f, 1, err)) ==
            BS_OK)
        rv = bs_local_finish(&l, err);
    bs_local_fini(&l);
    return rv;
}

/* ---- 3. a daemon that refuses sets says so ---- */

Test(sync, a_daemon_that_refused_sets_logs_and_records_it)
{
    node *head = node_new("head", 1, 1);
    bst_node t;
    bs_session_stats st;
    char problem[BS_ERRMSG_LEN];
    bs_errbuf err = {{0}};
    json_t *j, *p, *last;
    long from;
    int ok;
    size_t i;
    run r = {0};
    bs_err rv;

    ahead_ms = 0;
    daemon_start(head);
    inproc_node(&t, "tartu", head);
    rv = inproc_sync(&t, &st, problem, sizeof problem, &err);
    cr_assert_eq(rv, BS_OK, "join: %s", bs_errmsg(&err, rv));
    cr_assert_str_eq(problem, "");
    rv = bs_store_write(t.core.store, forbidden_txn, &t, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    /* The daemon logs the join's exchange once its side ends, which may be
     * after ours: only then is the log's end where the next one starts. */
    POLL(ok, 10000, p_file_has(head->logpath, 0, "result=ok"));
    cr_assert(ok, "the join's exchange is not in the daemon log");
    from = p_file_size(head->logpath);
    rv = inproc_sync(&t, &st, problem, sizeof problem, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    /* The sender: its set was not acknowledged. */
    cr_assert_eq(st.held_there, 1);
    cr_assert_str_eq(problem, "1 change set sent to head was held or "
                              "refused there; see head's status");
    /* The daemon: a warning, not "result=ok" (written once its side of
     * the exchange ends, which may be after ours)... */
    POLL(ok, 10000,
         p_file_has(head->logpath, from,
                    "result=problem: refused 1 change set that tartu "
                    "sent (first: "));
    cr_assert(ok, "no refusal in the daemon log");
    cr_assert(!p_file_has(head->logpath, from, "result=ok"));
    /* ... its exchange log... */
    CLI_OK(&r, head, "log", "tartu", "--json");
    j = p_json(&r);
    last = json_array_get(j, json_array_size(j) - 1);
    cr_assert(strstr(json_string_value(json_object_get(last, "result")),
                     "refused 1 change set that tartu sent"),
              "%s", r.out);
    json_decref(j);
    run_free(&r);
    /* ... and its status, with the first reason. */
    CLI_OK(&r, head, "status", "--json");
    j = p_json(&r);
    json_array_foreach(json_object_get(j, "peers"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "name")), "tartu"))
            continue;
        cr_assert_eq(json_integer_value(json_object_get(p, "refused_sets")), 1);
        cr_assert(
            strstr(json_string_value(json_object_get(p, "refused_reason")),
                   "only the hub writes _collections"),
            "%s", r.out);
    }
    json_decref(j);
    run_free(&r);
    bst_node_free(&t);
    p_pass();
}

/* ---- 4. held sets are retried on a timer ---- */

Test(sync, a_set_held_for_its_clock_applies_when_its_time_comes)
{
    node *head = node_new("head", 1, 1);
    bst_node t;
    bs_session_stats st;
    char problem[BS_ERRMSG_LEN];
    bs_errbuf err = {{0}};
    run r = {0};
    bs_err rv;
    int ok;

    /* The hub holds anything stamped more than 1 s ahead of its clock;
     * tartu's clock is 4 s ahead (within its own bound: it corrects
     * nothing). */
    conf_set(head, "max_skew_s", "1");
    ahead_ms = 4000;
    daemon_start(head);
    inproc_node(&t, "tartu", head);
    rv = inproc_sync(&t, &st, problem, sizeof problem, &err);
    cr_assert_eq(rv, BS_OK, "join: %s", bs_errmsg(&err, rv));
    rv = bst_put(&t, "customers", "c1", "{\"city\":\"Tartu\"}", &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    rv = inproc_sync(&t, &st, problem, sizeof problem, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    /* Held at the hub, and the sender knows. */
    cr_assert_eq(st.held_there, 1, "%s", problem);
    cr_assert(strstr(problem, "1 change set sent to head was held"), "%s",
              problem);
    cr_assert_neq(CLI(&r, head, "get", "customers", "c1"), 0);
    run_free(&r);
    /* Nothing more is sent: the hub's timer applies it when its time
     * comes (about 3 s from now). */
    POLL(ok, 15000, CLI(&r, head, "get", "customers", "c1") == 0);
    cr_assert(ok, "the held set was never retried");
    cr_assert(strstr(r.out, "Tartu"), "%s", r.out);
    run_free(&r);
    cr_assert(
        p_file_has(head->logpath, 0, "held sets retried: 1 of 1 applied"));
    bst_node_free(&t);
    p_pass();
}
