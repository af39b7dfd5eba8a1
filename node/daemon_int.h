/*
 * daemon_int.h - PRIVATE to branchsyncd's own files: daemon.c (the loop,
 * signals, inbound exchanges, start and stop), link.c (one link per paired
 * peer) and control.c (the control socket's server side).  Nothing else
 * includes it; the daemon's public surface is daemon.h, the control
 * client's is control.h.
 *
 * It holds the daemon's state, shared by the three files, and the calls
 * between them.  Everything here runs on the loop thread only; the apply
 * worker (applier.h) and the HTTP threads reach the loop only through
 * uv_async handles.  ZeroMQ's
 * descriptors are edge-triggered, so every callback, in whichever file,
 * ends in bs_daemon_pump().
 */
#ifndef BS_DAEMON_INT_H
#define BS_DAEMON_INT_H

#include <jansson.h>
#include <uv.h>

#include "../replication/session.h"
#include "applier.h"
#include "daemon.h"
#include "http.h"
#include "metrics.h"
#include "transport.h"

#define BS_DAEMON_IDLE_MS 30000u /* a session silent this long has failed */

typedef struct bs_link bs_link;         /* link.c */
typedef struct bs_incoming bs_incoming; /* daemon.c */

/* The daemon: one per process, on bs_daemon_run()'s stack. */
typedef struct bs_daemon {
    uv_loop_t loop;
    bs_node *n;
    bs_zmq *z;
    const uint8_t *sk; /* borrowed from n (bs_node_secret) */
    uint8_t curve_pk[32], curve_sk[32];
    bs_zsock *listener, *control; /* owned; closed by bs_daemon_run */
    uv_poll_t lpoll, cpoll, zpoll;
    uv_timer_t sweep;
    uv_timer_t held;   /* retries held sets when their time comes */
    uv_timer_t backup; /* the next scheduled backup (backups.h) */
    /* log compaction (compact_timer.c) */
    uv_timer_t compact;
    uv_signal_t sigterm, sigint, sighup;
    bs_link *links;                /* owned (link.c) */
    bs_incoming *inbound;          /* owned (daemon.c) */
    int level;                     /* bs_log_level: what bs_daemon_log prints */
    const struct bs_log_sink *log; /* the journal, or NULL: stderr */
    /* The HTTP API (daemon.c): served on its own threads while http is
     * set; otherwise http_error says why and http_retry tries again. */
    bs_http *http;
    bs_api api;
    int api_ready;
    uv_async_t http_changed; /* an HTTP write committed */
    uv_timer_t http_retry;
    char http_error[BS_ERRMSG_LEN];
    bs_metrics metrics; /* GET /metrics: written here, read by HTTP */
    /* The apply worker (applier.h): every session's received sets go
     * there; `applied` wakes the loop when some are done.  Sessions are
     * found again by their id (bs_daemon_sid), never by pointer: a
     * session may end while its sets are applied. */
    bs_applier *applier;
    uv_async_t applied;
    uint64_t last_sid;
    /* Exchanges peers started with us (daemon.c): running now, the most
     * ever, and HELLOs told to retry later because max_sessions ran. */
    unsigned inbound_n, inbound_peak;
    uint64_t busy_refused;
    int stopping, pumping;
} bs_daemon;

/* ---- compact_timer.c ---- */

/* Start the log compaction timer (replication/compact.h): a minute after
 * start, then every hour, or a second after a run that stopped at its
 * bound; each run logs what it dropped.  Loop thread. */
void bs_daemon_compact_arm(bs_daemon *d);

/* ---- daemon.c ---- */

/* One line when level <= d->level: on stderr (journald adds the time),
 * or as a journal entry with a field per key=value word (log.h). */
void bs_daemon_log(bs_daemon *d, int level, const char *fmt, ...)
    BS_PRINTF(3, 4);
