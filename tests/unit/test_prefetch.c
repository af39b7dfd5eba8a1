/*
 * test_prefetch.c - sets decoded ahead on a second thread (prefetch.h):
 * each set comes back as bs_changeset_decode gives it, its changes
 * decoded as bs_changeset_change gives them, a refusal with the same
 * code and message, its signature marked checked only when it verifies; asked
 * again (a transaction run again) or out of order, it is decoded again;
 * stopping early frees what nobody took; a file of many sets, one of them
 * forged, is refused by the import as before.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/fixture.h"
#include "../../replication/prefetch.h"
#include "../../replication/snapshot.h"
#include <sodium.h>

#define T0    1800000000000ull
#define NSETS 40

static char root[128], path[300];
static bst_clock ch = {T0, 1}, cb = {T0, 1};
static bst_node head, br;
static bst_frames fr;
static uint8_t *file;

static void
setup(void)
{
    bs_clock a = bst_clock_of(&ch), b = bst_clock_of(&cb);
    bs_errbuf err = {{0}};
    size_t len;

    cr_assert_eq(bs_crypto_init(), BS_OK);
    ch.ms = cb.ms = T0;
    bst_root(root, sizeof root, "prefetch");
    snprintf(path, sizeof path, "%s/x.bsx", root);
    bst_node_new(&head, root, "head", BS_ROLE_HUB, &a);
    bst_node_new(&br, root, "br", BS_ROLE_BRANCH, &b);
    bst_pair2(&head, &br);
    for (int i = 0; i < NSETS; i++) { /* one set each, 20 KiB: prefetched */
        static char json[20 * 1024 + 32];
        char id[16];
        bst_op op = {"items", id, json};

        snprintf(id, sizeof id, "i%03d", i);
        memset(json, 'a' + i % 26, sizeof json);
        memcpy(json, "{\"t\":\"", 6);
        memcpy(json + 20 * 1024, "\"}", 3);
        bst_ok(bst_write(&head, &op, 1, NULL, &err), &err, "write");
    }
    bst_ok(bst_export(&head, "br", path, &err), &err, "export");
    file = bst_read_file(path, &len);
    cr_assert(bst_frames_split(file, len, &fr));
    cr_assert(fr.nsets >= NSETS, "%zu sets", fr.nsets);
}

static void
teardown(void)
{
    bst_frames_fini(&fr);
    free(file);
    bst_node_free(&head);
    bst_node_free(&br);
    bst_rmtree(root);
    bst_leak_check("test_prefetch");
}

TestSuite(prefetch, .init = setup, .fini = teardown, .timeout = 60);

/* v as prefetched equals the direct decoding of raw. */
static void
same_set(const bs_csview *v, bs_slice raw)
{
    bs_csview *d;
    bs_errbuf err = {{0}};

    cr_assert_eq(bs_changeset_decode(raw.p, raw.n, &d, &err), BS_OK, "%s",
                 err.msg);
    cr_assert_eq(v->first, d->first);
    cr_assert_eq(v->last, d->last);
    cr_assert_eq(v->count, d->count);
    cr_assert_eq(memcmp(v->origin, d->origin, BS_PK_LEN), 0);
    cr_assert_eq(memcmp(v->header_hash, d->header_hash, BS_HASH_LEN), 0);
    bs_changeset_free(d);
}

