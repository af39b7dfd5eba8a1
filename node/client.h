/*
 * client.h - running one network exchange to the end from a blocking loop:
 * `branchsync sync PEER` when no daemon runs, and the daemon's tests.
 * The daemon itself drives the same session from its event loop.
 */
#ifndef BS_CLIENT_H
#define BS_CLIENT_H

#include "../replication/session.h"
#include "node.h"
#include "transport.h"

/* How a blocking exchange runs. */
typedef struct bs_client_opts {
    int timeout_ms; /* the whole exchange */
    /* no connection to the peer within this: BS_EUNREACHABLE naming the
     * address tried (0: the node's [sync] connect_timeout_s) */
    int connect_timeout_ms;
    bs_clock clock; /* now_ms NULL: the system clock */
} bs_client_opts;

/*
 * Exchange with peer `name` both ways; BS_OK once both sides acknowledged.
 * Records the outcome in the exchange log and the peer's last error.
 * problem (np bytes) gets what the exchange found wrong although it
 * completed (bs_client_problem), "" when nothing.
 */
BS_MUST_CHECK bs_err bs_client_sync(bs_node *n, bs_zmq *z, const char *name,
                                    const bs_client_opts *o,
                                    bs_session_stats *st, char *problem,
                                    size_t np, bs_errbuf *err);

/*
 * What a completed exchange with `peer` found wrong (its counters st and
 * bs_session_refused_reason), in one line for the log, the exchange log
 * and `sync` (exit 1), "" when nothing: sets the peer sent that were
 * refused here (how many, the first reason), sets sent to the
 * peer that its acknowledgement does not cover (held or refused there;
 * "our clock is N s ahead" when the clocks say why), and this node's
 * clock ahead of the peer's beyond cfg's max_skew.
 */
void bs_client_problem(const bs_session_stats *st, const char *peer,
                       const char *refused_reason, const bs_config *cfg,
                       char *buf, size_t n);

/*
 * Send what session s has for the peer on sock (prefixed by routing id rid
 * when rn > 0).  A message the socket cannot take now (high-water mark)
 * stays in *held for the next call.  *moved (if given) is set when
 * anything was sent.
 */
BS_MUST_CHECK bs_err bs_client_flush(bs_session *s, bs_zsock *sock,
                                     const uint8_t *rid, size_t rn,
                                     uint8_t **held, size_t *hn, int *moved);

/* Write one exchange-log entry (and the peer's last success/error). */
void bs_client_log(bs_node *n, const char *peer, const char *via,
                   const char *direction, const bs_session_stats *st,
                   uint64_t started_ms, const char *error);

#endif
