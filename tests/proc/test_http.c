/*
 * test_http.c - the HTTP API of a real branchsyncd (issue 10 items 1, 2
 * and 5), driven with libcurl on 127.0.0.1, each node on a free port:
 *   1. the token, records round trip, paging, bulk, bad input (400,
 *      nothing written), 404, 405, 413, /health and /metrics;
 *   2. a write through HTTP reaches a paired online peer;
 *   3. a write a collection rule forbids is 403 and writes nothing;
 *   4. an HTTP port already taken: the daemon replicates anyway, doctor
 *      names the problem, and the API is served once the port is free;
 *   5. a non-loopback address without TLS: the daemon refuses to start;
 *   6. a client that sends nothing does not stop the others;
 *   7. with [http] cert and key the API is served over TLS only;
 *   8. a longpoll change feed, then an event stream (sse), open at a
 *      branch receives a change written at its online hub (item 3); the
 *      daemon stops at once with a longpoll open;
 *   9. /metrics after a known number of changes and exchanges (item 5);
 *  10. slow clients: a client trickling its request is cut at [http]
 *      request_timeout_s, one address gets at most max_connections_per_ip,
 *      and meanwhile other clients and replication are served.
 *
 * Run one: test_proc_http --filter 'http/bulk*' --verbose.
 */
#include "proc_util.h"

#include <curl/curl.h>
#include <pthread.h>
#include <regex.h>

#define SUITE_TIMEOUT 240

