/*
 * config.c - branchsync.conf parsing (libinih) and writing.
 */
#include "config.h"

#include "../replication/clock.h"
#include "../replication/peers.h"
#include "http.h"
#include "schedule.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
bs_config_defaults(bs_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->log_level, sizeof c->log_level, "info");
    c->map_size_mb = 256;
    c->max_map_size_mb = 1048576;
    c->max_skew_s = 60;
    c->retention_days = 90;
    c->clock_ahead = BS_CLOCK_CORRECT;
    c->connect_timeout_s = 5;
    c->max_sessions = 128;
    snprintf(c->http_listen, sizeof c->http_listen, "%s",
             BS_HTTP_DEFAULT_LISTEN);
    c->http_body_max_mb = 64;
    c->http_max_conns = 64;
    c->http_timeout_s = 30;
    c->http_max_per_ip = 0;
    c->http_request_s = 30;
    c->backup_keep = 7;
}

typedef struct parse_ctx {
    bs_config *c;
    bs_errbuf why; /* the first problem; libinih keeps going after it */
    int bad;
} parse_ctx;

static int
parse_u64(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long n;

    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno || end == v || *end != '\0' || n < lo || n > hi || v[0] == '-')
        return 0;
    *out = n;
    return 1;
}

/* [http] settings; 1 when known and valid, 0 bad, -1 unknown. */
static int
http_item(bs_config *c, const char *name, const char *value)
{
    uint64_t n;

    if (strcmp(name, "listen") == 0) {
        if (strcmp(value, "off") == 0) {
            c->http_listen[0] = '\0';
            return 1;
        }
        if (strlen(value) >= sizeof c->http_listen ||
            bs_http_addr_parse(value, NULL, NULL, NULL, NULL) != BS_OK)
            return 0;
        snprintf(c->http_listen, sizeof c->http_listen, "%s", value);
    } else if (strcmp(name, "cert") == 0 || strcmp(name, "key") == 0) {
        char *dst = name[0] == 'c' ? c->http_cert : c->http_key;
        if (strlen(value) >= sizeof c->http_cert || !bs_config_value_ok(value))
            return 0;
        snprintf(dst, sizeof c->http_cert, "%s", value);
    } else if (strcmp(name, "body_max_mb") == 0) {
        if (!parse_u64(value, 1, 4096, &n))
            return 0;
        c->http_body_max_mb = (uint32_t)n;
    } else if (strcmp(name, "max_connections") == 0) {
        if (!parse_u64(value, 1, 10000, &n))
            return 0;
        c->http_max_conns = (uint32_t)n;
    } else if (strcmp(name, "timeout_s") == 0) {
        if (!parse_u64(value, 1, 3600, &n))
            return 0;
        c->http_timeout_s = (uint32_t)n;
    } else if (strcmp(name, "max_connections_per_ip") == 0) {
        if (!parse_u64(value, 0, 10000, &n))
            return 0;
        c->http_max_per_ip = (uint32_t)n;
    } else if (strcmp(name, "request_timeout_s") == 0) {
        if (!parse_u64(value, 1, 3600, &n))
            return 0;
        c->http_request_s = (uint32_t)n;
    } else {
        return -1;
    }
    return 1;
}

static int
on_item(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *p = user;
    bs_config *c = p->c;
    uint64_t n;
    int known;

#define IS(s, k) (strcmp(section, s) == 0 && strcmp(name, k) == 0)
    if (IS("node", "listen")) {
        /* An endpoint, and one that survives being written back. */
        if (strlen(value) >= sizeof c->listen ||
            (value[0] &&
             (!bs_endpoint_listenable(value) || !bs_config_value_ok(value))))
            goto bad;
        snprintf(c->listen, sizeof c->listen, "%s", value);
    } else if (IS("log", "level")) {
        if (strcmp(value, "debug") && strcmp(value, "info") &&
            strcmp(value, "warn") && strcmp(value, "error"))
            goto bad;
        snprintf(c->log_level, sizeof c->log_level, "%s", value);
    } else if (IS("store", "map_size_mb")) {
        if (!parse_u64(value, 1, 1u << 30, &c->map_size_mb))
            goto bad;
    } else if (IS("store", "max_map_size_mb")) {
        if (!parse_u64(value, 1, 1u << 30, &c->max_map_size_mb))
            goto bad;
    } else if (IS("sync", "max_skew_s")) {
        if (!parse_u64(value, 1, 86400, &n))
            goto bad;
        c->max_skew_s = (uint32_t)n;
    } else if (IS("sync", "retention_days")) {
        if (!parse_u64(value, 1, 36500, &n))
            goto bad;
        c->retention_days = (uint32_t)n;
    } else if (IS("sync", "clock_ahead")) {
        if (bs_clock_policy_parse(value, &c->clock_ahead) != BS_OK)
            goto bad;
    } else if (IS("sync", "connect_timeout_s")) {
        if (!parse_u64(value, 1, 600, &n))
            goto bad;
        c->connect_timeout_s = (uint32_t)n;
    } else if (IS("sync", "max_sessions")) {
        if (!parse_u64(value, 1, 100000, &n))
            goto bad;
        c->max_sessions = (uint32_t)n;
    } else if (IS("backup", "schedule")) {
        bs_schedule s;
        if (strlen(value) >= sizeof c->backup_schedule ||
            !bs_config_value_ok(value) ||
            (value[0] &&
             (bs_schedule_parse(&s, value, NULL) != BS_OK ||
              (s.kind != BS_SCHED_EVERY && s.kind != BS_SCHED_CRON))))
            goto bad;
        snprintf(c->backup_schedule, sizeof c->backup_schedule, "%s", value);
    } else if (IS("backup", "keep")) {
        if (!parse_u64(value, 1, BS_CONFIG_KEEP_MAX, &n))
            goto bad;
        c->backup_keep = (uint32_t)n;
    } else if (IS("backup", "dir")) {
        if (strlen(value) >= sizeof c->backup_dir ||
            !bs_config_value_ok(value) || (value[0] && value[0] != '/'))
            goto bad;
        snprintf(c->backup_dir, sizeof c->backup_dir, "%s", value);
    } else if (strcmp(section, "http") == 0 &&
               (known = http_item(c, name, value)) >= 0) {
        if (known == 0)
            goto bad;
    } else {
        if (!p->bad)
            bs_errf(&p->why, BS_EINVAL, "unknown setting [%s] %s", section,
                    name);
        p->bad = 1;
        return 0;
    }
    return 1;
#undef IS
bad:
    if (!p->bad)
        bs_errf(&p->why, BS_EINVAL, "bad value for [%s] %s: \"%.200s\"",
                section, name, value);
    p->bad = 1;
    return 0;
}

