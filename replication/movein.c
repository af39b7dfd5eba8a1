/*
 * movein.c - moving a record into a branch's scope (movein.h): the
 * branch's wants, the hub's answers, and the merge of a snapshot.
 */
#include "movein.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "changes.h"
#include "collections.h"
#include "members.h"
#include "relay.h"
#include "rules.h"
#include "scope.h"

#define WANT_PREFIX  "wnt:" /* wnt: coll \0 id -> "" (this node's wants) */
#define PWANT_PREFIX "pwn:" /* pwn: peer pk(32) coll \0 id -> "" (a peer's) */
#define PFEAT_PREFIX "pft:" /* pft: peer pk(32) -> u32be features */
#define BASE_PREFIX  "snp:" /* snp: coll \0 id -> the record's base */
#define SEED_KEY     "sed:" /* sed: -> this branch's seed in progress */
#define PSEED_PREFIX                                                           \
    "psd:" /* psd: peer pk(32) -> coll \0 after (a seed asked) */
#define KEY_MAX (4 + BS_PK_LEN + BS_COLLECTION_MAX + 1 + BS_ID_MAX)

/* prefix [pk] coll \0 id */
static size_t
key_of(uint8_t *k, const char *prefix, const uint8_t *pk, const char *coll,
       const char *id)
{
    size_t n = 4, cn = strlen(coll), in = strlen(id);

    memcpy(k, prefix, 4);
    if (pk != NULL) {
        memcpy(k + n, pk, BS_PK_LEN);
        n += BS_PK_LEN;
    }
    memcpy(k + n, coll, cn + 1);
    n += cn + 1;
    memcpy(k + n, id, in);
    return n + in;
}

