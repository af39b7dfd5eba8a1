/*
 * cml_map.c - CommerceML entities to records (cml_int.h): each mapper reads
 * one expanded entity, checks it (its Ид, numbers, IDs and field names)
 * and builds its records as flat JSON objects, which cml.c sends on only
 * when the whole entity mapped.  The mapping is docs/formats.md
 * ("CommerceML 2").
 */
#include "cml_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "record.h"

/* ---- helpers over the expanded tree ---- */

static int
is(xmlNodePtr n, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE &&
           strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr
child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr k = n ? n->children : NULL; k != NULL; k = k->next)
        if (is(k, name))
            return k;
    return NULL;
}

uint64_t
bs_cml_line_of(xmlNodePtr n)
{
    long l = xmlGetLineNo(n);

    return l > 0 ? (uint64_t)l : 0;
}

/* The text of element n, trimmed, copied into the entity's arena. */
static const char *
text(bs_cml_rd *m, xmlNodePtr n)
{
    xmlChar *s;
    const char *p, *e;
    char *r;

    if (n == NULL)
        return NULL;
    if ((s = xmlNodeGetContent(n)) == NULL) {
        m->oom = 1;
        return "";
    }
    p = (const char *)s;
    e = p + strlen(p);
    while (p < e && strchr(" \t\r\n", *p) != NULL)
        p++;
    while (e > p && strchr(" \t\r\n", e[-1]) != NULL)
        e--;
    r = bs_arena_strndup(&m->a, p, (size_t)(e - p));
    xmlFree(s);
    if (r == NULL) {
        m->oom = 1;
        return "";
    }
    return r;
}

/* The text of n's first child element called name, or NULL. */
const char *
bs_cml_ctext(bs_cml_rd *m, xmlNodePtr n, const char *name)
{
    return text(m, child(n, name));
}

static bs_err fail(bs_cml_rd *m, xmlNodePtr n, const char *fmt, ...)
    BS_PRINTF(3, 4);

/* The entity's error: "line N: ..." into m->why. */
static bs_err
fail(bs_cml_rd *m, xmlNodePtr n, const char *fmt, ...)
{
    char msg[BS_ERRMSG_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bs_errf(&m->why, BS_EINVAL, "line %llu: %s",
                   (unsigned long long)bs_cml_line_of(n), msg);
}

/* ---- building records ---- */

static void
put_json_str(bs_strbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;

    bs_strbuf_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[6] = {'\\', 'u', '0', '0', 0, 0};

        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        bs_strbuf_add(b, run, (size_t)(s - run));
        run = s + 1;
        if (ch == '"' || ch == '\\') {
            esc[1] = (char)ch;
            bs_strbuf_add(b, esc, 2);
        } else {
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            bs_strbuf_add(b, esc, 6);
        }
    }
    bs_strbuf_add(b, run, (size_t)(s - run));
    bs_strbuf_add(b, "\"", 1);
}

/* Start a record of coll with ID id (checked) for entity element n. */
static bs_err
rec_begin(bs_cml_rd *m, bs_cml_coll coll, xmlNodePtr n, const char *id)
{
    bs_cml_pend *p;

    if (!bs_id_valid(id))
        return fail(m, n,
                    "<%s>: Ид \"%s\" is not a valid ID (1 to %d bytes "
                    "of UTF-8 without control characters)",
                    (const char *)n->name, id, BS_ID_MAX);
    if (m->npend == m->pendcap) {
        size_t cap = m->pendcap ? 2 * m->pendcap : 16;
        bs_cml_pend *v = realloc(m->pend, cap * sizeof *v);

        if (v == NULL)
            return BS_ENOMEM;
        m->pend = v;
        m->pendcap = cap;
    }
    p = &m->pend[m->npend++];
    p->coll = coll;
    p->line = bs_cml_line_of(n);
    p->off = m->out.n;
    if (m->fields.n > 0) {
        bs_cml_dict_fini(&m->fields);
        memset(&m->fields, 0, sizeof m->fields);
    }
    bs_strbuf_add(&m->out, "{\"id\":", 6);
    put_json_str(&m->out, id);
    return BS_OK;
}

