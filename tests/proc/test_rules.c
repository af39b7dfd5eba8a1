/*
 * test_rules.c - access rules between real daemons (issue 9 item 1, "Tests
 * and figures"): a head office and three branch daemons on 127.0.0.1.  The
 * branches go offline; the head office declares its rules (prices
 * hub-only, orders owned through their `office` field); each branch,
 * not knowing them, makes writes they forbid next to legal ones; the
 * branches come back and sync.  Every node must end with the same digest,
 * no forbidden change applied anywhere, every legal one everywhere, and
 * the head office's status (issue 9 item 8) must count, per branch, the
 * changes it refused by rule.  Every wait is a bounded poll.
 *
 * Run: test_proc_rules --verbose; BS_PROC_KEEP=1 keeps the directory.
 */
#include "proc_util.h"

TestSuite(proc_rules, .init = p_setup, .fini = p_teardown, .timeout = 300);

#define NB 3

static node *hub, *br[NB];

/* Every branch converged with the hub?  If not, nudge: each branch asks
 * its daemon for an exchange with the hub now (a failure is retried by
 * the next poll). */
static int
converged_or_sync(void)
{
    run r = {0};
    int all = 1;

    for (int i = 0; i < NB && all; i++)
        all = digests_equal(hub, br[i]);
    if (all)
        return 1;
    for (int i = 0; i < NB; i++) {
        CLI(&r, br[i], "sync", "head");
        run_free(&r);
    }
    return 0;
}

/* office `name` in the hub's `status --json`: its refused_by_rule object. */
static long long
refused_at_hub(const char *name, char *first, size_t fn)
{
    json_t *j = node_status(hub), *o, *x = NULL;
    long long n = -1;
    size_t i;

    json_array_foreach(
        json_object_get(j, "offices"), i,
        o) if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0)
        x = json_object_get(o, "refused_by_rule");
    if (x != NULL) {
        const char *f = json_string_value(json_object_get(x, "first"));
        n = (long long)json_integer_value(json_object_get(x, "count"));
        snprintf(first, fn, "%s", f ? f : "");
    }
    json_decref(j);
    return n;
}

static void
everywhere(const char *coll, const char *id, const char *needle)
{
    cr_assert(node_has(hub, coll, id, needle), "head lacks %s/%s (%s)", coll,
              id, needle);
    for (int i = 0; i < NB; i++)
        cr_assert(node_has(br[i], coll, id, needle), "%s lacks %s/%s (%s)",
                  br[i]->name, coll, id, needle);
}

static void
nowhere(const char *coll, const char *id)
{
    run r = {0};

    cr_assert_eq(CLI(&r, hub, "get", coll, id), 1, "head has %s/%s: %s", coll,
                 id, r.out);
    for (int i = 0; i < NB; i++)
        cr_assert_eq(CLI(&r, br[i], "get", coll, id), 1, "%s has %s/%s: %s",
                     br[i]->name, coll, id, r.out);
    run_free(&r);
}

