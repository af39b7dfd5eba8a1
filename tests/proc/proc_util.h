/*
 * proc_util.h - helpers for the process-level tests (tests/proc/): run the
 * real `branchsync` CLI and `branchsyncd` daemon with fork/exec, capture
 * their output, wait with bounded polls, and clean up every daemon in the
 * fixture's teardown even when a test fails.
 *
 * Paths come from compile definitions BS_CLI_PATH and BS_DAEMON_PATH (the
 * build's targets); the environment variables BS_CLI and BS_DAEMON
 * override them.  Every child gets PR_SET_PDEATHSIG(SIGKILL), so a test
 * worker killed by Criterion's timeout takes its daemons with it.
 *
 * A failed test prints the tail of every daemon log and keeps its
 * directory; BS_PROC_KEEP=1 keeps (and prints) them for passing tests too.
 *
 * Header-only, for one translation unit: every function is static.
 */
#ifndef BS_PROC_UTIL_H
#define BS_PROC_UTIL_H

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BS_CLI_PATH
#error "compile with -DBS_CLI_PATH=\"/path/to/build/tools/branchsync\""
#endif
#ifndef BS_DAEMON_PATH
#error "compile with -DBS_DAEMON_PATH=\"/path/to/build/node/branchsyncd\""
#endif

#define P_CMD_TIMEOUT_MS 60000 /* any single CLI command */
#define P_MAX_NODES      8
#define P_MAX_ARGS       32

/* ---- time and polling ---- */

static uint64_t
p_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
p_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Poll `cond` every step_ms until it holds or timeout_ms passed; `ok` is
 * set to 1 when it held. */
#define POLL_STEP(ok, timeout_ms, step_ms, cond)                               \
    do {                                                                       \
        uint64_t dl_ = p_now_ms() + (uint64_t)(timeout_ms);                    \
        (ok) = 0;                                                              \
        for (;;) {                                                             \
            if (cond) {                                                        \
                (ok) = 1;                                                      \
                break;                                                         \
            }                                                                  \
            if (p_now_ms() >= dl_)                                             \
                break;                                                         \
            p_sleep_ms(step_ms);                                               \
        }                                                                      \
    } while (0)
#define POLL(ok, timeout_ms, cond) POLL_STEP(ok, timeout_ms, 50, cond)

/* ---- the fixture's state ---- */

typedef struct node {
    char name[32];
    char dir[PATH_MAX];
    char logpath[PATH_MAX]; /* the daemon's stderr, appended across runs */
    char endpoint[64];      /* "" for a node that does not listen */
    char id[128];
    int port;
    int http_port; /* its HTTP API on 127.0.0.1 ([http] listen) */
    pid_t pid;     /* the running daemon, 0 when none */
} node;

static char p_base[256];
static node p_nodes[P_MAX_NODES];
static int p_nnodes;
static int p_passed;
static pid_t p_bg[64]; /* background CLI processes not reaped yet */
static int p_nbg;

static const char *
p_cli_path(void)
{
    const char *e = getenv("BS_CLI");
    return e && *e ? e : BS_CLI_PATH;
}

static const char *
p_daemon_path(void)
{
    const char *e = getenv("BS_DAEMON");
    return e && *e ? e : BS_DAEMON_PATH;
}

/* ---- spawning ---- */

/* fork + exec argv with stdin from /dev/null, stdout to out_fd and stderr
 * to err_fd; every other descriptor closed. */
static pid_t
p_spawn(char *const argv[], int out_fd, int err_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();

    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
        int nul;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        nul = open("/dev/null", O_RDWR);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(out_fd, 1) < 0 ||
            dup2(err_fd, 2) < 0)
            _exit(127);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static int
p_decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -2;
}

typedef struct run {
    int status; /* exit code; 128+N when killed by signal N; -1 timed out */
    char *out, *err;
    size_t nout, nerr;
    char cmd[1024];
    uint64_t ms;
} run;

static void
run_free(run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
    r->nout = r->nerr = 0;
}

static void
p_append(char **buf, size_t *n, const char *p, size_t k)
{
    char *nb = realloc(*buf, *n + k + 1);

    cr_assert_not_null(nb, "out of memory");
    memcpy(nb + *n, p, k);
    *n += k;
    nb[*n] = '\0';
    *buf = nb;
}

