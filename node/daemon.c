/*
 * daemon.c - branchsyncd's event loop: start and stop order, signals, the
 * pump, and the exchanges peers start with us (inbound sessions).
 *
 * Everything here runs on the loop thread; the sets sessions receive are
 * applied on the apply worker (applier.h), whose outcomes come back
 * through the `applied` async handle (on_applied).  ZeroMQ's descriptors are
 * edge-triggered, so every callback ends in bs_daemon_pump(), which keeps
 * reading every socket and flushing every session until a full pass finds
 * nothing to do (docs/design.md, "One event loop in the daemon").  The links to
 * the paired peers are in link.c, the control socket's requests in control.c;
 * the state they share is in daemon_int.h.
 */
#include "daemon_int.h"

#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "../replication/peers.h"
#include "../replication/retry.h"
#include "backups.h"
#include "client.h"
#include "control.h"
#include "lock.h"
#include "log.h"

#define SWEEP_MS      1000u
#define HTTP_RETRY_MS 2000u               /* after a failed bind */
#define HTTP_SYNC_MS  (10u * 60u * 1000u) /* POST /v1/peers/NAME/sync */

/* An exchange a peer started with us (on the listener). */
struct bs_incoming {
    uint8_t rid[256];
    size_t rn;
    uint8_t pk[BS_PK_LEN]; /* the caller's key, as ZAP admitted it */
    bs_session *s;
    uint64_t sid; /* bs_daemon_sid */
    uint64_t started_ms, last_in_ms;
    struct bs_incoming *next;
};

/* ---- logging: one line per event, on stderr or the journal (log.h) ---- */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
bs_daemon_log(bs_daemon *d, int level, const char *fmt, ...)
{
    char line[BS_LOG_LINE_MAX];
    va_list ap;

    if (level > d->level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    bs_log_emit(d->log, level, line);
}

uint64_t
bs_daemon_now_ms(void)
{
    return bs_clock_system.now_ms(NULL);
}

static int
parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return BS_LOG_INFO;
}

static uint64_t
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
bs_daemon_sid(bs_daemon *d)
{
    return ++d->last_sid;
}

bs_session_cfg
bs_daemon_session_cfg(bs_daemon *d)
{
    bs_session_cfg cfg;

    memset(&cfg, 0, sizeof cfg);
    cfg.store = d->n->store;
    cfg.sk = d->sk;
    cfg.clock = bs_clock_system;
    cfg.max_skew_ms = (uint64_t)d->n->cfg.max_skew_s * 1000;
    cfg.retention_ms = (uint64_t)d->n->cfg.retention_days * 86400000ull;
    cfg.defer_apply = d->applier != NULL;
    return cfg;
}

/* The changes a session applied: counted, and the change feeds woken. */
static void
note_applied(bs_daemon *d, bs_session *s, uint64_t before)
{
    const bs_session_stats *st = bs_session_stats_of(s);

    if (st->changes_applied > before) {
        bs_metrics_applied(&d->metrics, bs_session_peer(s),
                           st->changes_applied - before);
        if (d->api_ready) /* committed: open change feeds look now */
            bs_api_wake(&d->api);
    }
}

void
bs_daemon_feed(bs_daemon *d, bs_session *s, uint64_t sid, const uint8_t *m,
               size_t n)
{
    uint64_t applied = bs_session_stats_of(s)->changes_applied, t0 = mono_us();
    int set = n > 0 && m[0] == BS_MSG_SET;
    bs_err rv = bs_session_input(s, m, n);
    uint8_t *p;
    size_t len;

    (void)rv;
    /* Received sets go to the worker; a session that applies inline (the
     * hub seeds us) is timed here, as before. */
    while (bs_session_take(s, &p, &len) == BS_OK) {
        if (bs_applier_submit(d->applier, sid, p, len) != BS_OK) {
            free(p);
            rv = bs_session_applied(s, BS_ENOMEM, "out of memory", 0, 0);
            set = 0;
            break; /* the session failed: its later sets go nowhere */
        }
        set = 0;
    }
    if (set)
        bs_metrics_observe(&d->metrics.apply, mono_us() - t0);
    note_applied(d, s, applied);
}

