/*
 * test_http_api.c - the HTTP API without a server (node/http_api.h, issue
 * 10 item 2): routing, the bearer token, the JSON documents, paging, bulk
 * upsert, and how core errors map to HTTP statuses, with bad input
 * writing nothing; the change feed (GET /v1/changes, item 3: paging,
 * since, the collection filter, include_docs, longpoll, the event
 * stream, bad queries).
 * Also the listen address and token file (node/http.h) and the [http]
 * configuration (node/config.h).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/fixture.h"
#include "../../node/config.h"
#include "../../node/http.h"
#include "../../node/http_api.h"
#include "../../replication/collections.h"
#include "../../replication/json.h"
#include "../../replication/records.h"
#include "../../replication/unique.h"

static char root[128];
static bst_node head, tallinn;
static bs_api api;
static int changed_calls;
static const char *tok;

static void
on_changed(void *ctx)
{
    (void)ctx;
    changed_calls++;
}

static void
setup(void)
{
    static char token[BS_HTTP_TOKEN_LEN + 1];
    bs_api_hooks hooks = {on_changed, NULL, NULL, 1};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "http_api");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, NULL);
    bst_ok(bs_http_token_load(head.dir, 0, token, &err), &err, "token");
    tok = token;
    bst_ok(bs_api_init(&api, head.n, token, &hooks, &err), &err, "api");
    changed_calls = 0;
}

static void
teardown(void)
{
    bs_api_fini(&api);
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_rmtree(root);
    bst_leak_check("test_http_api");
}

TestSuite(http_api, .init = setup, .fini = teardown, .timeout = 60);

/* ---- driving the API ---- */

typedef struct args {
    const char *k[4], *v[4];
} args;

static const char *
arg_of(void *ctx, const char *name)
{
    args *a = ctx;

    for (int i = 0; a != NULL && i < 4 && a->k[i] != NULL; i++)
        if (strcmp(a->k[i], name) == 0)
            return a->v[i];
    return NULL;
}

/* One request to a with the given Authorization (NULL: none); the parsed
 * JSON answer (NULL for a text one) and its status in *status. */
static json_t *
call_as(bs_api *a, const char *auth, const char *method, const char *path,
        args *q, const char *body, int *status)
{
    bs_api_req rq = {
        method, path, arg_of, q, auth, body, body ? strlen(body) : 0};
    bs_api_resp r;
    json_t *j;

    bs_api_handle(a, &rq, &r);
    *status = r.status;
    cr_assert_not_null(r.body);
    j = strcmp(r.type, "application/json") == 0
            ? json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL)
            : NULL;
    if (strcmp(r.type, "application/json") == 0)
        cr_assert_not_null(j, "%s %s: not JSON: %s", method, path, r.body);
    free(r.body);
    return j;
}

static json_t *
call(const char *method, const char *path, args *q, const char *body,
     int *status)
{
    char auth[128];

    snprintf(auth, sizeof auth, "Bearer %s", tok);
    return call_as(&api, auth, method, path, q, body, status);
}

/* call() expecting `want`; returns the answer. */
static json_t *
expect(int want, const char *method, const char *path, args *q,
       const char *body)
{
    int st;
    json_t *j = call(method, path, q, body, &st);
    char *s = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

    cr_assert_eq(st, want, "%s %s: %d, want %d: %s", method, path, st, want,
                 s ? s : "(text)");
    free(s);
    return j;
}

/* An error answer: {"error": "...", "code": status} naming `needle`. */
static void
expect_error(int want, const char *method, const char *path, const char *body,
             const char *needle)
{
    json_t *j = expect(want, method, path, NULL, body);
    const char *e = json_string_value(json_object_get(j, "error"));

    cr_assert_not_null(e, "no \"error\"");
    cr_assert_eq(json_integer_value(json_object_get(j, "code")), want);
    if (needle)
        cr_assert(strstr(e, needle), "error \"%s\" lacks \"%s\"", e, needle);
    json_decref(j);
}

static void
fingerprint(uint8_t out[BS_HASH_LEN])
{
    bst_fingerprint(&head, out);
}

/* ---- access ---- */

Test(http_api, every_v1_path_needs_the_bearer_token)
{
    static const char *const paths[] = {"/v1/status",
                                        "/v1/peers",
                                        "/v1/conflicts",
                                        "/v1/log",
                                        "/v1/collections/c/records",
                                        "/v1/collections/c/records/x",
                                        "/v1/collections/c/merge",
                                        "/v1/changes",
                                        "/nope"}; /* "/": the dashboard */
    int st;
    json_t *j;

    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        j = call_as(&api, NULL, "GET", paths[i], NULL, NULL, &st);
        cr_assert_eq(st, 401, "%s without a token: %d", paths[i], st);
        cr_assert_eq(json_integer_value(json_object_get(j, "code")), 401);
        json_decref(j);
        j = call_as(&api, "Bearer 0000", "GET", paths[i], NULL, NULL, &st);
        cr_assert_eq(st, 401, "%s with a bad token: %d", paths[i], st);
        json_decref(j);
    }
    /* The right token in another scheme is not a bearer token. */
    {
        char auth[128];
        snprintf(auth, sizeof auth, "Basic %s", tok);
        j = call_as(&api, auth, "GET", "/v1/status", NULL, NULL, &st);
        cr_assert_eq(st, 401);
        json_decref(j);
    }
}

