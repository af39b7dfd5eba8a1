/*
 * cmd_peer.c - peer add/ls/rm and collection: pairing and the rules the
 * hub declares.
 */
#include <string.h>

#include "../node/config.h"
#include "../node/schedule.h"
#include "../replication/collections.h"
#include "../replication/members.h"
#include "../replication/movein.h"
#include "../replication/pairing.h"
#include "../replication/unique.h"
#include "cli.h"
#include "output.h"

static uint64_t
now_ms(void)
{
    return bs_clock_system.now_ms(NULL);
}

/* How peer `name` of node n is pinned as its hub (BS_PIN_NONE if unread). */
static int
pin_of(bs_node *n, const char *name)
{
    int pin = BS_PIN_NONE;
    bs_peer p;
    bs_txn *t;

    if (bs_store_read(n->store, &t, NULL) != BS_OK)
        return pin;
    if (bs_peer_get(t, name, &p) == BS_OK) {
        pin = p.hub_pin;
        bs_peer_fini(&p);
    }
    bs_txn_abort(t);
    return pin;
}

static bs_err
peer_add(bs_cli *c)
{
    const char *idstr = c->argv[3];
    char spec[BS_SCHED_FORMAT_MAX];
    bs_pair p = {c->argv[1], c->argv[2], {0}, spec, "", c->hub, c->region};
    bs_schedule sch;
    bs_core core;
    bs_node *n;
    int introduced = 0, pinned = BS_PIN_NONE;
    bs_err rv;

    if (c->argc != 4)
        return bs_errf(&c->err, BS_EUSAGE,
                       "usage: peer add NAME ENDPOINT NODE_ID [--schedule "
                       "SPEC] [--hub] [--region]");
    if (!bs_node_name_valid(p.name))
        return bs_errf(&c->err, BS_EINVAL, "bad peer name \"%.64s\"", p.name);
    if (strncmp(p.endpoint, "dir:", 4) == 0 &&
        bs_endpoint_folder(p.endpoint) == NULL)
        return bs_errf(&c->err, BS_EINVAL,
                       "bad folder endpoint \"%.255s\": use dir:/ABSOLUTE/PATH",
                       p.endpoint);
    if (bs_endpoint_listenable(p.endpoint) && !bs_endpoint_dialable(p.endpoint))
        return bs_errf(&c->err, BS_EINVAL,
                       "endpoint \"%.255s\" is a wildcard, an address to "
                       "listen on: give the peer's host name or IP address "
                       "(tcp://HOST:PORT)",
                       p.endpoint);
    if (!bs_endpoint_dialable(p.endpoint) &&
        bs_endpoint_folder(p.endpoint) == NULL)
        return bs_errf(&c->err, BS_EINVAL,
                       "bad endpoint \"%.255s\": use tcp://HOST:PORT or "
                       "dir:/PATH",
                       p.endpoint);
    if (bs_node_id_parse(idstr, p.pk) != BS_OK)
        return bs_errf(&c->err, BS_EINVAL,
                       "bad node ID \"%.80s\" (copy it from 'branchsync id' "
                       "on that node)",
                       idstr);
    if ((rv = bs_schedule_parse(&sch, c->schedule ? c->schedule : "manual",
                                &c->err)) != BS_OK)
        return rv;
    bs_schedule_format(&sch, spec, sizeof spec);
    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    rv = bs_pairing_add(&core, &p, &introduced, &c->err);
    if (rv == BS_OK)
        pinned = pin_of(n, p.name);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    bs_cli_notify(c, "reload");
    if (introduced)
        bs_cli_notify(c, "changed");
    if (c->json)
        bs_out_json(json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:b}", "peer",
                              p.name, "endpoint", p.endpoint, "id", idstr,
                              "schedule", spec, "pinned_hub",
                              pinned != BS_PIN_NONE, "pin",
                              bs_render_pin_name(pinned), "region", c->region));
    else
        printf("paired with %s at %s (schedule: %s)%s%s\n", p.name, p.endpoint,
               spec,
               !introduced ? ""
               : c->region ? "; introduced as a regional hub"
                           : "; introduced as a member",
               pinned ? "; pinned as the hub this branch joins" : "");
    return BS_OK;
}

