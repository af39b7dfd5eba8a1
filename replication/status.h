/*
 * status.h - the node's state (`status`): identity, change log, streams
 * held back or quarantined, per peer what is pending each way and how old
 * the oldest unacknowledged change is, its clock against ours and what
 * went wrong in the last exchange (sets refused here, sets held there),
 * the node's clock against its peers' (clock.h), the conflict counts,
 * per office (the head office's view of its branches, issue 9): last
 * contact, lag and the changes refused by rule, and on request
 * per-collection record counts.  Read-only; any transaction.
 */
#ifndef BS_STATUS_H
#define BS_STATUS_H

#include "compact.h"
#include "clock.h"
#include "meta.h"
#include "peers.h"
#include "store.h"

typedef struct bs_status_opts {
    uint64_t now_ms;
    uint64_t retention_ms;
    int count_records; /* scan records for per-collection counts */
    /* the clock discipline (clock.h); clock.now_ms NULL: a clock standing
     * at now_ms, without a base (steps unseen) */
    bs_clock clock;
    uint64_t max_skew_ms;
    int clock_ahead; /* bs_clock_policy */
} bs_status_opts;

typedef struct bs_peer_status {
    char name[BS_NODE_NAME_MAX + 1];
    char endpoint[BS_ENDPOINT_MAX + 1];
    uint8_t pk[BS_PK_LEN];
    char schedule[BS_SPEC_MAX + 1];
    char window[16];
    uint64_t last_ok_ms, last_err_ms;
    char last_error[256];
    uint64_t pending_out; /* changes we hold that it has not acknowledged */
    uint64_t pending_in;  /* changes it holds that we lack */
    uint64_t oldest_unacked_age_s;
    uint64_t received_changes;
    int needs_full_resync; /* silent longer than the retention limit */
    /* its clock minus ours, now (clock.h): the middle of the bounds the
     * last exchange gave, and half their width; clock_known 0: not
     * measured in the last BS_CLOCK_SAMPLE_MAX_AGE_MS */
    int clock_known;
    int64_t clock_offset_ms, clock_error_ms;
    uint64_t clock_at_ms;
    /* the last completed exchange: sets it sent that were refused here
     * (and the first reason), sets sent to it that it did not acknowledge */
    uint64_t refused_sets, held_there;
    char refused_reason[256];
} bs_peer_status;

/* A stream that needs attention: held back or quarantined. */
typedef struct bs_stream_status {
    uint8_t origin[BS_PK_LEN];
    uint64_t seq;
    int quarantined;
    char note[96];
} bs_stream_status;

/*
 * Another office as this node sees it: every member (`_members`, revoked
 * ones included) and every paired peer, except this node.  Last contact
 * is the last successful exchange with it (paired only) and the origin
 * time of the newest set of its own streams held here; lag is what is
 * pending with it (paired only, as in bs_peer_status); refused_by_rule
 * counts its changes refused by rule here, with the first reason and
 * the time of the latest (access.h, bs_access_refused).
 */
typedef struct bs_office_status {
    uint8_t pk[BS_PK_LEN];
    char name[BS_NODE_NAME_MAX + 1]; /* member name, else peer name */
    int role;                        /* bs_role; branch unless the hub */
    int member, revoked;  /* in `_members` (the hub always); revoked there */
    int peer;             /* index into peers, -1 not paired */
    uint64_t last_ok_ms;  /* last successful exchange; 0 none */
    uint64_t last_set_ms; /* its newest set held here; 0 none */
    uint64_t changes;     /* of its own streams, held here */
    uint64_t pending_out, pending_in, oldest_unacked_age_s;
    uint64_t refused_by_rule;
    char refused_first[BS_ERRMSG_LEN];
    uint64_t refused_last_ms; /* the latest refusal; 0 unknown */
    /* regional hubs (members.h, docs/design.md "Regional hubs"): */
    int region_hub;                 /* the hub declared it a regional hub */
    char via[BS_NODE_NAME_MAX + 1]; /* the regional hub relaying it; "" */
    /* how far it held this infobase's hub's stream when it sealed its
     * newest set held here (that set's signed `seen`; its own report,
     * whoever relayed it), and how far this node holds that stream:
     * hub_held - hub_seen is the office's lag behind the hub as it last
     * said; has_seen 0: no set of it is held here, or it is paired here
     * (its lag is known then) */
    int has_seen;
    uint64_t hub_seen, hub_held;
} bs_office_status;

typedef struct bs_coll_status {
    char name[BS_COLLECTION_MAX + 1];
    uint64_t records, deleted;
} bs_coll_status;

typedef struct bs_status {
    bs_meta meta;
    uint64_t change_sets, changes, own_changes;
    uint64_t conflicts_open, conflicts_total;
    /* the node's clock against its peers' (bs_clock_judge) and what is
     * done about it: 0 in step (within max_skew), else BS_CLOCK_CORRECT
     * + 1 (writes stamped back by clock.ahead_ms) or BS_CLOCK_REFUSE + 1
     * (local writes refused) */
    bs_clock_verdict clock;
    int clock_action;
    uint64_t max_skew_ms;
    bs_peer_status *peers; /* malloc'd arrays */
    size_t npeers;
    bs_stream_status *streams;
    size_t nstreams;
    bs_office_status *offices; /* member order, then unlisted peers */
    size_t noffices;
    bs_coll_status *colls; /* only with count_records; name order */
    size_t ncolls;
    /* a seed in progress (movein.h bs_seeding): the last record merged
     * (coll "" before the first) and how many were */
    int seeding;
    char seed_coll[BS_COLLECTION_MAX + 1], seed_id[BS_ID_MAX + 1];
    uint64_t seed_records;
    /* the log's size (compact.h): sets, bytes, the oldest set kept, sets
     * compacted so far */
    bs_logsize log;
} bs_status;

/* Fill *st (release with bs_status_fini).  BS_ESTORE (err names it) for a
 * record that does not decode while counting. */
BS_MUST_CHECK bs_err bs_status_read(bs_txn *t, const bs_meta *m,
                                    const bs_status_opts *o, bs_status *st,
                                    bs_errbuf *err);
void bs_status_fini(bs_status *st);

#endif
