/*
 * cmd_node.c - init, id, status, backup, restore, purge and the helpers
 * every command shares.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../node/health.h"
#include "../node/http.h"
#include "../node/schedule.h"
#include "../replication/crypto.h"
#include "../replication/compact.h"
#include "../replication/purge.h"
#include "cli.h"
#include "output.h"

bs_err
bs_cli_need(bs_cli *c, const char *path, const char *what)
{
    struct stat st;

    if (stat(path, &st) != 0 && (errno == ENOENT || errno == ENOTDIR))
        return bs_errf(&c->err, BS_ENOTFOUND, "%s: no such %s", path, what);
    return BS_OK;
}

bs_err
bs_cli_open(bs_cli *c, int readonly, bs_node **out)
{
    bs_err rv = bs_node_open(c->dir, readonly, out, &c->err);

    /* No directory at all is "not found"; one without a node in it is
     * bad input (the user named the wrong directory). */
    if (rv == BS_ENOTNODE &&
        bs_cli_need(c, c->dir, "node directory") == BS_ENOTFOUND)
        return bs_errf(&c->err, BS_ENOTFOUND,
                       "%s: no such node directory (create one with "
                       "'branchsync init -d %s --name NAME')",
                       c->dir, c->dir);
    return rv;
}

bs_err
bs_cli_core(bs_cli *c, int sign, bs_node **n, bs_core *core)
{
    bs_err rv;

    *n = NULL;
    if ((rv = bs_cli_open(c, 0, n)) != BS_OK)
        return rv;
    if ((rv = bs_node_core(*n, sign, core, &c->err)) != BS_OK) {
        bs_node_close(*n);
        *n = NULL;
    }
    return rv;
}

bs_err
bs_cmd_init(bs_cli *c)
{
    bs_node_init in = {0};
    char id[BS_NODE_ID_LEN + 1];
    bs_node *n;
    bs_err rv;

    if (c->name == NULL)
        return bs_errf(&c->err, BS_EUSAGE, "--name NAME is required");
    if (!bs_node_name_valid(c->name))
        return bs_errf(&c->err, BS_EINVAL,
                       "bad node name \"%.64s\": 1 to %d of A-Z a-z 0-9 _ . - "
                       "starting with a letter or digit",
                       c->name, BS_NODE_NAME_MAX);
    in.name = c->name;
    in.role = BS_ROLE_BRANCH;
    if (c->role && bs_role_parse(c->role, &in.role) != BS_OK)
        return bs_errf(&c->err, BS_EINVAL, "bad role \"%s\": use hub or branch",
                       c->role);
    if (c->listen &&
        (!bs_endpoint_listenable(c->listen) || !bs_config_value_ok(c->listen)))
        return bs_errf(&c->err, BS_EINVAL,
                       "bad endpoint \"%.80s\": use tcp://HOST:PORT",
                       c->listen);
    in.listen = c->listen;
    if (c->http && strcmp(c->http, "off") != 0 &&
        (bs_http_addr_parse(c->http, NULL, NULL, NULL, &c->err) != BS_OK ||
         !bs_config_value_ok(c->http)))
        return bs_errf(&c->err, BS_EINVAL,
                       "bad --http \"%.80s\": use HOST:PORT (e.g. "
                       "127.0.0.1:7480) or off",
                       c->http);
    in.http = c->http;
    if ((rv = bs_node_create(c->dir, &in, &c->err)) != BS_OK)
        return rv;
    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    bs_node_id_format(n->meta.pk, id);
    if (c->json)
        bs_out_json(json_pack("{s:s, s:s, s:s, s:s}", "name", n->meta.name,
                              "role", bs_role_name(n->meta.role), "id", id,
                              "dir", c->dir));
    else
        printf("created %s node \"%s\" in %s\nid: %s\n",
               bs_role_name(n->meta.role), n->meta.name, c->dir, id);
    bs_node_close(n);
    return BS_OK;
}

bs_err
bs_cmd_id(bs_cli *c)
{
    char id[BS_NODE_ID_LEN + 1];
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    bs_node_id_format(n->meta.pk, id);
    if (c->json)
        bs_out_json(json_pack("{s:s, s:s, s:s}", "name", n->meta.name, "id", id,
                              "role", bs_role_name(n->meta.role)));
    else if (c->quiet)
        printf("%s\n", id);
    else
        printf("%s %s\n", n->meta.name, id);
    bs_node_close(n);
    return BS_OK;
}

