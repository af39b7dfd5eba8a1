/*
 * members.c - membership in `_members`.
 */
#include "members.h"

#include <string.h>

#include "records.h"
#include "streams.h"

static int
text_is(const bs_value *v, const char *s)
{
    return v != NULL && v->type == BS_VTEXT && v->len == strlen(s) &&
           memcmp(v->s, s, v->len) == 0;
}

static void
from_record(bs_member *m, const bs_record *r)
{
    const bs_value *v;

    if ((v = bs_record_field(r, "name")) != NULL && v->type == BS_VTEXT &&
        v->len <= BS_NODE_NAME_MAX) {
        memcpy(m->name, v->s, v->len);
        m->name[v->len] = '\0';
    }
    if (text_is(bs_record_field(r, "role"), "hub"))
        m->role = BS_ROLE_HUB;
    else if (text_is(bs_record_field(r, "role"), "region"))
        m->role = BS_MEMBER_REGION;
    if ((v = bs_record_field(r, "region")) != NULL && v->type == BS_VTEXT &&
        v->len <= BS_NODE_NAME_MAX) {
        memcpy(m->region, v->s, v->len);
        m->region[v->len] = '\0';
    }
    v = bs_record_field(r, "revoked");
    m->revoked = v != NULL && v->type == BS_VTRUE;
    if ((v = bs_record_field(r, "revoked_at")) != NULL && v->type == BS_VTEXT &&
        v->len <= BS_REVOKED_AT_MAX) {
        memcpy(m->revoked_at, v->s, v->len);
        m->revoked_at[v->len] = '\0';
    }
}

bs_err
bs_members_get(bs_txn *t, const bs_meta *self, const uint8_t pk[BS_PK_LEN],
               bs_member *m)
{
    char id[BS_NODE_ID_LEN + 1];
    int is_hub = self->joined && memcmp(pk, self->hub, BS_PK_LEN) == 0;
    bs_arena a;
    bs_record r;
    bs_err rv;

    memset(m, 0, sizeof *m);
    memcpy(m->pk, pk, BS_PK_LEN);
    if (memcmp(pk, self->pk, BS_PK_LEN) == 0) {
        m->role = self->role;
        snprintf(m->name, sizeof m->name, "%s", self->name);
        return BS_OK;
    }
    if (is_hub)
        m->role = BS_ROLE_HUB;
    bs_node_id_format(pk, id);
    bs_arena_init(&a);
    rv = bs_records_get(t, BS_SYS_MEMBERS, id, &a, &r, NULL);
    if (rv == BS_OK) {
        from_record(m, &r);
        if (m->revoked)
            rv = BS_ENOTFOUND;
    }
    bs_arena_fini(&a);
    if (is_hub && rv == BS_ENOTFOUND) {
        m->revoked = 0; /* the hub is a member by definition */
        return BS_OK;
    }
    return rv;
}

int
bs_members_is_region(bs_txn *t, const bs_meta *self,
                     const uint8_t pk[BS_PK_LEN])
{
    char id[BS_NODE_ID_LEN + 1];
    bs_member mem;
    bs_arena a;
    bs_record r;
    int region = 0;

    if (!self->joined || memcmp(pk, self->hub, BS_PK_LEN) == 0)
        return 0;
    memset(&mem, 0, sizeof mem);
    bs_node_id_format(pk, id);
    bs_arena_init(&a);
    if (bs_records_get(t, BS_SYS_MEMBERS, id, &a, &r, NULL) == BS_OK) {
        from_record(&mem, &r);
        region = !mem.revoked && mem.role == BS_MEMBER_REGION;
    }
    bs_arena_fini(&a);
    return region;
}

