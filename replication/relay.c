/*
 * relay.c - a regional hub relays the hub's record snapshots to its
 * branches and seeds them from them (relay.h; docs/protocol.md 7.3
 * "Through a regional hub" and 8.9).
 */
#include "relay.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "compact.h"
#include "members.h"
#include "rules.h"
#include "scope.h"

#define RSNAP_PREFIX                                                           \
    "rsc:" /* rsc: coll \0 id \0 H(body)[0..8) -> u64be created_ms |           \
              RecordSnapshot */
#define RDONE_PREFIX                                                           \
    "rdn:" /* rdn: coll \0 id -> the hub's latest done marker of want          \
              (coll, id), RecordSnapshot */
#define KEY_MAX  (4 + BS_COLLECTION_MAX + 1 + BS_ID_MAX)
#define RKEY_MAX (KEY_MAX + 1 + 8)

/* prefix coll \0 id */
static size_t
key_of(uint8_t *k, const char *prefix, const char *coll, const char *id)
{
    size_t cn = strlen(coll), in = strlen(id);

    memcpy(k, prefix, 4);
    memcpy(k + 4, coll, cn + 1);
    memcpy(k + 4 + cn + 1, id, in);
    return 4 + cn + 1 + in;
}

static bs_err
del_key(bs_txn *t, const uint8_t *k, size_t n)
{
    bs_err rv = bs_txn_del(t, BS_DB_META, bs_mem(k, n));

    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* Whether the receiver (name, a branch) gets record r of coll (S1's
 * test): a tombstone (no field: no data), or a record in its scope by
 * rules. */
static int
rec_answers(const char *name, const bs_collection *rules, const char *coll,
            const bs_record *r)
{
    char owner[BS_NODE_NAME_MAX + 1] = "";
    const bs_value *v;

    if (r->nfields == 0)
        return 1;
    if (rules->owner_field[0] != '\0' &&
        (v = bs_record_field(r, rules->owner_field)) != NULL &&
        v->type == BS_VTEXT && v->len <= BS_NODE_NAME_MAX)
        snprintf(owner, sizeof owner, "%.*s", (int)v->len, v->s);
    return bs_scope_entitled(0, name, rules, coll, owner, NULL);
}

int
bs_relay_here(bs_txn *t, const bs_meta *m)
{
    return m->joined && memcmp(m->pk, m->hub, BS_PK_LEN) != 0 &&
           bs_members_is_region(t, m, m->pk);
}

/* Whether the receiver (name) may get snapshot s by its own owner field
 * under rules: the test its N12 makes. */
static int
snap_answers(const char *name, const bs_collection *rules, const bs_snap *s)
{
    char owner[BS_NODE_NAME_MAX + 1] = "";
    const bs_value *v;

    if (s->nfields == 0)
        return 1;
    if (rules->owner_field[0] != '\0' &&
        (v = bs_snap_field(s, rules->owner_field)) != NULL &&
        v->type == BS_VTEXT && v->len <= BS_NODE_NAME_MAX)
        snprintf(owner, sizeof owner, "%.*s", (int)v->len, v->s);
    return bs_scope_entitled(0, name, rules, s->coll, owner, NULL);
}

static bs_err
push_part(bs_movein_cursor *c, const uint8_t *p, size_t n)
{
    uint8_t **np, *copy;
    size_t *nl;

    if ((copy = malloc(n)) == NULL)
        return BS_ENOMEM;
    memcpy(copy, p, n);
    if ((np = realloc(c->parts, (c->nparts + 1) * sizeof *np)) == NULL ||
        (c->parts = np,
         (nl = realloc(c->lens, (c->nparts + 1) * sizeof *nl)) == NULL)) {
        free(copy);
        return BS_ENOMEM;
    }
    c->lens = nl;
    c->parts[c->nparts] = copy;
    c->lens[c->nparts++] = n;
    return BS_OK;
}

/* The kept parts of record coll/id (key prefix k, kn bytes) that the
 * receiver is entitled to, queued on c: only while this node holds the
 * record (a record purged here is not brought back) and the receiver is
 * entitled to it both as this node holds it and as each part says. */
static bs_err
relay_parts(bs_txn *t, bs_movein_cursor *c, const char *name,
            const bs_collection *rules, const char *coll, const char *id,
            const uint8_t *k, size_t kn)
{
    uint8_t rk[BS_RECKEY_MAX];
    size_t rn = bs_record_key(rk, coll, id);
    bs_cursor *cur;
    bs_record rec;
    bs_slice kk, v;
    bs_arena a;
    bs_err rv;

    bs_arena_init(&a);
    memset(&rec, 0, sizeof rec);
    rv = bs_txn_get(t, BS_DB_RECORDS, bs_mem(rk, rn), &v);
    if (rv == BS_OK &&
        bs_record_decode(&rec, bs_arena_memdup(&a, v.p, v.n), v.n, &a) != BS_OK)
        rv = BS_ESTORE;
    if (rv != BS_OK || !rec_answers(name, rules, coll, &rec)) {
        bs_arena_fini(&a);
        return rv == BS_ENOTFOUND || rv == BS_OK ? BS_OK : rv;
    }
    bs_arena_fini(&a);
    if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(cur, bs_mem(k, kn), &kk, &v);
         rv == BS_OK && kk.n > kn && memcmp(kk.p, k, kn) == 0;
         rv = bs_cursor_next(cur, &kk, &v)) {
        bs_snap *sn;

        if (v.n <= 8 || bs_snap_decode(v.p + 8, v.n - 8, &sn, NULL) != BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        if (snap_answers(name, rules, sn))
            rv = push_part(c, v.p + 8, v.n - 8);
        bs_snap_free(sn);
        if (rv != BS_OK)
            break;
    }
    bs_cursor_close(cur);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/*
 * A regional hub serves want c->wants[c->at] from what it kept: the
 * hub's snapshots of the next record (in ID order) the receiver is
 * entitled to; *more 0 when the want is done (the hub's done marker
 * queued when it kept one: without it, the branch asks again).
 */
bs_err
bs_relay_serve(bs_txn *t, const bs_meta *m, bs_movein_cursor *c, int *more)
{
    const bs_snapwant *w = &c->wants[c->at];
    char name[BS_NODE_NAME_MAX + 1], id[BS_ID_MAX + 1];
    uint8_t k[RKEY_MAX];
    size_t pn, kn;
    bs_collection rules;
    bs_cursor *cur;
    bs_slice kk, v;
    bs_err rv;

    *more = 0;
    if (!c->started) {
        c->after[0] = '\0';
        if (w->id[0] == '\0' && strcmp(w->coll, c->from.coll) == 0)
            memcpy(c->after, c->from.after, sizeof c->after); /* resumed */
        c->started = 1;
    }
    bs_access_name(t, m, c->peer, name);
    if ((rv = bs_rules_at(t, w->coll, UINT64_MAX, &rules, NULL)) != BS_OK)
        return rv;
    snprintf(rules.name, sizeof rules.name, "%s", w->coll);
    pn = key_of(k, RSNAP_PREFIX, w->coll, "");
    id[0] = '\0';
    if (w->id[0] != '\0') { /* one record, once */
        if (c->after[0] == '\0')
            snprintf(id, sizeof id, "%s", w->id);
    } else { /* the next record of the collection kept after c->after */
        kn = key_of(k, RSNAP_PREFIX, w->coll, c->after);
        if (c->after[0] != '\0')
            k[kn++] = 1; /* past every key of c->after */
        if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK)
            return rv;
        rv = bs_cursor_seek(cur, bs_mem(k, kn), &kk, &v);
        if (rv == BS_OK && kk.n > pn && memcmp(kk.p, k, pn) == 0) {
            const uint8_t *z = memchr(kk.p + pn, 0, kk.n - pn);
            size_t in = z != NULL ? (size_t)(z - (kk.p + pn)) : 0;

            if (z == NULL || in == 0 || in > BS_ID_MAX)
                rv = BS_ESTORE;
            else {
                memcpy(id, kk.p + pn, in);
                id[in] = '\0';
            }
        }
        bs_cursor_close(cur);
        if (rv != BS_OK && rv != BS_ENOTFOUND)
            return rv;
    }
    if (id[0] != '\0') {
        snprintf(c->after, sizeof c->after, "%s", id);
        *more = 1;
        kn = key_of(k, RSNAP_PREFIX, w->coll, id);
        k[kn++] = 0;
        return relay_parts(t, c, name, &rules, w->coll, id, k, kn);
    }
    /* the answer is complete: the hub's marker, if kept */
    kn = key_of(k, RDONE_PREFIX, w->coll, w->id);
    rv = bs_txn_get(t, BS_DB_META, bs_mem(k, kn), &v);
    if (rv == BS_OK)
        return push_part(c, v.p, v.n);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* The kept marker of want (coll, "") decoded into *out (BS_ENOTFOUND: none
 * kept; BS_ESTORE: it does not decode). */
static bs_err
kept_marker(bs_txn *t, const char *coll, bs_snap **out)
{
    uint8_t k[KEY_MAX];
    bs_slice v;
    bs_err rv;

    rv = bs_txn_get(t, BS_DB_META, bs_mem(k, key_of(k, RDONE_PREFIX, coll, "")),
                    &v);
    if (rv != BS_OK)
        return rv;
    return bs_snap_decode(v.p, v.n, out, NULL) == BS_OK ? BS_OK : BS_ESTORE;
}

/* Delete the kept parts under key prefix k[0..pn) but those whose
 * created_ms `keep` spares (collected first: not under the walk). */
static bs_err
drop_parts(bs_txn *t, const uint8_t *k, size_t pn,
           int (*keep)(uint64_t created_ms, uint64_t ms), uint64_t ms)
{
    uint8_t(*del)[RKEY_MAX] = NULL;
    size_t *dl = NULL, nd = 0;
    bs_cursor *cur;
    bs_slice kk, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_META, &cur)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(cur, bs_mem(k, pn), &kk, &v);
         rv == BS_OK && kk.n > pn && kk.n <= RKEY_MAX &&
         memcmp(kk.p, k, pn) == 0;
         rv = bs_cursor_next(cur, &kk, &v)) {
        uint8_t(*nd2)[RKEY_MAX];
        size_t *nl;

        if (v.n >= 8 && keep(bs_get_u64be(v.p), ms))
            continue;
        if ((nd2 = realloc(del, (nd + 1) * sizeof *nd2)) == NULL ||
            (del = nd2, (nl = realloc(dl, (nd + 1) * sizeof *nl)) == NULL)) {
            rv = BS_ENOMEM;
            break;
        }
        dl = nl;
        memcpy(del[nd], kk.p, kk.n);
        dl[nd++] = kk.n;
    }
    bs_cursor_close(cur);
    if (rv == BS_ENOTFOUND)
        rv = BS_OK;
    for (size_t i = 0; i < nd && rv == BS_OK; i++)
        rv = del_key(t, del[i], dl[i]);
    free(del);
    free(dl);
    return rv;
}

