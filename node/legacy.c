/*
 * legacy.c - format-2 JSON documents read with jansson.
 */
#include "legacy.h"

#include <jansson.h>
#include <string.h>

static const char *
str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "";
}

static uint64_t
u64(json_t *o, const char *key)
{
    return (uint64_t)json_integer_value(json_object_get(o, key));
}

static bs_err
vec(json_t *o, bs_pos **out, size_t *n)
{
    const char *key;
    json_t *val;
    size_t k = 0;
    bs_pos *v = calloc(json_object_size(o) + 1, sizeof *v);

    if (v == NULL)
        return BS_ENOMEM;
    json_object_foreach(o, key, val)
    {
        uint8_t sk[BS_STREAM_KEY_LEN];
        if (strlen(key) != 2 * BS_STREAM_KEY_LEN || !json_is_integer(val) ||
            bs_unhex(sk, BS_STREAM_KEY_LEN, key) != BS_OK) {
            free(v);
            return BS_ESTORE;
        }
        memcpy(v[k].origin, sk, BS_PK_LEN);
        memcpy(v[k].inc, sk + BS_PK_LEN, BS_INC_LEN);
        v[k++].seq = (uint64_t)json_integer_value(val);
    }
    *out = v;
    *n = k;
    return BS_OK;
}

static bs_err
peer(void *ctx, bs_slice json, bs_peer *p)
{
    json_t *o = json_loadb((const char *)json.p, json.n, 0, NULL);
    const char *inc;
    bs_err rv = BS_ESTORE;

    (void)ctx;
    memset(p, 0, sizeof *p);
    if (o == NULL)
        return BS_ESTORE;
    snprintf(p->name, sizeof p->name, "%s", str(o, "name"));
    snprintf(p->endpoint, sizeof p->endpoint, "%s", str(o, "endpoint"));
    snprintf(p->schedule, sizeof p->schedule, "%s", str(o, "schedule"));
    snprintf(p->window, sizeof p->window, "%s", str(o, "window"));
    snprintf(p->last_error, sizeof p->last_error, "%s", str(o, "last_error"));
    p->sent_no = u64(o, "sent_no");
    p->recv_no = u64(o, "recv_no");
    p->acked_no = u64(o, "acked_no");
    p->last_ok_ms = u64(o, "last_ok_ms");
    p->last_err_ms = u64(o, "last_err_ms");
    p->created_ms = u64(o, "created_ms");
    p->sent_changes = u64(o, "sent_changes");
    p->recv_changes = u64(o, "recv_changes");
    inc = str(o, "peer_inc");
    if (bs_unhex(p->pk, BS_PK_LEN, str(o, "pk")) != BS_OK)
        goto out;
    if (*inc) {
        if (bs_unhex(p->peer_inc, BS_INC_LEN, inc) != BS_OK)
            goto out;
        p->has_inc = 1;
    }
    if (json_object_get(o, "acked"))
        rv = vec(json_object_get(o, "acked"), &p->acked, &p->nacked);
    else
        rv = (p->acked = calloc(1, sizeof *p->acked)) ? BS_OK : BS_ENOMEM;
out:
    json_decref(o);
    return rv;
}

/* A candidate's value: text is malloc'd (the conflict owns it). */
static bs_err
value(json_t *j, bs_value *v)
{
    memset(v, 0, sizeof *v);
    if (json_is_string(j)) {
        size_t n = json_string_length(j);
        char *s = malloc(n + 1);
        if (s == NULL)
            return BS_ENOMEM;
        memcpy(s, json_string_value(j), n + 1);
        v->type = BS_VTEXT;
        v->s = s;
        v->len = (uint32_t)n;
    } else if (json_is_integer(j)) {
        v->type = BS_VINT;
        v->i = (int64_t)json_integer_value(j);
    } else if (json_is_real(j)) {
        v->type = BS_VREAL;
        v->d = json_real_value(j);
    } else if (json_is_boolean(j)) {
        v->type = json_is_true(j) ? BS_VTRUE : BS_VFALSE;
    } else {
        v->type = BS_VNULL;
    }
    return BS_OK;
}