int
bs_daemon_flush(bs_daemon *d, bs_zsock *sock, const uint8_t *rid, size_t rn,
                bs_session *s, uint8_t **held, size_t *hn)
{
    const bs_session_stats *st = bs_session_stats_of(s);
    uint64_t sent = st->changes_sent;
    int moved = 0;
    bs_err rv = bs_client_flush(s, sock, rid, rn, held, hn, &moved);

    (void)rv;
    bs_metrics_sent(&d->metrics, bs_session_peer(s), st->changes_sent - sent);
    return moved;
}

/* ---- inbound sessions (a peer called us) ---- */

static bs_incoming *
find_inbound(bs_daemon *d, const uint8_t *rid, size_t rn)
{
    for (bs_incoming *i = d->inbound; i != NULL; i = i->next)
        if (i->rn == rn && memcmp(i->rid, rid, rn) == 0)
            return i;
    return NULL;
}

static void
inbound_end(bs_daemon *d, bs_incoming *in)
{
    bs_incoming **pp;
    const bs_session_stats *st = bs_session_stats_of(in->s);
    int ok = bs_session_state_of(in->s) == BS_SESSION_COMPLETE;
    const char *peer = bs_session_peer(in->s);
    char problem[BS_ERRMSG_LEN] = "";

    /* Sets refused here, ours held there, a clock ahead: the exchange
     * completed, but the log and the exchange log say what went wrong. */
    if (ok)
        bs_client_problem(st, peer, bs_session_refused_reason(in->s),
                          &d->n->cfg, problem, sizeof problem);
    bs_metrics_exchange(&d->metrics, peer, ok,
                        (bs_daemon_now_ms() - in->started_ms) * 1000);
    /* The exchange log first: whoever reads the log line finds the entry */
    if (peer[0])
        bs_client_log(d->n, peer, "network", "both", st, in->started_ms,
                      !ok          ? bs_session_error(in->s)
                      : problem[0] ? problem
                                   : NULL);
    if (ok)
        bs_daemon_log(
            d, problem[0] ? BS_LOG_WARN : BS_LOG_INFO,
            "exchange peer=%s dir=both (they called) sent=%llu "
            "received=%llu changes=%llu conflicts=%llu ms=%llu result=%s%s",
            peer, (unsigned long long)st->sets_sent,
            (unsigned long long)st->sets_received,
            (unsigned long long)st->changes_applied,
            (unsigned long long)st->conflicts,
            (unsigned long long)(bs_daemon_now_ms() - in->started_ms),
            problem[0] ? "problem: " : "ok", problem);
    else
        bs_daemon_log(d, BS_LOG_WARN,
                      "exchange peer=%s (they called) result=error: %s",
                      peer[0] ? peer : "?", bs_session_error(in->s));
    bs_daemon_held_check(d);
    if (ok && st->changes_applied > 0)
        bs_link_push(d, peer, "relay");
    for (pp = &d->inbound; *pp != in; pp = &(*pp)->next)
        ;
    *pp = in->next;
    d->inbound_n--;
    bs_session_free(in->s);
    free(in);
}

/*
 * A HELLO beyond [sync] max_sessions: told to retry later, with a delay
 * (0.5 to 2 s, jittered, so that the refused do not come back together),
 * in an ERROR with code BS_EBUSY (protocol.md 15.6).  Nothing is read or
 * written for it: a storm of reconnecting branches costs the hub one
 * message each, and the sessions running go on.
 */
static void
refuse_busy(bs_daemon *d, const bs_zin *m)
{
    uint8_t msg[160];
    uint32_t r;
    int len;

    bs_crypto_random(&r, sizeof r);
    msg[0] = BS_MSG_ERROR;
    msg[1] = (uint8_t)BS_EBUSY;
    len = snprintf((char *)msg + 2, sizeof msg - 2,
                   "busy: %u exchanges running here; retry in %.1f s",
                   d->inbound_n, (500 + r % 1500) / 1000.0);
    d->busy_refused++;
    if (bs_zsend(d->listener, m->rid, m->rn, msg, 2 + (size_t)len) != BS_OK)
        return; /* the peer times out and retries all the same */
    bs_daemon_log(d, BS_LOG_DEBUG, "hello from %s: %s", m->user,
                  (char *)msg + 2);
}

