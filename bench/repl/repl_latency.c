/*
 * repl_latency.c - online propagation latency between two running nodes.
 *
 *     repl_latency BRANCHSYNC FROM_DIR TO_DIR [N [TAG]]
 *
 * Both nodes' daemons must be running with an `online` link to each other
 * (bench/repl/latency.sh sets that up).  N times (default 1000), one after
 * the other:
 *   1. spawn `BRANCHSYNC -d FROM_DIR put lat TAG-K {"i":K}` (posix_spawn,
 *      stdout to /dev/null), a fresh record each time;
 *   2. every 100 us, in this process: waitpid(WNOHANG) on the put, and a
 *      read-only LMDB transaction on each store (bs_store_read), looking up
 *      the record's key in the records table (bs_txn_get), then abort;
 *   3. until the put has exited 0 and the key is in TO's store.  A record
 *      not in TO 5 s after the put's exit is counted as lost.
 * Per write this gives four instants: spawn, commit (the first poll that
 * sees the key in FROM: the put's transaction is durable and visible),
 * exit (waitpid), arrival (the first poll that sees it in TO).
 *
 * Reported (stdout, "key=value" per line), each as p50/p90/p99/max/mean in
 * milliseconds (nearest rank):
 *   latency_*  arrival - exit     (what a script calling `put` would wait;
 *                                  0 when it arrived before put exited)
 *   commit_*   arrival - commit   (the propagation proper: notify the
 *                                  daemon, exchange, verify, apply, commit)
 *   put_*      exit - spawn       (the put itself)
 * plus n and lost.  With REPL_LATENCY_SAMPLES set, every write goes to
 * stderr as "K latency_ms commit_ms put_ms".  REPL_LATENCY_GAP_MS=G
 * (0..1000, default 0) waits G ms after each arrival before the next put,
 * so that the exchange of one write has finished before the next starts.
 *
 * Bounds: N <= 100000; 30 s per put; 5 s per write after the put; the
 * whole run stops after 20 min.  No network traffic of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../replication/records.h"

extern char **environ;

#define POLL_NS       100000L /* 100 us between polls */
#define WRITE_LIMIT_S 5.0
#define PUT_LIMIT_S   30.0
#define RUN_LIMIT_S   1200.0
#define COLL          "lat"

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

/* Nearest-rank percentile of sorted v[0..n). */
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
report(const char *name, double *v, size_t n)
{
    double sum = 0;

    if (n == 0) {
        printf("%s_n=0\n", name);
        return;
    }
    qsort(v, n, sizeof *v, cmp_double);
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    printf("%s_p50_ms=%.3f\n", name, pct(v, n, 50) * 1e3);
    printf("%s_p90_ms=%.3f\n", name, pct(v, n, 90) * 1e3);
    printf("%s_p99_ms=%.3f\n", name, pct(v, n, 99) * 1e3);
    printf("%s_max_ms=%.3f\n", name, v[n - 1] * 1e3);
    printf("%s_mean_ms=%.3f\n", name, sum / (double)n * 1e3);
}

static pid_t
spawn_put(const char *bs, const char *dir, const char *id, const char *json)
{
    char *argv[] = {(char *)bs, "-d",       (char *)dir,  "put",
                    COLL,       (char *)id, (char *)json, NULL};
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    rc = posix_spawn(&pid, bs, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "repl_latency: cannot run %s: %s\n", bs, strerror(rc));
        return -1;
    }
    return pid;
}

/* 1 when the record coll/id is live in the store, 0 when not, -1 on
 * error. */
static int
present(bs_store *s, const char *coll, const char *id)
{
    bs_errbuf err = {{0}};
    bs_record r;
    bs_arena a;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_store_read(s, &t, &err)) != BS_OK) {
        fprintf(stderr, "repl_latency: read: %s\n", bs_errmsg(&err, rv));
        return -1;
    }
    bs_arena_init(&a);
    rv = bs_records_get(t, coll, id, &a, &r, NULL);
    bs_arena_fini(&a);
    bs_txn_abort(t);
    if (rv == BS_OK)
        return 1;
    return rv == BS_ENOTFOUND ? 0 : -1;
}

static bs_store *
open_ro(const char *dir)
{
    bs_store_opts o;
    bs_errbuf err = {{0}};
    bs_store *s;
    bs_err rv;

    memset(&o, 0, sizeof o);
    o.readonly = 1;
    if ((rv = bs_store_open(dir, &o, &s, &err)) != BS_OK) {
        fprintf(stderr, "repl_latency: %s: %s\n", dir, bs_errmsg(&err, rv));
        exit(1);
    }
    return s;
}