Test(http_api, health_and_metrics_need_no_token)
{
    int st;
    json_t *j = call_as(&api, NULL, "GET", "/health", NULL, NULL, &st);

    cr_assert_eq(st, 200);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    j = call_as(&api, NULL, "GET", "/metrics", NULL, NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert_null(j, "metrics are text");
    /* Writing to them is not allowed, and still needs a token. */
    j = call_as(&api, NULL, "POST", "/health", NULL, NULL, &st);
    cr_assert_eq(st, 401);
    json_decref(j);
}

/* /health answers 503 with the problems doctor lists (here: the store
 * near its growth cap). */
Test(http_api, health_is_503_with_the_list_of_problems)
{
    size_t n = 4000, at = 0;
    char *body = malloc(n * 80);
    json_t *j, *p;
    int st;

    for (size_t i = 0; i < n; i++)
        at += (size_t)sprintf(body + at,
                              "{\"id\":\"r%05zu\",\"pad\":\"%040zu\"}\n", i, i);
    json_decref(expect(200, "POST", "/v1/collections/big/records", NULL, body));
    free(body);
    head.n->cfg.max_map_size_mb = 1;
    j = call_as(&api, NULL, "GET", "/health", NULL, NULL, &st);
    head.n->cfg.max_map_size_mb = 0;
    cr_assert_eq(st, 503);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")),
                     "problem");
    p = json_array_get(json_object_get(j, "problems"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(p, "kind")), "map_low");
    cr_assert(strstr(json_string_value(json_object_get(p, "todo")),
                     "max_map_size_mb"));
    json_decref(j);
}

/* ---- records ---- */

Test(http_api, put_get_delete_round_trip_like_the_cli)
{
    json_t *j;

    j = expect(200, "PUT", "/v1/collections/customers/records/c1", NULL,
               "{\"name\":\"Acme\",\"vip\":true}");
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "c1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "name")), "Acme");
    json_decref(j);
    cr_assert_eq(changed_calls, 1, "a write tells the daemon");
    /* Upsert: other fields stay. */
    json_decref(expect(200, "PUT", "/v1/collections/customers/records/c1", NULL,
                       "{\"city\":\"Tartu\"}"));
    j = expect(200, "GET", "/v1/collections/customers/records/c1", NULL, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "city")), "Tartu");
    cr_assert(json_is_true(json_object_get(j, "vip")));
    json_decref(j);
    /* The CLI's core sees the same record. */
    {
        char *s = bst_get(&head, "customers", "c1");
        cr_assert(s && strstr(s, "\"city\":\"Tartu\""), "%s", s);
        free(s);
    }
    j = expect(200, "DELETE", "/v1/collections/customers/records/c1", NULL,
               NULL);
    cr_assert(json_is_true(json_object_get(j, "deleted")));
    json_decref(j);
    expect_error(404, "GET", "/v1/collections/customers/records/c1", NULL,
                 "not found");
    expect_error(404, "DELETE", "/v1/collections/customers/records/c1", NULL,
                 "not found");
    cr_assert_eq(changed_calls, 3);
}

Test(http_api, bad_input_is_400_and_writes_nothing)
{
    static const char *const bodies[] = {
        "{\"name\":", "[1,2]",           "{\"a\":{\"nested\":1}}",
        "",           "{\"id\":\"c9\"}", "not json"};
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];

    fingerprint(f0);
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        expect_error(400, "PUT", "/v1/collections/customers/records/c1",
                     bodies[i], NULL);
    /* Bad names. */
    expect_error(400, "PUT", "/v1/collections/_members/records/c1", "{}", NULL);
    expect_error(400, "PUT", "/v1/collections/customers/records/", "{}",
                 "bad record id");
    fingerprint(f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "bad input wrote");
    cr_assert_eq(changed_calls, 0);
}

/* Wrong types in every body the API reads: 400, a JSON error, nothing
 * written, and the API goes on answering. */
Test(http_api, wrong_types_in_any_body_are_400_and_write_nothing)
{
    static const char *const resolve[] = {"{\"take\":5}",
                                          "{\"value\":{\"a\":1}}",
                                          "{\"value\":[1]}",
                                          "[]",
                                          "{",
                                          "",
                                          "{\"take\":\"head\",\"value\":1}",
                                          "{\"other\":1}",
                                          "\"take\""};
    static const char *const bulk[] = {
        "{\"id\":5,\"n\":1}\n",
        "[1,2]\n",
        "{\"id\":\"b1\",\"n\":{}}\n",
        "{\"id\":\"b1\",\"n\":1}\n{\"id\":true}\n",
        "\"text\"\n",
        "{\"n\":1}\n"};
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    json_t *j;

    fingerprint(f0);
    for (size_t i = 0; i < sizeof resolve / sizeof resolve[0]; i++) {
        j = expect(400, "POST", "/v1/conflicts/0123456789abcdef/resolve", NULL,
                   resolve[i]);
        cr_assert(json_is_string(json_object_get(j, "error")), "%s",
                  resolve[i]);
        cr_assert_eq(json_integer_value(json_object_get(j, "code")), 400);
        json_decref(j);
    }
    for (size_t i = 0; i < sizeof bulk / sizeof bulk[0]; i++) {
        j = expect(400, "POST", "/v1/collections/customers/records", NULL,
                   bulk[i]);
        cr_assert(json_is_string(json_object_get(j, "error")), "%s", bulk[i]);
        json_decref(j);
    }
    fingerprint(f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "bad input wrote");
    cr_assert_eq(changed_calls, 0);
    json_decref(expect(200, "PUT", "/v1/collections/customers/records/ok", NULL,
                       "{\"n\":1}"));
}

