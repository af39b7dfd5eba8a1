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

/* Exchange with peer `name` both ways; BS_OK once both sides acknowledged.
 * Records the outcome in the exchange log and the peer's last error. */
BS_MUST_CHECK bs_err bs_client_sync(bs_node *n, bs_zmq *z, const char *name,
                                    int timeout_ms, bs_session_stats *st,
                                    bs_errbuf *err);

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
