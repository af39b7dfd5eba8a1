/*
 * http_api.c - the HTTP API's routing, authentication, error mapping and
 * the record endpoints (GET, PUT, DELETE one record; list with paging;
 * bulk upsert of JSON Lines).  The operator endpoints are in http_ops.c.
 */
#include "http_api.h"

#include <string.h>
#include <time.h>

#include "../replication/crypto.h"
#include "../replication/json.h"
#include "../replication/load.h"
#include "../replication/records.h"
#include "../replication/strbuf.h"
#include "http_int.h"
#include "http_static.h"

const int bs_api_statuses[BS_API_NSTATUS] = {200, 400, 401, 403, 404, 405,
                                             413, 500, 503, 0,   0,   0};

#define LIST_DEFAULT 100
#define LIST_MAX     10000

/* ==== setup ==== */

static bs_err
feed_init(bs_api *api)
{
    pthread_condattr_t ca;
    int e;

    if (pthread_mutex_init(&api->feed_mu, NULL) != 0)
        return BS_ENOMEM;
    if ((e = pthread_condattr_init(&ca)) == 0) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        e = pthread_cond_init(&api->feed_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (e != 0) {
        pthread_mutex_destroy(&api->feed_mu);
        return BS_ENOMEM;
    }
    return BS_OK;
}

static void
feed_fini(bs_api *api)
{
    pthread_cond_destroy(&api->feed_cv);
    pthread_mutex_destroy(&api->feed_mu);
}

void
bs_api_wake(bs_api *api)
{
    pthread_mutex_lock(&api->feed_mu);
    api->feed_gen++;
    pthread_cond_broadcast(&api->feed_cv);
    pthread_mutex_unlock(&api->feed_mu);
}

void
bs_api_changed(bs_api *api)
{
    bs_api_wake(api);
    if (api->hooks.changed != NULL)
        api->hooks.changed(api->hooks.ctx);
}

/* The write queue committed a batch that changed something. */
static void
wrote(void *ctx)
{
    bs_api_changed(ctx);
}

bs_err
bs_api_init(bs_api *api, bs_node *n, const char *token,
            const bs_api_hooks *hooks, bs_errbuf *err)
{
    bs_err rv;

    memset(api, 0, sizeof *api);
    api->n = n;
    if (strlen(token) >= sizeof api->token)
        return bs_errf(err, BS_EKEY, "API token too long");
    snprintf(api->token, sizeof api->token, "%s", token);
    if (hooks != NULL)
        api->hooks = *hooks;
    /* Loads the secret key now, on this thread: the serving threads then
     * only read it. */
    if ((rv = bs_node_core(n, 1, &api->core, err)) != BS_OK)
        return rv;
    if ((rv = feed_init(api)) != BS_OK)
        return bs_errf(err, rv, "cannot set up the change feed's wake-up");
    if ((rv = bs_http_writeq_init(&api->writes, wrote, api)) != BS_OK) {
        feed_fini(api);
        return bs_errf(err, rv, "cannot set up the write queue");
    }
    return BS_OK;
}

void
bs_api_fini(bs_api *api)
{
    bs_http_writeq_fini(&api->writes);
    feed_fini(api);
    bs_wipe(api->token, sizeof api->token);
}

/* ==== answers ==== */

static void
count(bs_api *api, int status)
{
    int i;

    for (i = 0; i < BS_API_NSTATUS - 1; i++)
        if (bs_api_statuses[i] == status)
            break;
    __atomic_fetch_add(&api->answered[i], 1, __ATOMIC_RELAXED);
}

void
bs_api_answer(bs_api *api, int status, char *body, const char *type,
              bs_api_resp *out)
{
    static const char oom[] = "{\"error\":\"out of memory\",\"code\":500}";

    if (body == NULL) {
        status = 500;
        body = strdup(oom);
        type = "application/json";
    }
    count(api, status);
    out->status = status;
    out->stream = NULL;
    out->body = body;
    out->len = body ? strlen(body) : 0;
    out->type = type;
}

void
bs_api_answer_stream(bs_api *api, bs_api_stream *s, const char *type,
                     bs_api_resp *out)
{
    count(api, 200);
    out->status = 200;
    out->body = NULL;
    out->len = 0;
    out->type = type;
    out->stream = s;
}

void
bs_api_json(bs_api *api, int status, json_t *j, bs_api_resp *out)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

    json_decref(j);
    bs_api_answer(api, status, s, "application/json", out);
}

void
bs_api_error(bs_api *api, int status, const char *msg, bs_api_resp *out)
{
    bs_api_json(api, status,
                json_pack("{s:s, s:i}", "error", msg, "code", status), out);
}

