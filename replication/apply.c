/*
 * apply.c - verify, authorize, resolve and write remote change sets.
 */
#include "apply.h"

#include <string.h>

#include "access.h"
#include "changes.h"
#include "collections.h"
#include "compact.h"
#include "conflict.h"
#include "quarantine.h"
#include "rebuild.h"
#include "rules.h"
#include "scope.h"
#include "setlog.h"
#include "movein.h"

bs_err
bs_apply_begin(bs_apply *ap, bs_txn *t, bs_clock clock, uint64_t max_skew_ms,
               bs_errbuf *err)
{
    uint64_t open = 0;
    bs_err rv;

    memset(ap, 0, sizeof *ap);
    ap->txn = t;
    bs_arena_init(&ap->scratch);
    if ((rv = bs_meta_load(t, &ap->meta, err)) != BS_OK)
        return rv;
    if ((rv = bs_streams_load(t, &ap->streams)) != BS_OK)
        return bs_errf(err, rv, "cannot read stream table");
    bs_hlc_init(&ap->hlc, clock, ap->meta.hlc);
    bs_admission_init(&ap->ad, t, &ap->meta, &ap->streams, 0,
                      bs_hlc_wall_ms(&ap->hlc), max_skew_ms, &ap->scratch);
    if ((rv = bs_conflict_count(t, &open, NULL)) != BS_OK)
        return rv;
    ap->has_open = open > 0;
    return BS_OK;
}

void
bs_apply_fini(bs_apply *ap)
{
    bs_admission_fini(&ap->ad);
    bs_streams_fini(&ap->streams);
    bs_arena_fini(&ap->scratch);
    free(ap->cache_seen);
    for (size_t i = 0; i < ap->nredo; i++)
        free(ap->redo[i]);
    free(ap->redo);
    free(ap->released);
    bs_rebuild_queue_fini(&ap->rules_due);
}

bs_err
bs_apply_finish(bs_apply *ap, bs_errbuf *err)
{
    (void)err;
    return bs_meta_save_hlc(ap->txn, ap->hlc.last);
}

/* Load into the cache the vector of the stored set holding (stream, seq). */
static bs_err
load_seen(bs_apply *ap, uint32_t stream, uint64_t seq)
{
    uint64_t first;
    bs_slice v;
    bs_err rv;

    if (ap->cache_stream == stream && ap->cache_first <= seq &&
        seq <= ap->cache_last)
        return BS_OK;
    if ((rv = bs_setlog_find(ap->txn, stream, seq, &v, &first)) != BS_OK)
        return rv;
    free(ap->cache_seen);
    ap->cache_seen = NULL;
    ap->cache_stream = 0;
    rv = bs_changeset_stored_seen(v, &ap->cache_seen, &ap->cache_nseen,
                                  &ap->cache_first, &ap->cache_last);
    if (rv == BS_OK)
        ap->cache_stream = stream;
    return rv;
}

/* 1 when the write at (stream, seq) had seen change key/cseq. */
static int
saw(bs_apply *ap, uint32_t stream, uint64_t seq, const uint8_t *key,
    uint64_t cseq)
{
    if (load_seen(ap, stream, seq) != BS_OK)
        return 0;
    return bs_vv_covers(ap->cache_seen, ap->cache_nseen, key, cseq);
}

/* 1 when the two writes are concurrent: neither writer had seen the other.
 * c is the incoming change (seen vector of its set), e a stored version. */
static int
concurrent(bs_apply *ap, const bs_csview *v, uint32_t cstream,
           const bs_change *c, const bs_version *e)
{
    const bs_stream *es = bs_streams_get(&ap->streams, e->stream);
    const bs_stream *cs = bs_streams_get(&ap->streams, cstream);

    if (e->stream == cstream || es == NULL)
        return 0; /* one origin writes in sequence */
    if (bs_vv_covers(v->seen, v->nseen, es->key, e->seq))
        return 0; /* c was written after e arrived */
    return !saw(ap, e->stream, e->seq, cs->key, c->seq);
}

