/*
 * json.c - JSON <-> fields.
 */
#include "json.h"

#include <jansson.h>
#include <string.h>

static const char *
type_name(const json_t *v)
{
    return json_is_object(v) ? "an object" : "an array";
}

static bs_err
to_value(bs_arena *a, const char *name, json_t *j, bs_value *v, bs_errbuf *err)
{
    memset(v, 0, sizeof *v);
    switch (json_typeof(j)) {
    case JSON_NULL:
        v->type = BS_VNULL;
        break;
    case JSON_TRUE:
        v->type = BS_VTRUE;
        break;
    case JSON_FALSE:
        v->type = BS_VFALSE;
        break;
    case JSON_INTEGER:
        v->type = BS_VINT;
        v->i = json_integer_value(j);
        break;
    case JSON_REAL:
        v->type = BS_VREAL;
        v->d = json_real_value(j);
        break;
    case JSON_STRING:
        v->type = BS_VTEXT;
        v->len = (uint32_t)json_string_length(j);
        if ((v->s = bs_arena_strndup(a, json_string_value(j), v->len)) == NULL)
            return BS_ENOMEM;
        break;
    default:
        return bs_errf(err, BS_EINVAL,
                       "field \"%s\" is %s: fields must be strings, numbers, "
                       "booleans or null",
                       name, type_name(j));
    }
    return BS_OK;
}

static bs_err
collect(json_t *obj, bs_arena *a, const char **id, bs_field *f, size_t *n,
        bs_errbuf *err)
{
    const char *name;
    json_t *val;
    bs_err rv;

    json_object_foreach(obj, name, val)
    {
        size_t nlen = strlen(name);

        if (strcmp(name, "id") == 0) {
            if (!json_is_string(val))
                return bs_errf(err, BS_EINVAL, "\"id\" must be a string");
            if ((*id = bs_arena_strndup(a, json_string_value(val),
                                        json_string_length(val))) == NULL)
                return BS_ENOMEM;
            continue;
        }
        if (!bs_field_name_valid(name, nlen))
            return bs_errf(err, BS_EINVAL,
                           "bad field name \"%.*s\": 1 to %d bytes, no "
                           "control characters",
                           (int)(nlen > 40 ? 40 : nlen), name,
                           BS_FIELD_NAME_MAX);
        f[*n].namelen = (uint16_t)nlen;
        if ((f[*n].name = bs_arena_strndup(a, name, nlen)) == NULL)
            return BS_ENOMEM;
        if ((rv = to_value(a, name, val, &f[*n].val, err)) != BS_OK)
            return rv;
        (*n)++;
    }
    return BS_OK;
}

bs_err
bs_json_fields(const char *text, size_t len, bs_arena *a, const char **id,
               bs_field **out, size_t *n, bs_errbuf *err)
{
    json_error_t je;
    json_t *obj;
    bs_field *f;
    bs_err rv;

    *id = NULL;
    *n = 0;
    if (len > BS_RECORD_JSON_MAX)
        return bs_errf(err, BS_EINVAL, "record is larger than %u bytes",
                       BS_RECORD_JSON_MAX);
    obj = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (obj == NULL)
        return bs_errf(err, BS_EJSON, "malformed JSON: %s (column %d)", je.text,
                       je.column);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return bs_errf(err, BS_EINVAL, "record must be a JSON object");
    }
    if (json_object_size(obj) > BS_FIELDS_MAX + 1) {
        json_decref(obj);
        return bs_errf(err, BS_EINVAL, "record has more than %d fields",
                       BS_FIELDS_MAX);
    }
    f = bs_arena_alloc(a, (json_object_size(obj) + 1) * sizeof *f);
    if (f == NULL) {
        json_decref(obj);
        return BS_ENOMEM;
    }
    rv = collect(obj, a, id, f, n, err);
    json_decref(obj);
    if (rv == BS_OK && *n > BS_FIELDS_MAX)
        rv = bs_errf(err, BS_EINVAL, "record has more than %d fields",
                     BS_FIELDS_MAX);
    if (rv == BS_OK)
        rv = bs_fields_sort(f, *n, err);
    if (rv == BS_OK)
        *out = f;
    return rv;
}

/* ---- output: a small emitter, so reals print in their shortest
 * round-trip form (0.1, not 0.10000000000000001) ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void
sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;

        while (cap < b->n + n + 1)
            cap *= 2;
        if ((p = realloc(b->p, cap)) == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void
sb_str(sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        const char *e = NULL;

        if (c == '"')
            e = "\\\"";
        else if (c == '\\')
            e = "\\\\";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\t')
            e = "\\t";
        else if (c == '\r')
            e = "\\r";
        else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc[6] = '\0';
            e = esc;
        }
        if (e != NULL) {
            sb_put(b, s + start, i - start);
            sb_put(b, e, strlen(e));
            start = i + 1;
        }
    }
    sb_put(b, s + start, n - start);
    sb_put(b, "\"", 1);
}

static void
sb_real(sbuf *b, double d)
{
    char tmp[40];
    int len = 0;

    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* Keep it a real on the way back in: 1 prints as 1.0. */
    if (strspn(tmp, "-0123456789") == (size_t)len)
        len += snprintf(tmp + len, sizeof tmp - (size_t)len, ".0");
    sb_put(b, tmp, (size_t)len);
}

static void
sb_value(sbuf *b, const bs_value *v)
{
    char tmp[32];
    int len;

    switch (v->type) {
    case BS_VNULL:
        sb_put(b, "null", 4);
        break;
    case BS_VTRUE:
        sb_put(b, "true", 4);
        break;
    case BS_VFALSE:
        sb_put(b, "false", 5);
        break;
    case BS_VINT:
        len = snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
        sb_put(b, tmp, (size_t)len);
        break;
    case BS_VREAL:
        sb_real(b, v->d);
        break;
    default:
        sb_str(b, v->s, v->len);
        break;
    }
}

char *
bs_json_record(const char *id, size_t idlen, const bs_record *r)
{
    sbuf b = {0};

    sb_put(&b, "{\"id\":", 6);
    sb_str(&b, id, idlen);
    for (size_t i = 0; i < r->nfields; i++) {
        sb_put(&b, ",", 1);
        sb_str(&b, r->fields[i].name, r->fields[i].namelen);
        sb_put(&b, ":", 1);
        sb_value(&b, &r->fields[i].val);
    }
    sb_put(&b, "}", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
