/*
 * rebuild.c - rebuilding a collection's records after a rule change.
 */
#include "rebuild.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "changes.h"
#include "changeset.h"
#include "collections.h"
#include "conflict.h"
#include "hlc.h"
#include "purge.h"
#include "scope.h"
#include "setlog.h"
#include "movein.h"
#include "streams.h"

/* One change of the collection in the log. */
typedef struct ref {
    const char *id; /* in the arena */
    uint64_t hlc, seq;
    uint32_t stream;
    int late;     /* its record has a change stamped after the version */
    int have;     /* ch and x are set (records to rebuild only) */
    bs_change ch; /* in rebuild.changes */
    struct late *x;
} ref;

/* What a change to judge again brings from its set (in rebuild.changes). */
struct late {
    bs_collection rules; /* the version governing it (rules.h) */
    bs_rule_version ver;
    bs_pos *seen; /* its set's signed vector */
    size_t nseen;
    int was_refused; /* refused by rule before this rebuild */
};

typedef struct rebuild {
    bs_txn *txn;
    const bs_meta *meta;
    const char *coll;
    const char *id; /* NULL: every record of coll */
    bs_streamtab tab;
    bs_order order;
    bs_arena ids, changes;
    ref *v;
    size_t n, cap;
    /* the refused changes of the record being rebuilt (conflicts) */
    const ref **refused;
    size_t nrefused, caprefused;
    const char *rid; /* the ID of the record being rebuilt */
    int has_open;    /* some conflict is open: writes may settle it */
} rebuild;

