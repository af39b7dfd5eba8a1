/*
 * envelope.h - the exchange envelope: the unsigned part of an exchange,
 * outside the origins' signed bytes (docs/protocol.md 2.7).
 *
 * One is sent at the start of an exchange (HELLO) and one at its end
 * (ACK), and one heads every exchange file.  It names the infobase, the
 * hub, the sender and its incarnation, and carries the sender's version
 * vector, which tells the receiver what to send back.
 */
#ifndef BS_ENVELOPE_H
#define BS_ENVELOPE_H

#include "changeset.h"

/* Largest encoded envelope accepted: a full vector and some room. */
#define BS_ENVELOPE_MAX (BS_SEEN_MAX * 80 + 4096)

typedef struct bs_envelope {
    uint32_t version;
    uint8_t infobase[BS_INFOBASE_LEN];
    uint8_t hub[BS_PK_LEN];
    uint8_t sender[BS_PK_LEN];
    int has_receiver;
    uint8_t receiver[BS_PK_LEN];
    bs_pos *ack; /* malloc'd: the sender's version vector */
    size_t nack;
    uint64_t created_ms;
    char sender_name[BS_NODE_NAME_MAX + 1];
    uint32_t sender_role;
    uint8_t sender_inc[BS_INC_LEN];
    uint64_t message_no;
    /* revision 2026-12 (snapshots; a node of an earlier revision neither
     * writes nor reads them) */
    uint32_t features;         /* BS_FEATURE_* (snapshot.h) */
    struct bs_snapwant *wants; /* malloc'd: records the sender lacks */
    size_t nwants;
    /* revision 2026-12 (bootstrap), with BS_FEATURE_BOOTSTRAP: from the
     * hub, 1 when the sets at or below `ack` seed the receiver */
    uint32_t seed;
} bs_envelope;

/* Encode e into *out (malloc'd: the caller frees it) and *n.
 * BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_envelope_encode(const bs_envelope *e, uint8_t **out,
                                        size_t *n);
/*
 * Decode and shape-check buf (1 .. BS_ENVELOPE_MAX bytes): the wire version,
 * the length of every id, at most BS_SEEN_MAX vector entries, a valid
 * sender name.  BS_EMALFORMED with detail, or BS_ENOMEM.  e is overwritten
 * in every case; on BS_OK it owns e->ack (release it with
 * bs_envelope_fini), on an error e->ack is NULL.
 */
BS_MUST_CHECK bs_err bs_envelope_decode(const uint8_t *buf, size_t n,
                                        bs_envelope *e, bs_errbuf *err);
/* Free e->ack and e->wants (and forget them); e itself is the caller's. */
void bs_envelope_fini(bs_envelope *e);

#endif
