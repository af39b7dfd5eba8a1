/*
 * collections.h - the rules of each collection, declared by the hub and
 * replicated to every node in the system collection `_collections`:
 *
 *   _collections/<name>   {"policy": "field-lww"|"priority"|"manual"}
 *
 * A collection nobody declared is field-lww.  The rules in effect are read
 * inside the transaction that applies a change, so every node judges a
 * change by the rules its own store holds at that point.
 */
#ifndef BS_COLLECTIONS_H
#define BS_COLLECTIONS_H

#include "core.h"
#include "record.h"

#define BS_SYS_COLLECTIONS "_collections"

typedef enum {
    BS_POLICY_LWW = 0,      /* per field, the greater version wins */
    BS_POLICY_PRIORITY = 1, /* the hub's write wins a conflict, then LWW */
    BS_POLICY_MANUAL = 2,   /* a provisional winner; open until resolved */
} bs_policy;

/* "field-lww", "priority" or "manual" ("?" for anything else). */
const char *bs_policy_name(bs_policy p);
/* BS_EINVAL unless s names a policy. */
BS_MUST_CHECK bs_err bs_policy_parse(const char *s, bs_policy *p);

typedef struct bs_collection {
    char name[BS_COLLECTION_MAX + 1];
    int declared; /* 0: the defaults of an undeclared collection */
    bs_policy policy;
} bs_collection;

/* The rules of collection `name` (the defaults when undeclared). */
BS_MUST_CHECK bs_err bs_collections_get(bs_txn *t, const char *name,
                                        bs_collection *c);

/* Every declared collection in name order; *v malloc'd (free it). */
BS_MUST_CHECK bs_err bs_collections_list(bs_txn *t, bs_collection **v,
                                         size_t *n);

/*
 * Declare rules->name's rules (a local write that replicates).  Only the
 * hub declares: BS_EPERM elsewhere.  BS_EINVAL for a bad name.
 */
BS_MUST_CHECK bs_err bs_collections_declare(const bs_core *c,
                                            const bs_collection *rules,
                                            bs_errbuf *err);

#endif
