/*
 * check.h - `branchsync config check`: what can be known at set-up time,
 * before the first night's exchange fails (docs/operations.md, "Checking
 * the set-up").  Each check is one line: what was checked, whether it
 * holds, and what to do when it does not.
 *
 * Checked, in this order:
 *  - config: the [http] and [backup] settings hang together (the file
 *    parsing at all is the caller's check: nothing else runs without it);
 *  - permissions: DIR 0700 (the daemon refuses anything else), the key
 *    directory 0700, keys/node.key 0600;
 *  - schedule: each peer's schedule and window, and the backups', parse,
 *    with the next run;
 *  - backup: the backup directory exists, is writable, is not writable
 *    by everyone;
 *  - peer: each network peer answers a CURVE handshake within
 *    [sync] connect_timeout_s and admits this node (a refusal means this
 *    node is not paired there, or with another ID); each folder peer's
 *    folder exists, is writable, is not writable by everyone, and its
 *    done/ and refused/ exist or can be made;
 *  - clock: each peer's clock as the last network exchange measured it
 *    (protocol §15.9), against [sync] max_skew_s.  Nothing else measures
 *    it without changing the wire: a peer never exchanged with over the
 *    network is reported as not measured, which is not a problem.
 * Nothing is written (done/ and refused/ are not created).
 */
#ifndef BS_CHECK_H
#define BS_CHECK_H

#include "health.h"
#include "node.h"
#include "transport.h"

typedef struct bs_check {
    const char *area; /* "config", "permissions", "schedule", "backup",
                         "peer", "clock" */
    char subject[96]; /* the peer or file concerned; "" for the node */
    int ok;
    char what[BS_PROBLEM_TEXT_MAX + 1]; /* what was found, one line */
    char todo[BS_PROBLEM_TEXT_MAX + 1]; /* "" when ok */
    int64_t next_s;                     /* schedule: the next run (0: none) */
} bs_check;

typedef struct bs_checks {
    bs_check *v; /* malloc'd; release with bs_checks_fini */
    size_t n, failed;
} bs_checks;

/* Append one check (texts escaped and cut like problems).  BS_ENOMEM. */
BS_MUST_CHECK bs_err bs_checks_add(bs_checks *c, const char *area,
                                   const char *subject, int ok,
                                   const char *todo, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void bs_checks_fini(bs_checks *c);

/*
 * Run every check on node n at now_ms, dialling network peers through z
 * (each within n's connect timeout).  BS_ENOMEM; a store that cannot be
 * read as such.  Problems found are checks with ok 0, not errors.
 */
BS_MUST_CHECK bs_err bs_check_node(bs_node *n, bs_zmq *z, uint64_t now_ms,
                                   bs_checks *out, bs_errbuf *err);

#endif