bs_err
bs_config_load(const char *dir, bs_config *c, bs_errbuf *err)
{
    char path[4096];
    parse_ctx p = {c, {{0}}, 0};
    int rc;

    bs_config_defaults(c);
    snprintf(path, sizeof path, "%s/branchsync.conf", dir);
    rc = ini_parse(path, on_item, &p);
    if (rc == -1)
        return bs_errf(err, BS_ENOTNODE, "%s: cannot read: %s", path,
                       strerror(errno));
    if (rc == -2)
        return bs_errf(err, BS_ENOMEM, "out of memory reading %s", path);
    /* rc is the line of the first error (libinih keeps parsing after it,
     * but reports the first), which is also the first one noted in why. */
    if (rc > 0)
        return bs_errf(err, BS_EINVAL, "%s line %d: %s", path, rc,
                       p.bad ? p.why.msg : "syntax error");
    if (c->max_map_size_mb < c->map_size_mb)
        c->max_map_size_mb = c->map_size_mb;
    return BS_OK;
}

int
bs_config_value_ok(const char *v)
{
    size_t n = strlen(v);

    /* What libinih reads back as written: one short line, no inline
     * comment, no surrounding white space. */
    if (n > 180 || strpbrk(v, ";#\r\n") != NULL)
        return 0;
    return n == 0 ||
           (!isspace((unsigned char)v[0]) && !isspace((unsigned char)v[n - 1]));
}

bs_err
bs_config_save(const char *dir, const bs_config *c, bs_errbuf *err)
{
    char path[4096], tmp[4200];
    FILE *f;

    snprintf(path, sizeof path, "%s/branchsync.conf", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!bs_config_value_ok(c->listen) || !bs_config_value_ok(c->log_level) ||
        !bs_config_value_ok(c->http_listen) ||
        !bs_config_value_ok(c->http_cert) || !bs_config_value_ok(c->http_key) ||
        !bs_config_value_ok(c->backup_schedule) ||
        !bs_config_value_ok(c->backup_dir))
        return bs_errf(err, BS_EINVAL,
                       "setting would not read back as written: \"%.60s\"",
                       c->listen);
    if ((f = fopen(tmp, "w")) == NULL)
        return bs_errf(err, BS_EIO, "%s: %s", tmp, strerror(errno));
    fprintf(f,
            "# branchsync node configuration; SIGHUP re-reads it.\n"
            "[node]\n%s%s\n\n"
            "[store]\nmap_size_mb = %llu\nmax_map_size_mb = %llu\n\n"
            "[log]\nlevel = %s\n\n"
            "[sync]\nmax_skew_s = %u\nretention_days = %u\n"
            "clock_ahead = %s\nconnect_timeout_s = %u\n\n"
            "[http]\nlisten = %s\n%s%s%s%s%s%s"
            "body_max_mb = %u\nmax_connections = %u\ntimeout_s = %u\n"
            "max_connections_per_ip = %u\nrequest_timeout_s = %u\n",
            c->listen[0] ? "listen = " : "# listen = tcp://0.0.0.0:7400",
            c->listen, (unsigned long long)c->map_size_mb,
            (unsigned long long)c->max_map_size_mb, c->log_level, c->max_skew_s,
            c->retention_days, bs_clock_policy_name(c->clock_ahead),
            c->connect_timeout_s, c->http_listen[0] ? c->http_listen : "off",
            c->http_cert[0] ? "cert = " : "# cert = /path/cert.pem",
            c->http_cert, "\n",
            c->http_key[0] ? "key = " : "# key = /path/key.pem", c->http_key,
            "\n", c->http_body_max_mb, c->http_max_conns, c->http_timeout_s,
            c->http_max_per_ip, c->http_request_s);
    fprintf(f,
            "\n# scheduled backups (branchsync schedule --backup SPEC "
            "--keep N DIR)\n[backup]\nschedule = %s\nkeep = %u\ndir = %s\n",
            c->backup_schedule, c->backup_keep, c->backup_dir);
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
