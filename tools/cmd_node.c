/*
 * cmd_node.c - init, id, status and the helpers every command shares.
 */
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "../replication/crypto.h"
#include "../replication/record.h"
#include "../replication/peers.h"
#include "../replication/status.h"
#include "../replication/hlc.h"
#include "../node/schedule.h"
#include "cli.h"

bs_err
bs_cli_open(bs_cli *c, int readonly, bs_node **out)
{
    return bs_node_open(c->dir, readonly, out, &c->err);
}

bs_err
bs_cli_check_coll(bs_cli *c, const char *coll)
{
    if (!bs_collection_valid(coll, 0))
        return bs_errf(&c->err, BS_EINVAL,
                       "bad collection name \"%.64s\": 1 to %d of A-Z a-z 0-9 "
                       "_ . - starting with a letter or digit",
                       coll, BS_COLLECTION_MAX);
    return BS_OK;
}

bs_err
bs_cli_check_id(bs_cli *c, const char *id)
{
    if (!bs_id_valid(id))
        return bs_errf(&c->err, BS_EINVAL,
                       "bad record id: 1 to %d bytes of UTF-8 without control "
                       "characters",
                       BS_ID_MAX);
    return BS_OK;
}

/* Print a jansson value as one JSON document on stdout. */
static void
print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2));

    if (s != NULL) {
        puts(s);
        free(s);
    }
    json_decref(j);
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
        (!bs_endpoint_valid(c->listen) || !bs_config_value_ok(c->listen)))
        return bs_errf(&c->err, BS_EINVAL,
                       "bad endpoint \"%.80s\": use tcp://HOST:PORT",
                       c->listen);
    in.listen = c->listen;
    if ((rv = bs_node_create(c->dir, &in, &c->err)) != BS_OK)
        return rv;
    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    bs_node_id_format(n->meta.pk, id);
    if (c->json)
        print_json(json_pack("{s:s, s:s, s:s, s:s}", "name", n->meta.name,
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
        print_json(json_pack("{s:s, s:s, s:s}", "name", n->meta.name, "id", id,
                             "role", bs_role_name(n->meta.role)));
    else
        printf("%s %s\n", n->meta.name, id);
    bs_node_close(n);
    return BS_OK;
}

static const char *
jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

static long long
jint(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void
ago(char *buf, size_t n, long long ms, long long now)
{
    long long d = (now - ms) / 1000;

    if (ms == 0)
        snprintf(buf, n, "never");
    else if (d < 60)
        snprintf(buf, n, "%lld s ago", d < 0 ? 0 : d);
    else if (d < 3600)
        snprintf(buf, n, "%lld min ago", d / 60);
    else if (d < 172800)
        snprintf(buf, n, "%lld h ago", d / 3600);
    else
        snprintf(buf, n, "%lld days ago", d / 86400);
}

static void
print_status(json_t *j, bs_node *n, long long now)
{
    json_t *x, *v;
    const char *key;
    size_t i;

    printf("node:        %s (%s)\nid:          %s\n", jstr(j, "name"),
           jstr(j, "role"), jstr(j, "id"));
    printf("infobase:    %s\n", json_is_string(json_object_get(j, "infobase"))
                                    ? jstr(j, "infobase")
                                    : "not joined yet (waits for the hub)");
    printf("incarnation: %s\n", jstr(j, "incarnation"));
    x = json_object_get(j, "log");
    printf("change log:  %lld changes in %lld sets (%lld written here)\n",
           jint(x, "changes"), jint(x, "change_sets"), jint(x, "own_changes"));
    printf("store:       %.1f MiB used of a %.0f MiB map\n",
           bs_store_used_bytes(n->store) / 1048576.0,
           bs_store_map_size(n->store) / 1048576.0);
    x = json_object_get(j, "conflicts");
    printf("conflicts:   %lld open, %lld in all\n", jint(x, "open"),
           jint(x, "total"));
    printf("peers:%s\n",
           json_array_size(json_object_get(j, "peers")) ? "" : "       none");
    json_array_foreach(json_object_get(j, "peers"), i, x)
    {
        char ok[32], bad[32];
        ago(ok, sizeof ok, jint(x, "last_success_ms"), now);
        ago(bad, sizeof bad, jint(x, "last_error_ms"), now);
        printf("  %-12s %s%s%s", jstr(x, "name"), jstr(x, "schedule"),
               *jstr(x, "window") ? ", window " : "", jstr(x, "window"));
        if (json_is_integer(json_object_get(x, "next_run_s"))) {
            long long in = jint(x, "next_run_s") - now / 1000;
            printf("; next run in %lld s", in < 0 ? 0 : in);
        }
        printf("\n");
        printf("    last success %s; pending: %lld to send, %lld to "
               "receive; oldest unacknowledged %lld s\n",
               ok, jint(x, "pending_out"), jint(x, "pending_in"),
               jint(x, "oldest_unacked_age_s"));
        if (*jstr(x, "last_error"))
            printf("    last error %s: %s\n", bad, jstr(x, "last_error"));
        if (json_is_true(json_object_get(x, "needs_full_resync")))
            printf("    NEEDS FULL RESYNC: silent longer than the retention "
                   "limit\n");
    }
    json_array_foreach(json_object_get(j, "streams_attention"), i, x)
    {
        printf("  %s origin %.17s… at seq %lld: %s\n",
               json_is_true(json_object_get(x, "quarantined")) ? "QUARANTINED"
                                                               : "HELD",
               jstr(x, "origin"), jint(x, "seq"), jstr(x, "note"));
    }
    printf("collections:%s\n",
           json_object_size(json_object_get(j, "collections")) ? "" : " none");
    json_object_foreach(json_object_get(j, "collections"), key, v)
    {
        printf("  %-24s %lld records, %lld deleted\n", key, jint(v, "records"),
               jint(v, "deleted"));
    }
}

/* Each peer's next scheduled exchange, from its schedule and last run. */
static void
add_next_runs(json_t *j, int64_t now)
{
    json_t *p;
    size_t i;

    json_array_foreach(json_object_get(j, "peers"), i, p)
    {
        bs_schedule s;
        int64_t next = 0, last = jint(p, "last_success_ms") / 1000;

        if (bs_schedule_parse(&s, jstr(p, "schedule"), NULL) == BS_OK &&
            (!*jstr(p, "window") ||
             bs_schedule_parse_window(&s, jstr(p, "window"), NULL) == BS_OK) &&
            bs_schedule_next(&s, now, last, &next) == BS_OK)
            json_object_set_new(p, "next_run_s", json_integer(next));
        else
            json_object_set_new(p, "next_run_s", json_null());
    }
}

bs_err
bs_cmd_status(bs_cli *c)
{
    bs_status_opts o = {0};
    json_t *j = NULL;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    o.now_ms = bs_clock_system.now_ms(NULL);
    o.retention_ms = (uint64_t)n->cfg.retention_days * 86400000ull;
    o.count_records = 1;
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        rv = bs_status_json(t, &n->meta, &o, &j);
        bs_txn_abort(t);
    }
    if (rv == BS_OK) {
        add_next_runs(j, (int64_t)(o.now_ms / 1000));
        json_object_set_new(j, "store",
                            json_pack("{s:I, s:I}", "used_bytes",
                                      (json_int_t)bs_store_used_bytes(n->store),
                                      "map_bytes",
                                      (json_int_t)bs_store_map_size(n->store)));
        if (c->json)
            print_json(json_incref(j));
        else
            print_status(j, n, (long long)o.now_ms);
        json_decref(j);
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
        print_json(json_pack("{s:s, s:I}", "file", c->argv[0], "bytes",
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

    if ((rv = bs_node_restore(c->dir, c->argv[0], &c->err)) != BS_OK)
        return rv;
    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    bs_hex(inc, n->meta.inc, BS_INC_LEN);
    if (c->json)
        print_json(json_pack("{s:s, s:s}", "restored", c->argv[0],
                             "incarnation", inc));
    else
        printf("restored %s; new incarnation %s (peers will send back what "
               "was written after the backup)\n",
               c->argv[0], inc);
    bs_node_close(n);
    return BS_OK;
}
