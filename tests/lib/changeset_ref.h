/*
 * changeset_ref.h - a second decoder of one change, written with
 * protobuf-c's generated code plus a re-encoding check, as the reference
 * the product's fast decoder (bs_changeset_change) is tested against:
 * tests/unit/test_changeset.c and the fuzz checks (tests/fuzz/) require
 * both to accept the same changes with the same result.  Slower; never
 * on the product's data path, so it lives with the tests.
 */
#ifndef BS_CHANGESET_REF_H
#define BS_CHANGESET_REF_H

#include "../../replication/changeset.h"

/*
 * Decode present change i (0-based) of v into *out, allocating from a,
 * like bs_changeset_change.  BS_EMALFORMED when the change does not
 * unpack (the allocation cap included), is not canonically encoded, its
 * seq is not first + i, or a name, a value or the field count is out of
 * bounds; BS_ENOMEM.
 */
BS_MUST_CHECK bs_err bs_changeset_ref_change(const bs_csview *v, size_t i,
                                             bs_arena *a, bs_change *out,
                                             bs_errbuf *err);

#endif
