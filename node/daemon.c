/*
 * daemon.c - branchsyncd's event loop: sockets, sessions, links, timers.
 *
 * Everything runs on the loop thread.  ZeroMQ's descriptors are
 * edge-triggered, so every callback ends in pump(), which keeps reading
 * every socket and flushing every session until a full pass finds nothing
 * to do (DESIGN.md, "ZMQ_FD is edge-triggered").
 */
#include "daemon.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "../replication/peers.h"
#include "../replication/session.h"
#include "../replication/xlog.h"
#include "client.h"
#include "schedule.h"
#include "transport.h"

#define IDLE_MS        30000u /* a session silent this long has failed */
#define BACKOFF_MIN_MS 250u
#define BACKOFF_MAX_MS 300000u
#define SWEEP_MS       1000u

typedef struct daemon daemon_t;

/* A control request waiting for a sync to finish. */
typedef struct waiter {
    uint8_t rid[256];
    size_t rn;
    int next_run; /* asked during a run: answered after the next one */
    struct waiter *next;
} waiter;

/* One paired peer's link: schedule, outbound socket and session. */
typedef struct link {
    daemon_t *d;
    char name[BS_NODE_NAME_MAX + 1];
    char endpoint[BS_ENDPOINT_MAX + 1];
    uint8_t pk[BS_PK_LEN];
    bs_schedule sched;
    int has_sched;
    uv_timer_t timer;
    int timer_init;
    bs_zsock *sock, *mon;
    /* heap-allocated: a closed handle is freed by its close callback,
     * and a reconnect gets fresh ones (libuv forbids re-initialising) */
    uv_poll_t *poll, *mpoll;
    bs_session *s;
    uint8_t *held; /* a message the socket could not take yet */
    size_t hn;
    uint64_t started_ms, last_in_ms, last_run_s, next_run_s;
    unsigned failures;
    int again, gone;
    waiter *waiters;
    struct link *next;
} link_t;

/* An exchange a peer started with us (on the listener). */
typedef struct inbound {
    uint8_t rid[256];
    size_t rn;
    uint8_t pk[BS_PK_LEN]; /* the caller's key, as ZAP admitted it */
    bs_session *s;
    uint64_t started_ms, last_in_ms;
    struct inbound *next;
} inbound;

struct daemon {
    uv_loop_t loop;
    bs_node *n;
    bs_zmq *z;
    const uint8_t *sk;
    uint8_t curve_pk[32], curve_sk[32];
    bs_zsock *listener, *control;
    uv_poll_t lpoll, cpoll, zpoll;
    uv_timer_t sweep;
    uv_signal_t sigterm, sigint, sighup;
    link_t *links;
    inbound *inbound;
    int level, stopping, pumping;
};

