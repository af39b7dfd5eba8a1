/*
 * test_verify.c - a damaged store (replication/verify.h, node/fault.h,
 * docs/reliability.md C1): the whole-store check finds each kind of damage
 * the tables can suffer and names it; healthy stores of every shape pass;
 * backup, digest and export refuse a damaged store; a crash on a damaged
 * map becomes one line and exit 1.  Then the CLI, as an admin meets it:
 * `verify` on a healthy node, a truncated data file, and bits flipped at
 * random in the data pages of a real store, after which no command may
 * crash or answer partly.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../node/fault.h"
#include "../../replication/digest.h"
#include "../../replication/meta.h"
#include "../../replication/setlog.h"
#include "../../replication/streams.h"
#include "../../replication/verify.h"
#include "../../replication/xlog.h"
#include "../lib/damage.h"
#include "../lib/fixture.h"

static char root[128];
static bst_node hub, br;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "verify");
    bst_node_new(&hub, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&br, root, "tallinn", BS_ROLE_BRANCH, NULL);
}

static void
teardown(void)
{
    bst_node_free(&br);
    bst_node_free(&hub);
    bst_rmtree(root);
    bst_leak_check("test_verify");
}

TestSuite(verify, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ---- */

#define OK(call)                                                               \
    do {                                                                       \
        bs_errbuf e_ = {{0}};                                                  \
        bs_err r_ = (call);                                                    \
        (void)e_;                                                              \
        cr_assert_eq(r_, BS_OK, "%s: %s", #call, bs_strerror(r_));             \
    } while (0)

static void
put(bst_node *t, const char *coll, const char *id, const char *json)
{
    bs_errbuf err = {{0}};
    bs_err rv = bst_put(t, coll, id, json, &err);

    cr_assert_eq(rv, BS_OK, "put %s/%s: %s", coll, id, bs_errmsg(&err, rv));
}

static void
carry(bst_node *from, bst_node *to)
{
    bs_errbuf err = {{0}};
    bs_xstats st;
    bs_err rv = bst_carry(from, to, &st, &err);

    cr_assert_eq(rv, BS_OK, "carry %s -> %s: %s", from->name, to->name,
                 bs_errmsg(&err, rv));
}

typedef struct found {
    int n, stop_after;
    char first[400], all[4096];
} found;

static int
collect(void *ctx, const char *line)
{
    found *f = ctx;
    size_t len = strlen(f->all);

    if (f->n++ == 0)
        snprintf(f->first, sizeof f->first, "%s", line);
    snprintf(f->all + len, sizeof f->all - len, "%s\n", line);
    return f->stop_after > 0 && f->n >= f->stop_after;
}

/* Verify t: the result, with err, stats and every finding in *f. */
static bs_err
verify(bst_node *t, bs_verify_stats *st, bs_errbuf *err, found *f)
{
    found local = {0};
    bs_verify_opts o = {collect, f ? f : &local};
    bs_txn *tx;
    bs_err rv;

    cr_assert_eq(bs_store_read(t->n->store, &tx, NULL), BS_OK);
    rv = bs_verify_store(tx, &o, st, err);
    bs_txn_abort(tx);
    return rv;
}

static void
assert_clean(bst_node *t)
{
    bs_verify_stats st;
    bs_errbuf err = {{0}};
    found f = {0};
    bs_err rv = verify(t, &st, &err, &f);

    cr_assert_eq(rv, BS_OK, "%s: %s\nall findings:\n%s", t->name,
                 bs_errmsg(&err, rv), f.all);
    cr_assert_eq(st.findings, 0);
}

/* Verify t expecting damage: the first finding must contain `want`, and
 * the error be "store is corrupt: FINDING; restore from a backup". */
static void
assert_finding(bst_node *t, const char *want)
{
    bs_verify_stats st;
    bs_errbuf err = {{0}};
    found f = {0};
    char line[600];
    bs_err rv = verify(t, &st, &err, &f);

    cr_assert_eq(rv, BS_ESTORE, "%s: damage not found (%s)", t->name,
                 bs_strerror(rv));
    cr_assert_geq(st.findings, 1);
    cr_assert(strstr(f.first, want) != NULL,
              "first finding \"%s\" does not name \"%s\"; all:\n%s", f.first,
              want, f.all);
    snprintf(line, sizeof line, "store is corrupt: %s; restore from a backup",
             f.first);
    cr_assert_str_eq(err.msg, line);
}

/* A write transaction running fn(t, arg). */
static void
write_txn(bst_node *t, bs_write_fn fn, void *arg)
{
    bs_errbuf err = {{0}};
    bs_err rv = bs_store_write(t->n->store, fn, arg, &err);

    cr_assert_eq(rv, BS_OK, "write: %s", bs_errmsg(&err, rv));
}

/* Rewrite record coll/id with `edit` applied to its decoded form. */
typedef void (*edit_fn)(bs_record *r);

static void
edit_record(bst_node *t, const char *coll, const char *id, edit_fn edit)
{
    uint8_t key[BS_RECKEY_MAX], *buf;
    size_t klen = bs_record_key(key, coll, id);
    bs_errbuf err = {{0}};
    bs_arena a;
    bs_record r;
    bs_recenc e;
    bs_txn *tx;

    bs_arena_init(&a);
    cr_assert_eq(bs_store_read(t->n->store, &tx, NULL), BS_OK);
    cr_assert_eq(bs_records_get(tx, coll, id, &a, &r, &err), BS_OK, "%s",
                 err.msg);
    edit(&r);
    cr_assert_eq(bs_record_prepare(&r, &a, &e), BS_OK);
    buf = malloc(e.size);
    cr_assert_not_null(buf);
    bs_record_encode(&r, &e, buf);
    bs_txn_abort(tx);
    bst_damage(t->n->store, BST_RECORDS, bs_mem(key, klen),
               bs_mem(buf, e.size));
    free(buf);
    bs_arena_fini(&a);
}

/* The entry of t's own stream. */
static bs_stream
own_stream(bst_node *t)
{
    bs_meta m = bst_meta(t);
    bs_stream s;

    cr_assert(bst_stream(t, m.pk, m.inc, &s));
    return s;
}

/* ---- healthy stores of every shape ---- */

Test(verify, healthy_nodes_pass_and_count_what_was_checked)
{
    bst_node b2;
    bs_verify_stats st;
    bs_errbuf err = {{0}};
    bst_counts c;
    char cid[BS_CONFLICT_ID_LEN + 1];

    bst_node_new(&b2, root, "riga", BS_ROLE_BRANCH, NULL);
    bst_pair2(&hub, &br);
    bst_pair2(&hub, &b2);
    put(&br, "items", "local", "{\"v\":1}"); /* written before joining */
    put(&hub, "items", "a", "{\"n\":1,\"s\":\"x\",\"r\":1.5,\"b\":true}");
    put(&hub, "items", "b", "{\"n\":2}");
    carry(&hub, &br);
    carry(&br, &hub);
    carry(&hub, &b2);
    /* A conflict: both branches edit one field, then a delete. */
    put(&br, "items", "a", "{\"n\":10}");
    put(&b2, "items", "a", "{\"n\":20}");
    cr_assert_eq(bst_del(&hub, "items", "b", &err), BS_OK);
    carry(&br, &hub);
    carry(&b2, &hub);
    carry(&hub, &br);
    carry(&hub, &b2);
    cr_assert_geq(bst_conflicts_of(&hub, 1, "items", "a", "n", cid), 1);

    bst_node *all[] = {&hub, &br, &b2};
    for (int i = 0; i < 3; i++) {
        assert_clean(all[i]);
        cr_assert_eq(verify(all[i], &st, &err, NULL), BS_OK);
        bst_count(all[i], &c);
        cr_assert_eq(st.sets, c.sets, "%s: sets %llu, log %llu", all[i]->name,
                     (unsigned long long)st.sets, (unsigned long long)c.sets);
        cr_assert_eq(st.streams, c.streams);
        cr_assert_eq(st.conflicts, c.conflicts);
        cr_assert_geq(st.records, 3);
        cr_assert_eq(st.peers, all[i] == &hub ? 2 : 1);
        cr_assert_gt(st.changes, 0);
        cr_assert_gt(st.crosschecked, 0, "nothing was compared with the log");
        cr_assert_eq(st.unchecked_streams, 0);
    }
    bst_node_free(&b2);
}

Test(verify, a_branch_passes_before_and_after_it_joins)
{
    put(&br, "items", "x", "{\"v\":1}");
    put(&br, "items", "y", "{\"v\":2}");
    assert_clean(&br); /* unjoined: its sets carry no infobase yet */
    bst_pair2(&hub, &br);
    carry(&hub, &br); /* joins: its sets are signed again */
    assert_clean(&br);
    carry(&br, &hub);
    assert_clean(&hub);
}

/* ---- records ---- */

static void
corrupt_record(bst_node *t, const char *id)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, "items", id);

    bst_damage(t->n->store, BST_RECORDS, bs_mem(key, klen),
               bs_str("not a record"));
}

