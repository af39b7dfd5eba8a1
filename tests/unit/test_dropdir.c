/*
 * test_dropdir.c - exchange through a shared folder (node/dropdir.h):
 * nodes that share only folders converge, with random writes on every
 * side over several rounds; a file dropped twice, a truncated or tampered
 * file, a file for another node and temporary names are each handled, and
 * the node keeps working.  BS_SEED=n replays seed n.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/fixture.h"
#include "../../node/dropdir.h"
#include "../../replication/pairing.h"

static char root[128];
static bst_node head, tallinn, riga;
static bst_clock clk = {1800000000000ull, 7};

static void
setup(void)
{
    bs_clock c = bst_clock_of(&clk);

    cr_assert_eq(bs_crypto_init(), BS_OK);
    bst_root(root, sizeof root, "dropdir");
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &c);
    bst_node_new(&tallinn, root, "tallinn", BS_ROLE_BRANCH, &c);
    bst_node_new(&riga, root, "riga", BS_ROLE_BRANCH, &c);
}

static void
teardown(void)
{
    bst_node_free(&head);
    bst_node_free(&tallinn);
    bst_node_free(&riga);
    bst_rmtree(root);
    bst_leak_check("test_dropdir");
}

TestSuite(dropdir, .init = setup, .fini = teardown, .timeout = 120);

/* A folder under root, made like an administrator would. */
static void
folder(const char *tag, char *out, size_t n)
{
    snprintf(out, n, "%s/share-%s", root, tag);
    cr_assert_eq(mkdir(out, 0770), 0);
}

