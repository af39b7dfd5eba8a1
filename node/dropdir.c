/*
 * dropdir.c - exchange through a shared folder (dropdir.h): one run
 * imports the peer's files and writes ours; the scan and the doctor's
 * findings read the folder without changing it.
 */
#include "dropdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../replication/bundle.h"
#include "../replication/peers.h"
#include "client.h"

#define ID8      8
#define FILES(n) ((n) == 1 ? "file" : "files")

/* ---- names ---- */

static void
id8(const uint8_t pk[BS_PK_LEN], char out[ID8 + 1])
{
    char id[BS_NODE_ID_LEN + 1];

    bs_node_id_format(pk, id);
    memcpy(out, id, ID8);
    out[ID8] = '\0';
}

void
bs_drop_name(const uint8_t from[BS_PK_LEN], const uint8_t to[BS_PK_LEN],
             uint64_t no, char *buf, size_t n)
{
    char f[ID8 + 1], t[ID8 + 1];

    id8(from, f);
    id8(to, t);
    snprintf(buf, n, "from-%s-to-%s-%012llu%s", f, t, (unsigned long long)no,
             BS_DROP_SUFFIX);
}

/* 1 when name is a file from `from` to `to` (ID8 groups); *no its number. */
static int
name_match(const char *name, const char *from, const char *to, uint64_t *no)
{
    size_t len = strlen(name), sl = strlen(BS_DROP_SUFFIX);
    const char *p = name;
    char *end;

    if (len <= sl || strcmp(name + len - sl, BS_DROP_SUFFIX) != 0)
        return 0;
    if (strncmp(p, "from-", 5) != 0 || strncmp(p + 5, from, ID8) != 0)
        return 0;
    p += 5 + ID8;
    if (strncmp(p, "-to-", 4) != 0 || strncmp(p + 4, to, ID8) != 0)
        return 0;
    p += 4 + ID8;
    if (*p != '-' || p[1] < '0' || p[1] > '9')
        return 0;
    errno = 0;
    *no = strtoull(p + 1, &end, 10);
    return errno == 0 && strcmp(end, BS_DROP_SUFFIX) == 0;
}

typedef struct entry {
    uint64_t no;
    char name[BS_DROP_NAME_MAX];
} entry;

static int
entry_cmp(const void *a, const void *b)
{
    const entry *x = a, *y = b;

    return x->no < y->no ? -1 : x->no > y->no;
}

/* The files from `from` to `to` in dir, by message number (*v malloc'd). */
static bs_err
list_files(const char *dir, const char *from, const char *to, entry **v,
           size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t cap = 0;

    *v = NULL;
    *n = 0;
    if (d == NULL)
        return errno == ENOENT ? BS_ENOTFOUND : BS_EIO;
    while ((de = readdir(d)) != NULL) {
        uint64_t no;
        if (strlen(de->d_name) >= BS_DROP_NAME_MAX ||
            !name_match(de->d_name, from, to, &no))
            continue;
        if (*n == cap) {
            entry *nv = realloc(*v, (cap = cap ? cap * 2 : 16) * sizeof *nv);
            if (nv == NULL) {
                closedir(d);
                free(*v);
                *v = NULL;
                return BS_ENOMEM;
            }
            *v = nv;
        }
        (*v)[*n].no = no;
        snprintf((*v)[*n].name, BS_DROP_NAME_MAX, "%.63s", de->d_name);
        (*n)++;
    }
    closedir(d);
    if (*n > 0)
        qsort(*v, *n, sizeof **v, entry_cmp);
    return BS_OK;
}

/* ---- one run ---- */

typedef struct run {
    bs_node *n;
    const bs_core *c;
    const char *peer, *dir;
    char me8[ID8 + 1], peer8[ID8 + 1];
    bs_drop_stats *st;
} run;

