/*
 * apply.c - verify, authorize, resolve and write remote change sets.
 */
#include "apply.h"

#include <string.h>

#include "conflict.h"
#include "sys.h"

bs_err
bs_apply_begin(bs_apply *ap, bs_txn *t, bs_clock clock, uint64_t max_skew_ms,
               bs_errbuf *err)
{
    bs_err rv;

    memset(ap, 0, sizeof *ap);
    ap->txn = t;
    ap->max_skew_ms = max_skew_ms;
    bs_arena_init(&ap->scratch);
    if ((rv = bs_meta_load(t, &ap->meta, err)) != BS_OK)
        return rv;
    if ((rv = bs_streams_load(t, &ap->streams)) != BS_OK)
        return bs_errf(err, rv, "cannot read stream table");
    bs_hlc_init(&ap->hlc, clock, ap->meta.hlc);
    {
        uint64_t n = 0;
        if ((rv = bs_txn_count(t, BS_DB_CONFLICTS, &n)) != BS_OK)
            return rv;
        ap->has_conflicts = n > 0;
    }
    return BS_OK;
}

void
bs_apply_fini(bs_apply *ap)
{
    bs_streams_fini(&ap->streams);
    bs_arena_fini(&ap->scratch);
    free(ap->cache_seen);
}

bs_err
bs_apply_finish(bs_apply *ap, bs_errbuf *err)
{
    (void)err;
    return bs_meta_save_hlc(ap->txn, ap->hlc.last);
}

int
bs_pos_covers(const bs_pos *v, size_t n, const uint8_t *key, uint64_t seq)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(v[i].origin, key, BS_PK_LEN) == 0 &&
            memcmp(v[i].inc, key + BS_PK_LEN, BS_INC_LEN) == 0)
            return v[i].seq >= seq;
    return 0;
}

static void
log_key(uint8_t key[12], uint32_t stream, uint64_t first)
{
    bs_put_u32be(key, stream);
    bs_put_u64be(key + 4, first);
}

/* Load into the cache the vector of the stored set holding (stream, seq). */
static bs_err
load_seen(bs_apply *ap, uint32_t stream, uint64_t seq)
{
    uint8_t key[12];
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if (ap->cache_stream == stream && ap->cache_first <= seq &&
        seq <= ap->cache_last)
        return BS_OK;
    log_key(key, stream, seq + 1);
    if ((rv = bs_cursor_open(ap->txn, BS_DB_LOG, &c)) != BS_OK)
        return rv;
    rv = bs_cursor_seek(c, bs_mem(key, 12), &k, &v);
    rv = rv == BS_OK ? bs_cursor_prev(c, &k, &v) : bs_cursor_last(c, &k, &v);
    if (rv == BS_OK && (k.n != 12 || bs_get_u32be(k.p) != stream))
        rv = BS_ENOTFOUND;
    if (rv == BS_OK) {
        free(ap->cache_seen);
        ap->cache_seen = NULL;
        ap->cache_stream = 0;
        rv = bs_changeset_stored_seen(v, &ap->cache_seen, &ap->cache_nseen,
                                      &ap->cache_first, &ap->cache_last);
        if (rv == BS_OK)
            ap->cache_stream = stream;
    }
    bs_cursor_close(c);
    return rv;
}

/* 1 when the write at (stream, seq) had seen change key/cseq. */
static int
saw(bs_apply *ap, uint32_t stream, uint64_t seq, const uint8_t *key,
    uint64_t cseq)
{
    if (load_seen(ap, stream, seq) != BS_OK)
        return 0;
    return bs_pos_covers(ap->cache_seen, ap->cache_nseen, key, cseq);
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
    if (bs_pos_covers(v->seen, v->nseen, es->key, e->seq))
        return 0; /* c was written after e arrived */
    return !saw(ap, e->stream, e->seq, cs->key, c->seq);
}

