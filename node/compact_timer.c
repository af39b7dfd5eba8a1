/*
 * compact_timer.c - the daemon's log compaction (replication/compact.h):
 * a minute after start, then every hour, in bounded steps so that one
 * run never holds the loop for long.
 */
#include "daemon_int.h"

#include "../replication/compact.h"

#define COMPACT_FIRST_MS (60 * 1000)
#define COMPACT_EVERY_MS (3600 * 1000)
#define COMPACT_AGAIN_MS 1000
#define COMPACT_STEP     20000 /* sets per transaction */

static void
on_compact(uv_timer_t *t)
{
    bs_daemon *d = t->data;
    uint64_t t0 = bs_daemon_now_ms();
    bs_compact_stats st;
    bs_errbuf err = {{0}};
    bs_core core;
    bs_err rv;

    memset(&st, 0, sizeof st);
    if ((rv = bs_node_core(d->n, 0, &core, &err)) == BS_OK)
        rv = bs_compact_run_some(&core, COMPACT_STEP, &st, &err);
    if (rv != BS_OK)
        bs_daemon_log(d, BS_LOG_ERROR, "log compaction failed: %s",
                      bs_errmsg(&err, rv));
    else if (st.sets > 0)
        bs_daemon_log(d, BS_LOG_INFO,
                      "log compacted: dropped %llu change %s (%.1f KiB) every "
                      "peer acknowledged, older than the retention limit, "
                      "in %llu ms",
                      (unsigned long long)st.sets,
                      st.sets == 1 ? "set" : "sets", st.bytes / 1024.0,
                      (unsigned long long)(bs_daemon_now_ms() - t0));
    if (d->stopping)
        return;
    uv_timer_start(t, on_compact,
                   rv == BS_OK && st.sets >= COMPACT_STEP ? COMPACT_AGAIN_MS
                                                          : COMPACT_EVERY_MS,
                   0);
}

void
bs_daemon_compact_arm(bs_daemon *d)
{
    uv_timer_init(&d->loop, &d->compact);
    d->compact.data = d;
    uv_timer_start(&d->compact, on_compact, COMPACT_FIRST_MS, 0);
}