int
main(int argc, char **argv)
{
    const char *bs, *from, *to, *tag;
    long n = 1000;
    bs_store *src, *dst;
    double *lat, *com, *put, start;
    size_t got = 0, lost = 0;
    int samples = getenv("REPL_LATENCY_SAMPLES") != NULL;
    long gap_ms = getenv("REPL_LATENCY_GAP_MS")
                      ? strtol(getenv("REPL_LATENCY_GAP_MS"), NULL, 10)
                      : 0;

    if (argc < 4 || argc > 6) {
        fprintf(stderr,
                "usage: repl_latency BRANCHSYNC FROM_DIR TO_DIR [N [TAG]]\n");
        return 2;
    }
    bs = argv[1], from = argv[2], to = argv[3];
    if (argc > 4 && ((n = strtol(argv[4], NULL, 10)) < 1 || n > 100000)) {
        fprintf(stderr, "repl_latency: N: 1 to 100000\n");
        return 2;
    }
    tag = argc > 5 ? argv[5] : "lat";
    if (gap_ms < 0 || gap_ms > 1000) {
        fprintf(stderr, "repl_latency: REPL_LATENCY_GAP_MS: 0 to 1000\n");
        return 2;
    }
    src = open_ro(from);
    dst = open_ro(to);
    lat = calloc((size_t)n, sizeof *lat);
    com = calloc((size_t)n, sizeof *com);
    put = calloc((size_t)n, sizeof *put);
    if (lat == NULL || com == NULL || put == NULL)
        return 1;

    start = now_s();
    for (long k = 0; k < n && now_s() - start < RUN_LIMIT_S; k++) {
        char id[128], json[64];
        double t0, tc = 0, te = 0, ta = 0, t;
        pid_t pid;
        int st = 0, p;

        snprintf(id, sizeof id, "%s-%ld", tag, k);
        snprintf(json, sizeof json, "{\"i\":%ld}", k);
        t0 = now_s();
        if ((pid = spawn_put(bs, from, id, json)) < 0)
            return 1;
        for (;;) {
            t = now_s();
            if (te == 0) {
                pid_t w = waitpid(pid, &st, WNOHANG);
                if (w == pid) {
                    te = t;
                    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        fprintf(stderr,
                                "repl_latency: put %s failed (status %d)\n", id,
                                st);
                        return 1;
                    }
                } else if (w < 0 && errno != EINTR) {
                    perror("repl_latency: waitpid");
                    return 1;
                } else if (t - t0 > PUT_LIMIT_S) {
                    kill(pid, SIGKILL);
                    waitpid(pid, &st, 0);
                    fprintf(stderr, "repl_latency: put over %.0f s\n",
                            PUT_LIMIT_S);
                    return 1;
                }
            }
            if (tc == 0) {
                if ((p = present(src, COLL, id)) < 0)
                    return 1;
                if (p)
                    tc = t;
            }
            if (tc != 0 && ta == 0) {
                if ((p = present(dst, COLL, id)) < 0)
                    return 1;
                if (p)
                    ta = t;
            }
            if (te != 0 && ta != 0)
                break;
            if (te != 0 && t - te > WRITE_LIMIT_S)
                break;
            struct timespec ts = {0, POLL_NS};
            nanosleep(&ts, NULL);
        }
        put[k] = te - t0;
        if (ta != 0) {
            lat[got] = ta > te ? ta - te : 0;
            com[got] = ta - tc;
            got++;
        } else {
            lost++;
        }
        if (gap_ms > 0) {
            struct timespec g = {gap_ms / 1000, (gap_ms % 1000) * 1000000L};
            nanosleep(&g, NULL);
        }
        if (samples)
            fprintf(stderr, "%ld %.3f %.3f %.3f\n", k,
                    ta ? (ta > te ? ta - te : 0) * 1e3 : -1.0,
                    ta ? (ta - tc) * 1e3 : -1.0, (te - t0) * 1e3);
    }
    printf("n=%zu\n", got + lost);
    printf("lost=%zu\n", lost);
    report("latency", lat, got);
    report("commit", com, got);
    report("put", put, got + lost);
    bs_store_close(src);
    bs_store_close(dst);
    free(lat);
    free(com);
    free(put);
    return lost ? 1 : 0;
}
