/*
 * access.c - judging a change against the rules that govern it.
 */
#include "access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "members.h"
#include "records.h"
#include "streams.h"

#define OWN_PREFIX "own:"
#define OWN_KEY_MAX                                                            \
    (4 + BS_COLLECTION_MAX + 1 + BS_ID_MAX + 1 + 8 + BS_STREAM_KEY_LEN + 8)

void
bs_access_name(bs_txn *t, const bs_meta *m, const uint8_t *pk,
               char out[BS_NODE_NAME_MAX + 1])
{
    bs_member mem;
    bs_err rv = bs_members_get(t, m, pk, &mem);

    out[0] = '\0';
    if (rv == BS_OK || rv == BS_ENOTFOUND)
        snprintf(out, BS_NODE_NAME_MAX + 1, "%s", mem.name);
    if (out[0] == '\0' && memcmp(pk, m->pk, BS_PK_LEN) == 0)
        snprintf(out, BS_NODE_NAME_MAX + 1, "%s", m->name);
}

/* "own:" coll \0 id \0 [hlc | stream key | seq]; the length with the
 * version (full) or without it. */
static size_t
any_key(uint8_t *k, const char *prefix, const char *coll, const char *id,
        uint64_t hlc, const uint8_t *skey, uint64_t seq, int full)
{
    size_t cn = strlen(coll), in = strlen(id), n = 4;

    memcpy(k, prefix, 4);
    memcpy(k + n, coll, cn + 1);
    n += cn + 1;
    memcpy(k + n, id, in + 1);
    n += in + 1;
    if (!full)
        return n;
    bs_put_u64be(k + n, hlc);
    memcpy(k + n + 8, skey, BS_STREAM_KEY_LEN);
    bs_put_u64be(k + n + 8 + BS_STREAM_KEY_LEN, seq);
    return n + 16 + BS_STREAM_KEY_LEN;
}

static size_t
own_key(uint8_t *k, const char *coll, const char *id, uint64_t hlc,
        const uint8_t *skey, uint64_t seq, int full)
{
    return any_key(k, OWN_PREFIX, coll, id, hlc, skey, seq, full);
}

/* "rej:" coll \0 id \0 hlc | key | seq: a change of coll/id refused by
 * rule, whose judgment a later owner change below it may change. */
static size_t
rej_key(uint8_t *k, const char *coll, const char *id, uint64_t hlc,
        const uint8_t *skey, uint64_t seq, int full)
{
    return any_key(k, "rej:", coll, id, hlc, skey, seq, full);
}

bs_err
bs_access_note_refused(bs_txn *t, const bs_change *c, const uint8_t *skey)
{
    uint8_t k[OWN_KEY_MAX];

    return bs_txn_put(
        t, BS_DB_META,
        bs_mem(k, rej_key(k, c->coll, c->id, c->hlc, skey, c->seq, 1)),
        bs_mem("", 0), 0, NULL);
}

