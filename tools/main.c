/*
 * main.c - branchsync: option parsing, the command table and help.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../node/fault.h"
#include "../replication/crypto.h"
#include "cli.h"

enum {
    O_DIR = 1u << 0,
    O_JSON = 1u << 1,
    O_NAME = 1u << 2,
    O_ROLE = 1u << 3,
    O_LISTEN = 1u << 4,
    O_SCHEDULE = 1u << 5,
    O_WINDOW = 1u << 6,
    O_BATCH = 1u << 7,
    O_ALL = 1u << 8,
    O_TAKE = 1u << 9,
    O_VALUE = 1u << 10,
    O_WRITERS = 1u << 11,
    O_SCOPE = 1u << 12,
    O_OWNER = 1u << 13,
    O_POLICY = 1u << 14,
    O_QUIET = 1u << 15,
    O_HUB = 1u << 16,
    O_KEEP = 1u << 17,
    O_HTTP = 1u << 18,
    O_FORMAT = 1u << 19, /* --format, --delimiter (load, dump) */
    O_LOADX = 1u << 20,  /* --mode --on-error --report --id-field --types */
    O_FIELDS = 1u << 21, /* --fields (dump) */
    O_UNIQUE = 1u << 22, /* --unique (collection) */
    O_FORCE = 1u << 23,  /* --force (put) */
    O_BACKUP = 1u << 24, /* --backup (schedule) */
    O_SEED = 1u << 25,   /* --seed (export) */
    O_REGION = 1u << 26, /* --region (peer add) */
    O_VIA = 1u << 27,    /* --via REGION (member add) */
    O_DRYRUN = 1u << 28, /* --dry-run (compact) */
    O_LAST = O_DRYRUN,
};

typedef struct cmd {
    const char *name;
    bs_cmd_fn fn;
    unsigned opts;
    int min, max;
    const char *usage;
    const char *summary;
    const char *help;
} cmd;

