/*
 * transport.h - ZeroMQ with CURVE, the only home of <zmq.h>.
 *
 * Every listener is a ROUTER socket with CURVE (server side) and the ZAP
 * domain "branchsync"; the ZAP handler, bound before any listener
 * (docs/reliability.md P19), admits only the CURVE keys of paired peers and
 * fails closed: an unknown key, another mechanism, or a malformed request is
 * refused.  Dialers are DEALER sockets with CURVE (client side) that know
 * the server's key from its node ID, plus a monitor that reports an
 * authentication refusal (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH), which is the
 * only way a client learns of it.  Message size is capped
 * (ZMQ_MAXMSGSIZE) and high-water marks are set (P20, P25).
 *
 * Every call here is non-blocking unless it says otherwise.
 */
#ifndef BS_TRANSPORT_H
#define BS_TRANSPORT_H

#include "../replication/changeset.h"
#include "../replication/common.h"
#include "../replication/crypto.h"

#define BS_ZAP_DOMAIN "branchsync"

/*
 * ZMQ_MAXMSGSIZE of every socket: ZeroMQ drops the connection of a peer
 * that sends a longer message, before allocating it.  The limit comes from
 * the change-set limits (changeset.h): a SET message is 1 type byte and a
 * set; every other message is smaller (an envelope, a HELLO or ACK, is at
 * most BS_ENVELOPE_MAX).
 */
#define BS_MSG_MAX BS_SET_MAX_MESSAGE
_Static_assert(BS_MSG_MAX >= 1 + BS_SET_MAX_ENCODED &&
                   BS_MSG_MAX >= 1 + BS_ENVELOPE_MAX,
               "every session message must fit ZMQ_MAXMSGSIZE");

/*
 * Ownership.  A bs_zmq is a ZeroMQ context.  Every socket made from it (a
 * bs_zsock: listener, control socket, dialer or a dialer's monitor) belongs
 * to whoever asked for it, who closes it with bs_zclose() BEFORE
 * bs_zmq_free(): zmq_ctx_term() waits for every socket of the context to
 * be closed, so a socket left open makes bs_zmq_free() hang.  The ZAP
 * socket is the context's own (bs_zap_socket() lends it) and closes with
 * bs_zmq_free().  Sockets are not thread-safe: use each from one thread.
 */
typedef struct bs_zmq bs_zmq;
typedef struct bs_zsock bs_zsock;

/* One admitted peer: its Ed25519 key and the CURVE key derived from it. */
typedef struct bs_allowed {
    uint8_t ed_pk[BS_PK_LEN];
    uint8_t curve_pk[32];
    char name[BS_NODE_NAME_MAX + 1];
} bs_allowed;

/* A context; BS_EINTERNAL if libzmq is older than 4.3.2 (P20).  *out is
 * set only on BS_OK. */
BS_MUST_CHECK bs_err bs_zmq_new(bs_zmq **out, bs_errbuf *err);
/* Close the ZAP socket and terminate the context; every other socket must
 * be closed already (see above).  NULL is a no-op. */
void bs_zmq_free(bs_zmq *z);

/* Start the ZAP handler (bind inproc://zeromq.zap.01); before listeners. */
BS_MUST_CHECK bs_err bs_zap_start(bs_zmq *z, bs_errbuf *err);
/* Replace the allow-list (copied: v stays the caller's). */
BS_MUST_CHECK bs_err bs_zap_allow(bs_zmq *z, const bs_allowed *v, size_t n);
/* Answer every pending ZAP request.  Each refusal is reported through
 * `refused(ctx, text)` for the log. */
void bs_zap_serve(bs_zmq *z, void (*refused)(void *ctx, const char *why),
                  void *ctx);
/* The ZAP socket, for polling its descriptor: borrowed, owned by z (NULL
 * before bs_zap_start); never pass it to bs_zclose. */
bs_zsock *bs_zap_socket(bs_zmq *z);

/*
 * Making sockets.  Each sets *out (and *monitor) only on BS_OK; the caller
 * owns them and closes each with bs_zclose before bs_zmq_free.
 */
/* A CURVE ROUTER bound to endpoint. */
BS_MUST_CHECK bs_err bs_listen(bs_zmq *z, const char *endpoint,
                               const uint8_t curve_sk[32], bs_zsock **out,
                               bs_errbuf *err);
/* A plain ROUTER on ipc://DIR/control.sock (the directory is 0700). */
BS_MUST_CHECK bs_err bs_control_listen(bs_zmq *z, const char *dir,
                                       bs_zsock **out, bs_errbuf *err);
/* A CURVE DEALER connecting to endpoint; *monitor gets a PAIR socket with
 * its events (bs_monitor_event).  Close the monitor and the dialer apart,
 * each with bs_zclose, in either order. */
BS_MUST_CHECK bs_err bs_dial(bs_zmq *z, const char *endpoint,
                             const uint8_t my_curve_pk[32],
                             const uint8_t my_curve_sk[32],
                             const uint8_t server_curve_pk[32], bs_zsock **out,
                             bs_zsock **monitor, bs_errbuf *err);
/* A plain DEALER to a node's control socket (the CLI's side). */
BS_MUST_CHECK bs_err bs_control_dial(bs_zmq *z, const char *dir, bs_zsock **out,
                                     bs_errbuf *err);
/* Close sock at once (ZMQ_LINGER 0: messages still queued in it are
 * dropped) and free it.  NULL is a no-op. */
void bs_zclose(bs_zsock *sock);

/* The socket's file descriptor for an event loop (edge-triggered: after
 * it fires, and after every send or receive, check bs_zreadable).  The
 * descriptor is the socket's: do not close it or read from it. */
int bs_zfd(bs_zsock *sock);
int bs_zreadable(bs_zsock *sock);

/*
 * Send one message, prefixed by routing id rid (ROUTER) when rn > 0.
 * zmq_send() copies p (and rid) into a message of its own before it
 * returns, so the buffers stay the caller's, to free or reuse at once,
 * whatever the result.  On a DEALER a full queue (high-water mark) gives
 * BS_ETIMEOUT and nothing is queued: send the same bytes again later.  A
 * ROUTER (without ZMQ_ROUTER_MANDATORY) silently drops a message for a
 * peer whose queue is full or that is gone, and still returns BS_OK.
 * Other failures give BS_EUNREACHABLE.
 */
BS_MUST_CHECK bs_err bs_zsend(bs_zsock *sock, const void *rid, size_t rn,
                              const void *p, size_t n);
/* Receive one message without blocking: BS_ENOTFOUND when none.  For a
 * ROUTER, rid (up to 256 bytes) and the ZAP user id (peer name) are set.
 * On BS_OK in->msg is malloc'd and the caller frees it (also when n is 0);
 * on an error it is NULL. */
typedef struct bs_zin {
    uint8_t rid[256];
    size_t rn;
    char user[BS_NODE_NAME_MAX + 1];
    uint8_t *msg;
    size_t n;
} bs_zin;
BS_MUST_CHECK bs_err bs_zrecv(bs_zsock *sock, int router, bs_zin *in);

/* Wait up to timeout_ms for any of socks (at most 8) to be readable
 * (blocking); ready[i] is set for each. */
int bs_zpoll(bs_zsock *const *socks, int n, int timeout_ms, int *ready);

/* Read one monitor event: 1 and *auth_failed set when the peer's ZAP
 * refused us; 0 when none is pending. */
int bs_monitor_event(bs_zsock *monitor, int *auth_failed, int *connected,
                     int *disconnected);

#endif