static bs_err
del_key(bs_txn *t, const uint8_t *k, size_t n)
{
    bs_err rv = bs_txn_del(t, BS_DB_META, bs_mem(k, n));

    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* ---- sealing the hub's records ---- */

static void
snap_version(bs_snapver *out, const bs_version *v, const bs_streamtab *tab)
{
    out->hlc = v->hlc;
    out->seq = v->seq;
    out->prio = v->prio;
    out->writer = v->stream; /* a version-2 body's number for it */
    memcpy(out->key, bs_streams_key((void *)tab, v->stream), BS_STREAM_KEY_LEN);
}

/*
 * Seal one snapshot of node m (the hub): record r of coll/id with its
 * fields [f0, f0 + nf), or (done) the end of an answer with the vector
 * covered[0..ncovered).  *out malloc'd: a RecordSnapshot signed with sk,
 * or with sk NULL its body alone (for a batch; v2: a version-2 body).
 */
static bs_err
seal(const bs_meta *m, const uint8_t *sk, int v2, const char *coll,
     const char *id, const bs_record *r, size_t f0, size_t nf,
     const bs_streamtab *tab, int done, const bs_pos *covered, size_t ncovered,
     uint64_t now_ms, uint8_t **out, size_t *n)
{
    bs_snap s;
    bs_err rv;

    memset(&s, 0, sizeof s);
    memcpy(s.infobase, m->infobase, BS_INFOBASE_LEN);
    memcpy(s.hub, m->pk, BS_PK_LEN);
    snprintf(s.coll, sizeof s.coll, "%s", coll);
    snprintf(s.id, sizeof s.id, "%s", id);
    s.created_ms = now_ms;
    s.done = done;
    s.covered = (bs_pos *)covered;
    s.ncovered = ncovered;
    if ((s.has_alive = r->has_alive))
        snap_version(&s.alive, &r->alive, tab);
    if ((s.has_tomb = r->has_tomb))
        snap_version(&s.tomb, &r->tomb, tab);
    bs_arena_init(&s.arena);
    if (nf > 0 &&
        (s.fields = bs_arena_alloc(&s.arena, nf * sizeof *s.fields)) == NULL) {
        bs_arena_fini(&s.arena);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < nf; i++) {
        const bs_field *f = &r->fields[f0 + i];

        s.fields[i].name = bs_arena_strndup(&s.arena, f->name, f->namelen);
        s.fields[i].val = f->val;
        snap_version(&s.fields[i].ver, &f->ver, tab);
        if (s.fields[i].name == NULL) {
            bs_arena_fini(&s.arena);
            return BS_ENOMEM;
        }
    }
    s.nfields = nf;
    rv = sk != NULL ? bs_snap_encode(&s, sk, out, n)
         : v2       ? bs_snap_encode_body2(&s, out, n)
                    : bs_snap_encode_body(&s, out, n);
    bs_arena_fini(&s.arena);
    return rv;
}

/* A field's share of a snapshot, about. */
static size_t
field_bytes(const bs_field *f)
{
    return f->namelen + (f->val.type == BS_VTEXT ? f->val.len : 8) + 96;
}

/* Seal record r as one snapshot, or several when its fields are large
 * (each a part of them, with the record's versions, and with the owner
 * field owner_field ("" none) in every part: the receiver judges each
 * part's scope by it, N12). */
static bs_err
seal_record(bs_movein_cursor *c, const bs_meta *m, const uint8_t *sk,
            const char *coll, const char *id, const bs_record *r,
            const char *owner_field, const bs_streamtab *tab, int done,
            const bs_pos *covered, size_t ncovered, uint64_t now_ms)
{
    const bs_field *of =
        owner_field[0] ? bs_record_find(r, owner_field, strlen(owner_field))
                       : NULL;
    size_t f0 = 0;

    do {
        size_t nf = 0, bytes = 0;
        bs_record part = *r;
        bs_field *tmp = NULL;
        uint8_t **np, *p;
        size_t *nl, n;
        int before;
        bs_err rv;

        while (f0 + nf < r->nfields &&
               (nf == 0 || bytes + field_bytes(&r->fields[f0 + nf]) <
                               BS_MOVEIN_SPLIT_BYTES))
            bytes += field_bytes(&r->fields[f0 + nf++]);
        part.fields = r->fields + f0;
        part.nfields = nf;
        if (of != NULL && (of < r->fields + f0 || of >= r->fields + f0 + nf)) {
            /* a part without the owner field: add it (names stay sorted:
             * it sorts before or after the whole range) */
            if ((tmp = malloc((nf + 1) * sizeof *tmp)) == NULL)
                return BS_ENOMEM;
            before = of < r->fields + f0;
            memcpy(tmp + before, r->fields + f0, nf * sizeof *tmp);
            tmp[before ? 0 : nf] = *of;
            part.fields = tmp;
            part.nfields = nf + 1;
        }
        rv = seal(m, c->bodies ? NULL : sk, c->bodies == 2, coll, id, &part, 0,
                  part.nfields, tab, done, covered, ncovered, now_ms, &p, &n);
        free(tmp);
        if (rv != BS_OK)
            return rv;
        if ((np = realloc(c->parts, (c->nparts + 1) * sizeof *np)) == NULL ||
            (c->parts = np,
             (nl = realloc(c->lens, (c->nparts + 1) * sizeof *nl)) == NULL)) {
            free(p);
            return BS_ENOMEM;
        }
        c->lens = nl;
        c->parts[c->nparts] = p;
        c->lens[c->nparts++] = n;
        f0 += nf;
    } while (f0 < r->nfields);
    return BS_OK;
}

/* ---- serving ---- */

void
bs_movein_cursor_init(bs_movein_cursor *c, const uint8_t *peer,
                      const bs_snapwant *wants, size_t n)
{
    memset(c, 0, sizeof *c);
    memcpy(c->peer, peer, BS_PK_LEN);
    c->wants = wants;
    c->nwants = n;
}

static void
drop_parts(bs_movein_cursor *c)
{
    for (size_t i = c->part; i < c->nparts; i++)
        free(c->parts[i]);
    free(c->parts);
    free(c->lens);
    c->parts = NULL;
    c->lens = NULL;
    c->nparts = c->part = 0;
}

void
bs_movein_cursor_fini(bs_movein_cursor *c)
{
    drop_parts(c);
    free(c->covered);
    c->covered = NULL;
}

/* Whether the receiver (name; not the hub) is entitled to record r of
 * coll by the rules `rules`: a record it would hold (scope.h). */
static int
in_scope(int hub, const char *name, const bs_collection *rules,
         const char *coll, const bs_record *r)
{
    char owner[BS_NODE_NAME_MAX + 1] = "";
    const bs_value *v;

    if (rules->owner_field[0] != '\0' &&
        (v = bs_record_field(r, rules->owner_field)) != NULL &&
        v->type == BS_VTEXT && v->len <= BS_NODE_NAME_MAX)
        snprintf(owner, sizeof owner, "%.*s", (int)v->len, v->s);
    return bs_scope_entitled(hub, name, rules, coll, owner, NULL);
}

/*
 * Whether the hub answers a want with record r (S1, S2): a record in the
 * receiver's scope, or one that holds no field (a tombstone: no data).
 * The tombstones matter: a branch passes over the deletes of records
 * outside its scope (A7o), so without them a record entering its scope
 * deleted would come back there with an older change the delete
 * overrides, one that reaches the branch later from another office.
 */
static int
answers(int hub, const char *name, const bs_collection *rules, const char *coll,
        const bs_record *r)
{
    return r->nfields == 0 || in_scope(hub, name, rules, coll, r);
}

/* The next record of want w after c->after that the hub answers with
 * (answers(); *found 0: none left); its id goes to c->after. */
static bs_err
next_in_coll(bs_txn *t, bs_movein_cursor *c, int hub, const char *name,
             const bs_collection *rules, const bs_snapwant *w, bs_arena *a,
             bs_record *rec, int *found)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t pn = bs_record_key(key, w->coll, ""), kn;
    bs_cursor *cur;
    bs_slice k, v;
    bs_err rv;

    *found = 0;
    kn = bs_record_key(key, w->coll, c->after);
    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &cur)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(cur, bs_mem(key, kn), &k, &v); rv == BS_OK;
         rv = bs_cursor_next(cur, &k, &v)) {
        if (k.n < pn || memcmp(k.p, key, pn) != 0 || k.n - pn > BS_ID_MAX)
            break; /* past the collection */
        if (k.n - pn == strlen(c->after) &&
            memcmp(k.p + pn, c->after, k.n - pn) == 0 && c->after[0] != '\0')
            continue; /* served already */
        memcpy(c->after, k.p + pn, k.n - pn);
        c->after[k.n - pn] = '\0';
        bs_arena_reset(a);
        if (bs_record_decode(rec, bs_arena_memdup(a, v.p, v.n), v.n, a) !=
            BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        if (answers(hub, name, rules, w->coll, rec)) {
            *found = 1;
            break;
        }
    }
    bs_cursor_close(cur);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* Queue the snapshots of want c->wants[c->at] that come next; *more 0
 * when the want is done (its `done` marker queued). */
static bs_err
serve_one(bs_txn *t, const bs_meta *m, const uint8_t *sk, bs_movein_cursor *c,
          uint64_t now_ms, int *more)
{
    const bs_snapwant *w = &c->wants[c->at];
    char name[BS_NODE_NAME_MAX + 1];
    bs_collection rules;
    bs_streamtab tab;
    bs_record rec;
    bs_arena a;
    int found = 0, hub;
    bs_err rv;

    *more = 0;
    /* a regional hub is entitled to every record: it relays them (looked
     * up once per cursor, not per record of a seed) */
    if (c->peer_kind == 0)
        c->peer_kind = bs_members_is_region(t, m, c->peer) ? 2 : 1;
    hub = c->peer_kind == 2;
    bs_access_name(t, m, c->peer, name);
    if ((rv = bs_rules_at(t, w->coll, UINT64_MAX, &rules, NULL)) != BS_OK)
        return rv;
    snprintf(rules.name, sizeof rules.name, "%s", w->coll);
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    if (!c->started) { /* what the answer covers: the data as it starts */
        free(c->covered);
        c->covered = NULL;
        c->ncovered = 0;
        c->after[0] = '\0';
        if (w->id[0] == '\0' && strcmp(w->coll, c->from.coll) == 0)
            memcpy(c->after, c->from.after, sizeof c->after); /* resumed */
        c->started = 1;
        if ((rv = bs_streams_vector(&tab, &c->covered, &c->ncovered)) !=
            BS_OK) {
            bs_streams_fini(&tab);
            return rv;
        }
    }
    bs_arena_init(&a);
    memset(&rec, 0, sizeof rec);
    if (w->id[0] != '\0' && c->after[0] == '\0') { /* one record */
        uint8_t key[BS_RECKEY_MAX];
        size_t kn = bs_record_key(key, w->coll, w->id);
        bs_slice v;

        snprintf(c->after, sizeof c->after, "%s", w->id);
        *more = 1;
        rv = bs_txn_get(t, BS_DB_RECORDS, bs_mem(key, kn), &v);
        if (rv == BS_OK && bs_record_decode(&rec, bs_arena_memdup(&a, v.p, v.n),
                                            v.n, &a) != BS_OK)
            rv = BS_ESTORE;
        if (rv == BS_OK && answers(hub, name, &rules, w->coll, &rec))
            rv = seal_record(c, m, sk, w->coll, w->id, &rec, rules.owner_field,
                             &tab, 0, NULL, 0, now_ms);
        else if (rv == BS_OK || rv == BS_ENOTFOUND)
            rv = BS_OK; /* not its record here (yet): it asks again */
    } else if (w->id[0] == '\0' &&
               (rv = next_in_coll(t, c, hub, name, &rules, w, &a, &rec,
                                  &found)) == BS_OK &&
               found) {
        rv = seal_record(c, m, sk, w->coll, c->after, &rec, rules.owner_field,
                         &tab, 0, NULL, 0, now_ms);
        *more = 1;
    } else if (rv == BS_OK) { /* the answer is complete */
        memset(&rec, 0, sizeof rec);
        rv = seal_record(c, m, sk, w->coll, w->id, &rec, "", &tab, 1,
                         c->covered, c->ncovered, now_ms);
    }
    bs_arena_fini(&a);
    bs_streams_fini(&tab);
    return rv;
}

bs_err
bs_movein_next(bs_txn *t, const bs_meta *m, const uint8_t *sk,
               bs_movein_cursor *c, uint64_t now_ms, uint8_t **out, size_t *n)
{
    int relay = 0;

    if (!m->joined)
        return BS_ENOTFOUND;
    if (memcmp(m->pk, m->hub, BS_PK_LEN) != 0) {
        if (c->bodies || !bs_relay_here(t, m))
            return BS_ENOTFOUND; /* only the hub, or a region relaying */
        relay = 1;
    }
    while (c->part == c->nparts) {
        int more;
        bs_err rv;

        drop_parts(c);
        while (!c->started && c->at < c->nwants && c->from.coll[0] != '\0' &&
               strcmp(c->wants[c->at].coll, c->from.coll) < 0)
            c->at++; /* a resumed seed: sent before */
        if (c->at == c->nwants)
            return BS_ENOTFOUND;
        if ((rv = relay ? bs_relay_serve(t, m, c, &more)
                        : serve_one(t, m, sk, c, now_ms, &more)) != BS_OK)
            return rv;
        if (!more) {
            c->at++;
            c->started = 0;
        }
    }
    *out = c->parts[c->part];
    *n = c->lens[c->part++];
    c->sent++;
    return BS_OK;
}

/* The end of a seed: a `done` marker with `seed`, covering the seed point
 * (the hub's vector in t, as its envelope's ack, without the quarantined
 * streams, whose anchors a seed does not carry: 8.5's bound); its body in
 * *out. */
bs_err
bs_movein_seed_marker(bs_txn *t, const bs_meta *m, const uint8_t *sk,
                      uint64_t now_ms, uint8_t **out, size_t *n)
{
    bs_streamtab tab;
    bs_snap s;
    bs_err rv;

    memset(&s, 0, sizeof s);
    memcpy(s.infobase, m->infobase, BS_INFOBASE_LEN);
    memcpy(s.hub, m->pk, BS_PK_LEN);
    s.done = s.seed = 1;
    s.created_ms = now_ms;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    if ((s.covered = calloc(tab.n + 1, sizeof *s.covered)) == NULL)
        rv = BS_ENOMEM;
    for (size_t i = 0; rv == BS_OK && i < tab.n; i++) {
        bs_pos *p = &s.covered[s.ncovered];
        if (tab.v[i].seq == 0 || (tab.v[i].flags & BS_STREAM_QUARANTINED))
            continue;
        memcpy(p->origin, tab.v[i].key, BS_PK_LEN);
        memcpy(p->inc, tab.v[i].key + BS_PK_LEN, BS_INC_LEN);
        p->seq = tab.v[i].seq;
        s.ncovered++;
    }
    if (rv == BS_OK)
        rv = sk != NULL ? bs_snap_encode(&s, sk, out, n)
                        : bs_snap_encode_body(&s, out, n);
    free(s.covered);
    bs_streams_fini(&tab);
    return rv;
}

bs_err
bs_movein_writers(bs_txn *t, uint8_t **out, size_t *n)
{
    bs_streamtab tab;
    bs_err rv;

    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    if (tab.n == 0 || tab.n > BS_SNAPBATCH_WRITERS_MAX)
        rv = BS_EINVAL;
    else if ((*out = malloc(tab.n * BS_STREAM_KEY_LEN)) == NULL)
        rv = BS_ENOMEM;
    for (size_t i = 0; rv == BS_OK && i < tab.n; i++)
        memcpy(*out + i * BS_STREAM_KEY_LEN, tab.v[i].key, BS_STREAM_KEY_LEN);
    if (rv == BS_OK)
        *n = tab.n;
    bs_streams_fini(&tab);
    return rv;
}

/* ---- wants ---- */

/* Every key under prefix p (pn bytes), through fn(ctx, rest of the key). */
static bs_err
each_key(bs_txn *t, const uint8_t *p, size_t pn,
         bs_err (*fn)(void *ctx, bs_slice rest), void *ctx)
{
    bs_cursor *cur;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(cur, bs_mem(p, pn), &k, &v);
         rv == BS_OK && k.n >= pn && memcmp(k.p, p, pn) == 0;
         rv = bs_cursor_next(cur, &k, &v))
        if ((rv = fn(ctx, (bs_slice){k.p + pn, k.n - pn})) != BS_OK)
            break;
    bs_cursor_close(cur);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

typedef struct want_list {
    bs_snapwant *v;
    size_t n, max;
} want_list;

/* coll \0 id -> a want */
static bs_err
add_want(void *ctx, bs_slice rest)
{
    want_list *l = ctx;
    const uint8_t *z = memchr(rest.p, 0, rest.n);
    size_t cn, in;
    bs_snapwant *g;

    if (l->n == l->max)
        return BS_ENOTFOUND; /* enough: stops the walk */
    if (z == NULL || (cn = (size_t)(z - rest.p)) > BS_COLLECTION_MAX ||
        (in = rest.n - cn - 1) > BS_ID_MAX)
        return BS_ESTORE;
    if ((g = realloc(l->v, (l->n + 1) * sizeof *g)) == NULL)
        return BS_ENOMEM;
    l->v = g;
    memset(&g[l->n], 0, sizeof *g);
    memcpy(g[l->n].coll, rest.p, cn);
    g[l->n].coll[cn] = '\0';
    memcpy(g[l->n].id, z + 1, in);
    g[l->n++].id[in] = '\0';
    return BS_OK;
}

bs_err
bs_movein_want(bs_txn *t, const bs_meta *m, const char *coll, const char *id)
{
    uint8_t k[KEY_MAX];

    if (!m->joined || memcmp(m->pk, m->hub, BS_PK_LEN) == 0 || coll[0] == '_')
        return BS_OK; /* the hub holds everything */
    return bs_txn_put(
        t, BS_DB_META,
        bs_mem(k, key_of(k, WANT_PREFIX, NULL, coll, id != NULL ? id : "")),
        bs_mem("", 0), 0, NULL);
}

bs_err
bs_movein_wants(bs_txn *t, size_t max, bs_snapwant **w, size_t *n)
{
    want_list l = {NULL, 0, max};
    bs_err rv = each_key(t, (const uint8_t *)WANT_PREFIX, 4, add_want, &l);

    if (rv != BS_OK) {
        free(l.v);
        return rv;
    }
    *w = l.v;
    *n = l.n;
    return BS_OK;
}

bs_err
bs_movein_collections(bs_txn *t, bs_snapwant **w, size_t *n)
{
    want_list l = {NULL, 0, SIZE_MAX};
    uint8_t next[BS_COLLECTION_MAX + 1];
    bs_cursor *cur;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &cur)) != BS_OK)
        return rv;
    /* one seek per collection: past "C\0..." is "C\1" */
    for (rv = bs_cursor_first(cur, &k, &v); rv == BS_OK;
         rv = bs_cursor_seek(cur, bs_mem(next, k.n), &k, &v)) {
        const uint8_t *z = memchr(k.p, 0, k.n);

        if (z == NULL || (size_t)(z - k.p) > BS_COLLECTION_MAX) {
            rv = BS_ESTORE;
            break;
        }
        k.n = (size_t)(z - k.p);
        if (k.p[0] != '_' &&
            (rv = add_want(&l, (bs_slice){k.p, k.n + 1})) != BS_OK)
            break;
        memcpy(next, k.p, k.n);
        next[k.n++] = 1;
    }
    bs_cursor_close(cur);
    if (rv != BS_OK && rv != BS_ENOTFOUND) {
        free(l.v);
        return rv;
    }
    *w = l.v;
    *n = l.n;
    return BS_OK;
}