static void
setup(void)
{
    p_setup();
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
teardown(void)
{
    p_teardown();
    curl_global_cleanup();
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = SUITE_TIMEOUT);

/* ---- a small libcurl client ---- */

typedef struct resp {
    long status; /* 0: no answer (connection refused, timeout) */
    char *body;
    size_t n;
} resp;

static size_t
on_data(char *p, size_t sz, size_t nm, void *ctx)
{
    resp *r = ctx;

    p_append(&r->body, &r->n, p, sz * nm);
    return sz * nm;
}

static const char *p_scheme = "http"; /* "https" in test 7 */

/* method on n's HTTP port; token NULL: no Authorization header. */
static resp
http_len(const node *n, const char *token, const char *method, const char *path,
         const char *body, size_t blen)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[512], auth[256];
    resp r = {0, strdup(""), 0};

    cr_assert_not_null(c);
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", p_scheme, n->http_port,
             path);
    /* test 7's certificate is self-signed */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (token != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    if (body != NULL) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static resp
http(const node *n, const char *token, const char *method, const char *path,
     const char *body)
{
    return http_len(n, token, method, path, body, body ? strlen(body) : 0);
}

/* A request that must answer `want`; its body parsed as JSON (text
 * answers: NULL). */
static json_t *
expect(const node *n, const char *token, int want, const char *method,
       const char *path, const char *body)
{
    resp r = http(n, token, method, path, body);
    json_t *j = json_loads(r.body, JSON_DECODE_ANY, NULL);

    cr_assert_eq(r.status, want, "%s %s on %s: %ld, want %d: %s", method, path,
                 n->name, r.status, want, r.body);
    free(r.body);
    return j;
}

/* The node's API token, as `api-token` prints it. */
static void
token_of(const node *n, char *buf, size_t len)
{
    run r = {0};

    CLI_OK(&r, n, "api-token");
    r.out[strcspn(r.out, "\r\n")] = '\0';
    cr_assert_eq(strlen(r.out), 64, "api-token: \"%s\"", r.out);
    snprintf(buf, len, "%s", r.out);
    run_free(&r);
}

/* Append settings to n's configuration file (read at the next start). */
static void
conf_append(const node *n, const char *text)
{
    char path[PATH_MAX + 32];
    FILE *f;

    snprintf(path, sizeof path, "%s/branchsync.conf", n->dir);
    f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Wait until n's API answers /health (any status). */
static void
http_wait(const node *n)
{
    int ok;
    resp r = {0};

    POLL(ok, 10000,
         (free(r.body), r = http(n, NULL, "GET", "/health", NULL),
          r.status != 0));
    free(r.body);
    cr_assert(ok, "the HTTP API of %s did not answer in 10 s", n->name);
}

/* ---- 1. one node, every kind of answer ---- */

Test(http, records_paging_bulk_and_errors)
{
    node *n = node_new("head", 1, 0);
    char tok[128], d0[256], d1[256], path[128];
    json_t *j;
    run r = {0};

    conf_append(n, "[http]\nbody_max_mb = 1\n");
    token_of(n, tok, sizeof tok);
    daemon_start(n);
    http_wait(n);

    /* No token, a bad token: 401 with a JSON error. */
    j = expect(n, NULL, 401, "GET", "/v1/status", NULL);
    cr_assert_eq(json_integer_value(json_object_get(j, "code")), 401);
    cr_assert(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    json_decref(expect(n, "not-the-token", 401, "GET",
                       "/v1/collections/c/records", NULL));

    /* Round trip, and the CLI sees it. */
    j = expect(n, tok, 200, "PUT", "/v1/collections/customers/records/c1",
               "{\"name\":\"Acme\",\"vip\":true}");
    cr_assert_str_eq(json_string_value(json_object_get(j, "name")), "Acme");
    json_decref(j);
    cr_assert(node_has(n, "customers", "c1", "\"name\":\"Acme\""));
    j = expect(n, tok, 200, "GET", "/v1/collections/customers/records/c1",
               NULL);
    cr_assert(json_is_true(json_object_get(j, "vip")));
    json_decref(j);
    json_decref(expect(n, tok, 200, "DELETE",
                       "/v1/collections/customers/records/c1", NULL));
    json_decref(expect(n, tok, 404, "GET",
                       "/v1/collections/customers/records/c1", NULL));
    json_decref(expect(n, tok, 404, "GET", "/v1/nothing", NULL));
    json_decref(
        expect(n, tok, 405, "PATCH", "/v1/collections/c/records/x", "{}"));

    /* Bulk, then paging through it. */
    j = expect(n, tok, 200, "POST", "/v1/collections/items/records",
               "{\"id\":\"i1\",\"n\":1}\n{\"id\":\"i2\",\"n\":2}\n"
               "{\"id\":\"i3\",\"n\":3}\n");
    cr_assert_eq(json_integer_value(json_object_get(j, "written")), 3);
    json_decref(j);
    j = expect(n, tok, 200, "GET", "/v1/collections/items/records?limit=2",
               NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "records")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(j, "next")), "i2");
    json_decref(j);
    j = expect(n, tok, 200, "GET",
               "/v1/collections/items/records?limit=2&after=i2", NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "records")), 1);
    cr_assert(json_is_null(json_object_get(j, "next")));
    json_decref(j);

    /* Bad JSON, a bad bulk line, a body over 1 MiB: nothing written. */
    node_digest(n, d0, sizeof d0);
    json_decref(expect(n, tok, 400, "PUT", "/v1/collections/items/records/x",
                       "{\"n\":"));
    json_decref(expect(n, tok, 400, "POST", "/v1/collections/items/records",
                       "{\"id\":\"i4\",\"n\":4}\n{oops}\n"));
    {
        size_t big = (2u << 20);
        char *body = malloc(big + 1);
        resp rr;
        cr_assert_not_null(body);
        memset(body, ' ', big);
        memcpy(body, "{\"a\":1}", 7);
        body[big] = '\0';
        rr = http_len(n, tok, "PUT", "/v1/collections/items/records/big", body,
                      big);
        cr_assert_eq(rr.status, 413, "%ld: %s", rr.status, rr.body);
        cr_assert(strstr(rr.body, "\"code\":413"), "%s", rr.body);
        free(rr.body);
        free(body);
    }
    node_digest(n, d1, sizeof d1);
    cr_assert_str_eq(d0, d1, "refused requests wrote");

    /* Health and metrics need no token. */
    j = expect(n, NULL, 200, "GET", "/health", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    {
        resp m = http(n, NULL, "GET", "/metrics", NULL);
        regex_t re;
        char *line, *save = NULL;
        int samples = 0;
        cr_assert_eq(m.status, 200);
        cr_assert_eq(regcomp(&re,
                             "^branchsync_[a-z_]+(\\{[a-z_]+=\"[^\"]*\"\\})? "
                             "([-+]?[0-9.eE+-]+|\\+Inf)$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
        for (line = strtok_r(m.body, "\n", &save); line != NULL;
             line = strtok_r(NULL, "\n", &save)) {
            if (line[0] == '#')
                continue;
            cr_assert_eq(regexec(&re, line, 0, NULL, 0), 0,
                         "not a Prometheus sample: \"%s\"", line);
            samples++;
        }
        regfree(&re);
        cr_assert_gt(samples, 5);
        free(m.body);
        m = http(n, NULL, "GET", "/metrics", NULL);
        cr_assert(strstr(m.body, "branchsync_http_requests_total{code=\"413\"} "
                                 "1\n"),
                  "%s", m.body);
        cr_assert(strstr(m.body, "branchsync_own_changes_total 5\n"), "%s",
                  m.body);
        free(m.body);
    }
    /* The status document is `status --json`'s. */
    j = expect(n, tok, 200, "GET", "/v1/status", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "name")), "head");
    cr_assert_eq(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(j, "collections"), "items"),
            "records")),
        3);
    {
        /* ... with the same members as the CLI's. */
        json_t *cli = node_status(n), *v;
        const char *k;
        json_object_foreach(cli, k, v) cr_assert_not_null(
            json_object_get(j, k), "GET /v1/status lacks \"%s\"", k);
        cr_assert_eq(json_object_size(cli), json_object_size(j));
        json_decref(cli);
    }
    json_decref(j);
    snprintf(path, sizeof path, "/v1/collections/items/records/i1");
    json_decref(expect(n, tok, 200, "GET", path, NULL));
    run_free(&r);
    p_pass();
}