static void
on_listener_msg(bs_daemon *d, bs_zin *m)
{
    bs_incoming *in = find_inbound(d, m->rid, m->rn);
    bs_session_cfg cfg;
    bs_peer p;
    bs_txn *t;
    int known = 0;

    if (in != NULL && m->n > 0 && m->msg[0] == BS_MSG_HELLO &&
        (bs_session_state_of(in->s) == BS_SESSION_COMPLETE ||
         bs_session_state_of(in->s) == BS_SESSION_FAILED)) {
        /* The next exchange on the same connection, arriving in the same
         * batch as the end of the last one: close that one first. */
        inbound_end(d, in);
        in = NULL;
    }
    if (in == NULL) {
        if (m->n == 0 || m->msg[0] != BS_MSG_HELLO)
            return; /* stray message of an ended exchange */
        /* ZAP put the peer's name in User-Id; take its key from the store. */
        if (bs_store_read(d->n->store, &t, NULL) == BS_OK) {
            known = bs_peer_get(t, m->user, &p) == BS_OK;
            bs_txn_abort(t);
        }
        if (!known) {
            bs_daemon_log(d, BS_LOG_WARN, "hello from an unknown peer \"%s\"",
                          m->user);
            return;
        }
        if (d->inbound_n >= d->n->cfg.max_sessions) {
            bs_peer_fini(&p);
            refuse_busy(d, m);
            return;
        }
        if ((in = calloc(1, sizeof *in)) == NULL) {
            bs_peer_fini(&p);
            return;
        }
        memcpy(in->rid, m->rid, m->rn);
        in->rn = m->rn;
        in->started_ms = bs_daemon_now_ms();
        in->sid = bs_daemon_sid(d);
        cfg = bs_daemon_session_cfg(d);
        cfg.initiator = 0;
        memcpy(in->pk, p.pk, BS_PK_LEN);
        cfg.authenticated = in->pk;
        bs_peer_fini(&p);
        if (bs_session_new(&cfg, &in->s) != BS_OK) {
            free(in);
            return;
        }
        in->next = d->inbound;
        d->inbound = in;
        if (++d->inbound_n > d->inbound_peak)
            d->inbound_peak = d->inbound_n;
    }
    in->last_in_ms = bs_daemon_now_ms();
    bs_daemon_feed(d, in->s, in->sid, m->msg, m->n);
}

/* ---- the pump ---- */

static int
pump_inbound(bs_daemon *d)
{
    int work = 0;
    bs_zin m;

    while (d->listener && bs_zrecv(d->listener, 1, &m) == BS_OK) {
        work = 1;
        on_listener_msg(d, &m);
        free(m.msg);
    }
    for (bs_incoming *in = d->inbound, *next; in != NULL; in = next) {
        uint8_t *held = NULL;
        size_t hn = 0;

        next = in->next;
        work |=
            bs_daemon_flush(d, d->listener, in->rid, in->rn, in->s, &held, &hn);
        free(held); /* the ROUTER drops what it cannot take; the peer times
                       out and the next exchange resumes */
        if (bs_session_state_of(in->s) == BS_SESSION_COMPLETE ||
            bs_session_state_of(in->s) == BS_SESSION_FAILED) {
            inbound_end(d, in);
            work = 1;
        }
    }
    return work;
}

static void
on_zap_refused(void *ctx, const char *why)
{
    bs_daemon_log(ctx, BS_LOG_WARN, "%s", why);
}

void
bs_daemon_pump(bs_daemon *d)
{
    int work;

    if (d->pumping)
        return;
    d->pumping = 1;
    do {
        bs_zin m;
        work = 0;
        bs_zap_serve(d->z, on_zap_refused, d);
        while (d->control && bs_zrecv(d->control, 1, &m) == BS_OK) {
            work = 1;
            bs_control_serve(d, &m);
            free(m.msg);
        }
        work |= pump_inbound(d);
        work |= bs_link_pump(d);
    } while (work);
    d->pumping = 0;
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    bs_daemon_pump(h->data);
}

/* ---- the apply worker's outcomes (applier.h) ---- */

static bs_session *
find_session(bs_daemon *d, uint64_t sid)
{
    for (bs_incoming *i = d->inbound; i != NULL; i = i->next)
        if (i->sid == sid)
            return i->s;
    return bs_link_session(d, sid);
}

/* Sets applied (committed durably, or refused): each goes back to its
 * session, which now sends the CREDIT (and, after the last, its ACK).
 * A session that ended meanwhile is gone: its outcome is dropped (what
 * committed stays, and the next exchange resumes from the vectors). */
