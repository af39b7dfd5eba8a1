/*
 * fuzz_envelope.c - the unsigned exchange envelope (a file's first frame,
 * a session's HELLO and ACK): decode -> (accepted) encode -> decode gives
 * the same envelope, and encoding that gives the same bytes (F4).  Must
 * never crash or leak; a refusal is bad input or out of memory.
 */
#include <string.h>

#include "fuzz_world.h"
#include "../../replication/snapshot.h"

static int
env_eq(const bs_envelope *a, const bs_envelope *b)
{
    if (a->version != b->version || a->has_receiver != b->has_receiver ||
        a->nack != b->nack || a->created_ms != b->created_ms ||
        a->sender_role != b->sender_role || a->message_no != b->message_no ||
        memcmp(a->infobase, b->infobase, BS_INFOBASE_LEN) != 0 ||
        memcmp(a->hub, b->hub, BS_PK_LEN) != 0 ||
        memcmp(a->sender, b->sender, BS_PK_LEN) != 0 ||
        memcmp(a->sender_inc, b->sender_inc, BS_INC_LEN) != 0 ||
        strcmp(a->sender_name, b->sender_name) != 0)
        return 0;
    if (a->has_receiver && memcmp(a->receiver, b->receiver, BS_PK_LEN) != 0)
        return 0;
    if (a->features != b->features || a->nwants != b->nwants)
        return 0;
    for (size_t i = 0; i < a->nwants; i++)
        if (strcmp(a->wants[i].coll, b->wants[i].coll) != 0 ||
            strcmp(a->wants[i].id, b->wants[i].id) != 0 ||
            strcmp(a->wants[i].after, b->wants[i].after) != 0)
            return 0;
    for (size_t i = 0; i < a->nack; i++)
        if (memcmp(&a->ack[i].origin, &b->ack[i].origin, BS_PK_LEN) != 0 ||
            memcmp(&a->ack[i].inc, &b->ack[i].inc, BS_INC_LEN) != 0 ||
            a->ack[i].seq != b->ack[i].seq)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bs_errbuf err = {{0}};
    bs_envelope e, e2, e3;
    uint8_t *out, *out2;
    size_t n, n2;
    bs_err rv, rv3;

    bsf_init();
    rv = bs_envelope_decode(data, size, &e, &err);
    rv3 = bs_envelope_decode(data, size, &e3, NULL); /* no detail wanted */
    if (rv3 != rv)
        bsf_die("decoding with and without an error buffer disagree");
    bs_envelope_fini(&e3);
    if (rv != BS_OK) {
        if (bs_err_exit_code(rv) != 2 && rv != BS_ENOMEM)
            bsf_die("refused with a non-input error: %s", bs_errmsg(&err, rv));
        bs_envelope_fini(&e); /* callers do this after a refusal too */
        return 0;
    }
    if (e.version != BS_WIRE_VERSION || e.nack > BS_SEEN_MAX ||
        e.nwants > BS_SNAP_WANTS_MAX ||
        strlen(e.sender_name) > BS_NODE_NAME_MAX ||
        (e.sender_name[0] && !bs_node_name_valid(e.sender_name)))
        bsf_die("accepted envelope breaks its own limits");
    if ((rv = bs_envelope_encode(&e, &out, &n)) != BS_OK)
        bsf_die("encoding a decoded envelope: %s", bs_strerror(rv));
    if ((rv = bs_envelope_decode(out, n, &e2, &err)) != BS_OK)
        bsf_die("our own encoding does not decode: %s", bs_errmsg(&err, rv));
    if (!env_eq(&e, &e2))
        bsf_die("envelope round trip differs");
    if ((rv = bs_envelope_encode(&e2, &out2, &n2)) != BS_OK)
        bsf_die("encoding a decoded envelope: %s", bs_strerror(rv));
    if (n2 != n || memcmp(out, out2, n) != 0)
        bsf_die("envelope encoding is not stable");
    free(out);
    free(out2);
    bs_envelope_fini(&e);
    bs_envelope_fini(&e2);
    return 0;
}
