/*
 * common.c - error strings, exit codes and the assertion handler.
 */
#include "common.h"

#include <stdarg.h>
#include <string.h>

static const struct {
    const char *msg;
    int code, local;
} errtab[] = {
#define BS_ERR_ROW(name, code, local, msg) {msg, code, local},
    BS_ERR_MAP(BS_ERR_ROW)
#undef BS_ERR_ROW
};

int
bs_err_local(bs_err e)
{
    return (unsigned)e >= BS_ERR_COUNT || errtab[e].local;
}

const char *
bs_strerror(bs_err e)
{
    if ((unsigned)e >= BS_ERR_COUNT)
        return "unknown error";
    return errtab[e].msg;
}

int
bs_err_exit_code(bs_err e)
{
    if ((unsigned)e >= BS_ERR_COUNT)
        return 1;
    return errtab[e].code;
}

/* The length of the well-formed UTF-8 sequence at s (at most `left`
 * bytes), its code point in *cp; 0 when s does not start one. */
static size_t
utf8_seq(const unsigned char *s, size_t left, uint32_t *cp)
{
    size_t len;
    uint32_t c;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        c = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        c = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > left)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[k] & 0x3f);
    }
    if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) ||
        (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
        (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

char *
bs_escape(char *dst, size_t n, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t left = strlen(src), o = 0;

    while (left > 0) {
        char esc[8];
        const char *out = (const char *)s;
        uint32_t cp = 0;
        size_t len = utf8_seq(s, left, &cp), w = len;

        if (len == 0 || cp < 0x20 || cp == 0x7f) {
            len = 1;
            out = esc;
            w = (size_t)snprintf(esc, sizeof esc, "\\x%02x", s[0]);
        } else if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
            out = esc;
            w = (size_t)snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
        }
        if (o + w >= n)
            break; /* cut at a character boundary */
        memcpy(dst + o, out, w);
        o += w;
        s += len;
        left -= len;
    }
    dst[o] = '\0';
    return dst;
}

bs_err
bs_errf(bs_errbuf *err, bs_err e, const char *fmt, ...)
{
    char raw[BS_ERRMSG_LEN];
    va_list ap;

    if (err == NULL)
        return e;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* Messages echo names, IDs and paths from the input: one line, no
     * terminal controls, whatever they hold. */
    bs_escape(err->msg, sizeof err->msg, raw);
    return e;
}

const char *
bs_errmsg(const bs_errbuf *err, bs_err e)
{
    if (err != NULL && err->msg[0] != '\0')
        return err->msg;
    return bs_strerror(e);
}

void
bs_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "branchsync: assertion failed: %s (%s:%d)\n", expr, file,
            line);
    abort();
}
