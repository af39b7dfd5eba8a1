/*
 * test_fault.c - disk faults injected into the real CLI (docs/reliability.md
 * B3, B4): the shim of faultfs.c (LD_PRELOAD) makes the N-th write, sync
 * or map of the store's data file (or of a backup) fail, and N is swept
 * over every call the command makes, for `load`, `import`, a network
 * apply (`sync` without a daemon of its own, against a real branchsyncd)
 * and `backup`.  Kinds of fault: one input/output error (EIO once), a
 * file system that fills up (every write that would extend the file fails
 * with ENOSPC from the N-th call on), and for `load` a map that cannot
 * grow (mmap fails).  Every case must:
 *
 *  - exit 1 with one line on stderr that names the fault ("input/output
 *    error", "no space left on device", "the map cannot grow"), or exit 0
 *    when the fault never fired;
 *  - leave a store that opens and passes `verify`;
 *  - leave nothing half-applied: the digest is the one before or the one
 *    after (for `load`, the one after as many batches as the message says
 *    were committed); a failed `import` leaves the node unjoined;
 *  - lose nothing acknowledged: records written before stay, and once the
 *    command is run again without the fault both sides converge;
 *  - and succeed when run again without the fault.
 *
 * Two more: an import larger than one group that fails after its join
 * leaves the node unjoined, and a daemon whose data file is cut short
 * under it stops with one line in its log instead of dying of SIGBUS.
 *
 * The default run sweeps up to 8 values of N per command and kind (ctest
 * fault.sweep, about 7 s); with BS_SOAK=1 it sweeps every N and adds
 * ENOSPC-once and sticky-EIO faults.  Under a sanitizer ctest skips it: an
 * LD_PRELOAD shim does not load before the sanitizer's runtime.
 */
#include "../proc/proc_util.h"

#ifndef BS_FAULTFS_PATH
#error "compile with -DBS_FAULTFS_PATH=\"/path/to/libbs_faultfs.so\""
#endif

TestSuite(fault, .init = p_setup, .fini = p_teardown, .timeout = 900);

static int
soak(void)
{
    const char *s = getenv("BS_SOAK");

    return s != NULL && s[0] != '\0' && strcmp(s, "0") != 0;
}

static void
skip_if_sanitized(void)
{
#ifdef BS_FAULT_SKIP
    cr_skip_test("LD_PRELOAD fault shim skipped: it cannot load ahead of the "
                 "%s sanitizer runtime; run the sweep in a build without "
                 "BS_SANITIZE",
                 BS_FAULT_SKIP);
#endif
}

/* ---- kinds of fault ---- */

typedef struct fkind {
    const char *name;
    const char *mode, *err, *ops;
    const char *expect[3]; /* the error line holds one of these */
    int soak_only;
} fkind;

/* Every interposed call but mmap (the map's own kind below). */
#define IO_OPS "write,pwrite,writev,pwritev,fsync,fdatasync,msync,ftruncate"

static const fkind k_eio = {
    "EIO once", "once", "EIO", IO_OPS, {"input/output error"}, 0};
static const fkind k_full = {
    "disk full", "full", "ENOSPC", IO_OPS, {"no space left on device"}, 0};
static const fkind k_nospc = {
    "ENOSPC once", "once", "ENOSPC", IO_OPS, {"no space left on device"}, 1};
static const fkind k_sticky = {"EIO sticky",           "sticky", "EIO", IO_OPS,
                               {"input/output error"}, 1};
/* The map's first mmap is the open's: failing it is "cannot allocate". */
static const fkind k_map = {"map cannot grow",
                            "once",
                            "ENOSPC",
                            "mmap",
                            {"the map cannot grow", "Cannot allocate memory"},
                            0};

/* ---- running the CLI under the shim ---- */

typedef struct shot {
    run r;
    long calls, fired;
} shot;

/* branchsync -d dir args... with the shim failing counted call `at` of
 * files whose path holds `part` (at 0: only count). */