Test(prefetch, every_set_comes_back_in_order_with_its_signature_checked)
{
    bs_prefetch *p = bs_prefetch_start(fr.sets, fr.nsets);
    bs_errbuf err = {{0}};

    cr_assert_not_null(p);
    for (size_t i = 0; i < fr.nsets; i++) {
        bs_csview *v;

        cr_assert_eq(bs_prefetch_get(p, i, &v, &err), BS_OK, "%s", err.msg);
        cr_assert(v->verified, "set %zu: signature not marked checked", i);
        same_set(v, fr.sets[i]);
        cr_assert_not_null(v->pre, "set %zu: changes not decoded ahead", i);
        for (size_t c = 0, k = 0; c < v->count; c++) { /* as here */
            bs_arena a;
            bs_change d;

            if (!v->present[c])
                continue;
            bs_arena_init(&a);
            cr_assert_eq(bs_changeset_change(v, c, &a, &d, NULL), BS_OK);
            cr_assert_eq(v->pre[k].seq, d.seq);
            cr_assert_eq(v->pre[k].hlc, d.hlc);
            cr_assert_str_eq(v->pre[k].coll, d.coll);
            cr_assert_str_eq(v->pre[k].id, d.id);
            cr_assert_eq(v->pre[k].nfields, d.nfields);
            for (size_t f = 0; f < d.nfields; f++)
                cr_assert(
                    bs_value_eq(&v->pre[k].fields[f].val, &d.fields[f].val));
            bs_arena_fini(&a);
            k++;
        }
        bs_changeset_free(v);
    }
    bs_prefetch_stop(p);
}

/* A transaction run again asks for its sets again: decoded again, then
 * the ring goes on where it was; a set asked out of order too. */
Test(prefetch, a_set_asked_again_or_out_of_order_is_decoded_again)
{
    bs_prefetch *p = bs_prefetch_start(fr.sets, fr.nsets);
    bs_errbuf err = {{0}};
    bs_csview *v;

    cr_assert_not_null(p);
    for (size_t i = 0; i < 10; i++) {
        cr_assert_eq(bs_prefetch_get(p, i, &v, &err), BS_OK);
        bs_changeset_free(v);
    }
    for (size_t i = 3; i < 12; i++) { /* 3..9 again, then 10, 11 ahead */
        cr_assert_eq(bs_prefetch_get(p, i, &v, &err), BS_OK);
        same_set(v, fr.sets[i]);
        bs_changeset_free(v);
    }
    cr_assert_eq(bs_prefetch_get(p, 30, &v, &err), BS_OK); /* skipping */
    same_set(v, fr.sets[30]);
    bs_changeset_free(v);
    cr_assert_eq(bs_prefetch_get(p, fr.nsets, &v, &err), BS_EINVAL);
    bs_prefetch_stop(p); /* frees the sets decoded and never taken */
}

/* A set whose bytes do not decode comes back refused as the direct
 * decoding refuses it; one whose signature does not verify comes back
 * decoded, not marked checked (admission refuses it, A4). */
Test(prefetch, refusals_are_the_decoders_and_a_bad_signature_is_left_to_A4)
{
    bs_slice *raw = calloc(fr.nsets, sizeof *raw);
    uint8_t *cut, *forged;
    bs_errbuf err = {{0}}, want = {{0}};
    bs_csview *v, *d;
    bs_prefetch *p;
    bs_err rv;

    cr_assert_not_null(raw);
    memcpy(raw, fr.sets, fr.nsets * sizeof *raw);
    cut = malloc(raw[5].n);
    memcpy(cut, raw[5].p, raw[5].n);
    raw[5] = (bs_slice){cut, raw[5].n / 2}; /* truncated */
    forged = malloc(raw[7].n);
    memcpy(forged, raw[7].p, raw[7].n);
    { /* ChangeSet: 0a <len> header, 12 40 signature: its last byte */
        const uint8_t *q = forged + 1;
        uint64_t hn;

        cr_assert_eq(forged[0], 0x0a);
        cr_assert(bs_varint_get(&q, forged + raw[7].n, &hn));
        q += hn;
        cr_assert(q[0] == 0x12 && q[1] == 0x40);
        forged[(size_t)(q - forged) + 2 + 63] ^= 1;
    }
    raw[7].p = forged;
    cr_assert_not_null(p = bs_prefetch_start(raw, fr.nsets));
    for (size_t i = 0; i < fr.nsets; i++) {
        rv = bs_prefetch_get(p, i, &v, &err);
        if (i == 5) {
            bs_err w = bs_changeset_decode(raw[5].p, raw[5].n, &d, &want);
            cr_assert_neq(w, BS_OK);
            cr_assert_eq(rv, w);
            cr_assert_str_eq(err.msg, want.msg);
            cr_assert_null(v);
            continue;
        }
        cr_assert_eq(rv, BS_OK, "set %zu: %s", i, err.msg);
        cr_assert_eq(v->verified, i != 7, "set %zu", i);
        bs_changeset_free(v);
    }
    bs_prefetch_stop(p);
    free(cut);
    free(forged);
    free(raw);
}

