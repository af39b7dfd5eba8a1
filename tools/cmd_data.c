/*
 * cmd_data.c - put, get, del, ls and digest.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../replication/digest.h"
#include "../replication/json.h"
#include "../replication/unique.h"
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

/* The most put reads from stdin or a file: one record's JSON (README
 * "Limits") and a BOM. */
#define PUT_INPUT_MAX (BS_RECORD_JSON_MAX + 3u)

/* Read all of fd into *out (malloc'd, NUL-terminated), refusing more than
 * PUT_INPUT_MAX bytes; `name` names the input in messages. */
static bs_err
read_all(bs_cli *c, int fd, const char *name, char **out, size_t *len)
{
    size_t n = 0, cap = 0;
    char *buf = NULL, *nb;
    ssize_t r;

    for (;;) {
        if (cap - n < 2) { /* room for a byte and the NUL */
            cap = cap ? 2 * cap : 1 << 16;
            if ((nb = realloc(buf, cap)) == NULL) {
                free(buf);
                return BS_ENOMEM;
            }
            buf = nb;
        }
        if ((r = read(fd, buf + n, cap - n - 1)) == 0)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (n += (size_t)r) > PUT_INPUT_MAX) {
            free(buf);
            return r < 0 ? bs_errf(&c->err, BS_EIO, "cannot read %s: %s", name,
                                   strerror(errno))
                         : bs_errf(&c->err, BS_EINVAL,
                                   "the JSON in %s is over %u MiB, the "
                                   "most one record may take",
                                   name, BS_RECORD_JSON_MAX >> 20);
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return BS_OK;
}

/*
 * put's JSON argument: the text itself, "-" for stdin or "@FILE" for a
 * file's contents (*held is then the malloc'd copy to free).  A UTF-8 BOM
 * at the start of a file or stdin is skipped, as load does.
 */
static bs_err
put_input(bs_cli *c, const char *arg, const char **json, size_t *len,
          char **held)
{
    const char *name = arg[0] == '@' ? arg + 1 : "stdin";
    struct stat st;
    int fd = 0;
    bs_err rv;

    *held = NULL;
    if (strcmp(arg, "-") != 0 && arg[0] != '@') {
        *json = arg;
        *len = strlen(arg);
        return BS_OK;
    }
    if (strcmp(arg, "@") == 0)
        return bs_errf(&c->err, BS_EUSAGE,
                       "@FILE: give the file after the @ (or - for stdin)");
    if (arg[0] == '@' && (fd = open(name, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return bs_errf(&c->err, BS_ENOTFOUND, "%s: no such file", name);
        return bs_errf(&c->err, BS_EIO, "%s: %s", name, strerror(errno));
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        rv = bs_errf(&c->err, BS_EINVAL, "%s: is a directory", name);
    else
        rv = read_all(c, fd, name, held, len);
    if (fd != 0)
        close(fd);
    if (rv != BS_OK)
        return rv;
    *json = *held;
    if (*len >= 3 && memcmp(*json, "\xef\xbb\xbf", 3) == 0) {
        *json += 3;
        *len -= 3;
    }
    return BS_OK;
}

bs_err
bs_cmd_put(bs_cli *c)
{
    bs_write w = {c->argv[0], c->argv[1], 0, NULL, 0};
    const char *json = NULL, *jid;
    char *held = NULL;
    size_t len = 0;
    bs_arena a;
    bs_err rv;

    if ((rv = bs_records_check_coll(w.coll, &c->err)) != BS_OK ||
        (rv = bs_records_check_id(w.id, &c->err)) != BS_OK ||
        (rv = put_input(c, c->argv[2], &json, &len, &held)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    rv = bs_json_fields(json, len, &a, &jid, &w.fields, &w.nfields, &c->err);
    if (rv == BS_OK && jid != NULL && strcmp(jid, w.id) != 0)
        rv = bs_errf(&c->err, BS_EINVAL,
                     "the JSON's \"id\" differs from ID \"%s\"", w.id);
    w.flags = c->force ? BS_WRITE_FORCE : 0;
    if (rv == BS_OK)
        rv = write_one(c, &w);
    bs_arena_fini(&a);
    free(held);
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
        char into[BS_ID_MAX + 1];

        if ((rv = bs_records_get(t, coll, id, &a, &r, &c->err)) == BS_OK)
            rv = bs_out_record(id, strlen(id), &r);
        else if (rv == BS_ENOTFOUND &&
                 bs_unique_merged_into(t, coll, id, into) == BS_OK)
            rv = bs_errf(&c->err, BS_ENOTFOUND,
                         "%s/%s: not found (merged into %s/%s)", coll, id, coll,
                         into);
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
