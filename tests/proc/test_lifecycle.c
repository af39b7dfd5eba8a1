/*
 * test_lifecycle.c - process-level tests of who may use a node directory
 * at once (node/node.h, node/lock.h): real branchsyncd daemons on
 * 127.0.0.1 and the real `branchsync` CLI, as an administrator would run
 * them.  Every wait is a bounded poll.
 *
 * What is checked (issue 8, items 2 and 3):
 *   1. a second branchsyncd on a directory exits 1 at once naming the
 *      running one's pid, and touches nothing: the first keeps its control
 *      socket and keeps pushing writes to its online peers; the same for a
 *      node without a listen address (nothing else would stop it there)
 *   2. a daemon killed with SIGKILL never blocks the next start
 *   3. `restore` is refused (exit 1, nothing written) while the daemon
 *      runs, and while another branchsync command has the store open
 *   4. after a restore done right (daemon stopped), the links recover by
 *      themselves: the node gets back what it lost and exchanges succeed
 *      both ways, with no "acknowledgement ... went backwards"
 *
 * Run one test: test_proc_lifecycle --filter 'lifecycle/restore*' --verbose.
 * BS_PROC_KEEP=1 keeps each test's directory and prints the daemon logs.
 */
#include "proc_util.h"

#include <dirent.h>

#define SUITE_TIMEOUT 240 /* seconds per test: a safety net only */

TestSuite(lifecycle, .init = p_setup, .fini = p_teardown,
          .timeout = SUITE_TIMEOUT);

/* The inode of n's control socket (0: there is none). */
static ino_t
control_inode(const node *n)
{
    char sock[PATH_MAX + 32];
    struct stat st;

    snprintf(sock, sizeof sock, "%s/control.sock", n->dir);
    return stat(sock, &st) == 0 ? st.st_ino : 0;
}

/* The inode of n's data file. */
static ino_t
data_inode(const node *n)
{
    char path[PATH_MAX + 32];
    struct stat st;

    snprintf(path, sizeof path, "%s/store/data.mdb", n->dir);
    cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
    return st.st_ino;
}

/* Run a second branchsyncd on n's directory: it must exit 1 within a few
 * seconds, saying that n's daemon runs. */
static void
second_daemon_refused(const node *n)
{
    char *argv[] = {(char *)p_daemon_path(), "-d", (char *)n->dir, NULL};
    char want[PATH_MAX + 96];
    run r = {0};

    run_argv(&r, argv, 15000);
    cr_assert_eq(r.status, 1,
                 "a second branchsyncd on %s: status %d (-1: still running "
                 "after 15 s)\nstderr: %s",
                 n->name, r.status, r.err);
    cr_assert_lt(r.ms, 5000, "it took %llu ms to give up",
                 (unsigned long long)r.ms);
    snprintf(want, sizeof want, "branchsyncd already runs for %s (pid %ld)",
             n->dir, (long)n->pid);
    cr_assert(strstr(r.err, want) != NULL, "stderr: %s\nwanted: %s", r.err,
              want);
    cr_assert_eq(strchr(r.err, '\n'), r.err + r.nerr - 1, "one line: %s",
                 r.err);
    run_free(&r);
}

/* A put at `from` reaches `to` through the online links within 10 s. */
static void
assert_pushed(const node *from, const node *to, const char *id)
{
    run r = {0};
    int ok;

    CLI_OK(&r, from, "put", "customers", id, "{\"pushed\":\"yes\"}");
    POLL(ok, 10000, node_has(to, "customers", id, "pushed"));
    cr_assert(ok, "a put at %s did not reach %s in 10 s", from->name, to->name);
    run_free(&r);
}

/* ------------------------------------------------------------------ */
/* 1, 2. one daemon per directory                                     */
/* ------------------------------------------------------------------ */

Test(lifecycle, a_second_daemon_exits_at_once_and_touches_nothing)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    ino_t sock;

    node_pair(hub, br, "online");
    node_pair(br, hub, "online");
    daemon_start(hub);
    daemon_start(br);
    sock = control_inode(br);
    cr_assert_neq(sock, 0);

    second_daemon_refused(br);
    cr_assert_eq(control_inode(br), sock,
                 "the first daemon's control socket was removed or replaced");
    assert_pushed(br, hub, "after-second-1");
    assert_pushed(hub, br, "after-second-2");
    p_pass();
}

/*
 * Without a listen address nothing else (no port in use) stops a second
 * daemon: before the lock, two ran at once.  A daemon killed with SIGKILL
 * leaves its lock file behind, but not its lock.
 */