static void
sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static bs_err
prepare(const run *r, bs_errbuf *err)
{
    static const char *const sub[] = {"done", "refused"};
    char path[4200];
    struct stat sb;

    if (stat(r->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return bs_errf(err, BS_ENOTFOUND,
                       "drop folder %s of peer %s does not exist: create it "
                       "(or mount the share) where both nodes can write",
                       r->dir, r->peer);
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", r->dir, sub[i]);
        if (mkdir(path, 0770) != 0 && errno != EEXIST)
            return bs_errf(err, BS_EIO,
                           "cannot create %s: %s (this node must be able to "
                           "write in the drop folder)",
                           path, strerror(errno));
    }
    return BS_OK;
}

/* Move the refused file to refused/ with NAME.err saying why. */
static bs_err
refuse(run *r, const char *name, const char *why, bs_errbuf *err)
{
    char from[4200], to[4200], errpath[4300];
    FILE *f;

    snprintf(from, sizeof from, "%s/%s", r->dir, name);
    snprintf(to, sizeof to, "%s/refused/%s", r->dir, name);
    snprintf(errpath, sizeof errpath, "%s.err", to);
    if ((f = fopen(errpath, "w")) == NULL || fprintf(f, "%s\n", why) < 0 ||
        fclose(f) != 0 || rename(from, to) != 0)
        return bs_errf(err, BS_EIO, "cannot move %s to %s/refused: %s", from,
                       r->dir, strerror(errno));
    r->st->files_refused++;
    if (!r->st->refused[0])
        snprintf(r->st->refused, sizeof r->st->refused, "%s: %s", name, why);
    return BS_OK;
}

static bs_err
import_one(run *r, const char *name, bs_errbuf *err)
{
    char path[4200], done[4200];
    bs_errbuf e = {{0}};
    bs_xstats xs;
    bs_err rv;

    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    rv = bs_bundle_import(r->c->store, r->c->sk, path, r->c->clock,
                          r->c->max_skew_ms, r->c->retention_ms, &xs, &e);
    r->st->sets_received += xs.sets;
    r->st->changes += xs.changes;
    r->st->conflicts += xs.conflicts;
    r->st->held += xs.held;
    if (rv != BS_OK && bs_err_local(rv))
        return bs_errf(err, rv, "%s: %s", path, bs_errmsg(&e, rv));
    if (rv != BS_OK)
        return refuse(r, name, bs_errmsg(&e, rv), err);
    r->st->files_in++;
    r->st->replays += xs.replay != 0;
    snprintf(done, sizeof done, "%s/done/%s", r->dir, name);
    if (rename(path, done) != 0)
        return bs_errf(err, BS_EIO, "cannot move %s to %s/done: %s", path,
                       r->dir, strerror(errno));
    return BS_OK;
}

static bs_err
import_all(run *r, bs_errbuf *err)
{
    entry *v;
    size_t nv;
    bs_err rv = list_files(r->dir, r->peer8, r->me8, &v, &nv);

    if (rv != BS_OK)
        return bs_errf(err, rv, "cannot read drop folder %s: %s", r->dir,
                       strerror(errno));
    for (size_t i = 0; i < nv && rv == BS_OK; i++)
        rv = import_one(r, v[i].name, err);
    free(v);
    if (rv == BS_OK)
        sync_dir(r->dir);
    return rv;
}

/* The message number our next file to the peer gets. */
static bs_err
next_number(run *r, uint8_t me[BS_PK_LEN], uint8_t pk[BS_PK_LEN], uint64_t *no,
            bs_errbuf *err)
{
    bs_meta m;
    bs_peer p;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_store_read(r->c->store, &t, err)) != BS_OK)
        return rv;
    if ((rv = bs_meta_load(t, &m, err)) == BS_OK &&
        (rv = bs_peer_get(t, r->peer, &p)) == BS_OK) {
        memcpy(me, m.pk, BS_PK_LEN);
        memcpy(pk, p.pk, BS_PK_LEN);
        *no = p.sent_no + 1;
        bs_peer_fini(&p);
    }
    bs_txn_abort(t);
    return rv;
}

