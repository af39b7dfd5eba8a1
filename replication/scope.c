/*
 * scope.c - who is entitled to which change (scope.h).
 */
#include "scope.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "changes.h"
#include "conflict.h"
#include "record.h"
#include "rules.h"
#include "setlog.h"
#include "members.h"
#include "movein.h"

/* Whether the receiver holds rule version v (its hub positions cover
 * it). */
static int
holds(const bs_scope_peer *p, const bs_rule_version *v)
{
    if (p->hubpos == NULL || v->seq == 0)
        return 1;
    for (size_t i = 0; i < p->nhubpos; i++)
        if (memcmp(p->hubpos[i].inc, v->inc, BS_INC_LEN) == 0)
            return p->hubpos[i].seq >= v->seq;
    return 0;
}

/*
 * The rules the receiver holds, as far as this node can tell: per
 * collection, the latest version (by stamp) its hub positions cover, else
 * the defaults.  It may hold more than its vector says (an old
 * acknowledgement), so a collection counts as owner-scoped for it only
 * when that version and every later one this node knows are: a change is
 * then left out only if no version the receiver may hold entitles it.
 */
static void
effective(bs_scope_peer *p)
{
    p->any_scoped = 0;
    for (size_t i = 0; i < p->nrules; i++) {
        const bs_scope_version *best = NULL;
        char name[BS_COLLECTION_MAX + 1];
        int scoped;

        snprintf(name, sizeof name, "%s", p->rules[i].name);
        for (size_t k = 0; k < p->nvers; k++)
            if (strcmp(p->vers[k].rules.name, name) == 0 &&
                holds(p, &p->vers[k].ver) &&
                (best == NULL || p->vers[k].ver.hlc > best->ver.hlc))
                best = &p->vers[k];
        if (best != NULL)
            p->rules[i] = best->rules;
        else if (p->hubpos != NULL)
            memset(&p->rules[i], 0, sizeof p->rules[i]); /* the defaults */
        snprintf(p->rules[i].name, sizeof p->rules[i].name, "%s", name);
        scoped = p->rules[i].scope == BS_SCOPE_OWNER;
        for (size_t k = 0; k < p->nvers && scoped && p->hubpos != NULL; k++)
            if (strcmp(p->vers[k].rules.name, name) == 0 &&
                (best == NULL || p->vers[k].ver.hlc > best->ver.hlc))
                scoped = p->vers[k].rules.scope == BS_SCOPE_OWNER;
        if (!scoped)
            p->rules[i].scope = BS_SCOPE_SHARED;
        p->any_scoped |= scoped;
    }
}

/* Every version of every declared collection's rules. */
static bs_err
load_versions(bs_scope_peer *p, bs_txn *t)
{
    for (size_t i = 0; i < p->nrules; i++) {
        bs_rule_version v;
        bs_collection r;
        bs_err rv;

        memset(&v, 0, sizeof v);
        while ((rv = bs_rules_next(t, p->rules[i].name, &v, &r)) == BS_OK) {
            bs_scope_version *g = realloc(p->vers, (p->nvers + 1) * sizeof *g);
            if (g == NULL)
                return BS_ENOMEM;
            p->vers = g;
            snprintf(r.name, sizeof r.name, "%s", p->rules[i].name);
            g[p->nvers].rules = r;
            g[p->nvers++].ver = v;
        }
        if (rv != BS_ENOTFOUND)
            return rv;
    }
    return BS_OK;
}

