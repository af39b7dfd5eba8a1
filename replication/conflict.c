/*
 * conflict.c - conflict register, stored as JSON objects.
 */
#include "conflict.h"

#include <jansson.h>
#include <string.h>

#include "apply.h"

static json_t *
value_json(const bs_value *v)
{
    if (v == NULL)
        return json_null();
    switch (v->type) {
    case BS_VNULL:
        return json_null();
    case BS_VTRUE:
        return json_true();
    case BS_VFALSE:
        return json_false();
    case BS_VINT:
        return json_integer(v->i);
    case BS_VREAL:
        return json_real(v->d);
    default:
        return json_stringn(v->s, v->len);
    }
}

static json_t *
cand_json(const bs_cand *c)
{
    char id[BS_NODE_ID_LEN + 1];

    bs_node_id_format(c->key, id);
    return json_pack("{s:s, s:I, s:o, s:b}", "origin", id, "hlc",
                     (json_int_t)c->hlc, "value", value_json(c->val), "deleted",
                     c->val == NULL);
}

/* Order-independent ID: hash of what conflicted, both candidates sorted. */
static void
conflict_id(char out[BS_CONFLICT_ID_LEN + 1], const char *coll, const char *id,
            const char *field, const bs_cand *a, const bs_cand *b)
{
    const bs_cand *lo = a, *hi = b;
    bs_hash_state h;
    uint8_t d[BS_HASH_LEN], t[8];
    int c = memcmp(a->key, b->key, BS_PK_LEN);

    if (c > 0 || (c == 0 && a->hlc > b->hlc)) {
        lo = b;
        hi = a;
    }
    bs_hash_init(&h);
    bs_hash_update(&h, coll, strlen(coll) + 1);
    bs_hash_update(&h, id, strlen(id) + 1);
    bs_hash_update(&h, field, strlen(field) + 1);
    bs_hash_update(&h, lo->key, BS_PK_LEN);
    bs_put_u64be(t, lo->hlc);
    bs_hash_update(&h, t, 8);
    bs_hash_update(&h, hi->key, BS_PK_LEN);
    bs_put_u64be(t, hi->hlc);
    bs_hash_update(&h, t, 8);
    bs_hash_final(&h, d);
    bs_hex(out, d, BS_CONFLICT_ID_LEN / 2);
}

/* coll \0 id \0 field \0 [cid]; returns the length. */
static size_t
ckey(uint8_t *buf, const char *coll, const char *id, const char *field,
     const char *cid)
{
    size_t n = 0, l;

    l = strlen(coll) + 1;
    memcpy(buf + n, coll, l);
    n += l;
    l = strlen(id) + 1;
    memcpy(buf + n, id, l);
    n += l;
    l = strlen(field) + 1;
    memcpy(buf + n, field, l);
    n += l;
    if (cid != NULL) {
        memcpy(buf + n, cid, BS_CONFLICT_ID_LEN);
        n += BS_CONFLICT_ID_LEN;
    }
    return n;
}

#define CKEY_MAX                                                               \
    (BS_COLLECTION_MAX + BS_ID_MAX + BS_FIELD_NAME_MAX + 3 + BS_CONFLICT_ID_LEN)

static json_t *
streams_json(const bs_cand *a, const bs_cand *b)
{
    char ka[97], kb[97];

    bs_hex(ka, a->key, 48);
    bs_hex(kb, b->key, 48);
    return json_pack("[s,I,s,I]", ka, (json_int_t)a->seq, kb,
                     (json_int_t)b->seq);
}

bs_err
bs_conflict_add(bs_txn *t, const char *coll, const char *id, const char *field,
                bs_policy policy, const bs_cand *a, const bs_cand *b,
                int winner, uint64_t now_ms)
{
    char cid[BS_CONFLICT_ID_LEN + 1], wid[BS_NODE_ID_LEN + 1];
    uint8_t key[CKEY_MAX];
    size_t klen;
    const bs_cand *w = winner ? b : a;
    json_t *j;
    char *s;
    bs_slice old;
    bs_err rv;

    conflict_id(cid, coll, id, field, a, b);
    klen = ckey(key, coll, id, field, cid);
    if (bs_txn_get(t, BS_DB_CONFLICTS, bs_mem(key, klen), &old) == BS_OK)
        return BS_OK; /* already recorded */
    bs_node_id_format(w->key, wid);
    j = json_pack(
        "{s:s, s:s, s:s, s:s, s:[o,o], s:s, s:o, s:s, s:b, s:I}", "conflict",
        cid, "collection", coll, "id", id, "field", field, "candidates",
        cand_json(a), cand_json(b), "winner", wid, "winner_value",
        value_json(w->val), "policy", bs_policy_name(policy), "resolved",
        policy != BS_POLICY_MANUAL, "detected_ms", (json_int_t)now_ms);
    if (j == NULL)
        return BS_ENOMEM;
    if (policy != BS_POLICY_MANUAL)
        json_object_set_new(j, "resolution", json_string("automatic"));
    json_object_set_new(j, "_streams", streams_json(a, b));
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL)
        return BS_ENOMEM;
    rv = bs_txn_put(t, BS_DB_CONFLICTS, bs_mem(key, klen), bs_str(s), 0, NULL);
    free(s);
    return rv;
}