/* Write what the peer lacks: under a name we ignore, then renamed. */
static bs_err
export_new(run *r, bs_errbuf *err)
{
    char name[BS_DROP_NAME_MAX], tmp[4200], path[4200];
    uint8_t me[BS_PK_LEN], pk[BS_PK_LEN];
    bs_xstats xs;
    uint64_t no;
    bs_err rv;

    if ((rv = next_number(r, me, pk, &no, err)) != BS_OK)
        return rv;
    bs_drop_name(me, pk, no, name, sizeof name);
    snprintf(tmp, sizeof tmp, "%s/.%s.part", r->dir, name);
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    rv = bs_bundle_export(r->c->store, r->c->sk, r->peer, tmp,
                          bs_core_now(r->c), r->c->retention_ms, &xs, err);
    if (rv != BS_OK)
        return rv;
    /* Nothing to send and nothing new to acknowledge: no file. */
    if (xs.sets == 0 && r->st->sets_received == 0) {
        unlink(tmp);
        return BS_OK;
    }
    if (rename(tmp, path) != 0) {
        rv = bs_errf(err, BS_EIO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return rv;
    }
    sync_dir(r->dir);
    r->st->sets_sent = xs.sets;
    r->st->bytes_out = xs.bytes;
    snprintf(r->st->file_out, sizeof r->st->file_out, "%s", name);
    return BS_OK;
}

static bs_err
peer_folder(run *r, char *dir, size_t n, bs_errbuf *err)
{
    const char *f;
    bs_meta m;
    bs_peer p;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_store_read(r->c->store, &t, err)) != BS_OK)
        return rv;
    if ((rv = bs_meta_load(t, &m, err)) == BS_OK) {
        rv = bs_peer_get(t, r->peer, &p);
        if (rv == BS_ENOTFOUND)
            rv = bs_errf(err, rv, "unknown peer \"%s\" (see peer ls)", r->peer);
    }
    bs_txn_abort(t);
    if (rv != BS_OK)
        return rv;
    if ((f = bs_endpoint_folder(p.endpoint)) == NULL)
        rv = bs_errf(err, BS_EINVAL,
                     "peer %s is reached at %s, not through a folder", r->peer,
                     p.endpoint);
    else
        snprintf(dir, n, "%s", f);
    id8(m.pk, r->me8);
    id8(p.pk, r->peer8);
    bs_peer_fini(&p);
    return rv;
}

bs_err
bs_drop_run(bs_node *n, const bs_core *c, const char *peer, bs_drop_stats *st,
            bs_errbuf *err)
{
    uint64_t started = bs_clock_system.now_ms(NULL);
    char dir[BS_ENDPOINT_MAX + 1];
    run r = {n, c, peer, dir, "", "", st};
    bs_session_stats ss = {0};
    bs_err rv;

    memset(st, 0, sizeof *st);
    if ((rv = peer_folder(&r, dir, sizeof dir, err)) != BS_OK)
        return rv;
    if ((rv = prepare(&r, err)) == BS_OK && (rv = import_all(&r, err)) == BS_OK)
        rv = export_new(&r, err);
    ss.sets_sent = st->sets_sent;
    ss.sets_received = st->sets_received;
    ss.changes_applied = st->changes;
    ss.conflicts = st->conflicts;
    ss.bytes_out = st->bytes_out;
    if (st->files_refused > 0)
        snprintf(st->problem, sizeof st->problem,
                 "%llu %s from %s refused (moved to %.200s/refused, the "
                 "reason in the .err beside each): %.200s",
                 (unsigned long long)st->files_refused,
                 FILES(st->files_refused), peer, dir, st->refused);
    bs_client_log(n, peer, "folder", "both", &ss, started,
                  rv != BS_OK      ? bs_errmsg(err, rv)
                  : st->problem[0] ? st->problem
                                   : NULL);
    return rv;
}