Test(verify, a_record_that_does_not_decode)
{
    put(&hub, "items", "bad", "{\"v\":1}");
    corrupt_record(&hub, "bad");
    assert_finding(&hub, "record items/bad does not decode");
}

static void
change_text(bs_record *r)
{
    r->fields[0].val.s = "Tallinm"; /* one bit away from Tallinn */
}

Test(verify, a_value_that_still_decodes_but_differs_from_its_change)
{
    put(&hub, "items", "c1", "{\"city\":\"Tallinn\"}");
    edit_record(&hub, "items", "c1", change_text);
    assert_finding(&hub, "record items/c1: field \"city\" does not hold what "
                         "the change at seq");
}

static void
bump_seq(bs_record *r)
{
    r->fields[0].ver.seq += 1000;
}

Test(verify, a_version_the_stream_does_not_hold)
{
    put(&hub, "items", "c1", "{\"city\":\"Tallinn\"}");
    edit_record(&hub, "items", "c1", bump_seq);
    assert_finding(&hub, "record items/c1: field \"city\" names seq");
}

static void
other_stream(bs_record *r)
{
    r->alive.stream = 77;
}

Test(verify, a_version_of_a_stream_that_does_not_exist)
{
    put(&hub, "items", "c1", "{\"city\":\"Tallinn\"}");
    edit_record(&hub, "items", "c1", other_stream);
    assert_finding(&hub, "stream 77, which does not exist");
}

