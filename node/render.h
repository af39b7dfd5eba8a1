/*
 * render.h - the JSON forms of the core's typed results: the documents
 * `branchsync --json` prints (their shapes are part of the CLI contract,
 * README.md), kept apart from the CLI so the daemon's interfaces can send
 * the same shapes.  The only home of
 * jansson besides the control protocol.  Every function returns a new
 * reference (NULL only when out of memory).
 */
#ifndef BS_RENDER_H
#define BS_RENDER_H

#include <jansson.h>

#include "../replication/bundle.h"
#include "../replication/conflict.h"
#include "../replication/status.h"
#include "../replication/xlog.h"
#include "backups.h"
#include "check.h"
#include "dropdir.h"
#include "health.h"

/* A field value: null, true, false, integer, real or string. */
json_t *bs_render_value(const bs_value *v);

/* `status --json` (the caller adds "store" and each peer's "next_run_s"). */
json_t *bs_render_status(const bs_status *st);
/* A folder peer's folder (status "peers"[i]."folder"): path, exists,
 * writable, pending_in, pending_out, refused_here, refused_there,
 * first_refusal (null when none). */
json_t *bs_render_drop(const char *path, const bs_drop_scan *s);
/* Status "backup": null when no backup is scheduled, else schedule,
 * dir, keep, count, last (file name or null), last_ms, age_s (null when
 * none), next_s, last_error and last_error_ms (null / 0 when the last
 * run succeeded). */
json_t *bs_render_backup(const bs_config *cfg, const bs_backup_view *v,
                         uint64_t now_ms);
/* What `status --json` adds from files outside the store, into j (as
 * bs_render_status made it, for n's status st): each folder peer's
 * "folder" and the node's "backup". */
void bs_render_status_files(json_t *j, const bs_node *n, const bs_status *st,
                            uint64_t now_ms);
/* `config check --json`'s "checks": objects with area, subject, ok,
 * what, todo (null when ok) and, for schedules, next_s (null: none). */
json_t *bs_render_checks(const bs_checks *k);
/* The problems list (`doctor`, status "problems"): an array of objects
 * with kind, subject, what and todo. */
json_t *bs_render_problems(const bs_problems *p);

/* One element of `peer ls --json`: "pinned_hub" (bool) says whether the
 * peer is the hub this branch joins, "pin" how it was pinned. */
json_t *bs_render_peer(const bs_peer *p);
/* A bs_hub_pin (peers.h) as `peer ls --json` names it: "none", "auto"
 * (the first peer paired, or the hub already joined) or "named" (--hub). */
const char *bs_render_pin_name(int pin);

/* One element of `conflicts --json`. */
json_t *bs_render_conflict(const bs_conflict *c);

/* One element of `log --json`. */
json_t *bs_render_exchange(const bs_xlog_entry *e);

/* `inspect --json` of the file at path. */
json_t *bs_render_inspect(const char *path, const bs_inspect *in);

#endif