bs_err
bs_access_is_refused(bs_txn *t, const bs_change *c, const uint8_t *skey,
                     int *yes)
{
    uint8_t k[OWN_KEY_MAX];
    bs_slice v;
    bs_err rv = bs_txn_get(
        t, BS_DB_META,
        bs_mem(k, rej_key(k, c->coll, c->id, c->hlc, skey, c->seq, 1)), &v);

    *yes = rv == BS_OK;
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_access_refused_after(bs_txn *t, const bs_change *c, const uint8_t *skey,
                        int *any)
{
    uint8_t k[OWN_KEY_MAX];
    size_t plen = rej_key(k, c->coll, c->id, 0, NULL, 0, 0),
           klen = rej_key(k, c->coll, c->id, c->hlc, skey, c->seq, 1);
    bs_cursor *cur;
    bs_slice fk, fv;
    bs_err rv;

    *any = 0;
    if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK)
        return rv;
    rv = bs_cursor_seek(cur, bs_mem(k, klen), &fk, &fv);
    if (rv == BS_OK && fk.n >= plen && memcmp(fk.p, k, plen) == 0 &&
        !(fk.n == klen && memcmp(fk.p, k, klen) == 0))
        *any = 1;
    bs_cursor_close(cur);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_access_any_refused(bs_txn *t, const char *coll, int *any)
{
    uint8_t k[OWN_KEY_MAX];
    size_t cn = strlen(coll), plen = 4 + cn + 1;
    bs_cursor *cur;
    bs_slice fk, fv;
    bs_err rv;

    *any = 0;
    memcpy(k, "rej:", 4);
    memcpy(k + 4, coll, cn + 1); /* "rej:" coll \0: every id of it */
    if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK)
        return rv;
    rv = bs_cursor_seek(cur, bs_mem(k, plen), &fk, &fv);
    *any = rv == BS_OK && fk.n >= plen && memcmp(fk.p, k, plen) == 0;
    bs_cursor_close(cur);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_access_note_owner(bs_txn *t, const bs_change *c, const uint8_t *skey,
                     const char *owner_field)
{
    uint8_t k[OWN_KEY_MAX];
    const char *val = "";
    size_t vn = 0;

    if (owner_field == NULL || owner_field[0] == '\0')
        return BS_OK;
    if (!c->deleted) {
        size_t i = 0;

        while (i < c->nfields && strcmp(c->fields[i].name, owner_field) != 0)
            i++;
        if (i == c->nfields)
            return BS_OK; /* the owner stays as it was */
        if (c->fields[i].val.type == BS_VTEXT) {
            val = c->fields[i].val.s;
            vn = c->fields[i].val.len;
        }
    }
    return bs_txn_put(
        t, BS_DB_META,
        bs_mem(k, own_key(k, c->coll, c->id, c->hlc, skey, c->seq, 1)),
        bs_mem(val, vn), 0, NULL);
}

void
bs_access_owner_mark(const bs_record *r, const char *owner_field,
                     bs_owner_mark *m)
{
    const bs_field *f =
        owner_field != NULL && owner_field[0] != '\0'
            ? bs_record_find(r, owner_field, strlen(owner_field))
            : NULL;

    memset(m, 0, sizeof *m);
    m->val = "";
    if (f == NULL)
        return;
    m->has = 1;
    m->field = owner_field;
    m->ver = f->ver;
    if (f->val.type == BS_VTEXT) {
        m->val = f->val.s;
        m->n = f->val.len;
    }
}

static int
same_version(const bs_version *a, const bs_version *b)
{
    return a->hlc == b->hlc && a->seq == b->seq && a->stream == b->stream;
}

bs_err
bs_access_owner_keep(bs_txn *t, const char *coll, const char *id,
                     const bs_owner_mark *before, const bs_record *after,
                     const bs_order *o)
{
    uint8_t k[OWN_KEY_MAX];
    const bs_field *f = NULL;
    const uint8_t *skey;

    if (!before->has)
        return BS_OK;
    if (after != NULL && (after->has_alive || after->has_tomb))
        f = bs_record_find(after, before->field, strlen(before->field));
    if (f != NULL && same_version(&f->ver, &before->ver))
        return BS_OK; /* still implied */
    if ((skey = o->stream_key(o->ctx, before->ver.stream)) == NULL)
        return BS_ESTORE;
    return bs_txn_put(t, BS_DB_META,
                      bs_mem(k, own_key(k, coll, id, before->ver.hlc, skey,
                                        before->ver.seq, 1)),
                      bs_mem(before->val, before->n), 0, NULL);
}

int
bs_access_owner_implied(const bs_change *c, const bs_version *cv,
                        const bs_record *r, const char *owner_field)
{
    const bs_field *f;

    if (c->deleted || owner_field == NULL || owner_field[0] == '\0')
        return 0;
    f = bs_record_find(r, owner_field, strlen(owner_field));
    return f != NULL && same_version(&f->ver, cv);
}

/* A version, comparable bytewise with the keys above: hlc | key | seq. */
typedef struct vkey {
    uint64_t hlc, seq;
    const uint8_t *skey;
} vkey;

static int
vkey_lt(const vkey *a, const vkey *b)
{
    int c;

    if (a->hlc != b->hlc)
        return a->hlc < b->hlc;
    if ((c = memcmp(a->skey, b->skey, BS_STREAM_KEY_LEN)) != 0)
        return c < 0;
    return a->seq < b->seq;
}

/* The owner of coll/id just before version at: *owner (NUL-terminated,
 * "" for none), from the owner history and the record as stored. */
static bs_err
prior_owner(bs_txn *t, const char *coll, const char *id, const vkey *at,
            const bs_order *o, const char *owner_field, char *owner, size_t on,
            const bs_owner_notes *pending, bs_judgment *j)
{
    uint8_t k[OWN_KEY_MAX];
    size_t plen = own_key(k, coll, id, 0, NULL, 0, 0),
           klen = own_key(k, coll, id, at->hlc, at->skey, at->seq, 1);
    vkey best = {0, 0, NULL}, cand;
    uint8_t zero[BS_STREAM_KEY_LEN] = {0}, hkey[BS_STREAM_KEY_LEN];
    bs_cursor *cur;
    bs_slice fk, fv;
    bs_record r;
    bs_arena a;
    bs_err rv;

    owner[0] = '\0';
    best.skey = zero;
    /* The latest owner change noted below at. */
    if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK)
        return rv;
    rv = bs_cursor_seek(cur, bs_mem(k, klen), &fk, &fv);
    if (rv == BS_OK)
        rv = bs_cursor_prev(cur, &fk, &fv);
    else if (rv == BS_ENOTFOUND)
        rv = bs_cursor_last(cur, &fk, &fv);
    if (rv == BS_OK && fk.n == klen && memcmp(fk.p, k, plen) == 0) {
        best.hlc = bs_get_u64be(fk.p + plen);
        memcpy(hkey, fk.p + plen + 8, BS_STREAM_KEY_LEN);
        best.skey = hkey;
        best.seq = bs_get_u64be(fk.p + plen + 8 + BS_STREAM_KEY_LEN);
        snprintf(owner, on, "%.*s", (int)fv.n, (const char *)fv.p);
    }
    bs_cursor_close(cur);
    if (rv != BS_OK && rv != BS_ENOTFOUND)
        return rv;
    /* The record as stored may know a later one below at (changes from
     * before the history was kept), or a delete that cleared it. */
    bs_arena_init(&a);
    memset(&r, 0, sizeof r);
    rv = bs_records_get(t, coll, id, &a, &r, NULL);
    if (rv == BS_ENOTFOUND && r.has_tomb) /* deleted: still has versions */
        rv = BS_OK;
    if (rv == BS_OK) {
        const bs_field *f =
            bs_record_find(&r, owner_field, strlen(owner_field));

        if (f != NULL) {
            cand = (vkey){f->ver.hlc, f->ver.seq,
                          o->stream_key(o->ctx, f->ver.stream)};
            if (vkey_lt(&cand, at) && vkey_lt(&best, &cand)) {
                best = cand;
                snprintf(owner, on, "%.*s",
                         f->val.type == BS_VTEXT ? (int)f->val.len : 0,
                         f->val.type == BS_VTEXT ? f->val.s : "");
            }
        }
        if (r.has_tomb) {
            cand = (vkey){r.tomb.hlc, r.tomb.seq,
                          o->stream_key(o->ctx, r.tomb.stream)};
            if (vkey_lt(&cand, at) && vkey_lt(&best, &cand)) {
                best = cand;
                owner[0] = '\0';
            }
        }
    } else if (rv == BS_ENOTFOUND) {
        rv = BS_OK;
    }
    bs_arena_fini(&a);
    for (uint32_t i = pending != NULL && pending->nbucket > 0
                          ? pending->bucket[bs_access_record_hash(coll, id) &
                                            (pending->nbucket - 1)]
                          : 0;
         i != 0; i = pending->v[i - 1].next) {
        const bs_owner_note *p = &pending->v[i - 1];

        if (strcmp(p->coll, coll) != 0 || strcmp(p->id, id) != 0)
            continue;
        cand = (vkey){p->hlc, p->seq, p->key};
        if (vkey_lt(&cand, at) && vkey_lt(&best, &cand)) {
            best = cand;
            snprintf(owner, on, "%s", p->owner);
        } else if (vkey_lt(&cand, at)) {
            /* it lands below a stored change, which a rebuild will
             * judge again: the owner found here may not last */
            j->unsure = 1;
        }
    }
    if (best.hlc != 0 || best.seq != 0) {
        j->by_change = 1;
        memcpy(j->by_key, best.skey, BS_STREAM_KEY_LEN);
        j->by_seq = best.seq;
    }
    return rv;
}