Test(http_api, list_pages_with_limit_and_after)
{
    args q = {{"limit"}, {"2"}};
    const char *want[] = {"r1", "r2", "r3", "r4", "r5"};
    size_t seen = 0;
    char after[64] = "";
    json_t *j;

    for (int i = 0; i < 5; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/collections/items/records/%s",
                 want[i]);
        json_decref(expect(200, "PUT", path, NULL, "{\"n\":1}"));
    }
    for (int page = 0; page < 4; page++) {
        json_t *recs, *next, *r;
        size_t k;

        q.k[1] = after[0] ? "after" : NULL;
        q.v[1] = after;
        j = expect(200, "GET", "/v1/collections/items/records", &q, NULL);
        recs = json_object_get(j, "records");
        next = json_object_get(j, "next");
        json_array_foreach(recs, k, r) cr_assert_str_eq(
            json_string_value(json_object_get(r, "id")), want[seen++]);
        if (json_is_null(next)) {
            json_decref(j);
            break;
        }
        cr_assert_eq(json_array_size(recs), 2);
        snprintf(after, sizeof after, "%s", json_string_value(next));
        json_decref(j);
    }
    cr_assert_eq(seen, 5, "pages gave %zu of 5 records", seen);
    q.v[0] = "0";
    q.k[1] = NULL;
    json_decref(expect(400, "GET", "/v1/collections/items/records", &q, NULL));
    q.v[0] = "x";
    json_decref(expect(400, "GET", "/v1/collections/items/records", &q, NULL));
}

Test(http_api, bulk_post_of_json_lines_upserts_all_or_nothing)
{
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    json_t *j;

    j = expect(200, "POST", "/v1/collections/items/records", NULL,
               "{\"id\":\"a\",\"n\":1}\n{\"id\":\"b\",\"n\":2}\n\n"
               "{\"id\":\"c\",\"n\":3}\n");
    cr_assert_eq(json_integer_value(json_object_get(j, "records")), 3);
    cr_assert_eq(json_integer_value(json_object_get(j, "written")), 3);
    json_decref(j);
    cr_assert_eq(changed_calls, 1);
    fingerprint(f0);
    expect_error(400, "POST", "/v1/collections/items/records",
                 "{\"id\":\"d\",\"n\":4}\n{\"id\":\"e\",\"n\":\n", "line 2");
    expect_error(400, "POST", "/v1/collections/items/records", "{\"n\":4}\n",
                 NULL);
    fingerprint(f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "a refused load wrote");
    cr_assert_eq(changed_calls, 1);
}