/* ---- logging: one line per event on stderr (journald adds the time) ---- */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void BS_PRINTF(3, 4) logf_(daemon_t *d, int level, const char *fmt, ...)
{
    va_list ap;

    if (level > d->level)
        return;
    fprintf(stderr, "branchsyncd: %s: ", level_names[level]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static uint64_t
now_ms(void)
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

static void pump(daemon_t *d);
static void link_run(link_t *l, const char *why);
static void link_schedule(link_t *l);

/* Deliver a message; a failure shows in the session's state. */
static void
feed(bs_session *s, const uint8_t *m, size_t n)
{
    bs_err rv = bs_session_input(s, m, n);

    (void)rv;
}

/* ---- control replies ---- */

static void
control_reply(daemon_t *d, const uint8_t *rid, size_t rn, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    if (s != NULL && bs_zsend(d->control, rid, rn, s, strlen(s)) != BS_OK)
        logf_(d, BS_LOG_WARN, "control: reply dropped");
    free(s);
    json_decref(j);
}

static json_t *
stats_json(const bs_session_stats *st)
{
    return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "ok", 1,
                     "sets_sent", (json_int_t)st->sets_sent, "sets_received",
                     (json_int_t)st->sets_received, "changes",
                     (json_int_t)st->changes_applied, "conflicts",
                     (json_int_t)st->conflicts, "bytes",
                     (json_int_t)(st->bytes_in + st->bytes_out), "refused",
                     (json_int_t)st->refused);
}

/* Answer the waiters of the run that ended (all of them with `all`);
 * returns 1 when some wait for the next run. */
static int
answer_waiters_of(link_t *l, json_t *reply, int all)
{
    waiter *w, *next, *keep = NULL;

    for (w = l->waiters; w != NULL; w = next) {
        next = w->next;
        if (w->next_run && !all) {
            w->next_run = 0;
            w->next = keep;
            keep = w;
            continue;
        }
        control_reply(l->d, w->rid, w->rn, json_incref(reply));
        free(w);
    }
    l->waiters = keep;
    json_decref(reply);
    return keep != NULL;
}

static void
answer_waiters(link_t *l, json_t *reply)
{
    (void)answer_waiters_of(l, reply, 1);
}

/* ---- links ---- */

static void
free_handle(uv_handle_t *h)
{
    free(h);
}

static void
link_close_socket(link_t *l)
{
    if (l->poll != NULL) {
        uv_close((uv_handle_t *)l->poll, free_handle);
        uv_close((uv_handle_t *)l->mpoll, free_handle);
        l->poll = l->mpoll = NULL;
    }
    bs_zclose(l->sock);
    bs_zclose(l->mon);
    l->sock = l->mon = NULL;
    free(l->held);
    l->held = NULL;
}

static void
on_link_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    pump(((link_t *)h->data)->d);
}

static bs_err
link_open_socket(link_t *l, bs_errbuf *err)
{
    uint8_t server[32];
    bs_err rv;

    if (l->sock != NULL)
        return BS_OK;
    if (bs_curve_public(l->pk, server) != BS_OK)
        return bs_errf(err, BS_EINVAL, "unusable key");
    rv = bs_dial(l->d->z, l->endpoint, l->d->curve_pk, l->d->curve_sk, server,
                 &l->sock, &l->mon, err);
    if (rv != BS_OK)
        return rv;
    if ((l->poll = malloc(sizeof *l->poll)) == NULL ||
        (l->mpoll = malloc(sizeof *l->mpoll)) == NULL) {
        free(l->poll);
        l->poll = NULL;
        bs_zclose(l->sock);
        bs_zclose(l->mon);
        l->sock = l->mon = NULL;
        return BS_ENOMEM;
    }
    uv_poll_init(&l->d->loop, l->poll, bs_zfd(l->sock));
    uv_poll_init(&l->d->loop, l->mpoll, bs_zfd(l->mon));
    l->poll->data = l->mpoll->data = l;
    uv_poll_start(l->poll, UV_READABLE, on_link_poll);
    uv_poll_start(l->mpoll, UV_READABLE, on_link_poll);
    return BS_OK;
}

static int
is_online(const link_t *l)
{
    return l->has_sched && l->sched.kind == BS_SCHED_ONLINE;
}

