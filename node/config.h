/*
 * config.h - the node directory and its configuration file.
 *
 * DIR/branchsync.conf is an INI file (libinih) with the settings an admin
 * may edit by hand; SIGHUP makes the daemon re-read it.  Identity (name,
 * role, keys) lives in the store and the key file, not here.
 *
 *   [node]   listen = tcp://127.0.0.1:7400
 *   [store]  map_size_mb = 256   max_map_size_mb = 1048576
 *   [log]    level = info
 *   [sync]   max_skew_s = 60     retention_days = 90
 *            clock_ahead = correct  connect_timeout_s = 5
 *            max_sessions = 128
 *   [http]   listen = 127.0.0.1:7480 (off: no HTTP API)
 *            cert = PEM  key = PEM (TLS; required off loopback)
 *            body_max_mb = 64  max_connections = 64  timeout_s = 30
 *            max_connections_per_ip = 0 (half of max_connections)
 *            request_timeout_s = 30
 *   [backup] schedule = 0 1 * * *  keep = 7  dir = /var/backups/bs
 *            (backups.h; `branchsync schedule --backup` writes them)
 */
#ifndef BS_CONFIG_H
#define BS_CONFIG_H

#include "common.h"

typedef struct bs_config {
    char listen[256];
    char log_level[16];
    uint64_t map_size_mb;
    uint64_t max_map_size_mb;
    uint32_t max_skew_s;
    uint32_t retention_days;
    int clock_ahead;            /* bs_clock_policy (replication/clock.h) */
    uint32_t connect_timeout_s; /* no connection to a peer within this:
                                   the exchange fails, naming the address */
    uint32_t max_sessions;      /* exchanges peers started, running at once;
                                   a HELLO beyond it is told to retry later */
    char http_listen[256];      /* HOST:PORT, "" when off (http.h) */
    char http_cert[1024], http_key[1024]; /* PEM paths, "" for none */
    uint32_t http_body_max_mb;            /* request bodies over this: 413 */
    uint32_t http_max_conns;              /* connections served at once */
    uint32_t http_timeout_s;              /* an idle connection is closed */
    uint32_t http_max_per_ip; /* connections from one address; 0: half */
    uint32_t http_request_s;  /* a request must arrive whole within this */
    /* Scheduled backups (backups.h): a schedule ("" for none; "every D"
     * or cron, node/schedule.h), how many to keep, an absolute dir. */
    char backup_schedule[256];
    uint32_t backup_keep;
    char backup_dir[1024];
} bs_config;

#define BS_CONFIG_KEEP_MAX 10000

void bs_config_defaults(bs_config *c);
/* Read DIR/branchsync.conf over the defaults.  BS_EINVAL names the line. */
BS_MUST_CHECK bs_err bs_config_load(const char *dir, bs_config *c,
                                    bs_errbuf *err);
/* 1 when v reads back from the file exactly as written (short, one line,
 * no ';' or '#', no surrounding white space). */
int bs_config_value_ok(const char *v);

/* Write c as DIR/branchsync.conf (atomically: temp file + rename). */
BS_MUST_CHECK bs_err bs_config_save(const char *dir, const bs_config *c,
                                    bs_errbuf *err);

#endif
