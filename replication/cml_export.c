/*
 * cml_export.c - `cml export orders` (cml.h): the live orders, each with
 * its lines and its buyer, as one CommerceML 2 document written with
 * libxml2's xmlTextWriter (which escapes the text).  Every field the
 * reader maps (docs/formats.md) is written back to its element, so the
 * document reads back to the same records; fields it does not map are
 * not written.
 */
#include "cml.h"

#include <errno.h>
#include <fcntl.h>
#include <libxml/xmlwriter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "records.h"

typedef struct ex {
    xmlTextWriterPtr w;
    bs_txn *t;
    bs_arena a; /* the lines and buyer of the order being written */
    bs_errbuf *err;
    int failed; /* a write failed */
} ex;

/* Element el holding the text of field name of r (none when absent). */
static void
el_field(ex *x, const char *el, const bs_record *r, const char *name)
{
    const bs_value *v = bs_record_field(r, name);
    char *s = NULL;
    int rc;

    if (v == NULL || v->type == BS_VNULL)
        return;
    if (v->type == BS_VTEXT)
        s = strndup(v->s, v->len);
    else
        s = bs_json_value_text(v);
    if (s == NULL) {
        x->failed = 1;
        return;
    }
    rc = xmlTextWriterWriteElement(x->w, BAD_CAST el, BAD_CAST s);
    free(s);
    if (rc < 0)
        x->failed = 1;
}

static void
start(ex *x, const char *el)
{
    if (xmlTextWriterStartElement(x->w, BAD_CAST el) < 0)
        x->failed = 1;
}

static void
end(ex *x)
{
    if (xmlTextWriterEndElement(x->w) < 0)
        x->failed = 1;
}

/* <list><item><Наименование>K</Наименование><val>V</val></item>... for
 * each field prefix.K of r. */
static void
named_values(ex *x, const bs_record *r, const char *prefix, const char *list,
             const char *item, const char *val)
{
    size_t pl = strlen(prefix);
    int open = 0;

    for (size_t i = 0; i < r->nfields; i++) {
        const bs_field *f = &r->fields[i];
        char *name;

        if (f->namelen <= pl || memcmp(f->name, prefix, pl) != 0 ||
            f->val.type == BS_VNULL)
            continue;
        if (!open++)
            start(x, list);
        start(x, item);
        name = strndup(f->name + pl, f->namelen - pl);
        if (name == NULL ||
            xmlTextWriterWriteElement(x->w, BAD_CAST "Наименование",
                                      BAD_CAST name) < 0)
            x->failed = 1;
        free(name);
        {
            char fname[BS_FIELD_NAME_MAX + 1];

            snprintf(fname, sizeof fname, "%.*s", (int)f->namelen, f->name);
            el_field(x, val, r, fname);
        }
        end(x);
    }
    if (open)
        end(x);
}

static void
counterparty(ex *x, const char *id)
{
    bs_record r;
    bs_errbuf e = {{0}};

    if (bs_records_get(x->t, "counterparties", id, &x->a, &r, &e) != BS_OK) {
        /* the buyer is not here: its Ид alone */
        start(x, "Контрагент");
        if (xmlTextWriterWriteElement(x->w, BAD_CAST "Ид", BAD_CAST id) < 0)
            x->failed = 1;
        end(x);
        return;
    }
    start(x, "Контрагент");
    if (xmlTextWriterWriteElement(x->w, BAD_CAST "Ид", BAD_CAST id) < 0)
        x->failed = 1;
    el_field(x, "Наименование", &r, "name");
    el_field(x, "ПолноеНаименование", &r, "full_name");
    el_field(x, "Роль", &r, "role");
    el_field(x, "ИНН", &r, "inn");
    el_field(x, "КПП", &r, "kpp");
    el_field(x, "Фамилия", &r, "last_name");
    el_field(x, "Имя", &r, "first_name");
    if (bs_record_field(&r, "address") != NULL) {
        start(x, "АдресРегистрации");
        el_field(x, "Представление", &r, "address");
        end(x);
    }
    end(x);
}

typedef struct line {
    int64_t no;
    bs_record r;
} line;

static int
line_cmp(const void *a, const void *b)
{
    const line *p = a, *q = b;

    return (p->no > q->no) - (p->no < q->no);
}