static void
rec_end(bs_cml_rd *m)
{
    bs_strbuf_add(&m->out, "}", 1);
    m->pend[m->npend - 1].len = m->out.n - m->pend[m->npend - 1].off;
}

static const char *dict_get(const bs_cml_dict *d, const char *k);
static bs_err dict_put(bs_cml_dict *d, const char *k, const char *v);

/* Start field name of the record; 0 when the record has it already: a
 * keyed one ("prop.P", "price.T") may come twice in an entity, and the
 * first is kept (the fixed names are written once each). */
static int
field_name(bs_cml_rd *m, const char *name)
{
    if (strchr(name, '.') != NULL) {
        if (dict_get(&m->fields, name) != NULL)
            return 0;
        if (dict_put(&m->fields, name, "") != BS_OK) {
            m->oom = 1;
            return 0;
        }
    }
    bs_strbuf_add(&m->out, ",", 1);
    put_json_str(&m->out, name);
    bs_strbuf_add(&m->out, ":", 1);
    return 1;
}

/* A text field (none when val is NULL). */
static void
f_text(bs_cml_rd *m, const char *name, const char *val)
{
    if (val != NULL && field_name(m, name))
        put_json_str(&m->out, val);
}

/* A field named prefix + key (checked), e.g. "prop." + a property's Ид. */
static bs_err
f_keyed(bs_cml_rd *m, xmlNodePtr n, const char *prefix, const char *key,
        const char *val, int number)
{
    char name[BS_FIELD_NAME_MAX + 2];
    int len = snprintf(name, sizeof name, "%s%s", prefix, key);

    if (len < 0 || (size_t)len >= sizeof name ||
        !bs_field_name_valid(name, (size_t)len))
        return fail(m, n,
                    "<%s>: \"%s\" does not make a field name (1 to %d "
                    "bytes of UTF-8 without control characters)",
                    (const char *)n->name, name, BS_FIELD_NAME_MAX);
    if (!number) {
        f_text(m, name, val);
        return BS_OK;
    }
    if (field_name(m, name))
        bs_strbuf_add(&m->out, val, strlen(val));
    return BS_OK;
}

static int
digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * A number field from element el of n (none when absent): the text as a
 * JSON number; a decimal comma is read as a point and single spaces
 * between digit groups are dropped ("1 200,50" is 1200.50), then leading
 * zeros of the integer part ("0 990" is 990).  At most 31 characters,
 * and 18 digits for an integer (a 64-bit one); anything else fails.
 */
static bs_err
f_number(bs_cml_rd *m, xmlNodePtr n, const char *el, const char *name)
{
    xmlNodePtr e = child(n, el);
    const char *s = text(m, e);
    char buf[32], *p;
    size_t k = 0, i = 0, digits = 0;
    int dot = 0;

    if (s == NULL)
        return BS_OK;
    if (s[0] == '-')
        buf[k++] = s[i++];
    for (; s[i] != '\0' && k < sizeof buf - 1; i++) {
        if (digit(s[i])) {
            buf[k++] = s[i];
            digits++;
        } else if ((s[i] == '.' || s[i] == ',') && !dot && digits > 0 &&
                   digit(s[i + 1])) {
            buf[k++] = '.';
            dot = 1;
        } else if (s[i] != ' ' || digits == 0 || dot || !digit(s[i + 1])) {
            break;
        }
    }
    if (digits == 0 || s[i] != '\0')
        return fail(m, e,
                    "<%s>: \"%s\" is not a number (at most %zu "
                    "characters)",
                    el, s, sizeof buf - 1);
    buf[k] = '\0';
    /* JSON refuses leading zeros */
    for (p = buf + (buf[0] == '-'); p[0] == '0' && digit(p[1]);)
        memmove(p, p + 1, strlen(p));
    /* an integer is stored as a 64-bit one */
    if (!dot && strlen(p) > 18)
        return fail(m, e,
                    "<%s>: \"%s\" is too large a number (18 digits "
                    "at most without a decimal point)",
                    el, s);
    return f_keyed(m, e, "", name, buf, 1);
}

