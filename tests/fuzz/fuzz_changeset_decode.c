/*
 * fuzz_changeset_decode.c - docs/reliability.md F1: untrusted change set
 * bytes.
 *
 * decode -> (accepted) verify with the header's origin key, decode every
 * present change and round-trip it (F4) -> free; and the stored-set
 * readers (header, info, seen) on the same bytes.  Must never crash or
 * leak; a refusal is bad input (exit code 2) or out of memory.
 *
 *   clang: build-fuzz/tests/fuzz/fuzz_changeset_decode CORPUS_DIR
 *   every build: replay_changeset_decode tests/fuzz/corpus/changeset_decode
 */
#include <string.h>

#include "fuzz_world.h"

static void
check_view(const bs_csview *v, const uint8_t *data, size_t size)
{
    bs_slice hdr;
    bs_arena a;

    if (v->raw.p != data || v->raw.n != size)
        bsf_die("the view's raw bytes are not the input");
    /* The log's reader finds the same signed bytes (equivocation checks
     * compare them, apply.c position()); of a summary form (protocol.md
     * 2.10), the same header hash and vector. */
    if (v->summary_form) {
        uint8_t hh[BS_HASH_LEN];
        uint64_t first, last;
        bs_pos *seen = NULL;
        size_t nseen = 0;

        if (bs_changeset_stored_header_hash(v->raw, hh) != BS_OK ||
            memcmp(hh, v->header_hash, BS_HASH_LEN) != 0)
            bsf_die("stored_header_hash() disagrees with decode()");
        if (bs_changeset_stored_seen(v->raw, &seen, &nseen, &first, &last) !=
                BS_OK ||
            nseen != v->nseen || first != v->first || last != v->last ||
            (nseen > 0 && memcmp(seen, v->seen, nseen * sizeof *seen) != 0))
            bsf_die("stored_seen() disagrees with decode() on the vector");
        free(seen);
    } else if (bs_changeset_stored_header(v->raw, &hdr) != BS_OK ||
               hdr.n != v->header.n || memcmp(hdr.p, v->header.p, hdr.n) != 0)
        bsf_die("stored_header() disagrees with decode() on the header");
    if (v->first == 0 || v->last < v->first ||
        v->count != v->last - v->first + 1 || v->count > BS_SET_MAX_CHANGES ||
        v->nseen > BS_SEEN_MAX || v->version != BS_WIRE_VERSION)
        bsf_die("accepted view has an inconsistent header");
    bsf_ignore(bs_changeset_verify(v, v->origin));
    bs_arena_init(&a);
    for (size_t i = 0; i < v->count; i++) {
        bs_errbuf err = {{0}};
        bs_change c;
        bs_err rv;

        if (!v->present[i])
            continue;
        bs_arena_reset(&a);
        rv = bsf_change_decode(v, i, &a, &c, &err);
        if (rv == BS_OK) {
            if (c.seq != v->first + i)
                bsf_die("change %zu has seq %llu", i,
                        (unsigned long long)c.seq);
            bsf_check_change(v, &c);
        } else if (bs_err_exit_code(rv) != 2 && rv != BS_ENOMEM) {
            bsf_die("change refused with a non-input error: %s",
                    bs_strerror(rv));
        }
    }
    bs_arena_fini(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bs_errbuf err = {{0}};
    bs_slice set = {data, size}, hdr;
    uint64_t first, last, created;
    bs_csview *v;
    bs_pos *seen;
    size_t nseen;
    bs_err rv;

    bsf_init();
    rv = bs_changeset_decode(data, size, &v, &err);
    if (rv == BS_OK) {
        check_view(v, data, size);
        bs_changeset_free(v);
    } else if (bs_err_exit_code(rv) != 2 && rv != BS_ENOMEM) {
        bsf_die("refused with a non-input error: %s", bs_errmsg(&err, rv));
    }
    /* The stored-set readers trust our own log, but disks go bad. */
    if (bs_changeset_stored_header(set, &hdr) == BS_OK &&
        (hdr.p < data || hdr.p + hdr.n > data + size))
        bsf_die("stored header points outside the input");
    bsf_ignore(bs_changeset_stored_info(set, &first, &last, &created));
    if (bs_changeset_stored_seen(set, &seen, &nseen, &first, &last) == BS_OK)
        free(seen);
    return 0;
}
