/*
 * fuzz_record_decode.c - the stored record decoder (record.h).  Records are
 * our own bytes, but disks and backups go bad: a corrupt record must be
 * refused (BS_ESTORE) or decode into something every reader and the merge
 * of the apply path handle without crashing.  Accepted records are
 * re-encoded (stable bytes), printed as JSON, and merged with an upsert and
 * a delete as a remote change would be.
 */
#include <string.h>

#include "../../replication/json.h"
#include "fuzz_world.h"

static void
readers(const bs_record *r)
{
    static const bs_order prio = {1, NULL, NULL};
    bs_order o = bsf_order;

    bsf_check_record(r);
    (void)bs_record_live(r, &bsf_order);
    o.use_prio = prio.use_prio;
    (void)bs_record_live(r, &o);
    free(bs_json_record("x", 1, r));
}

static void
merge(const uint8_t *data, size_t size, int deleted)
{
    bs_field f[2];
    bs_version ver = {BSF_T0_MS << 16, 7, 3, 1};
    bs_record r;
    bs_arena a;
    int changed;
    bs_err rv;

    memset(f, 0, sizeof f);
    f[0].name = "name";
    f[0].namelen = 4;
    f[0].val.type = BS_VTEXT;
    f[0].val.s = "bolt";
    f[0].val.len = 4;
    f[1].name = "qty";
    f[1].namelen = 3;
    f[1].val.type = BS_VINT;
    f[1].val.i = 5;
    bs_arena_init(&a);
    if (bs_record_decode(&r, data, size, &a) == BS_OK) {
        rv = bs_record_merge(&r, deleted, f, deleted ? 0 : 2, &ver, &bsf_order,
                             &a, &changed);
        if (rv != BS_OK && rv != BS_EINVAL && rv != BS_ENOMEM)
            bsf_die("merge failed: %s", bs_strerror(rv));
        readers(&r);
    }
    bs_arena_fini(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bs_record r;
    bs_arena a;
    bs_err rv;

    bsf_init();
    bs_arena_init(&a);
    rv = bs_record_decode(&r, data, size, &a);
    if (rv == BS_OK)
        readers(&r);
    else if (rv != BS_ESTORE && rv != BS_ENOMEM)
        bsf_die("refused with %s", bs_strerror(rv));
    bs_arena_fini(&a);
    if (rv == BS_OK) {
        merge(data, size, 0);
        merge(data, size, 1);
    }
    return 0;
}
