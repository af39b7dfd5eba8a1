/*
 * record.h - values, field versions, the stored record format and the merge
 * rule that every write (local or remote) goes through.
 *
 * A record is (collection, id) -> fields.  Each field carries the version of
 * the change that last wrote it; a record also keeps the version of its last
 * upsert (`alive`) and of its last delete (`tomb`).  It is live when it has
 * an upsert newer than its delete; a field is visible when it is newer than
 * the delete.  Merging keeps, per field, the greater version under the
 * collection's order (bs_version_cmp), so the result does not depend on the
 * order changes arrive in (INV-5: the comparison is pure).
 *
 * Merging never fails for size: a record holds as many fields as its
 * writers gave it (docs/design.md, "Limits").
 *
 * Stored encoding (local to a node, host byte order), in one of two widths:
 *   u8 format | u8 flags (BS_RECORD_LIVE, BS_RECORD_OWN_BASE) | N nver | nver x
 * version(24) | N alive_vidx | N tomb_vidx (all ones: none) | N nfields |
 * nfields x (N vidx | u16 namelen | name | u8 type | payload), where N is a u16
 * in format 2 and a u32 in format 3.  Format 2 is written whenever counts and
 * indices stay below 0xffff, format 3 otherwise.  version = u64 hlc | u64 seq |
 * u32 stream | u32 prio.  payload: none for null/false/true, 8 bytes for
 * integer/real, u32 len + bytes for text. Fields are sorted by name
 * (bytewise), so equal records encode equally.
 */
#ifndef BS_RECORD_H
#define BS_RECORD_H

#include <string.h>

#include "arena.h"
#include "common.h"

typedef enum {
    BS_VNULL = 0,
    BS_VFALSE = 1,
    BS_VTRUE = 2,
    BS_VINT = 3,
    BS_VREAL = 4,
    BS_VTEXT = 5,
} bs_vtype;

typedef struct bs_value {
    uint8_t type;
    int64_t i;
    double d;
    const char *s; /* BS_VTEXT: not NUL-terminated */
    uint32_t len;
} bs_value;

/* Who wrote a field, and when.  stream indexes the node's stream table. */
typedef struct bs_version {
    uint64_t hlc;
    uint64_t seq;
    uint32_t stream;
    uint32_t prio;
} bs_version;

typedef struct bs_field {
    const char *name;
    uint16_t namelen;
    bs_version ver;
    bs_value val;
} bs_field;

/* A field named name (borrowed) holding text (borrowed), for a write. */
static inline bs_field
bs_field_text(const char *name, const char *text)
{
    bs_field f;

    memset(&f, 0, sizeof f);
    f.name = name;
    f.val.type = BS_VTEXT;
    f.val.s = text;
    f.val.len = (uint32_t)strlen(text);
    return f;
}

typedef struct bs_record {
    int live; /* as decided by the last merge, under the collection's order */
    int has_alive, has_tomb;
    bs_version alive, tomb;
    size_t nfields;
    bs_field *fields; /* sorted by name */
} bs_record;

/* Orders two versions.  Ties on hlc are broken by the writers' stream keys
 * (origin public key, then incarnation), so every node picks the same winner.
 */
typedef struct bs_order {
    int use_prio; /* `priority` policy: compare prio first */
    /* 48-byte key (origin || incarnation) of a stream index. */
    const uint8_t *(*stream_key)(void *ctx, uint32_t stream);
    void *ctx;
} bs_order;

int bs_version_cmp(const bs_version *a, const bs_version *b, const bs_order *o);

/*
 * The flags byte (byte 1) of a stored record.  BS_RECORD_LIVE mirrors
 * r->live.  BS_RECORD_OWN_BASE says the record is its own base (movein.h
 * bs_movein_base: a record a snapshot created, storage.md 3.2): only the
 * snapshot merge sets it, on the bytes bs_record_encode wrote, which never
 * does, so any path that re-encodes the record drops it (after keeping
 * the base, bs_movein_base_keep).  Every reader but bs_movein_base ignores
 * it: the digest, verify and status decode records, and the flag is no
 * part of what they see.
 */
#define BS_RECORD_LIVE     0x01u
#define BS_RECORD_OWN_BASE 0x02u

/* Whether encoded record buf[0..n) carries BS_RECORD_OWN_BASE (0 when too
 * short to be a record). */
