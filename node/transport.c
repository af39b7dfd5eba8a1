/*
 * transport.c - ZeroMQ sockets, CURVE and the ZAP handler.
 */
#include "transport.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

/* A socket: libzmq's handle, wrapped so that the type says what it is. */
struct bs_zsock {
    void *zs;
};

struct bs_zmq {
    void *ctx;
    bs_zsock *zap;
    bs_allowed *allowed;
    size_t nallowed;
    unsigned monitors;
};

bs_err
bs_zmq_new(bs_zmq **out, bs_errbuf *err)
{
    int major, minor, patch;
    bs_zmq *z;

    zmq_version(&major, &minor, &patch);
    if (major * 10000 + minor * 100 + patch < 40302)
        return bs_errf(err, BS_EINTERNAL,
                       "libzmq %d.%d.%d is too old: 4.3.2 or later is needed "
                       "(CVE-2019-13132)",
                       major, minor, patch);
    if (!zmq_has("curve"))
        return bs_errf(err, BS_EINTERNAL, "libzmq was built without CURVE");
    if ((z = calloc(1, sizeof *z)) == NULL)
        return BS_ENOMEM;
    if ((z->ctx = zmq_ctx_new()) == NULL) {
        free(z);
        return bs_errf(err, BS_EINTERNAL, "zmq_ctx_new: %s",
                       zmq_strerror(zmq_errno()));
    }
    *out = z;
    return BS_OK;
}

void
bs_zmq_free(bs_zmq *z)
{
    if (z == NULL)
        return;
    bs_zclose(z->zap);
    zmq_ctx_term(z->ctx);
    free(z->allowed);
    free(z);
}

