/*
 * zmq_curve_rtt.c - the machine's limit for online propagation: the round
 * trip of one small ZeroMQ message over TCP on 127.0.0.1 with CURVE.
 *
 *     zmq_curve_rtt [N [BYTES]]       (default 1000 round trips of 100 B)
 *
 * Two processes, like two nodes: a forked server with a ROUTER socket (CURVE
 * server) bound to tcp://127.0.0.1:* (the kernel picks a free port) that
 * echoes every message back; the client, a DEALER (CURVE client, knowing
 * the server's public key) — the same socket types as the product's
 * transport.  Keys are fresh (zmq_curve_keypair).  No ZAP handler: it only
 * costs at the handshake, not per message.  After 100 untimed warm-up
 * round trips, N round trips are timed one by one (send, then wait for the
 * echo).
 *
 * Output (stdout), "key=value" per line: n, bytes, p50/p90/p99/max/mean in
 * milliseconds (nearest rank).  Bounds: N <= 1000000; both sides give up
 * after 5 s without a message; the server exits when the client is done.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define WARMUP     100
#define TIMEOUT_MS 5000

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double
pct(const double *v, size_t n, double p)
{
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999999);

    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static void
die(const char *what)
{
    fprintf(stderr, "zmq_curve_rtt: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

/* The echo server: runs in the child until `total` echoes or a timeout. */
static int
serve(const char *pub, const char *sec, int wfd, long total)
{
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1, tmo = TIMEOUT_MS, zero = 0;
    char ep[256];
    size_t epn = sizeof ep;

    if (s == NULL ||
        zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40) != 0 ||
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo) != 0 ||
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(s, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &epn) != 0)
        die("server");
    if (write(wfd, ep, strlen(ep) + 1) < 0)
        return 1;
    close(wfd);
    for (long i = 0; i < total; i++) {
        zmq_msg_t id, m;
        zmq_msg_init(&id);
        zmq_msg_init(&m);
        if (zmq_msg_recv(&id, s, 0) < 0 || zmq_msg_recv(&m, s, 0) < 0)
            die("server recv");
        if (zmq_msg_send(&id, s, ZMQ_SNDMORE) < 0 || zmq_msg_send(&m, s, 0) < 0)
            die("server send");
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    long bytes = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
    char spub[41], ssec[41], cpub[41], csec[41], ep[256];
    int pfd[2], tmo = TIMEOUT_MS, zero = 0, st = 0;
    char *buf, *rbuf;
    double *rtt, sum = 0;
    pid_t pid;
    void *ctx, *s;
    ssize_t got;

    if (n < 1 || n > 1000000 || bytes < 1 || bytes > (1 << 20)) {
        fprintf(stderr, "usage: zmq_curve_rtt [N (1..1000000) [BYTES]]\n");
        return 2;
    }
    if (zmq_curve_keypair(spub, ssec) != 0 ||
        zmq_curve_keypair(cpub, csec) != 0)
        die("zmq_curve_keypair (libzmq without CURVE?)");
    if (pipe(pfd) != 0)
        return 1;
    if ((pid = fork()) < 0)
        return 1;
    if (pid == 0) {
        close(pfd[0]);
        _exit(serve(spub, ssec, pfd[1], n + WARMUP));
    }
    close(pfd[1]);
    memset(ep, 0, sizeof ep);
    got = read(pfd[0], ep, sizeof ep - 1);
    close(pfd[0]);
    if (got <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fprintf(stderr, "zmq_curve_rtt: the server did not start\n");
        return 1;
    }

    ctx = zmq_ctx_new();
    s = zmq_socket(ctx, ZMQ_DEALER);
    if (s == NULL || zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, spub, 40) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, cpub, 40) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, csec, 40) != 0 ||
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo) != 0 ||
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(s, ep) != 0)
        die("client");
    buf = malloc((size_t)bytes);
    rbuf = malloc((size_t)bytes);
    rtt = calloc((size_t)n, sizeof *rtt);
    if (buf == NULL || rbuf == NULL || rtt == NULL)
        return 1;
    memset(buf, 'x', (size_t)bytes);
    for (long i = 0; i < n + WARMUP; i++) {
        double t0 = now_s();
        if (zmq_send(s, buf, (size_t)bytes, 0) < 0)
            die("client send");
        if (zmq_recv(s, rbuf, (size_t)bytes, 0) < 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            die("client recv");
        }
        if (i >= WARMUP)
            rtt[i - WARMUP] = now_s() - t0;
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    waitpid(pid, &st, 0);

    qsort(rtt, (size_t)n, sizeof *rtt, cmp_double);
    for (long i = 0; i < n; i++)
        sum += rtt[i];
    printf("n=%ld\nbytes=%ld\n", n, bytes);
    printf("rtt_p50_ms=%.3f\n", pct(rtt, (size_t)n, 50) * 1e3);
    printf("rtt_p90_ms=%.3f\n", pct(rtt, (size_t)n, 90) * 1e3);
    printf("rtt_p99_ms=%.3f\n", pct(rtt, (size_t)n, 99) * 1e3);
    printf("rtt_max_ms=%.3f\n", rtt[n - 1] * 1e3);
    printf("rtt_mean_ms=%.3f\n", sum / (double)n * 1e3);
    free(buf);
    free(rbuf);
    free(rtt);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
