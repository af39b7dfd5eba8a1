/*
 * admit.h - the one admission function: what to do with a received change
 * set, decided in one place for every path that receives sets (an exchange
 * file's pass 1 and pass 2, a network session, the retry of held sets), so
 * that the paths cannot drift apart (P29).
 *
 * The rules, in the order they are checked (docs/protocol.md, "admitting
 * a change set", A1-A12); the first failing rule decides:
 *  A1  the node has joined an infobase                 else BS_EINFOBASE
 *  A2  the set belongs to this infobase (P15)          else BS_EINFOBASE
 *  A3  its origin is a member, or a revoked member whose revocation bound
 *      covers the set (S2); a set whose origin only a held hub set
 *      introduces is HELD (after A4); anything else    BS_EFORGED
 *      A non-member's set is never stored anywhere.
 *  A4  the origin's signature verifies over the exact header bytes
 *      (S1, P14)                                        else BS_EBADSIG
 *  A5  its stream is quarantined                       -> QUARANTINED (no-op)
 *  A5r its stream was released by the hub (quarantine.h) and it covers the
 *      release's seq without being the kept set -> DUPLICATE (dropped); on
 *      such a stream, what A6 or A9 would quarantine is dropped instead
 *  A6  wholly at or below the stream's position: a replay, a no-op
 *      (INV-3, S5) -> DUPLICATE; unless the log holds other signed bytes
 *      for that position -> QUARANTINE (S6)
 *  A7  it overlaps the position                        BS_EMALFORMED
 *  A8  it starts past position + 1: HELD when the held sets of its stream
 *      fill the gap (it waits behind them, INV-2), else BS_EGAP
 *  A9  its first link does not match the chain head    -> QUARANTINE (P16)
 *  A10 every present change decodes (C1-C5)            else BS_EMALFORMED
 *  A10h its `seen` vector covers no more of the hub's streams than this
 *      node holds (so it knows every rule the origin knew) -> HELD
 *  A11 every change is one its origin may write: only the hub writes
 *      system collections (S2), else BS_EPERM; a change the rules that
 *      govern it forbid (access.h) is BS_EPERM for the whole set when its
 *      origin had seen that rule version, else refused by rule: the set
 *      applies without it
 *  A12 a change stamped more than max_skew ahead of the local clock holds
 *      the whole set (S10)                             -> HELD
 *  otherwise APPLY.
 *
 * What may be held: at most BS_HELD_PER_STREAM sets per stream; a hold
 * beyond that is refused (BS_EGAP), so held sets cannot grow a store
 * without bound.
 *
 * Pass 1 of an exchange file runs the same function "dry", on a read
 * transaction: positions advance in a private copy of the stream table,
 * and `_members` changes of hub sets earlier in the file count as the
 * store's will once they are applied.  So a file is refused in pass 1
 * exactly when pass 2 would refuse one of its sets.
 */
#ifndef BS_ADMIT_H
#define BS_ADMIT_H

#include "access.h"
#include "changeset.h"
#include "members.h"
#include "meta.h"
#include "streams.h"

#define BS_HELD_PER_STREAM 32

typedef enum {
    BS_ADMIT_APPLY,       /* apply it now */
    BS_ADMIT_DUPLICATE,   /* everything in it is held already (INV-3) */
    BS_ADMIT_QUARANTINED, /* its stream waits for an administrator */
    BS_ADMIT_QUARANTINE,  /* it proves two histories of its stream (S6) */
    BS_ADMIT_HOLD,        /* keep it back and retry it later */
} bs_verdict;

typedef enum {
    BS_HOLD_NONE = 0,
    BS_HOLD_CLOCK = 1,        /* stamped beyond the skew bound (S10) */
    BS_HOLD_BEHIND = 2,       /* an earlier set of its stream is held */
    BS_HOLD_INTRODUCTION = 3, /* its origin is introduced by a held set */
    BS_HOLD_HUB = 4,          /* it saw hub changes this node lacks */
} bs_hold_reason;

/* "its clock is ahead of ours", ... (for notes and status). */
const char *bs_hold_reason_text(bs_hold_reason r);