static int
made_after(uint64_t created_ms, uint64_t ms)
{
    return created_ms > ms;
}

static int
made_at(uint64_t created_ms, uint64_t ms)
{
    return created_ms == ms;
}

/*
 * The hub's answer to (coll, "") just ended: it held every record of coll
 * (a regional hub is entitled to all), so a kept snapshot of coll made no
 * later than the end of the previous such answer (its marker's
 * created_ms) is of a record the hub no longer holds (purged): it goes,
 * else it could bring the record back at a branch.
 */
static bs_err
relay_prune(bs_txn *t, const char *coll)
{
    uint8_t k[RKEY_MAX];
    uint64_t before;
    bs_snap *mk;
    bs_err rv;

    if ((rv = kept_marker(t, coll, &mk)) != BS_OK)
        return rv == BS_ENOTFOUND ? BS_OK : rv;
    before = mk->created_ms;
    bs_snap_free(mk);
    return drop_parts(t, k, key_of(k, RSNAP_PREFIX, coll, ""), made_after,
                      before);
}

/* Keep admitted snapshot s (not of a batch) as the hub signed it, for this
 * regional hub's branches: a record's parts replace those of an earlier
 * answer (another created_ms); a done marker replaces the earlier one. */
bs_err
bs_relay_keep(bs_txn *t, const bs_snap *s)
{
    uint8_t k[RKEY_MAX], h[BS_HASH_LEN], *raw, *val;
    size_t kn, n, pn;
    bs_err rv;

    if ((rv = bs_snap_signed(s, &raw, &n)) != BS_OK)
        return rv;
    if (s->done) {
        if (s->id[0] == '\0' && (rv = relay_prune(t, s->coll)) != BS_OK) {
            free(raw);
            return rv;
        }
        kn = key_of(k, RDONE_PREFIX, s->coll, s->id);
        rv = bs_txn_put(t, BS_DB_META, bs_mem(k, kn), bs_mem(raw, n), 0, NULL);
        free(raw);
        return rv;
    }
    pn = key_of(k, RSNAP_PREFIX, s->coll, s->id);
    k[pn++] = 0;
    /* the parts of an earlier answer go; another part of this one stays */
    rv = drop_parts(t, k, pn, made_at, s->created_ms);
    bs_hash(h, s->body.p, s->body.n);
    memcpy(k + pn, h, 8);
    kn = pn + 8;
    if (rv == BS_OK && (val = malloc(8 + n)) == NULL)
        rv = BS_ENOMEM;
    if (rv == BS_OK) {
        bs_put_u64be(val, s->created_ms);
        memcpy(val + 8, raw, n);
        rv = bs_txn_put(t, BS_DB_META, bs_mem(k, kn), bs_mem(val, 8 + n), 0,
                        NULL);
        free(val);
    }
    free(raw);
    return rv;
}