bs_err
bs_conflict_count(bs_txn *t, uint64_t *open, uint64_t *all)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    *open = *all = 0;
    if ((rv = bs_cursor_open(t, BS_DB_CONFLICTS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        (*all)++;
        /* Cheap test on the stored JSON, written by us. */
        if (memmem(v.p, v.n, "\"resolved\":false", 16) != NULL)
            (*open)++;
    }
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* Find conflict cid by scanning (an admin operation). */
static bs_err
find(bs_txn *t, const char *cid, uint8_t *key, size_t *klen, bs_slice *val)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if (strlen(cid) != BS_CONFLICT_ID_LEN)
        return BS_ENOTFOUND;
    if ((rv = bs_cursor_open(t, BS_DB_CONFLICTS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v))
        if (k.n >= BS_CONFLICT_ID_LEN && k.n <= CKEY_MAX &&
            memcmp(k.p + k.n - BS_CONFLICT_ID_LEN, cid, BS_CONFLICT_ID_LEN) ==
                0) {
            memcpy(key, k.p, k.n);
            *klen = k.n;
            *val = v;
            break;
        }
    bs_cursor_close(c);
    return rv;
}

bs_err
bs_conflict_get(bs_txn *t, const char *cid, char **json)
{
    uint8_t key[CKEY_MAX];
    size_t klen;
    bs_slice v;
    bs_err rv = find(t, cid, key, &klen, &v);

    if (rv != BS_OK)
        return rv;
    if ((*json = malloc(v.n + 1)) == NULL)
        return BS_ENOMEM;
    memcpy(*json, v.p, v.n);
    (*json)[v.n] = '\0';
    return BS_OK;
}

static bs_err
set_resolved(bs_txn *t, const uint8_t *key, size_t klen, bs_slice v,
             const char *how)
{
    json_t *j;
    char *s;
    bs_err rv;

    if ((j = json_loadb((const char *)v.p, v.n, 0, NULL)) == NULL)
        return BS_ESTORE;
    json_object_set_new(j, "resolved", json_true());
    json_object_set_new(j, "resolution", json_string(how));
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL)
        return BS_ENOMEM;
    rv = bs_txn_put(t, BS_DB_CONFLICTS, bs_mem(key, klen), bs_str(s), 0, NULL);
    free(s);
    return rv;
}

bs_err
bs_conflict_mark_resolved(bs_txn *t, const char *cid, const char *how)
{
    uint8_t key[CKEY_MAX];
    size_t klen;
    bs_slice v;
    bs_err rv = find(t, cid, key, &klen, &v);

    if (rv != BS_OK)
        return rv;
    return set_resolved(t, key, klen, v, how);
}

/* 1 when seen covers the stream position given as hex key + seq. */
static int
covers_json(const bs_pos *seen, size_t n, json_t *hexkey, json_t *seq)
{
    uint8_t key[48];
    const char *h = json_string_value(hexkey);

    if (h == NULL || bs_unhex(key, 48, h) != BS_OK || !json_is_integer(seq))
        return 0;
    return bs_pos_covers(seen, n, key, (uint64_t)json_integer_value(seq));
}

bs_err
bs_conflict_supersede(bs_txn *t, const char *coll, const char *id,
                      const char *field, const void *seen_v, size_t nseen)
{
    const bs_pos *seen = seen_v;
    uint8_t prefix[CKEY_MAX], key[CKEY_MAX];
    size_t plen = ckey(prefix, coll, id, field, NULL);
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_CONFLICTS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(c, bs_mem(prefix, plen), &k, &v);
         rv == BS_OK && k.n > plen && memcmp(k.p, prefix, plen) == 0;
         rv = bs_cursor_next(c, &k, &v)) {
        json_t *j, *st;
        int settle;

        if (memmem(v.p, v.n, "\"resolved\":false", 16) == NULL ||
            (j = json_loadb((const char *)v.p, v.n, 0, NULL)) == NULL)
            continue;
        st = json_object_get(j, "_streams");
        settle = covers_json(seen, nseen, json_array_get(st, 0),
                             json_array_get(st, 1)) &&
                 covers_json(seen, nseen, json_array_get(st, 2),
                             json_array_get(st, 3));
        json_decref(j);
        if (!settle)
            continue;
        memcpy(key, k.p, k.n);
        if ((rv = set_resolved(t, key, k.n, v, "superseded by a later edit")) !=
            BS_OK)
            break;
        /* The put may have moved the cursor: find our place again. */
        if ((rv = bs_cursor_seek(c, bs_mem(key, k.n), &k, &v)) != BS_OK)
            break;
    }
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}
