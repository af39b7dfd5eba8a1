/*
 * http_feed.c - GET /v1/changes, the change feed (docs/api.md): the
 * change index (replication/changes.h) read in one read transaction per
 * look, `normal` at once, `longpoll` waiting on the connection's own
 * thread until an entry matches or the timeout passes, `sse` an event
 * stream (text/event-stream) of every matching entry until the timeout,
 * produced on the connection's thread as it is sent.
 *
 * Longpoll and sse look at the index's last sequence in a fresh read
 * transaction whenever the daemon commits something (bs_api_wake: a
 * replicated change applied, an HTTP write), and every FEED_POLL_MS in
 * any case: that also sees the commits of `branchsync` processes, which
 * cannot signal the daemon's threads.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "../replication/changes.h"
#include "../replication/crypto.h"
#include "../replication/json.h"
#include "../replication/records.h"
#include "../replication/streams.h"
#include "http_int.h"

#define FEED_POLL_MS       25
#define FEED_LIMIT_DEFAULT 1000
#define FEED_LIMIT_MAX     10000
#define FEED_TIMEOUT_DEF   30
#define FEED_TIMEOUT_MAX   300
#define FEED_SSE_TIMEOUT   300   /* sse's default */
#define FEED_HEARTBEAT_MS  15000 /* an sse comment when nothing else */

typedef struct feedq {
    uint64_t since, limit;
    const char *coll; /* NULL: every collection */
    int longpoll, sse, docs;
    unsigned timeout_s;
} feedq;

/* A decimal u64 in s (digits only); 0 when it is not one. */
static int
parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' ||
            v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 1;
}

static bs_err last_seq(bs_api *api, uint64_t *seq, bs_errbuf *err);

/* The query into *q; else the 400 answer in *out and 0. */
static int
parse_query(bs_api *api, const bs_api_req *rq, feedq *q, bs_api_resp *out)
{
    const char *since = bs_api_arg(rq, "since"), *feed = bs_api_arg(rq, "feed"),
               *tmo = bs_api_arg(rq, "timeout"),
               *docs = bs_api_arg(rq, "include_docs"),
               *limit = bs_api_arg(rq, "limit");
    bs_errbuf err = {{0}};
    uint64_t v;
    bs_err rv;

    memset(q, 0, sizeof q[0]);
    q->limit = FEED_LIMIT_DEFAULT;
    q->timeout_s = FEED_TIMEOUT_DEF;
    q->coll = bs_api_arg(rq, "collection");
    if (rq->last_event_id != NULL)
        since = rq->last_event_id; /* an event stream resumes */
    if (since != NULL && strcmp(since, "now") == 0) {
        /* CouchDB's since=now: only what commits from here on */
        if ((rv = last_seq(api, &q->since, &err)) != BS_OK) {
            bs_api_fail(api, rv, &err, out);
            return 0;
        }
    } else if (since != NULL && !parse_u64(since, &q->since)) {
        bs_api_error(api, 400,
                     "since must be a sequence number (0 or more; a "
                     "response's last_seq) or now",
                     out);
        return 0;
    }
    /* the reserved collections (_collections, ...) have entries too */
    if (q->coll != NULL && !bs_collection_valid(q->coll, 1) &&
        (rv = bs_records_check_coll(q->coll, &err)) != BS_OK) {
        bs_api_fail(api, rv, &err, out);
        return 0;
    }
    if (feed != NULL && strcmp(feed, "normal") != 0 &&
        strcmp(feed, "longpoll") != 0 && strcmp(feed, "sse") != 0) {
        bs_api_error(api, 400, "feed must be normal, longpoll or sse", out);
        return 0;
    }
    q->longpoll = feed != NULL && strcmp(feed, "longpoll") == 0;
    q->sse = feed != NULL && strcmp(feed, "sse") == 0;
    if (q->sse)
        q->timeout_s = FEED_SSE_TIMEOUT;
    if (tmo != NULL) {
        if (!parse_u64(tmo, &v) || v > FEED_TIMEOUT_MAX) {
            bs_api_error(api, 400, "timeout must be 0 to 300 seconds", out);
            return 0;
        }
        q->timeout_s = (unsigned)v;
    }
    if (docs != NULL && strcmp(docs, "true") != 0 &&
        strcmp(docs, "false") != 0) {
        bs_api_error(api, 400, "include_docs must be true or false", out);
        return 0;
    }
    q->docs = docs != NULL && strcmp(docs, "true") == 0;
    if (limit != NULL && (!parse_u64(limit, &q->limit) || q->limit < 1 ||
                          q->limit > FEED_LIMIT_MAX)) {
        bs_api_error(api, 400, "limit must be a number from 1 to 10000", out);
        return 0;
    }
    return 1;
}

typedef struct scan {
    bs_txn *t;
    bs_streamtab tab;
    int docs;
    json_t *results;
    bs_err rv; /* a failure inside the callback */
} scan;

