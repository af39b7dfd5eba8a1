/*
 * test_region.c - regional hubs with real daemons (issue 12 item 6): one
 * head office, two regional hubs and four branches on 127.0.0.1, set up
 * as an admin would (`peer add … --region` and `member add … --via` at
 * the head office, `peer add … --hub` at each regional hub and branch).
 * The head office declares an owner-scoped collection; every office
 * writes; the changes travel up and down through the regional hubs.  The
 * head office and both regional hubs must end with one digest, every
 * branch with the shared records of everyone and only its own
 * owner-scoped ones, `verify` must pass at the head office (every
 * branch's set there is checked against its origin's key), and `status`
 * at the head office must show each branch under its regional hub, in
 * JSON and as text.  An order the head office then gives to a branch of
 * the other region reaches it whole (move-in through its regional hub)
 * and leaves its old owner; a regional hub seeds its branch again (`peer
 * seed` there).  Every wait is a bounded poll.
 *
 * Run: test_proc_region --verbose; BS_PROC_KEEP=1 keeps the directory.
 */
#include "proc_util.h"

TestSuite(proc_region, .init = p_setup, .fini = p_teardown, .timeout = 300);

#define NB 4

static node *head, *reg[2], *br[NB];

/* The regional hub of branch i. */
static node *
region_of(int i)
{
    return reg[i / 2];
}

/* Everything everywhere?  If not, nudge: each branch and each region asks
 * its daemon for an exchange upwards now (a failure is retried by the
 * next poll). */
static int
converged_or_sync(void)
{
    static const char *const names[NB] = {"e1", "e2", "w1", "w2"};
    run r = {0};
    int all = digests_equal(head, reg[0]) && digests_equal(head, reg[1]);

    for (int i = 0; i < NB && all; i++)
        for (int k = 0; k < NB && all; k++) {
            char id[16];
            snprintf(id, sizeof id, "n-%s", names[k]);
            all = node_has(br[i], "notes", id, "hello") &&
                  node_has(br[i], "catalog", "p1", "price");
        }
    if (all)
        return 1;
    for (int i = 0; i < NB; i++) {
        CLI(&r, br[i], "sync", region_of(i)->name);
        run_free(&r);
    }
    for (int i = 0; i < 2; i++) {
        CLI(&r, reg[i], "sync", "head");
        run_free(&r);
    }
    return 0;
}

/* Office `name` in `status --json` of the head office (NULL if absent;
 * a new reference). */
static json_t *
office_at_head(const char *name)
{
    json_t *j = node_status(head), *o, *x = NULL;
    size_t i;

    json_array_foreach(json_object_get(j, "offices"), i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        if (nm != NULL && strcmp(nm, name) == 0)
            x = json_incref(o);
    }
    json_decref(j);
    return x;
}

/* Has branch i joined (its status names an infobase)? */
static int
joined(int i)
{
    json_t *j = node_status(br[i]);
    json_t *ib = json_object_get(j, "infobase");
    int ok = json_is_string(ib) && strlen(json_string_value(ib)) == 32;

    json_decref(j);
    return ok;
}

/* Has order o-e1, moved to w2, reached w2 whole (its total came with it:
 * only the head office's snapshot holds it) and left e1?  If not, nudge
 * as converged_or_sync does. */
static int
moved_or_sync(void)
{
    run r = {0};

    if (node_has(br[3], "orders", "o-e1", "\"total\":1") &&
        node_records(br[0], "orders") == 0)
        return 1;
    for (int i = 0; i < NB; i++) {
        CLI(&r, br[i], "sync", region_of(i)->name);
        run_free(&r);
    }
    for (int i = 0; i < 2; i++) {
        CLI(&r, reg[i], "sync", "head");
        run_free(&r);
    }
    return 0;
}

/* Branch i's incarnation, from its `status --json` (malloc'd). */
static char *
incarnation_of(int i)
{
    json_t *j = node_status(br[i]);
    const char *inc = json_string_value(json_object_get(j, "incarnation"));
    char *out = strdup(inc ? inc : "");

    json_decref(j);
    return out;
}

/* Has w1 been seeded again by west (a new incarnation, its data whole)?
 * If not, nudge: w1 asks west (refused until west holds the head
 * office's snapshots), west asks the head office. */
static int
reseeded_or_sync(const char *before)
{
    char *now = incarnation_of(2);
    run r = {0};
    int done = strcmp(now, before) != 0 &&
               node_has(br[2], "orders", "o-w1", "w1") &&
               node_has(br[2], "notes", "n-e1", "hello") &&
               node_records(br[2], "orders") == 1;

    free(now);
    if (done)
        return 1;
    CLI(&r, br[2], "sync", "west");
    run_free(&r);
    CLI(&r, reg[1], "sync", "head");
    run_free(&r);
    return 0;
}