static void
on_applied(uv_async_t *h)
{
    bs_daemon *d = h->data;
    bs_apply_job *j = bs_applier_done(d->applier), *next;
    int orphans = 0;

    for (; j != NULL; j = next) {
        bs_session *s = find_session(d, j->owner);
        next = j->next;
        bs_metrics_observe(&d->metrics.apply, j->batch_us);
        if (s != NULL) {
            uint64_t before = bs_session_stats_of(s)->changes_applied;
            bs_err rv =
                bs_session_applied(s, j->rv, j->why, j->changes, j->conflicts);
            (void)rv; /* the session's state tells */
            note_applied(d, s, before);
        } else {
            orphans |= j->rv == BS_OK && j->changes > 0;
        }
        bs_apply_job_free(j);
    }
    /* Changes committed for a session that ended meanwhile: the feeds
     * and the online peers still hear of them. */
    if (orphans && d->api_ready)
        bs_api_wake(&d->api);
    if (orphans)
        bs_link_push(d, NULL, "relay");
    bs_daemon_pump(d);
}

/* applier.h `done`: on the worker thread; uv_async_send is thread-safe. */
static void
applied_wake(void *ctx)
{
    bs_daemon *d = ctx;

    uv_async_send(&d->applied);
}

static bs_err
applier_start(bs_daemon *d)
{
    bs_applier_cfg cfg = {0};

    uv_async_init(&d->loop, &d->applied, on_applied);
    d->applied.data = d;
    cfg.store = d->n->store;
    cfg.clock = bs_clock_system;
    cfg.max_skew_ms = (uint64_t)d->n->cfg.max_skew_s * 1000;
    cfg.done = applied_wake;
    cfg.ctx = d;
    return bs_applier_new(&cfg, &d->applier);
}

/* ---- held sets: retried when their time comes ---- */

static void
on_held(uv_timer_t *t)
{
    bs_daemon *d = t->data;
    bs_retry_due due;
    bs_errbuf err = {{0}};
    bs_xstats st;
    bs_txn *txn;
    bs_err rv;

    if ((rv = bs_store_read(d->n->store, &txn, &err)) == BS_OK) {
        rv = bs_retry_when(txn, bs_daemon_now_ms(),
                           (uint64_t)d->n->cfg.max_skew_s * 1000, &due);
        bs_txn_abort(txn);
    }
    if (rv == BS_OK && due.waiting > 0) {
        rv = bs_retry_held(d->n->store, bs_clock_system,
                           (uint64_t)d->n->cfg.max_skew_s * 1000, &st, &err);
        if (rv != BS_OK)
            bs_daemon_log(d, BS_LOG_ERROR, "retrying held sets: %s",
                          bs_errmsg(&err, rv));
        else if (st.sets > 0 || st.refused > 0)
            bs_daemon_log(
                d, BS_LOG_INFO,
                "held sets retried: %llu of %llu applied (%llu "
                "changes), %llu refused",
                (unsigned long long)st.sets, (unsigned long long)due.waiting,
                (unsigned long long)st.changes, (unsigned long long)st.refused);
        if (rv == BS_OK && st.changes > 0 && d->api_ready)
            bs_api_wake(&d->api);
        if (rv == BS_OK && st.changes > 0)
            bs_link_push(d, NULL, "relay");
    } else if (rv != BS_OK) {
        bs_daemon_log(d, BS_LOG_ERROR, "reading held sets: %s",
                      bs_errmsg(&err, rv));
    }
    bs_daemon_held_check(d);
    bs_daemon_pump(d);
}

void
bs_daemon_held_check(bs_daemon *d)
{
    uint64_t now = bs_daemon_now_ms(), delay = BS_DAEMON_HELD_RETRY_MS;
    bs_retry_due due;
    bs_txn *t;
    bs_err rv;

    if (d->stopping || d->held.data == NULL)
        return;
    if ((rv = bs_store_read(d->n->store, &t, NULL)) == BS_OK) {
        rv = bs_retry_when(t, now, (uint64_t)d->n->cfg.max_skew_s * 1000, &due);
        bs_txn_abort(t);
    }
    /* A set held for its clock: retry as soon as its time comes (50 ms
     * late, for the timer's resolution).  Anything else held, or held by
     * a file import meanwhile: look again within the bounded period. */
    if (rv == BS_OK && due.clock_due_ms > 0 && due.clock_due_ms - now < delay)
        delay = due.clock_due_ms - now + 50;
    /* Their time came while nobody looked (the daemon was down): soon. */
    if (rv == BS_OK && due.clock_ready > 0 && delay > 1000)
        delay = 1000;
    uv_timer_start(&d->held, on_held, delay, 0);
}

