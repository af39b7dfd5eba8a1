/*
 * log.c - the daemon's log lines: text on stderr, or structured journal
 * entries under systemd (log.h).  The only home of <systemd/sd-journal.h>.
 */
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int priorities[] = {3, 4, 6, 7}; /* LOG_ERR .. LOG_DEBUG */

/* Append "NAME=value" (value n bytes) as the next field; 0 when full. */
static int
field(bs_log_fields *f, size_t *used, const char *name, const char *v, size_t n)
{
    size_t nn = strlen(name), need = nn + 1 + n;
    char *p = f->buf + *used;

    if (f->n == BS_LOG_FIELDS_MAX || *used + need > sizeof f->buf)
        return 0;
    memcpy(p, name, nn);
    p[nn] = '=';
    memcpy(p + nn + 1, v, n);
    f->iov[f->n].iov_base = p;
    f->iov[f->n].iov_len = need;
    f->n++;
    *used += need;
    return 1;
}

/* Whether the field NAME= is there already. */
static int
has(const bs_log_fields *f, const char *name, size_t nn)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->iov[i].iov_len > nn &&
            memcmp(f->iov[i].iov_base, name, nn) == 0 &&
            ((const char *)f->iov[i].iov_base)[nn] == '=')
            return 1;
    return 0;
}

/* The `key=value` word at line[i] (i at the key's start), if it is one:
 * its field added.  Returns the index after the word (i when no key). */
static size_t
word(bs_log_fields *f, size_t *used, const char *line, size_t i)
{
    char name[40];
    size_t k = i, kn, nn = 0, v, e;

    while (line[k] == '_' || islower((unsigned char)line[k]) ||
           (k > i && isdigit((unsigned char)line[k])))
        k++;
    kn = k - i;
    if (kn == 0 || line[k] != '=' || kn >= sizeof name)
        return k;
    v = e = k + 1;
    while (line[e] != '\0' && line[e] != ' ')
        e++;
    k = e;
    while (e > v &&
           (line[e - 1] == ':' || line[e - 1] == ';' || line[e - 1] == ','))
        e--;
    if (e == v)
        return k;
    if (kn == 2 && memcmp(line + i, "ms", 2) == 0) {
        nn = (size_t)snprintf(name, sizeof name, "DURATION_MS");
    } else {
        for (size_t j = 0; j < kn; j++)
            name[nn++] = (char)toupper((unsigned char)line[i + j]);
        name[nn] = '\0';
    }
    if (!has(f, name, nn))
        field(f, used, name, line + v, e - v);
    return k;
}

void
bs_log_fields_build(bs_log_fields *f, int level, const char *msg)
{
    char prio[2] = {(char)('0' + priorities[level & 3]), '\0'};
    size_t used = 0, len = strnlen(msg, BS_LOG_LINE_MAX), at = 0;
    const char *line = f->buf + 8; /* the message, after "MESSAGE=" */

    f->n = 0;
    field(f, &used, "MESSAGE", msg, len);
    f->buf[used++] = '\0'; /* so that line ends there */
    field(f, &used, "PRIORITY", prio, 1);
    field(f, &used, "SYSLOG_IDENTIFIER", "branchsyncd", 11);
    while (at < len) {
        size_t next = at;
        if (at == 0 || line[at - 1] == ' ' || line[at - 1] == '(')
            next = word(f, &used, line, at);
        at = next > at ? next : at + 1;
    }
}

static int
journal_send(void *ctx, const struct iovec *iov, size_t n)
{
    (void)ctx;
    return sd_journal_sendv(iov, (int)n);
}

const bs_log_sink *
bs_log_journal(void)
{
    static const bs_log_sink journal = {journal_send, NULL};
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
        fstat(2, &st) != 0)
        return NULL;
    return (unsigned long long)st.st_dev == dev &&
                   (unsigned long long)st.st_ino == ino
               ? &journal
               : NULL;
}

void
bs_log_emit(const bs_log_sink *sink, int level, const char *msg)
{
    bs_log_fields f;

    if (sink != NULL) {
        bs_log_fields_build(&f, level, msg);
        if (sink->send(sink->ctx, f.iov, f.n) >= 0)
            return; /* else the line still goes to stderr */
    }
    fprintf(stderr, "branchsyncd: %s: %s\n", level_names[level & 3], msg);
}
