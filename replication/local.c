/*
 * local.c - local writes, change queueing and sealing into the log.
 */
#include "local.h"

#include <string.h>

#include "access.h"
#include "changes.h"
#include "clock.h"
#include "collections.h"
#include "conflict.h"
#include "movein.h"
#include "rebuild.h"
#include "rules.h"
#include "setlog.h"
#include "unique.h"

/* The clock discipline (clock.h): correct the stamps of a clock that is
 * ahead of the peers' beyond max_skew, or refuse to write. */
static bs_err
discipline(bs_local *l, const bs_core *c, bs_errbuf *err)
{
    bs_clock_verdict v;
    bs_err rv;

    /* A remembered stamp further ahead than max_skew came from a wrong
     * wall clock (or one corrected now): forget it (hlc.h). */
    l->hlc.horizon_ms = c->max_skew_ms;
    if (c->max_skew_ms == 0)
        return BS_OK;
    if ((rv = bs_clock_judge_txn(l->txn, c->clock, &v)) != BS_OK)
        return rv;
    if (v.ahead_ms <= (int64_t)c->max_skew_ms)
        return BS_OK;
    if (c->clock_ahead == BS_CLOCK_REFUSE)
        return bs_errf(err, BS_EIO,
                       "this node's clock is %lld s ahead of %s's (measured "
                       "at their last exchange): local writes are refused "
                       "until the clock is fixed ([sync] clock_ahead = "
                       "refuse)",
                       (long long)(v.ahead_ms / 1000), v.peer);
    l->correction_ms = (uint64_t)v.ahead_ms;
    l->hlc.correction_ms = l->correction_ms;
    return BS_OK;
}

bs_err
bs_local_begin(bs_local *l, bs_txn *t, const bs_core *c, bs_errbuf *err)
{
    bs_clock clock = c->clock;
    bs_err rv;

    memset(l, 0, sizeof *l);
    l->txn = t;
    l->sk = c->sk;
    bs_arena_init(&l->scratch);
    bs_csbuild_init(&l->build);
    if ((rv = bs_meta_load(t, &l->meta, err)) != BS_OK)
        return rv;
    if ((rv = bs_streams_load(t, &l->streams)) != BS_OK)
        return bs_errf(err, rv, "cannot read stream table");
    if ((l->self = bs_streams_get(&l->streams, l->meta.stream)) == NULL)
        return bs_errf(err, BS_ESTORE, "store has no stream of its own");
    bs_hlc_init(&l->hlc, clock, l->meta.hlc);
    if ((rv = discipline(l, c, err)) != BS_OK)
        return rv;
    l->order.use_prio = 0;
    l->order.stream_key = bs_streams_key;
    l->order.ctx = &l->streams;
    {
        uint64_t n = 0;
        if ((rv = bs_conflict_count(t, &n, NULL)) != BS_OK)
            return rv;
        l->has_conflicts = n > 0; /* open ones: only they can be settled */
    }
    return BS_OK;
}

/* A local write has seen everything this node holds: it settles the open
 * conflicts of the fields it writes. */
static bs_err
settle(bs_local *l, const char *coll, const char *id, const bs_field *f,
       size_t n)
{
    bs_pos *vec;
    size_t nv;
    bs_err rv;

    if (!l->has_conflicts)
        return BS_OK;
    if ((rv = bs_streams_vector(&l->streams, &vec, &nv)) != BS_OK)
        return rv;
    rv = bs_conflict_supersede(l->txn, coll, id, BS_CONFLICT_RECORD, vec, nv);
    for (size_t i = 0; i < n && rv == BS_OK; i++)
        rv = bs_conflict_supersede(l->txn, coll, id, f[i].name, vec, nv);
    free(vec);
    return rv;
}

void
bs_local_fini(bs_local *l)
{
    bs_streams_fini(&l->streams);
    bs_arena_fini(&l->scratch);
    bs_csbuild_fini(&l->build);
    bs_rebuild_queue_fini(&l->rules_due);
}

