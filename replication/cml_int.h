/*
 * cml_int.h - what the CommerceML reader's two files share: the walk
 * (cml.c: the streaming reader, errors, which element is which entity)
 * and the mapping (cml_map.c: entity -> records, the dictionary of
 * property values, the elements known).  Not part of the core API.
 */
#ifndef BS_CML_INT_H
#define BS_CML_INT_H

#include <libxml/xmlreader.h>

#include "arena.h"
#include "cml.h"
#include "strbuf.h"

/* One record of the entity being mapped. */
typedef struct bs_cml_pend {
    bs_cml_coll coll;
    uint64_t line;
    size_t off, len; /* in bs_cml_rd.out */
} bs_cml_pend;

/* The dictionary of property values: ИдЗначения -> Значение. */
typedef struct bs_cml_dict {
    char **keys, **vals;
    size_t n, cap; /* cap a power of two, or 0 */
} bs_cml_dict;

/* One read of a document (bs_cml_read): the reader, where records go,
 * and the entity being mapped. */
typedef struct bs_cml_rd {
    xmlTextReaderPtr r;
    const bs_cml_sink *sink;
    int skip;
    bs_cml_info *info;
    bs_errbuf *err;
    int xml_failed; /* the parser reported an error */
    char xml_msg[160];
    int xml_line;
    bs_strbuf out; /* the entity's records */
    bs_cml_pend *pend;
    size_t npend, pendcap;
    int oom;
    bs_arena a; /* the entity's texts */
    bs_cml_dict values;
    bs_cml_dict fields; /* the keyed field names of the record being built */
    bs_errbuf why;      /* the entity's error */
} bs_cml_rd;

/* Mapping an expanded entity n (its tree valid for the call) to records
 * held in m until the entity is done; BS_EINVAL with m->why naming the
 * line on bad input, BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_cml_map_group(bs_cml_rd *m, xmlNodePtr n,
                                      const char *parent);
BS_MUST_CHECK bs_err bs_cml_map_property(bs_cml_rd *m, xmlNodePtr n);
BS_MUST_CHECK bs_err bs_cml_map_price_type(bs_cml_rd *m, xmlNodePtr n);
BS_MUST_CHECK bs_err bs_cml_map_product(bs_cml_rd *m, xmlNodePtr n);
BS_MUST_CHECK bs_err bs_cml_map_offer(bs_cml_rd *m, xmlNodePtr n);
/* An order with its lines and counterparties; other documents are
 * skipped. */
BS_MUST_CHECK bs_err bs_cml_map_document(bs_cml_rd *m, xmlNodePtr n);

/* Count element `name` in m->info unless it is one the standard has. */
void bs_cml_count_unknown(bs_cml_rd *m, const char *name);
/* 1 when the tree under n (at depth) goes deeper than BS_CML_MAX_DEPTH. */
int bs_cml_too_deep(xmlNodePtr n, int depth);
/* n's line in the document (0 when unknown). */
uint64_t bs_cml_line_of(xmlNodePtr n);
/* The trimmed text of n's first child element `name`, in m->a (valid
 * until the entity is done), or NULL when there is none. */
const char *bs_cml_ctext(bs_cml_rd *m, xmlNodePtr n, const char *name);
void bs_cml_dict_fini(bs_cml_dict *d);

#endif