static json_t *
doc_of(scan *s, const bs_change_entry *e)
{
    char coll[BS_COLLECTION_MAX + 1], id[BS_ID_MAX + 1];
    bs_arena a;
    bs_record r;
    json_t *j = NULL;
    char *txt;
    bs_err rv;

    if (e->deleted || e->colllen >= sizeof coll || e->idlen >= sizeof id)
        return json_null();
    memcpy(coll, e->coll, e->colllen);
    coll[e->colllen] = '\0';
    memcpy(id, e->id, e->idlen);
    id[e->idlen] = '\0';
    bs_arena_init(&a);
    /* the record as it is now, which may be newer than this entry */
    rv = bs_records_get(s->t, coll, id, &a, &r, NULL);
    if (rv == BS_ENOTFOUND) {
        j = json_null();
    } else if (rv != BS_OK) {
        s->rv = rv;
    } else if ((txt = bs_json_record(id, e->idlen, &r)) != NULL) {
        j = json_loads(txt, 0, NULL);
        free(txt);
    }
    bs_arena_fini(&a);
    if (j == NULL && s->rv == BS_OK)
        s->rv = BS_ENOMEM;
    return j;
}

static int
on_entry(const bs_change_entry *e, void *arg)
{
    scan *s = arg;
    const bs_stream *st = e->stream == BS_CHANGES_NO_STREAM
                              ? NULL
                              : bs_streams_get(&s->tab, e->stream);
    char nid[BS_NODE_ID_LEN + 1];
    json_t *j;

    if (st != NULL)
        bs_node_id_format(st->key, nid);
    j = json_pack("{s:I, s:s#, s:s#, s:b, s:o, s:I}", "seq", (json_int_t)e->seq,
                  "collection", e->coll, e->colllen, "id", e->id, e->idlen,
                  "deleted", e->deleted, "origin",
                  st != NULL ? json_string(nid) : json_null(), "hlc",
                  (json_int_t)e->hlc);
    if (j != NULL && s->docs && json_object_set_new(j, "doc", doc_of(s, e)))
        s->rv = s->rv != BS_OK ? s->rv : BS_ENOMEM;
    if (j == NULL || json_array_append_new(s->results, j) != 0)
        s->rv = s->rv != BS_OK ? s->rv : BS_ENOMEM;
    return s->rv != BS_OK;
}

/* One look: the entries after q->since into results; *last as
 * bs_changes_scan gives it. */
static bs_err
look(bs_api *api, const feedq *q, json_t *results, uint64_t *last,
     bs_errbuf *err)
{
    scan s = {0};
    bs_err rv;

    s.docs = q->docs;
    s.results = results;
    if ((rv = bs_store_read(api->n->store, &s.t, err)) != BS_OK)
        return rv;
    if ((rv = bs_streams_load(s.t, &s.tab)) == BS_OK) {
        rv = bs_changes_scan(s.t, q->since, q->coll, q->limit, on_entry, &s,
                             last);
        bs_streams_fini(&s.tab);
    }
    bs_txn_abort(s.t);
    return rv != BS_OK ? rv : s.rv;
}

/* The index's last sequence, in a read transaction of its own. */
static bs_err
last_seq(bs_api *api, uint64_t *seq, bs_errbuf *err)
{
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_store_read(api->n->store, &t, err)) != BS_OK)
        return rv;
    rv = bs_changes_last(t, seq);
    bs_txn_abort(t);
    return rv;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The wake-ups seen so far (bs_api_wake); read before a look. */
static uint64_t
feed_gen(bs_api *api)
{
    uint64_t g;

    pthread_mutex_lock(&api->feed_mu);
    g = api->feed_gen;
    pthread_mutex_unlock(&api->feed_mu);
    return g;
}

/* Wait until a wake-up after gen, or the polling period (FEED_POLL_MS),
 * or the end of the wait (deadline, monotonic ms), whichever comes
 * first. */
static void
feed_wait(bs_api *api, uint64_t gen, uint64_t deadline)
{
    uint64_t ms = api->feed_poll_ms ? api->feed_poll_ms : FEED_POLL_MS,
             at = now_ms() + ms;
    struct timespec until;

    if (deadline < at)
        at = deadline;
    until.tv_sec = (time_t)(at / 1000);
    until.tv_nsec = (long)(at % 1000) * 1000000L;
    pthread_mutex_lock(&api->feed_mu);
    while (api->feed_gen == gen &&
           pthread_cond_timedwait(&api->feed_cv, &api->feed_mu, &until) == 0)
        ;
    pthread_mutex_unlock(&api->feed_mu);
}

static int
stopping(bs_api *api)
{
    return __atomic_load_n(&api->stopping, __ATOMIC_SEQ_CST);
}

/* ---- sse ---- */