int
bs_api_status_of(bs_err e)
{
    switch (e) {
    case BS_OK:
        return 200;
    case BS_EPERM:
        return 403;
    case BS_ENOTFOUND:
        return 404;
    case BS_EUNREACHABLE:
    case BS_ETIMEOUT:
    case BS_EBUSY:
    case BS_EQUARANTINED:
    case BS_ESTALE:
        return 503;
    default:
        return bs_err_exit_code(e) == 2 ? 400 : 500;
    }
}

void
bs_api_fail(bs_api *api, bs_err rv, const bs_errbuf *err, bs_api_resp *out)
{
    bs_api_error(api, bs_api_status_of(rv), bs_errmsg(err, rv), out);
}

const char *
bs_api_arg(const bs_api_req *rq, const char *name)
{
    return rq->arg ? rq->arg(rq->arg_ctx, name) : NULL;
}

/* ==== authentication ==== */

/* No token for these: health, metrics and the dashboard's own files (the
 * page then sends the token with every API call it makes). */
static int
open_path(const bs_api_req *rq)
{
    return strcmp(rq->method, "GET") == 0 &&
           (strcmp(rq->path, "/health") == 0 ||
            strcmp(rq->path, "/metrics") == 0 ||
            bs_web_asset_find(rq->path) != NULL);
}

int
bs_api_admit(bs_api *api, const bs_api_req *rq, bs_api_resp *out)
{
    const char *a = rq->auth;
    size_t n = strlen(api->token);

    if (open_path(rq))
        return 1;
    if (a != NULL && strncmp(a, "Bearer ", 7) == 0 && strlen(a + 7) == n &&
        n > 0 && bs_memeq_ct(a + 7, api->token, n))
        return 1;
    bs_api_error(api, 401,
                 a == NULL ? "missing Authorization: Bearer TOKEN (branchsync "
                             "api-token prints it)"
                           : "bad API token (branchsync api-token prints it)",
                 out);
    return 0;
}

/* ==== records ==== */

static void
sb_str(bs_strbuf *b, const char *s)
{
    bs_strbuf_add(b, s, strlen(s));
}

/* The record coll/id as `get` prints it; 404 when not live. */
static void
get_record(bs_api *api, const char *coll, const char *id, int status,
           bs_api_resp *out)
{
    bs_errbuf err = {{0}};
    bs_arena a;
    bs_record r;
    bs_txn *t;
    bs_err rv;

    bs_arena_init(&a);
    if ((rv = bs_store_read(api->n->store, &t, &err)) == BS_OK) {
        if ((rv = bs_records_get(t, coll, id, &a, &r, &err)) == BS_OK)
            bs_api_answer(api, status, bs_json_record(id, strlen(id), &r),
                          "application/json", out);
        bs_txn_abort(t);
    }
    bs_arena_fini(&a);
    if (rv != BS_OK)
        bs_api_fail(api, rv, &err, out);
}

/* PUT: upsert the body's fields, like `put`. */
static void
put_record(bs_api *api, const bs_api_req *rq, const char *coll, const char *id,
           bs_api_resp *out)
{
    bs_write w = {coll, id, 0, NULL, 0};
    bs_errbuf err = {{0}};
    const char *jid = NULL;
    char *rec = NULL;
    bs_arena a;
    bs_err rv;

    bs_arena_init(&a);
    rv = bs_json_fields(rq->body ? rq->body : "", rq->body_len, &a, &jid,
                        &w.fields, &w.nfields, &err);
    if (rv == BS_OK && jid != NULL && strcmp(jid, id) != 0)
        rv = bs_errf(&err, BS_EINVAL,
                     "the JSON's \"id\" differs from the URL's \"%s\"", id);
    if (rv == BS_OK) /* durable on return; peers told (http_write.h) */
        rv = bs_http_write(&api->writes, &api->core, &w, &rec, &err);
    bs_arena_fini(&a);
    if (rv != BS_OK) {
        free(rec);
        bs_api_fail(api, rv, &err, out);
        return;
    }
    if (rec != NULL) /* as the write's own transaction left it */
        bs_api_answer(api, 200, rec, "application/json", out);
    else
        get_record(api, coll, id, 200, out);
}

static void
del_record(bs_api *api, const char *coll, const char *id, bs_api_resp *out)
{
    bs_write w = {coll, id, 1, NULL, 0};
    bs_errbuf err = {{0}};
    bs_err rv = bs_http_write(&api->writes, &api->core, &w, NULL, &err);

    if (rv != BS_OK) {
        bs_api_fail(api, rv, &err, out);
        return;
    }
    bs_api_json(api, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1), out);
}