Test(http_api, a_write_a_rule_forbids_is_403_and_writes_nothing)
{
    bs_collection rules = {0}, out;
    bs_errbuf err = {{0}};
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_api br;
    bs_api_hooks hooks = {NULL, NULL, NULL, 1};
    char auth[128];
    int st;
    json_t *j;

    snprintf(rules.name, sizeof rules.name, "prices");
    rules.writers = BS_WRITERS_HUB;
    rules.set = BS_RULE_WRITERS;
    bst_ok(bs_collections_declare(&head.core, &rules, &out, &err), &err,
           "declare");
    bst_pair2(&head, &tallinn);
    for (int i = 0; i < 2; i++) {
        bst_ok(bst_carry(&head, &tallinn, NULL, &err), &err, "carry");
        bst_ok(bst_carry(&tallinn, &head, NULL, &err), &err, "carry");
    }
    bst_ok(bs_api_init(&br, tallinn.n, tok, &hooks, &err), &err, "api");
    bst_fingerprint(&tallinn, f0);
    snprintf(auth, sizeof auth, "Bearer %s", tok);
    j = call_as(&br, auth, "PUT", "/v1/collections/prices/records/p1", NULL,
                "{\"eur\":3}", &st);
    cr_assert_eq(st, 403, "%d", st);
    cr_assert(
        strstr(json_string_value(json_object_get(j, "error")), "writers hub"));
    json_decref(j);
    j = call_as(&br, auth, "POST", "/v1/collections/prices/records", NULL,
                "{\"id\":\"p1\",\"eur\":3}\n", &st);
    cr_assert_eq(st, 403, "%d", st);
    json_decref(j);
    bst_fingerprint(&tallinn, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the refusal wrote");
    bs_api_fini(&br);
}

/* ---- merging duplicates ---- */

/* customers --unique tax_code at the head, with C1 and C2 both holding
 * 7701 (the second written with --force): one open duplicate. */
static void
make_duplicate(void)
{
    static const char *const ids[] = {"C1", "C2"};
    bs_collection c = {0};
    bs_errbuf err = {{0}};

    snprintf(c.name, sizeof c.name, "customers");
    snprintf(c.unique, sizeof c.unique, "tax_code");
    c.set = BS_RULE_UNIQUE;
    bst_ok(bs_collections_declare(&head.core, &c, NULL, &err), &err, "declare");
    for (int i = 0; i < 2; i++) {
        bs_write w = {"customers", ids[i], 0, NULL, 0, BS_WRITE_FORCE};
        const char *jid, *js = "{\"name\":\"Acme\",\"tax_code\":\"7701\"}";
        bs_arena a;
        bs_arena_init(&a);
        bst_ok(bs_json_fields(js, strlen(js), &a, &jid, &w.fields, &w.nfields,
                              &err),
               &err, "fields");
        bst_ok(bs_records_write(&head.core, &w, 1, NULL, &err), &err, "put");
        bs_arena_fini(&a);
    }
}

/* The open conflicts at the head, as GET /v1/conflicts lists them. */
static size_t
open_conflicts(void)
{
    json_t *j = expect(200, "GET", "/v1/conflicts", NULL, NULL);
    size_t n = json_array_size(j);

    json_decref(j);
    return n;
}

Test(http_api, merge_keeps_one_record_and_settles_the_duplicate)
{
    char into[BS_ID_MAX + 1];
    bs_errbuf err = {{0}};
    char *s;
    bs_txn *t;
    json_t *j;

    make_duplicate();
    cr_assert_eq(open_conflicts(), 1, "the duplicate is open");
    changed_calls = 0;
    j = expect(200, "POST", "/v1/collections/customers/merge", NULL,
               "{\"keep\":\"C1\",\"other\":\"C2\"}");
    cr_assert_str_eq(json_string_value(json_object_get(j, "collection")),
                     "customers");
    cr_assert_str_eq(json_string_value(json_object_get(j, "kept")), "C1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "merged")), "C2");
    json_decref(j);
    cr_assert_eq(changed_calls, 1, "a merge tells the daemon");
    cr_assert_eq(open_conflicts(), 0, "the merge settles the duplicate");
    s = bst_get(&head, "customers", "C1");
    cr_assert_not_null(s, "the kept record stays");
    free(s);
    cr_assert_null(bst_get(&head, "customers", "C2"));
    bst_ok(bs_store_read(head.n->store, &t, &err), &err, "read");
    cr_assert_eq(bs_unique_merged_into(t, "customers", "C2", into), BS_OK);
    cr_assert_str_eq(into, "C1");
    bs_txn_abort(t);
    /* Merged once: C2 is no longer live. */
    expect_error(404, "POST", "/v1/collections/customers/merge",
                 "{\"keep\":\"C1\",\"other\":\"C2\"}", "not found");
}

Test(http_api, a_bad_merge_is_400_or_404_and_writes_nothing)
{
    static const char *const bodies[] = {
        "",
        "{",
        "[]",
        "{\"keep\":\"C1\"}",
        "{\"keep\":\"C1\",\"other\":2}",
        "{\"keep\":\"C1\",\"other\":\"C2\",\"x\":1}",
        "{\"keep\":\"C1\",\"other\":\"C1\"}", /* the same record */
        "{\"keep\":\"C1\",\"other\":\"\"}"};
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];

    make_duplicate();
    fingerprint(f0);
    changed_calls = 0;
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        expect_error(400, "POST", "/v1/collections/customers/merge", bodies[i],
                     NULL);
    expect_error(400, "POST", "/v1/collections/customers/merge",
                 "{\"keep\":\"C1\",\"other\":\"C1\"}", "into itself");
    expect_error(400, "POST", "/v1/collections/_members/merge",
                 "{\"keep\":\"C1\",\"other\":\"C2\"}", NULL);
    expect_error(400, "POST", "/v1/collections/branchsync.merges/merge",
                 "{\"keep\":\"C1\",\"other\":\"C2\"}", NULL);
    expect_error(404, "POST", "/v1/collections/customers/merge",
                 "{\"keep\":\"C1\",\"other\":\"C9\"}", "not found");
    expect_error(404, "POST", "/v1/collections/customers/merge",
                 "{\"keep\":\"C9\",\"other\":\"C2\"}", "not found");
    expect_error(404, "POST", "/v1/collections/nothing/merge",
                 "{\"keep\":\"C1\",\"other\":\"C2\"}", "not found");
    expect_error(405, "GET", "/v1/collections/customers/merge", NULL, NULL);
    expect_error(404, "POST", "/v1/collections/customers/merge/x",
                 "{\"keep\":\"C1\",\"other\":\"C2\"}", NULL);
    fingerprint(f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "a refused merge wrote");
    cr_assert_eq(changed_calls, 0);
    cr_assert_eq(open_conflicts(), 1, "the duplicate stays open");
}

/* A branch may not delete in a collection only the hub writes: merging
 * there is refused, 403, and writes nothing. */
Test(http_api, a_merge_a_rule_forbids_is_403_and_writes_nothing)
{
    bs_collection rules = {0}, out;
    bs_errbuf err = {{0}};
    uint8_t f0[BS_HASH_LEN], f1[BS_HASH_LEN];
    bs_api_hooks hooks = {NULL, NULL, NULL, 1};
    char auth[128];
    bs_api br;
    int st;
    json_t *j;

    snprintf(rules.name, sizeof rules.name, "prices");
    rules.writers = BS_WRITERS_HUB;
    rules.set = BS_RULE_WRITERS;
    bst_ok(bs_collections_declare(&head.core, &rules, &out, &err), &err,
           "declare");
    bst_ok(bst_put(&head, "prices", "p1", "{\"eur\":3}", &err), &err, "p1");
    bst_ok(bst_put(&head, "prices", "p2", "{\"eur\":3}", &err), &err, "p2");
    bst_pair2(&head, &tallinn);
    for (int i = 0; i < 2; i++) {
        bst_ok(bst_carry(&head, &tallinn, NULL, &err), &err, "carry");
        bst_ok(bst_carry(&tallinn, &head, NULL, &err), &err, "carry");
    }
    bst_ok(bs_api_init(&br, tallinn.n, tok, &hooks, &err), &err, "api");
    bst_fingerprint(&tallinn, f0);
    snprintf(auth, sizeof auth, "Bearer %s", tok);
    j = call_as(&br, auth, "POST", "/v1/collections/prices/merge", NULL,
                "{\"keep\":\"p1\",\"other\":\"p2\"}", &st);
    cr_assert_eq(st, 403, "%d", st);
    cr_assert(
        strstr(json_string_value(json_object_get(j, "error")), "writers hub"),
        "%s", json_string_value(json_object_get(j, "error")));
    json_decref(j);
    bst_fingerprint(&tallinn, f1);
    cr_assert_eq(memcmp(f0, f1, BS_HASH_LEN), 0, "the refusal wrote");
    bs_api_fini(&br);
}

/* ---- routing ---- */

Test(http_api, unknown_paths_are_404_and_wrong_methods_405)
{
    expect_error(404, "GET", "/v1/nothing", NULL, "no such endpoint");
    expect_error(404, "GET", "/v1/collections/c/other", NULL, NULL);
    expect_error(405, "PATCH", "/v1/collections/c/records/x", NULL, NULL);
    expect_error(405, "DELETE", "/v1/collections/c/records", NULL, NULL);
    expect_error(405, "POST", "/v1/status", NULL, NULL);
    expect_error(405, "GET", "/v1/peers/x/sync", NULL, NULL);
}

Test(http_api, operator_documents)
{
    json_t *j;

    j = expect(200, "GET", "/v1/status", NULL, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "name")), "head");
    cr_assert(json_is_array(json_object_get(j, "problems")));
    cr_assert(json_is_object(json_object_get(j, "store")));
    json_decref(j);
    j = expect(200, "GET", "/v1/peers", NULL, NULL);
    cr_assert(json_is_array(j));
    json_decref(j);
    j = expect(200, "GET", "/v1/conflicts", NULL, NULL);
    cr_assert(json_is_array(j));
    json_decref(j);
    j = expect(200, "GET", "/v1/log", NULL, NULL);
    cr_assert(json_is_array(j));
    json_decref(j);
    expect_error(404, "POST", "/v1/peers/nobody/sync", NULL, "no peer");
    expect_error(404, "POST", "/v1/conflicts/nope/resolve",
                 "{\"take\":\"head\"}", NULL);
    expect_error(400, "POST", "/v1/conflicts/nope/resolve", "{\"x\":1}",
                 "take");
    expect_error(400, "POST", "/v1/conflicts/nope/resolve", "{\"value\":[1]}",
                 "value");
}

