/*
 * client.c - a blocking exchange loop over one DEALER socket.
 */
#include "client.h"

#include <stdarg.h>
#include <string.h>

#include "../replication/peers.h"
#include "../replication/xlog.h"

#define IDLE_MS 30000

static uint64_t
now_ms(void)
{
    return bs_clock_system.now_ms(NULL);
}

typedef struct log_ctx {
    const bs_xlog_entry *e;
} log_ctx;

static bs_err
log_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    (void)err;
    return bs_xlog_add(t, ((log_ctx *)arg)->e);
}

void
bs_client_log(bs_node *n, const char *peer, const char *via,
              const char *direction, const bs_session_stats *st,
              uint64_t started_ms, const char *error)
{
    uint64_t now = now_ms();
    bs_xlog_entry e;
    log_ctx c = {&e};

    memset(&e, 0, sizeof e);
    e.time_ms = now;
    e.duration_ms = now - started_ms;
    snprintf(e.peer, sizeof e.peer, "%s", peer);
    snprintf(e.via, sizeof e.via, "%s", via);
    snprintf(e.direction, sizeof e.direction, "%s", direction);
    if (st != NULL) {
        e.sets_sent = st->sets_sent;
        e.sets_received = st->sets_received;
        e.changes = st->changes_applied;
        e.conflicts = st->conflicts;
        e.bytes = st->bytes_in + st->bytes_out;
    }
    snprintf(e.error, sizeof e.error, "%s", error ? error : "");
    /* After a failed exchange the command's own error is the one line to
     * print (often the same full disk that fails this write). */
    if (bs_store_write(n->store, log_txn, &c, NULL) != BS_OK && error == NULL)
        fprintf(stderr, "branchsync: cannot record the exchange in the log\n");
}

static bs_err
peer_keys(bs_node *n, const char *name, bs_peer *p, uint8_t server[32],
          bs_errbuf *err)
{
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_store_read(n->store, &t, err)) != BS_OK)
        return rv;
    rv = bs_peer_get(t, name, p);
    bs_txn_abort(t);
    if (rv == BS_ENOTFOUND)
        return bs_errf(err, BS_ENOTFOUND, "unknown peer \"%s\" (see peer ls)",
                       name);
    if (rv != BS_OK)
        return rv;
    if (bs_curve_public(p->pk, server) != BS_OK) {
        bs_peer_fini(p);
        return bs_errf(err, BS_EINVAL, "peer %s has an unusable key", name);
    }
    return BS_OK;
}

bs_err
bs_client_flush(bs_session *s, bs_zsock *sock, const uint8_t *rid, size_t rn,
                uint8_t **held, size_t *hn, int *moved)
{
    bs_err rv;

    for (;;) {
        if (*held == NULL && bs_session_output(s, held, hn) != BS_OK)
            return BS_OK;
        rv = bs_zsend(sock, rid, rn, *held, *hn);
        if (rv == BS_ETIMEOUT)
            return BS_OK; /* high-water mark: retry after the next poll */
        free(*held);
        *held = NULL;
        if (moved)
            *moved = 1;
        if (rv != BS_OK)
            return rv;
    }
}

/* Append one formatted part to buf (n bytes), "; " between parts. */
static void BS_PRINTF(3, 4) add(char *buf, size_t n, const char *fmt, ...)
{
    size_t k = strlen(buf);
    va_list ap;

    if (k > 0 && k + 2 < n) {
        memcpy(buf + k, "; ", 3);
        k += 2;
    }
    if (k + 1 >= n)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + k, n - k, fmt, ap);
    va_end(ap);
}

static const char *
plural(uint64_t n)
{
    return n == 1 ? "" : "s";
}

void
bs_client_problem(const bs_session_stats *st, const char *peer,
                  const char *refused_reason, const bs_config *cfg, char *buf,
                  size_t n)
{
    int64_t ahead = bs_clock_sample_ahead(&st->clock);
    int clock = ahead > (int64_t)cfg->max_skew_s * 1000;

    buf[0] = '\0';
    if (st->refused > 0)
        add(buf, n, "refused %llu change set%s that %s sent (first: %.200s)",
            (unsigned long long)st->refused, plural(st->refused), peer,
            refused_reason);
    if (st->held_there > 0 && st->held_there_own > 0 && clock)
        add(buf, n,
            "%llu change set%s sent to %s %s held there: our clock is "
            "%lld s ahead of %s's",
            (unsigned long long)st->held_there, plural(st->held_there), peer,
            st->held_there == 1 ? "was" : "were", (long long)(ahead / 1000),
            peer);
    else if (st->held_there > 0)
        add(buf, n,
            "%llu change set%s sent to %s %s held or refused there; see "
            "%s's status",
            (unsigned long long)st->held_there, plural(st->held_there), peer,
            st->held_there == 1 ? "was" : "were", peer);
    if (clock && !(st->held_there_own > 0))
        add(buf, n, "this node's clock is %lld s ahead of %s's",
            (long long)(ahead / 1000), peer);
    if (clock)
        add(buf, n, "fix this node's clock (see status)");
}

