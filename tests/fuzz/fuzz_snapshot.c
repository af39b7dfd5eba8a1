/*
 * fuzz_snapshot.c - a record snapshot (an exchange file's frame 4, a
 * session's SNAP; replication/snapshot.h, docs/protocol.md 2.9): a
 * refusal is bad input (exit 2) or out of memory; an accepted snapshot
 * keeps the decoder's own limits, and encoding it (signed with a fixed
 * key) decodes to the same snapshot, whose encoding is stable (F4) and
 * verifies with that key.  Must never crash or leak.
 */
#include <string.h>

#include "fuzz_world.h"
#include "../../replication/snapshot.h"

static int
ver_eq(const bs_snapver *a, const bs_snapver *b)
{
    return a->hlc == b->hlc && a->seq == b->seq && a->prio == b->prio &&
           memcmp(a->key, b->key, BS_STREAM_KEY_LEN) == 0;
}

static int
snap_eq(const bs_snap *a, const bs_snap *b)
{
    if (strcmp(a->coll, b->coll) != 0 || strcmp(a->id, b->id) != 0 ||
        a->done != b->done || a->seed != b->seed ||
        a->has_alive != b->has_alive || a->has_tomb != b->has_tomb ||
        a->nfields != b->nfields || a->ncovered != b->ncovered ||
        a->created_ms != b->created_ms ||
        memcmp(a->infobase, b->infobase, BS_INFOBASE_LEN) != 0 ||
        (a->has_alive && !ver_eq(&a->alive, &b->alive)) ||
        (a->has_tomb && !ver_eq(&a->tomb, &b->tomb)))
        return 0;
    for (size_t i = 0; i < a->nfields; i++)
        if (strcmp(a->fields[i].name, b->fields[i].name) != 0 ||
            !bs_value_eq(&a->fields[i].val, &b->fields[i].val) ||
            !ver_eq(&a->fields[i].ver, &b->fields[i].ver))
            return 0;
    for (size_t i = 0; i < a->ncovered; i++)
        if (memcmp(&a->covered[i], &b->covered[i], sizeof a->covered[i]) != 0)
            return 0;
    return 1;
}

/* The decoder's promises about what it accepts. */
static void
check_limits(const bs_snap *s)
{
    if (s->seed ? (!s->done || s->coll[0] != '\0' || s->id[0] != '\0')
                : !bs_collection_valid(s->coll, 0))
        bsf_die("accepted a snapshot of collection \"%s\"", s->coll);
    if (s->done ? (s->nfields > 0 || s->has_alive || s->has_tomb)
                : (s->id[0] == '\0' || s->ncovered > 0))
        bsf_die("accepted a snapshot of the wrong shape");
    if (s->ncovered > BS_SEEN_MAX || (s->nfields > 0 && !s->has_alive))
        bsf_die("accepted a snapshot past its limits");
    for (size_t i = 1; i < s->nfields; i++)
        if (strcmp(s->fields[i - 1].name, s->fields[i].name) >= 0)
            bsf_die("accepted fields out of order");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t pk[BS_PK_LEN], *sk;
    bs_errbuf err = {{0}};
    bs_snap *s, *s2;
    uint8_t *out, *out2;
    size_t n, n2;
    bs_err rv;

    bsf_init();
    if (sk == NULL && ((sk = bs_secret_alloc(BS_SK_LEN)) == NULL ||
                       bs_crypto_keypair(pk, sk) != BS_OK))
        bsf_die("no key");
    if ((rv = bs_snap_decode(data, size, &s, &err)) != BS_OK) {
        if (bs_err_exit_code(rv) != 2 && rv != BS_ENOMEM)
            bsf_die("refused with a non-input error: %s", bs_errmsg(&err, rv));
        return 0;
    }
    check_limits(s);
    rv = bs_snap_verify(s, s->hub); /* any answer, no crash */
    if (rv != BS_OK && rv != BS_EBADSIG)
        bsf_die("verify: %s", bs_strerror(rv));
    memcpy(s->hub, pk, BS_PK_LEN); /* signed again by the harness */
    if ((rv = bs_snap_encode(s, sk, &out, &n)) != BS_OK)
        bsf_die("encoding a decoded snapshot: %s", bs_strerror(rv));
    if ((rv = bs_snap_decode(out, n, &s2, &err)) != BS_OK)
        bsf_die("our own encoding does not decode: %s", bs_errmsg(&err, rv));
    if (!snap_eq(s, s2) || bs_snap_verify(s2, pk) != BS_OK)
        bsf_die("snapshot round trip differs");
    if ((rv = bs_snap_encode(s2, sk, &out2, &n2)) != BS_OK)
        bsf_die("encoding a decoded snapshot: %s", bs_strerror(rv));
    if (n2 != n || memcmp(out, out2, n) != 0)
        bsf_die("snapshot encoding is not stable");
    free(out);
    free(out2);
    bs_snap_free(s);
    bs_snap_free(s2);
    return 0;
}
