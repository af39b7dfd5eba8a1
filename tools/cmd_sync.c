/*
 * cmd_sync.c - peer, collection, export, import, inspect, conflicts,
 * resolve: pairing and the offline exchange.
 */
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "../node/client.h"
#include "../node/schedule.h"
#include "../replication/bundle.h"
#include "../replication/conflict.h"
#include "../replication/json.h"
#include "../replication/local.h"
#include "../replication/purge.h"
#include "../replication/sys.h"
#include "cli.h"

static uint64_t
now_ms(void)
{
    return bs_clock_system.now_ms(NULL);
}

static void
print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2));

    if (s != NULL)
        puts(s);
    free(s);
    json_decref(j);
}

/* "3 min ago" style age of a millisecond timestamp. */
static void
age(char *buf, size_t n, uint64_t ms)
{
    uint64_t now = now_ms(), d;

    if (ms == 0) {
        snprintf(buf, n, "never");
        return;
    }
    d = now > ms ? (now - ms) / 1000 : 0;
    if (d < 60)
        snprintf(buf, n, "%llu s ago", (unsigned long long)d);
    else if (d < 3600)
        snprintf(buf, n, "%llu min ago", (unsigned long long)(d / 60));
    else if (d < 86400 * 2)
        snprintf(buf, n, "%llu h ago", (unsigned long long)(d / 3600));
    else
        snprintf(buf, n, "%llu days ago", (unsigned long long)(d / 86400));
}

/* ---- local writes to system collections (hub) ---- */

typedef struct sysw {
    const uint8_t *sk;
    const char *coll, *id;
    bs_field *f;
    size_t n;
    bs_peer *peer;  /* written too when non-NULL */
    const char *rm; /* peer to remove */
} sysw;

static bs_err
sys_write(bs_txn *t, void *arg, bs_errbuf *err)
{
    sysw *w = arg;
    bs_local l;
    bs_err rv = BS_OK;

    if (w->peer != NULL) {
        bs_peer old;
        if (bs_peer_get(t, w->peer->name, &old) == BS_OK) {
            bs_peer_fini(&old);
            return bs_errf(err, BS_EEXIST, "peer \"%s\" already exists",
                           w->peer->name);
        }
        if (bs_peer_find_pk(t, w->peer->pk, &old) == BS_OK) {
            rv = bs_errf(err, BS_EEXIST,
                         "that node is already paired as \"%s\"", old.name);
            bs_peer_fini(&old);
            return rv;
        }
        if ((rv = bs_peer_put(t, w->peer)) != BS_OK)
            return rv;
    }
    if (w->rm != NULL && (rv = bs_peer_del(t, w->rm)) != BS_OK)
        return rv == BS_ENOTFOUND
                   ? bs_errf(err, BS_EINVAL, "unknown peer \"%s\"", w->rm)
                   : rv;
    if (w->coll == NULL)
        return BS_OK;
    if ((rv = bs_local_begin(&l, t, w->sk, bs_clock_system, err)) == BS_OK &&
        (rv = bs_local_put(&l, w->coll, w->id, w->f, w->n, err)) == BS_OK)
        rv = bs_local_finish(&l, err);
    bs_local_fini(&l);
    return rv;
}

static bs_field
text_field(const char *name, const char *val)
{
    bs_field f;

    memset(&f, 0, sizeof f);
    f.name = name;
    f.namelen = (uint16_t)strlen(name);
    f.val.type = BS_VTEXT;
    f.val.s = val;
    f.val.len = (uint32_t)strlen(val);
    return f;
}

static bs_field
bool_field(const char *name, int v)
{
    bs_field f;

    memset(&f, 0, sizeof f);
    f.name = name;
    f.namelen = (uint16_t)strlen(name);
    f.val.type = v ? BS_VTRUE : BS_VFALSE;
    return f;
}

/* ---- peer ---- */

