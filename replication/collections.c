/*
 * collections.c - collection rules in `_collections`.
 */
#include "collections.h"

#include <string.h>

#include "local.h"
#include "meta.h"
#include "records.h"

static const char *const policy_names[] = {"field-lww", "priority", "manual"};

const char *
bs_policy_name(bs_policy p)
{
    return (unsigned)p < 3 ? policy_names[p] : "?";
}

bs_err
bs_policy_parse(const char *s, bs_policy *p)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, policy_names[i]) == 0) {
            *p = (bs_policy)i;
            return BS_OK;
        }
    return BS_EINVAL;
}

static void
from_record(bs_collection *c, const bs_record *r)
{
    const bs_value *v = bs_record_field(r, "policy");

    c->declared = 1;
    c->policy = BS_POLICY_LWW;
    if (v == NULL || v->type != BS_VTEXT)
        return;
    for (int i = 0; i < 3; i++)
        if (v->len == strlen(policy_names[i]) &&
            memcmp(v->s, policy_names[i], v->len) == 0)
            c->policy = (bs_policy)i;
}

bs_err
bs_collections_get(bs_txn *t, const char *name, bs_collection *c)
{
    bs_arena a;
    bs_record r;
    bs_err rv;

    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    bs_arena_init(&a);
    rv = bs_records_get(t, BS_SYS_COLLECTIONS, name, &a, &r, NULL);
    if (rv == BS_OK)
        from_record(c, &r);
    bs_arena_fini(&a);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_collections_list(bs_txn *t, bs_collection **out, size_t *n)
{
    bs_records_iter *it;
    bs_collection *v = NULL;
    const bs_record *r;
    const char *id;
    size_t idlen, cnt = 0;
    bs_err rv;

    if ((rv = bs_records_iter_open(t, BS_SYS_COLLECTIONS, NULL, NULL, &it)) !=
        BS_OK)
        return rv;
    while ((rv = bs_records_iter_next(it, &id, &idlen, &r, NULL)) == BS_OK) {
        bs_collection *nv = realloc(v, (cnt + 1) * sizeof *nv);
        if (nv == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        v = nv;
        memset(&v[cnt], 0, sizeof v[cnt]);
        memcpy(v[cnt].name, id,
               idlen < BS_COLLECTION_MAX ? idlen : BS_COLLECTION_MAX);
        from_record(&v[cnt++], r);
    }
    bs_records_iter_close(it);
    if (rv != BS_ENOTFOUND) {
        free(v);
        return rv;
    }
    *out = v;
    *n = cnt;
    return BS_OK;
}

typedef struct declare_ctx {
    const bs_core *c;
    const bs_collection *rules;
} declare_ctx;

static bs_err
declare_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    declare_ctx *d = arg;
    const char *pol = bs_policy_name(d->rules->policy);
    bs_field f;
    bs_local l;
    bs_err rv;

    memset(&f, 0, sizeof f);
    f.name = "policy";
    f.val.type = BS_VTEXT;
    f.val.s = pol;
    f.val.len = (uint32_t)strlen(pol);
    if ((rv = bs_local_begin(&l, t, d->c, err)) == BS_OK) {
        if (l.meta.role != BS_ROLE_HUB)
            rv = bs_errf(err, BS_EPERM, "only the hub declares collections");
        else if ((rv = bs_local_put(&l, BS_SYS_COLLECTIONS, d->rules->name, &f,
                                    1, err)) == BS_OK)
            rv = bs_local_finish(&l, err);
    }
    bs_local_fini(&l);
    return rv;
}

bs_err
bs_collections_declare(const bs_core *c, const bs_collection *rules,
                       bs_errbuf *err)
{
    declare_ctx d = {c, rules};
    bs_err rv;

    if ((rv = bs_records_check_coll(rules->name, err)) != BS_OK)
        return rv;
    if ((unsigned)rules->policy > BS_POLICY_MANUAL)
        return bs_errf(err, BS_EINVAL, "bad policy");
    return bs_store_write(c->store, declare_txn, &d, err);
}
