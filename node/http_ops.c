/*
 * http_ops.c - the HTTP API's operator endpoints: status (the `status
 * --json` document), health (the `doctor` list), Prometheus metrics,
 * conflicts and their resolution, merging duplicates, peers, the exchange log
 * and "sync now". Routed to by http_api.c; each read runs in its own read
 * transaction.
 */
#include <stdarg.h>
#include <string.h>
#include <sys/statvfs.h>

#include "../replication/json.h"
#include "../replication/resolution.h"
#include "../replication/unique.h"
#include "health.h"
#include "http_int.h"
#include "render.h"
#include "schedule.h"

/* The node's problems, as `doctor` lists them (without the store
 * verification, which reads everything: `doctor` runs it). */
static bs_err
problems(bs_api *api, bs_txn *t, const bs_status *st, bs_problems *out)
{
    char path[4200];
    bs_health_opts o = {0};
    struct statvfs vfs;

    o.dir = api->n->dir;
    o.now_ms = bs_clock_system.now_ms(NULL);
    o.map_max = api->n->cfg.max_map_size_mb << 20;
    o.daemon = api->hooks.daemon;
    snprintf(path, sizeof path, "%s/store", api->n->dir);
    if (statvfs(path, &vfs) == 0) {
        o.disk_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        o.disk_size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    }
    bs_err rv =
        bs_health_check(t, st, bs_store_used_bytes(api->n->store), &o, out);
    return rv == BS_OK ? bs_health_files(api->n, st, o.now_ms, out) : rv;
}

/* Read the status (and problems, when p is not NULL) in one transaction. */
static bs_err
read_state(bs_api *api, int count_records, bs_status *st, bs_problems *p,
           bs_errbuf *err)
{
    bs_status_opts o = bs_node_status_opts(api->n);
    bs_txn *t;
    bs_err rv;

    o.count_records = count_records;
    if ((rv = bs_store_read(api->n->store, &t, err)) != BS_OK)
        return rv;
    rv = bs_status_read(t, &api->n->meta, &o, st, err);
    if (rv == BS_OK && p != NULL && (rv = problems(api, t, st, p)) != BS_OK)
        bs_status_fini(st);
    bs_txn_abort(t);
    return rv;
}

/* Each peer's next scheduled run (seconds), null where there is none. */
static json_t *
next_run(const bs_peer_status *p, int64_t now)
{
    int64_t next = 0;
    bs_schedule s;

    if (bs_schedule_parse(&s, p->schedule, NULL) == BS_OK &&
        (!p->window[0] ||
         bs_schedule_parse_window(&s, p->window, NULL) == BS_OK) &&
        bs_schedule_next(&s, now, (int64_t)(p->last_ok_ms / 1000), &next) ==
            BS_OK)
        return json_integer(next);
    return json_null();
}

void
bs_api_status(bs_api *api, const bs_api_req *rq, bs_api_resp *out)
{
    bs_errbuf err = {{0}};
    bs_problems probs = {0};
    bs_status st;
    const char *records = bs_api_arg(rq, "records");
    json_t *j, *p;
    size_t i;
    bs_err rv;

    /* ?records=false: no record counts, which read every record, for a
     * client that polls (the dashboard) */
    if (records != NULL && strcmp(records, "true") != 0 &&
        strcmp(records, "false") != 0) {
        bs_api_error(api, 400, "records must be true or false", out);
        return;
    }
    if ((rv = read_state(api, records == NULL || records[0] == 't', &st, &probs,
                         &err)) != BS_OK) {
        bs_problems_fini(&probs);
        bs_api_fail(api, rv, &err, out);
        return;
    }
    j = bs_render_status(&st);
    json_array_foreach(json_object_get(j, "peers"), i, p) json_object_set_new(
        p, "next_run_s",
        next_run(&st.peers[i], (int64_t)(bs_clock_system.now_ms(NULL) / 1000)));
    json_object_set_new(
        j, "store",
        json_pack("{s:I, s:I}", "used_bytes",
                  (json_int_t)bs_store_used_bytes(api->n->store), "map_bytes",
                  (json_int_t)bs_store_map_size(api->n->store)));
    json_object_set_new(j, "problems", bs_render_problems(&probs));
    bs_render_status_files(j, api->n, &st, bs_clock_system.now_ms(NULL));
    bs_status_fini(&st);
    bs_problems_fini(&probs);
    bs_api_json(api, 200, j, out);
}