static bs_err
peer_add(bs_cli *c, bs_node *n)
{
    const char *name = c->argv[1], *ep = c->argv[2], *idstr = c->argv[3];
    char canon[BS_NODE_ID_LEN + 1], spec[BS_SCHED_FORMAT_MAX];
    bs_schedule sch;
    bs_peer p;
    bs_field f[3];
    sysw w = {0};
    bs_err rv;

    if (c->argc != 4)
        return bs_errf(&c->err, BS_EUSAGE,
                       "usage: peer add NAME ENDPOINT NODE_ID [--schedule "
                       "SPEC]");
    memset(&p, 0, sizeof p);
    if (!bs_node_name_valid(name))
        return bs_errf(&c->err, BS_EINVAL, "bad peer name \"%.64s\"", name);
    if (!bs_endpoint_valid(ep))
        return bs_errf(&c->err, BS_EINVAL,
                       "bad endpoint \"%.255s\": use tcp://HOST:PORT", ep);
    if (bs_node_id_parse(idstr, p.pk) != BS_OK)
        return bs_errf(&c->err, BS_EINVAL,
                       "bad node ID \"%.80s\" (copy it from 'branchsync id' "
                       "on that node)",
                       idstr);
    if (memcmp(p.pk, n->meta.pk, BS_PK_LEN) == 0)
        return bs_errf(&c->err, BS_EINVAL, "that is this node's own ID");
    if ((rv = bs_schedule_parse(&sch, c->schedule ? c->schedule : "manual",
                                &c->err)) != BS_OK)
        return rv;
    bs_schedule_format(&sch, spec, sizeof spec);
    snprintf(p.name, sizeof p.name, "%s", name);
    snprintf(p.endpoint, sizeof p.endpoint, "%s", ep);
    snprintf(p.schedule, sizeof p.schedule, "%s", spec);
    p.created_ms = now_ms();
    w.peer = &p;
    if (n->meta.role == BS_ROLE_HUB) {
        /* The head office introduces every node it pairs (S2). */
        bs_node_id_format(p.pk, canon);
        f[0] = text_field("name", name);
        f[1] = bool_field("revoked", 0);
        f[2] = text_field("role", "branch");
        w.coll = BS_SYS_MEMBERS;
        w.id = canon;
        w.f = f;
        w.n = 3;
        if ((rv = bs_node_secret(n, &w.sk, &c->err)) != BS_OK)
            return rv;
    }
    if ((rv = bs_store_write(n->store, sys_write, &w, &c->err)) != BS_OK)
        return rv;
    bs_cli_notify(c, "reload");
    if (w.coll != NULL)
        bs_cli_notify(c, "changed");
    if (c->json)
        print_json(json_pack("{s:s, s:s, s:s, s:s}", "peer", name, "endpoint",
                             ep, "id", idstr, "schedule", spec));
    else
        printf("paired with %s at %s (schedule: %s)%s\n", name, ep, spec,
               n->meta.role == BS_ROLE_HUB ? "; introduced as a member" : "");
    return BS_OK;
}

/* "INCHEX:SEQ,..." for every stream of origin pk that we hold. */
static void
held_streams(bs_txn *t, const uint8_t *pk, char *out, size_t n)
{
    bs_streamtab tab;
    size_t used = 0;

    out[0] = '\0';
    if (bs_streams_load(t, &tab) != BS_OK)
        return;
    for (size_t i = 0; i < tab.n; i++) {
        char inc[2 * BS_INC_LEN + 1];
        if (memcmp(tab.v[i].key, pk, BS_PK_LEN) != 0)
            continue;
        bs_hex(inc, tab.v[i].key + BS_PK_LEN, BS_INC_LEN);
        used += (size_t)snprintf(out + used, used < n ? n - used : 0,
                                 "%s%s:%llu", used ? "," : "", inc,
                                 (unsigned long long)tab.v[i].seq);
    }
    if (used >= n)
        out[0] = '\0'; /* too many incarnations to list: revoke them all */
    bs_streams_fini(&tab);
}

