/*
 * scope.c - who is entitled to which change (scope.h).
 */
#include "scope.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "branchsync.pb-c.h"

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

/* Whether p is entitled to change i of v (no routes: to everything). */
static int
entitled(const bs_scope_peer *p, const bs_csview *v, size_t i)
{
    if (v->route_coll == NULL)
        return 1;
    return bs_scope_entitled(p->hub, p->name, rules_of(p, v->route_coll[i]),
                             v->route_coll[i], v->route_owner[i]);
}

/* The ChangeSet of v with only the changes keep[] names present. */
static bs_err
encode(const bs_csview *v, const uint8_t *keep, uint8_t **out, size_t *n)
{
    const Bs__ChangeSet *in = v->pb_set;
    Bs__ChangeSet cs = BS__CHANGE_SET__INIT;
    ProtobufCBinaryData *ch;
    uint32_t *om;
    size_t nc = 0, no = 0;
    bs_err rv = BS_ENOMEM;

    ch = malloc((v->count + 1) * sizeof *ch);
    om = malloc((v->count + 1) * sizeof *om);
    if (ch == NULL || om == NULL)
        goto out;
    for (size_t i = 0; i < v->count; i++) {
        if (keep[i])
            ch[nc++] = (ProtobufCBinaryData){v->changes[i].n,
                                             (uint8_t *)v->changes[i].p};
        else
            om[no++] = (uint32_t)i;
    }
    cs.header = in->header;
    cs.signature = in->signature;
    cs.n_changes = nc;
    cs.changes = ch;
    cs.n_omitted = no;
    cs.omitted = om;
    *n = bs__change_set__get_packed_size(&cs);
    if ((*out = malloc(*n)) == NULL)
        goto out;
    bs__change_set__pack(&cs, *out);
    rv = BS_OK;
out:
    free(ch);
    free(om);
    return rv;
}

bs_err
bs_scope_filter(bs_scope_peer *p, bs_txn *t, bs_slice set, bs_scope_verdict *vd,
                uint8_t **out, size_t *n)
{
    bs_csview *v;
    uint8_t *keep;
    size_t left = 0;
    bs_err rv = BS_OK;

    (void)t;
    *vd = BS_SCOPE_WHOLE;
    *out = NULL;
    *n = 0;
    /* Entitled to everything, and nothing left out: as stored (the common
     * case, read in place). */
    if ((p->hub || !p->any_scoped) && !bs_changeset_stored_omits(set))
        return BS_OK;
    if ((rv = bs_changeset_decode(set.p, set.n, &v, NULL)) != BS_OK)
        return rv == BS_ENOMEM ? rv : BS_ESTORE;
    if ((keep = malloc(v->count + 1)) == NULL) {
        bs_changeset_free(v);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < v->count && *vd != BS_SCOPE_STOP; i++) {
        int e = entitled(p, v, i);

        keep[i] = v->present[i] && e;
        if (!v->present[i] && e)
            *vd = BS_SCOPE_STOP; /* it would be refused there (A7o) */
        left += v->present[i] && !e;
    }
    if (*vd != BS_SCOPE_STOP && left > 0) {
        if ((rv = encode(v, keep, out, n)) == BS_OK)
            *vd = BS_SCOPE_FILTERED;
    }
    free(keep);
    bs_changeset_free(v);
    return rv;
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