uint64_t
bs_access_record_hash(const char *coll, const char *id)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (const char *p = coll; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h *= 1099511628211ull; /* the NUL between */
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h | 1;
}

void
bs_owner_notes_init(bs_owner_notes *s)
{
    memset(s, 0, sizeof *s);
    bs_arena_init(&s->arena);
}

static void
notes_link(bs_owner_notes *s, size_t i)
{
    uint32_t *b = &s->bucket[bs_access_record_hash(s->v[i].coll, s->v[i].id) &
                             (s->nbucket - 1)];

    s->v[i].next = *b;
    *b = (uint32_t)(i + 1);
}

bs_err
bs_owner_notes_add(bs_owner_notes *s, const char *coll, const char *id,
                   const char *owner, uint64_t hlc, uint64_t seq,
                   const uint8_t *key)
{
    bs_owner_note *p;

    if (s->n >= UINT32_MAX - 1)
        return BS_ENOMEM;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        bs_owner_note *nv = realloc(s->v, cap * sizeof *nv);

        if (nv == NULL)
            return BS_ENOMEM;
        s->v = nv;
        s->cap = cap;
    }
    if (s->n >= s->nbucket) { /* grow, and link every note again */
        size_t nb = s->nbucket ? s->nbucket * 4 : 256;
        uint32_t *b = calloc(nb, sizeof *b);

        if (b == NULL)
            return BS_ENOMEM;
        free(s->bucket);
        s->bucket = b;
        s->nbucket = nb;
        for (size_t i = 0; i < s->n; i++)
            notes_link(s, i);
    }
    p = &s->v[s->n];
    p->coll = bs_arena_strndup(&s->arena, coll, strlen(coll));
    p->id = bs_arena_strndup(&s->arena, id, strlen(id));
    p->owner = bs_arena_strndup(&s->arena, owner, strlen(owner));
    if (p->coll == NULL || p->id == NULL || p->owner == NULL)
        return BS_ENOMEM;
    p->hlc = hlc;
    p->seq = seq;
    memcpy(p->key, key, BS_STREAM_KEY_LEN);
    notes_link(s, s->n++);
    return BS_OK;
}

