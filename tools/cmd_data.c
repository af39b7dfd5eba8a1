/*
 * cmd_data.c - put, get, del, ls and digest.
 */
#include <jansson.h>
#include <string.h>

#include "../replication/digest.h"
#include "../replication/json.h"
#include "../replication/local.h"
#include "cli.h"

typedef struct write_ctx {
    const uint8_t *sk;
    const char *coll, *id;
    int deleted;
    bs_field *fields;
    size_t nfields;
} write_ctx;

static bs_err
write_one(bs_txn *t, void *arg, bs_errbuf *err)
{
    write_ctx *w = arg;
    bs_local l;
    bs_err rv;

    if ((rv = bs_local_begin(&l, t, w->sk, bs_clock_system, err)) != BS_OK)
        goto out;
    if (w->deleted)
        rv = bs_local_del(&l, w->coll, w->id, err);
    else
        rv = bs_local_put(&l, w->coll, w->id, w->fields, w->nfields, err);
    if (rv == BS_OK)
        rv = bs_local_finish(&l, err);
out:
    bs_local_fini(&l);
    return rv;
}

static bs_err
run_write(bs_cli *c, write_ctx *w)
{
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    if ((rv = bs_node_secret(n, &w->sk, &c->err)) == BS_OK)
        rv = bs_store_write(n->store, write_one, w, &c->err);
    bs_node_close(n);
    if (rv == BS_OK)
        bs_cli_notify(c, "changed");
    return rv;
}