static bs_err
run(bs_session *s, bs_zsock *sock, bs_zsock *mon, const bs_peer *p,
    const bs_client_opts *o, bs_errbuf *err)
{
    uint64_t start = now_ms(), last = start;
    uint64_t deadline = start + (uint64_t)o->timeout_ms;
    uint8_t *held = NULL;
    size_t hn = 0;
    int connected = 0;
    bs_err rv = BS_OK;

    while (bs_session_state_of(s) != BS_SESSION_COMPLETE) {
        bs_zsock *socks[2] = {sock, mon};
        int ready[2] = {0, 0}, auth = 0, conn = 0, disc = 0;
        uint64_t now = now_ms();

        if ((rv = bs_client_flush(s, sock, NULL, 0, &held, &hn, NULL)) != BS_OK)
            break;
        if (bs_session_state_of(s) == BS_SESSION_FAILED) {
            rv = bs_errf(err, bs_session_errcode(s), "%s: %s", p->name,
                         bs_session_error(s));
            break;
        }
        if (!connected && now - start > (uint64_t)o->connect_timeout_ms) {
            rv = bs_errf(err, BS_EUNREACHABLE,
                         "cannot connect to %s at %s: nothing answered within "
                         "%d s (is branchsyncd running there, and is the "
                         "address right?)",
                         p->name, p->endpoint,
                         (o->connect_timeout_ms + 999) / 1000);
            break;
        }
        if (now > deadline || now - last > IDLE_MS) {
            rv = bs_errf(err, BS_EUNREACHABLE,
                         "peer %s at %s did not answer in time", p->name,
                         p->endpoint);
            break;
        }
        bs_zpoll(socks, 2, held ? 10 : 100, ready);
        while (bs_monitor_event(mon, &auth, &conn, &disc))
            ;
        connected |= conn;
        if (auth) {
            rv = bs_errf(err, BS_EUNREACHABLE,
                         "peer %s refused the connection: this node is not "
                         "paired there, or its ID differs",
                         p->name);
            break;
        }
        for (;;) {
            bs_zin in;
            bs_err r = bs_zrecv(sock, 0, &in);
            if (r == BS_ENOTFOUND)
                break;
            if (r != BS_OK) {
                rv = r;
                break;
            }
            last = now_ms();
            connected = 1;
            r = bs_session_input(s, in.msg, in.n);
            free(in.msg);
            (void)r; /* failures show in the session state */
        }
        if (rv != BS_OK)
            break;
    }
    free(held);
    held = NULL;
    if (rv == BS_OK)
        rv = bs_client_flush(s, sock, NULL, 0, &held, &hn, NULL); /* last ACK */
    free(held);
    return rv;
}

bs_err
bs_client_sync(bs_node *n, bs_zmq *z, const char *name,
               const bs_client_opts *opts, bs_session_stats *st, char *problem,
               size_t np, bs_errbuf *err)
{
    bs_client_opts o = *opts;
    uint8_t my_pk[32], my_sk[32], server[32];
    const uint8_t *sk;
    uint64_t started = now_ms();
    bs_zsock *sock = NULL, *mon = NULL;
    bs_session *s = NULL;
    bs_session_cfg cfg;
    bs_peer p;
    bs_err rv;

    memset(st, 0, sizeof *st);
    problem[0] = '\0';
    if (o.clock.now_ms == NULL)
        o.clock = bs_clock_system;
    if (o.connect_timeout_ms <= 0)
        o.connect_timeout_ms = (int)n->cfg.connect_timeout_s * 1000;
    if ((rv = peer_keys(n, name, &p, server, err)) != BS_OK)
        return rv;
    if ((rv = bs_node_secret(n, &sk, err)) != BS_OK ||
        (rv = bs_node_curve(n, my_pk, my_sk, err)) != BS_OK)
        goto out;
    rv = bs_dial(z, p.endpoint, my_pk, my_sk, server, &sock, &mon, err);
    bs_wipe(my_sk, sizeof my_sk);
    if (rv != BS_OK)
        goto out;
    memset(&cfg, 0, sizeof cfg);
    cfg.store = n->store;
    cfg.sk = sk;
    cfg.clock = o.clock;
    cfg.max_skew_ms = (uint64_t)n->cfg.max_skew_s * 1000;
    cfg.retention_ms = (uint64_t)n->cfg.retention_days * 86400000ull;
    cfg.initiator = 1;
    cfg.peer = name;
    cfg.authenticated = p.pk;
    if ((rv = bs_session_new(&cfg, &s)) != BS_OK)
        goto out;
    if ((rv = bs_session_start(s)) != BS_OK) {
        rv = bs_errf(err, rv, "%s", bs_session_error(s));
        goto out;
    }
    rv = run(s, sock, mon, &p, &o, err);
    *st = *bs_session_stats_of(s);
    if (rv == BS_OK)
        bs_client_problem(st, name, bs_session_refused_reason(s), &n->cfg,
                          problem, np);
out:
    bs_client_log(n, name, "network", "both", s ? bs_session_stats_of(s) : NULL,
                  started,
                  rv != BS_OK  ? bs_errmsg(err, rv)
                  : problem[0] ? problem
                               : NULL);
    bs_session_free(s);
    bs_zclose(mon);
    bs_zclose(sock);
    bs_peer_fini(&p);
    return rv;
}