/* ?limit=N: 1..LIST_MAX; 0 when bad. */
static int
parse_limit(const char *s)
{
    char *end;
    long v;

    if (s == NULL)
        return LIST_DEFAULT;
    v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 1 || v > LIST_MAX)
        return 0;
    return (int)v;
}

/* The JSON string of id[0..n), appended. */
static void
sb_json_str(bs_strbuf *b, const char *id, size_t n)
{
    json_t *j = json_stringn(id, n);
    char *s = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

    if (s == NULL)
        b->oom = 1;
    else
        sb_str(b, s);
    free(s);
    json_decref(j);
}

/* GET list: {"records": [...], "next": ID or null}; "next" is the last
 * ID sent when more follow (the next page's ?after=). */
static void
list_records(bs_api *api, const bs_api_req *rq, const char *coll,
             bs_api_resp *out)
{
    const char *after = bs_api_arg(rq, "after"), *id = NULL;
    int limit = parse_limit(bs_api_arg(rq, "limit")), k = 0, more = 0;
    bs_records_iter *it = NULL;
    const bs_record *r;
    bs_errbuf err = {{0}};
    bs_strbuf b = {0};
    char *last = NULL;
    size_t idlen = 0, lastlen = 0;
    bs_txn *t = NULL;
    bs_err rv;

    if (limit == 0) {
        bs_api_error(api, 400, "limit must be a number from 1 to 10000", out);
        return;
    }
    if (after != NULL && (rv = bs_records_check_id(after, &err)) != BS_OK) {
        bs_api_fail(api, rv, &err, out);
        return;
    }
    sb_str(&b, "{\"records\":[");
    if ((rv = bs_store_read(api->n->store, &t, &err)) == BS_OK &&
        (rv = bs_records_iter_open(t, coll, after, NULL, &it)) == BS_OK)
        while (!b.oom && (rv = bs_records_iter_next(it, &id, &idlen, &r,
                                                    &err)) == BS_OK) {
            char *s;
            if (k == limit) {
                more = 1;
                break;
            }
            if ((s = bs_json_record(id, idlen, r)) == NULL) {
                b.oom = 1;
                break;
            }
            sb_str(&b, k++ ? "," : "");
            sb_str(&b, s);
            free(s);
            free(last);
            if ((last = malloc(idlen + 1)) == NULL) {
                b.oom = 1;
                break;
            }
            memcpy(last, id, idlen);
            last[idlen] = '\0';
            lastlen = idlen;
        }
    bs_records_iter_close(it);
    bs_txn_abort(t);
    if (more || rv == BS_ENOTFOUND) {
        sb_str(&b, "],\"next\":");
        if (more)
            sb_json_str(&b, last, lastlen);
        else
            sb_str(&b, "null");
        sb_str(&b, "}");
        free(last);
        if (b.oom) {
            free(b.p);
            b.p = NULL;
        }
        bs_api_answer(api, 200, b.p, "application/json", out);
        return;
    }
    free(last);
    free(b.p);
    if (b.oom && rv == BS_OK)
        rv = BS_ENOMEM;
    bs_api_fail(api, rv, &err, out);
}

/* POST: bulk upsert of JSON Lines, like `load`. */
static void
load_records(bs_api *api, const bs_api_req *rq, const char *coll,
             bs_api_resp *out)
{
    bs_errbuf err = {{0}};
    bs_load_stats st = {0};
    bs_err rv = bs_load_jsonl(&api->core, coll, rq->body ? rq->body : "",
                              rq->body_len, NULL, &st, &err);

    if (st.committed > 0)
        bs_api_changed(api);
    if (rv != BS_OK) {
        bs_api_fail(api, rv, &err, out);
        return;
    }
    bs_api_json(api, 200,
                json_pack("{s:I, s:I, s:I}", "records", (json_int_t)st.records,
                          "written", (json_int_t)st.written, "unchanged",
                          (json_int_t)st.unchanged),
                out);
}

static int
is(const bs_api_req *rq, const char *m)
{
    return strcmp(rq->method, m) == 0;
}

static void
bad_method(bs_api *api, bs_api_resp *out)
{
    bs_api_error(api, 405, "method not allowed here (docs/api.md)", out);
}

/* /v1/collections/{c}/records[/{id}] and /v1/collections/{c}/merge; rest
 * is after "/v1/collections/". */