/* Stopped before anything was taken: no leak, no wait. */
Test(prefetch, stopping_early_frees_what_was_decoded)
{
    bs_prefetch *p = bs_prefetch_start(fr.sets, fr.nsets);

    cr_assert_not_null(p);
    bs_prefetch_stop(p);
    bs_prefetch_stop(NULL);
}

/* The import takes its sets from the prefetcher: a file of many sets
 * applies as before, and one with a set altered in the middle (the file
 * sealed again over it) is refused, nothing written. */
Test(prefetch, an_import_of_many_sets_applies_and_an_altered_one_is_refused)
{
    const size_t tlen = 5 + BS_HASH_LEN + BS_SIG_LEN; /* the trailer frame */
    char data[400];
    uint8_t *d0, *d1, *x, *tr;
    size_t len, n0, n1;
    bs_errbuf err = {{0}};
    bs_xstats st;
    bs_err rv;

    x = bst_read_file(path, &len);
    memcpy(x, file, len);
    x[(size_t)(fr.sets[20].p - file) + fr.sets[20].n - 1] ^= 1;
    tr = x + len - tlen + 5;
    bs_hash(tr, x, len - tlen);
    bs_sign(tr + BS_HASH_LEN, BS_FILE_CONTEXT, tr, BS_HASH_LEN, head.core.sk);
    snprintf(data, sizeof data, "%s/bad.bsx", root);
    bst_write_file(data, x, len);
    free(x);
    {
        char db[400];

        snprintf(db, sizeof db, "%s/store/data.mdb", br.dir);
        d0 = bst_read_file(db, &n0);
        rv = bst_import(&br, data, &st, &err);
        cr_assert_neq(rv, BS_OK, "an altered set was taken");
        cr_assert_eq(bs_err_exit_code(rv), 2, "%s", bs_errmsg(&err, rv));
        d1 = bst_read_file(db, &n1);
        cr_assert(n0 == n1 && memcmp(d0, d1, n0) == 0,
                  "the refused file changed the store");
        free(d0);
        free(d1);
    }
    rv = bst_import(&br, path, &st, &err);
    cr_assert_eq(rv, BS_OK, "%s", bs_errmsg(&err, rv));
    cr_assert_eq(st.sets, fr.nsets);
}

/* ---- a batch's snapshots decoded ahead ---- */

#define NBODIES 3000 /* six chunks of BS_SNAPAHEAD_CHUNK, the last short */

/* A version-2 batch of NBODIES records r0000.. of "items" by one
 * writer; with bad > 0, body `bad` names writer 2 of 1 (malformed). */
static uint8_t *
big_batch(size_t *n, size_t bad, uint8_t pk[BS_PK_LEN])
{
    uint8_t sk[BS_SK_LEN], writer[BS_STREAM_KEY_LEN], ib[BS_INFOBASE_LEN];
    bs_slice *bodies = calloc(NBODIES, sizeof *bodies);
    uint8_t *out;

    cr_assert_not_null(bodies);
    crypto_sign_keypair(pk, sk);
    memcpy(writer, pk, BS_PK_LEN);
    memset(writer + BS_PK_LEN, 0x22, BS_INC_LEN);
    memset(ib, 0x11, sizeof ib);
    for (size_t i = 0; i < NBODIES; i++) {
        bs_snap s;
        bs_snapfield f[2];
        uint8_t *b;
        size_t bn;
        char text[32];

        memset(&s, 0, sizeof s);
        snprintf(s.coll, sizeof s.coll, "items");
        snprintf(s.id, sizeof s.id, "r%04zu", i);
        s.has_alive = 1;
        s.alive = (bs_snapver){1000 + i, 1 + i, 0, {0}, 1};
        snprintf(text, sizeof text, "item %zu", i);
        f[0] = (bs_snapfield){"n", {0}, s.alive};
        f[0].val.type = BS_VINT;
        f[0].val.i = (int64_t)i;
        f[1] = (bs_snapfield){"t", {0}, s.alive};
        f[1].val.type = BS_VTEXT;
        f[1].val.s = text;
        f[1].val.len = (uint32_t)strlen(text);
        f[1].ver.writer = i == bad && bad > 0 ? 2 : 1;
        s.fields = f;
        s.nfields = 2;
        cr_assert_eq(bs_snap_encode_body2(&s, &b, &bn), BS_OK);
        bodies[i] = (bs_slice){b, bn};
    }
    cr_assert_eq(bs_snapbatch_encode2(ib, pk, 1, writer, 1, bodies, NBODIES, sk,
                                      &out, n),
                 BS_OK);
    for (size_t i = 0; i < NBODIES; i++)
        free((void *)bodies[i].p);
    free(bodies);
    return out;
}

