/*
 * rules.c - the rule versions a node applied.
 */
#include "rules.h"

#include <string.h>

#define PREFIX     "rule:"
#define PREFIX_LEN 5
#define KEY_MAX    (PREFIX_LEN + BS_COLLECTION_MAX + 1 + 16)

/* "rule:" name \0 u64be hlc u64be seq; returns its length.  With only the
 * prefix (hlc and seq left out): the length of the name part. */
static size_t
rule_key(uint8_t *k, const char *name, uint64_t hlc, uint64_t seq)
{
    size_t n = strlen(name);

    memcpy(k, PREFIX, PREFIX_LEN);
    memcpy(k + PREFIX_LEN, name, n);
    k[PREFIX_LEN + n] = 0;
    bs_put_u64be(k + PREFIX_LEN + n + 1, hlc);
    bs_put_u64be(k + PREFIX_LEN + n + 9, seq);
    return PREFIX_LEN + n + 17;
}

bs_err
bs_rules_note(bs_txn *t, const char *name, const bs_rule_version *ver,
              const bs_collection *r)
{
    uint8_t k[KEY_MAX], v[4 + BS_FIELD_NAME_MAX + BS_INC_LEN];
    size_t on = strlen(r->owner_field);

    v[0] = (uint8_t)r->policy;
    v[1] = (uint8_t)r->writers;
    v[2] = (uint8_t)r->scope;
    v[3] = (uint8_t)on;
    memcpy(v + 4, r->owner_field, on);
    memcpy(v + 4 + on, ver->inc, BS_INC_LEN);
    return bs_txn_put(t, BS_DB_META,
                      bs_mem(k, rule_key(k, name, ver->hlc, ver->seq)),
                      bs_mem(v, 4 + on + BS_INC_LEN), 0, NULL);
}

static bs_err
decode(const char *name, bs_slice v, bs_collection *r, uint8_t *inc)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    if (v.n < 4 || v.p[0] > BS_POLICY_MANUAL || v.p[1] > BS_WRITERS_OWNER ||
        v.p[2] > BS_SCOPE_OWNER || v.p[3] > BS_FIELD_NAME_MAX ||
        v.n != 4u + v.p[3] + BS_INC_LEN)
        return BS_ESTORE;
    if (inc != NULL)
        memcpy(inc, v.p + 4 + v.p[3], BS_INC_LEN);
    r->declared = 1;
    r->policy = (bs_policy)v.p[0];
    r->writers = (bs_writers)v.p[1];
    r->scope = (bs_scope)v.p[2];
    memcpy(r->owner_field, v.p + 4, v.p[3]);
    r->owner_field[v.p[3]] = '\0';
    return BS_OK;
}

bs_err
bs_rules_at(bs_txn *t, const char *name, uint64_t hlc, bs_collection *r,
            bs_rule_version *ver)
{
    uint8_t k[KEY_MAX];
    size_t klen = rule_key(k, name, hlc, 0), plen = klen - 16;
    bs_cursor *c;
    bs_slice fk, fv;
    bs_err rv;

    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    if (ver != NULL)
        memset(ver, 0, sizeof *ver);
    if ((rv = bs_cursor_open(t, BS_DB_META, &c)) != BS_OK)
        return rv;
    /* The first key at or after (name, hlc, 0), then one back: the last
     * version stamped before hlc, if it is of this name. */
    rv = bs_cursor_seek(c, bs_mem(k, klen), &fk, &fv);
    if (rv == BS_OK)
        rv = bs_cursor_prev(c, &fk, &fv);
    else if (rv == BS_ENOTFOUND)
        rv = bs_cursor_last(c, &fk, &fv);
    if (rv == BS_OK && fk.n == klen && memcmp(fk.p, k, plen) == 0) {
        rv = decode(name, fv, r, ver != NULL ? ver->inc : NULL);
        if (rv == BS_OK && ver != NULL) {
            ver->hlc = bs_get_u64be(fk.p + plen);
            ver->seq = bs_get_u64be(fk.p + plen + 8);
        }
    } else if (rv == BS_OK || rv == BS_ENOTFOUND) {
        rv = BS_OK; /* no version before hlc: the defaults */
    }
    bs_cursor_close(c);
    return rv;
}

bs_err
bs_rules_next(bs_txn *t, const char *name, bs_rule_version *ver,
              bs_collection *r)
{
    uint8_t k[KEY_MAX];
    size_t klen = rule_key(k, name, ver->hlc, ver->seq + 1), plen = klen - 16;
    bs_cursor *c;
    bs_slice fk, fv;
    bs_err rv;

    if (ver->seq == UINT64_MAX)
        klen = rule_key(k, name, ver->hlc + 1, 0);
    if ((rv = bs_cursor_open(t, BS_DB_META, &c)) != BS_OK)
        return rv;
    rv = bs_cursor_seek(c, bs_mem(k, klen), &fk, &fv);
    if (rv == BS_OK && (fk.n != klen || memcmp(fk.p, k, plen) != 0))
        rv = BS_ENOTFOUND;
    if (rv == BS_OK && (rv = decode(name, fv, r, ver->inc)) == BS_OK) {
        ver->hlc = bs_get_u64be(fk.p + plen);
        ver->seq = bs_get_u64be(fk.p + plen + 8);
    }
    bs_cursor_close(c);
    return rv;
}

/* Whether seen covers version v of the hub's stream. */
static int
covers(const uint8_t *hub, const bs_pos *seen, size_t nseen,
       const bs_rule_version *v)
{
    uint8_t key[BS_STREAM_KEY_LEN];

    memcpy(key, hub, BS_PK_LEN);
    memcpy(key + BS_PK_LEN, v->inc, BS_INC_LEN);
    return bs_vv_covers(seen, nseen, key, v->seq);
}

bs_err
bs_rules_seen(bs_txn *t, const char *name, const uint8_t *hub,
              const bs_pos *seen, size_t nseen, bs_collection *r,
              bs_rule_version *v)
{
    bs_rule_version at = *v;
    bs_collection next;
    bs_err rv;

    /* Versions after *v, in order: usually none (a change stamped after
     * every version), one cursor seek. */
    while ((rv = bs_rules_next(t, name, &at, &next)) == BS_OK)
        if (covers(hub, seen, nseen, &at)) {
            *r = next;
            *v = at;
        }
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

bs_err
bs_rules_governing(bs_txn *t, const char *name, uint64_t hlc,
                   const uint8_t *hub, const bs_pos *seen, size_t nseen,
                   bs_collection *r, bs_rule_version *v)
{
    bs_rule_version mine;
    bs_err rv = bs_rules_at(t, name, hlc, r, v != NULL ? v : &mine);

    return rv != BS_OK ? rv
                       : bs_rules_seen(t, name, hub, seen, nseen, r,
                                       v != NULL ? v : &mine);
}