/* Finish the link's session: log it, answer waiters, plan the next run. */
static void
link_end(link_t *l, bs_err rv, const char *error)
{
    daemon_t *d = l->d;
    bs_session_stats copy = {0};
    const bs_session_stats *st = &copy;
    uint64_t ms = now_ms() - l->started_ms;

    /* A copy: the session is freed below, the figures are used after. */
    if (l->s != NULL)
        copy = *bs_session_stats_of(l->s);
    bs_client_log(d->n, l->name, "network", "both", st, l->started_ms,
                  rv == BS_OK ? NULL : error);
    if (rv == BS_OK) {
        if (st->refused > 0)
            logf_(d, BS_LOG_WARN,
                  "exchange peer=%s refused %llu change sets: %s", l->name,
                  (unsigned long long)st->refused, error ? error : "");
        logf_(d, BS_LOG_INFO,
              "exchange peer=%s dir=both sent=%llu received=%llu "
              "changes=%llu conflicts=%llu bytes=%llu ms=%llu result=ok",
              l->name, (unsigned long long)st->sets_sent,
              (unsigned long long)st->sets_received,
              (unsigned long long)st->changes_applied,
              (unsigned long long)st->conflicts,
              (unsigned long long)(st->bytes_in + st->bytes_out),
              (unsigned long long)ms);
        l->failures = 0;
        if (answer_waiters_of(l, stats_json(st), 0))
            l->again = 1;
    } else {
        logf_(d, BS_LOG_WARN, "exchange peer=%s ms=%llu result=error: %s",
              l->name, (unsigned long long)ms, error);
        l->failures++;
        answer_waiters(l, json_pack("{s:b, s:s, s:i}", "ok", 0, "error", error,
                                    "code", bs_err_exit_code(rv)));
        link_close_socket(l); /* a fresh connection next time */
    }
    l->last_run_s = now_ms() / 1000;
    bs_session_free(l->s);
    l->s = NULL;
    /* Changes that arrived may need relaying to the online peers. */
    if (rv == BS_OK && st->changes_applied > 0)
        for (link_t *o = d->links; o != NULL; o = o->next)
            if (o != l && is_online(o))
                link_run(o, "relay");
    if (l->again && rv == BS_OK) {
        l->again = 0;
        link_run(l, "more changes");
        return;
    }
    /* After a failure a waiting write goes with the (short) first retry. */
    l->again = 0;
    link_schedule(l);
}

static void
on_link_timer(uv_timer_t *t)
{
    link_t *l = t->data;

    link_run(l, l->failures ? "retry" : "schedule");
    pump(l->d);
}

