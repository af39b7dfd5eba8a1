/*
 * backups.c - scheduled backups (backups.h): the run with its pruning,
 * the state file, and what status and doctor read of them.
 */
#include "backups.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "schedule.h"

#define STAMP_LEN 16 /* YYYYMMDDTHHMMSSZ */
#define SUFFIX    ".mdb"

/* ---- names ---- */

void
bs_backups_name(const char *name, uint64_t now_ms, char *buf, size_t n)
{
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    char stamp[20];

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(buf, n, "%.64s-backup-%.16s%s", name, stamp, SUFFIX);
}

/* The time of one of node `name`'s backups from its file name; 0 when
 * the name is not one of ours. */
static uint64_t
name_time(const char *node, const char *file)
{
    size_t nl = strlen(node);
    const char *p;
    struct tm tm;
    char *end;

    if (strncmp(file, node, nl) != 0 || strncmp(file + nl, "-backup-", 8) != 0)
        return 0;
    p = file + nl + 8;
    if (strlen(p) != STAMP_LEN + strlen(SUFFIX) ||
        strcmp(p + STAMP_LEN, SUFFIX) != 0)
        return 0;
    memset(&tm, 0, sizeof tm);
    end = strptime(p, "%Y%m%dT%H%M%SZ", &tm);
    if (end != p + STAMP_LEN)
        return 0;
    return (uint64_t)timegm(&tm) * 1000;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Node `node`'s backups in dir, oldest first (*v malloc'd, each too). */
static bs_err
list_own(const char *dir, const char *node, char ***v, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t cap = 0;

    *v = NULL;
    *n = 0;
    if (d == NULL)
        return errno == ENOENT ? BS_ENOTFOUND : BS_EIO;
    while ((de = readdir(d)) != NULL) {
        if (name_time(node, de->d_name) == 0)
            continue;
        if (*n == cap) {
            char **nv = realloc(*v, (cap = cap ? cap * 2 : 16) * sizeof *nv);
            if (nv == NULL)
                break;
            *v = nv;
        }
        if (((*v)[*n] = strdup(de->d_name)) == NULL)
            break;
        (*n)++;
    }
    closedir(d);
    if (*n > 0)
        qsort(*v, *n, sizeof **v, name_cmp);
    return BS_OK;
}

static void
list_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- the state file ---- */

void
bs_backups_state(const char *dir, bs_backup_state *s)
{
    char path[4200], line[BS_ERRMSG_LEN + 64];
    FILE *f;

    memset(s, 0, sizeof *s);
    snprintf(path, sizeof path, "%s/backup.state", dir);
    if ((f = fopen(path, "r")) == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL) {
        char *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        *eq++ = '\0';
        eq[strcspn(eq, "\n")] = '\0';
        if (strcmp(line, "set_ms") == 0)
            s->set_ms = strtoull(eq, NULL, 10);
        else if (strcmp(line, "ok_ms") == 0)
            s->ok_ms = strtoull(eq, NULL, 10);
        else if (strcmp(line, "err_ms") == 0)
            s->err_ms = strtoull(eq, NULL, 10);
        else if (strcmp(line, "file") == 0)
            snprintf(s->file, sizeof s->file, "%s", eq);
        else if (strcmp(line, "error") == 0)
            snprintf(s->error, sizeof s->error, "%s", eq);
    }
    fclose(f);
}

bs_err
bs_backups_state_save(const char *dir, const bs_backup_state *s, bs_errbuf *err)
{
    char path[4200], tmp[4300], error[BS_ERRMSG_LEN];
    FILE *f;

    snprintf(path, sizeof path, "%s/backup.state", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(error, sizeof error, "%s", s->error);
    error[strcspn(error, "\r\n")] = '\0';
    if ((f = fopen(tmp, "w")) == NULL)
        return bs_errf(err, BS_EIO, "%s: %s", tmp, strerror(errno));
    fprintf(f, "set_ms=%llu\nok_ms=%llu\nerr_ms=%llu\nfile=%s\nerror=%s\n",
            (unsigned long long)s->set_ms, (unsigned long long)s->ok_ms,
            (unsigned long long)s->err_ms, s->file, error);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        unlink(tmp);
        return bs_errf(err, BS_EIO, "%s: %s", tmp, strerror(errno));
    }
    fclose(f);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return bs_errf(err, BS_EIO, "%s: %s", path, strerror(errno));
    }
    return BS_OK;
}

/* ---- the run ---- */

/* Remove the oldest of n's backups in its dir beyond its keep. */
static void
prune(bs_node *n)
{
    char **v, path[4200];
    size_t nv;

    if (list_own(n->cfg.backup_dir, n->meta.name, &v, &nv) != BS_OK)
        return;
    for (size_t i = 0; i + n->cfg.backup_keep < nv; i++) {
        snprintf(path, sizeof path, "%s/%s", n->cfg.backup_dir, v[i]);
        (void)unlink(path);
    }
    list_free(v, nv);
}