static bs_err
peer_rm(bs_cli *c, bs_node *n)
{
    sysw w = {0};
    bs_field f[2];
    char held[1000];
    char canon[BS_NODE_ID_LEN + 1];
    bs_peer p;
    bs_txn *t;
    bs_err rv;

    if (c->argc != 2)
        return bs_errf(&c->err, BS_EUSAGE, "usage: peer rm NAME");
    w.rm = c->argv[1];
    if ((rv = bs_store_read(n->store, &t, &c->err)) != BS_OK)
        return rv;
    rv = bs_peer_get(t, w.rm, &p);
    if (rv == BS_OK)
        held_streams(t, p.pk, held, sizeof held);
    bs_txn_abort(t);
    if (rv == BS_ENOTFOUND)
        return bs_errf(&c->err, BS_EINVAL, "unknown peer \"%s\"", w.rm);
    if (rv != BS_OK)
        return rv;
    if (n->meta.role == BS_ROLE_HUB) {
        /* Revoke its key everywhere for new changes. */
        bs_node_id_format(p.pk, canon);
        /* Changes it made up to what we hold stay valid everywhere. */
        f[0] = bool_field("revoked", 1);
        f[1] = text_field("revoked_at", held);
        w.coll = BS_SYS_MEMBERS;
        w.id = canon;
        w.f = f;
        w.n = 2;
        if ((rv = bs_node_secret(n, &w.sk, &c->err)) != BS_OK) {
            bs_peer_fini(&p);
            return rv;
        }
    }
    bs_peer_fini(&p);
    if ((rv = bs_store_write(n->store, sys_write, &w, &c->err)) != BS_OK)
        return rv;
    bs_cli_notify(c, "reload");
    if (w.coll != NULL)
        bs_cli_notify(c, "changed");
    if (!c->json)
        printf("removed peer %s%s\n", w.rm,
               n->meta.role == BS_ROLE_HUB ? "; its key is revoked" : "");
    else
        print_json(json_pack("{s:s, s:b}", "removed", w.rm, "revoked",
                             n->meta.role == BS_ROLE_HUB));
    return BS_OK;
}

static bs_err
peer_ls(bs_cli *c, bs_node *n)
{
    bs_peer *v;
    size_t np;
    bs_txn *t;
    json_t *arr = json_array();
    bs_err rv;

    if ((rv = bs_store_read(n->store, &t, &c->err)) != BS_OK)
        return rv;
    rv = bs_peer_list(t, &v, &np);
    bs_txn_abort(t);
    if (rv != BS_OK)
        return rv;
    if (!c->json && np == 0)
        printf("no peers (pair one with: branchsync peer add NAME ENDPOINT "
               "NODE_ID)\n");
    for (size_t i = 0; i < np; i++) {
        char id[BS_NODE_ID_LEN + 1], ok[32];
        bs_node_id_format(v[i].pk, id);
        age(ok, sizeof ok, v[i].last_ok_ms);
        if (c->json)
            json_array_append_new(
                arr,
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "name",
                          v[i].name, "endpoint", v[i].endpoint, "id", id,
                          "schedule", v[i].schedule, "window", v[i].window,
                          "last_success_ms", (json_int_t)v[i].last_ok_ms,
                          "received_changes", (json_int_t)v[i].recv_changes));
        else
            printf("%-12s %-28s %s\n             schedule: %s%s%s, last "
                   "exchange: %s\n",
                   v[i].name, v[i].endpoint, id, v[i].schedule,
                   v[i].window[0] ? " window " : "", v[i].window, ok);
    }
    if (c->json)
        print_json(arr);
    else
        json_decref(arr);
    bs_peer_list_free(v, np);
    return BS_OK;
}

bs_err
bs_cmd_peer(bs_cli *c)
{
    const char *sub = c->argv[0];
    bs_node *n;
    bs_err rv;

    if (strcmp(sub, "add") && strcmp(sub, "ls") && strcmp(sub, "rm"))
        return bs_errf(&c->err, BS_EUSAGE,
                       "unknown peer command \"%s\": use add, ls or rm", sub);
    if (c->schedule && strcmp(sub, "add") != 0)
        return bs_errf(&c->err, BS_EUSAGE, "--schedule applies to peer add");
    if (strcmp(sub, "ls") == 0 && c->argc != 1)
        return bs_errf(&c->err, BS_EUSAGE, "usage: peer ls");
    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    if (strcmp(sub, "add") == 0)
        rv = peer_add(c, n);
    else if (strcmp(sub, "rm") == 0)
        rv = peer_rm(c, n);
    else
        rv = peer_ls(c, n);
    bs_node_close(n);
    return rv;
}

/* ---- collection ---- */

