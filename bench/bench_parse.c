/*
 * bench_parse.c - parse rate of one JSON Lines file: replication/flatjson.c
 * against jansson's json_loadb() (what bs_json_fields() used before).
 *
 *     build/bench/bench_parse FILE [REPEAT [flatjson|jansson]]
 *
 * Each line is parsed on its own, as `load` does (an arena reset per line
 * for flatjson; json_loadb() then json_decref() for jansson).  Prints the
 * best of REPEAT (default 3) passes over the file for each, in ns per line
 * and MB/s.  The file is read into memory first and not timed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flatjson.h"

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    FILE *f;
    char *buf;
    long len;
    int repeat = argc > 2 ? atoi(argv[2]) : 3;
    const char *only = argc > 3 ? argv[3] : NULL; /* one of them (perf) */
    double best[2] = {1e30, 1e30};
    size_t lines = 0;

    if (argc < 2 || repeat < 1) {
        fprintf(stderr, "usage: bench_parse FILE [REPEAT]\n");
        return 2;
    }
    if ((f = fopen(argv[1], "rb")) == NULL || fseek(f, 0, SEEK_END) != 0 ||
        (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        (buf = malloc((size_t)len + 1)) == NULL ||
        fread(buf, 1, (size_t)len, f) != (size_t)len) {
        perror(argv[1]);
        return 1;
    }
    fclose(f);
    for (int r = 0; r < repeat; r++) {
        for (int which = 0; which < 2; which++) {
            bs_arena a;

            if (only != NULL &&
                strcmp(only, which == 0 ? "flatjson" : "jansson") != 0)
                continue;
            double t0;
            size_t n = 0;

            t0 = now();
            bs_arena_init(&a);
            for (char *p = buf, *e = buf + len, *nl; p < e; p = nl + 1) {
                if ((nl = memchr(p, '\n', (size_t)(e - p))) == NULL)
                    nl = e;
                if (nl == p)
                    continue;
                if (which == 0) {
                    const char *id;
                    size_t idlen, nf;
                    bs_field *fs;

                    bs_arena_reset(&a);
                    if (bs_flatjson_fields(p, (size_t)(nl - p), &a, &id, &idlen,
                                           &fs, &nf, NULL) != BS_OK) {
                        fprintf(stderr, "line %zu refused\n", n + 1);
                        return 1;
                    }
                } else {
                    json_error_t je;
                    json_t *j = json_loadb(
                        p, (size_t)(nl - p),
                        JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);

                    if (j == NULL) {
                        fprintf(stderr, "line %zu: %s\n", n + 1, je.text);
                        return 1;
                    }
                    json_decref(j);
                }
                n++;
            }
            bs_arena_fini(&a);
            if (now() - t0 < best[which])
                best[which] = now() - t0;
            lines = n;
        }
    }
    for (int which = 0; which < 2; which++)
        if (best[which] < 1e30)
            printf("%-8s %8.1f ns/line %8.1f MB/s\n",
                   which == 0 ? "flatjson" : "jansson",
                   best[which] * 1e9 / lines, len / best[which] / 1e6);
    printf("lines=%zu bytes=%ld\n", lines, len);
    return 0;
}
