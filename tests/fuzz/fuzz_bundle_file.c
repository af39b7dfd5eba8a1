/*
 * fuzz_bundle_file.c - `branchsync inspect FILE` on untrusted exchange
 * files (docs/reliability.md F3): the input is written to a file under
 * /dev/shm and bs_bundle_inspect() reads it.  Must never crash or leak; a
 * refusal is bad input (exit 2) and a description is a JSON object.
 * fuzz_bundle_import.c imports the same kind of input into a node.
 */
#include <jansson.h>
#include <stdio.h>

#include "../../node/render.h"
#include "../../replication/bundle.h"
#include "fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[600];
    bs_errbuf err = {{0}};
    bs_inspect in;
    json_t *j;
    bs_err rv;

    bsf_init();
    if (path[0] == '\0')
        snprintf(path, sizeof path, "%s/input.bsx", bsf_tmpdir("inspect"));
    bsf_write_file(path, data, size);
    rv = bs_bundle_inspect(path, &in, &err);
    if (rv == BS_OK) {
        if ((j = bs_render_inspect(path, &in)) == NULL || !json_is_object(j))
            bsf_die("inspect printed something that is not a JSON object");
        if (!json_is_array(json_object_get(j, "change_sets")) ||
            json_array_size(json_object_get(j, "change_sets")) != in.nsets)
            bsf_die("inspect output has no change_sets array");
        json_decref(j);
        bs_inspect_fini(&in);
    } else if (bs_err_exit_code(rv) != 2 && rv != BS_ENOMEM) {
        bsf_die("refused with a non-input error: %s", bs_errmsg(&err, rv));
    }
    return 0;
}
