/*
 * fuzz_cml.c - the CommerceML 2 reader of `cml import` (cml.h), a decoder
 * of files from 1C and web shops.  The first byte's low bit picks
 * --on-error skip; the rest is the document.  A refusal is BS_EINVAL with
 * a one-line message naming a line, or out of memory; an accepted document
 * gives records that are each one flat JSON object with a valid "id", and
 * skips (with skip only) that name a line.
 */
#include <string.h>

#include "../../replication/cml.h"
#include "../../replication/flatjson.h"
#include "../../replication/record.h"
#include "fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int skipping;
static bs_arena arena;

static bs_err
on_record(void *ctx, bs_cml_coll c, uint64_t line, const char *json, size_t n)
{
    const char *id;
    size_t idlen, nf;
    bs_field *f;
    bs_errbuf err = {{0}};
    bs_err rv;

    (void)ctx;
    (void)line;
    if (c >= BS_CML_NCOLL)
        bsf_die("record of no collection");
    bs_arena_reset(&arena);
    rv = bs_flatjson_fields(json, n, &arena, &id, &idlen, &f, &nf, &err);
    if (rv != BS_OK)
        bsf_die("record is not loadable: %s\n%.*s", err.msg, (int)n, json);
    if (id == NULL || !bs_id_valid(id))
        bsf_die("record without a valid id: %.*s", (int)n, json);
    return BS_OK;
}

static void
on_skip(void *ctx, bs_cml_coll c, const char *id, const char *why)
{
    (void)ctx;
    (void)id;
    if (!skipping)
        bsf_die("a skip without --on-error skip");
    if (c >= BS_CML_NCOLL || strncmp(why, "line ", 5) != 0)
        bsf_die("skip without a line: %s", why);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bs_cml_sink sink = {on_record, on_skip, NULL};
    bs_cml_info info;
    bs_errbuf err = {{0}};
    bs_err rv;

    bsf_init();
    if (size == 0)
        return 0;
    skipping = data[0] & 1;
    bs_arena_init(&arena);
    rv = bs_cml_read((const char *)data + 1, size - 1, skipping, &sink, &info,
                     &err);
    bs_arena_fini(&arena);
    if (rv != BS_OK) {
        if (rv != BS_EINVAL && rv != BS_ENOMEM)
            bsf_die("refused with %s: %s", bs_strerror(rv), err.msg);
        if (rv == BS_EINVAL && strncmp(err.msg, "line ", 5) != 0 &&
            strcmp(err.msg, "malformed XML") != 0)
            bsf_die("a refusal without its line: %s", err.msg);
        if (strchr(err.msg, '\n') != NULL)
            bsf_die("a message of more than one line: %s", err.msg);
        return 0;
    }
    if (info.unknown_names[sizeof info.unknown_names - 1] != '\0')
        bsf_die("unknown_names not terminated");
    return 0;
}
