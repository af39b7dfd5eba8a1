/*
 * conflict.c - the conflict register (ConflictEntry records).
 */
#include "conflict.h"

#include <string.h>

#include "meta.h"
#include "pbvalue.h"
#include "storage.pb-c.h"

#define FLAG_OPEN 1u
#define CKEY_MAX                                                               \
    (BS_COLLECTION_MAX + BS_ID_MAX + BS_FIELD_NAME_MAX + 3 + BS_CONFLICT_ID_LEN)
#define META_OPEN "conflicts.open"
#define META_ALL  "conflicts.all"

/* ---- keys and IDs ---- */

/* 1 when candidate a sorts after b: by origin key, then hlc. */
static int
cand_after(const bs_cand *a, const bs_cand *b)
{
    int c = memcmp(a->key, b->key, BS_PK_LEN);

    return c > 0 || (c == 0 && a->hlc > b->hlc);
}

/* Order-independent ID: hash of what conflicted, both candidates sorted
 * (docs/protocol.md 5.4). */
static void
conflict_id(char out[BS_CONFLICT_ID_LEN + 1], const char *coll, const char *id,
            const char *field, const bs_cand *a, const bs_cand *b)
{
    const bs_cand *lo = a, *hi = b;
    bs_hash_state h;
    uint8_t d[BS_HASH_LEN], t[8];

    if (cand_after(a, b)) {
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

/* ---- counts ---- */

static bs_err
count_add(bs_txn *t, int64_t open, int64_t all)
{
    uint64_t o, a;
    bs_err rv;

    if ((rv = bs_meta_get_u64(t, META_OPEN, &o)) != BS_OK ||
        (rv = bs_meta_get_u64(t, META_ALL, &a)) != BS_OK)
        return rv;
    o = open < 0 && o < (uint64_t)-open ? 0 : o + (uint64_t)open;
    a += (uint64_t)all;
    if ((rv = bs_meta_put_u64(t, META_OPEN, o)) != BS_OK)
        return rv;
    return all ? bs_meta_put_u64(t, META_ALL, a) : BS_OK;
}

bs_err
bs_conflict_count(bs_txn *t, uint64_t *open, uint64_t *all)
{
    uint64_t o, a;
    bs_err rv;

    if ((rv = bs_meta_get_u64(t, META_OPEN, &o)) != BS_OK ||
        (rv = bs_meta_get_u64(t, META_ALL, &a)) != BS_OK)
        return rv;
    if (open)
        *open = o;
    if (all)
        *all = a;
    return BS_OK;
}

/* ---- encoding ---- */

static ProtobufCBinaryData
bin(const void *p, size_t n)
{
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

/* The value of a stored candidate; text is malloc'd into *text. */
static bs_err
value_from_pb(const Bs__Value *pv, bs_value *v, char **text)
{
    memset(v, 0, sizeof *v);
    *text = NULL;
    if (pv == NULL)
        return BS_OK; /* null */
    switch (pv->kind_case) {
    case BS__VALUE__KIND_BOOLEAN:
        v->type = pv->boolean ? BS_VTRUE : BS_VFALSE;
        break;
    case BS__VALUE__KIND_INTEGER:
        v->type = BS_VINT;
        v->i = pv->integer;
        break;
    case BS__VALUE__KIND_REAL:
        v->type = BS_VREAL;
        v->d = pv->real;
        break;
    case BS__VALUE__KIND_TEXT:
        if ((*text = strdup(pv->text)) == NULL)
            return BS_ENOMEM;
        v->type = BS_VTEXT;
        v->s = *text;
        v->len = (uint32_t)strlen(pv->text);
        break;
    default:
        v->type = BS_VNULL;
    }
    return BS_OK;
}

typedef struct side_in {
    const uint8_t *key;
    uint64_t seq, hlc;
    int deleted;
    const bs_value *val;
} side_in;

/* Store one entry (flags byte + ConflictEntry) under key. */
static bs_err
put_entry(bs_txn *t, const uint8_t *key, size_t klen, const char *cid,
          bs_policy policy, const side_in *s, int winner, int open,
          const char *how, uint64_t detected_ms, int kind, const char *other)
{
    Bs__ConflictEntry m = BS__CONFLICT_ENTRY__INIT;
    Bs__ConflictCandidate cand[2], *cp[2];
    Bs__Value val[2];
    char *texts[2] = {NULL, NULL};
    uint8_t *dst;
    size_t n;
    bs_err rv = BS_OK;

    for (int i = 0; i < 2; i++) {
        bs__conflict_candidate__init(&cand[i]);
        cand[i].origin = bin(s[i].key, BS_PK_LEN);
        cand[i].incarnation = bin(s[i].key + BS_PK_LEN, BS_INC_LEN);
        cand[i].seq = s[i].seq;
        cand[i].hlc = s[i].hlc;
        cand[i].deleted = s[i].deleted;
        if (!s[i].deleted) {
            const bs_value *v = s[i].val;
            if (v->type == BS_VTEXT &&
                (texts[i] = strndup(v->s, v->len)) == NULL)
                rv = BS_ENOMEM;
            bs_value_pb(&val[i], v, texts[i]);
            cand[i].value = &val[i];
        }
        cp[i] = &cand[i];
    }
    m.id = (char *)cid;
    m.policy = (uint32_t)policy;
    m.n_candidates = 2;
    m.candidates = cp;
    m.winner = (uint32_t)winner;
    m.resolution = (char *)how;
    m.detected_ms = detected_ms;
    m.kind = (uint32_t)kind;
    m.other_id = (char *)(other != NULL ? other : "");
    n = bs__conflict_entry__get_packed_size(&m);
    if (rv == BS_OK)
        rv = bs_txn_reserve(t, BS_DB_CONFLICTS, bs_mem(key, klen), n + 1, 0,
                            &dst, NULL);
    if (rv == BS_OK) {
        dst[0] = open ? FLAG_OPEN : 0;
        bs__conflict_entry__pack(&m, dst + 1);
    }
    free(texts[0]);
    free(texts[1]);
    return rv;
}

bs_err
bs_conflict_add(bs_txn *t, const char *coll, const char *id, const char *field,
                bs_policy policy, const bs_cand *a, const bs_cand *b,
                int winner, uint64_t now_ms)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    uint8_t key[CKEY_MAX];
    int open = policy == BS_POLICY_MANUAL;
    side_in s[2] = {{a->key, a->seq, a->hlc, a->val == NULL, a->val},
                    {b->key, b->seq, b->hlc, b->val == NULL, b->val}};
    size_t klen;
    bs_slice old;
    bs_err rv;

    conflict_id(cid, coll, id, field, a, b);
    klen = ckey(key, coll, id, field, cid);
    if (bs_txn_get(t, BS_DB_CONFLICTS, bs_mem(key, klen), &old) == BS_OK)
        return BS_OK; /* already recorded */
    if (cand_after(a, b)) {
        /* Stored in the ID's order, so every node records the same. */
        side_in x = s[0];
        s[0] = s[1];
        s[1] = x;
        winner = !winner;
    }
    rv = put_entry(t, key, klen, cid, policy, s, winner, open,
                   open ? "" : "automatic", now_ms, BS_CONFLICT_FIELD, NULL);
    if (rv == BS_OK)
        rv = count_add(t, open, 1);
    return rv;
}

/* ---- decoding ---- */

void
bs_conflict_fini(bs_conflict *c)
{
    for (int i = 0; i < 2; i++)
        if (c->side[i].val.type == BS_VTEXT)
            free((char *)c->side[i].val.s);
    memset(c, 0, sizeof *c);
}

/* Split key coll \0 id \0 field \0 cid into c. */
static bs_err
split_key(bs_slice k, bs_conflict *c)
{
    const char *p = (const char *)k.p, *end = p + k.n;
    char *dst[3] = {c->coll, c->rid, c->field};
    size_t cap[3] = {sizeof c->coll, sizeof c->rid, sizeof c->field};

    for (int i = 0; i < 3; i++) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        if (nul == NULL || (size_t)(nul - p) >= cap[i])
            return BS_ESTORE;
        memcpy(dst[i], p, (size_t)(nul - p) + 1);
        p = nul + 1;
    }
    return end - p == BS_CONFLICT_ID_LEN ? BS_OK : BS_ESTORE;
}

static bs_err
decode(bs_slice k, bs_slice v, bs_conflict *c)
{
    Bs__ConflictEntry *m;
    bs_err rv = BS_ESTORE;

    memset(c, 0, sizeof *c);
    if (v.n < 1 || split_key(k, c) != BS_OK)
        return BS_ESTORE;
    if ((m = bs__conflict_entry__unpack(NULL, v.n - 1, v.p + 1)) == NULL)
        return BS_ESTORE;
    if (m->n_candidates != 2 || m->winner > 1 || m->policy > 2 ||
        strlen(m->id) != BS_CONFLICT_ID_LEN ||
        strlen(m->resolution) > BS_CONFLICT_HOW_MAX ||
        m->kind > BS_CONFLICT_DUPLICATE || strlen(m->other_id) > BS_ID_MAX ||
        (m->kind == BS_CONFLICT_DUPLICATE && m->other_id[0] == '\0'))
        goto out;
    c->kind = (int)m->kind;
    memcpy(c->other, m->other_id, strlen(m->other_id) + 1);
    memcpy(c->id, m->id, BS_CONFLICT_ID_LEN + 1);
    c->policy = (bs_policy)m->policy;
    c->winner = (int)m->winner;
    c->resolved = !(v.p[0] & FLAG_OPEN);
    snprintf(c->resolution, sizeof c->resolution, "%s", m->resolution);
    c->detected_ms = m->detected_ms;
    for (int i = 0; i < 2; i++) {
        const Bs__ConflictCandidate *s = m->candidates[i];
        char *text;
        if (s->origin.len != BS_PK_LEN || s->incarnation.len != BS_INC_LEN)
            goto out;
        memcpy(c->side[i].key, s->origin.data, BS_PK_LEN);
        memcpy(c->side[i].key + BS_PK_LEN, s->incarnation.data, BS_INC_LEN);
        c->side[i].seq = s->seq;
        c->side[i].hlc = s->hlc;
        c->side[i].deleted = s->deleted;
        if ((rv = value_from_pb(s->value, &c->side[i].val, &text)) != BS_OK)
            goto out;
        rv = BS_ESTORE;
    }
    rv = BS_OK;
out:
    bs__conflict_entry__free_unpacked(m, NULL);
    if (rv != BS_OK)
        bs_conflict_fini(c);
    return rv;
}

/* ---- iterating and finding ---- */

struct bs_conflict_iter {
    bs_cursor *cur;
    int all, started;
    bs_conflict c;
};

bs_err
bs_conflict_iter_open(bs_txn *t, int all, bs_conflict_iter **out)
{
    bs_conflict_iter *it = calloc(1, sizeof *it);
    bs_err rv;

    if (it == NULL)
        return BS_ENOMEM;
    if ((rv = bs_cursor_open(t, BS_DB_CONFLICTS, &it->cur)) != BS_OK) {
        free(it);
        return rv;
    }
    it->all = all;
    *out = it;
    return BS_OK;
}

bs_err
bs_conflict_iter_next(bs_conflict_iter *it, const bs_conflict **c)
{
    bs_slice k, v;
    bs_err rv;

    bs_conflict_fini(&it->c);
    for (;;) {
        rv = it->started ? bs_cursor_next(it->cur, &k, &v)
                         : bs_cursor_first(it->cur, &k, &v);
        it->started = 1;
        if (rv != BS_OK)
            return rv;
        if (!it->all && (v.n < 1 || !(v.p[0] & FLAG_OPEN)))
            continue;
        if ((rv = decode(k, v, &it->c)) != BS_OK)
            return rv;
        *c = &it->c;
        return BS_OK;
    }
}

void
bs_conflict_iter_close(bs_conflict_iter *it)
{
    if (it == NULL)
        return;
    bs_conflict_fini(&it->c);
    bs_cursor_close(it->cur);
    free(it);
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
bs_conflict_get(bs_txn *t, const char *cid, bs_conflict *c)
{
    uint8_t key[CKEY_MAX];
    size_t klen;
    bs_slice v;
    bs_err rv = find(t, cid, key, &klen, &v);

    if (rv != BS_OK)
        return rv;
    return decode(bs_mem(key, klen), v, c);
}

/* Rewrite the entry under key as resolved, saying how. */
static bs_err
set_resolved(bs_txn *t, const uint8_t *key, size_t klen, bs_slice v,
             const char *how)
{
    bs_conflict c;
    side_in s[2];
    bs_err rv;

    if ((rv = decode(bs_mem(key, klen), v, &c)) != BS_OK)
        return rv;
    for (int i = 0; i < 2; i++)
        s[i] = (side_in){c.side[i].key, c.side[i].seq, c.side[i].hlc,
                         c.side[i].deleted, &c.side[i].val};
    rv = put_entry(t, key, klen, c.id, c.policy, s, c.winner, 0, how,
                   c.detected_ms, c.kind, c.other);
    if (rv == BS_OK && !c.resolved)
        rv = count_add(t, -1, 0);
    bs_conflict_fini(&c);
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

/* Mark resolved, saying how, each open conflict under prefix that pick
 * chooses. */
static bs_err
settle_where(bs_txn *t, const uint8_t *prefix, size_t plen,
             int (*pick)(const bs_conflict *c, void *ctx), void *ctx,
             const char *how)
{
    uint8_t key[CKEY_MAX];
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_CONFLICTS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(c, bs_mem(prefix, plen), &k, &v);
         rv == BS_OK && k.n > plen && memcmp(k.p, prefix, plen) == 0;
         rv = bs_cursor_next(c, &k, &v)) {
        bs_conflict cf;
        int settle;

        if (v.n < 1 || !(v.p[0] & FLAG_OPEN) || k.n > CKEY_MAX ||
            decode(k, v, &cf) != BS_OK)
            continue;
        settle = pick(&cf, ctx);
        bs_conflict_fini(&cf);
        if (!settle)
            continue;
        memcpy(key, k.p, k.n);
        if ((rv = set_resolved(t, key, k.n, v, how)) != BS_OK)
            break;
        /* The put may have moved the cursor: find our place again. */
        if ((rv = bs_cursor_seek(c, bs_mem(key, k.n), &k, &v)) != BS_OK)
            break;
    }
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

typedef struct seen_ctx {
    const bs_pos *seen;
    size_t nseen;
} seen_ctx;

/* A field conflict both of whose sides the writer had seen. */
static int
both_seen(const bs_conflict *c, void *ctx)
{
    const seen_ctx *s = ctx;

    return c->kind == BS_CONFLICT_FIELD &&
           bs_vv_covers(s->seen, s->nseen, c->side[0].key, c->side[0].seq) &&
           bs_vv_covers(s->seen, s->nseen, c->side[1].key, c->side[1].seq);
}

bs_err
bs_conflict_supersede(bs_txn *t, const char *coll, const char *id,
                      const char *field, const bs_pos *seen, size_t nseen)
{
    uint8_t prefix[CKEY_MAX];
    seen_ctx sc = {seen, nseen};
    uint64_t open;
    bs_err rv;

    if ((rv = bs_conflict_count(t, &open, NULL)) != BS_OK || open == 0)
        return rv;
    return settle_where(t, prefix, ckey(prefix, coll, id, field, NULL),
                        both_seen, &sc, "superseded by a later edit");
}

/* ---- the store upgrade ---- */

bs_err
bs_conflict_put(bs_txn *t, const bs_conflict *c)
{
    uint8_t key[CKEY_MAX];
    size_t klen = ckey(key, c->coll, c->rid, c->field, c->id);
    side_in s[2];

    for (int i = 0; i < 2; i++)
        s[i] = (side_in){c->side[i].key, c->side[i].seq, c->side[i].hlc,
                         c->side[i].deleted, &c->side[i].val};
    return put_entry(t, key, klen, c->id, c->policy, s, c->winner, !c->resolved,
                     c->resolution, c->detected_ms, c->kind, c->other);
}

bs_err
bs_conflict_recount(bs_txn *t)
{
    uint64_t open = 0, all = 0;
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_CONFLICTS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        all++;
        open += v.n > 0 && (v.p[0] & FLAG_OPEN);
    }
    bs_cursor_close(c);
    if (rv != BS_ENOTFOUND)
        return rv;
    if ((rv = bs_meta_put_u64(t, META_OPEN, open)) != BS_OK)
        return rv;
    return bs_meta_put_u64(t, META_ALL, all);
}

bs_err
bs_conflict_drop_if(bs_txn *t, const char *coll, const char *id,
                    int (*refused)(void *ctx, const uint8_t *key, uint64_t seq),
                    void *ctx)
{
    uint8_t prefix[BS_COLLECTION_MAX + BS_ID_MAX + 2];
    size_t cn = strlen(coll), in = strlen(id), pn = cn + in + 2;
    int dropped = 0;
    bs_cursor *cur;
    bs_slice k, v;
    bs_err rv;

    memcpy(prefix, coll, cn + 1);
    memcpy(prefix + cn + 1, id, in + 1);
    if ((rv = bs_cursor_open(t, BS_DB_CONFLICTS, &cur)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(cur, bs_mem(prefix, pn), &k, &v);
         rv == BS_OK && k.n > pn && memcmp(k.p, prefix, pn) == 0;) {
        bs_conflict c;
        int drop;

        if ((rv = decode(k, v, &c)) != BS_OK)
            break;
        /* a duplicate follows the records (unique.c), not the changes */
        drop = c.kind == BS_CONFLICT_FIELD &&
               (refused(ctx, c.side[0].key, c.side[0].seq) ||
                refused(ctx, c.side[1].key, c.side[1].seq));
        bs_conflict_fini(&c);
        if (drop) {
            uint8_t at[BS_COLLECTION_MAX + BS_ID_MAX + BS_FIELD_NAME_MAX +
                       BS_CONFLICT_ID_LEN + 4];
            size_t an = k.n < sizeof at ? k.n : sizeof at;

            memcpy(at, k.p, an); /* k dies with the entry */
            if ((rv = bs_cursor_del(cur)) != BS_OK)
                break;
            dropped = 1;
            rv = bs_cursor_seek(cur, bs_mem(at, an), &k, &v);
            continue;
        }
        rv = bs_cursor_next(cur, &k, &v);
    }
    bs_cursor_close(cur);
    if (rv != BS_OK && rv != BS_ENOTFOUND)
        return rv;
    return dropped ? bs_conflict_recount(t) : BS_OK;
}

/* ---- duplicates of a unique key ---- */

/* The duplicate's ID and key (under the lesser ID); *lo, *hi the IDs in
 * order.  Returns the key's length. */
static size_t
dup_key(uint8_t *key, char cid[BS_CONFLICT_ID_LEN + 1], const char *coll,
        const char *field, const char *ida, const char *idb, const char **lo,
        const char **hi)
{
    bs_hash_state h;
    uint8_t d[BS_HASH_LEN];

    *lo = strcmp(ida, idb) < 0 ? ida : idb;
    *hi = *lo == ida ? idb : ida;
    bs_hash_init(&h);
    bs_hash_update(&h, "duplicate", sizeof "duplicate");
    bs_hash_update(&h, coll, strlen(coll) + 1);
    bs_hash_update(&h, field, strlen(field) + 1);
    bs_hash_update(&h, *lo, strlen(*lo) + 1);
    bs_hash_update(&h, *hi, strlen(*hi) + 1);
    bs_hash_final(&h, d);
    bs_hex(cid, d, BS_CONFLICT_ID_LEN / 2);
    return ckey(key, coll, *lo, field, cid);
}

bs_err
bs_conflict_dup_open(bs_txn *t, const char *coll, const char *field,
                     const char *ida, const bs_cand *a, const char *idb,
                     const bs_cand *b, uint64_t now_ms)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    uint8_t key[CKEY_MAX];
    const char *lo, *hi;
    size_t klen = dup_key(key, cid, coll, field, ida, idb, &lo, &hi);
    side_in s[2] = {{a->key, a->seq, a->hlc, a->val == NULL, a->val},
                    {b->key, b->seq, b->hlc, b->val == NULL, b->val}};
    bs_slice old;
    int isnew;
    bs_err rv;

    if (lo != ida) {
        side_in x = s[0];
        s[0] = s[1];
        s[1] = x;
    }
    rv = bs_txn_get(t, BS_DB_CONFLICTS, bs_mem(key, klen), &old);
    if (rv == BS_OK && old.n > 0 && (old.p[0] & FLAG_OPEN))
        return BS_OK; /* open already */
    if (rv != BS_OK && rv != BS_ENOTFOUND)
        return rv;
    isnew = rv == BS_ENOTFOUND;
    if ((rv = put_entry(t, key, klen, cid, BS_POLICY_MANUAL, s, 0, 1, "",
                        now_ms, BS_CONFLICT_DUPLICATE, hi)) != BS_OK)
        return rv;
    return count_add(t, 1, isnew);
}

bs_err
bs_conflict_dup_settle(bs_txn *t, const char *coll, const char *field,
                       const char *ida, const char *idb, const char *how)
{
    char cid[BS_CONFLICT_ID_LEN + 1];
    uint8_t key[CKEY_MAX];
    const char *lo, *hi;
    size_t klen = dup_key(key, cid, coll, field, ida, idb, &lo, &hi);
    bs_slice v;
    bs_err rv = bs_txn_get(t, BS_DB_CONFLICTS, bs_mem(key, klen), &v);

    if (rv == BS_ENOTFOUND ||
        (rv == BS_OK && (v.n < 1 || !(v.p[0] & FLAG_OPEN))))
        return BS_OK;
    if (rv != BS_OK)
        return rv;
    return set_resolved(t, key, klen, v, how);
}

static int
is_duplicate(const bs_conflict *c, void *ctx)
{
    (void)ctx;
    return c->kind == BS_CONFLICT_DUPLICATE;
}

bs_err
bs_conflict_dup_settle_all(bs_txn *t, const char *coll, const char *how)
{
    uint8_t prefix[BS_COLLECTION_MAX + 1];
    size_t plen = strlen(coll) + 1;

    memcpy(prefix, coll, plen);
    return settle_where(t, prefix, plen, is_duplicate, NULL, how);
}