bs_err
bs_scope_peer_init(bs_scope_peer *p, bs_txn *t, const bs_meta *m,
                   const uint8_t *pk, const bs_pos *theirs, size_t n,
                   const bs_streamtab *own)
{
    bs_err rv;

    memset(p, 0, sizeof *p);
    /* A regional hub relays everything to its branches: it is entitled to
     * every change, and filters for its branches as the hub does (members.h,
     * docs/design.md "Regional hubs"). */
    p->hub = m->joined && (memcmp(pk, m->hub, BS_PK_LEN) == 0 ||
                           bs_members_is_region(t, m, pk));
    p->whole_only = !(m->joined && (memcmp(m->pk, m->hub, BS_PK_LEN) == 0 ||
                                    bs_members_is_region(t, m, m->pk)));
    bs_access_name(t, m, pk, p->name);
    /* Every declared collection, with the rules now. */
    if ((rv = bs_collections_list(t, &p->rules, &p->nrules)) != BS_OK)
        return rv;
    if (own != NULL) { /* else the latest rules (bs_scope_digest) */
        if ((p->hubpos = calloc(n + 1, sizeof *p->hubpos)) == NULL)
            return BS_ENOMEM;
        for (size_t i = 0; i < n; i++)
            if (memcmp(theirs[i].origin, m->hub, BS_PK_LEN) == 0) {
                const bs_stream *s =
                    own != NULL
                        ? bs_streams_find((bs_streamtab *)own, theirs[i].origin,
                                          theirs[i].inc)
                        : NULL;
                p->behind |=
                    own != NULL && (s == NULL || s->seq < theirs[i].seq);
                p->hubpos[p->nhubpos++] = theirs[i];
            }
        if ((rv = load_versions(p, t)) != BS_OK)
            return rv;
    }
    effective(p);
    return BS_OK;
}

bs_err
bs_scope_peer_saw(bs_scope_peer *p, const uint8_t *inc, uint64_t seq)
{
    bs_pos *g;

    if (p->hubpos == NULL)
        return BS_OK;
    for (size_t i = 0; i < p->nhubpos; i++)
        if (memcmp(p->hubpos[i].inc, inc, BS_INC_LEN) == 0) {
            if (seq > p->hubpos[i].seq)
                p->hubpos[i].seq = seq;
            effective(p);
            return BS_OK;
        }
    if ((g = realloc(p->hubpos, (p->nhubpos + 1) * sizeof *g)) == NULL)
        return BS_ENOMEM;
    p->hubpos = g;
    memset(&g[p->nhubpos], 0, sizeof g[p->nhubpos]);
    memcpy(g[p->nhubpos].inc, inc, BS_INC_LEN);
    g[p->nhubpos++].seq = seq;
    effective(p);
    return BS_OK;
}

void
bs_scope_peer_fini(bs_scope_peer *p)
{
    free(p->rules);
    free(p->vers);
    free(p->hubpos);
    memset(p, 0, sizeof *p);
}

int
bs_scope_entitled(int hub, const char *name, const bs_collection *r,
                  const char *coll, const char *owner, const char *owner_before)
{
    if (hub || coll[0] == '_' || r == NULL || r->scope != BS_SCOPE_OWNER)
        return 1;
    return name[0] != '\0' &&
           (strcmp(owner, name) == 0 ||
            (owner_before != NULL && strcmp(owner_before, name) == 0));
}

static const bs_collection *
rules_of(const bs_scope_peer *p, const char *coll)
{
    for (size_t i = 0; i < p->nrules; i++)
        if (strcmp(p->rules[i].name, coll) == 0)
            return &p->rules[i];
    return NULL; /* undeclared: shared */
}

/* The rules of the collection named by slice c (NULL: undeclared). */
static const bs_collection *
rules_of_slice(const bs_scope_peer *p, bs_slice c)
{
    for (size_t i = 0; i < p->nrules; i++)
        if (strlen(p->rules[i].name) == c.n &&
            memcmp(p->rules[i].name, c.p, c.n) == 0)
            return &p->rules[i];
    return NULL;
}

/* Whether p is entitled to the change routed r (bs_route_keep): as owner
 * after the change or before it. */