static const cmd cmds[] = {
    {"init", bs_cmd_init, O_DIR | O_JSON | O_NAME | O_ROLE | O_LISTEN | O_HTTP,
     0, 0,
     "init -d DIR --name NAME [--role hub|branch] [--listen ENDPOINT] "
     "[--http ADDR]",
     "create a node: store, configuration and identity keys",
     "Creates DIR (mode 0700, and its missing parents) with a new Ed25519\n"
     "identity key (keys/node.key, mode 0600), a configuration file and an\n"
     "empty store.  A hub founds a new infobase; a branch (the default)\n"
     "joins one on its first exchange with the hub.  NAME: 1-64 of A-Z a-z\n"
     "0-9 _ . - starting with a letter or digit.  ENDPOINT: where peers\n"
     "reach this node, e.g. tcp://0.0.0.0:7400; without --listen the node\n"
     "only calls out.  --http HOST:PORT: where branchsyncd serves the HTTP\n"
     "API ([http] listen, default 127.0.0.1:7480; off: none; an address\n"
     "other than loopback needs [http] cert and key).  The API's token is\n"
     "made in keys/api.token (see api-token).  Refuses a directory that\n"
     "already holds a node.\n"},
    {"api-token", bs_cmd_api_token, O_DIR | O_JSON, 0, 0, "api-token",
     "print the HTTP API's bearer token",
     "Prints the token every HTTP API request but GET /health and GET\n"
     "/metrics sends as 'Authorization: Bearer TOKEN' (docs/api.md).  It\n"
     "lives in DIR/keys/api.token (mode 0600); a node made before the HTTP\n"
     "API gets one here or at its daemon's next start.\n"},
    {"dashboard", bs_cmd_dashboard, O_DIR | O_JSON, 0, 0, "dashboard",
     "print the web dashboard's URL, with the token to log in",
     "Prints http://ADDR/#token=TOKEN: open it in a browser to see the\n"
     "peers, conflicts, exchanges and records of the node, live (branchsyncd\n"
     "serves the page at / on [http] listen; https with [http] cert).  The\n"
     "token rides in the URL's fragment, which the browser never sends to\n"
     "the server; the page keeps it for the tab only.  Treat the URL as the\n"
     "token itself.  Exit 1 when the HTTP API is off.\n"},
    {"id", bs_cmd_id, O_DIR | O_JSON | O_QUIET, 0, 0, "id [-q]",
     "print the node's name and ID",
     "Prints the node's name and its ID: the printable form of its public\n"
     "key, which is all another node needs to pair with it.  With -q\n"
     "(--quiet) prints the ID alone, ready to paste into 'peer add'.\n"},
    {"put", bs_cmd_put, O_DIR | O_JSON | O_FORCE, 3, 3,
     "put COLLECTION ID JSON|-|@FILE [--force]",
     "upsert the given fields of a record",
     "JSON is a flat object of strings, numbers, booleans and nulls; the\n"
     "given fields are written, others are kept.  An \"id\" key, if present,\n"
     "must equal ID; it is never stored as a field.  - reads the JSON from\n"
     "stdin, @FILE from FILE (for records beyond the argument limit).\n"
     "A value of a unique key (collection --unique) that another live record\n"
     "holds exits 2; --force writes it, and the duplicate is a conflict.\n"},
    {"get", bs_cmd_get, O_DIR | O_JSON, 2, 2, "get COLLECTION ID",
     "print a record as JSON",
     "Prints the record's fields plus \"id\".  A missing or deleted record\n"
     "exits 1 with \"not found\".\n"},
    {"del", bs_cmd_del, O_DIR | O_JSON, 2, 2, "del COLLECTION ID",
     "delete a record",
     "Deletes the record (a tombstone replicates the delete).  A missing\n"
     "record exits 1 with \"not found\".\n"},
    {"ls", bs_cmd_ls, O_DIR | O_JSON, 1, 1, "ls COLLECTION",
     "list a collection as JSON Lines",
     "Prints one JSON object per live record, each with its \"id\", in ID\n"
     "order.\n"},
    {"load", bs_cmd_load,
     O_DIR | O_JSON | O_BATCH | O_QUIET | O_FORMAT | O_LOADX, 2, 2,
     "load COLLECTION FILE [--format jsonl|csv] [--mode upsert|add-only|"
     "update-only] [--on-error stop|skip] [--report FILE] [--batch N]",
     "bulk load from JSON Lines or CSV (FILE or - for stdin)",
     "jsonl (default): each line is a JSON object with its \"id\".  csv: a\n"
     "header row of field names, an id column (or --id-field F), RFC 4180\n"
     "quoting, --delimiter C, --types name:number,vip:bool,... (strings\n"
     "otherwise); an empty unquoted cell is no field, \"\" the empty string.\n"
     "--mode: upsert (default), add-only (leave live records alone),\n"
     "update-only (leave absent ones alone).  The whole input is checked\n"
     "first: bad input exits 2 and writes nothing; with --on-error skip,\n"
     "bad rows and records the rules refuse are left out and reported.\n"
     "--report FILE: one JSON object per record: id, action (inserted,\n"
     "updated, unchanged, skipped), reason.  Records are written N per\n"
     "transaction (default 100000; one transaction when the rules could\n"
     "refuse one, without skip).  See docs/formats.md.\n"},
    {"dump", bs_cmd_dump, O_DIR | O_FORMAT | O_FIELDS, 1, 2,
     "dump COLLECTION [FILE|-] [--format jsonl|csv] [--fields F,...] "
     "[--delimiter C]",
     "write a collection as JSON Lines or CSV",
     "Writes the live records in ID order to FILE (atomically) or stdout.\n"
     "csv: a header row (id, then --fields or every field name, sorted);\n"
     "cells quoted as RFC 4180 needs; a missing or null field is an empty\n"
     "cell, the empty string \"\".  A dump loads back to an equal digest\n"
     "(csv: give load --types for the number and bool columns).\n"},
    {"cml", bs_cmd_cml, O_DIR | O_JSON | O_BATCH | O_QUIET | O_LOADX, 2, 3,
     "cml import FILE [--on-error stop|skip] [--report FILE] [--mode M] | "
     "cml export orders FILE",
     "CommerceML 2 in and out: catalogs, offers, orders",
     "import: a CommerceML 2 document (schema 2.03-2.10, UTF-8 or\n"
     "windows-1251) of 1C or a web shop: the classifier, the catalog, offers\n"
     "and orders go into product_groups, properties, property_values,\n"
     "price_types, products, offers, counterparties, orders and order_lines\n"
     "(docs/formats.md).  The whole document is checked first: bad input\n"
     "exits 2 naming the line and writes nothing; with --on-error skip, an\n"
     "entity without its Ид (or with a bad number) is left out and\n"
     "reported.  Unknown elements are skipped and counted.  --report FILE\n"
     "and --mode as for load.  export orders: the orders with their lines\n"
     "and buyers as one CommerceML 2 document, which imports back to the\n"
     "same records.\n"},
    {"digest", bs_cmd_digest, O_DIR | O_JSON, 0, 1024, "digest [COLLECTION...]",
     "hash of the live user data",
     "Prints a BLAKE2b-256 hash of the live records (of the given\n"
     "collections, or of all user collections): equal on nodes holding the\n"
     "same records, whatever their history.\n"},
    {"peer", bs_cmd_peer, O_DIR | O_JSON | O_SCHEDULE | O_HUB | O_REGION, 1, 4,
     "peer add NAME ENDPOINT NODE_ID [--schedule SPEC] [--hub] [--region] | "
     "peer ls | peer rm NAME | peer seed NAME",
     "pair with a node, list or remove peers",
     "add: pair with the node whose ID (from its 'branchsync id') is NODE_ID,\n"
     "reachable at ENDPOINT (tcp://HOST:PORT; HOST a name or address, not a\n"
     "wildcard such as * or 0.0.0.0), or through a shared drop folder\n"
     "(dir:/ABSOLUTE/PATH: each run imports the peer's exchange files found\n"
     "there and writes what it lacks).  On the hub this also\n"
     "introduces the node to every office as a member of the infobase.\n"
     "SPEC: online, manual (default), \"every 15m\", or a cron expression.\n"
     "--hub (on a branch): NAME is the hub this branch joins, and takes the\n"
     "pin from a peer pinned only for being first; a second --hub is refused.\n"
     "Without --hub, the first peer paired on an empty peer list is the hub,\n"
     "and later pairings never move it.  Before joining, an exchange from\n"
     "any other peer that claims to be the hub is refused.  After 'peer rm'\n"
     "of the pinned hub no peer is pinned, and a peer paired later is pinned\n"
     "only with --hub or when it is the only peer.  'peer ls' marks the hub.\n"
     "rm: forget a peer; on the hub its key is revoked for new changes.\n"
     "seed (the hub): the peer's next exchange, by file or network, seeds it\n"
     "with the records of its scope as they are now instead of the history.\n"
     "--region (on the hub): NAME is a regional hub: it receives every\n"
     "change, keeps every record and relays to its branches, filtered by\n"
     "their scopes (see 'member add').  Its branches pair with it using\n"
     "--hub.\n"},
    {"member", bs_cmd_member, O_DIR | O_JSON | O_VIA, 2, 3,
     "member add NAME NODE_ID --via REGION | member rm NAME",
     "(hub) admit or revoke a branch served by a regional hub",
     "add: introduce the node whose ID is NODE_ID as a member named NAME\n"
     "that exchanges with the regional hub REGION (paired here with\n"
     "'peer add … --region'), not with this hub; status lists it under\n"
     "REGION.  rm: revoke it, as 'peer rm' revokes a peer.\n"},
    {"collection", bs_cmd_collection,
     O_DIR | O_JSON | O_POLICY | O_WRITERS | O_SCOPE | O_OWNER | O_UNIQUE, 1, 1,
     "collection NAME [--policy P] [--writers W] [--scope S] "
     "[--owner-field FIELD] [--unique FIELD]",
     "(hub) declare a collection's rules; replicates.  Alone: show them",
     "--policy: field-lww, per field the later write wins (default);\n"
     "priority, the hub's write wins a conflict, then field-lww; manual, a\n"
     "provisional winner is applied and the conflict stays open until\n"
     "'resolve'.  --writers: all (default), hub (only the head office\n"
     "writes), owner (a branch writes only the records whose owner field\n"
     "names it, and cannot take over another's).  Every node refuses a\n"
     "change the rules in effect at its time forbid.  --scope: shared\n"
     "(default), every office receives the records; owner, the hub and the\n"
     "owning branch only.  --unique FIELD: FIELD is a natural key; two live\n"
     "records with one value are a `duplicate` conflict on every node\n"
     "(settle it with 'merge'), and a local write that repeats a value the\n"
     "node knows exits 2 unless 'put --force' (--unique none: no key).\n"
     "Only the options given change.\n"},
    {"merge", bs_cmd_merge, O_DIR | O_JSON, 3, 3,
     "merge COLLECTION KEEP_ID OTHER_ID",
     "settle a duplicate: OTHER becomes a tombstone pointing to KEEP",
     "One local write that replicates: OTHER_ID is deleted and a pointer\n"
     "branchsync.merges/COLLECTION/OTHER_ID names KEEP_ID, so 'get' of\n"
     "OTHER_ID says where it went and every node settles the duplicate\n"
     "conflict between them.  Both records must be live.\n"},
    {"export", bs_cmd_export, O_DIR | O_JSON | O_SEED, 2, 2,
     "export PEER FILE [--seed]",
     "write what PEER has not acknowledged to an exchange file",
     "The file is signed and checksummed; carry it to the peer and run\n"
     "'branchsync import FILE' there.  --seed (the hub, for a new branch):\n"
     "the file seeds PEER with the records of its scope as they are now\n"
     "instead of the whole history; later exports continue from there.\n"},
    {"import", bs_cmd_import, O_DIR | O_JSON, 1, 1, "import FILE",
     "verify and apply an exchange file",
     "Everything is verified before anything is applied; a file already\n"
     "imported is a no-op (\"nothing new\").  Tampered, truncated, forged or\n"
     "foreign files exit 2 and change nothing.\n"},
    {"inspect", bs_cmd_inspect, O_DIR | O_JSON, 1, 1, "inspect FILE",
     "show an exchange file's sender, change sets and signature status",
     "Reads the file without applying anything.  Exits 2 after printing\n"
     "when a check fails (framing, checksum, file signature, a change set's\n"
     "decoding or signature), naming the first on stderr.\n"},
    {"conflicts", bs_cmd_conflicts, O_DIR | O_JSON | O_ALL, 0, 0,
     "conflicts [--all]", "list open (or all) conflicts",
     "Each conflict names the collection, record, field, the competing\n"
     "values with their origins and clocks, the winner and the policy.\n"},
    {"resolve", bs_cmd_resolve, O_DIR | O_JSON | O_TAKE | O_VALUE, 1, 1,
     "resolve CONFLICT (--take NODE | --value JSON)",
     "settle a conflict; the resolution replicates as a change",
     "--take NODE keeps that node's value (NODE: name or ID); --value sets a\n"
     "new one.\n"},
    {"backup", bs_cmd_backup, O_DIR | O_JSON, 1, 1, "backup FILE",
     "consistent online copy of the store",
     "Writes a compacted copy of the store (LMDB) to FILE, mode 0600, while\n"
     "the node keeps working.  The secret key is never in a backup.\n"},
    {"restore", bs_cmd_restore, O_DIR | O_JSON, 1, 1, "restore FILE",
     "restore the store from a backup; starts a new incarnation",
     "Replaces the store of the node in DIR (stop its daemon first) with\n"
     "the backup, which must be of this same node.  The node then writes\n"
     "under a new incarnation, and its peers send back the changes it made\n"
     "after the backup.\n"},
    {"verify", bs_cmd_verify, O_DIR | O_JSON, 0, 0, "verify",
     "check the whole store for damage",
     "Reads every entry of every table in one read transaction (the node may\n"
     "keep working) and checks what LMDB cannot: that every record and\n"
     "stored change set decodes, every set is signed by its origin and\n"
     "chained to the one before, the records agree with the changes that\n"
     "wrote them, and the tables agree with each other.  Exit 0 says what\n"
     "was checked; exit 1 \"store is corrupt: ...; restore from a backup\"\n"
     "names the first problem (--json lists them all).  'backup' runs the\n"
     "same check first.\n"},
    {"purge", bs_cmd_purge, O_DIR | O_JSON, 0, 0, "purge",
     "drop tombstones every peer has acknowledged",
     "A deleted record's tombstone is dropped once every paired peer has\n"
     "acknowledged the delete and it is older than the retention limit\n"
     "([sync] retention_days, default 90).  Peers silent for longer than\n"
     "that no longer hold purges back.\n"},
    {"compact", bs_cmd_compact, O_DIR | O_JSON | O_DRYRUN, 0, 0,
     "compact [--dry-run]", "drop change sets every peer has acknowledged",
     "Drops from the change log the sets that every paired peer has\n"
     "acknowledged and that are older than the retention limit ([sync]\n"
     "retention_days, default 90), keeping each stream's last set, the sets\n"
     "of system collections and, for every set dropped, its header hash (a\n"
     "fork is still detected).  A peer that needs a dropped set is told to\n"
     "be seeded (peer seed at the hub).  --dry-run counts only.  The daemon\n"
     "compacts on its own every hour.\n"},
    {"sync", bs_cmd_sync, O_DIR | O_JSON, 1, 1, "sync PEER",
     "exchange with PEER now, both ways",
     "Asks the running daemon to exchange with PEER and waits for the end;\n"
     "with no daemon running, makes the exchange itself.  With a folder\n"
     "peer (dir:PATH) an exchange imports its files and writes one of ours;\n"
     "a file refused goes to PATH/refused with a .err beside it (exit 1).\n"
     "Exit 0 once both\n"
     "sides acknowledged; 1 if the peer is unreachable ([sync]\n"
     "connect_timeout_s) or refuses, or if the exchange went through but not\n"
     "wholly: change sets refused here or held there, or this node's clock\n"
     "ahead of the peer's (the message says which; see status).\n"},
    {"schedule", bs_cmd_schedule, O_DIR | O_JSON | O_WINDOW | O_BACKUP | O_KEEP,
     0, 2,
     "schedule PEER SPEC [--window HH:MM-HH:MM] | schedule --backup SPEC "
     "[--keep N] DIR | schedule --backup off",
     "set a link's exchange schedule, or the backups'; prints the next runs",
     "SPEC: online (push within milliseconds), manual, \"every 15m\" (s, m,\n"
     "h, d), or a 5-field cron expression in local time, e.g. \"0 2 * * *\"\n"
     "or \"*/15 8-18 * * 1-5\".  --window confines exchanges to a daily time\n"
     "window.  A running daemon picks the change up at once.\n"
     "--backup: the daemon writes a backup (as 'backup' does) into the\n"
     "existing directory DIR on schedule SPEC (\"every D\" or cron), named\n"
     "NODE-backup-YYYYMMDDTHHMMSSZ.mdb (UTC), and keeps the newest N of\n"
     "that naming (default 7); other files in DIR are never touched.\n"
     "status shows the last backup, its age and the next run; doctor says\n"
     "when one failed or the newest is older than twice the period.\n"
     "--backup off stops them.  Saved in [backup] of branchsync.conf.\n"},
    {"log", bs_cmd_log, O_DIR | O_JSON, 0, 1, "log [PEER]",
     "the exchange history",
     "One line per exchange (file or network): time, peer, direction,\n"
     "change sets each way, changes applied, bytes, duration, result.  A\n"
     "PEER this node never had exits 1.\n"},
    {"status", bs_cmd_status, O_DIR | O_JSON, 0, 0, "status",
     "node, store and replication state",
     "Shows the node's name, role, ID, "
     "infobase, record counts and change-log size.\n"},
    {"doctor", bs_cmd_doctor, O_DIR | O_JSON, 0, 0, "doctor",
     "what needs attention, each with what to do; exit 1 if anything",
     "Lists held, refused and quarantined streams with the reason, peers\n"
     "needing a full resync, silent past their schedule or failing, clock\n"
     "skew against a peer, a daemon that does not run, and low disk or map\n"
     "space: one line each, then what to do.  Exit 0 when healthy, 1 when\n"
     "not.  status --json carries the same list as \"problems\".\n"},
    {"config", bs_cmd_config, O_DIR | O_JSON, 1, 1, "config check",
     "check the set-up: configuration, peers, schedules, permissions, clocks",
     "Checks that branchsync.conf parses and hangs together; that the node\n"
     "directory is 0700 and keys/node.key 0600; that every schedule parses\n"
     "(with its next run); that the backup directory and every drop folder\n"
     "exist and are writable, not by everyone; that every network peer\n"
     "answers a CURVE handshake within [sync] connect_timeout_s and admits\n"
     "this node; and each peer's clock as the last network exchange\n"
     "measured it.  One line per check, what to do under each failure.\n"
     "Exit 0 when all pass, 1 when any fails, 2 for bad usage.\n"},
    {"quarantine", bs_cmd_quarantine, O_DIR | O_JSON | O_KEEP, 0, 2,
     "quarantine [release ORIGIN --keep HASH]",
     "list quarantined streams; (hub) release one",
     "A stream is quarantined when two different change sets claim the same\n"
     "positions of one origin (a store copied back by hand, an origin\n"
     "forking its history).  Alone: lists each such stream with both\n"
     "versions (header hash, seqs, creation time, changes).  release, at\n"
     "the head office: keeps the version HASH of ORIGIN's stream; the\n"
     "decision replicates, and every office drops the other version,\n"
     "rebuilds the records it touched and accepts the stream's sets again.\n"
     "Elsewhere exits 2; an ORIGIN or HASH not quarantined here exits 1.\n"},
};