/* Each peer's next scheduled exchange (seconds), from its schedule and
 * last run: a JSON array in peer order, null where there is none. */
static json_t *
next_runs(const bs_status *st, int64_t now)
{
    json_t *runs = json_array();

    for (size_t i = 0; i < st->npeers; i++) {
        const bs_peer_status *p = &st->peers[i];
        int64_t next = 0;
        bs_schedule s;

        if (bs_schedule_parse(&s, p->schedule, NULL) == BS_OK &&
            (!p->window[0] ||
             bs_schedule_parse_window(&s, p->window, NULL) == BS_OK) &&
            bs_schedule_next(&s, now, (int64_t)(p->last_ok_ms / 1000), &next) ==
                BS_OK)
            json_array_append_new(runs, json_integer(next));
        else
            json_array_append_new(runs, json_null());
    }
    return runs;
}

bs_err
bs_cmd_api_token(bs_cli *c)
{
    char token[BS_HTTP_TOKEN_LEN + 1];
    bs_node *n;
    bs_err rv;

    /* Open the node first: a directory that is no node gets no token. */
    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    bs_node_close(n);
    if ((rv = bs_http_token_load(c->dir, 1, token, &c->err)) != BS_OK)
        return rv;
    if (c->json)
        bs_out_json(json_pack("{s:s}", "token", token));
    else
        printf("%s\n", token);
    bs_wipe(token, sizeof token);
    return BS_OK;
}

/* The dashboard's address for a browser: [http] listen with a wildcard
 * host turned into loopback, https when the API is served over TLS. */
static void
dashboard_base(const bs_config *cfg, char *buf, size_t n)
{
    const char *listen = cfg->http_listen, *colon = strrchr(listen, ':');
    size_t hn = colon ? (size_t)(colon - listen) : strlen(listen);
    const char *host = listen;

    if (hn == 7 && strncmp(listen, "0.0.0.0", 7) == 0)
        host = "127.0.0.1", hn = 9;
    else if (hn == 4 && strncmp(listen, "[::]", 4) == 0)
        host = "[::1]", hn = 5;
    snprintf(buf, n, "%s://%.*s%s", cfg->http_cert[0] ? "https" : "http",
             (int)hn, host, colon ? colon : "");
}

bs_err
bs_cmd_dashboard(bs_cli *c)
{
    char token[BS_HTTP_TOKEN_LEN + 1], base[300];
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if (!n->cfg.http_listen[0]) {
        bs_node_close(n);
        return bs_errf(&c->err, BS_ENOTFOUND,
                       "the HTTP API is off in %s/branchsync.conf ([http] "
                       "listen = off): set listen = 127.0.0.1:7480 there and "
                       "restart branchsyncd",
                       c->dir);
    }
    dashboard_base(&n->cfg, base, sizeof base);
    bs_node_close(n);
    if ((rv = bs_http_token_load(c->dir, 1, token, &c->err)) != BS_OK)
        return rv;
    /* The token goes in the fragment, which a browser never sends: it
     * appears in no request line and no server log (docs/api.md). */
    if (c->json)
        bs_out_json(json_pack("{s:s++, s:s}", "url", base, "/#token=", token,
                              "address", base));
    else
        printf("%s/#token=%s\n", base, token);
    bs_wipe(token, sizeof token);
    return BS_OK;
}

