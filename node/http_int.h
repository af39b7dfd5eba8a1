/*
 * http_int.h - PRIVATE to http_api.c, http_ops.c and http_feed.c: the
 * response helpers and the handlers of the operator endpoints (status,
 * health, metrics, conflicts, merge, peers, log, sync) and of the change feed,
 * which http_api.c routes to.
 */
#ifndef BS_HTTP_INT_H
#define BS_HTTP_INT_H

#include <jansson.h>

#include "http_api.h"

/* Answer body (malloc'd, taken; NULL: out of memory, 500), counted. */
void bs_api_answer(bs_api *api, int status, char *body, const char *type,
                   bs_api_resp *out);
/* Answer 200 with the streamed body s (taken) of Content-Type type. */
void bs_api_answer_stream(bs_api *api, bs_api_stream *s, const char *type,
                          bs_api_resp *out);
/* Answer j (reference taken) with status; 500 when out of memory. */
void bs_api_json(bs_api *api, int status, json_t *j, bs_api_resp *out);
/* Answer the core error rv with its message (err's detail if set). */
void bs_api_fail(bs_api *api, bs_err rv, const bs_errbuf *err,
                 bs_api_resp *out);
/* A write of this API committed: wake the change feeds (bs_api_wake)
 * and tell hooks.changed. */
void bs_api_changed(bs_api *api);
/* A query argument, NULL when absent. */
const char *bs_api_arg(const bs_api_req *rq, const char *name);

/* ---- http_ops.c ---- */
void bs_api_status(bs_api *api, const bs_api_req *rq, bs_api_resp *out);
void bs_api_health(bs_api *api, const bs_api_req *rq, bs_api_resp *out);
void bs_api_metrics(bs_api *api, const bs_api_req *rq, bs_api_resp *out);
void bs_api_conflicts(bs_api *api, const bs_api_req *rq, bs_api_resp *out);
void bs_api_resolve(bs_api *api, const bs_api_req *rq, const char *cid,
                    bs_api_resp *out);
/* POST /v1/collections/{coll}/merge; coll already checked by the caller
 * or by bs_unique_merge. */
void bs_api_merge(bs_api *api, const bs_api_req *rq, const char *coll,
                  bs_api_resp *out);
void bs_api_peers(bs_api *api, const bs_api_req *rq, bs_api_resp *out);
void bs_api_sync(bs_api *api, const bs_api_req *rq, const char *peer,
                 bs_api_resp *out);
void bs_api_log(bs_api *api, const bs_api_req *rq, bs_api_resp *out);

/* ---- http_feed.c ---- */
/* GET /v1/changes; with feed=longpoll it may wait up to its timeout on
 * the calling thread. */
void bs_api_changes(bs_api *api, const bs_api_req *rq, bs_api_resp *out);

#endif