bs_err
bs_backups_run(bs_node *n, uint64_t now_ms, char *file, size_t fn,
               bs_errbuf *err)
{
    char name[BS_BACKUP_NAME_MAX], path[4200];
    bs_backup_state s;
    bs_errbuf e2 = {{0}};
    uint64_t bytes = 0;
    bs_err rv;

    if (!n->cfg.backup_schedule[0] || !n->cfg.backup_dir[0])
        return bs_errf(err, BS_EINVAL,
                       "no scheduled backup is configured "
                       "(branchsync schedule --backup)");
    bs_backups_name(n->meta.name, now_ms, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", n->cfg.backup_dir, name);
    rv = bs_node_backup(n, path, &bytes, err);
    bs_backups_state(n->dir, &s);
    if (rv == BS_OK) {
        prune(n);
        s.ok_ms = now_ms;
        snprintf(s.file, sizeof s.file, "%s", name);
        s.error[0] = '\0';
        snprintf(file, fn, "%s", name);
    } else {
        s.err_ms = now_ms;
        snprintf(s.error, sizeof s.error, "%s", bs_errmsg(err, rv));
    }
    if (bs_backups_state_save(n->dir, &s, &e2) != BS_OK && rv == BS_OK)
        rv = bs_errf(err, BS_EIO, "backup written, but its state not: %s",
                     e2.msg);
    return rv;
}

/* ---- status and doctor ---- */

void
bs_backups_view(const bs_node *n, uint64_t now_ms, bs_backup_view *v)
{
    int64_t now = (int64_t)(now_ms / 1000), n1, n2, last;
    bs_schedule s;
    char **names;
    size_t nn;

    memset(v, 0, sizeof *v);
    bs_backups_state(n->dir, &v->state);
    if (!n->cfg.backup_schedule[0] ||
        bs_schedule_parse(&s, n->cfg.backup_schedule, NULL) != BS_OK)
        return;
    v->configured = 1;
    last = (int64_t)((v->state.ok_ms > v->state.err_ms ? v->state.ok_ms
                                                       : v->state.err_ms) /
                     1000);
    if (bs_schedule_next(&s, now, last, &n1) == BS_OK)
        v->next_s = n1;
    if (s.kind == BS_SCHED_EVERY)
        v->period_s = s.every_s;
    else if (bs_schedule_next(&s, now, 0, &n1) == BS_OK &&
             bs_schedule_next(&s, n1, n1, &n2) == BS_OK)
        v->period_s = (uint64_t)(n2 - n1);
    if (list_own(n->cfg.backup_dir, n->meta.name, &names, &nn) == BS_OK) {
        v->count = nn;
        if (nn > 0) {
            snprintf(v->last, sizeof v->last, "%s", names[nn - 1]);
            v->last_ms = name_time(n->meta.name, names[nn - 1]);
        }
        list_free(names, nn);
    }
}

bs_err
bs_backups_problems(const bs_node *n, uint64_t now_ms, bs_problems *out)
{
    bs_backup_view v;
    uint64_t since, limit;

    bs_backups_view(n, now_ms, &v);
    if (!v.configured)
        return BS_OK;
    if (v.state.err_ms > v.state.ok_ms) {
        bs_err rv = bs_problems_add(
            out, "backup_failed", "",
            "remove the cause named (space, permissions of the backup "
            "directory, a damaged store: branchsync verify); the next run "
            "tries again",
            "the last scheduled backup into %s failed: %s", n->cfg.backup_dir,
            v.state.error);
        if (rv != BS_OK)
            return rv;
    }
    since = v.last_ms ? v.last_ms : v.state.set_ms;
    limit = 2 * v.period_s * 1000;
    if (since == 0 || v.period_s == 0 || now_ms <= since + limit)
        return BS_OK;
    if (v.last_ms == 0)
        return bs_problems_add(
            out, "backup_old", "",
            "check that branchsyncd runs and can write the backup "
            "directory; branchsync backup FILE makes one now",
            "no scheduled backup in %s although the schedule (%s) was set "
            "%llu h ago",
            n->cfg.backup_dir, n->cfg.backup_schedule,
            (unsigned long long)((now_ms - since) / 3600000));
    return bs_problems_add(
        out, "backup_old", "",
        "check that branchsyncd runs and can write the backup directory; "
        "branchsync backup FILE makes one now",
        "the newest backup in %s (%s) is %llu h old, more than twice the "
        "schedule's period (%s)",
        n->cfg.backup_dir, v.last,
        (unsigned long long)((now_ms - v.last_ms) / 3600000),
        n->cfg.backup_schedule);
}