int bs_record_own_base(const uint8_t *buf, size_t n);
/* Set BS_RECORD_OWN_BASE on the bytes bs_record_encode wrote at buf. */
void bs_record_set_own_base(uint8_t *buf);
/* Clear it (buf holds a record's encoding: at least 2 bytes). */
void bs_record_clear_own_base(uint8_t *buf);

/* The live flag of encoded record buf[0..n), read from its first two
 * bytes (format, flags) without decoding it: BS_ESTORE when they are not
 * a record's.  For counting (status); bs_record_decode checks the rest. */
BS_MUST_CHECK bs_err bs_record_peek_live(const uint8_t *buf, size_t n,
                                         int *live);

/* 1 when the record is live (an upsert newer than any delete) under order
 * o.  bs_record_merge stores the answer for the collection's order in
 * r->live, which is what readers use. */
int bs_record_live(const bs_record *r, const bs_order *o);

/* Decode a stored record; strings borrow from buf.  BS_ESTORE if corrupt. */
BS_MUST_CHECK bs_err bs_record_decode(bs_record *r, const uint8_t *buf,
                                      size_t n, bs_arena *a);

/* How r encodes: its distinct versions and the index of each field's, found
 * by bs_record_prepare (arrays in its arena; valid while r and the arena
 * are), and the encoded size. */
typedef struct bs_recenc {
    size_t size;
    int wide; /* format 3 */
    size_t nver;
    const bs_version **ver; /* first-use order: alive, tomb, fields */
    uint32_t alive, tomb;   /* UINT32_MAX: none */
    uint32_t *fidx;         /* per field */
} bs_recenc;

/* Prepare r's encoding in O(nfields).  BS_ENOMEM only. */
BS_MUST_CHECK bs_err bs_record_prepare(const bs_record *r, bs_arena *a,
                                       bs_recenc *e);
/* Encode r as prepared into out, which holds e->size bytes. */
void bs_record_encode(const bs_record *r, const bs_recenc *e, uint8_t *out);

/*
 * Merge one change into r: an upsert of `fields` (sorted, unique names) or a
 * delete, stamped `ver`.  Arrays come from arena a.  Sets *changed when r
 * changed.  Pure apart from the arena (INV-5).  Never refuses a merge: the
 * only error is BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_record_merge(bs_record *r, int deleted,
                                     const bs_field *fields, size_t nfields,
                                     const bs_version *ver, const bs_order *o,
                                     bs_arena *a, int *changed);

/* r's field name[0..n) (binary search: r's fields are sorted), or NULL. */
const bs_field *bs_record_find(const bs_record *r, const char *name, size_t n);
/* The value of r's field `name`, or NULL. */
const bs_value *bs_record_field(const bs_record *r, const char *name);

/* Values equal (same type and payload). */
int bs_value_eq(const bs_value *a, const bs_value *b);

/* Sort fields by name; BS_EINVAL (with the name) on a duplicate. */
BS_MUST_CHECK bs_err bs_fields_sort(bs_field *f, size_t n, bs_errbuf *err);

/* ---- names ---- */

/* A user collection: 1..64 of [A-Za-z0-9_.-] starting with a letter or
 * digit.  Names starting with '_' are the system's (membership, policies);
 * allow_system admits them. */
int bs_collection_valid(const char *s, int allow_system);
/* Well-formed UTF-8 (control characters allowed, NUL not). */
int bs_utf8_valid(const char *s, size_t n);
/*
 * Names given here (put, del, get, load, JSON input): a record ID is 1..256
 * bytes of UTF-8 without control characters (C0, DEL, nor C1 U+0080-U+009F;
 * README "Limits"); a field name is 1..128 such bytes, not "id".
 */
int bs_id_valid(const char *s);
int bs_field_name_valid(const char *s, size_t n);
/*
 * The same names in a received change set (docs/protocol.md §2.2, C3/C4):
 * version 1 refuses only bytes < 0x20 and 0x7F there, so C1 characters,
 * which version 1 nodes accepted as input, still decode; only the decoder
 * (changeset.c) uses these.
 */
int bs_id_wire_valid(const char *s);
int bs_field_name_wire_valid(const char *s, size_t n);

/* Record key: collection \0 id.  buf holds BS_RECKEY_MAX bytes. */
#define BS_RECKEY_MAX (BS_COLLECTION_MAX + 1 + BS_ID_MAX)
size_t bs_record_key(uint8_t *buf, const char *coll, const char *id);

#endif
