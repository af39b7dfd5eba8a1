/*
 * bench_lmdb_raw.c - the baseline for `branchsync load`: raw LMDB inserts.
 *
 *     bench_lmdb_raw FILE.jsonl DIR
 *
 * Reads the whole JSON Lines file into memory first, takes each line's "id"
 * string as the key (a plain scan for "id":"...", no escapes expected) and
 * the whole line as the value, then times only the LMDB part: one write
 * transaction with a raw mdb_put per line IN FILE ORDER (no sorting), and
 * mdb_txn_commit.  The environment in DIR (created if missing, must be
 * empty) uses default flags, so the commit is durable (fsync, no NOSYNC).
 *
 *     bench_lmdb_raw --single N DIR
 *
 * The baseline for the HTTP API's group commit (bench/http_put.sh): N
 * write transactions of one mdb_put each (a 60-byte value under a fresh
 * key), each committed durably: the rate one fsync per write allows.
 *
 * Output (stdout): one "key=value" per line, for bench/load.sh and
 * bench/http_put.sh.  Links liblmdb only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAP_SIZE (8ull << 30) /* 8 GiB */

typedef struct rec {
    MDB_val key, val;
} rec;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die_mdb(const char *what, int rc)
{
    fprintf(stderr, "bench_lmdb_raw: %s: %s\n", what, mdb_strerror(rc));
    exit(1);
}

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "bench_lmdb_raw: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    if ((buf = malloc((size_t)n + 1)) == NULL ||
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "bench_lmdb_raw: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* The "id" string of line [s, s+n): sets *k; 0 if there is none. */
static int
find_id(char *s, size_t n, MDB_val *k)
{
    static const char pat[] = "\"id\"";
    char *end = s + n, *p = s;

    while ((p = memmem(p, (size_t)(end - p), pat, sizeof pat - 1)) != NULL) {
        char *q = p + sizeof pat - 1, *e;

        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (q < end && *q == ':') {
            q++;
            while (q < end && (*q == ' ' || *q == '\t'))
                q++;
            if (q < end && *q == '"' &&
                (e = memchr(q + 1, '"', (size_t)(end - q - 1))) != NULL) {
                k->mv_data = q + 1;
                k->mv_size = (size_t)(e - q - 1);
                return 1;
            }
        }
        p += sizeof pat - 1;
    }
    return 0;
}

static MDB_env *
open_env(const char *dir)
{
    MDB_env *env;
    int rc;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_lmdb_raw: %s: %s\n", dir, strerror(errno));
        exit(1);
    }
    if ((rc = mdb_env_create(&env)) != 0)
        die_mdb("mdb_env_create", rc);
    if ((rc = mdb_env_set_mapsize(env, MAP_SIZE)) != 0)
        die_mdb("mdb_env_set_mapsize", rc);
    if ((rc = mdb_env_open(env, dir, 0, 0600)) != 0) /* default flags */
        die_mdb("mdb_env_open", rc);
    return env;
}

/* --single N DIR: N durable transactions of one put each. */
static int
single(const char *count, const char *dir)
{
    char *end, key[32],
        val[] =
            "{\"name\":\"Acme\",\"city\":\"Tallinn\",\"vip\":true,\"n\":42}";
    long n = strtol(count, &end, 10);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    double t0, t1;
    int rc;

    if (end == count || *end != '\0' || n < 1) {
        fprintf(stderr, "bench_lmdb_raw: --single needs a count >= 1\n");
        return 2;
    }
    env = open_env(dir);
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        MDB_val k = {(size_t)snprintf(key, sizeof key, "r%08ld", i), key};
        MDB_val v = {sizeof val - 1, val};

        if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
            die_mdb("mdb_txn_begin", rc);
        if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
            die_mdb("mdb_dbi_open", rc);
        if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
            die_mdb("mdb_put", rc);
        if ((rc = mdb_txn_commit(txn)) != 0)
            die_mdb("mdb_txn_commit", rc);
    }
    t1 = now_s();
    printf("transactions=%ld\n", n);
    printf("seconds=%.3f\n", t1 - t0);
    printf("transactions_per_s=%.0f\n", t1 > t0 ? (double)n / (t1 - t0) : 0.0);
    mdb_env_close(env);
    return 0;
}

int
main(int argc, char **argv)
{
    size_t len, n = 0, cap = 1 << 16, lineno = 0;
    char *buf, *p, *end;
    rec *v;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_envinfo info;
    MDB_stat st;
    double t0, t1, t2;
    int rc;

    if (argc == 4 && strcmp(argv[1], "--single") == 0)
        return single(argv[2], argv[3]);
    if (argc != 3) {
        fprintf(stderr, "usage: bench_lmdb_raw FILE.jsonl DIR | bench_lmdb_raw "
                        "--single N DIR\n");
        return 2;
    }

    /* Untimed: read the file and split it into (id, line) pairs. */
    buf = read_file(argv[1], &len);
    if ((v = malloc(cap * sizeof *v)) == NULL)
        return 1;
    for (p = buf, end = buf + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ln = nl ? (size_t)(nl - p) : (size_t)(end - p);

        lineno++;
        if (ln > 0 && p[ln - 1] == '\r')
            ln--;
        if (ln > 0) {
            if (n == cap && (v = realloc(v, (cap *= 2) * sizeof *v)) == NULL)
                return 1;
            if (!find_id(p, ln, &v[n].key)) {
                fprintf(stderr, "bench_lmdb_raw: line %zu has no \"id\"\n",
                        lineno);
                return 1;
            }
            v[n].val.mv_data = p;
            v[n].val.mv_size = ln;
            n++;
        }
        p = nl ? nl + 1 : end;
    }

    env = open_env(argv[2]);

    /* Timed: one write txn of raw puts in file order, then a durable commit.
     */
    t0 = now_s();
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
        die_mdb("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
        die_mdb("mdb_dbi_open", rc);
    for (size_t i = 0; i < n; i++)
        if ((rc = mdb_put(txn, dbi, &v[i].key, &v[i].val, 0)) != 0)
            die_mdb("mdb_put", rc);
    t1 = now_s();
    if ((rc = mdb_txn_commit(txn)) != 0)
        die_mdb("mdb_txn_commit", rc);
    t2 = now_s();

    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    printf("records=%zu\n", n);
    printf("put_seconds=%.3f\n", t1 - t0);
    printf("commit_seconds=%.3f\n", t2 - t1);
    printf("seconds=%.3f\n", t2 - t0);
    printf("records_per_s=%.0f\n", t2 > t0 ? (double)n / (t2 - t0) : 0.0);
    printf("entries=%zu\n", (size_t)st.ms_entries);
    printf("used_bytes=%llu\n",
           (unsigned long long)(info.me_last_pgno + 1) * st.ms_psize);
    mdb_env_close(env);
    free(v);
    free(buf);
    return 0;
}