static void
one_line(ex *x, const bs_record *r)
{
    start(x, "Товар");
    el_field(x, "Ид", r, "product");
    el_field(x, "Наименование", r, "name");
    el_field(x, "БазоваяЕдиница", r, "unit");
    el_field(x, "ЦенаЗаЕдиницу", r, "price");
    el_field(x, "Количество", r, "quantity");
    el_field(x, "Сумма", r, "total");
    named_values(x, r, "tax.", "СтавкиНалогов", "СтавкаНалога", "Ставка");
    named_values(x, r, "attr.", "ЗначенияРеквизитов", "ЗначениеРеквизита",
                 "Значение");
    end(x);
}

/* The lines of order id, ordered by their field `line`. */
static bs_err
lines(ex *x, const char *id)
{
    char prefix[BS_ID_MAX + 2];
    bs_records_iter *it;
    line *v = NULL;
    size_t n = 0, cap = 0;
    bs_err rv;

    snprintf(prefix, sizeof prefix, "%s/", id);
    if ((rv = bs_records_iter_open(x->t, "order_lines", NULL, prefix, &it)) !=
        BS_OK)
        return rv;
    for (;;) {
        const char *lid;
        size_t lidlen;
        const bs_record *r;
        const bs_value *o, *no;

        if ((rv = bs_records_iter_next(it, &lid, &lidlen, &r, x->err)) != BS_OK)
            break;
        o = bs_record_field(r, "order");
        no = bs_record_field(r, "line");
        if (o == NULL || o->type != BS_VTEXT || o->len != strlen(id) ||
            memcmp(o->s, id, o->len) != 0)
            continue; /* another order's, whose Ид starts with this one's */
        if (n == cap) {
            line *w;

            cap = cap ? 2 * cap : 16;
            if ((w = realloc(v, cap * sizeof *w)) == NULL) {
                rv = BS_ENOMEM;
                break;
            }
            v = w;
        }
        v[n].no = no && no->type == BS_VINT ? no->i : INT64_MAX;
        /* the iterator's record lives until the next call: copy it */
        v[n].r = *r;
        v[n].r.fields =
            bs_arena_memdup(&x->a, r->fields, r->nfields * sizeof *r->fields);
        for (size_t i = 0; v[n].r.fields && i < r->nfields; i++) {
            bs_field *f = &v[n].r.fields[i];

            f->name = bs_arena_memdup(&x->a, f->name, f->namelen);
            if (f->val.type == BS_VTEXT)
                f->val.s = bs_arena_memdup(&x->a, f->val.s, f->val.len);
        }
        n++;
    }
    bs_records_iter_close(it);
    if (rv == BS_ENOTFOUND)
        rv = BS_OK;
    if (rv == BS_OK && n > 0) {
        qsort(v, n, sizeof *v, line_cmp);
        start(x, "Товары");
        for (size_t i = 0; i < n; i++)
            one_line(x, &v[i].r);
        end(x);
    }
    free(v);
    return rv;
}

static bs_err
order(ex *x, const char *id, const bs_record *r)
{
    const bs_value *cust = bs_record_field(r, "customer");
    bs_err rv;

    start(x, "Документ");
    if (xmlTextWriterWriteElement(x->w, BAD_CAST "Ид", BAD_CAST id) < 0)
        x->failed = 1;
    el_field(x, "Номер", r, "number");
    el_field(x, "Дата", r, "date");
    if (bs_record_field(r, "operation") != NULL)
        el_field(x, "ХозОперация", r, "operation");
    else if (xmlTextWriterWriteElement(x->w, BAD_CAST "ХозОперация",
                                       BAD_CAST "Заказ товара") < 0)
        x->failed = 1;
    el_field(x, "Роль", r, "role");
    el_field(x, "Валюта", r, "currency");
    el_field(x, "Курс", r, "rate");
    el_field(x, "Сумма", r, "total");
    if (cust != NULL && cust->type == BS_VTEXT) {
        char *cid = strndup(cust->s, cust->len);

        if (cid == NULL)
            return BS_ENOMEM;
        start(x, "Контрагенты");
        counterparty(x, cid);
        end(x);
        free(cid);
    }
    el_field(x, "Время", r, "time");
    el_field(x, "Комментарий", r, "comment");
    if ((rv = lines(x, id)) != BS_OK)
        return rv;
    named_values(x, r, "attr.", "ЗначенияРеквизитов", "ЗначениеРеквизита",
                 "Значение");
    end(x);
    return BS_OK;
}