bs_err
bs_cmd_status(bs_cli *c)
{
    bs_backup_view bv;
    bs_status_opts o;
    bs_problems probs = {0};
    bs_status st;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    o = bs_node_status_opts(n);
    o.count_records = 1;
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        rv = bs_status_read(t, &n->meta, &o, &st, &c->err);
        if (rv == BS_OK &&
            (rv = bs_cli_problems(c, n, t, &st, NULL, &probs)) != BS_OK)
            bs_status_fini(&st);
        bs_txn_abort(t);
    }
    if (rv == BS_OK) {
        json_t *runs = next_runs(&st, (int64_t)(o.now_ms / 1000));
        uint64_t used = bs_store_used_bytes(n->store),
                 map = bs_store_map_size(n->store);
        if (c->json) {
            json_t *j = bs_render_status(&st), *p;
            size_t i;
            json_array_foreach(json_object_get(j, "peers"), i, p)
            {
                const char *dir = bs_endpoint_folder(st.peers[i].endpoint);
                json_object_set(p, "next_run_s", json_array_get(runs, i));
                if (dir != NULL) {
                    bs_drop_scan ds;
                    bs_drop_scan_folder(dir, st.meta.pk, st.peers[i].pk, &ds);
                    json_object_set_new(p, "folder", bs_render_drop(dir, &ds));
                }
            }
            json_object_set_new(j, "store",
                                json_pack("{s:I, s:I}", "used_bytes",
                                          (json_int_t)used, "map_bytes",
                                          (json_int_t)map));
            json_object_set_new(j, "problems", bs_render_problems(&probs));
            bs_render_status_files(j, n, &st, o.now_ms);
            bs_out_json(j);
        } else {
            bs_out_status(&st, runs, used, map, o.now_ms);
            bs_backups_view(n, o.now_ms, &bv);
            bs_out_backup(&n->cfg, &bv, o.now_ms);
            printf("problems:%s\n",
                   probs.n ? "" : "    none (branchsync doctor explains)");
            for (size_t i = 0; i < probs.n; i++)
                printf("  %s%s%s: %s\n", probs.v[i].kind,
                       probs.v[i].subject[0] ? " " : "", probs.v[i].subject,
                       probs.v[i].what);
        }
        json_decref(runs);
        bs_status_fini(&st);
        bs_problems_fini(&probs);
    }
    bs_node_close(n);
    return rv;
}

bs_err
bs_cmd_backup(bs_cli *c)
{
    uint64_t bytes = 0;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    rv = bs_node_backup(n, c->argv[0], &bytes, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    if (c->json)
        bs_out_json(json_pack("{s:s, s:I}", "file", c->argv[0], "bytes",
                              (json_int_t)bytes));
    else
        printf("backup of the store written to %s (%.1f MiB; the key file is "
               "not in it)\n",
               c->argv[0], bytes / 1048576.0);
    return BS_OK;
}

bs_err
bs_cmd_restore(bs_cli *c)
{
    char inc[2 * BS_INC_LEN + 1];
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_need(c, c->argv[0], "file")) != BS_OK ||
        (rv = bs_node_restore(c->dir, c->argv[0], &c->err)) != BS_OK)
        return rv;
    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    bs_hex(inc, n->meta.inc, BS_INC_LEN);
    if (c->json)
        bs_out_json(json_pack("{s:s, s:s}", "restored", c->argv[0],
                              "incarnation", inc));
    else
        printf("restored %s; new incarnation %s (peers will send back what "
               "was written after the backup)\n",
               c->argv[0], inc);
    bs_node_close(n);
    return BS_OK;
}

bs_err
bs_cmd_purge(bs_cli *c)
{
    bs_purge_stats st;
    bs_core core;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    rv = bs_purge_run(&core, &st, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    if (c->json)
        bs_out_json(json_pack("{s:I, s:I, s:I, s:I}", "tombstones",
                              (json_int_t)st.tombstones, "purged",
                              (json_int_t)st.purged, "held_by_peers",
                              (json_int_t)st.held_by_peers, "too_recent",
                              (json_int_t)st.too_recent));
    else
        bs_out_purge(&st);
    return BS_OK;
}

/* `compact [--dry-run]`: the log's sets nobody can need any more. */
bs_err
bs_cmd_compact(bs_cli *c)
{
    bs_compact_stats st;
    bs_logsize ls;
    bs_core core;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    rv = bs_compact_run(&core, c->dry_run, &st, &c->err);
    if (rv == BS_OK && (rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        rv = bs_compact_logsize(t, &ls);
        bs_txn_abort(t);
    }
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    if (c->json)
        bs_out_json(json_pack(
            "{s:b, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I}}", "dry_run",
            c->dry_run, "compacted_sets", (json_int_t)st.sets,
            "compacted_bytes", (json_int_t)st.bytes, "kept_needed",
            (json_int_t)st.kept_needed, "held_by_peers",
            (json_int_t)st.held_by_peers, "too_recent",
            (json_int_t)st.too_recent, "log", "sets", (json_int_t)ls.sets,
            "bytes", (json_int_t)ls.bytes, "oldest_kept_ms",
            (json_int_t)ls.oldest_ms, "compacted_sets",
            (json_int_t)ls.compacted));
    else
        bs_out_compact(&st, &ls, c->dry_run);
    return BS_OK;
}