static bs_err
note_conflict(bs_apply *ap, const bs_change *c, const char *field,
              bs_policy pol, const bs_version *cv, const bs_value *cval,
              const bs_version *ev, const bs_value *eval, const bs_order *o)
{
    const bs_stream *es = bs_streams_get(&ap->streams, ev->stream);
    const bs_stream *cs = bs_streams_get(&ap->streams, cv->stream);
    bs_cand a = {cs->key, cv->seq, cv->hlc, cval};
    bs_cand b = {es->key, ev->seq, ev->hlc, eval};
    int winner = bs_version_cmp(cv, ev, o) > 0 ? 0 : 1;

    ap->conflicts++;
    if (pol == BS_POLICY_MANUAL)
        ap->has_open = 1; /* later writes in this transaction may settle it */
    return bs_conflict_add(ap->txn, c->coll, c->id, field, pol, &a, &b, winner,
                           bs_hlc_wall_ms(&ap->hlc));
}

/* Record every conflict c has with the stored record r. */
static bs_err
detect(bs_apply *ap, const bs_csview *v, uint32_t cstream, const bs_change *c,
       const bs_version *cv, const bs_record *r, bs_policy pol,
       const bs_order *o)
{
    bs_err rv = BS_OK;

    if (c->deleted) {
        /* A delete conflicts with concurrent updates it did not see. */
        for (size_t i = 0; i < r->nfields && rv == BS_OK; i++)
            if (concurrent(ap, v, cstream, c, &r->fields[i].ver)) {
                rv = note_conflict(ap, c, BS_CONFLICT_RECORD, pol, cv, NULL,
                                   &r->fields[i].ver, &r->fields[i].val, o);
                break;
            }
        return rv;
    }
    if (r->has_tomb && concurrent(ap, v, cstream, c, &r->tomb)) {
        /* An upsert without fields stands for its record with a null. */
        static const bs_value null_value = {BS_VNULL, 0, 0, NULL, 0};
        rv = note_conflict(ap, c, BS_CONFLICT_RECORD, pol, cv,
                           c->nfields ? &c->fields[0].val : &null_value,
                           &r->tomb, NULL, o);
    }
    for (size_t i = 0; i < c->nfields && rv == BS_OK; i++) {
        const bs_field *e =
            bs_record_find(r, c->fields[i].name, c->fields[i].namelen);

        if (e != NULL && !bs_value_eq(&e->val, &c->fields[i].val) &&
            concurrent(ap, v, cstream, c, &e->ver))
            rv = note_conflict(ap, c, c->fields[i].name, pol, cv,
                               &c->fields[i].val, &e->ver, &e->val, o);
    }
    return rv;
}

/* A hub change to `_collections/NAME`: the record after it is a version
 * of NAME's rules (rules.h). */
static bs_err
note_rules(bs_apply *ap, const bs_stream *s, const bs_change *c,
           const bs_record *r)
{
    bs_rule_version ver = {c->hlc, c->seq, {0}};
    bs_collection rules;

    bs_collection latest;
    bs_rule_version lv;
    bs_err rv;

    memcpy(ver.inc, s->key + BS_PK_LEN, BS_INC_LEN);
    memset(&rules, 0, sizeof rules);
    bs_collection_from_record(&rules, r);
    if ((rv = bs_rules_at(ap->txn, c->id, UINT64_MAX, &latest, &lv)) != BS_OK ||
        (rv = bs_rebuild_note_rules(ap->txn, c->id, &ver, &rules,
                                    &ap->rules_due)) != BS_OK)
        return rv;
    /* A new latest version that widens a branch's scope (owner-scoped
     * before; shared now, or another owner field): the records that enter
     * it come as snapshots from the hub (move-in, snapshot.h). */
    if ((ver.hlc > lv.hlc || (ver.hlc == lv.hlc && ver.seq > lv.seq)) &&
        latest.scope == BS_SCOPE_OWNER &&
        (rules.scope != BS_SCOPE_OWNER ||
         strcmp(latest.owner_field, rules.owner_field) != 0))
        return bs_movein_want(ap->txn, &ap->meta, c->id, NULL);
    return BS_OK;
}

/* 1 when r holds a version above cv. */
static int
has_later(const bs_record *r, const bs_version *cv, const bs_order *o)
{
    bs_order lww = *o;

    lww.use_prio = 0;
    if ((r->has_alive && bs_version_cmp(&r->alive, cv, &lww) > 0) ||
        (r->has_tomb && bs_version_cmp(&r->tomb, cv, &lww) > 0))
        return 1;
    for (size_t i = 0; i < r->nfields; i++)
        if (bs_version_cmp(&r->fields[i].ver, cv, &lww) > 0)
            return 1;
    return 0;
}