static void
other_seq(bs_record *r)
{
    r->fields[0].ver.seq -= 1; /* a change of another record */
    r->alive.seq -= 1;
}

Test(verify, a_version_that_names_another_records_change)
{
    put(&hub, "items", "c0", "{\"city\":\"Riga\"}");
    put(&hub, "items", "c1", "{\"city\":\"Tallinn\"}");
    edit_record(&hub, "items", "c1", other_seq);
    assert_finding(&hub, "a change that wrote another record or time");
}

/* ---- the log and the stream table ---- */

Test(verify, a_damaged_change_set_in_the_log)
{
    bs_stream s;
    bs_slice set;
    uint8_t key[12], *copy;
    bs_txn *tx;

    put(&hub, "items", "c1", "{\"city\":\"Tallinn\"}");
    s = own_stream(&hub);
    cr_assert_eq(bs_store_read(hub.n->store, &tx, NULL), BS_OK);
    cr_assert_eq(bs_setlog_get(tx, s.idx, s.seq, &set), BS_OK);
    copy = malloc(set.n);
    memcpy(copy, set.p, set.n);
    bs_txn_abort(tx);
    copy[bst_last_change_byte(set.p, set.n)] ^=
        0x08; /* inside the last change */
    bs_put_u32be(key, s.idx);
    bs_put_u64be(key + 4, s.seq);
    bst_damage(hub.n->store, BST_LOG, bs_mem(key, 12), bs_mem(copy, set.n));
    free(copy);
    assert_finding(&hub, "is damaged");
}

static bs_err
bump_position(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_stream *s = arg;

    (void)err;
    s->seq += 3;
    return bs_streams_save(t, s);
}

Test(verify, a_stream_position_past_its_sets_is_a_gap)
{
    bs_stream s;

    put(&hub, "items", "c1", "{\"v\":1}");
    s = own_stream(&hub);
    write_txn(&hub, bump_position, &s);
    assert_finding(&hub, "but its sets end at");
}

static bs_err
wrong_head(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_stream *s = arg;

    (void)err;
    s->last_hash[0] ^= 1;
    return bs_streams_save(t, s);
}

Test(verify, a_chain_head_that_is_not_the_last_set)
{
    bs_stream s;

    put(&hub, "items", "c1", "{\"v\":1}");
    s = own_stream(&hub);
    write_txn(&hub, wrong_head, &s);
    assert_finding(&hub, "its chain head is not the hash of its last set");
}

