/*
 * test_metrics.c - the daemon's counters and histograms for GET /metrics
 * (node/metrics.h, issue 10 item 5): per-peer counters are exact, a
 * duration lands in the first bucket whose bound it does not exceed, the
 * rendered histogram is cumulative with _sum and _count, and a reader
 * rendering while the writer counts sees counts that only grow.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../node/metrics.h"

/* The value of the sample line "name value" in text; -1 when absent. */
static double
sample(const char *text, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static char *
render(const bs_metrics *m)
{
    bs_strbuf b = {0};

    bs_metrics_render(m, &b);
    cr_assert_not(b.oom);
    return b.p;
}

Test(metrics, counts_changes_and_exchanges_per_peer_exactly)
{
    bs_metrics m;
    char *t;

    bs_metrics_init(&m);
    for (int i = 0; i < 1000; i++)
        bs_metrics_applied(&m, "tallinn", 3);
    bs_metrics_applied(&m, "tartu", 7);
    bs_metrics_applied(&m, "tartu", 0); /* nothing: no slot either */
    bs_metrics_sent(&m, "tallinn", 5);
    bs_metrics_exchange(&m, "tallinn", 1, 1500);
    bs_metrics_exchange(&m, "tallinn", 0, 2500);
    bs_metrics_exchange(&m, "tallinn", 1, 3500);
    t = render(&m);
    cr_assert_eq(
        sample(t, "branchsync_changes_applied_total{peer=\"tallinn\"}"), 3000);
    cr_assert_eq(sample(t, "branchsync_changes_applied_total{peer=\"tartu\"}"),
                 7);
    cr_assert_eq(sample(t, "branchsync_changes_sent_total{peer=\"tallinn\"}"),
                 5);
    cr_assert_eq(sample(t, "branchsync_changes_sent_total{peer=\"tartu\"}"), 0);
    cr_assert_eq(
        sample(t, "branchsync_exchanges_total{peer=\"tallinn\",result=\"ok\"}"),
        2);
    cr_assert_eq(
        sample(t,
               "branchsync_exchanges_total{peer=\"tallinn\",result=\"error\"}"),
        1);
    /* nothing counted without a peer: no "other" line */
    cr_assert_null(strstr(t, "peer=\"other\""));
    cr_assert(strstr(t, "# TYPE branchsync_changes_applied_total counter\n"));
    free(t);
}

Test(metrics, a_session_without_a_peer_name_counts_as_other)
{
    bs_metrics m;
    char *t;

    bs_metrics_init(&m);
    bs_metrics_exchange(&m, "", 0, 10);
    bs_metrics_applied(&m, NULL, 2);
    t = render(&m);
    cr_assert_eq(
        sample(t,
               "branchsync_exchanges_total{peer=\"other\",result=\"error\"}"),
        1);
    cr_assert_eq(sample(t, "branchsync_changes_applied_total{peer=\"other\"}"),
                 2);
    free(t);
}

Test(metrics, histogram_buckets_are_cumulative_with_sum_and_count)
{
    bs_metrics m;
    char *t;

    bs_metrics_init(&m);
    bs_metrics_observe(&m.apply, 400);      /* 0.4 ms: le 0.0005 */
    bs_metrics_observe(&m.apply, 500);      /* exactly on the bound */
    bs_metrics_observe(&m.apply, 3000);     /* 3 ms: le 0.005 */
    bs_metrics_observe(&m.apply, 60000000); /* 60 s: only +Inf */
    t = render(&m);
    cr_assert(strstr(t, "# TYPE branchsync_apply_duration_seconds "
                        "histogram\n"));
    cr_assert_eq(
        sample(t, "branchsync_apply_duration_seconds_bucket{le=\"0.0005\"}"),
        2);
    cr_assert_eq(
        sample(t, "branchsync_apply_duration_seconds_bucket{le=\"0.0025\"}"),
        2);
    cr_assert_eq(
        sample(t, "branchsync_apply_duration_seconds_bucket{le=\"0.005\"}"), 3);
    cr_assert_eq(
        sample(t, "branchsync_apply_duration_seconds_bucket{le=\"5\"}"), 3);
    cr_assert_eq(
        sample(t, "branchsync_apply_duration_seconds_bucket{le=\"+Inf\"}"), 4);
    cr_assert_eq(sample(t, "branchsync_apply_duration_seconds_count"), 4);
    cr_assert_float_eq(sample(t, "branchsync_apply_duration_seconds_sum"),
                       60.0039, 1e-9);
    cr_assert_eq(sample(t, "branchsync_exchange_duration_seconds_count"), 0);
    free(t);
}

/* ---- one writer, concurrent readers ---- */

static bs_metrics shared;
static volatile int done;

static void *
writer(void *arg)
{
    char name[16];

    (void)arg;
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "p%d", i % 40);
        bs_metrics_applied(&shared, name, 1);
        bs_metrics_observe(&shared.apply, (uint64_t)i);
    }
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    return NULL;
}

Test(metrics, a_scrape_during_counting_never_goes_backwards)
{
    pthread_t th;
    double last = 0;
    char *t;

    bs_metrics_init(&shared);
    pthread_create(&th, NULL, writer, NULL);
    while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        double c;
        t = render(&shared);
        c = sample(t, "branchsync_apply_duration_seconds_count");
        cr_assert_geq(c, last);
        cr_assert_eq(
            c,
            sample(t, "branchsync_apply_duration_seconds_bucket{le=\"+Inf\"}"));
        last = c;
        free(t);
    }
    pthread_join(th, NULL);
    t = render(&shared);
    for (int p = 0; p < 40; p++) {
        char name[96];
        snprintf(name, sizeof name,
                 "branchsync_changes_applied_total{peer=\"p%d\"}", p);
        cr_assert_eq(sample(t, name), 500, "%s", name);
    }
    cr_assert_eq(sample(t, "branchsync_apply_duration_seconds_count"), 20000);
    free(t);
}
