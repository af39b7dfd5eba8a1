/*
 * json.c - JSON <-> fields.
 */
#include "json.h"

#include <string.h>

#include "flatjson.h"
#include "strbuf.h"

bs_err
bs_json_fields(const char *text, size_t len, bs_arena *a, const char **id,
               bs_field **out, size_t *n, bs_errbuf *err)
{
    size_t idlen;

    /* One parser for `put`, `load` and the rest (flatjson.h); it accepts
     * what the reference parser accepted here before. */
    return bs_flatjson_fields(text, len, a, id, &idlen, out, n, err);
}

bs_err
bs_json_value(const char *text, size_t len, bs_arena *a, bs_value *out,
              bs_errbuf *err)
{
    static const char pre[] = "{\"v\":";
    char *obj;
    const char *id;
    bs_field *f;
    size_t n;
    bs_err rv;

    if (len > BS_RECORD_JSON_MAX ||
        (obj = bs_arena_alloc(a, len + sizeof pre + 1)) == NULL)
        return bs_errf(err, len > BS_RECORD_JSON_MAX ? BS_EINVAL : BS_ENOMEM,
                       "value too long");
    memcpy(obj, pre, sizeof pre - 1);
    memcpy(obj + sizeof pre - 1, text, len);
    obj[sizeof pre - 1 + len] = '}';
    rv = bs_json_fields(obj, len + sizeof pre, a, &id, &f, &n, NULL);
    if (rv == BS_ENOMEM)
        return rv;
    if (rv != BS_OK || n != 1 || id != NULL || strcmp(f[0].name, "v") != 0)
        return bs_errf(err, BS_EINVAL,
                       "the value must be a JSON string, number, boolean or "
                       "null");
    *out = f[0].val;
    return BS_OK;
}

/* ---- output: a small emitter, so reals print in their shortest
 * round-trip form (0.1, not 0.10000000000000001) ---- */

static void
sb_str(bs_strbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    bs_strbuf_add(b, "\"", 1);
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
            bs_strbuf_add(b, s + start, i - start);
            bs_strbuf_add(b, e, strlen(e));
            start = i + 1;
        }
    }
    bs_strbuf_add(b, s + start, n - start);
    bs_strbuf_add(b, "\"", 1);
}

static void
sb_real(bs_strbuf *b, double d)
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
    bs_strbuf_add(b, tmp, (size_t)len);
}

static void
sb_value(bs_strbuf *b, const bs_value *v)
{
    char tmp[32];
    int len;

    switch (v->type) {
    case BS_VNULL:
        bs_strbuf_add(b, "null", 4);
        break;
    case BS_VTRUE:
        bs_strbuf_add(b, "true", 4);
        break;
    case BS_VFALSE:
        bs_strbuf_add(b, "false", 5);
        break;
    case BS_VINT:
        len = snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
        bs_strbuf_add(b, tmp, (size_t)len);
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
bs_json_value_text(const bs_value *v)
{
    bs_strbuf b = {0};

    sb_value(&b, v);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *
bs_json_record(const char *id, size_t idlen, const bs_record *r)
{
    bs_strbuf b = {0};

    bs_strbuf_add(&b, "{\"id\":", 6);
    sb_str(&b, id, idlen);
    for (size_t i = 0; i < r->nfields; i++) {
        bs_strbuf_add(&b, ",", 1);
        sb_str(&b, r->fields[i].name, r->fields[i].namelen);
        bs_strbuf_add(&b, ":", 1);
        sb_value(&b, &r->fields[i].val);
    }
    bs_strbuf_add(&b, "}", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
