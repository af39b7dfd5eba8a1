/*
 * test_http_write.c - group commit of the HTTP API's single-record writes
 * (node/http_write.h, issue 10 item 4): concurrent PUTs and DELETEs share
 * one durable transaction and one signed change set, each request gets
 * its own outcome (a write a rule forbids is 403 while the rest of its
 * batch is 200), and every acknowledged write is readable after.
 *
 * Requests run on threads through bs_api_handle, as libmicrohttpd's
 * connection threads call it.  To make "one batch" certain rather than
 * likely, the queue is held (bs_http_writeq_hold) until every request is
 * queued, then let go.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "../lib/fixture.h"
#include "../../node/http.h"
#include "../../node/http_api.h"
#include "../../replication/collections.h"

#define NTHREADS 16

static char root[128];
static bst_node head, tallinn;
static char auth[128];
static int changed_calls;

static void
on_changed(void *ctx)
{
    (void)ctx;
    __atomic_fetch_add(&changed_calls, 1, __ATOMIC_RELAXED);
}

static void
setup(void)
{
    char token[BS_HTTP_TOKEN_LEN + 1];
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "http_write");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, NULL);
    bst_ok(bs_http_token_load(head.dir, 0, token, &err), &err, "token");
    snprintf(auth, sizeof auth, "Bearer %s", token);
    changed_calls = 0;
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_rmtree(root);
    bst_leak_check("test_http_write");
}

TestSuite(http_write, .init = setup, .fini = teardown, .timeout = 120);

static bs_api *
api_new(bst_node *t)
{
    static bs_api apis[2];
    bs_api *a = t == &head ? &apis[0] : &apis[1];
    bs_api_hooks hooks = {on_changed, NULL, NULL, 1};
    bs_errbuf err = {{0}};
    const char *tok = auth + 7;

    bst_ok(bs_api_init(a, t->n, tok, &hooks, &err), &err, "api");
    return a;
}

/* One request, run on its own thread; checked on the main thread. */
typedef struct req {
    bs_api *api;
    const char *method;
    char path[128];
    char body[128];
    int status;
    char *answer;
    pthread_t th;
} req;

static void *
run(void *arg)
{
    req *r = arg;
    bs_api_req rq = {r->method, r->path, NULL,           NULL,
                     auth,      r->body, strlen(r->body)};
    bs_api_resp out;

    bs_api_handle(r->api, &rq, &out);
    r->status = out.status;
    r->answer = out.body;
    return NULL;
}

/* Start rs[0..n) with the queue held; once all n are queued, let them go
 * (one batch) and wait for every answer. */
static void
run_as_one_batch(bs_api *api, req *rs, int n)
{
    struct timespec t0, now;

    bs_http_writeq_hold(&api->writes, 1);
    for (int i = 0; i < n; i++)
        cr_assert_eq(pthread_create(&rs[i].th, NULL, run, &rs[i]), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (bs_http_writeq_pending(&api->writes) < (size_t)n) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        cr_assert_lt(now.tv_sec - t0.tv_sec, 20, "only %zu of %d queued",
                     bs_http_writeq_pending(&api->writes), n);
        sched_yield();
    }
    bs_http_writeq_hold(&api->writes, 0);
    for (int i = 0; i < n; i++)
        cr_assert_eq(pthread_join(rs[i].th, NULL), 0);
}

static uint64_t
log_sets(bst_node *t)
{
    bs_errbuf err = {{0}};
    uint64_t n = 0;
    bs_txn *txn;

    bst_ok(bs_store_read(t->n->store, &txn, &err), &err, "read");
    cr_assert_eq(bs_txn_count(txn, BS_DB_LOG, &n), BS_OK);
    bs_txn_abort(txn);
    return n;
}