/* ---- the dictionary of property values ---- */

static uint64_t
hash(const char *s)
{
    uint64_t h = 1469598103934665603u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static size_t
dict_slot(const bs_cml_dict *d, const char *k)
{
    size_t i = (size_t)hash(k) & (d->cap - 1);

    while (d->keys[i] != NULL && strcmp(d->keys[i], k) != 0)
        i = (i + 1) & (d->cap - 1);
    return i;
}

static const char *
dict_get(const bs_cml_dict *d, const char *k)
{
    size_t i;

    if (d->cap == 0)
        return NULL;
    i = dict_slot(d, k);
    return d->keys[i] ? d->vals[i] : NULL;
}

static bs_err
dict_put(bs_cml_dict *d, const char *k, const char *v)
{
    size_t i;
    char *nv;

    if (2 * (d->n + 1) > d->cap) {
        bs_cml_dict g = {NULL, NULL, 0, d->cap ? 2 * d->cap : 64};

        g.keys = calloc(g.cap, sizeof *g.keys);
        g.vals = calloc(g.cap, sizeof *g.vals);
        if (g.keys == NULL || g.vals == NULL) {
            free(g.keys);
            free(g.vals);
            return BS_ENOMEM;
        }
        for (size_t j = 0; j < d->cap; j++)
            if (d->keys[j] != NULL) {
                i = dict_slot(&g, d->keys[j]);
                g.keys[i] = d->keys[j];
                g.vals[i] = d->vals[j];
            }
        g.n = d->n;
        free(d->keys);
        free(d->vals);
        *d = g;
    }
    i = dict_slot(d, k);
    if ((nv = strdup(v)) == NULL)
        return BS_ENOMEM;
    if (d->keys[i] == NULL && (d->keys[i] = strdup(k)) == NULL) {
        free(nv);
        return BS_ENOMEM;
    }
    if (d->vals[i] == NULL)
        d->n++;
    free(d->vals[i]);
    d->vals[i] = nv;
    return BS_OK;
}

void
bs_cml_dict_fini(bs_cml_dict *d)
{
    for (size_t i = 0; i < d->cap; i++) {
        free(d->keys[i]);
        free(d->vals[i]);
    }
    free(d->keys);
    free(d->vals);
}

/* ---- what the reader knows ---- */

/* Elements of the standard that are read but not mapped: skipped without
 * being counted as unknown. */
static const char *const known[] = {
    "Ид",
    "Наименование",
    "Владелец",
    "ИдКлассификатора",
    "ИдКаталога",
    "Описание",
    "Склады",
    "Склад",
    "ЕдиницыИзмерения",
    "Картинка",
    "Изготовитель",
    "Реквизиты",
    "ХарактеристикиТовара",
    "Категория",
    "Категории",
    "Страна",
    "ТорговаяМарка",
    "Модель",
    "Вес",
    "Налоги",
    "Скидки",
    "Налог",
    "СрокПлатежа",
    "Коэффициент",
    "Единица",
    "Валюта",
    "Представление",
    "Адрес",
    "Контакты",
    "Представители",
    "БитриксТеги",
    "Статус",
    "Версия",
    "ОфициальноеНаименование",
    "РасчетныйСчет",
    "ЮридическийАдрес",
    "ОКПО",
    "ДатаРегистрации",
    "Отчество",
    "Банк",
    "ПометкаУдаления",
    "ИзмененияПакетаПредложений",
    "КодТНВЭД",
    "Код",
    "Группы",
    "ЗначенияСвойств",
    "СтавкиНалогов",
    "ЗначенияРеквизитов",
    "Товары",
    "Контрагенты",
    "Цены",
    "Остатки",
    "ТипыЦен",
    "Свойства",
    "ВариантыЗначений",
    "Предложения",
    "Документ",
    "ТипЗначений",
    "ДляТоваров",
    "ДляПредложений",
    "Обязательное",
    "Множественное",
    "ИспользованиеСвойства",
    "ПолноеНаименование",
    "ИНН",
    "КПП",
    "Роль",
    "Фамилия",
    "Имя",
    "АдресРегистрации",
    "Артикул",
    "Штрихкод",
    "БазоваяЕдиница",
    "ЦенаЗаЕдиницу",
    "Количество",
    "Сумма",
    "Номер",
    "Дата",
    "Время",
    "ХозОперация",
    "Курс",
    "Комментарий",
};

void
bs_cml_count_unknown(bs_cml_rd *m, const char *name)
{
    bs_cml_info *in = m->info;
    size_t n = strlen(in->unknown_names), k = strlen(name);

    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(known[i], name) == 0)
            return;
    in->unknown++;
    if (k + 2 < sizeof in->unknown_names - n &&
        strstr(in->unknown_names, name) == NULL)
        snprintf(in->unknown_names + n, sizeof in->unknown_names - n, "%s%s",
                 n ? "," : "", name);
}

