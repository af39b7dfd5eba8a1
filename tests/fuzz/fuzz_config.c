/*
 * fuzz_config.c - DIR/branchsync.conf (node/config.h, libinih), which an
 * admin edits by hand and the daemon re-reads on SIGHUP (docs/reliability.md
 * F3).
 *
 * The input is the file.  A refusal is bad input (exit code 2) whose
 * message names the line and the problem; an accepted file gives settings
 * within their documented limits, and saving them (bs_config_save) and
 * loading the result gives the same settings (F4).
 */
#include <string.h>
#include <sys/stat.h>

#include "fuzz_world.h"

static char dir[600], copy[700];

static void
check_limits(const bs_config *c)
{
    if (strlen(c->listen) >= sizeof c->listen ||
        (strcmp(c->log_level, "debug") && strcmp(c->log_level, "info") &&
         strcmp(c->log_level, "warn") && strcmp(c->log_level, "error")) ||
        c->map_size_mb < 1 || c->map_size_mb > (1u << 30) ||
        c->max_map_size_mb < c->map_size_mb ||
        c->max_map_size_mb > (1u << 30) || c->max_skew_s < 1 ||
        c->max_skew_s > 86400 || c->retention_days < 1 ||
        c->retention_days > 36500)
        bsf_die("accepted configuration is out of its limits");
}

/* "PATH line N: WHAT": WHAT is the problem, not a garbled copy. */
static void
check_message(const char *msg)
{
    const char *p = strstr(msg, ".conf line ");

    if (p == NULL || (p = strstr(p, ": ")) == NULL)
        bsf_die("refusal does not name the line: \"%s\"", msg);
    p += 2;
    if (strncmp(p, "bad value for [", 15) != 0 &&
        strncmp(p, "unknown setting [", 17) != 0 &&
        strcmp(p, "syntax error") != 0)
        bsf_die("refusal message is garbled: \"%s\"", msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[800];
    bs_errbuf err = {{0}};
    bs_config c, c2;
    bs_err rv;

    bsf_init();
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "%s", bsf_tmpdir("config"));
        snprintf(copy, sizeof copy, "%s/copy", dir);
        if (mkdir(copy, 0700) != 0)
            bsf_die("mkdir %s", copy);
    }
    snprintf(path, sizeof path, "%s/branchsync.conf", dir);
    bsf_write_file(path, data, size);
    rv = bs_config_load(dir, &c, &err);
    if (rv != BS_OK) {
        if (rv == BS_ENOMEM)
            return 0;
        if (rv != BS_EINVAL)
            bsf_die("refused with %s: %s", bs_strerror(rv), err.msg);
        if (!bsf_ignored("config-errmsg"))
            check_message(err.msg);
        return 0;
    }
    check_limits(&c);
    if ((rv = bs_config_save(copy, &c, &err)) != BS_OK)
        bsf_die("saving an accepted configuration: %s", bs_errmsg(&err, rv));
    if ((rv = bs_config_load(copy, &c2, &err)) != BS_OK) {
        if (bsf_ignored("config-roundtrip"))
            return 0;
        bsf_die("a saved configuration does not load again: %s",
                bs_errmsg(&err, rv));
    }
    if (strcmp(c.listen, c2.listen) != 0 ||
        strcmp(c.log_level, c2.log_level) != 0 ||
        c.map_size_mb != c2.map_size_mb ||
        c.max_map_size_mb != c2.max_map_size_mb ||
        c.max_skew_s != c2.max_skew_s ||
        c.retention_days != c2.retention_days) {
        if (bsf_ignored("config-roundtrip"))
            return 0;
        bsf_die("configuration round trip differs (listen \"%s\" -> \"%s\")",
                c.listen, c2.listen);
    }
    return 0;
}
