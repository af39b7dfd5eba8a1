/*
 * http.h - the daemon's HTTP server (libmicrohttpd): its listen address,
 * its API token and its lifetime.  What each request does is http_api.h;
 * this module only moves bytes between sockets and bs_api_handle.
 *
 * Slow clients: a connection idle for timeout_s is closed (libmicrohttpd);
 * one whose request has not arrived whole (headers and body) request_s
 * after it began - a client trickling bytes to hold the connection - is
 * shut down by the server's reaper thread; at most max_conns connections
 * are served at once and at most max_per_ip from one address, so one
 * client cannot take every connection.  A request being answered (a
 * long poll, an event stream) has no deadline.
 *
 * Threads: the server runs on its own threads (one per connection, at
 * most [http] max_connections), never on the daemon's libuv loop, so the
 * replication loop never waits for HTTP and HTTP never waits for an
 * exchange.  Each request reads in its own LMDB read transaction; writes
 * run in a write transaction through the core API (concurrent PUTs and
 * DELETEs of one record share one: http_write.h), then call the api's
 * `changed` hook (docs/api.md).
 *
 * The address is HOST:PORT with HOST an IPv4 address, `localhost` or an
 * IPv6 address in brackets ([::1]:7480).  A loopback address serves plain
 * HTTP; any other needs TLS ([http] cert and key, PEM files).
 */
#ifndef BS_HTTP_H
#define BS_HTTP_H

#include <sys/socket.h>

#include "../replication/common.h"
#include "http_api.h"

#define BS_HTTP_DEFAULT_LISTEN "127.0.0.1:7480"
#define BS_HTTP_TOKEN_LEN      64 /* hex characters */

/*
 * Parse a listen address into *sa (*salen its length) and say whether it
 * is a loopback address.  BS_EINVAL for anything else (err names the
 * rule).  sa and loopback may be NULL to only check.
 */
BS_MUST_CHECK bs_err bs_http_addr_parse(const char *addr,
                                        struct sockaddr_storage *sa,
                                        socklen_t *salen, int *loopback,
                                        bs_errbuf *err);

/*
 * The API token of the node in dir: DIR/keys/api.token, BS_HTTP_TOKEN_LEN
 * hex characters.  With `create`, a missing file is made first (random,
 * mode 0600, written atomically); nodes made before the HTTP API get
 * theirs this way on the first daemon start or `branchsync api-token`.
 * BS_ENOTFOUND when missing and not `create`; BS_EKEY when it is not a
 * token or readable by others than the owner.  buf gets the token and a
 * NUL.
 */
BS_MUST_CHECK bs_err bs_http_token_load(const char *dir, int create,
                                        char buf[BS_HTTP_TOKEN_LEN + 1],
                                        bs_errbuf *err);

typedef struct bs_http bs_http;

typedef struct bs_http_opts {
    const char *listen;  /* HOST:PORT */
    const char *cert;    /* PEM file paths; both NULL or "": plain HTTP */
    const char *key;     /* (refused for a non-loopback address) */
    unsigned max_conns;  /* 0: 64 */
    unsigned timeout_s;  /* idle connection limit; 0: 30 */
    unsigned max_per_ip; /* connections from one address; 0: max_conns/2 */
    unsigned request_s;  /* a request's headers and body must arrive
                            within this of its start; 0: 30 */
    size_t body_max;     /* request bodies over this: 413; 0: 64 MiB */
    bs_api *api;         /* borrowed until bs_http_stop */
} bs_http_opts;

/*
 * Check o without binding: the address parses, and a non-loopback one
 * has a cert and a key that can be read.  BS_EINVAL with the reason (the
 * daemon refuses to start on it).
 */
BS_MUST_CHECK bs_err bs_http_check(const bs_http_opts *o, bs_errbuf *err);

/*
 * Bind o->listen and start serving on the server's own threads.  BS_EIO
 * ("cannot bind 127.0.0.1:7480: Address already in use") when the address
 * cannot be bound: the caller retries later.  *out is set only on BS_OK.
 */
BS_MUST_CHECK bs_err bs_http_start(const bs_http_opts *o, bs_http **out,
                                   bs_errbuf *err);

/* Stop serving, wait for the connection threads, free.  NULL: no-op. */
void bs_http_stop(bs_http *h);

#endif
