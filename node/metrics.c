/*
 * metrics.c - the daemon's counters and histograms for GET /metrics
 * (metrics.h): lock-free, one writer thread, any number of readers.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static const double apply_bounds[BS_METRICS_BUCKETS - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
static const double exchange_bounds[BS_METRICS_BUCKETS - 1] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

void
bs_metrics_init(bs_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->apply.bounds = apply_bounds;
    m->exchange.bounds = exchange_bounds;
    snprintf(m->peer[BS_METRICS_PEERS_MAX].name, sizeof m->peer[0].name, "%s",
             "other");
}

static void
add(uint64_t *v, uint64_t n)
{
    __atomic_fetch_add(v, n, __ATOMIC_RELAXED);
}

static uint64_t
get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

/* The slot of peer, made when new (loop thread only: the one writer). */
static bs_metrics_peer *
slot(bs_metrics *m, const char *peer)
{
    unsigned n = m->npeers;
    bs_metrics_peer *p;

    if (peer == NULL || peer[0] == '\0' || strlen(peer) > BS_METRICS_NAME_MAX)
        return &m->peer[BS_METRICS_PEERS_MAX];
    for (unsigned i = 0; i < n; i++)
        if (strcmp(m->peer[i].name, peer) == 0)
            return &m->peer[i];
    if (n == BS_METRICS_PEERS_MAX)
        return &m->peer[BS_METRICS_PEERS_MAX];
    p = &m->peer[n];
    snprintf(p->name, sizeof p->name, "%s", peer);
    /* publish only a filled slot */
    __atomic_store_n(&m->npeers, n + 1, __ATOMIC_RELEASE);
    return p;
}

void
bs_metrics_applied(bs_metrics *m, const char *peer, uint64_t n)
{
    if (n > 0)
        add(&slot(m, peer)->applied, n);
}

void
bs_metrics_sent(bs_metrics *m, const char *peer, uint64_t n)
{
    if (n > 0)
        add(&slot(m, peer)->sent, n);
}

void
bs_metrics_observe(bs_hist *h, uint64_t us)
{
    int i = 0;

    while (i < BS_METRICS_BUCKETS - 1 && (double)us > h->bounds[i] * 1e6)
        i++;
    add(&h->bucket[i], 1);
    add(&h->sum_us, us);
}

void
bs_metrics_exchange(bs_metrics *m, const char *peer, int ok, uint64_t us)
{
    bs_metrics_peer *p = slot(m, peer);

    add(ok ? &p->ok : &p->error, 1);
    bs_metrics_observe(&m->exchange, us);
}

/* ==== rendering ==== */

static void out(bs_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out(bs_strbuf *b, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (k > 0)
        bs_strbuf_add(b, line,
                      (size_t)k < sizeof line ? (size_t)k : sizeof line - 1);
}

static void
head(bs_strbuf *b, const char *name, const char *type, const char *help)
{
    out(b, "# HELP branchsync_%s %s\n# TYPE branchsync_%s %s\n", name, help,
        name, type);
}

/* Peer names are [A-Za-z0-9_.-] (records.h): no label escaping. */
static void
per_peer(const bs_metrics *m, bs_strbuf *b, const char *name, const char *help,
         size_t off)
{
    unsigned n = __atomic_load_n(&m->npeers, __ATOMIC_ACQUIRE);

    head(b, name, "counter", help);
    for (unsigned i = 0; i <= BS_METRICS_PEERS_MAX; i++) {
        const bs_metrics_peer *p = &m->peer[i];
        uint64_t v = get((const uint64_t *)((const char *)p + off));
        if (i >= n && i < BS_METRICS_PEERS_MAX)
            continue;
        if (i == BS_METRICS_PEERS_MAX && v == 0)
            continue; /* "other" only when something was counted */
        out(b, "branchsync_%s{peer=\"%s\"} %llu\n", name, p->name,
            (unsigned long long)v);
    }
}

static void
exchanges(const bs_metrics *m, bs_strbuf *b)
{
    unsigned n = __atomic_load_n(&m->npeers, __ATOMIC_ACQUIRE);

    head(b, "exchanges_total", "counter",
         "Exchanges ended in this daemon, by peer and result.");
    for (unsigned i = 0; i <= BS_METRICS_PEERS_MAX; i++) {
        const bs_metrics_peer *p = &m->peer[i];
        uint64_t ok = get(&p->ok), error = get(&p->error);
        if ((i >= n && i < BS_METRICS_PEERS_MAX) ||
            (i == BS_METRICS_PEERS_MAX && ok + error == 0))
            continue;
        out(b, "branchsync_exchanges_total{peer=\"%s\",result=\"ok\"} %llu\n",
            p->name, (unsigned long long)ok);
        out(b,
            "branchsync_exchanges_total{peer=\"%s\",result=\"error\"} %llu\n",
            p->name, (unsigned long long)error);
    }
}

static void
histogram(const bs_hist *h, bs_strbuf *b, const char *name, const char *help)
{
    uint64_t cum = 0;

    head(b, name, "histogram", help);
    for (int i = 0; i < BS_METRICS_BUCKETS; i++) {
        cum += get(&h->bucket[i]);
        if (i < BS_METRICS_BUCKETS - 1)
            out(b, "branchsync_%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
                (unsigned long long)cum);
        else
            out(b, "branchsync_%s_bucket{le=\"+Inf\"} %llu\n", name,
                (unsigned long long)cum);
    }
    out(b, "branchsync_%s_sum %.6f\n", name, (double)get(&h->sum_us) / 1e6);
    /* the buckets' total, so that _count equals the +Inf bucket even
     * while a duration is being added */
    out(b, "branchsync_%s_count %llu\n", name, (unsigned long long)cum);
}

void
bs_metrics_render(const bs_metrics *m, bs_strbuf *b)
{
    per_peer(m, b, "changes_applied_total",
             "Changes received from the peer and applied here (this daemon).",
             offsetof(bs_metrics_peer, applied));
    per_peer(m, b, "changes_sent_total",
             "Changes sent to the peer in exchanges (this daemon).",
             offsetof(bs_metrics_peer, sent));
    exchanges(m, b);
    histogram(&m->apply, b, "apply_duration_seconds",
              "Time to verify, apply and commit one received change set.");
    histogram(&m->exchange, b, "exchange_duration_seconds",
              "Time of one exchange, from its start to its end.");
}