/* Seal the queued changes into one set and append it to the log. */
static bs_err
seal(bs_local *l, bs_errbuf *err)
{
    bs_seal s;
    bs_sealed *x;
    bs_pos *seen;
    size_t nseen;
    uint8_t *dst;
    bs_err rv;

    if (bs_csbuild_count(&l->build) == 0)
        return BS_OK;
    if ((rv = bs_streams_vector(&l->streams, &seen, &nseen)) != BS_OK)
        return rv;
    memset(&s, 0, sizeof s);
    /* A branch that has not joined yet signs with the all-zero infobase;
     * its sets are re-sealed when it joins (docs/protocol.md §8.6). */
    if (l->meta.joined)
        memcpy(s.infobase, l->meta.infobase, BS_INFOBASE_LEN);
    memcpy(s.origin, l->meta.pk, BS_PK_LEN);
    memcpy(s.inc, l->meta.inc, BS_INC_LEN);
    s.has_prev = l->build.first_seq > 1;
    memcpy(s.prev_hash, l->self->last_hash, BS_HASH_LEN);
    s.seen = seen;
    s.nseen = nseen;
    s.created_ms = bs_hlc_wall_ms(&l->hlc);
    if (s.created_ms > l->correction_ms) /* the corrected clock, too */
        s.created_ms -= l->correction_ms;
    s.routes = 1; /* docs/protocol.md 2.5 */
    rv = bs_csbuild_seal(&l->build, &s, l->sk, &x);
    free(seen);
    if (rv != BS_OK)
        return bs_errf(err, rv, "cannot seal change set");
    rv = bs_setlog_reserve(l->txn, l->self->idx, bs_sealed_first(x),
                           bs_sealed_size(x), &dst);
    if (rv == BS_OK) {
        bs_sealed_write(x, dst);
        memcpy(l->self->last_hash, bs_sealed_hash(x), BS_HASH_LEN);
        l->self->seq = bs_sealed_last(x);
        rv = bs_setlog_written(l->txn, l->self->idx, bs_sealed_first(x),
                               (bs_slice){dst, bs_sealed_size(x)});
    }
    bs_sealed_free(x);
    return rv;
}

/* Overwrite record coll/id (key) with r; old is what it stored, whose
 * base, when the record was its own (movein.h), is kept first. */
static bs_err
write_record(bs_local *l, const char *coll, const char *id, const uint8_t *key,
             size_t klen, const bs_record *r, bs_slice old)
{
    bs_recenc e;
    uint8_t *dst;
    bs_err rv;

    if ((rv = bs_movein_base_keep(l->txn, coll, id, old)) != BS_OK ||
        (rv = bs_record_prepare(r, &l->scratch, &e)) != BS_OK ||
        (rv = bs_txn_reserve(l->txn, BS_DB_RECORDS, bs_mem(key, klen), e.size,
                             0, &dst, NULL)) != BS_OK)
        return rv;
    bs_record_encode(r, &e, dst);
    return BS_OK;
}

/* Prio of a new local write over r: inherit the highest seen, and the hub
 * adds one (docs/protocol.md §5.3). */
static uint32_t
next_prio(const bs_local *l, const bs_record *r, const bs_field *f, size_t n)
{
    uint32_t p = 0;

    if (r != NULL) {
        if (r->has_tomb && r->tomb.prio > p)
            p = r->tomb.prio;
        if (r->has_alive && r->alive.prio > p)
            p = r->alive.prio;
        for (size_t i = 0; i < r->nfields; i++)
            if (r->fields[i].ver.prio > p)
                p = r->fields[i].ver.prio;
    }
    (void)f;
    (void)n;
    return p + (l->meta.role == BS_ROLE_HUB ? 1 : 0);
}