void
bs_owner_notes_clear(bs_owner_notes *s)
{
    if (s->n > 0)
        memset(s->bucket, 0, s->nbucket * sizeof *s->bucket);
    s->n = 0;
    bs_arena_reset(&s->arena);
}

void
bs_owner_notes_fini(bs_owner_notes *s)
{
    free(s->v);
    free(s->bucket);
    bs_arena_fini(&s->arena);
    memset(s, 0, sizeof *s);
}

bs_err
bs_access_judge(bs_txn *t, const bs_meta *m, const uint8_t *skey,
                const char *name, const bs_change *c, const bs_version *cv,
                const bs_order *o, const bs_collection *rules,
                const bs_rule_version *ver, const bs_collection *latest_in,
                const bs_rule_version *latest_ver, const char *prior_hint,
                const bs_owner_notes *pending, bs_judgment *j)
{
    char prior[BS_NODE_NAME_MAX + 2], after[BS_NODE_NAME_MAX + 2];
    const char *of;
    vkey at;
    bs_err rv;

    memset(j, 0, sizeof *j);
    j->allowed = 1;
    if (rules != NULL && ver != NULL) {
        j->rules = *rules;
        j->ver = *ver;
    } else if ((rv = bs_rules_at(t, c->coll, c->hlc, &j->rules, &j->ver)) !=
               BS_OK) {
        return rv;
    }
    if (memcmp(skey, m->hub, BS_PK_LEN) == 0 ||
        j->rules.writers == BS_WRITERS_ALL)
        return BS_OK;
    j->allowed = 0;
    if (j->rules.writers == BS_WRITERS_HUB) {
        snprintf(j->why, sizeof j->why, "only the hub writes %s (writers hub)",
                 c->coll);
        return BS_OK;
    }
    /* writers=owner, by the owner field the latest version names: the
     * owner history follows it, and a version naming another field has
     * every record judged again (rebuild.h) */
    {
        bs_collection latest;

        if (latest_in != NULL && latest_ver != NULL) {
            latest = *latest_in;
            j->field_ver = *latest_ver;
        } else if ((rv = bs_rules_at(t, c->coll, UINT64_MAX, &latest,
                                     &j->field_ver)) != BS_OK) {
            return rv;
        }
        if (j->field_ver.hlc > j->ver.hlc)
            snprintf(j->rules.owner_field, sizeof j->rules.owner_field, "%s",
                     latest.owner_field);
        else
            j->field_ver = j->ver;
    }
    of = j->rules.owner_field;
    at = (vkey){cv->hlc, cv->seq, skey};
    if (prior_hint != NULL)
        snprintf(prior, sizeof prior, "%s", prior_hint);
    else if ((rv = prior_owner(t, c->coll, c->id, &at, o, of, prior,
                               sizeof prior, pending, j)) != BS_OK)
        return rv;
    bs_access_owner_after(c, of, prior, after, sizeof after);
    if (prior[0] != '\0' && strcmp(prior, name) != 0)
        snprintf(j->why, sizeof j->why,
                 "%s/%s belongs to %s (%s), not to %s (writers owner)", c->coll,
                 c->id, prior, of, name[0] ? name : "this origin");
    else if (c->deleted && prior[0] == '\0')
        snprintf(j->why, sizeof j->why,
                 "%s/%s has no owner in %s: only the hub deletes it "
                 "(writers owner)",
                 c->coll, c->id, of);
    else if (!c->deleted && (name[0] == '\0' || strcmp(after, name) != 0))
        snprintf(j->why, sizeof j->why,
                 "%s/%s must name its writer %s in %s (writers owner)", c->coll,
                 c->id, name[0] ? name : "(unnamed)", of);
    else
        j->allowed = 1;
    return BS_OK;
}

