/*
 * access.h - who may write what: a change judged against the version of
 * its collection's rules that governs it (rules.h; docs/design.md,
 * "Access and filters", protocol.md A11).
 *
 *  - The hub may write anything; system collections only the hub.
 *  - writers=all: any member.  writers=hub: nobody else.
 *  - writers=owner: a member may write a record only while its owner field,
 *    just before the change, is empty or holds the member's name, and only
 *    so that it holds that name after the change; a delete needs the field
 *    to name it.
 *
 * "Just before the change" is the owner field as the admitted changes
 * ordered below it left it.  The store keeps, per record of a collection
 * with an owner field, the owner each admitted change gave it
 * ("own:" COLL \0 ID \0 u64be hlc | u64be seq -> the value, in meta), so a
 * change arriving below a later owner change is judged by the owner it
 * really followed.
 *
 * The entry of the change that the record's owner field holds now is
 * implied: the record says the same (that field's value at that field's
 * version), so a first delivery, or a snapshot that leaves the record
 * holding the field at the snapshot's version (a seed's every record,
 * movein.c), writes none (storage.md §3.1).  Hence the
 * rule for every path that writes a record of a collection with an owner
 * field: mark the owner field before changing the record
 * (bs_access_owner_mark) and, after, keep the marked entry
 * (bs_access_owner_keep) — it is no longer implied once the field's
 * version changes or the field goes.  A change's own entry may be left out
 * only when the record as written holds the change's owner at the
 * change's version (bs_access_owner_implied).  Stores written before hold
 * every entry; the implied one then merely repeats the record.
 */
#ifndef BS_ACCESS_H
#define BS_ACCESS_H

#include "arena.h"
#include "changeset.h"
#include "meta.h"
#include "rules.h"

/* The owner a change not yet stored gives its record (admission judges a
 * set before any of it is stored). */
typedef struct bs_owner_note {
    const char *coll, *id, *owner; /* in the notes' arena */
    uint64_t hlc, seq;
    uint8_t key[BS_STREAM_KEY_LEN];
    uint32_t next; /* 1 + the index of the previous note of its bucket */
} bs_owner_note;

/* Owner notes, found by record in O(1): at most one set's worth (8192). */
typedef struct bs_owner_notes {
    bs_owner_note *v;
    size_t n, cap;
    uint32_t *bucket; /* 1 + the index of the bucket's latest note; 0 none */
    size_t nbucket;   /* a power of two, or 0 */
    bs_arena arena;
} bs_owner_notes;

void bs_owner_notes_init(bs_owner_notes *s);
/* Add a note (the strings are copied). BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_owner_notes_add(bs_owner_notes *s, const char *coll,
                                        const char *id, const char *owner,
                                        uint64_t hlc, uint64_t seq,
                                        const uint8_t *key);
/* Forget every note; keep the memory. */
void bs_owner_notes_clear(bs_owner_notes *s);
void bs_owner_notes_fini(bs_owner_notes *s);

/* A 64-bit hash of coll/id, never 0. */
uint64_t bs_access_record_hash(const char *coll, const char *id);

typedef struct bs_judgment {
    int allowed;
    bs_collection rules; /* the governing version */
    bs_rule_version ver; /* 0 0: the defaults */
    /* writers=owner: the version whose owner field the judgment used (the
     * latest one) */
    bs_rule_version field_ver;
    char why[BS_ERRMSG_LEN]; /* forbidden: the rule, the record, the name */
    /* the change that gave the record its owner before c (its stream key
     * and seq), when there is one: the origin could only know the rule
     * applied if it had seen that change */
    int by_change;
    uint8_t by_key[BS_STREAM_KEY_LEN];
    uint64_t by_seq;
    /* a pending owner change lands below the stored change found: the
     * stored one will be judged again once the pending one is stored */
    int unsure;
} bs_judgment;

/*
 * Judge change c of a user collection, stamped cv, written by the stream
 * whose key (origin || incarnation) is skey and whose origin's member name
 * is `name` ("" when it has none), in t as node m sees it; o gives the
 * stream keys of stored versions.  rules and ver,
 * when not NULL, are the governing version already looked up (else it is
 * looked up in t), and so are latest and latest_ver, the latest version;
 * prior, when not NULL, is the record's owner just
 * before c ("" none) as the caller knows it (a rebuild replaying the
 * record); else it is found in the store and among pending (may be NULL),
 * changes not yet stored.  BS_OK with *j set; BS_ESTORE for damaged
 * entries; BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_access_judge(
    bs_txn *t, const bs_meta *m, const uint8_t *skey, const char *name,
    const bs_change *c, const bs_version *cv, const bs_order *o,
    const bs_collection *rules, const bs_rule_version *ver,
    const bs_collection *latest, const bs_rule_version *latest_ver,
    const char *prior, const bs_owner_notes *pending, bs_judgment *j);

/* Keep that change c of the stream skey was refused by rule (write txn),
 * and ask whether coll/id has such a change above c (*any). */
