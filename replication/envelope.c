/*
 * envelope.c - encoding and decoding the exchange envelope (envelope.h),
 * with the protobuf-c generated code; untrusted input is unpacked with
 * changeset.c's capped allocator.
 */
#include "envelope.h"

#include <string.h>

#include "branchsync.pb-c.h"
#include "meta.h"
#include "snapshot.h"

static ProtobufCBinaryData
bin(const void *p, size_t n)
{
    return (ProtobufCBinaryData){n, (uint8_t *)p};
}

static int
fixed(ProtobufCBinaryData d, size_t n)
{
    return d.len == n;
}

bs_err
bs_envelope_encode(const bs_envelope *e, uint8_t **out, size_t *n)
{
    Bs__Envelope m = BS__ENVELOPE__INIT;
    Bs__StreamPos *pos = NULL, **pp = NULL;
    Bs__SnapWant *ws = NULL, **wp = NULL;

    if (e->nack > 0 && ((pos = calloc(e->nack, sizeof *pos)) == NULL ||
                        (pp = calloc(e->nack, sizeof *pp)) == NULL)) {
        free(pos);
        return BS_ENOMEM;
    }
    m.version = BS_WIRE_VERSION;
    m.infobase = bin(e->infobase, BS_INFOBASE_LEN);
    m.hub = bin(e->hub, BS_PK_LEN);
    m.sender = bin(e->sender, BS_PK_LEN);
    if (e->has_receiver)
        m.receiver = bin(e->receiver, BS_PK_LEN);
    for (size_t i = 0; i < e->nack; i++) {
        bs__stream_pos__init(&pos[i]);
        pos[i].origin = bin(e->ack[i].origin, BS_PK_LEN);
        pos[i].incarnation = bin(e->ack[i].inc, BS_INC_LEN);
        pos[i].seq = e->ack[i].seq;
        pp[i] = &pos[i];
    }
    m.n_ack = e->nack;
    m.ack = pp;
    m.created_ms = e->created_ms;
    m.sender_name = (char *)e->sender_name;
    m.sender_role = e->sender_role;
    m.sender_incarnation = bin(e->sender_inc, BS_INC_LEN);
    m.message_no = e->message_no;
    m.features = e->features;
    m.seed = e->seed;
    if (e->nwants > 0 && ((ws = calloc(e->nwants, sizeof *ws)) == NULL ||
                          (wp = calloc(e->nwants, sizeof *wp)) == NULL)) {
        free(pos);
        free(pp);
        free(ws);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < e->nwants; i++) {
        bs__snap_want__init(&ws[i]);
        ws[i].collection = e->wants[i].coll;
        ws[i].id = e->wants[i].id;
        ws[i].after = e->wants[i].after;
        wp[i] = &ws[i];
    }
    m.n_wants = e->nwants;
    m.wants = wp;
    *n = bs__envelope__get_packed_size(&m);
    if ((*out = malloc(*n)) != NULL)
        bs__envelope__pack(&m, *out);
    free(pos);
    free(pp);
    free(ws);
    free(wp);
    return *out ? BS_OK : BS_ENOMEM;
}

