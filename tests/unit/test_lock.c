/*
 * test_lock.c - who may use a node directory at once (node/lock.h,
 * node/node.h): DIR/daemon.lock admits one daemon, DIR/store.lock is
 * shared by every opener and taken exclusively by a restore.  flock locks
 * belong to open files, not processes, so two opens in this one process
 * stand for two processes here; tests/proc/test_lifecycle.c runs the real
 * programs.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../node/lock.h"
#include "../lib/fixture.h"

static char root[128];
static bst_node t;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "lock");
    bst_node_new(&t, root, "tallinn", BS_ROLE_BRANCH, NULL);
}

static void
teardown(void)
{
    bst_node_free(&t);
    bst_rmtree(root);
}

TestSuite(lock, .init = setup, .fini = teardown, .timeout = 60);

Test(lock, shared_holders_coexist_and_exclude_an_exclusive_one)
{
    bs_errbuf err = {{0}};
    int a, b, x;

    cr_assert_eq(bs_lock_take(root, "x.lock", BS_LOCK_SHARED, &a, &err), BS_OK);
    cr_assert_eq(bs_lock_take(root, "x.lock", BS_LOCK_SHARED, &b, &err), BS_OK);
    cr_assert_eq(bs_lock_take(root, "x.lock", BS_LOCK_EXCLUSIVE, &x, &err),
                 BS_EBUSY);
    bs_lock_release(a);
    cr_assert_eq(bs_lock_take(root, "x.lock", BS_LOCK_EXCLUSIVE, &x, &err),
                 BS_EBUSY);
    bs_lock_release(b);
    cr_assert_eq(bs_lock_take(root, "x.lock", BS_LOCK_EXCLUSIVE, &x, &err),
                 BS_OK, "free once the last holder is gone");
    cr_assert_eq(bs_lock_take(root, "x.lock", BS_LOCK_SHARED, &a, &err),
                 BS_EBUSY);
    bs_lock_release(x);
    bs_lock_release(-1); /* a no-op */
}

Test(lock, one_daemon_per_directory_with_its_pid)
{
    char want[512];
    bs_errbuf err = {{0}};
    int fd, fd2;

    cr_assert_eq(bs_lock_holder(t.dir, BS_LOCK_DAEMON), 0, "no daemon yet");
    cr_assert_eq(bs_node_lock_daemon(t.dir, &fd, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(bs_lock_holder(t.dir, BS_LOCK_DAEMON), (long)getpid());
    cr_assert_eq(bs_node_lock_daemon(t.dir, &fd2, &err), BS_EBUSY);
    cr_assert_eq(bs_err_exit_code(BS_EBUSY), 1);
    snprintf(want, sizeof want, "branchsyncd already runs for %s (pid %ld)",
             t.dir, (long)getpid());
    cr_assert_str_eq(err.msg, want);
    bs_lock_release(fd);
    cr_assert_eq(bs_lock_holder(t.dir, BS_LOCK_DAEMON), 0, "released");
    cr_assert_eq(bs_node_lock_daemon(t.dir, &fd, &err), BS_OK, "%s", err.msg);
    bs_lock_release(fd);
}

Test(lock, a_directory_that_is_no_node_gets_no_lock_file)
{
    char dir[256], file[300];
    bs_errbuf err = {{0}};
    struct stat st;
    int fd;

    snprintf(dir, sizeof dir, "%s/empty", root);
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(bs_node_lock_daemon(dir, &fd, &err), BS_ENOTNODE);
    snprintf(file, sizeof file, "%s/%s", dir, BS_LOCK_DAEMON);
    cr_assert_neq(stat(file, &st), 0, "%s was created", file);
}

Test(lock, restore_refuses_while_the_store_is_open_and_says_who_has_it)
{
    char backup[300], want[512];
    bs_errbuf err = {{0}};
    uint64_t bytes;
    bs_node *other;
    int daemon;

    snprintf(backup, sizeof backup, "%s/tallinn.backup", root);
    cr_assert_eq(bs_node_backup(t.n, backup, &bytes, &err), BS_OK);
    /* The fixture has the node open: another user of the store. */
    cr_assert_eq(bs_node_restore(t.dir, backup, &err), BS_EBUSY);
    snprintf(want, sizeof want,
             "another branchsync process is using %s: let it finish (or "
             "stop it), then restore",
             t.dir);
    cr_assert_str_eq(err.msg, want);
    /* A daemon holds its lock and the store. */
    cr_assert_eq(bs_node_lock_daemon(t.dir, &daemon, &err), BS_OK);
    cr_assert_eq(bs_node_restore(t.dir, backup, &err), BS_EBUSY);
    snprintf(want, sizeof want,
             "branchsyncd (pid %ld) is running for %s: stop it first, then "
             "restore",
             (long)getpid(), t.dir);
    cr_assert_str_eq(err.msg, want);
    bs_lock_release(daemon);
    /* Alone with the store, it restores. */
    bst_node_free(&t);
    cr_assert_eq(bs_node_restore(t.dir, backup, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(bs_node_open(t.dir, 1, &other, &err), BS_OK, "%s", err.msg);
    bs_node_close(other);
    bst_node_reopen(&t);
}

Test(lock, a_command_started_during_a_restore_fails_at_once)
{
    char want[512];
    bs_errbuf err = {{0}};
    bs_node *n;
    int restore;

    bst_node_free(&t);
    cr_assert_eq(
        bs_lock_take(t.dir, BS_LOCK_STORE, BS_LOCK_EXCLUSIVE, &restore, &err),
        BS_OK);
    cr_assert_eq(bs_node_open(t.dir, 1, &n, &err), BS_EBUSY);
    snprintf(want, sizeof want,
             "%s is being restored from a backup: try again once "
             "`branchsync restore` has finished",
             t.dir);
    cr_assert_str_eq(err.msg, want);
    bs_lock_release(restore);
    bst_node_reopen(&t);
}