Test(proc_region, a_tree_of_two_regions_and_four_branches_converges)
{
    static const char *const names[NB] = {"e1", "e2", "w1", "w2"};
    run r = {0};
    int ok;

    head = node_new("head", 1, 1);
    reg[0] = node_new("east", 0, 1);
    reg[1] = node_new("west", 0, 1);
    for (int i = 0; i < NB; i++)
        br[i] = node_new(names[i], 0, 1);
    for (int i = 0; i < 2; i++) {
        CLI_OK(&r, head, "peer", "add", reg[i]->name, reg[i]->endpoint,
               reg[i]->id, "--region", "--schedule", "online");
        CLI_OK(&r, reg[i], "peer", "add", "head", head->endpoint, head->id,
               "--hub", "--schedule", "online");
    }
    for (int i = 0; i < NB; i++) {
        node *rg = region_of(i);
        CLI_OK(&r, head, "member", "add", br[i]->name, br[i]->id, "--via",
               rg->name);
        node_pair(rg, br[i], "online");
        CLI_OK(&r, br[i], "peer", "add", rg->name, rg->endpoint, rg->id,
               "--hub", "--schedule", "online");
    }
    /* A member cannot be relayed by a node that is not a regional hub. */
    cr_assert_eq(CLI(&r, head, "member", "add", "x9", br[0]->id, "--via", "e1"),
                 2, "member add --via a branch: %s", r.err);
    CLI_OK(&r, head, "collection", "orders", "--scope", "owner",
           "--owner-field", "shop", "--writers", "owner");
    CLI_OK(&r, head, "put", "catalog", "p1", "{\"price\":10}");

    daemon_start(head);
    for (int i = 0; i < 2; i++)
        daemon_start(reg[i]);
    for (int i = 0; i < NB; i++)
        daemon_start(br[i]);
    for (int i = 0; i < NB; i++) {
        POLL_STEP(ok, 60000, 250, joined(i));
        cr_assert(ok, "%s did not join through %s in 60 s", br[i]->name,
                  region_of(i)->name);
    }
    for (int i = 0; i < NB; i++) {
        char id[16], json[64];
        snprintf(id, sizeof id, "o-%s", names[i]);
        snprintf(json, sizeof json, "{\"shop\":\"%s\",\"total\":%d}", names[i],
                 i + 1);
        CLI_OK(&r, br[i], "put", "orders", id, json);
        snprintf(id, sizeof id, "n-%s", names[i]);
        CLI_OK(&r, br[i], "put", "notes", id, "{\"text\":\"hello\"}");
    }
    POLL_STEP(ok, 120000, 500, converged_or_sync());
    cr_assert(ok, "the tree did not converge in 120 s");

    /* Scopes: every order at the head office and the regions, each
     * branch only its own. */
    for (int i = 0; i < NB; i++) {
        cr_assert_eq(node_records(br[i], "orders"), 1, "%s", br[i]->name);
        for (int k = 0; k < NB; k++) {
            char id[16];
            snprintf(id, sizeof id, "o-%s", names[k]);
            cr_assert(node_has(head, "orders", id, names[k]));
            cr_assert(node_has(reg[0], "orders", id, names[k]));
            cr_assert(node_has(reg[1], "orders", id, names[k]));
            cr_assert_eq(node_has(br[i], "orders", id, names[k]), i == k,
                         "%s and order %s", br[i]->name, id);
        }
    }
    /* Every set at the head office verifies with its origin's key. */
    CLI_OK(&r, head, "verify");

    /* The tree, in JSON: the regions paired, the branches via them. */
    for (int i = 0; i < NB; i++) {
        json_t *o = office_at_head(names[i]);
        cr_assert_not_null(o, "no office %s at head", names[i]);
        cr_assert_str_eq(json_string_value(json_object_get(o, "via")),
                         region_of(i)->name);
        cr_assert(json_is_false(json_object_get(o, "paired")));
        cr_assert_geq(json_integer_value(json_object_get(o, "changes")), 2);
        cr_assert_gt(json_integer_value(json_object_get(o, "last_set_ms")), 0);
        cr_assert(json_is_object(json_object_get(o, "hub_seen")));
        json_decref(o);
    }
    for (int i = 0; i < 2; i++) {
        json_t *o = office_at_head(reg[i]->name);
        cr_assert_not_null(o);
        cr_assert_str_eq(json_string_value(json_object_get(o, "role")),
                         "region");
        cr_assert(json_is_true(json_object_get(o, "paired")));
        json_decref(o);
    }
    /* ... and as text: each branch indented under its region. */
    CLI_OK(&r, head, "status");
    {
        const char *t = strstr(r.out, "\noffices:");
        const char *e = t ? strstr(t, "\n  east ") : NULL;
        const char *w = t ? strstr(t, "\n  west ") : NULL;
        const char *e1 = t ? strstr(t, "\n    e1 ") : NULL;
        const char *w2 = t ? strstr(t, "\n    w2 ") : NULL;
        cr_assert(e && w && e1 && w2, "no tree in status:\n%s", r.out);
        /* (offices are listed in ID order, each branch after its
         * region and before the next region) */
        cr_assert(e < e1 && w < w2 && (w < e || e1 < w) && (e < w || w2 < e),
                  "branches not under their regions:\n%s", r.out);
        cr_assert_not_null(strstr(e1, "via east"), "%s", r.out);
    }

    /* A branch behind a region is seeded by its region, not here. */
    cr_assert_eq(CLI(&r, head, "peer", "seed", "w1"), 2, "%s", r.err);
    cr_assert_not_null(strstr(r.err, "behind regional hub \"west\""), "%s",
                       r.err);
    cr_assert_not_null(strstr(r.err, "peer seed w1` there"), "%s", r.err);
    run_free(&r);

    /* Move-in across regions: the head office gives e1's order to w2;
     * west relays the head office's snapshot of it to w2. */
    CLI_OK(&r, head, "put", "orders", "o-e1", "{\"shop\":\"w2\"}");
    POLL_STEP(ok, 120000, 500, moved_or_sync());
    cr_assert(ok, "o-e1 did not move from e1 to w2 whole in 120 s");

    /* Seeding through a region: west seeds w1 again from the head
     * office's snapshots (a new incarnation), and w1 keeps its scope. */
    {
        char *before = incarnation_of(2);
        CLI_OK(&r, reg[1], "peer", "seed", "w1");
        POLL_STEP(ok, 120000, 500, reseeded_or_sync(before));
        cr_assert(ok, "west did not seed w1 again in 120 s");
        free(before);
    }
    run_free(&r);
    p_pass();
}