static bs_err
peer_rm(bs_cli *c)
{
    const char *name = c->argv[1];
    bs_core core;
    bs_node *n;
    int revoked = 0;
    bs_err rv;

    if (c->argc != 2)
        return bs_errf(&c->err, BS_EUSAGE, "usage: peer rm NAME");
    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    rv = bs_pairing_remove(&core, name, &revoked, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    bs_cli_notify(c, "reload");
    if (revoked)
        bs_cli_notify(c, "changed");
    if (c->json)
        bs_out_json(
            json_pack("{s:s, s:b}", "removed", name, "revoked", revoked));
    else
        printf("removed peer %s%s\n", name,
               revoked ? "; its key is revoked" : "");
    return BS_OK;
}

typedef struct seed_ctx {
    const char *name;
} seed_ctx;

/* `peer seed NAME` at the hub for a name that is no peer: a branch behind
 * a regional hub (its region seeds it: bad input), else unknown. */
static bs_err
via_region(bs_txn *t, const bs_meta *m, const char *name, bs_errbuf *err)
{
    uint8_t pk[BS_PK_LEN];
    bs_member mem;

    if (bs_members_by_name(t, name, pk) == BS_OK &&
        bs_members_get(t, m, pk, &mem) == BS_OK && mem.region[0] != '\0')
        return bs_errf(err, BS_EINVAL,
                       "\"%s\" is a branch behind regional hub \"%s\", which "
                       "seeds it: run `branchsync peer seed %s` there "
                       "(docs/operations.md, \"Regional hubs\")",
                       name, mem.region, name);
    return bs_errf(err, BS_ENOTFOUND, "unknown peer \"%s\" (see peer ls)",
                   name);
}

static bs_err
seed_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    seed_ctx *x = arg;
    bs_meta m;
    bs_peer p;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        return rv;
    if (!m.joined || (memcmp(m.pk, m.hub, BS_PK_LEN) != 0 &&
                      !bs_members_is_region(t, &m, m.pk)))
        return bs_errf(err, BS_EINVAL,
                       "only the infobase's hub seeds a branch, or a regional "
                       "hub its own (run peer seed there)");
    if ((rv = bs_peer_get(t, x->name, &p)) == BS_ENOTFOUND)
        return via_region(t, &m, x->name, err);
    if (rv != BS_OK)
        return rv;
    rv = bs_movein_seed_peer(t, p.pk);
    bs_peer_fini(&p);
    return rv;
}

/* `peer seed NAME` (the hub): NAME's next exchange, file or session, seeds
 * it with the records of its scope instead of the history. */
static bs_err
peer_seed(bs_cli *c)
{
    seed_ctx x = {c->argv[1]};
    bs_node *n;
    bs_err rv;

    if (c->argc != 2)
        return bs_errf(&c->err, BS_EUSAGE, "usage: peer seed NAME");
    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    rv = bs_store_write(n->store, seed_txn, &x, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    if (c->json)
        bs_out_json(json_pack("{s:s}", "seed", x.name));
    else
        printf("%s's next exchange with this hub seeds it (the records of its "
               "scope, then the log)\n",
               x.name);
    return BS_OK;
}

static bs_err
peer_ls(bs_cli *c)
{
    bs_peer *v;
    size_t np;
    bs_node *n;
    bs_txn *t;
    bs_meta m;
    int pinned = 0;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        if ((rv = bs_meta_load(t, &m, &c->err)) == BS_OK)
            rv = bs_peer_list(t, &v, &np);
        bs_txn_abort(t);
    }
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    for (size_t i = 0; i < np; i++)
        pinned |= v[i].hub_pin != BS_PIN_NONE;
    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < np; i++)
            json_array_append_new(arr, bs_render_peer(&v[i]));
        bs_out_json(arr);
    } else {
        bs_out_peers(v, np, now_ms());
        if (m.role == BS_ROLE_BRANCH && !m.joined && np > 0 && !pinned)
            printf("no pinned hub: this branch joins no infobase until its "
                   "hub is paired with --hub (peer rm NAME, then peer add "
                   "NAME ENDPOINT NODE_ID --hub)\n");
    }
    bs_peer_list_free(v, np);
    return BS_OK;
}

