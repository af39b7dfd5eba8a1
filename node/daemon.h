/*
 * daemon.h - branchsyncd: one libuv loop that drives the ZeroMQ sockets
 * (through their file descriptors), the schedule timers, the control
 * socket and signals.
 *
 * Per paired peer a link runs on its schedule: `online` keeps a
 * connection and exchanges within milliseconds of a local commit (the CLI
 * notifies the daemon through the control socket) or of changes relayed
 * from another peer; `every …` and cron specs fire on timers; `manual`
 * waits for `branchsync sync`.  A window, when set, confines exchanges to
 * it.  Failures retry with capped, jittered exponential backoff.
 *
 * Control socket: ipc://DIR/control.sock (DIR is 0700, so only the node's
 * owner reaches it).  Requests and replies are JSON objects:
 *   {"cmd":"ping"}                 -> {"ok":true,"pid":N} (and
 *                                     "http_error" while the HTTP API
 *                                     cannot be served, http.h)
 *   {"cmd":"sync","peer":"NAME"}   -> when done: {"ok":true,...stats} or
 *                                     {"ok":false,"error":"...","code":N}
 *   {"cmd":"reload"}               -> re-read peers, schedules, allow-list
 *   {"cmd":"changed"}              -> a local write: push to online peers
 *   {"cmd":"status"}               -> per-peer next run and link state
 *                                     ("links"), the exchanges peers
 *                                     started ("inbound": running, peak,
 *                                     max, busy) and the apply worker
 *                                     ("applier": batches, sets, queued)
 * The CLI sends them with bs_control_call (control.h).
 *
 * The HTTP API (http.h, http_api.h) runs on its own threads; a write it
 * makes wakes the loop through a uv_async handle, as "changed" does.
 * Received change sets are applied on one more thread (applier.h), whose
 * outcomes come back to the loop the same way.
 *
 * The daemon is three files sharing daemon_int.h: daemon.c (the loop,
 * signals, start and stop, exchanges peers start with us), link.c (the
 * links) and control.c (the control socket).  This header is its whole
 * public surface.
 */
#ifndef BS_DAEMON_H
#define BS_DAEMON_H

#include "node.h"

typedef enum {
    BS_LOG_ERROR = 0,
    BS_LOG_WARN = 1,
    BS_LOG_INFO = 2,
    BS_LOG_DEBUG = 3,
} bs_log_level;

typedef struct bs_daemon_opts {
    const char *dir;
    int log_level; /* -1: from the configuration file */
} bs_daemon_opts;

/* Run until SIGTERM/SIGINT; returns the process exit status. */
int bs_daemon_run(const bs_daemon_opts *o);

#endif
