/*
 * reseed.c - a stale branch seeded again: its unsent sets stashed, its
 * user data replaced by the seed, its newer edits written again after.
 */
#include "reseed.h"

#include <stdlib.h>
#include <string.h>

#include "changeset.h"
#include "crypto.h"
#include "local.h"
#include "meta.h"
#include "movein.h"
#include "record.h"
#include "scope.h"
#include "setlog.h"
#include "streams.h"

/*
 * meta "rsd:"                -> u64be seq the hub held of the old stream |
 *                               u32be that stream's index
 * meta "rsd:" | u64be first  -> a stashed own set, as it was logged
 * meta "rsb:" | coll \0 id   -> (empty) a record born in the stash: the
 *                               branch created it while stale, so the hub
 *                               never knew it (begin), and finish writes it
 *                               again though the seed does not bring it
 */
#define RSD     "rsd:"
#define RSD_LEN 4
#define RSB     "rsb:"
#define RSB_LEN 4

static bs_err
marker_get(bs_txn *t, uint64_t *held, uint32_t *stream)
{
    bs_slice v;
    bs_err rv = bs_txn_get(t, BS_DB_META, bs_mem(RSD, RSD_LEN), &v);

    if (rv != BS_OK)
        return rv;
    if (v.n != 12)
        return BS_ESTORE;
    *held = bs_get_u64be(v.p);
    *stream = bs_get_u32be(v.p + 8);
    return BS_OK;
}

bs_err
bs_reseed_pending(bs_txn *t, int *on)
{
    uint64_t held;
    uint32_t stream;
    bs_err rv = marker_get(t, &held, &stream);

    *on = rv == BS_OK;
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static void
stash_key(uint8_t k[RSD_LEN + 8], uint64_t first)
{
    memcpy(k, RSD, RSD_LEN);
    bs_put_u64be(k + RSD_LEN, first);
}

/* Move own sets of stream s above `held` from the log to the stash, and
 * rewind s to held (its chain head: the header hash of the set there). */
static bs_err
stash_own(bs_txn *t, bs_stream *s, uint64_t held, bs_reseed_stats *st)
{
    uint8_t k[RSD_LEN + 8], head[BS_HASH_LEN] = {0};
    uint64_t first;
    bs_slice set;
    bs_err rv;

    if (held > 0 &&
        (rv = bs_setlog_find(t, s->idx, held, &set, &first)) == BS_OK) {
        if (bs_changeset_stored_header_hash(set, head) != BS_OK)
            return BS_ESTORE;
    } else if (held > 0 && rv != BS_ENOTFOUND)
        return rv;
    while ((rv = bs_setlog_from(t, s->idx, held + 1, &set, &first)) == BS_OK) {
        stash_key(k, first);
        if ((rv = bs_txn_put(t, BS_DB_META, bs_mem(k, sizeof k), set, 0,
                             NULL)) != BS_OK ||
            (rv = bs_setlog_del(t, s->idx, first)) != BS_OK)
            return rv;
        st->stashed++;
    }
    if (rv != BS_ENOTFOUND)
        return rv;
    if (s->seq > held) {
        s->seq = held;
        memcpy(s->last_hash, head, BS_HASH_LEN);
        return bs_streams_save(t, s);
    }
    return BS_OK;
}

/* Drop every user record (system collections stay: they arrive as signed
 * changes, never as snapshots). */
static bs_err
clear_user(bs_txn *t, bs_reseed_stats *st)
{
    char(*keys)[BS_RECKEY_MAX + 1] = NULL;
    size_t n = 0, cap = 0;
    bs_cursor *c;
    bs_slice k, v;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        if (k.n == 0 || k.n > BS_RECKEY_MAX || k.p[0] == '_' ||
            memchr(k.p, '\0', k.n) == NULL)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char(*g)[BS_RECKEY_MAX + 1] = realloc(keys, nc * sizeof *g);
            if (g == NULL) {
                rv = BS_ENOMEM;
                break;
            }
            keys = g;
            cap = nc;
        }
        memcpy(keys[n], k.p, k.n);
        keys[n++][k.n] = '\0';
    }
    bs_cursor_close(c);
    if (rv == BS_ENOTFOUND)
        rv = BS_OK;
    for (size_t i = 0; i < n && rv == BS_OK; i++) {
        const char *coll = keys[i], *id = coll + strlen(coll) + 1;
        rv = bs_scope_drop_record(t, coll, id);
    }
    if (rv == BS_OK)
        st->cleared += n;
    free(keys);
    return rv;
}

