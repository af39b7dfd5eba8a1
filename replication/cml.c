/*
 * cml.c - reading CommerceML 2 (cml.h): libxml2's streaming reader walks
 * the document; each entity (a group tree, a property, a price type, a
 * good, an offer, a document) is expanded alone, mapped to records and
 * released as the reader moves on.  The records of an entity are held
 * until it is mapped whole, so an entity that fails writes no record.
 *
 * Safety: the reader gets XML_PARSE_NONET and neither XML_PARSE_NOENT nor
 * XML_PARSE_DTDLOAD; a document with a DOCTYPE is refused before its
 * content is read, so no entity is ever declared, let alone expanded.
 * Depth is limited by BS_CML_MAX_DEPTH (libxml2's own limit, 256, is the
 * backstop inside an expanded entity).
 */
#include "cml_int.h"

#include <stdio.h>
#include <string.h>

const char *
bs_cml_coll_name(bs_cml_coll c)
{
    static const char *const names[BS_CML_NCOLL] = {
        "product_groups", "properties", "property_values",
        "price_types",    "products",   "offers",
        "counterparties", "orders",     "order_lines",
    };
    return c < BS_CML_NCOLL ? names[c] : "?";
}

/* ---- the streaming walk ---- */

/* The entity kind of an element at depth d under parent: which mapper
 * expands it, or 0 for a container to descend into, or -1 to skip. */
enum {
    E_NONE = -1,
    E_DESCEND = 0,
    E_GROUP,
    E_PROP,
    E_PRICE,
    E_GOOD,
    E_OFFER,
    E_DOC
};

