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

static const char *const writers_names[] = {"all", "hub", "owner"};
static const char *const scope_names[] = {"shared", "owner"};

const char *
bs_writers_name(bs_writers w)
{
    return (unsigned)w < 3 ? writers_names[w] : "?";
}

bs_err
bs_writers_parse(const char *s, bs_writers *w)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, writers_names[i]) == 0) {
            *w = (bs_writers)i;
            return BS_OK;
        }
    return BS_EINVAL;
}

const char *
bs_scope_name(bs_scope sc)
{
    return (unsigned)sc < 2 ? scope_names[sc] : "?";
}

bs_err
bs_scope_parse(const char *s, bs_scope *sc)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(s, scope_names[i]) == 0) {
            *sc = (bs_scope)i;
            return BS_OK;
        }
    return BS_EINVAL;
}

/* The index of v's text in names[0..n), or -1. */
static int
text_index(const bs_value *v, const char *const *names, int n)
{
    if (v == NULL || v->type != BS_VTEXT)
        return -1;
    for (int i = 0; i < n; i++)
        if (v->len == strlen(names[i]) && memcmp(v->s, names[i], v->len) == 0)
            return i;
    return -1;
}

void
bs_collection_from_record(bs_collection *c, const bs_record *r)
{
    const bs_value *of = bs_record_field(r, "owner_field");
    const bs_value *uq = bs_record_field(r, "unique");
    int i;

    c->declared = 1;
    c->policy =
        (i = text_index(bs_record_field(r, "policy"), policy_names, 3)) < 0
            ? BS_POLICY_LWW
            : (bs_policy)i;
    c->writers =
        (i = text_index(bs_record_field(r, "writers"), writers_names, 3)) < 0
            ? BS_WRITERS_ALL
            : (bs_writers)i;
    c->scope = (i = text_index(bs_record_field(r, "scope"), scope_names, 2)) < 0
                   ? BS_SCOPE_SHARED
                   : (bs_scope)i;
    c->owner_field[0] = '\0';
    if (of != NULL && of->type == BS_VTEXT && of->len <= BS_FIELD_NAME_MAX &&
        bs_field_name_valid(of->s, of->len)) {
        memcpy(c->owner_field, of->s, of->len);
        c->owner_field[of->len] = '\0';
    }
    c->unique[0] = '\0';
    if (uq != NULL && uq->type == BS_VTEXT && uq->len <= BS_FIELD_NAME_MAX &&
        uq->len > 0 && bs_field_name_valid(uq->s, uq->len)) {
        memcpy(c->unique, uq->s, uq->len);
        c->unique[uq->len] = '\0';
    }
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
        bs_collection_from_record(c, &r);
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
        bs_collection_from_record(&v[cnt++], r);
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
    bs_collection *out;
} declare_ctx;

static bs_err
declare_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    declare_ctx *d = arg;
    const bs_collection *in = d->rules;
    bs_collection now;
    bs_field f[5];
    size_t n = 0;
    bs_local l;
    bs_err rv;

    /* The rules after the declaration: what is given, over what holds. */
    if ((rv = bs_collections_get(t, in->name, &now)) != BS_OK)
        return rv;
    if (in->set & BS_RULE_POLICY)
        now.policy = in->policy;
    if (in->set & BS_RULE_WRITERS)
        now.writers = in->writers;
    if (in->set & BS_RULE_SCOPE)
        now.scope = in->scope;
    if (in->set & BS_RULE_OWNER_FIELD)
        snprintf(now.owner_field, sizeof now.owner_field, "%s",
                 in->owner_field);
    if (in->set & BS_RULE_UNIQUE)
        snprintf(now.unique, sizeof now.unique, "%s", in->unique);
    if ((now.writers == BS_WRITERS_OWNER || now.scope == BS_SCOPE_OWNER) &&
        now.owner_field[0] == '\0')
        return bs_errf(err, BS_EINVAL,
                       "collection %s: writers or scope \"owner\" needs "
                       "--owner-field FIELD",
                       in->name);
    /* Fields in name order, as a write takes them. */
    if (in->set & BS_RULE_OWNER_FIELD)
        f[n++] = bs_field_text("owner_field", now.owner_field);
    if (in->set & BS_RULE_POLICY)
        f[n++] = bs_field_text("policy", bs_policy_name(now.policy));
    if (in->set & BS_RULE_SCOPE)
        f[n++] = bs_field_text("scope", bs_scope_name(now.scope));
    if (in->set & BS_RULE_UNIQUE)
        f[n++] = bs_field_text("unique", now.unique);
    if (in->set & BS_RULE_WRITERS)
        f[n++] = bs_field_text("writers", bs_writers_name(now.writers));
    if ((rv = bs_local_begin(&l, t, d->c, err)) == BS_OK) {
        if (l.meta.role != BS_ROLE_HUB)
            rv = bs_errf(err, BS_EPERM, "only the hub declares collections");
        else if ((rv = bs_local_put(&l, BS_SYS_COLLECTIONS, in->name, f, n,
                                    err)) == BS_OK)
            rv = bs_local_finish(&l, err);
    }
    bs_local_fini(&l);
    if (rv == BS_OK && d->out != NULL) {
        *d->out = now;
        d->out->declared = 1;
    }
    return rv;
}

bs_err
bs_collections_declare(const bs_core *c, const bs_collection *rules,
                       bs_collection *out, bs_errbuf *err)
{
    declare_ctx d = {c, rules, out};
    bs_err rv;

    if ((rv = bs_records_check_coll(rules->name, err)) != BS_OK)
        return rv;
    if (rules->set == 0)
        return bs_errf(err, BS_EUSAGE,
                       "give --policy, --writers, --scope, --owner-field "
                       "or --unique");
    if ((unsigned)rules->policy > BS_POLICY_MANUAL)
        return bs_errf(err, BS_EINVAL, "bad policy");
    if ((unsigned)rules->writers > BS_WRITERS_OWNER)
        return bs_errf(err, BS_EINVAL, "bad writers");
    if ((unsigned)rules->scope > BS_SCOPE_OWNER)
        return bs_errf(err, BS_EINVAL, "bad scope");
    if ((rules->set & BS_RULE_OWNER_FIELD) &&
        (!bs_field_name_valid(rules->owner_field, strlen(rules->owner_field)) ||
         strcmp(rules->owner_field, "id") == 0))
        return bs_errf(err, BS_EINVAL,
                       "bad owner field \"%s\": a field name (1 to %d "
                       "bytes, no control characters, not \"id\")",
                       rules->owner_field, BS_FIELD_NAME_MAX);
    if ((rules->set & BS_RULE_UNIQUE) && rules->unique[0] != '\0' &&
        (!bs_field_name_valid(rules->unique, strlen(rules->unique)) ||
         strcmp(rules->unique, "id") == 0))
        return bs_errf(err, BS_EINVAL,
                       "bad unique field \"%s\": a field name (1 to %d "
                       "bytes, no control characters, not \"id\", which is "
                       "unique already)",
                       rules->unique, BS_FIELD_NAME_MAX);
    return bs_store_write(c->store, declare_txn, &d, err);
}