Test(http_api, sync_without_a_daemon_is_503)
{
    bst_pair(&head, &tallinn);
    expect_error(503, "POST", "/v1/peers/tallinn/sync", NULL, "no daemon");
}

Test(http_api, metrics_count_answers_by_status)
{
    bs_api_req rq = {"GET", "/metrics", NULL, NULL, NULL, NULL, 0};
    bs_api_resp r;

    expect_error(404, "GET", "/v1/x", NULL, NULL);
    expect_error(404, "GET", "/v1/y", NULL, NULL);
    bst_pair(&head, &tallinn);
    bs_api_handle(&api, &rq, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.type, "text/plain; version=0.0.4");
    cr_assert(
        strstr(r.body, "branchsync_http_requests_total{code=\"404\"} 2\n"),
        "%s", r.body);
    cr_assert(strstr(r.body, "# TYPE branchsync_conflicts_open gauge\n"));
    cr_assert(strstr(r.body, "branchsync_peer_pending_out_changes{peer="
                             "\"tallinn\"} "),
              "%s", r.body);
    cr_assert(strstr(r.body, "branchsync_peer_last_success_age_seconds{peer="
                             "\"tallinn\"} +Inf\n"),
              "%s", r.body);
    free(r.body);
}

Test(http_api, core_errors_map_to_http_statuses)
{
    cr_assert_eq(bs_api_status_of(BS_OK), 200);
    cr_assert_eq(bs_api_status_of(BS_EINVAL), 400);
    cr_assert_eq(bs_api_status_of(BS_EJSON), 400);
    cr_assert_eq(bs_api_status_of(BS_EPERM), 403);
    cr_assert_eq(bs_api_status_of(BS_ENOTFOUND), 404);
    cr_assert_eq(bs_api_status_of(BS_EUNREACHABLE), 503);
    cr_assert_eq(bs_api_status_of(BS_EBUSY), 503);
    cr_assert_eq(bs_api_status_of(BS_EMAPFULL), 500);
    cr_assert_eq(bs_api_status_of(BS_EIO), 500);
}

/* ---- address, token, configuration ---- */

Test(http_api, listen_addresses_parse_and_know_loopback)
{
    struct sockaddr_storage sa;
    socklen_t len;
    int lo = -1;

    cr_assert_eq(bs_http_addr_parse("127.0.0.1:7480", &sa, &len, &lo, NULL),
                 BS_OK);
    cr_assert_eq(lo, 1);
    cr_assert_eq(bs_http_addr_parse("localhost:1", NULL, NULL, &lo, NULL),
                 BS_OK);
    cr_assert_eq(lo, 1);
    cr_assert_eq(bs_http_addr_parse("[::1]:7480", &sa, &len, &lo, NULL), BS_OK);
    cr_assert_eq(lo, 1);
    cr_assert_eq(bs_http_addr_parse("0.0.0.0:7480", NULL, NULL, &lo, NULL),
                 BS_OK);
    cr_assert_eq(lo, 0);
    cr_assert_eq(bs_http_addr_parse("[::]:7480", NULL, NULL, &lo, NULL), BS_OK);
    cr_assert_eq(lo, 0);
    static const char *const bad[] = {"",
                                      "7480",
                                      ":7480",
                                      "127.0.0.1:",
                                      "127.0.0.1:0",
                                      "127.0.0.1:65536",
                                      "host.example:80",
                                      "127.0.0.1:80x",
                                      "[::1:80",
                                      "tcp://127.0.0.1:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(bs_http_addr_parse(bad[i], NULL, NULL, NULL, NULL),
                     BS_EINVAL, "\"%s\" parsed", bad[i]);
}

Test(http_api, a_non_loopback_address_needs_tls)
{
    bs_http_opts o = {0};
    bs_errbuf err = {{0}};

    o.listen = "0.0.0.0:7480";
    cr_assert_eq(bs_http_check(&o, &err), BS_EINVAL);
    cr_assert(strstr(err.msg, "needs TLS"), "%s", err.msg);
    o.listen = "127.0.0.1:7480";
    cr_assert_eq(bs_http_check(&o, &err), BS_OK);
    o.cert = "/nonexistent.pem";
    cr_assert_eq(bs_http_check(&o, &err), BS_EINVAL, "cert without key");
    /* With a cert and a key, any address. */
    {
        char cert[300], key[300];
        FILE *f;
        snprintf(cert, sizeof cert, "%s/c.pem", root);
        snprintf(key, sizeof key, "%s/k.pem", root);
        f = fopen(cert, "w");
        fputs("-----BEGIN CERTIFICATE-----\n", f);
        fclose(f);
        f = fopen(key, "w");
        fputs("-----BEGIN PRIVATE KEY-----\n", f);
        fclose(f);
        o.listen = "0.0.0.0:7480";
        o.cert = cert;
        o.key = "/nonexistent-key.pem";
        cr_assert_eq(bs_http_check(&o, &err), BS_EINVAL, "unreadable key");
        cr_assert(strstr(err.msg, "[http] key"), "%s", err.msg);
        o.key = key;
        cr_assert_eq(bs_http_check(&o, &err), BS_OK, "%s", err.msg);
    }
}

