/*
 * fuzz_json.c - the JSON of `put` and `load` (bs_json_fields,
 * docs/reliability.md F3).  An accepted object gives valid, sorted, unique
 * fields; printing them as a record (bs_json_record, what `get` shows) and
 * parsing that gives the same id and fields (F4).  A refusal is BS_EJSON or
 * BS_EINVAL (exit code 2) or out of memory.  The parser itself (flatjson.c) has
 * its own differential harness, fuzz_flatjson.c.
 */
#include <string.h>

#include "../../replication/json.h"
#include "fuzz_world.h"

static void
check_fields(const bs_field *f, size_t n)
{
    if (n > BS_FIELDS_MAX)
        bsf_die("accepted %zu fields", n);
    for (size_t k = 0; k < n; k++) {
        if (f[k].namelen != strlen(f[k].name) ||
            !bs_field_name_valid(f[k].name, f[k].namelen))
            bsf_die("accepted a bad field name");
        if (k > 0 && strcmp(f[k - 1].name, f[k].name) >= 0)
            bsf_die("fields are not sorted and unique");
        if (f[k].val.type > BS_VTEXT)
            bsf_die("value type %u", f[k].val.type);
        if (f[k].val.type == BS_VREAL &&
            (f[k].val.d != f[k].val.d || f[k].val.d - f[k].val.d != 0))
            bsf_die("accepted NaN or infinity");
        if (f[k].val.type == BS_VTEXT &&
            (f[k].val.s[f[k].val.len] != '\0' ||
             !bs_utf8_valid(f[k].val.s, f[k].val.len)))
            bsf_die("text is not NUL-terminated valid UTF-8");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bs_errbuf err = {{0}};
    const char *id, *id2;
    bs_field *f, *f2;
    size_t n, n2;
    bs_record r;
    bs_arena a;
    char *text;
    bs_err rv;

    bsf_init();
    bs_arena_init(&a);
    rv = bs_json_fields((const char *)data, size, &a, &id, &f, &n, &err);
    if (rv != BS_OK) {
        if (rv != BS_EJSON && rv != BS_EINVAL && rv != BS_ENOMEM)
            bsf_die("refused with %s: %s", bs_strerror(rv), err.msg);
        bs_arena_fini(&a);
        return 0;
    }
    check_fields(f, n);
    memset(&r, 0, sizeof r);
    r.live = 1;
    r.fields = f;
    r.nfields = n;
    if ((text = bs_json_record(id ? id : "x", id ? strlen(id) : 1, &r)) == NULL)
        bsf_die("bs_json_record failed");
    rv = bs_json_fields(text, strlen(text), &a, &id2, &f2, &n2, &err);
    if (rv != BS_OK)
        bsf_die("our own output does not parse: %s\n%s", err.msg, text);
    if (n2 != n || id2 == NULL || strcmp(id2, id ? id : "x") != 0)
        bsf_die("round trip changed the id or the field count\n%s", text);
    for (size_t k = 0; k < n; k++)
        if (strcmp(f[k].name, f2[k].name) != 0 ||
            !bs_value_eq(&f[k].val, &f2[k].val))
            bsf_die("round trip changed field \"%s\"\n%s", f[k].name, text);
    free(text);
    bs_arena_fini(&a);
    return 0;
}