/* Run argv to completion (or timeout_ms, then SIGKILL), capturing both
 * streams. */
static int
run_argv(run *r, char *const argv[], int timeout_ms)
{
    int po[2], pe[2], st = 0, open_ = 2;
    uint64_t t0 = p_now_ms(), dl = t0 + (uint64_t)timeout_ms;
    int timed_out = 0;
    pid_t pid;
    size_t off = 0;

    run_free(r);
    r->out = strdup("");
    r->err = strdup("");
    r->cmd[0] = '\0';
    for (int i = 0; argv[i] != NULL && off < sizeof r->cmd - 1; i++)
        off += (size_t)snprintf(r->cmd + off, sizeof r->cmd - off, "%s%s",
                                i ? " " : "", argv[i]);
    cr_assert_eq(pipe2(po, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(pe, O_CLOEXEC), 0);
    pid = p_spawn(argv, po[1], pe[1]);
    close(po[1]);
    close(pe[1]);
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    while (open_ > 0) {
        uint64_t now = p_now_ms();
        int wait = now >= dl ? 0 : (int)(dl - now);
        int rc = poll(fds, 2, wait > 200 ? 200 : wait);
        if (rc < 0 && errno != EINTR)
            break;
        if (p_now_ms() >= dl && !timed_out) {
            kill(pid, SIGKILL);
            timed_out = 1;
            dl = p_now_ms() + 5000; /* drain what is left */
        }
        for (int i = 0; i < 2; i++) {
            char buf[65536];
            ssize_t k;
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            k = read(fds[i].fd, buf, sizeof buf);
            if (k > 0) {
                if (i == 0)
                    p_append(&r->out, &r->nout, buf, (size_t)k);
                else
                    p_append(&r->err, &r->nerr, buf, (size_t)k);
            } else if (k == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_--;
            }
        }
        if (timed_out && p_now_ms() >= dl)
            break;
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    r->ms = p_now_ms() - t0;
    r->status = timed_out ? -1 : p_decode_status(st);
    return r->status;
}

/* The CLI on node n: branchsync -d DIR args... (NULL-terminated). */
static int
cli_v(run *r, const node *n, int timeout_ms, va_list ap)
{
    char *argv[P_MAX_ARGS + 4];
    int k = 0;
    const char *a;

    argv[k++] = (char *)p_cli_path();
    argv[k++] = "-d";
    argv[k++] = (char *)n->dir;
    while ((a = va_arg(ap, const char *)) != NULL) {
        cr_assert_lt(k, P_MAX_ARGS, "too many arguments");
        argv[k++] = (char *)a;
    }
    argv[k] = NULL;
    return run_argv(r, argv, timeout_ms);
}

static int
cli_(run *r, const node *n, ...)
{
    va_list ap;
    int rc;

    va_start(ap, n);
    rc = cli_v(r, n, P_CMD_TIMEOUT_MS, ap);
    va_end(ap);
    return rc;
}

#define CLI(r, n, ...) cli_((r), (n), __VA_ARGS__, (const char *)NULL)
#define CLI_OK(r, n, ...)                                                      \
    do {                                                                       \
        int st_ = CLI(r, n, __VA_ARGS__);                                      \
        cr_assert_eq(st_, 0, "`%s` exited %d\nstdout: %s\nstderr: %s",         \
                     (r)->cmd, st_, (r)->out, (r)->err);                       \
    } while (0)

/* Start the CLI in the background (output to FILE); returns its pid. */
static pid_t
cli_bg_(const node *n, const char *outfile, ...)
{
    char *argv[P_MAX_ARGS + 4];
    int k = 0, fd;
    const char *a;
    va_list ap;
    pid_t pid;

    argv[k++] = (char *)p_cli_path();
    argv[k++] = "-d";
    argv[k++] = (char *)n->dir;
    va_start(ap, outfile);
    while ((a = va_arg(ap, const char *)) != NULL && k < P_MAX_ARGS)
        argv[k++] = (char *)a;
    va_end(ap);
    argv[k] = NULL;
    fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "%s: %s", outfile, strerror(errno));
    pid = p_spawn(argv, fd, fd);
    close(fd);
    for (int i = 0; i < p_nbg; i++)
        if (p_bg[i] == 0) {
            p_bg[i] = pid;
            return pid;
        }
    if (p_nbg < (int)(sizeof p_bg / sizeof p_bg[0]))
        p_bg[p_nbg++] = pid;
    return pid;
}
#define CLI_BG(n, outfile, ...)                                                \
    cli_bg_((n), (outfile), __VA_ARGS__, (const char *)NULL)

/* Wait up to timeout_ms for pid; its decoded status, or -1 if still
 * running. */
static int
p_wait_pid(pid_t pid, int timeout_ms)
{
    uint64_t dl = p_now_ms() + (uint64_t)timeout_ms;
    int st;

    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            for (int i = 0; i < p_nbg; i++)
                if (p_bg[i] == pid)
                    p_bg[i] = 0; /* reaped: never signal it again */
            return p_decode_status(st);
        }
        if (w < 0 && errno != EINTR)
            return -3;
        if (p_now_ms() >= dl)
            return -1;
        p_sleep_ms(20);
    }
}