/* Count the children of n that are not in handled[] (NULL-terminated). */
static void
count_children(bs_cml_rd *m, xmlNodePtr n, const char *const *handled)
{
    for (xmlNodePtr k = n->children; k != NULL; k = k->next) {
        int seen = 0;

        if (k->type != XML_ELEMENT_NODE)
            continue;
        for (size_t i = 0; handled[i] != NULL && !seen; i++)
            seen = strcmp((const char *)k->name, handled[i]) == 0;
        if (!seen)
            bs_cml_count_unknown(m, (const char *)k->name);
    }
}

/* The depth of the tree under n (iterative; stops past the limit). */
int
bs_cml_too_deep(xmlNodePtr n, int depth)
{
    xmlNodePtr k = n;

    while (k != NULL) {
        if (depth > BS_CML_MAX_DEPTH)
            return 1;
        if (k->children != NULL && k->type == XML_ELEMENT_NODE) {
            k = k->children;
            depth++;
            continue;
        }
        while (k != n && k->next == NULL) {
            k = k->parent;
            depth--;
        }
        if (k == n)
            break;
        k = k->next;
    }
    return 0;
}

/* ---- entities ---- */

/* Ид of entity n, or fail. */
static bs_err
need_id(bs_cml_rd *m, xmlNodePtr n, const char **id)
{
    *id = bs_cml_ctext(m, n, "Ид");
    if (*id == NULL || (*id)[0] == '\0')
        return fail(m, n, "<%s> has no <Ид>", (const char *)n->name);
    return BS_OK;
}

/* prefix.<Наименование> = Значение|Ставка for each of n's list entries. */
static bs_err
named_values(bs_cml_rd *m, xmlNodePtr list, const char *item,
             const char *valname, const char *prefix)
{
    for (xmlNodePtr k = list ? list->children : NULL; k != NULL; k = k->next) {
        const char *name, *val;
        bs_err rv;

        if (!is(k, item))
            continue;
        name = bs_cml_ctext(m, k, "Наименование");
        val = bs_cml_ctext(m, k, valname);
        if (name == NULL || name[0] == '\0')
            return fail(m, k, "<%s> has no <Наименование>", item);
        if ((rv = f_keyed(m, k, prefix, name, val ? val : "", 0)) != BS_OK)
            return rv;
    }
    return BS_OK;
}

bs_err
bs_cml_map_group(bs_cml_rd *m, xmlNodePtr n, const char *parent)
{
    static const char *const h[] = {"Ид", "Наименование", "Группы", NULL};
    const char *id;
    bs_err rv;

    if ((rv = need_id(m, n, &id)) != BS_OK ||
        (rv = rec_begin(m, BS_CML_GROUPS, n, id)) != BS_OK)
        return rv;
    f_text(m, "name", bs_cml_ctext(m, n, "Наименование"));
    f_text(m, "parent", parent);
    rec_end(m);
    count_children(m, n, h);
    for (xmlNodePtr k = child(child(n, "Группы"), "Группа"); k; k = k->next)
        if (is(k, "Группа") && (rv = bs_cml_map_group(m, k, id)) != BS_OK)
            return rv;
    return BS_OK;
}

