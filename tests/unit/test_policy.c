/*
 * test_policy.c - the conflict policies end to end, through the real CLI
 * and exchange files: field-lww, priority (the hub wins a conflict even
 * against a later branch write) and manual (a provisional winner and an
 * open conflict until `resolve`, whose decision replicates and settles the
 * conflict on the other node too).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char cli[PATH_MAX], root[64];

/* Run the CLI with a shell command line; return its stdout (malloc'd). */
static char *
run(int want_status, const char *fmt, ...)
{
    char cmd[4096], *out = NULL;
    size_t n = 0;
    va_list ap;
    FILE *p;
    int status;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    p = popen(cmd, "r");
    cr_assert_not_null(p, "%s", cmd);
    out = calloc(1, 1);
    for (;;) {
        char buf[4096];
        size_t got = fread(buf, 1, sizeof buf, p);
        if (got == 0)
            break;
        out = realloc(out, n + got + 1);
        memcpy(out + n, buf, got);
        n += got;
        out[n] = '\0';
    }
    status = pclose(p);
    cr_assert_eq(WEXITSTATUS(status), want_status, "%s: exit %d", cmd,
                 WEXITSTATUS(status));
    return out;
}

static char *
node_id(const char *node)
{
    char *s = run(0, "%s -d %s/%s id --json", cli, root, node);
    json_t *j = json_loads(s, 0, NULL);
    char *id = strdup(json_string_value(json_object_get(j, "id")));

    json_decref(j);
    free(s);
    return id;
}

static void
x(const char *from, const char *peer, const char *to)
{
    free(run(0,
             "%s -d %s/%s export %s %s/f.bsx >/dev/null && %s -d %s/%s "
             "import %s/f.bsx >/dev/null",
             cli, root, from, peer, root, cli, root, to, root));
}

static void
setup(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    char *hub, *br;

    cr_assert_gt(n, 0);
    self[n] = '\0';
    snprintf(cli, sizeof cli, "%s/../tools/branchsync", dirname(self));
    snprintf(root, sizeof root, "/tmp/bs-policy-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    free(run(0, "%s init -d %s/hub --name head --role hub >/dev/null", cli,
             root));
    free(run(0, "%s init -d %s/br --name tallinn >/dev/null", cli, root));
    hub = node_id("hub");
    br = node_id("br");
    free(run(0, "%s -d %s/hub peer add tallinn tcp://127.0.0.1:1 %s >/dev/null",
             cli, root, br));
    free(run(0, "%s -d %s/br peer add head tcp://127.0.0.1:1 %s >/dev/null",
             cli, root, hub));
    free(hub);
    free(br);
}

static void
teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(policy, .init = setup, .fini = teardown, .timeout = 120);

/* The open conflicts of a node, as a JSON array. */
static json_t *
open_conflicts(const char *node, int all)
{
    char *s = run(0, "%s -d %s/%s conflicts --json%s", cli, root, node,
                  all ? " --all" : "");
    json_t *j = json_loads(s, 0, NULL);

    cr_assert(json_is_array(j), "%s", s);
    free(s);
    return j;
}

static json_t *
find(json_t *arr, const char *coll, const char *field)
{
    size_t i;
    json_t *c;

    json_array_foreach(arr, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "collection")), coll) ==
                0 &&
            strcmp(json_string_value(json_object_get(c, "field")), field) == 0)
            return c;
    }
    return NULL;
}