static void
pair_dir(bst_node *self, bst_node *other, const char *dir)
{
    char ep[300];
    bs_pair p = {other->name, ep, {0}, "manual", "", 0};
    bs_errbuf err = {{0}};
    bs_err rv;

    snprintf(ep, sizeof ep, "dir:%s", dir);
    memcpy(p.pk, bst_meta(other).pk, BS_PK_LEN);
    rv = bs_pairing_add(&self->core, &p, NULL, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
}

static bs_drop_stats
run(bst_node *t, const char *peer)
{
    bs_drop_stats st;
    bs_errbuf err = {{0}};
    bs_err rv = bs_drop_run(t->n, &t->core, peer, &st, &err);

    cr_assert_eq(rv, BS_OK, "%s run with %s: %s", t->name, peer,
                 bs_errmsg(&err, rv));
    return st;
}

static uint64_t
seed_of(void)
{
    const char *s = getenv("BS_SEED");
    return s ? strtoull(s, NULL, 10) : 1 + (uint64_t)time(NULL) % 100000;
}

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void
random_writes(bst_node *t, uint64_t *s)
{
    unsigned n = (unsigned)(rnd(s) % 4);

    for (unsigned i = 0; i < n; i++) {
        char id[16], json[96];
        bs_errbuf err = {{0}};
        bs_err rv;
        snprintf(id, sizeof id, "c%u", (unsigned)(rnd(s) % 12));
        if (rnd(s) % 7 == 0) {
            rv = bst_del(t, "customers", id, &err);
        } else {
            snprintf(json, sizeof json, "{\"%s\":\"%s-%u\"}",
                     rnd(s) % 2 ? "name" : "city", t->name,
                     (unsigned)(rnd(s) % 1000));
            rv = bst_put(t, "customers", id, json, &err);
        }
        cr_assert(rv == BS_OK || rv == BS_ENOTFOUND, "%s", bs_errmsg(&err, rv));
    }
}

static void
assert_same(bst_node *a, bst_node *b)
{
    uint8_t da[BS_HASH_LEN], db[BS_HASH_LEN];
    uint64_t na, nb;

    bst_digest(a, da, &na);
    bst_digest(b, db, &nb);
    cr_assert_eq(na, nb, "%s has %llu records, %s %llu", a->name,
                 (unsigned long long)na, b->name, (unsigned long long)nb);
    cr_assert_arr_eq(da, db, BS_HASH_LEN, "%s and %s differ", a->name, b->name);
}

/* The names in dir (one level) that contain `part`. */
static int
count_names(const char *dir, const char *part)
{
    char cmd[512];
    FILE *p;
    int n = 0, ch;

    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c -- '%s'", dir, part);
    cr_assert_not_null(p = popen(cmd, "r"));
    if (fscanf(p, "%d", &n) != 1)
        n = 0;
    while ((ch = fgetc(p)) != EOF)
        ;
    pclose(p);
    return n;
}

Test(dropdir, two_offices_converge_through_one_folder)
{
    uint64_t seed = seed_of(), s = seed | 1;
    char f[256];

    cr_log_info("dropdir seed %llu (BS_SEED=%llu replays it)",
                (unsigned long long)seed, (unsigned long long)seed);
    folder("tln", f, sizeof f);
    pair_dir(&head, &tallinn, f);
    pair_dir(&tallinn, &head, f);
    for (int round = 0; round < 8; round++) {
        random_writes(&head, &s);
        if (round > 0) /* the branch writes once joined, or unjoined */
            random_writes(&tallinn, &s);
        if (rnd(&s) % 2) {
            (void)run(&head, "tallinn");
            (void)run(&tallinn, "head");
        } else {
            (void)run(&tallinn, "head");
            (void)run(&head, "tallinn");
        }
    }
    /* Quiet rounds: each side picks up what the other wrote last. */
    for (int i = 0; i < 3; i++) {
        (void)run(&head, "tallinn");
        (void)run(&tallinn, "head");
    }
    assert_same(&head, &tallinn);
    /* Nothing to send, nothing new: the folder stops filling. */
    bs_drop_stats st = run(&head, "tallinn");
    cr_assert_str_empty(st.file_out);
    cr_assert_eq(count_names(f, ".part"), 0);
    cr_assert_eq(count_names(f, ".tmp"), 0);
}

Test(dropdir, three_offices_converge_through_the_hub_folders)
{
    uint64_t base = seed_of(), seed = base + 1, s = seed | 1;
    char f1[256], f2[256];

    cr_log_info("dropdir seed %llu (BS_SEED=%llu replays it)",
                (unsigned long long)seed, (unsigned long long)base);
    folder("tln", f1, sizeof f1);
    folder("riga", f2, sizeof f2);
    pair_dir(&head, &tallinn, f1);
    pair_dir(&tallinn, &head, f1);
    pair_dir(&head, &riga, f2);
    pair_dir(&riga, &head, f2);
    for (int round = 0; round < 10; round++) {
        random_writes(&head, &s);
        random_writes(&tallinn, &s);
        random_writes(&riga, &s);
        switch (rnd(&s) % 3) {
        case 0:
            (void)run(&tallinn, "head");
            break;
        case 1:
            (void)run(&riga, "head");
            break;
        default:
            (void)run(&head, rnd(&s) % 2 ? "tallinn" : "riga");
        }
        if (rnd(&s) % 2)
            (void)run(&head, "tallinn");
        if (rnd(&s) % 2)
            (void)run(&head, "riga");
    }
    /* Quiet rounds.  A branch that had not run yet (seed 40231) needs
     * four: it joins on the hub's file, sends its sets, the hub relays
     * them, the other branch imports them. */
    for (int i = 0; i < 4; i++) {
        (void)run(&tallinn, "head");
        (void)run(&riga, "head");
        (void)run(&head, "tallinn");
        (void)run(&head, "riga");
    }
    assert_same(&head, &tallinn);
    assert_same(&head, &riga);
}

/* The one file the sender wrote for the receiver in dir (its name). */
static void
only_file(const char *dir, const bs_drop_stats *st, char *path, size_t n)
{
    cr_assert(st->file_out[0], "no file written");
    snprintf(path, n, "%s/%s", dir, st->file_out);
    cr_assert_eq(access(path, F_OK), 0, "%s", path);
}

static void
copy_file(const char *from, const char *to, size_t keep)
{
    size_t n;
    uint8_t *b = bst_read_file(from, &n);

    bst_write_file(to, b, keep && keep < n ? keep : n);
    free(b);
}

Test(dropdir, bad_files_are_refused_aside_and_the_node_keeps_working)
{
    char f[256], path[512], other[512], name[BS_DROP_NAME_MAX], part[600];
    bs_errbuf err = {{0}};
    bs_drop_stats st;
    bs_drop_scan sc;
    size_t n;
    uint8_t *b;

    folder("tln", f, sizeof f);
    pair_dir(&head, &tallinn, f);
    pair_dir(&tallinn, &head, f);
    cr_assert_eq(bst_put(&head, "customers", "c1", "{\"name\":\"A\"}", &err),
                 BS_OK);
    only_file(f, (st = run(&head, "tallinn"), &st), path, sizeof path);

    /* A temporary name (a copy in progress) is not touched. */
    snprintf(part, sizeof part, "%s.tmp", path);
    copy_file(path, part, 0);
    st = run(&tallinn, "head");
    cr_assert_eq(st.files_in, 1);
    cr_assert_eq(access(part, F_OK), 0, "the temporary file was touched");
    unlink(part);
    assert_same(&head, &tallinn);

    /* Dropped twice: imported again as a replay, moved to done/. */
    char done[600];
    snprintf(done, sizeof done, "%s/done/%s", f, strrchr(path, '/') + 1);
    copy_file(done, path, 0);
    st = run(&tallinn, "head");
    cr_assert_eq(st.files_in, 1);
    cr_assert_eq(st.replays, 1);
    cr_assert_eq(st.files_refused, 0);
    cr_assert_neq(access(path, F_OK), 0);

    /* A file for another node (riga shares the folder): left alone. */
    bs_drop_name(bst_meta(&head).pk, bst_meta(&riga).pk, 1, name, sizeof name);
    snprintf(other, sizeof other, "%s/%s", f, name);
    copy_file(done, other, 0);
    (void)run(&tallinn, "head");
    cr_assert_eq(access(other, F_OK), 0, "a file for riga was taken");

    /* Truncated: refused with a reason beside it; the next file carries
     * everything again. */
    cr_assert_eq(bst_put(&head, "customers", "c2", "{\"name\":\"B\"}", &err),
                 BS_OK);
    only_file(f, (st = run(&head, "tallinn"), &st), path, sizeof path);
    b = bst_read_file(path, &n);
    bst_write_file(path, b, n / 2);
    free(b);
    st = run(&tallinn, "head");
    cr_assert_eq(st.files_refused, 1);
    cr_assert(strstr(st.refused, "truncated") != NULL, "%s", st.refused);
    cr_assert(strstr(st.problem, "refused") != NULL);
    snprintf(other, sizeof other, "%s/refused/%s.err", f,
             strrchr(path, '/') + 1);
    cr_assert_eq(access(other, F_OK), 0, "no .err beside the refused file");
    bs_drop_scan_folder(f, bst_meta(&tallinn).pk, bst_meta(&head).pk, &sc);
    cr_assert_eq(sc.refused_here, 1);
    cr_assert(strstr(sc.first_refusal, "truncated") != NULL, "%s",
              sc.first_refusal);
    {
        bs_problems pr = {0};
        cr_assert_eq(bs_drop_problems("head", f, bst_meta(&tallinn).pk,
                                      bst_meta(&head).pk, clk.ms, &pr),
                     BS_OK);
        cr_assert_eq(pr.n, 1);
        cr_assert_str_eq(pr.v[0].kind, "folder_refused");
        bs_problems_fini(&pr);
    }

    /* Tampered: one byte changed in the middle. */
    cr_assert_eq(bst_put(&head, "customers", "c3", "{\"name\":\"C\"}", &err),
                 BS_OK);
    only_file(f, (st = run(&head, "tallinn"), &st), path, sizeof path);
    b = bst_read_file(path, &n);
    b[n / 2] ^= 0x40;
    bst_write_file(path, b, n);
    free(b);
    st = run(&tallinn, "head");
    cr_assert_eq(st.files_refused, 1);
    cr_assert_eq(st.changes, 0);

    /* The node keeps working: the next good file brings c2 and c3. */
    cr_assert_eq(bst_put(&head, "customers", "c4", "{\"name\":\"D\"}", &err),
                 BS_OK);
    (void)run(&head, "tallinn");
    st = run(&tallinn, "head");
    cr_assert_eq(st.files_refused, 0);
    assert_same(&head, &tallinn);
    char *got = bst_get(&tallinn, "customers", "c2");
    cr_assert_not_null(got);
    free(got);
}

Test(dropdir, a_file_named_for_this_node_but_addressed_to_another_is_refused)
{
    char f1[256], f2[256], path[512], wrong[512], name[BS_DROP_NAME_MAX];
    bs_errbuf err = {{0}};
    bs_drop_stats st;

    folder("tln", f1, sizeof f1);
    folder("riga", f2, sizeof f2);
    pair_dir(&head, &tallinn, f1);
    pair_dir(&tallinn, &head, f1);
    pair_dir(&head, &riga, f2);
    pair_dir(&riga, &head, f2);
    cr_assert_eq(bst_put(&head, "customers", "c1", "{\"name\":\"A\"}", &err),
                 BS_OK);
    st = run(&head, "riga");
    only_file(f2, &st, path, sizeof path);
    /* riga's file, renamed as if it were for tallinn. */
    bs_drop_name(bst_meta(&head).pk, bst_meta(&tallinn).pk, 1, name,
                 sizeof name);
    snprintf(wrong, sizeof wrong, "%s/%s", f1, name);
    copy_file(path, wrong, 0);
    st = run(&tallinn, "head");
    cr_assert_eq(st.files_refused, 1);
    cr_assert(strstr(st.refused, "addressed to another node") != NULL, "%s",
              st.refused);
}

Test(dropdir, a_missing_folder_is_an_error_naming_it)
{
    char f[256], ep[300];
    bs_pair p = {"tallinn", ep, {0}, "manual", "", 0};
    bs_errbuf err = {{0}};
    bs_drop_stats st;
    bs_err rv;

    snprintf(f, sizeof f, "%s/nowhere", root);
    snprintf(ep, sizeof ep, "dir:%s", f);
    memcpy(p.pk, bst_meta(&tallinn).pk, BS_PK_LEN);
    cr_assert_eq(bs_pairing_add(&head.core, &p, NULL, &err), BS_OK);
    rv = bs_drop_run(head.n, &head.core, "tallinn", &st, &err);
    cr_assert_eq(rv, BS_ENOTFOUND);
    cr_assert(strstr(bs_errmsg(&err, rv), f) != NULL, "%s",
              bs_errmsg(&err, rv));
}