Test(verify, a_stream_index_entry_that_names_another_stream)
{
    uint8_t key[BS_STREAM_KEY_LEN], idx[4];

    memset(key, 0x5a, sizeof key);
    bs_put_u32be(idx, 1);
    bst_damage(hub.n->store, BST_STREAMIX, bs_mem(key, sizeof key),
               bs_mem(idx, 4));
    assert_finding(&hub, "stream index: entry");
}

Test(verify, a_stream_table_that_does_not_decode)
{
    uint8_t key[4];

    bs_put_u32be(key, 1);
    bst_damage(hub.n->store, BST_STREAMS, bs_mem(key, 4), bs_str("short"));
    assert_finding(&hub, "streams: the stream table does not decode");
}

/* ---- the other tables ---- */

Test(verify, a_held_entry_that_does_not_decode)
{
    uint8_t key[13] = {'H'};

    bs_put_u32be(key + 1, 1);
    bs_put_u64be(key + 5, 99);
    bst_damage(hub.n->store, BST_HELD, bs_mem(key, 13), bs_str("x"));
    assert_finding(&hub, "held: entry 1 does not decode");
}

static bs_err
bad_counter(bs_txn *t, void *arg, bs_errbuf *err)
{
    (void)arg;
    (void)err;
    return bs_meta_put_u64(t, "conflicts.all", 7);
}

Test(verify, conflict_counters_that_disagree_with_the_register)
{
    write_txn(&hub, bad_counter, NULL);
    assert_finding(&hub, "conflicts: the register holds 0 (0 open), the "
                         "counters say 7");
}

Test(verify, a_conflict_entry_that_does_not_decode)
{
    static const char key[] = "items\0a\0n\0"
                              "0123456789abcdef";

    bst_damage(hub.n->store, BST_CONFLICTS, bs_mem(key, sizeof key - 1),
               bs_str("\x01garbage"));
    assert_finding(&hub, "conflicts: entry 1 does not decode");
}

Test(verify, a_peer_entry_that_does_not_decode)
{
    bst_pair2(&hub, &br);
    bst_damage(hub.n->store, BST_PEERS, bs_str("tallinn"), bs_str("\xff\xff"));
    assert_finding(&hub, "peers: the entry of tallinn does not decode");
}

static bs_err
add_xlog(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_xlog_entry e = {.time_ms = 5000, .peer = "tallinn", .via = "file"};

    (void)arg;
    (void)err;
    return bs_xlog_add(t, &e);
}

Test(verify, an_exchange_log_entry_that_does_not_decode)
{
    uint8_t key[16];

    bst_pair2(&hub, &br);
    write_txn(&hub, add_xlog, NULL); /* key (5000, 0); xlog.seq 1 */
    assert_clean(&hub);
    bs_put_u64be(key, 5000);
    bs_put_u64be(key + 8, 0);
    bst_damage(hub.n->store, BST_XLOG, bs_mem(key, 16), bs_str("\xff\xff\xff"));
    assert_finding(&hub, "exchange log: an entry does not decode");
}

Test(verify, incomplete_metadata)
{
    bst_damage(hub.n->store, BST_META, bs_str("hlc"), bs_str("abc"));
    assert_finding(&hub, "metadata: store metadata incomplete");
}

Test(verify, every_finding_reaches_the_caller_who_may_stop_the_walk)
{
    bs_verify_stats st;
    bs_errbuf err = {{0}};
    found f = {0};

    put(&hub, "items", "a", "{\"v\":1}");
    put(&hub, "items", "b", "{\"v\":1}");
    put(&hub, "items", "c", "{\"v\":1}");
    corrupt_record(&hub, "a");
    corrupt_record(&hub, "c");
    cr_assert_eq(verify(&hub, &st, &err, &f), BS_ESTORE);
    cr_assert_eq(st.findings, 2, "findings:\n%s", f.all);
    cr_assert_str_eq(f.all, "record items/a does not decode\n"
                            "record items/c does not decode\n");
    memset(&f, 0, sizeof f);
    f.stop_after = 1;
    cr_assert_eq(verify(&hub, &st, &err, &f), BS_ESTORE);
    cr_assert_eq(st.findings, 1);
    cr_assert_str_eq(err.msg, "store is corrupt: record items/a does not "
                              "decode; restore from a backup");
}

/* ---- the commands that must refuse a damaged store ---- */