static void
cli_shim(shot *s, const char *dir, const fkind *k, const char *part, long at,
         char *const args[])
{
    char report[PATH_MAX], atbuf[32], *argv[P_MAX_ARGS];
    int n = 0;
    FILE *f;

    snprintf(report, sizeof report, "%s/shim.report", p_base);
    unlink(report);
    snprintf(atbuf, sizeof atbuf, "%ld", at);
    argv[n++] = (char *)p_cli_path();
    argv[n++] = "-d";
    argv[n++] = (char *)dir;
    for (int i = 0; args[i] != NULL; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    setenv("BS_FAULT_MODE", k->mode, 1);
    setenv("BS_FAULT_ERRNO", k->err, 1);
    setenv("BS_FAULT_OPS", k->ops ? k->ops : "", 1);
    setenv("BS_FAULT_PATH", part, 1);
    setenv("BS_FAULT_AT", atbuf, 1);
    setenv("BS_FAULT_REPORT", report, 1);
    setenv("LD_PRELOAD", BS_FAULTFS_PATH, 1);
    run_argv(&s->r, argv, P_CMD_TIMEOUT_MS);
    unsetenv("LD_PRELOAD");
    unsetenv("BS_FAULT_AT");
    s->calls = s->fired = -1;
    if ((f = fopen(report, "r")) != NULL) {
        if (fscanf(f, "calls %ld fired %ld", &s->calls, &s->fired) != 2)
            s->calls = s->fired = -1;
        fclose(f);
    }
    cr_assert_geq(s->calls, 0, "the shim did not report (%s)", s->r.cmd);
}

/* The values of N to try among 1..k. */
static int
sweep(long k, long *v, int cap)
{
    int n = 0;

    if (soak()) {
        for (long i = 1; i <= k && n < cap; i++)
            v[n++] = i;
        return n;
    }
    long cand[] = {1, 2, 3, k / 4, k / 2, 3 * k / 4, k - 1, k};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++) {
        int dup = cand[i] < 1 || cand[i] > k;
        for (int j = 0; j < n && !dup; j++)
            dup = v[j] == cand[i];
        if (!dup && n < cap)
            v[n++] = cand[i];
    }
    return n;
}

static void
copy_dir(const char *from, const char *to)
{
    char *argv[] = {"/bin/cp", "-a", (char *)from, (char *)to, NULL};
    run r = {0};

    nftw(to, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    cr_assert_eq(run_argv(&r, argv, 60000), 0, "cp: %s", r.err);
    run_free(&r);
}

/* A node struct for a directory the fixture did not create. */
static node
at_dir(const char *dir)
{
    node n;

    memset(&n, 0, sizeof n);
    snprintf(n.dir, sizeof n.dir, "%s", dir);
    return n;
}

static void
digest_of(const char *dir, char *out, size_t n)
{
    node d = at_dir(dir);

    node_digest(&d, out, n);
}

static void
assert_verifies(const char *dir, const char *what)
{
    node d = at_dir(dir);
    run r = {0};

    cr_assert_eq(CLI(&r, &d, "verify"), 0, "%s: verify: %s%s", what, r.out,
                 r.err);
    run_free(&r);
}

static int
joined(const char *dir)
{
    node d = at_dir(dir);
    json_t *j = node_status(&d);
    int yes = json_is_string(json_object_get(j, "infobase"));

    json_decref(j);
    return yes;
}

/* The failure as the contract wants it: exit 1, one line naming the
 * command and one of the kind's phrases. */
static void
assert_fault_line(const shot *s, const char *cmd, const fkind *k,
                  const char *what)
{
    char head[64];
    int named = 0;

    snprintf(head, sizeof head, "branchsync: %s: ", cmd);
    cr_assert_eq(s->r.status, 1, "%s: exit %d: %s", what, s->r.status,
                 s->r.err);
    cr_assert(strncmp(s->r.err, head, strlen(head)) == 0 &&
                  strchr(s->r.err, '\n') == s->r.err + s->r.nerr - 1,
              "%s: not one line: %s", what, s->r.err);
    for (int i = 0; i < 3 && k->expect[i]; i++)
        named |= strcasestr(s->r.err, k->expect[i]) != NULL;
    cr_assert(named, "%s: the line does not say \"%s\": %s", what, k->expect[0],
              s->r.err);
}

/* The fault hit only the exchange-log entry written after a successful
 * exchange: the command succeeded and warned about it. */
static int
log_only(const shot *s)
{
    return strcmp(s->r.err, "branchsync: cannot record the exchange in the "
                            "log\n") == 0;
}

/* What a scenario covered, for the log (docs/reliability.md B3, B4). */
typedef struct tally {
    int cases, fired, failed_ok;
    long calls;
} tally;

static void
report(const char *scenario, const fkind *k, const tally *t)
{
    cr_log_info("%s, %s: %ld counted calls, %d values of N, %d fired, %d "
                "failed as required",
                scenario, k->name, t->calls, t->cases, t->fired, t->failed_ok);
}

/* ---- load ---- */

#define LOAD_OLD   200  /* records written (acknowledged) before */
#define LOAD_NEW   2000 /* records the load brings */
#define LOAD_BATCH "500"

static void
write_jsonl(const char *path, int from, int n, int note)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f);
    for (int i = from; i < from + n; i++)
        fprintf(f, "{\"id\":\"r%06d\",\"n\":%d,\"note\":\"%0*d\"}\n", i, i,
                note, i);
    fclose(f);
}

