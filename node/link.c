/*
 * link.c - branchsyncd's links: one per paired peer, each with its
 * schedule, its outbound DEALER socket (and monitor) and at most one
 * exchange at a time.
 *
 * A link owns when its exchanges run (the schedule, a window, events for
 * `online` links, capped and jittered exponential backoff after a
 * failure), the outbound session itself, and the control requests that
 * wait for its next exchange to end (waiters).  It is created, updated and
 * removed from the peers table (bs_link_reload).  Loop thread only; the
 * shared state is in daemon_int.h.
 */
#include "daemon_int.h"

#include <string.h>

#include "../replication/peers.h"
#include "client.h"
#include "dropdir.h"
#include "schedule.h"

#define BACKOFF_MIN_MS 250u
#define BACKOFF_MAX_MS 300000u
#define BUSY_MAX_MS    30000u /* the longest wait after "busy" answers */
#define RECONNECT_MS   1000u  /* an online link back up waits up to this */

/* A control request waiting for a sync to finish. */
typedef struct bs_waiter {
    uint8_t rid[256];
    size_t rn;
    int next_run; /* asked during a run: answered after the next one */
    struct bs_waiter *next;
} bs_waiter;

/* One paired peer's link: schedule, outbound socket and session. */
struct bs_link {
    bs_daemon *d;
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
    uint64_t sid;  /* s's id (bs_daemon_sid) */
    unsigned busy; /* "busy" answers in a row (link_busy) */
    uint8_t *held; /* a message the socket could not take yet */
    size_t hn;
    uint64_t started_ms, last_in_ms, last_run_s, next_run_s;
    uint64_t retry_ms; /* the backoff delay last planned */
    unsigned failures;
    int again, gone;
    int connected; /* the socket's connection is up (its monitor says) */
    bs_waiter *waiters;
    struct bs_link *next;
};

static void link_run(bs_link *l, const char *why);
static void link_schedule(bs_link *l);
static uint64_t backoff_ms(unsigned failures);
static void on_bs_linkimer(uv_timer_t *t);

/* ---- waiters: control requests answered when an exchange ends ---- */

static json_t *
stats_json(const bs_session_stats *st, const char *problem)
{
    return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "ok", 1,
                     "sets_sent", (json_int_t)st->sets_sent, "sets_received",
                     (json_int_t)st->sets_received, "changes",
                     (json_int_t)st->changes_applied, "conflicts",
                     (json_int_t)st->conflicts, "bytes",
                     (json_int_t)(st->bytes_in + st->bytes_out), "refused",
                     (json_int_t)st->refused, "held_there",
                     (json_int_t)st->held_there, "problem", problem);
}

/* Answer the waiters of the run that ended (all of them with `all`);
 * returns 1 when some wait for the next run. */
static int
answer_waiters_of(bs_link *l, json_t *reply, int all)
{
    bs_waiter *w, *next, *keep = NULL;

    for (w = l->waiters; w != NULL; w = next) {
        next = w->next;
        if (w->next_run && !all) {
            w->next_run = 0;
            w->next = keep;
            keep = w;
            continue;
        }
        bs_control_reply(l->d, w->rid, w->rn, json_incref(reply));
        free(w);
    }
    l->waiters = keep;
    json_decref(reply);
    return keep != NULL;
}

static void
answer_waiters(bs_link *l, json_t *reply)
{
    (void)answer_waiters_of(l, reply, 1);
}

/* ---- one link ---- */

static void
free_handle(uv_handle_t *h)
{
    free(h);
}

static void
link_close_socket(bs_link *l)
{
    if (l->poll != NULL) {
        uv_close((uv_handle_t *)l->poll, free_handle);
        uv_close((uv_handle_t *)l->mpoll, free_handle);
        l->poll = l->mpoll = NULL;
    }
    bs_zclose(l->sock);
    bs_zclose(l->mon);
    l->sock = l->mon = NULL;
    l->connected = 0;
    free(l->held);
    l->held = NULL;
}

