/*
 * load.h - bulk upsert of JSON Lines (`load`): one JSON object per line,
 * each with its "id", into one collection.
 *
 * The whole input is checked first, so bad input writes nothing (BS_EINVAL
 * or BS_EJSON naming the line); then the records are written in ID order,
 * `batch` per write transaction, each batch atomic.  Loading the same data
 * twice changes nothing the second time (P3).
 */
#ifndef BS_LOAD_H
#define BS_LOAD_H

#include "core.h"

typedef enum bs_load_mode {
    BS_LOAD_UPSERT = 0,  /* write every record */
    BS_LOAD_ADD_ONLY,    /* skip records that are live */
    BS_LOAD_UPDATE_ONLY, /* skip records that are not live */
} bs_load_mode;

typedef enum bs_load_action {
    BS_LOAD_INSERTED = 0, /* was not live; written */
    BS_LOAD_UPDATED,      /* was live; some field changed */
    BS_LOAD_UNCHANGED,    /* already held the values */
    BS_LOAD_SKIPPED,      /* left out: the mode, bad input or the rules */
} bs_load_action;

/* "inserted", "updated", "unchanged", "skipped". */
const char *bs_load_action_name(bs_load_action a);

typedef struct bs_load_opts {
    size_t batch; /* records per transaction (0: 100000) */
    bs_load_mode mode;
    int skip; /* skip (and report) bad lines and refused records */
    /* tell inserted from updated: one more lookup per record (implied by
     * a mode other than upsert) */
    int actions;
    /* the file line of each input line (1-based index; NULL: the input's
     * own line numbers), for messages: CSV rows converted to JSON Lines */
    const uint64_t *lines;
    size_t nlines;
    /* every record's outcome, once its batch committed (skipped lines of
     * the check pass before anything is written); id NULL when the line
     * has none; reason NULL unless skipped (may be NULL) */
    void (*report)(void *ctx, const char *id, bs_load_action a,
                   const char *reason);
    /* called after each batch commits (may be NULL) */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
} bs_load_opts;

typedef struct bs_load_stats {
    uint64_t records;           /* objects in the input */
    uint64_t written;           /* records changed */
    uint64_t unchanged;         /* records that already held the values */
    uint64_t committed;         /* input records in batches that committed */
    uint64_t inserted, updated; /* of written, with opts->actions */
    uint64_t skipped;           /* lines and records left out */
} bs_load_stats;

/*
 * Load buf[0..len) (not NUL-terminated; lines end in LF or CRLF; blank
 * lines are skipped; a UTF-8 byte order mark at the start is skipped too)
 * into collection coll.  On an error after some batches committed, those
 * stay written (*st says how many: committed; written and unchanged count
 * only committed batches).  opts and st may be NULL.
 */
BS_MUST_CHECK bs_err bs_load_jsonl(const bs_core *c, const char *coll,
                                   const char *buf, size_t len,
                                   const bs_load_opts *opts, bs_load_stats *st,
                                   bs_errbuf *err);

/*
 * *out = 1 when the rules could refuse a local write to coll at this node
 * (its writers are not `all` and the node is not the hub): then a load
 * without skip is one transaction, so that a refusal writes nothing.  For
 * callers that split one input over several bs_load_jsonl calls.
 */
BS_MUST_CHECK bs_err bs_load_may_refuse(const bs_core *c, const char *coll,
                                        int *out, bs_errbuf *err);

#endif