void
bs_api_health(bs_api *api, const bs_api_req *rq, bs_api_resp *out)
{
    bs_errbuf err = {{0}};
    bs_problems probs = {0};
    bs_status st;
    bs_err rv;

    (void)rq;
    if ((rv = read_state(api, 0, &st, &probs, &err)) != BS_OK) {
        /* Unable to tell is not healthy. */
        bs_problems_fini(&probs);
        bs_api_json(api, 503,
                    json_pack("{s:s, s:[{s:s, s:s, s:s, s:s}]}", "status",
                              "problem", "problems", "kind", "store_error",
                              "subject", "", "what", bs_errmsg(&err, rv),
                              "todo", "run branchsync doctor"),
                    out);
        return;
    }
    bs_status_fini(&st);
    if (probs.n == 0)
        bs_api_json(api, 200, json_pack("{s:s}", "status", "ok"), out);
    else
        bs_api_json(api, 503,
                    json_pack("{s:s, s:o}", "status", "problem", "problems",
                              bs_render_problems(&probs)),
                    out);
    bs_problems_fini(&probs);
}

/* ==== metrics: Prometheus text format 0.0.4 ==== */

typedef struct mbuf {
    char *p;
    size_t n, cap;
    int oom;
} mbuf;

static void BS_PRINTF(2, 3) mb_printf(mbuf *b, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        k = vsnprintf(b->p ? b->p + b->n : NULL, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap - b->n <= (size_t)k)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

/* A metric's HELP and TYPE lines. */
static void
head(mbuf *b, const char *name, const char *type, const char *help)
{
    mb_printf(b, "# HELP branchsync_%s %s\n# TYPE branchsync_%s %s\n", name,
              help, name, type);
}

/* One per-peer sample (peer names are [A-Za-z0-9_.-]: no escaping). */
#define PEERS(b, st, mname, type, help, expr)                                  \
    do {                                                                       \
        head(b, mname, type, help);                                            \
        for (size_t i_ = 0; i_ < (st)->npeers; i_++) {                         \
            const bs_peer_status *p = &(st)->peers[i_];                        \
            mb_printf(b, "branchsync_%s{peer=\"%s\"} %s\n", mname, p->name,    \
                      expr);                                                   \
        }                                                                      \
    } while (0)

static const char *
num(char *buf, size_t n, double v)
{
    snprintf(buf, n, "%.17g", v);
    return buf;
}

static void
peer_metrics(mbuf *b, const bs_status *st, uint64_t now)
{
    char v[64];

    PEERS(b, st, "peer_last_success_age_seconds", "gauge",
          "Seconds since the last successful exchange (+Inf: never).",
          p->last_ok_ms == 0
              ? "+Inf"
              : num(v, sizeof v,
                    now > p->last_ok_ms ? (now - p->last_ok_ms) / 1000.0 : 0));
    PEERS(b, st, "peer_pending_out_changes", "gauge",
          "Changes this node holds that the peer has not acknowledged.",
          num(v, sizeof v, (double)p->pending_out));
    PEERS(b, st, "peer_pending_in_changes", "gauge",
          "Changes the peer holds that this node lacks (as last known).",
          num(v, sizeof v, (double)p->pending_in));
    PEERS(b, st, "peer_lag_seconds", "gauge",
          "Age of the oldest change the peer has not acknowledged.",
          num(v, sizeof v, (double)p->oldest_unacked_age_s));
    PEERS(b, st, "peer_refused_sets", "gauge",
          "Change sets from the peer refused here in its last exchange.",
          num(v, sizeof v, (double)p->refused_sets));
    PEERS(b, st, "peer_held_there_sets", "gauge",
          "Change sets sent to the peer that it held back (last exchange).",
          num(v, sizeof v, (double)p->held_there));
    PEERS(b, st, "peer_received_changes_total", "counter",
          "Changes received from the peer.",
          num(v, sizeof v, (double)p->received_changes));
}

static void
node_metrics(bs_api *api, mbuf *b, const bs_status *st, size_t nproblems)
{
    uint64_t held = 0, quarantined = 0;

    for (size_t i = 0; i < st->nstreams; i++)
        st->streams[i].quarantined ? quarantined++ : held++;
    head(b, "streams_held", "gauge", "Origin streams held back.");
    mb_printf(b, "branchsync_streams_held %llu\n", (unsigned long long)held);
    head(b, "streams_quarantined", "gauge", "Origin streams quarantined.");
    mb_printf(b, "branchsync_streams_quarantined %llu\n",
              (unsigned long long)quarantined);
    head(b, "conflicts_open", "gauge", "Conflicts waiting for a resolution.");
    mb_printf(b, "branchsync_conflicts_open %llu\n",
              (unsigned long long)st->conflicts_open);
    head(b, "conflicts_total", "counter", "Conflicts ever recorded.");
    mb_printf(b, "branchsync_conflicts_total %llu\n",
              (unsigned long long)st->conflicts_total);
    head(b, "log_changes", "gauge",
         "Changes in this node's log, of every origin (applied here).");
    mb_printf(b, "branchsync_log_changes %llu\n",
              (unsigned long long)st->changes);
    head(b, "own_changes_total", "counter", "Changes written at this node.");
    mb_printf(b, "branchsync_own_changes_total %llu\n",
              (unsigned long long)st->own_changes);
    head(b, "store_used_bytes", "gauge", "Bytes of the store's pages in use.");
    mb_printf(b, "branchsync_store_used_bytes %llu\n",
              (unsigned long long)bs_store_used_bytes(api->n->store));
    head(b, "store_map_bytes", "gauge", "The store's current map size.");
    mb_printf(b, "branchsync_store_map_bytes %llu\n",
              (unsigned long long)bs_store_map_size(api->n->store));
    head(b, "store_map_max_bytes", "gauge",
         "The store's growth cap ([store] max_map_size_mb).");
    mb_printf(b, "branchsync_store_map_max_bytes %llu\n",
              (unsigned long long)(api->n->cfg.max_map_size_mb << 20));
    head(b, "problems", "gauge", "Problems doctor and /health list.");
    mb_printf(b, "branchsync_problems %zu\n", nproblems);
    head(b, "http_requests_total", "counter", "HTTP requests answered.");
    for (int i = 0; i < BS_API_NSTATUS; i++) {
        uint64_t k = __atomic_load_n(&api->answered[i], __ATOMIC_RELAXED);
        if (i == BS_API_NSTATUS - 1)
            mb_printf(b,
                      "branchsync_http_requests_total{code=\"other\"} %llu\n",
                      (unsigned long long)k);
        else if (bs_api_statuses[i] != 0)
            mb_printf(b, "branchsync_http_requests_total{code=\"%d\"} %llu\n",
                      bs_api_statuses[i], (unsigned long long)k);
    }
    head(b, "http_write_batches_total", "counter",
         "Durable transactions of HTTP PUT and DELETE (group commit).");
    mb_printf(b, "branchsync_http_write_batches_total %llu\n",
              (unsigned long long)__atomic_load_n(&api->writes.batches,
                                                  __ATOMIC_RELAXED));
    head(b, "http_writes_total", "counter",
         "HTTP PUT and DELETE writes made durable.");
    mb_printf(b, "branchsync_http_writes_total %llu\n",
              (unsigned long long)__atomic_load_n(&api->writes.writes,
                                                  __ATOMIC_RELAXED));
}

void
bs_api_metrics(bs_api *api, const bs_api_req *rq, bs_api_resp *out)
{
    bs_errbuf err = {{0}};
    bs_problems probs = {0};
    bs_status st;
    mbuf b = {0};
    bs_err rv;

    (void)rq;
    if ((rv = read_state(api, 0, &st, &probs, &err)) != BS_OK) {
        bs_problems_fini(&probs);
        bs_api_fail(api, rv, &err, out);
        return;
    }
    peer_metrics(&b, &st, bs_clock_system.now_ms(NULL));
    node_metrics(api, &b, &st, probs.n);
    if (api->hooks.metrics != NULL) {
        bs_strbuf own = {0};
        bs_metrics_render(api->hooks.metrics, &own);
        if (own.oom)
            b.oom = 1;
        else if (own.p != NULL)
            mb_printf(&b, "%s", own.p);
        free(own.p);
    }
    bs_status_fini(&st);
    bs_problems_fini(&probs);
    if (b.oom) {
        free(b.p);
        b.p = NULL;
    }
    /* Counted before it is built: this answer is in the next scrape. */
    bs_api_answer(api, 200, b.p, "text/plain; version=0.0.4", out);
}

/* ==== conflicts ==== */

void
bs_api_conflicts(bs_api *api, const bs_api_req *rq, bs_api_resp *out)
{
    const char *all = bs_api_arg(rq, "all");
    bs_conflict_iter *it = NULL;
    const bs_conflict *cf;
    bs_errbuf err = {{0}};
    json_t *arr = json_array();
    bs_txn *t = NULL;
    bs_err rv;

    if ((rv = bs_store_read(api->n->store, &t, &err)) == BS_OK &&
        (rv = bs_conflict_iter_open(t, all && strcmp(all, "true") == 0, &it)) ==
            BS_OK)
        while ((rv = bs_conflict_iter_next(it, &cf)) == BS_OK)
            json_array_append_new(arr, bs_render_conflict(cf));
    bs_conflict_iter_close(it);
    bs_txn_abort(t);
    if (rv == BS_ESTORE)
        bs_errf(&err, rv,
                "store is corrupt: a conflict record does not decode; "
                "restore from a backup");
    if (rv != BS_ENOTFOUND) {
        json_decref(arr);
        bs_api_fail(api, rv, &err, out);
        return;
    }
    bs_api_json(api, 200, arr, out);
}

void
bs_api_resolve(bs_api *api, const bs_api_req *rq, const char *cid,
               bs_api_resp *out)
{
    char how[BS_CONFLICT_HOW_MAX + 1];
    json_t *j = json_loadb(rq->body ? rq->body : "", rq->body_len, 0, NULL);
    json_t *take = json_object_get(j, "take"),
           *val = json_object_get(j, "value");
    bs_resolve_req r = {NULL, NULL};
    bs_errbuf err = {{0}};
    bs_value v;
    bs_arena a;
    char *vt = NULL;
    bs_err rv = BS_OK;

    bs_arena_init(&a);
    if (!json_is_object(j) || (take == NULL) == (val == NULL) ||
        (take != NULL && !json_is_string(take)) || json_object_size(j) != 1)
        rv = bs_errf(&err, BS_EINVAL,
                     "the body must be {\"take\": NODE} or {\"value\": V}");
    else if (take != NULL)
        r.take = json_string_value(take);
    else if ((vt = json_dumps(val, JSON_ENCODE_ANY)) == NULL)
        rv = BS_ENOMEM;
    else if ((rv = bs_json_value(vt, strlen(vt), &a, &v, &err)) == BS_OK)
        r.value = &v;
    else
        rv = bs_errf(&err, rv,
                     "\"value\" must be a JSON string, number, boolean or "
                     "null");
    if (rv == BS_OK)
        rv = bs_resolution_apply(&api->core, cid, &r, how, &err);
    free(vt);
    bs_arena_fini(&a);
    json_decref(j);
    if (rv != BS_OK) {
        bs_api_fail(api, rv, &err, out);
        return;
    }
    bs_api_changed(api);
    bs_api_json(api, 200,
                json_pack("{s:s, s:s}", "conflict", cid, "resolution", how),
                out);
}

/* POST /v1/collections/{c}/merge {"keep": ID, "other": ID}: `merge`. */
void
bs_api_merge(bs_api *api, const bs_api_req *rq, const char *coll,
             bs_api_resp *out)
{
    json_t *j = json_loadb(rq->body ? rq->body : "", rq->body_len, 0, NULL);
    const char *keep = json_string_value(json_object_get(j, "keep")),
               *other = json_string_value(json_object_get(j, "other"));
    bs_errbuf err = {{0}};
    bs_err rv;

    if (!json_is_object(j) || keep == NULL || other == NULL ||
        json_object_size(j) != 2)
        rv = bs_errf(&err, BS_EINVAL,
                     "the body must be {\"keep\": ID, \"other\": ID}");
    else /* one write txn; checks both records and the rules */
        rv = bs_unique_merge(&api->core, coll, keep, other, &err);
    if (rv != BS_OK) {
        json_decref(j);
        bs_api_fail(api, rv, &err, out);
        return;
    }
    bs_api_changed(api);
    bs_api_json(api, 200,
                json_pack("{s:s, s:s, s:s}", "collection", coll, "kept", keep,
                          "merged", other),
                out);
    json_decref(j);
}

/* ==== peers, sync, log ==== */

void
bs_api_peers(bs_api *api, const bs_api_req *rq, bs_api_resp *out)
{
    bs_errbuf err = {{0}};
    bs_peer *v = NULL;
    size_t n = 0;
    bs_txn *t;
    bs_err rv;
    json_t *arr;

    (void)rq;
    if ((rv = bs_store_read(api->n->store, &t, &err)) == BS_OK) {
        rv = bs_peer_list(t, &v, &n);
        bs_txn_abort(t);
    }
    if (rv != BS_OK) {
        bs_api_fail(api, rv, &err, out);
        return;
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, bs_render_peer(&v[i]));
    bs_peer_list_free(v, n);
    bs_api_json(api, 200, arr, out);
}

/* 1 when a peer of that name is paired. */
static bs_err
peer_known(bs_api *api, const char *name, bs_errbuf *err)
{
    bs_peer p;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_store_read(api->n->store, &t, err)) != BS_OK)
        return rv;
    if ((rv = bs_peer_get(t, name, &p)) == BS_OK)
        bs_peer_fini(&p);
    bs_txn_abort(t);
    if (rv == BS_ENOTFOUND)
        return bs_errf(err, rv, "no peer \"%s\" (see GET /v1/peers)", name);
    return rv;
}

