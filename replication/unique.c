/*
 * unique.c - the unique-key index and duplicate conflicts (unique.h).
 */
#include "unique.h"

#include <string.h>

#include "collections.h"
#include "conflict.h"
#include "crypto.h"
#include "hlc.h"
#include "local.h"
#include "records.h"

#define F_PREFIX "uqf:" /* coll -> field */
#define X_PREFIX "uq:"  /* coll \0 H id -> "" */
#define R_PREFIX "uqr:" /* coll \0 id -> H */
#define HLEN     16
#define KEY_MAX  (4 + BS_COLLECTION_MAX + 1 + HLEN + BS_ID_MAX)

/* ---- the rules, cached for the transaction ---- */

typedef struct uq_rule {
    char coll[BS_COLLECTION_MAX + 1];
    char field[BS_FIELD_NAME_MAX + 1];
} uq_rule;

typedef struct uq_cache {
    size_t n;
    uq_rule *v;
} uq_cache;

static void
cache_free(void *p)
{
    uq_cache *c = p;

    if (c != NULL)
        free(c->v);
    free(c);
}

/* The collections indexed now ("uqf:" entries), read once per txn. */
static bs_err
cache_get(bs_txn *t, uq_cache **out)
{
    uq_cache *c = bs_txn_cache(t);
    size_t pl = strlen(F_PREFIX);
    bs_cursor *cur;
    bs_slice k, v;
    bs_err rv;

    if (c != NULL) {
        *out = c;
        return BS_OK;
    }
    if ((c = calloc(1, sizeof *c)) == NULL)
        return BS_ENOMEM;
    if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK) {
        free(c);
        return rv;
    }
    for (rv = bs_cursor_seek(cur, bs_mem(F_PREFIX, pl), &k, &v);
         rv == BS_OK && k.n > pl && memcmp(k.p, F_PREFIX, pl) == 0;
         rv = bs_cursor_next(cur, &k, &v)) {
        uq_rule *nv;

        if (k.n - pl > BS_COLLECTION_MAX || v.n == 0 ||
            v.n > BS_FIELD_NAME_MAX) {
            rv = BS_ESTORE;
            break;
        }
        if ((nv = realloc(c->v, (c->n + 1) * sizeof *nv)) == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        c->v = nv;
        memset(&nv[c->n], 0, sizeof nv[c->n]);
        memcpy(nv[c->n].coll, k.p + pl, k.n - pl);
        memcpy(nv[c->n].field, v.p, v.n);
        c->n++;
    }
    bs_cursor_close(cur);
    if (rv != BS_OK && rv != BS_ENOTFOUND) {
        cache_free(c);
        return rv;
    }
    bs_txn_set_cache(t, c, cache_free);
    *out = c;
    return BS_OK;
}

/* The unique field of coll, or NULL. */
static bs_err
field_of(bs_txn *t, const char *coll, const char **field)
{
    uq_cache *c = NULL;
    bs_err rv;

    *field = NULL;
    if (coll[0] == '_')
        return BS_OK;
    if ((rv = cache_get(t, &c)) != BS_OK)
        return rv;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].coll, coll) == 0) {
            *field = c->v[i].field;
            break;
        }
    return BS_OK;
}

/* ---- keys and values ---- */

/* H(value) into h; 0 when the value is not indexed (null, empty text). */
static int
value_hash(const bs_value *v, uint8_t h[HLEN])
{
    bs_hash_state st;
    uint8_t d[BS_HASH_LEN], b[8];

    if (v == NULL || v->type == BS_VNULL ||
        (v->type == BS_VTEXT && v->len == 0))
        return 0;
    bs_hash_init(&st);
    bs_hash_update(&st, &v->type, 1);
    if (v->type == BS_VTEXT) {
        bs_hash_update(&st, v->s, v->len);
    } else if (v->type == BS_VINT || v->type == BS_VREAL) {
        uint64_t u;
        if (v->type == BS_VINT)
            u = (uint64_t)v->i;
        else
            memcpy(&u, &v->d, 8);
        bs_put_u64be(b, u);
        bs_hash_update(&st, b, 8);
    }
    bs_hash_final(&st, d);
    memcpy(h, d, HLEN);
    return 1;
}