/* An owner change (writers=owner) arriving below changes of its record
 * already judged: they were judged by another owner, so the record is
 * rebuilt once the set is logged (rebuild.h). */
static bs_err
note_redo(bs_apply *ap, const bs_change *c, const bs_version *cv,
          const bs_record *r, const bs_order *o)
{
    size_t cn, in;
    char **nv, *k;
    int sets = c->deleted, later;
    bs_err rv;

    if (!ap->owner_field[0] || c->coll[0] == '_')
        return BS_OK;
    for (size_t i = 0; i < c->nfields && !sets; i++)
        sets = strcmp(c->fields[i].name, ap->owner_field) == 0;
    if (!sets)
        return BS_OK;
    /* judged before it: admitted ones are in r, refused ones noted */
    later = has_later(r, cv, o);
    if (!later && strcmp(ap->rej_coll, c->coll) != 0) {
        if ((rv = bs_access_any_refused(ap->txn, c->coll, &ap->rej_any)) !=
            BS_OK)
            return rv;
        snprintf(ap->rej_coll, sizeof ap->rej_coll, "%s", c->coll);
    }
    if (!later && ap->rej_any &&
        (rv = bs_access_refused_after(
             ap->txn, c, bs_streams_key(o->ctx, cv->stream), &later)) != BS_OK)
        return rv;
    if (!later)
        return BS_OK;
    cn = strlen(c->coll);
    in = strlen(c->id);
    if ((k = malloc(cn + in + 2)) == NULL ||
        (nv = realloc(ap->redo, (ap->nredo + 1) * sizeof *nv)) == NULL) {
        free(k);
        return BS_ENOMEM;
    }
    memcpy(k, c->coll, cn + 1);
    memcpy(k + cn + 1, c->id, in + 1);
    ap->redo = nv;
    ap->redo[ap->nredo++] = k;
    return BS_OK;
}

/* Carry out the hub's release c (quarantine.h); busy: the stream being
 * applied.  The stream table may grow (pointers into it move). */
static bs_err
release(bs_apply *ap, const bs_change *c, uint32_t busy)
{
    const bs_stream *s;
    bs_qrelease q;
    uint32_t *nv;
    bs_err rv;

    if ((rv = bs_quarantine_carry(ap->txn, &ap->meta, &ap->streams, c, busy,
                                  &q)) != BS_OK)
        return rv;
    ap->ad.meta = ap->meta; /* a new incarnation */
    ap->rebuilt += q.rebuilt;
    if ((s = bs_streams_find(&ap->streams, q.origin, q.inc)) == NULL ||
        s->idx == busy)
        return BS_OK; /* not a release that parses, or not carried yet */
    if ((nv = realloc(ap->released, (ap->nreleased + 1) * sizeof *nv)) == NULL)
        return BS_ENOMEM;
    ap->released = nv;
    nv[ap->nreleased++] = s->idx;
    return BS_OK;
}

/* 1 when r, new here, is live and its owner field names this node. */
static int
new_and_mine(bs_apply *ap, const bs_change *c, const bs_record *r)
{
    const bs_value *o;
    size_t n = strlen(ap->self);

    if (ap->mine == NULL || n == 0 || !r->live || !ap->owner_field[0] ||
        c->coll[0] == '_')
        return 0;
    o = bs_record_field(r, ap->owner_field);
    if (o == NULL || o->type != BS_VTEXT || o->len != n ||
        memcmp(o->s, ap->self, n) != 0)
        return 0;
    if (!ap->mine_field[0]) /* one field vouched for per set */
        snprintf(ap->mine_field, sizeof ap->mine_field, "%s", ap->owner_field);
    return strcmp(ap->mine_field, ap->owner_field) == 0;
}