bs_err
bs_movein_forget(bs_txn *t, const char *coll, const char *id)
{
    uint8_t k[KEY_MAX];
    bs_err rv;

    if ((rv = del_key(t, k, key_of(k, WANT_PREFIX, NULL, coll, id))) != BS_OK)
        return rv;
    return del_key(t, k, key_of(k, BASE_PREFIX, NULL, coll, id));
}

/* ---- a peer's features and wants (at the hub) ---- */

typedef struct del_ctx {
    bs_txn *t;
    uint8_t **keys;
    size_t *lens, n;
    const uint8_t *prefix;
} del_ctx;

static bs_err
note_del(void *ctx, bs_slice rest)
{
    del_ctx *d = ctx;
    uint8_t **nk, *k;
    size_t *nl;

    if ((k = malloc(4 + BS_PK_LEN + rest.n)) == NULL)
        return BS_ENOMEM;
    memcpy(k, d->prefix, 4 + BS_PK_LEN);
    memcpy(k + 4 + BS_PK_LEN, rest.p, rest.n);
    if ((nk = realloc(d->keys, (d->n + 1) * sizeof *nk)) == NULL) {
        free(k);
        return BS_ENOMEM;
    }
    d->keys = nk;
    if ((nl = realloc(d->lens, (d->n + 1) * sizeof *nl)) == NULL) {
        free(k);
        return BS_ENOMEM;
    }
    d->lens = nl;
    nk[d->n] = k;
    nl[d->n++] = 4 + BS_PK_LEN + rest.n;
    return BS_OK;
}