typedef struct sse {
    bs_api_stream base; /* first: the stream is the sse */
    bs_api *api;
    feedq q;
    char coll[BS_COLLECTION_MAX + 1];
    uint64_t deadline, quiet; /* ms: the end; the last bytes sent */
    char *buf;                /* pending bytes: buf[off..n) */
    size_t n, off;
} sse;

/* "id: SEQ\ndata: JSON\n\n" per entry of results, into s->buf. */
static int
events(sse *s, json_t *results)
{
    size_t i;
    json_t *e;

    free(s->buf);
    s->buf = NULL;
    s->n = s->off = 0;
    json_array_foreach(results, i, e)
    {
        char *js = json_dumps(e, JSON_COMPACT), *nb;
        size_t add;

        if (js == NULL)
            return 0;
        add = strlen(js) + 40;
        if ((nb = realloc(s->buf, s->n + add)) == NULL) {
            free(js);
            return 0;
        }
        s->buf = nb;
        s->n += (size_t)snprintf(
            s->buf + s->n, add, "id: %llu\ndata: %s\n\n",
            (unsigned long long)json_integer_value(json_object_get(e, "seq")),
            js);
        free(js);
    }
    return 1;
}

static long
sse_read(bs_api_stream *st, char *buf, size_t max)
{
    sse *s = (sse *)st;

    while (s->off == s->n) {
        bs_errbuf err = {{0}};
        uint64_t seen, last = s->q.since, now = now_ms(),
                       gen = feed_gen(s->api);
        json_t *results;

        if (now >= s->deadline || stopping(s->api))
            return -1;
        if (now - s->quiet >= FEED_HEARTBEAT_MS) {
            static const char beat[] = ": keep-alive\n\n";
            size_t n = sizeof beat - 1 < max ? sizeof beat - 1 : max;
            memcpy(buf, beat, n);
            s->quiet = now;
            return (long)n;
        }
        if (last_seq(s->api, &seen, &err) != BS_OK)
            return -1;
        if (seen > s->q.since) {
            if ((results = json_array()) == NULL ||
                look(s->api, &s->q, results, &last, &err) != BS_OK ||
                !events(s, results)) {
                json_decref(results);
                return -1;
            }
            json_decref(results);
            s->q.since = last;
            if (s->n > 0)
                break;
        }
        feed_wait(s->api, gen, s->deadline);
    }
    if (max > s->n - s->off)
        max = s->n - s->off;
    memcpy(buf, s->buf + s->off, max);
    s->off += max;
    s->quiet = now_ms();
    return (long)max;
}

static void
sse_free(bs_api_stream *st)
{
    sse *s = (sse *)st;

    free(s->buf);
    free(s);
}

static void
start_sse(bs_api *api, const feedq *q, bs_api_resp *out)
{
    sse *s = calloc(1, sizeof *s);

    if (s == NULL) {
        bs_api_answer(api, 500, NULL, NULL, out);
        return;
    }
    s->base.read = sse_read;
    s->base.free = sse_free;
    s->api = api;
    s->q = *q;
    if (q->coll != NULL) { /* the request's arguments go with the request */
        snprintf(s->coll, sizeof s->coll, "%s", q->coll);
        s->q.coll = s->coll;
    }
    s->quiet = now_ms();
    s->deadline = s->quiet + (uint64_t)q->timeout_s * 1000u;
    bs_api_answer_stream(api, &s->base, "text/event-stream", out);
}

void
bs_api_changes(bs_api *api, const bs_api_req *rq, bs_api_resp *out)
{
    bs_errbuf err = {{0}};
    json_t *results;
    uint64_t last = 0, deadline;
    feedq q;
    bs_err rv;

    if (!parse_query(api, rq, &q, out))
        return;
    if (q.sse) {
        start_sse(api, &q, out);
        return;
    }
    if ((results = json_array()) == NULL) {
        bs_api_answer(api, 500, NULL, NULL, out);
        return;
    }
    deadline = now_ms() + (uint64_t)q.timeout_s * 1000u;
    for (;;) {
        uint64_t seen, gen = feed_gen(api);

        if ((rv = look(api, &q, results, &last, &err)) != BS_OK ||
            json_array_size(results) > 0 || !q.longpoll)
            break;
        /* nothing yet: wait for the index to grow past what was read */
        q.since = last;
        do {
            if (now_ms() >= deadline || stopping(api))
                goto done;
            feed_wait(api, gen, deadline);
            gen = feed_gen(api);
            if ((rv = last_seq(api, &seen, &err)) != BS_OK)
                goto done;
        } while (seen <= last);
    }
done:
    if (rv != BS_OK) {
        json_decref(results);
        bs_api_fail(api, rv, &err, out);
        return;
    }
    bs_api_json(api, 200,
                json_pack("{s:o, s:I}", "results", results, "last_seq",
                          (json_int_t)last),
                out);
}