static json_t *
p_json(const run *r)
{
    json_error_t e;
    json_t *j = json_loads(r->out, 0, &e);

    cr_assert_not_null(j, "`%s`: output is not JSON (%s): %s", r->cmd, e.text,
                       r->out);
    return j;
}

/* ---- files ---- */

static char *
p_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;

    if (f != NULL) {
        char tmp[65536];
        size_t k;
        while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
            p_append(&buf, &n, tmp, k);
        fclose(f);
    }
    if (buf == NULL)
        buf = strdup("");
    if (len)
        *len = n;
    return buf;
}

static long
p_file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Does the file contain needle at or after offset `from`? */
static int
p_file_has(const char *path, long from, const char *needle)
{
    size_t n;
    char *s = p_read_file(path, &n);
    int found = (size_t)from <= n && strstr(s + from, needle) != NULL;

    free(s);
    return found;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- ports ---- */

/*
 * A free TCP port on 127.0.0.1 for a daemon to listen on later.  Not one
 * the kernel hands out for port 0: that range (32768-60999 by default) is
 * also where every outgoing connection of the other tests' daemons takes
 * its local port, so a port found free there was at times taken before
 * the daemon bound it ("Address already in use").  Ports 20000-31999 are
 * never given to outgoing connections; each test process walks them from
 * its own random start and returns one that binds now.
 */
#define P_PORT_LO 20000
#define P_PORT_N  12000

static int
p_free_port(void)
{
    static unsigned next;
    struct sockaddr_in a = {0};
    int fd;

    if (next == 0)
        next = (unsigned)getpid() * 2654435761u ^ (unsigned)p_now_ms();
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = 0; tries < P_PORT_N; tries++) {
        int port = P_PORT_LO + (int)(next++ % P_PORT_N), ok;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
        a.sin_port = htons((uint16_t)port);
        ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return port;
    }
    cr_assert_fail("no free port in %d-%d", P_PORT_LO,
                   P_PORT_LO + P_PORT_N - 1);
    return -1;
}

/* ---- nodes ---- */

static void
p_setup(void)
{
    snprintf(p_base, sizeof p_base, "/tmp/bsproc.XXXXXX");
    cr_assert_not_null(mkdtemp(p_base), "mkdtemp: %s", strerror(errno));
    p_nnodes = 0;
    p_nbg = 0;
    p_passed = 0;
}

/* The test's last statement: every daemon that should be running still
 * is, and no daemon log holds a sanitizer report; then the teardown
 * removes the directory instead of keeping it and printing the logs. */
static void
p_pass(void)
{
    for (int i = 0; i < p_nnodes; i++) {
        node *n = &p_nodes[i];
        char *log = p_read_file(n->logpath, NULL);
        int asan = strstr(log, "ERROR: AddressSanitizer") != NULL ||
                   strstr(log, "ERROR: LeakSanitizer") != NULL;
        int ubsan = strstr(log, "runtime error:") != NULL;
        free(log);
        cr_assert_not(asan || ubsan, "the daemon log of %s has a %s report",
                      n->name, asan ? "AddressSanitizer" : "UBSan");
        if (n->pid > 0) {
            int st = p_wait_pid(n->pid, 0);
            if (st != -1)
                n->pid = 0; /* reaped */
            cr_assert_eq(st, -1,
                         "the daemon of %s died during the test "
                         "(status %d)",
                         n->name, st);
        }
    }
    p_passed = 1;
}

