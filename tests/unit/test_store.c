/*
 * test_store.c - unit tests of replication/store.c in a temporary directory:
 * open/create, put/get/del, cursor order and seeking, BS_PUT_NOOVERWRITE,
 * all-or-nothing write transactions, map growth from a tiny map (and the
 * BS_EMAPFULL cap, with its numbers), BS_ENOTNODE for a directory without
 * a store, a truncated data file refused at open, and what the fault
 * handler asks of the store (bs_store_fault_owner).  Disk faults during a
 * commit are injected by tests/fault.
 */
#include <criterion/criterion.h>

#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../replication/store.h"

/* ---- temporary directory ---- */

static char tmpdir[64];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bs_test_store_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
}

static void
remove_tmpdir(void)
{
    if (tmpdir[0] != '\0')
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

TestSuite(store, .init = make_tmpdir, .fini = remove_tmpdir);

static bs_store *
open_store(const bs_store_opts *o)
{
    bs_store *s = NULL;
    bs_errbuf err = {{0}};
    bs_err rv = bs_store_open(tmpdir, o, &s, &err);

    cr_assert_eq(rv, BS_OK, "open: %s", bs_errmsg(&err, rv));
    cr_assert_not_null(s);
    return s;
}

static bs_store *
create_store(void)
{
    bs_store_opts o = {.create = 1};

    return open_store(&o);
}

/* ---- write helpers: a list of (key, value) to put in one transaction,
 * then an optional error to return ---- */

typedef struct kv {
    const char *k, *v;
} kv;

typedef struct put_job {
    bs_db db;
    const kv *items;
    size_t n;
    bs_err fail_with; /* returned after the puts (BS_OK: commit) */
    int calls;
} put_job;

static bs_err
put_fn(bs_txn *t, void *arg, bs_errbuf *err)
{
    put_job *j = arg;
    bs_err rv;

    j->calls++;
    cr_assert(bs_txn_writable(t));
    for (size_t i = 0; i < j->n; i++)
        if ((rv = bs_txn_put(t, j->db, bs_str(j->items[i].k),
                             bs_str(j->items[i].v), 0, NULL)) != BS_OK)
            return rv;
    if (j->fail_with != BS_OK)
        return bs_errf(err, j->fail_with, "test asked to fail");
    return BS_OK;
}

static bs_err
put_all(bs_store *s, bs_db db, const kv *items, size_t n, bs_err fail_with,
        bs_errbuf *err)
{
    put_job j = {db, items, n, fail_with, 0};

    return bs_store_write(s, put_fn, &j, err);
}

/* The value of key in db as a NUL-terminated malloc'd string, or NULL. */
static char *
get_str(bs_store *s, bs_db db, const char *key)
{
    bs_txn *t;
    bs_slice v;
    char *out = NULL;
    bs_err rv;

    cr_assert_eq(bs_store_read(s, &t, NULL), BS_OK);
    cr_assert_eq(bs_txn_writable(t), 0);
    rv = bs_txn_get(t, db, bs_str(key), &v);
    if (rv == BS_OK) {
        out = malloc(v.n + 1);
        cr_assert_not_null(out);
        memcpy(out, v.p, v.n);
        out[v.n] = '\0';
    } else {
        cr_assert_eq(rv, BS_ENOTFOUND, "get %s: %s", key, bs_strerror(rv));
    }
    bs_txn_abort(t);
    return out;
}

static uint64_t
count(bs_store *s, bs_db db)
{
    bs_txn *t;
    uint64_t n = 0;

    cr_assert_eq(bs_store_read(s, &t, NULL), BS_OK);
    cr_assert_eq(bs_txn_count(t, db, &n), BS_OK);
    bs_txn_abort(t);
    return n;
}

static void
assert_value(bs_store *s, bs_db db, const char *key, const char *want)
{
    char *got = get_str(s, db, key);

    if (want == NULL) {
        cr_assert_null(got, "%s is present (\"%s\")", key, got ? got : "");
    } else {
        cr_assert_not_null(got, "%s is missing", key);
        cr_assert_str_eq(got, want);
    }
    free(got);
}

/* ---- tests ---- */

Test(store, open_without_store_and_no_create_is_enotnode)
{
    bs_store_opts o = {0};
    bs_store *s = (bs_store *)0x1;
    bs_errbuf err = {{0}};
    struct stat st;
    char path[128];

    cr_assert_eq(bs_store_open(tmpdir, &o, &s, &err), BS_ENOTNODE);
    cr_assert_eq(s, (bs_store *)0x1, "*out was written on failure");
    cr_assert_neq(err.msg[0], '\0');
    snprintf(path, sizeof path, "%s/store", tmpdir);
    cr_assert_neq(stat(path, &st), 0, "a failed open created %s", path);
}

Test(store, create_then_reopen_keeps_data)
{
    bs_store *s = create_store();
    kv items[] = {{"k", "v"}};
    bs_store_opts o = {0};
    struct stat st;
    char path[128];

    cr_assert_eq(put_all(s, BS_DB_META, items, 1, BS_OK, NULL), BS_OK);
    bs_store_close(s);
    snprintf(path, sizeof path, "%s/store", tmpdir);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "store dir mode %o",
                 st.st_mode & 0777);
    s = open_store(&o);
    assert_value(s, BS_DB_META, "k", "v");
    bs_store_close(s);
}