static int
is_noop(const bs_record *r, const bs_field *f, size_t n)
{
    size_t i = 0;

    if (!r->live)
        return 0;
    for (size_t j = 0; j < n; j++) {
        while (i < r->nfields &&
               (r->fields[i].namelen != strlen(f[j].name) ||
                memcmp(r->fields[i].name, f[j].name, r->fields[i].namelen)))
            i++;
        if (i == r->nfields || !bs_value_eq(&r->fields[i].val, &f[j].val))
            return 0;
    }
    return 1;
}

/* Stamp v above every version r holds, so the write wins over what it
 * overwrites even when the clock that stamped r was ahead (protocol 5.3). */
static void
stamp_above(bs_local *l, const bs_record *r, bs_version *v)
{
    uint64_t floor = 0;

    if (r->has_alive && r->alive.hlc > floor)
        floor = r->alive.hlc;
    if (r->has_tomb && r->tomb.hlc > floor)
        floor = r->tomb.hlc;
    for (size_t i = 0; i < r->nfields; i++)
        if (r->fields[i].ver.hlc > floor)
            floor = r->fields[i].ver.hlc;
    if (v->hlc <= floor) {
        v->hlc = floor + 1;
        bs_hlc_observe(&l->hlc, v->hlc);
    }
}

/* The latest rules of coll into l->rules: a local write is stamped after
 * every version this node holds, so they govern it (and its route). */
static bs_err
latest_rules(bs_local *l, const char *coll)
{
    bs_err rv;

    if (l->have_rules && strcmp(l->rules.name, coll) == 0)
        return BS_OK;
    if ((rv = bs_rules_at(l->txn, coll, UINT64_MAX, &l->rules,
                          &l->rules_ver)) != BS_OK)
        return rv;
    l->have_rules = 1;
    return BS_OK;
}

/*
 * The owner a change's route names (docs/protocol.md 2.5): the owner field
 * of coll's rules now, as r holds it — the record after an upsert, just
 * before a delete (so the owner receives the delete) — when it is a text
 * that can name a node; else "".  The route's owner before is the same
 * computed on the record just before the change ("" when the store held
 * no such record; the owner itself for a delete).
 */
static bs_err
route_owner(bs_local *l, const char *coll, const bs_record *r, char *out,
            size_t n)
{
    const bs_value *val;
    bs_err rv;

    out[0] = '\0';
    if (coll[0] == '_')
        return BS_OK;
    if ((rv = latest_rules(l, coll)) != BS_OK)
        return rv;
    if (l->rules.owner_field[0] == '\0' || r == NULL ||
        (val = bs_record_field(r, l->rules.owner_field)) == NULL ||
        val->type != BS_VTEXT || val->len > BS_NODE_NAME_MAX)
        return BS_OK;
    snprintf(out, n, "%.*s", (int)val->len, val->s);
    if (!bs_node_name_valid(out))
        out[0] = '\0';
    return BS_OK;
}

/* Queue one change whose route names owner and owner_before ("" none). */
static bs_err
queue_change(bs_local *l, const char *coll, const char *id, int deleted,
             const bs_field *f, size_t n, const bs_version *v,
             const char *owner, const char *owner_before, bs_errbuf *err)
{
    bs_change ch = {v->seq, v->hlc, v->prio, coll, id, deleted, f, n};
    bs_err rv;

    if (bs_csbuild_full(&l->build) && (rv = seal(l, err)) != BS_OK)
        return rv;
    if ((rv = bs_csbuild_add(&l->build, &ch)) == BS_EINVAL)
        return bs_errf(err, rv,
                       "%s/%s: field \"%s\" is too large: a field with its "
                       "names must fit in one change (%u bytes)",
                       coll, id, n > 0 ? f[0].name : "", BS_CHANGE_MAX_BYTES);
    if (rv != BS_OK)
        return rv;
    return bs_csbuild_route(&l->build, NULL, owner, owner_before);
}

