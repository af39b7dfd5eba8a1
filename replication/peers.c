/*
 * peers.c - peer records as JSON in BS_DB_PEERS.
 */
#include "peers.h"

#include <jansson.h>
#include <string.h>

int
bs_endpoint_valid(const char *s)
{
    const char *colon;
    char *end;
    long port;

    if (strlen(s) > BS_ENDPOINT_MAX)
        return 0;
    if (strncmp(s, "ipc://", 6) == 0)
        return s[6] != '\0';
    if (strncmp(s, "tcp://", 6) != 0 || (colon = strrchr(s + 6, ':')) == NULL ||
        colon == s + 6)
        return 0;
    port = strtol(colon + 1, &end, 10);
    return *end == '\0' && port > 0 && port < 65536 && colon[1] != '\0';
}

static json_t *
vec_json(const bs_pos *v, size_t n)
{
    json_t *o = json_object();
    char key[2 * (BS_PK_LEN + BS_INC_LEN) + 1];

    for (size_t i = 0; i < n; i++) {
        bs_hex(key, v[i].origin, BS_PK_LEN);
        bs_hex(key + 2 * BS_PK_LEN, v[i].inc, BS_INC_LEN);
        json_object_set_new(o, key, json_integer((json_int_t)v[i].seq));
    }
    return o;
}

static bs_err
vec_from_json(json_t *o, bs_pos **out, size_t *n)
{
    const char *key;
    json_t *val;
    size_t k = 0;
    bs_pos *v = calloc(json_object_size(o) + 1, sizeof *v);

    if (v == NULL)
        return BS_ENOMEM;
    json_object_foreach(o, key, val)
    {
        if (strlen(key) != 2 * (BS_PK_LEN + BS_INC_LEN) ||
            !json_is_integer(val)) {
            free(v);
            return BS_ESTORE;
        }
        char pk[2 * BS_PK_LEN + 1];
        memcpy(pk, key, 2 * BS_PK_LEN);
        pk[2 * BS_PK_LEN] = '\0';
        if (bs_unhex(v[k].origin, BS_PK_LEN, pk) != BS_OK ||
            bs_unhex(v[k].inc, BS_INC_LEN, key + 2 * BS_PK_LEN) != BS_OK) {
            free(v);
            return BS_ESTORE;
        }
        v[k++].seq = (uint64_t)json_integer_value(val);
    }
    *out = v;
    *n = k;
    return BS_OK;
}

static void
copy_str(char *dst, size_t n, json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    snprintf(dst, n, "%s", s ? s : "");
}

static uint64_t
get_u64(json_t *o, const char *key)
{
    return (uint64_t)json_integer_value(json_object_get(o, key));
}

static bs_err
decode(bs_slice v, bs_peer *p)
{
    json_t *o = json_loadb((const char *)v.p, v.n, 0, NULL);
    const char *pk, *inc;
    bs_err rv = BS_ESTORE;

    memset(p, 0, sizeof *p);
    if (o == NULL)
        return BS_ESTORE;
    copy_str(p->name, sizeof p->name, o, "name");
    copy_str(p->endpoint, sizeof p->endpoint, o, "endpoint");
    copy_str(p->schedule, sizeof p->schedule, o, "schedule");
    copy_str(p->window, sizeof p->window, o, "window");
    copy_str(p->last_error, sizeof p->last_error, o, "last_error");
    p->sent_no = get_u64(o, "sent_no");
    p->recv_no = get_u64(o, "recv_no");
    p->acked_no = get_u64(o, "acked_no");
    p->last_ok_ms = get_u64(o, "last_ok_ms");
    p->last_err_ms = get_u64(o, "last_err_ms");
    p->created_ms = get_u64(o, "created_ms");
    p->sent_changes = get_u64(o, "sent_changes");
    p->recv_changes = get_u64(o, "recv_changes");
    pk = json_string_value(json_object_get(o, "pk"));
    inc = json_string_value(json_object_get(o, "peer_inc"));
    if (pk == NULL || bs_unhex(p->pk, BS_PK_LEN, pk) != BS_OK)
        goto out;
    if (inc != NULL && *inc) {
        if (bs_unhex(p->peer_inc, BS_INC_LEN, inc) != BS_OK)
            goto out;
        p->has_inc = 1;
    }
    rv = vec_from_json(json_object_get(o, "acked") ? json_object_get(o, "acked")
                                                   : json_object(),
                       &p->acked, &p->nacked);
out:
    json_decref(o);
    return rv;
}

