/*
 * meta.c - node metadata persistence.
 */
#include "meta.h"

#include <ctype.h>
#include <string.h>

static bs_err
get_fixed(bs_txn *t, const char *key, void *out, size_t n, int optional)
{
    bs_slice v;
    bs_err rv = bs_txn_get(t, BS_DB_META, bs_str(key), &v);

    if (rv == BS_ENOTFOUND && optional)
        return BS_ENOTFOUND;
    if (rv != BS_OK)
        return rv == BS_ENOTFOUND ? BS_ENOTNODE : rv;
    if (v.n != n)
        return BS_ESTORE;
    memcpy(out, v.p, n);
    return BS_OK;
}

bs_err
bs_meta_format(bs_txn *t, uint32_t *format)
{
    return get_fixed(t, "format", format, 4, 0);
}

bs_err
bs_meta_get_u64(bs_txn *t, const char *key, uint64_t *v)
{
    bs_err rv = get_fixed(t, key, v, 8, 1);

    if (rv == BS_ENOTFOUND)
        *v = 0;
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_meta_load(bs_txn *t, bs_meta *m, bs_errbuf *err)
{
    bs_slice v;
    bs_err rv;

    memset(m, 0, sizeof *m);
    if ((rv = get_fixed(t, "format", &m->format, 4, 0)) != BS_OK)
        return bs_errf(err, rv == BS_ENOTNODE ? BS_ENOTNODE : rv,
                       "store holds no node metadata");
    if (m->format > BS_STORE_FORMAT)
        return bs_errf(err, BS_ESTORE,
                       "store format %u is newer than this program (%u)",
                       m->format, BS_STORE_FORMAT);
    if (m->format < BS_STORE_FORMAT)
        return bs_errf(err, BS_ESTORE,
                       "store format %u needs an upgrade to format %u: open "
                       "the node with this program's branchsync once",
                       m->format, BS_STORE_FORMAT);
    if ((rv = bs_txn_get(t, BS_DB_META, bs_str("name"), &v)) != BS_OK ||
        v.n == 0 || v.n > BS_NODE_NAME_MAX)
        return bs_errf(err, BS_ESTORE, "store metadata: bad node name");
    memcpy(m->name, v.p, v.n);
    if ((rv = get_fixed(t, "role", &m->role, 1, 0)) != BS_OK ||
        (rv = get_fixed(t, "pk", m->pk, BS_PK_LEN, 0)) != BS_OK ||
        (rv = get_fixed(t, "inc", m->inc, BS_INC_LEN, 0)) != BS_OK ||
        (rv = get_fixed(t, "stream", &m->stream, 4, 0)) != BS_OK ||
        (rv = get_fixed(t, "hlc", &m->hlc, 8, 0)) != BS_OK)
        return bs_errf(err, BS_ESTORE, "store metadata incomplete");
    rv = get_fixed(t, "infobase", m->infobase, BS_INFOBASE_LEN, 1);
    if (rv == BS_OK)
        rv = get_fixed(t, "hub", m->hub, BS_PK_LEN, 0);
    if (rv == BS_OK)
        m->joined = 1;
    else if (rv != BS_ENOTFOUND)
        return bs_errf(err, BS_ESTORE, "store metadata: bad infobase");
    return BS_OK;
}

static bs_err
put(bs_txn *t, const char *key, const void *p, size_t n)
{
    return bs_txn_put(t, BS_DB_META, bs_str(key), bs_mem(p, n), 0, NULL);
}

bs_err
bs_meta_save(bs_txn *t, const bs_meta *m)
{
    bs_err rv;

    if ((rv = put(t, "format", &m->format, 4)) != BS_OK ||
        (rv = put(t, "name", m->name, strlen(m->name))) != BS_OK ||
        (rv = put(t, "role", &m->role, 1)) != BS_OK ||
        (rv = put(t, "pk", m->pk, BS_PK_LEN)) != BS_OK ||
        (rv = put(t, "inc", m->inc, BS_INC_LEN)) != BS_OK ||
        (rv = put(t, "stream", &m->stream, 4)) != BS_OK ||
        (rv = put(t, "hlc", &m->hlc, 8)) != BS_OK)
        return rv;
    if (m->joined &&
        ((rv = put(t, "infobase", m->infobase, BS_INFOBASE_LEN)) != BS_OK ||
         (rv = put(t, "hub", m->hub, BS_PK_LEN)) != BS_OK))
        return rv;
    return BS_OK;
}

bs_err
bs_meta_unjoin(bs_txn *t, bs_meta *m)
{
    bs_err rv;

    m->joined = 0;
    memset(m->infobase, 0, sizeof m->infobase);
    memset(m->hub, 0, sizeof m->hub);
    rv = bs_txn_del(t, BS_DB_META, bs_str("infobase"));
    if (rv == BS_OK || rv == BS_ENOTFOUND)
        rv = bs_txn_del(t, BS_DB_META, bs_str("hub"));
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_meta_save_hlc(bs_txn *t, uint64_t hlc)
{
    return put(t, "hlc", &hlc, 8);
}

bs_err
bs_meta_put_u64(bs_txn *t, const char *key, uint64_t v)
{
    return put(t, key, &v, 8);
}

const char *
bs_role_name(int role)
{
    return role == BS_ROLE_HUB ? "hub" : "branch";
}

bs_err
bs_role_parse(const char *s, int *role)
{
    if (strcmp(s, "hub") == 0)
        *role = BS_ROLE_HUB;
    else if (strcmp(s, "branch") == 0)
        *role = BS_ROLE_BRANCH;
    else
        return BS_EINVAL;
    return BS_OK;
}

int
bs_node_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > BS_NODE_NAME_MAX || !isalnum((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-' &&
            s[i] != '.')
            return 0;
    return 1;
}
