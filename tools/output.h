/*
 * output.h - everything branchsync prints on stdout: with --json one JSON
 * document (node/render.h gives the shapes), otherwise the human form of
 * the same typed result, rendered here.  Commands call the core, then one
 * of these; errors go to stderr from main().
 */
#ifndef BS_OUTPUT_H
#define BS_OUTPUT_H

#include "../node/render.h"
#include "../replication/exchange.h"
#include "../replication/compact.h"
#include "../replication/purge.h"
#include "../replication/records.h"

/* Print j as one indented JSON document and release it. */
void bs_out_json(json_t *j);

/* one when n is 1, else many: "1 record", "2 records". */
const char *bs_out_plural(uint64_t n, const char *one, const char *many);
#define BS_PL(n, word) bs_out_plural((n), word, word "s")

/* "3 min ago" for a millisecond time (0: "never"). */
/* config check: one line per check, what to do under each failure, then
 * a summary. */
void bs_out_checks(const bs_checks *k);
/* status: the scheduled backups (nothing when none is scheduled). */
void bs_out_backup(const bs_config *cfg, const bs_backup_view *v,
                   uint64_t now_ms);
void bs_out_age(char *buf, size_t n, uint64_t ms, uint64_t now_ms);
/* Local time "YYYY-MM-DD HH:MM TZ" of a time in seconds ("HH:MM:SS" when
 * seconds is set). */
void bs_out_time(char *buf, size_t n, int64_t s, int seconds);

/* A record as one JSON line ("id" first); BS_ENOMEM or BS_EIO. */
BS_MUST_CHECK bs_err bs_out_record(const char *id, size_t idlen,
                                   const bs_record *r);

/* Human forms. */
/* doctor: one line per problem and what to do, then a summary line. */
void bs_out_problems(const bs_problems *p);
void bs_out_status(const bs_status *st, const json_t *runs, uint64_t used,
                   uint64_t map, uint64_t now_ms);
void bs_out_peers(const bs_peer *v, size_t n, uint64_t now_ms);
/* names: who wrote each side (this node, a peer, a member, or a short
 * ID). */
void bs_out_conflict(const bs_conflict *c,
                     const char names[2][BS_NODE_NAME_MAX + 32]);
void bs_out_exchange(const bs_xlog_entry *e);
void bs_out_inspect(const char *path, const bs_inspect *in);
void bs_out_import(const bs_xstats *st);
void bs_out_purge(const bs_purge_stats *st);
/* compact: what was dropped (dry: would be) and the log's size after. */
void bs_out_compact(const bs_compact_stats *st, const bs_logsize *ls, int dry);
/* "N sets, X MiB, the oldest from DATE": the log's size (status). */
void bs_out_logsize(const bs_logsize *ls);

#endif