#define NCMDS (sizeof cmds / sizeof cmds[0])

static const struct option longopts[] = {
    {"dir", required_argument, NULL, 'd'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"quiet", no_argument, NULL, 'q'},
    {"name", required_argument, NULL, 1000 + 2},
    {"role", required_argument, NULL, 1000 + 3},
    {"listen", required_argument, NULL, 1000 + 4},
    {"schedule", required_argument, NULL, 1000 + 5},
    {"window", required_argument, NULL, 1000 + 6},
    {"batch", required_argument, NULL, 1000 + 7},
    {"all", no_argument, NULL, 1000 + 8},
    {"take", required_argument, NULL, 1000 + 9},
    {"value", required_argument, NULL, 1000 + 10},
    {"writers", required_argument, NULL, 1000 + 11},
    {"scope", required_argument, NULL, 1000 + 12},
    {"owner-field", required_argument, NULL, 1000 + 13},
    {"policy", required_argument, NULL, 1000 + 14},
    {"hub", no_argument, NULL, 1000 + 16},
    {"keep", required_argument, NULL, 1000 + 17},
    {"http", required_argument, NULL, 1000 + 18},
    {"format", required_argument, NULL, 1000 + 19},
    {"delimiter", required_argument, NULL, 1000 + 20},
    {"mode", required_argument, NULL, 1000 + 21},
    {"on-error", required_argument, NULL, 1000 + 22},
    {"report", required_argument, NULL, 1000 + 23},
    {"id-field", required_argument, NULL, 1000 + 24},
    {"types", required_argument, NULL, 1000 + 25},
    {"fields", required_argument, NULL, 1000 + 26},
    {"unique", required_argument, NULL, 1000 + 27},
    {"force", no_argument, NULL, 1000 + 28},
    {"backup", required_argument, NULL, 1000 + 29},
    {"seed", no_argument, NULL, 1000 + 30},
    {"region", no_argument, NULL, 1000 + 31},
    {"via", required_argument, NULL, 1000 + 32},
    {"dry-run", no_argument, NULL, 1000 + 33},
    {NULL, 0, NULL, 0},
};