bs_err
bs_cmd_collection(bs_cli *c)
{
    const char *name = c->argv[0];
    bs_policy pol;
    bs_field f[1];
    sysw w = {0};
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_check_coll(c, name)) != BS_OK)
        return rv;
    if (c->writers || c->scope || c->owner_field)
        return bs_errf(&c->err, BS_EUSAGE,
                       "--writers, --scope and --owner-field (access rules) "
                       "are not implemented yet; only --policy is");
    if (c->policy == NULL)
        return bs_errf(&c->err, BS_EUSAGE,
                       "give --policy "
                       "field-lww|priority|manual");
    if (bs_policy_parse(c->policy, &pol) != BS_OK)
        return bs_errf(&c->err, BS_EINVAL,
                       "bad policy \"%s\": use field-lww, priority or manual",
                       c->policy);
    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    if (n->meta.role != BS_ROLE_HUB) {
        bs_node_close(n);
        return bs_errf(&c->err, BS_EPERM, "only the hub declares collections");
    }
    f[0] = text_field("policy", bs_policy_name(pol));
    w.coll = BS_SYS_COLLECTIONS;
    w.id = name;
    w.f = f;
    w.n = 1;
    if ((rv = bs_node_secret(n, &w.sk, &c->err)) == BS_OK)
        rv = bs_store_write(n->store, sys_write, &w, &c->err);
    bs_node_close(n);
    if (rv == BS_OK)
        bs_cli_notify(c, "changed");
    if (rv == BS_OK && c->json)
        print_json(json_pack("{s:s, s:s}", "collection", name, "policy",
                             bs_policy_name(pol)));
    else if (rv == BS_OK)
        printf("collection %s: policy %s (replicates to every node)\n", name,
               bs_policy_name(pol));
    return rv;
}

/* ---- export / import / inspect ---- */

bs_err
bs_cmd_export(bs_cli *c)
{
    const uint8_t *sk;
    bs_xstats st;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    if ((rv = bs_node_secret(n, &sk, &c->err)) == BS_OK) {
        uint64_t started = now_ms();
        rv = bs_bundle_export(n->store, sk, c->argv[0], c->argv[1], now_ms(),
                              &st, &c->err);
        if (rv == BS_OK) {
            bs_session_stats ss = {0};
            ss.sets_sent = st.sets;
            ss.bytes_out = st.bytes;
            bs_client_log(n, c->argv[0], "file", "out", &ss, started, NULL);
        }
    }
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    if (c->json)
        print_json(json_pack("{s:s, s:s, s:I, s:I}", "peer", c->argv[0], "file",
                             c->argv[1], "change_sets", (json_int_t)st.sets,
                             "bytes", (json_int_t)st.bytes));
    else
        printf("exported %llu change sets (%llu bytes) for %s to %s\n",
               (unsigned long long)st.sets, (unsigned long long)st.bytes,
               c->argv[0], c->argv[1]);
    return BS_OK;
}

bs_err
bs_cmd_import(bs_cli *c)
{
    uint64_t started = 0;
    const uint8_t *sk = NULL;
    bs_xstats st;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    /* A branch with local writes re-signs them when it joins. */
    if (!n->meta.joined && (rv = bs_node_secret(n, &sk, &c->err)) != BS_OK)
        goto out;
    started = now_ms();
    rv = bs_bundle_import(n->store, sk, c->argv[0], bs_clock_system,
                          (uint64_t)n->cfg.max_skew_s * 1000, &st, &c->err);
    if (st.peer[0]) {
        bs_session_stats ss = {0};
        ss.sets_received = st.sets;
        ss.changes_applied = st.changes;
        ss.conflicts = st.conflicts;
        bs_client_log(n, st.peer, "file", st.replay ? "in (replay)" : "in", &ss,
                      started, rv == BS_OK ? NULL : bs_errmsg(&c->err, rv));
    }
out:
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    if (st.changes > 0)
        bs_cli_notify(c, "changed");
    if (c->json) {
        print_json(json_pack(
            "{s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "peer", st.peer,
            "replay", st.replay, "joined", st.joined, "change_sets",
            (json_int_t)st.sets, "duplicate_sets", (json_int_t)st.dup_sets,
            "changes", (json_int_t)st.changes, "conflicts",
            (json_int_t)st.conflicts, "held", (json_int_t)st.held,
            "quarantined", (json_int_t)st.quarantined));
    } else if (st.replay) {
        printf("nothing new: this exchange from %s was already imported\n",
               st.peer);
    } else {
        printf("imported from %s: %llu change sets, %llu changes applied",
               st.peer, (unsigned long long)st.sets,
               (unsigned long long)st.changes);
        if (st.dup_sets)
            printf(", %llu already held", (unsigned long long)st.dup_sets);
        if (st.conflicts)
            printf(", %llu conflicts", (unsigned long long)st.conflicts);
        if (st.held)
            printf(", %llu held (clock ahead)", (unsigned long long)st.held);
        if (st.quarantined)
            printf(", %llu QUARANTINED (see status)",
                   (unsigned long long)st.quarantined);
        printf("%s\n", st.joined ? "; joined the infobase" : "");
    }
    return BS_OK;
}