void
bs_access_owner_after(const bs_change *c, const char *owner_field,
                      const char *before, char *out, size_t n)
{
    snprintf(out, n, "%s", c->deleted ? "" : before);
    if (c->deleted || owner_field == NULL || owner_field[0] == '\0')
        return;
    for (size_t i = 0; i < c->nfields; i++)
        if (strcmp(c->fields[i].name, owner_field) == 0)
            snprintf(
                out, n, "%.*s",
                c->fields[i].val.type == BS_VTEXT ? (int)c->fields[i].val.len
                                                  : 0,
                c->fields[i].val.type == BS_VTEXT ? c->fields[i].val.s : "");
}

/* "ref:" pk -> u64be count | the first reason */
static size_t
ref_key(uint8_t *k, const uint8_t *pk)
{
    memcpy(k, "ref:", 4);
    memcpy(k + 4, pk, BS_PK_LEN);
    return 4 + BS_PK_LEN;
}

bs_err
bs_access_refused(bs_txn *t, const uint8_t *pk, uint64_t *n, char *why,
                  size_t wn)
{
    uint8_t k[4 + BS_PK_LEN];
    bs_slice v;
    bs_err rv = bs_txn_get(t, BS_DB_META, bs_mem(k, ref_key(k, pk)), &v);

    *n = 0;
    if (wn > 0)
        why[0] = '\0';
    if (rv == BS_ENOTFOUND)
        return BS_OK;
    if (rv != BS_OK)
        return rv;
    if (v.n < 8)
        return BS_ESTORE;
    *n = bs_get_u64be(v.p);
    if (wn > 0)
        snprintf(why, wn, "%.*s", (int)(v.n - 8), (const char *)v.p + 8);
    return BS_OK;
}