bs_err
bs_peer_get(bs_txn *t, const char *name, bs_peer *p)
{
    bs_slice v;
    bs_err rv = bs_txn_get(t, BS_DB_PEERS, bs_str(name), &v);

    if (rv != BS_OK)
        return rv;
    return decode(v, p);
}

bs_err
bs_peer_put(bs_txn *t, const bs_peer *p)
{
    char pk[2 * BS_PK_LEN + 1], inc[2 * BS_INC_LEN + 1] = "";
    json_t *o;
    char *s;
    bs_err rv;

    bs_hex(pk, p->pk, BS_PK_LEN);
    if (p->has_inc)
        bs_hex(inc, p->peer_inc, BS_INC_LEN);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:I, "
                  "s:I, s:s, s:I, s:I}",
                  "name", p->name, "endpoint", p->endpoint, "pk", pk,
                  "schedule", p->schedule, "window", p->window, "peer_inc", inc,
                  "acked", vec_json(p->acked, p->nacked), "sent_no",
                  (json_int_t)p->sent_no, "recv_no", (json_int_t)p->recv_no,
                  "last_ok_ms", (json_int_t)p->last_ok_ms, "last_err_ms",
                  (json_int_t)p->last_err_ms, "created_ms",
                  (json_int_t)p->created_ms, "last_error", p->last_error,
                  "sent_changes", (json_int_t)p->sent_changes, "recv_changes",
                  (json_int_t)p->recv_changes);
    if (o == NULL)
        return BS_ENOMEM;
    json_object_set_new(o, "acked_no", json_integer((json_int_t)p->acked_no));
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        return BS_ENOMEM;
    rv = bs_txn_put(t, BS_DB_PEERS, bs_str(p->name), bs_str(s), 0, NULL);
    free(s);
    return rv;
}

bs_err
bs_peer_del(bs_txn *t, const char *name)
{
    return bs_txn_del(t, BS_DB_PEERS, bs_str(name));
}

bs_err
bs_peer_list(bs_txn *t, bs_peer **out, size_t *n)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_peer *list = NULL;
    size_t cnt = 0;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_PEERS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        bs_peer *nl = realloc(list, (cnt + 1) * sizeof *nl);
        if (nl == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        list = nl;
        if ((rv = decode(v, &list[cnt])) != BS_OK)
            break;
        cnt++;
    }
    bs_cursor_close(c);
    if (rv != BS_ENOTFOUND) {
        bs_peer_list_free(list, cnt);
        return rv;
    }
    *out = list;
    *n = cnt;
    return BS_OK;
}

bs_err
bs_peer_find_pk(bs_txn *t, const uint8_t pk[BS_PK_LEN], bs_peer *p)
{
    bs_peer *list;
    size_t n;
    bs_err rv = bs_peer_list(t, &list, &n);

    if (rv != BS_OK)
        return rv;
    rv = BS_ENOTFOUND;
    for (size_t i = 0; i < n; i++) {
        if (rv == BS_ENOTFOUND && memcmp(list[i].pk, pk, BS_PK_LEN) == 0) {
            *p = list[i];
            rv = BS_OK;
        } else {
            bs_peer_fini(&list[i]);
        }
    }
    free(list);
    return rv;
}

void
bs_peer_fini(bs_peer *p)
{
    free(p->acked);
    p->acked = NULL;
    p->nacked = 0;
}

void
bs_peer_list_free(bs_peer *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bs_peer_fini(&v[i]);
    free(v);
}

uint64_t
bs_peer_acked(const bs_peer *p, const uint8_t *key)
{
    for (size_t i = 0; i < p->nacked; i++)
        if (memcmp(p->acked[i].origin, key, BS_PK_LEN) == 0 &&
            memcmp(p->acked[i].inc, key + BS_PK_LEN, BS_INC_LEN) == 0)
            return p->acked[i].seq;
    return 0;
}
