/*
 * test_backups.c - scheduled backups (node/backups.h) under a fake clock:
 * dated names, keeping the newest N of the node's own naming only, what
 * status reads (last, age, next) and doctor's findings (a failing run, a
 * backup older than twice the period, none at all since the schedule was
 * set).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/fixture.h"
#include "../../node/backups.h"

#define DAY_MS (86400ull * 1000)

static char root[128], dir[256];
static bst_node head;
/* 2027-01-15 01:00:00 UTC */
static const uint64_t t0 = 1799974800000ull;

static void
setup(void)
{
    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "backups");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, NULL);
    snprintf(dir, sizeof dir, "%s/backups", root);
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(head.n->cfg.backup_schedule, sizeof head.n->cfg.backup_schedule,
             "0 1 * * *");
    snprintf(head.n->cfg.backup_dir, sizeof head.n->cfg.backup_dir, "%s", dir);
    head.n->cfg.backup_keep = 7;
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_rmtree(root);
    bst_leak_check("test_backups");
}

TestSuite(backups, .init = setup, .fini = teardown, .timeout = 60);

static void
touch(const char *name)
{
    char path[512];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    bst_write_file(path, "x", 1);
}

static int
exists(const char *name)
{
    char path[512];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void
run_at(uint64_t now, char *file, size_t n)
{
    bs_errbuf err = {{0}};
    bs_err rv = bs_backups_run(head.n, now, file, n, &err);

    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

Test(backups, dated_names_and_the_newest_n_of_its_own_naming_are_kept)
{
    char file[BS_BACKUP_NAME_MAX], first[BS_BACKUP_NAME_MAX], path[512];
    bs_backup_view v;
    struct stat sb;

    /* Other files, and another node's backups, in the same directory. */
    touch("riga-backup-20200101T010000Z.mdb");
    touch("notes.txt");
    touch("head-backup-old.mdb");
    for (int i = 0; i < 10; i++) {
        run_at(t0 + (uint64_t)i * DAY_MS, file, sizeof file);
        if (i == 0)
            snprintf(first, sizeof first, "%s", file);
    }
    cr_assert_str_eq(first, "head-backup-20270115T010000Z.mdb");
    cr_assert_str_eq(file, "head-backup-20270124T010000Z.mdb");
    cr_assert(!exists(first), "the oldest was kept");
    cr_assert(!exists("head-backup-20270117T010000Z.mdb"));
    cr_assert(exists("head-backup-20270118T010000Z.mdb"));
    cr_assert(exists("riga-backup-20200101T010000Z.mdb"));
    cr_assert(exists("notes.txt"));
    cr_assert(exists("head-backup-old.mdb"));
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);

    bs_backups_view(head.n, t0 + 9 * DAY_MS + 3600000, &v);
    cr_assert(v.configured);
    cr_assert_eq(v.count, 7);
    cr_assert_str_eq(v.last, file);
    cr_assert_eq(v.last_ms, t0 + 9 * DAY_MS);
    cr_assert_eq(v.period_s, 86400);
    cr_assert_gt(v.next_s, (int64_t)((t0 + 9 * DAY_MS) / 1000));
    cr_assert_leq(v.next_s, (int64_t)((t0 + 10 * DAY_MS) / 1000 + 3600));
}

static size_t
kinds(uint64_t now, const char *kind, char *what, size_t n)
{
    bs_problems p = {0};
    size_t k = 0;

    cr_assert_eq(bs_backups_problems(head.n, now, &p), BS_OK);
    for (size_t i = 0; i < p.n; i++)
        if (strcmp(p.v[i].kind, kind) == 0) {
            k++;
            snprintf(what, n, "%s", p.v[i].what);
        }
    bs_problems_fini(&p);
    return k;
}

Test(backups, doctor_says_when_the_newest_is_older_than_twice_the_period)
{
    char file[BS_BACKUP_NAME_MAX], what[BS_PROBLEM_TEXT_MAX + 1];

    run_at(t0, file, sizeof file);
    cr_assert_eq(kinds(t0 + DAY_MS + 60000, "backup_old", what, sizeof what),
                 0);
    cr_assert_eq(kinds(t0 + 2 * DAY_MS - 1000, "backup_old", what, sizeof what),
                 0);
    cr_assert_eq(
        kinds(t0 + 2 * DAY_MS + 60000, "backup_old", what, sizeof what), 1);
    cr_assert(strstr(what, file) != NULL, "%s", what);
}

Test(backups, doctor_names_a_failing_run_and_it_clears_after_a_good_one)
{
    char file[BS_BACKUP_NAME_MAX], what[BS_PROBLEM_TEXT_MAX + 1];
    bs_errbuf err = {{0}};
    bs_backup_view v;
    bs_err rv;

    snprintf(head.n->cfg.backup_dir, sizeof head.n->cfg.backup_dir,
             "%s/missing", root);
    rv = bs_backups_run(head.n, t0, file, sizeof file, &err);
    cr_assert_neq(rv, BS_OK);
    cr_assert_eq(kinds(t0 + 1000, "backup_failed", what, sizeof what), 1);
    cr_assert(strstr(what, "missing") != NULL, "%s", what);
    bs_backups_view(head.n, t0 + 1000, &v);
    cr_assert_eq(v.state.err_ms, t0);
    snprintf(head.n->cfg.backup_dir, sizeof head.n->cfg.backup_dir, "%s", dir);
    run_at(t0 + DAY_MS, file, sizeof file);
    cr_assert_eq(kinds(t0 + DAY_MS + 1000, "backup_failed", what, sizeof what),
                 0);
}

Test(backups, none_since_the_schedule_was_set_two_periods_ago_is_a_problem)
{
    char what[BS_PROBLEM_TEXT_MAX + 1];
    bs_backup_state s = {0};
    bs_errbuf err = {{0}};

    s.set_ms = t0;
    cr_assert_eq(bs_backups_state_save(head.dir, &s, &err), BS_OK);
    cr_assert_eq(kinds(t0 + DAY_MS, "backup_old", what, sizeof what), 0);
    cr_assert_eq(kinds(t0 + 3 * DAY_MS, "backup_old", what, sizeof what), 1);
    cr_assert(strstr(what, "no scheduled backup") != NULL, "%s", what);
    /* Nothing scheduled: nothing to say. */
    head.n->cfg.backup_schedule[0] = '\0';
    cr_assert_eq(kinds(t0 + 3 * DAY_MS, "backup_old", what, sizeof what), 0);
}

Test(backups, every_schedules_have_their_interval_as_period)
{
    char file[BS_BACKUP_NAME_MAX];
    bs_backup_view v;

    snprintf(head.n->cfg.backup_schedule, sizeof head.n->cfg.backup_schedule,
             "every 6h");
    run_at(t0, file, sizeof file);
    bs_backups_view(head.n, t0 + 1000, &v);
    cr_assert_eq(v.period_s, 6 * 3600);
    cr_assert_eq(v.next_s, (int64_t)(t0 / 1000) + 6 * 3600);
}
