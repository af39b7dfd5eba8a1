/*
 * metrics.h - the daemon's own counters for GET /metrics: changes applied
 * and sent per peer, exchanges per peer and result, and the apply and
 * exchange duration histograms.  What the store holds (pending, lag,
 * conflicts, store size) is read from the store at each scrape instead
 * (http_ops.c); these are what only the running daemon sees, counted
 * since it started (Prometheus counters start again at a restart).
 *
 * Threads: one writer, the daemon's loop thread (every bs_metrics_* call
 * but bs_metrics_render); any number of readers at once (HTTP threads
 * rendering a scrape).  Every figure is an atomic counter, added to with
 * a relaxed atomic add and no lock: the apply path pays one add per
 * figure.  A peer's slot is filled before it is published (the count of
 * slots is stored with release order), and slots are never removed, so
 * a reader needs no lock either.
 */
#ifndef BS_METRICS_H
#define BS_METRICS_H

#include <stdint.h>

#include "../replication/strbuf.h"

#define BS_METRICS_PEERS_MAX 256 /* peers counted; later ones: "other" */
#define BS_METRICS_NAME_MAX  64
#define BS_METRICS_BUCKETS   14 /* upper bounds, +Inf last */

/* A Prometheus histogram of durations: counts per bucket (not
 * cumulative; rendered cumulative) and the sum in microseconds. */
typedef struct bs_hist {
    const double *bounds; /* seconds, BS_METRICS_BUCKETS - 1 finite */
    uint64_t bucket[BS_METRICS_BUCKETS];
    uint64_t sum_us;
} bs_hist;

typedef struct bs_metrics_peer {
    char name[BS_METRICS_NAME_MAX + 1];
    uint64_t applied;   /* changes received from the peer and applied */
    uint64_t sent;      /* changes sent to the peer */
    uint64_t ok, error; /* exchanges ended, by result */
} bs_metrics_peer;

/* Caller-owned, e.g. in the daemon's state; bs_metrics_init. */
typedef struct bs_metrics {
    bs_metrics_peer peer[BS_METRICS_PEERS_MAX + 1]; /* the last: "other" */
    unsigned npeers;                                /* published slots */
    bs_hist apply;    /* bs_session_input of one SET: verify, apply, commit */
    bs_hist exchange; /* one exchange, start to end, either side */
} bs_metrics;

void bs_metrics_init(bs_metrics *m);

/* Add n changes applied from / sent to peer (a name; "" counts under
 * "other").  Loop thread only. */
void bs_metrics_applied(bs_metrics *m, const char *peer, uint64_t n);
void bs_metrics_sent(bs_metrics *m, const char *peer, uint64_t n);
/* One exchange with peer ended (ok or not) after us microseconds. */
void bs_metrics_exchange(bs_metrics *m, const char *peer, int ok, uint64_t us);
/* Record one duration of us microseconds in h. */
void bs_metrics_observe(bs_hist *h, uint64_t us);

/*
 * Append m in the Prometheus text format (0.0.4) to b: the counters
 * branchsync_changes_applied_total{peer}, branchsync_changes_sent_total
 * {peer}, branchsync_exchanges_total{peer,result} and the histograms
 * branchsync_apply_duration_seconds and
 * branchsync_exchange_duration_seconds (_bucket{le}, _sum, _count).  Any
 * thread.
 */
void bs_metrics_render(const bs_metrics *m, bs_strbuf *b);

#endif