Test(verify, backup_refuses_a_damaged_store_and_writes_nothing)
{
    char path[256], tmp[300];
    bs_errbuf err = {{0}};
    uint64_t bytes = 0;
    struct stat sb;

    put(&hub, "items", "bad", "{\"v\":1}");
    snprintf(path, sizeof path, "%s/good.mdb", root);
    cr_assert_eq(bs_node_backup(hub.n, path, &bytes, &err), BS_OK, "%s",
                 err.msg);
    cr_assert_gt(bytes, 0);
    corrupt_record(&hub, "bad");
    snprintf(path, sizeof path, "%s/bad.mdb", root);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_eq(bs_node_backup(hub.n, path, &bytes, &err), BS_ESTORE);
    cr_assert(strstr(err.msg, "store is corrupt: record items/bad does not "
                              "decode (no backup was written to ") == err.msg &&
                  strstr(err.msg, "; restore from a backup") != NULL,
              "%s", err.msg);
    cr_assert_neq(stat(path, &sb), 0, "a backup of a damaged store exists");
    cr_assert_neq(stat(tmp, &sb), 0, "the temporary copy was left behind");
}

Test(verify, digest_names_the_record_that_does_not_decode)
{
    uint8_t d[BS_HASH_LEN];
    bs_errbuf err = {{0}};
    uint64_t n;
    bs_txn *tx;

    put(&hub, "items", "bad", "{\"v\":1}");
    corrupt_record(&hub, "bad");
    cr_assert_eq(bs_store_read(hub.n->store, &tx, NULL), BS_OK);
    cr_assert_eq(bs_digest(tx, NULL, 0, d, &n, &err), BS_ESTORE);
    bs_txn_abort(tx);
    cr_assert_str_eq(err.msg, "store is corrupt: record items/bad does not "
                              "decode; restore from a backup");
}

Test(verify, export_and_a_session_refuse_to_send_a_damaged_set)
{
    bs_stream s;
    bs_slice set;
    uint8_t key[12], *copy, *out;
    char path[256];
    bs_errbuf err = {{0}};
    bs_xcursor cur;
    size_t n;
    bs_txn *tx;

    bst_pair2(&hub, &br);
    put(&hub, "items", "c1", "{\"city\":\"Tallinn\"}");
    s = own_stream(&hub);
    cr_assert_eq(bs_store_read(hub.n->store, &tx, NULL), BS_OK);
    cr_assert_eq(bs_setlog_get(tx, s.idx, s.seq, &set), BS_OK);
    copy = malloc(set.n);
    memcpy(copy, set.p, set.n);
    bs_txn_abort(tx);
    copy[bst_last_change_byte(set.p, set.n)] ^= 0x08;
    bs_put_u32be(key, s.idx);
    bs_put_u64be(key + 4, s.seq);
    bst_damage(hub.n->store, BST_LOG, bs_mem(key, 12), bs_mem(copy, set.n));
    free(copy);

    snprintf(path, sizeof path, "%s/x.bsx", root);
    cr_assert_eq(bst_export(&hub, "tallinn", path, &err), BS_ESTORE);
    cr_assert(strstr(err.msg, "store is corrupt") != NULL, "%s", err.msg);

    bs_xcursor_init(&cur, NULL, 0);
    bs_err rv;
    while ((rv = bs_xchg_next(hub.n->store, &cur, &out, &n, &err)) == BS_OK)
        free(out);
    bs_xcursor_fini(&cur);
    cr_assert_eq(rv, BS_ESTORE, "the damaged set was sent: %s",
                 bs_strerror(rv));
    cr_assert(strstr(err.msg, "store is corrupt: the stored change set of "
                              "stream 1 after seq") != NULL,
              "%s", err.msg);
}

/* ---- the crash handler (node/fault.h) ---- */

/* Run fn in a child with stderr to a file; its status and stderr. */
static int
in_child(void (*fn)(void), char *errout, size_t n)
{
    char path[256];
    int st, fd;
    pid_t pid;

    snprintf(path, sizeof path, "%s/child.err", root);
    fflush(NULL);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        fn();
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    fd = open(path, O_RDONLY);
    ssize_t k = read(fd, errout, n - 1);
    errout[k > 0 ? k : 0] = '\0';
    close(fd);
    return st;
}

/* Read a value from the map after the file under it was truncated: the
 * page is gone, and reading it is a SIGBUS. */