static void
usage_all(FILE *f)
{
    fprintf(f, "usage: branchsync [-d DIR] [--json] COMMAND [ARGS]\n\n"
               "Admin and scripting tool of a branchsync node.  Options may "
               "stand before or\nafter the command.  DIR defaults to "
               "$BRANCHSYNC_DIR.\n\ncommands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "\nglobal options:\n"
               "  -d, --dir DIR   the node directory\n"
               "  --json          machine-readable output (ls: JSON Lines)\n"
               "  -h, --help      help (branchsync COMMAND --help for one "
               "command)\n"
               "  --version       print the version\n\n"
               "exit status: 0 success, 1 failure (not found, I/O, peer), "
               "2 bad usage or input\n");
}

static void
usage_cmd(FILE *f, const cmd *c)
{
    fprintf(f, "usage: branchsync %s\n\n%s.\n\n%s", c->usage, c->summary,
            c->help);
}

static const char *
opt_name(unsigned bit)
{
    static const char *const names[] = {
        "-d/--dir", "--json",        "--name",   "--role",
        "--listen", "--schedule",    "--window", "--batch",
        "--all",    "--take",        "--value",  "--writers",
        "--scope",  "--owner-field", "--policy", "--quiet",
    };
    if (bit == O_HUB)
        return "--hub";
    if (bit == O_HTTP)
        return "--http";
    if (bit == O_KEEP)
        return "--keep";
    if (bit == O_FORMAT)
        return "--format/--delimiter";
    if (bit == O_LOADX)
        return "--mode/--on-error/--report/--id-field/--types";
    if (bit == O_FIELDS)
        return "--fields";
    if (bit == O_UNIQUE)
        return "--unique";
    if (bit == O_FORCE)
        return "--force";
    if (bit == O_BACKUP)
        return "--backup";
    if (bit == O_SEED)
        return "--seed";
    if (bit == O_REGION)
        return "--region";
    if (bit == O_VIA)
        return "--via";
    if (bit == O_DRYRUN)
        return "--dry-run";
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (bit == 1u << i)
            return names[i];
    return "?";
}

