/*
 * test_log.c - the daemon's log lines as journal entries (node/log.h,
 * issue 10 item 7): the fields built from a line (MESSAGE, PRIORITY, one
 * per key=value word, ms as DURATION_MS), and which sink gets them.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../node/log.h"

/* The value of field name in f as a new string; NULL when absent. */
static char *
value(const bs_log_fields *f, const char *name)
{
    size_t nn = strlen(name);

    for (size_t i = 0; i < f->n; i++) {
        const char *p = f->iov[i].iov_base;
        if (f->iov[i].iov_len > nn && memcmp(p, name, nn) == 0 && p[nn] == '=')
            return strndup(p + nn + 1, f->iov[i].iov_len - nn - 1);
    }
    return NULL;
}

static void
is(const bs_log_fields *f, const char *name, const char *want)
{
    char *v = value(f, name);

    if (want == NULL)
        cr_assert_null(v, "%s=%s present", name, v);
    else
        cr_assert(v != NULL && strcmp(v, want) == 0, "%s=%s, want %s", name,
                  v ? v : "(none)", want);
    free(v);
}

Test(log, an_exchange_line_gives_one_field_per_word)
{
    static bs_log_fields f;
    const char *line =
        "exchange peer=tallinn dir=both sent=2 received=1 changes=3 "
        "conflicts=0 bytes=4096 ms=12 result=ok";

    bs_log_fields_build(&f, 2, line);
    is(&f, "MESSAGE", line);
    is(&f, "PRIORITY", "6");
    is(&f, "SYSLOG_IDENTIFIER", "branchsyncd");
    is(&f, "PEER", "tallinn");
    is(&f, "DIR", "both");
    is(&f, "SENT", "2");
    is(&f, "RECEIVED", "1");
    is(&f, "CHANGES", "3");
    is(&f, "CONFLICTS", "0");
    is(&f, "BYTES", "4096");
    is(&f, "DURATION_MS", "12");
    is(&f, "MS", NULL);
    is(&f, "RESULT", "ok");
    cr_assert_eq(f.n, 12);
}

Test(log, an_error_line_keeps_the_result_word_and_the_whole_message)
{
    static bs_log_fields f;
    const char *line = "exchange peer=head ms=5003 result=error: the peer did "
                       "not answer (x=1); attempt 2 failed, seq=17";

    bs_log_fields_build(&f, 1, line);
    is(&f, "PRIORITY", "4");
    is(&f, "RESULT", "error");
    is(&f, "PEER", "head");
    is(&f, "DURATION_MS", "5003");
    is(&f, "X", "1)");
    is(&f, "SEQ", "17");
    is(&f, "MESSAGE", line);
}

Test(log, words_that_are_not_key_value_pairs_are_left_alone)
{
    static bs_log_fields f;

    bs_log_fields_build(&f, 0,
                        "stopping (SIGTERM) a=b=c Peer=x peer= peer=one "
                        "peer=two url=http://h/?q=1");
    is(&f, "PRIORITY", "3");
    is(&f, "PEER", "one"); /* the first one counts */
    is(&f, "A", "b=c");
    is(&f, "URL", "http://h/?q=1");
    is(&f, "Q", NULL);
    bs_log_fields_build(&f, 3, "");
    is(&f, "MESSAGE", "");
    is(&f, "PRIORITY", "7");
    cr_assert_eq(f.n, 3);
}

Test(log, a_long_line_is_cut_and_fields_stop_at_the_limit)
{
    static bs_log_fields f;
    char *line = malloc(BS_LOG_LINE_MAX * 2);
    size_t at = 0;

    for (int i = 0; at < BS_LOG_LINE_MAX * 2 - 16; i++)
        at += (size_t)snprintf(line + at, 16, "k%c=%d ", 'a' + i % 26, i);
    line[at] = '\0';
    bs_log_fields_build(&f, 2, line);
    cr_assert_eq(f.n, BS_LOG_FIELDS_MAX);
    cr_assert_eq(f.iov[0].iov_len, 8 + BS_LOG_LINE_MAX);
    free(line);
}

/* ---- sinks ---- */

static char got[4096];
static size_t got_n;

static int
fake_send(void *ctx, const struct iovec *iov, size_t n)
{
    (void)ctx;
    got_n = n;
    got[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strncat(got, iov[i].iov_base, iov[i].iov_len);
        strcat(got, "\n");
    }
    return 0;
}

Test(log, a_sink_gets_the_entry_and_stderr_nothing)
{
    bs_log_sink sink = {fake_send, NULL};

    bs_log_emit(&sink, 2, "exchange peer=tartu changes=4 ms=7 result=ok");
    cr_assert_eq(got_n, 7);
    cr_assert(strstr(got, "PEER=tartu\n"), "%s", got);
    cr_assert(strstr(got, "RESULT=ok\n"), "%s", got);
    cr_assert(strstr(got, "CHANGES=4\n"), "%s", got);
    cr_assert(strstr(got, "DURATION_MS=7\n"), "%s", got);
    cr_assert(strstr(got, "PRIORITY=6\n"), "%s", got);
}

Test(log, the_journal_only_when_stderr_is_the_journal_stream)
{
    struct stat st;
    char js[64];

    unsetenv("JOURNAL_STREAM");
    cr_assert_null(bs_log_journal());
    cr_assert_eq(fstat(2, &st), 0);
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", js, 1); /* another stream: inherited */
    cr_assert_null(bs_log_journal());
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    cr_assert_not_null(bs_log_journal());
    unsetenv("JOURNAL_STREAM");
}