static const bs_field *
find_field(const bs_record *r, const char *name, size_t n)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (r->fields[i].namelen == n &&
            memcmp(r->fields[i].name, name, n) == 0)
            return &r->fields[i];
    return NULL;
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
    if (r->has_tomb && concurrent(ap, v, cstream, c, &r->tomb))
        rv = note_conflict(ap, c, BS_CONFLICT_RECORD, pol, cv,
                           c->nfields ? &c->fields[0].val : NULL, &r->tomb,
                           NULL, o);
    for (size_t i = 0; i < c->nfields && rv == BS_OK; i++) {
        const bs_field *e =
            find_field(r, c->fields[i].name, c->fields[i].namelen);

        if (e != NULL && !bs_value_eq(&e->val, &c->fields[i].val) &&
            concurrent(ap, v, cstream, c, &e->ver))
            rv = note_conflict(ap, c, c->fields[i].name, pol, cv,
                               &c->fields[i].val, &e->ver, &e->val, o);
    }
    return rv;
}

static bs_err
merge_change(bs_apply *ap, const bs_csview *v, bs_stream *s, bs_change *c,
             bs_errbuf *err)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, c->coll, c->id);
    bs_version cv = {c->hlc, c->seq, s->idx, c->prio};
    bs_order o = {0, bs_streams_key, &ap->streams};
    bs_policy pol;
    bs_record r;
    bs_slice old;
    uint8_t *dst;
    int changed;
    bs_err rv;

    if (strcmp(ap->policy_coll, c->coll) == 0) {
        pol = (bs_policy)ap->policy;
    } else {
        if ((rv = bs_sys_policy(ap->txn, c->coll, &pol)) != BS_OK)
            return rv;
        snprintf(ap->policy_coll, sizeof ap->policy_coll, "%s", c->coll);
        ap->policy = (int)pol;
    }
    if (strcmp(c->coll, BS_SYS_COLLECTIONS) == 0)
        ap->policy_coll[0] = '\0'; /* a policy changes: look again */
    o.use_prio = pol == BS_POLICY_PRIORITY;
    memset(&r, 0, sizeof r);
    /* Fast path: a record new here costs one B-tree descent — try to
     * insert it as the change alone makes it. */
    rv = bs_record_merge(&r, c->deleted, c->fields, c->nfields, &cv, &o,
                         &ap->scratch, &changed);
    if (rv != BS_OK)
        return bs_errf(err, rv, "%s/%s: too many fields", c->coll, c->id);
    rv = bs_txn_reserve(ap->txn, BS_DB_RECORDS, bs_mem(key, klen),
                        bs_record_size(&r), BS_PUT_NOOVERWRITE, &dst, &old);
    if (rv == BS_OK) {
        bs_record_encode(&r, dst);
        changed = 0; /* written */
    } else if (rv == BS_EEXIST) {
        /* Decode a copy: the record borrows from it, and rewriting the
         * same key below may move or overwrite LMDB's page. */
        if ((old.p = bs_arena_memdup(&ap->scratch, old.p, old.n)) == NULL)
            return BS_ENOMEM;
        if ((rv = bs_record_decode(&r, old.p, old.n, &ap->scratch)) != BS_OK)
            return bs_errf(err, rv, "%s/%s: stored record is corrupt", c->coll,
                           c->id);
        if ((rv = detect(ap, v, s->idx, c, &cv, &r, pol, &o)) != BS_OK)
            return rv;
        rv = bs_record_merge(&r, c->deleted, c->fields, c->nfields, &cv, &o,
                             &ap->scratch, &changed);
        if (rv != BS_OK)
            return bs_errf(err, rv, "%s/%s: too many fields", c->coll, c->id);
    } else {
        return rv;
    }
    if (ap->has_conflicts) {
        /* A write that saw both sides of an open conflict settles it. */
        rv = bs_conflict_supersede(ap->txn, c->coll, c->id, BS_CONFLICT_RECORD,
                                   v->seen, v->nseen);
        for (size_t i = 0; i < c->nfields && rv == BS_OK; i++)
            rv = bs_conflict_supersede(ap->txn, c->coll, c->id,
                                       c->fields[i].name, v->seen, v->nseen);
        if (rv != BS_OK)
            return rv;
    }
    if (!changed)
        return BS_OK;
    rv = bs_txn_reserve(ap->txn, BS_DB_RECORDS, bs_mem(key, klen),
                        bs_record_size(&r), 0, &dst, NULL);
    if (rv == BS_OK)
        bs_record_encode(&r, dst);
    return rv;
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
             bs_errbuf *err)
{
    keyed *k = malloc(v->count * sizeof *k), **order = NULL;
    size_t n = 0;
    bs_err rv = BS_OK;

    if (k == NULL || (order = malloc(v->count * sizeof *order)) == NULL) {
        free(k);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < v->count; i++) {
        if (!v->present[i] || v->first + i <= s->seq)
            continue;
        k[n].c = &ch[i];
        k[n].i = i;
        k[n].klen = bs_record_key(k[n].key, ch[i].coll, ch[i].id);
        order[n] = &k[n];
        n++;
    }
    qsort(order, n, sizeof *order, keyed_cmp);
    for (size_t j = 0; j < n && rv == BS_OK; j++) {
        rv = merge_change(ap, v, s, &ch[order[j]->i], err);
        ap->changes += rv == BS_OK;
    }
    free(order);
    free(k);
    return rv;
}

