/*
 * cmd_config.c - `config check`: the set-up checked before the first
 * exchange (node/check.h); exit 0 when every check holds, 1 when one
 * does not.
 */
#include <string.h>

#include "../node/check.h"
#include "cli.h"
#include "output.h"

static void
print_checks(bs_cli *c, const bs_checks *k)
{
    if (c->json)
        bs_out_json(json_pack("{s:b, s:o}", "ok", k->failed == 0, "checks",
                              bs_render_checks(k)));
    else
        bs_out_checks(k);
    c->exit_code = k->failed == 0 ? 0 : 1;
}

bs_err
bs_cmd_config(bs_cli *c)
{
    bs_errbuf e = {{0}};
    bs_checks k = {0};
    bs_config cfg;
    bs_node *n;
    bs_zmq *z;
    bs_err rv;

    if (c->argc != 1 || strcmp(c->argv[0], "check") != 0)
        return bs_errf(&c->err, BS_EUSAGE, "usage: config check [--json]");
    /* A configuration that does not parse is the finding itself: nothing
     * else can be checked without it. */
    rv = bs_config_load(c->dir, &cfg, &e);
    if (rv == BS_EINVAL) {
        if ((rv = bs_checks_add(&k, "config", "", 0,
                                "fix that line (deploy/examples/head.conf "
                                "shows every setting)",
                                "%s", e.msg)) == BS_OK)
            print_checks(c, &k);
        bs_checks_fini(&k);
        return rv;
    }
    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if ((rv = bs_zmq_new(&z, &c->err)) == BS_OK) {
        rv = bs_check_node(n, z, bs_clock_system.now_ms(NULL), &k, &c->err);
        bs_zmq_free(z);
    }
    bs_node_close(n);
    if (rv == BS_OK)
        print_checks(c, &k);
    bs_checks_fini(&k);
    return rv;
}