static bs_version
next_version(bs_local *l, uint32_t prio)
{
    bs_version v;

    v.seq = l->self->seq + bs_csbuild_count(&l->build) + 1;
    v.hlc = bs_hlc_stamp(&l->hlc, 0);
    v.stream = l->self->idx;
    v.prio = prio;
    return v;
}

/* The hub wrote `_collections/id`: the record after it is a version of
 * id's rules (rules.h). */
static bs_err
note_rules(bs_local *l, const char *coll, const char *id, const bs_record *r,
           const bs_version *v)
{
    bs_rule_version ver = {v->hlc, v->seq, {0}};
    bs_collection rules;

    if (strcmp(coll, BS_SYS_COLLECTIONS) != 0)
        return BS_OK;
    memcpy(ver.inc, l->meta.inc, BS_INC_LEN);
    memset(&rules, 0, sizeof rules);
    bs_collection_from_record(&rules, r);
    l->have_rules = 0; /* look them up again: judgments and routes follow */
    return bs_rebuild_note_rules(l->txn, id, &ver, &rules, &l->rules_due);
}

/* Note the owner c gives its record for later judgments, unless made, the
 * record c has just made new, implies it (access.h). */
static bs_err
note_owner(bs_local *l, const bs_change *c, const bs_version *v,
           const bs_record *made, const char *owner_field)
{
    if (made != NULL && bs_access_owner_implied(c, v, made, owner_field))
        return BS_OK;
    return bs_access_note_owner(l->txn, c, l->self->key, owner_field);
}

/* A local write the rules in effect forbid is refused up front (design.md,
 * "Access and filters"); an allowed one that names an owner is noted for
 * later judgments (access.h); made: as in note_owner, or NULL. */
static bs_err
check_rules(bs_local *l, const bs_change *c, const bs_version *v,
            const bs_record *made, bs_errbuf *err)
{
    char name[BS_NODE_NAME_MAX + 1];
    bs_judgment j;
    bs_err rv;

    if (c->coll[0] == '_')
        return BS_OK;
    if ((rv = latest_rules(l, c->coll)) != BS_OK)
        return rv;
    /* the common case: nothing to judge, at most an owner to note */
    if (l->rules.writers == BS_WRITERS_ALL ||
        (l->meta.joined && memcmp(l->meta.pk, l->meta.hub, BS_PK_LEN) == 0))
        return note_owner(l, c, v, made, l->rules.owner_field);
    bs_access_name(l->txn, &l->meta, l->meta.pk, name);
    /* The latest version this node holds governs its write even when the
     * write is stamped below it (a clock set back): the set's vector says
     * the node had it (rules.h). */
    if ((rv = bs_access_judge(l->txn, &l->meta, l->self->key, name, c, v,
                              &l->order, &l->rules, &l->rules_ver, &l->rules,
                              &l->rules_ver, NULL, NULL, &j)) != BS_OK)
        return rv;
    if (!j.allowed)
        return bs_errf(err, BS_EPERM,
                       "not permitted: %s; the head office's rules forbid it",
                       j.why);
    return note_owner(l, c, v, made, j.rules.owner_field);
}

/* The owner field whose history coll keeps, once check_rules looked its
 * rules up (NULL: none). */
static const char *
owner_field_of(const bs_local *l, const char *coll)
{
    return coll[0] != '_' && l->rules.owner_field[0] ? l->rules.owner_field
                                                     : NULL;
}

