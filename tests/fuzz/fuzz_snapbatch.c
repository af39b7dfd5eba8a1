/*
 * fuzz_snapbatch.c - a batch of record snapshots (an exchange file's
 * frame 5, a seed's; replication/snapshot.h, docs/protocol.md 2.11): a
 * refusal is bad input (exit 2) or out of memory; an accepted batch keeps
 * the decoder's limits, each body decodes as a snapshot or is refused as
 * bad input, and the bodies, encoded again as a batch signed with a fixed
 * key, decode to the same bodies, verify with that key, match their
 * hashes, and encode stably (F4).  A version-2 batch's version-2 body
 * (protocol.md 2.12), read by a reader of its own that is its own
 * canonical check, encodes back through protobuf-c to exactly its bytes
 * when accepted: that reader accepts the canonical form alone.  Must
 * never crash or leak.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_world.h"
#include "../../replication/snapshot.h"
#include "branchsync.pb-c.h"

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
        if (b->version == BS_SNAPBATCH_VERSION2 && s->body.p[1] != 1) {
            uint8_t *again;
            size_t an;

            if (bs_snap_encode_body2(s, &again, &an) != BS_OK)
                bsf_die("out of memory");
            if (an != s->body.n || memcmp(again, s->body.p, an) != 0)
                bsf_die("accepted a version-2 body that is not canonical");
            free(again);
        }
        out[i] = s->body; /* points into b's memory */
        bs_snap_free(s);
    }
    return out;
}

/* The reader in place (bs_snapbatch_decode_borrowed, its own canonical
 * check) accepts what protobuf-c's unpack and pack accept (b; NULL:
 * refused), with the same header, signature and bodies. */
static void
same_in_place(const uint8_t *data, size_t size, const bs_snapbatch *b)
{
    bs_errbuf err = {{0}};
    bs_snapbatch *c;
    bs_err rv = bs_snapbatch_decode_borrowed(data, size, 0, &c, &err);

    if (rv == BS_ENOMEM)
        return;
    if ((rv == BS_OK) != (b != NULL))
        bsf_die("in place: %s where protobuf-c %s",
                rv == BS_OK ? "accepted" : "refused",
                b != NULL ? "accepted" : "refused");
    if (b == NULL)
        return;
    if (c->n != b->n || c->version != b->version ||
        c->header.n != b->header.n ||
        memcmp(c->header.p, b->header.p, b->header.n) != 0 ||
        memcmp(c->signature, b->signature, BS_SIG_LEN) != 0)
        bsf_die("in place: another batch");
    for (size_t i = 0; i < b->n; i++) {
        const Bs__SnapBatch *x = b->pb, *y = c->pb;
        if (x->bodies[i].len != y->bodies[i].len ||
            memcmp(x->bodies[i].data, y->bodies[i].data, x->bodies[i].len))
            bsf_die("in place: body %zu differs", i);
    }
    bs_snapbatch_free(c);
}

/* bodies as a batch of b's version (and writers), signed with sk. */
static bs_err
encode(const bs_snapbatch *b, const uint8_t *pk, const uint8_t *sk,
       const bs_slice *bodies, size_t nb, uint8_t **out, size_t *n)
{
    uint8_t *w;
    bs_err rv;

    if (b->version != BS_SNAPBATCH_VERSION2)
        return bs_snapbatch_encode(b->infobase, pk, b->created_ms, bodies, nb,
                                   sk, out, n);
    if ((w = malloc(b->nwriters * BS_STREAM_KEY_LEN)) == NULL)
        bsf_die("out of memory");
    for (size_t i = 0; i < b->nwriters; i++)
        memcpy(w + i * BS_STREAM_KEY_LEN, b->writers[i], BS_STREAM_KEY_LEN);
    rv = bs_snapbatch_encode2(b->infobase, pk, b->created_ms, w, b->nwriters,
                              bodies, nb, sk, out, n);
    free(w);
    return rv;
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
    rv = bs_snapbatch_decode(data, size, &b, &err);
    same_in_place(data, size, rv == BS_OK ? b : NULL);
    if (rv != BS_OK) {
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
    (void)bs_snapbatch_bodies_ok(b);
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
    if ((rv = encode(b, pk, sk, bodies, nb, &out, &n)) != BS_OK)
        bsf_die("encoding a decoded batch: %s", bs_strerror(rv));
    if ((rv = bs_snapbatch_decode(out, n, &b2, &err)) != BS_OK)
        bsf_die("our own batch does not decode: %s", bs_errmsg(&err, rv));
    if (b2->n != nb || b2->version != b->version ||
        bs_snapbatch_verify(b2, pk) != BS_OK)
        bsf_die("batch round trip differs");
    if (!bs_snapbatch_bodies_ok(b2))
        bsf_die("our own batch's bodies miss their hash");
    if ((rv = encode(b, pk, sk, bodies, nb, &out2, &n2)) != BS_OK)
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