static int
ref_cmp(const void *x, const void *y, void *ctx)
{
    const ref *a = x, *b = y;
    const rebuild *rb = ctx;
    int c = strcmp(a->id, b->id);

    if (c != 0)
        return c;
    if (a->hlc != b->hlc)
        return a->hlc < b->hlc ? -1 : 1;
    if (a->stream != b->stream) {
        c = memcmp(bs_streams_key(rb->order.ctx, a->stream),
                   bs_streams_key(rb->order.ctx, b->stream), BS_STREAM_KEY_LEN);
        if (c != 0)
            return c < 0 ? -1 : 1;
    }
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Every change of the collection in the log. */
static bs_err
collect(rebuild *rb)
{
    bs_cursor *cur;
    bs_slice k, v;
    bs_arena a;
    bs_err rv;

    if ((rv = bs_cursor_open(rb->txn, BS_DB_LOG, &cur)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    for (rv = bs_cursor_first(cur, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(cur, &k, &v)) {
        bs_csview *cv;

        if (k.n != 12 || bs_changeset_decode(v.p, v.n, &cv, NULL) != BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        for (size_t i = 0; i < cv->count && rv == BS_OK; i++) {
            bs_change ch;

            if (!cv->present[i])
                continue;
            bs_arena_reset(&a);
            if (bs_changeset_change(cv, i, &a, &ch, NULL) != BS_OK) {
                rv = BS_ESTORE;
                break;
            }
            if (strcmp(ch.coll, rb->coll) != 0 ||
                (rb->id != NULL && strcmp(ch.id, rb->id) != 0))
                continue;
            if (rb->n == rb->cap) {
                size_t cap = rb->cap ? rb->cap * 2 : 256;
                ref *nv = realloc(rb->v, cap * sizeof *nv);
                if (nv == NULL) {
                    rv = BS_ENOMEM;
                    break;
                }
                rb->v = nv;
                rb->cap = cap;
            }
            rb->v[rb->n].id = bs_arena_strndup(&rb->ids, ch.id, strlen(ch.id));
            if (rb->v[rb->n].id == NULL) {
                rv = BS_ENOMEM;
                break;
            }
            rb->v[rb->n].hlc = ch.hlc;
            rb->v[rb->n].seq = ch.seq;
            rb->v[rb->n].stream = bs_get_u32be(k.p);
            rb->n++;
        }
        bs_changeset_free(cv);
        if (rv != BS_OK)
            break;
    }
    bs_arena_fini(&a);
    bs_cursor_close(cur);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static int
was_refused(void *ctx, const uint8_t *key, uint64_t seq)
{
    const rebuild *rb = ctx;

    for (size_t i = 0; i < rb->nrefused; i++)
        if (rb->refused[i]->seq == seq &&
            memcmp(bs_streams_key(rb->order.ctx, rb->refused[i]->stream), key,
                   BS_STREAM_KEY_LEN) == 0)
            return 1;
    return 0;
}

static int
pos_cmp(const void *x, const void *y)
{
    const ref *a = *(ref *const *)x, *b = *(ref *const *)y;

    if (a->stream != b->stream)
        return a->stream < b->stream ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* What the judgment of r needs from its set cv: the governing version by
 * the set's vector (rules.h), the vector, whether it was refused. */
static bs_err
fetch_one(rebuild *rb, const bs_csview *cv, ref *r)
{
    struct late *x = bs_arena_alloc(&rb->changes, sizeof *x);
    bs_err rv;

    if (x == NULL ||
        (cv->nseen > 0 &&
         (x->seen = bs_arena_memdup(&rb->changes, cv->seen,
                                    cv->nseen * sizeof *cv->seen)) == NULL))
        return BS_ENOMEM;
    if (cv->nseen == 0)
        x->seen = NULL;
    x->nseen = cv->nseen;
    if ((rv = bs_rules_governing(rb->txn, rb->coll, r->ch.hlc, rb->meta->hub,
                                 cv->seen, cv->nseen, &x->rules, &x->ver)) !=
            BS_OK ||
        (rv = bs_access_is_refused(rb->txn, &r->ch,
                                   bs_streams_key(rb->order.ctx, r->stream),
                                   &x->was_refused)) != BS_OK)
        return rv;
    r->x = x;
    return BS_OK;
}

/* Decode the changes of the records to rebuild, each set read once: a
 * second pass over the log, in log order. */
static bs_err
fetch_late(rebuild *rb)
{
    ref **idx = malloc((rb->n + 1) * sizeof *idx);
    size_t n = 0, at = 0;
    bs_cursor *cur;
    bs_slice k, v;
    bs_err rv;

    if (idx == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < rb->n; i++)
        if (rb->v[i].late)
            idx[n++] = &rb->v[i];
    qsort(idx, n, sizeof *idx, pos_cmp);
    if ((rv = bs_cursor_open(rb->txn, BS_DB_LOG, &cur)) != BS_OK) {
        free(idx);
        return rv;
    }
    for (rv = bs_cursor_first(cur, &k, &v); rv == BS_OK && at < n;
         rv = bs_cursor_next(cur, &k, &v)) {
        uint32_t stream = bs_get_u32be(k.p);
        bs_csview *cv;

        /* skip the refs of streams or seqs before this set */
        while (at < n && (idx[at]->stream < stream ||
                          (idx[at]->stream == stream &&
                           idx[at]->seq < bs_get_u64be(k.p + 4))))
            at++;
        if (at == n || idx[at]->stream != stream)
            continue;
        if (bs_changeset_decode(v.p, v.n, &cv, NULL) != BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        for (; at < n && idx[at]->stream == stream && idx[at]->seq <= cv->last;
             at++) {
            ref *r = idx[at];
            size_t i = r->seq - cv->first;

            if (!cv->present[i] || bs_changeset_change(cv, i, &rb->changes,
                                                       &r->ch, NULL) != BS_OK) {
                rv = BS_ESTORE;
                break;
            }
            if ((rv = fetch_one(rb, cv, r)) != BS_OK)
                break;
            r->have = 1;
        }
        bs_changeset_free(cv);
        if (rv != BS_OK)
            break;
    }
    bs_cursor_close(cur);
    free(idx);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* The vector of the set that brought version e of the record whose refs
 * are v[0..n) (NULL when none is among them). */
static const struct late *
set_of(const ref *v, size_t n, const bs_version *e)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].stream == e->stream && v[i].seq == e->seq && v[i].have)
            return v[i].x;
    return NULL;
}

/* 1 when change c (ref *cr) and version e were written concurrently:
 * neither writer had seen the other (as apply.c decides at arrival). */
static int
concurrent(const rebuild *rb, const ref *v, size_t n, const ref *cr,
           const bs_version *e)
{
    const struct late *ex = set_of(v, n, e);

    if (e->stream == cr->stream)
        return 0; /* one origin writes in sequence */
    if (bs_vv_covers(cr->x->seen, cr->x->nseen,
                     bs_streams_key(rb->order.ctx, e->stream), e->seq))
        return 0;
    return ex == NULL ||
           !bs_vv_covers(ex->seen, ex->nseen,
                         bs_streams_key(rb->order.ctx, cr->stream), cr->seq);
}

static bs_err
add_conflict(rebuild *rb, const char *field, bs_policy pol,
             const bs_version *cv, const bs_value *cval, const bs_version *ev,
             const bs_value *eval)
{
    bs_cand a = {bs_streams_key(rb->order.ctx, cv->stream), cv->seq, cv->hlc,
                 cval};
    bs_cand b = {bs_streams_key(rb->order.ctx, ev->stream), ev->seq, ev->hlc,
                 eval};

    if (pol == BS_POLICY_MANUAL)
        rb->has_open = 1; /* later writes in this rebuild may settle it */

    return bs_conflict_add(rb->txn, rb->coll, rb->rid, field, pol, &a, &b,
                           bs_version_cmp(cv, ev, &rb->order) > 0 ? 0 : 1,
                           BS_HLC_MS(rb->meta->hlc));
}

/*
 * The conflicts admitted change cr (version cv) has with r, the record
 * its admitted predecessors make: the ones apply.c records at arrival
 * (recording one twice is a no-op, conflict.h), so that a change a
 * rebuild admits is registered as if it had been admitted on arrival.
 */
static bs_err
detect(rebuild *rb, const ref *v, size_t n, const ref *cr, const bs_version *cv,
       const bs_record *r, bs_policy pol)
{
    static const bs_value null_value = {BS_VNULL, 0, 0, NULL, 0};
    const bs_change *c = &cr->ch;
    bs_err rv = BS_OK;

    if (c->deleted) {
        for (size_t i = 0; i < r->nfields; i++)
            if (concurrent(rb, v, n, cr, &r->fields[i].ver))
                return add_conflict(rb, BS_CONFLICT_RECORD, pol, cv, NULL,
                                    &r->fields[i].ver, &r->fields[i].val);
        return BS_OK;
    }
    if (r->has_tomb && concurrent(rb, v, n, cr, &r->tomb))
        rv = add_conflict(rb, BS_CONFLICT_RECORD, pol, cv,
                          c->nfields ? &c->fields[0].val : &null_value,
                          &r->tomb, NULL);
    for (size_t i = 0; i < c->nfields && rv == BS_OK; i++) {
        const bs_field *e =
            bs_record_find(r, c->fields[i].name, c->fields[i].namelen);

        if (e != NULL && !bs_value_eq(&e->val, &c->fields[i].val) &&
            concurrent(rb, v, n, cr, &e->ver))
            rv = add_conflict(rb, c->fields[i].name, pol, cv, &c->fields[i].val,
                              &e->ver, &e->val);
    }
    return rv;
}

/* A write that saw both sides of an open conflict settles it (as apply.c
 * does at arrival). */
static bs_err
supersede(rebuild *rb, const ref *cr)
{
    const bs_change *c = &cr->ch;
    bs_err rv;

    if (!rb->has_open)
        return BS_OK;
    rv = bs_conflict_supersede(rb->txn, rb->coll, c->id, BS_CONFLICT_RECORD,
                               cr->x->seen, cr->x->nseen);
    for (size_t i = 0; i < c->nfields && rv == BS_OK; i++)
        rv = bs_conflict_supersede(rb->txn, rb->coll, c->id, c->fields[i].name,
                                   cr->x->seen, cr->x->nseen);
    return rv;
}

/* Whether r is only the tombstone of a delete at or below the last one
 * purged here (purge.h): it stays purged. */
static bs_err
purged(rebuild *rb, const char *id, const bs_record *r, int *yes)
{
    uint8_t hkey[BS_STREAM_KEY_LEN];
    bs_version h = {0, 0, 0, 0};
    int found;
    bs_err rv;

    *yes = 0;
    if (!r->has_tomb || r->live || r->nfields > 0)
        return BS_OK;
    if ((rv = bs_purge_horizon(rb->txn, rb->coll, id, &found, &h.hlc, hkey,
                               &h.seq)) != BS_OK ||
        !found)
        return rv;
    /* compare in (hlc, stream key, seq) order, as versions are */
    if (r->tomb.hlc != h.hlc) {
        *yes = r->tomb.hlc < h.hlc;
    } else {
        int c = memcmp(bs_streams_key(rb->order.ctx, r->tomb.stream), hkey,
                       BS_STREAM_KEY_LEN);
        *yes = c < 0 || (c == 0 && r->tomb.seq <= h.seq);
    }
    return BS_OK;
}

/* Rebuild the record of refs v[0..n) (one ID, in version order). */
static bs_err
rebuild_record(rebuild *rb, const ref *v, size_t n, bs_rebuild_stats *st)
{
    uint8_t key[BS_RECKEY_MAX];
    char owner[BS_NODE_NAME_MAX + 2] = "";
    bs_collection current;
    bs_record r;
    bs_arena a;
    int gone = 0;
    bs_err rv;

    rb->rid = v[0].id;
    if ((rv = bs_collections_get(rb->txn, rb->coll, &current)) != BS_OK ||
        (rv = bs_access_forget_owner(rb->txn, rb->coll, v[0].id)) != BS_OK)
        return rv;
    rb->order.use_prio = current.policy == BS_POLICY_PRIORITY;
    rb->nrefused = 0;
    memset(&r, 0, sizeof r);
    bs_arena_init(&a);
    /* A record that came as a snapshot (move-in) starts from what the
     * snapshots brought: the log lacks the changes they summarise. */
    if ((rv = bs_movein_base(rb->txn, rb->coll, v[0].id, &r, &a)) ==
        BS_ENOTFOUND) {
        memset(&r, 0, sizeof r);
        rv = BS_OK;
    }
    for (size_t i = 0; i < n && rv == BS_OK; i++) {
        const uint8_t *skey = bs_streams_key(rb->order.ctx, v[i].stream);
        bs_version ver;
        char name[BS_NODE_NAME_MAX + 1];
        bs_judgment j;
        bs_change ch;
        int changed;

        if (!v[i].have) {
            rv = BS_ESTORE;
            break;
        }
        ch = v[i].ch;
        ver = (bs_version){ch.hlc, ch.seq, v[i].stream, ch.prio};
        bs_access_name(rb->txn, rb->meta, skey, name);
        /* judged by the version its set's vector says governs it, as on
         * arrival (rules.h) */
        if ((rv = bs_access_judge(rb->txn, rb->meta, skey, name, &ch, &ver,
                                  &rb->order, &v[i].x->rules, &v[i].x->ver,
                                  NULL, NULL, owner, NULL, &j)) != BS_OK)
            break;
        if (!j.allowed) {
            if (rb->nrefused == rb->caprefused) {
                size_t cap = rb->caprefused ? rb->caprefused * 2 : 16;
                const ref **nv = realloc(rb->refused, cap * sizeof *nv);
                if (nv == NULL) {
                    rv = BS_ENOMEM;
                    break;
                }
                rb->refused = nv;
                rb->caprefused = cap;
            }
            rb->refused[rb->nrefused++] = &v[i];
            st->refused++;
            if ((rv = bs_access_note_refused(rb->txn, &ch, skey)) != BS_OK)
                break;
            /* a change admitted until now: counted as refused on arrival
             * would be (access.h) */
            if (!v[i].x->was_refused &&
                (rv = bs_access_count_refused(rb->txn, skey, 1, j.why,
                                              BS_HLC_MS(rb->meta->hlc))) !=
                    BS_OK)
                break;
            continue;
        }
        if ((rv = detect(rb, v, n, &v[i], &ver, &r, current.policy)) != BS_OK)
            break;
        /* The owner is the field the collection's rules name now, as
         * apply.c and admission follow it. */
        if ((rv = bs_record_merge(&r, ch.deleted, ch.fields, ch.nfields, &ver,
                                  &rb->order, &a, &changed)) != BS_OK ||
            (rv = bs_access_note_owner(rb->txn, &ch, skey,
                                       current.owner_field)) != BS_OK ||
            (rv = supersede(rb, &v[i])) != BS_OK)
            break;
        {
            char next[sizeof owner];

            bs_access_owner_after(&ch, current.owner_field, owner, next,
                                  sizeof next);
            memcpy(owner, next, sizeof owner);
        }
    }
    if (rv == BS_OK && (rv = purged(rb, v[0].id, &r, &gone)) == BS_OK) {
        size_t klen = bs_record_key(key, rb->coll, v[0].id);

        if ((!r.has_alive && !r.has_tomb) || gone) {
            /* the base a record that was its own implied outlives it, as
             * a "snp:" entry does (movein.h) */
            rv = bs_movein_base_keep(rb->txn, rb->coll, v[0].id,
                                     (bs_slice){NULL, 0});
            if (rv == BS_OK)
                rv = bs_txn_del(rb->txn, BS_DB_RECORDS, bs_mem(key, klen));
            if (rv == BS_OK) /* the feed sees it go (changes.h) */
                rv = bs_changes_note_record(rb->txn, rb->coll, v[0].id, NULL);
            else if (rv == BS_ENOTFOUND)
                rv = BS_OK; /* never stored */
        } else {
            bs_recenc e;
            bs_slice old = {NULL, 0};
            uint8_t *dst;

            /* A copy of what was stored: a record rebuilt as it was is no
             * change for the feed. */
            rv = bs_txn_get(rb->txn, BS_DB_RECORDS, bs_mem(key, klen), &old);
            if (rv == BS_OK &&
                (old.p = bs_arena_memdup(&a, old.p, old.n)) == NULL)
                rv = BS_ENOMEM;
            else if (rv == BS_ENOTFOUND)
                rv = BS_OK;
            if (rv == BS_OK && (rv = bs_record_prepare(&r, &a, &e)) == BS_OK &&
                (rv = bs_txn_reserve(rb->txn, BS_DB_RECORDS, bs_mem(key, klen),
                                     e.size, 0, &dst, NULL)) == BS_OK) {
                int same;

                bs_record_encode(&r, &e, dst);
                /* the same record, whether or not it was its own base */
                same = old.p != NULL && old.n == e.size &&
                       (old.p[1] & BS_RECORD_LIVE) == dst[1] &&
                       memcmp(old.p + 2, dst + 2, e.size - 2) == 0 &&
                       old.p[0] == dst[0];
                if (same && bs_record_own_base(old.p, old.n))
                    bs_record_set_own_base(dst); /* it still is */
                else if (old.p != NULL)
                    rv = bs_movein_base_keep(rb->txn, rb->coll, v[0].id, old);
                if (rv == BS_OK && !same)
                    rv = bs_changes_note_record(rb->txn, rb->coll, v[0].id, &r);
            }
        }
    }
    if (rv == BS_OK && rb->nrefused > 0)
        rv = bs_conflict_drop_if(rb->txn, rb->coll, v[0].id, was_refused, rb);
    bs_arena_fini(&a);
    st->records += rv == BS_OK;
    return rv;
}

static bs_err
run(rebuild *rb, uint64_t hlc, bs_rebuild_stats *st)
{
    bs_err rv;

    bs_arena_init(&rb->ids);
    bs_arena_init(&rb->changes);
    if ((rv = bs_streams_load(rb->txn, &rb->tab)) != BS_OK) {
        bs_arena_fini(&rb->ids);
        bs_arena_fini(&rb->changes);
        return rv;
    }
    rb->order = (bs_order){0, bs_streams_key, &rb->tab};
    {
        uint64_t open = 0;

        rv = bs_conflict_count(rb->txn, &open, NULL);
        rb->has_open = open > 0;
    }
    if (rv == BS_OK && (rv = collect(rb)) == BS_OK && rb->n > 0) {
        qsort_r(rb->v, rb->n, sizeof *rb->v, ref_cmp, rb);
        /* A record is rebuilt when a change of it is stamped after hlc. */
        for (size_t i = 0, e; i < rb->n; i = e) {
            int late = 0;

            for (e = i; e < rb->n && strcmp(rb->v[e].id, rb->v[i].id) == 0; e++)
                late |= rb->v[e].hlc > hlc;
            for (size_t k = i; k < e; k++)
                rb->v[k].late = late;
        }
        rv = fetch_late(rb);
        for (size_t i = 0, e; i < rb->n && rv == BS_OK; i = e) {
            for (e = i; e < rb->n && strcmp(rb->v[e].id, rb->v[i].id) == 0; e++)
                ;
            if (rb->v[i].late)
                rv = rebuild_record(rb, &rb->v[i], e - i, st);
        }
    }
    free(rb->v);
    free(rb->refused);
    bs_streams_fini(&rb->tab);
    bs_arena_fini(&rb->changes);
    bs_arena_fini(&rb->ids);
    return rv;
}

bs_err
bs_rebuild_note_rules(bs_txn *t, const char *coll, const bs_rule_version *v,
                      const bs_collection *r, bs_rebuild_queue *q)
{
    bs_collection latest;
    bs_rule_version lv;
    uint64_t from = v->hlc;
    struct bs_rebuild_due *nv;
    bs_err rv;

    if ((rv = bs_rules_at(t, coll, UINT64_MAX, &latest, &lv)) != BS_OK ||
        (rv = bs_rules_note(t, coll, v, r)) != BS_OK)
        return rv;
    /* The owner history follows the latest owner field, and every record
     * is merged under the latest policy (the order of versions, §5.1,
     * depends on it): a new latest version that changes either rebuilds
     * every record. */
    if (v->hlc > lv.hlc && (strcmp(latest.owner_field, r->owner_field) != 0 ||
                            (latest.policy == BS_POLICY_PRIORITY) !=
                                (r->policy == BS_POLICY_PRIORITY)))
        from = 0;
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->v[i].coll, coll) == 0) {
            if (from < q->v[i].from)
                q->v[i].from = from;
            return BS_OK;
        }
    if ((nv = realloc(q->v, (q->n + 1) * sizeof *nv)) == NULL)
        return BS_ENOMEM;
    q->v = nv;
    snprintf(nv[q->n].coll, sizeof nv[q->n].coll, "%s", coll);
    nv[q->n++].from = from;
    return BS_OK;
}

bs_err
bs_rebuild_queue_run(bs_txn *t, const bs_meta *m, bs_rebuild_queue *q,
                     bs_rebuild_stats *st)
{
    bs_err rv = BS_OK;

    memset(st, 0, sizeof *st);
    for (size_t i = 0; i < q->n && rv == BS_OK; i++) {
        bs_rebuild_stats one;
        rebuild rb;

        memset(&one, 0, sizeof one);
        memset(&rb, 0, sizeof rb);
        rb.txn = t;
        rb.meta = m;
        rb.coll = q->v[i].coll;
        rv = run(&rb, q->v[i].from, &one);
        /* a branch keeps only the records in its scope (move-out) */
        if (rv == BS_OK)
            rv = bs_scope_drop_foreign(t, m, rb.coll, NULL, NULL);
        st->records += one.records;
        st->refused += one.refused;
    }
    q->n = 0;
    return rv;
}

void
bs_rebuild_queue_fini(bs_rebuild_queue *q)
{
    free(q->v);
    q->v = NULL;
    q->n = 0;
}

bs_err
bs_rebuild_record(bs_txn *t, const bs_meta *m, const char *coll, const char *id,
                  bs_rebuild_stats *st)
{
    rebuild rb;
    bs_err rv;

    memset(st, 0, sizeof *st);
    memset(&rb, 0, sizeof rb);
    rb.txn = t;
    rb.meta = m;
    rb.coll = coll;
    rb.id = id;
    if ((rv = run(&rb, 0, st)) != BS_OK)
        return rv;
    return bs_scope_drop_foreign(t, m, coll, id, NULL); /* (move-out) */
}