/* The wall clock, in milliseconds. */
uint64_t bs_daemon_now_ms(void);
/* Read every socket and flush every session until a full pass finds
 * nothing to do.  Re-entrant calls return at once. */
void bs_daemon_pump(bs_daemon *d);
/* A new session id (never 0, never reused by this process). */
uint64_t bs_daemon_sid(bs_daemon *d);
/* The session config every daemon session shares (store, key, clock,
 * limits, deferred apply); the caller sets initiator, peer and
 * authenticated. */
bs_session_cfg bs_daemon_session_cfg(bs_daemon *d);
/* Deliver one message to s (whose id is sid); a failure shows in the
 * session's state.  The sets it received go to the apply worker; their
 * outcomes come back to the session on the loop (bs_session_applied),
 * counted (d->metrics) and waking the HTTP change feeds then. */
void bs_daemon_feed(bs_daemon *d, bs_session *s, uint64_t sid, const uint8_t *m,
                    size_t n);
/* Send what s has on sock (bs_client_flush); 1 if anything moved.  A send
 * error shows up as the peer's silence (the idle limit ends the session).
 * Counts the changes sent (d->metrics). */
int bs_daemon_flush(bs_daemon *d, bs_zsock *sock, const uint8_t *rid, size_t rn,
                    bs_session *s, uint8_t **held, size_t *hn);
/* Plan the next retry of held sets (after an exchange may have held some):
 * when the first set held for its clock may apply, else in at most
 * BS_DAEMON_HELD_RETRY_MS. */
void bs_daemon_held_check(bs_daemon *d);

#define BS_DAEMON_HELD_RETRY_MS 60000u

/* Re-read [backup] from the configuration file and arm the backup timer
 * for the next scheduled run (none when no backup is scheduled). */
void bs_daemon_backup_arm(bs_daemon *d);

/* ---- link.c: the links to the paired peers ---- */

/*
 * Re-read the peers table: replace the ZAP allow-list, add a link for each
 * new peer, update the endpoint, key and schedule of the others (a link
 * with a changed endpoint or key reconnects after its current exchange)
 * and remove the links of removed peers.  Online links start at once.
 */
BS_MUST_CHECK bs_err bs_link_reload(bs_daemon *d, bs_errbuf *err);
/* Start an exchange (reason `why`, for the log) on every online link
 * except the one named `except` (NULL: none excepted). */
void bs_link_push(bs_daemon *d, const char *except, const char *why);
/*
 * A control request for an exchange with `peer` now: its reply goes to
 * routing id rid on the control socket when the exchange ends (after the
 * next one, if one is running).  BS_ENOTFOUND: no such link (nothing will
 * be answered); BS_ENOMEM: the request is dropped.
 */
BS_MUST_CHECK bs_err bs_link_sync(bs_daemon *d, const char *peer,
                                  const uint8_t *rid, size_t rn);
/* Each link's state as a new JSON array, for the "status" request. */
json_t *bs_link_status(bs_daemon *d);
/* The outbound session whose id is sid, or NULL (it ended). */
bs_session *bs_link_session(bs_daemon *d, uint64_t sid);
/* Read every link's sockets, flush its session and end finished
 * exchanges; 1 if anything happened. */
int bs_link_pump(bs_daemon *d);
/* Fail the exchanges silent for longer than BS_DAEMON_IDLE_MS. */
void bs_link_sweep(bs_daemon *d, uint64_t now);
/* Release every link: their waiters get an error reply, their timers are
 * closed through libuv and freed by the close callbacks, so the loop must
 * run once more afterwards. */
void bs_link_free_all(bs_daemon *d);

/* ---- control.c: the control socket's server side ---- */

/* Send j (reference taken) to routing id rid on the control socket. */
void bs_control_reply(bs_daemon *d, const uint8_t *rid, size_t rn, json_t *j);
/* Answer one control request (daemon.h lists them). */
void bs_control_serve(bs_daemon *d, const bs_zin *m);

#endif
