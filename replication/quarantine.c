/*
 * quarantine.c - the versions of quarantined streams, and the hub's
 * release of a quarantine carried out on every node (quarantine.h).
 */
#include "quarantine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "changes.h"
#include "crypto.h"
#include "local.h"
#include "movein.h"
#include "rebuild.h"
#include "records.h"
#include "retry.h"
#include "setlog.h"

#define ID_LEN (BS_NODE_ID_LEN + 1 + 2 * BS_INC_LEN)

static const uint8_t zero_hash[BS_HASH_LEN];

/* `_quarantine` record ID of stream key: "<node ID>.<incarnation hex>". */
static void
release_id(const uint8_t *key, char out[ID_LEN + 1])
{
    bs_node_id_format(key, out);
    out[BS_NODE_ID_LEN] = '.';
    bs_hex(out + BS_NODE_ID_LEN + 1, key + BS_PK_LEN, BS_INC_LEN);
}

/* ---- the versions ---- */

/* Header hash, range, time and present changes of a stored set. */
static bs_err
set_info(bs_slice set, bs_qversion *q, uint8_t prev[BS_HASH_LEN])
{
    bs_csview *cv;
    bs_err rv;

    if ((rv = bs_changeset_decode(set.p, set.n, &cv, NULL)) != BS_OK)
        return BS_ESTORE;
    memcpy(q->hash, cv->header_hash, BS_HASH_LEN);
    q->first = cv->first;
    q->last = cv->last;
    q->created_ms = cv->created_ms;
    q->changes = 0;
    for (size_t i = 0; i < cv->count; i++)
        q->changes += cv->present[i] != 0;
    if (prev != NULL)
        memcpy(prev, cv->has_prev ? cv->prev_hash : zero_hash, BS_HASH_LEN);
    bs_changeset_free(cv);
    return BS_OK;
}

/* This node's version of s from seq `fork`: its sets from there on (the
 * set at fork, or for a history fork the set ending at its position). */
static bs_err
here_version(bs_txn *t, const bs_stream *s, uint64_t fork, bs_qversion *q)
{
    uint64_t first, from = fork;
    bs_slice set;
    bs_err rv;

    memset(q, 0, sizeof *q);
    q->here = 1;
    if (bs_setlog_get(t, s->idx, fork, &set) != BS_OK) {
        /* a history fork (A9): the node's version ends below fork */
        if (s->seq == 0)
            return BS_OK;
        if ((rv = bs_setlog_find(t, s->idx, s->seq, &set, &first)) != BS_OK)
            return rv == BS_ENOTFOUND ? BS_OK : rv;
        from = first;
    }
    if ((rv = bs_setlog_get(t, s->idx, from, &set)) != BS_OK ||
        (rv = set_info(set, q, NULL)) != BS_OK)
        return rv == BS_ENOTFOUND ? BS_OK : rv;
    /* the changes of every later set of the version too */
    for (uint64_t at = q->last + 1; at <= s->seq;) {
        bs_qversion more;
        if (bs_setlog_get(t, s->idx, at, &set) != BS_OK ||
            (rv = set_info(set, &more, NULL)) != BS_OK)
            break;
        q->changes += more.changes;
        at = more.last + 1;
    }
    q->last = s->seq;
    return BS_OK;
}