/* GET path on this thread: its status; *name the record's "name". */
static int
get(bs_api *api, const char *path, char *name, size_t n)
{
    bs_api_req rq = {"GET", path, NULL, NULL, auth, NULL, 0};
    bs_api_resp out;
    json_t *j;
    int st;

    bs_api_handle(api, &rq, &out);
    st = out.status;
    j = json_loadb(out.body, out.len, 0, NULL);
    cr_assert_not_null(j, "GET %s: not JSON: %s", path, out.body);
    if (name != NULL)
        snprintf(name, n, "%s",
                 json_string_value(json_object_get(j, "name"))
                     ? json_string_value(json_object_get(j, "name"))
                     : "");
    json_decref(j);
    free(out.body);
    return st;
}

Test(http_write, concurrent_puts_share_one_durable_transaction)
{
    bs_api *api = api_new(&head);
    req rs[NTHREADS];
    uint64_t sets0 = log_sets(&head), sets;
    char name[64], want[64];

    memset(rs, 0, sizeof rs);
    for (int i = 0; i < NTHREADS; i++) {
        rs[i].api = api;
        rs[i].method = "PUT";
        snprintf(rs[i].path, sizeof rs[i].path,
                 "/v1/collections/customers/records/c%d", i);
        snprintf(rs[i].body, sizeof rs[i].body, "{\"name\":\"n%d\"}", i);
    }
    run_as_one_batch(api, rs, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        cr_assert_eq(rs[i].status, 200, "PUT %s: %d %s", rs[i].path,
                     rs[i].status, rs[i].answer);
        snprintf(want, sizeof want, "\"n%d\"", i);
        cr_assert(strstr(rs[i].answer, want) != NULL, "%s",
                  rs[i].answer); /* answered with its own record */
        free(rs[i].answer);
        snprintf(want, sizeof want, "n%d", i);
        cr_assert_eq(get(api, rs[i].path, name, sizeof name), 200);
        cr_assert_str_eq(name, want);
    }
    sets = log_sets(&head) - sets0;
    cr_assert_eq(api->writes.batches, 1, "%llu transactions for %d writes",
                 (unsigned long long)api->writes.batches, NTHREADS);
    cr_assert_eq(api->writes.writes, NTHREADS);
    cr_assert(sets >= 1 && sets < NTHREADS, "%llu sets for %d writes",
              (unsigned long long)sets, NTHREADS);
    cr_assert_eq(changed_calls, 1, "peers told %d times", changed_calls);
    bs_api_fini(api);
}

Test(http_write, one_forbidden_write_fails_alone_in_its_batch)
{
    bs_collection rules = {0}, out;
    bs_errbuf err = {{0}};
    req rs[6];
    bs_api *api;
    uint64_t sets0;

    /* the head office lets only itself write prices */
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
    api = api_new(&tallinn);
    sets0 = log_sets(&tallinn);
    memset(rs, 0, sizeof rs);
    for (int i = 0; i < 6; i++) {
        rs[i].api = api;
        rs[i].method = "PUT";
        snprintf(rs[i].path, sizeof rs[i].path,
                 "/v1/collections/notes/records/n%d", i);
        snprintf(rs[i].body, sizeof rs[i].body, "{\"name\":\"x%d\"}", i);
    }
    /* one a rule forbids, one delete of a record that is not there */
    snprintf(rs[2].path, sizeof rs[2].path,
             "/v1/collections/prices/records/p1");
    rs[4].method = "DELETE";
    snprintf(rs[4].path, sizeof rs[4].path,
             "/v1/collections/notes/records/missing");
    rs[4].body[0] = '\0';
    run_as_one_batch(api, rs, 6);
    for (int i = 0; i < 6; i++) {
        int want = i == 2 ? 403 : i == 4 ? 404 : 200;
        cr_assert_eq(rs[i].status, want, "%s %s: %d, want %d: %s", rs[i].method,
                     rs[i].path, rs[i].status, want, rs[i].answer);
        free(rs[i].answer);
        if (want == 200)
            cr_assert_eq(get(api, rs[i].path, NULL, 0), 200, "%s", rs[i].path);
    }
    cr_assert_eq(get(api, "/v1/collections/prices/records/p1", NULL, 0), 404);
    /* the other four in one transaction, despite two failures */
    cr_assert_eq(api->writes.batches, 1, "%llu transactions",
                 (unsigned long long)api->writes.batches);
    cr_assert_eq(api->writes.writes, 4);
    cr_assert_eq(log_sets(&tallinn) - sets0, 1);
    bs_api_fini(api);
}

