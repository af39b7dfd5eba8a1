/*
 * cml.h - CommerceML 2 in and out: the catalogs, offers and orders that 1C
 * and web shops exchange (schema versions 2.03 to 2.10), as records.
 *
 * Reading (cml.c) streams the document with libxml2's xmlTextReader: one
 * entity at a time (a group, a property, a good, an offer, a document) is
 * expanded, mapped to records and freed, so memory does not grow with the
 * file (only the dictionary of property values does, with the classifier).
 * The mapping, element to collection.field, is docs/formats.md
 * ("CommerceML 2").  The XML declaration names the encoding (UTF-8 or
 * windows-1251; libxml2 converts through iconv).
 *
 * Bad input, all BS_EINVAL with a message naming the line:
 *  - not well-formed XML or not in its declared encoding, a DOCTYPE (DTDs
 *    and entities are never read: no XML_PARSE_NOENT, no DTD loading,
 *    XML_PARSE_NONET), elements nested deeper than BS_CML_MAX_DEPTH, a
 *    root other than КоммерческаяИнформация or a ВерсияСхемы outside
 *    2.03-2.10: always fatal;
 *  - an entity without its Ид, a number that is not one, an ID or a field
 *    name the store refuses: fatal, or with skip the entity (a document
 *    with all its lines and counterparties) is left out and reported.
 * Elements the reader does not know are skipped and counted.
 *
 * Writing (cml_export.c) gives the orders with their lines and buyers as
 * one CommerceML 2 document that reads back to the same records.
 */
#ifndef BS_CML_H
#define BS_CML_H

#include "core.h"
#include "load.h"

/* Records per write transaction by default: a write transaction holds
 * its dirty pages and its change set in memory, so this, not the file,
 * bounds the import's memory (docs/performance.md). */
#define BS_CML_BATCH 1000

/* Elements nested deeper than this are refused. */
#define BS_CML_MAX_DEPTH 64

/* The collections written, in the order they are loaded. */
typedef enum bs_cml_coll {
    BS_CML_GROUPS = 0,   /* product_groups */
    BS_CML_PROPERTIES,   /* properties */
    BS_CML_PROPVALUES,   /* property_values */
    BS_CML_PRICE_TYPES,  /* price_types */
    BS_CML_PRODUCTS,     /* products */
    BS_CML_OFFERS,       /* offers */
    BS_CML_COUNTERPARTY, /* counterparties */
    BS_CML_ORDERS,       /* orders */
    BS_CML_ORDER_LINES,  /* order_lines */
    BS_CML_NCOLL
} bs_cml_coll;

/* The collection's name ("products", ...). */
const char *bs_cml_coll_name(bs_cml_coll c);

/* What the reader found besides records. */
typedef struct bs_cml_info {
    char version[16];        /* ВерсияСхемы ("" when absent) */
    uint64_t unknown;        /* elements not known, skipped */
    char unknown_names[200]; /* the first of them, comma-separated */
    uint64_t skipped;        /* entities left out (skip) */
} bs_cml_info;

/* Where the reader sends what it maps. */
typedef struct bs_cml_sink {
    /* One record: a flat JSON object with its "id", n bytes (no line
     * end), starting on XML line `line`.  A non-OK return stops the read
     * with that error. */
    bs_err (*record)(void *ctx, bs_cml_coll c, uint64_t line, const char *json,
                     size_t n);
    /* An entity left out (skip only): its collection, its Ид when known
     * (else NULL), why (naming the line). */
    void (*skip)(void *ctx, bs_cml_coll c, const char *id, const char *why);
    void *ctx;
} bs_cml_sink;

/*
 * Read the CommerceML document buf[0..len) (borrowed for the call; not
 * NUL-terminated) and send its records to sink in document order; with
 * skip, a bad entity goes to sink->skip instead of ending the read.
 * *info (may be NULL) is filled in either case.  BS_EINVAL on bad input
 * (err names the line), BS_ENOMEM, or what sink->record returned.
 */
BS_MUST_CHECK bs_err bs_cml_read(const char *buf, size_t len, int skip,
                                 const bs_cml_sink *sink, bs_cml_info *info,
                                 bs_errbuf *err);

typedef struct bs_cml_opts {
    int skip;           /* --on-error skip */
    bs_load_mode mode;  /* as load's --mode */
    size_t batch;       /* records per transaction (0: BS_CML_BATCH) */
    const char *tmpdir; /* where the spool files go (NULL: /tmp) */
    /* records per bs_load_jsonl call (0: 50000), which bounds load's
     * sort index; ignored (one call) when the rules could refuse a
     * record and skip is off */
    size_t chunk;
    /* every record's outcome (as load.h reports it) with its collection;
     * entities the reader left out come first, coll then the entity's */
    void (*report)(void *ctx, const char *coll, const char *id,
                   bs_load_action a, const char *reason);
    void *ctx;
} bs_cml_opts;

typedef struct bs_cml_stats {
    bs_cml_info info;
    uint64_t records[BS_CML_NCOLL]; /* read, per collection */
    bs_load_stats load;             /* summed over the collections */
} bs_cml_stats;

/*
 * Import buf[0..len) into the collections of bs_cml_coll: the whole
 * document is read and checked first, each collection's records spooled
 * to an unlinked file in o->tmpdir; then each collection is loaded as
 * `load` loads JSON Lines (load.h: the local write path, the rules, the
 * mode and the report), error lines naming the XML's lines.  Bad input
 * writes nothing.  o and st may be NULL.  Errors as bs_cml_read and
 * bs_load_jsonl; BS_EIO when the spool cannot be written.
 */
BS_MUST_CHECK bs_err bs_cml_import(const bs_core *c, const char *buf,
                                   size_t len, const bs_cml_opts *o,
                                   bs_cml_stats *st, bs_errbuf *err);

/*
 * Write every live record of `orders`, each with its `order_lines`
 * (ordered by their `line`) and its buyer from `counterparties`, to path
 * as one CommerceML 2 document (UTF-8, ВерсияСхемы 2.08, ДатаФормирования
 * from c's clock): written to a temporary file beside it, then renamed.
 * *norders (may be NULL) gets the count.  BS_EIO when path cannot be
 * written (nothing is left there); BS_ESTORE on a record that does not
 * decode.
 */
BS_MUST_CHECK bs_err bs_cml_export_orders(const bs_core *c, const char *path,
                                          uint64_t *norders, bs_errbuf *err);

#endif
