/*
 * common.h - the project-wide error type, assertions and small helpers.
 *
 * Every module returns a bs_err.  The strings and the command-line exit code
 * of each error live in one table, BS_ERR_MAP, so the CLI maps an error to its
 * exit status in one place: 2 for bad usage or bad input (nothing was
 * written), 1 for every other failure (not found, disk full, peer down).
 */
#ifndef BS_COMMON_H
#define BS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BS_MUST_CHECK   __attribute__((warn_unused_result))
#define BS_PRINTF(f, a) __attribute__((format(printf, f, a)))

/*
 * name, CLI exit code, local fault, message.  A local fault is this node's
 * own trouble (disk, memory, store, key file), never the input's: a change
 * set refused for one is not the sender's fault, so a session stops rather
 * than refusing the set, and a held set that meets one stays held.
 */
#define BS_ERR_MAP(X)                                                          \
    X(BS_OK, 0, 0, "success")                                                  \
    X(BS_EUSAGE, 2, 0, "bad usage")                                            \
    X(BS_EINVAL, 2, 0, "invalid input")                                        \
    X(BS_EJSON, 2, 0, "malformed JSON")                                        \
    X(BS_ENOTNODE, 2, 0, "not a branchsync node directory")                    \
    X(BS_EEXIST, 2, 0, "already exists")                                       \
    X(BS_EMALFORMED, 2, 0, "malformed change set")                             \
    X(BS_EBADSIG, 2, 0, "signature does not verify")                           \
    X(BS_EFORGED, 2, 0, "origin is not a known member")                        \
    X(BS_EINFOBASE, 2, 0, "change set belongs to another infobase")            \
    X(BS_EGAP, 2, 0, "change set would leave a gap")                           \
    X(BS_EPERM, 2, 0, "not permitted")                                         \
    X(BS_ENOTFOUND, 1, 0, "not found")                                         \
    X(BS_ENOMEM, 1, 1, "out of memory")                                        \
    X(BS_EIO, 1, 1, "input/output error")                                      \
    X(BS_EMAPFULL, 1, 1, "store is full: no disk space to grow")               \
    X(BS_ESTORE, 1, 1,                                                         \
      "store is corrupt: an entry does not decode; restore from a backup")     \
    X(BS_EKEY, 1, 1, "key file error")                                         \
    X(BS_EUNREACHABLE, 1, 0, "peer unreachable")                               \
    X(BS_ETIMEOUT, 1, 0, "timed out")                                          \
    X(BS_EQUARANTINED, 1, 0, "origin stream quarantined")                      \
    X(BS_EINTERNAL, 1, 1, "internal error")                                    \
    X(BS_EBUSY, 1, 0, "the node is in use by another process")                 \
    X(BS_ESTALE, 1, 0, "peer silent past the retention limit: full resync")

typedef enum {
#define BS_ERR_ENUM(name, code, local, msg) name,
    BS_ERR_MAP(BS_ERR_ENUM)
#undef BS_ERR_ENUM
        BS_ERR_COUNT
} bs_err;

/* The constant message of e; never NULL. */
const char *bs_strerror(bs_err e);
/* The CLI exit status for e: 0, 1 or 2. */
int bs_err_exit_code(bs_err e);
/* 1 when e is a local fault (see BS_ERR_MAP). */
int bs_err_local(bs_err e);

/*
 * A detailed error message, filled where an error is first seen and carried
 * up to the CLI or the daemon log.  bs_errf() returns e so a failing path can
 * be written `return bs_errf(err, BS_EINVAL, "field %s: ...", name);`.
 * err may be NULL (the detail is then dropped).
 */
#define BS_ERRMSG_LEN 512
typedef struct bs_errbuf {
    char msg[BS_ERRMSG_LEN];
} bs_errbuf;

bs_err bs_errf(bs_errbuf *err, bs_err e, const char *fmt, ...) BS_PRINTF(3, 4);
/* The detail if one was set, else bs_strerror(e). */
const char *bs_errmsg(const bs_errbuf *err, bs_err e);

/*
 * Copy the text src into dst (n > 0 bytes, always NUL-terminated) so that
 * it prints as one line and drives no terminal: C0 controls, DEL and bytes
 * that are not well-formed UTF-8 become \xNN; C1 controls (U+0080-U+009F)
 * and the line and paragraph separators U+2028/U+2029 become \uNNNN.  A
 * backslash is kept as it is, so escaping twice changes nothing.  Too long
 * a text is cut at a character boundary.  bs_errf() applies it to every
 * message; use it wherever else a user-supplied string is echoed in an
 * error.  Returns dst.
 */
char *bs_escape(char *dst, size_t n, const char *src);

/* Our own bugs only; stays on in release builds (docs/reliability.md K3). */
#define BS_ASSERT(x) ((x) ? (void)0 : bs_assert_fail(#x, __FILE__, __LINE__))
void bs_assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

/* A borrowed run of bytes. */
typedef struct bs_slice {
    const uint8_t *p;
    size_t n;
} bs_slice;

/* Limits of names and records (README.md "Limits", docs/protocol.md §13). */
#define BS_COLLECTION_MAX 64
#define BS_ID_MAX         256
#define BS_FIELD_NAME_MAX 128
/* Fields in one change (the wire's limit, docs/protocol.md C3).  A write of
 * more becomes several changes; a record holds any number. */
#define BS_FIELDS_MAX 1024
/* The longest JSON text of one record that `put` and `load` read: a guard
 * against runaway input, far above the records offices build (a record
 * grows only by writes of at most 1 MiB each). */
#define BS_RECORD_JSON_MAX (64u << 20)
#define BS_NODE_NAME_MAX   64

/* Big-endian integer helpers for keys and file formats. */
static inline void
bs_put_u32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void
bs_put_u64be(uint8_t *p, uint64_t v)
{
    bs_put_u32be(p, (uint32_t)(v >> 32));
    bs_put_u32be(p + 4, (uint32_t)v);
}

/* Protobuf base-128 varints (the canonical, shortest form). */
static inline size_t
bs_varint_size(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *
bs_varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* A varint at *p, before end: *p moves past it.  0 when it runs past end
 * or past 64 bits.  (Not a canonical-form check: for this node's own
 * stored bytes; untrusted bytes go through changeset.c's readers.) */
static inline int
bs_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 1;
    }
    return 0;
}

static inline uint32_t
bs_get_u32be(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t
bs_get_u64be(const uint8_t *p)
{
    return ((uint64_t)bs_get_u32be(p) << 32) | bs_get_u32be(p + 4);
}

#endif