bs_err
bs_cml_map_property(bs_cml_rd *m, xmlNodePtr n)
{
    static const char *const h[] = {"Ид", "Наименование", "ТипЗначений",
                                    "ВариантыЗначений", NULL};
    const char *id, *vid, *val;
    bs_err rv;

    if ((rv = need_id(m, n, &id)) != BS_OK ||
        (rv = rec_begin(m, BS_CML_PROPERTIES, n, id)) != BS_OK)
        return rv;
    f_text(m, "name", bs_cml_ctext(m, n, "Наименование"));
    f_text(m, "type", bs_cml_ctext(m, n, "ТипЗначений"));
    rec_end(m);
    count_children(m, n, h);
    for (xmlNodePtr k = child(n, "ВариантыЗначений")
                            ? child(n, "ВариантыЗначений")->children
                            : NULL;
         k != NULL; k = k->next) {
        if (k->type != XML_ELEMENT_NODE)
            continue;
        if (!is(k, "Справочник") && !is(k, "ВариантЗначения")) {
            bs_cml_count_unknown(m, (const char *)k->name);
            continue;
        }
        vid = bs_cml_ctext(m, k, is(k, "Справочник") ? "ИдЗначения" : "Ид");
        val = bs_cml_ctext(m, k, "Значение");
        if (vid == NULL || vid[0] == '\0')
            return fail(m, k, "<%s> has no <%s>", (const char *)k->name,
                        is(k, "Справочник") ? "ИдЗначения" : "Ид");
        if ((rv = rec_begin(m, BS_CML_PROPVALUES, k, vid)) != BS_OK)
            return rv;
        f_text(m, "property", id);
        f_text(m, "value", val ? val : "");
        rec_end(m);
        if ((rv = dict_put(&m->values, vid, val ? val : "")) != BS_OK)
            return rv;
    }
    return BS_OK;
}

bs_err
bs_cml_map_price_type(bs_cml_rd *m, xmlNodePtr n)
{
    static const char *const h[] = {"Ид", "Наименование", "Валюта", NULL};
    const char *id;
    bs_err rv;

    if ((rv = need_id(m, n, &id)) != BS_OK ||
        (rv = rec_begin(m, BS_CML_PRICE_TYPES, n, id)) != BS_OK)
        return rv;
    f_text(m, "name", bs_cml_ctext(m, n, "Наименование"));
    f_text(m, "currency", bs_cml_ctext(m, n, "Валюта"));
    rec_end(m);
    count_children(m, n, h);
    return BS_OK;
}

/* prop.<Ид свойства> for each ЗначенияСвойства, dictionary values
 * resolved; several values are joined with "; ". */
static bs_err
property_values(bs_cml_rd *m, xmlNodePtr list)
{
    for (xmlNodePtr k = list ? list->children : NULL; k != NULL; k = k->next) {
        const char *pid;
        bs_strbuf v = {0};
        bs_err rv;

        if (!is(k, "ЗначенияСвойства"))
            continue;
        if ((pid = bs_cml_ctext(m, k, "Ид")) == NULL || pid[0] == '\0')
            return fail(m, k, "<ЗначенияСвойства> has no <Ид>");
        for (xmlNodePtr e = k->children; e != NULL; e = e->next) {
            const char *s, *d;

            if (!is(e, "Значение") && !is(e, "ИдЗначения"))
                continue;
            s = text(m, e);
            d = dict_get(&m->values, s);
            if (v.n > 0)
                bs_strbuf_add(&v, "; ", 2);
            bs_strbuf_add(&v, d ? d : s, strlen(d ? d : s));
        }
        rv = f_keyed(m, k, "prop.", pid, v.p ? v.p : "", 0);
        free(v.p);
        if (v.oom)
            return BS_ENOMEM;
        if (rv != BS_OK)
            return rv;
    }
    return BS_OK;
}

