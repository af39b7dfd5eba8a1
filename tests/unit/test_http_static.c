/*
 * test_http_static.c - what the web dashboard (issue 10 item 6) needs of
 * the server, without a server: its embedded files (node/http_static.h)
 * served at / with no token while every other path still needs one, and
 * the change feed's since=now, where the page's live feed starts.  The
 * page itself runs in a real Chromium in tests/browser.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../node/http.h"
#include "../../node/http_api.h"
#include "../../node/http_static.h"

static char root[128];
static bst_node head;
static bs_api api;
static char auth[128];

static void
setup(void)
{
    char token[BS_HTTP_TOKEN_LEN + 1];
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "http_static");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, NULL);
    bst_ok(bs_http_token_load(head.dir, 0, token, &err), &err, "token");
    snprintf(auth, sizeof auth, "Bearer %s", token);
    bst_ok(bs_api_init(&api, head.n, token, NULL, &err), &err, "api");
}

static void
teardown(void)
{
    bs_api_fini(&api);
    bst_node_free(&head);
    bst_rmtree(root);
    bst_leak_check("test_http_static");
}

TestSuite(http_static, .init = setup, .fini = teardown, .timeout = 60);

typedef struct args {
    const char *k, *v;
} args;

static const char *
arg_of(void *ctx, const char *name)
{
    args *a = ctx;

    return a != NULL && a->k != NULL && strcmp(a->k, name) == 0 ? a->v : NULL;
}

/* One request; the answer in *out (body malloc'd: the caller frees it). */
static void
call(const char *auth_hdr, const char *method, const char *path, args *q,
     bs_api_resp *out)
{
    bs_api_req rq = {method, path, arg_of, q, auth_hdr, NULL, 0, NULL};

    bs_api_handle(&api, &rq, out);
    cr_assert(out->body != NULL || out->stream != NULL, "%s %s: no body",
              method, path);
}

Test(http_static, the_dashboard_is_served_at_the_root_without_a_token)
{
    static const char *const paths[] = {"/", "/index.html", "/app.js",
                                        "/app.css"};
    static const char *const types[] = {"text/html", "text/html",
                                        "text/javascript", "text/css"};
    bs_api_resp r;

    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const bs_web_asset *a = bs_web_asset_find(paths[i]);
        cr_assert_not_null(a, "%s is not embedded", paths[i]);
        cr_assert_gt(a->len, 0, "%s is empty", paths[i]);
        call(NULL, "GET", paths[i], NULL, &r);
        cr_assert_eq(r.status, 200, "GET %s without a token: %d", paths[i],
                     r.status);
        cr_assert_eq(strncmp(r.type, types[i], strlen(types[i])), 0, "%s: %s",
                     paths[i], r.type);
        cr_assert_eq(r.len, a->len);
        cr_assert_eq(memcmp(r.body, a->data, a->len), 0, "%s", paths[i]);
        if (i == 0) /* the page loads the two others, from this server */
            cr_assert(strstr(r.body, "src=\"/app.js\"") &&
                          strstr(r.body, "href=\"/app.css\""),
                      "%s", r.body);
        free(r.body);
    }
}

Test(http_static, only_the_dashboard_files_are_open)
{
    static const char *const closed[][2] = {
        {"GET", "/favicon.ico"}, {"GET", "/app.js.map"}, {"POST", "/"},
        {"PUT", "/app.js"},      {"GET", "/v1/status"},  {"GET", "/web/dist/"},
    };
    bs_api_resp r;

    for (size_t i = 0; i < sizeof closed / sizeof closed[0]; i++) {
        call(NULL, closed[i][0], closed[i][1], NULL, &r);
        cr_assert_eq(r.status, 401, "%s %s without a token: %d", closed[i][0],
                     closed[i][1], r.status);
        free(r.body);
    }
    /* with the token: not the dashboard's, so 404 or 405 */
    call(auth, "GET", "/favicon.ico", NULL, &r);
    cr_assert_eq(r.status, 404, "%d", r.status);
    free(r.body);
    call(auth, "POST", "/", NULL, &r);
    cr_assert_eq(r.status, 404, "%d", r.status);
    free(r.body);
}

static void
put(const char *id, const char *json)
{
    bs_errbuf err = {{0}};

    bst_ok(bst_put(&head, "customers", id, json, &err), &err, id);
}

/* The feed answer's last_seq and how many results it has. */
static uint64_t
feed(const char *since, size_t *nresults)
{
    args q = {"since", since};
    bs_api_resp r;
    json_t *j;
    uint64_t last;

    call(auth, "GET", "/v1/changes", &q, &r);
    cr_assert_eq(r.status, 200, "since=%s: %d %s", since, r.status, r.body);
    j = json_loadb(r.body, r.len, 0, NULL);
    cr_assert_not_null(j);
    last = (uint64_t)json_integer_value(json_object_get(j, "last_seq"));
    *nresults = json_array_size(json_object_get(j, "results"));
    json_decref(j);
    free(r.body);
    return last;
}

Test(http_static, the_feed_since_now_starts_after_the_last_change)
{
    char seq[32];
    size_t n;
    uint64_t all, now;

    put("c1", "{\"name\":\"Acme\"}");
    put("c2", "{\"name\":\"Beta\"}");
    all = feed("0", &n);
    cr_assert_geq(n, 2);
    now = feed("now", &n);
    cr_assert_eq(n, 0, "since=now lists nothing already there");
    cr_assert_eq(now, all, "since=now: last_seq %llu, want %llu",
                 (unsigned long long)now, (unsigned long long)all);
    put("c3", "{\"name\":\"Gamma\"}");
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)now);
    cr_assert_eq(feed(seq, &n), now + 1);
    cr_assert_eq(n, 1, "the change after now");
}

/* The dashboard polls GET /v1/status?records=false: the peers and
 * problems without counting records (which reads every record). */
Test(http_static, status_without_record_counts_for_polling)
{
    args q = {"records", "false"};
    bs_api_resp r;
    json_t *j;

    put("c1", "{\"name\":\"Acme\"}");
    call(auth, "GET", "/v1/status", NULL, &r);
    cr_assert_eq(r.status, 200);
    j = json_loadb(r.body, r.len, 0, NULL);
    cr_assert_not_null(
        json_object_get(json_object_get(j, "collections"), "customers"), "%s",
        r.body);
    json_decref(j);
    free(r.body);
    call(auth, "GET", "/v1/status", &q, &r);
    cr_assert_eq(r.status, 200);
    j = json_loadb(r.body, r.len, 0, NULL);
    cr_assert_eq(json_object_size(json_object_get(j, "collections")), 0, "%s",
                 r.body);
    cr_assert(json_is_array(json_object_get(j, "peers")), "%s", r.body);
    cr_assert(json_is_array(json_object_get(j, "problems")), "%s", r.body);
    json_decref(j);
    free(r.body);
    q.v = "maybe";
    call(auth, "GET", "/v1/status", &q, &r);
    cr_assert_eq(r.status, 400, "records=maybe: %d", r.status);
    free(r.body);
}