/* One line on stderr (arguments echoed escaped, bs_escape); exit 2. */
static int BS_PRINTF(1, 2) bad_usage(const char *fmt, ...)
{
    char raw[BS_ERRMSG_LEN], msg[BS_ERRMSG_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    fprintf(stderr, "branchsync: %s\n", bs_escape(msg, sizeof msg, raw));
    return 2;
}

/* 1 when tok ("--NAME" or "--NAME=VALUE", NAME maybe abbreviated) names
 * the long option whose value is opt. */
static int
is_long_for(const char *tok, int opt)
{
    size_t n;

    if (tok[0] != '-' || tok[1] != '-' || tok[2] == '\0')
        return 0;
    n = strcspn(tok + 2, "=");
    for (const struct option *o = longopts; o->name != NULL; o++)
        if (o->val == opt && strncmp(o->name, tok + 2, n) == 0)
            return 1;
    return 0;
}

/*
 * The bad option getopt stopped at, named by its own argument.  A long
 * option has already been stepped over; an unknown letter inside a
 * cluster ("-abc") leaves optind on the cluster unless it was the last.
 */
static int
bad_option(int argc, char **argv, int missing_value)
{
    const char *prev = optind > 0 ? argv[optind - 1] : "", *tok = prev;

    if (optopt == 0) /* an unknown or ambiguous long option */
        return bad_usage("unknown option %s (see branchsync --help)", prev);
    if (is_long_for(prev, optopt))
        return missing_value ? bad_usage("option %s needs a value", prev)
                             : bad_usage("option %s takes no value", prev);
    if (!(prev[0] == '-' && prev[1] != '-' &&
          strchr(prev + 1, optopt) != NULL) &&
        optind < argc)
        tok = argv[optind];
    if (strlen(tok) > 2)
        return bad_usage("%s -%c in \"%s\" (see branchsync --help)",
                         missing_value ? "no value for option"
                                       : "unknown option",
                         optopt, tok);
    if (missing_value)
        return bad_usage("option %s needs a value", tok);
    return bad_usage("unknown option %s (see branchsync --help)", tok);
}

static int
parse_batch(bs_cli *c, const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || n < 1 || n > 10000000)
        return 0;
    c->batch = n;
    return 1;
}

