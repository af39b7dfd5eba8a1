/*
 * jsontok.h - the tokens of a JSON text (RFC 8259), read the way
 * flatjson.c needs them: strings validated and measured, then decoded to
 * UTF-8; the scalars true, false, null and numbers converted to a
 * bs_value with the results the reference parser gives (flatjson.h lists them).
 *
 * The grammar of objects and arrays, and what is kept of them, is
 * flatjson.c's.  Nothing here allocates except strtod()'s copy of a real
 * literal longer than 63 bytes.  Errors are recorded in the bs_jsontok,
 * the first one winning, and every function that can fail returns NULL.
 */
#ifndef BS_JSONTOK_H
#define BS_JSONTOK_H

#include "record.h"

/* The text being read, and its first error. */
typedef struct bs_jsontok {
    const unsigned char *s, *end; /* the whole text: columns count from s */
    bs_errbuf *err;               /* detail of the first error (may be NULL) */
    bs_err rv;                    /* BS_OK until the first error */
} bs_jsontok;

/*
 * Record a syntax error at `at`, BS_EJSON "malformed JSON: WHAT (column
 * N)", unless an error is recorded already.  Returns NULL.
 */
const unsigned char *bs_jsontok_fail(bs_jsontok *t, const unsigned char *at,
                                     const char *fmt, ...) BS_PRINTF(3, 4);
/* Record BS_ENOMEM.  Returns NULL. */
const unsigned char *bs_jsontok_oom(bs_jsontok *t);

/* What bs_jsontok_string() saw besides plain printable ASCII. */
#define BS_JSONTOK_ESC    1 /* escapes: the text must be decoded */
#define BS_JSONTOK_NONASC 2 /* bytes >= 0x7f */

/*
 * Validate the string whose first byte (after the opening quote) is at p:
 * no raw control character, valid UTF-8, valid escapes (surrogates paired,
 * no \u0000).  Returns the closing quote, with the decoded length (no NUL)
 * in *dlen and the BS_JSONTOK_* flags in *fl; NULL on error.
 */
const unsigned char *bs_jsontok_string(bs_jsontok *t, const unsigned char *p,
                                       size_t *dlen, int *fl);
/*
 * Decode the string [p, q), validated by bs_jsontok_string(), into d,
 * which holds its decoded length; no NUL is written.
 */
void bs_jsontok_decode(const unsigned char *p, const unsigned char *q, char *d);
/*
 * true, false, null or a number at p (p < t->end) into *v: an integer
 * literal is BS_VINT (an error out of int64), one with a fraction or an
 * exponent BS_VREAL (an error when it overflows a double).  Returns the
 * byte after it; NULL on error.
 */
const unsigned char *bs_jsontok_scalar(bs_jsontok *t, const unsigned char *p,
                                       bs_value *v);

#endif