/* Close a raw libzmq socket without lingering. */
static void
close_now(void *zs)
{
    int linger = 0;

    zmq_setsockopt(zs, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(zs);
}

void
bs_zclose(bs_zsock *sock)
{
    if (sock == NULL)
        return;
    close_now(sock->zs);
    free(sock);
}

/* Wrap libzmq socket zs; NULL (and zs closed) when out of memory. */
static bs_zsock *
wrap(void *zs)
{
    bs_zsock *s = malloc(sizeof *s);

    if (s == NULL) {
        close_now(zs);
        return NULL;
    }
    s->zs = zs;
    return s;
}

/* Wrap zs into *out, which is set only on BS_OK. */
static bs_err
wrap_out(void *zs, bs_zsock **out)
{
    bs_zsock *s = wrap(zs);

    if (s == NULL)
        return BS_ENOMEM;
    *out = s;
    return BS_OK;
}

static bs_err
zfail(bs_errbuf *err, const char *what, const char *ep)
{
    int e = zmq_errno();

    return bs_errf(err, e == EADDRINUSE ? BS_EIO : BS_EUNREACHABLE, "%s %s: %s",
                   what, ep, zmq_strerror(e));
}

/* Options every socket gets: caps and no lingering on close. */
static void
common_opts(void *s)
{
    int64_t maxmsg = BS_MSG_MAX;
    int hwm = 64, linger = 0;

    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
}

bs_err
bs_zap_start(bs_zmq *z, bs_errbuf *err)
{
    void *zs;

    if ((zs = zmq_socket(z->ctx, ZMQ_REP)) == NULL)
        return zfail(err, "ZAP socket", "");
    if (zmq_bind(zs, "inproc://zeromq.zap.01") != 0) {
        bs_err rv = zfail(err, "bind", "inproc://zeromq.zap.01");
        zmq_close(zs);
        return rv;
    }
    if ((z->zap = wrap(zs)) == NULL)
        return BS_ENOMEM;
    return BS_OK;
}

bs_zsock *
bs_zap_socket(bs_zmq *z)
{
    return z->zap;
}

bs_err
bs_zap_allow(bs_zmq *z, const bs_allowed *v, size_t n)
{
    bs_allowed *copy = NULL;

    if (n > 0 && (copy = malloc(n * sizeof *copy)) == NULL)
        return BS_ENOMEM;
    if (n > 0)
        memcpy(copy, v, n * sizeof *copy);
    free(z->allowed);
    z->allowed = copy;
    z->nallowed = n;
    return BS_OK;
}

#define ZAP_FRAMES 7

static void
zap_reply(void *s, zmq_msg_t *reqid, const char *code, const char *text,
          const char *user)
{
    zmq_send(s, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(s, zmq_msg_data(reqid), zmq_msg_size(reqid), ZMQ_SNDMORE);
    zmq_send(s, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(s, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(s, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(s, "", 0, 0);
}

/* Decide one request; frames: version, id, domain, address, identity,
 * mechanism, credentials.  Anything else is refused (fail closed). */
static void
zap_one(bs_zmq *z, void (*refused)(void *, const char *), void *ctx)
{
    zmq_msg_t f[ZAP_FRAMES];
    int nf = 0, more = 1, extra = 0;
    const bs_allowed *who = NULL;
    char why[200] = "";

    while (more) {
        zmq_msg_t *m = nf < ZAP_FRAMES ? &f[nf] : NULL, spare;
        if (m == NULL)
            m = &spare;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, z->zap->zs, 0) < 0) {
            zmq_msg_close(m);
            break;
        }
        more = zmq_msg_more(m);
        if (m == &spare) {
            zmq_msg_close(m); /* beyond what a request has: drop it */
            extra = 1;
        } else {
            nf++;
        }
    }
    if (nf < ZAP_FRAMES || extra) {
        snprintf(why, sizeof why, "malformed ZAP request");
    } else if (zmq_msg_size(&f[0]) != 3 ||
               memcmp(zmq_msg_data(&f[0]), "1.0", 3) != 0) {
        snprintf(why, sizeof why, "unknown ZAP version");
    } else if (zmq_msg_size(&f[5]) != 5 ||
               memcmp(zmq_msg_data(&f[5]), "CURVE", 5) != 0) {
        snprintf(why, sizeof why, "mechanism is not CURVE");
    } else if (zmq_msg_size(&f[2]) != strlen(BS_ZAP_DOMAIN) ||
               memcmp(zmq_msg_data(&f[2]), BS_ZAP_DOMAIN,
                      strlen(BS_ZAP_DOMAIN)) != 0) {
        snprintf(why, sizeof why, "unknown ZAP domain");
    } else if (zmq_msg_size(&f[6]) != 32) {
        snprintf(why, sizeof why, "bad CURVE credentials");
    } else {
        for (size_t i = 0; i < z->nallowed && who == NULL; i++)
            if (memcmp(z->allowed[i].curve_pk, zmq_msg_data(&f[6]), 32) == 0)
                who = &z->allowed[i];
        if (who == NULL) {
            char addr[64] = "?";
            size_t an = zmq_msg_size(&f[3]) < 63 ? zmq_msg_size(&f[3]) : 63;
            memcpy(addr, zmq_msg_data(&f[3]), an);
            addr[an] = '\0';
            snprintf(why, sizeof why,
                     "refused a connection from %s: its key is not a paired "
                     "peer's",
                     addr);
        }
    }
    if (nf >= 2) {
        zap_reply(z->zap->zs, &f[1], who ? "200" : "400",
                  who ? "OK" : "refused", who ? who->name : "");
    } else {
        /* The REP socket must answer even a request it cannot read. */
        zmq_msg_t empty;
        zmq_msg_init(&empty);
        zap_reply(z->zap->zs, &empty, "500", "malformed", "");
        zmq_msg_close(&empty);
    }
    if (who == NULL && refused)
        refused(ctx, why);
    for (int i = 0; i < nf; i++)
        zmq_msg_close(&f[i]);
}

void
bs_zap_serve(bs_zmq *z, void (*refused)(void *ctx, const char *why), void *ctx)
{
    while (z->zap && bs_zreadable(z->zap))
        zap_one(z, refused, ctx);
}

bs_err
bs_listen(bs_zmq *z, const char *endpoint, const uint8_t curve_sk[32],
          bs_zsock **out, bs_errbuf *err)
{
    void *s;
    int one = 1;

    if (z->zap == NULL)
        return bs_errf(err, BS_EINTERNAL, "ZAP handler not started");
    if ((s = zmq_socket(z->ctx, ZMQ_ROUTER)) == NULL)
        return zfail(err, "socket", endpoint);
    common_opts(s);
    zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, curve_sk, 32);
    zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, BS_ZAP_DOMAIN, strlen(BS_ZAP_DOMAIN));
    zmq_setsockopt(s, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    if (zmq_bind(s, endpoint) != 0) {
        bs_err rv = zfail(err, "cannot listen on", endpoint);
        zmq_close(s);
        return rv;
    }
    return wrap_out(s, out);
}

bs_err
bs_control_listen(bs_zmq *z, const char *dir, bs_zsock **out, bs_errbuf *err)
{
    char ep[4200];
    void *s;

    snprintf(ep, sizeof ep, "ipc://%s/control.sock", dir);
    if ((s = zmq_socket(z->ctx, ZMQ_ROUTER)) == NULL)
        return zfail(err, "socket", ep);
    common_opts(s);
    if (zmq_bind(s, ep) != 0) {
        bs_err rv = zfail(err, "cannot bind control socket", ep);
        zmq_close(s);
        return rv;
    }
    return wrap_out(s, out);
}

bs_err
bs_dial(bs_zmq *z, const char *endpoint, const uint8_t my_curve_pk[32],
        const uint8_t my_curve_sk[32], const uint8_t server_curve_pk[32],
        bs_zsock **out, bs_zsock **monitor, bs_errbuf *err)
{
    char mon[64];
    void *s, *m = NULL;
    bs_zsock *ws, *wm;
    int ivl = 100, ivl_max = 5000, hs = 10000;

    if ((s = zmq_socket(z->ctx, ZMQ_DEALER)) == NULL)
        return zfail(err, "socket", endpoint);
    common_opts(s);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_curve_pk, 32);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, my_curve_pk, 32);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, my_curve_sk, 32);
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    zmq_setsockopt(s, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
    snprintf(mon, sizeof mon, "inproc://bs-monitor-%u", z->monitors++);
    if (zmq_socket_monitor(s, mon,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_DISCONNECTED) != 0 ||
        (m = zmq_socket(z->ctx, ZMQ_PAIR)) == NULL ||
        zmq_connect(m, mon) != 0) {
        bs_err rv = zfail(err, "monitor for", endpoint);
        if (m != NULL)
            zmq_close(m);
        zmq_close(s);
        return rv;
    }
    if (zmq_connect(s, endpoint) != 0) {
        bs_err rv = zfail(err, "cannot connect to", endpoint);
        close_now(m);
        close_now(s);
        return rv;
    }
    if ((wm = wrap(m)) == NULL) {
        close_now(s);
        return BS_ENOMEM;
    }
    if ((ws = wrap(s)) == NULL) {
        bs_zclose(wm);
        return BS_ENOMEM;
    }
    *out = ws;
    *monitor = wm;
    return BS_OK;
}