/* ---- 2. an HTTP write reaches an online peer ---- */

Test(http, a_write_through_http_reaches_an_online_peer)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    char tok[128];
    json_t *j;
    int ok;

    node_pair(hub, br, "online");
    node_pair(br, hub, "online");
    daemon_start(hub);
    daemon_start(br);
    token_of(hub, tok, sizeof tok);
    http_wait(hub);
    /* The first exchange joins the branch. */
    run r = {0};
    CLI_OK(&r, br, "sync", "head");
    run_free(&r);
    json_decref(expect(hub, tok, 200, "PUT",
                       "/v1/collections/customers/records/w1",
                       "{\"via\":\"http\"}"));
    POLL(ok, 10000, node_has(br, "customers", "w1", "\"via\":\"http\""));
    cr_assert(ok, "an HTTP write at the hub did not reach the online branch "
                  "in 10 s");
    /* And sync through the API waits for the exchange. */
    j = expect(hub, tok, 200, "POST", "/v1/peers/tallinn/sync", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "peer")), "tallinn");
    json_decref(j);
    json_decref(expect(hub, tok, 404, "POST", "/v1/peers/nobody/sync", NULL));
    j = expect(hub, tok, 200, "GET", "/v1/peers", NULL);
    cr_assert_eq(json_array_size(j), 1);
    json_decref(j);
    j = expect(hub, tok, 200, "GET", "/v1/log", NULL);
    cr_assert_gt(json_array_size(j), 0);
    json_decref(j);
    p_pass();
}

/* ---- 3. a rule forbids the write ---- */

Test(http, a_write_the_rules_forbid_is_403)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    char tok[128], d0[256], d1[256];
    run r = {0};
    json_t *j;

    node_pair(hub, br, NULL);
    node_pair(br, hub, NULL);
    CLI_OK(&r, hub, "collection", "prices", "--writers", "hub");
    daemon_start(hub);
    daemon_start(br);
    CLI_OK(&r, br, "sync", "head");
    token_of(br, tok, sizeof tok);
    http_wait(br);
    node_digest(br, d0, sizeof d0);
    j = expect(br, tok, 403, "PUT", "/v1/collections/prices/records/p1",
               "{\"eur\":3}");
    cr_assert_eq(json_integer_value(json_object_get(j, "code")), 403);
    json_decref(j);
    node_digest(br, d1, sizeof d1);
    cr_assert_str_eq(d0, d1, "the refused write wrote");
    run_free(&r);
    p_pass();
}

/* ---- 4. the HTTP port is taken ---- */

/* A socket listening on 127.0.0.1:port. */
static int
occupy(int port)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind: %s",
                 strerror(errno));
    cr_assert_eq(listen(fd, 4), 0);
    return fd;
}