static void
read_past_the_end(void)
{
    char data[300];
    bs_errbuf err = {{0}};
    volatile char sink = 0;
    bs_arena a;
    bs_record r;
    bs_txn *tx;

    bs_fault_install("branchsync: test");
    bs_arena_init(&a);
    if (bs_store_read(hub.n->store, &tx, NULL) != BS_OK ||
        bs_records_get(tx, "items", "big", &a, &r, &err) != BS_OK)
        _exit(3);
    snprintf(data, sizeof data, "%s/store/data.mdb", hub.dir);
    if (truncate(data, 0) != 0)
        _exit(4);
    for (uint32_t i = 0; i < r.fields[0].val.len; i++)
        sink ^= r.fields[0].val.s[i];
    _exit(5); /* not reached */
}

Test(verify, a_sigbus_on_the_store_map_is_one_line_and_exit_1)
{
    char big[3000], err[1024], want[512];
    int st;

    memset(big, 'x', sizeof big);
    memcpy(big, "{\"t\":\"", 6);
    memcpy(big + 2900, "\"}", 3);
    put(&hub, "items", "big", big);
    st = in_child(read_past_the_end, err, sizeof err);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x, stderr: %s",
              st, err);
    snprintf(want, sizeof want,
             "branchsync: test: store is corrupt: reading %s/store/data.mdb "
             "crashed (SIGBUS: past the end of the file); restore from a "
             "backup\n",
             hub.dir);
    cr_assert_str_eq(err, want);
}

static void
null_read(void)
{
    volatile int *volatile p = NULL;

    bs_fault_install("branchsync: test");
    _exit(*p);
}

/* A crash of ours goes to the handler before (the default action, or a
 * sanitizer's report): never the corrupt line. */
Test(verify, a_fault_that_is_not_the_stores_is_left_to_the_default)
{
    char err[4096];
    int st = in_child(null_read, err, sizeof err);

    cr_assert_null(strstr(err, "store is corrupt"), "%s", err);
    cr_assert(WIFSIGNALED(st) || err[0] != '\0',
              "the fault ended quietly (status %#x)", st);
}

/* ==== the CLI ==== */

static char cli_path[PATH_MAX];

static void
find_cli(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

    cr_assert_gt(n, 0);
    exe[n] = '\0';
    snprintf(cli_path, sizeof cli_path, "%s/../tools/branchsync", dirname(exe));
    cr_assert_eq(access(cli_path, X_OK), 0, "%s: build branchsync first",
                 cli_path);
}

typedef struct res {
    int code; /* exit status, or 128 + signal */
    char out[1 << 16], err[4096];
    size_t nout; /* the first 64 KiB of stdout are kept */
    int lines;   /* of stdout */
} res;

