/*
 * control.h - calling a running daemon over its local control socket,
 * ipc://DIR/control.sock: the CLI's side.  The requests and their replies
 * are listed in daemon.h; the daemon's side, which answers them, is in
 * control.c as well (declared in daemon_int.h, private to the daemon).
 *
 * Only the node directory's owner reaches the socket (DIR is 0700), so the
 * requests carry no credentials.
 */
#ifndef BS_CONTROL_H
#define BS_CONTROL_H

#include "../replication/common.h"

/*
 * Send request_json (one JSON text, e.g. {"cmd":"ping"}) to the daemon of
 * node directory dir and wait up to wait_ms for its reply.  Blocking.
 * Whenever 2 s pass without the reply, the daemon is asked on a second
 * connection whether it is still there: a ping it must answer within 10 s
 * (a loop busy applying a large set answers late, not never).
 * A reply that is not JSON is ignored, as if none had come.
 *
 * Returns:
 *   BS_OK            *reply_json is the reply, a NUL-terminated JSON text,
 *                    malloc'd: the caller frees it;
 *   BS_ENOTFOUND     no daemon runs for dir (no control socket, or nothing
 *                    listens on it), or the socket could not be used; also
 *                    when wait_ms passed while the daemon still answered
 *                    pings.  Callers then go on as if no daemon ran;
 *   BS_EUNREACHABLE  the daemon stopped answering (it hangs, or died while
 *                    working on the request); the detail is in err.
 * *reply_json is set only on BS_OK.
 */
BS_MUST_CHECK bs_err bs_control_call(const char *dir, const char *request_json,
                                     int wait_ms, char **reply_json,
                                     bs_errbuf *err);

#endif
