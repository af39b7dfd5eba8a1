/*
 * test_json.c - unit tests of replication/json.c: parsing a flat JSON object
 * into sorted, validated fields (every scalar type; malformed input,
 * non-objects, nested values, bad or duplicate keys, size limits; "id"
 * handling) and printing a record back (id first, sorted fields, shortest
 * round-trip reals, escaping), checked by re-parsing with jansson.
 */
#include <criterion/criterion.h>

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "../../replication/json.h"

/* Parse text with a fresh arena; the caller finishes the arena. */
static bs_err
parse(const char *text, bs_arena *a, const char **id, bs_field **f, size_t *n,
      bs_errbuf *err)
{
    bs_arena_init(a);
    err->msg[0] = '\0';
    return bs_json_fields(text, strlen(text), a, id, f, n, err);
}

static const bs_field *
find(const bs_field *f, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].name, name) == 0)
            return &f[i];
    return NULL;
}

/* Expect text to be refused with code want and a message containing
 * `mention` (when not NULL). */
static void
expect_refused(const char *text, bs_err want, const char *mention)
{
    bs_arena a;
    const char *id;
    bs_field *f = NULL;
    size_t n;
    bs_errbuf err;
    bs_err rv = parse(text, &a, &id, &f, &n, &err);

    cr_assert_eq(rv, want, "%.60s: got %s (%s), want %s", text, bs_strerror(rv),
                 err.msg, bs_strerror(want));
    cr_assert_eq(bs_err_exit_code(rv), 2, "%.60s: bad input must exit 2", text);
    cr_assert_neq(err.msg[0], '\0', "%.60s: no message", text);
    if (mention != NULL)
        cr_assert(strstr(err.msg, mention) != NULL,
                  "%.60s: message \"%s\" does not mention %s", text, err.msg,
                  mention);
    bs_arena_fini(&a);
}

/* ---- input ---- */

Test(json, fields_of_every_scalar_type)
{
    const char *text = "{\"s\":\"x\\u00e9\",\"i\":42,\"neg\":-7,"
                       "\"big\":9223372036854775807,"
                       "\"small\":-9223372036854775808,\"r\":0.5,"
                       "\"e\":1e300,\"t\":true,\"f\":false,\"n\":null}";
    const char *want[] = {"big", "e", "f", "i",     "n",
                          "neg", "r", "s", "small", "t"};
    bs_arena a;
    const char *id = "sentinel";
    bs_field *f;
    size_t n;
    bs_errbuf err;

    cr_assert_eq(parse(text, &a, &id, &f, &n, &err), BS_OK, "%s", err.msg);
    cr_assert_null(id);
    cr_assert_eq(n, 10);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(f[i].name, want[i], "not sorted at %zu", i);
        cr_assert_eq(f[i].namelen, strlen(want[i]));
    }
    cr_assert_eq(find(f, n, "s")->val.type, BS_VTEXT);
    cr_assert_eq(find(f, n, "s")->val.len, 3);
    cr_assert_eq(memcmp(find(f, n, "s")->val.s, "x\xc3\xa9", 3), 0);
    cr_assert_eq(find(f, n, "i")->val.type, BS_VINT);
    cr_assert_eq(find(f, n, "i")->val.i, 42);
    cr_assert_eq(find(f, n, "neg")->val.i, -7);
    cr_assert_eq(find(f, n, "big")->val.i, INT64_MAX);
    cr_assert_eq(find(f, n, "small")->val.i, INT64_MIN);
    cr_assert_eq(find(f, n, "r")->val.type, BS_VREAL);
    cr_assert_eq(find(f, n, "r")->val.d, 0.5);
    cr_assert_eq(find(f, n, "e")->val.type, BS_VREAL);
    cr_assert_eq(find(f, n, "e")->val.d, 1e300);
    cr_assert_eq(find(f, n, "t")->val.type, BS_VTRUE);
    cr_assert_eq(find(f, n, "f")->val.type, BS_VFALSE);
    cr_assert_eq(find(f, n, "n")->val.type, BS_VNULL);
    bs_arena_fini(&a);
}

Test(json, real_with_zero_fraction_stays_real)
{
    bs_arena a;
    const char *id;
    bs_field *f;
    size_t n;
    bs_errbuf err;

    cr_assert_eq(parse("{\"x\":1.0,\"y\":1}", &a, &id, &f, &n, &err), BS_OK);
    cr_assert_eq(f[0].val.type, BS_VREAL);
    cr_assert_eq(f[1].val.type, BS_VINT);
    bs_arena_fini(&a);
}