/* Every snapshot comes back in order as bs_snapbatch_snap_into gives it,
 * then BS_ENOTFOUND. */
Test(prefetch, a_batchs_snapshots_come_back_in_order_as_decoded_here)
{
    uint8_t pk[BS_PK_LEN], *bytes;
    size_t n, got = 0;
    bs_errbuf err = {{0}};
    bs_snapbatch *b;
    bs_snapahead *a;
    bs_snap *s, one;
    bs_err rv;

    bytes = big_batch(&n, 0, pk);
    cr_assert_eq(bs_snapbatch_decode(bytes, n, &b, &err), BS_OK, "%s", err.msg);
    cr_assert_not_null(a = bs_snapahead_start(b));
    bs_snap_init(&one);
    while ((rv = bs_snapahead_next(a, &s, &err)) == BS_OK) {
        cr_assert_eq(bs_snapbatch_snap_into(b, got, &one, &err), BS_OK);
        cr_assert_str_eq(s->id, one.id);
        cr_assert_eq(s->nfields, 2);
        cr_assert_eq(s->fields[0].val.i, (int64_t)got);
        cr_assert_str_eq(s->fields[1].val.s, one.fields[1].val.s);
        cr_assert_eq(s->fields[1].ver.seq, one.fields[1].ver.seq);
        cr_assert_eq(memcmp(s->alive.key, one.alive.key, BS_STREAM_KEY_LEN), 0);
        got++;
    }
    cr_assert_eq(rv, BS_ENOTFOUND);
    cr_assert_eq(got, NBODIES);
    cr_assert_eq(bs_snapahead_next(a, &s, &err), BS_ENOTFOUND);
    bs_snap_fini(&one);
    bs_snapahead_stop(a);
    bs_snapbatch_free(b);
    free(bytes);
}

/* A body that does not decode: those before it come back, then its
 * refusal with the decoder's message; stopping early leaks nothing. */
Test(prefetch, a_batchs_bad_body_is_refused_where_it_comes)
{
    uint8_t pk[BS_PK_LEN], *bytes;
    size_t n, got = 0;
    bs_errbuf err = {{0}}, want = {{0}};
    bs_snapbatch *b;
    bs_snapahead *a;
    bs_snap *s, one;
    bs_err rv;

    bytes = big_batch(&n, 1700, pk);
    cr_assert_eq(bs_snapbatch_decode(bytes, n, &b, &err), BS_OK);
    bs_snap_init(&one);
    cr_assert_eq(bs_snapbatch_snap_into(b, 1700, &one, &want), BS_EMALFORMED);
    bs_snap_fini(&one);
    cr_assert_not_null(a = bs_snapahead_start(b));
    while ((rv = bs_snapahead_next(a, &s, &err)) == BS_OK)
        got++;
    cr_assert_eq(rv, BS_EMALFORMED);
    cr_assert_eq(got, 1700);
    cr_assert_str_eq(err.msg, want.msg);
    bs_snapahead_stop(a);
    cr_assert_not_null(a = bs_snapahead_start(b)); /* stopped early */
    cr_assert_eq(bs_snapahead_next(a, &s, &err), BS_OK);
    bs_snapahead_stop(a);
    bs_snapahead_stop(NULL);
    bs_snapbatch_free(b);
    free(bytes);
}