/* Fail sessions that went silent. */
static void
on_sweep(uv_timer_t *t)
{
    bs_daemon *d = t->data;
    uint64_t now = bs_daemon_now_ms();

    bs_link_sweep(d, now);
    for (bs_incoming *in = d->inbound, *next; in != NULL; in = next) {
        next = in->next;
        if (now - in->last_in_ms > BS_DAEMON_IDLE_MS) {
            bs_daemon_log(d, BS_LOG_WARN, "exchange peer=%s: silent, abandoned",
                          bs_session_peer(in->s));
            bs_incoming **pp;
            for (pp = &d->inbound; *pp != in; pp = &(*pp)->next)
                ;
            *pp = in->next;
            d->inbound_n--;
            bs_session_free(in->s);
            free(in);
        }
    }
    bs_daemon_pump(d);
}

/* ---- the HTTP API (its own threads; http.h) ---- */

/* An HTTP thread committed a local write: push it, as "changed" does. */
static void
on_http_changed(uv_async_t *a)
{
    bs_daemon *d = a->data;

    bs_link_push(d, NULL, "local write (http)");
    bs_daemon_pump(d);
}

/* hooks.changed: on an HTTP thread; uv_async_send is thread-safe. */
static void
http_changed(void *ctx)
{
    bs_daemon *d = ctx;

    uv_async_send(&d->http_changed);
}

/* hooks.sync: on an HTTP thread, which waits for the exchange; the loop
 * runs it like the CLI's `sync`, through the control socket. */
static bs_err
http_sync(void *ctx, const char *peer, char **reply, bs_errbuf *err)
{
    bs_daemon *d = ctx;
    json_t *req = json_pack("{s:s, s:s}", "cmd", "sync", "peer", peer);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    bs_err rv = BS_ENOMEM;

    json_decref(req);
    if (text != NULL)
        rv = bs_control_call(d->n->dir, text, HTTP_SYNC_MS, reply, err);
    free(text);
    if (rv == BS_ENOTFOUND)
        rv = bs_errf(err, BS_EUNREACHABLE, "the daemon did not answer");
    return rv;
}

static bs_http_opts
http_opts(bs_daemon *d)
{
    const bs_config *c = &d->n->cfg;
    bs_http_opts o = {0};

    o.listen = c->http_listen;
    o.cert = c->http_cert;
    o.key = c->http_key;
    o.max_conns = c->http_max_conns;
    o.timeout_s = c->http_timeout_s;
    o.max_per_ip = c->http_max_per_ip;
    o.request_s = c->http_request_s;
    o.body_max = (size_t)c->http_body_max_mb << 20;
    o.api = &d->api;
    return o;
}

/*
 * Before anything starts: the HTTP settings must be usable (a
 * non-loopback address without TLS refuses to start, P-HTTP), the token
 * is made if this node predates it, and the API is set up.
 */
static bs_err
http_prepare(bs_daemon *d, bs_errbuf *err)
{
    char token[BS_HTTP_TOKEN_LEN + 1];
    bs_api_hooks hooks = {http_changed, http_sync, d, 1, &d->metrics};
    bs_http_opts o = http_opts(d);
    bs_err rv;

    if (!d->n->cfg.http_listen[0])
        return BS_OK;
    if ((rv = bs_http_check(&o, err)) != BS_OK ||
        (rv = bs_http_token_load(d->n->dir, 1, token, err)) != BS_OK)
        return rv;
    rv = bs_api_init(&d->api, d->n, token, &hooks, err);
    bs_wipe(token, sizeof token);
    d->api_ready = rv == BS_OK;
    return rv;
}

static void http_try(bs_daemon *d);

static void
on_http_retry(uv_timer_t *t)
{
    http_try(t->data);
}

/* Bind and serve; on failure say so once, remember why (doctor shows
 * it) and try again in HTTP_RETRY_MS.  Replication goes on regardless. */
