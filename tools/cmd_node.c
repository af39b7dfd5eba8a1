/*
 * cmd_node.c - init, id, status and the helpers every command shares.
 */
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "../replication/crypto.h"
#include "../replication/record.h"
#include "../replication/streams.h"
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
    if (c->listen && strncmp(c->listen, "tcp://", 6) != 0)
        return bs_errf(&c->err, BS_EINVAL,
                       "bad endpoint \"%s\": use tcp://HOST:PORT", c->listen);
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

typedef struct coll_count {
    char name[BS_COLLECTION_MAX + 1];
    uint64_t live, deleted;
} coll_count;

/* Live and deleted records per collection, by one scan. */
static bs_err
count_records(bs_txn *t, coll_count **out, size_t *n)
{
    bs_streamtab tab;
    bs_order order = {0, bs_streams_key, &tab};
    coll_count *v = NULL;
    size_t k = 0, cap = 0;
    bs_cursor *cur;
    bs_slice key, val;
    bs_arena a;
    bs_err rv;

    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &cur)) != BS_OK) {
        bs_streams_fini(&tab);
        return rv;
    }
    bs_arena_init(&a);
    for (rv = bs_cursor_first(cur, &key, &val); rv == BS_OK;
         rv = bs_cursor_next(cur, &key, &val)) {
        size_t cn = strnlen((const char *)key.p, key.n);
        bs_record r;

        if (cn > BS_COLLECTION_MAX)
            continue;
        if (k == 0 || strlen(v[k - 1].name) != cn ||
            memcmp(v[k - 1].name, key.p, cn) != 0) {
            if (k == cap) {
                coll_count *nv;
                cap = cap ? cap * 2 : 16;
                if ((nv = realloc(v, cap * sizeof *v)) == NULL) {
                    rv = BS_ENOMEM;
                    break;
                }
                v = nv;
            }
            memset(&v[k], 0, sizeof v[k]);
            memcpy(v[k].name, key.p, cn);
            k++;
        }
        bs_arena_reset(&a);
        if ((rv = bs_record_decode(&r, val.p, val.n, &a)) != BS_OK)
            break;
        if (bs_record_live(&r, &order))
            v[k - 1].live++;
        else
            v[k - 1].deleted++;
    }
    bs_cursor_close(cur);
    bs_arena_fini(&a);
    bs_streams_fini(&tab);
    if (rv != BS_ENOTFOUND) {
        free(v);
        return rv;
    }
    *out = v;
    *n = k;
    return BS_OK;
}

bs_err
bs_cmd_status(bs_cli *c)
{
    char id[BS_NODE_ID_LEN + 1], ib[2 * BS_INFOBASE_LEN + 1];
    char inc[2 * BS_INC_LEN + 1];
    bs_streamtab tab;
    coll_count *cc = NULL;
    size_t ncc = 0;
    uint64_t sets = 0, changes = 0, own = 0;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if ((rv = bs_store_read(n->store, &t, &c->err)) != BS_OK)
        goto out;
    if ((rv = bs_streams_load(t, &tab)) == BS_OK) {
        for (size_t i = 0; i < tab.n; i++) {
            changes += tab.v[i].seq;
            if (tab.v[i].idx == n->meta.stream)
                own = tab.v[i].seq;
        }
        bs_streams_fini(&tab);
        if ((rv = bs_txn_count(t, BS_DB_LOG, &sets)) == BS_OK)
            rv = count_records(t, &cc, &ncc);
    }
    bs_txn_abort(t);
    if (rv != BS_OK)
        goto out;
    bs_node_id_format(n->meta.pk, id);
    bs_hex(inc, n->meta.inc, BS_INC_LEN);
    if (n->meta.joined)
        bs_hex(ib, n->meta.infobase, BS_INFOBASE_LEN);
    if (c->json) {
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:o, s:s, s:{s:I, s:I, s:I, s:I, s:I}, s:o}",
            "name", n->meta.name, "role", bs_role_name(n->meta.role), "id", id,
            "infobase", n->meta.joined ? json_string(ib) : json_null(),
            "incarnation", inc, "log", "change_sets", (json_int_t)sets,
            "changes", (json_int_t)changes, "own_changes", (json_int_t)own,
            "store_bytes", (json_int_t)bs_store_used_bytes(n->store),
            "map_bytes", (json_int_t)bs_store_map_size(n->store), "collections",
            json_object());
        json_t *cols = json_object_get(j, "collections");
        for (size_t i = 0; i < ncc; i++)
            json_object_set_new(cols, cc[i].name,
                                json_pack("{s:I, s:I}", "records",
                                          (json_int_t)cc[i].live, "deleted",
                                          (json_int_t)cc[i].deleted));
        print_json(j);
    } else {
        printf("node:        %s (%s)\nid:          %s\n", n->meta.name,
               bs_role_name(n->meta.role), id);
        printf("infobase:    %s\n",
               n->meta.joined ? ib : "not joined yet (waits for the hub)");
        printf("incarnation: %s\n", inc);
        printf("change log:  %llu changes in %llu sets (%llu written here)\n",
               (unsigned long long)changes, (unsigned long long)sets,
               (unsigned long long)own);
        printf("store:       %.1f MiB used of a %.0f MiB map\n",
               bs_store_used_bytes(n->store) / 1048576.0,
               bs_store_map_size(n->store) / 1048576.0);
        printf("collections:%s\n", ncc ? "" : " none");
        for (size_t i = 0; i < ncc; i++)
            printf("  %-24s %llu records, %llu deleted\n", cc[i].name,
                   (unsigned long long)cc[i].live,
                   (unsigned long long)cc[i].deleted);
    }
out:
    free(cc);
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
