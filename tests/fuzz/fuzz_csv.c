/*
 * fuzz_csv.c - the CSV reader of `load --format csv` (csvfile.h), a decoder
 * of files from other systems.  The first byte picks the options (the
 * delimiter, --types, --on-error skip); the rest is the file.  A refusal
 * is BS_EINVAL (exit 2) with a message naming a line, or out of memory; an
 * accepted file gives one JSON Lines object per entry of the line map, with
 * increasing file lines, each an object whose "id" is a string; with skip,
 * only quoting errors and a bad header refuse the file.
 */
#include <string.h>

#include "../../replication/csvfile.h"
#include "../../replication/flatjson.h"
#include "fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t nskipped;

static void
on_skip(void *ctx, uint64_t line, const char *id, const char *why)
{
    (void)ctx;
    if (line == 0 || strncmp(why, "line ", 5) != 0)
        bsf_die("skip without a line: %s", why);
    if (id != NULL && id[0] == '\0')
        bsf_die("skip with an empty id");
    nskipped++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delims[] = ",;\t|";
    static const char *const types[] = {NULL, "n:number", "b:bool,n:number",
                                        "a:string"};
    bs_csv_opts o = {0};
    bs_errbuf err = {{0}};
    uint64_t *lines, prev = 0;
    size_t len, nlines, k = 0;
    char *out;
    bs_arena a;
    bs_err rv;

    bsf_init();
    if (size == 0)
        return 0;
    o.delim = delims[data[0] & 3];
    o.types = types[(data[0] >> 2) & 3];
    o.id_field = data[0] & 16 ? "key" : NULL;
    o.skip = (data[0] & 32) != 0;
    o.on_skip = on_skip;
    nskipped = 0;
    rv = bs_csv_to_jsonl((const char *)data + 1, size - 1, &o, &out, &len,
                         &lines, &nlines, &err);
    if (rv != BS_OK) {
        if (rv != BS_EINVAL && rv != BS_ENOMEM)
            bsf_die("refused with %s: %s", bs_strerror(rv), err.msg);
        if (rv == BS_EINVAL && err.msg[0] == '\0')
            bsf_die("a refusal without a message");
        if (out != NULL || lines != NULL)
            bsf_die("a refusal left output");
        return 0;
    }
    bs_arena_init(&a);
    for (size_t pos = 0; pos < len; k++) {
        const char *nl = memchr(out + pos, '\n', len - pos), *id;
        size_t n, idlen, nf;
        bs_field *f;

        if (nl == NULL)
            bsf_die("output does not end in a line end");
        n = (size_t)(nl - (out + pos));
        if (k >= nlines)
            bsf_die("more objects than lines in the map");
        if (lines[k] < prev || lines[k] == 0)
            bsf_die("line map decreasing");
        prev = lines[k];
        bs_arena_reset(&a);
        /* valid JSON always; a bad ID, name or UTF-8 is load's to refuse */
        rv = bs_flatjson_fields(out + pos, n, &a, &id, &idlen, &f, &nf, &err);
        if (rv == BS_EJSON)
            bsf_die("output is not JSON: %s\n%.*s", err.msg, (int)n, out + pos);
        if (rv == BS_OK && id == NULL)
            bsf_die("an object without its id");
        pos += n + 1;
    }
    if (k != nlines)
        bsf_die("%zu objects, %zu lines in the map", k, nlines);
    bs_arena_fini(&a);
    free(out);
    free(lines);
    return 0;
}