static int
keep_route(void *ctx, const bs_route_ref *r)
{
    const bs_scope_peer *p = ctx;
    const bs_collection *rules;
    size_t nl;

    if (p->hub || r->coll.n == 0 || r->coll.p[0] == '_')
        return 1;
    rules = rules_of_slice(p, r->coll);
    if (rules == NULL || rules->scope != BS_SCOPE_OWNER)
        return 1;
    nl = strlen(p->name);
    return nl > 0 &&
           ((r->owner.n == nl && memcmp(r->owner.p, p->name, nl) == 0) ||
            (r->owner_before.n == nl &&
             memcmp(r->owner_before.p, p->name, nl) == 0));
}

bs_err
bs_scope_filter(bs_scope_peer *p, bs_txn *t, uint32_t stream, bs_slice set,
                bs_scope_verdict *vd, uint8_t **out, size_t *n)
{
    bs_filter_verdict fv;
    uint8_t *strip = NULL;
    size_t sn = 0;
    bs_err rv;

    *vd = BS_SCOPE_WHOLE;
    *out = NULL;
    *n = 0;
    /* A receiver that does not take summaries gets none (2.10): the set
     * without them, then filtered as ever. */
    if (!p->summaries) {
        rv = bs_changeset_stored_strip(set, &strip, &sn);
        if (rv == BS_EPERM) { /* summary form: it cannot go there */
            *vd = BS_SCOPE_STOP;
            return BS_OK;
        }
        if (rv != BS_OK)
            return rv;
        if (strip != NULL)
            set = (bs_slice){strip, sn};
    }
    /* Entitled to everything, and nothing left out: as stored (the common
     * case).  A relay that is not the hub passes nothing filtered on.
     * (The hub filtering for a branch of a scope goes straight to the
     * filter, which reads what the set leaves out itself: one scan of the
     * set less.) */
    if (!p->hub && p->any_scoped && !p->whole_only) {
        /* filtered below; where the set keeps its summary known, a set
         * the receiver is entitled to all or none of is judged without
         * reading its changes (setlog.h) */
        uint64_t first, last;
        bs_slice sum, ssig;

        if (p->summaries && stream != 0 &&
            bs_changeset_stored_range(set, &first, &last) == BS_OK &&
            bs_setlog_summary(t, stream, first, set, &sum, &ssig) == BS_OK) {
            rv = bs_changeset_stored_filter_at(set, sum, ssig, keep_route, p,
                                               &fv, out, n);
            goto judged;
        }
    } else if (bs_changeset_stored_omits(set)) {
        if (p->whole_only) {
            free(strip);
            *vd = BS_SCOPE_STOP;
            return BS_OK;
        }
    } else if (p->hub || !p->any_scoped) {
        *out = strip;
        *n = sn;
        return BS_OK;
    }
    rv = bs_changeset_stored_filter(set, keep_route, p, p->summaries, &fv, out,
                                    n);
judged:
    if (rv != BS_OK || fv != BS_FILTER_WHOLE) {
        free(strip);
    } else {
        *out = strip;
        *n = sn;
    }
    if (rv != BS_OK)
        return rv;
    if (fv == BS_FILTER_FILTERED && (p->behind || p->whole_only)) {
        free(*out); /* it may judge by rules this node does not know */
        *out = NULL;
        *n = 0;
        fv = BS_FILTER_STOP;
    }
    *vd = fv == BS_FILTER_STOP       ? BS_SCOPE_STOP
          : fv == BS_FILTER_FILTERED ? BS_SCOPE_FILTERED
                                     : BS_SCOPE_WHOLE;
    return BS_OK;
}

/* ---- the data of one scope ---- */

typedef struct digest_ctx {
    const bs_scope_peer *p;
} digest_ctx;

static int
keep_record(void *ctx, bs_slice key, const bs_record *r)
{
    const bs_scope_peer *p = ((digest_ctx *)ctx)->p;
    char coll[BS_COLLECTION_MAX + 1], owner[BS_NODE_NAME_MAX + 1] = "";
    const bs_collection *rules;
    const bs_value *val;
    size_t cn = strnlen((const char *)key.p, key.n);

    if (cn > BS_COLLECTION_MAX)
        return 0;
    memcpy(coll, key.p, cn);
    coll[cn] = '\0';
    rules = rules_of(p, coll);
    if (rules != NULL && rules->owner_field[0] != '\0' &&
        (val = bs_record_field(r, rules->owner_field)) != NULL &&
        val->type == BS_VTEXT && val->len <= BS_NODE_NAME_MAX)
        snprintf(owner, sizeof owner, "%.*s", (int)val->len, val->s);
    return bs_scope_entitled(p->hub, p->name, rules, coll, owner, NULL);
}