static bs_err
merge_change(bs_apply *ap, const bs_csview *v, bs_stream *s, bs_change *c,
             int *mine, bs_errbuf *err)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, c->coll, c->id);
    bs_version cv = {c->hlc, c->seq, s->idx, c->prio};
    bs_order o = {0, bs_streams_key, &ap->streams};
    bs_policy pol;
    bs_record r;
    bs_recenc enc;
    bs_slice old = {NULL, 0};
    uint8_t *dst;
    const char *of; /* the owner field whose history is kept (access.h) */
    bs_owner_mark mark;
    int changed;
    bs_err rv;

    if ((rv = bs_apply_rules(ap, c->coll, &pol, &of)) != BS_OK)
        return rv;
    of = of[0] && c->coll[0] != '_' ? of : NULL;
    if (strcmp(c->coll, BS_SYS_COLLECTIONS) == 0)
        ap->policy_coll[0] = '\0'; /* a policy changes: look again */
    o.use_prio = pol == BS_POLICY_PRIORITY;
    memset(&r, 0, sizeof r);
    /* Fast path: a record new here costs one B-tree descent — try to
     * insert it as the change alone makes it. */
    if ((rv = bs_record_merge(&r, c->deleted, c->fields, c->nfields, &cv, &o,
                              &ap->scratch, &changed)) != BS_OK ||
        (rv = bs_record_prepare(&r, &ap->scratch, &enc)) != BS_OK)
        return rv;
    rv = bs_txn_reserve(ap->txn, BS_DB_RECORDS, bs_mem(key, klen), enc.size,
                        BS_PUT_NOOVERWRITE, &dst, &old);
    if (rv == BS_OK) {
        bs_record_encode(&r, &enc, dst);
        changed = 0; /* written */
        *mine = new_and_mine(ap, c, &r);
        /* the owner it names is the record's: implied (access.h) */
        if (of != NULL && !bs_access_owner_implied(c, &cv, &r, of) &&
            (rv = bs_access_note_owner(ap->txn, c, s->key, of)) != BS_OK)
            return rv;
        if ((rv = bs_changes_note(ap->txn, c->coll, c->id, !r.live, &cv)) !=
            BS_OK)
            return rv;
        /* new here, yet changes of it may have been refused by rule */
        if ((rv = note_redo(ap, c, &cv, &r, &o)) != BS_OK)
            return rv;
    } else if (rv == BS_EEXIST) {
        /* Decode a copy: the record borrows from it, and rewriting the
         * same key below may move or overwrite LMDB's page. */
        if ((old.p = bs_arena_memdup(&ap->scratch, old.p, old.n)) == NULL)
            return BS_ENOMEM;
        if ((rv = bs_record_decode(&r, old.p, old.n, &ap->scratch)) != BS_OK)
            return bs_errf(err, rv, "%s/%s: stored record is corrupt", c->coll,
                           c->id);
        bs_access_owner_mark(&r, of, &mark);
        if ((rv = detect(ap, v, s->idx, c, &cv, &r, pol, &o)) != BS_OK ||
            (rv = note_redo(ap, c, &cv, &r, &o)) != BS_OK)
            return rv;
        if ((rv = bs_record_merge(&r, c->deleted, c->fields, c->nfields, &cv,
                                  &o, &ap->scratch, &changed)) != BS_OK)
            return rv;
        /* the owner the record held is no longer implied once the merge
         * replaced it; c's is unless the record keeps another */
        if (of != NULL &&
            ((rv = bs_access_owner_keep(ap->txn, c->coll, c->id, &mark, &r,
                                        &o)) != BS_OK ||
             (!bs_access_owner_implied(c, &cv, &r, of) &&
              (rv = bs_access_note_owner(ap->txn, c, s->key, of)) != BS_OK)))
            return rv;
    } else {
        return rv;
    }
    if (ap->has_open) {
        /* A write that saw both sides of an open conflict settles it. */
        rv = bs_conflict_supersede(ap->txn, c->coll, c->id, BS_CONFLICT_RECORD,
                                   v->seen, v->nseen);
        for (size_t i = 0; i < c->nfields && rv == BS_OK; i++)
            rv = bs_conflict_supersede(ap->txn, c->coll, c->id,
                                       c->fields[i].name, v->seen, v->nseen);
        if (rv != BS_OK)
            return rv;
    }
    if (strcmp(c->coll, BS_SYS_COLLECTIONS) == 0 &&
        (rv = note_rules(ap, s, c, &r)) != BS_OK)
        return rv;
    /* this node made a regional hub: it keeps what it dropped (scope.h) */
    if (c->coll[0] == '_' &&
        (rv = bs_scope_note_member(ap->txn, &ap->meta, c, &r,
                                   &ap->rules_due)) != BS_OK)
        return rv;
    if (bs_quarantine_is_release(c)) {
        /* the record as merged decides: an older release arriving late
         * does not undo a newer one */
        bs_change w = *c;
        w.fields = r.fields;
        w.nfields = r.nfields;
        w.deleted = !r.live;
        ap->rej_coll[0] = '\0'; /* its rebuilds may note refusals */
        ap->mine_void = 1;      /* and change records */
        if ((rv = release(ap, &w, s->idx)) != BS_OK)
            return rv; /* s may have moved: the caller looks it up again */
    }
    if (!changed)
        return BS_OK;
    /* old, stored before (the fast path wrote nothing that changes): the
     * base it implied is kept first (movein.h) */
    if ((rv = bs_movein_base_keep(ap->txn, c->coll, c->id, old)) != BS_OK ||
        (rv = bs_record_prepare(&r, &ap->scratch, &enc)) != BS_OK)
        return rv;
    rv = bs_txn_reserve(ap->txn, BS_DB_RECORDS, bs_mem(key, klen), enc.size, 0,
                        &dst, NULL);
    if (rv != BS_OK)
        return rv;
    bs_record_encode(&r, &enc, dst);
    return bs_changes_note(ap->txn, c->coll, c->id, !r.live, &cv);
}

