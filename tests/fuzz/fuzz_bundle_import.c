/*
 * fuzz_bundle_import.c - `branchsync import FILE` at the hub of the
 * deterministic world (fuzz_world.h), docs/reliability.md F2, F3.
 *
 * Input: one flag byte, then the exchange file.  Flags:
 *   1  re-sign every set whose origin key the world holds (its hash list
 *      recomputed), so mutated changes reach apply;
 *   2  re-seal the file (checksum and file signature), so mutations get
 *      past the framing checks;
 *   4  import with the hub's wall clock an hour behind the world's
 *      (everything is from the future: held sets, reliability.md S10).
 * The hub is made once per process; its store is put back from a snapshot
 * whenever an input changed it, so every input meets the same hub.
 *
 * Invariant: the import is refused as bad input (exit code 2) with the
 * store unchanged (digest, log and stream counts, the fingerprint of every
 * table: bsf_print), or accepted, and then importing the same file again
 * is a no-op (reliability.md S3, S5, P10).
 */
#include <stdio.h>
#include <string.h>

#include "../../replication/bundle.h"
#include "fuzz_world.h"

static bsf_world w;
static bsf_snap tmpl;
static bsf_print tmpl_print;
static char path[600];
static unsigned long n_inputs, n_accepted, n_refused;
static int verbose;

static void
stats(void)
{
    fprintf(stderr,
            "fuzz_bundle_import: %lu inputs, %lu accepted, %lu refused\n",
            n_inputs, n_accepted, n_refused);
}

static void
setup(void)
{
    bsf_world_build(&w, "import");
    bsf_snap_take(&w.hub, &tmpl);
    bsf_print_take(&w.hub, &tmpl_print);
    bsf_check_store(w.hub.n->store);
    snprintf(path, sizeof path, "%s/input.bsx", w.root);
    if (getenv("BSF_STATS"))
        atexit(stats);
    verbose = getenv("BSF_VERBOSE") != NULL;
}

static bs_err
import(bs_xstats *st, bs_errbuf *err)
{
    /* As the CLI does: the hub has joined, so no key is needed. */
    return bs_bundle_import(w.hub.n->store, NULL, path, bsf_clock, BSF_SKEW_MS,
                            0, st, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bs_errbuf err = {{0}}, err2 = {{0}};
    bsf_print p1, p2;
    bs_xstats st;
    const char *diff;
    uint8_t *file;
    size_t n;
    bs_err rv;

    if (path[0] == '\0')
        setup();
    if (size < 1)
        return 0;
    n_inputs++;
    file = bsf_reseal(&w, data + 1, size - 1, data[0], &n);
    bsf_write_file(path, file, n);
    free(file);
    bsf_clock_set(data[0] & 4 ? -3600000 : 3600000);
    rv = import(&st, &err);
    if (verbose)
        fprintf(stderr,
                "import: %s%s%s (sets %llu, changes %llu, dup %llu, "
                "conflicts %llu, held %llu, quarantined %llu%s)\n",
                bs_strerror(rv), rv ? ": " : "", rv ? bs_errmsg(&err, rv) : "",
                (unsigned long long)st.sets, (unsigned long long)st.changes,
                (unsigned long long)st.dup_sets,
                (unsigned long long)st.conflicts, (unsigned long long)st.held,
                (unsigned long long)st.quarantined,
                st.replay ? ", replay" : "");
    bsf_print_take(&w.hub, &p1);
    if (rv != BS_OK) {
        n_refused++;
        if (bs_err_exit_code(rv) != 2)
            bsf_die("import refused with exit code %d (%s): %s",
                    bs_err_exit_code(rv), bs_strerror(rv), bs_errmsg(&err, rv));
        if ((diff = bsf_print_diff(&tmpl_print, &p1)) != NULL) {
            if (!bsf_ignored("import-partial"))
                bsf_die("a refused import changed the store: %s (refused: "
                        "%s)",
                        diff, bs_errmsg(&err, rv));
            bsf_snap_restore(&w.hub, &tmpl);
        }
        return 0;
    }
    n_accepted++;
    bsf_check_store(w.hub.n->store);
    rv = import(&st, &err2);
    if (rv != BS_OK)
        bsf_die("importing an accepted file again failed: %s",
                bs_errmsg(&err2, rv));
    bsf_print_take(&w.hub, &p2);
    if ((diff = bsf_print_diff(&p1, &p2)) != NULL)
        bsf_die("importing an accepted file again changed the store: %s", diff);
    if (bsf_print_diff(&tmpl_print, &p1) != NULL)
        bsf_snap_restore(&w.hub, &tmpl);
    return 0;
}