/* "rft:" pk -> u64be ms of the latest refusal */
static size_t
rft_key(uint8_t *k, const uint8_t *pk)
{
    memcpy(k, "rft:", 4);
    memcpy(k + 4, pk, BS_PK_LEN);
    return 4 + BS_PK_LEN;
}

bs_err
bs_access_refused_last(bs_txn *t, const uint8_t *pk, uint64_t *last_ms)
{
    uint8_t k[4 + BS_PK_LEN];
    bs_slice v;
    bs_err rv = bs_txn_get(t, BS_DB_META, bs_mem(k, rft_key(k, pk)), &v);

    *last_ms = 0;
    if (rv == BS_ENOTFOUND)
        return BS_OK;
    if (rv != BS_OK)
        return rv;
    if (v.n != 8)
        return BS_ESTORE;
    *last_ms = bs_get_u64be(v.p);
    return BS_OK;
}

bs_err
bs_access_count_refused(bs_txn *t, const uint8_t *pk, uint64_t n,
                        const char *why, uint64_t now_ms)
{
    uint8_t tk[4 + BS_PK_LEN], tv[8];
    uint8_t k[4 + BS_PK_LEN], v[8 + BS_ERRMSG_LEN];
    char first[BS_ERRMSG_LEN];
    uint64_t had;
    size_t wn;
    bs_err rv;

    if ((rv = bs_access_refused(t, pk, &had, first, sizeof first)) != BS_OK)
        return rv;
    if (had == 0)
        snprintf(first, sizeof first, "%s", why);
    wn = strlen(first);
    bs_put_u64be(v, had + n);
    memcpy(v + 8, first, wn);
    if ((rv = bs_txn_put(t, BS_DB_META, bs_mem(k, ref_key(k, pk)),
                         bs_mem(v, 8 + wn), 0, NULL)) != BS_OK ||
        now_ms == 0)
        return rv;
    bs_put_u64be(tv, now_ms);
    return bs_txn_put(t, BS_DB_META, bs_mem(tk, rft_key(tk, pk)), bs_mem(tv, 8),
                      0, NULL);
}

static bs_err
forget_prefix(bs_txn *t, const uint8_t *k, size_t plen)
{
    bs_cursor *cur;
    bs_slice fk, fv;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK)
        return rv;
    while ((rv = bs_cursor_seek(cur, bs_mem(k, plen), &fk, &fv)) == BS_OK &&
           fk.n > plen && memcmp(fk.p, k, plen) == 0)
        if ((rv = bs_cursor_del(cur)) != BS_OK)
            break;
    bs_cursor_close(cur);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_access_forget_owner(bs_txn *t, const char *coll, const char *id)
{
    uint8_t k[OWN_KEY_MAX];
    bs_err rv = forget_prefix(t, k, own_key(k, coll, id, 0, NULL, 0, 0));

    return rv != BS_OK
               ? rv
               : forget_prefix(t, k, rej_key(k, coll, id, 0, NULL, 0, 0));
}