bs_err
bs_cmd_inspect(bs_cli *c)
{
    char *s;
    json_t *j, *v;
    size_t i;
    bs_err rv = bs_bundle_inspect(c->argv[0], &s, &c->err);

    if (rv != BS_OK)
        return rv;
    if (c->json) {
        puts(s);
        free(s);
        return BS_OK;
    }
    j = json_loads(s, 0, NULL);
    free(s);
    if (j == NULL)
        return BS_ENOMEM;
    printf("file:      %s (%lld bytes)\n",
           json_string_value(json_object_get(j, "file")),
           (long long)json_integer_value(json_object_get(j, "bytes")));
    v = json_object_get(j, "envelope");
    if (v)
        printf("from:      %s (%s)\nto:        %s\nmessage:   #%lld\n",
               json_string_value(json_object_get(v, "sender_name")),
               json_string_value(json_object_get(v, "sender")),
               json_string_value(json_object_get(v, "receiver")),
               (long long)json_integer_value(json_object_get(v, "message_no")));
    printf("framing:   %s\nchecksum:  %s\nsignature: %s\n",
           json_string_value(json_object_get(j, "framing")),
           json_string_value(json_object_get(j, "checksum")),
           json_string_value(json_object_get(j, "file_signature")));
    printf("change sets: %zu\n",
           json_array_size(json_object_get(j, "change_sets")));
    json_array_foreach(json_object_get(j, "change_sets"), i, v)
    {
        if (json_object_get(v, "origin") == NULL) {
            printf("  %zu: %s\n", i,
                   json_string_value(json_object_get(v, "error")));
            continue;
        }
        printf("  origin %.17s… seq %lld-%lld: %lld changes, %lld omitted, "
               "signature %s\n",
               json_string_value(json_object_get(v, "origin")),
               (long long)json_integer_value(json_object_get(v, "first_seq")),
               (long long)json_integer_value(json_object_get(v, "last_seq")),
               (long long)json_integer_value(json_object_get(v, "changes")),
               (long long)json_integer_value(json_object_get(v, "omitted")),
               json_string_value(json_object_get(v, "signature")));
    }
    json_decref(j);
    return BS_OK;
}

/* ---- conflicts / resolve ---- */

static bs_err
load_conflicts(bs_node *n, int all, json_t **out, bs_errbuf *err)
{
    bs_txn *t;
    bs_cursor *cur;
    bs_slice k, v;
    json_t *arr = json_array();
    bs_err rv;

    if ((rv = bs_store_read(n->store, &t, err)) != BS_OK)
        return rv;
    if ((rv = bs_cursor_open(t, BS_DB_CONFLICTS, &cur)) == BS_OK) {
        for (rv = bs_cursor_first(cur, &k, &v); rv == BS_OK;
             rv = bs_cursor_next(cur, &k, &v)) {
            json_t *j = json_loadb((const char *)v.p, v.n, 0, NULL);
            if (j == NULL)
                continue;
            json_object_del(j, "_streams");
            if (!all && json_is_true(json_object_get(j, "resolved")))
                json_decref(j);
            else
                json_array_append_new(arr, j);
        }
        bs_cursor_close(cur);
    }
    bs_txn_abort(t);
    if (rv != BS_ENOTFOUND) {
        json_decref(arr);
        return rv;
    }
    *out = arr;
    return BS_OK;
}

static void
print_value(json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

    printf("%s", s ? s : "?");
    free(s);
}