bs_err
bs_quarantine_list(bs_txn *t, bs_qstream **out, size_t *nout)
{
    bs_streamtab tab;
    bs_qstream *v = NULL;
    size_t n = 0;
    bs_err rv;

    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    for (size_t i = 0; i < tab.n && rv == BS_OK; i++) {
        const bs_stream *s = &tab.v[i];
        bs_qstream *q, *nv;
        bs_held h;

        if (!(s->flags & BS_STREAM_QUARANTINED))
            continue;
        if ((nv = realloc(v, (n + 1) * sizeof *v)) == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        v = nv;
        q = &v[n++];
        memset(q, 0, sizeof *q);
        memcpy(q->origin, s->key, BS_PK_LEN);
        memcpy(q->inc, s->key + BS_PK_LEN, BS_INC_LEN);
        q->seq = s->seq;
        snprintf(q->note, sizeof q->note, "%s", s->note);
        rv = bs_held_next(t, BS_HELD_EVIDENCE, s->idx, 0, 1, &h);
        if (rv == BS_ENOTFOUND) { /* no evidence kept: only ours */
            q->fork = s->seq + 1;
            rv = here_version(t, s, q->fork, &q->v[0]);
            continue;
        }
        if (rv != BS_OK || (rv = set_info(h.set, &q->v[1], NULL)) != BS_OK)
            break;
        q->fork = q->v[1].first;
        rv = here_version(t, s, q->fork, &q->v[0]);
    }
    bs_streams_fini(&tab);
    if (rv != BS_OK) {
        free(v);
        return rv;
    }
    *out = v;
    *nout = n;
    return BS_OK;
}

/* ---- carrying a release out ---- */

typedef struct recref {
    char *coll, *id;
} recref;

static int
recref_cmp(const void *x, const void *y)
{
    const recref *a = x, *b = y;
    int c = strcmp(a->coll, b->coll);

    return c != 0 ? c : strcmp(a->id, b->id);
}

/* Remember the user records set cv's changes touch. */
static bs_err
touched(const bs_csview *cv, recref **v, size_t *n)
{
    bs_arena a;
    bs_err rv = BS_OK;

    bs_arena_init(&a);
    for (size_t i = 0; i < cv->count && rv == BS_OK; i++) {
        bs_change ch;
        recref *nv;

        if (!cv->present[i])
            continue;
        bs_arena_reset(&a);
        if (bs_changeset_change(cv, i, &a, &ch, NULL) != BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        if (ch.coll[0] == '_')
            continue; /* system records follow the hub's later changes */
        if ((nv = realloc(*v, (*n + 1) * sizeof **v)) == NULL) {
            rv = BS_ENOMEM;
            break;
        }
        *v = nv;
        nv[*n].coll = strdup(ch.coll);
        nv[*n].id = strdup(ch.id);
        if (nv[*n].coll == NULL || nv[*n].id == NULL) {
            free(nv[*n].coll);
            free(nv[*n].id);
            rv = BS_ENOMEM;
            break;
        }
        (*n)++;
    }
    bs_arena_fini(&a);
    return rv;
}

/* Rebuild each record of v from the log; one left without a change goes. */
static bs_err
rebuild_all(bs_txn *t, const bs_meta *m, recref *v, size_t n, uint64_t *count)
{
    bs_err rv = BS_OK;

    qsort(v, n, sizeof *v, recref_cmp);
    for (size_t i = 0; i < n && rv == BS_OK; i++) {
        uint8_t key[BS_RECKEY_MAX];
        bs_rebuild_stats st;

        if (i > 0 && recref_cmp(&v[i - 1], &v[i]) == 0)
            continue;
        if ((rv = bs_rebuild_record(t, m, v[i].coll, v[i].id, &st)) != BS_OK)
            break;
        if (st.records == 0) {
            /* the base a record that was its own implied outlives it
             * (movein.h) */
            rv =
                bs_movein_base_keep(t, v[i].coll, v[i].id, (bs_slice){NULL, 0});
            if (rv == BS_OK)
                rv = bs_txn_del(
                    t, BS_DB_RECORDS,
                    bs_mem(key, bs_record_key(key, v[i].coll, v[i].id)));
            if (rv == BS_OK) /* the feed sees it go (changes.h) */
                rv = bs_changes_note_record(t, v[i].coll, v[i].id, NULL);
            rv = rv == BS_ENOTFOUND ? BS_OK : rv;
        }
        *count += 1;
    }
    return rv;
}

/* Drop s's sets from seq `from` on, put s back at from - 1 (its chain head
 * prev) and rebuild the records the dropped sets touched. */
static bs_err
drop_from(bs_txn *t, const bs_meta *m, bs_stream *s, uint64_t from,
          const uint8_t *prev, bs_qrelease *out)
{
    recref *v = NULL;
    size_t n = 0;
    bs_slice set;
    uint64_t first;
    bs_err rv;

    while ((rv = bs_setlog_from(t, s->idx, from, &set, &first)) == BS_OK) {
        bs_csview *cv;
        if (bs_changeset_decode(set.p, set.n, &cv, NULL) != BS_OK) {
            rv = BS_ESTORE;
            break;
        }
        rv = touched(cv, &v, &n);
        bs_changeset_free(cv);
        if (rv != BS_OK || (rv = bs_setlog_del(t, s->idx, first)) != BS_OK)
            break;
        out->dropped++;
    }
    if (rv == BS_ENOTFOUND) {
        s->seq = from - 1;
        memcpy(s->last_hash, prev, BS_HASH_LEN);
        /* the records are rebuilt from the stored table */
        if ((rv = bs_streams_save(t, s)) == BS_OK)
            rv = rebuild_all(t, m, v, n, &out->rebuilt);
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i].coll);
        free(v[i].id);
    }
    free(v);
    return rv;
}

