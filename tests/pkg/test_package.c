/*
 * test_package.c - the Debian package (deploy/package.cmake; issue 12
 * item 8): `cpack` makes branchsync_VERSION_amd64.deb with both binaries,
 * the systemd unit naming /usr/bin/branchsyncd, /etc/default/branchsync as
 * a conffile, the docs and examples, and dependencies on the Debian
 * libraries; installed with apt into a clean Debian 12 root (debootstrap
 * --variant=minbase, cached in /var/cache/branchsync-tests/), its postinst
 * makes the `branchsync` user and /var/lib/branchsync, and a node made and
 * started from it there as that user answers `put` and `get` and stops
 * cleanly on SIGTERM.
 *
 * Needs root (chroot, a private mount namespace for /proc) and the
 * network to Debian's mirror.  Not root: skipped, saying so (CI runs as
 * root).  Registered for builds without sanitizers only.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE    "/var/cache/branchsync-tests"
#define TEMPLATE CACHE "/bookworm-minbase"

static char work[64];

/* Run cmd with sh; its stdout and stderr (malloc'd) and exit status. */
static int
run(const char *cmd, char **out)
{
    char path[128];
    char *full;
    FILE *f;
    long n;
    int st;

    snprintf(path, sizeof path, "%s/out.txt", work);
    cr_assert(asprintf(&full, "(%s) >%s 2>&1", cmd, path) > 0);
    st = system(full);
    free(full);
    f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    *out = calloc(1, (size_t)n + 1);
    cr_assert_not_null(*out);
    cr_assert_eq(fread(*out, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void
run_ok(const char *cmd, char **out, const char *what)
{
    int rc = run(cmd, out);

    cr_assert_eq(rc, 0, "%s: exit %d:\n%s", what, rc, *out);
}

static void
setup(void)
{
    snprintf(work, sizeof work, "/tmp/bs_test_pkg_XXXXXX");
    cr_assert_not_null(mkdtemp(work));
}

static void
teardown(void)
{
    char *cmd;

    if (work[0] && asprintf(&cmd, "rm -rf %s", work) > 0) {
        if (system(cmd) != 0)
            fprintf(stderr, "test_package: could not remove %s\n", work);
        free(cmd);
    }
}

TestSuite(package, .init = setup, .fini = teardown, .timeout = 1200);

/* The .deb cpack made in work/deb (malloc'd path). */
static char *
make_package(void)
{
    char *cmd, *out, *deb;

    cr_assert(asprintf(&cmd,
                       "cpack -G DEB -B %s/deb --config %s/CPackConfig.cmake",
                       work, BS_BUILD_DIR) > 0);
    run_ok(cmd, &out, "cpack");
    free(cmd);
    free(out);
    cr_assert(
        asprintf(&deb, "%s/deb/branchsync_%s_amd64.deb", work, BS_VERSION) > 0);
    cr_assert_eq(access(deb, R_OK), 0, "cpack made no %s", deb);
    return deb;
}

Test(package, holds_both_binaries_the_unit_the_docs_and_its_dependencies)
{
    static const char *const deps[] = {
        "adduser",     "libzmq5", "liblmdb0",        "libprotobuf-c1",
        "libsodium23", "libuv1",  "libjansson4",     "libinih1",
        "libsystemd0", "libcsv3", "libmicrohttpd12",
    };
    static const char *const files[] = {
        "./usr/bin/branchsync",
        "./usr/bin/branchsyncd",
        "./usr/lib/systemd/system/branchsyncd@.service",
        "./etc/default/branchsync",
        "./usr/share/doc/branchsync/README.md",
        "./usr/share/doc/branchsync/protocol.md",
        "./usr/share/doc/branchsync/examples/head.conf",
    };
    char *deb = make_package(), *cmd, *out;
    const char *dep;

    cr_assert(asprintf(&cmd, "dpkg-deb -f %s Depends", deb) > 0);
    run_ok(cmd, &out, "dpkg-deb -f");
    free(cmd);
    for (size_t i = 0; i < sizeof deps / sizeof deps[0]; i++) {
        dep = strstr(out, deps[i]);
        cr_assert_not_null(dep, "Depends lacks %s: %s", deps[i], out);
    }
    free(out);
    cr_assert(asprintf(&cmd, "dpkg-deb -c %s", deb) > 0);
    run_ok(cmd, &out, "dpkg-deb -c");
    free(cmd);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        cr_assert_not_null(strstr(out, files[i]), "the package lacks %s",
                           files[i]);
    free(out);
    cr_assert(asprintf(&cmd,
                       "dpkg-deb --ctrl-tarfile %s | tar -xO ./conffiles; "
                       "dpkg-deb --fsys-tarfile %s | tar -xO "
                       "./usr/lib/systemd/system/branchsyncd@.service",
                       deb, deb) > 0);
    run_ok(cmd, &out, "conffiles and unit");
    free(cmd);
    cr_assert_not_null(strstr(out, "/etc/default/branchsync\n"), "%s", out);
    cr_assert_not_null(strstr(out, "\nExecStart=/usr/bin/branchsyncd -d %I\n"),
                       "the unit must start the packaged daemon:\n%s", out);
    free(out);
    free(deb);
}

/* A clean Debian 12 root: the cached template, made once. */
static void
clean_root(const char *root)
{
    struct stat st;
    char *cmd, *out;

    if (stat(TEMPLATE "/etc/debian_version", &st) != 0) {
        run_ok("command -v debootstrap", &out,
               "debootstrap is missing: apt-get install debootstrap (the "
               "README's test command installs it)");
        free(out);
        cr_assert(asprintf(&cmd,
                           "mkdir -p " CACHE " && rm -rf " TEMPLATE ".new && "
                           "debootstrap --variant=minbase bookworm " TEMPLATE
                           ".new http://deb.debian.org/debian && "
                           "rm -rf " TEMPLATE " && mv " TEMPLATE
                           ".new " TEMPLATE) > 0);
        run_ok(cmd, &out, "debootstrap");
        free(cmd);
        free(out);
    }
    cr_assert(asprintf(&cmd,
                       "cp -a " TEMPLATE " %s && cp /etc/resolv.conf %s/etc/",
                       root, root) > 0);
    run_ok(cmd, &out, "copy the clean root");
    free(cmd);
    free(out);
}

Test(package, installs_into_a_clean_debian_12_root_and_runs_a_node)
{
    char root[128], *deb, *cmd, *out;

    if (geteuid() != 0)
        cr_skip_test("needs root for chroot (CI runs as root)");
    deb = make_package();
    snprintf(root, sizeof root, "%s/root", work);
    clean_root(root);
    cr_assert(asprintf(&cmd,
                       "cp %s %s/tmp/branchsync.deb && "
                       "cp %s %s/tmp/in_root.sh && "
                       "unshare -m sh -c 'mount -t proc proc %s/proc && "
                       "chroot %s sh /tmp/in_root.sh /tmp/branchsync.deb %d'",
                       deb, root, BS_IN_ROOT, root, root, root,
                       20000 + (int)(getpid() % 20000)) > 0);
    run_ok(cmd, &out, "install and run in the clean root");
    free(cmd);
    cr_assert_not_null(strstr(out, "INSTALLED=install ok installed"), "%s",
                       out);
    cr_assert_not_null(strstr(out, "USER=branchsync:branchsync"), "%s", out);
    cr_assert_not_null(strstr(out, "DATADIR=750 branchsync"), "%s", out);
    cr_assert_not_null(strstr(out, "UNIT_EXEC=/usr/bin/branchsyncd -d %I"),
                       "%s", out);
    cr_assert_not_null(strstr(out, "BINS=/usr/bin/branchsync /usr/bin/"
                                   "branchsyncd"),
                       "%s", out);
    cr_assert_not_null(strstr(out, "KEYMODE=600 branchsync"), "%s", out);
    cr_assert_not_null(strstr(out, "DAEMON=up"), "%s", out);
    cr_assert_not_null(strstr(out, "GET={\"id\":\"c1\",\"name\":\"Acme\"}"),
                       "%s", out);
    cr_assert_not_null(strstr(out, "DAEMON_EXIT=0"), "%s", out);
    free(out);
    free(deb);
}