/* A 1 MiB starting map, so that the load grows it. */
static void
small_map(const char *dir)
{
    char path[PATH_MAX + 32], *conf, *p;
    size_t n;
    FILE *f;

    snprintf(path, sizeof path, "%s/branchsync.conf", dir);
    conf = p_read_file(path, &n);
    p = strstr(conf, "map_size_mb = 256");
    cr_assert_not_null(p, "%s", conf);
    memcpy(p, "map_size_mb = 1  ", 17);
    f = fopen(path, "w");
    fwrite(conf, 1, n, f);
    fclose(f);
    free(conf);
}

static void
load_kind(const char *tmpl, const char *input, char states[][128], int nb,
          const fkind *k)
{
    char work[PATH_MAX], d[128], want[64];
    char *args[] = {"load",     "items",   (char *)input, "--batch",
                    LOAD_BATCH, "--quiet", NULL};
    tally t = {0};
    long v[512];
    shot s = {0};

    snprintf(work, sizeof work, "%s/work", p_base);
    copy_dir(tmpl, work);
    cli_shim(&s, work, k, "data.mdb", 0, args);
    cr_assert_eq(s.r.status, 0, "clean load: %s", s.r.err);
    t.calls = s.calls;
    cr_assert_gt(s.calls, 0, "the shim counted nothing: is it loaded?");
    for (int i = 0, n = sweep(s.calls, v, 512); i < n; i++) {
        char what[128];
        int j;
        snprintf(what, sizeof what, "load, %s at call %ld", k->name, v[i]);
        copy_dir(tmpl, work);
        cli_shim(&s, work, k, "data.mdb", v[i], args);
        t.cases++;
        t.fired += s.fired > 0;
        digest_of(work, d, sizeof d);
        for (j = 0; j <= nb && strcmp(d, states[j]) != 0; j++)
            ;
        cr_assert_leq(j, nb, "%s: the digest is no batch boundary", what);
        if (s.fired <= 0) {
            cr_assert_eq(s.r.status, 0, "%s: %s", what, s.r.err);
        } else {
            assert_fault_line(&s, "load", k, what);
            snprintf(want, sizeof want, "; %d of %d records were committed",
                     j * atoi(LOAD_BATCH), LOAD_NEW);
            /* The map made when the store opens: nothing was loaded. */
            if (strstr(s.r.err, "Cannot allocate memory") != NULL)
                cr_assert_eq(j, 0, "%s", what);
            else
                cr_assert(strstr(s.r.err, want) != NULL,
                          "%s: the store holds %d batches but: %s", what, j,
                          s.r.err);
            t.failed_ok++;
        }
        assert_verifies(work, what);
        shot again = {0};
        cli_shim(&again, work, k, "data.mdb", 0, args);
        cr_assert_eq(again.r.status, 0, "%s: again: %s", what, again.r.err);
        digest_of(work, d, sizeof d);
        cr_assert_str_eq(d, states[nb], "%s: again: not all loaded", what);
        run_free(&again.r);
    }
    run_free(&s.r);
    report("load", k, &t);
}