Test(http, a_taken_port_is_reported_and_retried_while_replication_goes_on)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    int fd = occupy(hub->http_port), ok;
    run r = {0};

    node_pair(hub, br, "online");
    node_pair(br, hub, "online");
    daemon_start(hub);
    daemon_start(br);
    cr_assert(p_file_has(hub->logpath, 0, "cannot bind HTTP address"),
              "the bind failure is not logged");
    /* doctor and status name it. */
    cr_assert_eq(CLI(&r, hub, "doctor"), 1, "doctor: %s", r.out);
    cr_assert(strstr(r.out, "http_down"), "%s", r.out);
    cr_assert(strstr(r.out, "Address already in use"), "%s", r.out);
    CLI_OK(&r, hub, "status");
    cr_assert(strstr(r.out, "http_down"), "%s", r.out);
    /* Replication goes on. */
    CLI_OK(&r, br, "sync", "head");
    CLI_OK(&r, hub, "put", "customers", "c1", "{\"city\":\"Tartu\"}");
    POLL(ok, 10000, node_has(br, "customers", "c1", "Tartu"));
    cr_assert(ok, "replication stopped while HTTP could not bind");
    /* Freed, the port is bound by the next retry. */
    close(fd);
    http_wait(hub);
    json_decref(expect(hub, NULL, 200, "GET", "/health", NULL));
    CLI_OK(&r, hub, "doctor");
    run_free(&r);
    p_pass();
}

/* ---- 5. no TLS off loopback ---- */

Test(http, a_non_loopback_address_without_tls_refuses_to_start)
{
    node *n = node_new("head", 1, 0);
    char *argv[] = {(char *)p_daemon_path(), "-d", n->dir, NULL};
    run r = {0};

    conf_append(n, "[http]\nlisten = 0.0.0.0:7480\n");
    cr_assert_eq(run_argv(&r, argv, 20000), 2, "status %d: %s", r.status,
                 r.err);
    cr_assert(strstr(r.err, "needs TLS"), "%s", r.err);
    /* [http] listen = off: no HTTP API, and the daemon starts. */
    conf_append(n, "[http]\nlisten = off\n");
    daemon_start(n);
    cr_assert_not(p_file_has(n->logpath, 0, "HTTP API on"));
    run_free(&r);
    p_pass();
}

/* ---- 6. a silent client ---- */

Test(http, a_client_that_sends_nothing_does_not_block_others)
{
    node *n = node_new("head", 1, 0);
    struct sockaddr_in a = {0};
    int fds[8];

    conf_append(n, "[http]\ntimeout_s = 2\n");
    daemon_start(n);
    http_wait(n);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)n->http_port);
    for (int i = 0; i < 8; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
        if (i % 2)
            cr_assert_eq(write(fds[i], "GET /hea", 8), 8);
    }
    json_decref(expect(n, NULL, 200, "GET", "/health", NULL));
    /* The idle ones are closed after [http] timeout_s. */
    {
        struct pollfd p = {fds[0], POLLIN, 0};
        char c;
        cr_assert_eq(poll(&p, 1, 10000), 1, "idle connection not closed");
        cr_assert_eq(read(fds[0], &c, 1), 0);
    }
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    p_pass();
}

/* ---- 7. TLS ---- */

