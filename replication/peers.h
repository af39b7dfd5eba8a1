/*
 * peers.h - the node's paired peers (BS_DB_PEERS; node-local, never
 * replicated): where a peer is, its ID, its link's schedule, and the
 * exchange bookkeeping — what the peer has acknowledged (its version
 * vector, as last received) and the message numbers each way, which make a
 * replayed exchange recognisable (1C's sent/received message numbers).
 * Stored as one PeerState record per peer (proto/storage.proto), keyed by
 * name.  Pairing and unpairing, which also change membership at the hub,
 * are in pairing.h; this module is the table.
 */
#ifndef BS_PEERS_H
#define BS_PEERS_H

#include "store.h"
#include "vv.h"

#define BS_ENDPOINT_MAX 255
#define BS_SPEC_MAX     511

typedef struct bs_peer {
    char name[BS_NODE_NAME_MAX + 1];
    char endpoint[BS_ENDPOINT_MAX + 1];
    uint8_t pk[BS_PK_LEN];
    char schedule[BS_SPEC_MAX + 1];
    char window[16];
    bs_pos *acked; /* malloc'd; the peer's vector as last received */
    size_t nacked;
    uint64_t sent_no, recv_no;
    uint64_t acked_no; /* message number of the newest envelope in acked */
    int has_inc;
    uint8_t peer_inc[BS_INC_LEN]; /* the peer's incarnation last seen */
    uint64_t last_ok_ms, last_err_ms, created_ms;
    char last_error[256];
    uint64_t sent_changes, recv_changes;
    /* The peer's clock at the last completed network exchange (clock.h):
     * peer wall - our wall is within [clock_lo_ms, clock_hi_ms]; unknown
     * when clock_at_ms is 0.  clock_base_ms is our wall clock minus a
     * clock that is never stepped, in boot clock_boot (has_boot), so a
     * later step of our wall clock can be taken out of the offset. */
    int64_t clock_lo_ms, clock_hi_ms, clock_base_ms;
    uint64_t clock_at_ms;
    int has_boot;
    uint8_t clock_boot[16];
    /* The last completed network exchange: sets it sent that we refused
     * (with the first reason), sets we sent that it did not acknowledge. */
    uint64_t refused_sets, held_there;
    char refused_reason[256];
    int hub_pin; /* bs_hub_pin: this peer is the hub this branch joins */
} bs_peer;

/*
 * Which peer a branch joins (docs/protocol.md 8.3, X4): at most one peer
 * carries a pin.  pairing.c sets it; a peer's removal takes it away.
 */
typedef enum {
    BS_PIN_NONE = 0,  /* not this branch's hub */
    BS_PIN_AUTO = 1,  /* pinned without --hub: the first peer paired (or
                         the hub this branch had joined already) */
    BS_PIN_NAMED = 2, /* named with `peer add --hub` */
} bs_hub_pin;

/*
 * An address to listen on: tcp://HOST:PORT (HOST printable ASCII without
 * blanks, a wildcard such as * or 0.0.0.0 included; PORT 1-65535) or
 * ipc://PATH.
 */
int bs_endpoint_listenable(const char *s);
/* An address to dial (a peer's): listenable, and HOST is not a wildcard
 * (*, 0.0.0.0, [::], [*]), which names no node. */
int bs_endpoint_dialable(const char *s);

/*
 * A drop folder (docs/operations.md, "Drop folders"): "dir:PATH", PATH
 * absolute, without control characters.  Returns PATH inside s, or NULL
 * when s is not a folder endpoint.  Exchanges with such a peer go through
 * exchange files in that folder, never the network (node/dropdir.h).
 */
const char *bs_endpoint_folder(const char *s);

/* The peer named `name`; BS_ENOTFOUND; BS_ESTORE for a damaged entry.  *p
 * owns its vector: release it with bs_peer_fini. */
BS_MUST_CHECK bs_err bs_peer_get(bs_txn *t, const char *name, bs_peer *p);
BS_MUST_CHECK bs_err bs_peer_find_pk(bs_txn *t, const uint8_t pk[BS_PK_LEN],
                                     bs_peer *p);
/* The peer pinned as this branch's hub (hub_pin set); BS_ENOTFOUND when
 * none is.  Release *p with bs_peer_fini. */
BS_MUST_CHECK bs_err bs_peer_pinned(bs_txn *t, bs_peer *p);
BS_MUST_CHECK bs_err bs_peer_put(bs_txn *t, const bs_peer *p);
BS_MUST_CHECK bs_err bs_peer_del(bs_txn *t, const char *name);
/* All peers, in name order; *out is an array of n peers (free each). */
BS_MUST_CHECK bs_err bs_peer_list(bs_txn *t, bs_peer **out, size_t *n);
/* The same without their vectors (acked empty): for what needs every
 * peer but not what it holds (the clock discipline of every local write:
 * at a hub of a thousand branches, their vectors were a million entries
 * decoded per write). */
BS_MUST_CHECK bs_err bs_peer_list_bare(bs_txn *t, bs_peer **out, size_t *n);
void bs_peer_fini(bs_peer *p);
void bs_peer_list_free(bs_peer *v, size_t n);

/* p's stored form (the store upgrade writes it); *out malloc'd. */
BS_MUST_CHECK bs_err bs_peer_encode(const bs_peer *p, uint8_t **out, size_t *n);

#endif