static int
kind_of(const char *parent, const char *name)
{
    static const struct {
        const char *parent, *name;
        int kind;
    } t[] = {
        {"КоммерческаяИнформация", "Классификатор", E_DESCEND},
        {"КоммерческаяИнформация", "Каталог", E_DESCEND},
        {"КоммерческаяИнформация", "ПакетПредложений", E_DESCEND},
        {"КоммерческаяИнформация", "ИзмененияПакетаПредложений", E_DESCEND},
        {"КоммерческаяИнформация", "Документ", E_DOC},
        {"КоммерческаяИнформация", "Контейнер", E_DESCEND}, /* 2.10 */
        {"Контейнер", "Документ", E_DOC},
        {"Классификатор", "Группы", E_DESCEND},
        {"Классификатор", "Свойства", E_DESCEND},
        {"Классификатор", "ТипыЦен", E_DESCEND},
        {"Группы", "Группа", E_GROUP},
        {"Свойства", "Свойство", E_PROP},
        {"Свойства", "СвойствоНоменклатуры", E_PROP},
        {"ТипыЦен", "ТипЦены", E_PRICE},
        {"Каталог", "Товары", E_DESCEND},
        {"Товары", "Товар", E_GOOD},
        {"ПакетПредложений", "ТипыЦен", E_DESCEND},
        {"ПакетПредложений", "Предложения", E_DESCEND},
        {"ИзмененияПакетаПредложений", "Предложения", E_DESCEND},
        {"Предложения", "Предложение", E_OFFER},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (strcmp(t[i].parent, parent) == 0 && strcmp(t[i].name, name) == 0)
            return t[i].kind;
    return E_NONE;
}

static void
on_xml_error(void *arg, xmlErrorPtr e)
{
    bs_cml_rd *m = arg;
    size_t n;

    if (m->xml_failed || e == NULL ||
        (e->level != XML_ERR_ERROR && e->level != XML_ERR_FATAL))
        return;
    m->xml_failed = 1;
    m->xml_line =
        e->line > 0 ? e->line : xmlTextReaderGetParserLineNumber(m->r);
    snprintf(m->xml_msg, sizeof m->xml_msg, "%s",
             e->message ? e->message : "malformed XML");
    /* libxml2's messages run over lines ("...!\nBytes: 0xFF"): keep one,
     * the bytes joined to it */
    for (char *p = m->xml_msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    n = strlen(m->xml_msg);
    while (n > 0 && m->xml_msg[n - 1] == ' ')
        m->xml_msg[--n] = '\0';
}

/* Send the entity's records to the sink, or on an error with skip its
 * skip; drop them either way. */
static bs_err
flush_entity(bs_cml_rd *m, bs_err rv)
{
    if (rv == BS_OK && m->oom)
        rv = BS_ENOMEM;
    if (rv == BS_OK && m->out.oom)
        rv = BS_ENOMEM;
    for (size_t i = 0; i < m->npend && rv == BS_OK; i++)
        rv = m->sink->record(m->sink->ctx, m->pend[i].coll, m->pend[i].line,
                             m->out.p + m->pend[i].off, m->pend[i].len);
    m->npend = 0;
    m->out.n = 0;
    m->out.oom = 0;
    m->oom = 0;
    bs_arena_reset(&m->a);
    return rv;
}

static bs_err
entity(bs_cml_rd *m, int kind)
{
    static const bs_cml_coll colls[] = {
        [E_GROUP] = BS_CML_GROUPS,      [E_PROP] = BS_CML_PROPERTIES,
        [E_PRICE] = BS_CML_PRICE_TYPES, [E_GOOD] = BS_CML_PRODUCTS,
        [E_OFFER] = BS_CML_OFFERS,      [E_DOC] = BS_CML_ORDERS,
    };
    xmlNodePtr n = xmlTextReaderExpand(m->r);
    const char *id = NULL;
    bs_err rv;

    if (n == NULL)
        return BS_EINVAL; /* the parser said why */
    if (bs_cml_too_deep(n, xmlTextReaderDepth(m->r)))
        return bs_errf(m->err, BS_EINVAL,
                       "line %llu: <%s>: elements nested deeper than %d",
                       (unsigned long long)bs_cml_line_of(n),
                       (const char *)n->name, BS_CML_MAX_DEPTH);
    m->why.msg[0] = '\0';
    switch (kind) {
    case E_GROUP:
        rv = bs_cml_map_group(m, n, NULL);
        break;
    case E_PROP:
        rv = bs_cml_map_property(m, n);
        break;
    case E_PRICE:
        rv = bs_cml_map_price_type(m, n);
        break;
    case E_GOOD:
        rv = bs_cml_map_product(m, n);
        break;
    case E_OFFER:
        rv = bs_cml_map_offer(m, n);
        break;
    default:
        rv = bs_cml_map_document(m, n);
        break;
    }
    if (rv == BS_EINVAL) {
        id = bs_cml_ctext(m, n, "Ид");
        if (!m->skip) {
            m->npend = 0;
            (void)flush_entity(m, BS_OK);
            return bs_errf(m->err, rv, "%s", m->why.msg);
        }
        m->info->skipped++;
        m->sink->skip(m->sink->ctx, colls[kind],
                      id != NULL && id[0] != '\0' ? id : NULL, m->why.msg);
        rv = BS_OK;
        m->npend = 0; /* nothing of it is sent */
    }
    return flush_entity(m, rv);
}

/* The line of the reader's node, or where the parser is. */
static int
cur_line(bs_cml_rd *m)
{
    xmlNodePtr n = xmlTextReaderCurrentNode(m->r);
    long l = n ? xmlGetLineNo(n) : -1;

    return l > 0 ? (int)l : xmlTextReaderGetParserLineNumber(m->r);
}

/* The root: КоммерческаяИнформация with a ВерсияСхемы of 2.03-2.10. */
static bs_err
root(bs_cml_rd *m)
{
    const char *name = (const char *)xmlTextReaderConstLocalName(m->r);
    xmlChar *v;
    unsigned minor;
    char tail;

    if (strcmp(name, "КоммерческаяИнформация") != 0)
        return bs_errf(m->err, BS_EINVAL,
                       "line %d: <%s> is not a CommerceML document (the root "
                       "must be <КоммерческаяИнформация>)",
                       cur_line(m), name);
    if ((v = xmlTextReaderGetAttribute(m->r, BAD_CAST "ВерсияСхемы")) == NULL)
        return BS_OK;
    snprintf(m->info->version, sizeof m->info->version, "%s", (char *)v);
    xmlFree(v);
    if (sscanf(m->info->version, "2.%u%c", &minor, &tail) != 1 || minor < 3 ||
        minor > 10 || strlen(m->info->version) != 4)
        return bs_errf(m->err, BS_EINVAL,
                       "line %d: ВерсияСхемы \"%s\" is not read (2.03 to "
                       "2.10 are)",
                       cur_line(m), m->info->version);
    return BS_OK;
}

static bs_err
walk(bs_cml_rd *m)
{
    const char *names[BS_CML_MAX_DEPTH + 1];
    int ret, next = 0, below = -1; /* inside an unknown element at below */
    bs_err rv = BS_OK;

    while (rv == BS_OK && (ret = next ? xmlTextReaderNext(m->r)
                                      : xmlTextReaderRead(m->r)) == 1) {
        int type = xmlTextReaderNodeType(m->r), d = xmlTextReaderDepth(m->r);
        const char *name;
        int kind;

        next = 0;
        if (type == XML_READER_TYPE_DOCUMENT_TYPE ||
            type == XML_READER_TYPE_ENTITY_REFERENCE)
            return bs_errf(m->err, BS_EINVAL,
                           "line %d: a DOCTYPE or entity is refused (DTDs "
                           "and entities are not read)",
                           cur_line(m));
        if (type != XML_READER_TYPE_ELEMENT)
            continue;
        if (d >= BS_CML_MAX_DEPTH)
            return bs_errf(m->err, BS_EINVAL,
                           "line %d: elements nested deeper than %d",
                           cur_line(m), BS_CML_MAX_DEPTH);
        if (below >= 0 && d > below)
            continue; /* read through, for the depth check */
        below = -1;
        name = (const char *)xmlTextReaderConstLocalName(m->r);
        names[d] = name; /* interned by the reader's dictionary */
        if (d == 0) {
            rv = root(m);
            continue;
        }
        kind = kind_of(names[d - 1], name);
        if (kind == E_NONE) {
            bs_cml_count_unknown(m, name);
            below = d;
        } else if (kind != E_DESCEND) {
            rv = entity(m, kind);
            next = 1;
        }
    }
    if (rv == BS_OK && (ret < 0 || m->xml_failed))
        rv = BS_EINVAL;
    return rv;
}

/* The document, fed to the reader in pieces (xmlReaderForMemory takes
 * an int: 2 GiB at most). */
typedef struct memin {
    const char *p;
    size_t len, pos;
} memin;

static int
read_mem(void *ctx, char *buf, int n)
{
    memin *in = ctx;
    size_t k = in->len - in->pos < (size_t)n ? in->len - in->pos : (size_t)n;

    if (k > 0)
        memcpy(buf, in->p + in->pos, k);
    in->pos += k;
    return (int)k;
}

/* libxml2's generic errors repeat what on_xml_error was told. */
static void BS_PRINTF(2, 3) quiet(void *ctx, const char *fmt, ...)
{
    (void)ctx;
    (void)fmt;
}

bs_err
bs_cml_read(const char *buf, size_t len, int skip, const bs_cml_sink *sink,
            bs_cml_info *info, bs_errbuf *err)
{
    bs_cml_info dummy;
    memin in = {NULL, 0, 0};
    bs_cml_rd m;
    bs_err rv;

    memset(&m, 0, sizeof m);
    if (err != NULL)
        err->msg[0] = '\0';
    if (info == NULL)
        info = &dummy;
    memset(info, 0, sizeof *info);
    in.p = buf;
    in.len = len;
    m.r = xmlReaderForIO(read_mem, NULL, &in, NULL, NULL, XML_PARSE_NONET);
    if (m.r == NULL)
        return BS_ENOMEM;
    m.sink = sink;
    m.skip = skip;
    m.info = info;
    m.err = err;
    bs_arena_init(&m.a);
    xmlTextReaderSetStructuredErrorHandler(m.r, on_xml_error, &m);
    /* encoding errors come without the parser's context: catch those too
     * (libxml2's error state is per thread) */
    xmlSetStructuredErrorFunc(&m, on_xml_error);
    xmlSetGenericErrorFunc(NULL, quiet);
    rv = walk(&m);
    xmlSetStructuredErrorFunc(NULL, NULL);
    xmlSetGenericErrorFunc(NULL, NULL);
    if (m.xml_failed && (rv == BS_OK || rv == BS_EINVAL))
        rv = bs_errf(err, BS_EINVAL, "line %d: %s", m.xml_line, m.xml_msg);
    else if (rv == BS_EINVAL && err != NULL && err->msg[0] == '\0')
        rv = bs_errf(err, BS_EINVAL, "malformed XML");
    xmlFreeTextReader(m.r);
    bs_arena_fini(&m.a);
    bs_cml_dict_fini(&m.values);
    bs_cml_dict_fini(&m.fields);
    free(m.out.p);
    free(m.pend);
    return rv;
}