Test(http, with_a_cert_and_key_the_api_is_served_over_tls)
{
    node *n = node_new("head", 1, 0);
    char cert[PATH_MAX + 16], key[PATH_MAX + 16], conf[3 * PATH_MAX];
    char subj[] = "/CN=127.0.0.1";
    char *argv[] = {"/usr/bin/openssl", "req",   "-x509", "-newkey", "rsa:2048",
                    "-nodes",           "-days", "2",     "-subj",   subj,
                    "-keyout",          key,     "-out",  cert,      NULL};
    run r = {0};
    resp plain;
    json_t *j;

    snprintf(cert, sizeof cert, "%s/cert.pem", p_base);
    snprintf(key, sizeof key, "%s/key.pem", p_base);
    cr_assert_eq(run_argv(&r, argv, 60000), 0, "openssl: %s", r.err);
    snprintf(conf, sizeof conf, "[http]\ncert = %s\nkey = %s\n", cert, key);
    conf_append(n, conf);
    daemon_start(n);
    cr_assert(p_file_has(n->logpath, 0, "HTTP API on https://"),
              "the daemon does not say it serves https");
    p_scheme = "https";
    http_wait(n);
    j = expect(n, NULL, 200, "GET", "/health", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    p_scheme = "http";
    plain = http(n, NULL, "GET", "/health", NULL);
    cr_assert_neq(plain.status, 200, "plain HTTP answered beside TLS");
    free(plain.body);
    run_free(&r);
    p_pass();
}

/* ---- 8. the change feed ---- */

typedef struct feed_call {
    const node *n;
    const char *token;
    char path[256];
    resp r;
} feed_call;

static void *
feed_thread(void *arg)
{
    feed_call *f = arg;

    f->r = http(f->n, f->token, "GET", f->path, NULL);
    return NULL;
}

/* An event stream's bytes, until they hold "f2" (then the transfer is
 * cut) or the stream ends. */
static size_t
on_event(char *p, size_t sz, size_t nm, void *ctx)
{
    resp *r = ctx;

    p_append(&r->body, &r->n, p, sz * nm);
    return strstr(r->body, "\"f2\"") != NULL ? 0 : sz * nm;
}

static void *
sse_thread(void *arg)
{
    feed_call *f = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[512], auth[256];

    f->r.body = strdup("");
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->n->http_port,
             f->path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", f->token);
    h = curl_slist_append(h, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_event);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &f->r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_perform(c); /* cut by on_event, or the stream's end */
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

Test(http, the_change_feed_receives_a_change_written_at_the_online_peer)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    char tok[128], hub_id[128];
    feed_call f = {0};
    json_t *j, *res, *e = NULL;
    pthread_t th;
    long long last;
    run r = {0};

    node_pair(hub, br, "online");
    node_pair(br, hub, "online");
    daemon_start(hub);
    daemon_start(br);
    token_of(br, tok, sizeof tok);
    http_wait(br);
    CLI_OK(&r, br, "sync", "head"); /* joins the branch */
    run_free(&r);
    CLI_OK(&r, hub, "id"); /* "head ID" */
    r.out[strcspn(r.out, "\r\n")] = '\0';
    cr_assert_not_null(strrchr(r.out, ' '), "id: %s", r.out);
    snprintf(hub_id, sizeof hub_id, "%s", strrchr(r.out, ' ') + 1);
    run_free(&r);

    j = expect(br, tok, 200, "GET", "/v1/changes", NULL);
    last = json_integer_value(json_object_get(j, "last_seq"));
    json_decref(j);
    f.n = br;
    f.token = tok;
    snprintf(f.path, sizeof f.path,
             "/v1/changes?feed=longpoll&since=%lld&timeout=20&include_docs="
             "true",
             last);
    cr_assert_eq(pthread_create(&th, NULL, feed_thread, &f), 0);
    CLI_OK(&r, hub, "put", "customers", "f1", "{\"name\":\"fed\"}");
    run_free(&r);
    cr_assert_eq(pthread_join(th, NULL), 0);

    cr_assert_eq(f.r.status, 200, "longpoll: %ld %s", f.r.status, f.r.body);
    j = json_loads(f.r.body, 0, NULL);
    cr_assert_not_null(j, "%s", f.r.body);
    res = json_object_get(j, "results");
    for (size_t i = 0; i < json_array_size(res); i++)
        if (strcmp(json_string_value(
                       json_object_get(json_array_get(res, i), "id")),
                   "f1") == 0)
            e = json_array_get(res, i);
    cr_assert_not_null(e,
                       "the hub's write did not reach the feed in 20 s: "
                       "%s",
                       f.r.body);
    cr_assert_str_eq(json_string_value(json_object_get(e, "collection")),
                     "customers");
    cr_assert_str_eq(json_string_value(json_object_get(e, "origin")), hub_id);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(e, "doc"), "name")),
        "fed");
    cr_assert_gt(json_integer_value(json_object_get(e, "seq")), last);
    cr_assert_eq(json_integer_value(json_object_get(j, "last_seq")),
                 json_integer_value(json_object_get(e, "seq")));
    last = json_integer_value(json_object_get(j, "last_seq"));
    json_decref(j);
    free(f.r.body);

    /* the same as an event stream */
    memset(&f.r, 0, sizeof f.r);
    snprintf(f.path, sizeof f.path,
             "/v1/changes?feed=sse&since=%lld&timeout=20", last);
    cr_assert_eq(pthread_create(&th, NULL, sse_thread, &f), 0);
    CLI_OK(&r, hub, "put", "customers", "f2", "{\"name\":\"streamed\"}");
    run_free(&r);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(f.r.status, 200, "sse: %ld %s", f.r.status, f.r.body);
    cr_assert_not_null(strstr(f.r.body, "\"id\":\"f2\""),
                       "the hub's write did not reach the event stream in "
                       "20 s: %s",
                       f.r.body);
    {
        char want[64];
        snprintf(want, sizeof want, "id: %lld\ndata: {", last + 1);
        cr_assert_not_null(strstr(f.r.body, want), "%s", f.r.body);
    }
    free(f.r.body);

    /* a daemon stopping does not wait for an open longpoll's timeout */
    memset(&f.r, 0, sizeof f.r);
    snprintf(f.path, sizeof f.path,
             "/v1/changes?feed=longpoll&since=%lld&timeout=300", last + 1000);
    cr_assert_eq(pthread_create(&th, NULL, feed_thread, &f), 0);
    json_decref(expect(br, tok, 200, "GET", "/v1/status", NULL));
    cr_assert_eq(daemon_signal_wait(br, SIGTERM, 10000), 0,
                 "the daemon did not stop in 10 s with a longpoll open");
    cr_assert_eq(pthread_join(th, NULL), 0);
    free(f.r.body);
    p_pass();
}

