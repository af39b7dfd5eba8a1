/*
 * pairing.c - peer table and membership, together.
 */
#include "pairing.h"

#include <stdlib.h>
#include <string.h>

#include "members.h"

typedef struct pair_ctx {
    const bs_core *c;
    const bs_pair *add;
    const char *rm;
    int member; /* changed membership */
} pair_ctx;

/* The membership change that goes with it, at the hub only. */
static bs_err
membership(pair_ctx *x, bs_txn *t, const uint8_t *pk, bs_errbuf *err)
{
    bs_local l;
    bs_meta m;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, err)) != BS_OK || m.role != BS_ROLE_HUB)
        return rv;
    if ((rv = bs_local_begin(&l, t, x->c, err)) == BS_OK) {
        rv = x->add ? bs_members_introduce(&l, pk, x->add->name,
                                           x->add->region ? BS_MEMBER_REGION
                                                          : BS_ROLE_BRANCH,
                                           NULL, err)
                    : bs_members_revoke(&l, pk, err);
        if (rv == BS_OK)
            rv = bs_local_finish(&l, err);
    }
    bs_local_fini(&l);
    x->member = rv == BS_OK;
    return rv;
}

/* 1 when the peers table holds no peer. */
static bs_err
no_peers(bs_txn *t, int *empty)
{
    bs_peer *v;
    size_t n;
    bs_err rv = bs_peer_list(t, &v, &n);

    if (rv == BS_OK) {
        *empty = n == 0;
        bs_peer_list_free(v, n);
    }
    return rv;
}

/* Decide p's hub pin (pairing.h); may take an automatic pin from the peer
 * that had it. */
static bs_err
pin(bs_txn *t, const bs_meta *m, const bs_pair *a, bs_peer *p, bs_errbuf *err)
{
    char id[BS_NODE_ID_LEN + 1];
    bs_peer old;
    int empty;
    bs_err rv;

    if (m->role == BS_ROLE_HUB)
        return a->hub ? bs_errf(err, BS_EINVAL,
                                "this node is the hub: it joins no other "
                                "hub, so --hub does not apply")
                      : BS_OK;
    if (m->joined) {
        int is_hub = memcmp(a->pk, m->hub, BS_PK_LEN) == 0;
        bs_node_id_format(m->hub, id);
        if (a->hub && !is_hub)
            return bs_errf(err, BS_EINVAL,
                           "this branch has joined the infobase of hub %s: "
                           "--hub can name only that hub",
                           id);
        p->hub_pin = is_hub ? (a->hub ? BS_PIN_NAMED : BS_PIN_AUTO) : 0;
        return BS_OK;
    }
    if (!a->hub) {
        if ((rv = no_peers(t, &empty)) == BS_OK && empty)
            p->hub_pin = BS_PIN_AUTO; /* the first peer paired */
        return rv;
    }
    if ((rv = bs_peer_pinned(t, &old)) == BS_ENOTFOUND) {
        p->hub_pin = BS_PIN_NAMED;
        return BS_OK;
    }
    if (rv != BS_OK)
        return rv;
    if (old.hub_pin == BS_PIN_NAMED)
        rv = bs_errf(err, BS_EEXIST,
                     "peer \"%s\" is already this branch's hub (--hub): only "
                     "one peer can be; to change it, peer rm %s first",
                     old.name, old.name);
    else { /* named now: the first peer paired loses its pin */
        old.hub_pin = BS_PIN_NONE;
        rv = bs_peer_put(t, &old);
        p->hub_pin = BS_PIN_NAMED;
    }
    bs_peer_fini(&old);
    return rv;
}

static bs_err
add_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    pair_ctx *x = arg;
    const bs_pair *a = x->add;
    bs_peer p, old;
    bs_meta m;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        return rv;
    if (memcmp(a->pk, m.pk, BS_PK_LEN) == 0)
        return bs_errf(err, BS_EINVAL, "that is this node's own ID");
    if (a->region && m.role != BS_ROLE_HUB)
        return bs_errf(err, BS_EINVAL,
                       "only the hub declares regional hubs: --region "
                       "applies on the hub");
    if (bs_peer_get(t, a->name, &old) == BS_OK) {
        bs_peer_fini(&old);
        return bs_errf(err, BS_EEXIST, "peer \"%s\" already exists", a->name);
    }
    if (bs_peer_find_pk(t, a->pk, &old) == BS_OK) {
        rv = bs_errf(err, BS_EEXIST, "that node is already paired as \"%s\"",
                     old.name);
        bs_peer_fini(&old);
        return rv;
    }
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", a->name);
    snprintf(p.endpoint, sizeof p.endpoint, "%s", a->endpoint);
    snprintf(p.schedule, sizeof p.schedule, "%s", a->schedule);
    snprintf(p.window, sizeof p.window, "%s", a->window ? a->window : "");
    memcpy(p.pk, a->pk, BS_PK_LEN);
    p.created_ms = bs_core_now(x->c);
    if ((rv = pin(t, &m, a, &p, err)) != BS_OK ||
        (rv = bs_peer_put(t, &p)) != BS_OK)
        return rv;
    return membership(x, t, a->pk, err);
}