Test(fault, load)
{
    char tmpl[PATH_MAX], old[PATH_MAX], in[PATH_MAX], part[PATH_MAX];
    char states[8][128];
    const int nb = LOAD_NEW / atoi(LOAD_BATCH);
    node *n;
    run r = {0};

    skip_if_sanitized();
    n = node_new("head", 1, 0);
    small_map(n->dir);
    snprintf(old, sizeof old, "%s/old.jsonl", p_base);
    snprintf(in, sizeof in, "%s/in.jsonl", p_base);
    write_jsonl(old, 0, LOAD_OLD, 300);
    write_jsonl(in, 100000, LOAD_NEW, 300);
    CLI_OK(&r, n, "load", "items", old, "--quiet");
    snprintf(tmpl, sizeof tmpl, "%s/tmpl", p_base);
    copy_dir(n->dir, tmpl);
    /* The digest after 0, 1, ... nb batches (the input is in ID order). */
    for (int j = 0; j <= nb; j++) {
        char w[PATH_MAX];
        snprintf(w, sizeof w, "%s/state", p_base);
        copy_dir(tmpl, w);
        snprintf(part, sizeof part, "%s/part.jsonl", p_base);
        write_jsonl(part, 100000, j * atoi(LOAD_BATCH), 300);
        node sn = at_dir(w);
        if (j > 0)
            CLI_OK(&r, &sn, "load", "items", part, "--quiet");
        digest_of(w, states[j], sizeof states[j]);
    }
    load_kind(tmpl, in, states, nb, &k_eio);
    load_kind(tmpl, in, states, nb, &k_full);
    load_kind(tmpl, in, states, nb, &k_map);
    if (soak()) {
        load_kind(tmpl, in, states, nb, &k_nospc);
        load_kind(tmpl, in, states, nb, &k_sticky);
    }
    run_free(&r);
    p_pass();
}

/* ---- import (the branch's first: it joins) ---- */

static void
import_kind(const char *tmpl, const char *file, const char *before,
            const char *after, const fkind *k)
{
    char work[PATH_MAX], d[128];
    char *args[] = {"import", (char *)file, NULL};
    tally t = {0};
    long v[512];
    shot s = {0};

    snprintf(work, sizeof work, "%s/work", p_base);
    copy_dir(tmpl, work);
    cli_shim(&s, work, k, "data.mdb", 0, args);
    cr_assert_eq(s.r.status, 0, "clean import: %s", s.r.err);
    t.calls = s.calls;
    for (int i = 0, n = sweep(s.calls, v, 512); i < n; i++) {
        char what[128];
        snprintf(what, sizeof what, "import, %s at call %ld", k->name, v[i]);
        copy_dir(tmpl, work);
        cli_shim(&s, work, k, "data.mdb", v[i], args);
        t.cases++;
        t.fired += s.fired > 0;
        digest_of(work, d, sizeof d);
        cr_assert(strcmp(d, before) == 0 || strcmp(d, after) == 0,
                  "%s: half applied", what);
        if (s.fired <= 0 || (s.r.status == 0 && log_only(&s))) {
            cr_assert_eq(s.r.status, 0, "%s: %s", what, s.r.err);
            cr_assert_str_eq(d, after, "%s", what);
        } else {
            assert_fault_line(&s, "import", k, what);
            cr_assert(strstr(s.r.err, "change sets were committed before "
                                      "the failure") != NULL,
                      "%s: %s", what, s.r.err);
            /* One group: the join commits with everything or nothing. */
            cr_assert_str_eq(d, before, "%s", what);
            cr_assert_not(joined(work), "%s: left joined: %s", what, s.r.err);
            t.failed_ok++;
        }
        assert_verifies(work, what);
        shot again = {0};
        cli_shim(&again, work, k, "data.mdb", 0, args);
        cr_assert_eq(again.r.status, 0, "%s: again: %s", what, again.r.err);
        digest_of(work, d, sizeof d);
        cr_assert_str_eq(d, after, "%s: again", what);
        cr_assert(joined(work), "%s: again: not joined", what);
        run_free(&again.r);
    }
    run_free(&s.r);
    report("import", k, &t);
}

Test(fault, import)
{
    char tmpl[PATH_MAX], in[PATH_MAX], file[PATH_MAX], before[128], after[128],
        w[PATH_MAX];
    node *hub, *br;
    run r = {0};

    skip_if_sanitized();
    hub = node_new("head", 1, 1);
    br = node_new("tallinn", 0, 1);
    node_pair(hub, br, NULL);
    node_pair(br, hub, NULL);
    snprintf(in, sizeof in, "%s/in.jsonl", p_base);
    write_jsonl(in, 0, 300, 100);
    CLI_OK(&r, hub, "load", "items", in, "--quiet");
    CLI_OK(&r, br, "put", "notes", "n1", "{\"t\":\"written before\"}");
    snprintf(file, sizeof file, "%s/to-tallinn.bsx", p_base);
    CLI_OK(&r, hub, "export", "tallinn", file);
    snprintf(tmpl, sizeof tmpl, "%s/tmpl", p_base);
    copy_dir(br->dir, tmpl);
    digest_of(tmpl, before, sizeof before);
    snprintf(w, sizeof w, "%s/state", p_base);
    copy_dir(tmpl, w);
    node sn = at_dir(w);
    CLI_OK(&r, &sn, "import", file);
    digest_of(w, after, sizeof after);
    cr_assert_str_neq(before, after);
    import_kind(tmpl, file, before, after, &k_eio);
    import_kind(tmpl, file, before, after, &k_full);
    if (soak()) {
        import_kind(tmpl, file, before, after, &k_nospc);
        import_kind(tmpl, file, before, after, &k_sticky);
    }
    run_free(&r);
    p_pass();
}