bs_err
bs_control_dial(bs_zmq *z, const char *dir, bs_zsock **out, bs_errbuf *err)
{
    char ep[4200];
    void *s;

    snprintf(ep, sizeof ep, "ipc://%s/control.sock", dir);
    if ((s = zmq_socket(z->ctx, ZMQ_DEALER)) == NULL)
        return zfail(err, "socket", ep);
    common_opts(s);
    if (zmq_connect(s, ep) != 0) {
        bs_err rv = zfail(err, "cannot connect to", ep);
        zmq_close(s);
        return rv;
    }
    return wrap_out(s, out);
}

int
bs_zfd(bs_zsock *sock)
{
    int fd = -1;
    size_t n = sizeof fd;

    zmq_getsockopt(sock->zs, ZMQ_FD, &fd, &n);
    return fd;
}

int
bs_zreadable(bs_zsock *sock)
{
    int ev = 0;
    size_t n = sizeof ev;

    if (zmq_getsockopt(sock->zs, ZMQ_EVENTS, &ev, &n) != 0)
        return 0;
    return (ev & ZMQ_POLLIN) != 0;
}

bs_err
bs_zsend(bs_zsock *sock, const void *rid, size_t rn, const void *p, size_t n)
{
    if (rn > 0 && zmq_send(sock->zs, rid, rn, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return zmq_errno() == EAGAIN ? BS_ETIMEOUT : BS_EUNREACHABLE;
    if (zmq_send(sock->zs, p, n, ZMQ_DONTWAIT) < 0)
        return zmq_errno() == EAGAIN ? BS_ETIMEOUT : BS_EUNREACHABLE;
    return BS_OK;
}

bs_err
bs_zrecv(bs_zsock *zsock, int router, bs_zin *in)
{
    void *sock = zsock->zs;
    zmq_msg_t m;
    int more;

    memset(in, 0, sizeof *in);
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return zmq_errno() == EAGAIN ? BS_ENOTFOUND : BS_EIO;
    }
    if (router) {
        in->rn = zmq_msg_size(&m) < sizeof in->rid ? zmq_msg_size(&m)
                                                   : sizeof in->rid;
        memcpy(in->rid, zmq_msg_data(&m), in->rn);
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        zmq_msg_init(&m);
        if (!more || zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return BS_EMALFORMED;
        }
        const char *user = zmq_msg_gets(&m, "User-Id");
        if (user)
            snprintf(in->user, sizeof in->user, "%s", user);
    }
    more = zmq_msg_more(&m);
    in->n = zmq_msg_size(&m);
    if ((in->msg = malloc(in->n + 1)) == NULL) {
        zmq_msg_close(&m);
        return BS_ENOMEM;
    }
    memcpy(in->msg, zmq_msg_data(&m), in->n);
    zmq_msg_close(&m);
    /* One frame per message: drop any extra frames as malformed. */
    while (more) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0)
            more = 0;
        else
            more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        in->n = 0;
    }
    return BS_OK;
}

int
bs_zpoll(bs_zsock *const *socks, int n, int timeout_ms, int *ready)
{
    zmq_pollitem_t items[8];
    int rc;

    BS_ASSERT(n <= 8);
    for (int i = 0; i < n; i++)
        items[i] = (zmq_pollitem_t){socks[i]->zs, 0, ZMQ_POLLIN, 0};
    rc = zmq_poll(items, n, timeout_ms);
    for (int i = 0; i < n; i++)
        ready[i] = rc > 0 && (items[i].revents & ZMQ_POLLIN);
    return rc;
}

int
bs_monitor_event(bs_zsock *zmonitor, int *auth_failed, int *connected,
                 int *disconnected)
{
    void *monitor = zmonitor->zs;
    zmq_msg_t m;
    uint16_t event;
    int more;

    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, monitor, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return 0;
    }
    if (zmq_msg_size(&m) >= 2) {
        memcpy(&event, zmq_msg_data(&m), 2);
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
            event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
            *auth_failed = 1;
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            *connected = 1;
        if (event == ZMQ_EVENT_DISCONNECTED)
            *disconnected = 1;
    }
    more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    while (more) { /* the second frame: the endpoint */
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, monitor, ZMQ_DONTWAIT) < 0)
            more = 0;
        else
            more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return 1;
}