bs_err
bs_pairing_add(const bs_core *c, const bs_pair *p, int *introduced,
               bs_errbuf *err)
{
    pair_ctx x = {c, p, NULL, 0};
    bs_err rv;

    if (!bs_node_name_valid(p->name))
        return bs_errf(err, BS_EINVAL, "bad peer name \"%.64s\"", p->name);
    if (!bs_endpoint_dialable(p->endpoint) &&
        bs_endpoint_folder(p->endpoint) == NULL)
        return bs_errf(err, BS_EINVAL,
                       "bad endpoint \"%.255s\": use tcp://HOST:PORT or "
                       "dir:/PATH",
                       p->endpoint);
    if (strlen(p->schedule) > BS_SPEC_MAX ||
        (p->window && strlen(p->window) >= sizeof((bs_peer *)0)->window))
        return bs_errf(err, BS_EINVAL, "schedule too long");
    rv = bs_store_write(c->store, add_txn, &x, err);
    if (rv == BS_OK && introduced != NULL)
        *introduced = x.member;
    return rv;
}

static bs_err
rm_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    pair_ctx *x = arg;
    uint8_t pk[BS_PK_LEN];
    bs_peer p;
    bs_err rv;

    if ((rv = bs_peer_get(t, x->rm, &p)) == BS_ENOTFOUND)
        return bs_errf(err, BS_ENOTFOUND, "no peer \"%s\" (see peer ls)",
                       x->rm);
    if (rv != BS_OK)
        return rv;
    memcpy(pk, p.pk, BS_PK_LEN);
    bs_peer_fini(&p);
    /* Revoke first: what this node holds of the peer's streams is the
     * bound of what stays valid. */
    if ((rv = membership(x, t, pk, err)) != BS_OK)
        return rv;
    return bs_peer_del(t, x->rm);
}

bs_err
bs_pairing_remove(const bs_core *c, const char *name, int *revoked,
                  bs_errbuf *err)
{
    pair_ctx x = {c, NULL, name, 0};
    bs_err rv = bs_store_write(c->store, rm_txn, &x, err);

    if (rv == BS_OK && revoked != NULL)
        *revoked = x.member;
    return rv;
}

typedef struct member_ctx {
    const bs_core *c;
    const char *name, *via;
    const uint8_t *pk;
} member_ctx;

/* BS_EEXIST when `name` or pk is a peer or a live member already. */
static bs_err
member_free(bs_txn *t, const char *name, const uint8_t *pk, bs_errbuf *err)
{
    bs_member *v;
    size_t n;
    bs_peer p;
    bs_err rv;

    if (bs_peer_get(t, name, &p) == BS_OK ||
        bs_peer_find_pk(t, pk, &p) == BS_OK) {
        rv = bs_errf(err, BS_EEXIST,
                     "\"%s\" is paired here as peer \"%s\": a paired node "
                     "is a member already",
                     name, p.name);
        bs_peer_fini(&p);
        return rv;
    }
    if ((rv = bs_members_list(t, &v, &n)) != BS_OK)
        return rv;
    for (size_t i = 0; i < n && rv == BS_OK; i++)
        if (!v[i].revoked && (strcmp(v[i].name, name) == 0 ||
                              memcmp(v[i].pk, pk, BS_PK_LEN) == 0))
            rv = bs_errf(err, BS_EEXIST,
                         "member \"%s\" already exists with that %s", v[i].name,
                         strcmp(v[i].name, name) == 0 ? "name" : "ID");
    free(v);
    return rv;
}