bs_err
bs_scope_digest(bs_txn *t, const bs_meta *m, const uint8_t *pk,
                uint8_t out[BS_HASH_LEN], uint64_t *nrecords, bs_errbuf *err)
{
    bs_scope_peer p;
    digest_ctx ctx = {&p};
    bs_err rv;

    if ((rv = bs_scope_peer_init(&p, t, m, pk, NULL, 0, NULL)) != BS_OK) {
        bs_scope_peer_fini(&p);
        return rv;
    }
    rv = bs_digest_where(t, NULL, 0, keep_record, &ctx, out, nrecords, err);
    bs_scope_peer_fini(&p);
    return rv;
}

/* ---- move-out ---- */

/* 1 when the conflict side is one of the record's: every side is. */
static int
every_side(void *ctx, const uint8_t *key, uint64_t seq)
{
    (void)ctx;
    (void)key;
    (void)seq;
    return 1;
}

/* Drop record coll/id, and what is kept about it. */
static bs_err
drop_one(bs_txn *t, const char *coll, const char *id)
{
    return bs_scope_drop_record(t, coll, id);
}

bs_err
bs_scope_drop_record(bs_txn *t, const char *coll, const char *id)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, coll, id);
    bs_err rv;

    if ((rv = bs_txn_del(t, BS_DB_RECORDS, bs_mem(key, klen))) == BS_OK)
        rv = bs_changes_note_record(t, coll, id, NULL); /* the feed: gone */
    if (rv != BS_OK && rv != BS_ENOTFOUND)
        return rv;
    if ((rv = bs_access_forget_owner(t, coll, id)) != BS_OK ||
        (rv = bs_movein_forget(t, coll, id)) != BS_OK)
        return rv;
    return bs_conflict_drop_if(t, coll, id, every_side, NULL);
}

/* 1 when record r's owner field (field) names name. */
static int
owned_by(const bs_record *r, const char *field, const char *name)
{
    const bs_value *val = bs_record_field(r, field);
    size_t nl = strlen(name);

    return nl > 0 && val != NULL && val->type == BS_VTEXT && val->len == nl &&
           memcmp(val->s, name, nl) == 0;
}

/* 1 when field `name` of r is the text s. */
static int
text_field_is(const bs_record *r, const char *name, const char *s)
{
    const bs_value *v = bs_record_field(r, name);

    return v != NULL && v->type == BS_VTEXT && v->len == strlen(s) &&
           memcmp(v->s, s, v->len) == 0;
}

bs_err
bs_scope_note_member(bs_txn *t, const bs_meta *m, const bs_change *c,
                     const bs_record *r, bs_rebuild_queue *q)
{
    char id[BS_NODE_ID_LEN + 1];
    const bs_value *rev = bs_record_field(r, "revoked");
    bs_collection *v;
    size_t n;
    bs_err rv;

    bs_node_id_format(m->pk, id);
    if (strcmp(c->coll, BS_SYS_MEMBERS) != 0 || strcmp(c->id, id) != 0 ||
        !r->live || !text_field_is(r, "role", "region") ||
        (rev != NULL && rev->type == BS_VTRUE))
        return BS_OK;
    if ((rv = bs_collections_list(t, &v, &n)) != BS_OK)
        return rv;
    for (size_t i = 0; i < n && rv == BS_OK; i++) {
        size_t k;
        for (k = 0; k < q->n && strcmp(q->v[k].coll, v[i].name) != 0; k++)
            ;
        if (k == q->n) {
            struct bs_rebuild_due *g = realloc(q->v, (q->n + 1) * sizeof *g);
            if (g == NULL) {
                rv = BS_ENOMEM;
                break;
            }
            q->v = g;
            snprintf(g[q->n++].coll, sizeof g->coll, "%s", v[i].name);
        }
        q->v[k].from = 0; /* every record */
    }
    free(v);
    return rv;
}

