/*
 * test_csvfile.c - replication/csvfile.c: CSV to JSON Lines (quoting,
 * line ends, BOM, empty cells, types, the line map, skipped rows, errors
 * naming line and column) and bs_csv_write_cell() read back by the reader.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../replication/csvfile.h"

/* The JSON Lines for csv (NUL-terminated input), or "ERR: message". */
static char *
conv(const char *csv, const bs_csv_opts *o, uint64_t **lines, size_t *nlines)
{
    char *out, *s;
    size_t n, nl;
    uint64_t *l;
    bs_errbuf err = {{0}};
    bs_err rv = bs_csv_to_jsonl(csv, strlen(csv), o, &out, &n, &l, &nl, &err);

    if (rv != BS_OK) {
        cr_assert_null(out);
        cr_assert_null(l);
        s = malloc(strlen(bs_errmsg(&err, rv)) + 6);
        sprintf(s, "ERR: %s", bs_errmsg(&err, rv));
        return s;
    }
    s = malloc(n + 1);
    if (n > 0)
        memcpy(s, out, n);
    s[n] = '\0';
    free(out);
    if (lines != NULL) {
        *lines = l;
        *nlines = nl;
    } else {
        free(l);
    }
    return s;
}

static void
expect(const char *csv, const bs_csv_opts *o, const char *want)
{
    char *got = conv(csv, o, NULL, NULL);

    cr_expect_str_eq(got, want, "input: %s", csv);
    free(got);
}

/* The error message must hold `part`. */
static void
expect_err(const char *csv, const bs_csv_opts *o, const char *part)
{
    char *got = conv(csv, o, NULL, NULL);

    cr_expect(strncmp(got, "ERR: ", 5) == 0 && strstr(got, part) != NULL,
              "input %s: got \"%s\", want an error with \"%s\"", csv, got,
              part);
    free(got);
}

Test(csvfile, quoting_rfc4180)
{
    expect("id,a\nx,\"1,2\"\n", NULL, "{\"id\":\"x\",\"a\":\"1,2\"}\n");
    expect("id,a\nx,\"say \"\"hi\"\"\"\n", NULL,
           "{\"id\":\"x\",\"a\":\"say \\\"hi\\\"\"}\n");
    expect("id,a\nx,\"l1\nl2\"\n", NULL,
           "{\"id\":\"x\",\"a\":\"l1\\u000al2\"}\n");
    expect("id,a\nx,\"l1\r\nl2\"\r\n", NULL,
           "{\"id\":\"x\",\"a\":\"l1\\u000d\\u000al2\"}\n");
    expect("id,a\r\nx,1\r\ny,2\r\n", NULL,
           "{\"id\":\"x\",\"a\":\"1\"}\n{\"id\":\"y\",\"a\":\"2\"}\n");
    expect("\xef\xbb\xbfid,a\nx,1", NULL, "{\"id\":\"x\",\"a\":\"1\"}\n");
    expect("id,a\n\n\nx,1\n\n", NULL, "{\"id\":\"x\",\"a\":\"1\"}\n");
    expect("id,a\nx, 1 \n", NULL, "{\"id\":\"x\",\"a\":\" 1 \"}\n");
    expect("id,a,b\nx,,\"\"\n", NULL, "{\"id\":\"x\",\"b\":\"\"}\n");
    expect("\"id\",\"a\\b\"\n\"x\\\",\"\t\"\n", NULL,
           "{\"id\":\"x\\\\\",\"a\\\\b\":\"\\u0009\"}\n");
    expect("a,id\n\"\",\"q\"\"\"\n", NULL, "{\"id\":\"q\\\"\",\"a\":\"\"}\n");
    expect("id\n", NULL, "");
    expect_err("id,a\nx,a\"b\n", NULL, "line 2: bad quoting");
    expect_err("id,a\nx,\"a\"b\n", NULL, "line 2: bad quoting");
    expect_err("id,a\nx,\"a\n\nb\n", NULL,
               "line 4: a quoted cell opened on line 2 is never closed");
    expect_err("", NULL, "no header row");
    expect_err("\xef\xbb\xbf\n\n", NULL, "no header row");
}

