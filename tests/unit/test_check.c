/*
 * test_check.c - `config check` (node/check.h), one test per failure
 * class: configuration, permissions, schedules, the backup directory,
 * drop folders, an unreachable network peer, a clock beyond the bound;
 * and a node whose set-up is sound passes every check.  (A peer that
 * refuses this node, and one that admits it, need a running daemon:
 * tests/proc/test_daemon.c.)
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fixture.h"
#include "../../node/check.h"
#include "../../replication/pairing.h"

static char root[128], share[256];
static bst_node head, tallinn;
static bs_zmq *z;

static void
setup(void)
{
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "check");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, NULL);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, NULL);
    snprintf(share, sizeof share, "%s/share", root);
    cr_assert_eq(mkdir(share, 0770), 0);
    cr_assert_eq(chmod(head.dir, 0700), 0);
    bst_ok(bs_zmq_new(&z, &err), &err, "zmq");
    head.n->cfg.connect_timeout_s = 1;
}

static void
teardown(void)
{
    bs_zmq_free(z);
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_rmtree(root);
    bst_leak_check("test_check");
}

TestSuite(check, .init = setup, .fini = teardown, .timeout = 60);

static void
pair(const char *endpoint, const char *schedule, const char *window)
{
    bs_pair p = {"tallinn", endpoint, {0}, schedule, window, 0};
    bs_errbuf err = {{0}};

    memcpy(p.pk, bst_meta(&tallinn).pk, BS_PK_LEN);
    bst_ok(bs_pairing_add(&head.core, &p, NULL, &err), &err, "pair");
}

static void
run(bs_checks *k)
{
    bs_errbuf err = {{0}};
    bs_err rv;

    memset(k, 0, sizeof *k);
    rv = bs_check_node(head.n, z, bs_clock_system.now_ms(NULL), k, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

/* The one failed check must be of `area` and name `text`. */
static void
expect_one_failure(const char *area, const char *text)
{
    bs_checks k;
    const bs_check *f = NULL;

    run(&k);
    for (size_t i = 0; i < k.n; i++)
        if (!k.v[i].ok)
            f = &k.v[i];
    cr_assert_eq(k.failed, 1, "%zu failures", k.failed);
    cr_assert_str_eq(f->area, area);
    cr_assert(strstr(f->what, text) != NULL, "\"%s\" not in: %s", text,
              f->what);
    cr_assert_gt(strlen(f->todo), 0, "a failure says what to do");
    bs_checks_fini(&k);
}

Test(check, a_sound_set_up_passes_every_check)
{
    char ep[300];
    bs_checks k;

    snprintf(ep, sizeof ep, "dir:%s", share);
    pair(ep, "30 23 * * *", "");
    run(&k);
    cr_assert_eq(k.failed, 0, "%s: %s", k.failed ? k.v[0].area : "",
                 k.failed ? k.v[0].what : "");
    cr_assert_geq(k.n, 4);
    for (size_t i = 0; i < k.n; i++)
        if (strcmp(k.v[i].area, "schedule") == 0)
            cr_assert_gt(k.v[i].next_s, 0, "the next run is shown");
    bs_checks_fini(&k);
}

Test(check, config_cert_without_key)
{
    snprintf(head.n->cfg.http_cert, sizeof head.n->cfg.http_cert,
             "/etc/ssl/x.pem");
    expect_one_failure("config", "cert is set without key");
}

Test(check, permissions_of_the_key_file_and_the_directory)
{
    char key[512];

    snprintf(key, sizeof key, "%s/keys/node.key", head.dir);
    cr_assert_eq(chmod(key, 0640), 0);
    expect_one_failure("permissions", "should be 600");
    cr_assert_eq(chmod(key, 0600), 0);
    cr_assert_eq(chmod(head.dir, 0755), 0);
    expect_one_failure("permissions", "should be 700");
}

Test(check, a_schedule_that_never_runs_inside_its_window)
{
    pair("tcp://127.0.0.1:1", "manual", "");
    head.n->cfg.connect_timeout_s = 1;
    {
        bs_errbuf err = {{0}};
        bst_ok(bs_pairing_schedule(&head.core, "tallinn", "0 2 * * *",
                                   "10:00-11:00", &err),
               &err, "schedule");
    }
    bs_checks k;
    size_t sched = 0;
    run(&k);
    for (size_t i = 0; i < k.n; i++)
        if (!k.v[i].ok && strcmp(k.v[i].area, "schedule") == 0) {
            sched++;
            cr_assert(strstr(k.v[i].what, "no next run") != NULL, "%s",
                      k.v[i].what);
        }
    cr_assert_eq(sched, 1);
    bs_checks_fini(&k);
}

Test(check, the_backup_directory_must_exist)
{
    snprintf(head.n->cfg.backup_schedule, sizeof head.n->cfg.backup_schedule,
             "0 1 * * *");
    snprintf(head.n->cfg.backup_dir, sizeof head.n->cfg.backup_dir,
             "%s/nobackups", root);
    expect_one_failure("backup", "does not exist");
}

Test(check, drop_folders_missing_everyones_or_broken)
{
    char ep[300], done[300];

    snprintf(ep, sizeof ep, "dir:%s/missing", root);
    pair(ep, "manual", "");
    expect_one_failure("peer", "does not exist");
    {
        bs_errbuf err = {{0}};
        bst_ok(bs_pairing_remove(&head.core, "tallinn", NULL, &err), &err,
               "rm");
    }
    snprintf(ep, sizeof ep, "dir:%s", share);
    pair(ep, "manual", "");
    cr_assert_eq(chmod(share, 0777), 0);
    expect_one_failure("peer", "writable by everyone");
    cr_assert_eq(chmod(share, 0770), 0);
    snprintf(done, sizeof done, "%s/done", share);
    bst_write_file(done, "x", 1);
    expect_one_failure("peer", "not a writable directory");
}

Test(check, a_network_peer_that_does_not_answer)
{
    pair("tcp://127.0.0.1:9", "manual", "");
    expect_one_failure("peer", "did not answer within 1 s");
}

static bs_err
skew_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    bs_peer p;
    bs_err rv;

    (void)arg;
    (void)err;
    if ((rv = bs_peer_get(t, "tallinn", &p)) != BS_OK)
        return rv;
    p.clock_at_ms = bs_clock_system.now_ms(NULL);
    p.clock_lo_ms = 600000;
    p.clock_hi_ms = 601000;
    p.clock_base_ms = 0;
    p.has_boot = 0;
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    return rv;
}

Test(check, a_clock_measured_beyond_the_bound)
{
    bs_errbuf err = {{0}};
    bs_checks k;
    size_t clock = 0;

    pair("tcp://127.0.0.1:9", "manual", "");
    bst_ok(bs_store_write(head.n->store, skew_txn, NULL, &err), &err, "skew");
    run(&k);
    for (size_t i = 0; i < k.n; i++)
        if (!k.v[i].ok && strcmp(k.v[i].area, "clock") == 0) {
            clock++;
            cr_assert(strstr(k.v[i].what, "ahead of ours") != NULL, "%s",
                      k.v[i].what);
        }
    cr_assert_eq(clock, 1);
    bs_checks_fini(&k);
}