Test(http_api, the_token_is_made_at_init_private_and_stable)
{
    char a[BS_HTTP_TOKEN_LEN + 1], b[BS_HTTP_TOKEN_LEN + 1], path[512];
    bs_errbuf err = {{0}};
    struct stat st;

    snprintf(path, sizeof path, "%s/keys/api.token", head.dir);
    cr_assert_eq(stat(path, &st), 0, "init made no token");
    cr_assert_eq(st.st_mode & 0777, 0600);
    bst_ok(bs_http_token_load(head.dir, 0, a, &err), &err, "load");
    cr_assert_eq(strlen(a), BS_HTTP_TOKEN_LEN);
    bst_ok(bs_http_token_load(head.dir, 1, b, &err), &err, "load");
    cr_assert_str_eq(a, b);
    /* A node from before the API: made on demand, a different one. */
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(bs_http_token_load(head.dir, 0, b, &err), BS_ENOTFOUND);
    bst_ok(bs_http_token_load(head.dir, 1, b, &err), &err, "create");
    cr_assert_str_neq(a, b);
    cr_assert_eq(chmod(path, 0644), 0);
    cr_assert_eq(bs_http_token_load(head.dir, 1, b, &err), BS_EKEY);
    cr_assert(strstr(err.msg, "chmod 600"), "%s", err.msg);
}

Test(http_api, http_settings_read_back_and_bad_ones_are_refused)
{
    bs_config c;
    bs_errbuf err = {{0}};
    char path[512];
    FILE *f;

    bst_ok(bs_config_load(head.dir, &c, &err), &err, "load");
    cr_assert_str_eq(c.http_listen, BS_HTTP_DEFAULT_LISTEN);
    snprintf(c.http_listen, sizeof c.http_listen, "127.0.0.1:9999");
    cr_assert_eq(c.http_max_per_ip, 0, "default: half of max_connections");
    cr_assert_eq(c.http_request_s, 30);
    c.http_body_max_mb = 7;
    c.http_max_per_ip = 5;
    c.http_request_s = 9;
    bst_ok(bs_config_save(head.dir, &c, &err), &err, "save");
    bst_ok(bs_config_load(head.dir, &c, &err), &err, "load");
    cr_assert_str_eq(c.http_listen, "127.0.0.1:9999");
    cr_assert_eq(c.http_body_max_mb, 7);
    cr_assert_eq(c.http_max_per_ip, 5);
    cr_assert_eq(c.http_request_s, 9);
    c.http_listen[0] = '\0';
    bst_ok(bs_config_save(head.dir, &c, &err), &err, "save off");
    bst_ok(bs_config_load(head.dir, &c, &err), &err, "load off");
    cr_assert_str_eq(c.http_listen, "");
    snprintf(path, sizeof path, "%s/branchsync.conf", head.dir);
    f = fopen(path, "a");
    fprintf(f, "[http]\nlisten = tcp://0.0.0.0:1\n");
    fclose(f);
    cr_assert_eq(bs_config_load(head.dir, &c, &err), BS_EINVAL);
    cr_assert(strstr(err.msg, "[http] listen"), "%s", err.msg);
    {
        static const char *const bad[] = {"request_timeout_s = 0\n",
                                          "request_timeout_s = x\n",
                                          "max_connections_per_ip = -1\n",
                                          "max_connections_per_ip = 10001\n"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            bst_ok(bs_config_save(head.dir, &c, &err), &err, "save");
            f = fopen(path, "a");
            fprintf(f, "[http]\n%s", bad[i]);
            fclose(f);
            cr_assert_eq(bs_config_load(head.dir, &c, &err), BS_EINVAL, "%s",
                         bad[i]);
        }
    }
}

/* ---- the change feed ---- */

static void
put_ok(const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(&head, coll, id, json, &err);

    cr_assert_eq(rv, BS_OK, "put: %s", bs_errmsg(&err, rv));
}

/* GET /v1/changes with q: its results (borrowed from *doc) and last_seq. */
static json_t *
feed(args *q, json_t **doc, uint64_t *last)
{
    json_t *res;

    *doc = expect(200, "GET", "/v1/changes", q, NULL);
    res = json_object_get(*doc, "results");
    cr_assert(json_is_array(res));
    cr_assert(json_is_integer(json_object_get(*doc, "last_seq")));
    *last = (uint64_t)json_integer_value(json_object_get(*doc, "last_seq"));
    return res;
}

static void
is_change(json_t *e, uint64_t seq, const char *coll, const char *id,
          int deleted)
{
    cr_assert_eq(json_integer_value(json_object_get(e, "seq")), (long)seq);
    cr_assert_str_eq(json_string_value(json_object_get(e, "collection")), coll);
    cr_assert_str_eq(json_string_value(json_object_get(e, "id")), id);
    cr_assert_eq(json_is_true(json_object_get(e, "deleted")), deleted,
                 "seq %lu deleted", (unsigned long)seq);
}

