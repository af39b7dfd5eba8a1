/*
 * control.c - the local control socket, ipc://DIR/control.sock, both ends.
 *
 * The daemon's side (a ROUTER that daemon.c opens and polls) answers the
 * requests listed in daemon.h: ping, reload, changed, sync and status.  A
 * "sync" is answered only when the link's exchange ends, by link.c.  The
 * client's side (control.h) is what the CLI calls: one request on a DEALER,
 * then a wait for the reply that keeps checking the daemon is still alive.
 */
#include "control.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon_int.h"

/* ==== the daemon's side (loop thread) ==== */

void
bs_control_reply(bs_daemon *d, const uint8_t *rid, size_t rn, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    if (s != NULL && bs_zsend(d->control, rid, rn, s, strlen(s)) != BS_OK)
        bs_daemon_log(d, BS_LOG_WARN, "control: reply dropped");
    free(s);
    json_decref(j);
}

static void
serve_sync(bs_daemon *d, const bs_zin *m, json_t *j)
{
    const char *peer = json_string_value(json_object_get(j, "peer"));
    bs_err rv = peer ? bs_link_sync(d, peer, m->rid, m->rn) : BS_ENOTFOUND;

    /* BS_ENOMEM drops the request: the caller times out. */
    if (rv == BS_ENOTFOUND)
        bs_control_reply(d, m->rid, m->rn,
                         json_pack("{s:b, s:s, s:i}", "ok", 0, "error",
                                   "unknown peer", "code", (int)BS_ENOTFOUND));
}

/* The exchanges peers started: running, the most at once, the cap and
 * the HELLOs told to retry later because of it. */
static json_t *
inbound_status(bs_daemon *d)
{
    return json_pack("{s:i, s:i, s:i, s:I}", "running", (int)d->inbound_n,
                     "peak", (int)d->inbound_peak, "max",
                     (int)d->n->cfg.max_sessions, "busy",
                     (json_int_t)d->busy_refused);
}

/* The apply worker: transactions committed, the sets in them, and the
 * sets waiting for the next. */
static json_t *
applier_status(bs_daemon *d)
{
    uint64_t batches = 0, sets = 0;
    size_t queued = 0;

    if (d->applier != NULL) {
        bs_applier_stats(d->applier, &batches, &sets);
        queued = bs_applier_queued(d->applier);
    }
    return json_pack("{s:I, s:I, s:I}", "batches", (json_int_t)batches, "sets",
                     (json_int_t)sets, "queued", (json_int_t)queued);
}

void
bs_control_serve(bs_daemon *d, const bs_zin *m)
{
    json_t *j = json_loadb((const char *)m->msg, m->n, 0, NULL);
    const char *cmd = json_string_value(json_object_get(j, "cmd"));
    bs_errbuf err = {{0}};

    if (cmd == NULL) {
        bs_control_reply(
            d, m->rid, m->rn,
            json_pack("{s:b, s:s}", "ok", 0, "error", "bad control request"));
    } else if (strcmp(cmd, "ping") == 0) {
        json_t *r = json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid());
        /* The HTTP API's trouble, for doctor and status. */
        if (d->http_error[0])
            json_object_set_new(r, "http_error", json_string(d->http_error));
        bs_control_reply(d, m->rid, m->rn, r);
    } else if (strcmp(cmd, "reload") == 0) {
        bs_err rv = bs_link_reload(d, &err);
        bs_daemon_log(d, BS_LOG_INFO, "peers reloaded%s%s", rv ? ": " : "",
                      rv ? bs_errmsg(&err, rv) : "");
        bs_daemon_backup_arm(d);
        bs_control_reply(d, m->rid, m->rn,
                         json_pack("{s:b}", "ok", rv == BS_OK));
    } else if (strcmp(cmd, "changed") == 0) {
        /* Answer first: the writer need not wait for the exchange. */
        bs_control_reply(d, m->rid, m->rn, json_pack("{s:b}", "ok", 1));
        bs_link_push(d, NULL, "local write");
    } else if (strcmp(cmd, "sync") == 0) {
        serve_sync(d, m, j);
    } else if (strcmp(cmd, "status") == 0) {
        bs_control_reply(d, m->rid, m->rn,
                         json_pack("{s:b, s:o, s:o, s:o}", "ok", 1, "links",
                                   bs_link_status(d), "inbound",
                                   inbound_status(d), "applier",
                                   applier_status(d)));
    } else {
        bs_control_reply(d, m->rid, m->rn,
                         json_pack("{s:b, s:s}", "ok", 0, "error",
                                   "unknown control command"));
    }
    json_decref(j);
}

