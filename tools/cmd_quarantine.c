/*
 * cmd_quarantine.c - quarantine: the quarantined streams with both
 * competing versions; quarantine release: the hub's decision, which
 * replicates (replication/quarantine.h).
 */
#include <stdio.h>
#include <string.h>

#include "../replication/crypto.h"
#include "../replication/quarantine.h"
#include "cli.h"
#include "output.h"

static json_t *
version_json(const bs_qversion *q)
{
    char hash[2 * BS_HASH_LEN + 1];

    bs_hex(hash, q->hash, BS_HASH_LEN);
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:b}", "hash", hash, "first",
                     (json_int_t)q->first, "last", (json_int_t)q->last,
                     "created_ms", (json_int_t)q->created_ms, "changes",
                     (json_int_t)q->changes, "here", q->here);
}

static void
print_version(const char *label, const bs_qversion *q)
{
    char hash[2 * BS_HASH_LEN + 1], when[64];

    if (q->first == 0) {
        printf("  %-6s (none held)\n", label);
        return;
    }
    bs_hex(hash, q->hash, BS_HASH_LEN);
    bs_out_time(when, sizeof when, (int64_t)(q->created_ms / 1000), 1);
    printf("  %-6s %s  seq %llu-%llu, created %s, %llu %s\n", label, hash,
           (unsigned long long)q->first, (unsigned long long)q->last, when,
           (unsigned long long)q->changes, BS_PL(q->changes, "change"));
}

static void
print_list(const bs_qstream *v, size_t n, int json)
{
    char id[BS_NODE_ID_LEN + 1], inc[2 * BS_INC_LEN + 1];
    json_t *a = json ? json_array() : NULL;

    for (size_t i = 0; i < n; i++) {
        bs_node_id_format(v[i].origin, id);
        bs_hex(inc, v[i].inc, BS_INC_LEN);
        if (json) {
            json_array_append_new(
                a, json_pack("{s:s, s:s, s:I, s:I, s:s, s:[o,o]}", "origin", id,
                             "incarnation", inc, "seq", (json_int_t)v[i].seq,
                             "fork", (json_int_t)v[i].fork, "note", v[i].note,
                             "versions", version_json(&v[i].v[0]),
                             version_json(&v[i].v[1])));
            continue;
        }
        printf("%s (incarnation %.8s): two versions from seq %llu (%s)\n", id,
               inc, (unsigned long long)v[i].fork, v[i].note);
        print_version("here", &v[i].v[0]);
        print_version("other", &v[i].v[1]);
    }
    if (json)
        bs_out_json(json_pack("{s:o}", "quarantined", a));
    else if (n == 0)
        printf("no quarantined stream\n");
    else
        printf("the head office keeps one: branchsync quarantine release "
               "ORIGIN --keep HASH\n");
}

static bs_err
list(bs_cli *c)
{
    bs_qstream *v = NULL;
    size_t n = 0;
    bs_node *nd;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &nd)) != BS_OK)
        return rv;
    if ((rv = bs_store_read(nd->store, &t, &c->err)) == BS_OK) {
        rv = bs_quarantine_list(t, &v, &n);
        bs_txn_abort(t);
    }
    bs_node_close(nd);
    if (rv != BS_OK)
        return bs_errf(&c->err, rv, "cannot read the quarantined streams: %s",
                       bs_strerror(rv));
    print_list(v, n, c->json);
    free(v);
    return BS_OK;
}

static bs_err
release(bs_cli *c)
{
    char hash[2 * BS_HASH_LEN + 1];
    bs_qrelease q;
    bs_core core;
    bs_node *n;
    bs_err rv;

    if (c->keep == NULL)
        return bs_errf(&c->err, BS_EUSAGE,
                       "quarantine release needs --keep HASH (branchsync "
                       "quarantine lists the versions)");
    if ((rv = bs_cli_core(c, 1, &n, &core)) != BS_OK)
        return rv;
    rv = bs_quarantine_release(&core, c->argv[1], c->keep, &q, &c->err);
    bs_node_close(n);
    if (rv != BS_OK)
        return rv;
    bs_cli_notify(c, "changed");
    bs_hex(hash, q.keep, BS_HASH_LEN);
    if (c->json)
        bs_out_json(
            json_pack("{s:s, s:s, s:I, s:I, s:I}", "released", c->argv[1],
                      "keep", hash, "seq", (json_int_t)q.seq, "dropped",
                      (json_int_t)q.dropped, "rebuilt", (json_int_t)q.rebuilt));
    else
        printf("released %s: kept %.16s from seq %llu (%llu %s dropped "
               "here, %llu %s rebuilt); the decision replicates to every "
               "office\n",
               c->argv[1], hash, (unsigned long long)q.seq,
               (unsigned long long)q.dropped, BS_PL(q.dropped, "set"),
               (unsigned long long)q.rebuilt, BS_PL(q.rebuilt, "record"));
    return BS_OK;
}

bs_err
bs_cmd_quarantine(bs_cli *c)
{
    if (c->argc == 0) {
        if (c->keep != NULL)
            return bs_errf(&c->err, BS_EUSAGE,
                           "--keep goes with quarantine release ORIGIN");
        return list(c);
    }
    if (strcmp(c->argv[0], "release") != 0 || c->argc != 2)
        return bs_errf(&c->err, BS_EUSAGE,
                       "usage: branchsync quarantine [release ORIGIN --keep "
                       "HASH]");
    return release(c);
}
