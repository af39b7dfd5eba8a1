/*
 * cmd_data.c - put, get, del, ls and digest.
 */
#include <string.h>

#include "../replication/digest.h"
#include "../replication/json.h"
#include "cli.h"
#include "output.h"

/* One checked write through the core; the daemon hears of it. */
static bs_err
write_one(bs_cli *c, bs_write *w)
{
    bs_core core;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_core(c, 1, &n, &core)) == BS_OK)
        rv = bs_records_write(&core, w, 1, NULL, &c->err);
    bs_node_close(n);
    if (rv == BS_OK)
        bs_cli_notify(c, "changed");
    return rv;
}

bs_err
bs_cmd_put(bs_cli *c)
{
    bs_write w = {c->argv[0], c->argv[1], 0, NULL, 0};
    const char *json = c->argv[2], *jid;
    bs_arena a;
    bs_err rv;

    if ((rv = bs_records_check_coll(w.coll, &c->err)) != BS_OK ||
        (rv = bs_records_check_id(w.id, &c->err)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    rv = bs_json_fields(json, strlen(json), &a, &jid, &w.fields, &w.nfields,
                        &c->err);
    if (rv == BS_OK && jid != NULL && strcmp(jid, w.id) != 0)
        rv = bs_errf(&c->err, BS_EINVAL,
                     "the JSON's \"id\" differs from ID \"%s\"", w.id);
    if (rv == BS_OK)
        rv = write_one(c, &w);
    bs_arena_fini(&a);
    return rv;
}

bs_err
bs_cmd_del(bs_cli *c)
{
    bs_write w = {c->argv[0], c->argv[1], 1, NULL, 0};
    bs_err rv;

    if ((rv = bs_records_check_coll(w.coll, &c->err)) != BS_OK ||
        (rv = bs_records_check_id(w.id, &c->err)) != BS_OK)
        return rv;
    return write_one(c, &w);
}

bs_err
bs_cmd_get(bs_cli *c)
{
    const char *coll = c->argv[0], *id = c->argv[1];
    bs_arena a;
    bs_record r;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_records_check_coll(coll, &c->err)) != BS_OK ||
        (rv = bs_records_check_id(id, &c->err)) != BS_OK ||
        (rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        if ((rv = bs_records_get(t, coll, id, &a, &r, &c->err)) == BS_OK)
            rv = bs_out_record(id, strlen(id), &r);
        bs_txn_abort(t);
    }
    bs_arena_fini(&a);
    bs_node_close(n);
    return rv;
}

bs_err
bs_cmd_ls(bs_cli *c)
{
    bs_records_iter *it = NULL;
    const bs_record *r;
    const char *id;
    size_t idlen;
    bs_node *n;
    bs_txn *t = NULL;
    bs_err rv;

    if ((rv = bs_records_check_coll(c->argv[0], &c->err)) != BS_OK ||
        (rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK &&
        (rv = bs_records_iter_open(t, c->argv[0], NULL, NULL, &it)) == BS_OK)
        while ((rv = bs_records_iter_next(it, &id, &idlen, &r, &c->err)) ==
                   BS_OK &&
               (rv = bs_out_record(id, idlen, r)) == BS_OK)
            ;
    if (rv == BS_ENOTFOUND)
        rv = BS_OK;
    if (fflush(stdout) != 0 && rv == BS_OK)
        rv = bs_errf(&c->err, BS_EIO, "cannot write output");
    bs_records_iter_close(it);
    bs_txn_abort(t);
    bs_node_close(n);
    return rv;
}

bs_err
bs_cmd_digest(bs_cli *c)
{
    uint8_t d[BS_HASH_LEN];
    char hex[2 * BS_HASH_LEN + 1];
    uint64_t nrec = 0;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    for (int i = 0; i < c->argc; i++)
        if ((rv = bs_records_check_coll(c->argv[i], &c->err)) != BS_OK)
            return rv;
    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        rv = bs_digest(t, (const char *const *)c->argv, (size_t)c->argc, d,
                       &nrec, &c->err);
        bs_txn_abort(t);
    }
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    bs_hex(hex, d, BS_HASH_LEN);
    if (c->json) {
        json_t *j = json_pack("{s:s, s:I, s:[]}", "digest", hex, "records",
                              (json_int_t)nrec, "collections");
        for (int i = 0; i < c->argc; i++)
            json_array_append_new(json_object_get(j, "collections"),
                                  json_string(c->argv[i]));
        bs_out_json(j);
    } else {
        printf("%s\n", hex);
    }
    return BS_OK;
}
