/*
 * resolution.c - settling a conflict by a local write.
 */
#include "resolution.h"

#include <string.h>

#include "local.h"
#include "members.h"
#include "peers.h"
#include "records.h"

typedef struct resolve_ctx {
    const bs_core *c;
    const char *cid;
    const bs_resolve_req *r;
    char how[BS_CONFLICT_HOW_MAX + 1];
} resolve_ctx;

/* The side of conflict cf that node `who` wrote, or -1: who is a node ID,
 * this node's name, a peer's name, or a member's name. */
static int
pick(bs_txn *t, const bs_meta *m, const bs_conflict *cf, const char *who)
{
    uint8_t pk[BS_PK_LEN];

    if (bs_node_id_parse(who, pk) != BS_OK) {
        bs_peer p;
        if (strcmp(who, m->name) == 0) {
            memcpy(pk, m->pk, BS_PK_LEN);
        } else if (bs_peer_get(t, who, &p) == BS_OK) {
            memcpy(pk, p.pk, BS_PK_LEN); /* a peer by the name paired with */
            bs_peer_fini(&p);
        } else if (bs_members_by_name(t, who, pk) != BS_OK) {
            return -1;
        }
    }
    for (int i = 0; i < 2; i++)
        if (memcmp(cf->side[i].key, pk, BS_PK_LEN) == 0)
            return i;
    return -1;
}

/* Keep the updated side of a delete/update conflict: write the record's
 * fields again, so the decision replicates and supersedes both sides. */
static bs_err
rewrite_record(bs_local *l, const bs_conflict *cf, bs_errbuf *err)
{
    bs_record rec;
    bs_field *f;
    bs_arena a;
    bs_err rv;

    bs_arena_init(&a);
    rv = bs_records_get(l->txn, cf->coll, cf->rid, &a, &rec, NULL);
    if (rv == BS_ENOTFOUND || (rv == BS_OK && rec.nfields == 0)) {
        rv = bs_errf(err, BS_EINVAL,
                     "%s/%s: the delete removed the updated fields; write "
                     "them again with put",
                     cf->coll, cf->rid);
        goto out;
    }
    if (rv != BS_OK)
        goto out;
    /* Copies: the put below rewrites the page the record borrows from. */
    f = bs_arena_alloc(&a, rec.nfields * sizeof *f);
    for (size_t i = 0; f != NULL && i < rec.nfields; i++) {
        f[i] = rec.fields[i];
        f[i].name =
            bs_arena_strndup(&a, rec.fields[i].name, rec.fields[i].namelen);
        if (f[i].val.type == BS_VTEXT)
            f[i].val.s = bs_arena_strndup(&a, f[i].val.s, f[i].val.len);
        if (f[i].name == NULL ||
            (f[i].val.type == BS_VTEXT && f[i].val.s == NULL))
            f = NULL;
    }
    if (f == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    l->force = 1;
    l->unique_force = 1; /* a duplicate it makes is one to merge */
    rv = bs_local_put(l, cf->coll, cf->rid, f, rec.nfields, err);
out:
    bs_arena_fini(&a);
    return rv;
}

/* The write that carries the decision. */
static bs_err
decide(resolve_ctx *x, bs_local *l, const bs_conflict *cf, bs_errbuf *err)
{
    const bs_value *val = x->r->value;
    int record = strcmp(cf->field, BS_CONFLICT_RECORD) == 0;
    bs_field f;
    int side;

    if (x->r->take != NULL) {
        if ((side = pick(l->txn, &l->meta, cf, x->r->take)) < 0)
            return bs_errf(err, BS_EINVAL,
                           "%s is not one of this conflict's candidates",
                           x->r->take);
        snprintf(x->how, sizeof x->how, "took %s", x->r->take);
        if (cf->side[side].deleted) {
            bs_err rv = bs_local_del(l, cf->coll, cf->rid, err);
            return rv == BS_ENOTFOUND ? BS_OK : rv; /* deleted already */
        }
        if (record)
            return rewrite_record(l, cf, err);
        val = &cf->side[side].val;
    } else {
        if (record)
            return bs_errf(err, BS_EINVAL,
                           "a delete/update conflict is settled with --take");
        snprintf(x->how, sizeof x->how, "set by admin");
    }
    memset(&f, 0, sizeof f);
    f.name = cf->field;
    f.val = *val;
    l->force = 1;
    l->unique_force = 1; /* a duplicate it makes is one to merge */
    return bs_local_put(l, cf->coll, cf->rid, &f, 1, err);
}

static bs_err
resolve_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    resolve_ctx *x = arg;
    bs_conflict cf;
    bs_local l;
    bs_err rv;

    if ((rv = bs_conflict_get(t, x->cid, &cf)) == BS_ENOTFOUND)
        return bs_errf(err, rv, "no conflict %s (see conflicts --all)", x->cid);
    if (rv != BS_OK)
        return rv;
    if (cf.kind == BS_CONFLICT_DUPLICATE) {
        rv = bs_errf(err, BS_EUSAGE,
                     "conflict %s is a duplicate of a unique key: keep one "
                     "record with 'branchsync merge %s KEEP OTHER' (%s or %s)",
                     x->cid, cf.coll, cf.rid, cf.other);
        bs_conflict_fini(&cf);
        return rv;
    }
    if ((rv = bs_local_begin(&l, t, x->c, err)) == BS_OK &&
        (rv = decide(x, &l, &cf, err)) == BS_OK &&
        (rv = bs_local_finish(&l, err)) == BS_OK)
        rv = bs_conflict_mark_resolved(t, x->cid, x->how);
    bs_local_fini(&l);
    bs_conflict_fini(&cf);
    return rv;
}

bs_err
bs_resolution_apply(const bs_core *c, const char *cid, const bs_resolve_req *r,
                    char how[BS_CONFLICT_HOW_MAX + 1], bs_errbuf *err)
{
    resolve_ctx x;
    bs_err rv;

    memset(&x, 0, sizeof x);
    x.c = c;
    x.cid = cid;
    x.r = r;
    if ((r->take == NULL) == (r->value == NULL))
        return bs_errf(err, BS_EUSAGE,
                       "give exactly one of --take NODE or --value JSON");
    rv = bs_store_write(c->store, resolve_txn, &x, err);
    if (rv == BS_OK && how != NULL)
        snprintf(how, BS_CONFLICT_HOW_MAX + 1, "%s", x.how);
    return rv;
}