/* ---- a network apply: `sync` without a daemon of its own ---- */

static void
sync_kind(node *hub, const char *htmpl, const char *btmpl, const char *before,
          const char *after, const fkind *k)
{
    char bdir[PATH_MAX], d[128], dh[128];
    char *args[] = {"sync", "head", NULL};
    tally t = {0};
    long v[512];
    shot s = {0};

    snprintf(bdir, sizeof bdir, "%s/bwork", p_base);
    copy_dir(htmpl, hub->dir);
    copy_dir(btmpl, bdir);
    daemon_start(hub);
    cli_shim(&s, bdir, k, "data.mdb", 0, args);
    cr_assert_eq(s.r.status, 0, "clean sync: %s", s.r.err);
    daemon_stop(hub);
    t.calls = s.calls;
    for (int i = 0, n = sweep(s.calls, v, 512); i < n; i++) {
        char what[128];
        node b = at_dir(bdir);
        snprintf(what, sizeof what, "sync, %s at call %ld", k->name, v[i]);
        copy_dir(htmpl, hub->dir);
        copy_dir(btmpl, bdir);
        daemon_start(hub);
        cli_shim(&s, bdir, k, "data.mdb", v[i], args);
        t.cases++;
        t.fired += s.fired > 0;
        digest_of(bdir, d, sizeof d);
        cr_assert(strcmp(d, before) == 0 || strcmp(d, after) == 0,
                  "%s: half applied", what);
        if (s.fired <= 0 || (s.r.status == 0 && log_only(&s))) {
            cr_assert_eq(s.r.status, 0, "%s: %s", what, s.r.err);
        } else {
            assert_fault_line(&s, "sync", k, what);
            t.failed_ok++;
        }
        assert_verifies(bdir, what);
        /* Run again: whatever either side acknowledged before, both end
         * with everything (the branch's record, written before, too). */
        run r = {0};
        CLI_OK(&r, &b, "sync", "head");
        digest_of(bdir, d, sizeof d);
        node_digest(hub, dh, sizeof dh);
        cr_assert_str_eq(d, after, "%s: again: branch", what);
        cr_assert_str_eq(dh, after, "%s: again: hub", what);
        run_free(&r);
        daemon_stop(hub);
    }
    run_free(&s.r);
    report("sync", k, &t);
}

Test(fault, network_apply)
{
    char in[PATH_MAX], htmpl[PATH_MAX], btmpl[PATH_MAX], w[PATH_MAX],
        before[128], after[128];
    node *hub, *br;
    run r = {0};

    skip_if_sanitized();
    hub = node_new("head", 1, 1);
    br = node_new("tallinn", 0, 1); /* its daemon never runs */
    node_pair(hub, br, "manual");
    node_pair(br, hub, "manual");
    snprintf(in, sizeof in, "%s/in.jsonl", p_base);
    write_jsonl(in, 0, 300, 100);
    CLI_OK(&r, hub, "load", "items", in, "--quiet");
    CLI_OK(&r, br, "put", "notes", "n1", "{\"t\":\"written before\"}");
    snprintf(htmpl, sizeof htmpl, "%s/htmpl", p_base);
    snprintf(btmpl, sizeof btmpl, "%s/btmpl", p_base);
    copy_dir(hub->dir, htmpl);
    copy_dir(br->dir, btmpl);
    digest_of(btmpl, before, sizeof before);
    snprintf(w, sizeof w, "%s/bwork", p_base);
    copy_dir(btmpl, w);
    daemon_start(hub);
    node b = at_dir(w);
    CLI_OK(&r, &b, "sync", "head");
    digest_of(w, after, sizeof after);
    daemon_stop(hub);
    cr_assert_str_neq(before, after);
    sync_kind(hub, htmpl, btmpl, before, after, &k_eio);
    sync_kind(hub, htmpl, btmpl, before, after, &k_full);
    if (soak()) {
        sync_kind(hub, htmpl, btmpl, before, after, &k_nospc);
        sync_kind(hub, htmpl, btmpl, before, after, &k_sticky);
    }
    run_free(&r);
    p_pass();
}