Test(http_api, the_change_feed_lists_writes_in_order_and_pages)
{
    char origin[BS_NODE_ID_LEN + 1];
    bs_meta m = bst_meta(&head);
    uint64_t last;
    json_t *doc, *r;

    bs_node_id_format(m.pk, origin);
    r = feed(NULL, &doc, &last);
    cr_assert_eq(json_array_size(r), 0);
    cr_assert_eq(last, 0, "since=0 on an empty node");
    json_decref(doc);

    json_decref(
        expect(200, "PUT", "/v1/collections/c/records/a", NULL, "{\"n\":1}"));
    put_ok("c", "b", "{\"n\":2}");
    json_decref(
        expect(200, "DELETE", "/v1/collections/c/records/a", NULL, NULL));
    put_ok("d", "x", "{\"n\":3}");

    r = feed(NULL, &doc, &last);
    cr_assert_eq(json_array_size(r), 4);
    cr_assert_eq(last, 4);
    is_change(json_array_get(r, 0), 1, "c", "a", 0);
    is_change(json_array_get(r, 1), 2, "c", "b", 0);
    is_change(json_array_get(r, 2), 3, "c", "a", 1);
    is_change(json_array_get(r, 3), 4, "d", "x", 0);
    for (size_t i = 0; i < 4; i++) {
        json_t *e = json_array_get(r, i);
        cr_assert_str_eq(json_string_value(json_object_get(e, "origin")),
                         origin);
        cr_assert(json_integer_value(json_object_get(e, "hlc")) > 0);
        cr_assert_null(json_object_get(e, "doc"), "no doc unless asked");
    }
    json_decref(doc);

    /* pages of two, each resumed from the last one's last_seq */
    {
        args q = {{"limit"}, {"2"}};
        r = feed(&q, &doc, &last);
        cr_assert_eq(json_array_size(r), 2);
        is_change(json_array_get(r, 1), 2, "c", "b", 0);
        cr_assert_eq(last, 2);
        json_decref(doc);
    }
    {
        args q = {{"since", "limit"}, {"2", "2"}};
        r = feed(&q, &doc, &last);
        cr_assert_eq(json_array_size(r), 2);
        is_change(json_array_get(r, 0), 3, "c", "a", 1);
        cr_assert_eq(last, 4);
        json_decref(doc);
    }
    {
        args q = {{"since"}, {"4"}};
        r = feed(&q, &doc, &last);
        cr_assert_eq(json_array_size(r), 0);
        cr_assert_eq(last, 4);
        json_decref(doc);
    }
}

Test(http_api, the_change_feed_filters_by_collection_and_includes_docs)
{
    args q = {{"collection", "include_docs"}, {"c", "true"}};
    uint64_t last;
    json_t *doc, *r, *d;

    put_ok("c", "a", "{\"n\":1}");
    put_ok("d", "x", "{\"n\":3}");
    put_ok("c", "b", "{\"name\":\"Bob\"}");
    put_ok("d", "y", "{\"n\":4}");
    put_ok("c", "a", "{\"n\":5}");
    {
        bs_errbuf err = {{0}};
        cr_assert_eq(bst_del(&head, "c", "b", &err), BS_OK);
    }
    r = feed(&q, &doc, &last);
    cr_assert_eq(json_array_size(r), 4);
    cr_assert_eq(last, 6);
    is_change(json_array_get(r, 0), 1, "c", "a", 0);
    is_change(json_array_get(r, 1), 3, "c", "b", 0);
    is_change(json_array_get(r, 2), 5, "c", "a", 0);
    is_change(json_array_get(r, 3), 6, "c", "b", 1);
    /* the doc is the record as `get` prints it now: a's latest, and null
     * for b, deleted since */
    d = json_object_get(json_array_get(r, 0), "doc");
    cr_assert_str_eq(json_string_value(json_object_get(d, "id")), "a");
    cr_assert_eq(json_integer_value(json_object_get(d, "n")), 5);
    cr_assert(json_is_null(json_object_get(json_array_get(r, 1), "doc")));
    cr_assert(json_is_null(json_object_get(json_array_get(r, 3), "doc")));
    json_decref(doc);
}

Test(http_api, bad_change_feed_queries_are_400)
{
    static const char *const bad[][2] = {
        {"since", "-1"},         {"since", "abc"},
        {"since", ""},           {"since", "99999999999999999999"},
        {"feed", "SSE"},         {"feed", "continuous"},
        {"timeout", "301"},      {"timeout", "x"},
        {"include_docs", "yes"}, {"limit", "0"},
        {"limit", "10001"},      {"collection", "bad name"},
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        args q = {{bad[i][0]}, {bad[i][1]}};
        json_t *j = expect(400, "GET", "/v1/changes", &q, NULL);
        cr_assert_eq(json_integer_value(json_object_get(j, "code")), 400);
        json_decref(j);
    }
    json_decref(expect(405, "POST", "/v1/changes", NULL, NULL));
    {
        args q = {{"collection"}, {"_collections"}}; /* reserved: fine */
        json_decref(expect(200, "GET", "/v1/changes", &q, NULL));
    }
}

static void *
late_put(void *arg)
{
    struct timespec ts = {0, 150 * 1000000L};

    (void)arg;
    nanosleep(&ts, NULL); /* let the feed start waiting first */
    put_ok("c", "late", "{\"n\":1}");
    return NULL;
}

Test(http_api, a_longpoll_feed_waits_for_the_next_change)
{
    args q = {{"feed", "since", "timeout"}, {"longpoll", "1", "0"}};
    uint64_t last;
    pthread_t th;
    json_t *doc, *r;

    put_ok("c", "a", "{\"n\":1}");
    /* nothing after seq 1: with timeout 0 it answers at once, empty */
    r = feed(&q, &doc, &last);
    cr_assert_eq(json_array_size(r), 0);
    cr_assert_eq(last, 1);
    json_decref(doc);
    /* a write on another thread while it waits ends the wait */
    q.v[2] = "20";
    cr_assert_eq(pthread_create(&th, NULL, late_put, NULL), 0);
    r = feed(&q, &doc, &last);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(json_array_size(r), 1);
    is_change(json_array_get(r, 0), 2, "c", "late", 0);
    cr_assert_eq(last, 2);
    json_decref(doc);
}

/* A commit made outside the API (as the daemon's replication path
 * makes them), then, with wake, bs_api_wake as bs_daemon_feed does. */
typedef struct outside {
    const char *id;
    int wake;
} outside;