Test(lifecycle, one_daemon_per_directory_without_a_listen_address)
{
    node *hub = node_new("head", 1, 1), *br = node_new("riga", 0, 0);
    run r = {0};
    ino_t sock;

    CLI_OK(&r, hub, "peer", "add", "riga", "tcp://127.0.0.1:1", br->id,
           "--schedule", "manual");
    node_pair(br, hub, "online");
    daemon_start(hub);
    daemon_start(br);
    sock = control_inode(br);

    second_daemon_refused(br);
    cr_assert_eq(control_inode(br), sock);
    assert_pushed(br, hub, "outbound-only");

    daemon_kill9(br);
    daemon_start(br); /* the lock died with the process */
    second_daemon_refused(br);
    assert_pushed(br, hub, "after-restart");
    run_free(&r);
    p_pass();
}

/* ------------------------------------------------------------------ */
/* 3. restore under a running process                                 */
/* ------------------------------------------------------------------ */

Test(lifecycle, restore_is_refused_while_the_daemon_runs)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    char backup[PATH_MAX], want[PATH_MAX + 96];
    run r = {0};
    ino_t data;

    node_pair(hub, br, "online");
    node_pair(br, hub, "online");
    daemon_start(hub);
    daemon_start(br);
    assert_pushed(br, hub, "before-backup");
    snprintf(backup, sizeof backup, "%s/tallinn.backup", p_base);
    CLI_OK(&r, br, "backup", backup); /* online: allowed */
    assert_pushed(br, hub, "after-backup");
    data = data_inode(br);

    cr_assert_eq(CLI(&r, br, "restore", backup), 1,
                 "restore under the daemon: exit %d\nstdout: %s\nstderr: %s",
                 r.status, r.out, r.err);
    snprintf(want, sizeof want,
             "branchsyncd (pid %ld) is running for %s: stop it first",
             (long)br->pid, br->dir);
    cr_assert(strstr(r.err, want) != NULL, "stderr: %s\nwanted: %s", r.err,
              want);
    cr_assert_str_eq(r.out, "", "printed as if restored: %s", r.out);
    cr_assert_eq(data_inode(br), data, "the data file was replaced");
    cr_assert(node_has(br, "customers", "after-backup", "pushed"),
              "a write after the backup was lost");
    assert_pushed(br, hub, "still-working");
    run_free(&r);
    p_pass();
}

/* Does process pid have a file open whose path ends with `suffix`? */
static int
has_open(pid_t pid, const char *suffix)
{
    char dir[64], link[PATH_MAX + 64], target[PATH_MAX];
    struct dirent *e;
    int found = 0;
    DIR *d;

    snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)pid);
    if ((d = opendir(dir)) == NULL)
        return 0;
    while (!found && (e = readdir(d)) != NULL) {
        ssize_t n;
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        if ((n = readlink(link, target, sizeof target - 1)) <= 0)
            continue;
        target[n] = '\0';
        found = (size_t)n >= strlen(suffix) &&
                strcmp(target + n - strlen(suffix), suffix) == 0;
    }
    closedir(d);
    return found;
}

Test(lifecycle, restore_is_refused_while_a_command_has_the_store_open)
{
    node *br = node_new("tallinn", 0, 0);
    char backup[PATH_MAX], fifo[PATH_MAX], out[PATH_MAX], want[PATH_MAX + 96];
    run r = {0};
    ino_t data;
    pid_t load;
    int ok, fd;

    CLI_OK(&r, br, "put", "customers", "c1", "{\"v\":1}");
    snprintf(backup, sizeof backup, "%s/tallinn.backup", p_base);
    CLI_OK(&r, br, "backup", backup);
    /* A `load` that opened the node and now waits for its input. */
    snprintf(fifo, sizeof fifo, "%s/input.fifo", p_base);
    snprintf(out, sizeof out, "%s/load.out", p_base);
    cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));
    load = CLI_BG(br, out, "load", "customers", fifo);
    POLL(ok, 10000, has_open(load, "/store/data.mdb"));
    cr_assert(ok, "`load` did not open the store in 10 s");
    data = data_inode(br);

    cr_assert_eq(CLI(&r, br, "restore", backup), 1,
                 "restore beside `load`: exit %d\nstdout: %s\nstderr: %s",
                 r.status, r.out, r.err);
    snprintf(want, sizeof want, "another branchsync process is using %s",
             br->dir);
    cr_assert(strstr(r.err, want) != NULL, "stderr: %s\nwanted: %s", r.err,
              want);
    cr_assert_eq(data_inode(br), data, "the data file was replaced");

    /* Let `load` end (a FIFO is no input for it), then restore works. */
    fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    cr_assert_geq(fd, 0, "open %s: %s", fifo, strerror(errno));
    close(fd);
    cr_assert_neq(p_wait_pid(load, 15000), -1, "`load` did not end");
    CLI_OK(&r, br, "restore", backup);
    cr_assert(strstr(r.out, "new incarnation") != NULL, "%s", r.out);
    cr_assert(node_has(br, "customers", "c1", "1"));
    run_free(&r);
    p_pass();
}