bs_err
bs_movein_note_peer(bs_txn *t, const uint8_t *pk, uint32_t features,
                    const bs_snapwant *w, size_t n)
{
    uint8_t p[4 + BS_PK_LEN], k[KEY_MAX], f[4];
    del_ctx d = {t, NULL, NULL, 0, p};
    bs_err rv;

    memcpy(p, PWANT_PREFIX, 4);
    memcpy(p + 4, pk, BS_PK_LEN);
    /* the wants it no longer has go (collected first: not under the walk) */
    rv = each_key(t, p, sizeof p, note_del, &d);
    for (size_t i = 0; i < d.n; i++) {
        if (rv == BS_OK)
            rv = del_key(t, d.keys[i], d.lens[i]);
        free(d.keys[i]);
    }
    free(d.keys);
    free(d.lens);
    for (size_t i = 0; i < n && rv == BS_OK; i++)
        if (w[i].after[0] == '\0') /* else where a seed resumes */
            rv = bs_txn_put(
                t, BS_DB_META,
                bs_mem(k, key_of(k, PWANT_PREFIX, pk, w[i].coll, w[i].id)),
                bs_mem("", 0), 0, NULL);
    if (rv != BS_OK)
        return rv;
    memcpy(k, PFEAT_PREFIX, 4);
    memcpy(k + 4, pk, BS_PK_LEN);
    bs_put_u32be(f, features);
    return bs_txn_put(t, BS_DB_META, bs_mem(k, 4 + BS_PK_LEN), bs_mem(f, 4), 0,
                      NULL);
}

bs_err
bs_movein_peer(bs_txn *t, const uint8_t *pk, uint32_t *features,
               bs_snapwant **w, size_t *n)
{
    uint8_t k[4 + BS_PK_LEN];
    want_list l = {NULL, 0, SIZE_MAX};
    bs_slice v;
    bs_err rv;

    *features = 0;
    *w = NULL;
    *n = 0;
    memcpy(k, PFEAT_PREFIX, 4);
    memcpy(k + 4, pk, BS_PK_LEN);
    rv = bs_txn_get(t, BS_DB_META, bs_mem(k, sizeof k), &v);
    if (rv == BS_ENOTFOUND)
        return BS_OK;
    if (rv != BS_OK)
        return rv;
    if (v.n != 4)
        return BS_ESTORE;
    *features = bs_get_u32be(v.p);
    memcpy(k, PWANT_PREFIX, 4);
    if ((rv = each_key(t, k, sizeof k, add_want, &l)) != BS_OK) {
        free(l.v);
        return rv;
    }
    *w = l.v;
    *n = l.n;
    return BS_OK;
}

