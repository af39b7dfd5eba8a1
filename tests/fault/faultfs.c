/*
 * faultfs.c - an LD_PRELOAD shim that makes the N-th file write, sync or
 * map of a chosen file fail, for the fault-injection sweep (test_fault.c).
 *
 * It interposes write, pwrite, pwrite64, writev, pwritev, pwritev64,
 * fsync, fdatasync, msync, ftruncate, ftruncate64 and mmap.  A call counts
 * when its file's path (readlink of /proc/self/fd/FD; for msync, any)
 * contains BS_FAULT_PATH (default "data.mdb") and its operation is in
 * BS_FAULT_OPS (a comma list of the names above without the 64 suffixes,
 * "pwrite" and "pwritev" covering both; default: all).  The environment:
 *
 *   BS_FAULT_AT     the counted call that fails first (1-based; unset or 0:
 *                   none, only count)
 *   BS_FAULT_MODE   once   - only that call fails (a transient error)
 *                   sticky - it and every later counted call fail
 *                   full   - from it on, every counted write that would
 *                            extend its file fails with ENOSPC, and
 *                            writes inside the file and syncs succeed
 *                            (a file system that filled up)
 *   BS_FAULT_ERRNO  ENOSPC (default) or EIO; a failing mmap is always
 *                   ENOMEM (the map cannot grow)
 *   BS_FAULT_REPORT a file to which, at exit, "calls N fired M\n" is
 *                   appended: how many calls counted and how many failed
 *
 * LMDB writes its data pages with writev (lseek first) or pwritev, its
 * meta page with pwrite on a second descriptor opened O_DSYNC, syncs with
 * fdatasync, and grows its map by munmap and mmap (with MDB_WRITEMAP, not
 * used here, it would ftruncate and msync).  A backup is written with
 * write and fsync.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

enum { M_ONCE, M_STICKY, M_FULL };

static long fail_at;
static int mode = M_ONCE, err_no = ENOSPC;
static const char *path_part = "data.mdb", *ops = NULL, *report = NULL;
static long calls, fired;

static void
report_at_exit(void)
{
    char line[64];
    int fd, n;

    if (report == NULL)
        return;
    n = snprintf(line, sizeof line, "calls %ld fired %ld\n",
                 __atomic_load_n(&calls, __ATOMIC_SEQ_CST),
                 __atomic_load_n(&fired, __ATOMIC_SEQ_CST));
    fd = open(report, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (syscall(SYS_write, fd, line, (size_t)n) < 0)
            n = 0;
        close(fd);
    }
}

__attribute__((constructor)) static void
setup(void)
{
    const char *s;

    if ((s = getenv("BS_FAULT_AT")) != NULL)
        fail_at = atol(s);
    if ((s = getenv("BS_FAULT_MODE")) != NULL)
        mode = strcmp(s, "sticky") == 0 ? M_STICKY
               : strcmp(s, "full") == 0 ? M_FULL
                                        : M_ONCE;
    if ((s = getenv("BS_FAULT_ERRNO")) != NULL && strcmp(s, "EIO") == 0)
        err_no = EIO;
    if ((s = getenv("BS_FAULT_PATH")) != NULL && s[0] != '\0')
        path_part = s;
    ops = getenv("BS_FAULT_OPS");
    report = getenv("BS_FAULT_REPORT");
    atexit(report_at_exit);
}

/* 1 when op is selected by BS_FAULT_OPS. */
static int
op_selected(const char *op)
{
    size_t n = strlen(op);

    for (const char *p = ops; p != NULL && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, op, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return ops == NULL || ops[0] == '\0';
}

static int
fd_matches(int fd)
{
    char link[64], target[4096];
    ssize_t n;

    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    if ((n = readlink(link, target, sizeof target - 1)) < 0)
        return 0;
    target[n] = '\0';
    return strstr(target, path_part) != NULL;
}

/*
 * Decide about one call: 0 to let it through, else the errno to fail it
 * with.  `grows` says whether a write extends its file (for mode full);
 * -1 for calls that are not writes.
 */
static int
decide(const char *op, int fd, int grows)
{
    long n;

    if (!op_selected(op) || (fd >= 0 && !fd_matches(fd)))
        return 0;
    n = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
    if (fail_at <= 0 || n < fail_at)
        return 0;
    if (mode == M_ONCE && n != fail_at)
        return 0;
    if (mode == M_FULL && grows != 1)
        return 0;
    __atomic_add_fetch(&fired, 1, __ATOMIC_SEQ_CST);
    return mode == M_FULL ? ENOSPC : err_no;
}

/* Whether writing len bytes at off (-1: the current offset) grows fd. */
static int
grows(int fd, off_t off, size_t len)
{
    struct stat st;

    if (off < 0 && (off = lseek(fd, 0, SEEK_CUR)) < 0)
        off = 0;
    if (fstat(fd, &st) != 0)
        return 1;
    return (fcntl(fd, F_GETFL) & O_APPEND) || off + (off_t)len > st.st_size;
}

static size_t
iov_len(const struct iovec *v, int n)
{
    size_t len = 0;

    for (int i = 0; i < n; i++)
        len += v[i].iov_len;
    return len;
}

#define REAL(ret, name, ...)                                                   \
    static ret (*real_##name)(__VA_ARGS__);                                    \
    if (real_##name == NULL)                                                   \
        real_##name = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name);

#define FAIL_WITH(e)                                                           \
    do {                                                                       \
        errno = (e);                                                           \
        return -1;                                                             \
    } while (0)

ssize_t
write(int fd, const void *buf, size_t n)
{
    int e;
    REAL(ssize_t, write, int, const void *, size_t)
    if ((e = decide("write", fd, mode == M_FULL ? grows(fd, -1, n) : 0)) != 0)
        FAIL_WITH(e);
    return real_write(fd, buf, n);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    int e;
    REAL(ssize_t, pwrite, int, const void *, size_t, off_t)
    if ((e = decide("pwrite", fd, mode == M_FULL ? grows(fd, off, n) : 0)) != 0)
        FAIL_WITH(e);
    return real_pwrite(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    int e;
    REAL(ssize_t, pwrite64, int, const void *, size_t, off_t)
    if ((e = decide("pwrite", fd, mode == M_FULL ? grows(fd, off, n) : 0)) != 0)
        FAIL_WITH(e);
    return real_pwrite64(fd, buf, n, off);
}

ssize_t
writev(int fd, const struct iovec *v, int cnt)
{
    int e;
    REAL(ssize_t, writev, int, const struct iovec *, int)
    if ((e = decide("writev", fd,
                    mode == M_FULL ? grows(fd, -1, iov_len(v, cnt)) : 0)) != 0)
        FAIL_WITH(e);
    return real_writev(fd, v, cnt);
}

ssize_t
pwritev(int fd, const struct iovec *v, int cnt, off_t off)
{
    int e;
    REAL(ssize_t, pwritev, int, const struct iovec *, int, off_t)
    if ((e = decide("pwritev", fd,
                    mode == M_FULL ? grows(fd, off, iov_len(v, cnt)) : 0)) != 0)
        FAIL_WITH(e);
    return real_pwritev(fd, v, cnt, off);
}

ssize_t
pwritev64(int fd, const struct iovec *v, int cnt, off_t off)
{
    int e;
    REAL(ssize_t, pwritev64, int, const struct iovec *, int, off_t)
    if ((e = decide("pwritev", fd,
                    mode == M_FULL ? grows(fd, off, iov_len(v, cnt)) : 0)) != 0)
        FAIL_WITH(e);
    return real_pwritev64(fd, v, cnt, off);
}

int
fsync(int fd)
{
    int e;
    REAL(int, fsync, int)
    if ((e = decide("fsync", fd, -1)) != 0)
        FAIL_WITH(e);
    return real_fsync(fd);
}

int
fdatasync(int fd)
{
    int e;
    REAL(int, fdatasync, int)
    if ((e = decide("fdatasync", fd, -1)) != 0)
        FAIL_WITH(e);
    return real_fdatasync(fd);
}

int
msync(void *addr, size_t len, int flags)
{
    int e;
    REAL(int, msync, void *, size_t, int)
    if ((e = decide("msync", -1, -1)) != 0)
        FAIL_WITH(e);
    return real_msync(addr, len, flags);
}

int
ftruncate(int fd, off_t len)
{
    int e;
    REAL(int, ftruncate, int, off_t)
    if ((e = decide("ftruncate", fd, 1)) != 0)
        FAIL_WITH(e);
    return real_ftruncate(fd, len);
}

int
ftruncate64(int fd, off_t len)
{
    int e;
    REAL(int, ftruncate64, int, off_t)
    if ((e = decide("ftruncate", fd, 1)) != 0)
        FAIL_WITH(e);
    return real_ftruncate64(fd, len);
}

/* Called by the dynamic loader itself before anything is resolved, so no
 * dlsym here: the system call directly.  Only shared mappings of a file
 * count (LMDB's data map); the first one of a process (the map made at
 * open) is counted like the others. */
void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (fd >= 0 && (flags & MAP_SHARED) && decide("mmap", fd, -1) != 0) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

void *
mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap(addr, len, prot, flags, fd, off);
}
