/*
 * http_api.h - what each HTTP request does: routing, authentication, the
 * JSON documents and the mapping of bs_err to HTTP statuses
 * (docs/api.md).  Independent of the HTTP library: http.c turns a request
 * into a bs_api_req and sends the bs_api_resp back, and the unit tests
 * call bs_api_handle directly.
 *
 * Rules:
 *   - Every path but GET /health and GET /metrics needs
 *     `Authorization: Bearer TOKEN`; else 401.
 *   - Errors are {"error": "one line", "code": HTTP status}: 400 bad input
 *     (nothing written), 401, 403 a collection rule forbids the write
 *     (BS_EPERM), 404 not found, 405 wrong method, 413 body too large,
 *     500 this node's own trouble, 503 not ready (a peer unreachable, the
 *     node busy).
 *   - Reads run in one read transaction per request; writes go through the
 *     core API (records.h, load.h, resolution.h) in their own write
 *     transaction, exactly as the CLI's, and then call hooks.changed -
 *     except PUT and DELETE of one record, which concurrent requests
 *     share: one durable transaction for all of them (http_write.h), one
 *     hooks.changed per transaction.  Every write is answered once it is
 *     durable.
 *
 * Thread safety: bs_api_handle may run on many threads at once; the node
 * is shared (its store was opened MDB_NOTLS, its key loaded before).
 */
#ifndef BS_HTTP_API_H
#define BS_HTTP_API_H

#include "../replication/common.h"
#include "http_write.h"
#include "metrics.h"
#include "node.h"

/* What the API asks of the process that serves it. */
typedef struct bs_api_hooks {
    /* A local write committed: push it to online peers.  Any thread; must
     * not block.  NULL: nobody to tell. */
    void (*changed)(void *ctx);
    /*
     * Exchange with peer now, both ways, and wait for the end (the daemon
     * asks its own loop through the control socket).  *reply_json: the
     * control reply (malloc'd), set on BS_OK.  NULL: 503 "no daemon".
     */
    bs_err (*sync)(void *ctx, const char *peer, char **reply_json,
                   bs_errbuf *err);
    void *ctx;
    /* health.h's `daemon` field: 1 when served by the daemon. */
    int daemon;
    /* The daemon's own counters, shown by GET /metrics (borrowed; NULL:
     * none). */
    const bs_metrics *metrics;
} bs_api_hooks;

/* HTTP statuses counted for GET /metrics. */
#define BS_API_NSTATUS 12
extern const int bs_api_statuses[BS_API_NSTATUS];

/* Caller-owned; bs_api_init / bs_api_fini. */
typedef struct bs_api {
    bs_node *n;     /* borrowed */
    bs_core core;   /* from n, signing */
    char token[80]; /* the bearer token */
    bs_api_hooks hooks;
    /* requests answered, per bs_api_statuses entry (the last: others) */
    uint64_t answered[BS_API_NSTATUS];
    /* PUT and DELETE of one record: group commit (http_write.h) */
    bs_http_writeq writes;
    /* Set (atomically) while the server stops: a waiting change feed
     * answers or ends at its next look, within 25 ms, so that stopping
     * never waits for a feed's timeout. */
    int stopping;
    /* Waiting change feeds sleep on feed_cv until feed_gen moves
     * (bs_api_wake) or their polling period passes. */
    pthread_mutex_t feed_mu;
    pthread_cond_t feed_cv; /* on CLOCK_MONOTONIC */
    uint64_t feed_gen;
    /* The feeds' polling period for commits nobody wakes them for (other
     * processes'); 0: 25 ms.  Tests lengthen it to see the wake-ups. */
    unsigned feed_poll_ms;
} bs_api;

/*
 * Set api up for node n (opened writable; its secret key is loaded here,
 * on the calling thread, so the serving threads only read it).  token is
 * copied.  BS_EKEY when the key cannot be loaded.
 */
BS_MUST_CHECK bs_err bs_api_init(bs_api *api, bs_node *n, const char *token,
                                 const bs_api_hooks *hooks, bs_errbuf *err);
void bs_api_fini(bs_api *api);

typedef struct bs_api_req {
    const char *method; /* "GET", "PUT", ... */
    const char *path;   /* decoded, without the query string */
    /* A query argument's decoded value, NULL when absent. */
    const char *(*arg)(void *ctx, const char *name);
    void *arg_ctx;
    const char *auth; /* the Authorization header, or NULL */
    const char *body; /* the request body (may be NULL when body_len 0) */
    size_t body_len;
    /* The Last-Event-ID header (an event stream's client reconnecting),
     * or NULL. */
    const char *last_event_id;
} bs_api_req;

/*
 * A body produced while it is sent (the change feed's event stream).
 * read fills buf with up to max bytes, blocking on the connection's
 * thread until it has some; it returns how many (> 0), or -1 at the end.
 * free is called once, when the response ends or the client goes away.
 */
typedef struct bs_api_stream {
    long (*read)(struct bs_api_stream *s, char *buf, size_t max);
    void (*free)(struct bs_api_stream *s);
} bs_api_stream;

typedef struct bs_api_resp {
    int status;
    char *body; /* malloc'd; the caller frees it */
    size_t len;
    const char *type; /* a constant Content-Type */
    /* Instead of body (then NULL): the body as a stream, owned by the
     * caller, who reads it to the end or not and then frees it. */
    bs_api_stream *stream;
} bs_api_resp;

/*
 * Something was committed to the store (a replicated change applied, a
 * held set released): wake every waiting change feed, which then looks
 * at once instead of at its next polling period.  Any thread; does not
 * block beyond a short mutex.  The API's own writes wake the feeds
 * themselves.
 */
void bs_api_wake(bs_api *api);

/* Answer one request; *out is always set (500 when out of memory). */
void bs_api_handle(bs_api *api, const bs_api_req *rq, bs_api_resp *out);

/*
 * Whether rq may go on before its body is read: 1 if so; else *out is
 * the answer (401).  bs_api_handle checks again; http.c calls this on the
 * request's first call, so an unauthorized upload is never read.
 */
int bs_api_admit(bs_api *api, const bs_api_req *rq, bs_api_resp *out);

/* An error answer {"error": msg, "code": status}, counted. */
void bs_api_error(bs_api *api, int status, const char *msg, bs_api_resp *out);

/* The HTTP status of a core error: 400 for bad input (exit code 2) but
 * 403 for BS_EPERM, 404 for BS_ENOTFOUND, 503 for a peer or the node not
 * ready, 500 for the rest. */
int bs_api_status_of(bs_err e);

#endif