/* ---- backup ---- */

static void
backup_kind(node *n, const char *digest0, const fkind *k)
{
    char bk[PATH_MAX], tmp[PATH_MAX + 8], d[128];
    char *args[] = {"backup", bk, NULL};
    static const char old[] = "an older backup, kept until a new one is whole";
    tally t = {0};
    long v[512];
    shot s = {0};

    snprintf(bk, sizeof bk, "%s/bk.mdb", p_base);
    snprintf(tmp, sizeof tmp, "%s.tmp", bk);
    unlink(bk);
    cli_shim(&s, n->dir, k, "bk.mdb", 0, args);
    cr_assert_eq(s.r.status, 0, "clean backup: %s", s.r.err);
    t.calls = s.calls;
    for (int i = 0, cnt = sweep(s.calls, v, 512); i < cnt; i++) {
        char what[128];
        struct stat st;
        FILE *f = fopen(bk, "w");
        fputs(old, f);
        fclose(f);
        snprintf(what, sizeof what, "backup, %s at call %ld", k->name, v[i]);
        cli_shim(&s, n->dir, k, "bk.mdb", v[i], args);
        t.cases++;
        t.fired += s.fired > 0;
        if (s.fired <= 0) {
            cr_assert_eq(s.r.status, 0, "%s: %s", what, s.r.err);
        } else {
            static const fkind as_errno = {
                "",
                "",
                "",
                NULL,
                {"no space left on device", "input/output error"},
                0};
            char *kept;
            assert_fault_line(&s, "backup", &as_errno, what);
            cr_assert(strstr(s.r.err, tmp) != NULL, "%s: %s", what, s.r.err);
            kept = p_read_file(bk, NULL);
            cr_assert_str_eq(kept, old, "%s: the older backup was lost", what);
            free(kept);
            t.failed_ok++;
        }
        cr_assert_neq(stat(tmp, &st), 0, "%s: %s left behind", what, tmp);
        digest_of(n->dir, d, sizeof d);
        cr_assert_str_eq(d, digest0, "%s: the store changed", what);
        assert_verifies(n->dir, what);
        shot again = {0};
        cli_shim(&again, n->dir, k, "bk.mdb", 0, args);
        cr_assert_eq(again.r.status, 0, "%s: again: %s", what, again.r.err);
        run_free(&again.r);
    }
    run_free(&s.r);
    report("backup", k, &t);
}

Test(fault, backup)
{
    char in[PATH_MAX], digest0[128];
    node *n;
    run r = {0};

    skip_if_sanitized();
    n = node_new("head", 1, 0);
    snprintf(in, sizeof in, "%s/in.jsonl", p_base);
    write_jsonl(in, 0, 3000, 200);
    CLI_OK(&r, n, "load", "items", in, "--quiet");
    node_digest(n, digest0, sizeof digest0);
    backup_kind(n, digest0, &k_eio);
    backup_kind(n, digest0, &k_full);
    if (soak()) {
        backup_kind(n, digest0, &k_nospc);
        backup_kind(n, digest0, &k_sticky);
    }
    run_free(&r);
    p_pass();
}

/* ---- an import that fails after it joined ---- */

/*
 * A first import larger than one group (16 MiB of sets) joins in its
 * first transaction.  When a later group fails, the join is undone: the
 * node is not joined, the group applied stays, the message says both, and
 * importing again completes the join.  The fault: one EIO on a data-page
 * write of the last groups, found by walking N down from the last write.
 */