Test(proc_rules, offline_forbidden_writes_are_refused_everywhere)
{
    static const char *const names[NB] = {"tallinn", "riga", "tartu"};
    char first[512];
    run r = {0};
    int ok;

    hub = node_new("head", 1, 1);
    for (int i = 0; i < NB; i++) {
        br[i] = node_new(names[i], 0, 1);
        node_pair(hub, br[i], "online");
        node_pair(br[i], hub, "online");
    }
    daemon_start(hub);
    for (int i = 0; i < NB; i++)
        daemon_start(br[i]);
    /* Before any rule: tallinn creates an order naming itself. */
    POLL(ok, 20000, node_xlog_ok(br[0], "head") >= 1);
    cr_assert(ok, "tallinn did not join in 20 s");
    CLI_OK(&r, br[0], "put", "orders", "o-tln",
           "{\"office\":\"tallinn\",\"sum\":1}");
    POLL_STEP(ok, 60000, 500, converged_or_sync());
    cr_assert(ok, "the offices did not converge before the rules in 60 s");
    everywhere("orders", "o-tln", "\"office\":\"tallinn\"");

    /* The branches go offline; the head office makes its rules. */
    for (int i = 0; i < NB; i++)
        daemon_stop(br[i]);
    CLI_OK(&r, hub, "collection", "prices", "--writers", "hub");
    CLI_OK(&r, hub, "collection", "orders", "--writers", "owner",
           "--owner-field", "office");
    CLI_OK(&r, hub, "put", "prices", "p1", "{\"eur\":1}");

    /* Offline, each branch writes what the rules forbid (its own check
     * lets it: the rules have not reached it) and what they allow. */
    CLI_OK(&r, br[0], "put", "prices", "p-tln", "{\"eur\":9}");
    CLI_OK(&r, br[0], "put", "orders", "o-tln2",
           "{\"office\":\"tallinn\",\"sum\":2}");
    CLI_OK(&r, br[0], "put", "notes", "n-tln", "{\"text\":\"tallinn\"}");
    CLI_OK(&r, br[1], "put", "orders", "o-tln",
           "{\"office\":\"riga\",\"sum\":5}"); /* a take-over */
    CLI_OK(&r, br[1], "put", "orders", "o-rg", "{\"office\":\"riga\"}");
    CLI_OK(&r, br[2], "del", "orders", "o-tln");               /* not its own */
    CLI_OK(&r, br[2], "put", "orders", "o-tu", "{\"sum\":3}"); /* unnamed */
    CLI_OK(&r, br[2], "put", "notes", "n-tu", "{\"text\":\"tartu\"}");

    /* Back online: everything travels, through the hub. */
    for (int i = 0; i < NB; i++)
        daemon_start(br[i]);
    POLL_STEP(ok, 90000, 500,
              converged_or_sync() &&
                  node_has(br[2], "notes", "n-tln", "tall") &&
                  node_has(br[0], "notes", "n-tu", "tartu") &&
                  node_has(br[0], "orders", "o-rg", "riga"));
    cr_assert(ok, "the offices did not converge after the rules in 90 s");
    for (int i = 0; i < NB; i++)
        cr_assert(digests_equal(hub, br[i]), "%s differs from head",
                  br[i]->name);

    /* No forbidden change applied anywhere ... */
    nowhere("prices", "p-tln");
    nowhere("orders", "o-tu");
    everywhere("orders", "o-tln", "\"office\":\"tallinn\"");
    everywhere("orders", "o-tln", "\"sum\":1");
    /* ... every legal one everywhere. */
    everywhere("prices", "p1", "\"eur\":1");
    everywhere("orders", "o-tln2", "\"office\":\"tallinn\"");
    everywhere("orders", "o-rg", "\"office\":\"riga\"");
    everywhere("notes", "n-tln", "tallinn");
    everywhere("notes", "n-tu", "tartu");

    /* The head office's status counts them per branch, with the first. */
    cr_assert_eq(refused_at_hub("tallinn", first, sizeof first), 1);
    cr_assert(strstr(first, "only the hub writes prices"), "%s", first);
    cr_assert_eq(refused_at_hub("riga", first, sizeof first), 1);
    cr_assert(strstr(first, "orders/o-tln belongs to tallinn (office)"), "%s",
              first);
    cr_assert_eq(refused_at_hub("tartu", first, sizeof first), 2);
    cr_assert(strstr(first, "orders/o-tln"), "%s", first);
    CLI(&r, hub, "doctor");
    cr_assert_eq(r.status, 1, "doctor: exit %d: %s", r.status, r.out);
    for (int i = 0; i < NB; i++) {
        char line[128];

        snprintf(line, sizeof line, "refused_by_rule %s: ", names[i]);
        cr_assert(strstr(r.out, line) != NULL, "doctor: no \"%s\": %s", line,
                  r.out);
    }
    run_free(&r);
    p_pass();
}