int
bs_member_allows(const bs_member *m, const uint8_t inc[BS_INC_LEN],
                 uint64_t last)
{
    char want[2 * BS_INC_LEN + 1];
    const char *p = m->revoked_at;

    if (!m->revoked)
        return 0;
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
bs_members_list(bs_txn *t, bs_member **out, size_t *n)
{
    bs_records_iter *it;
    bs_member *v = NULL;
    const bs_record *r;
    const char *id;
    size_t idlen, cnt = 0;
    bs_err rv;

    if ((rv = bs_records_iter_open(t, BS_SYS_MEMBERS, NULL, NULL, &it)) !=
        BS_OK)
        return rv;
    while ((rv = bs_records_iter_next(it, &id, &idlen, &r, NULL)) == BS_OK) {
        char buf[BS_NODE_ID_LEN + 1];
        bs_member *nv;

        if (idlen > BS_NODE_ID_LEN)
            continue;
        memcpy(buf, id, idlen);
        buf[idlen] = '\0';
        if ((nv = realloc(v, (cnt + 1) * sizeof *nv)) == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        v = nv;
        memset(&v[cnt], 0, sizeof v[cnt]);
        if (bs_node_id_parse(buf, v[cnt].pk) != BS_OK)
            continue; /* not a node ID: no member of anything */
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

bs_err
bs_members_by_name(bs_txn *t, const char *name, uint8_t pk[BS_PK_LEN])
{
    bs_member *v;
    size_t n;
    bs_err rv;

    if ((rv = bs_members_list(t, &v, &n)) != BS_OK)
        return rv;
    rv = BS_ENOTFOUND;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0 && (rv != BS_OK || !v[i].revoked)) {
            memcpy(pk, v[i].pk, BS_PK_LEN); /* a live one before a revoked */
            rv = BS_OK;
            if (!v[i].revoked)
                break;
        }
    free(v);
    return rv;
}

static bs_field
bool_field(const char *name, int v)
{
    bs_field f;

    memset(&f, 0, sizeof f);
    f.name = name;
    f.val.type = v ? BS_VTRUE : BS_VFALSE;
    return f;
}

static bs_err
hub_only(const bs_local *l, bs_errbuf *err)
{
    if (l->meta.role != BS_ROLE_HUB)
        return bs_errf(err, BS_EPERM, "only the hub changes membership");
    return BS_OK;
}

bs_err
bs_members_introduce(bs_local *l, const uint8_t pk[BS_PK_LEN], const char *name,
                     int role, const char *region, bs_errbuf *err)
{
    char id[BS_NODE_ID_LEN + 1];
    bs_field f[4]; /* sorted by name */
    size_t n = 0;
    bs_err rv;

    if ((rv = hub_only(l, err)) != BS_OK)
        return rv;
    bs_node_id_format(pk, id);
    f[n++] = bs_field_text("name", name);
    if (region != NULL && region[0] != '\0')
        f[n++] = bs_field_text("region", region);
    f[n++] = bool_field("revoked", 0);
    f[n++] = bs_field_text(
        "role", role == BS_MEMBER_REGION ? "region" : bs_role_name(role));
    return bs_local_put(l, BS_SYS_MEMBERS, id, f, n, err);
}

/* "INCHEX:SEQ,..." for every stream of origin pk that we hold; "" when
 * they do not fit (then nothing of it stays valid). */
static void
held_streams(const bs_streamtab *tab, const uint8_t *pk, char *out, size_t n)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < tab->n; i++) {
        char inc[2 * BS_INC_LEN + 1];
        if (memcmp(tab->v[i].key, pk, BS_PK_LEN) != 0)
            continue;
        bs_hex(inc, tab->v[i].key + BS_PK_LEN, BS_INC_LEN);
        used += (size_t)snprintf(out + used, used < n ? n - used : 0,
                                 "%s%s:%llu", used ? "," : "", inc,
                                 (unsigned long long)tab->v[i].seq);
    }
    if (used >= n)
        out[0] = '\0';
}

bs_err
bs_members_revoke(bs_local *l, const uint8_t pk[BS_PK_LEN], bs_errbuf *err)
{
    char id[BS_NODE_ID_LEN + 1], held[BS_REVOKED_AT_MAX + 1];
    bs_field f[2];
    bs_err rv;

    if ((rv = hub_only(l, err)) != BS_OK)
        return rv;
    bs_node_id_format(pk, id);
    held_streams(&l->streams, pk, held, sizeof held);
    f[0] = bool_field("revoked", 1);
    f[1] = bs_field_text("revoked_at", held);
    return bs_local_put(l, BS_SYS_MEMBERS, id, f, 2, err);
}

bs_err
bs_members_learn(bs_member *m, const bs_change *c, uint8_t pk[BS_PK_LEN])
{
    if (bs_node_id_parse(c->id, pk) != BS_OK)
        return BS_EINVAL;
    memcpy(m->pk, pk, BS_PK_LEN);
    m->revoked = c->deleted;
    for (size_t i = 0; i < c->nfields; i++) {
        const bs_field *f = &c->fields[i];
        if (strcmp(f->name, "revoked") == 0)
            m->revoked = f->val.type == BS_VTRUE;
        else if (strcmp(f->name, "revoked_at") == 0 &&
                 f->val.type == BS_VTEXT && f->val.len <= BS_REVOKED_AT_MAX) {
            memcpy(m->revoked_at, f->val.s, f->val.len);
            m->revoked_at[f->val.len] = '\0';
        } else if (strcmp(f->name, "role") == 0 && f->val.type == BS_VTEXT) {
            m->role = f->val.len == 6 && memcmp(f->val.s, "region", 6) == 0
                          ? BS_MEMBER_REGION
                      : f->val.len == 3 && memcmp(f->val.s, "hub", 3) == 0
                          ? BS_ROLE_HUB
                          : BS_ROLE_BRANCH;
        } else if (strcmp(f->name, "name") == 0 && f->val.type == BS_VTEXT &&
                   f->val.len <= BS_NODE_NAME_MAX) {
            memcpy(m->name, f->val.s, f->val.len);
            m->name[f->val.len] = '\0';
        }
    }
    return BS_OK;
}