bs_err
bs_cml_map_product(bs_cml_rd *m, xmlNodePtr n)
{
    static const char *const h[] = {"Ид",
                                    "Артикул",
                                    "Наименование",
                                    "Штрихкод",
                                    "Группы",
                                    "БазоваяЕдиница",
                                    "ЗначенияСвойств",
                                    "СтавкиНалогов",
                                    "ЗначенияРеквизитов",
                                    "Описание",
                                    NULL};
    const char *id;
    bs_err rv;

    if ((rv = need_id(m, n, &id)) != BS_OK ||
        (rv = rec_begin(m, BS_CML_PRODUCTS, n, id)) != BS_OK)
        return rv;
    f_text(m, "sku", bs_cml_ctext(m, n, "Артикул"));
    f_text(m, "name", bs_cml_ctext(m, n, "Наименование"));
    f_text(m, "barcode", bs_cml_ctext(m, n, "Штрихкод"));
    f_text(m, "group", bs_cml_ctext(m, child(n, "Группы"), "Ид"));
    f_text(m, "unit", bs_cml_ctext(m, n, "БазоваяЕдиница"));
    f_text(m, "description", bs_cml_ctext(m, n, "Описание"));
    if ((rv = property_values(m, child(n, "ЗначенияСвойств"))) != BS_OK ||
        (rv = named_values(m, child(n, "СтавкиНалогов"), "СтавкаНалога",
                           "Ставка", "tax.")) != BS_OK ||
        (rv = named_values(m, child(n, "ЗначенияРеквизитов"),
                           "ЗначениеРеквизита", "Значение", "attr.")) != BS_OK)
        return rv;
    rec_end(m);
    count_children(m, n, h);
    return BS_OK;
}

/* price.<ИдТипаЦены> per Цена; stock.<Ид склада> per Остаток/Склад. */
static bs_err
offer_prices(bs_cml_rd *m, xmlNodePtr n)
{
    bs_err rv;

    for (xmlNodePtr k = child(n, "Цены") ? child(n, "Цены")->children : NULL;
         k != NULL; k = k->next) {
        const char *pt;
        xmlNodePtr p = child(k, "ЦенаЗаЕдиницу");
        char name[BS_FIELD_NAME_MAX + 2];

        if (!is(k, "Цена"))
            continue;
        if ((pt = bs_cml_ctext(m, k, "ИдТипаЦены")) == NULL || pt[0] == '\0')
            return fail(m, k, "<Цена> has no <ИдТипаЦены>");
        if (p == NULL)
            return fail(m, k, "<Цена> has no <ЦенаЗаЕдиницу>");
        snprintf(name, sizeof name, "price.%s", pt);
        if (strlen(name) > BS_FIELD_NAME_MAX)
            return fail(m, k, "<ИдТипаЦены> \"%s\" is too long", pt);
        if ((rv = f_number(m, k, "ЦенаЗаЕдиницу", name)) != BS_OK)
            return rv;
    }
    for (xmlNodePtr k = child(n, "Остатки") ? child(n, "Остатки")->children
                                            : NULL;
         k != NULL; k = k->next) {
        xmlNodePtr s = child(k, "Склад");
        const char *wid;
        char name[BS_FIELD_NAME_MAX + 2];

        if (!is(k, "Остаток") || s == NULL)
            continue;
        if ((wid = bs_cml_ctext(m, s, "Ид")) == NULL || wid[0] == '\0')
            return fail(m, s, "<Склад> has no <Ид>");
        snprintf(name, sizeof name, "stock.%s", wid);
        if (strlen(name) > BS_FIELD_NAME_MAX)
            return fail(m, s, "<Склад> Ид \"%s\" is too long", wid);
        if ((rv = f_number(m, s, "Количество", name)) != BS_OK)
            return rv;
    }
    return BS_OK;
}