static void *
commit_outside(void *arg)
{
    const outside *o = arg;
    struct timespec ts = {0, 150 * 1000000L};
    bs_errbuf err = {{0}};

    nanosleep(&ts, NULL); /* let the feed start waiting first */
    bst_ok(bst_put(&head, "c", o->id, "{\"n\":1}", &err), &err, "put");
    if (o->wake)
        bs_api_wake(&api);
    return NULL;
}

/* One longpoll (q) while o commits: its seconds; the one result's id. */
static double
longpoll_during(args *q, outside *o, char *id, size_t n)
{
    struct timespec t0, t1;
    uint64_t last;
    pthread_t th;
    json_t *doc, *r;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(pthread_create(&th, NULL, commit_outside, o), 0);
    r = feed(q, &doc, &last);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(json_array_size(r), 1);
    snprintf(id, n, "%s",
             json_string_value(json_object_get(json_array_get(r, 0), "id")));
    json_decref(doc);
    return (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}

Test(http_api, a_waiting_feed_is_woken_by_a_commit_not_by_its_poll)
{
    args q = {{"feed", "since", "timeout"}, {"longpoll", "0", "3"}};
    outside quiet = {"quiet", 0}, woken = {"woken", 1};
    char id[32];
    double s;

    api.feed_poll_ms = 60000; /* its poll alone would not see it in time */
    /* Not woken: the commit is seen only at the wait's end (3 s). */
    s = longpoll_during(&q, &quiet, id, sizeof id);
    cr_assert_str_eq(id, "quiet");
    cr_assert_geq(s, 2.5, "answered after %.2f s without a wake-up", s);
    /* Woken: it answers at once. */
    q.v[1] = "1";
    q.v[2] = "30";
    s = longpoll_during(&q, &woken, id, sizeof id);
    cr_assert_str_eq(id, "woken");
    cr_assert_lt(s, 2.5, "answered after %.2f s although woken", s);
    api.feed_poll_ms = 0;
}

/* GET /v1/changes as an event stream: the stream's text until it ends
 * (timeout) or holds `until`. */
static char *
sse_text(args *q, const char *last_event_id, const char *until)
{
    char auth[128], *text = NULL;
    size_t n = 0;
    bs_api_req rq = {"GET", "/v1/changes", arg_of, q,
                     auth,  NULL,          0,      last_event_id};
    bs_api_resp r;
    long got;

    snprintf(auth, sizeof auth, "Bearer %s", tok);
    bs_api_handle(&api, &rq, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.type, "text/event-stream");
    cr_assert_null(r.body);
    cr_assert_not_null(r.stream);
    do {
        char buf[64]; /* small: events span several reads */
        if ((got = r.stream->read(r.stream, buf, sizeof buf)) > 0) {
            text = realloc(text, n + (size_t)got + 1);
            cr_assert_not_null(text);
            memcpy(text + n, buf, (size_t)got);
            n += (size_t)got;
            text[n] = '\0';
        }
    } while (got > 0 && (until == NULL || strstr(text, until) == NULL));
    r.stream->free(r.stream);
    return text ? text : strdup("");
}

Test(http_api, the_event_stream_sends_each_change_with_its_seq)
{
    args q = {{"feed", "timeout", "collection"}, {"sse", "1", "c"}};
    pthread_t th;
    char *t;

    put_ok("c", "a", "{\"n\":1}");
    put_ok("d", "x", "{\"n\":2}");
    put_ok("c", "b", "{\"n\":3}");
    /* everything there, then the end after 1 s */
    t = sse_text(&q, NULL, NULL);
    cr_assert_not_null(strstr(t, "id: 1\ndata: {\"seq\":1,"), "%s", t);
    cr_assert_not_null(strstr(t, "\"id\":\"a\""), "%s", t);
    cr_assert_not_null(strstr(t, "id: 3\ndata: {\"seq\":3,"), "%s", t);
    cr_assert_null(strstr(t, "\"id\":\"x\""), "another collection: %s", t);
    cr_assert_eq(t[strlen(t) - 1], '\n');
    free(t);
    /* a reconnecting client's Last-Event-ID resumes after it, and a
     * write made while the stream is open arrives */
    q.v[1] = "20";
    cr_assert_eq(pthread_create(&th, NULL, late_put, NULL), 0);
    t = sse_text(&q, "3", "\"late\"");
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_null(strstr(t, "\"id\":\"a\""), "%s", t);
    cr_assert_not_null(strstr(t, "id: 4\ndata: {\"seq\":4,"), "%s", t);
    free(t);
    {
        args bad = {{"feed"}, {"sse"}};
        int st;
        char auth[128];
        bs_api_req rq = {"GET", "/v1/changes", arg_of, &bad,
                         auth,  NULL,          0,      "x"};
        bs_api_resp r;

        snprintf(auth, sizeof auth, "Bearer %s", tok);
        bs_api_handle(&api, &rq, &r);
        st = r.status;
        free(r.body);
        cr_assert_eq(st, 400, "a bad Last-Event-ID");
    }
}

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A server that stops (bs_http_stop) joins every connection's thread: a
 * feed waiting out a long timeout must end at once instead. */
Test(http_api, a_waiting_feed_ends_when_the_server_stops)
{
    args lp = {{"feed", "since", "timeout"}, {"longpoll", "0", "300"}};
    args sse = {{"feed", "timeout"}, {"sse", "300"}};
    uint64_t t0, last;
    json_t *doc, *r;
    char *t;

    __atomic_store_n(&api.stopping, 1, __ATOMIC_SEQ_CST);
    t0 = mono_ms();
    r = feed(&lp, &doc, &last);
    cr_assert_eq(json_array_size(r), 0);
    json_decref(doc);
    t = sse_text(&sse, NULL, NULL);
    free(t);
    cr_assert_lt(mono_ms() - t0, 5000, "the feeds waited out their timeout");
    __atomic_store_n(&api.stopping, 0, __ATOMIC_SEQ_CST);
}