typedef struct keyed {
    const bs_change *c;
    uint8_t key[BS_RECKEY_MAX];
    size_t klen, i;
} keyed;

static int
keyed_cmp(const void *x, const void *y)
{
    const keyed *a = *(keyed *const *)x, *b = *(keyed *const *)y;
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(a->key, b->key, n);

    /* System collections (policies, members) first, as in seq order they
     * would matter for what follows; then by key. */
    int sa = a->key[0] == '_', sb = b->key[0] == '_';

    if (sa != sb)
        return sa ? -1 : 1;
    if (c != 0)
        return c;
    if (a->klen != b->klen)
        return a->klen < b->klen ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i; /* one record: in seq order */
}

static bs_err
merge_sorted(bs_apply *ap, const bs_csview *v, bs_stream *s, bs_change *ch,
             const uint8_t *skip, bs_errbuf *err)
{
    keyed *k = malloc(v->count * sizeof *k), **order = NULL;
    size_t n = 0;
    bs_err rv = BS_OK;

    if (k == NULL || (order = malloc(v->count * sizeof *order)) == NULL) {
        free(k);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < v->count; i++) {
        if (!v->present[i] || v->first + i <= s->seq ||
            (skip != NULL && skip[i]))
            continue; /* omitted, applied already, or refused by rule */
        k[n].c = &ch[i];
        k[n].i = i;
        k[n].klen = bs_record_key(k[n].key, ch[i].coll, ch[i].id);
        order[n] = &k[n];
        n++;
    }
    qsort(order, n, sizeof *order, keyed_cmp);
    ap->rej_coll[0] = '\0'; /* (refusals noted since the last set) */
    ap->mine = NULL;
    ap->mine_field[0] = ap->self[0] = '\0';
    ap->mine_void = 0;
    if (ap->meta.joined && memcmp(ap->meta.pk, ap->meta.hub, BS_PK_LEN) != 0 &&
        (ap->mine = bs_arena_alloc(&ap->scratch, v->count)) != NULL) {
        memset(ap->mine, 0, v->count);
        bs_access_name(ap->txn, &ap->meta, ap->meta.pk, ap->self);
    }
    for (size_t j = 0, idx = s->idx; j < n && rv == BS_OK; j++) {
        int mine = 0;

        s = bs_streams_get(&ap->streams, (uint32_t)idx); /* may move */
        rv = merge_change(ap, v, s, &ch[order[j]->i], &mine, err);
        ap->changes += rv == BS_OK;
        if (ap->mine != NULL)
            ap->mine[order[j]->i] = (uint8_t)mine;
    }
    /* a record two changes of the set touched: not vouched for */
    for (size_t j = 0; ap->mine != NULL && j + 1 < n; j++)
        if (order[j]->klen == order[j + 1]->klen &&
            memcmp(order[j]->key, order[j + 1]->key, order[j]->klen) == 0)
            ap->mine[order[j]->i] = ap->mine[order[j + 1]->i] = 0;
    free(order);
    free(k);
    return rv;
}

