/*
 * backups.h - scheduled backups ([backup] in branchsync.conf, set with
 * `branchsync schedule --backup SPEC --keep N DIR`): the daemon writes a
 * backup (bs_node_backup) into DIR on the schedule, under a dated name,
 * and keeps the newest N of its own naming; status shows the last one,
 * its age and the next run; doctor says when backups fail or are old.
 *
 * Names: NODE-backup-YYYYMMDDTHHMMSSZ.mdb (UTC), NODE the node's name, so
 * they sort by time and pruning never touches another file, another
 * node's backups in the same DIR included.
 *
 * The outcome of the last run is kept in DIR_NODE/backup.state (one
 * "key=value" per line: set_ms, ok_ms, err_ms, file, error), written
 * atomically; set_ms is when the schedule was set, so that "no backup
 * yet" becomes a problem only once two periods have passed since.
 * Everything takes the time as an argument (tests use a fake clock).
 */
#ifndef BS_BACKUPS_H
#define BS_BACKUPS_H

#include "health.h"
#include "node.h"

#define BS_BACKUP_NAME_MAX (BS_NODE_NAME_MAX + 40)

typedef struct bs_backup_state {
    uint64_t set_ms, ok_ms, err_ms;
    char file[BS_BACKUP_NAME_MAX];
    char error[BS_ERRMSG_LEN];
} bs_backup_state;

/* The state file of node directory dir; all zero when there is none. */
void bs_backups_state(const char *dir, bs_backup_state *s);
/* Write it (atomically).  BS_EIO. */
BS_MUST_CHECK bs_err bs_backups_state_save(const char *dir,
                                           const bs_backup_state *s,
                                           bs_errbuf *err);

/* The file name of node `name`'s backup at now_ms. */
void bs_backups_name(const char *name, uint64_t now_ms, char *buf, size_t n);

/*
 * Write a backup of n into n->cfg.backup_dir under its dated name at
 * now_ms, then remove the oldest of this node's backups there beyond
 * n->cfg.backup_keep.  Records the outcome in the state file either way.
 * file (fn bytes) gets the name written.  The errors of bs_node_backup;
 * BS_EINVAL when no backup is configured.
 */
BS_MUST_CHECK bs_err bs_backups_run(bs_node *n, uint64_t now_ms, char *file,
                                    size_t fn, bs_errbuf *err);

/* What status shows of the scheduled backups. */
typedef struct bs_backup_view {
    int configured;
    uint64_t period_s; /* between two runs (cron: the next two) */
    int64_t next_s;    /* the next run; 0 when none */
    uint64_t last_ms;  /* the newest backup in DIR, by its name; 0 */
    char last[BS_BACKUP_NAME_MAX];
    uint64_t count; /* this node's backups in DIR */
    bs_backup_state state;
} bs_backup_view;

void bs_backups_view(const bs_node *n, uint64_t now_ms, bs_backup_view *v);

/*
 * Doctor's findings at now_ms: "backup_failed" (the last run failed,
 * with its error) and "backup_old" (the newest backup, or the setting of
 * the schedule when there is none, is older than twice the period).
 * BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_backups_problems(const bs_node *n, uint64_t now_ms,
                                         bs_problems *out);

#endif