/* ---- 9. /metrics after a known number of changes and exchanges ---- */

/* The value of the sample "name value" in n's /metrics; -1 when absent. */
static double
metric(const node *n, const char *name)
{
    resp r = http(n, NULL, "GET", "/metrics", NULL);
    size_t len = strlen(name);
    double v = -1;

    cr_assert_eq(r.status, 200, "/metrics: %ld", r.status);
    for (const char *p = r.body; p && *p;
         p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, name, len) == 0 && p[len] == ' ') {
            v = strtod(p + len + 1, NULL);
            break;
        }
    free(r.body);
    return v;
}

Test(http, metrics_count_the_changes_and_exchanges_exactly)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    const char *applied = "branchsync_changes_applied_total{peer=\"tallinn\"}",
               *sent = "branchsync_changes_sent_total{peer=\"head\"}",
               *xok = "branchsync_exchanges_total{peer=\"head\",result=\"ok\"}",
               *hub_x = "branchsync_exchanges_total{peer=\"tallinn\","
                        "result=\"ok\"}",
               *sets = "branchsync_apply_duration_seconds_count",
               *xdur = "branchsync_exchange_duration_seconds_count";
    double a0, s0, x0, h0, k0, d0;
    char id[16];
    run r = {0};
    int ok;

    /* manual links: exchanges happen only when asked */
    node_pair(hub, br, NULL);
    node_pair(br, hub, NULL);
    daemon_start(hub);
    daemon_start(br);
    http_wait(hub);
    http_wait(br);
    CLI_OK(&r, br, "sync", "head"); /* joins: system records arrive */
    POLL(ok, 10000, metric(hub, hub_x) == 1);
    cr_assert(ok, "the hub did not count the joining exchange");
    a0 = metric(hub, applied);
    s0 = metric(br, sent);
    x0 = metric(br, xok);
    h0 = metric(hub, hub_x);
    k0 = metric(hub, sets);
    d0 = metric(br, xdur);
    cr_assert_eq(x0, 1);
    /* Seven writes at the branch, one set each, then one exchange. */
    for (int i = 0; i < 7; i++) {
        snprintf(id, sizeof id, "m%d", i);
        CLI_OK(&r, br, "put", "customers", id, "{\"n\":1}");
    }
    CLI_OK(&r, br, "sync", "head");
    /* The branch started it: counted before its `sync` was answered. */
    cr_assert_eq(metric(br, sent), s0 + 7);
    cr_assert_eq(metric(br, xok), x0 + 1);
    cr_assert_eq(metric(br, xdur), d0 + 1);
    /* The hub ends its side when the last message arrives. */
    POLL(ok, 10000, metric(hub, hub_x) == h0 + 1);
    cr_assert(ok, "the hub did not count the second exchange");
    cr_assert_eq(metric(hub, applied), a0 + 7);
    cr_assert_eq(metric(hub, sets), k0 + 7, "one apply per set");
    cr_assert_geq(metric(hub, "branchsync_apply_duration_seconds_sum"), 0);
    /* The figures the store gives are there too. */
    cr_assert_eq(metric(br, "branchsync_peer_pending_out_changes{peer="
                            "\"head\"}"),
                 0);
    cr_assert_geq(metric(hub, "branchsync_conflicts_total"), 0);
    cr_assert_gt(metric(hub, "branchsync_store_used_bytes"), 0);
    cr_assert_gt(metric(hub, "branchsync_http_requests_total{code=\"200\"}"),
                 0);
    run_free(&r);
    p_pass();
}

