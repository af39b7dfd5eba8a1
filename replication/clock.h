/*
 * clock.h - the node's clock against its peers' (docs/design.md, "Clocks
 * and the skew hold"; docs/security.md §9.2).
 *
 * The wire carries each side's wall clock in every envelope (`created_ms`
 * of HELLO and ACK, protocol.md 2.7).  A network exchange bounds the
 * peer's clock from what was sent when:
 *  - a message the peer stamped `created` that reached us at `recv` says
 *    peer - us >= created - recv (it cannot arrive before it was made);
 *  - a message the peer stamped `created` after it had received one we
 *    stamped `sent` says peer - us <= created - sent.
 * Both bounds hold whatever the delays; they are stored per peer (peers.h)
 * with where our wall clock stood against a clock that is never stepped
 * (hlc.h, bs_clock_base), so a later step of our own wall clock is taken
 * out of every stored offset at once, in every process.
 *
 * The verdict: a node is "ahead" by A when, for a strict majority of the
 * peers measured in the last BS_CLOCK_SAMPLE_MAX_AGE_MS, it is certainly
 * ahead by at least A (for a branch paired with its hub alone: the hub).
 * A minority of peers with slow or lying clocks cannot move it.  Beyond
 * max_skew, local writes (local.h) are stamped with the wall clock less A
 * (BS_CLOCK_CORRECT) or refused (BS_CLOCK_REFUSE), by [sync] clock_ahead.
 *
 * Exchange files carry only a lower bound (a file may travel for days), so
 * only network exchanges measure.  Pure functions, except
 * bs_clock_judge_txn, which reads the peers table.
 */
#ifndef BS_CLOCK_H
#define BS_CLOCK_H

#include "hlc.h"
#include "peers.h"

/* What a node does when its clock is ahead beyond max_skew. */
typedef enum {
    BS_CLOCK_CORRECT = 0, /* stamp local writes with the peers' clock */
    BS_CLOCK_REFUSE = 1,  /* refuse local writes until the clock is fixed */
} bs_clock_policy;

/* Measurements older than this take no part in the verdict. */
#define BS_CLOCK_SAMPLE_MAX_AGE_MS (7ull * 24 * 3600 * 1000)

/* Bounds on (peer wall - our wall) from one exchange. */
typedef struct bs_clock_sample {
    int has_lo, has_hi;
    int64_t lo_ms, hi_ms;
} bs_clock_sample;

/* A peer's message stamped created_ms reached us at recv_ms (our wall).
 * created_ms 0 (an implementation that leaves the field out) says nothing. */
void bs_clock_sample_recv(bs_clock_sample *s, uint64_t created_ms,
                          uint64_t recv_ms);
/* The peer stamped created_ms after receiving our message stamped
 * sent_ms. */
void bs_clock_sample_reply(bs_clock_sample *s, uint64_t created_ms,
                           uint64_t sent_ms);
/* How far we are certainly ahead of the peer by s: -hi when that is > 0,
 * else 0. */
int64_t bs_clock_sample_ahead(const bs_clock_sample *s);

/* Store s (both bounds known) as p's clock, measured now on `clock`. */
void bs_clock_note(bs_peer *p, const bs_clock_sample *s, bs_clock clock);

/*
 * p's clock now, as bounds on (peer - us), with the steps our wall clock
 * took since it was measured taken out (same boot only).  0 when p's
 * clock is unknown or older than BS_CLOCK_SAMPLE_MAX_AGE_MS.
 */
int bs_clock_peer_now(const bs_peer *p, bs_clock clock, int64_t *lo,
                      int64_t *hi);

typedef struct bs_clock_verdict {
    int64_t ahead_ms; /* certainly ahead of the reference by this; or 0 */
    char peer[BS_NODE_NAME_MAX + 1]; /* the reference ("" when none) */
    uint64_t measured_ms;            /* when the reference was measured */
    size_t npeers;                   /* peers whose clock counts */
} bs_clock_verdict;

/* The verdict over peers v[0..n) (the rule above). */
void bs_clock_judge(const bs_peer *v, size_t n, bs_clock clock,
                    bs_clock_verdict *out);
/* The same over the peers table (any transaction). */
BS_MUST_CHECK bs_err bs_clock_judge_txn(bs_txn *t, bs_clock clock,
                                        bs_clock_verdict *out);

/* "correct" / "refuse"; parse returns BS_EINVAL for anything else. */
const char *bs_clock_policy_name(int policy);
BS_MUST_CHECK bs_err bs_clock_policy_parse(const char *s, int *policy);

#endif
