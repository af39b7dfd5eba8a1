/*
 * xlog.c - exchange history.
 */
#include "xlog.h"

#include <jansson.h>
#include <string.h>

#include "peers.h"

static bs_err
prune(bs_txn *t)
{
    uint64_t n;
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_txn_count(t, BS_DB_XLOG, &n)) != BS_OK || n <= BS_XLOG_MAX)
        return rv;
    if ((rv = bs_cursor_open(t, BS_DB_XLOG, &c)) != BS_OK)
        return rv;
    while (n-- > BS_XLOG_MAX && (rv = bs_cursor_first(c, &k, &v)) == BS_OK)
        if ((rv = bs_cursor_del(c)) != BS_OK)
            break;
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
note_peer(bs_txn *t, const bs_xlog_entry *e)
{
    bs_peer p;
    bs_err rv = bs_peer_get(t, e->peer, &p);

    if (rv == BS_ENOTFOUND)
        return BS_OK;
    if (rv != BS_OK)
        return rv;
    if (e->error && e->error[0]) {
        p.last_err_ms = e->time_ms;
        snprintf(p.last_error, sizeof p.last_error, "%s", e->error);
    } else {
        p.last_ok_ms = e->time_ms;
        p.last_error[0] = '\0';
        p.sent_changes += e->sets_sent;
    }
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    return rv;
}

bs_err
bs_xlog_add(bs_txn *t, const bs_xlog_entry *e)
{
    uint8_t key[12];
    uint64_t n = 0;
    json_t *j;
    char *s;
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    /* Keys grow: time, then one more than the newest entry's counter. */
    if ((rv = bs_cursor_open(t, BS_DB_XLOG, &c)) != BS_OK)
        return rv;
    if (bs_cursor_last(c, &k, &v) == BS_OK && k.n == 12)
        n = bs_get_u32be(k.p + 8) + 1u;
    bs_cursor_close(c);
    bs_put_u64be(key, e->time_ms);
    bs_put_u32be(key + 8, (uint32_t)n);
    j = json_pack(
        "{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "time_ms",
        (json_int_t)e->time_ms, "peer", e->peer, "via", e->via, "direction",
        e->direction, "sets_sent", (json_int_t)e->sets_sent, "sets_received",
        (json_int_t)e->sets_received, "changes", (json_int_t)e->changes,
        "conflicts", (json_int_t)e->conflicts, "bytes", (json_int_t)e->bytes,
        "duration_ms", (json_int_t)e->duration_ms, "result",
        e->error && e->error[0] ? e->error : "ok");
    if (j == NULL)
        return BS_ENOMEM;
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL)
        return BS_ENOMEM;
    rv = bs_txn_put(t, BS_DB_XLOG, bs_mem(key, 12), bs_str(s), 0, NULL);
    free(s);
    if (rv == BS_OK)
        rv = note_peer(t, e);
    if (rv == BS_OK)
        rv = prune(t);
    return rv;
}

bs_err
bs_xlog_list(bs_txn *t, const char *peer, size_t limit, char **out)
{
    json_t *arr = json_array();
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_XLOG, &c)) != BS_OK) {
        json_decref(arr);
        return rv;
    }
    /* Newest first while collecting, then reversed. */
    for (rv = bs_cursor_last(c, &k, &v);
         rv == BS_OK && json_array_size(arr) < limit;
         rv = bs_cursor_prev(c, &k, &v)) {
        json_t *j = json_loadb((const char *)v.p, v.n, 0, NULL);
        if (j == NULL)
            continue;
        if (peer &&
            strcmp(json_string_value(json_object_get(j, "peer")), peer) != 0) {
            json_decref(j);
            continue;
        }
        json_array_insert_new(arr, 0, j);
    }
    bs_cursor_close(c);
    if (rv != BS_OK && rv != BS_ENOTFOUND) {
        json_decref(arr);
        return rv;
    }
    *out = json_dumps(arr, JSON_INDENT(2));
    json_decref(arr);
    return *out ? BS_OK : BS_ENOMEM;
}