Test(policy, priority_manual_and_lww_end_to_end)
{
    char *a, *b;
    json_t *hub_all, *br_open, *br_all, *c;
    char cid[64];

    /* Only the hub declares policies (exit 2 elsewhere). */
    free(run(2, "%s -d %s/br collection notes --policy manual 2>/dev/null", cli,
             root));
    free(run(0, "%s -d %s/hub collection prices --policy priority >/dev/null",
             cli, root));
    free(run(0, "%s -d %s/hub collection notes --policy manual >/dev/null", cli,
             root));
    free(run(0, "%s -d %s/hub put prices p1 '{\"v\":1}'", cli, root));
    free(run(0, "%s -d %s/hub put notes n1 '{\"t\":\"first\"}'", cli, root));
    free(run(0, "%s -d %s/hub put people q1 '{\"city\":\"x\"}'", cli, root));
    x("hub", "tallinn", "br"); /* the branch joins and gets the policies */

    /* Concurrent edits; the branch writes last every time. */
    free(run(0, "%s -d %s/hub put prices p1 '{\"v\":100}'", cli, root));
    free(run(0, "%s -d %s/hub put notes n1 '{\"t\":\"hub\"}'", cli, root));
    free(run(0, "%s -d %s/hub put people q1 '{\"city\":\"Tallinn\"}'", cli,
             root));
    usleep(2000);
    free(run(0, "%s -d %s/br put prices p1 '{\"v\":200}'", cli, root));
    free(run(0, "%s -d %s/br put notes n1 '{\"t\":\"branch\"}'", cli, root));
    free(run(0, "%s -d %s/br put people q1 '{\"city\":\"Tartu\"}'", cli, root));
    x("br", "head", "hub");
    x("hub", "tallinn", "br");

    /* priority: the hub's write wins although the branch's is later. */
    a = run(0, "%s -d %s/hub get prices p1", cli, root);
    b = run(0, "%s -d %s/br get prices p1", cli, root);
    cr_assert_str_eq(a, "{\"id\":\"p1\",\"v\":100}\n");
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    /* field-lww: the later write wins. */
    a = run(0, "%s -d %s/hub get people q1", cli, root);
    b = run(0, "%s -d %s/br get people q1", cli, root);
    cr_assert_str_eq(a, "{\"id\":\"q1\",\"city\":\"Tartu\"}\n");
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    /* manual: the same provisional winner on both, and an open conflict. */
    a = run(0, "%s -d %s/hub get notes n1", cli, root);
    b = run(0, "%s -d %s/br get notes n1", cli, root);
    cr_assert_str_eq(b, a);
    free(a);
    free(b);

    hub_all = open_conflicts("hub", 1);
    c = find(hub_all, "prices", "v");
    cr_assert_not_null(c, "priority conflict recorded");
    cr_assert_str_eq(json_string_value(json_object_get(c, "policy")),
                     "priority");
    cr_assert(json_is_true(json_object_get(c, "resolved")));
    cr_assert_eq(json_array_size(json_object_get(c, "candidates")), 2);
    c = find(hub_all, "people", "city");
    cr_assert_not_null(c, "field-lww conflict recorded");
    cr_assert(json_is_true(json_object_get(c, "resolved")));
    c = find(hub_all, "notes", "t");
    cr_assert_not_null(c, "manual conflict recorded");
    cr_assert(json_is_false(json_object_get(c, "resolved")), "manual: open");
    snprintf(cid, sizeof cid, "%s",
             json_string_value(json_object_get(c, "conflict")));
    br_open = open_conflicts("br", 0);
    c = find(br_open, "notes", "t");
    cr_assert_not_null(c, "the branch detects the same conflict");
    cr_assert_str_eq(json_string_value(json_object_get(c, "conflict")), cid,
                     "same conflict ID on both nodes");
    json_decref(br_open);
    json_decref(hub_all);

    /* Settle it at the hub; the decision replicates and settles it there. */
    free(run(0, "%s -d %s/hub resolve %s --value '\"agreed\"' >/dev/null", cli,
             root, cid));
    free(run(1, "%s -d %s/hub resolve nosuchconflict --take head 2>/dev/null",
             cli, root));
    x("hub", "tallinn", "br");
    a = run(0, "%s -d %s/br get notes n1", cli, root);
    cr_assert_str_eq(a, "{\"id\":\"n1\",\"t\":\"agreed\"}\n");
    free(a);
    br_open = open_conflicts("br", 0);
    cr_assert_null(find(br_open, "notes", "t"), "settled on the branch too");
    json_decref(br_open);
    br_all = open_conflicts("br", 1);
    cr_assert_not_null(find(br_all, "notes", "t"), "kept in --all");
    json_decref(br_all);
    a = run(0, "%s -d %s/hub digest", cli, root);
    b = run(0, "%s -d %s/br digest", cli, root);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
}

Test(policy, delete_against_concurrent_update_is_a_conflict)
{
    char *a, *b;
    json_t *all;

    free(run(0,
             "%s -d %s/hub put people d1 '{\"name\":\"Ann\",\"city\":\"x\"}'",
             cli, root));
    x("hub", "tallinn", "br");
    free(run(0, "%s -d %s/hub del people d1", cli, root));
    usleep(2000);
    free(run(0, "%s -d %s/br put people d1 '{\"phone\":\"555\"}'", cli, root));
    x("br", "head", "hub");
    x("hub", "tallinn", "br");
    /* The later update survives with its own fields; older ones are gone. */
    a = run(0, "%s -d %s/hub get people d1", cli, root);
    b = run(0, "%s -d %s/br get people d1", cli, root);
    cr_assert_str_eq(a, "{\"id\":\"d1\",\"phone\":\"555\"}\n");
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    all = open_conflicts("hub", 1);
    cr_assert_not_null(find(all, "people", "(record)"));
    json_decref(all);
}