bs_err
bs_cml_map_offer(bs_cml_rd *m, xmlNodePtr n)
{
    static const char *const h[] = {"Ид",       "Наименование",   "Артикул",
                                    "Штрихкод", "Количество",     "Цены",
                                    "Остатки",  "БазоваяЕдиница", NULL};
    const char *id, *hashp;
    xmlNodePtr q = child(n, "Количество");
    bs_err rv;

    if ((rv = need_id(m, n, &id)) != BS_OK ||
        (rv = rec_begin(m, BS_CML_OFFERS, n, id)) != BS_OK)
        return rv;
    /* "good#characteristic": the good is the part before '#' */
    hashp = strchr(id, '#');
    f_text(m, "product",
           hashp ? bs_arena_strndup(&m->a, id, (size_t)(hashp - id)) : id);
    f_text(m, "name", bs_cml_ctext(m, n, "Наименование"));
    f_text(m, "sku", bs_cml_ctext(m, n, "Артикул"));
    f_text(m, "barcode", bs_cml_ctext(m, n, "Штрихкод"));
    if (q != NULL)
        q = n;
    else /* 2.08+: Остатки/Остаток/Количество without a warehouse */
        q = child(child(n, "Остатки"), "Остаток");
    if (q != NULL && (rv = f_number(m, q, "Количество", "quantity")) != BS_OK)
        return rv;
    if ((rv = offer_prices(m, n)) != BS_OK)
        return rv;
    rec_end(m);
    count_children(m, n, h);
    return BS_OK;
}

static bs_err
map_counterparty(bs_cml_rd *m, xmlNodePtr n, const char **id)
{
    static const char *const h[] = {
        "Ид",      "Наименование", "ПолноеНаименование", "Роль", "ИНН", "КПП",
        "Фамилия", "Имя",          "АдресРегистрации",   NULL};
    bs_err rv;

    if ((rv = need_id(m, n, id)) != BS_OK ||
        (rv = rec_begin(m, BS_CML_COUNTERPARTY, n, *id)) != BS_OK)
        return rv;
    f_text(m, "name", bs_cml_ctext(m, n, "Наименование"));
    f_text(m, "full_name", bs_cml_ctext(m, n, "ПолноеНаименование"));
    f_text(m, "role", bs_cml_ctext(m, n, "Роль"));
    f_text(m, "inn", bs_cml_ctext(m, n, "ИНН"));
    f_text(m, "kpp", bs_cml_ctext(m, n, "КПП"));
    f_text(m, "last_name", bs_cml_ctext(m, n, "Фамилия"));
    f_text(m, "first_name", bs_cml_ctext(m, n, "Имя"));
    f_text(m, "address",
           bs_cml_ctext(m, child(n, "АдресРегистрации"), "Представление"));
    rec_end(m);
    count_children(m, n, h);
    return BS_OK;
}

static bs_err
map_line(bs_cml_rd *m, xmlNodePtr n, const char *order, unsigned no)
{
    static const char *const h[] = {
        "Ид",         "Наименование", "БазоваяЕдиница", "ЦенаЗаЕдиницу",
        "Количество", "Сумма",        "СтавкиНалогов",  "ЗначенияРеквизитов",
        NULL};
    char lid[BS_ID_MAX + 32], num[16];
    const char *pid;
    bs_err rv;

    if ((rv = need_id(m, n, &pid)) != BS_OK)
        return rv;
    snprintf(lid, sizeof lid, "%s/%u", order, no);
    snprintf(num, sizeof num, "%u", no);
    if ((rv = rec_begin(m, BS_CML_ORDER_LINES, n, lid)) != BS_OK)
        return rv;
    f_text(m, "order", order);
    if ((rv = f_keyed(m, n, "", "line", num, 1)) != BS_OK)
        return rv;
    f_text(m, "product", pid);
    f_text(m, "name", bs_cml_ctext(m, n, "Наименование"));
    f_text(m, "unit", bs_cml_ctext(m, n, "БазоваяЕдиница"));
    if ((rv = f_number(m, n, "ЦенаЗаЕдиницу", "price")) != BS_OK ||
        (rv = f_number(m, n, "Количество", "quantity")) != BS_OK ||
        (rv = f_number(m, n, "Сумма", "total")) != BS_OK ||
        (rv = named_values(m, child(n, "СтавкиНалогов"), "СтавкаНалога",
                           "Ставка", "tax.")) != BS_OK ||
        (rv = named_values(m, child(n, "ЗначенияРеквизитов"),
                           "ЗначениеРеквизита", "Значение", "attr.")) != BS_OK)
        return rv;
    rec_end(m);
    count_children(m, n, h);
    return BS_OK;
}

