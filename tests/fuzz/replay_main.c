/*
 * replay_main.c - runs a fuzz harness without libFuzzer, in every build
 * (gcc too), so ctest replays the committed corpora on each CI run.
 *
 *   replay_NAME [-m N] [-s SEED] PATH...
 *
 * Every regular file of each directory PATH (or PATH itself) goes through
 * LLVMFuzzerTestOneInput once as it is, then N times deterministically
 * mutated (bit flips, byte sets, inserts, deletes, duplicated or truncated
 * runs, splices with the previous file).  Inputs are copied into buffers of
 * exactly their size, so an overread is an ASan report.  When an input
 * crashes the process, it is written to ./replay-crash-NAME first (and its
 * origin printed), to be replayed by either driver.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LEN 65536

static const char *prog = "replay";
static const uint8_t *cur;
static size_t cur_n;
static char cur_what[4400], crash_path[300];

/* From a signal handler or a sanitizer's death callback: open, write and
 * close only (the path was made at startup). */
static void
save_current(void)
{
    const char *path = crash_path;
    int fd;

    if (cur == NULL)
        return;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (write(fd, cur, cur_n) < 0) {
            /* nothing more to do while dying */
        }
        close(fd);
    }
    if (write(2, "replay: crashed on ", 19) < 0 ||
        write(2, cur_what, strlen(cur_what)) < 0 ||
        write(2, "; input saved to ", 17) < 0 ||
        write(2, path, strlen(path)) < 0 || write(2, "\n", 1) < 0)
        return;
}

static void
on_signal(int sig)
{
    save_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The sanitizers report through this hook before they exit. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static uint64_t rng;

static uint64_t
next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t
below(size_t n)
{
    return n ? (size_t)(next() % n) : 0;
}

/* One to four mutations of b[0..n) in place (capacity MAX_LEN). */
static size_t
mutate(uint8_t *b, size_t n, const uint8_t *other, size_t on)
{
    static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff,
                                          0x08, 0x0a, 0x12, 0x1a, 0x22};
    int rounds = 1 + (int)below(4);

    for (int r = 0; r < rounds; r++) {
        size_t at = below(n + 1), len;

        switch (below(n ? 9 : 3)) {
        case 0: /* insert a byte */
        case 1:
            if (n < MAX_LEN) {
                memmove(b + at + 1, b + at, n - at);
                b[at] = below(2) ? (uint8_t)next()
                                 : interesting[below(sizeof interesting)];
                n++;
            }
            break;
        case 2: /* splice a run of the other input */
            if (on > 0 && n < MAX_LEN) {
                size_t from = below(on);
                len = 1 + below(on - from);
                if (len > MAX_LEN - n)
                    len = MAX_LEN - n;
                memmove(b + at + len, b + at, n - at);
                memcpy(b + at, other + from, len);
                n += len;
            }
            break;
        case 3: /* flip a bit */
            b[below(n)] ^= (uint8_t)(1u << below(8));
            break;
        case 4: /* set a byte */
            b[below(n)] = below(2) ? (uint8_t)next()
                                   : interesting[below(sizeof interesting)];
            break;
        case 5: /* delete a run */
            at = below(n);
            len = 1 + below(n - at < 16 ? n - at : 16);
            memmove(b + at, b + at + len, n - at - len);
            n -= len;
            break;
        case 6: /* duplicate a run */
            at = below(n);
            len = 1 + below(n - at < 64 ? n - at : 64);
            if (n + len <= MAX_LEN) {
                memmove(b + at + len, b + at, n - at);
                n += len;
            }
            break;
        case 7: /* truncate */
            n = below(n);
            break;
        default: /* add or subtract a little from a byte */
            at = below(n);
            b[at] = (uint8_t)(b[at] + (below(2) ? 1 : -1) * (1 + below(4)));
            break;
        }
    }
    return n;
}

static void
run(const uint8_t *p, size_t n, const char *what)
{
    uint8_t *copy = malloc(n ? n : 1);

    if (copy == NULL) {
        perror("malloc");
        exit(1);
    }
    memcpy(copy, p, n);
    cur = copy;
    cur_n = n;
    snprintf(cur_what, sizeof cur_what, "%s", what);
    LLVMFuzzerTestOneInput(copy, n);
    cur = NULL;
    free(copy);
}

static uint8_t *
slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = malloc(MAX_LEN + 1);

    if (f == NULL || p == NULL) {
        fprintf(stderr, "%s: %s: cannot read\n", prog, path);
        exit(1);
    }
    *n = fread(p, 1, MAX_LEN, f);
    fclose(f);
    return p;
}

static int
regular(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static uint64_t
seed_of(const uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int
main(int argc, char **argv)
{
    uint8_t *prev = NULL, *buf = malloc(MAX_LEN + 1);
    size_t prev_n = 0, files = 0, runs = 0;
    long mutations = 0;
    uint64_t seed = 0;
    struct timespec t0, t1;
    int opt;

    if ((prog = strrchr(argv[0], '/')) != NULL)
        prog++;
    else
        prog = argv[0];
    snprintf(crash_path, sizeof crash_path, "replay-crash-%s", prog);
    while ((opt = getopt(argc, argv, "m:s:")) != -1) {
        if (opt == 'm')
            mutations = strtol(optarg, NULL, 10);
        else if (opt == 's')
            seed = strtoull(optarg, NULL, 10);
        else {
            fprintf(stderr, "usage: %s [-m N] [-s SEED] DIR|FILE...\n", prog);
            return 2;
        }
    }
    if (optind == argc || buf == NULL) {
        fprintf(stderr, "usage: %s [-m N] [-s SEED] DIR|FILE...\n", prog);
        return 2;
    }
    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGFPE, on_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(save_current);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int a = optind; a < argc; a++) {
        struct dirent **ents = NULL;
        int nents = 0, single = regular(argv[a]);

        if (!single && (nents = scandir(argv[a], &ents, NULL, by_name)) < 0) {
            fprintf(stderr, "%s: %s: not a file or directory\n", prog, argv[a]);
            return 2;
        }
        for (int e = 0; e < (single ? 1 : nents); e++) {
            char path[4096], what[4200];
            uint8_t *data;
            size_t n;

            if (single)
                snprintf(path, sizeof path, "%s", argv[a]);
            else if (ents[e]->d_name[0] == '.')
                continue;
            else
                snprintf(path, sizeof path, "%s/%s", argv[a], ents[e]->d_name);
            if (!regular(path))
                continue;
            data = slurp(path, &n);
            files++;
            run(data, n, path);
            runs++;
            rng = seed_of(data, n, seed);
            for (long m = 0; m < mutations; m++) {
                size_t mn;
                memcpy(buf, data, n);
                mn = mutate(buf, n, prev ? prev : data, prev ? prev_n : n);
                snprintf(what, sizeof what, "%s (mutation %ld, seed %llu)",
                         path, m, (unsigned long long)seed);
                run(buf, mn, what);
                runs++;
            }
            free(prev);
            prev = data;
            prev_n = n;
        }
        for (int e = 0; e < nents; e++)
            free(ents[e]);
        free(ents);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "%s: %zu files, %zu runs in %.1f s\n", prog, files, runs,
            (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(prev);
    free(buf);
    if (files == 0) {
        fprintf(stderr, "%s: no input files\n", prog);
        return 1;
    }
    return 0;
}