/* Quarantine s (S6): two contents for one position. */
static bs_err
quarantine(bs_apply *ap, bs_stream *s, const bs_csview *v, const char *why)
{
    uint8_t key[13];

    s->flags |= BS_STREAM_QUARANTINED;
    snprintf(s->note, sizeof s->note, "%s at seq %llu", why,
             (unsigned long long)v->first);
    ap->quarantined++;
    /* Keep the other copy as evidence. */
    key[0] = 'E';
    log_key(key + 1, s->idx, v->first);
    if (bs_txn_put(ap->txn, BS_DB_HELD, bs_mem(key, 13), v->raw, 0, NULL) !=
        BS_OK)
        return BS_ESTORE;
    return bs_streams_save(ap->txn, s);
}

static bs_err hold(bs_apply *ap, bs_stream *s, const bs_csview *v,
                   const char *why);

/* 1 when any set is held back. */
static int
any_held(bs_apply *ap)
{
    uint8_t h = 'H';
    bs_cursor *c;
    bs_slice k, v;
    int found = 0;

    if (bs_cursor_open(ap->txn, BS_DB_HELD, &c) != BS_OK)
        return 0;
    if (bs_cursor_seek(c, bs_mem(&h, 1), &k, &v) == BS_OK && k.n > 0 &&
        k.p[0] == 'H')
        found = 1;
    bs_cursor_close(c);
    return found;
}

/* 1 when sets of stream idx are held back. */
static int
has_held(bs_apply *ap, uint32_t idx)
{
    uint8_t key[5];
    bs_cursor *c;
    bs_slice k, v;
    int found = 0;

    key[0] = 'H';
    bs_put_u32be(key + 1, idx);
    if (bs_cursor_open(ap->txn, BS_DB_HELD, &c) != BS_OK)
        return 0;
    if (bs_cursor_seek(c, bs_mem(key, 5), &k, &v) == BS_OK && k.n >= 5 &&
        memcmp(k.p, key, 5) == 0)
        found = 1;
    bs_cursor_close(c);
    return found;
}

/* Decide what to do with v given the stream position; 1 = apply. */
static bs_err
position(bs_apply *ap, bs_stream *s, const bs_csview *v, int *apply,
         bs_errbuf *err)
{
    uint8_t key[12];
    bs_slice held;

    *apply = 0;
    if (v->last <= s->seq) {
        ap->dup_sets++;
        log_key(key, s->idx, v->first);
        if (bs_txn_get(ap->txn, BS_DB_LOG, bs_mem(key, 12), &held) == BS_OK &&
            (held.n != v->raw.n || memcmp(held.p, v->raw.p, held.n) != 0)) {
            /* Same position, other bytes: the same if only omissions
             * differ, so compare the signed headers. */
            bs_slice h2;
            if (bs_changeset_stored_header(held, &h2) != BS_OK ||
                h2.n != v->header.n || memcmp(h2.p, v->header.p, h2.n) != 0)
                return quarantine(ap, s, v, "two different change sets");
        }
        return BS_OK;
    }
    if (v->first <= s->seq)
        return bs_errf(err, BS_EMALFORMED,
                       "change set %llu-%llu overlaps seq %llu already held",
                       (unsigned long long)v->first,
                       (unsigned long long)v->last, (unsigned long long)s->seq);
    if (v->first > s->seq + 1 && has_held(ap, s->idx)) {
        *apply = 0;
        return hold(ap, s, v, "behind a held set"); /* waits in line */
    }
    if (v->first > s->seq + 1)
        return bs_errf(err, BS_EGAP,
                       "change set would leave a gap: holding seq %llu of "
                       "this origin, set starts at %llu",
                       (unsigned long long)s->seq,
                       (unsigned long long)v->first);
    if (v->first == s->seq + 1 && v->first > 1 &&
        memcmp(v->prev_hash, s->last_hash, BS_HASH_LEN) != 0)
        return quarantine(ap, s, v, "history fork");
    *apply = 1;
    return BS_OK;
}

