/*
 * http.c - the HTTP server around http_api.c: libmicrohttpd (the only
 * home of <microhttpd.h>), one thread per connection, bodies gathered up
 * to a limit, the listen address and the API token file.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../replication/crypto.h"

/* ==== the listen address ==== */

bs_err
bs_http_addr_parse(const char *addr, struct sockaddr_storage *sa,
                   socklen_t *salen, int *loopback, bs_errbuf *err)
{
    const char *colon = strrchr(addr, ':');
    char host[128], *end;
    struct sockaddr_storage tmp;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&tmp;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&tmp;
    size_t hn;
    long port;

    if (colon == NULL || (hn = (size_t)(colon - addr)) == 0 ||
        hn >= sizeof host)
        goto bad;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
        goto bad;
    memcpy(host, addr, hn);
    host[hn] = '\0';
    memset(&tmp, 0, sizeof tmp);
    if (host[0] == '[' && host[hn - 1] == ']') {
        host[hn - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) != 1)
            goto bad;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        if (loopback)
            *loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
        if (salen)
            *salen = sizeof *v6;
    } else {
        if (strcmp(host, "localhost") == 0)
            snprintf(host, sizeof host, "127.0.0.1");
        if (inet_pton(AF_INET, host, &v4->sin_addr) != 1)
            goto bad;
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        if (loopback)
            *loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
        if (salen)
            *salen = sizeof *v4;
    }
    if (sa)
        *sa = tmp;
    return BS_OK;
bad:
    return bs_errf(err, BS_EINVAL,
                   "bad HTTP address \"%.80s\": use HOST:PORT with an IP "
                   "address or localhost (e.g. 127.0.0.1:7480, [::1]:7480), "
                   "or off",
                   addr);
}

/* ==== the token ==== */

static int
token_ok(const char *s, size_t n)
{
    if (n != BS_HTTP_TOKEN_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* Create path with a fresh token, unless someone else did first. */
static bs_err
token_create(const char *path, bs_errbuf *err)
{
    char tmp[4300], hex[BS_HTTP_TOKEN_LEN + 2];
    uint8_t raw[BS_HTTP_TOKEN_LEN / 2];
    int fd, ok;

    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    /* From the kernel, not bs_crypto_random: tests that install a
     * deterministic random source (tests/fuzz) see no extra draws. */
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return bs_errf(err, BS_EKEY, "cannot draw a random API token: %s",
                       strerror(errno));
    bs_hex(hex, raw, sizeof raw);
    bs_wipe(raw, sizeof raw);
    hex[BS_HTTP_TOKEN_LEN] = '\n';
    hex[BS_HTTP_TOKEN_LEN + 1] = '\0';
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return bs_errf(err, BS_EKEY, "cannot create %s: %s", tmp,
                       strerror(errno));
    ok = write(fd, hex, BS_HTTP_TOKEN_LEN + 1) == BS_HTTP_TOKEN_LEN + 1 &&
         fsync(fd) == 0;
    close(fd);
    bs_wipe(hex, sizeof hex);
    /* link() refuses an existing file: a token made meanwhile wins. */
    if (!ok || (link(tmp, path) != 0 && errno != EEXIST)) {
        int e = errno;
        unlink(tmp);
        return bs_errf(err, BS_EKEY, "cannot write %s: %s", path, strerror(e));
    }
    unlink(tmp);
    return BS_OK;
}

bs_err
bs_http_token_load(const char *dir, int create, char buf[BS_HTTP_TOKEN_LEN + 1],
                   bs_errbuf *err)
{
    char path[4200], raw[BS_HTTP_TOKEN_LEN + 8];
    struct stat st;
    ssize_t n;
    int fd;
    bs_err rv;

    snprintf(path, sizeof path, "%s/keys/api.token", dir);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 && errno == ENOENT &&
        create) {
        if ((rv = token_create(path, err)) != BS_OK)
            return rv;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return errno == ENOENT
                   ? bs_errf(err, BS_ENOTFOUND,
                             "%s: no API token (branchsync api-token "
                             "creates one)",
                             path)
                   : bs_errf(err, BS_EKEY, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || (st.st_mode & 077) != 0) {
        close(fd);
        return bs_errf(err, BS_EKEY,
                       "%s is readable by others: chmod 600 %s (and "
                       "replace the token)",
                       path, path);
    }
    n = read(fd, raw, sizeof raw - 1);
    close(fd);
    while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r'))
        n--;
    if (n < 0 || !token_ok(raw, (size_t)n))
        return bs_errf(err, BS_EKEY,
                       "%s is not an API token (%d hex digits): delete it "
                       "and run branchsync api-token",
                       path, BS_HTTP_TOKEN_LEN);
    memcpy(buf, raw, BS_HTTP_TOKEN_LEN);
    buf[BS_HTTP_TOKEN_LEN] = '\0';
    bs_wipe(raw, sizeof raw);
    return BS_OK;
}

/* ==== the server ==== */

/* A connection, for the reaper: its socket and the time by which its
 * request must have arrived. */
typedef struct hconn {
    int fd;
    uint64_t deadline; /* monotonic ms; 0: being answered (no deadline) */
    struct hconn *prev, *next;
} hconn;

struct bs_http {
    struct MHD_Daemon *mhd;
    bs_api *api;
    size_t body_max;
    char *cert, *key; /* PEM text, while serving */
    /* the reaper of slow requests (http.h) */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC: wakes the reaper to stop */
    pthread_t reaper;
    int reaper_on, stop;
    hconn *conns; /* under mu */
    uint64_t request_ms;
};

/* ==== slow requests: the reaper ==== */

#define REAP_EVERY_MS 250

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* libmicrohttpd's connection start and end (any connection thread).  The
 * end is notified before the socket is closed, so the reaper never shuts
 * down a descriptor that was reused. */
static void
on_conn(void *cls, struct MHD_Connection *c, void **socket_context,
        enum MHD_ConnectionNotificationCode code)
{
    bs_http *h = cls;
    hconn *k = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci == NULL || (k = calloc(1, sizeof *k)) == NULL)
            return; /* not reaped; the idle timeout still applies */
        k->fd = ci->connect_fd;
        pthread_mutex_lock(&h->mu);
        k->deadline = mono_ms() + h->request_ms;
        k->next = h->conns;
        if (h->conns != NULL)
            h->conns->prev = k;
        h->conns = k;
        pthread_mutex_unlock(&h->mu);
        *socket_context = k;
    } else if (k != NULL) {
        pthread_mutex_lock(&h->mu);
        if (k->prev != NULL)
            k->prev->next = k->next;
        else
            h->conns = k->next;
        if (k->next != NULL)
            k->next->prev = k->prev;
        pthread_mutex_unlock(&h->mu);
        free(k);
        *socket_context = NULL;
    }
}