bs_err
bs_movein_note_seed(bs_txn *t, const uint8_t *pk, int asked,
                    const bs_snapwant *w, size_t n)
{
    uint8_t k[4 + BS_PK_LEN], v[BS_COLLECTION_MAX + 1 + BS_ID_MAX];
    size_t vn = 0;

    memcpy(k, PSEED_PREFIX, 4);
    memcpy(k + 4, pk, BS_PK_LEN);
    if (!asked)
        return del_key(t, k, sizeof k);
    for (size_t i = 0; i < n && vn == 0; i++)
        if (w[i].after[0] != '\0') {
            size_t cn = strlen(w[i].coll), an = strlen(w[i].after);
            memcpy(v, w[i].coll, cn + 1);
            memcpy(v + cn + 1, w[i].after, an);
            vn = cn + 1 + an;
        }
    return bs_txn_put(t, BS_DB_META, bs_mem(k, sizeof k), bs_mem(v, vn), 0,
                      NULL);
}

bs_err
bs_movein_seed_peer(bs_txn *t, const uint8_t *pk)
{
    uint8_t k[4 + BS_PK_LEN];

    memcpy(k, PSEED_PREFIX, 4);
    memcpy(k + 4, pk, BS_PK_LEN);
    return bs_txn_put(t, BS_DB_META, bs_mem(k, sizeof k), bs_mem("", 0), 0,
                      NULL);
}

bs_err
bs_movein_peer_seed(bs_txn *t, const uint8_t *pk, bs_snapwant *from)
{
    uint8_t k[4 + BS_PK_LEN];
    const uint8_t *nul;
    bs_slice v;
    bs_err rv;

    memset(from, 0, sizeof *from);
    memcpy(k, PSEED_PREFIX, 4);
    memcpy(k + 4, pk, BS_PK_LEN);
    if ((rv = bs_txn_get(t, BS_DB_META, bs_mem(k, sizeof k), &v)) != BS_OK ||
        v.n == 0)
        return rv;
    if ((nul = memchr(v.p, 0, v.n)) == NULL ||
        (size_t)(nul - v.p) > BS_COLLECTION_MAX ||
        v.n - (size_t)(nul - v.p) - 1 > BS_ID_MAX)
        return BS_ESTORE;
    memcpy(from->coll, v.p, (size_t)(nul - v.p));
    memcpy(from->after, nul + 1, v.n - (size_t)(nul - v.p) - 1);
    return BS_OK;
}

/* ---- merging ---- */

/* The record's "snp:" entry alone (bs_movein_base without the flag). */
static bs_err
base_entry(bs_txn *t, const char *coll, const char *id, bs_record *r,
           bs_arena *a)
{
    uint8_t k[KEY_MAX];
    bs_slice v;
    bs_err rv;

    rv = bs_txn_get(t, BS_DB_META,
                    bs_mem(k, key_of(k, BASE_PREFIX, NULL, coll, id)), &v);
    if (rv != BS_OK)
        return rv;
    if ((v.p = bs_arena_memdup(a, v.p, v.n)) == NULL)
        return BS_ENOMEM;
    return bs_record_decode(r, v.p, v.n, a) == BS_OK ? BS_OK : BS_ESTORE;
}

bs_err
bs_movein_base(bs_txn *t, const char *coll, const char *id, bs_record *r,
               bs_arena *a)
{
    uint8_t key[BS_RECKEY_MAX];
    bs_slice v;
    bs_err rv = base_entry(t, coll, id, r, a);

    if (rv != BS_ENOTFOUND)
        return rv; /* an entry wins over the flag */
    rv = bs_txn_get(t, BS_DB_RECORDS, bs_mem(key, bs_record_key(key, coll, id)),
                    &v);
    if (rv != BS_OK)
        return rv;
    if (!bs_record_own_base(v.p, v.n))
        return BS_ENOTFOUND;
    if ((v.p = bs_arena_memdup(a, v.p, v.n)) == NULL)
        return BS_ENOMEM;
    return bs_record_decode(r, v.p, v.n, a) == BS_OK ? BS_OK : BS_ESTORE;
}

bs_err
bs_movein_base_keep(bs_txn *t, const char *coll, const char *id, bs_slice old)
{
    uint8_t k[KEY_MAX], rk[BS_RECKEY_MAX], *copy;
    bs_slice existing;
    bs_err rv;

    if (old.p == NULL) {
        rv = bs_txn_get(t, BS_DB_RECORDS,
                        bs_mem(rk, bs_record_key(rk, coll, id)), &old);
        if (rv != BS_OK)
            return rv == BS_ENOTFOUND ? BS_OK : rv;
    }
    if (!bs_record_own_base(old.p, old.n))
        return BS_OK;
    /* a copy: old may be LMDB's page, which the put below may move */
    if ((copy = malloc(old.n)) == NULL)
        return BS_ENOMEM;
    memcpy(copy, old.p, old.n);
    bs_record_clear_own_base(copy);
    rv = bs_txn_put(t, BS_DB_META,
                    bs_mem(k, key_of(k, BASE_PREFIX, NULL, coll, id)),
                    bs_mem(copy, old.n), BS_PUT_NOOVERWRITE, &existing);
    free(copy);
    return rv == BS_EEXIST ? BS_OK : rv; /* an entry wins over the flag */
}

bs_err
bs_movein_base_put(bs_txn *t, const char *coll, const char *id,
                   const bs_record *r, bs_arena *a)
{
    uint8_t k[KEY_MAX], *dst;
    bs_recenc e;
    bs_err rv;

    if ((rv = bs_record_prepare(r, a, &e)) != BS_OK ||
        (rv = bs_txn_reserve(t, BS_DB_META,
                             bs_mem(k, key_of(k, BASE_PREFIX, NULL, coll, id)),
                             e.size, 0, &dst, NULL)) != BS_OK)
        return rv;
    bs_record_encode(r, &e, dst);
    return BS_OK;
}

/* A snapshot version as a node-local one (the stream added at seq 0 when
 * new here, as admission adds a set's). */
static bs_err
local_version(bs_apply *ap, const bs_snapver *sv, bs_version *out)
{
    bs_stream *s = bs_streams_find(&ap->streams, sv->key, sv->key + BS_PK_LEN);
    bs_err rv;

    if (s == NULL && (rv = bs_streams_add(ap->txn, &ap->streams, sv->key,
                                          sv->key + BS_PK_LEN, &s)) != BS_OK)
        return rv;
    *out = (bs_version){sv->hlc, sv->seq, s->idx, sv->prio};
    return BS_OK;
}

/* Merge s into r under order o: the last upsert's version, the delete,
 * then each field with its own (upserts of one field each). */