/* Quarantine s (S6): two contents for one position. */
static bs_err
quarantine(bs_apply *ap, bs_stream *s, const bs_csview *v, const char *why)
{
    bs_held e;

    s->flags |= BS_STREAM_QUARANTINED;
    snprintf(s->note, sizeof s->note, "%s at seq %llu", why,
             (unsigned long long)v->first);
    ap->quarantined++;
    /* Keep the other copy as evidence. */
    memset(&e, 0, sizeof e);
    e.kind = BS_HELD_EVIDENCE;
    e.stream = s->idx;
    e.first = v->first;
    e.since_ms = bs_hlc_wall_ms(&ap->hlc);
    snprintf(e.note, sizeof e.note, "%s", why);
    e.set = v->raw;
    if (bs_held_put(ap->txn, &e) != BS_OK)
        return BS_ESTORE;
    return bs_streams_save(ap->txn, s);
}

static bs_err
hold(bs_apply *ap, bs_stream *s, const bs_csview *v, bs_hold_reason why)
{
    bs_held h;
    bs_err rv;

    memset(&h, 0, sizeof h);
    h.kind = BS_HELD_WAITING;
    h.stream = s->idx;
    h.first = v->first;
    h.reason = why;
    h.since_ms = ap->hold_since ? ap->hold_since : bs_hlc_wall_ms(&ap->hlc);
    snprintf(h.note, sizeof h.note, "%s", bs_hold_reason_text(why));
    h.set = v->raw;
    ap->held++;
    snprintf(s->note, sizeof s->note, "held at seq %llu: %s",
             (unsigned long long)v->first, bs_hold_reason_text(why));
    if ((rv = bs_held_put(ap->txn, &h)) != BS_OK)
        return rv;
    if (memcmp(s->key, ap->meta.hub, BS_PK_LEN) == 0)
        bs_admission_forget_held(&ap->ad); /* it may introduce members */
    return bs_streams_save(ap->txn, s);
}

/* APPLY: merge, log, advance. */
static bs_err
apply(bs_apply *ap, const bs_csview *v, const bs_admit *a, bs_errbuf *err)
{
    bs_stream *s = a->stream;
    uint32_t idx = s->idx;
    bs_err rv;

    /* Merge in record-key order: the merge does not depend on order
     * (INV-5), and LMDB touches far fewer pages for sorted keys. */
    if ((rv = merge_sorted(ap, v, s, a->changes, a->skip, err)) != BS_OK)
        return rv;
    s = bs_streams_get(&ap->streams, idx); /* a release may move it */
    for (size_t i = 0; a->skip != NULL && i < v->count; i++)
        if (a->skip[i] && (rv = bs_access_note_refused(ap->txn, &a->changes[i],
                                                       s->key)) != BS_OK)
            return rv;
    if (a->by_rule > 0) {
        if (ap->by_rule == 0)
            snprintf(ap->by_rule_why, sizeof ap->by_rule_why, "%s",
                     a->by_rule_why);
        ap->by_rule += a->by_rule;
        if ((rv = bs_access_count_refused(ap->txn, v->origin, a->by_rule,
                                          a->by_rule_why,
                                          bs_hlc_wall_ms(&ap->hlc))) != BS_OK)
            return rv;
    }
    bs_hlc_observe(&ap->hlc, a->max_hlc);
    if ((rv = bs_setlog_put(ap->txn, s->idx, v->first, v->raw)) != BS_OK)
        return rv;
    if (ap->rules_due.n > 0 || ap->nredo > 0)
        ap->mine_void = 1; /* the rebuilds below may change records */
    if (ap->rules_due.n > 0) {
        bs_rebuild_stats st;

        rv = bs_rebuild_queue_run(ap->txn, &ap->meta, &ap->rules_due, &st);
        ap->rebuilt += st.records;
    }
    for (size_t i = 0; i < ap->nredo && rv == BS_OK; i++) {
        bs_rebuild_stats st;

        rv = bs_rebuild_record(ap->txn, &ap->meta, ap->redo[i],
                               ap->redo[i] + strlen(ap->redo[i]) + 1, &st);
        ap->rebuilt += st.records;
    }
    for (size_t i = 0; i < ap->nredo; i++)
        free(ap->redo[i]);
    ap->nredo = 0;
    /* move-out: a branch drops the records this set took out of its scope
     * (protocol.md 7.2) */
    if (rv == BS_OK)
        rv = bs_scope_move_out(ap->txn, &ap->meta, v, a->changes, a->skip,
                               s->seq, ap->mine_void ? NULL : ap->mine,
                               ap->self, ap->mine_field, NULL);
    if (rv != BS_OK)
        return rv;
    /* A8s: a seed moved the position past sets never held here */
    if (v->first > s->seq + 1 &&
        (rv = bs_compact_note_gap(ap->txn, s->idx, s->seq + 1, v->first - 1,
                                  v->prev_hash)) != BS_OK)
        return rv;
    s->seq = v->last;
    memcpy(s->last_hash, v->header_hash, BS_HASH_LEN);
    s->note[0] = '\0';
    ap->sets++;
    /* Held earlier and now applied (on another path): forget it. */
    if ((rv = bs_held_del(ap->txn, BS_HELD_WAITING, s->idx, v->first)) != BS_OK)
        return rv;
    return bs_streams_save(ap->txn, s);
}