/* ------------------------------------------------------------------ */
/* 4. links recover by themselves after a restore                     */
/* ------------------------------------------------------------------ */

Test(lifecycle, links_recover_after_a_restore)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    char backup[PATH_MAX], da[256], db[256];
    long hub_from, br_from;
    run r = {0};
    int ok;

    node_pair(hub, br, "online");
    node_pair(br, hub, "online");
    daemon_start(hub);
    daemon_start(br);
    assert_pushed(br, hub, "b-before");
    assert_pushed(hub, br, "h-before");
    snprintf(backup, sizeof backup, "%s/tallinn.backup", p_base);
    CLI_OK(&r, br, "backup", backup);
    /* Written after the backup, and acknowledged to the hub: the restore
     * loses them at the branch, the hub still holds them. */
    assert_pushed(br, hub, "b-lost");
    assert_pushed(hub, br, "h-lost");

    daemon_stop(br);
    CLI_OK(&r, br, "restore", backup);
    cr_assert_not(node_has(br, "customers", "b-lost", "pushed"),
                  "the backup holds a write made after it");
    hub_from = p_file_size(hub->logpath);
    br_from = p_file_size(br->logpath);
    daemon_start(br);

    /* The node gets back what it lost, its own write included ... */
    POLL(ok, 15000,
         node_has(br, "customers", "b-lost", "pushed") &&
             node_has(br, "customers", "h-lost", "pushed"));
    cr_assert(ok, "the restored branch did not get back what it lost");
    /* ... and exchanges succeed both ways, online and on demand. */
    assert_pushed(br, hub, "b-after");
    assert_pushed(hub, br, "h-after");
    CLI_OK(&r, br, "sync", "head");
    CLI_OK(&r, hub, "sync", "tallinn");
    node_digest(hub, da, sizeof da);
    node_digest(br, db, sizeof db);
    cr_assert_str_eq(da, db, "the digests differ after the restore");
    cr_assert_not(p_file_has(hub->logpath, hub_from, "went backwards"),
                  "the hub refused an acknowledgement after the restore");
    cr_assert_not(p_file_has(br->logpath, br_from, "went backwards"),
                  "the branch refused an acknowledgement after the restore");
    run_free(&r);
    p_pass();
}

/* ------------------------------------------------------------------ */
/* 4. a daemon that stops answering                                   */
/* ------------------------------------------------------------------ */

/*
 * A daemon that is stopped (SIGSTOP: its socket still takes connections,
 * nothing answers) makes `sync` exit 1 saying so, after the request's
 * 2 s and the ping's 10 s (node/control.h), not hang; once it runs again
 * the same command works.
 */
Test(lifecycle, a_hung_daemon_is_reported_and_a_busy_one_is_waited_for)
{
    node *hub = node_new("head", 1, 1), *br = node_new("tallinn", 0, 1);
    run r = {0};
    uint64_t t0, took;
    int st;

    node_pair(hub, br, "manual");
    node_pair(br, hub, "manual");
    daemon_start(hub);
    daemon_start(br);
    CLI_OK(&r, br, "sync", "head");
    cr_assert_eq(kill(br->pid, SIGSTOP), 0);
    t0 = p_now_ms();
    st = CLI(&r, br, "sync", "head");
    took = p_now_ms() - t0;
    kill(br->pid, SIGCONT);
    cr_assert_eq(st, 1, "sync to a stopped daemon exited %d: %s", st, r.err);
    cr_assert(strstr(r.err, "stopped answering") != NULL, "%s", r.err);
    cr_assert_geq(took, 10000, "reported after %llu ms: a busy loop gets 10 s",
                  (unsigned long long)took);
    CLI_OK(&r, br, "sync", "head");
    run_free(&r);
    p_pass();
}