bs_err
bs_cmd_conflicts(bs_cli *c)
{
    json_t *arr, *x, *cand;
    size_t i, k;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    rv = load_conflicts(n, c->all, &arr, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    if (c->json) {
        print_json(arr);
        return BS_OK;
    }
    if (json_array_size(arr) == 0)
        printf("no %sconflicts\n", c->all ? "" : "open ");
    json_array_foreach(arr, i, x)
    {
        printf("%s  %s/%s field %s  policy %s  %s\n",
               json_string_value(json_object_get(x, "conflict")),
               json_string_value(json_object_get(x, "collection")),
               json_string_value(json_object_get(x, "id")),
               json_string_value(json_object_get(x, "field")),
               json_string_value(json_object_get(x, "policy")),
               json_is_true(json_object_get(x, "resolved")) ? "resolved"
                                                            : "OPEN");
        json_array_foreach(json_object_get(x, "candidates"), k, cand)
        {
            const char *o = json_string_value(json_object_get(cand, "origin"));
            printf("    %s %.17s… ",
                   strcmp(o, json_string_value(json_object_get(x, "winner")))
                       ? " "
                       : "*",
                   o);
            if (json_is_true(json_object_get(cand, "deleted")))
                printf("(deleted)\n");
            else {
                print_value(json_object_get(cand, "value"));
                printf("\n");
            }
        }
    }
    json_decref(arr);
    return BS_OK;
}

typedef struct resolve_ctx {
    const uint8_t *sk;
    const char *cid, *coll, *id, *field, *how;
    int deleted;
    bs_field f[1];
} resolve_ctx;

/* Keep the updated side of a delete/update conflict: write the record's
 * fields again, so the decision replicates and supersedes both sides. */
static bs_err
rewrite_record(bs_local *l, resolve_ctx *r, bs_errbuf *err)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, r->coll, r->id);
    bs_record rec;
    bs_field *f;
    bs_slice v;
    bs_arena a;
    bs_err rv;

    if ((rv = bs_txn_get(l->txn, BS_DB_RECORDS, bs_mem(key, klen), &v)) !=
        BS_OK)
        return rv;
    bs_arena_init(&a);
    if ((rv = bs_record_decode(&rec, v.p, v.n, &a)) != BS_OK)
        goto out;
    if (!rec.live || rec.nfields == 0) {
        rv = bs_errf(err, BS_EINVAL,
                     "%s/%s: the delete removed the updated fields; write "
                     "them again with put",
                     r->coll, r->id);
        goto out;
    }
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
    rv = bs_local_put(l, r->coll, r->id, f, rec.nfields, err);
out:
    bs_arena_fini(&a);
    return rv;
}

static bs_err
resolve_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    resolve_ctx *r = arg;
    bs_local l;
    bs_err rv;

    if ((rv = bs_local_begin(&l, t, r->sk, bs_clock_system, err)) != BS_OK)
        goto out;
    if (r->deleted)
        rv = bs_local_del(&l, r->coll, r->id, err);
    else if (strcmp(r->field, BS_CONFLICT_RECORD) != 0)
        rv = bs_local_put(&l, r->coll, r->id, r->f, 1, err);
    else
        rv = rewrite_record(&l, r, err);
    if (rv == BS_ENOTFOUND && r->deleted)
        rv = BS_OK; /* already deleted: nothing to write */
    if (rv == BS_OK)
        rv = bs_local_finish(&l, err);
    if (rv == BS_OK)
        rv = bs_conflict_mark_resolved(t, r->cid, r->how);
out:
    bs_local_fini(&l);
    return rv;
}

/* Pick the candidate of node `who` (name or ID). */
static json_t *
pick(bs_node *n, json_t *conf, const char *who)
{
    uint8_t pk[BS_PK_LEN];
    char id[BS_NODE_ID_LEN + 1];
    json_t *cand;
    size_t i;
    bs_txn *t;

    if (bs_node_id_parse(who, pk) != BS_OK) {
        if (strcmp(who, n->meta.name) == 0)
            memcpy(pk, n->meta.pk, BS_PK_LEN);
        else if (bs_store_read(n->store, &t, NULL) == BS_OK) {
            bs_err rv = bs_sys_member_by_name(t, who, pk);
            bs_txn_abort(t);
            if (rv != BS_OK)
                return NULL;
        }
    }
    bs_node_id_format(pk, id);
    json_array_foreach(json_object_get(conf, "candidates"), i, cand)
    {
        if (strcmp(json_string_value(json_object_get(cand, "origin")), id) == 0)
            return cand;
    }
    return NULL;
}