static void
p_teardown(void)
{
    for (int i = 0; i < p_nbg; i++) {
        if (p_bg[i] > 0) {
            kill(p_bg[i], SIGKILL);
            waitpid(p_bg[i], NULL, 0);
            p_bg[i] = 0;
        }
    }
    for (int i = 0; i < p_nnodes; i++) {
        node *n = &p_nodes[i];
        if (n->pid > 0) {
            kill(n->pid, SIGKILL);
            waitpid(n->pid, NULL, 0);
            n->pid = 0;
        }
    }
    if (p_base[0] == '\0')
        return;
    if (!p_passed || getenv("BS_PROC_KEEP") != NULL) {
        for (int i = 0; i < p_nnodes; i++) {
            size_t len;
            char *s = p_read_file(p_nodes[i].logpath, &len);
            const char *tail = len > 6000 ? s + len - 6000 : s;
            fprintf(stderr,
                    "---- daemon log of %s (%s), last %zu bytes ----\n%s",
                    p_nodes[i].name, p_nodes[i].logpath,
                    len > 6000 ? (size_t)6000 : len, tail);
            free(s);
        }
        fprintf(stderr, "---- test directory kept: %s ----\n", p_base);
    } else {
        nftw(p_base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* Create a node: `init --name NAME [--role hub] [--listen tcp://...]`. */
static node *
node_new(const char *name, int hub, int listen)
{
    node *n;
    run r = {0};
    json_t *j;
    char http[64];

    cr_assert_lt(p_nnodes, P_MAX_NODES);
    n = &p_nodes[p_nnodes++];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    snprintf(n->dir, sizeof n->dir, "%s/%s", p_base, name);
    snprintf(n->logpath, sizeof n->logpath, "%s/%s.log", p_base, name);
    /* Every node its own HTTP port: daemons on one machine never fight
     * over the default one. */
    n->http_port = p_free_port();
    snprintf(http, sizeof http, "127.0.0.1:%d", n->http_port);
    if (listen) {
        n->port = p_free_port();
        snprintf(n->endpoint, sizeof n->endpoint, "tcp://127.0.0.1:%d",
                 n->port);
        CLI_OK(&r, n, "init", "--name", name, "--role", hub ? "hub" : "branch",
               "--listen", n->endpoint, "--http", http);
    } else {
        CLI_OK(&r, n, "init", "--name", name, "--role", hub ? "hub" : "branch",
               "--http", http);
    }
    CLI_OK(&r, n, "id", "--json");
    j = p_json(&r);
    cr_assert(json_is_string(json_object_get(j, "id")), "id --json: %s", r.out);
    snprintf(n->id, sizeof n->id, "%s",
             json_string_value(json_object_get(j, "id")));
    json_decref(j);
    run_free(&r);
    return n;
}

/* a pairs with b: `peer add B.name B.endpoint B.id [--schedule SPEC]`. */
static void
node_pair(node *a, const node *b, const char *schedule)
{
    run r = {0};

    cr_assert(b->endpoint[0], "%s does not listen", b->name);
    if (schedule)
        CLI_OK(&r, a, "peer", "add", b->name, b->endpoint, b->id, "--schedule",
               schedule);
    else
        CLI_OK(&r, a, "peer", "add", b->name, b->endpoint, b->id);
    run_free(&r);
}

/* Start n's daemon; wait until it logged "listening on" and its control
 * socket exists. */
static void
daemon_start(node *n)
{
    char *argv[] = {(char *)p_daemon_path(), "-d", n->dir, NULL};
    char sock[PATH_MAX + 32];
    long from = p_file_size(n->logpath);
    struct stat st;
    int fd, ok;

    cr_assert_eq(n->pid, 0, "daemon of %s already running", n->name);
    snprintf(sock, sizeof sock, "%s/control.sock", n->dir);
    fd = open(n->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "%s: %s", n->logpath, strerror(errno));
    n->pid = p_spawn(argv, fd, fd);
    close(fd);
    POLL_STEP(ok, 20000, 20,
              (p_file_has(n->logpath, from, "listening on") &&
               stat(sock, &st) == 0) ||
                  waitpid(n->pid, NULL, WNOHANG) == n->pid);
    if (!ok || stat(sock, &st) != 0) {
        char *log = p_read_file(n->logpath, NULL);
        cr_assert_fail("daemon of %s did not start in 20 s:\n%s", n->name,
                       log + from);
    }
}

/* Send sig and wait up to timeout_ms for the daemon to exit; its status. */
static int
daemon_signal_wait(node *n, int sig, int timeout_ms)
{
    int st;

    cr_assert_gt(n->pid, 0, "no daemon running for %s", n->name);
    kill(n->pid, sig);
    st = p_wait_pid(n->pid, timeout_ms);
    if (st != -1)
        n->pid = 0;
    return st;
}

static void
daemon_stop(node *n)
{
    int st = daemon_signal_wait(n, SIGTERM, 15000);

    cr_assert_eq(st, 0, "daemon of %s: SIGTERM gave status %d", n->name, st);
}

static void
daemon_kill9(node *n)
{
    int st = daemon_signal_wait(n, SIGKILL, 10000);

    cr_assert_eq(st, 128 + SIGKILL, "daemon of %s: status %d after SIGKILL",
                 n->name, st);
}

static int
daemon_alive(const node *n)
{
    return n->pid > 0 && waitpid(n->pid, NULL, WNOHANG) == 0 &&
           kill(n->pid, 0) == 0;
}

/* ---- queries ---- */

/* The node's digest (trimmed stdout of `digest`), into buf. */
static void
node_digest(const node *n, char *buf, size_t len)
{
    run r = {0};

    CLI_OK(&r, n, "digest");
    r.out[strcspn(r.out, "\r\n")] = '\0';
    cr_assert_gt(strlen(r.out), 0, "empty digest");
    snprintf(buf, len, "%s", r.out);
    run_free(&r);
}

static int
digests_equal(const node *a, const node *b)
{
    char da[256], db[256];

    node_digest(a, da, sizeof da);
    node_digest(b, db, sizeof db);
    return strcmp(da, db) == 0;
}

/* `get COLL ID` exits 0 and its output contains needle. */
static int
node_has(const node *n, const char *coll, const char *id, const char *needle)
{
    run r = {0};
    int ok = CLI(&r, n, "get", coll, id) == 0 && strstr(r.out, needle) != NULL;

    run_free(&r);
    return ok;
}

/* `status --json` parsed. */
static json_t *
node_status(const node *n)
{
    run r = {0};
    json_t *j;

    CLI_OK(&r, n, "status", "--json");
    j = p_json(&r);
    run_free(&r);
    return j;
}

/* status --json: log.changes. */
static long long
node_log_changes(const node *n)
{
    json_t *j = node_status(n);
    json_t *v = json_object_get(json_object_get(j, "log"), "changes");
    long long c;

    cr_assert(json_is_integer(v), "status --json has no log.changes");
    c = (long long)json_integer_value(v);
    json_decref(j);
    return c;
}

/* status --json: collections.COLL.records (0 when absent). */
static long long
node_records(const node *n, const char *coll)
{
    json_t *j = node_status(n);
    json_t *v = json_object_get(
        json_object_get(json_object_get(j, "collections"), coll), "records");
    long long c = json_is_integer(v) ? (long long)json_integer_value(v) : 0;

    json_decref(j);
    return c;
}

/* `log [PEER] --json` parsed (an array). */
static json_t *
node_xlog(const node *n, const char *peer)
{
    run r = {0};
    json_t *j;

    if (peer)
        CLI_OK(&r, n, "log", peer, "--json");
    else
        CLI_OK(&r, n, "log", "--json");
    j = p_json(&r);
    cr_assert(json_is_array(j), "log --json is not an array: %s", r.out);
    run_free(&r);
    return j;
}

static size_t
node_xlog_count(const node *n, const char *peer)
{
    json_t *j = node_xlog(n, peer);
    size_t k = json_array_size(j);

    json_decref(j);
    return k;
}

/* How many entries of `log PEER --json` have result "ok". */
static size_t
node_xlog_ok(const node *n, const char *peer)
{
    json_t *j = node_xlog(n, peer), *e;
    size_t i, k = 0;

    json_array_foreach(j, i, e)
    {
        const char *res = json_string_value(json_object_get(e, "result"));
        k += res && strcmp(res, "ok") == 0;
    }
    json_decref(j);
    return k;
}

#endif