static void
http_try(bs_daemon *d)
{
    bs_http_opts o = http_opts(d);
    bs_errbuf err = {{0}};
    bs_err rv;

    if (!d->api_ready || d->http != NULL || d->stopping)
        return;
    if ((rv = bs_http_start(&o, &d->http, &err)) == BS_OK) {
        bs_daemon_log(d, BS_LOG_INFO, "HTTP API on %s://%s%s",
                      o.cert[0] ? "https" : "http", o.listen,
                      d->http_error[0] ? " (bound at last)" : "");
        d->http_error[0] = '\0';
        return;
    }
    if (strcmp(d->http_error, bs_errmsg(&err, rv)) != 0)
        bs_daemon_log(d, BS_LOG_WARN,
                      "%s; HTTP API not served, retrying every %u s "
                      "(replication goes on)",
                      bs_errmsg(&err, rv), HTTP_RETRY_MS / 1000);
    snprintf(d->http_error, sizeof d->http_error, "%s", bs_errmsg(&err, rv));
    uv_timer_start(&d->http_retry, on_http_retry, HTTP_RETRY_MS, 0);
}

static void
http_start_loop(bs_daemon *d)
{
    uv_async_init(&d->loop, &d->http_changed, on_http_changed);
    d->http_changed.data = d;
    uv_timer_init(&d->loop, &d->http_retry);
    d->http_retry.data = d;
    http_try(d);
}

/* Stop serving before the loop's handles close: no HTTP thread may wake
 * a closed async handle, or use the node after it is closed. */
static void
http_shutdown(bs_daemon *d)
{
    bs_http_stop(d->http);
    d->http = NULL;
    if (d->api_ready)
        bs_api_fini(&d->api);
    d->api_ready = 0;
}

/* ---- signals and lifetime ---- */

/* ---- scheduled backups (backups.h) ---- */

static void
on_backup(uv_timer_t *t)
{
    bs_daemon *d = t->data;
    char file[BS_BACKUP_NAME_MAX] = "";
    bs_errbuf err = {{0}};
    uint64_t t0 = bs_daemon_now_ms();
    bs_err rv = bs_backups_run(d->n, t0, file, sizeof file, &err);

    if (rv == BS_OK)
        bs_daemon_log(d, BS_LOG_INFO, "backup %s/%s written (%llu ms)",
                      d->n->cfg.backup_dir, file,
                      (unsigned long long)(bs_daemon_now_ms() - t0));
    else
        bs_daemon_log(d, BS_LOG_ERROR, "backup into %s failed: %s",
                      d->n->cfg.backup_dir, bs_errmsg(&err, rv));
    bs_daemon_backup_arm(d);
}

void
bs_daemon_backup_arm(bs_daemon *d)
{
    uint64_t now = bs_daemon_now_ms();
    bs_errbuf err = {{0}};
    bs_backup_view v;
    bs_config cfg;

    if (d->stopping)
        return;
    uv_timer_stop(&d->backup);
    if (bs_config_load(d->n->dir, &cfg, &err) == BS_OK) {
        memcpy(d->n->cfg.backup_schedule, cfg.backup_schedule,
               sizeof cfg.backup_schedule);
        memcpy(d->n->cfg.backup_dir, cfg.backup_dir, sizeof cfg.backup_dir);
        d->n->cfg.backup_keep = cfg.backup_keep;
    }
    bs_backups_view(d->n, now, &v);
    if (!v.configured || v.next_s <= 0)
        return;
    /* A second late: a timer that fires a little early by the wall clock
     * would otherwise find the same cron minute still ahead. */
    uv_timer_start(&d->backup, on_backup,
                   ((uint64_t)v.next_s * 1000 > now
                        ? (uint64_t)v.next_s * 1000 - now
                        : 0) +
                       1000,
                   0);
    bs_daemon_log(d, BS_LOG_DEBUG, "next backup into %s in %lld s",
                  d->n->cfg.backup_dir,
                  (long long)(v.next_s - (int64_t)(now / 1000)));
}

static void
stop(bs_daemon *d, const char *why)
{
    if (d->stopping)
        return;
    d->stopping = 1;
    bs_daemon_log(d, BS_LOG_INFO, "stopping (%s)", why);
    sd_notify(0, "STOPPING=1");
    uv_stop(&d->loop);
}

