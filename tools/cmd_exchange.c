/*
 * cmd_exchange.c - the offline exchange (export, import, inspect) and the
 * conflict register (conflicts, resolve).
 */
#include <string.h>

#include "../node/client.h"
#include "../replication/bundle.h"
#include "../replication/json.h"
#include "../replication/members.h"
#include "../replication/resolution.h"
#include "cli.h"
#include "output.h"

static uint64_t
now_ms(void)
{
    return bs_clock_system.now_ms(NULL);
}

bs_err
bs_cmd_export(bs_cli *c)
{
    uint64_t started = now_ms();
    bs_xstats st;
    bs_core core;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    rv = (c->seed ? bs_bundle_export_seed : bs_bundle_export)(
        core.store, core.sk, c->argv[0], c->argv[1], bs_core_now(&core),
        core.retention_ms, &st, &c->err);
    if (rv == BS_OK) {
        bs_session_stats ss = {0};
        ss.sets_sent = st.sets;
        ss.bytes_out = st.bytes;
        bs_client_log(n, c->argv[0], "file", "out", &ss, started, NULL);
    }
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    if (c->json)
        bs_out_json(json_pack(
            "{s:s, s:s, s:I, s:I, s:I}", "peer", c->argv[0], "file", c->argv[1],
            "change_sets", (json_int_t)st.sets, "snapshots",
            (json_int_t)st.snapshots, "bytes", (json_int_t)st.bytes));
    else if (c->seed || st.seed)
        printf("exported a seed of %llu %s and %llu record %s (%llu %s) "
               "for %s to %s\n",
               (unsigned long long)st.sets, BS_PL(st.sets, "change set"),
               (unsigned long long)st.snapshots,
               BS_PL(st.snapshots, "snapshot"), (unsigned long long)st.bytes,
               BS_PL(st.bytes, "byte"), c->argv[0], c->argv[1]);
    else
        printf("exported %llu %s (%llu %s) for %s to %s\n",
               (unsigned long long)st.sets, BS_PL(st.sets, "change set"),
               (unsigned long long)st.bytes, BS_PL(st.bytes, "byte"),
               c->argv[0], c->argv[1]);
    return BS_OK;
}

bs_err
bs_cmd_import(bs_cli *c)
{
    uint64_t started = now_ms();
    bs_xstats st;
    bs_core core;
    bs_node *n;
    bs_err rv;

    if ((rv = bs_cli_need(c, c->argv[0], "file")) != BS_OK ||
        (rv = bs_cli_open(c, 0, &n)) != BS_OK)
        return rv;
    /* A branch with local writes re-signs them when it joins. */
    if ((rv = bs_node_core(n, !n->meta.joined, &core, &c->err)) != BS_OK)
        goto out;
    rv = bs_bundle_import(core.store, core.sk, c->argv[0], core.clock,
                          core.max_skew_ms, core.retention_ms, &st, &c->err);
    if (rv != BS_OK && st.offered > 0) {
        /* Pass 2 failed: the groups committed before the failure stay. */
        char why[BS_ERRMSG_LEN];
        snprintf(why, sizeof why, "%s", bs_errmsg(&c->err, rv));
        rv = bs_errf(&c->err, rv,
                     "%s; %llu of %llu change sets were committed before "
                     "the failure (importing the file again finishes the "
                     "job)",
                     why,
                     (unsigned long long)(st.sets + st.dup_sets + st.held +
                                          st.quarantined),
                     (unsigned long long)st.offered);
    }
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
    if (st.changes > 0 || st.snapshots > 0)
        bs_cli_notify(c, "changed");
    if (c->json) {
        json_t *j = json_pack(
            "{s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "peer",
            st.peer, "replay", st.replay, "joined", st.joined, "change_sets",
            (json_int_t)st.sets, "duplicate_sets", (json_int_t)st.dup_sets,
            "changes", (json_int_t)st.changes, "conflicts",
            (json_int_t)st.conflicts, "held", (json_int_t)st.held,
            "quarantined", (json_int_t)st.quarantined, "record_snapshots",
            (json_int_t)st.snapshots);
        if (j != NULL && st.reseeded) /* only then: absent otherwise */
            json_object_set_new(j, "reseeded",
                                json_pack("{s:I, s:I}", "reissued",
                                          (json_int_t)st.reissued, "dropped",
                                          (json_int_t)st.reseed_dropped));
        bs_out_json(j);
    } else
        bs_out_import(&st);
    return BS_OK;
}

/*
 * The first check the file fails, in the order inspect prints them
 * (framing, checksum, file signature, then each change set), as an error
 * for exit 2; BS_OK when every check passed.
 */