static bs_err
merge_into(bs_apply *ap, bs_record *r, const bs_snap *s, const bs_order *o,
           int *changed)
{
    int ch = 0;
    bs_version v;
    bs_err rv;

    *changed = 0;
    if (s->has_alive && ((rv = local_version(ap, &s->alive, &v)) != BS_OK ||
                         (rv = bs_record_merge(r, 0, NULL, 0, &v, o,
                                               &ap->scratch, &ch)) != BS_OK))
        return rv;
    *changed |= ch;
    if (s->has_tomb && ((rv = local_version(ap, &s->tomb, &v)) != BS_OK ||
                        (rv = bs_record_merge(r, 1, NULL, 0, &v, o,
                                              &ap->scratch, &ch)) != BS_OK))
        return rv;
    *changed |= ch;
    for (size_t i = 0; i < s->nfields; i++) {
        bs_field f;

        memset(&f, 0, sizeof f);
        f.name = s->fields[i].name;
        f.namelen = (uint16_t)strlen(f.name);
        f.val = s->fields[i].val;
        if ((rv = local_version(ap, &s->fields[i].ver, &v)) != BS_OK ||
            (rv = bs_record_merge(r, 0, &f, 1, &v, o, &ap->scratch, &ch)) !=
                BS_OK)
            return rv;
        *changed |= ch;
    }
    return BS_OK;
}

/* The record snapshot s creates (there was none): what merge_into gives
 * an empty record, without its merge per field — the upsert's version,
 * the delete's, and each field with its own unless the delete is newer;
 * `alive` the greatest upsert (a field's included), as bs_record_merge
 * keeps it.  Debug builds check the two agree on every seeded record. */
static bs_err
merge_fresh(bs_apply *ap, bs_record *r, const bs_snap *s, const bs_order *o,
            int *changed)
{
    bs_version v;
    bs_err rv;

    memset(r, 0, sizeof *r);
    if ((s->has_alive &&
         (rv = local_version(ap, &s->alive, &r->alive)) != BS_OK) ||
        (s->has_tomb && (rv = local_version(ap, &s->tomb, &r->tomb)) != BS_OK))
        return rv;
    r->has_alive = s->has_alive;
    r->has_tomb = s->has_tomb;
    if (s->nfields > 0 &&
        (r->fields = bs_arena_alloc(&ap->scratch,
                                    s->nfields * sizeof *r->fields)) == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < s->nfields; i++) {
        bs_field *f = &r->fields[r->nfields];

        if ((rv = local_version(ap, &s->fields[i].ver, &v)) != BS_OK)
            return rv;
        if (!r->has_alive || bs_version_cmp(&v, &r->alive, o) > 0) {
            r->has_alive = 1;
            r->alive = v;
        }
        if (r->has_tomb && bs_version_cmp(&v, &r->tomb, o) <= 0)
            continue; /* older than the delete */
        memset(f, 0, sizeof *f);
        f->name = s->fields[i].name;
        f->namelen = (uint16_t)strlen(f->name);
        f->val = s->fields[i].val;
        f->ver = v;
        r->nfields++;
    }
    r->live = bs_record_live(r, o);
    *changed = r->has_alive || r->has_tomb;
#ifndef NDEBUG
    {
        bs_record slow;
        int ch;

        memset(&slow, 0, sizeof slow);
        BS_ASSERT(merge_into(ap, &slow, s, o, &ch) == BS_OK);
        BS_ASSERT(ch == *changed && slow.live == r->live &&
                  slow.has_alive == r->has_alive &&
                  slow.has_tomb == r->has_tomb && slow.nfields == r->nfields);
        BS_ASSERT(!r->has_alive ||
                  bs_version_cmp(&slow.alive, &r->alive, o) == 0);
        BS_ASSERT(!r->has_tomb || bs_version_cmp(&slow.tomb, &r->tomb, o) == 0);
        for (size_t i = 0; i < r->nfields; i++)
            BS_ASSERT(
                strcmp(slow.fields[i].name, r->fields[i].name) == 0 &&
                bs_value_eq(&slow.fields[i].val, &r->fields[i].val) &&
                bs_version_cmp(&slow.fields[i].ver, &r->fields[i].ver, o) == 0);
    }
#endif
    return BS_OK;
}

/* Whether collection coll has no base entry at all ("snp:" coll \0 ...):
 * then a record a snapshot creates has none either, without a look-up.
 * Asked once per collection and run of snapshots (sets empty the cache:
 * none but a set's rebuild or release writes an entry for a record that
 * is not stored). */
static bs_err
no_bases(bs_apply *ap, const char *coll, int *none)
{
    uint8_t k[KEY_MAX];
    size_t kn;
    bs_cursor *c;
    bs_slice fk, fv;
    bs_err rv;

    if (ap->nobase_ok && strcmp(ap->nobase_coll, coll) == 0) {
        *none = ap->nobase;
        return BS_OK;
    }
    kn = key_of(k, BASE_PREFIX, NULL, coll, "");
    if ((rv = bs_cursor_open(ap->txn, BS_DB_META, &c)) != BS_OK)
        return rv;
    rv = bs_cursor_seek(c, bs_mem(k, kn), &fk, &fv);
    *none = rv == BS_ENOTFOUND ||
            (rv == BS_OK && (fk.n < kn || memcmp(fk.p, k, kn) != 0));
    bs_cursor_close(c);
    if (rv != BS_OK && rv != BS_ENOTFOUND)
        return rv;
    snprintf(ap->nobase_coll, sizeof ap->nobase_coll, "%s", coll);
    ap->nobase = *none;
    ap->nobase_ok = 1;
    return BS_OK;
}

/* Write r (encoded) under key k of db.  For the records table (s the
 * snapshot merged): with own set, r is its own base (BS_RECORD_OWN_BASE);
 * else the base the record stored as old (NULL: none) implies is kept
 * first (bs_movein_base_keep). */
static bs_err
put_record(bs_apply *ap, bs_db db, const uint8_t *k, size_t kn,
           const bs_record *r, const bs_snap *s, const bs_slice *old, int own)
{
    bs_recenc e;
    uint8_t *dst;
    bs_err rv;

    if (db == BS_DB_RECORDS && !own && old != NULL &&
        (rv = bs_movein_base_keep(ap->txn, s->coll, s->id, *old)) != BS_OK)
        return rv;
    if ((rv = bs_record_prepare(r, &ap->scratch, &e)) != BS_OK)
        return rv;
    /* a record new here, in key order (a seed's): appended if it sorts
     * last, which spares LMDB the search */
    rv = db == BS_DB_RECORDS && old == NULL
             ? bs_txn_reserve(ap->txn, db, bs_mem(k, kn), e.size, BS_PUT_APPEND,
                              &dst, NULL)
             : BS_EEXIST;
    if (rv == BS_EEXIST)
        rv = bs_txn_reserve(ap->txn, db, bs_mem(k, kn), e.size, 0, &dst, NULL);
    if (rv != BS_OK)
        return rv;
    bs_record_encode(r, &e, dst);
    if (db == BS_DB_RECORDS && own)
        bs_record_set_own_base(dst);
    return BS_OK;
}