Test(csvfile, delimiter_and_id_field)
{
    bs_csv_opts o = {.delim = ';', .id_field = "code"};

    expect("code;n\nK;\"a;b\"\n", &o, "{\"id\":\"K\",\"n\":\"a;b\"}\n");
    expect_err("x;n\nK;1\n", &o, "the header has no code column");
    expect_err("code;id\nK;1\n", &o,
               "--id-field code, but the header has "
               "an id column too");
    o.delim = '\t';
    expect("n\tcode\n1,2\tK\n", &o, "{\"id\":\"K\",\"n\":\"1,2\"}\n");
}

Test(csvfile, header_rules)
{
    expect_err("id,a,a\n", NULL, "line 1: column a appears twice");
    /* found by fuzz_csv: a second ID column was taken as the ID column */
    expect_err("id,id\n\x12,id\n", NULL, "line 1: column id appears twice");
    expect_err("id,,a\n", NULL, "line 1, column 2");
    expect_err("a,b\n", NULL, "no id column");
    expect_err("id,a\x01\n", NULL, "is not a field name");
    expect_err("id,a\nx,1,2\n", NULL, "line 2: 3 cells, but the header has 2");
    expect_err("id,a,b\nx,1\n", NULL, "line 2: 2 cells, but the header has 3");
    expect_err("id,a\n,1\n", NULL, "line 2, column id: no ID");
}

Test(csvfile, types)
{
    bs_csv_opts o = {.types = "n:number,ok:bool,s:string"};
    const char *good[] = {"0",    "-0",  "7",     "-12",    "1.5",
                          "0.25", "1e5", "1E+05", "2.5e-3", "123456789012"};
    const char *bad[] = {"01",  "+1", ".5", "1.",  "1e",  "e5", "--1",
                         "0x1", "1 ", " 1", "NaN", "inf", "1,5"};
    char csv[128], want[128];

    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(csv, sizeof csv, "id,n\nx,\"%s\"\n", good[i]);
        snprintf(want, sizeof want, "{\"id\":\"x\",\"n\":%s}\n", good[i]);
        expect(csv, &(bs_csv_opts){.types = "n:number"}, want);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(csv, sizeof csv, "id,n\nx,1\ny,\"%s\"\n", bad[i]);
        expect_err(csv, &(bs_csv_opts){.types = "n:number"},
                   "line 3, column n: \"");
    }
    expect("id,ok,n,s\nx,TRUE,1,1\ny,False,,\"\"\n", &o,
           "{\"id\":\"x\",\"ok\":true,\"n\":1,\"s\":\"1\"}\n"
           "{\"id\":\"y\",\"ok\":false,\"s\":\"\"}\n");
    expect_err("id,ok,n,s\nx,yes,1,1\n", &o,
               "line 2, column ok: \"yes\" is not true or false");
    expect_err("id,ok,n,s\nx,1,1,1\n", &o, "column ok");
    expect_err("id,n\n", &o, "--types names column \"ok\"");
    expect_err("id,n\n", &(bs_csv_opts){.types = "n:int"},
               "unknown type \"int\"");
    expect_err("id,n\n", &(bs_csv_opts){.types = "n"}, "is not NAME:TYPE");
    expect_err("id,n\n", &(bs_csv_opts){.types = "id:number"},
               "always a string");
}

Test(csvfile, lines_name_the_row_start)
{
    uint64_t *lines;
    size_t n;
    char *out = conv("id,a\r\n\r\nx,\"1\n2\n3\"\ny,2\n\nz,3", NULL, &lines, &n);

    cr_assert_eq(n, 3, "%s", out);
    cr_expect_eq(lines[0], 3);
    cr_expect_eq(lines[1], 6);
    cr_expect_eq(lines[2], 8);
    free(lines);
    free(out);
}