/* One change of a put: fields f[0..n), at most one change's worth. */
static bs_err
put_change(bs_local *l, const char *coll, const char *id, bs_field *f, size_t n,
           int *wrote, bs_errbuf *err)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, coll, id);
    char owner[BS_NODE_NAME_MAX + 1], before[BS_NODE_NAME_MAX + 1];
    bs_owner_mark mark;
    bs_record r;
    bs_recenc e;
    bs_version v;
    bs_slice old;
    uint8_t *dst;
    int changed;
    bs_err rv;

    *wrote = 0;
    bs_arena_reset(&l->scratch);
    memset(&r, 0, sizeof r);
    /* Fast path: a new record costs one B-tree descent. */
    v = next_version(l, next_prio(l, NULL, f, n));
    r.has_alive = 1;
    r.live = 1;
    r.alive = v;
    r.fields = f;
    r.nfields = n;
    for (size_t i = 0; i < n; i++)
        r.fields[i].ver = v;
    if ((rv = bs_record_prepare(&r, &l->scratch, &e)) != BS_OK)
        return rv;
    rv = bs_txn_reserve(l->txn, BS_DB_RECORDS, bs_mem(key, klen), e.size,
                        BS_PUT_NOOVERWRITE, &dst, &old);
    if (rv == BS_OK) {
        bs_change ch = {v.seq, v.hlc, v.prio, coll, id, 0, f, n};

        bs_record_encode(&r, &e, dst);
        *wrote = 1;
        if ((rv = bs_changes_note(l->txn, coll, id, 0, &v)) != BS_OK)
            return rv;
        /* (A refusal aborts the transaction, this record with it.) */
        if ((rv = check_rules(l, &ch, &v, &r, err)) != BS_OK ||
            (rv = note_rules(l, coll, id, &r, &v)) != BS_OK ||
            (rv = route_owner(l, coll, &r, owner, sizeof owner)) != BS_OK)
            return rv;
        return queue_change(l, coll, id, 0, f, n, &v, owner, "", err);
    }
    if (rv != BS_EEXIST)
        return rv;
    /* Decode a copy: the record borrows from it, and rewriting the same
     * key below may move or overwrite LMDB's page. */
    if ((old.p = bs_arena_memdup(&l->scratch, old.p, old.n)) == NULL)
        return BS_ENOMEM;
    if ((rv = bs_record_decode(&r, old.p, old.n, &l->scratch)) != BS_OK)
        return bs_errf(err, rv, "%s/%s: stored record is corrupt", coll, id);
    if (!l->force && is_noop(&r, f, n))
        return BS_OK;
    if ((rv = route_owner(l, coll, &r, before, sizeof before)) != BS_OK)
        return rv;
    v.prio = next_prio(l, &r, f, n);
    stamp_above(l, &r, &v);
    {
        bs_change ch = {v.seq, v.hlc, v.prio, coll, id, 0, f, n};

        if ((rv = check_rules(l, &ch, &v, NULL, err)) != BS_OK)
            return rv;
    }
    /* the owner the record held: kept if the write replaces it (access.h) */
    bs_access_owner_mark(&r, owner_field_of(l, coll), &mark);
    if ((rv = bs_record_merge(&r, 0, f, n, &v, &l->order, &l->scratch,
                              &changed)) != BS_OK ||
        (rv = bs_access_owner_keep(l->txn, coll, id, &mark, &r, &l->order)) !=
            BS_OK ||
        (rv = write_record(l, coll, id, key, klen, &r, old)) != BS_OK ||
        (rv = bs_changes_note(l->txn, coll, id, !r.live, &v)) != BS_OK ||
        (rv = settle(l, coll, id, f, n)) != BS_OK ||
        (rv = note_rules(l, coll, id, &r, &v)) != BS_OK)
        return rv;
    if ((rv = route_owner(l, coll, &r, owner, sizeof owner)) != BS_OK)
        return rv;
    *wrote = 1;
    return queue_change(l, coll, id, 0, f, n, &v, owner, before, err);
}

/* Bytes f takes in a change, near enough to split a write by. */
static size_t
field_bytes(const bs_field *f)
{
    return 16 + f->namelen + (f->val.type == BS_VTEXT ? f->val.len : 8);
}