/* Free-running writers (no hold): whatever batches form, every write is
 * acknowledged, readable, and counted; deletes see the puts before them. */
static void *
writer(void *arg)
{
    req *r = arg;
    int bad = 0;

    for (int k = 0; k < 20; k++) {
        char path[160];
        bs_api_req rq = {"PUT", path,    NULL,           NULL,
                         auth,  r->body, strlen(r->body)};
        bs_api_req del = {"DELETE", path, NULL, NULL, auth, NULL, 0};
        bs_api_resp out;

        snprintf(path, sizeof path, "%s-%d", r->path, k);
        bs_api_handle(r->api, &rq, &out);
        bad += out.status != 200;
        free(out.body);
        if (k % 5 == 4) { /* delete every fifth again */
            bs_api_handle(r->api, &del, &out);
            bad += out.status != 200;
            free(out.body);
        }
    }
    r->status = bad;
    return NULL;
}

Test(http_write, free_running_writers_all_land)
{
    bs_api *api = api_new(&head);
    req rs[NTHREADS];
    char path[160];

    memset(rs, 0, sizeof rs);
    for (int i = 0; i < NTHREADS; i++) {
        rs[i].api = api;
        snprintf(rs[i].path, sizeof rs[i].path,
                 "/v1/collections/orders/records/t%d", i);
        snprintf(rs[i].body, sizeof rs[i].body, "{\"name\":\"t%d\"}", i);
        cr_assert_eq(pthread_create(&rs[i].th, NULL, writer, &rs[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        cr_assert_eq(pthread_join(rs[i].th, NULL), 0);
        cr_assert_eq(rs[i].status, 0, "thread %d: %d failed", i, rs[i].status);
        for (int k = 0; k < 20; k++) {
            snprintf(path, sizeof path, "%s-%d", rs[i].path, k);
            cr_assert_eq(get(api, path, NULL, 0), k % 5 == 4 ? 404 : 200, "%s",
                         path);
        }
    }
    cr_assert_eq(api->writes.writes, NTHREADS * 24);
    cr_assert(api->writes.batches >= 1 && api->writes.batches <= NTHREADS * 24);
    bs_api_fini(api);
}

/* A PUT is answered with the record as its own write left it, read in
 * the batch's transaction (no read-back after the commit): of two PUTs of
 * one record in one batch, the first answer lacks the second's field. */
Test(http_write, a_put_is_answered_with_the_record_as_its_write_left_it)
{
    bs_api *api = api_new(&head);
    req rs[2];
    int both = 0, alone = 0;

    memset(rs, 0, sizeof rs);
    for (int i = 0; i < 2; i++) {
        rs[i].api = api;
        rs[i].method = "PUT";
        snprintf(rs[i].path, sizeof rs[i].path,
                 "/v1/collections/customers/records/same");
        snprintf(rs[i].body, sizeof rs[i].body, "{\"f%d\":%d}", i, i);
    }
    run_as_one_batch(api, rs, 2);
    cr_assert_eq(api->writes.batches, 1);
    for (int i = 0; i < 2; i++) {
        int has0, has1;
        cr_assert_eq(rs[i].status, 200, "%s", rs[i].answer);
        has0 = strstr(rs[i].answer, "\"f0\":0") != NULL;
        has1 = strstr(rs[i].answer, "\"f1\":1") != NULL;
        cr_assert(strstr(rs[i].answer, "\"id\":\"same\""), "%s", rs[i].answer);
        both += has0 && has1;
        alone += has0 != has1;
        free(rs[i].answer);
    }
    cr_assert_eq(both, 1, "the later PUT sees both fields");
    cr_assert_eq(alone, 1, "the earlier PUT is answered as of its own write");
    bs_api_fini(api);
}