/* ---- reading a folder: status and doctor ---- */

static uint64_t
mtime_ms(const char *dir, const char *name)
{
    char path[4200];
    struct stat sb;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &sb) != 0)
        return 0;
    return (uint64_t)sb.st_mtim.tv_sec * 1000 +
           (uint64_t)sb.st_mtim.tv_nsec / 1000000;
}

static void
first_refusal(const char *rdir, const char *name, char *buf, size_t n)
{
    char path[4300], line[BS_ERRMSG_LEN] = "";
    FILE *f;

    snprintf(path, sizeof path, "%s/%s.err", rdir, name);
    if ((f = fopen(path, "r")) != NULL) {
        if (fgets(line, sizeof line, f) == NULL)
            line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, "\n")] = '\0';
    snprintf(buf, n, "%s: %s", name, line[0] ? line : "(no .err file)");
}

void
bs_drop_scan_folder(const char *path, const uint8_t me[BS_PK_LEN],
                    const uint8_t peer[BS_PK_LEN], bs_drop_scan *out)
{
    char m8[ID8 + 1], p8[ID8 + 1], rdir[4200];
    struct stat sb;
    entry *v;
    size_t nv;

    memset(out, 0, sizeof *out);
    id8(me, m8);
    id8(peer, p8);
    out->exists = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (!out->exists)
        return;
    out->writable = access(path, W_OK | X_OK) == 0;
    if (list_files(path, p8, m8, &v, &nv) == BS_OK) {
        out->pending_in = nv;
        free(v);
    }
    if (list_files(path, m8, p8, &v, &nv) == BS_OK) {
        out->pending_out = nv;
        if (nv > 0)
            out->oldest_out_ms = mtime_ms(path, v[0].name);
        free(v);
    }
    snprintf(rdir, sizeof rdir, "%s/refused", path);
    if (list_files(rdir, p8, m8, &v, &nv) == BS_OK) {
        out->refused_here = nv;
        if (nv > 0)
            first_refusal(rdir, v[0].name, out->first_refusal,
                          sizeof out->first_refusal);
        free(v);
    }
    if (list_files(rdir, m8, p8, &v, &nv) == BS_OK) {
        out->refused_there = nv;
        free(v);
    }
}

bs_err
bs_drop_problems(const char *peer, const char *path,
                 const uint8_t me[BS_PK_LEN], const uint8_t pk[BS_PK_LEN],
                 uint64_t now_ms, bs_problems *out)
{
    bs_drop_scan s;

    bs_drop_scan_folder(path, me, pk, &s);
    if (!s.exists || !s.writable)
        return bs_problems_add(
            out, "folder_access", peer,
            "create the folder (or mount the share) and give this node's "
            "user write access; branchsync config check tests it",
            "drop folder %s of peer %s %s", path, peer,
            !s.exists ? "does not exist" : "is not writable by this node");
    if (s.refused_here > 0) {
        bs_err rv = bs_problems_add(
            out, "folder_refused", peer,
            "remove the cause the .err file names, have the peer run its "
            "exchange again (its next file carries all this node lacks), "
            "then delete the refused files",
            "%llu %s from %s refused in %s/refused (first: %s)",
            (unsigned long long)s.refused_here, FILES(s.refused_here), peer,
            path, s.first_refusal);
        if (rv != BS_OK)
            return rv;
    }
    if (s.pending_out > 0 && s.oldest_out_ms > 0 &&
        now_ms > s.oldest_out_ms + BS_DROP_UNREAD_MS)
        return bs_problems_add(
            out, "folder_unread", peer,
            "check that the peer's exchange runs (branchsync sync on that "
            "node) and that it sees the same folder",
            "%s has not taken this node's files from %s for %llu h", peer, path,
            (unsigned long long)((now_ms - s.oldest_out_ms) / 3600000));
    return BS_OK;
}