bs_err
bs_local_put(bs_local *l, const char *coll, const char *id, bs_field *f,
             size_t n, bs_errbuf *err)
{
    size_t done = 0;
    int any = 0;

    for (size_t i = 0; i < n; i++)
        f[i].namelen = (uint16_t)strlen(f[i].name);
    if (!l->unique_force) {
        bs_err rv = bs_unique_check(l->txn, coll, id, f, n, err);
        if (rv != BS_OK)
            return rv;
    }
    /* A write larger than one change (BS_FIELDS_MAX fields, a share of
     * BS_CHANGE_MAX_BYTES) becomes several, each merged under its own
     * version, as if written one after another (docs/design.md, "Limits"). */
    do {
        size_t k = 0, bytes = 0;
        int wrote;
        bs_err rv;

        while (done + k < n && k < BS_FIELDS_MAX &&
               (k == 0 ||
                bytes + field_bytes(&f[done + k]) <= BS_CHANGE_MAX_BYTES / 2))
            bytes += field_bytes(&f[done + k++]);
        if ((rv = put_change(l, coll, id, f + done, k, &wrote, err)) != BS_OK)
            return rv;
        any |= wrote;
        done += k;
    } while (done < n);
    if (any)
        l->written++;
    else
        l->unchanged++;
    return BS_OK;
}

bs_err
bs_local_del(bs_local *l, const char *coll, const char *id, bs_errbuf *err)
{
    char owner[BS_NODE_NAME_MAX + 1];
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, coll, id);
    bs_owner_mark mark;
    bs_record r;
    bs_version v;
    bs_slice old;
    int changed;
    bs_err rv;

    bs_arena_reset(&l->scratch);
    rv = bs_txn_get(l->txn, BS_DB_RECORDS, bs_mem(key, klen), &old);
    if (rv == BS_ENOTFOUND)
        return bs_errf(err, rv, "%s/%s: not found", coll, id);
    if (rv != BS_OK)
        return rv;
    /* Decode a copy: the record borrows from it, and rewriting the same
     * key below may move or overwrite LMDB's page. */
    if ((old.p = bs_arena_memdup(&l->scratch, old.p, old.n)) == NULL)
        return BS_ENOMEM;
    if ((rv = bs_record_decode(&r, old.p, old.n, &l->scratch)) != BS_OK)
        return bs_errf(err, rv, "%s/%s: stored record is corrupt", coll, id);
    if (!r.live)
        return bs_errf(err, BS_ENOTFOUND, "%s/%s: not found", coll, id);
    /* the owner it had: the owner receives its delete */
    if ((rv = route_owner(l, coll, &r, owner, sizeof owner)) != BS_OK)
        return rv;
    v = next_version(l, next_prio(l, &r, NULL, 0));
    stamp_above(l, &r, &v);
    {
        bs_change ch = {v.seq, v.hlc, v.prio, coll, id, 1, NULL, 0};

        if ((rv = check_rules(l, &ch, &v, NULL, err)) != BS_OK)
            return rv;
    }
    bs_access_owner_mark(&r, owner_field_of(l, coll), &mark);
    if ((rv = bs_record_merge(&r, 1, NULL, 0, &v, &l->order, &l->scratch,
                              &changed)) != BS_OK ||
        (rv = bs_access_owner_keep(l->txn, coll, id, &mark, &r, &l->order)) !=
            BS_OK)
        return rv;
    if ((rv = write_record(l, coll, id, key, klen, &r, old)) != BS_OK ||
        (rv = bs_changes_note(l->txn, coll, id, !r.live, &v)) != BS_OK ||
        (rv = settle(l, coll, id, NULL, 0)) != BS_OK ||
        (rv = note_rules(l, coll, id, &r, &v)) != BS_OK)
        return rv;
    l->deleted++;
    return queue_change(l, coll, id, 1, NULL, 0, &v, owner, owner, err);
}