/* The owner history (access.h) learns the owner the snapshot's version
 * of the owner field (or its delete) gave the record; the owner field's
 * entry is implied, and not written, when record r as merged holds the
 * field at that version (bs_access_owner_implied; a seed's every record).
 * A delete's entry is always written. */
static bs_err
note_owner(bs_apply *ap, const bs_snap *s, const char *owner_field,
           const bs_record *r)
{
    bs_version cv;
    bs_err rv;
    const bs_snapfield *of = NULL;
    bs_change c;
    bs_field f;

    if (owner_field[0] == '\0')
        return BS_OK;
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].name, owner_field) == 0)
            of = &s->fields[i];
    memset(&c, 0, sizeof c);
    c.coll = s->coll;
    c.id = s->id;
    if (s->has_tomb) {
        c.deleted = 1;
        c.hlc = s->tomb.hlc;
        c.seq = s->tomb.seq;
        if ((rv = bs_access_note_owner(ap->txn, &c, s->tomb.key,
                                       owner_field)) != BS_OK)
            return rv;
    }
    if (of == NULL)
        return BS_OK;
    memset(&f, 0, sizeof f);
    f.name = of->name;
    f.namelen = (uint16_t)strlen(of->name);
    f.val = of->val;
    c.deleted = 0;
    c.fields = &f;
    c.nfields = 1;
    c.hlc = of->ver.hlc;
    c.seq = of->ver.seq;
    if ((rv = local_version(ap, &of->ver, &cv)) != BS_OK)
        return rv;
    if (bs_access_owner_implied(&c, &cv, r, owner_field))
        return BS_OK; /* the record says the same */
    return bs_access_note_owner(ap->txn, &c, of->ver.key, owner_field);
}

/* ---- seeding (docs/design.md "Snapshot bootstrap") ---- */

/*
 * sed: -> u64be records merged | u16be len coll | coll | u16be len id | id
 *         | u32be n | n x (origin(32) inc(16) u64be seq): the seed point
 */
bs_err
bs_movein_seed_get(bs_txn *t, bs_seeding *out)
{
    bs_slice v;
    size_t at = 8, cn, in, n;
    bs_err rv;

    memset(out, 0, sizeof *out);
    if ((rv = bs_txn_get(t, BS_DB_META, bs_mem(SEED_KEY, 4), &v)) != BS_OK)
        return rv;
    if (v.n < 8 + 2)
        return BS_ESTORE;
    out->records = bs_get_u64be(v.p);
    cn = (size_t)v.p[at] << 8 | v.p[at + 1];
    if (cn > BS_COLLECTION_MAX || v.n < at + 2 + cn + 2)
        return BS_ESTORE;
    memcpy(out->coll, v.p + at + 2, cn);
    at += 2 + cn;
    in = (size_t)v.p[at] << 8 | v.p[at + 1];
    if (in > BS_ID_MAX || v.n < at + 2 + in + 4)
        return BS_ESTORE;
    memcpy(out->id, v.p + at + 2, in);
    at += 2 + in;
    n = bs_get_u32be(v.p + at);
    at += 4;
    if (n > BS_SEEN_MAX || v.n != at + n * (BS_PK_LEN + BS_INC_LEN + 8))
        return BS_ESTORE;
    if (n > 0 && (out->point = calloc(n, sizeof *out->point)) == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < n; i++, at += BS_PK_LEN + BS_INC_LEN + 8) {
        memcpy(out->point[i].origin, v.p + at, BS_PK_LEN);
        memcpy(out->point[i].inc, v.p + at + BS_PK_LEN, BS_INC_LEN);
        out->point[i].seq = bs_get_u64be(v.p + at + BS_PK_LEN + BS_INC_LEN);
    }
    out->npoint = n;
    return BS_OK;
}

void
bs_seeding_fini(bs_seeding *s)
{
    free(s->point);
    s->point = NULL;
    s->npoint = 0;
}

static bs_err
seed_put(bs_txn *t, const bs_seeding *s)
{
    size_t cn = strlen(s->coll), in = strlen(s->id), at = 8;
    size_t n =
        8 + 2 + cn + 2 + in + 4 + s->npoint * (BS_PK_LEN + BS_INC_LEN + 8);
    uint8_t *v = malloc(n);
    bs_err rv;

    if (v == NULL)
        return BS_ENOMEM;
    bs_put_u64be(v, s->records);
    v[at] = (uint8_t)(cn >> 8);
    v[at + 1] = (uint8_t)cn;
    memcpy(v + at + 2, s->coll, cn);
    at += 2 + cn;
    v[at] = (uint8_t)(in >> 8);
    v[at + 1] = (uint8_t)in;
    memcpy(v + at + 2, s->id, in);
    at += 2 + in;
    bs_put_u32be(v + at, (uint32_t)s->npoint);
    at += 4;
    for (size_t i = 0; i < s->npoint; i++, at += BS_PK_LEN + BS_INC_LEN + 8) {
        memcpy(v + at, s->point[i].origin, BS_PK_LEN);
        memcpy(v + at + BS_PK_LEN, s->point[i].inc, BS_INC_LEN);
        bs_put_u64be(v + at + BS_PK_LEN + BS_INC_LEN, s->point[i].seq);
    }
    rv = bs_txn_put(t, BS_DB_META, bs_mem(SEED_KEY, 4), bs_mem(v, n), 0, NULL);
    free(v);
    return rv;
}

bs_err
bs_movein_seed_begin(bs_txn *t, const bs_pos *point, size_t n)
{
    bs_seeding s;
    bs_err rv = bs_movein_seed_get(t, &s);

    if (rv != BS_OK && rv != BS_ENOTFOUND)
        return rv;
    bs_seeding_fini(&s); /* where it stood and what it counted stay */
    s.point = (bs_pos *)point;
    s.npoint = n;
    return seed_put(t, &s);
}

bs_err
bs_movein_seed_progress(bs_txn *t, const char *coll, const char *id,
                        uint64_t records)
{
    bs_seeding s;
    bs_err rv = bs_movein_seed_get(t, &s);

    if (rv == BS_ENOTFOUND)
        return BS_OK; /* finished in this transaction, or not seeding */
    if (rv == BS_OK) {
        snprintf(s.coll, sizeof s.coll, "%s", coll);
        snprintf(s.id, sizeof s.id, "%s", id);
        s.records += records;
        rv = seed_put(t, &s);
    }
    bs_seeding_fini(&s);
    return rv;
}

