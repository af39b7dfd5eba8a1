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

bs_err
bs_errf(bs_errbuf *err, bs_err e, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return e;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
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
