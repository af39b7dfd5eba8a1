/*
 * verify.c - the whole-store check of verify.h: one pass over every
 * table, the log before the records so that each record's versions can be
 * compared with the changes that wrote them.
 */
#include "verify.h"

#include <stdarg.h>
#include <string.h>

#include "changes.h"
#include "compact.h"
#include "changeset.h"
#include "conflict.h"
#include "meta.h"
#include "peers.h"
#include "setlog.h"
#include "streams.h"
#include "xlog.h"

/* What one change of the log wrote, for the record cross-check: a hash
 * of (collection, id, hlc, deleted), the sum of its fields' hashes and
 * how many there are.  key 0: not known (an omitted change). */
typedef struct cfp {
    uint32_t key, sum, nf;
} cfp;

typedef struct vctx {
    bs_txn *t;
    const bs_verify_opts *o;
    bs_verify_stats *st;
    bs_errbuf *err;
    int stop; /* the caller asked to stop */
    bs_meta meta;
    int have_meta;
    bs_streamtab tab;
    int have_tab;
    cfp **fp;        /* per stream (idx - 1): seq + 1 entries, or NULL */
    uint64_t budget; /* changes the cross-check may still keep */
    bs_arena a;
} vctx;

static void BS_PRINTF(2, 3) finding(vctx *c, const char *fmt, ...)
{
    char line[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (c->st->findings++ == 0)
        bs_errf(c->err, BS_ESTORE,
                "store is corrupt: %s; restore from a backup", line);
    if (c->o != NULL && c->o->on_finding != NULL &&
        c->o->on_finding(c->o->ctx, line))
        c->stop = 1;
}

/* ---- hashes of the cross-check (FNV-1a, then a final mix) ---- */

static uint32_t
fnv(uint32_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

static uint32_t
mix(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    return h ^ (h >> 16);
}

static uint32_t
key_hash(const char *coll, size_t cn, const char *id, size_t in, uint64_t hlc,
         int deleted)
{
    uint8_t d = (uint8_t)deleted;
    uint32_t h = fnv(2166136261u, coll, cn);

    h = fnv(h, "", 1);
    h = fnv(h, id, in);
    h = fnv(h, &hlc, 8);
    h = mix(fnv(h, &d, 1));
    return h ? h : 1;
}

static uint32_t
field_hash(const char *name, size_t n, const bs_value *v)
{
    uint32_t h = fnv(2166136261u, name, n);

    h = fnv(h, &v->type, 1);
    if (v->type == BS_VINT)
        h = fnv(h, &v->i, 8);
    else if (v->type == BS_VREAL)
        h = fnv(h, &v->d, 8);
    else if (v->type == BS_VTEXT)
        h = fnv(h, v->s, v->len);
    return mix(h);
}

/* ---- walking one table ---- */

/*
 * A cursor over one table that checks what every table promises: keys
 * strictly increasing and, at the end, as many entries as the table
 * counts.  A damaged page ends the walk with a finding.
 */
typedef struct walk {
    vctx *c;
    const char *name;
    bs_db db;
    bs_cursor *cur;
    uint8_t *prev;
    size_t prevn, prevcap;
    uint64_t n, count;
} walk;

static bs_err
walk_open(walk *w, vctx *c, bs_db db, const char *name)
{
    bs_err rv;

    memset(w, 0, sizeof *w);
    w->c = c;
    w->db = db;
    w->name = name;
    if ((rv = bs_txn_count(c->t, db, &w->count)) != BS_OK)
        return rv;
    return bs_cursor_open(c->t, db, &w->cur);
}

static void
walk_close(walk *w)
{
    bs_cursor_close(w->cur);
    free(w->prev);
    w->cur = NULL;
    w->prev = NULL;
}

static int
key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int r = memcmp(a, b, an < bn ? an : bn);

    return r ? r : (an > bn) - (an < bn);
}

/* The next entry: BS_OK, BS_ENOTFOUND at the end (or after a damaged
 * page), or a local fault. */
static bs_err
walk_next(walk *w, bs_slice *k, bs_slice *v)
{
    bs_err rv;

    if (w->c->stop)
        return BS_ENOTFOUND;
    rv = w->n ? bs_cursor_next(w->cur, k, v) : bs_cursor_first(w->cur, k, v);
    if (rv == BS_ESTORE) {
        finding(w->c,
                "%s: a page of the table is damaged (after %llu "
                "entries)",
                w->name, (unsigned long long)w->n);
        return BS_ENOTFOUND;
    }
    if (rv == BS_ENOTFOUND && w->n != w->count)
        finding(w->c, "%s: %llu entries read, the table counts %llu", w->name,
                (unsigned long long)w->n, (unsigned long long)w->count);
    if (rv != BS_OK)
        return rv;
    if (++w->n > w->count + 16) {
        finding(w->c,
                "%s: more entries than the table counts (%llu): its "
                "pages loop",
                w->name, (unsigned long long)w->count);
        return BS_ENOTFOUND;
    }
    if (w->n > 1 && key_cmp(w->prev, w->prevn, k->p, k->n) >= 0)
        finding(w->c, "%s: keys out of order at entry %llu (a damaged key)",
                w->name, (unsigned long long)w->n);
    if (k->n > w->prevcap) {
        uint8_t *p = realloc(w->prev, k->n);
        if (p == NULL)
            return BS_ENOMEM;
        w->prev = p;
        w->prevcap = k->n;
    }
    memcpy(w->prev, k->p, k->n);
    w->prevn = k->n;
    return BS_OK;
}

/* Walk a table only for its order and count. */
static bs_err
walk_only(vctx *c, bs_db db, const char *name, uint64_t *n)
{
    bs_slice k, v;
    walk w;
    bs_err rv;

    if ((rv = walk_open(&w, c, db, name)) != BS_OK)
        return rv;
    while ((rv = walk_next(&w, &k, &v)) == BS_OK)
        ;
    if (n != NULL)
        *n = w.n;
    walk_close(&w);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* ---- meta and streams ---- */

static bs_err
check_meta(vctx *c)
{
    bs_errbuf e = {{0}};
    bs_err rv;

    if ((rv = walk_only(c, BS_DB_META, "meta", &c->st->meta)) != BS_OK)
        return rv;
    rv = bs_meta_load(c->t, &c->meta, &e);
    if (rv == BS_ENOMEM)
        return rv;
    if (rv != BS_OK)
        finding(c, "metadata: %s", bs_errmsg(&e, rv));
    else if (c->meta.role > BS_ROLE_HUB)
        finding(c, "metadata: role %u", c->meta.role);
    c->have_meta = rv == BS_OK;
    return BS_OK;
}

static bs_err
check_streamix(vctx *c)
{
    bs_slice k, v;
    walk w;
    bs_err rv;

    if ((rv = walk_open(&w, c, BS_DB_STREAMIX, "stream index")) != BS_OK)
        return rv;
    while ((rv = walk_next(&w, &k, &v)) == BS_OK) {
        const bs_stream *s;
        if (k.n != BS_STREAM_KEY_LEN || v.n != 4) {
            finding(c, "stream index: entry %llu has a bad size",
                    (unsigned long long)w.n);
            continue;
        }
        s = bs_streams_get(&c->tab, bs_get_u32be(v.p));
        if (s == NULL || memcmp(s->key, k.p, BS_STREAM_KEY_LEN) != 0)
            finding(c,
                    "stream index: entry %llu names stream %u, which has "
                    "another key",
                    (unsigned long long)w.n, bs_get_u32be(v.p));
    }
    if (rv == BS_ENOTFOUND && w.n != c->tab.n && !c->stop)
        finding(c, "stream index: %llu entries for %zu streams",
                (unsigned long long)w.n, c->tab.n);
    walk_close(&w);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
check_streams(vctx *c)
{
    const bs_stream *own;
    bs_err rv;

    if ((rv = walk_only(c, BS_DB_STREAMS, "streams", NULL)) != BS_OK)
        return rv;
    if ((rv = bs_streams_load(c->t, &c->tab)) == BS_ENOMEM)
        return rv;
    if (rv != BS_OK) {
        finding(c, "streams: the stream table does not decode");
        return BS_OK;
    }
    c->have_tab = 1;
    c->st->streams = c->tab.n;
    for (size_t i = 0; i < c->tab.n; i++)
        if (c->tab.v[i].flags &
            ~(BS_STREAM_QUARANTINED | BS_STREAM_REVOKED | BS_STREAM_RELEASED))
            finding(c, "streams: stream %u has unknown flags %#x",
                    c->tab.v[i].idx, c->tab.v[i].flags);
    if (c->have_meta &&
        ((own = bs_streams_get(&c->tab, c->meta.stream)) == NULL ||
         memcmp(own->key, c->meta.pk, BS_PK_LEN) != 0 ||
         memcmp(own->key + BS_PK_LEN, c->meta.inc, BS_INC_LEN) != 0))
        finding(c,
                "metadata: the node's own stream %u is not in the stream "
                "table",
                c->meta.stream);
    if ((c->fp = calloc(c->tab.n + 1, sizeof *c->fp)) == NULL)
        return BS_ENOMEM;
    return check_streamix(c);
}

/* ---- the log ---- */

/* Where the walk of one stream's sets stands. */
typedef struct chain {
    const bs_stream *s; /* NULL: no stream yet */
    uint64_t next;      /* the first seq the next set must have; 0: any */
    uint64_t last;      /* the last seq of the sets seen */
    int linked;         /* head holds the last set's header hash */
    int damaged;        /* a set did not decode: its range is unknown */
    uint8_t head[BS_HASH_LEN];
} chain;

static void
chain_end(vctx *c, chain *ch)
{
    const bs_stream *s = ch->s;

    if (s == NULL || ch->damaged)
        return; /* the damaged set was named already */
    if (ch->last != s->seq)
        finding(c, "log: stream %u holds seq 1-%llu but its sets end at %llu",
                s->idx, (unsigned long long)s->seq,
                (unsigned long long)ch->last);
    else if (s->seq > 0 && ch->linked &&
             memcmp(ch->head, s->last_hash, BS_HASH_LEN) != 0)
        finding(c,
                "log: stream %u: its chain head is not the hash of its "
                "last set",
                s->idx);
}

static void
chain_start(vctx *c, chain *ch, const bs_stream *s)
{
    memset(ch, 0, sizeof *ch);
    ch->s = s;
    ch->next = 1;
    if (c->fp[s->idx - 1] != NULL || s->seq == 0)
        return; /* met before: its keys are out of order */
    if (s->seq < c->budget &&
        (c->fp[s->idx - 1] = calloc(s->seq + 1, sizeof(cfp))) != NULL)
        c->budget -= s->seq;
    else
        c->st->unchecked_streams++;
}

/* Decode the present changes of v, filling the cross-check table. */
static void
check_changes(vctx *c, const bs_stream *s, const bs_csview *v)
{
    cfp *fp = c->fp[s->idx - 1];

    for (size_t i = 0; i < v->count && !c->stop; i++) {
        bs_errbuf e = {{0}};
        bs_change ch;
        uint64_t seq = v->first + i;

        if (!v->present[i])
            continue;
        bs_arena_reset(&c->a);
        if (bs_changeset_change(v, i, &c->a, &ch, &e) != BS_OK) {
            finding(c, "log: stream %u: change %llu does not decode: %s",
                    s->idx, (unsigned long long)seq, e.msg);
            continue;
        }
        c->st->changes++;
        if (fp == NULL || seq > s->seq)
            continue;
        fp[seq].key = key_hash(ch.coll, strlen(ch.coll), ch.id, strlen(ch.id),
                               ch.hlc, ch.deleted);
        fp[seq].nf = (uint32_t)ch.nfields;
        for (size_t f = 0; f < ch.nfields; f++)
            fp[seq].sum += field_hash(ch.fields[f].name, ch.fields[f].namelen,
                                      &ch.fields[f].val);
    }
}

/* One stored set (stream s, key's first seq) against its chain. */
static bs_err
check_set(vctx *c, chain *ch, uint64_t first, bs_slice raw)
{
    const bs_stream *s = ch->s;
    bs_errbuf e = {{0}};
    bs_csview *v;
    bs_err rv;

    c->st->sets++;
    if (ch->next != 0 && first > ch->next) {
        int found = 0; /* dropped by compaction: its stubs link the chain */
        if ((rv = bs_compact_ends_at(c->t, s->idx, ch->next, first - 1,
                                     ch->head, &found)) != BS_OK &&
            bs_err_local(rv))
            return rv;
        if (found) {
            ch->next = first;
            ch->linked = 1;
        }
    }
    if (ch->next != 0 && first != ch->next)
        finding(c,
                "log: stream %u: a set starts at seq %llu where %llu was "
                "due",
                s->idx, (unsigned long long)first,
                (unsigned long long)ch->next);
    if ((rv = bs_changeset_decode(raw.p, raw.n, &v, &e)) != BS_OK) {
        if (rv == BS_ENOMEM)
            return rv;
        finding(c, "log: stream %u: the set at seq %llu is damaged: %s", s->idx,
                (unsigned long long)first, e.msg);
        ch->next = 0;
        ch->linked = 0;
        ch->damaged = 1;
        return BS_OK;
    }
    if (v->first != first || memcmp(v->origin, s->key, BS_PK_LEN) != 0 ||
        memcmp(v->inc, s->key + BS_PK_LEN, BS_INC_LEN) != 0)
        finding(c,
                "log: stream %u: the set at seq %llu is another stream's "
                "or position's",
                s->idx, (unsigned long long)first);
    else if (bs_changeset_verify(v, v->origin) != BS_OK)
        finding(c,
                "log: stream %u: the signature of the set at seq %llu "
                "does not verify",
                s->idx, (unsigned long long)first);
    else if (first == 1
                 ? v->has_prev
                 : !v->has_prev || (ch->linked && memcmp(v->prev_hash, ch->head,
                                                         BS_HASH_LEN) != 0))
        finding(c,
                "log: stream %u: the set at seq %llu does not link to the "
                "set before it",
                s->idx, (unsigned long long)first);
    else if (c->have_meta && c->meta.joined &&
             memcmp(v->infobase, c->meta.infobase, BS_INFOBASE_LEN) != 0)
        finding(c,
                "log: stream %u: the set at seq %llu belongs to another "
                "infobase",
                s->idx, (unsigned long long)first);
    check_changes(c, s, v);
    memcpy(ch->head, v->header_hash, BS_HASH_LEN);
    ch->linked = 1;
    ch->last = v->last;
    ch->next = v->last + 1;
    bs_changeset_free(v);
    return BS_OK;
}

static bs_err
check_log(vctx *c)
{
    uint8_t *seen = calloc(c->tab.n + 1, 1);
    chain ch = {0};
    bs_slice k, v;
    walk w;
    bs_err rv;

    if (seen == NULL)
        return BS_ENOMEM;
    if ((rv = walk_open(&w, c, BS_DB_LOG, "log")) != BS_OK) {
        free(seen);
        return rv;
    }
    while ((rv = walk_next(&w, &k, &v)) == BS_OK) {
        const bs_stream *s;
        if (k.n != 12 ||
            (s = bs_streams_get(&c->tab, bs_get_u32be(k.p))) == NULL) {
            finding(c, "log: entry %llu names no known stream",
                    (unsigned long long)w.n);
            continue;
        }
        if (s != ch.s) {
            chain_end(c, &ch);
            chain_start(c, &ch, s);
            seen[s->idx] = 1;
        }
        if ((rv = check_set(c, &ch, bs_get_u64be(k.p + 4), v)) != BS_OK)
            break;
    }
    walk_close(&w);
    if (rv == BS_ENOTFOUND) {
        rv = BS_OK;
        chain_end(c, &ch);
        for (size_t i = 0; i < c->tab.n && !c->stop; i++)
            if (!seen[i + 1] && c->tab.v[i].seq > 0)
                finding(c,
                        "log: stream %u holds seq 1-%llu but the log has "
                        "none of its sets",
                        c->tab.v[i].idx, (unsigned long long)c->tab.v[i].seq);
    }
    free(seen);
    return rv;
}

/* ---- held sets ---- */

static void
check_held_set(vctx *c, const bs_held *h, const bs_stream *s)
{
    bs_csview *v;

    if (bs_changeset_decode(h->set.p, h->set.n, &v, NULL) != BS_OK) {
        finding(c, "held: the set of stream %u at seq %llu does not decode",
                h->stream, (unsigned long long)h->first);
        return;
    }
    if (v->first != h->first || memcmp(v->origin, s->key, BS_PK_LEN) != 0 ||
        memcmp(v->inc, s->key + BS_PK_LEN, BS_INC_LEN) != 0)
        finding(c,
                "held: the set under stream %u seq %llu is another "
                "stream's or position's",
                h->stream, (unsigned long long)h->first);
    else if (bs_changeset_verify(v, v->origin) != BS_OK)
        finding(c,
                "held: the signature of the set of stream %u at seq %llu "
                "does not verify",
                h->stream, (unsigned long long)h->first);
    bs_changeset_free(v);
}

static bs_err
check_held(vctx *c)
{
    bs_slice k, v;
    walk w;
    bs_err rv;

    if ((rv = walk_open(&w, c, BS_DB_HELD, "held")) != BS_OK)
        return rv;
    while ((rv = walk_next(&w, &k, &v)) == BS_OK) {
        const bs_stream *s = NULL;
        bs_held h;
        c->st->held++;
        if (k.n != 13 ||
            (k.p[0] != BS_HELD_WAITING && k.p[0] != BS_HELD_EVIDENCE &&
             k.p[0] != BS_HELD_REFUSED) ||
            (s = bs_streams_get(&c->tab, bs_get_u32be(k.p + 1))) == NULL ||
            bs_held_get(c->t, (bs_held_kind)k.p[0], bs_get_u32be(k.p + 1),
                        bs_get_u64be(k.p + 5), &h) != BS_OK) {
            finding(c, "held: entry %llu does not decode%s",
                    (unsigned long long)w.n,
                    k.n == 13 && s == NULL ? " (no such stream)" : "");
            continue;
        }
        check_held_set(c, &h, s);
    }
    walk_close(&w);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* ---- records ---- */

/* The label of a record in findings: "collection/id", printable. */
static void
label(char *out, size_t n, bs_slice key)
{
    size_t j = 0;

    for (size_t i = 0; i < key.n && j + 5 < n && i < 80; i++) {
        uint8_t b = key.p[i];
        if (b == 0)
            out[j++] = '/';
        else if (b < 0x20 || b == 0x7f)
            j += (size_t)snprintf(out + j, n - j, "\\x%02x", b);
        else
            out[j++] = (char)b;
    }
    out[j] = '\0';
}

/* A version of record `lab`: named stream and seq held, no later than
 * the clock, and (where the log says) written by a change of this record
 * at that time.  Returns its cross-check entry, or NULL. */
static const cfp *
check_version(vctx *c, const char *lab, const char *what, const bs_version *v,
              uint32_t key)
{
    const bs_stream *s = bs_streams_get(&c->tab, v->stream);
    const cfp *f;

    c->st->versions++;
    if (s == NULL || v->seq == 0 || v->seq > s->seq) {
        finding(c, "record %s: %s names seq %llu of stream %u, which %s", lab,
                what, (unsigned long long)v->seq, v->stream,
                s == NULL ? "does not exist" : "does not hold it");
        return NULL;
    }
    if (c->have_meta && v->hlc > c->meta.hlc)
        finding(c, "record %s: %s is stamped later than the node's clock", lab,
                what);
    if (c->fp[v->stream - 1] == NULL ||
        (f = &c->fp[v->stream - 1][v->seq])->key == 0)
        return NULL;
    c->st->crosschecked++;
    if (f->key != key) {
        finding(c,
                "record %s: %s names seq %llu of stream %u, a change that "
                "wrote another record or time",
                lab, what, (unsigned long long)v->seq, v->stream);
        return NULL;
    }
    return f;
}

/* A run of fields carrying one version, for the value check. */
typedef struct fref {
    uint32_t stream;
    uint64_t seq;
    uint32_t hash;
    size_t i;
} fref;

static int
fref_cmp(const void *x, const void *y)
{
    const fref *a = x, *b = y;

    if (a->stream != b->stream)
        return a->stream < b->stream ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* The fields of r by version: each version's fields must be at most what
 * its change wrote, and equal to it when they are all of them. */
static bs_err
check_fields(vctx *c, const char *lab, bs_slice key, const bs_record *r)
{
    const uint8_t *nul = memchr(key.p, 0, key.n);
    size_t cn = (size_t)(nul - key.p), in = key.n - cn - 1;
    fref *v = bs_arena_alloc(&c->a, (r->nfields + 1) * sizeof *v);

    if (v == NULL)
        return BS_ENOMEM;
    for (size_t i = 0; i < r->nfields; i++)
        v[i] = (fref){r->fields[i].ver.stream, r->fields[i].ver.seq,
                      field_hash(r->fields[i].name, r->fields[i].namelen,
                                 &r->fields[i].val),
                      i};
    qsort(v, r->nfields, sizeof *v, fref_cmp);
    for (size_t i = 0, j; i < r->nfields && !c->stop; i = j) {
        const bs_field *f = &r->fields[v[i].i];
        uint32_t sum = 0;
        char what[160];
        const cfp *x;

        for (j = i; j < r->nfields && v[j].stream == v[i].stream &&
                    v[j].seq == v[i].seq;
             j++)
            sum += v[j].hash;
        snprintf(what, sizeof what, "field \"%.*s\"",
                 f->namelen > 64 ? 64 : (int)f->namelen, f->name);
        x = check_version(c, lab, what, &f->ver,
                          key_hash((const char *)key.p, cn,
                                   (const char *)nul + 1, in, f->ver.hlc, 0));
        if (x == NULL)
            continue;
        if (j - i > x->nf || (j - i == x->nf && sum != x->sum))
            finding(c,
                    "record %s: %s does not hold what the change at seq "
                    "%llu of stream %u wrote",
                    lab, what, (unsigned long long)f->ver.seq, f->ver.stream);
    }
    return BS_OK;
}

/* Key shape, field names and texts of one decoded record. */
static void
check_shape(vctx *c, const char *lab, bs_slice key, const bs_record *r)
{
    const uint8_t *nul = memchr(key.p, 0, key.n);
    char coll[BS_COLLECTION_MAX + 1];
    size_t cn = nul ? (size_t)(nul - key.p) : 0;

    if (nul == NULL || cn == 0 || cn > BS_COLLECTION_MAX ||
        key.n - cn - 1 == 0 || key.n - cn - 1 > BS_ID_MAX ||
        memchr(nul + 1, 0, key.n - cn - 1) != NULL ||
        !bs_utf8_valid((const char *)nul + 1, key.n - cn - 1)) {
        finding(c, "record %s: the key is not a collection and an ID", lab);
        return;
    }
    memcpy(coll, key.p, cn);
    coll[cn] = '\0';
    if (!bs_collection_valid(coll, 1))
        finding(c, "record %s: \"%s\" is not a collection name", lab, coll);
    for (size_t i = 0; i < r->nfields && !c->stop; i++) {
        const bs_field *f = &r->fields[i];
        if (f->namelen == 0 || f->namelen > BS_FIELD_NAME_MAX ||
            memchr(f->name, 0, f->namelen) != NULL ||
            !bs_utf8_valid(f->name, f->namelen) ||
            (i > 0 && key_cmp((const uint8_t *)r->fields[i - 1].name,
                              r->fields[i - 1].namelen,
                              (const uint8_t *)f->name, f->namelen) >= 0))
            finding(c, "record %s: field %zu has a bad or unsorted name", lab,
                    i);
        else if (f->val.type == BS_VTEXT &&
                 !bs_utf8_valid(f->val.s, f->val.len))
            finding(c, "record %s: field \"%.*s\" is not UTF-8 text", lab,
                    f->namelen > 64 ? 64 : (int)f->namelen, f->name);
    }
}

static bs_err
check_record(vctx *c, bs_slice k, bs_slice v)
{
    const uint8_t *nul = memchr(k.p, 0, k.n);
    char lab[400];
    bs_record r;
    bs_err rv;

    label(lab, sizeof lab, k);
    bs_arena_reset(&c->a);
    if ((rv = bs_record_decode(&r, v.p, v.n, &c->a)) != BS_OK) {
        if (rv == BS_ENOMEM)
            return rv;
        finding(c, "record %s does not decode", lab);
        return BS_OK;
    }
    c->st->live += r.live != 0;
    check_shape(c, lab, k, &r);
    if (nul == NULL || c->stop)
        return BS_OK;
    if (r.has_alive)
        check_version(c, lab, "its last upsert", &r.alive,
                      key_hash((const char *)k.p, (size_t)(nul - k.p),
                               (const char *)nul + 1,
                               k.n - (size_t)(nul - k.p) - 1, r.alive.hlc, 0));
    if (r.has_tomb)
        check_version(c, lab, "its delete", &r.tomb,
                      key_hash((const char *)k.p, (size_t)(nul - k.p),
                               (const char *)nul + 1,
                               k.n - (size_t)(nul - k.p) - 1, r.tomb.hlc, 1));
    return check_fields(c, lab, k, &r);
}

static bs_err
check_records(vctx *c)
{
    bs_slice k, v;
    walk w;
    bs_err rv;

    if ((rv = walk_open(&w, c, BS_DB_RECORDS, "records")) != BS_OK)
        return rv;
    while ((rv = walk_next(&w, &k, &v)) == BS_OK) {
        c->st->records++;
        if ((rv = check_record(c, k, v)) != BS_OK)
            break;
    }
    walk_close(&w);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* ---- conflicts, peers, exchange log ---- */

static bs_err
check_conflicts(vctx *c)
{
    uint64_t open = 0, all = 0, n = 0, want_open, want_all;
    bs_conflict_iter *it;
    const bs_conflict *cf;
    bs_err rv;

    if ((rv = walk_only(c, BS_DB_CONFLICTS, "conflicts", &n)) != BS_OK ||
        (rv = bs_conflict_iter_open(c->t, 1, &it)) != BS_OK)
        return rv;
    for (uint64_t i = 0; i < n && !c->stop; i++) {
        if ((rv = bs_conflict_iter_next(it, &cf)) == BS_ESTORE) {
            finding(c, "conflicts: entry %llu does not decode",
                    (unsigned long long)i + 1);
            all++;
            continue;
        }
        if (rv != BS_OK)
            break;
        all++;
        open += !cf->resolved;
        for (int s = 0; s < 2; s++)
            if (bs_streams_find(&c->tab, cf->side[s].key,
                                cf->side[s].key + BS_PK_LEN) == NULL)
                finding(c, "conflicts: conflict %s names an unknown stream",
                        cf->id);
    }
    bs_conflict_iter_close(it);
    c->st->conflicts = all;
    if (rv != BS_OK && rv != BS_ENOTFOUND && rv != BS_ESTORE)
        return rv;
    if ((rv = bs_conflict_count(c->t, &want_open, &want_all)) != BS_OK)
        return rv;
    if (!c->stop && (open != want_open || all != want_all))
        finding(c,
                "conflicts: the register holds %llu (%llu open), the "
                "counters say %llu (%llu open)",
                (unsigned long long)all, (unsigned long long)open,
                (unsigned long long)want_all, (unsigned long long)want_open);
    return BS_OK;
}

static bs_err
check_peers(vctx *c)
{
    bs_slice k, v;
    walk w;
    bs_err rv;

    if ((rv = walk_open(&w, c, BS_DB_PEERS, "peers")) != BS_OK)
        return rv;
    while ((rv = walk_next(&w, &k, &v)) == BS_OK) {
        char name[BS_NODE_NAME_MAX + 1];
        bs_peer p;
        c->st->peers++;
        if (k.n == 0 || k.n > BS_NODE_NAME_MAX) {
            finding(c, "peers: entry %llu has a bad name",
                    (unsigned long long)w.n);
            continue;
        }
        memcpy(name, k.p, k.n);
        name[k.n] = '\0';
        if ((rv = bs_peer_get(c->t, name, &p)) == BS_ENOMEM)
            break;
        if (rv != BS_OK || strcmp(p.name, name) != 0 ||
            !bs_node_name_valid(name))
            finding(c, "peers: the entry of %s does not decode",
                    bs_node_name_valid(name) ? name : "a peer");
        if (rv == BS_OK)
            bs_peer_fini(&p);
        rv = BS_OK;
    }
    walk_close(&w);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

static bs_err
check_xlog(vctx *c)
{
    uint64_t seq = 0;
    bs_xlog_entry *e;
    bs_slice k, v;
    size_t n;
    walk w;
    bs_err rv;

    if ((rv = bs_meta_get_u64(c->t, "xlog.seq", &seq)) != BS_OK &&
        rv != BS_ESTORE)
        return rv;
    if (rv == BS_ESTORE)
        finding(c, "metadata: the exchange log's counter does not decode");
    if ((rv = walk_open(&w, c, BS_DB_XLOG, "exchange log")) != BS_OK)
        return rv;
    while ((rv = walk_next(&w, &k, &v)) == BS_OK)
        if (k.n != 16 || bs_get_u64be(k.p + 8) >= seq)
            finding(c, "exchange log: entry %llu has a bad key",
                    (unsigned long long)w.n);
    c->st->xlog = w.n;
    walk_close(&w);
    if (rv != BS_ENOTFOUND)
        return rv;
    if ((rv = bs_xlog_list(c->t, NULL, (size_t)c->st->xlog, &e, &n)) ==
        BS_ENOMEM)
        return rv;
    if (rv != BS_OK)
        finding(c, "exchange log: an entry does not decode");
    else
        free(e);
    return BS_OK;
}

static bs_err
check_change_index(vctx *c)
{
    uint64_t prev = 0;
    bs_slice k, v;
    walk w;
    bs_err rv;

    if ((rv = walk_open(&w, c, BS_DB_CHANGES, "change index")) != BS_OK)
        return rv;
    while ((rv = walk_next(&w, &k, &v)) == BS_OK) {
        bs_change_entry e;

        if (bs_changes_decode(k, v, &e) != BS_OK || e.seq <= prev ||
            (e.stream != BS_CHANGES_NO_STREAM &&
             bs_streams_get(&c->tab, e.stream) == NULL))
            finding(c, "change index: entry %llu does not decode",
                    (unsigned long long)w.n);
        else
            prev = e.seq;
    }
    walk_close(&w);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* ---- the walk ---- */

bs_err
bs_verify_store(bs_txn *t, const bs_verify_opts *o, bs_verify_stats *st,
                bs_errbuf *err)
{
    vctx c;
    bs_err rv;

    memset(st, 0, sizeof *st);
    memset(&c, 0, sizeof c);
    c.t = t;
    c.o = o;
    c.st = st;
    c.err = err;
    c.budget = BS_VERIFY_CHANGES_MAX;
    bs_arena_init(&c.a);
    rv = check_meta(&c);
    if (rv == BS_OK)
        rv = check_streams(&c);
    /* Without the stream table, nothing that names a stream can be
     * checked: the walk stops at the first finding already made. */
    if (rv == BS_OK && c.have_tab && !c.stop)
        rv = check_log(&c);
    if (rv == BS_OK && c.have_tab && !c.stop)
        rv = check_held(&c);
    if (rv == BS_OK && c.have_tab && !c.stop)
        rv = check_records(&c);
    if (rv == BS_OK && c.have_tab && !c.stop)
        rv = check_conflicts(&c);
    if (rv == BS_OK && !c.stop)
        rv = check_peers(&c);
    if (rv == BS_OK && !c.stop)
        rv = check_xlog(&c);
    if (rv == BS_OK && c.have_tab && !c.stop)
        rv = check_change_index(&c);
    for (size_t i = 0; c.fp != NULL && i < c.tab.n; i++)
        free(c.fp[i]);
    free(c.fp);
    bs_streams_fini(&c.tab);
    bs_arena_fini(&c.a);
    if (rv != BS_OK)
        return rv;
    return st->findings ? BS_ESTORE : BS_OK;
}
