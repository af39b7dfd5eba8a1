/*
 * fuzz_world.h - what the fuzz harnesses, their replay drivers and the
 * corpus generator share: a deterministic world of two paired nodes.
 *
 * Deterministic means byte for byte: libsodium's random source is replaced
 * by a fixed-seed generator before sodium_init() (so keys, incarnations and
 * the infobase are the same in every process) and every clock is bsf_clock
 * (a fixed start, one millisecond per reading).  The corpus generator
 * (corpus_gen.c) builds the same world as the harnesses, so the exchange
 * files and session messages it records are signed by keys the harnesses'
 * hub knows: they get past pairing and signature checks into apply.
 *
 * The world, made through the test fixture and the core API
 * (tests/lib/fixture.h): hub "head" and branch "tallinn", paired both ways
 * (the hub introduces the branch in `_members`), collection policies
 * declared by the hub (prices: priority, notes: manual), records on both
 * sides, the hub's exchange file imported at the branch (it joined), then
 * concurrent writes on both sides and the branch's exchange file for the
 * hub (w->to_hub), which the hub has NOT imported.  Nodes live in a
 * temporary directory under /dev/shm (or $TMPDIR), removed at exit.
 *
 * Test-only code: every failure here is a broken fixture and aborts.
 */
#ifndef BS_FUZZ_WORLD_H
#define BS_FUZZ_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "../../node/node.h"
#include "../../replication/hlc.h"
#include "../lib/fixture.h"

/* The fixed clock: 2025-01-01T00:00:00Z plus one ms per reading. */
#define BSF_T0_MS   1735689600000ull
#define BSF_SKEW_MS 60000u

extern const bs_clock bsf_clock;
/* Restart bsf_clock at BSF_T0_MS + offset_ms. */
void bsf_clock_set(int64_t offset_ms);

/* Use a BS_MUST_CHECK result that a harness does not need (gcc ignores
 * a (void) cast on warn_unused_result). */
static inline void
bsf_ignore(bs_err e)
{
    (void)e;
}

/* Deterministic libsodium, once per process; call before anything else. */
void bsf_init(void);

/* 1 when the check named `tag` is listed in $BSF_IGNORE (comma
 * separated): lets a fuzzing session continue past a known, reported bug.
 * Tags: config-errmsg, config-roundtrip, import-partial, decode-cap,
 * store-corrupt. */
int bsf_ignored(const char *tag);

/* Print a reason and abort (a harness invariant failed: libFuzzer reports
 * it as a crash, the replay driver exits non-zero). */
void bsf_die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

/* A new directory /dev/shm/bsfuzz-TAG-XXXXXX (or under $TMPDIR), removed
 * with everything in it at exit.  Returns a static copy of the path. */
const char *bsf_tmpdir(const char *tag);

/* Whole-file helpers; abort on error except bsf_read_file (NULL). */
void bsf_write_file(const char *path, const void *p, size_t n);
uint8_t *bsf_read_file(const char *path, size_t *n);

/* A node of the world: the fixture's (dir, name, the open node, and its
 * core with the secret key, core.sk, and bsf_clock). */
typedef bst_node bsf_node;

typedef struct bsf_world {
    char root[512];
    bsf_node hub, branch;
    uint8_t *to_branch; /* the hub's first exchange file (branch joined) */
    size_t to_branch_n;
    uint8_t *to_hub; /* the branch's exchange file, not imported */
    size_t to_hub_n;
} bsf_world;

/* Build the world described above (once per process: it consumes the
 * deterministic random stream from its start). */
void bsf_world_build(bsf_world *w, const char *tag);

/*
 * Rewrite exchange file bytes (bundle.h layout) so that mutated content
 * gets past the signatures the world can make:
 *   BSF_RESIGN_SETS  every set frame whose origin is a key the world holds
 *                    (hub, branch, the harness's own) gets a hash list
 *                    recomputed from the changes present, and a new header
 *                    signature;
 *   BSF_RESEAL_FILE  the trailer is replaced by a valid checksum and file
 *                    signature (by the envelope's sender if the world holds
 *                    its key, else by the branch).
 * Frames that do not parse are copied as they are.  Returns malloc'd bytes.
 */
#define BSF_RESIGN_SETS 1u
#define BSF_RESEAL_FILE 2u
uint8_t *bsf_reseal(const bsf_world *w, const uint8_t *file, size_t n,
                    unsigned flags, size_t *out_n);

/* The secret key the world holds for pk, or NULL. */
const uint8_t *bsf_world_key(const bsf_world *w, const uint8_t *pk);

/* A fingerprint of a node's store: digest of the live user data, counts,
 * and a hash of every key and value of every table (bst_fingerprint). */
typedef struct bsf_print {
    uint8_t digest[32];
    uint64_t records, log, streams;
    uint8_t all[32];
} bsf_print;

void bsf_print_take(bsf_node *x, bsf_print *p);
/* NULL when equal, else what differs. */
const char *bsf_print_diff(const bsf_print *a, const bsf_print *b);

/* The raw bytes of a node's data.mdb (the node is closed and reopened). */
typedef struct bsf_snap {
    uint8_t *data;
    size_t n;
} bsf_snap;

void bsf_snap_take(bsf_node *x, bsf_snap *s);
/* Put the snapshot back as the node's store (close, rewrite, reopen). */
void bsf_snap_restore(bsf_node *x, const bsf_snap *s);

/* ---- invariants shared by several harnesses (fuzz_checks.c) ---- */

#include "../../replication/changeset.h"

/* A key pair of the harness's own (deterministic), for re-sealing. */
const uint8_t *bsf_own_pk(void);
const uint8_t *bsf_own_sk(void);

/*
 * bs_changeset_change(v, i, ...), checked against the protobuf-c reference
 * bs_changeset_ref_change() (tests/lib/changeset_ref.h): both accept with equal
 * results, or both refuse; the reference may refuse more only where its capped
 * allocator does (a change valid by every documented limit: tag decode-cap then
 * applies to the fast decoder only).  A change valid by every documented limit
 * that the fast decoder refuses fails (tag decode-cap).
 */
BS_MUST_CHECK bs_err bsf_change_decode(const bs_csview *v, size_t i,
                                       bs_arena *a, bs_change *out,
                                       bs_errbuf *err);

/*
 * c was decoded (bs_changeset_change) from v: check its shape, then the
 * round trip decode -> encode (bs_csbuild_add) -> seal -> decode: the
 * second decoding must succeed and give the same change (docs/reliability.md
 * F4).
 */
void bsf_check_change(const bs_csview *v, const bs_change *c);

/* An order whose stream keys exist for every index (corrupt records name
 * streams a store does not hold; the product asserts on those). */
extern const bs_order bsf_order;

/* Every stored record decodes, under a valid key, with valid, sorted,
 * unique field names and valid texts (tag store-corrupt). */
void bsf_check_store(bs_store *s);

/* r decoded: re-encoding and decoding again gives the same bytes. */
void bsf_check_record(const bs_record *r);

#endif