int
main(int argc, char **argv)
{
    bs_cli c;
    unsigned seen = 0;
    int help = 0, ch;
    const cmd *cm = NULL;
    bs_err rv;

    memset(&c, 0, sizeof c);
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":d:hqV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            c.dir = optarg;
            seen |= O_DIR;
            break;
        case 'j':
            c.json = 1;
            seen |= O_JSON;
            break;
        case 'h':
            help = 1;
            break;
        case 'q':
            c.quiet = 1;
            seen |= O_QUIET;
            break;
        case 'V':
            printf("branchsync 0.1.0\n");
            return 0;
        case 1002:
            c.name = optarg;
            seen |= O_NAME;
            break;
        case 1003:
            c.role = optarg;
            seen |= O_ROLE;
            break;
        case 1004:
            c.listen = optarg;
            seen |= O_LISTEN;
            break;
        case 1005:
            c.schedule = optarg;
            seen |= O_SCHEDULE;
            break;
        case 1006:
            c.window = optarg;
            seen |= O_WINDOW;
            break;
        case 1007:
            if (!parse_batch(&c, optarg))
                return bad_usage("--batch wants a number from 1 to 10000000, "
                                 "not \"%s\"",
                                 optarg);
            seen |= O_BATCH;
            break;
        case 1008:
            c.all = 1;
            seen |= O_ALL;
            break;
        case 1009:
            c.take = optarg;
            seen |= O_TAKE;
            break;
        case 1010:
            c.value = optarg;
            seen |= O_VALUE;
            break;
        case 1011:
            c.writers = optarg;
            seen |= O_WRITERS;
            break;
        case 1012:
            c.scope = optarg;
            seen |= O_SCOPE;
            break;
        case 1013:
            c.owner_field = optarg;
            seen |= O_OWNER;
            break;
        case 1014:
            c.policy = optarg;
            seen |= O_POLICY;
            break;
        case 1016:
            c.hub = 1;
            seen |= O_HUB;
            break;
        case 1017:
            c.keep = optarg;
            seen |= O_KEEP;
            break;
        case 1018:
            c.http = optarg;
            seen |= O_HTTP;
            break;
        case 1019:
        case 1020:
            *(ch == 1019 ? &c.format : &c.delimiter) = optarg;
            seen |= O_FORMAT;
            break;
        case 1021:
        case 1022:
        case 1023:
        case 1024:
        case 1025: {
            const char **v[] = {&c.mode, &c.on_error, &c.report, &c.id_field,
                                &c.types};
            *v[ch - 1021] = optarg;
            seen |= O_LOADX;
            break;
        }
        case 1026:
            c.fields = optarg;
            seen |= O_FIELDS;
            break;
        case 1027:
            c.unique = optarg;
            seen |= O_UNIQUE;
            break;
        case 1028:
            c.force = 1;
            seen |= O_FORCE;
            break;
        case 1029:
            c.backup = optarg;
            seen |= O_BACKUP;
            break;
        case 1030:
            c.seed = 1;
            seen |= O_SEED;
            break;
        case 1031:
            c.region = 1;
            seen |= O_REGION;
            break;
        case 1032:
            c.via = optarg;
            seen |= O_VIA;
            break;
        case 1033:
            c.dry_run = 1;
            seen |= O_DRYRUN;
            break;
        case ':':
            return bad_option(argc, argv, 1);
        default:
            return bad_option(argc, argv, 0);
        }
    }
    if (optind == argc && help) {
        usage_all(stdout);
        return 0;
    }
    if (optind == argc)
        return bad_usage("no command (usage: branchsync [-d DIR] [--json] "
                         "COMMAND [ARGS]; see branchsync --help)");
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(argv[optind], cmds[i].name) == 0)
            cm = &cmds[i];
    if (cm == NULL) {
        if (strcmp(argv[optind], "help") == 0) {
            usage_all(stdout);
            return 0;
        }
        return bad_usage("unknown command \"%s\" (see branchsync --help)",
                         argv[optind]);
    }
    if (help) {
        usage_cmd(stdout, cm);
        return 0;
    }
    for (unsigned bit = 1; bit <= O_LAST; bit <<= 1)
        if ((seen & bit) && !(cm->opts & bit))
            return bad_usage("option %s does not apply to %s", opt_name(bit),
                             cm->name);
    c.argc = argc - optind - 1;
    c.argv = argv + optind + 1;
    if (c.argc < cm->min || c.argc > cm->max) {
        return bad_usage("%s: wrong number of arguments (usage: branchsync "
                         "%s)",
                         cm->name, cm->usage);
    }
    if (strcmp(cm->name, "inspect") == 0)
        c.dir = c.dir ? c.dir : "."; /* inspect needs no node */
    if (c.dir == NULL)
        c.dir = getenv("BRANCHSYNC_DIR");
    if (c.dir == NULL || c.dir[0] == '\0')
        return bad_usage("no node directory: give -d DIR or set "
                         "BRANCHSYNC_DIR");
    {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "branchsync: %s", cm->name);
        bs_fault_install(prefix); /* a damaged store: one line, exit 1 */
    }
    if (bs_crypto_init() != BS_OK) {
        fprintf(stderr, "branchsync: cannot initialise libsodium\n");
        return 1;
    }
    rv = cm->fn(&c);
    if (rv != BS_OK) {
        fprintf(stderr, "branchsync: %s: %s\n", cm->name,
                bs_errmsg(&c.err, rv));
        return bs_err_exit_code(rv);
    }
    return c.exit_code;
}