static size_t
put_str(uint8_t *k, size_t n, const char *s, int nul)
{
    size_t l = strlen(s) + (nul ? 1 : 0);

    memcpy(k + n, s, l);
    return n + l;
}

/* "uq:" coll \0 [h [id]] */
static size_t
xkey(uint8_t *k, const char *coll, const uint8_t *h, const char *id)
{
    size_t n = put_str(k, 0, X_PREFIX, 0);

    n = put_str(k, n, coll, 1);
    if (h != NULL) {
        memcpy(k + n, h, HLEN);
        n += HLEN;
        if (id != NULL)
            n = put_str(k, n, id, 0);
    }
    return n;
}

/* "uqr:" coll \0 [id] */
static size_t
rkey(uint8_t *k, const char *coll, const char *id)
{
    size_t n = put_str(k, 0, R_PREFIX, 0);

    n = put_str(k, n, coll, 1);
    return id != NULL ? put_str(k, n, id, 0) : n;
}

/* When a duplicate arose: the later of the two writes' clocks (the core
 * reads no wall clock), so every node records the same time. */
static uint64_t
arose_ms(const bs_cand *a, const bs_cand *b)
{
    return (a->hlc > b->hlc ? a->hlc : b->hlc) >> BS_HLC_LOGICAL_BITS;
}

/* The key field of live record coll/id as a conflict side: *have 0 when
 * the record is not live or the value is not indexed.  Strings borrow
 * from arena a; skey receives the writer's stream key. */
typedef struct keyval {
    int have, live;
    uint8_t h[HLEN];
    uint8_t skey[BS_PK_LEN + BS_INC_LEN];
    bs_value val;
    bs_cand cand;
} keyval;

static bs_err
read_key(bs_txn *t, const char *coll, const char *id, const char *field,
         bs_arena *a, keyval *kv)
{
    uint8_t key[BS_RECKEY_MAX], sk[4];
    size_t klen = bs_record_key(key, coll, id);
    const bs_field *f;
    bs_record r;
    bs_slice v;
    bs_err rv;

    memset(kv, 0, sizeof *kv);
    rv = bs_txn_get(t, BS_DB_RECORDS, bs_mem(key, klen), &v);
    if (rv == BS_ENOTFOUND)
        return BS_OK;
    if (rv != BS_OK)
        return rv;
    if ((v.p = bs_arena_memdup(a, v.p, v.n)) == NULL)
        return BS_ENOMEM;
    if ((rv = bs_record_decode(&r, v.p, v.n, a)) != BS_OK)
        return rv;
    kv->live = r.live;
    if (!r.live || (f = bs_record_find(&r, field, strlen(field))) == NULL ||
        !value_hash(&f->val, kv->h))
        return BS_OK;
    kv->have = 1;
    kv->val = f->val;
    bs_put_u32be(sk, f->ver.stream);
    if (bs_txn_get(t, BS_DB_STREAMS, bs_mem(sk, 4), &v) == BS_OK &&
        v.n >= sizeof kv->skey)
        memcpy(kv->skey, v.p, sizeof kv->skey);
    kv->cand = (bs_cand){kv->skey, f->ver.seq, f->ver.hlc, &kv->val};
    return BS_OK;
}

/* The IDs other than `id` indexed under coll/h: *out malloc'd array of
 * malloc'd strings (free with ids_free). */
typedef struct idlist {
    size_t n;
    char **v;
} idlist;

static void
ids_free(idlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static bs_err
group(bs_txn *t, const char *coll, const uint8_t *h, const char *id,
      idlist *out)
{
    uint8_t prefix[KEY_MAX];
    size_t pl = xkey(prefix, coll, h, NULL), idl = strlen(id);
    bs_cursor *cur;
    bs_slice k, v;
    bs_err rv;

    memset(out, 0, sizeof *out);
    if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(cur, bs_mem(prefix, pl), &k, &v);
         rv == BS_OK && k.n > pl && memcmp(k.p, prefix, pl) == 0;
         rv = bs_cursor_next(cur, &k, &v)) {
        size_t n = k.n - pl;
        char **nv;

        if (n == idl && memcmp(k.p + pl, id, n) == 0)
            continue;
        if (n > BS_ID_MAX) {
            rv = BS_ESTORE;
            break;
        }
        if ((nv = realloc(out->v, (out->n + 1) * sizeof *nv)) == NULL ||
            (nv[out->n] = strndup((const char *)k.p + pl, n)) == NULL) {
            if (nv != NULL)
                out->v = nv;
            rv = BS_ENOMEM;
            break;
        }
        out->v = nv;
        out->n++;
    }
    bs_cursor_close(cur);
    if (rv != BS_OK && rv != BS_ENOTFOUND) {
        ids_free(out);
        return rv;
    }
    return BS_OK;
}

