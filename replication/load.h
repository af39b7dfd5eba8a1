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

typedef struct bs_load_opts {
    size_t batch; /* records per transaction (0: 100000) */
    /* called after each batch commits (may be NULL) */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
} bs_load_opts;

typedef struct bs_load_stats {
    uint64_t records;   /* objects in the input */
    uint64_t written;   /* records changed */
    uint64_t unchanged; /* records that already held the values */
    uint64_t committed; /* input records in batches that committed */
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

#endif