static uint64_t
backoff_ms(unsigned failures)
{
    uint64_t ms = BACKOFF_MIN_MS;
    uint32_t jitter;

    for (unsigned i = 1; i < failures && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    bs_crypto_random(&jitter, sizeof jitter);
    return ms / 2 + jitter % (ms / 2 + 1); /* 50% to 100% */
}

/* Arm the link's timer for its next run (or retry). */
static void
link_schedule(link_t *l)
{
    int64_t now = (int64_t)(now_ms() / 1000), next = 0;
    uint64_t delay;

    if (l->gone || l->d->stopping || !l->has_sched)
        return;
    uv_timer_stop(&l->timer);
    l->next_run_s = 0;
    if (l->failures > 0 && l->sched.kind != BS_SCHED_MANUAL) {
        delay = backoff_ms(l->failures);
        l->next_run_s = (uint64_t)now + delay / 1000;
        uv_timer_start(&l->timer, on_link_timer, delay, 0);
        return;
    }
    if (l->sched.kind == BS_SCHED_ONLINE) {
        /* Online links run on events; outside a window, at its opening. */
        if (!bs_schedule_in_window(&l->sched, now)) {
            bs_schedule s2 = l->sched;
            s2.kind = BS_SCHED_EVERY;
            s2.every_s = 60;
            if (bs_schedule_next(&s2, now, 0, &next) == BS_OK) {
                l->next_run_s = (uint64_t)next;
                uv_timer_start(&l->timer, on_link_timer,
                               (uint64_t)(next - now) * 1000, 0);
            }
        }
        return;
    }
    if (bs_schedule_next(&l->sched, now, (int64_t)l->last_run_s, &next) !=
        BS_OK)
        return; /* manual */
    l->next_run_s = (uint64_t)next;
    delay = next > now ? (uint64_t)(next - now) * 1000 : 0;
    uv_timer_start(&l->timer, on_link_timer, delay, 0);
}

/* Start an exchange on the link now (or once the current one ends). */
static void
link_run(link_t *l, const char *why)
{
    daemon_t *d = l->d;
    bs_session_cfg cfg;
    bs_errbuf err = {{0}};
    bs_err rv;

    if (d->stopping || l->gone)
        return;
    if (l->s != NULL) {
        l->again = 1;
        return;
    }
    if (l->has_sched && strcmp(why, "sync") != 0 &&
        !bs_schedule_in_window(&l->sched, (int64_t)(now_ms() / 1000))) {
        logf_(d, BS_LOG_DEBUG, "peer=%s outside its window: not now", l->name);
        link_schedule(l);
        return;
    }
    logf_(d, BS_LOG_DEBUG, "exchange peer=%s starts (%s)", l->name, why);
    l->started_ms = l->last_in_ms = now_ms();
    if ((rv = link_open_socket(l, &err)) != BS_OK) {
        link_end(l, rv, bs_errmsg(&err, rv));
        return;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.store = d->n->store;
    cfg.sk = d->sk;
    cfg.clock = bs_clock_system;
    cfg.max_skew_ms = (uint64_t)d->n->cfg.max_skew_s * 1000;
    cfg.initiator = 1;
    cfg.peer = l->name;
    cfg.authenticated = l->pk;
    if ((rv = bs_session_new(&cfg, &l->s)) != BS_OK) {
        link_end(l, rv, "out of memory");
        return;
    }
    if (bs_session_start(l->s) != BS_OK)
        link_end(l, bs_session_errcode(l->s), bs_session_error(l->s));
}

static void
link_free(link_t *l)
{
    link_close_socket(l);
    bs_session_free(l->s);
    answer_waiters(l, json_pack("{s:b, s:s, s:i}", "ok", 0, "error",
                                "the daemon is stopping or the peer was "
                                "removed",
                                "code", 1));
    free(l);
}

static void
on_timer_closed(uv_handle_t *h)
{
    link_free(h->data);
}

static void
link_destroy(link_t *l)
{
    l->gone = 1;
    if (l->timer_init) {
        uv_timer_stop(&l->timer);
        uv_close((uv_handle_t *)&l->timer, on_timer_closed);
    } else {
        link_free(l);
    }
}

/* ---- loading peers: links and the ZAP allow-list ---- */

static link_t *
find_link(daemon_t *d, const char *name)
{
    for (link_t *l = d->links; l != NULL; l = l->next)
        if (strcmp(l->name, name) == 0)
            return l;
    return NULL;
}

static void
apply_peer(daemon_t *d, const bs_peer *p)
{
    link_t *l = find_link(d, p->name);
    bs_schedule sch;
    int changed;

    if (l == NULL) {
        if ((l = calloc(1, sizeof *l)) == NULL)
            return;
        l->d = d;
        snprintf(l->name, sizeof l->name, "%s", p->name);
        uv_timer_init(&d->loop, &l->timer);
        l->timer.data = l;
        l->timer_init = 1;
        l->next = d->links;
        d->links = l;
        l->last_run_s = p->last_ok_ms / 1000;
    }
    changed = strcmp(l->endpoint, p->endpoint) != 0 ||
              memcmp(l->pk, p->pk, BS_PK_LEN) != 0;
    if (changed && l->s == NULL)
        link_close_socket(l);
    snprintf(l->endpoint, sizeof l->endpoint, "%s", p->endpoint);
    memcpy(l->pk, p->pk, BS_PK_LEN);
    l->has_sched = bs_schedule_parse(&sch, p->schedule, NULL) == BS_OK;
    if (l->has_sched && p->window[0] &&
        bs_schedule_parse_window(&sch, p->window, NULL) != BS_OK)
        l->has_sched = 0;
    if (l->has_sched)
        l->sched = sch;
    else
        logf_(d, BS_LOG_WARN, "peer=%s bad schedule \"%s\": manual", p->name,
              p->schedule);
    link_schedule(l);
    if (is_online(l) && l->s == NULL)
        link_run(l, "online");
}

static bs_err
load_peers(daemon_t *d, bs_errbuf *err)
{
    bs_peer *v = NULL;
    size_t n = 0;
    bs_allowed *allow;
    bs_txn *t;
    link_t **pl;
    bs_err rv;

    if ((rv = bs_store_read(d->n->store, &t, err)) != BS_OK)
        return rv;
    rv = bs_peer_list(t, &v, &n);
    bs_txn_abort(t);
    if (rv != BS_OK)
        return rv;
    if ((allow = calloc(n + 1, sizeof *allow)) == NULL) {
        bs_peer_list_free(v, n);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(allow[i].ed_pk, v[i].pk, BS_PK_LEN);
        snprintf(allow[i].name, sizeof allow[i].name, "%s", v[i].name);
        if (bs_curve_public(v[i].pk, allow[i].curve_pk) != BS_OK)
            memset(allow[i].curve_pk, 0, 32);
    }
    rv = bs_zap_allow(d->z, allow, n);
    free(allow);
    /* Links of removed peers go away. */
    for (pl = &d->links; *pl != NULL;) {
        link_t *l = *pl;
        int found = 0;
        for (size_t i = 0; i < n; i++)
            found |= strcmp(v[i].name, l->name) == 0;
        if (found) {
            pl = &l->next;
        } else {
            *pl = l->next;
            link_destroy(l);
        }
    }
    for (size_t i = 0; i < n; i++)
        apply_peer(d, &v[i]);
    bs_peer_list_free(v, n);
    return rv;
}

/* ---- inbound sessions (a peer called us) ---- */

static inbound *
find_inbound(daemon_t *d, const uint8_t *rid, size_t rn)
{
    for (inbound *i = d->inbound; i != NULL; i = i->next)
        if (i->rn == rn && memcmp(i->rid, rid, rn) == 0)
            return i;
    return NULL;
}

static void
inbound_end(daemon_t *d, inbound *in)
{
    inbound **pp;
    const bs_session_stats *st = bs_session_stats_of(in->s);
    int ok = bs_session_state_of(in->s) == BS_SESSION_COMPLETE;
    const char *peer = bs_session_peer(in->s);

    if (ok)
        logf_(d, BS_LOG_INFO,
              "exchange peer=%s dir=both (they called) sent=%llu "
              "received=%llu changes=%llu conflicts=%llu ms=%llu result=ok",
              peer, (unsigned long long)st->sets_sent,
              (unsigned long long)st->sets_received,
              (unsigned long long)st->changes_applied,
              (unsigned long long)st->conflicts,
              (unsigned long long)(now_ms() - in->started_ms));
    else
        logf_(d, BS_LOG_WARN, "exchange peer=%s (they called) result=error: %s",
              peer[0] ? peer : "?", bs_session_error(in->s));
    if (peer[0])
        bs_client_log(d->n, peer, "network", "both", st, in->started_ms,
                      ok ? NULL : bs_session_error(in->s));
    if (ok && st->changes_applied > 0)
        for (link_t *o = d->links; o != NULL; o = o->next)
            if (is_online(o) && strcmp(o->name, peer) != 0)
                link_run(o, "relay");
    for (pp = &d->inbound; *pp != in; pp = &(*pp)->next)
        ;
    *pp = in->next;
    bs_session_free(in->s);
    free(in);
}

static void
on_listener_msg(daemon_t *d, bs_zin *m)
{
    inbound *in = find_inbound(d, m->rid, m->rn);
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
            logf_(d, BS_LOG_WARN, "hello from an unknown peer \"%s\"", m->user);
            return;
        }
        if ((in = calloc(1, sizeof *in)) == NULL) {
            bs_peer_fini(&p);
            return;
        }
        memcpy(in->rid, m->rid, m->rn);
        in->rn = m->rn;
        in->started_ms = now_ms();
        memset(&cfg, 0, sizeof cfg);
        cfg.store = d->n->store;
        cfg.sk = d->sk;
        cfg.clock = bs_clock_system;
        cfg.max_skew_ms = (uint64_t)d->n->cfg.max_skew_s * 1000;
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
    }
    in->last_in_ms = now_ms();
    feed(in->s, m->msg, m->n);
}

