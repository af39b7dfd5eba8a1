/*
 * scope.c - who is entitled to which change (scope.h).
 */
#include "scope.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"

bs_err
bs_scope_peer_init(bs_scope_peer *p, bs_txn *t, const bs_meta *m,
                   const uint8_t *pk)
{
    bs_err rv;

    memset(p, 0, sizeof *p);
    p->hub = m->joined && memcmp(pk, m->hub, BS_PK_LEN) == 0;
    bs_access_name(t, m, pk, p->name);
    /* Every declared collection, once: the rules now. */
    if ((rv = bs_collections_list(t, &p->rules, &p->nrules)) != BS_OK)
        return rv;
    for (size_t i = 0; i < p->nrules; i++)
        p->any_scoped |= p->rules[i].scope == BS_SCOPE_OWNER;
    return BS_OK;
}

void
bs_scope_peer_fini(bs_scope_peer *p)
{
    free(p->rules);
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
     * case). */
    if ((p->hub || !p->any_scoped) && !bs_changeset_stored_omits(set))
        return BS_OK;
    if ((rv = bs_changeset_stored_filter(set, keep_route, p, &fv, out, n)) !=
        BS_OK)
        return rv;
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

    if ((rv = bs_scope_peer_init(&p, t, m, pk)) != BS_OK)
        return rv;
    rv = bs_digest_where(t, NULL, 0, keep_record, &ctx, out, nrecords, err);
    bs_scope_peer_fini(&p);
    return rv;
}