static void
on_link_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    bs_daemon_pump(((bs_link *)h->data)->d);
}

static bs_err
link_open_socket(bs_link *l, bs_errbuf *err)
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
is_online(const bs_link *l)
{
    return l->has_sched && l->sched.kind == BS_SCHED_ONLINE;
}

/*
 * The peer runs as many exchanges as it takes ([sync] max_sessions) and
 * told us to retry later (daemon.c refuse_busy).  Not a failure: nothing
 * is logged above debug, the waiters wait on (for the exchange that runs
 * next), and the link runs again after the delay the peer named, or the
 * backoff of the busy answers in a row if longer (jittered; at most
 * BUSY_MAX_MS), so that a thousand branches back at once come in spread
 * out rather than as a storm.
 */
static void
link_busy(bs_link *l, const char *error)
{
    const char *p = strstr(error, "retry in ");
    uint64_t delay = backoff_ms(++l->busy);
    double hint;

    if (p != NULL && sscanf(p + 9, "%lf", &hint) == 1 && hint > 0 &&
        hint * 1000 > (double)delay)
        delay = (uint64_t)(hint * 1000);
    if (delay > BUSY_MAX_MS)
        delay = BUSY_MAX_MS;
    for (bs_waiter *w = l->waiters; w != NULL; w = w->next)
        w->next_run = 0; /* the run they wait for has not happened */
    bs_session_free(l->s);
    l->s = NULL;
    l->retry_ms = delay;
    l->next_run_s = bs_daemon_now_ms() / 1000 + delay / 1000;
    uv_timer_stop(&l->timer);
    uv_timer_start(&l->timer, on_bs_linkimer, delay, 0);
    bs_daemon_log(l->d, BS_LOG_DEBUG, "exchange peer=%s: %s (answer %u)",
                  l->name, error, l->busy);
}

/* Finish the link's session: log it, answer waiters, plan the next run. */
static void
link_end(bs_link *l, bs_err rv, const char *error)
{
    bs_daemon *d = l->d;
    bs_session_stats copy = {0};
    const bs_session_stats *st = &copy;
    uint64_t ms = bs_daemon_now_ms() - l->started_ms;
    char problem[BS_ERRMSG_LEN] = "";

    if (rv == BS_EBUSY && error != NULL &&
        strncmp(error, "peer refused: busy", 18) == 0) {
        link_busy(l, error);
        return;
    }
    l->busy = 0;
    /* A copy: the session is freed below, the figures are used after. */
    if (l->s != NULL) {
        copy = *bs_session_stats_of(l->s);
        if (rv == BS_OK)
            bs_client_problem(&copy, l->name, bs_session_refused_reason(l->s),
                              &d->n->cfg, problem, sizeof problem);
    }
    bs_metrics_exchange(&d->metrics, l->name, rv == BS_OK, ms * 1000);
    bs_client_log(d->n, l->name, "network", "both", st, l->started_ms,
                  rv != BS_OK  ? error
                  : problem[0] ? problem
                               : NULL);
    if (rv == BS_OK) {
        bs_daemon_log(
            d, problem[0] ? BS_LOG_WARN : BS_LOG_INFO,
            "exchange peer=%s dir=both sent=%llu received=%llu "
            "changes=%llu conflicts=%llu bytes=%llu ms=%llu result=%s%s",
            l->name, (unsigned long long)st->sets_sent,
            (unsigned long long)st->sets_received,
            (unsigned long long)st->changes_applied,
            (unsigned long long)st->conflicts,
            (unsigned long long)(st->bytes_in + st->bytes_out),
            (unsigned long long)ms, problem[0] ? "problem: " : "ok", problem);
        l->failures = 0;
        if (answer_waiters_of(l, stats_json(st, problem), 0))
            l->again = 1;
    } else {
        l->failures++;
        answer_waiters(l, json_pack("{s:b, s:s, s:i}", "ok", 0, "error", error,
                                    "code", bs_err_exit_code(rv)));
        link_close_socket(l); /* a fresh connection next time */
    }
    l->last_run_s = bs_daemon_now_ms() / 1000;
    bs_session_free(l->s);
    l->s = NULL;
    bs_daemon_held_check(d); /* sets held by this exchange: when to retry */
    /* Changes that arrived may need relaying to the online peers. */
    if (rv == BS_OK && st->changes_applied > 0)
        bs_link_push(d, l->name, "relay");
    if (l->again && rv == BS_OK) {
        l->again = 0;
        link_run(l, "more changes");
        return;
    }
    /* After a failure a waiting write goes with the (short) first retry. */
    l->again = 0;
    l->retry_ms = 0;
    link_schedule(l);
    if (rv != BS_OK && l->retry_ms > 0)
        bs_daemon_log(d, BS_LOG_WARN,
                      "exchange peer=%s ms=%llu result=error: %s; attempt %u "
                      "failed, next in %.1f s",
                      l->name, (unsigned long long)ms, error, l->failures,
                      (double)l->retry_ms / 1000);
    else if (rv != BS_OK)
        bs_daemon_log(d, BS_LOG_WARN,
                      "exchange peer=%s ms=%llu result=error: %s", l->name,
                      (unsigned long long)ms, error);
}