/* ---- keeping the index ---- */

/* Why the duplicates of coll/id settle now that its key entry went. */
static void
settle_reason(bs_txn *t, const char *coll, const char *id, const keyval *kv,
              char *how, size_t cap)
{
    char into[BS_ID_MAX + 1];

    if (kv->live)
        snprintf(how, cap, "settled: the values differ now");
    else if (bs_unique_merged_into(t, coll, id, into) == BS_OK)
        snprintf(how, cap, "merged into %.100s", into);
    else
        snprintf(how, cap, "settled: %.100s was deleted", id);
}

/* Bring coll/id's entry in line with its record (field: coll's key). */
static bs_err
reindex_one(bs_txn *t, const char *coll, const char *field, const char *id)
{
    uint8_t k[KEY_MAX], old[HLEN];
    int have_old = 0;
    bs_arena a;
    keyval now;
    bs_slice v;
    size_t kl;
    bs_err rv;

    bs_arena_init(&a);
    if ((rv = read_key(t, coll, id, field, &a, &now)) != BS_OK)
        goto out;
    kl = rkey(k, coll, id);
    rv = bs_txn_get(t, BS_DB_META, bs_mem(k, kl), &v);
    if (rv == BS_OK && v.n == HLEN) {
        memcpy(old, v.p, HLEN);
        have_old = 1;
    } else if (rv == BS_OK) {
        rv = BS_ESTORE;
        goto out;
    } else if (rv != BS_ENOTFOUND) {
        goto out;
    }
    rv = BS_OK;
    if (have_old && now.have && memcmp(old, now.h, HLEN) == 0)
        goto out; /* the same value: the same duplicates */
    if (have_old) {
        char how[BS_CONFLICT_HOW_MAX + 1];
        idlist others;

        if ((rv = bs_txn_del(t, BS_DB_META, bs_mem(k, kl))) != BS_OK ||
            (rv = bs_txn_del(t, BS_DB_META,
                             bs_mem(k, xkey(k, coll, old, id)))) != BS_OK ||
            (rv = group(t, coll, old, id, &others)) != BS_OK)
            goto out;
        settle_reason(t, coll, id, &now, how, sizeof how);
        for (size_t i = 0; i < others.n && rv == BS_OK; i++)
            rv = bs_conflict_dup_settle(t, coll, field, id, others.v[i], how);
        ids_free(&others);
        if (rv != BS_OK)
            goto out;
    }
    if (now.have) {
        idlist others;

        if ((rv = bs_txn_put(t, BS_DB_META, bs_mem(k, rkey(k, coll, id)),
                             bs_mem(now.h, HLEN), 0, NULL)) != BS_OK ||
            (rv = bs_txn_put(t, BS_DB_META, bs_mem(k, xkey(k, coll, now.h, id)),
                             bs_mem("", 0), 0, NULL)) != BS_OK ||
            (rv = group(t, coll, now.h, id, &others)) != BS_OK)
            goto out;
        for (size_t i = 0; i < others.n && rv == BS_OK; i++) {
            keyval o;

            if ((rv = read_key(t, coll, others.v[i], field, &a, &o)) != BS_OK ||
                !o.have)
                continue; /* (an entry behind its record: fixed when noted) */
            rv =
                bs_conflict_dup_open(t, coll, field, id, &now.cand, others.v[i],
                                     &o.cand, arose_ms(&now.cand, &o.cand));
        }
        ids_free(&others);
    }
out:
    bs_arena_fini(&a);
    return rv;
}