/* ---- 10. slow clients: trickled requests, one address's connections ---- */

/* A connection to n's HTTP port from the loopback address src (another
 * 127.x address stands for another client machine); -1 when refused. */
static int
connect_from(const node *n, const char *src)
{
    struct sockaddr_in a = {0}, from = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    from.sin_family = AF_INET;
    inet_pton(AF_INET, src, &from.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&from, sizeof from), 0,
                 "bind %s: %s", src, strerror(errno));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)n->http_port);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Whether the server closed fd (EOF or reset) within ms. */
static int
closed_within(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char buf[512];

    if (poll(&p, 1, ms) != 1)
        return 0;
    return read(fd, buf, sizeof buf) <= 0;
}

Test(http, trickling_clients_are_cut_and_others_and_replication_go_on)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    enum { SLOW = 4 };
    static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    int slow[SLOW], open_ = SLOW, extra;
    uint64_t t0, cut_ms = 0;
    char tok[128];
    run r = {0};

    node_pair(hub, br, NULL);
    node_pair(br, hub, NULL);
    /* idle timeout far away: only the request deadline can cut them */
    conf_append(hub, "[http]\ntimeout_s = 120\nrequest_timeout_s = 2\n"
                     "max_connections = 8\nmax_connections_per_ip = 4\n");
    daemon_start(hub);
    daemon_start(br);
    token_of(hub, tok, sizeof tok);
    http_wait(hub);
    CLI_OK(&r, br, "sync", "head");
    /* Another machine (127.0.0.2) takes its share and trickles. */
    t0 = p_now_ms();
    for (int i = 0; i < SLOW; i++) {
        slow[i] = connect_from(hub, "127.0.0.2");
        cr_assert_eq(write(slow[i], req, 10), 10);
    }
    /* Its fifth connection is over the per-address limit. */
    extra = connect_from(hub, "127.0.0.2");
    cr_assert(closed_within(extra, 5000),
              "a connection over max_connections_per_ip was served");
    close(extra);
    /* Meanwhile every other client, and replication, is served. */
    json_decref(expect(hub, NULL, 200, "GET", "/health", NULL));
    json_decref(expect(hub, tok, 200, "PUT", "/v1/collections/c/records/r1",
                       "{\"n\":1}"));
    CLI_OK(&r, br, "sync", "head");
    cr_assert(node_has(br, "c", "r1", "\"n\":1"), "replication stalled");
    /* The trickling ones are cut at request_timeout_s, not before. */
    while (open_ > 0 && p_now_ms() - t0 < 15000) {
        for (int i = 0; i < SLOW; i++) {
            if (slow[i] < 0)
                continue;
            if (send(slow[i], "x", 1, MSG_NOSIGNAL) != 1 ||
                closed_within(slow[i], 0)) {
                close(slow[i]);
                slow[i] = -1;
                open_--;
                if (cut_ms == 0)
                    cut_ms = p_now_ms() - t0;
            }
        }
        usleep(200 * 1000);
    }
    cr_assert_eq(open_, 0, "%d trickling connections still open after 15 s",
                 open_);
    cr_assert_geq(cut_ms, 1500, "cut after %llu ms, before the deadline",
                  (unsigned long long)cut_ms);
    /* Cut, their places are free again. */
    json_decref(expect(hub, NULL, 200, "GET", "/health", NULL));
    run_free(&r);
    p_pass();
}