static bs_err
hold(bs_apply *ap, bs_stream *s, const bs_csview *v, const char *why)
{
    uint8_t key[13];

    key[0] = 'H';
    log_key(key + 1, s->idx, v->first);
    ap->held++;
    snprintf(s->note, sizeof s->note, "held at seq %llu: %s",
             (unsigned long long)v->first, why);
    if (bs_txn_put(ap->txn, BS_DB_HELD, bs_mem(key, 13), v->raw, 0, NULL) !=
        BS_OK)
        return BS_ESTORE;
    return bs_streams_save(ap->txn, s);
}

static bs_err
check_origin(bs_apply *ap, const bs_csview *v, bs_errbuf *err)
{
    char id[BS_NODE_ID_LEN + 1];
    bs_member m;

    if (!ap->meta.joined)
        return bs_errf(err, BS_EINFOBASE,
                       "this branch has not joined an infobase yet");
    if (memcmp(v->infobase, ap->meta.infobase, BS_INFOBASE_LEN) != 0)
        return bs_errf(err, BS_EINFOBASE,
                       "change set belongs to another infobase");
    bs_node_id_format(v->origin, id);
    if (bs_sys_member(ap->txn, &ap->meta, v->origin, &m) != BS_OK &&
        !bs_member_allows(&m, v->inc, v->last))
        return bs_errf(err, BS_EFORGED, "origin %s is %s", id,
                       m.revoked ? "revoked" : "not a member of this infobase");
    if (!v->verified && bs_changeset_verify(v, v->origin) != BS_OK)
        return bs_errf(err, BS_EBADSIG,
                       "signature of origin %s does not verify", id);
    return BS_OK;
}