/* The request on c is answered now (answering 1), or the connection
 * waits for its next one (0): a new deadline. */
static void
mark(bs_http *h, struct MHD_Connection *c, int answering)
{
    const union MHD_ConnectionInfo *ci =
        c ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT)
          : NULL;
    hconn *k = ci ? ci->socket_context : NULL;

    if (k == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    k->deadline = answering ? 0 : mono_ms() + h->request_ms;
    pthread_mutex_unlock(&h->mu);
}

static void *
reaper(void *arg)
{
    bs_http *h = arg;

    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        struct timespec until;
        uint64_t now = mono_ms(), at = now + REAP_EVERY_MS;

        for (hconn *k = h->conns; k != NULL; k = k->next)
            if (k->deadline != 0 && now >= k->deadline) {
                shutdown(k->fd, SHUT_RDWR); /* its thread sees the end */
                k->deadline = 0;
            }
        until.tv_sec = (time_t)(at / 1000);
        until.tv_nsec = (long)(at % 1000) * 1000000L;
        pthread_cond_timedwait(&h->cv, &h->mu, &until);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static bs_err
reaper_start(bs_http *h, unsigned request_s)
{
    pthread_condattr_t ca;
    int e;

    h->request_ms = (uint64_t)(request_s ? request_s : 30u) * 1000u;
    if (pthread_mutex_init(&h->mu, NULL) != 0)
        return BS_ENOMEM;
    if ((e = pthread_condattr_init(&ca)) == 0) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        e = pthread_cond_init(&h->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (e == 0 && (e = pthread_create(&h->reaper, NULL, reaper, h)) != 0)
        pthread_cond_destroy(&h->cv);
    if (e != 0) {
        pthread_mutex_destroy(&h->mu);
        return BS_ENOMEM;
    }
    h->reaper_on = 1;
    return BS_OK;
}

static void
reaper_stop(bs_http *h)
{
    if (!h->reaper_on)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->reaper, NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    h->reaper_on = 0;
}

/* One request being received. */
typedef struct hreq {
    char *body;
    size_t n, cap;
    int too_large;
} hreq;

static const char *
arg_of(void *ctx, const char *name)
{
    return MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, name);
}

/* A streamed body: libmicrohttpd calls these on the connection's thread
 * (one thread per connection, so the stream may block there). */
static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    bs_api_stream *s = cls;
    long n = s->read(s, buf, max);

    (void)pos;
    return n > 0 ? (ssize_t)n : (ssize_t)MHD_CONTENT_READER_END_OF_STREAM;
}