/* The held sets of s the release drops go; the evidence that is the kept
 * set waits to apply.  rewound: s went back (to `to`) or is below F. */
static bs_err
sort_held(bs_txn *t, const bs_stream *s, uint64_t seq, const uint8_t *keep,
          int rewound, uint64_t to)
{
    bs_held h;
    bs_err rv;

    while ((rv = bs_held_next(t, BS_HELD_EVIDENCE, s->idx, 0, 1, &h)) ==
           BS_OK) {
        bs_qversion q;
        int kept = set_info(h.set, &q, NULL) == BS_OK && q.first == seq &&
                   memcmp(q.hash, keep, BS_HASH_LEN) == 0;
        uint64_t first = h.first;

        if (kept && rewound) {
            h.kind = BS_HELD_WAITING;
            h.reason = 2; /* BS_HOLD_BEHIND: it applies at the next retry */
            snprintf(h.note, sizeof h.note, "kept by the hub's release");
            if ((rv = bs_held_put(t, &h)) != BS_OK)
                return rv;
        }
        if ((rv = bs_held_del(t, BS_HELD_EVIDENCE, s->idx, first)) != BS_OK)
            return rv;
    }
    if (rv != BS_ENOTFOUND || !rewound)
        return rv == BS_ENOTFOUND ? BS_OK : rv;
    /* held sets past the new position go (the kept set at F waits) */
    for (uint64_t at = to;
         (rv = bs_held_next(t, BS_HELD_WAITING, s->idx, at, 1, &h)) == BS_OK;) {
        bs_qversion q;
        at = h.first;
        if (set_info(h.set, &q, NULL) == BS_OK && q.first == seq &&
            memcmp(q.hash, keep, BS_HASH_LEN) == 0)
            continue;
        if ((rv = bs_held_del(t, BS_HELD_WAITING, s->idx, at)) != BS_OK)
            return rv;
    }
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* A node whose own current incarnation is dropped writes on under a new
 * one (INV-1); the old stream is then one like any other. */
static bs_err
new_incarnation(bs_txn *t, bs_meta *m, bs_streamtab *tab)
{
    bs_stream *s;
    bs_err rv;

    bs_crypto_random(m->inc, BS_INC_LEN);
    if ((rv = bs_streams_add(t, tab, m->pk, m->inc, &s)) != BS_OK)
        return rv;
    m->stream = s->idx;
    return bs_meta_save(t, m);
}

/* 1 when f is named `want` (record field names are not NUL-terminated). */
static int
name_is(const bs_field *f, const char *want)
{
    size_t n = strlen(want);

    return f->namelen == n && memcmp(f->name, want, n) == 0;
}

/* The release's fields: seq, keep, prev. */
static int
parse_release(const bs_change *c, uint8_t key[BS_STREAM_KEY_LEN], uint64_t *seq,
              uint8_t keep[BS_HASH_LEN], uint8_t prev[BS_HASH_LEN])
{
    int have = 0;

    if (c->deleted || strlen(c->id) != ID_LEN || c->id[BS_NODE_ID_LEN] != '.')
        return 0;
    {
        char nid[BS_NODE_ID_LEN + 1];
        memcpy(nid, c->id, BS_NODE_ID_LEN);
        nid[BS_NODE_ID_LEN] = '\0';
        if (bs_node_id_parse(nid, key) != BS_OK ||
            bs_unhex(key + BS_PK_LEN, BS_INC_LEN, c->id + BS_NODE_ID_LEN + 1) !=
                BS_OK)
            return 0;
    }
    for (size_t i = 0; i < c->nfields; i++) {
        const bs_field *f = &c->fields[i];
        if (name_is(f, "seq") && f->val.type == BS_VINT && f->val.i > 0) {
            *seq = (uint64_t)f->val.i;
            have |= 1;
        } else if (f->val.type == BS_VTEXT && f->val.len == 2 * BS_HASH_LEN &&
                   (name_is(f, "keep") || name_is(f, "prev"))) {
            char hex[2 * BS_HASH_LEN + 1];
            int k = name_is(f, "keep");
            memcpy(hex, f->val.s, 2 * BS_HASH_LEN);
            hex[2 * BS_HASH_LEN] = '\0';
            if (bs_unhex(k ? keep : prev, BS_HASH_LEN, hex) == BS_OK)
                have |= k ? 2 : 4;
        }
    }
    return have == 7;
}

int
bs_quarantine_is_release(const bs_change *c)
{
    return c->coll != NULL && strcmp(c->coll, BS_SYS_QUARANTINE) == 0;
}

int
bs_quarantine_names(const bs_change *c, const uint8_t *key)
{
    char id[ID_LEN + 1];

    if (!bs_quarantine_is_release(c))
        return 0;
    release_id(key, id);
    return strcmp(c->id, id) == 0;
}

/*
 * Where this node's history of s must go back to for the release (seq,
 * keep, prev): *rewind = 0 when it holds the kept set, or agrees with
 * prev at seq - 1 and holds nothing at seq, or cannot tell (it is below
 * seq - 1).  Else *to is seq - 1 when its set at seq follows prev, and 0
 * when its history parts earlier (the fork point is unknown here: the
 * whole stream comes again).
 */
static bs_err
rewind_point(bs_txn *t, const bs_stream *s, uint64_t seq, const uint8_t *keep,
             const uint8_t *prev, int *rewind, uint64_t *to)
{
    uint8_t p[BS_HASH_LEN];
    bs_qversion q;
    uint64_t first;
    bs_slice set;
    bs_err rv;

    *rewind = 0;
    *to = 0;
    if (bs_setlog_get(t, s->idx, seq, &set) == BS_OK) {
        if ((rv = set_info(set, &q, p)) != BS_OK)
            return rv;
        if (memcmp(q.hash, keep, BS_HASH_LEN) == 0)
            return BS_OK;
        *rewind = 1;
        *to = memcmp(p, prev, BS_HASH_LEN) == 0 ? seq - 1 : 0;
        return BS_OK;
    }
    if (seq == 1 || s->seq < seq - 1)
        return BS_OK;
    if ((rv = bs_setlog_find(t, s->idx, seq - 1, &set, &first)) != BS_OK ||
        (rv = set_info(set, &q, NULL)) != BS_OK)
        return rv == BS_ENOTFOUND ? BS_OK : rv;
    *rewind = q.last != seq - 1 || memcmp(q.hash, prev, BS_HASH_LEN) != 0;
    return BS_OK;
}

/* Carry out "keep `keep` at seq, after prev" for stream key. */
static bs_err
carry(bs_txn *t, bs_meta *m, bs_streamtab *tab, const uint8_t *key,
      uint64_t seq, const uint8_t *keep, const uint8_t *prev, uint32_t busy,
      bs_qrelease *out)
{
    bs_stream *s = bs_streams_find(tab, key, key + BS_PK_LEN);
    int rewind = 0;
    uint64_t to = 0;
    bs_err rv;

    memcpy(out->origin, key, BS_PK_LEN);
    memcpy(out->inc, key + BS_PK_LEN, BS_INC_LEN);
    out->seq = seq;
    memcpy(out->keep, keep, BS_HASH_LEN);
    if (s == NULL &&
        (rv = bs_streams_add(t, tab, key, key + BS_PK_LEN, &s)) != BS_OK)
        return rv;
    if ((rv = rewind_point(t, s, seq, keep, prev, &rewind, &to)) != BS_OK)
        return rv;
    if (rewind && s->idx == busy)
        return BS_OK; /* its own set carries it: done when it arrives again */
    if (rewind && s->idx == m->stream) {
        uint32_t idx = s->idx;
        if ((rv = new_incarnation(t, m, tab)) != BS_OK)
            return rv;
        s = bs_streams_get(tab, idx); /* the table may have moved */
    }
    if (rewind &&
        (rv = drop_from(t, m, s, to + 1, to + 1 == seq ? prev : zero_hash,
                        out)) != BS_OK)
        return rv;
    if ((rv = sort_held(t, s, seq, keep, rewind || s->seq < seq,
                        rewind ? to : seq)) != BS_OK)
        return rv;
    s->flags &= ~BS_STREAM_QUARANTINED;
    s->flags |= BS_STREAM_RELEASED;
    s->note[0] = '\0';
    return bs_streams_save(t, s);
}

bs_err
bs_quarantine_carry(bs_txn *t, bs_meta *m, bs_streamtab *tab,
                    const bs_change *c, uint32_t busy, bs_qrelease *out)
{
    uint8_t key[BS_STREAM_KEY_LEN], keep[BS_HASH_LEN], prev[BS_HASH_LEN];
    bs_qrelease dummy;
    uint64_t seq = 0;

    if (out == NULL)
        out = &dummy;
    memset(out, 0, sizeof *out);
    if (!parse_release(c, key, &seq, keep, prev))
        return BS_OK;
    return carry(t, m, tab, key, seq, keep, prev, busy, out);
}

bs_err
bs_quarantine_judge(bs_txn *t, const bs_stream *s, const bs_csview *v,
                    int *drop, int *settle)
{
    uint8_t key[BS_STREAM_KEY_LEN], keep[BS_HASH_LEN], prev[BS_HASH_LEN];
    char id[ID_LEN + 1];
    bs_change c;
    uint64_t seq = 0;
    bs_record r;
    bs_arena a;
    bs_err rv;

    *drop = *settle = 0;
    if (!(s->flags & BS_STREAM_RELEASED))
        return BS_OK;
    release_id(s->key, id);
    bs_arena_init(&a);
    rv = bs_records_get(t, BS_SYS_QUARANTINE, id, &a, &r, NULL);
    if (rv == BS_OK) {
        memset(&c, 0, sizeof c);
        c.coll = BS_SYS_QUARANTINE;
        c.id = id;
        c.fields = r.fields;
        c.nfields = r.nfields;
        if (parse_release(&c, key, &seq, keep, prev)) {
            int kept = v->first == seq &&
                       memcmp(v->header_hash, keep, BS_HASH_LEN) == 0;
            *drop = v->first <= seq && seq <= v->last && !kept;
            *settle = v->last >= seq && !kept;
        }
    }
    bs_arena_fini(&a);
    return rv == BS_ENOTFOUND ? BS_OK : rv;
}

/* ---- the hub's decision ---- */

typedef struct release_ctx {
    const bs_core *c;
    uint8_t origin[BS_PK_LEN], keep[BS_HASH_LEN];
    const char *origin_id, *keep_hex;
    bs_qrelease *out;
} release_ctx;

/* The kept set's stream key, seq and predecessor, found among the
 * quarantined streams of origin (or the hub's own log). */
static bs_err
find_kept(bs_txn *t, const bs_meta *m, release_ctx *r, uint8_t *key,
          uint64_t *seq, uint8_t *prev, bs_errbuf *err)
{
    bs_streamtab tab;
    bs_qstream *q = NULL;
    size_t n = 0, quarantined = 0;
    bs_err rv = BS_ENOTFOUND;

    if ((rv = bs_quarantine_list(t, &q, &n)) != BS_OK ||
        (rv = bs_streams_load(t, &tab)) != BS_OK) {
        free(q);
        return rv;
    }
    rv = BS_ENOTFOUND;
    for (size_t i = 0; i < n && rv == BS_ENOTFOUND; i++) {
        bs_stream *s = bs_streams_find(&tab, q[i].origin, q[i].inc);
        bs_qversion kv;
        bs_slice set;
        bs_held h;

        if (memcmp(q[i].origin, r->origin, BS_PK_LEN) != 0)
            continue;
        quarantined++;
        memcpy(key, s->key, BS_STREAM_KEY_LEN);
        /* this node's version: its set at v[0].first; the other: the
         * evidence.  The kept set's first seq and prev_hash say where. */
        if (q[i].v[0].first > 0 &&
            memcmp(q[i].v[0].hash, r->keep, BS_HASH_LEN) == 0)
            rv = bs_setlog_get(t, s->idx, q[i].v[0].first, &set);
        else if (memcmp(q[i].v[1].hash, r->keep, BS_HASH_LEN) == 0 &&
                 (rv = bs_held_next(t, BS_HELD_EVIDENCE, s->idx, 0, 1, &h)) ==
                     BS_OK)
            set = h.set;
        if (rv == BS_OK && (rv = set_info(set, &kv, prev)) == BS_OK)
            *seq = kv.first;
        if (rv != BS_OK && rv != BS_ENOTFOUND)
            break;
    }
    free(q);
    /* The hub's own stream is quarantined at branches only: keep a set of
     * its own log. */
    for (size_t i = 0; rv == BS_ENOTFOUND && i < tab.n; i++) {
        const bs_stream *s = &tab.v[i];
        bs_slice set;
        uint64_t first;

        if (memcmp(s->key, m->pk, BS_PK_LEN) != 0 ||
            memcmp(r->origin, m->pk, BS_PK_LEN) != 0)
            continue;
        for (uint64_t at = 1;
             rv == BS_ENOTFOUND &&
             bs_setlog_from(t, s->idx, at, &set, &first) == BS_OK;) {
            bs_qversion qv;
            if ((rv = set_info(set, &qv, prev)) != BS_OK)
                break;
            rv = BS_ENOTFOUND;
            if (memcmp(qv.hash, r->keep, BS_HASH_LEN) == 0) {
                memcpy(key, s->key, BS_STREAM_KEY_LEN);
                *seq = qv.first;
                rv = BS_OK;
            }
            at = qv.last + 1;
        }
    }
    bs_streams_fini(&tab);
    if (rv == BS_ENOTFOUND && quarantined == 0 &&
        memcmp(r->origin, m->pk, BS_PK_LEN) != 0)
        return bs_errf(err, BS_ENOTFOUND,
                       "no stream of %s is quarantined here "
                       "(branchsync quarantine lists them)",
                       r->origin_id);
    if (rv == BS_ENOTFOUND)
        return bs_errf(err, BS_ENOTFOUND,
                       "%s has no version %s here (branchsync quarantine "
                       "lists the versions)",
                       r->origin_id, r->keep_hex);
    return rv;
}

static bs_err
release_txn(bs_txn *t, void *arg, bs_errbuf *err)
{
    release_ctx *r = arg;
    uint8_t key[BS_STREAM_KEY_LEN], prev[BS_HASH_LEN];
    char id[ID_LEN + 1], keep[2 * BS_HASH_LEN + 1], prevx[2 * BS_HASH_LEN + 1];
    bs_field f[3];
    bs_streamtab tab;
    uint64_t seq = 0;
    bs_local l;
    bs_meta m;
    bs_err rv;

    if ((rv = bs_meta_load(t, &m, err)) != BS_OK)
        return rv;
    if (m.role != BS_ROLE_HUB)
        return bs_errf(err, BS_EPERM,
                       "only the head office releases a quarantine");
    if ((rv = find_kept(t, &m, r, key, &seq, prev, err)) != BS_OK)
        return rv;
    if ((rv = bs_streams_load(t, &tab)) != BS_OK)
        return rv;
    rv = carry(t, &m, &tab, key, seq, r->keep, prev, 0, r->out);
    bs_streams_fini(&tab);
    if (rv != BS_OK)
        return rv;
    /* Fields in name order, as a write takes them. */
    release_id(key, id);
    bs_hex(keep, r->keep, BS_HASH_LEN);
    bs_hex(prevx, prev, BS_HASH_LEN);
    f[0] = bs_field_text("keep", keep);
    f[1] = bs_field_text("prev", prevx);
    memset(&f[2], 0, sizeof f[2]);
    f[2].name = "seq";
    f[2].val.type = BS_VINT;
    f[2].val.i = (int64_t)seq;
    if ((rv = bs_local_begin(&l, t, r->c, err)) == BS_OK) {
        l.force = 1; /* the same decision again still replicates */
        if ((rv = bs_local_put(&l, BS_SYS_QUARANTINE, id, f, 3, err)) == BS_OK)
            rv = bs_local_finish(&l, err);
    }
    bs_local_fini(&l);
    return rv;
}

bs_err
bs_quarantine_release(const bs_core *c, const char *origin,
                      const char *keep_hex, bs_qrelease *out, bs_errbuf *err)
{
    release_ctx r;
    bs_qrelease q;

    memset(&r, 0, sizeof r);
    memset(&q, 0, sizeof q);
    r.c = c;
    r.origin_id = origin;
    r.keep_hex = keep_hex;
    r.out = &q;
    if (bs_node_id_parse(origin, r.origin) != BS_OK)
        return bs_errf(err, BS_EINVAL,
                       "bad node ID \"%.80s\" (branchsync quarantine lists "
                       "the origins)",
                       origin);
    if (strlen(keep_hex) != 2 * BS_HASH_LEN ||
        bs_unhex(r.keep, BS_HASH_LEN, keep_hex) != BS_OK)
        return bs_errf(err, BS_EINVAL,
                       "bad --keep \"%.80s\": a version's hash, 64 hex digits "
                       "(branchsync quarantine lists them)",
                       keep_hex);
    bs_err rv = bs_store_write(c->store, release_txn, &r, err);
    bs_xstats st;

    if (rv != BS_OK)
        return rv;
    /* The other copy, when kept, waits in the held table: apply it. */
    if ((rv = bs_retry_held(c->store, c->clock, c->max_skew_ms, &st, err)) !=
        BS_OK)
        return rv;
    *out = q;
    return BS_OK;
}