/* ---- control requests ---- */

static void
on_control_msg(daemon_t *d, bs_zin *m)
{
    json_t *j = json_loadb((const char *)m->msg, m->n, 0, NULL);
    const char *cmd = json_string_value(json_object_get(j, "cmd"));
    bs_errbuf err = {{0}};

    if (cmd == NULL) {
        control_reply(
            d, m->rid, m->rn,
            json_pack("{s:b, s:s}", "ok", 0, "error", "bad control request"));
    } else if (strcmp(cmd, "ping") == 0) {
        control_reply(d, m->rid, m->rn,
                      json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid()));
    } else if (strcmp(cmd, "reload") == 0) {
        bs_err rv = load_peers(d, &err);
        logf_(d, BS_LOG_INFO, "peers reloaded%s%s", rv ? ": " : "",
              rv ? bs_errmsg(&err, rv) : "");
        control_reply(d, m->rid, m->rn, json_pack("{s:b}", "ok", rv == BS_OK));
    } else if (strcmp(cmd, "changed") == 0) {
        /* Answer first: the writer need not wait for the exchange. */
        control_reply(d, m->rid, m->rn, json_pack("{s:b}", "ok", 1));
        for (link_t *l = d->links; l != NULL; l = l->next)
            if (is_online(l))
                link_run(l, "local write");
    } else if (strcmp(cmd, "sync") == 0) {
        const char *peer = json_string_value(json_object_get(j, "peer"));
        link_t *l = peer ? find_link(d, peer) : NULL;
        waiter *w;
        if (l == NULL) {
            control_reply(d, m->rid, m->rn,
                          json_pack("{s:b, s:s, s:i}", "ok", 0, "error",
                                    "unknown peer", "code", 2));
        } else if ((w = calloc(1, sizeof *w)) != NULL) {
            memcpy(w->rid, m->rid, m->rn);
            w->rn = m->rn;
            w->next_run = l->s != NULL;
            w->next = l->waiters;
            l->waiters = w;
            /* A running exchange may have started before the request:
             * run once more after it, so the caller sees its changes. */
            link_run(l, "sync");
        }
    } else if (strcmp(cmd, "status") == 0) {
        json_t *arr = json_array();
        for (link_t *l = d->links; l != NULL; l = l->next)
            json_array_append_new(arr, json_pack("{s:s, s:I, s:b, s:i}", "peer",
                                                 l->name, "next_run_s",
                                                 (json_int_t)l->next_run_s,
                                                 "running", l->s != NULL,
                                                 "failures", (int)l->failures));
        control_reply(d, m->rid, m->rn,
                      json_pack("{s:b, s:o}", "ok", 1, "links", arr));
    } else {
        control_reply(d, m->rid, m->rn,
                      json_pack("{s:b, s:s}", "ok", 0, "error",
                                "unknown control command"));
    }
    json_decref(j);
}