/* The buyer: the counterparty whose Роль is Покупатель, else the first. */
static const char *
buyer(bs_cml_rd *m, xmlNodePtr list)
{
    const char *first = NULL;

    for (xmlNodePtr k = list ? list->children : NULL; k != NULL; k = k->next) {
        const char *role;

        if (!is(k, "Контрагент"))
            continue;
        role = bs_cml_ctext(m, k, "Роль");
        if (role != NULL && strcmp(role, "Покупатель") == 0)
            return bs_cml_ctext(m, k, "Ид");
        if (first == NULL)
            first = bs_cml_ctext(m, k, "Ид");
    }
    return first;
}

bs_err
bs_cml_map_document(bs_cml_rd *m, xmlNodePtr n)
{
    static const char *const h[] = {"Ид",
                                    "Номер",
                                    "Дата",
                                    "Время",
                                    "ХозОперация",
                                    "Роль",
                                    "Валюта",
                                    "Курс",
                                    "Сумма",
                                    "Комментарий",
                                    "Контрагенты",
                                    "Товары",
                                    "ЗначенияРеквизитов",
                                    NULL};
    const char *id, *op = bs_cml_ctext(m, n, "ХозОперация"), *cp;
    unsigned no = 0;
    bs_err rv;

    if (op == NULL || strcmp(op, "Заказ товара") != 0) {
        /* payments, shipments...: not orders */
        bs_cml_count_unknown(m, "Документ");
        return BS_OK;
    }
    if ((rv = need_id(m, n, &id)) != BS_OK ||
        (rv = rec_begin(m, BS_CML_ORDERS, n, id)) != BS_OK)
        return rv;
    f_text(m, "number", bs_cml_ctext(m, n, "Номер"));
    f_text(m, "date", bs_cml_ctext(m, n, "Дата"));
    f_text(m, "time", bs_cml_ctext(m, n, "Время"));
    f_text(m, "operation", op);
    f_text(m, "role", bs_cml_ctext(m, n, "Роль"));
    f_text(m, "currency", bs_cml_ctext(m, n, "Валюта"));
    f_text(m, "comment", bs_cml_ctext(m, n, "Комментарий"));
    f_text(m, "customer", buyer(m, child(n, "Контрагенты")));
    if ((rv = f_number(m, n, "Курс", "rate")) != BS_OK ||
        (rv = f_number(m, n, "Сумма", "total")) != BS_OK ||
        (rv = named_values(m, child(n, "ЗначенияРеквизитов"),
                           "ЗначениеРеквизита", "Значение", "attr.")) != BS_OK)
        return rv;
    rec_end(m);
    count_children(m, n, h);
    for (xmlNodePtr k =
             child(n, "Контрагенты") ? child(n, "Контрагенты")->children : NULL;
         k != NULL; k = k->next)
        if (is(k, "Контрагент") && (rv = map_counterparty(m, k, &cp)) != BS_OK)
            return rv;
    for (xmlNodePtr k = child(n, "Товары") ? child(n, "Товары")->children
                                           : NULL;
         k != NULL; k = k->next)
        if (is(k, "Товар") && (rv = map_line(m, k, id, ++no)) != BS_OK)
            return rv;
    return BS_OK;
}