static bs_err
inspect_verdict(bs_cli *c, const bs_inspect *in)
{
    const char *f = c->argv[0];

    if (strcmp(in->framing, "ok") != 0)
        return bs_errf(&c->err, BS_EMALFORMED,
                       "%s: framing %s: the file is damaged or cut short", f,
                       in->framing);
    if (strcmp(in->checksum, "valid") != 0)
        return bs_errf(&c->err, BS_EMALFORMED,
                       "%s: checksum %s: the file is damaged or was altered", f,
                       in->checksum);
    if (strcmp(in->file_signature, "valid") != 0)
        return bs_errf(&c->err, BS_EBADSIG,
                       "%s: file signature %s: not signed by the sender it "
                       "names",
                       f, in->file_signature);
    for (size_t i = 0; i < in->nsets; i++) {
        if (!in->sets[i].decoded)
            return bs_errf(&c->err, BS_EMALFORMED,
                           "%s: change set %zu does not decode: %s", f, i,
                           in->sets[i].error);
        if (!in->sets[i].signature_ok)
            return bs_errf(&c->err, BS_EBADSIG,
                           "%s: change set %zu: signature INVALID", f, i);
    }
    return BS_OK;
}

bs_err
bs_cmd_inspect(bs_cli *c)
{
    bs_inspect in;
    bs_err rv;

    if ((rv = bs_cli_need(c, c->argv[0], "file")) != BS_OK ||
        (rv = bs_bundle_inspect(c->argv[0], &in, &c->err)) != BS_OK)
        return rv;
    if (c->json)
        bs_out_json(bs_render_inspect(c->argv[0], &in));
    else
        bs_out_inspect(c->argv[0], &in);
    /* What was found is printed; a failed check still makes it exit 2. */
    fflush(stdout);
    rv = inspect_verdict(c, &in);
    bs_inspect_fini(&in);
    return rv;
}

/*
 * Who wrote one side of a conflict, for people: this node's name, the name
 * this node gave the peer, the member's own name, else the first 17
 * characters of the node ID.
 */
static void
who(bs_txn *t, const bs_meta *self, const uint8_t pk[BS_PK_LEN], char *buf,
    size_t n)
{
    char id[BS_NODE_ID_LEN + 1];
    bs_member m;
    bs_peer p;

    if (memcmp(pk, self->pk, BS_PK_LEN) == 0) {
        snprintf(buf, n, "%s", self->name);
        return;
    }
    if (bs_peer_find_pk(t, pk, &p) == BS_OK) {
        snprintf(buf, n, "%s", p.name);
        bs_peer_fini(&p);
        return;
    }
    if (bs_members_get(t, self, pk, &m) != BS_ESTORE && m.name[0] != '\0') {
        snprintf(buf, n, "%s", m.name);
        return;
    }
    bs_node_id_format(pk, id);
    snprintf(buf, n, "%.17s…", id);
}

bs_err
bs_cmd_conflicts(bs_cli *c)
{
    bs_conflict_iter *it = NULL;
    const bs_conflict *cf;
    json_t *arr = c->json ? json_array() : NULL;
    size_t count = 0;
    bs_node *n;
    bs_txn *t = NULL;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK)
        return rv;
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK &&
        (rv = bs_conflict_iter_open(t, c->all, &it)) == BS_OK)
        while ((rv = bs_conflict_iter_next(it, &cf)) == BS_OK) {
            char names[2][BS_NODE_NAME_MAX + 32];

            count++;
            if (arr != NULL) {
                json_array_append_new(arr, bs_render_conflict(cf));
                continue;
            }
            for (int k = 0; k < 2; k++)
                who(t, &n->meta, cf->side[k].key, names[k], sizeof names[k]);
            bs_out_conflict(cf, names);
        }
    if (rv == BS_ESTORE)
        rv = bs_errf(&c->err, rv,
                     "store is corrupt: a conflict record does not decode; "
                     "restore from a backup");
    bs_conflict_iter_close(it);
    bs_txn_abort(t);
    bs_node_close(n);
    if (rv != BS_ENOTFOUND) {
        json_decref(arr);
        return rv;
    }
    if (arr != NULL)
        bs_out_json(arr);
    else if (count == 0)
        printf("no %sconflicts\n", c->all ? "" : "open ");
    return BS_OK;
}

bs_err
bs_cmd_resolve(bs_cli *c)
{
    char how[BS_CONFLICT_HOW_MAX + 1];
    bs_resolve_req r = {c->take, NULL};
    bs_value val;
    bs_arena a;
    bs_core core;
    bs_node *n;
    bs_err rv;

    if ((c->take == NULL) == (c->value == NULL))
        return bs_errf(&c->err, BS_EUSAGE,
                       "give exactly one of --take NODE or --value JSON");
    bs_arena_init(&a);
    if (c->value != NULL) {
        if ((rv = bs_json_value(c->value, strlen(c->value), &a, &val,
                                &c->err)) != BS_OK) {
            bs_arena_fini(&a);
            return bs_errf(&c->err, rv,
                           "--value must be a JSON string, number, boolean "
                           "or null");
        }
        r.value = &val;
    }
    if ((rv = bs_cli_core(c, 1, &n, &core)) == BS_OK)
        rv = bs_resolution_apply(&core, c->argv[0], &r, how, &c->err);
    bs_node_close(n);
    bs_arena_fini(&a);
    if (rv != BS_OK)
        return rv;
    bs_cli_notify(c, "changed");
    if (c->json)
        bs_out_json(
            json_pack("{s:s, s:s}", "conflict", c->argv[0], "resolution", how));
    else
        printf("%s resolved: %s\n", c->argv[0], how);
    return BS_OK;
}