Test(json, empty_object_has_no_fields)
{
    bs_arena a;
    const char *id = "x";
    bs_field *f;
    size_t n = 99;
    bs_errbuf err;

    cr_assert_eq(parse(" { } ", &a, &id, &f, &n, &err), BS_OK);
    cr_assert_eq(n, 0);
    cr_assert_null(id);
    bs_arena_fini(&a);
}

Test(json, id_is_returned_and_never_stored)
{
    bs_arena a;
    const char *id = NULL;
    bs_field *f;
    size_t n;
    bs_errbuf err;

    cr_assert_eq(parse("{\"name\":\"Ann\",\"id\":\"C-1\",\"age\":3}", &a, &id,
                       &f, &n, &err),
                 BS_OK);
    cr_assert_str_eq(id, "C-1");
    cr_assert_eq(n, 2);
    cr_assert_null(find(f, n, "id"));
    cr_assert_str_eq(f[0].name, "age");
    cr_assert_str_eq(f[1].name, "name");
    bs_arena_fini(&a);
}

Test(json, id_only_object)
{
    bs_arena a;
    const char *id = NULL;
    bs_field *f;
    size_t n = 5;
    bs_errbuf err;

    cr_assert_eq(parse("{\"id\":\"k\\u00e9y\"}", &a, &id, &f, &n, &err), BS_OK);
    cr_assert_str_eq(id, "k\xc3\xa9y");
    cr_assert_eq(n, 0);
    bs_arena_fini(&a);
}