/* Whether done marker raw (the hub's, kept) covers vector ack[0..n) but
 * the streams of `sender`: M1 as that branch will judge it. */
static int
marker_covers(const bs_slice raw, const bs_pos *ack, size_t n,
              const uint8_t *sender)
{
    bs_snap *s;
    int ok = 1;

    if (bs_snap_decode(raw.p, raw.n, &s, NULL) != BS_OK)
        return 0;
    for (size_t i = 0; i < n && ok; i++) {
        uint64_t hub = 0;

        if (ack[i].seq == 0 || memcmp(ack[i].origin, sender, BS_PK_LEN) == 0)
            continue;
        for (size_t j = 0; j < s->ncovered; j++)
            if (memcmp(s->covered[j].origin, ack[i].origin, BS_PK_LEN) == 0 &&
                memcmp(s->covered[j].inc, ack[i].inc, BS_INC_LEN) == 0)
                hub = s->covered[j].seq;
        ok = hub >= ack[i].seq;
    }
    bs_snap_free(s);
    return ok;
}

/* ---- a regional hub: seeding its branches from the hub's answers ---- */

bs_err
bs_relay_seed_point(bs_txn *t, const bs_meta *m, bs_pos **point, size_t *n)
{
    bs_snapwant *w = NULL;
    bs_streamtab tab;
    size_t nw = 0, np = 0;
    bs_pos *p = NULL;
    bs_err rv;

    *point = NULL;
    *n = 0;
    if (!bs_relay_here(t, m))
        return BS_ENOTFOUND;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    if ((rv = bs_movein_collections(t, &w, &nw)) == BS_OK &&
        (p = calloc(tab.n + 1, sizeof *p)) == NULL)
        rv = BS_ENOMEM;
    for (size_t i = 0; rv == BS_OK && i < tab.n; i++) { /* its own vector */
        if (tab.v[i].seq == 0 || (tab.v[i].flags & BS_STREAM_QUARANTINED))
            continue;
        memcpy(p[np].origin, tab.v[i].key, BS_PK_LEN);
        memcpy(p[np].inc, tab.v[i].key + BS_PK_LEN, BS_INC_LEN);
        p[np++].seq = tab.v[i].seq;
    }
    for (size_t c = 0; rv == BS_OK && c < nw; c++) { /* no later than each */
        bs_snap *mk;

        if ((rv = kept_marker(t, w[c].coll, &mk)) != BS_OK)
            break;
        for (size_t i = 0; i < np; i++) {
            uint64_t hub = 0;
            for (size_t j = 0; j < mk->ncovered; j++)
                if (memcmp(mk->covered[j].origin, p[i].origin, BS_PK_LEN) ==
                        0 &&
                    memcmp(mk->covered[j].inc, p[i].inc, BS_INC_LEN) == 0)
                    hub = mk->covered[j].seq;
            if (hub < p[i].seq)
                p[i].seq = hub;
        }
        bs_snap_free(mk);
    }
    for (size_t i = 0; rv == BS_OK && i < np; i++) { /* every set still held */
        const bs_stream *st = bs_streams_find(&tab, p[i].origin, p[i].inc);
        uint64_t floor = 0;

        if (st != NULL &&
            (rv = bs_compact_floor(t, st->idx, &floor)) == BS_OK &&
            p[i].seq < floor)
            rv = BS_ENOTFOUND;
    }
    if (rv == BS_OK) { /* the streams it holds at seq > 0 only */
        size_t k = 0;
        for (size_t i = 0; i < np; i++)
            if (p[i].seq > 0)
                p[k++] = p[i];
        np = k;
    }
    free(w);
    bs_streams_fini(&tab);
    if (rv != BS_OK) {
        free(p);
        return rv;
    }
    *point = p;
    *n = np;
    return BS_OK;
}