/* Whether m is a branch: the hub, and a regional hub (which relays
 * everything to its branches), keep everything. */
static int
is_branch(bs_txn *t, const bs_meta *m)
{
    return m->joined && memcmp(m->pk, m->hub, BS_PK_LEN) != 0 &&
           !bs_members_is_region(t, m, m->pk);
}

/*
 * Drop the live records of coll (or coll/id alone) whose owner field
 * (rules r, owner-scoped) does not name `name`.  A tombstone is kept: it
 * holds no data (a delete drops every field), and without it a change
 * older than the delete, routed here later, would bring the record back
 * here while it stays deleted elsewhere.  A walk collects the records
 * first and deletes them after it (not under the cursor).
 */
static bs_err
drop_where(bs_txn *t, const bs_collection *r, const char *name,
           const char *coll, const char *id, uint64_t *dropped)
{
    uint8_t prefix[BS_RECKEY_MAX];
    size_t pn, nids = 0, cap = 0;
    char(*ids)[BS_ID_MAX + 1] = NULL;
    bs_arena a;
    bs_cursor *cur;
    bs_slice k, v;
    bs_err rv;

    /* coll \0 id, or coll \0 for every record of it */
    pn = bs_record_key(prefix, coll, id != NULL ? id : "");
    if (id != NULL) { /* one record: one look-up (after every applied
                         change of an owner-scoped collection) */
        bs_record rec;
        int drop;

        if ((rv = bs_txn_get(t, BS_DB_RECORDS, bs_mem(prefix, pn), &v)) ==
            BS_ENOTFOUND)
            return BS_OK;
        if (rv != BS_OK)
            return rv;
        bs_arena_init(&a);
        rv = bs_record_decode(&rec, v.p, v.n, &a) != BS_OK ? BS_ESTORE : BS_OK;
        drop = rv == BS_OK && rec.live && !owned_by(&rec, r->owner_field, name);
        bs_arena_fini(&a);
        if (rv != BS_OK || !drop)
            return rv;
        if ((rv = drop_one(t, coll, id)) == BS_OK && dropped != NULL)
            ++*dropped;
        return rv;
    }
    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &cur)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    for (rv = bs_cursor_seek(cur, bs_mem(prefix, pn), &k, &v);
         rv == BS_OK && k.n >= pn && memcmp(k.p, prefix, pn) == 0 &&
         k.n - pn <= BS_ID_MAX;
         rv = bs_cursor_next(cur, &k, &v)) {
        bs_record rec;

        bs_arena_reset(&a);
        if (bs_record_decode(&rec, v.p, v.n, &a) != BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        if (!rec.live || owned_by(&rec, r->owner_field, name))
            continue; /* (a tombstone stays: below) */
        if (nids == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char(*g)[BS_ID_MAX + 1] = realloc(ids, nc * sizeof *g);
            if (g == NULL) {
                rv = BS_ENOMEM;
                break;
            }
            ids = g;
            cap = nc;
        }
        memcpy(ids[nids], k.p + pn, k.n - pn);
        ids[nids++][k.n - pn] = '\0';
    }
    bs_cursor_close(cur);
    bs_arena_fini(&a);
    if (rv == BS_ENOTFOUND)
        rv = BS_OK;
    for (size_t i = 0; i < nids && rv == BS_OK; i++)
        rv = drop_one(t, coll, ids[i]);
    if (rv == BS_OK && dropped != NULL)
        *dropped += nids;
    free(ids);
    return rv;
}