Test(store, put_get_del)
{
    bs_store *s = create_store();
    kv items[] = {{"a", "1"}, {"b", "2"}, {"a", "3"}};
    bs_errbuf err = {{0}};

    cr_assert_eq(put_all(s, BS_DB_RECORDS, items, 3, BS_OK, &err), BS_OK);
    assert_value(s, BS_DB_RECORDS, "a", "3");
    assert_value(s, BS_DB_RECORDS, "b", "2");
    assert_value(s, BS_DB_RECORDS, "c", NULL);
    /* Tables are separate. */
    assert_value(s, BS_DB_META, "a", NULL);
    cr_assert_eq(count(s, BS_DB_RECORDS), 2);
    bs_store_close(s);
}

typedef struct del_job {
    const char *key;
    bs_err got;
} del_job;

static bs_err
del_fn(bs_txn *t, void *arg, bs_errbuf *err)
{
    del_job *d = arg;

    (void)err;
    d->got = bs_txn_del(t, BS_DB_RECORDS, bs_str(d->key));
    return BS_OK;
}

Test(store, del_removes_and_missing_is_notfound)
{
    bs_store *s = create_store();
    kv items[] = {{"a", "1"}, {"b", "2"}};
    del_job d = {"a", BS_EINTERNAL};

    cr_assert_eq(put_all(s, BS_DB_RECORDS, items, 2, BS_OK, NULL), BS_OK);
    cr_assert_eq(bs_store_write(s, del_fn, &d, NULL), BS_OK);
    cr_assert_eq(d.got, BS_OK);
    assert_value(s, BS_DB_RECORDS, "a", NULL);
    assert_value(s, BS_DB_RECORDS, "b", "2");
    d.got = BS_EINTERNAL;
    cr_assert_eq(bs_store_write(s, del_fn, &d, NULL), BS_OK);
    cr_assert_eq(d.got, BS_ENOTFOUND);
    cr_assert_eq(count(s, BS_DB_RECORDS), 1);
    bs_store_close(s);
}

Test(store, cursor_iterates_in_bytewise_key_order)
{
    bs_store *s = create_store();
    /* Inserted out of order; includes a prefix pair and a high byte. */
    kv items[] = {{"b", "2"}, {"\xc3\xa9", "5"}, {"aa", "4"},   {"a", "1"},
                  {"B", "0"}, {"ab", "3"},       {"a\x01", "x"}};
    const char *want[] = {"B", "a", "a\x01", "aa", "ab", "b", "\xc3\xa9"};
    size_t nw = sizeof want / sizeof want[0];
    bs_txn *t;
    bs_cursor *c;
    bs_slice k, v;
    size_t i = 0;
    bs_err rv;

    cr_assert_eq(put_all(s, BS_DB_RECORDS, items, nw, BS_OK, NULL), BS_OK);
    cr_assert_eq(bs_store_read(s, &t, NULL), BS_OK);
    cr_assert_eq(bs_cursor_open(t, BS_DB_RECORDS, &c), BS_OK);
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        cr_assert_lt(i, nw, "more keys than were put");
        cr_assert_eq(k.n, strlen(want[i]), "key %zu", i);
        cr_assert_eq(memcmp(k.p, want[i], k.n), 0, "key %zu out of order", i);
        i++;
    }
    cr_assert_eq(rv, BS_ENOTFOUND);
    cr_assert_eq(i, nw);

    /* Backwards from the end. */
    i = nw;
    for (rv = bs_cursor_last(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_prev(c, &k, &v)) {
        cr_assert_gt(i, 0);
        i--;
        cr_assert_eq(memcmp(k.p, want[i], k.n), 0, "reverse key %zu", i);
    }
    cr_assert_eq(rv, BS_ENOTFOUND);
    cr_assert_eq(i, 0);

    /* Seek: the first key >= the probe. */
    cr_assert_eq(bs_cursor_seek(c, bs_str("a\x02"), &k, &v), BS_OK);
    cr_assert_eq(k.n, 2);
    cr_assert_eq(memcmp(k.p, "aa", 2), 0);
    cr_assert_eq(v.n, 1);
    cr_assert_eq(v.p[0], '4');
    cr_assert_eq(bs_cursor_seek(c, bs_str("ab"), &k, &v), BS_OK);
    cr_assert_eq(memcmp(k.p, "ab", 2), 0, "an exact match is found");
    cr_assert_eq(bs_cursor_seek(c, bs_str("\xff"), &k, &v), BS_ENOTFOUND);
    bs_cursor_close(c);
    bs_txn_abort(t);
    bs_store_close(s);
}

