/*
 * fuzz_flatjson.c - replication/flatjson.c against jansson, byte for byte:
 * the differential test of tests/unit/test_flatjson.c, driven by libFuzzer.
 *
 * bs_flatjson_fields() replaced a jansson-based bs_json_fields(); the
 * reference below is that code.  For every input both must agree on the
 * outcome (OK, BS_EJSON, BS_EINVAL) and, when OK, on the id and on every
 * field: name, type, integer, real (bit for bit), text.  An accepted result
 * must also hold flatjson.h's promises: names valid, sorted and unique,
 * namelen and idlen right, names, texts and the id NUL-terminated, texts
 * valid UTF-8, ver zeroed.
 *
 * One known difference, not a finding: jansson 2.14 accepts a NUL byte
 * right after a number or literal ({"a":1\0}); the RFC (and flatjson) do
 * not.  Inputs with a NUL byte are only required to be BS_EJSON.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../replication/flatjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "fuzz_flatjson: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* ---- the reference: bs_json_fields() as it was, on jansson ---- */

static bs_err
ref_value(bs_arena *a, json_t *j, bs_value *v)
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
        return BS_EINVAL; /* nested */
    }
    return BS_OK;
}

static bs_err
ref_fields(const char *text, size_t len, bs_arena *a, const char **id,
           bs_field **out, size_t *n)
{
    json_error_t je;
    json_t *obj, *val;
    const char *name;
    bs_field *f;
    bs_err rv = BS_OK;

    *id = NULL;
    *n = 0;
    if (len > BS_RECORD_JSON_MAX)
        return BS_EINVAL;
    obj = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (obj == NULL)
        return BS_EJSON;
    if (!json_is_object(obj) || json_object_size(obj) > BS_FIELDS_MAX + 1) {
        json_decref(obj);
        return BS_EINVAL;
    }
    if ((f = bs_arena_alloc(a, (json_object_size(obj) + 1) * sizeof *f)) ==
        NULL) {
        json_decref(obj);
        return BS_ENOMEM;
    }
    json_object_foreach(obj, name, val)
    {
        size_t nlen = strlen(name);

        if (strcmp(name, "id") == 0) {
            if (!json_is_string(val)) {
                rv = BS_EINVAL;
                break;
            }
            *id = bs_arena_strndup(a, json_string_value(val),
                                   json_string_length(val));
            continue;
        }
        if (!bs_field_name_valid(name, nlen)) {
            rv = BS_EINVAL;
            break;
        }
        f[*n].namelen = (uint16_t)nlen;
        f[*n].name = bs_arena_strndup(a, name, nlen);
        if ((rv = ref_value(a, val, &f[*n].val)) != BS_OK)
            break;
        (*n)++;
    }
    json_decref(obj);
    if (rv == BS_OK && *n > BS_FIELDS_MAX)
        rv = BS_EINVAL;
    if (rv == BS_OK)
        rv = bs_fields_sort(f, *n, NULL);
    if (rv == BS_OK)
        *out = f;
    return rv;
}

/* ---- the harness ---- */

/* Valid UTF-8 (no surrogates, nothing above U+10FFFF, no overlong form). */
static int
utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], k;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            k = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            k = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 4, cp = c & 0x07;
        else
            return 0;
        if (n - i < k)
            return 0;
        for (unsigned j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k;
    }
    return 1;
}

static void
check_result(const char *id, size_t idlen, const bs_field *f, size_t n)
{
    if (n > BS_FIELDS_MAX)
        die("accepted %zu fields", n);
    if (id != NULL &&
        (strlen(id) != idlen || !utf8_ok((const unsigned char *)id, idlen)))
        die("id: length %zu, strlen %zu, or bad UTF-8", idlen, strlen(id));
    if (id == NULL && idlen != 0)
        die("no id but idlen %zu", idlen);
    for (size_t k = 0; k < n; k++) {
        const bs_value *v = &f[k].val;

        if (f[k].namelen != strlen(f[k].name) ||
            !bs_field_name_valid(f[k].name, f[k].namelen))
            die("accepted a bad field name");
        if (k > 0 && strcmp(f[k - 1].name, f[k].name) >= 0)
            die("fields are not sorted and unique");
        if (f[k].ver.seq != 0 || f[k].ver.hlc != 0 || f[k].ver.stream != 0 ||
            f[k].ver.prio != 0)
            die("ver not zeroed");
        if (v->type > BS_VTEXT)
            die("value type %u", v->type);
        if (v->type == BS_VREAL && (v->d != v->d || v->d - v->d != 0))
            die("accepted NaN or infinity");
        if (v->type == BS_VTEXT &&
            (v->s[v->len] != '\0' || memchr(v->s, '\0', v->len) != NULL ||
             !utf8_ok((const unsigned char *)v->s, v->len)))
            die("text of \"%s\" is not NUL-free, NUL-terminated UTF-8",
                f[k].name);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *id1, *id2;
    bs_field *f1 = NULL, *f2 = NULL;
    size_t idlen, n1, n2;
    bs_errbuf err = {{0}};
    bs_arena a1, a2;
    bs_err r1, r2;

    bs_arena_init(&a1);
    bs_arena_init(&a2);
    r1 = bs_flatjson_fields(text, size, &a1, &id1, &idlen, &f1, &n1, &err);
    if (r1 != BS_OK && r1 != BS_EJSON && r1 != BS_EINVAL && r1 != BS_ENOMEM)
        die("refused with %s: %s", bs_strerror(r1), err.msg);
    if (r1 != BS_OK && err.msg[0] == '\0' && r1 != BS_ENOMEM)
        die("refused (%s) without a message", bs_strerror(r1));
    if (r1 == BS_OK)
        check_result(id1, idlen, f1, n1);
    if (size > 0 && memchr(text, '\0', size) != NULL) {
        if (r1 != BS_EJSON && r1 != BS_ENOMEM)
            die("a NUL byte, but %s", bs_strerror(r1));
        goto out;
    }
    r2 = ref_fields(text, size, &a2, &id2, &f2, &n2);
    if (r1 == BS_ENOMEM || r2 == BS_ENOMEM)
        goto out;
    if (r1 != r2)
        die("flatjson says %s (%s), jansson says %s", bs_strerror(r1), err.msg,
            bs_strerror(r2));
    if (r1 != BS_OK)
        goto out;
    if ((id1 == NULL) != (id2 == NULL) ||
        (id1 != NULL && (idlen != strlen(id2) || memcmp(id1, id2, idlen) != 0)))
        die("the ids differ");
    if (n1 != n2)
        die("%zu fields, jansson %zu", n1, n2);
    for (size_t k = 0; k < n1; k++) {
        const bs_value *v1 = &f1[k].val, *v2 = &f2[k].val;

        if (f1[k].namelen != f2[k].namelen ||
            memcmp(f1[k].name, f2[k].name, f1[k].namelen) != 0)
            die("field %zu: names differ", k);
        if (v1->type != v2->type)
            die("\"%s\": types differ", f2[k].name);
        if ((v1->type == BS_VINT && v1->i != v2->i) ||
            (v1->type == BS_VREAL && memcmp(&v1->d, &v2->d, 8) != 0) ||
            (v1->type == BS_VTEXT &&
             (v1->len != v2->len || memcmp(v1->s, v2->s, v1->len) != 0)))
            die("\"%s\": values differ", f2[k].name);
    }
out:
    bs_arena_fini(&a1);
    bs_arena_fini(&a2);
    return 0;
}
