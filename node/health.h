/*
 * health.h - the administrator's health view: what on a node needs
 * attention, one problem per line with what to do (`branchsync doctor`, and
 * the "problems" list of `status --json`; docs/operations.md, "Health").
 *
 * Everything is read from the store in the caller's transaction plus what
 * the caller measured outside it (the disk, whether the daemon runs, the
 * result of a verification); nothing is written.  A problem is a fact with
 * its remedy, never a guess: a peer counts as silent only once its own
 * schedule expected an exchange more than the grace period ago.
 */
#ifndef BS_HEALTH_H
#define BS_HEALTH_H

#include "../replication/status.h"

#define BS_PROBLEM_TEXT_MAX 383

typedef struct bs_problem {
    /* A stable token: "held", "refused", "held_there", "quarantined",
     * "needs_full_resync", "refused_by_rule",
     * "silent", "stuck", "peer_error", "clock_skew", "store_corrupt",
     * "disk_low",
     * "map_low", "daemon_down", "http_down". */
    const char *kind;
    char subject[96]; /* the peer or origin it concerns; "" for the node */
    char what[BS_PROBLEM_TEXT_MAX + 1]; /* what is wrong, one line */
    char todo[BS_PROBLEM_TEXT_MAX + 1]; /* what to do, one line */
} bs_problem;

/* A growing list; malloc'd, released with bs_problems_fini. */
typedef struct bs_problems {
    bs_problem *v;
    size_t n;
} bs_problems;

typedef struct bs_health_opts {
    const char *dir; /* the node directory, named in remedies */
    uint64_t now_ms;
    /* How late a scheduled exchange may be before its peer is silent
     * (0: BS_HEALTH_GRACE_MS). */
    uint64_t grace_ms;
    /* The file system holding the store, in bytes (both 0: not known). */
    uint64_t disk_free, disk_size;
    /* The store's growth cap ([store] max_map_size_mb; 0: none). */
    uint64_t map_max;
    /* -1 not known, 0 branchsyncd does not run for the node, 1 it does,
     * 2 it runs but does not answer. */
    int daemon;
    /* A verification's finding (bs_store verify), or NULL when none ran
     * or it found nothing. */
    const char *corrupt;
    /* Why the running daemon does not serve its HTTP API (it cannot bind
     * [http] listen), or NULL / "" when it does or nobody asked. */
    const char *http_error;
} bs_health_opts;

#define BS_HEALTH_GRACE_MS (5 * 60 * 1000ull)
/* Free disk below max(this, the store's used bytes) is low. */
#define BS_HEALTH_DISK_MIN (256ull << 20)
/* A store using more than this share (percent) of its growth cap. */
#define BS_HEALTH_MAP_PCT 90

/*
 * Append to *out the problems of the node whose state st was read in t
 * (bs_status_read, same transaction): held and refused sets per origin with
 * the first reason, quarantined streams, peers needing a full resync,
 * silent, stuck (changes offered and not acknowledged) or failing peers,
 * offices with changes refused by rule (count and first reason), and what o
 * reports (disk, daemon, verification). used is the store's used bytes.
 * BS_ENOMEM; BS_ESTORE for a held entry that does not decode.
 */
BS_MUST_CHECK bs_err bs_health_check(bs_txn *t, const bs_status *st,
                                     uint64_t used, const bs_health_opts *o,
                                     bs_problems *out);

/*
 * Append to *out the problems read from files outside the store, for the
 * node n whose status is st: each drop folder's (dropdir.h
 * bs_drop_problems) and the scheduled backups' (backups.h).  `doctor`,
 * status and the HTTP API's /health list them with the rest.  BS_ENOMEM.
 */
struct bs_node;
BS_MUST_CHECK bs_err bs_health_files(const struct bs_node *n,
                                     const bs_status *st, uint64_t now_ms,
                                     bs_problems *out);

/* Append one problem (texts cut to BS_PROBLEM_TEXT_MAX; subject and the
 * formatted text escaped with bs_escape).  BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_problems_add(bs_problems *p, const char *kind,
                                     const char *subject, const char *todo,
                                     const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

void bs_problems_fini(bs_problems *p);

#endif