bs_err
bs_apply_set(bs_apply *ap, const bs_csview *v, bs_errbuf *err)
{
    uint64_t wall = bs_hlc_wall_ms(&ap->hlc), maxhlc = 0;
    bs_change *ch;
    bs_stream *s;
    uint8_t key[12];
    int apply;
    bs_err rv;

    int waits = 0;

    if ((rv = check_origin(ap, v, err)) == BS_EFORGED && any_held(ap)) {
        /* Its origin may be introduced by a hub set held back (S10): wait
         * for it rather than refuse, once its signature holds. */
        if (!v->verified && bs_changeset_verify(v, v->origin) != BS_OK)
            return rv;
        waits = 1;
    } else if (rv != BS_OK) {
        return rv;
    }
    if ((s = bs_streams_find(&ap->streams, v->origin, v->inc)) == NULL &&
        (rv = bs_streams_add(ap->txn, &ap->streams, v->origin, v->inc, &s)) !=
            BS_OK)
        return rv;
    if (s->flags & BS_STREAM_QUARANTINED) {
        ap->quarantined++;
        return BS_OK; /* that stream waits for an admin (P6) */
    }
    if (waits)
        return hold(ap, s, v, "its origin is introduced by a held set");
    if ((rv = position(ap, s, v, &apply, err)) != BS_OK || !apply)
        return rv;
    bs_arena_reset(&ap->scratch);
    if ((ch = bs_arena_alloc(&ap->scratch, v->count * sizeof *ch)) == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < v->count; i++) {
        if (!v->present[i])
            continue;
        if ((rv = bs_changeset_change(v, i, &ap->scratch, &ch[i], err)) !=
            BS_OK)
            return rv;
        if (ch[i].coll[0] == '_' &&
            memcmp(v->origin, ap->meta.hub, BS_PK_LEN) != 0)
            return bs_errf(err, BS_EPERM,
                           "not permitted: only the hub writes %s", ch[i].coll);
        if (ch[i].hlc > maxhlc)
            maxhlc = ch[i].hlc;
    }
    if (BS_HLC_MS(maxhlc) > wall + ap->max_skew_ms)
        return hold(ap, s, v, "its clock is ahead of ours"); /* S10 */
    /* Merge in record-key order: the merge does not depend on order
     * (INV-5), and LMDB touches far fewer pages for sorted keys. */
    if ((rv = merge_sorted(ap, v, s, ch, err)) != BS_OK)
        return rv;
    bs_hlc_observe(&ap->hlc, maxhlc);
    log_key(key, s->idx, v->first);
    rv = bs_txn_put(ap->txn, BS_DB_LOG, bs_mem(key, 12), v->raw,
                    BS_PUT_NOOVERWRITE, NULL);
    if (rv != BS_OK && rv != BS_EEXIST)
        return rv;
    s->seq = v->last;
    memcpy(s->last_hash, v->header_hash, BS_HASH_LEN);
    s->note[0] = '\0';
    ap->sets++;
    {
        /* Held earlier and now applied (on another path): forget it. */
        uint8_t hk[13];
        hk[0] = 'H';
        log_key(hk + 1, s->idx, v->first);
        rv = bs_txn_del(ap->txn, BS_DB_HELD, bs_mem(hk, 13));
        if (rv != BS_OK && rv != BS_ENOTFOUND)
            return rv;
    }
    return bs_streams_save(ap->txn, s);
}

static bs_err
held_pass(bs_apply *ap, bs_errbuf *err)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;
    uint8_t first = 'H';

    if ((rv = bs_cursor_open(ap->txn, BS_DB_HELD, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(c, bs_mem(&first, 1), &k, &v);
         rv == BS_OK && k.n == 13 && k.p[0] == 'H';) {
        bs_csview *cv;
        uint8_t *copy = malloc(v.n), next[14];
        uint64_t held_before = ap->held;

        /* Resume strictly after this key: a set held again is re-put. */
        memcpy(next, k.p, 13);
        next[13] = 0;

        if (copy == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        memcpy(copy, v.p, v.n);
        if ((rv = bs_cursor_del(c)) != BS_OK) {
            free(copy);
            break;
        }
        if (bs_changeset_decode(copy, v.n, &cv, err) == BS_OK) {
            rv = bs_apply_set(ap, cv, err);
            if (rv != BS_OK && rv != BS_EMAPFULL && rv != BS_ENOMEM &&
                rv != BS_EIO && rv != BS_ESTORE) {
                /* Refused now (e.g. its origin was revoked since): keep it
                 * as evidence; it no longer blocks anything. */
                uint8_t ek[13];
                memcpy(ek, next, 13);
                ek[0] = 'R';
                rv = bs_txn_put(ap->txn, BS_DB_HELD, bs_mem(ek, 13),
                                bs_mem(copy, v.n), 0, NULL);
            }
            bs_changeset_free(cv);
        }
        free(copy);
        if (rv != BS_OK)
            break;
        if (ap->held > held_before)
            ap->held--; /* still held: counted once, not twice */
        rv = bs_cursor_seek(c, bs_mem(next, 14), &k, &v);
    }
    bs_cursor_close(c);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_apply_held(bs_apply *ap, bs_errbuf *err)
{
    /* A held set may unblock another (an introduction, its successor):
     * pass again while passes make progress (bounded). */
    for (int pass = 0; pass < 8; pass++) {
        uint64_t before = ap->sets;
        bs_err rv = held_pass(ap, err);
        if (rv != BS_OK || ap->sets == before)
            return rv;
    }
    return BS_OK;
}