void
bs_api_sync(bs_api *api, const bs_api_req *rq, const char *peer,
            bs_api_resp *out)
{
    bs_errbuf err = {{0}};
    char *reply = NULL;
    json_t *j;
    bs_err rv;

    (void)rq;
    if ((rv = peer_known(api, peer, &err)) != BS_OK) {
        bs_api_fail(api, rv, &err, out);
        return;
    }
    if (api->hooks.sync == NULL) {
        bs_api_error(api, 503, "no daemon runs this node", out);
        return;
    }
    if ((rv = api->hooks.sync(api->hooks.ctx, peer, &reply, &err)) != BS_OK) {
        bs_api_fail(api, rv, &err, out);
        return;
    }
    j = json_loads(reply, 0, NULL);
    free(reply);
    if (!json_is_true(json_object_get(j, "ok"))) {
        const char *e = json_string_value(json_object_get(j, "error"));
        bs_api_error(api, 503, e ? e : "the exchange failed", out);
        json_decref(j);
        return;
    }
    json_object_del(j, "ok");
    json_object_set_new(j, "peer", json_string(peer));
    bs_api_json(api, 200, j, out);
}

void
bs_api_log(bs_api *api, const bs_api_req *rq, bs_api_resp *out)
{
    const char *peer = bs_api_arg(rq, "peer");
    bs_errbuf err = {{0}};
    bs_xlog_entry *v = NULL;
    size_t n = 0;
    bs_txn *t;
    bs_err rv;
    json_t *arr;

    if ((rv = bs_store_read(api->n->store, &t, &err)) == BS_OK) {
        rv = bs_xlog_list(t, peer, 100, &v, &n);
        bs_txn_abort(t);
    }
    if (rv != BS_OK) {
        free(v);
        bs_api_fail(api, rv, &err, out);
        return;
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, bs_render_exchange(&v[i]));
    free(v);
    bs_api_json(api, 200, arr, out);
}