Test(store, cursor_on_empty_table)
{
    bs_store *s = create_store();
    bs_txn *t;
    bs_cursor *c;
    bs_slice k, v;

    cr_assert_eq(bs_store_read(s, &t, NULL), BS_OK);
    cr_assert_eq(bs_cursor_open(t, BS_DB_LOG, &c), BS_OK);
    cr_assert_eq(bs_cursor_first(c, &k, &v), BS_ENOTFOUND);
    cr_assert_eq(bs_cursor_last(c, &k, &v), BS_ENOTFOUND);
    cr_assert_eq(bs_cursor_seek(c, bs_str("a"), &k, &v), BS_ENOTFOUND);
    bs_cursor_close(c);
    bs_txn_abort(t);
    bs_store_close(s);
}

typedef struct cdel_job {
    int deleted;
} cdel_job;

/* Delete every entry whose value is "odd" with the cursor. */
static bs_err
cursor_del_fn(bs_txn *t, void *arg, bs_errbuf *err)
{
    cdel_job *j = arg;
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    (void)err;
    j->deleted = 0;
    if ((rv = bs_cursor_open(t, BS_DB_PEERS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;) {
        if (v.n == 3 && memcmp(v.p, "odd", 3) == 0) {
            if ((rv = bs_cursor_del(c)) != BS_OK)
                break;
            j->deleted++;
        }
        /* After a delete the cursor's next entry is the one that followed
         * the deleted entry. */
        rv = bs_cursor_next(c, &k, &v);
    }
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

Test(store, cursor_del_removes_entries)
{
    bs_store *s = create_store();
    kv items[] = {{"1", "odd"}, {"2", "even"}, {"3", "odd"}, {"4", "even"}};
    cdel_job j = {0};

    cr_assert_eq(put_all(s, BS_DB_PEERS, items, 4, BS_OK, NULL), BS_OK);
    cr_assert_eq(bs_store_write(s, cursor_del_fn, &j, NULL), BS_OK);
    cr_assert_eq(j.deleted, 2);
    cr_assert_eq(count(s, BS_DB_PEERS), 2);
    assert_value(s, BS_DB_PEERS, "1", NULL);
    assert_value(s, BS_DB_PEERS, "2", "even");
    assert_value(s, BS_DB_PEERS, "3", NULL);
    assert_value(s, BS_DB_PEERS, "4", "even");
    bs_store_close(s);
}

typedef struct noover_job {
    bs_err put_rv, reserve_rv;
    char existing[32], existing2[32];
} noover_job;

static bs_err
noover_fn(bs_txn *t, void *arg, bs_errbuf *err)
{
    noover_job *j = arg;
    bs_slice ex = {0}, ex2 = {0};
    uint8_t *dst = NULL;

    (void)err;
    j->put_rv = bs_txn_put(t, BS_DB_META, bs_str("k"), bs_str("new"),
                           BS_PUT_NOOVERWRITE, &ex);
    if (j->put_rv == BS_EEXIST)
        snprintf(j->existing, sizeof j->existing, "%.*s", (int)ex.n,
                 (const char *)ex.p);
    j->reserve_rv = bs_txn_reserve(t, BS_DB_META, bs_str("k"), 5,
                                   BS_PUT_NOOVERWRITE, &dst, &ex2);
    if (j->reserve_rv == BS_EEXIST)
        snprintf(j->existing2, sizeof j->existing2, "%.*s", (int)ex2.n,
                 (const char *)ex2.p);
    return BS_OK;
}

Test(store, nooverwrite_gives_eexist_with_existing_value)
{
    bs_store *s = create_store();
    kv items[] = {{"k", "original"}};
    noover_job j;

    memset(&j, 0, sizeof j);
    cr_assert_eq(put_all(s, BS_DB_META, items, 1, BS_OK, NULL), BS_OK);
    cr_assert_eq(bs_store_write(s, noover_fn, &j, NULL), BS_OK);
    cr_assert_eq(j.put_rv, BS_EEXIST);
    cr_assert_str_eq(j.existing, "original");
    cr_assert_eq(j.reserve_rv, BS_EEXIST);
    cr_assert_str_eq(j.existing2, "original");
    assert_value(s, BS_DB_META, "k", "original");
    bs_store_close(s);
}

Test(store, nooverwrite_on_new_key_writes)
{
    bs_store *s = create_store();
    noover_job j;

    memset(&j, 0, sizeof j);
    cr_assert_eq(bs_store_write(s, noover_fn, &j, NULL), BS_OK);
    /* The put created "k"; the reserve then found it. */
    cr_assert_eq(j.put_rv, BS_OK);
    cr_assert_eq(j.reserve_rv, BS_EEXIST);
    cr_assert_str_eq(j.existing2, "new");
    assert_value(s, BS_DB_META, "k", "new");
    bs_store_close(s);
}

static bs_err
reserve_fn(bs_txn *t, void *arg, bs_errbuf *err)
{
    uint8_t *dst;
    bs_err rv;

    (void)arg;
    (void)err;
    if ((rv = bs_txn_reserve(t, BS_DB_LOG, bs_str("r"), 6, 0, &dst, NULL)) !=
        BS_OK)
        return rv;
    memcpy(dst, "abcdef", 6);
    return BS_OK;
}

Test(store, reserve_then_write_in_place)
{
    bs_store *s = create_store();

    cr_assert_eq(bs_store_write(s, reserve_fn, NULL, NULL), BS_OK);
    assert_value(s, BS_DB_LOG, "r", "abcdef");
    bs_store_close(s);
}

typedef struct append_job {
    bs_err early, late;
} append_job;

static bs_err
append_fn(bs_txn *t, void *arg, bs_errbuf *err)
{
    append_job *j = arg;

    (void)err;
    j->early =
        bs_txn_put(t, BS_DB_LOG, bs_str("a"), bs_str("x"), BS_PUT_APPEND, NULL);
    j->late =
        bs_txn_put(t, BS_DB_LOG, bs_str("z"), bs_str("y"), BS_PUT_APPEND, NULL);
    return BS_OK;
}

Test(store, append_accepts_only_keys_after_the_last)
{
    bs_store *s = create_store();
    kv first[] = {{"m", "1"}};
    append_job j = {BS_OK, BS_EINTERNAL};

    cr_assert_eq(put_all(s, BS_DB_LOG, first, 1, BS_OK, NULL), BS_OK);
    cr_assert_eq(bs_store_write(s, append_fn, &j, NULL), BS_OK);
    cr_assert_neq(j.early, BS_OK, "an append before the last key succeeded");
    cr_assert_eq(j.late, BS_OK);
    assert_value(s, BS_DB_LOG, "a", NULL);
    assert_value(s, BS_DB_LOG, "z", "y");
    bs_store_close(s);
}

Test(store, read_txn_refuses_puts)
{
    bs_store *s = create_store();
    bs_txn *t;

    cr_assert_eq(bs_store_read(s, &t, NULL), BS_OK);
    cr_assert_neq(bs_txn_put(t, BS_DB_LOG, bs_str("z"), bs_str("x"), 0, NULL),
                  BS_OK, "a put in a read-only transaction succeeded");
    bs_txn_abort(t);
    assert_value(s, BS_DB_LOG, "z", NULL);
    bs_store_close(s);
}

Test(store, write_aborts_everything_when_fn_fails)
{
    bs_store *s = create_store();
    kv before[] = {{"keep", "1"}};
    kv inside[] = {{"x", "1"}, {"y", "2"}, {"keep", "changed"}};
    bs_errbuf err = {{0}};
    bs_err rv;

    cr_assert_eq(put_all(s, BS_DB_RECORDS, before, 1, BS_OK, NULL), BS_OK);
    rv = put_all(s, BS_DB_RECORDS, inside, 3, BS_EINVAL, &err);
    cr_assert_eq(rv, BS_EINVAL, "fn's error must come back unchanged");
    cr_assert_str_eq(err.msg, "test asked to fail");
    assert_value(s, BS_DB_RECORDS, "x", NULL);
    assert_value(s, BS_DB_RECORDS, "y", NULL);
    assert_value(s, BS_DB_RECORDS, "keep", "1");
    cr_assert_eq(count(s, BS_DB_RECORDS), 1);
    bs_store_close(s);
}

Test(store, readonly_store_refuses_writes)
{
    bs_store *s = create_store();
    kv items[] = {{"k", "v"}};
    bs_store_opts ro = {.readonly = 1};

    cr_assert_eq(put_all(s, BS_DB_META, items, 1, BS_OK, NULL), BS_OK);
    bs_store_close(s);
    s = open_store(&ro);
    assert_value(s, BS_DB_META, "k", "v");
    cr_assert_neq(put_all(s, BS_DB_META, items, 1, BS_OK, NULL), BS_OK);
    bs_store_close(s);
}

/* ---- map growth ---- */

#define BIG_N   20000
#define BIG_VAL 200

typedef struct big_job {
    int calls;
    int fail; /* return an error after the last put */
} big_job;

static bs_err
big_fn(bs_txn *t, void *arg, bs_errbuf *err)
{
    big_job *j = arg;
    uint8_t val[BIG_VAL];
    char key[16];
    bs_err rv;

    (void)err;
    j->calls++;
    for (int i = 0; i < BIG_N; i++) {
        int kn = snprintf(key, sizeof key, "k%06d", i);

        memset(val, 'a' + i % 26, sizeof val);
        memcpy(val, key, (size_t)kn);
        if ((rv = bs_txn_put(t, BS_DB_RECORDS, bs_mem(key, (size_t)kn),
                             bs_mem(val, sizeof val), 0, NULL)) != BS_OK)
            return rv;
    }
    return BS_OK;
}

Test(store, map_grows_from_tiny_to_fit_one_big_write)
{
    bs_store_opts o = {
        .create = 1, .map_size = 64u << 10, .max_map_size = 64u << 20};
    bs_store *s = open_store(&o);
    big_job j = {0};
    bs_errbuf err = {{0}};
    uint64_t start = bs_store_map_size(s);
    bs_txn *t;
    bs_slice v;
    bs_err rv;

    cr_assert_leq(start, 64u << 10, "map starts at %llu bytes",
                  (unsigned long long)start);
    rv = bs_store_write(s, big_fn, &j, &err);
    cr_assert_eq(rv, BS_OK, "write: %s", bs_errmsg(&err, rv));
    cr_assert_gt(j.calls, 1, "the map never filled, so nothing was tested");
    cr_assert_gt(bs_store_map_size(s), start);
    cr_assert_leq(bs_store_map_size(s), 64u << 20);
    cr_assert_eq(count(s, BS_DB_RECORDS), BIG_N);
    cr_assert_eq(bs_store_read(s, &t, NULL), BS_OK);
    for (int i = 0; i < BIG_N; i++) {
        char key[16];
        int kn = snprintf(key, sizeof key, "k%06d", i);

        cr_assert_eq(bs_txn_get(t, BS_DB_RECORDS, bs_mem(key, (size_t)kn), &v),
                     BS_OK, "%s missing", key);
        cr_assert_eq(v.n, BIG_VAL);
        cr_assert_eq(memcmp(v.p, key, (size_t)kn), 0);
        cr_assert_eq(v.p[BIG_VAL - 1], 'a' + i % 26);
    }
    bs_txn_abort(t);
    bs_store_close(s);

    /* The grown size is kept by the file: reopening with a tiny map adopts
     * it and the data is still all there. */
    s = open_store(&o);
    cr_assert_eq(count(s, BS_DB_RECORDS), BIG_N);
    bs_store_close(s);
}

Test(store, map_full_at_cap_is_emapfull_and_writes_nothing)
{
    bs_store_opts o = {
        .create = 1, .map_size = 64u << 10, .max_map_size = 64u << 10};
    bs_store *s = open_store(&o);
    kv small[] = {{"before", "1"}};
    big_job j = {0};
    bs_errbuf err = {{0}};
    bs_err rv;

    cr_assert_eq(put_all(s, BS_DB_META, small, 1, BS_OK, NULL), BS_OK);
    rv = bs_store_write(s, big_fn, &j, &err);
    cr_assert_eq(rv, BS_EMAPFULL, "got %s", bs_strerror(rv));
    cr_assert_eq(bs_err_exit_code(rv), 1);
    cr_assert(strstr(err.msg, "full") != NULL, "message: %s", err.msg);
    cr_assert_eq(count(s, BS_DB_RECORDS), 0, "a failed write left records");
    assert_value(s, BS_DB_META, "before", "1");
    cr_assert_eq(bs_store_map_size(s), 64u << 10, "the map grew past its cap");
    /* The store still works for small writes afterwards. */
    small[0].v = "2";
    cr_assert_eq(put_all(s, BS_DB_META, small, 1, BS_OK, NULL), BS_OK);
    assert_value(s, BS_DB_META, "before", "2");
    bs_store_close(s);
}

Test(store, used_bytes_grow_with_data)
{
    bs_store_opts o = {.create = 1};
    bs_store *s = open_store(&o);
    big_job j = {0};
    uint64_t before = bs_store_used_bytes(s);

    cr_assert_eq(bs_store_write(s, big_fn, &j, NULL), BS_OK);
    cr_assert_eq(j.calls, 1, "a 256 MiB map needed no growth");
    cr_assert_gt(bs_store_used_bytes(s), before + (uint64_t)BIG_N * BIG_VAL);
    bs_store_close(s);
}

Test(store, map_full_at_cap_names_the_limit_and_the_disk)
{
    bs_store_opts o = {
        .create = 1, .map_size = 1u << 20, .max_map_size = 1u << 20};
    bs_store *s = open_store(&o);
    big_job j = {0};
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_store_write(s, big_fn, &j, &err), BS_EMAPFULL);
    cr_assert(strncmp(err.msg,
                      "store is full: the map is at its limit of 1 MiB (",
                      49) == 0,
              "%s", err.msg);
    cr_assert(strstr(err.msg, " MiB in use, ") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, " MiB free on disk): raise [store] "
                              "max_map_size_mb in branchsync.conf") != NULL,
              "%s", err.msg);
    bs_store_close(s);
}

Test(store, a_truncated_data_file_is_refused_at_open)
{
    bs_store_opts o = {.create = 1};
    bs_store *s = open_store(&o);
    big_job j = {0};
    bs_errbuf err = {{0}};
    char path[128];
    bs_err rv;

    cr_assert_eq(bs_store_write(s, big_fn, &j, NULL), BS_OK);
    bs_store_close(s);
    snprintf(path, sizeof path, "%s/store/data.mdb", tmpdir);
    cr_assert_eq(truncate(path, 256 * 1024), 0);
    o.create = 0;
    rv = bs_store_open(tmpdir, &o, &s, &err);
    cr_assert_eq(rv, BS_ESTORE);
    cr_assert(strstr(err.msg, "store is corrupt: ") == err.msg &&
                  strstr(err.msg, "/store/data.mdb is truncated (262144 "
                                  "bytes, its pages take ") != NULL &&
                  strstr(err.msg, "; restore from a backup") != NULL,
              "%s", err.msg);
}

Test(store, a_fault_in_the_map_is_the_stores_and_one_elsewhere_is_not)
{
    bs_store_opts o = {.create = 1};
    bs_store *s = open_store(&o);
    kv items[] = {{"k", "a value in the map"}};
    const char *path = NULL;
    char want[128];
    int local = 0;
    bs_slice v;
    bs_txn *t;

    cr_assert_eq(put_all(s, BS_DB_META, items, 1, BS_OK, NULL), BS_OK);
    cr_assert_eq(bs_store_read(s, &t, NULL), BS_OK);
    cr_assert_eq(bs_txn_get(t, BS_DB_META, bs_str("k"), &v), BS_OK);
    cr_assert(bs_store_fault_owner(v.p, &path));
    snprintf(want, sizeof want, "%s/store/data.mdb", tmpdir);
    cr_assert_str_eq(path, want);
    /* Past the end of the map too: a damaged length runs off it. */
    cr_assert(bs_store_fault_owner(v.p + (512u << 20), &path));
    cr_assert_not(bs_store_fault_owner(&local, &path));
    cr_assert_not(bs_store_fault_owner(NULL, &path));
    bs_txn_abort(t);
    bs_store_close(s);
    cr_assert_not(bs_store_fault_owner(v.p, &path), "closed, still owned");
}