/* Delete every META entry starting with prefix[0..pl). */
static bs_err
wipe(bs_txn *t, const uint8_t *prefix, size_t pl)
{
    bs_cursor *cur;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(cur, bs_mem(prefix, pl), &k, &v);
         rv == BS_OK && k.n >= pl && memcmp(k.p, prefix, pl) == 0;
         rv = bs_cursor_seek(cur, bs_mem(prefix, pl), &k, &v))
        if ((rv = bs_cursor_del(cur)) != BS_OK)
            break;
    bs_cursor_close(cur);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* The rules of collection `name` were written: rebuild its index when its
 * unique field changed. */
static bs_err
rules_changed(bs_txn *t, const char *name)
{
    uint8_t k[KEY_MAX];
    char was[BS_FIELD_NAME_MAX + 1] = "";
    bs_collection c;
    bs_records_iter *it;
    const bs_record *r;
    const char *rid;
    size_t kl, idlen;
    bs_slice v;
    bs_err rv;

    if (!bs_collection_valid(name, 0))
        return BS_OK;
    if ((rv = bs_collections_get(t, name, &c)) != BS_OK)
        return rv;
    kl = put_str(k, put_str(k, 0, F_PREFIX, 0), name, 0);
    rv = bs_txn_get(t, BS_DB_META, bs_mem(k, kl), &v);
    if (rv == BS_OK && v.n > 0 && v.n <= BS_FIELD_NAME_MAX)
        memcpy(was, v.p, v.n);
    else if (rv != BS_ENOTFOUND)
        return rv == BS_OK ? BS_ESTORE : rv;
    if (strcmp(was, c.unique) == 0)
        return BS_OK;
    bs_txn_set_cache(t, NULL, NULL); /* read the rules again */
    if ((rv = wipe(t, k, xkey(k, name, NULL, NULL))) != BS_OK ||
        (rv = wipe(t, k, rkey(k, name, NULL))) != BS_OK ||
        (rv = bs_conflict_dup_settle_all(
             t, name, "settled: the unique rule changed")) != BS_OK)
        return rv;
    kl = put_str(k, put_str(k, 0, F_PREFIX, 0), name, 0);
    if (c.unique[0] == '\0')
        return bs_txn_del(t, BS_DB_META, bs_mem(k, kl));
    if ((rv = bs_txn_put(t, BS_DB_META, bs_mem(k, kl),
                         bs_mem(c.unique, strlen(c.unique)), 0, NULL)) != BS_OK)
        return rv;
    /* Index what is there; duplicates among it open as they are found. */
    if ((rv = bs_records_iter_open(t, name, NULL, NULL, &it)) != BS_OK)
        return rv;
    while ((rv = bs_records_iter_next(it, &rid, &idlen, &r, NULL)) == BS_OK) {
        char id[BS_ID_MAX + 1];

        (void)r;
        if (idlen > BS_ID_MAX) {
            rv = BS_ESTORE;
            break;
        }
        memcpy(id, rid, idlen);
        id[idlen] = '\0';
        if ((rv = reindex_one(t, name, c.unique, id)) != BS_OK)
            break;
    }
    bs_records_iter_close(it);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_unique_note(bs_txn *t, const char *coll, const char *id)
{
    const char *field;
    bs_err rv;

    if (coll[0] == '_') {
        if (strcmp(coll, BS_SYS_COLLECTIONS) == 0)
            return rules_changed(t, id);
        return BS_OK;
    }
    if ((rv = field_of(t, coll, &field)) != BS_OK || field == NULL)
        return rv;
    return reindex_one(t, coll, field, id);
}

/* ---- local writes ---- */

bs_err
bs_unique_check(bs_txn *t, const char *coll, const char *id, const bs_field *f,
                size_t n, bs_errbuf *err)
{
    const char *field;
    uint8_t h[HLEN];
    idlist others;
    bs_err rv;

    if ((rv = field_of(t, coll, &field)) != BS_OK || field == NULL)
        return rv;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(f[i].name, field) != 0)
            continue;
        if (!value_hash(&f[i].val, h))
            return BS_OK;
        if ((rv = group(t, coll, h, id, &others)) != BS_OK)
            return rv;
        if (others.n > 0) {
            const bs_value *v = &f[i].val;
            if (v->type == BS_VTEXT)
                rv = bs_errf(err, BS_EEXIST,
                             "%s/%s: %s \"%.*s\" is already the key of %s/%s "
                             "(collection %s --unique %s): merge the records "
                             "(branchsync merge %s KEEP OTHER) or write with "
                             "--force",
                             coll, id, field, (int)(v->len > 80 ? 80 : v->len),
                             v->s, coll, others.v[0], coll, field, coll);
            else
                rv = bs_errf(err, BS_EEXIST,
                             "%s/%s: the value of %s is already the key of "
                             "%s/%s (collection %s --unique %s): merge the "
                             "records (branchsync merge %s KEEP OTHER) or "
                             "write with --force",
                             coll, id, field, coll, others.v[0], coll, field,
                             coll);
        }
        ids_free(&others);
        return rv;
    }
    return BS_OK;
}