static void
stream_free(void *cls)
{
    bs_api_stream *s = cls;

    s->free(s);
}

static enum MHD_Result
send_resp(struct MHD_Connection *c, bs_api_resp *r)
{
    struct MHD_Response *resp =
        r->stream != NULL
            ? MHD_create_response_from_callback(
                  MHD_SIZE_UNKNOWN, 4096, stream_read, r->stream, stream_free)
            : MHD_create_response_from_buffer(r->len, r->body,
                                              MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (resp == NULL) {
        if (r->stream != NULL)
            r->stream->free(r->stream);
        free(r->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", r->type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
too_large(bs_http *h, bs_api_resp *r)
{
    char msg[128];

    snprintf(msg, sizeof msg,
             "request body over %zu bytes ([http] body_max_mb)", h->body_max);
    bs_api_error(h->api, 413, msg, r);
}

/* The first call of a request: admit it before reading any body. */
static enum MHD_Result
first_call(bs_http *h, struct MHD_Connection *c, bs_api_req *rq, void **cls)
{
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    bs_api_resp r;
    hreq *q;

    if (!bs_api_admit(h->api, rq, &r)) {
        mark(h, c, 1);
        return send_resp(c, &r);
    }
    if (cl != NULL && strtoull(cl, NULL, 10) > h->body_max) {
        too_large(h, &r);
        mark(h, c, 1);
        return send_resp(c, &r);
    }
    if ((q = calloc(1, sizeof *q)) == NULL)
        return MHD_NO;
    *cls = q;
    return MHD_YES;
}

static void
gather(bs_http *h, hreq *q, const char *data, size_t n)
{
    if (q->too_large || n == 0)
        return;
    if (q->n + n > h->body_max) {
        q->too_large = 1;
        free(q->body);
        q->body = NULL;
        q->n = q->cap = 0;
        return;
    }
    if (q->n + n + 1 > q->cap) {
        size_t cap = q->cap ? q->cap : 16384;
        char *nb;
        while (cap < q->n + n + 1)
            cap *= 2;
        if ((nb = realloc(q->body, cap)) == NULL) {
            q->too_large = 1; /* answered 413: too large for us now */
            return;
        }
        q->body = nb;
        q->cap = cap;
    }
    memcpy(q->body + q->n, data, n);
    q->n += n;
    q->body[q->n] = '\0';
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
           const char *method, const char *version, const char *upload,
           size_t *upload_size, void **con_cls)
{
    bs_http *h = cls;
    hreq *q = *con_cls;
    bs_api_req rq = {0};
    bs_api_resp r;

    (void)version;
    rq.method = method;
    rq.path = url;
    rq.arg = arg_of;
    rq.arg_ctx = c;
    rq.auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    rq.last_event_id =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    if (q == NULL)
        return first_call(h, c, &rq, con_cls);
    if (*upload_size > 0) {
        gather(h, q, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    mark(h, c, 1); /* arrived whole: no deadline while it is answered */
    if (q->too_large) {
        too_large(h, &r);
        return send_resp(c, &r);
    }
    rq.body = q->body;
    rq.body_len = q->n;
    bs_api_handle(h->api, &rq, &r);
    return send_resp(c, &r);
}

static void
on_done(void *cls, struct MHD_Connection *c, void **con_cls,
        enum MHD_RequestTerminationCode code)
{
    hreq *q = *con_cls;

    (void)code;
    mark(cls, c, 0); /* the next request on c has its own deadline */
    if (q != NULL) {
        free(q->body);
        free(q);
        *con_cls = NULL;
    }
}

/* A whole PEM file into *out (malloc'd, NUL-terminated). */
static bs_err
read_pem(const char *path, const char *what, char **out, bs_errbuf *err)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        return bs_errf(err, BS_EINVAL, "[http] %s %s: %s", what, path,
                       strerror(errno));
    if ((buf = malloc(1 << 20)) != NULL)
        n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    if (buf == NULL)
        return BS_ENOMEM;
    buf[n] = '\0';
    if (strstr(buf, "-----BEGIN") == NULL) {
        free(buf);
        return bs_errf(err, BS_EINVAL, "[http] %s %s: not a PEM file", what,
                       path);
    }
    *out = buf;
    return BS_OK;
}

static int
has(const char *s)
{
    return s != NULL && s[0] != '\0';
}

bs_err
bs_http_check(const bs_http_opts *o, bs_errbuf *err)
{
    int loopback = 0;
    char *pem = NULL;
    bs_err rv;

    if ((rv = bs_http_addr_parse(o->listen, NULL, NULL, &loopback, err)) !=
        BS_OK)
        return rv;
    if (has(o->cert) != has(o->key))
        return bs_errf(err, BS_EINVAL,
                       "[http] cert and key go together: set both or neither");
    if (!has(o->cert) && !loopback)
        return bs_errf(err, BS_EINVAL,
                       "[http] listen = %s is not a loopback address: it "
                       "needs TLS ([http] cert and key, PEM files) so the "
                       "API token never crosses the network in clear; or "
                       "listen on 127.0.0.1",
                       o->listen);
    if (has(o->cert) && !MHD_is_feature_supported(MHD_FEATURE_TLS))
        return bs_errf(err, BS_EINVAL,
                       "[http] cert is set but libmicrohttpd has no TLS");
    if (has(o->cert)) {
        if ((rv = read_pem(o->cert, "cert", &pem, err)) != BS_OK)
            return rv;
        free(pem);
        if ((rv = read_pem(o->key, "key", &pem, err)) != BS_OK)
            return rv;
        bs_wipe(pem, strlen(pem));
        free(pem);
    }
    return BS_OK;
}

/* Bind and listen on addr ourselves, so a failure names its errno. */
static bs_err
bind_listen(const char *addr, int *fd_out, bs_errbuf *err)
{
    struct sockaddr_storage sa;
    socklen_t len = 0;
    int fd, one = 1;
    bs_err rv;

    if ((rv = bs_http_addr_parse(addr, &sa, &len, NULL, err)) != BS_OK)
        return rv;
    if ((fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return bs_errf(err, BS_EIO, "HTTP socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return bs_errf(err, BS_EIO, "cannot bind HTTP address %s: %s", addr,
                       strerror(e));
    }
    *fd_out = fd;
    return BS_OK;
}

bs_err
bs_http_start(const bs_http_opts *o, bs_http **out, bs_errbuf *err)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    unsigned max, per_ip;
    bs_http *h;
    int fd = -1;
    bs_err rv;

    if ((rv = bs_http_check(o, err)) != BS_OK)
        return rv;
    if ((h = calloc(1, sizeof *h)) == NULL)
        return BS_ENOMEM;
    h->api = o->api;
    h->body_max = o->body_max ? o->body_max : (64u << 20);
    if (has(o->cert)) {
        if ((rv = read_pem(o->cert, "cert", &h->cert, err)) != BS_OK ||
            (rv = read_pem(o->key, "key", &h->key, err)) != BS_OK)
            goto err_after_alloc;
        flags |= MHD_USE_TLS;
    }
    if ((rv = bind_listen(o->listen, &fd, err)) != BS_OK)
        goto err_after_alloc;
    if ((rv = reaper_start(h, o->request_s)) != BS_OK) {
        close(fd);
        goto err_after_alloc;
    }
    max = o->max_conns ? o->max_conns : 64u;
    per_ip = o->max_per_ip ? o->max_per_ip : (max + 1) / 2;
    h->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, h, MHD_OPTION_NOTIFY_CONNECTION,
        on_conn, h, MHD_OPTION_CONNECTION_LIMIT, max,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s ? o->timeout_s : 30u,
        h->cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, h->cert,
        MHD_OPTION_HTTPS_MEM_KEY, h->key, MHD_OPTION_END);
    if (h->mhd == NULL) {
        close(fd);
        rv = bs_errf(err, BS_EIO, "cannot start the HTTP server on %s",
                     o->listen);
        goto err_after_reaper;
    }
    *out = h;
    return BS_OK;
err_after_reaper:
    reaper_stop(h);
err_after_alloc:
    free(h->cert);
    if (h->key)
        bs_wipe(h->key, strlen(h->key));
    free(h->key);
    free(h);
    return rv;
}

void
bs_http_stop(bs_http *h)
{
    if (h == NULL)
        return;
    /* waiting feeds end at their next look (http_feed.c); every
     * connection's thread is joined when MHD_stop_daemon returns */
    __atomic_store_n(&h->api->stopping, 1, __ATOMIC_SEQ_CST);
    bs_api_wake(h->api); /* waiting feeds look now, and end */
    MHD_stop_daemon(h->mhd);
    reaper_stop(h); /* after every connection is gone */
    __atomic_store_n(&h->api->stopping, 0, __ATOMIC_SEQ_CST);
    free(h->cert);
    if (h->key)
        bs_wipe(h->key, strlen(h->key));
    free(h->key);
    free(h);
}