bs_err
bs_envelope_decode(const uint8_t *buf, size_t n, bs_envelope *e, bs_errbuf *err)
{
    Bs__Envelope *m;
    bs_err rv = BS_EMALFORMED;

    memset(e, 0, sizeof *e);
    if (n == 0 || n > BS_ENVELOPE_MAX)
        return bs_errf(err, rv, "malformed envelope: size");
    if ((m = bs_changeset_pb_unpack(&bs__envelope__descriptor, buf, n)) == NULL)
        return bs_errf(err, rv, "malformed envelope: does not decode");
    if (m->version != BS_WIRE_VERSION) {
        rv = bs_errf(err, rv,
                     "envelope version %u is not supported (this "
                     "node speaks %u)",
                     m->version, BS_WIRE_VERSION);
        goto out;
    }
    if (!fixed(m->infobase, BS_INFOBASE_LEN) || !fixed(m->hub, BS_PK_LEN) ||
        !fixed(m->sender, BS_PK_LEN) ||
        !(m->receiver.len == 0 || fixed(m->receiver, BS_PK_LEN)) ||
        !fixed(m->sender_incarnation, BS_INC_LEN) || m->n_ack > BS_SEEN_MAX) {
        rv = bs_errf(err, rv, "malformed envelope: field sizes");
        goto out;
    }
    if (m->sender_name[0] && !bs_node_name_valid(m->sender_name)) {
        rv = bs_errf(err, rv, "malformed envelope: bad sender name");
        goto out;
    }
    memcpy(e->infobase, m->infobase.data, BS_INFOBASE_LEN);
    memcpy(e->hub, m->hub.data, BS_PK_LEN);
    memcpy(e->sender, m->sender.data, BS_PK_LEN);
    if ((e->has_receiver = m->receiver.len != 0))
        memcpy(e->receiver, m->receiver.data, BS_PK_LEN);
    memcpy(e->sender_inc, m->sender_incarnation.data, BS_INC_LEN);
    e->version = m->version;
    e->created_ms = m->created_ms;
    e->sender_role = m->sender_role;
    e->message_no = m->message_no;
    snprintf(e->sender_name, sizeof e->sender_name, "%s", m->sender_name);
    if ((e->ack = calloc(m->n_ack + 1, sizeof *e->ack)) == NULL) {
        rv = BS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < m->n_ack; i++) {
        if (!fixed(m->ack[i]->origin, BS_PK_LEN) ||
            !fixed(m->ack[i]->incarnation, BS_INC_LEN)) {
            rv = bs_errf(err, BS_EMALFORMED, "malformed envelope: vector");
            bs_envelope_fini(e);
            goto out;
        }
        memcpy(e->ack[i].origin, m->ack[i]->origin.data, BS_PK_LEN);
        memcpy(e->ack[i].inc, m->ack[i]->incarnation.data, BS_INC_LEN);
        e->ack[i].seq = m->ack[i]->seq;
    }
    e->nack = m->n_ack;
    e->features = m->features;
    e->seed = (m->features & BS_FEATURE_BOOTSTRAP) ? m->seed : 0;
    if (m->n_wants > BS_SNAP_WANTS_MAX) {
        rv = bs_errf(err, BS_EMALFORMED, "malformed envelope: too many wants");
        bs_envelope_fini(e);
        goto out;
    }
    if (m->n_wants > 0 &&
        (e->wants = calloc(m->n_wants, sizeof *e->wants)) == NULL) {
        rv = BS_ENOMEM;
        bs_envelope_fini(e);
        goto out;
    }
    for (size_t i = 0; i < m->n_wants; i++) {
        const Bs__SnapWant *w = m->wants[i];

        if (!bs_collection_valid(w->collection, 0) ||
            (w->id[0] != '\0' && !bs_id_wire_valid(w->id)) ||
            (w->after[0] != '\0' &&
             (w->id[0] != '\0' || !bs_id_wire_valid(w->after)))) {
            rv = bs_errf(err, BS_EMALFORMED, "malformed envelope: bad want");
            bs_envelope_fini(e);
            goto out;
        }
        snprintf(e->wants[i].coll, sizeof e->wants[i].coll, "%s",
                 w->collection);
        snprintf(e->wants[i].id, sizeof e->wants[i].id, "%s", w->id);
        snprintf(e->wants[i].after, sizeof e->wants[i].after, "%s", w->after);
    }
    e->nwants = m->n_wants;
    rv = BS_OK;
out:
    bs_changeset_pb_free(m);
    return rv;
}

void
bs_envelope_fini(bs_envelope *e)
{
    free(e->ack);
    free(e->wants);
    e->ack = NULL;
    e->nack = 0;
    e->wants = NULL;
    e->nwants = 0;
}