bs_err
bs_cmd_put(bs_cli *c)
{
    write_ctx w = {0};
    const char *json = c->argv[2], *jid;
    bs_arena a;
    bs_err rv;

    w.coll = c->argv[0];
    w.id = c->argv[1];
    if ((rv = bs_cli_check_coll(c, w.coll)) != BS_OK ||
        (rv = bs_cli_check_id(c, w.id)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    rv = bs_json_fields(json, strlen(json), &a, &jid, &w.fields, &w.nfields,
                        &c->err);
    if (rv == BS_OK && jid != NULL && strcmp(jid, w.id) != 0)
        rv = bs_errf(&c->err, BS_EINVAL,
                     "the JSON's \"id\" differs from ID \"%s\"", w.id);
    if (rv == BS_OK)
        rv = run_write(c, &w);
    bs_arena_fini(&a);
    return rv;
}

bs_err
bs_cmd_del(bs_cli *c)
{
    write_ctx w = {0};
    bs_err rv;

    w.coll = c->argv[0];
    w.id = c->argv[1];
    w.deleted = 1;
    if ((rv = bs_cli_check_coll(c, w.coll)) != BS_OK ||
        (rv = bs_cli_check_id(c, w.id)) != BS_OK)
        return rv;
    return run_write(c, &w);
}

/* Decode the record under (k, v) and print it if live. */
static bs_err
print_record(bs_slice k, bs_slice v, bs_arena *a, int *printed)
{
    const uint8_t *nul = memchr(k.p, '\0', k.n);
    bs_record r;
    char *s;
    bs_err rv;

    *printed = 0;
    if (nul == NULL)
        return BS_ESTORE;
    if ((rv = bs_record_decode(&r, v.p, v.n, a)) != BS_OK)
        return rv;
    if (!r.live)
        return BS_OK;
    s = bs_json_record((const char *)nul + 1, k.n - (size_t)(nul + 1 - k.p),
                       &r);
    if (s == NULL)
        return BS_ENOMEM;
    puts(s);
    free(s);
    *printed = 1;
    return BS_OK;
}

typedef struct reader {
    bs_node *n;
    bs_txn *t;
    bs_arena a;
} reader;

static bs_err
reader_open(bs_cli *c, reader *r)
{
    bs_err rv;

    memset(r, 0, sizeof *r);
    bs_arena_init(&r->a);
    if ((rv = bs_cli_open(c, 1, &r->n)) != BS_OK)
        return rv;
    return bs_store_read(r->n->store, &r->t, &c->err);
}

static void
reader_close(reader *r)
{
    bs_txn_abort(r->t);
    bs_node_close(r->n);
    bs_arena_fini(&r->a);
}

bs_err
bs_cmd_get(bs_cli *c)
{
    const char *coll = c->argv[0], *id = c->argv[1];
    uint8_t key[BS_RECKEY_MAX];
    size_t klen;
    bs_slice v;
    reader r;
    int printed = 0;
    bs_err rv;

    if ((rv = bs_cli_check_coll(c, coll)) != BS_OK ||
        (rv = bs_cli_check_id(c, id)) != BS_OK)
        return rv;
    klen = bs_record_key(key, coll, id);
    if ((rv = reader_open(c, &r)) == BS_OK &&
        (rv = bs_txn_get(r.t, BS_DB_RECORDS, bs_mem(key, klen), &v)) == BS_OK)
        rv = print_record(bs_mem(key, klen), v, &r.a, &printed);
    reader_close(&r);
    if (rv == BS_OK && !printed)
        rv = BS_ENOTFOUND;
    if (rv == BS_ENOTFOUND)
        return bs_errf(&c->err, rv, "%s/%s: not found", coll, id);
    return rv;
}

bs_err
bs_cmd_ls(bs_cli *c)
{
    const char *coll = c->argv[0];
    uint8_t prefix[BS_COLLECTION_MAX + 1];
    size_t plen = strlen(coll) + 1;
    bs_cursor *cur = NULL;
    bs_slice k, v;
    reader r;
    int printed;
    bs_err rv;

    if ((rv = bs_cli_check_coll(c, coll)) != BS_OK)
        return rv;
    memcpy(prefix, coll, plen);
    if ((rv = reader_open(c, &r)) != BS_OK ||
        (rv = bs_cursor_open(r.t, BS_DB_RECORDS, &cur)) != BS_OK)
        goto out;
    for (rv = bs_cursor_seek(cur, bs_mem(prefix, plen), &k, &v);
         rv == BS_OK && k.n >= plen && memcmp(k.p, prefix, plen) == 0;
         rv = bs_cursor_next(cur, &k, &v)) {
        bs_arena_reset(&r.a);
        if ((rv = print_record(k, v, &r.a, &printed)) != BS_OK)
            break;
    }
    if (rv == BS_ENOTFOUND || rv == BS_OK)
        rv = BS_OK;
    if (fflush(stdout) != 0)
        rv = bs_errf(&c->err, BS_EIO, "cannot write output");
out:
    bs_cursor_close(cur);
    reader_close(&r);
    return rv;
}

bs_err
bs_cmd_digest(bs_cli *c)
{
    uint8_t d[BS_HASH_LEN];
    char hex[2 * BS_HASH_LEN + 1];
    uint64_t nrec = 0;
    reader r;
    bs_err rv;

    for (int i = 0; i < c->argc; i++)
        if ((rv = bs_cli_check_coll(c, c->argv[i])) != BS_OK)
            return rv;
    if ((rv = reader_open(c, &r)) == BS_OK)
        rv = bs_digest(r.t, (const char *const *)c->argv, (size_t)c->argc, d,
                       &nrec, &c->err);
    reader_close(&r);
    if (rv != BS_OK)
        return rv;
    bs_hex(hex, d, BS_HASH_LEN);
    if (c->json) {
        json_t *j = json_pack("{s:s, s:I, s:[]}", "digest", hex, "records",
                              (json_int_t)nrec, "collections");
        char *s;
        for (int i = 0; i < c->argc; i++)
            json_array_append_new(json_object_get(j, "collections"),
                                  json_string(c->argv[i]));
        s = json_dumps(j, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
        json_decref(j);
    } else {
        printf("%s\n", hex);
    }
    return BS_OK;
}
