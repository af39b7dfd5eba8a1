/*
 * log.h - the daemon's log lines, as text on stderr or as structured
 * journal entries (docs/operations.md, "Logs").
 *
 * Every line is a sentence with `key=value` words in it ("exchange
 * peer=tallinn ... changes=3 ms=12 result=ok").  Under systemd the same
 * line goes to the journal with sd_journal_sendv, carrying MESSAGE (the
 * line), PRIORITY (syslog: 3 error, 4 warning, 6 info, 7 debug),
 * SYSLOG_IDENTIFIER=branchsyncd and one field per `key=value` word: the
 * key upper-cased (PEER=, RESULT=, CHANGES=, SENT=, RECEIVED=,
 * CONFLICTS=, BYTES=, DIR=, SEQ=...), except `ms`, which becomes
 * DURATION_MS.  A value ends at a space; a trailing ':' ';' or ',' is not
 * part of it ("result=error: ..." gives RESULT=error).  Only the first of
 * two words with one key counts.
 *
 * Where: the journal when the daemon's stderr is the journal stream
 * systemd gave it (JOURNAL_STREAM names stderr's device and inode, as
 * systemd documents), else stderr as "branchsyncd: LEVEL: line".
 */
#ifndef BS_LOG_H
#define BS_LOG_H

#include <stddef.h>
#include <sys/uio.h>

#define BS_LOG_FIELDS_MAX 24
#define BS_LOG_LINE_MAX   2048

/* The fields of one entry: iov[0..n) point into buf ("NAME=value"). */
typedef struct bs_log_fields {
    char buf[2 * BS_LOG_LINE_MAX + 256];
    struct iovec iov[BS_LOG_FIELDS_MAX];
    size_t n;
} bs_log_fields;

/* Build the fields of the line msg at level (bs_log_level: 0 error ..
 * 3 debug).  A line longer than BS_LOG_LINE_MAX is cut; fields past
 * BS_LOG_FIELDS_MAX are left out.  Pure. */
void bs_log_fields_build(bs_log_fields *f, int level, const char *msg);

/* Where lines go.  send gets the fields of one entry; ctx is the sink's. */
typedef struct bs_log_sink {
    int (*send)(void *ctx, const struct iovec *iov, size_t n);
    void *ctx;
} bs_log_sink;

/* The journal sink (sd_journal_sendv) when stderr is the journal stream
 * (JOURNAL_STREAM matches it), else NULL: write text to stderr. */
const bs_log_sink *bs_log_journal(void);

/* Log msg at level to sink, or as text to stderr when sink is NULL. */
void bs_log_emit(const bs_log_sink *sink, int level, const char *msg);

#endif