static bs_err
member_add_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    member_ctx *x = arg;
    uint8_t rpk[BS_PK_LEN];
    bs_local l;
    bs_meta m;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        return rv;
    if (m.role != BS_ROLE_HUB)
        return bs_errf(err, BS_EPERM, "only the hub changes membership");
    if (memcmp(x->pk, m.pk, BS_PK_LEN) == 0)
        return bs_errf(err, BS_EINVAL, "that is this node's own ID");
    if ((rv = bs_members_by_name(t, x->via, rpk)) != BS_OK &&
        rv != BS_ENOTFOUND)
        return rv;
    if (rv == BS_ENOTFOUND || !bs_members_is_region(t, &m, rpk))
        return bs_errf(err, BS_EINVAL,
                       "\"%s\" is not a regional hub of this infobase: "
                       "declare it first with peer add %s ENDPOINT ID "
                       "--region",
                       x->via, x->via);
    if ((rv = member_free(t, x->name, x->pk, err)) != BS_OK)
        return rv;
    if ((rv = bs_local_begin(&l, t, x->c, err)) == BS_OK) {
        rv = bs_members_introduce(&l, x->pk, x->name, BS_ROLE_BRANCH, x->via,
                                  err);
        if (rv == BS_OK)
            rv = bs_local_finish(&l, err);
    }
    bs_local_fini(&l);
    return rv;
}

bs_err
bs_pairing_member_add(const bs_core *c, const char *name,
                      const uint8_t pk[BS_PK_LEN], const char *via,
                      bs_errbuf *err)
{
    member_ctx x = {c, name, via, pk};

    if (!bs_node_name_valid(name))
        return bs_errf(err, BS_EINVAL, "bad member name \"%.64s\"", name);
    if (!bs_node_name_valid(via))
        return bs_errf(err, BS_EINVAL, "bad regional hub name \"%.64s\"", via);
    return bs_store_write(c->store, member_add_txn, &x, err);
}

static bs_err
member_rm_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    member_ctx *x = arg;
    uint8_t pk[BS_PK_LEN];
    bs_local l;
    bs_member mem;
    bs_peer p;
    bs_meta m;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        return rv;
    if (m.role != BS_ROLE_HUB)
        return bs_errf(err, BS_EPERM, "only the hub changes membership");
    if ((rv = bs_members_by_name(t, x->name, pk)) == BS_ENOTFOUND)
        return bs_errf(err, BS_ENOTFOUND, "no member \"%s\" (see status)",
                       x->name);
    if (rv != BS_OK)
        return rv;
    if (bs_members_get(t, &m, pk, &mem) == BS_ENOTFOUND && mem.revoked)
        return bs_errf(err, BS_EINVAL, "member \"%s\" is revoked already",
                       x->name);
    if (bs_peer_find_pk(t, pk, &p) == BS_OK) {
        rv = bs_errf(err, BS_EINVAL,
                     "\"%s\" is paired here as peer \"%s\": use peer rm %s",
                     x->name, p.name, p.name);
        bs_peer_fini(&p);
        return rv;
    }
    if ((rv = bs_local_begin(&l, t, x->c, err)) == BS_OK) {
        rv = bs_members_revoke(&l, pk, err);
        if (rv == BS_OK)
            rv = bs_local_finish(&l, err);
    }
    bs_local_fini(&l);
    return rv;
}

bs_err
bs_pairing_member_rm(const bs_core *c, const char *name, bs_errbuf *err)
{
    member_ctx x = {c, name, NULL, NULL};

    return bs_store_write(c->store, member_rm_txn, &x, err);
}

typedef struct sched_ctx {
    const char *name, *schedule, *window;
} sched_ctx;

static bs_err
sched_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    sched_ctx *x = arg;
    bs_peer p;
    bs_err rv;

    if ((rv = bs_peer_get(t, x->name, &p)) == BS_ENOTFOUND)
        return bs_errf(err, BS_ENOTFOUND, "no peer \"%s\" (see peer ls)",
                       x->name);
    if (rv != BS_OK)
        return rv;
    snprintf(p.schedule, sizeof p.schedule, "%s", x->schedule);
    snprintf(p.window, sizeof p.window, "%s", x->window ? x->window : "");
    rv = bs_peer_put(t, &p);
    bs_peer_fini(&p);
    return rv;
}

bs_err
bs_pairing_schedule(const bs_core *c, const char *name, const char *schedule,
                    const char *window, bs_errbuf *err)
{
    sched_ctx x = {name, schedule, window};

    if (strlen(schedule) > BS_SPEC_MAX ||
        (window && strlen(window) >= sizeof((bs_peer *)0)->window))
        return bs_errf(err, BS_EINVAL, "schedule too long");
    return bs_store_write(c->store, sched_txn, &x, err);
}
