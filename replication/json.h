/*
 * json.h - JSON in and out of records: input through the strict one-pass
 * parser of flatjson.h, output through a small emitter (reals in their
 * shortest round-trip form).
 *
 * Fields are a flat JSON object of strings, numbers, booleans and nulls.
 * "id" is never a stored field: on input it names the record, on output it
 * is added as the first key.
 */
#ifndef BS_JSON_H
#define BS_JSON_H

#include "record.h"

/*
 * Parse one JSON object into fields (copied into a, sorted, validated).
 * *id gets the object's "id" string (or NULL when absent).  Errors:
 * BS_EJSON for malformed JSON, BS_EINVAL for a non-object, a nested
 * value, a bad field name or a non-string "id"; err names the problem.
 */
BS_MUST_CHECK bs_err bs_json_fields(const char *text, size_t len, bs_arena *a,
                                    const char **id, bs_field **out, size_t *n,
                                    bs_errbuf *err);

/*
 * Parse one JSON scalar (string, number, boolean or null) into *out, text
 * copied into a.  BS_EINVAL ("must be a JSON string, number, boolean or
 * null") for anything else.
 */
BS_MUST_CHECK bs_err bs_json_value(const char *text, size_t len, bs_arena *a,
                                   bs_value *out, bs_errbuf *err);

/* One value as compact JSON; malloc'd string (NULL when out of memory). */
char *bs_json_value_text(const bs_value *v);

/* The record as a compact JSON object with "id" first; malloc'd string. */
char *bs_json_record(const char *id, size_t idlen, const bs_record *r);

#endif
