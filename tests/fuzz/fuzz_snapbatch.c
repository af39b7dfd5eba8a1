/*
 * fuzz_snapbatch.c - a batch of record snapshots (an exchange file's
 * frame 5, a seed's; replication/snapshot.h, docs/protocol.md 2.11): a
 * refusal is bad input (exit 2) or out of memory; an accepted batch keeps
 * the decoder's limits, each body decodes as a snapshot or is refused as
 * bad input, and the bodies, encoded again as a batch signed with a fixed
 * key, decode to the same bodies, verify with that key, match their
 * hashes, and encode stably (F4).  Must never crash or leak.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_world.h"
#include "../../replication/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The batch's bodies, borrowed from b (*out malloc'd). */
static bs_slice *
bodies_of(const bs_snapbatch *b)
{
    bs_slice *out = calloc(b->n, sizeof *out);

    if (out == NULL)
        bsf_die("out of memory");
    for (size_t i = 0; i < b->n; i++) {
        bs_snap *s;
        bs_errbuf err = {{0}};
        bs_err rv = bs_snapbatch_snap(b, i, &s, &err);

        if (rv != BS_OK) {
            if (bs_err_exit_code(rv) != 2 && rv != BS_ENOMEM)
                bsf_die("body refused with a non-input error: %s",
                        bs_errmsg(&err, rv));
            out[i] = (bs_slice){(const uint8_t *)"", 0};
            continue;
        }
        if (!s->batched || (!s->seed && !bs_collection_valid(s->coll, 0)) ||
            (s->nfields > 0 && !s->has_alive))
            bsf_die("accepted a batched snapshot past its limits");
        out[i] = s->body; /* points into b's memory */
        bs_snap_free(s);
    }
    return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t pk[BS_PK_LEN], *sk;
    bs_errbuf err = {{0}};
    bs_snapbatch *b, *b2;
    bs_slice *bodies;
    uint8_t *out, *out2;
    size_t n, n2, nb;
    bs_err rv;

    bsf_init();
    if (sk == NULL && ((sk = bs_secret_alloc(BS_SK_LEN)) == NULL ||
                       bs_crypto_keypair(pk, sk) != BS_OK))
        bsf_die("no key");
    if ((rv = bs_snapbatch_decode(data, size, &b, &err)) != BS_OK) {
        if (bs_err_exit_code(rv) != 2 && rv != BS_ENOMEM)
            bsf_die("refused with a non-input error: %s", bs_errmsg(&err, rv));
        return 0;
    }
    if (b->n == 0 || b->n > BS_SNAPBATCH_MAX)
        bsf_die("accepted a batch of %zu snapshots", b->n);
    rv = bs_snapbatch_verify(b, b->hub); /* any answer, no crash */
    if (rv != BS_OK && rv != BS_EBADSIG)
        bsf_die("verify: %s", bs_strerror(rv));
    for (size_t i = 0; i < b->n; i++)
        (void)bs_snapbatch_body_ok(b, i);
    bodies = bodies_of(b);
    nb = 0; /* the bodies that decode, in order */
    for (size_t i = 0; i < b->n; i++)
        if (bodies[i].n > 0)
            bodies[nb++] = bodies[i];
    if (nb == 0) {
        free(bodies);
        bs_snapbatch_free(b);
        return 0;
    }
    if ((rv = bs_snapbatch_encode(b->infobase, pk, b->created_ms, bodies, nb,
                                  sk, &out, &n)) != BS_OK)
        bsf_die("encoding a decoded batch: %s", bs_strerror(rv));
    if ((rv = bs_snapbatch_decode(out, n, &b2, &err)) != BS_OK)
        bsf_die("our own batch does not decode: %s", bs_errmsg(&err, rv));
    if (b2->n != nb || bs_snapbatch_verify(b2, pk) != BS_OK)
        bsf_die("batch round trip differs");
    for (size_t i = 0; i < nb; i++)
        if (!bs_snapbatch_body_ok(b2, i))
            bsf_die("our own batch's body %zu misses its hash", i);
    if ((rv = bs_snapbatch_encode(b->infobase, pk, b->created_ms, bodies, nb,
                                  sk, &out2, &n2)) != BS_OK)
        bsf_die("encoding a decoded batch: %s", bs_strerror(rv));
    if (n2 != n || memcmp(out, out2, n) != 0)
        bsf_die("batch encoding is not stable");
    free(out);
    free(out2);
    free(bodies);
    bs_snapbatch_free(b2);
    bs_snapbatch_free(b);
    return 0;
}