static bs_err
copy_field(char *dst, size_t cap, json_t *o, const char *key)
{
    const char *s = str(o, key);

    if (strlen(s) >= cap)
        return BS_ESTORE;
    memcpy(dst, s, strlen(s) + 1);
    return BS_OK;
}

static bs_err
conflict(void *ctx, bs_slice json, bs_conflict *c)
{
    json_t *o = json_loadb((const char *)json.p, json.n, 0, NULL);
    json_t *cands = json_object_get(o, "candidates");
    json_t *st = json_object_get(o, "_streams");
    bs_err rv = BS_ESTORE;

    (void)ctx;
    memset(c, 0, sizeof *c);
    if (o == NULL || json_array_size(cands) != 2 || json_array_size(st) != 4 ||
        copy_field(c->id, sizeof c->id, o, "conflict") != BS_OK ||
        strlen(c->id) != BS_CONFLICT_ID_LEN ||
        copy_field(c->coll, sizeof c->coll, o, "collection") != BS_OK ||
        copy_field(c->rid, sizeof c->rid, o, "id") != BS_OK ||
        copy_field(c->field, sizeof c->field, o, "field") != BS_OK ||
        bs_policy_parse(str(o, "policy"), &c->policy) != BS_OK)
        goto out;
    c->resolved = json_is_true(json_object_get(o, "resolved"));
    snprintf(c->resolution, sizeof c->resolution, "%s", str(o, "resolution"));
    c->detected_ms = u64(o, "detected_ms");
    for (int i = 0; i < 2; i++) {
        json_t *x = json_array_get(cands, (size_t)i);
        uint8_t pk[BS_PK_LEN];
        const char *hex = json_string_value(json_array_get(st, 2 * (size_t)i));
        if (hex == NULL ||
            bs_unhex(c->side[i].key, BS_STREAM_KEY_LEN, hex) != BS_OK ||
            bs_node_id_parse(str(x, "origin"), pk) != BS_OK ||
            memcmp(pk, c->side[i].key, BS_PK_LEN) != 0)
            goto out;
        c->side[i].seq =
            (uint64_t)json_integer_value(json_array_get(st, 2 * (size_t)i + 1));
        c->side[i].hlc = u64(x, "hlc");
        c->side[i].deleted = json_is_true(json_object_get(x, "deleted"));
        if (!c->side[i].deleted &&
            (rv = value(json_object_get(x, "value"), &c->side[i].val)) != BS_OK)
            goto out;
        rv = BS_ESTORE;
        if (strcmp(str(x, "origin"), str(o, "winner")) == 0)
            c->winner = i; /* the last match: b, as recorded when equal */
    }
    rv = BS_OK;
out:
    json_decref(o);
    if (rv != BS_OK)
        bs_conflict_fini(c);
    return rv;
}

static bs_err
exchange(void *ctx, bs_slice json, bs_xlog_entry *e)
{
    json_t *o = json_loadb((const char *)json.p, json.n, 0, NULL);
    const char *result;

    (void)ctx;
    memset(e, 0, sizeof *e);
    if (o == NULL)
        return BS_ESTORE;
    e->time_ms = u64(o, "time_ms");
    e->duration_ms = u64(o, "duration_ms");
    snprintf(e->peer, sizeof e->peer, "%s", str(o, "peer"));
    snprintf(e->via, sizeof e->via, "%s", str(o, "via"));
    snprintf(e->direction, sizeof e->direction, "%s", str(o, "direction"));
    e->sets_sent = u64(o, "sets_sent");
    e->sets_received = u64(o, "sets_received");
    e->changes = u64(o, "changes");
    e->conflicts = u64(o, "conflicts");
    e->bytes = u64(o, "bytes");
    result = str(o, "result");
    if (strcmp(result, "ok") != 0)
        snprintf(e->error, sizeof e->error, "%s", result);
    json_decref(o);
    return BS_OK;
}

const bs_legacy bs_legacy_v2 = {peer, conflict, exchange, NULL};