/* ---- the pump ---- */

/* Send what the session has; 1 if anything moved.  A send error shows up
 * as the peer's silence (the idle timeout ends the session). */
static int
flush_session(bs_zsock *sock, const uint8_t *rid, size_t rn, bs_session *s,
              uint8_t **held, size_t *hn)
{
    int moved = 0;
    bs_err rv = bs_client_flush(s, sock, rid, rn, held, hn, &moved);

    (void)rv;
    return moved;
}

static int
pump_links(daemon_t *d)
{
    int work = 0;

    for (link_t *l = d->links; l != NULL; l = l->next) {
        int auth = 0, conn = 0, disc = 0;
        bs_zin in;

        if (l->mon != NULL)
            while (bs_monitor_event(l->mon, &auth, &conn, &disc))
                work = 1;
        if (l->s != NULL && auth) {
            link_end(l, BS_EUNREACHABLE,
                     "the peer refused the connection: this node is not "
                     "paired there, or its ID differs");
            work = 1;
            continue;
        }
        if (conn && is_online(l) && l->s == NULL)
            link_run(l, "connected");
        while (l->sock != NULL && bs_zrecv(l->sock, 0, &in) == BS_OK) {
            work = 1;
            l->last_in_ms = now_ms();
            if (l->s != NULL)
                feed(l->s, in.msg, in.n);
            free(in.msg);
        }
        if (l->s == NULL)
            continue;
        work |= flush_session(l->sock, NULL, 0, l->s, &l->held, &l->hn);
        if (bs_session_state_of(l->s) == BS_SESSION_COMPLETE) {
            char why[BS_ERRMSG_LEN];
            snprintf(why, sizeof why, "%s", bs_session_error(l->s));
            link_end(l, BS_OK, why[0] ? why : NULL);
            work = 1;
        } else if (bs_session_state_of(l->s) == BS_SESSION_FAILED) {
            char why[BS_ERRMSG_LEN];
            snprintf(why, sizeof why, "%s", bs_session_error(l->s));
            link_end(l, bs_session_errcode(l->s), why);
            work = 1;
        }
    }
    return work;
}

