/*
 * sys.c - reading the system collections.
 */
#include "sys.h"

#include <string.h>

#include "streams.h"

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

/* The live record coll/id decoded into r (arena a); BS_ENOTFOUND. */
static bs_err
live_record(bs_txn *t, const char *coll, const char *id, bs_arena *a,
            bs_record *r)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, coll, id);
    bs_slice v;
    bs_err rv;

    if ((rv = bs_txn_get(t, BS_DB_RECORDS, bs_mem(key, klen), &v)) != BS_OK)
        return rv;
    if ((rv = bs_record_decode(r, v.p, v.n, a)) != BS_OK)
        return rv;
    return r->live ? BS_OK : BS_ENOTFOUND;
}

static const bs_value *
field(const bs_record *r, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < r->nfields; i++)
        if (r->fields[i].namelen == n &&
            memcmp(r->fields[i].name, name, n) == 0)
            return &r->fields[i].val;
    return NULL;
}

static int
text_is(const bs_value *v, const char *s)
{
    return v != NULL && v->type == BS_VTEXT && v->len == strlen(s) &&
           memcmp(v->s, s, v->len) == 0;
}

bs_err
bs_sys_policy(bs_txn *t, const char *coll, bs_policy *p)
{
    bs_arena a;
    bs_record r;
    bs_err rv;

    *p = BS_POLICY_LWW;
    bs_arena_init(&a);
    rv = live_record(t, BS_SYS_COLLECTIONS, coll, &a, &r);
    if (rv == BS_OK) {
        const bs_value *v = field(&r, "policy");
        if (text_is(v, "priority"))
            *p = BS_POLICY_PRIORITY;
        else if (text_is(v, "manual"))
            *p = BS_POLICY_MANUAL;
    }
    bs_arena_fini(&a);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_sys_member(bs_txn *t, const bs_meta *self, const uint8_t pk[32],
              bs_member *m)
{
    char id[BS_NODE_ID_LEN + 1];
    bs_arena a;
    bs_record r;
    const bs_value *v;
    bs_err rv;

    memset(m, 0, sizeof *m);
    if (self->joined && memcmp(pk, self->hub, 32) == 0) {
        m->role = BS_ROLE_HUB;
        if (memcmp(pk, self->pk, 32) == 0)
            snprintf(m->name, sizeof m->name, "%s", self->name);
    } else if (memcmp(pk, self->pk, 32) == 0) {
        m->role = self->role;
        snprintf(m->name, sizeof m->name, "%s", self->name);
        return BS_OK;
    }
    bs_node_id_format(pk, id);
    bs_arena_init(&a);
    rv = live_record(t, BS_SYS_MEMBERS, id, &a, &r);
    if (rv == BS_OK) {
        if ((v = field(&r, "name")) != NULL && v->type == BS_VTEXT &&
            v->len <= BS_NODE_NAME_MAX)
            memcpy(m->name, v->s, v->len);
        if (text_is(field(&r, "role"), "hub"))
            m->role = BS_ROLE_HUB;
        v = field(&r, "revoked");
        m->revoked = v != NULL && v->type == BS_VTRUE;
        if ((v = field(&r, "revoked_at")) != NULL && v->type == BS_VTEXT &&
            v->len < sizeof m->revoked_at)
            memcpy(m->revoked_at, v->s, v->len);
        if (m->revoked)
            rv = BS_ENOTFOUND;
    }
    bs_arena_fini(&a);
    if (self->joined && memcmp(pk, self->hub, 32) == 0)
        return BS_OK; /* the hub is a member by definition */
    return rv;
}

int
bs_member_allows(const bs_member *m, const uint8_t inc[BS_INC_LEN],
                 uint64_t last)
{
    char want[2 * BS_INC_LEN + 1];
    const char *p = m->revoked_at;

    if (!m->revoked)
        return 0; /* not a member at all */
    bs_hex(want, inc, BS_INC_LEN);
    while (p && *p) {
        if (strncmp(p, want, 2 * BS_INC_LEN) == 0 && p[2 * BS_INC_LEN] == ':')
            return strtoull(p + 2 * BS_INC_LEN + 1, NULL, 10) >= last;
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    return 0;
}

bs_err
bs_sys_member_by_name(bs_txn *t, const char *name, uint8_t pk[32])
{
    uint8_t prefix[sizeof BS_SYS_MEMBERS];
    bs_cursor *c;
    bs_slice k, v;
    bs_arena a;
    bs_err rv;

    memcpy(prefix, BS_SYS_MEMBERS, sizeof prefix); /* includes the NUL */
    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &c)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    for (rv = bs_cursor_seek(c, bs_mem(prefix, sizeof prefix), &k, &v);
         rv == BS_OK && k.n > sizeof prefix &&
         memcmp(k.p, prefix, sizeof prefix) == 0;
         rv = bs_cursor_next(c, &k, &v)) {
        bs_record r;
        char id[BS_NODE_ID_LEN + 1];
        size_t idn = k.n - sizeof prefix;

        bs_arena_reset(&a);
        if (bs_record_decode(&r, v.p, v.n, &a) != BS_OK ||
            !text_is(field(&r, "name"), name) || idn > BS_NODE_ID_LEN)
            continue;
        memcpy(id, k.p + sizeof prefix, idn);
        id[idn] = '\0';
        if (bs_node_id_parse(id, pk) == BS_OK)
            break;
    }
    bs_arena_fini(&a);
    bs_cursor_close(c);
    return rv;
}
