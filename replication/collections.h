/*
 * collections.h - the rules of each collection, declared by the hub and
 * replicated to every node in the system collection `_collections`:
 *
 *   _collections/<name>   {"policy": "field-lww"|"priority"|"manual",
 *                          "writers": "all"|"hub"|"owner",
 *                          "scope": "shared"|"owner",
 *                          "owner_field": FIELD,
 *                          "unique": FIELD}    ("" or absent: none)
 *
 * A collection nobody declared is field-lww, writers all, scope shared.
 * Every hub change to a collection's rules is a version of them; the
 * versions a node applied are kept (rules.h), so that a change is judged
 * by the version that governs it (docs/design.md, "Access and filters").
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

/* Who may write a collection's records, besides the hub. */
typedef enum {
    BS_WRITERS_ALL = 0,   /* every member */
    BS_WRITERS_HUB = 1,   /* nobody else */
    BS_WRITERS_OWNER = 2, /* the branch its owner field names */
} bs_writers;

/* Who receives a collection's records. */
typedef enum {
    BS_SCOPE_SHARED = 0, /* every node */
    BS_SCOPE_OWNER = 1,  /* the hub and the owning branch */
} bs_scope;

const char *bs_writers_name(bs_writers w);
BS_MUST_CHECK bs_err bs_writers_parse(const char *s, bs_writers *w);
const char *bs_scope_name(bs_scope s);
BS_MUST_CHECK bs_err bs_scope_parse(const char *s, bs_scope *sc);

/* Which members of bs_collection a declaration sets (the others keep their
 * value). */
enum {
    BS_RULE_POLICY = 1,
    BS_RULE_WRITERS = 2,
    BS_RULE_SCOPE = 4,
    BS_RULE_OWNER_FIELD = 8,
    BS_RULE_UNIQUE = 16,
};

typedef struct bs_collection {
    char name[BS_COLLECTION_MAX + 1];
    int declared; /* 0: the defaults of an undeclared collection */
    bs_policy policy;
    bs_writers writers;
    bs_scope scope;
    char owner_field[BS_FIELD_NAME_MAX + 1]; /* "" when none */
    char unique[BS_FIELD_NAME_MAX + 1];      /* the natural key; "" none */
    unsigned set; /* declare: the BS_RULE_* members given */
} bs_collection;

/* The rules a record of `_collections` holds (defaults for what it lacks). */
void bs_collection_from_record(bs_collection *c, const bs_record *r);

/* The rules of collection `name` (the defaults when undeclared). */
BS_MUST_CHECK bs_err bs_collections_get(bs_txn *t, const char *name,
                                        bs_collection *c);

/* Every declared collection in name order; *v malloc'd (free it). */
BS_MUST_CHECK bs_err bs_collections_list(bs_txn *t, bs_collection **v,
                                         size_t *n);

/*
 * Declare the members of rules->name's rules that rules->set names (a local
 * write that replicates); *out (may be NULL) gets the rules in effect
 * after it.  Only the hub declares: BS_EPERM elsewhere.  BS_EINVAL for a
 * bad name, a bad owner field, or rules whose writers or scope is `owner`
 * without an owner field.
 */
BS_MUST_CHECK bs_err bs_collections_declare(const bs_core *c,
                                            const bs_collection *rules,
                                            bs_collection *out, bs_errbuf *err);

#endif