/* Note a want of every collection whose kept answer does not cover this
 * regional hub's vector (write txn): what seeding a branch needs next. */
static bs_err
relay_refresh(bs_txn *t, const bs_meta *m)
{
    bs_snapwant *w = NULL;
    bs_streamtab tab;
    bs_pos *v = NULL;
    size_t nw = 0, nv = 0;
    bs_err rv;

    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    if ((rv = bs_streams_vector(&tab, &v, &nv)) == BS_OK)
        rv = bs_movein_collections(t, &w, &nw);
    for (size_t c = 0; rv == BS_OK && c < nw; c++) {
        uint8_t k[KEY_MAX];
        bs_slice raw;

        rv =
            bs_txn_get(t, BS_DB_META,
                       bs_mem(k, key_of(k, RDONE_PREFIX, w[c].coll, "")), &raw);
        if (rv == BS_OK && marker_covers(raw, v, nv, m->pk))
            continue;
        if (rv == BS_OK || rv == BS_ENOTFOUND)
            rv = bs_movein_want(t, m, w[c].coll, NULL);
    }
    free(w);
    free(v);
    bs_streams_fini(&tab);
    return rv;
}

bs_err
bs_relay_seed_marker(const bs_meta *m, const uint8_t *sk, const bs_pos *point,
                     size_t n, uint64_t now_ms, uint8_t **out, size_t *outn)
{
    bs_snap s;

    memset(&s, 0, sizeof s);
    memcpy(s.infobase, m->infobase, BS_INFOBASE_LEN);
    memcpy(s.hub, m->pk, BS_PK_LEN); /* the regional hub's word */
    s.done = s.seed = 1;
    s.created_ms = now_ms;
    s.covered = (bs_pos *)point;
    s.ncovered = n;
    return bs_snap_encode(&s, sk, out, outn);
}

bs_err
bs_relay_note(bs_txn *t, const uint8_t *pk, const bs_snapwant *w, size_t n,
              const bs_pos *ack, size_t nack, int seed)
{
    uint8_t k[KEY_MAX];
    bs_slice v;
    bs_meta m;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, NULL)) != BS_OK)
        return rv;
    if (!bs_relay_here(t, &m))
        return BS_OK;
    if (seed && (rv = relay_refresh(t, &m)) != BS_OK) /* a branch to seed */
        return rv;
    for (size_t i = 0; i < n; i++) {
        if (w[i].after[0] != '\0')
            continue; /* where a seed resumes: not relayed */
        rv = bs_txn_get(t, BS_DB_META,
                        bs_mem(k, key_of(k, RDONE_PREFIX, w[i].coll, w[i].id)),
                        &v);
        if (rv == BS_OK && marker_covers(v, ack, nack, pk))
            continue; /* the answer kept will do */
        if ((rv != BS_OK && rv != BS_ENOTFOUND) ||
            (rv = bs_movein_want(t, &m, w[i].coll,
                                 w[i].id[0] ? w[i].id : NULL)) != BS_OK)
            return rv;
    }
    return BS_OK;
}