/* ---- records born in the stash ---- */

/* 1 when every version r holds is of the stashed part of own stream idx
 * (seq above held): nothing of it ever reached the hub. */
static int
stash_only(const bs_record *r, uint32_t idx, uint64_t held)
{
#define OURS(v) ((v).stream == idx && (v).seq > held)
    if ((r->has_alive && !OURS(r->alive)) || (r->has_tomb && !OURS(r->tomb)))
        return 0;
    for (size_t i = 0; i < r->nfields; i++)
        if (!OURS(r->fields[i].ver))
            return 0;
#undef OURS
    return r->live;
}

typedef struct borns {
    char (*key)[BS_RECKEY_MAX + 1]; /* coll \0 id, sorted */
    uint8_t *known;                 /* a kept set or a base names it */
    size_t n, cap;
} borns;

static int
born_cmp(const void *a, const void *b)
{
    const char *x = a, *y = b;
    int c = strcmp(x, y);

    return c ? c : strcmp(x + strlen(x) + 1, y + strlen(y) + 1);
}

/* The live records whose every version is a stashed change and which have
 * no base (compaction folds the changes it drops into one, and a seed's
 * snapshots are one): the candidates, sorted. */
static bs_err
born_candidates(bs_txn *t, uint32_t idx, uint64_t held, borns *b)
{
    bs_cursor *c;
    bs_slice k, v;
    bs_arena a;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_RECORDS, &c)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        const char *coll, *id;
        bs_record r, base;

        if (k.n == 0 || k.n > BS_RECKEY_MAX || k.p[0] == '_' ||
            memchr(k.p, '\0', k.n) == NULL)
            continue;
        bs_arena_reset(&a);
        if (bs_record_decode(&r, v.p, v.n, &a) != BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        if (!stash_only(&r, idx, held))
            continue;
        if (b->n == b->cap) {
            size_t nc = b->cap ? b->cap * 2 : 16;
            char(*g)[BS_RECKEY_MAX + 1] = realloc(b->key, nc * sizeof *g);
            if (g == NULL) {
                rv = BS_ENOMEM;
                break;
            }
            b->key = g;
            b->cap = nc;
        }
        memcpy(b->key[b->n], k.p, k.n);
        b->key[b->n][k.n] = '\0';
        coll = b->key[b->n];
        id = coll + strlen(coll) + 1;
        rv = bs_movein_base(t, coll, id, &base, &a);
        if (rv == BS_ENOTFOUND)
            b->n++;
        else if (rv != BS_OK)
            break;
    }
    bs_cursor_close(c);
    bs_arena_fini(&a);
    if (rv != BS_ENOTFOUND)
        return rv;
    if (b->n > 0) {
        qsort(b->key, b->n, sizeof *b->key, born_cmp);
        if ((b->known = calloc(b->n, 1)) == NULL)
            return BS_ENOMEM;
    }
    return BS_OK;
}

/* Mark the candidates a set still in the log (one the hub sent, or one
 * of ours it holds) touches: the hub knew those records. */