static int
pump_inbound(daemon_t *d)
{
    int work = 0;
    bs_zin m;

    while (d->listener && bs_zrecv(d->listener, 1, &m) == BS_OK) {
        work = 1;
        on_listener_msg(d, &m);
        free(m.msg);
    }
    for (inbound *in = d->inbound, *next; in != NULL; in = next) {
        uint8_t *held = NULL;
        size_t hn = 0;

        next = in->next;
        work |= flush_session(d->listener, in->rid, in->rn, in->s, &held, &hn);
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
    logf_(ctx, BS_LOG_WARN, "%s", why);
}

static void
pump(daemon_t *d)
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
            on_control_msg(d, &m);
            free(m.msg);
        }
        work |= pump_inbound(d);
        work |= pump_links(d);
    } while (work);
    d->pumping = 0;
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    pump(h->data);
}

/* Fail sessions that went silent. */
static void
on_sweep(uv_timer_t *t)
{
    daemon_t *d = t->data;
    uint64_t now = now_ms();

    for (link_t *l = d->links; l != NULL; l = l->next)
        if (l->s != NULL && now - l->last_in_ms > IDLE_MS) {
            char why[BS_ENDPOINT_MAX + BS_NODE_NAME_MAX + 64];
            snprintf(why, sizeof why, "peer %s at %s did not answer for %u s",
                     l->name, l->endpoint, IDLE_MS / 1000);
            link_end(l, BS_EUNREACHABLE, why);
        }
    for (inbound *in = d->inbound, *next; in != NULL; in = next) {
        next = in->next;
        if (now - in->last_in_ms > IDLE_MS) {
            logf_(d, BS_LOG_WARN, "exchange peer=%s: silent, abandoned",
                  bs_session_peer(in->s));
            inbound **pp;
            for (pp = &d->inbound; *pp != in; pp = &(*pp)->next)
                ;
            *pp = in->next;
            bs_session_free(in->s);
            free(in);
        }
    }
    pump(d);
}

/* ---- signals and lifetime ---- */

static void
stop(daemon_t *d, const char *why)
{
    if (d->stopping)
        return;
    d->stopping = 1;
    logf_(d, BS_LOG_INFO, "stopping (%s)", why);
    sd_notify(0, "STOPPING=1");
    uv_stop(&d->loop);
}