static bs_err
orders(ex *x, const bs_core *c, uint64_t *n)
{
    char date[32];
    time_t now = (time_t)(bs_core_now(c) / 1000);
    struct tm tm;
    bs_records_iter *it;
    bs_err rv;

    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    if (xmlTextWriterSetIndent(x->w, 1) < 0 ||
        xmlTextWriterStartDocument(x->w, "1.0", "UTF-8", NULL) < 0)
        x->failed = 1;
    start(x, "КоммерческаяИнформация");
    if (xmlTextWriterWriteAttribute(x->w, BAD_CAST "xmlns",
                                    BAD_CAST "urn:1C.ru:commerceml_2") < 0 ||
        xmlTextWriterWriteAttribute(x->w, BAD_CAST "ВерсияСхемы",
                                    BAD_CAST "2.08") < 0 ||
        xmlTextWriterWriteAttribute(x->w, BAD_CAST "ДатаФормирования",
                                    BAD_CAST date) < 0)
        x->failed = 1;
    if ((rv = bs_records_iter_open(x->t, "orders", NULL, NULL, &it)) != BS_OK)
        return rv;
    for (;;) {
        const char *id;
        size_t idlen;
        const bs_record *r;
        char oid[BS_ID_MAX + 1];

        if ((rv = bs_records_iter_next(it, &id, &idlen, &r, x->err)) != BS_OK)
            break;
        snprintf(oid, sizeof oid, "%.*s", (int)idlen, id);
        bs_arena_reset(&x->a);
        if ((rv = order(x, oid, r)) != BS_OK)
            break;
        (*n)++;
    }
    bs_records_iter_close(it);
    if (rv != BS_ENOTFOUND)
        return rv;
    end(x);
    if (xmlTextWriterEndDocument(x->w) < 0)
        x->failed = 1;
    return BS_OK;
}

bs_err
bs_cml_export_orders(const bs_core *c, const char *path, uint64_t *norders,
                     bs_errbuf *err)
{
    char tmp[4096];
    uint64_t n = 0;
    xmlOutputBufferPtr out;
    FILE *f = NULL;
    int fd;
    ex x;
    bs_err rv;

    memset(&x, 0, sizeof x);
    x.err = err;
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
        return bs_errf(err, BS_EINVAL, "%s: path too long", path);
    if ((fd = mkstemp(tmp)) < 0 || (f = fdopen(fd, "w")) == NULL) {
        rv = bs_errf(err, BS_EIO, "%s: cannot write it: %s", path,
                     strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return rv;
    }
    if ((rv = bs_store_read(c->store, &x.t, err)) != BS_OK)
        goto out;
    /* the FILE stays ours: flushed, synced and closed below */
    if ((out = xmlOutputBufferCreateFile(f, NULL)) == NULL ||
        (x.w = xmlNewTextWriter(out)) == NULL) {
        if (out != NULL)
            xmlOutputBufferClose(out);
        bs_txn_abort(x.t);
        rv = BS_ENOMEM;
        goto out;
    }
    bs_arena_init(&x.a);
    rv = orders(&x, c, &n);
    bs_txn_abort(x.t);
    if (xmlTextWriterFlush(x.w) < 0)
        x.failed = 1;
    xmlFreeTextWriter(x.w); /* and its output buffer, not f */
    bs_arena_fini(&x.a);
    if (rv == BS_OK && x.failed)
        rv = bs_errf(err, BS_EIO, "%s: cannot write it (disk full?)", path);
out:
    if ((fflush(f) != 0 || fsync(fileno(f)) != 0) && rv == BS_OK)
        rv = bs_errf(err, BS_EIO, "%s: %s", path, strerror(errno));
    if (fclose(f) != 0 && rv == BS_OK)
        rv = bs_errf(err, BS_EIO, "%s: %s", path, strerror(errno));
    if (rv == BS_OK && rename(tmp, path) != 0)
        rv = bs_errf(err, BS_EIO, "%s: %s", path, strerror(errno));
    if (rv != BS_OK) {
        unlink(tmp);
        return rv;
    }
    if (norders != NULL)
        *norders = n;
    return BS_OK;
}