Test(fault, import_failing_after_its_join_leaves_the_node_unjoined,
     .timeout = 300)
{
    static const fkind k = {"EIO once on a data page", "once", "EIO", "writev",
                            {"input/output error"},    0};
    char in[PATH_MAX], file[PATH_MAX], tmpl[PATH_MAX], work[PATH_MAX],
        before[128], d[128], dh[128];
    char *args[] = {"import", file, NULL};
    int undone = 0, tries = 0;
    long calls;
    node *hub, *br;
    shot s = {0};
    run r = {0};

    skip_if_sanitized();
    hub = node_new("head", 1, 1);
    br = node_new("tallinn", 0, 1);
    node_pair(hub, br, NULL);
    node_pair(br, hub, NULL);
    snprintf(in, sizeof in, "%s/in.jsonl", p_base);
    write_jsonl(in, 0, 26000, 1000); /* 26 MiB of sets: two groups */
    CLI_OK(&r, hub, "load", "items", in, "--quiet");
    snprintf(file, sizeof file, "%s/to-tallinn.bsx", p_base);
    CLI_OK(&r, hub, "export", "tallinn", file);
    snprintf(tmpl, sizeof tmpl, "%s/tmpl", p_base);
    snprintf(work, sizeof work, "%s/work", p_base);
    copy_dir(br->dir, tmpl);
    digest_of(tmpl, before, sizeof before);
    copy_dir(tmpl, work);
    cli_shim(&s, work, &k, "data.mdb", 0, args);
    cr_assert_eq(s.r.status, 0, "clean import: %s", s.r.err);
    node_digest(hub, dh, sizeof dh);
    calls = s.calls;
    for (long n = calls; n >= 1 && !undone && tries < 12; n--, tries++) {
        char what[128];
        snprintf(what, sizeof what, "write %ld of %ld", n, calls);
        copy_dir(tmpl, work);
        cli_shim(&s, work, &k, "data.mdb", n, args);
        digest_of(work, d, sizeof d);
        if (s.r.status == 0) { /* it hit the exchange-log entry */
            cr_assert(log_only(&s), "%s: %s", what, s.r.err);
            continue;
        }
        assert_fault_line(&s, "import", &k, what);
        cr_assert_not(joined(work), "%s: left joined: %s", what, s.r.err);
        assert_verifies(work, what);
        if (strcmp(d, before) != 0) {
            cr_assert(strstr(s.r.err, "; the join was undone: the node is "
                                      "not joined to the infobase; ") != NULL,
                      "%s: %s", what, s.r.err);
            undone = 1;
        }
    }
    cr_assert(undone, "no fault met a group after the join (%d tries)", tries);
    node w = at_dir(work);
    CLI_OK(&r, &w, "import", file);
    cr_assert(joined(work));
    digest_of(work, d, sizeof d);
    cr_assert_str_eq(d, dh);
    assert_verifies(work, "after importing again");
    cr_log_info("import after its join: undone on try %d, walking down "
                "from the last of %ld data-page writes",
                tries, calls);
    run_free(&s.r);
    run_free(&r);
    p_pass();
}

/* ---- the daemon on a store damaged under it ---- */

/*
 * branchsyncd fail-stops when a read of its store crashes: the data file
 * is cut short under the running daemon, a peer's exchange makes it read,
 * and it exits 1 with one line in its log instead of dying of SIGBUS.
 */
Test(fault, daemon_stops_with_one_line_when_its_store_is_cut_short)
{
    char data[PATH_MAX + 32], want[PATH_MAX + 256], out[PATH_MAX];
    node *hub, *br;
    run r = {0};
    int st, ok;

    hub = node_new("head", 1, 1);
    br = node_new("tallinn", 0, 1);
    node_pair(hub, br, NULL);
    node_pair(br, hub, NULL);
    CLI_OK(&r, hub, "put", "items", "a", "{\"v\":1}");
    daemon_start(hub);
    snprintf(data, sizeof data, "%s/store/data.mdb", hub->dir);
    cr_assert_eq(truncate(data, 8192), 0); /* the two meta pages only */
    snprintf(out, sizeof out, "%s/sync.out", p_base);
    CLI_BG(br, out, "sync", "head"); /* it waits for the dead daemon */
    POLL(ok, 20000, (st = p_wait_pid(hub->pid, 0)) != -1);
    cr_assert(ok, "the daemon still runs on a store cut short");
    hub->pid = 0;
    cr_assert_eq(st, 1, "the daemon ended with status %d", st);
    snprintf(want, sizeof want,
             "branchsyncd: error: store is corrupt: reading %s crashed "
             "(SIGBUS: past the end of the file); restore from a backup\n",
             data);
    cr_assert(p_file_has(hub->logpath, 0, want), "no such line in the log");
    run_free(&r);
    p_pass();
}