static void
on_signal(uv_signal_t *h, int signum)
{
    daemon_t *d = h->data;

    if (signum == SIGHUP) {
        bs_config cfg;
        bs_errbuf err = {{0}};
        if (bs_config_load(d->n->dir, &cfg, &err) != BS_OK) {
            logf_(d, BS_LOG_ERROR, "SIGHUP: %s (keeping the old settings)",
                  err.msg);
            return;
        }
        d->n->cfg.max_skew_s = cfg.max_skew_s;
        d->n->cfg.retention_days = cfg.retention_days;
        d->level = parse_level(cfg.log_level);
        if (strcmp(cfg.listen, d->n->cfg.listen) != 0)
            logf_(d, BS_LOG_WARN,
                  "SIGHUP: a new listen address takes effect "
                  "at the next start");
        logf_(d, BS_LOG_INFO, "configuration re-read (log level %s)",
              level_names[d->level]);
        if (load_peers(d, &err) != BS_OK)
            logf_(d, BS_LOG_ERROR, "reload peers: %s", err.msg);
        pump(d);
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
open_sockets(daemon_t *d, bs_errbuf *err)
{
    bs_err rv;

    /* ZAP first: a CURVE listener without a handler admits anyone (P19). */
    if ((rv = bs_zap_start(d->z, err)) != BS_OK ||
        (rv = load_peers(d, err)) != BS_OK)
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
free_all(daemon_t *d)
{
    while (d->links) {
        link_t *l = d->links;
        d->links = l->next;
        link_close_socket(l); /* its poll handles close (and free) first */
        link_destroy(l);
    }
    while (d->inbound) {
        inbound *in = d->inbound;
        d->inbound = in->next;
        bs_session_free(in->s);
        free(in);
    }
}

int
bs_daemon_run(const bs_daemon_opts *o)
{
    daemon_t d;
    bs_errbuf err = {{0}};
    char id[BS_NODE_ID_LEN + 1], sock[4200];
    bs_err rv;
    int status = 1;

    memset(&d, 0, sizeof d);
    harden();
    if ((rv = bs_crypto_init()) != BS_OK) {
        fprintf(stderr, "branchsyncd: cannot initialise libsodium\n");
        return 1;
    }
    if ((rv = bs_node_open(o->dir, 0, &d.n, &err)) != BS_OK) {
        fprintf(stderr, "branchsyncd: %s\n", bs_errmsg(&err, rv));
        return bs_err_exit_code(rv);
    }
    d.level =
        o->log_level >= 0 ? o->log_level : parse_level(d.n->cfg.log_level);
    {
        /* The control socket lives in DIR: only its owner may reach it. */
        struct stat st;
        if (stat(o->dir, &st) != 0 || (st.st_mode & 077) != 0) {
            fprintf(stderr,
                    "branchsyncd: %s must be accessible to its owner only "
                    "(chmod 700 %s): it holds the control socket\n",
                    o->dir, o->dir);
            status = 2;
            goto out_node;
        }
    }
    if ((rv = bs_node_secret(d.n, &d.sk, &err)) != BS_OK ||
        (rv = bs_node_curve(d.n, d.curve_pk, d.curve_sk, &err)) != BS_OK ||
        (rv = bs_zmq_new(&d.z, &err)) != BS_OK) {
        fprintf(stderr, "branchsyncd: %s\n", bs_errmsg(&err, rv));
        status = bs_err_exit_code(rv);
        goto out_node;
    }
    snprintf(sock, sizeof sock, "%s/control.sock", o->dir);
    unlink(sock); /* left by a daemon that was killed */
    uv_loop_init(&d.loop);
    if ((rv = open_sockets(&d, &err)) != BS_OK) {
        fprintf(stderr, "branchsyncd: %s\n", bs_errmsg(&err, rv));
        status = bs_err_exit_code(rv);
        goto out_loop;
    }
    uv_timer_init(&d.loop, &d.sweep);
    d.sweep.data = &d;
    uv_timer_start(&d.sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_signal_init(&d.loop, &d.sigterm);
    uv_signal_init(&d.loop, &d.sigint);
    uv_signal_init(&d.loop, &d.sighup);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sighup, on_signal, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    bs_node_id_format(d.n->meta.pk, id);
    logf_(&d, BS_LOG_INFO, "node %s (%s) %s listening on %s", d.n->meta.name,
          bs_role_name(d.n->meta.role), id,
          d.n->cfg.listen[0] ? d.n->cfg.listen : "nothing (outbound only)");
    sd_notifyf(0, "READY=1\nSTATUS=serving %s", d.n->meta.name);
    pump(&d);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    status = 0;
    /* An exchange in flight is abandoned here; its applied sets are
     * committed and the next exchange resumes from the vectors. */
    free_all(&d);
out_loop:
    uv_walk(&d.loop, close_walk, NULL);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uv_loop_close(&d.loop);
    bs_zclose(d.listener);
    bs_zclose(d.control);
    unlink(sock);
    bs_zmq_free(d.z);
out_node:
    bs_wipe(d.curve_sk, sizeof d.curve_sk);
    bs_node_close(d.n);
    return status;
}