bs_err
bs_scope_drop_foreign(bs_txn *t, const bs_meta *m, const char *coll,
                      const char *id, uint64_t *dropped)
{
    char name[BS_NODE_NAME_MAX + 1];
    bs_collection rules;
    bs_err rv;

    if (coll[0] == '_' || !is_branch(t, m))
        return BS_OK; /* the hub keeps everything */
    if ((rv = bs_rules_at(t, coll, UINT64_MAX, &rules, NULL)) != BS_OK)
        return rv;
    if (rules.scope != BS_SCOPE_OWNER)
        return BS_OK;
    bs_access_name(t, m, m->pk, name);
    return drop_where(t, &rules, name, coll, id, dropped);
}

/*
 * Move-in (movein.h): change c moved its record to this branch from
 * another office (its signed route names the branch as the owner after
 * and another office before), and the record is still here after the
 * merge: the branch lacks the changes it was not sent, so it wants the
 * record from the hub.  An owner before of "" is a record new at the
 * change's origin as often as one that had no owner: wanting those would
 * ask the hub for every record it creates for a branch, so they are not
 * wanted (docs/protocol.md 7.3, "Limits").
 */
static bs_err
want_moved_in(bs_txn *t, const bs_meta *m, const char *name, const char *owner,
              const char *before, const bs_change *c)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t kn;
    bs_slice v;
    bs_err rv;

    if (name[0] == '\0' || strcmp(owner, name) != 0 || before[0] == '\0' ||
        strcmp(before, name) == 0)
        return BS_OK;
    kn = bs_record_key(key, c->coll, c->id);
    if ((rv = bs_txn_get(t, BS_DB_RECORDS, bs_mem(key, kn), &v)) ==
        BS_ENOTFOUND)
        return BS_OK; /* dropped: not its record after all */
    if (rv != BS_OK)
        return rv;
    return bs_movein_want(t, m, c->coll, c->id);
}

bs_err
bs_scope_move_out(bs_txn *t, const bs_meta *m, const bs_csview *v,
                  const bs_change *ch, const uint8_t *skip, uint64_t after,
                  const uint8_t *mine, const char *mine_name,
                  const char *mine_field, uint64_t *dropped)
{
    char name[BS_NODE_NAME_MAX + 1];
    bs_collection rules;
    int branch = -1; /* is_branch, looked up at the first scoped change */
    int vouched = 0; /* mine holds for rules' collection */
    bs_err rv;

    if (!m->joined || memcmp(m->pk, m->hub, BS_PK_LEN) == 0)
        return BS_OK;
    rules.name[0] = '\0';
    for (size_t i = 0; i < v->count; i++) {
        const bs_change *c = &ch[i];

        if (!v->present[i] || v->first + i <= after ||
            (skip != NULL && skip[i]) || c->coll[0] == '_')
            continue;                           /* not applied now */
        if (strcmp(rules.name, c->coll) != 0) { /* (once per run of one) */
            if ((rv = bs_rules_at(t, c->coll, UINT64_MAX, &rules, NULL)) !=
                BS_OK)
                return rv;
            snprintf(rules.name, sizeof rules.name, "%s", c->coll);
            vouched = mine != NULL && mine_field != NULL &&
                      strcmp(rules.owner_field, mine_field) == 0;
        }
        if (rules.scope != BS_SCOPE_OWNER)
            continue;
        if (branch < 0) {
            if (!(branch = is_branch(t, m)))
                return BS_OK; /* a regional hub keeps everything */
            bs_access_name(t, m, m->pk, name);
            if (mine_name == NULL || strcmp(mine_name, name) != 0)
                mine = NULL; /* (its name changed meanwhile) */
        }
        if (!(vouched && mine != NULL && mine[i]) &&
            (rv = drop_where(t, &rules, name, c->coll, c->id, dropped)) !=
                BS_OK)
            return rv;
        if (v->route_owner != NULL &&
            (rv = want_moved_in(t, m, name, v->route_owner[i],
                                v->route_before[i], c)) != BS_OK)
            return rv;
    }
    return BS_OK;
}