/* 1 when a release moved v's stream back in this run: v comes again. */
static int
was_released(bs_apply *ap, const bs_csview *v)
{
    const bs_stream *s = bs_streams_find(&ap->streams, v->origin, v->inc);

    for (size_t i = 0; s != NULL && i < ap->nreleased; i++)
        if (ap->released[i] == s->idx)
            return 1;
    return 0;
}

/* A5 for the hub's own stream: its sets cannot reach a node whose copy
 * of that stream is quarantined, so a verified hub set of it that
 * releases it is carried out first (quarantine.h); *did says so. */
static bs_err
release_own(bs_apply *ap, const bs_csview *v, const bs_stream *s, int *did)
{
    uint8_t key[BS_STREAM_KEY_LEN];
    bs_err rv = BS_OK;

    *did = 0;
    if (memcmp(v->origin, ap->meta.hub, BS_PK_LEN) != 0)
        return BS_OK;
    memcpy(key, s->key, sizeof key);
    for (size_t i = 0; i < v->count && rv == BS_OK && !*did; i++) {
        bs_change ch;

        if (!v->present[i] ||
            bs_changeset_change(v, i, &ap->scratch, &ch, NULL) != BS_OK)
            continue;
        if (bs_quarantine_names(&ch, key) &&
            (rv = release(ap, &ch, 0)) == BS_OK) {
            const bs_stream *now =
                bs_streams_find(&ap->streams, key, key + BS_PK_LEN);
            /* a release that does not parse leaves it quarantined */
            *did = now != NULL && !(now->flags & BS_STREAM_QUARANTINED);
        }
    }
    return rv;
}

bs_err
bs_apply_rules(bs_apply *ap, const char *coll, bs_policy *policy,
               const char **owner_field)
{
    if (strcmp(ap->policy_coll, coll) != 0) { /* "" after a rule change */
        bs_collection rules;
        bs_err rv;

        if ((rv = bs_collections_get(ap->txn, coll, &rules)) != BS_OK)
            return rv;
        snprintf(ap->policy_coll, sizeof ap->policy_coll, "%s", coll);
        snprintf(ap->owner_field, sizeof ap->owner_field, "%s",
                 rules.owner_field);
        ap->policy = (int)rules.policy;
    }
    *policy = (bs_policy)ap->policy;
    *owner_field = ap->owner_field;
    return BS_OK;
}

bs_err
bs_apply_set(bs_apply *ap, const bs_csview *v, bs_errbuf *err)
{
    bs_admit a;
    int did;
    bs_err rv;

    ap->nobase_ok = 0; /* a rebuild or release may write a base */
    bs_arena_reset(&ap->scratch);
    if ((rv = bs_admit_set(&ap->ad, v, &a, err)) != BS_OK) {
        if (bs_err_local(rv) || !was_released(ap, v))
            return rv;
        ap->dup_sets++; /* its stream went back: it comes again in order */
        return BS_OK;
    }
    switch (a.verdict) {
    case BS_ADMIT_APPLY:
        return apply(ap, v, &a, err);
    case BS_ADMIT_DUPLICATE:
        ap->dup_sets++;
        return BS_OK;
    case BS_ADMIT_QUARANTINED:
        if ((rv = release_own(ap, v, a.stream, &did)) != BS_OK)
            return rv;
        if (did)
            return bs_apply_set(ap, v, err);
        ap->quarantined++;
        return BS_OK; /* that stream waits for an admin (P6) */
    case BS_ADMIT_QUARANTINE:
        return quarantine(ap, a.stream, v, a.why);
    case BS_ADMIT_HOLD:
        return hold(ap, a.stream, v, a.hold);
    }
    return BS_EINTERNAL;
}

