/*
 * cmd_verify.c - `verify`: the whole-store check (replication/verify.h) in
 * one read transaction, so it may run while the node works.
 */
#include <string.h>

#include "../replication/verify.h"
#include "cli.h"
#include "output.h"

#define FINDINGS_SHOWN 1000 /* --json lists at most this many */

typedef struct collect {
    json_t *list; /* NULL: only count */
} collect;

static int
on_finding(void *ctx, const char *line)
{
    collect *k = ctx;

    if (k->list != NULL)
        json_array_append_new(k->list, json_string(line));
    /* Go on: the count is part of the answer; past the cap, stop. */
    return k->list != NULL && json_array_size(k->list) >= FINDINGS_SHOWN;
}

static json_t *
render(const bs_verify_stats *st, json_t *findings)
{
    return json_pack(
        "{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:o}",
        "ok", st->findings == 0, "records", (json_int_t)st->records, "live",
        (json_int_t)st->live, "streams", (json_int_t)st->streams, "change_sets",
        (json_int_t)st->sets, "changes", (json_int_t)st->changes, "held",
        (json_int_t)st->held, "conflicts", (json_int_t)st->conflicts, "peers",
        (json_int_t)st->peers, "exchange_log", (json_int_t)st->xlog, "versions",
        (json_int_t)st->versions, "versions_against_log",
        (json_int_t)st->crosschecked, "streams_not_cross_checked",
        (json_int_t)st->unchecked_streams, "finding_count",
        (json_int_t)st->findings, "findings", findings);
}

static void
print_ok(const bs_verify_stats *st)
{
    printf("store verified: %llu records (%llu live), %llu streams, %llu "
           "change sets with %llu changes, %llu held sets, %llu conflicts, "
           "%llu peers, %llu exchange-log entries; %llu versions checked, "
           "%llu of them against the change that wrote them: no damage "
           "found\n",
           (unsigned long long)st->records, (unsigned long long)st->live,
           (unsigned long long)st->streams, (unsigned long long)st->sets,
           (unsigned long long)st->changes, (unsigned long long)st->held,
           (unsigned long long)st->conflicts, (unsigned long long)st->peers,
           (unsigned long long)st->xlog, (unsigned long long)st->versions,
           (unsigned long long)st->crosschecked);
    if (st->unchecked_streams)
        printf("(%llu streams were not compared with the records: more "
               "changes than the check keeps in memory)\n",
               (unsigned long long)st->unchecked_streams);
}

/* "store is corrupt: FIRST (and N more); restore from a backup". */
static void
add_count(bs_cli *c, uint64_t n)
{
    static const char tail[] = "; restore from a backup";
    char first[BS_ERRMSG_LEN];
    size_t len = strlen(c->err.msg);

    if (n < 2 || len < sizeof tail - 1 ||
        strcmp(c->err.msg + len - (sizeof tail - 1), tail) != 0)
        return;
    snprintf(first, sizeof first, "%.*s", (int)(len - (sizeof tail - 1)),
             c->err.msg);
    bs_errf(&c->err, BS_ESTORE, "%s (and %llu more problem%s)%s", first,
            (unsigned long long)(n - 1), n == 2 ? "" : "s", tail);
}

bs_err
bs_cmd_verify(bs_cli *c)
{
    collect k = {c->json ? json_array() : NULL};
    bs_verify_opts o = {on_finding, &k};
    bs_verify_stats st;
    bs_node *n;
    bs_txn *t;
    bs_err rv;

    if ((rv = bs_cli_open(c, 1, &n)) != BS_OK) {
        json_decref(k.list);
        /* Metadata that does not read is a finding like any other. */
        if (rv == BS_ESTORE && strncmp(c->err.msg, "store is corrupt", 16))
            rv = bs_errf(&c->err, rv,
                         "store is corrupt: %s; restore from a "
                         "backup",
                         bs_errmsg(&c->err, rv));
        return rv;
    }
    if ((rv = bs_store_read(n->store, &t, &c->err)) == BS_OK) {
        rv = bs_verify_store(t, &o, &st, &c->err);
        bs_txn_abort(t);
    }
    bs_node_close(n);
    if (rv != BS_OK && rv != BS_ESTORE) {
        json_decref(k.list);
        return rv;
    }
    if (c->json)
        bs_out_json(render(&st, k.list));
    else if (rv == BS_OK)
        print_ok(&st);
    if (rv == BS_ESTORE)
        add_count(c, st.findings);
    return rv;
}