static void
on_signal(uv_signal_t *h, int signum)
{
    bs_daemon *d = h->data;

    if (signum == SIGHUP) {
        bs_config cfg;
        bs_errbuf err = {{0}};
        if (bs_config_load(d->n->dir, &cfg, &err) != BS_OK) {
            bs_daemon_log(d, BS_LOG_ERROR,
                          "SIGHUP: %s (keeping the old settings)", err.msg);
            return;
        }
        d->n->cfg.max_skew_s = cfg.max_skew_s;
        d->n->cfg.retention_days = cfg.retention_days;
        d->n->cfg.clock_ahead = cfg.clock_ahead;
        d->n->cfg.connect_timeout_s = cfg.connect_timeout_s;
        d->level = parse_level(cfg.log_level);
        if (strcmp(cfg.listen, d->n->cfg.listen) != 0)
            bs_daemon_log(d, BS_LOG_WARN,
                          "SIGHUP: a new listen address takes effect "
                          "at the next start");
        if (strcmp(cfg.http_listen, d->n->cfg.http_listen) != 0 ||
            strcmp(cfg.http_cert, d->n->cfg.http_cert) != 0 ||
            strcmp(cfg.http_key, d->n->cfg.http_key) != 0)
            bs_daemon_log(d, BS_LOG_WARN,
                          "SIGHUP: new [http] settings take effect at the "
                          "next start");
        bs_daemon_log(d, BS_LOG_INFO, "configuration re-read (log level %s)",
                      level_names[d->level]);
        if (bs_link_reload(d, &err) != BS_OK)
            bs_daemon_log(d, BS_LOG_ERROR, "reload peers: %s", err.msg);
        bs_daemon_backup_arm(d);
        bs_daemon_pump(d);
        return;
    }
    stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void
harden(void)
{
    struct rlimit no_core = {0, 0};

    /* No core dumps, no ptrace by others: the key is in memory (P22). */
    setrlimit(RLIMIT_CORE, &no_core);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static void
close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static bs_err
open_sockets(bs_daemon *d, bs_errbuf *err)
{
    bs_err rv;

    /* ZAP first: a CURVE listener without a handler admits anyone (P19). */
    if ((rv = bs_zap_start(d->z, err)) != BS_OK ||
        (rv = bs_link_reload(d, err)) != BS_OK)
        return rv;
    if (d->n->cfg.listen[0] &&
        (rv = bs_listen(d->z, d->n->cfg.listen, d->curve_sk, &d->listener,
                        err)) != BS_OK)
        return rv;
    if ((rv = bs_control_listen(d->z, d->n->dir, &d->control, err)) != BS_OK)
        return rv;
    uv_poll_init(&d->loop, &d->zpoll, bs_zfd(bs_zap_socket(d->z)));
    uv_poll_init(&d->loop, &d->cpoll, bs_zfd(d->control));
    d->zpoll.data = d->cpoll.data = d;
    uv_poll_start(&d->zpoll, UV_READABLE, on_poll);
    uv_poll_start(&d->cpoll, UV_READABLE, on_poll);
    if (d->listener) {
        uv_poll_init(&d->loop, &d->lpoll, bs_zfd(d->listener));
        d->lpoll.data = d;
        uv_poll_start(&d->lpoll, UV_READABLE, on_poll);
    }
    return BS_OK;
}

/* Release every link and inbound exchange.  Link timers are closed
 * through libuv (their memory lives in the link, freed by the close
 * callback), so the caller runs the loop once more afterwards. */
static void
free_all(bs_daemon *d)
{
    bs_link_free_all(d);
    while (d->inbound) {
        bs_incoming *in = d->inbound;
        d->inbound = in->next;
        d->inbound_n--;
        bs_session_free(in->s);
        free(in);
    }
}

int
bs_daemon_run(const bs_daemon_opts *o)
{
    bs_daemon d;
    bs_errbuf err = {{0}};
    char id[BS_NODE_ID_LEN + 1], sock[4200];
    bs_err rv;
    int status = 1, lock = -1;

    memset(&d, 0, sizeof d);
    bs_metrics_init(&d.metrics);
    d.log = bs_log_journal(); /* under systemd: structured entries */
    harden();
    if ((rv = bs_crypto_init()) != BS_OK) {
        fprintf(stderr, "branchsyncd: cannot initialise libsodium\n");
        return 1;
    }
    /* One daemon per directory, decided before anything is touched: a
     * second one must not remove the first one's control socket. */
    if ((rv = bs_node_lock_daemon(o->dir, &lock, &err)) != BS_OK) {
        fprintf(stderr, "branchsyncd: %s\n", bs_errmsg(&err, rv));
        return bs_err_exit_code(rv);
    }
    {
        /* The control socket lives in DIR: only its owner may reach it. */
        struct stat st;
        if (stat(o->dir, &st) != 0 || (st.st_mode & 077) != 0) {
            fprintf(stderr,
                    "branchsyncd: %s must be accessible to its owner only "
                    "(chmod 700 %s): it holds the control socket\n",
                    o->dir, o->dir);
            bs_lock_release(lock);
            return 2;
        }
    }
    if ((rv = bs_node_open(o->dir, 0, &d.n, &err)) != BS_OK) {
        fprintf(stderr, "branchsyncd: %s\n", bs_errmsg(&err, rv));
        bs_lock_release(lock);
        return bs_err_exit_code(rv);
    }
    d.level =
        o->log_level >= 0 ? o->log_level : parse_level(d.n->cfg.log_level);
    if ((rv = bs_node_secret(d.n, &d.sk, &err)) != BS_OK ||
        (rv = bs_node_curve(d.n, d.curve_pk, d.curve_sk, &err)) != BS_OK ||
        (rv = http_prepare(&d, &err)) != BS_OK ||
        (rv = bs_zmq_new(&d.z, &err)) != BS_OK) {
        fprintf(stderr, "branchsyncd: %s\n", bs_errmsg(&err, rv));
        status = bs_err_exit_code(rv);
        goto out_node;
    }
    snprintf(sock, sizeof sock, "%s/control.sock", o->dir);
    unlink(sock); /* left by a daemon that was killed: we hold the lock */
    uv_loop_init(&d.loop);
    if ((rv = applier_start(&d)) != BS_OK ||
        (rv = open_sockets(&d, &err)) != BS_OK) {
        fprintf(stderr, "branchsyncd: %s\n", bs_errmsg(&err, rv));
        status = bs_err_exit_code(rv);
        goto out_loop;
    }
    uv_timer_init(&d.loop, &d.sweep);
    d.sweep.data = &d;
    uv_timer_start(&d.sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_timer_init(&d.loop, &d.held);
    d.held.data = &d;
    bs_daemon_held_check(&d);
    uv_timer_init(&d.loop, &d.backup);
    d.backup.data = &d;
    bs_daemon_backup_arm(&d);
    bs_daemon_compact_arm(&d);
    uv_signal_init(&d.loop, &d.sigterm);
    uv_signal_init(&d.loop, &d.sigint);
    uv_signal_init(&d.loop, &d.sighup);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sighup, on_signal, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    http_start_loop(&d);
    bs_node_id_format(d.n->meta.pk, id);
    bs_daemon_log(&d, BS_LOG_INFO, "node %s (%s) %s listening on %s",
                  d.n->meta.name, bs_role_name(d.n->meta.role), id,
                  d.n->cfg.listen[0] ? d.n->cfg.listen
                                     : "nothing (outbound only)");
    sd_notifyf(0, "READY=1\nSTATUS=serving %s", d.n->meta.name);
    bs_daemon_pump(&d);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    status = 0;
    http_shutdown(&d);
    /* The worker stops after its batch (committed whole, or not at all);
     * sets still queued are dropped, as a set in flight on the network. */
    bs_applier_free(d.applier);
    d.applier = NULL;
    /* An exchange in flight is abandoned here; its applied sets are
     * committed and the next exchange resumes from the vectors. */
    free_all(&d);
out_loop:
    bs_applier_free(d.applier);
    d.applier = NULL;
    http_shutdown(&d);
    uv_walk(&d.loop, close_walk, NULL);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uv_loop_close(&d.loop);
    bs_zclose(d.listener);
    bs_zclose(d.control);
    unlink(sock);
    bs_zmq_free(d.z);
out_node:
    http_shutdown(&d);
    bs_wipe(d.curve_sk, sizeof d.curve_sk);
    bs_node_close(d.n);
    bs_lock_release(lock); /* last: the next daemon may start now */
    return status;
}