/* Keep a held set that was refused when retried, with the reason. */
static bs_err
refuse_held(bs_apply *ap, const bs_held *h, bs_slice set, bs_err why,
            const char *msg)
{
    bs_held r = *h;

    r.kind = BS_HELD_REFUSED;
    r.reason = (uint32_t)why;
    r.since_ms = bs_hlc_wall_ms(&ap->hlc);
    snprintf(r.note, sizeof r.note, "%s", msg);
    r.set = set;
    ap->refused++;
    return bs_held_put(ap->txn, &r);
}

/* A held set of h's stream left the held table without applying: once no
 * set of the stream is held, its "held at" note goes. */
static bs_err
note_unheld(bs_apply *ap, const bs_held *h)
{
    bs_stream *s = bs_streams_get(&ap->streams, h->stream);
    uint64_t n;
    bs_err rv;

    if (s == NULL || (s->flags & BS_STREAM_QUARANTINED))
        return BS_OK;
    if ((rv = bs_held_count(ap->txn, BS_HELD_WAITING, s->idx, 1, &n)) != BS_OK)
        return rv;
    if (n > 0)
        return BS_OK; /* its note names a set still held */
    s->note[0] = '\0';
    return bs_streams_save(ap->txn, s);
}

/* Retry one held set (already deleted from the table; bytes in copy). */
static bs_err
retry(bs_apply *ap, const bs_held *h, bs_slice copy)
{
    bs_errbuf e2 = {{0}};
    bs_csview *cv;
    bs_err rv;

    if ((rv = bs_changeset_decode(copy.p, copy.n, &cv, &e2)) == BS_OK) {
        ap->hold_since = h->since_ms;
        rv = bs_apply_set(ap, cv, &e2);
        ap->hold_since = 0;
        bs_changeset_free(cv);
    }
    if (rv == BS_OK || bs_err_local(rv))
        return rv;
    /* Held behind a set that did not stay held (applied, or dropped): its
     * sender sends it again from our position.  Refused now for another
     * reason (e.g. its origin was revoked since): keep it as evidence; it
     * no longer blocks anything. */
    if (rv != BS_EGAP &&
        (rv = refuse_held(ap, h, copy, rv, bs_errmsg(&e2, rv))) != BS_OK)
        return rv;
    return note_unheld(ap, h);
}

static bs_err
held_pass(bs_apply *ap)
{
    uint32_t stream = 0;
    uint64_t first = 0;
    bs_held h;
    bs_err rv;

    while ((rv = bs_held_next(ap->txn, BS_HELD_WAITING, stream, first, 0,
                              &h)) == BS_OK) {
        uint8_t *copy = malloc(h.set.n + 1);
        uint64_t held_before = ap->held;

        if (copy == NULL)
            return BS_ENOMEM;
        memcpy(copy, h.set.p, h.set.n);
        stream = h.stream;
        first = h.first;
        /* Resume strictly after this key: a set held again is re-put. */
        if ((rv = bs_held_del(ap->txn, BS_HELD_WAITING, stream, first)) ==
            BS_OK)
            rv = retry(ap, &h, bs_mem(copy, h.set.n));
        free(copy);
        if (rv != BS_OK)
            return rv;
        if (ap->held > held_before)
            ap->held--; /* still held: counted once, not twice */
    }
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_apply_held(bs_apply *ap, bs_errbuf *err)
{
    (void)err;
    ap->nobase_ok = 0; /* a rebuild or release may write a base */
    /* A held set may unblock another (an introduction, its successor):
     * pass again while passes make progress (bounded). */
    for (int pass = 0; pass < 8; pass++) {
        uint64_t before = ap->sets;
        bs_err rv = held_pass(ap);
        if (rv != BS_OK || ap->sets == before)
            return rv;
    }
    return BS_OK;
}

bs_err
bs_apply_snapshot(bs_apply *ap, const bs_snap *s, const uint8_t *carrier,
                  bs_errbuf *err)
{
    bs_err rv;

    if ((carrier != NULL &&
         (rv = bs_admit_snapshot(&ap->ad, s, carrier, err)) != BS_OK) ||
        (rv = bs_movein_merge(ap, s, err)) != BS_OK)
        return rv;
    ap->snapshots++;
    return BS_OK;
}
