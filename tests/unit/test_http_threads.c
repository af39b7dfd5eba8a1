/*
 * test_http_threads.c - the store shared by the daemon's threads (issue
 * 10: the HTTP API reads and writes on its own threads while the loop
 * replicates; replication/store.h, "Threads").  LMDB must not remap the
 * map under a live transaction: growing the map waits for other threads'
 * transactions.  Here reader threads walk a table nonstop while the main
 * thread writes enough to grow a 1 MiB map many times over; every value a
 * reader sees must be intact.  Before the remap lock this crashed (a
 * reader touching the unmapped old map) or read garbage, though not on
 * every run: it is a race.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/store.h"

#define VAL_LEN 2000
#define NKEYS   3000 /* ~6 MiB of values: the 1 MiB map doubles 3+ times */

static char root[128];
static bs_store *store;
static volatile int stop;

static void
setup(void)
{
    bs_store_opts o = {.create = 1, .map_size = 1u << 20};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "http_threads");
    bst_ok(bs_store_open(root, &o, &store, &err), &err, "open");
    stop = 0;
}

static void
teardown(void)
{
    bs_store_close(store);
    bst_rmtree(root);
    bst_leak_check("test_http_threads");
}

TestSuite(http_threads, .init = setup, .fini = teardown, .timeout = 120);

/* Value of key k: VAL_LEN bytes of (k & 0xff). */
static void
fill(uint8_t *v, uint32_t k)
{
    memset(v, (int)(k & 0xff), VAL_LEN);
}

typedef struct batch {
    uint32_t from, to;
} batch;

static bs_err
write_batch(bs_txn *t, void *arg, bs_errbuf *err)
{
    batch *b = arg;
    uint8_t key[4], val[VAL_LEN];
    bs_err rv = BS_OK;

    (void)err;
    for (uint32_t k = b->from; k < b->to && rv == BS_OK; k++) {
        bs_put_u32be(key, k);
        fill(val, k);
        rv = bs_txn_put(t, BS_DB_XLOG, bs_mem(key, 4), bs_mem(val, VAL_LEN), 0,
                        NULL);
    }
    return rv;
}

/* Walk the table again and again; count bad values into *arg. */
static void *
reader(void *arg)
{
    long *bad = arg;
    long walks = 0;

    while (!stop || walks == 0) {
        bs_txn *t;
        bs_cursor *c;
        bs_slice k, v;
        bs_err rv;

        if (bs_store_read(store, &t, NULL) != BS_OK) {
            (*bad)++;
            break;
        }
        if (bs_cursor_open(t, BS_DB_XLOG, &c) == BS_OK) {
            for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
                 rv = bs_cursor_next(c, &k, &v)) {
                uint8_t want =
                    k.n == 4 ? (uint8_t)(bs_get_u32be(k.p) & 0xff) : 0;
                if (k.n != 4 || v.n != VAL_LEN || v.p[0] != want ||
                    v.p[VAL_LEN - 1] != want)
                    (*bad)++;
            }
            bs_cursor_close(c);
        }
        bs_txn_abort(t);
        walks++;
    }
    return NULL;
}

Test(http_threads, readers_on_other_threads_survive_map_growth)
{
    pthread_t th[3];
    long bad[3] = {0, 0, 0};
    bs_errbuf err = {{0}};
    uint64_t map0 = bs_store_map_size(store);

    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, reader, &bad[i]), 0);
    for (uint32_t k = 0; k < NKEYS; k += 50) {
        batch b = {k, k + 50};
        bst_ok(bs_store_write(store, write_batch, &b, &err), &err, "write");
    }
    stop = 1;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    cr_assert_gt(bs_store_map_size(store), 4 * map0,
                 "the map did not grow: %llu",
                 (unsigned long long)bs_store_map_size(store));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(bad[i], 0, "reader %d saw %ld bad values", i, bad[i]);
}