bs_err
bs_cmd_resolve(bs_cli *c)
{
    resolve_ctx r;
    json_t *conf = NULL, *val = NULL, *cand;
    char *s = NULL, how[160];
    bs_arena a;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    memset(&r, 0, sizeof r);
    if ((c->take == NULL) == (c->value == NULL))
        return bs_errf(&c->err, BS_EUSAGE,
                       "give exactly one of --take NODE or --value JSON");
    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    r.cid = c->argv[0];
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        rv = bs_conflict_get(t, r.cid, &s);
        bs_txn_abort(t);
    }
    if (rv == BS_ENOTFOUND) {
        rv = bs_errf(&c->err, BS_EINVAL, "no conflict %s (see conflicts --all)",
                     r.cid);
        goto out;
    }
    if (rv != BS_OK || (conf = json_loads(s, 0, NULL)) == NULL) {
        rv = rv != BS_OK ? rv : BS_ESTORE;
        goto out;
    }
    r.coll = json_string_value(json_object_get(conf, "collection"));
    r.id = json_string_value(json_object_get(conf, "id"));
    r.field = json_string_value(json_object_get(conf, "field"));
    if (c->take) {
        if ((cand = pick(n, conf, c->take)) == NULL) {
            rv =
                bs_errf(&c->err, BS_EINVAL,
                        "%s is not one of this conflict's candidates", c->take);
            goto out;
        }
        r.deleted = json_is_true(json_object_get(cand, "deleted"));
        val = json_incref(json_object_get(cand, "value"));
        snprintf(how, sizeof how, "took %s", c->take);
    } else {
        if ((val = json_loads(c->value, JSON_DECODE_ANY, NULL)) == NULL ||
            json_is_object(val) || json_is_array(val)) {
            rv = bs_errf(&c->err, BS_EINVAL,
                         "--value must be a JSON string, number, boolean or "
                         "null");
            goto out;
        }
        if (strcmp(r.field, BS_CONFLICT_RECORD) == 0) {
            rv = bs_errf(&c->err, BS_EINVAL,
                         "a delete/update conflict is settled with --take");
            goto out;
        }
        snprintf(how, sizeof how, "set by admin");
    }
    r.how = how;
    if (!r.deleted && strcmp(r.field, BS_CONFLICT_RECORD) != 0) {
        /* Build the one-field upsert through the JSON reader. */
        json_t *obj = json_pack("{s:O}", r.field, val);
        char *txt = json_dumps(obj, JSON_COMPACT);
        const char *jid;
        bs_field *f;
        size_t nf;
        json_decref(obj);
        rv = txt ? bs_json_fields(txt, strlen(txt), &a, &jid, &f, &nf, &c->err)
                 : BS_ENOMEM;
        free(txt);
        if (rv != BS_OK)
            goto out;
        r.f[0] = f[0];
    }
    if ((rv = bs_node_secret(n, &r.sk, &c->err)) == BS_OK)
        rv = bs_store_write(n->store, resolve_txn, &r, &c->err);
    if (rv == BS_OK) {
        bs_cli_notify(c, "changed");
        printf("%s resolved: %s\n", r.cid, how);
    }
out:
    json_decref(val);
    json_decref(conf);
    free(s);
    bs_arena_fini(&a);
    bs_node_close(n);
    return rv;
}

/* ---- purge ---- */

typedef struct purge_ctx {
    uint64_t retention_ms;
    bs_purge_stats st;
} purge_ctx;

static bs_err
purge_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    purge_ctx *p = arg;

    return bs_purge_tombstones(t, now_ms(), p->retention_ms, &p->st, err);
}

bs_err
bs_cmd_purge(bs_cli *c)
{
    purge_ctx p = {0};
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    p.retention_ms = (uint64_t)n->cfg.retention_days * 86400000ull;
    rv = bs_store_write(n->store, purge_txn, &p, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    if (c->json)
        print_json(json_pack("{s:I, s:I, s:I, s:I}", "tombstones",
                             (json_int_t)p.st.tombstones, "purged",
                             (json_int_t)p.st.purged, "held_by_peers",
                             (json_int_t)p.st.held_by_peers, "too_recent",
                             (json_int_t)p.st.too_recent));
    else
        printf("%llu tombstones: %llu purged, %llu wait for peers' "
               "acknowledgement, %llu younger than the retention limit\n",
               (unsigned long long)p.st.tombstones,
               (unsigned long long)p.st.purged,
               (unsigned long long)p.st.held_by_peers,
               (unsigned long long)p.st.too_recent);
    return BS_OK;
}
