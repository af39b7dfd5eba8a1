/*
 * keys.c - secret key file handling.
 */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC     "BSK1 "
#define MAGIC_LEN 5
#define FILE_LEN  (MAGIC_LEN + 2 * BS_SK_LEN + 1)

static void
key_paths(const char *dir, char *kdir, char *kfile, size_t n)
{
    snprintf(kdir, n, "%s/keys", dir);
    snprintf(kfile, n, "%s/keys/node.key", dir);
}

bs_err
bs_keys_create(const char *dir, uint8_t pk[BS_PK_LEN], bs_errbuf *err)
{
    char kdir[4096], kfile[4096];
    uint8_t *sk;
    char *text;
    int fd;
    bs_err rv = BS_OK;

    key_paths(dir, kdir, kfile, sizeof kdir);
    if (mkdir(kdir, 0700) != 0 && errno != EEXIST)
        return bs_errf(err, BS_EKEY, "%s: %s", kdir, strerror(errno));
    if (chmod(kdir, 0700) != 0)
        return bs_errf(err, BS_EKEY, "%s: %s", kdir, strerror(errno));
    sk = sodium_malloc(BS_SK_LEN);
    text = sodium_malloc(FILE_LEN + 1);
    if (sk == NULL || text == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    if ((rv = bs_crypto_keypair(pk, sk)) != BS_OK)
        goto out;
    memcpy(text, MAGIC, MAGIC_LEN);
    sodium_bin2hex(text + MAGIC_LEN, 2 * BS_SK_LEN + 1, sk, BS_SK_LEN);
    text[FILE_LEN - 1] = '\n';
    fd =
        open(kfile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rv = bs_errf(err, BS_EKEY, "%s: %s", kfile, strerror(errno));
        goto out;
    }
    if (write(fd, text, FILE_LEN) != FILE_LEN || fsync(fd) != 0) {
        rv = bs_errf(err, BS_EKEY, "%s: %s", kfile, strerror(errno));
        unlink(kfile);
    }
    close(fd);
out:
    sodium_free(sk);
    sodium_free(text);
    return rv;
}

static bs_err
check_mode(const char *path, struct stat *st, mode_t want, bs_errbuf *err)
{
    if ((st->st_mode & 077) != 0)
        return bs_errf(err, BS_EKEY,
                       "%s has mode %04o: others may read the secret key; "
                       "run chmod %o %s",
                       path, (unsigned)(st->st_mode & 07777), (unsigned)want,
                       path);
    if (st->st_uid != geteuid())
        return bs_errf(err, BS_EKEY, "%s is not owned by this user", path);
    return BS_OK;
}

bs_err
bs_keys_load(const char *dir, uint8_t **out, bs_errbuf *err)
{
    char kdir[4096], kfile[4096];
    struct stat st;
    uint8_t *sk = NULL;
    char *text = NULL;
    size_t got;
    ssize_t n;
    int fd;
    bs_err rv;

    key_paths(dir, kdir, kfile, sizeof kdir);
    if (stat(kdir, &st) != 0)
        return bs_errf(err, BS_EKEY, "%s: %s", kdir, strerror(errno));
    if ((rv = check_mode(kdir, &st, 0700, err)) != BS_OK)
        return rv;
    if ((fd = open(kfile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return bs_errf(err, BS_EKEY, "%s: %s", kfile, strerror(errno));
    if (fstat(fd, &st) != 0 ||
        (rv = check_mode(kfile, &st, 0600, err)) != BS_OK) {
        close(fd);
        return rv != BS_OK ? rv : BS_EKEY;
    }
    sk = sodium_malloc(BS_SK_LEN);
    text = sodium_malloc(FILE_LEN + 1);
    if (sk == NULL || text == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    n = read(fd, text, FILE_LEN + 1);
    if (n != FILE_LEN || memcmp(text, MAGIC, MAGIC_LEN) != 0 ||
        sodium_hex2bin(sk, BS_SK_LEN, text + MAGIC_LEN, 2 * BS_SK_LEN, NULL,
                       &got, NULL) != 0 ||
        got != BS_SK_LEN) {
        rv = bs_errf(err, BS_EKEY, "%s: not a branchsync key file", kfile);
        goto out;
    }
    *out = sk;
    sk = NULL;
    rv = BS_OK;
out:
    close(fd);
    sodium_free(sk);
    sodium_free(text);
    return rv;
}

void
bs_keys_free(uint8_t *sk)
{
    sodium_free(sk);
}