bs_err
bs_local_finish(bs_local *l, bs_errbuf *err)
{
    bs_err rv;

    if (l->written == 0 && l->deleted == 0)
        return BS_OK; /* nothing changed: nothing is written (P3) */
    if ((rv = seal(l, err)) != BS_OK)
        return rv;
    if (l->rules_due.n > 0) {
        bs_rebuild_stats st;

        if ((rv = bs_rebuild_queue_run(l->txn, &l->meta, &l->rules_due, &st)) !=
            BS_OK)
            return rv;
    }
    if ((rv = bs_streams_save(l->txn, l->self)) != BS_OK)
        return rv;
    return bs_meta_save_hlc(l->txn, l->hlc.last);
}

/* Re-sign one of this node's streams (one incarnation) in place. */
static bs_err
reseal_stream(bs_txn *t, const bs_meta *meta, const uint8_t *sk,
              bs_stream *self, bs_csbuild *b, bs_errbuf *err)
{
    uint8_t prev[BS_HASH_LEN];
    uint64_t first;
    bs_slice v;
    int has_prev = 0;
    bs_err rv;

    for (uint64_t from = 0;
         (rv = bs_setlog_from(t, self->idx, from, &v, &first)) == BS_OK;
         from = first + 1) {
        uint8_t *dst;
        bs_csview *cv;
        bs_sealed *x;
        bs_seal s;

        if ((rv = bs_changeset_decode(v.p, v.n, &cv, err)) != BS_OK)
            break;
        for (size_t i = 0; i < cv->count && rv == BS_OK; i++)
            if ((rv = bs_csbuild_add_raw(b, cv->first + i, cv->changes[i])) ==
                    BS_OK &&
                cv->route_coll != NULL)
                rv = bs_csbuild_route(b, cv->route_coll[i], cv->route_owner[i],
                                      cv->route_before[i]);
        memset(&s, 0, sizeof s);
        s.routes = cv->route_coll != NULL; /* kept as they were signed */
        memcpy(s.infobase, meta->infobase, BS_INFOBASE_LEN);
        memcpy(s.origin, meta->pk, BS_PK_LEN);
        memcpy(s.inc, self->key + BS_PK_LEN, BS_INC_LEN);
        s.has_prev = has_prev;
        memcpy(s.prev_hash, prev, BS_HASH_LEN);
        s.seen = cv->seen;
        s.nseen = cv->nseen;
        s.created_ms = cv->created_ms;
        if (rv == BS_OK)
            rv = bs_csbuild_seal(b, &s, sk, &x);
        bs_changeset_free(cv);
        if (rv != BS_OK)
            break;
        rv = bs_setlog_reserve(t, self->idx, first, bs_sealed_size(x), &dst);
        if (rv == BS_OK) {
            bs_sealed_write(x, dst);
            memcpy(prev, bs_sealed_hash(x), BS_HASH_LEN);
            has_prev = 1;
            rv = bs_setlog_written(t, self->idx, first,
                                   (bs_slice){dst, bs_sealed_size(x)});
        }
        bs_sealed_free(x);
        if (rv != BS_OK)
            break;
    }
    if (rv != BS_ENOTFOUND)
        return rv;
    if (!has_prev)
        return BS_OK;
    memcpy(self->last_hash, prev, BS_HASH_LEN);
    return bs_streams_save(t, self);
}

bs_err
bs_local_reseal(bs_txn *t, const bs_meta *meta, const uint8_t *sk,
                bs_errbuf *err)
{
    bs_streamtab tab;
    bs_csbuild b;
    bs_err rv;

    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    bs_csbuild_init(&b);
    /* Every incarnation of ours: a restore may have started a new one
     * before the node ever joined. */
    for (size_t i = 0; i < tab.n && rv == BS_OK; i++)
        if (memcmp(tab.v[i].key, meta->pk, BS_PK_LEN) == 0)
            rv = reseal_stream(t, meta, sk, &tab.v[i], &b, err);
    bs_csbuild_fini(&b);
    bs_streams_fini(&tab);
    return rv;
}
