/*
 * transport.h - ZeroMQ with CURVE, the only home of <zmq.h>.
 *
 * Every listener is a ROUTER socket with CURVE (server side) and the ZAP
 * domain "branchsync"; the ZAP handler, bound before any listener
 * (RELIABILITY P19), admits only the CURVE keys of paired peers and fails
 * closed: an unknown key, another mechanism, or a malformed request is
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

#include "../replication/common.h"
#include "../replication/crypto.h"

#define BS_ZAP_DOMAIN         "branchsync"
#define BS_MSG_MAX            (BS_SET_MAX_BYTES_WIRE)
#define BS_SET_MAX_BYTES_WIRE ((8u << 20) + (1u << 20))

typedef struct bs_zmq bs_zmq;

/* One admitted peer: its Ed25519 key and the CURVE key derived from it. */
typedef struct bs_allowed {
    uint8_t ed_pk[BS_PK_LEN];
    uint8_t curve_pk[32];
    char name[BS_NODE_NAME_MAX + 1];
} bs_allowed;

/* A context; BS_EINTERNAL if libzmq is older than 4.3.2 (P20). */
BS_MUST_CHECK bs_err bs_zmq_new(bs_zmq **out, bs_errbuf *err);
void bs_zmq_free(bs_zmq *z);

/* Start the ZAP handler (bind inproc://zeromq.zap.01); before listeners. */
BS_MUST_CHECK bs_err bs_zap_start(bs_zmq *z, bs_errbuf *err);
/* Replace the allow-list (copied). */
BS_MUST_CHECK bs_err bs_zap_allow(bs_zmq *z, const bs_allowed *v, size_t n);
/* Answer every pending ZAP request.  Each refusal is reported through
 * `refused(ctx, text)` for the log. */
void bs_zap_serve(bs_zmq *z, void (*refused)(void *ctx, const char *why),
                  void *ctx);
void *bs_zap_socket(bs_zmq *z);

/* A CURVE ROUTER bound to endpoint. */
BS_MUST_CHECK bs_err bs_listen(bs_zmq *z, const char *endpoint,
                               const uint8_t curve_sk[32], void **out,
                               bs_errbuf *err);
/* A plain ROUTER on ipc://DIR/control.sock (the directory is 0700). */
BS_MUST_CHECK bs_err bs_control_listen(bs_zmq *z, const char *dir, void **out,
                                       bs_errbuf *err);
/* A CURVE DEALER connecting to endpoint; *monitor gets a PAIR socket with
 * its events.  Both close with bs_zclose. */
BS_MUST_CHECK bs_err bs_dial(bs_zmq *z, const char *endpoint,
                             const uint8_t my_curve_pk[32],
                             const uint8_t my_curve_sk[32],
                             const uint8_t server_curve_pk[32], void **out,
                             void **monitor, bs_errbuf *err);
/* A plain DEALER to a node's control socket (the CLI's side). */
BS_MUST_CHECK bs_err bs_control_dial(bs_zmq *z, const char *dir, void **out,
                                     bs_errbuf *err);
void bs_zclose(void *sock);

/* The socket's file descriptor for an event loop (edge-triggered: after
 * it fires, and after every send or receive, check bs_zreadable). */
int bs_zfd(void *sock);
int bs_zreadable(void *sock);

/*
 * Send one message, prefixed by routing id rid (ROUTER) when rn > 0.
 * BS_ETIMEOUT when it would block (high-water mark reached).
 */
BS_MUST_CHECK bs_err bs_zsend(void *sock, const void *rid, size_t rn,
                              const void *p, size_t n);
/* Receive one message without blocking: BS_ENOTFOUND when none.  For a
 * ROUTER, rid (up to 256 bytes) and the ZAP user id (peer name) are set.
 * *msg is malloc'd. */
typedef struct bs_zin {
    uint8_t rid[256];
    size_t rn;
    char user[BS_NODE_NAME_MAX + 1];
    uint8_t *msg;
    size_t n;
} bs_zin;
BS_MUST_CHECK bs_err bs_zrecv(void *sock, int router, bs_zin *in);

/* Wait up to timeout_ms for any of socks to be readable (blocking). */
int bs_zpoll(void **socks, int n, int timeout_ms, int *ready);

/* Read one monitor event: 1 and *auth_failed set when the peer's ZAP
 * refused us; 0 when none is pending. */
int bs_monitor_event(void *monitor, int *auth_failed, int *connected,
                     int *disconnected);

#endif