static bs_err
born_known(bs_txn *t, borns *b)
{
    char probe[BS_RECKEY_MAX + 1];
    bs_cursor *c;
    bs_slice k, v;
    bs_arena a;
    bs_err rv;

    if ((rv = bs_cursor_open(t, BS_DB_LOG, &c)) != BS_OK)
        return rv;
    bs_arena_init(&a);
    for (rv = bs_cursor_first(c, &k, &v); rv == BS_OK;
         rv = bs_cursor_next(c, &k, &v)) {
        bs_csview *cs;

        if (bs_changeset_decode(v.p, v.n, &cs, NULL) != BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        for (size_t i = 0; i < cs->count && rv == BS_OK; i++) {
            char(*hit)[BS_RECKEY_MAX + 1];
            size_t cn, in;
            bs_change ch;

            if (!cs->present[i])
                continue;
            bs_arena_reset(&a);
            if (bs_changeset_change(cs, i, &a, &ch, NULL) != BS_OK) {
                rv = BS_ESTORE;
                break;
            }
            cn = strlen(ch.coll);
            in = strlen(ch.id);
            if (ch.coll[0] == '_' || cn + 1 + in > BS_RECKEY_MAX)
                continue;
            memcpy(probe, ch.coll, cn + 1);
            memcpy(probe + cn + 1, ch.id, in + 1);
            hit = bsearch(probe, b->key, b->n, sizeof *b->key, born_cmp);
            if (hit != NULL)
                b->known[hit - b->key] = 1;
        }
        bs_changeset_free(cs);
        if (rv != BS_OK)
            break;
    }
    bs_cursor_close(c);
    bs_arena_fini(&a);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static size_t
rsb_key(uint8_t *k, const char *coll, const char *id)
{
    size_t cn = strlen(coll) + 1, in = strlen(id);

    memcpy(k, RSB, RSB_LEN);
    memcpy(k + RSB_LEN, coll, cn);
    memcpy(k + RSB_LEN + cn, id, in);
    return RSB_LEN + cn + in;
}

/*
 * Note (meta "rsb:") each live record the branch created while stale:
 * every version it holds is of a stashed change (own stream idx, seq
 * above held), it has no base, and no set left in the log touches it.
 * The seed cannot bring such a record (the hub never had it), and the
 * finish must not take it for one the hub purged.  Runs after the stash,
 * before the user records are dropped.
 */
static bs_err
born_mark(bs_txn *t, uint32_t idx, uint64_t held)
{
    uint8_t k[RSB_LEN + BS_RECKEY_MAX + 1];
    borns b = {0};
    bs_err rv;

    if ((rv = born_candidates(t, idx, held, &b)) == BS_OK && b.n > 0)
        rv = born_known(t, &b);
    for (size_t i = 0; i < b.n && rv == BS_OK; i++) {
        const char *coll = b.key[i], *id = coll + strlen(coll) + 1;
        if (!b.known[i])
            rv = bs_txn_put(t, BS_DB_META, bs_mem(k, rsb_key(k, coll, id)),
                            bs_mem("", 0), 0, NULL);
    }
    free(b.key);
    free(b.known);
    return rv;
}

static int
born(bs_txn *t, const char *coll, const char *id)
{
    uint8_t k[RSB_LEN + BS_RECKEY_MAX + 1];
    bs_slice v;

    if (strlen(coll) + 1 + strlen(id) > BS_RECKEY_MAX)
        return 0;
    return bs_txn_get(t, BS_DB_META, bs_mem(k, rsb_key(k, coll, id)), &v) ==
           BS_OK;
}

/* Forget every "rsb:" note (finish). */
static bs_err
born_clear(bs_txn *t)
{
    uint8_t k[RSB_LEN + BS_RECKEY_MAX + 1];
    bs_cursor *c;
    bs_slice ck, cv;
    bs_err rv;

    for (;;) {
        size_t n;
        if ((rv = bs_cursor_open(t, BS_DB_META, &c)) != BS_OK)
            return rv;
        rv = bs_cursor_seek(c, bs_mem(RSB, RSB_LEN), &ck, &cv);
        if (rv == BS_OK && (ck.n < RSB_LEN || memcmp(ck.p, RSB, RSB_LEN) != 0 ||
                            ck.n > sizeof k))
            rv = BS_ENOTFOUND;
        n = rv == BS_OK ? ck.n : 0;
        if (rv == BS_OK)
            memcpy(k, ck.p, n);
        bs_cursor_close(c);
        if (rv != BS_OK)
            return rv == BS_ENOTFOUND ? BS_OK : rv;
        if ((rv = bs_txn_del(t, BS_DB_META, bs_mem(k, n))) != BS_OK)
            return rv;
    }
}

bs_err
bs_reseed_begin(bs_txn *t, const bs_pos *point, size_t n, bs_reseed_stats *st,
                bs_errbuf *err)
{
    bs_reseed_stats dummy = {0};
    uint8_t key[BS_STREAM_KEY_LEN], mark[12];
    uint64_t held;
    uint32_t idx;
    bs_streamtab tab;
    bs_stream *s, *ns;
    const bs_pos *hp;
    bs_meta m;
    bs_err rv;

    if (st == NULL)
        st = &dummy;
    if ((rv = marker_get(t, &held, &idx)) != BS_ENOTFOUND)
        return rv; /* BS_OK: under way already (a seed that resumes) */
    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        return rv;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    memcpy(key, m.pk, BS_PK_LEN);
    memcpy(key + BS_PK_LEN, m.inc, BS_INC_LEN);
    hp = bs_vv_find(point, n, key);
    held = hp != NULL ? hp->seq : 0;
    if ((s = bs_streams_find(&tab, m.pk, m.inc)) == NULL) {
        rv = BS_ESTORE;
        goto out;
    }
    idx = s->idx;
    if ((rv = stash_own(t, s, held, st)) != BS_OK ||
        (rv = born_mark(t, idx, held)) != BS_OK)
        goto out;
    /* INV-1: the stashed seqs were never sent, yet are never reused. */
    bs_crypto_random(m.inc, BS_INC_LEN);
    if ((rv = bs_streams_add(t, &tab, m.pk, m.inc, &ns)) != BS_OK)
        goto out;
    m.stream = ns->idx;
    if ((rv = bs_meta_save(t, &m)) != BS_OK ||
        (rv = clear_user(t, st)) != BS_OK)
        goto out;
    bs_put_u64be(mark, held);
    bs_put_u32be(mark + 8, idx);
    rv = bs_txn_put(t, BS_DB_META, bs_mem(RSD, RSD_LEN), bs_mem(mark, 12), 0,
                    NULL);
out:
    bs_streams_fini(&tab);
    return rv;
}

/* ---- finishing: the stashed edits written again ---- */

/* 1 when a stashed change stamped hlc may overwrite version v: v is older,
 * or it is one this finish wrote already (the new stream: a later stashed
 * change overrides an earlier one, as it did when first written). */
static int
newer(uint64_t hlc, const bs_version *v, uint32_t own)
{
    return v->stream == own || v->hlc < hlc;
}

/* Write stashed change ch again through l where it is newer than what the
 * seed holds; *done 1 when it wrote something. */
static bs_err
reissue(bs_local *l, const bs_change *ch, int *done, bs_errbuf *err)
{
    uint8_t key[BS_RECKEY_MAX];
    size_t klen = bs_record_key(key, ch->coll, ch->id), nf = 0;
    uint32_t own = l->self->idx;
    bs_field *f = NULL;
    bs_record r;
    bs_arena a;
    bs_slice v;
    bs_err rv;

    *done = 0;
    rv = bs_txn_get(l->txn, BS_DB_RECORDS, bs_mem(key, klen), &v);
    if (rv == BS_ENOTFOUND && !ch->deleted && ch->nfields > 0 &&
        born(l->txn, ch->coll, ch->id)) {
        /* created here while stale: the hub never had it */
        bs_field *all = malloc(ch->nfields * sizeof *all);
        if (all == NULL)
            return BS_ENOMEM;
        memcpy(all, ch->fields, ch->nfields * sizeof *all);
        rv = bs_local_put(l, ch->coll, ch->id, all, ch->nfields, err);
        free(all);
        *done = rv == BS_OK;
        return rv;
    }
    if (rv == BS_ENOTFOUND)
        return BS_OK; /* not at the hub (deleted and purged): dropped */
    if (rv != BS_OK)
        return rv;
    bs_arena_init(&a);
    if (bs_record_decode(&r, v.p, v.n, &a) != BS_OK) {
        bs_arena_fini(&a);
        return BS_ESTORE;
    }
    if (ch->deleted) {
        int go = r.live && r.has_alive && newer(ch->hlc, &r.alive, own);
        bs_arena_fini(&a);
        if (!go)
            return BS_OK;
        rv = bs_local_del(l, ch->coll, ch->id, err);
        *done = rv == BS_OK;
        return rv == BS_ENOTFOUND ? BS_OK : rv;
    }
    if (!r.live && !(r.has_tomb && newer(ch->hlc, &r.tomb, own))) {
        bs_arena_fini(&a);
        return BS_OK; /* deleted at the hub after this edit */
    }
    if (ch->nfields > 0 && (f = calloc(ch->nfields, sizeof *f)) == NULL) {
        bs_arena_fini(&a);
        return BS_ENOMEM;
    }
    for (size_t i = 0; i < ch->nfields; i++) {
        const bs_field *cur = NULL;
        for (size_t j = 0; r.live && j < r.nfields; j++)
            if (r.fields[j].namelen == strlen(ch->fields[i].name) &&
                memcmp(r.fields[j].name, ch->fields[i].name,
                       r.fields[j].namelen) == 0)
                cur = &r.fields[j];
        if (cur == NULL || newer(ch->hlc, &cur->ver, own))
            f[nf++] = ch->fields[i];
    }
    bs_arena_fini(&a);
    if (nf > 0) {
        rv = bs_local_put(l, ch->coll, ch->id, f, nf, err);
        *done = rv == BS_OK;
    }
    free(f);
    return rv;
}

/* Write the stashed set `set` again through l. */
static bs_err
reissue_set(bs_local *l, bs_slice set, bs_reseed_stats *st, bs_errbuf *err)
{
    bs_csview *v;
    bs_arena a;
    bs_err rv;

    if (bs_changeset_decode(set.p, set.n, &v, NULL) != BS_OK)
        return BS_ESTORE;
    bs_arena_init(&a);
    for (size_t i = 0; i < v->count; i++) {
        bs_change ch;
        int done = 0;

        bs_arena_reset(&a);
        if (!v->present[i] ||
            bs_changeset_change(v, i, &a, &ch, NULL) != BS_OK) {
            rv = BS_ESTORE;
            goto out;
        }
        rv = reissue(l, &ch, &done, err);
        if (rv != BS_OK && bs_err_local(rv))
            goto out;
        /* refused now (a rule the seed brought): dropped like the rest */
        if (done)
            st->reissued++;
        else
            st->dropped++;
    }
    rv = BS_OK;
out:
    bs_arena_fini(&a);
    bs_changeset_free(v);
    return rv;
}

/* The stash's keys, in seq order (*out malloc'd). */
static bs_err
stash_list(bs_txn *t, uint64_t **out, size_t *n)
{
    uint64_t *v = NULL;
    size_t cap = 0;
    bs_cursor *c;
    bs_slice k, val;
    bs_err rv;

    *n = 0;
    if ((rv = bs_cursor_open(t, BS_DB_META, &c)) != BS_OK)
        return rv;
    for (rv = bs_cursor_seek(c, bs_mem(RSD, RSD_LEN), &k, &val);
         rv == BS_OK && k.n >= RSD_LEN && memcmp(k.p, RSD, RSD_LEN) == 0;
         rv = bs_cursor_next(c, &k, &val)) {
        if (k.n != RSD_LEN + 8)
            continue; /* the marker */
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint64_t *g = realloc(v, nc * sizeof *g);
            if (g == NULL) {
                rv = BS_ENOMEM;
                break;
            }
            v = g;
            cap = nc;
        }
        v[(*n)++] = bs_get_u64be(k.p + RSD_LEN);
    }
    bs_cursor_close(c);
    if (rv == BS_ENOTFOUND || rv == BS_OK)
        rv = BS_OK;
    if (rv != BS_OK) {
        free(v);
        return rv;
    }
    *out = v;
    return BS_OK;
}

static bs_err
reissue_all(bs_txn *t, const bs_core *c, const uint64_t *firsts, size_t n,
            bs_reseed_stats *st, bs_errbuf *err)
{
    uint8_t k[RSD_LEN + 8];
    bs_local l;
    bs_err rv;

    if ((rv = bs_local_begin(&l, t, c, err)) != BS_OK)
        return rv;
    l.unique_force = 1; /* a merge is never refused (design.md "Limits") */
    for (size_t i = 0; i < n && rv == BS_OK; i++) {
        bs_slice set;
        uint8_t *copy;

        stash_key(k, firsts[i]);
        if ((rv = bs_txn_get(t, BS_DB_META, bs_mem(k, sizeof k), &set)) !=
            BS_OK)
            break;
        /* the local writes below may move the value: keep a copy */
        if ((copy = malloc(set.n ? set.n : 1)) == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        memcpy(copy, set.p, set.n);
        rv = reissue_set(&l, bs_mem(copy, set.n), st, err);
        free(copy);
        if (rv == BS_OK)
            rv = bs_txn_del(t, BS_DB_META, bs_mem(k, sizeof k));
    }
    if (rv == BS_OK)
        rv = bs_local_finish(&l, err);
    bs_local_fini(&l);
    return rv;
}

bs_err
bs_reseed_finish(bs_txn *t, const bs_core *c, bs_reseed_stats *st,
                 bs_errbuf *err)
{
    bs_reseed_stats dummy = {0};
    uint64_t held, *firsts = NULL;
    uint32_t idx;
    size_t n = 0;
    bs_seeding sd;
    bs_err rv;

    if (st == NULL)
        st = &dummy;
    if ((rv = marker_get(t, &held, &idx)) != BS_OK)
        return rv == BS_ENOTFOUND ? BS_OK : rv;
    if ((rv = bs_movein_seed_get(t, &sd)) == BS_OK) {
        bs_seeding_fini(&sd);
        return BS_OK; /* the seed goes on */
    }
    if (rv != BS_ENOTFOUND)
        return rv;
    if ((rv = stash_list(t, &firsts, &n)) != BS_OK)
        return rv;
    rv = reissue_all(t, c, firsts, n, st, err);
    free(firsts);
    if (rv == BS_OK)
        rv = born_clear(t);
    if (rv == BS_OK)
        rv = bs_txn_del(t, BS_DB_META, bs_mem(RSD, RSD_LEN));
    return rv;
}