static void
route_records(bs_api *api, const bs_api_req *rq, const char *rest,
              bs_api_resp *out)
{
    const char *slash = strchr(rest, '/'), *id;
    char coll[BS_COLLECTION_MAX + 2];
    bs_errbuf err = {{0}};
    size_t cn = slash ? (size_t)(slash - rest) : strlen(rest);
    bs_err rv;

    int merge = slash != NULL && strcmp(slash, "/merge") == 0;

    if (!merge && (slash == NULL || strncmp(slash, "/records", 8) != 0 ||
                   (slash[8] != '\0' && slash[8] != '/'))) {
        bs_api_error(api, 404, "no such endpoint (docs/api.md)", out);
        return;
    }
    if (cn >= sizeof coll)
        cn = sizeof coll - 1; /* too long: check_coll refuses it */
    memcpy(coll, rest, cn);
    coll[cn] = '\0';
    if ((rv = bs_records_check_coll(coll, &err)) != BS_OK) {
        bs_api_fail(api, rv, &err, out);
        return;
    }
    if (merge) {
        is(rq, "POST") ? bs_api_merge(api, rq, coll, out)
                       : bad_method(api, out);
        return;
    }
    if (slash[8] == '\0') {
        if (is(rq, "GET"))
            list_records(api, rq, coll, out);
        else if (is(rq, "POST"))
            load_records(api, rq, coll, out);
        else
            bad_method(api, out);
        return;
    }
    id = slash + 9;
    if ((rv = bs_records_check_id(id, &err)) != BS_OK) {
        bs_api_fail(api, rv, &err, out);
        return;
    }
    if (is(rq, "GET"))
        get_record(api, coll, id, 200, out);
    else if (is(rq, "PUT"))
        put_record(api, rq, coll, id, out);
    else if (is(rq, "DELETE"))
        del_record(api, coll, id, out);
    else
        bad_method(api, out);
}

/* ==== routing ==== */

/* "/v1/peers/NAME/sync" and "/v1/conflicts/ID/resolve": the middle
 * segment into buf, when path is prefix + segment + suffix. */
static int
middle(const char *path, const char *prefix, const char *suffix, char *buf,
       size_t n)
{
    size_t pn = strlen(prefix), sn = strlen(suffix), len = strlen(path);

    if (len <= pn + sn || strncmp(path, prefix, pn) != 0 ||
        strcmp(path + len - sn, suffix) != 0 || len - pn - sn >= n)
        return 0;
    memcpy(buf, path + pn, len - pn - sn);
    buf[len - pn - sn] = '\0';
    return strchr(buf, '/') == NULL;
}

static void
route(bs_api *api, const bs_api_req *rq, bs_api_resp *out)
{
    const char *p = rq->path;
    char seg[BS_ID_MAX + 64];
    const bs_web_asset *web;

    if (is(rq, "GET") && (web = bs_web_asset_find(p)) != NULL) {
        char *copy = malloc(web->len + 1); /* NULL: 500 */
        if (copy != NULL)
            memcpy(copy, web->data, web->len + 1);
        bs_api_answer(api, 200, copy, web->type, out);
    } else if (strcmp(p, "/health") == 0 || strcmp(p, "/metrics") == 0) {
        if (!is(rq, "GET"))
            bad_method(api, out);
        else if (p[1] == 'h')
            bs_api_health(api, rq, out);
        else
            bs_api_metrics(api, rq, out);
    } else if (strncmp(p, "/v1/collections/", 16) == 0) {
        route_records(api, rq, p + 16, out);
    } else if (strcmp(p, "/v1/status") == 0) {
        is(rq, "GET") ? bs_api_status(api, rq, out) : bad_method(api, out);
    } else if (strcmp(p, "/v1/conflicts") == 0) {
        is(rq, "GET") ? bs_api_conflicts(api, rq, out) : bad_method(api, out);
    } else if (middle(p, "/v1/conflicts/", "/resolve", seg, sizeof seg)) {
        is(rq, "POST") ? bs_api_resolve(api, rq, seg, out)
                       : bad_method(api, out);
    } else if (strcmp(p, "/v1/peers") == 0) {
        is(rq, "GET") ? bs_api_peers(api, rq, out) : bad_method(api, out);
    } else if (middle(p, "/v1/peers/", "/sync", seg, sizeof seg)) {
        is(rq, "POST") ? bs_api_sync(api, rq, seg, out) : bad_method(api, out);
    } else if (strcmp(p, "/v1/changes") == 0) {
        is(rq, "GET") ? bs_api_changes(api, rq, out) : bad_method(api, out);
    } else if (strcmp(p, "/v1/log") == 0) {
        is(rq, "GET") ? bs_api_log(api, rq, out) : bad_method(api, out);
    } else {
        bs_api_error(api, 404, "no such endpoint (docs/api.md)", out);
    }
}

void
bs_api_handle(bs_api *api, const bs_api_req *rq, bs_api_resp *out)
{
    memset(out, 0, sizeof *out);
    if (!bs_api_admit(api, rq, out))
        return;
    route(api, rq, out);
}