typedef struct skips {
    int n;
    uint64_t line[8];
    char id[8][16];
    char why[8][128];
} skips;

static void
on_skip(void *ctx, uint64_t line, const char *id, const char *why)
{
    skips *s = ctx;

    cr_assert_lt(s->n, 8);
    s->line[s->n] = line;
    snprintf(s->id[s->n], sizeof s->id[0], "%s", id ? id : "(null)");
    snprintf(s->why[s->n], sizeof s->why[0], "%s", why);
    s->n++;
}

Test(csvfile, skip_reports_bad_rows_and_keeps_the_rest)
{
    skips s = {0};
    bs_csv_opts o = {
        .types = "n:number", .skip = 1, .on_skip = on_skip, .ctx = &s};
    uint64_t *lines;
    size_t n;
    char *out = conv("id,n\na,1\nb,x\nc\n,4\nd,5\n", &o, &lines, &n);

    cr_assert_str_eq(out, "{\"id\":\"a\",\"n\":1}\n{\"id\":\"d\",\"n\":5}\n");
    cr_assert_eq(n, 2);
    cr_expect_eq(lines[1], 6);
    cr_assert_eq(s.n, 3);
    cr_expect_eq(s.line[0], 3);
    cr_expect_str_eq(s.id[0], "b");
    cr_expect_str_eq(s.why[0], "line 3, column n: \"x\" is not a number");
    cr_expect_str_eq(s.id[1], "c");
    cr_expect_str_eq(s.why[1], "line 4: 1 cell, but the header has 2");
    cr_expect_str_eq(s.id[2], "(null)");
    cr_expect_str_eq(s.why[2], "line 5, column id: no ID");
    free(lines);
    free(out);
    /* quoting errors stay fatal: the rows after them cannot be told apart */
    expect_err("id,n\na,\"1\n", &o, "never closed");
}

/* Cells written by bs_csv_write_cell read back as the same strings. */
Test(csvfile, written_cells_read_back)
{
    const char alphabet[] = "ab ,;\"\r\n\t'x";
    char cell[16], want[256], *got;
    unsigned seed = 42;

    for (int round = 0; round < 2000; round++) {
        char delim = round % 2 ? ';' : ',';
        size_t n = (size_t)(rand_r(&seed) % 6);
        FILE *f;
        char *buf = NULL;
        size_t len = 0, w = 0;

        for (size_t i = 0; i < n; i++)
            cell[i] = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
        f = open_memstream(&buf, &len);
        cr_assert_not_null(f);
        cr_assert_eq(bs_csv_write_cell(f, "id", 2, delim, 0), 0);
        cr_assert_eq(bs_csv_write_cell(f, "v", 1, delim, 1), 0);
        fputc('\n', f);
        cr_assert_eq(bs_csv_write_cell(f, "k", 1, delim, 0), 0);
        cr_assert_eq(bs_csv_write_cell(f, cell, n, delim, 1), 0);
        fputc('\n', f);
        fclose(f);
        w = (size_t)snprintf(want, sizeof want, "{\"id\":\"k\",\"v\":\"");
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)cell[i];

            if (ch == '"')
                w += (size_t)snprintf(want + w, sizeof want - w, "\\\"");
            else if (ch < 0x20)
                w += (size_t)snprintf(want + w, sizeof want - w, "\\u%04x", ch);
            else
                want[w++] = (char)ch;
        }
        snprintf(want + w, sizeof want - w, "\"}\n");
        got = conv(buf, &(bs_csv_opts){.delim = delim}, NULL, NULL);
        cr_assert_str_eq(got, want, "cell \"%.*s\" written as: %s", (int)n,
                         cell, buf);
        free(got);
        free(buf);
    }
}