/* ---- merging two records ---- */

typedef struct merge_ctx {
    const bs_core *c;
    const char *coll, *keep, *other;
} merge_ctx;

static bs_err
pointer_id(char *out, const char *coll, const char *other, bs_errbuf *err)
{
    if (strlen(coll) + 1 + strlen(other) > BS_ID_MAX)
        return bs_errf(err, BS_EINVAL,
                       "%s/%s: the ID is too long to record the merge (%d "
                       "bytes with the collection's name at most)",
                       coll, other, BS_ID_MAX);
    {
        size_t cl = strlen(coll), ol = strlen(other);
        memcpy(out, coll, cl);
        out[cl] = '/';
        memcpy(out + cl + 1, other, ol + 1);
    }
    return BS_OK;
}

static bs_err
merge_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    merge_ctx *m = arg;
    char pid[BS_ID_MAX + 1];
    bs_field f[3];
    bs_record r;
    bs_arena a;
    bs_local l;
    bs_err rv;

    if ((rv = pointer_id(pid, m->coll, m->other, err)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    rv = bs_records_get(t, m->coll, m->keep, &a, &r, err);
    if (rv == BS_OK)
        rv = bs_records_get(t, m->coll, m->other, &a, &r, err);
    bs_arena_fini(&a);
    if (rv != BS_OK)
        return rv;
    /* in name order, as a write takes them */
    f[0] = bs_field_text("collection", m->coll);
    f[1] = bs_field_text("into", m->keep);
    f[2] = bs_field_text("record", m->other);
    if ((rv = bs_local_begin(&l, t, m->c, err)) == BS_OK &&
        (rv = bs_local_put(&l, BS_MERGES_COLLECTION, pid, f, 3, err)) ==
            BS_OK &&
        (rv = bs_local_del(&l, m->coll, m->other, err)) == BS_OK)
        rv = bs_local_finish(&l, err);
    bs_local_fini(&l);
    return rv;
}

bs_err
bs_unique_merge(const bs_core *c, const char *coll, const char *keep,
                const char *other, bs_errbuf *err)
{
    merge_ctx m = {c, coll, keep, other};
    bs_err rv;

    if ((rv = bs_records_check_coll(coll, err)) != BS_OK ||
        (rv = bs_records_check_id(keep, err)) != BS_OK ||
        (rv = bs_records_check_id(other, err)) != BS_OK)
        return rv;
    if (strcmp(coll, BS_MERGES_COLLECTION) == 0)
        return bs_errf(err, BS_EINVAL, "%s holds merges; it has none itself",
                       coll);
    if (strcmp(keep, other) == 0)
        return bs_errf(err, BS_EINVAL,
                       "merge %s %s %s: a record cannot be merged into itself",
                       coll, keep, other);
    return bs_store_write(c->store, merge_txn, &m, err);
}

bs_err
bs_unique_merged_into(bs_txn *t, const char *coll, const char *other,
                      char *into)
{
    char pid[BS_ID_MAX + 1];
    const bs_value *v;
    bs_record r;
    bs_arena a;
    bs_err rv;

    if (pointer_id(pid, coll, other, NULL) != BS_OK)
        return BS_ENOTFOUND;
    bs_arena_init(&a);
    rv = bs_records_get(t, BS_MERGES_COLLECTION, pid, &a, &r, NULL);
    if (rv == BS_OK) {
        v = bs_record_field(&r, "into");
        if (v != NULL && v->type == BS_VTEXT && v->len <= BS_ID_MAX) {
            memcpy(into, v->s, v->len);
            into[v->len] = '\0';
        } else {
            rv = BS_ENOTFOUND;
        }
    }
    bs_arena_fini(&a);
    return rv;
}