/* Run branchsync with args (NULL-terminated) and capture both streams. */
static void
cli(res *r, const char *dir, ...)
{
    char *argv[16], opath[300], epath[300];
    posix_spawn_file_actions_t fa;
    va_list ap;
    int k = 0, st;
    pid_t pid;
    FILE *f;
    extern char **environ;

    argv[k++] = cli_path;
    argv[k++] = "-d";
    argv[k++] = (char *)dir;
    va_start(ap, dir);
    while ((argv[k] = va_arg(ap, char *)) != NULL)
        k++;
    va_end(ap);
    snprintf(opath, sizeof opath, "%s/cli.out", root);
    snprintf(epath, sizeof epath, "%s/cli.err", root);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, opath,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, epath,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_eq(posix_spawn(&pid, cli_path, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    r->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    f = fopen(opath, "r");
    r->nout = fread(r->out, 1, sizeof r->out - 1, f);
    r->out[r->nout] = '\0';
    r->lines = 0;
    rewind(f);
    for (int ch; (ch = getc(f)) != EOF;) /* all of it, past what is kept */
        r->lines += ch == '\n';
    fclose(f);
    f = fopen(epath, "r");
    r->err[fread(r->err, 1, sizeof r->err - 1, f)] = '\0';
    fclose(f);
}

/* A failure as the contract wants it for a damaged store: exit 1 and one
 * line "branchsync: CMD: store is corrupt: ...; restore from a backup". */
static void
assert_corrupt_line(const res *r, const char *cmd)
{
    char head[64];
    size_t n = strlen(r->err);

    snprintf(head, sizeof head, "branchsync: %s: store is corrupt: ", cmd);
    cr_assert_eq(r->code, 1, "%s exited %d: %s", cmd, r->code, r->err);
    cr_assert(strncmp(r->err, head, strlen(head)) == 0, "%s: %s", cmd, r->err);
    cr_assert(n > 0 && r->err[n - 1] == '\n' &&
                  strchr(r->err, '\n') == r->err + n - 1,
              "%s: not one line: %s", cmd, r->err);
    cr_assert(strstr(r->err, "restore from a backup") != NULL, "%s: %s", cmd,
              r->err);
}

#define NRECORDS 3000

/* A node in root/name with NRECORDS records loaded through the CLI. */
static void
cli_node(char *dir, size_t n, const char *name)
{
    char jsonl[300];
    res *r = malloc(sizeof *r);
    FILE *f;

    snprintf(dir, n, "%s/%s", root, name);
    snprintf(jsonl, sizeof jsonl, "%s/in.jsonl", root);
    f = fopen(jsonl, "w");
    for (int i = 0; i < NRECORDS; i++)
        fprintf(f,
                "{\"id\":\"c%06d\",\"name\":\"customer %d\",\"city\":"
                "\"Tallinn\",\"n\":%d}\n",
                i, i, i);
    fclose(f);
    cli(r, dir, "init", "--name", name, "--role", "hub", NULL);
    cr_assert_eq(r->code, 0, "%s", r->err);
    cli(r, dir, "load", "items", jsonl, "--quiet", NULL);
    cr_assert_eq(r->code, 0, "%s", r->err);
    free(r);
}

Test(verify, cli_verify_of_a_healthy_node_says_what_it_checked)
{
    char dir[256];
    res *r = malloc(sizeof *r);
    json_t *j;

    find_cli();
    cli_node(dir, sizeof dir, "n1");
    cli(r, dir, "verify", NULL);
    cr_assert_eq(r->code, 0, "%s", r->err);
    cr_assert(strstr(r->out,
                     "store verified: 3000 records (3000 live), 1 "
                     "streams, 1 change sets with 3000 changes") == r->out,
              "%s", r->out);
    cr_assert(strstr(r->out, "6000 versions checked, 6000 of them against the "
                             "change that wrote them: no damage found\n"),
              "%s", r->out);
    cli(r, dir, "verify", "--json", NULL);
    cr_assert_eq(r->code, 0);
    j = json_loads(r->out, 0, NULL);
    cr_assert_not_null(j, "%s", r->out);
    cr_assert(json_is_true(json_object_get(j, "ok")));
    cr_assert_eq(json_integer_value(json_object_get(j, "records")), NRECORDS);
    cr_assert_eq(json_array_size(json_object_get(j, "findings")), 0);
    json_decref(j);
    free(r);
}

Test(verify, cli_a_truncated_data_file_is_refused_by_every_command)
{
    static const char *const cmds[][4] = {
        {"verify"},
        {"doctor"},
        {"digest"},
        {"ls", "items"},
        {"get", "items", "c1"},
        {"status"},
        {"backup", "/nonexistent/b.mdb"},
        {"put", "items", "z", "{\"a\":1}"},
    };
    char dir[256], data[300];
    res *r = malloc(sizeof *r);

    find_cli();
    cli_node(dir, sizeof dir, "n2");
    snprintf(data, sizeof data, "%s/store/data.mdb", dir);
    cr_assert_eq(truncate(data, 64 * 1024), 0);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        cli(r, dir, cmds[i][0], cmds[i][1], cmds[i][2], cmds[i][3], NULL);
        assert_corrupt_line(r, cmds[i][0]);
        cr_assert(strstr(r->err, "data.mdb is truncated (65536 bytes, its "
                                 "pages take ") != NULL,
                  "%s", r->err);
    }
    free(r);
}

/* Flip `bits` bits at places drawn from seed in the data pages (past the
 * two meta pages). */
static void
flip_bits(const char *path, uint64_t seed, int bits)
{
    int fd = open(path, O_RDWR);
    off_t size = lseek(fd, 0, SEEK_END);

    cr_assert_gt(size, 3 * 4096);
    for (int i = 0; i < bits; i++) {
        uint8_t b;
        off_t at;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        at = 2 * 4096 + (off_t)(seed % (uint64_t)(size - 2 * 4096));
        cr_assert_eq(pread(fd, &b, 1, at), 1);
        b ^= (uint8_t)(1u << (seed >> 60 & 7));
        cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    }
    close(fd);
}

/*
 * Bits flipped at random in a real store (the hostile tester's test):
 * no command crashes; every one either answers or fails with the one
 * corrupt line; `ls` never ends early with exit 0.  A flip inside a value
 * that still decodes is read back as data (LMDB and the record encoding
 * checksum nothing): such a wrong answer must be one that `verify` finds,
 * against the change that wrote the value.  `verify` finds whatever
 * another command met, and `backup` refuses whatever `verify` refuses.
 */
Test(verify, cli_flipped_bits_never_crash_and_never_answer_partly,
     .timeout = 240)
{
    char dir[256], work[300], bk[320], data[340], digest0[256], get0[512];
    res *r = malloc(sizeof *r);
    int found_damage = 0, crashes_caught = 0, wrong_but_verified = 0;
    const int seeds = 24;

    find_cli();
    cli_node(dir, sizeof dir, "base");
    cli(r, dir, "digest", NULL);
    snprintf(digest0, sizeof digest0, "%.200s", r->out);
    cli(r, dir, "get", "items", "c001500", NULL);
    snprintf(get0, sizeof get0, "%.400s", r->out);
    snprintf(work, sizeof work, "%s/work", root);
    snprintf(bk, sizeof bk, "%s/bk.mdb", root);
    snprintf(data, sizeof data, "%s/store/data.mdb", work);
    for (int s = 1; s <= seeds; s++) {
        int met = 0, wrong = 0, verify_code;
        bst_rmtree(work);
        bst_copy_tree(dir, work);
        flip_bits(data, 0x9e3779b97f4a7c15ull * (uint64_t)s, 8);

        cli(r, work, "digest", NULL);
        if (r->code == 0)
            wrong |= strcmp(r->out, digest0) != 0;
        else
            assert_corrupt_line(r, "digest");
        met |= r->code != 0;
        crashes_caught += strstr(r->err, "crashed (SIG") != NULL;

        cli(r, work, "ls", "items", NULL);
        if (r->code == 0)
            cr_assert_eq(r->lines, NRECORDS, "seed %d: ls listed %d", s,
                         r->lines);
        else
            assert_corrupt_line(r, "ls");
        met |= r->code != 0;
        crashes_caught += strstr(r->err, "crashed (SIG") != NULL;

        cli(r, work, "get", "items", "c001500", NULL);
        if (r->code == 0)
            wrong |= strcmp(r->out, get0) != 0;
        else
            assert_corrupt_line(r, "get");
        met |= r->code != 0;

        cli(r, work, "status", NULL);
        if (r->code != 0)
            assert_corrupt_line(r, "status");
        met |= r->code != 0;

        cli(r, work, "verify", NULL);
        verify_code = r->code;
        if (r->code != 0)
            assert_corrupt_line(r, "verify");
        cr_assert(verify_code != 0 || !(met || wrong),
                  "seed %d: verify passed a store that another command %s", s,
                  met ? "found damaged" : "read wrongly");
        found_damage += verify_code != 0;
        wrong_but_verified += wrong;

        /* doctor (issue 8 item 16) runs the same walk: a problem, exit 1,
         * or the corrupt line when the store does not even open. */
        cli(r, work, "doctor", NULL);
        if (verify_code != 0) {
            cr_assert_eq(r->code, 1, "seed %d: doctor exited %d", s, r->code);
            if (r->err[0])
                assert_corrupt_line(r, "doctor");
            else
                cr_assert(strstr(r->out, "store_corrupt: store is corrupt: ") !=
                              NULL,
                          "seed %d: %s", s, r->out);
        }

        unlink(bk);
        cli(r, work, "backup", bk, NULL);
        if (r->code != 0)
            assert_corrupt_line(r, "backup");
        cr_assert(verify_code == 0 || r->code != 0,
                  "seed %d: backup copied a store verify refuses", s);
    }
    cr_log_info("flipped bits: verify found %d of %d stores damaged; %d "
                "crashes became the corrupt line; %d wrong answers were "
                "caught only by verify",
                found_damage, seeds, crashes_caught, wrong_but_verified);
    cr_assert_geq(found_damage, seeds * 3 / 4,
                  "the flips mostly missed the data (%d of %d)", found_damage,
                  seeds);
    free(r);
}