/* What admission looks at.  Caller-owned; see bs_admission_init. */
typedef struct bs_admission {
    bs_txn *txn;
    bs_meta meta;
    bs_streamtab *streams; /* borrowed: positions */
    int dry;
    int joining; /* dry: the node joins with this exchange (set by caller) */
    uint64_t now_ms, max_skew_ms;
    bs_arena *arena; /* borrowed: decoded changes live here */
    /* dry: members as hub sets earlier in the exchange leave them */
    bs_member *learnt;
    size_t nlearnt;
    /* members introduced by held hub sets, looked up on first need */
    bs_member *intro;
    size_t nintro;
    int intro_loaded;
    /* dry: the sets this exchange would hold, per stream key */
    struct bs_dry_held *dheld;
    size_t ndheld;
    /* dry: rule versions of hub sets earlier in the exchange */
    struct bs_dry_rule *drules;
    size_t ndrules;
    /* owners given by the admitted changes of the set being judged, not
     * yet stored (access.h) */
    bs_owner_notes notes;
    /* dry: the records (bs_access_record_hash) whose owner a set earlier
     * in the exchange changes: their verdicts wait for pass 2 */
    uint64_t *touched;
    size_t ntouched, ntouchslot; /* ntouchslot: a power of two, or 0 */
    /* collections whose every rule version lets anyone write and names no
     * owner field, so their changes need no judging: a cache, emptied
     * when a hub set brings rules */
    struct bs_open_coll {
        char name[BS_COLLECTION_MAX + 1];
        int open;
    } open[8];
    size_t nopen;
    /* the stored rule versions of the collections judged, oldest first: a
     * cache, emptied with the one above */
    struct bs_rule_cache *rcache;
    size_t nrcache;
    /* the seed point (revision 2026-12, bootstrap; docs/design.md
     * "Snapshot bootstrap"): the hub's vector when an exchange from the
     * pinned hub seeds this branch (Envelope.seed), borrowed; NULL
     * otherwise.  A set at or below it may start past position + 1 (A8s:
     * the position jumps) and leave out changes of user collections
     * (A7s: the snapshots summarise them). */
    const bs_pos *seed;
    size_t nseed;
    /* the changes of the set being applied (bs_admit.changes): chcap
     * entries kept from set to set, of which only those a set filled
     * (chused[0..nchused)) are cleared for the next, not the whole seq
     * range; owned, freed by bs_admission_fini */
    bs_change *ch;
    uint32_t *chused;
    size_t chcap, nchused;
    /* the name N12 judges record snapshots by, and whether this node is
     * a regional hub: a cache (a seed judges a million snapshots),
     * emptied by every set admitted (a hub set may rename, revoke or
     * make a region) */
    char snapname[BS_NODE_NAME_MAX + 1];
    int snapname_ok, snap_region;
} bs_admission;

/*
 * Prepare to admit sets in t as node m (copied) with positions in tab
 * (borrowed; with dry, a private copy that admission advances in memory,
 * else the store's table, to which it adds new streams in t).  now_ms is
 * the local wall clock for A12.
 */
void bs_admission_init(bs_admission *ad, bs_txn *t, const bs_meta *m,
                       bs_streamtab *tab, int dry, uint64_t now_ms,
                       uint64_t max_skew_ms, bs_arena *a);
void bs_admission_fini(bs_admission *ad);
/* Held sets changed (a hub set was held): look them up again. */
void bs_admission_forget_held(bs_admission *ad);

/* The decision on one set. */
typedef struct bs_admit {
    bs_verdict verdict;
    bs_hold_reason hold; /* HOLD */
    const char *why;     /* QUARANTINE: "two different change sets", ... */
    bs_stream *stream;   /* in the table: never NULL unless refused */
    bs_change *changes;  /* APPLY: v->count entries, an omitted change's
                            zero (coll NULL), their contents in the
                            arena; valid until the admission's next set */
    uint64_t max_hlc;    /* APPLY: the greatest hlc of its changes */
    /* APPLY: changes refused by rule (A11: forbidden by a rule version
     * their origin had not seen): skip[i] set, not applied; NULL when
     * none.  by_rule counts them; by_rule_why names the first. */
    uint8_t *skip;
    size_t by_rule;
    const char *by_rule_why;
} bs_admit;

/*
 * Decide what to do with v (the rules above).  Returns BS_OK with *out
 * set, the refusal (err names the set's origin and the rule), or a local
 * fault (bs_err_local).  Writes only a new stream entry (not dry).
 */
BS_MUST_CHECK bs_err bs_admit_set(bs_admission *ad, const bs_csview *v,
                                  bs_admit *out, bs_errbuf *err);

/*
 * Admit record snapshot s (snapshot.h; docs/protocol.md 7.3, N7-N12),
 * carried by the exchange whose sender is `carrier`, the sibling of
 * bs_admit_set with the same view (a dry run judges by the rules the hub
 * sets earlier in the file bring, V1-V3): this node has joined (N7), the
 * snapshot names our infobase (N8) and our hub, and the exchange comes from
 * the hub (N9), the hub's signature verifies (N10), this node is a branch
 * (N11), and a snapshot carrying fields is of a record in this node's scope
 * by the rules it holds, its owner field naming this node in an
 * owner-scoped collection (N12).  BS_EINFOBASE, BS_EFORGED, BS_EBADSIG,
 * BS_EPERM with detail; writes nothing.
 */
struct bs_snap;
BS_MUST_CHECK bs_err bs_admit_snapshot(bs_admission *ad,
                                       const struct bs_snap *s,
                                       const uint8_t *carrier, bs_errbuf *err);
/*
 * Admit a batch of record snapshots (snapshot.h, docs/protocol.md 2.11)
 * carried by `carrier`: N7-N9 and N11 as for one snapshot, on the batch's
 * header; N10 is the hub's signature over the header and every body
 * matching its hash, in order.  Its snapshots (bs_snapbatch_snap) are
 * then admitted one by one (bs_admit_snapshot, which skips N10 for a
 * batched snapshot: the batch vouched for it).  BS_EINFOBASE,
 * BS_EFORGED, BS_EBADSIG, BS_EPERM with detail; writes nothing.
 */
struct bs_snapbatch;
BS_MUST_CHECK bs_err bs_admit_snapbatch(bs_admission *ad,
                                        const struct bs_snapbatch *b,
                                        const uint8_t *carrier, bs_errbuf *err);

#endif