static void
on_bs_linkimer(uv_timer_t *t)
{
    bs_link *l = t->data;

    /* After "busy", the run that was refused (a `sync` waits for it). */
    link_run(l, l->busy ? "sync" : l->failures ? "retry" : "schedule");
    bs_daemon_pump(l->d);
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
link_schedule(bs_link *l)
{
    int64_t now = (int64_t)(bs_daemon_now_ms() / 1000), next = 0;
    uint64_t delay;

    if (l->gone || l->d->stopping || !l->has_sched)
        return;
    if (l->busy > 0 && l->s == NULL)
        return; /* the retry after "busy" is armed (link_busy) */
    uv_timer_stop(&l->timer);
    l->next_run_s = 0;
    if (l->failures > 0 && l->sched.kind != BS_SCHED_MANUAL) {
        delay = backoff_ms(l->failures);
        l->retry_ms = delay;
        l->next_run_s = (uint64_t)now + delay / 1000;
        uv_timer_start(&l->timer, on_bs_linkimer, delay, 0);
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
                uv_timer_start(&l->timer, on_bs_linkimer,
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
    uv_timer_start(&l->timer, on_bs_linkimer, delay, 0);
}

/* A folder peer's run (dropdir.h): synchronous, local files only. */
static void
link_run_folder(bs_link *l)
{
    bs_daemon *d = l->d;
    bs_errbuf err = {{0}};
    bs_drop_stats st;
    bs_core core;
    bs_err rv;

    if ((rv = bs_node_core(d->n, 1, &core, &err)) == BS_OK)
        rv = bs_drop_run(d->n, &core, l->name, &st, &err);
    l->last_run_s = bs_daemon_now_ms() / 1000;
    if (rv != BS_OK) {
        l->failures++;
        bs_daemon_log(d, BS_LOG_WARN,
                      "exchange peer=%s via=folder "
                      "result=error: %s",
                      l->name, bs_errmsg(&err, rv));
        answer_waiters(l, json_pack("{s:b, s:s, s:i}", "ok", 0, "error",
                                    bs_errmsg(&err, rv), "code",
                                    bs_err_exit_code(rv)));
    } else {
        const char *problem = st.problem;
        bs_session_stats ss = {0};
        l->failures = 0;
        bs_daemon_log(d,
                      problem[0]                            ? BS_LOG_WARN
                      : st.files_in == 0 && !st.file_out[0] ? BS_LOG_DEBUG
                                                            : BS_LOG_INFO,
                      "exchange peer=%s via=folder files_in=%llu "
                      "refused=%llu sent=%llu received=%llu changes=%llu "
                      "wrote=%s",
                      l->name, (unsigned long long)st.files_in,
                      (unsigned long long)st.files_refused,
                      (unsigned long long)st.sets_sent,
                      (unsigned long long)st.sets_received,
                      (unsigned long long)st.changes,
                      st.file_out[0] ? st.file_out : "-");
        ss.sets_sent = st.sets_sent;
        ss.sets_received = st.sets_received;
        ss.changes_applied = st.changes;
        ss.conflicts = st.conflicts;
        ss.bytes_out = st.bytes_out;
        json_t *reply = stats_json(&ss, problem);
        json_object_set_new(reply, "files_in",
                            json_integer((json_int_t)st.files_in));
        json_object_set_new(reply, "files_refused",
                            json_integer((json_int_t)st.files_refused));
        json_object_set_new(reply, "file_out", json_string(st.file_out));
        answer_waiters(l, reply);
        bs_daemon_held_check(d);
        if (st.changes > 0)
            bs_link_push(d, l->name, "relay");
    }
    link_schedule(l);
}

/* Start an exchange on the link now (or once the current one ends). */
static void
link_run(bs_link *l, const char *why)
{
    bs_daemon *d = l->d;
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
        !bs_schedule_in_window(&l->sched,
                               (int64_t)(bs_daemon_now_ms() / 1000))) {
        bs_daemon_log(d, BS_LOG_DEBUG, "peer=%s outside its window: not now",
                      l->name);
        link_schedule(l);
        return;
    }
    bs_daemon_log(d, BS_LOG_DEBUG, "exchange peer=%s starts (%s)", l->name,
                  why);
    if (bs_endpoint_folder(l->endpoint) != NULL) {
        link_run_folder(l);
        return;
    }
    l->started_ms = l->last_in_ms = bs_daemon_now_ms();
    if ((rv = link_open_socket(l, &err)) != BS_OK) {
        link_end(l, rv, bs_errmsg(&err, rv));
        return;
    }
    cfg = bs_daemon_session_cfg(d);
    l->sid = bs_daemon_sid(d);
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
link_free(bs_link *l)
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
link_destroy(bs_link *l)
{
    l->gone = 1;
    if (l->timer_init) {
        uv_timer_stop(&l->timer);
        uv_close((uv_handle_t *)&l->timer, on_timer_closed);
    } else {
        link_free(l);
    }
}

/* ---- the peers table: links and the ZAP allow-list ---- */

static bs_link *
find_link(bs_daemon *d, const char *name)
{
    for (bs_link *l = d->links; l != NULL; l = l->next)
        if (strcmp(l->name, name) == 0)
            return l;
    return NULL;
}

static void
apply_peer(bs_daemon *d, const bs_peer *p)
{
    bs_link *l = find_link(d, p->name);
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
        bs_daemon_log(d, BS_LOG_WARN, "peer=%s bad schedule \"%s\": manual",
                      p->name, p->schedule);
    link_schedule(l);
    if (is_online(l) && l->s == NULL)
        link_run(l, "online");
}

bs_err
bs_link_reload(bs_daemon *d, bs_errbuf *err)
{
    bs_peer *v = NULL;
    size_t n = 0;
    bs_allowed *allow;
    bs_txn *t;
    bs_link **pl;
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
        bs_link *l = *pl;
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

/* ---- the pump and the idle sweep ---- */

int
bs_link_pump(bs_daemon *d)
{
    int work = 0;

    for (bs_link *l = d->links; l != NULL; l = l->next) {
        int auth = 0, conn = 0, disc = 0;
        bs_zin in;

        if (l->mon != NULL)
            while (bs_monitor_event(l->mon, &auth, &conn, &disc))
                work = 1;
        if (disc)
            l->connected = 0;
        if (conn)
            l->connected = 1;
        if (l->s != NULL && auth) {
            link_end(l, BS_EUNREACHABLE,
                     "the peer refused the connection: this node is not "
                     "paired there, or its ID differs");
            work = 1;
            continue;
        }
        if (conn && is_online(l) && l->s == NULL && !l->busy) {
            /* Back up (a hub restarted, say): every branch's link comes
             * up at the same moment, so each waits a random part of
             * RECONNECT_MS before its exchange, spreading the HELLOs. */
            uint32_t r;
            bs_crypto_random(&r, sizeof r);
            uv_timer_stop(&l->timer);
            uv_timer_start(&l->timer, on_bs_linkimer, r % RECONNECT_MS, 0);
        }
        while (l->sock != NULL && bs_zrecv(l->sock, 0, &in) == BS_OK) {
            work = 1;
            l->connected = 1;
            l->last_in_ms = bs_daemon_now_ms();
            if (l->s != NULL)
                bs_daemon_feed(d, l->s, l->sid, in.msg, in.n);
            free(in.msg);
        }
        if (l->s == NULL)
            continue;
        work |= bs_daemon_flush(d, l->sock, NULL, 0, l->s, &l->held, &l->hn);
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

void
bs_link_sweep(bs_daemon *d, uint64_t now)
{
    uint64_t connect_ms = (uint64_t)d->n->cfg.connect_timeout_s * 1000;

    for (bs_link *l = d->links; l != NULL; l = l->next) {
        char why[BS_ENDPOINT_MAX + BS_NODE_NAME_MAX + 128];

        if (l->s == NULL)
            continue;
        if (!l->connected && now - l->started_ms > connect_ms) {
            /* Nothing answered at the address: say so now, not after the
             * idle limit, and retry with the backoff. */
            snprintf(why, sizeof why,
                     "cannot connect to %s at %s: nothing answered within %u "
                     "s",
                     l->name, l->endpoint, d->n->cfg.connect_timeout_s);
            link_end(l, BS_EUNREACHABLE, why);
        } else if (now - l->last_in_ms > BS_DAEMON_IDLE_MS) {
            snprintf(why, sizeof why, "peer %s at %s did not answer for %u s",
                     l->name, l->endpoint, BS_DAEMON_IDLE_MS / 1000);
            link_end(l, BS_EUNREACHABLE, why);
        }
    }
}

void
bs_link_free_all(bs_daemon *d)
{
    while (d->links) {
        bs_link *l = d->links;
        d->links = l->next;
        link_close_socket(l); /* its poll handles close (and free) first */
        link_destroy(l);
    }
}

/* ---- what the control socket asks of the links ---- */

void
bs_link_push(bs_daemon *d, const char *except, const char *why)
{
    for (bs_link *o = d->links; o != NULL; o = o->next)
        if (is_online(o) && (except == NULL || strcmp(o->name, except) != 0))
            link_run(o, why);
}

bs_err
bs_link_sync(bs_daemon *d, const char *peer, const uint8_t *rid, size_t rn)
{
    bs_link *l = find_link(d, peer);
    bs_waiter *w;

    BS_ASSERT(rn <= sizeof w->rid);
    if (l == NULL)
        return BS_ENOTFOUND;
    if ((w = calloc(1, sizeof *w)) == NULL)
        return BS_ENOMEM;
    memcpy(w->rid, rid, rn);
    w->rn = rn;
    w->next_run = l->s != NULL;
    w->next = l->waiters;
    l->waiters = w;
    /* A running exchange may have started before the request: run once
     * more after it, so the caller sees its changes. */
    link_run(l, "sync");
    return BS_OK;
}

bs_session *
bs_link_session(bs_daemon *d, uint64_t sid)
{
    for (bs_link *l = d->links; l != NULL; l = l->next)
        if (l->s != NULL && l->sid == sid)
            return l->s;
    return NULL;
}

json_t *
bs_link_status(bs_daemon *d)
{
    json_t *arr = json_array();

    for (bs_link *l = d->links; l != NULL; l = l->next)
        json_array_append_new(
            arr, json_pack("{s:s, s:I, s:b, s:i}", "peer", l->name,
                           "next_run_s", (json_int_t)l->next_run_s, "running",
                           l->s != NULL, "failures", (int)l->failures));
    return arr;
}