/* ==== the client's side (the CLI) ==== */

/* 1 when a daemon listens on the control socket: a plain connect() tells
 * at once, even when a killed daemon left the socket file behind. */
static int
daemon_listening(const char *path)
{
    struct sockaddr_un a;
    int fd, ok;

    if (strlen(path) >= sizeof a.sun_path)
        return 1; /* cannot tell: let ZeroMQ try */
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path, strlen(path));
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return 1;
    ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Wait up to ms for a reply on sock: the reply as a NUL-terminated,
 * malloc'd text when it is JSON, else NULL. */
static char *
await_reply(bs_zsock *sock, int ms)
{
    int ready = 0;
    bs_zin in;
    json_t *j = NULL;
    char *text = NULL;

    for (int waited = 0; waited < ms && !ready; waited += 100)
        bs_zpoll(&sock, 1, 100, &ready);
    if (ready && bs_zrecv(sock, 0, &in) == BS_OK) {
        j = json_loadb((const char *)in.msg, in.n, 0, NULL);
        if (j != NULL && (text = malloc(in.n + 1)) != NULL) {
            memcpy(text, in.msg, in.n);
            text[in.n] = '\0';
        }
        json_decref(j);
        free(in.msg);
    }
    return text;
}

/* How long a ping may take: the loop answers it between two events, and
 * one event (applying a large set, on a loaded machine or under a
 * sanitizer) can take seconds; a daemon that is gone fails the connect at
 * once instead. */
#define PING_WAIT_MS 10000

bs_err
bs_control_call(const char *dir, const char *request_json, int wait_ms,
                char **reply_json, bs_errbuf *err)
{
    char path[4200], *reply = NULL;
    bs_zmq *z = NULL;
    bs_zsock *sock = NULL, *ping = NULL;
    bs_err rv = BS_ENOTFOUND;
    static const char pingmsg[] = "{\"cmd\":\"ping\"}";

    snprintf(path, sizeof path, "%s/control.sock", dir);
    if (access(path, F_OK) != 0 || !daemon_listening(path))
        return BS_ENOTFOUND;
    if (bs_zmq_new(&z, NULL) != BS_OK ||
        bs_control_dial(z, dir, &sock, NULL) != BS_OK ||
        bs_zsend(sock, NULL, 0, request_json, strlen(request_json)) != BS_OK)
        goto out;
    for (int waited = 0; waited < wait_ms; waited += 2000) {
        char *pong;
        if ((reply = await_reply(sock, 2000)) != NULL) {
            rv = BS_OK;
            break;
        }
        /* Still working, or gone?  Ask on a second connection. */
        if (ping == NULL && bs_control_dial(z, dir, &ping, NULL) != BS_OK)
            break;
        if (bs_zsend(ping, NULL, 0, pingmsg, strlen(pingmsg)) != BS_OK ||
            (pong = await_reply(ping, PING_WAIT_MS)) == NULL) {
            rv = bs_errf(err, BS_EUNREACHABLE,
                         "the daemon of %s stopped answering", dir);
            break;
        }
        free(pong);
    }
out:
    bs_zclose(ping);
    bs_zclose(sock);
    bs_zmq_free(z);
    if (rv == BS_OK)
        *reply_json = reply;
    return rv;
}
