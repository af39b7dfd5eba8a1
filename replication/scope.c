/*
 * scope.c - who is entitled to which change (scope.h).
 */
#include "scope.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "rules.h"

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
    p->hub = m->joined && memcmp(pk, m->hub, BS_PK_LEN) == 0;
    p->whole_only = !(m->joined && memcmp(m->pk, m->hub, BS_PK_LEN) == 0);
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
                  const char *coll, const char *owner)
{
    if (hub || coll[0] == '_' || r == NULL || r->scope != BS_SCOPE_OWNER)
        return 1;
    return name[0] != '\0' && strcmp(owner, name) == 0;
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

/* Whether p is entitled to the change routed r (bs_route_keep). */
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
    return nl > 0 && r->owner.n == nl && memcmp(r->owner.p, p->name, nl) == 0;
}

bs_err
bs_scope_filter(bs_scope_peer *p, bs_txn *t, bs_slice set, bs_scope_verdict *vd,
                uint8_t **out, size_t *n)
{
    bs_filter_verdict fv;
    bs_err rv;

    (void)t;
    *vd = BS_SCOPE_WHOLE;
    *out = NULL;
    *n = 0;
    /* Entitled to everything, and nothing left out: as stored (the common
     * case).  A relay that is not the hub passes nothing filtered on. */
    if (bs_changeset_stored_omits(set)) {
        if (p->whole_only) {
            *vd = BS_SCOPE_STOP;
            return BS_OK;
        }
    } else if (p->hub || !p->any_scoped) {
        return BS_OK;
    }
    if ((rv = bs_changeset_stored_filter(set, keep_route, p, &fv, out, n)) !=
        BS_OK)
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
    return bs_scope_entitled(p->hub, p->name, rules, coll, owner);
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
