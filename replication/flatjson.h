/*
 * flatjson.h - a strict, allocation-light parser for ONE flat JSON object
 * (the shape of a record), used by bs_json_fields() and `load`.
 *
 * The grammar is RFC 8259 exactly: whitespace is space, tab, CR and LF;
 * strings take every escape, \uXXXX with surrogate pairs included, decoded to
 * UTF-8; raw control characters, invalid UTF-8 (overlong forms, surrogates,
 * beyond U+10FFFF) and \u0000 are refused; numbers follow the RFC grammar
 * (no leading zeros, no '+', no bare '.').  What it accepts and the values
 * it yields are those of the reference parser, Debian's JSON library used
 * by the CLI for output (json_loadb(JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY), which replication/json.c used before (the differential
 * test in tests/unit/test_flatjson.c holds the two together):
 *   - an integer literal is an integer (int64); out of range it is an error;
 *   - a literal with a fraction or an exponent ("1.0", "1e2") is a real,
 *     rounded correctly; one that overflows a double is an error;
 *   - duplicate keys are an error at every depth; nesting deeper than 2048
 *     values is an error.
 * Only a syntactically valid text can be refused as BS_EINVAL: syntax
 * errors anywhere (BS_EJSON) come first, as with the reference, which parses
 * the whole text before looking at it.
 */
#ifndef BS_FLATJSON_H
#define BS_FLATJSON_H

#include "record.h"

/*
 * Parse text[0..len) (not NUL-terminated) into fields copied into a,
 * sorted by name (bs_fields_sort's order), names and texts NUL-terminated,
 * ver zeroed.  *id gets the decoded "id" string (NUL-terminated, in a) and
 * *idlen its length, or NULL and 0 when absent; "id" is not a field.
 *
 * Errors (err names the problem):
 *   BS_EINVAL  text longer than BS_RECORD_JSON_MAX; a valid JSON text that
 *              is not an object; a non-string
 *              "id"; a bad field name (bs_field_name_valid); an object or
 *              array as a value (the message names the field);
 *   BS_EJSON   anything that is not one JSON text (column in the message),
 *              a duplicate key;
 *   BS_ENOMEM.
 * On error *id is NULL and *n is 0; *out is untouched.
 */
BS_MUST_CHECK bs_err bs_flatjson_fields(const char *text, size_t len,
                                        bs_arena *a, const char **id,
                                        size_t *idlen, bs_field **out,
                                        size_t *n, bs_errbuf *err);

#endif