Test(json, rejects_malformed_json)
{
    static const char *const bad[] = {
        "",
        "   ",
        "{",
        "}",
        "{\"a\":}",
        "{'a':1}",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "nul",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "{\"a\":tru}",
        "{\"a\":\"unterminated}",
        "{\"a\":\"\\x\"}",              /* bad escape */
        "{\"a\":99999999999999999999}", /* integer overflow */
        "{\"a\":\"x\\u0000y\"}",        /* NUL in a string */
        "{\"a\":\"\xff\"}",             /* invalid UTF-8 */
        "{\"a\":NaN}",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refused(bad[i], BS_EJSON, "JSON");
}

Test(json, rejects_array)
{
    expect_refused("[1,2]", BS_EINVAL, "object");
    expect_refused("[]", BS_EINVAL, "object");
    expect_refused("[{\"a\":1}]", BS_EINVAL, "object");
}

/* Scalars are not objects: refused, as bad input. */
Test(json, rejects_scalar_top_level)
{
    static const char *const bad[] = {"\"str\"", "5", "-1.5", "true", "null"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bs_arena a;
        const char *id;
        bs_field *f;
        size_t n;
        bs_errbuf err;
        bs_err rv = parse(bad[i], &a, &id, &f, &n, &err);

        cr_assert_neq(rv, BS_OK, "%s accepted", bad[i]);
        cr_assert_eq(bs_err_exit_code(rv), 2, "%s", bad[i]);
        bs_arena_fini(&a);
    }
}

/*
 * Regression (fixed): json.h says a non-object gives BS_EINVAL, but a top-level
 * string, number, boolean or null (valid JSON texts, RFC 8259) gives BS_EJSON
 * with "malformed JSON: '[' or '{' expected near '5' (column 1)": json_loadb()
 * is called without JSON_DECODE_ANY, so jansson refuses them before the
 * json_is_object() check.  Only arrays get "record must be a JSON object".
 */
Test(json, scalar_top_level_is_einval)
{
    expect_refused("5", BS_EINVAL, "object");
    expect_refused("\"str\"", BS_EINVAL, "object");
    expect_refused("true", BS_EINVAL, "object");
    expect_refused("null", BS_EINVAL, "object");
}

Test(json, rejects_nested_values_naming_the_field)
{
    expect_refused("{\"a\":1,\"addr\":{\"city\":\"Tartu\"}}", BS_EINVAL,
                   "\"addr\"");
    expect_refused("{\"tags\":[1,2]}", BS_EINVAL, "\"tags\"");
    expect_refused("{\"tags\":[]}", BS_EINVAL, "\"tags\"");
    expect_refused("{\"o\":{}}", BS_EINVAL, "object");
    expect_refused("{\"l\":[]}", BS_EINVAL, "array");
}

Test(json, rejects_non_string_id)
{
    expect_refused("{\"id\":5}", BS_EINVAL, "\"id\"");
    expect_refused("{\"id\":null}", BS_EINVAL, "\"id\"");
    expect_refused("{\"id\":true}", BS_EINVAL, "\"id\"");
    expect_refused("{\"id\":1.5}", BS_EINVAL, "\"id\"");
    expect_refused("{\"id\":{\"x\":1}}", BS_EINVAL, "\"id\"");
    expect_refused("{\"id\":[\"a\"]}", BS_EINVAL, "\"id\"");
}

Test(json, rejects_duplicate_keys)
{
    expect_refused("{\"a\":1,\"a\":2}", BS_EJSON, "duplicate");
    expect_refused("{\"a\":1,\"b\":2,\"a\":1}", BS_EJSON, "duplicate");
    expect_refused("{\"id\":\"x\",\"id\":\"y\"}", BS_EJSON, "duplicate");
}

Test(json, rejects_bad_field_names)
{
    expect_refused("{\"\":1}", BS_EINVAL, "field name");
    expect_refused("{\"a\\u0001\":1}", BS_EINVAL, "field name");
    expect_refused("{\"a\\nb\":1}", BS_EINVAL, "field name");
    expect_refused("{\"a\\u0000b\":1}", BS_EJSON, NULL); /* NUL in a key */
}

Test(json, field_name_length_limit)
{
    char text[400];
    char name[200];
    bs_arena a;
    const char *id;
    bs_field *f;
    size_t n;
    bs_errbuf err;

    memset(name, 'n', 128);
    name[128] = '\0';
    snprintf(text, sizeof text, "{\"%s\":1}", name);
    cr_assert_eq(parse(text, &a, &id, &f, &n, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(f[0].namelen, 128);
    bs_arena_fini(&a);
    memset(name, 'n', 129);
    name[129] = '\0';
    snprintf(text, sizeof text, "{\"%s\":1}", name);
    expect_refused(text, BS_EINVAL, "field name");
}

/* {"pad":"xxx..."} of exactly `len` bytes. */
static char *
object_of_size(size_t len)
{
    char *s = malloc(len + 1);

    cr_assert_not_null(s);
    cr_assert_geq(len, 12);
    memcpy(s, "{\"pad\":\"", 8);
    memset(s + 8, 'x', len - 10);
    memcpy(s + len - 2, "\"}", 3);
    return s;
}

Test(json, size_limit_is_exactly_record_json_max)
{
    char *ok = object_of_size(BS_RECORD_JSON_MAX);
    char *big = object_of_size(BS_RECORD_JSON_MAX + 1);
    bs_arena a;
    const char *id;
    bs_field *f;
    size_t n;
    bs_errbuf err;

    cr_assert_eq(strlen(ok), BS_RECORD_JSON_MAX);
    cr_assert_eq(parse(ok, &a, &id, &f, &n, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(f[0].val.len, BS_RECORD_JSON_MAX - 10);
    bs_arena_fini(&a);
    expect_refused(big, BS_EINVAL, "larger");
    free(ok);
    free(big);
}

/* {"f0000":0,...} with n fields, optionally an "id" too. */
static char *
object_with_fields(size_t nf, int with_id)
{
    size_t cap = nf * 16 + 32, len = 0;
    char *s = malloc(cap);

    cr_assert_not_null(s);
    len += (size_t)snprintf(s + len, cap - len, "{");
    if (with_id)
        len += (size_t)snprintf(s + len, cap - len, "\"id\":\"x\"%s",
                                nf ? "," : "");
    for (size_t i = 0; i < nf; i++)
        len += (size_t)snprintf(s + len, cap - len, "\"f%04zu\":%zu%s", i, i,
                                i + 1 < nf ? "," : "");
    snprintf(s + len, cap - len, "}");
    return s;
}

/* Issue 8 item 1: a record is not limited to one change's fields (what
 * `ls` prints of a merged record loads back); `load` and `put` split it. */
Test(json, more_fields_than_one_change_accepted_with_and_without_id)
{
    char *a1 = object_with_fields(BS_FIELDS_MAX * 5, 0);
    char *a2 = object_with_fields(BS_FIELDS_MAX * 5, 1);
    bs_arena a;
    const char *id;
    bs_field *f;
    size_t n;
    bs_errbuf err;

    cr_assert_eq(parse(a1, &a, &id, &f, &n, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(n, BS_FIELDS_MAX * 5);
    bs_arena_fini(&a);
    cr_assert_eq(parse(a2, &a, &id, &f, &n, &err), BS_OK, "%s", err.msg);
    cr_assert_eq(n, BS_FIELDS_MAX * 5);
    cr_assert_str_eq(id, "x");
    bs_arena_fini(&a);
    free(a1);
    free(a2);
}

Test(json, length_argument_bounds_the_input)
{
    const char *text = "{\"a\":1}garbage";
    bs_arena a;
    const char *id;
    bs_field *f;
    size_t n;
    bs_errbuf err = {{0}};

    bs_arena_init(&a);
    cr_assert_eq(bs_json_fields(text, 7, &a, &id, &f, &n, &err), BS_OK, "%s",
                 err.msg);
    cr_assert_eq(n, 1);
    bs_arena_fini(&a);
}

/* ---- output ---- */

static bs_field
fld(const char *name, bs_value v)
{
    bs_field f;

    memset(&f, 0, sizeof f);
    f.name = name;
    f.namelen = (uint16_t)strlen(name);
    f.val = v;
    return f;
}

static bs_value
vreal(double d)
{
    bs_value v = {0};

    v.type = BS_VREAL;
    v.d = d;
    return v;
}

static bs_value
vtext(const char *s, uint32_t len)
{
    bs_value v = {0};

    v.type = BS_VTEXT;
    v.s = s;
    v.len = len;
    return v;
}

static char *
print1(const char *id, bs_field f)
{
    bs_record r = {0};
    char *s;

    r.has_alive = 1;
    r.fields = &f;
    r.nfields = 1;
    s = bs_json_record(id, strlen(id), &r);
    cr_assert_not_null(s);
    return s;
}

Test(json, record_id_first_and_fields_sorted)
{
    bs_arena a;
    const char *id;
    bs_field *f;
    size_t n;
    bs_errbuf err;
    bs_record r = {0};
    char *s;

    cr_assert_eq(parse("{\"z\":1,\"a\":\"x\",\"m\":null,\"B\":true}", &a, &id,
                       &f, &n, &err),
                 BS_OK);
    r.has_alive = 1;
    r.fields = f;
    r.nfields = n;
    s = bs_json_record("k1", 2, &r);
    cr_assert_str_eq(s, "{\"id\":\"k1\",\"B\":true,\"a\":\"x\",\"m\":null,"
                        "\"z\":1}");
    free(s);
    bs_arena_fini(&a);
}

Test(json, record_with_no_fields)
{
    bs_record r = {0};
    char *s = bs_json_record("only", 4, &r);

    cr_assert_str_eq(s, "{\"id\":\"only\"}");
    free(s);
}

Test(json, reals_print_shortest_round_trip)
{
    static const struct {
        double d;
        const char *want;
    } t[] = {
        {0.1, "0.1"},
        {1.0, "1.0"},
        {-1.0, "-1.0"},
        {100.0, "100.0"},
        {0.5, "0.5"},
        {-0.0, "-0.0"},
        {2.5e-8, "2.5e-08"},
        {0.30000000000000004, "0.30000000000000004"},
        {9007199254740992.0, "9007199254740992.0"},
    };

    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *s = print1("r", fld("x", vreal(t[i].d)));
        char want[128];

        snprintf(want, sizeof want, "{\"id\":\"r\",\"x\":%s}", t[i].want);
        cr_assert_str_eq(s, want, "%.17g", t[i].d);
        free(s);
    }
}

/* Print a real, re-parse with jansson, and require the same double, typed
 * real. */
static void
assert_real_round_trips(double d)
{
    char *s = print1("r", fld("x", vreal(d)));
    json_error_t je;
    json_t *j = json_loads(s, 0, &je), *x;
    double got;

    cr_assert_not_null(j, "%.17g printed as %s: %s", d, s, je.text);
    x = json_object_get(j, "x");
    cr_assert(json_is_real(x), "%.17g printed as %s: not a real", d, s);
    got = json_real_value(x);
    cr_assert(memcmp(&got, &d, sizeof d) == 0,
              "%.17g printed as %s reads %.17g", d, s, got);
    json_decref(j);
    free(s);
}

Test(json, reals_round_trip_through_jansson)
{
    static const double t[] = {
        1e300,
        -1e300,
        1e-300,
        4.9406564584124654e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        1e16,
        1e21,
        123456789.125,
        1.0 / 3.0,
        2.0 / 3.0,
        0.1,
        1.0,
        -0.0,
        3.141592653589793,
        6.02214076e23,
        1e15,
        999999999999999.9,
        5e-324,
    };
    uint64_t s = 0x12345678abcdefull;

    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        assert_real_round_trips(t[i]);
    /* And a fixed pseudo-random sample of bit patterns (finite only). */
    for (int i = 0; i < 2000; i++) {
        double d;

        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        memcpy(&d, &s, sizeof d);
        if (isfinite(d))
            assert_real_round_trips(d);
    }
}

Test(json, integers_print_exactly)
{
    bs_value v = {0};
    char *s;

    v.type = BS_VINT;
    v.i = INT64_MIN;
    s = print1("i", fld("x", v));
    cr_assert_str_eq(s, "{\"id\":\"i\",\"x\":-9223372036854775808}");
    free(s);
    v.i = INT64_MAX;
    s = print1("i", fld("x", v));
    cr_assert_str_eq(s, "{\"id\":\"i\",\"x\":9223372036854775807}");
    free(s);
}

Test(json, strings_are_escaped)
{
    static const char raw[] = "q\"b\\n\nt\tr\rc\x01\x1f"
                              "/\xc3\xa9\x7f";
    char *s = print1("i\"d\n", fld("k\"\\", vtext(raw, sizeof raw - 1)));
    json_error_t je;
    json_t *j;
    const char *key;
    json_t *val;
    int seen = 0;

    /* No raw control byte may appear in the output. */
    for (const char *p = s; *p; p++)
        cr_assert_geq((unsigned char)*p, 0x20, "raw control byte %#x in %s",
                      (unsigned)(unsigned char)*p, s);
    cr_assert(strstr(s, "\\\"") != NULL);
    cr_assert(strstr(s, "\\\\") != NULL);
    cr_assert(strstr(s, "\\n") != NULL);
    cr_assert(strstr(s, "\\u0001") != NULL);
    cr_assert(strstr(s, "\\u001f") != NULL);
    j = json_loads(s, 0, &je);
    cr_assert_not_null(j, "%s does not parse: %s", s, je.text);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "i\"d\n");
    json_object_foreach(j, key, val)
    {
        if (strcmp(key, "id") == 0)
            continue;
        cr_assert_str_eq(key, "k\"\\");
        cr_assert_eq(json_string_length(val), sizeof raw - 1);
        cr_assert_eq(memcmp(json_string_value(val), raw, sizeof raw - 1), 0);
        seen++;
    }
    cr_assert_eq(seen, 1);
    cr_assert_eq(strncmp(s, "{\"id\":", 6), 0, "id is not first: %s", s);
    json_decref(j);
    free(s);
}

/* Parse -> print -> parse again gives the same id and values; the printed
 * text re-parses with jansson to the same JSON as the input. */
static void
assert_json_round_trip(const char *text)
{
    bs_arena a, a2;
    const char *id, *id2;
    bs_field *f, *f2;
    size_t n, n2;
    bs_errbuf err;
    bs_record r = {0};
    char *out;
    json_t *jin, *jout;

    cr_assert_eq(parse(text, &a, &id, &f, &n, &err), BS_OK, "%s: %s", text,
                 err.msg);
    cr_assert_not_null(id, "%s", text);
    r.has_alive = 1;
    r.fields = f;
    r.nfields = n;
    out = bs_json_record(id, strlen(id), &r);
    cr_assert_not_null(out);
    cr_assert_eq(parse(out, &a2, &id2, &f2, &n2, &err), BS_OK, "%s: %s", out,
                 err.msg);
    cr_assert_str_eq(id2, id);
    cr_assert_eq(n2, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(f2[i].name, f[i].name);
        cr_assert(bs_value_eq(&f2[i].val, &f[i].val), "%s: field %s changed",
                  text, f[i].name);
    }
    jin = json_loads(text, 0, NULL);
    jout = json_loads(out, 0, NULL);
    cr_assert_not_null(jout, "%s", out);
    cr_assert(json_equal(jin, jout), "%s printed as %s", text, out);
    json_decref(jin);
    json_decref(jout);
    free(out);
    bs_arena_fini(&a);
    bs_arena_fini(&a2);
}

Test(json, parse_print_parse_round_trip)
{
    assert_json_round_trip("{\"id\":\"C-1\",\"name\":\"Ann \\\"A\\\" "
                           "Lee\",\"n\":-3,\"r\":0.1,\"t\":true,\"f\":false,"
                           "\"z\":null}");
    assert_json_round_trip("{\"id\":\"\\u00e4\\u00f6\",\"\\u65e5\":"
                           "\"\\ud83d\\ude00\",\"tab\":\"a\\tb\\u0007\"}");
    assert_json_round_trip("{\"id\":\"e\",\"big\":1e300,\"tiny\":-5e-324,"
                           "\"one\":1.0,\"i\":9223372036854775807}");
    assert_json_round_trip("{\"id\":\"only\"}");
    assert_json_round_trip("{\"id\":\"s\",\"path\":\"C:\\\\dir\\/x\","
                           "\"empty\":\"\"}");
}
