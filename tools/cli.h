/*
 * cli.h - shared state of the branchsync command-line tool.
 *
 * main() parses every option (they may stand before or after the command),
 * checks that each applies to the command, and calls the command's handler
 * with the positional arguments.  A handler turns its arguments into one
 * call of the core API (replication/core.h) and prints the result through
 * output.h; it returns a bs_err, and main prints its one-line message on
 * stderr and exits with bs_err_exit_code().
 */
#ifndef BS_CLI_H
#define BS_CLI_H

#include "../node/health.h"
#include "../node/node.h"
#include "../replication/common.h"

typedef struct bs_cli {
    const char *dir;
    int json;
    int quiet;
    const char *name, *role, *listen, *schedule, *window, *take, *value;
    const char *writers, *scope, *owner_field, *policy;
    int all;
    int hub;            /* peer add --hub */
    const char *http;   /* init --http */
    const char *keep;   /* quarantine release --keep; schedule --keep */
    const char *backup; /* schedule --backup SPEC */
    /* load and dump: --format --delimiter --mode --on-error --report
     * --id-field --types --fields (NULL when not given) */
    const char *format, *delimiter, *mode, *on_error, *report, *id_field;
    const char *types, *fields;
    const char *unique; /* collection --unique */
    int force;          /* put --force */
    int seed;           /* export --seed */
    int region;         /* peer add --region */
    const char *via;    /* member add --via REGION */
    int dry_run;        /* compact --dry-run */
    long batch;
    int argc;
    char **argv; /* positional arguments after the command */
    bs_errbuf err;
    int exit_code; /* when the handler returns BS_OK (doctor: 1 if unwell) */
} bs_cli;

typedef bs_err (*bs_cmd_fn)(bs_cli *c);

/* BS_ENOTFOUND "PATH: no such WHAT" when path does not exist (exit 1);
 * BS_OK otherwise, leaving other trouble to the command. */
BS_MUST_CHECK bs_err bs_cli_need(bs_cli *c, const char *path, const char *what);
/* Open the node named by -d / BRANCHSYNC_DIR: BS_ENOTFOUND when there is
 * no such directory, BS_ENOTNODE when it holds no node. */
BS_MUST_CHECK bs_err bs_cli_open(bs_cli *c, int readonly, bs_node **out);
/* Open it for writing and fill *core for the core API (sign: with the
 * secret key, for writes that make changes).  *n is NULL on error. */
BS_MUST_CHECK bs_err bs_cli_core(bs_cli *c, int sign, bs_node **n,
                                 bs_core *core);

/* Commands. */
bs_err bs_cmd_init(bs_cli *c);
bs_err bs_cmd_id(bs_cli *c);
bs_err bs_cmd_api_token(bs_cli *c);
bs_err bs_cmd_dashboard(bs_cli *c);
bs_err bs_cmd_status(bs_cli *c);
bs_err bs_cmd_put(bs_cli *c);
bs_err bs_cmd_get(bs_cli *c);
bs_err bs_cmd_del(bs_cli *c);
bs_err bs_cmd_ls(bs_cli *c);
bs_err bs_cmd_load(bs_cli *c);
bs_err bs_cmd_dump(bs_cli *c);
bs_err bs_cmd_cml(bs_cli *c);
bs_err bs_cmd_digest(bs_cli *c);
bs_err bs_cmd_peer(bs_cli *c);
bs_err bs_cmd_member(bs_cli *c);
bs_err bs_cmd_collection(bs_cli *c);
bs_err bs_cmd_merge(bs_cli *c);
bs_err bs_cmd_export(bs_cli *c);
bs_err bs_cmd_import(bs_cli *c);
bs_err bs_cmd_inspect(bs_cli *c);
bs_err bs_cmd_conflicts(bs_cli *c);
bs_err bs_cmd_resolve(bs_cli *c);
bs_err bs_cmd_backup(bs_cli *c);
bs_err bs_cmd_purge(bs_cli *c);
bs_err bs_cmd_compact(bs_cli *c);
bs_err bs_cmd_sync(bs_cli *c);
bs_err bs_cmd_schedule(bs_cli *c);
bs_err bs_cmd_log(bs_cli *c);
bs_err bs_cmd_verify(bs_cli *c);

/* The node's problems (node/health.h) as read in t with its status st,
 * measuring the disk and asking the daemon; corrupt: a verification's
 * finding or NULL. */
BS_MUST_CHECK bs_err bs_cli_problems(bs_cli *c, bs_node *n, bs_txn *t,
                                     const bs_status *st, const char *corrupt,
                                     bs_problems *out);
bs_err bs_cmd_doctor(bs_cli *c);
bs_err bs_cmd_config(bs_cli *c);
bs_err bs_cmd_quarantine(bs_cli *c);

/* Tell a running daemon (if any) about a change: "changed" after local
 * writes, "reload" after pairing or schedule changes.  Never fails. */
void bs_cli_notify(bs_cli *c, const char *cmd);
bs_err bs_cmd_restore(bs_cli *c);

#endif
