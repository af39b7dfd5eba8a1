/*
 * lock.c - flock(2) locks on the files of a node directory (lock.h).
 */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

bs_err
bs_lock_take(const char *dir, const char *name, bs_lock_mode mode, int *fd,
             bs_errbuf *err)
{
    char path[4200];
    int f, op = mode == BS_LOCK_EXCLUSIVE ? LOCK_EX : LOCK_SH;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if ((f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
        return bs_errf(err, BS_EIO, "%s: %s", path, strerror(errno));
    while (flock(f, op | LOCK_NB) != 0) {
        int e = errno;
        if (e == EINTR)
            continue;
        close(f);
        if (e == EWOULDBLOCK)
            return BS_EBUSY;
        return bs_errf(err, BS_EIO, "cannot lock %s: %s", path, strerror(e));
    }
    *fd = f;
    return BS_OK;
}

void
bs_lock_release(int fd)
{
    if (fd >= 0)
        close(fd); /* the last descriptor of the file: the lock goes */
}

bs_err
bs_lock_write_pid(int fd, bs_errbuf *err)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());

    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        return bs_errf(err, BS_EIO, "cannot write the lock file: %s",
                       strerror(errno));
    return BS_OK;
}

long
bs_lock_holder(const char *dir, const char *name)
{
    char path[4200], buf[32];
    long pid = 0;
    ssize_t n;
    int f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if ((f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return 0;
    /* A shared probe: it fails exactly when someone holds the lock
     * exclusively, and is released at once. */
    if (flock(f, LOCK_SH | LOCK_NB) == 0) {
        close(f);
        return 0;
    }
    if ((n = pread(f, buf, sizeof buf - 1, 0)) > 0) {
        buf[n] = '\0';
        pid = strtol(buf, NULL, 10);
    }
    close(f);
    return pid > 0 ? pid : -1;
}