BS_MUST_CHECK bs_err bs_access_note_refused(bs_txn *t, const bs_change *c,
                                            const uint8_t *skey);
BS_MUST_CHECK bs_err bs_access_refused_after(bs_txn *t, const bs_change *c,
                                             const uint8_t *skey, int *any);

/* Whether any change of collection coll is kept as refused by rule (*any):
 * one look-up, so that a run of changes of a collection without any need
 * not ask bs_access_refused_after each. */
BS_MUST_CHECK bs_err bs_access_any_refused(bs_txn *t, const char *coll,
                                           int *any);

/* Whether change c of the stream skey is kept as refused by rule (*yes). */
BS_MUST_CHECK bs_err bs_access_is_refused(bs_txn *t, const bs_change *c,
                                          const uint8_t *skey, int *yes);

/* Forget the owner history of coll/id and its refused changes (write txn;
 * a rebuild writes them again). */
BS_MUST_CHECK bs_err bs_access_forget_owner(bs_txn *t, const char *coll,
                                            const char *id);

/* The owner c leaves its record with, given the owner before it (into
 * out, "" none): c's owner_field value, "" for a delete, else before. */
void bs_access_owner_after(const bs_change *c, const char *owner_field,
                           const char *before, char *out, size_t n);

/* Keep the owner an admitted change gave coll/id (write txn): c, of the
 * stream whose key is skey, writes the field named owner_field (a no-op
 * otherwise), or deletes the record (the owner becomes none). */
BS_MUST_CHECK bs_err bs_access_note_owner(bs_txn *t, const bs_change *c,
                                          const uint8_t *skey,
                                          const char *owner_field);

/* A record's owner field as it was before a write (the entry it implies). */
typedef struct bs_owner_mark {
    int has;           /* the record held the owner field */
    const char *field; /* its name: borrowed from the caller */
    bs_version ver;    /* its version */
    const char *val;   /* its text ("" otherwise): borrowed from the record
                        * marked, valid while that record's memory is */
    size_t n;
} bs_owner_mark;

/* Mark r's owner field owner_field ("" or NULL: nothing to mark). */
void bs_access_owner_mark(const bs_record *r, const char *owner_field,
                          bs_owner_mark *m);

/* After a write left coll/id as `after` (NULL: the record is gone), keep
 * the entry `before` implied unless after still holds it (write txn); o
 * gives the stream key of the marked version.  BS_OK when nothing is to
 * keep. */
BS_MUST_CHECK bs_err bs_access_owner_keep(bs_txn *t, const char *coll,
                                          const char *id,
                                          const bs_owner_mark *before,
                                          const bs_record *after,
                                          const bs_order *o);

/* 1 when change c, stamped cv, needs no entry of its own: it names the
 * owner (not a delete) and the record r as written holds c's version of
 * owner_field. */
int bs_access_owner_implied(const bs_change *c, const bs_version *cv,
                            const bs_record *r, const char *owner_field);

/*
 * Count n more changes of origin pk refused by rule at now_ms (the node's
 * clock; 0: unknown), keeping the first reason and the time of the latest
 * (write txn).  Refusals on arrival (apply.c) and by a rebuild that
 * refuses a change admitted until then (rebuild.h) count alike; a change
 * is counted once.  bs_access_refused reads the count and the first
 * reason, bs_access_refused_last the time of the latest (0: none kept,
 * e.g. counted by an older version).  The count is kept for good; what
 * `doctor` flags is a refusal in the last BS_REFUSED_RECENT_MS.
 */
#define BS_REFUSED_RECENT_MS (7ull * 24 * 3600 * 1000)
BS_MUST_CHECK bs_err bs_access_count_refused(bs_txn *t, const uint8_t *pk,
                                             uint64_t n, const char *why,
                                             uint64_t now_ms);
BS_MUST_CHECK bs_err bs_access_refused(bs_txn *t, const uint8_t *pk,
                                       uint64_t *n, char *why, size_t wn);
BS_MUST_CHECK bs_err bs_access_refused_last(bs_txn *t, const uint8_t *pk,
                                            uint64_t *last_ms);

/* The member name of origin pk as node m knows it ("" when none). */
void bs_access_name(bs_txn *t, const bs_meta *m, const uint8_t *pk,
                    char out[BS_NODE_NAME_MAX + 1]);

#endif