/* The seed marker: the seed is complete when this branch's position of
 * every stream of the seed point (but its own) reached it: every anchor
 * arrived.  Positions come from the anchors (origin-signed), never from
 * the marker's vector.  Else it stays seeding and asks again. */
static bs_err
seed_finish(bs_apply *ap, const bs_snap *s)
{
    for (size_t k = 0; k < s->ncovered; k++) {
        const bs_stream *st;

        if (memcmp(s->covered[k].origin, ap->meta.pk, BS_PK_LEN) == 0 ||
            s->covered[k].seq == 0)
            continue;
        st = bs_streams_find(&ap->streams, s->covered[k].origin,
                             s->covered[k].inc);
        if (st == NULL || st->seq < s->covered[k].seq)
            return BS_OK; /* an anchor is missing: still seeding */
    }
    return del_key(ap->txn, (const uint8_t *)SEED_KEY, 4);
}

/* The answer to want (coll, id) ended: it is met when the hub's data then
 * covered what this branch holds of every other node's streams; else a
 * change the branch passed over (outside its scope then) may not have
 * reached the hub, and the branch asks again. */
static bs_err
done(bs_apply *ap, const bs_snap *s)
{
    uint8_t bk[KEY_MAX];

    for (size_t i = 0; i < ap->streams.n; i++) {
        const bs_stream *st = &ap->streams.v[i];
        uint64_t hub = 0;

        if (st->seq == 0 || memcmp(st->key, ap->meta.pk, BS_PK_LEN) == 0)
            continue;
        for (size_t k = 0; k < s->ncovered; k++)
            if (memcmp(s->covered[k].origin, st->key, BS_PK_LEN) == 0 &&
                memcmp(s->covered[k].inc, st->key + BS_PK_LEN, BS_INC_LEN) == 0)
                hub = s->covered[k].seq;
        if (hub < st->seq)
            return BS_OK; /* asked again */
    }
    return del_key(ap->txn, bk, key_of(bk, WANT_PREFIX, NULL, s->coll, s->id));
}

bs_err
bs_movein_merge(bs_apply *ap, const bs_snap *s, bs_errbuf *err)
{
    uint8_t key[BS_RECKEY_MAX], bk[KEY_MAX];
    size_t kn, bn;
    bs_order o = {0, bs_streams_key, &ap->streams};
    char of[BS_FIELD_NAME_MAX + 1];
    const char *field;
    bs_policy pol;
    bs_record r, base;
    bs_owner_mark mark;
    bs_slice old = {NULL, 0};
    int changed, bchanged, fresh, own, none = 0;
    bs_err rv;

    if (s->done && s->seed) /* the end of a seed: is it complete? */
        return seed_finish(ap, s);
    /* a regional hub keeps the hub's answer for its branches (a seed's
     * batches it does not: their signature covers the whole batch) */
    if (!s->batched && bs_relay_here(ap->txn, &ap->meta) &&
        (rv = bs_relay_keep(ap->txn, s)) != BS_OK)
        return rv;
    if (s->done) /* the end of an answer: is the want met? */
        return done(ap, s);
    if ((rv = bs_apply_rules(ap, s->coll, &pol, &field)) != BS_OK)
        return rv;
    snprintf(of, sizeof of, "%s", field);
    o.use_prio = pol == BS_POLICY_PRIORITY;
    kn = bs_record_key(key, s->coll, s->id);
    memset(&r, 0, sizeof r);
    rv = bs_txn_get(ap->txn, BS_DB_RECORDS, bs_mem(key, kn), &old);
    if (rv == BS_OK) {
        if ((old.p = bs_arena_memdup(&ap->scratch, old.p, old.n)) == NULL)
            return BS_ENOMEM;
        if (bs_record_decode(&r, old.p, old.n, &ap->scratch) != BS_OK)
            return bs_errf(err, BS_ESTORE, "%s/%s: stored record is corrupt",
                           s->coll, s->id);
    } else if (rv != BS_ENOTFOUND) {
        return rv;
    }
    fresh = rv == BS_ENOTFOUND;
    /* the base a rebuild starts from: its entry, if any */
    memset(&base, 0, sizeof base);
    if (fresh && (rv = no_bases(ap, s->coll, &none)) != BS_OK)
        return rv;
    rv = fresh && none
             ? BS_ENOTFOUND
             : base_entry(ap->txn, s->coll, s->id, &base, &ap->scratch);
    if (rv != BS_OK && rv != BS_ENOTFOUND)
        return rv;
    /* without an entry, a record the snapshot creates (a seed's every
     * record) is its own base, and so stays one that was: merging the
     * snapshot into the base or into the record gives the same record,
     * so neither writes "snp:" (BS_RECORD_OWN_BASE, storage.md 3.2) */
    own = rv == BS_ENOTFOUND && (fresh || bs_record_own_base(old.p, old.n));
    /* the owner the record held: kept if the snapshot replaces it
     * (access.h) */
    bs_access_owner_mark(&r, s->coll[0] != '_' ? of : NULL, &mark);
    if ((rv = (fresh ? merge_fresh : merge_into)(ap, &r, s, &o, &changed)) !=
        BS_OK)
        return rv;
    if (changed &&
        ((rv = bs_access_owner_keep(ap->txn, s->coll, s->id, &mark, &r, &o)) !=
             BS_OK ||
         (rv = put_record(ap, BS_DB_RECORDS, key, kn, &r, s,
                          fresh ? NULL : &old, own)) != BS_OK ||
         (rv = bs_changes_note_record(ap->txn, s->coll, s->id, &r)) != BS_OK))
        return rv;
    bn = key_of(bk, BASE_PREFIX, NULL, s->coll, s->id);
    if (!own && ((rv = merge_into(ap, &base, s, &o, &bchanged)) != BS_OK ||
                 (bchanged && (rv = put_record(ap, BS_DB_META, bk, bn, &base, s,
                                               NULL, 0)) != BS_OK)))
        return rv;
    if ((rv = note_owner(ap, s, of, &r)) != BS_OK)
        return rv;
    /* the record as merged decides (move-out, protocol.md 7.2); one new
     * here holds the snapshot's fields alone, whose owner N12 found in
     * this node's scope by the same rules (bs_apply_snapshot admitted it
     * in this transaction; N12 judges only a snapshot with fields):
     * nothing to drop (a seed's every record) */
    if (fresh && s->nfields > 0)
        return BS_OK;
    return bs_scope_drop_foreign(ap->txn, &ap->meta, s->coll, s->id, NULL);
}