bs_err
bs_cmd_peer(bs_cli *c)
{
    const char *sub = c->argv[0];

    if (c->schedule && strcmp(sub, "add") != 0)
        return bs_errf(&c->err, BS_EUSAGE, "--schedule applies to peer add");
    if (c->hub && strcmp(sub, "add") != 0)
        return bs_errf(&c->err, BS_EUSAGE, "--hub applies to peer add");
    if (c->region && strcmp(sub, "add") != 0)
        return bs_errf(&c->err, BS_EUSAGE, "--region applies to peer add");
    if (strcmp(sub, "add") == 0)
        return peer_add(c);
    if (strcmp(sub, "rm") == 0)
        return peer_rm(c);
    if (strcmp(sub, "ls") == 0)
        return c->argc == 1 ? peer_ls(c)
                            : bs_errf(&c->err, BS_EUSAGE, "usage: peer ls");
    if (strcmp(sub, "seed") == 0)
        return peer_seed(c);
    return bs_errf(&c->err, BS_EUSAGE,
                   "unknown peer command \"%s\": use add, ls, rm or seed", sub);
}

static bs_err
member_add(bs_cli *c)
{
    uint8_t pk[BS_PK_LEN];
    bs_core core;
    bs_node *n;
    bs_err rv;

    if (c->argc != 3 || c->via == NULL)
        return bs_errf(&c->err, BS_EUSAGE,
                       "usage: member add NAME NODE_ID --via REGION");
    if (!bs_node_name_valid(c->argv[1]))
        return bs_errf(&c->err, BS_EINVAL, "bad member name \"%.64s\"",
                       c->argv[1]);
    if (bs_node_id_parse(c->argv[2], pk) != BS_OK)
        return bs_errf(&c->err, BS_EINVAL,
                       "bad node ID \"%.80s\" (copy it from 'branchsync id' "
                       "on that node)",
                       c->argv[2]);
    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    rv = bs_pairing_member_add(&core, c->argv[1], pk, c->via, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    bs_cli_notify(c, "changed");
    if (c->json)
        bs_out_json(json_pack("{s:s, s:s, s:s}", "member", c->argv[1], "id",
                              c->argv[2], "via", c->via));
    else
        printf("introduced %s as a member relayed by the regional hub %s\n",
               c->argv[1], c->via);
    return BS_OK;
}

static bs_err
member_rm(bs_cli *c)
{
    bs_core core;
    bs_node *n;
    bs_err rv;

    if (c->argc != 2 || c->via != NULL)
        return bs_errf(&c->err, BS_EUSAGE, "usage: member rm NAME");
    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    rv = bs_pairing_member_rm(&core, c->argv[1], &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    bs_cli_notify(c, "changed");
    if (c->json)
        bs_out_json(
            json_pack("{s:s, s:b}", "removed", c->argv[1], "revoked", 1));
    else
        printf("revoked member %s\n", c->argv[1]);
    return BS_OK;
}

bs_err
bs_cmd_member(bs_cli *c)
{
    const char *sub = c->argv[0];

    if (strcmp(sub, "add") == 0)
        return member_add(c);
    if (strcmp(sub, "rm") == 0)
        return member_rm(c);
    return bs_errf(&c->err, BS_EUSAGE,
                   "unknown member command \"%s\": use add or rm", sub);
}

static json_t *
rules_json(const bs_collection *r)
{
    return json_pack(
        "{s:s, s:b, s:s, s:s, s:s, s:s, s:s}", "collection", r->name,
        "declared", r->declared, "policy", bs_policy_name(r->policy), "writers",
        bs_writers_name(r->writers), "scope", bs_scope_name(r->scope),
        "owner_field", r->owner_field, "unique", r->unique);
}

static void
rules_print(const bs_collection *r, const char *tail)
{
    printf("collection %s: policy %s, writers %s, scope %s", r->name,
           bs_policy_name(r->policy), bs_writers_name(r->writers),
           bs_scope_name(r->scope));
    if (r->owner_field[0])
        printf(", owner field %s", r->owner_field);
    if (r->unique[0])
        printf(", unique %s", r->unique);
    printf("%s\n", tail);
}

/* `collection NAME` alone: the rules in effect. */
static bs_err
collection_show(bs_cli *c, const char *name)
{
    bs_collection r;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        rv = bs_collections_get(t, name, &r);
        bs_txn_abort(t);
    }
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    if (c->json)
        bs_out_json(rules_json(&r));
    else
        rules_print(&r, r.declared ? "" : " (not declared: the defaults)");
    return BS_OK;
}

bs_err
bs_cmd_collection(bs_cli *c)
{
    bs_collection rules, now;
    bs_core core;
    bs_node *n;
    bs_err rv;

    memset(&rules, 0, sizeof rules);
    if ((rv = bs_records_check_coll(c->argv[0], &c->err)) != BS_OK)
        return rv;
    snprintf(rules.name, sizeof rules.name, "%s", c->argv[0]);
    if (!c->policy && !c->writers && !c->scope && !c->owner_field && !c->unique)
        return collection_show(c, rules.name);
    if (c->policy && bs_policy_parse(c->policy, &rules.policy) != BS_OK)
        return bs_errf(&c->err, BS_EINVAL,
                       "bad policy \"%s\": use field-lww, priority or manual",
                       c->policy);
    if (c->writers && bs_writers_parse(c->writers, &rules.writers) != BS_OK)
        return bs_errf(&c->err, BS_EINVAL,
                       "bad --writers \"%s\": use hub, all or owner",
                       c->writers);
    if (c->scope && bs_scope_parse(c->scope, &rules.scope) != BS_OK)
        return bs_errf(&c->err, BS_EINVAL,
                       "bad --scope \"%s\": use shared or owner", c->scope);
    rules.set = (c->policy ? BS_RULE_POLICY : 0) |
                (c->writers ? BS_RULE_WRITERS : 0) |
                (c->scope ? BS_RULE_SCOPE : 0) |
                (c->owner_field ? BS_RULE_OWNER_FIELD : 0) |
                (c->unique ? BS_RULE_UNIQUE : 0);
    if (c->unique && strlen(c->unique) > BS_FIELD_NAME_MAX)
        return bs_errf(&c->err, BS_EINVAL, "bad unique field: at most %d bytes",
                       BS_FIELD_NAME_MAX);
    if (c->unique && strcmp(c->unique, "none") != 0)
        snprintf(rules.unique, sizeof rules.unique, "%s", c->unique);
    if (c->owner_field)
        snprintf(rules.owner_field, sizeof rules.owner_field, "%.*s",
                 BS_FIELD_NAME_MAX, c->owner_field);
    if (c->owner_field && strlen(c->owner_field) > BS_FIELD_NAME_MAX)
        return bs_errf(&c->err, BS_EINVAL, "bad owner field: at most %d bytes",
                       BS_FIELD_NAME_MAX);
    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    rv = bs_collections_declare(&core, &rules, &now, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    bs_cli_notify(c, "changed");
    if (c->json)
        bs_out_json(rules_json(&now));
    else
        rules_print(&now, now.scope == BS_SCOPE_OWNER
                              ? " (replicates to every node; each record "
                                "goes only to the hub and its owner)"
                              : " (replicates to every node)");
    return BS_OK;
}

bs_err
bs_cmd_merge(bs_cli *c)
{
    const char *coll = c->argv[0], *keep = c->argv[1], *other = c->argv[2];
    bs_core core;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_core(c, 1, &n, &core)) == BS_OK)
        rv = bs_unique_merge(&core, coll, keep, other, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    bs_cli_notify(c, "changed");
    if (c->json)
        bs_out_json(json_pack("{s:s, s:s, s:s}", "collection", coll, "kept",
                              keep, "merged", other));
    else
        printf("%s/%s merged into %s/%s (replicates to every node)\n", coll,
               other, coll, keep);
    return BS_OK;
}
